/* DataSet container (open, union, selection) and sample loading (see dataset.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/dataset_internal.h"
#include "datasets/image.h"

/* The public code's CLASS_NAMES lists, in its order. */
static const char *const MVTEC_NAMES[] = {
    "bottle", "cable", "capsule", "carpet",     "grid",       "hazelnut", "leather", "metal_nut",
    "pill",   "screw", "tile",    "toothbrush", "transistor", "wood",     "zipper"};
static const char *const BTAD_NAMES[] = {"01", "02", "03"};
static const char *const MVTEC3D_NAMES[] = {"bagel", "cable_gland", "carrot", "cookie", "dowel",
                                            "foam",  "peach",       "potato", "rope",   "tire"};
static const char *const VISA_NAMES[] = {"candle", "capsules",  "cashew",    "chewinggum",
                                         "fryum",  "macaroni1", "macaroni2", "pcb1",
                                         "pcb2",   "pcb3",      "pcb4",      "pipe_fryum"};

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const char *const FORMAT_NAMES[DATASET_FORMAT_COUNT] = {"mvtec", "btad", "mvtec3d", "visa"};

const char *dataset_format_name(DataSetFormat format) {
    return (unsigned)format < DATASET_FORMAT_COUNT ? FORMAT_NAMES[format] : "unknown";
}

hg_status dataset_format_from_name(const char *name, DataSetFormat *format) {
    for (int f = 0; f < DATASET_FORMAT_COUNT; f++)
        if (name && !strcmp(name, FORMAT_NAMES[f])) {
            *format = (DataSetFormat)f;
            return HG_OK;
        }
    return hg_fail(HG_ERR_ARG, "dataset: unknown format '%s' (known: mvtec, btad, mvtec3d, visa)",
                   name ? name : "(null)");
}

int dataset_default_categories(DataSetFormat format, const char *const **names) {
    switch (format) {
    case DATASET_MVTEC:
        *names = MVTEC_NAMES;
        return COUNT(MVTEC_NAMES);
    case DATASET_BTAD:
        *names = BTAD_NAMES;
        return COUNT(BTAD_NAMES);
    case DATASET_MVTEC3D:
        *names = MVTEC3D_NAMES;
        return COUNT(MVTEC3D_NAMES);
    case DATASET_VISA:
        *names = VISA_NAMES;
        return COUNT(VISA_NAMES);
    default:
        *names = NULL;
        return 0;
    }
}

/* ---------------------------------------------------------------- building */

DataSet *dataset_new_empty(void) {
    DataSet *ds = calloc(1, sizeof *ds);
    if (!ds) hg_fail(HG_ERR_NOMEM, "dataset: out of memory");
    return ds;
}

void dataset_free(DataSet *ds) {
    if (!ds) return;
    for (int i = 0; i < ds->n_categories; i++) free(ds->categories[i]);
    free(ds->categories);
    for (int64_t i = 0; i < ds->n_samples; i++) {
        free(ds->samples[i].image_path);
        free(ds->samples[i].mask_path);
        free(ds->samples[i].defect_type);
    }
    free(ds->samples);
    free(ds);
}

hg_status dataset_add_category(DataSet *ds, const char *name) {
    char **grown = realloc(ds->categories, sizeof(char *) * (size_t)(ds->n_categories + 1));
    if (!grown) return hg_fail(HG_ERR_NOMEM, "dataset: out of memory");
    ds->categories = grown;
    if (!(ds->categories[ds->n_categories] = strdup(name)))
        return hg_fail(HG_ERR_NOMEM, "dataset: out of memory");
    ds->n_categories++;
    return HG_OK;
}

hg_status dataset_add_sample(DataSet *ds, const char *image, const char *mask, const char *type,
                             int category, int label) {
    int64_t n = ds->n_samples;
    /* Capacity is implicit: 16, then doubled whenever n reaches a power of two. */
    if (n == 0 || (n >= 16 && (n & (n - 1)) == 0)) {
        int64_t cap = n == 0 ? 16 : 2 * n;
        Sample *grown = realloc(ds->samples, sizeof(Sample) * (size_t)cap);
        if (!grown)
            return hg_fail(HG_ERR_NOMEM, "dataset: out of memory for %lld samples", (long long)cap);
        ds->samples = grown;
    }
    Sample *s = &ds->samples[n];
    s->image_path = strdup(image);
    s->mask_path = mask ? strdup(mask) : NULL;
    s->defect_type = strdup(type);
    s->category = category;
    s->label = label;
    if (!s->image_path || (mask && !s->mask_path) || !s->defect_type) {
        free(s->image_path);
        free(s->mask_path);
        free(s->defect_type);
        return hg_fail(HG_ERR_NOMEM, "dataset: out of memory");
    }
    ds->n_samples++;
    return HG_OK;
}

