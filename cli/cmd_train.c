/* hgad train: one unified HGAD model on the training images of every chosen
 * category, with frozen-backbone features cached on disk. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/config.h"
#include "pipeline/comm.h"
#include "pipeline/evaluate.h"
#include "pipeline/train.h"
#include "report/progress.h"

static const char *const NAME = "train";

static CliOption train_options[] = {
    {"config", true, "config file of 'option = value' lines (command line wins)", NULL},
    {"dataset", true, "mvtec (default; also synthetic data), btad, mvtec3d, visa, union", NULL},
    {"root", true, "data set directory (union: four, comma-separated)", NULL},
    {"categories", true, "comma-separated categories (default: all under the root)", NULL},
    {"backbone", true,
     "builtin (default, no weights), mobilenet_v2, resnet18, wide_resnet50_2, tf_efficientnet_b6",
     NULL},
    {"weights", true, "backbone weights (safetensors with the reference names)", NULL},
    {"encoder", true, "multiscale (HGAD, default) or multilayer (CFLOW-AD)", NULL},
    {"img-size", true, "image size S (default 256)", NULL},
    {"msk-size", true, "mask / score-map size (default: S)", NULL},
    {"levels", true, "feature levels (default 3)", NULL},
    {"epochs", true, "meta epochs (default 25)", NULL},
    {"sub-epochs", true, "passes over the data per meta epoch (default 8)", NULL},
    {"batch", true,
     "images per batch (default 8; under mpirun the global batch, a multiple of the ranks)", NULL},
    {"coupling-blocks", true, "coupling blocks per flow (default 12)", NULL},
    {"cond-dim", true, "positional condition size, a multiple of 4 (default 256)", NULL},
    {"lr", true, "learning rate (default 2e-4)", NULL},
    {"clamp", true, "coupling clamp alpha (default 1.9)", NULL},
    {"new-clamp", false, "alpha * tanh(a / alpha) as newer FrEIA", NULL},
    {"prior", true, "hierarchical (HGAD, default), inter-class, gaussian (CFLOW-AD)", NULL},
    {"intra-centers", true, "intra-class centers per class (default 10)", NULL},
    {"no-mi", false, "ablation: drop the mutual-information loss", NULL},
    {"no-entropy", false, "ablation: drop the entropy loss", NULL},
    {"centers-lr-x3", false, "give the class centers 3x the learning rate", NULL},
    {"adam-betas", true, "Adam betas b1,b2 (default 0.95,0.99; CFLOW-AD: 0.9,0.999)", NULL},
    {"weight-decay", true, "L2 weight decay of the flows (default 1e-4; CFLOW-AD: 0)", NULL},
    {"per-category", false, "one model per category (CFLOW-AD): --categories names one", NULL},
    {"cache-half", false, "store cached features as float16", NULL},
    {"threads", true, "OpenMP threads (default: all cores)", NULL},
    {"seed", true, "random seed (default 0)", NULL},
    {"output", true, "output directory (default hgad-out)", NULL},
    {"resume", true, "continue from a checkpoint.safetensors of an earlier run", NULL},
    {"quiet", false, "no progress output", NULL},
};
#define N_OPTIONS ((int)(sizeof train_options / sizeof train_options[0]))

typedef struct TrainRun {
    const DataSet *data;
    Detector *detector;
    const char *output;
    Progress *progress; /* NULL when quiet */
    int64_t steps_done;
} TrainRun;

static hg_status produce_features(void *context, int64_t index, Tensor **maps) {
    TrainRun *run = context;
    Tensor *image = NULL;
    hg_status s = dataset_load(run->data, index, &run->detector->preprocess, &image, NULL);
    if (s != HG_OK) return s;
    Tensor *batch = tensor_unsqueeze(image, 0);
    s = batch ? feature_encoder_forward(run->detector->encoder, batch, maps) : hg_last_status();
    tensor_free(batch);
    tensor_free(image);
    return s;
}

static void feature_progress(void *context, int64_t done, int64_t total) {
    TrainRun *run = context;
    progress_update(run->progress, done, NULL);
}

