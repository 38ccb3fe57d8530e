/* hgad zoo: trains and evaluates every model of the zoo on one data set and
 * writes one comparison table.
 *
 * A zoo entry is a config file DIR/NAME.cfg of 'hgad train --config' lines
 * (configs/zoo/: HGAD, CFLOW-AD and the HGAD ablations), so every entry is a
 * configuration of the same modules and the zoo adds no training code of its
 * own: it runs the train command (cmd_train) with a constructed command line,
 * then scores each resulting detector with pipeline/evaluate.h as 'hgad eval'
 * does. Entries whose config says per-category = true (CFLOW-AD) are trained
 * once per category, each model scored on its own category. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "pipeline/evaluate.h"
#include "report/results.h"

static const char *const NAME = "zoo";

#define ZOO_MAX_ENTRIES 32
#define ZOO_MAX_ARGS    64

static CliOption zoo_options[] = {
    {"root", true, "data set directory", NULL},
    {"dataset", true, "data set format (default mvtec; also synthetic data)", NULL},
    {"categories", true, "comma-separated categories (default: all under the root)", NULL},
    {"backbone", true, "backbone of every entry (overrides the configs' own)", NULL},
    {"weights", true, "weights of that backbone", NULL},
    {"entries", true, "comma-separated entries (default: every CONFIG-DIR/*.cfg)", NULL},
    {"config-dir", true, "directory of the entries' config files (default configs/zoo)", NULL},
    {"output", true, "output directory: zoo.md and one directory per entry (default zoo-out)",
     NULL},
    {"mode", true, "score mode: paper (default) or deployable", NULL},
    {"verbose", false, "show the progress of each training", NULL},
    {"quiet", false, "print nothing but errors", NULL},
    /* from here on (FIRST_FORWARDED): forwarded unchanged to every 'hgad train'
       (they win over the configs) */
    {"img-size", true, "image size S of every entry", NULL},
    {"msk-size", true, "mask / score-map size", NULL},
    {"levels", true, "feature levels", NULL},
    {"epochs", true, "meta epochs", NULL},
    {"sub-epochs", true, "passes over the data per meta epoch", NULL},
    {"batch", true, "images per training batch", NULL},
    {"coupling-blocks", true, "coupling blocks per flow", NULL},
    {"cond-dim", true, "positional condition size", NULL},
    {"lr", true, "learning rate", NULL},
    {"seed", true, "random seed", NULL},
    {"threads", true, "OpenMP threads", NULL},
    {"cache-half", false, "store cached features as float16", NULL},
};
#define N_OPTIONS       ((int)(sizeof zoo_options / sizeof zoo_options[0]))
#define FIRST_FORWARDED 11 /* index of "img-size" */

typedef struct ZooEntry {
    char name[64];
    char config[4096]; /* path of the config file */
    char summary[256]; /* its first comment line */
    bool per_category; /* per-category = true: one model per category */
    bool multiscale; /* the config's multilayer encoder replaced (the built-in encoder has one tap)
                      */
    bool failed;
    int models;
    double train_seconds;
    Results *results;
} ZooEntry;

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- config files ---- */

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = size >= 0 && size < (1 << 20) ? malloc((size_t)size + 1) : NULL;
    if (text && fread(text, 1, (size_t)size, f) != (size_t)size) {
        free(text);
        text = NULL;
    }
    fclose(f);
    if (text) text[size] = '\0';
    return text;
}

static void trim(const char **begin, const char **end) {
    while (*begin < *end && (**begin == ' ' || **begin == '\t' || **begin == '\r')) (*begin)++;
    while (*end > *begin && ((*end)[-1] == ' ' || (*end)[-1] == '\t' || (*end)[-1] == '\r'))
        (*end)--;
}

/* The value of `key` in config text (the same 'key = value' / '#' syntax as
 * cli/config.c), copied into buf; false when the key is absent. */
static bool config_value(const char *text, const char *key, char *buf, size_t size) {
    for (const char *line = text; line && *line;) {
        const char *next = strchr(line, '\n');
        const char *end = next ? next : line + strlen(line);
        const char *hash = memchr(line, '#', (size_t)(end - line));
        const char *eq = memchr(line, '=', (size_t)((hash ? hash : end) - line));
        if (eq) {
            const char *k = line, *k_end = eq, *v = eq + 1, *v_end = hash ? hash : end;
            trim(&k, &k_end);
            trim(&v, &v_end);
            if ((size_t)(k_end - k) == strlen(key) && !strncmp(k, key, (size_t)(k_end - k))) {
                snprintf(buf, size, "%.*s", (int)(v_end - v), v);
                return true;
            }
        }
        line = next ? next + 1 : NULL;
    }
    return false;
}

