/* Built-in filter bank (models/filterbank.h): output shapes for sizes that are
 * and are not multiples of the stride, argument errors, determinism and batch
 * independence; closed-form responses (a constant image; luma ramps along x,
 * y and the diagonal at every scale; a quadratic), a blob versus a line, the
 * symmetry under transposition; and every channel of a random non-square
 * image against a naive direct 2-D implementation written from the header's
 * description. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "models/filterbank.h"
#include "tensor/rng.h"
#include "tests/testutil.h"

enum { C = FILTERBANK_CHANNELS, P = FILTERBANK_PER_SCALE, K0 = FILTERBANK_COLOUR };
/* channel j of scale s (j as in the header's table) */
#define CH(s, j) (K0 + (s)*P + (j))

static float at(const Tensor *t, int64_t b, int64_t c, int64_t i, int64_t j) {
    return tensor_get(t, (const int64_t[]){b, c, i, j});
}

/* (1, 3, h, w) with r, g, b = f(channel, y, x) */
static Tensor *image_of(int h, int w, float (*f)(int, int, int, const void *), const void *ctx) {
    Tensor *x = tensor_empty(SHAPE(1, 3, h, w));
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < h; y++)
            for (int i = 0; i < w; i++)
                tensor_data(x)[((size_t)c * h + y) * w + i] = f(c, y, i, ctx);
    return x;
}

static Tensor *random_images(int n, int h, int w, uint64_t seed) {
    Tensor *x = tensor_empty(SHAPE(n, 3, h, w));
    Rng r = rng_new(seed);
    rng_fill_normal(&r, tensor_data(x), tensor_numel(x), 0.0f, 1.0f);
    return x;
}

static void test_shapes_and_errors(void **state) {
    (void)state;
    const int64_t sizes[][4] = {{1, 8, 8, 1}, {2, 37, 20, 0}, {1, 64, 48, 0}, {1, 9, 17, 0}};
    for (int k = 0; k < 4; k++) {
        Tensor *x = random_images((int)sizes[k][0], (int)sizes[k][1], (int)sizes[k][2], 3);
        Tensor *y = filterbank_forward(x);
        assert_ok_ptr(y);
        assert_int_equal(y->ndim, 4);
        assert_int_equal(y->shape[0], sizes[k][0]);
        assert_int_equal(y->shape[1], C);
        assert_int_equal(y->shape[2], (sizes[k][1] + 7) / 8);
        assert_int_equal(y->shape[3], (sizes[k][2] + 7) / 8);
        for (int64_t i = 0; i < tensor_numel(y); i++) assert_true(isfinite(tensor_data(y)[i]));
        tensor_free(x), tensor_free(y);
    }
    Tensor *bad[3] = {tensor_zeros(SHAPE(1, 1, 16, 16)), tensor_zeros(SHAPE(1, 3, 7, 16)),
                      tensor_zeros(SHAPE(3, 16, 16))};
    for (int k = 0; k < 3; k++) {
        assert_null(filterbank_forward(bad[k]));
        assert_int_equal(hg_last_status(), HG_ERR_SHAPE);
        tensor_free(bad[k]);
    }
    hg_clear_error();
}

/* The same numbers on every call, and image b of a batch as if alone. */
static void test_deterministic_and_batch_independent(void **state) {
    (void)state;
    Tensor *x = random_images(3, 24, 40, 11);
    Tensor *a = filterbank_forward(x), *b = filterbank_forward(x);
    assert_ok_ptr(a);
    assert_ok_ptr(b);
    assert_memory_equal(tensor_data(a), tensor_data(b), sizeof(float) * (size_t)tensor_numel(a));
    for (int64_t n = 0; n < 3; n++) {
        Tensor *one = tensor_narrow(x, 0, n, 1), *alone = filterbank_forward(one);
        Tensor *part = tensor_narrow(a, 0, n, 1), *cpart = tensor_contiguous(part);
        assert_ok_ptr(alone);
        assert_memory_equal(tensor_data(alone), tensor_data(cpart),
                            sizeof(float) * (size_t)tensor_numel(alone));
        tensor_free(one), tensor_free(alone), tensor_free(part), tensor_free(cpart);
    }
    tensor_free(x), tensor_free(a), tensor_free(b);
}

