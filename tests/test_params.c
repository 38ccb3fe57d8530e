/* ParamSet (names, freezing, modes, state-dict files) and the Linear layer. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/testutil.h"

#include "autograd/ops.h"
#include "nn/linear.h"
#include "nn/params.h"
#include "nn/safetensors.h"

static void temp_path(char *buf, size_t size, const char *tag) {
    snprintf(buf, size, "/tmp/hg_test_params_%s_%d.safetensors", tag, (int)getpid());
}

/* Linear, ReLU, Linear at "subnet" as torch's nn.Sequential names it. */
static void build_subnet(ParamSet *ps, Linear *l0, Linear *l2, uint64_t seed) {
    Rng rng = rng_new(seed);
    assert_ok(linear_init(l0, ps, "subnet.0", 6, 12, true, &rng));
    assert_ok(linear_init(l2, ps, "subnet.2", 12, 4, true, &rng));
}

static void test_names_follow_state_dict_convention(void **state) {
    ParamSet *ps = param_set_new();
    Linear l0, l2;
    build_subnet(ps, &l0, &l2, 1);
    assert_non_null(
        param_set_add_under(ps, "layer1.0.bn1", "running_mean", tensor_zeros(SHAPE(4)), true));
    const char *expected[] = {"subnet.0.weight", "subnet.0.bias", "subnet.2.weight",
                              "subnet.2.bias", "layer1.0.bn1.running_mean"};
    assert_int_equal(param_set_size(ps), 5);
    for (int i = 0; i < 5; i++) assert_string_equal(param_set_at(ps, i)->name, expected[i]);
    assert_ptr_equal(param_set_find(ps, "subnet.2.weight"), l2.weight);
    assert_null(param_set_find(ps, "subnet.2"));
    assert_true(l0.weight->requires_grad);
    assert_false(param_set_find(ps, "layer1.0.bn1.running_mean")->requires_grad);
    assert_int_equal(param_set_numel(ps, false), 12 * 6 + 12 + 4 * 12 + 4 + 4);
    assert_int_equal(param_set_numel(ps, true), 12 * 6 + 12 + 4 * 12 + 4);
    /* Duplicates and empty names are refused. */
    assert_null(param_set_add(ps, "subnet.0.bias", tensor_zeros(SHAPE(12)), false));
    assert_int_equal(hg_last_status(), HG_ERR_ARG);
    assert_null(param_set_add(ps, "", tensor_zeros(SHAPE(1)), false));
    assert_int_equal(param_set_size(ps), 5);
    /* Without a prefix the leaf name stands alone. */
    assert_non_null(param_set_add_under(ps, NULL, "mus.0", tensor_zeros(SHAPE(2, 3)), false));
    assert_non_null(param_set_find(ps, "mus.0"));
    param_set_free(ps);
}

static void test_prefix_matches_whole_components(void **state) {
    assert_true(param_name_has_prefix("subnet.0.weight", "subnet.0"));
    assert_true(param_name_has_prefix("subnet.0.weight", "subnet.0."));
    assert_true(param_name_has_prefix("subnet.0", "subnet.0"));
    assert_false(param_name_has_prefix("subnet.01.weight", "subnet.0"));
    assert_false(param_name_has_prefix("sub", "subnet"));
    assert_true(param_name_has_prefix("anything", NULL));
    assert_true(param_name_has_prefix("anything", ""));
}