/* The text of the first comment line (without '#'). */
static void first_comment(const char *text, char *buf, size_t size) {
    buf[0] = '\0';
    const char *hash = strchr(text, '#');
    if (!hash) return;
    const char *begin = hash + 1, *end = strchr(begin, '\n');
    if (!end) end = begin + strlen(begin);
    trim(&begin, &end);
    snprintf(buf, size, "%.*s", (int)(end - begin), begin);
}

static bool is_true(const char *v) {
    return !strcmp(v, "true") || !strcmp(v, "1");
}

/* ---- entries ---- */

static bool valid_name(const char *name) {
    if (!*name) return false;
    for (const char *p = name; *p; p++)
        if (!(*p == '_' || *p == '-' || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
              (*p >= 'A' && *p <= 'Z')))
            return false;
    return true;
}

/* The table's order: HGAD, CFLOW-AD, the ablations of configs/zoo from the
 * largest change to the smallest, then any other entry by name. */
static int entry_rank(const char *name) {
    static const char *const known[] = {"hgad",     "cflow_ad", "single_gaussian", "inter_class",
                                        "no_intra", "no_mi",    "no_entropy"};
    const int n = (int)(sizeof known / sizeof known[0]);
    for (int i = 0; i < n; i++)
        if (!strcmp(name, known[i])) return i;
    return n;
}

static int compare_names(const void *a, const void *b) {
    const char *x = a, *y = b;
    int rx = entry_rank(x), ry = entry_rank(y);
    return rx != ry ? rx - ry : strcmp(x, y);
}

/* Fills names[] from --entries or from the *.cfg files of the directory. */
static int list_entries(const char *dir, const char *csv, char names[][64], int *count) {
    *count = 0;
    if (csv) {
        for (const char *p = csv; *p;) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            if (*count == ZOO_MAX_ENTRIES)
                return cli_error(NAME, "--entries: at most %d entries", ZOO_MAX_ENTRIES);
            if (len == 0 || len >= 64)
                return cli_error(NAME, "--entries %s: empty or too long name", csv);
            snprintf(names[*count], 64, "%.*s", (int)len, p);
            if (!valid_name(names[*count]))
                return cli_error(NAME,
                                 "--entries: '%s' is not an entry name (letters, digits, '_', '-')",
                                 names[*count]);
            for (int i = 0; i < *count; i++)
                if (!strcmp(names[i], names[*count]))
                    return cli_error(NAME, "--entries: '%s' twice", names[i]);
            (*count)++;
            p += len + (comma ? 1 : 0);
        }
        return 0;
    }
    DIR *d = opendir(dir);
    if (!d) return cli_error(NAME, "cannot read the config directory %s", dir);
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len < 5 || len - 4 >= 64 || strcmp(e->d_name + len - 4, ".cfg")) continue;
        if (*count == ZOO_MAX_ENTRIES) {
            closedir(d);
            return cli_error(NAME, "%s holds more than %d configs; choose with --entries", dir,
                             ZOO_MAX_ENTRIES);
        }
        snprintf(names[*count], 64, "%.*s", (int)(len - 4), e->d_name);
        if (valid_name(names[*count])) (*count)++;
    }
    closedir(d);
    if (*count == 0) return cli_error(NAME, "no *.cfg files in %s", dir);
    qsort(names, (size_t)*count, 64, compare_names);
    return 0;
}

/* Reads what the zoo itself needs from an entry's config. */
static int load_entry(ZooEntry *e, const char *dir, const char *name, const char *backbone) {
    char value[256];
    snprintf(e->name, sizeof e->name, "%.63s", name);
    snprintf(e->config, sizeof e->config, "%s/%s.cfg", dir, name);
    char *text = read_text(e->config);
    if (!text) return cli_error(NAME, "entry '%s': cannot read %s", name, e->config);
    first_comment(text, e->summary, sizeof e->summary);
    e->per_category = config_value(text, "per-category", value, sizeof value) && is_true(value);
    const char *effective = backbone;
    char own[64] = ENCODER_BUILTIN_NAME;
    if (!effective && config_value(text, "backbone", own, sizeof own)) effective = own;
    if (!effective) effective = ENCODER_BUILTIN_NAME;
    e->multiscale = !strcmp(effective, ENCODER_BUILTIN_NAME) &&
                    config_value(text, "encoder", value, sizeof value) &&
                    !strcmp(value, "multilayer");
    free(text);
    e->results = results_new();
    return e->results ? 0 : cli_error(NAME, "out of memory");
}

