/* The condition's distinct rows (models/cond_rows.c) and the fused coupling's
 * factored path that uses them (models/coupling_fused.c): the factorization
 * against a brute-force pairwise comparison, and the factored path against
 * the dense one (forced with cond_rows_set_mode) for one block, for a whole
 * HGAD gradient computation and for the evidence of scoring. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/ops.h"
#include "models/cond_rows.h"
#include "models/flow.h"
#include "models/hgad.h"
#include "models/positional.h"
#include "tensor/ops.h"
#include "tensor/rng.h"
#include "tests/testutil.h"

/* ---- factorization ---- */

static bool rows_equal(const Tensor *t, int64_t a, const float *b) {
    const int64_t Dc = t->shape[1];
    for (int64_t j = 0; j < Dc; j++) {
        float v = tensor_data(t)[a * t->stride[0] + j * t->stride[1]];
        uint32_t x, y;
        memcpy(&x, &v, sizeof x);
        memcpy(&y, &b[j], sizeof y);
        if (x != y) return false;
    }
    return true;
}

/* Checks `r` against the definition, by comparing every pair of rows:
 * unique[index[i]] is row i, the unique rows are pairwise different and come
 * in order of first occurrence, the groups partition the rows in increasing
 * order. Returns U. */
static int64_t check_factor(const Tensor *cond, const CondRows *r) {
    const int64_t N = cond->shape[0], Dc = cond->shape[1];
    assert_int_equal(r->rows, N);
    assert_int_equal(r->dim, Dc);
    const int64_t U = r->distinct;
    assert_int_equal(r->unique->shape[0], U);
    assert_int_equal(r->unique->shape[1], Dc);
    /* reference count of distinct rows: rows not equal to any earlier row */
    int64_t want_u = 0;
    for (int64_t i = 0; i < N; i++) {
        bool seen = false;
        for (int64_t k = 0; k < i && !seen; k++) {
            float row[64];
            assert_true(Dc <= 64);
            for (int64_t j = 0; j < Dc; j++)
                row[j] = tensor_data(cond)[k * cond->stride[0] + j * cond->stride[1]];
            seen = rows_equal(cond, i, row);
        }
        if (!seen) {
            /* a new row gets the next group number */
            assert_int_equal(r->index[i], want_u);
            want_u++;
        }
    }
    assert_int_equal(U, want_u);
    for (int64_t i = 0; i < N; i++) {
        assert_true(r->index[i] >= 0 && r->index[i] < U);
        assert_true(rows_equal(cond, i, tensor_data(r->unique) + r->index[i] * Dc));
    }
    assert_int_equal(r->start[0], 0);
    assert_int_equal(r->start[U], N);
    for (int64_t u = 0; u < U; u++) {
        assert_true(r->start[u + 1] > r->start[u]); /* no empty group */
        for (int32_t k = r->start[u]; k < r->start[u + 1]; k++) {
            assert_int_equal(r->index[r->members[k]], u);
            if (k > r->start[u]) assert_true(r->members[k] > r->members[k - 1]);
        }
    }
    return U;
}

static int64_t factor_and_check(const Tensor *cond) {
    CondRows *r = cond_rows_factor(cond);
    assert_ok_ptr(r);
    int64_t U = check_factor(cond, r);
    assert_ptr_equal(cond_rows_ref(r), r);
    cond_rows_free(r);
    cond_rows_free(r);
    return U;
}

static void test_factor_positional_code(void **state) {
    (void)state;
    Tensor *c = positional_code_batch(16, 3, 5, 4);
    assert_ok_ptr(c);
    assert_int_equal(factor_and_check(c), 15);
    CondRows *r = cond_rows_factor(c);
    assert_ok_ptr(r);
    for (int64_t i = 0; i < 60; i++) assert_int_equal(r->index[i], i % 15);
    cond_rows_set_mode(COND_ROWS_AUTO);
    assert_true(cond_rows_worthwhile(r));
    cond_rows_free(r);
    tensor_free(c);
}