static void test_freeze_by_prefix(void **state) {
    ParamSet *ps = param_set_new();
    Linear l0, l2;
    build_subnet(ps, &l0, &l2, 2);
    assert_non_null(param_set_add(ps, "subnet.01.weight", tensor_zeros(SHAPE(3)), false));
    assert_non_null(param_set_add(ps, "subnet.0.running_var", tensor_ones(SHAPE(12)), true));
    assert_ok(var_accumulate_grad(l0.weight, tensor_ones(SHAPE(12, 6))));
    int64_t all = param_set_numel(ps, true);

    assert_int_equal(param_set_freeze(ps, "subnet.0", true), 3);
    assert_false(l0.weight->requires_grad);
    assert_false(l0.bias->requires_grad);
    assert_null(l0.weight->grad); /* dropped */
    assert_true(l2.weight->requires_grad);
    assert_true(param_set_find(ps, "subnet.01.weight")->requires_grad);
    assert_int_equal(param_set_numel(ps, true), all - 12 * 6 - 12);
    const ParamEntry *bn = param_set_entry(ps, "subnet.0.running_var");
    assert_false(bn->frozen); /* buffers are never "frozen", just untrainable */
    assert_false(param_entry_trainable(bn));

    assert_int_equal(param_set_freeze(ps, "subnet.0", false), 3);
    assert_true(l0.weight->requires_grad);
    assert_false(param_set_find(ps, "subnet.0.running_var")->requires_grad);
    assert_int_equal(param_set_numel(ps, true), all);
    assert_int_equal(param_set_freeze(ps, NULL, true), param_set_size(ps));
    assert_int_equal(param_set_numel(ps, true), 0);
    param_set_free(ps);
}

static void test_training_flag_and_zero_grad(void **state) {
    ParamSet *ps = param_set_new();
    assert_true(ps->training);
    param_set_train(ps, false);
    assert_false(ps->training);
    Var *w = param_set_add(ps, "w", tensor_zeros(SHAPE(2)), false);
    assert_ok(var_accumulate_grad(w, tensor_ones(SHAPE(2))));
    assert_non_null(w->grad);
    param_set_zero_grad(ps);
    assert_null(w->grad);
    param_set_free(ps);
}

static void test_linear_init_bounds_and_forward(void **state) {
    ParamSet *ps = param_set_new();
    Rng rng = rng_new(5);
    Linear l;
    int64_t in = 50, out = 40;
    assert_ok(linear_init(&l, ps, "fc", in, out, true, &rng));
    float bound = 1.0f / sqrtf((float)in);
    const float *w = tensor_data(l.weight->value), *b = tensor_data(l.bias->value);
    float wmin = 1, wmax = -1;
    double mean = 0;
    for (int64_t i = 0; i < in * out; i++) {
        wmin = fminf(wmin, w[i]);
        wmax = fmaxf(wmax, w[i]);
        mean += w[i];
    }
    /* U(-bound, bound): inside the bound, spread over it, centred. */
    assert_true(wmin >= -bound && wmax <= bound);
    assert_true(wmin < -0.95f * bound && wmax > 0.95f * bound);
    assert_true(fabs(mean / (double)(in * out)) < 0.05 * bound);
    for (int64_t i = 0; i < out; i++) assert_true(fabsf(b[i]) <= bound);

    /* Forward against a naive x W^T + b. */
    Tape *tape = tape_new();
    Rng xr = rng_new(6);
    Tensor *xt = tensor_normal(SHAPE(3, in), 0, 1, &xr);
    Tensor *want = tensor_zeros(SHAPE(3, out));
    const float *x = tensor_data(xt);
    for (int r = 0; r < 3; r++) {
        for (int64_t o = 0; o < out; o++) {
            double s = b[o];
            for (int64_t k = 0; k < in; k++) s += (double)x[r * in + k] * w[o * in + k];
            tensor_data(want)[r * out + o] = (float)s;
        }
    }
    Var *y = linear_forward(tape, &l, ag_constant(tape, xt));
    assert_ok_ptr(y);
    test_assert_close(y->value, want, 1e-5, 1e-5);
    tensor_free(want);
    tape_free(tape);

    Linear nb;
    assert_ok(linear_init(&nb, ps, "fc2", 3, 2, false, &rng));
    assert_null(nb.bias);
    assert_null(param_set_find(ps, "fc2.bias"));
    assert_int_equal(linear_init(&nb, ps, "fc3", 0, 2, false, &rng), HG_ERR_ARG);
    assert_int_equal(linear_init(&nb, ps, "fc", 3, 2, false, &rng), HG_ERR_ARG); /* taken */
    param_set_free(ps);
}

