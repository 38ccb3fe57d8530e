/* A tiny raster plotting kit and the ROC-curve figure built with it.
 *
 * Everything draws into an RGB 8-bit Image (datasets/image.h) with a built-in
 * 5x7 pixel font (report/font.h), scaled by an integer factor. A Plot owns a
 * canvas and maps a data rectangle [x0, x1] x [y0, y1] (y up, as on paper)
 * onto an axes rectangle of pixels (y down); the range edges fall on the first
 * and last pixel column/row of that rectangle. Drawing in data coordinates is
 * clipped to the axes rectangle; the raw pixel functions clip to the image. */
#ifndef HG_REPORT_PLOT_H
#define HG_REPORT_PLOT_H

#include <stdint.h>

#include "datasets/image.h"
#include "datasets/metrics.h"

typedef struct PlotColor {
    uint8_t r, g, b;
} PlotColor;

#define PLOT_WHITE ((PlotColor){255, 255, 255})
#define PLOT_BLACK ((PlotColor){0, 0, 0})

/* Distinguishable line colours for series 0, 1, 2, ... (PLOT_PALETTE_SIZE of
 * them, then they repeat; callers dash the repeats). */
#define PLOT_PALETTE_SIZE 20
PlotColor plot_palette(int index);

/* ---- raw pixel drawing on an RGB 8-bit image ---- */
void plot_fill_rect(Image *img, int x, int y, int w, int h, PlotColor c);
/* Text with its top-left corner at (x, y), each font pixel scale x scale. */
void plot_text(Image *img, int x, int y, int scale, PlotColor c, const char *text);
/* The same turned 90 degrees anticlockwise (read bottom to top), with the
 * bottom-left corner of the turned text at (x, y). */
void plot_text_up(Image *img, int x, int y, int scale, PlotColor c, const char *text);
/* Width in pixels of one line of `text` at `scale` (height: FONT_HEIGHT * scale). */
int plot_text_width(const char *text, int scale);

typedef struct Plot {
    Image *image;                 /* the canvas, owned */
    int left, top, width, height; /* axes rectangle in pixels */
    double x0, x1, y0, y1;        /* data range of the axes */
    int scale;                    /* font scale of labels and legend */
} Plot;

/* A white canvas_w x canvas_h canvas with the given axes rectangle and data
 * range (x1 > x0, y1 > y0); NULL on bad arguments. */
Plot *plot_new(int canvas_w, int canvas_h, int left, int top, int width, int height, double x0,
               double x1, double y0, double y1);
void plot_free(Plot *p); /* NULL is fine */

/* Pixel position (fractional) of data point (x, y). */
void plot_to_pixel(const Plot *p, double x, double y, double *px, double *py);

/* Light grid, black frame, ticks with labels at the multiples of xstep / ystep
 * inside the data range, a title centred above, axis labels below and left
 * (any may be NULL). Uses p->scale as font scale. */
void plot_axes(Plot *p, const char *title, const char *xlabel, const char *ylabel, double xstep,
               double ystep);
/* A polyline through n data points, `thickness` pixels wide; dash > 0 draws
 * dash-pixel dashes with dash-pixel gaps. */
void plot_polyline(Plot *p, const double *x, const double *y, int64_t n, PlotColor c, int thickness,
                   int dash);
/* A legend: per entry a line sample (dashed when dashes[i] > 0; dashes may
 * be NULL) and labels[i]. */
typedef struct PlotLegend {
    int n;
    const char *const *labels;
    const PlotColor *colors;
    const int *dashes;
} PlotLegend;
/* Box size at font `scale` when at most max_h pixels tall (entries go into
 * more columns when one does not fit). */
void plot_legend_size(const PlotLegend *lg, int scale, int max_h, int *w, int *h);
/* The boxed legend with its top-left corner at (x, y). */
void plot_legend_draw(Image *img, int x, int y, int scale, int max_h, const PlotLegend *lg);
/* The legend in the bottom-right corner of the axes, the font made smaller
 * when it is wider than the axes. */
void plot_legend(Plot *p, const PlotLegend *lg);

/* PNG of the canvas, written atomically (image_save_png). */
hg_status plot_save_png(const Plot *p, const char *path);

/* ---- ROC figure ---- */
#define ROC_PLOT_WIDTH  960
#define ROC_PLOT_HEIGHT 640

/* Square axes with false-positive rate (x) against true-positive rate (y),
 * the chance diagonal dashed grey, one coloured curve per category through the
 * points (fpr[i], rate[i]) of curves[i] (metric_roc_curve()), and a legend
 * "name (AUROC 0.987)" to the right of the axes (inside them, bottom right,
 * when the canvas is too narrow). names may be NULL ("curve 1", ...), aucs
 * may be NULL (no AUROC in the legend) and may hold NaN ("n/a"). The title
 * gives the mean of the finite AUROCs when there are several. */
Plot *roc_plot(int width, int height, int n_curves, const MetricCurve *curves,
               const char *const *names, const double *aucs);
/* roc_plot(ROC_PLOT_WIDTH, ROC_PLOT_HEIGHT, ...) saved as a PNG at `path`. */
hg_status roc_plot_png(const char *path, int n_curves, const MetricCurve *curves,
                       const char *const *names, const double *aucs);

#endif
