/* Flows and priors (spec sections 3-6) against the PyTorch reference fixture
 * made by tools/fixtures/make_flow_fixtures.py, plus inverse and log-det
 * checks that need no fixture. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/ops.h"
#include "models/hgad.h"
#include "models/positional.h"
#include "models/rotation.h"
#include "nn/safetensors.h"
#include "tensor/ops.h"
#include "tests/testutil.h"

#define FIXTURE "flow_reference.safetensors"
enum { N = 24, D = 12, DC = 8, C = 3, M = 4, K = 3 };

typedef struct Fixture {
    SafetensorsFile *file;
    Hgad *model;
    Tensor *x, *cond;
    int64_t *labels;
} Fixture;

static Tensor *load(const Fixture *f, const char *name) {
    Tensor *t = safetensors_load_tensor(f->file, name);
    if (!t) fail_msg("fixture tensor %s: %s", name, hg_last_error());
    return t;
}

static void assert_matches(const Tensor *got, const Fixture *f, const char *name, double tol) {
    Tensor *want = load(f, name);
    Tensor *want_shaped = tensor_reshape(want, got->ndim, got->shape);
    assert_ok_ptr(want_shaped);
    double err = test_max_rel_diff(got, want_shaped);
    if (!(err <= tol)) fail_msg("%s: max rel error %.3g > %.3g", name, err, tol);
    tensor_free(want);
    tensor_free(want_shaped);
}

static int setup(void **state) {
    Fixture *f = calloc(1, sizeof *f);
    f->file = safetensors_open(test_fixture(FIXTURE));
    if (!f->file) {
        fprintf(stderr, "%s\n", hg_last_error());
        free(f);
        return -1;
    }
    HgadConfig config = hgad_default_config(1, D, C);
    config.cond_dim = DC;
    config.coupling_blocks = K;
    config.intra_centers = M;
    f->model = hgad_new(&config);
    if (!f->model) {
        fprintf(stderr, "%s\n", hg_last_error());
        return -1;
    }
    LoadReport report = {0};
    /* The fixture also holds inputs and expected outputs: load non-strictly,
     * but every model parameter must be found. */
    if (param_set_load(f->model->params, test_fixture(FIXTURE), false, NULL, &report) != HG_OK ||
        report.n_missing || report.n_mismatched) {
        fprintf(stderr, "load: %s (%lld missing, %lld mis-shaped)\n", hg_last_error(),
                (long long)report.n_missing, (long long)report.n_mismatched);
        return -1;
    }
    load_report_free(&report);
    f->x = safetensors_load_tensor(f->file, "x");
    f->cond = safetensors_load_tensor(f->file, "cond");
    int64_t count = 0;
    if (!f->x || !f->cond || safetensors_load_int64(f->file, "y", &f->labels, &count) != HG_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    Fixture *f = *state;
    if (!f) return 0;
    hgad_free(f->model);
    tensor_free(f->x);
    tensor_free(f->cond);
    free(f->labels);
    safetensors_close(f->file);
    free(f);
    return 0;
}

static void test_positional_code(void **state) {
    Fixture *f = *state;
    Tensor *code = positional_code(DC, 5, 7);
    assert_ok_ptr(code);
    assert_matches(code, f, "pos_code_5x7", 1e-6);
    tensor_free(code);
    assert_null(positional_code(6, 2, 2));
    assert_non_null(strstr(hg_last_error(), "multiple of 4"));
}

/* One block of the chain: module_list.0 of the loaded flow. */
static const InvertibleModule *first_block(const Fixture *f) {
    const InvertibleModule *block = flow_chain_at(f->model->flows[0], 0);
    assert_non_null(block);
    return block;
}

static void run_module(const InvertibleModule *m, const Tensor *x, const Tensor *cond, bool reverse,
                       Tensor **z, Tensor **logdet) {
    Tape *tape = tape_new();
    tape_set_grad_enabled(tape, false);
    Var *ld = NULL;
    Var *out = invertible_forward(m, tape, ag_constant(tape, tensor_ref(x)),
                                  cond ? ag_constant(tape, tensor_ref(cond)) : NULL, reverse, &ld);
    assert_ok_ptr(out);
    *z = tensor_ref(out->value);
    *logdet = tensor_ref(ld->value);
    tape_free(tape);
}

static void test_block_and_chain_match_reference(void **state) {
    Fixture *f = *state;
    Tensor *z, *ld;
    run_module(first_block(f), f->x, f->cond, false, &z, &ld);
    assert_matches(z, f, "block_z", 1e-5);
    assert_matches(ld, f, "block_logdet", 1e-5);
    tensor_free(z), tensor_free(ld);
    assert_ok(hgad_flow_forward(f->model, 0, f->x, f->cond, false, &z, &ld));
    assert_matches(z, f, "chain_z", 1e-5);
    assert_matches(ld, f, "chain_logdet", 1e-5);
    tensor_free(z), tensor_free(ld);
}

