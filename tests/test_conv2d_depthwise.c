/* The depthwise plane kernels of each instruction set (conv2d_depthwise_avx2.c,
 * conv2d_depthwise_avx512.c) called directly, so that both are checked on a CPU
 * where conv2d_forward picks only one: every plane fill must equal the portable
 * dw_plane_fill bit for bit, and every plane forward must match a naive
 * double-precision correlation. Geometries cover 3x3 and 5x5 at strides 1 and 2
 * (the unrolled kernels) with widths around the 8- and 16-wide vectors, heights
 * giving every remainder of the 4-row and 2-row blocks, symmetric and
 * asymmetric padding, and a 7x7, a dilated and a stride-3 kernel (the general
 * paths). A kernel the CPU cannot run is skipped in its own test. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/conv2d_kernels.h"
#include "testutil.h"
#include "tensor/rng.h"

typedef void (*PlaneFill)(float *buf, const float *x, const Conv2dGeom *g, const DwPlane *p);
typedef void (*PlaneForward)(float *out, const float *plane, const float *w, float b,
                             const Conv2dGeom *g, const DwPlane *p);

/* One plane: h, w, k, stride, dilation, padding top, bottom, left, right. */
typedef struct {
    int64_t h, w, k;
    int s, d, pt, pb, pl, pr;
} PlaneCase;

static Conv2dGeom geometry(const PlaneCase *c) {
    Conv2dGeom g = {.n = 1,
                    .c_in = 1,
                    .h = c->h,
                    .w = c->w,
                    .c_out = 1,
                    .kh = c->k,
                    .kw = c->k,
                    .sh = c->s,
                    .sw = c->s,
                    .dh = c->d,
                    .dw = c->d,
                    .groups = 1,
                    .pt = c->pt,
                    .pb = c->pb,
                    .pl = c->pl,
                    .pr = c->pr};
    g.oh = (c->h + c->pt + c->pb - c->d * (c->k - 1) - 1) / c->s + 1;
    g.ow = (c->w + c->pl + c->pr - c->d * (c->k - 1) - 1) / c->s + 1;
    return g;
}

static void check_plane(const char *what, PlaneFill fill, PlaneForward forward) {
    const int64_t widths[] = {1, 6, 16, 17, 31, 37, 64, 67};
    const int64_t heights[] = {3, 6, 7, 8, 9, 12};
    PlaneCase shapes[] = {
        {0, 0, 3, 1, 1, 1, 1, 1, 1}, {0, 0, 3, 2, 1, 1, 1, 1, 1}, {0, 0, 3, 2, 1, 0, 1, 0, 1},
        {0, 0, 5, 1, 1, 2, 2, 2, 2}, {0, 0, 5, 2, 1, 2, 2, 2, 2}, {0, 0, 5, 2, 1, 1, 2, 1, 2},
        {0, 0, 7, 1, 1, 3, 3, 3, 3}, {0, 0, 3, 1, 2, 2, 2, 2, 2}, {0, 0, 3, 3, 1, 1, 1, 1, 1},
    };
    Rng r = rng_new(31);
    for (size_t is = 0; is < sizeof shapes / sizeof *shapes; is++)
        for (size_t ih = 0; ih < sizeof heights / sizeof *heights; ih++)
            for (size_t iw = 0; iw < sizeof widths / sizeof *widths; iw++) {
                PlaneCase c = shapes[is];
                c.h = heights[ih];
                c.w = widths[iw];
                Conv2dGeom g = geometry(&c);
                if (g.oh < 1 || g.ow < 1) continue;
                DwPlane p = dw_plane_layout(&g);
                size_t nbuf = (size_t)(p.rows * p.row_stride);
                Tensor *xt = tensor_normal(SHAPE(c.h * c.w + c.k * c.k + 1), 0, 1, &r);
                assert_ok_ptr(xt);
                const float *x = tensor_data(xt), *w = x + c.h * c.w,
                            bias = x[c.h * c.w + c.k * c.k];
                float *want_buf = malloc(sizeof(float) * nbuf), *buf = malloc(sizeof(float) * nbuf);
                float *out = malloc(sizeof(float) * (size_t)(g.oh * g.ow));
                for (size_t i = 0; i < nbuf; i++) want_buf[i] = buf[i] = NAN;
                dw_plane_fill(want_buf, x, &g, &p);
                fill(buf, x, &g, &p);
                if (memcmp(want_buf, buf, sizeof(float) * nbuf) != 0)
                    fail_msg("%s fill: %lldx%lld k%lld s%d d%d pad %d,%d,%d,%d differs", what,
                             (long long)c.h, (long long)c.w, (long long)c.k, c.s, c.d, c.pt, c.pb,
                             c.pl, c.pr);
                forward(out, buf, w, bias, &g, &p);
                for (int64_t y = 0; y < g.oh; y++)
                    for (int64_t xx = 0; xx < g.ow; xx++) {
                        double s = bias, mag = fabs(bias);
                        for (int64_t i = 0; i < c.k; i++)
                            for (int64_t j = 0; j < c.k; j++) {
                                int64_t iy = y * c.s - c.pt + i * c.d,
                                        ix = xx * c.s - c.pl + j * c.d;
                                if (iy < 0 || iy >= c.h || ix < 0 || ix >= c.w) continue;
                                s += (double)w[i * c.k + j] * x[iy * c.w + ix];
                                mag += fabs((double)w[i * c.k + j] * x[iy * c.w + ix]);
                            }
                        float got = out[y * g.ow + xx];
                        if (!(fabs(got - s) <= 1e-5 * mag + 1e-6))
                            fail_msg("%s forward: %lldx%lld k%lld s%d d%d pad %d,%d,%d,%d: "
                                     "out[%lld][%lld] = %g, want %g",
                                     what, (long long)c.h, (long long)c.w, (long long)c.k, c.s, c.d,
                                     c.pt, c.pb, c.pl, c.pr, (long long)y, (long long)xx, got, s);
                    }
                free(want_buf);
                free(buf);
                free(out);
                tensor_free(xt);
            }
}

static void test_plane_avx2(void **state) {
    (void)state;
    if (!hg_cpu_has_avx2_fma()) skip();
    check_plane("avx2", dw_plane_fill_avx2, conv2d_depthwise_plane_avx2);
}

static void test_plane_avx512(void **state) {
    (void)state;
    if (!hg_cpu_has_avx512f() || !hg_cpu_has_avx2_fma()) skip();
    check_plane("avx512", dw_plane_fill_avx512, conv2d_depthwise_plane_avx512);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plane_avx2),
        cmocka_unit_test(test_plane_avx512),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
