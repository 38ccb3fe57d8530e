/* Implicit-GEMM forward of an ungrouped convolution (any kernel, stride,
 * dilation and padding): the product W (Cout x K) @ im2col(x) (K x OH*OW) of
 * conv2d_im2col_forward, without the column matrix. Each image is first laid
 * out zero-padded with every row split into stride phases (the DwPlane of the
 * depthwise kernels), so that the inputs one kernel tap reads for consecutive
 * outputs of a row are consecutive in memory. GEMM's B micro-panels (16
 * or 48 outputs x a K block) are then copied straight from that layout, and
 * gemm's AVX2 micro-kernel (or the AVX-512 one of conv2d_implicit_avx512.c)
 * multiplies them with the packed weights.
 *
 * Why: the column matrix of a stride-2 layer (the 7x7 stem, 3x3/2 and 1x1/2 of
 * the ResNets) is written and re-read through memory and built by strided
 * gathers; here threads own blocks of outputs and need no barrier (the split
 * does not depend on the thread count, so neither do results). The K blocking
 * equals gemm()'s: the AVX2 path sums in the im2col path's order; the AVX-512
 * tile starts from the bias instead of adding it last (a rounding-level
 * difference). A ReLU can be applied to each block while it is in cache. */
#include <string.h>

#include <omp.h>

#include "nn/conv2d_implicit.h"
#include "tensor/gemm_internal.h"
#include "tensor/storage_pool.h"

#define IMPLICIT_KC            512 /* K blocks of at most this many rows, as gemm() */
#define IMPLICIT_ITEM_PIX      128 /* at most about this many outputs per work item */
#define IMPLICIT_MIN_ITEMS     8   /* work items per image, for the threads to share */
#define IMPLICIT_PARALLEL_MACS ((int64_t)1 << 21)

bool conv2d_implicit_supported(const Conv2dGeom *g) {
    return g->groups == 1 && hg_cpu_has_avx2_fma();
}

typedef struct ImplicitJob {
    const Conv2dGeom *g;
    DwPlane plane;
    const float *planes; /* c_in planes of plane.rows * plane.row_stride floats */
    const int64_t *tap;  /* tap[r]: offset of K row r = (c, i, j) in planes */
    const float *apack;  /* weights: K block p0 at m_pad * p0, MR-row panels of kc */
    int64_t m_pad, k, kc_max;
    int mr, nr; /* tile: output channels x outputs (6 x 16 AVX2, 8 x 48 AVX-512) */
    bool avx512, relu;
} ImplicitJob;

/* Width of a packed B panel holding nr valid outputs. */
static int panel_width(const ImplicitJob *jb, int nr) {
    return jb->avx512 ? IMPLICIT512_NR : gemm_b_panel_width(nr);
}

/* d[r][0:16] = src[tap[r] + 0:16] for r < kc. A 16-float struct copy per row:
 * a loop would become a memcpy call per row. */
typedef struct Floats16 {
    float v[GEMM_NR];
} Floats16;

static void pack_rows_16(float *restrict d, const float *src, const int64_t *tap, int64_t kc) {
    for (int64_t r = 0; r < kc; r++) {
        Floats16 row;
        memcpy(&row, src + tap[r], sizeof row);
        memcpy(d + r * GEMM_NR, &row, sizeof row);
    }
}

/* One B panel: outputs [pix, pix + nr) (flattened y*ow + x) x K rows
 * [r0, r0 + kc), stored [k][panel_width], zero past nr. */
static void pack_panel(float *restrict d, const ImplicitJob *jb, int64_t pix, int nr, int64_t r0,
                       int64_t kc) {
    const Conv2dGeom *g = jb->g;
    int w = panel_width(jb, nr);
    int64_t seg_off[IMPLICIT512_NR];
    int seg_len[IMPLICIT512_NR], seg_dst[IMPLICIT512_NR], nseg = 0;
    for (int t = 0; t < nr;) { /* the panel's runs of outputs within one output row */
        int64_t y = (pix + t) / g->ow, x = (pix + t) % g->ow;
        int len = (int)(g->ow - x < nr - t ? g->ow - x : nr - t);
        seg_off[nseg] = y * g->sh * jb->plane.row_stride + x;
        seg_len[nseg] = len;
        seg_dst[nseg++] = t;
        t += len;
    }
    const int64_t *tap = jb->tap + r0;
    const float *planes = jb->planes;
    if (jb->avx512) {
        conv2d_implicit_pack_avx512(d, planes, tap, kc, nseg, seg_off, seg_len, seg_dst);
        return;
    }
    if (nseg == 1 && nr == GEMM_NR) { /* the common case: 16 outputs of one output row */
        pack_rows_16(d, planes + seg_off[0], tap, kc);
        return;
    }
    for (int64_t r = 0; r < kc; r++) {
        float *dr = d + r * w;
        for (int q = 0; q < nseg; q++) {
            const float *s = planes + tap[r] + seg_off[q];
            for (int t = 0; t < seg_len[q]; t++) dr[seg_dst[q] + t] = s[t];
        }
        for (int t = nr; t < w; t++) dr[t] = 0.0f;
    }
}

