/* AVX2 tile transforms of the Winograd convolution (conv2d_winograd_internal.h).
 * Eight tiles ride in the eight lanes of a vector: their patches are gathered
 * (with zeros outside the input) into a lane-interleaved scratch, then the 1-d
 * transforms run on whole vectors, first down the columns and then along the
 * rows, and the T results of each channel land as 8 consecutive floats of a
 * packed B panel. The inverse transform reads 8 consecutive tiles of M for
 * each point, and scatters the m x m outputs of each lane, clipped at the
 * right and bottom edges.
 *
 * Matrices (Lavin & Gray, "Fast algorithms for convolutional neural networks"):
 *   F(2,3), points 0, 1, -1, inf:
 *     B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  A^T = [1 1 1 0; 0 1 -1 -1]
 *   F(4,3), points 0, 1, -1, 1/2, -2, inf (rather than Lavin's 0, +-1, +-2:
 *   about 3x less float32 rounding error, see conv2d_winograd.c):
 *     B^T = [1 -3/2 -2 3/2 1 0; 0 -1 1/2 5/2 1 0; 0 1 -5/2 1/2 1 0;
 *            0 -2 -1 2 1 0; 0 1/2 -1 -1/2 1 0; 0 1 -3/2 -2 3/2 1]
 *     A^T = [1 1 1 1 1 0; 0 1 -1 1/2 -2 0; 0 1 1 1/4 4 0; 0 1 -1 1/8 -8 1]
 * (G is in conv2d_winograd.c.) */
#include <immintrin.h>
#include <stdalign.h>
#include <string.h>

#include "nn/conv2d_winograd_internal.h"

#define AMAX 6 /* largest alpha */

typedef __m256 vec;

/* r = B^T d for one column of alpha vectors. */
static inline __attribute__((always_inline)) void input_1d(const int alpha, const vec *d, vec *r) {
    if (alpha == 4) {
        r[0] = d[0] - d[2];
        r[1] = d[1] + d[2];
        r[2] = d[2] - d[1];
        r[3] = d[1] - d[3];
    } else {
        const vec half = _mm256_set1_ps(0.5f), one5 = _mm256_set1_ps(1.5f),
                  two = _mm256_set1_ps(2.0f), two5 = _mm256_set1_ps(2.5f);
        vec e = d[4] - d[2], f = d[3] - d[1];
        r[0] = d[0] + d[4] - two * d[2] + one5 * f;
        r[1] = d[4] - d[1] + half * d[2] + two5 * d[3];
        r[2] = d[4] + d[1] - two5 * d[2] + half * d[3];
        r[3] = e + two * f;
        r[4] = e - half * f;
        r[5] = d[1] + d[5] - two * d[3] + one5 * e;
    }
}

/* y = A^T s for alpha vectors s (m results). */
static inline __attribute__((always_inline)) void output_1d(const int alpha, const vec *s, vec *y) {
    if (alpha == 4) {
        y[0] = s[0] + s[1] + s[2];
        y[1] = s[1] - s[2] - s[3];
    } else {
        const vec half = _mm256_set1_ps(0.5f), quarter = _mm256_set1_ps(0.25f),
                  eighth = _mm256_set1_ps(0.125f), two = _mm256_set1_ps(2.0f),
                  four = _mm256_set1_ps(4.0f), eight = _mm256_set1_ps(8.0f);
        vec p12 = s[1] + s[2], m12 = s[1] - s[2];
        y[0] = p12 + s[0] + s[3] + s[4];
        y[1] = m12 + half * s[3] - two * s[4];
        y[2] = p12 + quarter * s[3] + four * s[4];
        y[3] = m12 + eighth * s[3] - eight * s[4] + s[5];
    }
}

/* Lane l of the patch scratch d[a][b][l]: the alpha x alpha input patch of
 * one tile of channel plane `plane`, zeros outside. */
static inline __attribute__((always_inline)) void gather_lane(float (*d)[AMAX][WINO_LANES], int l,
                                                              const int alpha, const float *plane,
                                                              int64_t h, int64_t w, int64_t y0,
                                                              int64_t x0) {
    if (y0 >= 0 && x0 >= 0 && y0 + alpha <= h && x0 + alpha <= w) {
        const float *src = plane + y0 * w + x0;
        for (int a = 0; a < alpha; a++)
            for (int b = 0; b < alpha; b++) d[a][b][l] = src[a * w + b];
        return;
    }
    for (int a = 0; a < alpha; a++) {
        int64_t y = y0 + a;
        for (int b = 0; b < alpha; b++) {
            int64_t xx = x0 + b;
            d[a][b][l] = (y >= 0 && y < h && xx >= 0 && xx < w) ? plane[y * w + xx] : 0.0f;
        }
    }
}

