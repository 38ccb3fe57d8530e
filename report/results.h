/* Per-category evaluation results and their Markdown / JSON files.
 *
 * Metrics are fractions in [0, 1] (not percent) and NaN when undefined (e.g.
 * no masks, so no pixel AUROC). The mean row averages each metric over the
 * categories where it is defined (NaN when none is) and sums the counts.
 *
 * Markdown, in the style of the public HGAD README (xcyao00/HGAD): centred
 * columns, 3 decimals, category names with '_' as spaces and a capital first
 * letter ("metal_nut" -> "Metal nut"), undefined values as "n/a":
 *
 *   | Category | Image AUROC | Pixel AUROC | AUPRO |
 *   |:--------:|:-----------:|:-----------:|:-----:|
 *   | Carpet | 1.000 | 0.994 | 0.965 |
 *   | Mean | 1.000 | 0.994 | 0.965 |
 *
 * followed by the same numbers in the README's own three-across layout
 * ("| Carpet | 1.000/0.994 | Bottle | ... |", then "| Mean | 1.000/0.994 |"),
 * so a run can be compared with the published table line by line.
 *
 * JSON: {"categories": [{"category": "carpet", "image_auroc": 1, ...,
 * "n_images": 117, "n_anomalous": 89}, ...], "mean": {...}} with numbers in
 * the shortest %g form that reads back as the same double (15 to 17 digits)
 * and NaN / infinities as null.
 *
 * Both writers replace the file atomically (temporary file, then rename). */
#ifndef HG_REPORT_RESULTS_H
#define HG_REPORT_RESULTS_H

#include <stdint.h>

#include "tensor/error.h"

#define RESULTS_NAME_MAX 64

typedef struct ResultRow {
    char category[RESULTS_NAME_MAX]; /* as given, e.g. "metal_nut" (truncated to fit) */
    double image_auroc, pixel_auroc, aupro;
    int64_t n_images;    /* test images */
    int64_t n_anomalous; /* of which anomalous */
} ResultRow;

typedef struct Results {
    int n;
    int capacity;
    ResultRow *rows;
} Results;

Results *results_new(void);
void results_free(Results *r); /* NULL is fine */
/* Appends a category; HG_ERR_ARG for an empty name or negative counts. */
hg_status results_add(Results *r, const char *category, double image_auroc, double pixel_auroc,
                      double aupro, int64_t n_images, int64_t n_anomalous);
/* The mean row (category "mean"). */
ResultRow results_mean(const Results *r);

/* The documents as NUL-terminated strings (malloc'd; the caller frees them). */
char *results_markdown(const Results *r);
char *results_json(const Results *r);
hg_status results_write_markdown(const char *path, const Results *r);
hg_status results_write_json(const char *path, const Results *r);

#endif
