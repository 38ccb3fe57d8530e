/* Internal to models/backbone*.c: the Backbone object, the conv + batch-norm
 * unit every architecture is built from, squeeze-excite, and the fused
 * element-wise epilogues. */
#ifndef HG_MODELS_BACKBONE_INTERNAL_H
#define HG_MODELS_BACKBONE_INTERNAL_H

#include "models/backbone.h"
#include "nn/conv2d.h"
#include "nn/linear.h"

/* A convolution without bias followed by batch norm (inference) and an
 * activation. The tensors are the values of ParamSet entries (owned there).
 * After convbn_fold(): weight holds the BN-scaled weights, bn_bias the bias
 * and the other bn tensors the identity. */
typedef struct ConvBn {
    Tensor *weight; /* [cout, cin / groups, k, k] */
    Tensor *bn_weight, *bn_bias, *bn_mean, *bn_var;
    float eps;
    Conv2dSpec spec;
    Activation act; /* ACT_IDENTITY, ACT_RELU, ACT_RELU6 or ACT_SILU */
    /* Data derived from the folded weights (a Winograd filter), built by the
     * first forward that needs it; owned, freed by convbn_release. Set by
     * convbn_add; units made otherwise must zero it (no caching then). */
    struct ConvBnCache *cache;
} ConvBn;

/* Squeeze-excite (timm): gate = sigmoid(W_e silu(W_r mean_hw(x) + b_r) + b_e). */
typedef struct SqueezeExcite {
    Tensor *w_reduce, *b_reduce; /* [rd, C, 1, 1], [rd] */
    Tensor *w_expand, *b_expand; /* [C, rd, 1, 1], [C] */
} SqueezeExcite;

/* Runs x up to tap `deepest`; slots[t] receives a new tensor for every t with
 * wanted[t]. On failure the slots filled so far are left for the caller to free. */
typedef hg_status (*BackboneRunFn)(Backbone *bb, const Tensor *x, const bool *wanted, int deepest,
                                   Tensor **slots);

struct Backbone {
    BackboneKind kind;
    ParamSet *params;
    ConvBn **units; /* every ConvBn, for folding */
    int n_units, cap_units;
    void *arch; /* the architecture's block table, freed with free() */
    BackboneRunFn run;
    Tensor *(*classify)(Backbone *bb, const Tensor *x); /* NULL when none */
    /* Names (prefixes) that weight files may omit as a group, and file
     * tensors of the reference model that are never used (NULL-terminated). */
    const char *const *optional_prefixes;
    const char *const *ignored_prefixes;
    bool head_loaded;     /* the optional group is present (or there is none) */
    bool weights_exposed; /* backbone_params was called: unit caches may be stale */
};

/* ---- architectures (backbone_efficientnet.c, backbone_resnet.c, backbone_mobilenet.c) ---- */
hg_status backbone_build_efficientnet(Backbone *bb);
hg_status backbone_build_resnet(Backbone *bb, bool wide);
hg_status backbone_build_mobilenet(Backbone *bb);

/* ---- units (backbone_layers.c) ---- */

/* Registers "{conv}.weight" [cout, cin_g, k, k] (zeros) and "{bn}.weight/bias/
 * running_mean/running_var" [cout] (1, 0, 0, 1) and records the unit. */
hg_status convbn_add(Backbone *bb, ConvBn *u, const char *conv, const char *bn, int64_t cout,
                     int64_t cin_g, int64_t k, Conv2dSpec spec, float eps, Activation act);
/* Folds the batch norm into the convolution unless it already is the
 * identity (weight 1, mean 0, var + eps = 1). */
void convbn_fold(ConvBn *u);
bool convbn_is_folded(const ConvBn *u);
/* Drops the unit's derived data (rebuilt from the weights when next needed),
 * and frees it with the unit (convbn_release; NULL cache is fine). */
void convbn_invalidate(ConvBn *u);
void convbn_release(ConvBn *u);

/* y = act(conv(x) + bias [+ residual]) with the folded parameters.
 * residual (same shape as y) may be NULL. in_scale (N x Cin floats, may be
 * NULL; 1x1 stride-1 units only) multiplies input channel c of image n first,
 * which is how a squeeze-excite gate is applied without touching x.
 * plane_means (N x Cout floats, may be NULL) receives the mean of every
 * output plane. Returns a new tensor or NULL. */
Tensor *convbn_forward(const ConvBn *u, const Tensor *x, const Tensor *residual,
                       const float *in_scale, float *plane_means);

/* Registers "{prefix}.conv_reduce.weight/bias" and "{prefix}.conv_expand.weight/bias". */
hg_status se_add(Backbone *bb, SqueezeExcite *se, const char *prefix, int64_t channels,
                 int64_t reduced);
/* gates[n*C + c] for the N x C plane means of the block's activations. */
hg_status se_gates(const SqueezeExcite *se, const float *means, int64_t n, float *gates);

/* Registers a tensor of `shape` filled with `fill` under `name` (a buffer when
 * is_buffer); returns its value (owned by the ParamSet) or NULL. */
Tensor *backbone_add_tensor(Backbone *bb, const char *name, int ndim, const int64_t *shape,
                            float fill, bool is_buffer);

/* ---- element-wise epilogue (backbone_act.c, backbone_act_avx2.c) ---- */

/* x[i] = act(x[i] + bias + (residual ? residual[i] : 0)) for i < n; returns
 * the sum of the results when want_sum (0 otherwise). */
double act_span(float *x, int64_t n, float bias, const float *residual, Activation act,
                bool want_sum);
/* act_span for ACT_SILU with AVX2/FMA; act_span uses it when the CPU has them
 * (hg_cpu_has_avx2_fma, tensor/cpu.h). */
double act_span_silu_avx2(float *x, int64_t n, float bias, const float *residual, bool want_sum);

/* Applies act_span to every [H*W] plane of t [N, C, H, W] (contiguous), with
 * bias[c] (may be NULL), residual of t's shape (may be NULL), and optional plane
 * means (N x C). Threads over planes. */
void act_planes(Tensor *t, const float *bias, const Tensor *residual, Activation act,
                float *plane_means);

#endif
