/* Differentiable reductions and normalizations, each forward followed by its
 * backward.
 *
 * A reduction over a set of dims stores that set as a bit mask in ints[0].
 * Its backward brings a tensor of the reduced shape (with or without keepdim)
 * back to the input's shape by reshaping to the keepdim shape and expanding
 * (a stride-0 view, materialized only where a kernel needs it). */
#include <math.h>

#include "autograd/internal.h"

static hg_status sum_backward(Var *out);
static hg_status mean_backward(Var *out);
static hg_status max_backward(Var *out);
static hg_status logsumexp_backward(Var *out);
static hg_status softmax_backward(Var *out);
static hg_status log_softmax_backward(Var *out);

/* Bit mask of the dims reduced by (ndims, dims) on an ndim tensor; ndims == 0
 * means all. The forward op has already validated dims. */
static int64_t reduced_mask(int ndim, int ndims, const int *dims) {
    if (ndims == 0) return ndim == 0 ? 0 : ((int64_t)1 << ndim) - 1;
    int64_t mask = 0;
    for (int i = 0; i < ndims; i++) mask |= (int64_t)1 << tensor_normalize_dim(dims[i], ndim);
    return mask;
}

/* A view of `t` (the reduced shape) broadcast to the shape of x = inputs[0]. */
static Tensor *expand_to_input(const Var *out, const Tensor *t) {
    const Tensor *x = out->inputs[0]->value;
    int64_t keep_shape[TENSOR_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) keep_shape[d] = (out->ints[0] >> d & 1) ? 1 : x->shape[d];
    Tensor *kept = tensor_reshape(t, x->ndim, keep_shape);
    Tensor *expanded = kept ? tensor_expand(kept, x->ndim, x->shape) : NULL;
    tensor_free(kept);
    return expanded;
}

/* Records a reduction of x over (ndims, dims) and stores the dims mask. */
static Var *record_reduction(Tape *t, const char *op, Var *x, int ndims, const int *dims,
                             Tensor *value, BackwardFn backward) {
    Var *out = tape_record(t, op, value, 1, &x, backward);
    if (out) out->ints[0] = reduced_mask(x->value->ndim, ndims, dims);
    return out;
}

/* ---- sum ---- */
Var *ag_sum(Tape *t, Var *x, int ndims, const int *dims, bool keepdim) {
    if (!ag_check("sum", t, 1, &x)) return NULL;
    return record_reduction(t, "sum", x, ndims, dims, tensor_sum(x->value, ndims, dims, keepdim),
                            sum_backward);
}

/* Every summed element contributes with weight 1: dL/dx = g broadcast back. */
static hg_status sum_backward(Var *out) {
    return var_accumulate_grad(out->inputs[0], expand_to_input(out, out->grad));
}

/* ---- mean ---- */
Var *ag_mean(Tape *t, Var *x, int ndims, const int *dims, bool keepdim) {
    if (!ag_check("mean", t, 1, &x)) return NULL;
    Var *out = record_reduction(t, "mean", x, ndims, dims,
                                tensor_mean(x->value, ndims, dims, keepdim), mean_backward);
    if (out) {
        int64_t count = 1;
        for (int d = 0; d < x->value->ndim; d++)
            if (out->ints[0] >> d & 1) count *= x->value->shape[d];
        out->scalars[0] = count > 0 ? 1.0 / (double)count : 0.0;
    }
    return out;
}

/* mean = sum / count: dL/dx = g / count broadcast back. */
static hg_status mean_backward(Var *out) {
    Tensor *scaled = tensor_scale(out->grad, (float)out->scalars[0]);
    if (scaled == NULL) return hg_last_status();
    Tensor *g = expand_to_input(out, scaled);
    tensor_free(scaled);
    return var_accumulate_grad(out->inputs[0], g);
}

/* ---- max ---- */
Var *ag_max(Tape *t, Var *x, int ndims, const int *dims, bool keepdim) {
    if (!ag_check("max", t, 1, &x)) return NULL;
    Var *out = record_reduction(t, "max", x, ndims, dims,
                                tensor_max(x->value, ndims, dims, keepdim), max_backward);
    if (out == NULL || !ag_save(out, 0, x->value) || !ag_save(out, 1, out->value)) return NULL;
    return out;
}

/* The gradient goes to the elements equal to the maximum; ties share it
 * evenly (as PyTorch's amax). A = x, B = max broadcast, C = g broadcast. */