/* Output channels [i0, i0 + IMPLICIT512_MR) x K block [p0, p0 + kc) of w
 * (m x k) as one panel d[kc][IMPLICIT512_MR], rows past m zero. */
static void pack_a_512(float *restrict d, const float *w, int64_t m, int64_t k, int64_t i0,
                       int64_t p0, int64_t kc) {
    for (int r = 0; r < IMPLICIT512_MR; r++) {
        const float *src = w + (i0 + r) * k + p0;
        if (i0 + r < m)
            for (int64_t p = 0; p < kc; p++) d[p * IMPLICIT512_MR + r] = src[p];
        else
            for (int64_t p = 0; p < kc; p++) d[p * IMPLICIT512_MR + r] = 0.0f;
    }
}

/* Packs the weights: K block p0 at apack + m_pad * p0, its MR-row panel q
 * at + q * MR * kc. Threads split the panels (a large layer has megabytes). */
static void pack_weights(float *apack, const float *w, const ImplicitJob *jb, bool parallel) {
    int64_t m = jb->g->c_out, panels = jb->m_pad / jb->mr;
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t q = 0; q < panels; q++)
        for (int64_t p0 = 0; p0 < jb->k; p0 += jb->kc_max) {
            int64_t kc = jb->k - p0 < jb->kc_max ? jb->k - p0 : jb->kc_max;
            float *d = apack + jb->m_pad * p0 + q * jb->mr * kc;
            int64_t i0 = q * jb->mr;
            if (jb->avx512)
                pack_a_512(d, w, m, jb->k, i0, p0, kc);
            else
                gemm_pack_a_avx2(false, w, jb->k, i0, m - i0 < jb->mr ? m - i0 : jb->mr, p0, kc, d);
        }
}

/* out[:, outputs [pix0, pix1)] of one image. */
static void run_block(float *out, const float *b, const ImplicitJob *jb, int64_t pix0, int64_t pix1,
                      float *bpack) {
    const Conv2dGeom *g = jb->g;
    int64_t ohw = g->oh * g->ow, m = g->c_out;
    if (b && !jb->avx512) /* gemm's kernel adds to C: start from the bias */
        for (int64_t o = 0; o < m; o++)
            for (int64_t p = pix0; p < pix1; p++) out[o * ohw + p] = b[o];
    for (int64_t p0 = 0; p0 < jb->k; p0 += jb->kc_max) {
        int64_t kc = jb->k - p0 < jb->kc_max ? jb->k - p0 : jb->kc_max;
        int64_t np = 0;
        for (int64_t pix = pix0; pix < pix1; pix += jb->nr, np++) {
            int nr = (int)(pix1 - pix < jb->nr ? pix1 - pix : jb->nr);
            pack_panel(bpack + np * kc * jb->nr, jb, pix, nr, p0, kc);
        }
        const float *a = jb->apack + jb->m_pad * p0;
        np = 0;
        for (int64_t pix = pix0; pix < pix1; pix += jb->nr, np++) {
            int nr = (int)(pix1 - pix < jb->nr ? pix1 - pix : jb->nr);
            const float *bp = bpack + np * kc * jb->nr;
            for (int64_t ip = 0; ip < m; ip += jb->mr) {
                int mr = (int)(m - ip < jb->mr ? m - ip : jb->mr);
                float *c = out + ip * ohw + pix;
                if (jb->avx512)
                    conv2d_implicit_tile_avx512(kc, a + ip * kc, bp, c, ohw, b ? b + ip : NULL,
                                                p0 > 0, jb->relu && p0 + kc == jb->k, mr, nr);
                else
                    gemm_microkernel_avx2(kc, a + ip * kc, bp, c, ohw, 1.0f,
                                          p0 == 0 && !b ? 0.0f : 1.0f, mr, nr);
            }
        }
    }
    if (jb->relu && !jb->avx512) /* while the block is still in cache */
        for (int64_t o = 0; o < m; o++) {
            float *r = out + o * ohw;
            for (int64_t p = pix0; p < pix1; p++) r[p] = r[p] > 0.0f ? r[p] : 0.0f;
        }
}

