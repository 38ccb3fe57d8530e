/* Section 7 anomaly maps against the public code's computation (fixture from
 * tools/fixtures/make_scoring_fixtures.py). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "models/anomaly_map.h"
#include "nn/safetensors.h"
#include "tensor/ops.h"
#include "tests/testutil.h"

static void load_maps(SafetensorsFile *f, const char *kind, Tensor **maps) {
    char name[64];
    for (int l = 0; l < 3; l++) {
        snprintf(name, sizeof name, "%s.%d", kind, l);
        maps[l] = safetensors_load_tensor(f, name);
        assert_ok_ptr(maps[l]);
    }
}

static void test_paper_mode_matches_reference(void **state) {
    SafetensorsFile *f = safetensors_open(test_fixture("scoring_reference.safetensors"));
    assert_ok_ptr(f);
    Tensor *logp[3], *negent[3];
    load_maps(f, "logp", logp);
    load_maps(f, "neg_entropy", negent);
    MapNormalization n1, n2;
    assert_ok(anomaly_normalization(3, (const Tensor *const *)logp, 40, &n1));
    assert_ok(anomaly_normalization(3, (const Tensor *const *)negent, 40, &n2));
    Tensor *a1 = anomaly_maps(3, (const Tensor *const *)logp, 40, 4.0, &n1);
    Tensor *a2 = anomaly_maps(3, (const Tensor *const *)negent, 40, 4.0, &n2);
    assert_ok_ptr(a1);
    assert_ok_ptr(a2);
    Tensor *want1 = safetensors_load_tensor(f, "anomaly_logp");
    Tensor *want2 = safetensors_load_tensor(f, "anomaly_neg_entropy");
    assert_true(test_max_rel_diff(a1, want1) < 1e-5);
    assert_true(test_max_rel_diff(a2, want2) < 1e-5);
    Tensor *score = tensor_mul(a1, a2), *want = safetensors_load_tensor(f, "score_map");
    assert_true(test_max_rel_diff(score, want) < 1e-5);
    float scores[3];
    anomaly_image_scores(score, scores);
    Tensor *want_scores = safetensors_load_tensor(f, "image_scores");
    for (int b = 0; b < 3; b++) assert_float_equal(scores[b], tensor_data(want_scores)[b], 1e-5);
    /* The normalization is the maximum: the most normal pixel of the set has A = 0
     * before the blur. */
    Tensor *raw = anomaly_maps(3, (const Tensor *const *)logp, 40, 0.0, &n1);
    Tensor *mn = tensor_min(raw, 0, NULL, false);
    assert_float_equal(tensor_data(mn)[0], 0.0f, 1e-6);
    tensor_free(raw), tensor_free(mn);
    for (int l = 0; l < 3; l++) tensor_free(logp[l]), tensor_free(negent[l]);
    tensor_free(a1), tensor_free(a2), tensor_free(want1), tensor_free(want2), tensor_free(score),
        tensor_free(want), tensor_free(want_scores);
    safetensors_close(f);
}

/* Deployable mode: with constants fixed in advance, an image's map does not
 * depend on which other images are scored with it. */
static void test_deployable_mode_scores_images_independently(void **state) {
    SafetensorsFile *f = safetensors_open(test_fixture("scoring_reference.safetensors"));
    Tensor *logp[3];
    load_maps(f, "logp", logp);
    MapNormalization train;
    assert_ok(anomaly_normalization(3, (const Tensor *const *)logp, 40, &train));
    train.summed_max += 0.5; /* any fixed constants */
    Tensor *all = anomaly_maps(3, (const Tensor *const *)logp, 40, 4.0, &train);
    Tensor *one[3];
    for (int l = 0; l < 3; l++) one[l] = tensor_narrow(logp[l], 0, 1, 1);
    Tensor *single = anomaly_maps(3, (const Tensor *const *)one, 40, 4.0, &train);
    Tensor *same = tensor_narrow(all, 0, 1, 1);
    test_assert_close(single, same, 1e-6, 1e-7);
    for (int l = 0; l < 3; l++) tensor_free(one[l]), tensor_free(logp[l]);
    tensor_free(all), tensor_free(single), tensor_free(same);
    safetensors_close(f);
}

static void test_bad_maps_are_errors(void **state) {
    Tensor *a = tensor_zeros(SHAPE(2, 4, 4)), *b = tensor_zeros(SHAPE(3, 2, 2));
    const Tensor *maps[2] = {a, b};
    MapNormalization n;
    assert_int_equal(anomaly_normalization(2, maps, 16, &n), HG_ERR_SHAPE);
    assert_int_equal(anomaly_normalization(0, maps, 16, &n), HG_ERR_ARG);
    tensor_free(a), tensor_free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paper_mode_matches_reference),
        cmocka_unit_test(test_deployable_mode_scores_images_independently),
        cmocka_unit_test(test_bad_maps_are_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