static void test_factor_special_cases(void **state) {
    (void)state;
    Rng rng = rng_new(3);
    Tensor *distinct = tensor_normal(SHAPE(40, 7), 0, 1, &rng);
    assert_int_equal(factor_and_check(distinct), 40);
    CondRows *r = cond_rows_factor(distinct);
    assert_ok_ptr(r);
    cond_rows_set_mode(COND_ROWS_AUTO);
    assert_false(cond_rows_worthwhile(r)); /* all rows distinct: dense */
    cond_rows_set_mode(COND_ROWS_ALWAYS);
    assert_true(cond_rows_worthwhile(r));
    cond_rows_set_mode(COND_ROWS_NEVER);
    assert_false(cond_rows_worthwhile(r));
    cond_rows_set_mode(COND_ROWS_AUTO);
    cond_rows_free(r);

    Tensor *same = tensor_full(SHAPE(33, 5), 0.25f);
    assert_int_equal(factor_and_check(same), 1);
    Tensor *one = tensor_normal(SHAPE(1, 9), 0, 1, &rng);
    assert_int_equal(factor_and_check(one), 1);
    Tensor *no_columns = tensor_empty(SHAPE(6, 0));
    assert_int_equal(factor_and_check(no_columns), 1);
    Tensor *no_rows = tensor_empty(SHAPE(0, 4));
    assert_int_equal(factor_and_check(no_rows), 0);

    /* rows that differ in one element only, or only in the sign of zero (bit
     * patterns differ), are distinct; equal ones far apart are not */
    Tensor *near = tensor_zeros(SHAPE(6, 4));
    float *d = tensor_data(near);
    d[1 * 4 + 3] = 1e-30f;
    d[2 * 4 + 0] = -0.0f;
    d[3 * 4 + 3] = 1e-30f;
    d[5 * 4 + 0] = -0.0f;
    assert_int_equal(factor_and_check(near), 3);

    /* a strided (transposed) view: factored from its values, not its memory */
    Tensor *base = positional_code_batch(8, 2, 3, 3); /* (18, 8), 6 distinct */
    Tensor *bt = tensor_transpose(base, 0, 1);
    Tensor *bt_c = tensor_contiguous(bt);
    Tensor *view = tensor_transpose(bt_c, 0, 1);
    assert_false(tensor_is_contiguous(view));
    assert_int_equal(factor_and_check(view), 6);

    assert_null(cond_rows_factor(NULL));
    test_assert_failed(HG_ERR_SHAPE, "cond_rows");
    Tensor *flat = tensor_zeros(SHAPE(5));
    assert_null(cond_rows_factor(flat));
    test_assert_failed(HG_ERR_SHAPE, "cond_rows");

    Tensor *all[] = {distinct, same, one, no_columns, no_rows, near, base, bt, bt_c, view, flat};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) tensor_free(all[i]);
}

/* ---- factored vs dense fused coupling block ---- */

/* Larger subnet outputs and spread global scales, as in test_coupling_fused.c,
 * so that every gradient is far from trivial. */
static void perturb(ParamSet *ps, uint64_t seed) {
    Rng rng = rng_new(seed);
    for (int64_t i = 0; i < param_set_size(ps); i++) {
        ParamEntry *e = param_set_at(ps, i);
        float *v = tensor_data(e->var->value);
        int64_t n = tensor_numel(e->var->value);
        if (strstr(e->name, "subnet.2."))
            for (int64_t k = 0; k < n; k++) v[k] *= 4.0f;
        else if (strstr(e->name, "global_scale"))
            for (int64_t k = 0; k < n; k++) v[k] = 6.0f + 3.0f * rng_normal(&rng);
        else if (strstr(e->name, "global_offset"))
            for (int64_t k = 0; k < n; k++) v[k] = 0.5f * rng_normal(&rng);
    }
}

typedef struct Outputs {
    Tensor *y, *logdet, *grad_c;
    int64_t count;
    Tensor *grads[32];
} Outputs;

static void outputs_free(Outputs *o) {
    tensor_free(o->y), tensor_free(o->logdet), tensor_free(o->grad_c);
    for (int64_t i = 0; i < o->count; i++) tensor_free(o->grads[i]);
}

/* y, the log-det and the gradients of L = sum(wy y) + sum(wl logdet) of a
 * fresh fused module (one block, or a chain of `blocks`) under `mode`. */
