/* Differentiable element-wise binary ops (numpy broadcasting), each forward
 * followed by its backward.
 *
 * A backward computes each input's gradient in the broadcast (output) shape;
 * var_accumulate_grad() then sums it over the dims that input was broadcast
 * along. Only inputs that require a gradient get one. */
#include "autograd/internal.h"

static hg_status add_backward(Var *out);
static hg_status sub_backward(Var *out);
static hg_status mul_backward(Var *out);
static hg_status div_backward(Var *out);
static hg_status maximum_backward(Var *out);
static hg_status minimum_backward(Var *out);
static hg_status where_backward(Var *out);

static Var *record_binary(Tape *t, const char *op, Var *a, Var *b, Tensor *value,
                          BackwardFn backward) {
    Var *in[2] = {a, b};
    return tape_record(t, op, value, 2, in, backward);
}

/* Gives `grad` (taken) to input i when it requires one, else drops it. */
static hg_status give(Var *out, int i, Tensor *grad) {
    return var_accumulate_grad(out->inputs[i], grad);
}

static bool wants(const Var *out, int i) {
    return out->inputs[i]->requires_grad;
}

/* ---- add, sub ---- */
Var *ag_add(Tape *t, Var *a, Var *b) {
    Var *in[2] = {a, b};
    if (!ag_check("add", t, 2, in)) return NULL;
    return record_binary(t, "add", a, b, tensor_add(a->value, b->value), add_backward);
}

static hg_status add_backward(Var *out) {
    hg_status s = HG_OK;
    if (wants(out, 0)) s = give(out, 0, tensor_ref(out->grad));
    if (s == HG_OK && wants(out, 1)) s = give(out, 1, tensor_ref(out->grad));
    return s;
}

Var *ag_sub(Tape *t, Var *a, Var *b) {
    Var *in[2] = {a, b};
    if (!ag_check("sub", t, 2, in)) return NULL;
    return record_binary(t, "sub", a, b, tensor_sub(a->value, b->value), sub_backward);
}

static hg_status sub_backward(Var *out) {
    hg_status s = HG_OK;
    if (wants(out, 0)) s = give(out, 0, tensor_ref(out->grad));
    if (s == HG_OK && wants(out, 1)) s = give(out, 1, tensor_neg(out->grad));
    return s;
}

/* ---- mul ---- */
Var *ag_mul(Tape *t, Var *a, Var *b) {
    Var *in[2] = {a, b};
    if (!ag_check("mul", t, 2, in)) return NULL;
    Var *out = record_binary(t, "mul", a, b, tensor_mul(a->value, b->value), mul_backward);
    if (out == NULL) return NULL;
    /* d(ab)/da = b and d(ab)/db = a: keep only the factor some gradient needs. */
    if (b->requires_grad && !ag_save(out, 0, a->value)) return NULL;
    if (a->requires_grad && !ag_save(out, 1, b->value)) return NULL;
    return out;
}

static hg_status mul_backward(Var *out) {
    hg_status s = HG_OK;
    if (wants(out, 0)) s = give(out, 0, tensor_mul(out->grad, out->saved[1]));
    if (s == HG_OK && wants(out, 1)) s = give(out, 1, tensor_mul(out->grad, out->saved[0]));
    return s;
}

/* ---- div ---- */
Var *ag_div(Tape *t, Var *a, Var *b) {
    Var *in[2] = {a, b};
    if (!ag_check("div", t, 2, in)) return NULL;
    Var *out = record_binary(t, "div", a, b, tensor_div(a->value, b->value), div_backward);
    if (out == NULL) return NULL;
    if (!ag_save(out, 1, b->value)) return NULL;
    if (b->requires_grad && !ag_save(out, 0, out->value)) return NULL;
    return out;
}

