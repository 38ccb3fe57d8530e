/* Internals of gemm(): the packed-panel layout shared by the driver (gemm.c)
 * and the AVX2/FMA micro-kernel (gemm_kernel_avx2.c), plus a switch for tests.
 *
 * Packed layout (Goto/BLIS): a KC-deep slice of op(A) is cut into micro-panels
 * of GEMM_MR rows, each stored k-major ([k][GEMM_MR], rows past the matrix
 * edge zero-filled); a slice of op(B) into micro-panels of GEMM_NR columns,
 * stored [k][w] with w = 8 when the panel holds at most 8 columns (the right
 * edge) and w = GEMM_NR otherwise, zero-filled past the edge. */
#ifndef HG_GEMM_INTERNAL_H
#define HG_GEMM_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#define GEMM_MR 6
#define GEMM_NR 16

/* Width of a packed B micro-panel holding `nr` valid columns. */
static inline int gemm_b_panel_width(int nr) {
    return nr <= 8 ? 8 : GEMM_NR;
}

/* C[0:mr, 0:nr] = alpha * Apanel * Bpanel + beta * C over kc steps, where
 * Apanel is [kc][GEMM_MR] and Bpanel is [kc][gemm_b_panel_width(nr)].
 * beta == 0 must not read C. The order of the sums may depend only on kc and
 * on the panel width (never on mr, nr < width or the C address), so a tile cut
 * at the bottom edge is computed exactly like a full one and results do not
 * depend on how the threads split C. */
typedef void (*gemm_microkernel_fn)(int64_t kc, const float *a, const float *b, float *c,
                                    int64_t ldc, float alpha, float beta, int mr, int nr);

void gemm_microkernel_avx2(int64_t kc, const float *a, const float *b, float *c, int64_t ldc,
                           float alpha, float beta, int mr, int nr);

/* Pack rows [i0, i0+mc) x k-range [p0, p0+kc) of op(A) into MR-row panels
 * (panel q at dst + q * GEMM_MR * kc), and one B panel of columns [j, j+nr) of
 * op(B) (dst 32-byte aligned). Same results as the portable packers in gemm.c. */
void gemm_pack_a_avx2(bool trans, const float *a, int64_t lda, int64_t i0, int64_t mc, int64_t p0,
                      int64_t kc, float *dst);
void gemm_pack_b_panel_avx2(bool trans, const float *b, int64_t ldb, int64_t j, int nr, int64_t p0,
                            int64_t kc, float *dst);

#endif
