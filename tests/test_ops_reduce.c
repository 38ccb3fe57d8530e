/* Reductions, max_dim, sum_all, sum_to_shape, softmax and log_softmax of
 * tensor/ops.h against naive double-precision references written here, which
 * walk the input in row-major order through its raw strides. Covers several
 * dims at once, negative dims, keepdim both ways, permuted / transposed /
 * narrowed / expanded inputs, empty and 0-d tensors, NaN and infinities, and
 * sizes large enough for every threaded loop order (run with 3 threads so that
 * the split-reduction paths are taken on any machine). */
#include "tests/testutil.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/ops.h"

/* ---- helpers ---- */

static uint64_t rand_state = 0x2545F4914F6CDD1Dull;

static uint32_t next_rand(void) {
    rand_state ^= rand_state << 13;
    rand_state ^= rand_state >> 7;
    rand_state ^= rand_state << 17;
    return (uint32_t)(rand_state >> 32);
}

static float frand(float lo, float hi) {
    return lo + (hi - lo) * (float)((next_rand() >> 8) * (1.0 / 16777216.0));
}

/* Random contiguous tensor; integer values in [0, levels) when levels > 0
 * (to make ties), else uniform in [-2, 2]. */
static Tensor *rand_tensor(int ndim, const int64_t *shape, int levels) {
    Tensor *t = tensor_empty(ndim, shape);
    assert_ok_ptr(t);
    int64_t n = tensor_numel(t);
    float *d = tensor_data(t);
    for (int64_t i = 0; i < n; i++)
        d[i] = levels > 0 ? (float)(next_rand() % levels) : frand(-2, 2);
    return t;
}

typedef enum {
    LAYOUT_CONTIGUOUS,
    LAYOUT_TRANSPOSED, /* last two dims swapped in memory */
    LAYOUT_PERMUTED,   /* memory order reversed (all dims) */
    LAYOUT_NARROWED,
    LAYOUT_EXPANDED, /* dims 0 and last broadcast (stride 0) */
    LAYOUT_COUNT
} Layout;

static const char *layout_names[] = {"contiguous", "transposed", "permuted", "narrowed",
                                     "expanded"};

static Tensor *make_layout(int ndim, const int64_t *shape, Layout layout, int levels) {
    int64_t s[TENSOR_MAX_DIMS];
    memcpy(s, shape, sizeof(int64_t) * (size_t)ndim);
    Tensor *base = NULL, *view = NULL;
    if (layout == LAYOUT_TRANSPOSED && ndim >= 2) {
        s[ndim - 1] = shape[ndim - 2];
        s[ndim - 2] = shape[ndim - 1];
        base = rand_tensor(ndim, s, levels);
        view = tensor_transpose(base, -1, -2);
    } else if (layout == LAYOUT_PERMUTED && ndim >= 2) {
        int perm[TENSOR_MAX_DIMS];
        for (int d = 0; d < ndim; d++) {
            s[d] = shape[ndim - 1 - d];
            perm[d] = ndim - 1 - d;
        }
        base = rand_tensor(ndim, s, levels);
        view = tensor_permute(base, perm);
    } else if (layout == LAYOUT_NARROWED && ndim >= 1) {
        s[ndim - 1] += 3;
        base = rand_tensor(ndim, s, levels);
        view = tensor_narrow(base, -1, 1, shape[ndim - 1]);
    } else if (layout == LAYOUT_EXPANDED && ndim >= 1 && shape[0] > 0 && shape[ndim - 1] > 0) {
        s[0] = 1;
        s[ndim - 1] = 1;
        base = rand_tensor(ndim, s, levels);
        view = tensor_expand(base, ndim, shape);
    } else {
        return rand_tensor(ndim, shape, levels);
    }
    tensor_free(base);
    assert_ok_ptr(view);
    return view;
}

static double elem_linear(const Tensor *t, int64_t linear) {
    int64_t offset = 0;
    for (int d = t->ndim - 1; d >= 0; d--) {
        offset += (linear % t->shape[d]) * t->stride[d];
        linear /= t->shape[d];
    }
    return tensor_data(t)[offset];
}

