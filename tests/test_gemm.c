/* gemm(): every transpose combination, alpha/beta, beta == 0 over NaN, padded
 * leading dimensions, unaligned pointers, empty sizes, the portable kernel and
 * thread-count independence, checked against gemm_reference (double
 * accumulation) with a rigorous float error bound per element. gemm_reference
 * itself is checked on a small product worked out by hand. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/gemm.h"
#include "tensor/gemm_internal.h"
#include "tests/testutil.h"

/* Value written into padding (between rows, past ld) to detect stray writes. */
#define SENTINEL 12345.0f

static unsigned g_seed = 12345u;

static float next_uniform(void) { /* in [-1, 1) */
    g_seed = g_seed * 1664525u + 1013904223u;
    return (float)(g_seed >> 8) / 8388608.0f - 1.0f;
}

/* A rows x cols matrix with leading dimension ld, starting `offset` floats into
 * its allocation (offset 1 makes the data misaligned for vector loads). */
typedef struct Matrix {
    float *alloc, *data;
    int64_t rows, cols, ld;
} Matrix;

static Matrix matrix_random(int64_t rows, int64_t cols, int64_t ld, int offset) {
    Matrix mat = {.rows = rows, .cols = cols, .ld = ld};
    size_t count = (size_t)(rows * ld + offset + 1);
    mat.alloc = malloc(sizeof(float) * count);
    assert_non_null(mat.alloc);
    for (size_t i = 0; i < count; i++) mat.alloc[i] = SENTINEL;
    mat.data = mat.alloc + offset;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) mat.data[i * ld + j] = next_uniform();
    return mat;
}

static void matrix_free(Matrix *mat) {
    free(mat->alloc);
    mat->alloc = mat->data = NULL;
}

typedef struct Case {
    bool ta, tb;
    int64_t m, n, k;
    float alpha, beta;
    int pad;       /* extra elements per row in lda, ldb, ldc */
    int offset;    /* misalignment of A, B and C in floats */
    bool nan_c;    /* C starts as NaN (only with beta == 0) */
    bool portable; /* force the portable micro-kernel */
} Case;

/* Runs gemm() for one case and checks every element of C against
 * gemm_reference within the forward error bound of a k-term float dot product
 * followed by the alpha/beta update: (k + 4) * 2^-23 * (|alpha| sum|a||b| +
 * |beta c|) (twice the textbook gamma, for slack). Padding must stay intact. */
static void check_case(const Case *cs) {
    int64_t m = cs->m, n = cs->n, k = cs->k;
    int64_t a_rows = cs->ta ? k : m, a_cols = cs->ta ? m : k;
    int64_t b_rows = cs->tb ? n : k, b_cols = cs->tb ? k : n;
    Matrix a = matrix_random(a_rows, a_cols, a_cols + cs->pad, cs->offset);
    Matrix b = matrix_random(b_rows, b_cols, b_cols + cs->pad, cs->offset);
    Matrix c = matrix_random(m, n, n + cs->pad, cs->offset);
    if (cs->nan_c)
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) c.data[i * c.ld + j] = NAN;
    size_t c_count = (size_t)(m * c.ld + cs->offset + 1);
    float *c0 = malloc(sizeof(float) * c_count);
    float *expected = malloc(sizeof(float) * c_count);
    assert_non_null(c0);
    assert_non_null(expected);
    memcpy(c0, c.alloc, sizeof(float) * c_count);
    memcpy(expected, c.alloc, sizeof(float) * c_count);

    gemm_reference(cs->ta, cs->tb, m, n, k, cs->alpha, a.data, a.ld, b.data, b.ld, cs->beta,
                   expected + cs->offset, c.ld);
    hg_cpu_set_limit(cs->portable ? HG_CPU_PORTABLE : HG_CPU_AVX512);
    gemm(cs->ta, cs->tb, m, n, k, cs->alpha, a.data, a.ld, b.data, b.ld, cs->beta, c.data, c.ld);
    hg_cpu_set_limit(HG_CPU_AVX512);

    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double abs_sum = 0;
            for (int64_t p = 0; p < k; p++) {
                double x = cs->ta ? a.data[p * a.ld + i] : a.data[i * a.ld + p];
                double y = cs->tb ? b.data[j * b.ld + p] : b.data[p * b.ld + j];
                abs_sum += fabs(x * y);
            }
            double c_in = cs->beta == 0.0f ? 0.0 : fabs(cs->beta * c0[cs->offset + i * c.ld + j]);
            double bound = (k + 4) * ldexp(1.0, -23) * (fabs(cs->alpha) * abs_sum + c_in) + 1e-30;
            double got = c.data[i * c.ld + j], want = expected[cs->offset + i * c.ld + j];
            if (!(fabs(got - want) <= bound))
                fail_msg("ta=%d tb=%d m=%lld n=%lld k=%lld alpha=%g beta=%g pad=%d offset=%d "
                         "portable=%d: C[%lld,%lld] = %.9g, expected %.9g (bound %.3g)",
                         cs->ta, cs->tb, (long long)m, (long long)n, (long long)k, cs->alpha,
                         cs->beta, cs->pad, cs->offset, cs->portable, (long long)i, (long long)j,
                         got, want, bound);
        }
    /* Everything outside the m x n window (row padding, before and after) is untouched. */
    for (size_t idx = 0; idx < c_count; idx++) {
        int64_t rel = (int64_t)idx - cs->offset;
        bool inside = rel >= 0 && rel < m * c.ld && rel % c.ld < n;
        if (!inside && memcmp(&c.alloc[idx], &c0[idx], sizeof(float)) != 0)
            fail_msg("m=%lld n=%lld: element %lld outside C was written", (long long)m,
                     (long long)n, (long long)rel);
    }
    free(c0);
    free(expected);
    matrix_free(&a);
    matrix_free(&b);
    matrix_free(&c);
}

