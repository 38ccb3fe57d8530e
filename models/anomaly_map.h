/* From per-level evidence maps to anomaly maps (spec section 7).
 *
 * For each kind of evidence (log-likelihood per dimension, negative entropy)
 * and each level l, the maps E_l (B, H_l, W_l) of B images become
 *
 *   P_l = exp(E_l - m_l)                      m_l: a per-level maximum
 *   S   = sum_l upsample(P_l -> msk x msk)     bilinear, align_corners=True
 *   A   = s - S                               s: a maximum of S
 *   A   = gaussian_blur(A, sigma = 4)         per image, scipy semantics
 *
 * and the score map is A_logp * A_negentropy; an image's score is the max of
 * its map. The two constants (m_l and s) are the normalization:
 * - "paper" mode (the public code): taken over the whole test set of the
 *   category being scored, so scores depend on the other test images;
 * - "deployable" mode: taken once over the training images and saved with the
 *   model, so every image is scored on its own with fixed constants.
 * Both are computed by the same function from the maps they apply to. */
#ifndef HG_MODELS_ANOMALY_MAP_H
#define HG_MODELS_ANOMALY_MAP_H

#include "tensor/tensor.h"

#define ANOMALY_MAX_LEVELS 8

typedef struct MapNormalization {
    int levels;
    double level_max[ANOMALY_MAX_LEVELS]; /* m_l */
    double summed_max;                    /* s */
} MapNormalization;

/* The constants of the maps `maps[l]` (B, H_l, W_l), l < levels: m_l = max of
 * maps[l]; s = max of the summed upsampled probabilities. */
hg_status anomaly_normalization(int levels, const Tensor *const *maps, int64_t mask_size,
                                MapNormalization *out);

/* A (B, mask_size, mask_size) for one kind of evidence with given constants.
 * sigma <= 0 skips the blur. */
Tensor *anomaly_maps(int levels, const Tensor *const *maps, int64_t mask_size, double sigma,
                     const MapNormalization *norm);

/* Image scores: max of each (mask_size x mask_size) map, into scores[B]. */
void anomaly_image_scores(const Tensor *maps, float *scores);

#endif
