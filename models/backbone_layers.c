/* The building blocks shared by the backbones: conv + batch norm units (with
 * batch-norm folding), squeeze-excite, and parameter registration. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/backbone_internal.h"
#include "nn/conv2d_winograd.h"

/* What a unit derives from its folded weights (see ConvBn). */
struct ConvBnCache {
    WinogradFilter *wino; /* NULL until a forward takes the Winograd path */
};

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
    hg_status s =
        add_named(bb, &u->weight, conv, "weight", 4, (int64_t[]){cout, cin_g, k, k}, 0.0f, false);
    if (s == HG_OK) s = add_named(bb, &u->bn_weight, bn, "weight", 1, &cout, 1.0f, false);
    if (s == HG_OK) s = add_named(bb, &u->bn_bias, bn, "bias", 1, &cout, 0.0f, false);
    if (s == HG_OK) s = add_named(bb, &u->bn_mean, bn, "running_mean", 1, &cout, 0.0f, true);
    if (s == HG_OK) s = add_named(bb, &u->bn_var, bn, "running_var", 1, &cout, 1.0f, true);
    if (s == HG_OK && !(u->cache = calloc(1, sizeof *u->cache)))
        s = hg_fail(HG_ERR_NOMEM, "backbone: out of memory");
    if (s == HG_OK) s = remember_unit(bb, u);
    if (s != HG_OK) convbn_release(u);
    return s;
}

void convbn_invalidate(ConvBn *u) {
    if (!u->cache) return;
    conv2d_winograd_filter_free(u->cache->wino);
    u->cache->wino = NULL;
}

void convbn_release(ConvBn *u) {
    convbn_invalidate(u);
    free(u->cache);
    u->cache = NULL;
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
                       tensor_shape_str(residual, sr, sizeof sr),
                       tensor_shape_str(y, sy, sizeof sy));
    return HG_OK;
}

/* A 1x1 convolution whose input channel c of image i is first multiplied by
 * gates[i*Cin + c] (a squeeze-excite gate): per image, the convolution with
 * weight column c scaled by the gate, W diag(g_i), so x is never rewritten. */
static Tensor *gated_pointwise(const ConvBn *u, const Tensor *x, const float *gates) {
    char sx[96], sw[96];
    int64_t cout = u->weight->shape[0], cin = u->weight->shape[1];
    if (x->ndim != 4 || x->shape[1] != cin) {
        hg_fail(HG_ERR_SHAPE, "backbone: input %s does not fit a 1x1 convolution with weight %s",
                tensor_shape_str(x, sx, sizeof sx), tensor_shape_str(u->weight, sw, sizeof sw));
        return NULL;
    }
    int64_t n = x->shape[0], plane = x->shape[2] * x->shape[3];
    Tensor *scaled = tensor_empty(4, u->weight->shape);
    Tensor *y = n > 1 ? tensor_empty(SHAPE(n, cout, x->shape[2], x->shape[3])) : NULL;
    if (!scaled || (n > 1 && !y)) {
        tensor_free(scaled);
        return NULL;
    }
    const float *w = tensor_data(u->weight);
    float *ws = tensor_data(scaled);
    for (int64_t i = 0; i < n; i++) {
        const float *g = gates + i * cin;
        for (int64_t o = 0; o < cout; o++)
            for (int64_t c = 0; c < cin; c++) ws[o * cin + c] = w[o * cin + c] * g[c];
        Tensor *xi = n > 1 ? tensor_narrow(x, 0, i, 1) : tensor_ref(x);
        Tensor *yi = xi ? conv2d_forward(xi, scaled, u->bn_bias, &u->spec) : NULL;
        tensor_free(xi);
        if (!yi) {
            tensor_free(y);
            y = NULL;
            break;
        }
        if (n == 1) {
            y = yi;
        } else {
            memcpy(tensor_data(y) + i * cout * plane, tensor_data(yi),
                   sizeof(float) * (size_t)(cout * plane));
            tensor_free(yi);
        }
    }
    tensor_free(scaled);
    return y;
}

/* The Winograd filter of a 3x3 stride-1 unit for input x, built on first use
 * (NULL when the unit does not take that path or building failed, in which
 * case the im2col path serves). The tile chosen for the first input stays. */
static const WinogradFilter *winograd_filter(const ConvBn *u, const Tensor *x) {
    int tile = conv2d_winograd_choose_tile(x, u->weight, &u->spec);
    if (!tile || !u->cache) return NULL;
    if (!u->cache->wino) u->cache->wino = conv2d_winograd_filter_new(u->weight, tile);
    return u->cache->wino;
}

Tensor *convbn_forward(const ConvBn *u, const Tensor *x, const Tensor *residual,
                       const float *in_scale, float *plane_means) {
    if (!x) return NULL;
    if (in_scale && !is_pointwise(u)) {
        hg_fail(HG_ERR_ARG, "backbone: input scaling needs a 1x1 stride-1 convolution");
        return NULL;
    }
    /* What the convolution kernel did not fuse is left to one pass over the
     * output below: residual, activation and plane means. */
    Activation act = u->act;
    const WinogradFilter *wino = in_scale ? NULL : winograd_filter(u, x);
    Tensor *y;
    if (wino) {
        /* Bias, residual and ReLU in the inverse transform. */
        bool fused = act == ACT_RELU || act == ACT_IDENTITY;
        y = conv2d_winograd_forward(x, wino, u->bn_bias, fused ? residual : NULL,
                                    fused && act == ACT_RELU, &u->spec);
        if (fused) residual = NULL, act = ACT_IDENTITY;
    } else if (!in_scale && !residual && act == ACT_RELU) {
        /* conv + ReLU in one pass (the ResNet stem and stride-2 convolutions). */
        y = conv2d_forward_relu(x, u->weight, u->bn_bias, &u->spec);
        act = ACT_IDENTITY;
    } else {
        /* nn/conv2d picks its 1x1, depthwise or im2col kernel and adds the bias. */
        y = in_scale ? gated_pointwise(u, x, in_scale)
                     : conv2d_forward(x, u->weight, u->bn_bias, &u->spec);
    }
    if (!y) return NULL;
    Tensor *rc = residual ? tensor_contiguous(residual) : NULL;
    if (check_residual(y, residual) != HG_OK || (residual && !rc)) {
        tensor_free(rc);
        tensor_free(y);
        return NULL;
    }
    act_planes(y, NULL, rc, act, plane_means);
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
