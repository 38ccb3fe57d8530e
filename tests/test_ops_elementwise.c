/* Element-wise unary and binary ops, where() and the in-place ops of tensor/ops.h,
 * against double-precision references computed here element by element from the
 * operands' raw strides, on contiguous, transposed, narrowed, expanded (stride 0),
 * empty, size-1 and 0-d inputs. */
#include "tests/testutil.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/ops.h"

/* ---- helpers ---- */

static uint64_t rand_state = 0x9E3779B97F4A7C15ull;

static float frand(float lo, float hi) {
    rand_state ^= rand_state << 13;
    rand_state ^= rand_state >> 7;
    rand_state ^= rand_state << 17;
    return lo + (hi - lo) * (float)((rand_state >> 40) * (1.0 / 16777216.0));
}

static Tensor *rand_tensor(int ndim, const int64_t *shape, float lo, float hi) {
    Tensor *t = tensor_empty(ndim, shape);
    assert_ok_ptr(t);
    int64_t n = tensor_numel(t);
    float *d = tensor_data(t);
    for (int64_t i = 0; i < n; i++) d[i] = frand(lo, hi);
    return t;
}

typedef enum {
    LAYOUT_CONTIGUOUS,
    LAYOUT_TRANSPOSED,     /* last two dims swapped in memory */
    LAYOUT_NARROWED,       /* window into a larger tensor */
    LAYOUT_EXPANDED_OUTER, /* dim 0 broadcast with stride 0 */
    LAYOUT_EXPANDED_INNER, /* last dim broadcast with stride 0 */
    LAYOUT_COUNT
} Layout;

static const char *layout_names[] = {"contiguous", "transposed", "narrowed", "expanded-outer",
                                     "expanded-inner"};

/* A random tensor of the given logical shape stored with `layout` (falls back
 * to contiguous where the layout does not apply, e.g. 0-d). */
static Tensor *make_layout(int ndim, const int64_t *shape, Layout layout, float lo, float hi) {
    int64_t s[TENSOR_MAX_DIMS];
    memcpy(s, shape, sizeof(int64_t) * (size_t)ndim);
    Tensor *base, *view;
    switch (layout) {
    case LAYOUT_TRANSPOSED:
        if (ndim < 2) break;
        s[ndim - 1] = shape[ndim - 2];
        s[ndim - 2] = shape[ndim - 1];
        base = rand_tensor(ndim, s, lo, hi);
        view = tensor_transpose(base, -1, -2);
        tensor_free(base);
        assert_ok_ptr(view);
        return view;
    case LAYOUT_NARROWED:
        if (ndim < 1) break;
        s[ndim - 1] += 3;
        if (ndim > 1) s[0] += 1;
        base = rand_tensor(ndim, s, lo, hi);
        view = tensor_narrow(base, -1, 2, shape[ndim - 1]);
        tensor_free(base);
        if (ndim > 1) {
            base = view;
            view = tensor_narrow(base, 0, 1, shape[0]);
            tensor_free(base);
        }
        assert_ok_ptr(view);
        return view;
    case LAYOUT_EXPANDED_OUTER:
    case LAYOUT_EXPANDED_INNER: {
        int d = layout == LAYOUT_EXPANDED_OUTER ? 0 : ndim - 1;
        if (ndim < 1 || shape[d] == 0) break;
        s[d] = 1;
        base = rand_tensor(ndim, s, lo, hi);
        view = tensor_expand(base, ndim, shape);
        tensor_free(base);
        assert_ok_ptr(view);
        return view;
    }
    default:
        break;
    }
    return rand_tensor(ndim, shape, lo, hi);
}

/* Element of `t` at position `linear` of the row-major iteration over (ndim,
 * shape), which t broadcasts to (numpy rules), read through t's raw strides. */
