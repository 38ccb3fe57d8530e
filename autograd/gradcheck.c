/* Central-difference gradient checker (see gradcheck.h). */
#include "autograd/gradcheck.h"

#include <math.h>
#include <stdlib.h>

#include "autograd/internal.h"
#include "tensor/rng.h"

GradcheckOptions gradcheck_default_options(void) {
    return (GradcheckOptions){.eps = 1e-2, .tolerance = 1e-3, .floor = 1e-2, .seed = 0x5eed};
}

typedef struct {
    GradcheckFn f;
    void *context;
    Var **inputs;
    Tape *tape;
    const float *weights; /* row-major, the output's shape */
    const Tensor *shape;  /* the first output, whose shape every evaluation must have */
    float *buffer;        /* scratch for one output */
} Objective;

/* L(x) = sum_i w_i f(x)_i in double, evaluated without recording a graph. */
static hg_status objective(Objective *o, double *value) {
    tape_set_grad_enabled(o->tape, false);
    Var *y = o->f(o->tape, o->inputs, o->context);
    hg_status s = HG_OK;
    char a[96], b[96];
    if (y == NULL)
        s = hg_last_status() != HG_OK
                ? hg_last_status()
                : hg_fail(HG_ERR_ARG, "gradcheck: the function returned NULL");
    else if (!tensor_same_shape(y->value, o->shape))
        s = hg_fail(HG_ERR_CHECK, "gradcheck: output shape changed from %s to %s",
                    tensor_shape_str(o->shape, a, sizeof a),
                    tensor_shape_str(y->value, b, sizeof b));
    else
        s = tensor_to_array(y->value, o->buffer);
    if (s == HG_OK) {
        double sum = 0;
        int64_t n = tensor_numel(o->shape);
        for (int64_t i = 0; i < n; i++) sum += (double)o->weights[i] * (double)o->buffer[i];
        *value = sum;
    }
    tape_reset(o->tape);
    tape_set_grad_enabled(o->tape, true);
    return s;
}

/* Address of the element with row-major flat index `flat` in any strided view. */
static float *element_at(const Tensor *t, int64_t flat) {
    float *p = tensor_data(t);
    for (int d = t->ndim - 1; d >= 0; d--) {
        p += (flat % t->shape[d]) * t->stride[d];
        flat /= t->shape[d];
    }
    return p;
}

static hg_status check_inputs(int n_inputs, Var **inputs) {
    if (n_inputs < 0 || (n_inputs > 0 && inputs == NULL))
        return hg_fail(HG_ERR_ARG, "gradcheck: %d inputs", n_inputs);
    for (int i = 0; i < n_inputs; i++) {
        if (inputs[i] == NULL) return hg_fail(HG_ERR_ARG, "gradcheck: input %d is NULL", i);
        if (inputs[i]->on_tape) return hg_fail(HG_ERR_ARG, "gradcheck: input %d is not a leaf", i);
        /* Perturbing one stored element of an expanded value would move many. */
        const Tensor *v = inputs[i]->value;
        for (int d = 0; d < v->ndim; d++)
            if (v->stride[d] == 0 && v->shape[d] > 1)
                return hg_fail(HG_ERR_ARG, "gradcheck: input %d is expanded (stride 0)", i);
    }
    return HG_OK;
}

/* The first pass: records f, back-propagates the weights and leaves dL/dx in
 * every input's grad. Also makes the weights (returned in *weights, a tensor of
 * the output's shape) and a copy of the output's shape (*shape). */
