#include "models/coupling.h"

#include <math.h>
#include <stdlib.h>

#include "autograd/ops.h"
#include "models/coupling_internal.h"
#include "models/rotation.h"
#include "tensor/ops.h"

CouplingOptions coupling_default_options(int64_t dim, int64_t cond_dim) {
    return (CouplingOptions){.dim = dim, .cond_dim = cond_dim, .clamp = 1.9f};
}

/* g = 0.1 * softplus(global_scale; beta = 0.5), one factor per channel (1, D). */
static Var *global_scale_factor(Tape *tape, const CouplingBlock *b) {
    return ag_scale(tape, ag_softplus(tape, b->global_scale, 0.5f), 0.1f);
}

/* Clamped log-scale s from the raw subnet output (already x 0.1). */
static Var *clamped_log_scale(Tape *tape, const CouplingBlock *b, Var *a_scale) {
    float alpha = b->options.clamp;
    if (b->options.new_clamp)
        return ag_scale(tape, ag_tanh(tape, ag_scale(tape, a_scale, 1.0f / alpha)), alpha);
    return ag_scale(tape, ag_tanh(tape, a_scale), alpha);
}

/* a = 0.1 * subnet([x1, c]), split into the log-scale s and the shift t. */
static hg_status coupling_coefficients(Tape *tape, const CouplingBlock *b, Var *x1, Var *cond,
                                       Var **s, Var **t) {
    Var *input = x1;
    if (cond) {
        Var *parts[2] = {x1, cond};
        input = ag_concat(tape, 2, parts, 1);
    }
    Var *hidden = ag_relu(tape, linear_forward(tape, &b->subnet_in, input));
    Var *a = ag_scale(tape, linear_forward(tape, &b->subnet_out, hidden), 0.1f);
    *s = clamped_log_scale(tape, b, ag_narrow(tape, a, 1, 0, b->active));
    *t = ag_narrow(tape, a, 1, b->active, b->active);
    return (*s && *t) ? HG_OK : hg_last_status();
}

/* The running log-det (N): NULL stands for zero. */
static Var *add_logdet(Tape *tape, Var *logdet, Var *term) {
    return logdet ? ag_add(tape, logdet, term) : term;
}

/* The factorization of cond for the fused forward, from `share` or made (once
 * per share) when the current mode asks for it; NULL for the dense path, and
 * NULL with *failed set on error. */
static CondRows *shared_cond_rows(Var *cond, CondShare *share, bool *failed) {
    *failed = false;
    if (!cond) return NULL;
    if (!share->done) {
        share->done = true;
        if (cond_rows_mode() != COND_ROWS_NEVER) {
            share->rows = cond_rows_factor(cond->value);
            if (!share->rows) {
                *failed = true;
                return NULL;
            }
            if (!cond_rows_worthwhile(share->rows)) {
                cond_rows_free(share->rows);
                share->rows = NULL;
            }
        }
    }
    return share->rows;
}

static const InvertibleModuleOps coupling_ops;

Var *coupling_forward_shared(const InvertibleModule *m, Tape *tape, Var *x, Var *cond, bool reverse,
                             Var **logdet, CondShare *share) {
    if (m->ops != &coupling_ops) return invertible_forward(m, tape, x, cond, reverse, logdet);
    const CouplingBlock *b = (const CouplingBlock *)m;
    if (!x) return NULL;
    char shape[64], cshape[64];
    if (x->value->ndim != 2 || x->value->shape[1] != m->dim) {
        hg_fail(HG_ERR_SHAPE, "coupling: input %s, expected (N, %lld)",
                tensor_shape_str(x->value, shape, sizeof shape), (long long)m->dim);
        return NULL;
    }
    if ((m->cond_dim > 0) != (cond != NULL) ||
        (cond && (cond->value->ndim != 2 || cond->value->shape[1] != m->cond_dim ||
                  cond->value->shape[0] != x->value->shape[0]))) {
        hg_fail(HG_ERR_SHAPE, "coupling: condition %s for input %s, expected (N, %lld)",
                cond ? tensor_shape_str(cond->value, cshape, sizeof cshape) : "none",
                tensor_shape_str(x->value, shape, sizeof shape), (long long)m->cond_dim);
        return NULL;
    }
    if (!reverse && !b->options.generic_ops) {
        bool failed;
        CondRows *rows = shared_cond_rows(cond, share, &failed);
        if (failed) return NULL;
        Var *term = NULL;
        Var *y = coupling_fused_forward(b, tape, x, cond, rows, &term);
        *logdet = y ? add_logdet(tape, *logdet, term) : NULL;
        return *logdet ? y : NULL;
    }
    const int sum_dim = 1;
    Var *g = global_scale_factor(tape, b);
    Var *log_g_sum = ag_sum(tape, ag_log(tape, g), 0, NULL, false); /* scalar */
    Var *s = NULL, *t = NULL;
    if (!reverse) {
        Var *x1 = ag_narrow(tape, x, 1, 0, b->passive);
        Var *x2 = ag_narrow(tape, x, 1, b->passive, b->active);
        if (coupling_coefficients(tape, b, x1, cond, &s, &t) != HG_OK) return NULL;
        Var *y2 = ag_add(tape, ag_mul(tape, x2, ag_exp(tape, s)), t);
        Var *parts[2] = {x1, y2};
        Var *u = ag_concat(tape, 2, parts, 1);
        Var *v = ag_add(tape, ag_mul(tape, u, g), b->global_offset);
        Var *y = ag_matmul(tape, v, b->w_perm, false, true); /* v W^T */
        Var *term = ag_add(tape, ag_sum(tape, s, 1, &sum_dim, false), log_g_sum);
        *logdet = add_logdet(tape, *logdet, term);
        return *logdet ? y : NULL;
    }
    /* Reverse: undo the rotation (W^-1 = W^T = w_perm_inv), the global affine,
     * then the coupling, whose coefficients depend only on the passive half. */
    Var *v = ag_matmul(tape, x, b->w_perm_inv, false, true);
    Var *u = ag_div(tape, ag_sub(tape, v, b->global_offset), g);
    Var *x1 = ag_narrow(tape, u, 1, 0, b->passive);
    Var *y2 = ag_narrow(tape, u, 1, b->passive, b->active);
    if (coupling_coefficients(tape, b, x1, cond, &s, &t) != HG_OK) return NULL;
    Var *x2 = ag_mul(tape, ag_sub(tape, y2, t), ag_exp(tape, ag_neg(tape, s)));
    Var *parts[2] = {x1, x2};
    Var *out = ag_concat(tape, 2, parts, 1);
    Var *term = ag_neg(tape, ag_add(tape, ag_sum(tape, s, 1, &sum_dim, false), log_g_sum));
    *logdet = add_logdet(tape, *logdet, term);
    return *logdet ? out : NULL;
}

