/* Gradient check of a user-defined function, and of a user-written op.
 *
 * Reverse-mode autodiff is only as right as every op's backward. The library
 * checks its own ops with autograd/gradcheck.h; this example shows how you
 * check yours:
 *
 *   1. a function composed from library ops, of x (4 x 3), W (3 x 3), b (3):
 *        h = x W^T + b
 *        f(x, W, b) = softplus(h) * sigmoid(x) + log_cosh(h)     (4 x 3)
 *      where log_cosh is
 *   2. a new op written here with tape_record(): forward and backward side by
 *      side, d/dx log cosh(x) = tanh(x).
 *
 * gradcheck() reduces f to a scalar L = sum(w * f) with fixed random weights
 * w, perturbs every input element by +-eps, compares the central difference
 * (L(x + eps) - L(x - eps)) / 2 eps with dL/dx from tape_backward(), and
 * reports the worst relative error. To see where the errors sit we recompute
 * the per-element errors (the same loop, written out) and draw them as a bar
 * chart: for the right backward, and for the same op with a planted bug (the
 * derivative of tanh, 1 - tanh^2, instead of tanh itself), which the check
 * catches at once.
 *
 * Run: build/examples/gradcheck_custom [out_dir]   -> out_dir/gradcheck_custom.png */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "examples/plot.h"
#include "tensor/ops.h"
#include "tensor/rng.h"

/* ---- a new op: y = log(cosh(x)), element-wise ---- */

/* Forward, computed stably: log cosh x = |x| + log(1 + exp(-2|x|)) - log 2
 * (cosh itself overflows for |x| > 89 in float). */
static Tensor *log_cosh_values(const Tensor *x) {
    Tensor *xc = tensor_contiguous(x);
    Tensor *y = xc ? tensor_empty(x->ndim, x->shape) : NULL;
    if (y) {
        const float *in = tensor_data(xc);
        float *out = tensor_data(y);
        for (int64_t i = 0; i < tensor_numel(y); i++) {
            float a = fabsf(in[i]);
            out[i] = a + log1pf(expf(-2.0f * a)) - (float)M_LN2;
        }
    }
    tensor_free(xc);
    return y;
}

/* Backward: the tape hands us out->grad = dL/dy; we add dL/dx = dL/dy * tanh(x)
 * to the input. The input value was saved by the forward in out->saved[0]. */
static hg_status log_cosh_backward(Var *out) {
    Tensor *slope = tensor_tanh(out->saved[0]);
    Tensor *dx = slope ? tensor_mul(out->grad, slope) : NULL;
    tensor_free(slope);
    return dx ? var_accumulate_grad(out->inputs[0], dx) : hg_last_status();
}

/* The planted bug: 1 - tanh^2 is the derivative of tanh, not of log cosh. */
static hg_status log_cosh_backward_wrong(Var *out) {
    Tensor *t = tensor_tanh(out->saved[0]);
    Tensor *t2 = t ? tensor_pow_scalar(t, 2.0f) : NULL;
    Tensor *minus = t2 ? tensor_neg(t2) : NULL;
    Tensor *slope = minus ? tensor_add_scalar(minus, 1.0f) : NULL;
    Tensor *dx = slope ? tensor_mul(out->grad, slope) : NULL;
    tensor_free(t), tensor_free(t2), tensor_free(minus), tensor_free(slope);
    return dx ? var_accumulate_grad(out->inputs[0], dx) : hg_last_status();
}

/* Records the op. tape_record() takes the value, remembers the input and the
 * backward (only when a gradient will be needed) and returns the tape-owned
 * result; we then keep x's value for the backward in the same case. */
static Var *ag_log_cosh(Tape *tape, Var *x, BackwardFn backward) {
    if (!x) return NULL; /* NULL propagation: an earlier op failed */
    Var *y = tape_record(tape, "log_cosh", log_cosh_values(x->value), 1, &x, backward);
    if (y && y->requires_grad) y->saved[0] = tensor_ref(x->value);
    return y;
}

/* ---- the function under test ---- */

typedef struct {
    BackwardFn log_cosh_backward;
} FunctionContext;

/* inputs: x (4, 3), W (3, 3), b (3); returns f (4, 3). We could return
 * sum(f) instead, but gradcheck reduces a non-scalar output itself, with
 * random weights and in double, which is more precise: the float rounding of
 * a large float sum would swamp the tiny differences L(x + eps) - L(x - eps). */
