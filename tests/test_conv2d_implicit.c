/* Implicit-GEMM convolution (nn/conv2d_implicit.c) and the im2col path it
 * replaces in conv2d_forward, against a naive double-precision convolution:
 * kernels 1x1 to 7x7, strides 1 to 3, dilation 2, symmetric, asymmetric and
 * no padding, odd sizes, output rows shorter than a micro-panel (panels that
 * span rows), channel counts that are not multiples of 6, 8 or 16, more than
 * 512 K rows (two K blocks), bias or not, batches > 1; with the AVX2 and
 * (when the CPU has it) the AVX-512 micro-kernel, with and without the fused
 * ReLU (and conv2d_forward_relu), 1 and 2 threads (bit-identical). Tolerance: 1e-5 of max
 * |reference| per case (measured errors ~1e-7; a wrong tap, phase or padding gives errors of order
 * 1). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/conv2d.h"
#include "nn/conv2d_implicit.h"
#include "nn/conv2d_kernels.h"
#include "tensor/rng.h"
#include "tests/testutil.h"

typedef struct Case {
    int64_t n, cin, cout, h, w, kh, kw;
    int sh, sw, dh, dw, pt, pb, pl, pr;
    bool bias;
} Case;

/* U(-1, 1) values of a fixed seed (Philox, tensor/rng.h). */
static Tensor *uniform(int ndim, const int64_t *shape, uint64_t seed) {
    Rng rng = rng_new(seed);
    Tensor *t = tensor_uniform(ndim, shape, -1.0f, 1.0f, &rng);
    assert_ok_ptr(t);
    return t;
}

/* out[n,o,y,x] = b[o] + sum w[o,c,i,j] x[n,c,y*sh-pt+i*dh,x*sw-pl+j*dw], in double. */
static double *reference(const Case *k, const Conv2dGeom *g, const float *x, const float *w,
                         const float *b) {
    double *y = malloc(sizeof(double) * (size_t)(g->n * g->c_out * g->oh * g->ow));
    assert_non_null(y);
    double *d = y;
    for (int64_t n = 0; n < g->n; n++)
        for (int64_t o = 0; o < g->c_out; o++)
            for (int64_t r = 0; r < g->oh; r++)
                for (int64_t q = 0; q < g->ow; q++) {
                    double acc = b ? b[o] : 0.0;
                    for (int64_t c = 0; c < k->cin; c++)
                        for (int64_t i = 0; i < k->kh; i++)
                            for (int64_t j = 0; j < k->kw; j++) {
                                int64_t iy = r * k->sh - k->pt + i * k->dh;
                                int64_t ix = q * k->sw - k->pl + j * k->dw;
                                if (iy < 0 || iy >= k->h || ix < 0 || ix >= k->w) continue;
                                acc += (double)w[((o * k->cin + c) * k->kh + i) * k->kw + j] *
                                       x[((n * k->cin + c) * k->h + iy) * k->w + ix];
                            }
                    *d++ = acc;
                }
    return y;
}

static void check_close(const char *what, int ci, const float *got, const double *want,
                        int64_t count) {
    double scale = 0, err = 0;
    for (int64_t i = 0; i < count; i++) scale = fmax(scale, fabs(want[i]));
    for (int64_t i = 0; i < count; i++) err = fmax(err, fabs(got[i] - want[i]));
    if (!(err <= 1e-5 * scale + 1e-30))
        fail_msg("case %d %s: max error %g of max %g", ci, what, err, scale);
}

static const Case CASES[] = {
    /* n cin cout  h   w  kh kw sh sw dh dw pt pb pl pr bias */
    {1, 3, 64, 37, 41, 7, 7, 2, 2, 1, 1, 3, 3, 3, 3, true},  /* resnet stem, odd */
    {2, 5, 13, 17, 23, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, false}, /* 3x3/2 */
    {1, 7, 9, 16, 16, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0, true},   /* 1x1/2 downsample */
    {1, 4, 10, 9, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, true},    /* rows shorter than a panel */
    {1, 6, 7, 19, 11, 3, 5, 3, 2, 1, 1, 0, 2, 1, 2, true},   /* asymmetric */
    {1, 3, 17, 21, 20, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, false}, /* dilation 2 */
    {1, 60, 20, 11, 13, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, true}, /* K = 540: two K blocks */
    {2, 2, 3, 4, 3, 5, 5, 1, 1, 1, 1, 2, 2, 2, 2, true},     /* kernel > input, padded */
    {1, 33, 50, 8, 50, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, false}, /* 1x1 stride 1 */
    {2, 3, 1, 7, 58, 5, 5, 2, 1, 2, 1, 1, 1, 0, 2, false},   /* one output row: last panel of 8 */
};

