/* Sharded evaluation (evaluate_category under several ranks) against the
 * single-process evaluation of the same detector (the same code run alone
 * with comm_begin_solo on rank 0): score maps, image scores, masks and
 * metrics must be equal bit for bit. Run by tests/mpi/run.sh under
 * `mpirun -np 1` and `-np 2`. */
#include <math.h>

#include "datasets/synthetic.h"
#include "pipeline/evaluate.h"
#include "tests/mpi/mpi_testutil.h"

enum { SIZE = 64, LEVELS = 2 };

typedef struct Fixture {
    char dir[512];
    Detector *detector;
    DataSet *test;
} Fixture;

static Detector *untrained_detector(int n_classes, const char *const *names) {
    Detector *d = calloc(1, sizeof *d);
    d->encoder = feature_encoder_new(ENCODER_BUILTIN_NAME, NULL, ENCODER_MULTISCALE, LEVELS, SIZE);
    if (!d->encoder) return NULL;
    d->preprocess = preprocess_imagenet(SIZE, SIZE);
    for (int c = 0; c < 3; c++)
        d->preprocess.mean[c] = d->encoder->norm.mean[c],
        d->preprocess.std[c] = d->encoder->norm.std[c];
    HgadConfig config = hgad_default_config(d->encoder->spec.levels, 0, n_classes);
    for (int l = 0; l < config.levels; l++) {
        int64_t h, w;
        feature_encoder_level_shape(d->encoder, l, &config.dims[l], &h, &w);
    }
    config.cond_dim = 16;
    config.coupling_blocks = 2;
    config.seed = 3;
    d->model = hgad_new(&config);
    d->n_classes = n_classes;
    for (int c = 0; c < n_classes; c++)
        snprintf(d->class_names[c], sizeof d->class_names[c], "%s", names[c]);
    /* arbitrary constants for the deployable mode: only equality matters here */
    d->has_deploy_stats = true;
    for (int c = 0; c < n_classes; c++) {
        MapNormalization n = {config.levels, {0}, 1.5 + c};
        for (int l = 0; l < config.levels; l++) n.level_max[l] = -0.25 * (l + 1);
        d->deploy_logp[c] = d->deploy_negent[c] = n;
    }
    return d->model ? d : NULL;
}

static int setup(void **state) {
    Fixture *f = calloc(1, sizeof *f);
    mpi_test_dir(f->dir, sizeof f->dir);
    static const char *const names[] = {"disc", "weave"};
    char root[600];
    snprintf(root, sizeof root, "%s/data", f->dir);
    hg_status s = HG_OK;
    if (comm_rank() == 0) {
        SyntheticConfig cfg = synthetic_default_config();
        cfg.seed = 1, cfg.image_size = SIZE, cfg.n_train_good = 2, cfg.n_test_good = 5,
        cfg.n_test_defective = 6;
        cfg.categories = names, cfg.n_categories = 2;
        s = synthetic_write(root, &cfg);
    }
    if (comm_agree(s) != HG_OK) {
        fprintf(stderr, "synthetic data: %s\n", hg_last_error());
        return -1;
    }
    f->test = dataset_open(DATASET_MVTEC, root, names, 2, SPLIT_TEST);
    f->detector = untrained_detector(2, names);
    if (!f->test || !f->detector) {
        fprintf(stderr, "setup: %s\n", hg_last_error());
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state) {
    Fixture *f = *state;
    detector_free(f->detector);
    dataset_free(f->test);
    mpi_test_remove_dir(f->dir);
    free(f);
    return 0;
}

static bool same_bits(const void *a, const void *b, size_t bytes) {
    return a && b && !memcmp(a, b, bytes);
}

static bool same_metric(double a, double b) {
    return a == b || (isnan(a) && isnan(b));
}

/* Every category, in both modes, at two batch sizes (3 and 6 batches for 11
 * images, the last one short). */
static void check_equal(Fixture *f, ScoreMode mode, int batch) {
    for (int c = 0; c < f->test->n_categories; c++) {
        CategoryEvaluation shared, alone;
        hg_status s = evaluate_category(f->detector, f->test, c, mode, batch, NULL, NULL, &shared);
        assert_all(s == HG_OK, "sharded: %s", hg_last_error());
        bool same = true;
        char why[160] = "";
        if (comm_rank() == 0) {
            comm_begin_solo();
            s = evaluate_category(f->detector, f->test, c, mode, batch, NULL, NULL, &alone);
            comm_end_solo();
            const int64_t n = alone.n_images, M = SIZE;
            same = s == HG_OK && shared.n_images == n && shared.n_anomalous == alone.n_anomalous &&
                   same_bits(tensor_data(shared.score_maps), tensor_data(alone.score_maps),
                             sizeof(float) * (size_t)(n * M * M)) &&
                   same_bits(shared.image_scores, alone.image_scores, sizeof(float) * (size_t)n) &&
                   same_bits(shared.masks, alone.masks, (size_t)(n * M * M)) &&
                   same_bits(shared.samples, alone.samples, sizeof(int64_t) * (size_t)n) &&
                   same_metric(shared.image_auroc, alone.image_auroc) &&
                   same_metric(shared.pixel_auroc, alone.pixel_auroc) &&
                   same_metric(shared.aupro, alone.aupro);
            snprintf(
                why, sizeof why,
                "category %d mode %d batch %d: image AUROC %.17g vs %.17g, pixel %.17g vs %.17g", c,
                (int)mode, batch, shared.image_auroc, alone.image_auroc, shared.pixel_auroc,
                alone.pixel_auroc);
            /* a real test: both classes present, so the metrics are numbers */
            same =
                same && alone.n_anomalous > 0 && alone.n_anomalous < n && !isnan(alone.image_auroc);
            if (s == HG_OK) category_evaluation_free(&alone);
        } else {
            /* the maps and metrics are rank 0's */
            same = shared.n_images == 11 && !shared.score_maps && !shared.image_scores &&
                   isnan(shared.image_auroc);
            snprintf(why, sizeof why, "rank %d holds results", comm_rank());
        }
        category_evaluation_free(&shared);
        assert_all(same, "%s", why);
    }
}

static void test_paper_mode_equals_single_process(void **state) {
    check_equal(*state, SCORE_PAPER, 4);
    check_equal(*state, SCORE_PAPER, 2);
}

static void test_deployable_mode_equals_single_process(void **state) {
    check_equal(*state, SCORE_DEPLOYABLE, 4);
}

/* A category the model does not know fails on every rank with one message. */
static void test_errors_reach_every_rank(void **state) {
    Fixture *f = *state;
    snprintf(f->detector->class_names[1], sizeof f->detector->class_names[1], "other");
    CategoryEvaluation e;
    hg_status s = evaluate_category(f->detector, f->test, 1, SCORE_PAPER, 4, NULL, NULL, &e);
    snprintf(f->detector->class_names[1], sizeof f->detector->class_names[1], "weave");
    assert_all(s == HG_ERR_ARG && strstr(hg_last_error(), "not trained on category 'weave'"), "%s",
               hg_last_error());
}

int main(int argc, char **argv) {
    mpi_test_init(&argc, &argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paper_mode_equals_single_process),
        cmocka_unit_test(test_deployable_mode_equals_single_process),
        cmocka_unit_test(test_errors_reach_every_rank),
    };
    int failed = cmocka_run_group_tests(tests, setup, teardown);
    return comm_finalize(failed ? 1 : 0);
}
