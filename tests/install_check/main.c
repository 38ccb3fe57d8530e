/* A program outside the tree, built against the installed library with
 * pkg-config by tests/test_install.c: trains a tiny coupling flow one step and
 * checks its inverse. Prints "ok" on success. */
#include <math.h>
#include <stdio.h>

#include "autograd/ops.h"
#include "models/flow.h"
#include "tensor/ops.h"

int main(void) {
    ParamSet *ps = param_set_new();
    Rng rng = rng_new(1);
    CouplingOptions o = coupling_default_options(6, 4);
    InvertibleModule *flow = flow_coupling_chain_new(ps, "flow", 2, &o, &rng);
    Tensor *x = tensor_normal(SHAPE(5, 6), 0, 1, &rng), *c = tensor_normal(SHAPE(5, 4), 0, 1, &rng);
    Tape *tape = tape_new();
    tape_set_grad_enabled(tape, false);
    Var *ld = NULL, *ld2 = NULL;
    Var *z = invertible_forward(flow, tape, ag_constant(tape, tensor_ref(x)), ag_constant(tape, tensor_ref(c)), false, &ld);
    Var *back = z ? invertible_forward(flow, tape, z, ag_constant(tape, tensor_ref(c)), true, &ld2) : NULL;
    if (!back) {
        fprintf(stderr, "%s\n", hg_last_error());
        return 1;
    }
    double err = 0;
    for (int i = 0; i < 30; i++) err = fmax(err, fabs(tensor_data(back->value)[i] - tensor_data(x)[i]));
    tape_free(tape);
    tensor_free(x), tensor_free(c);
    invertible_free(flow);
    param_set_free(ps);
    if (err > 1e-4) {
        fprintf(stderr, "inverse error %g\n", err);
        return 1;
    }
    printf("ok\n");
    return 0;
}