static const int64_t kDims[] = {1, 2, 7, 17, 64, 255, 1000};
#define NDIMS ((int)(sizeof kDims / sizeof *kDims))

/* All (m, n, k) from kDims with m*n*k <= 3e5; small ones with all four
 * transposes, larger ones with one transpose in rotation so that the whole
 * sweep stays fast (also under valgrind). */
static void sweep(bool portable) {
    static const float alphas[] = {1.0f, -0.5f, 2.0f};
    static const float betas[] = {0.0f, 1.0f, -1.5f};
    int counter = 0, shape_index = 0;
    for (int im = 0; im < NDIMS; im++)
        for (int in = 0; in < NDIMS; in++)
            for (int ik = 0; ik < NDIMS; ik++) {
                int64_t m = kDims[im], n = kDims[in], k = kDims[ik];
                double size = (double)m * n * k;
                if (size > 3e5) continue;
                if (portable && size > 1e5) continue;
                shape_index++;
                for (int t = 0; t < 4; t++) {
                    if (size > 2e4 && t != shape_index % 4) continue;
                    counter++;
                    Case cs = {.ta = t & 1,
                               .tb = (t >> 1) & 1,
                               .m = m,
                               .n = n,
                               .k = k,
                               .alpha = alphas[counter % 3],
                               .beta = betas[(counter / 3) % 3],
                               .portable = portable};
                    check_case(&cs);
                }
            }
}

static void test_shapes_and_transposes(void **state) {
    (void)state;
    sweep(false);
}

static void test_portable_kernel(void **state) {
    (void)state;
    sweep(true);
    hg_cpu_set_limit(HG_CPU_PORTABLE);
    assert_string_equal(gemm_kernel_name(), "portable");
    hg_cpu_set_limit(HG_CPU_AVX512);
}

/* The portable and the active kernel agree to within rounding on one product. */
static void test_portable_matches_active(void **state) {
    (void)state;
    int64_t m = 37, n = 45, k = 300;
    Matrix a = matrix_random(m, k, k, 0), b = matrix_random(k, n, n, 0);
    float *c1 = calloc((size_t)(m * n), sizeof(float)),
          *c2 = calloc((size_t)(m * n), sizeof(float));
    assert_non_null(c1);
    assert_non_null(c2);
    gemm(false, false, m, n, k, 1.0f, a.data, k, b.data, n, 0.0f, c1, n);
    hg_cpu_set_limit(HG_CPU_PORTABLE);
    gemm(false, false, m, n, k, 1.0f, a.data, k, b.data, n, 0.0f, c2, n);
    hg_cpu_set_limit(HG_CPU_AVX512);
    for (int64_t i = 0; i < m * n; i++)
        if (!(fabs(c1[i] - c2[i]) <= 1e-4))
            fail_msg("element %lld: %g vs %g", (long long)i, c1[i], c2[i]);
    free(c1);
    free(c2);
    matrix_free(&a);
    matrix_free(&b);
}

static void test_alpha_beta(void **state) {
    (void)state;
    static const float alphas[] = {1.0f, -1.0f, 0.25f, 3.0f};
    static const float betas[] = {0.0f, 1.0f, 0.5f, -2.0f};
    for (int ia = 0; ia < 4; ia++)
        for (int ib = 0; ib < 4; ib++)
            for (int t = 0; t < 4; t++) {
                Case cs = {.ta = t & 1,
                           .tb = t >> 1,
                           .m = 23,
                           .n = 41,
                           .k = 70,
                           .alpha = alphas[ia],
                           .beta = betas[ib]};
                check_case(&cs);
            }
}

