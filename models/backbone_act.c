/* The fused element-wise epilogue of the backbones' convolutions:
 * bias, residual, activation and (for squeeze-excite and pooling) the plane
 * sums, in one pass over each output plane. */
#include <math.h>
#include <stdlib.h>

#include "models/backbone_internal.h"
#include "tensor/cpu.h"

/* One loop per activation so that each vectorizes without a branch inside. */
#define SPAN_LOOP(EXPR)                                                                            \
    do {                                                                                           \
        if (residual) {                                                                            \
            _Pragma("omp simd reduction(+ : sum)") for (int64_t i = 0; i < n; i++) {               \
                float v = x[i] + bias + residual[i];                                               \
                v = (EXPR);                                                                        \
                x[i] = v;                                                                          \
                sum += v;                                                                          \
            }                                                                                      \
        } else {                                                                                   \
            _Pragma("omp simd reduction(+ : sum)") for (int64_t i = 0; i < n; i++) {               \
                float v = x[i] + bias;                                                             \
                v = (EXPR);                                                                        \
                x[i] = v;                                                                          \
                sum += v;                                                                          \
            }                                                                                      \
        }                                                                                          \
    } while (0)

double act_span(float *x, int64_t n, float bias, const float *residual, Activation act,
                bool want_sum) {
    if (act == ACT_SILU && hg_cpu_has_avx2_fma())
        return act_span_silu_avx2(x, n, bias, residual, want_sum);
    float sum = 0;
    switch (act) {
    case ACT_RELU:
        SPAN_LOOP(v > 0.0f ? v : 0.0f);
        break;
    case ACT_RELU6:
        SPAN_LOOP(v > 0.0f ? (v < 6.0f ? v : 6.0f) : 0.0f);
        break;
    case ACT_SILU:
        SPAN_LOOP(v / (1.0f + expf(-v)));
        break;
    case ACT_SIGMOID:
        SPAN_LOOP(1.0f / (1.0f + expf(-v)));
        break;
    case ACT_TANH:
        SPAN_LOOP(tanhf(v));
        break;
    default:
        SPAN_LOOP(v);
        break;
    }
    return want_sum ? (double)sum : 0.0;
}

void act_planes(Tensor *t, const float *bias, const Tensor *residual, Activation act,
                float *plane_means) {
    int64_t n = t->shape[0], c = t->shape[1], hw = t->shape[2] * t->shape[3];
    int64_t planes = n * c;
    float *x = tensor_data(t);
    const float *r = residual ? tensor_data(residual) : NULL;
    /* Nothing to do for a bias-free identity without residual or means. */
    if (!bias && !r && !plane_means && act == ACT_IDENTITY) return;
#pragma omp parallel for schedule(static) if (planes * hw > (1 << 15))
    for (int64_t p = 0; p < planes; p++) {
        double s = act_span(x + p * hw, hw, bias ? bias[p % c] : 0.0f, r ? r + p * hw : NULL, act,
                            plane_means != NULL);
        if (plane_means) plane_means[p] = (float)(s / (double)hw);
    }
}