static void test_activation_names(void **state) {
    Activation a;
    assert_ok(activation_from_name("relu", &a));
    assert_int_equal(a, ACT_RELU);
    assert_ok(activation_from_name("swish", &a));
    assert_int_equal(a, ACT_SILU);
    assert_string_equal(activation_name(ACT_GELU), "gelu");
    assert_int_equal(activation_from_name("softmax", &a), HG_ERR_ARG);
    Tape *tape = tape_new();
    Var *x = ag_constant(tape, tensor_from_data(SHAPE(3), (float[]){-1, 0, 2}));
    assert_ptr_equal(activation_forward(tape, ACT_IDENTITY, x), x);
    test_assert_values(activation_forward(tape, ACT_RELU, x)->value, (float[]){0, 0, 2}, 3, 0);
    test_assert_values(activation_forward(tape, ACT_TANH, x)->value,
                       (float[]){tanhf(-1), 0, tanhf(2)}, 3, 1e-6);
    tape_free(tape);
}

static void test_save_load_round_trip(void **state) {
    char path[256];
    temp_path(path, sizeof path, "roundtrip");
    ParamSet *a = param_set_new();
    Linear l0, l2;
    build_subnet(a, &l0, &l2, 3);
    assert_non_null(param_set_add(a, "bn.running_var", tensor_full(SHAPE(4), 0.5f), true));
    const char *keys[1] = {"backbone"}, *values[1] = {"tiny"};
    assert_ok(param_set_save(a, path, 1, keys, values));

    ParamSet *b = param_set_new();
    Linear m0, m2;
    build_subnet(b, &m0, &m2, 4); /* other values */
    assert_non_null(param_set_add(b, "bn.running_var", tensor_zeros(SHAPE(4)), true));
    LoadReport r;
    assert_ok(param_set_load(b, path, true, NULL, &r));
    assert_int_equal(r.loaded, 5);
    assert_int_equal(r.n_missing + r.n_unexpected + r.n_mismatched, 0);
    load_report_free(&r);
    for (int64_t i = 0; i < param_set_size(a); i++)
        test_assert_close(param_set_at(b, i)->var->value, param_set_at(a, i)->var->value, 0, 0);

    SafetensorsFile *f = safetensors_open(path);
    assert_ok_ptr(f);
    assert_string_equal(safetensors_metadata(f, "backbone"), "tiny");
    assert_int_equal(safetensors_count(f), 5);
    safetensors_close(f);
    param_set_free(a);
    param_set_free(b);
    unlink(path);
}

/* A file with one good tensor, one of the wrong shape, one unknown, one
 * integer counter, and one under another prefix. */
static void write_mixed_file(const char *path) {
    SafetensorsWriter *w = safetensors_writer_new();
    Tensor *good = tensor_full(SHAPE(2, 3), 7.0f), *bad = tensor_ones(SHAPE(4));
    Tensor *extra = tensor_ones(SHAPE(1)), *other = tensor_full(SHAPE(2, 3), 9.0f);
    assert_ok(safetensors_writer_add(w, "a.weight", good));
    assert_ok(safetensors_writer_add(w, "a.bias", bad));
    assert_ok(safetensors_writer_add(w, "extra.thing", extra));
    assert_ok(safetensors_writer_add(w, "head.a.weight", other));
    assert_ok(safetensors_writer_add_int64(w, "bn.num_batches_tracked", 0, NULL, (int64_t[]){12}));
    assert_ok(safetensors_writer_save(w, path));
    safetensors_writer_free(w);
    tensor_free(good);
    tensor_free(bad);
    tensor_free(extra);
    tensor_free(other);
}

static ParamSet *mixed_model(void) {
    ParamSet *ps = param_set_new();
    assert_non_null(param_set_add(ps, "a.weight", tensor_zeros(SHAPE(2, 3)), false));
    assert_non_null(param_set_add(ps, "a.bias", tensor_zeros(SHAPE(2)), false));
    assert_non_null(param_set_add(ps, "b.weight", tensor_zeros(SHAPE(5)), false));
    return ps;
}

