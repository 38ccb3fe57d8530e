/* The forward direction of the coupling block (spec section 4) as a single
 * tape op with a hand-written backward, the fast path of training. The
 * generic-op version in models/coupling.c is the readable reference; both
 * compute the same function (tests/test_coupling_fused.c).
 *
 * Notation, for one row (all rows alike), P = D - D/2 passive channels,
 * A = D/2 active ones, H hidden units, alpha the clamp; (4.k) is step k of
 * spec section 4:
 *
 *   h  = relu(x1 W1a^T + c W1b^T + b1)      W1 = [W1a | W1b] (H, P + Dc)  (4.2)
 *   a  = 0.1 (h W2^T + b2)                   W2 (2A, H)                    (4.3)
 *   th = tanh(a_s)   [tanh(a_s / alpha) with new_clamp],  a_s = a[:A]     (4.3)
 *   s  = alpha th,   t = a[A:]
 *   y2 = x2 exp(s) + t,   u = [x1, y2]                                    (4.4, 4.5)
 *   v  = u g + delta,     g = 0.1 softplus_{1/2}(gamma)                   (4.6)
 *   y  = v W^T                                                            (4.7)
 *   logdet term = sum_j s_j + sum_j log g_j                               (4.4, 4.6)
 *
 * The first Linear reads [x1, c] without building it: W1's column blocks are
 * multiplied by x1 (a strided view of x) and by c in two GEMMs into one output.
 * When c has few distinct rows (the positional code repeats once per image of
 * the batch), c = C[idx] with C (U, Dc) its distinct rows (models/cond_rows.h),
 * and the condition's share is computed once per distinct row and gathered:
 *
 *   h  = relu(x1 W1a^T + Q[idx]),   Q = C W1b^T + b1 (U, H)
 *   dW1b = dQ^T C,  dQ_u = sum_{i: idx_i = u} dq_i
 *
 * which, when U is much smaller than N, saves the products of the first
 * Linear's condition columns (Dc = 256 of its P + Dc = 356 inputs in HGAD):
 * about 36% of a training step's multiply-adds (forward and dW1).
 *
 * A Var holds one value, so the op is two tape nodes: y (this op, with the
 * backward) and the log-det term recorded right after it with y as its only
 * input. The term's backward runs first (it was recorded later) and only hands
 * its gradient to y's node; y's backward then uses both gradients. Nothing
 * else can consume y between the two recordings, so y's gradient is complete
 * when the term's backward runs. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>

#include "autograd/autograd.h"
#include "models/coupling_internal.h"
#include "tensor/cpu.h"
#include "tensor/gemm.h"

/* Element counts above which the element-wise passes use OpenMP threads. */
#define FUSED_PARALLEL_MIN 32768

/* What the backward needs, owned by y's node (freed with it or right after
 * the backward has run). */
typedef struct FusedContext {
    const CouplingBlock *block;
    Var *x, *cond;        /* inputs (cond NULL when unconditional) */
    Tensor *x_c, *cond_c; /* contiguous x and c (references when already so) */
    CondRows *rows;       /* c's distinct rows (a reference), or NULL: dense path */
    Tensor *hidden;       /* h (N, H); h > 0 is also ReLU's mask */
    Tensor *th, *exp_s;   /* tanh values and exp(s) (N, A) */
    Tensor *u;            /* [x1, y2] (N, D) */
    Tensor *grad_logdet;  /* dL/d(logdet term) (N) from the term's node, or NULL */
} FusedContext;

static void context_release_buffers(FusedContext *ctx) {
    Tensor **owned[] = {&ctx->x_c,   &ctx->cond_c, &ctx->hidden,     &ctx->th,
                        &ctx->exp_s, &ctx->u,      &ctx->grad_logdet};
    for (size_t i = 0; i < sizeof owned / sizeof *owned; i++) {
        tensor_free(*owned[i]);
        *owned[i] = NULL;
    }
    cond_rows_free(ctx->rows);
    ctx->rows = NULL;
}

