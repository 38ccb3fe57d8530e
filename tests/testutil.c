#include "tests/testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

double test_max_rel_diff(const Tensor *a, const Tensor *b) {
    int64_t n = tensor_numel(a);
    float *va = malloc(sizeof(float) * (size_t)(n ? n : 1));
    float *vb = malloc(sizeof(float) * (size_t)(n ? n : 1));
    tensor_to_array(a, va);
    tensor_to_array(b, vb);
    double max_diff = 0, max_ref = 1e-30;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)va[i] - vb[i]);
        if (d > max_diff || isnan(d)) max_diff = isnan(d) ? INFINITY : d;
        if (fabs(vb[i]) > max_ref) max_ref = fabs(vb[i]);
    }
    free(va);
    free(vb);
    return max_diff / max_ref;
}

void test_assert_close(const Tensor *a, const Tensor *b, double rtol, double atol) {
    char sa[128], sb[128];
    if (!tensor_same_shape(a, b))
        fail_msg("shapes differ: %s vs %s", tensor_shape_str(a, sa, sizeof sa),
                 tensor_shape_str(b, sb, sizeof sb));
    int64_t n = tensor_numel(a);
    float *va = malloc(sizeof(float) * (size_t)(n ? n : 1));
    float *vb = malloc(sizeof(float) * (size_t)(n ? n : 1));
    tensor_to_array(a, va);
    tensor_to_array(b, vb);
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)va[i] - vb[i]);
        if (!(d <= atol + rtol * fabs(vb[i]))) {
            float x = va[i], y = vb[i];
            free(va);
            free(vb);
            fail_msg("element %lld: %.9g vs expected %.9g", (long long)i, x, y);
        }
    }
    free(va);
    free(vb);
}

void test_assert_values(const Tensor *a, const float *expected, int64_t n, double atol) {
    assert_int_equal(tensor_numel(a), n);
    Tensor *e = tensor_from_data(1, &n, expected);
    Tensor *flat = tensor_reshape(a, 1, &n);
    test_assert_close(flat, e, 0, atol);
    tensor_free(e);
    tensor_free(flat);
}

const char *test_shared_dir(void) {
    static char path[4096];
    const char *env = getenv("HG_SHARED_DIR");
    snprintf(path, sizeof path, "%s", env && *env ? env : "../shared");
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) return NULL;
    return path;
}

const char *test_fixture(const char *name) {
    static char path[4096];
    const char *root = getenv("HG_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/tests/fixtures/%s", root && *root ? root : ".", name);
    return path;
}
