/* Element-wise unary ops of tensor/ops.h. Semantics follow PyTorch (float32);
 * NaN propagates through relu, relu6 and clamp as in torch.clamp. */
#include <math.h>

#include "tensor/iterate.h"
#include "tensor/ops.h"

/* Scalar arguments of the parameterized ops (softplus beta, clamp bounds ...). */
typedef struct UnaryArgs {
    float a, b;
} UnaryArgs;

/* Defines name_kernel: out = EXPR with the input element in `x` and the
 * arguments in `args`. The contiguous branch is a plain loop over restrict
 * arrays so the compiler can vectorize it. */
#define UNARY_KERNEL(name, EXPR)                                                                   \
    static void name##_kernel(int64_t n, float *const *p, const int64_t *s, const void *ctx) {     \
        const UnaryArgs *args = ctx;                                                               \
        (void)args;                                                                                \
        float *restrict out = p[0];                                                                \
        const float *restrict in = p[1];                                                           \
        if (s[0] == 1 && s[1] == 1) {                                                              \
            for (int64_t i = 0; i < n; i++) {                                                      \
                float x = in[i];                                                                   \
                out[i] = (EXPR);                                                                   \
            }                                                                                      \
        } else {                                                                                   \
            for (int64_t i = 0; i < n; i++) {                                                      \
                float x = in[i * s[1]];                                                            \
                out[i * s[0]] = (EXPR);                                                            \
            }                                                                                      \
        }                                                                                          \
    }

/* 1 / (1 + exp(-x)) without overflow: with e = exp(-|x|) <= 1 it is 1 / (1 + e)
 * for x >= 0 and e / (1 + e) below. The factor max(sign(x), e) picks 1 or e
 * without a branch (the sign of activations is unpredictable). */
static inline float stable_sigmoid(float x) {
    float e = expf(-fabsf(x));
    return fmaxf(copysignf(1.0f, x), e) / (1.0f + e);
}

/* PyTorch softplus: log1p(exp(beta x)) / beta, linear (x) once beta x > 20. */
static inline float softplus_value(float x, float beta) {
    float bx = beta * x;
    return bx > 20.0f ? x : log1pf(expf(bx)) / beta;
}

/* log(sigmoid(x)) = min(x, 0) - log1p(exp(-|x|)), finite for every finite x. */
static inline float log_sigmoid_value(float x) {
    return fminf(x, 0.0f) - log1pf(expf(-fabsf(x)));
}

static inline float clamp_value(float x, float low, float high) {
    /* max then min, as torch.clamp: low > high gives high; NaN stays NaN. */
    float v = x < low ? low : x;
    return v > high ? high : v;
}

UNARY_KERNEL(neg, -x)
UNARY_KERNEL(exp, expf(x))
UNARY_KERNEL(log, logf(x))
UNARY_KERNEL(sqrt, sqrtf(x))
UNARY_KERNEL(abs, fabsf(x))
UNARY_KERNEL(square, x *x)
UNARY_KERNEL(reciprocal, 1.0f / x)
UNARY_KERNEL(sin, sinf(x))
UNARY_KERNEL(cos, cosf(x))
UNARY_KERNEL(tanh, tanhf(x))
UNARY_KERNEL(sigmoid, stable_sigmoid(x))
UNARY_KERNEL(relu, x < 0.0f ? 0.0f : x)
UNARY_KERNEL(relu6, clamp_value(x, 0.0f, 6.0f))
UNARY_KERNEL(silu, x *stable_sigmoid(x))
/* gelu(x) = x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)) (Hendrycks & Gimpel, exact form). */
UNARY_KERNEL(gelu, 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)))
UNARY_KERNEL(softplus, softplus_value(x, args->a))
UNARY_KERNEL(log_sigmoid, log_sigmoid_value(x))
UNARY_KERNEL(clamp, clamp_value(x, args->a, args->b))
UNARY_KERNEL(scale, x * args->a)
UNARY_KERNEL(add_scalar, x + args->a)
UNARY_KERNEL(pow_scalar, powf(x, args->a))