static Outputs run_block(int64_t dim, int64_t cond_dim, int blocks, const Tensor *x,
                         const Tensor *c, bool c_grad, CondRowsMode mode) {
    Rng rng = rng_new(11);
    ParamSet *ps = param_set_new();
    CouplingOptions o = coupling_default_options(dim, cond_dim);
    InvertibleModule *m = blocks == 1 ? coupling_new(ps, "blk", &o, &rng)
                                      : flow_coupling_chain_new(ps, "nfs", blocks, &o, &rng);
    assert_ok_ptr(m);
    perturb(ps, 12);
    cond_rows_set_mode(mode);
    Var *xv = var_new(tensor_clone(x), true);
    Var *cv = c ? var_new(tensor_clone(c), c_grad) : NULL;
    Tape *tape = tape_new();
    Var *ld = NULL;
    Var *y = invertible_forward(m, tape, xv, cv, false, &ld);
    assert_ok_ptr(y);
    Rng wr = rng_new(13);
    Var *wy = ag_constant(tape, tensor_normal(y->value->ndim, y->value->shape, 0, 1, &wr));
    Var *wl = ag_constant(tape, tensor_normal(ld->value->ndim, ld->value->shape, 0, 1, &wr));
    Var *loss = ag_add(tape, ag_sum(tape, ag_mul(tape, y, wy), 0, NULL, false),
                       ag_sum(tape, ag_mul(tape, ld, wl), 0, NULL, false));
    Outputs out = {tensor_clone(y->value), tensor_clone(ld->value), NULL, 0, {NULL}};
    assert_ok(tape_backward(tape, loss, NULL));
    cond_rows_set_mode(COND_ROWS_AUTO);
    out.grads[out.count++] = tensor_ref(xv->grad);
    if (cv && c_grad) out.grad_c = tensor_ref(cv->grad);
    for (int64_t i = 0; i < param_set_size(ps); i++) {
        Var *v = param_set_at(ps, i)->var;
        if (!v->requires_grad) continue;
        assert_ok_ptr(v->grad);
        assert_true(out.count < 32);
        out.grads[out.count++] = tensor_ref(v->grad);
    }
    tape_free(tape);
    var_free(xv), var_free(cv);
    invertible_free(m);
    param_set_free(ps);
    return out;
}

static void assert_rel(const Tensor *got, const Tensor *want, double tol, const char *what) {
    assert_true(tensor_same_shape(got, want));
    double err = test_max_rel_diff(got, want);
    if (!(err <= tol)) fail_msg("%s: max rel error %.3g > %.3g", what, err, tol);
}

static void compare_modes(int64_t dim, int64_t cond_dim, int blocks, const Tensor *c, bool c_grad,
                          CondRowsMode factored, const char *what) {
    const int64_t n = c ? c->shape[0] : 24;
    Rng rng = rng_new(21);
    Tensor *x = tensor_normal(SHAPE(n, dim), 0, 1.5f, &rng);
    Outputs dense = run_block(dim, cond_dim, blocks, x, c, c_grad, COND_ROWS_NEVER);
    Outputs fact = run_block(dim, cond_dim, blocks, x, c, c_grad, factored);
    char msg[160];
    snprintf(msg, sizeof msg, "%s: y", what);
    assert_rel(fact.y, dense.y, 1e-5, msg);
    snprintf(msg, sizeof msg, "%s: logdet", what);
    assert_rel(fact.logdet, dense.logdet, 1e-5, msg);
    assert_int_equal(fact.count, dense.count);
    assert_true(dense.count == 1 + 6 * blocks); /* x and six parameters per block */
    for (int64_t i = 0; i < dense.count; i++) {
        snprintf(msg, sizeof msg, "%s: gradient %lld", what, (long long)i);
        assert_rel(fact.grads[i], dense.grads[i], 1e-5, msg);
    }
    if (c_grad) {
        snprintf(msg, sizeof msg, "%s: gradient of cond", what);
        assert_rel(fact.grad_c, dense.grad_c, 1e-5, msg);
    }
    outputs_free(&dense), outputs_free(&fact);
    tensor_free(x);
}

/* The rows of `c` in a random order. */
static Tensor *shuffled_rows(const Tensor *c, uint64_t seed) {
    const int64_t n = c->shape[0], dc = c->shape[1];
    Tensor *out = tensor_clone(c);
    float *d = tensor_data(out);
    Rng rng = rng_new(seed);
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t k = (int64_t)rng_below(&rng, (uint64_t)(i + 1));
        for (int64_t j = 0; j < dc; j++) {
            float t = d[i * dc + j];
            d[i * dc + j] = d[k * dc + j];
            d[k * dc + j] = t;
        }
    }
    return out;
}

