/* A built-in feature extractor that needs no trained weights, for the demo and
 * for machines without pretrained backbones: fixed Gaussian-derivative filters
 * (a "jet") on opponent-colour channels at three scales, pooled to stride 8
 * and compressed so that every channel has roughly unit spread.
 *
 * Why this shape: a normalizing flow trained for a few hundred steps cannot
 * rescale its inputs much (its global affine starts at the identity), so a
 * channel whose natural spread is 0.03 while another's is 1 is all but
 * ignored. The bank therefore reports edge and texture energies as
 * log(1 + rms / noise floor), which turns their multiplicative range into an
 * additive one of a few units, and orientation as bounded ratios.
 *
 * Per pixel, the input (ImageNet-normalized RGB) becomes the orthonormal
 * opponent channels L = (R+G+B)/sqrt3, O1 = (R-G)/sqrt2, O2 = (R+G-2B)/sqrt6,
 * filtered (sigma 1 px, mirrored borders) into the smoothed colour, the
 * gradient of L, its Hessian and the gradients of O1, O2. Scale k repeats this
 * on the image averaged over 2^k x 2^k pixels (so sigma = 2^k input pixels).
 * Each output cell pools its 8x8 input pixels with a triangular window twice
 * the cell wide (neighbouring cells overlap by half, so a small defect moves
 * smoothly from cell to cell instead of jumping). Per scale, 10 channels:
 *
 *   0-2  mean L, O1, O2 (smoothed colour)
 *   3    log(1 + rms |grad L| / e)                     edge energy
 *   4-5  <Lx^2 - Ly^2>, <2 Lx Ly> over <|grad L|^2> + e^2   dominant orientation
 *        (the structure tensor; in [-1, 1], 0 when isotropic or flat)
 *   6    log(1 + rms(Lxx + Lyy) / e)                   blobs (Laplacian)
 *   7    log(1 + rms sqrt((Lxx - Lyy)^2 + 4 Lxy^2) / e) lines and ridges
 *   8    log(1 + rms |grad O1, grad O2| / e)           colour edges
 *   9    log(1 + max |grad L| / e)                     the strongest mark
 *        (window-weighted max: sensitive to one thin scratch in a cell)
 *
 * with e = FILTERBANK_NOISE_FLOOR scaled by 2^-k (averaging lowers the noise),
 * and the log channels shifted by a constant so that they centre near 0.
 * Channel 10 s + j is channel j of scale s. Deterministic, no state. */
#ifndef HG_MODELS_FILTERBANK_H
#define HG_MODELS_FILTERBANK_H

#include "tensor/tensor.h"

#define FILTERBANK_SCALES         3
#define FILTERBANK_COLOUR         3
#define FILTERBANK_PER_SCALE      7
#define FILTERBANK_CHANNELS       (FILTERBANK_COLOUR + FILTERBANK_SCALES * FILTERBANK_PER_SCALE)
#define FILTERBANK_STRIDE         8
/* Gradient magnitude of pure sensor noise at scale 0, in ImageNet-normalized
 * units: about 0.012 grey levels / 0.225 std x the derivative filter's L2 norm
 * 0.2 x sqrt(2) components = 0.015, rounded up. */
#define FILTERBANK_NOISE_FLOOR    0.02f

/* Maps (N, FILTERBANK_CHANNELS, ceil(H/8), ceil(W/8)) of images x (N, 3, H, W)
 * (any normalization; H, W >= 8). */
Tensor *filterbank_forward(const Tensor *x);

#endif
