/* The tape: records op results in order, runs their backward functions in
 * reverse order, and owns (and frees) every Var it recorded. */
#include <stdlib.h>

#include "autograd/internal.h"

struct Tape {
    Var **nodes; /* in recording order */
    int64_t count, capacity;
    bool grad_enabled;
};

Tape *tape_new(void) {
    Tape *tape = calloc(1, sizeof *tape);
    if (tape == NULL) {
        hg_fail(HG_ERR_NOMEM, "tape_new: out of memory");
        return NULL;
    }
    tape->grad_enabled = true;
    return tape;
}

void tape_reset(Tape *tape) {
    if (tape == NULL) return;
    for (int64_t i = 0; i < tape->count; i++) var_release(tape->nodes[i]);
    tape->count = 0;
}

void tape_free(Tape *tape) {
    if (tape == NULL) return;
    tape_reset(tape);
    free(tape->nodes);
    free(tape);
}

void tape_set_grad_enabled(Tape *tape, bool enabled) {
    if (tape != NULL) tape->grad_enabled = enabled;
}

bool tape_grad_enabled(const Tape *tape) {
    return tape != NULL && tape->grad_enabled;
}

int64_t tape_size(const Tape *tape) {
    return tape == NULL ? 0 : tape->count;
}

Var *tape_record(Tape *tape, const char *op, Tensor *value, int n_inputs, Var *const *inputs,
                 BackwardFn backward) {
    if (value == NULL) return NULL; /* the forward computation failed and said why */
    if (n_inputs < 0 || n_inputs > VAR_MAX_INPUTS) {
        tensor_free(value);
        hg_fail(HG_ERR_ARG, "%s: %d inputs (at most %d can be recorded)", op, n_inputs,
                VAR_MAX_INPUTS);
        return NULL;
    }
    if (!ag_check(op, tape, n_inputs, inputs)) {
        tensor_free(value);
        return NULL;
    }
    if (tape->count == tape->capacity) {
        int64_t capacity = tape->capacity ? 2 * tape->capacity : 64;
        Var **nodes = realloc(tape->nodes, sizeof *nodes * (size_t)capacity);
        if (nodes == NULL) {
            tensor_free(value);
            hg_fail(HG_ERR_NOMEM, "%s: out of memory growing the tape", op);
            return NULL;
        }
        tape->nodes = nodes;
        tape->capacity = capacity;
    }
    Var *v = calloc(1, sizeof *v);
    if (v == NULL) {
        tensor_free(value);
        hg_fail(HG_ERR_NOMEM, "%s: out of memory", op);
        return NULL;
    }
    v->value = value;
    v->op = op;
    v->on_tape = true;
    bool needs_grad = false;
    if (tape->grad_enabled)
        for (int i = 0; i < n_inputs; i++) needs_grad |= inputs[i]->requires_grad;
    /* Inputs are remembered only when a backward pass can use them, so a
     * no-grad (or constant) computation keeps no references into the graph. */
    if (needs_grad) {
        v->requires_grad = true;
        v->backward = backward;
        v->n_inputs = n_inputs;
        for (int i = 0; i < n_inputs; i++) v->inputs[i] = inputs[i];
    }
    tape->nodes[tape->count++] = v;
    return v;
}

Var *ag_constant(Tape *tape, Tensor *value) {
    return tape_record(tape, "constant", value, 0, NULL, NULL);
}

Var *ag_detach(Tape *tape, Var *x) {
    if (!ag_check("detach", tape, 1, &x)) return NULL;
    return tape_record(tape, "detach", tensor_ref(x->value), 0, NULL, NULL);
}

/* The gradient that starts the backward pass: `seed` (copied) or 1 for a
 * one-element loss. */
static Tensor *seed_gradient(const Var *loss, const Tensor *seed) {
    char a[96], b[96];
    if (seed == NULL) {
        if (tensor_numel(loss->value) != 1) {
            hg_fail(HG_ERR_SHAPE, "backward: loss of shape %s is not one element; pass a seed",
                    tensor_shape_str(loss->value, a, sizeof a));
            return NULL;
        }
        return tensor_ones(loss->value->ndim, loss->value->shape);
    }
    if (!tensor_same_shape(seed, loss->value)) {
        hg_fail(HG_ERR_SHAPE, "backward: seed of shape %s for a loss of shape %s",
                tensor_shape_str(seed, a, sizeof a), tensor_shape_str(loss->value, b, sizeof b));
        return NULL;
    }
    return tensor_clone(seed);
}

static hg_status run_backward(Tape *tape, Var *loss, const Tensor *seed) {
    if (loss == NULL) {
        hg_status s = hg_last_status();
        return s != HG_OK ? s : hg_fail(HG_ERR_ARG, "backward: loss is NULL");
    }
    if (!loss->requires_grad)
        return hg_fail(HG_ERR_ARG, "backward: loss (%s) does not require a gradient", loss->op);
    hg_status s = var_accumulate_grad(loss, seed_gradient(loss, seed));
    if (s != HG_OK) return s;
    /* Reverse recording order is a reverse topological order: every consumer
     * of a Var was recorded after it, so its gradient is complete when reached. */
    for (int64_t i = tape->count - 1; i >= 0; i--) {
        Var *v = tape->nodes[i];
        if (v->grad == NULL || v->backward == NULL) continue;
        s = v->backward(v);
        if (s != HG_OK) return s;
        /* Done with this node: release its memory now rather than at the end. */
        tensor_free(v->grad);
        v->grad = NULL;
        for (int k = 0; k < VAR_MAX_SAVED; k++) {
            tensor_free(v->saved[k]);
            v->saved[k] = NULL;
        }
    }
    return HG_OK;
}

hg_status tape_backward(Tape *tape, Var *loss, const Tensor *seed) {
    if (tape == NULL) return hg_fail(HG_ERR_ARG, "backward: tape is NULL");
    hg_status s = run_backward(tape, loss, seed);
    tape_reset(tape); /* the graph is freed after backward, also after a failure */
    return s;
}
