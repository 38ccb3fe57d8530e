/* Optimizers, gradient clipping, learning-rate schedules and checkpoints:
 * parity with PyTorch on fixtures (tools/fixtures/make_optim_fixtures.py) and
 * bit-identical resumption from a checkpoint. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/testutil.h"

#include "autograd/ops.h"
#include "nn/checkpoint.h"
#include "nn/linear.h"
#include "nn/losses.h"
#include "nn/optim.h"
#include "nn/safetensors.h"
#include "nn/schedule.h"
#include "tensor/ops.h"
#include "tests/fixture_records.h"

#define N_PARAMS 4
#define N_STEPS  5
static const char *const param_names[N_PARAMS] = {"p0", "p1", "p2", "p3"};

/* The groups of the fixture script (its inputs, not its results). */
typedef struct {
    int n;
    int first_param[3], n_params[3];
    OptimHyper hyper[3];
} FixtureGroups;

static FixtureGroups fixture_groups(OptimKind kind) {
    FixtureGroups g = {.n = 3, .first_param = {0, 2, 3}, .n_params = {2, 1, 1}};
    for (int i = 0; i < 3; i++) g.hyper[i] = optim_default_hyper(kind);
    if (kind == OPTIM_SGD) {
        g.hyper[0].lr = 0.1, g.hyper[0].momentum = 0.9, g.hyper[0].weight_decay = 1e-3;
        g.hyper[1].lr = 0.05, g.hyper[1].momentum = 0.8, g.hyper[1].nesterov = true;
        g.hyper[2].lr = 0.2, g.hyper[2].momentum = 0.5, g.hyper[2].dampening = 0.1;
        g.hyper[2].weight_decay = 0.01;
        return g;
    }
    bool adamw = kind == OPTIM_ADAMW;
    g.hyper[0].lr = 0.05;
    g.hyper[0].weight_decay = adamw ? 0.1 : 0;
    g.hyper[1].lr = 0.03, g.hyper[1].beta1 = 0.95, g.hyper[1].beta2 = 0.99;
    g.hyper[1].eps = 1e-3, g.hyper[1].weight_decay = adamw ? 0.5 : 0.05;
    g.hyper[2].lr = 0.02, g.hyper[2].amsgrad = true;
    g.hyper[2].weight_decay = adamw ? 0.0 : 1e-2;
    return g;
}

