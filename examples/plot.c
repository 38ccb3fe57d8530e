/* Raster plotting for the examples (see plot.h). */
#include "examples/plot.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "report/font.h"
#include "report/heatmap.h"

static double clamp01(double t) {
    return t < 0 ? 0 : t > 1 ? 1 : t;
}

PlotColor rgb_mix(PlotColor a, PlotColor b, double t) {
    t = clamp01(t);
    return (PlotColor){(uint8_t)lround(a.r + t * (b.r - a.r)),
                       (uint8_t)lround(a.g + t * (b.g - a.g)),
                       (uint8_t)lround(a.b + t * (b.b - a.b))};
}

/* Piecewise-linear interpolation between `n` evenly spaced control colours. */
static PlotColor ramp(const PlotColor *stops, int n, double t) {
    double x = clamp01(t) * (n - 1);
    int i = (int)x;
    if (i >= n - 1) return stops[n - 1];
    return rgb_mix(stops[i], stops[i + 1], x - i);
}

PlotColor colormap_viridis(double t) {
    static const PlotColor stops[6] = {{68, 1, 84},    {65, 68, 135},  {42, 120, 142},
                                       {34, 168, 132}, {122, 209, 81}, {253, 231, 37}};
    return ramp(stops, 6, t);
}

PlotColor colormap_turbo(double t) {
    uint8_t c[3];
    heatmap_color(t, c);
    return (PlotColor){c[0], c[1], c[2]};
}

Image *canvas_new(int width, int height, PlotColor background) {
    Image *img = image_new(width, height, 3, 8);
    if (img)
        for (int64_t i = 0; i < (int64_t)width * height; i++) {
            img->data8[3 * i] = background.r;
            img->data8[3 * i + 1] = background.g;
            img->data8[3 * i + 2] = background.b;
        }
    return img;
}

void draw_pixel(Image *img, int x, int y, PlotColor c) {
    if (x < 0 || y < 0 || x >= img->width || y >= img->height) return;
    uint8_t *p = img->data8 + 3 * ((int64_t)y * img->width + x);
    p[0] = c.r, p[1] = c.g, p[2] = c.b;
}

/* Bresenham's line algorithm. */
void draw_line(Image *img, int x0, int y0, int x1, int y1, PlotColor c) {
    int dx = x1 > x0 ? x1 - x0 : x0 - x1, sx = x0 < x1 ? 1 : -1;
    int dy = y1 > y0 ? y0 - y1 : y1 - y0, sy = y0 < y1 ? 1 : -1;
    int err = dx + dy;
    for (;;) {
        draw_pixel(img, x0, y0, c);
        if (x0 == x1 && y0 == y1) return;
        int e2 = 2 * err;
        if (e2 >= dy) err += dy, x0 += sx;
        if (e2 <= dx) err += dx, y0 += sy;
    }
}

void draw_disc(Image *img, double cx, double cy, double radius, PlotColor c) {
    for (int y = (int)floor(cy - radius); y <= (int)ceil(cy + radius); y++)
        for (int x = (int)floor(cx - radius); x <= (int)ceil(cx + radius); x++)
            if ((x + 0.5 - cx) * (x + 0.5 - cx) + (y + 0.5 - cy) * (y + 0.5 - cy) <=
                radius * radius)
                draw_pixel(img, x, y, c);
}

void draw_circle(Image *img, double cx, double cy, double radius, PlotColor c) {
    int steps = (int)(8 * radius) + 16;
    for (int k = 0; k < steps; k++) {
        double a = 2 * M_PI * k / steps;
        draw_pixel(img, (int)floor(cx + radius * cos(a)), (int)floor(cy + radius * sin(a)), c);
    }
}

Panel panel_new(Image *img, int left, int top, int width, int height, double x0, double x1,
                double y0, double y1) {
    return (Panel){img, left, top, width, height, x0, x1, y0, y1};
}

void panel_to_pixel(const Panel *p, double x, double y, double *px, double *py) {
    *px = p->left + (x - p->x0) / (p->x1 - p->x0) * p->width;
    *py = p->top + (p->y1 - y) / (p->y1 - p->y0) * p->height;
}