/* Row strips of 8 side-by-side tiles (the common case away from the edges):
 * split_cols gives out[b][l] = p[m*l + b] for b < m from 8*m consecutive
 * floats (a register transpose), join_cols is its inverse. */
/* Loads 8 floats at p + 8k; with `masked`, only offsets 8k + i in [lo, hi)
 * are read and the others are zeros (the row's edges: maskload does not
 * touch masked-off addresses). */
static inline __attribute__((always_inline)) vec load8(const float *p, int k, bool masked,
                                                       __m256i lo, __m256i hi) {
    if (!masked) return _mm256_loadu_ps(p + 8 * k);
    __m256i idx =
        _mm256_add_epi32(_mm256_set1_epi32(8 * k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256i in =
        _mm256_and_si256(_mm256_cmpgt_epi32(idx, _mm256_sub_epi32(lo, _mm256_set1_epi32(1))),
                         _mm256_cmpgt_epi32(hi, idx));
    return _mm256_maskload_ps(p + 8 * k, in);
}

static inline __attribute__((always_inline)) void
split_cols(const int m, const float *p, bool masked, __m256i lo, __m256i hi, vec *out) {
    if (m == 2) {
        vec r0 = load8(p, 0, masked, lo, hi), r1 = load8(p, 1, masked, lo, hi);
        /* 64-bit pairs come out as (0,2),(8,10),(4,6),(12,14): reorder them. */
        vec e = _mm256_shuffle_ps(r0, r1, 0x88), o = _mm256_shuffle_ps(r0, r1, 0xDD);
        out[0] = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), 0xD8));
        out[1] = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), 0xD8));
    } else {
        vec r0 = load8(p, 0, masked, lo, hi), r1 = load8(p, 1, masked, lo, hi);
        vec r2 = load8(p, 2, masked, lo, hi), r3 = load8(p, 3, masked, lo, hi);
        vec a0 = _mm256_permute2f128_ps(r0, r2, 0x20), a1 = _mm256_permute2f128_ps(r0, r2, 0x31);
        vec a2 = _mm256_permute2f128_ps(r1, r3, 0x20), a3 = _mm256_permute2f128_ps(r1, r3, 0x31);
        vec u0 = _mm256_unpacklo_ps(a0, a1), u1 = _mm256_unpackhi_ps(a0, a1);
        vec u2 = _mm256_unpacklo_ps(a2, a3), u3 = _mm256_unpackhi_ps(a2, a3);
        out[0] = _mm256_shuffle_ps(u0, u2, 0x44);
        out[1] = _mm256_shuffle_ps(u0, u2, 0xEE);
        out[2] = _mm256_shuffle_ps(u1, u3, 0x44);
        out[3] = _mm256_shuffle_ps(u1, u3, 0xEE);
    }
}

static inline __attribute__((always_inline)) void join_cols(const int m, const vec *q, vec *out) {
    if (m == 2) {
        vec lo = _mm256_unpacklo_ps(q[0], q[1]), hi = _mm256_unpackhi_ps(q[0], q[1]);
        out[0] = _mm256_permute2f128_ps(lo, hi, 0x20);
        out[1] = _mm256_permute2f128_ps(lo, hi, 0x31);
    } else {
        vec t0 = _mm256_unpacklo_ps(q[0], q[1]), t1 = _mm256_unpackhi_ps(q[0], q[1]);
        vec t2 = _mm256_unpacklo_ps(q[2], q[3]), t3 = _mm256_unpackhi_ps(q[2], q[3]);
        vec u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
        vec u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
        out[0] = _mm256_permute2f128_ps(u0, u1, 0x20);
        out[1] = _mm256_permute2f128_ps(u2, u3, 0x20);
        out[2] = _mm256_permute2f128_ps(u0, u1, 0x31);
        out[3] = _mm256_permute2f128_ps(u2, u3, 0x31);
    }
}

/* True when lanes 0..7 are 8 side-by-side tiles (origins m apart) of one
 * tile row of one image. */
static inline bool side_by_side(const int64_t *img, const int64_t *row, const int64_t *col,
                                int live, int m) {
    return live == WINO_LANES && img[0] == img[WINO_LANES - 1] && row[0] == row[WINO_LANES - 1] &&
           col[WINO_LANES - 1] == col[0] + (WINO_LANES - 1) * m;
}

/* The 8 tiles of one vector: origins (input or output pixel) and layout. */
typedef struct LaneGroup {
    int64_t img[WINO_LANES], row[WINO_LANES], col[WINO_LANES];
    int live;          /* lanes 0 .. live-1 hold tiles */
    bool strip, inner; /* side by side (side_by_side); and away from the edges */
} LaneGroup;

