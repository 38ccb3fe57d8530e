/* Single-precision matrix multiply of our own (no BLAS library is linked).
 *
 *   C = alpha * op(A) * op(B) + beta * C,   op(X) = X or X^T
 *
 * Row-major storage: op(A) is M x K, op(B) is K x N, C is M x N with leading
 * dimensions lda, ldb, ldc (elements between consecutive rows of the stored
 * matrix). beta == 0 overwrites C without reading it (NaNs in C are ignored).
 * Panels of A and B are packed and multiplied by a register-blocked AVX2/FMA
 * micro-kernel when the CPU has it (a portable kernel otherwise), with OpenMP
 * threads across panels. Any sizes, including 0 and 1. */
#ifndef HG_GEMM_H
#define HG_GEMM_H

#include <stdbool.h>
#include <stdint.h>

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
          int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

/* Straightforward triple loop with double accumulation, for tests and checks. */
void gemm_reference(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                    const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                    int64_t ldc);

/* Which micro-kernel gemm() uses on this CPU: "avx2-fma" or "portable". */
const char *gemm_kernel_name(void);

#endif
