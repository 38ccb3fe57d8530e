/* HGAD checkpoints: configuration <-> metadata strings, save and load. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/hgad.h"
#include "nn/checkpoint.h"
#include "nn/safetensors.h"

hg_status hgad_meta_set(HgadMeta *meta, const char *key, const char *value) {
    if (strlen(key) >= sizeof meta->keys[0] || strlen(value) >= sizeof meta->values[0])
        return hg_fail(HG_ERR_ARG, "checkpoint: metadata '%s' is too long", key);
    for (int i = 0; i < meta->count; i++)
        if (!strcmp(meta->keys[i], key)) {
            strcpy(meta->values[i], value);
            return HG_OK;
        }
    if (meta->count >= HGAD_META_MAX)
        return hg_fail(HG_ERR_ARG, "checkpoint: more than %d metadata entries", HGAD_META_MAX);
    strcpy(meta->keys[meta->count], key);
    strcpy(meta->values[meta->count], value);
    meta->count++;
    return HG_OK;
}

const char *hgad_meta_get(const HgadMeta *meta, const char *key) {
    for (int i = 0; i < meta->count; i++)
        if (!strcmp(meta->keys[i], key)) return meta->values[i];
    return NULL;
}

static const char *prior_names[] = {"hierarchical", "inter-class", "gaussian"};

/* Each configuration field as "hgad.NAME" = text. */
static hg_status config_to_meta(const HgadConfig *c, HgadMeta *m) {
    char v[1024], *p = v;
    for (int l = 0; l < c->levels; l++)
        p += snprintf(p, (size_t)(v + sizeof v - p), "%s%lld", l ? "," : "", (long long)c->dims[l]);
    hg_status s = hgad_meta_set(m, "hgad.dims", v);
#define PUT(key, fmt, value)                                                                       \
    do {                                                                                           \
        snprintf(v, sizeof v, fmt, value);                                                         \
        if (s == HG_OK) s = hgad_meta_set(m, "hgad." key, v);                                      \
    } while (0)
    PUT("format", "%s", "1");
    PUT("levels", "%d", c->levels);
    PUT("cond_dim", "%lld", (long long)c->cond_dim);
    PUT("coupling_blocks", "%d", c->coupling_blocks);
    PUT("clamp", "%.9g", c->clamp);
    PUT("new_clamp", "%d", c->new_clamp);
    PUT("hard_permutation", "%d", c->hard_permutation);
    PUT("subnet_hidden", "%lld", (long long)c->subnet_hidden);
    PUT("prior", "%s", prior_names[c->prior]);
    PUT("classes", "%lld", (long long)c->classes);
    PUT("intra_centers", "%lld", (long long)c->intra_centers);
    PUT("label_smoothing", "%.9g", c->label_smoothing);
    PUT("lambda1", "%.9g", c->lambda1);
    PUT("lambda2", "%.9g", c->lambda2);
    PUT("use_mi", "%d", c->use_mi);
    PUT("use_entropy", "%d", c->use_entropy);
    PUT("lr", "%.17g", c->lr);
    PUT("beta1", "%.17g", c->beta1);
    PUT("beta2", "%.17g", c->beta2);
    PUT("flow_weight_decay", "%.17g", c->flow_weight_decay);
    PUT("centers_lr_x3", "%d", c->centers_lr_x3);
    PUT("meta_epochs", "%d", c->meta_epochs);
    PUT("sub_epochs", "%d", c->sub_epochs);
    PUT("inter_epochs", "%d", c->inter_epochs);
    PUT("seed", "%llu", (unsigned long long)c->seed);
#undef PUT
    return s;
}

/* Parses an integer/float field; a missing key keeps the default. */
static hg_status get_number(const CheckpointMeta *meta, const char *path, const char *key,
                            double low, double high, double *out) {
    const char *text = checkpoint_meta_get(meta, key);
    if (!text) return HG_OK;
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !(v >= low && v <= high))
        return hg_fail(HG_ERR_FORMAT, "checkpoint %s: metadata %s = '%s' is invalid", path, key, text);
    *out = v;
    return HG_OK;
}