static void test_new_clamp_matches_reference(void **state) {
    Fixture *f = *state;
    HgadConfig config = f->model->config;
    config.new_clamp = true;
    Hgad *model = hgad_new(&config);
    assert_ok_ptr(model);
    assert_ok(param_set_load(model->params, test_fixture(FIXTURE), false, NULL, NULL));
    Fixture g = *f;
    g.model = model;
    Tensor *z, *ld;
    run_module(first_block(&g), f->x, f->cond, false, &z, &ld);
    assert_matches(z, f, "block_newclamp_z", 1e-5);
    assert_matches(ld, f, "block_newclamp_logdet", 1e-5);
    tensor_free(z), tensor_free(ld);
    hgad_free(model);
}

static void test_chain_inverse(void **state) {
    Fixture *f = *state;
    Tensor *z, *ld, *x_back, *ld_back;
    assert_ok(hgad_flow_forward(f->model, 0, f->x, f->cond, false, &z, &ld));
    assert_ok(hgad_flow_forward(f->model, 0, z, f->cond, true, &x_back, &ld_back));
    assert_true(test_max_rel_diff(x_back, f->x) < 1e-5);
    Tensor *neg = tensor_neg(ld);
    assert_true(test_max_rel_diff(ld_back, neg) < 1e-5);
    tensor_free(z), tensor_free(ld), tensor_free(x_back), tensor_free(ld_back), tensor_free(neg);
}

/* log|det J| of the map x -> f(x) from central differences (in float32, so a
 * loose tolerance), by LU with partial pivoting in double. */
static double numerical_log_abs_det(const InvertibleModule *m, const float *x0, const float *c,
                                    int64_t d, int64_t dc) {
    double *jac = calloc((size_t)(d * d), sizeof(double));
    const float eps = 1e-2f;
    for (int64_t j = 0; j < d; j++) {
        /* two rows: x0 + eps e_j and x0 - eps e_j */
        Tensor *xs = tensor_empty(SHAPE(2, d));
        for (int r = 0; r < 2; r++) {
            memcpy(tensor_data(xs) + r * d, x0, sizeof(float) * (size_t)d);
            tensor_data(xs)[r * d + j] += r == 0 ? eps : -eps;
        }
        Tensor *cs = NULL;
        if (dc) {
            cs = tensor_empty(SHAPE(2, dc));
            for (int r = 0; r < 2; r++) memcpy(tensor_data(cs) + r * dc, c, sizeof(float) * (size_t)dc);
        }
        Tensor *y, *ld;
        run_module(m, xs, cs, false, &y, &ld);
        for (int64_t i = 0; i < d; i++)
            jac[i * d + j] = ((double)tensor_data(y)[i] - tensor_data(y)[d + i]) / (2.0 * eps);
        tensor_free(xs), tensor_free(cs), tensor_free(y), tensor_free(ld);
    }
    double log_det = 0;
    for (int64_t k = 0; k < d; k++) {
        int64_t p = k;
        for (int64_t i = k + 1; i < d; i++)
            if (fabs(jac[i * d + k]) > fabs(jac[p * d + k])) p = i;
        for (int64_t j = 0; j < d; j++) {
            double t = jac[k * d + j];
            jac[k * d + j] = jac[p * d + j];
            jac[p * d + j] = t;
        }
        log_det += log(fabs(jac[k * d + k]));
        for (int64_t i = k + 1; i < d; i++) {
            double factor = jac[i * d + k] / jac[k * d + k];
            for (int64_t j = k; j < d; j++) jac[i * d + j] -= factor * jac[k * d + j];
        }
    }
    free(jac);
    return log_det;
}

