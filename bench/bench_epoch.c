/* One HGAD training meta epoch over the cached features of a synthetic data
 * set, against PyTorch doing the same epoch over the same features, measured
 * in the same run. One line per thread count of ours (1, 2):
 *   epoch backbone=tf_efficientnet_b6 size=256 images=16 batch=8 sub_epochs=8
 *         steps=48 threads=2 seconds=.. torch_seconds=.. torch_threads=1
 *         torch_blas_threads=2 speedup=.. peak_mb=.. torch_peak_mb=..
 *         torch_base_mb=.. cache_seconds=..
 *
 * Set-up (not timed as the epoch): datasets/synthetic.h writes a data set
 * into a temporary directory; the pipeline's encoder (tf_efficientnet_b6,
 * random weights, HGAD's multiscale encoder: 3 levels of 200 channels at
 * stride 16) fills a feature cache (pipeline/feature_cache.h), which
 * cache_seconds times; the cached features and labels are exported as .npy
 * files for the PyTorch side.
 * Ours: train_hgad (pipeline/train.h) for one meta epoch of the full phase
 * (the third meta epoch: inter- and intra-class losses, as 23 of the 25 meta
 * epochs), sub_epochs passes over the shuffled images, batch 8, one step per
 * level per batch, with `threads` OpenMP threads, in a fresh child process
 * whose peak RSS is peak_mb (the
 * memory-mapped cache pages it reads count in it).
 * PyTorch: tools/bench/torch_hgad.py epoch on the exported features, the same
 * loop with the committed reference flow and prior code, in its best thread
 * setting (bench_common.h: torch_threads = torch.set_num_threads =
 * OMP_NUM_THREADS = MKL_NUM_THREADS, torch_blas_threads =
 * OPENBLAS_NUM_THREADS, each setting of (1, 1), (2, 2), (1, 2), (2, 1)): a
 * pilot epoch of one sub-epoch in every setting picks it, then the full epoch
 * runs in it; torch_peak_mb its process's peak RSS, torch_base_mb its RSS
 * after importing torch (before loading anything). Both rows of ours are
 * compared with that best. speedup = torch_seconds / seconds. One epoch each
 * (an epoch is many steps; the first batch is the warm-up on both sides).
 * Sizes: 2 categories x 8 images = 16 images (2 batches), 8 sub-epochs as the
 * public code (48 steps); --quick: 2 sub-epochs (12 steps). */
#include <omp.h>
#include <stdint.h>

#include "bench/bench_common.h"
#include "datasets/dataset.h"
#include "datasets/synthetic.h"
#include "pipeline/encoder.h"
#include "pipeline/feature_cache.h"
#include "pipeline/train.h"

typedef struct EpochCase {
    char dir[512];
    int image_size, categories, images_per_category, batch, sub_epochs;
    int threads; /* of our epoch */
} EpochCase;

typedef struct Producer {
    const DataSet *data;
    FeatureEncoder *encoder;
    Preprocess preprocess;
} Producer;

static hg_status produce(void *context, int64_t index, Tensor **maps) {
    Producer *p = context;
    Tensor *image = NULL;
    hg_status s = dataset_load(p->data, index, &p->preprocess, &image, NULL);
    if (s != HG_OK) return s;
    Tensor *batch = tensor_unsqueeze(image, 0);
    s = batch ? feature_encoder_forward(p->encoder, batch, maps) : hg_last_status();
    tensor_free(batch);
    tensor_free(image);
    return s;
}

static DataSet *open_data(const EpochCase *c) {
    char root[600];
    snprintf(root, sizeof root, "%s/data", c->dir);
    const char *const *names;
    synthetic_category_names(&names);
    return dataset_open(DATASET_MVTEC, root, names, c->categories, SPLIT_TRAIN);
}

/* A little-endian float32 or int64 .npy file of the given shape. */
static bool write_npy(const char *path, const char *descr, const int64_t *shape, int ndim,
                      const void *data, size_t bytes) {
    char header[256];
    int len = snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                       descr);
    for (int i = 0; i < ndim; i++)
        len += snprintf(header + len, sizeof header - (size_t)len, "%lld,%s", (long long)shape[i],
                        i + 1 < ndim ? " " : "");
    len += snprintf(header + len, sizeof header - (size_t)len, "), }");
    /* magic (6) + version (2) + length (2) + header, padded to 64 bytes, ending in '\n' */
    int total = (10 + len + 1 + 63) / 64 * 64;
    while (10 + len + 1 < total) header[len++] = ' ';
    header[len++] = '\n';
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    const unsigned char prefix[10] = {0x93,
                                      'N',
                                      'U',
                                      'M',
                                      'P',
                                      'Y',
                                      1,
                                      0,
                                      (unsigned char)(len & 0xff),
                                      (unsigned char)(len >> 8)};
    bool ok = fwrite(prefix, 1, 10, f) == 10 && fwrite(header, 1, (size_t)len, f) == (size_t)len &&
              fwrite(data, 1, bytes, f) == bytes;
    return fclose(f) == 0 && ok;
}

