/* The ROC figure: square axes, chance diagonal, one curve and legend entry per category. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "report/font.h"
#include "report/plot.h"

/* The data range is padded a little so curves along fpr = 0 or tpr = 1 are
 * not hidden under the frame. */
#define ROC_PAD 0.02
#define ROC_LABEL_MAX 96

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
    int s = width >= 480 && height >= 480 ? 2 : 1;
    int fh = FONT_HEIGHT * s, gap = 3 * s, tick = 3 * s;
    int left = gap + fh + 3 * gap + plot_text_width("0.0", s) + gap + tick;
    int bottom = tick + gap + fh + 3 * gap + fh + gap;
    int top = 3 * gap + fh + gap, right = 4 * gap;
    int side = width - left - right < height - top - bottom ? width - left - right
                                                           : height - top - bottom;
    if (side < 16) {
        hg_fail(HG_ERR_ARG, "roc_plot: a %dx%d canvas is too small", width, height);
        return NULL;
    }
    left += (width - left - right - side) / 2;
    Plot *p = plot_new(width, height, left, top, side, side, -ROC_PAD, 1 + ROC_PAD, -ROC_PAD,
                       1 + ROC_PAD);
    if (!p) return NULL;
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

    char(*labels)[ROC_LABEL_MAX] = calloc((size_t)(n_curves ? n_curves : 1), ROC_LABEL_MAX);
    const char **label_ptrs = calloc((size_t)(n_curves ? n_curves : 1), sizeof *label_ptrs);
    PlotColor *colors = calloc((size_t)(n_curves ? n_curves : 1), sizeof *colors);
    int *dashes = calloc((size_t)(n_curves ? n_curves : 1), sizeof *dashes);
    if (!labels || !label_ptrs || !colors || !dashes) {
        free(labels);
        free(label_ptrs);
        free(colors);
        free(dashes);
        plot_free(p);
        hg_fail(HG_ERR_NOMEM, "roc_plot: out of memory for %d curves", n_curves);
        return NULL;
    }
    for (int i = 0; i < n_curves; i++) {
        colors[i] = plot_palette(i);
        dashes[i] = i >= PLOT_PALETTE_SIZE ? 5 * s : 0; /* repeated colours are dashed */
        plot_polyline(p, curves[i].fpr, curves[i].rate, curves[i].n, colors[i], s, dashes[i]);
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
    plot_legend(p, n_curves, label_ptrs, colors, dashes);
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
