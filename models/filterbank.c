#include "models/filterbank.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { RADIUS = 4, TAPS = 2 * RADIUS + 1 };

/* Shift of the log channels: a flat region reads about log(1.75) = 0.56 and a
 * sharp edge crossing the cell about 3.3 (see the header), so 2 centres them. */
static const float LOG_SHIFT = 2.0f;

/* Sampled Gaussian (sigma 1) and its first and second derivatives, as
 * correlation kernels: for a ramp v(x) = x, d1 gives 1; for v = x^2 / 2, d2
 * gives 1 and a constant gives 0 (the sampled moments are corrected so that
 * this holds exactly, not just in the continuous limit). */
typedef struct Kernels {
    float g[TAPS], d1[TAPS], d2[TAPS];
} Kernels;

static Kernels make_kernels(void) {
    double g[TAPS], sum = 0, m2 = 0;
    for (int t = 0; t < TAPS; t++) {
        double x = t - RADIUS;
        g[t] = exp(-x * x / 2);
        sum += g[t];
    }
    for (int t = 0; t < TAPS; t++) {
        g[t] /= sum;
        double x = t - RADIUS;
        m2 += x * x * g[t];
    }
    /* d1 = x g / m2 has sum x d1 = 1; d2 = (x^2 - m2) g / c has sum 0 and
     * sum (x^2 / 2) d2 = 1 with c = (m4 - m2^2) / 2. */
    double m4 = 0;
    for (int t = 0; t < TAPS; t++) {
        double x = t - RADIUS;
        m4 += x * x * x * x * g[t];
    }
    Kernels k;
    for (int t = 0; t < TAPS; t++) {
        double x = t - RADIUS;
        k.g[t] = (float)g[t];
        k.d1[t] = (float)(x * g[t] / m2);
        k.d2[t] = (float)((x * x - m2) * g[t] / ((m4 - m2 * m2) / 2));
    }
    return k;
}

/* Half-sample symmetric border (abc|cba): no artificial edge at the border. */
static int mirror(int i, int n) {
    int period = 2 * n;
    i %= period;
    if (i < 0) i += period;
    return i < n ? i : period - 1 - i;
}

/* out = in correlated with k along x (rows of w pixels). */
static void filter_x(const float *in, int h, int w, const float *k, float *out) {
    for (int y = 0; y < h; y++) {
        const float *row = in + (size_t)y * w;
        for (int x = 0; x < w; x++) {
            float acc = 0;
            if (x >= RADIUS && x + RADIUS < w)
                for (int t = 0; t < TAPS; t++) acc += k[t] * row[x + t - RADIUS];
            else
                for (int t = 0; t < TAPS; t++) acc += k[t] * row[mirror(x + t - RADIUS, w)];
            out[(size_t)y * w + x] = acc;
        }
    }
}

/* out = in correlated with k along y. */
static void filter_y(const float *in, int h, int w, const float *k, float *out) {
    for (int y = 0; y < h; y++) {
        float *dst = out + (size_t)y * w;
        for (int x = 0; x < w; x++) dst[x] = 0;
        for (int t = 0; t < TAPS; t++) {
            const float *src = in + (size_t)mirror(y + t - RADIUS, h) * w;
            for (int x = 0; x < w; x++) dst[x] += k[t] * src[x];
        }
    }
}

/* Triangular pooling window of output cell i (cells of c pixels, n pixels in
 * all): weight 1 - |p - centre| / c on the pixels p within c of the cell's
 * centre that lie in the image. Returns the first pixel and the count. */
static int window(int i, int c, int n, float *weights, int *first) {
    double centre = c * i + (c - 1) / 2.0;
    int lo = (int)floor(centre - c) + 1, hi = (int)ceil(centre + c) - 1, count = 0;
    if (lo < 0) lo = 0;
    if (hi > n - 1) hi = n - 1;
    *first = lo;
    for (int p = lo; p <= hi; p++) weights[count++] = (float)(1 - fabs(p - centre) / c);
    return count;
}

enum { MAX_WINDOW = 2 * FILTERBANK_STRIDE };

static float largest(const float *v, int n) {
    float m = 0;
    for (int k = 0; k < n; k++) m = v[k] > m ? v[k] : m;
    return m;
}

/* Pools plane (h, w) into (oh, ow) cells of c pixels: the window-weighted mean,
 * or, when `take_max` (for non-negative planes), the maximum of weight x value
 * over the window divided by the largest weight (so a constant plane pools to
 * itself either way). */
static void pool(const float *plane, int h, int w, int c, int oh, int ow, bool take_max,
                 float *out) {
    float wy[MAX_WINDOW], wx[MAX_WINDOW];
    for (int i = 0; i < oh; i++) {
        int y0, ny = window(i, c, h, wy, &y0);
        for (int j = 0; j < ow; j++) {
            int x0, nx = window(j, c, w, wx, &x0);
            double acc = 0, norm = 0;
            for (int a = 0; a < ny; a++) {
                const float *row = plane + (size_t)(y0 + a) * w + x0;
                for (int b = 0; b < nx; b++) {
                    double v = wy[a] * wx[b];
                    if (take_max) {
                        if (v * row[b] > acc) acc = v * row[b];
                    } else {
                        acc += v * row[b];
                        norm += v;
                    }
                }
            }
            if (take_max) norm = (double)largest(wy, ny) * largest(wx, nx);
            out[i * ow + j] = (float)(acc / norm);
        }
    }
}

