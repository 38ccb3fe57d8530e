/* conv2d (nn/conv2d.h) and zero padding (nn/padding.h):
 *  - parity with PyTorch on every configuration of tests/fixtures/spatial_conv*.safetensors
 *    (groups 1/2/depthwise, strides 1/2/3, dilation 2, bias or not, asymmetric and
 *    TF "same" padding on odd and even sizes): output, dx, dw, db to 1e-5 relative,
 *    through conv2d_forward/backward and through the tape (ag_conv2d);
 *  - random shapes against a naive double-precision loop (forward and backward),
 *    and the portable depthwise kernel against the AVX2 one;
 *  - gradient checks (central differences) of every fixture configuration w.r.t.
 *    x, w and b; the no-grad mode; error messages; the TF "same" rule; pad2d. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/gradcheck.h"
#include "nn/conv2d.h"
#include "nn/conv2d_kernels.h"
#include "nn/padding.h"
#include "nn/safetensors.h"
#include "tensor/rng.h"
#include "tensor/cpu.h"
#include "tests/testutil.h"

#define PARITY_TOL 1e-5

/* ------------------------------------------------------------ fixtures */

/* Fixture parity to PARITY_TOL (testutil's test_expect_close). */
static void expect_close(const char *what, const char *name, const Tensor *got,
                         const Tensor *want) {
    test_expect_close(what, name, got, want, PARITY_TOL);
}

static Conv2dSpec spec_from_config(const Tensor *cfg) {
    const float *c = tensor_data(cfg);
    Conv2dSpec s = {(int)c[0], (int)c[1], (int)c[2], (int)c[3], (int)c[4],
                    (int)c[5], (int)c[6], (int)c[7], (int)c[8], c[9] != 0};
    return s;
}

typedef struct ConvCase {
    char name[16];
    Conv2dSpec spec;
    Tensor *x, *w, *b, *dout, *out, *dx, *dw, *db;
} ConvCase;

static bool load_case(const SafetensorsFile *f, int i, ConvCase *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "conv%02d", i);
    Tensor *cfg = test_fixture_tensor_opt(f, c->name, "config");
    if (!cfg) return false;
    c->spec = spec_from_config(cfg);
    tensor_free(cfg);
    c->x = test_fixture_tensor(f, c->name, "x");
    c->w = test_fixture_tensor(f, c->name, "w");
    c->b = test_fixture_tensor_opt(f, c->name, "b");
    c->dout = test_fixture_tensor(f, c->name, "dout");
    c->out = test_fixture_tensor(f, c->name, "out");
    c->dx = test_fixture_tensor(f, c->name, "dx");
    c->dw = test_fixture_tensor(f, c->name, "dw");
    c->db = test_fixture_tensor_opt(f, c->name, "db");
    return true;
}

static void free_case(ConvCase *c) {
    Tensor *all[] = {c->x, c->w, c->b, c->dout, c->out, c->dx, c->dw, c->db};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) tensor_free(all[i]);
}

static const char *const conv_files[] = {"spatial_conv.safetensors", "spatial_conv_dw.safetensors"};

/* Calls fn on every case of both fixture files; returns the number of cases. */
static int for_each_case(void (*fn)(ConvCase *c)) {
    int count = 0;
    for (int f = 0; f < 2; f++) {
        SafetensorsFile *file = test_open_fixture(conv_files[f]);
        for (int i = 0; i < 100; i++) {
            ConvCase c;
            if (!load_case(file, i, &c)) continue;
            fn(&c);
            free_case(&c);
            count++;
        }
        safetensors_close(file);
    }
    return count;
}

/* ------------------------------------------------------------ parity */

static void parity_direct(ConvCase *c) {
    Tensor *out = conv2d_forward(c->x, c->w, c->b, &c->spec);
    assert_ok_ptr(out);
    expect_close("out", c->name, out, c->out);
    tensor_free(out);
    Tensor *dx, *dw, *db;
    assert_ok(conv2d_backward(c->dout, c->x, c->w, &c->spec, &dx, &dw, c->b ? &db : NULL));
    expect_close("dx", c->name, dx, c->dx);
    expect_close("dw", c->name, dw, c->dw);
    if (c->b) expect_close("db", c->name, db, c->db);
    tensor_free(dx);
    tensor_free(dw);
    if (c->b) tensor_free(db);
}

static void test_parity_torch(void **state) {
    (void)state;
    assert_int_equal(for_each_case(parity_direct), 25);
}

