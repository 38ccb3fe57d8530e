#include "pipeline/train.h"

#include <stdlib.h>
#include <time.h>

#include "models/positional.h"
#include "pipeline/comm.h"
#include "pipeline/data_parallel.h"
#include "tensor/rng.h"

static double seconds_since(const struct timespec *start) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + 1e-9 * (double)(now.tv_nsec - start->tv_nsec);
}

typedef struct LevelBuffers {
    Tensor *x[HGAD_MAX_LEVELS];    /* (B*H*W, D) */
    Tensor *cond[HGAD_MAX_LEVELS]; /* (B*H*W, Dc), the same every batch */
    int64_t *labels[HGAD_MAX_LEVELS];
} LevelBuffers;

static void free_buffers(LevelBuffers *b) {
    for (int l = 0; l < HGAD_MAX_LEVELS; l++) {
        tensor_free(b->x[l]);
        tensor_free(b->cond[l]);
        free(b->labels[l]);
    }
}

static hg_status make_buffers(const Hgad *model, const FeatureCacheShape *shape, int64_t batch,
                              LevelBuffers *b) {
    for (int l = 0; l < model->config.levels; l++) {
        const int64_t rows = batch * shape->heights[l] * shape->widths[l];
        b->x[l] = tensor_empty(SHAPE(rows, shape->dims[l]));
        b->cond[l] = model->config.cond_dim
                         ? positional_code_batch(model->config.cond_dim, shape->heights[l],
                                                 shape->widths[l], batch)
                         : NULL;
        b->labels[l] = malloc(sizeof(int64_t) * (size_t)rows);
        if (!b->x[l] || (model->config.cond_dim && !b->cond[l]) || !b->labels[l])
            return hg_last_status() != HG_OK ? hg_last_status()
                                             : hg_fail(HG_ERR_NOMEM, "train: out of memory");
    }
    return HG_OK;
}

static hg_status check_cache(const Hgad *model, const FeatureCacheShape *shape) {
    if (shape->levels != model->config.levels)
        return hg_fail(HG_ERR_SHAPE, "train: cache has %d levels, model %d", shape->levels,
                       model->config.levels);
    for (int l = 0; l < shape->levels; l++)
        if (shape->dims[l] != model->config.dims[l])
            return hg_fail(HG_ERR_SHAPE, "train: cache level %d has %lld channels, model %lld", l,
                           (long long)shape->dims[l], (long long)model->config.dims[l]);
    return HG_OK;
}

/* torch 1.13's zero_grad keeps a (zero) gradient on every parameter that
 * ever had one, and Adam keeps stepping those; a model loaded from a
 * checkpoint has no gradients, so give one to every parameter the optimizer
 * has stepped: a resumed run then continues exactly as the uninterrupted one. */
static hg_status restore_zeroed_gradients(Hgad *model) {
    const Optimizer *opt = model->optimizer;
    for (int g = 0; g < opt->n_groups; g++)
        for (int64_t i = 0; i < opt->groups[g].count; i++) {
            const OptimParam *p = &opt->groups[g].params[i];
            if (p->step == 0 || p->var->grad) continue;
            p->var->grad = tensor_zeros_like(p->var->value);
            if (!p->var->grad) return hg_last_status();
        }
    return HG_OK;
}

