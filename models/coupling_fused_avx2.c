/* AVX2/FMA version of the fused coupling forward's per-row pass (clamp,
 * exp, affine coupling; spec section 4, steps 3-4), 8 active channels at a
 * time. tanh and exp come from one exp of our own:
 *
 *   exp(x) = 2^n e^r,  n = round(x / ln 2),  r = x - n ln 2 in [-ln2/2, ln2/2],
 *   e^r by its Taylor series to degree 7 (truncation < r^8/8! < 6e-9, below
 *   float rounding), ln 2 split in a short high part and a low part so that
 *   n ln 2 is subtracted exactly;
 *   tanh(|a|) = 1 - 2 / (exp(2|a|) + 1) with the sign of a, |a| capped at 9
 *   (tanh(9) rounds to 1 in float). Its absolute error is a few 1e-8, which is
 *   what s = alpha tanh needs (s enters as exp(s) and as a sum). */
#include <immintrin.h>

#include "models/coupling_internal.h"

/* exp(x) for x in [-87, 87] (the caller's arguments are far inside). */
static inline __m256 exp_ps(__m256 x) {
    const __m256 ln2_hi = _mm256_set1_ps(0.693145751953125f); /* 8 significant bits */
    const __m256 ln2_lo = _mm256_set1_ps(1.428606765330187e-06f);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.4426950408889634f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, ln2_hi, x);
    r = _mm256_fnmadd_ps(n, ln2_lo, r);
    /* 1 + r + r^2/2! + ... + r^7/7!, Horner from the top. */
    __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i scale =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(scale));
}

static inline __m256 tanh_ps(__m256 a) {
    const __m256 sign_bit = _mm256_set1_ps(-0.0f);
    __m256 sign = _mm256_and_ps(a, sign_bit);
    __m256 mag = _mm256_min_ps(_mm256_andnot_ps(sign_bit, a), _mm256_set1_ps(9.0f));
    __m256 e = exp_ps(_mm256_add_ps(mag, mag));
    __m256 t =
        _mm256_sub_ps(_mm256_set1_ps(1.0f),
                      _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, _mm256_set1_ps(1.0f))));
    return _mm256_or_ps(t, sign);
}

int64_t coupling_active_row_avx2(int64_t active, const float *a_row, const float *b2,
                                 const float *x2, float alpha, bool new_clamp, float *th_out,
                                 float *exp_s_out, float *y2_out, float *s_sum) {
    const __m256 tenth = _mm256_set1_ps(0.1f), va = _mm256_set1_ps(alpha);
    const __m256 pre = _mm256_set1_ps(new_clamp ? 1.0f / alpha : 1.0f);
    __m256 acc = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 8 <= active; j += 8) {
        __m256 a_s = _mm256_mul_ps(
            _mm256_add_ps(_mm256_loadu_ps(a_row + j), _mm256_loadu_ps(b2 + j)), tenth);
        __m256 t = _mm256_mul_ps(
            _mm256_add_ps(_mm256_loadu_ps(a_row + active + j), _mm256_loadu_ps(b2 + active + j)),
            tenth);
        __m256 th = tanh_ps(new_clamp ? _mm256_mul_ps(a_s, pre) : a_s);
        __m256 s = _mm256_mul_ps(th, va);
        __m256 e = exp_ps(s);
        _mm256_storeu_ps(th_out + j, th);
        _mm256_storeu_ps(exp_s_out + j, e);
        _mm256_storeu_ps(y2_out + j, _mm256_fmadd_ps(_mm256_loadu_ps(x2 + j), e, t));
        acc = _mm256_add_ps(acc, s);
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, acc);
    float sum = 0.0f;
    for (int k = 0; k < 8; k++) sum += lanes[k];
    *s_sum = sum;
    return j;
}
