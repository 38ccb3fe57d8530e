/* Max, average, adaptive-average and global-average pooling: forward/backward
 * pairs over NCHW planes and their tape wrappers (see pool.h). */
#include "nn/pool.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nchw_check.h"

#define POOL_PARALLEL_MIN (1 << 15)

typedef struct PoolGeom {
    int64_t n, c, h, w, oh, ow;
    int kh, kw, sh, sw, ph, pw;
    bool exclude_pad;
} PoolGeom;

Pool2dSpec pool2d_spec(int kernel, int stride, int padding) {
    Pool2dSpec s = {kernel, kernel, stride, stride, padding, padding, false, false};
    return s;
}

/* PyTorch's pooling_output_shape: floor or ceil division, and with ceil_mode the
 * last window must start inside the input or its left padding. */
static int64_t pooled_size(int64_t in, int k, int s, int pad, bool ceil_mode) {
    int64_t num = in + 2 * (int64_t)pad - k + (ceil_mode ? s - 1 : 0);
    int64_t out = (num >= 0 ? num / s : -((-num + s - 1) / s)) + 1;
    if (ceil_mode && (out - 1) * s >= in + pad) out--;
    return out;
}

static hg_status resolve_pool(const char *op, int64_t h, int64_t w, const Pool2dSpec *spec,
                              PoolGeom *g) {
    if (!spec) return hg_fail(HG_ERR_ARG, "%s: spec is NULL", op);
    g->kh = spec->kernel_h;
    g->kw = spec->kernel_w;
    g->sh = spec->stride_h > 0 ? spec->stride_h : spec->kernel_h;
    g->sw = spec->stride_w > 0 ? spec->stride_w : spec->kernel_w;
    g->ph = spec->pad_h;
    g->pw = spec->pad_w;
    g->exclude_pad = spec->exclude_pad;
    if (g->kh < 1 || g->kw < 1)
        return hg_fail(HG_ERR_ARG, "%s: kernel %dx%d must be positive", op, g->kh, g->kw);
    if (g->ph < 0 || g->pw < 0 || g->ph > g->kh / 2 || g->pw > g->kw / 2)
        return hg_fail(HG_ERR_ARG,
                       "%s: padding (%d,%d) must be >= 0 and at most half the kernel %dx%d", op,
                       g->ph, g->pw, g->kh, g->kw);
    g->oh = pooled_size(h, g->kh, g->sh, g->ph, spec->ceil_mode);
    g->ow = pooled_size(w, g->kw, g->sw, g->pw, spec->ceil_mode);
    if (g->oh < 1 || g->ow < 1)
        return hg_fail(HG_ERR_SHAPE,
                       "%s: input %lldx%lld is too small for kernel %dx%d (padding %d,%d)", op,
                       (long long)h, (long long)w, g->kh, g->kw, g->ph, g->pw);
    return HG_OK;
}

hg_status pool2d_output_size(int64_t h, int64_t w, const Pool2dSpec *spec, int64_t *oh,
                             int64_t *ow) {
    PoolGeom g = {0};
    hg_status st = resolve_pool("pool2d", h, w, spec, &g);
    if (st != HG_OK) return st;
    *oh = g.oh;
    *ow = g.ow;
    return HG_OK;
}

static hg_status pool_geometry(const char *op, const Tensor *x, const Pool2dSpec *spec,
                               PoolGeom *g) {
    hg_status st = nchw_check_input(op, x);
    if (st != HG_OK) return st;
    g->n = x->shape[0];
    g->c = x->shape[1];
    g->h = x->shape[2];
    g->w = x->shape[3];
    return resolve_pool(op, g->h, g->w, spec, g);
}

static hg_status check_grad_shape(const char *op, const Tensor *dout, int64_t n, int64_t c,
                                  int64_t oh, int64_t ow) {
    char s[96];
    if (!dout || dout->ndim != 4 || dout->shape[0] != n || dout->shape[1] != c ||
        dout->shape[2] != oh || dout->shape[3] != ow)
        return hg_fail(HG_ERR_SHAPE, "%s: output gradient %s, expected [%lld,%lld,%lld,%lld]", op,
                       dout ? tensor_shape_str(dout, s, sizeof s) : "NULL", (long long)n,
                       (long long)c, (long long)oh, (long long)ow);
    return HG_OK;
}

