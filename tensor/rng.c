/* Philox4x32-10 counter-based random numbers.
 *
 * Block function: J. K. Salmon, M. A. Moraes, R. O. Dror, D. E. Shaw, "Parallel
 * random numbers: as easy as 1, 2, 3", SC11 (2011), and the Random123 library's
 * philox4x32 with R = 10 rounds. Each round multiplies words 0 and 2 by two
 * constants, and the high halves, xored with the other words and the round key,
 * form the next state; the key is bumped by the Weyl constants between rounds.
 *
 * Mapping of this library onto the block function: key = {seed lo, seed hi},
 * counter = {c lo, c hi, 0, 0} with c = rng->counter + i for element i. Every
 * element of a fill consumes one whole block, so element i depends only on
 * (seed, counter + i) and any thread split gives the same bits. */
#include "tensor/rng.h"

#include <math.h>
#include <stdio.h>

#define PHILOX_M0     0xD2511F53u
#define PHILOX_M1     0xCD9E8D57u
#define PHILOX_W0     0x9E3779B9u /* golden ratio */
#define PHILOX_W1     0xBB67AE85u /* sqrt(3) - 1 */
#define PHILOX_ROUNDS 10

/* Fills above this many elements use OpenMP threads. */
#define PARALLEL_FILL_MIN 4096

void rng_philox4x32_block(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < PHILOX_ROUNDS; round++) {
        if (round > 0) {
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

void rng_philox4x32(uint64_t seed, uint64_t counter, uint32_t out[4]) {
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    const uint32_t ctr[4] = {(uint32_t)counter, (uint32_t)(counter >> 32), 0, 0};
    rng_philox4x32_block(ctr, key, out);
}

Rng rng_new(uint64_t seed) {
    return (Rng){.seed = seed, .counter = 0};
}

/* ---- conversions of one block (pure functions of the words) ---- */

/* [0, 1) from the 24 high bits of a word: every value is an exact float. */
static float uniform_from_word(uint32_t w) {
    return (float)(w >> 8) * 0x1.0p-24f;
}

/* Box-Muller with two words of the same block, evaluated in double and rounded
 * once to float:
 *   u1 = (w0 + 1) / 2^32  in (0, 1]  (never 0, so the log is finite)
 *   u2 = w1 / 2^32        in [0, 1)
 *   z  = sqrt(-2 ln u1) cos(2 pi u2)
 * Only the cosine branch is used so that element i is a function of block i
 * alone. |z| <= sqrt(64 ln 2) ~= 6.66. */
static float normal_from_block(const uint32_t w[4]) {
    double u1 = ((double)w[0] + 1.0) * 0x1.0p-32;
    double u2 = (double)w[1] * 0x1.0p-32;
    const double two_pi = 6.283185307179586476925286766559;
    return (float)(sqrt(-2.0 * log(u1)) * cos(two_pi * u2));
}

static uint64_t u64_from_block(const uint32_t w[4]) {
    return (uint64_t)w[0] << 32 | w[1];
}

/* ---- single draws ---- */

float rng_uniform(Rng *rng) {
    uint32_t w[4];
    rng_philox4x32(rng->seed, rng->counter++, w);
    return uniform_from_word(w[0]);
}

double rng_uniform64(Rng *rng) {
    uint32_t w[4];
    rng_philox4x32(rng->seed, rng->counter++, w);
    return (double)(u64_from_block(w) >> 11) * 0x1.0p-53;
}

float rng_normal(Rng *rng) {
    uint32_t w[4];
    rng_philox4x32(rng->seed, rng->counter++, w);
    return normal_from_block(w);
}

/* Rejection sampling: of the 2^64 possible draws, the lowest 2^64 mod n are
 * rejected so that the rest is a whole number of copies of [0, n). Each attempt
 * uses one counter value. n == 0 returns 0 without drawing. */
uint64_t rng_below(Rng *rng, uint64_t n) {
    if (n <= 1) return 0;
    uint64_t reject_below = (0 - n) % n; /* == 2^64 mod n */
    for (;;) {
        uint32_t w[4];
        rng_philox4x32(rng->seed, rng->counter++, w);
        uint64_t x = u64_from_block(w);
        if (x >= reject_below) return x % n;
    }
}

/* ---- fills ---- */

void rng_fill_uniform(Rng *rng, float *out, int64_t n, float low, float high) {
    if (n <= 0) return;
    const uint64_t seed = rng->seed, base = rng->counter;
    const float range = high - low;
#pragma omp parallel for schedule(static) if (n > PARALLEL_FILL_MIN)
    for (int64_t i = 0; i < n; i++) {
        uint32_t w[4];
        rng_philox4x32(seed, base + (uint64_t)i, w);
        out[i] = low + range * uniform_from_word(w[0]);
    }
    rng->counter = base + (uint64_t)n;
}

void rng_fill_normal(Rng *rng, float *out, int64_t n, float mean, float std) {
    if (n <= 0) return;
    const uint64_t seed = rng->seed, base = rng->counter;
#pragma omp parallel for schedule(static) if (n > PARALLEL_FILL_MIN)
    for (int64_t i = 0; i < n; i++) {
        uint32_t w[4];
        rng_philox4x32(seed, base + (uint64_t)i, w);
        out[i] = mean + std * normal_from_block(w);
    }
    rng->counter = base + (uint64_t)n;
}

/* ---- tensors ---- */

/* Re-labels the last error (from tensor_empty) with this op's name. */
static void relabel_error(const char *op) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", hg_last_error());
    hg_fail(hg_last_status(), "%s: %s", op, msg);
}

Tensor *tensor_uniform(int ndim, const int64_t *shape, float low, float high, Rng *rng) {
    if (!rng) return hg_fail(HG_ERR_ARG, "uniform: rng is NULL"), NULL;
    if (!isfinite(low) || !isfinite(high) || !(low <= high))
        return hg_fail(HG_ERR_ARG, "uniform: invalid range [%g, %g)", low, high), NULL;
    Tensor *t = tensor_empty(ndim, shape);
    if (!t) return relabel_error("uniform"), NULL;
    rng_fill_uniform(rng, tensor_data(t), tensor_numel(t), low, high);
    return t;
}

Tensor *tensor_normal(int ndim, const int64_t *shape, float mean, float std, Rng *rng) {
    if (!rng) return hg_fail(HG_ERR_ARG, "normal: rng is NULL"), NULL;
    if (!isfinite(mean) || !isfinite(std) || std < 0)
        return hg_fail(HG_ERR_ARG, "normal: invalid mean %g or std %g", mean, std), NULL;
    Tensor *t = tensor_empty(ndim, shape);
    if (!t) return relabel_error("normal"), NULL;
    rng_fill_normal(rng, tensor_data(t), tensor_numel(t), mean, std);
    return t;
}

void rng_permutation(Rng *rng, int64_t *perm, int64_t n) {
    if (!perm || n <= 0) return;
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    /* Fisher-Yates: position i takes a uniformly chosen element of [0, i]. */
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)rng_below(rng, (uint64_t)i + 1);
        int64_t tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
}
