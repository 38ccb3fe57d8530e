/* IEEE binary16 ("half") <-> float32 conversion, for float16 storage of
 * features and weights. */
#ifndef HG_TENSOR_HALF_H
#define HG_TENSOR_HALF_H

#include <stdint.h>

/* Exact: every half value is a float. */
float half_to_float(uint16_t h);
/* Round to nearest even; overflow gives inf, NaN stays NaN. */
uint16_t float_to_half(float f);

void half_to_float_array(const uint16_t *in, float *out, int64_t n);
void float_to_half_array(const float *in, uint16_t *out, int64_t n);

#endif