enum { R_SUM, R_MEAN, R_MAX, R_MIN, R_LSE };
static const char *kind_names[] = {"sum", "mean", "max", "min", "logsumexp"};

/* Reduces the marked dims of x in double. out[o] (o row-major over the kept
 * dims); arg[o] = first row-major position over the reduced dims of the
 * extreme (max/min; the first NaN wins). */
static void ref_reduce(const Tensor *x, const bool *red, int kind, double *out, double *arg) {
    int64_t nout = 1, rsize = 1, n = tensor_numel(x);
    for (int d = 0; d < x->ndim; d++) {
        if (red[d])
            rsize *= x->shape[d];
        else
            nout *= x->shape[d];
    }
    double *m = malloc(sizeof(double) * (size_t)(nout ? nout : 1));
    for (int pass = 0; pass < 2; pass++) {
        for (int64_t o = 0; o < nout; o++)
            out[o] = kind == R_MAX || (kind == R_LSE && pass == 0) ? -INFINITY
                     : kind == R_MIN                               ? INFINITY
                                                                   : 0;
        for (int64_t i = 0; i < n; i++) {
            int64_t rem = i, o = 0, r = 0, ko = 1, kr = 1;
            for (int d = x->ndim - 1; d >= 0; d--) {
                int64_t idx = rem % x->shape[d];
                rem /= x->shape[d];
                if (red[d]) {
                    r += idx * kr;
                    kr *= x->shape[d];
                } else {
                    o += idx * ko;
                    ko *= x->shape[d];
                }
            }
            double v = elem_linear(x, i);
            if (kind == R_SUM || kind == R_MEAN || (kind == R_LSE && pass == 1)) {
                out[o] += kind == R_LSE ? exp(v - m[o]) : v;
            } else {
                bool better = kind == R_MIN ? v < out[o] : v > out[o];
                if (r == 0 || (!isnan(out[o]) && (isnan(v) || better))) {
                    out[o] = v;
                    if (arg) arg[o] = (double)r;
                }
            }
        }
        if (kind != R_LSE) break;
        if (pass == 0)
            for (int64_t o = 0; o < nout; o++) {
                m[o] = isfinite(out[o]) ? out[o] : 0;
            }
    }
    for (int64_t o = 0; o < nout; o++) {
        if (kind == R_MEAN) out[o] /= (double)rsize;
        if (kind == R_LSE) out[o] = m[o] + log(out[o]);
    }
    free(m);
}

/* Result shape of reducing the marked dims. */
static int reduced_shape(const Tensor *x, const bool *red, bool keepdim, int64_t *shape) {
    int n = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (!red[d])
            shape[n++] = x->shape[d];
        else if (keepdim)
            shape[n++] = 1;
    }
    return n;
}

static void check_result(const char *what, const Tensor *got, int ndim, const int64_t *shape,
                         const double *expected, double rtol, double atol) {
    if (!got) fail_msg("%s: returned NULL: %s", what, hg_last_error());
    if (got->ndim != ndim) fail_msg("%s: ndim %d, expected %d", what, got->ndim, ndim);
    for (int d = 0; d < ndim; d++)
        if (got->shape[d] != shape[d])
            fail_msg("%s: dim %d has size %lld, expected %lld", what, d, (long long)got->shape[d],
                     (long long)shape[d]);
    if (!tensor_is_contiguous(got)) fail_msg("%s: result not contiguous", what);
    int64_t n = tensor_numel(got);
    const float *g = tensor_data(got);
    for (int64_t i = 0; i < n; i++) {
        double e = expected[i], v = g[i];
        bool ok = isnan(e) ? isnan(v) : isinf(e) ? v == e : fabs(v - e) <= atol + rtol * fabs(e);
        if (!ok) fail_msg("%s: element %lld is %.9g, expected %.9g", what, (long long)i, v, e);
    }
}

