/* Losses: composed from autograd ops, or fused where one backward formula
 * replaces a chain of saved intermediates (cross entropy, softmax entropy). */
#include "nn/losses.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/ops.h"
#include "tensor/ops.h"

Var *loss_mse(Tape *tape, Var *pred, Var *target) {
    return ag_mean(tape, ag_square(tape, ag_sub(tape, pred, target)), 0, NULL, false);
}

/* ---- cross entropy with class indices ---- */

typedef struct {
    int64_t n;
    int64_t targets[]; /* n entries */
} CrossEntropyTargets;

/* saved[0] = log_softmax(logits) (N, C); scalars[0] = eps; context = targets. */
static hg_status cross_entropy_backward(Var *out) {
    Var *x = out->inputs[0];
    if (!x->requires_grad) return HG_OK;
    const CrossEntropyTargets *t = out->context;
    const Tensor *logp = out->saved[0];
    int64_t n = logp->shape[0], c = logp->shape[1];
    double eps = out->scalars[0];
    float g = tensor_data(out->grad)[0];
    Tensor *dx = tensor_empty(2, logp->shape);
    if (!dx) return hg_last_status();
    const float *lp = tensor_data(logp);
    float *d = tensor_data(dx);
    /* d loss / d x_ic = g (p_ic - q_ic) / N, q = (1 - eps) onehot + eps / C. */
    float scale = g / (float)n, off = (float)(eps / (double)c), hit = (float)(1.0 - eps);
#pragma omp parallel for if (n * c > 65536)
    for (int64_t i = 0; i < n; i++) {
        const float *lpi = lp + i * c;
        float *di = d + i * c;
        for (int64_t j = 0; j < c; j++) di[j] = scale * (expf(lpi[j]) - off);
        di[t->targets[i]] -= scale * hit;
    }
    return var_accumulate_grad(x, dx);
}

static void free_plain(void *p) {
    free(p);
}

Var *loss_cross_entropy(Tape *tape, Var *logits, const int64_t *targets, float label_smoothing) {
    if (!logits) return NULL;
    const Tensor *x = logits->value;
    char s[64];
    if (x->ndim != 2 || x->shape[0] == 0) {
        hg_fail(HG_ERR_SHAPE, "cross_entropy: logits %s must be (N, C) with N > 0",
                tensor_shape_str(x, s, sizeof s));
        return NULL;
    }
    if (!(label_smoothing >= 0.0f && label_smoothing <= 1.0f)) {
        hg_fail(HG_ERR_ARG, "cross_entropy: label_smoothing %g not in [0, 1]",
                (double)label_smoothing);
        return NULL;
    }
    int64_t n = x->shape[0], c = x->shape[1];
    for (int64_t i = 0; i < n; i++) {
        if (targets[i] < 0 || targets[i] >= c) {
            hg_fail(HG_ERR_ARG, "cross_entropy: target %lld of row %lld not in [0, %lld)",
                    (long long)targets[i], (long long)i, (long long)c);
            return NULL;
        }
    }
    Tensor *logp = tensor_log_softmax(x, 1);
    CrossEntropyTargets *t = malloc(sizeof *t + (size_t)n * sizeof(int64_t));
    if (!logp || !t) {
        tensor_free(logp);
        free(t);
        if (hg_last_status() == HG_OK) hg_fail(HG_ERR_NOMEM, "cross_entropy: out of memory");
        return NULL;
    }
    t->n = n;
    memcpy(t->targets, targets, (size_t)n * sizeof(int64_t));
    /* Sum in double: rows are independent, the mean is over N. */
    const float *lp = tensor_data(logp);
    double total = 0;
    for (int64_t i = 0; i < n; i++) {
        double row = 0;
        for (int64_t j = 0; j < c; j++) row += lp[i * c + j];
        total += (1.0 - label_smoothing) * -(double)lp[i * c + targets[i]] +
                 label_smoothing * (-row / (double)c);
    }
    Var *out = tape_record(tape, "cross_entropy", tensor_scalar((float)(total / (double)n)), 1,
                           &logits, cross_entropy_backward);
    if (!out || !out->requires_grad) {
        /* Failed, or no backward will run (no-grad mode, constant logits). */
        tensor_free(logp);
        free(t);
        return out;
    }
    out->saved[0] = logp;
    out->scalars[0] = label_smoothing;
    out->context = t;
    out->free_context = free_plain;
    return out;
}

