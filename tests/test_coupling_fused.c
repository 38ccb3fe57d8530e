/* The fused coupling op (models/coupling_fused.c) against the generic-op
 * reference block (CouplingOptions.generic_ops) built with the same
 * parameters: forward values, the gradients of every parameter and input,
 * finite-difference gradient checks of the fused op, both clamp forms,
 * conditional and unconditional blocks, odd D, frozen parameters and losses
 * that use only y or only the log-det. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "models/flow.h"
#include "tensor/ops.h"
#include "tensor/rng.h"
#include "tests/testutil.h"

typedef struct Case {
    int64_t dim, cond_dim, hidden; /* hidden 0: the reference's 2 (D - D/2 + Dc) */
    bool new_clamp, hard_permutation;
} Case;

/* Two blocks with identical parameters: [0] generic ops, [1] fused. */
typedef struct Pair {
    Case c;
    ParamSet *ps[2];
    InvertibleModule *block[2];
} Pair;

/* Moves the parameters away from the identity-like initialization, the same
 * way in both blocks: larger subnet outputs (s and t far from 0, tanh out of
 * its linear range), global scales spread around g = 1, random offsets.
 * `strong` also puts one global scale past softplus's linear threshold
 * (beta gamma > 20) and saturates tanh more; the finite-difference checks use
 * the milder setting, whose outputs are small enough for float32 differences. */
static void perturb(ParamSet *ps, uint64_t seed, bool strong) {
    Rng rng = rng_new(seed);
    const float out_scale = strong ? 12.0f : 4.0f, gamma0 = strong ? 45.0f : 6.0f;
    for (int64_t i = 0; i < param_set_size(ps); i++) {
        ParamEntry *e = param_set_at(ps, i);
        float *v = tensor_data(e->var->value);
        int64_t n = tensor_numel(e->var->value);
        if (strstr(e->name, "subnet.2."))
            for (int64_t k = 0; k < n; k++) v[k] *= out_scale;
        else if (strstr(e->name, "global_scale"))
            for (int64_t k = 0; k < n; k++) v[k] = k == 0 ? gamma0 : 6.0f + 3.0f * rng_normal(&rng);
        else if (strstr(e->name, "global_offset"))
            for (int64_t k = 0; k < n; k++) v[k] = 0.5f * rng_normal(&rng);
    }
}

static void pair_new(Pair *p, Case c, uint64_t seed, bool strong) {
    memset(p, 0, sizeof *p);
    p->c = c;
    for (int m = 0; m < 2; m++) {
        Rng rng = rng_new(seed);
        CouplingOptions o = coupling_default_options(c.dim, c.cond_dim);
        o.hidden = c.hidden;
        o.new_clamp = c.new_clamp;
        o.hard_permutation = c.hard_permutation;
        o.generic_ops = m == 0;
        p->ps[m] = param_set_new();
        p->block[m] = coupling_new(p->ps[m], "blk", &o, &rng);
        assert_ok_ptr(p->block[m]);
        perturb(p->ps[m], seed + 100, strong);
    }
    assert_int_equal(param_set_size(p->ps[0]), param_set_size(p->ps[1]));
}

static void pair_free(Pair *p) {
    for (int m = 0; m < 2; m++) {
        invertible_free(p->block[m]);
        param_set_free(p->ps[m]);
    }
}

static void assert_rel(const Tensor *got, const Tensor *want, double tol, const char *what) {
    assert_true(tensor_same_shape(got, want));
    double err = test_max_rel_diff(got, want);
    if (!(err <= tol)) fail_msg("%s: max rel error %.3g > %.3g", what, err, tol);
}

