/* A trained detector: the frozen encoder, the HGAD model, preprocessing, the
 * class names, and (for the deployable score) the normalization constants of
 * each class measured on its training images. Saved as one HGAD checkpoint
 * whose metadata records everything but the backbone weights file. */
#ifndef HG_PIPELINE_DETECTOR_H
#define HG_PIPELINE_DETECTOR_H

#include "datasets/transforms.h"
#include "models/anomaly_map.h"
#include "models/hgad.h"
#include "pipeline/encoder.h"

#define DETECTOR_MAX_CLASSES 64

typedef enum { SCORE_PAPER, SCORE_DEPLOYABLE } ScoreMode;

typedef struct Detector {
    Hgad *model;
    FeatureEncoder *encoder;
    Preprocess preprocess;
    int n_classes;
    char class_names[DETECTOR_MAX_CLASSES][64];
    /* per class: constants for logp and negative-entropy maps (deployable mode) */
    bool has_deploy_stats;
    MapNormalization deploy_logp[DETECTOR_MAX_CLASSES], deploy_negent[DETECTOR_MAX_CLASSES];
    HgadMeta meta; /* everything else recorded with the model (config, dataset, ...) */
} Detector;

void detector_free(Detector *d);

/* Writes the checkpoint (model, optimizer state when with_optimizer, metadata). */
hg_status detector_save(const Detector *d, const char *path, bool with_optimizer);
/* Loads a checkpoint; the backbone weights come from `weights` when not NULL,
 * else from the path recorded at training time. */
Detector *detector_load(const char *path, const char *weights);

/* Per-level evidence of normalized images (N, 3, S, S) as class `class_id`:
 * logp[l], neg_entropy[l] (N, H_l, W_l) (neg_entropy NULL without classes). */
hg_status detector_evidence(Detector *d, const Tensor *images, int64_t class_id, Tensor **logp,
                            Tensor **neg_entropy);

/* Score maps (N, M, M) from evidence with the given constants (section 7):
 * A_logp * A_negentropy, or A_logp alone for a prior without classes or a
 * model of a single class (whose posterior entropy is 0 everywhere). */
Tensor *detector_score_maps(const Detector *d, Tensor *const *logp, Tensor *const *neg_entropy,
                            const MapNormalization *norm_logp, const MapNormalization *norm_negent);

/* Index of a class by name, or -1. */
int detector_find_class(const Detector *d, const char *name);

#endif
