/* hgad predict: scores images or folders of images with a trained detector in
 * the deployable mode (each image on its own, constants from training) and
 * writes a heat-map overlay for each. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "pipeline/detector.h"
#include "report/heatmap.h"
#include "tensor/ops.h"

static const char *const NAME = "predict";

static int compare_strings(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool has_image_extension(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot) return false;
    const char *exts[] = {".png", ".PNG", ".jpg", ".JPG", ".jpeg", ".JPEG", ".bmp", ".BMP"};
    for (int i = 0; i < 8; i++)
        if (!strcmp(dot, exts[i])) return true;
    return false;
}

/* Expands folders (their image files, sorted) and keeps files as given. */
static int collect(const char *const *inputs, int n, char ***paths, int *count) {
    int cap = 16;
    *paths = malloc(sizeof(char *) * (size_t)cap);
    *count = 0;
    for (int i = 0; i < n; i++) {
        struct stat st;
        if (stat(inputs[i], &st) != 0)
            return cli_error(NAME, "%s: no such file or directory", inputs[i]);
        if (!S_ISDIR(st.st_mode)) {
            if (*count == cap) *paths = realloc(*paths, sizeof(char *) * (size_t)(cap *= 2));
            (*paths)[(*count)++] = strdup(inputs[i]);
            continue;
        }
        DIR *dir = opendir(inputs[i]);
        if (!dir) return cli_error(NAME, "%s: cannot read the directory", inputs[i]);
        int first = *count;
        for (struct dirent *e; (e = readdir(dir));) {
            if (e->d_name[0] == '.' || !has_image_extension(e->d_name)) continue;
            if (*count == cap) *paths = realloc(*paths, sizeof(char *) * (size_t)(cap *= 2));
            size_t len = strlen(inputs[i]) + strlen(e->d_name) + 2;
            char *p = malloc(len);
            snprintf(p, len, "%s/%s", inputs[i], e->d_name);
            (*paths)[(*count)++] = p;
        }
        closedir(dir);
        qsort(*paths + first, (size_t)(*count - first), sizeof(char *), compare_strings);
        if (*count == first)
            return cli_error(NAME, "%s: no PNG, JPEG or BMP images in the directory", inputs[i]);
    }
    return 0;
}

/* Score map (1, M, M) of one image. */
static Tensor *score_image(Detector *d, const Image *img, int class_id) {
    Tensor *x = preprocess_image(img, &d->preprocess);
    Tensor *batch = x ? tensor_unsqueeze(x, 0) : NULL;
    Tensor *lp[HGAD_MAX_LEVELS], *ne[HGAD_MAX_LEVELS];
    Tensor *map = NULL;
    if (batch && detector_evidence(d, batch, class_id, lp, ne) == HG_OK) {
        map =
            detector_score_maps(d, lp, ne, &d->deploy_logp[class_id], &d->deploy_negent[class_id]);
        for (int l = 0; l < d->model->config.levels; l++) tensor_free(lp[l]), tensor_free(ne[l]);
    }
    tensor_free(x);
    tensor_free(batch);
    return map;
}

