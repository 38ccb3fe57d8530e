/* Gaussian blur of 2-d maps with scipy.ndimage.gaussian_filter semantics.
 *
 * Every plane (the last two dims of a tensor of 2 or more dims) is filtered by
 * the same 1-d kernel along H, then along W (separable):
 *   radius = int(truncate * sigma + 0.5),   k[t] = exp(-t^2 / (2 sigma^2)) / sum,
 *   t = -radius .. radius,
 * with scipy's default mode 'reflect' (half-sample symmetric: d c b a | a b c d |
 * d c b a, repeated when the radius exceeds the size). The result equals
 * gaussian_filter(plane, sigma, truncate=truncate) for each 2-d plane, as used
 * for anomaly maps (sigma = 4). Sums run in double, as in scipy. */
#ifndef HG_NN_BLUR_H
#define HG_NN_BLUR_H

#include "autograd/autograd.h"

/* radius = int(truncate * sigma + 0.5); 0 for sigma <= 0. */
int gaussian_radius(double sigma, double truncate);
/* The normalized taps k[0 .. 2 radius] (k[radius] is the center). */
void gaussian_kernel1d(double sigma, int radius, double *taps);

Tensor *gaussian_blur2d_forward(const Tensor *x, double sigma, double truncate);
/* The adjoint of the forward (the blur is linear): gradients of the reflected
 * border taps fold back onto the entries they were read from. */
Tensor *gaussian_blur2d_backward(const Tensor *dout, double sigma, double truncate);

Var *ag_gaussian_blur2d(Tape *tape, Var *x, double sigma, double truncate);

#endif
