/* Vars: leaves, gradient accumulation, and freeing. */
#include <stdlib.h>

#include "autograd/internal.h"

Var *var_new(Tensor *value, bool requires_grad) {
    if (value == NULL) {
        if (hg_last_status() == HG_OK) hg_fail(HG_ERR_ARG, "var_new: value is NULL");
        return NULL;
    }
    Var *v = calloc(1, sizeof *v);
    if (v == NULL) {
        tensor_free(value);
        hg_fail(HG_ERR_NOMEM, "var_new: out of memory");
        return NULL;
    }
    v->value = value;
    v->requires_grad = requires_grad;
    v->op = "leaf";
    return v;
}

void var_release(Var *v) {
    if (v == NULL) return;
    tensor_free(v->value);
    tensor_free(v->grad);
    for (int i = 0; i < VAR_MAX_SAVED; i++) tensor_free(v->saved[i]);
    if (v->context != NULL) {
        if (v->free_context != NULL)
            v->free_context(v->context);
        else
            free(v->context);
    }
    free(v);
}

void var_free(Var *v) {
    /* A tape node is freed by its tape; freeing it here would free it twice. */
    if (v == NULL || v->on_tape) return;
    var_release(v);
}

void var_zero_grad(Var *v) {
    if (v == NULL) return;
    tensor_free(v->grad);
    v->grad = NULL;
}

/* True when nothing but `t` views its storage and its elements are dense, so
 * it may be updated in place (and handed to callers as a gradient) safely. */
static bool exclusively_owned(const Tensor *t) {
    return t->storage->refcount == 1 && tensor_is_contiguous(t);
}

hg_status var_accumulate_grad(Var *v, Tensor *g) {
    if (g == NULL) {
        /* The backward that made g failed; keep its message. */
        hg_status s = hg_last_status();
        return s != HG_OK ? s : hg_fail(HG_ERR_ARG, "accumulate_grad: gradient is NULL");
    }
    if (v == NULL) {
        tensor_free(g);
        return hg_fail(HG_ERR_ARG, "accumulate_grad: var is NULL");
    }
    if (!v->requires_grad) {
        tensor_free(g);
        return HG_OK;
    }
    if (!tensor_same_shape(g, v->value)) {
        /* g has the broadcast shape of an op's output: sum it back down. */
        Tensor *summed = tensor_sum_to_shape(g, v->value->ndim, v->value->shape);
        tensor_free(g);
        if (summed == NULL) return hg_last_status();
        g = summed;
    }
    if (v->grad == NULL) {
        /* Gradients are handed out (v->grad) and updated in place below, so the
         * stored tensor must own its elements: g is often a view of another
         * Var's gradient (add, reshape, expand ...). */
        if (!exclusively_owned(g)) {
            Tensor *copy = tensor_clone(g);
            tensor_free(g);
            if (copy == NULL) return hg_last_status();
            g = copy;
        }
        v->grad = g;
        return HG_OK;
    }
    hg_status s = tensor_add_(v->grad, g);
    tensor_free(g);
    return s;
}