static void parity_tape(ConvCase *c) {
    Tape *tape = tape_new();
    Var *x = var_new(tensor_clone(c->x), true), *w = var_new(tensor_clone(c->w), true);
    Var *b = c->b ? var_new(tensor_clone(c->b), true) : NULL;
    Var *y = ag_conv2d(tape, x, w, b, &c->spec);
    assert_ok_ptr(y);
    expect_close("tape out", c->name, y->value, c->out);
    assert_ok(tape_backward(tape, y, c->dout));
    expect_close("tape dx", c->name, x->grad, c->dx);
    expect_close("tape dw", c->name, w->grad, c->dw);
    if (b) expect_close("tape db", c->name, b->grad, c->db);
    var_free(x);
    var_free(w);
    var_free(b);
    tape_free(tape);
}

static void test_parity_tape(void **state) {
    (void)state;
    assert_int_equal(for_each_case(parity_tape), 25);
}

/* The portable depthwise kernel on the fixture cases (the default path on this
 * CPU is the AVX2 one). */
static void parity_portable(ConvCase *c) {
    Conv2dGeom g;
    assert_ok(conv2d_geometry("test", c->x, c->w, &c->spec, &g));
    if (!(g.groups > 1 && g.groups == g.c_in && g.c_in == g.c_out)) return;
    Tensor *out = tensor_empty(SHAPE(g.n, g.c_out, g.oh, g.ow));
    assert_ok(conv2d_depthwise_forward(tensor_data(out), tensor_data(c->x), tensor_data(c->w),
                                       c->b ? tensor_data(c->b) : NULL, &g, true));
    expect_close("portable out", c->name, out, c->out);
    tensor_free(out);
}

static void test_parity_depthwise_portable(void **state) {
    (void)state;
    for_each_case(parity_portable);
}

/* ------------------------------------------------------------ naive reference */

/* out, dx, dw, db by the definition, in double. dout may be NULL (forward only). */
static void naive_conv(const Conv2dGeom *g, const float *x, const float *w, const float *b,
                       const float *dout, double *out, double *dx, double *dw, double *db) {
    int64_t cin_g = g->c_in / g->groups, cout_g = g->c_out / g->groups;
    if (dout) {
        memset(dx, 0, sizeof(double) * (size_t)(g->n * g->c_in * g->h * g->w));
        memset(dw, 0, sizeof(double) * (size_t)(g->c_out * cin_g * g->kh * g->kw));
        memset(db, 0, sizeof(double) * (size_t)g->c_out);
    }
    for (int64_t n = 0; n < g->n; n++)
        for (int64_t o = 0; o < g->c_out; o++)
            for (int64_t y = 0; y < g->oh; y++)
                for (int64_t xx = 0; xx < g->ow; xx++) {
                    int64_t oi = ((n * g->c_out + o) * g->oh + y) * g->ow + xx;
                    double s = b ? b[o] : 0, d = dout ? dout[oi] : 0;
                    if (dout) db[o] += d;
                    for (int64_t c = 0; c < cin_g; c++)
                        for (int64_t i = 0; i < g->kh; i++)
                            for (int64_t j = 0; j < g->kw; j++) {
                                int64_t iy = y * g->sh - g->pt + i * g->dh;
                                int64_t ix = xx * g->sw - g->pl + j * g->dw;
                                if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w) continue;
                                int64_t xi =
                                    ((n * g->c_in + (o / cout_g) * cin_g + c) * g->h + iy) * g->w +
                                    ix;
                                int64_t wi = ((o * cin_g + c) * g->kh + i) * g->kw + j;
                                s += (double)w[wi] * x[xi];
                                if (dout) {
                                    dx[xi] += d * w[wi];
                                    dw[wi] += d * x[xi];
                                }
                            }
                    out[oi] = s;
                }
}

static double rel_diff(const float *got, const double *want, int64_t n) {
    double diff = 0, ref = 1e-30;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs(got[i] - want[i]);
        if (d > diff || isnan(d)) diff = isnan(d) ? INFINITY : d;
        if (fabs(want[i]) > ref) ref = fabs(want[i]);
    }
    return diff / ref;
}

static int rand_int(Rng *r, int lo, int hi) { /* inclusive */
    return lo + (int)rng_below(r, (uint64_t)(hi - lo + 1));
}

/* Random shapes, kernels, strides (1-3), dilations, paddings and groups (plain,
 * grouped, depthwise; wide rows for the AVX2 blocks), against naive_conv. */