/* ------------------------------------------------------------------ opening */

DataSet *dataset_open(DataSetFormat format, const char *root, const char *const *categories,
                      int n_categories, DataSplit split) {
    if ((unsigned)format >= DATASET_FORMAT_COUNT) {
        hg_fail(HG_ERR_ARG, "dataset: unknown format %d", (int)format);
        return NULL;
    }
    const char *fmt = dataset_format_name(format);
    if (!root || !*root) {
        hg_fail(HG_ERR_ARG, "%s: no data set root given", fmt);
        return NULL;
    }
    if (split != SPLIT_TRAIN && split != SPLIT_TEST) {
        hg_fail(HG_ERR_ARG, "%s: unknown split %d", fmt, (int)split);
        return NULL;
    }
    if (!categories || n_categories <= 0)
        n_categories = dataset_default_categories(format, &categories);
    DataSet *ds = dataset_new_empty();
    if (!ds) return NULL;
    hg_status st = HG_OK;
    for (int c = 0; c < n_categories && st == HG_OK; c++) {
        const char *name = categories[c];
        if (!name || !*name || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
            st = hg_fail(HG_ERR_ARG, "%s: invalid category name '%s'", fmt, name ? name : "(null)");
        else if (dataset_find_category(ds, name) >= 0)
            st = hg_fail(HG_ERR_ARG, "%s: category '%s' is listed twice", fmt, name);
        else if ((st = dataset_add_category(ds, name)) == HG_OK)
            st = dataset_read_category(ds, format, root, c, split);
    }
    if (st != HG_OK) {
        dataset_free(ds);
        return NULL;
    }
    return ds;
}

DataSet *dataset_concat(const DataSet *const *parts, int n_parts) {
    DataSet *ds = dataset_new_empty();
    if (!ds) return NULL;
    hg_status st = HG_OK;
    for (int p = 0; p < n_parts && st == HG_OK; p++) {
        const DataSet *part = parts[p];
        if (!part) {
            st = hg_fail(HG_ERR_ARG, "dataset_concat: part %d is NULL", p);
            break;
        }
        int offset = ds->n_categories;
        for (int c = 0; c < part->n_categories && st == HG_OK; c++) {
            if (dataset_find_category(ds, part->categories[c]) >= 0)
                st = hg_fail(HG_ERR_ARG, "dataset_concat: category '%s' appears in two data sets",
                             part->categories[c]);
            else
                st = dataset_add_category(ds, part->categories[c]);
        }
        for (int64_t i = 0; i < part->n_samples && st == HG_OK; i++) {
            const Sample *s = &part->samples[i];
            st = dataset_add_sample(ds, s->image_path, s->mask_path, s->defect_type,
                                    s->category + offset, s->label);
        }
    }
    if (st != HG_OK) {
        dataset_free(ds);
        return NULL;
    }
    return ds;
}

DataSet *dataset_open_union(const char *const roots[4], DataSplit split) {
    /* UnionDataset's order: mvtec, btad, mvtec3d, visa. */
    static const DataSetFormat ORDER[4] = {DATASET_MVTEC, DATASET_BTAD, DATASET_MVTEC3D,
                                           DATASET_VISA};
    DataSet *parts[4] = {0};
    DataSet *ds = NULL;
    int p = 0;
    for (; p < 4; p++) {
        if (!roots || !roots[p]) {
            hg_fail(HG_ERR_ARG, "union: no root given for %s", dataset_format_name(ORDER[p]));
            break;
        }
        if (!(parts[p] = dataset_open(ORDER[p], roots[p], NULL, 0, split))) break;
    }
    if (p == 4) ds = dataset_concat((const DataSet *const *)parts, 4);
    for (int i = 0; i < 4; i++) dataset_free(parts[i]);
    return ds;
}

DataSet *dataset_select_category(const DataSet *ds, int category) {
    if (!ds || category < 0 || category >= ds->n_categories) {
        hg_fail(HG_ERR_ARG, "dataset_select_category: category %d out of range [0, %d)", category,
                ds ? ds->n_categories : 0);
        return NULL;
    }
    DataSet *out = dataset_new_empty();
    if (!out) return NULL;
    hg_status st = HG_OK;
    for (int c = 0; c < ds->n_categories && st == HG_OK; c++)
        st = dataset_add_category(out, ds->categories[c]);
    for (int64_t i = 0; i < ds->n_samples && st == HG_OK; i++) {
        const Sample *s = &ds->samples[i];
        if (s->category == category)
            st = dataset_add_sample(out, s->image_path, s->mask_path, s->defect_type, s->category,
                                    s->label);
    }
    if (st != HG_OK) {
        dataset_free(out);
        return NULL;
    }
    return out;
}

int dataset_find_category(const DataSet *ds, const char *name) {
    for (int c = 0; ds && name && c < ds->n_categories; c++)
        if (!strcmp(ds->categories[c], name)) return c;
    return -1;
}

int64_t dataset_count(const DataSet *ds, int category, int label) {
    int64_t n = 0;
    for (int64_t i = 0; ds && i < ds->n_samples; i++)
        n += ds->samples[i].category == category && (label < 0 || ds->samples[i].label == label);
    return n;
}

/* ------------------------------------------------------------------ loading */

hg_status dataset_load(const DataSet *ds, int64_t index, const Preprocess *pp, Tensor **image,
                       Tensor **mask) {
    if (image) *image = NULL;
    if (mask) *mask = NULL;
    if (!ds || index < 0 || index >= ds->n_samples)
        return hg_fail(HG_ERR_ARG, "dataset_load: sample %lld out of range [0, %lld)",
                       (long long)index, (long long)(ds ? ds->n_samples : 0));
    hg_status st = preprocess_check(pp);
    if (st != HG_OK) return st;
    const Sample *s = &ds->samples[index];
    Image *img = image_load(s->image_path);
    if (!img) return hg_last_status();
    Image *msk = NULL;
    if (mask && s->mask_path) {
        msk = image_load(s->mask_path);
        if (!msk) {
            image_free(img);
            return hg_last_status();
        }
        if (msk->width != img->width || msk->height != img->height) {
            st = hg_fail(HG_ERR_FORMAT, "dataset: mask %s is %dx%d but its image %s is %dx%d",
                         s->mask_path, msk->width, msk->height, s->image_path, img->width,
                         img->height);
        }
    }
    Tensor *ti = NULL, *tm = NULL;
    if (st == HG_OK && image && !(ti = preprocess_image(img, pp))) st = hg_last_status();
    if (st == HG_OK && mask) {
        if (msk)
            tm = preprocess_mask(msk, pp);
        else
            tm = tensor_zeros(SHAPE(1, pp->msk_size, pp->msk_size));
        if (!tm) st = hg_last_status();
    }
    image_free(img);
    image_free(msk);
    if (st != HG_OK) {
        tensor_free(ti);
        tensor_free(tm);
        return st;
    }
    if (image) *image = ti;
    if (mask) *mask = tm;
    return HG_OK;
}

hg_status dataset_load_batch(const DataSet *ds, const int64_t *indices, int64_t n,
                             const Preprocess *pp, Tensor **images, Tensor **masks) {
    if (images) *images = NULL;
    if (masks) *masks = NULL;
    if (!ds || !indices || n <= 0)
        return hg_fail(HG_ERR_ARG, "dataset_load_batch: empty batch (%lld samples)", (long long)n);
    hg_status st = preprocess_check(pp);
    if (st != HG_OK) return st;
    int64_t c = pp->crop_size, m = pp->msk_size;
    Tensor *ti = images ? tensor_empty(SHAPE(n, 3, c, c)) : NULL;
    Tensor *tm = masks ? tensor_empty(SHAPE(n, 1, m, m)) : NULL;
    /* Errors are thread-local: each sample keeps its own status and message,
     * and the first failure in list order is re-raised on this thread. */
    hg_status *status = calloc((size_t)n, sizeof *status);
    char(*message)[256] = calloc((size_t)n, sizeof *message);
    if ((images && !ti) || (masks && !tm) || !status || !message) {
        tensor_free(ti);
        tensor_free(tm);
        free(status);
        free(message);
        return hg_fail(HG_ERR_NOMEM, "dataset_load_batch: out of memory for %lld samples",
                       (long long)n);
    }
    float *di = ti ? tensor_data(ti) : NULL, *dm = tm ? tensor_data(tm) : NULL;
#pragma omp parallel for schedule(dynamic) if (n > 1)
    for (int64_t b = 0; b < n; b++) {
        Tensor *one_i = NULL, *one_m = NULL;
        hg_status s =
            dataset_load(ds, indices[b], pp, images ? &one_i : NULL, masks ? &one_m : NULL);
        if (s == HG_OK) {
            if (one_i) memcpy(di + b * 3 * c * c, tensor_data(one_i), sizeof(float) * 3 * c * c);
            if (one_m) memcpy(dm + b * m * m, tensor_data(one_m), sizeof(float) * m * m);
        } else {
            status[b] = s;
            snprintf(message[b], sizeof message[b], "%s", hg_last_error());
        }
        tensor_free(one_i);
        tensor_free(one_m);
    }
    for (int64_t b = 0; b < n && st == HG_OK; b++)
        if (status[b] != HG_OK) st = hg_fail(status[b], "%s", message[b]);
    free(status);
    free(message);
    if (st != HG_OK) {
        tensor_free(ti);
        tensor_free(tm);
        return st;
    }
    if (images) *images = ti;
    if (masks) *masks = tm;
    return HG_OK;
}