static void context_free(void *p) {
    if (!p) return;
    context_release_buffers(p);
    free(p);
}

/* g_j = 0.1 softplus_{beta=1/2}(gamma_j) with PyTorch's threshold (linear once
 * beta gamma > 20), and dg_j/dgamma_j = 0.1 sigmoid(gamma_j / 2). Same float
 * operations as tensor_softplus followed by the 0.1 scale. */
static float global_scale_value(float gamma) {
    const float beta = 0.5f;
    float bx = beta * gamma;
    float sp = bx > 20.0f ? gamma : log1pf(expf(bx)) / beta;
    return sp * 0.1f;
}

static float global_scale_slope(float gamma) {
    return 0.1f / (1.0f + expf(-0.5f * gamma));
}

/* Rows per partial sum of column_sums(): fixed, so the sums do not depend on
 * the number of threads. */
#define COLUMN_SUM_ROWS 256

/* One pass over a (n rows of m contiguous columns) accumulating column sums
 * in double, by blocks of COLUMN_SUM_ROWS rows (in parallel) whose partial
 * sums are then added in order:
 *   sums[j]  = sum_i a[i, j]
 *   wsums[j] = sum_i a[i, j] w[i, j]          (when w is given)
 * When `mask` is given, a[i, j] is first zeroed where mask[i, j] <= 0 (ReLU's
 * backward, a select rather than a branch: the mask is random). */
static hg_status column_sums(float *a, const float *w, const float *mask, int64_t n, int64_t m,
                             double *sums, double *wsums) {
    const int64_t blocks = (n + COLUMN_SUM_ROWS - 1) / COLUMN_SUM_ROWS;
    const size_t width = (size_t)m * (w ? 2 : 1);
    double *partial = calloc((size_t)(blocks ? blocks : 1) * width, sizeof *partial);
    if (!partial) return hg_fail(HG_ERR_NOMEM, "coupling: out of memory");
#pragma omp parallel for schedule(static) if (n * m > FUSED_PARALLEL_MIN)
    for (int64_t blk = 0; blk < blocks; blk++) {
        double *acc = partial + (size_t)blk * width, *wacc = acc + m;
        int64_t end = blk * COLUMN_SUM_ROWS + COLUMN_SUM_ROWS < n
                          ? blk * COLUMN_SUM_ROWS + COLUMN_SUM_ROWS
                          : n;
        for (int64_t i = blk * COLUMN_SUM_ROWS; i < end; i++) {
            float *row = a + i * m;
            if (mask) {
                const float *mrow = mask + i * m;
                for (int64_t j = 0; j < m; j++) row[j] = mrow[j] > 0.0f ? row[j] : 0.0f;
            }
            for (int64_t j = 0; j < m; j++) acc[j] += (double)row[j];
            if (w) {
                const float *wrow = w + i * m;
                for (int64_t j = 0; j < m; j++) wacc[j] += (double)row[j] * (double)wrow[j];
            }
        }
    }
    for (size_t j = 0; j < width; j++) {
        double sum = 0;
        for (int64_t blk = 0; blk < blocks; blk++) sum += partial[(size_t)blk * width + j];
        if (j < (size_t)m)
            sums[j] = sum;
        else
            wsums[j - (size_t)m] = sum;
    }
    free(partial);
    return HG_OK;
}

/* A tensor of `shape` holding double values rounded to float. */
static Tensor *tensor_from_doubles(int ndim, const int64_t *shape, const double *values) {
    Tensor *t = tensor_empty(ndim, shape);
    if (!t) return NULL;
    float *p = tensor_data(t);
    for (int64_t i = 0; i < tensor_numel(t); i++) p[i] = (float)values[i];
    return t;
}

