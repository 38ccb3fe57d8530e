/* Max pooling forward (nn/pool.c, the row kernel) against a naive reference
 * that scans every window in row-major order: odd sizes, kernels 1 to 4,
 * strides 1 to 3, padding, ceil_mode (windows clipped or past the input:
 * -inf), NaNs (propagated), batches > 1, 1 and 2 threads. Max pooling picks
 * one input value, so results must be bit-identical. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "nn/pool.h"
#include "tests/testutil.h"

static float naive_max(const float *plane, int64_t h, int64_t w, int64_t y, int64_t x,
                       const Pool2dSpec *s) {
    float best = -INFINITY;
    bool nan = false;
    for (int i = 0; i < s->kernel_h; i++)
        for (int j = 0; j < s->kernel_w; j++) {
            int64_t iy = y * s->stride_h - s->pad_h + i, ix = x * s->stride_w - s->pad_w + j;
            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
            float v = plane[iy * w + ix];
            if (isnan(v))
                nan = true;
            else if (v > best)
                best = v;
        }
    return nan ? NAN : best;
}

static void test_maxpool_reference(void **state) {
    (void)state;
    static const struct {
        int64_t n, c, h, w;
        int k, s, p;
        bool ceil;
    } cases[] = {
        {1, 3, 33, 47, 3, 2, 1, false}, /* the ResNet stem pool, odd */
        {1, 2, 9, 131, 3, 2, 1, false}, /* wide rows */
        {1, 1, 5, 66, 3, 2, 0, false},  /* no padding, even width */
        {2, 2, 16, 16, 3, 2, 1, false}, {1, 4, 9, 7, 2, 2, 0, true},  {1, 2, 10, 11, 3, 3, 1, true},
        {1, 1, 5, 6, 4, 1, 2, false},   {1, 2, 7, 5, 1, 2, 0, false}, {3, 1, 3, 3, 3, 2, 1, true},
    };
    int saved = omp_get_max_threads();
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        Pool2dSpec s = pool2d_spec(cases[ci].k, cases[ci].s, cases[ci].p);
        s.ceil_mode = cases[ci].ceil;
        int64_t n = cases[ci].n, c = cases[ci].c, h = cases[ci].h, w = cases[ci].w, oh, ow;
        assert_ok(pool2d_output_size(h, w, &s, &oh, &ow));
        Tensor *x = tensor_empty(SHAPE(n, c, h, w));
        assert_ok_ptr(x);
        float *xv = tensor_data(x);
        uint32_t r = 17u + (uint32_t)ci;
        for (int64_t i = 0; i < tensor_numel(x); i++) {
            r = r * 1664525u + 1013904223u;
            xv[i] = (float)(r >> 8) / 16777216.0f - 0.5f;
            if (i % 97 == 13) xv[i] = NAN;
        }
        for (int t = 1; t <= 2; t++) {
            omp_set_num_threads(t);
            Tensor *y = maxpool2d_forward(x, &s);
            assert_ok_ptr(y);
            assert_int_equal(y->shape[2], oh);
            assert_int_equal(y->shape[3], ow);
            const float *yv = tensor_data(y);
            for (int64_t q = 0; q < n * c; q++)
                for (int64_t i = 0; i < oh; i++)
                    for (int64_t j = 0; j < ow; j++) {
                        float want = naive_max(xv + q * h * w, h, w, i, j, &s);
                        float got = yv[(q * oh + i) * ow + j];
                        if (isnan(want) ? !isnan(got) : got != want)
                            fail_msg("case %zu threads %d plane %lld (%lld,%lld): %g, expected %g",
                                     ci, t, (long long)q, (long long)i, (long long)j, got, want);
                    }
            tensor_free(y);
        }
        omp_set_num_threads(saved);
        tensor_free(x);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_maxpool_reference)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
