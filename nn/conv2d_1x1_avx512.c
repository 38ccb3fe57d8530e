/* AVX-512 1x1 convolution: out (M x P) = W (M x K) @ x (K x P) for one image,
 * where x is the NCHW image itself (row c = channel c, P = H*W pixels
 * contiguous). The same scheme as conv2d_1x1_avx2.c with 16-wide vectors and
 * 32 registers: a tile of 8 output channels x 48 pixels lives in 24
 * accumulators; for every input channel c it takes 3 loads of x and 8
 * broadcasts of W for 24 FMAs. On CPUs with 512-bit FMA units this doubles the
 * AVX2 kernel's peak, which the expand/project convolutions of EfficientNet
 * reach (they are compute-bound once x is read once).
 *
 * The K x 48 block of x under the current columns is copied to a contiguous
 * panel (rows of x lie H*W floats apart and would all map to the same L1 sets)
 * by the first output tile while it computes from x directly, so the copy costs
 * only stores; the other tiles read the panel from L1. That first tile also
 * prefetches the next block's rows, too many streams for the hardware
 * prefetcher when K is large.
 *
 * This file is compiled with the generic flags: each function carries the
 * AVX-512 target attribute and is called only when hg_cpu_has_avx512f() (tensor/cpu.h). */
#include <immintrin.h>

#include "nn/conv2d_kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#define AVX512 __attribute__((target("avx512f,avx2,fma")))
#define VEC    16
#define MR     8 /* output channels per tile */
#define NV     3 /* pixel vectors per tile */

/* ROWS x V tile of out (row stride ldo) from W rows (stride ldw) and either x
 * itself (FIRST: row stride ldx; each loaded row is also stored to the panel
 * and the next block's columns are prefetched) or the panel (row stride
 * V * VEC). The last vector's loads from x and its stores to out go through
 * `mask` when MASKED; the panel always holds whole vectors (zeros past the
 * mask). */
static inline __attribute__((always_inline)) AVX512 void
tile(float *out, int64_t ldo, const float *x, int64_t ldx, float *panel, const float *w,
     int64_t ldw, const float *b, int64_t k, const int ROWS, const int V, const bool FIRST,
     const bool MASKED, __mmask16 mask) {
    __m512 acc[MR][NV];
#pragma GCC unroll 8
    for (int r = 0; r < ROWS; r++) {
        __m512 init = b ? _mm512_set1_ps(b[r]) : _mm512_setzero_ps();
#pragma GCC unroll 3
        for (int v = 0; v < V; v++) acc[r][v] = init;
    }
    for (int64_t c = 0; c < k; c++) {
        float *pc = panel + c * (V * VEC);
        __m512 xv[NV];
        if (FIRST) {
            const float *xc = x + c * ldx;
            _mm_prefetch((const char *)(xc + V * VEC), _MM_HINT_T0);
            _mm_prefetch((const char *)(xc + V * VEC + VEC), _MM_HINT_T0);
            _mm_prefetch((const char *)(xc + V * VEC + 2 * VEC), _MM_HINT_T0);
#pragma GCC unroll 3
            for (int v = 0; v < V; v++) {
                xv[v] = MASKED && v == V - 1 ? _mm512_maskz_loadu_ps(mask, xc + v * VEC)
                                             : _mm512_loadu_ps(xc + v * VEC);
                _mm512_storeu_ps(pc + v * VEC, xv[v]);
            }
        } else {
#pragma GCC unroll 3
            for (int v = 0; v < V; v++) xv[v] = _mm512_loadu_ps(pc + v * VEC);
        }
#pragma GCC unroll 8
        for (int r = 0; r < ROWS; r++) {
            __m512 wv = _mm512_set1_ps(w[r * ldw + c]);
#pragma GCC unroll 3
            for (int v = 0; v < V; v++) acc[r][v] = _mm512_fmadd_ps(wv, xv[v], acc[r][v]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < ROWS; r++)
#pragma GCC unroll 3
        for (int v = 0; v < V; v++) {
            float *d = out + r * ldo + v * VEC;
            if (MASKED && v == V - 1)
                _mm512_mask_storeu_ps(d, mask, acc[r][v]);
            else
                _mm512_storeu_ps(d, acc[r][v]);
        }
}

/* Output rows [o, o + ROWS) of one column block; FIRST fills the panel. */
#define TILE_AT(o, ROWS, FIRST)                                                                    \
    tile(out + (o)*hw, hw, x, hw, panel, w + (o)*k, k, b ? b + (o) : NULL, k, ROWS, V, FIRST,      \
         MASKED, mask)

/* All m output channels for the columns of one block (V vectors wide): full
 * 8-row tiles, then the rest of m as 4-, 2- and 1-row tiles. Whichever tile
 * comes first packs the panel. */
static inline __attribute__((always_inline)) AVX512 void
column_block(float *out, const float *x, float *panel, const float *w, const float *b, int64_t m,
             int64_t k, int64_t hw, const int V, const bool MASKED, __mmask16 mask) {
    int64_t o = 0;
    if (m >= MR) {
        TILE_AT(0, MR, true);
        o = MR;
    } else if (m >= 4) {
        TILE_AT(0, 4, true);
        o = 4;
    } else if (m >= 2) {
        TILE_AT(0, 2, true);
        o = 2;
    } else {
        TILE_AT(0, 1, true);
        o = 1;
    }
    for (; o + MR <= m; o += MR) TILE_AT(o, MR, false);
    if (o + 4 <= m) {
        TILE_AT(o, 4, false);
        o += 4;
    }
    if (o + 2 <= m) {
        TILE_AT(o, 2, false);
        o += 2;
    }
    if (o < m) TILE_AT(o, 1, false);
}

/* The block shapes instantiated: V vectors, the last one masked or not. */
static AVX512 void block_full(float *out, const float *x, float *panel, const float *w,
                              const float *b, int64_t m, int64_t k, int64_t hw) {
    column_block(out, x, panel, w, b, m, k, hw, NV, false, 0xFFFF);
}
static AVX512 void block_tail(float *out, const float *x, float *panel, const float *w,
                              const float *b, int64_t m, int64_t k, int64_t hw, int64_t width) {
    int nv = (int)((width + VEC - 1) / VEC);
    __mmask16 mask = (__mmask16)((1u << (width - (nv - 1) * VEC)) - 1u); /* 1 to 16 lanes */
    if (nv == 3)
        column_block(out, x, panel, w, b, m, k, hw, 3, true, mask);
    else if (nv == 2)
        column_block(out, x, panel, w, b, m, k, hw, 2, true, mask);
    else
        column_block(out, x, panel, w, b, m, k, hw, 1, true, mask);
}

AVX512 void conv2d_1x1_columns_avx512(float *out, const float *x, const float *w, const float *b,
                                      int64_t m, int64_t k, int64_t hw, int64_t p0, int64_t p1,
                                      float *panel) {
    int64_t p = p0;
    for (; p + NV * VEC <= p1; p += NV * VEC) block_full(out + p, x + p, panel, w, b, m, k, hw);
    if (p < p1) block_tail(out + p, x + p, panel, w, b, m, k, hw, p1 - p);
}

#else /* no x86-64 GCC/clang: never chosen */

void conv2d_1x1_columns_avx512(float *out, const float *x, const float *w, const float *b,
                               int64_t m, int64_t k, int64_t hw, int64_t p0, int64_t p1,
                               float *panel) {
    (void)out, (void)x, (void)w, (void)b, (void)m, (void)k, (void)hw, (void)p0, (void)p1,
        (void)panel;
}

#endif
