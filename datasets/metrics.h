/* Anomaly-detection metrics: ROC AUC (image or pixel level) and AUPRO.
 *
 * Scores: higher means more anomalous; a point is called anomalous at
 * threshold t when score >= t. Labels and masks: nonzero means anomalous (so
 * 0/1 and 0/255 masks both work). All sweeps are exact: every distinct score
 * is a threshold (sorted once, O(n) radix sort), never a fixed grid.
 *
 * Degenerate input (only one class, no anomalous region, NaN scores, n < 1)
 * returns NaN from the double-valued functions, with the reason in
 * hg_last_error(). */
#ifndef HG_METRICS_H
#define HG_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "tensor/error.h"

/* Area under the ROC curve, exactly as sklearn.metrics.roc_auc_score: the
 * trapezoid rule over the curve's distinct thresholds, so tied scores of a
 * positive and a negative count one half. */
double metric_auroc(const float *scores, const uint8_t *labels, int64_t n);

/* Points of a curve for plotting, ordered by decreasing threshold. */
typedef struct MetricCurve {
    int64_t n;
    double *fpr;      /* false-positive rate, non-decreasing from 0 */
    double *rate;     /* true-positive rate (ROC) or per-region overlap (PRO) */
    float *threshold; /* score >= threshold is anomalous; +inf at the first point (0, 0) */
} MetricCurve;
void metric_curve_free(MetricCurve *curve); /* frees the arrays; the struct may be on the stack */

/* ROC curve as sklearn.metrics.roc_curve: a leading (0, 0) point at +inf, then
 * one point per distinct score; drop_intermediate removes points on straight
 * segments (sklearn's default), which leaves the area unchanged. */
hg_status metric_roc_curve(const float *scores, const uint8_t *labels, int64_t n,
                           bool drop_intermediate, MetricCurve *out);

/* Normalized area under the per-region-overlap curve (Bergmann et al., "The
 * MVTec Anomaly Detection Dataset", IJCV 2021, sec. 5.1), for n_maps score
 * maps and masks of height x width each (row-major, map after map):
 * - regions are the connected components of each mask with 8-connectivity
 *   (scipy.ndimage.label with a full 3x3 structure, as the MVTec AD evaluation
 *   script's pro_curve_util.py uses);
 * - at threshold t, PRO = mean over all regions of the fraction of the region's
 *   pixels scoring >= t, and FPR = fraction of mask-free pixels scoring >= t;
 * - the curve starts at (0, 0) and has one point per distinct score; it is
 *   integrated with the trapezoid rule up to FPR = fpr_limit (interpolating
 *   linearly at exactly fpr_limit, as the script's trapezoid(x_max=...)) and
 *   divided by fpr_limit, so a perfect detector scores 1. fpr_limit is in
 *   (0, 1]; 0.3 is the standard value. */
double metric_aupro(const float *scores, const uint8_t *masks, int64_t n_maps, int64_t height,
                    int64_t width, double fpr_limit);
/* The whole PRO curve (rate = PRO), for plotting. */
hg_status metric_pro_curve(const float *scores, const uint8_t *masks, int64_t n_maps,
                           int64_t height, int64_t width, MetricCurve *out);

#endif
