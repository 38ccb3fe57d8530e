/* Differentiable element-wise unary ops, each forward followed by its backward.
 *
 * A backward receives dL/dy in out->grad and adds dL/dx = dL/dy * f'(x) to
 * x = out->inputs[0] (which requires a gradient whenever a backward runs).
 * In the GRAD_KERNEL2 formulas, A is the saved tensor (x or y, as noted) and
 * B is dL/dy. */
#include <math.h>

#include "autograd/internal.h"

/* What the backward needs: nothing, the input x, or the output y (saved[0]). */
typedef enum { KEEP_NOTHING, KEEP_INPUT, KEEP_OUTPUT } Keep;

/* Records y = value (computed from x) and saves what `keep` asks for. */
static Var *record_unary(Tape *t, const char *op, Var *x, Tensor *value, BackwardFn backward,
                         Keep keep) {
    Var *out = tape_record(t, op, value, 1, &x, backward);
    if (out == NULL) return NULL;
    bool ok = keep == KEEP_INPUT    ? ag_save(out, 0, x->value)
              : keep == KEEP_OUTPUT ? ag_save(out, 0, out->value)
                                    : true;
    return ok ? out : NULL;
}

static hg_status give_x(Var *out, Tensor *grad_x) {
    return var_accumulate_grad(out->inputs[0], grad_x);
}

/* dL/dx = dL/dy * saved[0]. */
static hg_status give_grad_times_saved(Var *out) {
    return give_x(out, tensor_mul(out->grad, out->saved[0]));
}

static hg_status neg_backward(Var *out);
static hg_status exp_backward(Var *out);
static hg_status log_backward(Var *out);
static hg_status sqrt_backward(Var *out);
static hg_status abs_backward(Var *out);
static hg_status square_backward(Var *out);
static hg_status reciprocal_backward(Var *out);
static hg_status sin_backward(Var *out);
static hg_status cos_backward(Var *out);
static hg_status tanh_backward(Var *out);
static hg_status sigmoid_backward(Var *out);
static hg_status relu_backward(Var *out);
static hg_status relu6_backward(Var *out);
static hg_status silu_backward(Var *out);
static hg_status gelu_backward(Var *out);
static hg_status softplus_backward(Var *out);
static hg_status log_sigmoid_backward(Var *out);
static hg_status clamp_backward(Var *out);
static hg_status scale_backward(Var *out);
static hg_status add_scalar_backward(Var *out);
static hg_status pow_scalar_backward(Var *out);

/* ---- neg ---- */
Var *ag_neg(Tape *t, Var *x) {
    if (!ag_check("neg", t, 1, &x)) return NULL;
    return record_unary(t, "neg", x, tensor_neg(x->value), neg_backward, KEEP_NOTHING);
}

static hg_status neg_backward(Var *out) {
    return give_x(out, tensor_neg(out->grad));
}

/* ---- exp ---- */
Var *ag_exp(Tape *t, Var *x) {
    if (!ag_check("exp", t, 1, &x)) return NULL;
    return record_unary(t, "exp", x, tensor_exp(x->value), exp_backward, KEEP_OUTPUT);
}

/* (e^x)' = e^x = y. */
static hg_status exp_backward(Var *out) {
    return give_grad_times_saved(out);
}

/* ---- log ---- */
Var *ag_log(Tape *t, Var *x) {
    if (!ag_check("log", t, 1, &x)) return NULL;
    return record_unary(t, "log", x, tensor_log(x->value), log_backward, KEEP_INPUT);
}

static hg_status log_backward(Var *out) {
    return give_x(out, tensor_div(out->grad, out->saved[0]));
}

/* ---- sqrt ---- */
Var *ag_sqrt(Tape *t, Var *x) {
    if (!ag_check("sqrt", t, 1, &x)) return NULL;
    return record_unary(t, "sqrt", x, tensor_sqrt(x->value), sqrt_backward, KEEP_OUTPUT);
}

/* (sqrt x)' = 1 / (2 sqrt x) = 0.5 / y  (A = y). */
GRAD_KERNEL2(sqrt_grad, 0.5f * B / A)
static hg_status sqrt_backward(Var *out) {
    return give_x(out, sqrt_grad(out->saved[0], out->grad, 0));
}

/* ---- abs ---- */
Var *ag_abs(Tape *t, Var *x) {
    if (!ag_check("abs", t, 1, &x)) return NULL;
    return record_unary(t, "abs", x, tensor_abs(x->value), abs_backward, KEEP_INPUT);
}

/* |x|' = sign(x), taken as 0 at x = 0 (as PyTorch).  A = x. */
GRAD_KERNEL2(abs_grad, A > 0 ? B : A < 0 ? -B : 0.0f)
static hg_status abs_backward(Var *out) {
    return give_x(out, abs_grad(out->saved[0], out->grad, 0));
}

/* ---- square ---- */
Var *ag_square(Tape *t, Var *x) {
    if (!ag_check("square", t, 1, &x)) return NULL;
    return record_unary(t, "square", x, tensor_square(x->value), square_backward, KEEP_INPUT);
}

