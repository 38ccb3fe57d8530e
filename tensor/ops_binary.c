/* Element-wise binary ops of tensor/ops.h with numpy broadcasting, where(), and
 * the in-place accumulations add_, mul_ and axpy_. maximum/minimum propagate
 * NaN like torch.maximum/minimum. */
#include <stdio.h>

#include "tensor/iterate.h"
#include "tensor/ops.h"

/* Defines name_kernel: out = EXPR of `a` and `b`. Broadcasting shows up as a
 * zero run stride; the all-contiguous and scalar-operand cases get their own
 * plain loops so they vectorize. */
#define BINARY_KERNEL(name, EXPR)                                                                  \
    static void name##_kernel(int64_t n, float *const *p, const int64_t *s, const void *ctx) {     \
        float *restrict out = p[0];                                                                \
        const float *restrict pa = p[1], *restrict pb = p[2];                                      \
        if (s[0] == 1 && s[1] == 1 && s[2] == 1) {                                                 \
            for (int64_t i = 0; i < n; i++) {                                                      \
                float a = pa[i], b = pb[i];                                                        \
                out[i] = (EXPR);                                                                   \
            }                                                                                      \
        } else if (s[0] == 1 && s[1] == 1 && s[2] == 0) {                                          \
            const float b = pb[0];                                                                 \
            for (int64_t i = 0; i < n; i++) {                                                      \
                float a = pa[i];                                                                   \
                out[i] = (EXPR);                                                                   \
            }                                                                                      \
        } else if (s[0] == 1 && s[1] == 0 && s[2] == 1) {                                          \
            const float a = pa[0];                                                                 \
            for (int64_t i = 0; i < n; i++) {                                                      \
                float b = pb[i];                                                                   \
                out[i] = (EXPR);                                                                   \
            }                                                                                      \
        } else {                                                                                   \
            for (int64_t i = 0; i < n; i++) {                                                      \
                float a = pa[i * s[1]], b = pb[i * s[2]];                                          \
                out[i * s[0]] = (EXPR);                                                            \
            }                                                                                      \
        }                                                                                          \
    }

BINARY_KERNEL(add, a + b)
BINARY_KERNEL(sub, a - b)
BINARY_KERNEL(mul, a *b)
BINARY_KERNEL(div, a / b)
/* a != a tests NaN without a library call, keeping the loop vectorizable. */
BINARY_KERNEL(maximum, (a > b || a != a) ? a : b)
BINARY_KERNEL(minimum, (a < b || a != a) ? a : b)

static bool check_inputs(const char *op, int count, const Tensor *const *t) {
    for (int i = 0; i < count; i++)
        if (t[i] == NULL) {
            hg_fail(HG_ERR_ARG, "%s: input tensor %d is NULL", op, i + 1);
            return false;
        }
    return true;
}

static Tensor *binary_apply(const char *op, const Tensor *a, const Tensor *b,
                            iter_kernel_fn kernel) {
    if (!check_inputs(op, 2, (const Tensor *const[]){a, b})) return NULL;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    if (tensor_broadcast_shape(op, a->ndim, a->shape, b->ndim, b->shape, &ndim, shape) != HG_OK)
        return NULL;
    Tensor *out = tensor_empty(ndim, shape);
    if (out == NULL) return NULL;
    StridedIter it;
    iter_init(&it, ndim, shape, 3, (const Tensor *const[]){out, a, b});
    iter_run(&it, kernel, NULL);
    return out;
}

Tensor *tensor_add(const Tensor *a, const Tensor *b) {
    return binary_apply("add", a, b, add_kernel);
}

Tensor *tensor_sub(const Tensor *a, const Tensor *b) {
    return binary_apply("sub", a, b, sub_kernel);
}

Tensor *tensor_mul(const Tensor *a, const Tensor *b) {
    return binary_apply("mul", a, b, mul_kernel);
}

Tensor *tensor_div(const Tensor *a, const Tensor *b) {
    return binary_apply("div", a, b, div_kernel);
}

Tensor *tensor_maximum(const Tensor *a, const Tensor *b) {
    return binary_apply("maximum", a, b, maximum_kernel);
}

Tensor *tensor_minimum(const Tensor *a, const Tensor *b) {
    return binary_apply("minimum", a, b, minimum_kernel);
}

/* ---- where ---- */

static void where_kernel(int64_t n, float *const *p, const int64_t *s, const void *ctx) {
    float *restrict out = p[0];
    const float *restrict cond = p[1], *restrict pa = p[2], *restrict pb = p[3];
    if (s[0] == 1 && s[1] == 1 && s[2] == 1 && s[3] == 1) {
        for (int64_t i = 0; i < n; i++) out[i] = cond[i] != 0 ? pa[i] : pb[i];
    } else {
        for (int64_t i = 0; i < n; i++)
            out[i * s[0]] = cond[i * s[1]] != 0 ? pa[i * s[2]] : pb[i * s[3]];
    }
}