/* beta == 0 must overwrite C without reading it: NaNs in C disappear. */
static void test_beta_zero_ignores_nan(void **state) {
    (void)state;
    for (int t = 0; t < 4; t++) {
        Case cs = {.ta = t & 1,
                   .tb = t >> 1,
                   .m = 31,
                   .n = 50,
                   .k = 9,
                   .alpha = 1.5f,
                   .beta = 0.0f,
                   .nan_c = true};
        check_case(&cs);
        Case big = {.ta = t & 1,
                    .tb = t >> 1,
                    .m = 130,
                    .n = 70,
                    .k = 400,
                    .alpha = 1.0f,
                    .beta = 0.0f,
                    .nan_c = true};
        check_case(&big);
    }
    /* alpha == 0 (or k == 0) with beta == 0 also clears NaNs. */
    float c[6] = {NAN, NAN, NAN, NAN, NAN, NAN}, a[6] = {1, 2, 3, 4, 5, 6};
    gemm(false, false, 2, 3, 2, 0.0f, a, 2, a, 3, 0.0f, c, 3);
    for (int i = 0; i < 6; i++) assert_true(c[i] == 0.0f);
    for (int i = 0; i < 6; i++) c[i] = NAN;
    gemm(false, false, 2, 3, 0, 1.0f, a, 1, a, 3, 0.0f, c, 3);
    for (int i = 0; i < 6; i++) assert_true(c[i] == 0.0f);
}

static void test_padded_and_misaligned(void **state) {
    (void)state;
    const int64_t shapes[][3] = {{17, 33, 64}, {64, 7, 255}, {6, 16, 8}, {100, 100, 100}};
    for (int s = 0; s < 4; s++)
        for (int t = 0; t < 4; t++) {
            Case cs = {.ta = t & 1,
                       .tb = t >> 1,
                       .m = shapes[s][0],
                       .n = shapes[s][1],
                       .k = shapes[s][2],
                       .alpha = 0.75f,
                       .beta = -0.5f,
                       .pad = 5 + s,
                       .offset = 1};
            check_case(&cs);
        }
}

/* m or n == 0 leaves C alone; k == 0 (or alpha == 0) scales C by beta. */
static void test_empty_sizes(void **state) {
    (void)state;
    float a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8};
    float c[4] = {1, 2, 3, 4};
    gemm(false, false, 0, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2);
    gemm(true, true, 2, 0, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2);
    gemm(false, false, 0, 0, 0, 1.0f, NULL, 1, NULL, 1, 0.0f, NULL, 1);
    for (int i = 0; i < 4; i++) assert_true(c[i] == (float)(i + 1));
    gemm(false, true, 2, 2, 0, 1.0f, NULL, 1, NULL, 1, 2.0f, c, 2);
    for (int i = 0; i < 4; i++) assert_true(c[i] == 2.0f * (float)(i + 1));
    gemm(false, false, 2, 2, 2, 0.0f, a, 2, b, 2, -1.0f, c, 2);
    for (int i = 0; i < 4; i++) assert_true(c[i] == -2.0f * (float)(i + 1));
    for (int t = 0; t < 4; t++) {
        Case cs = {.ta = t & 1, .tb = t >> 1, .m = 5, .n = 3, .k = 0, .alpha = 1.0f, .beta = 0.5f};
        check_case(&cs);
    }
}

/* Blocking boundaries: several K blocks, several N slices (n > 4096), row
 * counts that leave every kind of edge tile. */
static void test_block_boundaries(void **state) {
    (void)state;
    const int64_t shapes[][3] = {{3, 4200, 5}, {50, 4113, 3},  {341, 19, 769},
                                 {673, 9, 2},  {13, 24, 1153}, {6, 8, 385}};
    for (int s = 0; s < 6; s++) {
        Case cs = {.ta = s & 1,
                   .tb = (s >> 1) & 1,
                   .m = shapes[s][0],
                   .n = shapes[s][1],
                   .k = shapes[s][2],
                   .alpha = 1.0f,
                   .beta = 0.5f};
        check_case(&cs);
    }
}

/* Splitting rows or columns across threads never changes K order: results are
 * bit-identical with 1 and with 2 threads. */
