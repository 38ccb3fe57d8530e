/* Philox4x32-10 generator (tensor/rng.h): known answers, statistics, determinism. */
#include "tests/testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "tensor/rng.h"

/* Known-answer vectors for philox4x32 with 10 rounds, columns: counter[4],
 * key[2], expected output[4]. The first three are the standard vectors of the
 * Random123 distribution, file tests/kat_vectors
 * (https://github.com/DEShawResearch/random123, "philox4x32 10 ..." lines); the
 * others come from the extended list in examples/kat_vectors of
 * https://github.com/girving/random123-manual (same format). */
static const uint32_t KAT[][10] = {
    {0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x6627e8d5, 0xe169c58d,
     0xbc57ac4c, 0x9b00dbd8},
    {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d, 0x41c83b0e,
     0xa20bc7c6, 0x6d5451fd},
    {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09, 0x94fdcceb,
     0x5001e420, 0x24126ea1},
    {0x00000001, 0x00000000, 0x00000000, 0x00000000, 0x00000001, 0x00000000, 0xac08141b, 0xdfc5ccbe,
     0x79c07a47, 0xa7f66093},
    {0x00000000, 0x00000001, 0x00000000, 0x00000000, 0x00000001, 0x00000000, 0x833ff8dc, 0x225c963c,
     0x232b88b3, 0x0b334b07},
    {0x00000000, 0x00000000, 0x00000000, 0x80000000, 0x00000000, 0x00000001, 0x0436a39b, 0x31be9efa,
     0x6abd0c76, 0xe7a68f83},
    {0x452821e6, 0x38d01377, 0xbe5466cf, 0x34e90c6c, 0x00000000, 0xffffffff, 0x72ce44b3, 0xb44f9b78,
     0x49af0267, 0x726813ac},
    {0x00000000, 0xffffffff, 0x00000000, 0x00000000, 0x00000000, 0x80000000, 0x905ee550, 0xc7520e9a,
     0x9af9d0ad, 0x69b97e98},
};

static void test_known_answers(void **state) {
    for (size_t i = 0; i < sizeof KAT / sizeof KAT[0]; i++) {
        uint32_t out[4];
        rng_philox4x32_block(&KAT[i][0], &KAT[i][4], out);
        for (int j = 0; j < 4; j++)
            if (out[j] != KAT[i][6 + j])
                fail_msg("vector %zu word %d: %08x, expected %08x", i, j, out[j], KAT[i][6 + j]);
    }
    /* The (seed, counter) form is the block with key {seed lo, hi} and counter {c lo, hi, 0, 0}. */
    uint32_t a[4], b[4];
    rng_philox4x32(0x0000000100000000ull, 0x0000000000000001ull, a);
    rng_philox4x32_block((const uint32_t[]){1, 0, 0, 0}, (const uint32_t[]){0, 1}, b);
    assert_memory_equal(a, b, sizeof a);
    /* Vector 5 above: counter word 1 = 1, key word 0 = 1. */
    rng_philox4x32(1, (uint64_t)1 << 32, a);
    assert_memory_equal(a, &KAT[4][6], sizeof a);
}

static void test_single_draws_match_fills(void **state) {
    Rng r1 = rng_new(1234), r2 = rng_new(1234);
    r1.counter = r2.counter = 77;
    float fill[100], fill_n[100];
    rng_fill_uniform(&r1, fill, 100, 0, 1);
    assert_int_equal(r1.counter, 177);
    for (int i = 0; i < 100; i++) {
        uint32_t w[4];
        rng_philox4x32(1234, 77 + (uint64_t)i, w);
        /* Spec: 24 high bits of word 0. */
        assert_true(fill[i] == (float)(w[0] >> 8) / 16777216.0f);
        assert_true(rng_uniform(&r2) == fill[i]);
    }
    assert_int_equal(r2.counter, 177);
    rng_fill_normal(&r1, fill_n, 100, 0, 1);
    for (int i = 0; i < 100; i++) {
        uint32_t w[4];
        rng_philox4x32(1234, 177 + (uint64_t)i, w);
        /* Spec: Box-Muller, u1 = (w0+1)/2^32, u2 = w1/2^32, cosine branch. */
        double u1 = ((double)w[0] + 1) / 4294967296.0, u2 = w[1] / 4294967296.0;
        float expect = (float)(sqrt(-2 * log(u1)) * cos(2 * M_PI * u2));
        assert_true(fill_n[i] == expect);
        assert_true(rng_normal(&r2) == fill_n[i]);
    }
    /* mean/std are applied after the draw. */
    Rng r3 = rng_new(1234);
    r3.counter = 177;
    float scaled[100];
    rng_fill_normal(&r3, scaled, 100, 2.0f, 3.0f);
    for (int i = 0; i < 100; i++) assert_float_equal(scaled[i], 2.0f + 3.0f * fill_n[i], 1e-5);
    /* Empty fills do not move the counter. */
    uint64_t c = r3.counter;
    rng_fill_uniform(&r3, NULL, 0, 0, 1);
    assert_int_equal(r3.counter, c);
}

