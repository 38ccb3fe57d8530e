#include "models/rotation.h"

#include <math.h>
#include <stdlib.h>

Tensor *random_rotation(int64_t d, Rng *rng) {
    if (d <= 0) {
        hg_fail(HG_ERR_ARG, "random_rotation: invalid size %lld", (long long)d);
        return NULL;
    }
    double *a = malloc(sizeof(double) * (size_t)(d * d)); /* becomes R (upper) + reflectors */
    double *q = malloc(sizeof(double) * (size_t)(d * d));
    double *v = malloc(sizeof(double) * (size_t)d);
    Tensor *out = tensor_empty(SHAPE(d, d));
    if (!a || !q || !v || !out) {
        free(a), free(q), free(v), tensor_free(out);
        if (hg_last_status() == HG_OK) hg_fail(HG_ERR_NOMEM, "random_rotation: out of memory");
        return NULL;
    }
    for (int64_t i = 0; i < d * d; i++) a[i] = rng_normal(rng);
    for (int64_t i = 0; i < d * d; i++) q[i] = (i / d == i % d) ? 1.0 : 0.0;
    int reflections = 0;
    /* Householder: for column k, reflect a[k:, k] onto a multiple of e_k, and
     * accumulate Q = H_0 H_1 ... H_{d-2} by applying each H_k to Q from the right. */
    for (int64_t k = 0; k < d - 1; k++) {
        double norm = 0;
        for (int64_t i = k; i < d; i++) norm += a[i * d + k] * a[i * d + k];
        norm = sqrt(norm);
        if (norm == 0) continue;
        double alpha = a[k * d + k] > 0 ? -norm : norm;
        for (int64_t i = k; i < d; i++) v[i] = a[i * d + k];
        v[k] -= alpha;
        double vv = 0;
        for (int64_t i = k; i < d; i++) vv += v[i] * v[i];
        if (vv == 0) continue;
        reflections++;
        for (int64_t j = k; j < d; j++) { /* A <- (I - 2 v v^T / vv) A */
            double dot = 0;
            for (int64_t i = k; i < d; i++) dot += v[i] * a[i * d + j];
            double f = 2 * dot / vv;
            for (int64_t i = k; i < d; i++) a[i * d + j] -= f * v[i];
        }
        for (int64_t r = 0; r < d; r++) { /* Q <- Q (I - 2 v v^T / vv) */
            double dot = 0;
            for (int64_t i = k; i < d; i++) dot += q[r * d + i] * v[i];
            double f = 2 * dot / vv;
            for (int64_t i = k; i < d; i++) q[r * d + i] -= f * v[i];
        }
    }
    /* Q diag(sign(R_kk)): det picks up one factor -1 per negative diagonal entry. */
    int negatives = 0;
    for (int64_t k = 0; k < d; k++)
        if (a[k * d + k] < 0) {
            negatives++;
            for (int64_t r = 0; r < d; r++) q[r * d + k] = -q[r * d + k];
        }
    bool det_negative = ((reflections + negatives) % 2) == 1;
    float *o = tensor_data(out);
    for (int64_t r = 0; r < d; r++)
        for (int64_t c = 0; c < d; c++)
            o[r * d + c] = (float)((r == 0 && det_negative) ? -q[r * d + c] : q[r * d + c]);
    free(a), free(q), free(v);
    return out;
}

Tensor *random_permutation_matrix(int64_t d, Rng *rng) {
    if (d <= 0) {
        hg_fail(HG_ERR_ARG, "random_permutation_matrix: invalid size %lld", (long long)d);
        return NULL;
    }
    int64_t *perm = malloc(sizeof(int64_t) * (size_t)d);
    Tensor *out = perm ? tensor_zeros(SHAPE(d, d)) : NULL;
    if (!out) {
        free(perm);
        if (hg_last_status() == HG_OK) hg_fail(HG_ERR_NOMEM, "random_permutation_matrix: out of memory");
        return NULL;
    }
    rng_permutation(rng, perm, d);
    for (int64_t i = 0; i < d; i++) tensor_data(out)[i * d + perm[i]] = 1.0f;
    free(perm);
    return out;
}
