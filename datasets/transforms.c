/* Resizing, cropping and tensor conversion with PIL / torchvision semantics
 * (see transforms.h). The resampling code follows the algorithm of Pillow's
 * libImaging/Resample.c (precompute_coeffs, normalize_coeffs_8bpc, the two
 * 8bpc passes) and Geometry.c (ImagingScaleAffine for NEAREST), rewritten
 * here; every rounding step is kept because the results must match bit for
 * bit. */
#include "datasets/transforms.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* PIL's PRECISION_BITS: 32 - 8 bits of pixel - 2 bits of headroom for the
 * negative lobes and sums above 1. */
#define PRECISION_BITS 22
/* Parallelize a pass when it does more multiply-adds than this. */
#define RESIZE_PARALLEL_MIN (1 << 18)

/* ------------------------------------------------------------------ filters */

static double sinc(double x) {
    if (x == 0.0) return 1.0;
    x = x * M_PI;
    return sin(x) / x;
}

static double filter_weight(ResampleFilter filter, double x) {
    if (filter == RESAMPLE_LANCZOS) {
        /* Lanczos-3: sinc windowed by a 3x wider sinc, zero outside [-3, 3). */
        if (-3.0 <= x && x < 3.0) return sinc(x) * sinc(x / 3);
        return 0.0;
    }
    /* bilinear = triangle */
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

static double filter_support(ResampleFilter filter) {
    return filter == RESAMPLE_LANCZOS ? 3.0 : 1.0;
}

/* The taps of one 1-d resampling: output entry i reads `count[i]` source
 * entries from `first[i]` with the fixed-point weights k[i * ksize ...]. */
typedef struct Taps {
    int ksize;
    int *first, *count;
    int32_t *k;
} Taps;

static void taps_free(Taps *t) {
    free(t->first);
    free(t->count);
    free(t->k);
}

/* PIL's precompute_coeffs + normalize_coeffs_8bpc for box [0, in_size). */
static hg_status taps_compute(Taps *t, int in_size, int out_size, ResampleFilter filter) {
    memset(t, 0, sizeof *t);
    double scale = (double)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale; /* widen the filter only when shrinking */
    double support = filter_support(filter) * filterscale;
    t->ksize = (int)ceil(support) * 2 + 1;
    t->first = malloc(sizeof(int) * (size_t)out_size);
    t->count = malloc(sizeof(int) * (size_t)out_size);
    t->k = malloc(sizeof(int32_t) * (size_t)out_size * (size_t)t->ksize);
    double *w = malloc(sizeof(double) * (size_t)t->ksize);
    if (!t->first || !t->count || !t->k || !w) {
        free(w);
        taps_free(t);
        return hg_fail(HG_ERR_NOMEM, "image_resize: out of memory for %d filter taps", out_size);
    }
    for (int xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale;
        double ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5); /* truncation, as PIL's "round" */
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        double ww = 0.0;
        for (int x = 0; x < xmax; x++) {
            w[x] = filter_weight(filter, (x + xmin - center + 0.5) * ss);
            ww += w[x];
        }
        int32_t *k = t->k + (size_t)xx * (size_t)t->ksize;
        for (int x = 0; x < t->ksize; x++) {
            double v = x < xmax ? (ww != 0.0 ? w[x] / ww : w[x]) : 0.0;
            /* round half away from zero into 22-bit fixed point */
            k[x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PRECISION_BITS))
                         : (int32_t)(0.5 + v * (1 << PRECISION_BITS));
        }
        t->first[xx] = xmin;
        t->count[xx] = xmax;
    }
    free(w);
    return HG_OK;
}

/* PIL's clip8: the accumulator carries a +0.5 rounding term, so the shift rounds. */
static inline uint8_t clip8(int32_t v) {
    if (v >= (255 << PRECISION_BITS)) return 255;
    if (v <= 0) return 0;
    return (uint8_t)(v >> PRECISION_BITS);
}

/* --------------------------------------------------------- separable passes */