static double elem_at(const Tensor *t, int ndim, const int64_t *shape, int64_t linear) {
    int64_t offset = 0;
    for (int d = ndim - 1; d >= 0; d--) {
        int64_t i = linear % shape[d];
        linear /= shape[d];
        int j = d - (ndim - t->ndim);
        if (j >= 0 && t->shape[j] != 1) offset += i * t->stride[j];
    }
    return tensor_data(t)[offset];
}

/* Checks a result: contiguous, shape (ndim, shape), values close to expected
 * (NaN must match NaN, infinities must match exactly). */
static void check_result(const char *what, const Tensor *got, int ndim, const int64_t *shape,
                         const double *expected, double rtol, double atol) {
    if (!got) fail_msg("%s: returned NULL: %s", what, hg_last_error());
    if (got->ndim != ndim) fail_msg("%s: ndim %d, expected %d", what, got->ndim, ndim);
    for (int d = 0; d < ndim; d++)
        if (got->shape[d] != shape[d])
            fail_msg("%s: dim %d has size %lld", what, d, (long long)got->shape[d]);
    if (!tensor_is_contiguous(got)) fail_msg("%s: result not contiguous", what);
    int64_t n = tensor_numel(got);
    const float *g = tensor_data(got);
    for (int64_t i = 0; i < n; i++) {
        double e = expected[i], v = g[i];
        bool ok = isnan(e) ? isnan(v) : isinf(e) ? v == e : fabs(v - e) <= atol + rtol * fabs(e);
        if (!ok) fail_msg("%s: element %lld is %.9g, expected %.9g", what, (long long)i, v, e);
    }
}

static int64_t numel_of(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    return n;
}

/* ---- unary ---- */

static double ref_sigmoid(double x) {
    return 1.0 / (1.0 + exp(-x));
}
static double ref_softplus(double x, double beta) {
    return beta * x > 20 ? x : log1p(exp(beta * x)) / beta;
}
static double ref_clamp(double x, double lo, double hi) {
    return isnan(x) ? x : x < lo ? lo : x > hi ? hi : x;
}

static double r_neg(double x) {
    return -x;
}
static double r_square(double x) {
    return x * x;
}
static double r_reciprocal(double x) {
    return 1.0 / x;
}
static double r_sigmoid(double x) {
    return ref_sigmoid(x);
}
static double r_relu(double x) {
    return x > 0 ? x : 0;
}
static double r_relu6(double x) {
    return ref_clamp(x, 0, 6);
}
static double r_silu(double x) {
    return x * ref_sigmoid(x);
}
static double r_gelu(double x) {
    return 0.5 * x * (1 + erf(x / sqrt(2.0)));
}
static double r_softplus1(double x) {
    return ref_softplus(x, 1);
}
static double r_softplus3(double x) {
    return ref_softplus(x, 3);
}
static double r_log_sigmoid(double x) {
    return log(ref_sigmoid(x));
}
static double r_clamp(double x) {
    return ref_clamp(x, -1, 0.5);
}
static double r_scale(double x) {
    return -2.5 * x;
}
static double r_add_scalar(double x) {
    return x + 0.75;
}
static double r_pow2(double x) {
    return x * x;
}
static double r_pow1(double x) {
    return x;
}
static double r_pow3(double x) {
    return x * x * x;
}
static double r_pow_half(double x) {
    return sqrt(x);
}
static double r_pow_m15(double x) {
    return pow(x, -1.5);
}

static Tensor *f_softplus1(const Tensor *x) {
    return tensor_softplus(x, 1);
}
static Tensor *f_softplus3(const Tensor *x) {
    return tensor_softplus(x, 3);
}
static Tensor *f_clamp(const Tensor *x) {
    return tensor_clamp(x, -1, 0.5f);
}
static Tensor *f_scale(const Tensor *x) {
    return tensor_scale(x, -2.5f);
}
static Tensor *f_add_scalar(const Tensor *x) {
    return tensor_add_scalar(x, 0.75f);
}
static Tensor *f_pow2(const Tensor *x) {
    return tensor_pow_scalar(x, 2);
}
static Tensor *f_pow1(const Tensor *x) {
    return tensor_pow_scalar(x, 1);
}
static Tensor *f_pow3(const Tensor *x) {
    return tensor_pow_scalar(x, 3);
}
static Tensor *f_pow_half(const Tensor *x) {
    return tensor_pow_scalar(x, 0.5f);
}
static Tensor *f_pow_m15(const Tensor *x) {
    return tensor_pow_scalar(x, -1.5f);
}

