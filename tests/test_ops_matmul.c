/* tensor_matmul against a naive double-precision triple loop written here (read
 * through the operands' raw strides): every transpose combination, operands
 * stored row-contiguous, column-contiguous (transposed views), with padded rows
 * (narrowed), with no contiguous dim (stride-2 slices, stride-0 rows), batched
 * with broadcast leading dims, vector operands, empty sizes, and errors. */
#include "tests/testutil.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/ops.h"

static uint64_t rand_state = 0xD1B54A32D192ED03ull;

static float frand(void) {
    rand_state ^= rand_state << 13;
    rand_state ^= rand_state >> 7;
    rand_state ^= rand_state << 17;
    return -1.0f + 2.0f * (float)((rand_state >> 40) * (1.0 / 16777216.0));
}

static Tensor *rand_tensor(int ndim, const int64_t *shape) {
    Tensor *t = tensor_empty(ndim, shape);
    assert_ok_ptr(t);
    int64_t n = tensor_numel(t);
    for (int64_t i = 0; i < n; i++) tensor_data(t)[i] = frand();
    return t;
}

typedef enum {
    LAYOUT_CONTIGUOUS,
    LAYOUT_COLUMNS,    /* last two dims swapped in memory: columns contiguous */
    LAYOUT_PADDED,     /* rows narrowed out of wider rows */
    LAYOUT_STRIDED,    /* every other element of the last dim: no contiguous dim */
    LAYOUT_EXPANDED,   /* second-last dim broadcast (stride 0 rows) */
    LAYOUT_BATCH_PERM, /* leading dims in reversed memory order */
    LAYOUT_COUNT
} Layout;

static const char *layout_names[] = {"contiguous", "columns",  "padded",
                                     "strided",    "expanded", "batch-permuted"};

static Tensor *make_layout(int ndim, const int64_t *shape, Layout layout) {
    int64_t s[TENSOR_MAX_DIMS];
    memcpy(s, shape, sizeof(int64_t) * (size_t)ndim);
    Tensor *base = NULL, *view = NULL;
    if (layout == LAYOUT_COLUMNS && ndim >= 2) {
        s[ndim - 1] = shape[ndim - 2];
        s[ndim - 2] = shape[ndim - 1];
        base = rand_tensor(ndim, s);
        view = tensor_transpose(base, -1, -2);
    } else if (layout == LAYOUT_PADDED && ndim >= 1) {
        s[ndim - 1] += 5;
        base = rand_tensor(ndim, s);
        view = tensor_narrow(base, -1, 2, shape[ndim - 1]);
    } else if (layout == LAYOUT_STRIDED && ndim >= 1) {
        s[ndim - 1] *= 2;
        base = rand_tensor(ndim, s);
        view = tensor_slice(base, -1, 1, s[ndim - 1], 2);
    } else if (layout == LAYOUT_EXPANDED && ndim >= 2 && shape[ndim - 2] > 0) {
        s[ndim - 2] = 1;
        base = rand_tensor(ndim, s);
        view = tensor_expand(base, ndim, shape);
    } else if (layout == LAYOUT_BATCH_PERM && ndim >= 4) {
        int perm[TENSOR_MAX_DIMS];
        int nb = ndim - 2;
        for (int d = 0; d < ndim; d++) perm[d] = d < nb ? nb - 1 - d : d;
        for (int d = 0; d < nb; d++) s[d] = shape[nb - 1 - d];
        base = rand_tensor(ndim, s);
        view = tensor_permute(base, perm);
    } else {
        return rand_tensor(ndim, shape);
    }
    tensor_free(base);
    assert_ok_ptr(view);
    return view;
}

/* Offset of the batch part of an operand for output batch index bidx (nb dims). */
static int64_t batch_offset(const Tensor *t, int t_nb, int nb, const int64_t *bidx) {
    int64_t off = 0;
    for (int q = 0; q < t_nb; q++)
        if (t->shape[q] != 1) off += bidx[q + nb - t_nb] * t->stride[q];
    return off;
}