/* One row, horizontal pass; `ch` is a compile-time constant at each call site. */
static inline void horizontal_row(uint8_t *out, const uint8_t *in, int out_w, int ch,
                                  const Taps *t) {
    for (int xx = 0; xx < out_w; xx++) {
        const int32_t *k = t->k + (size_t)xx * (size_t)t->ksize;
        const uint8_t *p = in + (size_t)t->first[xx] * (size_t)ch;
        int n = t->count[xx];
        int32_t s[4] = {1 << (PRECISION_BITS - 1), 1 << (PRECISION_BITS - 1),
                        1 << (PRECISION_BITS - 1), 1 << (PRECISION_BITS - 1)};
        for (int x = 0; x < n; x++)
            for (int c = 0; c < ch; c++) s[c] += p[x * ch + c] * k[x];
        for (int c = 0; c < ch; c++) out[(size_t)xx * (size_t)ch + (size_t)c] = clip8(s[c]);
    }
}

/* rows x out_w output from rows of in_w pixels starting at source row `row0`. */
static void pass_horizontal(uint8_t *out, const uint8_t *in, int in_w, int out_w, int rows,
                            int row0, int ch, const Taps *t) {
    size_t in_stride = (size_t)in_w * (size_t)ch, out_stride = (size_t)out_w * (size_t)ch;
    int64_t work = (int64_t)rows * out_w * t->ksize * ch;
#pragma omp parallel for schedule(static) if (work > RESIZE_PARALLEL_MIN)
    for (int y = 0; y < rows; y++) {
        const uint8_t *src = in + (size_t)(y + row0) * in_stride;
        uint8_t *dst = out + (size_t)y * out_stride;
        switch (ch) {
        case 1:
            horizontal_row(dst, src, out_w, 1, t);
            break;
        case 2:
            horizontal_row(dst, src, out_w, 2, t);
            break;
        case 3:
            horizontal_row(dst, src, out_w, 3, t);
            break;
        default:
            horizontal_row(dst, src, out_w, 4, t);
            break;
        }
    }
}

/* Vertical pass: output row yy sums whole source rows into an int32 row, so
 * the inner loop runs over contiguous samples (integer sums: the order does
 * not change the result). `row_shift` is subtracted from the tap positions
 * (the horizontal pass only produced the rows the vertical taps read). */
static hg_status pass_vertical(uint8_t *out, const uint8_t *in, int row_len, int out_h,
                               int row_shift, const Taps *t) {
    int64_t work = (int64_t)out_h * row_len * t->ksize;
    bool failed = false;
#pragma omp parallel if (work > RESIZE_PARALLEL_MIN)
    {
        int32_t *acc = malloc(sizeof(int32_t) * (size_t)row_len);
        if (!acc) {
#pragma omp atomic write
            failed = true;
        }
#pragma omp for schedule(static)
        for (int yy = 0; yy < out_h; yy++) {
            if (!acc) continue;
            const int32_t *k = t->k + (size_t)yy * (size_t)t->ksize;
            const uint8_t *src = in + (size_t)(t->first[yy] - row_shift) * (size_t)row_len;
            for (int j = 0; j < row_len; j++) acc[j] = 1 << (PRECISION_BITS - 1);
            for (int y = 0; y < t->count[yy]; y++) {
                const uint8_t *row = src + (size_t)y * (size_t)row_len;
                int32_t ky = k[y];
                for (int j = 0; j < row_len; j++) acc[j] += row[j] * ky;
            }
            uint8_t *dst = out + (size_t)yy * (size_t)row_len;
            for (int j = 0; j < row_len; j++) dst[j] = clip8(acc[j]);
        }
        free(acc);
    }
    if (failed) return hg_fail(HG_ERR_NOMEM, "image_resize: out of memory for a row buffer");
    return HG_OK;
}

/* PIL's ImagingResampleInner: horizontal pass on just the rows the vertical
 * pass reads, rounded to 8 bits, then the vertical pass. */
