/* Scoring one image end to end, against the same pipeline in PyTorch measured
 * in the same run. One line per image size (and thread count of ours):
 *   score backbone=mobilenet_v2 source=1024 size=256 msk=256 threads=2 ms=..
 *         torch_ms=.. torch_threads=1 torch_blas_threads=2 speedup=.. peak_mb=..
 *         torch_peak_mb=.. torch_base_mb=..
 *
 * The image: a 1024 x 1024 synthetic "weave" picture with a defect
 * (datasets/synthetic.h), saved as PNG, the size of MVTec AD's photos.
 * Ours, per run: image_load (PNG decode), preprocess_image (Lanczos resize to
 * S, centre crop, normalization), detector_evidence (mobilenet_v2 with random
 * weights as HGAD's multiscale encoder: S, S/2, S/4 to the stride-16 map of
 * 96 channels; then per level the flow of 12 coupling blocks and the
 * hierarchical prior's evidence for class 0 of 5), detector_score_maps (the
 * anomaly maps of both kinds of evidence at msk = S with the deployable
 * constants, blurred, multiplied) and the image score. The constants come
 * from an untimed warm-up run on the same image. ms is the median of the runs,
 * in a fresh child process whose peak RSS is peak_mb.
 * PyTorch: tools/bench/torch_hgad.py score, the same steps with PIL,
 * torchvision's transforms and mobilenet_v2 (TF padding), the committed
 * reference flow code and scipy's Gaussian filter, with the same warm-up and
 * median; measured in each thread setting of bench_common.h (torch_threads =
 * torch.set_num_threads = OMP_NUM_THREADS = MKL_NUM_THREADS,
 * torch_blas_threads = OPENBLAS_NUM_THREADS; (1, 1), (2, 2), (1, 2), (2, 1))
 * and reported in the fastest, against both rows of ours.
 * speedup = torch_ms / ms.
 * Options: --quick (256 px only, fewer runs). */
#include <omp.h>

#include "bench/bench_common.h"
#include "datasets/synthetic.h"
#include "pipeline/detector.h"

#define SOURCE_SIZE 1024
#define CLASSES     5

typedef struct ScoreCase {
    char dir[512], png[600], weights[600];
    int size, threads, reps;
} ScoreCase;

/* Child: the PNG and the weights file. */
static bool set_up(void *context, double *values) {
    const ScoreCase *c = context;
    Image *image = NULL, *mask = NULL;
    bool ok = synthetic_render(0, 0, SOURCE_SIZE, 7, &image, &mask) == HG_OK &&
              image_save_png(c->png, image) == HG_OK &&
              bench_write_random_weights(BACKBONE_MOBILENET_V2, c->weights);
    if (!ok) fprintf(stderr, "bench_score: set-up: %s\n", hg_last_error());
    image_free(image);
    image_free(mask);
    return ok;
}

/* One image from file to score; *map receives the score map. */
static hg_status score_file(Detector *d, const char *path, Tensor **lp, Tensor **ne, Tensor **map,
                            float *score) {
    Image *img = image_load(path);
    Tensor *x = img ? preprocess_image(img, &d->preprocess) : NULL;
    Tensor *batch = x ? tensor_unsqueeze(x, 0) : NULL;
    hg_status s = batch ? detector_evidence(d, batch, 0, lp, ne) : hg_last_status();
    *map = NULL;
    if (s == HG_OK && d->has_deploy_stats) {
        *map = detector_score_maps(d, lp, ne, &d->deploy_logp[0], &d->deploy_negent[0]);
        if (*map)
            anomaly_image_scores(*map, score);
        else
            s = hg_last_status();
    }
    image_free(img);
    tensor_free(x);
    tensor_free(batch);
    return s;
}

static void free_levels(Tensor **t, int levels) {
    for (int l = 0; l < levels; l++) tensor_free(t[l]), t[l] = NULL;
}

