#include "tensor/half.h"

#include <string.h>

/* 1 sign, 5 exponent (bias 15), 10 fraction bits. Normals re-bias the exponent
 * to 127; subnormals are fraction * 2^-24; inf/nan keep their fraction in the
 * top fraction bits of the float. */
float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F, frac = h & 0x3FF;
    if (exp == 0) {
        float v = (float)frac * 0x1p-24f;
        return sign ? -v : v;
    }
    uint32_t bits = exp == 31 ? sign | 0x7F800000u | (frac << 13)
                              : sign | ((exp + 127 - 15) << 23) | (frac << 13);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t float_to_half(float f) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000);
    uint32_t exp = (bits >> 23) & 0xFF, frac = bits & 0x7FFFFF;
    if (exp == 0xFF) return (uint16_t)(sign | 0x7C00 | (frac ? 0x200 | (frac >> 13) : 0));
    int32_t e = (int32_t)exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7C00);
    if (e <= 0) {
        /* Subnormal half (or zero): value = mantissa * 2^-24 with the implicit
         * bit restored, rounded to nearest even at the shifted position. */
        if (e < -10) return sign;
        uint32_t mant = frac | 0x800000u;
        int shift = 14 - e; /* 24 - 10 + (1 - e) - 1 */
        uint32_t half_mant = mant >> shift;
        uint32_t rest = mant & ((1u << shift) - 1), midpoint = 1u << (shift - 1);
        if (rest > midpoint || (rest == midpoint && (half_mant & 1))) half_mant++;
        return (uint16_t)(sign | half_mant);
    }
    uint32_t half = (uint32_t)e << 10 | (frac >> 13);
    uint32_t rest = frac & 0x1FFF;
    /* carrying into the exponent is right: it rounds up to the next binade or inf */
    if (rest > 0x1000 || (rest == 0x1000 && (half & 1))) half++;
    return (uint16_t)(sign | half);
}

void half_to_float_array(const uint16_t *in, float *out, int64_t n) {
#pragma omp parallel for if (n > 65536)
    for (int64_t i = 0; i < n; i++) out[i] = half_to_float(in[i]);
}

void float_to_half_array(const float *in, uint16_t *out, int64_t n) {
#pragma omp parallel for if (n > 65536)
    for (int64_t i = 0; i < n; i++) out[i] = float_to_half(in[i]);
}
