/* BatchNorm2d forward/backward pair and its tape wrapper (see batchnorm.h). */
#include "nn/batchnorm.h"

#include <math.h>
#include <stdlib.h>

#include "nn/nchw_check.h"

#define BN_PARALLEL_MIN (1 << 15)

/* Element c of a 1-d tensor (any stride), or `fallback` when t is NULL. */
static float vec_get(const Tensor *t, int64_t c, float fallback) {
    return t ? tensor_data(t)[c * t->stride[0]] : fallback;
}

static hg_status check_vec(const char *op, const char *what, const Tensor *t, int64_t c) {
    char s[96];
    if (t && (t->ndim != 1 || t->shape[0] != c))
        return hg_fail(HG_ERR_SHAPE, "%s: %s %s must be [%lld] (one per channel)", op, what,
                       tensor_shape_str(t, s, sizeof s), (long long)c);
    return HG_OK;
}

/* Batch mean and biased variance of every channel of contiguous x, in double. */
static void channel_stats(const float *x, int64_t n, int64_t c, int64_t hw, double *mean,
                          double *var) {
#pragma omp parallel for schedule(static) if (n * c * hw > BN_PARALLEL_MIN)
    for (int64_t ch = 0; ch < c; ch++) {
        double s = 0;
        for (int64_t i = 0; i < n; i++) {
            const float *p = x + (i * c + ch) * hw;
            for (int64_t k = 0; k < hw; k++) s += p[k];
        }
        double m = s / (double)(n * hw), q = 0;
        for (int64_t i = 0; i < n; i++) {
            const float *p = x + (i * c + ch) * hw;
            for (int64_t k = 0; k < hw; k++) q += (p[k] - m) * (p[k] - m);
        }
        mean[ch] = m;
        var[ch] = q / (double)(n * hw);
    }
}

Tensor *batchnorm2d_forward(const Tensor *x, const Tensor *weight, const Tensor *bias,
                            Tensor *running_mean, Tensor *running_var, bool training,
                            float momentum, float eps, Tensor **mean_out, Tensor **invstd_out) {
    const char *op = "batchnorm2d";
    if (mean_out) *mean_out = NULL;
    if (invstd_out) *invstd_out = NULL;
    if (nchw_check_input(op, x) != HG_OK) return NULL;
    int64_t n = x->shape[0], c = x->shape[1], hw = x->shape[2] * x->shape[3], m = n * hw;
    if (check_vec(op, "weight", weight, c) || check_vec(op, "bias", bias, c) ||
        check_vec(op, "running_mean", running_mean, c) ||
        check_vec(op, "running_var", running_var, c))
        return NULL;
    if (!training && (!running_mean || !running_var)) {
        hg_fail(HG_ERR_ARG, "%s: inference needs running_mean and running_var", op);
        return NULL;
    }
    if (training && m <= 1) {
        char s[96];
        hg_fail(HG_ERR_SHAPE, "%s: training needs more than 1 value per channel, input is %s", op,
                tensor_shape_str(x, s, sizeof s));
        return NULL;
    }
    Tensor *xc = tensor_contiguous(x);
    Tensor *out = xc ? tensor_empty(4, x->shape) : NULL;
    Tensor *mean_t = tensor_empty(SHAPE(c)), *invstd_t = tensor_empty(SHAPE(c));
    double *stats = malloc(sizeof(double) * (size_t)(2 * c + 1));
    if (!out || !mean_t || !invstd_t || !stats) {
        if (!stats) hg_fail(HG_ERR_NOMEM, "%s: out of memory", op);
        tensor_free(xc);
        tensor_free(out);
        tensor_free(mean_t);
        tensor_free(invstd_t);
        free(stats);
        return NULL;
    }
    double *mean = stats, *var = stats + c;
    const float *px = tensor_data(xc);
    if (training) {
        channel_stats(px, n, c, hw, mean, var);
        for (int64_t ch = 0; ch < c; ch++) {
            if (running_mean) {
                float *rm = tensor_data(running_mean) + ch * running_mean->stride[0];
                *rm = (float)((1.0 - momentum) * *rm + momentum * mean[ch]);
            }
            if (running_var) {
                float *rv = tensor_data(running_var) + ch * running_var->stride[0];
                double unbiased = var[ch] * (double)m / (double)(m - 1);
                *rv = (float)((1.0 - momentum) * *rv + momentum * unbiased);
            }
        }
    } else {
        for (int64_t ch = 0; ch < c; ch++) {
            mean[ch] = vec_get(running_mean, ch, 0);
            var[ch] = vec_get(running_var, ch, 1);
        }
    }
    float *pm = tensor_data(mean_t), *pi = tensor_data(invstd_t), *po = tensor_data(out);
    for (int64_t ch = 0; ch < c; ch++) {
        pm[ch] = (float)mean[ch];
        pi[ch] = (float)(1.0 / sqrt(var[ch] + eps));
    }
    /* y = x * scale + shift with scale = invstd * weight, shift = bias - mean * scale,
     * in double from the unrounded statistics (so y is a smooth function of x up to
     * its final rounding, which keeps finite-difference checks of training mode clean). */
#pragma omp parallel for schedule(static) if (n * c * hw > BN_PARALLEL_MIN)
    for (int64_t q = 0; q < n * c; q++) {
        int64_t ch = q % c;
        double scale = vec_get(weight, ch, 1) / sqrt(var[ch] + eps);
        double shift = vec_get(bias, ch, 0) - mean[ch] * scale;
        const float *src = px + q * hw;
        float *dst = po + q * hw;
        for (int64_t k = 0; k < hw; k++) dst[k] = (float)(src[k] * scale + shift);
    }
    free(stats);
    tensor_free(xc);
    if (mean_out)
        *mean_out = mean_t;
    else
        tensor_free(mean_t);
    if (invstd_out)
        *invstd_out = invstd_t;
    else
        tensor_free(invstd_t);
    return out;
}

