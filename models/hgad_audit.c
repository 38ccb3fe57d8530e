/* Numerical self-checks of an HGAD model; see hgad_audit.h. */
#include "models/hgad_audit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "models/positional.h"
#include "tensor/rng.h"

/* Why these tolerances (measured on D = 200, Dc = 256, K = 12, 15 classes, 10
 * intra-class centers: a fresh model and one after 200 steps at lr 2e-3):
 * - inverse 1e-4, relative to max|x|: the closed-form inverse repeats the
 *   forward's float32 arithmetic backwards; measured 1.2e-6 fresh and 1.2e-5
 *   trained. A wrong w_perm_inv or a NaN gives O(1).
 * - log-det vs Jacobian 2e-3 * max(1, |ld|): central differences of float32
 *   outputs over 2h = 2e-2 carry ~1e-5 rounding per entry plus O(h^2)
 *   truncation and ReLU-kink error; measured 3.7e-4 fresh (|ld| = 2.6) and
 *   1.4e-5 trained (|ld| = 397). A log-det that forgets a factor of the
 *   Jacobian is off by O(1) per dimension.
 * - gradient checks 3e-2 in gradcheck's measure (|analytic - numeric| over
 *   max(|analytic|, |numeric|, 1e-2)): the prior's distances are float32
 *   expansions |z|^2 + |mu|^2 - 2 z.mu of size ~D, so differencing them over
 *   2e-2 leaves up to 6e-3 of noise; a larger step is worse (the class
 *   posterior is curved: 9e-2 at eps 1e-1). The global_scale check uses eps
 *   1e-1, where the loss is close to linear in gamma (measured 4e-3; at eps
 *   1e-2 float noise reaches 2.6e-2). A wrong backward is off by O(1). */
HgadAuditOptions hgad_audit_default_options(void) {
    return (HgadAuditOptions){
        .samples = 64,
        .jacobian_vectors = 2,
        .gradcheck_rows = 4,
        .seed = 0,
        .inverse_tolerance = 1e-4,
        .jacobian_step = 1e-2,
        .logdet_tolerance = 2e-3,
        .gradcheck_eps = 1e-2,
        .gradcheck_flow_eps = 1e-1,
        .gradcheck_tolerance = 3e-2,
    };
}

void hgad_audit_free(HgadAudit *a) {
    if (!a) return;
    free(a->groups);
    a->groups = NULL;
    a->n_groups = 0;
}

static HgadAuditCheck *add_check(HgadAudit *a, int level, const char *name, double value,
                                 double tolerance) {
    if (a->n_checks >= HGAD_AUDIT_MAX_CHECKS) return NULL;
    HgadAuditCheck *c = &a->checks[a->n_checks++];
    memset(c, 0, sizeof *c);
    c->level = level;
    snprintf(c->name, sizeof c->name, "%s", name);
    c->value = value;
    c->tolerance = tolerance;
    c->passed = value <= tolerance; /* NaN fails */
    if (!c->passed) a->failures++;
    return c;
}

/* ---- linear algebra ---- */

double hgad_log_abs_det(double *a, int64_t n) {
    double logdet = 0;
    for (int64_t k = 0; k < n; k++) {
        int64_t pivot = k;
        for (int64_t r = k + 1; r < n; r++)
            if (fabs(a[r * n + k]) > fabs(a[pivot * n + k])) pivot = r;
        if (!(fabs(a[pivot * n + k]) > 0)) return -INFINITY;
        if (pivot != k)
            for (int64_t c = 0; c < n; c++) {
                double t = a[k * n + c];
                a[k * n + c] = a[pivot * n + c];
                a[pivot * n + c] = t;
            }
        const double d = a[k * n + k];
        logdet += log(fabs(d));
        for (int64_t r = k + 1; r < n; r++) {
            const double f = a[r * n + k] / d;
            if (f == 0) continue;
            for (int64_t c = k + 1; c < n; c++) a[r * n + c] -= f * a[k * n + c];
        }
    }
    return logdet;
}

/* ---- inputs ---- */

/* N random normal vectors of level `level` and their positional conditions
 * (the first N positions of a square map), or cond NULL without a condition. */
