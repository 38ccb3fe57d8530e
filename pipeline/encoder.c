#include "pipeline/encoder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/filterbank.h"
#include "nn/resize.h"

static bool is_builtin(const FeatureEncoder *enc) {
    return enc->backbone == NULL;
}

/* Size of the level-l input: S >> l (multiscale) or S. */
static int64_t level_input(const FeatureEncoder *enc, int level) {
    return enc->spec.mode == ENCODER_MULTISCALE ? enc->image_size >> level : enc->image_size;
}

FeatureEncoder *feature_encoder_new(const char *name, const char *weights, EncoderMode mode,
                                    int levels, int64_t image_size) {
    if (image_size < 8 || image_size > 8192) {
        hg_fail(HG_ERR_ARG, "encoder: image size %lld outside [8, 8192]", (long long)image_size);
        return NULL;
    }
    FeatureEncoder *enc = calloc(1, sizeof *enc);
    if (!enc) {
        hg_fail(HG_ERR_NOMEM, "encoder: out of memory");
        return NULL;
    }
    snprintf(enc->name, sizeof enc->name, "%s", name);
    enc->image_size = image_size;
    if (!strcmp(name, ENCODER_BUILTIN_NAME)) {
        if (mode != ENCODER_MULTISCALE) {
            hg_fail(HG_ERR_ARG, "encoder: the built-in filter bank has one tap; use the multiscale mode");
            free(enc);
            return NULL;
        }
        enc->spec = (EncoderSpec){ENCODER_MULTISCALE, levels ? levels : 3, {0}};
        enc->norm = backbone_input_norm(BACKBONE_RESNET18); /* ImageNet mean/std */
        if (enc->spec.levels < 1 || enc->spec.levels > BACKBONE_MAX_LEVELS ||
            (image_size >> (enc->spec.levels - 1)) < FILTERBANK_STRIDE) {
            hg_fail(HG_ERR_ARG, "encoder: image size %lld is too small for %d levels of the built-in encoder "
                    "(the smallest level needs %d pixels)", (long long)image_size, enc->spec.levels,
                    FILTERBANK_STRIDE);
            free(enc);
            return NULL;
        }
        return enc;
    }
    BackboneKind kind;
    if (backbone_kind_from_name(name, &kind) != HG_OK) {
        free(enc);
        return NULL;
    }
    if (!weights) {
        hg_fail(HG_ERR_ARG, "encoder: backbone %s needs a weights file (or use '%s')", name,
                ENCODER_BUILTIN_NAME);
        free(enc);
        return NULL;
    }
    enc->spec = mode == ENCODER_MULTISCALE ? encoder_spec_hgad(kind) : encoder_spec_multilayer(kind);
    if (levels) {
        if (mode == ENCODER_MULTILAYER && levels > enc->spec.levels) {
            hg_fail(HG_ERR_ARG, "encoder: %s has %d default taps, %d levels asked", name,
                    enc->spec.levels, levels);
            free(enc);
            return NULL;
        }
        enc->spec.levels = levels;
    }
    enc->norm = backbone_input_norm(kind);
    if (encoder_spec_check(kind, &enc->spec, image_size, image_size) != HG_OK ||
        !(enc->backbone = backbone_load(kind, weights))) {
        free(enc);
        return NULL;
    }
    return enc;
}

void feature_encoder_free(FeatureEncoder *enc) {
    if (!enc) return;
    backbone_free(enc->backbone);
    free(enc);
}

hg_status feature_encoder_level_shape(const FeatureEncoder *enc, int level, int64_t *channels,
                                      int64_t *height, int64_t *width) {
    if (level < 0 || level >= enc->spec.levels)
        return hg_fail(HG_ERR_ARG, "encoder: level %d outside [0, %d)", level, enc->spec.levels);
    if (!is_builtin(enc))
        return encoder_level_shape(backbone_kind(enc->backbone), &enc->spec, enc->image_size,
                                   enc->image_size, level, channels, height, width);
    int64_t s = level_input(enc, level);
    *channels = FILTERBANK_CHANNELS;
    *height = *width = (s + FILTERBANK_STRIDE - 1) / FILTERBANK_STRIDE;
    return HG_OK;
}

hg_status feature_encoder_forward(FeatureEncoder *enc, const Tensor *images, Tensor **maps) {
    char s[64];
    for (int l = 0; l < enc->spec.levels; l++) maps[l] = NULL;
    if (images->ndim != 4 || images->shape[1] != 3 || images->shape[2] != enc->image_size ||
        images->shape[3] != enc->image_size)
        return hg_fail(HG_ERR_SHAPE, "encoder: images %s, expected (N, 3, %lld, %lld)",
                       tensor_shape_str(images, s, sizeof s), (long long)enc->image_size,
                       (long long)enc->image_size);
    if (!is_builtin(enc)) return backbone_encode(enc->backbone, &enc->spec, images, maps);
    for (int l = 0; l < enc->spec.levels; l++) {
        int64_t size = level_input(enc, l);
        Tensor *input = l == 0 ? tensor_ref(images)
                               : resize_bilinear_forward(images, size, size, true);
        maps[l] = input ? filterbank_forward(input) : NULL;
        tensor_free(input);
        if (!maps[l]) {
            for (int k = 0; k < l; k++) tensor_free(maps[k]), maps[k] = NULL;
            return hg_last_status();
        }
    }
    return HG_OK;
}