Tensor *tensor_where(const Tensor *cond, const Tensor *a, const Tensor *b) {
    if (!check_inputs("where", 3, (const Tensor *const[]){cond, a, b})) return NULL;
    int ndim_ca, ndim;
    int64_t shape_ca[TENSOR_MAX_DIMS], shape[TENSOR_MAX_DIMS];
    if (tensor_broadcast_shape("where", cond->ndim, cond->shape, a->ndim, a->shape, &ndim_ca,
                               shape_ca) != HG_OK ||
        tensor_broadcast_shape("where", ndim_ca, shape_ca, b->ndim, b->shape, &ndim, shape) !=
            HG_OK) {
        char sc[128], sa[128], sb[128];
        hg_fail(HG_ERR_SHAPE, "where: shapes %s, %s and %s do not broadcast",
                tensor_shape_str(cond, sc, sizeof sc), tensor_shape_str(a, sa, sizeof sa),
                tensor_shape_str(b, sb, sizeof sb));
        return NULL;
    }
    Tensor *out = tensor_empty(ndim, shape);
    if (out == NULL) return NULL;
    StridedIter it;
    iter_init(&it, ndim, shape, 4, (const Tensor *const[]){out, cond, a, b});
    iter_run(&it, where_kernel, NULL);
    return out;
}

/* ---- in place ---- */

typedef struct AxpyArgs {
    float alpha;
} AxpyArgs;

static void add_inplace_kernel(int64_t n, float *const *p, const int64_t *s, const void *ctx) {
    float *restrict dst = p[0];
    const float *restrict src = p[1];
    if (s[0] == 1 && s[1] == 1) {
        for (int64_t i = 0; i < n; i++) dst[i] += src[i];
    } else if (s[0] == 1 && s[1] == 0) {
        const float v = src[0];
        for (int64_t i = 0; i < n; i++) dst[i] += v;
    } else {
        for (int64_t i = 0; i < n; i++) dst[i * s[0]] += src[i * s[1]];
    }
}

static void mul_inplace_kernel(int64_t n, float *const *p, const int64_t *s, const void *ctx) {
    float *restrict dst = p[0];
    const float *restrict src = p[1];
    if (s[0] == 1 && s[1] == 1) {
        for (int64_t i = 0; i < n; i++) dst[i] *= src[i];
    } else if (s[0] == 1 && s[1] == 0) {
        const float v = src[0];
        for (int64_t i = 0; i < n; i++) dst[i] *= v;
    } else {
        for (int64_t i = 0; i < n; i++) dst[i * s[0]] *= src[i * s[1]];
    }
}

static void axpy_kernel(int64_t n, float *const *p, const int64_t *s, const void *ctx) {
    const float alpha = ((const AxpyArgs *)ctx)->alpha;
    float *restrict dst = p[0];
    const float *restrict src = p[1];
    if (s[0] == 1 && s[1] == 1) {
        for (int64_t i = 0; i < n; i++) dst[i] += alpha * src[i];
    } else {
        for (int64_t i = 0; i < n; i++) dst[i * s[0]] += alpha * src[i * s[1]];
    }
}

/* Checks that src broadcasts to dst's shape exactly and that dst has no
 * repeated elements (an expanded dst would be updated more than once). When
 * same_shape, src must have dst's shape. */
static hg_status check_inplace(const char *op, const Tensor *dst, const Tensor *src,
                               bool same_shape) {
    if (dst == NULL || src == NULL) return hg_fail(HG_ERR_ARG, "%s: tensor is NULL", op);
    char sd[128], ss[128];
    for (int d = 0; d < dst->ndim; d++)
        if (dst->stride[d] == 0 && dst->shape[d] > 1)
            return hg_fail(HG_ERR_ARG, "%s: destination of shape %s is expanded (stride 0)", op,
                           tensor_shape_str(dst, sd, sizeof sd));
    bool ok = same_shape ? tensor_same_shape(dst, src) : src->ndim <= dst->ndim;
    for (int i = 0; ok && !same_shape && i < src->ndim; i++) {
        int64_t s = src->shape[src->ndim - 1 - i], d = dst->shape[dst->ndim - 1 - i];
        ok = s == d || s == 1;
    }
    if (!ok)
        return hg_fail(HG_ERR_SHAPE, "%s: source shape %s %s destination shape %s", op,
                       tensor_shape_str(src, ss, sizeof ss),
                       same_shape ? "differs from" : "does not broadcast to",
                       tensor_shape_str(dst, sd, sizeof sd));
    return HG_OK;
}

static hg_status inplace_apply(const char *op, Tensor *dst, const Tensor *src, bool same_shape,
                               iter_kernel_fn kernel, const void *ctx) {
    hg_status status = check_inplace(op, dst, src, same_shape);
    if (status != HG_OK) return status;
    StridedIter it;
    iter_init(&it, dst->ndim, dst->shape, 2, (const Tensor *const[]){dst, src});
    iter_run(&it, kernel, ctx);
    return HG_OK;
}

hg_status tensor_add_(Tensor *dst, const Tensor *src) {
    return inplace_apply("add_", dst, src, false, add_inplace_kernel, NULL);
}

hg_status tensor_mul_(Tensor *dst, const Tensor *src) {
    return inplace_apply("mul_", dst, src, false, mul_inplace_kernel, NULL);
}

hg_status tensor_axpy_(Tensor *dst, float alpha, const Tensor *src) {
    return inplace_apply("axpy_", dst, src, true, axpy_kernel, &(AxpyArgs){alpha});
}