static hg_status sample_inputs(const Hgad *m, int level, int64_t n, uint64_t seed, Tensor **x,
                               Tensor **cond) {
    const int64_t D = m->config.dims[level], Dc = m->config.cond_dim;
    Rng rng = rng_new(seed + 0x9e3779b97f4a7c15ull * (uint64_t)(level + 1));
    *cond = NULL;
    *x = tensor_normal(SHAPE(n, D), 0.0f, 1.0f, &rng);
    if (!*x) return hg_last_status();
    if (Dc == 0) return HG_OK;
    int64_t side = 1;
    while (side * side < n) side++;
    Tensor *code = positional_code(Dc, side, side);
    Tensor *rows = code ? tensor_narrow(code, 0, 0, n) : NULL;
    *cond = rows ? tensor_contiguous(rows) : NULL;
    tensor_free(rows);
    tensor_free(code);
    if (!*cond) {
        tensor_free(*x);
        *x = NULL;
        return hg_last_status();
    }
    return HG_OK;
}

/* Rows [start, start + count) as a new contiguous tensor. */
static Tensor *rows_of(const Tensor *t, int64_t start, int64_t count) {
    if (!t) return NULL;
    Tensor *view = tensor_narrow(t, 0, start, count);
    Tensor *out = view ? tensor_contiguous(view) : NULL;
    tensor_free(view);
    return out;
}

static double max_abs(const float *v, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double a = fabs((double)v[i]);
        if (isnan(a)) return NAN;
        if (a > m) m = a;
    }
    return m;
}

/* ---- inverse consistency ---- */

static hg_status check_inverse(const Hgad *m, int level, const Tensor *x, const Tensor *cond,
                               const HgadAuditOptions *o, HgadAudit *a, Tensor **logdet) {
    Tensor *z = NULL, *xr = NULL, *ldr = NULL;
    *logdet = NULL;
    hg_status s = hgad_flow_forward(m, level, x, cond, false, &z, logdet);
    if (s == HG_OK) s = hgad_flow_forward(m, level, z, cond, true, &xr, &ldr);
    if (s == HG_OK) {
        Tensor *xc = tensor_contiguous(x), *xrc = tensor_contiguous(xr),
               *ld = tensor_contiguous(*logdet), *ldrc = tensor_contiguous(ldr);
        if (!xc || !xrc || !ld || !ldrc) {
            s = hg_last_status();
        } else {
            const float *xv = tensor_data(xc), *xrv = tensor_data(xrc), *lv = tensor_data(ld),
                        *lrv = tensor_data(ldrc);
            const int64_t n = tensor_numel(xc), rows = tensor_numel(ld);
            double err = 0, ld_err = 0;
            for (int64_t i = 0; i < n; i++) {
                double d = fabs((double)xrv[i] - (double)xv[i]);
                if (!(d <= err)) err = d; /* keeps a NaN */
            }
            for (int64_t i = 0; i < rows; i++) {
                double d = fabs((double)lv[i] + (double)lrv[i]);
                if (!(d <= ld_err)) ld_err = d;
            }
            const double x_scale = max_abs(xv, n), ld_scale = fmax(1.0, max_abs(lv, rows));
            HgadAuditCheck *c = add_check(a, level, "inverse", err / x_scale, o->inverse_tolerance);
            if (c)
                snprintf(c->detail, sizeof c->detail,
                         "max|f^-1(f(x)) - x| = %.3g over %lld x %lld values, max|x| = %.3g", err,
                         (long long)x->shape[0], (long long)x->shape[1], x_scale);
            c = add_check(a, level, "logdet-inverse", ld_err / ld_scale, o->inverse_tolerance);
            if (c)
                snprintf(c->detail, sizeof c->detail,
                         "max|ld(x) + ld^-1(f(x))| = %.3g, max|ld| = %.4g", ld_err, ld_scale);
        }
        tensor_free(xc), tensor_free(xrc), tensor_free(ld), tensor_free(ldrc);
    }
    tensor_free(z), tensor_free(xr), tensor_free(ldr);
    if (s != HG_OK) {
        tensor_free(*logdet);
        *logdet = NULL;
    }
    return s;
}

/* ---- log-det against the numerical Jacobian ---- */

/* log|det J| of f at row `row` of x: rows 2i and 2i+1 of one batch are
 * x + h e_i and x - h e_i; column i of J is their outputs' difference over the
 * step actually taken (x +- h rounded to float). */