typedef Tensor *(*ReduceFn)(const Tensor *, int, const int *, bool);
static const ReduceFn reduce_fns[] = {tensor_sum, tensor_mean, tensor_max, tensor_min,
                                      tensor_logsumexp};

/* Runs one reduction of x and compares with the reference. */
static void check_reduce(int kind, const Tensor *x, int ndims, const int *dims, bool keepdim,
                         const char *layout) {
    bool red[TENSOR_MAX_DIMS] = {false};
    for (int i = 0; i < ndims; i++) red[dims[i] < 0 ? dims[i] + x->ndim : dims[i]] = true;
    if (ndims == 0)
        for (int d = 0; d < x->ndim; d++) red[d] = true;
    char what[200];
    int len = snprintf(what, sizeof what, "%s on %s input, %d dims, keepdim %d, dims {",
                       kind_names[kind], layout, x->ndim, keepdim);
    for (int i = 0; i < ndims; i++)
        len += snprintf(what + len, sizeof what - (size_t)len, " %d", dims[i]);
    snprintf(what + len, sizeof what - (size_t)len, " }");
    int64_t shape[TENSOR_MAX_DIMS];
    int ndim = reduced_shape(x, red, keepdim, shape);
    int64_t nout = 1;
    for (int d = 0; d < ndim; d++) nout *= shape[d];
    double *expected = malloc(sizeof(double) * (size_t)(nout ? nout : 1));
    ref_reduce(x, red, kind, expected, NULL);
    Tensor *y = reduce_fns[kind](x, ndims, dims, keepdim);
    check_result(what, y, ndim, shape, expected, kind == R_LSE ? 2e-6 : 1e-6, 1e-6);
    tensor_free(y);
    free(expected);
}

/* ---- reductions ---- */

static void test_reduce_dims_and_layouts(void **state) {
    const int64_t shape[4] = {3, 4, 5, 6};
    static const int dim_sets[][4] = {{0, 2},       {1}, {-1},     {3, 1},
                                      {0, 1, 2, 3}, {0}, {-4, -2}, {1, 2, 3}};
    static const int dim_counts[] = {2, 1, 1, 2, 4, 0, 2, 3};
    for (int l = 0; l < LAYOUT_COUNT; l++) {
        Tensor *x = make_layout(4, shape, (Layout)l, 0);
        for (int k = 0; k < 5; k++)
            for (int s = 0; s < 8; s++) {
                check_reduce(k, x, dim_counts[s], dim_sets[s], false, layout_names[l]);
                check_reduce(k, x, dim_counts[s], dim_sets[s], true, layout_names[l]);
            }
        tensor_free(x);
    }
    /* Size-1 dims, 1-d and 2-d inputs. */
    const int64_t s1[3] = {1, 7, 1}, s2[1] = {11}, s3[2] = {5, 1};
    for (int l = 0; l < LAYOUT_COUNT; l++) {
        Tensor *a = make_layout(3, s1, (Layout)l, 0), *b = make_layout(1, s2, (Layout)l, 0);
        Tensor *c = make_layout(2, s3, (Layout)l, 0);
        for (int k = 0; k < 5; k++) {
            check_reduce(k, a, 1, (int[]){0}, false, layout_names[l]);
            check_reduce(k, a, 2, (int[]){0, 2}, true, layout_names[l]);
            check_reduce(k, a, 1, (int[]){-2}, true, layout_names[l]);
            check_reduce(k, b, 1, (int[]){0}, false, layout_names[l]);
            check_reduce(k, b, 1, (int[]){-1}, true, layout_names[l]);
            check_reduce(k, c, 1, (int[]){1}, false, layout_names[l]);
            check_reduce(k, c, 1, (int[]){0}, true, layout_names[l]);
        }
        tensor_free(a);
        tensor_free(b);
        tensor_free(c);
    }
}

/* Sizes that take every threaded path: many outputs (inner order), few
 * outputs with long runs (split runs), a fast kept dim (outer order, with and
 * without split runs), and permuted large inputs. */
