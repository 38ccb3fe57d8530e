/* conv2d entry points: shape checks, kernel dispatch, the general im2col + GEMM
 * kernel pair, and the autograd wrapper. The 1x1 and depthwise kernels live in
 * conv2d_1x1.c and conv2d_depthwise*.c. */
#include "nn/conv2d.h"

#include <stdlib.h>
#include <string.h>

#include "nn/conv2d_implicit.h"
#include "nn/conv2d_kernels.h"
#include "nn/padding.h"
#include "tensor/gemm.h"

/* ---- specs and geometry ---- */

Conv2dSpec conv2d_spec(int stride, int padding, int dilation, int groups) {
    Conv2dSpec s = {stride,  stride,  dilation, dilation, groups,
                    padding, padding, padding,  padding,  false};
    return s;
}

Conv2dSpec conv2d_spec_same(int stride, int dilation, int groups) {
    Conv2dSpec s = conv2d_spec(stride, 0, dilation, groups);
    s.tf_same = true;
    return s;
}

static int at_least_one(int v) {
    return v < 1 ? 1 : v;
}

/* Fills stride, dilation and padding of g from the spec for an h x w input. */
static hg_status resolve_spec(const char *op, int64_t h, int64_t w, int64_t kh, int64_t kw,
                              const Conv2dSpec *spec, Conv2dGeom *g) {
    if (!spec) return hg_fail(HG_ERR_ARG, "%s: spec is NULL", op);
    g->sh = at_least_one(spec->stride_h);
    g->sw = at_least_one(spec->stride_w);
    g->dh = at_least_one(spec->dilation_h);
    g->dw = at_least_one(spec->dilation_w);
    g->groups = at_least_one(spec->groups);
    if (spec->tf_same) {
        pad_same_tf(h, (int)kh, g->sh, g->dh, &g->pt, &g->pb);
        pad_same_tf(w, (int)kw, g->sw, g->dw, &g->pl, &g->pr);
    } else {
        g->pt = spec->pad_top;
        g->pb = spec->pad_bottom;
        g->pl = spec->pad_left;
        g->pr = spec->pad_right;
        if (g->pt < 0 || g->pb < 0 || g->pl < 0 || g->pr < 0)
            return hg_fail(HG_ERR_ARG,
                           "%s: padding (top %d, bottom %d, left %d, right %d) must be >= 0", op,
                           g->pt, g->pb, g->pl, g->pr);
    }
    int64_t span_h = (int64_t)g->dh * (kh - 1) + 1, span_w = (int64_t)g->dw * (kw - 1) + 1;
    int64_t ph = h + g->pt + g->pb, pw = w + g->pl + g->pr;
    if (kh < 1 || kw < 1 || ph < span_h || pw < span_w)
        return hg_fail(HG_ERR_SHAPE,
                       "%s: kernel %lldx%lld (dilation %d,%d) does not fit the padded input "
                       "%lldx%lld",
                       op, (long long)kh, (long long)kw, g->dh, g->dw, (long long)ph,
                       (long long)pw);
    g->oh = (ph - span_h) / g->sh + 1;
    g->ow = (pw - span_w) / g->sw + 1;
    return HG_OK;
}

hg_status conv2d_output_size(int64_t h, int64_t w, int64_t kh, int64_t kw, const Conv2dSpec *spec,
                             int64_t *oh, int64_t *ow) {
    Conv2dGeom g = {0};
    hg_status st = resolve_spec("conv2d", h, w, kh, kw, spec, &g);
    if (st != HG_OK) return st;
    *oh = g.oh;
    *ow = g.ow;
    return HG_OK;
}

hg_status conv2d_geometry(const char *op, const Tensor *x, const Tensor *w, const Conv2dSpec *spec,
                          Conv2dGeom *g) {
    char sx[96], sw[96];
    memset(g, 0, sizeof *g);
    if (!x || !w) return hg_fail(HG_ERR_ARG, "%s: input or weight is NULL", op);
    if (x->ndim != 4)
        return hg_fail(HG_ERR_SHAPE, "%s: input %s must be 4-d NCHW", op,
                       tensor_shape_str(x, sx, sizeof sx));
    if (w->ndim != 4)
        return hg_fail(HG_ERR_SHAPE, "%s: weight %s must be 4-d [out, in/groups, kh, kw]", op,
                       tensor_shape_str(w, sw, sizeof sw));
    tensor_shape_str(x, sx, sizeof sx);
    tensor_shape_str(w, sw, sizeof sw);
    g->n = x->shape[0];
    g->c_in = x->shape[1];
    g->h = x->shape[2];
    g->w = x->shape[3];
    g->c_out = w->shape[0];
    g->kh = w->shape[2];
    g->kw = w->shape[3];
    hg_status st = resolve_spec(op, g->h, g->w, g->kh, g->kw, spec, g);
    if (st != HG_OK) return st;
    if (g->c_out < 1 || g->c_out % g->groups != 0)
        return hg_fail(HG_ERR_SHAPE,
                       "%s: weight %s: %lld output channels do not split into %d groups", op, sw,
                       (long long)g->c_out, g->groups);
    if (w->shape[1] * g->groups != g->c_in)
        return hg_fail(
            HG_ERR_SHAPE,
            "%s: weight %s expects %lld input channels per group (%d groups), input has %s", op, sw,
            (long long)w->shape[1], g->groups, sx);
    return HG_OK;
}

