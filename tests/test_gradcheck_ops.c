/* Gradient check of every op in autograd/ops.h with respect to every input
 * (central differences, float32, relative error < 1e-3), including broadcast
 * and non-contiguous inputs, keepdim variants and multi-dim reductions; and a
 * check that gradcheck itself rejects a wrong backward.
 *
 * Inputs keep away from the points where an op's derivative jumps (relu, abs,
 * clamp, max, ...) by more than the step eps = 1e-2, and away from the
 * singularities of log, sqrt, reciprocal and div. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "tensor/ops.h"
#include "tensor/rng.h"
#include "tests/testutil.h"

/* ---------------------------------------------------------------- inputs */

enum {
    NONCONTIG = 1, /* the value is a transposed view (last two dims) of a buffer */
    FROZEN = 2,    /* requires_grad = false */
};

/* Kinks (points to stay away from) for the input being made; margin 0.1. */
typedef struct {
    int n;
    float at[3];
} Kinks;

static const Kinks NO_KINKS = {0, {0}};
static const Kinks KINK_0 = {1, {0}};

static Rng rng;

static bool near_kink(float v, Kinks k, float margin) {
    for (int i = 0; i < k.n; i++)
        if (fabsf(v - k.at[i]) < margin) return true;
    return false;
}

/* A leaf of `shape` whose row-major elements come from `values` (n floats). */
static Var *leaf_from(int ndim, const int64_t *shape, const float *values, unsigned flags) {
    Tensor *t;
    if (flags & NONCONTIG) {
        /* Store the transpose contiguously, then view it transposed back. */
        assert_true(ndim >= 2);
        int64_t tshape[TENSOR_MAX_DIMS];
        memcpy(tshape, shape, sizeof(int64_t) * (size_t)ndim);
        tshape[ndim - 2] = shape[ndim - 1];
        tshape[ndim - 1] = shape[ndim - 2];
        Tensor *base = tensor_empty(ndim, tshape);
        t = tensor_transpose(base, -1, -2);
        tensor_free(base);
        Tensor *src = tensor_from_data(ndim, shape, values);
        assert_ok(tensor_copy_(t, src));
        tensor_free(src);
        if (shape[ndim - 1] > 1 && shape[ndim - 2] > 1) assert_false(tensor_is_contiguous(t));
    } else {
        t = tensor_from_data(ndim, shape, values);
    }
    Var *v = var_new(t, !(flags & FROZEN));
    assert_ok_ptr(v);
    return v;
}

static int64_t numel_of(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    return n;
}

/* Uniform values in [low, high], redrawn when within 0.1 of a kink. */
static Var *input(int ndim, const int64_t *shape, float low, float high, Kinks kinks,
                  unsigned flags) {
    int64_t n = numel_of(ndim, shape);
    float *values = malloc(sizeof(float) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) {
        do values[i] = low + (high - low) * rng_uniform(&rng);
        while (near_kink(values[i], kinks, 0.1f));
    }
    Var *v = leaf_from(ndim, shape, values, flags);
    free(values);
    return v;
}

/* Distinct values on a grid: (p_i - n/2 + offset) * 0.2 for a random
 * permutation p. Two grids with offsets 0 and 0.5 differ everywhere by at
 * least 0.1, and within one grid values differ by at least 0.2: no ties. */
static Var *grid_input(int ndim, const int64_t *shape, float offset, unsigned flags) {
    int64_t n = numel_of(ndim, shape);
    int64_t *perm = malloc(sizeof(int64_t) * (size_t)n);
    float *values = malloc(sizeof(float) * (size_t)n);
    rng_permutation(&rng, perm, n);
    for (int64_t i = 0; i < n; i++) values[i] = ((float)perm[i] - (float)(n / 2) + offset) * 0.2f;
    Var *v = leaf_from(ndim, shape, values, flags);
    free(perm);
    free(values);
    return v;
}

#define S(...) SHAPE(__VA_ARGS__)

/* Runs gradcheck with the default options, asserts it passes and that every
 * element of every input that requires a gradient was checked; frees inputs. */
static void check(const char *what, GradcheckFn f, void *ctx, int n, Var **in) {
    GradcheckReport rep;
    hg_status s = gradcheck(f, ctx, n, in, NULL, &rep);
    if (s != HG_OK) fail_msg("%s: %s", what, hg_last_error());
    int64_t expected = 0;
    for (int i = 0; i < n; i++)
        if (in[i]->requires_grad) expected += tensor_numel(in[i]->value);
    assert_int_equal(rep.checked, expected);
    assert_true(rep.max_rel_error <= 1e-3);
    for (int i = 0; i < n; i++) var_free(in[i]);
}

