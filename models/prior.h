/* Priors on the latent space of a flow, with one interface: training losses
 * for a batch and per-vector anomaly evidence for scoring.
 *
 * Implementations: a standard Gaussian (CFLOW-AD), an inter-class Gaussian
 * mixture, and HGAD's hierarchical Gaussian mixture (spec section 5). */
#ifndef HG_MODELS_PRIOR_H
#define HG_MODELS_PRIOR_H

#include "autograd/autograd.h"
#include "nn/params.h"
#include "tensor/rng.h"

/* log(1 / sqrt(2 pi)), the Gaussian normalizing constant per dimension. */
#define PRIOR_LOG_NORMALIZER (-0.9189385332046727)

/* Training phase of the hierarchical prior (spec section 5): meta epochs 0-1
 * train the inter-class mixture only; later ones add the intra-class terms. */
typedef enum { PRIOR_PHASE_INTER = 0, PRIOR_PHASE_FULL = 1 } PriorPhase;

/* Batch means of the loss terms (scalars on the tape); NULL for a term the
 * prior or phase does not define. */
typedef struct PriorLosses {
    Var *L_g;       /* mixture negative log-likelihood / D            (eq. 6) */
    Var *L_mi;      /* mutual-information term (to maximize)          (eq. 8) */
    Var *L_e;       /* entropy of the class posterior                 (eq. 9) */
    Var *L_g_intra; /* intra-class mixture negative log-likelihood / D        */
    Var *L_z;       /* -log sigmoid(logp), logp per dimension                 */
} PriorLosses;

typedef struct Prior Prior;

typedef struct PriorOps {
    const char *name;
    /* z (N, D) and logdet (N) from the flow; labels (N) class ids. */
    hg_status (*losses)(const Prior *p, Tape *tape, Var *z, Var *logdet, const int64_t *labels,
                        PriorPhase phase, PriorLosses *out);
    /* Section 7 evidence for vectors of class `class_id`, no gradient:
     * *logp (N) = log-likelihood per dimension; *neg_entropy (N) = -H of the
     * class posterior, or NULL when the prior has no classes. */
    hg_status (*score)(const Prior *p, const Tensor *z, const Tensor *logdet, int64_t class_id,
                       Tensor **logp, Tensor **neg_entropy);
    void (*free)(Prior *p);
} PriorOps;

struct Prior {
    const PriorOps *ops;
    int64_t dim;
    int64_t classes;
};

static inline void prior_free(Prior *p) {
    if (p) p->ops->free(p);
}

/* Standard Gaussian N(0, I): logp = (D log(1/sqrt(2 pi)) - |z|^2 / 2 + logdet) / D;
 * its loss is L_z = mean(-log sigmoid(logp)) as in CFLOW-AD. No parameters. */
Prior *gaussian_prior_new(int64_t dim);

typedef struct MixturePriorOptions {
    int64_t dim, classes;
    int64_t intra_centers; /* M; 1 = no intra-class centers (inter-class mixture only) */
    float label_smoothing; /* eps of the MI targets, 0.02 */
} MixturePriorOptions;

/* HGAD's hierarchical mixture, parameters under {prefix}: mus.{level},
 * mu_deltas.{level}, phi_inters.{level}, phi_intras.{level} (the public code's
 * names; pass prefix "" and the level). Initialized exactly as section 5. */
Prior *mixture_prior_new(ParamSet *ps, int level, const MixturePriorOptions *options, Rng *rng);

#endif