static void test_forward_matches_generic(void **state) {
    (void)state;
    const Case cases[] = {{8, 4, 0, false, false},  {7, 0, 0, false, false},
                          {9, 5, 0, true, false},   {12, 8, 10, true, true},
                          {2, 0, 0, false, false},  {31, 16, 0, false, false},
                          {64, 32, 0, true, false}, {67, 0, 0, false, false}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        Pair p;
        pair_new(&p, cases[k], 7 + k, true);
        Rng rng = rng_new(50 + k);
        const int64_t n = 37;
        Tensor *x = tensor_normal(SHAPE(n, cases[k].dim), 0, 1.5f, &rng);
        Tensor *c =
            cases[k].cond_dim ? tensor_normal(SHAPE(n, cases[k].cond_dim), 0, 1, &rng) : NULL;
        Tensor *y[2], *ld[2];
        for (int m = 0; m < 2; m++) {
            Tape *tape = tape_new();
            Var *l = NULL;
            Var *out = invertible_forward(p.block[m], tape, ag_constant(tape, tensor_ref(x)),
                                          c ? ag_constant(tape, tensor_ref(c)) : NULL, false, &l);
            assert_ok_ptr(out);
            y[m] = tensor_ref(out->value);
            ld[m] = tensor_ref(l->value);
            tape_free(tape);
        }
        char what[96];
        snprintf(what, sizeof what, "case %zu y", k);
        assert_rel(y[1], y[0], 1e-5, what);
        snprintf(what, sizeof what, "case %zu logdet", k);
        assert_rel(ld[1], ld[0], 1e-5, what);
        /* the block is far from the identity: the test can see a wrong scale */
        float largest = 0;
        for (int64_t i = 0; i < n; i++) largest = fmaxf(largest, fabsf(tensor_data(ld[0])[i]));
        if (!(largest > 0.5f)) fail_msg("case %zu: log-det %g too close to 0", k, largest);
        for (int m = 0; m < 2; m++) tensor_free(y[m]), tensor_free(ld[m]);
        tensor_free(x), tensor_free(c);
        pair_free(&p);
    }
}

enum { LOSS_BOTH, LOSS_Y_ONLY, LOSS_LOGDET_ONLY };

/* Gradients of L = sum(wy * y) + sum(wl * logdet) (or one of the two) for
 * block m: x's and c's into *gx, *gc (when they require one), the
 * parameters' left in the ParamSet. */
static void gradients(Pair *p, int m, const Tensor *x, const Tensor *c, bool x_grad, bool c_grad,
                      bool x_noncontig, int loss, uint64_t seed, Tensor **gx, Tensor **gc) {
    param_set_zero_grad(p->ps[m]);
    Rng rng = rng_new(seed);
    Tensor *xv = NULL;
    if (x_noncontig) {
        /* x as a transposed view of its transpose */
        Tensor *xt = tensor_transpose(x, 0, 1);
        Tensor *base = tensor_contiguous(xt);
        xv = tensor_transpose(base, 0, 1);
        tensor_free(xt), tensor_free(base);
        assert_false(tensor_is_contiguous(xv));
    } else {
        xv = tensor_clone(x);
    }
    Var *xvar = var_new(xv, x_grad);
    Var *cvar = c ? var_new(tensor_clone(c), c_grad) : NULL;
    Tape *tape = tape_new();
    Var *ld = NULL;
    Var *y = invertible_forward(p->block[m], tape, xvar, cvar, false, &ld);
    assert_ok_ptr(y);
    Var *wy = ag_constant(tape, tensor_normal(y->value->ndim, y->value->shape, 0, 1, &rng));
    Var *wl = ag_constant(tape, tensor_normal(ld->value->ndim, ld->value->shape, 0, 1, &rng));
    Var *ly = ag_sum(tape, ag_mul(tape, y, wy), 0, NULL, false);
    Var *ll = ag_sum(tape, ag_mul(tape, ld, wl), 0, NULL, false);
    Var *total = loss == LOSS_Y_ONLY ? ly : loss == LOSS_LOGDET_ONLY ? ll : ag_add(tape, ly, ll);
    assert_ok(tape_backward(tape, total, NULL));
    *gx = x_grad ? tensor_ref(xvar->grad) : NULL;
    *gc = c && c_grad ? tensor_ref(cvar->grad) : NULL;
    tape_free(tape);
    var_free(xvar);
    var_free(cvar);
}

