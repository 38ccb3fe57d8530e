/* Differentiable losses, recorded on a Tape (results owned by the tape).
 *
 * All reduce with the mean, as PyTorch's default reduction="mean". Softmax,
 * log_softmax and logsumexp themselves are autograd ops (autograd/ops.h). */
#ifndef HG_NN_LOSSES_H
#define HG_NN_LOSSES_H

#include "autograd/autograd.h"

/* mean((pred - target)^2) over all elements; target broadcasts to pred. */
Var *loss_mse(Tape *tape, Var *pred, Var *target);

/* Cross entropy of logits (N, C) against class indices targets[N] in [0, C),
 * torch.nn.functional.cross_entropy(logits, targets, label_smoothing=eps):
 *   loss_i = (1 - eps) * -log p_{i,y_i} + eps * mean_c(-log p_{i,c}),
 *   p = softmax over classes, result = mean_i loss_i.
 * Fused forward/backward: d loss / d logits_ic = (p_ic - q_ic) / N with the
 * smoothed target q = (1 - eps) onehot(y) + eps / C. targets are copied. */
Var *loss_cross_entropy(Tape *tape, Var *logits, const int64_t *targets, float label_smoothing);

/* Cross entropy against a distribution `target_probs` (same shape as logits,
 * not differentiated) along `dim`: mean over the other positions of
 * -sum_dim target * log_softmax(logits). */
Var *loss_soft_cross_entropy(Tape *tape, Var *logits, const Tensor *target_probs, int dim);

/* Entropy of softmax(x) along `dim`, H = -sum p log p, one value per position
 * (dim removed). Fused backward: dH/dx_k = -p_k (log p_k + H). */
Var *ag_softmax_entropy(Tape *tape, Var *x, int dim);
/* mean over positions of ag_softmax_entropy(x, dim). */
Var *loss_softmax_entropy_mean(Tape *tape, Var *x, int dim);

/* mean(-log sigmoid(x)) = mean(softplus(-x)), computed stably: the logistic
 * loss of scores that should be positive (HGAD's L_z). */
Var *loss_neg_log_sigmoid_mean(Tape *tape, Var *x);

#endif
