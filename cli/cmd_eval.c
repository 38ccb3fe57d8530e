/* hgad eval: scores the test set of every category a checkpoint knows (or the
 * chosen ones), prints and writes the results table, ROC curves and heat-maps. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "datasets/metrics.h"
#include "pipeline/comm.h"
#include "pipeline/evaluate.h"
#include "report/heatmap.h"
#include "report/plot.h"
#include "report/progress.h"
#include "report/results.h"

static const char *const NAME = "eval";

static void eval_progress(void *context, int64_t done, int64_t total) {
    progress_update(context, done, NULL);
}

/* image | heat-map overlay | ground-truth mask for the first `count` test images. */
static hg_status write_heatmaps(const char *dir, const DataSet *test, const CategoryEvaluation *e,
                                const Preprocess *pp, int64_t count) {
    const int64_t M = e->score_maps->shape[1];
    float vmin = INFINITY, vmax = -INFINITY;
    const float *maps = tensor_data(e->score_maps);
    for (int64_t i = 0; i < e->n_images * M * M; i++) {
        if (maps[i] < vmin) vmin = maps[i];
        if (maps[i] > vmax) vmax = maps[i];
    }
    hg_status s = HG_OK;
    for (int64_t k = 0; s == HG_OK && k < count && k < e->n_images; k++) {
        const Sample *sample = &test->samples[e->samples[k]];
        Image *raw = image_load(sample->image_path);
        Image *sized = raw ? image_resize_shorter_side(raw, (int)M, RESAMPLE_LANCZOS) : NULL;
        Image *crop = sized ? image_center_crop(sized, (int)M, (int)M) : NULL;
        const uint8_t *mask = sample->label ? e->masks + k * M * M : NULL;
        Image *overlay = crop ? heatmap_overlay(crop, maps + k * M * M, (int)M, (int)M, vmin, vmax, mask, 0.5f) : NULL;
        Image *panels = overlay ? heatmap_panels(crop, overlay, mask, (int)M, (int)M) : NULL;
        char path[4096 + 600], stem[256];
        const char *base = strrchr(sample->image_path, '/');
        snprintf(stem, sizeof stem, "%s", base ? base + 1 : sample->image_path);
        char *dot = strrchr(stem, '.');
        if (dot) *dot = '\0';
        snprintf(path, sizeof path, "%s/%s_%s_score%.3g.png", dir, sample->defect_type, stem, e->image_scores[k]);
        s = panels ? image_save_png(path, panels) : hg_last_status();
        image_free(raw), image_free(sized), image_free(crop), image_free(overlay), image_free(panels);
    }
    (void)pp;
    return s;
}

/* Ranks other than 0 under mpirun (docs/distributed.md): score their share
 * of every category (evaluate_category is collective) and follow rank 0's
 * agreements after its report of each category and after its final writing. */
static int follow_evaluation(Detector *d, const DataSet *test, ScoreMode mode, int batch) {
    hg_status s = comm_agree(HG_OK); /* every rank has set up */
    for (int c = 0; s == HG_OK && c < test->n_categories; c++) {
        CategoryEvaluation e;
        s = evaluate_category(d, test, c, mode, batch, NULL, NULL, &e);
        category_evaluation_free(&e);
        if (s == HG_OK) s = comm_agree(HG_OK);
    }
    if (s == HG_OK) s = comm_agree(HG_OK);
    return s == HG_OK ? 0 : cli_error(NAME, "%s", hg_last_error());
}