/* ---- im2col + GEMM: the general kernel pair ---- */

/* Columns x of one output row whose tap at horizontal offset j*dw reads inside
 * the input: 0 <= x*sw - pl + j*dw < w, i.e. x in [*lo, *hi). */
static void valid_cols(const Conv2dGeom *g, int64_t j, int64_t *lo, int64_t *hi) {
    int64_t a = g->pl - j * g->dw; /* input column = x*sw - a */
    int64_t l = a <= 0 ? 0 : (a + g->sw - 1) / g->sw;
    int64_t b = g->w - 1 + a;
    int64_t h = b < 0 ? 0 : b / g->sw + 1;
    if (l > g->ow) l = g->ow;
    if (h > g->ow) h = g->ow;
    if (h < l) h = l;
    *lo = l;
    *hi = h;
}

/* col[(c*kh + i)*kw + j][(y - y0)*ow + x] = in[c][y*sh - pt + i*dh][x*sw - pl + j*dw]
 * (zero outside) for the cin_g channels at x and output rows y in [y0, y1). */
static void im2col(float *col, const float *x, int64_t cin_g, const Conv2dGeom *g, int64_t y0,
                   int64_t y1) {
    int64_t kk = g->kh * g->kw, rows = cin_g * kk, ncols = (y1 - y0) * g->ow;
#pragma omp parallel for schedule(static) if (rows * ncols > (1 << 15))
    for (int64_t r = 0; r < rows; r++) {
        int64_t c = r / kk, i = (r / g->kw) % g->kh, j = r % g->kw;
        int64_t lo, hi;
        valid_cols(g, j, &lo, &hi);
        int64_t a = g->pl - j * g->dw;
        float *dst = col + r * ncols;
        for (int64_t y = y0; y < y1; y++, dst += g->ow) {
            int64_t iy = y * g->sh - g->pt + i * g->dh;
            if (iy < 0 || iy >= g->h) {
                memset(dst, 0, sizeof(float) * (size_t)g->ow);
                continue;
            }
            const float *src = x + (c * g->h + iy) * g->w;
            for (int64_t k = 0; k < lo; k++) dst[k] = 0;
            if (g->sw == 1) {
                if (hi > lo) memcpy(dst + lo, src + (lo - a), sizeof(float) * (size_t)(hi - lo));
            } else {
                for (int64_t k = lo; k < hi; k++) dst[k] = src[k * g->sw - a];
            }
            for (int64_t k = hi; k < g->ow; k++) dst[k] = 0;
        }
    }
}

/* The adjoint of im2col: dx[c][iy][ix] += dcol[row][col] over every entry that
 * im2col read from (c, iy, ix). Threads own channels, so the sums do not race. */
static void col2im_add(float *dx, const float *dcol, int64_t cin_g, const Conv2dGeom *g, int64_t y0,
                       int64_t y1) {
    int64_t kk = g->kh * g->kw, ncols = (y1 - y0) * g->ow;
#pragma omp parallel for schedule(static) if (cin_g * kk * ncols > (1 << 15))
    for (int64_t c = 0; c < cin_g; c++) {
        for (int64_t i = 0; i < g->kh; i++) {
            for (int64_t j = 0; j < g->kw; j++) {
                int64_t lo, hi;
                valid_cols(g, j, &lo, &hi);
                int64_t a = g->pl - j * g->dw;
                const float *src = dcol + ((c * g->kh + i) * g->kw + j) * ncols;
                for (int64_t y = y0; y < y1; y++, src += g->ow) {
                    int64_t iy = y * g->sh - g->pt + i * g->dh;
                    if (iy < 0 || iy >= g->h) continue;
                    float *dst = dx + (c * g->h + iy) * g->w;
                    for (int64_t k = lo; k < hi; k++) dst[k * g->sw - a] += src[k];
                }
            }
        }
    }
}

