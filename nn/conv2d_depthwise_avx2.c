/* AVX2/FMA forward of one depthwise plane (see conv2d_depthwise.c for the
 * layout and the formula). Blocks of four 8-float output vectors of one output
 * row stay in registers while every tap adds w[i,j] * (8 consecutive inputs of
 * the phase-split padded row), so each tap costs one load and one FMA per
 * vector. The 3x3 and 5x5 kernels get unrolled copies of the same loop. */
#include <immintrin.h>

#include "nn/conv2d_kernels.h"

#define VEC 8
#define BLOCK 4 /* output vectors held in registers */

static inline __m256i tail_mask(int64_t rem) {
    const int32_t lanes[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    return _mm256_loadu_si256((const __m256i *)(lanes + 8 - rem));
}

/* One output row y. kh/kw are compile-time constants in the unrolled callers. */
static inline __attribute__((always_inline)) void
row_forward(float *o, const float *plane, const float *w, __m256 bias, const int64_t *off,
            int64_t kh, int64_t kw, int64_t row0, int64_t dh_stride, int64_t ow, __m256i mask) {
    int64_t nvec = (ow + VEC - 1) / VEC, rem = ow % VEC;
    int64_t v = 0;
    for (; v + BLOCK <= nvec; v += BLOCK) {
        __m256 a0 = bias, a1 = bias, a2 = bias, a3 = bias;
        for (int64_t i = 0; i < kh; i++) {
            const float *row = plane + row0 + i * dh_stride + v * VEC;
            for (int64_t j = 0; j < kw; j++) {
                const float *s = row + off[j];
                __m256 wv = _mm256_broadcast_ss(w + i * kw + j);
                a0 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(s), a0);
                a1 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(s + VEC), a1);
                a2 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(s + 2 * VEC), a2);
                a3 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(s + 3 * VEC), a3);
            }
        }
        float *d = o + v * VEC;
        _mm256_storeu_ps(d, a0);
        _mm256_storeu_ps(d + VEC, a1);
        _mm256_storeu_ps(d + 2 * VEC, a2);
        if (rem && v + BLOCK == nvec)
            _mm256_maskstore_ps(d + 3 * VEC, mask, a3);
        else
            _mm256_storeu_ps(d + 3 * VEC, a3);
    }
    for (; v < nvec; v++) {
        __m256 a0 = bias;
        for (int64_t i = 0; i < kh; i++) {
            const float *row = plane + row0 + i * dh_stride + v * VEC;
            for (int64_t j = 0; j < kw; j++)
                a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(w + i * kw + j),
                                     _mm256_loadu_ps(row + off[j]), a0);
        }
        if (rem && v + 1 == nvec)
            _mm256_maskstore_ps(o + v * VEC, mask, a0);
        else
            _mm256_storeu_ps(o + v * VEC, a0);
    }
}

static void plane_3x3(float *out, const float *plane, const float *w, __m256 bias,
                      const int64_t *off, const Conv2dGeom *g, const DwPlane *p, __m256i mask) {
    for (int64_t y = 0; y < g->oh; y++)
        row_forward(out + y * g->ow, plane, w, bias, off, 3, 3, y * g->sh * p->row_stride,
                    g->dh * p->row_stride, g->ow, mask);
}

static void plane_5x5(float *out, const float *plane, const float *w, __m256 bias,
                      const int64_t *off, const Conv2dGeom *g, const DwPlane *p, __m256i mask) {
    for (int64_t y = 0; y < g->oh; y++)
        row_forward(out + y * g->ow, plane, w, bias, off, 5, 5, y * g->sh * p->row_stride,
                    g->dh * p->row_stride, g->ow, mask);
}

static void plane_any(float *out, const float *plane, const float *w, __m256 bias,
                      const int64_t *off, const Conv2dGeom *g, const DwPlane *p, __m256i mask) {
    for (int64_t y = 0; y < g->oh; y++)
        row_forward(out + y * g->ow, plane, w, bias, off, g->kh, g->kw, y * g->sh * p->row_stride,
                    g->dh * p->row_stride, g->ow, mask);
}

void conv2d_depthwise_plane_avx2(float *out, const float *plane, const float *w, float b,
                                 const Conv2dGeom *g, const DwPlane *p) {
    int64_t off[g->kw];
    for (int64_t j = 0; j < g->kw; j++) off[j] = dw_tap_offset(g, p, j);
    __m256 bias = _mm256_set1_ps(b);
    __m256i mask = tail_mask(g->ow % VEC);
    if (g->kh == 3 && g->kw == 3)
        plane_3x3(out, plane, w, bias, off, g, p, mask);
    else if (g->kh == 5 && g->kw == 5)
        plane_5x5(out, plane, w, bias, off, g, p, mask);
    else
        plane_any(out, plane, w, bias, off, g, p, mask);
}