static float constant_rgb(int c, int y, int x, const void *ctx) {
    (void)y, (void)x, (void)ctx;
    return (float[]){0.3f, -0.2f, 0.5f}[c];
}

/* A flat image: its opponent colour, no edges anywhere (mirrored borders add
 * none), so every log channel is log(1 + 0) - 2 and orientation is 0. */
static void test_constant_image(void **state) {
    (void)state;
    Tensor *x = image_of(20, 28, constant_rgb, NULL), *y = filterbank_forward(x);
    assert_ok_ptr(y);
    const double r = 0.3, g = -0.2, b = 0.5;
    const double colour[3] = {(r + g + b) / sqrt(3), (r - g) / sqrt(2), (r + g - 2 * b) / sqrt(6)};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) {
            for (int c = 0; c < 3; c++) assert_float_equal(at(y, 0, c, i, j), colour[c], 1e-5);
            for (int s = 0; s < FILTERBANK_SCALES; s++)
                for (int k = 0; k < P; k++)
                    assert_float_equal(at(y, 0, CH(s, k), i, j), k == 1 || k == 2 ? 0.0 : -2.0,
                                       1e-4);
        }
    tensor_free(x), tensor_free(y);
}

typedef struct Ramp {
    double ax, ay, quad; /* v = ax x + ay y + quad (x - 32)^2 / 2 on every channel */
} Ramp;

static float ramp(int c, int y, int x, const void *ctx) {
    (void)c;
    const Ramp *r = ctx;
    return (float)(r->ax * x + r->ay * y + r->quad * (x - 32) * (x - 32) / 2);
}

/* Linear ramps: at scale s the image averaged over 2^s pixels is a ramp of
 * slope 2^s a per (coarse) pixel, and L = sqrt3 v, so |grad L| = sqrt3 2^s a
 * exactly in the interior (the derivative kernel is exact on ramps) against a
 * noise floor e / 2^s, and the Hessian vanishes. Cells 3 and 4 of
 * a 64-pixel axis see no border at any scale. */
static void test_ramps(void **state) {
    (void)state;
    const double a = 0.05, e = FILTERBANK_NOISE_FLOOR;
    const Ramp ramps[3] = {{a, 0, 0}, {0, a, 0}, {a, a, 0}};
    for (int k = 0; k < 3; k++) {
        Tensor *x = image_of(64, 64, ramp, &ramps[k]), *y = filterbank_forward(x);
        assert_ok_ptr(y);
        for (int s = 0; s < FILTERBANK_SCALES; s++) {
            const double es = e / (1 << s), gx = sqrt(3) * ramps[k].ax * (1 << s),
                         gy = sqrt(3) * ramps[k].ay * (1 << s), g2 = gx * gx + gy * gy;
            for (int i = 3; i <= 4; i++)
                for (int j = 3; j <= 4; j++) {
                    assert_float_equal(at(y, 0, CH(s, 0), i, j), log1p(sqrt(g2) / es) - 2, 1e-4);
                    assert_float_equal(at(y, 0, CH(s, 1), i, j),
                                       (gx * gx - gy * gy) / (g2 + es * es), 1e-4);
                    assert_float_equal(at(y, 0, CH(s, 2), i, j), 2 * gx * gy / (g2 + es * es),
                                       1e-4);
                    assert_float_equal(at(y, 0, CH(s, 3), i, j), -2.0, 1e-3); /* Laplacian */
                    assert_float_equal(at(y, 0, CH(s, 4), i, j), -2.0, 1e-3); /* ridge */
                    assert_float_equal(at(y, 0, CH(s, 5), i, j), -2.0,
                                       1e-3); /* grey: no colour edge */
                    assert_float_equal(at(y, 0, CH(s, 6), i, j), -2.0, 1e-3); /* max eigenvalue */
                }
        }
        tensor_free(x), tensor_free(y);
    }
}

