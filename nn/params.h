/* A named registry of a model's parameters and buffers (its "state dict").
 *
 * Every entry is an autograd leaf Var owned by the ParamSet, named with
 * PyTorch's dotted state-dict names ("subnet.0.weight",
 * "layer1.0.bn1.running_mean") so that checkpoints convert name for name.
 * A parameter is trainable (requires_grad) unless frozen; a buffer never
 * takes a gradient (batch-norm running statistics, fixed permutations).
 * Entries keep the order in which they were added, which is also the order
 * in which they are saved. Layers register under a prefix:
 * param_set_add_under(ps, "subnet.0", "weight", w, false). */
#ifndef HG_NN_PARAMS_H
#define HG_NN_PARAMS_H

#include <stdbool.h>
#include <stdint.h>

#include "autograd/autograd.h"

typedef struct ParamEntry {
    char *name;
    Var *var;       /* leaf owned by the set */
    bool is_buffer; /* never trainable */
    bool frozen;    /* a parameter excluded from training */
} ParamEntry;

typedef struct ParamSet {
    ParamEntry *entries;
    int64_t count, capacity;
    /* Train (true, the default) or eval mode, read by layers such as batch
     * norm and dropout. */
    bool training;
} ParamSet;

ParamSet *param_set_new(void);
void param_set_free(ParamSet *ps); /* frees every Var; NULL is fine */

/* Adds `value` (taken, also on failure) under `name`; returns its leaf Var,
 * or NULL when the name is empty or already present. */
Var *param_set_add(ParamSet *ps, const char *name, Tensor *value, bool is_buffer);
/* Same with name = prefix + "." + leaf (just leaf when prefix is NULL or ""). */
Var *param_set_add_under(ParamSet *ps, const char *prefix, const char *leaf, Tensor *value,
                         bool is_buffer);
/* Writes prefix + "." + leaf (or leaf alone) into buf; HG_ERR_ARG if too long. */
hg_status param_name_join(char *buf, size_t size, const char *prefix, const char *leaf);

/* Lookup by exact name: the Var / the entry, or NULL (no error recorded). */
Var *param_set_find(const ParamSet *ps, const char *name);
ParamEntry *param_set_entry(const ParamSet *ps, const char *name);
/* Iteration: entries 0 .. count-1 in insertion order. */
static inline int64_t param_set_size(const ParamSet *ps) {
    return ps->count;
}
static inline ParamEntry *param_set_at(const ParamSet *ps, int64_t i) {
    return &ps->entries[i];
}
/* True when `name` is `prefix` or lies under it ("a.b" is under "a" but not
 * under "a.b2" or "a.";  every name is under NULL or ""). */
bool param_name_has_prefix(const char *name, const char *prefix);

/* Freezes (frozen = true) or unfreezes every parameter under `prefix`:
 * requires_grad follows, and the gradients of frozen ones are dropped.
 * Buffers stay untrainable. Returns the number of entries matched. */
int64_t param_set_freeze(ParamSet *ps, const char *prefix, bool frozen);
/* True for a parameter that is neither a buffer nor frozen. */
static inline bool param_entry_trainable(const ParamEntry *e) {
    return !e->is_buffer && !e->frozen;
}

/* Drops every gradient. */
void param_set_zero_grad(ParamSet *ps);
/* Number of elements of all entries, or of the trainable ones only. */
int64_t param_set_numel(const ParamSet *ps, bool trainable_only);
/* Sets the training flag (train: true, eval: false). */
void param_set_train(ParamSet *ps, bool training);

/* ---- state dict files (safetensors) ---- */

/* What a load matched and what it did not. Names are owned by the report. */
typedef struct LoadReport {
    int64_t loaded;
    int64_t n_missing, n_unexpected, n_mismatched;
    char **missing;    /* in the set but not in the file */
    char **unexpected; /* in the file (after the prefix filter) but not in the set */
    char **mismatched; /* in both with different shapes: "name: file [a,b] vs model [c,d]" */
} LoadReport;
void load_report_free(LoadReport *report); /* frees the names, zeroes the counts */

/* Loads float tensors of a safetensors file into the set, by name. Only the
 * file's tensors whose names start with `prefix_filter` are considered, with
 * that prefix removed before matching ("backbone." loads a sub-model out of a
 * larger file); NULL or "" considers all. Integer tensors (num_batches_tracked)
 * are ignored. strict: any missing, unexpected or mis-shaped name is an error
 * (HG_ERR_FORMAT) whose message lists the first few, and nothing is loaded.
 * Non-strict: what matches is loaded and the rest is reported. `report` may be
 * NULL; otherwise the caller frees it with load_report_free(). */
hg_status param_set_load(ParamSet *ps, const char *path, bool strict, const char *prefix_filter,
                         LoadReport *report);

/* The same from an open file (`what` names it in messages). File tensors whose
 * names start with `skip_prefix` (NULL: none) are not model state and are
 * ignored, e.g. the "optimizer." entries of a checkpoint. */
typedef struct SafetensorsFile SafetensorsFile;
hg_status param_set_load_from(ParamSet *ps, const SafetensorsFile *f, const char *what, bool strict,
                              const char *prefix_filter, const char *skip_prefix,
                              LoadReport *report);

/* Writes every parameter and buffer (float32) plus `n_metadata` key/value
 * strings into a safetensors file, atomically (a temporary file renamed). */
hg_status param_set_save(const ParamSet *ps, const char *path, int n_metadata,
                         const char *const *keys, const char *const *values);

#endif