static Tensor *must_fixture_tensor(const FixtureFile *ff, const char *fmt, ...) {
    char name[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    Tensor *t = fixture_tensor(ff, name);
    if (!t) fail_msg("fixture record %s missing", name);
    return t;
}

static void assert_rel_close(const Tensor *got, const Tensor *want, double tol, const char *what) {
    char a[64], b[64];
    if (!tensor_same_shape(got, want))
        fail_msg("%s: shape %s vs %s", what, tensor_shape_str(got, a, sizeof a),
                 tensor_shape_str(want, b, sizeof b));
    double d = test_max_rel_diff(got, want);
    if (!(d <= tol)) fail_msg("%s: max relative difference %.3g > %.1g", what, d, tol);
}

/* Runs the fixture's steps with our optimizer and compares every step. */
static void run_optimizer_fixture(OptimKind kind, const char *file) {
    FixtureFile ff;
    if (!fixture_file_read(&ff, test_fixture(file))) fail_msg("cannot read %s", file);
    FixtureGroups fg = fixture_groups(kind);
    Optimizer *opt = optim_new(kind);
    assert_ok_ptr(opt);
    Var *params[N_PARAMS];
    for (int i = 0; i < N_PARAMS; i++) {
        params[i] = var_new(must_fixture_tensor(&ff, "init.%s", param_names[i]), true);
        assert_ok_ptr(params[i]);
    }
    for (int g = 0; g < fg.n; g++) {
        int gi = optim_add_group(opt, NULL, &fg.hyper[g]);
        assert_int_equal(gi, g);
        for (int k = 0; k < fg.n_params[g]; k++) {
            int p = fg.first_param[g] + k;
            assert_ok(optim_add_param(opt, gi, param_names[p], params[p]));
        }
    }
    char what[96];
    for (int step = 0; step < N_STEPS; step++) {
        for (int i = 0; i < N_PARAMS; i++) {
            var_zero_grad(params[i]);
            Tensor *g = must_fixture_tensor(&ff, "grad.%d.%s", step, param_names[i]);
            if (tensor_numel(g) == 0) {
                tensor_free(g); /* no gradient this step: the parameter is skipped */
                continue;
            }
            assert_ok(var_accumulate_grad(params[i], g));
        }
        assert_ok(optim_step(opt));
        for (int i = 0; i < N_PARAMS; i++) {
            Tensor *want = must_fixture_tensor(&ff, "param.%d.%s", step, param_names[i]);
            snprintf(what, sizeof what, "%s step %d %s", file, step, param_names[i]);
            assert_rel_close(params[i]->value, want, 1e-5, what);
            tensor_free(want);
        }
    }
    /* Final state, field by field, and the per-parameter step counts. */
    for (int g = 0; g < opt->n_groups; g++) {
        for (int64_t k = 0; k < opt->groups[g].count; k++) {
            const OptimParam *p = &opt->groups[g].params[k];
            char rec[96];
            snprintf(rec, sizeof rec, "state.%s.step", p->name);
            Tensor *step = fixture_tensor(&ff, rec); /* torch's SGD keeps no count */
            if (step) assert_int_equal(p->step, (int64_t)tensor_data(step)[0]);
            tensor_free(step);
            const Tensor *fields[4] = {p->exp_avg, p->exp_avg_sq, p->max_exp_avg_sq,
                                       p->momentum_buffer};
            const char *names[4] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer"};
            for (int f = 0; f < 4; f++) {
                snprintf(rec, sizeof rec, "state.%s.%s", p->name, names[f]);
                Tensor *want = fixture_tensor(&ff, rec);
                if (!want) {
                    if (fields[f]) fail_msg("%s: we have %s, torch does not", file, rec);
                    continue;
                }
                if (!fields[f]) fail_msg("%s: torch has %s, we do not", file, rec);
                assert_rel_close(fields[f], want, 1e-5, rec);
                tensor_free(want);
            }
        }
    }
    optim_free(opt);
    for (int i = 0; i < N_PARAMS; i++) var_free(params[i]);
    fixture_file_free(&ff);
}

static void test_adam_matches_torch(void **state) {
    run_optimizer_fixture(OPTIM_ADAM, "optim_adam.txt");
}

static void test_adamw_matches_torch(void **state) {
    run_optimizer_fixture(OPTIM_ADAMW, "optim_adamw.txt");
}

static void test_sgd_matches_torch(void **state) {
    run_optimizer_fixture(OPTIM_SGD, "optim_sgd.txt");
}

/* One hand-computed Adam step: with bias correction the first step moves every
 * element by lr * g / (|g| + eps) ~= lr * sign(g). */
static void test_adam_first_step_is_sign(void **state) {
    Optimizer *opt = optim_new(OPTIM_ADAM);
    OptimHyper h = optim_default_hyper(OPTIM_ADAM);
    h.lr = 0.5;
    assert_int_equal(optim_add_group(opt, "all", &h), 0);
    Var *p = var_new(tensor_from_data(SHAPE(3), (float[]){1, 2, 3}), true);
    assert_ok(optim_add_param(opt, 0, "p", p));
    assert_ok(var_accumulate_grad(p, tensor_from_data(SHAPE(3), (float[]){4, -0.01f, 0})));
    assert_ok(optim_step(opt));
    test_assert_values(p->value, (float[]){0.5f, 2.5f, 3}, 3, 1e-5);
    optim_free(opt);
    var_free(p);
}

static void test_bad_hyper_parameters(void **state) {
    Optimizer *opt = optim_new(OPTIM_SGD);
    OptimHyper h = optim_default_hyper(OPTIM_SGD);
    h.nesterov = true; /* without momentum */
    assert_int_equal(optim_add_group(opt, NULL, &h), -1);
    assert_int_equal(hg_last_status(), HG_ERR_ARG);
    h = optim_default_hyper(OPTIM_SGD);
    assert_int_equal(optim_add_group(opt, "g", &h), 0);
    assert_int_equal(optim_add_group(opt, "g", &h), -1); /* duplicate name */
    Var *p = var_new(tensor_zeros(SHAPE(2)), true);
    assert_ok(optim_add_param(opt, 0, "p", p));
    assert_int_equal(optim_add_param(opt, 0, "p", p), HG_ERR_ARG);
    assert_int_equal(optim_add_param(opt, 3, "q", p), HG_ERR_ARG);
    optim_free(opt);
    var_free(p);
    Optimizer *adam = optim_new(OPTIM_ADAM);
    h = optim_default_hyper(OPTIM_ADAM);
    h.beta2 = 1.0;
    assert_int_equal(optim_add_group(adam, NULL, &h), -1);
    optim_free(adam);
}

static void test_add_param_set_skips_frozen_and_buffers(void **state) {
    ParamSet *ps = param_set_new();
    assert_non_null(param_set_add(ps, "a.weight", tensor_zeros(SHAPE(2, 2)), false));
    assert_non_null(param_set_add(ps, "a.bias", tensor_zeros(SHAPE(2)), false));
    assert_non_null(param_set_add(ps, "b.weight", tensor_zeros(SHAPE(2, 2)), false));
    assert_non_null(param_set_add(ps, "b.running_mean", tensor_zeros(SHAPE(2)), true));
    assert_int_equal(param_set_freeze(ps, "a", true), 2);
    Optimizer *opt = optim_new(OPTIM_ADAMW);
    OptimHyper h = optim_default_hyper(OPTIM_ADAMW);
    optim_add_group(opt, NULL, &h);
    assert_ok(optim_add_param_set(opt, 0, ps, NULL));
    assert_int_equal(optim_param_count(opt), 1);
    assert_string_equal(opt->groups[0].params[0].name, "b.weight");
    optim_free(opt);
    param_set_free(ps);
}

/* ---- gradient clipping ---- */

static void test_clip_grad_norm_matches_torch(void **state) {
    FixtureFile ff;
    if (!fixture_file_read(&ff, test_fixture("optim_losses.txt"))) fail();
    const double max_norms[2] = {1.0, 100.0};
    for (int c = 0; c < 2; c++) {
        Var *vars[4];
        for (int i = 0; i < 3; i++) {
            Tensor *g = must_fixture_tensor(&ff, "clip.grad.%d", i);
            vars[i] = var_new(tensor_zeros(g->ndim, g->shape), true);
            assert_ok(var_accumulate_grad(vars[i], g));
        }
        vars[3] = var_new(tensor_ones(SHAPE(3)), true); /* no gradient: ignored */
        double norm = 0;
        assert_ok(clip_grad_norm(vars, 4, max_norms[c], &norm));
        Tensor *want_norm = must_fixture_tensor(&ff, "clip.%g.norm", max_norms[c]);
        assert_true(fabs(norm - tensor_data(want_norm)[0]) <= 1e-5 * norm);
        tensor_free(want_norm);
        for (int i = 0; i < 3; i++) {
            Tensor *want = must_fixture_tensor(&ff, "clip.%g.grad.%d", max_norms[c], i);
            assert_rel_close(vars[i]->grad, want, 1e-5, "clipped gradient");
            tensor_free(want);
        }
        assert_null(vars[3]->grad);
        for (int i = 0; i < 4; i++) var_free(vars[i]);
    }
    fixture_file_free(&ff);
}

/* ---- schedules ---- */

static void assert_lr_sequence(const FixtureFile *ff, const char *record, const Schedule *s,
                               double base) {
    const FixtureRecord *r = fixture_find(ff, record);
    if (!r) fail_msg("fixture record %s missing", record);
    for (int64_t t = 0; t < r->n; t++) {
        double got = schedule_lr(s, base, t), want = r->values[t];
        if (!(fabs(got - want) <= 1e-12 * fabs(want)))
            fail_msg("%s at t=%lld: %.17g vs torch %.17g", record, (long long)t, got, want);
    }
}

static void test_schedules_match_torch(void **state) {
    FixtureFile ff;
    if (!fixture_file_read(&ff, test_fixture("optim_schedules.txt"))) fail();
    Schedule step = schedule_step(3, 0.5), cosine = schedule_cosine(10, 1e-4);
    Schedule linear = schedule_linear(0.1, 1.0, 5);
    Schedule warm = schedule_linear(0.1, 1.0, 4), cos8 = schedule_cosine(8, 1e-5);
    const Schedule *parts[2] = {&warm, &cos8};
    Schedule seq = schedule_sequence(2, parts, (int64_t[]){4});
    struct {
        const char *name;
        const Schedule *s;
    } cases[] = {{"step", &step}, {"cosine", &cosine}, {"linear", &linear}, {"sequence", &seq}};
    const double bases[2] = {0.1, 0.01};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        assert_ok(schedule_check(cases[c].s));
        for (int g = 0; g < 2; g++) {
            char rec[64];
            snprintf(rec, sizeof rec, "lr.%s.%d", cases[c].name, g);
            assert_lr_sequence(&ff, rec, cases[c].s, bases[g]);
        }
    }
    fixture_file_free(&ff);
}