hg_status batchnorm2d_backward(const Tensor *dout, const Tensor *x, const Tensor *weight,
                               const Tensor *mean, const Tensor *invstd, bool training, Tensor **dx,
                               Tensor **dweight, Tensor **dbias) {
    const char *op = "batchnorm2d_backward";
    char s1[96], s2[96];
    if (dx) *dx = NULL;
    if (dweight) *dweight = NULL;
    if (dbias) *dbias = NULL;
    hg_status st = nchw_check_input(op, x);
    if (st != HG_OK) return st;
    int64_t n = x->shape[0], c = x->shape[1], hw = x->shape[2] * x->shape[3];
    if (!dout || !tensor_same_shape(dout, x))
        return hg_fail(HG_ERR_SHAPE, "%s: output gradient %s does not match input %s", op,
                       dout ? tensor_shape_str(dout, s1, sizeof s1) : "NULL",
                       tensor_shape_str(x, s2, sizeof s2));
    if (!mean || !invstd) return hg_fail(HG_ERR_ARG, "%s: mean and invstd are required", op);
    if ((st = check_vec(op, "weight", weight, c)) || (st = check_vec(op, "mean", mean, c)) ||
        (st = check_vec(op, "invstd", invstd, c)))
        return st;
    Tensor *xc = tensor_contiguous(x), *dc = tensor_contiguous(dout);
    Tensor *gx = dx ? tensor_empty(4, x->shape) : NULL;
    Tensor *gw = dweight ? tensor_empty(SHAPE(c)) : NULL;
    Tensor *gb = dbias ? tensor_empty(SHAPE(c)) : NULL;
    if (!xc || !dc || (dx && !gx) || (dweight && !gw) || (dbias && !gb)) {
        st = hg_last_status();
        tensor_free(gx);
        tensor_free(gw);
        tensor_free(gb);
    } else {
        const float *px = tensor_data(xc), *pd = tensor_data(dc);
        float *pgx = gx ? tensor_data(gx) : NULL;
        double inv_m = 1.0 / (double)(n * hw);
#pragma omp parallel for schedule(static) if (n * c * hw > BN_PARALLEL_MIN)
        for (int64_t ch = 0; ch < c; ch++) {
            double mu = vec_get(mean, ch, 0), is = vec_get(invstd, ch, 1);
            double sum_dy = 0, sum_dy_xhat = 0;
            for (int64_t i = 0; i < n; i++) {
                const float *xp = px + (i * c + ch) * hw, *dp = pd + (i * c + ch) * hw;
                for (int64_t k = 0; k < hw; k++) {
                    sum_dy += dp[k];
                    sum_dy_xhat += dp[k] * ((xp[k] - mu) * is);
                }
            }
            if (gw) tensor_data(gw)[ch] = (float)sum_dy_xhat;
            if (gb) tensor_data(gb)[ch] = (float)sum_dy;
            if (!pgx) continue;
            double g = vec_get(weight, ch, 1) * is;
            /* Training: the batch mean and variance move with x, which removes the
             * mean of dout and its projection on xhat (Ioffe & Szegedy 2015, sec. 3). */
            double a = training ? sum_dy * inv_m : 0, b = training ? sum_dy_xhat * inv_m : 0;
            for (int64_t i = 0; i < n; i++) {
                const float *xp = px + (i * c + ch) * hw, *dp = pd + (i * c + ch) * hw;
                float *gp = pgx + (i * c + ch) * hw;
                for (int64_t k = 0; k < hw; k++)
                    gp[k] = (float)(g * (dp[k] - a - (xp[k] - mu) * is * b));
            }
        }
        if (dx) *dx = gx;
        if (dweight) *dweight = gw;
        if (dbias) *dbias = gb;
    }
    tensor_free(xc);
    tensor_free(dc);
    return st;
}