static hg_status numeric_logdet(const Hgad *m, int level, const Tensor *x, const Tensor *cond,
                                int64_t row, double h, double *out) {
    const int64_t D = x->shape[1], Dc = cond ? cond->shape[1] : 0;
    Tensor *xs = tensor_empty(SHAPE(2 * D, D));
    Tensor *cs = Dc ? tensor_empty(SHAPE(2 * D, Dc)) : NULL;
    double *jac = malloc(sizeof(double) * (size_t)(D * D));
    double *step = malloc(sizeof(double) * (size_t)D);
    Tensor *z = NULL, *ld = NULL, *zc = NULL;
    hg_status s = HG_OK;
    if (!xs || (Dc && !cs) || !jac || !step) {
        s = hg_last_status() != HG_OK ? hg_last_status()
                                      : hg_fail(HG_ERR_NOMEM, "audit: out of memory");
        goto done;
    }
    const float *x0 = tensor_data(x) + row * D;
    float *xv = tensor_data(xs);
    for (int64_t i = 0; i < D; i++) {
        float *plus = xv + (2 * i) * D, *minus = plus + D;
        memcpy(plus, x0, sizeof(float) * (size_t)D);
        memcpy(minus, x0, sizeof(float) * (size_t)D);
        plus[i] = (float)((double)x0[i] + h);
        minus[i] = (float)((double)x0[i] - h);
        step[i] = (double)plus[i] - (double)minus[i];
        if (Dc) {
            memcpy(tensor_data(cs) + (2 * i) * Dc, tensor_data(cond) + row * Dc,
                   sizeof(float) * (size_t)Dc);
            memcpy(tensor_data(cs) + (2 * i + 1) * Dc, tensor_data(cond) + row * Dc,
                   sizeof(float) * (size_t)Dc);
        }
    }
    s = hgad_flow_forward(m, level, xs, cs, false, &z, &ld);
    if (s == HG_OK && !(zc = tensor_contiguous(z))) s = hg_last_status();
    if (s != HG_OK) goto done;
    const float *zv = tensor_data(zc);
    for (int64_t i = 0; i < D; i++)
        for (int64_t r = 0; r < D; r++)
            jac[r * D + i] =
                ((double)zv[(2 * i) * D + r] - (double)zv[(2 * i + 1) * D + r]) / step[i];
    *out = hgad_log_abs_det(jac, D);
done:
    tensor_free(xs), tensor_free(cs), tensor_free(z), tensor_free(ld), tensor_free(zc);
    free(jac);
    free(step);
    return s;
}

static hg_status check_jacobian(const Hgad *m, int level, const Tensor *x, const Tensor *cond,
                                const Tensor *logdet, const HgadAuditOptions *o, HgadAudit *a) {
    const int64_t vectors = o->jacobian_vectors < x->shape[0] ? o->jacobian_vectors : x->shape[0];
    if (vectors <= 0) return HG_OK;
    Tensor *xc = tensor_contiguous(x), *cc = cond ? tensor_contiguous(cond) : NULL,
           *lc = tensor_contiguous(logdet);
    hg_status s = xc && (!cond || cc) && lc ? HG_OK : hg_last_status();
    double worst = 0, worst_flow = 0, worst_numeric = 0;
    int64_t worst_row = 0;
    for (int64_t v = 0; s == HG_OK && v < vectors; v++) {
        double numeric = 0;
        s = numeric_logdet(m, level, xc, cc, v, o->jacobian_step, &numeric);
        if (s != HG_OK) break;
        const double flow = (double)tensor_data(lc)[v];
        const double err = fabs(flow - numeric) / fmax(1.0, fabs(flow));
        if (v == 0 || !(err <= worst)) {
            worst = err, worst_flow = flow, worst_numeric = numeric, worst_row = v;
        }
    }
    if (s == HG_OK) {
        HgadAuditCheck *c = add_check(a, level, "logdet-jacobian", worst, o->logdet_tolerance);
        if (c)
            snprintf(
                c->detail, sizeof c->detail,
                "worst of %lld vectors (vector %lld): flow log-det %.6g, log|det J| by central "
                "differences (h = %.3g) %.6g",
                (long long)vectors, (long long)worst_row, worst_flow, o->jacobian_step,
                worst_numeric);
    }
    tensor_free(xc), tensor_free(cc), tensor_free(lc);
    return s;
}

/* ---- gradient checks ---- */

typedef enum { TERMS_INTER, TERMS_WEIGHTS, TERMS_INTRA, TERMS_ALL } TermSet;

typedef struct GradContext {
    Hgad *model;
    int level;
    const int64_t *labels;
    TermSet terms;
    Var *z, *logdet;        /* the prior checks' inputs (leaves) */
    const Tensor *x, *cond; /* the flow check's inputs */
} GradContext;