/* Output rows per im2col chunk: bounds the column buffer to about 8 MB. */
static int64_t chunk_rows(const Conv2dGeom *g) {
    int64_t per_row = (g->c_in / g->groups) * g->kh * g->kw * g->ow;
    int64_t rows = ((int64_t)1 << 21) / (per_row > 0 ? per_row : 1);
    if (rows < 1) rows = 1;
    if (rows > g->oh) rows = g->oh;
    return rows;
}

static void fill_bias(float *out, const float *b, const Conv2dGeom *g) {
    int64_t hw = g->oh * g->ow, planes = g->n * g->c_out;
#pragma omp parallel for schedule(static) if (planes * hw > (1 << 16))
    for (int64_t p = 0; p < planes; p++) {
        float v = b ? b[p % g->c_out] : 0.0f;
        float *o = out + p * hw;
        for (int64_t k = 0; k < hw; k++) o[k] = v;
    }
}

hg_status conv2d_im2col_forward(float *out, const float *x, const float *w, const float *b,
                                const Conv2dGeom *g) {
    int64_t cin_g = g->c_in / g->groups, cout_g = g->c_out / g->groups;
    int64_t k = cin_g * g->kh * g->kw, ohw = g->oh * g->ow, step = chunk_rows(g);
    float *col = malloc(sizeof(float) * (size_t)(k * step * g->ow + 1)); /* + 1: never 0 */
    if (!col)
        return hg_fail(HG_ERR_NOMEM, "conv2d: no memory for a %lldx%lld column buffer",
                       (long long)k, (long long)(step * g->ow));
    if (b) fill_bias(out, b, g);
    for (int64_t n = 0; n < g->n; n++) {
        for (int64_t grp = 0; grp < g->groups; grp++) {
            const float *xg = x + (n * g->c_in + grp * cin_g) * g->h * g->w;
            const float *wg = w + grp * cout_g * k;
            float *og = out + (n * g->c_out + grp * cout_g) * ohw;
            for (int64_t y0 = 0; y0 < g->oh; y0 += step) {
                int64_t y1 = y0 + step < g->oh ? y0 + step : g->oh, ncols = (y1 - y0) * g->ow;
                im2col(col, xg, cin_g, g, y0, y1);
                /* out_g[:, chunk] (= bias) += W_g (cout_g x k) @ col (k x ncols) */
                gemm(false, false, cout_g, ncols, k, 1.0f, wg, k, col, ncols, b ? 1.0f : 0.0f,
                     og + y0 * g->ow, ohw);
            }
        }
    }
    free(col);
    return HG_OK;
}

void conv2d_bias_grad(float *db, const float *dout, const Conv2dGeom *g) {
    int64_t hw = g->oh * g->ow;
#pragma omp parallel for schedule(static) if (g->n * g->c_out * hw > (1 << 16))
    for (int64_t o = 0; o < g->c_out; o++) {
        double s = 0;
        for (int64_t n = 0; n < g->n; n++) {
            const float *d = dout + (n * g->c_out + o) * hw;
            float part = 0;
            for (int64_t k = 0; k < hw; k++) part += d[k];
            s += part;
        }
        db[o] = (float)s;
    }
}

hg_status conv2d_im2col_backward(float *dx, float *dw, float *db, const float *dout, const float *x,
                                 const float *w, const Conv2dGeom *g) {
    int64_t cin_g = g->c_in / g->groups, cout_g = g->c_out / g->groups;
    int64_t k = cin_g * g->kh * g->kw, ohw = g->oh * g->ow, step = chunk_rows(g);
    if (db) conv2d_bias_grad(db, dout, g);
    if (!dx && !dw) return HG_OK;
    float *col = malloc(sizeof(float) * (size_t)(k * step * g->ow + 1)); /* + 1: never 0 */
    if (!col)
        return hg_fail(HG_ERR_NOMEM, "conv2d_backward: no memory for a %lldx%lld column buffer",
                       (long long)k, (long long)(step * g->ow));
    if (dx) memset(dx, 0, sizeof(float) * (size_t)(g->n * g->c_in * g->h * g->w));
    if (dw) memset(dw, 0, sizeof(float) * (size_t)(g->c_out * k));
    for (int64_t n = 0; n < g->n; n++) {
        for (int64_t grp = 0; grp < g->groups; grp++) {
            int64_t xoff = (n * g->c_in + grp * cin_g) * g->h * g->w;
            const float *wg = w + grp * cout_g * k;
            const float *dg = dout + (n * g->c_out + grp * cout_g) * ohw;
            for (int64_t y0 = 0; y0 < g->oh; y0 += step) {
                int64_t y1 = y0 + step < g->oh ? y0 + step : g->oh, ncols = (y1 - y0) * g->ow;
                if (dw) {
                    /* dW_g (cout_g x k) += dout_g[:, chunk] @ col^T */
                    im2col(col, x + xoff, cin_g, g, y0, y1);
                    gemm(false, true, cout_g, k, ncols, 1.0f, dg + y0 * g->ow, ohw, col, ncols,
                         1.0f, dw + grp * cout_g * k, k);
                }
                if (dx) {
                    /* dcol = W_g^T (k x cout_g) @ dout_g[:, chunk], then scattered back */
                    gemm(true, false, k, ncols, cout_g, 1.0f, wg, k, dg + y0 * g->ow, ohw, 0.0f,
                         col, ncols);
                    col2im_add(dx + xoff, col, cin_g, g, y0, y1);
                }
            }
        }
    }
    free(col);
    return HG_OK;
}

