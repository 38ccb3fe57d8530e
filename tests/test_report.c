/* Presentation services: heat-map overlays (colours from matplotlib's turbo,
 * bilinear stretch and mask contour against naive references), the plotting
 * kit and ROC figure (PNG read back, curve pixels where the axes put them),
 * results in Markdown (an expected text) and JSON (parsed back with nn/json),
 * progress output on files and on a pseudo-terminal. */
#include "tests/testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pty.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "datasets/image.h"
#include "nn/json.h"
#include "report/font.h"
#include "report/heatmap.h"
#include "report/plot.h"
#include "report/progress.h"
#include "report/results.h"

/* ---- helpers ---- */

static Image *solid_image(int w, int h, uint8_t r, uint8_t g, uint8_t b) {
    Image *img = image_new(w, h, 3, 8);
    assert_ok_ptr(img);
    for (int i = 0; i < w * h; i++) {
        img->data8[3 * i] = r;
        img->data8[3 * i + 1] = g;
        img->data8[3 * i + 2] = b;
    }
    return img;
}

static const uint8_t *pixel(const Image *img, int x, int y) {
    return img->data8 + 3 * ((size_t)y * img->width + x);
}

static void assert_rgb_near(const uint8_t *px, int r, int g, int b, int tol, int x, int y) {
    if (abs(px[0] - r) > tol || abs(px[1] - g) > tol || abs(px[2] - b) > tol)
        fail_msg("pixel (%d, %d) is (%d, %d, %d), expected (%d, %d, %d) +- %d", x, y, px[0], px[1],
                 px[2], r, g, b, tol);
}

/* A fresh directory under /tmp; removed with remove_dir(). */
static void make_temp_dir(char *buf, size_t size) {
    snprintf(buf, size, "/tmp/hg_test_report_XXXXXX");
    if (!mkdtemp(buf)) fail_msg("mkdtemp failed");
}

/* Number of entries in dir (without . and ..); deletes them when `remove` is set. */
static int dir_entries(const char *dir, bool remove, const char *must_not_contain) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (must_not_contain && strstr(e->d_name, must_not_contain))
            fail_msg("leftover file %s in %s", e->d_name, dir);
        n++;
        if (remove) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    }
    closedir(d);
    return n;
}

static void remove_dir(const char *dir) {
    dir_entries(dir, true, NULL);
    rmdir(dir);
}

static char *read_all(FILE *f, size_t *len) {
    fflush(f);
    long end = ftell(f);
    rewind(f);
    char *s = calloc((size_t)end + 1, 1);
    assert_non_null(s);
    *len = fread(s, 1, (size_t)end, f);
    return s;
}

static char *read_file_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    size_t len;
    char *s = read_all(f, &len);
    fclose(f);
    return s;
}

/* ---- heat maps ---- */

/* matplotlib.colormaps['turbo'](t) * 255, rounded (tools/fixtures/make_turbo_table.py). */
static const struct {
    double t;
    int r, g, b;
} turbo_ref[] = {
    {0.0, 48, 18, 59},   {0.3, 25, 213, 205}, {0.45, 121, 254, 89},
    {0.7, 254, 164, 49}, {1.0, 122, 4, 3},
};

static void test_heatmap_color_reference(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof turbo_ref / sizeof turbo_ref[0]; i++) {
        uint8_t c[3];
        heatmap_color(turbo_ref[i].t, c);
        assert_rgb_near(c, turbo_ref[i].r, turbo_ref[i].g, turbo_ref[i].b, 4, (int)i, 0);
    }
    uint8_t lo[3], hi[3], nan_c[3];
    heatmap_color(-3.0, lo);
    heatmap_color(7.0, hi);
    heatmap_color(NAN, nan_c);
    assert_rgb_near(lo, 48, 18, 59, 0, 0, 0);
    assert_rgb_near(hi, 122, 4, 3, 0, 0, 0);
    assert_memory_equal(nan_c, lo, 3);
}