static void test_reduce_large(void **state) {
    omp_set_num_threads(3);
    static const struct {
        int ndim;
        int64_t shape[3];
        int ndims;
        int dims[3];
        Layout layout;
    } cases[] = {
        {2, {64, 2049}, 1, {-1}, LAYOUT_CONTIGUOUS},
        {2, {3, 50000}, 1, {1}, LAYOUT_CONTIGUOUS},
        {2, {50000, 3}, 1, {0}, LAYOUT_CONTIGUOUS},
        {2, {700, 300}, 1, {0}, LAYOUT_CONTIGUOUS},
        {2, {400, 1100}, 1, {0}, LAYOUT_CONTIGUOUS},
        {3, {40, 50, 30}, 2, {0, 2}, LAYOUT_CONTIGUOUS},
        {3, {40, 50, 30}, 1, {1}, LAYOUT_CONTIGUOUS},
        {2, {2000, 40}, 1, {0}, LAYOUT_TRANSPOSED},
        {2, {300, 257}, 0, {0}, LAYOUT_CONTIGUOUS},
        {3, {30, 40, 50}, 2, {0, 1}, LAYOUT_PERMUTED},
        {3, {30, 40, 50}, 1, {2}, LAYOUT_EXPANDED},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        Tensor *x = make_layout(cases[c].ndim, cases[c].shape, cases[c].layout, 0);
        for (int k = 0; k < 5; k++)
            check_reduce(k, x, cases[c].ndims, cases[c].dims, c % 2 == 0,
                         layout_names[cases[c].layout]);
        tensor_free(x);
    }
}

/* Ties report the first position; NaN wins and reports the first NaN. */
static void test_max_dim(void **state) {
    const int64_t shape[3] = {4, 5, 6};
    for (int l = 0; l < LAYOUT_COUNT; l++) {
        Tensor *x = make_layout(3, shape, (Layout)l, 3);
        for (int dim = -3; dim < 3; dim++)
            for (int keep = 0; keep < 2; keep++) {
                bool red[3] = {false};
                red[dim < 0 ? dim + 3 : dim] = true;
                int64_t oshape[3];
                int ondim = reduced_shape(x, red, keep, oshape);
                double expected[30], arg_expected[30];
                ref_reduce(x, red, R_MAX, expected, arg_expected);
                Tensor *arg = NULL;
                Tensor *y = tensor_max_dim(x, dim, keep, &arg);
                char what[100];
                snprintf(what, sizeof what, "max_dim %d keepdim %d on %s", dim, keep,
                         layout_names[l]);
                check_result(what, y, ondim, oshape, expected, 0, 0);
                check_result(what, arg, ondim, oshape, arg_expected, 0, 0);
                tensor_free(y);
                tensor_free(arg);
                y = tensor_max_dim(x, dim, keep, NULL);
                check_result(what, y, ondim, oshape, expected, 0, 0);
                tensor_free(y);
            }
        tensor_free(x);
    }
    /* NaN. */
    Tensor *x = tensor_from_data(2, (int64_t[]){2, 4}, (float[]){1, NAN, 3, NAN, -1, -5, 2, 2});
    Tensor *arg = NULL, *y = tensor_max_dim(x, 1, false, &arg);
    check_result("max_dim nan", y, 1, (int64_t[]){2}, (double[]){NAN, 2}, 0, 0);
    check_result("argmax nan", arg, 1, (int64_t[]){2}, (double[]){1, 2}, 0, 0);
    tensor_free(y);
    tensor_free(arg);
    y = tensor_min(x, 1, (int[]){-1}, false);
    check_result("min nan", y, 1, (int64_t[]){2}, (double[]){NAN, -5}, 0, 0);
    tensor_free(y);
    tensor_free(x);
    /* Large, with ties, through the split paths (threads 3). */
    omp_set_num_threads(3);
    static const int64_t shapes[][2] = {{3, 60000}, {60000, 3}, {5, 7000}};
    for (int s = 0; s < 3; s++) {
        x = make_layout(2, shapes[s], LAYOUT_CONTIGUOUS, 4);
        for (int dim = 0; dim < 2; dim++) {
            bool red[2] = {dim == 0, dim == 1};
            int64_t oshape[2];
            int ondim = reduced_shape(x, red, false, oshape);
            double *expected = malloc(sizeof(double) * 60000),
                   *arg_expected = malloc(sizeof(double) * 60000);
            ref_reduce(x, red, R_MAX, expected, arg_expected);
            y = tensor_max_dim(x, dim, false, &arg);
            check_result("max_dim large", y, ondim, oshape, expected, 0, 0);
            check_result("argmax large", arg, ondim, oshape, arg_expected, 0, 0);
            tensor_free(y);
            tensor_free(arg);
            free(expected);
            free(arg_expected);
        }
        tensor_free(x);
    }
}