/* inputs: x, then weight and bias when present (ints[0], ints[1]); ints[2]: training.
 * saved: x, weight (or NULL), mean, invstd. */
static hg_status batchnorm2d_backward_fn(Var *out) {
    bool has_w = out->ints[0], has_b = out->ints[1], training = out->ints[2];
    Var *x = out->inputs[0];
    Var *w = has_w ? out->inputs[1] : NULL;
    Var *b = has_b ? out->inputs[has_w ? 2 : 1] : NULL;
    Tensor *dx = NULL, *dw = NULL, *db = NULL;
    hg_status st = batchnorm2d_backward(out->grad, out->saved[0], out->saved[1], out->saved[2],
                                        out->saved[3], training, x->requires_grad ? &dx : NULL,
                                        w && w->requires_grad ? &dw : NULL,
                                        b && b->requires_grad ? &db : NULL);
    if (st != HG_OK) return st;
    hg_status sx = dx ? var_accumulate_grad(x, dx) : HG_OK;
    hg_status sw = dw ? var_accumulate_grad(w, dw) : HG_OK;
    hg_status sb = db ? var_accumulate_grad(b, db) : HG_OK;
    return sx != HG_OK ? sx : sw != HG_OK ? sw : sb;
}

Var *ag_batchnorm2d(Tape *tape, Var *x, Var *weight, Var *bias, Tensor *running_mean,
                    Tensor *running_var, bool training, float momentum, float eps) {
    if (!x) return NULL;
    Tensor *mean = NULL, *invstd = NULL;
    Tensor *y =
        batchnorm2d_forward(x->value, weight ? weight->value : NULL, bias ? bias->value : NULL,
                            running_mean, running_var, training, momentum, eps, &mean, &invstd);
    if (!y) return NULL;
    Var *inputs[3] = {x, NULL, NULL};
    int count = 1;
    if (weight) inputs[count++] = weight;
    if (bias) inputs[count++] = bias;
    Var *out = tape_record(tape, "batchnorm2d", y, count, inputs, batchnorm2d_backward_fn);
    if (!out || !out->requires_grad) { /* no-grad: keep nothing */
        tensor_free(mean);
        tensor_free(invstd);
        return out;
    }
    out->ints[0] = weight != NULL;
    out->ints[1] = bias != NULL;
    out->ints[2] = training;
    out->saved[0] = tensor_ref(x->value);
    out->saved[1] = weight ? tensor_ref(weight->value) : NULL;
    out->saved[2] = mean;
    out->saved[3] = invstd;
    if (!out->saved[0] || (weight && !out->saved[1])) return NULL;
    return out;
}
