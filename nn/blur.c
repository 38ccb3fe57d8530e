/* Separable Gaussian blur with scipy.ndimage's 'reflect' border: forward,
 * its adjoint, and the tape wrapper (see blur.h). */
#include "nn/blur.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BLUR_PARALLEL_MIN (1 << 14)

int gaussian_radius(double sigma, double truncate) {
    if (!(sigma > 1e-15)) return 0; /* scipy skips axes with sigma <= 1e-15 */
    return (int)(truncate * sigma + 0.5);
}

void gaussian_kernel1d(double sigma, int radius, double *taps) {
    if (radius == 0) {
        taps[0] = 1.0;
        return;
    }
    double sum = 0;
    for (int t = -radius; t <= radius; t++) {
        taps[t + radius] = exp(-0.5 / (sigma * sigma) * (double)t * (double)t);
        sum += taps[t + radius];
    }
    for (int t = 0; t <= 2 * radius; t++) taps[t] /= sum;
}

/* Index of entry i of the reflected extension of a line of n entries:
 * period 2n, ... d c b a | a b c d | d c b a ... */
static int64_t reflect(int64_t i, int64_t n) {
    if (n == 1) return 0;
    int64_t p = 2 * n;
    i %= p;
    if (i < 0) i += p;
    return i < n ? i : p - 1 - i;
}

/* Forward of one h x w plane; tmp (h*w floats) holds the vertical pass rounded
 * to float as scipy's float32 output array does between the two axes. */
static void blur_plane(float *out, const float *x, int64_t h, int64_t w, const double *k, int r,
                       float *tmp, double *acc, double *ext) {
    for (int64_t y = 0; y < h; y++) {
        for (int64_t j = 0; j < w; j++) acc[j] = 0;
        for (int t = 0; t <= 2 * r; t++) {
            const float *row = x + reflect(y + t - r, h) * w;
            for (int64_t j = 0; j < w; j++) acc[j] += k[t] * row[j];
        }
        for (int64_t j = 0; j < w; j++) tmp[y * w + j] = (float)acc[j];
    }
    for (int64_t y = 0; y < h; y++) {
        const float *row = tmp + y * w;
        for (int64_t j = 0; j < w + 2 * r; j++) ext[j] = row[reflect(j - r, w)];
        for (int64_t j = 0; j < w; j++) {
            double s = 0;
            for (int t = 0; t <= 2 * r; t++) s += k[t] * ext[j + t];
            out[y * w + j] = (float)s;
        }
    }
}

/* The adjoint of blur_plane: dx = V^T H^T dout. gtmp and dacc hold h*w doubles. */
static void blur_plane_adjoint(float *dx, const float *dout, int64_t h, int64_t w, const double *k,
                               int r, double *gtmp, double *dacc, double *ext) {
    for (int64_t y = 0; y < h; y++) {
        const float *d = dout + y * w;
        for (int64_t j = 0; j < w + 2 * r; j++) ext[j] = 0;
        for (int64_t j = 0; j < w; j++)
            for (int t = 0; t <= 2 * r; t++) ext[j + t] += k[t] * d[j];
        double *g = gtmp + y * w;
        for (int64_t j = 0; j < w; j++) g[j] = 0;
        for (int64_t j = 0; j < w + 2 * r; j++) g[reflect(j - r, w)] += ext[j];
    }
    for (int64_t i = 0; i < h * w; i++) dacc[i] = 0;
    for (int64_t y = 0; y < h; y++)
        for (int t = 0; t <= 2 * r; t++) {
            double *dst = dacc + reflect(y + t - r, h) * w;
            const double *g = gtmp + y * w;
            for (int64_t j = 0; j < w; j++) dst[j] += k[t] * g[j];
        }
    for (int64_t i = 0; i < h * w; i++) dx[i] = (float)dacc[i];
}

