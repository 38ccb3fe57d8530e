/* HGAD checkpoints (spec section 10) and the flow-run auditing command. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "models/hgad.h"
#include "nn/safetensors.h"
#include "tensor/ops.h"
#include "tests/testutil.h"

#define FIXTURE "flow_reference.safetensors"
enum { D = 12, DC = 8, C = 3, M = 4, K = 3 };

static int setup(void **state) {
    return test_temp_dir_create("hgad_io_test");
}

static int teardown(void **state) {
    return test_temp_dir_remove();
}

static Hgad *fixture_model(void) {
    HgadConfig config = hgad_default_config(1, D, C);
    config.cond_dim = DC;
    config.coupling_blocks = K;
    config.intra_centers = M;
    Hgad *model = hgad_new(&config);
    assert_ok_ptr(model);
    assert_ok(param_set_load(model->params, test_fixture(FIXTURE), false, NULL, NULL));
    return model;
}

static Tensor *fixture_tensor(const char *name) {
    SafetensorsFile *f = safetensors_open(test_fixture(FIXTURE));
    assert_ok_ptr(f);
    Tensor *t = safetensors_load_tensor(f, name);
    safetensors_close(f);
    assert_ok_ptr(t);
    return t;
}

static void test_save_load_round_trip(void **state) {
    Hgad *model = fixture_model();
    model->config.new_clamp = false;
    HgadMeta extra = {0};
    assert_ok(hgad_meta_set(&extra, "backbone", "mobilenet_v2"));
    assert_ok(hgad_meta_set(&extra, "class_names", "a,b,c"));
    const char *path = test_temp_path("model.safetensors");
    assert_ok(hgad_save(model, path, false, &extra));
    HgadMeta back;
    Hgad *loaded = hgad_load(path, &back);
    assert_ok_ptr(loaded);
    assert_string_equal(hgad_meta_get(&back, "backbone"), "mobilenet_v2");
    assert_string_equal(hgad_meta_get(&back, "class_names"), "a,b,c");
    assert_null(hgad_meta_get(&back, "hgad.dims"));
    assert_int_equal(loaded->config.levels, 1);
    assert_int_equal(loaded->config.dims[0], D);
    assert_int_equal(loaded->config.cond_dim, DC);
    assert_int_equal(loaded->config.coupling_blocks, K);
    assert_int_equal(loaded->config.intra_centers, M);
    assert_float_equal(loaded->config.clamp, 1.9f, 0);
    assert_int_equal(param_set_size(loaded->params), param_set_size(model->params));
    for (int64_t i = 0; i < param_set_size(model->params); i++) {
        ParamEntry *a = param_set_at(model->params, i);
        Var *b = param_set_find(loaded->params, a->name);
        assert_ok_ptr(b);
        test_assert_close(b->value, a->var->value, 0, 0);
    }
    hgad_free(model);
    hgad_free(loaded);
}

/* Training resumed from a checkpoint continues exactly as without the stop. */
static void test_resume_is_exact(void **state) {
    Tensor *x = fixture_tensor("x"), *cond = fixture_tensor("cond");
    int64_t labels[24];
    for (int i = 0; i < 24; i++) labels[i] = i % C;
    Hgad *straight = fixture_model(), *first = fixture_model();
    for (int step = 0; step < 4; step++)
        assert_ok(hgad_train_step(straight, 0, x, cond, labels, 2, NULL));
    for (int step = 0; step < 2; step++)
        assert_ok(hgad_train_step(first, 0, x, cond, labels, 2, NULL));
    const char *path = test_temp_path("resume.safetensors");
    assert_ok(hgad_save(first, path, true, NULL));
    hgad_free(first);
    Hgad *resumed = hgad_load(path, NULL);
    assert_ok_ptr(resumed);
    for (int step = 0; step < 2; step++)
        assert_ok(hgad_train_step(resumed, 0, x, cond, labels, 2, NULL));
    for (int64_t i = 0; i < param_set_size(straight->params); i++) {
        ParamEntry *a = param_set_at(straight->params, i);
        test_assert_close(param_set_find(resumed->params, a->name)->value, a->var->value, 0, 0);
    }
    hgad_free(straight);
    hgad_free(resumed);
    tensor_free(x);
    tensor_free(cond);
}

static void test_load_rejects_bad_files(void **state) {
    assert_null(hgad_load(test_temp_path("missing.safetensors"), NULL));
    assert_non_null(strstr(hg_last_error(), "missing.safetensors"));
    /* A plain state dict without the hgad metadata. */
    assert_null(hgad_load(test_fixture(FIXTURE), NULL));
    assert_non_null(strstr(hg_last_error(), "hgad.dims"));
    /* A checkpoint whose configuration disagrees with its tensors. */
    Hgad *model = fixture_model();
    SafetensorsWriter *w = safetensors_writer_new();
    for (int64_t i = 0; i < param_set_size(model->params); i++) {
        ParamEntry *e = param_set_at(model->params, i);
        assert_ok(safetensors_writer_add(w, e->name, e->var->value));
    }
    assert_ok(safetensors_writer_set_metadata(w, "hgad.dims", "16"));
    assert_ok(safetensors_writer_set_metadata(w, "hgad.cond_dim", "8"));
    assert_ok(safetensors_writer_set_metadata(w, "hgad.coupling_blocks", "3"));
    assert_ok(safetensors_writer_set_metadata(w, "hgad.classes", "3"));
    assert_ok(safetensors_writer_set_metadata(w, "hgad.intra_centers", "4"));
    const char *path = test_temp_path("mismatch.safetensors");
    assert_ok(safetensors_writer_save(w, path));
    safetensors_writer_free(w);
    assert_null(hgad_load(path, NULL));
    assert_non_null(strstr(hg_last_error(), "nfs.0.module_list.0"));
    hgad_free(model);
}