/* 2 x 2 map over an 8 x 8 image: the corner pixels sample the map values
 * exactly (half-pixel centres clamp there). */
static void test_heatmap_corners(void **state) {
    (void)state;
    Image *img = solid_image(8, 8, 100, 150, 200);
    /* raw scores 10 + 10 t with vmin 10, vmax 20 */
    const float map[4] = {13.0f, 20.0f, 17.0f, 10.0f}; /* t = 0.3, 1.0 / 0.7, 0.0 */
    Image *out = heatmap_overlay(img, map, 2, 2, 10.0f, 20.0f, NULL, 1.0f);
    assert_ok_ptr(out);
    assert_int_equal(out->width, 8);
    assert_int_equal(out->height, 8);
    assert_int_equal(out->channels, 3);
    assert_rgb_near(pixel(out, 0, 0), 25, 213, 205, 4, 0, 0);
    assert_rgb_near(pixel(out, 7, 0), 122, 4, 3, 4, 7, 0);
    assert_rgb_near(pixel(out, 0, 7), 254, 164, 49, 4, 0, 7);
    assert_rgb_near(pixel(out, 7, 7), 48, 18, 59, 4, 7, 7);
    image_free(out);

    /* half blend: (image + colour) / 2 */
    out = heatmap_overlay(img, map, 2, 2, 10.0f, 20.0f, NULL, 0.5f);
    assert_ok_ptr(out);
    assert_rgb_near(pixel(out, 0, 0), (100 + 25) / 2, (150 + 213) / 2, (200 + 205) / 2, 3, 0, 0);
    assert_rgb_near(pixel(out, 7, 0), (100 + 122) / 2, (150 + 4) / 2, (200 + 3) / 2, 3, 7, 0);
    image_free(out);

    /* out of range scores clamp; NaN leaves the image as it is */
    const float low = -100.0f, high = 100.0f, nan_v = NAN;
    out = heatmap_overlay(img, &low, 1, 1, 10.0f, 20.0f, NULL, 1.0f);
    assert_rgb_near(pixel(out, 3, 3), 48, 18, 59, 4, 3, 3);
    image_free(out);
    out = heatmap_overlay(img, &high, 1, 1, 10.0f, 20.0f, NULL, 1.0f);
    assert_rgb_near(pixel(out, 3, 3), 122, 4, 3, 4, 3, 3);
    image_free(out);
    out = heatmap_overlay(img, &nan_v, 1, 1, 10.0f, 20.0f, NULL, 1.0f);
    assert_memory_equal(out->data8, img->data8, image_size_bytes(img));
    image_free(out);
    image_free(img);
}

/* Two map rows stretched over 8 image rows: torch's bilinear (align_corners
 * False) puts row y at source 0.25 (y + 0.5) - 0.5, clamped to [0, 1]. */
static void test_heatmap_bilinear_rows(void **state) {
    (void)state;
    Image *grey = image_new(8, 8, 1, 8); /* a grey input is converted to RGB */
    assert_ok_ptr(grey);
    const float map[2] = {0.3f, 0.7f}; /* 2 x 1 */
    Image *out = heatmap_overlay(grey, map, 2, 1, 0.0f, 1.0f, NULL, 1.0f);
    assert_ok_ptr(out);
    assert_int_equal(out->channels, 3);
    for (int x = 0; x < 8; x++) {
        assert_rgb_near(pixel(out, x, 0), 25, 213, 205, 4, x, 0); /* source -0.375 -> 0.3 */
        assert_rgb_near(pixel(out, x, 1), 25, 213, 205, 4, x, 1); /* -0.125 -> 0.3 */
        assert_rgb_near(pixel(out, x, 3), 121, 254, 89, 4, x, 3); /* 0.375 -> 0.45 */
        assert_rgb_near(pixel(out, x, 6), 254, 164, 49, 4, x, 6); /* 1.125 -> 0.7 */
        assert_rgb_near(pixel(out, x, 7), 254, 164, 49, 4, x, 7);
    }
    image_free(out);
    image_free(grey);
    assert_null(heatmap_overlay(NULL, map, 2, 1, 0, 1, NULL, 1));
    Image *img = solid_image(2, 2, 0, 0, 0);
    assert_null(heatmap_overlay(img, map, 0, 1, 0, 1, NULL, 1));
    assert_null(heatmap_overlay(img, map, 2, 1, 0, 1, NULL, 1.5f));
    image_free(img);
}

