/* Backbone registry, weight loading, the forward entry points and the
 * feature encoders. The architectures live in backbone_efficientnet.c,
 * backbone_resnet.c and backbone_mobilenet.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/backbone_internal.h"
#include "nn/resize.h"
#include "nn/safetensors.h"

static const char *const KIND_NAMES[BACKBONE_KIND_COUNT] = {"tf_efficientnet_b6", "wide_resnet50_2",
                                                            "resnet18", "mobilenet_v2"};

const char *backbone_kind_name(BackboneKind kind) {
    return (unsigned)kind < BACKBONE_KIND_COUNT ? KIND_NAMES[kind] : "unknown";
}

hg_status backbone_kind_from_name(const char *name, BackboneKind *kind) {
    for (int k = 0; k < BACKBONE_KIND_COUNT; k++)
        if (name && !strcmp(name, KIND_NAMES[k])) {
            *kind = (BackboneKind)k;
            return HG_OK;
        }
    return hg_fail(HG_ERR_ARG,
                   "unknown backbone '%s' (known: tf_efficientnet_b6, wide_resnet50_2, resnet18, "
                   "mobilenet_v2)",
                   name ? name : "(null)");
}

BackboneNorm backbone_input_norm(BackboneKind kind) {
    if (kind == BACKBONE_MOBILENET_V2)
        return (BackboneNorm){{0.5f, 0.5f, 0.5f}, {0.5f, 0.5f, 0.5f}};
    return (BackboneNorm){{0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}};
}

/* ---- taps ---- */

static const BackboneTap EFFNET_TAPS[] = {
    {"blocks.0", 2, 32}, {"blocks.1", 4, 40}, {"blocks.2", 8, 72}, {"blocks.4", 16, 200}};
static const BackboneTap WIDE_TAPS[] = {
    {"relu", 2, 64}, {"layer1", 4, 256}, {"layer2", 8, 512}, {"layer3", 16, 1024}};
static const BackboneTap R18_TAPS[] = {
    {"relu", 2, 64}, {"layer1", 4, 64}, {"layer2", 8, 128}, {"layer3", 16, 256}};
static const BackboneTap MOBILENET_TAPS[] = {
    {"features.0", 2, 32},    {"features.1", 2, 16},    {"features.2", 4, 24},
    {"features.3", 4, 24},    {"features.4", 8, 32},    {"features.5", 8, 32},
    {"features.6", 8, 32},    {"features.7", 16, 64},   {"features.8", 16, 64},
    {"features.9", 16, 64},   {"features.10", 16, 64},  {"features.11", 16, 96},
    {"features.12", 16, 96},  {"features.13", 16, 96},  {"features.14", 32, 160},
    {"features.15", 32, 160}, {"features.16", 32, 160}, {"features.17", 32, 320},
    {"features.18", 32, 1280}};

static const BackboneTap *tap_table(BackboneKind kind, int *count) {
    switch (kind) {
    case BACKBONE_TF_EFFICIENTNET_B6:
        *count = 4;
        return EFFNET_TAPS;
    case BACKBONE_WIDE_RESNET50_2:
        *count = 4;
        return WIDE_TAPS;
    case BACKBONE_RESNET18:
        *count = 4;
        return R18_TAPS;
    case BACKBONE_MOBILENET_V2:
        *count = 19;
        return MOBILENET_TAPS;
    default:
        *count = 0;
        return NULL;
    }
}

hg_status backbone_tap_info(BackboneKind kind, int tap, BackboneTap *info) {
    int count;
    const BackboneTap *table = tap_table(kind, &count);
    if (!table) return hg_fail(HG_ERR_ARG, "backbone: unknown backbone kind %d", (int)kind);
    if (tap < 0 || tap >= count)
        return hg_fail(HG_ERR_ARG, "backbone %s: no tap %d (taps are 0..%d)", KIND_NAMES[kind], tap,
                       count - 1);
    if (info) *info = table[tap];
    return HG_OK;
}

