/* Data-parallel training over the ranks of comm.h (docs/distributed.md).
 *
 * Every rank holds the whole model and takes an equal, contiguous share of
 * each global batch. Every HGAD loss term is a mean over the batch's rows, so
 * the gradient of the global batch is the mean of the ranks' gradients:
 * averaging them (an all-reduce sum in buckets, then 1/N) gives every rank the
 * single-process gradient up to float summation order, and the same Adam step
 * keeps the replicas identical, which a periodic checksum verifies. With one
 * rank every function here does nothing, so single-process training is
 * unchanged bit for bit. */
#ifndef HG_PIPELINE_DATA_PARALLEL_H
#define HG_PIPELINE_DATA_PARALLEL_H

#include "models/hgad.h"

/* This rank's share of a global batch of `batch` images: images
 * [*first, *first + *count) of the batch, *count = batch / N. HG_ERR_ARG when
 * the batch does not split evenly over the ranks. */
hg_status dp_batch_shard(int64_t batch, int64_t *first, int64_t *count);

/* Reusable flat buffer of one level's gradients. Zero-initialize it. */
typedef struct GradientBuffer {
    float *data;
    int64_t capacity;
    Var **vars;
    int64_t vars_capacity;
} GradientBuffer;
void gradient_buffer_free(GradientBuffer *buffer);

/* Collective: replaces the gradient of every parameter of `level` that has
 * one by its mean over the ranks. The parameters of other levels only hold
 * zeroed gradients (hgad_compute_gradients), the same on every rank, and are
 * left alone. Returns the number of floats reduced in *floats (may be NULL). */
hg_status dp_average_gradients(Hgad *model, int level, GradientBuffer *buffer, int64_t *floats);

/* Collective: replaces values[0 .. levels) by their mean over the ranks (the
 * loss of the global batch, as every term is a mean over rows). */
hg_status dp_average_losses(HgadLossValues *values, int levels);

/* FNV-1a (64 bits) of the names, shapes and value bits of every entry. */
uint64_t dp_param_checksum(const ParamSet *params);

/* Collective: HG_OK when every rank's parameters have rank 0's checksum;
 * otherwise HG_ERR_CHECK on every rank, naming the first rank that differs. */
hg_status dp_check_replicas(const ParamSet *params);

#endif
