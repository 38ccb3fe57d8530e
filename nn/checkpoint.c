/* Checkpoints: one safetensors file with model, optimizer state and metadata. */
#include "nn/checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/safetensors.h"

#define OPTIMIZER_PREFIX "optimizer."

const char *checkpoint_meta_get(const CheckpointMeta *meta, const char *key) {
    for (int i = 0; i < meta->count; i++)
        if (strcmp(meta->keys[i], key) == 0) return meta->values[i];
    return NULL;
}

void checkpoint_meta_free(CheckpointMeta *meta) {
    if (!meta) return;
    for (int i = 0; i < meta->count; i++) {
        free(meta->keys[i]);
        free(meta->values[i]);
    }
    free(meta->keys);
    free(meta->values);
    memset(meta, 0, sizeof *meta);
}

static hg_status add_to_writer(void *ctx, const char *name, const Tensor *t) {
    return safetensors_writer_add(ctx, name, t);
}

static hg_status lr_key(char *buf, size_t size, const OptimGroup *grp) {
    int n = snprintf(buf, size, OPTIMIZER_PREFIX "%s.lr", grp->name);
    if (n < 0 || (size_t)n >= size)
        return hg_fail(HG_ERR_ARG, "checkpoint: group name '%s' too long", grp->name);
    return HG_OK;
}

static hg_status write_optimizer(SafetensorsWriter *w, const Optimizer *opt) {
    hg_status s =
        safetensors_writer_set_metadata(w, OPTIMIZER_PREFIX "kind", optim_kind_name(opt->kind));
    char key[300], value[64];
    for (int g = 0; s == HG_OK && g < opt->n_groups; g++) {
        s = lr_key(key, sizeof key, &opt->groups[g]);
        snprintf(value, sizeof value, "%.17g", opt->groups[g].hyper.lr);
        if (s == HG_OK) s = safetensors_writer_set_metadata(w, key, value);
    }
    if (s == HG_OK) s = optim_state_export(opt, add_to_writer, w);
    return s;
}

hg_status checkpoint_save(const char *path, const ParamSet *model, const Optimizer *opt,
                          int n_metadata, const char *const *keys, const char *const *values) {
    for (int i = 0; i < n_metadata; i++)
        if (strncmp(keys[i], OPTIMIZER_PREFIX, strlen(OPTIMIZER_PREFIX)) == 0)
            return hg_fail(HG_ERR_ARG, "checkpoint_save: metadata key '%s' is reserved", keys[i]);
    SafetensorsWriter *w = safetensors_writer_new();
    if (!w) return hg_last_status();
    hg_status s = HG_OK;
    for (int64_t i = 0; s == HG_OK && i < param_set_size(model); i++) {
        const ParamEntry *e = param_set_at(model, i);
        if (strncmp(e->name, OPTIMIZER_PREFIX, strlen(OPTIMIZER_PREFIX)) == 0)
            s = hg_fail(HG_ERR_ARG, "checkpoint_save: model name '%s' is reserved", e->name);
        else
            s = safetensors_writer_add(w, e->name, e->var->value);
    }
    for (int i = 0; s == HG_OK && i < n_metadata; i++)
        s = safetensors_writer_set_metadata(w, keys[i], values[i]);
    if (s == HG_OK && opt) s = write_optimizer(w, opt);
    if (s == HG_OK) s = safetensors_writer_save(w, path);
    safetensors_writer_free(w);
    return s;
}

static hg_status lookup_in_file(void *ctx, const char *name, Tensor **out) {
    const SafetensorsFile *f = ctx;
    *out = NULL;
    if (!safetensors_find(f, name)) return HG_OK;
    *out = safetensors_load_tensor(f, name);
    return *out ? HG_OK : hg_last_status();
}

static hg_status read_optimizer(const SafetensorsFile *f, const char *path, Optimizer *opt) {
    const char *kind = safetensors_metadata(f, OPTIMIZER_PREFIX "kind");
    if (!kind) return hg_fail(HG_ERR_FORMAT, "checkpoint %s: no optimizer state", path);
    if (strcmp(kind, optim_kind_name(opt->kind)) != 0)
        return hg_fail(HG_ERR_FORMAT, "checkpoint %s: optimizer is %s, not %s", path, kind,
                       optim_kind_name(opt->kind));
    /* Check every group's lr before changing anything. */
    char key[300];
    double *lrs = malloc(sizeof(double) * (size_t)(opt->n_groups ? opt->n_groups : 1));
    if (!lrs) return hg_fail(HG_ERR_NOMEM, "checkpoint_load: out of memory");
    hg_status s = HG_OK;
    for (int g = 0; s == HG_OK && g < opt->n_groups; g++) {
        s = lr_key(key, sizeof key, &opt->groups[g]);
        const char *v = s == HG_OK ? safetensors_metadata(f, key) : NULL;
        char *end = NULL;
        if (s == HG_OK && v) lrs[g] = strtod(v, &end);
        if (s == HG_OK && (!v || end == v || *end != '\0'))
            s = hg_fail(HG_ERR_FORMAT, "checkpoint %s: group '%s' has no valid lr", path,
                        opt->groups[g].name);
    }
    if (s == HG_OK) s = optim_state_import(opt, lookup_in_file, (void *)f);
    for (int g = 0; s == HG_OK && g < opt->n_groups; g++) opt->groups[g].hyper.lr = lrs[g];
    free(lrs);
    return s;
}

static hg_status copy_meta(const SafetensorsFile *f, CheckpointMeta *meta) {
    int n = safetensors_metadata_count(f);
    meta->keys = calloc((size_t)(n ? n : 1), sizeof(char *));
    meta->values = calloc((size_t)(n ? n : 1), sizeof(char *));
    if (!meta->keys || !meta->values)
        return hg_fail(HG_ERR_NOMEM, "checkpoint_load: out of memory");
    for (int i = 0; i < n; i++) {
        meta->keys[i] = strdup(safetensors_metadata_key(f, i));
        meta->values[i] = strdup(safetensors_metadata_value(f, i));
        meta->count = i + 1;
        if (!meta->keys[i] || !meta->values[i])
            return hg_fail(HG_ERR_NOMEM, "checkpoint_load: out of memory");
    }
    return HG_OK;
}

hg_status checkpoint_load(const char *path, ParamSet *model, Optimizer *opt, CheckpointMeta *meta) {
    if (meta) memset(meta, 0, sizeof *meta);
    SafetensorsFile *f = safetensors_open(path);
    if (!f) return hg_last_status();
    hg_status s = param_set_load_from(model, f, path, true, NULL, OPTIMIZER_PREFIX, NULL);
    if (s == HG_OK && opt) s = read_optimizer(f, path, opt);
    if (s == HG_OK && meta) s = copy_meta(f, meta);
    if (s != HG_OK && meta) checkpoint_meta_free(meta);
    safetensors_close(f);
    return s;
}