/* With alpha 0 only the contour changes the image: white on mask pixels with a
 * 4-neighbour outside the mask, black on non-mask pixels with one inside. */
static void test_heatmap_contour(void **state) {
    (void)state;
    enum { MH = 8, MW = 8, H = 16, W = 16 };
    uint8_t mask[MH * MW] = {0};
    for (int y = 2; y <= 4; y++)
        for (int x = 1; x <= 3; x++) mask[y * MW + x] = 1;
    for (int y = 5; y < MH; y++) /* touches the bottom and right image borders */
        for (int x = 6; x < MW; x++) mask[y * MW + x] = 255;
    float map[MH * MW] = {0};
    Image *img = solid_image(W, H, 100, 150, 200);
    Image *out = heatmap_overlay(img, map, MH, MW, 0.0f, 1.0f, mask, 0.0f);
    assert_ok_ptr(out);

    int white = 0, black = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int m = mask[(y / 2) * MW + x / 2] != 0; /* nearest for a factor of 2 */
            bool differs = false;
            const int dx[4] = {-1, 1, 0, 0}, dy[4] = {0, 0, -1, 1};
            for (int k = 0; k < 4; k++) {
                int nx = x + dx[k], ny = y + dy[k];
                if (nx < 0 || ny < 0 || nx >= W || ny >= H) continue;
                if ((mask[(ny / 2) * MW + nx / 2] != 0) != m) differs = true;
            }
            if (differs && m) {
                assert_rgb_near(pixel(out, x, y), 255, 255, 255, 0, x, y);
                white++;
            } else if (differs) {
                assert_rgb_near(pixel(out, x, y), 0, 0, 0, 0, x, y);
                black++;
            } else {
                assert_rgb_near(pixel(out, x, y), 100, 150, 200, 0, x, y);
            }
        }
    /* the 6x6 square has 20 edge pixels inside and 24 outside; the corner
     * block (rows 10-15, cols 12-15) has 4 + 6 - 1 = 9 inside and 4 + 6 = 10 outside */
    assert_int_equal(white, 20 + 9);
    assert_int_equal(black, 24 + 10);

    /* composite: image | overlay | mask with white gaps */
    Image *panels = heatmap_panels(img, out, mask, MH, MW);
    assert_ok_ptr(panels);
    assert_int_equal(panels->width, 3 * W + 2 * HEATMAP_GAP);
    assert_int_equal(panels->height, H);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            assert_memory_equal(pixel(panels, x, y), pixel(img, x, y), 3);
            assert_memory_equal(pixel(panels, W + HEATMAP_GAP + x, y), pixel(out, x, y), 3);
            int v = mask[(y / 2) * MW + x / 2] ? 255 : 0;
            assert_rgb_near(pixel(panels, 2 * (W + HEATMAP_GAP) + x, y), v, v, v, 0, x, y);
        }
    assert_rgb_near(pixel(panels, W, 0), 255, 255, 255, 0, W, 0);
    image_free(panels);
    panels = heatmap_panels(img, out, NULL, 0, 0);
    assert_ok_ptr(panels);
    assert_int_equal(panels->width, 2 * W + HEATMAP_GAP);
    image_free(panels);
    image_free(out);
    image_free(img);
}

/* ---- plotting ---- */