static bool block_needs_grad(const CouplingBlock *b, const Var *x, const Var *cond) {
    const Var *params[] = {b->subnet_in.weight, b->subnet_in.bias, b->subnet_out.weight,
                           b->subnet_out.bias,  b->global_scale,   b->global_offset};
    bool any = x->requires_grad || (cond && cond->requires_grad);
    for (size_t i = 0; i < sizeof params / sizeof *params; i++)
        any |= params[i] && params[i]->requires_grad;
    return any;
}

static hg_status fused_backward(Var *out);
static hg_status logdet_backward(Var *term);

/* dQ (U, H): the rows of dq (N, H) summed per distinct condition row, each
 * group in increasing row order (the same sums for any number of threads). */
static void sum_rows_by_group(const CondRows *rows, const float *dq, int64_t H, float *out) {
    const int64_t U = rows->distinct;
#pragma omp parallel for schedule(static) if (rows->rows * H > FUSED_PARALLEL_MIN)
    for (int64_t u = 0; u < U; u++) {
        float *acc = out + u * H;
        for (int64_t j = 0; j < H; j++) acc[j] = 0.0f;
        for (int32_t k = rows->start[u]; k < rows->start[u + 1]; k++) {
            const float *row = dq + (int64_t)rows->members[k] * H;
            for (int64_t j = 0; j < H; j++) acc[j] += row[j];
        }
    }
}

