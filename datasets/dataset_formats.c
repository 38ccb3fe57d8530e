/* The directory layouts of MVTec AD, BTAD, MVTec 3D and VisA, read the way
 * the public HGAD code reads them (the _load_data methods of its datasets/ modules), plus the
 * small CSV reader VisA's split file needs. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "datasets/dataset_internal.h"

/* ------------------------------------------------------------- file system */

char *dataset_path_join(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    bool slash = la > 0 && a[la - 1] != '/';
    char *p = malloc(la + lb + 2);
    if (!p) {
        hg_fail(HG_ERR_NOMEM, "dataset: out of memory for a path");
        return NULL;
    }
    memcpy(p, a, la);
    if (slash) p[la++] = '/';
    memcpy(p + la, b, lb + 1);
    return p;
}

bool dataset_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

bool dataset_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static bool has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

static int compare_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct NameList {
    char **names;
    int n;
} NameList;

static void names_free(NameList *l) {
    for (int i = 0; i < l->n; i++) free(l->names[i]);
    free(l->names);
    l->names = NULL;
    l->n = 0;
}

/* Sorted entries of `dir`: subdirectories when `dirs`, otherwise the other
 * entries whose name ends with one of the `suffixes` (case-sensitive, as
 * Python's str.endswith). Like os.listdir, hidden names are included. */
static hg_status list_dir(const char *fmt, const char *dir, bool dirs, const char *const *suffixes,
                          NameList *out) {
    out->names = NULL;
    out->n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return hg_fail(HG_ERR_IO, "%s: cannot read directory %s: %s", fmt, dir, strerror(errno));
    int cap = 0;
    hg_status st = HG_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *full = dataset_path_join(dir, e->d_name);
        if (!full) {
            st = HG_ERR_NOMEM;
            break;
        }
        bool is_dir = dataset_is_dir(full);
        free(full);
        bool keep = dirs ? is_dir : false;
        if (!dirs && !is_dir)
            for (int s = 0; suffixes[s]; s++) keep = keep || has_suffix(e->d_name, suffixes[s]);
        if (!keep) continue;
        if (out->n == cap) {
            cap = cap ? 2 * cap : 64;
            char **grown = realloc(out->names, sizeof(char *) * (size_t)cap);
            if (!grown) {
                st = hg_fail(HG_ERR_NOMEM, "%s: out of memory listing %s", fmt, dir);
                break;
            }
            out->names = grown;
        }
        out->names[out->n] = strdup(e->d_name);
        if (!out->names[out->n]) {
            st = hg_fail(HG_ERR_NOMEM, "%s: out of memory listing %s", fmt, dir);
            break;
        }
        out->n++;
    }
    closedir(d);
    if (st != HG_OK) {
        names_free(out);
        return st;
    }
    if (out->n > 1) qsort(out->names, (size_t)out->n, sizeof(char *), compare_names);
    return HG_OK;
}

/* Python's os.path.splitext(name)[0] for a base name: drops the last
 * extension unless the name is only dots before it (".png" stays). */
static char *stem_of(const char *name) {
    const char *dot = strrchr(name, '.');
    size_t len = strlen(name);
    if (dot) {
        bool only_dots = true;
        for (const char *p = name; p < dot; p++) only_dots = only_dots && *p == '.';
        if (!only_dots) len = (size_t)(dot - name);
    }
    char *s = malloc(len + 1);
    if (!s) {
        hg_fail(HG_ERR_NOMEM, "dataset: out of memory");
        return NULL;
    }
    memcpy(s, name, len);
    s[len] = 0;
    return s;
}

/* --------------------------------------------------- MVTec-like directories */

typedef struct DirLayout {
    const char *fmt;             /* name in messages */
    const char *good;            /* the normal type directory */
    const char *const *suffixes; /* image files */
    const char *image_subdir;    /* NULL, or "rgb" for MVTec 3D */
    const char *example;         /* what train/ should hold, for messages */
} DirLayout;

static const char *const PNG_ONLY[] = {".png", NULL};
static const char *const BMP_PNG[] = {".bmp", ".png", NULL};

