#include "pipeline/detector.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/positional.h"
#include "tensor/ops.h"

void detector_free(Detector *d) {
    if (!d) return;
    hgad_free(d->model);
    feature_encoder_free(d->encoder);
    free(d);
}

int detector_find_class(const Detector *d, const char *name) {
    for (int i = 0; i < d->n_classes; i++)
        if (!strcmp(d->class_names[i], name)) return i;
    return -1;
}

/* "a,b,c" for the level maxima of a normalization, then ";" and the summed max. */
static void format_norm(const MapNormalization *n, char *out, size_t size) {
    int len = 0;
    for (int l = 0; l < n->levels; l++)
        len += snprintf(out + len, size - (size_t)len, "%s%.9g", l ? "," : "", n->level_max[l]);
    snprintf(out + len, size - (size_t)len, ";%.9g", n->summed_max);
}

static hg_status parse_norm(const char *text, int levels, MapNormalization *n) {
    n->levels = levels;
    const char *p = text;
    for (int l = 0; l < levels; l++) {
        char *end;
        n->level_max[l] = strtod(p, &end);
        if (end == p || *end != (l + 1 < levels ? ',' : ';'))
            return hg_fail(HG_ERR_FORMAT, "detector: bad score statistics '%s'", text);
        p = end + 1;
    }
    char *end;
    n->summed_max = strtod(p, &end);
    if (end == p || *end) return hg_fail(HG_ERR_FORMAT, "detector: bad score statistics '%s'", text);
    return HG_OK;
}

hg_status detector_save(const Detector *d, const char *path, bool with_optimizer) {
    HgadMeta *meta = malloc(sizeof *meta);
    if (!meta) return hg_fail(HG_ERR_NOMEM, "detector: out of memory");
    *meta = d->meta;
    char text[1024];
    int len = 0;
    for (int i = 0; i < d->n_classes; i++)
        len += snprintf(text + len, sizeof text - (size_t)len, "%s%s", i ? "," : "", d->class_names[i]);
    hg_status s = hgad_meta_set(meta, "class_names", text);
    if (s == HG_OK) s = hgad_meta_set(meta, "backbone", d->encoder->name);
    snprintf(text, sizeof text, "%s", d->encoder->spec.mode == ENCODER_MULTISCALE ? "multiscale" : "multilayer");
    if (s == HG_OK) s = hgad_meta_set(meta, "encoder", text);
    snprintf(text, sizeof text, "%d", d->preprocess.img_size);
    if (s == HG_OK) s = hgad_meta_set(meta, "img_size", text);
    snprintf(text, sizeof text, "%d", d->preprocess.crop_size);
    if (s == HG_OK) s = hgad_meta_set(meta, "crop_size", text);
    snprintf(text, sizeof text, "%d", d->preprocess.msk_size);
    if (s == HG_OK) s = hgad_meta_set(meta, "msk_size", text);
    for (int i = 0; s == HG_OK && d->has_deploy_stats && i < d->n_classes; i++) {
        char key[64];
        snprintf(key, sizeof key, "score.%d.logp", i);
        format_norm(&d->deploy_logp[i], text, sizeof text);
        s = hgad_meta_set(meta, key, text);
        snprintf(key, sizeof key, "score.%d.neg_entropy", i);
        format_norm(&d->deploy_negent[i], text, sizeof text);
        if (s == HG_OK) s = hgad_meta_set(meta, key, text);
    }
    if (s == HG_OK) s = hgad_save(d->model, path, with_optimizer, meta);
    free(meta);
    return s;
}

static hg_status meta_int(const HgadMeta *m, const char *path, const char *key, int low, int high,
                          int *out) {
    const char *v = hgad_meta_get(m, key);
    char *end;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || end == v || *end || x < low || x > high)
        return hg_fail(HG_ERR_FORMAT, "detector %s: metadata %s is %s", path, key, v ? "invalid" : "missing");
    *out = (int)x;
    return HG_OK;
}

