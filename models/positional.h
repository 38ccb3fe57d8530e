/* 2-d sinusoidal positional code used as the flows' condition (spec section 3). */
#ifndef HG_MODELS_POSITIONAL_H
#define HG_MODELS_POSITIONAL_H

#include "tensor/tensor.h"

/* The code of every position of an H x W map, as rows (H*W, dim) in row-major
 * position order (h * W + w), matching the flattening of (B, D, H, W) feature
 * maps to vectors. dim must be a positive multiple of 4. */
Tensor *positional_code(int64_t dim, int64_t height, int64_t width);

/* The same repeated for `batch` maps: (batch*H*W, dim). */
Tensor *positional_code_batch(int64_t dim, int64_t height, int64_t width, int64_t batch);

#endif