GRAD_KERNEL3(max_pick, A == B ? C : 0.0f)
GRAD_KERNEL2(equal_indicator, A == B ? 1.0f : 0.0f)
static hg_status max_backward(Var *out) {
    const Tensor *x = out->saved[0];
    int dims[TENSOR_MAX_DIMS], ndims = 0;
    for (int d = 0; d < x->ndim; d++)
        if (out->ints[0] >> d & 1) dims[ndims++] = d;
    Tensor *y = expand_to_input(out, out->saved[1]);
    Tensor *g = expand_to_input(out, out->grad);
    Tensor *picked = y && g ? max_pick(x, y, g, 0) : NULL;
    Tensor *is_max = picked ? equal_indicator(x, y, 0) : NULL;
    /* ndims is 0 only for a 0-d x, where "reduce all dims" changes nothing. */
    Tensor *ties = is_max ? tensor_sum(is_max, ndims, dims, true) : NULL;
    Tensor *grad = ties ? tensor_div(picked, ties) : NULL;
    hg_status s = grad ? HG_OK : hg_last_status();
    tensor_free(y);
    tensor_free(g);
    tensor_free(picked);
    tensor_free(is_max);
    tensor_free(ties);
    return s == HG_OK ? var_accumulate_grad(out->inputs[0], grad) : s;
}

/* ---- logsumexp ---- */
Var *ag_logsumexp(Tape *t, Var *x, int ndims, const int *dims, bool keepdim) {
    if (!ag_check("logsumexp", t, 1, &x)) return NULL;
    Var *out =
        record_reduction(t, "logsumexp", x, ndims, dims,
                         tensor_logsumexp(x->value, ndims, dims, keepdim), logsumexp_backward);
    if (out == NULL || !ag_save(out, 0, x->value) || !ag_save(out, 1, out->value)) return NULL;
    return out;
}

/* y = log sum_j e^(x_j):  dy/dx_i = e^(x_i) / sum_j e^(x_j) = e^(x_i - y), the
 * softmax over the reduced dims.  A = x, B = y broadcast, C = g broadcast. */
GRAD_KERNEL3(logsumexp_grad, expf(A - B) * C)
static hg_status logsumexp_backward(Var *out) {
    Tensor *y = expand_to_input(out, out->saved[1]);
    Tensor *g = expand_to_input(out, out->grad);
    Tensor *grad = y && g ? logsumexp_grad(out->saved[0], y, g, 0) : NULL;
    tensor_free(y);
    tensor_free(g);
    return var_accumulate_grad(out->inputs[0], grad);
}

/* ---- softmax, log_softmax (along one dim, stored in ints[0]) ---- */
static Var *record_normalization(Tape *t, const char *op, Var *x, int dim, Tensor *value,
                                 BackwardFn backward) {
    Var *out = tape_record(t, op, value, 1, &x, backward);
    if (out == NULL || !ag_save(out, 0, out->value)) return NULL;
    out->ints[0] = tensor_normalize_dim(dim, x->value->ndim);
    return out;
}

/* sum of `t` along the op's dim, keepdim, expanded back to t's shape. */
static Tensor *sum_along_dim_expanded(const Var *out, const Tensor *t) {
    int dim = (int)out->ints[0];
    Tensor *s = tensor_sum(t, 1, &dim, true);
    Tensor *e = s ? tensor_expand(s, t->ndim, t->shape) : NULL;
    tensor_free(s);
    return e;
}

Var *ag_softmax(Tape *t, Var *x, int dim) {
    if (!ag_check("softmax", t, 1, &x)) return NULL;
    return record_normalization(t, "softmax", x, dim, tensor_softmax(x->value, dim),
                                softmax_backward);
}

/* dy_i/dx_j = y_i (delta_ij - y_j), so dL/dx_j = y_j (g_j - sum_i g_i y_i).
 * A = g y, B = y, C = sum(g y) broadcast. */
GRAD_KERNEL3(softmax_grad, A - B * C)
static hg_status softmax_backward(Var *out) {
    const Tensor *y = out->saved[0];
    Tensor *gy = tensor_mul(out->grad, y);
    Tensor *s = gy ? sum_along_dim_expanded(out, gy) : NULL;
    Tensor *grad = s ? softmax_grad(gy, y, s, 0) : NULL;
    tensor_free(gy);
    tensor_free(s);
    return var_accumulate_grad(out->inputs[0], grad);
}

Var *ag_log_softmax(Tape *t, Var *x, int dim) {
    if (!ag_check("log_softmax", t, 1, &x)) return NULL;
    return record_normalization(t, "log_softmax", x, dim, tensor_log_softmax(x->value, dim),
                                log_softmax_backward);
}

/* y_i = x_i - logsumexp(x): dy_i/dx_j = delta_ij - softmax_j = delta_ij - e^(y_j),
 * so dL/dx_j = g_j - e^(y_j) sum_i g_i.  A = g, B = y, C = sum(g) broadcast. */
GRAD_KERNEL3(log_softmax_grad, A - expf(B) * C)
static hg_status log_softmax_backward(Var *out) {
    Tensor *s = sum_along_dim_expanded(out, out->grad);
    Tensor *grad = s ? log_softmax_grad(out->grad, out->saved[0], s, 0) : NULL;
    tensor_free(s);
    return var_accumulate_grad(out->inputs[0], grad);
}
