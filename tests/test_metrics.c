/* Metrics: AUROC and the ROC curve against sklearn (fixtures) and a pairwise
 * count; AUPRO and the PRO curve against a naive numpy/scipy sweep (fixtures)
 * and hand-made cases; degenerate input; a full-size run. */
#include "tests/testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "datasets/metrics.h"
#include "tensor/rng.h"

/* ---- fixture reading ---- */

static FILE *open_fixture(const char *name) {
    FILE *f = fopen(test_fixture(name), "r");
    if (!f) fail_msg("cannot open fixture %s", test_fixture(name));
    return f;
}

/* Next record keyword, skipping '#' comment lines; false at end of file. */
static bool next_record(FILE *f, char *word, size_t size) {
    char fmt[16];
    snprintf(fmt, sizeof fmt, "%%%zus", size - 1);
    while (fscanf(f, fmt, word) == 1) {
        if (word[0] != '#') return true;
        int c;
        while ((c = fgetc(f)) != '\n' && c != EOF) {
        }
    }
    return false;
}

static void read_floats(FILE *f, float *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) assert_int_equal(fscanf(f, "%f", &out[i]), 1);
}

static void read_bytes(FILE *f, uint8_t *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        int v;
        assert_int_equal(fscanf(f, "%d", &v), 1);
        out[i] = (uint8_t)v;
    }
}

/* Reads "<m>" then m lines "x y threshold" and compares with the curve minus its first point. */
static void check_curve(FILE *f, const MetricCurve *curve, double tol) {
    long long m;
    assert_int_equal(fscanf(f, "%lld", &m), 1);
    assert_int_equal(curve->n, m + 1);
    assert_true(curve->fpr[0] == 0 && curve->rate[0] == 0 && isinf(curve->threshold[0]));
    for (long long j = 0; j < m; j++) {
        double x, y;
        float t;
        assert_int_equal(fscanf(f, "%lf %lf %f", &x, &y, &t), 3);
        if (fabs(curve->fpr[j + 1] - x) > tol || fabs(curve->rate[j + 1] - y) > tol ||
            curve->threshold[j + 1] != t)
            fail_msg("curve point %lld: (%.9g, %.9g, %.9g) vs expected (%.9g, %.9g, %.9g)", j + 1,
                     curve->fpr[j + 1], curve->rate[j + 1], curve->threshold[j + 1], x, y, t);
    }
}

static void test_auroc_matches_sklearn(void **state) {
    (void)state;
    FILE *f = open_fixture("metrics_auroc.txt");
    char word[32];
    int cases = 0;
    while (next_record(f, word, sizeof word)) {
        assert_string_equal(word, "auroc");
        long long n;
        double expected;
        assert_int_equal(fscanf(f, "%lld %lf", &n, &expected), 2);
        float *scores = malloc(sizeof(float) * (size_t)n);
        uint8_t *labels = malloc((size_t)n);
        read_floats(f, scores, n);
        read_bytes(f, labels, n);
        double got = metric_auroc(scores, labels, n);
        if (!(fabs(got - expected) <= 1e-6))
            fail_msg("case %d (n=%lld): AUROC %.12f vs sklearn %.12f", cases, n, got, expected);

        assert_true(next_record(f, word, sizeof word));
        assert_string_equal(word, "roc");
        MetricCurve curve;
        assert_ok(metric_roc_curve(scores, labels, n, true, &curve));
        check_curve(f, &curve, 1e-12);
        metric_curve_free(&curve);
        free(scores);
        free(labels);
        cases++;
    }
    fclose(f);
    assert_true(cases >= 5);
}

/* AUROC = P(score_pos > score_neg) + P(tie) / 2 over all pairs (Mann-Whitney). */
static double pairwise_auroc(const float *s, const uint8_t *y, int64_t n) {
    double wins = 0, pairs = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!y[i]) continue;
        for (int64_t j = 0; j < n; j++) {
            if (y[j]) continue;
            wins += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0;
            pairs += 1;
        }
    }
    return wins / pairs;
}

