/* tf_efficientnet_b6 (timm 0.6.7) up to stage 4, spec/backbones.md:
 * conv_stem 3x3/2 (TF "same") + bn1 + SiLU, then blocks.{stage}.{block}:
 *   depthwise-separable (stage 0): conv_dw, bn1, SiLU, se, conv_pw, bn2
 *   inverted residual: conv_pw, bn1, SiLU, conv_dw, bn2, SiLU, se, conv_pwl, bn3
 * (+ input when stride 1 and in == out channels). Stride-1 convolutions pad
 * k // 2 on each side; stride-2 ones use TF "same" padding for their input. */
#include <stdio.h>
#include <stdlib.h>

#include "models/backbone_internal.h"

#define EFF_STAGES 5 /* stages 5 and 6 only serve the stride-32 map: never built */
#define EFF_STEM   56
#define EFF_BN_EPS 1e-3f

/* Depth 2.6 and width 1.8 already applied (round_channels and ceil depth of
 * timm's builder; the fixture script derives the same table from them). */
static const struct {
    int repeats, kernel, stride, out, expand;
} EFF_ARCH[EFF_STAGES] = {
    {3, 3, 1, 32, 1}, {6, 3, 2, 40, 6}, {6, 5, 2, 72, 6}, {8, 3, 2, 144, 6}, {8, 5, 1, 200, 6}};

/* Stage whose output is tap t (timm's feature_info: a map per stride). */
static const int TAP_STAGE[4] = {0, 1, 2, 4};

static const char *const IGNORED[] = {"blocks.5", "blocks.6",   "conv_head",
                                      "bn2",      "classifier", NULL};

typedef struct EffBlock {
    bool ds, residual;
    ConvBn pw, dw, pwl; /* pw unused in depthwise-separable blocks */
    SqueezeExcite se;
} EffBlock;

typedef struct EffNet {
    ConvBn stem;
    int n_blocks;
    int stage_last[EFF_STAGES]; /* index of the last block of each stage */
    EffBlock blocks[];
} EffNet;

static Conv2dSpec depthwise_spec(int stride, int kernel, int64_t channels) {
    return stride == 1 ? conv2d_spec(1, kernel / 2, 1, (int)channels)
                       : conv2d_spec_same(stride, 1, (int)channels);
}

static hg_status add_block(Backbone *bb, EffBlock *b, int stage, int index, int64_t cin,
                           int64_t cout, int kernel, int stride, int expand) {
    char p[64], conv[96], bn[96], se[96];
    Conv2dSpec one = conv2d_spec(1, 0, 1, 1);
    hg_status s;
    snprintf(p, sizeof p, "blocks.%d.%d", stage, index);
    snprintf(se, sizeof se, "%s.se", p);
    b->ds = expand == 1;
    b->residual = stride == 1 && cin == cout;
    /* SE width: a quarter of the block's input channels (timm: se_ratio 0.25
     * divided by the expansion, applied to the expanded channels). */
    int64_t reduced = cin / 4;
    if (b->ds) {
        snprintf(conv, sizeof conv, "%s.conv_dw", p), snprintf(bn, sizeof bn, "%s.bn1", p);
        s = convbn_add(bb, &b->dw, conv, bn, cin, 1, kernel, depthwise_spec(stride, kernel, cin),
                       EFF_BN_EPS, ACT_SILU);
        if (s == HG_OK) s = se_add(bb, &b->se, se, cin, reduced);
        snprintf(conv, sizeof conv, "%s.conv_pw", p), snprintf(bn, sizeof bn, "%s.bn2", p);
        if (s == HG_OK)
            s = convbn_add(bb, &b->pwl, conv, bn, cout, cin, 1, one, EFF_BN_EPS, ACT_IDENTITY);
        return s;
    }
    int64_t mid = cin * expand;
    snprintf(conv, sizeof conv, "%s.conv_pw", p), snprintf(bn, sizeof bn, "%s.bn1", p);
    s = convbn_add(bb, &b->pw, conv, bn, mid, cin, 1, one, EFF_BN_EPS, ACT_SILU);
    snprintf(conv, sizeof conv, "%s.conv_dw", p), snprintf(bn, sizeof bn, "%s.bn2", p);
    if (s == HG_OK)
        s = convbn_add(bb, &b->dw, conv, bn, mid, 1, kernel, depthwise_spec(stride, kernel, mid),
                       EFF_BN_EPS, ACT_SILU);
    if (s == HG_OK) s = se_add(bb, &b->se, se, mid, reduced);
    snprintf(conv, sizeof conv, "%s.conv_pwl", p), snprintf(bn, sizeof bn, "%s.bn3", p);
    if (s == HG_OK)
        s = convbn_add(bb, &b->pwl, conv, bn, cout, mid, 1, one, EFF_BN_EPS, ACT_IDENTITY);
    return s;
}