static void test_schedule_apply_scales_each_group(void **state) {
    Optimizer *opt = optim_new(OPTIM_SGD);
    OptimHyper h = optim_default_hyper(OPTIM_SGD);
    h.lr = 0.1;
    optim_add_group(opt, "a", &h);
    h.lr = 0.01;
    optim_add_group(opt, "b", &h);
    Schedule s = schedule_step(2, 0.1);
    schedule_apply(&s, opt, 5); /* floor(5 / 2) = 2 decays */
    assert_true(fabs(opt->groups[0].hyper.lr - 1e-3) < 1e-15);
    assert_true(fabs(opt->groups[1].hyper.lr - 1e-4) < 1e-16);
    optim_free(opt);
}

static void test_schedule_check_rejects_bad_schedules(void **state) {
    Schedule bad = schedule_step(0, 0.5);
    assert_int_equal(schedule_check(&bad), HG_ERR_ARG);
    Schedule c = schedule_cosine(0, 0);
    assert_int_equal(schedule_check(&c), HG_ERR_ARG);
    Schedule a = schedule_constant(), b = schedule_constant();
    const Schedule *parts[2] = {&a, &b};
    Schedule seq = schedule_sequence(2, parts, (int64_t[]){0});
    assert_int_equal(schedule_check(&seq), HG_ERR_ARG);
    const Schedule *with_bad[2] = {&a, &bad};
    Schedule seq2 = schedule_sequence(2, with_bad, (int64_t[]){3});
    assert_int_equal(schedule_check(&seq2), HG_ERR_ARG);
}

