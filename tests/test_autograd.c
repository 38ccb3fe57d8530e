/* Tape mechanics of the autodiff: accumulation, graph shapes, no-grad mode,
 * detach/constant, freeing, persistent leaf gradients and error propagation.
 * Expected gradients are derived by hand and computed here in double. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "tensor/ops.h"
#include "tensor/rng.h"
#include "tests/testutil.h"

static Var *leaf(int64_t n, const float *values, bool requires_grad) {
    Var *v = var_new(tensor_from_data(1, &n, values), requires_grad);
    assert_ok_ptr(v);
    return v;
}

/* Asserts v->grad (1-d) equals expected within a float tolerance. */
static void assert_grad(const Var *v, const double *expected, int64_t n) {
    assert_non_null(v->grad);
    assert_int_equal(tensor_numel(v->grad), n);
    const float *g = tensor_data(v->grad);
    for (int64_t i = 0; i < n; i++)
        if (fabs(g[i] - expected[i]) > 1e-5 * (1 + fabs(expected[i])))
            fail_msg("grad[%lld] = %.8g, expected %.8g", (long long)i, g[i], expected[i]);
}

static void test_leaf_basics(void **state) {
    (void)state;
    hg_clear_error();
    Var *v = leaf(3, (float[]){1, 2, 3}, true);
    assert_true(v->requires_grad);
    assert_false(v->on_tape);
    assert_string_equal(v->op, "leaf");
    assert_null(v->grad);
    assert_null(v->backward);
    var_free(v);
    var_free(NULL);
    assert_null(var_new(NULL, true));
    assert_int_equal(hg_last_status(), HG_ERR_ARG);
}

/* y = sum(x * x) + sum(x + x): dy/dx = 2x + 2, with x used twice in each op. */
static void test_var_used_twice_accumulates(void **state) {
    (void)state;
    const float x0[] = {1.5f, -2.0f, 0.25f};
    Var *x = leaf(3, x0, true);
    Tape *t = tape_new();
    Var *sq = ag_sum(t, ag_mul(t, x, x), 0, NULL, false);
    Var *tw = ag_sum(t, ag_add(t, x, x), 0, NULL, false);
    Var *loss = ag_add(t, sq, tw);
    assert_ok_ptr(loss);
    assert_ok(tape_backward(t, loss, NULL));
    double expected[3];
    for (int i = 0; i < 3; i++) expected[i] = 2.0 * x0[i] + 2.0;
    assert_grad(x, expected, 3);
    tape_free(t);
    var_free(x);
}

/* Diamond: b = exp(a), c = sin(a), d = b * c; dL/da = e^a (sin a + cos a).
 * And a shared intermediate: h = tanh(a), L2 = sum(h*h + h): (2h + 1)(1 - h^2). */
static void test_diamond_graphs(void **state) {
    (void)state;
    const float a0[] = {0.3f, -1.1f, 0.8f, 2.0f};
    Var *a = leaf(4, a0, true);
    Tape *t = tape_new();
    Var *d = ag_mul(t, ag_exp(t, a), ag_sin(t, a));
    assert_ok(tape_backward(t, ag_sum(t, d, 0, NULL, false), NULL));
    double expected[4];
    for (int i = 0; i < 4; i++) expected[i] = exp(a0[i]) * (sin(a0[i]) + cos(a0[i]));
    assert_grad(a, expected, 4);

    var_zero_grad(a);
    Var *h = ag_tanh(t, a);
    Var *l2 = ag_sum(t, ag_add(t, ag_mul(t, h, h), h), 0, NULL, false);
    assert_ok(tape_backward(t, l2, NULL));
    for (int i = 0; i < 4; i++) {
        double th = tanh(a0[i]);
        expected[i] = (2 * th + 1) * (1 - th * th);
    }
    assert_grad(a, expected, 4);
    tape_free(t);
    var_free(a);
}