static void check_at(const char *fn, int line, GradcheckFn f, const void *ctx, int n, Var **in) {
    char what[96];
    snprintf(what, sizeof what, "%s (line %d)", fn, line);
    check(what, f, (void *)ctx, n, in);
}
static void check1(const char *fn, int line, GradcheckFn f, const void *ctx, Var *a) {
    check_at(fn, line, f, ctx, 1, (Var *[]){a});
}
static void check2(const char *fn, int line, GradcheckFn f, const void *ctx, Var *a, Var *b) {
    check_at(fn, line, f, ctx, 2, (Var *[]){a, b});
}
/* CHECK1(f, ctx, x) / CHECK2(f, ctx, a, b): gradcheck f on fresh inputs. */
#define CHECK1(f, ...) check1(#f, __LINE__, f, __VA_ARGS__)
#define CHECK2(f, ...) check2(#f, __LINE__, f, __VA_ARGS__)

/* Op arguments passed to the functions under test. */
typedef struct {
    float p, q;
    int ndims;
    int dims[TENSOR_MAX_DIMS];
    bool keepdim, ta, tb;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    int64_t start, length, count;
    const int64_t *index;
    const Tensor *cond;
} Args;

typedef Var *(*MakeInput)(int ndim, const int64_t *shape, unsigned flags);

static Var *any_input(int ndim, const int64_t *shape, unsigned flags) {
    return input(ndim, shape, -2, 2, NO_KINKS, flags);
}
/* Divisors: |b| in [0.6, 2]. */
static Var *divisor_input(int ndim, const int64_t *shape, unsigned flags) {
    int64_t n = numel_of(ndim, shape);
    float *v = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) {
        float mag = 0.6f + 1.4f * rng_uniform(&rng);
        v[i] = rng_uniform(&rng) < 0.5f ? -mag : mag;
    }
    Var *x = leaf_from(ndim, shape, v, flags);
    free(v);
    return x;
}

/* ---------------------------------------------------------------- unary */

#define UNARY_FN(name, call)                                                                       \
    static Var *f_##name(Tape *t, Var **in, void *c) {                                             \
        const Args *a = c;                                                                         \
        (void)a;                                                                                   \
        return call;                                                                               \
    }

UNARY_FN(neg, ag_neg(t, in[0]))
UNARY_FN(exp, ag_exp(t, in[0]))
UNARY_FN(log, ag_log(t, in[0]))
UNARY_FN(sqrt, ag_sqrt(t, in[0]))
UNARY_FN(abs, ag_abs(t, in[0]))
UNARY_FN(square, ag_square(t, in[0]))
UNARY_FN(reciprocal, ag_reciprocal(t, in[0]))
UNARY_FN(sin, ag_sin(t, in[0]))
UNARY_FN(cos, ag_cos(t, in[0]))
UNARY_FN(tanh, ag_tanh(t, in[0]))
UNARY_FN(sigmoid, ag_sigmoid(t, in[0]))
UNARY_FN(relu, ag_relu(t, in[0]))
UNARY_FN(relu6, ag_relu6(t, in[0]))
UNARY_FN(silu, ag_silu(t, in[0]))
UNARY_FN(gelu, ag_gelu(t, in[0]))
UNARY_FN(softplus, ag_softplus(t, in[0], a->p))
UNARY_FN(log_sigmoid, ag_log_sigmoid(t, in[0]))
UNARY_FN(clamp, ag_clamp(t, in[0], a->p, a->q))
UNARY_FN(scale, ag_scale(t, in[0], a->p))
UNARY_FN(add_scalar, ag_add_scalar(t, in[0], a->p))
UNARY_FN(pow_scalar, ag_pow_scalar(t, in[0], a->p))