hg_status train_hgad(Hgad *model, const FeatureCache *cache, const int64_t *labels,
                     const TrainOptions *options, TrainCallback on_batch, EpochCallback on_epoch,
                     void *context) {
    const FeatureCacheShape *shape = feature_cache_shape(cache);
    const HgadConfig *c = &model->config;
    hg_status s = check_cache(model, shape);
    for (int64_t i = 0; s == HG_OK && i < shape->images; i++)
        if (labels[i] < 0 || labels[i] >= c->classes)
            s = hg_fail(HG_ERR_ARG, "train: image %lld has class %lld, the model has %lld",
                        (long long)i, (long long)labels[i], (long long)c->classes);
    if (s == HG_OK && options->batch_images < 1)
        s = hg_fail(HG_ERR_ARG, "train: batch must be positive");
    /* drop_last as the public DataLoader, but never fewer than one batch */
    const int64_t batch = options->batch_images < shape->images ? options->batch_images : shape->images;
    const int64_t batches = batch > 0 ? shape->images / batch : 0;
    /* data parallel: this rank's images of every batch are [shard, shard + local) */
    const int ranks = comm_size();
    const int check_every = options->replica_check_every > 0 ? options->replica_check_every : 100;
    int64_t shard = 0, local = batch;
    if (s == HG_OK) s = dp_batch_shard(batch, &shard, &local);
    if (s == HG_OK) s = restore_zeroed_gradients(model);
    LevelBuffers buffers = {0};
    GradientBuffer gradients = {0};
    int64_t *order = s == HG_OK ? malloc(sizeof(int64_t) * (size_t)shape->images) : NULL;
    if (s == HG_OK)
        s = order ? make_buffers(model, shape, local, &buffers)
                  : hg_fail(HG_ERR_NOMEM, "train: out of memory");
    /* every rank reaches this point: a failure anywhere above stops all */
    s = comm_agree(s);
    /* replicas start equal (same seed or the same checkpoint) */
    if (s == HG_OK) s = dp_check_replicas(model->params);
    HgadSchedule schedule = hgad_schedule_default(c->lr, c->meta_epochs);
    Rng rng = rng_new(options->seed);
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    bool stop = false;
    int64_t steps = 0;
    for (int e = options->first_meta_epoch; s == HG_OK && !stop && e < c->meta_epochs; e++) {
        for (int sub = 0; s == HG_OK && !stop && sub < c->sub_epochs; sub++) {
            /* Each sub-epoch's shuffle starts at its own place of the stream
             * (a permutation of n draws n - 1 values, rarely a few more), so
             * that a resumed run shuffles as the uninterrupted one. */
            rng.counter = ((uint64_t)e * (uint64_t)c->sub_epochs + (uint64_t)sub) *
                          (uint64_t)shape->images * 2;
            rng_permutation(&rng, order, shape->images);
            for (int64_t b = 0; s == HG_OK && !stop && b < batches; b++) {
                TrainEvent ev = {.meta_epoch = e, .meta_epochs = c->meta_epochs, .sub_epoch = sub,
                                 .sub_epochs = c->sub_epochs, .batch = b, .batches = batches};
                ev.lr = hgad_schedule_lr(&schedule, e, b + sub * batches, batches * c->sub_epochs);
                hgad_set_lr(model, ev.lr);
                const int64_t *images = order + b * batch + shard;
                for (int l = 0; s == HG_OK && l < c->levels; l++) {
                    const int64_t per_image = shape->heights[l] * shape->widths[l];
                    for (int64_t k = 0; k < local; k++)
                        for (int64_t r = 0; r < per_image; r++)
                            buffers.labels[l][k * per_image + r] = labels[images[k]];
                    s = feature_cache_gather(cache, l, local, images, buffers.x[l]);
                    if (s == HG_OK)
                        s = hgad_compute_gradients(model, l, buffers.x[l], buffers.cond[l],
                                                   buffers.labels[l], e, &ev.level_losses[l]);
                    /* one process: exactly hgad_train_step */
                    if (ranks > 1) {
                        s = comm_agree(s);
                        if (s == HG_OK) s = dp_average_gradients(model, l, &gradients, NULL);
                    }
                    if (s == HG_OK) s = hgad_apply_step(model);
                }
                if (s == HG_OK) s = dp_average_losses(ev.level_losses, c->levels);
                ev.seconds = seconds_since(&start);
                if (s == HG_OK && on_batch && !on_batch(context, &ev)) stop = true;
                if (s == HG_OK && ranks > 1) {
                    int64_t stops = stop;
                    s = comm_allreduce_sum_int64(&stops, 1);
                    stop = stops > 0;
                }
                if (s == HG_OK && ranks > 1 && ++steps % check_every == 0)
                    s = dp_check_replicas(model->params);
            }
        }
        if (s == HG_OK && !stop) s = dp_check_replicas(model->params);
        if (s == HG_OK && !stop && on_epoch) s = comm_agree(on_epoch(context, e));
    }
    free_buffers(&buffers);
    gradient_buffer_free(&gradients);
    free(order);
    return s;
}

hg_status evidence_maps_from_cache(const Hgad *model, const FeatureCache *cache, int64_t count,
                                   const int64_t *images, int64_t class_id, Tensor **logp,
                                   Tensor **neg_entropy) {
    const FeatureCacheShape *shape = feature_cache_shape(cache);
    hg_status s = check_cache(model, shape);
    for (int l = 0; l < model->config.levels; l++) logp[l] = neg_entropy[l] = NULL;
    for (int l = 0; s == HG_OK && l < model->config.levels; l++) {
        const int64_t H = shape->heights[l], W = shape->widths[l];
        Tensor *x = tensor_empty(SHAPE(count * H * W, shape->dims[l]));
        Tensor *cond = model->config.cond_dim ? positional_code_batch(model->config.cond_dim, H, W, count) : NULL;
        Tensor *lp = NULL, *ne = NULL;
        s = x ? feature_cache_gather(cache, l, count, images, x) : hg_last_status();
        if (s == HG_OK) s = hgad_level_evidence(model, l, x, cond, class_id, &lp, &ne);
        if (s == HG_OK) {
            logp[l] = tensor_reshape(lp, SHAPE(count, H, W));
            neg_entropy[l] = ne ? tensor_reshape(ne, SHAPE(count, H, W)) : NULL;
        }
        tensor_free(x), tensor_free(cond), tensor_free(lp), tensor_free(ne);
    }
    if (s != HG_OK)
        for (int l = 0; l < model->config.levels; l++) {
            tensor_free(logp[l]), tensor_free(neg_entropy[l]);
            logp[l] = neg_entropy[l] = NULL;
        }
    return s;
}
