/* Raster plotting: text, lines, axes and legends on an RGB 8-bit canvas. */
#include "report/plot.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report/font.h"

static const PlotColor grid_color = {225, 225, 225};
static const PlotColor legend_frame = {160, 160, 160};

/* matplotlib's tab10 followed by ten darker or more saturated companions. */
static const PlotColor palette[PLOT_PALETTE_SIZE] = {
    {31, 119, 180}, {255, 127, 14},  {44, 160, 44},   {214, 39, 40},  {148, 103, 189},
    {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207},
    {0, 0, 128},    {128, 0, 0},     {0, 128, 128},   {230, 180, 0},  {0, 0, 0},
    {120, 200, 40}, {230, 0, 230},   {70, 130, 180},  {210, 105, 30}, {106, 90, 205},
};

PlotColor plot_palette(int index) {
    if (index < 0) index = -index;
    return palette[index % PLOT_PALETTE_SIZE];
}

/* ---- pixels ---- */

/* Inclusive pixel rectangle that drawing is clipped to. */
typedef struct Clip {
    int x0, y0, x1, y1;
} Clip;

static Clip image_clip(const Image *img) {
    return (Clip){0, 0, img->width - 1, img->height - 1};
}

static void put_pixel(Image *img, Clip clip, int x, int y, PlotColor c) {
    if (x < clip.x0 || x > clip.x1 || y < clip.y0 || y > clip.y1) return;
    uint8_t *px = img->data8 + 3 * ((size_t)y * img->width + x);
    px[0] = c.r;
    px[1] = c.g;
    px[2] = c.b;
}

void plot_fill_rect(Image *img, int x, int y, int w, int h, PlotColor c) {
    Clip clip = image_clip(img);
    for (int j = y; j < y + h; j++)
        for (int i = x; i < x + w; i++) put_pixel(img, clip, i, j, c);
}

int plot_text_width(const char *text, int scale) {
    size_t n = strlen(text);
    return n ? (int)(n * FONT_ADVANCE - 1) * scale : 0;
}

/* Draws text with font pixel (gx, gy) of the run landing at
 * origin + gx * ux + gy * uy (unit vectors in pixels, times scale). */
static void draw_text_dir(Image *img, int ox, int oy, int ux_x, int ux_y, int uy_x, int uy_y,
                          int scale, PlotColor c, const char *text) {
    Clip clip = image_clip(img);
    for (int k = 0; text[k]; k++)
        for (int gy = 0; gy < FONT_HEIGHT; gy++)
            for (int gx = 0; gx < FONT_WIDTH; gx++) {
                if (!font_pixel(text[k], gx, gy)) continue;
                int u = (k * FONT_ADVANCE + gx) * scale, v = gy * scale;
                for (int sy = 0; sy < scale; sy++)
                    for (int sx = 0; sx < scale; sx++) {
                        int a = u + sx, b = v + sy;
                        put_pixel(img, clip, ox + a * ux_x + b * uy_x, oy + a * ux_y + b * uy_y, c);
                    }
            }
}

void plot_text(Image *img, int x, int y, int scale, PlotColor c, const char *text) {
    draw_text_dir(img, x, y, 1, 0, 0, 1, scale, c, text);
}

void plot_text_up(Image *img, int x, int y, int scale, PlotColor c, const char *text) {
    /* along the text: up the image; down the glyph: right on the image */
    draw_text_dir(img, x, y, 0, -1, 1, 0, scale, c, text);
}

/* ---- lines ---- */

/* Dash state carried along a polyline so the pattern runs on across joints. */
typedef struct Pen {
    PlotColor color;
    int thickness, dash;
    int64_t step;
} Pen;

static void stamp(Image *img, Clip clip, int x, int y, const Pen *pen) {
    int lo = -(pen->thickness - 1) / 2, hi = pen->thickness / 2;
    for (int j = lo; j <= hi; j++)
        for (int i = lo; i <= hi; i++) put_pixel(img, clip, x + i, y + j, pen->color);
}

/* Segment between pixel positions, sampled once per pixel along its longer
 * extent; skip_first avoids drawing a joint twice (which would break dashes). */
static void draw_segment(Image *img, Clip clip, double x0, double y0, double x1, double y1,
                         Pen *pen, int skip_first) {
    double dx = x1 - x0, dy = y1 - y0;
    double len = fmax(fabs(dx), fabs(dy));
    if (!(len < 1e7)) return; /* NaN or absurd coordinates */
    int steps = (int)ceil(len);
    if (steps < 1) steps = 1;
    for (int i = skip_first ? 1 : 0; i <= steps; i++) {
        double t = (double)i / steps;
        bool ink = pen->dash <= 0 || (pen->step / pen->dash) % 2 == 0;
        pen->step++;
        if (ink)
            stamp(img, clip, (int)floor(x0 + t * dx + 0.5), (int)floor(y0 + t * dy + 0.5), pen);
    }
}