Var *coupling_fused_forward(const CouplingBlock *b, Tape *tape, Var *x, Var *cond, CondRows *rows,
                            Var **logdet_term) {
    *logdet_term = NULL;
    const int64_t N = x->value->shape[0], D = b->base.dim, P = b->passive, A = b->active;
    const int64_t Dc = b->base.cond_dim, K1 = P + Dc, H = b->subnet_in.out_features;
    const float alpha = b->options.clamp;
    const bool new_clamp = b->options.new_clamp;
    const bool needs_grad = tape_grad_enabled(tape) && block_needs_grad(b, x, cond);

    FusedContext *ctx = calloc(1, sizeof *ctx);
    Tensor *a = tensor_empty(SHAPE(N, 2 * A)), *v = tensor_empty(SHAPE(N, D));
    /* Q = C W1b^T + b1 per distinct condition row (factored path only). */
    Tensor *q_rows = rows ? tensor_empty(SHAPE(rows->distinct, H)) : NULL;
    Tensor *y = tensor_empty(SHAPE(N, D)), *term = tensor_empty(SHAPE(N));
    float *g = malloc(sizeof(float) * (size_t)D);
    if (ctx) {
        ctx->block = b;
        ctx->x = x;
        ctx->cond = cond;
        ctx->x_c = tensor_contiguous(x->value);
        ctx->rows = cond_rows_ref(rows);
        ctx->cond_c = cond && !rows ? tensor_contiguous(cond->value) : NULL;
        ctx->hidden = tensor_empty(SHAPE(N, H));
        ctx->th = tensor_empty(SHAPE(N, A));
        ctx->exp_s = tensor_empty(SHAPE(N, A));
        ctx->u = tensor_empty(SHAPE(N, D));
    }
    if (!ctx || !a || !v || !y || !term || !g || !ctx->x_c || (cond && !rows && !ctx->cond_c) ||
        (rows && !q_rows) || !ctx->hidden || !ctx->th || !ctx->exp_s || !ctx->u) {
        hg_fail(HG_ERR_NOMEM, "coupling: out of memory");
        context_free(ctx);
        tensor_free(a), tensor_free(v), tensor_free(y), tensor_free(term), tensor_free(q_rows);
        free(g);
        return NULL;
    }
    const float *xd = tensor_data(ctx->x_c), *cd = ctx->cond_c ? tensor_data(ctx->cond_c) : NULL;
    const float *w1 = tensor_data(b->subnet_in.weight->value);
    const float *b1 = tensor_data(b->subnet_in.bias->value);
    const float *w2 = tensor_data(b->subnet_out.weight->value);
    const float *b2 = tensor_data(b->subnet_out.bias->value);
    const float *gamma = tensor_data(b->global_scale->value);
    const float *offset = tensor_data(b->global_offset->value);
    const float *w_perm = tensor_data(b->w_perm->value);
    float *hd = tensor_data(ctx->hidden), *ad = tensor_data(a), *vd = tensor_data(v);
    float *thd = tensor_data(ctx->th), *esd = tensor_data(ctx->exp_s), *ud = tensor_data(ctx->u);
    float *td = tensor_data(term);

    double log_g_sum = 0;
    for (int64_t j = 0; j < D; j++) {
        g[j] = global_scale_value(gamma[j]);
        log_g_sum += log((double)g[j]);
    }

    /* (4.2) h = relu(x1 W1a^T + c W1b^T + b1): two GEMMs into the same output,
     * or, factored, x1 W1a^T plus the gathered rows of Q = C W1b^T + b1. */
    gemm(false, true, N, H, P, 1.0f, xd, D, w1, K1, 0.0f, hd, H);
    float *qd = NULL;
    const int32_t *idx = rows ? rows->index : NULL;
    if (rows) {
        qd = tensor_data(q_rows);
        gemm(false, true, rows->distinct, H, Dc, 1.0f, tensor_data(rows->unique), Dc, w1 + P, K1,
             0.0f, qd, H);
        for (int64_t u = 0; u < rows->distinct; u++)
            for (int64_t j = 0; j < H; j++) qd[u * H + j] += b1[j];
    } else if (Dc > 0) {
        gemm(false, true, N, H, Dc, 1.0f, cd, Dc, w1 + P, K1, 1.0f, hd, H);
    }
#pragma omp parallel for if (N * H > FUSED_PARALLEL_MIN)
    for (int64_t i = 0; i < N; i++) {
        float *row = hd + i * H;
        const float *add = idx ? qd + (int64_t)idx[i] * H : b1;
        for (int64_t j = 0; j < H; j++) {
            float pre = row[j] + add[j];
            row[j] = pre > 0.0f ? pre : 0.0f;
        }
    }
    tensor_free(q_rows);
    /* (4.3) a = 0.1 (h W2^T + b2); the bias and the 0.1 are applied below. */
    gemm(false, true, N, 2 * A, H, 1.0f, hd, H, w2, H, 0.0f, ad, 2 * A);
    /* (4.3)-(4.6) per row: clamp, affine coupling, global affine, log-det. */
    const float inv_alpha = 1.0f / alpha;
    const bool avx2 = hg_cpu_has_avx2_fma();
#pragma omp parallel for if (N * D > FUSED_PARALLEL_MIN)
    for (int64_t i = 0; i < N; i++) {
        const float *xrow = xd + i * D, *arow = ad + i * 2 * A;
        float *urow = ud + i * D, *vrow = vd + i * D;
        float *th_row = thd + i * A, *esrow = esd + i * A;
        float s_sum = 0.0f;
        int64_t done = 0; /* active channels done by the vector kernel */
        if (avx2)
            done = coupling_active_row_avx2(A, arow, b2, xrow + P, alpha, new_clamp, th_row, esrow,
                                            urow + P, &s_sum);
        for (int64_t j = 0; j < P; j++) urow[j] = xrow[j];
        for (int64_t j = done; j < A; j++) {
            float a_s = (arow[j] + b2[j]) * 0.1f, t = (arow[A + j] + b2[A + j]) * 0.1f;
            float th = tanhf(new_clamp ? a_s * inv_alpha : a_s);
            float s = th * alpha, e = expf(s);
            th_row[j] = th;
            esrow[j] = e;
            urow[P + j] = xrow[P + j] * e + t;
            s_sum += s;
        }
        for (int64_t j = 0; j < D; j++) vrow[j] = urow[j] * g[j] + offset[j];
        td[i] = s_sum + (float)log_g_sum;
    }
    /* (4.7) y = v W^T. */
    gemm(false, true, N, D, D, 1.0f, vd, D, w_perm, D, 0.0f, tensor_data(y), D);
    tensor_free(a);
    tensor_free(v);
    free(g);

    Var *out = tape_record(tape, "coupling_fused", y, 0, NULL, NULL);
    if (!out) {
        context_free(ctx);
        tensor_free(term);
        return NULL;
    }
    if (needs_grad) {
        out->requires_grad = true;
        out->backward = fused_backward;
        out->context = ctx;
        out->free_context = context_free;
    } else {
        context_free(ctx);
    }
    *logdet_term = tape_record(tape, "coupling_fused_logdet", term, 1, &out, logdet_backward);
    return *logdet_term ? out : NULL;
}