/* The chosen loss terms as one vector, so gradcheck weighs each on its own
 * (the weighted total would scale L_mi's float noise by lambda2 = 100). */
static Var *stack_terms(Tape *tape, const PriorLosses *t, TermSet set) {
    Var *all[5] = {t->L_g, t->L_mi, t->L_e, t->L_g_intra, t->L_z};
    bool take[5] = {true, true, true, true, true};
    if (set == TERMS_INTER) take[3] = take[4] = false;
    if (set == TERMS_WEIGHTS) take[1] = take[2] = take[3] = take[4] = false;
    if (set == TERMS_INTRA) take[0] = take[1] = take[2] = false;
    Var *parts[5];
    int n = 0;
    for (int i = 0; i < 5; i++)
        if (take[i] && all[i]) parts[n++] = ag_reshape(tape, all[i], SHAPE(1));
    if (n == 0) {
        hg_fail(HG_ERR_ARG, "audit: the prior defines none of the checked loss terms");
        return NULL;
    }
    return n == 1 ? parts[0] : ag_concat(tape, n, parts, 0);
}

/* The prior on the leaves z (N, D) and log-det (N) of the context; the checked
 * inputs (some of z, log-det and the prior's parameters) are used in place. */
static Var *prior_terms(Tape *tape, Var **inputs, void *context) {
    const GradContext *c = context;
    const Prior *p = c->model->priors[c->level];
    PriorLosses t;
    if (p->ops->losses(p, tape, c->z, c->logdet, c->labels, PRIOR_PHASE_FULL, &t) != HG_OK)
        return NULL;
    return stack_terms(tape, &t, c->terms);
}

/* The flow and the prior on fixed x; the checked parameter is used in place. */
static Var *flow_terms(Tape *tape, Var **inputs, void *context) {
    const GradContext *c = context;
    PriorLosses t;
    Var *x = ag_constant(tape, tensor_ref(c->x));
    Var *cond = c->cond ? ag_constant(tape, tensor_ref(c->cond)) : NULL;
    if (!hgad_level_loss(c->model, tape, c->level, x, cond, c->labels, PRIOR_PHASE_FULL, &t))
        return NULL;
    return stack_terms(tape, &t, TERMS_ALL);
}

/* Runs one gradient check and records it; a failing or erroring check is a
 * failed entry, not an error of the audit. */
static void record_gradcheck(HgadAudit *a, int level, const char *name, const char *what,
                             GradcheckFn f, GradContext *ctx, int n, Var **inputs, double eps,
                             const HgadAuditOptions *o) {
    GradcheckOptions go = gradcheck_default_options();
    go.eps = eps;
    go.tolerance = o->gradcheck_tolerance;
    go.seed = o->seed + 17u * (uint64_t)(level + 1);
    GradcheckReport rep;
    memset(&rep, 0, sizeof rep);
    hg_status s = gradcheck(f, ctx, n, inputs, &go, &rep);
    double value = s == HG_OK || s == HG_ERR_CHECK ? rep.max_rel_error : INFINITY;
    HgadAuditCheck *c = add_check(a, level, name, value, o->gradcheck_tolerance);
    if (!c) return;
    if (s == HG_OK || s == HG_ERR_CHECK)
        snprintf(c->detail, sizeof c->detail,
                 "%s: %lld elements, worst: input %d element %lld, analytic %.6g vs numeric %.6g",
                 what, (long long)rep.checked, rep.worst_input, (long long)rep.worst_index,
                 rep.analytic, rep.numeric);
    else
        snprintf(c->detail, sizeof c->detail, "%s: %s", what, hg_last_error());
    hg_clear_error();
}

static Var *find_param(const Hgad *m, const char *fmt, int level) {
    char name[96];
    snprintf(name, sizeof name, fmt, level);
    return param_set_find(m->params, name);
}

