/* Tensor operations (no autodiff; see autograd/ for differentiable versions).
 *
 * Every op accepts any strided view (non-contiguous, expanded, empty) and returns
 * a new contiguous tensor owned by the caller, or NULL with hg_last_error() set to
 * a message naming the op and the shapes. Binary ops broadcast with numpy rules.
 * Dims may be negative (-1 = last). Large ops run with OpenMP threads. */
#ifndef HG_TENSOR_OPS_H
#define HG_TENSOR_OPS_H

#include "tensor/tensor.h"

/* ---- element-wise unary ---- */
Tensor *tensor_neg(const Tensor *x);
Tensor *tensor_exp(const Tensor *x);
Tensor *tensor_log(const Tensor *x);
Tensor *tensor_sqrt(const Tensor *x);
Tensor *tensor_abs(const Tensor *x);
Tensor *tensor_square(const Tensor *x);
Tensor *tensor_reciprocal(const Tensor *x);
Tensor *tensor_sin(const Tensor *x);
Tensor *tensor_cos(const Tensor *x);
Tensor *tensor_tanh(const Tensor *x);
Tensor *tensor_sigmoid(const Tensor *x);
Tensor *tensor_relu(const Tensor *x);
Tensor *tensor_relu6(const Tensor *x);
Tensor *tensor_silu(const Tensor *x);              /* x * sigmoid(x) */
Tensor *tensor_gelu(const Tensor *x);              /* exact (erf) form, as torch default */
Tensor *tensor_softplus(const Tensor *x, float beta); /* log(1 + exp(beta x)) / beta, stable */
Tensor *tensor_log_sigmoid(const Tensor *x);       /* stable: -softplus(-x) */
Tensor *tensor_clamp(const Tensor *x, float low, float high);
Tensor *tensor_scale(const Tensor *x, float factor);    /* x * factor */
Tensor *tensor_add_scalar(const Tensor *x, float value); /* x + value */
Tensor *tensor_pow_scalar(const Tensor *x, float exponent);

/* ---- element-wise binary (broadcasting) ---- */
Tensor *tensor_add(const Tensor *a, const Tensor *b);
Tensor *tensor_sub(const Tensor *a, const Tensor *b);
Tensor *tensor_mul(const Tensor *a, const Tensor *b);
Tensor *tensor_div(const Tensor *a, const Tensor *b);
Tensor *tensor_maximum(const Tensor *a, const Tensor *b);
Tensor *tensor_minimum(const Tensor *a, const Tensor *b);
/* cond != 0 ? a : b, all three broadcast together. */
Tensor *tensor_where(const Tensor *cond, const Tensor *a, const Tensor *b);

/* In place: dst += src / dst *= src (src broadcasts to dst). For gradient accumulation. */
hg_status tensor_add_(Tensor *dst, const Tensor *src);
hg_status tensor_mul_(Tensor *dst, const Tensor *src);
/* dst += alpha * src, same shape. */
hg_status tensor_axpy_(Tensor *dst, float alpha, const Tensor *src);

/* ---- reductions ----
 * `dims` lists ndims distinct dims to reduce; ndims == 0 reduces all dims.
 * keepdim keeps reduced dims with size 1. Sums accumulate in double. */
Tensor *tensor_sum(const Tensor *x, int ndims, const int *dims, bool keepdim);
Tensor *tensor_mean(const Tensor *x, int ndims, const int *dims, bool keepdim);
Tensor *tensor_max(const Tensor *x, int ndims, const int *dims, bool keepdim);
Tensor *tensor_min(const Tensor *x, int ndims, const int *dims, bool keepdim);
Tensor *tensor_logsumexp(const Tensor *x, int ndims, const int *dims, bool keepdim);
/* Max along one dim; *argmax (if not NULL) receives a new tensor of the same
 * shape holding the first index of the maximum as a float. */
Tensor *tensor_max_dim(const Tensor *x, int dim, bool keepdim, Tensor **argmax);
/* Sum of all elements, accumulated in double. */
double tensor_sum_all(const Tensor *x);
/* Reduces a tensor of broadcast shape back to `shape` by summing (the backward of
 * broadcasting). */
Tensor *tensor_sum_to_shape(const Tensor *x, int ndim, const int64_t *shape);

/* ---- normalizations along one dim ---- */
Tensor *tensor_softmax(const Tensor *x, int dim);
Tensor *tensor_log_softmax(const Tensor *x, int dim);

/* ---- joining, splitting, indexing ---- */
Tensor *tensor_concat(int count, const Tensor *const *parts, int dim);
/* Views of consecutive pieces of `dim` with the given sizes (must add up). parts[]
 * receives `count` new tensors. */
hg_status tensor_split(const Tensor *x, int dim, int count, const int64_t *sizes, Tensor **parts);
/* out = x.index_select(dim, index): entries index[0..count) of dim, in that order. */
Tensor *tensor_index_select(const Tensor *x, int dim, int64_t count, const int64_t *index);
/* out[i][j][k] = x[index[i][j][k]][j][k] (dim 0), etc., as torch.gather; index has
 * the shape of the output (index_ndim == x->ndim) and is row-major. */
Tensor *tensor_gather(const Tensor *x, int dim, int index_ndim, const int64_t *index_shape,
                      const int64_t *index);
/* Backward of gather: out (shape of x) = 0; out[index ...] += src (as scatter_add). */
Tensor *tensor_scatter_add(int ndim, const int64_t *shape, int dim, const Tensor *src,
                           const int64_t *index);
/* One-hot rows: out[i][labels[i]] = 1, shape (n, classes). */
Tensor *tensor_one_hot(int64_t n, const int64_t *labels, int64_t classes);

/* ---- matrix products (tensor/gemm.h underneath) ----
 * 2-d: (m,k)@(k,n). 3-d or more: batched over leading dims, which broadcast.
 * trans_a / trans_b transpose the last two dims of a / b first. A 1-d b is a
 * vector (k) -> result drops that dim. */
Tensor *tensor_matmul(const Tensor *a, const Tensor *b, bool trans_a, bool trans_b);

#endif
