/* Training checkpoints: model state, optimizer state and metadata in one
 * safetensors file, written atomically, restored exactly, so that training
 * resumed from a checkpoint continues bit-identically.
 *
 * Layout: the model's tensors under their ParamSet names (the file is also a
 * plain state dict), the optimizer's under "optimizer.{group}.{param}.{field}"
 * (optim.h), and in __metadata__ the caller's key/value strings plus
 * "optimizer.kind" and "optimizer.{group}.lr" (the current lr, "%.17g"). */
#ifndef HG_NN_CHECKPOINT_H
#define HG_NN_CHECKPOINT_H

#include "nn/optim.h"
#include "nn/params.h"

/* Metadata read back from a checkpoint; strings owned by the struct. */
typedef struct CheckpointMeta {
    int count;
    char **keys;
    char **values;
} CheckpointMeta;
/* Value for `key`, or NULL. */
const char *checkpoint_meta_get(const CheckpointMeta *meta, const char *key);
void checkpoint_meta_free(CheckpointMeta *meta); /* frees the strings, zeroes it */

/* Saves `model` (all parameters and buffers), the state of `opt` (NULL: none)
 * and n_metadata key/value strings. Keys starting with "optimizer." are
 * reserved (HG_ERR_ARG). */
hg_status checkpoint_save(const char *path, const ParamSet *model, const Optimizer *opt,
                          int n_metadata, const char *const *keys, const char *const *values);

/* Restores `model` strictly (every name present with its shape, nothing
 * unexpected), then the optimizer state and group lrs when `opt` is not NULL
 * (its groups and parameters must have been set up as when saving; a kind
 * differing from the file's is an error), and copies the metadata into
 * `meta` when not NULL. */
hg_status checkpoint_load(const char *path, ParamSet *model, Optimizer *opt, CheckpointMeta *meta);

#endif
