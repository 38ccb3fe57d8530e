/* The building blocks shared by the backbones: conv + batch norm units (with
 * batch-norm folding), squeeze-excite, and parameter registration. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/backbone_internal.h"
#include "tensor/gemm.h"

Tensor *backbone_add_tensor(Backbone *bb, const char *name, int ndim, const int64_t *shape,
                            float fill, bool is_buffer) {
    Tensor *t = tensor_full(ndim, shape, fill);
    if (!t) return NULL;
    Var *v = param_set_add(bb->params, name, t, is_buffer);
    if (!v) {
        hg_fail(HG_ERR_ARG, "backbone: cannot register '%s'", name);
        return NULL;
    }
    return v->value;
}

static hg_status add_named(Backbone *bb, Tensor **slot, const char *prefix, const char *leaf,
                           int ndim, const int64_t *shape, float fill, bool is_buffer) {
    char name[256];
    if (param_name_join(name, sizeof name, prefix, leaf) != HG_OK) return hg_last_status();
    *slot = backbone_add_tensor(bb, name, ndim, shape, fill, is_buffer);
    return *slot ? HG_OK : hg_last_status();
}

static hg_status remember_unit(Backbone *bb, ConvBn *u) {
    if (bb->n_units == bb->cap_units) {
        int cap = bb->cap_units ? 2 * bb->cap_units : 64;
        ConvBn **grown = realloc(bb->units, sizeof *grown * (size_t)cap);
        if (!grown) return hg_fail(HG_ERR_NOMEM, "backbone: out of memory");
        bb->units = grown;
        bb->cap_units = cap;
    }
    bb->units[bb->n_units++] = u;
    return HG_OK;
}

hg_status convbn_add(Backbone *bb, ConvBn *u, const char *conv, const char *bn, int64_t cout,
                     int64_t cin_g, int64_t k, Conv2dSpec spec, float eps, Activation act) {
    memset(u, 0, sizeof *u);
    u->eps = eps;
    u->spec = spec;
    u->act = act;
    hg_status s = add_named(bb, &u->weight, conv, "weight", 4, (int64_t[]){cout, cin_g, k, k}, 0.0f,
                            false);
    if (s == HG_OK) s = add_named(bb, &u->bn_weight, bn, "weight", 1, &cout, 1.0f, false);
    if (s == HG_OK) s = add_named(bb, &u->bn_bias, bn, "bias", 1, &cout, 0.0f, false);
    if (s == HG_OK) s = add_named(bb, &u->bn_mean, bn, "running_mean", 1, &cout, 0.0f, true);
    if (s == HG_OK) s = add_named(bb, &u->bn_var, bn, "running_var", 1, &cout, 1.0f, true);
    if (s == HG_OK) s = remember_unit(bb, u);
    return s;
}

/* The identity form of a folded batch norm: y = x + bias. var + eps is allowed
 * to differ from 1 by float rounding (the shipped mobilenet_v2 stores 1 - 1e-5). */
bool convbn_is_folded(const ConvBn *u) {
    int64_t c = u->bn_weight->shape[0];
    const float *g = tensor_data(u->bn_weight), *m = tensor_data(u->bn_mean),
                *v = tensor_data(u->bn_var);
    for (int64_t o = 0; o < c; o++)
        if (g[o] != 1.0f || m[o] != 0.0f || fabs((double)v[o] + u->eps - 1.0) > 1e-6) return false;
    return true;
}

/* w'[o] = w[o] * s[o], b'[o] = beta[o] - mean[o] * s[o], s = gamma / sqrt(var + eps):
 * conv then BN(inference) equals the conv with w' plus b'. */
void convbn_fold(ConvBn *u) {
    if (convbn_is_folded(u)) return;
    int64_t c = u->bn_weight->shape[0], per = tensor_numel(u->weight) / c;
    float *w = tensor_data(u->weight), *g = tensor_data(u->bn_weight), *b = tensor_data(u->bn_bias),
          *m = tensor_data(u->bn_mean), *v = tensor_data(u->bn_var);
    for (int64_t o = 0; o < c; o++) {
        double s = (double)g[o] / sqrt((double)v[o] + u->eps);
        for (int64_t i = 0; i < per; i++) w[o * per + i] = (float)(w[o * per + i] * s);
        b[o] = (float)((double)b[o] - (double)m[o] * s);
        g[o] = 1.0f;
        m[o] = 0.0f;
        v[o] = (float)(1.0 - u->eps);
    }
}