int cmd_eval(int argc, char **argv) {
    CliOption options[] = {
        {"checkpoint", true, "model.safetensors written by 'hgad train'", NULL},
        {"root", true, "data set directory (default: the one recorded at training)", NULL},
        {"dataset", true, "data set format (default: the one recorded at training)", NULL},
        {"categories", true, "comma-separated categories (default: all the model knows)", NULL},
        {"weights", true, "backbone weights (default: the path recorded at training)", NULL},
        {"mode", true, "paper (normalize over the test set, default) or deployable", NULL},
        {"output", true, "directory for results.md, results.json, roc.png, heatmaps/ (default eval-out)", NULL},
        {"heatmaps", true, "heat-map images written per category (default 8)", NULL},
        {"batch", true, "images per forward pass (default 8)", NULL},
        {"threads", true, "OpenMP threads", NULL},
        {"quiet", false, "no progress output", NULL},
    };
    const int n_options = (int)(sizeof options / sizeof options[0]);
    CliArgs args;
    int early = cli_parse_or_help(
        NAME, argc, argv, options, n_options, "--checkpoint CKPT [options]",
        "Scores the test images of each category (spec section 7) and reports image AUROC,\n"
        "pixel AUROC and AUPRO (section 8) per category and their mean, as a table on\n"
        "stdout and OUTPUT/results.md, OUTPUT/results.json, OUTPUT/roc.png and\n"
        "OUTPUT/heatmaps/<category>/.",
        &args);
    if (early >= 0) return early;
    int rc = 1;
    Detector *d = NULL;
    DataSet *test = NULL;
    Results *results = results_new();
    MetricCurve *curves = NULL;
    char **names = NULL;
    double *aucs = NULL;
    int n_curves = 0;
    char staging[4096 + 32] = "";
    int64_t heatmaps = 8, batch = 8, threads = 0;
    const char *ckpt = cli_get(&args, "checkpoint"), *mode_name = cli_get(&args, "mode");
    const char *output = cli_get(&args, "output") ? cli_get(&args, "output") : "eval-out";
    if (!cli_check_args(NAME, &args, "checkpoint")) goto done;
    if (mode_name && strcmp(mode_name, "paper") && strcmp(mode_name, "deployable")) {
        rc = cli_error(NAME, "--mode %s: expected paper or deployable", mode_name);
        goto done;
    }
    if (!cli_get_int(NAME, &args, "heatmaps", 0, 1000000, &heatmaps) ||
        !cli_get_int(NAME, &args, "batch", 1, 4096, &batch) ||
        !cli_get_int(NAME, &args, "threads", 1, 1024, &threads))
        goto done;
    cli_set_threads(threads);
    if (!(d = detector_load(ckpt, cli_get(&args, "weights")))) {
        rc = cli_error(NAME, "%s", hg_last_error());
        goto done;
    }
    const char *root = cli_get(&args, "root") ? cli_get(&args, "root") : hgad_meta_get(&d->meta, "root");
    const char *format = cli_get(&args, "dataset") ? cli_get(&args, "dataset") : hgad_meta_get(&d->meta, "dataset");
    char known[1024] = "";
    for (int c = 0, len = 0; c < d->n_classes; c++)
        len += snprintf(known + len, sizeof known - (size_t)len, "%s%s", c ? "," : "", d->class_names[c]);
    const char *categories = cli_get(&args, "categories") ? cli_get(&args, "categories") : known;
    test = cli_open_dataset(NAME, format, root, categories, SPLIT_TEST);
    if (!test) goto done;
    const ScoreMode mode = mode_name && !strcmp(mode_name, "deployable") ? SCORE_DEPLOYABLE : SCORE_PAPER;
    for (int c = 0; c < test->n_categories; c++)
        if (detector_find_class(d, test->categories[c]) < 0) {
            rc = cli_error(NAME, "the model was not trained on category '%s' (it knows %s)", test->categories[c], known);
            goto done;
        }
    const bool quiet = cli_get(&args, "quiet") != NULL;
    if (comm_rank() != 0) {
        rc = follow_evaluation(d, test, mode, (int)batch);
        goto done;
    }
    /* Everything is written into a staging directory first and moved into
     * OUTPUT at the end, so a failure leaves no partial results behind. */
    char dir[4096];
    snprintf(staging, sizeof staging, "%s.tmp.%d", output, (int)getpid());
    snprintf(dir, sizeof dir, "%s/heatmaps", staging);
    if (!results || !cli_make_dir(NAME, staging) || (heatmaps && !cli_make_dir(NAME, dir))) goto done;
    curves = calloc((size_t)test->n_categories, sizeof *curves);
    names = calloc((size_t)test->n_categories, sizeof *names);
    aucs = calloc((size_t)test->n_categories, sizeof *aucs);
    if (!curves || !names || !aucs) goto done;
    if (comm_agree(HG_OK) != HG_OK) { /* every rank has set up (see follow_evaluation) */
        rc = cli_error(NAME, "%s", hg_last_error());
        goto done;
    }
    for (int c = 0; c < test->n_categories; c++) {
        CategoryEvaluation e;
        Progress *progress = progress_start(test->categories[c], dataset_count(test, c, -1), quiet ? NULL : stdout);
        hg_status evaluated = evaluate_category(d, test, c, mode, (int)batch, eval_progress, progress, &e);
        progress_finish(progress);
        if (evaluated != HG_OK) {
            rc = cli_error(NAME, "%s", hg_last_error());
            goto done;
        }
        hg_status s = results_add(results, e.name, e.image_auroc, e.pixel_auroc, e.aupro, e.n_images, e.n_anomalous);
        if (s == HG_OK && metric_roc_curve(e.image_scores, e.image_labels, e.n_images, true, &curves[n_curves]) == HG_OK) {
            names[n_curves] = strdup(e.name);
            aucs[n_curves++] = e.image_auroc;
        }
        hg_clear_error(); /* a single-class test set has no ROC curve */
        snprintf(dir, sizeof dir, "%s/heatmaps/%s", staging, e.name);
        if (s == HG_OK && heatmaps) {
            if (!cli_make_dir(NAME, dir)) {
                category_evaluation_free(&e);
                comm_agree(hg_fail(HG_ERR_IO, "rank 0 could not create %s", dir));
                goto done;
            }
            s = write_heatmaps(dir, test, &e, &d->preprocess, heatmaps);
        }
        if (!quiet)
            printf("%-16s image AUROC %.3f  pixel AUROC %.3f  AUPRO %.3f  (%lld images, %lld anomalous)\n", e.name,
                   e.image_auroc, e.pixel_auroc, e.aupro, (long long)e.n_images, (long long)e.n_anomalous);
        category_evaluation_free(&e);
        if (comm_agree(s) != HG_OK) {
            rc = cli_error(NAME, "%s", hg_last_error());
            goto done;
        }
    }
    char path[4096];
    char *table = results_markdown(results);
    if (table) printf("\n%s", table);
    free(table);
    snprintf(path, sizeof path, "%s/results.md", staging);
    hg_status s = results_write_markdown(path, results);
    snprintf(path, sizeof path, "%s/results.json", staging);
    if (s == HG_OK) s = results_write_json(path, results);
    snprintf(path, sizeof path, "%s/roc.png", staging);
    if (s == HG_OK && n_curves) s = roc_plot_png(path, n_curves, curves, (const char *const *)names, aucs);
    if (s != HG_OK) rc = cli_error(NAME, "%s", hg_last_error());
    else if (!cli_move_contents(NAME, staging, output)) s = hg_fail(HG_ERR_IO, "rank 0 could not move the results into %s", output);
    if (comm_agree(s) != HG_OK) goto done;
    if (!quiet) printf("wrote %s/results.md, results.json, roc.png and heatmaps/\n", output);
    rc = 0;
done:
    if (staging[0]) cli_remove_tree(staging); /* gone already after a success */
    for (int i = 0; i < n_curves; i++) metric_curve_free(&curves[i]), free(names[i]);
    free(curves), free(names), free(aucs);
    results_free(results);
    dataset_free(test);
    detector_free(d);
    cli_args_free(&args);
    return rc;
}
