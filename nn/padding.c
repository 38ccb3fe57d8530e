/* Zero padding and the TF "same" rule (see padding.h). */
#include "nn/padding.h"

#include <stdio.h>

void pad_same_tf(int64_t in, int kernel, int stride, int dilation, int *before, int *after) {
    if (stride < 1) stride = 1;
    if (dilation < 1) dilation = 1;
    int64_t out = (in + stride - 1) / stride; /* ceil(in / s) */
    int64_t total = (out - 1) * stride + (int64_t)(kernel - 1) * dilation + 1 - in;
    if (total < 0) total = 0;
    *before = (int)(total / 2);
    *after = (int)(total - total / 2);
}

static hg_status check_pads(const char *op, const Tensor *t, int top, int bottom, int left,
                            int right) {
    char s[96];
    if (t->ndim != 4)
        return hg_fail(HG_ERR_SHAPE, "%s: expects a 4-d NCHW tensor, got %s", op,
                       tensor_shape_str(t, s, sizeof s));
    if (top < 0 || bottom < 0 || left < 0 || right < 0)
        return hg_fail(HG_ERR_ARG, "%s: padding (%d,%d,%d,%d) must be >= 0", op, top, bottom, left,
                       right);
    return HG_OK;
}

Tensor *pad2d_forward(const Tensor *x, int top, int bottom, int left, int right) {
    if (!x || check_pads("pad2d", x, top, bottom, left, right) != HG_OK) return NULL;
    Tensor *out = tensor_zeros(
        SHAPE(x->shape[0], x->shape[1], x->shape[2] + top + bottom, x->shape[3] + left + right));
    if (!out) return NULL;
    Tensor *rows = tensor_narrow(out, 2, top, x->shape[2]);
    Tensor *inner = rows ? tensor_narrow(rows, 3, left, x->shape[3]) : NULL;
    hg_status st = inner ? tensor_copy_(inner, x) : hg_last_status();
    tensor_free(inner);
    tensor_free(rows);
    if (st != HG_OK) {
        tensor_free(out);
        return NULL;
    }
    return out;
}

Tensor *pad2d_backward(const Tensor *dout, int top, int bottom, int left, int right) {
    if (!dout || check_pads("pad2d_backward", dout, top, bottom, left, right) != HG_OK) return NULL;
    int64_t h = dout->shape[2] - top - bottom, w = dout->shape[3] - left - right;
    if (h < 0 || w < 0) {
        char s[96];
        hg_fail(HG_ERR_SHAPE, "pad2d_backward: gradient %s is smaller than padding (%d,%d,%d,%d)",
                tensor_shape_str(dout, s, sizeof s), top, bottom, left, right);
        return NULL;
    }
    Tensor *rows = tensor_narrow(dout, 2, top, h);
    Tensor *inner = rows ? tensor_narrow(rows, 3, left, w) : NULL;
    Tensor *dx = inner ? tensor_clone(inner) : NULL;
    tensor_free(inner);
    tensor_free(rows);
    return dx;
}

/* The gradient of zero padding is the un-padded interior of the output gradient. */
static hg_status pad2d_backward_fn(Var *out) {
    Var *x = out->inputs[0];
    if (!x->requires_grad) return HG_OK;
    Tensor *dx = pad2d_backward(out->grad, (int)out->ints[0], (int)out->ints[1], (int)out->ints[2],
                                (int)out->ints[3]);
    if (!dx) return hg_last_status();
    return var_accumulate_grad(x, dx);
}

Var *ag_pad2d(Tape *tape, Var *x, int top, int bottom, int left, int right) {
    if (!x) return NULL;
    Tensor *y = pad2d_forward(x->value, top, bottom, left, right);
    if (!y) return NULL;
    Var *out = tape_record(tape, "pad2d", y, 1, &x, pad2d_backward_fn);
    if (!out) return NULL;
    out->ints[0] = top;
    out->ints[1] = bottom;
    out->ints[2] = left;
    out->ints[3] = right;
    return out;
}
