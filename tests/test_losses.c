/* Losses: values and gradients against PyTorch fixtures
 * (tools/fixtures/make_optim_fixtures.py), finite-difference gradient checks,
 * and naive references. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/testutil.h"

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "nn/losses.h"
#include "tensor/ops.h"
#include "tensor/rng.h"
#include "tests/fixture_records.h"

static FixtureFile fixtures;

static int load_fixtures(void **state) {
    return fixture_file_read(&fixtures, test_fixture("optim_losses.txt")) ? 0 : -1;
}

static int free_fixtures(void **state) {
    fixture_file_free(&fixtures);
    return 0;
}

static Tensor *fx(const char *name) {
    Tensor *t = fixture_tensor(&fixtures, name);
    if (!t) fail_msg("fixture record %s missing", name);
    return t;
}

/* Runs `loss` of a leaf made from fixture `input`, then checks the value and
 * the gradient against fixtures `value` and `grad` (1e-5 relative). */
typedef Var *(*LossOf)(Tape *tape, Var *x, void *ctx);

static void check_against_torch(LossOf loss, void *ctx, const char *input, const char *value,
                                const char *grad) {
    Var *x = var_new(fx(input), true);
    Tape *tape = tape_new();
    Var *l = loss(tape, x, ctx);
    assert_ok_ptr(l);
    Tensor *want_value = fx(value), *want_grad = fx(grad);
    float got = tensor_data(l->value)[0], want = tensor_data(want_value)[0];
    if (!(fabsf(got - want) <= 1e-5f * fabsf(want)))
        fail_msg("%s: %.9g vs torch %.9g", value, got, want);
    assert_ok(tape_backward(tape, l, NULL));
    assert_ok_ptr(x->grad);
    double d = test_max_rel_diff(x->grad, want_grad);
    if (!(d <= 1e-5)) fail_msg("%s: max relative difference %.3g", grad, d);
    tensor_free(want_value);
    tensor_free(want_grad);
    tape_free(tape);
    var_free(x);
}

/* ---- cross entropy ---- */

typedef struct {
    int64_t targets[64];
    float eps;
} CrossEntropyCase;

static Var *cross_entropy_of(Tape *tape, Var *x, void *ctx) {
    const CrossEntropyCase *c = ctx;
    return loss_cross_entropy(tape, x, c->targets, c->eps);
}

static CrossEntropyCase fixture_targets(float eps) {
    CrossEntropyCase c = {.eps = eps};
    const FixtureRecord *r = fixture_find(&fixtures, "ce.targets");
    assert_non_null(r);
    for (int64_t i = 0; i < r->n; i++) c.targets[i] = (int64_t)r->values[i];
    return c;
}

static void test_cross_entropy_matches_torch(void **state) {
    const float eps[3] = {0.0f, 0.1f, 0.3f};
    for (int i = 0; i < 3; i++) {
        CrossEntropyCase c = fixture_targets(eps[i]);
        char value[32], grad[32];
        snprintf(value, sizeof value, "ce.%g.value", (double)eps[i]);
        snprintf(grad, sizeof grad, "ce.%g.grad", (double)eps[i]);
        check_against_torch(cross_entropy_of, &c, "ce.logits", value, grad);
    }
}

/* The definition written out: -(1-eps) log p_y - eps/C sum_c log p_c, mean. */
static double naive_cross_entropy(const float *x, const int64_t *y, int64_t n, int64_t c,
                                  double eps) {
    double total = 0;
    for (int64_t i = 0; i < n; i++) {
        double mx = -INFINITY, s = 0, sum_logp = 0;
        for (int64_t j = 0; j < c; j++) mx = fmax(mx, x[i * c + j]);
        for (int64_t j = 0; j < c; j++) s += exp(x[i * c + j] - mx);
        double lse = mx + log(s);
        for (int64_t j = 0; j < c; j++) sum_logp += x[i * c + j] - lse;
        total += -(1 - eps) * (x[i * c + y[i]] - lse) - eps * sum_logp / (double)c;
    }
    return total / (double)n;
}

