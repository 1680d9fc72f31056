// C shim over OpenBLAS (CBLAS) and LAPACKE for BatchNormKit.
//
// Why a shim at all: Swift imports cblas.h directly, but the raw enums and
// OpenBLAS-only extensions differ between BLAS vendors. Every entry point the
// package uses goes through one `bnk_` wrapper here, so swapping the BLAS is
// a one-file change and Swift code never spells a vendor symbol.
#ifndef C_BATCHNORMKIT_BLAS_H
#define C_BATCHNORMKIT_BLAS_H

#include <cblas.h>
#include <lapacke.h>

// Row-major single-precision GEMM, C = alpha·op(A)·op(B) + beta·C.
// Exists so Swift passes plain Bools for the transposes instead of CBLAS enums.
static inline void bnk_sgemm(int transA, int transB,
                             int m, int n, int k,
                             float alpha, const float *a, int lda,
                             const float *b, int ldb,
                             float beta, float *c, int ldc) {
    cblas_sgemm(CblasRowMajor,
                transA ? CblasTrans : CblasNoTrans,
                transB ? CblasTrans : CblasNoTrans,
                m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// OpenBLAS keeps its own thread pool; the CLI's --threads and the benchmarks
// set it explicitly, so the count is never an accident of the environment.
static inline void bnk_blas_set_num_threads(int n) { openblas_set_num_threads(n); }

// Read back the pool size, for benchmark reports.
static inline int bnk_blas_get_num_threads(void) { return openblas_get_num_threads(); }

// Which kernel family OpenBLAS chose at load time (affected by
// OPENBLAS_CORETYPE); benchmark reports print it so figures are comparable.
static inline const char *bnk_blas_get_corename(void) { return openblas_get_corename(); }

// Symmetric eigenvalues (LAPACK ssyevd, row-major). Exists for the Hessian
// eigenvalue experiments on the roadmap; jobz 'N' = values only, 'V' = vectors too.
static inline int bnk_ssyevd(char jobz, int n, float *a, int lda, float *w) {
    return (int)LAPACKE_ssyevd(LAPACK_ROW_MAJOR, jobz, 'U', n, a, lda, w);
}

#endif