static Image *resample_separable(const Image *img, int width, int height, ResampleFilter filter) {
    int ch = img->channels;
    bool need_h = width != img->width, need_v = height != img->height;
    Taps tv, th = {0};
    if (taps_compute(&tv, img->height, height, filter) != HG_OK) return NULL;
    int row_first = tv.first[0];
    int row_last = tv.first[height - 1] + tv.count[height - 1];
    Image *tmp = NULL, *out = NULL;
    const Image *src = img;
    int row_shift = 0;
    if (need_h) {
        if (taps_compute(&th, img->width, width, filter) != HG_OK) goto done;
        tmp = image_new(width, row_last - row_first, ch, 8);
        if (!tmp) goto done;
        pass_horizontal(tmp->data8, img->data8, img->width, width, row_last - row_first, row_first,
                        ch, &th);
        src = tmp;
        row_shift = row_first;
    }
    if (need_v) {
        out = image_new(width, height, ch, 8);
        if (out &&
            pass_vertical(out->data8, src->data8, width * ch, height, row_shift, &tv) != HG_OK) {
            image_free(out);
            out = NULL;
        }
    } else {
        out = tmp; /* height unchanged: the horizontal pass produced every row */
        tmp = NULL;
    }
done:
    image_free(tmp);
    taps_free(&th);
    taps_free(&tv);
    return out;
}

/* ------------------------------------------------------------------ nearest */

/* Source index of each output entry, -1 when outside (PIL then leaves 0).
 * PIL accumulates the position (xo += scale) instead of multiplying, and the
 * last bits of the sum decide ties, so we accumulate too. */
static void nearest_index(int *idx, int in_size, int out_size) {
    double scale = (double)in_size / out_size;
    double pos = scale * 0.5;
    for (int i = 0; i < out_size; i++) {
        int v = pos < 0.0 ? -1 : (int)pos;
        idx[i] = v < in_size ? v : -1;
        pos += scale;
    }
}

static Image *resample_nearest(const Image *img, int width, int height) {
    int *xi = malloc(sizeof(int) * (size_t)width), *yi = malloc(sizeof(int) * (size_t)height);
    Image *out = NULL;
    if (!xi || !yi)
        hg_fail(HG_ERR_NOMEM, "image_resize: out of memory");
    else
        out = image_new(width, height, img->channels, 8);
    if (!out) {
        free(xi);
        free(yi);
        return NULL;
    }
    nearest_index(xi, img->width, width);
    nearest_index(yi, img->height, height);
    size_t ch = (size_t)img->channels;
#pragma omp parallel for schedule(static) if ((int64_t)width * height > RESIZE_PARALLEL_MIN)
    for (int y = 0; y < height; y++) {
        if (yi[y] < 0) continue; /* image_new zero-filled the row */
        const uint8_t *src = img->data8 + (size_t)yi[y] * (size_t)img->width * ch;
        uint8_t *dst = out->data8 + (size_t)y * (size_t)width * ch;
        for (int x = 0; x < width; x++)
            if (xi[x] >= 0) memcpy(dst + (size_t)x * ch, src + (size_t)xi[x] * ch, ch);
    }
    free(xi);
    free(yi);
    return out;
}

/* ------------------------------------------------------------------- public */

static hg_status check_image8(const Image *img, const char *op) {
    if (!img) return hg_fail(HG_ERR_ARG, "%s: NULL image", op);
    if (img->bit_depth != 8)
        return hg_fail(HG_ERR_UNSUPPORTED,
                       "%s: %d-bit images are not supported (convert to 8 bits first)", op,
                       img->bit_depth);
    return HG_OK;
}

static Image *image_copy(const Image *img) {
    Image *out = image_new(img->width, img->height, img->channels, img->bit_depth);
    if (out) memcpy(out->data8, img->data8, image_size_bytes(img));
    return out;
}

Image *image_resize(const Image *img, int width, int height, ResampleFilter filter) {
    if (check_image8(img, "image_resize") != HG_OK) return NULL;
    if (width <= 0 || height <= 0) {
        hg_fail(HG_ERR_ARG, "image_resize: invalid output size %dx%d", width, height);
        return NULL;
    }
    if (filter != RESAMPLE_NEAREST && filter != RESAMPLE_BILINEAR && filter != RESAMPLE_LANCZOS) {
        hg_fail(HG_ERR_ARG, "image_resize: unknown filter %d", (int)filter);
        return NULL;
    }
    if (width == img->width && height == img->height) return image_copy(img);
    if (filter == RESAMPLE_NEAREST) return resample_nearest(img, width, height);
    return resample_separable(img, width, height, filter);
}

