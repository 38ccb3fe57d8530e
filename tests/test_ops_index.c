/* concat, split, index_select, gather, scatter_add, one_hot against naive loops. */
#include "tests/testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/ops.h"

static uint64_t lcg_state = 0x853c49e6748fea9bull;
static uint64_t lcg(void) {
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    return lcg_state >> 33;
}
static int64_t rand_below(int64_t n) {
    return (int64_t)(lcg() % (uint64_t)n);
}

static int64_t numel_of(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    return n;
}

/* A tensor with distinct random values, returned as a non-contiguous view when
 * `transposed` (stored with its first and last dims swapped). */
static Tensor *random_tensor(int ndim, const int64_t *shape, bool transposed) {
    int64_t stored[TENSOR_MAX_DIMS];
    memcpy(stored, shape, sizeof(int64_t) * (size_t)ndim);
    if (transposed && ndim > 1) {
        stored[0] = shape[ndim - 1];
        stored[ndim - 1] = shape[0];
    }
    Tensor *base = tensor_empty(ndim, stored);
    assert_ok_ptr(base);
    int64_t n = tensor_numel(base);
    for (int64_t i = 0; i < n; i++) tensor_data(base)[i] = (float)(lcg() % 100000) / 7.0f;
    if (!transposed || ndim < 2) return base;
    Tensor *v = tensor_transpose(base, 0, ndim - 1);
    tensor_free(base);
    assert_ok_ptr(v);
    return v;
}

/* ---- concat / split ---- */

static void test_concat(void **state) {
    for (int trial = 0; trial < 60; trial++) {
        int ndim = 1 + (int)rand_below(3);
        int64_t shape[3];
        for (int d = 0; d < ndim; d++) shape[d] = 1 + rand_below(4);
        int dim = (int)rand_below(ndim);
        int count = 1 + (int)rand_below(3);
        Tensor *parts[3];
        int64_t start[4] = {0};
        for (int i = 0; i < count; i++) {
            int64_t ps[3];
            memcpy(ps, shape, sizeof ps);
            ps[dim] = rand_below(4); /* may be empty */
            parts[i] = random_tensor(ndim, ps, trial % 2 == 1);
            start[i + 1] = start[i] + ps[dim];
        }
        int pass_dim = trial % 3 == 0 ? dim - ndim : dim; /* negative half the time */
        Tensor *out = tensor_concat(count, (const Tensor *const *)parts, pass_dim);
        assert_ok_ptr(out);
        assert_int_equal(out->shape[dim], start[count]);
        int64_t n = tensor_numel(out), idx[3];
        for (int64_t l = 0; l < n; l++) {
            test_unravel(ndim, out->shape, l, idx);
            int which = 0;
            while (idx[dim] >= start[which + 1]) which++;
            int64_t src_idx[3];
            memcpy(src_idx, idx, sizeof idx);
            src_idx[dim] -= start[which];
            assert_true(tensor_data(out)[l] == tensor_get(parts[which], src_idx));
        }
        tensor_free(out);
        for (int i = 0; i < count; i++) tensor_free(parts[i]);
    }
}

static void test_concat_errors(void **state) {
    Tensor *a = tensor_zeros(SHAPE(2, 3)), *b = tensor_zeros(SHAPE(2, 4)),
           *c = tensor_zeros(SHAPE(2, 3, 1)), *s = tensor_scalar(1);
    const Tensor *ab[] = {a, b}, *ac[] = {a, c}, *an[] = {a, NULL}, *ss[] = {s, s};
    Tensor *ok = tensor_concat(2, ab, 1);
    assert_ok_ptr(ok);
    assert_int_equal(ok->shape[1], 7);
    tensor_free(ok);
    assert_null(tensor_concat(2, ab, 0));
    test_assert_failed(HG_ERR_SHAPE, "concat");
    assert_null(tensor_concat(2, ac, 0));
    test_assert_failed(HG_ERR_SHAPE, "concat");
    assert_null(tensor_concat(2, ab, 2));
    test_assert_failed(HG_ERR_DIM, "concat");
    assert_null(tensor_concat(2, an, 0));
    test_assert_failed(HG_ERR_ARG, "concat");
    assert_null(tensor_concat(0, ab, 0));
    test_assert_failed(HG_ERR_ARG, "concat");
    assert_null(tensor_concat(2, ss, 0)); /* 0-d tensors have no dim to join */
    test_assert_failed(HG_ERR_DIM, "concat");
    tensor_free(a);
    tensor_free(b);
    tensor_free(c);
    tensor_free(s);
}