static hg_status config_from_meta(const CheckpointMeta *meta, const char *path, HgadConfig *c) {
    const char *dims = checkpoint_meta_get(meta, "hgad.dims");
    if (!dims) return hg_fail(HG_ERR_FORMAT, "checkpoint %s: no hgad.dims metadata (not an hgad checkpoint?)", path);
    *c = hgad_default_config(1, 1, 1);
    int levels = 0;
    for (const char *p = dims; *p;) {
        char *end;
        long long d = strtoll(p, &end, 10);
        if (end == p || d < 2 || levels >= HGAD_MAX_LEVELS || (*end && *end != ','))
            return hg_fail(HG_ERR_FORMAT, "checkpoint %s: hgad.dims '%s' is invalid", path, dims);
        c->dims[levels++] = d;
        p = *end ? end + 1 : end;
    }
    c->levels = levels;
    double v;
    hg_status s = HG_OK;
#define GET(key, field, low, high)                                                                 \
    do {                                                                                           \
        v = (double)c->field;                                                                      \
        if (s == HG_OK) s = get_number(meta, path, "hgad." key, low, high, &v);                    \
        c->field = (__typeof__(c->field))v;                                                        \
    } while (0)
    GET("levels", levels, 1, HGAD_MAX_LEVELS);
    GET("cond_dim", cond_dim, 0, 1 << 20);
    GET("coupling_blocks", coupling_blocks, 1, 1024);
    GET("clamp", clamp, 1e-6, 1e6);
    GET("new_clamp", new_clamp, 0, 1);
    GET("hard_permutation", hard_permutation, 0, 1);
    GET("subnet_hidden", subnet_hidden, 0, 1 << 24);
    GET("classes", classes, 1, 1 << 20);
    GET("intra_centers", intra_centers, 1, 1 << 16);
    GET("label_smoothing", label_smoothing, 0, 1);
    GET("lambda1", lambda1, -1e9, 1e9);
    GET("lambda2", lambda2, -1e9, 1e9);
    GET("use_mi", use_mi, 0, 1);
    GET("use_entropy", use_entropy, 0, 1);
    GET("lr", lr, 0, 1e3);
    GET("beta1", beta1, 0, 1);
    GET("beta2", beta2, 0, 1);
    GET("flow_weight_decay", flow_weight_decay, 0, 1e3);
    GET("centers_lr_x3", centers_lr_x3, 0, 1);
    GET("meta_epochs", meta_epochs, 1, 1e6);
    GET("sub_epochs", sub_epochs, 1, 1e6);
    GET("inter_epochs", inter_epochs, 0, 1e6);
    GET("seed", seed, 0, 1.8e19);
#undef GET
    if (s != HG_OK) return s;
    if (c->levels != levels)
        return hg_fail(HG_ERR_FORMAT, "checkpoint %s: hgad.levels does not match hgad.dims", path);
    const char *prior = checkpoint_meta_get(meta, "hgad.prior");
    if (prior) {
        int found = -1;
        for (int i = 0; i < 3; i++)
            if (!strcmp(prior, prior_names[i])) found = i;
        if (found < 0) return hg_fail(HG_ERR_FORMAT, "checkpoint %s: unknown prior '%s'", path, prior);
        c->prior = (PriorKind)found;
    }
    return HG_OK;
}

hg_status hgad_save(const Hgad *model, const char *path, bool with_optimizer, const HgadMeta *extra) {
    HgadMeta *all = calloc(1, sizeof *all);
    if (!all) return hg_fail(HG_ERR_NOMEM, "checkpoint: out of memory");
    hg_status s = config_to_meta(&model->config, all);
    for (int i = 0; s == HG_OK && extra && i < extra->count; i++)
        s = hgad_meta_set(all, extra->keys[i], extra->values[i]);
    if (s == HG_OK) {
        const char *keys[HGAD_META_MAX], *values[HGAD_META_MAX];
        for (int i = 0; i < all->count; i++) keys[i] = all->keys[i], values[i] = all->values[i];
        s = checkpoint_save(path, model->params, with_optimizer ? model->optimizer : NULL,
                            all->count, keys, values);
    }
    free(all);
    return s;
}

Hgad *hgad_load(const char *path, HgadMeta *extra) {
    SafetensorsFile *file = safetensors_open(path);
    if (!file) return NULL;
    CheckpointMeta meta = {0};
    meta.count = safetensors_metadata_count(file);
    meta.keys = calloc((size_t)(meta.count ? meta.count : 1), sizeof(char *));
    meta.values = calloc((size_t)(meta.count ? meta.count : 1), sizeof(char *));
    for (int i = 0; meta.keys && meta.values && i < meta.count; i++) {
        meta.keys[i] = strdup(safetensors_metadata_key(file, i));
        meta.values[i] = strdup(safetensors_metadata_value(file, i));
    }
    bool has_optimizer = safetensors_metadata(file, "optimizer.kind") != NULL;
    safetensors_close(file);
    HgadConfig config;
    Hgad *model = NULL;
    if (config_from_meta(&meta, path, &config) == HG_OK && (model = hgad_new(&config)) != NULL &&
        checkpoint_load(path, model->params, has_optimizer ? model->optimizer : NULL, NULL) != HG_OK) {
        hgad_free(model);
        model = NULL;
    }
    if (model && extra) {
        memset(extra, 0, sizeof *extra);
        for (int i = 0; i < meta.count; i++)
            if (strncmp(meta.keys[i], "hgad.", 5) && strncmp(meta.keys[i], "optimizer.", 10) &&
                hgad_meta_set(extra, meta.keys[i], meta.values[i]) != HG_OK) {
                hgad_free(model);
                model = NULL;
                break;
            }
    }
    checkpoint_meta_free(&meta);
    return model;
}