static void test_unary(void **state) {
    (void)state;
    rng = rng_new(101);
    const int64_t *sh = (const int64_t[]){3, 4};
    CHECK1(f_neg, NULL, input(2, sh, -2, 2, NO_KINKS, 0));
    CHECK1(f_exp, NULL, input(2, sh, -2, 2, NO_KINKS, 0));
    CHECK1(f_exp, NULL, input(2, sh, -2, 2, NO_KINKS, NONCONTIG));
    CHECK1(f_log, NULL, input(2, sh, 0.5f, 3, NO_KINKS, 0));
    CHECK1(f_sqrt, NULL, input(2, sh, 0.5f, 3, NO_KINKS, 0));
    CHECK1(f_abs, NULL, input(2, sh, -2, 2, KINK_0, 0));
    CHECK1(f_square, NULL, input(2, sh, -2, 2, NO_KINKS, NONCONTIG));
    CHECK1(f_reciprocal, NULL, divisor_input(2, sh, 0));
    CHECK1(f_sin, NULL, input(2, sh, -3, 3, NO_KINKS, 0));
    CHECK1(f_cos, NULL, input(2, sh, -3, 3, NO_KINKS, 0));
    CHECK1(f_tanh, NULL, input(2, sh, -2, 2, NO_KINKS, 0));
    CHECK1(f_sigmoid, NULL, input(2, sh, -3, 3, NO_KINKS, 0));
    CHECK1(f_relu, NULL, input(2, sh, -2, 2, KINK_0, 0));
    CHECK1(f_relu, NULL, input(2, sh, -2, 2, KINK_0, NONCONTIG));
    CHECK1(f_relu6, NULL, input(2, sh, -2, 8, (Kinks){2, {0, 6}}, 0));
    CHECK1(f_silu, NULL, input(2, sh, -3, 3, NO_KINKS, 0));
    CHECK1(f_gelu, NULL, input(2, sh, -3, 3, NO_KINKS, 0));
    CHECK1(f_softplus, &(Args){.p = 1.0f}, input(2, sh, -3, 3, NO_KINKS, 0));
    CHECK1(f_softplus, &(Args){.p = 2.5f}, input(2, sh, -3, 3, NO_KINKS, NONCONTIG));
    CHECK1(f_log_sigmoid, NULL, input(2, sh, -4, 4, NO_KINKS, 0));
    CHECK1(f_clamp, &(Args){.p = -0.5f, .q = 0.7f},
           input(2, sh, -2, 2, (Kinks){2, {-0.5f, 0.7f}}, 0));
    CHECK1(f_scale, &(Args){.p = -2.5f}, input(2, sh, -2, 2, NO_KINKS, 0));
    CHECK1(f_add_scalar, &(Args){.p = 1.5f}, input(2, sh, -2, 2, NO_KINKS, 0));
    CHECK1(f_pow_scalar, &(Args){.p = 2.5f}, input(2, sh, 0.5f, 2, NO_KINKS, 0));
    CHECK1(f_pow_scalar, &(Args){.p = -1.5f}, input(2, sh, 0.5f, 2, NO_KINKS, 0));
    /* x^3 has a third derivative of 6, so the central difference is off by
     * eps^2 = 1e-4 (times the weight): |x| >= 0.6 keeps that small next to the
     * gradient 3 x^2. */
    CHECK1(f_pow_scalar, &(Args){.p = 3.0f}, divisor_input(2, sh, NONCONTIG));
    CHECK1(f_pow_scalar, &(Args){.p = 0.0f}, input(2, sh, -2, 2, NO_KINKS, 0));
}

/* ---------------------------------------------------------------- binary */

static Var *f_add(Tape *t, Var **in, void *c) {
    return ag_add(t, in[0], in[1]);
}
static Var *f_sub(Tape *t, Var **in, void *c) {
    return ag_sub(t, in[0], in[1]);
}
static Var *f_mul(Tape *t, Var **in, void *c) {
    return ag_mul(t, in[0], in[1]);
}
static Var *f_div(Tape *t, Var **in, void *c) {
    return ag_div(t, in[0], in[1]);
}
static Var *f_maximum(Tape *t, Var **in, void *c) {
    return ag_maximum(t, in[0], in[1]);
}
static Var *f_minimum(Tape *t, Var **in, void *c) {
    return ag_minimum(t, in[0], in[1]);
}
static Var *f_where(Tape *t, Var **in, void *c) {
    return ag_where(t, ((const Args *)c)->cond, in[0], in[1]);
}
/* One Var as both operands: x * x and x / (x + 3). */
static Var *f_mul_self(Tape *t, Var **in, void *c) {
    return ag_mul(t, in[0], in[0]);
}
static Var *f_div_self(Tape *t, Var **in, void *c) {
    return ag_div(t, in[0], ag_add_scalar(t, in[0], 3.0f));
}

/* The broadcasting patterns every binary op is checked on. */
static void check_binary(const char *name, GradcheckFn f, MakeInput make_b) {
    char what[64];
    snprintf(what, sizeof what, "%s same shape", name);
    check(what, f, NULL, 2, (Var *[]){any_input(S(2, 3, 4), 0), make_b(S(2, 3, 4), 0)});
    snprintf(what, sizeof what, "%s (2,3,4) with (3,1)", name);
    check(what, f, NULL, 2, (Var *[]){any_input(S(2, 3, 4), 0), make_b(S(3, 1), 0)});
    snprintf(what, sizeof what, "%s (4) with (2,3,4)", name);
    check(what, f, NULL, 2, (Var *[]){any_input(S(4), 0), make_b(S(2, 3, 4), 0)});
    snprintf(what, sizeof what, "%s with a 0-d tensor", name);
    check(what, f, NULL, 2, (Var *[]){any_input(S(3, 4), 0), make_b(0, NULL, 0)});
    snprintf(what, sizeof what, "%s (3,1) with (1,4)", name);
    check(what, f, NULL, 2, (Var *[]){any_input(S(3, 1), 0), make_b(S(1, 4), 0)});
    snprintf(what, sizeof what, "%s non-contiguous", name);
    check(what, f, NULL, 2, (Var *[]){any_input(S(3, 4), NONCONTIG), make_b(S(3, 4), NONCONTIG)});
    snprintf(what, sizeof what, "%s first input frozen", name);
    check(what, f, NULL, 2, (Var *[]){any_input(S(3, 4), FROZEN), make_b(S(4), 0)});
    snprintf(what, sizeof what, "%s second input frozen", name);
    check(what, f, NULL, 2, (Var *[]){any_input(S(3, 4), 0), make_b(S(3, 4), FROZEN)});
}