static void compare_gradients(Case c, int loss, bool c_grad, bool x_noncontig,
                              const char *frozen_prefix, uint64_t seed) {
    Pair p;
    pair_new(&p, c, seed, true);
    if (frozen_prefix)
        for (int m = 0; m < 2; m++) assert_true(param_set_freeze(p.ps[m], frozen_prefix, true) > 0);
    Rng rng = rng_new(seed + 1);
    const int64_t n = 29;
    Tensor *x = tensor_normal(SHAPE(n, c.dim), 0, 1.5f, &rng);
    Tensor *cond = c.cond_dim ? tensor_normal(SHAPE(n, c.cond_dim), 0, 1, &rng) : NULL;
    bool x_grad = frozen_prefix == NULL; /* with frozen parameters, x is a constant too */
    Tensor *gx[2], *gc[2];
    for (int m = 0; m < 2; m++)
        gradients(&p, m, x, cond, x_grad, c_grad, x_noncontig, loss, seed + 2, &gx[m], &gc[m]);
    char what[160];
    if (x_grad) {
        snprintf(what, sizeof what, "D=%lld loss %d: grad x", (long long)c.dim, loss);
        assert_rel(gx[1], gx[0], 1e-4, what);
    }
    if (cond && c_grad) {
        snprintf(what, sizeof what, "D=%lld loss %d: grad cond", (long long)c.dim, loss);
        assert_rel(gc[1], gc[0], 1e-4, what);
    }
    int compared = 0;
    for (int64_t i = 0; i < param_set_size(p.ps[0]); i++) {
        ParamEntry *e0 = param_set_at(p.ps[0], i), *e1 = param_set_at(p.ps[1], i);
        assert_string_equal(e0->name, e1->name);
        if (!e0->var->requires_grad) {
            assert_null(e1->var->grad);
            continue;
        }
        /* a parameter the loss does not reach has no gradient in the reference
         * (only offsets and scales of the y-free log-det loss, e.g.); the fused
         * op may hand it zeros */
        if (!e0->var->grad) {
            if (e1->var->grad) {
                Tensor *zero = tensor_zeros_like(e1->var->grad);
                assert_true(test_max_rel_diff(e1->var->grad, zero) == 0);
                tensor_free(zero);
            }
            continue;
        }
        if (!e1->var->grad) fail_msg("%s: no gradient from the fused op", e1->name);
        snprintf(what, sizeof what, "D=%lld loss %d: grad %s", (long long)c.dim, loss, e0->name);
        assert_rel(e1->var->grad, e0->var->grad, 1e-4, what);
        compared++;
    }
    /* every trained parameter reaches the loss, but the offset not the log-det */
    assert_true(compared >= (frozen_prefix ? 2 : loss == LOSS_LOGDET_ONLY ? 5 : 6));
    for (int m = 0; m < 2; m++) tensor_free(gx[m]), tensor_free(gc[m]);
    tensor_free(x), tensor_free(cond);
    pair_free(&p);
}

static void test_gradients_match_generic(void **state) {
    (void)state;
    compare_gradients((Case){8, 4, 0, false, false}, LOSS_BOTH, false, false, NULL, 1);
    compare_gradients((Case){8, 4, 0, false, false}, LOSS_BOTH, true, false, NULL, 2);
    compare_gradients((Case){7, 0, 0, false, false}, LOSS_BOTH, false, false, NULL, 3);
    compare_gradients((Case){9, 5, 0, true, false}, LOSS_BOTH, true, true, NULL, 4);
    compare_gradients((Case){11, 6, 14, true, true}, LOSS_BOTH, true, false, NULL, 5);
    compare_gradients((Case){33, 20, 0, false, false}, LOSS_BOTH, true, false, NULL, 6);
}

static void test_gradients_of_one_output(void **state) {
    (void)state;
    compare_gradients((Case){8, 4, 0, false, false}, LOSS_Y_ONLY, true, false, NULL, 11);
    compare_gradients((Case){8, 4, 0, false, false}, LOSS_LOGDET_ONLY, true, false, NULL, 12);
    compare_gradients((Case){5, 0, 0, true, false}, LOSS_LOGDET_ONLY, false, false, NULL, 13);
}

static void test_gradients_with_frozen_parameters(void **state) {
    (void)state;
    /* x constant and the first Linear frozen: dh is not needed at all */
    compare_gradients((Case){8, 4, 0, false, false}, LOSS_BOTH, false, false, "blk.subnet.0", 21);
    /* only the global affine trains */
    compare_gradients((Case){7, 3, 0, true, false}, LOSS_BOTH, false, false, "blk.subnet", 22);
}

/* ---- finite differences on the fused op ---- */

typedef struct GradcheckCase {
    const InvertibleModule *block;
    bool has_cond;
    int64_t n;
} GradcheckCase;

/* [y, logdet] as one (N, D + 1) output, so both are checked at once. */
static Var *fused_block_fn(Tape *tape, Var **in, void *context) {
    const GradcheckCase *g = context;
    Var *ld = NULL;
    Var *y = invertible_forward(g->block, tape, in[0], g->has_cond ? in[1] : NULL, false, &ld);
    if (!y) return NULL;
    Var *parts[2] = {y, ag_reshape(tape, ld, SHAPE(g->n, 1))};
    return ag_concat(tape, 2, parts, 1);
}

