/* Internal to nn/conv2d_winograd*.c (and their test): the buffer layouts of the
 * Winograd F(m x m, 3 x 3) convolution and the AVX2 tile transforms.
 *
 * With alpha = m + 2 and T = alpha^2 transform points, per input channel c,
 * output channel o and tile (an m x m block of output pixels, read from an
 * alpha x alpha input patch d):
 *   U[t][o][c] = (G g[o][c] G^T)[t]        (filter, once per layer)
 *   V[t][c][j] = (B^T d[c][j] B)[t]         (input, per tile j)
 *   M[t][o][j] = sum_c U[t][o][c] V[t][c][j]  (T independent GEMMs)
 *   y[o][j]    = A^T M[.][o][j] A + bias[o]  (inverse, m x m outputs)
 * The GEMMs run on gemm()'s AVX2 micro-kernel (tensor/gemm_internal.h)
 * directly: U is stored once in its packed A layout (6-row panels, k-major)
 * and the input transform writes V straight into packed 16-column B panels,
 * so no operand is repacked per call. */
#ifndef HG_NN_CONV2D_WINOGRAD_INTERNAL_H
#define HG_NN_CONV2D_WINOGRAD_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "tensor/gemm_internal.h"

#define WINO_LANES     8       /* tiles per vector */
#define WINO_PANEL     GEMM_NR /* tiles per packed B panel */
#define WINO_MAX_TILES 512     /* most tiles per block */

/* Where the tiles of one block come from and go to. */
typedef struct WinoTiles {
    int m, alpha;               /* output tile size, patch size m + 2 */
    int64_t c_in, c_out;        /* channels */
    int64_t h, w, oh, ow;       /* input and output planes (stride 1, 3 x 3) */
    int pt, pl;                 /* top and left padding */
    int64_t tiles_y, tiles_x;   /* tiles per image: ceil(oh / m), ceil(ow / m) */
    int64_t nb;                 /* tiles per block (a multiple of WINO_PANEL, <= WINO_MAX_TILES) */
    int64_t v_stride, m_stride; /* floats between transform points of V and M */
} WinoTiles;

/* Input transform of channels [c0, c1) for tiles [j0, j0 + nb) of the whole
 * batch (tile j = (n * tiles_y + ty) * tiles_x + tx; tiles past `total` are
 * zeros). V: T points v_stride floats apart, each c_in x nb in panel layout
 * [j / 16][c][j % 16]. */
void wino_input_avx2(float *v, const float *x, const WinoTiles *wt, int64_t j0, int64_t total,
                     int64_t c0, int64_t c1);

/* Inverse transform of output channels [o0, o1) of the block's tiles from M
 * ([t][o][j]: points m_stride floats apart, rows of nb): out = act(y + bias[o] + residual), with
 * residual (shaped like out, may be NULL) and relu optional; bias may be NULL. */
void wino_output_avx2(float *out, const float *mbuf, const float *bias, const float *residual,
                      bool relu, const WinoTiles *wt, int64_t j0, int64_t total, int64_t o0,
                      int64_t o1);

#endif
