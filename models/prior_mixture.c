/* HGAD's hierarchical Gaussian-mixture prior (spec section 5). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/ops.h"
#include "models/prior.h"
#include "nn/losses.h"
#include "tensor/ops.h"

typedef struct MixturePrior {
    Prior base;
    MixturePriorOptions options;
    Var *mu;        /* (C, D) main class centers */
    Var *mu_delta;  /* (C, M-1, D) intra-class offsets, NULL when M == 1 */
    Var *phi_inter; /* (C) class weights (logits) */
    Var *phi_intra; /* (C, M) intra-class weights (logits) */
} MixturePrior;

static const int dim1 = 1;

/* d_ij = |z_i|^2 + |m_j|^2 - 2 z_i . m_j for z (N, D), centers (K, D) -> (N, K),
 * the expansion the reference uses (one GEMM instead of N*K differences). */
static Var *squared_distances(Tape *tape, Var *z, Var *centers) {
    Var *zz = ag_sum(tape, ag_square(tape, z), 1, &dim1, true);             /* (N, 1) */
    Var *mm = ag_sum(tape, ag_square(tape, centers), 1, &dim1, false);      /* (K) */
    Var *zm = ag_matmul(tape, z, centers, false, true);                     /* (N, K) */
    return ag_add(tape, ag_add(tape, ag_scale(tape, zm, -2.0f), zz), mm);
}

/* -mean_i [logsumexp_j(-d_ij/2 + log w_ij) + ld_i] / D: the negative
 * log-likelihood per dimension of a mixture (eq. 6), without the constant. */
static Var *mixture_nll(Tape *tape, Var *half_neg_dist_plus_logw, Var *logdet, int64_t dim) {
    Var *lse = ag_logsumexp(tape, half_neg_dist_plus_logw, 1, &dim1, false); /* (N) */
    Var *nll = ag_neg(tape, ag_add(tape, lse, logdet));
    return ag_scale(tape, ag_mean(tape, nll, 0, NULL, false), 1.0f / (float)dim);
}

/* Label-smoothed one-hot targets ybar = onehot (1 - eps) + eps / C (N, C). */
static Tensor *smoothed_targets(int64_t n, const int64_t *labels, int64_t classes, float eps) {
    Tensor *onehot = tensor_one_hot(n, labels, classes);
    if (!onehot) return NULL;
    float *v = tensor_data(onehot);
    for (int64_t i = 0; i < n * classes; i++) v[i] = v[i] * (1.0f - eps) + eps / (float)classes;
    return onehot;
}

/* Intra-class centers of every class as rows (C*M, D): row c*M + 0 is sg(mu_c),
 * row c*M + k is sg(mu_c) + delta_{c,k-1} (sg = stop gradient: only the
 * offsets learn from the intra-class terms). */
static Var *intra_centers(Tape *tape, const MixturePrior *p) {
    const int64_t C = p->base.classes, D = p->base.dim, M = p->options.intra_centers;
    Var *main = ag_reshape(tape, ag_detach(tape, p->mu), SHAPE(C, 1, D));
    Var *parts[2] = {main, ag_add(tape, main, p->mu_delta)};
    return ag_reshape(tape, ag_concat(tape, 2, parts, 1), SHAPE(C * M, D));
}

/* For each row i, the M intra-class logits of its own class y_i:
 * -e_ik / 2 + log rho_{y_i,k} (N, M) with e_ik = |z_i - m_{y_i,k}|^2. */
static Var *intra_class_logits(Tape *tape, const MixturePrior *p, Var *z, const int64_t *labels) {
    const int64_t N = z->value->shape[0], M = p->options.intra_centers;
    int64_t *index = malloc(sizeof(int64_t) * (size_t)(N * M));
    int64_t *rows = malloc(sizeof(int64_t) * (size_t)N);
    if (!index || !rows) {
        free(index), free(rows);
        hg_fail(HG_ERR_NOMEM, "mixture prior: out of memory");
        return NULL;
    }
    for (int64_t i = 0; i < N; i++) {
        rows[i] = labels[i];
        for (int64_t k = 0; k < M; k++) index[i * M + k] = labels[i] * M + k;
    }
    Var *e_all = squared_distances(tape, z, intra_centers(tape, p)); /* (N, C*M) */
    Var *e = ag_gather(tape, e_all, 1, SHAPE(N, M), index);           /* (N, M) */
    Var *log_rho = ag_index_select(tape, ag_log_softmax(tape, p->phi_intra, 1), 0, N, rows);
    free(index);
    free(rows);
    return ag_add(tape, ag_scale(tape, e, -0.5f), log_rho);
}