static int64_t ceil_div(int64_t a, int64_t b) {
    return (a + b - 1) / b;
}

hg_status backbone_tap_size(BackboneKind kind, int tap, int64_t h, int64_t w, int64_t *oh,
                            int64_t *ow) {
    BackboneTap info;
    hg_status s = backbone_tap_info(kind, tap, &info);
    if (s != HG_OK) return s;
    if (h < 1 || w < 1)
        return hg_fail(HG_ERR_SHAPE, "backbone %s: input size %lldx%lld is empty", KIND_NAMES[kind],
                       (long long)h, (long long)w);
    /* Repeated ceil halving equals one ceil division by the stride. */
    *oh = ceil_div(h, info.stride);
    *ow = ceil_div(w, info.stride);
    return HG_OK;
}

int backbone_default_taps(BackboneKind kind, int taps[BACKBONE_MAX_TAPS]) {
    switch (kind) {
    case BACKBONE_TF_EFFICIENTNET_B6:
        taps[0] = 3;
        return 1;
    case BACKBONE_WIDE_RESNET50_2:
    case BACKBONE_RESNET18:
        taps[0] = 1, taps[1] = 2, taps[2] = 3;
        return 3;
    case BACKBONE_MOBILENET_V2:
        taps[0] = 6, taps[1] = 13, taps[2] = 17;
        return 3;
    default:
        return 0;
    }
}

int backbone_stride16_tap(BackboneKind kind) {
    return kind == BACKBONE_MOBILENET_V2 ? 13 : 3;
}

/* ---- construction ---- */

Backbone *backbone_new(BackboneKind kind) {
    if ((unsigned)kind >= BACKBONE_KIND_COUNT) {
        hg_fail(HG_ERR_ARG, "backbone_new: unknown backbone kind %d", (int)kind);
        return NULL;
    }
    Backbone *bb = calloc(1, sizeof *bb);
    if (!bb || !(bb->params = param_set_new())) {
        free(bb);
        hg_fail(HG_ERR_NOMEM, "backbone_new: out of memory");
        return NULL;
    }
    bb->kind = kind;
    bb->head_loaded = true;
    param_set_train(bb->params, false);
    hg_status s;
    switch (kind) {
    case BACKBONE_TF_EFFICIENTNET_B6:
        s = backbone_build_efficientnet(bb);
        break;
    case BACKBONE_WIDE_RESNET50_2:
        s = backbone_build_resnet(bb, true);
        break;
    case BACKBONE_RESNET18:
        s = backbone_build_resnet(bb, false);
        break;
    default:
        s = backbone_build_mobilenet(bb);
        break;
    }
    if (s != HG_OK) {
        backbone_free(bb);
        return NULL;
    }
    /* Inference only: nothing here takes a gradient. */
    param_set_freeze(bb->params, NULL, true);
    return bb;
}

void backbone_free(Backbone *bb) {
    if (!bb) return;
    param_set_free(bb->params);
    for (int i = 0; i < bb->n_units; i++) convbn_release(bb->units[i]);
    free(bb->units);
    free(bb->arch);
    free(bb);
}

BackboneKind backbone_kind(const Backbone *bb) {
    return bb->kind;
}

ParamSet *backbone_params(Backbone *bb) {
    bb->weights_exposed = true; /* the caller may change weights: rebuild caches */
    return bb->params;
}

/* ---- loading ---- */

static bool under_any(const char *name, const char *const *prefixes) {
    for (int i = 0; prefixes && prefixes[i]; i++)
        if (param_name_has_prefix(name, prefixes[i])) return true;
    return false;
}

static bool is_float_dtype(SafetensorsDtype d) {
    return d == ST_F32 || d == ST_F16 || d == ST_BF16 || d == ST_F64 || d == ST_F8_E4M3 ||
           d == ST_F8_E5M2;
}

