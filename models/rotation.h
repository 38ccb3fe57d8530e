/* Random orthogonal matrices for the flows' fixed soft permutations. */
#ifndef HG_MODELS_ROTATION_H
#define HG_MODELS_ROTATION_H

#include "tensor/rng.h"

/* A Haar-distributed rotation in SO(d): Householder QR of a standard Gaussian
 * matrix, columns signed so that R has a positive diagonal (which makes Q
 * Haar-distributed on O(d)), then the first row negated if det Q = -1. */
Tensor *random_rotation(int64_t d, Rng *rng);

/* A random permutation matrix: row i has its one at column perm[i]. */
Tensor *random_permutation_matrix(int64_t d, Rng *rng);

#endif