static hg_status analytic_pass(GradcheckFn f, void *context, int n_inputs, Var **inputs, Tape *tape,
                               uint64_t seed, Tensor **weights, Tensor **shape) {
    for (int i = 0; i < n_inputs; i++) var_zero_grad(inputs[i]);
    Var *y = f(tape, inputs, context);
    if (y == NULL) {
        hg_status s = hg_last_status();
        return s != HG_OK ? s : hg_fail(HG_ERR_ARG, "gradcheck: the function returned NULL");
    }
    Rng rng = rng_new(seed);
    *weights = tensor_normal(y->value->ndim, y->value->shape, 0.0f, 1.0f, &rng);
    *shape = *weights ? tensor_empty(y->value->ndim, y->value->shape) : NULL;
    if (*shape == NULL) return hg_last_status();
    /* Without any input needing a gradient every analytic gradient is 0. */
    if (!y->requires_grad) {
        tape_reset(tape);
        return HG_OK;
    }
    return tape_backward(tape, y, *weights);
}

hg_status gradcheck(GradcheckFn f, void *context, int n_inputs, Var **inputs,
                    const GradcheckOptions *options, GradcheckReport *report) {
    GradcheckOptions opt = options ? *options : gradcheck_default_options();
    GradcheckReport rep = {.worst_input = -1, .worst_index = -1};
    if (f == NULL) return hg_fail(HG_ERR_ARG, "gradcheck: function is NULL");
    hg_status s = check_inputs(n_inputs, inputs);
    if (s != HG_OK) return s;
    if (!(opt.eps > 0)) return hg_fail(HG_ERR_ARG, "gradcheck: eps %g is not positive", opt.eps);

    Tape *tape = tape_new();
    if (tape == NULL) return hg_last_status();
    Tensor *weights = NULL, *shape = NULL;
    float *buffer = NULL;
    s = analytic_pass(f, context, n_inputs, inputs, tape, opt.seed, &weights, &shape);
    if (s == HG_OK) {
        int64_t n_out = tensor_numel(shape);
        buffer = malloc(sizeof(float) * (size_t)(n_out > 0 ? n_out : 1));
        if (buffer == NULL) s = hg_fail(HG_ERR_NOMEM, "gradcheck: out of memory");
    }
    Objective o = {f, context, inputs, tape, weights ? tensor_data(weights) : NULL, shape, buffer};

    for (int i = 0; s == HG_OK && i < n_inputs; i++) {
        Var *x = inputs[i];
        if (!x->requires_grad) continue;
        int64_t n = tensor_numel(x->value);
        for (int64_t j = 0; s == HG_OK && j < n; j++) {
            float *p = element_at(x->value, j);
            const float original = *p;
            double plus = 0, minus = 0;
            /* The steps actually taken (x +- eps rounded to float) are used as the
             * denominator, so float rounding of the perturbation cancels. */
            const float x_plus = (float)(original + opt.eps), x_minus = (float)(original - opt.eps);
            *p = x_plus;
            s = objective(&o, &plus);
            *p = x_minus;
            if (s == HG_OK) s = objective(&o, &minus);
            *p = original;
            if (s != HG_OK) break;
            double numeric = (plus - minus) / ((double)x_plus - (double)x_minus);
            /* grad is contiguous with x's shape (var_accumulate_grad); none means 0. */
            double analytic = x->grad ? (double)tensor_data(x->grad)[j] : 0.0;
            double scale = fmax(fmax(fabs(analytic), fabs(numeric)), opt.floor);
            double err = fabs(analytic - numeric) / scale;
            if (isnan(err)) err = INFINITY;
            rep.checked++;
            if (rep.worst_input < 0 || err > rep.max_rel_error) {
                rep.max_rel_error = err;
                rep.worst_input = i;
                rep.worst_index = j;
                rep.analytic = analytic;
                rep.numeric = numeric;
            }
        }
    }
    if (s == HG_OK && rep.checked > 0 && !(rep.max_rel_error <= opt.tolerance))
        s = hg_fail(HG_ERR_CHECK,
                    "gradcheck: input %d element %lld: analytic %.6g vs numeric %.6g (relative "
                    "error %.3g > %.3g)",
                    rep.worst_input, (long long)rep.worst_index, rep.analytic, rep.numeric,
                    rep.max_rel_error, opt.tolerance);
    if (report) *report = rep;
    free(buffer);
    tensor_free(weights);
    tensor_free(shape);
    tape_free(tape);
    return s;
}