static Var *f_terms(Tape *tape, Var **in, void *context) {
    const FunctionContext *ctx = context;
    Var *x = in[0], *w = in[1], *b = in[2];
    Var *h = ag_linear(tape, x, w, b); /* x W^T + b */
    Var *gated = ag_mul(tape, ag_softplus(tape, h, 1.0f), ag_sigmoid(tape, x));
    return ag_add(tape, gated, ag_log_cosh(tape, h, ctx->log_cosh_backward));
    /* no NULL checks needed: every op returns NULL if any input was NULL */
}

/* ---- per-element errors, the loop inside gradcheck() written out ---- */

enum { N_INPUTS = 3, MAX_ELEMENTS = 64 };

/* L = sum_k w_k f_k in double, for fixed weights w (the projection to a scalar). */
static double projected(Tape *tape, Var **inputs, FunctionContext *ctx, const Tensor *w) {
    const float *fv = tensor_data(f_terms(tape, inputs, ctx)->value), *wv = tensor_data(w);
    double sum = 0;
    for (int64_t k = 0; k < tensor_numel(w); k++) sum += (double)wv[k] * fv[k];
    tape_reset(tape);
    return sum;
}

/* err[k] for every element k of every input, in input order; returns the count. */
static int element_errors(FunctionContext *ctx, Var **inputs, const GradcheckOptions *options,
                          double *err) {
    /* The projection weights gradcheck() draws: N(0, 1) from its seed. */
    Rng rng = rng_new(options->seed);
    Tensor *w = tensor_normal(SHAPE(4, 3), 0.0f, 1.0f, &rng);
    Tape *tape = tape_new();
    for (int i = 0; i < N_INPUTS; i++) var_zero_grad(inputs[i]);
    /* dL/dx: back-propagate with the weights as the seed gradient of f's output */
    if (tape_backward(tape, f_terms(tape, inputs, ctx), w) != HG_OK) {
        tape_free(tape);
        tensor_free(w);
        return -1;
    }
    tape_set_grad_enabled(tape, false); /* the finite differences need no graph */
    int count = 0;
    for (int i = 0; i < N_INPUTS; i++) {
        float *value = tensor_data(inputs[i]->value), *grad = tensor_data(inputs[i]->grad);
        for (int64_t j = 0; j < tensor_numel(inputs[i]->value); j++) {
            float keep = value[j];
            const float up = (float)(keep + options->eps), down = (float)(keep - options->eps);
            value[j] = up;
            double plus = projected(tape, inputs, ctx, w);
            value[j] = down;
            double minus = projected(tape, inputs, ctx, w);
            value[j] = keep;
            /* divide by the step actually taken (x +- eps rounded to float) */
            double numeric = (plus - minus) / ((double)up - (double)down), analytic = grad[j];
            /* Relative error, with a floor on the denominator as gradcheck: f is
             * computed in float32, so each f_k carries a rounding error of about
             * 1e-7 |f_k|, which the difference quotient magnifies by 1 / eps
             * whatever the backward; gradients much smaller than the floor would
             * show that noise as large relative errors. */
            err[count++] = fabs(analytic - numeric) /
                           fmax(fmax(fabs(analytic), fabs(numeric)), options->floor);
        }
    }
    tape_free(tape);
    tensor_free(w);
    return count;
}

/* ---- drawing: one bar per element, log10 scale ---- */