static void test_thread_count_independent(void **state) {
    (void)state;
    const int64_t shapes[][3] = {{250, 40, 100}, {7, 500, 255}, {100, 100, 100}, {100, 9, 1000}};
    int saved = omp_get_max_threads();
    for (int s = 0; s < 4; s++)
        for (int t = s % 2; t < 4; t += 2) { /* two transposes per shape, all four overall */
            bool ta = t & 1, tb = t >> 1;
            int64_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
            Matrix a = matrix_random(ta ? k : m, ta ? m : k, ta ? m : k, 0);
            Matrix b = matrix_random(tb ? n : k, tb ? k : n, tb ? k : n, 0);
            float *c1 = malloc(sizeof(float) * (size_t)(m * n));
            float *c2 = malloc(sizeof(float) * (size_t)(m * n));
            assert_non_null(c1);
            assert_non_null(c2);
            for (int64_t i = 0; i < m * n; i++) c1[i] = c2[i] = (float)(i % 7);
            omp_set_num_threads(1);
            gemm(ta, tb, m, n, k, 1.25f, a.data, a.ld, b.data, b.ld, 0.5f, c1, n);
            omp_set_num_threads(2);
            gemm(ta, tb, m, n, k, 1.25f, a.data, a.ld, b.data, b.ld, 0.5f, c2, n);
            if (memcmp(c1, c2, sizeof(float) * (size_t)(m * n)) != 0)
                fail_msg("m=%lld n=%lld k=%lld ta=%d tb=%d differs between 1 and 2 threads",
                         (long long)m, (long long)n, (long long)k, ta, tb);
            free(c1);
            free(c2);
            matrix_free(&a);
            matrix_free(&b);
        }
    omp_set_num_threads(saved);
}

/* Inside a parallel region gemm runs on the calling thread; results still right. */
static void test_called_from_threads(void **state) {
    (void)state;
    int failures = 0;
    int64_t m = 70, n = 90, k = 110;
    Matrix a = matrix_random(m, k, k, 0), b = matrix_random(k, n, n, 0);
    float *want = calloc((size_t)(m * n), sizeof(float));
    assert_non_null(want);
    gemm_reference(false, false, m, n, k, 1.0f, a.data, k, b.data, n, 0.0f, want, n);
#pragma omp parallel num_threads(2) reduction(+ : failures)
    {
        float *c = calloc((size_t)(m * n), sizeof(float));
        if (!c)
            failures++;
        else {
            gemm(false, false, m, n, k, 1.0f, a.data, k, b.data, n, 0.0f, c, n);
            for (int64_t i = 0; i < m * n; i++)
                if (!(fabs(c[i] - want[i]) <= 1e-4)) failures++;
            free(c);
        }
    }
    assert_int_equal(failures, 0);
    free(want);
    matrix_free(&a);
    matrix_free(&b);
}

/* gemm_reference on a product worked out by hand:
 * [1 2 3; 4 5 6] * [7 8; 9 10; 11 12] = [58 64; 139 154]. */
static void test_reference_by_hand(void **state) {
    (void)state;
    const float a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {7, 8, 9, 10, 11, 12};
    const float at[6] = {1, 4, 2, 5, 3, 6}, bt[6] = {7, 9, 11, 8, 10, 12};
    for (int t = 0; t < 4; t++) {
        bool ta = t & 1, tb = t >> 1;
        float c[4] = {1, 1, 1, 1};
        gemm_reference(ta, tb, 2, 2, 3, 2.0f, ta ? at : a, ta ? 2 : 3, tb ? bt : b, tb ? 3 : 2,
                       -1.0f, c, 2);
        assert_true(c[0] == 115.0f && c[1] == 127.0f && c[2] == 277.0f && c[3] == 307.0f);
        float d[4] = {1, 1, 1, 1};
        gemm(ta, tb, 2, 2, 3, 2.0f, ta ? at : a, ta ? 2 : 3, tb ? bt : b, tb ? 3 : 2, -1.0f, d, 2);
        assert_true(d[0] == 115.0f && d[1] == 127.0f && d[2] == 277.0f && d[3] == 307.0f);
    }
}

static void test_kernel_name(void **state) {
    (void)state;
    const char *name = gemm_kernel_name();
    assert_true(strcmp(name, "avx2-fma") == 0 || strcmp(name, "portable") == 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_by_hand),
        cmocka_unit_test(test_kernel_name),
        cmocka_unit_test(test_shapes_and_transposes),
        cmocka_unit_test(test_portable_kernel),
        cmocka_unit_test(test_portable_matches_active),
        cmocka_unit_test(test_alpha_beta),
        cmocka_unit_test(test_beta_zero_ignores_nan),
        cmocka_unit_test(test_padded_and_misaligned),
        cmocka_unit_test(test_empty_sizes),
        cmocka_unit_test(test_block_boundaries),
        cmocka_unit_test(test_thread_count_independent),
        cmocka_unit_test(test_called_from_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