GRAD_KERNEL2(square_grad, 2.0f * A * B)
static hg_status square_backward(Var *out) {
    return give_x(out, square_grad(out->saved[0], out->grad, 0));
}

/* ---- reciprocal ---- */
Var *ag_reciprocal(Tape *t, Var *x) {
    if (!ag_check("reciprocal", t, 1, &x)) return NULL;
    return record_unary(t, "reciprocal", x, tensor_reciprocal(x->value), reciprocal_backward,
                        KEEP_OUTPUT);
}

/* (1/x)' = -1/x^2 = -y^2  (A = y). */
GRAD_KERNEL2(reciprocal_grad, -A *A *B)
static hg_status reciprocal_backward(Var *out) {
    return give_x(out, reciprocal_grad(out->saved[0], out->grad, 0));
}

/* ---- sin, cos ---- */
Var *ag_sin(Tape *t, Var *x) {
    if (!ag_check("sin", t, 1, &x)) return NULL;
    return record_unary(t, "sin", x, tensor_sin(x->value), sin_backward, KEEP_INPUT);
}

GRAD_KERNEL2(sin_grad, cosf(A) * B)
static hg_status sin_backward(Var *out) {
    return give_x(out, sin_grad(out->saved[0], out->grad, 0));
}

Var *ag_cos(Tape *t, Var *x) {
    if (!ag_check("cos", t, 1, &x)) return NULL;
    return record_unary(t, "cos", x, tensor_cos(x->value), cos_backward, KEEP_INPUT);
}

GRAD_KERNEL2(cos_grad, -sinf(A) * B)
static hg_status cos_backward(Var *out) {
    return give_x(out, cos_grad(out->saved[0], out->grad, 0));
}

/* ---- tanh ---- */
Var *ag_tanh(Tape *t, Var *x) {
    if (!ag_check("tanh", t, 1, &x)) return NULL;
    return record_unary(t, "tanh", x, tensor_tanh(x->value), tanh_backward, KEEP_OUTPUT);
}

/* tanh' = 1 - tanh^2 = 1 - y^2  (A = y). */
GRAD_KERNEL2(tanh_grad, (1.0f - A * A) * B)
static hg_status tanh_backward(Var *out) {
    return give_x(out, tanh_grad(out->saved[0], out->grad, 0));
}

/* ---- sigmoid ---- */
Var *ag_sigmoid(Tape *t, Var *x) {
    if (!ag_check("sigmoid", t, 1, &x)) return NULL;
    return record_unary(t, "sigmoid", x, tensor_sigmoid(x->value), sigmoid_backward, KEEP_OUTPUT);
}

/* s' = s (1 - s)  (A = y = s). */
GRAD_KERNEL2(sigmoid_grad, A *(1.0f - A) * B)
static hg_status sigmoid_backward(Var *out) {
    return give_x(out, sigmoid_grad(out->saved[0], out->grad, 0));
}

/* ---- relu, relu6 ---- */
Var *ag_relu(Tape *t, Var *x) {
    if (!ag_check("relu", t, 1, &x)) return NULL;
    return record_unary(t, "relu", x, tensor_relu(x->value), relu_backward, KEEP_OUTPUT);
}

/* 1 where x > 0, i.e. where y = relu(x) > 0; 0 at the kink (as PyTorch). A = y. */
GRAD_KERNEL2(relu_grad, A > 0 ? B : 0.0f)
static hg_status relu_backward(Var *out) {
    return give_x(out, relu_grad(out->saved[0], out->grad, 0));
}

Var *ag_relu6(Tape *t, Var *x) {
    if (!ag_check("relu6", t, 1, &x)) return NULL;
    return record_unary(t, "relu6", x, tensor_relu6(x->value), relu6_backward, KEEP_INPUT);
}

/* 1 on the open interval (0, 6), as PyTorch's hardtanh backward.  A = x. */
GRAD_KERNEL2(relu6_grad, A > 0 && A < 6 ? B : 0.0f)
static hg_status relu6_backward(Var *out) {
    return give_x(out, relu6_grad(out->saved[0], out->grad, 0));
}

/* ---- silu ---- */
Var *ag_silu(Tape *t, Var *x) {
    if (!ag_check("silu", t, 1, &x)) return NULL;
    return record_unary(t, "silu", x, tensor_silu(x->value), silu_backward, KEEP_INPUT);
}

/* (x s(x))' = s + x s (1 - s) = s (1 + x (1 - s)), s = sigmoid(x).  A = x. */
static inline float silu_derivative(float x) {
    float s = 1.0f / (1.0f + expf(-x));
    return s * (1.0f + x * (1.0f - s));
}
GRAD_KERNEL2(silu_grad, silu_derivative(A) * B)
static hg_status silu_backward(Var *out) {
    return give_x(out, silu_grad(out->saved[0], out->grad, 0));
}

/* ---- gelu (erf form) ---- */
Var *ag_gelu(Tape *t, Var *x) {
    if (!ag_check("gelu", t, 1, &x)) return NULL;
    return record_unary(t, "gelu", x, tensor_gelu(x->value), gelu_backward, KEEP_INPUT);
}

