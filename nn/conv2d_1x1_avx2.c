/* AVX2/FMA 1x1 convolution: out (M x P) = W (M x K) @ x (K x P) for one image,
 * where x is the NCHW image itself (row c = channel c, P = H*W pixels
 * contiguous). A tile of 4 output channels x 24 pixels lives in 12 accumulators;
 * for every input channel c it takes 3 loads of x[c][p..p+24) and 4 broadcasts
 * of W[o][c], for 12 FMAs. Only the K x 24 block of x under the current columns
 * is copied (to a contiguous panel: rows of x lie H*W floats apart, which would
 * map them all to the same L1 sets), and it stays in L1 while every output
 * tile passes over it. W is used as stored. Against a general packing GEMM this
 * saves the packing of W and of whole B slices, which dominates when M or K is
 * small (the EfficientNet expand/project convolutions). */
#include <immintrin.h>

#include "nn/conv2d_kernels.h"

#define VEC 8
#define MR  4 /* output channels per tile */
#define NV  3 /* pixel vectors per tile */
/* Rows of x lie H*W floats apart, too many streams for the hardware prefetcher
 * when K is large: each packed row asks for its columns two panels ahead. */
#define PREFETCH_AHEAD (2 * NV * VEC)

static inline __m256i tail_mask(int64_t rem) {
    const int32_t lanes[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    return _mm256_loadu_si256((const __m256i *)(lanes + 8 - rem));
}

/* ROWS x V tile at out (row stride ldo), x (row stride ldx), w (row stride ldw).
 * The last vector is stored through mask when `masked`. */
static inline __attribute__((always_inline)) void tile(float *out, int64_t ldo, const float *x,
                                                       int64_t ldx, const float *w, int64_t ldw,
                                                       const float *b, int64_t k, const int ROWS,
                                                       const int V, bool masked, __m256i mask) {
    __m256 acc[MR][NV];
#pragma GCC unroll 4
    for (int r = 0; r < ROWS; r++) {
        __m256 init = b ? _mm256_broadcast_ss(b + r) : _mm256_setzero_ps();
#pragma GCC unroll 3
        for (int v = 0; v < V; v++) acc[r][v] = init;
    }
    for (int64_t c = 0; c < k; c++) {
        const float *xc = x + c * ldx;
        __m256 xv[NV];
#pragma GCC unroll 3
        for (int v = 0; v < V; v++) xv[v] = _mm256_loadu_ps(xc + v * VEC);
#pragma GCC unroll 4
        for (int r = 0; r < ROWS; r++) {
            __m256 wv = _mm256_broadcast_ss(w + r * ldw + c);
#pragma GCC unroll 3
            for (int v = 0; v < V; v++) acc[r][v] = _mm256_fmadd_ps(wv, xv[v], acc[r][v]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < ROWS; r++)
#pragma GCC unroll 3
        for (int v = 0; v < V; v++) {
            float *d = out + r * ldo + v * VEC;
            if (masked && v == V - 1)
                _mm256_maskstore_ps(d, mask, acc[r][v]);
            else
                _mm256_storeu_ps(d, acc[r][v]);
        }
}

/* All output channels for the pixel columns of a packed panel (k x V*8). */
static inline __attribute__((always_inline)) void
column_block(float *out, const float *panel, const float *w, const float *b, int64_t m, int64_t k,
             int64_t hw, const int V, bool masked, __m256i mask) {
    int64_t o = 0;
    for (; o + MR <= m; o += MR)
        tile(out + o * hw, hw, panel, V * VEC, w + o * k, k, b ? b + o : NULL, k, MR, V, masked,
             mask);
    for (; o < m; o++)
        tile(out + o * hw, hw, panel, V * VEC, w + o * k, k, b ? b + o : NULL, k, 1, V, masked,
             mask);
}

/* panel[c][0 .. width) = x[c][p .. p + width), zero up to `padded` columns. */
static void pack_panel(float *panel, const float *x, int64_t k, int64_t hw, int64_t width,
                       int64_t padded) {
    for (int64_t c = 0; c < k; c++) {
        const float *src = x + c * hw;
        float *dst = panel + c * padded;
        if (width == NV * VEC) {
            _mm_prefetch((const char *)(src + PREFETCH_AHEAD), _MM_HINT_T0);
            _mm_prefetch((const char *)(src + PREFETCH_AHEAD + 16), _MM_HINT_T0);
            _mm256_storeu_ps(dst, _mm256_loadu_ps(src));
            _mm256_storeu_ps(dst + VEC, _mm256_loadu_ps(src + VEC));
            _mm256_storeu_ps(dst + 2 * VEC, _mm256_loadu_ps(src + 2 * VEC));
        } else {
            int64_t i = 0;
            for (; i < width; i++) dst[i] = src[i];
            for (; i < padded; i++) dst[i] = 0;
        }
    }
}

void conv2d_1x1_columns_avx2(float *out, const float *x, const float *w, const float *b, int64_t m,
                             int64_t k, int64_t hw, int64_t p0, int64_t p1, float *panel) {
    const __m256i full = _mm256_set1_epi32(-1);
    int64_t p = p0;
    for (; p + NV * VEC <= p1; p += NV * VEC) {
        pack_panel(panel, x + p, k, hw, NV * VEC, NV * VEC);
        column_block(out + p, panel, w, b, m, k, hw, NV, false, full);
    }
    int64_t rest = p1 - p;
    if (rest <= 0) return;
    int64_t nv = (rest + VEC - 1) / VEC;
    bool masked = rest % VEC != 0;
    __m256i mask = masked ? tail_mask(rest % VEC) : full;
    pack_panel(panel, x + p, k, hw, rest, nv * VEC);
    if (nv == 3)
        column_block(out + p, panel, w, b, m, k, hw, 3, masked, mask);
    else if (nv == 2)
        column_block(out + p, panel, w, b, m, k, hw, 2, masked, mask);
    else
        column_block(out + p, panel, w, b, m, k, hw, 1, masked, mask);
}