/* Allocates the result and runs the kernel over every element of x. */
static Tensor *unary_apply(const char *op, const Tensor *x, iter_kernel_fn kernel,
                           const UnaryArgs *args) {
    if (x == NULL) {
        hg_fail(HG_ERR_ARG, "%s: input tensor is NULL", op);
        return NULL;
    }
    Tensor *out = tensor_empty(x->ndim, x->shape);
    if (out == NULL) return NULL;
    StridedIter it;
    iter_init(&it, x->ndim, x->shape, 2, (const Tensor *const[]){out, x});
    iter_run(&it, kernel, args);
    return out;
}

Tensor *tensor_neg(const Tensor *x) {
    return unary_apply("neg", x, neg_kernel, NULL);
}

Tensor *tensor_exp(const Tensor *x) {
    return unary_apply("exp", x, exp_kernel, NULL);
}

Tensor *tensor_log(const Tensor *x) {
    return unary_apply("log", x, log_kernel, NULL);
}

Tensor *tensor_sqrt(const Tensor *x) {
    return unary_apply("sqrt", x, sqrt_kernel, NULL);
}

Tensor *tensor_abs(const Tensor *x) {
    return unary_apply("abs", x, abs_kernel, NULL);
}

Tensor *tensor_square(const Tensor *x) {
    return unary_apply("square", x, square_kernel, NULL);
}

Tensor *tensor_reciprocal(const Tensor *x) {
    return unary_apply("reciprocal", x, reciprocal_kernel, NULL);
}

Tensor *tensor_sin(const Tensor *x) {
    return unary_apply("sin", x, sin_kernel, NULL);
}

Tensor *tensor_cos(const Tensor *x) {
    return unary_apply("cos", x, cos_kernel, NULL);
}

Tensor *tensor_tanh(const Tensor *x) {
    return unary_apply("tanh", x, tanh_kernel, NULL);
}

Tensor *tensor_sigmoid(const Tensor *x) {
    return unary_apply("sigmoid", x, sigmoid_kernel, NULL);
}

Tensor *tensor_relu(const Tensor *x) {
    return unary_apply("relu", x, relu_kernel, NULL);
}

Tensor *tensor_relu6(const Tensor *x) {
    return unary_apply("relu6", x, relu6_kernel, NULL);
}

Tensor *tensor_silu(const Tensor *x) {
    return unary_apply("silu", x, silu_kernel, NULL);
}

Tensor *tensor_gelu(const Tensor *x) {
    return unary_apply("gelu", x, gelu_kernel, NULL);
}

Tensor *tensor_softplus(const Tensor *x, float beta) {
    if (beta == 0 || !isfinite(beta)) {
        hg_fail(HG_ERR_ARG, "softplus: beta must be finite and nonzero, got %g", (double)beta);
        return NULL;
    }
    return unary_apply("softplus", x, softplus_kernel, &(UnaryArgs){beta, 0});
}

Tensor *tensor_log_sigmoid(const Tensor *x) {
    return unary_apply("log_sigmoid", x, log_sigmoid_kernel, NULL);
}

Tensor *tensor_clamp(const Tensor *x, float low, float high) {
    return unary_apply("clamp", x, clamp_kernel, &(UnaryArgs){low, high});
}

Tensor *tensor_scale(const Tensor *x, float factor) {
    return unary_apply("scale", x, scale_kernel, &(UnaryArgs){factor, 0});
}

Tensor *tensor_add_scalar(const Tensor *x, float value) {
    return unary_apply("add_scalar", x, add_scalar_kernel, &(UnaryArgs){value, 0});
}

Tensor *tensor_pow_scalar(const Tensor *x, float exponent) {
    /* Common exponents get exact, vectorizable kernels; powf agrees with them. */
    if (exponent == 2.0f) return unary_apply("pow_scalar", x, square_kernel, NULL);
    if (exponent == 1.0f) return unary_apply("pow_scalar", x, scale_kernel, &(UnaryArgs){1, 0});
    return unary_apply("pow_scalar", x, pow_scalar_kernel, &(UnaryArgs){exponent, 0});
}