/* v = q (x - 32)^2 / 2: the second-derivative kernel gives Lxx = sqrt3 q
 * exactly and Lyy = Lxy = 0, so at scale 0 the larger Hessian eigenvalue (its
 * pooled RMS and its pooled max) reads log(1 + sqrt3 q / e) - 2 and the
 * smaller one log(1 + 0) - 2. */
static void test_quadratic(void **state) {
    (void)state;
    const Ramp q = {0, 0, 0.25};
    Tensor *x = image_of(16, 64, ramp, &q), *y = filterbank_forward(x);
    assert_ok_ptr(y);
    const double want = log1p(sqrt(3) * 0.25 / FILTERBANK_NOISE_FLOOR) - 2;
    for (int j = 1; j <= 6; j++) {
        assert_float_equal(at(y, 0, CH(0, 3), 1, j), -2.0, 1e-3);
        assert_float_equal(at(y, 0, CH(0, 4), 1, j), want, 1e-3);
        assert_float_equal(at(y, 0, CH(0, 6), 1, j), want, 1e-3);
    }
    tensor_free(x), tensor_free(y);
}

typedef struct Mark {
    bool line; /* a vertical line through x = 35.5, else a round spot at (35.5, 35.5) */
} Mark;

static float mark(int c, int y, int x, const void *ctx) {
    (void)c;
    const Mark *m = ctx;
    double dx = x - 35.5, dy = y - 35.5, d2 = m->line ? dx * dx : dx * dx + dy * dy;
    return (float)exp(-d2 / 2);
}

/* A straight line has Lyy = Lxy = 0: one Hessian eigenvalue is zero along it,
 * the other large. A round spot has two large eigenvalues at its centre. */
static void test_blob_versus_line(void **state) {
    (void)state;
    const Mark spot = {false}, line = {true};
    Tensor *xs = image_of(64, 64, mark, &spot), *ys = filterbank_forward(xs);
    Tensor *xl = image_of(64, 64, mark, &line), *yl = filterbank_forward(xl);
    assert_ok_ptr(ys);
    assert_ok_ptr(yl);
    assert_true(at(ys, 0, CH(0, 3), 4, 4) > -2.0 + 1);
    for (int i = 1; i <= 6; i++) {
        assert_float_equal(at(yl, 0, CH(0, 3), i, 4), -2.0, 1e-3);
        assert_true(at(yl, 0, CH(0, 4), i, 4) > -2.0 + 1);
    }
    /* the spot cell stands out from a far, flat cell in every energy channel */
    for (int k = 0; k < P; k++)
        if (k != 1 && k != 2 && k != 5)
            assert_true(at(ys, 0, CH(0, k), 4, 4) > at(ys, 0, CH(0, k), 0, 0) + 1);
    tensor_free(xs), tensor_free(ys), tensor_free(xl), tensor_free(yl);
}

/* Transposing the image transposes every map, flips the sign of the
 * <Lx^2 - Ly^2> orientation channel and keeps the others. */
static void test_transpose_symmetry(void **state) {
    (void)state;
    const int n = 44;
    Tensor *x = random_images(1, n, n, 5), *xt = tensor_empty(SHAPE(1, 3, n, n));
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                tensor_data(xt)[((size_t)c * n + i) * n + j] =
                    tensor_data(x)[((size_t)c * n + j) * n + i];
    Tensor *y = filterbank_forward(x), *yt = filterbank_forward(xt);
    assert_ok_ptr(y);
    assert_ok_ptr(yt);
    const int64_t m = y->shape[2];
    for (int c = 0; c < C; c++) {
        const bool flips = c >= K0 && (c - K0) % P == 1;
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < m; j++)
                assert_float_equal(at(yt, 0, c, i, j), (flips ? -1 : 1) * at(y, 0, c, j, i), 2e-4);
    }
    tensor_free(x), tensor_free(xt), tensor_free(y), tensor_free(yt);
}

