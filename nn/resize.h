/* Resizing of NCHW maps to a given size, as PyTorch's
 * F.interpolate(x, size=(oh, ow), mode=...) (scale taken from the sizes).
 *
 * Bilinear, per dimension with in -> out entries (float arithmetic, as torch):
 *   align_corners = true:  src = d * (in - 1) / (out - 1)       (0 when out == 1)
 *   align_corners = false: src = max((d + 0.5) * in / out - 0.5, 0)
 *   i0 = floor(src), i1 = min(i0 + 1, in - 1), l1 = src - i0, l0 = 1 - l1
 *   (the identity when in == out)
 * Nearest (mode='nearest'): src = min(floor(d * (in / out)), in - 1), with the
 * exact shortcuts of torch for out == in and out == 2 in. */
#ifndef HG_NN_RESIZE_H
#define HG_NN_RESIZE_H

#include <stdbool.h>

#include "autograd/autograd.h"

Tensor *resize_bilinear_forward(const Tensor *x, int64_t out_h, int64_t out_w, bool align_corners);
/* dx [N, C, in_h, in_w]: each output gradient spread back with its four weights. */
Tensor *resize_bilinear_backward(const Tensor *dout, int64_t in_h, int64_t in_w,
                                 bool align_corners);

Tensor *resize_nearest_forward(const Tensor *x, int64_t out_h, int64_t out_w);
Tensor *resize_nearest_backward(const Tensor *dout, int64_t in_h, int64_t in_w);

Var *ag_resize_bilinear(Tape *tape, Var *x, int64_t out_h, int64_t out_w, bool align_corners);
Var *ag_resize_nearest(Tape *tape, Var *x, int64_t out_h, int64_t out_w);

#endif