static const DirLayout LAYOUT_MVTEC = {"mvtec", "good", PNG_ONLY, NULL, "good/*.png"};
static const DirLayout LAYOUT_BTAD = {"btad", "ok", BMP_PNG, NULL, "ok/*.bmp (or .png)"};
static const DirLayout LAYOUT_MVTEC3D = {"mvtec3d", "good", PNG_ONLY, "rgb", "good/rgb/*.png"};

/* Mask path of image `stem` of defect `type` in category dir `cat_dir`. */
static char *mask_path(DataSetFormat format, const char *cat_dir, const char *category,
                       const char *type, const char *stem) {
    char tail[4096];
    int n;
    if (format == DATASET_MVTEC)
        n = snprintf(tail, sizeof tail, "ground_truth/%s/%s_mask.png", type, stem);
    else if (format == DATASET_BTAD) /* BTAD's product 03 ships its masks as BMP */
        n = snprintf(tail, sizeof tail, "ground_truth/%s/%s.%s", type, stem,
                     strcmp(category, "03") == 0 ? "bmp" : "png");
    else
        n = snprintf(tail, sizeof tail, "test/%s/gt/%s.png", type, stem);
    if (n < 0 || (size_t)n >= sizeof tail) {
        hg_fail(HG_ERR_ARG, "dataset: path too long under %s", cat_dir);
        return NULL;
    }
    return dataset_path_join(cat_dir, tail);
}

/* Samples of one type directory: sorted image files, label, mask pairing. */
static hg_status read_type_dir(DataSet *ds, DataSetFormat format, const DirLayout *L,
                               const char *cat_dir, const char *category, int index,
                               const char *type, const char *image_dir) {
    NameList files;
    hg_status st = list_dir(L->fmt, image_dir, false, L->suffixes, &files);
    if (st != HG_OK) return st;
    int label = strcmp(type, L->good) == 0 ? 0 : 1;
    for (int i = 0; i < files.n && st == HG_OK; i++) {
        char *image = dataset_path_join(image_dir, files.names[i]);
        char *stem = image ? stem_of(files.names[i]) : NULL;
        char *mask = NULL;
        if (!stem) {
            st = hg_last_status();
        } else if (label) {
            mask = mask_path(format, cat_dir, category, type, stem);
            if (!mask)
                st = hg_last_status();
            else if (!dataset_exists(mask))
                st = hg_fail(HG_ERR_IO, "%s: mask %s of image %s is missing", L->fmt, mask, image);
        }
        if (st == HG_OK) st = dataset_add_sample(ds, image, mask, type, index, label);
        free(image);
        free(stem);
        free(mask);
    }
    names_free(&files);
    return st;
}

static hg_status read_dirs(DataSet *ds, DataSetFormat format, const DirLayout *L, const char *root,
                           int index, DataSplit split) {
    const char *category = ds->categories[index];
    const char *phase = split == SPLIT_TRAIN ? "train" : "test";
    if (!dataset_is_dir(root))
        return hg_fail(HG_ERR_IO, "%s: data set root %s is not a directory", L->fmt, root);
    char *cat_dir = dataset_path_join(root, category);
    char *phase_dir = cat_dir ? dataset_path_join(cat_dir, phase) : NULL;
    char *good_dir = phase_dir ? dataset_path_join(phase_dir, L->good) : NULL;
    if (!good_dir) {
        free(cat_dir);
        free(phase_dir);
        return HG_ERR_NOMEM;
    }
    hg_status st = HG_OK;
    NameList types = {0};
    int64_t before = ds->n_samples;
    if (!dataset_is_dir(cat_dir)) {
        char *own_train = dataset_path_join(root, "train");
        bool is_category = own_train && dataset_is_dir(own_train);
        free(own_train);
        st = hg_fail(HG_ERR_IO, "%s: no category directory %s (expected %s/<category>/train/%s)%s",
                     L->fmt, cat_dir, root, L->example,
                     is_category ? "; the root itself looks like a category: pass its parent" : "");
    } else if (split == SPLIT_TRAIN && !dataset_is_dir(good_dir)) {
        st = hg_fail(HG_ERR_IO, "%s: no train/%s under %s", L->fmt, L->good, cat_dir);
    } else if (!dataset_is_dir(phase_dir)) {
        st = hg_fail(HG_ERR_IO, "%s: no %s under %s (expected %s/<defect type>/...)", L->fmt, phase,
                     cat_dir, phase_dir);
    } else {
        st = list_dir(L->fmt, phase_dir, true, NULL, &types);
    }
    for (int t = 0; t < types.n && st == HG_OK; t++) {
        char *type_dir = dataset_path_join(phase_dir, types.names[t]);
        char *image_dir =
            type_dir && L->image_subdir ? dataset_path_join(type_dir, L->image_subdir) : type_dir;
        if (!image_dir)
            st = HG_ERR_NOMEM;
        else if (dataset_is_dir(image_dir)) /* MVTec 3D: types without rgb/ are skipped */
            st = read_type_dir(ds, format, L, cat_dir, category, index, types.names[t], image_dir);
        if (image_dir != type_dir) free(image_dir);
        free(type_dir);
    }
    if (st == HG_OK && ds->n_samples == before)
        st = hg_fail(HG_ERR_IO, "%s: no images for category '%s' under %s (expected %s/%s)", L->fmt,
                     category, phase_dir, phase_dir,
                     split == SPLIT_TRAIN ? L->example : "<defect type>/...");
    names_free(&types);
    free(cat_dir);
    free(phase_dir);
    free(good_dir);
    return st;
}

