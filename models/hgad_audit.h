/* Numerical self-checks of an HGAD model (the "hgad audit" command).
 *
 * Per level, on random normal vectors x with the positional condition:
 *   inverse        max|f^-1(f(x)) - x| / max|x|                  (flow inverse)
 *   logdet-inverse max|ld(x) + ld^-1(f(x))| / max(1, max|ld(x)|)  (log-dets cancel)
 *   logdet-jacobian |ld(x) - log|det J(x)|| for a few vectors, J the full D x D
 *                  Jacobian by central differences (2 D forward rows per vector,
 *                  float32 forward, differences and LU in double)
 *   grad-*         finite-difference checks (autograd/gradcheck.h) of the loss
 *                  terms on a small sub-batch: the prior's inter-class terms
 *                  w.r.t. z, log-det and the class centers; L_g w.r.t. the class
 *                  weights; the intra-class terms w.r.t. z, log-det, the
 *                  intra-class offsets and weights; every term w.r.t. the first
 *                  block's global_scale (through the whole flow). Each term is
 *                  checked only w.r.t. inputs it depends on without a stop-gradient
 *                  (sg(mu) in the intra-class centers, sg(log pi) in L_mi), since a
 *                  finite difference sees through sg and the analytic gradient
 *                  must not.
 * and over the whole model:
 *   finite-params  no parameter or buffer holds NaN or Inf,
 * plus statistics of every parameter group (blocks of a flow pooled).
 *
 * Tolerances (HgadAuditOptions) and why they are what they are: see
 * hgad_audit_default_options() in models/hgad_audit.c. */
#ifndef HG_MODELS_HGAD_AUDIT_H
#define HG_MODELS_HGAD_AUDIT_H

#include "models/hgad.h"

typedef struct HgadAuditOptions {
    int64_t samples;            /* random vectors per level (default 64) */
    int jacobian_vectors;       /* vectors whose Jacobian is differenced (default 2) */
    int64_t gradcheck_rows;     /* sub-batch of the gradient checks (default 4) */
    uint64_t seed;              /* of x and of the gradient checks' projections */
    double inverse_tolerance;   /* relative, default 1e-4 */
    double jacobian_step;       /* central-difference step h, default 1e-2 */
    double logdet_tolerance;    /* |ld - log|det J|| <= tol * max(1, |ld|), default 2e-3 */
    double gradcheck_eps;       /* step of the prior checks, default 1e-2 */
    double gradcheck_flow_eps;  /* step of the global_scale check, default 1e-1 */
    double gradcheck_tolerance; /* gradcheck's relative error (floor 1e-2), default 3e-2 */
} HgadAuditOptions;

HgadAuditOptions hgad_audit_default_options(void);

#define HGAD_AUDIT_MAX_CHECKS (HGAD_MAX_LEVELS * 12 + 4)

typedef struct HgadAuditCheck {
    int level;     /* -1 for a model-wide check */
    char name[32]; /* "inverse", "logdet-inverse", "logdet-jacobian", "grad-...", "finite-params" */
    double value;  /* the measured error (NaN / Inf count for finite-params) */
    double tolerance; /* pass when value <= tolerance */
    bool passed;
    char detail[256]; /* what was measured, or why it failed */
} HgadAuditCheck;

typedef struct HgadParamStats {
    char group[128]; /* entry name, with the block index of a flow replaced by '*' */
    int64_t tensors, count;
    int64_t nan, inf;
    double mean, std, min, max; /* over the finite values (NaN when there are none) */
} HgadParamStats;

typedef struct HgadAudit {
    int n_checks, failures;
    HgadAuditCheck checks[HGAD_AUDIT_MAX_CHECKS];
    int n_groups;
    HgadParamStats *groups; /* owned */
} HgadAudit;

/* Runs every check on `model` (whose parameter values are perturbed and
 * restored by the gradient checks, and whose gradients are dropped). Failed
 * checks are recorded in *out, not returned: HG_OK means the audit ran. */
hg_status hgad_audit(Hgad *model, const HgadAuditOptions *options, HgadAudit *out);
void hgad_audit_free(HgadAudit *audit);

/* Statistics of every parameter group of `ps` in order of first appearance
 * (*groups owned by the caller, free()). */
hg_status hgad_param_stats(const ParamSet *ps, HgadParamStats **groups, int *n_groups);

/* log|det A| of a row-major n x n matrix (LU with partial pivoting, in place);
 * -Inf for a singular matrix. */
double hgad_log_abs_det(double *a, int64_t n);

#endif
