/* Dropout: identity in evaluation, an exactly scaled keep-mask in training
 * whose drop rate matches p, determinism by seed, the gradient (the same mask,
 * and a finite-difference check with the mask held fixed) and bad arguments. */
#include <math.h>
#include <stdlib.h>

#include "tests/testutil.h"

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "nn/dropout.h"
#include "tensor/rng.h"

static Var *random_leaf(int64_t rows, int64_t cols, uint64_t seed) {
    Rng rng = rng_new(seed);
    /* values away from 0 so that "kept" and "dropped" cannot be confused */
    Tensor *t = tensor_uniform(SHAPE(rows, cols), 0.5f, 2.0f, &rng);
    return var_new(t, true);
}

static void test_eval_and_zero_p_are_identity(void **state) {
    Tape *tape = tape_new();
    Var *x = random_leaf(3, 5, 1);
    Rng rng = rng_new(7);
    assert_ptr_equal(dropout_forward(tape, x, 0.5, false, &rng), x);
    assert_ptr_equal(dropout_forward(tape, x, 0.5, false, NULL), x);
    assert_ptr_equal(dropout_forward(tape, x, 0.0, true, &rng), x);
    tape_free(tape);
    var_free(x);
}

static void test_training_mask_is_scaled_and_has_rate_p(void **state) {
    const double p = 0.3;
    const int64_t rows = 200, cols = 500, n = rows * cols;
    Tape *tape = tape_new();
    Var *x = random_leaf(rows, cols, 2);
    Rng rng = rng_new(11);
    Var *y = dropout_forward(tape, x, p, true, &rng);
    assert_non_null(y);
    const float *xv = tensor_data(x->value), *yv = tensor_data(y->value);
    int64_t dropped = 0;
    for (int64_t i = 0; i < n; i++) {
        if (yv[i] == 0.0f) {
            dropped++;
        } else {
            /* kept elements are x / (1 - p) to float rounding */
            double want = xv[i] / (1.0 - p);
            if (fabs(yv[i] - want) > 1e-6 * want)
                fail_msg("element %ld: %g, want %g", (long)i, yv[i], want);
        }
    }
    /* Binomial(n, p): 6 standard deviations is about 0.0087 here */
    double rate = (double)dropped / (double)n, sd = sqrt(p * (1 - p) / (double)n);
    if (fabs(rate - p) > 6 * sd) fail_msg("drop rate %.4f, want %.2f +- %.4f", rate, p, 6 * sd);
    tape_free(tape);
    var_free(x);
}

static void test_same_seed_same_mask(void **state) {
    Tape *tape = tape_new();
    Var *x = random_leaf(16, 16, 3);
    Rng a = rng_new(5), b = rng_new(5), c = rng_new(6);
    Var *ya = dropout_forward(tape, x, 0.5, true, &a);
    Var *yb = dropout_forward(tape, x, 0.5, true, &b);
    Var *yc = dropout_forward(tape, x, 0.5, true, &c);
    assert_non_null(ya), assert_non_null(yb), assert_non_null(yc);
    assert_true(test_max_rel_diff(ya->value, yb->value) == 0.0);
    assert_true(test_max_rel_diff(ya->value, yc->value) > 0.0);
    tape_free(tape);
    var_free(x);
}

static void test_p_one_zeroes_everything(void **state) {
    Tape *tape = tape_new();
    Var *x = random_leaf(4, 4, 4);
    Rng rng = rng_new(9);
    Var *y = dropout_forward(tape, x, 1.0, true, &rng);
    assert_non_null(y);
    for (int64_t i = 0; i < 16; i++) assert_true(tensor_data(y->value)[i] == 0.0f);
    tape_free(tape);
    var_free(x);
}

static void test_gradient_is_the_mask(void **state) {
    Tape *tape = tape_new();
    Var *x = random_leaf(8, 9, 5);
    Rng rng = rng_new(13);
    Var *y = dropout_forward(tape, x, 0.25, true, &rng);
    assert_non_null(y);
    Tensor *mask = tensor_empty_like(y->value);
    for (int64_t i = 0; i < 72; i++)
        tensor_data(mask)[i] = tensor_data(y->value)[i] / tensor_data(x->value)[i];
    Var *loss = ag_sum(tape, y, 0, NULL, false);
    assert_int_equal(tape_backward(tape, loss, NULL), HG_OK);
    test_assert_close(x->grad, mask, 1e-6, 0);
    tensor_free(mask);
    tape_free(tape);
    var_free(x);
}

/* The mask is a function of the seed: every evaluation of the checker draws it
 * again from the same seed, so the function under test is deterministic. */
static Var *dropout_of_seed(Tape *tape, Var **inputs, void *context) {
    Rng rng = rng_new(*(const uint64_t *)context);
    return dropout_forward(tape, inputs[0], 0.4, true, &rng);
}

static void test_finite_difference_gradient(void **state) {
    Var *x = random_leaf(6, 7, 6);
    uint64_t seed = 21;
    GradcheckReport report;
    assert_int_equal(gradcheck(dropout_of_seed, &seed, 1, &x, NULL, &report), HG_OK);
    assert_true(report.checked == 42);
    var_free(x);
}

static void test_bad_arguments(void **state) {
    Tape *tape = tape_new();
    Var *x = random_leaf(2, 2, 8);
    Rng rng = rng_new(1);
    assert_null(dropout_forward(tape, x, -0.1, true, &rng));
    test_assert_failed(HG_ERR_ARG, "dropout");
    assert_null(dropout_forward(tape, x, 1.5, false, &rng));
    test_assert_failed(HG_ERR_ARG, "dropout");
    assert_null(dropout_forward(tape, x, NAN, true, &rng));
    test_assert_failed(HG_ERR_ARG, "dropout");
    assert_null(dropout_forward(tape, x, 0.5, true, NULL));
    test_assert_failed(HG_ERR_ARG, "dropout");
    assert_null(dropout_forward(tape, NULL, 0.5, true, &rng));
    tape_free(tape);
    var_free(x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eval_and_zero_p_are_identity),
        cmocka_unit_test(test_training_mask_is_scaled_and_has_rate_p),
        cmocka_unit_test(test_same_seed_same_mask),
        cmocka_unit_test(test_p_one_zeroes_everything),
        cmocka_unit_test(test_gradient_is_the_mask),
        cmocka_unit_test(test_finite_difference_gradient),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