static void test_no_grad_records_nothing(void **state) {
    (void)state;
    hg_clear_error();
    Var *x = leaf(3, (float[]){0.5f, 1.0f, 2.0f}, true);
    Tape *t = tape_new();
    assert_true(tape_grad_enabled(t));
    tape_set_grad_enabled(t, false);
    assert_false(tape_grad_enabled(t));
    Var *y = ag_exp(t, x);
    Var *z = ag_mul(t, y, x);
    Var *w = ag_max(t, z, 0, NULL, false);
    Var *cat = ag_concat(t, 2, (Var *[]){x, z}, 0);
    Var *results[] = {y, z, w, cat};
    for (int i = 0; i < 4; i++) {
        assert_ok_ptr(results[i]);
        assert_false(results[i]->requires_grad);
        assert_int_equal(results[i]->n_inputs, 0);
        assert_null(results[i]->backward);
        assert_null(results[i]->context);
        for (int k = 0; k < VAR_MAX_SAVED; k++) assert_null(results[i]->saved[k]);
        assert_true(results[i]->on_tape);
    }
    /* Values are still computed. */
    assert_float_equal(tensor_data(z->value)[2], 2.0f * expf(2.0f), 1e-4);
    assert_int_equal(tape_size(t), 4);
    assert_int_equal(tape_backward(t, w, NULL), HG_ERR_ARG);
    assert_int_equal(tape_size(t), 0);
    assert_null(x->grad);

    tape_set_grad_enabled(t, true);
    Var *r = ag_exp(t, x);
    assert_true(r->requires_grad);
    assert_non_null(r->saved[0]);
    tape_reset(t);
    assert_int_equal(tape_size(t), 0);
    tape_free(t);
    var_free(x);
}

/* y = x * detach(x): the detached factor is a constant, so dy/dx = x (not 2x). */
static void test_detach_stops_gradient(void **state) {
    (void)state;
    const float x0[] = {1.0f, -3.0f, 0.5f};
    Var *x = leaf(3, x0, true);
    Tape *t = tape_new();
    Var *d = ag_detach(t, x);
    assert_ok_ptr(d);
    assert_false(d->requires_grad);
    assert_ptr_equal(tensor_data(d->value), tensor_data(x->value)); /* shares storage */
    Var *loss = ag_sum(t, ag_mul(t, x, d), 0, NULL, false);
    assert_ok(tape_backward(t, loss, NULL));
    double expected[3] = {x0[0], x0[1], x0[2]};
    assert_grad(x, expected, 3);
    tape_free(t);
    var_free(x);
}

/* A constant takes part in the forward pass and gets no gradient. */
static void test_constant(void **state) {
    (void)state;
    const float x0[] = {1.0f, 2.0f}, c0[] = {-4.0f, 0.5f};
    Var *x = leaf(2, x0, true);
    Tape *t = tape_new();
    int64_t n = 2;
    Var *c = ag_constant(t, tensor_from_data(1, &n, c0));
    assert_ok_ptr(c);
    assert_false(c->requires_grad);
    assert_int_equal(tape_size(t), 1);
    assert_ok(tape_backward(t, ag_sum(t, ag_mul(t, x, c), 0, NULL, false), NULL));
    double expected[2] = {c0[0], c0[1]};
    assert_grad(x, expected, 2);
    tape_free(t);
    var_free(x);
}

/* Every Var the tape made is gone after backward and after reset (ASan and
 * valgrind check the memory itself). */
static void test_tape_frees_everything(void **state) {
    (void)state;
    Rng rng = rng_new(7);
    Var *x = var_new(tensor_normal(SHAPE(3, 4), 0, 1, &rng), true);
    Var *w = var_new(tensor_normal(SHAPE(5, 4), 0, 1, &rng), true);
    Var *b = var_new(tensor_normal(SHAPE(5), 0, 1, &rng), true);
    Tape *t = tape_new();
    Var *h = ag_relu(t, ag_linear(t, x, w, b));
    Var *parts[2];
    assert_ok(ag_split(t, h, 1, 2, (int64_t[]){2, 3}, parts));
    Var *y = ag_concat(t, 2, (Var *[]){parts[1], parts[0]}, 1);
    Var *loss = ag_mean(t, ag_log_softmax(t, y, -1), 0, NULL, false);
    assert_ok_ptr(loss);
    assert_true(tape_size(t) >= 7);
    assert_ok(tape_backward(t, loss, NULL));
    assert_int_equal(tape_size(t), 0);
    assert_non_null(x->grad);
    assert_non_null(w->grad);
    assert_non_null(b->grad);

    Var *again = ag_index_select(t, ag_exp(t, x), 0, 2, (int64_t[]){2, 0});
    assert_ok_ptr(again);
    assert_int_equal(tape_size(t), 2);
    tape_reset(t);
    assert_int_equal(tape_size(t), 0);
    tape_free(t);
    var_free(x);
    var_free(w);
    var_free(b);
}