/* Window rows [*h0, *h1) and columns [*w0, *w1) of output (y, x), clipped to the
 * input; *area (may be NULL) is the window clipped to the padded map. */
static void window(const PoolGeom *g, int64_t y, int64_t x, int64_t *h0, int64_t *h1, int64_t *w0,
                   int64_t *w1, int64_t *area) {
    int64_t hs = y * g->sh - g->ph, ws = x * g->sw - g->pw;
    int64_t he = hs + g->kh, we = ws + g->kw;
    if (area) {
        int64_t hp = he < g->h + g->ph ? he : g->h + g->ph;
        int64_t wp = we < g->w + g->pw ? we : g->w + g->pw;
        *area = (hp - hs) * (wp - ws);
    }
    *h0 = hs > 0 ? hs : 0;
    *w0 = ws > 0 ? ws : 0;
    *h1 = he < g->h ? he : g->h;
    *w1 = we < g->w ? we : g->w;
}

/* Index (in the plane) of the window's maximum: the first in row-major order,
 * or the last NaN, as PyTorch's CPU kernel. -1 for an empty window. */
static int64_t window_argmax(const float *plane, const PoolGeom *g, int64_t y, int64_t x) {
    int64_t h0, h1, w0, w1;
    window(g, y, x, &h0, &h1, &w0, &w1, NULL);
    if (h0 >= h1 || w0 >= w1) return -1;
    int64_t best = h0 * g->w + w0;
    float best_v = -INFINITY;
    for (int64_t i = h0; i < h1; i++)
        for (int64_t j = w0; j < w1; j++) {
            float v = plane[i * g->w + j];
            if (v > best_v || isnan(v)) {
                best_v = v;
                best = i * g->w + j;
            }
        }
    return best;
}

/* The divisor of output (y, x) and its in-image window. */
static int64_t avg_window(const PoolGeom *g, int64_t y, int64_t x, int64_t *h0, int64_t *h1,
                          int64_t *w0, int64_t *w1) {
    int64_t area;
    window(g, y, x, h0, h1, w0, w1, &area);
    if (*h0 >= *h1 || *w0 >= *w1) return 0;
    return g->exclude_pad ? (*h1 - *h0) * (*w1 - *w0) : area;
}

/* Output (y, x) of one average-pooled plane: the window's mean. */
static float pooled_mean(const float *plane, const PoolGeom *g, int64_t y, int64_t x) {
    int64_t h0, h1, w0, w1, div = avg_window(g, y, x, &h0, &h1, &w0, &w1);
    float s = 0;
    for (int64_t i = h0; i < h1; i++)
        for (int64_t j = w0; j < w1; j++) s += plane[i * g->w + j];
    return div ? s / (float)div : 0.0f;
}

/* Adds the gradient d of output (y, x) to one plane of dx: all of it to the
 * window's argmax in `plane` (max), or d / divisor to every window entry. */
static void pooled_grad(float *dx, const float *plane, const PoolGeom *g, int64_t y, int64_t x,
                        float d, bool max) {
    if (max) {
        int64_t k = window_argmax(plane, g, y, x);
        if (k >= 0) dx[k] += d;
        return;
    }
    int64_t h0, h1, w0, w1, div = avg_window(g, y, x, &h0, &h1, &w0, &w1);
    if (!div) return;
    float v = d / (float)div;
    for (int64_t i = h0; i < h1; i++)
        for (int64_t j = w0; j < w1; j++) dx[i * g->w + j] += v;
}

/* The window update of window_argmax on values only: v replaces the running
 * maximum when larger or NaN, so the result is the same float (NaN when the
 * window holds one). */
static inline float max_step(float best, float v) {
    return (v > best || v != v) ? v : best;
}

/* o updated with input row r over the in-image part of output x's window (the
 * columns near the edges, whose windows are clipped). */
static inline float clipped_row_max(float o, const float *r, const PoolGeom *g, int64_t x) {
    int64_t ws = x * g->sw - g->pw;
    int64_t w0 = ws > 0 ? ws : 0, w1 = ws + g->kw < g->w ? ws + g->kw : g->w;
    for (int64_t j = w0; j < w1; j++) o = max_step(o, r[j]);
    return o;
}

