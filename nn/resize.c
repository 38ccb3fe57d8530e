/* Bilinear and nearest resizing: forward/backward pairs and tape wrappers
 * (see resize.h for the index formulas, which follow PyTorch's CPU kernels). */
#include "nn/resize.h"

#include <math.h>
#include <stdlib.h>

#include "nn/nchw_check.h"

#define RESIZE_PARALLEL_MIN (1 << 15)

/* Source taps of one output index along one dimension. */
typedef struct Tap {
    int64_t i0, i1;
    float l0, l1;
} Tap;

/* Fills taps[0..out) for bilinear resizing of in -> out entries. */
static void bilinear_taps(Tap *taps, int64_t in, int64_t out, bool align_corners) {
    float scale;
    if (align_corners)
        scale = out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.0f;
    else
        scale = (float)in / (float)out;
    for (int64_t d = 0; d < out; d++) {
        Tap *t = &taps[d];
        if (in == out) { /* torch copies exactly */
            t->i0 = t->i1 = d;
            t->l0 = 1;
            t->l1 = 0;
            continue;
        }
        float src = align_corners ? scale * (float)d : scale * ((float)d + 0.5f) - 0.5f;
        if (src < 0) src = 0;
        t->i0 = (int64_t)src;
        t->i1 = t->i0 + (t->i0 < in - 1 ? 1 : 0);
        float l1 = src - (float)t->i0;
        t->l1 = l1 < 0 ? 0 : l1 > 1 ? 1 : l1;
        t->l0 = 1.0f - t->l1;
    }
}

/* Fills taps[0..out) (l0 = 1) for nearest resizing of in -> out entries. */
static void nearest_taps(Tap *taps, int64_t in, int64_t out) {
    float scale = (float)in / (float)out;
    for (int64_t d = 0; d < out; d++) {
        int64_t s;
        if (out == in)
            s = d;
        else if (out == 2 * in)
            s = d >> 1;
        else {
            s = (int64_t)floorf((float)d * scale);
            if (s > in - 1) s = in - 1;
        }
        taps[d] = (Tap){s, s, 1.0f, 0.0f};
    }
}

static hg_status check_resize(const char *op, const Tensor *x, int64_t oh, int64_t ow) {
    char s[96];
    hg_status st = nchw_check_input(op, x);
    if (st != HG_OK) return st;
    if (oh < 1 || ow < 1 || x->shape[2] < 1 || x->shape[3] < 1)
        return hg_fail(HG_ERR_ARG, "%s: cannot resize %s to %lldx%lld", op,
                       tensor_shape_str(x, s, sizeof s), (long long)oh, (long long)ow);
    return HG_OK;
}

/* out[q, y, x] = sum over the (up to) four taps of th[y] x tw[x]. */
static Tensor *apply_taps(const Tensor *x, const Tap *th, const Tap *tw, int64_t oh, int64_t ow) {
    Tensor *xc = tensor_contiguous(x);
    Tensor *out = xc ? tensor_empty(SHAPE(x->shape[0], x->shape[1], oh, ow)) : NULL;
    if (out) {
        int64_t planes = x->shape[0] * x->shape[1], h = x->shape[2], w = x->shape[3];
        const float *px = tensor_data(xc);
        float *po = tensor_data(out);
#pragma omp parallel for schedule(static) if (planes * oh * ow > RESIZE_PARALLEL_MIN)
        for (int64_t q = 0; q < planes; q++)
            for (int64_t y = 0; y < oh; y++) {
                const float *r0 = px + (q * h + th[y].i0) * w, *r1 = px + (q * h + th[y].i1) * w;
                float *o = po + (q * oh + y) * ow;
                for (int64_t k = 0; k < ow; k++) {
                    const Tap *t = &tw[k];
                    o[k] = th[y].l0 * (t->l0 * r0[t->i0] + t->l1 * r0[t->i1]) +
                           th[y].l1 * (t->l0 * r1[t->i0] + t->l1 * r1[t->i1]);
                }
            }
    }
    tensor_free(xc);
    return out;
}