static bool is_pointwise(const ConvBn *u) {
    const Conv2dSpec *s = &u->spec;
    return u->weight->shape[2] == 1 && u->weight->shape[3] == 1 && s->stride_h <= 1 &&
           s->stride_w <= 1 && s->groups <= 1 && !s->pad_top && !s->pad_bottom && !s->pad_left &&
           !s->pad_right;
}

static hg_status check_residual(const Tensor *y, const Tensor *residual) {
    char sy[96], sr[96];
    if (residual && !tensor_same_shape(y, residual))
        return hg_fail(HG_ERR_SHAPE, "backbone: residual %s does not match the block output %s",
                       tensor_shape_str(residual, sr, sizeof sr), tensor_shape_str(y, sy, sizeof sy));
    return HG_OK;
}

/* ---- tiled, fused forward paths ----
 * The 1x1 and depthwise convolutions run as one parallel region each over
 * small tiles with dynamic scheduling: every tile computes its outputs and
 * applies the epilogue (bias, residual, activation, plane sums) while they are
 * still in cache, and a thread that the OS preempts (2 cores shared with other
 * processes) delays only its current tile, not a whole static share. Nested
 * gemm / conv2d calls run single-threaded inside the region. */

/* Floats of output per tile: about 1 MB, an L2 cache. */
#define TILE_FLOATS (1 << 18)
/* Multiply-adds below which a layer runs on one thread. */
#define PARALLEL_MIN_MACS (1 << 18)

/* Records the first failure of a worker thread (errors are thread-local). */
typedef struct TileFailure {
    int failed;
    hg_status status;
    char message[512];
} TileFailure;

static void tile_fail(TileFailure *f) {
#pragma omp critical(backbone_tile_failure)
    if (!f->failed) {
        f->failed = 1;
        f->status = hg_last_status();
        snprintf(f->message, sizeof f->message, "%s", hg_last_error());
    }
}

static int tiles_wanted(void) {
    int t = omp_get_max_threads();
    return t > 1 ? 4 * t : 1;
}

/* Per-thread scratch of the 1x1 tiles. */
typedef struct PwScratch {
    float *in;     /* cin x tw columns of the tile */
    float *scaled; /* cout x cin gated weights of image `image` */
    int64_t image;
} PwScratch;

/* One (image i, output rows r0..r1, columns c0..c1) tile of a 1x1 convolution
 * through conv2d_forward (nn's 1x1 kernel), then the epilogue in cache and the
 * copy into y. */
static hg_status pointwise_tile(const ConvBn *u, const float *xv, const float *r, const float *gates,
                                float *yv, float *psum, int64_t hw, int64_t col_tiles, int64_t i,
                                int64_t r0, int64_t r1, int64_t c0, int64_t c1, PwScratch *sc) {
    int64_t cout = u->weight->shape[0], cin = u->weight->shape[1], tw = c1 - c0;
    const float *w = tensor_data(u->weight), *b = tensor_data(u->bn_bias);
    const float *xi = xv + i * cin * hw;
    if (gates && sc->image != i) {
        /* The squeeze-excite gate of input channel c scales weight column c. */
        const float *g = gates + i * cin;
        for (int64_t o = 0; o < cout; o++)
            for (int64_t c = 0; c < cin; c++) sc->scaled[o * cin + c] = w[o * cin + c] * g[c];
        sc->image = i;
    }
    if (gates) w = sc->scaled;
    const float *in = xi + c0;
    if (tw != hw) {
        for (int64_t c = 0; c < cin; c++)
            memcpy(sc->in + c * tw, xi + c * hw + c0, sizeof(float) * (size_t)tw);
        in = sc->in;
    }
    Tensor *xt = tensor_wrap(SHAPE(1, cin, 1, tw), (float *)in);
    Tensor *wt = tensor_wrap(SHAPE(r1 - r0, cin, 1, 1), (float *)w + r0 * cin);
    Conv2dSpec one = conv2d_spec(1, 0, 1, 1);
    Tensor *yt = xt && wt ? conv2d_forward(xt, wt, NULL, &one) : NULL;
    if (yt) {
        const float *src = tensor_data(yt);
        for (int64_t o = r0; o < r1; o++) {
            int64_t off = (i * cout + o) * hw + c0;
            float *row = (float *)src + (o - r0) * tw;
            double s = act_span(row, tw, b[o], r ? r + off : NULL, u->act, psum != NULL);
            memcpy(yv + off, row, sizeof(float) * (size_t)tw);
            if (psum) psum[(i * col_tiles + (c0 / tw)) * cout + o] = (float)s;
        }
    }
    hg_status st = yt ? HG_OK : hg_last_status();
    tensor_free(yt);
    tensor_free(xt);
    tensor_free(wt);
    return st;
}

