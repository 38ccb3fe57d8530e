#include "pipeline/evaluate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/metrics.h"
#include "pipeline/train.h"
#include "tensor/ops.h"

void category_evaluation_free(CategoryEvaluation *e) {
    free(e->samples);
    free(e->image_scores);
    free(e->image_labels);
    tensor_free(e->score_maps);
    free(e->masks);
    memset(e, 0, sizeof *e);
}

/* Concatenates per-batch maps along dim 0 into one tensor per level. */
static Tensor *stack(Tensor **parts, int64_t n) {
    Tensor *all = tensor_concat((int)n, (const Tensor *const *)parts, 0);
    for (int64_t i = 0; i < n; i++) tensor_free(parts[i]);
    return all;
}

hg_status evaluate_category(Detector *d, const DataSet *test, int category, ScoreMode mode,
                            int batch, EvalProgress progress, void *progress_context,
                            CategoryEvaluation *out) {
    memset(out, 0, sizeof *out);
    if (category < 0 || category >= test->n_categories)
        return hg_fail(HG_ERR_ARG, "evaluate: category %d outside [0, %d)", category, test->n_categories);
    const char *name = test->categories[category];
    snprintf(out->name, sizeof out->name, "%s", name);
    const int class_id = detector_find_class(d, name);
    if (class_id < 0)
        return hg_fail(HG_ERR_ARG, "evaluate: the model was not trained on category '%s'", name);
    if (mode == SCORE_DEPLOYABLE && !d->has_deploy_stats)
        return hg_fail(HG_ERR_ARG, "evaluate: the checkpoint has no deployable score statistics");
    const int levels = d->model->config.levels;
    const int64_t M = d->preprocess.msk_size, n = dataset_count(test, category, -1);
    if (n == 0) return hg_fail(HG_ERR_ARG, "evaluate: no test images for category '%s'", name);
    if (batch < 1) batch = 1;
    out->n_images = n;
    out->samples = malloc(sizeof(int64_t) * (size_t)n);
    out->image_scores = malloc(sizeof(float) * (size_t)n);
    out->image_labels = malloc((size_t)n);
    out->masks = malloc((size_t)(n * M * M));
    const int64_t n_batches = (n + batch - 1) / batch;
    Tensor **logp_parts = calloc((size_t)(levels * n_batches), sizeof(Tensor *));
    Tensor **negent_parts = calloc((size_t)(levels * n_batches), sizeof(Tensor *));
    hg_status s = out->samples && out->image_scores && out->image_labels && out->masks &&
                          logp_parts && negent_parts
                      ? HG_OK
                      : hg_fail(HG_ERR_NOMEM, "evaluate: out of memory");
    for (int64_t i = 0, k = 0; s == HG_OK && i < test->n_samples; i++)
        if (test->samples[i].category == category) {
            out->samples[k] = i;
            out->image_labels[k] = (uint8_t)test->samples[i].label;
            out->n_anomalous += test->samples[i].label;
            k++;
        }
    /* Evidence maps of every image, batch by batch. */
    for (int64_t b = 0; s == HG_OK && b < n_batches; b++) {
        const int64_t first = b * batch, count = first + batch <= n ? batch : n - first;
        Tensor *images = NULL, *masks = NULL;
        s = dataset_load_batch(test, out->samples + first, count, &d->preprocess, &images, &masks);
        Tensor *lp[HGAD_MAX_LEVELS], *ne[HGAD_MAX_LEVELS];
        if (s == HG_OK) s = detector_evidence(d, images, class_id, lp, ne);
        if (s == HG_OK) {
            for (int l = 0; l < levels; l++) {
                logp_parts[l * n_batches + b] = lp[l];
                negent_parts[l * n_batches + b] = ne[l];
            }
            const float *mv = tensor_data(masks);
            for (int64_t j = 0; j < count * M * M; j++) out->masks[first * M * M + j] = mv[j] > 0.5f;
        }
        tensor_free(images);
        tensor_free(masks);
        if (s == HG_OK && progress) progress(progress_context, first + count, n);
    }
    Tensor *logp[HGAD_MAX_LEVELS] = {0}, *negent[HGAD_MAX_LEVELS] = {0};
    const bool has_negent = s == HG_OK && negent_parts[0] != NULL;
    for (int l = 0; s == HG_OK && l < levels; l++) {
        logp[l] = stack(logp_parts + l * n_batches, n_batches);
        negent[l] = has_negent ? stack(negent_parts + l * n_batches, n_batches) : NULL;
        if (!logp[l] || (has_negent && !negent[l])) s = hg_last_status();
    }
    if (s != HG_OK && logp_parts)
        for (int64_t i = 0; i < levels * n_batches; i++) {
            tensor_free(logp_parts[i]);
            if (negent_parts) tensor_free(negent_parts[i]);
        }
    free(logp_parts);
    free(negent_parts);
    /* Section 7: normalize, upsample, sum, invert, blur; multiply the two kinds. */
    MapNormalization n1, n2;
    if (s == HG_OK) {
        if (mode == SCORE_PAPER) {
            s = anomaly_normalization(levels, (const Tensor *const *)logp, M, &n1);
            if (s == HG_OK && has_negent) s = anomaly_normalization(levels, (const Tensor *const *)negent, M, &n2);
        } else {
            n1 = d->deploy_logp[class_id];
            n2 = d->deploy_negent[class_id];
        }
    }
    if (s == HG_OK) {
        out->score_maps = detector_score_maps(d, logp, has_negent ? negent : (Tensor *[]){NULL}, &n1, &n2);
        if (!out->score_maps) s = hg_last_status();
    }
    for (int l = 0; l < levels; l++) tensor_free(logp[l]), tensor_free(negent[l]);
    /* Section 8 metrics. Degenerate sets (one class only) give NaN, not an error. */
    if (s == HG_OK) {
        anomaly_image_scores(out->score_maps, out->image_scores);
        const float *maps = tensor_data(out->score_maps);
        out->image_auroc = metric_auroc(out->image_scores, out->image_labels, n);
        out->pixel_auroc = metric_auroc(maps, out->masks, n * M * M);
        out->aupro = metric_aupro(maps, out->masks, n, M, M, 0.3);
        hg_clear_error();
    }
    if (s != HG_OK) category_evaluation_free(out);
    return s;
}