static void test_flow_run_command(void **state) {
    Hgad *model = fixture_model();
    const char *ckpt = test_temp_path("flowrun.safetensors");
    assert_ok(hgad_save(model, ckpt, false, NULL));
    hgad_free(model);
    /* IN: x, cond and y from the fixture, y as int64 */
    SafetensorsFile *f = safetensors_open(test_fixture(FIXTURE));
    Tensor *x = safetensors_load_tensor(f, "x"), *cond = safetensors_load_tensor(f, "cond");
    int64_t *y, n;
    assert_ok(safetensors_load_int64(f, "y", &y, &n));
    SafetensorsWriter *w = safetensors_writer_new();
    assert_ok(safetensors_writer_add(w, "x", x));
    assert_ok(safetensors_writer_add(w, "cond", cond));
    assert_ok(safetensors_writer_add_int64(w, "y", SHAPE(n), y));
    const char *in = test_temp_path("in.safetensors");
    assert_ok(safetensors_writer_save(w, in));
    safetensors_writer_free(w);
    const char *out = test_temp_path("out.safetensors");
    char text[4096];
    int rc = test_run_hgad(text, sizeof text,
                           "flow-run --checkpoint %s --level 0 --input %s --output %s --class 1",
                           ckpt, in, out);
    if (rc != 0) fail_msg("flow-run exit %d: %s", rc, text);
    SafetensorsFile *o = safetensors_open(out);
    assert_ok_ptr(o);
    const char *pairs[][2] = {{"z", "chain_z"},    {"logdet", "chain_logdet"},
                              {"L_g", "full_L_g"}, {"L_mi", "full_L_mi"},
                              {"L_e", "full_L_e"}, {"L_g_intra", "full_L_g_intra"},
                              {"L_z", "full_L_z"}};
    for (int i = 0; i < 7; i++) {
        Tensor *got = safetensors_load_tensor(o, pairs[i][0]);
        Tensor *want = safetensors_load_tensor(f, pairs[i][1]);
        assert_ok_ptr(got);
        assert_ok_ptr(want);
        Tensor *want_shaped = tensor_reshape(want, got->ndim, got->shape);
        assert_ok_ptr(want_shaped);
        if (!(test_max_rel_diff(got, want_shaped) < 1e-5)) fail_msg("%s differs", pairs[i][0]);
        tensor_free(got), tensor_free(want), tensor_free(want_shaped);
    }
    Tensor *logp = safetensors_load_tensor(o, "logp"),
           *ne = safetensors_load_tensor(o, "neg_entropy");
    assert_ok_ptr(logp);
    assert_ok_ptr(ne);
    assert_int_equal(tensor_numel(logp), n);
    /* negative entropy of a C-way distribution lies in [-log C, 0] */
    for (int64_t i = 0; i < n; i++) {
        assert_true(tensor_data(ne)[i] <= 1e-6f && tensor_data(ne)[i] >= -logf(C) - 1e-5f);
        assert_true(isfinite(tensor_data(logp)[i]));
    }
    tensor_free(logp), tensor_free(ne);
    safetensors_close(o);

    /* Mismatched D: one clear line, non-zero exit, no output file. */
    Tensor *wide = tensor_zeros(SHAPE(4, D + 2)), *c4 = tensor_zeros(SHAPE(4, DC));
    w = safetensors_writer_new();
    assert_ok(safetensors_writer_add(w, "x", wide));
    assert_ok(safetensors_writer_add(w, "cond", c4));
    const char *bad = test_temp_path("bad.safetensors");
    assert_ok(safetensors_writer_save(w, bad));
    safetensors_writer_free(w);
    const char *out2 = test_temp_path("out2.safetensors");
    assert_int_not_equal(test_run_hgad(text, sizeof text,
                                       "flow-run --checkpoint %s --input %s --output %s", ckpt, bad,
                                       out2),
                         0);
    if (!strstr(text, "expects (N, 12)")) fail_msg("unexpected message: %s", text);
    assert_int_equal(access(out2, F_OK), -1);
    assert_int_not_equal(test_run_hgad(text, sizeof text,
                                       "flow-run --checkpoint %s --input %s --output %s --bogus 1",
                                       ckpt, in, out2),
                         0);
    assert_non_null(strstr(text, "unknown option"));
    tensor_free(wide), tensor_free(c4);
    tensor_free(x), tensor_free(cond);
    free(y);
    safetensors_close(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_save_load_round_trip),
        cmocka_unit_test(test_resume_is_exact),
        cmocka_unit_test(test_load_rejects_bad_files),
        cmocka_unit_test(test_flow_run_command),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
