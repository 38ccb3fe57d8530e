/* Winograd convolution (nn/conv2d_winograd.h):
 *  - F(2,3) and F(4,3) against a naive double-precision direct convolution
 *    and against conv2d_forward (im2col + GEMM) on odd and even sizes, with
 *    symmetric, asymmetric and no padding, bias or not, channel counts that
 *    are not multiples of 6, 8 or 16, batches > 1, more than 512 input
 *    channels (two K blocks), and both thread layouts (per-thread blocks and
 *    shared blocks), with 1 and 2 threads (bit-identical);
 *  - the fused epilogue (residual, ReLU);
 *  - the tile choice, the error paths;
 *  - resnet18 with and without the Winograd path, and the filter cache being
 *    rebuilt after the weights change.
 *
 * Tolerances: a Winograd output is a sum of transformed products whose
 * rounding errors scale with the magnitudes in the whole patch, not with the
 * output element, so errors are bounded relative to max |reference| of the
 * case. Measured (unit-variance inputs, He-scaled weights, 64..512 channels):
 * F(2,3) <= ~1e-6 and F(4,3) <= ~7e-6 of max |out| (im2col: ~6e-7). The
 * bounds below, 1e-5 and 4e-5, leave room for other data while a wrong
 * transform entry, tap, tile position or padding gives errors of order 1. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/backbone.h"
#include "nn/conv2d.h"
#include "nn/conv2d_winograd.h"
#include "tensor/rng.h"
#include "tests/testutil.h"

static double tolerance(int tile) {
    return tile == 2 ? 1e-5 : 4e-5;
}

/* U(-scale, scale) values of a fixed seed (Philox, tensor/rng.h). */
static Tensor *uniform(int ndim, const int64_t *shape, float scale, uint64_t seed) {
    Rng rng = rng_new(seed);
    Tensor *t = tensor_uniform(ndim, shape, -scale, scale, &rng);
    assert_ok_ptr(t);
    return t;
}

/* Naive direct convolution (3x3, stride 1) in double, plus bias. */
static Tensor *reference(const Tensor *x, const Tensor *w, const Tensor *b, const Conv2dSpec *sp) {
    int64_t n = x->shape[0], c = x->shape[1], h = x->shape[2], wd = x->shape[3];
    int64_t co = w->shape[0], oh, ow;
    assert_ok(conv2d_output_size(h, wd, 3, 3, sp, &oh, &ow));
    Tensor *y = tensor_empty(SHAPE(n, co, oh, ow));
    const float *xv = tensor_data(x), *wv = tensor_data(w), *bv = b ? tensor_data(b) : NULL;
    float *yv = tensor_data(y);
    for (int64_t i = 0; i < n; i++)
        for (int64_t o = 0; o < co; o++)
            for (int64_t r = 0; r < oh; r++)
                for (int64_t q = 0; q < ow; q++) {
                    double acc = bv ? bv[o] : 0.0;
                    for (int64_t k = 0; k < c; k++)
                        for (int a = 0; a < 3; a++)
                            for (int d = 0; d < 3; d++) {
                                int64_t iy = r - sp->pad_top + a, ix = q - sp->pad_left + d;
                                if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                                acc += (double)wv[((o * c + k) * 3 + a) * 3 + d] *
                                       xv[((i * c + k) * h + iy) * wd + ix];
                            }
                    yv[((i * co + o) * oh + r) * ow + q] = (float)acc;
                }
    return y;
}

/* max |a - b| <= tol * max |b| */
static void expect_close_to_max(const char *what, const Tensor *a, const Tensor *b, double tol) {
    assert_true(tensor_same_shape(a, b));
    const float *av = tensor_data(a), *bv = tensor_data(b);
    double mx = 0, err = 0;
    for (int64_t i = 0; i < tensor_numel(b); i++) {
        mx = fmax(mx, fabs(bv[i]));
        err = fmax(err, fabs((double)av[i] - bv[i]));
    }
    if (!(err <= tol * mx)) fail_msg("%s: max error %.3g > %.3g x max %.3g", what, err, tol, mx);
}