static void test_random_vs_naive(void **state) {
    (void)state;
    Rng r = rng_new(77);
    int tested = 0, depthwise = 0;
    for (int iter = 0; iter < 150; iter++) {
        int kind = rand_int(&r, 0, 2); /* 0 plain, 1 grouped, 2 depthwise */
        int groups = kind == 0 ? 1 : kind == 1 ? 2 : rand_int(&r, 2, 5);
        int cin_g = kind == 2 ? 1 : rand_int(&r, 1, 3);
        int cout_g = kind == 2 ? 1 : rand_int(&r, 1, 3);
        int kh = rand_int(&r, 1, 5), kw = iter % 7 == 0 ? kh : rand_int(&r, 1, 5);
        Conv2dSpec spec = {rand_int(&r, 1, 3),
                           rand_int(&r, 1, 3),
                           rand_int(&r, 1, 2),
                           rand_int(&r, 1, 2),
                           groups,
                           rand_int(&r, 0, 2),
                           rand_int(&r, 0, 2),
                           rand_int(&r, 0, 2),
                           rand_int(&r, 0, 2),
                           rand_int(&r, 0, 3) == 0};
        int64_t n = rand_int(&r, 1, 2), h = rand_int(&r, 1, 14);
        int64_t w = iter % 3 == 0 ? rand_int(&r, 30, 80) : rand_int(&r, 1, 14);
        Tensor *x = tensor_normal(SHAPE(n, (int64_t)cin_g * groups, h, w), 0, 1, &r);
        Tensor *wt = tensor_normal(SHAPE((int64_t)cout_g * groups, cin_g, kh, kw), 0, 1, &r);
        Tensor *b = iter % 2 ? tensor_normal(SHAPE((int64_t)cout_g * groups), 0, 1, &r) : NULL;
        Conv2dGeom g;
        hg_status st = conv2d_geometry("test", x, wt, &spec, &g);
        Tensor *out = conv2d_forward(x, wt, b, &spec);
        if (st != HG_OK) { /* kernel larger than the padded input: both refuse */
            assert_null(out);
        } else {
            assert_ok_ptr(out);
            int64_t no = tensor_numel(out), nx = tensor_numel(x), nw = tensor_numel(wt);
            Tensor *dout = tensor_normal(out->ndim, out->shape, 0, 1, &r);
            double *ref = malloc(sizeof(double) * (size_t)(no + nx + nw + g.c_out));
            double *rdx = ref + no, *rdw = rdx + nx, *rdb = rdw + nw;
            naive_conv(&g, tensor_data(x), tensor_data(wt), b ? tensor_data(b) : NULL,
                       tensor_data(dout), ref, rdx, rdw, rdb);
            char what[160];
            snprintf(what, sizeof what,
                     "iter %d: x [%lld,%d,%lld,%lld] w [%d,%d,%d,%d] s %d,%d d %d,%d g %d "
                     "pad %d,%d,%d,%d same %d",
                     iter, (long long)n, cin_g * groups, (long long)h, (long long)w,
                     cout_g * groups, cin_g, kh, kw, spec.stride_h, spec.stride_w, spec.dilation_h,
                     spec.dilation_w, groups, spec.pad_top, spec.pad_bottom, spec.pad_left,
                     spec.pad_right, spec.tf_same);
            if (rel_diff(tensor_data(out), ref, no) > PARITY_TOL) fail_msg("%s: forward", what);
            Tensor *dx, *dw, *db = NULL;
            assert_ok(conv2d_backward(dout, x, wt, &spec, &dx, &dw, b ? &db : NULL));
            if (rel_diff(tensor_data(dx), rdx, nx) > PARITY_TOL) fail_msg("%s: dx", what);
            if (rel_diff(tensor_data(dw), rdw, nw) > PARITY_TOL) fail_msg("%s: dw", what);
            if (b && rel_diff(tensor_data(db), rdb, g.c_out) > PARITY_TOL) fail_msg("%s: db", what);
            if (kind == 2) {
                float *port = malloc(sizeof(float) * (size_t)no);
                assert_ok(conv2d_depthwise_forward(port, tensor_data(x), tensor_data(wt),
                                                   b ? tensor_data(b) : NULL, &g, true));
                if (rel_diff(port, ref, no) > PARITY_TOL) fail_msg("%s: portable forward", what);
                free(port);
                depthwise++;
            }
            free(ref);
            tensor_free(dout);
            tensor_free(dx);
            tensor_free(dw);
            tensor_free(db);
            tested++;
        }
        tensor_free(out);
        tensor_free(x);
        tensor_free(wt);
        tensor_free(b);
    }
    assert_true(tested > 100);
    assert_true(depthwise > 30);
}