void resize_shorter_side_dims(int width, int height, int size, int *out_width, int *out_height) {
    /* torchvision: short, long = (w, h) if w <= h else (h, w);
     * new_long = int(size * long / short) -- a float division, then truncation. */
    bool w_short = width <= height;
    int shorter = w_short ? width : height, longer = w_short ? height : width;
    int new_long = (int)((double)size * longer / shorter);
    *out_width = w_short ? size : new_long;
    *out_height = w_short ? new_long : size;
}

Image *image_resize_shorter_side(const Image *img, int size, ResampleFilter filter) {
    if (check_image8(img, "image_resize_shorter_side") != HG_OK) return NULL;
    if (size <= 0) {
        hg_fail(HG_ERR_ARG, "image_resize_shorter_side: invalid size %d", size);
        return NULL;
    }
    int w, h;
    resize_shorter_side_dims(img->width, img->height, size, &w, &h);
    return image_resize(img, w, h, filter);
}

/* int(round(d / 2.0)) for d >= 0 with Python 3's round half to even. */
static int half_round_even(int d) {
    int h = d / 2;
    if (d % 2 == 0) return h;
    return h % 2 == 0 ? h : h + 1;
}

Image *image_center_crop(const Image *img, int width, int height) {
    if (!img) {
        hg_fail(HG_ERR_ARG, "image_center_crop: NULL image");
        return NULL;
    }
    if (width <= 0 || height <= 0) {
        hg_fail(HG_ERR_ARG, "image_center_crop: invalid crop size %dx%d", width, height);
        return NULL;
    }
    /* torchvision pads a too-small image with zeros first (extra pixel at the
     * end), then crops the padded image. */
    int pad_left = width > img->width ? (width - img->width) / 2 : 0;
    int pad_top = height > img->height ? (height - img->height) / 2 : 0;
    int padded_w = width > img->width ? width : img->width;
    int padded_h = height > img->height ? height : img->height;
    int left = half_round_even(padded_w - width) - pad_left;
    int top = half_round_even(padded_h - height) - pad_top;

    Image *out = image_new(width, height, img->channels, img->bit_depth);
    if (!out) return NULL;
    size_t px = (size_t)img->channels * (size_t)(img->bit_depth / 8);
    int x0 = left < 0 ? -left : 0; /* first output column with a source */
    int x1 = img->width - left < width ? img->width - left : width; /* one past the last */
    for (int y = 0; y < height; y++) {
        int sy = y + top;
        if (sy < 0 || sy >= img->height || x1 <= x0) continue;
        memcpy(out->data8 + ((size_t)y * (size_t)width + (size_t)x0) * px,
               img->data8 + ((size_t)sy * (size_t)img->width + (size_t)(x0 + left)) * px,
               (size_t)(x1 - x0) * px);
    }
    return out;
}

Tensor *image_to_normalized_tensor(const Image *img, const float mean[3], const float std[3]) {
    if (!img) {
        hg_fail(HG_ERR_ARG, "image_to_normalized_tensor: NULL image");
        return NULL;
    }
    Image *converted = NULL;
    if (img->bit_depth != 8) {
        converted = image_to_rgb8(img);
        if (!converted) return NULL;
        img = converted;
    }
    int64_t h = img->height, w = img->width, plane = h * w;
    Tensor *t = tensor_empty(SHAPE(3, h, w));
    if (!t) {
        image_free(converted);
        return NULL;
    }
    float *dst = tensor_data(t);
    int ch = img->channels;
    /* Grey (+ alpha) replicates sample 0, colour reads samples 0..2. */
    int src_c[3] = {0, ch >= 3 ? 1 : 0, ch >= 3 ? 2 : 0};
    for (int c = 0; c < 3; c++) {
        float m = mean ? mean[c] : 0.0f, s = std ? std[c] : 1.0f;
        bool norm = mean && std;
        const uint8_t *src = img->data8 + src_c[c];
        float *out = dst + c * plane;
#pragma omp parallel for schedule(static) if (plane > (1 << 18))
        for (int64_t i = 0; i < plane; i++) {
            float v = (float)src[i * ch] / 255.0f; /* ToTensor */
            out[i] = norm ? (v - m) / s : v;       /* Normalize: sub_(mean).div_(std) */
        }
    }
    image_free(converted);
    return t;
}