static void test_split(void **state) {
    Tensor *x = random_tensor(SHAPE(3, 7, 2), true);
    Tensor *parts[4];
    int64_t sizes[4] = {2, 0, 4, 1};
    assert_ok(tensor_split(x, -2, 4, sizes, parts));
    int64_t off = 0;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(parts[i]->ndim, 3);
        assert_int_equal(parts[i]->shape[1], sizes[i]);
        assert_ptr_equal(parts[i]->storage, x->storage); /* views */
        for (int64_t a = 0; a < 3; a++)
            for (int64_t j = 0; j < sizes[i]; j++)
                for (int64_t c = 0; c < 2; c++)
                    assert_true(tensor_get(parts[i], (int64_t[]){a, j, c}) ==
                                tensor_get(x, (int64_t[]){a, off + j, c}));
        off += sizes[i];
    }
    /* concat undoes split. */
    Tensor *back = tensor_concat(4, (const Tensor *const *)parts, 1);
    test_assert_close(back, x, 0, 0);
    tensor_free(back);
    for (int i = 0; i < 4; i++) tensor_free(parts[i]);

    Tensor *sentinel = (Tensor *)&sizes; /* must not be touched on failure */
    parts[0] = sentinel;
    assert_int_equal(tensor_split(x, 1, 2, (int64_t[]){3, 3}, parts), HG_ERR_SHAPE);
    test_assert_failed(HG_ERR_SHAPE, "split");
    assert_ptr_equal(parts[0], sentinel);
    assert_int_equal(tensor_split(x, 1, 2, (int64_t[]){8, -1}, parts), HG_ERR_SHAPE);
    test_assert_failed(HG_ERR_SHAPE, "split");
    assert_int_equal(tensor_split(x, 3, 1, (int64_t[]){7}, parts), HG_ERR_DIM);
    test_assert_failed(HG_ERR_DIM, "split");
    assert_int_equal(tensor_split(NULL, 0, 1, (int64_t[]){7}, parts), HG_ERR_ARG);
    test_assert_failed(HG_ERR_ARG, "split");
    assert_int_equal(tensor_split(x, 0, -1, NULL, parts), HG_ERR_ARG);
    test_assert_failed(HG_ERR_ARG, "split");
    Tensor *e = tensor_zeros(SHAPE(0, 2));
    assert_ok(tensor_split(e, 0, 0, NULL, NULL)); /* nothing to split into nothing */
    tensor_free(e);
    tensor_free(x);
}

/* ---- index_select ---- */

static void check_index_select(const Tensor *x, int dim, int64_t count, const int64_t *index) {
    Tensor *out = tensor_index_select(x, dim, count, index);
    assert_ok_ptr(out);
    int d = tensor_normalize_dim(dim, x->ndim);
    assert_int_equal(out->shape[d], count);
    int64_t n = tensor_numel(out), idx[TENSOR_MAX_DIMS];
    for (int64_t l = 0; l < n; l++) {
        test_unravel(out->ndim, out->shape, l, idx);
        idx[d] = index[idx[d]];
        if (tensor_data(out)[l] != tensor_get(x, idx)) fail_msg("element %lld", (long long)l);
    }
    tensor_free(out);
}

static void test_index_select(void **state) {
    Tensor *x = random_tensor(SHAPE(4, 5, 3), true);
    int64_t index[] = {4, 0, 0, 2, 3, 1};
    check_index_select(x, 1, 6, index);
    check_index_select(x, -1, 3, (int64_t[]){2, 2, 0});
    check_index_select(x, 0, 0, NULL); /* empty selection */
    check_index_select(x, -3, 2, (int64_t[]){3, 1});
    /* Large enough for the threaded path. */
    Tensor *big = random_tensor(SHAPE(300, 50, 8), true);
    int64_t many[400];
    for (int i = 0; i < 400; i++) many[i] = rand_below(300);
    check_index_select(big, 0, 400, many);
    check_index_select(big, 2, 5, (int64_t[]){7, 0, 3, 3, 1});
    tensor_free(big);

    assert_null(tensor_index_select(x, 1, 2, (int64_t[]){0, 5}));
    test_assert_failed(HG_ERR_ARG, "index_select");
    assert_null(tensor_index_select(x, 1, 1, (int64_t[]){-1}));
    test_assert_failed(HG_ERR_ARG, "index_select");
    assert_null(tensor_index_select(x, 3, 1, (int64_t[]){0}));
    test_assert_failed(HG_ERR_DIM, "index_select");
    assert_null(tensor_index_select(x, 0, 2, NULL));
    test_assert_failed(HG_ERR_ARG, "index_select");
    assert_null(tensor_index_select(x, 0, -1, NULL));
    test_assert_failed(HG_ERR_ARG, "index_select");
    tensor_free(x);
}

/* ---- gather / scatter_add ---- */