/* torch: sum over nothing is 0, mean is NaN, logsumexp is -inf, max is an error. */
static void test_reduce_empty(void **state) {
    Tensor *x = tensor_zeros(SHAPE(0, 3));
    Tensor *y = tensor_sum(x, 1, (int[]){0}, false);
    check_result("sum empty", y, 1, (int64_t[]){3}, (double[]){0, 0, 0}, 0, 0);
    tensor_free(y);
    y = tensor_mean(x, 1, (int[]){0}, true);
    check_result("mean empty", y, 2, (int64_t[]){1, 3}, (double[]){NAN, NAN, NAN}, 0, 0);
    tensor_free(y);
    y = tensor_logsumexp(x, 1, (int[]){0}, false);
    check_result("logsumexp empty", y, 1, (int64_t[]){3},
                 (double[]){-INFINITY, -INFINITY, -INFINITY}, 0, 0);
    tensor_free(y);
    y = tensor_sum(x, 0, NULL, false);
    check_result("sum all empty", y, 0, NULL, (double[]){0}, 0, 0);
    tensor_free(y);
    /* Reducing the non-empty dim leaves an empty result. */
    y = tensor_max(x, 1, (int[]){1}, false);
    check_result("max over non-empty dim of empty", y, 1, (int64_t[]){0}, NULL, 0, 0);
    tensor_free(y);
    hg_clear_error();
    assert_null(tensor_max(x, 1, (int[]){0}, false));
    assert_int_equal(hg_last_status(), HG_ERR_SHAPE);
    assert_non_null(strstr(hg_last_error(), "max: cannot reduce over an empty dim"));
    assert_non_null(strstr(hg_last_error(), "[0,3]"));
    assert_null(tensor_min(x, 0, NULL, false));
    Tensor *arg = (Tensor *)1;
    assert_null(tensor_max_dim(x, 0, false, &arg));
    assert_null(arg);
    assert_true(tensor_sum_all(x) == 0.0);
    tensor_free(x);
}

static void test_reduce_scalar(void **state) {
    Tensor *x = tensor_scalar(2.5f);
    for (int k = 0; k < 5; k++) {
        Tensor *y = reduce_fns[k](x, 0, NULL, false);
        check_result(kind_names[k], y, 0, NULL, (double[]){2.5}, 1e-6, 0);
        tensor_free(y);
        y = reduce_fns[k](x, 1, (int[]){-1}, true);
        check_result(kind_names[k], y, 0, NULL, (double[]){2.5}, 1e-6, 0);
        tensor_free(y);
    }
    Tensor *arg = NULL, *y = tensor_max_dim(x, 0, false, &arg);
    check_result("max_dim 0-d", y, 0, NULL, (double[]){2.5}, 0, 0);
    check_result("argmax 0-d", arg, 0, NULL, (double[]){0}, 0, 0);
    tensor_free(y);
    tensor_free(arg);
    y = tensor_softmax(x, -1);
    check_result("softmax 0-d", y, 0, NULL, (double[]){1}, 0, 0);
    tensor_free(y);
    y = tensor_log_softmax(x, 0);
    check_result("log_softmax 0-d", y, 0, NULL, (double[]){0}, 0, 0);
    tensor_free(y);
    assert_null(tensor_sum(x, 1, (int[]){1}, false));
    assert_int_equal(hg_last_status(), HG_ERR_DIM);
    assert_true(tensor_sum_all(x) == 2.5);
    tensor_free(x);
}