static void entry_shape_str(const SafetensorsEntry *e, char *buf, size_t size) {
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < e->ndim && used < size; i++)
        used +=
            (size_t)snprintf(buf + used, size - used, i ? ",%lld" : "%lld", (long long)e->shape[i]);
    if (used < size) snprintf(buf + used, size - used, "]");
}

/* Checks every name, shape and dtype before anything is copied. *head_present
 * tells whether the optional group is in the file. */
static hg_status validate_file(const Backbone *bb, const SafetensorsFile *f, const char *path,
                               bool *head_present) {
    const char *arch = KIND_NAMES[bb->kind];
    char fs[128], ms[128];
    int64_t n_missing = 0, n_optional = 0, n_optional_missing = 0;
    const char *first_missing = NULL, *first_optional_missing = NULL;
    for (int64_t i = 0; i < param_set_size(bb->params); i++) {
        const ParamEntry *pe = param_set_at(bb->params, i);
        bool optional = under_any(pe->name, bb->optional_prefixes);
        n_optional += optional;
        const SafetensorsEntry *e = safetensors_find(f, pe->name);
        if (!e) {
            if (optional) {
                if (!first_optional_missing) first_optional_missing = pe->name;
                n_optional_missing++;
            } else {
                if (!first_missing) first_missing = pe->name;
                n_missing++;
            }
            continue;
        }
        const Tensor *t = pe->var->value;
        bool same = e->ndim == t->ndim;
        for (int d = 0; same && d < e->ndim; d++) same = e->shape[d] == t->shape[d];
        if (!is_float_dtype(e->dtype))
            return hg_fail(HG_ERR_FORMAT, "%s: tensor '%s' has dtype %s, %s expects floats", path,
                           pe->name, safetensors_dtype_name(e->dtype), arch);
        if (!same) {
            entry_shape_str(e, fs, sizeof fs);
            return hg_fail(HG_ERR_FORMAT, "%s: tensor '%s' has shape %s in the file, %s expects %s",
                           path, pe->name, fs, arch, tensor_shape_str(t, ms, sizeof ms));
        }
    }
    if (n_missing)
        return hg_fail(HG_ERR_FORMAT,
                       "%s: tensor '%s' is missing (%lld of the %lld tensors of %s "
                       "are not in the file)",
                       path, first_missing, (long long)n_missing,
                       (long long)param_set_size(bb->params), arch);
    if (n_optional_missing && n_optional_missing != n_optional)
        return hg_fail(HG_ERR_FORMAT,
                       "%s: tensor '%s' is missing (the head of %s must be complete "
                       "or absent)",
                       path, first_optional_missing, arch);
    *head_present = n_optional_missing == 0;
    for (int i = 0; i < safetensors_count(f); i++) {
        const SafetensorsEntry *e = safetensors_entry(f, i);
        if (!is_float_dtype(e->dtype)) continue; /* num_batches_tracked */
        if (param_set_find(bb->params, e->name) || under_any(e->name, bb->ignored_prefixes))
            continue;
        return hg_fail(HG_ERR_FORMAT, "%s: unexpected tensor '%s' (not part of %s)", path, e->name,
                       arch);
    }
    return HG_OK;
}

static void fold_all(Backbone *bb) {
    for (int i = 0; i < bb->n_units; i++) {
        /* Weights change only through backbone_params or a load, both of
         * which set weights_exposed; caches exist only after a fold. */
        if (bb->weights_exposed) convbn_invalidate(bb->units[i]);
        convbn_fold(bb->units[i]);
    }
    bb->weights_exposed = false;
}