/* torch.matmul(op(a), op(b)) in double; (ndim, shape) is the expected result shape. */
static void ref_matmul(const Tensor *a, const Tensor *b, bool ta, bool tb, int ndim,
                       const int64_t *shape, double *out) {
    bool av = a->ndim == 1, bv = b->ndim == 1;
    int nb = ndim - !av - !bv;
    int64_t m = av ? 1 : shape[nb], n = bv ? 1 : shape[ndim - 1];
    int64_t k = av ? a->shape[0] : ta ? a->shape[a->ndim - 2] : a->shape[a->ndim - 1];
    int64_t nbatch = 1;
    for (int d = 0; d < nb; d++) nbatch *= shape[d];
    const float *pa = tensor_data(a), *pb = tensor_data(b);
    for (int64_t bi = 0; bi < nbatch; bi++) {
        int64_t bidx[TENSOR_MAX_DIMS], rem = bi;
        for (int d = nb - 1; d >= 0; d--) {
            bidx[d] = rem % shape[d];
            rem /= shape[d];
        }
        int64_t oa = av ? 0 : batch_offset(a, a->ndim - 2, nb, bidx);
        int64_t ob = bv ? 0 : batch_offset(b, b->ndim - 2, nb, bidx);
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double acc = 0;
                for (int64_t p = 0; p < k; p++) {
                    int64_t ia = av ? p * a->stride[0]
                                    : (ta ? p : i) * a->stride[a->ndim - 2] +
                                          (ta ? i : p) * a->stride[a->ndim - 1];
                    int64_t ib = bv ? p * b->stride[0]
                                    : (tb ? j : p) * b->stride[b->ndim - 2] +
                                          (tb ? p : j) * b->stride[b->ndim - 1];
                    acc += (double)pa[oa + ia] * pb[ob + ib];
                }
                out[(bi * m + i) * n + j] = acc;
            }
    }
}

static void check_matmul(const Tensor *a, const Tensor *b, bool ta, bool tb, int ndim,
                         const int64_t *shape, const char *what) {
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    double *expected = malloc(sizeof(double) * (size_t)(n ? n : 1));
    ref_matmul(a, b, ta, tb, ndim, shape, expected);
    Tensor *c = tensor_matmul(a, b, ta, tb);
    if (!c) fail_msg("%s: NULL: %s", what, hg_last_error());
    if (c->ndim != ndim) fail_msg("%s: ndim %d, expected %d", what, c->ndim, ndim);
    for (int d = 0; d < ndim; d++)
        if (c->shape[d] != shape[d])
            fail_msg("%s: dim %d is %lld, expected %lld", what, d, (long long)c->shape[d],
                     (long long)shape[d]);
    if (!tensor_is_contiguous(c)) fail_msg("%s: result not contiguous", what);
    for (int64_t i = 0; i < n; i++) {
        double got = tensor_data(c)[i];
        if (!(fabs(got - expected[i]) <= 1e-5 + 1e-5 * fabs(expected[i])))
            fail_msg("%s: element %lld is %.9g, expected %.9g", what, (long long)i, got,
                     expected[i]);
    }
    tensor_free(c);
    free(expected);
}

static void test_matmul_2d_transposes(void **state) {
    static const int64_t sizes[][3] = {{5, 7, 3},    {1, 1, 1}, {17, 33, 9}, {1, 8, 1},
                                       {64, 40, 50}, {3, 1, 4}, {6, 5, 1}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int t = 0; t < 4; t++) {
            bool ta = t & 1, tb = t & 2;
            int64_t m = sizes[s][0], k = sizes[s][1], n = sizes[s][2];
            int64_t sa[2] = {ta ? k : m, ta ? m : k}, sb[2] = {tb ? n : k, tb ? k : n};
            for (int la = 0; la < LAYOUT_BATCH_PERM; la++) {
                int lb = (la + (int)s) % LAYOUT_BATCH_PERM;
                Tensor *a = make_layout(2, sa, (Layout)la), *b = make_layout(2, sb, (Layout)lb);
                char what[160];
                snprintf(what, sizeof what, "%lldx%lldx%lld ta=%d tb=%d a %s b %s", (long long)m,
                         (long long)k, (long long)n, ta, tb, layout_names[la], layout_names[lb]);
                check_matmul(a, b, ta, tb, 2, (int64_t[]){m, n}, what);
                tensor_free(a);
                tensor_free(b);
            }
        }
}

static void test_matmul_empty(void **state) {
    static const int64_t sizes[][3] = {{0, 4, 3}, {4, 0, 3}, {4, 3, 0}, {0, 0, 0}};
    for (int s = 0; s < 4; s++) {
        int64_t m = sizes[s][0], k = sizes[s][1], n = sizes[s][2];
        Tensor *a = tensor_empty(2, (int64_t[]){m, k}), *b = tensor_empty(2, (int64_t[]){k, n});
        /* Uninitialized contents must not leak into a k == 0 result. */
        check_matmul(a, b, false, false, 2, (int64_t[]){m, n}, "empty");
        tensor_free(a);
        tensor_free(b);
    }
    Tensor *a = tensor_empty(3, (int64_t[]){0, 2, 3}), *b = tensor_empty(2, (int64_t[]){3, 4});
    check_matmul(a, b, false, false, 3, (int64_t[]){0, 2, 4}, "empty batch");
    tensor_free(a);
    tensor_free(b);
}