static void test_auroc_matches_pairwise_count(void **state) {
    (void)state;
    Rng rng = rng_new(7);
    const int64_t sizes[] = {2, 3, 17, 100, 1500};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        int64_t n = sizes[k];
        float *s = malloc(sizeof(float) * (size_t)n);
        uint8_t *y = malloc((size_t)n);
        for (int64_t i = 0; i < n; i++) {
            y[i] = (uint8_t)(i == 0 ? 0 : i == 1 ? 255 : rng_uniform(&rng) < 0.3f);
            /* Few levels (many ties) for odd k, continuous for even k; negatives too. */
            float v = rng_normal(&rng) + 0.7f * (y[i] != 0);
            s[i] = k % 2 ? floorf(v * 2) : v;
        }
        double got = metric_auroc(s, y, n), expected = pairwise_auroc(s, y, n);
        if (fabs(got - expected) > 1e-12) fail_msg("n=%lld: %.15f vs %.15f", n, got, expected);
        free(s);
        free(y);
    }
}

static void test_roc_curve_without_dropping(void **state) {
    (void)state;
    /* Thresholds 3, 2, 1: at >= 3 one positive; at >= 2 one more negative; at >= 1 all. */
    const float s[] = {1, 2, 3, 1, 2};
    const uint8_t y[] = {0, 0, 1, 1, 1};
    MetricCurve c;
    assert_ok(metric_roc_curve(s, y, 5, false, &c));
    const double fpr[] = {0, 0, 0.5, 1}, tpr[] = {0, 1.0 / 3, 2.0 / 3, 1};
    const float thr[] = {INFINITY, 3, 2, 1};
    assert_int_equal(c.n, 4);
    for (int i = 0; i < 4; i++) {
        assert_true(fabs(c.fpr[i] - fpr[i]) < 1e-15);
        assert_true(fabs(c.rate[i] - tpr[i]) < 1e-15);
        assert_true(c.threshold[i] == thr[i]);
    }
    metric_curve_free(&c);
}

static void test_aupro_matches_naive_reference(void **state) {
    (void)state;
    FILE *f = open_fixture("metrics_aupro.txt");
    char word[32];
    int cases = 0;
    while (next_record(f, word, sizeof word)) {
        assert_string_equal(word, "aupro");
        long long maps, h, w;
        int k;
        assert_int_equal(fscanf(f, "%lld %lld %lld %d", &maps, &h, &w, &k), 4);
        double limits[8], expected[8];
        assert_true(k <= 8);
        for (int i = 0; i < k; i++)
            assert_int_equal(fscanf(f, "%lf %lf", &limits[i], &expected[i]), 2);
        int64_t n = maps * h * w;
        float *scores = malloc(sizeof(float) * (size_t)n);
        uint8_t *masks = malloc((size_t)n);
        read_floats(f, scores, n);
        read_bytes(f, masks, n);
        for (int i = 0; i < k; i++) {
            double got = metric_aupro(scores, masks, maps, h, w, limits[i]);
            if (!(fabs(got - expected[i]) <= 1e-6))
                fail_msg("case %d, limit %g: AUPRO %.12f vs reference %.12f", cases, limits[i], got,
                         expected[i]);
        }
        assert_true(next_record(f, word, sizeof word));
        assert_string_equal(word, "procurve");
        MetricCurve curve;
        assert_ok(metric_pro_curve(scores, masks, maps, h, w, &curve));
        check_curve(f, &curve, 1e-9);
        metric_curve_free(&curve);
        free(scores);
        free(masks);
        cases++;
    }
    fclose(f);
    assert_true(cases >= 3);
}

