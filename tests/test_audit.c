/* The numerical audit of a checkpoint (models/hgad_audit.h) and the
 * "hgad audit" command: a fresh model passes; a wrong inverse rotation, a
 * log-det that does not match the Jacobian and a NaN parameter are caught. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/hgad_audit.h"
#include "tensor/rng.h"
#include "tests/testutil.h"

enum { D0 = 12, D1 = 10, DC = 8, C = 3, M = 4, K = 3 };

static char out[65536];

static int setup(void **state) {
    return test_temp_dir_create("hgad_audit_test");
}

static int teardown(void **state) {
    return test_temp_dir_remove();
}

/* Runs "hgad audit --checkpoint PATH", capturing stdout+stderr; returns the exit code. */
static int run_audit(const char *path) {
    return test_run_hgad(out, sizeof out, "audit --checkpoint %s", path);
}

static Hgad *small_model(PriorKind prior) {
    HgadConfig config = hgad_default_config(2, D0, C);
    config.dims[1] = D1;
    config.cond_dim = DC;
    config.coupling_blocks = K;
    config.intra_centers = M;
    config.prior = prior;
    config.seed = 7;
    Hgad *m = hgad_new(&config);
    assert_ok_ptr(m);
    return m;
}

/* Saves `m`, frees it and loads it back, so every check runs on a checkpoint. */
static Hgad *round_trip(Hgad *m, const char *path) {
    assert_ok(hgad_save(m, path, false, NULL));
    hgad_free(m);
    Hgad *loaded = hgad_load(path, NULL);
    assert_ok_ptr(loaded);
    return loaded;
}

static const HgadAuditCheck *find_check(const HgadAudit *a, int level, const char *name) {
    for (int i = 0; i < a->n_checks; i++)
        if (a->checks[i].level == level && !strcmp(a->checks[i].name, name)) return &a->checks[i];
    fail_msg("no check %s at level %d", name, level);
    return NULL;
}

static HgadAuditOptions fast_options(void) {
    HgadAuditOptions o = hgad_audit_default_options();
    o.samples = 16;
    return o;
}

static Tensor *param(const Hgad *m, const char *name) {
    Var *v = param_set_find(m->params, name);
    if (!v) fail_msg("no parameter %s", name);
    return v->value;
}

/* ---- log|det| ---- */

/* A = P L U with L unit lower triangular, U upper triangular with a known
 * diagonal and P a row swap: log|det A| = sum log|u_ii|. */
static void test_log_abs_det(void **state) {
    enum { N = 6 };
    const double diag[N] = {2.0, -0.5, 3.0, 1.25, -4.0, 0.1};
    double l[N][N] = {{0}}, u[N][N] = {{0}}, a[N * N];
    Rng rng = rng_new(3);
    for (int i = 0; i < N; i++) {
        l[i][i] = 1;
        u[i][i] = diag[i];
        for (int j = 0; j < i; j++) l[i][j] = rng_uniform(&rng) * 2 - 1;
        for (int j = i + 1; j < N; j++) u[i][j] = rng_uniform(&rng) * 2 - 1;
    }
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < N; k++) s += l[i][k] * u[k][j];
            a[((i + 2) % N) * N + j] = s; /* rows permuted: |det| unchanged */
        }
    double expected = 0;
    for (int i = 0; i < N; i++) expected += log(fabs(diag[i]));
    assert_true(fabs(hgad_log_abs_det(a, N) - expected) < 1e-10);
    double singular[4] = {1, 2, 2, 4};
    const double ld = hgad_log_abs_det(singular, 2); /* factorizes in place: call once */
    assert_true(isinf(ld) && ld < 0);
}

/* ---- a fresh checkpoint passes ---- */