static hg_status mixture_losses(const Prior *prior, Tape *tape, Var *z, Var *logdet,
                                const int64_t *labels, PriorPhase phase, PriorLosses *out) {
    const MixturePrior *p = (const MixturePrior *)prior;
    const int64_t N = z->value->shape[0], C = prior->classes, D = prior->dim;
    memset(out, 0, sizeof *out);
    for (int64_t i = 0; i < N; i++)
        if (labels[i] < 0 || labels[i] >= C)
            return hg_fail(HG_ERR_ARG, "mixture prior: label %lld of row %lld outside [0, %lld)",
                           (long long)labels[i], (long long)i, (long long)C);
    /* Inter-class terms: logits_ij = -d_ij / 2, log pi = log_softmax(phi_inter). */
    Var *logits = ag_scale(tape, squared_distances(tape, z, p->mu), -0.5f); /* (N, C) */
    Var *log_pi = ag_log_softmax(tape, p->phi_inter, 0);                     /* (C) */
    out->L_g = mixture_nll(tape, ag_add(tape, logits, log_pi), logdet, D);   /* eq. 6 */
    out->L_e = loss_softmax_entropy_mean(tape, logits, 1);                   /* eq. 9 */
    /* eq. 8: sum_j ybar_ij [log_softmax_j(logits + sg(log pi)) - sg(log pi_j)], averaged. */
    Var *log_pi_sg = ag_detach(tape, log_pi);
    Tensor *ybar = smoothed_targets(N, labels, C, p->options.label_smoothing);
    if (!ybar) return hg_last_status();
    Var *posterior = ag_log_softmax(tape, ag_add(tape, logits, log_pi_sg), 1);
    Var *gain = ag_mul(tape, ag_sub(tape, posterior, log_pi_sg), ag_constant(tape, ybar));
    out->L_mi = ag_mean(tape, ag_sum(tape, gain, 1, &dim1, false), 0, NULL, false);
    if (phase == PRIOR_PHASE_FULL && p->options.intra_centers > 1) {
        /* lse_i = logsumexp_k(-e_ik / 2 + log rho_{y_i,k}) over the own class's centers. */
        Var *lse = ag_logsumexp(tape, intra_class_logits(tape, p, z, labels), 1, &dim1, false);
        Var *lse_ld = ag_add(tape, lse, logdet);
        out->L_g_intra = ag_scale(tape, ag_mean(tape, ag_neg(tape, lse_ld), 0, NULL, false),
                                  1.0f / (float)D);
        /* logp_i = (D log(1/sqrt(2 pi)) + lse_i + ld_i) / D; L_z = mean(-log sigmoid(logp)). */
        Var *logp = ag_scale(tape, ag_add_scalar(tape, lse_ld, (float)(D * PRIOR_LOG_NORMALIZER)),
                             1.0f / (float)D);
        out->L_z = loss_neg_log_sigmoid_mean(tape, logp);
        if (!out->L_z || !out->L_g_intra) return hg_last_status();
    }
    return (out->L_g && out->L_e && out->L_mi) ? HG_OK : hg_last_status();
}

/* Section 7: logp with y = class_id over its intra-class centers (or the main
 * center alone when M == 1), and the negative entropy of softmax(-d / 2). */