typedef struct BatchCase {
    int na, nb, nout;
    int64_t a[5], b[5], out[5];
} BatchCase;

static void test_matmul_batched(void **state) {
    /* Shapes are of op(a) and op(b); stored shapes swap the last two dims when
     * the case runs transposed. */
    static const BatchCase cases[] = {
        {4, 2, 4, {2, 3, 4, 5}, {5, 6}, {2, 3, 4, 6}},
        {3, 4, 4, {3, 4, 5}, {2, 1, 5, 6}, {2, 3, 4, 6}},
        {2, 3, 3, {4, 5}, {3, 5, 6}, {3, 4, 6}},
        {3, 2, 3, {3, 1, 5}, {5, 6}, {3, 1, 6}},
        {4, 4, 4, {2, 1, 4, 5}, {1, 3, 5, 6}, {2, 3, 4, 6}},
        {5, 3, 5, {2, 1, 3, 4, 5}, {3, 5, 2}, {2, 1, 3, 4, 2}},
        {3, 3, 3, {1, 4, 5}, {3, 5, 6}, {3, 4, 6}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int t = 0; t < 4; t++) {
            bool ta = t & 1, tb = t & 2;
            const BatchCase *bc = &cases[c];
            int64_t sa[5], sb[5];
            memcpy(sa, bc->a, sizeof sa);
            memcpy(sb, bc->b, sizeof sb);
            if (ta) sa[bc->na - 1] = bc->a[bc->na - 2], sa[bc->na - 2] = bc->a[bc->na - 1];
            if (tb) sb[bc->nb - 1] = bc->b[bc->nb - 2], sb[bc->nb - 2] = bc->b[bc->nb - 1];
            for (int la = 0; la < LAYOUT_COUNT; la++) {
                int lb = (la + (int)c + t) % LAYOUT_COUNT;
                Tensor *a = make_layout(bc->na, sa, (Layout)la);
                Tensor *b = make_layout(bc->nb, sb, (Layout)lb);
                char what[160];
                snprintf(what, sizeof what, "batch case %zu ta=%d tb=%d a %s b %s", c, ta, tb,
                         layout_names[la], layout_names[lb]);
                check_matmul(a, b, ta, tb, bc->nout, bc->out, what);
                tensor_free(a);
                tensor_free(b);
            }
        }
    /* b broadcast over the batch by an expanded stride-0 dim (one folded gemm). */
    Tensor *b1 = rand_tensor(3, (int64_t[]){1, 5, 6});
    Tensor *b = tensor_expand(b1, 3, (int64_t[]){3, 5, 6});
    Tensor *a = rand_tensor(3, (int64_t[]){3, 4, 5});
    check_matmul(a, b, false, false, 3, (int64_t[]){3, 4, 6}, "expanded batch b");
    tensor_free(a);
    /* a's batch stride is not rows * row stride (narrowed rows): no folding. */
    Tensor *a6 = rand_tensor(3, (int64_t[]){3, 6, 5});
    a = tensor_narrow(a6, 1, 1, 4);
    check_matmul(a, b, false, false, 3, (int64_t[]){3, 4, 6}, "narrowed batch a");
    tensor_free(a);
    tensor_free(a6);
    tensor_free(b);
    tensor_free(b1);
}

/* Many small products: batch entries on threads. */
static void test_matmul_many_small(void **state) {
    omp_set_num_threads(3);
    Tensor *a = rand_tensor(3, (int64_t[]){200, 8, 8}), *b = rand_tensor(3, (int64_t[]){200, 8, 8});
    for (int t = 0; t < 4; t++)
        check_matmul(a, b, t & 1, t & 2, 3, (int64_t[]){200, 8, 8}, "many small");
    tensor_free(a);
    tensor_free(b);
}

static void test_matmul_large(void **state) {
    omp_set_num_threads(3);
    Tensor *a = make_layout(2, (int64_t[]){200, 130}, LAYOUT_COLUMNS);
    Tensor *b = make_layout(2, (int64_t[]){200, 150}, LAYOUT_PADDED);
    check_matmul(a, b, true, false, 2, (int64_t[]){130, 150}, "large columns/padded");
    tensor_free(a);
    tensor_free(b);
    /* A linear layer: (B, L, C) @ W^T folded into one product. */
    a = rand_tensor(3, (int64_t[]){4, 64, 96});
    b = rand_tensor(2, (int64_t[]){120, 96});
    check_matmul(a, b, false, true, 3, (int64_t[]){4, 64, 120}, "large linear");
    tensor_free(a);
    tensor_free(b);
}

static void test_matmul_vectors(void **state) {
    Tensor *m34 = rand_tensor(2, (int64_t[]){3, 4}), *m43 = rand_tensor(2, (int64_t[]){4, 3});
    Tensor *m45 = rand_tensor(2, (int64_t[]){4, 5}), *v4 = rand_tensor(1, (int64_t[]){4});
    Tensor *b234 = rand_tensor(3, (int64_t[]){2, 3, 4}),
           *b245 = rand_tensor(3, (int64_t[]){2, 4, 5});
    check_matmul(m34, v4, false, false, 1, (int64_t[]){3}, "matrix @ vector");
    check_matmul(m43, v4, true, false, 1, (int64_t[]){3}, "matrix^T @ vector");
    check_matmul(m34, v4, false, true, 1, (int64_t[]){3}, "trans_b ignored for a vector");
    check_matmul(b234, v4, false, false, 2, (int64_t[]){2, 3}, "batch @ vector");
    check_matmul(v4, m45, false, false, 1, (int64_t[]){5}, "vector @ matrix");
    check_matmul(v4, m34, false, true, 1, (int64_t[]){3}, "vector @ matrix^T");
    check_matmul(v4, b245, false, false, 2, (int64_t[]){2, 5}, "vector @ batch");
    check_matmul(v4, v4, false, false, 0, NULL, "dot");
    /* Strided and stride-0 vectors. */
    Tensor *v8 = rand_tensor(1, (int64_t[]){8});
    Tensor *vs = tensor_slice(v8, 0, 0, 8, 2);
    Tensor *one = rand_tensor(1, (int64_t[]){1});
    Tensor *ve = tensor_expand(one, 1, (int64_t[]){4});
    check_matmul(m34, vs, false, false, 1, (int64_t[]){3}, "matrix @ strided vector");
    check_matmul(vs, m45, false, false, 1, (int64_t[]){5}, "strided vector @ matrix");
    check_matmul(m34, ve, false, false, 1, (int64_t[]){3}, "matrix @ expanded vector");
    check_matmul(ve, m45, false, false, 1, (int64_t[]){5}, "expanded vector @ matrix");
    check_matmul(vs, ve, false, false, 0, NULL, "strided dot expanded");
    Tensor *fixed[] = {m34, m43, m45, v4, b234, b245, v8, vs, one, ve};
    for (int i = 0; i < 10; i++) tensor_free(fixed[i]);
}

static void test_matmul_errors(void **state) {
    Tensor *a = tensor_zeros(SHAPE(2, 3)), *b = tensor_zeros(SHAPE(4, 5));
    hg_clear_error();
    assert_null(tensor_matmul(a, b, false, false));
    assert_int_equal(hg_last_status(), HG_ERR_SHAPE);
    assert_string_equal(hg_last_error(),
                        "matmul: shapes [2,3] and [4,5] do not match in the inner dim");
    assert_null(tensor_matmul(a, b, true, true));
    assert_string_equal(hg_last_error(),
                        "matmul: shapes [2,3]^T and [4,5]^T do not match in the inner dim");
    Tensor *x = tensor_zeros(SHAPE(2, 3, 4)), *y = tensor_zeros(SHAPE(3, 4, 5));
    assert_null(tensor_matmul(x, y, false, false));
    assert_non_null(strstr(hg_last_error(), "batch dims that do not broadcast"));
    Tensor *s = tensor_scalar(1);
    assert_null(tensor_matmul(s, a, false, false));
    assert_null(tensor_matmul(a, NULL, false, false));
    assert_int_equal(hg_last_status(), HG_ERR_ARG);
    Tensor *v = tensor_zeros(SHAPE(4));
    assert_null(tensor_matmul(a, v, false, false));
    assert_non_null(strstr(hg_last_error(), "[2,3] and [4]"));
    Tensor *fixed[] = {a, b, x, y, s, v};
    for (int i = 0; i < 6; i++) tensor_free(fixed[i]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_2d_transposes), cmocka_unit_test(test_matmul_empty),
        cmocka_unit_test(test_matmul_batched),       cmocka_unit_test(test_matmul_many_small),
        cmocka_unit_test(test_matmul_large),         cmocka_unit_test(test_matmul_vectors),
        cmocka_unit_test(test_matmul_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