static void test_fresh_checkpoint_passes(void **state) {
    const char *path = test_temp_path("fresh.safetensors");
    Hgad *m = round_trip(small_model(PRIOR_HIERARCHICAL), path);
    HgadAudit a;
    HgadAuditOptions o = fast_options();
    assert_ok(hgad_audit(m, &o, &a));
    for (int i = 0; i < a.n_checks; i++)
        if (!a.checks[i].passed)
            fail_msg("level %d %s: %g > %g (%s)", a.checks[i].level, a.checks[i].name,
                     a.checks[i].value, a.checks[i].tolerance, a.checks[i].detail);
    assert_int_equal(a.failures, 0);
    /* every check ran: finite-params + 7 per level */
    assert_int_equal(a.n_checks, 1 + 2 * 7);
    const char *names[] = {"inverse",      "logdet-inverse", "logdet-jacobian", "grad-inter",
                           "grad-weights", "grad-intra",     "grad-flow"};
    for (int l = 0; l < 2; l++)
        for (int i = 0; i < 7; i++) (void)find_check(&a, l, names[i]);
    /* the gradient checks covered every element of the inputs they name */
    assert_non_null(strstr(find_check(&a, 1, "grad-intra")->detail, "elements"));
    hgad_audit_free(&a);
    /* the parameters were restored and carry no gradient */
    for (int64_t i = 0; i < param_set_size(m->params); i++)
        assert_null(param_set_at(m->params, i)->var->grad);
    hgad_free(m);

    assert_int_equal(run_audit(path), 0);
    assert_non_null(strstr(out, "result: PASS"));
    assert_non_null(strstr(out, "nfs.0.module_list.*.subnet.0.weight"));
}

static void test_gaussian_prior_passes(void **state) {
    Hgad *m = round_trip(small_model(PRIOR_GAUSSIAN), test_temp_path("gaussian.safetensors"));
    HgadAudit a;
    HgadAuditOptions o = fast_options();
    assert_ok(hgad_audit(m, &o, &a));
    assert_int_equal(a.failures, 0);
    assert_true(find_check(&a, 0, "grad-prior")->passed);
    assert_true(find_check(&a, 1, "grad-flow")->passed);
    hgad_audit_free(&a);
    hgad_free(m);
}

/* ---- corruptions are caught ---- */

/* w_perm_inv = w_perm (not its transpose) in one block of level 0: only that
 * level's inverse fails. */
static void test_corrupted_inverse_rotation_fails(void **state) {
    const char *path = test_temp_path("bad_inverse.safetensors");
    Hgad *m = small_model(PRIOR_HIERARCHICAL);
    assert_ok(tensor_copy_(param(m, "nfs.0.module_list.1.w_perm_inv"),
                           param(m, "nfs.0.module_list.1.w_perm")));
    m = round_trip(m, path);
    HgadAudit a;
    HgadAuditOptions o = fast_options();
    assert_ok(hgad_audit(m, &o, &a));
    const HgadAuditCheck *inv0 = find_check(&a, 0, "inverse");
    assert_false(inv0->passed);
    assert_true(inv0->value > 1e-2);
    assert_true(find_check(&a, 1, "inverse")->passed);
    assert_true(find_check(&a, 0, "logdet-jacobian")->passed); /* the forward is untouched */
    assert_true(a.failures >= 1);
    hgad_audit_free(&a);
    hgad_free(m);

    assert_int_not_equal(run_audit(path), 0);
    assert_non_null(strstr(out, "result: FAIL"));
    assert_non_null(strstr(out, "inverse          FAIL"));
}

/* w_perm scaled by 2 with w_perm_inv its exact inverse: the flow still inverts,
 * but its log-det (which takes |det W| = 1) is off by D log 2. */
static void test_wrong_logdet_fails(void **state) {
    Hgad *m = small_model(PRIOR_HIERARCHICAL);
    Tensor *w = param(m, "nfs.1.module_list.0.w_perm"),
           *wi = param(m, "nfs.1.module_list.0.w_perm_inv");
    for (int64_t i = 0; i < tensor_numel(w); i++)
        tensor_data(w)[i] *= 2.0f, tensor_data(wi)[i] *= 0.5f;
    m = round_trip(m, test_temp_path("bad_logdet.safetensors"));
    HgadAudit a;
    HgadAuditOptions o = fast_options();
    assert_ok(hgad_audit(m, &o, &a));
    const HgadAuditCheck *jac = find_check(&a, 1, "logdet-jacobian");
    assert_false(jac->passed);
    assert_true(find_check(&a, 1, "inverse")->passed);
    assert_true(find_check(&a, 0, "logdet-jacobian")->passed);
    hgad_audit_free(&a);
    hgad_free(m);
}

