/* Winograd convolution for 3x3, stride 1, dilation 1, groups 1 (inference).
 *
 * The same result as conv2d_forward (nn/conv2d.h) up to float rounding, with
 * fewer multiplications: F(m x m, 3 x 3) computes each m x m output tile from
 * an (m+2) x (m+2) input patch with (m+2)^2 products per channel pair instead
 * of 9 m^2 (m = 2: 2.25x fewer, m = 4: 4x fewer). The filter is transformed
 * once into a WinogradFilter, which the caller keeps with the layer and frees
 * when the weights change or the layer goes. No autograd: inference paths
 * only; everything else uses conv2d_forward. Needs AVX2 + FMA (otherwise
 * conv2d_winograd_supported is false). */
#ifndef HG_NN_CONV2D_WINOGRAD_H
#define HG_NN_CONV2D_WINOGRAD_H

#include <stdbool.h>

#include "nn/conv2d.h"

typedef struct WinogradFilter WinogradFilter;

/* True when w [Cout, Cin, 3, 3] with spec is a 3x3, stride-1, dilation-1,
 * ungrouped convolution and the CPU runs the AVX2/FMA kernels. */
bool conv2d_winograd_supported(const Tensor *w, const Conv2dSpec *spec);

/* The tile size (2 or 4) expected to make the Winograd path faster than
 * conv2d_forward for this input, or 0 when it is not (too few channels or
 * pixels; see conv2d_winograd.c). Nonzero implies supported. */
int conv2d_winograd_choose_tile(const Tensor *x, const Tensor *w, const Conv2dSpec *spec);

/* Benchmarks and tests: true makes conv2d_winograd_choose_tile return 0, so
 * that callers take the im2col path (A/B comparisons in one process). */
void conv2d_winograd_disable(bool off);

/* Transforms w [Cout, Cin, 3, 3] for output tiles of tile x tile pixels
 * (2 or 4). NULL with a message on a bad shape or tile, or no memory. */
WinogradFilter *conv2d_winograd_filter_new(const Tensor *w, int tile);
void conv2d_winograd_filter_free(WinogradFilter *f); /* NULL is fine */
/* The tile size f was built for. */
int conv2d_winograd_tile(const WinogradFilter *f);

/* out = act(conv2d(x, w) + bias + residual) with the w that f was built from:
 * x [N, Cin, H, W] (any view), bias [Cout] or NULL, residual shaped like the
 * output or NULL, act the identity or (relu) max(0, .). The spec must be the
 * convolution's (its padding is used; stride/dilation/groups must be 1).
 * A new contiguous tensor, or NULL with a message. */
Tensor *conv2d_winograd_forward(const Tensor *x, const WinogradFilter *f, const Tensor *bias,
                                const Tensor *residual, bool relu, const Conv2dSpec *spec);

#endif
