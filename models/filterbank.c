#include "models/filterbank.h"

#include <math.h>

#include "nn/conv2d.h"
#include "nn/padding.h"
#include "nn/pool.h"
#include "tensor/ops.h"

enum { RADIUS = 4, TAPS = 2 * RADIUS + 1, FILTERS = 6 };

static double gaussian(double x, double y, double sigma) {
    return exp(-(x * x + y * y) / (2 * sigma * sigma)) / (2 * M_PI * sigma * sigma);
}

/* The 6 filters of one channel, as rows of a grouped convolution weight
 * (18, 1, 9, 9): filter f of input channel c is output channel 6c + f. */
static Tensor *bank_weights(void) {
    Tensor *w = tensor_zeros(SHAPE(3 * FILTERS, 1, TAPS, TAPS));
    if (!w) return NULL;
    const double s = 1.0;
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < TAPS; i++)
            for (int j = 0; j < TAPS; j++) {
                double y = i - RADIUS, x = j - RADIUS, g = gaussian(x, y, s);
                double values[FILTERS] = {
                    g,                                             /* smoothing */
                    -x / (s * s) * g,                              /* d/dx */
                    -y / (s * s) * g,                              /* d/dy */
                    x * y / (s * s * s * s) * g,                   /* d2/dxdy */
                    ((x * x + y * y) / (s * s) - 2) / (s * s) * g, /* Laplacian */
                    gaussian(x, y, 2 * s) - g,                     /* DoG */
                };
                for (int f = 0; f < FILTERS; f++)
                    tensor_data(w)[(((c * FILTERS + f) * TAPS) + i) * TAPS + j] = (float)values[f];
            }
    return w;
}

/* 21 channels of one scale: 3 pooled smoothed colours, 18 pooled RMS responses. */
static Tensor *scale_features(const Tensor *x, const Tensor *weights, int cell) {
    Conv2dSpec spec = conv2d_spec(1, RADIUS, 1, 3);
    Tensor *r = conv2d_forward(x, weights, NULL, &spec);
    Tensor *r2 = r ? tensor_square(r) : NULL;
    /* pad to whole cells (ceil), then average each cell */
    Pool2dSpec pool = pool2d_spec(cell, cell, 0);
    pool.ceil_mode = true;
    pool.exclude_pad = true;
    Tensor *mean = r ? avgpool2d_forward(r, &pool) : NULL;
    Tensor *energy = r2 ? avgpool2d_forward(r2, &pool) : NULL;
    Tensor *rms = energy ? tensor_sqrt(energy) : NULL;
    Tensor *out = NULL;
    if (mean && rms) {
        const int64_t n = mean->shape[0], h = mean->shape[2], w = mean->shape[3];
        out = tensor_empty(SHAPE(n, 21, h, w));
        for (int64_t b = 0; out && b < n; b++)
            for (int c = 0; c < 3; c++) {
                Tensor *src = tensor_narrow(mean, 1, c * FILTERS, 1);
                Tensor *one = tensor_narrow(src, 0, b, 1);
                Tensor *dst_b = tensor_narrow(out, 0, b, 1);
                Tensor *dst = tensor_narrow(dst_b, 1, c, 1);
                tensor_copy_(dst, one);
                tensor_free(src), tensor_free(one), tensor_free(dst_b), tensor_free(dst);
            }
        Tensor *dst = out ? tensor_narrow(out, 1, 3, 18) : NULL;
        if (dst) tensor_copy_(dst, rms);
        tensor_free(dst);
    }
    tensor_free(r), tensor_free(r2), tensor_free(mean), tensor_free(energy), tensor_free(rms);
    return out;
}

Tensor *filterbank_forward(const Tensor *x) {
    char s[64];
    if (x->ndim != 4 || x->shape[1] != 3 || x->shape[2] < FILTERBANK_STRIDE ||
        x->shape[3] < FILTERBANK_STRIDE) {
        hg_fail(HG_ERR_SHAPE, "filterbank: input %s, expected (N, 3, H, W) with H, W >= %d",
                tensor_shape_str(x, s, sizeof s), FILTERBANK_STRIDE);
        return NULL;
    }
    Tensor *w = bank_weights();
    Tensor *fine = w ? scale_features(x, w, FILTERBANK_STRIDE) : NULL;
    /* scale 2: average 2x2 pixels (padding odd sizes), then cells of 4 */
    Pool2dSpec half = pool2d_spec(2, 2, 0);
    half.ceil_mode = true;
    half.exclude_pad = true;
    Tensor *x2 = fine ? avgpool2d_forward(x, &half) : NULL;
    Tensor *coarse = x2 ? scale_features(x2, w, FILTERBANK_STRIDE / 2) : NULL;
    Tensor *out = NULL;
    if (fine && coarse && fine->shape[2] == coarse->shape[2] && fine->shape[3] == coarse->shape[3]) {
        const Tensor *parts[2] = {fine, coarse};
        out = tensor_concat(2, parts, 1);
    } else if (fine && coarse) {
        hg_fail(HG_ERR_SHAPE, "filterbank: scales disagree for input %s", tensor_shape_str(x, s, sizeof s));
    }
    tensor_free(w), tensor_free(fine), tensor_free(x2), tensor_free(coarse);
    return out;
}