static void test_font_and_text(void **state) {
    (void)state;
    int ink_space = 0, ink_a = 0;
    for (int y = 0; y < FONT_HEIGHT; y++)
        for (int x = 0; x < FONT_WIDTH; x++) {
            ink_space += font_pixel(' ', x, y);
            ink_a += font_pixel('A', x, y);
            /* unknown characters draw as '?' */
            assert_int_equal(font_pixel('\x80', x, y), font_pixel('?', x, y));
        }
    assert_int_equal(ink_space, 0);
    assert_true(ink_a > 10);
    for (int c = 33; c < 127; c++) { /* every visible character has ink */
        int ink = 0;
        for (int y = 0; y < FONT_HEIGHT; y++)
            for (int x = 0; x < FONT_WIDTH; x++) ink += font_pixel((char)c, x, y);
        if (!ink) fail_msg("glyph '%c' is empty", c);
    }
    assert_false(font_pixel('A', FONT_WIDTH, 0));
    assert_int_equal(plot_text_width("AB", 2), (2 * FONT_ADVANCE - 1) * 2);

    /* "I" at scale 2: its top bar, 3 font pixels from column 1, as 6x2 pixels */
    Image *img = solid_image(20, 20, 255, 255, 255);
    plot_text(img, 3, 4, 2, PLOT_BLACK, "I");
    for (int y = 0; y < 20; y++)
        for (int x = 0; x < 20; x++) {
            int gx = (x - 3) / 2, gy = (y - 4) / 2;
            bool ink = x >= 3 && y >= 4 && font_pixel('I', gx, gy);
            int v = ink ? 0 : 255;
            assert_rgb_near(pixel(img, x, y), v, v, v, 0, x, y);
        }
    image_free(img);
}

static void test_plot_polyline(void **state) {
    (void)state;
    Plot *p = plot_new(100, 80, 10, 10, 80, 60, 0, 1, 0, 1);
    assert_ok_ptr(p);
    const double xs[3] = {0, 0.5, 1}, ys[3] = {0, 1, 0};
    PlotColor red = {255, 0, 0};
    plot_polyline(p, xs, ys, 3, red, 1, 0);
    /* naive: x = 10 + 79 u, y = 10 + 59 (1 - v) */
    for (int k = 0; k <= 20; k++) {
        double u = k / 20.0, v = u <= 0.5 ? 2 * u : 2 - 2 * u;
        int x = (int)lround(10 + 79 * u), y = (int)lround(10 + 59 * (1 - v));
        bool found = false; /* within one pixel of the exact position */
        for (int dy = -1; dy <= 1; dy++)
            for (int dx = -1; dx <= 1; dx++) {
                const uint8_t *px = pixel(p->image, x + dx, y + dy);
                if (px[0] == 255 && px[1] == 0 && px[2] == 0) found = true;
            }
        if (!found) fail_msg("no line pixel near (%d, %d)", x, y);
    }
    /* nothing drawn outside the axes, and little away from the line */
    int red_pixels = 0;
    for (int y = 0; y < 80; y++)
        for (int x = 0; x < 100; x++) {
            const uint8_t *px = pixel(p->image, x, y);
            if (px[0] == 255 && px[1] == 0 && px[2] == 0) {
                red_pixels++;
                assert_true(x >= 10 && x < 90 && y >= 10 && y < 70);
            }
        }
    assert_true(red_pixels >= 80 && red_pixels <= 130);
    plot_free(p);
    assert_null(plot_new(100, 80, 10, 10, 95, 60, 0, 1, 0, 1));
    assert_null(plot_new(100, 80, 10, 10, 80, 60, 1, 1, 0, 1));
}

/* Pixel of data point (x, y) from the plot's public fields (naive). */
static void data_pixel(const Plot *p, double x, double y, int *px, int *py) {
    *px = (int)lround(p->left + (x - p->x0) / (p->x1 - p->x0) * (p->width - 1));
    *py = (int)lround(p->top + (p->y1 - y) / (p->y1 - p->y0) * (p->height - 1));
}

static bool color_near_point(const Image *img, int x, int y, PlotColor c) {
    for (int dy = -1; dy <= 1; dy++)
        for (int dx = -1; dx <= 1; dx++) {
            const uint8_t *px = pixel(img, x + dx, y + dy);
            if (px[0] == c.r && px[1] == c.g && px[2] == c.b) return true;
        }
    return false;
}