/* Leaf gradients add up over backward passes until var_zero_grad. */
static void test_leaf_grads_persist(void **state) {
    (void)state;
    const float x0[] = {0.5f, -1.5f};
    Var *x = leaf(2, x0, true);
    Tape *t = tape_new();
    double expected[2];
    for (int pass = 1; pass <= 3; pass++) {
        Var *loss = ag_sum(t, ag_square(t, x), 0, NULL, false);
        assert_ok(tape_backward(t, loss, NULL));
        for (int i = 0; i < 2; i++) expected[i] = pass * 2.0 * x0[i];
        assert_grad(x, expected, 2);
    }
    var_zero_grad(x);
    assert_null(x->grad);
    assert_ok(tape_backward(t, ag_sum(t, ag_square(t, x), 0, NULL, false), NULL));
    for (int i = 0; i < 2; i++) expected[i] = 2.0 * x0[i];
    assert_grad(x, expected, 2);
    tape_free(t);
    var_free(x);
}

/* The first failure's message survives a chain of ops and tape_backward. */
static void test_errors_propagate(void **state) {
    (void)state;
    hg_clear_error();
    Rng rng = rng_new(1);
    Var *a = var_new(tensor_normal(SHAPE(2, 3), 0, 1, &rng), true);
    Var *b = var_new(tensor_normal(SHAPE(4), 0, 1, &rng), true);
    Tape *t = tape_new();
    Var *s = ag_add(t, a, b);
    assert_null(s);
    assert_int_equal(hg_last_status(), HG_ERR_SHAPE);
    char first[512];
    snprintf(first, sizeof first, "%s", hg_last_error());
    assert_non_null(strstr(first, "add"));

    Var *e = ag_exp(t, s);
    Var *m = ag_matmul(t, e, a, false, false);
    Var *l = ag_linear(t, m, a, NULL);
    Var *c = ag_concat(t, 2, (Var *[]){a, l}, 0);
    Var *loss = ag_sum(t, ag_softmax(t, c, 0), 0, NULL, false);
    Var *parts[2] = {a, a};
    assert_null(e);
    assert_null(m);
    assert_null(l);
    assert_null(c);
    assert_null(loss);
    assert_int_equal(ag_split(t, loss, 0, 2, (int64_t[]){1, 1}, parts), HG_ERR_SHAPE);
    assert_null(parts[0]);
    assert_null(parts[1]);
    assert_int_equal(tape_backward(t, loss, NULL), HG_ERR_SHAPE);
    assert_string_equal(hg_last_error(), first);
    assert_int_equal(tape_size(t), 0);

    /* A failing op in the middle of a valid chain: the message names it. */
    hg_clear_error();
    Var *bad = ag_sum(t, ag_matmul(t, ag_exp(t, a), a, false, false), 0, NULL, false);
    assert_null(bad);
    assert_int_equal(hg_last_status(), HG_ERR_SHAPE);
    assert_non_null(strstr(hg_last_error(), "matmul"));
    tape_reset(t);
    tape_free(t);
    var_free(a);
    var_free(b);
}

