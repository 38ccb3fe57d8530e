#include "models/anomaly_map.h"

#include <math.h>

#include "nn/blur.h"
#include "nn/resize.h"
#include "tensor/ops.h"

static hg_status check_maps(int levels, const Tensor *const *maps) {
    if (levels < 1 || levels > ANOMALY_MAX_LEVELS)
        return hg_fail(HG_ERR_ARG, "anomaly maps: %d levels outside [1, %d]", levels, ANOMALY_MAX_LEVELS);
    for (int l = 0; l < levels; l++) {
        char s[64];
        if (!maps[l] || maps[l]->ndim != 3 || maps[l]->shape[0] != maps[0]->shape[0] ||
            tensor_numel(maps[l]) == 0)
            return hg_fail(HG_ERR_SHAPE, "anomaly maps: level %d map %s, expected (B, H, W) with B = %lld",
                           l, maps[l] ? tensor_shape_str(maps[l], s, sizeof s) : "missing",
                           (long long)maps[0]->shape[0]);
    }
    return HG_OK;
}

/* S = sum_l upsample(exp(E_l - m_l)), (B, msk, msk). */
static Tensor *summed_probabilities(int levels, const Tensor *const *maps, int64_t mask_size,
                                    const double *level_max) {
    Tensor *sum = NULL;
    for (int l = 0; l < levels; l++) {
        Tensor *shifted = tensor_add_scalar(maps[l], (float)-level_max[l]);
        Tensor *prob = shifted ? tensor_exp(shifted) : NULL;
        const Tensor *m = maps[l];
        Tensor *nchw = prob ? tensor_reshape(prob, SHAPE(m->shape[0], 1, m->shape[1], m->shape[2])) : NULL;
        Tensor *up = nchw ? resize_bilinear_forward(nchw, mask_size, mask_size, true) : NULL;
        tensor_free(shifted), tensor_free(prob), tensor_free(nchw);
        if (!up) {
            tensor_free(sum);
            return NULL;
        }
        if (!sum) {
            sum = up;
            continue;
        }
        hg_status s = tensor_add_(sum, up);
        tensor_free(up);
        if (s != HG_OK) {
            tensor_free(sum);
            return NULL;
        }
    }
    Tensor *out = tensor_reshape(sum, SHAPE(maps[0]->shape[0], mask_size, mask_size));
    tensor_free(sum);
    return out;
}

static double max_of(const Tensor *t) {
    Tensor *m = tensor_max(t, 0, NULL, false);
    double v = m ? tensor_data(m)[0] : NAN;
    tensor_free(m);
    return v;
}

hg_status anomaly_normalization(int levels, const Tensor *const *maps, int64_t mask_size,
                                MapNormalization *out) {
    hg_status s = check_maps(levels, maps);
    if (s != HG_OK) return s;
    out->levels = levels;
    for (int l = 0; l < levels; l++) out->level_max[l] = max_of(maps[l]);
    Tensor *sum = summed_probabilities(levels, maps, mask_size, out->level_max);
    if (!sum) return hg_last_status();
    out->summed_max = max_of(sum);
    tensor_free(sum);
    return HG_OK;
}

Tensor *anomaly_maps(int levels, const Tensor *const *maps, int64_t mask_size, double sigma,
                     const MapNormalization *norm) {
    if (check_maps(levels, maps) != HG_OK) return NULL;
    if (norm->levels != levels) {
        hg_fail(HG_ERR_ARG, "anomaly maps: normalization has %d levels, maps have %d", norm->levels,
                levels);
        return NULL;
    }
    Tensor *sum = summed_probabilities(levels, maps, mask_size, norm->level_max);
    if (!sum) return NULL;
    /* A = s - S, i.e. -(S - s). */
    Tensor *shifted = tensor_add_scalar(sum, (float)-norm->summed_max);
    Tensor *anomaly = shifted ? tensor_neg(shifted) : NULL;
    tensor_free(sum), tensor_free(shifted);
    if (!anomaly || sigma <= 0) return anomaly;
    Tensor *blurred = gaussian_blur2d_forward(anomaly, sigma, 4.0);
    tensor_free(anomaly);
    return blurred;
}

void anomaly_image_scores(const Tensor *maps, float *scores) {
    int dims[2] = {1, 2};
    Tensor *m = tensor_max(maps, 2, dims, false);
    for (int64_t b = 0; m && b < maps->shape[0]; b++) scores[b] = tensor_data(m)[b];
    tensor_free(m);
}
