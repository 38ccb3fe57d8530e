/* 2-d batch normalization of NCHW maps (PyTorch's BatchNorm2d).
 *
 *   y[n,c,h,w] = (x[n,c,h,w] - mean[c]) * invstd[c] * weight[c] + bias[c]
 *   invstd[c]  = 1 / sqrt(var[c] + eps)
 *
 * Inference (training = false) uses the running statistics. Training uses the
 * batch statistics over (N, H, W) with the biased variance, and updates the
 * running statistics in place as PyTorch does (momentum m, default 0.1):
 *   running_mean = (1 - m) running_mean + m mean
 *   running_var  = (1 - m) running_var  + m var * M / (M - 1),   M = N*H*W
 * weight and bias may be NULL (affine = false: 1 and 0). */
#ifndef HG_NN_BATCHNORM_H
#define HG_NN_BATCHNORM_H

#include <stdbool.h>

#include "autograd/autograd.h"

/* Normalizes x [N,C,H,W]. running_mean/var [C] are required for inference; in
 * training they may be NULL (no update). mean_out / invstd_out (may be NULL)
 * receive new [C] tensors with the statistics used, for the backward pass. */
Tensor *batchnorm2d_forward(const Tensor *x, const Tensor *weight, const Tensor *bias,
                            Tensor *running_mean, Tensor *running_var, bool training,
                            float momentum, float eps, Tensor **mean_out, Tensor **invstd_out);

/* Gradients of sum(dout * y). With xhat = (x - mean) * invstd and g = dout * weight:
 *   training:  dx = invstd * (g - mean_M(g) - xhat * mean_M(g * xhat))
 *              (mean and invstd depend on x; means over the M = N*H*W entries of a channel)
 *   inference: dx = invstd * g       (running statistics are constants)
 *   dweight[c] = sum dout * xhat,  dbias[c] = sum dout.
 * dx, dweight, dbias may be NULL (skipped); they receive new tensors. */
hg_status batchnorm2d_backward(const Tensor *dout, const Tensor *x, const Tensor *weight,
                               const Tensor *mean, const Tensor *invstd, bool training, Tensor **dx,
                               Tensor **dweight, Tensor **dbias);

/* batch norm on the tape; weight and bias may be NULL. The running statistics are
 * plain tensors (buffers), updated in place when training. */
Var *ag_batchnorm2d(Tape *tape, Var *x, Var *weight, Var *bias, Tensor *running_mean,
                    Tensor *running_var, bool training, float momentum, float eps);

#endif
