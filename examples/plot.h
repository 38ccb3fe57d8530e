/* The examples' drawing helpers, on top of the library's plotting kit
 * (report/plot.h: colours, plot_palette, plot_fill_rect, plot_text with its
 * 5x7 font, ...), for what that kit leaves out: several panels on one canvas,
 * heat maps, dots, circles and lines in data coordinates, colour maps.
 *
 * Everything draws into an 8-bit RGB Image (datasets/image.h), which the
 * examples then write with image_save_png(). A Panel maps a data rectangle
 * [x0, x1] x [y0, y1] (y pointing up, as on paper) onto a pixel rectangle of
 * the image (y pointing down), so scatter points, heat maps and axes all use
 * data coordinates.
 *
 * This is presentation code for the examples only: it is not part of the
 * library and does no error reporting beyond returning NULL / a status. */
#ifndef HG_EXAMPLES_PLOT_H
#define HG_EXAMPLES_PLOT_H

#include <stdint.h>

#include "datasets/image.h"
#include "report/plot.h"

#define EXAMPLE_GREY ((PlotColor){128, 128, 128})

/* a + t (b - a), t clamped to [0, 1]. */
PlotColor rgb_mix(PlotColor a, PlotColor b, double t);
/* Perceptual sequential map (an approximation of matplotlib's viridis), t in [0, 1]. */
PlotColor colormap_viridis(double t);
/* Turbo, the map of hgad's own anomaly heat maps (heatmap_color, report/heatmap.h),
 * t in [0, 1]. */
PlotColor colormap_turbo(double t);

/* A width x height RGB image filled with `background`; NULL on failure. */
Image *canvas_new(int width, int height, PlotColor background);

/* ---- raw pixel drawing (pixel coordinates, clipped to the image) ---- */
void draw_pixel(Image *img, int x, int y, PlotColor c);
void draw_line(Image *img, int x0, int y0, int x1, int y1, PlotColor c);
void draw_disc(Image *img, double cx, double cy, double radius, PlotColor c);
void draw_circle(Image *img, double cx, double cy, double radius, PlotColor c); /* outline */

/* ---- panels: data coordinates ---- */
typedef struct Panel {
    Image *img;
    int left, top, width, height; /* pixel rectangle */
    double x0, x1, y0, y1;        /* data range shown */
} Panel;

Panel panel_new(Image *img, int left, int top, int width, int height, double x0, double x1,
                double y0, double y1);
/* Pixel position (fractional) of the data point (x, y). */
void panel_to_pixel(const Panel *p, double x, double y, double *px, double *py);
/* Data coordinates of the center of cell (i, j) of an nx x ny grid laid over
 * the panel, row j = 0 at the top: the points where a heat map is evaluated. */
void panel_grid_point(const Panel *p, int nx, int ny, int i, int j, double *x, double *y);
/* Fills the panel with the grid of values (nx x ny, row-major, row 0 at the
 * top, as panel_grid_point), mapped through `map` from [lo, hi]. */
void panel_heatmap(const Panel *p, const float *values, int nx, int ny, float lo, float hi,
                   PlotColor (*map)(double));
/* Fills the panel with an nx x ny grid of ready-made colours. */
void panel_color_grid(const Panel *p, const PlotColor *colors, int nx, int ny);
/* A line between two data points (not clipped to the panel). */
void panel_line(const Panel *p, double x0, double y0, double x1, double y1, PlotColor c);
/* A filled dot of `radius` pixels at data point (x, y) (clipped to the panel). */
void panel_point(const Panel *p, double x, double y, double radius, PlotColor c);
/* Frame, ticks at round numbers with their labels, and a title above. */
void panel_axes(const Panel *p, const char *title, PlotColor c);

/* out_dir/name into `buf` (size bytes), creating out_dir (one level) if needed.
 * out_dir comes from argv[1] when given, else "build/examples/out". */
const char *example_output_path(int argc, char **argv, const char *name, char *buf, int size);

#endif