/* ---- soft targets ---- */

Var *loss_soft_cross_entropy(Tape *tape, Var *logits, const Tensor *target_probs, int dim) {
    if (!logits) return NULL;
    if (!tensor_same_shape(logits->value, target_probs)) {
        char a[64], b[64];
        hg_fail(HG_ERR_SHAPE, "soft_cross_entropy: logits %s and targets %s differ",
                tensor_shape_str(logits->value, a, sizeof a),
                tensor_shape_str(target_probs, b, sizeof b));
        return NULL;
    }
    Var *q = ag_constant(tape, tensor_ref(target_probs));
    Var *per_position =
        ag_sum(tape, ag_mul(tape, q, ag_log_softmax(tape, logits, dim)), 1, &dim, false);
    return ag_neg(tape, ag_mean(tape, per_position, 0, NULL, false));
}

/* ---- entropy of a softmax ---- */

/* saved[0] = p, saved[1] = log p; scalars[0] = dim; value = H. */
static hg_status softmax_entropy_backward(Var *out) {
    Var *x = out->inputs[0];
    if (!x->requires_grad) return HG_OK;
    int dim = (int)out->scalars[0];
    /* dH/dx_k = -sum_j (1 + log p_j) p_j (delta_jk - p_k) = -p_k (log p_k + H). */
    Tensor *h = tensor_unsqueeze(out->value, dim);
    Tensor *g = tensor_unsqueeze(out->grad, dim);
    Tensor *lp_h = h ? tensor_add(out->saved[1], h) : NULL;
    Tensor *p_lp_h = lp_h ? tensor_mul(out->saved[0], lp_h) : NULL;
    Tensor *neg_g = g ? tensor_scale(g, -1.0f) : NULL;
    Tensor *dx = p_lp_h && neg_g ? tensor_mul(p_lp_h, neg_g) : NULL;
    tensor_free(h);
    tensor_free(g);
    tensor_free(lp_h);
    tensor_free(p_lp_h);
    tensor_free(neg_g);
    if (!dx) return hg_last_status();
    return var_accumulate_grad(x, dx);
}

Var *ag_softmax_entropy(Tape *tape, Var *x, int dim) {
    if (!x) return NULL;
    int d = tensor_normalize_dim(dim, x->value->ndim);
    if (d < 0 || x->value->ndim == 0) {
        hg_fail(HG_ERR_DIM, "softmax_entropy: dim %d out of range for %d dims", dim,
                x->value->ndim);
        return NULL;
    }
    Tensor *logp = tensor_log_softmax(x->value, d);
    Tensor *p = logp ? tensor_exp(logp) : NULL;
    Tensor *p_logp = p ? tensor_mul(p, logp) : NULL;
    Tensor *sum = p_logp ? tensor_sum(p_logp, 1, &d, false) : NULL;
    Tensor *h = sum ? tensor_scale(sum, -1.0f) : NULL;
    tensor_free(p_logp);
    tensor_free(sum);
    Var *out = h ? tape_record(tape, "softmax_entropy", h, 1, &x, softmax_entropy_backward) : NULL;
    if (!out || !out->requires_grad) {
        tensor_free(p);
        tensor_free(logp);
        return out;
    }
    out->saved[0] = p;
    out->saved[1] = logp;
    out->scalars[0] = d;
    return out;
}

Var *loss_softmax_entropy_mean(Tape *tape, Var *x, int dim) {
    return ag_mean(tape, ag_softmax_entropy(tape, x, dim), 0, NULL, false);
}

Var *loss_neg_log_sigmoid_mean(Tape *tape, Var *x) {
    return ag_neg(tape, ag_mean(tape, ag_log_sigmoid(tape, x), 0, NULL, false));
}