/* ---- training and evaluation ---- */

/* 'hgad train --config CFG --root ... --output DIR' with the forwarded options. */
static int train_model(const ZooEntry *e, const CliArgs *args, const char *categories,
                       const char *dir, bool verbose) {
    char *argv[ZOO_MAX_ARGS];
    int argc = 0;
#define ARG(s) (argv[argc++] = (char *)(s))
    ARG("train");
    ARG("--config"), ARG(e->config);
    ARG("--root"), ARG(cli_get(args, "root"));
    ARG("--output"), ARG(dir);
    if (categories) ARG("--categories"), ARG(categories);
    if (cli_get(args, "dataset")) ARG("--dataset"), ARG(cli_get(args, "dataset"));
    if (cli_get(args, "backbone")) ARG("--backbone"), ARG(cli_get(args, "backbone"));
    if (cli_get(args, "weights")) ARG("--weights"), ARG(cli_get(args, "weights"));
    if (e->multiscale) ARG("--encoder"), ARG("multiscale");
    if (!verbose) ARG("--quiet");
    char flags[N_OPTIONS - FIRST_FORWARDED][64];
    for (int i = FIRST_FORWARDED; i < N_OPTIONS; i++) {
        const CliOption *o = &args->options[i];
        if (!o->value) continue;
        snprintf(flags[i - FIRST_FORWARDED], sizeof flags[0], "--%s", o->name);
        ARG(flags[i - FIRST_FORWARDED]);
        if (o->takes_value) ARG(o->value);
    }
#undef ARG
    argv[argc] = NULL;
    fflush(stdout);
    return cmd_train(argc, argv);
}

/* Scores categories [first, first + count) of `test` with the model at `path`. */
static int evaluate_model(ZooEntry *e, const char *path, const char *weights, const DataSet *test,
                          int first, int count, ScoreMode mode) {
    Detector *d = detector_load(path, weights);
    if (!d) return cli_error(NAME, "entry '%s': %s", e->name, hg_last_error());
    int rc = 0;
    for (int c = first; rc == 0 && c < first + count; c++) {
        CategoryEvaluation ev;
        if (evaluate_category(d, test, c, mode, 8, NULL, NULL, &ev) != HG_OK) {
            rc = cli_error(NAME, "entry '%s': %s", e->name, hg_last_error());
            break;
        }
        if (results_add(e->results, ev.name, ev.image_auroc, ev.pixel_auroc, ev.aupro, ev.n_images,
                        ev.n_anomalous) != HG_OK)
            rc = cli_error(NAME, "entry '%s': %s", e->name, hg_last_error());
        category_evaluation_free(&ev);
    }
    detector_free(d);
    return rc;
}

/* Trains and scores one entry; a failure marks the entry and is not fatal. */
static void run_entry(ZooEntry *e, const CliArgs *args, const DataSet *test, const char *output,
                      ScoreMode mode, bool verbose) {
    char dir[4200], path[4400];
    snprintf(dir, sizeof dir, "%.4000s/%s", output, e->name);
    cli_remove_tree(dir); /* the zoo's own directory: a stale feature cache would skew the timing */
    const int runs = e->per_category ? test->n_categories : 1;
    for (int r = 0; r < runs && !e->failed; r++) {
        char model_dir[4300], categories[4096] = "";
        if (e->per_category) {
            snprintf(model_dir, sizeof model_dir, "%s/%.63s", dir, test->categories[r]);
            snprintf(categories, sizeof categories, "%s", test->categories[r]);
        } else {
            snprintf(model_dir, sizeof model_dir, "%s", dir);
            for (int c = 0, len = 0; c < test->n_categories && len < (int)sizeof categories; c++)
                len += snprintf(categories + len, sizeof categories - (size_t)len, "%s%s",
                                c ? "," : "", test->categories[c]);
        }
        double start = now_seconds();
        int rc = train_model(e, args, categories, model_dir, verbose);
        e->train_seconds += now_seconds() - start;
        snprintf(path, sizeof path, "%s/model.safetensors", model_dir);
        if (rc == 0)
            rc = evaluate_model(e, path, cli_get(args, "weights"), test, e->per_category ? r : 0,
                                e->per_category ? 1 : test->n_categories, mode);
        if (rc != 0)
            e->failed = true;
        else
            e->models++;
    }
    if (!e->failed) {
        snprintf(path, sizeof path, "%s/results.md", dir);
        if (results_write_markdown(path, e->results) != HG_OK) {
            cli_error(NAME, "entry '%s': %s", e->name, hg_last_error());
            e->failed = true;
        }
    }
}