static void test_factored_block_matches_dense(void **state) {
    (void)state;
    Tensor *pos = positional_code_batch(8, 3, 4, 5); /* N = 60, U = 12 */
    Tensor *mixed = shuffled_rows(pos, 5);
    Rng rng = rng_new(6);
    Tensor *distinct = tensor_normal(SHAPE(30, 8), 0, 1, &rng);
    Tensor *pos_odd = positional_code_batch(12, 2, 3, 7); /* N = 42, U = 6 */
    compare_modes(12, 8, 1, pos, false, COND_ROWS_AUTO, "positional");
    compare_modes(12, 8, 1, mixed, false, COND_ROWS_AUTO, "shuffled positional");
    compare_modes(12, 8, 1, pos, true, COND_ROWS_AUTO, "positional, cond gradient");
    compare_modes(12, 8, 1, distinct, false, COND_ROWS_ALWAYS, "all distinct, forced");
    compare_modes(9, 12, 1, pos_odd, false, COND_ROWS_AUTO, "odd dim");
    compare_modes(12, 8, 3, mixed, false, COND_ROWS_AUTO, "chain of 3");
    compare_modes(10, 0, 2, NULL, false, COND_ROWS_ALWAYS, "unconditional");
    tensor_free(pos), tensor_free(mixed), tensor_free(distinct), tensor_free(pos_odd);
}

/* ---- whole HGAD computations ---- */

static Hgad *small_model(void) {
    HgadConfig config = hgad_default_config(1, 12, 3);
    config.cond_dim = 8;
    config.coupling_blocks = 3;
    config.intra_centers = 2;
    Hgad *m = hgad_new(&config);
    assert_ok_ptr(m);
    /* move the flows off their near-identity start, the same way in every model */
    for (int64_t i = 0; i < param_set_size(m->params); i++) {
        ParamEntry *e = param_set_at(m->params, i);
        if (!strstr(e->name, "subnet.2.")) continue;
        float *v = tensor_data(e->var->value);
        for (int64_t k = 0; k < tensor_numel(e->var->value); k++) v[k] *= 4.0f;
    }
    return m;
}

static void test_hgad_gradients_and_evidence(void **state) {
    (void)state;
    const int64_t H = 3, W = 4, B = 4, N = B * H * W;
    Tensor *cond = positional_code_batch(8, H, W, B);
    Rng rng = rng_new(31);
    Tensor *x = tensor_normal(SHAPE(N, 12), 0, 1, &rng);
    int64_t labels[48];
    for (int64_t i = 0; i < N; i++) labels[i] = (i / (H * W)) % 3;
    CondRows *r = cond_rows_factor(cond);
    assert_ok_ptr(r);
    assert_true(cond_rows_worthwhile(r)); /* AUTO takes the factored path here */
    cond_rows_free(r);

    Hgad *m[2];
    HgadLossValues values[2];
    Tensor *logp[2], *negent[2];
    for (int k = 0; k < 2; k++) {
        cond_rows_set_mode(k == 0 ? COND_ROWS_NEVER : COND_ROWS_AUTO);
        m[k] = small_model();
        assert_ok(hgad_compute_gradients(m[k], 0, x, cond, labels, 5, &values[k]));
        assert_ok(hgad_level_evidence(m[k], 0, x, cond, 1, &logp[k], &negent[k]));
    }
    cond_rows_set_mode(COND_ROWS_AUTO);
    assert_true(fabs(values[1].loss - values[0].loss) <= 1e-5 * fabs(values[0].loss));
    assert_rel(logp[1], logp[0], 1e-5, "evidence logp");
    assert_rel(negent[1], negent[0], 1e-5, "evidence entropy");
    int compared = 0;
    for (int64_t i = 0; i < param_set_size(m[0]->params); i++) {
        ParamEntry *e0 = param_set_at(m[0]->params, i), *e1 = param_set_at(m[1]->params, i);
        assert_string_equal(e0->name, e1->name);
        if (!e0->var->grad) {
            assert_null(e1->var->grad);
            continue;
        }
        assert_ok_ptr(e1->var->grad);
        assert_rel(e1->var->grad, e0->var->grad, 1e-5, e0->name);
        compared += strstr(e0->name, "subnet.0.weight") != NULL;
    }
    assert_int_equal(compared, 3);
    for (int k = 0; k < 2; k++) {
        tensor_free(logp[k]), tensor_free(negent[k]);
        hgad_free(m[k]);
    }
    tensor_free(cond), tensor_free(x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_factor_positional_code),
        cmocka_unit_test(test_factor_special_cases),
        cmocka_unit_test(test_factored_block_matches_dense),
        cmocka_unit_test(test_hgad_gradients_and_evidence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
