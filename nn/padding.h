/* Zero padding of NCHW maps and TensorFlow's "same" padding rule.
 *
 * TF "same" (spec/backbones.md, timm's Conv2dSame / pad_same) pads a dimension
 * of size `in` for a kernel k, stride s, dilation d so that the output has
 * ceil(in / s) entries:
 *
 *   total  = max((ceil(in / s) - 1) * s + (k - 1) * d + 1 - in, 0)
 *   before = total / 2,   after = total - before   (the odd pixel goes after)
 *
 * pad2d_forward / pad2d_backward are the plain kernels; ag_pad2d records the
 * padding on the tape. Padding amounts must be >= 0. */
#ifndef HG_NN_PADDING_H
#define HG_NN_PADDING_H

#include <stdint.h>

#include "autograd/autograd.h"

/* Before/after padding of one dimension under the TF "same" rule. */
void pad_same_tf(int64_t in, int kernel, int stride, int dilation, int *before, int *after);

/* out = x zero-padded: [N, C, H + top + bottom, W + left + right] (any 4-d view). */
Tensor *pad2d_forward(const Tensor *x, int top, int bottom, int left, int right);
/* dx = the interior of dout: [N, C, H_out - top - bottom, W_out - left - right]. */
Tensor *pad2d_backward(const Tensor *dout, int top, int bottom, int left, int right);

Var *ag_pad2d(Tape *tape, Var *x, int top, int bottom, int left, int right);

#endif