/* Child: values[0] = median seconds, [1] = the image score. */
static bool run_score(void *context, double *values) {
    const ScoreCase *c = context;
    omp_set_num_threads(c->threads);
    Detector *d = calloc(1, sizeof *d);
    if (!d) return false;
    d->encoder = feature_encoder_new("mobilenet_v2", c->weights, ENCODER_MULTISCALE, 3, c->size);
    bool ok = d->encoder != NULL;
    if (ok) {
        HgadConfig config = hgad_default_config(d->encoder->spec.levels, 0, CLASSES);
        for (int l = 0; l < config.levels; l++) {
            int64_t h, w;
            feature_encoder_level_shape(d->encoder, l, &config.dims[l], &h, &w);
        }
        d->model = hgad_new(&config);
        d->preprocess = preprocess_imagenet(c->size, c->size);
        for (int k = 0; k < 3; k++)
            d->preprocess.mean[k] = d->encoder->norm.mean[k],
            d->preprocess.std[k] = d->encoder->norm.std[k];
        d->n_classes = CLASSES;
        for (int k = 0; k < CLASSES; k++)
            snprintf(d->class_names[k], sizeof d->class_names[k], "c%d", k);
        ok = d->model != NULL;
    }
    const int levels = ok ? d->model->config.levels : 0;
    Tensor *lp[HGAD_MAX_LEVELS] = {0}, *ne[HGAD_MAX_LEVELS] = {0}, *map = NULL;
    float score = 0;
    /* warm-up: the deployable constants of this image */
    ok = ok && score_file(d, c->png, lp, ne, &map, &score) == HG_OK &&
         anomaly_normalization(levels, (const Tensor *const *)lp, c->size, &d->deploy_logp[0]) ==
             HG_OK &&
         anomaly_normalization(levels, (const Tensor *const *)ne, c->size, &d->deploy_negent[0]) ==
             HG_OK;
    d->has_deploy_stats = true;
    free_levels(lp, levels), free_levels(ne, levels);
    double times[64];
    for (int r = 0; ok && r < c->reps; r++) {
        double t0 = bench_now();
        ok = score_file(d, c->png, lp, ne, &map, &score) == HG_OK;
        times[r] = bench_now() - t0;
        free_levels(lp, levels), free_levels(ne, levels);
        tensor_free(map), map = NULL;
    }
    if (!ok) fprintf(stderr, "bench_score: %s\n", hg_last_error());
    values[0] = ok ? bench_median(times, c->reps) : 0;
    values[1] = score;
    detector_free(d);
    return ok;
}

/* torch_hgad.py score arguments (no pilot: a run is a few seconds). */
static void torch_score_args(const void *context, int threads, bool pilot, char *args,
                             size_t size) {
    const ScoreCase *c = context;
    snprintf(args, size, "score %s %d %d %d %d", c->png, c->size, c->size, threads, c->reps);
}

int main(int argc, char **argv) {
    const bool quick = bench_has_flag(argc, argv, "--quick");
    const int sizes[] = {256, 512}, n_sizes = quick ? 1 : 2;
    ScoreCase c = {.reps = quick ? 3 : 7};
    if (!bench_temp_dir("score", c.dir, sizeof c.dir)) {
        fprintf(stderr, "bench_score: cannot create a temporary directory\n");
        return 1;
    }
    snprintf(c.png, sizeof c.png, "%s/weave_%d.png", c.dir, SOURCE_SIZE);
    snprintf(c.weights, sizeof c.weights, "%s/mobilenet_v2.safetensors", c.dir);
    double unused[BENCH_MAX_VALUES], unused_peak;
    bool ok = bench_in_child(set_up, &c, unused, &unused_peak);
    for (int s = 0; ok && s < n_sizes; s++) {
        c.size = sizes[s];
        char label[64];
        snprintf(label, sizeof label, "score size=%d", c.size);
        const TorchResult best = bench_torch_sweep(label, torch_score_args, &c, 2, false, NULL);
        for (c.threads = 1; ok && c.threads <= 2; c.threads++) {
            double ours[BENCH_MAX_VALUES], peak;
            if (!(ok = bench_in_child(run_score, &c, ours, &peak))) break;
            char tm[32], tp[32], tb[32], sp[32];
            printf("score backbone=mobilenet_v2 source=%d size=%d msk=%d threads=%d ms=%.1f "
                   "torch_ms=%s torch_threads=%d torch_blas_threads=%d speedup=%s peak_mb=%.0f "
                   "torch_peak_mb=%s torch_base_mb=%s\n",
                   SOURCE_SIZE, c.size, c.size, c.threads, ours[0] * 1e3,
                   bench_fmt(tm, sizeof tm, 1, best.seconds * 1e3, best.ok),
                   best.ok ? best.setting.threads : 0, best.ok ? best.setting.blas_threads : 0,
                   bench_fmt(sp, sizeof sp, 2, best.seconds / ours[0], best.ok), peak,
                   bench_fmt(tp, sizeof tp, 0, best.peak_mb, best.ok),
                   bench_fmt(tb, sizeof tb, 0, best.base_mb, best.ok));
            fflush(stdout);
        }
    }
    if (!ok) fprintf(stderr, "bench_score: failed\n");
    bench_remove_dir(c.dir);
    return ok ? 0 : 1;
}
