/* SiLU epilogue with AVX2/FMA: x * sigmoid(x) = x / (1 + exp(-x)), with exp
 * from a degree-6 polynomial on the reduced argument (Cephes' expf
 * coefficients, about 2 ulp) and the reciprocal from rcp + one Newton step, so
 * that the activation costs a few instructions per 8 values instead of a libm
 * call per value. */
#include <immintrin.h>

#include "models/backbone_internal.h"

/* exp(x) for x clamped to [-87, 88] (2^n stays a normal float). */
static inline __m256 exp_ps(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    /* r = x - n ln 2, with ln 2 split in two for accuracy. */
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* v / (1 + exp(-v)) with the reciprocal from rcp_ps and one Newton step
 * (about 23 bits, cheaper than a division). */
static inline __m256 silu_ps(__m256 v) {
    __m256 d = _mm256_add_ps(_mm256_set1_ps(1.0f), exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), v)));
    __m256 r = _mm256_rcp_ps(d);
    r = _mm256_mul_ps(r, _mm256_fnmadd_ps(d, r, _mm256_set1_ps(2.0f)));
    return _mm256_mul_ps(v, r);
}

double act_span_silu_avx2(float *x, int64_t n, float bias, const float *residual, bool want_sum) {
    __m256 b = _mm256_set1_ps(bias), acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_add_ps(_mm256_loadu_ps(x + i), b);
        if (residual) v = _mm256_add_ps(v, _mm256_loadu_ps(residual + i));
        v = silu_ps(v);
        _mm256_storeu_ps(x + i, v);
        acc = _mm256_add_ps(acc, v);
    }
    if (i < n) {
        /* The tail through a zero-padded buffer, with the padding kept out of the sum. */
        float buf[8] = {0};
        int64_t rest = n - i;
        for (int64_t j = 0; j < rest; j++)
            buf[j] = x[i + j] + bias + (residual ? residual[i + j] : 0);
        _mm256_storeu_ps(buf, silu_ps(_mm256_loadu_ps(buf)));
        for (int64_t j = 0; j < rest; j++) x[i + j] = buf[j];
        for (int64_t j = rest; j < 8; j++) buf[j] = 0;
        acc = _mm256_add_ps(acc, _mm256_loadu_ps(buf));
    }
    if (!want_sum) return 0.0;
    float lanes[8];
    _mm256_storeu_ps(lanes, acc);
    double s = 0;
    for (int j = 0; j < 8; j++) s += lanes[j];
    return s;
}
