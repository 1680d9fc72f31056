// C shim for what the kernels need that Swift cannot express: a vectorised
// square root, non-temporal (streaming) stores, and the worker pool's
// spin-wait (an acquire load and the CPU's pause hint).
#ifndef C_BATCHNORMKIT_INTRINSICS_H
#define C_BATCHNORMKIT_INTRINSICS_H

// v[i] = √v[i], correctly rounded (IEEE 754), so bit-identical to
// Double.squareRoot(). Why a shim: on Linux, Swift's squareRoot() (scalar or
// SIMD) lowers to libm sqrt, which may set errno, so every element is a scalar
// vsqrtsd plus a negative-input branch to the libm call and the loop never
// vectorises. __builtin_elementwise_sqrt is LLVM's sqrt intrinsic (no errno):
// the loop becomes sqrtpd (portable) or vsqrtpd on 4 lanes (AVX): figures in
// Benchmarks/README.md. Negative inputs give NaN, as squareRoot() does.
static inline void bnk_square_roots(double *v, long count) {
    for (long i = 0; i < count; i++) v[i] = __builtin_elementwise_sqrt(v[i]);
}

// Swift imports this type as SIMD8<Float>.
typedef float bnk_float8 __attribute__((ext_vector_type(8)));

// *p = v without reading p's cache line first. A normal store of an output
// that is not in cache pays a read-for-ownership: 3 transfers per output
// byte-pair instead of 2. Swift has no non-temporal store (no intrinsic, no
// !nontemporal metadata). p must be 32-byte aligned. Streaming pays only for
// outputs too large to stay in L3 (below, normal stores win), so the kernels
// stream only large outputs (figures: Benchmarks/README.md).
static inline void bnk_stream_store8(float *p, bnk_float8 v) {
    __builtin_nontemporal_store(v, (bnk_float8 *)p);
}

// Orders streaming stores before whatever follows (they are weakly ordered):
// call once after a kernel's last bnk_stream_store8.
static inline void bnk_stream_fence(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_sfence();
#else
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

// An acquire load of *p, for the worker pool's spin-wait: a worker polls the
// pool's generation counter for a short while before it sleeps on a
// condition variable, and the caller polls the count of parts still running.
// Why a shim: those counters are plain memory guarded by a pthread mutex, and
// a plain Swift read of a field another thread writes is a data race the
// optimiser may hoist out of the loop.
static inline long bnk_load_acquire(const long *p) {
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

// A release store of *p (pairs with bnk_load_acquire).
static inline void bnk_store_release(long *p, long v) {
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

// The spin-wait hint (x86 `pause`): cheaper polling, and the core's other
// hardware thread, if any, runs meanwhile.
static inline void bnk_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

#endif