/* Diagonal neighbours form one region: the MVTec script labels with a full 3x3 structure. */
static void test_aupro_uses_8_connectivity(void **state) {
    (void)state;
    /* 5x5 map: region A = (0,0) + (1,1) (diagonal), region B = (4,4). Only (0,0) scores high. */
    float s[25] = {0};
    uint8_t m[25] = {0};
    m[0] = m[6] = m[24] = 1;
    s[0] = 10;
    MetricCurve c;
    assert_ok(metric_pro_curve(s, m, 1, 5, 5, &c));
    assert_int_equal(c.n, 3); /* +inf, 10, 0 */
    assert_true(c.threshold[1] == 10);
    /* 8-connected: (1/2 + 0) / 2 regions = 0.25; 4-connected would give (1 + 0 + 0) / 3. */
    assert_true(fabs(c.rate[1] - 0.25) < 1e-15);
    assert_true(c.fpr[1] == 0);
    assert_true(c.fpr[2] == 1 && c.rate[2] == 1);
    metric_curve_free(&c);
}

static void test_aupro_hand_computed(void **state) {
    (void)state;
    /* One 1x4 map: pixels 0,1 anomalous (one region), 2,3 normal.
     * Scores 4, 2, 3, 1: thresholds 4 -> (fpr 0, pro .5), 3 -> (.5, .5), 2 -> (.5, 1), 1 -> (1, 1).
     * Area to 0.3: 0.3 * 0.5 (the segment 0 -> 0.5 is flat at 0.5) -> normalized 0.5.
     * Area to 1: 0.5 * 0.5 + 0.5 * 1 = 0.75. */
    const float s[] = {4, 2, 3, 1};
    const uint8_t m[] = {1, 1, 0, 0};
    assert_true(fabs(metric_aupro(s, m, 1, 1, 4, 0.3) - 0.5) < 1e-15);
    assert_true(fabs(metric_aupro(s, m, 1, 1, 4, 1.0) - 0.75) < 1e-15);
    /* Limit exactly at a curve point: 0.5 * 0.5 / 0.5 = 0.5. */
    assert_true(fabs(metric_aupro(s, m, 1, 1, 4, 0.5) - 0.5) < 1e-15);
    /* Scores 1, 4, 2, 3: thresholds 4 -> (0, .5), 3 -> (.5, .5), 2 -> (1, .5),
     * 1 -> (1, 1): flat up to FPR 1, so AUPRO(0.3) = 0.5. */
    const float s2[] = {1, 4, 2, 3};
    const uint8_t m2[] = {1, 1, 0, 0};
    assert_true(fabs(metric_aupro(s2, m2, 1, 1, 4, 0.3) - 0.5) < 1e-15);
    /* Rising segment crossing the limit: map of 1x3, pixel 0 anomalous, scores 1, 1, 0:
     * threshold 1 -> (fpr .5, pro 1); the segment (0,0)-(.5,1) gives PRO(0.3) = 0.6,
     * area 0.5 * 0.3 * 0.6 = 0.09, normalized 0.3. */
    const float s3[] = {1, 1, 0};
    const uint8_t m3[] = {255, 0, 0};
    assert_true(fabs(metric_aupro(s3, m3, 1, 1, 3, 0.3) - 0.3) < 1e-15);
}