/* The term's gradient goes to y's node. y needs a gradient of its own for its
 * backward to run at all: when nothing downstream used y, it is zero. */
static hg_status logdet_backward(Var *term) {
    Var *out = term->inputs[0];
    FusedContext *ctx = out->context;
    tensor_free(ctx->grad_logdet);
    ctx->grad_logdet = tensor_contiguous(term->grad);
    if (!ctx->grad_logdet) return hg_last_status();
    if (out->grad) return HG_OK;
    return var_accumulate_grad(out, tensor_zeros_like(out->value));
}

/* Backward of the fused op, given gy = dL/dy (N, D) and gl = dL/d(term) (N),
 * by the chain rule through the forward's equations (spec section 4):
 *
 *   y = v W^T                    =>  dv = gy W
 *   v = u g + delta              =>  du = dv g,   d delta_j = sum_i dv_ij,
 *                                    dg_j = sum_i dv_ij u_ij + (sum_i gl_i) / g_j
 *                                    (the term has sum_j log g_j in every row)
 *   g = 0.1 softplus_{1/2}(gamma) =>  dgamma_j = dg_j 0.1 sigmoid(gamma_j / 2)
 *   u = [x1, y2]                 =>  dx1 gets du[:P] directly, dy2 = du[P:]
 *   y2 = x2 exp(s) + t           =>  dx2 = dy2 exp(s),  dt = dy2,
 *                                    ds = dy2 x2 exp(s) + gl  (the term has sum s)
 *   s = alpha tanh(a_s)          =>  da_s = ds alpha (1 - th^2)
 *   [s = alpha tanh(a_s/alpha)   =>  da_s = ds (1 - th^2)]
 *   a = 0.1 (h W2^T + b2)        =>  dz = 0.1 [da_s, dt] (z the 2nd Linear's output),
 *                                    dW2 = dz^T h,  db2 = sum_i dz,  dh = dz W2
 *   h = relu(q)                  =>  dq = dh [q > 0] = dh [h > 0]
 *   q = x1 W1a^T + c W1b^T + b1  =>  dW1a = dq^T x1, dW1b = dq^T c, db1 = sum_i dq,
 *                                    (computed as dW1^T = [x1, c]^T dq)
 *                                    dx1 += dq W1a,  dc = dq W1b
 *   factored, c = C[idx]         =>  dW1b^T = C^T dQ, dQ_u = sum_{idx_i = u} dq_i
 *
 * Products whose result nobody needs are skipped (x and c usually need none). */