static void test_roc_plot_png(void **state) {
    (void)state;
    double fa[3] = {0, 0, 1}, ta[3] = {0, 0.8, 1};
    double fb[3] = {0, 0.3, 1}, tb[3] = {0, 0.6, 1};
    MetricCurve curves[2] = {{3, fa, ta, NULL}, {3, fb, tb, NULL}};
    const char *names[2] = {"carpet", "metal_nut"};
    const double aucs[2] = {0.92, NAN};

    char dir[64], path[128];
    make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/roc.png", dir);
    assert_ok(roc_plot_png(path, 2, curves, names, aucs));
    Image *img = image_load(path);
    assert_ok_ptr(img);
    assert_int_equal(img->width, ROC_PLOT_WIDTH);
    assert_int_equal(img->height, ROC_PLOT_HEIGHT);
    assert_int_equal(img->channels, 3);
    assert_int_equal(img->bit_depth, 8);

    Plot *p = roc_plot(ROC_PLOT_WIDTH, ROC_PLOT_HEIGHT, 2, curves, names, aucs);
    assert_ok_ptr(p);
    assert_memory_equal(img->data8, p->image->data8, image_size_bytes(img)); /* PNG round trip */
    assert_int_equal(p->width, p->height);                                   /* square axes */
    assert_true(p->x0 <= 0 && p->x1 >= 1 && p->y0 <= 0 && p->y1 >= 1);
    int x, y;
    data_pixel(p, 0.5, 0.9, &x, &y); /* curve A, segment (0, 0.8)-(1, 1) */
    assert_true(color_near_point(img, x, y, plot_palette(0)));
    data_pixel(p, 0.0, 0.4, &x, &y); /* curve A going up the left edge */
    assert_true(color_near_point(img, x, y, plot_palette(0)));
    data_pixel(p, 0.15, 0.3, &x, &y); /* curve B, segment (0, 0)-(0.3, 0.6) */
    assert_true(color_near_point(img, x, y, plot_palette(1)));
    data_pixel(p, 0.65, 0.8, &x, &y); /* curve B, segment (0.3, 0.6)-(1, 1) */
    assert_true(color_near_point(img, x, y, plot_palette(1)));
    data_pixel(p, 0.5, 0.5, &x, &y); /* between the curves: background or the grey diagonal */
    assert_false(color_near_point(img, x, y, plot_palette(0)));
    assert_false(color_near_point(img, x, y, plot_palette(1)));
    /* the frame corner is black; the legend box (grey frame) is right of the axes */
    assert_rgb_near(pixel(img, p->left, p->top), 0, 0, 0, 0, p->left, p->top);
    int legend_frame = 0;
    for (int yy = 0; yy < img->height; yy++)
        for (int xx = p->left + p->width; xx < img->width; xx++) {
            const uint8_t *px = pixel(img, xx, yy);
            legend_frame += px[0] == 160 && px[1] == 160 && px[2] == 160;
        }
    assert_true(legend_frame > 100);
    plot_free(p);
    image_free(img);
    assert_int_equal(dir_entries(dir, false, ".tmp."), 1);

    /* small canvas, no names or AUROCs, many curves (dashed repeats): no crash */
    MetricCurve many[25];
    for (int i = 0; i < 25; i++) many[i] = curves[i % 2];
    p = roc_plot(200, 160, 25, many, NULL, NULL);
    assert_ok_ptr(p);
    plot_free(p);
    assert_null(roc_plot(20, 20, 2, curves, names, aucs));
    MetricCurve empty = {0, NULL, NULL, NULL};
    assert_null(roc_plot(400, 400, 1, &empty, NULL, NULL));
    remove_dir(dir);
}

/* ---- results ---- */

static Results *two_categories(void) {
    Results *r = results_new();
    assert_ok_ptr(r);
    assert_ok(results_add(r, "carpet", 0.99951, 0.98765, 0.9512, 117, 89));
    assert_ok(results_add(r, "metal_nut", 1.0, NAN, 0.9, 115, 93));
    return r;
}

