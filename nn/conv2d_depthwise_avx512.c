/* AVX-512 forward of one depthwise plane and the stride-2 fill of its
 * phase-split layout (see conv2d_depthwise.c for the layout and the formula;
 * conv2d_depthwise_avx2.c holds the AVX2 versions of the same two steps).
 *
 * Register blocking: a block of up to 4 output vectors (64 outputs) of NR = 4
 * consecutive output rows stays in 16 accumulators while the input rows under
 * them are streamed once: input row r feeds tap row r - i*stride of output row
 * i, so one (cache-line crossing) load of 16 inputs serves up to 4 FMAs for a
 * 5x5 kernel at stride 1 (3 at stride 2), which keeps the loads under the FMA
 * throughput. The 3x3 and 5x5, dilation 1 kernels are compiled with kh, kw and
 * the stride as constants; every other kernel goes to the AVX2 version.
 * Columns past the last whole vector are loaded and stored through a mask, so
 * the layout's slack for 8-wide loads suffices.
 *
 * This file is compiled with the generic flags: each function carries the
 * AVX-512 target attribute and is called only when hg_cpu_has_avx512f(). */
#include <immintrin.h>
#include <string.h>

#include "nn/conv2d_kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#define AVX512 __attribute__((target("avx512f,avx2,fma")))
#define VEC    16
#define BLOCK  4 /* output vectors per block */
#define ROWS   4 /* output rows per block */

/* NR output rows (o0, o0 + ow, ...) x V vectors. base points at padded row
 * y*SH of the plane at the block's first column. The last vector is loaded
 * and stored through `mask` when MASKED. */
static inline __attribute__((always_inline)) AVX512 void
rows_block(float *o0, int64_t ow, const float *base, int64_t rs, const float *w, float bias,
           const int64_t *off, const int KH, const int KW, const int SH, const int NR, const int V,
           const bool MASKED, __mmask16 mask) {
    __m512 acc[ROWS][BLOCK];
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++)
#pragma GCC unroll 4
        for (int v = 0; v < V; v++) acc[i][v] = _mm512_set1_ps(bias);
    const int rows = (KH - 1) + (NR - 1) * SH + 1;
#pragma GCC unroll 16
    for (int r = 0; r < rows; r++) {
        const float *row = base + r * rs;
#pragma GCC unroll 8
        for (int j = 0; j < KW; j++) {
            const float *s = row + off[j];
            __m512 xv[BLOCK];
#pragma GCC unroll 4
            for (int v = 0; v < V; v++)
                xv[v] = MASKED && v == V - 1 ? _mm512_maskz_loadu_ps(mask, s + v * VEC)
                                             : _mm512_loadu_ps(s + v * VEC);
#pragma GCC unroll 4
            for (int i = 0; i < NR; i++) {
                const int tap = r - i * SH; /* the tap row of output row i under input row r */
                if (tap < 0 || tap >= KH) continue;
                __m512 wv = _mm512_set1_ps(w[tap * KW + j]);
#pragma GCC unroll 4
                for (int v = 0; v < V; v++) acc[i][v] = _mm512_fmadd_ps(wv, xv[v], acc[i][v]);
            }
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++)
#pragma GCC unroll 4
        for (int v = 0; v < V; v++) {
            float *d = o0 + i * ow + v * VEC;
            if (MASKED && v == V - 1)
                _mm512_mask_storeu_ps(d, mask, acc[i][v]);
            else
                _mm512_storeu_ps(d, acc[i][v]);
        }
}

/* NR output rows from row y, every column: blocks of 4 whole vectors, then
 * single whole vectors, then the masked rest. */