static bool on_batch(void *context, const TrainEvent *ev) {
    TrainRun *run = context;
    char extra[256];
    int len = snprintf(extra, sizeof extra, "epoch %d/%d lr %.2e loss", ev->meta_epoch + 1,
                       ev->meta_epochs, ev->lr);
    for (int l = 0; l < run->detector->model->config.levels && len < (int)sizeof extra - 16; l++)
        len += snprintf(extra + len, sizeof extra - (size_t)len, " %.4f", ev->level_losses[l].loss);
    progress_update(run->progress, ++run->steps_done, extra);
    return true;
}

static hg_status on_epoch(void *context, int meta_epoch) {
    TrainRun *run = context;
    char path[4096], value[32];
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", run->output);
    snprintf(value, sizeof value, "%d", meta_epoch + 1);
    hg_status s = hgad_meta_set(&run->detector->meta, "epoch", value);
    /* under mpirun rank 0 writes it (atomically: a crash keeps the last one) */
    return s == HG_OK && comm_rank() == 0 ? detector_save(run->detector, path, true) : s;
}

/* Records every option that was given (command line or config file). */
static hg_status record_options(HgadMeta *meta) {
    for (int i = 0; i < N_OPTIONS; i++) {
        const CliOption *o = &train_options[i];
        if (!o->value || !strcmp(o->name, "config") || !strcmp(o->name, "resume")) continue;
        char key[64];
        snprintf(key, sizeof key, "config.%s", o->name);
        hg_status s = hgad_meta_set(meta, key, o->value);
        if (s != HG_OK) return s;
    }
    return HG_OK;
}

static int enum_option(const CliArgs *args, const char *name, const char *const *choices, int n,
                       int fallback, int *out) {
    const char *v = cli_get(args, name);
    *out = fallback;
    if (!v) return 0;
    char list[256] = "";
    for (int i = 0, len = 0; i < n; i++) {
        if (!strcmp(v, choices[i])) return *out = i, 0;
        len += snprintf(list + len, sizeof list - (size_t)len, "%s%s", i ? ", " : "", choices[i]);
    }
    return cli_error(NAME, "--%s %s: expected one of %s", name, v, list);
}