static void bar_chart(Image *img, int left, int top, const char *title, const double *err, int n,
                      const int *group_sizes, const char *const *group_names, double tolerance) {
    const int w = 400, h = 220;
    Panel p = panel_new(img, left, top, w, h, 0, n, -8, 1);
    plot_fill_rect(img, left, top, w, h, (PlotColor){245, 245, 245});
    int k = 0;
    for (int g = 0; g < N_INPUTS; g++) {
        double first = k;
        for (int e = 0; e < group_sizes[g]; e++, k++) {
            double v = fmin(log10(fmax(err[k], 1e-8)), 1), px0, px1, py0, py1;
            panel_to_pixel(&p, k + 0.15, v, &px0, &py0);
            panel_to_pixel(&p, k + 0.85, -8, &px1, &py1);
            plot_fill_rect(img, (int)px0, (int)py0, (int)(px1 - px0), (int)(py1 - py0) + 1,
                           plot_palette(g));
        }
        double cx, cy;
        panel_to_pixel(&p, (first + k) / 2, -8, &cx, &cy);
        plot_text(img, (int)cx - plot_text_width(group_names[g], 2) / 2, top + h + 18, 2,
                  plot_palette(g), group_names[g]);
    }
    double tx, ty, tx1, ty1;
    panel_to_pixel(&p, 0, log10(tolerance), &tx, &ty);
    panel_to_pixel(&p, n, log10(tolerance), &tx1, &ty1);
    for (int x = (int)tx; x < (int)tx1; x += 6)
        draw_line(img, x, (int)ty, x + 3, (int)ty, (PlotColor){200, 0, 0});
    plot_text(img, (int)tx1 - plot_text_width("TOLERANCE", 1) - 2, (int)ty - 8, 1,
              (PlotColor){200, 0, 0}, "TOLERANCE");
    panel_axes(&p, title, PLOT_BLACK);
}

int main(int argc, char **argv) {
    /* Leaves that require a gradient: the inputs of the check. */
    Rng rng = rng_new(7);
    Var *inputs[N_INPUTS] = {
        var_new(tensor_normal(SHAPE(4, 3), 0.0f, 1.0f, &rng), true),
        var_new(tensor_normal(SHAPE(3, 3), 0.0f, 1.0f, &rng), true),
        var_new(tensor_normal(SHAPE(3), 0.0f, 1.0f, &rng), true),
    };
    const int group_sizes[N_INPUTS] = {12, 9, 3};
    const char *const group_names[N_INPUTS] = {"X", "W", "B"};

    GradcheckOptions options = gradcheck_default_options(); /* eps 1e-2, tolerance 1e-3 */
    FunctionContext right = {log_cosh_backward}, wrong = {log_cosh_backward_wrong};
    double err_right[MAX_ELEMENTS], err_wrong[MAX_ELEMENTS];
    int status = 0;

    for (int pass = 0; pass < 2; pass++) {
        FunctionContext *ctx = pass == 0 ? &right : &wrong;
        GradcheckReport report;
        hg_status s = gradcheck(f_terms, ctx, N_INPUTS, inputs, &options, &report);
        printf("%s backward: %lld elements checked, worst relative error %.3g "
               "(input %d element %lld: analytic %.6g, numeric %.6g) -> %s\n",
               pass == 0 ? "right" : "wrong", (long long)report.checked, report.max_rel_error,
               report.worst_input, (long long)report.worst_index, report.analytic, report.numeric,
               s == HG_OK ? "PASS" : "FAIL");
        if (s != HG_OK) printf("  hg_last_error(): %s\n", hg_last_error());
        hg_clear_error();
        /* The example fails if the check does not tell the two apart. */
        if ((pass == 0) != (s == HG_OK)) status = 1;
    }
    int n = element_errors(&right, inputs, &options, err_right);
    if (n < 0 || element_errors(&wrong, inputs, &options, err_wrong) != n) {
        fprintf(stderr, "gradcheck_custom: %s\n", hg_last_error());
        return 1;
    }

    Image *img = canvas_new(960, 330, PLOT_WHITE);
    bar_chart(img, 50, 40, "RIGHT BACKWARD", err_right, n, group_sizes, group_names,
              options.tolerance);
    bar_chart(img, 530, 40, "PLANTED BUG", err_wrong, n, group_sizes, group_names,
              options.tolerance);
    plot_text(img, 8, 40, 1, PLOT_BLACK, "LOG10");
    plot_text(img, 50, 312, 1, PLOT_BLACK,
              "BARS: LOG10 RELATIVE ERROR OF DL/D(ELEMENT), L = SUM(W F), FOR EACH ELEMENT OF X "
              "(4X3), W (3X3), B (3). "
              "DASHED: GRADCHECK TOLERANCE 1E-3.");
    char path[512];
    if (!example_output_path(argc, argv, "gradcheck_custom.png", path, sizeof path) ||
        image_save_png(path, img) != HG_OK) {
        fprintf(stderr, "gradcheck_custom: cannot write the PNG: %s\n", hg_last_error());
        status = 1;
    } else {
        printf("wrote %s\n", path);
    }
    image_free(img);
    for (int i = 0; i < N_INPUTS; i++) var_free(inputs[i]);
    return status;
}
