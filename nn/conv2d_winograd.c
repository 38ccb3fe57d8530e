/* Winograd F(m x m, 3 x 3) convolution: filter transform, blocking, threads
 * and the batched GEMMs. The tile transforms are in conv2d_winograd_avx2.c,
 * the layouts in conv2d_winograd_internal.h.
 *
 * Tile size and accuracy. F(4,3) needs 4x fewer products than the direct
 * convolution and F(2,3) 2.25x, but F(4,3)'s larger transform entries
 * amplify float rounding. With Lavin's points (0, +-1, +-2) the error on
 * the resnet layers (unit-variance inputs, He-scaled weights; largest error
 * relative to max |out|, against a double-precision direct convolution) was
 * 7e-6 (64 channels) to 1.55e-5 (512 channels, 16x16) -- over the 1e-5
 * budget. The points 0, 1, -1, 1/2, -2 (conv2d_winograd_avx2.c; the best of
 * four point sets simulated in float32) bring it to 2.8e-6 .. 7.2e-6 on the
 * same layers (64..512 channels, 16..64 pixels square), against 5e-7 ..
 * 1.2e-6 for F(2,3) and 4e-7 .. 7e-7 for im2col + GEMM. Through the whole
 * wide_resnet50_2 (make parity) the layer3 error against float64 PyTorch
 * goes from 2.3e-5 (im2col) to 4.8e-5, within the 1e-4 bound. So F(4,3) is used
 * wherever it needs fewer products: conv2d_winograd_choose_tile counts the
 * products of both tile sizes with the tiles rounded up to whole 16-tile
 * GEMM panels, which picks F(2,3) only on small maps (8x8: 4 F(4,3) tiles
 * would fill 4 of 16 lanes). Its filter is 4x the weights (F(2,3): 1.8x);
 * on 16x16 maps with 512 channels that traffic is the larger cost, yet
 * F(4,3) still measured faster there (4.7 ms against 6.2 ms, one thread).
 *
 * Blocking: tiles are processed in blocks of nb (a multiple of 16) so that a
 * block's V (T x Cin x nb) and M (T x Cout x nb) stay in cache between the
 * transforms and the GEMMs. With many blocks each thread takes whole blocks
 * (no synchronization); with few, all threads share each block phase by
 * phase (input channels, transform points, output channels). */
#include "nn/conv2d_winograd.h"

#include <omp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "nn/conv2d_kernels.h"
#include "nn/conv2d_winograd_internal.h"
#include "tensor/storage_pool.h"

#define KC_MAX       512               /* K block of the micro-kernel loop (B panel in L1) */
#define A_BLOCK      (128 * 1024)      /* floats of U per L2-resident row block */
#define BLOCK_BYTES  (1024 * 1024)     /* V + M of one block per thread */
#define SHARED_BYTES (6 * 1024 * 1024) /* V + M of a block shared by all threads */
#define MAX_BYTES    (8 * 1024 * 1024) /* the largest block budget */

struct WinogradFilter {
    int m, alpha;
    int64_t c_out, c_in, c_out6; /* c_out6: rounded up to whole 6-row panels */
    float *u;                    /* [T][c_out6 / 6][c_in][6], zero rows past c_out */
};

