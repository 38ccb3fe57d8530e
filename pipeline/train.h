/* Training an HGAD model on cached features (spec section 6): meta epochs of
 * sub-epochs over the shuffled training images of every category together,
 * the faithful learning-rate schedule, and one optimizer step per level per
 * batch. */
#ifndef HG_PIPELINE_TRAIN_H
#define HG_PIPELINE_TRAIN_H

#include "models/anomaly_map.h"
#include "models/hgad.h"
#include "pipeline/feature_cache.h"

typedef struct TrainOptions {
    int batch_images; /* images per batch (the public code: 8); the global batch over ranks */
    uint64_t seed;    /* shuffling */
    int first_meta_epoch; /* > 0 when resuming */
    int replica_check_every; /* several ranks: batches between parameter checksums (0: 100) */
} TrainOptions;

typedef struct TrainEvent {
    int meta_epoch, meta_epochs, sub_epoch, sub_epochs;
    int64_t batch, batches; /* within the sub-epoch */
    double lr;
    HgadLossValues level_losses[HGAD_MAX_LEVELS];
    double seconds; /* since training started */
} TrainEvent;

/* Called after every batch; returning false stops training (HG_OK is still
 * returned, with the model as it is). */
typedef bool (*TrainCallback)(void *context, const TrainEvent *event);
/* Called after every meta epoch, e.g. to write a checkpoint. */
typedef hg_status (*EpochCallback)(void *context, int meta_epoch);

/* labels[i] is the class (category index) of cached image i.
 *
 * Collective over the ranks of pipeline/comm.h (data parallel,
 * pipeline/data_parallel.h): every rank passes the same model, cache, labels
 * and options; each takes its share of every batch (the batch must be a
 * multiple of the number of ranks), gradients are averaged, and the replicas'
 * parameters are compared by checksum at the start, every
 * replica_check_every batches and at the end of every meta epoch. Every rank
 * gets the callbacks, with the loss values of the global batch; a failure on
 * any rank (including in on_epoch) stops every rank with that rank's message,
 * and a stop asked by on_batch on any rank stops them all. With one process
 * this is plain training, unchanged. */
hg_status train_hgad(Hgad *model, const FeatureCache *cache, const int64_t *labels,
                     const TrainOptions *options, TrainCallback on_batch, EpochCallback on_epoch,
                     void *context);

/* Per-level evidence maps of cached images [0 .. count) with their classes:
 * logp[l], neg_entropy[l] receive (count, H_l, W_l); neg_entropy[l] is NULL
 * for a prior without classes. */
hg_status evidence_maps_from_cache(const Hgad *model, const FeatureCache *cache, int64_t count,
                                   const int64_t *images, int64_t class_id, Tensor **logp,
                                   Tensor **neg_entropy);

#endif
