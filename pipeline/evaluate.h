/* Evaluation of a detector on the test images of one category (spec sections
 * 7-8): score maps at msk_size, image scores, image AUROC, pixel AUROC and
 * AUPRO. */
#ifndef HG_PIPELINE_EVALUATE_H
#define HG_PIPELINE_EVALUATE_H

#include "datasets/dataset.h"
#include "pipeline/detector.h"
#include "pipeline/feature_cache.h"

typedef struct CategoryEvaluation {
    char name[64];
    int64_t n_images, n_anomalous;
    double image_auroc, pixel_auroc, aupro;
    int64_t *samples;      /* indices into the test DataSet, in order */
    float *image_scores;   /* n_images */
    uint8_t *image_labels; /* n_images, 1 anomalous */
    Tensor *score_maps;    /* (n_images, M, M) */
    uint8_t *masks;        /* n_images * M * M, 1 anomalous */
} CategoryEvaluation;

void category_evaluation_free(CategoryEvaluation *e); /* frees the arrays */

typedef void (*EvalProgress)(void *context, int64_t done, int64_t total);

/* Scores every test image of `category` (an index of `test`) as the
 * detector's class of the same name. Paper mode normalizes over these test
 * images (the public code); deployable mode uses the detector's training
 * statistics and scores each image on its own.
 *
 * Collective over the ranks of pipeline/comm.h: rank r scores batches r,
 * r+N, ... (the batches one process would form, so every map has the same
 * bits), rank 0 gathers the maps and masks and normalizes and measures them
 * alone: its results equal one process's exactly. Other ranks receive the
 * name, counts, samples and labels only (no score maps, image scores or
 * masks; NaN metrics). A failure on any rank fails every rank. */
hg_status evaluate_category(Detector *d, const DataSet *test, int category, ScoreMode mode,
                            int batch, EvalProgress progress, void *progress_context,
                            CategoryEvaluation *out);

/* The deployable mode's constants: for each class, the normalization of the
 * evidence maps of (up to max_images of) its cached training images.
 * labels[i] is the class of cached image i. */
hg_status detector_measure_deploy_stats(Detector *d, const FeatureCache *cache,
                                        const int64_t *labels, int64_t max_images);

#endif