/* ---- the table ---- */

static void put_metric(char **p, char *end, double v) {
    *p += isnan(v) ? snprintf(*p, (size_t)(end - *p), " n/a |")
                   : snprintf(*p, (size_t)(end - *p), " %.3f |", v);
}

/* The Markdown document (malloc'd). */
static char *zoo_markdown(const ZooEntry *entries, int n, const char *command, const char *date,
                          const double load_start[3], const double load_end[3], const DataSet *test,
                          const CliArgs *args) {
    const size_t size = 65536;
    char *doc = malloc(size), *p = doc, *end = doc + size;
    if (!doc) return NULL;
    p += snprintf(p, (size_t)(end - p), "# Model zoo\n\nData: `%s`, %d %s (", cli_get(args, "root"),
                  test->n_categories, test->n_categories == 1 ? "category" : "categories");
    for (int c = 0; c < test->n_categories && p < end - 200; c++)
        p += snprintf(p, (size_t)(end - p), "%s%s", c ? ", " : "", test->categories[c]);
    p += snprintf(
        p, (size_t)(end - p),
        "); backbone: %s.\n\nCommand: `%s`\n\nDate: %s; load average %.2f %.2f %.2f at the start, "
        "%.2f %.2f %.2f at the end.\n\n",
        cli_get(args, "backbone") ? cli_get(args, "backbone") : "each entry's own", command, date,
        load_start[0], load_start[1], load_start[2], load_end[0], load_end[1], load_end[2]);
    p += snprintf(p, (size_t)(end - p),
                  "| Entry | Image AUROC | Pixel AUROC | AUPRO | Train s |\n"
                  "|:------|:-----------:|:-----------:|:-----:|--------:|\n");
    for (int i = 0; i < n && p < end - 512; i++) {
        const ZooEntry *e = &entries[i];
        p += snprintf(p, (size_t)(end - p), "| %s |", e->name);
        if (e->failed) {
            p += snprintf(p, (size_t)(end - p), " failed | failed | failed | %.1f |\n",
                          e->train_seconds);
            continue;
        }
        ResultRow mean = results_mean(e->results);
        put_metric(&p, end, mean.image_auroc);
        put_metric(&p, end, mean.pixel_auroc);
        put_metric(&p, end, mean.aupro);
        p += snprintf(p, (size_t)(end - p), " %.1f |\n", e->train_seconds);
    }
    p += snprintf(
        p, (size_t)(end - p),
        "\nMetrics are means over the categories (%s score mode). Train s is the wall time of "
        "'hgad train' (feature extraction included: each entry extracts its own features).\n\n",
        cli_get(args, "mode") ? cli_get(args, "mode") : "paper");
    for (int i = 0; i < n && p < end - 1024; i++) {
        const ZooEntry *e = &entries[i];
        p += snprintf(p, (size_t)(end - p), "- **%s** (`%s`): %s", e->name, e->config, e->summary);
        if (e->per_category)
            p += snprintf(p, (size_t)(end - p), " Trained per category: %d model%s.", e->models,
                          e->models == 1 ? "" : "s");
        if (e->multiscale)
            p += snprintf(
                p, (size_t)(end - p),
                " The built-in encoder has one tap, so its multilayer encoder ran as multiscale.");
        p += snprintf(p, (size_t)(end - p), "\n");
    }
    return doc;
}

/* Writes `text` to `path` atomically (a temporary file renamed over it). */
static int write_atomic(const char *path, const char *text) {
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%.4200s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return cli_error(NAME, "cannot write %s", tmp);
    const size_t len = strlen(text);
    bool ok = fwrite(text, 1, len, f) == len;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return cli_error(NAME, "cannot write %s", path);
    }
    return 0;
}

