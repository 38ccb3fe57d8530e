/* Writing the synthetic data set in the MVTec AD layout (see synthetic.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datasets/synthetic.h"

#define STAMP_NAME    "synthetic.txt"
#define STAMP_VERSION 1 /* bump when the drawings change: old directories are then refused */

SyntheticConfig synthetic_default_config(void) {
    SyntheticConfig cfg = {.seed = 0,
                           .image_size = 128,
                           .n_train_good = 40,
                           .n_test_good = 10,
                           .n_test_defective = 10,
                           .categories = NULL,
                           .n_categories = 0};
    return cfg;
}

/* splitmix64: decorrelates the per-image seeds derived from the data set seed. */
static uint64_t mix(uint64_t h, uint64_t v) {
    uint64_t z = h + 0x9E3779B97F4A7C15ull + v;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t mix_string(uint64_t h, const char *s) {
    for (; *s; s++) h = mix(h, (unsigned char)*s);
    return h;
}

/* mkdir -p */
static hg_status make_dirs(const char *path) {
    char buf[4096];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof buf) return hg_fail(HG_ERR_ARG, "synthetic: bad path '%s'", path);
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != 0) continue;
        char saved = buf[i];
        buf[i] = 0;
        struct stat st;
        if (stat(buf, &st) != 0) {
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return hg_fail(HG_ERR_IO, "synthetic: cannot create directory %s: %s", buf,
                               strerror(errno));
        } else if (!S_ISDIR(st.st_mode)) {
            return hg_fail(HG_ERR_IO, "synthetic: %s exists and is not a directory", buf);
        }
        buf[i] = saved;
    }
    return HG_OK;
}

/* One image to write. */
typedef struct Job {
    int category; /* index in the built-in list */
    int defect;   /* -1 normal */
    int index;    /* within its directory */
    int split;    /* 0 train, 1 test */
} Job;

/* Digits of file numbers: 3 as MVTec ("000.png"), more when needed so that
 * name order stays numeric order. */
static int name_digits(const SyntheticConfig *cfg) {
    int most = cfg->n_train_good;
    if (cfg->n_test_good > most) most = cfg->n_test_good;
    if (cfg->n_test_defective > most) most = cfg->n_test_defective;
    int d = 3;
    for (int lim = 1000; most > lim && d < 9; lim *= 10) d++;
    return d;
}

static hg_status write_job(const char *dir, const SyntheticConfig *cfg, const Job *j, int digits) {
    const char *const *cats;
    synthetic_category_names(&cats);
    const char *const *defects;
    synthetic_defect_names(j->category, &defects);
    const char *cat = cats[j->category];
    const char *type = j->defect < 0 ? "good" : defects[j->defect];
    uint64_t seed = mix_string(mix(cfg->seed, (uint64_t)STAMP_VERSION), cat);
    seed = mix(mix_string(mix(seed, (uint64_t)j->split), type), (uint64_t)j->index);
    Image *img = NULL, *mask = NULL;
    hg_status st = synthetic_render(j->category, j->defect, cfg->image_size, seed, &img, &mask);
    if (st != HG_OK) return st;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/%s/%s/%0*d.png", dir, cat, j->split ? "test" : "train", type,
             digits, j->index);
    st = image_save_png(path, img);
    if (st == HG_OK && j->defect >= 0) {
        snprintf(path, sizeof path, "%s/%s/ground_truth/%s/%0*d_mask.png", dir, cat, type, digits,
                 j->index);
        st = image_save_png(path, mask);
    }
    image_free(img);
    image_free(mask);
    return st;
}

/* The text of DIR/synthetic.txt: everything the files depend on. */
static void stamp_text(char *buf, size_t size, const SyntheticConfig *cfg, const int *cats,
                       int n_cats) {
    const char *const *names;
    synthetic_category_names(&names);
    int len = snprintf(buf, size,
                       "hgad synthetic data set, MVTec AD layout\nversion %d\nseed %llu\n"
                       "image_size %d\ntrain_good %d\ntest_good %d\ntest_defective %d\ncategories",
                       STAMP_VERSION, (unsigned long long)cfg->seed, cfg->image_size,
                       cfg->n_train_good, cfg->n_test_good, cfg->n_test_defective);
    for (int c = 0; c < n_cats && len > 0 && (size_t)len < size; c++)
        len += snprintf(buf + len, size - (size_t)len, " %s", names[cats[c]]);
    if (len > 0 && (size_t)len < size) snprintf(buf + len, size - (size_t)len, "\n");
}

/* 1 when `path` holds exactly `text`, 0 otherwise. */
static int file_equals(const char *path, const char *text) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char buf[2048];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return n == strlen(text) && memcmp(buf, text, n) == 0;
}

static hg_status write_stamp(const char *dir, const char *text) {
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s", dir, STAMP_NAME);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return hg_fail(HG_ERR_IO, "synthetic: cannot write %s: %s", tmp, strerror(errno));
    int bad = fputs(text, f) < 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        remove(tmp);
        return hg_fail(HG_ERR_IO, "synthetic: cannot write %s", path);
    }
    return HG_OK;
}