/* One block: expansion, depthwise (whose epilogue also yields the plane means
 * the squeeze-excite needs), then the projection with the SE gate folded into
 * its weights per image and the residual added in its epilogue. */
static Tensor *block_forward(const EffBlock *b, const Tensor *x) {
    int64_t n = x->shape[0], c = b->dw.weight->shape[0];
    Tensor *mid = b->ds ? tensor_ref(x) : convbn_forward(&b->pw, x, NULL, NULL, NULL);
    float *means = malloc(sizeof(float) * (size_t)(2 * n * c));
    if (!mid || !means) {
        if (mid) hg_fail(HG_ERR_NOMEM, "tf_efficientnet_b6: out of memory");
        tensor_free(mid);
        free(means);
        return NULL;
    }
    float *gates = means + n * c;
    Tensor *d = convbn_forward(&b->dw, mid, NULL, NULL, means);
    tensor_free(mid);
    Tensor *out = NULL;
    if (d && se_gates(&b->se, means, n, gates) == HG_OK)
        out = convbn_forward(&b->pwl, d, b->residual ? x : NULL, gates, NULL);
    tensor_free(d);
    free(means);
    return out;
}

static hg_status run(Backbone *bb, const Tensor *x, const bool *wanted, int deepest,
                     Tensor **slots) {
    const EffNet *net = bb->arch;
    int last = net->stage_last[TAP_STAGE[deepest]];
    Tensor *cur = convbn_forward(&net->stem, x, NULL, NULL, NULL);
    for (int i = 0; cur && i <= last; i++) {
        Tensor *next = block_forward(&net->blocks[i], cur);
        tensor_free(cur);
        cur = next;
        for (int t = 0; cur && t <= deepest; t++)
            if (wanted[t] && net->stage_last[TAP_STAGE[t]] == i && !(slots[t] = tensor_ref(cur))) {
                tensor_free(cur);
                cur = NULL;
            }
    }
    if (!cur) return hg_last_status();
    tensor_free(cur);
    return HG_OK;
}

hg_status backbone_build_efficientnet(Backbone *bb) {
    int n_blocks = 0;
    for (int s = 0; s < EFF_STAGES; s++) n_blocks += EFF_ARCH[s].repeats;
    EffNet *net = calloc(1, sizeof *net + sizeof(EffBlock) * (size_t)n_blocks);
    if (!net) return hg_fail(HG_ERR_NOMEM, "tf_efficientnet_b6: out of memory");
    bb->arch = net;
    bb->run = run;
    bb->ignored_prefixes = IGNORED;
    net->n_blocks = n_blocks;
    hg_status st = convbn_add(bb, &net->stem, "conv_stem", "bn1", EFF_STEM, 3, 3,
                              conv2d_spec_same(2, 1, 1), EFF_BN_EPS, ACT_SILU);
    int64_t cin = EFF_STEM;
    int b = 0;
    for (int s = 0; st == HG_OK && s < EFF_STAGES; s++) {
        for (int i = 0; st == HG_OK && i < EFF_ARCH[s].repeats; i++, b++) {
            st = add_block(bb, &net->blocks[b], s, i, cin, EFF_ARCH[s].out, EFF_ARCH[s].kernel,
                           i == 0 ? EFF_ARCH[s].stride : 1, EFF_ARCH[s].expand);
            cin = EFF_ARCH[s].out;
        }
        net->stage_last[s] = b - 1;
    }
    return st;
}