static inline __attribute__((always_inline)) AVX512 void
rows_all(float *out, const float *plane, const float *w, float bias, const int64_t *off,
         const Conv2dGeom *g, const DwPlane *p, int64_t y, const int KH, const int KW, const int SH,
         const int NR) {
    int64_t whole = g->ow / VEC, rem = g->ow % VEC, rs = p->row_stride;
    const float *base = plane + y * SH * rs;
    float *o = out + y * g->ow;
    int64_t v = 0;
    for (; v + BLOCK <= whole; v += BLOCK)
        rows_block(o + v * VEC, g->ow, base + v * VEC, rs, w, bias, off, KH, KW, SH, NR, BLOCK,
                   false, 0xFFFF);
    for (; v < whole; v++)
        rows_block(o + v * VEC, g->ow, base + v * VEC, rs, w, bias, off, KH, KW, SH, NR, 1, false,
                   0xFFFF);
    if (rem)
        rows_block(o + v * VEC, g->ow, base + v * VEC, rs, w, bias, off, KH, KW, SH, NR, 1, true,
                   (__mmask16)((1u << rem) - 1u));
}

#define DEFINE_PLANE(name, KH, KW, SH)                                                             \
    static AVX512 void name(float *out, const float *plane, const float *w, float bias,            \
                            const int64_t *off, const Conv2dGeom *g, const DwPlane *p) {           \
        int64_t y = 0;                                                                             \
        for (; y + ROWS <= g->oh; y += ROWS)                                                       \
            rows_all(out, plane, w, bias, off, g, p, y, KH, KW, SH, ROWS);                         \
        if (y + 2 <= g->oh) {                                                                      \
            rows_all(out, plane, w, bias, off, g, p, y, KH, KW, SH, 2);                            \
            y += 2;                                                                                \
        }                                                                                          \
        if (y < g->oh) rows_all(out, plane, w, bias, off, g, p, y, KH, KW, SH, 1);                 \
    }

DEFINE_PLANE(plane_3x3_s1, 3, 3, 1)
DEFINE_PLANE(plane_3x3_s2, 3, 3, 2)
DEFINE_PLANE(plane_5x5_s1, 5, 5, 1)
DEFINE_PLANE(plane_5x5_s2, 5, 5, 2)

void conv2d_depthwise_plane_avx512(float *out, const float *plane, const float *w, float b,
                                   const Conv2dGeom *g, const DwPlane *p) {
    int64_t off[5];
    bool unit_dilation = g->dh == 1 && g->dw == 1;
    bool k3 = g->kh == 3 && g->kw == 3, k5 = g->kh == 5 && g->kw == 5;
    if (!unit_dilation || !(k3 || k5) || g->sh > 2) {
        conv2d_depthwise_plane_avx2(out, plane, w, b, g, p);
        return;
    }
    for (int64_t j = 0; j < g->kw; j++) off[j] = dw_tap_offset(g, p, j);
    if (k3 && g->sh == 1)
        plane_3x3_s1(out, plane, w, b, off, g, p);
    else if (k3)
        plane_3x3_s2(out, plane, w, b, off, g, p);
    else if (g->sh == 1)
        plane_5x5_s1(out, plane, w, b, off, g, p);
    else
        plane_5x5_s2(out, plane, w, b, off, g, p);
}

/* Zeroes n floats at dst with vector stores (rows are short: a call to memset
 * per row costs more than the stores). */
static inline __attribute__((always_inline)) AVX512 void zero_floats(float *dst, int64_t n) {
    const __m512 zero = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + VEC <= n; i += VEC) _mm512_storeu_ps(dst + i, zero);
    if (i < n) _mm512_mask_storeu_ps(dst + i, (__mmask16)((1u << (n - i)) - 1u), zero);
}