/* Planes large enough for the depthwise kernels to work in bands of output rows
 * (AVX2 and portable), against naive_conv. */
static void test_depthwise_bands(void **state) {
    (void)state;
    Rng r = rng_new(21);
    Conv2dSpec specs[] = {conv2d_spec(1, 1, 1, 3), conv2d_spec(2, 1, 1, 3),
                          conv2d_spec_same(2, 1, 3), conv2d_spec(1, 6, 2, 3),
                          conv2d_spec_same(1, 1, 3)};
    int64_t ks[] = {3, 3, 5, 7, 5};
    for (int i = 0; i < 5; i++) {
        Tensor *x = tensor_normal(SHAPE(1, 3, 151, 97), 0, 1, &r);
        Tensor *w = tensor_normal(SHAPE(3, 1, ks[i], ks[i]), 0, 1, &r);
        Tensor *b = tensor_normal(SHAPE(3), 0, 1, &r);
        Conv2dGeom g;
        assert_ok(conv2d_geometry("test", x, w, &specs[i], &g));
        Tensor *out = conv2d_forward(x, w, b, &specs[i]);
        assert_ok_ptr(out);
        int64_t no = tensor_numel(out);
        double *ref = malloc(sizeof(double) * (size_t)no);
        float *port = malloc(sizeof(float) * (size_t)no);
        naive_conv(&g, tensor_data(x), tensor_data(w), tensor_data(b), NULL, ref, NULL, NULL, NULL);
        assert_ok(conv2d_depthwise_forward(port, tensor_data(x), tensor_data(w), tensor_data(b), &g,
                                           true));
        if (rel_diff(tensor_data(out), ref, no) > PARITY_TOL) fail_msg("case %d: forward", i);
        if (rel_diff(port, ref, no) > PARITY_TOL) fail_msg("case %d: portable forward", i);
        free(ref);
        free(port);
        tensor_free(out);
        tensor_free(x);
        tensor_free(w);
        tensor_free(b);
    }
}

/* The 1x1 path, AVX2 and portable (GEMM), against naive_conv: a batch of 3; and
 * groups of a map wider than one task (192 columns) with a 20-column tail. */
static void test_1x1_paths(void **state) {
    (void)state;
    Rng r = rng_new(5);
    int64_t shapes[2][6] = {{3, 16, 5, 7, 24, 1}, {2, 6, 4, 59, 9, 3}}; /* n c h w cout groups */
    for (int i = 0; i < 2; i++) {
        const int64_t *s = shapes[i];
        Tensor *x = tensor_normal(SHAPE(s[0], s[1], s[2], s[3]), 0, 1, &r);
        Tensor *w = tensor_normal(SHAPE(s[4], s[1] / s[5], 1, 1), 0, 1, &r);
        Tensor *b = tensor_normal(SHAPE(s[4]), 0, 1, &r);
        Conv2dSpec spec = conv2d_spec(1, 0, 1, (int)s[5]);
        Conv2dGeom g;
        assert_ok(conv2d_geometry("test", x, w, &spec, &g));
        Tensor *out = conv2d_forward(x, w, b, &spec);
        assert_ok_ptr(out);
        int64_t no = tensor_numel(out);
        double *ref = malloc(sizeof(double) * (size_t)no);
        float *port = malloc(sizeof(float) * (size_t)no);
        naive_conv(&g, tensor_data(x), tensor_data(w), tensor_data(b), NULL, ref, NULL, NULL, NULL);
        assert_ok(
            conv2d_1x1_forward(port, tensor_data(x), tensor_data(w), tensor_data(b), &g, true));
        if (rel_diff(tensor_data(out), ref, no) > PARITY_TOL) fail_msg("case %d: forward", i);
        if (rel_diff(port, ref, no) > PARITY_TOL) fail_msg("case %d: portable forward", i);
        free(ref);
        free(port);
        tensor_free(out);
        tensor_free(x);
        tensor_free(w);
        tensor_free(b);
    }
}

/* ------------------------------------------------------------ gradcheck */

typedef struct {
    Conv2dSpec spec;
} GcCtx;