static void test_binary(void **state) {
    (void)state;
    rng = rng_new(202);
    check_binary("add", f_add, any_input);
    check_binary("sub", f_sub, any_input);
    check_binary("mul", f_mul, any_input);
    check_binary("div", f_div, divisor_input);
    CHECK1(f_mul_self, NULL, any_input(S(3, 4), 0));
    CHECK1(f_div_self, NULL, input(S(3, 4), 0, 2, NO_KINKS, 0));
}

/* a on grid offset 0, b on grid offset 0.5: |a - b| >= 0.1 for every pair. */
static void test_maximum_minimum(void **state) {
    (void)state;
    rng = rng_new(303);
    GradcheckFn fns[2] = {f_maximum, f_minimum};
    for (int i = 0; i < 2; i++) {
        CHECK2(fns[i], NULL, grid_input(S(2, 3, 4), 0, 0), grid_input(S(2, 3, 4), 0.5f, 0));
        CHECK2(fns[i], NULL, grid_input(S(2, 3, 4), 0, 0), grid_input(S(3, 1), 0.5f, 0));
        CHECK2(fns[i], NULL, grid_input(S(3, 1), 0.5f, 0), grid_input(S(1, 4), 0, 0));
        CHECK2(fns[i], NULL, grid_input(S(3, 4), 0, NONCONTIG), grid_input(S(4), 0.5f, 0));
        CHECK2(fns[i], NULL, grid_input(S(3, 4), 0, FROZEN), grid_input(S(3, 4), 0.5f, 0));
    }
}

/* Ties: maximum(x, x) = x and the max over copies of x is x, so the exact
 * derivative is 1 and is only recovered when tied inputs share the gradient
 * (half each for maximum/minimum, evenly for max), as PyTorch does. */
static Var *f_maximum_self(Tape *t, Var **in, void *c) {
    return ag_maximum(t, in[0], in[0]);
}
static Var *f_minimum_self(Tape *t, Var **in, void *c) {
    return ag_minimum(t, in[0], in[0]);
}
static Var *f_max_of_copies(Tape *t, Var **in, void *c) {
    Var *copies = ag_expand(t, in[0], 3, (const int64_t[]){3, 2, 4});
    return ag_max(t, copies, 1, (const int[]){1}, false);
}

static void test_ties(void **state) {
    (void)state;
    rng = rng_new(313);
    CHECK1(f_maximum_self, NULL, any_input(S(3, 4), 0));
    CHECK1(f_minimum_self, NULL, any_input(S(3, 4), 0));
    CHECK1(f_max_of_copies, NULL, any_input(S(3, 1, 4), 0));
}

static void test_where(void **state) {
    (void)state;
    rng = rng_new(404);
    Tensor *cond = tensor_from_data(S(3, 1), (const float[]){1, 0, 2});
    Args args = {.cond = cond};
    CHECK2(f_where, &args, any_input(S(3, 4), 0), any_input(S(4), 0));
    CHECK2(f_where, &args, any_input(S(2, 1, 4), 0), any_input(S(3, 4), NONCONTIG));
    CHECK2(f_where, &args, any_input(S(3, 4), FROZEN), any_input(S(1), 0));
    tensor_free(cond);
}

/* ---------------------------------------------------------------- reductions */

static Var *f_sum(Tape *t, Var **in, void *c) {
    const Args *a = c;
    return ag_sum(t, in[0], a->ndims, a->dims, a->keepdim);
}
static Var *f_mean(Tape *t, Var **in, void *c) {
    const Args *a = c;
    return ag_mean(t, in[0], a->ndims, a->dims, a->keepdim);
}
static Var *f_max(Tape *t, Var **in, void *c) {
    const Args *a = c;
    return ag_max(t, in[0], a->ndims, a->dims, a->keepdim);
}
static Var *f_logsumexp(Tape *t, Var **in, void *c) {
    const Args *a = c;
    return ag_logsumexp(t, in[0], a->ndims, a->dims, a->keepdim);
}
static Var *f_softmax(Tape *t, Var **in, void *c) {
    return ag_softmax(t, in[0], ((const Args *)c)->dims[0]);
}
static Var *f_log_softmax(Tape *t, Var **in, void *c) {
    return ag_log_softmax(t, in[0], ((const Args *)c)->dims[0]);
}

/* The dims patterns every reduction is checked on (x is (2,3,4)). */
static const Args REDUCTIONS[] = {
    {.ndims = 0},                                     /* all, to a 0-d result */
    {.ndims = 0, .keepdim = true},                    /* all, to (1,1,1) */
    {.ndims = 1, .dims = {1}},                        /* (2,4) */
    {.ndims = 1, .dims = {-1}, .keepdim = true},      /* (2,3,1) */
    {.ndims = 2, .dims = {0, 2}},                     /* (3) */
    {.ndims = 2, .dims = {2, 0}, .keepdim = true},    /* (1,3,1) */
    {.ndims = 3, .dims = {0, 1, 2}, .keepdim = false} /* all, listed */
};
#define N_REDUCTIONS (int)(sizeof REDUCTIONS / sizeof REDUCTIONS[0])