int cmd_train(int argc, char **argv) {
    CliArgs args;
    char *config_text = NULL;
    for (int i = 0; i < N_OPTIONS; i++) train_options[i].value = NULL;
    int early = cli_parse_or_help(
        NAME, argc, argv, train_options, N_OPTIONS, "--root DIR [options]",
        "Trains one unified HGAD model on the training images of all chosen categories\n"
        "(spec sections 2-6). Writes OUTPUT/model.safetensors, a resumable\n"
        "OUTPUT/checkpoint.safetensors after every meta epoch, and the feature cache\n"
        "OUTPUT/features.cache. Evaluate with 'hgad eval --checkpoint OUTPUT/model.safetensors'.",
        &args);
    if (early >= 0) return early;
    int rc = 1;
    DataSet *data = NULL;
    Detector *d = NULL;
    FeatureCache *cache = NULL;
    int64_t *labels = NULL;
    bool created_output = false;
    const char *output = "hgad-out";
    /* --root is checked with the data set (cli_open_dataset), after --config may give it */
    if (!cli_check_args(NAME, &args, NULL)) goto done;
    if (cli_get(&args, "config") &&
        !cli_config_apply(NAME, cli_get(&args, "config"), train_options, N_OPTIONS, &config_text))
        goto done;
    int64_t img = 256, msk = 0, levels = 3, epochs = 25, sub_epochs = 8, batch = 8, blocks = 12;
    int64_t cond_dim = 256, centers = 10, threads = 0, seed = 0;
    double lr = 2e-4, clamp = 1.9, weight_decay = 1e-4, beta1 = 0.95, beta2 = 0.99;
    int prior_kind, encoder_mode;
    static const char *const priors[] = {"hierarchical", "inter-class", "gaussian"};
    static const char *const encoders[] = {"multiscale", "multilayer"};
    if (!cli_get_int(NAME, &args, "img-size", 16, 4096, &img) ||
        !cli_get_int(NAME, &args, "msk-size", 8, 4096, &msk) ||
        !cli_get_int(NAME, &args, "levels", 1, HGAD_MAX_LEVELS, &levels) ||
        !cli_get_int(NAME, &args, "epochs", 1, 100000, &epochs) ||
        !cli_get_int(NAME, &args, "sub-epochs", 1, 100000, &sub_epochs) ||
        !cli_get_int(NAME, &args, "batch", 1, 4096, &batch) ||
        !cli_get_int(NAME, &args, "coupling-blocks", 1, 256, &blocks) ||
        !cli_get_int(NAME, &args, "cond-dim", 0, 4096, &cond_dim) ||
        !cli_get_int(NAME, &args, "intra-centers", 1, 1000, &centers) ||
        !cli_get_int(NAME, &args, "threads", 1, 1024, &threads) ||
        !cli_get_int(NAME, &args, "seed", 0, INT64_MAX, &seed) ||
        !cli_get_double(NAME, &args, "lr", 1e-12, 10, &lr) ||
        !cli_get_double(NAME, &args, "clamp", 1e-3, 100, &clamp) ||
        !cli_get_double(NAME, &args, "weight-decay", 0, 1, &weight_decay) ||
        enum_option(&args, "prior", priors, 3, 0, &prior_kind) ||
        enum_option(&args, "encoder", encoders, 2, 0, &encoder_mode))
        goto done;
    if (cond_dim % 4) {
        rc = cli_error(NAME, "--cond-dim %lld is not a multiple of 4", (long long)cond_dim);
        goto done;
    }
    char betas_end;
    if (cli_get(&args, "adam-betas") &&
        (sscanf(cli_get(&args, "adam-betas"), "%lf,%lf%c", &beta1, &beta2, &betas_end) != 2 ||
         !(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1))) {
        rc = cli_error(NAME, "--adam-betas %s: expected b1,b2 in [0, 1)",
                       cli_get(&args, "adam-betas"));
        goto done;
    }
    if (!msk) msk = img;
    cli_set_threads(threads);
    if (cli_get(&args, "output")) output = cli_get(&args, "output");
    const char *backbone =
        cli_get(&args, "backbone") ? cli_get(&args, "backbone") : ENCODER_BUILTIN_NAME;
    const bool quiet = cli_get(&args, "quiet") != NULL;
    data = cli_open_dataset(NAME, cli_get(&args, "dataset"), cli_get(&args, "root"),
                            cli_get(&args, "categories"), SPLIT_TRAIN);
    if (!data) goto done;
    if (cli_get(&args, "per-category") && data->n_categories != 1) {
        rc = cli_error(NAME,
                       "per-category: this configuration trains one model per category, got %d "
                       "categories (name one with --categories; 'hgad zoo' trains each)",
                       data->n_categories);
        goto done;
    }
    if (data->n_categories > DETECTOR_MAX_CLASSES) {
        rc = cli_error(NAME, "%d categories; at most %d are supported", data->n_categories,
                       DETECTOR_MAX_CLASSES);
        goto done;
    }
    for (int c = 0; c < data->n_categories; c++)
        if (dataset_count(data, c, 0) == 0) {
            rc = cli_error(NAME, "category '%s' has no training images", data->categories[c]);
            goto done;
        }
    d = calloc(1, sizeof *d);
    if (!d) goto done;
    d->encoder = feature_encoder_new(backbone, cli_get(&args, "weights"), (EncoderMode)encoder_mode,
                                     (int)levels, img);
    if (!d->encoder) {
        rc = cli_error(NAME, "%s", hg_last_error());
        goto done;
    }
    /* The deepest level's input must tile exactly into the encoder's cells. */
    {
        int64_t ch, h0, w0;
        feature_encoder_level_shape(d->encoder, 0, &ch, &h0, &w0);
        int64_t stride = img / h0,
                deepest = encoder_mode == ENCODER_MULTISCALE ? img >> (levels - 1) : img;
        if (img % h0 || deepest % stride) {
            rc = cli_error(
                NAME,
                "--img-size %lld does not divide into the encoder's stride-%lld cells at %lld "
                "levels (use a multiple of %lld)",
                (long long)img, (long long)stride, (long long)levels,
                (long long)(stride << (encoder_mode == ENCODER_MULTISCALE ? levels - 1 : 0)));
            goto done;
        }
    }
    d->preprocess = preprocess_imagenet((int)img, (int)msk);
    for (int c = 0; c < 3; c++)
        d->preprocess.mean[c] = d->encoder->norm.mean[c],
        d->preprocess.std[c] = d->encoder->norm.std[c];
    d->n_classes = data->n_categories;
    for (int c = 0; c < d->n_classes; c++)
        snprintf(d->class_names[c], sizeof d->class_names[c], "%s", data->categories[c]);
    int first_epoch = 0;
    const char *resume = cli_get(&args, "resume");
    HgadConfig config = hgad_default_config((int)d->encoder->spec.levels, 0, data->n_categories);
    FeatureCacheShape shape = {d->encoder->spec.levels, data->n_samples, {0}, {0}, {0}};
    for (int l = 0; l < shape.levels; l++)
        feature_encoder_level_shape(d->encoder, l, &shape.dims[l], &shape.heights[l],
                                    &shape.widths[l]);
    if (resume) {
        Detector *old = detector_load(resume, cli_get(&args, "weights"));
        if (!old) {
            rc = cli_error(NAME, "%s", hg_last_error());
            goto done;
        }
        const char *epoch = hgad_meta_get(&old->meta, "epoch");
        first_epoch = epoch ? atoi(epoch) : 0;
        bool same = old->n_classes == d->n_classes && old->model->config.levels == shape.levels;
        for (int c = 0; same && c < d->n_classes; c++)
            same = !strcmp(old->class_names[c], d->class_names[c]);
        for (int l = 0; same && l < shape.levels; l++)
            same = old->model->config.dims[l] == shape.dims[l];
        if (!same) {
            detector_free(old);
            rc = cli_error(
                NAME, "--resume %s: the checkpoint was trained on other categories or features",
                resume);
            goto done;
        }
        d->model = old->model;
        old->model = NULL;
        d->meta = old->meta;
        detector_free(old);
    } else {
        config.cond_dim = cond_dim;
        config.coupling_blocks = (int)blocks;
        config.clamp = (float)clamp;
        config.new_clamp = cli_get(&args, "new-clamp") != NULL;
        config.prior = (PriorKind)prior_kind;
        config.intra_centers = centers;
        config.use_mi = !cli_get(&args, "no-mi");
        config.use_entropy = !cli_get(&args, "no-entropy");
        config.centers_lr_x3 = cli_get(&args, "centers-lr-x3") != NULL;
        config.beta1 = beta1;
        config.beta2 = beta2;
        config.flow_weight_decay = weight_decay;
        config.lr = lr;
        config.meta_epochs = (int)epochs;
        config.sub_epochs = (int)sub_epochs;
        config.seed = (uint64_t)seed;
        for (int l = 0; l < shape.levels; l++) config.dims[l] = shape.dims[l];
        d->model = hgad_new(&config);
        if (!d->model) {
            rc = cli_error(NAME, "%s", hg_last_error());
            goto done;
        }
    }
    created_output = access(output, F_OK) != 0;
    if (!cli_make_dir(NAME, output)) goto done;
    const char *weights = cli_get(&args, "weights");
    if (hgad_meta_set(&d->meta, "dataset",
                      cli_get(&args, "dataset") ? cli_get(&args, "dataset") : "mvtec") ||
        hgad_meta_set(&d->meta, "root", cli_get(&args, "root")) ||
        (weights && hgad_meta_set(&d->meta, "weights", weights)) || record_options(&d->meta)) {
        rc = cli_error(NAME, "%s", hg_last_error());
        goto done;
    }
    /* Features: computed once, memory-mapped for every epoch. */
    char fingerprint[2048], cache_path[4096];
    int len = snprintf(fingerprint, sizeof fingerprint,
                       "backbone=%s;weights=%s;encoder=%d;levels=%d;img=%lld;root=%s;samples=%lld;",
                       backbone, weights ? weights : "-", encoder_mode, shape.levels,
                       (long long)img, cli_get(&args, "root"), (long long)data->n_samples);
    for (int c = 0; c < data->n_categories && len < (int)sizeof fingerprint - 80; c++)
        len += snprintf(fingerprint + len, sizeof fingerprint - (size_t)len, "%s,",
                        data->categories[c]);
    snprintf(cache_path, sizeof cache_path, "%s/features.cache", output);
    /* every rank has set up (pipeline/comm.h: a command's first collective) */
    if (comm_agree(HG_OK) != HG_OK) {
        rc = cli_error(NAME, "%s", hg_last_error());
        goto done;
    }
    TrainRun run = {data, d, output, NULL, 0};
    /* under mpirun each rank computes its share of the features; rank 0 shows its own */
    const int64_t share = data->n_samples * (comm_rank() + 1) / comm_size() -
                          data->n_samples * comm_rank() / comm_size();
    run.progress = progress_start("features", share, quiet ? NULL : stdout);
    cache = feature_cache_open_or_build_shared(cache_path, fingerprint, &shape,
                                               cli_get(&args, "cache-half") != NULL,
                                               produce_features, &run, feature_progress, &run);
    progress_finish(run.progress);
    run.progress = NULL;
    if (!cache) {
        rc = cli_error(NAME, "%s", hg_last_error());
        goto done;
    }
    labels = malloc(sizeof(int64_t) * (size_t)data->n_samples);
    if (!labels) goto done;
    for (int64_t i = 0; i < data->n_samples; i++) labels[i] = data->samples[i].category;
    const int64_t per_sub = data->n_samples / (batch < data->n_samples ? batch : data->n_samples);
    const int64_t steps_total = (int64_t)(d->model->config.meta_epochs - first_epoch) *
                                d->model->config.sub_epochs * per_sub;
    if (!quiet)
        printf("training %d categories, %lld images, %d levels, %lld parameters, %d meta epochs x "
               "%d sub-epochs\n",
               data->n_categories, (long long)data->n_samples, shape.levels,
               (long long)param_set_numel(d->model->params, true), d->model->config.meta_epochs,
               d->model->config.sub_epochs);
    if (!quiet && comm_size() > 1)
        printf("data parallel: %d ranks (%s), global batch %lld, %lld images per rank\n",
               comm_size(), comm_backend(), (long long)batch, (long long)batch / comm_size());
    TrainOptions options = {(int)batch, (uint64_t)seed, first_epoch, 0};
    run.progress = progress_start("train", steps_total, quiet ? NULL : stdout);
    hg_status trained = train_hgad(d->model, cache, labels, &options, on_batch, on_epoch, &run);
    progress_finish(run.progress);
    run.progress = NULL;
    if (trained != HG_OK ||
        comm_agree(detector_measure_deploy_stats(d, cache, labels, 64)) != HG_OK) {
        rc = cli_error(NAME, "%s", hg_last_error());
        goto done;
    }
    char model_path[4096];
    snprintf(model_path, sizeof model_path, "%s/model.safetensors", output);
    hg_status saved = hgad_meta_set(&d->meta, "epoch", "done");
    if (saved == HG_OK && comm_rank() == 0) saved = detector_save(d, model_path, false);
    if (comm_agree(saved) != HG_OK) {
        rc = cli_error(NAME, "%s", hg_last_error());
        goto done;
    }
    if (!quiet) printf("saved %s\n", model_path);
    rc = 0;
done:
    if (rc != 0 && created_output) rmdir(output); /* only if it stayed empty */
    free(labels);
    feature_cache_close(cache);
    detector_free(d);
    dataset_free(data);
    cli_config_free(config_text);
    cli_args_free(&args);
    return rc;
}