int cmd_predict(int argc, char **argv) {
    CliOption options[] = {
        {"checkpoint", true, "model.safetensors written by 'hgad train'", NULL},
        {"class", true, "the category the images belong to (default: the model's only one)", NULL},
        {"weights", true, "backbone weights (default: the path recorded at training)", NULL},
        {"output", true, "directory for the heat-map PNGs (default predict-out)", NULL},
        {"threshold", true, "also print 'anomalous'/'normal' against this image score", NULL},
        {"threads", true, "OpenMP threads", NULL},
    };
    const int n_options = (int)(sizeof options / sizeof options[0]);
    CliArgs args;
    int early = cli_parse_or_help(
        NAME, argc, argv, options, n_options, "--checkpoint CKPT [--class NAME] IMAGE|DIR...",
        "Prints 'path score' for each image (deployable scoring: each image on its own,\n"
        "normalized with constants measured on the training images) and writes\n"
        "OUTPUT/<folder>_<stem>_heatmap.png (e.g. good_000_heatmap.png for test/good/000.png),\n"
        "the image with its anomaly map overlaid.",
        &args);
    if (early >= 0) return early;
    int rc = 1, n_paths = 0;
    char **paths = NULL;
    Detector *d = NULL;
    double threshold = 0;
    int64_t threads = 0;
    const char *output = cli_get(&args, "output") ? cli_get(&args, "output") : "predict-out";
    if (!cli_get(&args, "checkpoint")) {
        rc = cli_error(NAME, "--checkpoint is required (see --help)");
        goto done;
    }
    if (args.n_positional == 0) {
        rc = cli_error(NAME, "no images given");
        goto done;
    }
    if (!cli_get_double(NAME, &args, "threshold", -1e30, 1e30, &threshold) ||
        !cli_get_int(NAME, &args, "threads", 1, 1024, &threads))
        goto done;
    cli_set_threads(threads);
    if (collect(args.positional, args.n_positional, &paths, &n_paths)) goto done;
    if (!(d = detector_load(cli_get(&args, "checkpoint"), cli_get(&args, "weights")))) {
        rc = cli_error(NAME, "%s", hg_last_error());
        goto done;
    }
    if (!d->has_deploy_stats) {
        rc = cli_error(
            NAME, "the checkpoint has no deployable score statistics (train it with 'hgad train')");
        goto done;
    }
    int class_id = 0;
    if (cli_get(&args, "class")) {
        class_id = detector_find_class(d, cli_get(&args, "class"));
        if (class_id < 0) {
            rc = cli_error(NAME, "--class %s: the model knows %d other classes (e.g. %s)",
                           cli_get(&args, "class"), d->n_classes, d->class_names[0]);
            goto done;
        }
    } else if (d->n_classes > 1) {
        rc = cli_error(NAME, "the model has %d classes: say which with --class (e.g. --class %s)",
                       d->n_classes, d->class_names[0]);
        goto done;
    }
    if (!cli_make_dir(NAME, output)) goto done;
    for (int i = 0; i < n_paths; i++) {
        Image *img = image_load(paths[i]);
        Tensor *map = img ? score_image(d, img, class_id) : NULL;
        if (!map) {
            rc = cli_error(NAME, "%s", hg_last_error());
            image_free(img);
            goto done;
        }
        const int M = d->preprocess.msk_size;
        float score;
        anomaly_image_scores(map, &score);
        /* overlay on the image as the model saw it: shorter side to M, centre crop */
        Image *sized = image_resize_shorter_side(img, M, RESAMPLE_LANCZOS);
        Image *crop = sized ? image_center_crop(sized, M, M) : NULL;
        const float *m = tensor_data(map);
        float hi = m[0];
        for (int k = 1; k < M * M; k++) hi = m[k] > hi ? m[k] : hi;
        /* colour scale 0 .. the image's own maximum */
        Image *overlay =
            crop ? heatmap_overlay(crop, m, M, M, 0.0f, hi > 0 ? hi : 1.0f, NULL, 0.5f) : NULL;
        /* <parent folder>_<file stem>_heatmap.png keeps test/good/000 and
         * test/hole/000 apart */
        char out[4096 + 600], stem[256], parent[256] = "";
        const char *base = strrchr(paths[i], '/');
        snprintf(stem, sizeof stem, "%s", base ? base + 1 : paths[i]);
        char *dot = strrchr(stem, '.');
        if (dot) *dot = '\0';
        if (base) {
            const char *start = base;
            while (start > paths[i] && start[-1] != '/') start--;
            snprintf(parent, sizeof parent, "%.*s_", (int)(base - start), start);
        }
        snprintf(out, sizeof out, "%s/%s%s_heatmap.png", output, parent, stem);
        hg_status s = overlay ? image_save_png(out, overlay) : hg_last_status();
        if (s == HG_OK) {
            if (cli_get(&args, "threshold"))
                printf("%s %.6g %s\n", paths[i], score,
                       score >= threshold ? "anomalous" : "normal");
            else
                printf("%s %.6g\n", paths[i], score);
        }
        image_free(img), image_free(sized), image_free(crop), image_free(overlay);
        tensor_free(map);
        if (s != HG_OK) {
            rc = cli_error(NAME, "%s", hg_last_error());
            goto done;
        }
    }
    rc = 0;
done:
    for (int i = 0; i < n_paths; i++) free(paths[i]);
    free(paths);
    detector_free(d);
    cli_args_free(&args);
    return rc;
}