/* ---- dispatch ---- */

typedef enum { CONV_PATH_1X1, CONV_PATH_DEPTHWISE, CONV_PATH_IM2COL } ConvPath;

static ConvPath conv_path(const Conv2dGeom *g) {
    if (g->groups > 1 && g->groups == g->c_in && g->c_in == g->c_out) return CONV_PATH_DEPTHWISE;
    if (g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->pt == 0 && g->pb == 0 &&
        g->pl == 0 && g->pr == 0)
        return CONV_PATH_1X1;
    return CONV_PATH_IM2COL;
}

static hg_status check_bias(const char *op, const Tensor *bias, const Conv2dGeom *g) {
    char sb[96];
    if (bias && (bias->ndim != 1 || bias->shape[0] != g->c_out))
        return hg_fail(HG_ERR_SHAPE, "%s: bias %s must be [%lld] (one per output channel)", op,
                       tensor_shape_str(bias, sb, sizeof sb), (long long)g->c_out);
    return HG_OK;
}

/* out = max(out, 0) over n floats (after kernels that do not fuse the ReLU). */
static void relu_inplace(float *out, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > (1 << 16))
    for (int64_t i = 0; i < n; i++) out[i] = out[i] > 0.0f ? out[i] : 0.0f;
}

static Tensor *forward(const Tensor *x, const Tensor *w, const Tensor *bias, const Conv2dSpec *spec,
                       bool relu) {
    Conv2dGeom g;
    if (conv2d_geometry("conv2d", x, w, spec, &g) != HG_OK) return NULL;
    if (check_bias("conv2d", bias, &g) != HG_OK) return NULL;
    Tensor *out = tensor_empty(SHAPE(g.n, g.c_out, g.oh, g.ow));
    Tensor *xc = tensor_contiguous(x), *wc = tensor_contiguous(w);
    Tensor *bc = bias ? tensor_contiguous(bias) : NULL;
    if (!out || !xc || !wc || (bias && !bc)) {
        tensor_free(out);
        out = NULL;
    } else {
        const float *b = bc ? tensor_data(bc) : NULL, *xv = tensor_data(xc), *wv = tensor_data(wc);
        float *o = tensor_data(out);
        hg_status st = HG_OK;
        bool relu_done = false;
        switch (conv_path(&g)) {
        case CONV_PATH_1X1:
            st = conv2d_1x1_forward(o, xv, wv, b, &g, false);
            break;
        case CONV_PATH_DEPTHWISE:
            st = conv2d_depthwise_forward(o, xv, wv, b, &g, false);
            break;
        case CONV_PATH_IM2COL:
            relu_done = conv2d_implicit_supported(&g);
            st = relu_done ? conv2d_implicit_forward(o, xv, wv, b, &g, relu, hg_cpu_has_avx512f())
                           : conv2d_im2col_forward(o, xv, wv, b, &g);
            break;
        }
        if (st == HG_OK && relu && !relu_done) relu_inplace(o, tensor_numel(out));
        if (st != HG_OK) {
            tensor_free(out);
            out = NULL;
        }
    }
    tensor_free(xc);
    tensor_free(wc);
    tensor_free(bc);
    return out;
}

Tensor *conv2d_forward(const Tensor *x, const Tensor *w, const Tensor *bias,
                       const Conv2dSpec *spec) {
    return forward(x, w, bias, spec, false);
}

Tensor *conv2d_forward_relu(const Tensor *x, const Tensor *w, const Tensor *bias,
                            const Conv2dSpec *spec) {
    return forward(x, w, bias, spec, true);
}

