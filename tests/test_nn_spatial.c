/* Batch norm, pooling, resizing and blur (nn/batchnorm.h, pool.h, resize.h, blur.h):
 *  - parity with PyTorch / SciPy on tests/fixtures/spatial_{bn,pool,resize,blur}.safetensors
 *    (outputs, input gradients, running statistics) to 1e-5 relative, directly and
 *    through the tape;
 *  - gradient checks (central differences) of batch norm in training and inference
 *    mode, every pool, both resize modes and the blur w.r.t. every input;
 *  - hand-computed small cases and error messages. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/gradcheck.h"
#include "nn/batchnorm.h"
#include "nn/blur.h"
#include "nn/pool.h"
#include "nn/resize.h"
#include "nn/safetensors.h"
#include "tensor/rng.h"
#include "tests/testutil.h"

#define PARITY_TOL 1e-5

/* ------------------------------------------------------------ fixtures */

/* Fixture parity to PARITY_TOL (testutil's test_expect_close). */
static void expect_close(const char *what, const char *name, const Tensor *got,
                         const Tensor *want) {
    test_expect_close(what, name, got, want, PARITY_TOL);
}

/* Runs `y = f(x)` on a tape, back-propagates dout, and compares y and x->grad. */
typedef Var *(*UnaryOp)(Tape *t, Var *x, const void *ctx);

static void expect_tape(const char *name, UnaryOp f, const void *ctx, const Tensor *x,
                        const Tensor *dout, const Tensor *out, const Tensor *dx) {
    Tape *tape = tape_new();
    Var *v = var_new(tensor_clone(x), true);
    Var *y = f(tape, v, ctx);
    if (!y) fail_msg("%s: %s", name, hg_last_error());
    expect_close("tape out", name, y->value, out);
    assert_ok(tape_backward(tape, y, dout));
    expect_close("tape dx", name, v->grad, dx);
    var_free(v);
    tape_free(tape);
}

/* ------------------------------------------------------------ batch norm */

static void test_batchnorm_parity(void **state) {
    (void)state;
    SafetensorsFile *f = test_open_fixture("spatial_bn.safetensors");
    int cases = 0;
    for (int i = 0; i < 10; i++) {
        char name[16];
        snprintf(name, sizeof name, "bn%d", i);
        Tensor *cfg = test_fixture_tensor_opt(f, name, "config");
        if (!cfg) continue;
        const float *c = tensor_data(cfg);
        bool training = c[0] != 0, affine = c[3] != 0;
        float eps = c[1], momentum = c[2];
        Tensor *x = test_fixture_tensor(f, name, "x"), *dout = test_fixture_tensor(f, name, "dout");
        Tensor *w = affine ? test_fixture_tensor(f, name, "weight") : NULL;
        Tensor *b = affine ? test_fixture_tensor(f, name, "bias") : NULL;
        Tensor *rm = test_fixture_tensor(f, name, "running_mean"),
               *rv = test_fixture_tensor(f, name, "running_var");
        Tensor *rm2 = tensor_clone(rm), *rv2 = tensor_clone(rv);
        Tensor *mean, *invstd;
        Tensor *y = batchnorm2d_forward(x, w, b, rm, rv, training, momentum, eps, &mean, &invstd);
        Tensor *want = test_fixture_tensor(f, name, "out"),
               *new_mean = test_fixture_tensor(f, name, "new_mean"),
               *new_var = test_fixture_tensor(f, name, "new_var");
        expect_close("out", name, y, want);
        expect_close("running_mean", name, rm, new_mean);
        expect_close("running_var", name, rv, new_var);
        Tensor *dx, *dw = NULL, *db = NULL, *want_dx = test_fixture_tensor(f, name, "dx");
        assert_ok(batchnorm2d_backward(dout, x, w, mean, invstd, training, &dx, affine ? &dw : NULL,
                                       affine ? &db : NULL));
        expect_close("dx", name, dx, want_dx);
        /* The same through the tape, from the initial running statistics. */
        Tape *tape = tape_new();
        Var *vx = var_new(tensor_clone(x), true);
        Var *vw = affine ? var_new(tensor_clone(w), true) : NULL;
        Var *vb = affine ? var_new(tensor_clone(b), true) : NULL;
        Var *vy = ag_batchnorm2d(tape, vx, vw, vb, rm2, rv2, training, momentum, eps);
        assert_ok_ptr(vy);
        expect_close("tape out", name, vy->value, want);
        expect_close("tape running_mean", name, rm2, new_mean);
        assert_ok(tape_backward(tape, vy, dout));
        expect_close("tape dx", name, vx->grad, want_dx);
        if (affine) {
            Tensor *want_dw = test_fixture_tensor(f, name, "dweight"),
                   *want_db = test_fixture_tensor(f, name, "dbias");
            expect_close("dweight", name, dw, want_dw);
            expect_close("dbias", name, db, want_db);
            expect_close("tape dweight", name, vw->grad, want_dw);
            expect_close("tape dbias", name, vb->grad, want_db);
            tensor_free(want_dw);
            tensor_free(want_db);
        }
        var_free(vx);
        var_free(vw);
        var_free(vb);
        tape_free(tape);
        Tensor *all[] = {cfg,    x, dout, w,        b,       rm,      rv, rm2, rv2, mean,
                         invstd, y, want, new_mean, new_var, want_dx, dx, dw,  db};
        for (size_t k = 0; k < sizeof all / sizeof *all; k++) tensor_free(all[k]);
        cases++;
    }
    assert_int_equal(cases, 4);
    safetensors_close(f);
}