typedef struct UnaryCase {
    const char *name;
    Tensor *(*op)(const Tensor *);
    double (*ref)(double);
    float lo, hi; /* input range */
} UnaryCase;

static const UnaryCase unary_cases[] = {
    {"neg", tensor_neg, r_neg, -5, 5},
    {"exp", tensor_exp, exp, -5, 5},
    {"log", tensor_log, log, 0.05f, 5},
    {"sqrt", tensor_sqrt, sqrt, 0, 5},
    {"abs", tensor_abs, fabs, -5, 5},
    {"square", tensor_square, r_square, -5, 5},
    {"reciprocal", tensor_reciprocal, r_reciprocal, 0.1f, 5},
    {"sin", tensor_sin, sin, -5, 5},
    {"cos", tensor_cos, cos, -5, 5},
    {"tanh", tensor_tanh, tanh, -5, 5},
    {"sigmoid", tensor_sigmoid, r_sigmoid, -8, 8},
    {"relu", tensor_relu, r_relu, -5, 5},
    {"relu6", tensor_relu6, r_relu6, -3, 9},
    {"silu", tensor_silu, r_silu, -8, 8},
    {"gelu", tensor_gelu, r_gelu, -5, 5},
    {"softplus(beta=1)", f_softplus1, r_softplus1, -10, 30},
    {"softplus(beta=3)", f_softplus3, r_softplus3, -4, 10},
    {"log_sigmoid", tensor_log_sigmoid, r_log_sigmoid, -10, 10},
    {"clamp", f_clamp, r_clamp, -3, 3},
    {"scale", f_scale, r_scale, -5, 5},
    {"add_scalar", f_add_scalar, r_add_scalar, -5, 5},
    {"pow 2", f_pow2, r_pow2, -5, 5},
    {"pow 1", f_pow1, r_pow1, -5, 5},
    {"pow 3", f_pow3, r_pow3, -3, 3},
    {"pow 0.5", f_pow_half, r_pow_half, 0, 5},
    {"pow -1.5", f_pow_m15, r_pow_m15, 0.2f, 5},
};
#define N_UNARY (int)(sizeof unary_cases / sizeof unary_cases[0])

static void check_unary(const UnaryCase *c, const Tensor *x, const char *layout) {
    char what[160];
    snprintf(what, sizeof what, "%s on %s input of %d dims", c->name, layout, x->ndim);
    int64_t n = tensor_numel(x);
    double *expected = malloc(sizeof(double) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) expected[i] = c->ref(elem_at(x, x->ndim, x->shape, i));
    Tensor *y = c->op(x);
    check_result(what, y, x->ndim, x->shape, expected, 2e-6, 1e-6);
    tensor_free(y);
    free(expected);
}

static void test_unary_layouts(void **state) {
    static const int64_t shapes[][4] = {{3, 5, 7}, {4, 6}, {1, 1, 5}, {0, 4}, {9}, {2, 3, 1, 4}};
    static const int ndims[] = {3, 2, 3, 2, 1, 4};
    for (int c = 0; c < N_UNARY; c++) {
        for (int s = 0; s < 6; s++)
            for (int l = 0; l < LAYOUT_COUNT; l++) {
                Tensor *x = make_layout(ndims[s], shapes[s], (Layout)l, unary_cases[c].lo,
                                        unary_cases[c].hi);
                check_unary(&unary_cases[c], x, layout_names[l]);
                tensor_free(x);
            }
        Tensor *scalar = tensor_scalar(frand(unary_cases[c].lo, unary_cases[c].hi));
        check_unary(&unary_cases[c], scalar, "0-d");
        tensor_free(scalar);
    }
}