/* ---- plots ---- */

Plot *plot_new(int canvas_w, int canvas_h, int left, int top, int width, int height, double x0,
               double x1, double y0, double y1) {
    if (width < 2 || height < 2 || left < 0 || top < 0 || left + width > canvas_w ||
        top + height > canvas_h || !(x1 > x0) || !(y1 > y0)) {
        hg_fail(HG_ERR_ARG,
                "plot_new: axes %dx%d at (%d, %d) do not fit a %dx%d canvas, or empty range", width,
                height, left, top, canvas_w, canvas_h);
        return NULL;
    }
    Plot *p = calloc(1, sizeof *p);
    Image *img = image_new(canvas_w, canvas_h, 3, 8);
    if (!p || !img) {
        free(p);
        image_free(img);
        hg_fail(HG_ERR_NOMEM, "plot_new: out of memory for a %dx%d canvas", canvas_w, canvas_h);
        return NULL;
    }
    memset(img->data8, 255, image_size_bytes(img));
    *p = (Plot){img, left, top, width, height, x0, x1, y0, y1, 1};
    return p;
}

void plot_free(Plot *p) {
    if (!p) return;
    image_free(p->image);
    free(p);
}

void plot_to_pixel(const Plot *p, double x, double y, double *px, double *py) {
    *px = p->left + (x - p->x0) / (p->x1 - p->x0) * (p->width - 1);
    *py = p->top + (p->y1 - y) / (p->y1 - p->y0) * (p->height - 1);
}

static Clip axes_clip(const Plot *p) {
    return (Clip){p->left, p->top, p->left + p->width - 1, p->top + p->height - 1};
}

void plot_polyline(Plot *p, const double *x, const double *y, int64_t n, PlotColor c, int thickness,
                   int dash) {
    Pen pen = {c, thickness < 1 ? 1 : thickness, dash, 0};
    Clip clip = axes_clip(p);
    double px0 = 0, py0 = 0;
    for (int64_t i = 0; i < n; i++) {
        double px, py;
        plot_to_pixel(p, x[i], y[i], &px, &py);
        if (i == 0 && n == 1) draw_segment(p->image, clip, px, py, px, py, &pen, 0);
        if (i > 0) draw_segment(p->image, clip, px0, py0, px, py, &pen, i > 1);
        px0 = px;
        py0 = py;
    }
}

/* Decimals needed to print multiples of `step` exactly enough (0.2 -> 1). */
static int step_decimals(double step) {
    int d = (int)ceil(-log10(step) - 1e-9);
    return d < 0 ? 0 : d > 6 ? 6 : d;
}

void plot_axes(Plot *p, const char *title, const char *xlabel, const char *ylabel, double xstep,
               double ystep) {
    Image *img = p->image;
    int s = p->scale, tick = 3 * s, gap = 3 * s, fh = FONT_HEIGHT * s;
    int right = p->left + p->width - 1, bottom = p->top + p->height - 1;
    Clip all = image_clip(img);
    Pen grid = {grid_color, 1, 0, 0}, black = {PLOT_BLACK, 1, 0, 0};
    char buf[32];
    int widest_ylabel = 0;

    /* ticks at the multiples of the step inside the range; -0.0 printed as 0 */
    if (xstep > 0 && (p->x1 - p->x0) / xstep <= 1000)
        for (double k = ceil(p->x0 / xstep - 1e-9);; k++) {
            double x = k * xstep;
            if (x > p->x1 + 1e-9 * (p->x1 - p->x0)) break;
            double px, py;
            plot_to_pixel(p, x, p->y0, &px, &py);
            draw_segment(img, all, px, p->top, px, bottom, &grid, 0);
            draw_segment(img, all, px, bottom, px, bottom + tick, &black, 0);
            snprintf(buf, sizeof buf, "%.*f", step_decimals(xstep), x + 0.0);
            plot_text(img, (int)lround(px) - plot_text_width(buf, s) / 2, bottom + tick + gap, s,
                      PLOT_BLACK, buf);
        }
    if (ystep > 0 && (p->y1 - p->y0) / ystep <= 1000)
        for (double k = ceil(p->y0 / ystep - 1e-9);; k++) {
            double y = k * ystep;
            if (y > p->y1 + 1e-9 * (p->y1 - p->y0)) break;
            double px, py;
            plot_to_pixel(p, p->x0, y, &px, &py);
            draw_segment(img, all, p->left, py, right, py, &grid, 0);
            draw_segment(img, all, p->left - tick, py, p->left, py, &black, 0);
            snprintf(buf, sizeof buf, "%.*f", step_decimals(ystep), y + 0.0);
            int w = plot_text_width(buf, s);
            if (w > widest_ylabel) widest_ylabel = w;
            plot_text(img, p->left - tick - gap - w, (int)lround(py) - fh / 2, s, PLOT_BLACK, buf);
        }
    /* frame */
    draw_segment(img, all, p->left, p->top, right, p->top, &black, 0);
    draw_segment(img, all, p->left, bottom, right, bottom, &black, 0);
    draw_segment(img, all, p->left, p->top, p->left, bottom, &black, 0);
    draw_segment(img, all, right, p->top, right, bottom, &black, 0);

    int cx = p->left + p->width / 2, cy = p->top + p->height / 2;
    if (title)
        plot_text(img, cx - plot_text_width(title, s) / 2, p->top - gap * 3 - fh, s, PLOT_BLACK,
                  title);
    if (xlabel)
        plot_text(img, cx - plot_text_width(xlabel, s) / 2, bottom + tick + 3 * gap + fh, s,
                  PLOT_BLACK, xlabel);
    if (ylabel)
        plot_text_up(img, p->left - tick - 3 * gap - widest_ylabel - fh,
                     cy + plot_text_width(ylabel, s) / 2, s, PLOT_BLACK, ylabel);
}

