/* The frozen-backbone feature cache. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline/feature_cache.h"
#include "tests/testutil.h"

typedef struct Producer {
    int calls;
    int fail_at; /* image index whose production fails, -1 never */
} Producer;

/* Value of image i, level l, channel d at (h, w): a formula the test can recompute. */
static float value_at(int64_t i, int l, int64_t d, int64_t h, int64_t w) {
    return (float)(i * 1000 + l * 100 + d) + 0.25f * (float)h - 0.125f * (float)w;
}

static const FeatureCacheShape shape = {2, 5, {3, 4}, {4, 2}, {3, 2}};

static hg_status produce(void *context, int64_t index, Tensor **maps) {
    Producer *p = context;
    p->calls++;
    if (index == p->fail_at) return hg_fail(HG_ERR_IO, "producer: image %lld unreadable", (long long)index);
    for (int l = 0; l < shape.levels; l++) {
        maps[l] = tensor_empty(SHAPE(1, shape.dims[l], shape.heights[l], shape.widths[l]));
        float *v = tensor_data(maps[l]);
        for (int64_t d = 0; d < shape.dims[l]; d++)
            for (int64_t h = 0; h < shape.heights[l]; h++)
                for (int64_t w = 0; w < shape.widths[l]; w++)
                    *v++ = value_at(index, l, d, h, w);
    }
    return HG_OK;
}

static char path[256];

static int setup(void **state) {
    snprintf(path, sizeof path, "/tmp/hgad_cache_test_%d.bin", (int)getpid());
    unlink(path);
    return 0;
}

static int teardown(void **state) {
    unlink(path);
    return 0;
}

static void check_gather(const FeatureCache *c, double tol) {
    const int64_t images[3] = {4, 0, 4};
    for (int l = 0; l < shape.levels; l++) {
        const int64_t rows = shape.heights[l] * shape.widths[l], D = shape.dims[l];
        Tensor *out = tensor_empty(SHAPE(3 * rows, D));
        assert_ok(feature_cache_gather(c, l, 3, images, out));
        for (int k = 0; k < 3; k++)
            for (int64_t r = 0; r < rows; r++)
                for (int64_t d = 0; d < D; d++) {
                    float want = value_at(images[k], l, d, r / shape.widths[l], r % shape.widths[l]);
                    float got = tensor_data(out)[(k * rows + r) * D + d];
                    if (fabsf(got - want) > tol * fabsf(want) + 1e-6f)
                        fail_msg("level %d image %lld row %lld ch %lld: %g vs %g", l,
                                 (long long)images[k], (long long)r, (long long)d, got, want);
                }
        tensor_free(out);
    }
}

static void test_build_reopen_and_rebuild(void **state) {
    Producer p = {0, -1};
    FeatureCache *c = feature_cache_open_or_build(path, "backbone=x size=64", &shape, false, produce, &p, NULL, NULL);
    assert_ok_ptr(c);
    assert_int_equal(p.calls, 5);
    check_gather(c, 0);
    feature_cache_close(c);
    /* same fingerprint: memory-mapped again, nothing recomputed */
    c = feature_cache_open_or_build(path, "backbone=x size=64", &shape, false, produce, &p, NULL, NULL);
    assert_ok_ptr(c);
    assert_int_equal(p.calls, 5);
    assert_string_equal(feature_cache_fingerprint(c), "backbone=x size=64");
    feature_cache_close(c);
    /* another fingerprint: stale, rebuilt */
    c = feature_cache_open_or_build(path, "backbone=y size=64", &shape, false, produce, &p, NULL, NULL);
    assert_ok_ptr(c);
    assert_int_equal(p.calls, 10);
    feature_cache_close(c);
}

static void test_half_precision(void **state) {
    Producer p = {0, -1};
    FeatureCache *c = feature_cache_open_or_build(path, "half", &shape, true, produce, &p, NULL, NULL);
    assert_ok_ptr(c);
    assert_true(feature_cache_is_half(c));
    check_gather(c, 1.0 / 1024); /* 11 significant bits */
    feature_cache_close(c);
}

static void test_failed_build_leaves_nothing(void **state) {
    unlink(path);
    Producer p = {0, 3};
    assert_null(feature_cache_open_or_build(path, "f", &shape, false, produce, &p, NULL, NULL));
    assert_non_null(strstr(hg_last_error(), "image 3 unreadable"));
    assert_int_equal(access(path, F_OK), -1);
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    assert_int_equal(access(tmp, F_OK), -1);
}

static void test_corrupt_and_bad_arguments(void **state) {
    Producer p = {0, -1};
    FeatureCache *c = feature_cache_open_or_build(path, "ok", &shape, false, produce, &p, NULL, NULL);
    assert_ok_ptr(c);
    Tensor *wrong = tensor_empty(SHAPE(7, 3));
    const int64_t images[1] = {0}, bad_image[1] = {5};
    assert_int_equal(feature_cache_gather(c, 0, 1, images, wrong), HG_ERR_SHAPE);
    tensor_free(wrong);
    Tensor *out = tensor_empty(SHAPE(12, 3));
    assert_int_equal(feature_cache_gather(c, 0, 1, bad_image, out), HG_ERR_ARG);
    assert_int_equal(feature_cache_gather(c, 2, 1, images, out), HG_ERR_ARG);
    tensor_free(out);
    feature_cache_close(c);
    assert_int_equal(truncate(path, 5000), 0);
    assert_null(feature_cache_open(path));
    assert_non_null(strstr(hg_last_error(), "size does not match"));
    /* open_or_build replaces the damaged file */
    c = feature_cache_open_or_build(path, "ok", &shape, false, produce, &p, NULL, NULL);
    assert_ok_ptr(c);
    check_gather(c, 0);
    feature_cache_close(c);
    FILE *f = fopen(path, "r+b");
    fputs("garbage!", f);
    fclose(f);
    assert_null(feature_cache_open(path));
    assert_non_null(strstr(hg_last_error(), "not a feature cache"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_reopen_and_rebuild),
        cmocka_unit_test(test_half_precision),
        cmocka_unit_test(test_failed_build_leaves_nothing),
        cmocka_unit_test(test_corrupt_and_bad_arguments),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