static hg_status mixture_score(const Prior *prior, const Tensor *z, const Tensor *logdet,
                               int64_t class_id, Tensor **logp, Tensor **neg_entropy) {
    const MixturePrior *p = (const MixturePrior *)prior;
    const int64_t N = z->shape[0], D = prior->dim;
    *logp = *neg_entropy = NULL;
    if (class_id < 0 || class_id >= prior->classes)
        return hg_fail(HG_ERR_ARG, "mixture prior: class %lld outside [0, %lld)",
                       (long long)class_id, (long long)prior->classes);
    int64_t *labels = malloc(sizeof(int64_t) * (size_t)(N ? N : 1));
    Tape *tape = tape_new();
    if (!labels || !tape) {
        free(labels), tape_free(tape);
        return hg_fail(HG_ERR_NOMEM, "mixture prior: out of memory");
    }
    tape_set_grad_enabled(tape, false);
    for (int64_t i = 0; i < N; i++) labels[i] = class_id;
    Var *zv = ag_constant(tape, tensor_ref(z));
    Var *ld = ag_constant(tape, tensor_ref(logdet));
    Var *lse;
    if (p->options.intra_centers > 1) {
        lse = ag_logsumexp(tape, intra_class_logits(tape, p, zv, labels), 1, &dim1, false);
    } else { /* a single Gaussian per class: -|z - mu_c|^2 / 2 */
        Var *center = ag_narrow(tape, p->mu, 0, class_id, 1);
        lse = ag_reshape(tape, ag_scale(tape, squared_distances(tape, zv, center), -0.5f),
                         SHAPE(N));
    }
    Var *lp = ag_scale(tape, ag_add_scalar(tape, ag_add(tape, lse, ld), (float)(D * PRIOR_LOG_NORMALIZER)),
                       1.0f / (float)D);
    Var *logits = ag_scale(tape, squared_distances(tape, zv, p->mu), -0.5f);
    Var *ne = ag_neg(tape, ag_softmax_entropy(tape, logits, 1));
    hg_status status = (lp && ne) ? HG_OK : hg_last_status();
    if (status == HG_OK) {
        *logp = tensor_ref(lp->value);
        *neg_entropy = tensor_ref(ne->value);
    }
    tape_free(tape);
    free(labels);
    return status;
}

static void mixture_free(Prior *prior) {
    free(prior);
}

static const PriorOps mixture_ops = {"hierarchical-mixture", mixture_losses, mixture_score,
                                     mixture_free};

/* Section 5 initialization: mu = 0, then for k < floor(D / C) the columns
 * [kC, (k+1)C) hold s I_C with s = 5 / sqrt(floor(2D / C)); delta ~ N(0, 1);
 * phi = 0. */
static Tensor *initial_centers(int64_t C, int64_t D) {
    Tensor *mu = tensor_zeros(SHAPE(C, D));
    if (!mu) return NULL;
    const float s = (float)(5.0 / sqrt((double)((2 * D) / C)));
    for (int64_t k = 0; k < D / C; k++)
        for (int64_t c = 0; c < C; c++) tensor_data(mu)[c * D + k * C + c] = s;
    return mu;
}

Prior *mixture_prior_new(ParamSet *ps, int level, const MixturePriorOptions *options, Rng *rng) {
    const MixturePriorOptions *o = options;
    if (o->dim <= 0 || o->classes <= 0 || o->intra_centers <= 0 || o->classes > o->dim * 2 ||
        !(o->label_smoothing >= 0 && o->label_smoothing < 1)) {
        hg_fail(HG_ERR_ARG,
                "mixture prior: invalid options (dim %lld, classes %lld, intra centers %lld, "
                "label smoothing %g)",
                (long long)o->dim, (long long)o->classes, (long long)o->intra_centers,
                o->label_smoothing);
        return NULL;
    }
    MixturePrior *p = calloc(1, sizeof *p);
    if (!p) {
        hg_fail(HG_ERR_NOMEM, "mixture prior: out of memory");
        return NULL;
    }
    p->base = (Prior){&mixture_ops, o->dim, o->classes};
    p->options = *o;
    const int64_t C = o->classes, D = o->dim, M = o->intra_centers;
    char name[64];
    snprintf(name, sizeof name, "mus.%d", level);
    p->mu = param_set_add(ps, name, initial_centers(C, D), false);
    if (M > 1) {
        snprintf(name, sizeof name, "mu_deltas.%d", level);
        p->mu_delta = param_set_add(ps, name, tensor_normal(SHAPE(C, M - 1, D), 0, 1, rng), false);
    }
    snprintf(name, sizeof name, "phi_inters.%d", level);
    p->phi_inter = param_set_add(ps, name, tensor_zeros(SHAPE(C)), false);
    snprintf(name, sizeof name, "phi_intras.%d", level);
    p->phi_intra = param_set_add(ps, name, tensor_zeros(SHAPE(C, M)), false);
    if (!p->mu || (M > 1 && !p->mu_delta) || !p->phi_inter || !p->phi_intra) {
        free(p);
        return NULL;
    }
    return &p->base;
}