/* The cached features of every level as DIR/level{l}.npy (images, H*W, D), the
 * shape as DIR/shape.txt and the labels as DIR/labels.npy. */
static bool export_features(const EpochCase *c, const FeatureCache *cache, const DataSet *data) {
    const FeatureCacheShape *shape = feature_cache_shape(cache);
    char path[700];
    snprintf(path, sizeof path, "%s/shape.txt", c->dir);
    FILE *f = fopen(path, "w");
    if (!f) return false;
    fprintf(f, "%d\n", shape->levels);
    for (int l = 0; l < shape->levels; l++)
        fprintf(f, "%lld %lld %lld\n", (long long)shape->dims[l], (long long)shape->heights[l],
                (long long)shape->widths[l]);
    if (fclose(f) != 0) return false;
    int64_t *all = malloc(sizeof(int64_t) * (size_t)shape->images);
    if (!all) return false;
    for (int64_t i = 0; i < shape->images; i++) all[i] = data->samples[i].category;
    snprintf(path, sizeof path, "%s/labels.npy", c->dir);
    bool ok =
        write_npy(path, "<i8", &shape->images, 1, all, sizeof(int64_t) * (size_t)shape->images);
    for (int64_t i = 0; i < shape->images; i++) all[i] = i;
    for (int l = 0; ok && l < shape->levels; l++) {
        const int64_t rows = shape->heights[l] * shape->widths[l];
        Tensor *t = tensor_empty(SHAPE(shape->images * rows, shape->dims[l]));
        ok = t && feature_cache_gather(cache, l, shape->images, all, t) == HG_OK;
        const int64_t dims[3] = {shape->images, rows, shape->dims[l]};
        snprintf(path, sizeof path, "%s/level%d.npy", c->dir, l);
        ok = ok && write_npy(path, "<f4", dims, 3, tensor_data(t),
                             sizeof(float) * (size_t)tensor_numel(t));
        tensor_free(t);
    }
    free(all);
    return ok;
}

/* Child: data set, weights, feature cache, export. values[0] = cache seconds. */
static bool set_up(void *context, double *values) {
    const EpochCase *c = context;
    char path[700], weights[700];
    SyntheticConfig sc = synthetic_default_config();
    const char *const *names;
    synthetic_category_names(&names);
    sc.image_size = c->image_size;
    sc.n_train_good = c->images_per_category;
    sc.n_test_good = 1;
    sc.n_test_defective = 1;
    sc.categories = names;
    sc.n_categories = c->categories;
    snprintf(path, sizeof path, "%s/data", c->dir);
    snprintf(weights, sizeof weights, "%s/tf_efficientnet_b6.safetensors", c->dir);
    if (synthetic_write(path, &sc) != HG_OK ||
        !bench_write_random_weights(BACKBONE_TF_EFFICIENTNET_B6, weights)) {
        fprintf(stderr, "bench_epoch: set-up: %s\n", hg_last_error());
        return false;
    }
    DataSet *data = open_data(c);
    FeatureEncoder *enc = data ? feature_encoder_new("tf_efficientnet_b6", weights,
                                                     ENCODER_MULTISCALE, 3, c->image_size)
                               : NULL;
    FeatureCache *cache = NULL;
    bool ok = false;
    if (enc) {
        Producer p = {data, enc, preprocess_imagenet(c->image_size, c->image_size)};
        for (int k = 0; k < 3; k++)
            p.preprocess.mean[k] = enc->norm.mean[k], p.preprocess.std[k] = enc->norm.std[k];
        FeatureCacheShape shape = {enc->spec.levels, data->n_samples, {0}, {0}, {0}};
        for (int l = 0; l < shape.levels; l++)
            feature_encoder_level_shape(enc, l, &shape.dims[l], &shape.heights[l],
                                        &shape.widths[l]);
        snprintf(path, sizeof path, "%s/features.cache", c->dir);
        double t0 = bench_now();
        cache = feature_cache_open_or_build(path, "bench_epoch", &shape, false, produce, &p, NULL,
                                            NULL);
        values[0] = bench_now() - t0;
        ok = cache && export_features(c, cache, data);
    }
    if (!ok) fprintf(stderr, "bench_epoch: set-up: %s\n", hg_last_error());
    feature_cache_close(cache);
    feature_encoder_free(enc);
    dataset_free(data);
    return ok;
}