/* Output row y of one max-pooled plane. Every window row updates the outputs
 * in row-major tap order, as window_argmax visits them; the columns whose
 * windows lie inside the input (most of them) skip the clipping. */
static void maxpool_row(float *o, const float *plane, const PoolGeom *g, int64_t y) {
    int64_t hs = y * g->sh - g->ph;
    int64_t h0 = hs > 0 ? hs : 0, h1 = hs + g->kh < g->h ? hs + g->kh : g->h;
    /* x in [xa, xb): x*sw - pw >= 0 and x*sw - pw + kw <= w */
    int64_t xa = (g->pw + g->sw - 1) / g->sw;
    int64_t xb = g->w + g->pw - g->kw >= 0 ? (g->w + g->pw - g->kw) / g->sw + 1 : 0;
    if (xa > g->ow) xa = g->ow;
    if (xb > g->ow) xb = g->ow;
    if (xb < xa) xb = xa;
    for (int64_t x = 0; x < g->ow; x++) o[x] = -INFINITY;
    for (int64_t i = h0; i < h1; i++) {
        const float *r = plane + i * g->w;
        for (int64_t x = 0; x < xa; x++) o[x] = clipped_row_max(o[x], r, g, x);
        if (xb > xa) {
            const float *c = r + xa * g->sw - g->pw;
            if (g->kw == 3 && g->sw == 2) { /* the ResNet stem pool, unrolled */
                for (int64_t k = 0; k < xb - xa; k++) {
                    float m = max_step(o[xa + k], c[2 * k]);
                    m = max_step(m, c[2 * k + 1]);
                    o[xa + k] = max_step(m, c[2 * k + 2]);
                }
            } else {
                for (int64_t k = 0; k < xb - xa; k++, c += g->sw) {
                    float m = o[xa + k];
                    for (int j = 0; j < g->kw; j++) m = max_step(m, c[j]);
                    o[xa + k] = m;
                }
            }
        }
        for (int64_t x = xb; x < g->ow; x++) o[x] = clipped_row_max(o[x], r, g, x);
    }
}

/* Forward of max (max = true) or average pooling. */
static Tensor *pool_forward(const char *op, const Tensor *x, const Pool2dSpec *spec, bool max) {
    PoolGeom g;
    if (pool_geometry(op, x, spec, &g) != HG_OK) return NULL;
    Tensor *xc = tensor_contiguous(x);
    Tensor *out = xc ? tensor_empty(SHAPE(g.n, g.c, g.oh, g.ow)) : NULL;
    if (out) {
        const float *px = tensor_data(xc);
        float *po = tensor_data(out);
        int64_t hw = g.h * g.w, ohw = g.oh * g.ow, rows = g.n * g.c * g.oh;
        if (max) {
            /* Threads split the output rows of all planes. */
#pragma omp parallel for schedule(static) if (rows * g.ow * g.kh * g.kw > POOL_PARALLEL_MIN)
            for (int64_t r = 0; r < rows; r++)
                maxpool_row(po + r * g.ow, px + (r / g.oh) * hw, &g, r % g.oh);
        } else {
#pragma omp parallel for schedule(static) if (rows * g.ow * g.kh * g.kw > POOL_PARALLEL_MIN)
            for (int64_t q = 0; q < g.n * g.c; q++)
                for (int64_t y = 0; y < g.oh; y++)
                    for (int64_t x = 0; x < g.ow; x++)
                        po[q * ohw + y * g.ow + x] = pooled_mean(px + q * hw, &g, y, x);
        }
    }
    tensor_free(xc);
    return out;
}