static void test_against_reference(void **state) {
    (void)state;
    int saved = omp_get_max_threads();
    int ncases = (int)(sizeof CASES / sizeof CASES[0]);
    for (int ci = 0; ci < ncases; ci++) {
        const Case *k = &CASES[ci];
        Tensor *x = uniform(4, (int64_t[]){k->n, k->cin, k->h, k->w}, 1 + ci);
        Tensor *w = uniform(4, (int64_t[]){k->cout, k->cin, k->kh, k->kw}, 100 + ci);
        Tensor *b = k->bias ? uniform(1, (int64_t[]){k->cout}, 200 + ci) : NULL;
        Conv2dSpec spec = {k->sh, k->sw, k->dh, k->dw, 1, k->pt, k->pb, k->pl, k->pr, false};
        Conv2dGeom g;
        assert_ok(conv2d_geometry("test", x, w, &spec, &g));
        const float *bv = b ? tensor_data(b) : NULL;
        double *want = reference(k, &g, tensor_data(x), tensor_data(w), bv);
        int64_t count = g.n * g.c_out * g.oh * g.ow;
        float *got = malloc(sizeof(float) * (size_t)count);
        float *first = malloc(sizeof(float) * (size_t)count);
        assert_non_null(got);
        assert_non_null(first);
        double *want_relu = malloc(sizeof(double) * (size_t)count);
        assert_non_null(want_relu);
        for (int64_t i = 0; i < count; i++) want_relu[i] = want[i] > 0 ? want[i] : 0.0;
        for (int t = 1; t <= 2; t++) {
            omp_set_num_threads(t);
            assert_ok(conv2d_im2col_forward(got, tensor_data(x), tensor_data(w), bv, &g));
            check_close("im2col", ci, got, want, count);
            Tensor *y = conv2d_forward(x, w, b, &spec);
            assert_ok_ptr(y);
            assert_int_equal(tensor_numel(y), count);
            check_close("conv2d_forward", ci, tensor_data(y), want, count);
            tensor_free(y);
            y = conv2d_forward_relu(x, w, b, &spec);
            assert_ok_ptr(y);
            check_close("conv2d_forward_relu", ci, tensor_data(y), want_relu, count);
            tensor_free(y);
            if (!conv2d_implicit_supported(&g)) continue;
            for (int wide = 0; wide <= (hg_cpu_has_avx512f() ? 1 : 0); wide++) {
                for (int relu = 0; relu <= 1; relu++) {
                    assert_ok(conv2d_implicit_forward(got, tensor_data(x), tensor_data(w), bv, &g,
                                                      relu, wide));
                    char what[64];
                    snprintf(what, sizeof what, "implicit %s%s", wide ? "avx512" : "avx2",
                             relu ? " relu" : "");
                    check_close(what, ci, got, relu ? want_relu : want, count);
                }
                if (t == 1 && wide == 0) memcpy(first, got, sizeof(float) * (size_t)count);
                if (t == 2 && wide == 0)
                    assert_memory_equal(first, got, sizeof(float) * (size_t)count);
            }
        }
        free(want_relu);
        omp_set_num_threads(saved);
        free(got);
        free(first);
        free(want);
        tensor_free(x);
        tensor_free(w);
        tensor_free(b);
    }
}

/* The 2-thread AVX-512 result equals the 1-thread one bit for bit. */
static void test_threads_identical(void **state) {
    (void)state;
    if (!hg_cpu_has_avx512f()) skip();
    int saved = omp_get_max_threads();
    Tensor *x = uniform(4, (int64_t[]){1, 16, 40, 40}, 7);
    Tensor *w = uniform(4, (int64_t[]){24, 16, 3, 3}, 8);
    Tensor *b = uniform(1, (int64_t[]){24}, 9);
    Conv2dSpec spec = conv2d_spec(2, 1, 1, 1);
    Conv2dGeom g;
    assert_ok(conv2d_geometry("test", x, w, &spec, &g));
    int64_t count = g.c_out * g.oh * g.ow;
    float *one = malloc(sizeof(float) * (size_t)count),
          *two = malloc(sizeof(float) * (size_t)count);
    assert_non_null(one);
    assert_non_null(two);
    omp_set_num_threads(1);
    assert_ok(conv2d_implicit_forward(one, tensor_data(x), tensor_data(w), tensor_data(b), &g,
                                      false, true));
    omp_set_num_threads(2);
    assert_ok(conv2d_implicit_forward(two, tensor_data(x), tensor_data(w), tensor_data(b), &g,
                                      false, true));
    omp_set_num_threads(saved);
    assert_memory_equal(one, two, sizeof(float) * (size_t)count);
    free(one);
    free(two);
    tensor_free(x);
    tensor_free(w);
    tensor_free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_reference),
        cmocka_unit_test(test_threads_identical),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