/* ------------------------------------------------------------------- VisA */

/* A parsed CSV file: rows of fields (row 0 is the header). */
typedef struct Csv {
    char ***rows;
    int *n_fields;
    int n_rows;
} Csv;

static void csv_free(Csv *c) {
    for (int r = 0; r < c->n_rows; r++) {
        for (int f = 0; f < c->n_fields[r]; f++) free(c->rows[r][f]);
        free(c->rows[r]);
    }
    free(c->rows);
    free(c->n_fields);
    memset(c, 0, sizeof *c);
}

/* Growable NUL-terminated byte buffer for one field. */
typedef struct Buf {
    char *p;
    size_t n, cap;
} Buf;

static bool buf_put(Buf *b, char ch) {
    if (b->n + 1 >= b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 64;
        char *p = realloc(b->p, cap);
        if (!p) return false;
        b->p = p;
        b->cap = cap;
    }
    b->p[b->n++] = ch;
    b->p[b->n] = 0;
    return true;
}

static bool at_row_end(const char *text, size_t len, size_t i) {
    return i >= len || text[i] == '\n' || (text[i] == '\r' && i + 1 < len && text[i + 1] == '\n');
}

/* One field starting at *pos; leaves *pos on the ',' or row end after it. */
static hg_status csv_field(const char *text, size_t len, size_t *pos, const char *path,
                           char **out) {
    Buf b = {0};
    size_t i = *pos;
    bool ok = buf_put(&b, 0); /* allocate: an empty field is "" */
    b.n = 0;
    if (ok && i < len && text[i] == '"') { /* quoted: up to the lone closing quote */
        for (i++;; i++) {
            if (i >= len) {
                free(b.p);
                return hg_fail(HG_ERR_FORMAT, "visa: %s: unterminated quoted field", path);
            }
            if (text[i] == '"') {
                if (i + 1 >= len || text[i + 1] != '"') {
                    i++;
                    break;
                }
                i++; /* "" is one quote */
            }
            if (!(ok = buf_put(&b, text[i]))) break;
        }
    }
    while (ok && text[i] != ',' && !at_row_end(text, len, i)) ok = buf_put(&b, text[i++]);
    if (!ok) {
        free(b.p);
        return hg_fail(HG_ERR_NOMEM, "visa: out of memory reading %s", path);
    }
    *pos = i;
    *out = b.p;
    return HG_OK;
}

/* Appends `field` to a growable array of strings. */
static bool push_field(char ***fields, int *n, int *cap, char *field) {
    if (*n == *cap) {
        int grown_cap = *cap ? 2 * *cap : 16;
        char **grown = realloc(*fields, sizeof(char *) * (size_t)grown_cap);
        if (!grown) return false;
        *fields = grown;
        *cap = grown_cap;
    }
    (*fields)[(*n)++] = field;
    return true;
}