static hg_status check_blur(const char *op, const Tensor *x, double sigma, double truncate) {
    char s[96];
    if (!x) return hg_fail(HG_ERR_ARG, "%s: input is NULL", op);
    if (x->ndim < 2)
        return hg_fail(HG_ERR_SHAPE, "%s: input %s needs at least 2 dims (H, W)", op,
                       tensor_shape_str(x, s, sizeof s));
    if (!(sigma >= 0) || !(truncate >= 0) || truncate * sigma > 1e6)
        return hg_fail(HG_ERR_ARG, "%s: sigma %g and truncate %g must be >= 0 and finite", op,
                       sigma, truncate);
    return HG_OK;
}

/* Runs the forward (adjoint = false) or the adjoint over every plane of src. */
static Tensor *run(const char *op, const Tensor *src, double sigma, double truncate, bool adjoint) {
    if (check_blur(op, src, sigma, truncate) != HG_OK) return NULL;
    int r = gaussian_radius(sigma, truncate);
    int64_t h = src->shape[src->ndim - 2], w = src->shape[src->ndim - 1];
    int64_t planes = h > 0 && w > 0 ? tensor_numel(src) / (h * w) : 0;
    double *k = malloc(sizeof(double) * (size_t)(2 * r + 1));
    Tensor *sc = tensor_contiguous(src);
    Tensor *out = sc && k ? tensor_empty(src->ndim, src->shape) : NULL;
    if (!k) hg_fail(HG_ERR_NOMEM, "%s: out of memory", op);
    int failed = 0;
    if (out) {
        gaussian_kernel1d(sigma, r, k);
        const float *ps = tensor_data(sc);
        float *po = tensor_data(out);
#pragma omp parallel for schedule(dynamic) if (planes * h * w * (2 * r + 1) > BLUR_PARALLEL_MIN)
        for (int64_t q = 0; q < planes; q++) {
            /* forward: acc = one row (w), tmp = the vertical pass (h*w floats);
             * adjoint: acc = two h*w planes of sums. */
            double *ext = malloc(sizeof(double) * (size_t)(w + 2 * r));
            double *acc = malloc(sizeof(double) * (size_t)(adjoint ? 2 * h * w : w));
            float *tmp = adjoint ? NULL : malloc(sizeof(float) * (size_t)(h * w));
            if (ext && acc && (adjoint || tmp)) {
                if (adjoint)
                    blur_plane_adjoint(po + q * h * w, ps + q * h * w, h, w, k, r, acc, acc + h * w,
                                       ext);
                else
                    blur_plane(po + q * h * w, ps + q * h * w, h, w, k, r, tmp, acc, ext);
            } else {
#pragma omp atomic write
                failed = 1;
            }
            free(ext);
            free(acc);
            free(tmp);
        }
    }
    if (failed) {
        hg_fail(HG_ERR_NOMEM, "%s: out of memory", op);
        tensor_free(out);
        out = NULL;
    }
    free(k);
    tensor_free(sc);
    return out;
}

Tensor *gaussian_blur2d_forward(const Tensor *x, double sigma, double truncate) {
    return run("gaussian_blur2d", x, sigma, truncate, false);
}

Tensor *gaussian_blur2d_backward(const Tensor *dout, double sigma, double truncate) {
    return run("gaussian_blur2d_backward", dout, sigma, truncate, true);
}

/* scalars: [0] sigma, [1] truncate. */
static hg_status blur_backward_fn(Var *out) {
    return var_accumulate_grad(
        out->inputs[0], gaussian_blur2d_backward(out->grad, out->scalars[0], out->scalars[1]));
}

Var *ag_gaussian_blur2d(Tape *tape, Var *x, double sigma, double truncate) {
    if (!x) return NULL;
    Var *out =
        tape_record(tape, "gaussian_blur2d", gaussian_blur2d_forward(x->value, sigma, truncate), 1,
                    &x, blur_backward_fn);
    if (!out) return NULL;
    out->scalars[0] = sigma;
    out->scalars[1] = truncate;
    return out;
}