static void test_results_markdown(void **state) {
    (void)state;
    Results *r = two_categories();
    const char *expected = "| Category | Image AUROC | Pixel AUROC | AUPRO |\n"
                           "|:--------:|:-----------:|:-----------:|:-----:|\n"
                           "| Carpet | 1.000 | 0.988 | 0.951 |\n"
                           "| Metal nut | 1.000 | n/a | 0.900 |\n"
                           "| Mean | 1.000 | 0.988 | 0.926 |\n"
                           "\n"
                           "Image/Pixel AUROC in the layout of the HGAD README:\n"
                           "\n"
                           "| Category | Image/Pixel AUC | Category | Image/Pixel AUC |\n"
                           "|:--------:|:---------------:|:--------:|:---------------:|\n"
                           "| Carpet | 1.000/0.988 | Metal nut | 1.000/n/a |\n"
                           "| Mean | 1.000/0.988 |\n";
    char *md = results_markdown(r);
    assert_ok_ptr(md);
    assert_string_equal(md, expected);
    free(md);

    /* three across, the mean in the slot after the last category */
    assert_ok(results_add(r, "pcb1", 0.5, 0.25, 0.125, 10, 5));
    assert_ok(results_add(r, "01", 0.75, 0.5, 0.25, 10, 5));
    md = results_markdown(r);
    assert_ok_ptr(md);
    assert_non_null(strstr(md, "| Carpet | 1.000/0.988 | Metal nut | 1.000/n/a | Pcb1 | "
                               "0.500/0.250 |\n| 01 | 0.750/0.500 | Mean | 0.812/0.579 |\n"));
    free(md);

    char dir[64], path[128];
    make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/results.md", dir);
    assert_ok(results_write_markdown(path, r));
    assert_ok(results_write_markdown(path, r)); /* replaces */
    char *text = read_file_text(path);
    md = results_markdown(r);
    assert_string_equal(text, md);
    free(text);
    free(md);
    assert_int_equal(dir_entries(dir, false, ".tmp."), 1);
    snprintf(path, sizeof path, "%s/missing/results.md", dir);
    assert_int_equal(results_write_markdown(path, r), HG_ERR_IO);
    remove_dir(dir);
    results_free(r);

    assert_int_equal(results_add(NULL, "x", 0, 0, 0, 0, 0), HG_ERR_ARG);
}

static void assert_json_metric(const JsonValue *obj, const char *key, double expected) {
    const JsonValue *v = json_object_get(obj, key);
    if (!v) fail_msg("missing key %s", key);
    if (isnan(expected)) {
        assert_int_equal(v->type, JSON_NULL);
        return;
    }
    double got = v->type == JSON_INT ? (double)v->integer : v->number;
    assert_true(v->type == JSON_INT || v->type == JSON_NUMBER);
    if (got != expected) fail_msg("%s: %.17g read back, %.17g written", key, got, expected);
}

