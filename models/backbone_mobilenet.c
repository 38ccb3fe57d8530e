/* mobilenet_v2 (torchvision names, Google's TF weights; spec/backbones.md):
 * features.0 = 3x3/2 conv + BN + ReLU6; features.1..17 = inverted residuals
 *   expansion 1: conv.0 (3x3 depthwise + BN + ReLU6), conv.1 (1x1), conv.2 (BN)
 *   expansion 6: conv.0 (1x1 + BN + ReLU6), conv.1 (3x3 depthwise + BN + ReLU6),
 *                conv.2 (1x1), conv.3 (BN)
 *   (+ input when stride 1 and in == out channels);
 * features.18 = 1x1 conv 320 -> 1280 + BN + ReLU6; classifier.1 = Linear
 * 1280 -> 1001 after a global average pool. Every stride-2 convolution uses TF
 * "same" padding (the weights were trained with it). */
#include <stdio.h>
#include <stdlib.h>

#include "models/backbone_internal.h"
#include "tensor/gemm.h"

#define MB_BLOCKS 17
#define MB_HEAD   1280
#define MB_BN_EPS 1e-5f

/* (expansion t, channels c, repeats n, first stride s), torchvision's table. */
static const struct {
    int t, c, n, s;
} MB_ARCH[7] = {{1, 16, 1, 1}, {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
                {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};

static const char *const OPTIONAL[] = {"features.18", "classifier", NULL};

typedef struct MbBlock {
    bool expand, residual;
    ConvBn pw, dw, pwl; /* pw unused without expansion */
} MbBlock;

typedef struct MobileNet {
    ConvBn stem;
    MbBlock blocks[MB_BLOCKS + 1]; /* 1-based: blocks[i] is features.i */
    ConvBn head;
    Tensor *fc_weight, *fc_bias;
} MobileNet;

static Conv2dSpec spec_for(int stride, int kernel, int groups) {
    return stride == 2 ? conv2d_spec_same(2, 1, groups) : conv2d_spec(1, kernel / 2, 1, groups);
}

static hg_status unit(Backbone *bb, ConvBn *u, int block, const char *conv, const char *bn,
                      int64_t cout, int64_t cin_g, int k, Conv2dSpec spec, Activation act) {
    char cn[64], bnn[64];
    snprintf(cn, sizeof cn, "features.%d.%s", block, conv);
    snprintf(bnn, sizeof bnn, "features.%d.%s", block, bn);
    return convbn_add(bb, u, cn, bnn, cout, cin_g, k, spec, MB_BN_EPS, act);
}

static hg_status add_block(Backbone *bb, MbBlock *b, int index, int64_t cin, int64_t cout, int t,
                           int stride) {
    Conv2dSpec one = conv2d_spec(1, 0, 1, 1);
    int64_t mid = cin * t;
    b->expand = t != 1;
    b->residual = stride == 1 && cin == cout;
    if (!b->expand) {
        hg_status s = unit(bb, &b->dw, index, "conv.0.0", "conv.0.1", cin, 1, 3,
                           spec_for(stride, 3, (int)cin), ACT_RELU6);
        return s == HG_OK
                   ? unit(bb, &b->pwl, index, "conv.1", "conv.2", cout, cin, 1, one, ACT_IDENTITY)
                   : s;
    }
    hg_status s = unit(bb, &b->pw, index, "conv.0.0", "conv.0.1", mid, cin, 1, one, ACT_RELU6);
    if (s == HG_OK)
        s = unit(bb, &b->dw, index, "conv.1.0", "conv.1.1", mid, 1, 3,
                 spec_for(stride, 3, (int)mid), ACT_RELU6);
    if (s == HG_OK)
        s = unit(bb, &b->pwl, index, "conv.2", "conv.3", cout, mid, 1, one, ACT_IDENTITY);
    return s;
}

static Tensor *block_forward(const MbBlock *b, const Tensor *x) {
    Tensor *mid = b->expand ? convbn_forward(&b->pw, x, NULL, NULL, NULL) : tensor_ref(x);
    Tensor *d = mid ? convbn_forward(&b->dw, mid, NULL, NULL, NULL) : NULL;
    tensor_free(mid);
    Tensor *out = d ? convbn_forward(&b->pwl, d, b->residual ? x : NULL, NULL, NULL) : NULL;
    tensor_free(d);
    return out;
}

static hg_status run(Backbone *bb, const Tensor *x, const bool *wanted, int deepest,
                     Tensor **slots) {
    const MobileNet *net = bb->arch;
    Tensor *cur = convbn_forward(&net->stem, x, NULL, NULL, NULL);
    for (int i = 0; cur && i <= deepest; i++) {
        if (i > 0) {
            const ConvBn *head = &net->head;
            Tensor *next = i <= MB_BLOCKS ? block_forward(&net->blocks[i], cur)
                                          : convbn_forward(head, cur, NULL, NULL, NULL);
            tensor_free(cur);
            cur = next;
        }
        if (cur && wanted[i] && !(slots[i] = tensor_ref(cur))) {
            tensor_free(cur);
            cur = NULL;
        }
    }
    if (!cur) return hg_last_status();
    tensor_free(cur);
    return HG_OK;
}

/* features.17 -> features.18 (whose epilogue yields the pooled means) ->
 * logits = means @ W^T + b. */
static Tensor *classify(Backbone *bb, const Tensor *x) {
    const MobileNet *net = bb->arch;
    bool wanted[BACKBONE_MAX_TAPS] = {false};
    Tensor *slots[BACKBONE_MAX_TAPS] = {NULL};
    wanted[MB_BLOCKS] = true;
    if (run(bb, x, wanted, MB_BLOCKS, slots) != HG_OK) return NULL;
    int64_t n = x->shape[0];
    float *means = malloc(sizeof(float) * (size_t)(n * MB_HEAD));
    Tensor *h = means ? convbn_forward(&net->head, slots[MB_BLOCKS], NULL, NULL, means) : NULL;
    tensor_free(slots[MB_BLOCKS]);
    Tensor *logits = h ? tensor_empty(SHAPE(n, BACKBONE_MOBILENET_CLASSES)) : NULL;
    tensor_free(h);
    if (logits) {
        float *out = tensor_data(logits);
        const float *b = tensor_data(net->fc_bias);
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < BACKBONE_MOBILENET_CLASSES; k++)
                out[i * BACKBONE_MOBILENET_CLASSES + k] = b[k];
        gemm(false, true, n, BACKBONE_MOBILENET_CLASSES, MB_HEAD, 1.0f, means, MB_HEAD,
             tensor_data(net->fc_weight), MB_HEAD, 1.0f, out, BACKBONE_MOBILENET_CLASSES);
    } else if (!means) {
        hg_fail(HG_ERR_NOMEM, "mobilenet_v2: out of memory");
    }
    free(means);
    return logits;
}

hg_status backbone_build_mobilenet(Backbone *bb) {
    MobileNet *net = calloc(1, sizeof *net);
    if (!net) return hg_fail(HG_ERR_NOMEM, "mobilenet_v2: out of memory");
    bb->arch = net;
    bb->run = run;
    bb->classify = classify;
    bb->optional_prefixes = OPTIONAL;
    hg_status s = convbn_add(bb, &net->stem, "features.0.0", "features.0.1", 32, 3, 3,
                             spec_for(2, 3, 1), MB_BN_EPS, ACT_RELU6);
    int64_t cin = 32;
    int index = 1;
    for (int g = 0; s == HG_OK && g < 7; g++)
        for (int i = 0; s == HG_OK && i < MB_ARCH[g].n; i++, index++) {
            s = add_block(bb, &net->blocks[index], index, cin, MB_ARCH[g].c, MB_ARCH[g].t,
                          i == 0 ? MB_ARCH[g].s : 1);
            cin = MB_ARCH[g].c;
        }
    if (s == HG_OK)
        s = convbn_add(bb, &net->head, "features.18.0", "features.18.1", MB_HEAD, cin, 1,
                       conv2d_spec(1, 0, 1, 1), MB_BN_EPS, ACT_RELU6);
    if (s == HG_OK &&
        !(net->fc_weight = backbone_add_tensor(
              bb, "classifier.1.weight", SHAPE(BACKBONE_MOBILENET_CLASSES, MB_HEAD), 0.0f, false)))
        s = hg_last_status();
    if (s == HG_OK &&
        !(net->fc_bias = backbone_add_tensor(bb, "classifier.1.bias",
                                             SHAPE(BACKBONE_MOBILENET_CLASSES), 0.0f, false)))
        s = hg_last_status();
    return s;
}