/* Stride-1 fill: padded column k = input column + pl, one phase per row. */
static AVX512 void fill_s1(float *buf, const float *x, const Conv2dGeom *g, const DwPlane *p) {
    int64_t len = p->phase_len;
    /* Input columns [lo, hi) land inside the row; the rest is never read. */
    int64_t lo = g->pl < 0 ? -g->pl : 0, hi = len - g->pl < g->w ? len - g->pl : g->w;
    if (hi < lo) hi = lo;
    /* Padded columns [head, tail) receive them; the rest of the row is zero. */
    int64_t head = g->pl + lo < len ? g->pl + lo : len, tail = g->pl + hi;
    if (tail < head) tail = head;
    for (int64_t r = 0; r < p->rows; r++) {
        float *dst = buf + r * p->row_stride;
        int64_t iy = r - g->pt;
        if (iy < 0 || iy >= g->h) {
            zero_floats(dst, len);
            continue;
        }
        /* Only the padding around the copied columns is zeroed. */
        zero_floats(dst, head);
        zero_floats(dst + tail, len - tail);
        const float *src = x + iy * g->w;
        int64_t i = lo;
        for (; i + VEC <= hi; i += VEC) _mm512_storeu_ps(dst + g->pl + i, _mm512_loadu_ps(src + i));
        if (i < hi) {
            __mmask16 m = (__mmask16)((1u << (hi - i)) - 1u);
            _mm512_mask_storeu_ps(dst + g->pl + i, m, _mm512_maskz_loadu_ps(m, src + i));
        }
    }
}

/* Strides 1 and 2 (other strides take the portable fill). Stride 2: input
 * column 2m goes to one phase at m + even_at, 2m + 1 to the other at
 * m + odd_at (the phases of padded columns 2m + pl and 2m + 1 + pl); 32 inputs
 * are split per step with two two-source permutes. */
AVX512 void dw_plane_fill_avx512(float *buf, const float *x, const Conv2dGeom *g,
                                 const DwPlane *p) {
    if (g->sw == 1) {
        fill_s1(buf, x, g, p);
        return;
    }
    if (g->sw != 2) {
        dw_plane_fill(buf, x, g, p);
        return;
    }
    int64_t len = p->phase_len;
    int par = g->pl % 2;
    int64_t even_at = g->pl / 2, odd_at = (g->pl + 1) / 2;
    int64_t n_even = (g->w + 1) / 2, n_odd = g->w / 2;
    /* Keep only the columns that fit the buffer (the rest is never read). */
    if (even_at + n_even > len) n_even = len > even_at ? len - even_at : 0;
    if (odd_at + n_odd > len) n_odd = len > odd_at ? len - odd_at : 0;
    int64_t n_both = n_even < n_odd ? n_even : n_odd;
    const __m512i pick_even =
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i pick_odd =
        _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    if (even_at > len) even_at = len;
    if (odd_at > len) odd_at = len;
    for (int64_t r = 0; r < p->rows; r++) {
        float *dst_row = buf + r * p->row_stride;
        int64_t iy = r - g->pt;
        if (iy < 0 || iy >= g->h) {
            zero_floats(dst_row, p->row_stride);
            continue;
        }
        float *e = dst_row + par * len + even_at, *o = dst_row + (1 - par) * len + odd_at;
        /* Only the padding around the columns inputs land on is zeroed. */
        zero_floats(e - even_at, even_at);
        zero_floats(e + n_even, len - even_at - n_even);
        zero_floats(o - odd_at, odd_at);
        zero_floats(o + n_odd, len - odd_at - n_odd);
        const float *src = x + iy * g->w;
        int64_t m = 0;
        for (; m + VEC <= n_both; m += VEC) {
            __m512 a = _mm512_loadu_ps(src + 2 * m), b = _mm512_loadu_ps(src + 2 * m + VEC);
            _mm512_storeu_ps(e + m, _mm512_permutex2var_ps(a, pick_even, b));
            _mm512_storeu_ps(o + m, _mm512_permutex2var_ps(a, pick_odd, b));
        }
        for (int64_t k = m; k < n_even; k++) e[k] = src[2 * k];
        for (int64_t k = m; k < n_odd; k++) o[k] = src[2 * k + 1];
    }
}

#else /* no x86-64 GCC/clang: never chosen (hg_cpu_has_avx512f() is false) */

void conv2d_depthwise_plane_avx512(float *out, const float *plane, const float *w, float b,
                                   const Conv2dGeom *g, const DwPlane *p) {
    (void)out, (void)plane, (void)w, (void)b, (void)g, (void)p;
}

void dw_plane_fill_avx512(float *buf, const float *x, const Conv2dGeom *g, const DwPlane *p) {
    dw_plane_fill(buf, x, g, p);
}

#endif