static void test_gather(void **state) {
    for (int trial = 0; trial < 40; trial++) {
        int ndim = 1 + (int)rand_below(3);
        int64_t shape[3], ishape[3];
        for (int d = 0; d < ndim; d++) shape[d] = 1 + rand_below(5);
        int dim = (int)rand_below(ndim);
        for (int d = 0; d < ndim; d++)
            ishape[d] = d == dim ? rand_below(6) : 1 + rand_below(shape[d]); /* <= x's size */
        Tensor *x = random_tensor(ndim, shape, trial % 2 == 0);
        int64_t n = numel_of(ndim, ishape);
        int64_t *index = malloc(sizeof(int64_t) * (size_t)(n + 1));
        for (int64_t i = 0; i < n; i++) index[i] = rand_below(shape[dim]);
        Tensor *out = tensor_gather(x, trial % 3 == 0 ? dim - ndim : dim, ndim, ishape, index);
        assert_ok_ptr(out);
        assert_int_equal(tensor_numel(out), n);
        int64_t idx[3];
        for (int64_t l = 0; l < n; l++) {
            test_unravel(ndim, ishape, l, idx);
            idx[dim] = index[l];
            assert_true(tensor_data(out)[l] == tensor_get(x, idx));
        }
        tensor_free(out);
        free(index);
        tensor_free(x);
    }
}

/* gather and scatter_add are adjoint: <gather(x), y> == <x, scatter_add(y)>;
 * scatter_add is also checked element by element against a naive loop. */
static void test_scatter_add(void **state) {
    for (int trial = 0; trial < 40; trial++) {
        int ndim = 1 + (int)rand_below(3);
        int64_t shape[3], ishape[3];
        for (int d = 0; d < ndim; d++) shape[d] = 1 + rand_below(5);
        int dim = (int)rand_below(ndim);
        for (int d = 0; d < ndim; d++)
            ishape[d] = d == dim ? rand_below(7) : 1 + rand_below(shape[d]);
        int64_t n = numel_of(ndim, ishape);
        int64_t *index = malloc(sizeof(int64_t) * (size_t)(n + 1));
        for (int64_t i = 0; i < n; i++) index[i] = rand_below(shape[dim]);
        Tensor *src = random_tensor(ndim, ishape, trial % 2 == 1);
        Tensor *out =
            tensor_scatter_add(ndim, shape, trial % 3 == 0 ? dim - ndim : dim, src, index);
        assert_ok_ptr(out);
        /* Naive: accumulate in double into a zeroed array. */
        int64_t on = numel_of(ndim, shape);
        double *ref = calloc((size_t)on, sizeof(double));
        int64_t idx[3];
        for (int64_t l = 0; l < n; l++) {
            test_unravel(ndim, ishape, l, idx);
            float v = tensor_get(src, idx);
            idx[dim] = index[l];
            int64_t o = 0;
            for (int d = 0; d < ndim; d++) o = o * shape[d] + idx[d];
            ref[o] += v;
        }
        for (int64_t o = 0; o < on; o++)
            assert_float_equal(tensor_data(out)[o], ref[o], 1e-3 + 1e-5 * ref[o]);

        Tensor *x = random_tensor(ndim, shape, false);
        Tensor *g = tensor_gather(x, dim, ndim, ishape, index);
        assert_ok_ptr(g);
        double lhs = 0, rhs = 0;
        float *sv = malloc(sizeof(float) * (size_t)(n + 1));
        assert_ok(tensor_to_array(src, sv));
        for (int64_t l = 0; l < n; l++) lhs += (double)tensor_data(g)[l] * sv[l];
        for (int64_t o = 0; o < on; o++) rhs += (double)tensor_data(x)[o] * tensor_data(out)[o];
        assert_float_equal(lhs, rhs, 1e-6 * (fabs(lhs) + 1) * 100);
        free(sv);
        free(ref);
        free(index);
        tensor_free(g);
        tensor_free(x);
        tensor_free(src);
        tensor_free(out);
    }
}