static void test_cross_entropy_matches_naive_on_large_logits(void **state) {
    Rng rng = rng_new(11);
    int64_t n = 40, c = 7;
    Tensor *x = tensor_normal(SHAPE(40, 7), 0, 30, &rng); /* softmax saturates */
    CrossEntropyCase cc = {.eps = 0.2f};
    for (int64_t i = 0; i < n; i++) cc.targets[i] = (int64_t)rng_below(&rng, (uint64_t)c);
    Tape *tape = tape_new();
    double want = naive_cross_entropy(tensor_data(x), cc.targets, n, c, 0.2);
    Var *l = loss_cross_entropy(tape, ag_constant(tape, x), cc.targets, cc.eps);
    assert_ok_ptr(l);
    assert_true(isfinite(tensor_data(l->value)[0]));
    assert_true(fabs(tensor_data(l->value)[0] - want) <= 1e-5 * fabs(want));
    tape_free(tape);
}

static void test_cross_entropy_rejects_bad_input(void **state) {
    Tape *tape = tape_new();
    Var *x = ag_constant(tape, tensor_zeros(SHAPE(2, 3)));
    assert_null(loss_cross_entropy(tape, x, (int64_t[]){0, 3}, 0));
    assert_int_equal(hg_last_status(), HG_ERR_ARG);
    assert_non_null(strstr(hg_last_error(), "target 3"));
    assert_null(loss_cross_entropy(tape, x, (int64_t[]){0, 1}, 1.5f));
    Var *flat = ag_constant(tape, tensor_zeros(SHAPE(6)));
    assert_null(loss_cross_entropy(tape, flat, (int64_t[]){0}, 0));
    assert_int_equal(hg_last_status(), HG_ERR_SHAPE);
    assert_null(loss_cross_entropy(tape, NULL, (int64_t[]){0}, 0)); /* NULL propagates */
    tape_free(tape);
}

/* ---- the other losses against torch ---- */

static Var *soft_ce_of(Tape *tape, Var *x, void *ctx) {
    return loss_soft_cross_entropy(tape, x, ctx, 1);
}

static Var *entropy_of(Tape *tape, Var *x, void *ctx) {
    return loss_softmax_entropy_mean(tape, x, 1);
}

static Var *nls_of(Tape *tape, Var *x, void *ctx) {
    return loss_neg_log_sigmoid_mean(tape, x);
}

static Var *mse_of(Tape *tape, Var *x, void *ctx) {
    return loss_mse(tape, x, ag_constant(tape, tensor_ref(ctx)));
}

static void test_other_losses_match_torch(void **state) {
    Tensor *q = fx("soft_ce.q");
    check_against_torch(soft_ce_of, q, "soft_ce.x", "soft_ce.value", "soft_ce.grad");
    tensor_free(q);
    check_against_torch(entropy_of, NULL, "entropy.x", "entropy.value", "entropy.grad");
    check_against_torch(nls_of, NULL, "nls.x", "nls.value", "nls.grad");
    Tensor *b = fx("mse.b");
    check_against_torch(mse_of, b, "mse.a", "mse.value", "mse.grad");
    tensor_free(b);
}

/* ---- gradient checks (finite differences) ---- */

static void run_gradcheck(GradcheckFn f, void *ctx, int n, Var **inputs) {
    GradcheckOptions o = gradcheck_default_options();
    GradcheckReport r;
    hg_status s = gradcheck(f, ctx, n, inputs, &o, &r);
    if (s != HG_OK) fail_msg("gradcheck: %s", hg_last_error());
    assert_true(r.checked > 0);
}

static Var *gc_cross_entropy(Tape *tape, Var **in, void *ctx) {
    return cross_entropy_of(tape, in[0], ctx);
}

static Var *gc_soft_ce(Tape *tape, Var **in, void *ctx) {
    return loss_soft_cross_entropy(tape, in[0], ctx, 0);
}

static Var *gc_entropy_rows(Tape *tape, Var **in, void *ctx) {
    return ag_softmax_entropy(tape, in[0], *(int *)ctx);
}