/* Legend geometry at font scale s, columns as needed to stay within max_h. */
typedef struct LegendLayout {
    int s, rows, cols, sample, row_h, pad, col_w, box_w, box_h;
} LegendLayout;

static LegendLayout legend_layout(const PlotLegend *lg, int s, int max_h) {
    LegendLayout L = {.s = s, .sample = 16 * s, .row_h = FONT_LINE * s + 2 * s, .pad = 4 * s};
    int widest = 0;
    for (int i = 0; i < lg->n; i++) {
        int w = plot_text_width(lg->labels[i] ? lg->labels[i] : "", s);
        if (w > widest) widest = w;
    }
    /* box_h = 2 pad + rows row_h - 2 s (no gap under the last row) */
    int fit = (max_h - 2 * L.pad + 2 * s) / L.row_h;
    if (fit < 1) fit = 1;
    L.cols = lg->n > 0 ? (lg->n + fit - 1) / fit : 1;
    L.rows = lg->n > 0 ? (lg->n + L.cols - 1) / L.cols : 0;
    L.col_w = L.sample + 4 * s + widest;
    L.box_w = 2 * L.pad + L.cols * L.col_w + (L.cols - 1) * 3 * L.pad;
    L.box_h = 2 * L.pad + L.rows * L.row_h - 2 * s;
    return L;
}

void plot_legend_size(const PlotLegend *lg, int scale, int max_h, int *w, int *h) {
    LegendLayout L = legend_layout(lg, scale, max_h);
    *w = L.box_w;
    *h = L.box_h;
}

void plot_legend_draw(Image *img, int x0, int y0, int scale, int max_h, const PlotLegend *lg) {
    if (lg->n <= 0) return;
    LegendLayout L = legend_layout(lg, scale, max_h);
    int s = L.s;
    Clip all = image_clip(img);
    plot_fill_rect(img, x0, y0, L.box_w, L.box_h, PLOT_WHITE);
    Pen frame = {legend_frame, 1, 0, 0};
    int x1 = x0 + L.box_w - 1, y1 = y0 + L.box_h - 1;
    draw_segment(img, all, x0, y0, x1, y0, &frame, 0);
    draw_segment(img, all, x0, y1, x1, y1, &frame, 0);
    draw_segment(img, all, x0, y0, x0, y1, &frame, 0);
    draw_segment(img, all, x1, y0, x1, y1, &frame, 0);
    for (int i = 0; i < lg->n; i++) {
        int col = i / L.rows, row = i % L.rows;
        int x = x0 + L.pad + col * (L.col_w + 3 * L.pad), y = y0 + L.pad + row * L.row_h;
        int mid = y + FONT_HEIGHT * s / 2;
        Pen pen = {lg->colors[i], 2 * s, lg->dashes ? lg->dashes[i] : 0, 0};
        draw_segment(img, all, x, mid, x + L.sample - 1, mid, &pen, 0);
        plot_text(img, x + L.sample + 4 * s, y, s, PLOT_BLACK, lg->labels[i] ? lg->labels[i] : "");
    }
}

void plot_legend(Plot *p, const PlotLegend *lg) {
    int s = p->scale, margin = 6 * s, w, h;
    plot_legend_size(lg, s, p->height - 2 * margin, &w, &h);
    for (; s > 1 && w > p->width - 2 * margin; s--)
        plot_legend_size(lg, s - 1, p->height - 2 * (6 * (s - 1)), &w, &h);
    margin = 6 * s;
    int x0 = p->left + p->width - margin - w, y0 = p->top + p->height - margin - h;
    plot_legend_draw(p->image, x0 < p->left ? p->left : x0, y0 < p->top ? p->top : y0, s,
                     p->height - 2 * margin, lg);
}

hg_status plot_save_png(const Plot *p, const char *path) {
    if (!p || !path) return hg_fail(HG_ERR_ARG, "plot_save_png: NULL plot or path");
    return image_save_png(path, p->image);
}
