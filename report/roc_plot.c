/* The ROC figure: square axes, chance diagonal, one curve and legend entry per category. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "report/font.h"
#include "report/plot.h"

/* The data range is padded a little so curves along fpr = 0 or tpr = 1 are
 * not hidden under the frame. */
#define ROC_PAD       0.02
#define ROC_LABEL_MAX 96

/* Where the axes and the legend go on the canvas. */
typedef struct RocLayout {
    int left, top, side; /* square axes */
    int legend_scale;    /* 0: legend inside the axes (plot_legend) */
    int legend_x, legend_y, legend_max_h;
} RocLayout;

/* Axes as large as the canvas allows with the legend to their right, as long
 * as that keeps at least 3/4 of the largest possible axes; else the legend
 * goes inside the axes, in the bottom-right corner, where ROC curves rarely are. */
static bool roc_layout(int width, int height, int s, const PlotLegend *lg, RocLayout *out) {
    int fh = FONT_HEIGHT * s, gap = 3 * s, tick = 3 * s;
    int left = gap + fh + 3 * gap + plot_text_width("0.0", s) + gap + tick;
    int bottom = tick + gap + fh + 3 * gap + fh + gap;
    int top = 3 * gap + fh + gap, right = 4 * gap, between = 2 * gap;
    int avail_h = height - top - bottom, avail_w = width - left - right;
    int best = avail_w < avail_h ? avail_w : avail_h;
    if (best < 16) return false;
    *out = (RocLayout){left + (avail_w - best) / 2, top + (avail_h - best) / 2, best, 0, 0, 0, 0};
    if (lg->n == 0) return true;
    for (int ls = s; ls >= 1; ls--) {
        int lw, lh;
        plot_legend_size(lg, ls, avail_h, &lw, &lh);
        int side = avail_w - between - lw < avail_h ? avail_w - between - lw : avail_h;
        if (lh > side) plot_legend_size(lg, ls, side, &lw, &lh);
        side = avail_w - between - lw < avail_h ? avail_w - between - lw : avail_h;
        if (4 * side < 3 * best || lh > side) continue;
        /* centre the block of axes and legend */
        int x0 = left + (avail_w - side - between - lw) / 2, y0 = top + (avail_h - side) / 2;
        *out = (RocLayout){x0, y0, side, ls, x0 + side + between, y0, side};
        return true;
    }
    return true;
}

Plot *roc_plot(int width, int height, int n_curves, const MetricCurve *curves,
               const char *const *names, const double *aucs) {
    if (n_curves < 0 || (n_curves > 0 && !curves)) {
        hg_fail(HG_ERR_ARG, "roc_plot: %d curves given as %p", n_curves, (const void *)curves);
        return NULL;
    }
    for (int i = 0; i < n_curves; i++)
        if (curves[i].n < 1 || !curves[i].fpr || !curves[i].rate) {
            hg_fail(HG_ERR_ARG, "roc_plot: curve %d is empty", i);
            return NULL;
        }
    size_t m = (size_t)(n_curves ? n_curves : 1);
    char(*labels)[ROC_LABEL_MAX] = calloc(m, ROC_LABEL_MAX);
    const char **label_ptrs = calloc(m, sizeof *label_ptrs);
    PlotColor *colors = calloc(m, sizeof *colors);
    int *dashes = calloc(m, sizeof *dashes);
    Plot *p = NULL;
    if (!labels || !label_ptrs || !colors || !dashes) {
        hg_fail(HG_ERR_NOMEM, "roc_plot: out of memory for %d curves", n_curves);
        goto done;
    }
    int s = width >= 480 && height >= 480 ? 2 : 1;
    for (int i = 0; i < n_curves; i++) {
        colors[i] = plot_palette(i);
        dashes[i] = i >= PLOT_PALETTE_SIZE ? 5 * s : 0; /* repeated colours are dashed */
        char fallback[32];
        snprintf(fallback, sizeof fallback, "curve %d", i + 1);
        const char *name = names && names[i] ? names[i] : fallback;
        if (!aucs)
            snprintf(labels[i], ROC_LABEL_MAX, "%s", name);
        else if (isfinite(aucs[i]))
            snprintf(labels[i], ROC_LABEL_MAX, "%s (AUROC %.3f)", name, aucs[i]);
        else
            snprintf(labels[i], ROC_LABEL_MAX, "%s (AUROC n/a)", name);
        label_ptrs[i] = labels[i];
    }
    PlotLegend legend = {n_curves, label_ptrs, colors, dashes};
    RocLayout L;
    if (!roc_layout(width, height, s, &legend, &L)) {
        hg_fail(HG_ERR_ARG, "roc_plot: a %dx%d canvas is too small", width, height);
        goto done;
    }
    p = plot_new(width, height, L.left, L.top, L.side, L.side, -ROC_PAD, 1 + ROC_PAD, -ROC_PAD,
                 1 + ROC_PAD);
    if (!p) goto done;
    p->scale = s;

    /* title with the mean of the finite AUROCs */
    char title[64] = "ROC curves";
    double sum = 0;
    int counted = 0;
    for (int i = 0; aucs && i < n_curves; i++)
        if (isfinite(aucs[i])) {
            sum += aucs[i];
            counted++;
        }
    if (counted > 1) snprintf(title, sizeof title, "ROC curves (mean AUROC %.3f)", sum / counted);
    /* ticks at multiples of 0.2 inside the padded range: 0, 0.2, ..., 1 */
    plot_axes(p, title, "False positive rate", "True positive rate", 0.2, 0.2);

    const double diag[2] = {0, 1};
    plot_polyline(p, diag, diag, 2, (PlotColor){150, 150, 150}, 1, 4 * s);
    for (int i = 0; i < n_curves; i++)
        plot_polyline(p, curves[i].fpr, curves[i].rate, curves[i].n, colors[i], s, dashes[i]);
    if (L.legend_scale > 0)
        plot_legend_draw(p->image, L.legend_x, L.legend_y, L.legend_scale, L.legend_max_h, &legend);
    else
        plot_legend(p, &legend);
done:
    free(labels);
    free(label_ptrs);
    free(colors);
    free(dashes);
    return p;
}

hg_status roc_plot_png(const char *path, int n_curves, const MetricCurve *curves,
                       const char *const *names, const double *aucs) {
    Plot *p = roc_plot(ROC_PLOT_WIDTH, ROC_PLOT_HEIGHT, n_curves, curves, names, aucs);
    if (!p) return hg_last_status();
    hg_status st = plot_save_png(p, path);
    plot_free(p);
    return st;
}
