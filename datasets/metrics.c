/* ROC AUC and AUPRO by exact threshold sweeps.
 *
 * Every metric here sorts (score, payload) items once and walks them from the
 * highest score down, one group of equal scores at a time: a group is one
 * threshold, so ties are handled exactly as sklearn and the MVTec AD script
 * do (all tied items switch to "anomalous" together). Items are uint64 with
 * an order-preserving 32-bit key of the score in the high half and a payload
 * (label or region id) in the low half, sorted by an LSD radix sort on the
 * key: O(n), about 10x faster than qsort for the millions of pixels of a
 * pixel-level evaluation. */
#include "datasets/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Payloads and counts are 32-bit; this also keeps 2 * P * N below 2^64. */
#define METRIC_MAX_ITEMS ((int64_t)UINT32_MAX)

/* Maps floats to uint32 so that unsigned order is float order: flip all bits
 * of negatives, set the sign bit of positives. -0 and +0 share one key. */
static uint32_t score_key(float s) {
    if (s == 0.0f) s = 0.0f;
    uint32_t u;
    memcpy(&u, &s, sizeof u);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

static float key_score(uint32_t key) {
    uint32_t u = (key & 0x80000000u) ? (key & 0x7FFFFFFFu) : ~key;
    float s;
    memcpy(&s, &u, sizeof s);
    return s;
}

static uint32_t item_key(uint64_t item) {
    return (uint32_t)(item >> 32);
}

static uint32_t item_payload(uint64_t item) {
    return (uint32_t)item;
}

/* Sorts items ascending by key (stable LSD radix, 8 bits per pass; passes
 * where every key has the same byte are skipped). */
static hg_status sort_items(uint64_t *items, int64_t n, const char *op) {
    uint64_t *tmp = malloc(sizeof(uint64_t) * (size_t)n);
    int64_t(*counts)[256] = calloc(4, sizeof *counts);
    if (!tmp || !counts) {
        free(tmp);
        free(counts);
        return hg_fail(HG_ERR_NOMEM, "%s: out of memory sorting %lld scores", op, (long long)n);
    }
    for (int64_t i = 0; i < n; i++) {
        uint32_t k = item_key(items[i]);
        counts[0][k & 255]++;
        counts[1][(k >> 8) & 255]++;
        counts[2][(k >> 16) & 255]++;
        counts[3][k >> 24]++;
    }
    uint64_t *src = items, *dst = tmp;
    for (int pass = 0; pass < 4; pass++) {
        int shift = 32 + 8 * pass;
        bool trivial = false;
        int64_t start[256], sum = 0;
        for (int v = 0; v < 256; v++) {
            if (counts[pass][v] == n) trivial = true;
            start[v] = sum;
            sum += counts[pass][v];
        }
        if (trivial) continue;
        for (int64_t i = 0; i < n; i++) dst[start[(src[i] >> shift) & 255]++] = src[i];
        uint64_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != items) memcpy(items, src, sizeof(uint64_t) * (size_t)n);
    free(tmp);
    free(counts);
    return HG_OK;
}

/* Items (key, label != 0), sorted; counts the positives. NULL on bad input. */
static uint64_t *labelled_items(const float *scores, const uint8_t *labels, int64_t n,
                                const char *op, int64_t *n_pos) {
    if (!scores || !labels || n < 1 || n > METRIC_MAX_ITEMS) {
        hg_fail(HG_ERR_ARG, "%s: need 1 to 2^32-1 scores and labels, got %lld", op, (long long)n);
        return NULL;
    }
    uint64_t *items = malloc(sizeof(uint64_t) * (size_t)n);
    if (!items) {
        hg_fail(HG_ERR_NOMEM, "%s: out of memory for %lld scores", op, (long long)n);
        return NULL;
    }
    int64_t pos = 0, nans = 0;
#pragma omp parallel for reduction(+ : pos, nans) if (n > 1 << 16)
    for (int64_t i = 0; i < n; i++) {
        nans += isnan(scores[i]) ? 1 : 0;
        pos += labels[i] != 0;
        items[i] = (uint64_t)score_key(scores[i]) << 32 | (labels[i] != 0);
    }
    if (nans) {
        free(items);
        hg_fail(HG_ERR_ARG, "%s: %lld of %lld scores are NaN", op, (long long)nans, (long long)n);
        return NULL;
    }
    if (pos == 0 || pos == n) {
        free(items);
        hg_fail(HG_ERR_ARG,
                "%s: only one class in %lld labels (%lld anomalous); AUROC is undefined", op,
                (long long)n, (long long)pos);
        return NULL;
    }
    if (sort_items(items, n, op) != HG_OK) {
        free(items);
        return NULL;
    }
    *n_pos = pos;
    return items;
}

double metric_auroc(const float *scores, const uint8_t *labels, int64_t n) {
    int64_t n_pos = 0;
    uint64_t *items = labelled_items(scores, labels, n, "metric_auroc", &n_pos);
    if (!items) return NAN;
    /* Trapezoid over the ROC points in count units: a group adding gfp false
     * and gtp true positives after tp true positives adds gfp * (2 tp + gtp) / 2. */
    uint64_t twice_area = 0, tp = 0;
    for (int64_t i = n - 1; i >= 0;) {
        uint32_t key = item_key(items[i]);
        uint64_t gtp = 0, gfp = 0;
        for (; i >= 0 && item_key(items[i]) == key; i--) {
            if (item_payload(items[i]))
                gtp++;
            else
                gfp++;
        }
        twice_area += gfp * (2 * tp + gtp);
        tp += gtp;
    }
    free(items);
    uint64_t n_neg = (uint64_t)(n - n_pos);
    return (double)twice_area / (2.0 * (double)n_pos * (double)n_neg);
}

void metric_curve_free(MetricCurve *curve) {
    if (!curve) return;
    free(curve->fpr);
    free(curve->rate);
    free(curve->threshold);
    *curve = (MetricCurve){0};
}

static hg_status curve_alloc(MetricCurve *curve, int64_t n, const char *op) {
    curve->n = n;
    curve->fpr = malloc(sizeof(double) * (size_t)n);
    curve->rate = malloc(sizeof(double) * (size_t)n);
    curve->threshold = malloc(sizeof(float) * (size_t)n);
    if (curve->fpr && curve->rate && curve->threshold) return HG_OK;
    metric_curve_free(curve);
    return hg_fail(HG_ERR_NOMEM, "%s: out of memory for %lld curve points", op, (long long)n);
}

static int64_t count_thresholds(const uint64_t *items, int64_t n) {
    int64_t m = 1;
    for (int64_t i = 1; i < n; i++) m += item_key(items[i]) != item_key(items[i - 1]);
    return m;
}

hg_status metric_roc_curve(const float *scores, const uint8_t *labels, int64_t n,
                           bool drop_intermediate, MetricCurve *out) {
    const char *op = "metric_roc_curve";
    if (!out) return hg_fail(HG_ERR_ARG, "%s: NULL output", op);
    *out = (MetricCurve){0};
    int64_t n_pos = 0;
    uint64_t *items = labelled_items(scores, labels, n, op, &n_pos);
    if (!items) return hg_last_status();
    /* Cumulative counts per distinct threshold, highest first (sklearn's fps, tps). */
    int64_t m = count_thresholds(items, n);
    int64_t *fps = malloc(sizeof(int64_t) * (size_t)m), *tps = malloc(sizeof(int64_t) * (size_t)m);
    float *thr = malloc(sizeof(float) * (size_t)m);
    hg_status status = HG_OK;
    if (!fps || !tps || !thr) {
        status = hg_fail(HG_ERR_NOMEM, "%s: out of memory for %lld thresholds", op, (long long)m);
        goto done;
    }
    int64_t g = 0, tp = 0, fp = 0;
    for (int64_t i = n - 1; i >= 0; g++) {
        uint32_t key = item_key(items[i]);
        for (; i >= 0 && item_key(items[i]) == key; i--) {
            if (item_payload(items[i]))
                tp++;
            else
                fp++;
        }
        fps[g] = fp, tps[g] = tp, thr[g] = key_score(key);
    }
    /* sklearn keeps the ends and every point where the slope changes
     * (a nonzero second difference of fps or tps). */
    int64_t kept = 0;
    for (int64_t j = 0; j < m; j++) {
        bool keep = !drop_intermediate || m <= 2 || j == 0 || j == m - 1 ||
                    fps[j + 1] - 2 * fps[j] + fps[j - 1] != 0 ||
                    tps[j + 1] - 2 * tps[j] + tps[j - 1] != 0;
        if (keep) fps[kept] = fps[j], tps[kept] = tps[j], thr[kept] = thr[j], kept++;
    }
    status = curve_alloc(out, kept + 1, op);
    if (status != HG_OK) goto done;
    out->fpr[0] = out->rate[0] = 0;
    out->threshold[0] = INFINITY;
    for (int64_t j = 0; j < kept; j++) {
        out->fpr[j + 1] = (double)fps[j] / (double)(n - n_pos);
        out->rate[j + 1] = (double)tps[j] / (double)n_pos;
        out->threshold[j + 1] = thr[j];
    }
done:
    free(items);
    free(fps);
    free(tps);
    free(thr);
    return status;
}

/* ---- AUPRO ---- */

/* Sorted items whose payload is 0 for mask-free pixels and the 1-based global
 * id of the pixel's region otherwise, with 1 / region size per id. */
typedef struct ProItems {
    uint64_t *items;
    int64_t n;
    double *inv_size; /* [n_regions + 1]; entry 0 unused */
    int64_t n_regions, n_ok;
} ProItems;

static void pro_items_free(ProItems *p) {
    free(p->items);
    free(p->inv_size);
}

/* Labels the 8-connected regions of one mask by breadth-first flood fill,
 * writing region ids first_id, first_id + 1, ... into the items' payloads
 * (which start at 0 = unvisited) and each region's pixel count into sizes.
 * Returns the number of regions. */
static int64_t label_regions(const uint8_t *mask, int64_t h, int64_t w, uint64_t *items,
                             uint32_t first_id, uint32_t *queue, int64_t *sizes) {
    int64_t n_regions = 0;
    for (int64_t start = 0; start < h * w; start++) {
        if (!mask[start] || item_payload(items[start])) continue;
        uint32_t id = first_id + (uint32_t)n_regions;
        int64_t head = 0, tail = 0;
        items[start] |= id;
        queue[tail++] = (uint32_t)start;
        while (head < tail) {
            int64_t p = queue[head++], y = p / w, x = p % w;
            for (int64_t dy = -1; dy <= 1; dy++) {
                for (int64_t dx = -1; dx <= 1; dx++) {
                    int64_t yy = y + dy, xx = x + dx, q = yy * w + xx;
                    if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
                    if (!mask[q] || item_payload(items[q])) continue;
                    items[q] |= id;
                    queue[tail++] = (uint32_t)q;
                }
            }
        }
        sizes[n_regions++] = tail;
    }
    return n_regions;
}

static hg_status pro_items_build(const float *scores, const uint8_t *masks, int64_t n_maps,
                                 int64_t h, int64_t w, const char *op, ProItems *p) {
    *p = (ProItems){0};
    if (!scores || !masks || n_maps < 1 || h < 1 || w < 1 || h * w > METRIC_MAX_ITEMS / n_maps)
        return hg_fail(HG_ERR_ARG, "%s: need 1 to 2^32-1 pixels, got %lld maps of %lldx%lld", op,
                       (long long)n_maps, (long long)h, (long long)w);
    int64_t plane = h * w, n = n_maps * plane, nans = 0, anomalous = 0;
    p->n = n;
    p->items = malloc(sizeof(uint64_t) * (size_t)n);
    uint32_t *queue = malloc(sizeof(uint32_t) * (size_t)plane);
    /* Regions hold at least one anomalous pixel; sized after counting those. */
    int64_t *sizes = NULL;
    hg_status status = HG_OK;
    if (!p->items || !queue) goto nomem;
#pragma omp parallel for reduction(+ : nans, anomalous) if (n > 1 << 16)
    for (int64_t i = 0; i < n; i++) {
        nans += isnan(scores[i]) ? 1 : 0;
        anomalous += masks[i] != 0;
        p->items[i] = (uint64_t)score_key(scores[i]) << 32;
    }
    if (nans) {
        status = hg_fail(HG_ERR_ARG, "%s: %lld of %lld scores are NaN", op, (long long)nans,
                         (long long)n);
        goto fail;
    }
    p->n_ok = n - anomalous;
    if (anomalous == 0 || p->n_ok == 0) {
        status = hg_fail(HG_ERR_ARG,
                         "%s: %lld of %lld mask pixels are anomalous; AUPRO needs both kinds", op,
                         (long long)anomalous, (long long)n);
        goto fail;
    }
    sizes = malloc(sizeof(int64_t) * (size_t)anomalous);
    if (!sizes) goto nomem;
    for (int64_t m = 0; m < n_maps; m++)
        p->n_regions += label_regions(masks + m * plane, h, w, p->items + m * plane,
                                      (uint32_t)p->n_regions + 1, queue, sizes + p->n_regions);
    p->inv_size = malloc(sizeof(double) * (size_t)(p->n_regions + 1));
    if (!p->inv_size) goto nomem;
    p->inv_size[0] = 0;
    for (int64_t r = 0; r < p->n_regions; r++) p->inv_size[r + 1] = 1.0 / (double)sizes[r];
    status = sort_items(p->items, n, op);
    if (status != HG_OK) goto fail;
    free(queue);
    free(sizes);
    return HG_OK;
nomem:
    status = hg_fail(HG_ERR_NOMEM, "%s: out of memory for %lld pixels", op, (long long)n);
fail:
    free(queue);
    free(sizes);
    pro_items_free(p);
    *p = (ProItems){0};
    return status;
}

/* Walks the thresholds from the highest score down. With `curve`, stores every
 * (FPR, PRO) point; otherwise integrates PRO over FPR up to fpr_limit and
 * stops there. Returns the (unnormalized) area. */
static double pro_sweep(const ProItems *p, double fpr_limit, MetricCurve *curve) {
    double x0 = 0, y0 = 0, area = 0;
    /* Kahan-compensated sum of 1 / region size over the pixels passed so far:
     * millions of small terms, and PRO must reach exactly 1 at the end. */
    double pro_sum = 0, pro_carry = 0;
    int64_t fp = 0, g = 1;
    if (curve) curve->fpr[0] = curve->rate[0] = 0, curve->threshold[0] = INFINITY;
    for (int64_t i = p->n - 1; i >= 0; g++) {
        uint32_t key = item_key(p->items[i]);
        for (; i >= 0 && item_key(p->items[i]) == key; i--) {
            uint32_t region = item_payload(p->items[i]);
            if (region == 0) {
                fp++;
            } else {
                double term = p->inv_size[region] - pro_carry;
                double next = pro_sum + term;
                pro_carry = (next - pro_sum) - term;
                pro_sum = next;
            }
        }
        double x = (double)fp / (double)p->n_ok;
        double y = fmin(pro_sum / (double)p->n_regions, 1.0);
        if (curve) {
            curve->fpr[g] = x, curve->rate[g] = y, curve->threshold[g] = key_score(key);
            continue;
        }
        if (x > fpr_limit) {
            /* The segment crosses the limit: integrate up to it, interpolating PRO there. */
            double y_limit = y0 + (y - y0) * (fpr_limit - x0) / (x - x0);
            area += 0.5 * (y0 + y_limit) * (fpr_limit - x0);
            break;
        }
        area += 0.5 * (y0 + y) * (x - x0);
        x0 = x, y0 = y;
    }
    return area;
}

double metric_aupro(const float *scores, const uint8_t *masks, int64_t n_maps, int64_t height,
                    int64_t width, double fpr_limit) {
    if (!(fpr_limit > 0 && fpr_limit <= 1)) {
        hg_fail(HG_ERR_ARG, "metric_aupro: fpr_limit %g is not in (0, 1]", fpr_limit);
        return NAN;
    }
    ProItems p;
    if (pro_items_build(scores, masks, n_maps, height, width, "metric_aupro", &p) != HG_OK)
        return NAN;
    double area = pro_sweep(&p, fpr_limit, NULL);
    pro_items_free(&p);
    return area / fpr_limit;
}

hg_status metric_pro_curve(const float *scores, const uint8_t *masks, int64_t n_maps,
                           int64_t height, int64_t width, MetricCurve *out) {
    const char *op = "metric_pro_curve";
    if (!out) return hg_fail(HG_ERR_ARG, "%s: NULL output", op);
    *out = (MetricCurve){0};
    ProItems p;
    hg_status status = pro_items_build(scores, masks, n_maps, height, width, op, &p);
    if (status != HG_OK) return status;
    status = curve_alloc(out, count_thresholds(p.items, p.n) + 1, op);
    if (status == HG_OK) pro_sweep(&p, 1.0, out);
    pro_items_free(&p);
    return status;
}