/* Above the threading threshold, contiguous and transposed. */
static void test_unary_large(void **state) {
    omp_set_num_threads(3);
    const int64_t shape[2] = {301, 257};
    for (int l = 0; l < 3; l++)
        for (int c = 0; c < N_UNARY; c += 4) {
            Tensor *x = make_layout(2, shape, (Layout)l, unary_cases[c].lo, unary_cases[c].hi);
            check_unary(&unary_cases[c], x, layout_names[l]);
            tensor_free(x);
        }
}

/* Inputs where naive formulas overflow or lose everything. */
static void test_unary_stability(void **state) {
    const float xs[] = {-100, -30, -1e-3f, 0, 1e-3f, 15, 30, 100, 1e4f};
    Tensor *x = tensor_from_data(1, (int64_t[]){9}, xs);
    assert_ok_ptr(x);
    double e[9];
    /* softplus: linear above the threshold, tiny but positive far below. */
    Tensor *y = tensor_softplus(x, 1);
    for (int i = 0; i < 9; i++) e[i] = ref_softplus(xs[i], 1);
    check_result("softplus stable", y, 1, x->shape, e, 1e-5, 1e-30);
    assert_true(tensor_data(y)[0] > 0);
    tensor_free(y);
    y = tensor_softplus(x, 2); /* 2 * 15 > 20 -> exactly 15 */
    assert_true(tensor_data(y)[5] == 15.0f);
    tensor_free(y);
    /* log_sigmoid(x) = -softplus(-x). */
    y = tensor_log_sigmoid(x);
    for (int i = 0; i < 9; i++) e[i] = -ref_softplus(-(double)xs[i], 1);
    check_result("log_sigmoid stable", y, 1, x->shape, e, 1e-5, 1e-30);
    tensor_free(y);
    /* sigmoid and silu: no NaN for large |x|. */
    y = tensor_sigmoid(x);
    for (int i = 0; i < 9; i++)
        e[i] = xs[i] < 0 ? exp(xs[i]) / (1 + exp(xs[i])) : 1 / (1 + exp(-xs[i]));
    check_result("sigmoid stable", y, 1, x->shape, e, 1e-5, 1e-30);
    tensor_free(y);
    y = tensor_silu(x);
    for (int i = 0; i < 9; i++)
        e[i] = xs[i] * (xs[i] < 0 ? exp(xs[i]) / (1 + exp(xs[i])) : 1 / (1 + exp(-xs[i])));
    check_result("silu stable", y, 1, x->shape, e, 1e-5, 1e-30);
    tensor_free(y);
    y = tensor_gelu(x);
    for (int i = 0; i < 9; i++) e[i] = r_gelu(xs[i]);
    check_result("gelu extremes", y, 1, x->shape, e, 1e-5, 1e-30);
    tensor_free(y);
    tensor_free(x);
}

/* NaN propagates through relu, relu6, clamp (as torch.clamp); clamp with low >
 * high gives high. */
static void test_unary_nan_and_clamp(void **state) {
    const float xs[] = {NAN, -2, 0.25f, 7};
    Tensor *x = tensor_from_data(1, (int64_t[]){4}, xs);
    Tensor *y = tensor_relu(x);
    check_result("relu nan", y, 1, x->shape, (double[]){NAN, 0, 0.25, 7}, 0, 0);
    tensor_free(y);
    y = tensor_relu6(x);
    check_result("relu6 nan", y, 1, x->shape, (double[]){NAN, 0, 0.25, 6}, 0, 0);
    tensor_free(y);
    y = tensor_clamp(x, 1, 0);
    check_result("clamp low>high", y, 1, x->shape, (double[]){NAN, 0, 0, 0}, 0, 0);
    tensor_free(y);
    tensor_free(x);
}

