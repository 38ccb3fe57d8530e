#include "pipeline/evaluate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/metrics.h"
#include "pipeline/comm.h"
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
    for (int64_t i = 0; i < n; i++) tensor_free(parts[i]), parts[i] = NULL;
    return all;
}

/* ---- several ranks: batch b is scored by rank b mod N, exactly as one
 * process would score it (same images in the same batch, so the same bits);
 * rank 0 gathers every batch's maps and masks and does the rest. ---- */

typedef struct EvidenceParts {
    int levels;
    int64_t n, batch, n_batches, mask_pixels; /* mask_pixels = M * M */
    Tensor **logp, **negent;                  /* [l * n_batches + b] */
    uint8_t *masks;                           /* n * M * M */
} EvidenceParts;

static int64_t batch_count(const EvidenceParts *p, int64_t b) {
    const int64_t first = b * p->batch;
    return first + p->batch <= p->n ? p->batch : p->n - first;
}

/* Bytes of batch b's maps (floats per level, twice with entropy maps) and masks. */
static int64_t batch_bytes(const EvidenceParts *p, int64_t b, const int64_t *map_pixels,
                           bool has_negent) {
    int64_t floats = 0;
    for (int l = 0; l < p->levels; l++) floats += map_pixels[l];
    return batch_count(p, b) *
           (floats * (has_negent ? 2 : 1) * (int64_t)sizeof(float) + p->mask_pixels);
}

static unsigned char *put(unsigned char *at, const void *src, int64_t bytes) {
    memcpy(at, src, (size_t)bytes);
    return at + bytes;
}

/* Collective: after it, rank 0 holds every batch's parts and masks; other
 * ranks have given theirs away (their parts are freed). */
static hg_status gather_evidence(EvidenceParts *p) {
    const int rank = comm_rank(), ranks = comm_size();
    /* Map sizes come from batch 0, which rank 0 scored; every rank learns them. */
    int64_t shape[2 * HGAD_MAX_LEVELS + 1] = {0};
    if (rank == 0) {
        shape[2 * HGAD_MAX_LEVELS] = p->negent[0] != NULL;
        for (int l = 0; l < p->levels; l++)
            shape[l] = p->logp[l * p->n_batches]->shape[1],
            shape[HGAD_MAX_LEVELS + l] = p->logp[l * p->n_batches]->shape[2];
    }
    hg_status s = comm_broadcast(shape, sizeof shape, 0);
    if (s != HG_OK) return s;
    const bool has_negent = shape[2 * HGAD_MAX_LEVELS] != 0;
    int64_t map_pixels[HGAD_MAX_LEVELS];
    for (int l = 0; l < p->levels; l++) map_pixels[l] = shape[l] * shape[HGAD_MAX_LEVELS + l];
    int64_t bytes = 0;
    for (int64_t b = rank; rank != 0 && b < p->n_batches; b += ranks)
        bytes += batch_bytes(p, b, map_pixels, has_negent);
    unsigned char *mine = malloc(bytes ? (size_t)bytes : 1), *at = mine;
    s = mine ? HG_OK
             : hg_fail(HG_ERR_NOMEM, "evaluate: out of memory for %lld bytes of maps",
                       (long long)bytes);
    for (int64_t b = rank; s == HG_OK && rank != 0 && b < p->n_batches; b += ranks) {
        const int64_t count = batch_count(p, b);
        for (int l = 0; l < p->levels; l++) {
            at = put(at, tensor_data(p->logp[l * p->n_batches + b]),
                     count * map_pixels[l] * (int64_t)sizeof(float));
            if (has_negent)
                at = put(at, tensor_data(p->negent[l * p->n_batches + b]),
                         count * map_pixels[l] * (int64_t)sizeof(float));
        }
        at = put(at, p->masks + b * p->batch * p->mask_pixels, count * p->mask_pixels);
    }
    if ((s = comm_agree(s)) != HG_OK) {
        free(mine);
        return s;
    }
    void *all = NULL;
    int64_t *counts = rank == 0 ? malloc(sizeof(int64_t) * (size_t)ranks) : NULL;
    s = comm_agree(rank != 0 || counts ? HG_OK : hg_fail(HG_ERR_NOMEM, "evaluate: out of memory"));
    if (s == HG_OK) s = comm_gather(mine, bytes, &all, counts, 0);
    free(mine);
    if (rank != 0) {
        for (int64_t i = 0; i < p->levels * p->n_batches; i++) {
            tensor_free(p->logp[i]), tensor_free(p->negent[i]);
            p->logp[i] = p->negent[i] = NULL;
        }
    }
    /* rank 0: unpack the other ranks' batches into their places */
    const unsigned char *from = all;
    for (int r = 1; s == HG_OK && rank == 0 && r < ranks; r++)
        for (int64_t b = r; s == HG_OK && b < p->n_batches; b += ranks) {
            const int64_t count = batch_count(p, b);
            for (int l = 0; s == HG_OK && l < p->levels; l++)
                for (int kind = 0; kind < (has_negent ? 2 : 1); kind++) {
                    Tensor *t = tensor_empty(SHAPE(count, shape[l], shape[HGAD_MAX_LEVELS + l]));
                    if (!t) {
                        s = hg_last_status();
                        break;
                    }
                    const int64_t n = count * map_pixels[l] * (int64_t)sizeof(float);
                    memcpy(tensor_data(t), from, (size_t)n);
                    from += n;
                    (kind ? p->negent : p->logp)[l * p->n_batches + b] = t;
                }
            memcpy(p->masks + b * p->batch * p->mask_pixels, from,
                   (size_t)(count * p->mask_pixels));
            from += count * p->mask_pixels;
        }
    free(all);
    free(counts);
    return s;
}