hg_status backbone_load_weights(Backbone *bb, const char *path) {
    if (!bb || !path) return hg_fail(HG_ERR_ARG, "backbone_load: backbone or path is NULL");
    SafetensorsFile *f = safetensors_open(path);
    if (!f) return hg_last_status();
    bool head = true;
    hg_status s = validate_file(bb, f, path, &head);
    if (s == HG_OK) {
        /* Names are known to be right: copy what is there (extra entries are
         * the tolerated ones). */
        LoadReport report;
        bb->weights_exposed = true; /* new weights (even a failed load may write some) */
        s = param_set_load_from(bb->params, f, path, false, NULL, NULL, &report);
        load_report_free(&report);
    }
    safetensors_close(f);
    if (s != HG_OK) return s;
    bb->head_loaded = head;
    fold_all(bb);
    return HG_OK;
}

Backbone *backbone_load(BackboneKind kind, const char *path) {
    Backbone *bb = backbone_new(kind);
    if (bb && backbone_load_weights(bb, path) != HG_OK) {
        backbone_free(bb);
        return NULL;
    }
    return bb;
}

/* ---- forward ---- */

static hg_status check_input(const Backbone *bb, const Tensor *x, const char *op) {
    char sx[96];
    if (!x) return hg_fail(HG_ERR_ARG, "%s: input is NULL", op);
    if (x->ndim != 4 || x->shape[1] != 3 || x->shape[0] < 1 || x->shape[2] < 1 || x->shape[3] < 1)
        return hg_fail(HG_ERR_SHAPE, "%s: input %s must be [N, 3, H, W] (N, H, W >= 1) for %s", op,
                       tensor_shape_str(x, sx, sizeof sx), KIND_NAMES[bb->kind]);
    return HG_OK;
}

hg_status backbone_forward(Backbone *bb, const Tensor *x, int n_taps, const int *taps,
                           Tensor **out) {
    for (int i = 0; out && i < n_taps; i++) out[i] = NULL;
    if (!bb || !out || !taps || n_taps < 1)
        return hg_fail(HG_ERR_ARG, "backbone_forward: needs a backbone, taps and outputs");
    hg_status s = check_input(bb, x, "backbone_forward");
    if (s != HG_OK) return s;
    bool wanted[BACKBONE_MAX_TAPS] = {false};
    int deepest = -1;
    for (int i = 0; i < n_taps; i++) {
        if ((s = backbone_tap_info(bb->kind, taps[i], NULL)) != HG_OK) return s;
        if (bb->kind == BACKBONE_MOBILENET_V2 && taps[i] == 18 && !bb->head_loaded)
            return hg_fail(HG_ERR_ARG, "backbone_forward: tap 18 (features.18) needs weights with "
                                       "the mobilenet_v2 head");
        wanted[taps[i]] = true;
        if (taps[i] > deepest) deepest = taps[i];
    }
    fold_all(bb);
    Tensor *slots[BACKBONE_MAX_TAPS] = {NULL};
    s = bb->run(bb, x, wanted, deepest, slots);
    for (int i = 0; s == HG_OK && i < n_taps; i++) {
        out[i] = tensor_ref(slots[taps[i]]);
        if (!out[i]) s = hg_last_status();
    }
    for (int t = 0; t < BACKBONE_MAX_TAPS; t++) tensor_free(slots[t]);
    if (s != HG_OK)
        for (int i = 0; i < n_taps; i++) tensor_free(out[i]), out[i] = NULL;
    return s;
}

bool backbone_has_classifier(const Backbone *bb) {
    return bb && bb->classify && bb->head_loaded;
}

Tensor *backbone_classify(Backbone *bb, const Tensor *x) {
    if (!bb || !bb->classify) {
        hg_fail(HG_ERR_UNSUPPORTED, "backbone_classify: %s has no classifier",
                bb ? KIND_NAMES[bb->kind] : "(null)");
        return NULL;
    }
    if (!bb->head_loaded) {
        hg_fail(HG_ERR_ARG, "backbone_classify: the loaded weights have no classifier "
                            "(features.18, classifier.1)");
        return NULL;
    }
    if (check_input(bb, x, "backbone_classify") != HG_OK) return NULL;
    fold_all(bb);
    return bb->classify(bb, x);
}

/* ---- encoders ---- */