/* Resolves the configured category names to built-in indices. */
static hg_status resolve_categories(const SyntheticConfig *cfg, int *cats, int *n_cats) {
    const char *const *names;
    int n_all = synthetic_category_names(&names);
    if (!cfg->categories || cfg->n_categories <= 0) {
        for (int c = 0; c < n_all; c++) cats[c] = c;
        *n_cats = n_all;
        return HG_OK;
    }
    if (cfg->n_categories > n_all)
        return hg_fail(HG_ERR_ARG, "synthetic: %d categories requested, %d exist",
                       cfg->n_categories, n_all);
    for (int i = 0; i < cfg->n_categories; i++) {
        cats[i] = -1;
        for (int c = 0; c < n_all; c++)
            if (cfg->categories[i] && !strcmp(cfg->categories[i], names[c])) cats[i] = c;
        if (cats[i] < 0)
            return hg_fail(HG_ERR_ARG,
                           "synthetic: unknown category '%s' (known: weave, mesh, granite, disc, "
                           "screw)",
                           cfg->categories[i] ? cfg->categories[i] : "(null)");
        for (int k = 0; k < i; k++)
            if (cats[k] == cats[i])
                return hg_fail(HG_ERR_ARG, "synthetic: category '%s' is listed twice",
                               cfg->categories[i]);
    }
    *n_cats = cfg->n_categories;
    return HG_OK;
}

hg_status synthetic_write(const char *dir, const SyntheticConfig *cfg) {
    if (!dir || !*dir || !cfg) return hg_fail(HG_ERR_ARG, "synthetic: no directory or config");
    if (strlen(dir) > 3000) return hg_fail(HG_ERR_ARG, "synthetic: directory path too long");
    if (cfg->image_size < 32 || cfg->image_size > 4096)
        return hg_fail(HG_ERR_ARG, "synthetic: image size %d outside [32, 4096]", cfg->image_size);
    if (cfg->n_train_good < 1 || cfg->n_test_good < 0 || cfg->n_test_defective < 0 ||
        cfg->n_train_good > 1000000 || cfg->n_test_good > 1000000 ||
        cfg->n_test_defective > 1000000)
        return hg_fail(HG_ERR_ARG,
                       "synthetic: counts must be train >= 1, test >= 0 (got %d, %d, %d)",
                       cfg->n_train_good, cfg->n_test_good, cfg->n_test_defective);
    int cats[16], n_cats = 0;
    hg_status st = resolve_categories(cfg, cats, &n_cats);
    if (st != HG_OK) return st;
    const char *const *names;
    synthetic_category_names(&names);

    char stamp[1024], path[4096];
    stamp_text(stamp, sizeof stamp, cfg, cats, n_cats);
    snprintf(path, sizeof path, "%s/%s", dir, STAMP_NAME);
    bool same_stamp = file_equals(path, stamp);
    int existing = 0, first_existing = -1;
    for (int c = 0; c < n_cats; c++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[cats[c]]);
        struct stat sb;
        if (stat(path, &sb) == 0) {
            existing++;
            if (first_existing < 0) first_existing = c;
        }
    }
    if (existing == n_cats && same_stamp) return HG_OK; /* complete and identical already */
    if (existing > 0) {
        snprintf(path, sizeof path, "%s/%s", dir, names[cats[first_existing]]);
        return hg_fail(HG_ERR_IO,
                       "synthetic: %s already exists and %s/%s does not describe this "
                       "configuration; use a new directory (nothing is deleted)",
                       path, dir, STAMP_NAME);
    }

    /* Directories first (serially), then the images in parallel. */
    int digits = name_digits(cfg);
    int64_t n_jobs = 0;
    for (int c = 0; c < n_cats && st == HG_OK; c++) {
        const char *const *defects;
        int n_def = synthetic_defect_names(cats[c], &defects);
        snprintf(path, sizeof path, "%s/%s/train/good", dir, names[cats[c]]);
        st = make_dirs(path);
        snprintf(path, sizeof path, "%s/%s/test/good", dir, names[cats[c]]);
        if (st == HG_OK) st = make_dirs(path);
        for (int d = 0; d < n_def && d < cfg->n_test_defective && st == HG_OK; d++) {
            snprintf(path, sizeof path, "%s/%s/test/%s", dir, names[cats[c]], defects[d]);
            st = make_dirs(path);
            snprintf(path, sizeof path, "%s/%s/ground_truth/%s", dir, names[cats[c]], defects[d]);
            if (st == HG_OK) st = make_dirs(path);
        }
        n_jobs += cfg->n_train_good + cfg->n_test_good + cfg->n_test_defective;
    }
    if (st != HG_OK) return st;

    Job *jobs = malloc(sizeof(Job) * (size_t)n_jobs);
    hg_status *status = calloc((size_t)n_jobs, sizeof *status);
    char(*message)[512] = calloc((size_t)n_jobs, sizeof *message);
    if (!jobs || !status || !message) {
        free(jobs);
        free(status);
        free(message);
        return hg_fail(HG_ERR_NOMEM, "synthetic: out of memory for %lld images", (long long)n_jobs);
    }
    int64_t k = 0;
    for (int c = 0; c < n_cats; c++) {
        const char *const *defects;
        int n_def = synthetic_defect_names(cats[c], &defects);
        for (int i = 0; i < cfg->n_train_good; i++) jobs[k++] = (Job){cats[c], -1, i, 0};
        for (int i = 0; i < cfg->n_test_good; i++) jobs[k++] = (Job){cats[c], -1, i, 1};
        /* defective images dealt round-robin over the types, numbered per type */
        for (int i = 0; i < cfg->n_test_defective; i++)
            jobs[k++] = (Job){cats[c], i % n_def, i / n_def, 1};
    }
#pragma omp parallel for schedule(dynamic) if (n_jobs > 4)
    for (int64_t j = 0; j < n_jobs; j++) {
        hg_status s = write_job(dir, cfg, &jobs[j], digits);
        if (s != HG_OK) {
            status[j] = s;
            snprintf(message[j], sizeof message[j], "%s", hg_last_error());
        }
    }
    for (int64_t j = 0; j < n_jobs && st == HG_OK; j++)
        if (status[j] != HG_OK) st = hg_fail(status[j], "synthetic: %s", message[j]);
    free(jobs);
    free(status);
    free(message);
    if (st != HG_OK) return st;
    return write_stamp(dir, stamp);
}