static void check_reduction(const char *name, GradcheckFn f, bool grid) {
    char what[64];
    for (int r = 0; r < N_REDUCTIONS; r++)
        for (int nc = 0; nc < 2; nc++) {
            unsigned flags = nc ? NONCONTIG : 0;
            Var *x =
                grid ? grid_input(S(2, 3, 4), 0, flags) : input(S(2, 3, 4), -2, 2, NO_KINKS, flags);
            snprintf(what, sizeof what, "%s pattern %d%s", name, r, nc ? " non-contiguous" : "");
            check(what, f, (void *)&REDUCTIONS[r], 1, (Var *[]){x});
        }
}

static void test_reductions(void **state) {
    (void)state;
    rng = rng_new(505);
    check_reduction("sum", f_sum, false);
    check_reduction("mean", f_mean, false);
    check_reduction("max", f_max, true);
    check_reduction("logsumexp", f_logsumexp, false);
    /* a 1-d input */
    CHECK1(f_max, &(Args){.ndims = 0}, grid_input(S(5), 0, 0));
    CHECK1(f_logsumexp, &(Args){.ndims = 1, .dims = {0}}, input(S(5), -2, 2, NO_KINKS, 0));
}

static void test_softmax(void **state) {
    (void)state;
    rng = rng_new(606);
    for (int d = -1; d < 3; d++) {
        Args a = {.dims = {d}};
        CHECK1(f_softmax, &a, input(S(2, 3, 4), -2, 2, NO_KINKS, 0));
        CHECK1(f_softmax, &a, input(S(2, 3, 4), -2, 2, NO_KINKS, NONCONTIG));
        CHECK1(f_log_softmax, &a, input(S(2, 3, 4), -2, 2, NO_KINKS, 0));
        CHECK1(f_log_softmax, &a, input(S(2, 3, 4), -2, 2, NO_KINKS, NONCONTIG));
    }
}

/* ---------------------------------------------------------------- shapes */

static Var *f_reshape(Tape *t, Var **in, void *c) {
    const Args *a = c;
    return ag_reshape(t, in[0], a->ndim, a->shape);
}
static Var *f_permute(Tape *t, Var **in, void *c) {
    return ag_permute(t, in[0], ((const Args *)c)->dims);
}
static Var *f_transpose(Tape *t, Var **in, void *c) {
    const Args *a = c;
    return ag_transpose(t, in[0], a->dims[0], a->dims[1]);
}
static Var *f_narrow(Tape *t, Var **in, void *c) {
    const Args *a = c;
    return ag_narrow(t, in[0], a->dims[0], a->start, a->length);
}
static Var *f_expand(Tape *t, Var **in, void *c) {
    const Args *a = c;
    return ag_expand(t, in[0], a->ndim, a->shape);
}
/* Views are linear maps; square() after them makes the gradient depend on
 * the values, so a wrong element mapping cannot pass by symmetry. */
static Var *f_permute_square(Tape *t, Var **in, void *c) {
    return ag_square(t, f_permute(t, in, c));
}

static void test_views(void **state) {
    (void)state;
    rng = rng_new(707);
    for (int nc = 0; nc < 2; nc++) {
        unsigned fl = nc ? NONCONTIG : 0;
        CHECK1(f_reshape, &(Args){.ndim = 2, .shape = {4, 6}}, any_input(S(2, 3, 4), fl));
        CHECK1(f_reshape, &(Args){.ndim = 3, .shape = {-1, 2, 2}}, any_input(S(2, 3, 4), fl));
        CHECK1(f_reshape, &(Args){.ndim = 0}, any_input(S(1, 1), fl));
        CHECK1(f_permute, &(Args){.dims = {2, 0, 1}}, any_input(S(2, 3, 4), fl));
        CHECK1(f_permute_square, &(Args){.dims = {1, -1, 0}}, any_input(S(2, 3, 4), fl));
        CHECK1(f_transpose, &(Args){.dims = {0, 2}}, any_input(S(2, 3, 4), fl));
        CHECK1(f_transpose, &(Args){.dims = {-1, -2}}, any_input(S(3, 4), fl));
        CHECK1(f_narrow, &(Args){.dims = {1}, .start = 1, .length = 2}, any_input(S(2, 3, 4), fl));
        CHECK1(f_narrow, &(Args){.dims = {-1}, .start = -3, .length = 2},
               any_input(S(2, 3, 4), fl));
        CHECK1(f_expand, &(Args){.ndim = 3, .shape = {2, 3, 4}}, any_input(S(3, 1), fl));
    }
    CHECK1(f_expand, &(Args){.ndim = 2, .shape = {3, 4}}, any_input(S(4), 0));
    CHECK1(f_expand, &(Args){.ndim = 2, .shape = {3, 4}}, any_input(0, NULL, 0));
}

