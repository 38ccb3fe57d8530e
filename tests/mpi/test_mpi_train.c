/* Data-parallel training (pipeline/data_parallel.h, train_hgad under
 * several ranks) against the single-process run: the same code run alone
 * (comm_begin_solo) on the same cache, which is what one process does.
 * Run by tests/mpi/run.sh under `mpirun -np 1` and `-np 2`. */
#include <math.h>
#include <sys/stat.h>

#include "models/positional.h"
#include "pipeline/data_parallel.h"
#include "pipeline/train.h"
#include "tensor/ops.h"
#include "tensor/rng.h"
#include "tests/mpi/mpi_testutil.h"

enum { IMAGES = 20, CLASSES = 3, LEVELS = 2, BATCH = 4 };
static const int64_t DIMS[LEVELS] = {16, 12}, SIDES[LEVELS] = {4, 2};

typedef struct Fixture {
    char dir[512];
    FeatureCache *cache;
    int64_t labels[IMAGES];
    int64_t produced; /* images this rank computed */
} Fixture;

/* Image i's maps: random, a function of (i, level) only. */
static hg_status produce(void *context, int64_t index, Tensor **maps) {
    Fixture *f = context;
    f->produced++;
    for (int l = 0; l < LEVELS; l++) {
        Rng rng = rng_new(1000 + (uint64_t)index * 16 + (uint64_t)l);
        maps[l] = tensor_normal(SHAPE(1, DIMS[l], SIDES[l], SIDES[l]),
                                0.5f * (float)(index % CLASSES), 1, &rng);
        if (!maps[l]) return hg_last_status();
    }
    return HG_OK;
}

static FeatureCacheShape cache_shape(void) {
    FeatureCacheShape s = {LEVELS, IMAGES, {0}, {0}, {0}};
    for (int l = 0; l < LEVELS; l++) s.dims[l] = DIMS[l], s.heights[l] = s.widths[l] = SIDES[l];
    return s;
}

