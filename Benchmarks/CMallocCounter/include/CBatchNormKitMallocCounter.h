// Heap-allocation counter for bnkbench (linked into the benchmark only).
//
// MallocCounter.c defines malloc, calloc, realloc, free, posix_memalign,
// aligned_alloc, memalign and valloc, counts each call with a relaxed atomic,
// and forwards to glibc's __libc_* entry points. Because the definitions live
// in the executable, the dynamic linker binds every library's calls (the Swift
// runtime, Foundation, OpenBLAS) to them as well.
#ifndef C_BATCHNORMKIT_MALLOC_COUNTER_H
#define C_BATCHNORMKIT_MALLOC_COUNTER_H

#include <stdint.h>

// Allocations so far: malloc, calloc, realloc (every call, including shrinking
// ones), posix_memalign, aligned_alloc, memalign, valloc. Diff two readings.
uint64_t bnk_malloc_count(void);

// free() calls with a non-null pointer so far.
uint64_t bnk_free_count(void);

// Bytes requested by the counted allocations so far.
uint64_t bnk_malloc_bytes(void);

// 1 when the interposed functions are the ones the process calls (checked by
// a malloc/free pair through the dynamic symbol, not a direct call).
int bnk_malloc_counter_active(void);

#endif
