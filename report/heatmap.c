/* Heat-map overlays: bilinear stretch, Turbo colouring, alpha blend, mask contour. */
#include "report/heatmap.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Turbo (Google, Apache-2.0) sampled at k/32 from matplotlib's 'turbo' table by
 * tools/fixtures/make_turbo_table.py; linear interpolation between these knots
 * stays within 3.3/255 of the full 256-entry map. */
#define TURBO_KNOTS 33
static const uint8_t turbo_table[TURBO_KNOTS][3] = {
    {48, 18, 59},   {57, 42, 115},  {64, 64, 162},  {68, 86, 199},  {70, 107, 227}, {70, 128, 246},
    {66, 148, 255}, {55, 168, 250}, {40, 188, 235}, {28, 205, 216}, {24, 221, 194}, {31, 233, 175},
    {50, 242, 152}, {78, 249, 125}, {109, 254, 98}, {139, 255, 75}, {164, 252, 60}, {185, 246, 53},
    {205, 236, 52}, {223, 223, 55}, {238, 207, 58}, {248, 190, 57}, {253, 172, 52}, {254, 150, 43},
    {251, 126, 33}, {244, 102, 23}, {235, 80, 14},  {223, 63, 8},   {208, 47, 5},   {190, 33, 2},
    {169, 22, 1},   {146, 11, 1},   {122, 4, 3},
};

static const uint8_t contour_inside[3] = {255, 255, 255};
static const uint8_t contour_outside[3] = {0, 0, 0};

static uint8_t round_u8(float v) {
    return (uint8_t)(v <= 0.0f ? 0 : v >= 255.0f ? 255 : (int)(v + 0.5f));
}

void heatmap_color(double t, uint8_t rgb[3]) {
    if (!(t > 0.0)) t = 0.0; /* also NaN */
    if (t > 1.0) t = 1.0;
    double pos = t * (TURBO_KNOTS - 1);
    int k = (int)pos;
    if (k >= TURBO_KNOTS - 1) k = TURBO_KNOTS - 2;
    float f = (float)(pos - k);
    for (int c = 0; c < 3; c++) {
        float a = turbo_table[k][c], b = turbo_table[k + 1][c];
        rgb[c] = round_u8(a + f * (b - a));
    }
}

/* Source coordinate of destination pixel i when stretching n_in samples over
 * n_out (half-pixel centres), split into a clamped index pair and weight. */
typedef struct Tap {
    int i0, i1;
    float w1; /* weight of i1; i0 gets 1 - w1 */
} Tap;

static Tap bilinear_tap(int i, int n_in, int n_out) {
    float src = ((float)i + 0.5f) * (float)n_in / (float)n_out - 0.5f;
    if (src < 0.0f) src = 0.0f;
    int i0 = (int)src;
    if (i0 > n_in - 1) i0 = n_in - 1;
    int i1 = i0 + 1 < n_in ? i0 + 1 : n_in - 1;
    return (Tap){i0, i1, src - (float)i0};
}

static int nearest_index(int i, int n_in, int n_out) {
    int s = (int)(((double)i + 0.5) * n_in / n_out);
    return s < n_in ? s : n_in - 1;
}

/* The mask enlarged to w x h by nearest neighbour, as 0/1 bytes. */
static uint8_t *mask_resize(const uint8_t *mask, int mask_h, int mask_w, int h, int w) {
    uint8_t *out = malloc((size_t)w * (size_t)h);
    if (!out) return NULL;
    for (int y = 0; y < h; y++) {
        const uint8_t *row = mask + (size_t)nearest_index(y, mask_h, h) * (size_t)mask_w;
        for (int x = 0; x < w; x++) out[(size_t)y * w + x] = row[nearest_index(x, mask_w, w)] != 0;
    }
    return out;
}

/* True when (x, y) has a 4-neighbour inside the image whose mask value differs. */
static bool on_boundary(const uint8_t *m, int h, int w, int x, int y) {
    uint8_t v = m[(size_t)y * w + x];
    return (x > 0 && m[(size_t)y * w + x - 1] != v) ||
           (x + 1 < w && m[(size_t)y * w + x + 1] != v) ||
           (y > 0 && m[(size_t)(y - 1) * w + x] != v) ||
           (y + 1 < h && m[(size_t)(y + 1) * w + x] != v);
}

static void draw_contour(Image *out, const uint8_t *m) {
    int h = out->height, w = out->width;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            if (!on_boundary(m, h, w, x, y)) continue;
            const uint8_t *c = m[(size_t)y * w + x] ? contour_inside : contour_outside;
            memcpy(out->data8 + 3 * ((size_t)y * w + x), c, 3);
        }
}