typedef struct {
    bool training;
} BnCtx;

static Var *gc_bn(Tape *t, Var **in, void *ctx) {
    const BnCtx *c = ctx;
    Tensor *rm = tensor_zeros(SHAPE(3)), *rv = tensor_full(SHAPE(3), 0.8f);
    /* Training mode leaves the running statistics alone here (NULL): gradcheck
     * evaluates the function many times. */
    Var *y = ag_batchnorm2d(t, in[0], in[1], in[2], c->training ? NULL : rm,
                            c->training ? NULL : rv, c->training, 0.1f, 1e-3f);
    tensor_free(rm);
    tensor_free(rv);
    return y;
}

static void test_batchnorm_gradcheck(void **state) {
    (void)state;
    Rng r = rng_new(31);
    for (int training = 0; training < 2; training++) {
        Var *in[3] = {var_new(tensor_normal(SHAPE(2, 3, 3, 4), 0.3f, 1.5f, &r), true),
                      var_new(tensor_uniform(SHAPE(3), 0.5f, 1.5f, &r), true),
                      var_new(tensor_normal(SHAPE(3), 0, 1, &r), true)};
        BnCtx ctx = {training};
        GradcheckReport rep;
        /* Training-mode gradients w.r.t. x are small (the batch statistics remove
         * most of dout), so the float32 rounding of y is a visible part of the
         * numeric difference: a step of 0.02 and a tolerance of 2e-3 (the exact
         * values are checked against PyTorch to 1e-5 in test_batchnorm_parity). */
        GradcheckOptions opt = gradcheck_default_options();
        opt.eps = 0.02;
        opt.tolerance = 2e-3;
        hg_status st = gradcheck(gc_bn, &ctx, 3, in, &opt, &rep);
        if (st != HG_OK) fail_msg("training %d: %s", training, hg_last_error());
        assert_int_equal(rep.checked, 24 * 3 + 6);
        for (int i = 0; i < 3; i++) var_free(in[i]);
    }
}

static void test_batchnorm_errors(void **state) {
    (void)state;
    Tensor *x = tensor_zeros(SHAPE(1, 3, 1, 1)), *w = tensor_ones(SHAPE(4));
    hg_clear_error();
    assert_null(batchnorm2d_forward(x, NULL, NULL, NULL, NULL, true, 0.1f, 1e-5f, NULL, NULL));
    assert_non_null(strstr(hg_last_error(), "more than 1 value per channel"));
    assert_null(batchnorm2d_forward(x, NULL, NULL, NULL, NULL, false, 0.1f, 1e-5f, NULL, NULL));
    assert_non_null(strstr(hg_last_error(), "needs running_mean"));
    assert_null(batchnorm2d_forward(x, w, NULL, NULL, NULL, true, 0.1f, 1e-5f, NULL, NULL));
    assert_non_null(strstr(hg_last_error(), "weight [4] must be [3]"));
    tensor_free(x);
    tensor_free(w);
}

