#include "nn/dropout.h"

#include "autograd/ops.h"

/* The scaled keep-mask: 1 / (1 - p) with probability 1 - p, else 0. Drawn
 * in element order, so a mask depends only on the seed and the shape. */
static Tensor *keep_mask(const Tensor *like, double p, Rng *rng) {
    Tensor *mask = tensor_empty(like->ndim, like->shape);
    if (!mask) return NULL;
    float *m = tensor_data(mask);
    const float keep = p < 1.0 ? (float)(1.0 / (1.0 - p)) : 0.0f;
    const int64_t n = tensor_numel(mask);
    for (int64_t i = 0; i < n; i++) m[i] = rng_uniform64(rng) < p ? 0.0f : keep;
    return mask;
}

Var *dropout_forward(Tape *tape, Var *x, double p, bool training, Rng *rng) {
    if (!x) return NULL;
    if (!(p >= 0.0 && p <= 1.0)) {
        hg_fail(HG_ERR_ARG, "dropout: probability %g is outside [0, 1]", p);
        return NULL;
    }
    if (!training || p == 0.0) return x;
    if (!rng) {
        hg_fail(HG_ERR_ARG, "dropout: training mode needs a random generator");
        return NULL;
    }
    Tensor *mask = keep_mask(x->value, p, rng);
    if (!mask) return NULL;
    return ag_mul(tape, x, ag_constant(tape, mask));
}