/* gelu(x) = x Phi(x), so gelu' = Phi(x) + x phi(x) with Phi the normal CDF
 * 0.5 (1 + erf(x / sqrt 2)) and phi the density exp(-x^2 / 2) / sqrt(2 pi).  A = x. */
static inline float gelu_derivative(float x) {
    const float inv_sqrt2 = 0.70710678118654752f, inv_sqrt_2pi = 0.39894228040143268f;
    return 0.5f * (1.0f + erff(x * inv_sqrt2)) + x * inv_sqrt_2pi * expf(-0.5f * x * x);
}
GRAD_KERNEL2(gelu_grad, gelu_derivative(A) * B)
static hg_status gelu_backward(Var *out) {
    return give_x(out, gelu_grad(out->saved[0], out->grad, 0));
}

/* ---- softplus ---- */
Var *ag_softplus(Tape *t, Var *x, float beta) {
    if (!ag_check("softplus", t, 1, &x)) return NULL;
    Var *out = record_unary(t, "softplus", x, tensor_softplus(x->value, beta), softplus_backward,
                            KEEP_INPUT);
    if (out) out->scalars[0] = beta;
    return out;
}

/* d/dx log(1 + e^(beta x)) / beta = e^(beta x) / (1 + e^(beta x)) = sigmoid(beta x).
 * A = x, P = beta; exp overflow gives 1 / inf = 0, the right limit. */
GRAD_KERNEL2(softplus_grad, B / (1.0f + expf(-P * A)))
static hg_status softplus_backward(Var *out) {
    return give_x(out, softplus_grad(out->saved[0], out->grad, (float)out->scalars[0]));
}

/* ---- log_sigmoid ---- */
Var *ag_log_sigmoid(Tape *t, Var *x) {
    if (!ag_check("log_sigmoid", t, 1, &x)) return NULL;
    return record_unary(t, "log_sigmoid", x, tensor_log_sigmoid(x->value), log_sigmoid_backward,
                        KEEP_INPUT);
}

/* (log s(x))' = s'/s = 1 - s(x) = s(-x) = 1 / (1 + e^x).  A = x. */
GRAD_KERNEL2(log_sigmoid_grad, B / (1.0f + expf(A)))
static hg_status log_sigmoid_backward(Var *out) {
    return give_x(out, log_sigmoid_grad(out->saved[0], out->grad, 0));
}

/* ---- clamp ---- */
Var *ag_clamp(Tape *t, Var *x, float low, float high) {
    if (!ag_check("clamp", t, 1, &x)) return NULL;
    Var *out =
        record_unary(t, "clamp", x, tensor_clamp(x->value, low, high), clamp_backward, KEEP_INPUT);
    if (out && !ag_save(out, 1, out->value)) return NULL;
    if (out) {
        out->scalars[0] = low;
        out->scalars[1] = high;
    }
    return out;
}

/* 1 where low <= x <= high (PyTorch's convention at the ends), else 0; those
 * are exactly the elements that clamp left unchanged, y == x.
 * A = x, B = y, C = dL/dy. */
GRAD_KERNEL3(clamp_grad, A == B ? C : 0.0f)
static hg_status clamp_backward(Var *out) {
    return give_x(out, clamp_grad(out->saved[0], out->saved[1], out->grad, 0));
}

/* ---- scale, add_scalar ---- */
Var *ag_scale(Tape *t, Var *x, float factor) {
    if (!ag_check("scale", t, 1, &x)) return NULL;
    Var *out =
        record_unary(t, "scale", x, tensor_scale(x->value, factor), scale_backward, KEEP_NOTHING);
    if (out) out->scalars[0] = factor;
    return out;
}

static hg_status scale_backward(Var *out) {
    return give_x(out, tensor_scale(out->grad, (float)out->scalars[0]));
}

Var *ag_add_scalar(Tape *t, Var *x, float value) {
    if (!ag_check("add_scalar", t, 1, &x)) return NULL;
    return record_unary(t, "add_scalar", x, tensor_add_scalar(x->value, value), add_scalar_backward,
                        KEEP_NOTHING);
}

static hg_status add_scalar_backward(Var *out) {
    return give_x(out, tensor_ref(out->grad));
}

/* ---- pow_scalar ---- */
Var *ag_pow_scalar(Tape *t, Var *x, float exponent) {
    if (!ag_check("pow_scalar", t, 1, &x)) return NULL;
    Var *out = record_unary(t, "pow_scalar", x, tensor_pow_scalar(x->value, exponent),
                            pow_scalar_backward, KEEP_INPUT);
    if (out) out->scalars[0] = exponent;
    return out;
}

/* (x^p)' = p x^(p-1); exactly 0 for p = 0 (x^-1 would give 0 * inf at x = 0).
 * A = x, P = p. */
GRAD_KERNEL2(pow_grad, P == 0.0f ? 0.0f : P * powf(A, P - 1.0f) * B)
static hg_status pow_scalar_backward(Var *out) {
    return give_x(out, pow_grad(out->saved[0], out->grad, (float)out->scalars[0]));
}