static inline __attribute__((always_inline)) void input_block(float *v, const float *x,
                                                              const WinoTiles *wt, int64_t j0,
                                                              int64_t total, int64_t c0, int64_t c1,
                                                              const int alpha) {
    const int m = alpha - 2;
    int64_t nb = wt->nb, plane = wt->h * wt->w, per_image = wt->tiles_y * wt->tiles_x;
    int64_t v_t = wt->v_stride; /* floats per transform point */
    int64_t span = (WINO_LANES + 1) * m;
    /* Tile origins of the 8 lanes of every group (image, input row, input
     * column). Channels outermost: each plane is then read along its rows. */
    LaneGroup groups[WINO_MAX_TILES / WINO_LANES];
    int n_groups = (int)(nb / WINO_LANES);
    for (int gi = 0; gi < n_groups; gi++) {
        LaneGroup *G = &groups[gi];
        G->live = 0;
        for (int l = 0; l < WINO_LANES; l++) {
            int64_t j = j0 + gi * WINO_LANES + l;
            G->live += j < total;
            int64_t jj = j < total ? j : 0, in = jj % per_image;
            G->img[l] = jj / per_image;
            G->row[l] = (in / wt->tiles_x) * m - wt->pt;
            G->col[l] = (in % wt->tiles_x) * m - wt->pl;
        }
        /* Lanes that are 8 side-by-side tiles of one tile row take the
         * register transposes (split_cols reads 8m floats from column x0 and
         * from x0 + m; masked loads at the left and right edges). */
        G->strip = side_by_side(G->img, G->row, G->col, G->live, m);
        G->inner = G->strip && G->col[0] >= 0 && G->col[0] + span <= wt->w;
    }
    for (int64_t c = c0; c < c1; c++) {
        for (int gi = 0; gi < n_groups; gi++) {
            const LaneGroup *G = &groups[gi];
            const int64_t *img = G->img, *y0 = G->row, *x0 = G->col;
            bool strip = G->strip, inner = G->inner;
            int64_t g = (int64_t)gi * WINO_LANES;
            float *vg = v + (g / WINO_PANEL) * wt->c_in * WINO_PANEL + g % WINO_PANEL;
            alignas(32) float d[AMAX][AMAX][WINO_LANES];
            const float *pc = x + (img[0] * wt->c_in + c) * plane;
            for (int a = 0; strip && a < alpha; a++) {
                vec cols[2 * (AMAX - 2)];
                int64_t y = y0[0] + a;
                if (y < 0 || y >= wt->h) {
                    for (int b = 0; b < alpha; b++) cols[b] = _mm256_setzero_ps();
                } else {
                    /* Columns x0 .. x0 + span of the row; outside [0, w) they
                     * are zeros (masked loads at the edges). */
                    const float *src = pc + y * wt->w + x0[0];
                    __m256i lo = _mm256_set1_epi32((int)(x0[0] < 0 ? -x0[0] : 0));
                    __m256i hi =
                        _mm256_set1_epi32((int)(wt->w - x0[0] < span ? wt->w - x0[0] : span));
                    if (inner) {
                        split_cols(m, src, false, lo, hi, cols);
                        split_cols(m, src + m, false, lo, hi, cols + m);
                    } else {
                        split_cols(m, src, true, lo, hi, cols);
                        __m256i shift = _mm256_set1_epi32(m);
                        split_cols(m, src + m, true, _mm256_sub_epi32(lo, shift),
                                   _mm256_sub_epi32(hi, shift), cols + m);
                    }
                }
                for (int b = 0; b < alpha; b++) _mm256_store_ps(d[a][b], cols[b]);
            }
            for (int l = 0; !strip && l < WINO_LANES; l++) {
                if (l >= G->live) {
                    for (int a = 0; a < alpha; a++)
                        for (int b = 0; b < alpha; b++) d[a][b][l] = 0.0f;
                    continue;
                }
                gather_lane(d, l, alpha, x + (img[l] * wt->c_in + c) * plane, wt->h, wt->w, y0[l],
                            x0[l]);
            }
            vec col[AMAX], tmp[AMAX][AMAX], row[AMAX], r[AMAX];
            for (int b = 0; b < alpha; b++) {
                for (int a = 0; a < alpha; a++) col[a] = _mm256_load_ps(d[a][b]);
                input_1d(alpha, col, r);
                for (int i = 0; i < alpha; i++) tmp[i][b] = r[i];
            }
            float *vc = vg + c * WINO_PANEL;
            for (int i = 0; i < alpha; i++) {
                for (int b = 0; b < alpha; b++) row[b] = tmp[i][b];
                input_1d(alpha, row, r);
                for (int k = 0; k < alpha; k++)
                    _mm256_storeu_ps(vc + (int64_t)(i * alpha + k) * v_t, r[k]);
            }
        }
    }
}

void wino_input_avx2(float *v, const float *x, const WinoTiles *wt, int64_t j0, int64_t total,
                     int64_t c0, int64_t c1) {
    if (wt->alpha == 4)
        input_block(v, x, wt, j0, total, c0, c1, 4);
    else
        input_block(v, x, wt, j0, total, c0, c1, 6);
}

