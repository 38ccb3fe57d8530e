/* Dropout (PyTorch's nn.Dropout / F.dropout).
 *
 * Training: every element is kept with probability 1 - p and scaled by
 * 1 / (1 - p), else zeroed, so E[y] = x; the mask is drawn from `rng`
 * (Philox, so the same seed gives the same mask for any thread count).
 * Evaluation (training = false) or p = 0: the identity, x itself is returned.
 * p = 1 zeroes everything, as PyTorch does. The gradient is the same mask. */
#ifndef HG_NN_DROPOUT_H
#define HG_NN_DROPOUT_H

#include <stdbool.h>

#include "autograd/autograd.h"
#include "tensor/rng.h"

/* NULL with HG_ERR_ARG when p is outside [0, 1] (or NaN), or when rng is NULL
 * in training mode; NULL-propagating in x. */
Var *dropout_forward(Tape *tape, Var *x, double p, bool training, Rng *rng);

#endif