/* RFC 4180: fields separated by ',', rows by "\n" or "\r\n", a field in
 * double quotes may hold ',', newlines and "" (a quote). Empty lines are
 * skipped (pandas' default); a UTF-8 byte-order mark is dropped. */
static hg_status csv_parse(const char *text, size_t len, const char *path, Csv *out) {
    memset(out, 0, sizeof *out);
    size_t i = len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3) ? 3 : 0;
    int row_cap = 0;
    hg_status st = HG_OK;
    while (i < len && st == HG_OK) {
        if (at_row_end(text, len, i)) { /* an empty line */
            i += text[i] == '\r' ? 2 : 1;
            continue;
        }
        char **fields = NULL;
        int nf = 0, fcap = 0;
        for (;;) {
            char *field = NULL;
            if ((st = csv_field(text, len, &i, path, &field)) != HG_OK) break;
            if (!push_field(&fields, &nf, &fcap, field)) {
                free(field);
                st = hg_fail(HG_ERR_NOMEM, "visa: out of memory reading %s", path);
                break;
            }
            if (i < len && text[i] == ',') {
                i++;
                continue;
            }
            if (i < len) i += text[i] == '\r' ? 2 : 1; /* past the row end */
            break;
        }
        if (st == HG_OK && out->n_rows == row_cap) {
            row_cap = row_cap ? 2 * row_cap : 256;
            char ***rows = realloc(out->rows, sizeof(char **) * (size_t)row_cap);
            if (rows) out->rows = rows;
            int *counts = rows ? realloc(out->n_fields, sizeof(int) * (size_t)row_cap) : NULL;
            if (counts) out->n_fields = counts;
            if (!rows || !counts)
                st = hg_fail(HG_ERR_NOMEM, "visa: out of memory reading %s", path);
        }
        if (st != HG_OK) {
            for (int f = 0; f < nf; f++) free(fields[f]);
            free(fields);
            break;
        }
        out->rows[out->n_rows] = fields;
        out->n_fields[out->n_rows++] = nf;
    }
    if (st != HG_OK) csv_free(out);
    return st;
}

static hg_status csv_read(const char *path, Csv *out) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return hg_fail(HG_ERR_IO, "visa: cannot open %s: %s", path, strerror(errno));
    size_t cap = 1 << 16, len = 0;
    char *text = malloc(cap);
    while (text) {
        len += fread(text + len, 1, cap - len, f);
        if (len < cap) break;
        char *g = realloc(text, cap * 2);
        if (!g) free(text);
        text = g;
        cap *= 2;
    }
    bool failed = !text || ferror(f);
    fclose(f);
    if (failed) {
        free(text);
        return hg_fail(text ? HG_ERR_IO : HG_ERR_NOMEM, "visa: cannot read %s", path);
    }
    hg_status st = csv_parse(text, len, path, out);
    free(text);
    return st;
}