hg_status detector_measure_deploy_stats(Detector *d, const FeatureCache *cache,
                                        const int64_t *labels, int64_t max_images) {
    const int levels = d->model->config.levels;
    const int64_t total = feature_cache_shape(cache)->images;
    int64_t *images = malloc(sizeof(int64_t) * (size_t)(total ? total : 1));
    if (!images) return hg_fail(HG_ERR_NOMEM, "deploy statistics: out of memory");
    hg_status s = HG_OK;
    for (int c = 0; s == HG_OK && c < d->n_classes; c++) {
        int64_t count = 0;
        for (int64_t i = 0; i < total && count < max_images; i++)
            if (labels[i] == c) images[count++] = i;
        if (count == 0) {
            s = hg_fail(HG_ERR_ARG, "deploy statistics: no training images of class '%s'", d->class_names[c]);
            break;
        }
        Tensor *lp[HGAD_MAX_LEVELS], *ne[HGAD_MAX_LEVELS];
        s = evidence_maps_from_cache(d->model, cache, count, images, c, lp, ne);
        if (s == HG_OK) s = anomaly_normalization(levels, (const Tensor *const *)lp, d->preprocess.msk_size, &d->deploy_logp[c]);
        if (s == HG_OK && ne[0])
            s = anomaly_normalization(levels, (const Tensor *const *)ne, d->preprocess.msk_size, &d->deploy_negent[c]);
        else if (s == HG_OK) /* a prior without classes: no entropy maps, nothing to normalize */
            d->deploy_negent[c] = d->deploy_logp[c];
        for (int l = 0; l < levels; l++) tensor_free(lp[l]), tensor_free(ne[l]);
    }
    free(images);
    if (s == HG_OK) d->has_deploy_stats = true;
    return s;
}