/* The adjoint of apply_taps: dx[q, i, j] += weight * dout[q, y, x]. Threads own planes. */
static Tensor *scatter_taps(const Tensor *dout, const Tap *th, const Tap *tw, int64_t h,
                            int64_t w) {
    Tensor *dc = tensor_contiguous(dout);
    Tensor *dx = dc ? tensor_zeros(SHAPE(dout->shape[0], dout->shape[1], h, w)) : NULL;
    if (dx) {
        int64_t planes = dout->shape[0] * dout->shape[1], oh = dout->shape[2], ow = dout->shape[3];
        const float *pd = tensor_data(dc);
        float *pdx = tensor_data(dx);
#pragma omp parallel for schedule(static) if (planes * oh * ow > RESIZE_PARALLEL_MIN)
        for (int64_t q = 0; q < planes; q++)
            for (int64_t y = 0; y < oh; y++) {
                float *r0 = pdx + (q * h + th[y].i0) * w, *r1 = pdx + (q * h + th[y].i1) * w;
                const float *d = pd + (q * oh + y) * ow;
                for (int64_t k = 0; k < ow; k++) {
                    const Tap *t = &tw[k];
                    float g0 = th[y].l0 * d[k], g1 = th[y].l1 * d[k];
                    r0[t->i0] += t->l0 * g0;
                    r0[t->i1] += t->l1 * g0;
                    r1[t->i0] += t->l0 * g1;
                    r1[t->i1] += t->l1 * g1;
                }
            }
    }
    tensor_free(dc);
    return dx;
}

/* Builds the taps of both dimensions and runs the forward (x) or backward (dout). */
static Tensor *run(const char *op, const Tensor *x, const Tensor *dout, int64_t in_h, int64_t in_w,
                   int64_t out_h, int64_t out_w, bool nearest, bool align_corners) {
    Tap *th = malloc(sizeof(Tap) * (size_t)out_h), *tw = malloc(sizeof(Tap) * (size_t)out_w);
    Tensor *r = NULL;
    if (!th || !tw) {
        hg_fail(HG_ERR_NOMEM, "%s: out of memory", op);
    } else {
        if (nearest) {
            nearest_taps(th, in_h, out_h);
            nearest_taps(tw, in_w, out_w);
        } else {
            bilinear_taps(th, in_h, out_h, align_corners);
            bilinear_taps(tw, in_w, out_w, align_corners);
        }
        r = x ? apply_taps(x, th, tw, out_h, out_w) : scatter_taps(dout, th, tw, in_h, in_w);
    }
    free(th);
    free(tw);
    return r;
}

Tensor *resize_bilinear_forward(const Tensor *x, int64_t out_h, int64_t out_w, bool align_corners) {
    if (check_resize("resize_bilinear", x, out_h, out_w) != HG_OK) return NULL;
    return run("resize_bilinear", x, NULL, x->shape[2], x->shape[3], out_h, out_w, false,
               align_corners);
}

Tensor *resize_bilinear_backward(const Tensor *dout, int64_t in_h, int64_t in_w,
                                 bool align_corners) {
    if (check_resize("resize_bilinear_backward", dout, in_h, in_w) != HG_OK) return NULL;
    return run("resize_bilinear_backward", NULL, dout, in_h, in_w, dout->shape[2], dout->shape[3],
               false, align_corners);
}

Tensor *resize_nearest_forward(const Tensor *x, int64_t out_h, int64_t out_w) {
    if (check_resize("resize_nearest", x, out_h, out_w) != HG_OK) return NULL;
    return run("resize_nearest", x, NULL, x->shape[2], x->shape[3], out_h, out_w, true, false);
}

Tensor *resize_nearest_backward(const Tensor *dout, int64_t in_h, int64_t in_w) {
    if (check_resize("resize_nearest_backward", dout, in_h, in_w) != HG_OK) return NULL;
    return run("resize_nearest_backward", NULL, dout, in_h, in_w, dout->shape[2], dout->shape[3],
               true, false);
}

/* ints: [0] input height, [1] input width, [2] align_corners, [3] nearest. */
static hg_status resize_backward_fn(Var *out) {
    Tensor *dx = out->ints[3] ? resize_nearest_backward(out->grad, out->ints[0], out->ints[1])
                              : resize_bilinear_backward(out->grad, out->ints[0], out->ints[1],
                                                         out->ints[2]);
    return var_accumulate_grad(out->inputs[0], dx);
}

static Var *record_resize(Tape *tape, const char *op, Tensor *y, Var *x, bool align_corners,
                          bool nearest) {
    if (!y) return NULL;
    Var *out = tape_record(tape, op, y, 1, &x, resize_backward_fn);
    if (!out) return NULL;
    out->ints[0] = x->value->shape[2];
    out->ints[1] = x->value->shape[3];
    out->ints[2] = align_corners;
    out->ints[3] = nearest;
    return out;
}

Var *ag_resize_bilinear(Tape *tape, Var *x, int64_t out_h, int64_t out_w, bool align_corners) {
    if (!x) return NULL;
    return record_resize(tape, "resize_bilinear",
                         resize_bilinear_forward(x->value, out_h, out_w, align_corners), x,
                         align_corners, false);
}

Var *ag_resize_nearest(Tape *tape, Var *x, int64_t out_h, int64_t out_w) {
    if (!x) return NULL;
    return record_resize(tape, "resize_nearest", resize_nearest_forward(x->value, out_h, out_w), x,
                         false, true);
}