static void test_logsumexp_stability(void **state) {
    const float v[] = {1000, 1000, -1000, -1000,     -INFINITY, -INFINITY, INFINITY,
                       1,    NAN,  1,     -INFINITY, 0,         100,       -100};
    Tensor *x = tensor_from_data(2, (int64_t[]){7, 2}, v);
    Tensor *y = tensor_logsumexp(x, 1, (int[]){1}, false);
    double expected[7] = {1000 + log(2.0),         -1000 + log(2.0), -INFINITY, INFINITY, NAN, 0,
                          100 + log1p(exp(-200.0))};
    check_result("logsumexp stable", y, 1, (int64_t[]){7}, expected, 1e-6, 1e-6);
    tensor_free(y);
    /* Same over dim 0 of the transpose (outer loop order). */
    Tensor *xt = tensor_transpose(x, 0, 1);
    y = tensor_logsumexp(xt, 1, (int[]){0}, true);
    check_result("logsumexp stable outer", y, 2, (int64_t[]){1, 7}, expected, 1e-6, 1e-6);
    tensor_free(y);
    tensor_free(xt);
    tensor_free(x);
}

/* ---- sum_all, sum_to_shape ---- */

static void test_sum_all(void **state) {
    omp_set_num_threads(3);
    const int64_t shape[2] = {613, 500};
    for (int l = 0; l < LAYOUT_COUNT; l++) {
        Tensor *x = make_layout(2, shape, (Layout)l, 0);
        double expected = 0;
        for (int64_t i = 0; i < tensor_numel(x); i++) expected += elem_linear(x, i);
        double got = tensor_sum_all(x);
        if (fabs(got - expected) > 1e-9 * (1 + fabs(expected)))
            fail_msg("sum_all on %s: %.15g vs %.15g", layout_names[l], got, expected);
        tensor_free(x);
    }
    /* Double accumulation: 2^24 + many ones is exact in double, not in float. */
    Tensor *x = tensor_ones(SHAPE(100000));
    tensor_data(x)[0] = 16777216.0f;
    assert_true(tensor_sum_all(x) == 16777216.0 + 99999.0);
    tensor_free(x);
    assert_true(isnan(tensor_sum_all(NULL)));
}

/* Results do not depend on the number of threads (bit for bit). */
static void test_reduce_thread_independent(void **state) {
    static const int64_t shapes[][2] = {{3, 50000}, {50000, 3}, {613, 500}};
    for (int s = 0; s < 3; s++) {
        Tensor *x = make_layout(2, shapes[s], LAYOUT_CONTIGUOUS, 0);
        Tensor *r[2][3];
        double all[2];
        for (int t = 0; t < 2; t++) {
            omp_set_num_threads(t == 0 ? 1 : 3);
            r[t][0] = tensor_sum(x, 1, (int[]){0}, false);
            r[t][1] = tensor_mean(x, 1, (int[]){1}, false);
            r[t][2] = tensor_logsumexp(x, 0, NULL, false);
            all[t] = tensor_sum_all(x);
        }
        for (int k = 0; k < 3; k++) {
            assert_int_equal(tensor_numel(r[0][k]), tensor_numel(r[1][k]));
            assert_memory_equal(tensor_data(r[0][k]), tensor_data(r[1][k]),
                                sizeof(float) * (size_t)tensor_numel(r[0][k]));
            tensor_free(r[0][k]);
            tensor_free(r[1][k]);
        }
        assert_true(all[0] == all[1]);
        tensor_free(x);
    }
}