/* ------------------------------------------------ naive reference, per the header */

static int reflect(int i, int n) { /* abc|cba, reflected again as often as needed */
    while (i < 0 || i >= n) i = i < 0 ? -1 - i : 2 * n - 1 - i;
    return i;
}

/* 1-D sigma-1 kernels: Gaussian, and first / second derivatives normalized
 * so that they are exact on x and x^2 / 2. */
static void ref_kernels(double g[9], double d1[9], double d2[9]) {
    double sum = 0, m2 = 0, m4 = 0;
    for (int t = -4; t <= 4; t++) sum += exp(-t * t / 2.0);
    for (int t = -4; t <= 4; t++) {
        g[t + 4] = exp(-t * t / 2.0) / sum;
        m2 += t * t * g[t + 4];
        m4 += t * t * t * t * g[t + 4];
    }
    for (int t = -4; t <= 4; t++) {
        d1[t + 4] = t * g[t + 4] / m2;
        d2[t + 4] = (t * t - m2) * g[t + 4] / ((m4 - m2 * m2) / 2);
    }
}

/* Direct 2-D correlation of plane p (h, w) with ky(dy) kx(dx), mirrored borders. */
static double corr2(const double *p, int h, int w, int y, int x, const double *ky,
                    const double *kx) {
    double acc = 0;
    for (int dy = -4; dy <= 4; dy++)
        for (int dx = -4; dx <= 4; dx++)
            acc += ky[dy + 4] * kx[dx + 4] * p[reflect(y + dy, h) * w + reflect(x + dx, w)];
    return acc;
}

/* Channels of one scale for opponent planes (3, h, w), cells of c pixels. */
static void ref_scale(const double *opp, int h, int w, int c, double e, bool colour, int oh, int ow,
                      double *out /* (channels, oh, ow) */) {
    double g[9], d1[9], d2[9];
    ref_kernels(g, d1, d2);
    const int hw = h * w, nq = 10;
    double *q = calloc((size_t)nq * hw, sizeof(double));
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const double *L = opp;
            double lx = corr2(L, h, w, y, x, g, d1), ly = corr2(L, h, w, y, x, d1, g);
            double lxx = corr2(L, h, w, y, x, g, d2), lyy = corr2(L, h, w, y, x, d2, g);
            double lxy = corr2(L, h, w, y, x, d1, d1), col = 0;
            for (int k = 1; k < 3; k++) {
                double ox = corr2(opp + k * hw, h, w, y, x, g, d1),
                       oy = corr2(opp + k * hw, h, w, y, x, d1, g);
                col += ox * ox + oy * oy;
            }
            /* Hessian eigenvalues from the symmetric 2x2 formula */
            double mid = (lxx + lyy) / 2, rad = sqrt((lxx - lyy) * (lxx - lyy) / 4 + lxy * lxy);
            double e1 = fabs(mid + rad), e2 = fabs(mid - rad);
            double v[10] = {corr2(L, h, w, y, x, g, g),
                            corr2(opp + hw, h, w, y, x, g, g),
                            corr2(opp + 2 * hw, h, w, y, x, g, g),
                            lx * lx + ly * ly,
                            lx * lx - ly * ly,
                            2 * lx * ly,
                            fmin(e1, e2) * fmin(e1, e2),
                            fmax(e1, e2) * fmax(e1, e2),
                            col,
                            fmax(e1, e2)};
            for (int k = 0; k < nq; k++) q[k * hw + y * w + x] = v[k];
        }
    int o = 0;
    for (int i = 0; i < oh; i++)
        for (int j = 0; j < ow; j++) {
            double cy = c * i + (c - 1) / 2.0, cx = c * j + (c - 1) / 2.0, mean[10] = {0}, norm = 0;
            double top = 0, peak = 0;
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    double wgt = fmax(0, 1 - fabs(y - cy) / c) * fmax(0, 1 - fabs(x - cx) / c);
                    for (int k = 0; k < nq; k++) mean[k] += wgt * q[k * hw + y * w + x];
                    norm += wgt;
                    top = fmax(top, wgt * q[9 * hw + y * w + x]);
                    peak = fmax(peak, wgt);
                }
            for (int k = 0; k < nq; k++) mean[k] /= norm;
            double *dst = out + i * ow + j;
            const int plane = oh * ow;
            int n = 0;
            if (colour)
                for (int k = 0; k < 3; k++) dst[plane * n++] = mean[k];
            dst[plane * n++] = log1p(sqrt(mean[3]) / e) - 2;
            dst[plane * n++] = mean[4] / (mean[3] + e * e);
            dst[plane * n++] = mean[5] / (mean[3] + e * e);
            dst[plane * n++] = log1p(sqrt(mean[6]) / e) - 2;
            dst[plane * n++] = log1p(sqrt(mean[7]) / e) - 2;
            dst[plane * n++] = log1p(sqrt(mean[8]) / e) - 2;
            dst[plane * n++] = log1p(top / peak / e) - 2;
            o++;
        }
    free(q);
}