static int setup(void **state) {
    Fixture *f = calloc(1, sizeof *f);
    mpi_test_dir(f->dir, sizeof f->dir);
    if (!f->dir[0]) return -1;
    for (int i = 0; i < IMAGES; i++) f->labels[i] = i % CLASSES;
    char path[600];
    snprintf(path, sizeof path, "%s/features.cache", f->dir);
    FeatureCacheShape shape = cache_shape();
    f->cache =
        feature_cache_open_or_build_shared(path, "test", &shape, false, produce, f, NULL, NULL);
    if (!f->cache) {
        fprintf(stderr, "cache: %s\n", hg_last_error());
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state) {
    Fixture *f = *state;
    feature_cache_close(f->cache);
    mpi_test_remove_dir(f->dir);
    free(f);
    return 0;
}

static HgadConfig small_config(int meta_epochs) {
    HgadConfig c = hgad_default_config(LEVELS, DIMS[0], CLASSES);
    c.dims[1] = DIMS[1];
    c.cond_dim = 8;
    c.coupling_blocks = 2;
    c.intra_centers = 3;
    c.inter_epochs = 0; /* every loss term from the first step */
    c.meta_epochs = meta_epochs;
    c.sub_epochs = 1;
    c.lr = 1e-2; /* large steps, so that a wrong gradient shows in the parameters */
    c.seed = 5;
    return c;
}

/* max |a - b| / max |b| over every parameter together. */
static double params_rel_diff(const Hgad *a, const Hgad *b, double *max_b) {
    double diff = 0, scale = 0;
    for (int64_t i = 0; i < param_set_size(a->params); i++) {
        const float *x = tensor_data(param_set_at(a->params, i)->var->value);
        const float *y = tensor_data(param_set_at(b->params, i)->var->value);
        for (int64_t k = 0; k < tensor_numel(param_set_at(a->params, i)->var->value); k++) {
            diff = fmax(diff, fabs((double)x[k] - y[k]));
            scale = fmax(scale, fabs((double)y[k]));
        }
    }
    if (max_b) *max_b = scale;
    return diff / (scale > 0 ? scale : 1);
}

/* The sharded cache holds what one process writes, and each rank computed
 * only its share. */
static void test_sharded_cache_equals_single_process_cache(void **state) {
    Fixture *f = *state;
    int64_t produced = f->produced;
    comm_allreduce_sum_int64(&produced, 1);
    const int64_t share =
        IMAGES * (comm_rank() + 1) / comm_size() - IMAGES * comm_rank() / comm_size();
    assert_all(produced == IMAGES && f->produced == share,
               "rank computed %lld images (share %lld), all %lld", (long long)f->produced,
               (long long)share, (long long)produced);
    bool same = true;
    char path[600];
    snprintf(path, sizeof path, "%s/single.cache", f->dir);
    FeatureCacheShape shape = cache_shape();
    if (comm_rank() == 0) {
        comm_begin_solo();
        Fixture alone = {0};
        FeatureCache *single =
            feature_cache_open_or_build(path, "test", &shape, false, produce, &alone, NULL, NULL);
        comm_end_solo();
        int64_t all[IMAGES];
        for (int i = 0; i < IMAGES; i++) all[i] = i;
        for (int l = 0; single && l < LEVELS; l++) {
            Tensor *a = tensor_empty(SHAPE(IMAGES * SIDES[l] * SIDES[l], DIMS[l]));
            Tensor *b = tensor_empty(SHAPE(IMAGES * SIDES[l] * SIDES[l], DIMS[l]));
            same = same && feature_cache_gather(f->cache, l, IMAGES, all, a) == HG_OK &&
                   feature_cache_gather(single, l, IMAGES, all, b) == HG_OK &&
                   !memcmp(tensor_data(a), tensor_data(b), sizeof(float) * (size_t)tensor_numel(a));
            tensor_free(a), tensor_free(b);
        }
        same = same && single;
        feature_cache_close(single);
    }
    assert_all(same, "the sharded cache differs from the single-process one");
    /* opened again: current, nothing recomputed; no temporary file left */
    f->produced = 0;
    snprintf(path, sizeof path, "%s/features.cache", f->dir);
    FeatureCache *again =
        feature_cache_open_or_build_shared(path, "test", &shape, false, produce, f, NULL, NULL);
    char tmp[700];
    snprintf(tmp, sizeof tmp, "ls %s | grep -q tmp", f->dir);
    assert_all(again && f->produced == 0 && system(tmp) != 0, "reopen: %s, %lld recomputed",
               again ? "ok" : hg_last_error(), (long long)f->produced);
    feature_cache_close(again);
}

/* One step's averaged gradient equals the gradient of the whole batch. */
static void test_averaged_gradient_is_the_global_batch_gradient(void **state) {
    Fixture *f = *state;
    HgadConfig config = small_config(1);
    Hgad *dp = hgad_new(&config), *single = hgad_new(&config);
    assert_ok_ptr(dp);
    assert_ok_ptr(single);
    int64_t first = 0, local = 0;
    assert_ok(dp_batch_shard(BATCH, &first, &local));
    const int64_t images[BATCH] = {3, 17, 8, 12}, level = 1;
    const int64_t rows = SIDES[level] * SIDES[level];
    Tensor *x_all = tensor_empty(SHAPE(BATCH * rows, DIMS[level]));
    Tensor *x_mine = tensor_empty(SHAPE(local * rows, DIMS[level]));
    Tensor *c_all = positional_code_batch(config.cond_dim, SIDES[level], SIDES[level], BATCH);
    Tensor *c_mine = positional_code_batch(config.cond_dim, SIDES[level], SIDES[level], local);
    int64_t y_all[BATCH * 16];
    for (int k = 0; k < BATCH; k++)
        for (int r = 0; r < rows; r++) y_all[k * rows + r] = f->labels[images[k]];
    assert_ok(feature_cache_gather(f->cache, (int)level, BATCH, images, x_all));
    assert_ok(feature_cache_gather(f->cache, (int)level, local, images + first, x_mine));
    HgadLossValues v_all, v_mine;
    assert_ok(hgad_compute_gradients(single, (int)level, x_all, c_all, y_all, 0, &v_all));
    assert_ok(
        hgad_compute_gradients(dp, (int)level, x_mine, c_mine, y_all + first * rows, 0, &v_mine));
    GradientBuffer buffer = {0};
    int64_t floats = 0;
    assert_ok(dp_average_gradients(dp, (int)level, &buffer, &floats));
    assert_ok(dp_average_losses(&v_mine, 1));
    double worst = 0;
    int64_t with_grad = 0;
    for (int64_t i = 0; i < param_set_size(dp->params); i++) {
        const Tensor *a = param_set_at(dp->params, i)->var->grad,
                     *b = param_set_at(single->params, i)->var->grad;
        if (!a || !b) continue;
        with_grad++;
        worst = fmax(worst, test_max_rel_diff(a, b));
    }
    /* the floats reduced are exactly the level's gradients */
    Var *vars[256];
    const int64_t n_vars = hgad_level_parameters(dp, (int)level, vars, 256);
    int64_t expected_floats = 0;
    for (int64_t i = 0; comm_size() > 1 && i < n_vars && i < 256; i++)
        if (vars[i]->grad) expected_floats += tensor_numel(vars[i]->grad);
    assert_all(worst <= 1e-5 && with_grad > 0 &&
                   fabs(v_mine.loss - v_all.loss) <= 1e-5 * fabs(v_all.loss),
               "gradient rel diff %.3g (%lld tensors), loss %.9g vs %.9g", worst,
               (long long)with_grad, v_mine.loss, v_all.loss);
    assert_all(floats == expected_floats && (comm_size() == 1 || floats > 0),
               "%lld floats reduced, expected %lld", (long long)floats, (long long)expected_floats);
    gradient_buffer_free(&buffer);
    tensor_free(x_all), tensor_free(x_mine), tensor_free(c_all), tensor_free(c_mine);
    hgad_free(dp), hgad_free(single);
}

typedef struct Losses {
    int n;
    double loss[16][LEVELS];
} Losses;

static bool record_losses(void *context, const TrainEvent *ev) {
    Losses *l = context;
    if (l->n < 16)
        for (int k = 0; k < LEVELS; k++) l->loss[l->n][k] = ev->level_losses[k].loss;
    l->n++;
    return true;
}

/* The check: after 5 steps (one sub-epoch of 5 batches of 4), every
 * parameter equals the single-process run's to 1e-5 relative. */
static void test_five_steps_match_single_process(void **state) {
    Fixture *f = *state;
    HgadConfig config = small_config(1);
    Hgad *dp = hgad_new(&config), *single = hgad_new(&config), *init = hgad_new(&config);
    assert_ok_ptr(dp);
    assert_ok_ptr(single);
    assert_ok_ptr(init);
    TrainOptions options = {BATCH, 9, 0, 2};
    Losses dp_losses = {0}, single_losses = {0};
    hg_status s = train_hgad(dp, f->cache, f->labels, &options, record_losses, NULL, &dp_losses);
    assert_all(s == HG_OK, "train_hgad: %s", hg_last_error());
    comm_begin_solo();
    s = train_hgad(single, f->cache, f->labels, &options, record_losses, NULL, &single_losses);
    comm_end_solo();
    assert_all(s == HG_OK, "single train_hgad: %s", hg_last_error());
    double scale = 0;
    const double diff = params_rel_diff(dp, single, &scale);
    const double moved = params_rel_diff(single, init, NULL);
    /* the steps moved the parameters far more than the ranks disagree */
    assert_all(dp_losses.n == 5 && single_losses.n == 5, "%d and %d steps", dp_losses.n,
               single_losses.n);
    assert_all(diff <= 1e-5 && moved > 1e-3 && diff <= 1e-3 * moved,
               "parameters: rel diff %.3g vs single process, moved %.3g", diff, moved);
    if (comm_size() == 1)
        assert_all(diff == 0, "one rank must be the single-process run bit for bit");
    double loss_diff = 0;
    for (int i = 0; i < 5; i++)
        for (int l = 0; l < LEVELS; l++)
            loss_diff = fmax(loss_diff, fabs(dp_losses.loss[i][l] - single_losses.loss[i][l]) /
                                            fabs(single_losses.loss[i][l]));
    assert_all(loss_diff <= 1e-5, "global-batch losses differ by %.3g relative", loss_diff);
    /* every rank holds the same bits */
    assert_all(dp_check_replicas(dp->params) == HG_OK, "replicas differ: %s", hg_last_error());
    if (comm_rank() == 0)
        printf("    ranks %d: parameters rel diff %.3g after 5 steps (moved %.3g)\n", comm_size(),
               diff, moved);
    hgad_free(dp), hgad_free(single), hgad_free(init);
}

static void test_batch_must_split_over_ranks(void **state) {
    Fixture *f = *state;
    if (comm_size() == 1) skip();
    HgadConfig config = small_config(1);
    Hgad *model = hgad_new(&config);
    TrainOptions options = {comm_size() + 1, 1, 0, 0};
    hg_status s = train_hgad(model, f->cache, f->labels, &options, NULL, NULL, NULL);
    assert_all(s == HG_ERR_ARG && strstr(hg_last_error(), "does not split evenly"), "%s",
               hg_last_error());
    hgad_free(model);
}

static void test_diverged_replica_is_detected(void **state) {
    (void)state;
    if (comm_size() == 1) skip();
    HgadConfig config = small_config(1);
    Hgad *model = hgad_new(&config);
    assert_all(dp_check_replicas(model->params) == HG_OK, "fresh replicas differ");
    if (comm_rank() == comm_size() - 1)
        tensor_data(param_set_at(model->params, 3)->var->value)[0] += 1e-6f;
    hg_status s = dp_check_replicas(model->params);
    char expected[64];
    snprintf(expected, sizeof expected, "rank %d of %d", comm_size() - 1, comm_size());
    assert_all(s == HG_ERR_CHECK && strstr(hg_last_error(), expected) &&
                   strstr(hg_last_error(), "differ"),
               "%s", hg_last_error());
    hgad_free(model);
}

/* A failure on one rank at the end of meta epoch 2 (of 3) stops every rank
 * with its message; the checkpoint rank 0 wrote stays loadable, and training
 * resumed from it ends where an uninterrupted run ends. */
typedef struct Checkpointing {
    Hgad *model;
    const char *path;
    int fail_at; /* meta epoch whose end fails on the last rank; -1 never */
} Checkpointing;

static hg_status save_checkpoint(void *context, int meta_epoch) {
    Checkpointing *c = context;
    if (meta_epoch == c->fail_at && comm_rank() == comm_size() - 1)
        return hg_fail(HG_ERR_IO, "injected failure at the end of epoch %d", meta_epoch);
    if (meta_epoch == c->fail_at) return HG_OK; /* the failing epoch's checkpoint is not written */
    HgadMeta meta = {0};
    char value[16];
    snprintf(value, sizeof value, "%d", meta_epoch + 1);
    hgad_meta_set(&meta, "epoch", value);
    return comm_rank() == 0 ? hgad_save(c->model, c->path, true, &meta) : HG_OK;
}

static void test_failure_on_one_rank_stops_all_and_training_resumes(void **state) {
    Fixture *f = *state;
    HgadConfig config = small_config(3);
    char path[600];
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", f->dir);
    TrainOptions options = {BATCH, 4, 0, 0};
    Hgad *full = hgad_new(&config), *failing = hgad_new(&config);
    hg_status s = train_hgad(full, f->cache, f->labels, &options, NULL, NULL, NULL);
    assert_all(s == HG_OK, "uninterrupted: %s", hg_last_error());
    Checkpointing ck = {failing, path, 1};
    s = train_hgad(failing, f->cache, f->labels, &options, NULL, save_checkpoint, &ck);
    char expected[96];
    snprintf(expected, sizeof expected, "rank %d of %d: injected failure at the end of epoch 1",
             comm_size() - 1, comm_size());
    if (comm_size() == 1)
        snprintf(expected, sizeof expected, "injected failure at the end of epoch 1");
    assert_all(s == HG_ERR_IO && strstr(hg_last_error(), expected), "got %d: %s", (int)s,
               hg_last_error());
    /* the last good checkpoint (after epoch 0) is intact, and no temporary file is left */
    HgadMeta meta = {0};
    Hgad *resumed = hgad_load(path, &meta);
    const char *epoch = resumed ? hgad_meta_get(&meta, "epoch") : NULL;
    char ls[700];
    snprintf(ls, sizeof ls, "ls %s | grep -q 'safetensors.tmp'", f->dir);
    assert_all(resumed && epoch && !strcmp(epoch, "1") && system(ls) != 0,
               "checkpoint: %s, epoch %s", resumed ? "loaded" : hg_last_error(),
               epoch ? epoch : "-");
    TrainOptions resume = {BATCH, 4, 1, 0};
    s = train_hgad(resumed, f->cache, f->labels, &resume, NULL, NULL, NULL);
    assert_all(s == HG_OK, "resumed: %s", hg_last_error());
    const double diff = params_rel_diff(resumed, full, NULL);
    assert_all(diff == 0, "resumed run ends %.3g (relative) away from the uninterrupted one", diff);
    hgad_free(full), hgad_free(failing), hgad_free(resumed);
}

int main(int argc, char **argv) {
    mpi_test_init(&argc, &argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sharded_cache_equals_single_process_cache),
        cmocka_unit_test(test_averaged_gradient_is_the_global_batch_gradient),
        cmocka_unit_test(test_five_steps_match_single_process),
        cmocka_unit_test(test_batch_must_split_over_ranks),
        cmocka_unit_test(test_diverged_replica_is_detected),
        cmocka_unit_test(test_failure_on_one_rank_stops_all_and_training_resumes),
    };
    int failed = cmocka_run_group_tests(tests, setup, teardown);
    return comm_finalize(failed ? 1 : 0);
}