static inline __attribute__((always_inline)) void
output_block(float *out, const float *mbuf, const float *bias, const float *residual, bool relu,
             const WinoTiles *wt, int64_t j0, int64_t total, int64_t o0, int64_t o1,
             const int alpha) {
    enum { MMAX = AMAX - 2 };
    const int m = alpha - 2;
    int64_t nb = wt->nb, oplane = wt->oh * wt->ow, per_image = wt->tiles_y * wt->tiles_x;
    int64_t m_t = wt->m_stride;
    /* Output tile origins per group; channels outermost, so that each plane
     * is written along its rows. */
    LaneGroup groups[WINO_MAX_TILES / WINO_LANES];
    int n_groups = 0;
    for (int64_t g = 0; g < nb && j0 + g < total; g += WINO_LANES, n_groups++) {
        LaneGroup *G = &groups[n_groups];
        G->live = 0;
        for (int l = 0; l < WINO_LANES && j0 + g + l < total; l++, G->live++) {
            int64_t j = j0 + g + l, in = j % per_image;
            G->img[l] = j / per_image;
            G->row[l] = (in / wt->tiles_x) * m;
            G->col[l] = (in % wt->tiles_x) * m;
        }
        G->strip = side_by_side(G->img, G->row, G->col, G->live, m) && G->row[0] + m <= wt->oh &&
                   G->col[0] + WINO_LANES * m <= wt->ow;
    }
    for (int64_t o = o0; o < o1; o++) {
        for (int gi = 0; gi < n_groups; gi++) {
            const LaneGroup *G = &groups[gi];
            const int64_t *img = G->img, *oy = G->row, *ox = G->col;
            int lanes = G->live;
            bool strip = G->strip;
            int64_t g = (int64_t)gi * WINO_LANES;
            const float *mo = mbuf + o * nb + g;
            vec s[AMAX], tmp[MMAX][AMAX], r[MMAX];
            for (int j = 0; j < alpha; j++) {
                for (int i = 0; i < alpha; i++)
                    s[i] = _mm256_loadu_ps(mo + (int64_t)(i * alpha + j) * m_t);
                output_1d(alpha, s, r);
                for (int k = 0; k < m; k++) tmp[k][j] = r[k];
            }
            vec vb = _mm256_set1_ps(bias ? bias[o] : 0.0f);
            alignas(32) float y[MMAX][MMAX][WINO_LANES];
            for (int k = 0; k < m; k++) {
                output_1d(alpha, tmp[k], r);
                for (int q = 0; q < m; q++) _mm256_store_ps(y[k][q], r[q] + vb);
            }
            if (strip) {
                float *dst = out + (img[0] * wt->c_out + o) * oplane + oy[0] * wt->ow + ox[0];
                const float *res = residual ? residual + (dst - out) : NULL;
                const vec zero = _mm256_setzero_ps();
                for (int k = 0; k < m; k++) {
                    vec q[MMAX], row[MMAX];
                    for (int i = 0; i < m; i++) q[i] = _mm256_load_ps(y[k][i]);
                    join_cols(m, q, row);
                    for (int i = 0; i < m; i++) {
                        vec val = row[i];
                        if (res) val = val + _mm256_loadu_ps(res + k * wt->ow + i * WINO_LANES);
                        if (relu) val = _mm256_max_ps(val, zero);
                        _mm256_storeu_ps(dst + k * wt->ow + i * WINO_LANES, val);
                    }
                }
                continue;
            }
            for (int l = 0; l < lanes; l++) {
                int64_t base = (img[l] * wt->c_out + o) * oplane + oy[l] * wt->ow + ox[l];
                float *dst = out + base;
                const float *res = residual ? residual + base : NULL;
                int rows = oy[l] + m <= wt->oh ? m : (int)(wt->oh - oy[l]);
                int cols = ox[l] + m <= wt->ow ? m : (int)(wt->ow - ox[l]);
                for (int k = 0; k < rows; k++)
                    for (int q = 0; q < cols; q++) {
                        float val = y[k][q][l];
                        if (res) val += res[k * wt->ow + q];
                        if (relu) val = val > 0.0f ? val : 0.0f;
                        dst[k * wt->ow + q] = val;
                    }
            }
        }
    }
}

void wino_output_avx2(float *out, const float *mbuf, const float *bias, const float *residual,
                      bool relu, const WinoTiles *wt, int64_t j0, int64_t total, int64_t o0,
                      int64_t o1) {
    if (wt->alpha == 4)
        output_block(out, mbuf, bias, residual, relu, wt, j0, total, o0, o1, 4);
    else
        output_block(out, mbuf, bias, residual, relu, wt, j0, total, o0, o1, 6);
}