static void test_sum_to_shape(void **state) {
    const int64_t xs[3] = {2, 3, 4};
    static const struct {
        int ndim;
        int64_t shape[5];
        bool red[3]; /* dims of x summed */
    } cases[] = {
        {2, {3, 1}, {true, false, true}},      {3, {1, 3, 4}, {true, false, false}},
        {1, {4}, {true, true, false}},         {0, {0}, {true, true, true}},
        {3, {2, 3, 4}, {false, false, false}}, {5, {1, 1, 2, 1, 4}, {false, true, false}},
        {3, {1, 1, 1}, {true, true, true}},
    };
    for (int l = 0; l < LAYOUT_COUNT; l++) {
        Tensor *x = make_layout(3, xs, (Layout)l, 0);
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            double expected[24];
            ref_reduce(x, cases[c].red, R_SUM, expected, NULL);
            Tensor *y = tensor_sum_to_shape(x, cases[c].ndim, cases[c].shape);
            char what[80];
            snprintf(what, sizeof what, "sum_to_shape case %zu on %s", c, layout_names[l]);
            check_result(what, y, cases[c].ndim, cases[c].shape, expected, 1e-6, 1e-6);
            tensor_free(y);
        }
        tensor_free(x);
    }
    Tensor *x = tensor_zeros(3, xs);
    hg_clear_error();
    assert_null(tensor_sum_to_shape(x, 1, (int64_t[]){5}));
    assert_int_equal(hg_last_status(), HG_ERR_SHAPE);
    assert_string_equal(hg_last_error(), "sum_to_shape: cannot sum [2,3,4] down to [5]");
    assert_null(tensor_sum_to_shape(x, 4, (int64_t[]){2, 1, 1, 4}));
    assert_null(tensor_sum_to_shape(x, 2, (int64_t[]){2, 4}));
    tensor_free(x);
}

/* ---- softmax ---- */

static void ref_softmax(const Tensor *x, int dim, bool log_form, double *out) {
    int64_t n = tensor_numel(x), len = x->shape[dim], inner = 1;
    for (int d = dim + 1; d < x->ndim; d++) inner *= x->shape[d];
    for (int64_t base = 0; base < n; base++) {
        if (base / inner % len != 0) continue; /* first element of a slice along dim */
        double m = -INFINITY, s = 0;
        for (int64_t j = 0; j < len; j++) m = fmax(m, elem_linear(x, base + j * inner));
        for (int64_t j = 0; j < len; j++) s += exp(elem_linear(x, base + j * inner) - m);
        for (int64_t j = 0; j < len; j++) {
            double v = elem_linear(x, base + j * inner);
            out[base + j * inner] = log_form ? v - m - log(s) : exp(v - m) / s;
        }
    }
}

static void check_softmax(const Tensor *x, int dim, const char *layout) {
    int64_t n = tensor_numel(x);
    double *expected = malloc(sizeof(double) * (size_t)(n ? n : 1));
    int d = dim < 0 ? dim + x->ndim : dim;
    for (int log_form = 0; log_form < 2; log_form++) {
        ref_softmax(x, d, log_form, expected);
        Tensor *y = log_form ? tensor_log_softmax(x, dim) : tensor_softmax(x, dim);
        char what[100];
        snprintf(what, sizeof what, "%s dim %d on %s", log_form ? "log_softmax" : "softmax", dim,
                 layout);
        check_result(what, y, x->ndim, x->shape, expected, 1e-5, 1e-7);
        tensor_free(y);
    }
    free(expected);
}

static void test_softmax(void **state) {
    const int64_t shape[3] = {4, 5, 6};
    for (int l = 0; l < LAYOUT_COUNT; l++) {
        Tensor *x = make_layout(3, shape, (Layout)l, 0);
        for (int dim = -3; dim < 3; dim++) check_softmax(x, dim, layout_names[l]);
        tensor_free(x);
    }
    omp_set_num_threads(3);
    static const int64_t big[][3] = {{3, 5, 300}, {300, 200, 1}, {2, 40000, 1}, {50, 700, 1}};
    static const int big_dims[] = {1, 0, 1, -2};
    for (int c = 0; c < 4; c++) {
        Tensor *x = make_layout(3, big[c], LAYOUT_CONTIGUOUS, 0);
        check_softmax(x, big_dims[c], "large");
        tensor_free(x);
    }
    Tensor *empty = tensor_zeros(SHAPE(0, 4));
    check_softmax(empty, 1, "empty");
    Tensor *y = tensor_softmax(empty, 0);
    assert_ok_ptr(y);
    tensor_free(y);
    tensor_free(empty);
}