/* concat of 3 inputs along dim 1 of (2, k, 3) with k = 1, 2, 3. */
static Var *f_concat3(Tape *t, Var **in, void *c) {
    return ag_concat(t, 3, in, 1);
}
/* concat of 5 inputs (more than VAR_MAX_INPUTS) along dim 0, the first used twice. */
static Var *f_concat6(Tape *t, Var **in, void *c) {
    Var *parts[6] = {in[0], in[1], in[2], in[0], in[3], in[4]};
    return ag_concat(t, 6, parts, -2);
}
/* split (2,4,3) into pieces of 1, 2, 1 along dim 1; the middle piece is unused
 * (its gradient is 0) and the others come back squared and reordered. */
static Var *f_split(Tape *t, Var **in, void *c) {
    Var *p[3];
    if (ag_split(t, in[0], 1, 3, (const int64_t[]){1, 2, 1}, p) != HG_OK) return NULL;
    return ag_concat(t, 2, (Var *[]){ag_square(t, p[2]), p[0]}, 1);
}
/* split in two, then both halves multiplied: each gets the other as gradient. */
static Var *f_split_mul(Tape *t, Var **in, void *c) {
    Var *p[2];
    if (ag_split(t, in[0], -1, 2, (const int64_t[]){2, 2}, p) != HG_OK) return NULL;
    return ag_mul(t, p[0], p[1]);
}

static void test_concat_split(void **state) {
    (void)state;
    rng = rng_new(808);
    check("concat3", f_concat3, NULL, 3,
          (Var *[]){any_input(S(2, 1, 3), 0), any_input(S(2, 2, 3), NONCONTIG),
                    any_input(S(2, 3, 3), 0)});
    check("concat3 with a frozen part", f_concat3, NULL, 3,
          (Var *[]){any_input(S(2, 1, 3), 0), any_input(S(2, 2, 3), FROZEN),
                    any_input(S(2, 3, 3), 0)});
    check("concat6", f_concat6, NULL, 5,
          (Var *[]){any_input(S(1, 3), 0), any_input(S(2, 3), 0), any_input(S(1, 3), FROZEN),
                    any_input(S(3, 3), NONCONTIG), any_input(S(1, 3), 0)});
    CHECK1(f_split, NULL, any_input(S(2, 4, 3), 0));
    CHECK1(f_split, NULL, any_input(S(2, 4, 3), NONCONTIG));
    CHECK1(f_split_mul, NULL, any_input(S(3, 4), 0));
}

static Var *f_index_select(Tape *t, Var **in, void *c) {
    const Args *a = c;
    return ag_square(t, ag_index_select(t, in[0], a->dims[0], a->count, a->index));
}
static Var *f_gather(Tape *t, Var **in, void *c) {
    const Args *a = c;
    return ag_square(t, ag_gather(t, in[0], a->dims[0], a->ndim, a->shape, a->index));
}

static void test_indexing(void **state) {
    (void)state;
    rng = rng_new(909);
    /* Repeated indices accumulate; index 1 of dim 1 is never picked. */
    const int64_t sel[] = {2, 0, 2, 3};
    for (int nc = 0; nc < 2; nc++) {
        unsigned fl = nc ? NONCONTIG : 0;
        CHECK1(f_index_select, &(Args){.dims = {1}, .count = 4, .index = sel},
               any_input(S(2, 4, 3), fl));
        CHECK1(f_index_select, &(Args){.dims = {0}, .count = 3, .index = sel},
               any_input(S(4, 3), fl));
        CHECK1(f_index_select, &(Args){.dims = {-1}, .count = 2, .index = sel},
               any_input(S(2, 4), fl));
    }
    /* gather along dim 1 of (3,4) with a (3,2) index; along dim 0 with (2,4). */
    const int64_t g1[] = {3, 3, 0, 2, 1, 1};
    const int64_t g0[] = {2, 0, 0, 1, 2, 2, 1, 0};
    for (int nc = 0; nc < 2; nc++) {
        unsigned fl = nc ? NONCONTIG : 0;
        CHECK1(f_gather, &(Args){.dims = {1}, .ndim = 2, .shape = {3, 2}, .index = g1},
               any_input(S(3, 4), fl));
        CHECK1(f_gather, &(Args){.dims = {0}, .ndim = 2, .shape = {2, 4}, .index = g0},
               any_input(S(3, 4), fl));
    }
}

/* ---------------------------------------------------------------- products */

static Var *f_matmul(Tape *t, Var **in, void *c) {
    const Args *a = c;
    return ag_matmul(t, in[0], in[1], a->ta, a->tb);
}
static Var *f_linear(Tape *t, Var **in, void *c) {
    return ag_linear(t, in[0], in[1], in[2]);
}
static Var *f_linear_nobias(Tape *t, Var **in, void *c) {
    return ag_linear(t, in[0], in[1], NULL);
}