/* One NaN in a subnet bias: reported by name, counted in its group's statistics. */
static void test_nan_parameter_reported(void **state) {
    const char *path = test_temp_path("nan.safetensors");
    Hgad *m = small_model(PRIOR_HIERARCHICAL);
    tensor_data(param(m, "nfs.1.module_list.2.subnet.2.bias"))[3] = NAN;
    m = round_trip(m, path);
    HgadAudit a;
    HgadAuditOptions o = fast_options();
    assert_ok(hgad_audit(m, &o, &a));
    const HgadAuditCheck *finite = find_check(&a, -1, "finite-params");
    assert_false(finite->passed);
    assert_true(finite->value == 1);
    assert_non_null(strstr(finite->detail, "nfs.1.module_list.2.subnet.2.bias"));
    bool found = false;
    for (int k = 0; k < a.n_groups; k++)
        if (!strcmp(a.groups[k].group, "nfs.1.module_list.*.subnet.2.bias")) {
            found = true;
            assert_int_equal(a.groups[k].nan, 1);
            assert_int_equal(a.groups[k].tensors, K);
            assert_true(isfinite(a.groups[k].mean)); /* statistics of the finite values */
        }
    assert_true(found);
    assert_false(find_check(&a, 1, "inverse")->passed); /* the NaN reaches the output */
    assert_true(find_check(&a, 0, "inverse")->passed);
    hgad_audit_free(&a);
    hgad_free(m);

    assert_int_not_equal(run_audit(path), 0);
    assert_non_null(strstr(out, "1 NaN"));
    assert_non_null(strstr(out, "finite-params    FAIL"));
}

/* ---- statistics against a direct computation ---- */

static void test_param_stats(void **state) {
    Hgad *m = small_model(PRIOR_HIERARCHICAL);
    HgadParamStats *g = NULL;
    int n = 0;
    assert_ok(hgad_param_stats(m->params, &g, &n));
    const HgadParamStats *scale = NULL, *mus = NULL;
    for (int k = 0; k < n; k++) {
        if (!strcmp(g[k].group, "nfs.0.module_list.*.subnet.0.weight")) scale = &g[k];
        if (!strcmp(g[k].group, "mus.1")) mus = &g[k];
    }
    assert_non_null(scale);
    assert_non_null(mus);
    double sum = 0, sq = 0, lo = INFINITY, hi = -INFINITY;
    int64_t count = 0;
    for (int k = 0; k < K; k++) {
        char name[64];
        snprintf(name, sizeof name, "nfs.0.module_list.%d.subnet.0.weight", k);
        const Tensor *t = param(m, name);
        for (int64_t i = 0; i < tensor_numel(t); i++) {
            double x = tensor_data(t)[i];
            sum += x, sq += x * x, count++;
            lo = fmin(lo, x), hi = fmax(hi, x);
        }
    }
    const double mean = sum / (double)count;
    assert_int_equal(scale->tensors, K);
    assert_int_equal(scale->count, count);
    assert_true(fabs(scale->mean - mean) < 1e-9);
    assert_true(fabs(scale->std - sqrt(sq / (double)count - mean * mean)) < 1e-9);
    assert_true(scale->min == lo && scale->max == hi);
    /* mus.1: C x D1 with s = 5 / sqrt(floor(2 D1 / C)) on floor(D1 / C) diagonals */
    const double s = (double)(float)(5.0 / sqrt((double)((2 * D1) / C)));
    assert_int_equal(mus->count, C * D1);
    assert_true(fabs(mus->max - s) < 1e-6 && mus->min == 0);
    assert_true(fabs(mus->mean - s * (D1 / C) * C / (double)(C * D1)) < 1e-6);
    free(g);
    hgad_free(m);
}

/* The gradient checks can fail: a tolerance below float noise rejects them. */
static void test_gradient_checks_can_fail(void **state) {
    Hgad *m = small_model(PRIOR_HIERARCHICAL);
    HgadAudit a;
    HgadAuditOptions o = fast_options();
    o.gradcheck_tolerance = 1e-12;
    assert_ok(hgad_audit(m, &o, &a));
    assert_false(find_check(&a, 0, "grad-flow")->passed);
    assert_false(find_check(&a, 0, "grad-inter")->passed);
    assert_true(find_check(&a, 0, "inverse")->passed);
    hgad_audit_free(&a);
    hgad_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_abs_det),
        cmocka_unit_test(test_fresh_checkpoint_passes),
        cmocka_unit_test(test_gaussian_prior_passes),
        cmocka_unit_test(test_corrupted_inverse_rotation_fails),
        cmocka_unit_test(test_wrong_logdet_fails),
        cmocka_unit_test(test_nan_parameter_reported),
        cmocka_unit_test(test_param_stats),
        cmocka_unit_test(test_gradient_checks_can_fail),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