static void test_unary_errors(void **state) {
    hg_clear_error();
    assert_null(tensor_exp(NULL));
    assert_int_equal(hg_last_status(), HG_ERR_ARG);
    assert_non_null(strstr(hg_last_error(), "exp"));
    Tensor *x = tensor_ones(SHAPE(2));
    assert_null(tensor_softplus(x, 0));
    assert_non_null(strstr(hg_last_error(), "softplus"));
    tensor_free(x);
}

/* ---- binary ---- */

typedef struct BinaryCase {
    const char *name;
    Tensor *(*op)(const Tensor *, const Tensor *);
    double (*ref)(double, double);
} BinaryCase;

static double r_add(double a, double b) {
    return a + b;
}
static double r_sub(double a, double b) {
    return a - b;
}
static double r_mul(double a, double b) {
    return a * b;
}
static double r_div(double a, double b) {
    return a / b;
}
static double r_maximum(double a, double b) {
    return isnan(a) || isnan(b) ? NAN : a > b ? a : b;
}
static double r_minimum(double a, double b) {
    return isnan(a) || isnan(b) ? NAN : a < b ? a : b;
}

static const BinaryCase binary_cases[] = {
    {"add", tensor_add, r_add},
    {"sub", tensor_sub, r_sub},
    {"mul", tensor_mul, r_mul},
    {"div", tensor_div, r_div},
    {"maximum", tensor_maximum, r_maximum},
    {"minimum", tensor_minimum, r_minimum},
};

typedef struct ShapePair {
    int na, nb, nout;
    int64_t a[4], b[4], out[4];
} ShapePair;

static const ShapePair shape_pairs[] = {
    {2, 2, 2, {4, 5}, {4, 5}, {4, 5}},
    {2, 1, 2, {4, 5}, {5}, {4, 5}},
    {2, 2, 2, {4, 1}, {1, 5}, {4, 5}},
    {3, 2, 3, {3, 1, 5}, {4, 1}, {3, 4, 5}},
    {0, 2, 2, {0}, {2, 3}, {2, 3}},
    {2, 0, 2, {2, 3}, {0}, {2, 3}},
    {2, 1, 2, {0, 3}, {3}, {0, 3}},
    {2, 2, 2, {1, 1}, {1, 1}, {1, 1}},
    {4, 3, 4, {2, 1, 3, 4}, {5, 1, 4}, {2, 5, 3, 4}},
};
#define N_PAIRS (int)(sizeof shape_pairs / sizeof shape_pairs[0])

static void check_binary(const BinaryCase *c, const Tensor *a, const Tensor *b, int nout,
                         const int64_t *out, const char *layout) {
    char what[200];
    snprintf(what, sizeof what, "%s on %s inputs (dims %d and %d)", c->name, layout, a->ndim,
             b->ndim);
    int64_t n = numel_of(nout, out);
    double *expected = malloc(sizeof(double) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++)
        expected[i] = c->ref(elem_at(a, nout, out, i), elem_at(b, nout, out, i));
    Tensor *y = c->op(a, b);
    check_result(what, y, nout, out, expected, 1e-6, 1e-6);
    tensor_free(y);
    free(expected);
}

static void test_binary_broadcast_layouts(void **state) {
    for (int c = 0; c < 6; c++)
        for (int p = 0; p < N_PAIRS; p++)
            for (int la = 0; la < LAYOUT_COUNT; la++) {
                const ShapePair *sp = &shape_pairs[p];
                int lb = (la + p) % LAYOUT_COUNT;
                Tensor *a = make_layout(sp->na, sp->a, (Layout)la, -3, 3);
                Tensor *b = make_layout(sp->nb, sp->b, (Layout)lb, 0.5f, 3);
                char layout[64];
                snprintf(layout, sizeof layout, "%s/%s", layout_names[la], layout_names[lb]);
                check_binary(&binary_cases[c], a, b, sp->nout, sp->out, layout);
                check_binary(&binary_cases[c], b, a, sp->nout, sp->out, layout);
                tensor_free(a);
                tensor_free(b);
            }
}