/* Backward of max (max = true: needs x's values) or average pooling. */
static Tensor *pool_backward(const char *op, const Tensor *dout, const Tensor *x,
                             const Pool2dSpec *spec, bool max) {
    PoolGeom g;
    if (pool_geometry(op, x, spec, &g) != HG_OK) return NULL;
    if (check_grad_shape(op, dout, g.n, g.c, g.oh, g.ow) != HG_OK) return NULL;
    Tensor *xc = max ? tensor_contiguous(x) : NULL, *dc = tensor_contiguous(dout);
    Tensor *dx = (xc || !max) && dc ? tensor_zeros(4, x->shape) : NULL;
    if (dx) {
        const float *px = xc ? tensor_data(xc) : NULL, *pd = tensor_data(dc);
        float *pdx = tensor_data(dx);
        int64_t hw = g.h * g.w, ohw = g.oh * g.ow;
        /* Threads own planes, so overlapping windows do not race. */
#pragma omp parallel for schedule(static) if (g.n * g.c * ohw * g.kh * g.kw > POOL_PARALLEL_MIN)
        for (int64_t q = 0; q < g.n * g.c; q++)
            for (int64_t y = 0; y < g.oh; y++)
                for (int64_t x = 0; x < g.ow; x++)
                    pooled_grad(pdx + q * hw, px ? px + q * hw : NULL, &g, y, x,
                                pd[q * ohw + y * g.ow + x], max);
    }
    tensor_free(xc);
    tensor_free(dc);
    return dx;
}

Tensor *maxpool2d_forward(const Tensor *x, const Pool2dSpec *spec) {
    return pool_forward("maxpool2d", x, spec, true);
}

Tensor *maxpool2d_backward(const Tensor *dout, const Tensor *x, const Pool2dSpec *spec) {
    return pool_backward("maxpool2d_backward", dout, x, spec, true);
}

Tensor *avgpool2d_forward(const Tensor *x, const Pool2dSpec *spec) {
    return pool_forward("avgpool2d", x, spec, false);
}

Tensor *avgpool2d_backward(const Tensor *dout, const Tensor *x, const Pool2dSpec *spec) {
    return pool_backward("avgpool2d_backward", dout, x, spec, false);
}

/* Adaptive windows: [floor(o*in/out), ceil((o+1)*in/out)). */
static int64_t adaptive_start(int64_t o, int64_t in, int64_t out) {
    return o * in / out;
}
static int64_t adaptive_end(int64_t o, int64_t in, int64_t out) {
    return ((o + 1) * in + out - 1) / out;
}

/* Shared by forward (dx == NULL: out = means of x) and backward (x == NULL:
 * dx += dout / count over every window). */
static void adaptive_pass(const float *x, float *out, const float *dout, float *dx, int64_t planes,
                          int64_t h, int64_t w, int64_t oh, int64_t ow) {
#pragma omp parallel for schedule(static) if (planes * h * w > POOL_PARALLEL_MIN)
    for (int64_t q = 0; q < planes; q++)
        for (int64_t y = 0; y < oh; y++) {
            int64_t h0 = adaptive_start(y, h, oh), h1 = adaptive_end(y, h, oh);
            for (int64_t x0 = 0; x0 < ow; x0++) {
                int64_t w0 = adaptive_start(x0, w, ow), w1 = adaptive_end(x0, w, ow);
                float count = (float)((h1 - h0) * (w1 - w0));
                int64_t o = q * oh * ow + y * ow + x0;
                if (x) {
                    float s = 0;
                    for (int64_t i = h0; i < h1; i++)
                        for (int64_t j = w0; j < w1; j++) s += x[q * h * w + i * w + j];
                    out[o] = s / count;
                } else {
                    float v = dout[o] / count;
                    for (int64_t i = h0; i < h1; i++)
                        for (int64_t j = w0; j < w1; j++) dx[q * h * w + i * w + j] += v;
                }
            }
        }
}

Tensor *adaptive_avgpool2d_forward(const Tensor *x, int64_t oh, int64_t ow) {
    if (nchw_check_input("adaptive_avgpool2d", x) != HG_OK) return NULL;
    if (oh < 1 || ow < 1 || x->shape[2] < 1 || x->shape[3] < 1) {
        char s[96];
        hg_fail(HG_ERR_ARG, "adaptive_avgpool2d: output %lldx%lld from input %s", (long long)oh,
                (long long)ow, tensor_shape_str(x, s, sizeof s));
        return NULL;
    }
    Tensor *xc = tensor_contiguous(x);
    Tensor *out = xc ? tensor_empty(SHAPE(x->shape[0], x->shape[1], oh, ow)) : NULL;
    if (out)
        adaptive_pass(tensor_data(xc), tensor_data(out), NULL, NULL, x->shape[0] * x->shape[1],
                      x->shape[2], x->shape[3], oh, ow);
    tensor_free(xc);
    return out;
}