static bool list_has(char *const *names, int64_t n, const char *prefix) {
    for (int64_t i = 0; i < n; i++)
        if (strncmp(names[i], prefix, strlen(prefix)) == 0) return true;
    return false;
}

static void test_strict_load_lists_problems_and_loads_nothing(void **state) {
    char path[256];
    temp_path(path, sizeof path, "strict");
    write_mixed_file(path);
    ParamSet *ps = mixed_model();
    LoadReport r;
    assert_int_equal(param_set_load(ps, path, true, NULL, &r), HG_ERR_FORMAT);
    const char *msg = hg_last_error();
    assert_non_null(strstr(msg, "b.weight"));
    assert_non_null(strstr(msg, "extra.thing"));
    assert_non_null(strstr(msg, "a.bias"));
    assert_null(strstr(msg, "num_batches_tracked"));
    assert_int_equal(r.loaded, 0);
    assert_int_equal(r.n_missing, 1);
    assert_string_equal(r.missing[0], "b.weight");
    assert_int_equal(r.n_unexpected, 2); /* extra.thing, head.a.weight */
    assert_true(list_has(r.unexpected, r.n_unexpected, "extra.thing"));
    assert_true(list_has(r.unexpected, r.n_unexpected, "head.a.weight"));
    assert_int_equal(r.n_mismatched, 1);
    assert_non_null(strstr(r.mismatched[0], "a.bias"));
    assert_non_null(strstr(r.mismatched[0], "[4]"));
    load_report_free(&r);
    assert_true(tensor_data(param_set_find(ps, "a.weight")->value)[0] == 0.0f); /* untouched */
    param_set_free(ps);
    unlink(path);
}

static void test_non_strict_load_reports_and_loads_matches(void **state) {
    char path[256];
    temp_path(path, sizeof path, "loose");
    write_mixed_file(path);
    ParamSet *ps = mixed_model();
    LoadReport r;
    assert_ok(param_set_load(ps, path, false, NULL, &r));
    assert_int_equal(r.loaded, 1);
    assert_int_equal(r.n_missing, 1);
    assert_int_equal(r.n_unexpected, 2);
    assert_int_equal(r.n_mismatched, 1);
    load_report_free(&r);
    assert_int_equal(r.n_missing, 0);
    const float *w = tensor_data(param_set_find(ps, "a.weight")->value);
    for (int i = 0; i < 6; i++) assert_true(w[i] == 7.0f);
    assert_true(tensor_data(param_set_find(ps, "a.bias")->value)[0] == 0.0f);

    /* With a prefix filter only "head." tensors count, the prefix removed. */
    assert_ok(param_set_load(ps, path, false, "head.", &r));
    assert_int_equal(r.loaded, 1);
    assert_int_equal(r.n_unexpected, 0);
    assert_int_equal(r.n_missing, 2); /* a.bias, b.weight */
    load_report_free(&r);
    assert_true(w[0] == 9.0f);
    /* A NULL report is fine; a missing file is an I/O error. */
    assert_ok(param_set_load(ps, path, false, NULL, NULL));
    assert_int_not_equal(param_set_load(ps, "/nonexistent/x.safetensors", false, NULL, NULL),
                         HG_OK);
    param_set_free(ps);
    unlink(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_follow_state_dict_convention),
        cmocka_unit_test(test_prefix_matches_whole_components),
        cmocka_unit_test(test_freeze_by_prefix),
        cmocka_unit_test(test_training_flag_and_zero_grad),
        cmocka_unit_test(test_linear_init_bounds_and_forward),
        cmocka_unit_test(test_activation_names),
        cmocka_unit_test(test_save_load_round_trip),
        cmocka_unit_test(test_strict_load_lists_problems_and_loads_nothing),
        cmocka_unit_test(test_non_strict_load_reports_and_loads_matches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