static void test_hgad_schedule_matches_public_code(void **state) {
    FixtureFile ff;
    if (!fixture_file_read(&ff, test_fixture("optim_schedules.txt"))) fail();
    const FixtureRecord *r = fixture_find(&ff, "hgad.25.24");
    assert_non_null(r);
    HgadSchedule s = hgad_schedule_default(2e-4, 25);
    int64_t T = 24;
    assert_int_equal(r->n, 25 * T);
    for (int e = 0; e < 25; e++) {
        for (int64_t b = 0; b < T; b++) {
            double got = hgad_schedule_lr(&s, e, b, T), want = r->values[e * T + b];
            if (!(fabs(got - want) <= 1e-12 * want))
                fail_msg("meta epoch %d batch %lld: %.17g vs %.17g", e, (long long)b, got, want);
        }
    }
    /* The warm-up ends where the cosine of meta epoch 2 begins. */
    assert_true(fabs(hgad_schedule_lr(&s, 1, T, T) - hgad_schedule_lr(&s, 2, 0, T)) < 1e-15);
    fixture_file_free(&ff);
}

/* ---- checkpoints ---- */

typedef struct {
    ParamSet *ps;
    Linear l0, l2;
    Optimizer *opt;
} TinyModel;

static void tiny_model_init(TinyModel *m, uint64_t seed) {
    Rng rng = rng_new(seed);
    m->ps = param_set_new();
    assert_ok(linear_init(&m->l0, m->ps, "net.0", 4, 8, true, &rng));
    assert_ok(linear_init(&m->l2, m->ps, "net.2", 8, 3, true, &rng));
    assert_non_null(param_set_add(m->ps, "net.scale", tensor_full(SHAPE(1), 2.0f), true));
    m->opt = optim_new(OPTIM_ADAM);
    OptimHyper h = optim_default_hyper(OPTIM_ADAM);
    h.lr = 1e-2, h.beta1 = 0.95, h.beta2 = 0.99, h.weight_decay = 1e-4;
    assert_int_equal(optim_add_group(m->opt, "first", &h), 0);
    h.lr = 3e-2, h.weight_decay = 0, h.amsgrad = true;
    assert_int_equal(optim_add_group(m->opt, "second", &h), 1);
    assert_ok(optim_add_param_set(m->opt, 0, m->ps, "net.0"));
    assert_ok(optim_add_param_set(m->opt, 1, m->ps, "net.2"));
}

static void tiny_model_free(TinyModel *m) {
    optim_free(m->opt);
    param_set_free(m->ps);
}

/* One training step on fixed data: cross entropy, clipping, Adam, and a
 * schedule that changes the lr every step. */