static void test_uniform_statistics(void **state) {
    Rng rng = rng_new(42);
    const int64_t n = 400000;
    Tensor *t = tensor_uniform(SHAPE(n), -1.0f, 3.0f, &rng);
    assert_ok_ptr(t);
    assert_int_equal(rng.counter, n);
    const float *p = tensor_data(t);
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < n; i++) {
        assert_true(p[i] >= -1.0f && p[i] < 3.0f);
        sum += p[i];
    }
    double mean = sum / n;
    for (int64_t i = 0; i < n; i++) sq += (p[i] - mean) * (p[i] - mean);
    double var = sq / n;
    /* U(-1,3): mean 1, var 16/12; tolerances are > 5 standard errors. */
    assert_true(fabs(mean - 1.0) < 0.01);
    assert_true(fabs(var - 16.0 / 12.0) < 0.01);
    /* Histogram over 10 bins: chi-square with 9 dof, p ~ 1e-6 threshold 50. */
    int64_t bins[10] = {0};
    for (int64_t i = 0; i < n; i++) bins[(int)((p[i] + 1.0f) / 4.0f * 10)]++;
    double chi2 = 0, e = n / 10.0;
    for (int b = 0; b < 10; b++) chi2 += (bins[b] - e) * (bins[b] - e) / e;
    assert_true(chi2 < 50);

    double s64 = 0;
    for (int i = 0; i < 100000; i++) {
        double u = rng_uniform64(&rng);
        assert_true(u >= 0 && u < 1);
        s64 += u;
    }
    assert_true(fabs(s64 / 100000 - 0.5) < 0.005);
    tensor_free(t);
}

static void test_normal_statistics(void **state) {
    Rng rng = rng_new(7);
    const int64_t n = 400000;
    Tensor *t = tensor_normal(SHAPE(400, 1000), 0.0f, 1.0f, &rng);
    assert_ok_ptr(t);
    const float *p = tensor_data(t);
    double m1 = 0, m2 = 0, m3 = 0, m4 = 0;
    for (int64_t i = 0; i < n; i++) m1 += p[i];
    m1 /= n;
    for (int64_t i = 0; i < n; i++) {
        double d = p[i] - m1;
        m2 += d * d;
        m3 += d * d * d;
        m4 += d * d * d * d;
    }
    m2 /= n;
    m3 /= n;
    m4 /= n;
    double skew = m3 / pow(m2, 1.5), kurt = m4 / (m2 * m2);
    /* Standard errors: mean 0.0016, var 0.0022, skew 0.004, kurtosis 0.008. */
    assert_true(fabs(m1) < 0.01);
    assert_true(fabs(m2 - 1) < 0.015);
    assert_true(fabs(skew) < 0.03);
    assert_true(fabs(kurt - 3) < 0.06);
    /* P(|z| > 1.96) = 0.05. */
    int64_t tails = 0;
    for (int64_t i = 0; i < n; i++) tails += fabsf(p[i]) > 1.959964f;
    assert_true(fabs((double)tails / n - 0.05) < 0.002);
    tensor_free(t);
}

static void test_thread_count_independent(void **state) {
#ifndef _OPENMP
    skip();
#else
    const int64_t n = 300000; /* well above the parallel threshold */
    Tensor *u[2], *g[2];
    for (int k = 0; k < 2; k++) {
        omp_set_num_threads(k + 1);
        Rng rng = rng_new(99);
        rng.counter = 5;
        u[k] = tensor_uniform(SHAPE(n), 0, 1, &rng);
        g[k] = tensor_normal(SHAPE(n), 0, 1, &rng);
        assert_ok_ptr(u[k]);
        assert_ok_ptr(g[k]);
        assert_int_equal(rng.counter, 5 + 2 * n);
    }
    omp_set_num_threads(omp_get_num_procs());
    assert_memory_equal(tensor_data(u[0]), tensor_data(u[1]), sizeof(float) * (size_t)n);
    assert_memory_equal(tensor_data(g[0]), tensor_data(g[1]), sizeof(float) * (size_t)n);
    for (int k = 0; k < 2; k++) {
        tensor_free(u[k]);
        tensor_free(g[k]);
    }
#endif
}

static void test_streams_differ(void **state) {
    Rng a = rng_new(1), b = rng_new(1), c = rng_new(2);
    b.counter = 1000;
    float va[64], vb[64], vc[64];
    rng_fill_uniform(&a, va, 64, 0, 1);
    rng_fill_uniform(&b, vb, 64, 0, 1);
    rng_fill_uniform(&c, vc, 64, 0, 1);
    int same_ab = 0, same_ac = 0;
    for (int i = 0; i < 64; i++) {
        same_ab += va[i] == vb[i];
        same_ac += va[i] == vc[i];
    }
    assert_true(same_ab < 3);
    assert_true(same_ac < 3);
    /* Overlapping counter ranges give the same values, shifted. */
    Rng d = rng_new(1);
    d.counter = 10;
    float vd[8];
    rng_fill_uniform(&d, vd, 8, 0, 1);
    assert_memory_equal(vd, va + 10, sizeof vd);
    /* Consecutive fills continue the stream. */
    Rng e = rng_new(1);
    float e1[30], e2[34];
    rng_fill_uniform(&e, e1, 30, 0, 1);
    rng_fill_uniform(&e, e2, 34, 0, 1);
    assert_memory_equal(e1, va, sizeof e1);
    assert_memory_equal(e2, va + 30, sizeof e2);
}