/* G for F(2,3) and F(4,3) (matching the B^T, A^T of conv2d_winograd_avx2.c). */
static const double G2[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
static const double G4[6][3] = {{1, 0, 0},
                                {1.0 / 3, 1.0 / 3, 1.0 / 3},
                                {-1.0 / 3, 1.0 / 3, -1.0 / 3},
                                {-16.0 / 15, -8.0 / 15, -4.0 / 15},
                                {1.0 / 15, -2.0 / 15, 4.0 / 15},
                                {0, 0, 1}};

static bool spec_is_plain(const Conv2dSpec *spec) {
    return spec && spec->stride_h <= 1 && spec->stride_w <= 1 && spec->dilation_h <= 1 &&
           spec->dilation_w <= 1 && spec->groups <= 1;
}

bool conv2d_winograd_supported(const Tensor *w, const Conv2dSpec *spec) {
    return w && w->ndim == 4 && w->shape[2] == 3 && w->shape[3] == 3 && w->shape[0] > 0 &&
           w->shape[1] > 0 && spec_is_plain(spec) && hg_cpu_has_avx2_fma();
}

static atomic_bool g_disabled;

void conv2d_winograd_disable(bool off) {
    atomic_store(&g_disabled, off);
}

static int64_t ceil_div(int64_t a, int64_t b) {
    return (a + b - 1) / b;
}

/* Products per channel pair of F(m,3) on n images of oh x ow outputs, with
 * the tiles rounded up to whole 16-tile GEMM panels (padding lanes cost as
 * much as real ones). */
static int64_t wino_products(int m, int64_t n, int64_t oh, int64_t ow) {
    int64_t tiles = n * ceil_div(oh, m) * ceil_div(ow, m);
    return (int64_t)(m + 2) * (m + 2) * ceil_div(tiles, WINO_PANEL) * WINO_PANEL;
}

int conv2d_winograd_choose_tile(const Tensor *x, const Tensor *w, const Conv2dSpec *spec) {
    if (atomic_load(&g_disabled) || !conv2d_winograd_supported(w, spec) || !x || x->ndim != 4)
        return 0;
    /* Few channels leave the GEMMs too short to pay for the transforms. */
    if (w->shape[0] < 32 || w->shape[1] < 32) return 0;
    int64_t oh, ow;
    if (conv2d_output_size(x->shape[2], x->shape[3], 3, 3, spec, &oh, &ow) != HG_OK) return 0;
    int64_t n = x->shape[0], direct = 9 * n * oh * ow;
    int64_t p2 = wino_products(2, n, oh, ow), p4 = wino_products(4, n, oh, ow);
    int tile = p4 <= p2 ? 4 : 2;
    /* The transforms cost about a quarter of the products saved on top. */
    int64_t best = p4 <= p2 ? p4 : p2;
    return best + best / 4 < direct ? tile : 0;
}

WinogradFilter *conv2d_winograd_filter_new(const Tensor *w, int tile) {
    char sw[96];
    if (!w || w->ndim != 4 || w->shape[2] != 3 || w->shape[3] != 3) {
        hg_fail(HG_ERR_SHAPE, "conv2d_winograd: weight %s must be [out, in, 3, 3]",
                w ? tensor_shape_str(w, sw, sizeof sw) : "NULL");
        return NULL;
    }
    if (tile != 2 && tile != 4) {
        hg_fail(HG_ERR_ARG, "conv2d_winograd: tile %d (2 or 4 supported)", tile);
        return NULL;
    }
    WinogradFilter *f = calloc(1, sizeof *f);
    Tensor *wc = tensor_contiguous(w);
    if (!f || !wc) {
        free(f);
        tensor_free(wc);
        hg_fail(HG_ERR_NOMEM, "conv2d_winograd: out of memory");
        return NULL;
    }
    f->m = tile;
    f->alpha = tile + 2;
    f->c_out = w->shape[0];
    f->c_in = w->shape[1];
    f->c_out6 = (f->c_out + GEMM_MR - 1) / GEMM_MR * GEMM_MR;
    int alpha = f->alpha, T = alpha * alpha;
    size_t floats = (size_t)T * (size_t)(f->c_out6 * f->c_in);
    f->u = aligned_alloc(64, (floats * sizeof(float) + 63) / 64 * 64);
    if (!f->u) {
        free(f);
        tensor_free(wc);
        hg_fail(HG_ERR_NOMEM, "conv2d_winograd: no memory for a %zu-float filter", floats);
        return NULL;
    }
    const double(*g)[3] = tile == 2 ? G2 : G4;
    const float *wv = tensor_data(wc);
    int64_t c_in = f->c_in, per_t = f->c_out6 * c_in;
    /* One 6-row panel per iteration, so that each transform point receives
     * 6 consecutive floats per input channel. */
#pragma omp parallel for schedule(static) if (f->c_out6 * c_in > 4096)
    for (int64_t p = 0; p < f->c_out6 / GEMM_MR; p++) {
        float *panel = f->u + p * GEMM_MR * c_in;
        for (int64_t c = 0; c < c_in; c++) {
            float u[36][GEMM_MR] = {{0}};
            for (int r = 0; r < GEMM_MR && p * GEMM_MR + r < f->c_out; r++) {
                const float *k = wv + ((p * GEMM_MR + r) * c_in + c) * 9;
                double gk[6][3]; /* G k */
                for (int i = 0; i < alpha; i++)
                    for (int b = 0; b < 3; b++)
                        gk[i][b] = g[i][0] * k[b] + g[i][1] * k[3 + b] + g[i][2] * k[6 + b];
                for (int i = 0; i < alpha; i++) /* (G k) G^T */
                    for (int j = 0; j < alpha; j++)
                        u[i * alpha + j][r] =
                            (float)(gk[i][0] * g[j][0] + gk[i][1] * g[j][1] + gk[i][2] * g[j][2]);
            }
            for (int t = 0; t < T; t++) memcpy(panel + t * per_t + c * GEMM_MR, u[t], sizeof u[t]);
        }
    }
    tensor_free(wc);
    return f;
}

void conv2d_winograd_filter_free(WinogradFilter *f) {
    if (!f) return;
    free(f->u);
    free(f);
}

int conv2d_winograd_tile(const WinogradFilter *f) {
    return f ? f->m : 0;
}

/* ---- forward ---- */

typedef struct WinoRun {
    WinoTiles wt;
    const WinogradFilter *f;
    const float *x, *bias, *residual;
    float *out;
    bool relu;
    int64_t total; /* tiles in the batch */
    int64_t kc, kblocks, mc;
} WinoRun;

/* M[t] (c_out x nb) = U[t] (c_out x c_in) @ V[t] (c_in x nb) for t in [t0, t1). */
static void block_gemms(const WinoRun *r, const float *v, float *mbuf, int t0, int t1) {
    const WinogradFilter *f = r->f;
    int64_t c_in = f->c_in, c_out = f->c_out, nb = r->wt.nb;
    for (int t = t0; t < t1; t++) {
        const float *ut = f->u + t * f->c_out6 * c_in, *vt = v + t * r->wt.v_stride;
        float *mt = mbuf + t * r->wt.m_stride;
        for (int64_t kb = 0; kb < r->kblocks; kb++) {
            int64_t p0 = kb * r->kc, kc = p0 + r->kc <= c_in ? r->kc : c_in - p0;
            float beta = kb ? 1.0f : 0.0f;
            for (int64_t ic = 0; ic < c_out; ic += r->mc) {
                int64_t ie = ic + r->mc < c_out ? ic + r->mc : c_out;
                for (int64_t jp = 0; jp < nb; jp += WINO_PANEL) {
                    const float *b = vt + jp * c_in + p0 * WINO_PANEL;
                    for (int64_t i = ic; i < ie; i += GEMM_MR) {
                        int mr = ie - i < GEMM_MR ? (int)(ie - i) : GEMM_MR;
                        gemm_microkernel_avx2(kc, ut + i * c_in + p0 * GEMM_MR, b, mt + i * nb + jp,
                                              nb, 1.0f, beta, mr, WINO_PANEL);
                    }
                }
            }
        }
    }
}

/* One whole block [j0, j0 + nb) by the calling thread alone. */
static void block_alone(const WinoRun *r, float *v, float *mbuf, int64_t j0) {
    int T = r->wt.alpha * r->wt.alpha;
    wino_input_avx2(v, r->x, &r->wt, j0, r->total, 0, r->wt.c_in);
    block_gemms(r, v, mbuf, 0, T);
    wino_output_avx2(r->out, mbuf, r->bias, r->residual, r->relu, &r->wt, j0, r->total, 0,
                     r->wt.c_out);
}

/* Floats between the transform points of V or M holding `floats` each: the
 * transforms touch all T points for every tile group, so the points start 64
 * bytes past a multiple of 4 KB from each other and fall into different L1
 * sets. (At an exact multiple of 4 KB, as 64 channels x 48 tiles gives, the
 * 36 stores of F(4,3) fought over one set: the padding halved the input
 * transform's share of resnet18 at 256 px, 13.6% -> 7%.) */
static int64_t point_stride(int64_t floats) {
    return (floats + 1023) / 1024 * 1024 + 16;
}

static int64_t round_panel(int64_t n) {
    return ceil_div(n, WINO_PANEL) * WINO_PANEL;
}

/* Tiles per block so that V + M take about `bytes`, in whole panels. */
static int64_t block_tiles(const WinoRun *r, int64_t bytes, int64_t cap) {
    int64_t T = (int64_t)r->wt.alpha * r->wt.alpha;
    int64_t per_tile = T * (r->wt.c_in + r->wt.c_out) * (int64_t)sizeof(float);
    int64_t nb = bytes / per_tile / WINO_PANEL * WINO_PANEL;
    if (nb < WINO_PANEL) nb = WINO_PANEL;
    if (nb > WINO_MAX_TILES) nb = WINO_MAX_TILES;
    if (nb > cap) nb = cap;
    return nb;
}

static hg_status run_blocks(WinoRun *r) {
    int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
    int T = r->wt.alpha * r->wt.alpha;
    int64_t all = round_panel(r->total);
    /* Every block streams all of U (from L3 or memory when it is large), so
     * blocks grow with U: about |U| of V + M per block, within [1 MB, 8 MB].
     * Per-thread blocks when there are enough of them to share out evenly;
     * otherwise larger blocks that all threads work on together. */
    int64_t u_bytes = T * r->f->c_out6 * r->f->c_in * (int64_t)sizeof(float);
    int64_t budget = u_bytes < BLOCK_BYTES ? BLOCK_BYTES
                     : u_bytes > MAX_BYTES ? MAX_BYTES
                                           : u_bytes;
    int64_t nb = block_tiles(r, budget, all);
    int64_t blocks = (r->total + nb - 1) / nb;
    bool alone = threads == 1 || blocks >= 2 * threads;
    if (!alone) {
        nb = block_tiles(r, budget > SHARED_BYTES ? budget : SHARED_BYTES, all);
        blocks = (r->total + nb - 1) / nb;
    }
    r->wt.nb = nb;
    r->wt.v_stride = point_stride(r->wt.c_in * nb);
    r->wt.m_stride = point_stride(r->wt.c_out * nb);
    size_t v_floats = (size_t)(T * r->wt.v_stride), m_floats = (size_t)(T * r->wt.m_stride);
    size_t bytes = (v_floats + m_floats) * sizeof(float);
    int failed = 0;
    if (alone) {
#pragma omp parallel num_threads(threads) if (threads > 1)
        {
            float *v = storage_pool_alloc(bytes), *mbuf = v ? v + v_floats : NULL;
            if (!v) {
#pragma omp atomic write
                failed = 1;
            }
#pragma omp for schedule(dynamic, 1)
            for (int64_t b = 0; b < blocks; b++)
                if (v) block_alone(r, v, mbuf, b * nb);
            storage_pool_free(v, bytes);
        }
    } else {
        float *v = storage_pool_alloc(bytes), *mbuf = v ? v + v_floats : NULL;
        if (!v) failed = 1;
        for (int64_t b = 0; v && b < blocks; b++) {
            int64_t j0 = b * nb;
#pragma omp parallel num_threads(threads)
            {
                int t = omp_get_thread_num(), n = omp_get_num_threads();
                int64_t ci = r->wt.c_in, co = r->wt.c_out;
                wino_input_avx2(v, r->x, &r->wt, j0, r->total, ci * t / n, ci * (t + 1) / n);
#pragma omp barrier
                block_gemms(r, v, mbuf, T * t / n, T * (t + 1) / n);
#pragma omp barrier
                wino_output_avx2(r->out, mbuf, r->bias, r->residual, r->relu, &r->wt, j0, r->total,
                                 co * t / n, co * (t + 1) / n);
            }
        }
        storage_pool_free(v, bytes);
    }
    if (failed)
        return hg_fail(HG_ERR_NOMEM, "conv2d_winograd: no memory for %zu bytes of tile buffers",
                       bytes);
    return HG_OK;
}

Tensor *conv2d_winograd_forward(const Tensor *x, const WinogradFilter *f, const Tensor *bias,
                                const Tensor *residual, bool relu, const Conv2dSpec *spec) {
    char sx[96], sb[96];
    if (!f) {
        hg_fail(HG_ERR_ARG, "conv2d_winograd: filter is NULL");
        return NULL;
    }
    if (!spec_is_plain(spec)) {
        hg_fail(HG_ERR_ARG, "conv2d_winograd: needs stride 1, dilation 1 and one group");
        return NULL;
    }
    if (!hg_cpu_has_avx2_fma()) {
        hg_fail(HG_ERR_UNSUPPORTED, "conv2d_winograd: needs a CPU with AVX2 and FMA");
        return NULL;
    }
    /* conv2d_geometry reads only the weight's shape. */
    Tensor wshape = {.ndim = 4, .shape = {f->c_out, f->c_in, 3, 3}};
    Conv2dGeom g;
    if (conv2d_geometry("conv2d_winograd", x, &wshape, spec, &g) != HG_OK) return NULL;
    if (bias && (bias->ndim != 1 || bias->shape[0] != f->c_out)) {
        hg_fail(HG_ERR_SHAPE, "conv2d_winograd: bias %s must be [%lld]",
                tensor_shape_str(bias, sb, sizeof sb), (long long)f->c_out);
        return NULL;
    }
    Tensor *out = tensor_empty(SHAPE(g.n, g.c_out, g.oh, g.ow));
    if (!out) return NULL;
    if (residual && !tensor_same_shape(out, residual)) {
        hg_fail(HG_ERR_SHAPE, "conv2d_winograd: residual %s does not match the output %s",
                tensor_shape_str(residual, sb, sizeof sb), tensor_shape_str(out, sx, sizeof sx));
        tensor_free(out);
        return NULL;
    }
    Tensor *xc = tensor_contiguous(x), *bc = bias ? tensor_contiguous(bias) : NULL;
    Tensor *rc = residual ? tensor_contiguous(residual) : NULL;
    hg_status st = HG_OK;
    if (!xc || (bias && !bc) || (residual && !rc)) {
        st = hg_last_status();
    } else {
        WinoRun r = {
            .wt = {.m = f->m,
                   .alpha = f->alpha,
                   .c_in = g.c_in,
                   .c_out = g.c_out,
                   .h = g.h,
                   .w = g.w,
                   .oh = g.oh,
                   .ow = g.ow,
                   .pt = g.pt,
                   .pl = g.pl,
                   .tiles_y = (g.oh + f->m - 1) / f->m,
                   .tiles_x = (g.ow + f->m - 1) / f->m},
            .f = f,
            .x = tensor_data(xc),
            .bias = bc ? tensor_data(bc) : NULL,
            .residual = rc ? tensor_data(rc) : NULL,
            .out = tensor_data(out),
            .relu = relu,
        };
        r.total = g.n * r.wt.tiles_y * r.wt.tiles_x;
        r.kblocks = (g.c_in + KC_MAX - 1) / KC_MAX;
        r.kc = (g.c_in + r.kblocks - 1) / r.kblocks;
        r.mc = A_BLOCK / r.kc / GEMM_MR * GEMM_MR;
        if (r.mc < GEMM_MR) r.mc = GEMM_MR;
        st = r.total > 0 ? run_blocks(&r) : HG_OK; /* an empty batch has no tiles */
    }
    tensor_free(xc);
    tensor_free(bc);
    tensor_free(rc);
    if (st != HG_OK) {
        tensor_free(out);
        return NULL;
    }
    return out;
}
