/* Results table: rows, mean, Markdown and JSON text, atomic file writes. */
#include "report/results.h"

#include <ctype.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

Results *results_new(void) {
    Results *r = calloc(1, sizeof *r);
    if (!r) hg_fail(HG_ERR_NOMEM, "results_new: out of memory");
    return r;
}

void results_free(Results *r) {
    if (!r) return;
    free(r->rows);
    free(r);
}

hg_status results_add(Results *r, const char *category, double image_auroc, double pixel_auroc,
                      double aupro, int64_t n_images, int64_t n_anomalous) {
    if (!r || !category || !category[0] || n_images < 0 || n_anomalous < 0)
        return hg_fail(HG_ERR_ARG, "results_add: need a category name and counts >= 0");
    if (r->n == r->capacity) {
        int cap = r->capacity ? 2 * r->capacity : 16;
        ResultRow *rows = realloc(r->rows, sizeof *rows * (size_t)cap);
        if (!rows) return hg_fail(HG_ERR_NOMEM, "results_add: out of memory for %d rows", cap);
        r->rows = rows;
        r->capacity = cap;
    }
    ResultRow *row = &r->rows[r->n++];
    memset(row, 0, sizeof *row);
    snprintf(row->category, sizeof row->category, "%s", category);
    row->image_auroc = image_auroc;
    row->pixel_auroc = pixel_auroc;
    row->aupro = aupro;
    row->n_images = n_images;
    row->n_anomalous = n_anomalous;
    return HG_OK;
}

/* Mean of the finite values among n strided doubles; NaN when there are none. */
static double mean_defined(const ResultRow *rows, int n, size_t field_offset) {
    double sum = 0;
    int count = 0;
    for (int i = 0; i < n; i++) {
        double v = *(const double *)((const char *)&rows[i] + field_offset);
        if (isfinite(v)) {
            sum += v;
            count++;
        }
    }
    return count ? sum / count : NAN;
}

ResultRow results_mean(const Results *r) {
    ResultRow m = {.category = "mean"};
    int n = r ? r->n : 0;
    const ResultRow *rows = r ? r->rows : NULL;
    m.image_auroc = mean_defined(rows, n, offsetof(ResultRow, image_auroc));
    m.pixel_auroc = mean_defined(rows, n, offsetof(ResultRow, pixel_auroc));
    m.aupro = mean_defined(rows, n, offsetof(ResultRow, aupro));
    for (int i = 0; i < n; i++) {
        m.n_images += rows[i].n_images;
        m.n_anomalous += rows[i].n_anomalous;
    }
    return m;
}

/* ---- a growing text buffer; after a failed append it stays failed ---- */

typedef struct Text {
    char *s;
    size_t len, cap;
    bool failed;
} Text;

__attribute__((format(printf, 2, 3))) static void text_printf(Text *t, const char *fmt, ...) {
    if (t->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = t->cap - t->len;
        int n = vsnprintf(t->s ? t->s + t->len : NULL, t->s ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = true;
            return;
        }
        if (t->s && (size_t)n < room) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap : 1024;
        while (cap < t->len + (size_t)n + 1) cap *= 2;
        char *s = realloc(t->s, cap);
        if (!s) {
            t->failed = true;
            return;
        }
        t->s = s;
        t->cap = cap;
    }
}

/* The finished string, or NULL (and the buffer freed) after a failure. */
static char *text_finish(Text *t, const char *what) {
    if (t->failed || !t->s) {
        free(t->s);
        hg_fail(HG_ERR_NOMEM, "%s: out of memory", what);
        return NULL;
    }
    return t->s;
}

/* ---- Markdown ---- */

/* "metal_nut" -> "Metal nut", with '|' escaped so it cannot split a cell. */
static void md_name(Text *t, const char *name) {
    for (size_t i = 0; name[i]; i++) {
        unsigned char c = (unsigned char)name[i];
        if (i == 0 && c < 128) c = (unsigned char)toupper(c);
        if (c == '_') c = ' ';
        if (c == '|')
            text_printf(t, "\\|");
        else
            text_printf(t, "%c", c);
    }
}

static void md_value(Text *t, double v) {
    if (isfinite(v))
        text_printf(t, "%.3f", v);
    else
        text_printf(t, "n/a");
}

/* One "| Name | 0.998/0.988 " cell pair of the README layout. */
static void md_readme_pair(Text *t, const ResultRow *row) {
    text_printf(t, "| ");
    md_name(t, row->category);
    text_printf(t, " | ");
    md_value(t, row->image_auroc);
    text_printf(t, "/");
    md_value(t, row->pixel_auroc);
    text_printf(t, " ");
}

char *results_markdown(const Results *r) {
    if (!r) {
        hg_fail(HG_ERR_ARG, "results_markdown: NULL results");
        return NULL;
    }
    Text t = {0};
    ResultRow mean = results_mean(r);
    mean.category[0] = 'M';

    text_printf(&t, "| Category | Image AUROC | Pixel AUROC | AUPRO |\n");
    text_printf(&t, "|:--------:|:-----------:|:-----------:|:-----:|\n");
    for (int i = 0; i <= r->n; i++) {
        const ResultRow *row = i < r->n ? &r->rows[i] : &mean;
        text_printf(&t, "| ");
        md_name(&t, row->category);
        text_printf(&t, " | ");
        md_value(&t, row->image_auroc);
        text_printf(&t, " | ");
        md_value(&t, row->pixel_auroc);
        text_printf(&t, " | ");
        md_value(&t, row->aupro);
        text_printf(&t, " |\n");
    }

    /* the README's layout: three categories per row, the mean in the next slot */
    int across = r->n < 3 ? (r->n < 1 ? 1 : r->n) : 3;
    text_printf(&t, "\nImage/Pixel AUROC in the layout of the HGAD README:\n\n");
    for (int k = 0; k < across; k++) text_printf(&t, "| Category | Image/Pixel AUC ");
    text_printf(&t, "|\n");
    for (int k = 0; k < across; k++) text_printf(&t, "|:--------:|:---------------:");
    text_printf(&t, "|\n");
    for (int i = 0; i <= r->n; i++) {
        md_readme_pair(&t, i < r->n ? &r->rows[i] : &mean);
        if (i == r->n || i % across == across - 1) text_printf(&t, "|\n");
    }
    return text_finish(&t, "results_markdown");
}