Image *heatmap_overlay(const Image *image, const float *map, int map_h, int map_w, float vmin,
                       float vmax, const uint8_t *mask, float alpha) {
    if (!image || !map || map_h <= 0 || map_w <= 0) {
        hg_fail(HG_ERR_ARG, "heatmap_overlay: need an image and a non-empty map (got %dx%d)", map_h,
                map_w);
        return NULL;
    }
    if (!(alpha >= 0.0f && alpha <= 1.0f)) {
        hg_fail(HG_ERR_ARG, "heatmap_overlay: alpha %g is not in [0, 1]", (double)alpha);
        return NULL;
    }
    Image *out = image_to_rgb8(image);
    if (!out) return NULL;
    int h = out->height, w = out->width;
    Tap *xtaps = malloc(sizeof(Tap) * (size_t)w);
    if (!xtaps) {
        image_free(out);
        hg_fail(HG_ERR_NOMEM, "heatmap_overlay: out of memory for a %dx%d image", w, h);
        return NULL;
    }
    for (int x = 0; x < w; x++) xtaps[x] = bilinear_tap(x, map_w, w);
    float scale = vmax > vmin ? 1.0f / (vmax - vmin) : 0.0f;

#pragma omp parallel for if ((int64_t)w * h > 1 << 18)
    for (int y = 0; y < h; y++) {
        Tap ty = bilinear_tap(y, map_h, h);
        const float *r0 = map + (size_t)ty.i0 * map_w, *r1 = map + (size_t)ty.i1 * map_w;
        for (int x = 0; x < w; x++) {
            Tap tx = xtaps[x];
            float top = r0[tx.i0] + tx.w1 * (r0[tx.i1] - r0[tx.i0]);
            float bottom = r1[tx.i0] + tx.w1 * (r1[tx.i1] - r1[tx.i0]);
            float v = top + ty.w1 * (bottom - top);
            if (isnan(v)) continue;
            uint8_t c[3];
            heatmap_color((v - vmin) * scale, c);
            uint8_t *px = out->data8 + 3 * ((size_t)y * w + x);
            for (int k = 0; k < 3; k++) px[k] = round_u8((1.0f - alpha) * px[k] + alpha * c[k]);
        }
    }
    free(xtaps);

    if (mask) {
        uint8_t *m = mask_resize(mask, map_h, map_w, h, w);
        if (!m) {
            image_free(out);
            hg_fail(HG_ERR_NOMEM, "heatmap_overlay: out of memory for a %dx%d mask", w, h);
            return NULL;
        }
        draw_contour(out, m);
        free(m);
    }
    return out;
}

/* Copies `src` (RGB 8-bit) into `dst` with its top-left corner at column x0. */
static void blit(Image *dst, const Image *src, int x0) {
    for (int y = 0; y < src->height; y++)
        memcpy(dst->data8 + 3 * ((size_t)y * dst->width + x0),
               src->data8 + 3 * (size_t)y * src->width, 3 * (size_t)src->width);
}

Image *heatmap_panels(const Image *image, const Image *overlay, const uint8_t *mask, int mask_h,
                      int mask_w) {
    if (!image || !overlay || overlay->width != image->width || overlay->height != image->height ||
        (mask && (mask_h <= 0 || mask_w <= 0))) {
        hg_fail(HG_ERR_ARG, "heatmap_panels: need an image, an overlay of its size and a "
                            "non-empty mask or none");
        return NULL;
    }
    int w = image->width, h = image->height, n = mask ? 3 : 2;
    Image *rgb = image_to_rgb8(image);
    Image *ov = image_to_rgb8(overlay);
    Image *out = image_new(n * w + (n - 1) * HEATMAP_GAP, h, 3, 8);
    uint8_t *m = mask ? mask_resize(mask, mask_h, mask_w, h, w) : NULL;
    if (!rgb || !ov || !out || (mask && !m)) {
        hg_fail(HG_ERR_NOMEM, "heatmap_panels: out of memory for %d panels of %dx%d", n, w, h);
        image_free(rgb);
        image_free(ov);
        image_free(out);
        free(m);
        return NULL;
    }
    memset(out->data8, 255, image_size_bytes(out)); /* white gaps */
    blit(out, rgb, 0);
    blit(out, ov, w + HEATMAP_GAP);
    if (m) {
        int x0 = 2 * (w + HEATMAP_GAP);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                memset(out->data8 + 3 * ((size_t)y * out->width + x0 + x),
                       m[(size_t)y * w + x] ? 255 : 0, 3);
    }
    image_free(rgb);
    image_free(ov);
    free(m);
    return out;
}