Detector *detector_load(const char *path, const char *weights) {
    Detector *d = calloc(1, sizeof *d);
    if (!d) {
        hg_fail(HG_ERR_NOMEM, "detector: out of memory");
        return NULL;
    }
    d->model = hgad_load(path, &d->meta);
    if (!d->model) {
        free(d);
        return NULL;
    }
    const HgadMeta *m = &d->meta;
    const char *names = hgad_meta_get(m, "class_names"), *backbone = hgad_meta_get(m, "backbone");
    const char *encoder = hgad_meta_get(m, "encoder");
    int img = 0, crop = 0, msk = 0;
    hg_status s = !names || !backbone || !encoder
                      ? hg_fail(HG_ERR_FORMAT, "detector %s: not a detector checkpoint (no class_names/backbone/encoder metadata)", path)
                      : HG_OK;
    if (s == HG_OK) s = meta_int(m, path, "img_size", 8, 8192, &img);
    if (s == HG_OK) s = meta_int(m, path, "crop_size", 8, 8192, &crop);
    if (s == HG_OK) s = meta_int(m, path, "msk_size", 1, 8192, &msk);
    for (const char *p = names; s == HG_OK && p && *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (d->n_classes >= DETECTOR_MAX_CLASSES || len == 0 || len >= sizeof d->class_names[0]) {
            s = hg_fail(HG_ERR_FORMAT, "detector %s: bad class_names metadata", path);
            break;
        }
        memcpy(d->class_names[d->n_classes], p, len);
        d->class_names[d->n_classes++][len] = '\0';
        p = comma ? comma + 1 : p + len;
    }
    if (s == HG_OK && d->n_classes != d->model->config.classes)
        s = hg_fail(HG_ERR_FORMAT, "detector %s: %d class names for a model of %lld classes", path,
                    d->n_classes, (long long)d->model->config.classes);
    if (s == HG_OK) {
        const char *w = weights ? weights : hgad_meta_get(m, "weights");
        EncoderMode mode = !strcmp(encoder, "multilayer") ? ENCODER_MULTILAYER : ENCODER_MULTISCALE;
        d->encoder = feature_encoder_new(backbone, w, mode, d->model->config.levels, crop);
        if (!d->encoder) s = hg_last_status();
    }
    if (s == HG_OK) {
        d->preprocess = preprocess_imagenet(img, msk);
        d->preprocess.crop_size = crop;
        for (int c = 0; c < 3; c++) {
            d->preprocess.mean[c] = d->encoder->norm.mean[c];
            d->preprocess.std[c] = d->encoder->norm.std[c];
        }
        for (int l = 0; s == HG_OK && l < d->model->config.levels; l++) {
            int64_t ch, h, w;
            s = feature_encoder_level_shape(d->encoder, l, &ch, &h, &w);
            if (s == HG_OK && ch != d->model->config.dims[l])
                s = hg_fail(HG_ERR_FORMAT, "detector %s: level %d has %lld channels but %s gives %lld",
                            path, l, (long long)d->model->config.dims[l], backbone, (long long)ch);
        }
    }
    d->has_deploy_stats = hgad_meta_get(m, "score.0.logp") != NULL;
    for (int i = 0; s == HG_OK && d->has_deploy_stats && i < d->n_classes; i++) {
        char key[64];
        snprintf(key, sizeof key, "score.%d.logp", i);
        const char *v = hgad_meta_get(m, key);
        s = v ? parse_norm(v, d->model->config.levels, &d->deploy_logp[i])
              : hg_fail(HG_ERR_FORMAT, "detector %s: no %s metadata", path, key);
        snprintf(key, sizeof key, "score.%d.neg_entropy", i);
        v = hgad_meta_get(m, key);
        if (s == HG_OK)
            s = v ? parse_norm(v, d->model->config.levels, &d->deploy_negent[i])
                  : hg_fail(HG_ERR_FORMAT, "detector %s: no %s metadata", path, key);
    }
    if (s != HG_OK) {
        detector_free(d);
        return NULL;
    }
    return d;
}

hg_status detector_evidence(Detector *d, const Tensor *images, int64_t class_id, Tensor **logp,
                            Tensor **neg_entropy) {
    const int levels = d->model->config.levels;
    Tensor *maps[HGAD_MAX_LEVELS] = {0};
    for (int l = 0; l < levels; l++) logp[l] = neg_entropy[l] = NULL;
    hg_status s = feature_encoder_forward(d->encoder, images, maps);
    const int64_t n = images->shape[0];
    for (int l = 0; s == HG_OK && l < levels; l++) {
        const int64_t D = maps[l]->shape[1], H = maps[l]->shape[2], W = maps[l]->shape[3];
        /* (N, D, H, W) -> rows (N*H*W, D), the flattening of the public code */
        Tensor *nhwc = tensor_permute(maps[l], (const int[]){0, 2, 3, 1});
        Tensor *rows = nhwc ? tensor_reshape(nhwc, SHAPE(n * H * W, D)) : NULL;
        Tensor *cond = d->model->config.cond_dim
                           ? positional_code_batch(d->model->config.cond_dim, H, W, n) : NULL;
        Tensor *lp = NULL, *ne = NULL;
        s = rows ? hgad_level_evidence(d->model, l, rows, cond, class_id, &lp, &ne) : hg_last_status();
        if (s == HG_OK) {
            logp[l] = tensor_reshape(lp, SHAPE(n, H, W));
            neg_entropy[l] = ne ? tensor_reshape(ne, SHAPE(n, H, W)) : NULL;
        }
        tensor_free(nhwc), tensor_free(rows), tensor_free(cond), tensor_free(lp), tensor_free(ne);
    }
    for (int l = 0; l < levels; l++) tensor_free(maps[l]);
    if (s != HG_OK)
        for (int l = 0; l < levels; l++) {
            tensor_free(logp[l]), tensor_free(neg_entropy[l]);
            logp[l] = neg_entropy[l] = NULL;
        }
    return s;
}

Tensor *detector_score_maps(const Detector *d, Tensor *const *logp, Tensor *const *neg_entropy,
                            const MapNormalization *norm_logp, const MapNormalization *norm_negent) {
    const int levels = d->model->config.levels;
    const int64_t M = d->preprocess.msk_size;
    Tensor *a1 = anomaly_maps(levels, (const Tensor *const *)logp, M, 4.0, norm_logp);
    /* With one class the posterior is certain, its entropy 0 everywhere, and
     * A_negentropy would zero every score: the log-likelihood alone scores. */
    if (!a1 || !neg_entropy[0] || d->model->config.classes == 1) return a1;
    Tensor *a2 = anomaly_maps(levels, (const Tensor *const *)neg_entropy, M, 4.0, norm_negent);
    Tensor *score = a2 ? tensor_mul(a1, a2) : NULL;
    tensor_free(a1);
    tensor_free(a2);
    return score;
}