static void expect_identical(const Tensor *a, const Tensor *b) {
    assert_true(tensor_same_shape(a, b));
    assert_memory_equal(tensor_data(a), tensor_data(b), sizeof(float) * (size_t)tensor_numel(a));
}

typedef struct Case {
    int64_t n, c, co, h, w;
    int pt, pb, pl, pr;
    bool bias;
} Case;

static void run_case(const Case *k, uint64_t seed) {
    char what[160];
    Conv2dSpec sp = conv2d_spec(1, 0, 1, 1);
    sp.pad_top = k->pt, sp.pad_bottom = k->pb, sp.pad_left = k->pl, sp.pad_right = k->pr;
    Tensor *x = uniform(4, (int64_t[]){k->n, k->c, k->h, k->w}, 1.7f, seed);
    Tensor *w =
        uniform(4, (int64_t[]){k->co, k->c, 3, 3}, 1.7f * sqrtf(2.0f / (9.0f * k->c)), seed + 1);
    Tensor *b = k->bias ? uniform(1, &k->co, 0.5f, seed + 2) : NULL;
    Tensor *ref = reference(x, w, b, &sp), *im2col = conv2d_forward(x, w, b, &sp);
    assert_ok_ptr(im2col);
    for (int tile = 2; tile <= 4; tile += 2) {
        WinogradFilter *f = conv2d_winograd_filter_new(w, tile);
        assert_ok_ptr(f);
        assert_int_equal(conv2d_winograd_tile(f), tile);
        Tensor *y[2];
        for (int t = 1; t <= 2; t++) {
            omp_set_num_threads(t);
            y[t - 1] = conv2d_winograd_forward(x, f, b, NULL, false, &sp);
            assert_ok_ptr(y[t - 1]);
        }
        snprintf(what, sizeof what,
                 "F(%d,3) n=%lld c=%lld co=%lld %lldx%lld pad %d,%d,%d,%d bias %d", tile,
                 (long long)k->n, (long long)k->c, (long long)k->co, (long long)k->h,
                 (long long)k->w, k->pt, k->pb, k->pl, k->pr, (int)k->bias);
        expect_close_to_max(what, y[0], ref, tolerance(tile));
        expect_close_to_max(what, y[0], im2col, tolerance(tile));
        expect_identical(y[0], y[1]); /* threads never change the arithmetic */
        tensor_free(y[0]);
        tensor_free(y[1]);
        conv2d_winograd_filter_free(f);
    }
    omp_set_num_threads(2);
    tensor_free(x);
    tensor_free(w);
    tensor_free(b);
    tensor_free(ref);
    tensor_free(im2col);
}

