// See include/CBatchNormKitMallocCounter.h. glibc-only (Linux): on other
// platforms the counter compiles to zeros and reports itself inactive.
#include "CBatchNormKitMallocCounter.h"

#if defined(__linux__) && defined(__GLIBC__)
#include <errno.h>
#include <stddef.h>
#include <dlfcn.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);

static uint64_t allocations, frees, bytes;

#define COUNT(n) do { \
    __atomic_fetch_add(&allocations, 1, __ATOMIC_RELAXED); \
    __atomic_fetch_add(&bytes, (uint64_t)(n), __ATOMIC_RELAXED); \
} while (0)

#define EXPORT __attribute__((visibility("default"), used))

EXPORT void *malloc(size_t size) { COUNT(size); return __libc_malloc(size); }

EXPORT void *calloc(size_t count, size_t size) { COUNT(count * size); return __libc_calloc(count, size); }

EXPORT void *realloc(void *p, size_t size) { COUNT(size); return __libc_realloc(p, size); }

EXPORT void free(void *p) {
    if (p) __atomic_fetch_add(&frees, 1, __ATOMIC_RELAXED);
    __libc_free(p);
}

EXPORT void *memalign(size_t alignment, size_t size) { COUNT(size); return __libc_memalign(alignment, size); }

EXPORT void *aligned_alloc(size_t alignment, size_t size) { COUNT(size); return __libc_memalign(alignment, size); }

EXPORT void *valloc(size_t size) { COUNT(size); return __libc_valloc(size); }

EXPORT int posix_memalign(void **out, size_t alignment, size_t size) {
    if (alignment % sizeof(void *) != 0 || (alignment & (alignment - 1)) != 0) return EINVAL;
    COUNT(size);
    void *p = __libc_memalign(alignment, size);
    if (!p && size) return ENOMEM;
    *out = p;
    return 0;
}

uint64_t bnk_malloc_count(void) { return __atomic_load_n(&allocations, __ATOMIC_RELAXED); }
uint64_t bnk_free_count(void) { return __atomic_load_n(&frees, __ATOMIC_RELAXED); }
uint64_t bnk_malloc_bytes(void) { return __atomic_load_n(&bytes, __ATOMIC_RELAXED); }

int bnk_malloc_counter_active(void) {
    // Look malloc up the way a shared library binds it: if the dynamic linker
    // resolves it to this file's definition, every library's calls are counted.
    void *(*resolved)(size_t) = (void *(*)(size_t))dlsym(RTLD_DEFAULT, "malloc");
    if (resolved != malloc) return 0;
    uint64_t before = bnk_malloc_count();
    void *volatile p = resolved(24);
    free(p);
    return bnk_malloc_count() > before;
}

#else
uint64_t bnk_malloc_count(void) { return 0; }
uint64_t bnk_free_count(void) { return 0; }
uint64_t bnk_malloc_bytes(void) { return 0; }
int bnk_malloc_counter_active(void) { return 0; }
#endif
