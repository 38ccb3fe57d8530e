/* Optimizers with parameter groups: SGD (momentum, Nesterov), Adam, AdamW,
 * with PyTorch's update rules (torch.optim, single-tensor path) so that runs
 * match torch step for step; and gradient-norm clipping.
 *
 * An Optimizer holds groups; each group has its own hyper-parameters and a
 * list of named parameters (Vars it does not own). optim_step() updates every
 * parameter that has a gradient and skips the others (their step count does
 * not advance), exactly as torch skips params whose .grad is None.
 *
 * State per parameter: step count, and exp_avg / exp_avg_sq (Adam, AdamW),
 * max_exp_avg_sq (amsgrad), momentum_buffer (SGD with momentum). It exports
 * as named tensors "optimizer.{group}.{param}.{field}" for checkpoints. */
#ifndef HG_NN_OPTIM_H
#define HG_NN_OPTIM_H

#include "autograd/autograd.h"
#include "nn/params.h"

typedef enum { OPTIM_SGD, OPTIM_ADAM, OPTIM_ADAMW } OptimKind;

/* Hyper-parameters of one group (torch's names). */
typedef struct OptimHyper {
    double lr;
    double beta1, beta2; /* Adam, AdamW */
    double eps;          /* Adam, AdamW: added to sqrt of the bias-corrected v */
    double weight_decay; /* SGD, Adam: L2 added to the gradient; AdamW: decoupled */
    double momentum;     /* SGD */
    double dampening;    /* SGD */
    bool nesterov;       /* SGD (needs momentum > 0 and dampening 0) */
    bool amsgrad;        /* Adam, AdamW */
} OptimHyper;

/* torch's defaults: SGD lr 1e-3 (torch requires it; pick your own), momentum 0;
 * Adam lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0; AdamW the same
 * with weight_decay 1e-2. */
OptimHyper optim_default_hyper(OptimKind kind);

typedef struct OptimParam {
    char *name;
    Var *var; /* not owned */
    int64_t step;
    Tensor *exp_avg, *exp_avg_sq, *max_exp_avg_sq; /* NULL until the first step */
    Tensor *momentum_buffer;                       /* NULL until the first step */
} OptimParam;

typedef struct OptimGroup {
    char *name;
    OptimHyper hyper;
    double initial_lr; /* hyper.lr when the group was added; schedules scale it */
    OptimParam *params;
    int64_t count, capacity;
} OptimGroup;

typedef struct Optimizer {
    OptimKind kind;
    OptimGroup *groups;
    int n_groups;
} Optimizer;

Optimizer *optim_new(OptimKind kind);
void optim_free(Optimizer *opt);             /* NULL is fine; parameters are not freed */
const char *optim_kind_name(OptimKind kind); /* "sgd", "adam", "adamw" */

/* Adds a group; returns its index, or -1 (bad hyper-parameters, duplicate
 * name). `name` names it in exported state; NULL gives its index ("0", "1"). */
int optim_add_group(Optimizer *opt, const char *name, const OptimHyper *hyper);
/* Adds one parameter (contiguous value) to group `group`; names must be
 * unique within the optimizer. */
hg_status optim_add_param(Optimizer *opt, int group, const char *name, Var *param);
/* Adds every trainable (not buffer, not frozen) entry of `ps` under `prefix`
 * (NULL: all), under its ParamSet name. */
hg_status optim_add_param_set(Optimizer *opt, int group, const ParamSet *ps, const char *prefix);

/* One update of every parameter that has a gradient. */
hg_status optim_step(Optimizer *opt);
/* Drops the gradients of all parameters. */
void optim_zero_grad(Optimizer *opt);
/* Sets the learning rate of every group / of one group. */
void optim_set_lr(Optimizer *opt, double lr);
void optim_set_group_lr(Optimizer *opt, int group, double lr);
/* Number of parameters over all groups. */
int64_t optim_param_count(const Optimizer *opt);

/* ---- gradient clipping (torch.nn.utils.clip_grad_norm_) ----
 * total = L2 norm of all gradients together (params without one are ignored);
 * when total > max_norm every gradient is scaled by max_norm / (total + 1e-6).
 * *total_norm (may be NULL) receives the norm before clipping. */
hg_status clip_grad_norm(Var *const *params, int64_t n, double max_norm, double *total_norm);
/* The same over every parameter of an optimizer. */
hg_status optim_clip_grad_norm(Optimizer *opt, double max_norm, double *total_norm);

/* ---- state export / import ----
 * Visits every state tensor as ("optimizer.{group}.{param}.{field}", tensor),
 * fields "step" (1 element holding the count), "exp_avg", "exp_avg_sq",
 * "max_exp_avg_sq", "momentum_buffer"; parameters never stepped are skipped.
 * Stops at and returns the first non-OK status of `visit`. */
typedef hg_status (*OptimStateVisitor)(void *ctx, const char *name, const Tensor *tensor);
hg_status optim_state_export(const Optimizer *opt, OptimStateVisitor visit, void *ctx);
/* Restores the state. For each name, `lookup(ctx, name, &t)` sets t to a new
 * tensor (taken) or to NULL when the file has no such name, and returns a
 * non-OK status only on a real failure (which import returns). Every
 * parameter's state is reset first; state present for a parameter must be
 * complete and of its shape (HG_ERR_FORMAT otherwise). */
typedef hg_status (*OptimStateLookup)(void *ctx, const char *name, Tensor **out);
hg_status optim_state_import(Optimizer *opt, OptimStateLookup lookup, void *ctx);

#endif