/* Child: one meta epoch of the full phase. values[0] = seconds, [1] = steps. */
static bool run_epoch(void *context, double *values) {
    const EpochCase *c = context;
    char path[700];
    omp_set_num_threads(c->threads);
    snprintf(path, sizeof path, "%s/features.cache", c->dir);
    FeatureCache *cache = feature_cache_open(path);
    DataSet *data = cache ? open_data(c) : NULL;
    int64_t *labels = data ? malloc(sizeof(int64_t) * (size_t)data->n_samples) : NULL;
    Hgad *model = NULL;
    bool ok = false;
    if (labels) {
        const FeatureCacheShape *shape = feature_cache_shape(cache);
        for (int64_t i = 0; i < data->n_samples; i++) labels[i] = data->samples[i].category;
        HgadConfig config = hgad_default_config(shape->levels, 0, data->n_categories);
        for (int l = 0; l < shape->levels; l++) config.dims[l] = shape->dims[l];
        config.sub_epochs = c->sub_epochs;
        config.meta_epochs = config.inter_epochs + 1; /* run only the first full-phase epoch */
        model = hgad_new(&config);
        TrainOptions options = {c->batch, 0, config.inter_epochs, 0};
        double t0 = bench_now();
        ok = model && train_hgad(model, cache, labels, &options, NULL, NULL, NULL) == HG_OK;
        values[0] = bench_now() - t0;
        values[1] = (double)(data->n_samples / c->batch) * c->sub_epochs * shape->levels;
    }
    if (!ok) fprintf(stderr, "bench_epoch: %s\n", hg_last_error());
    hgad_free(model);
    free(labels);
    dataset_free(data);
    feature_cache_close(cache);
    return ok;
}

/* torch_hgad.py epoch arguments; the pilot runs one sub-epoch. */
static void torch_epoch_args(const void *context, int threads, bool pilot, char *args,
                             size_t size) {
    const EpochCase *c = context;
    snprintf(args, size, "epoch %s %d %d %d", c->dir, threads, pilot ? 1 : c->sub_epochs, c->batch);
}

int main(int argc, char **argv) {
    const bool quick = bench_has_flag(argc, argv, "--quick");
    EpochCase c = {.image_size = 256,
                   .categories = 2,
                   .images_per_category = 8,
                   .batch = 8,
                   .sub_epochs = quick ? 2 : 8};
    if (!bench_temp_dir("epoch", c.dir, sizeof c.dir)) {
        fprintf(stderr, "bench_epoch: cannot create a temporary directory\n");
        return 1;
    }
    double setup[BENCH_MAX_VALUES], setup_peak;
    bool ok = bench_in_child(set_up, &c, setup, &setup_peak);
    TorchResult best = {.ok = false};
    if (ok) best = bench_torch_sweep("epoch", torch_epoch_args, &c, 2, true, NULL);
    /* ours with 1 and 2 threads, each against PyTorch's best */
    for (c.threads = 1; ok && c.threads <= 2; c.threads++) {
        double ours[BENCH_MAX_VALUES], peak;
        if (!(ok = bench_in_child(run_epoch, &c, ours, &peak))) break;
        char ts[32], tp[32], tb[32], sp[32];
        printf("epoch backbone=tf_efficientnet_b6 size=%d images=%d batch=%d sub_epochs=%d "
               "steps=%.0f threads=%d seconds=%.3f torch_seconds=%s torch_threads=%d "
               "torch_blas_threads=%d speedup=%s peak_mb=%.0f torch_peak_mb=%s torch_base_mb=%s "
               "cache_seconds=%.2f\n",
               c.image_size, c.categories * c.images_per_category, c.batch, c.sub_epochs, ours[1],
               c.threads, ours[0], bench_fmt(ts, sizeof ts, 3, best.seconds, best.ok),
               best.ok ? best.setting.threads : 0, best.ok ? best.setting.blas_threads : 0,
               bench_fmt(sp, sizeof sp, 2, best.seconds / ours[0], best.ok), peak,
               bench_fmt(tp, sizeof tp, 0, best.peak_mb, best.ok),
               bench_fmt(tb, sizeof tb, 0, best.base_mb, best.ok), setup[0]);
        fflush(stdout);
    }
    if (!ok) fprintf(stderr, "bench_epoch: failed\n");
    bench_remove_dir(c.dir);
    return ok ? 0 : 1;
}