/* ---- JSON ---- */

/* Shortest %.*g form that reads back as the same double; null when not finite. */
static void json_number(Text *t, double v) {
    if (!isfinite(v)) {
        text_printf(t, "null");
        return;
    }
    char buf[40];
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, v);
        if (strtod(buf, NULL) == v) break;
    }
    text_printf(t, "%s", buf);
}

/* Length of the well-formed UTF-8 sequence at s (RFC 3629), or 0. */
static int utf8_sequence(const unsigned char *s) {
    unsigned char c = s[0];
    int n = c < 0x80                 ? 1
            : c >= 0xC2 && c <= 0xDF ? 2
            : c >= 0xE0 && c <= 0xEF ? 3
            : c >= 0xF0 && c <= 0xF4 ? 4
                                     : 0;
    for (int k = 1; k < n; k++)
        if ((s[k] & 0xC0) != 0x80) return 0;
    if (n == 3 && ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] >= 0xA0))) return 0;
    if (n == 4 && ((c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] >= 0x90))) return 0;
    return n;
}

/* A JSON string; bytes that are not well-formed UTF-8 become U+FFFD. */
static void json_string(Text *t, const char *s) {
    const unsigned char *u = (const unsigned char *)s;
    text_printf(t, "\"");
    while (*u) {
        int n = utf8_sequence(u);
        if (n == 0) {
            text_printf(t, "\\ufffd");
            u++;
        } else if (*u == '"' || *u == '\\') {
            text_printf(t, "\\%c", *u++);
        } else if (*u < 0x20) {
            text_printf(t, "\\u%04x", *u++);
        } else {
            text_printf(t, "%.*s", n, (const char *)u);
            u += n;
        }
    }
    text_printf(t, "\"");
}

static void json_row(Text *t, const ResultRow *row, bool with_name) {
    text_printf(t, "{");
    if (with_name) {
        text_printf(t, "\"category\": ");
        json_string(t, row->category);
        text_printf(t, ", ");
    }
    text_printf(t, "\"image_auroc\": ");
    json_number(t, row->image_auroc);
    text_printf(t, ", \"pixel_auroc\": ");
    json_number(t, row->pixel_auroc);
    text_printf(t, ", \"aupro\": ");
    json_number(t, row->aupro);
    text_printf(t, ", \"n_images\": %lld, \"n_anomalous\": %lld}", (long long)row->n_images,
                (long long)row->n_anomalous);
}

char *results_json(const Results *r) {
    if (!r) {
        hg_fail(HG_ERR_ARG, "results_json: NULL results");
        return NULL;
    }
    Text t = {0};
    text_printf(&t, "{\n  \"categories\": [");
    for (int i = 0; i < r->n; i++) {
        text_printf(&t, i ? ",\n    " : "\n    ");
        json_row(&t, &r->rows[i], true);
    }
    text_printf(&t, r->n ? "\n  ],\n  \"mean\": " : "],\n  \"mean\": ");
    ResultRow mean = results_mean(r);
    json_row(&t, &mean, false);
    text_printf(&t, "\n}\n");
    return text_finish(&t, "results_json");
}

/* ---- files ---- */

/* Writes `text` to a temporary file next to `path`, then renames it over
 * `path`, so readers see the old file or the new one, never half of one. */
static hg_status write_atomic(const char *path, const char *text, const char *what) {
    size_t len = strlen(path);
    char *tmp = malloc(len + 16);
    if (!tmp) return hg_fail(HG_ERR_NOMEM, "%s: %s: out of memory", what, path);
    snprintf(tmp, len + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        free(tmp);
        return hg_fail(HG_ERR_IO, "%s: %s: cannot create a temporary file", what, path);
    }
    fchmod(fd, 0644); /* mkstemp makes 0600; results should be readable like any file */
    hg_status st = HG_OK;
    size_t n = strlen(text), done = 0;
    while (done < n) {
        ssize_t w = write(fd, text + done, n - done);
        if (w < 0) {
            st = hg_fail(HG_ERR_IO, "%s: %s: write error", what, path);
            break;
        }
        done += (size_t)w;
    }
    if (close(fd) != 0 && st == HG_OK) st = hg_fail(HG_ERR_IO, "%s: %s: write error", what, path);
    if (st == HG_OK && rename(tmp, path) != 0)
        st = hg_fail(HG_ERR_IO, "%s: %s: cannot rename the temporary file", what, path);
    if (st != HG_OK) unlink(tmp);
    free(tmp);
    return st;
}

hg_status results_write_markdown(const char *path, const Results *r) {
    if (!path) return hg_fail(HG_ERR_ARG, "results_write_markdown: NULL path");
    char *text = results_markdown(r);
    if (!text) return hg_last_status();
    hg_status st = write_atomic(path, text, "results_write_markdown");
    free(text);
    return st;
}

hg_status results_write_json(const char *path, const Results *r) {
    if (!path) return hg_fail(HG_ERR_ARG, "results_write_json: NULL path");
    char *text = results_json(r);
    if (!text) return hg_last_status();
    hg_status st = write_atomic(path, text, "results_write_json");
    free(text);
    return st;
}