static Var *gc_conv(Tape *t, Var **in, void *ctx) {
    return ag_conv2d(t, in[0], in[1], in[2], &((GcCtx *)ctx)->spec);
}

static void gradcheck_case(ConvCase *c) {
    GcCtx ctx = {c->spec};
    Var *in[3] = {var_new(tensor_clone(c->x), true), var_new(tensor_clone(c->w), true),
                  c->b ? var_new(tensor_clone(c->b), true) : NULL};
    /* The loss is linear in each single element, so central differences are exact
     * for any step: a large one keeps float32 rounding out of the numeric side. */
    GradcheckOptions opt = gradcheck_default_options();
    opt.eps = 0.5;
    GradcheckReport rep;
    hg_status st = gradcheck(gc_conv, &ctx, c->b ? 3 : 2, in, &opt, &rep);
    if (st != HG_OK) fail_msg("%s: %s", c->name, hg_last_error());
    int64_t expected = tensor_numel(c->x) + tensor_numel(c->w) + (c->b ? tensor_numel(c->b) : 0);
    assert_int_equal(rep.checked, expected);
    for (int i = 0; i < 3; i++) var_free(in[i]);
}

static void test_gradcheck_every_config(void **state) {
    (void)state;
    assert_int_equal(for_each_case(gradcheck_case), 25);
}

/* ------------------------------------------------------------ tape, errors, padding */

static void test_no_grad_saves_nothing(void **state) {
    (void)state;
    Rng r = rng_new(9);
    Tape *tape = tape_new();
    Var *x = var_new(tensor_normal(SHAPE(1, 2, 5, 5), 0, 1, &r), true);
    Var *w = var_new(tensor_normal(SHAPE(3, 2, 3, 3), 0, 1, &r), true);
    Conv2dSpec spec = conv2d_spec(1, 1, 1, 1);
    tape_set_grad_enabled(tape, false);
    Var *y = ag_conv2d(tape, x, w, NULL, &spec);
    assert_ok_ptr(y);
    assert_false(y->requires_grad);
    assert_null(y->saved[0]);
    assert_null(y->saved[1]);
    assert_null(y->context);
    tape_set_grad_enabled(tape, true);
    Var *y2 = ag_conv2d(tape, x, w, NULL, &spec);
    assert_ok_ptr(y2);
    assert_true(y2->requires_grad);
    assert_non_null(y2->saved[0]);
    assert_non_null(y2->context);
    var_free(x);
    var_free(w);
    tape_free(tape);
}

static void expect_error(const Tensor *x, const Tensor *w, const Tensor *b, const Conv2dSpec *s,
                         hg_status code, const char *text) {
    hg_clear_error();
    Tensor *out = conv2d_forward(x, w, b, s);
    assert_null(out);
    assert_int_equal(hg_last_status(), code);
    if (!strstr(hg_last_error(), text))
        fail_msg("message \"%s\" lacks \"%s\"", hg_last_error(), text);
}

static void test_errors(void **state) {
    (void)state;
    Tensor *x = tensor_zeros(SHAPE(1, 4, 8, 8)), *w = tensor_zeros(SHAPE(32, 3, 3, 3));
    Tensor *w2 = tensor_zeros(SHAPE(6, 2, 3, 3)), *b = tensor_zeros(SHAPE(5));
    Tensor *x3 = tensor_zeros(SHAPE(4, 8, 8)), *big = tensor_zeros(SHAPE(6, 2, 11, 3));
    Conv2dSpec s = conv2d_spec(1, 1, 1, 1);
    expect_error(x, w, NULL, &s, HG_ERR_SHAPE,
                 "conv2d: weight [32,3,3,3] expects 3 input channels per group (1 groups), "
                 "input has [1,4,8,8]");
    Conv2dSpec s2 = conv2d_spec(1, 1, 1, 2);
    expect_error(x, w2, b, &s2, HG_ERR_SHAPE, "bias [5] must be [6]");
    Conv2dSpec s4 = conv2d_spec(1, 1, 1, 4);
    expect_error(x, w2, NULL, &s4, HG_ERR_SHAPE, "do not split into 4 groups");
    expect_error(x3, w2, NULL, &s2, HG_ERR_SHAPE, "input [4,8,8] must be 4-d");
    expect_error(x, big, NULL, &s2, HG_ERR_SHAPE, "does not fit the padded input 10x10");
    Conv2dSpec neg = conv2d_spec(1, -1, 1, 2);
    expect_error(x, w2, NULL, &neg, HG_ERR_ARG, "must be >= 0");
    /* Backward with a wrongly shaped output gradient. */
    Tensor *dout = tensor_zeros(SHAPE(1, 6, 7, 8)), *dx;
    hg_clear_error();
    assert_int_equal(conv2d_backward(dout, x, w2, &s2, &dx, NULL, NULL), HG_ERR_SHAPE);
    assert_null(dx);
    assert_non_null(strstr(hg_last_error(), "expected [1,6,8,8]"));
    tensor_free(dout);
    tensor_free(x);
    tensor_free(w);
    tensor_free(w2);
    tensor_free(b);
    tensor_free(x3);
    tensor_free(big);
}

