/* The frozen feature encoder of a detector: a pretrained backbone
 * (models/backbone.h) or the built-in filter bank (models/filterbank.h),
 * run as HGAD's multi-scale encoder (spec section 2: the same network on
 * S, S/2, S/4 inputs) or as a single pass with several taps (CFLOW-AD). */
#ifndef HG_PIPELINE_ENCODER_H
#define HG_PIPELINE_ENCODER_H

#include "models/backbone.h"

#define ENCODER_BUILTIN_NAME "builtin"

typedef struct FeatureEncoder {
    char name[32];      /* "builtin" or a backbone name */
    Backbone *backbone; /* NULL for the built-in filter bank */
    EncoderSpec spec;   /* levels and taps; the built-in one is always multiscale */
    int64_t image_size; /* S: inputs are S x S */
    BackboneNorm norm;  /* input normalization the encoder expects */
} FeatureEncoder;

/* `name` is "builtin" (no weights) or a backbone name with a weights file.
 * mode/levels choose the encoder (levels 0 = the backbone's default). Checks
 * that an S x S input gives a non-empty map at every level. */
FeatureEncoder *feature_encoder_new(const char *name, const char *weights, EncoderMode mode,
                                    int levels, int64_t image_size);
void feature_encoder_free(FeatureEncoder *enc);

/* Channels and size of level `level` for S x S inputs. */
hg_status feature_encoder_level_shape(const FeatureEncoder *enc, int level, int64_t *channels,
                                      int64_t *height, int64_t *width);
/* maps[0 .. levels) receive new (N, C_l, H_l, W_l) tensors for normalized
 * images (N, 3, S, S). */
hg_status feature_encoder_forward(FeatureEncoder *enc, const Tensor *images, Tensor **maps);

#endif
