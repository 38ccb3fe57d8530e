/* Optimizers: groups, parameters, the update rules of torch.optim, clipping,
 * and state export/import.
 *
 * The update loops run in float32 with the scalar coefficients rounded to
 * float once, in the order of operations of torch's single-tensor code path,
 * so that results agree with torch to float rounding. */
#if defined(__GNUC__) && !defined(__clang__)
/* sqrt of a value known to be >= 0 never sets errno; without this GCC keeps
 * a scalar errno check per element and cannot vectorize the Adam loop. */
#pragma GCC optimize("no-math-errno")
#endif
#include "nn/optim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/ops.h"

/* Below this many elements a parameter is updated by one thread. */
#define OPTIM_PARALLEL_MIN 65536

OptimHyper optim_default_hyper(OptimKind kind) {
    OptimHyper h = {.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    if (kind == OPTIM_ADAMW) h.weight_decay = 1e-2;
    return h;
}

const char *optim_kind_name(OptimKind kind) {
    switch (kind) {
    case OPTIM_SGD:
        return "sgd";
    case OPTIM_ADAM:
        return "adam";
    case OPTIM_ADAMW:
        return "adamw";
    }
    return "unknown";
}

Optimizer *optim_new(OptimKind kind) {
    if (kind != OPTIM_SGD && kind != OPTIM_ADAM && kind != OPTIM_ADAMW) {
        hg_fail(HG_ERR_ARG, "optim_new: unknown optimizer kind %d", (int)kind);
        return NULL;
    }
    Optimizer *opt = calloc(1, sizeof *opt);
    if (!opt) {
        hg_fail(HG_ERR_NOMEM, "optim_new: out of memory");
        return NULL;
    }
    opt->kind = kind;
    return opt;
}

static void param_state_reset(OptimParam *p) {
    tensor_free(p->exp_avg);
    tensor_free(p->exp_avg_sq);
    tensor_free(p->max_exp_avg_sq);
    tensor_free(p->momentum_buffer);
    p->exp_avg = p->exp_avg_sq = p->max_exp_avg_sq = p->momentum_buffer = NULL;
    p->step = 0;
}

void optim_free(Optimizer *opt) {
    if (!opt) return;
    for (int g = 0; g < opt->n_groups; g++) {
        OptimGroup *grp = &opt->groups[g];
        for (int64_t i = 0; i < grp->count; i++) {
            param_state_reset(&grp->params[i]);
            free(grp->params[i].name);
        }
        free(grp->params);
        free(grp->name);
    }
    free(opt->groups);
    free(opt);
}

static hg_status check_hyper(const Optimizer *opt, const OptimHyper *h) {
    if (!(h->lr >= 0)) return hg_fail(HG_ERR_ARG, "optimizer: lr %g must be >= 0", h->lr);
    if (!(h->weight_decay >= 0))
        return hg_fail(HG_ERR_ARG, "optimizer: weight_decay %g must be >= 0", h->weight_decay);
    if (opt->kind == OPTIM_SGD) {
        if (!(h->momentum >= 0))
            return hg_fail(HG_ERR_ARG, "sgd: momentum %g must be >= 0", h->momentum);
        if (h->nesterov && (h->momentum <= 0 || h->dampening != 0))
            return hg_fail(HG_ERR_ARG, "sgd: nesterov needs momentum > 0 and dampening 0");
    } else {
        if (!(h->beta1 >= 0 && h->beta1 < 1) || !(h->beta2 >= 0 && h->beta2 < 1))
            return hg_fail(HG_ERR_ARG, "%s: betas (%g, %g) must be in [0, 1)",
                           optim_kind_name(opt->kind), h->beta1, h->beta2);
        if (!(h->eps >= 0))
            return hg_fail(HG_ERR_ARG, "%s: eps %g must be >= 0", optim_kind_name(opt->kind),
                           h->eps);
    }
    return HG_OK;
}

int optim_add_group(Optimizer *opt, const char *name, const OptimHyper *hyper) {
    if (check_hyper(opt, hyper) != HG_OK) return -1;
    char index_name[32];
    snprintf(index_name, sizeof index_name, "%d", opt->n_groups);
    if (!name) name = index_name;
    for (int g = 0; g < opt->n_groups; g++) {
        if (strcmp(opt->groups[g].name, name) == 0) {
            hg_fail(HG_ERR_ARG, "optim_add_group: group '%s' already exists", name);
            return -1;
        }
    }
    OptimGroup *grown = realloc(opt->groups, (size_t)(opt->n_groups + 1) * sizeof *grown);
    char *copy = strdup(name);
    if (!grown || !copy) {
        if (grown) opt->groups = grown;
        free(copy);
        hg_fail(HG_ERR_NOMEM, "optim_add_group: out of memory");
        return -1;
    }
    opt->groups = grown;
    opt->groups[opt->n_groups] =
        (OptimGroup){.name = copy, .hyper = *hyper, .initial_lr = hyper->lr};
    return opt->n_groups++;
}

static bool optim_has_param_name(const Optimizer *opt, const char *name) {
    for (int g = 0; g < opt->n_groups; g++)
        for (int64_t i = 0; i < opt->groups[g].count; i++)
            if (strcmp(opt->groups[g].params[i].name, name) == 0) return true;
    return false;
}

hg_status optim_add_param(Optimizer *opt, int group, const char *name, Var *param) {
    if (group < 0 || group >= opt->n_groups)
        return hg_fail(HG_ERR_ARG, "optim_add_param: no group %d (%d groups)", group,
                       opt->n_groups);
    if (!param || !name || !*name)
        return hg_fail(HG_ERR_ARG, "optim_add_param: missing parameter or name");
    if (!tensor_is_contiguous(param->value))
        return hg_fail(HG_ERR_ARG, "optim_add_param: '%s' is not contiguous", name);
    if (optim_has_param_name(opt, name))
        return hg_fail(HG_ERR_ARG, "optim_add_param: '%s' is already in the optimizer", name);
    OptimGroup *grp = &opt->groups[group];
    if (grp->count == grp->capacity) {
        int64_t cap = grp->capacity ? 2 * grp->capacity : 16;
        OptimParam *grown = realloc(grp->params, (size_t)cap * sizeof *grown);
        if (!grown) return hg_fail(HG_ERR_NOMEM, "optim_add_param: out of memory");
        grp->params = grown;
        grp->capacity = cap;
    }
    char *copy = strdup(name);
    if (!copy) return hg_fail(HG_ERR_NOMEM, "optim_add_param: out of memory");
    grp->params[grp->count++] = (OptimParam){.name = copy, .var = param};
    return HG_OK;
}

hg_status optim_add_param_set(Optimizer *opt, int group, const ParamSet *ps, const char *prefix) {
    for (int64_t i = 0; i < param_set_size(ps); i++) {
        const ParamEntry *e = param_set_at(ps, i);
        if (!param_entry_trainable(e) || !param_name_has_prefix(e->name, prefix)) continue;
        hg_status s = optim_add_param(opt, group, e->name, e->var);
        if (s != HG_OK) return s;
    }
    return HG_OK;
}

void optim_zero_grad(Optimizer *opt) {
    for (int g = 0; g < opt->n_groups; g++)
        for (int64_t i = 0; i < opt->groups[g].count; i++)
            var_zero_grad(opt->groups[g].params[i].var);
}

void optim_set_lr(Optimizer *opt, double lr) {
    for (int g = 0; g < opt->n_groups; g++) opt->groups[g].hyper.lr = lr;
}

void optim_set_group_lr(Optimizer *opt, int group, double lr) {
    if (group >= 0 && group < opt->n_groups) opt->groups[group].hyper.lr = lr;
}

int64_t optim_param_count(const Optimizer *opt) {
    int64_t n = 0;
    for (int g = 0; g < opt->n_groups; g++) n += opt->groups[g].count;
    return n;
}

/* ---- update rules ----
 * Each rule is a plain loop over a chunk [lo, hi) of a parameter, which the
 * compiler vectorizes; large parameters are split into chunks run by OpenMP
 * threads (a loop inside "omp parallel for" is outlined into a function that
 * does not get the no-math-errno setting above, so the threads call these). */

#define OPTIM_CHUNK 16384

/* Scalar coefficients of one update, rounded to float once. */
typedef struct {
    float *p, *m, *v, *vmax, *buf;
    const float *g;
    float lr_neg, wd, momentum, keep, b1, b2, one_b1, one_b2, shrink, bc2_sqrt, eps, step_neg;
    bool nesterov, first;
} UpdateArgs;

/* torch.optim.SGD (dampening applies from the second step on; the first
 * step's buffer is the gradient itself):
 *   d = g + wd p;  buf = d (first) or momentum buf + (1 - dampening) d;
 *   d = nesterov ? d + momentum buf : buf;  p -= lr d. */
static void sgd_chunk(const UpdateArgs *a, int64_t lo, int64_t hi) {
    float *restrict p = a->p, *restrict buf = a->buf;
    const float *restrict g = a->g;
    const float wd = a->wd, mom = a->momentum, keep = a->keep, neg_lr = a->lr_neg;
    if (!buf) {
        for (int64_t i = lo; i < hi; i++) p[i] = p[i] + neg_lr * (g[i] + wd * p[i]);
        return;
    }
    for (int64_t i = lo; i < hi; i++) {
        float d = g[i] + wd * p[i];
        float b = a->first ? d : buf[i] * mom + keep * d;
        buf[i] = b;
        p[i] = p[i] + neg_lr * (a->nesterov ? d + mom * b : b);
    }
}

/* torch.optim.Adam / AdamW at step t (t >= 1):
 *   AdamW: p *= 1 - lr wd (decoupled decay);  Adam: g += wd p (L2 on the gradient)
 *   m = beta1 m + (1 - beta1) g;   v = beta2 v + (1 - beta2) g^2
 *   vmax = max(vmax, v) when amsgrad, used in place of v below
 *   denom = sqrt(v) / sqrt(1 - beta2^t) + eps;   p -= lr / (1 - beta1^t) * m / denom */
static void adam_chunk(const UpdateArgs *a, int64_t lo, int64_t hi) {
    float *restrict p = a->p, *restrict m = a->m, *restrict v = a->v, *restrict vmax = a->vmax;
    const float *restrict g = a->g;
    const float b1 = a->b1, b2 = a->b2, one_b1 = a->one_b1, one_b2 = a->one_b2;
    const float l2 = a->wd, shrink = a->shrink, bc2_sqrt = a->bc2_sqrt, eps = a->eps;
    const float neg_step = a->step_neg;
    if (vmax) {
        for (int64_t i = lo; i < hi; i++) {
            float pi = p[i] * shrink;
            float gi = g[i] + l2 * pi;
            float mi = m[i] * b1 + one_b1 * gi;
            float vi = v[i] * b2 + one_b2 * gi * gi;
            float vm = fmaxf(vmax[i], vi);
            m[i] = mi;
            v[i] = vi;
            vmax[i] = vm;
            p[i] = pi + neg_step * (mi / (sqrtf(vm) / bc2_sqrt + eps));
        }
        return;
    }
    for (int64_t i = lo; i < hi; i++) {
        float pi = p[i] * shrink;
        float gi = g[i] + l2 * pi;
        float mi = m[i] * b1 + one_b1 * gi;
        float vi = v[i] * b2 + one_b2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi + neg_step * (mi / (sqrtf(vi) / bc2_sqrt + eps));
    }
}

static UpdateArgs update_args(OptimKind kind, const OptimHyper *h, int64_t t) {
    UpdateArgs a = {.lr_neg = (float)-h->lr, .wd = (float)h->weight_decay, .shrink = 1.0f};
    if (kind == OPTIM_SGD) {
        a.momentum = (float)h->momentum;
        a.keep = (float)(1.0 - h->dampening);
        a.nesterov = h->nesterov;
        a.first = t == 1;
        return a;
    }
    const double bc1 = 1.0 - pow(h->beta1, (double)t);
    const double bc2 = 1.0 - pow(h->beta2, (double)t);
    a.b1 = (float)h->beta1;
    a.b2 = (float)h->beta2;
    a.one_b1 = (float)(1.0 - h->beta1);
    a.one_b2 = (float)(1.0 - h->beta2);
    a.bc2_sqrt = (float)sqrt(bc2);
    a.eps = (float)h->eps;
    a.step_neg = (float)(-(h->lr / bc1));
    if (kind == OPTIM_ADAMW) {
        a.shrink = (float)(1.0 - h->lr * h->weight_decay);
        a.wd = 0.0f; /* decoupled: no L2 term in the gradient */
    }
    return a;
}

static void run_update(void (*chunk)(const UpdateArgs *, int64_t, int64_t), const UpdateArgs *a,
                       int64_t n) {
    int64_t n_chunks = (n + OPTIM_CHUNK - 1) / OPTIM_CHUNK;
#pragma omp parallel for schedule(static) if (n > OPTIM_PARALLEL_MIN)
    for (int64_t c = 0; c < n_chunks; c++) {
        int64_t lo = c * OPTIM_CHUNK, hi = lo + OPTIM_CHUNK < n ? lo + OPTIM_CHUNK : n;
        chunk(a, lo, hi);
    }
}

static Tensor *zeros_like_value(const Var *v) {
    return tensor_zeros(v->value->ndim, v->value->shape);
}

static hg_status step_param(Optimizer *opt, const OptimHyper *h, OptimParam *op) {
    Var *var = op->var;
    if (!var->grad) return HG_OK; /* as torch: no gradient, no step */
    char a[64], b[64];
    if (!tensor_same_shape(var->grad, var->value))
        return hg_fail(HG_ERR_SHAPE, "optim_step: '%s' has gradient %s for value %s", op->name,
                       tensor_shape_str(var->grad, a, sizeof a),
                       tensor_shape_str(var->value, b, sizeof b));
    if (!tensor_is_contiguous(var->value))
        return hg_fail(HG_ERR_ARG, "optim_step: '%s' is no longer contiguous", op->name);
    Tensor *grad = tensor_contiguous(var->grad);
    if (!grad) return hg_last_status();
    bool first = op->step == 0;
    if (first) {
        if (opt->kind == OPTIM_SGD) {
            if (h->momentum != 0 && !(op->momentum_buffer = zeros_like_value(var))) goto fail;
        } else {
            if (!(op->exp_avg = zeros_like_value(var))) goto fail;
            if (!(op->exp_avg_sq = zeros_like_value(var))) goto fail;
            if (h->amsgrad && !(op->max_exp_avg_sq = zeros_like_value(var))) goto fail;
        }
    }
    op->step++;
    UpdateArgs args = update_args(opt->kind, h, op->step);
    args.p = tensor_data(var->value);
    args.g = tensor_data(grad);
    if (opt->kind == OPTIM_SGD) {
        args.buf = op->momentum_buffer ? tensor_data(op->momentum_buffer) : NULL;
        run_update(sgd_chunk, &args, tensor_numel(var->value));
    } else {
        args.m = tensor_data(op->exp_avg);
        args.v = tensor_data(op->exp_avg_sq);
        args.vmax = op->max_exp_avg_sq ? tensor_data(op->max_exp_avg_sq) : NULL;
        run_update(adam_chunk, &args, tensor_numel(var->value));
    }
    tensor_free(grad);
    return HG_OK;
fail:
    tensor_free(grad);
    param_state_reset(op);
    return hg_last_status();
}

hg_status optim_step(Optimizer *opt) {
    for (int g = 0; g < opt->n_groups; g++) {
        OptimGroup *grp = &opt->groups[g];
        for (int64_t i = 0; i < grp->count; i++) {
            hg_status s = step_param(opt, &grp->hyper, &grp->params[i]);
            if (s != HG_OK) return s;
        }
    }
    return HG_OK;
}

/* ---- gradient clipping ---- */

hg_status clip_grad_norm(Var *const *params, int64_t n, double max_norm, double *total_norm) {
    if (!(max_norm > 0))
        return hg_fail(HG_ERR_ARG, "clip_grad_norm: max_norm %g must be > 0", max_norm);
    double sum_sq = 0;
    for (int64_t i = 0; i < n; i++) {
        const Tensor *g = params[i]->grad;
        if (!g) continue;
        Tensor *gc = tensor_contiguous(g);
        if (!gc) return hg_last_status();
        const float *d = tensor_data(gc);
        int64_t m = tensor_numel(gc);
        double s = 0;
#pragma omp parallel for reduction(+ : s) if (m > OPTIM_PARALLEL_MIN)
        for (int64_t j = 0; j < m; j++) s += (double)d[j] * d[j];
        sum_sq += s;
        tensor_free(gc);
    }
    double norm = sqrt(sum_sq);
    if (total_norm) *total_norm = norm;
    double coef = max_norm / (norm + 1e-6);
    if (!(coef < 1.0)) return HG_OK; /* torch multiplies by min(coef, 1): a no-op here */
    Tensor *factor = tensor_scalar((float)coef);
    if (!factor) return hg_last_status();
    for (int64_t i = 0; i < n; i++) {
        if (!params[i]->grad) continue;
        hg_status s = tensor_mul_(params[i]->grad, factor);
        if (s != HG_OK) {
            tensor_free(factor);
            return s;
        }
    }
    tensor_free(factor);
    return HG_OK;
}

hg_status optim_clip_grad_norm(Optimizer *opt, double max_norm, double *total_norm) {
    int64_t n = optim_param_count(opt), k = 0;
    Var **vars = malloc(sizeof(Var *) * (size_t)(n ? n : 1));
    if (!vars) return hg_fail(HG_ERR_NOMEM, "optim_clip_grad_norm: out of memory");
    for (int g = 0; g < opt->n_groups; g++)
        for (int64_t i = 0; i < opt->groups[g].count; i++) vars[k++] = opt->groups[g].params[i].var;
    hg_status s = clip_grad_norm(vars, n, max_norm, total_norm);
    free(vars);
    return s;
}

/* ---- state export / import ---- */

/* Largest count a float32 holds exactly (2^24). */
#define OPTIM_MAX_EXPORTED_STEP 16777216

static hg_status state_name(char *buf, size_t size, const OptimGroup *grp, const OptimParam *p,
                            const char *field) {
    int n = snprintf(buf, size, "optimizer.%s.%s.%s", grp->name, p->name, field);
    if (n < 0 || (size_t)n >= size)
        return hg_fail(HG_ERR_ARG, "optimizer state: name for '%s' too long", p->name);
    return HG_OK;
}

hg_status optim_state_export(const Optimizer *opt, OptimStateVisitor visit, void *ctx) {
    char name[640];
    for (int g = 0; g < opt->n_groups; g++) {
        const OptimGroup *grp = &opt->groups[g];
        for (int64_t i = 0; i < grp->count; i++) {
            const OptimParam *p = &grp->params[i];
            if (p->step == 0) continue;
            if (p->step > OPTIM_MAX_EXPORTED_STEP)
                return hg_fail(HG_ERR_UNSUPPORTED,
                               "optimizer state: step %lld of '%s' exceeds 2^24 (float count)",
                               (long long)p->step, p->name);
            struct {
                const char *field;
                const Tensor *t;
            } fields[] = {{"exp_avg", p->exp_avg},
                          {"exp_avg_sq", p->exp_avg_sq},
                          {"max_exp_avg_sq", p->max_exp_avg_sq},
                          {"momentum_buffer", p->momentum_buffer}};
            Tensor *step = tensor_full(SHAPE(1), (float)p->step);
            if (!step) return hg_last_status();
            hg_status s = state_name(name, sizeof name, grp, p, "step");
            if (s == HG_OK) s = visit(ctx, name, step);
            tensor_free(step);
            for (int f = 0; s == HG_OK && f < 4; f++) {
                if (!fields[f].t) continue;
                s = state_name(name, sizeof name, grp, p, fields[f].field);
                if (s == HG_OK) s = visit(ctx, name, fields[f].t);
            }
            if (s != HG_OK) return s;
        }
    }
    return HG_OK;
}

/* Looks up one field of a parameter that has a step: it must be present (when
 * `needed`) and have the parameter's shape. */
static hg_status import_field(OptimStateLookup lookup, void *ctx, const OptimGroup *grp,
                              const OptimParam *p, const char *field, bool needed, Tensor **out) {
    char name[640];
    *out = NULL;
    hg_status s = state_name(name, sizeof name, grp, p, field);
    if (s == HG_OK) s = lookup(ctx, name, out);
    if (s != HG_OK) return s;
    if (!*out) {
        if (!needed) return HG_OK;
        return hg_fail(HG_ERR_FORMAT, "optimizer state: '%s' is missing", name);
    }
    if (!tensor_same_shape(*out, p->var->value)) {
        char a[64], b[64];
        hg_fail(HG_ERR_FORMAT, "optimizer state: '%s' is %s, parameter is %s", name,
                tensor_shape_str(*out, a, sizeof a), tensor_shape_str(p->var->value, b, sizeof b));
        tensor_free(*out);
        *out = NULL;
        return HG_ERR_FORMAT;
    }
    /* Keep the state contiguous and private. */
    Tensor *own = tensor_clone(*out);
    tensor_free(*out);
    *out = own;
    return own ? HG_OK : hg_last_status();
}

static hg_status import_param(Optimizer *opt, const OptimGroup *grp, OptimParam *p,
                              OptimStateLookup lookup, void *ctx) {
    char name[640];
    Tensor *step = NULL;
    hg_status s = state_name(name, sizeof name, grp, p, "step");
    if (s == HG_OK) s = lookup(ctx, name, &step);
    if (s != HG_OK || !step) return s; /* absent: the parameter starts fresh */
    float count = tensor_numel(step) == 1 ? tensor_data(step)[0] : -1.0f;
    tensor_free(step);
    if (!(count >= 1 && count <= OPTIM_MAX_EXPORTED_STEP) || count != floorf(count))
        return hg_fail(HG_ERR_FORMAT, "optimizer state: '%s' is not a positive step count", name);
    const OptimHyper *h = &grp->hyper;
    if (opt->kind == OPTIM_SGD) {
        s = import_field(lookup, ctx, grp, p, "momentum_buffer", h->momentum != 0,
                         &p->momentum_buffer);
    } else {
        s = import_field(lookup, ctx, grp, p, "exp_avg", true, &p->exp_avg);
        if (s == HG_OK) s = import_field(lookup, ctx, grp, p, "exp_avg_sq", true, &p->exp_avg_sq);
        if (s == HG_OK)
            s = import_field(lookup, ctx, grp, p, "max_exp_avg_sq", h->amsgrad, &p->max_exp_avg_sq);
    }
    if (s != HG_OK) {
        param_state_reset(p);
        return s;
    }
    p->step = (int64_t)count;
    return HG_OK;
}

hg_status optim_state_import(Optimizer *opt, OptimStateLookup lookup, void *ctx) {
    for (int g = 0; g < opt->n_groups; g++)
        for (int64_t i = 0; i < opt->groups[g].count; i++)
            param_state_reset(&opt->groups[g].params[i]);
    for (int g = 0; g < opt->n_groups; g++) {
        OptimGroup *grp = &opt->groups[g];
        for (int64_t i = 0; i < grp->count; i++) {
            hg_status s = import_param(opt, grp, &grp->params[i], lookup, ctx);
            if (s != HG_OK) return s;
        }
    }
    return HG_OK;
}