static void check_logdet_numerically(int64_t d, int64_t dc, bool new_clamp, bool hard) {
    ParamSet *ps = param_set_new();
    Rng rng = rng_new(11 + (uint64_t)d);
    CouplingOptions o = coupling_default_options(d, dc);
    o.new_clamp = new_clamp;
    o.hard_permutation = hard;
    InvertibleModule *flow = flow_coupling_chain_new(ps, "flow", 2, &o, &rng);
    assert_ok_ptr(flow);
    /* Larger subnet output weights so that the coupling is far from identity. */
    for (int64_t i = 0; i < param_set_size(ps); i++) {
        ParamEntry *e = param_set_at(ps, i);
        if (strstr(e->name, "subnet.2.weight")) {
            Tensor *scaled = tensor_scale(e->var->value, 20.0f);
            tensor_copy_(e->var->value, scaled);
            tensor_free(scaled);
        }
    }
    float x0[8], c[8];
    for (int64_t i = 0; i < d; i++) x0[i] = rng_normal(&rng);
    for (int64_t i = 0; i < dc; i++) c[i] = rng_normal(&rng);
    Tensor *xs = tensor_from_data(SHAPE(1, d), x0);
    Tensor *cs = dc ? tensor_from_data(SHAPE(1, dc), c) : NULL;
    Tensor *y, *ld;
    run_module(flow, xs, cs, false, &y, &ld);
    double analytic = tensor_data(ld)[0];
    double numeric = numerical_log_abs_det(flow, x0, c, d, dc);
    if (fabs(analytic - numeric) > 2e-3 * fmax(1.0, fabs(numeric)))
        fail_msg("d=%lld dc=%lld: log-det %.6f vs numerical %.6f", (long long)d, (long long)dc,
                 analytic, numeric);
    /* and it must not be trivially zero */
    assert_true(fabs(analytic) > 1e-2);
    tensor_free(xs), tensor_free(cs), tensor_free(y), tensor_free(ld);
    invertible_free(flow);
    param_set_free(ps);
}

static void test_logdet_matches_numerical_jacobian(void **state) {
    (void)state;
    check_logdet_numerically(8, 4, false, false);
    check_logdet_numerically(7, 0, false, false);
    check_logdet_numerically(5, 4, true, true);
    check_logdet_numerically(2, 0, false, false);
}

/* Losses and gradients of both phases against the reference. */
static void check_phase(Fixture *f, const char *phase_name, PriorPhase phase) {
    Tape *tape = tape_new();
    Var *x = var_new(tensor_clone(f->x), true);
    Var *cond = ag_constant(tape, tensor_ref(f->cond));
    PriorLosses terms;
    param_set_zero_grad(f->model->params);
    Var *loss = hgad_level_loss(f->model, tape, 0, x, cond, f->labels, phase, &terms);
    assert_ok_ptr(loss);
    char name[160];
    const char *term_names[] = {"L_g", "L_mi", "L_e", "L_g_intra", "L_z"};
    Var *term_vars[] = {terms.L_g, terms.L_mi, terms.L_e, terms.L_g_intra, terms.L_z};
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof name, "%s_%s", phase_name, term_names[i]);
        if (!safetensors_find(f->file, name)) {
            assert_null(term_vars[i]);
            continue;
        }
        assert_ok_ptr(term_vars[i]);
        assert_matches(term_vars[i]->value, f, name, 1e-5);
    }
    snprintf(name, sizeof name, "%s_loss", phase_name);
    assert_matches(loss->value, f, name, 1e-5);
    assert_ok(tape_backward(tape, loss, NULL));
    snprintf(name, sizeof name, "%s_grad_x", phase_name);
    assert_matches(x->grad, f, name, 1e-4);
    int checked = 0;
    for (int64_t i = 0; i < param_set_size(f->model->params); i++) {
        ParamEntry *e = param_set_at(f->model->params, i);
        snprintf(name, sizeof name, "%s_grad.%s", phase_name, e->name);
        if (!safetensors_find(f->file, name)) continue;
        if (!e->var->grad) fail_msg("%s has no gradient", e->name);
        assert_matches(e->var->grad, f, name, 1e-4);
        checked++;
    }
    assert_true(checked >= 3 * 6 + 2);
    var_free(x);
    tape_free(tape);
    param_set_zero_grad(f->model->params);
}

static void test_losses_and_gradients_inter_phase(void **state) {
    check_phase(*state, "inter", PRIOR_PHASE_INTER);
}

static void test_losses_and_gradients_full_phase(void **state) {
    check_phase(*state, "full", PRIOR_PHASE_FULL);
}

