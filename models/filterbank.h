/* A built-in feature extractor that needs no trained weights, for the demo and
 * for machines without pretrained backbones: fixed Gaussian-derivative filters
 * (a "jet") on opponent-colour channels at three scales, pooled to stride 8
 * and compressed so that every channel has a spread of about one unit.
 *
 * Why this shape: a normalizing flow trained for a few hundred steps cannot
 * rescale its inputs much (its global affine starts at the identity), so a
 * channel whose natural spread is 0.03 next to one of 1 is all but ignored
 * (raw RMS responses of derivative filters spread 0.03-0.1, colour about 1).
 * Edge and texture energies are therefore reported as log(1 + rms / e), e the
 * sensor-noise level, which turns their multiplicative range into an additive
 * one of a few units, and orientation as bounded ratios.
 *
 * Per pixel, the input (ImageNet-normalized RGB) becomes the orthonormal
 * opponent channels L = (R+G+B)/sqrt3, O1 = (R-G)/sqrt2, O2 = (R+G-2B)/sqrt6,
 * filtered (sigma 1 px, mirrored borders) into the smoothed colour, the
 * gradient of L, its Hessian and the gradients of O1, O2. Scale k repeats this
 * on the image averaged over 2^k x 2^k pixels (so sigma = 2^k input pixels).
 * Each output cell pools its 8x8 input pixels with a triangular window twice
 * the cell wide (neighbouring cells overlap by half, so a small defect moves
 * smoothly from cell to cell instead of jumping). Channels:
 *
 *   0-2        mean L, O1, O2 (the smoothed colour; once, it barely depends on scale)
 *   then for each scale k = 0, 1, 2, seven channels 3 + 7k + j:
 *   j = 0      log(1 + rms |grad L| / e) - 2                  edge energy
 *   j = 1, 2   <Lx^2 - Ly^2>, <2 Lx Ly> over <|grad L|^2> + e^2  dominant
 *              orientation (the structure tensor; in [-1, 1], 0 when isotropic)
 *   j = 3      log(1 + rms |smaller Hessian eigenvalue| / e) - 2   spots, corners
 *   j = 4      log(1 + rms |larger Hessian eigenvalue| / e) - 2    lines, ridges
 *              (a line or a straight edge has one zero eigenvalue, a spot
 *              two large ones: j = 3 separates spots from strokes, where
 *              trace and anisotropy energies would not, being equal in total
 *              for any pattern by Parseval)
 *   j = 5      log(1 + rms |grad O1, grad O2| / e) - 2         colour edges
 *   j = 6      log(1 + max |larger Hessian eigenvalue| / e) - 2   the strongest
 *              line or spot (the max of window weight x value over the largest
 *              weight: one thin scratch across a texture shows, where the mean
 *              dilutes it; a thin dark line has a larger second derivative
 *              than the smooth edges of most patterns)
 *
 * with e = FILTERBANK_NOISE_FLOOR / 2^k (averaging lowers the noise) and <.>
 * the pooled mean; the shift 2 centres the log channels (a flat region reads
 * about 0.56 - 2, a sharp edge crossing the cell about 3.3 - 2). Deterministic,
 * no state, no data-dependent statistics. */
#ifndef HG_MODELS_FILTERBANK_H
#define HG_MODELS_FILTERBANK_H

#include "tensor/tensor.h"

#define FILTERBANK_SCALES    3
#define FILTERBANK_COLOUR    3
#define FILTERBANK_PER_SCALE 7
#define FILTERBANK_CHANNELS  (FILTERBANK_COLOUR + FILTERBANK_SCALES * FILTERBANK_PER_SCALE)
#define FILTERBANK_STRIDE    8
/* Gradient magnitude of pure sensor noise at scale 0, in ImageNet-normalized
 * units: about 0.012 grey levels / 0.225 std x the derivative filter's L2 norm
 * 0.2 x sqrt(2) components = 0.015, rounded up. */
#define FILTERBANK_NOISE_FLOOR 0.02f

/* Maps (N, FILTERBANK_CHANNELS, ceil(H/8), ceil(W/8)) of images x (N, 3, H, W)
 * (any normalization; H, W >= 8). */
Tensor *filterbank_forward(const Tensor *x);

#endif