/* The TF rule of spec/backbones.md, computed by hand for the cases of the fixtures. */
static void test_same_padding_rule(void **state) {
    (void)state;
    struct {
        int in, k, s, d, before, after;
    } cases[] = {
        {7, 3, 2, 1, 1, 1}, /* total (4-1)*2 + 3 - 7 = 2 */
        {8, 3, 2, 1, 0, 1}, /* total 3*2 + 3 - 8 = 1: the extra pixel goes after */
        {7, 5, 2, 1, 2, 2}, /* 6 + 5 - 7 = 4 */
        {8, 5, 2, 1, 1, 2}, /* 6 + 5 - 8 = 3 */
        {9, 3, 1, 1, 1, 1}, /* stride 1: k // 2 on both sides */
        {9, 3, 1, 2, 2, 2}, /* dilation 2: span 5 */
        {4, 1, 2, 1, 0, 0}, /* never negative */
        {5, 3, 3, 1, 0, 1}, /* (2-1)*3 + 3 - 5 = 1 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int b, a;
        pad_same_tf(cases[i].in, cases[i].k, cases[i].s, cases[i].d, &b, &a);
        assert_int_equal(b, cases[i].before);
        assert_int_equal(a, cases[i].after);
    }
    /* conv2d_output_size with tf_same gives ceil(H / s). */
    Conv2dSpec same = conv2d_spec_same(2, 1, 1);
    int64_t oh, ow;
    assert_ok(conv2d_output_size(7, 8, 5, 3, &same, &oh, &ow));
    assert_int_equal(oh, 4);
    assert_int_equal(ow, 4);
}

static Var *gc_pad(Tape *t, Var **in, void *ctx) {
    (void)ctx;
    return ag_pad2d(t, in[0], 1, 2, 0, 3);
}

static void test_pad2d(void **state) {
    (void)state;
    Rng r = rng_new(3);
    Tensor *x = tensor_normal(SHAPE(2, 3, 4, 5), 0, 1, &r);
    Tensor *y = pad2d_forward(x, 1, 2, 0, 3);
    assert_ok_ptr(y);
    assert_int_equal(y->shape[2], 7);
    assert_int_equal(y->shape[3], 8);
    for (int64_t n = 0; n < 2; n++)
        for (int64_t c = 0; c < 3; c++)
            for (int64_t i = 0; i < 7; i++)
                for (int64_t j = 0; j < 8; j++) {
                    bool inside = i >= 1 && i < 5 && j < 5;
                    float want = inside ? tensor_get(x, (int64_t[]){n, c, i - 1, j}) : 0.0f;
                    assert_float_equal(tensor_get(y, (int64_t[]){n, c, i, j}), want, 0);
                }
    Tensor *back = pad2d_backward(y, 1, 2, 0, 3);
    test_assert_close(back, x, 0, 0);
    tensor_free(back);
    tensor_free(y);
    Var *in[1] = {var_new(x, true)};
    assert_ok(gradcheck(gc_pad, NULL, 1, in, NULL, NULL));
    var_free(in[0]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parity_torch),
        cmocka_unit_test(test_parity_tape),
        cmocka_unit_test(test_parity_depthwise_portable),
        cmocka_unit_test(test_random_vs_naive),
        cmocka_unit_test(test_depthwise_bands),
        cmocka_unit_test(test_1x1_paths),
        cmocka_unit_test(test_gradcheck_every_config),
        cmocka_unit_test(test_no_grad_saves_nothing),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_same_padding_rule),
        cmocka_unit_test(test_pad2d),
    };
    /* each kernel family takes its own paths through conv2d_forward */
    return test_run_at_cpu_levels(tests, HG_CPU_PORTABLE);
}