static void test_binary_large(void **state) {
    omp_set_num_threads(3);
    /* Same shape contiguous, broadcast row, broadcast column, transposed. */
    const int64_t big[2] = {211, 263}, row[1] = {263}, col[2] = {211, 1};
    Tensor *a = make_layout(2, big, LAYOUT_CONTIGUOUS, -2, 2);
    Tensor *at = make_layout(2, big, LAYOUT_TRANSPOSED, -2, 2);
    Tensor *b = make_layout(2, big, LAYOUT_CONTIGUOUS, 0.5f, 2);
    Tensor *r = make_layout(1, row, LAYOUT_CONTIGUOUS, 0.5f, 2);
    Tensor *cl = make_layout(2, col, LAYOUT_CONTIGUOUS, 0.5f, 2);
    for (int c = 0; c < 6; c++) {
        check_binary(&binary_cases[c], a, b, 2, big, "large contiguous");
        check_binary(&binary_cases[c], a, r, 2, big, "large row-broadcast");
        check_binary(&binary_cases[c], cl, at, 2, big, "large column-broadcast/transposed");
    }
    tensor_free(a);
    tensor_free(at);
    tensor_free(b);
    tensor_free(r);
    tensor_free(cl);
}

static void test_binary_nan(void **state) {
    Tensor *a = tensor_from_data(1, (int64_t[]){3}, (float[]){NAN, 1, 2});
    Tensor *b = tensor_from_data(1, (int64_t[]){3}, (float[]){0, NAN, 1});
    Tensor *y = tensor_maximum(a, b);
    check_result("maximum nan", y, 1, a->shape, (double[]){NAN, NAN, 2}, 0, 0);
    tensor_free(y);
    y = tensor_minimum(a, b);
    check_result("minimum nan", y, 1, a->shape, (double[]){NAN, NAN, 1}, 0, 0);
    tensor_free(y);
    tensor_free(a);
    tensor_free(b);
}

static void test_binary_errors(void **state) {
    Tensor *a = tensor_zeros(SHAPE(2, 3)), *b = tensor_zeros(SHAPE(4));
    hg_clear_error();
    assert_null(tensor_add(a, b));
    assert_int_equal(hg_last_status(), HG_ERR_SHAPE);
    assert_string_equal(hg_last_error(), "add: shapes [2,3] and [4] do not broadcast");
    assert_null(tensor_div(b, a));
    assert_string_equal(hg_last_error(), "div: shapes [4] and [2,3] do not broadcast");
    assert_null(tensor_mul(a, NULL));
    assert_int_equal(hg_last_status(), HG_ERR_ARG);
    assert_null(tensor_where(a, a, b));
    assert_non_null(strstr(hg_last_error(), "where: shapes [2,3], [2,3] and [4]"));
    tensor_free(a);
    tensor_free(b);
}

/* ---- where ---- */

/* From x in [-1, 1]: positive where x > 0, zero where x in [-0.5, 0], negative
 * below, with x's shape (contiguous). */
static Tensor *signed_mask(const Tensor *x) {
    Tensor *pos = tensor_relu(x), *shifted = tensor_add_scalar(x, 0.5f);
    Tensor *flipped = tensor_neg(shifted), *negpart = tensor_relu(flipped);
    Tensor *mask = tensor_sub(pos, negpart);
    tensor_free(pos);
    tensor_free(shifted);
    tensor_free(flipped);
    tensor_free(negpart);
    assert_ok_ptr(mask);
    return mask;
}