static void tiny_model_step(TinyModel *m, int64_t step) {
    Rng data_rng = rng_new(99 + (uint64_t)step);
    Tape *tape = tape_new();
    Var *x = ag_constant(tape, tensor_normal(SHAPE(16, 4), 0, 1, &data_rng));
    int64_t targets[16];
    for (int i = 0; i < 16; i++) targets[i] = i % 3;
    Var *h = ag_relu(tape, linear_forward(tape, &m->l0, x));
    Var *loss = loss_cross_entropy(tape, linear_forward(tape, &m->l2, h), targets, 0.1f);
    assert_ok_ptr(loss);
    assert_ok(tape_backward(tape, loss, NULL));
    tape_free(tape);
    assert_ok(optim_clip_grad_norm(m->opt, 0.5, NULL));
    Schedule s = schedule_cosine(10, 1e-4);
    schedule_apply(&s, m->opt, step);
    assert_ok(optim_step(m->opt));
    optim_zero_grad(m->opt);
}

static void assert_same_bits(const Tensor *a, const Tensor *b, const char *what) {
    assert_true(tensor_same_shape(a, b));
    if (memcmp(tensor_data(a), tensor_data(b), sizeof(float) * (size_t)tensor_numel(a)) != 0)
        fail_msg("%s differs after resuming", what);
}

static void temp_path(char *buf, size_t size, const char *tag) {
    snprintf(buf, size, "/tmp/hg_test_optim_%s_%d.safetensors", tag, (int)getpid());
}

static void test_checkpoint_resume_is_bit_identical(void **state) {
    TinyModel straight, first, resumed;
    tiny_model_init(&straight, 1);
    for (int64_t t = 0; t < 5; t++) tiny_model_step(&straight, t);

    tiny_model_init(&first, 1);
    for (int64_t t = 0; t < 3; t++) tiny_model_step(&first, t);
    char path[256];
    temp_path(path, sizeof path, "resume");
    const char *keys[2] = {"epoch", "config"}, *values[2] = {"3", "{\"lr\": 0.01}"};
    assert_ok(checkpoint_save(path, first.ps, first.opt, 2, keys, values));

    tiny_model_init(&resumed, 12345); /* different initial values, fresh state */
    optim_set_lr(resumed.opt, 7.0);
    CheckpointMeta meta;
    assert_ok(checkpoint_load(path, resumed.ps, resumed.opt, &meta));
    assert_string_equal(checkpoint_meta_get(&meta, "epoch"), "3");
    assert_string_equal(checkpoint_meta_get(&meta, "config"), "{\"lr\": 0.01}");
    assert_string_equal(checkpoint_meta_get(&meta, "optimizer.kind"), "adam");
    assert_true(resumed.opt->groups[1].hyper.lr == first.opt->groups[1].hyper.lr);
    checkpoint_meta_free(&meta);
    for (int64_t t = 3; t < 5; t++) tiny_model_step(&resumed, t);

    for (int64_t i = 0; i < param_set_size(straight.ps); i++) {
        const ParamEntry *e = param_set_at(straight.ps, i);
        assert_same_bits(param_set_find(resumed.ps, e->name)->value, e->var->value, e->name);
    }
    for (int g = 0; g < 2; g++) {
        for (int64_t k = 0; k < straight.opt->groups[g].count; k++) {
            const OptimParam *a = &straight.opt->groups[g].params[k];
            const OptimParam *b = &resumed.opt->groups[g].params[k];
            assert_int_equal(a->step, b->step);
            assert_same_bits(a->exp_avg, b->exp_avg, "exp_avg");
            assert_same_bits(a->exp_avg_sq, b->exp_avg_sq, "exp_avg_sq");
            if (a->max_exp_avg_sq) assert_same_bits(a->max_exp_avg_sq, b->max_exp_avg_sq, "vmax");
        }
    }
    tiny_model_free(&straight);
    tiny_model_free(&first);
    tiny_model_free(&resumed);
    unlink(path);
}

