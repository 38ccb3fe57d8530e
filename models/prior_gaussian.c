/* Standard Gaussian prior N(0, I), as in CFLOW-AD. */
#include <stdlib.h>
#include <string.h>

#include "autograd/ops.h"
#include "models/prior.h"
#include "nn/losses.h"

static const int dim1 = 1;

/* logp_i = (D log(1/sqrt(2 pi)) - |z_i|^2 / 2 + ld_i) / D. */
static Var *gaussian_logp(Tape *tape, Var *z, Var *logdet, int64_t dim) {
    Var *half_sq = ag_scale(tape, ag_sum(tape, ag_square(tape, z), 1, &dim1, false), -0.5f);
    Var *logp = ag_add_scalar(tape, ag_add(tape, half_sq, logdet), (float)(dim * PRIOR_LOG_NORMALIZER));
    return ag_scale(tape, logp, 1.0f / (float)dim);
}

static hg_status gaussian_losses(const Prior *prior, Tape *tape, Var *z, Var *logdet,
                                 const int64_t *labels, PriorPhase phase, PriorLosses *out) {
    memset(out, 0, sizeof *out);
    out->L_z = loss_neg_log_sigmoid_mean(tape, gaussian_logp(tape, z, logdet, prior->dim));
    return out->L_z ? HG_OK : hg_last_status();
}

static hg_status gaussian_score(const Prior *prior, const Tensor *z, const Tensor *logdet,
                                int64_t class_id, Tensor **logp, Tensor **neg_entropy) {
    *logp = *neg_entropy = NULL;
    Tape *tape = tape_new();
    if (!tape) return hg_fail(HG_ERR_NOMEM, "gaussian prior: out of memory");
    tape_set_grad_enabled(tape, false);
    Var *lp = gaussian_logp(tape, ag_constant(tape, tensor_ref(z)),
                            ag_constant(tape, tensor_ref(logdet)), prior->dim);
    hg_status status = lp ? HG_OK : hg_last_status();
    if (lp) *logp = tensor_ref(lp->value);
    tape_free(tape);
    return status;
}

static void gaussian_free(Prior *prior) {
    free(prior);
}

static const PriorOps gaussian_ops = {"gaussian", gaussian_losses, gaussian_score, gaussian_free};

Prior *gaussian_prior_new(int64_t dim) {
    if (dim <= 0) {
        hg_fail(HG_ERR_ARG, "gaussian prior: invalid dim %lld", (long long)dim);
        return NULL;
    }
    Prior *p = malloc(sizeof *p);
    if (!p) {
        hg_fail(HG_ERR_NOMEM, "gaussian prior: out of memory");
        return NULL;
    }
    *p = (Prior){&gaussian_ops, dim, 1};
    return p;
}