static hg_status check_gradients(Hgad *m, int level, const Tensor *x, const Tensor *cond,
                                 const HgadAuditOptions *o, HgadAudit *a) {
    const int64_t G = o->gradcheck_rows < x->shape[0] ? o->gradcheck_rows : x->shape[0];
    if (G <= 0) return HG_OK;
    int64_t *labels = malloc(sizeof(int64_t) * (size_t)G);
    Tensor *xs = rows_of(x, 0, G), *cs = rows_of(cond, 0, G), *z = NULL, *ld = NULL;
    hg_status s =
        labels && xs && (!cond || cs) ? HG_OK : hg_fail(HG_ERR_NOMEM, "audit: out of memory");
    if (s == HG_OK) s = hgad_flow_forward(m, level, xs, cs, false, &z, &ld);
    Var *zv = NULL, *ldv = NULL;
    if (s == HG_OK) {
        for (int64_t i = 0; i < G; i++) labels[i] = i % m->config.classes;
        zv = var_new(tensor_clone(z), true);
        ldv = var_new(tensor_clone(ld), true);
        if (!zv || !ldv) s = hg_last_status();
    }
    if (s == HG_OK) {
        GradContext ctx = {m, level, labels, TERMS_ALL, zv, ldv, xs, cs};
        if (m->config.prior == PRIOR_GAUSSIAN) {
            Var *in[2] = {zv, ldv};
            record_gradcheck(a, level, "grad-prior", "L_z w.r.t. z, log-det", prior_terms, &ctx, 2,
                             in, o->gradcheck_eps, o);
        } else {
            Var *mu = find_param(m, "mus.%d", level), *phi = find_param(m, "phi_inters.%d", level);
            Var *delta = find_param(m, "mu_deltas.%d", level),
                *rho = find_param(m, "phi_intras.%d", level);
            Var *inter[3] = {zv, ldv, mu};
            ctx.terms = TERMS_INTER;
            record_gradcheck(a, level, "grad-inter", "L_g, L_e, L_mi w.r.t. z, log-det, mus",
                             prior_terms, &ctx, mu ? 3 : 2, inter, o->gradcheck_eps, o);
            if (phi) {
                ctx.terms = TERMS_WEIGHTS;
                record_gradcheck(a, level, "grad-weights", "L_g w.r.t. phi_inters", prior_terms,
                                 &ctx, 1, &phi, o->gradcheck_eps, o);
            }
            if (delta && rho) {
                Var *intra[4] = {zv, ldv, delta, rho};
                ctx.terms = TERMS_INTRA;
                record_gradcheck(a, level, "grad-intra",
                                 "L_g_intra, L_z w.r.t. z, log-det, mu_deltas, phi_intras",
                                 prior_terms, &ctx, 4, intra, o->gradcheck_eps, o);
            }
        }
        char name[96];
        snprintf(name, sizeof name, "nfs.%d.module_list.0.global_scale", level);
        Var *gamma = param_set_find(m->params, name);
        if (gamma) {
            char what[160];
            snprintf(what, sizeof what, "every loss term w.r.t. %s", name);
            record_gradcheck(a, level, "grad-flow", what, flow_terms, &ctx, 1, &gamma,
                             o->gradcheck_flow_eps, o);
        }
        param_set_zero_grad(m->params); /* the analytic passes filled every parameter's grad */
    }
    var_free(zv), var_free(ldv);
    tensor_free(xs), tensor_free(cs), tensor_free(z), tensor_free(ld);
    free(labels);
    return s;
}

/* ---- parameter statistics ---- */

/* "nfs.0.module_list.11.subnet.0.weight" -> "nfs.0.module_list.*.subnet.0.weight". */
static void group_name(const char *name, char *out, size_t size) {
    const char *key = "module_list.";
    const char *at = strstr(name, key);
    if (!at) {
        snprintf(out, size, "%s", name);
        return;
    }
    const char *rest = at + strlen(key);
    while (*rest >= '0' && *rest <= '9') rest++;
    snprintf(out, size, "%.*s*%s", (int)(at + strlen(key) - name), name, rest);
}

typedef struct Accumulator {
    double sum, sum_sq, min, max;
    int64_t finite;
} Accumulator;

