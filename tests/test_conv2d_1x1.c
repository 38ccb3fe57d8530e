/* The direct 1x1 convolution kernels (conv2d_1x1_avx2.c, conv2d_1x1_avx512.c)
 * and the dispatching conv2d_1x1_forward, against a naive double-precision
 * product, on channel and pixel counts that are not multiples of any tile
 * (output rows 1..13 exercise every 8/4/2/1-row remainder, pixel counts every
 * masked vector width), with and without bias, over column sub-ranges (the
 * columns outside must stay untouched), and with 1 and 2 OpenMP threads. A
 * kernel the CPU cannot run is skipped in its own test. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>

#include "nn/conv2d_kernels.h"
#include "testutil.h"
#include "tensor/rng.h"

#define SENTINEL 12345.0f

typedef void (*Columns1x1)(float *out, const float *x, const float *w, const float *b, int64_t m,
                           int64_t k, int64_t hw, int64_t p0, int64_t p1, float *panel);

static float *random_floats(int64_t n, Rng *r) {
    float *v = malloc(sizeof(float) * (size_t)n);
    assert_non_null(v);
    rng_fill_normal(r, v, n, 0, 1);
    return v;
}

/* Fails unless out[o][p] matches b[o] + sum_c w[o][c] x[c][p] for p in [p0, p1)
 * within float rounding of the sum of magnitudes, and equals SENTINEL elsewhere. */
static void expect_product(const char *what, const float *out, const float *x, const float *w,
                           const float *b, int64_t m, int64_t k, int64_t hw, int64_t p0,
                           int64_t p1) {
    for (int64_t o = 0; o < m; o++)
        for (int64_t p = 0; p < hw; p++) {
            float got = out[o * hw + p];
            if (p < p0 || p >= p1) {
                if (got != SENTINEL)
                    fail_msg("%s m=%lld k=%lld hw=%lld [%lld,%lld): wrote outside at o=%lld p=%lld",
                             what, (long long)m, (long long)k, (long long)hw, (long long)p0,
                             (long long)p1, (long long)o, (long long)p);
                continue;
            }
            double want = b ? b[o] : 0.0, mag = b ? fabs(b[o]) : 0.0;
            for (int64_t c = 0; c < k; c++) {
                want += (double)w[o * k + c] * x[c * hw + p];
                mag += fabs((double)w[o * k + c] * x[c * hw + p]);
            }
            if (fabs(got - want) > 1e-5 * mag + 1e-6)
                fail_msg("%s m=%lld k=%lld hw=%lld: out[%lld][%lld] = %g, want %g", what,
                         (long long)m, (long long)k, (long long)hw, (long long)o, (long long)p, got,
                         want);
        }
}

/* One kernel over whole rows and over an unaligned sub-range of columns. */
static void check_columns(const char *what, Columns1x1 columns) {
    Rng r = rng_new(11);
    const int64_t ms[] = {1, 2, 3, 5, 7, 8, 9, 13, 32};
    const int64_t ks[] = {1, 3, 17};
    const int64_t hws[] = {1, 7, 16, 23, 47, 48, 49, 97, 131};
    for (size_t im = 0; im < sizeof ms / sizeof *ms; im++)
        for (size_t ik = 0; ik < sizeof ks / sizeof *ks; ik++)
            for (size_t ih = 0; ih < sizeof hws / sizeof *hws; ih++) {
                int64_t m = ms[im], k = ks[ik], hw = hws[ih];
                float *x = random_floats(k * hw, &r), *w = random_floats(m * k, &r);
                float *b = random_floats(m, &r);
                float *out = malloc(sizeof(float) * (size_t)(m * hw));
                float *panel = malloc(sizeof(float) * (size_t)(CONV1X1_PANEL_COLS * k));
                int64_t ranges[2][2] = {{0, hw}, {hw / 3, hw - hw / 5}};
                for (int ir = 0; ir < 2; ir++) {
                    int64_t p0 = ranges[ir][0], p1 = ranges[ir][1];
                    const float *bias = ir ? NULL : b;
                    for (int64_t i = 0; i < m * hw; i++) out[i] = SENTINEL;
                    columns(out, x, w, bias, m, k, hw, p0, p1, panel);
                    expect_product(what, out, x, w, bias, m, k, hw, p0, p1);
                }
                free(x);
                free(w);
                free(b);
                free(out);
                free(panel);
            }
}

static void test_columns_avx2(void **state) {
    (void)state;
    if (!hg_cpu_has_avx2_fma()) skip();
    check_columns("avx2", conv2d_1x1_columns_avx2);
}

static void test_columns_avx512(void **state) {
    (void)state;
    if (!hg_cpu_has_avx512f()) skip();
    check_columns("avx512", conv2d_1x1_columns_avx512);
}

/* The dispatching forward (whichever kernel this CPU gets, then the portable
 * GEMM path) on batches and groups with 1 and 2 threads: per image and group
 * the same product. Sizes make several column tasks per image with a ragged
 * last one, or row blocks. */
static void test_forward_threads(void **state) {
    (void)state;
    Rng r = rng_new(12);
    /* n, c_in, h, w, c_out, groups; from the third on above the forward's
     * threshold for going parallel; the last two with too few pixels for the
     * threads, so that output rows are split too (into ragged blocks) */
    const int64_t shapes[][6] = {{1, 19, 13, 17, 11, 1}, {2, 6, 9, 31, 10, 2},
                                 {1, 67, 40, 41, 13, 1}, {3, 34, 23, 29, 18, 2},
                                 {1, 45, 7, 9, 100, 1},  {2, 90, 5, 11, 130, 2}};
    int saved = omp_get_max_threads();
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const int64_t *sh = shapes[s];
        Conv2dGeom g = {.n = sh[0],
                        .c_in = sh[1],
                        .h = sh[2],
                        .w = sh[3],
                        .c_out = sh[4],
                        .kh = 1,
                        .kw = 1,
                        .oh = sh[2],
                        .ow = sh[3],
                        .sh = 1,
                        .sw = 1,
                        .dh = 1,
                        .dw = 1,
                        .groups = (int)sh[5]};
        int64_t hw = g.h * g.w, cin_g = g.c_in / g.groups, cout_g = g.c_out / g.groups;
        float *x = random_floats(g.n * g.c_in * hw, &r), *w = random_floats(g.c_out * cin_g, &r);
        float *b = random_floats(g.c_out, &r);
        float *out = malloc(sizeof(float) * (size_t)(g.n * g.c_out * hw));
        for (int threads = 1; threads <= 2; threads++)
            for (int portable = 0; portable <= 1; portable++) {
                omp_set_num_threads(threads);
                assert_ok(conv2d_1x1_forward(out, x, w, b, &g, portable));
                for (int64_t n = 0; n < g.n; n++)
                    for (int64_t grp = 0; grp < g.groups; grp++)
                        expect_product(portable ? "forward (portable)" : "forward",
                                       out + (n * g.c_out + grp * cout_g) * hw,
                                       x + (n * g.c_in + grp * cin_g) * hw,
                                       w + grp * cout_g * cin_g, b + grp * cout_g, cout_g, cin_g,
                                       hw, 0, hw);
            }
        free(x);
        free(w);
        free(b);
        free(out);
    }
    omp_set_num_threads(saved);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_columns_avx2),
        cmocka_unit_test(test_columns_avx512),
        cmocka_unit_test(test_forward_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