static void test_softmax_stability(void **state) {
    Tensor *x = tensor_from_data(
        2, (int64_t[]){3, 3},
        (float[]){1000, 999, -INFINITY, -1000, -1001, -1002, -INFINITY, -INFINITY, -INFINITY});
    double e1 = exp(-1.0), e2 = exp(-2.0), s0 = 1 + e1, s1 = 1 + e1 + e2;
    Tensor *y = tensor_softmax(x, 1);
    check_result("softmax stable", y, 2, x->shape,
                 (double[]){1 / s0, e1 / s0, 0, 1 / s1, e1 / s1, e2 / s1, NAN, NAN, NAN}, 1e-6,
                 1e-7);
    tensor_free(y);
    y = tensor_log_softmax(x, -1);
    check_result("log_softmax stable", y, 2, x->shape,
                 (double[]){-log(s0), -1 - log(s0), -INFINITY, -log(s1), -1 - log(s1), -2 - log(s1),
                            NAN, NAN, NAN},
                 1e-6, 1e-6);
    tensor_free(y);
    /* Along dim 0 of the transpose (the lane loop). */
    Tensor *xt = tensor_transpose(x, 0, 1);
    Tensor *xc = tensor_contiguous(xt);
    y = tensor_softmax(xc, 0);
    check_result("softmax stable lanes", y, 2, xc->shape,
                 (double[]){1 / s0, 1 / s1, NAN, e1 / s0, e1 / s1, NAN, 0, e2 / s1, NAN}, 1e-6,
                 1e-7);
    tensor_free(y);
    tensor_free(xc);
    tensor_free(xt);
    tensor_free(x);
}

static void test_reduce_errors(void **state) {
    Tensor *x = tensor_zeros(SHAPE(2, 3));
    hg_clear_error();
    assert_null(tensor_sum(x, 1, (int[]){2}, false));
    assert_int_equal(hg_last_status(), HG_ERR_DIM);
    assert_string_equal(hg_last_error(), "sum: dim 2 out of range for shape [2,3]");
    assert_null(tensor_mean(x, 2, (int[]){1, -1}, false));
    assert_int_equal(hg_last_status(), HG_ERR_DIM);
    assert_non_null(strstr(hg_last_error(), "repeated"));
    assert_null(tensor_max(x, 3, (int[]){0, 1, 0}, false));
    assert_null(tensor_logsumexp(x, 1, (int[]){-3}, false));
    assert_non_null(strstr(hg_last_error(), "logsumexp"));
    assert_null(tensor_max_dim(x, 5, false, NULL));
    assert_null(tensor_softmax(x, 2));
    assert_string_equal(hg_last_error(), "softmax: dim 2 out of range for shape [2,3]");
    assert_null(tensor_log_softmax(NULL, 0));
    assert_null(tensor_sum(NULL, 0, NULL, false));
    assert_int_equal(hg_last_status(), HG_ERR_ARG);
    tensor_free(x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reduce_dims_and_layouts),
        cmocka_unit_test(test_reduce_large),
        cmocka_unit_test(test_max_dim),
        cmocka_unit_test(test_reduce_empty),
        cmocka_unit_test(test_reduce_scalar),
        cmocka_unit_test(test_logsumexp_stability),
        cmocka_unit_test(test_sum_all),
        cmocka_unit_test(test_reduce_thread_independent),
        cmocka_unit_test(test_sum_to_shape),
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_softmax_stability),
        cmocka_unit_test(test_reduce_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