/* 1x1 stride-1 convolution, y[n] = W diag(gates[n]) x[n] + b (+ r[n]), as
 * (image, output-row block, column block) tiles. */
static Tensor *pointwise_forward(const ConvBn *u, const Tensor *x, const Tensor *residual,
                                 const float *in_scale, float *plane_means) {
    char sx[96], sw[96];
    int64_t cout = u->weight->shape[0], cin = u->weight->shape[1];
    if (x->ndim != 4 || x->shape[1] != cin) {
        hg_fail(HG_ERR_SHAPE, "backbone: input %s does not fit a 1x1 convolution with weight %s",
                tensor_shape_str(x, sx, sizeof sx), tensor_shape_str(u->weight, sw, sizeof sw));
        return NULL;
    }
    int64_t n = x->shape[0], hw = x->shape[2] * x->shape[3];
    /* Columns: blocks whose output tile fits in L2; rows: halved until there
     * are enough tiles to balance the threads. */
    int64_t tw = TILE_FLOATS / cout;
    tw = tw < 64 ? 64 : tw / 64 * 64;
    if (tw >= hw) tw = hw;
    int64_t col_tiles = (hw + tw - 1) / tw, row_tiles = 1;
    while (n * col_tiles * row_tiles < tiles_wanted() && cout / (2 * row_tiles) >= 32) row_tiles *= 2;
    int64_t rstep = (cout + row_tiles - 1) / row_tiles, total = n * row_tiles * col_tiles;
    Tensor *xc = tensor_contiguous(x);
    Tensor *rc = residual ? tensor_contiguous(residual) : NULL;
    Tensor *y = tensor_empty(SHAPE(n, cout, x->shape[2], x->shape[3]));
    float *psum = plane_means ? malloc(sizeof(float) * (size_t)(n * col_tiles * cout)) : NULL;
    if (!xc || !y || (residual && !rc) || (plane_means && !psum)) {
        if (xc && y && (!residual || rc)) hg_fail(HG_ERR_NOMEM, "backbone: out of memory");
        tensor_free(xc), tensor_free(rc), tensor_free(y), free(psum);
        return NULL;
    }
    if (residual && !tensor_same_shape(y, residual)) {
        hg_fail(HG_ERR_SHAPE, "backbone: residual %s does not match the block output %s",
                tensor_shape_str(residual, sx, sizeof sx), tensor_shape_str(y, sw, sizeof sw));
        tensor_free(xc), tensor_free(rc), tensor_free(y), free(psum);
        return NULL;
    }
    const float *xv = tensor_data(xc), *r = rc ? tensor_data(rc) : NULL;
    float *yv = tensor_data(y);
    TileFailure failure = {0};
    bool parallel = total > 1 && n * hw * cout * cin > PARALLEL_MIN_MACS;
#pragma omp parallel if (parallel)
    {
        PwScratch sc = {NULL, NULL, -1};
        sc.in = col_tiles > 1 ? malloc(sizeof(float) * (size_t)(cin * tw)) : NULL;
        sc.scaled = in_scale ? malloc(sizeof(float) * (size_t)(cout * cin)) : NULL;
        bool ok = (col_tiles == 1 || sc.in) && (!in_scale || sc.scaled);
        if (!ok) {
            hg_fail(HG_ERR_NOMEM, "backbone: out of memory");
            tile_fail(&failure);
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < total; t++) {
            if (!ok) continue;
            int64_t i = t / (row_tiles * col_tiles), rt = t / col_tiles % row_tiles,
                    ct = t % col_tiles;
            int64_t r0 = rt * rstep, r1 = r0 + rstep < cout ? r0 + rstep : cout;
            int64_t c0 = ct * tw, c1 = c0 + tw < hw ? c0 + tw : hw;
            if (r0 < r1 && pointwise_tile(u, xv, r, in_scale, yv, psum, hw, col_tiles, i, r0, r1,
                                          c0, c1, &sc) != HG_OK)
                tile_fail(&failure);
        }
        free(sc.in);
        free(sc.scaled);
    }
    if (psum) {
        for (int64_t i = 0; i < n; i++)
            for (int64_t o = 0; o < cout; o++) {
                double s = 0;
                for (int64_t ct = 0; ct < col_tiles; ct++) s += psum[(i * col_tiles + ct) * cout + o];
                plane_means[i * cout + o] = (float)(s / (double)hw);
            }
        free(psum);
    }
    tensor_free(xc);
    tensor_free(rc);
    if (failure.failed) {
        hg_fail(failure.status, "%s", failure.message);
        tensor_free(y);
        return NULL;
    }
    return y;
}