/* Averages 2x2 pixels (the last row/column alone when the size is odd). */
static void halve(const float *in, int h, int w, float *out) {
    int oh = (h + 1) / 2, ow = (w + 1) / 2;
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++) {
            float sum = 0;
            int count = 0;
            for (int dy = 0; dy < 2; dy++)
                for (int dx = 0; dx < 2; dx++)
                    if (2 * y + dy < h && 2 * x + dx < w) {
                        sum += in[(size_t)(2 * y + dy) * w + 2 * x + dx];
                        count++;
                    }
            out[(size_t)y * ow + x] = sum / count;
        }
}

enum {
    SMOOTH_L,
    SMOOTH_O1,
    SMOOTH_O2,
    GRAD2,
    ORIENT_D,
    ORIENT_X,
    EIG_SMALL2,
    EIG_LARGE2,
    COLOUR2,
    EIG_LARGE,
    QUANTITIES
};

/* The channels of one scale from the opponent planes (3, h, w), written to
 * out: (3 + 7, oh, ow) with the colour means when `colour`, else (7, oh, ow).
 * `work` holds 13 + QUANTITIES planes of h * w floats. */
static void scale_channels(const float *opp, int h, int w, int cell, float noise, bool colour,
                           int oh, int ow, const Kernels *k, float *work, float *out) {
    const size_t hw = (size_t)h * w;
    float *hx = work;         /* horizontal passes: L by g, d1, d2; O1, O2 by g, d1 */
    float *v = work + 7 * hw; /* vertical: Ls Lx Ly Lxx Lyy Lxy; reused for O1, O2 */
    float *q = work + 13 * hw;
    const float *L = opp, *O1 = opp + hw, *O2 = opp + 2 * hw;
    filter_x(L, h, w, k->g, hx);
    filter_x(L, h, w, k->d1, hx + hw);
    filter_x(L, h, w, k->d2, hx + 2 * hw);
    filter_x(O1, h, w, k->g, hx + 3 * hw);
    filter_x(O1, h, w, k->d1, hx + 4 * hw);
    filter_x(O2, h, w, k->g, hx + 5 * hw);
    filter_x(O2, h, w, k->d1, hx + 6 * hw);
    float *Ls = v, *Lx = v + hw, *Ly = v + 2 * hw, *Lxx = v + 3 * hw, *Lyy = v + 4 * hw,
          *Lxy = v + 5 * hw;
    filter_y(hx, h, w, k->g, Ls);
    filter_y(hx + hw, h, w, k->g, Lx);
    filter_y(hx, h, w, k->d1, Ly);
    filter_y(hx + 2 * hw, h, w, k->g, Lxx);
    filter_y(hx, h, w, k->d2, Lyy);
    filter_y(hx + hw, h, w, k->d1, Lxy);
    for (size_t p = 0; p < hw; p++) {
        /* Hessian eigenvalues (trace +- gap) / 2; their magnitudes, larger and
         * smaller, are (|trace| + gap) / 2 and ||trace| - gap| / 2. */
        float gx = Lx[p], gy = Ly[p], trace = fabsf(Lxx[p] + Lyy[p]), diff = Lxx[p] - Lyy[p];
        float gap = sqrtf(diff * diff + 4 * Lxy[p] * Lxy[p]);
        float large = (trace + gap) / 2, small = fabsf(trace - gap) / 2;
        q[SMOOTH_L * hw + p] = Ls[p];
        q[GRAD2 * hw + p] = gx * gx + gy * gy;
        q[ORIENT_D * hw + p] = gx * gx - gy * gy;
        q[ORIENT_X * hw + p] = 2 * gx * gy;
        q[EIG_SMALL2 * hw + p] = small * small;
        q[EIG_LARGE2 * hw + p] = large * large;
        q[EIG_LARGE * hw + p] = large;
        q[COLOUR2 * hw + p] = 0;
    }
    for (int c = 0; c < 2; c++) { /* O1, O2: smoothed value and gradient energy */
        float *Os = v, *Ox = v + hw, *Oy = v + 2 * hw;
        filter_y(hx + (3 + 2 * c) * hw, h, w, k->g, Os);
        filter_y(hx + (4 + 2 * c) * hw, h, w, k->g, Ox);
        filter_y(hx + (3 + 2 * c) * hw, h, w, k->d1, Oy);
        for (size_t p = 0; p < hw; p++) {
            q[(SMOOTH_O1 + c) * hw + p] = Os[p];
            q[COLOUR2 * hw + p] += Ox[p] * Ox[p] + Oy[p] * Oy[p];
        }
    }
    const size_t ohw = (size_t)oh * ow;
    float *pooled = work; /* the horizontal passes are no longer needed */
    for (int j = 0; j < QUANTITIES; j++)
        pool(q + j * hw, h, w, cell, oh, ow, j == EIG_LARGE, pooled + j * ohw);
    const float e = noise, e2 = noise * noise;
    for (size_t p = 0; p < ohw; p++) {
        const float *P = pooled + p;
        float grad2 = P[GRAD2 * ohw], *o = out + p;
        if (colour) {
            o[0] = P[SMOOTH_L * ohw];
            o[ohw] = P[SMOOTH_O1 * ohw];
            o[2 * ohw] = P[SMOOTH_O2 * ohw];
            o += 3 * ohw;
        }
        o[0] = log1pf(sqrtf(grad2) / e) - LOG_SHIFT;
        o[1 * ohw] = P[ORIENT_D * ohw] / (grad2 + e2);
        o[2 * ohw] = P[ORIENT_X * ohw] / (grad2 + e2);
        o[3 * ohw] = log1pf(sqrtf(P[EIG_SMALL2 * ohw]) / e) - LOG_SHIFT;
        o[4 * ohw] = log1pf(sqrtf(P[EIG_LARGE2 * ohw]) / e) - LOG_SHIFT;
        o[5 * ohw] = log1pf(sqrtf(P[COLOUR2 * ohw]) / e) - LOG_SHIFT;
        o[6 * ohw] = log1pf(P[EIG_LARGE * ohw] / e) - LOG_SHIFT;
    }
}