hg_status conv2d_backward(const Tensor *dout, const Tensor *x, const Tensor *w,
                          const Conv2dSpec *spec, Tensor **dx, Tensor **dw, Tensor **db) {
    Conv2dGeom g;
    char sd[96];
    if (dx) *dx = NULL;
    if (dw) *dw = NULL;
    if (db) *db = NULL;
    hg_status st = conv2d_geometry("conv2d_backward", x, w, spec, &g);
    if (st != HG_OK) return st;
    if (!dout || dout->ndim != 4 || dout->shape[0] != g.n || dout->shape[1] != g.c_out ||
        dout->shape[2] != g.oh || dout->shape[3] != g.ow)
        return hg_fail(HG_ERR_SHAPE,
                       "conv2d_backward: output gradient %s, expected [%lld,%lld,%lld,%lld]",
                       dout ? tensor_shape_str(dout, sd, sizeof sd) : "NULL", (long long)g.n,
                       (long long)g.c_out, (long long)g.oh, (long long)g.ow);
    Tensor *gx = dx ? tensor_empty(4, x->shape) : NULL;
    Tensor *gw = dw ? tensor_empty(4, w->shape) : NULL;
    Tensor *gb = db ? tensor_empty(SHAPE(g.c_out)) : NULL;
    Tensor *dc = tensor_contiguous(dout), *xc = tensor_contiguous(x), *wc = tensor_contiguous(w);
    if ((dx && !gx) || (dw && !gw) || (db && !gb) || !dc || !xc || !wc) {
        st = hg_last_status();
        tensor_free(gx);
        tensor_free(gw);
        tensor_free(gb);
    } else {
        float *px = gx ? tensor_data(gx) : NULL, *pw = gw ? tensor_data(gw) : NULL;
        float *pb = gb ? tensor_data(gb) : NULL;
        const float *pd = tensor_data(dc), *xv = tensor_data(xc), *wv = tensor_data(wc);
        switch (conv_path(&g)) {
        case CONV_PATH_1X1:
            st = conv2d_1x1_backward(px, pw, pb, pd, xv, wv, &g);
            break;
        case CONV_PATH_DEPTHWISE:
            st = conv2d_depthwise_backward(px, pw, pb, pd, xv, wv, &g);
            break;
        case CONV_PATH_IM2COL:
            st = conv2d_im2col_backward(px, pw, pb, pd, xv, wv, &g);
            break;
        }
        if (st != HG_OK) {
            tensor_free(gx);
            tensor_free(gw);
            tensor_free(gb);
        } else {
            if (dx) *dx = gx;
            if (dw) *dw = gw;
            if (db) *db = gb;
        }
    }
    tensor_free(dc);
    tensor_free(xc);
    tensor_free(wc);
    return st;
}

/* ---- autograd ---- */

/* saved[0] = x, saved[1] = w (the values the forward read), context = the spec. */
static hg_status conv2d_backward_fn(Var *out) {
    Var *x = out->inputs[0], *w = out->inputs[1];
    Var *b = out->n_inputs > 2 ? out->inputs[2] : NULL;
    Tensor *dx = NULL, *dw = NULL, *db = NULL;
    hg_status st = conv2d_backward(out->grad, out->saved[0], out->saved[1], out->context,
                                   x->requires_grad ? &dx : NULL, w->requires_grad ? &dw : NULL,
                                   b && b->requires_grad ? &db : NULL);
    if (st != HG_OK) return st;
    hg_status sx = dx ? var_accumulate_grad(x, dx) : HG_OK;
    hg_status sw = dw ? var_accumulate_grad(w, dw) : HG_OK;
    hg_status sb = db ? var_accumulate_grad(b, db) : HG_OK;
    return sx != HG_OK ? sx : sw != HG_OK ? sw : sb;
}

Var *ag_conv2d(Tape *tape, Var *x, Var *w, Var *b, const Conv2dSpec *spec) {
    if (!x || !w) return NULL;
    Tensor *y = conv2d_forward(x->value, w->value, b ? b->value : NULL, spec);
    if (!y) return NULL;
    Var *inputs[3] = {x, w, b};
    Var *out = tape_record(tape, "conv2d", y, b ? 3 : 2, inputs, conv2d_backward_fn);
    if (!out || !out->requires_grad) return out; /* no-grad: keep nothing */
    Conv2dSpec *saved_spec = malloc(sizeof *saved_spec);
    out->saved[0] = tensor_ref(x->value);
    out->saved[1] = tensor_ref(w->value);
    if (!saved_spec || !out->saved[0] || !out->saved[1]) {
        free(saved_spec);
        hg_fail(HG_ERR_NOMEM, "conv2d: out of memory saving tensors for backward");
        return NULL;
    }
    *saved_spec = *spec;
    out->context = saved_spec;
    out->free_context = free;
    return out;
}