/* ------------------------------------------------------------ pools */

static Pool2dSpec pool_spec(const Tensor *cfg) {
    const float *c = tensor_data(cfg);
    Pool2dSpec s = {(int)c[0], (int)c[1], (int)c[2], (int)c[3],
                    (int)c[4], (int)c[5], c[6] != 0, c[7] != 0};
    return s;
}

static Var *op_maxpool(Tape *t, Var *x, const void *ctx) {
    return ag_maxpool2d(t, x, ctx);
}
static Var *op_avgpool(Tape *t, Var *x, const void *ctx) {
    return ag_avgpool2d(t, x, ctx);
}
static Var *op_adaptive(Tape *t, Var *x, const void *ctx) {
    const int64_t *size = ctx;
    return ag_adaptive_avgpool2d(t, x, size[0], size[1]);
}

static void test_pool_parity(void **state) {
    (void)state;
    SafetensorsFile *f = test_open_fixture("spatial_pool.safetensors");
    Tensor *x = test_fixture_tensor(f, NULL, "x");
    int cases = 0;
    for (int kind = 0; kind < 3; kind++) {
        for (int i = 0; i < 10; i++) {
            char name[24];
            snprintf(name, sizeof name, "%s%d",
                     (const char *[]){"maxpool", "avgpool", "adaptive"}[kind], i);
            Tensor *cfg = test_fixture_tensor_opt(f, name, "config");
            if (!cfg) continue;
            Tensor *dout = test_fixture_tensor(f, name, "dout"),
                   *out = test_fixture_tensor(f, name, "out"),
                   *dx = test_fixture_tensor(f, name, "dx");
            Tensor *y, *g;
            if (kind < 2) {
                Pool2dSpec s = pool_spec(cfg);
                y = kind == 0 ? maxpool2d_forward(x, &s) : avgpool2d_forward(x, &s);
                g = kind == 0 ? maxpool2d_backward(dout, x, &s) : avgpool2d_backward(dout, x, &s);
                int64_t oh, ow;
                assert_ok(pool2d_output_size(x->shape[2], x->shape[3], &s, &oh, &ow));
                assert_int_equal(oh, out->shape[2]);
                assert_int_equal(ow, out->shape[3]);
                expect_tape(name, kind == 0 ? op_maxpool : op_avgpool, &s, x, dout, out, dx);
            } else {
                int64_t size[2] = {(int64_t)tensor_data(cfg)[0], (int64_t)tensor_data(cfg)[1]};
                y = adaptive_avgpool2d_forward(x, size[0], size[1]);
                g = adaptive_avgpool2d_backward(dout, x);
                expect_tape(name, op_adaptive, size, x, dout, out, dx);
            }
            expect_close("out", name, y, out);
            expect_close("dx", name, g, dx);
            Tensor *all[] = {cfg, dout, out, dx, y, g};
            for (size_t k = 0; k < sizeof all / sizeof *all; k++) tensor_free(all[k]);
            cases++;
        }
    }
    assert_int_equal(cases, 18);
    tensor_free(x);
    safetensors_close(f);
}

