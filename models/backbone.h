/* Frozen ImageNet backbones for feature extraction (inference only: no tape,
 * no gradients). Architectures, weight names and padding rules are those of
 * spec/backbones.md:
 *
 *   tf_efficientnet_b6  timm 0.6.7 names; TF "same" padding; SiLU; BN eps 1e-3
 *   wide_resnet50_2     torchvision names; BN eps 1e-5; ReLU
 *   resnet18            torchvision names
 *   mobilenet_v2        torchvision names (1001 classes, TF weights); TF "same"
 *                       padding on stride-2 convolutions; ReLU6
 *
 * Weights come from safetensors files whose tensor names are the reference
 * implementation's state-dict names (tools/export_weights.py writes them).
 * Loading folds every batch norm into the preceding convolution, in place:
 * conv.weight is scaled, bn.bias receives the folded bias and the other bn
 * entries become the identity (weight 1, running_mean 0, running_var 1 - eps).
 * The ParamSet therefore stays a valid state dict computing the same function
 * (the form the shipped mobilenet_v2 file already has). Any batch norm not in
 * that form when a forward starts (e.g. after param_set_load on the ParamSet
 * directly) is folded then, so a Backbone must not be run from two threads at
 * once before its first forward.
 *
 * Taps are feature maps identified by small integers, per backbone:
 *   tf_efficientnet_b6  0..3 = timm's feature_info indices: blocks.0 (stride 2,
 *                       32 ch), blocks.1 (4, 40), blocks.2 (8, 72), blocks.4
 *                       (16, 200). HGAD uses 3. Stages 5 and 6 are not built.
 *   resnet18 / wide_resnet50_2: 0 = stem after ReLU (stride 2, 64 ch), 1..3 =
 *                       layer1..layer3 (strides 4, 8, 16). layer4 is not built.
 *   mobilenet_v2        i = output of features.i, 0..18 (6, 13, 17 are the
 *                       stride 8, 16, 32 maps; 18 needs the head weights).
 * A map of stride s has ceil(H / s) x ceil(W / s) entries (every stride-2 step
 * rounds up). A forward computes the requested taps and stops after the deepest.
 *
 * Inputs are NCHW float32 images already normalized as backbone_input_norm()
 * says; any N >= 1 and H, W >= 1. */
#ifndef HG_MODELS_BACKBONE_H
#define HG_MODELS_BACKBONE_H

#include <stdbool.h>
#include <stdint.h>

#include "nn/params.h"

typedef enum {
    BACKBONE_TF_EFFICIENTNET_B6,
    BACKBONE_WIDE_RESNET50_2,
    BACKBONE_RESNET18,
    BACKBONE_MOBILENET_V2,
    BACKBONE_KIND_COUNT
} BackboneKind;

/* "tf_efficientnet_b6", "wide_resnet50_2", "resnet18", "mobilenet_v2". */
const char *backbone_kind_name(BackboneKind kind);
/* The kind named `name`; HG_ERR_ARG listing the known names otherwise. */
hg_status backbone_kind_from_name(const char *name, BackboneKind *kind);

/* Preprocessing: x = (rgb - mean) / std with rgb in [0, 1]. ImageNet mean/std
 * for the timm/torchvision models, mean = std = 0.5 (x / 127.5 - 1, i.e. [-1, 1])
 * for mobilenet_v2. */
typedef struct BackboneNorm {
    float mean[3], std[3];
} BackboneNorm;
BackboneNorm backbone_input_norm(BackboneKind kind);

/* Tap ids are 0 .. BACKBONE_MAX_TAPS - 1 (not all valid for every kind). */
#define BACKBONE_MAX_TAPS 19

typedef struct BackboneTap {
    const char *module; /* state-dict module whose output it is: "blocks.4", "layer3", ... */
    int stride;         /* 2, 4, 8, 16 or 32 */
    int channels;
} BackboneTap;

/* HG_OK and *info (may be NULL) when `tap` exists for `kind`; HG_ERR_ARG
 * naming the valid taps otherwise. */
hg_status backbone_tap_info(BackboneKind kind, int tap, BackboneTap *info);
/* Map size of `tap` for an h x w input (ceil(h / stride), ceil(w / stride)). */
hg_status backbone_tap_size(BackboneKind kind, int tap, int64_t h, int64_t w, int64_t *oh,
                            int64_t *ow);