static void test_one_adam_step_matches_reference(void **state) {
    Fixture *f = *state;
    HgadConfig config = f->model->config;
    Hgad *model = hgad_new(&config);
    assert_ok_ptr(model);
    assert_ok(param_set_load(model->params, test_fixture(FIXTURE), false, NULL, NULL));
    HgadLossValues values;
    assert_ok(hgad_train_step(model, 0, f->x, f->cond, f->labels, config.inter_epochs, &values));
    Tensor *want_loss = load(f, "full_loss");
    assert_true(fabs(values.loss - tensor_data(want_loss)[0]) < 1e-4 * fabs(tensor_data(want_loss)[0]) + 1e-5);
    tensor_free(want_loss);
    char name[160];
    int checked = 0;
    for (int64_t i = 0; i < param_set_size(model->params); i++) {
        ParamEntry *e = param_set_at(model->params, i);
        snprintf(name, sizeof name, "step.%s", e->name);
        if (!safetensors_find(f->file, name)) continue;
        /* compare the update, not the parameter: p1 - p0 */
        Tensor *before = load(f, e->name), *after = load(f, name);
        Tensor *want = tensor_sub(after, before);
        Tensor *got = tensor_sub(e->var->value, before);
        Tensor *want_shaped = tensor_reshape(want, got->ndim, got->shape);
        double err = test_max_rel_diff(got, want_shaped);
        if (!(err < 1e-5)) fail_msg("%s: update differs, max rel error %.3g", e->name, err);
        tensor_free(before), tensor_free(after), tensor_free(want), tensor_free(got),
            tensor_free(want_shaped);
        checked++;
    }
    assert_int_equal(checked, K * 6 + 4);
    hgad_free(model);
}

static void test_prior_initialization(void **state) {
    (void)state;
    const int64_t dim = 200, classes = 15, centers = 10;
    ParamSet *ps = param_set_new();
    Rng rng = rng_new(3);
    MixturePriorOptions o = {dim, classes, centers, 0.02f};
    Prior *p = mixture_prior_new(ps, 2, &o, &rng);
    assert_ok_ptr(p);
    const Tensor *mu = param_set_find(ps, "mus.2")->value;
    const float s = (float)(5.0 / sqrt((double)(2 * dim / classes)));
    for (int64_t c = 0; c < classes; c++)
        for (int64_t j = 0; j < dim; j++) {
            float want = (j < (dim / classes) * classes && j % classes == c) ? s : 0.0f;
            assert_float_equal(tensor_data(mu)[c * dim + j], want, 0);
        }
    const Tensor *delta = param_set_find(ps, "mu_deltas.2")->value;
    assert_int_equal(delta->ndim, 3);
    assert_int_equal(delta->shape[1], centers - 1);
    double mean = tensor_sum_all(delta) / (double)tensor_numel(delta);
    assert_true(fabs(mean) < 0.05);
    assert_int_equal(tensor_numel(param_set_find(ps, "phi_intras.2")->value), classes * centers);
    assert_float_equal(tensor_sum_all(param_set_find(ps, "phi_inters.2")->value), 0, 0);
    prior_free(p);
    param_set_free(ps);
}

static void test_rotation_is_special_orthogonal(void **state) {
    (void)state;
    Rng rng = rng_new(5);
    for (int64_t d = 1; d <= 9; d += 4) {
        Tensor *w = random_rotation(d, &rng);
        Tensor *wwt = tensor_matmul(w, w, false, true);
        for (int64_t i = 0; i < d; i++)
            for (int64_t j = 0; j < d; j++)
                assert_float_equal(tensor_data(wwt)[i * d + j], i == j ? 1.0f : 0.0f, 1e-5);
        tensor_free(w), tensor_free(wwt);
    }
}

static void test_bad_shapes_are_errors(void **state) {
    Fixture *f = *state;
    Tensor *x = tensor_zeros(SHAPE(4, D + 1)), *c = tensor_zeros(SHAPE(4, DC)), *z, *ld;
    assert_int_equal(hgad_flow_forward(f->model, 0, x, c, false, &z, &ld), HG_ERR_SHAPE);
    assert_non_null(strstr(hg_last_error(), "expects vectors"));
    tensor_free(x);
    x = tensor_zeros(SHAPE(4, D));
    tensor_free(c);
    c = tensor_zeros(SHAPE(4, DC - 4));
    assert_int_equal(hgad_flow_forward(f->model, 0, x, c, false, &z, &ld), HG_ERR_SHAPE);
    assert_non_null(strstr(hg_last_error(), "condition"));
    assert_int_equal(hgad_flow_forward(f->model, 3, x, c, false, &z, &ld), HG_ERR_ARG);
    tensor_free(x), tensor_free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_positional_code),
        cmocka_unit_test(test_block_and_chain_match_reference),
        cmocka_unit_test(test_new_clamp_matches_reference),
        cmocka_unit_test(test_chain_inverse),
        cmocka_unit_test(test_logdet_matches_numerical_jacobian),
        cmocka_unit_test(test_losses_and_gradients_inter_phase),
        cmocka_unit_test(test_losses_and_gradients_full_phase),
        cmocka_unit_test(test_one_adam_step_matches_reference),
        cmocka_unit_test(test_prior_initialization),
        cmocka_unit_test(test_rotation_is_special_orthogonal),
        cmocka_unit_test(test_bad_shapes_are_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