hg_status conv2d_implicit_forward(float *out, const float *x, const float *w, const float *b,
                                  const Conv2dGeom *g, bool relu, bool avx512) {
    int64_t kk = g->kh * g->kw, k = g->c_in * kk, m = g->c_out, ohw = g->oh * g->ow;
    int64_t kblocks = (k + IMPLICIT_KC - 1) / IMPLICIT_KC;
    ImplicitJob jb = {.g = g, .plane = dw_plane_layout(g), .k = k, .avx512 = avx512, .relu = relu};
    jb.mr = avx512 ? IMPLICIT512_MR : GEMM_MR;
    jb.nr = avx512 ? IMPLICIT512_NR : GEMM_NR;
    jb.kc_max = (k + kblocks - 1) / kblocks;
    jb.m_pad = (m + jb.mr - 1) / jb.mr * jb.mr;
    int64_t plane_floats = jb.plane.rows * jb.plane.row_stride;
    bool parallel = m * k * ohw > IMPLICIT_PARALLEL_MACS;
    int threads = parallel ? omp_get_max_threads() : 1;
    /* Work items of whole panels, at least about IMPLICIT_MIN_ITEMS of them.
     * Items do not depend on the thread count, and neither do results. */
    int64_t panels = (ohw + jb.nr - 1) / jb.nr;
    int64_t per_item = (panels + IMPLICIT_MIN_ITEMS - 1) / IMPLICIT_MIN_ITEMS;
    int64_t max_per_item = (IMPLICIT_ITEM_PIX + jb.nr - 1) / jb.nr;
    if (per_item > max_per_item) per_item = max_per_item;
    if (per_item < 1) per_item = 1;
    int64_t item_pix = per_item * jb.nr, items = (ohw + item_pix - 1) / item_pix;
    int64_t bfloats = item_pix * jb.kc_max;

    /* Scratch from the storage pool: a large layer's planes and packed
     * weights are megabytes, which fresh pages would fault in on every call.
     * Separate blocks, so that sanitizers see an overrun of each. */
    size_t bytes[4] = {sizeof(float) * (size_t)(g->c_in * plane_floats),
                       sizeof(float) * (size_t)(jb.m_pad * k),
                       sizeof(float) * (size_t)(bfloats * threads), sizeof(int64_t) * (size_t)k};
    void *scratch[4];
    bool ok = true;
    for (int i = 0; i < 4; i++) ok &= (scratch[i] = storage_pool_alloc(bytes[i])) != NULL;
    float *planes = scratch[0], *apack = scratch[1], *bpack = scratch[2];
    int64_t *tap = scratch[3];
    if (!ok) {
        for (int i = 0; i < 4; i++) storage_pool_free(scratch[i], bytes[i]);
        return hg_fail(HG_ERR_NOMEM, "conv2d: no memory for the implicit-GEMM buffers");
    }
    for (int64_t r = 0; r < k; r++) {
        int64_t c = r / kk, i = (r / g->kw) % g->kh, j = r % g->kw;
        tap[r] =
            c * plane_floats + i * g->dh * jb.plane.row_stride + dw_tap_offset(g, &jb.plane, j);
    }
    pack_weights(apack, w, &jb, parallel);
    jb.planes = planes;
    jb.apack = apack;
    jb.tap = tap;
    for (int64_t n = 0; n < g->n; n++) {
        const float *xn = x + n * g->c_in * g->h * g->w;
        float *on = out + n * m * ohw;
#pragma omp parallel num_threads(threads) if (parallel)
        {
#pragma omp for schedule(static)
            for (int64_t c = 0; c < g->c_in; c++) {
                if (avx512)
                    dw_plane_fill_avx512(planes + c * plane_floats, xn + c * g->h * g->w, g,
                                         &jb.plane);
                else
                    dw_plane_fill_avx2(planes + c * plane_floats, xn + c * g->h * g->w, g,
                                       &jb.plane);
            }
            float *mine = bpack + bfloats * omp_get_thread_num();
#pragma omp for schedule(static)
            for (int64_t it = 0; it < items; it++) {
                int64_t pix0 = it * item_pix, pix1 = pix0 + item_pix < ohw ? pix0 + item_pix : ohw;
                run_block(on, b, &jb, pix0, pix1, mine);
            }
        }
    }
    for (int i = 0; i < 4; i++) storage_pool_free(scratch[i], bytes[i]);
    return HG_OK;
}