EncoderSpec encoder_spec_hgad(BackboneKind kind) {
    EncoderSpec spec = {ENCODER_MULTISCALE, 3, {0}};
    spec.taps[0] = backbone_stride16_tap(kind);
    return spec;
}

EncoderSpec encoder_spec_multilayer(BackboneKind kind) {
    int taps[BACKBONE_MAX_TAPS];
    EncoderSpec spec = {ENCODER_MULTILAYER, 0, {0}};
    spec.levels = backbone_default_taps(kind, taps);
    for (int l = 0; l < spec.levels; l++) spec.taps[l] = taps[l];
    return spec;
}

hg_status encoder_spec_check(BackboneKind kind, const EncoderSpec *spec, int64_t h, int64_t w) {
    if (!spec) return hg_fail(HG_ERR_ARG, "encoder: spec is NULL");
    if (spec->levels < 1 || spec->levels > BACKBONE_MAX_LEVELS)
        return hg_fail(HG_ERR_ARG, "encoder: %d levels (1..%d)", spec->levels, BACKBONE_MAX_LEVELS);
    int n_taps = spec->mode == ENCODER_MULTISCALE ? 1 : spec->levels;
    for (int l = 0; l < n_taps; l++) {
        hg_status s = backbone_tap_info(kind, spec->taps[l], NULL);
        if (s != HG_OK) return s;
    }
    if (spec->mode == ENCODER_MULTISCALE &&
        ((h >> (spec->levels - 1)) < 1 || (w >> (spec->levels - 1)) < 1))
        return hg_fail(HG_ERR_SHAPE, "encoder: a %lldx%lld input is too small for %d scales",
                       (long long)h, (long long)w, spec->levels);
    return HG_OK;
}

hg_status encoder_level_shape(BackboneKind kind, const EncoderSpec *spec, int64_t h, int64_t w,
                              int level, int64_t *channels, int64_t *oh, int64_t *ow) {
    hg_status s = encoder_spec_check(kind, spec, h, w);
    if (s != HG_OK) return s;
    if (level < 0 || level >= spec->levels)
        return hg_fail(HG_ERR_ARG, "encoder: no level %d (0..%d)", level, spec->levels - 1);
    bool scales = spec->mode == ENCODER_MULTISCALE;
    int tap = spec->taps[scales ? 0 : level];
    BackboneTap info;
    backbone_tap_info(kind, tap, &info);
    *channels = info.channels;
    return backbone_tap_size(kind, tap, scales ? h >> level : h, scales ? w >> level : w, oh, ow);
}

hg_status backbone_encode(Backbone *bb, const EncoderSpec *spec, const Tensor *x, Tensor **levels) {
    if (!bb || !levels) return hg_fail(HG_ERR_ARG, "backbone_encode: backbone or output is NULL");
    for (int l = 0; spec && l < spec->levels && l < BACKBONE_MAX_LEVELS; l++) levels[l] = NULL;
    hg_status s = check_input(bb, x, "backbone_encode");
    if (s == HG_OK) s = encoder_spec_check(bb->kind, spec, x->shape[2], x->shape[3]);
    if (s != HG_OK) return s;
    if (spec->mode == ENCODER_MULTILAYER)
        return backbone_forward(bb, x, spec->levels, spec->taps, levels);
    /* HGAD's Encoder: F.interpolate(x, size=(S >> l, S >> l), bilinear, align_corners=True). */
    for (int l = 0; s == HG_OK && l < spec->levels; l++) {
        Tensor *xl = l == 0 ? tensor_ref(x)
                            : resize_bilinear_forward(x, x->shape[2] >> l, x->shape[3] >> l, true);
        s = xl ? backbone_forward(bb, xl, 1, spec->taps, &levels[l]) : hg_last_status();
        tensor_free(xl);
    }
    if (s != HG_OK)
        for (int l = 0; l < spec->levels; l++) tensor_free(levels[l]), levels[l] = NULL;
    return s;
}