/* True when every pre-activation of the first Linear for one row (x, c) is
 * more than `margin` from ReLU's kink (plain loops, independent of the op). */
static bool row_clear_of_kink(const ParamSet *ps, const float *x, const float *c, int64_t d,
                              int64_t dc, float margin) {
    const Var *w1 = param_set_find(ps, "blk.subnet.0.weight");
    const Var *b1 = param_set_find(ps, "blk.subnet.0.bias");
    const int64_t p = d - d / 2, k = p + dc, h = w1->value->shape[0];
    const float *w = tensor_data(w1->value), *b = tensor_data(b1->value);
    for (int64_t j = 0; j < h; j++) {
        double q = b[j];
        for (int64_t i = 0; i < p; i++) q += (double)w[j * k + i] * x[i];
        for (int64_t i = 0; i < dc; i++) q += (double)w[j * k + p + i] * c[i];
        if (fabs(q) <= margin) return false;
    }
    return true;
}

static void gradcheck_fused(Case c, bool cond_grad, uint64_t seed) {
    Pair p;
    pair_new(&p, c, seed, false);
    const int64_t n = 4, d = c.dim, dc = c.cond_dim;
    /* Redraw the inputs until every ReLU input is >= 0.1 from 0 (a step of
     * 2e-2 in an input |x| <= 1.5 or in a weight |w| <= 1 moves it by at most
     * 0.03), so no difference straddles the kink. */
    Rng rng = rng_new(seed + 1);
    Tensor *x = tensor_empty(SHAPE(n, d)), *cond = tensor_empty(SHAPE(n, dc ? dc : 1));
    for (int64_t i = 0; i < n; i++) {
        float *xr = tensor_data(x) + i * d, *cr = tensor_data(cond) + i * dc;
        for (int attempt = 0;; attempt++) {
            assert_true(attempt < 10000);
            for (int64_t j = 0; j < d; j++) xr[j] = 3.0f * rng_uniform(&rng) - 1.5f;
            for (int64_t j = 0; j < dc; j++) cr[j] = 3.0f * rng_uniform(&rng) - 1.5f;
            if (row_clear_of_kink(p.ps[1], xr, cr, d, dc, 0.1f)) break;
        }
    }
    Var *in[8];
    int count = 0;
    in[count++] = var_new(tensor_ref(x), true);
    Var *cvar = dc ? var_new(tensor_ref(cond), cond_grad) : NULL;
    if (cvar) in[count++] = cvar;
    const char *names[] = {"blk.subnet.0.weight", "blk.subnet.0.bias", "blk.subnet.2.weight",
                           "blk.subnet.2.bias",   "blk.global_scale",  "blk.global_offset"};
    for (int i = 0; i < 6; i++) {
        in[count] = param_set_find(p.ps[1], names[i]);
        assert_non_null(in[count]);
        count++;
    }
    GradcheckCase g = {p.block[1], dc > 0, n};
    GradcheckReport report;
    /* The block is five layers deep in float32: rounding in the outputs makes
     * the central differences wrong by ~2e-5 at the default step of 1e-2 (and
     * by ~1e-5 at 2e-2, the step used), so gradients below 0.05 are compared
     * absolutely (floor 0.05) to 2e-3 * 0.05 = 1e-4. A wrong derivation is off
     * by the size of the gradient itself. */
    GradcheckOptions options = gradcheck_default_options();
    options.eps = 2e-2;
    options.tolerance = 2e-3;
    options.floor = 0.05;
    hg_status s = gradcheck(fused_block_fn, &g, count, in, &options, &report);
    if (s != HG_OK)
        fail_msg("gradcheck D=%lld Dc=%lld new_clamp=%d: %s", (long long)d, (long long)dc,
                 c.new_clamp, hg_last_error());
    assert_true(report.checked >= n * d + 6);
    var_free(in[0]);
    var_free(cvar);
    tensor_free(x), tensor_free(cond);
    pair_free(&p);
}