void panel_grid_point(const Panel *p, int nx, int ny, int i, int j, double *x, double *y) {
    *x = p->x0 + (i + 0.5) / nx * (p->x1 - p->x0);
    *y = p->y1 - (j + 0.5) / ny * (p->y1 - p->y0);
}

void panel_color_grid(const Panel *p, const PlotColor *colors, int nx, int ny) {
    for (int py = 0; py < p->height; py++)
        for (int px = 0; px < p->width; px++) {
            int i = px * nx / p->width, j = py * ny / p->height; /* nearest cell */
            draw_pixel(p->img, p->left + px, p->top + py, colors[j * nx + i]);
        }
}

void panel_heatmap(const Panel *p, const float *values, int nx, int ny, float lo, float hi,
                   PlotColor (*map)(double)) {
    for (int py = 0; py < p->height; py++)
        for (int px = 0; px < p->width; px++) {
            int i = px * nx / p->width, j = py * ny / p->height;
            double t = hi > lo ? (values[j * nx + i] - lo) / (hi - lo) : 0.5;
            draw_pixel(p->img, p->left + px, p->top + py, map(t));
        }
}

void panel_line(const Panel *p, double x0, double y0, double x1, double y1, PlotColor c) {
    double a, b, e, f;
    panel_to_pixel(p, x0, y0, &a, &b);
    panel_to_pixel(p, x1, y1, &e, &f);
    draw_line(p->img, (int)lround(a), (int)lround(b), (int)lround(e), (int)lround(f), c);
}

void panel_point(const Panel *p, double x, double y, double radius, PlotColor c) {
    double px, py;
    panel_to_pixel(p, x, y, &px, &py);
    if (px < p->left || py < p->top || px >= p->left + p->width || py >= p->top + p->height) return;
    draw_disc(p->img, px, py, radius, c);
}

/* A round tick spacing (1, 2 or 5 times a power of ten) giving about 4-8 ticks. */
static double tick_step(double range) {
    double raw = range / 5, power = pow(10, floor(log10(raw)));
    double f = raw / power;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * power;
}

static void tick_label(char *buf, size_t size, double v, double step) {
    if (fabs(v) < step * 1e-6) v = 0; /* no "-0" */
    snprintf(buf, size, "%g", v);
}

void panel_axes(const Panel *p, const char *title, PlotColor c) {
    Image *img = p->img;
    int l = p->left - 1, t = p->top - 1, r = p->left + p->width, b = p->top + p->height;
    draw_line(img, l, t, r, t, c);
    draw_line(img, l, b, r, b, c);
    draw_line(img, l, t, l, b, c);
    draw_line(img, r, t, r, b, c);
    char label[32];
    double step = tick_step(p->x1 - p->x0);
    for (double v = ceil(p->x0 / step) * step; v <= p->x1 + 1e-9 * step; v += step) {
        double px, py;
        panel_to_pixel(p, v, p->y0, &px, &py);
        draw_line(img, (int)px, b, (int)px, b + 4, c);
        tick_label(label, sizeof label, v, step);
        plot_text(img, (int)px - plot_text_width(label, 1) / 2, b + 7, 1, c, label);
    }
    step = tick_step(p->y1 - p->y0);
    for (double v = ceil(p->y0 / step) * step; v <= p->y1 + 1e-9 * step; v += step) {
        double px, py;
        panel_to_pixel(p, p->x0, v, &px, &py);
        draw_line(img, l - 4, (int)py, l, (int)py, c);
        tick_label(label, sizeof label, v, step);
        plot_text(img, l - 7 - plot_text_width(label, 1), (int)py - FONT_HEIGHT / 2, 1, c, label);
    }
    if (title) { /* at twice the size when it fits over the panel */
        int scale = plot_text_width(title, 2) <= p->width ? 2 : 1;
        plot_text(img, p->left + (p->width - plot_text_width(title, scale)) / 2,
                  t - 4 - scale * FONT_HEIGHT, scale, c, title);
    }
}

const char *example_output_path(int argc, char **argv, const char *name, char *buf, int size) {
    const char *dir = argc > 1 ? argv[1] : "build/examples/out";
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return NULL;
    int n = snprintf(buf, (size_t)size, "%s/%s", dir, name);
    return n > 0 && n < size ? buf : NULL;
}
