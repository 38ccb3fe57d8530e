/* AVX2/FMA forward of one depthwise plane (see conv2d_depthwise.c for the
 * phase-split padded layout and the formula), and an AVX2 fill of that layout
 * for stride 2 (even/odd de-interleaving with shuffles).
 *
 * Register blocking: a block of 4 output vectors (32 outputs) of two
 * consecutive output rows stays in 8 accumulators while the input rows under
 * both are streamed once: an input row r feeds tap row r of the first output
 * row and tap row r - stride of the second, so every load of 8 inputs serves up
 * to two FMAs. The 3x3 and 5x5, dilation 1 kernels are unrolled copies of that
 * loop (kh, kw, stride compile-time constants); other kernels use one output
 * row at a time with run-time sizes. */
#include <immintrin.h>
#include <string.h>

#include "nn/conv2d_kernels.h"

#define VEC   8
#define BLOCK 4 /* output vectors per block */

static inline __m256i tail_mask(int64_t rem) {
    const int32_t lanes[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    return _mm256_loadu_si256((const __m256i *)(lanes + 8 - rem));
}

static inline void store(float *dst, __m256 v, bool masked, __m256i mask) {
    if (masked)
        _mm256_maskstore_ps(dst, mask, v);
    else
        _mm256_storeu_ps(dst, v);
}

/* NR (1 or 2) output rows, V vectors from column 8*v0: out rows o0 (and o0 + ow).
 * base points at padded row y*SH of the plane, column block v0. The last vector
 * is stored through `mask` when `masked`. */
static inline __attribute__((always_inline)) void
rows_block(float *o0, int64_t ow, const float *base, int64_t rs, const float *w, __m256 bias,
           const int64_t *off, const int KH, const int KW, const int SH, const int NR, const int V,
           bool masked, __m256i mask) {
    __m256 acc0[BLOCK], acc1[BLOCK];
#pragma GCC unroll 4
    for (int v = 0; v < V; v++) acc0[v] = acc1[v] = bias;
    const int rows = (KH - 1) + (NR - 1) * SH + 1;
#pragma GCC unroll 8
    for (int r = 0; r < rows; r++) {
        const float *row = base + r * rs;
        const bool first = r < KH, second = NR == 2 && r >= SH && r - SH < KH;
#pragma GCC unroll 8
        for (int j = 0; j < KW; j++) {
            const float *s = row + off[j];
            __m256 xv[BLOCK];
#pragma GCC unroll 4
            for (int v = 0; v < V; v++) xv[v] = _mm256_loadu_ps(s + v * VEC);
            if (first) {
                __m256 wv = _mm256_broadcast_ss(w + r * KW + j);
#pragma GCC unroll 4
                for (int v = 0; v < V; v++) acc0[v] = _mm256_fmadd_ps(wv, xv[v], acc0[v]);
            }
            if (second) {
                __m256 wv = _mm256_broadcast_ss(w + (r - SH) * KW + j);
#pragma GCC unroll 4
                for (int v = 0; v < V; v++) acc1[v] = _mm256_fmadd_ps(wv, xv[v], acc1[v]);
            }
        }
    }
#pragma GCC unroll 4
    for (int v = 0; v < V; v++) {
        bool last = masked && v == V - 1;
        store(o0 + v * VEC, acc0[v], last, mask);
        if (NR == 2) store(o0 + ow + v * VEC, acc1[v], last, mask);
    }
}

/* One or two output rows starting at row y, every column. */
static inline __attribute__((always_inline)) void
rows_all(float *out, const float *plane, const float *w, __m256 bias, const int64_t *off,
         const Conv2dGeom *g, const DwPlane *p, int64_t y, const int KH, const int KW, const int SH,
         const int NR, __m256i mask) {
    int64_t nvec = (g->ow + VEC - 1) / VEC, rem = g->ow % VEC, rs = p->row_stride;
    const float *base = plane + y * SH * rs;
    float *o = out + y * g->ow;
    int64_t v = 0;
    for (; v + BLOCK <= nvec; v += BLOCK)
        rows_block(o + v * VEC, g->ow, base + v * VEC, rs, w, bias, off, KH, KW, SH, NR, BLOCK,
                   rem && v + BLOCK == nvec, mask);
    for (; v < nvec; v++)
        rows_block(o + v * VEC, g->ow, base + v * VEC, rs, w, bias, off, KH, KW, SH, NR, 1,
                   rem && v + 1 == nvec, mask);
}

#define DEFINE_PLANE(name, KH, KW, SH)                                                             \
    static void name(float *out, const float *plane, const float *w, __m256 bias,                  \
                     const int64_t *off, const Conv2dGeom *g, const DwPlane *p, __m256i mask) {    \
        int64_t y = 0;                                                                             \
        for (; y + 2 <= g->oh; y += 2)                                                             \
            rows_all(out, plane, w, bias, off, g, p, y, KH, KW, SH, 2, mask);                      \
        if (y < g->oh) rows_all(out, plane, w, bias, off, g, p, y, KH, KW, SH, 1, mask);           \
    }

DEFINE_PLANE(plane_3x3_s1, 3, 3, 1)
DEFINE_PLANE(plane_3x3_s2, 3, 3, 2)
DEFINE_PLANE(plane_5x5_s1, 5, 5, 1)
DEFINE_PLANE(plane_5x5_s2, 5, 5, 2)

/* Any kernel, stride and dilation: one output row at a time, run-time sizes. */
static void plane_any(float *out, const float *plane, const float *w, __m256 bias,
                      const int64_t *off, const Conv2dGeom *g, const DwPlane *p, __m256i mask) {
    int64_t nvec = (g->ow + VEC - 1) / VEC, rem = g->ow % VEC;
    for (int64_t y = 0; y < g->oh; y++) {
        float *o = out + y * g->ow;
        for (int64_t v = 0; v < nvec; v++) {
            __m256 a = bias;
            for (int64_t i = 0; i < g->kh; i++) {
                const float *row = plane + (y * g->sh + i * g->dh) * p->row_stride + v * VEC;
                for (int64_t j = 0; j < g->kw; j++)
                    a = _mm256_fmadd_ps(_mm256_broadcast_ss(w + i * g->kw + j),
                                        _mm256_loadu_ps(row + off[j]), a);
            }
            store(o + v * VEC, a, rem && v + 1 == nvec, mask);
        }
    }
}

void conv2d_depthwise_plane_avx2(float *out, const float *plane, const float *w, float b,
                                 const Conv2dGeom *g, const DwPlane *p) {
    int64_t off[g->kw];
    for (int64_t j = 0; j < g->kw; j++) off[j] = dw_tap_offset(g, p, j);
    __m256 bias = _mm256_set1_ps(b);
    __m256i mask = tail_mask(g->ow % VEC);
    bool unit_dilation = g->dh == 1 && g->dw == 1;
    if (unit_dilation && g->kh == 3 && g->kw == 3 && g->sh == 1)
        plane_3x3_s1(out, plane, w, bias, off, g, p, mask);
    else if (unit_dilation && g->kh == 3 && g->kw == 3 && g->sh == 2)
        plane_3x3_s2(out, plane, w, bias, off, g, p, mask);
    else if (unit_dilation && g->kh == 5 && g->kw == 5 && g->sh == 1)
        plane_5x5_s1(out, plane, w, bias, off, g, p, mask);
    else if (unit_dilation && g->kh == 5 && g->kw == 5 && g->sh == 2)
        plane_5x5_s2(out, plane, w, bias, off, g, p, mask);
    else
        plane_any(out, plane, w, bias, off, g, p, mask);
}

/* Stride-2 fill: padded column pc = ix + pl lands in phase pc % 2 at pc / 2, so
 * the even input columns go to one phase and the odd ones to the other, shifted
 * by the padding; 16 inputs are split per step with two shuffles. */
static void fill_row_s2(float *dst_row, const float *src, const Conv2dGeom *g, const DwPlane *p) {
    int64_t len = p->phase_len;
    /* input column 2m goes to phase (pl % 2) at (2m + pl) / 2 = m + pl / 2 (+1 when
     * pl is odd, through the rounding); input 2m + 1 to the other phase. */
    int par = g->pl % 2;
    float *even_dst = dst_row + par * len, *odd_dst = dst_row + (1 - par) * len;
    int64_t even_at = g->pl / 2, odd_at = (g->pl + 1) / 2; /* (2m + pl)/2, (2m + 1 + pl)/2 at m=0 */
    memset(dst_row, 0, sizeof(float) * (size_t)(2 * len));
    int64_t n_even = (g->w + 1) / 2, n_odd = g->w / 2;
    /* Keep only the columns that fit the buffer (the rest is never read). */
    if (even_at + n_even > len) n_even = len > even_at ? len - even_at : 0;
    if (odd_at + n_odd > len) n_odd = len > odd_at ? len - odd_at : 0;
    float *e = even_dst + even_at, *o = odd_dst + odd_at;
    int64_t m = 0;
    int64_t n_both = n_even < n_odd ? n_even : n_odd;
    for (; m + VEC <= n_both; m += VEC) {
        __m256 a = _mm256_loadu_ps(src + 2 * m), b = _mm256_loadu_ps(src + 2 * m + VEC);
        /* shuffle picks lanes (0,2 | 0,2) of a, b per 128-bit half; permute restores order */
        __m256 ev = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
        __m256 od = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
        ev = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(ev), _MM_SHUFFLE(3, 1, 2, 0)));
        od = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(od), _MM_SHUFFLE(3, 1, 2, 0)));
        _mm256_storeu_ps(e + m, ev);
        _mm256_storeu_ps(o + m, od);
    }
    for (int64_t k = m; k < n_even; k++) e[k] = src[2 * k];
    for (int64_t k = m; k < n_odd; k++) o[k] = src[2 * k + 1];
}

void dw_plane_fill_avx2(float *buf, const float *x, const Conv2dGeom *g, const DwPlane *p) {
    if (g->sw != 2) {
        dw_plane_fill(buf, x, g, p);
        return;
    }
    for (int64_t r = 0; r < p->rows; r++) {
        float *dst_row = buf + r * p->row_stride;
        int64_t iy = r - g->pt;
        if (iy < 0 || iy >= g->h)
            memset(dst_row, 0, sizeof(float) * (size_t)p->row_stride);
        else
            fill_row_s2(dst_row, x + iy * g->w, g, p);
    }
}