/* A non-scalar loss needs a seed of its shape; the seed is not taken. */
static void test_backward_seed(void **state) {
    (void)state;
    hg_clear_error();
    const float x0[] = {1, 2, 3, 4}, s0[] = {0.5f, -1, 2, 0.25f};
    Var *x = var_new(tensor_from_data(SHAPE(2, 2), x0), true);
    Tape *t = tape_new();
    assert_int_equal(tape_backward(t, ag_scale(t, x, 3.0f), NULL), HG_ERR_SHAPE);
    assert_int_equal(tape_size(t), 0);
    Tensor *bad_seed = tensor_ones(SHAPE(4));
    assert_int_equal(tape_backward(t, ag_scale(t, x, 3.0f), bad_seed), HG_ERR_SHAPE);
    Tensor *seed = tensor_from_data(SHAPE(2, 2), s0);
    assert_ok(tape_backward(t, ag_scale(t, x, 3.0f), seed));
    double expected[4];
    for (int i = 0; i < 4; i++) expected[i] = 3.0 * s0[i];
    assert_grad(x, expected, 4);
    assert_float_equal(tensor_data(seed)[1], -1.0f, 0); /* untouched, still ours */
    tensor_free(seed);
    tensor_free(bad_seed);

    /* A leaf as the loss gets the seed itself. */
    var_zero_grad(x);
    Tensor *ones = tensor_ones(SHAPE(2, 2));
    assert_ok(tape_backward(t, x, ones));
    double one[4] = {1, 1, 1, 1};
    assert_grad(x, one, 4);
    tensor_free(ones);
    tape_free(t);
    var_free(x);
}

/* var_accumulate_grad sums a broadcast gradient down, ignores Vars that need
 * no gradient (freeing g), and stores gradients no one else can modify. */
static void test_accumulate_grad(void **state) {
    (void)state;
    Var *v = var_new(tensor_zeros(SHAPE(3, 1)), true);
    assert_ok(var_accumulate_grad(v, tensor_ones(SHAPE(2, 3, 4))));
    assert_int_equal(v->grad->ndim, 2);
    assert_int_equal(v->grad->shape[0], 3);
    assert_int_equal(v->grad->shape[1], 1);
    for (int i = 0; i < 3; i++) assert_float_equal(tensor_data(v->grad)[i], 8.0f, 0);
    assert_ok(var_accumulate_grad(v, tensor_full(SHAPE(3, 1), 0.5f)));
    for (int i = 0; i < 3; i++) assert_float_equal(tensor_data(v->grad)[i], 8.5f, 0);
    var_free(v);

    Var *frozen = var_new(tensor_zeros(SHAPE(2)), false);
    assert_ok(var_accumulate_grad(frozen, tensor_ones(SHAPE(2))));
    assert_null(frozen->grad);
    var_free(frozen);

    /* add passes the same gradient to both inputs; they must not share it. */
    Var *a = var_new(tensor_ones(SHAPE(3)), true);
    Var *b = var_new(tensor_ones(SHAPE(3)), true);
    Tape *t = tape_new();
    assert_ok(tape_backward(t, ag_sum(t, ag_add(t, a, b), 0, NULL, false), NULL));
    assert_true(a->grad->storage != b->grad->storage);
    tensor_data(a->grad)[0] = 100.0f;
    assert_float_equal(tensor_data(b->grad)[0], 1.0f, 0);
    tape_free(t);
    var_free(a);
    var_free(b);
}

/* Ops whose inputs need no gradient save nothing and make no gradient. */
static void test_requires_grad_propagation(void **state) {
    (void)state;
    Var *x = leaf(2, (float[]){1, 2}, false);
    Var *w = leaf(2, (float[]){3, 4}, true);
    Tape *t = tape_new();
    Var *e = ag_exp(t, x);
    assert_false(e->requires_grad);
    assert_null(e->saved[0]);
    Var *m = ag_mul(t, e, w);
    assert_true(m->requires_grad);
    assert_ok(tape_backward(t, ag_sum(t, m, 0, NULL, false), NULL));
    assert_null(x->grad);
    double expected[2] = {exp(1.0), exp(2.0)};
    assert_grad(w, expected, 2);
    tape_free(t);
    var_free(x);
    var_free(w);
}