static void test_degenerate_input(void **state) {
    (void)state;
    const float s[] = {0.1f, 0.2f, 0.3f};
    const uint8_t all_normal[] = {0, 0, 0}, all_anomalous[] = {1, 1, 1}, mixed[] = {0, 1, 0};
    hg_clear_error();
    assert_true(isnan(metric_auroc(s, all_normal, 3)));
    assert_int_equal(hg_last_status(), HG_ERR_ARG);
    assert_non_null(strstr(hg_last_error(), "metric_auroc"));
    assert_true(isnan(metric_auroc(s, all_anomalous, 3)));
    assert_true(isnan(metric_auroc(s, mixed, 0)));
    const float with_nan[] = {0.1f, NAN, 0.3f};
    assert_true(isnan(metric_auroc(with_nan, mixed, 3)));
    assert_non_null(strstr(hg_last_error(), "NaN"));
    MetricCurve c;
    assert_int_equal(metric_roc_curve(s, all_normal, 3, true, &c), HG_ERR_ARG);
    assert_null(c.fpr);
    metric_curve_free(&c);

    assert_true(isnan(metric_aupro(s, all_normal, 1, 1, 3, 0.3)));
    assert_int_equal(hg_last_status(), HG_ERR_ARG);
    assert_true(isnan(metric_aupro(s, all_anomalous, 1, 1, 3, 0.3)));
    assert_true(isnan(metric_aupro(s, mixed, 1, 1, 3, 0.0)));
    assert_true(isnan(metric_aupro(s, mixed, 1, 1, 3, 1.5)));
    assert_true(isnan(metric_aupro(with_nan, mixed, 1, 1, 3, 0.3)));
    assert_true(isnan(metric_aupro(s, mixed, 0, 1, 3, 0.3)));
    assert_int_equal(metric_pro_curve(s, all_normal, 1, 1, 3, &c), HG_ERR_ARG);
    /* A single score for everything: one threshold, chance level. */
    const float tied[] = {1, 1, 1};
    assert_true(fabs(metric_auroc(tied, mixed, 3) - 0.5) < 1e-15);
    assert_true(fabs(metric_aupro(tied, mixed, 1, 1, 3, 1.0) - 0.5) < 1e-15);
}

/* The size of a pixel-level evaluation: 100 maps of 256 x 256 (smaller under valgrind). */
static void test_full_size_run(void **state) {
    (void)state;
    const char *vg = getenv("HG_VALGRIND");
    int64_t maps = vg && *vg == '1' ? 8 : 100, h = 256, w = 256, n = maps * h * w;
    float *s = malloc(sizeof(float) * (size_t)n);
    uint8_t *m = calloc((size_t)n, 1);
    assert_non_null(s);
    assert_non_null(m);
    Rng rng = rng_new(11);
    for (int64_t k = 0; k < maps; k++) {
        /* A 20x30 rectangle and a thin diagonal line per map. */
        uint8_t *mk = m + k * h * w;
        int64_t y0 = (k * 37) % 200, x0 = (k * 53) % 200;
        for (int64_t y = y0; y < y0 + 20; y++)
            for (int64_t x = x0; x < x0 + 30; x++) mk[y * w + x] = 255;
        for (int64_t d = 0; d < 40; d++) mk[(200 + d % 50) * w + 10 + d] = 255;
    }
    for (int64_t i = 0; i < n; i++) s[i] = (m[i] ? 0.8f : 0.0f) + rng_uniform(&rng);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    double aupro = metric_aupro(s, m, maps, h, w, 0.3);
    double auroc = metric_auroc(s, m, n);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    print_message("    %lld maps of 256x256: AUPRO %.4f, AUROC %.4f in %.3f s\n", (long long)maps,
                  aupro, auroc, secs);
    /* Uniform noise shifted by 0.8: P(pos > neg) = 1 - 0.2^2 / 2 = 0.98 for AUROC. */
    assert_true(fabs(auroc - 0.98) < 0.005);
    assert_true(aupro > 0.5 && aupro < 1);
    /* A perfect map: every anomalous pixel above every normal one. */
    for (int64_t i = 0; i < n; i++) s[i] = m[i] ? 2.0f + (float)(i % 7) : (float)(i % 5) * 0.1f;
    assert_true(fabs(metric_aupro(s, m, maps, h, w, 0.3) - 1.0) < 1e-12);
    assert_true(fabs(metric_auroc(s, m, n) - 1.0) < 1e-15);
    free(s);
    free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auroc_matches_sklearn),
        cmocka_unit_test(test_auroc_matches_pairwise_count),
        cmocka_unit_test(test_roc_curve_without_dropping),
        cmocka_unit_test(test_aupro_matches_naive_reference),
        cmocka_unit_test(test_aupro_uses_8_connectivity),
        cmocka_unit_test(test_aupro_hand_computed),
        cmocka_unit_test(test_degenerate_input),
        cmocka_unit_test(test_full_size_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