static void test_matmul(void **state) {
    (void)state;
    rng = rng_new(1001);
    const Args nn = {0}, tn = {.ta = true}, nt = {.tb = true}, tt = {.ta = true, .tb = true};
    Args args = nn;
    CHECK2(f_matmul, &args, any_input(S(3, 4), 0), any_input(S(4, 5), 0));
    args = tn;
    CHECK2(f_matmul, &args, any_input(S(4, 3), 0), any_input(S(4, 5), 0));
    args = nt;
    CHECK2(f_matmul, &args, any_input(S(3, 4), 0), any_input(S(5, 4), 0));
    args = tt;
    CHECK2(f_matmul, &args, any_input(S(4, 3), 0), any_input(S(5, 4), 0));
    args = nn;
    CHECK2(f_matmul, &args, any_input(S(3, 4), NONCONTIG), any_input(S(4, 5), NONCONTIG));
    /* batched, with broadcasting batch dims */
    CHECK2(f_matmul, &args, any_input(S(2, 3, 4), 0), any_input(S(4, 5), 0));
    CHECK2(f_matmul, &args, any_input(S(3, 4), 0), any_input(S(2, 4, 5), 0));
    CHECK2(f_matmul, &args, any_input(S(1, 3, 4), 0), any_input(S(2, 4, 5), 0));
    CHECK2(f_matmul, &args, any_input(S(2, 1, 3, 4), 0), any_input(S(3, 4, 2), NONCONTIG));
    args = tt;
    CHECK2(f_matmul, &args, any_input(S(2, 4, 3), 0), any_input(S(2, 5, 4), 0));
    args = tn;
    CHECK2(f_matmul, &args, any_input(S(2, 4, 3), 0), any_input(S(4, 2), 0));
    args = nt;
    CHECK2(f_matmul, &args, any_input(S(3, 4), 0), any_input(S(2, 5, 4), 0));
    /* vectors */
    args = nn;
    CHECK2(f_matmul, &args, any_input(S(3, 4), 0), any_input(S(4), 0));
    CHECK2(f_matmul, &args, any_input(S(2, 3, 4), 0), any_input(S(4), 0));
    CHECK2(f_matmul, &args, any_input(S(4), 0), any_input(S(4, 3), 0));
    CHECK2(f_matmul, &args, any_input(S(4), 0), any_input(S(2, 4, 3), 0));
    CHECK2(f_matmul, &args, any_input(S(4), 0), any_input(S(4), 0));
    args = tn;
    CHECK2(f_matmul, &args, any_input(S(4, 3), 0), any_input(S(4), 0));
    args = nt;
    CHECK2(f_matmul, &args, any_input(S(4), 0), any_input(S(3, 4), 0));
    /* one side frozen */
    args = nn;
    CHECK2(f_matmul, &args, any_input(S(3, 4), FROZEN), any_input(S(4, 5), 0));
    CHECK2(f_matmul, &args, any_input(S(3, 4), 0), any_input(S(4, 5), FROZEN));
}

static void test_linear(void **state) {
    (void)state;
    rng = rng_new(1102);
    check("linear 2-d", f_linear, NULL, 3,
          (Var *[]){any_input(S(5, 4), 0), any_input(S(3, 4), 0), any_input(S(3), 0)});
    check("linear leading dims", f_linear, NULL, 3,
          (Var *[]){any_input(S(2, 3, 4), 0), any_input(S(3, 4), 0), any_input(S(3), 0)});
    check("linear non-contiguous", f_linear, NULL, 3,
          (Var *[]){any_input(S(2, 3, 4), NONCONTIG), any_input(S(3, 4), NONCONTIG),
                    any_input(S(3), 0)});
    check("linear 1-d input", f_linear, NULL, 3,
          (Var *[]){any_input(S(4), 0), any_input(S(2, 4), 0), any_input(S(2), 0)});
    check("linear frozen input", f_linear, NULL, 3,
          (Var *[]){any_input(S(5, 4), FROZEN), any_input(S(3, 4), 0), any_input(S(3), 0)});
    check("linear frozen weight", f_linear, NULL, 3,
          (Var *[]){any_input(S(5, 4), 0), any_input(S(3, 4), FROZEN), any_input(S(3), 0)});
    check("linear no bias", f_linear_nobias, NULL, 2,
          (Var *[]){any_input(S(2, 2, 4), 0), any_input(S(3, 4), 0)});
}

/* A composite: a small MLP with a log-softmax loss, everything at once. */
static Var *f_mlp(Tape *t, Var **in, void *c) {
    Var *h = ag_tanh(t, ag_linear(t, in[0], in[1], in[2]));
    Var *logits = ag_linear(t, h, in[3], NULL);
    const int64_t labels[] = {1, 0, 2, 1};
    Var *lp = ag_gather(t, ag_log_softmax(t, logits, -1), 1, 2, (const int64_t[]){4, 1}, labels);
    return ag_neg(t, ag_mean(t, lp, 0, NULL, false));
}