static hg_status read_visa(DataSet *ds, const char *root, int index, DataSplit split) {
    const char *category = ds->categories[index];
    if (!dataset_is_dir(root))
        return hg_fail(HG_ERR_IO, "visa: data set root %s is not a directory", root);
    char *csv_path = dataset_path_join(root, "split_csv/1cls.csv");
    if (!csv_path) return HG_ERR_NOMEM;
    if (!dataset_exists(csv_path)) {
        hg_status st = hg_fail(HG_ERR_IO,
                               "visa: no split_csv/1cls.csv under %s (expected the VisA layout "
                               "with its 1-class split file %s)",
                               root, csv_path);
        free(csv_path);
        return st;
    }
    Csv csv;
    hg_status st = csv_read(csv_path, &csv);
    if (st != HG_OK) {
        free(csv_path);
        return st;
    }
    /* Columns by name, as pandas' csv_data['object'] etc. */
    static const char *const COLUMNS[] = {"object", "split", "label", "image", "mask"};
    int col[5];
    for (int c = 0; c < 5 && st == HG_OK; c++) {
        col[c] = -1;
        for (int f = 0; csv.n_rows > 0 && f < csv.n_fields[0]; f++)
            if (!strcmp(csv.rows[0][f], COLUMNS[c])) col[c] = f;
        if (col[c] < 0)
            st = hg_fail(HG_ERR_FORMAT,
                         "visa: %s has no '%s' column (expected object, split, "
                         "label, image, mask)",
                         csv_path, COLUMNS[c]);
    }
    int64_t before = ds->n_samples;
    /* Train: every split == "train" row. Test: normal rows, then anomaly rows. */
    for (int pass = 0; pass < (split == SPLIT_TRAIN ? 1 : 2) && st == HG_OK; pass++) {
        for (int r = 1; r < csv.n_rows && st == HG_OK; r++) {
            char **row = csv.rows[r];
            const char *get[5];
            for (int c = 0; c < 5; c++) get[c] = col[c] < csv.n_fields[r] ? row[col[c]] : "";
            if (strcmp(get[0], category) != 0) continue;
            if (strcmp(get[1], split == SPLIT_TRAIN ? "train" : "test") != 0) continue;
            bool anomalous = split == SPLIT_TEST && pass == 1;
            if (split == SPLIT_TEST && strcmp(get[2], anomalous ? "anomaly" : "normal") != 0)
                continue;
            char *image = dataset_path_join(root, get[3]);
            char *mask = NULL;
            if (!image) {
                st = HG_ERR_NOMEM;
            } else if (!dataset_exists(image)) {
                st = hg_fail(HG_ERR_IO, "visa: image %s (data row %d of %s) is missing", image, r,
                             csv_path);
            } else if (anomalous) {
                if (!get[4][0])
                    st = hg_fail(HG_ERR_FORMAT, "visa: anomalous image %s has no mask in %s", image,
                                 csv_path);
                else if (!(mask = dataset_path_join(root, get[4])))
                    st = HG_ERR_NOMEM;
                else if (!dataset_exists(mask))
                    st = hg_fail(HG_ERR_IO, "visa: mask %s of image %s is missing", mask, image);
            }
            if (st == HG_OK)
                st = dataset_add_sample(ds, image, mask, anomalous ? "anomaly" : "good", index,
                                        anomalous);
            free(image);
            free(mask);
        }
    }
    if (st == HG_OK && ds->n_samples == before)
        st = hg_fail(HG_ERR_IO, "visa: no %s rows for category '%s' in %s",
                     split == SPLIT_TRAIN ? "train" : "test", category, csv_path);
    csv_free(&csv);
    free(csv_path);
    return st;
}

/* ------------------------------------------------------------------ public */

hg_status dataset_read_category(DataSet *ds, DataSetFormat format, const char *root, int index,
                                DataSplit split) {
    switch (format) {
    case DATASET_MVTEC:
        return read_dirs(ds, format, &LAYOUT_MVTEC, root, index, split);
    case DATASET_BTAD:
        return read_dirs(ds, format, &LAYOUT_BTAD, root, index, split);
    case DATASET_MVTEC3D:
        return read_dirs(ds, format, &LAYOUT_MVTEC3D, root, index, split);
    case DATASET_VISA:
        return read_visa(ds, root, index, split);
    default:
        return hg_fail(HG_ERR_ARG, "dataset: unknown format %d", (int)format);
    }
}

hg_status dataset_list_categories(const char *root, char ***names, int *n_names) {
    *names = NULL;
    *n_names = 0;
    if (!dataset_is_dir(root))
        return hg_fail(HG_ERR_IO, "dataset: data set root %s is not a directory", root);
    NameList dirs;
    hg_status st = list_dir("dataset", root, true, NULL, &dirs);
    if (st != HG_OK) return st;
    int kept = 0;
    for (int i = 0; i < dirs.n; i++) {
        char *cat = dataset_path_join(root, dirs.names[i]);
        char *train = cat ? dataset_path_join(cat, "train") : NULL;
        if (train && dataset_is_dir(train))
            dirs.names[kept++] = dirs.names[i];
        else
            free(dirs.names[i]);
        free(cat);
        free(train);
    }
    dirs.n = kept;
    if (kept == 0) {
        names_free(&dirs);
        return hg_fail(HG_ERR_IO,
                       "dataset: no category directories with a train/ subdirectory "
                       "under %s",
                       root);
    }
    *names = dirs.names;
    *n_names = kept;
    return HG_OK;
}