int cmd_zoo(int argc, char **argv) {
    CliArgs args;
    for (int i = 0; i < N_OPTIONS; i++) zoo_options[i].value = NULL;
    int early = cli_parse_or_help(
        NAME, argc, argv, zoo_options, N_OPTIONS,
        "--root DIR [--categories a,b] [--backbone B --weights W] [--entries e1,e2] [options]",
        "Trains and evaluates every zoo entry, a config file CONFIG-DIR/NAME.cfg read as\n"
        "'hgad train --config' (configs/zoo: hgad, cflow_ad and the HGAD ablations), on one\n"
        "data set, and writes OUTPUT/zoo.md: one row per entry with the mean image AUROC,\n"
        "pixel AUROC, AUPRO and training seconds. --backbone/--weights and the training\n"
        "options below override every entry's config. OUTPUT/NAME/ (replaced) holds each\n"
        "entry's model(s) and results.md; entries with per-category = true are trained once\n"
        "per category (OUTPUT/NAME/CATEGORY/).",
        &args);
    if (early >= 0) return early;
    int rc = 1, n = 0;
    DataSet *test = NULL;
    ZooEntry *entries = NULL;
    char names[ZOO_MAX_ENTRIES][64];
    char *doc = NULL;
    const char *dir = cli_get(&args, "config-dir") ? cli_get(&args, "config-dir") : "configs/zoo";
    const char *output = cli_get(&args, "output") ? cli_get(&args, "output") : "zoo-out";
    const char *mode_name = cli_get(&args, "mode");
    const bool quiet = cli_get(&args, "quiet") != NULL, verbose = cli_get(&args, "verbose") != NULL;
    int64_t threads = 0;
    if (!cli_check_args(NAME, &args, "root")) goto done;
    if (mode_name && strcmp(mode_name, "paper") && strcmp(mode_name, "deployable")) {
        rc = cli_error(NAME, "--mode %s: expected paper or deployable", mode_name);
        goto done;
    }
    if (!cli_get_int(NAME, &args, "threads", 1, 1024, &threads)) goto done;
    cli_set_threads(threads);
    const ScoreMode mode =
        mode_name && !strcmp(mode_name, "deployable") ? SCORE_DEPLOYABLE : SCORE_PAPER;
    if (list_entries(dir, cli_get(&args, "entries"), names, &n)) goto done;
    entries = calloc((size_t)n, sizeof *entries);
    if (!entries) goto done;
    for (int i = 0; i < n; i++)
        if (load_entry(&entries[i], dir, names[i], cli_get(&args, "backbone"))) goto done;
    test = cli_open_dataset(NAME, cli_get(&args, "dataset"), cli_get(&args, "root"),
                            cli_get(&args, "categories"), SPLIT_TEST);
    if (!test || !cli_make_dir(NAME, output)) goto done;

    char command[8192] = "hgad";
    for (int i = 0, len = 4; i < argc && len < (int)sizeof command - 1; i++)
        len += snprintf(command + len, sizeof command - (size_t)len, " %s", argv[i]);
    char date[64];
    time_t t = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&t));
    double load_start[3] = {NAN, NAN, NAN}, load_end[3] = {NAN, NAN, NAN};
    getloadavg(load_start, 3);
    bool any_failed = false;
    for (int i = 0; i < n; i++) {
        ZooEntry *e = &entries[i];
        if (!quiet) {
            printf("zoo [%d/%d] %s: training%s\n", i + 1, n, e->name,
                   e->per_category ? " one model per category" : "");
            fflush(stdout);
        }
        run_entry(e, &args, test, output, mode, verbose);
        any_failed |= e->failed;
        if (!quiet && !e->failed) {
            ResultRow mean = results_mean(e->results);
            printf("zoo [%d/%d] %s: image AUROC %.3f  pixel AUROC %.3f  AUPRO %.3f  train %.1f s\n",
                   i + 1, n, e->name, mean.image_auroc, mean.pixel_auroc, mean.aupro,
                   e->train_seconds);
        } else if (!quiet) {
            printf("zoo [%d/%d] %s: failed\n", i + 1, n, e->name);
        }
        fflush(stdout);
    }
    getloadavg(load_end, 3);
    doc = zoo_markdown(entries, n, command, date, load_start, load_end, test, &args);
    char path[4200];
    snprintf(path, sizeof path, "%.4000s/zoo.md", output);
    if (!doc || write_atomic(path, doc)) goto done;
    if (!quiet) printf("\n%s\nwrote %s\n", doc, path);
    rc = any_failed ? cli_error(NAME, "some entries failed (marked in %s)", path) : 0;
done:
    free(doc);
    for (int i = 0; entries && i < n; i++) results_free(entries[i].results);
    free(entries);
    dataset_free(test);
    cli_args_free(&args);
    return rc;
}