static void test_gradcheck_fused_op(void **state) {
    (void)state;
    gradcheck_fused((Case){6, 4, 0, false, false}, true, 31);  /* conditional, faithful clamp */
    gradcheck_fused((Case){5, 3, 0, true, false}, true, 32);   /* odd D, new clamp */
    gradcheck_fused((Case){7, 0, 0, false, false}, false, 33); /* unconditional, odd D */
    gradcheck_fused((Case){4, 0, 6, true, true}, false, 34);   /* unconditional, new clamp */
    gradcheck_fused((Case){6, 4, 0, true, false}, false, 35);  /* condition without gradient */
}

/* In no-grad mode the op computes the same values and keeps nothing. */
static void test_no_grad_mode(void **state) {
    (void)state;
    Pair p;
    pair_new(&p, (Case){10, 6, 0, false, false}, 41, true);
    Rng rng = rng_new(42);
    Tensor *x = tensor_normal(SHAPE(16, 10), 0, 1, &rng),
           *c = tensor_normal(SHAPE(16, 6), 0, 1, &rng);
    Tape *tape = tape_new();
    Var *l1 = NULL, *l2 = NULL;
    Var *y1 = invertible_forward(p.block[1], tape, ag_constant(tape, tensor_ref(x)),
                                 ag_constant(tape, tensor_ref(c)), false, &l1);
    assert_ok_ptr(y1);
    assert_true(y1->requires_grad);
    assert_non_null(y1->context);
    tape_set_grad_enabled(tape, false);
    Var *y2 = invertible_forward(p.block[1], tape, ag_constant(tape, tensor_ref(x)),
                                 ag_constant(tape, tensor_ref(c)), false, &l2);
    assert_ok_ptr(y2);
    assert_false(y2->requires_grad);
    assert_null(y2->context);
    assert_rel(y2->value, y1->value, 0, "no-grad y");
    assert_rel(l2->value, l1->value, 0, "no-grad logdet");
    tape_free(tape);
    tensor_free(x), tensor_free(c);
    pair_free(&p);
}

/* Results do not depend on the number of threads (GEMM keeps each element's
 * order of operations, the column sums use fixed row blocks): one and two
 * threads give identical values and gradients on a batch large enough for
 * every parallel path. */
static void test_same_results_with_one_or_two_threads(void **state) {
    (void)state;
    Case c = {40, 24, 0, false, false};
    Pair p;
    pair_new(&p, c, 61, true);
    Rng rng = rng_new(62);
    const int64_t n = 1024; /* every pass above its parallel threshold */
    Tensor *x = tensor_normal(SHAPE(n, c.dim), 0, 1.5f, &rng);
    Tensor *cond = tensor_normal(SHAPE(n, c.cond_dim), 0, 1, &rng);
    const int saved_threads = omp_get_max_threads();
    Tensor *gx[2], *gc[2], *gparams[2][8];
    int count = 0;
    for (int run = 0; run < 2; run++) {
        omp_set_num_threads(run + 1);
        gradients(&p, 1, x, cond, true, true, false, LOSS_BOTH, 63, &gx[run], &gc[run]);
        count = 0;
        for (int64_t i = 0; i < param_set_size(p.ps[1]) && count < 8; i++) {
            Var *v = param_set_at(p.ps[1], i)->var;
            if (v->grad) gparams[run][count++] = tensor_clone(v->grad);
        }
    }
    omp_set_num_threads(saved_threads);
    assert_true(count >= 6);
    assert_rel(gx[1], gx[0], 0, "grad x, 1 vs 2 threads");
    assert_rel(gc[1], gc[0], 0, "grad cond, 1 vs 2 threads");
    for (int k = 0; k < count; k++) {
        assert_rel(gparams[1][k], gparams[0][k], 0, "parameter gradient, 1 vs 2 threads");
        tensor_free(gparams[0][k]), tensor_free(gparams[1][k]);
    }
    for (int run = 0; run < 2; run++) tensor_free(gx[run]), tensor_free(gc[run]);
    tensor_free(x), tensor_free(cond);
    pair_free(&p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_matches_generic),
        cmocka_unit_test(test_gradients_match_generic),
        cmocka_unit_test(test_gradients_of_one_output),
        cmocka_unit_test(test_gradients_with_frozen_parameters),
        cmocka_unit_test(test_gradcheck_fused_op),
        cmocka_unit_test(test_no_grad_mode),
        cmocka_unit_test(test_same_results_with_one_or_two_threads),
    };
    return test_run_at_cpu_levels(tests, HG_CPU_PORTABLE);
}