static void test_matches_direct(void **state) {
    const Case cases[] = {
        {1, 3, 5, 7, 9, 1, 1, 1, 1, true},     /* odd sizes, few channels */
        {2, 17, 13, 10, 12, 1, 1, 1, 1, true}, /* batch, even sizes */
        {3, 8, 20, 5, 6, 0, 0, 0, 0, false},   /* no padding, partial tiles */
        {1, 40, 33, 15, 16, 0, 2, 1, 0, true}, /* asymmetric padding */
        {2, 24, 30, 29, 26, 1, 1, 1, 1, true}, /* many blocks (per-thread mode) */
        {1, 520, 7, 6, 5, 1, 1, 1, 1, false},  /* two K blocks */
        {1, 6, 4, 1, 1, 1, 1, 1, 1, true},     /* a 1x1 map */
        {1, 16, 16, 2, 40, 2, 2, 0, 0, false}, /* wide padding, flat map */
        {1, 16, 12, 11, 75, 1, 1, 1, 1, true}, /* rows of 8 interior tiles (both sizes) */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_case(&cases[i], 10 + i);
}

static void test_fused_epilogue(void **state) {
    Conv2dSpec sp = conv2d_spec(1, 1, 1, 1);
    Tensor *x = uniform(SHAPE(2, 12, 9, 70), 1.0f, 1); /* edge tiles, rows of 8 */
    Tensor *w = uniform(SHAPE(10, 12, 3, 3), 0.2f, 2), *b = uniform(SHAPE(10), 0.5f, 3);
    Tensor *res = uniform(SHAPE(2, 10, 9, 70), 1.0f, 4);
    Tensor *conv = conv2d_forward(x, w, b, &sp);
    float *cv = tensor_data(conv);
    const float *rv = tensor_data(res);
    for (int64_t i = 0; i < tensor_numel(conv); i++) {
        float v = cv[i] + rv[i];
        cv[i] = v > 0 ? v : 0;
    }
    WinogradFilter *f = conv2d_winograd_filter_new(w, 4);
    Tensor *y = conv2d_winograd_forward(x, f, b, res, true, &sp);
    assert_ok_ptr(y);
    expect_close_to_max("residual + relu", y, conv, tolerance(4));
    /* Not contiguous inputs are accepted: a batch narrowed to its second image. */
    Tensor *x1 = tensor_narrow(x, 0, 1, 1),
           *y1 = conv2d_winograd_forward(x1, f, b, NULL, false, &sp);
    Tensor *ref1 = conv2d_forward(x1, w, b, &sp);
    assert_ok_ptr(y1);
    expect_close_to_max("narrowed input", y1, ref1, tolerance(4));
    tensor_free(x1);
    tensor_free(y1);
    tensor_free(ref1);
    tensor_free(y);
    conv2d_winograd_filter_free(f);
    tensor_free(x);
    tensor_free(w);
    tensor_free(b);
    tensor_free(res);
    tensor_free(conv);
}

static void test_tile_choice(void **state) {
    Tensor *w = tensor_zeros(SHAPE(64, 64, 3, 3)), *w1 = tensor_zeros(SHAPE(64, 64, 1, 1));
    Tensor *thin = tensor_zeros(SHAPE(8, 64, 3, 3));
    Tensor *big = tensor_zeros(SHAPE(1, 64, 32, 32)), *small = tensor_zeros(SHAPE(1, 64, 8, 8));
    Tensor *tiny = tensor_zeros(SHAPE(1, 64, 3, 3));
    Conv2dSpec s1 = conv2d_spec(1, 1, 1, 1), s2 = conv2d_spec(2, 1, 1, 1);
    Conv2dSpec dil = conv2d_spec(1, 2, 2, 1), grp = conv2d_spec(1, 1, 1, 2);
    if (!conv2d_winograd_supported(w, &s1)) {
        tensor_free(w), tensor_free(w1), tensor_free(thin);
        tensor_free(big), tensor_free(small), tensor_free(tiny);
        skip(); /* no AVX2 + FMA */
    }
    assert_int_equal(conv2d_winograd_choose_tile(big, w, &s1), 4);
    assert_int_equal(conv2d_winograd_choose_tile(small, w, &s1), 2); /* F(4,3): 4 of 16 lanes */
    assert_int_equal(conv2d_winograd_choose_tile(tiny, w, &s1), 0);
    assert_int_equal(conv2d_winograd_choose_tile(big, w, &s2), 0);
    assert_int_equal(conv2d_winograd_choose_tile(big, w, &dil), 0);
    assert_int_equal(conv2d_winograd_choose_tile(big, w, &grp), 0);
    assert_int_equal(conv2d_winograd_choose_tile(big, w1, &s1), 0);
    assert_int_equal(conv2d_winograd_choose_tile(big, thin, &s1), 0);
    conv2d_winograd_disable(true);
    assert_int_equal(conv2d_winograd_choose_tile(big, w, &s1), 0);
    conv2d_winograd_disable(false);
    tensor_free(w), tensor_free(w1), tensor_free(thin);
    tensor_free(big), tensor_free(small), tensor_free(tiny);
}

static void test_errors(void **state) {
    Conv2dSpec sp = conv2d_spec(1, 1, 1, 1), s2 = conv2d_spec(2, 1, 1, 1);
    Tensor *w = tensor_zeros(SHAPE(4, 3, 3, 3)), *w5 = tensor_zeros(SHAPE(4, 3, 5, 5));
    Tensor *x = tensor_zeros(SHAPE(1, 3, 6, 6)), *x2 = tensor_zeros(SHAPE(1, 2, 6, 6));
    Tensor *b = tensor_zeros(SHAPE(5)), *res = tensor_zeros(SHAPE(1, 4, 5, 6));
    assert_null(conv2d_winograd_filter_new(w5, 2));
    test_assert_failed(HG_ERR_SHAPE, "conv2d_winograd");
    assert_null(conv2d_winograd_filter_new(w, 3));
    test_assert_failed(HG_ERR_ARG, "conv2d_winograd");
    WinogradFilter *f = conv2d_winograd_filter_new(w, 2);
    assert_ok_ptr(f);
    assert_null(conv2d_winograd_forward(x, NULL, NULL, NULL, false, &sp));
    test_assert_failed(HG_ERR_ARG, "conv2d_winograd");
    assert_null(conv2d_winograd_forward(x, f, NULL, NULL, false, &s2));
    test_assert_failed(HG_ERR_ARG, "conv2d_winograd");
    assert_null(conv2d_winograd_forward(x2, f, NULL, NULL, false, &sp));
    test_assert_failed(HG_ERR_SHAPE, "conv2d_winograd");
    assert_null(conv2d_winograd_forward(x, f, b, NULL, false, &sp));
    test_assert_failed(HG_ERR_SHAPE, "conv2d_winograd");
    assert_null(conv2d_winograd_forward(x, f, NULL, res, false, &sp));
    test_assert_failed(HG_ERR_SHAPE, "conv2d_winograd");
    conv2d_winograd_filter_free(f);
    conv2d_winograd_filter_free(NULL);
    tensor_free(w), tensor_free(w5), tensor_free(x), tensor_free(x2), tensor_free(b);
    tensor_free(res);
}

static void randomize(ParamSet *ps, uint64_t seed) {
    for (int64_t i = 0; i < param_set_size(ps); i++) {
        const ParamEntry *e = param_set_at(ps, i);
        Tensor *t = e->var->value;
        Tensor *r = uniform(t->ndim, t->shape, 1.0f, seed + (uint64_t)i);
        float *v = tensor_data(t);
        const float *rv = tensor_data(r);
        bool var = strstr(e->name, "running_var") != NULL;
        bool gamma = t->ndim == 1 && !var && strstr(e->name, ".weight");
        float scale =
            t->ndim == 4 ? 1.7f / sqrtf((float)(t->shape[1] * t->shape[2] * t->shape[3])) : 0.1f;
        for (int64_t k = 0; k < tensor_numel(t); k++)
            v[k] = var || gamma ? 1.0f + 0.3f * rv[k] : scale * rv[k];
        tensor_free(r);
    }
}

/* The whole resnet18 with and without the Winograd path; then new weights,
 * which the cached filters must follow. Errors grow through 10 convolutions
 * and ReLUs: 1e-4 of the largest feature. */
static void test_backbone_paths(void **state) {
    Backbone *bb = backbone_new(BACKBONE_RESNET18);
    assert_ok_ptr(bb);
    /* Under valgrind (HG_VALGRIND=1, tests/run.sh) a smaller input: memory
     * checking is the point there. 64x48: layer1 takes F(4,3) and layer2
     * F(2,3); 32x24: layer1 F(2,3). */
    const char *vg = getenv("HG_VALGRIND");
    bool small = vg && *vg == '1';
    Tensor *x = uniform(SHAPE(small ? 1 : 2, 3, small ? 32 : 64, small ? 24 : 48), 1.0f, 99);
    int tap = 3;
    for (int round = 0; round < 2; round++) {
        randomize(backbone_params(bb), 200 + (uint64_t)round);
        Tensor *wino = NULL, *direct = NULL;
        assert_ok(backbone_forward(bb, x, 1, &tap, &wino));
        conv2d_winograd_disable(true);
        assert_ok(backbone_forward(bb, x, 1, &tap, &direct));
        conv2d_winograd_disable(false);
        expect_close_to_max("resnet18 layer3", wino, direct, 1e-4);
        tensor_free(wino);
        tensor_free(direct);
    }
    tensor_free(x);
    backbone_free(bb);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_direct), cmocka_unit_test(test_fused_epilogue),
        cmocka_unit_test(test_tile_choice),    cmocka_unit_test(test_errors),
        cmocka_unit_test(test_backbone_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