/* Depthwise convolution (groups == Cin == Cout) as (image, channel chunk)
 * tiles: conv2d_forward on the chunk, then the epilogue while it is in cache,
 * then a copy into the output. */
static Tensor *depthwise_forward(const ConvBn *u, const Tensor *x, float *plane_means) {
    char sx[96], sw[96];
    int64_t c = u->weight->shape[0], k = u->weight->shape[2], oh, ow;
    if (x->ndim != 4 || x->shape[1] != c) {
        hg_fail(HG_ERR_SHAPE, "backbone: input %s does not fit a depthwise convolution with weight %s",
                tensor_shape_str(x, sx, sizeof sx), tensor_shape_str(u->weight, sw, sizeof sw));
        return NULL;
    }
    int64_t n = x->shape[0], h = x->shape[2], w = x->shape[3];
    if (conv2d_output_size(h, w, k, u->weight->shape[3], &u->spec, &oh, &ow) != HG_OK) return NULL;
    int64_t hw = h * w, ohw = oh * ow;
    int64_t chunk = TILE_FLOATS / 4 / (hw > ohw ? hw : ohw);
    chunk = chunk < 1 ? 1 : chunk > c ? c : chunk;
    while (n * ((c + chunk - 1) / chunk) < tiles_wanted() && chunk > 1) chunk = (chunk + 1) / 2;
    int64_t chunks = (c + chunk - 1) / chunk, total = n * chunks;
    Tensor *xc = tensor_contiguous(x);
    Tensor *y = xc ? tensor_empty(SHAPE(n, c, oh, ow)) : NULL;
    if (!y) {
        tensor_free(xc);
        return NULL;
    }
    float *xv = tensor_data(xc), *wv = tensor_data(u->weight), *bv = tensor_data(u->bn_bias);
    float *yv = tensor_data(y);
    TileFailure failure = {0};
    bool parallel = total > 1 && n * c * ohw * k * k > PARALLEL_MIN_MACS;
#pragma omp parallel for schedule(dynamic, 1) if (parallel)
    for (int64_t t = 0; t < total; t++) {
        int64_t i = t / chunks, c0 = t % chunks * chunk, len = c0 + chunk < c ? chunk : c - c0;
        /* Views of raw memory: made and freed by this thread alone. */
        Tensor *xt = tensor_wrap(SHAPE(1, len, h, w), xv + (i * c + c0) * hw);
        Tensor *wt = tensor_wrap(SHAPE(len, 1, k, u->weight->shape[3]), wv + c0 * k * u->weight->shape[3]);
        Tensor *bt = tensor_wrap(SHAPE(len), bv + c0);
        Conv2dSpec spec = u->spec;
        spec.groups = (int)len;
        Tensor *yt = xt && wt && bt ? conv2d_forward(xt, wt, bt, &spec) : NULL;
        if (!yt) {
            tile_fail(&failure);
        } else {
            float *src = tensor_data(yt);
            for (int64_t j = 0; j < len; j++) {
                double s = act_span(src + j * ohw, ohw, 0.0f, NULL, u->act, plane_means != NULL);
                if (plane_means) plane_means[i * c + c0 + j] = (float)(s / (double)ohw);
            }
            memcpy(yv + (i * c + c0) * ohw, src, sizeof(float) * (size_t)(len * ohw));
        }
        tensor_free(yt);
        tensor_free(xt);
        tensor_free(wt);
        tensor_free(bt);
    }
    tensor_free(xc);
    if (failure.failed) {
        hg_fail(failure.status, "%s", failure.message);
        tensor_free(y);
        return NULL;
    }
    return y;
}