/* Threaded paths of gather/scatter_add with repeated indices. */
static void test_gather_scatter_large(void **state) {
    int64_t shape[2] = {64, 700}, ishape[2] = {100, 700};
    int64_t n = 100 * 700;
    int64_t *index = malloc(sizeof(int64_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++) index[i] = rand_below(64);
    Tensor *x = random_tensor(2, shape, true);
    Tensor *g = tensor_gather(x, 0, 2, ishape, index);
    assert_ok_ptr(g);
    for (int64_t l = 0; l < n; l++)
        if (tensor_data(g)[l] != tensor_get(x, (int64_t[]){index[l], l % 700}))
            fail_msg("gather %lld", (long long)l);
    Tensor *ones = tensor_ones(2, ishape);
    Tensor *s = tensor_scatter_add(2, shape, 0, ones, index);
    assert_ok_ptr(s);
    int64_t *counts = calloc(64 * 700, sizeof(int64_t));
    for (int64_t l = 0; l < n; l++) counts[index[l] * 700 + l % 700]++;
    for (int64_t o = 0; o < 64 * 700; o++)
        if (tensor_data(s)[o] != (float)counts[o]) fail_msg("scatter %lld", (long long)o);
    free(counts);
    free(index);
    tensor_free(x);
    tensor_free(g);
    tensor_free(ones);
    tensor_free(s);
}

static void test_gather_scatter_errors(void **state) {
    Tensor *x = tensor_zeros(SHAPE(3, 4));
    int64_t idx[12] = {0};
    assert_null(tensor_gather(x, 0, 2, (int64_t[]){2, 5}, idx)); /* 5 > 4 in dim 1 */
    test_assert_failed(HG_ERR_SHAPE, "gather");
    assert_null(tensor_gather(x, 0, 1, (int64_t[]){2}, idx));
    test_assert_failed(HG_ERR_SHAPE, "gather");
    idx[1] = 3;
    assert_null(tensor_gather(x, 0, 2, (int64_t[]){1, 2}, idx)); /* 3 >= 3 */
    test_assert_failed(HG_ERR_ARG, "gather");
    idx[1] = -1;
    assert_null(tensor_gather(x, 1, 2, (int64_t[]){1, 2}, idx));
    test_assert_failed(HG_ERR_ARG, "gather");
    idx[1] = 0;
    assert_null(tensor_gather(x, 2, 2, (int64_t[]){1, 2}, idx));
    test_assert_failed(HG_ERR_DIM, "gather");
    assert_null(tensor_gather(x, 0, 2, (int64_t[]){1, 2}, NULL));
    test_assert_failed(HG_ERR_ARG, "gather");
    Tensor *g0 = tensor_gather(x, 0, 2, (int64_t[]){0, 2}, NULL); /* empty index */
    assert_ok_ptr(g0);
    assert_int_equal(tensor_numel(g0), 0);

    Tensor *src = tensor_ones(SHAPE(2, 2));
    assert_null(tensor_scatter_add(SHAPE(3, 1), 0, src, idx)); /* 2 > 1 in dim 1 */
    test_assert_failed(HG_ERR_SHAPE, "scatter_add");
    idx[2] = 3;
    assert_null(tensor_scatter_add(SHAPE(3, 4), 0, src, idx));
    test_assert_failed(HG_ERR_ARG, "scatter_add");
    idx[2] = 0;
    assert_null(tensor_scatter_add(SHAPE(3, 4), -3, src, idx));
    test_assert_failed(HG_ERR_DIM, "scatter_add");
    assert_null(tensor_scatter_add(SHAPE(3, -4), 0, src, idx));
    test_assert_failed(HG_ERR_SHAPE, "scatter_add");
    assert_null(tensor_scatter_add(SHAPE(3, 4), 0, NULL, idx));
    test_assert_failed(HG_ERR_ARG, "scatter_add");
    assert_null(tensor_scatter_add(SHAPE(3, 4, 1), 0, src, idx));
    test_assert_failed(HG_ERR_SHAPE, "scatter_add");
    tensor_free(x);
    tensor_free(g0);
    tensor_free(src);
}

/* ---- one_hot ---- */

static void test_one_hot(void **state) {
    int64_t labels[] = {2, 0, 3, 3};
    Tensor *o = tensor_one_hot(4, labels, 5);
    assert_ok_ptr(o);
    assert_int_equal(o->ndim, 2);
    assert_int_equal(o->shape[0], 4);
    assert_int_equal(o->shape[1], 5);
    for (int64_t i = 0; i < 4; i++)
        for (int64_t c = 0; c < 5; c++)
            assert_true(tensor_get(o, (int64_t[]){i, c}) == (c == labels[i] ? 1.0f : 0.0f));
    Tensor *e = tensor_one_hot(0, NULL, 3);
    assert_ok_ptr(e);
    assert_int_equal(tensor_numel(e), 0);
    assert_null(tensor_one_hot(4, labels, 3));
    test_assert_failed(HG_ERR_ARG, "one_hot");
    assert_null(tensor_one_hot(1, (int64_t[]){-1}, 3));
    test_assert_failed(HG_ERR_ARG, "one_hot");
    assert_null(tensor_one_hot(2, NULL, 3));
    test_assert_failed(HG_ERR_ARG, "one_hot");
    assert_null(tensor_one_hot(-1, labels, 3));
    test_assert_failed(HG_ERR_ARG, "one_hot");
    tensor_free(o);
    tensor_free(e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concat),
        cmocka_unit_test(test_concat_errors),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_index_select),
        cmocka_unit_test(test_gather),
        cmocka_unit_test(test_scatter_add),
        cmocka_unit_test(test_gather_scatter_large),
        cmocka_unit_test(test_gather_scatter_errors),
        cmocka_unit_test(test_one_hot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
