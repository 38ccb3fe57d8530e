/* torchvision resnet18 (basic blocks) and wide_resnet50_2 (bottlenecks of
 * width 2x), stem to layer3 (spec/backbones.md): conv1 7x7/2 pad 3, bn1, relu,
 * maxpool 3x3/2 pad 1, then layer{1,2,3}.{i}:
 *   basic:      conv1 3x3/s, bn1, relu, conv2 3x3, bn2, + identity, relu
 *   bottleneck: conv1 1x1, bn1, relu, conv2 3x3/s, bn2, relu, conv3 1x1, bn3,
 *               + identity, relu
 * identity = downsample (1x1/s conv + BN) when the shape changes. */
#include <stdio.h>
#include <stdlib.h>

#include "models/backbone_internal.h"
#include "nn/pool.h"

#define RES_LAYERS 3 /* layer4 only serves the stride-32 map: never built */
#define RES_BN_EPS 1e-5f

static const char *const IGNORED[] = {"layer4", "fc", NULL};

typedef struct ResBlock {
    bool bottleneck, has_down;
    ConvBn c1, c2, c3, down; /* c3 only in bottlenecks */
} ResBlock;

typedef struct ResNet {
    ConvBn stem;
    int n_blocks;
    int layer_last[RES_LAYERS]; /* index of the last block of each layer */
    ResBlock blocks[];
} ResNet;

static hg_status add_unit(Backbone *bb, ConvBn *u, const char *block, const char *conv,
                          const char *bn, int64_t cout, int64_t cin, int k, int stride,
                          Activation act) {
    char cn[96], bnn[96];
    snprintf(cn, sizeof cn, "%s.%s", block, conv);
    snprintf(bnn, sizeof bnn, "%s.%s", block, bn);
    return convbn_add(bb, u, cn, bnn, cout, cin, k, conv2d_spec(stride, k / 2, 1, 1), RES_BN_EPS,
                      act);
}

static hg_status add_block(Backbone *bb, ResBlock *b, int layer, int index, int64_t cin,
                           int64_t planes, int stride, bool wide) {
    char p[64];
    snprintf(p, sizeof p, "layer%d.%d", layer, index);
    hg_status s;
    int64_t cout;
    b->bottleneck = wide;
    if (wide) {
        int64_t width = planes * 2; /* wide_resnet50_2: width_per_group 128 = 2 x 64 */
        cout = planes * 4;
        s = add_unit(bb, &b->c1, p, "conv1", "bn1", width, cin, 1, 1, ACT_RELU);
        if (s == HG_OK)
            s = add_unit(bb, &b->c2, p, "conv2", "bn2", width, width, 3, stride, ACT_RELU);
        if (s == HG_OK) s = add_unit(bb, &b->c3, p, "conv3", "bn3", cout, width, 1, 1, ACT_RELU);
    } else {
        cout = planes;
        s = add_unit(bb, &b->c1, p, "conv1", "bn1", cout, cin, 3, stride, ACT_RELU);
        if (s == HG_OK) s = add_unit(bb, &b->c2, p, "conv2", "bn2", cout, cout, 3, 1, ACT_RELU);
    }
    b->has_down = stride != 1 || cin != cout;
    if (s == HG_OK && b->has_down)
        s = add_unit(bb, &b->down, p, "downsample.0", "downsample.1", cout, cin, 1, stride,
                     ACT_IDENTITY);
    return s;
}

static Tensor *block_forward(const ResBlock *b, const Tensor *x) {
    Tensor *t = convbn_forward(&b->c1, x, NULL, NULL, NULL);
    if (b->bottleneck) {
        Tensor *t2 = convbn_forward(&b->c2, t, NULL, NULL, NULL);
        tensor_free(t);
        t = t2;
    }
    if (!t) return NULL;
    Tensor *identity = b->has_down ? convbn_forward(&b->down, x, NULL, NULL, NULL) : tensor_ref(x);
    Tensor *out =
        identity ? convbn_forward(b->bottleneck ? &b->c3 : &b->c2, t, identity, NULL, NULL) : NULL;
    tensor_free(t);
    tensor_free(identity);
    return out;
}

static hg_status keep(Tensor **slot, const Tensor *t) {
    *slot = tensor_ref(t);
    return *slot ? HG_OK : hg_last_status();
}

static hg_status run(Backbone *bb, const Tensor *x, const bool *wanted, int deepest,
                     Tensor **slots) {
    const ResNet *net = bb->arch;
    Tensor *stem = convbn_forward(&net->stem, x, NULL, NULL, NULL);
    if (!stem) return hg_last_status();
    if (wanted[0] && keep(&slots[0], stem) != HG_OK) return tensor_free(stem), hg_last_status();
    if (deepest == 0) return tensor_free(stem), HG_OK;
    Pool2dSpec pool = pool2d_spec(3, 2, 1);
    Tensor *cur = maxpool2d_forward(stem, &pool);
    tensor_free(stem);
    int last = net->layer_last[deepest - 1];
    for (int i = 0; cur && i <= last; i++) {
        Tensor *next = block_forward(&net->blocks[i], cur);
        tensor_free(cur);
        cur = next;
        for (int layer = 1; cur && layer <= deepest; layer++)
            if (wanted[layer] && net->layer_last[layer - 1] == i &&
                keep(&slots[layer], cur) != HG_OK) {
                tensor_free(cur);
                cur = NULL;
            }
    }
    if (!cur) return hg_last_status();
    tensor_free(cur);
    return HG_OK;
}

hg_status backbone_build_resnet(Backbone *bb, bool wide) {
    const int repeats[RES_LAYERS] = {wide ? 3 : 2, wide ? 4 : 2, wide ? 6 : 2};
    int n_blocks = repeats[0] + repeats[1] + repeats[2];
    ResNet *net = calloc(1, sizeof *net + sizeof(ResBlock) * (size_t)n_blocks);
    if (!net)
        return hg_fail(HG_ERR_NOMEM, "%s: out of memory", wide ? "wide_resnet50_2" : "resnet18");
    bb->arch = net;
    bb->run = run;
    bb->ignored_prefixes = IGNORED;
    net->n_blocks = n_blocks;
    hg_status s = convbn_add(bb, &net->stem, "conv1", "bn1", 64, 3, 7, conv2d_spec(2, 3, 1, 1),
                             RES_BN_EPS, ACT_RELU);
    int64_t cin = 64;
    int b = 0;
    for (int layer = 0; s == HG_OK && layer < RES_LAYERS; layer++) {
        int64_t planes = (int64_t)64 << layer;
        for (int i = 0; s == HG_OK && i < repeats[layer]; i++, b++) {
            s = add_block(bb, &net->blocks[b], layer + 1, i, cin, planes,
                          i == 0 && layer > 0 ? 2 : 1, wide);
            cin = wide ? planes * 4 : planes;
        }
        net->layer_last[layer] = b - 1;
    }
    return s;
}