static void test_results_json(void **state) {
    (void)state;
    Results *r = two_categories();
    const double third = 1.0 / 3.0, tiny = 1e-300;
    assert_ok(results_add(r, "we\"ird\n\xff", third, tiny, INFINITY, 0, 0));

    char dir[64], path[128];
    make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/results.json", dir);
    assert_ok(results_write_json(path, r));
    char *text = read_file_text(path);
    JsonError err;
    JsonDoc *doc = json_parse(text, strlen(text), &err);
    if (!doc) fail_msg("JSON does not parse: %s at %zu\n%s", err.message, err.offset, text);
    const JsonValue *root = json_root(doc);
    const JsonValue *cats = json_object_get(root, "categories");
    assert_non_null(cats);
    assert_int_equal(cats->type, JSON_ARRAY);
    assert_int_equal(cats->array.count, 3);

    const JsonValue *c0 = &cats->array.items[0], *c1 = &cats->array.items[1];
    const JsonValue *c2 = &cats->array.items[2];
    assert_string_equal(json_object_get(c0, "category")->string.chars, "carpet");
    assert_string_equal(json_object_get(c1, "category")->string.chars, "metal_nut");
    assert_string_equal(json_object_get(c2, "category")->string.chars, "we\"ird\n\xEF\xBF\xBD");
    assert_json_metric(c0, "image_auroc", 0.99951);
    assert_json_metric(c0, "pixel_auroc", 0.98765);
    assert_json_metric(c0, "aupro", 0.9512);
    assert_json_metric(c1, "image_auroc", 1.0);
    assert_json_metric(c1, "pixel_auroc", NAN);
    assert_json_metric(c2, "image_auroc", third);
    assert_json_metric(c2, "pixel_auroc", tiny);
    assert_json_metric(c2, "aupro", NAN); /* infinity is not JSON either */
    assert_int_equal(json_object_get(c0, "n_images")->integer, 117);
    assert_int_equal(json_object_get(c1, "n_anomalous")->integer, 93);

    const JsonValue *mean = json_object_get(root, "mean");
    assert_non_null(mean);
    assert_json_metric(mean, "image_auroc", (0.99951 + 1.0 + third) / 3);
    assert_json_metric(mean, "pixel_auroc", (0.98765 + tiny) / 2);
    assert_json_metric(mean, "aupro", (0.9512 + 0.9) / 2);
    assert_int_equal(json_object_get(mean, "n_images")->integer, 232);
    json_free(doc);
    free(text);
    assert_int_equal(dir_entries(dir, false, ".tmp."), 1);
    remove_dir(dir);
    results_free(r);

    /* empty table: still a valid document with a null mean */
    Results *empty = results_new();
    char *s = results_json(empty);
    assert_ok_ptr(s);
    doc = json_parse(s, strlen(s), &err);
    assert_non_null(doc);
    assert_int_equal(json_object_get(json_root(doc), "categories")->array.count, 0);
    assert_json_metric(json_object_get(json_root(doc), "mean"), "aupro", NAN);
    json_free(doc);
    free(s);
    results_free(empty);
}

/* ---- progress ---- */

static int count_char(const char *s, char c) {
    int n = 0;
    for (; *s; s++) n += *s == c;
    return n;
}

static void test_progress_log_lines(void **state) {
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    Progress *p = progress_start("train", 100, f); /* a file: plain lines */
    assert_non_null(p);
    progress_set_interval(p, 0);
    progress_update(p, 10, NULL);
    progress_update(p, 50, "loss 1.234");
    progress_update(p, 100, NULL);
    progress_finish(p);
    size_t len;
    char *s = read_all(f, &len);
    fclose(f);
    assert_null(strchr(s, '\r'));
    assert_int_equal(count_char(s, '\n'), 4);
    assert_true(len > 0 && s[len - 1] == '\n');
    char *line = strtok(s, "\n");
    const char *counts[4] = {"10/100 (10%)", "50/100 (50%)", "100/100 (100%)", "100/100 (100%)"};
    for (int i = 0; i < 4; i++, line = strtok(NULL, "\n")) {
        assert_non_null(line);
        assert_true(strncmp(line, "train: ", 7) == 0);
        if (!strstr(line, counts[i])) fail_msg("line %d lacks %s: %s", i, counts[i], line);
        assert_true((strstr(line, "loss 1.234") != NULL) == (i >= 1)); /* extra is kept */
        assert_true((strstr(line, "done in") != NULL) == (i == 3));
        assert_non_null(strstr(line, "it/s"));
    }
    free(s);

    /* default interval: a fast loop logs only the final line */
    f = tmpfile();
    p = progress_start("extract", 1000, f);
    for (int i = 1; i <= 1000; i++) progress_update(p, i, NULL);
    progress_finish(p);
    s = read_all(f, &len);
    fclose(f);
    assert_int_equal(count_char(s, '\n'), 1);
    assert_non_null(strstr(s, "extract: 1000/1000 (100%)"));
    free(s);

    /* unknown total: counts only */
    f = tmpfile();
    p = progress_start("scan", 0, f);
    progress_update(p, 7, NULL);
    progress_finish(p);
    s = read_all(f, &len);
    fclose(f);
    assert_true(strncmp(s, "scan: 7, ", 9) == 0);
    assert_null(strstr(s, "7/"));
    free(s);

    /* quiet and NULL: nothing, no crash */
    f = tmpfile();
    p = progress_start_mode("quiet", 10, f, PROGRESS_QUIET);
    progress_update(p, 5, "x");
    progress_finish(p);
    s = read_all(f, &len);
    fclose(f);
    assert_int_equal(len, 0);
    free(s);
    progress_update(NULL, 1, NULL);
    progress_finish(NULL);
}