/* A block used on its own factors its condition for itself. */
static Var *coupling_forward(const InvertibleModule *m, Tape *tape, Var *x, Var *cond, bool reverse,
                             Var **logdet) {
    CondShare share = {0};
    Var *y = coupling_forward_shared(m, tape, x, cond, reverse, logdet, &share);
    cond_rows_free(share.rows);
    return y;
}

static void coupling_free(InvertibleModule *m) {
    free(m);
}

static const InvertibleModuleOps coupling_ops = {"coupling", coupling_forward, coupling_free};

InvertibleModule *coupling_new(ParamSet *ps, const char *prefix, const CouplingOptions *options,
                               Rng *rng) {
    const CouplingOptions *o = options;
    if (o->dim < 2 || o->cond_dim < 0 || o->hidden < 0 || !(o->clamp > 0)) {
        hg_fail(HG_ERR_ARG,
                "coupling: invalid options (dim %lld, cond_dim %lld, hidden %lld, clamp %g)",
                (long long)o->dim, (long long)o->cond_dim, (long long)o->hidden, o->clamp);
        return NULL;
    }
    CouplingBlock *b = calloc(1, sizeof *b);
    if (!b) {
        hg_fail(HG_ERR_NOMEM, "coupling: out of memory");
        return NULL;
    }
    b->base = (InvertibleModule){&coupling_ops, o->dim, o->cond_dim};
    b->options = *o;
    b->active = o->dim / 2;
    b->passive = o->dim - b->active;
    int64_t in = b->passive + o->cond_dim;
    int64_t hidden = o->hidden ? o->hidden : 2 * in;
    char name[256];
    /* FrEIA draws the permutation before the subnet weights; we keep its order. */
    Tensor *w =
        o->hard_permutation ? random_permutation_matrix(o->dim, rng) : random_rotation(o->dim, rng);
    Tensor *w_t = w ? tensor_transpose(w, 0, 1) : NULL;
    Tensor *w_inv = w_t ? tensor_contiguous(w_t) : NULL;
    tensor_free(w_t);
    if (!w || !w_inv) goto fail;
    /* FrEIA: global_scale = 2 ln(exp(0.5 * 10 * init) - 1) with init 1, so g = 1. */
    const float gamma0 = (float)(2.0 * log(exp(5.0) - 1.0));
    b->global_scale = param_set_add_under(ps, prefix, "global_scale",
                                          tensor_full(SHAPE(1, o->dim), gamma0), false);
    b->global_offset =
        param_set_add_under(ps, prefix, "global_offset", tensor_zeros(SHAPE(1, o->dim)), false);
    b->w_perm = param_set_add_under(ps, prefix, "w_perm", w, true);
    b->w_perm_inv = param_set_add_under(ps, prefix, "w_perm_inv", w_inv, true);
    w = w_inv = NULL; /* taken by the set */
    if (!b->global_scale || !b->global_offset || !b->w_perm || !b->w_perm_inv) goto fail;
    if (param_name_join(name, sizeof name, prefix, "subnet.0") != HG_OK ||
        linear_init(&b->subnet_in, ps, name, in, hidden, true, rng) != HG_OK)
        goto fail;
    if (param_name_join(name, sizeof name, prefix, "subnet.2") != HG_OK ||
        linear_init(&b->subnet_out, ps, name, hidden, 2 * b->active, true, rng) != HG_OK)
        goto fail;
    return &b->base;
fail:
    tensor_free(w);
    tensor_free(w_inv);
    free(b);
    return NULL;
}
