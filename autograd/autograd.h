/* Reverse-mode automatic differentiation over tensor ops.
 *
 * A Var is a node: a value tensor, an optional gradient, and (for results of
 * ops) the op's backward function and its inputs. Leaves (parameters, inputs)
 * are made with var_new() and owned by whoever made them. Results of ops are
 * recorded on a Tape, which owns them: tape_backward() runs the backward
 * functions in reverse order of recording (a valid reverse topological order,
 * since an op's inputs are always recorded before it), accumulates gradients
 * into every Var that requires one, and then frees the graph. tape_reset()
 * frees it without a backward pass (e.g. after evaluation).
 *
 * Ops are NULL-propagating: if an input is NULL (an earlier op failed), they
 * return NULL and keep the first error message, so a chain of ops can be
 * checked once at the end. */
#ifndef HG_AUTOGRAD_H
#define HG_AUTOGRAD_H

#include <stdbool.h>

#include "tensor/tensor.h"

#define VAR_MAX_INPUTS 4
#define VAR_MAX_SAVED 4

typedef struct Var Var;
typedef struct Tape Tape;

/* Receives out->grad and adds each input's gradient with var_accumulate_grad(). */
typedef hg_status (*BackwardFn)(Var *out);

struct Var {
    Tensor *value;
    Tensor *grad; /* same shape as value; NULL until a gradient arrives */
    bool requires_grad;
    const char *op; /* "leaf", "add", ... for messages */
    /* Filled by ops (NULL/0 for leaves). */
    BackwardFn backward;
    int n_inputs;
    Var *inputs[VAR_MAX_INPUTS];
    Tensor *saved[VAR_MAX_SAVED]; /* tensors the backward needs, owned by the Var */
    double scalars[4];            /* non-tensor arguments (factor, beta, dim ...) */
    int64_t ints[TENSOR_MAX_DIMS];
    void *context; /* larger saved state; freed with free_context */
    void (*free_context)(void *);
    bool on_tape; /* owned by a tape (freed by it) */
};

/* ---- leaves ---- */
/* Takes ownership of `value`. */
Var *var_new(Tensor *value, bool requires_grad);
void var_free(Var *v); /* leaves only; NULL is fine */
void var_zero_grad(Var *v); /* drops the gradient */
/* grad += g (g is summed down to v's shape when it was broadcast). Takes
 * ownership of g. Used by backward functions and by optimizers' tests. */
hg_status var_accumulate_grad(Var *v, Tensor *g);

/* ---- tape ---- */
Tape *tape_new(void);
void tape_free(Tape *tape);
/* No-grad mode: ops still compute (and the tape still owns their results) but
 * record no inputs, so nothing is kept for a backward pass. */
void tape_set_grad_enabled(Tape *tape, bool enabled);
bool tape_grad_enabled(const Tape *tape);
/* Back-propagates from `loss` (seed gradient 1 for a one-element loss, or
 * `seed` of loss's shape when not NULL; seed is not taken), then frees the graph. */
hg_status tape_backward(Tape *tape, Var *loss, const Tensor *seed);
/* Frees every Var recorded since the last backward/reset. */
void tape_reset(Tape *tape);
/* Number of Vars currently owned by the tape (for tests and diagnostics). */
int64_t tape_size(const Tape *tape);

/* A tape-owned Var that holds `value` (taken) and needs no gradient. */
Var *ag_constant(Tape *tape, Tensor *value);
/* Same value (shared storage), cut from the graph: no gradient flows through. */
Var *ag_detach(Tape *tape, Var *x);

/* Records an op result. Used by op implementations (autograd/ops_*.c) and by
 * layers that write fused forward/backward pairs. Takes ownership of `value`.
 * The result requires a gradient when grad mode is on and any input does. */
Var *tape_record(Tape *tape, const char *op, Tensor *value, int n_inputs, Var *const *inputs,
                 BackwardFn backward);

#endif