/* Hand-computed: max pool 3x3 s2 p1 and the two average divisors. */
static void test_pool_small(void **state) {
    (void)state;
    float v[16];
    for (int i = 0; i < 16; i++) v[i] = (float)i;
    Tensor *x = tensor_from_data(SHAPE(1, 1, 4, 4), v);
    Pool2dSpec s = pool2d_spec(3, 2, 1);
    Tensor *m = maxpool2d_forward(x, &s);
    test_assert_values(m, (float[]){5, 7, 13, 15}, 4, 0);
    Tensor *a = avgpool2d_forward(x, &s);
    /* Windows: rows/cols -1..1 hold 0,1,4,5 (sum 10); rows -1..1, cols 1..3 hold
     * 1,2,3,5,6,7 (24); rows 1..3, cols -1..1: 4,5,8,9,12,13 (51); the last is
     * all in-image: 5,6,7,9,10,11,13,14,15 (90). Divisor 9, or the in-image count. */
    test_assert_values(a, (float[]){10.0f / 9, 24.0f / 9, 51.0f / 9, 90.0f / 9}, 4, 1e-6);
    s.exclude_pad = true;
    Tensor *e = avgpool2d_forward(x, &s);
    test_assert_values(e, (float[]){10.0f / 4, 24.0f / 6, 51.0f / 6, 90.0f / 9}, 4, 1e-6);
    Tensor *gp = global_avgpool2d_forward(x);
    assert_int_equal(gp->ndim, 4);
    test_assert_values(gp, (float[]){7.5f}, 1, 1e-6);
    Tensor *gd = global_avgpool2d_backward(gp, x);
    for (int i = 0; i < 16; i++) assert_float_equal(tensor_data(gd)[i], 7.5f / 16, 1e-7);
    /* errors */
    hg_clear_error();
    Pool2dSpec bad = pool2d_spec(2, 2, 2);
    assert_null(maxpool2d_forward(x, &bad));
    assert_non_null(strstr(hg_last_error(), "at most half the kernel"));
    Tensor *all[] = {x, m, a, e, gp, gd};
    for (size_t k = 0; k < sizeof all / sizeof *all; k++) tensor_free(all[k]);
}

typedef struct {
    int kind; /* 0 max, 1 avg, 2 adaptive, 3 global */
    Pool2dSpec spec;
    int64_t oh, ow;
} PoolCtx;

static Var *gc_pool(Tape *t, Var **in, void *ctx) {
    const PoolCtx *c = ctx;
    switch (c->kind) {
    case 0:
        return ag_maxpool2d(t, in[0], &c->spec);
    case 1:
        return ag_avgpool2d(t, in[0], &c->spec);
    case 2:
        return ag_adaptive_avgpool2d(t, in[0], c->oh, c->ow);
    default:
        return ag_global_avgpool2d(t, in[0]);
    }
}

/* Distinct values 0.2 apart (random order), so that no maximum changes under
 * the gradcheck step 1e-2. */
static Var *grid_input(Rng *r, int64_t n, int64_t c, int64_t h, int64_t w) {
    int64_t count = n * c * h * w;
    int64_t *perm = malloc(sizeof(int64_t) * (size_t)count);
    float *v = malloc(sizeof(float) * (size_t)count);
    rng_permutation(r, perm, count);
    for (int64_t i = 0; i < count; i++) v[i] = ((float)perm[i] - (float)count / 2) * 0.2f;
    Var *x = var_new(tensor_from_data(SHAPE(n, c, h, w), v), true);
    free(perm);
    free(v);
    return x;
}