static hg_status fused_backward(Var *out) {
    FusedContext *ctx = out->context;
    const CouplingBlock *b = ctx->block;
    const int64_t N = out->value->shape[0], D = b->base.dim, P = b->passive, A = b->active;
    const int64_t Dc = b->base.cond_dim, K1 = P + Dc, H = b->subnet_in.out_features;
    const float alpha = b->options.clamp;
    const bool new_clamp = b->options.new_clamp;
    Var *W1 = b->subnet_in.weight, *B1 = b->subnet_in.bias;
    Var *W2 = b->subnet_out.weight, *B2 = b->subnet_out.bias;
    const bool want_x = ctx->x->requires_grad, want_c = ctx->cond && ctx->cond->requires_grad;
    const bool want_w1 = W1->requires_grad || B1->requires_grad;
    const bool want_dh = want_x || want_c || want_w1;

    Tensor *gy = tensor_contiguous(out->grad);
    Tensor *dv = tensor_empty(SHAPE(N, D)), *dz = tensor_empty(SHAPE(N, 2 * A));
    Tensor *dx = want_x ? tensor_empty(SHAPE(N, D)) : NULL;
    double *sums = malloc(sizeof(double) * (size_t)(2 * D + 2 * A + H));
    float *g = malloc(sizeof(float) * (size_t)D);
    hg_status status = HG_OK;
    if (!gy || !dv || !dz || (want_x && !dx) || !sums || !g) {
        status = hg_fail(HG_ERR_NOMEM, "coupling: out of memory");
        goto done;
    }
    const float *gamma = tensor_data(b->global_scale->value);
    for (int64_t j = 0; j < D; j++) g[j] = global_scale_value(gamma[j]);
    const float *gld = ctx->grad_logdet ? tensor_data(ctx->grad_logdet) : NULL;
    const float *xd = tensor_data(ctx->x_c), *ud = tensor_data(ctx->u);
    const float *thd = tensor_data(ctx->th), *esd = tensor_data(ctx->exp_s);
    float *dvd = tensor_data(dv), *dzd = tensor_data(dz), *dxd = dx ? tensor_data(dx) : NULL;
    double *d_offset = sums, *d_g = sums + D, *d_b2 = sums + 2 * D, *d_b1 = d_b2 + 2 * A;

    /* dv = gy W; delta and g gradients are column sums over the rows. */
    gemm(false, false, N, D, D, 1.0f, tensor_data(gy), D, tensor_data(b->w_perm->value), D, 0.0f,
         dvd, D);
    if ((status = column_sums(dvd, ud, NULL, N, D, d_offset, d_g)) != HG_OK) goto done;

        /* Per row: du = dv g, then the coupling's gradients into dx and dz. */
#pragma omp parallel for if (N * D > FUSED_PARALLEL_MIN)
    for (int64_t i = 0; i < N; i++) {
        const float *dvrow = dvd + i * D, *xrow = xd + i * D;
        const float *th_row = thd + i * A, *esrow = esd + i * A;
        float *dzrow = dzd + i * 2 * A;
        const float gl = gld ? gld[i] : 0.0f;
        if (dxd)
            for (int64_t j = 0; j < P; j++) dxd[i * D + j] = dvrow[j] * g[j];
        for (int64_t j = 0; j < A; j++) {
            float dy2 = dvrow[P + j] * g[P + j], e = esrow[j], th = th_row[j];
            float ds = dy2 * xrow[P + j] * e + gl;
            float slope = new_clamp ? 1.0f - th * th : alpha * (1.0f - th * th);
            if (dxd) dxd[i * D + P + j] = dy2 * e;
            dzrow[j] = 0.1f * ds * slope;
            dzrow[A + j] = 0.1f * dy2;
        }
    }

    /* Second Linear: dW2 = dz^T h, db2 = column sums of dz, dh = dz W2. */
    const float *hd = tensor_data(ctx->hidden);
    if (W2->requires_grad) {
        Tensor *dw2 = tensor_empty(SHAPE(2 * A, H));
        if (!dw2) goto fail;
        gemm(true, false, 2 * A, H, N, 1.0f, dzd, 2 * A, hd, H, 0.0f, tensor_data(dw2), H);
        if ((status = var_accumulate_grad(W2, dw2)) != HG_OK) goto done;
    }
    if (B2->requires_grad) {
        if ((status = column_sums(dzd, NULL, NULL, N, 2 * A, d_b2, NULL)) != HG_OK) goto done;
        if ((status = var_accumulate_grad(B2, tensor_from_doubles(SHAPE(2 * A), d_b2))) != HG_OK)
            goto done;
    }
    if (want_dh) {
        Tensor *dq = tensor_empty(SHAPE(N, H));
        if (!dq) goto fail;
        float *dqd = tensor_data(dq);
        gemm(false, false, N, H, 2 * A, 1.0f, dzd, 2 * A, tensor_data(W2->value), H, 0.0f, dqd, H);
        /* dq = dh [h > 0], and db1 = its column sums, in one pass. */
        status = column_sums(dqd, NULL, hd, N, H, d_b1, NULL);
        /* The saved activations are no longer needed: give their memory back
         * before the largest products. */
        tensor_free(ctx->hidden);
        ctx->hidden = NULL;
        if (status != HG_OK) {
            tensor_free(dq);
            goto done;
        }
        const float *w1 = tensor_data(W1->value);
        if (W1->requires_grad) {
            /* dW1^T = [x1, c]^T dq, computed transposed (K1, H) and handed over
             * as a transposed view: the GEMM then packs the short x1^T and c^T
             * rather than the wide dq^T (H rows), the slow way to pack. */
            Tensor *dw1t = tensor_empty(SHAPE(K1, H));
            if (!dw1t) {
                tensor_free(dq);
                goto fail;
            }
            gemm(true, false, P, H, N, 1.0f, xd, D, dqd, H, 0.0f, tensor_data(dw1t), H);
            if (ctx->rows) {
                const int64_t U = ctx->rows->distinct;
                Tensor *dq_rows = tensor_empty(SHAPE(U, H));
                if (!dq_rows) {
                    tensor_free(dw1t);
                    tensor_free(dq);
                    goto fail;
                }
                sum_rows_by_group(ctx->rows, dqd, H, tensor_data(dq_rows));
                gemm(true, false, Dc, H, U, 1.0f, tensor_data(ctx->rows->unique), Dc,
                     tensor_data(dq_rows), H, 0.0f, tensor_data(dw1t) + P * H, H);
                tensor_free(dq_rows);
            } else if (Dc > 0) {
                gemm(true, false, Dc, H, N, 1.0f, tensor_data(ctx->cond_c), Dc, dqd, H, 0.0f,
                     tensor_data(dw1t) + P * H, H);
            }
            status = var_accumulate_grad(W1, tensor_transpose(dw1t, 0, 1));
            tensor_free(dw1t);
        }
        if (status == HG_OK && B1->requires_grad)
            status = var_accumulate_grad(B1, tensor_from_doubles(SHAPE(H), d_b1));
        if (status == HG_OK && want_x)
            gemm(false, false, N, P, H, 1.0f, dqd, H, w1, K1, 1.0f, dxd, D);
        if (status == HG_OK && want_c) {
            Tensor *dc = tensor_empty(SHAPE(N, Dc));
            if (dc)
                gemm(false, false, N, Dc, H, 1.0f, dqd, H, w1 + P, K1, 0.0f, tensor_data(dc), Dc);
            status = var_accumulate_grad(ctx->cond, dc);
        }
        tensor_free(dq);
        if (status != HG_OK) goto done;
    }

    /* Global affine parameters (1, D). */
    if (b->global_offset->requires_grad &&
        (status = var_accumulate_grad(b->global_offset,
                                      tensor_from_doubles(SHAPE(1, D), d_offset))) != HG_OK)
        goto done;
    if (b->global_scale->requires_grad) {
        double gl_sum = 0;
        if (gld)
            for (int64_t i = 0; i < N; i++) gl_sum += gld[i];
        for (int64_t j = 0; j < D; j++)
            d_g[j] = (d_g[j] + gl_sum / g[j]) * global_scale_slope(gamma[j]);
        if ((status = var_accumulate_grad(b->global_scale,
                                          tensor_from_doubles(SHAPE(1, D), d_g))) != HG_OK)
            goto done;
    }
    if (want_x) {
        status = var_accumulate_grad(ctx->x, dx);
        dx = NULL;
    }
    goto done;
fail:
    status = hg_fail(HG_ERR_NOMEM, "coupling: out of memory");
done:
    tensor_free(gy);
    tensor_free(dv);
    tensor_free(dz);
    tensor_free(dx);
    free(sums);
    free(g);
    context_release_buffers(ctx);
    return status;
}