/* ----------------------------------------------------------------- pipeline */

Preprocess preprocess_imagenet(int img_size, int msk_size) {
    Preprocess pp = {.img_size = img_size,
                     .crop_size = img_size,
                     .msk_size = msk_size,
                     .mean = {0.485f, 0.456f, 0.406f},
                     .std = {0.229f, 0.224f, 0.225f}};
    return pp;
}

hg_status preprocess_check(const Preprocess *pp) {
    if (!pp) return hg_fail(HG_ERR_ARG, "preprocess: NULL settings");
    if (pp->img_size <= 0 || pp->crop_size <= 0 || pp->msk_size <= 0)
        return hg_fail(HG_ERR_ARG, "preprocess: sizes must be positive (img %d, crop %d, mask %d)",
                       pp->img_size, pp->crop_size, pp->msk_size);
    for (int c = 0; c < 3; c++)
        if (!(pp->std[c] != 0.0f) || !isfinite(pp->std[c]) || !isfinite(pp->mean[c]))
            return hg_fail(HG_ERR_ARG, "preprocess: channel %d: mean %g / std %g is not usable", c,
                           (double)pp->mean[c], (double)pp->std[c]);
    return HG_OK;
}

Tensor *preprocess_image(const Image *img, const Preprocess *pp) {
    if (preprocess_check(pp) != HG_OK) return NULL;
    if (!img) {
        hg_fail(HG_ERR_ARG, "preprocess_image: NULL image");
        return NULL;
    }
    /* convert('RGB') first; a 3-channel 8-bit image already is. */
    Image *rgb = NULL;
    if (img->channels != 3 || img->bit_depth != 8) {
        rgb = image_to_rgb8(img);
        if (!rgb) return NULL;
    }
    Image *resized = image_resize_shorter_side(rgb ? rgb : img, pp->img_size, RESAMPLE_LANCZOS);
    image_free(rgb);
    if (!resized) return NULL;
    Image *crop = image_center_crop(resized, pp->crop_size, pp->crop_size);
    image_free(resized);
    if (!crop) return NULL;
    Tensor *t = image_to_normalized_tensor(crop, pp->mean, pp->std);
    image_free(crop);
    return t;
}

/* 1-channel 8-bit image holding 255 where the mask is nonzero, 0 elsewhere.
 * Nearest resizing and cropping only move values, so binarizing first gives
 * the same result as binarizing at the end. */
static Image *mask_binary(const Image *mask) {
    Image *grey = NULL;
    if (mask->channels >= 3) { /* colour masks: PIL's convert('L') decides */
        grey = image_to_grey8(mask);
        if (!grey) return NULL;
        mask = grey;
    }
    Image *bin = image_new(mask->width, mask->height, 1, 8);
    if (bin) {
        size_t n = (size_t)mask->width * (size_t)mask->height, ch = (size_t)mask->channels;
        for (size_t i = 0; i < n; i++) {
            bool on = mask->bit_depth == 8 ? mask->data8[i * ch] != 0 : mask->data16[i * ch] != 0;
            bin->data8[i] = on ? 255 : 0;
        }
    }
    image_free(grey);
    return bin;
}

Tensor *preprocess_mask(const Image *mask, const Preprocess *pp) {
    if (preprocess_check(pp) != HG_OK) return NULL;
    if (!mask) {
        hg_fail(HG_ERR_ARG, "preprocess_mask: NULL mask");
        return NULL;
    }
    Image *bin = mask_binary(mask);
    if (!bin) return NULL;
    Image *resized = image_resize_shorter_side(bin, pp->msk_size, RESAMPLE_NEAREST);
    image_free(bin);
    if (!resized) return NULL;
    Image *crop = image_center_crop(resized, pp->msk_size, pp->msk_size);
    image_free(resized);
    if (!crop) return NULL;
    int64_t m = pp->msk_size;
    Tensor *t = tensor_empty(SHAPE(1, m, m));
    if (t) {
        float *dst = tensor_data(t);
        for (int64_t i = 0; i < m * m; i++) dst[i] = crop->data8[i] ? 1.0f : 0.0f;
    }
    image_free(crop);
    return t;
}