hg_status hgad_param_stats(const ParamSet *ps, HgadParamStats **groups, int *n_groups) {
    const int64_t n = param_set_size(ps);
    HgadParamStats *g = calloc((size_t)(n ? n : 1), sizeof *g);
    Accumulator *acc = calloc((size_t)(n ? n : 1), sizeof *acc);
    *groups = NULL;
    *n_groups = 0;
    if (!g || !acc) {
        free(g), free(acc);
        return hg_fail(HG_ERR_NOMEM, "audit: out of memory");
    }
    int count = 0;
    for (int64_t i = 0; i < n; i++) {
        const ParamEntry *e = param_set_at(ps, i);
        char name[128];
        group_name(e->name, name, sizeof name);
        int k = 0;
        while (k < count && strcmp(g[k].group, name)) k++;
        if (k == count) {
            snprintf(g[k].group, sizeof g[k].group, "%s", name);
            acc[k].min = INFINITY, acc[k].max = -INFINITY;
            count++;
        }
        Tensor *v = tensor_contiguous(e->var->value);
        if (!v) {
            free(g), free(acc);
            return hg_last_status();
        }
        const float *d = tensor_data(v);
        const int64_t numel = tensor_numel(v);
        g[k].tensors++;
        g[k].count += numel;
        for (int64_t j = 0; j < numel; j++) {
            const double x = d[j];
            if (isnan(x)) {
                g[k].nan++;
            } else if (isinf(x)) {
                g[k].inf++;
            } else {
                acc[k].sum += x, acc[k].sum_sq += x * x, acc[k].finite++;
                if (x < acc[k].min) acc[k].min = x;
                if (x > acc[k].max) acc[k].max = x;
            }
        }
        tensor_free(v);
    }
    for (int k = 0; k < count; k++) {
        const double f = (double)acc[k].finite;
        if (acc[k].finite == 0) {
            g[k].mean = g[k].std = g[k].min = g[k].max = NAN;
            continue;
        }
        g[k].mean = acc[k].sum / f;
        const double var = acc[k].sum_sq / f - g[k].mean * g[k].mean;
        g[k].std = sqrt(var > 0 ? var : 0);
        g[k].min = acc[k].min;
        g[k].max = acc[k].max;
    }
    free(acc);
    *groups = g;
    *n_groups = count;
    return HG_OK;
}

/* One model-wide check: no NaN or Inf anywhere; names the first such tensor. */
static void check_finite(const ParamSet *ps, HgadAudit *a) {
    int64_t bad = 0;
    const char *first = NULL;
    int64_t first_nan = 0, first_inf = 0;
    for (int64_t i = 0; i < param_set_size(ps); i++) {
        const ParamEntry *e = param_set_at(ps, i);
        Tensor *v = tensor_contiguous(e->var->value);
        if (!v) continue;
        int64_t nan = 0, inf = 0;
        for (int64_t j = 0; j < tensor_numel(v); j++) {
            const float x = tensor_data(v)[j];
            nan += isnan(x) != 0;
            inf += isinf(x) != 0;
        }
        tensor_free(v);
        if ((nan || inf) && !first) first = e->name, first_nan = nan, first_inf = inf;
        bad += nan + inf;
    }
    HgadAuditCheck *c = add_check(a, -1, "finite-params", (double)bad, 0);
    if (!c) return;
    if (first)
        snprintf(c->detail, sizeof c->detail,
                 "%lld non-finite values; first in %s (%lld NaN, %lld Inf)", (long long)bad, first,
                 (long long)first_nan, (long long)first_inf);
    else
        snprintf(c->detail, sizeof c->detail, "every parameter and buffer is finite");
}

/* ---- the audit ---- */

hg_status hgad_audit(Hgad *m, const HgadAuditOptions *options, HgadAudit *out) {
    HgadAuditOptions o = options ? *options : hgad_audit_default_options();
    memset(out, 0, sizeof *out);
    if (o.samples < 1 || o.jacobian_vectors < 0 || o.gradcheck_rows < 0 || !(o.jacobian_step > 0))
        return hg_fail(
            HG_ERR_ARG, "audit: samples %lld, jacobian vectors %d, gradcheck rows %lld, step %g",
            (long long)o.samples, o.jacobian_vectors, (long long)o.gradcheck_rows, o.jacobian_step);
    check_finite(m->params, out);
    hg_status s = HG_OK;
    for (int l = 0; s == HG_OK && l < m->config.levels; l++) {
        Tensor *x = NULL, *cond = NULL, *logdet = NULL;
        s = sample_inputs(m, l, o.samples, o.seed, &x, &cond);
        if (s == HG_OK) s = check_inverse(m, l, x, cond, &o, out, &logdet);
        if (s == HG_OK) s = check_jacobian(m, l, x, cond, logdet, &o, out);
        if (s == HG_OK) s = check_gradients(m, l, x, cond, &o, out);
        tensor_free(x), tensor_free(cond), tensor_free(logdet);
    }
    if (s == HG_OK) s = hgad_param_stats(m->params, &out->groups, &out->n_groups);
    if (s != HG_OK) hgad_audit_free(out);
    return s;
}
