/* Differentiable ops: the tensor ops of tensor/ops.h recorded on a Tape.
 * Each op's backward sits beside its forward in autograd/ops_*.c. Results are
 * owned by the tape; see autograd.h for NULL propagation. */
#ifndef HG_AUTOGRAD_OPS_H
#define HG_AUTOGRAD_OPS_H

#include "autograd/autograd.h"

/* element-wise unary */
Var *ag_neg(Tape *t, Var *x);
Var *ag_exp(Tape *t, Var *x);
Var *ag_log(Tape *t, Var *x);
Var *ag_sqrt(Tape *t, Var *x);
Var *ag_abs(Tape *t, Var *x);
Var *ag_square(Tape *t, Var *x);
Var *ag_reciprocal(Tape *t, Var *x);
Var *ag_sin(Tape *t, Var *x);
Var *ag_cos(Tape *t, Var *x);
Var *ag_tanh(Tape *t, Var *x);
Var *ag_sigmoid(Tape *t, Var *x);
Var *ag_relu(Tape *t, Var *x);
Var *ag_relu6(Tape *t, Var *x);
Var *ag_silu(Tape *t, Var *x);
Var *ag_gelu(Tape *t, Var *x);
Var *ag_softplus(Tape *t, Var *x, float beta);
Var *ag_log_sigmoid(Tape *t, Var *x);
Var *ag_clamp(Tape *t, Var *x, float low, float high);
Var *ag_scale(Tape *t, Var *x, float factor);
Var *ag_add_scalar(Tape *t, Var *x, float value);
Var *ag_pow_scalar(Tape *t, Var *x, float exponent);

/* element-wise binary, broadcasting */
Var *ag_add(Tape *t, Var *a, Var *b);
Var *ag_sub(Tape *t, Var *a, Var *b);
Var *ag_mul(Tape *t, Var *a, Var *b);
Var *ag_div(Tape *t, Var *a, Var *b);
Var *ag_maximum(Tape *t, Var *a, Var *b);
Var *ag_minimum(Tape *t, Var *a, Var *b);
/* cond is a plain tensor (no gradient). */
Var *ag_where(Tape *t, const Tensor *cond, Var *a, Var *b);

/* reductions (ndims == 0: all dims) */
Var *ag_sum(Tape *t, Var *x, int ndims, const int *dims, bool keepdim);
Var *ag_mean(Tape *t, Var *x, int ndims, const int *dims, bool keepdim);
Var *ag_max(Tape *t, Var *x, int ndims, const int *dims, bool keepdim);
Var *ag_logsumexp(Tape *t, Var *x, int ndims, const int *dims, bool keepdim);
Var *ag_softmax(Tape *t, Var *x, int dim);
Var *ag_log_softmax(Tape *t, Var *x, int dim);

/* shape and views */
Var *ag_reshape(Tape *t, Var *x, int ndim, const int64_t *shape);
Var *ag_permute(Tape *t, Var *x, const int *dims);
Var *ag_transpose(Tape *t, Var *x, int dim0, int dim1);
Var *ag_narrow(Tape *t, Var *x, int dim, int64_t start, int64_t length);
Var *ag_expand(Tape *t, Var *x, int ndim, const int64_t *shape);
Var *ag_concat(Tape *t, int count, Var *const *parts, int dim);
/* parts[] receives count Vars. */
hg_status ag_split(Tape *t, Var *x, int dim, int count, const int64_t *sizes, Var **parts);
Var *ag_index_select(Tape *t, Var *x, int dim, int64_t count, const int64_t *index);
Var *ag_gather(Tape *t, Var *x, int dim, int index_ndim, const int64_t *index_shape,
               const int64_t *index);

/* products */
Var *ag_matmul(Tape *t, Var *a, Var *b, bool trans_a, bool trans_b);
/* y = x W^T + b for x (..., in), W (out, in), b (out) or NULL: PyTorch's Linear. */
Var *ag_linear(Tape *t, Var *x, Var *weight, Var *bias);

#endif