/* With several ranks, every failure passes through comm_agree so that all
 * ranks stop together (every rank reaches the same agreement points). */
static hg_status agreed(hg_status s) {
    return comm_size() > 1 ? comm_agree(s) : s;
}

hg_status evaluate_category(Detector *d, const DataSet *test, int category, ScoreMode mode,
                            int batch, EvalProgress progress, void *progress_context,
                            CategoryEvaluation *out) {
    memset(out, 0, sizeof *out);
    if (category < 0 || category >= test->n_categories)
        return agreed(hg_fail(HG_ERR_ARG, "evaluate: category %d outside [0, %d)", category,
                              test->n_categories));
    const char *name = test->categories[category];
    snprintf(out->name, sizeof out->name, "%s", name);
    const int class_id = detector_find_class(d, name);
    if (class_id < 0)
        return agreed(
            hg_fail(HG_ERR_ARG, "evaluate: the model was not trained on category '%s'", name));
    if (mode == SCORE_DEPLOYABLE && !d->has_deploy_stats)
        return agreed(
            hg_fail(HG_ERR_ARG, "evaluate: the checkpoint has no deployable score statistics"));
    const int levels = d->model->config.levels;
    const int64_t M = d->preprocess.msk_size, n = dataset_count(test, category, -1);
    if (n == 0)
        return agreed(hg_fail(HG_ERR_ARG, "evaluate: no test images for category '%s'", name));
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
    /* Evidence maps of every image, batch by batch (rank r of N: batches r, r+N, ...). */
    const int rank = comm_rank(), ranks = comm_size();
    for (int64_t b = rank; s == HG_OK && b < n_batches; b += ranks) {
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
        if (s == HG_OK && progress && rank == 0) progress(progress_context, first + count, n);
    }
    if (ranks > 1) {
        EvidenceParts parts = {levels, n,          batch,        n_batches,
                               M * M,  logp_parts, negent_parts, out->masks};
        s = comm_agree(s);
        if (s == HG_OK) s = gather_evidence(&parts);
        if (s == HG_OK && rank == 0 && progress) progress(progress_context, n, n);
        if (s == HG_OK && rank != 0) {
            /* the maps and metrics are rank 0's */
            free(logp_parts);
            free(negent_parts);
            free(out->image_scores), free(out->masks);
            out->image_scores = NULL, out->masks = NULL;
            out->image_auroc = out->pixel_auroc = out->aupro = NAN;
            return comm_agree(HG_OK);
        }
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
    return agreed(s);
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