static void test_progress_bar(void **state) {
    (void)state;
    setenv("COLUMNS", "80", 1); /* a file has no window size: the width comes from here */
    FILE *f = tmpfile();
    Progress *p = progress_start_mode("train", 1000, f, PROGRESS_BAR);
    for (int i = 1; i <= 1000; i++) progress_update(p, i, "loss 0.5\nx");
    progress_finish(p);
    unsetenv("COLUMNS");
    size_t len;
    char *s = read_all(f, &len);
    fclose(f);
    /* the first update draws, the fast loop stays under the 0.1 s throttle
     * (a slow machine may draw a few more), the finish draws and ends the line */
    int redraws = count_char(s, '\r');
    assert_true(redraws >= 2 && redraws <= 6);
    assert_int_equal(count_char(s, '\n'), 1);
    assert_true(s[len - 1] == '\n');
    assert_non_null(strstr(s, "1000/1000"));
    assert_non_null(strstr(s, "100% [==="));
    assert_non_null(strstr(s, "loss 0.5 x"));
    for (char *seg = strtok(s, "\r\n"); seg; seg = strtok(NULL, "\r\n"))
        if (strlen(seg) > 79) fail_msg("bar line of %zu characters: %s", strlen(seg), seg);
    free(s);

    char buf[16];
    progress_format_duration(5.9, buf, sizeof buf);
    assert_string_equal(buf, "0:05");
    progress_format_duration(754, buf, sizeof buf);
    assert_string_equal(buf, "12:34");
    progress_format_duration(3723, buf, sizeof buf);
    assert_string_equal(buf, "1:02:03");
    progress_format_duration(-1, buf, sizeof buf);
    assert_string_equal(buf, "--:--");
    progress_format_duration(NAN, buf, sizeof buf);
    assert_string_equal(buf, "--:--");
}

/* On a real (pseudo-)terminal, progress_start() picks the redrawn bar. */
static void test_progress_terminal(void **state) {
    (void)state;
    int master, slave;
    if (openpty(&master, &slave, NULL, NULL, NULL) != 0) skip();
    FILE *out = fdopen(slave, "w");
    assert_non_null(out);
    Progress *p = progress_start("eval", 4, out);
    progress_update(p, 2, NULL);
    progress_finish(p);
    fclose(out);
    char buf[1024] = {0};
    size_t got = 0;
    struct pollfd pfd = {master, POLLIN, 0};
    while (got < sizeof buf - 1 && poll(&pfd, 1, 200) > 0) {
        ssize_t n = read(master, buf + got, sizeof buf - 1 - got);
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(master);
    assert_true(got > 0);
    assert_int_equal(buf[0], '\r');
    assert_non_null(strstr(buf, "2/4"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heatmap_color_reference),
        cmocka_unit_test(test_heatmap_corners),
        cmocka_unit_test(test_heatmap_bilinear_rows),
        cmocka_unit_test(test_heatmap_contour),
        cmocka_unit_test(test_font_and_text),
        cmocka_unit_test(test_plot_polyline),
        cmocka_unit_test(test_roc_plot_png),
        cmocka_unit_test(test_results_markdown),
        cmocka_unit_test(test_results_json),
        cmocka_unit_test(test_progress_log_lines),
        cmocka_unit_test(test_progress_bar),
        cmocka_unit_test(test_progress_terminal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