static void test_where(void **state) {
    const int64_t sc[3] = {3, 1, 5}, sa[2] = {4, 5}, sb[1] = {1}, out[3] = {3, 4, 5};
    for (int l = 0; l < LAYOUT_COUNT; l++) {
        Tensor *cond = make_layout(3, sc, (Layout)l, -1, 1);
        Tensor *mask = signed_mask(cond);
        Tensor *a = make_layout(2, sa, (Layout)((l + 1) % LAYOUT_COUNT), -3, 3);
        Tensor *b = make_layout(1, sb, LAYOUT_CONTIGUOUS, -3, 3);
        double expected[60];
        for (int64_t i = 0; i < 60; i++)
            expected[i] =
                elem_at(mask, 3, out, i) != 0 ? elem_at(a, 3, out, i) : elem_at(b, 3, out, i);
        Tensor *y = tensor_where(mask, a, b);
        check_result("where", y, 3, out, expected, 0, 0);
        tensor_free(y);
        tensor_free(cond);
        tensor_free(mask);
        tensor_free(a);
        tensor_free(b);
    }
    /* Large and contiguous (the all-contiguous loop under threads). */
    const int64_t big[1] = {40000};
    Tensor *c = make_layout(1, big, LAYOUT_CONTIGUOUS, -1, 1);
    Tensor *m = signed_mask(c), *a = make_layout(1, big, LAYOUT_CONTIGUOUS, -1, 1);
    Tensor *b = make_layout(1, big, LAYOUT_CONTIGUOUS, -1, 1);
    double *expected = malloc(sizeof(double) * 40000);
    for (int i = 0; i < 40000; i++)
        expected[i] = tensor_data(m)[i] != 0 ? tensor_data(a)[i] : tensor_data(b)[i];
    Tensor *y = tensor_where(m, a, b);
    check_result("where large", y, 1, big, expected, 0, 0);
    free(expected);
    tensor_free(y);
    tensor_free(c);
    tensor_free(m);
    tensor_free(a);
    tensor_free(b);
}

/* ---- in place ---- */

/* dst is a narrowed, transposed window of a larger buffer: the op must change
 * exactly the window's elements. */
static void check_inplace(int which, Layout src_layout, int src_ndim, const int64_t *src_shape) {
    const float alpha = -1.75f;
    Tensor *buf = rand_tensor(2, (int64_t[]){9, 8}, -2, 2);
    Tensor *narrowed = tensor_narrow(buf, 0, 2, 5); /* (5, 8) rows 2..6 */
    Tensor *dst = tensor_transpose(narrowed, 0, 1); /* (8, 5) */
    assert_ok_ptr(dst);
    Tensor *src = make_layout(src_ndim, src_shape, src_layout, -2, 2);
    double expected[72];
    for (int i = 0; i < 72; i++) expected[i] = tensor_data(buf)[i];
    /* Position (i, j) of dst is buf[(2 + j) * 8 + i]. */
    for (int64_t i = 0; i < 8; i++)
        for (int64_t j = 0; j < 5; j++) {
            double s = elem_at(src, 2, dst->shape, i * 5 + j), *e = &expected[(2 + j) * 8 + i];
            *e = which == 0 ? *e + s : which == 1 ? *e * s : *e + alpha * s;
        }
    hg_status st = which == 0   ? tensor_add_(dst, src)
                   : which == 1 ? tensor_mul_(dst, src)
                                : tensor_axpy_(dst, alpha, src);
    assert_ok(st);
    check_result(which == 0   ? "add_"
                 : which == 1 ? "mul_"
                              : "axpy_",
                 buf, 2, buf->shape, expected, 1e-6, 1e-6);
    tensor_free(src);
    tensor_free(dst);
    tensor_free(narrowed);
    tensor_free(buf);
}

