/* Pooling of NCHW maps, as PyTorch's max_pool2d, avg_pool2d, adaptive_avg_pool2d.
 *
 * Windows: output (y, x) covers input rows y*sh - pad_h .. y*sh - pad_h + kh - 1
 * (and the same for columns). Output size per dimension (PyTorch's rule):
 *   out = floor((in + 2 pad - k) / s) + 1          (ceil instead with ceil_mode,
 *         dropping a last window that would start in the right/bottom padding)
 * Max pooling pads with -inf (the maximum is over in-image entries; the first
 * maximum in row-major order wins, NaN propagates). Average pooling divides by
 * the window size clipped to the padded map (count_include_pad = true, PyTorch's
 * default) or, with exclude_pad, by the number of in-image entries. */
#ifndef HG_NN_POOL_H
#define HG_NN_POOL_H

#include <stdbool.h>

#include "autograd/autograd.h"

typedef struct Pool2dSpec {
    int kernel_h, kernel_w;
    int stride_h, stride_w; /* 0: the kernel size (PyTorch's default) */
    int pad_h, pad_w;       /* both sides; at most half the kernel */
    bool ceil_mode;
    bool exclude_pad; /* average pooling only: count_include_pad = false */
} Pool2dSpec;

/* Square kernel, stride and padding. */
Pool2dSpec pool2d_spec(int kernel, int stride, int padding);
hg_status pool2d_output_size(int64_t h, int64_t w, const Pool2dSpec *spec, int64_t *oh,
                             int64_t *ow);

Tensor *maxpool2d_forward(const Tensor *x, const Pool2dSpec *spec);
/* dx: dout routed to the (first) maximum of every window. */
Tensor *maxpool2d_backward(const Tensor *dout, const Tensor *x, const Pool2dSpec *spec);

Tensor *avgpool2d_forward(const Tensor *x, const Pool2dSpec *spec);
/* dx: dout / divisor spread over every window (x is used for its shape only). */
Tensor *avgpool2d_backward(const Tensor *dout, const Tensor *x, const Pool2dSpec *spec);

/* Output cell (y, x) averages input rows floor(y*H/oh) .. ceil((y+1)*H/oh) - 1
 * and the matching columns (PyTorch's adaptive_avg_pool2d). */
Tensor *adaptive_avgpool2d_forward(const Tensor *x, int64_t oh, int64_t ow);
Tensor *adaptive_avgpool2d_backward(const Tensor *dout, const Tensor *x);

/* Mean over H and W: [N,C,H,W] -> [N,C,1,1]. */
Tensor *global_avgpool2d_forward(const Tensor *x);
Tensor *global_avgpool2d_backward(const Tensor *dout, const Tensor *x);

Var *ag_maxpool2d(Tape *tape, Var *x, const Pool2dSpec *spec);
Var *ag_avgpool2d(Tape *tape, Var *x, const Pool2dSpec *spec);
Var *ag_adaptive_avgpool2d(Tape *tape, Var *x, int64_t oh, int64_t ow);
Var *ag_global_avgpool2d(Tape *tape, Var *x);

#endif