/* y = a / b:  dL/da = g / b,  dL/db = -g a / b^2 = -(g / b) y.  A = g / b, B = y. */
GRAD_KERNEL2(div_grad_b, -A *B)
static hg_status div_backward(Var *out) {
    Tensor *g_over_b = tensor_div(out->grad, out->saved[1]);
    if (g_over_b == NULL) return hg_last_status();
    hg_status s = HG_OK;
    if (wants(out, 1)) s = give(out, 1, div_grad_b(g_over_b, out->saved[0], 0));
    if (s == HG_OK && wants(out, 0))
        s = give(out, 0, g_over_b);
    else
        tensor_free(g_over_b);
    return s;
}

/* ---- maximum, minimum ---- */
/* Shared forward: saves both inputs, which the backward compares. */
static Var *record_extremum(Tape *t, const char *op, Var *a, Var *b, Tensor *value,
                            BackwardFn backward) {
    Var *out = record_binary(t, op, a, b, value, backward);
    if (out == NULL) return NULL;
    if (!ag_save(out, 0, a->value) || !ag_save(out, 1, b->value)) return NULL;
    return out;
}

Var *ag_maximum(Tape *t, Var *a, Var *b) {
    Var *in[2] = {a, b};
    if (!ag_check("maximum", t, 2, in)) return NULL;
    return record_extremum(t, "maximum", a, b, tensor_maximum(a->value, b->value),
                           maximum_backward);
}

/* The gradient goes to the larger input; a tie splits it in halves (as
 * PyTorch). A = this input, B = the other (both in the output shape), C = g. */
GRAD_KERNEL3(maximum_grad, A > B ? C : A == B ? 0.5f * C : 0.0f)
GRAD_KERNEL3(minimum_grad, A < B ? C : A == B ? 0.5f * C : 0.0f)

typedef Tensor *(*ExtremumGrad)(const Tensor *, const Tensor *, const Tensor *, float);

static hg_status extremum_backward(Var *out, ExtremumGrad grad_of) {
    const Tensor *y = out->value;
    Tensor *a = tensor_expand(out->saved[0], y->ndim, y->shape);
    Tensor *b = tensor_expand(out->saved[1], y->ndim, y->shape);
    hg_status s = a && b ? HG_OK : hg_last_status();
    if (s == HG_OK && wants(out, 0)) s = give(out, 0, grad_of(a, b, out->grad, 0));
    if (s == HG_OK && wants(out, 1)) s = give(out, 1, grad_of(b, a, out->grad, 0));
    tensor_free(a);
    tensor_free(b);
    return s;
}

static hg_status maximum_backward(Var *out) {
    return extremum_backward(out, maximum_grad);
}

Var *ag_minimum(Tape *t, Var *a, Var *b) {
    Var *in[2] = {a, b};
    if (!ag_check("minimum", t, 2, in)) return NULL;
    return record_extremum(t, "minimum", a, b, tensor_minimum(a->value, b->value),
                           minimum_backward);
}

static hg_status minimum_backward(Var *out) {
    return extremum_backward(out, minimum_grad);
}

/* ---- where ---- */
Var *ag_where(Tape *t, const Tensor *cond, Var *a, Var *b) {
    Var *in[2] = {a, b};
    if (!ag_check("where", t, 2, in)) return NULL;
    if (cond == NULL) {
        hg_fail(HG_ERR_ARG, "where: cond is NULL");
        return NULL;
    }
    Var *out =
        record_binary(t, "where", a, b, tensor_where(cond, a->value, b->value), where_backward);
    if (out == NULL || !ag_save(out, 0, cond)) return NULL;
    return out;
}

/* The gradient flows to a where cond != 0 and to b elsewhere. */
static hg_status where_backward(Var *out) {
    Tensor *zero = tensor_scalar(0.0f);
    if (zero == NULL) return hg_last_status();
    const Tensor *cond = out->saved[0];
    hg_status s = HG_OK;
    if (wants(out, 0)) s = give(out, 0, tensor_where(cond, out->grad, zero));
    if (s == HG_OK && wants(out, 1)) s = give(out, 1, tensor_where(cond, zero, out->grad));
    tensor_free(zero);
    return s;
}