static void test_checkpoint_load_errors(void **state) {
    TinyModel m;
    tiny_model_init(&m, 1);
    tiny_model_step(&m, 0);
    char path[256];
    temp_path(path, sizeof path, "errors");
    assert_int_equal(checkpoint_save(path, m.ps, m.opt, 1, (const char *[]){"optimizer.x"},
                                     (const char *[]){"1"}),
                     HG_ERR_ARG);
    assert_ok(checkpoint_save(path, m.ps, m.opt, 0, NULL, NULL));

    /* Another optimizer kind. */
    Optimizer *sgd = optim_new(OPTIM_SGD);
    OptimHyper h = optim_default_hyper(OPTIM_SGD);
    optim_add_group(sgd, "first", &h);
    assert_int_equal(checkpoint_load(path, m.ps, sgd, NULL), HG_ERR_FORMAT);
    assert_non_null(strstr(hg_last_error(), "adam"));
    optim_free(sgd);

    /* A model missing a parameter is a strict-load error naming it. */
    ParamSet *small = param_set_new();
    assert_non_null(param_set_add(small, "net.0.weight", tensor_zeros(SHAPE(8, 4)), false));
    assert_non_null(param_set_add(small, "net.9.weight", tensor_zeros(SHAPE(1)), false));
    assert_int_equal(checkpoint_load(path, small, NULL, NULL), HG_ERR_FORMAT);
    assert_non_null(strstr(hg_last_error(), "net.9.weight"));
    assert_non_null(strstr(hg_last_error(), "net.2.bias")); /* unexpected */
    assert_null(strstr(hg_last_error(), "optimizer."));     /* not model state */
    param_set_free(small);
    tiny_model_free(&m);
    unlink(path);
}

/* Import checks shapes and completeness, through the generic lookup. */
typedef struct {
    const char *name;
    Tensor *t;
} OneTensor;

static hg_status lookup_one(void *ctx, const char *name, Tensor **out) {
    OneTensor *list = ctx;
    *out = NULL;
    for (int i = 0; list[i].name; i++)
        if (strcmp(list[i].name, name) == 0) *out = tensor_ref(list[i].t);
    return HG_OK;
}

static void test_state_import_validates(void **state) {
    Optimizer *opt = optim_new(OPTIM_ADAM);
    OptimHyper h = optim_default_hyper(OPTIM_ADAM);
    optim_add_group(opt, NULL, &h);
    Var *p = var_new(tensor_zeros(SHAPE(2, 3)), true);
    assert_ok(optim_add_param(opt, 0, "w", p));
    Tensor *step = tensor_full(SHAPE(1), 4), *good = tensor_ones(SHAPE(2, 3));
    Tensor *bad = tensor_ones(SHAPE(3, 2));
    OneTensor missing[] = {{"optimizer.0.w.step", step}, {"optimizer.0.w.exp_avg", good}, {0}};
    assert_int_equal(optim_state_import(opt, lookup_one, missing), HG_ERR_FORMAT);
    assert_non_null(strstr(hg_last_error(), "exp_avg_sq"));
    assert_int_equal(opt->groups[0].params[0].step, 0);
    OneTensor shaped[] = {{"optimizer.0.w.step", step},
                          {"optimizer.0.w.exp_avg", good},
                          {"optimizer.0.w.exp_avg_sq", bad},
                          {0}};
    assert_int_equal(optim_state_import(opt, lookup_one, shaped), HG_ERR_FORMAT);
    OneTensor ok[] = {{"optimizer.0.w.step", step},
                      {"optimizer.0.w.exp_avg", good},
                      {"optimizer.0.w.exp_avg_sq", good},
                      {0}};
    assert_ok(optim_state_import(opt, lookup_one, ok));
    assert_int_equal(opt->groups[0].params[0].step, 4);
    /* The imported state is a private copy. */
    tensor_data(good)[0] = 5;
    assert_true(tensor_data(opt->groups[0].params[0].exp_avg)[0] == 1.0f);
    tensor_free(step);
    tensor_free(good);
    tensor_free(bad);
    optim_free(opt);
    var_free(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adam_matches_torch),
        cmocka_unit_test(test_adamw_matches_torch),
        cmocka_unit_test(test_sgd_matches_torch),
        cmocka_unit_test(test_adam_first_step_is_sign),
        cmocka_unit_test(test_bad_hyper_parameters),
        cmocka_unit_test(test_add_param_set_skips_frozen_and_buffers),
        cmocka_unit_test(test_clip_grad_norm_matches_torch),
        cmocka_unit_test(test_schedules_match_torch),
        cmocka_unit_test(test_schedule_apply_scales_each_group),
        cmocka_unit_test(test_schedule_check_rejects_bad_schedules),
        cmocka_unit_test(test_hgad_schedule_matches_public_code),
        cmocka_unit_test(test_checkpoint_resume_is_bit_identical),
        cmocka_unit_test(test_checkpoint_load_errors),
        cmocka_unit_test(test_state_import_validates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