static void test_pool_gradcheck(void **state) {
    (void)state;
    Rng r = rng_new(8);
    PoolCtx cases[] = {
        {0, pool2d_spec(3, 2, 1), 0, 0},
        {0, {2, 3, 1, 2, 1, 1, true, false}, 0, 0},
        {1, pool2d_spec(3, 2, 1), 0, 0},
        {1, {3, 3, 2, 2, 1, 1, true, true}, 0, 0},
        {1, {2, 2, 0, 0, 0, 0, false, false}, 0, 0},
        {2, {0}, 3, 4},
        {2, {0}, 5, 2},
        {3, {0}, 1, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        /* Every pool is linear in x while no maximum changes, so central differences
         * are exact for any step: 0.05 stays below half the 0.2 spacing of the max
         * pool inputs, 0.5 for the averages keeps float32 rounding negligible. */
        GradcheckOptions opt = gradcheck_default_options();
        opt.eps = cases[i].kind == 0 ? 0.05 : 0.5;
        Var *in[1] = {grid_input(&r, 2, 2, 7, 8)};
        hg_status st = gradcheck(gc_pool, &cases[i], 1, in, &opt, NULL);
        if (st != HG_OK) fail_msg("pool case %zu: %s", i, hg_last_error());
        var_free(in[0]);
    }
}

/* ------------------------------------------------------------ resize */

typedef struct {
    int64_t oh, ow;
    bool nearest, align_corners;
} ResizeCtx;

static Var *op_resize(Tape *t, Var *x, const void *ctx) {
    const ResizeCtx *c = ctx;
    return c->nearest ? ag_resize_nearest(t, x, c->oh, c->ow)
                      : ag_resize_bilinear(t, x, c->oh, c->ow, c->align_corners);
}

static void test_resize_parity(void **state) {
    (void)state;
    SafetensorsFile *f = test_open_fixture("spatial_resize.safetensors");
    Tensor *x = test_fixture_tensor(f, NULL, "x");
    int cases = 0;
    for (int i = 0; i < 100; i++) {
        char name[24];
        snprintf(name, sizeof name, "resize%02d", i);
        Tensor *cfg = test_fixture_tensor_opt(f, name, "config");
        if (!cfg) continue;
        const float *c = tensor_data(cfg);
        ResizeCtx ctx = {(int64_t)c[0], (int64_t)c[1], c[2] != 0, c[3] != 0};
        Tensor *dout = test_fixture_tensor(f, name, "dout"),
               *out = test_fixture_tensor(f, name, "out"), *dx = test_fixture_tensor(f, name, "dx");
        Tensor *y = ctx.nearest ? resize_nearest_forward(x, ctx.oh, ctx.ow)
                                : resize_bilinear_forward(x, ctx.oh, ctx.ow, ctx.align_corners);
        Tensor *g = ctx.nearest ? resize_nearest_backward(dout, x->shape[2], x->shape[3])
                                : resize_bilinear_backward(dout, x->shape[2], x->shape[3],
                                                           ctx.align_corners);
        expect_close("out", name, y, out);
        expect_close("dx", name, g, dx);
        expect_tape(name, op_resize, &ctx, x, dout, out, dx);
        Tensor *all[] = {cfg, dout, out, dx, y, g};
        for (size_t k = 0; k < sizeof all / sizeof *all; k++) tensor_free(all[k]);
        cases++;
    }
    assert_int_equal(cases, 15);
    tensor_free(x);
    safetensors_close(f);
}

static Var *gc_resize(Tape *t, Var **in, void *ctx) {
    return op_resize(t, in[0], ctx);
}

static void test_resize_gradcheck(void **state) {
    (void)state;
    Rng r = rng_new(12);
    ResizeCtx cases[] = {{9, 11, false, false}, {9, 11, false, true}, {3, 2, false, false},
                         {3, 2, false, true},   {9, 11, true, false}, {3, 2, true, false}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        GradcheckOptions opt = gradcheck_default_options();
        opt.eps = 0.5; /* linear in x: exact for any step */
        Var *in[1] = {var_new(tensor_normal(SHAPE(2, 2, 4, 5), 0, 1, &r), true)};
        hg_status st = gradcheck(gc_resize, &cases[i], 1, in, &opt, NULL);
        if (st != HG_OK) fail_msg("resize case %zu: %s", i, hg_last_error());
        var_free(in[0]);
    }
}

/* Hand-computed 2 -> 4 along one row. align_corners = false: src = (d + 0.5)/2 - 0.5
 * = -0.25 (clamped to 0), 0.25, 0.75, 1.25 (i1 clamped); true: d/3. */
static void test_resize_small(void **state) {
    (void)state;
    Tensor *x = tensor_from_data(SHAPE(1, 1, 1, 2), (float[]){0, 4});
    Tensor *a = resize_bilinear_forward(x, 1, 4, false);
    test_assert_values(a, (float[]){0, 1, 3, 4}, 4, 1e-6);
    Tensor *b = resize_bilinear_forward(x, 1, 4, true);
    test_assert_values(b, (float[]){0, 4.0f / 3, 8.0f / 3, 4}, 4, 1e-6);
    Tensor *n = resize_nearest_forward(x, 1, 3); /* floor(d * 2/3) = 0, 0, 1 */
    test_assert_values(n, (float[]){0, 0, 4}, 3, 0);
    hg_clear_error();
    assert_null(resize_bilinear_forward(x, 0, 4, false));
    assert_non_null(strstr(hg_last_error(), "resize_bilinear: cannot resize [1,1,1,2] to 0x4"));
    tensor_free(x);
    tensor_free(a);
    tensor_free(b);
    tensor_free(n);
}

/* ------------------------------------------------------------ blur */

static void test_blur_parity(void **state) {
    (void)state;
    SafetensorsFile *f = test_open_fixture("spatial_blur.safetensors");
    int cases = 0;
    for (int i = 0; i < 10; i++) {
        char name[16];
        snprintf(name, sizeof name, "blur%d", i);
        Tensor *cfg = test_fixture_tensor_opt(f, name, "config");
        if (!cfg) continue;
        double sigma = tensor_data(cfg)[0], truncate = tensor_data(cfg)[1];
        Tensor *x = test_fixture_tensor(f, name, "x"), *want = test_fixture_tensor(f, name, "out");
        Tensor *y = gaussian_blur2d_forward(x, sigma, truncate);
        expect_close("out", name, y, want);
        /* The same plane inside a [2,1,H,W] batch (both planes blurred alike). */
        int64_t h = x->shape[0], w = x->shape[1];
        Tensor *one = tensor_reshape(x, SHAPE(1, 1, h, w));
        Tensor *two = tensor_expand(one, SHAPE(2, 1, h, w));
        Tensor *yb = gaussian_blur2d_forward(two, sigma, truncate);
        assert_ok_ptr(yb);
        for (int k = 0; k < 2; k++) {
            Tensor *plane = tensor_select(yb, 0, k);
            Tensor *flat = tensor_reshape(plane, SHAPE(h, w));
            expect_close("batched out", name, flat, want);
            tensor_free(flat);
            tensor_free(plane);
        }
        Tensor *all[] = {cfg, x, want, y, one, two, yb};
        for (size_t k = 0; k < sizeof all / sizeof *all; k++) tensor_free(all[k]);
        cases++;
    }
    assert_int_equal(cases, 5);
    safetensors_close(f);
}

static void test_blur_kernel(void **state) {
    (void)state;
    assert_int_equal(gaussian_radius(4.0, 4.0), 16);
    assert_int_equal(gaussian_radius(1.5, 4.0), 6);
    assert_int_equal(gaussian_radius(0.0, 4.0), 0);
    double k[33], sum = 0;
    gaussian_kernel1d(4.0, 16, k);
    for (int i = 0; i < 33; i++) sum += k[i];
    assert_float_equal(sum, 1.0, 1e-12);
    assert_float_equal(k[16 + 4] / k[16], exp(-0.5), 1e-12);
    /* sigma 0 is the identity */
    Tensor *x = tensor_arange(0, 12, 1), *m = tensor_reshape(x, SHAPE(3, 4));
    Tensor *y = gaussian_blur2d_forward(m, 0.0, 4.0);
    test_assert_close(y, m, 0, 0);
    tensor_free(x);
    tensor_free(m);
    tensor_free(y);
}

typedef struct {
    double sigma, truncate;
} BlurCtx;

static Var *gc_blur(Tape *t, Var **in, void *ctx) {
    const BlurCtx *c = ctx;
    return ag_gaussian_blur2d(t, in[0], c->sigma, c->truncate);
}

static void test_blur_gradcheck(void **state) {
    (void)state;
    Rng r = rng_new(4);
    /* sigma 4 on a 6x5 map: the 33 taps wrap through several reflections. */
    BlurCtx cases[] = {{1.5, 4.0}, {4.0, 4.0}, {1.0, 2.0}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        GradcheckOptions opt = gradcheck_default_options();
        opt.eps = 0.5; /* linear in x: exact for any step */
        Var *in[1] = {var_new(tensor_normal(SHAPE(2, 1, 6, 5), 0, 1, &r), true)};
        hg_status st = gradcheck(gc_blur, &cases[i], 1, in, &opt, NULL);
        if (st != HG_OK) fail_msg("blur case %zu: %s", i, hg_last_error());
        var_free(in[0]);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batchnorm_parity), cmocka_unit_test(test_batchnorm_gradcheck),
        cmocka_unit_test(test_batchnorm_errors), cmocka_unit_test(test_pool_parity),
        cmocka_unit_test(test_pool_small),       cmocka_unit_test(test_pool_gradcheck),
        cmocka_unit_test(test_resize_parity),    cmocka_unit_test(test_resize_gradcheck),
        cmocka_unit_test(test_resize_small),     cmocka_unit_test(test_blur_parity),
        cmocka_unit_test(test_blur_kernel),      cmocka_unit_test(test_blur_gradcheck),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