/* The taps named in spec/backbones.md: {3} for tf_efficientnet_b6, {1, 2, 3}
 * for the resnets, {6, 13, 17} for mobilenet_v2. Fills taps[], returns the count. */
int backbone_default_taps(BackboneKind kind, int taps[BACKBONE_MAX_TAPS]);
/* The stride-16 tap (HGAD's level map): 3, 3, 3 and 13. */
int backbone_stride16_tap(BackboneKind kind);

typedef struct Backbone Backbone;

/* A backbone with every parameter and buffer registered under its reference
 * state-dict name and shape: convolution weights zero, batch norms PyTorch's
 * defaults (weight 1, bias 0, running_mean 0, running_var 1). */
Backbone *backbone_new(BackboneKind kind);
void backbone_free(Backbone *bb); /* NULL is fine */
BackboneKind backbone_kind(const Backbone *bb);
/* The state dict (owned by the backbone). Get it again before each change of
 * the weights: the next forward then rebuilds what it derived from them
 * (transformed convolution filters). */
ParamSet *backbone_params(Backbone *bb);

/* Loads a state dict into `bb` and folds its batch norms. Strict: a missing
 * tensor, a tensor of another shape or a non-float dtype, or a tensor the
 * backbone does not know is an error (HG_ERR_FORMAT) naming that tensor, and
 * nothing is changed. Tolerated: int64 entries (num_batches_tracked), and the
 * parts of the reference model this library never runs (tf_efficientnet_b6:
 * blocks.5, blocks.6, conv_head, bn2, classifier; resnets: layer4, fc).
 * mobilenet_v2's head (features.18 and classifier.1) may be absent as a whole;
 * then tap 18 and backbone_classify() are unavailable. */
hg_status backbone_load_weights(Backbone *bb, const char *path);
/* backbone_new() + backbone_load_weights(); NULL on failure. */
Backbone *backbone_load(BackboneKind kind, const char *path);

/* Computes the maps of taps[0 .. n_taps) for input x [N, 3, H, W] into
 * out[0 .. n_taps) (new tensors [N, C, H', W'], owned by the caller; a tap may
 * be listed twice). Runs the network only up to the deepest requested tap.
 * On failure every out[i] is NULL. */
hg_status backbone_forward(Backbone *bb, const Tensor *x, int n_taps, const int *taps,
                           Tensor **out);

/* mobilenet_v2 only: features.0..18, global average pool and classifier.1
 * (Linear 1280 -> 1001; index 0 is "background", ImageNet class k is k + 1).
 * Returns logits [N, 1001]. */
#define BACKBONE_MOBILENET_CLASSES 1001
bool backbone_has_classifier(const Backbone *bb);
Tensor *backbone_classify(Backbone *bb, const Tensor *x);

/* ---- feature encoders (spec/hgad.md section 2) ---- */

#define BACKBONE_MAX_LEVELS 8

typedef enum {
    /* HGAD: level l runs the backbone on the input resized to (H >> l, W >> l)
     * (bilinear, align_corners = true; level 0 is the input itself) and keeps
     * the map of taps[0]. */
    ENCODER_MULTISCALE,
    /* One pass on the input; level l is the map of taps[l] (CFLOW-style). */
    ENCODER_MULTILAYER,
} EncoderMode;

typedef struct EncoderSpec {
    EncoderMode mode;
    int levels; /* 1 .. BACKBONE_MAX_LEVELS */
    int taps[BACKBONE_MAX_LEVELS];
} EncoderSpec;

/* HGAD's encoder: multiscale, 3 levels, the stride-16 tap. */
EncoderSpec encoder_spec_hgad(BackboneKind kind);
/* Single pass over the default taps of backbone_default_taps(). */
EncoderSpec encoder_spec_multilayer(BackboneKind kind);
/* HG_ERR_ARG when the spec does not fit `kind` (levels, taps, an input that
 * would shrink to nothing at its deepest level). */
hg_status encoder_spec_check(BackboneKind kind, const EncoderSpec *spec, int64_t h, int64_t w);
/* Channels and map size of level `level` for an h x w input. */
hg_status encoder_level_shape(BackboneKind kind, const EncoderSpec *spec, int64_t h, int64_t w,
                              int level, int64_t *channels, int64_t *oh, int64_t *ow);
/* levels[0 .. spec->levels) receive new tensors [N, C_l, H_l, W_l]; all NULL on failure. */
hg_status backbone_encode(Backbone *bb, const EncoderSpec *spec, const Tensor *x, Tensor **levels);

#endif