/* All channels of one image (3, H, W) into out (C, oh, ow); false when out of memory. */
static bool image_channels(const float *img, int H, int W, int oh, int ow, const Kernels *k,
                           float *out) {
    const size_t HW = (size_t)H * W;
    float *opp = malloc(sizeof(float) * 3 * HW), *half = malloc(sizeof(float) * 3 * HW);
    float *work = malloc(sizeof(float) * (13 + QUANTITIES) * HW);
    if (!opp || !half || !work) {
        free(opp), free(half), free(work);
        return false;
    }
    const float r3 = 1 / sqrtf(3), r2 = 1 / sqrtf(2), r6 = 1 / sqrtf(6);
    for (size_t p = 0; p < HW; p++) {
        float r = img[p], g = img[HW + p], b = img[2 * HW + p];
        opp[p] = (r + g + b) * r3;
        opp[HW + p] = (r - g) * r2;
        opp[2 * HW + p] = (r + g - 2 * b) * r6;
    }
    int h = H, w = W;
    for (int s = 0; s < FILTERBANK_SCALES; s++) {
        if (s > 0) { /* next scale: average 2x2 pixels of each opponent plane */
            int nh = (h + 1) / 2, nw = (w + 1) / 2;
            for (int c = 0; c < 3; c++)
                halve(opp + (size_t)c * h * w, h, w, half + (size_t)c * nh * nw);
            memcpy(opp, half, sizeof(float) * 3 * (size_t)nh * nw);
            h = nh, w = nw;
        }
        const int first = s == 0 ? 0 : FILTERBANK_COLOUR + s * FILTERBANK_PER_SCALE;
        scale_channels(opp, h, w, FILTERBANK_STRIDE >> s, FILTERBANK_NOISE_FLOOR / (float)(1 << s),
                       s == 0, oh, ow, k, work, out + (size_t)first * oh * ow);
    }
    free(opp), free(half), free(work);
    return true;
}

Tensor *filterbank_forward(const Tensor *x) {
    char s[64];
    if (x->ndim != 4 || x->shape[1] != 3 || x->shape[2] < FILTERBANK_STRIDE ||
        x->shape[3] < FILTERBANK_STRIDE) {
        hg_fail(HG_ERR_SHAPE, "filterbank: input %s, expected (N, 3, H, W) with H, W >= %d",
                tensor_shape_str(x, s, sizeof s), FILTERBANK_STRIDE);
        return NULL;
    }
    const int64_t n = x->shape[0], H = x->shape[2], W = x->shape[3];
    const int64_t oh = (H + FILTERBANK_STRIDE - 1) / FILTERBANK_STRIDE,
                  ow = (W + FILTERBANK_STRIDE - 1) / FILTERBANK_STRIDE;
    Tensor *in = tensor_contiguous(x);
    Tensor *out = in ? tensor_empty(SHAPE(n, FILTERBANK_CHANNELS, oh, ow)) : NULL;
    if (!out) {
        tensor_free(in);
        return NULL;
    }
    const Kernels k = make_kernels();
    const float *src = tensor_data(in);
    float *dst = tensor_data(out);
    int failed = 0;
#pragma omp parallel for if (n > 1) reduction(| : failed)
    for (int64_t b = 0; b < n; b++)
        failed |= !image_channels(src + b * 3 * H * W, (int)H, (int)W, (int)oh, (int)ow, &k,
                                  dst + b * FILTERBANK_CHANNELS * oh * ow);
    tensor_free(in);
    if (failed) {
        tensor_free(out);
        hg_fail(HG_ERR_NOMEM, "filterbank: out of memory for input %s",
                tensor_shape_str(x, s, sizeof s));
        return NULL;
    }
    return out;
}
