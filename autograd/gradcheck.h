/* Finite-difference gradient checker (central differences).
 *
 * The function under test maps input Vars to one output Var on a tape. The
 * checker reduces the output to a scalar with fixed random weights,
 * L = sum(w * f(x)) accumulated in double, compares dL/dx from tape_backward()
 * with (L(x + eps e_i) - L(x - eps e_i)) / (2 eps) for every element of every
 * input that requires a gradient, and reports the worst relative error
 * |analytic - numeric| / max(|analytic|, |numeric|, floor). */
#ifndef HG_GRADCHECK_H
#define HG_GRADCHECK_H

#include "autograd/autograd.h"

typedef Var *(*GradcheckFn)(Tape *tape, Var **inputs, void *context);

typedef struct GradcheckOptions {
    double eps;         /* step; default 1e-2 (float32 values) */
    double tolerance;   /* pass when max relative error <= tolerance; default 1e-3 */
    double floor;       /* denominator floor for near-zero gradients; default 1e-2 */
    uint64_t seed;      /* for the projection weights */
} GradcheckOptions;

typedef struct GradcheckReport {
    double max_rel_error;
    int worst_input;     /* index of the input holding the worst element */
    int64_t worst_index; /* flat element index */
    double analytic, numeric;
    int64_t checked; /* elements checked */
} GradcheckReport;

GradcheckOptions gradcheck_default_options(void);

/* Returns HG_OK when every element passes, HG_ERR_CHECK (message naming the
 * worst element) when one does not, another error if f fails. Inputs must be
 * leaves; their values are perturbed and restored, their grads overwritten. */
hg_status gradcheck(GradcheckFn f, void *context, int n_inputs, Var **inputs,
                    const GradcheckOptions *options, GradcheckReport *report);

#endif