static void test_below_and_permutation(void **state) {
    Rng rng = rng_new(5);
    assert_int_equal(rng_below(&rng, 0), 0);
    assert_int_equal(rng_below(&rng, 1), 0);
    /* Uniformity over 7 values: chi-square with 6 dof, threshold far in the tail. */
    int64_t counts[7] = {0};
    const int n = 70000;
    for (int i = 0; i < n; i++) {
        uint64_t v = rng_below(&rng, 7);
        assert_true(v < 7);
        counts[v]++;
    }
    double chi2 = 0;
    for (int k = 0; k < 7; k++) chi2 += (counts[k] - n / 7.0) * (counts[k] - n / 7.0) / (n / 7.0);
    assert_true(chi2 < 40);
    /* n = 3 * 2^62: a plain x % n would give [0, 2^62) probability 1/2 instead
     * of 1/3, since 2^64 - n = 2^62 draws wrap around; rejection removes that. */
    uint64_t big = (uint64_t)3 << 62;
    int low = 0;
    for (int i = 0; i < 6000; i++) {
        uint64_t v = rng_below(&rng, big);
        assert_true(v < big);
        low += v < ((uint64_t)1 << 62);
    }
    assert_true(low > 1800 && low < 2200); /* 2000 +- 36 (1 sd) */

    int64_t perm[50];
    int64_t first_counts[5] = {0};
    for (int trial = 0; trial < 5000; trial++) {
        rng_permutation(&rng, perm, 5);
        int seen[5] = {0};
        for (int i = 0; i < 5; i++) {
            assert_true(perm[i] >= 0 && perm[i] < 5);
            seen[perm[i]]++;
        }
        for (int i = 0; i < 5; i++) assert_int_equal(seen[i], 1);
        first_counts[perm[0]]++;
    }
    for (int i = 0; i < 5; i++) assert_true(labs((long)first_counts[i] - 1000) < 150);
    rng_permutation(&rng, perm, 50);
    int64_t sum = 0;
    for (int i = 0; i < 50; i++) sum += perm[i];
    assert_int_equal(sum, 49 * 50 / 2);
    perm[0] = -7;
    rng_permutation(&rng, perm, 0); /* nothing written */
    assert_int_equal(perm[0], -7);
    rng_permutation(&rng, perm, 1);
    assert_int_equal(perm[0], 0);
}

static void test_tensor_errors(void **state) {
    Rng rng = rng_new(0);
    assert_null(tensor_uniform(SHAPE(3), 0, 1, NULL));
    assert_non_null(strstr(hg_last_error(), "uniform"));
    assert_null(tensor_uniform(SHAPE(3), 2, 1, &rng));
    assert_int_equal(hg_last_status(), HG_ERR_ARG);
    assert_non_null(strstr(hg_last_error(), "uniform"));
    assert_null(tensor_uniform(SHAPE(-3), 0, 1, &rng));
    assert_int_equal(hg_last_status(), HG_ERR_SHAPE);
    assert_non_null(strstr(hg_last_error(), "uniform"));
    assert_null(tensor_normal(SHAPE(3), 0, -1, &rng));
    assert_int_equal(hg_last_status(), HG_ERR_ARG);
    assert_non_null(strstr(hg_last_error(), "normal"));
    assert_null(tensor_normal(SHAPE(3), NAN, 1, &rng));
    assert_non_null(strstr(hg_last_error(), "normal"));
    assert_null(tensor_normal(SHAPE(3), 0, 1, NULL));
    assert_non_null(strstr(hg_last_error(), "normal"));
    assert_int_equal(rng.counter, 0); /* failures draw nothing */
    Tensor *e = tensor_normal(SHAPE(0, 4), 0, 1, &rng);
    assert_ok_ptr(e);
    assert_int_equal(rng.counter, 0);
    Tensor *s = tensor_uniform(0, NULL, 0, 1, &rng); /* 0-d draws one value */
    assert_ok_ptr(s);
    assert_int_equal(rng.counter, 1);
    tensor_free(e);
    tensor_free(s);
    hg_clear_error();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answers),
        cmocka_unit_test(test_single_draws_match_fills),
        cmocka_unit_test(test_uniform_statistics),
        cmocka_unit_test(test_normal_statistics),
        cmocka_unit_test(test_thread_count_independent),
        cmocka_unit_test(test_streams_differ),
        cmocka_unit_test(test_below_and_permutation),
        cmocka_unit_test(test_tensor_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