static void test_composite(void **state) {
    (void)state;
    rng = rng_new(1203);
    check("mlp", f_mlp, NULL, 4,
          (Var *[]){any_input(S(4, 5), 0), any_input(S(6, 5), 0), any_input(S(6), 0),
                    any_input(S(3, 6), 0)});
}

/* ---------------------------------------------------------------- gradcheck itself */

/* cube(x) = x^3 with a backward of the given kind. */
typedef enum { CUBE_RIGHT, CUBE_WRONG, CUBE_ONE_PERCENT_OFF } CubeKind;

static hg_status cube_backward(Var *out) {
    const Tensor *x = out->inputs[0]->value;
    Tensor *x2 = tensor_square(x);
    /* The true derivative is 3 x^2. */
    float factor = out->scalars[0] == CUBE_RIGHT   ? 3.0f
                   : out->scalars[0] == CUBE_WRONG ? 2.0f
                                                   : 3.03f;
    Tensor *d = tensor_scale(x2, factor);
    Tensor *g = tensor_mul(out->grad, d);
    tensor_free(x2);
    tensor_free(d);
    return var_accumulate_grad(out->inputs[0], g);
}

static Var *f_cube(Tape *t, Var **in, void *c) {
    Var *out = tape_record(t, "cube", tensor_pow_scalar(in[0]->value, 3.0f), 1, in, cube_backward);
    if (out) out->scalars[0] = *(const CubeKind *)c;
    return out;
}

/* y = x0 * cube(x1): a wrong backward must be found in input 1, not 0. */
static Var *f_mul_cube(Tape *t, Var **in, void *c) {
    return ag_mul(t, in[0], f_cube(t, &in[1], c));
}

static void test_gradcheck_rejects_wrong_backward(void **state) {
    (void)state;
    rng = rng_new(1304);
    Var *x = input(S(3, 4), 0.5f, 2, NO_KINKS, 0);
    Var *y = input(S(3, 4), -2, 2, NO_KINKS, 0);
    Var *in[2] = {y, x};
    GradcheckReport rep;
    CubeKind kind = CUBE_RIGHT;
    assert_ok(gradcheck(f_mul_cube, &kind, 2, in, NULL, &rep));
    assert_true(rep.max_rel_error < 1e-3);
    assert_int_equal(rep.checked, 24);

    kind = CUBE_WRONG;
    hg_clear_error();
    assert_int_equal(gradcheck(f_mul_cube, &kind, 2, in, NULL, &rep), HG_ERR_CHECK);
    assert_int_equal(rep.worst_input, 1);
    assert_true(rep.max_rel_error > 0.1);
    assert_non_null(strstr(hg_last_error(), "gradcheck"));
    /* The reported pair is the wrong derivative 2 x^2 against the true 3 x^2,
     * both times the same projection weight and y. */
    assert_float_equal(rep.analytic / rep.numeric, 2.0 / 3.0, 1e-3);

    /* 1% off is well outside the 1e-3 tolerance. */
    kind = CUBE_ONE_PERCENT_OFF;
    assert_int_equal(gradcheck(f_mul_cube, &kind, 2, in, NULL, &rep), HG_ERR_CHECK);

    /* A looser tolerance accepts it. */
    GradcheckOptions loose = gradcheck_default_options();
    loose.tolerance = 0.05;
    assert_ok(gradcheck(f_mul_cube, &kind, 2, in, &loose, &rep));
    var_free(x);
    var_free(y);
}

/* Errors of the function reach the caller, inputs are restored. */
static Var *f_bad_shapes(Tape *t, Var **in, void *c) {
    return ag_add(t, in[0], in[1]);
}

static void test_gradcheck_errors(void **state) {
    (void)state;
    rng = rng_new(1405);
    Var *a = any_input(S(2, 3), 0), *b = any_input(S(4), 0);
    Tensor *before = tensor_clone(a->value);
    hg_clear_error();
    assert_int_equal(gradcheck(f_bad_shapes, NULL, 2, (Var *[]){a, b}, NULL, NULL), HG_ERR_SHAPE);
    test_assert_close(a->value, before, 0, 0);
    assert_int_equal(gradcheck(f_add, NULL, 2, (Var *[]){a, NULL}, NULL, NULL), HG_ERR_ARG);
    Var *expanded = var_new(tensor_expand(b->value, S(3, 4)), true);
    assert_int_equal(gradcheck(f_add, NULL, 2, (Var *[]){a, expanded}, NULL, NULL), HG_ERR_ARG);
    var_free(expanded);
    tensor_free(before);
    var_free(a);
    var_free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unary),
        cmocka_unit_test(test_binary),
        cmocka_unit_test(test_maximum_minimum),
        cmocka_unit_test(test_ties),
        cmocka_unit_test(test_where),
        cmocka_unit_test(test_reductions),
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_views),
        cmocka_unit_test(test_concat_split),
        cmocka_unit_test(test_indexing),
        cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_composite),
        cmocka_unit_test(test_gradcheck_rejects_wrong_backward),
        cmocka_unit_test(test_gradcheck_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
