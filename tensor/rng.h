/* Counter-based random numbers (Philox4x32-10).
 *
 * Element i of a draw is a pure function of (seed, counter + i), so results are
 * bit-identical whatever the number of threads that fill the tensor. Each draw
 * advances the generator's counter by the number of elements it used. */
#ifndef HG_RNG_H
#define HG_RNG_H

#include <stdint.h>

#include "tensor/tensor.h"

typedef struct Rng {
    uint64_t seed;
    uint64_t counter;
} Rng;

Rng rng_new(uint64_t seed);

/* Four 32-bit random words for one counter value (the Philox block function). */
void rng_philox4x32(uint64_t seed, uint64_t counter, uint32_t out[4]);
/* The same with the full 128-bit counter and 64-bit key of Random123's
 * philox4x32_10 (rng_philox4x32 uses key {seed lo, seed hi} and counter
 * {counter lo, counter hi, 0, 0}); for known-answer tests. */
void rng_philox4x32_block(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]);

/* Single draws (advance the counter by one). */
float rng_uniform(Rng *rng);   /* [0, 1) */
double rng_uniform64(Rng *rng); /* [0, 1), 53 bits */
float rng_normal(Rng *rng);    /* N(0, 1) */
uint64_t rng_below(Rng *rng, uint64_t n); /* uniform integer in [0, n) */

/* Fill a contiguous array in parallel (thread-count independent). */
void rng_fill_uniform(Rng *rng, float *out, int64_t n, float low, float high);
void rng_fill_normal(Rng *rng, float *out, int64_t n, float mean, float std);

/* Tensors. */
Tensor *tensor_uniform(int ndim, const int64_t *shape, float low, float high, Rng *rng);
Tensor *tensor_normal(int ndim, const int64_t *shape, float mean, float std, Rng *rng);

/* Fisher-Yates permutation of 0..n-1 into perm. */
void rng_permutation(Rng *rng, int64_t *perm, int64_t n);

#endif
