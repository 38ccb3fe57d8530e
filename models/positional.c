#include "models/positional.h"

#include <math.h>
#include <string.h>

/* Spec section 3: with Dh = dim / 2 and f_j = exp(-2j ln(10000) / Dh),
 *   P[2j] = sin(w f_j), P[2j+1] = cos(w f_j)              (column, first half)
 *   P[Dh+2j] = sin(h f_j), P[Dh+2j+1] = cos(h f_j)        (row, second half).
 * The frequencies are rounded to float32 before the product, and the product is
 * taken in float32, as the reference computes it with float32 tensors. */
Tensor *positional_code(int64_t dim, int64_t height, int64_t width) {
    if (dim <= 0 || dim % 4 != 0) {
        hg_fail(HG_ERR_ARG, "positional_code: dim %lld is not a positive multiple of 4",
                (long long)dim);
        return NULL;
    }
    if (height <= 0 || width <= 0) {
        hg_fail(HG_ERR_ARG, "positional_code: invalid map size %lldx%lld", (long long)height,
                (long long)width);
        return NULL;
    }
    Tensor *code = tensor_empty(SHAPE(height * width, dim));
    if (!code) return NULL;
    float *out = tensor_data(code);
    const int64_t half = dim / 2;
    for (int64_t h = 0; h < height; h++)
        for (int64_t w = 0; w < width; w++) {
            float *row = out + (h * width + w) * dim;
            for (int64_t j = 0; j < half / 2; j++) {
                float freq = expf((float)(2 * j) * -(float)(log(10000.0) / (double)half));
                float arg_w = (float)w * freq, arg_h = (float)h * freq;
                row[2 * j] = sinf(arg_w);
                row[2 * j + 1] = cosf(arg_w);
                row[half + 2 * j] = sinf(arg_h);
                row[half + 2 * j + 1] = cosf(arg_h);
            }
        }
    return code;
}

Tensor *positional_code_batch(int64_t dim, int64_t height, int64_t width, int64_t batch) {
    if (batch <= 0) {
        hg_fail(HG_ERR_ARG, "positional_code: invalid batch %lld", (long long)batch);
        return NULL;
    }
    Tensor *one = positional_code(dim, height, width);
    if (!one) return NULL;
    Tensor *all = tensor_empty(SHAPE(batch * height * width, dim));
    if (all) {
        size_t bytes = sizeof(float) * (size_t)(height * width * dim);
        for (int64_t b = 0; b < batch; b++)
            memcpy(tensor_data(all) + b * height * width * dim, tensor_data(one), bytes);
    }
    tensor_free(one);
    return all;
}