static void test_against_naive_reference(void **state) {
    (void)state;
    const int H = 20, W = 28, oh = 3, ow = 4;
    Tensor *x = random_images(1, H, W, 9), *y = filterbank_forward(x);
    assert_ok_ptr(y);
    double *opp = malloc(sizeof(double) * 3 * H * W), *half = malloc(sizeof(double) * 3 * H * W);
    double *ref = malloc(sizeof(double) * C * oh * ow);
    const float *px = tensor_data(x);
    for (int p = 0; p < H * W; p++) {
        double r = px[p], g = px[H * W + p], b = px[2 * H * W + p];
        opp[p] = (r + g + b) / sqrt(3);
        opp[H * W + p] = (r - g) / sqrt(2);
        opp[2 * H * W + p] = (r + g - 2 * b) / sqrt(6);
    }
    int h = H, w = W;
    for (int s = 0; s < FILTERBANK_SCALES; s++) {
        if (s > 0) { /* average 2x2 blocks; a lone last row / column averages what exists */
            int nh = (h + 1) / 2, nw = (w + 1) / 2;
            for (int k = 0; k < 3; k++)
                for (int i = 0; i < nh; i++)
                    for (int j = 0; j < nw; j++) {
                        double sum = 0;
                        int cnt = 0;
                        for (int y2 = 2 * i; y2 < 2 * i + 2 && y2 < h; y2++)
                            for (int x2 = 2 * j; x2 < 2 * j + 2 && x2 < w; x2++)
                                sum += opp[k * h * w + y2 * w + x2], cnt++;
                        half[k * nh * nw + i * nw + j] = sum / cnt;
                    }
            memcpy(opp, half, sizeof(double) * 3 * nh * nw);
            h = nh, w = nw;
        }
        ref_scale(opp, h, w, 8 >> s, FILTERBANK_NOISE_FLOOR / (double)(1 << s), s == 0, oh, ow,
                  ref + (size_t)(s == 0 ? 0 : K0 + s * P) * oh * ow);
    }
    for (int c = 0; c < C; c++)
        for (int i = 0; i < oh; i++)
            for (int j = 0; j < ow; j++) {
                double want = ref[(c * oh + i) * ow + j], got = at(y, 0, c, i, j);
                if (fabs(got - want) > 1e-4 * (1 + fabs(want)))
                    fail_msg("channel %d cell (%d, %d): %.7f, reference %.7f", c, i, j, got, want);
            }
    free(opp), free(half), free(ref);
    tensor_free(x), tensor_free(y);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes_and_errors),
        cmocka_unit_test(test_deterministic_and_batch_independent),
        cmocka_unit_test(test_constant_image),
        cmocka_unit_test(test_ramps),
        cmocka_unit_test(test_quadratic),
        cmocka_unit_test(test_blob_versus_line),
        cmocka_unit_test(test_transpose_symmetry),
        cmocka_unit_test(test_against_naive_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