static Var *gc_entropy_mean(Tape *tape, Var **in, void *ctx) {
    return loss_softmax_entropy_mean(tape, in[0], -1);
}

static Var *gc_nls(Tape *tape, Var **in, void *ctx) {
    return loss_neg_log_sigmoid_mean(tape, in[0]);
}

static Var *gc_mse(Tape *tape, Var **in, void *ctx) {
    return loss_mse(tape, in[0], in[1]);
}

static void test_gradchecks(void **state) {
    Rng rng = rng_new(21);
    CrossEntropyCase c = {.eps = 0.15f, .targets = {2, 0, 1, 2, 3}};
    Var *logits = var_new(tensor_normal(SHAPE(5, 4), 0, 1, &rng), true);
    run_gradcheck(gc_cross_entropy, &c, 1, &logits);
    c.eps = 0;
    run_gradcheck(gc_cross_entropy, &c, 1, &logits);
    var_free(logits);

    /* Soft targets along dim 0 of a (4, 3) tensor: columns are distributions. */
    Var *x = var_new(tensor_normal(SHAPE(4, 3), 0, 1, &rng), true);
    Tensor *raw = tensor_uniform(SHAPE(4, 3), 0.1f, 1, &rng);
    Tensor *q = tensor_softmax(raw, 0);
    run_gradcheck(gc_soft_ce, q, 1, &x);
    tensor_free(raw);
    tensor_free(q);
    var_free(x);

    /* Entropy per position along each dim of a 3-d tensor, and its mean. */
    Var *y = var_new(tensor_normal(SHAPE(2, 3, 4), 0, 1.5f, &rng), true);
    for (int dim = -1; dim < 3; dim++) run_gradcheck(gc_entropy_rows, &dim, 1, &y);
    run_gradcheck(gc_entropy_mean, NULL, 1, &y);
    var_free(y);

    Var *z = var_new(tensor_normal(SHAPE(9), 0, 3, &rng), true);
    run_gradcheck(gc_nls, NULL, 1, &z);
    var_free(z);

    Var *ab[2] = {var_new(tensor_normal(SHAPE(3, 4), 0, 1, &rng), true),
                  var_new(tensor_normal(SHAPE(4), 0, 1, &rng), true)}; /* broadcast target */
    run_gradcheck(gc_mse, NULL, 2, ab);
    var_free(ab[0]);
    var_free(ab[1]);
}

/* ---- naive references for the entropy ---- */

static void test_entropy_values(void **state) {
    Tape *tape = tape_new();
    /* Uniform rows have entropy log C; a one-hot-like row has ~0. */
    Var *x = ag_constant(tape, tensor_from_data(SHAPE(2, 4), (float[]){3, 3, 3, 3, 60, 0, 0, 0}));
    Var *h = ag_softmax_entropy(tape, x, 1);
    assert_ok_ptr(h);
    assert_int_equal(h->value->ndim, 1);
    test_assert_values(h->value, (float[]){logf(4), 0}, 2, 1e-6);
    /* Along dim 0 the columns are (3, 60) and (3, 0). */
    Var *h0 = ag_softmax_entropy(tape, x, 0);
    double p = 1.0 / (1.0 + exp(-3.0)); /* softmax of (3, 0) */
    double h30 = -(p * log(p) + (1 - p) * log(1 - p));
    test_assert_values(h0->value, (float[]){0, (float)h30, (float)h30, (float)h30}, 4, 1e-6);
    assert_null(ag_softmax_entropy(tape, x, 2));
    assert_int_equal(hg_last_status(), HG_ERR_DIM);
    tape_free(tape);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cross_entropy_matches_torch),
        cmocka_unit_test(test_cross_entropy_matches_naive_on_large_logits),
        cmocka_unit_test(test_cross_entropy_rejects_bad_input),
        cmocka_unit_test(test_other_losses_match_torch),
        cmocka_unit_test(test_gradchecks),
        cmocka_unit_test(test_entropy_values),
    };
    return cmocka_run_group_tests(tests, load_fixtures, free_fixtures);
}