static bool is_depthwise(const ConvBn *u) {
    int64_t c = u->weight->shape[0];
    return u->weight->shape[1] == 1 && c > 1 && u->spec.groups == c;
}

Tensor *convbn_forward(const ConvBn *u, const Tensor *x, const Tensor *residual,
                       const float *in_scale, float *plane_means) {
    if (!x) return NULL;
    if (is_pointwise(u)) return pointwise_forward(u, x, residual, in_scale, plane_means);
    if (in_scale) {
        hg_fail(HG_ERR_ARG, "backbone: input scaling needs a 1x1 stride-1 convolution");
        return NULL;
    }
    if (is_depthwise(u) && !residual) return depthwise_forward(u, x, plane_means);
    Tensor *y = conv2d_forward(x, u->weight, u->bn_bias, &u->spec);
    if (!y) return NULL;
    Tensor *rc = residual ? tensor_contiguous(residual) : NULL;
    if (check_residual(y, residual) != HG_OK || (residual && !rc)) {
        tensor_free(rc);
        tensor_free(y);
        return NULL;
    }
    /* conv2d_forward already added the bias. */
    act_planes(y, NULL, rc, u->act, plane_means);
    tensor_free(rc);
    return y;
}

hg_status se_add(Backbone *bb, SqueezeExcite *se, const char *prefix, int64_t channels,
                 int64_t reduced) {
    char name[256];
    memset(se, 0, sizeof *se);
    snprintf(name, sizeof name, "%s.conv_reduce", prefix);
    hg_status s = add_named(bb, &se->w_reduce, name, "weight", 4,
                            (int64_t[]){reduced, channels, 1, 1}, 0.0f, false);
    if (s == HG_OK) s = add_named(bb, &se->b_reduce, name, "bias", 1, &reduced, 0.0f, false);
    snprintf(name, sizeof name, "%s.conv_expand", prefix);
    if (s == HG_OK)
        s = add_named(bb, &se->w_expand, name, "weight", 4, (int64_t[]){channels, reduced, 1, 1},
                      0.0f, false);
    if (s == HG_OK) s = add_named(bb, &se->b_expand, name, "bias", 1, &channels, 0.0f, false);
    return s;
}

hg_status se_gates(const SqueezeExcite *se, const float *means, int64_t n, float *gates) {
    int64_t rd = se->w_reduce->shape[0], c = se->w_reduce->shape[1];
    const float *wr = tensor_data(se->w_reduce), *br = tensor_data(se->b_reduce),
                *we = tensor_data(se->w_expand), *be = tensor_data(se->b_expand);
    float *hidden = malloc(sizeof(float) * (size_t)(rd ? rd : 1));
    if (!hidden) return hg_fail(HG_ERR_NOMEM, "backbone: out of memory (squeeze-excite)");
    for (int64_t i = 0; i < n; i++) {
        const float *m = means + i * c;
        for (int64_t j = 0; j < rd; j++) {
            float h = br[j];
            for (int64_t k = 0; k < c; k++) h += wr[j * c + k] * m[k];
            hidden[j] = h / (1.0f + expf(-h)); /* SiLU */
        }
        float *g = gates + i * c;
        for (int64_t k = 0; k < c; k++) {
            float e = be[k];
            for (int64_t j = 0; j < rd; j++) e += we[k * rd + j] * hidden[j];
            g[k] = 1.0f / (1.0f + expf(-e));
        }
    }
    free(hidden);
    return HG_OK;
}