static void test_inplace(void **state) {
    const int64_t same[2] = {8, 5}, row[1] = {5}, col[2] = {8, 1}, one[1] = {1};
    for (int l = 0; l < LAYOUT_COUNT; l++) {
        check_inplace(0, (Layout)l, 2, same);
        check_inplace(1, (Layout)l, 2, same);
        check_inplace(2, (Layout)l, 2, same);
        check_inplace(0, (Layout)l, 1, row);
        check_inplace(1, (Layout)l, 2, col);
    }
    /* Contiguous destinations: same shape and broadcast row / scalar sources. */
    for (int which = 0; which < 2; which++)
        for (int sh = 0; sh < 3; sh++) {
            const int64_t dshape[2] = {6, 7};
            Tensor *d = rand_tensor(2, dshape, -2, 2);
            Tensor *src = sh == 0   ? rand_tensor(2, dshape, -2, 2)
                          : sh == 1 ? rand_tensor(1, (int64_t[]){7}, -2, 2)
                                    : rand_tensor(0, NULL, -2, 2);
            double e[42];
            for (int64_t i = 0; i < 42; i++) {
                double v = elem_at(src, 2, dshape, i);
                e[i] = which == 0 ? tensor_data(d)[i] + v : tensor_data(d)[i] * v;
            }
            assert_ok(which == 0 ? tensor_add_(d, src) : tensor_mul_(d, src));
            check_result(which == 0 ? "add_ contiguous" : "mul_ contiguous", d, 2, dshape, e, 1e-6,
                         1e-6);
            tensor_free(d);
            tensor_free(src);
        }
    check_inplace(0, LAYOUT_CONTIGUOUS, 0, one);
    check_inplace(1, LAYOUT_CONTIGUOUS, 1, one);
    /* Large contiguous accumulation (threaded path). */
    const int64_t big[1] = {50000};
    Tensor *d = rand_tensor(1, big, -1, 1), *s = rand_tensor(1, big, -1, 1);
    double *e = malloc(sizeof(double) * 50000);
    for (int i = 0; i < 50000; i++) e[i] = tensor_data(d)[i] + 0.5 * tensor_data(s)[i];
    assert_ok(tensor_axpy_(d, 0.5f, s));
    check_result("axpy_ large", d, 1, big, e, 1e-6, 1e-6);
    free(e);
    tensor_free(d);
    tensor_free(s);
}

static void test_inplace_errors(void **state) {
    Tensor *d = tensor_zeros(SHAPE(2, 3)), *s = tensor_zeros(SHAPE(4)), *r = tensor_zeros(SHAPE(3));
    Tensor *big = tensor_zeros(SHAPE(4, 2, 3));
    assert_int_equal(tensor_add_(d, s), HG_ERR_SHAPE);
    assert_non_null(strstr(hg_last_error(), "add_"));
    assert_non_null(strstr(hg_last_error(), "[2,3]"));
    assert_int_equal(tensor_mul_(d, big), HG_ERR_SHAPE);   /* src larger than dst */
    assert_int_equal(tensor_axpy_(d, 1, r), HG_ERR_SHAPE); /* axpy_ does not broadcast */
    assert_non_null(strstr(hg_last_error(), "axpy_"));
    Tensor *row = tensor_zeros(SHAPE(1, 3));
    Tensor *expanded = tensor_expand(row, 2, (int64_t[]){2, 3});
    assert_int_equal(tensor_add_(expanded, d), HG_ERR_ARG); /* would write an element twice */
    assert_int_equal(tensor_add_(NULL, d), HG_ERR_ARG);
    tensor_free(row);
    tensor_free(expanded);
    tensor_free(d);
    tensor_free(s);
    tensor_free(r);
    tensor_free(big);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unary_layouts),   cmocka_unit_test(test_unary_large),
        cmocka_unit_test(test_unary_stability), cmocka_unit_test(test_unary_nan_and_clamp),
        cmocka_unit_test(test_unary_errors),    cmocka_unit_test(test_binary_broadcast_layouts),
        cmocka_unit_test(test_binary_large),    cmocka_unit_test(test_binary_nan),
        cmocka_unit_test(test_binary_errors),   cmocka_unit_test(test_where),
        cmocka_unit_test(test_inplace),         cmocka_unit_test(test_inplace_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