/* Two overlapping narrows and the whole vector: dL/dx counts the uses. */
static void test_narrow_accumulates_in_place(void **state) {
    (void)state;
    Var *x = leaf(3, (float[]){1, 2, 3}, true);
    Tape *t = tape_new();
    Var *s1 = ag_sum(t, ag_narrow(t, x, 0, 0, 2), 0, NULL, false);
    Var *s2 = ag_sum(t, ag_narrow(t, x, 0, -2, 2), 0, NULL, false);
    Var *s3 = ag_sum(t, x, 0, NULL, false);
    assert_ok(tape_backward(t, ag_add(t, ag_add(t, s1, s2), s3), NULL));
    double expected[3] = {2, 3, 2};
    assert_grad(x, expected, 3);
    tape_free(t);
    var_free(x);
}

/* ag_linear's value against a naive loop, with leading dims and a bias. */
static void test_linear_forward(void **state) {
    (void)state;
    Rng rng = rng_new(3);
    Var *x = var_new(tensor_normal(SHAPE(2, 3, 4), 0, 1, &rng), false);
    Var *w = var_new(tensor_normal(SHAPE(5, 4), 0, 1, &rng), false);
    Var *b = var_new(tensor_normal(SHAPE(5), 0, 1, &rng), false);
    Tape *t = tape_new();
    Var *y = ag_linear(t, x, w, b);
    assert_ok_ptr(y);
    assert_int_equal(y->value->ndim, 3);
    assert_int_equal(y->value->shape[2], 5);
    const float *px = tensor_data(x->value), *pw = tensor_data(w->value),
                *pb = tensor_data(b->value);
    Tensor *yc = tensor_contiguous(y->value);
    const float *py = tensor_data(yc);
    for (int r = 0; r < 6; r++)
        for (int o = 0; o < 5; o++) {
            double acc = pb[o];
            for (int i = 0; i < 4; i++) acc += (double)px[r * 4 + i] * pw[o * 4 + i];
            assert_float_equal(py[r * 5 + o], acc, 1e-5);
        }
    tensor_free(yc);
    assert_null(ag_linear(t, x, b, NULL)); /* weight must be 2-d */
    assert_int_equal(hg_last_status(), HG_ERR_SHAPE);
    tape_free(t);
    var_free(x);
    var_free(w);
    var_free(b);
}

/* Big enough for the gradient kernels' threaded path: L = sum(sigmoid(x) *
 * relu(x)), dL/dx = s (1 - s) relu(x) + s [x > 0], s = sigmoid(x). */
static void test_large_gradient_kernels(void **state) {
    (void)state;
    Rng rng = rng_new(11);
    Var *x = var_new(tensor_normal(SHAPE(200, 250), 0, 1, &rng), true);
    Tape *t = tape_new();
    Var *loss = ag_sum(t, ag_mul(t, ag_sigmoid(t, x), ag_relu(t, x)), 0, NULL, false);
    assert_ok(tape_backward(t, loss, NULL));
    const float *px = tensor_data(x->value), *pg = tensor_data(x->grad);
    for (int64_t i = 0; i < 200 * 250; i++) {
        double v = px[i], s = 1 / (1 + exp(-v));
        double expected = s * (1 - s) * (v > 0 ? v : 0) + (v > 0 ? s : 0);
        if (fabs(pg[i] - expected) > 1e-5)
            fail_msg("grad[%lld] = %g, expected %g", (long long)i, pg[i], expected);
    }
    tape_free(t);
    var_free(x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_leaf_basics),
        cmocka_unit_test(test_var_used_twice_accumulates),
        cmocka_unit_test(test_diamond_graphs),
        cmocka_unit_test(test_no_grad_records_nothing),
        cmocka_unit_test(test_detach_stops_gradient),
        cmocka_unit_test(test_constant),
        cmocka_unit_test(test_tape_frees_everything),
        cmocka_unit_test(test_leaf_grads_persist),
        cmocka_unit_test(test_errors_propagate),
        cmocka_unit_test(test_backward_seed),
        cmocka_unit_test(test_accumulate_grad),
        cmocka_unit_test(test_requires_grad_propagation),
        cmocka_unit_test(test_narrow_accumulates_in_place),
        cmocka_unit_test(test_linear_forward),
        cmocka_unit_test(test_large_gradient_kernels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
