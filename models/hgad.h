/* The HGAD model (spec sections 4-6): per feature level a conditional flow
 * and a prior, one Adam optimizer over all of them with the public code's
 * parameter groups, and one optimizer step per level per batch.
 *
 * Parameter names are the public code's (spec section 10): nfs.{l}.module_list.{k}.*,
 * mus.{l}, mu_deltas.{l}, phi_inters.{l}, phi_intras.{l}. */
#ifndef HG_MODELS_HGAD_H
#define HG_MODELS_HGAD_H

#include "models/flow.h"
#include "models/prior.h"
#include "nn/optim.h"
#include "nn/schedule.h"

#define HGAD_MAX_LEVELS 8

typedef enum {
    PRIOR_HIERARCHICAL, /* HGAD: inter- and intra-class mixture */
    PRIOR_INTER_CLASS,  /* ablation: inter-class mixture only (no intra-class centers) */
    PRIOR_GAUSSIAN,     /* CFLOW-AD: standard Gaussian */
} PriorKind;

typedef struct HgadConfig {
    int levels;
    int64_t dims[HGAD_MAX_LEVELS]; /* D_l, feature channels per level */
    int64_t cond_dim;              /* Dc = 256; 0 for unconditional flows */
    int coupling_blocks;           /* K = 12 */
    float clamp;                   /* alpha = 1.9 */
    bool new_clamp, hard_permutation;
    int64_t subnet_hidden; /* 0 = 2 n (the reference) */
    PriorKind prior;
    int64_t classes;        /* C */
    int64_t intra_centers;  /* M = 10 */
    float label_smoothing;  /* 0.02 */
    float lambda1, lambda2; /* 1, 100 */
    bool use_mi, use_entropy; /* ablations switch these off */
    /* optimizer (section 6) */
    double lr, beta1, beta2, flow_weight_decay;
    bool centers_lr_x3; /* restore the declared (but overridden) x3 lr of the centers */
    int meta_epochs, sub_epochs, inter_epochs; /* 25, 8, 2 */
    uint64_t seed;
} HgadConfig;

/* The faithful defaults with `levels` levels of `dim` channels and `classes` classes. */
HgadConfig hgad_default_config(int levels, int64_t dim, int64_t classes);

typedef struct Hgad {
    HgadConfig config;
    ParamSet *params;
    InvertibleModule *flows[HGAD_MAX_LEVELS];
    Prior *priors[HGAD_MAX_LEVELS];
    Optimizer *optimizer;
    int group_flows, group_centers, group_weights; /* optimizer group indices */
    /* params entries [level_params[l], level_params[l + 1]) are level l's
     * flow and prior (they are created level by level) */
    int64_t level_params[HGAD_MAX_LEVELS + 1];
} Hgad;

Hgad *hgad_new(const HgadConfig *config);
void hgad_free(Hgad *model);

/* Training phase of a meta epoch: inter-class only before config.inter_epochs. */
PriorPhase hgad_phase(const HgadConfig *config, int meta_epoch);

/* Loss values of one level's step (NaN for terms not computed). */
typedef struct HgadLossValues {
    double loss, L_g, L_mi, L_e, L_g_intra, L_z;
} HgadLossValues;

/* Records flow + prior losses of one level on `tape` and returns the total
 *   lambda1 L_g - lambda2 L_mi + L_e [+ L_g_intra + L_z in the full phase];
 * `terms` (may be NULL) receives the individual terms. */
Var *hgad_level_loss(const Hgad *model, Tape *tape, int level, Var *x, Var *cond,
                     const int64_t *labels, PriorPhase phase, PriorLosses *terms);

/* One optimizer step of one level on a batch of vectors x (N, D_l) with
 * condition cond (N, Dc) and class labels (N): forward, backward, Adam step
 * over every parameter that has a gradient (torch 1.13 zero_grad keeps zero
 * gradients, so parameters of other levels are stepped too, as in the public
 * code). The learning rate is left as set by hgad_set_lr(). */
hg_status hgad_train_step(Hgad *model, int level, const Tensor *x, const Tensor *cond,
                          const int64_t *labels, int meta_epoch, HgadLossValues *values);

/* hgad_train_step in two halves, for data-parallel training (pipeline/
 * data_parallel.h averages the gradients in between):
 * hgad_compute_gradients zeroes the existing gradients (torch 1.13 zero_grad)
 * and leaves in each parameter's grad the gradient of the level's loss on
 * this batch (forward + backward; a non-finite loss is HG_ERR_CHECK);
 * hgad_apply_step is the Adam step. */
hg_status hgad_compute_gradients(Hgad *model, int level, const Tensor *x, const Tensor *cond,
                                 const int64_t *labels, int meta_epoch, HgadLossValues *values);
hg_status hgad_apply_step(Hgad *model);

/* The trainable parameters of `level` (its flow and prior), the only ones a
 * step of that level gives non-zero gradients: writes up to `cap` Vars into
 * vars (may be NULL) and returns how many there are. */
int64_t hgad_level_parameters(const Hgad *model, int level, Var **vars, int64_t cap);

/* Sets every group's lr (the faithful schedule sets all groups alike; with
 * centers_lr_x3 the centers group gets 3 lr). */
void hgad_set_lr(Hgad *model, double lr);

/* Section 7 evidence of vectors x of class `class_id` at `level`, without
 * gradients: *logp (N) log-likelihood per dimension, *neg_entropy (N) or NULL. */
hg_status hgad_level_evidence(const Hgad *model, int level, const Tensor *x, const Tensor *cond,
                              int64_t class_id, Tensor **logp, Tensor **neg_entropy);

/* z = f_l(x) and its log-det without gradients (for auditing and tests). */
hg_status hgad_flow_forward(const Hgad *model, int level, const Tensor *x, const Tensor *cond,
                            bool reverse, Tensor **z, Tensor **logdet);


/* ---- checkpoints (spec section 10) ----
 * One safetensors file: parameters under the public code's names, the Adam
 * state under "optimizer.*" (absent in files converted from the public code),
 * and in __metadata__ the configuration as "hgad.*" strings plus the caller's
 * own key/value pairs (backbone, image size, class names, score statistics). */
/* 2 score keys per class (30 for MVTec AD), ~26 hgad.*, ~12 detector keys and
 * the recorded config.* options: 64 was too few for a unified MVTec model. */
#define HGAD_META_MAX 256

typedef struct HgadMeta {
    int count;
    char keys[HGAD_META_MAX][64];
    char values[HGAD_META_MAX][1024];
} HgadMeta;

/* Adds or replaces a key; HG_ERR_ARG when full or too long. */
hg_status hgad_meta_set(HgadMeta *meta, const char *key, const char *value);
const char *hgad_meta_get(const HgadMeta *meta, const char *key);

/* Writes the model (and its optimizer state when with_optimizer) atomically. */
hg_status hgad_save(const Hgad *model, const char *path, bool with_optimizer,
                    const HgadMeta *extra);
/* Rebuilds a model from a checkpoint: configuration from the metadata, then
 * every parameter (strict), then the optimizer state when the file has one.
 * `extra` (may be NULL) receives the metadata keys that are not "hgad.*". */
Hgad *hgad_load(const char *path, HgadMeta *extra);

#endif