Tensor *adaptive_avgpool2d_backward(const Tensor *dout, const Tensor *x) {
    const char *op = "adaptive_avgpool2d_backward";
    if (nchw_check_input(op, x) != HG_OK || nchw_check_input(op, dout) != HG_OK) return NULL;
    if (check_grad_shape(op, dout, x->shape[0], x->shape[1], dout->shape[2], dout->shape[3]) !=
        HG_OK)
        return NULL;
    Tensor *dc = tensor_contiguous(dout);
    Tensor *dx = dc ? tensor_zeros(4, x->shape) : NULL;
    if (dx)
        adaptive_pass(NULL, NULL, tensor_data(dc), tensor_data(dx), x->shape[0] * x->shape[1],
                      x->shape[2], x->shape[3], dout->shape[2], dout->shape[3]);
    tensor_free(dc);
    return dx;
}

Tensor *global_avgpool2d_forward(const Tensor *x) {
    return adaptive_avgpool2d_forward(x, 1, 1);
}

Tensor *global_avgpool2d_backward(const Tensor *dout, const Tensor *x) {
    return adaptive_avgpool2d_backward(dout, x);
}

/* ---- tape wrappers: saved[0] = x; the spec in ints[0..7] ---- */

static void spec_to_ints(Var *out, const Pool2dSpec *s) {
    int64_t v[8] = {s->kernel_h, s->kernel_w, s->stride_h,  s->stride_w,
                    s->pad_h,    s->pad_w,    s->ceil_mode, s->exclude_pad};
    memcpy(out->ints, v, sizeof v);
}

static Pool2dSpec spec_from_ints(const Var *out) {
    const int64_t *v = out->ints;
    Pool2dSpec s = {(int)v[0], (int)v[1], (int)v[2], (int)v[3],
                    (int)v[4], (int)v[5], v[6] != 0, v[7] != 0};
    return s;
}

static hg_status maxpool_backward_fn(Var *out) {
    Pool2dSpec s = spec_from_ints(out);
    return var_accumulate_grad(out->inputs[0], maxpool2d_backward(out->grad, out->saved[0], &s));
}

static hg_status avgpool_backward_fn(Var *out) {
    Pool2dSpec s = spec_from_ints(out);
    return var_accumulate_grad(out->inputs[0], avgpool2d_backward(out->grad, out->saved[0], &s));
}

static hg_status adaptive_backward_fn(Var *out) {
    return var_accumulate_grad(out->inputs[0],
                               adaptive_avgpool2d_backward(out->grad, out->saved[0]));
}

/* Records y for x; keeps x (and the spec) only when a backward will run. */
static Var *record_pool(Tape *tape, const char *op, Tensor *y, Var *x, BackwardFn fn,
                        const Pool2dSpec *spec) {
    Var *out = tape_record(tape, op, y, 1, &x, fn);
    if (!out || !out->requires_grad) return out;
    if (spec) spec_to_ints(out, spec);
    out->saved[0] = tensor_ref(x->value);
    return out->saved[0] ? out : NULL;
}

Var *ag_maxpool2d(Tape *tape, Var *x, const Pool2dSpec *spec) {
    if (!x) return NULL;
    Tensor *y = maxpool2d_forward(x->value, spec);
    return y ? record_pool(tape, "maxpool2d", y, x, maxpool_backward_fn, spec) : NULL;
}

Var *ag_avgpool2d(Tape *tape, Var *x, const Pool2dSpec *spec) {
    if (!x) return NULL;
    Tensor *y = avgpool2d_forward(x->value, spec);
    return y ? record_pool(tape, "avgpool2d", y, x, avgpool_backward_fn, spec) : NULL;
}

Var *ag_adaptive_avgpool2d(Tape *tape, Var *x, int64_t oh, int64_t ow) {
    if (!x) return NULL;
    Tensor *y = adaptive_avgpool2d_forward(x->value, oh, ow);
    return y ? record_pool(tape, "adaptive_avgpool2d", y, x, adaptive_backward_fn, NULL) : NULL;
}

Var *ag_global_avgpool2d(Tape *tape, Var *x) {
    return ag_adaptive_avgpool2d(tape, x, 1, 1);
}
