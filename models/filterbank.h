/* A built-in feature extractor that needs no trained weights, for the demo and
 * for machines without pretrained backbones: a fixed bank of Gaussian-
 * derivative filters applied to each colour channel at two scales, whose
 * local mean (the Gaussian-smoothed colour) and local root-mean-square
 * responses (edge and texture energy) are pooled to stride 8.
 *
 * Per input channel the bank holds G, dG/dx, dG/dy, d2G/dxdy, the Laplacian of
 * G (sigma 1) and a difference of Gaussians (sigma 2 - sigma 1): 6 filters,
 * 18 responses r. Scale 1 works on the image, scale 2 on the image averaged
 * over 2x2 pixels. Each scale gives 3 local means of G * image and 18 values
 * sqrt(mean(r^2)), pooled over the 8x8 pixel cell of each output position:
 * 42 channels in all. */
#ifndef HG_MODELS_FILTERBANK_H
#define HG_MODELS_FILTERBANK_H

#include "tensor/tensor.h"

#define FILTERBANK_CHANNELS 42
#define FILTERBANK_STRIDE 8

/* Maps (N, 42, ceil(H/8), ceil(W/8)) of images x (N, 3, H, W) (any
 * normalization; H, W >= 8). */
Tensor *filterbank_forward(const Tensor *x);

#endif
