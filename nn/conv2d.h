/* 2-d convolution of NCHW float32 maps (PyTorch's F.conv2d, cross-correlation).
 *
 *   out[n, o, y, x] = b[o] + sum_{c, i, j} w[o, c, i, j] *
 *                     in[n, g*Cin_g + c, y*sh - pad_top + i*dh, x*sw - pad_left + j*dw]
 *
 * with g = o / Cout_g the group of output channel o, Cin_g = Cin / groups,
 * Cout_g = Cout / groups; reads outside the input are zeros. Shapes: x [N, Cin, H, W],
 * w [Cout, Cin_g, KH, KW], bias [Cout] or NULL, out [N, Cout, OH, OW] with
 * OH = (H + pad_top + pad_bottom - dh*(KH-1) - 1) / sh + 1 (and the same for W).
 *
 * Three kernels sit behind one entry point, chosen by shape:
 *   groups == Cin == Cout > 1       -> a direct depthwise kernel (conv2d_depthwise*.c)
 *   1x1, stride 1, no padding       -> a matrix product per image on the NCHW data
 *                                      itself, no im2col (conv2d_1x1*.c)
 *   anything else                   -> im2col + gemm() per image and group (conv2d.c);
 *                                      ungrouped ones on AVX2 CPUs an implicit GEMM
 *                                      without the column matrix (conv2d_implicit*.c)
 * Each kernel has its forward and backward side by side; the forwards of the first
 * two have AVX2/FMA versions chosen at run time. Large work runs on OpenMP threads.
 * Inference callers that keep a layer's weights fixed can run 3x3 stride-1
 * convolutions through Winograd with a filter transformed once
 * (nn/conv2d_winograd.h; the backbones do). */
#ifndef HG_NN_CONV2D_H
#define HG_NN_CONV2D_H

#include <stdbool.h>

#include "autograd/autograd.h"

/* Zero (or negative) stride, dilation and groups mean 1, so a zeroed spec is a
 * plain stride-1 convolution without padding. With tf_same the pad_* fields are
 * ignored and each input is padded by TensorFlow's "same" rule for its own
 * size (nn/padding.h), as timm's Conv2dSame. */
typedef struct Conv2dSpec {
    int stride_h, stride_w, dilation_h, dilation_w, groups;
    int pad_top, pad_bottom, pad_left, pad_right;
    bool tf_same;
} Conv2dSpec;

/* A spec with the same stride, padding and dilation in both dimensions
 * (PyTorch's nn.Conv2d(stride=s, padding=p, dilation=d, groups=g)). */
Conv2dSpec conv2d_spec(int stride, int padding, int dilation, int groups);
/* TF "same" padding with stride s (timm's Conv2dSame / create_conv2d(padding='same')). */
Conv2dSpec conv2d_spec_same(int stride, int dilation, int groups);

/* Output height and width for an input of h x w and a kh x kw kernel; HG_ERR_ARG /
 * HG_ERR_SHAPE when the spec is invalid or the output would be empty. */
hg_status conv2d_output_size(int64_t h, int64_t w, int64_t kh, int64_t kw, const Conv2dSpec *spec,
                             int64_t *oh, int64_t *ow);

/* out = conv2d(x, w) + bias. Any 4-d views are accepted; a new contiguous tensor
 * is returned, or NULL with a message naming the shapes. */
Tensor *conv2d_forward(const Tensor *x, const Tensor *w, const Tensor *bias,
                       const Conv2dSpec *spec);

/* max(conv2d_forward(x, w, bias), 0) with the ReLU fused into the kernel where
 * it can be (inference epilogue of conv + ReLU units). */
Tensor *conv2d_forward_relu(const Tensor *x, const Tensor *w, const Tensor *bias,
                            const Conv2dSpec *spec);

/* Gradients of sum(dout * conv2d(x, w, bias)) with respect to x, w and bias:
 *   dx = conv_transpose(dout, w),  dw[o,c,i,j] = sum dout[n,o,y,x] * in[n,c,...],
 *   db[o] = sum_{n,y,x} dout[n,o,y,x].
 * Each of dx, dw, db may be NULL (that gradient is skipped); otherwise it receives
 * a new tensor owned by the caller (NULL on failure). */
hg_status conv2d_backward(const Tensor *dout, const Tensor *x, const Tensor *w,
                          const Conv2dSpec *spec, Tensor **dx, Tensor **dw, Tensor **db);

/* conv2d on the tape; b may be NULL. */
Var *ag_conv2d(Tape *tape, Var *x, Var *w, Var *b, const Conv2dSpec *spec);

#endif
