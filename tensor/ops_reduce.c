/* Reductions (sum, mean, max, min, logsumexp, max_dim, sum_all, sum_to_shape)
 * and softmax / log_softmax of tensor/ops.h.
 *
 * A reduction is planned as two lists of dims of the input: the kept dims (one
 * output element per position) and the reduced dims, each with size-1 dims
 * dropped and contiguous neighbours merged. Two loop orders keep memory access
 * sequential:
 *   - inner: the reduced dims include the fastest-moving input dim, so each
 *     output element reduces a (mostly) contiguous run; threads take output
 *     elements, or, when there are few outputs, pieces of each run whose partial
 *     results are combined in order afterwards;
 *   - outer: a kept dim moves fastest (e.g. summing a (N, C) tensor over N), so
 *     a block of up to LANE_BLOCK output elements is accumulated together while
 *     walking the reduced positions, reading input rows sequentially.
 * Sums accumulate in double. max/min propagate NaN and report the first
 * position of the extreme value, as torch does. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/iterate.h"
#include "tensor/ops.h"

/* Input elements above which a reduction uses threads. */
#define REDUCE_PARALLEL_MIN 32768
/* Output elements accumulated together in the outer loop order. */
#define LANE_BLOCK 256
/* Below this many work items a reduction is also split along the reduced
 * positions, into pieces of at least CHUNK_MIN positions, at most MAX_CHUNKS. */
#define FEW_ITEMS  16
#define CHUNK_MIN  16384
#define MAX_CHUNKS 64

typedef enum { RED_SUM, RED_MAX, RED_MIN, RED_SUMEXP } ReduceKind;

/* Result of reducing some consecutive reduced positions of one output element. */
typedef struct Partial {
    double acc;  /* RED_SUM, RED_SUMEXP */
    float best;  /* RED_MAX, RED_MIN: extreme value so far (NaN once one was seen) */
    int64_t arg; /* its position (row-major over the reduced dims) */
} Partial;

typedef struct ReducePlan {
    const float *in;
    int nkeep; /* >= 1 (a size-1 dim stands in when everything is reduced) */
    int64_t keep_shape[TENSOR_MAX_DIMS], keep_in[TENSOR_MAX_DIMS], keep_out[TENSOR_MAX_DIMS];
    int nred; /* >= 1 */
    int64_t red_shape[TENSOR_MAX_DIMS], red_in[TENSOR_MAX_DIMS];
    int64_t nout, rsize;
} ReducePlan;

typedef struct ReduceJob {
    ReduceKind kind;
    const float *shift; /* RED_SUMEXP: finite shift per output element */
    float *out;         /* nout floats, contiguous */
    float *arg;         /* RED_MAX/MIN: position of the extreme (may be NULL) */
    double *out_double; /* RED_SUM: raw double sums instead of out (may be NULL) */
    double divisor;     /* RED_SUM: out = sum / divisor */
} ReduceJob;

/* Drops size-1 dims and merges neighbours that are contiguous in `a` (and in `b`
 * when not NULL): stride[outer] == stride[inner] * shape[inner]. Returns the count. */
static int simplify_dims(int n, int64_t *shape, int64_t *a, int64_t *b) {
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (shape[i] == 1) continue;
        if (m > 0 && a[m - 1] == a[i] * shape[i] && (!b || b[m - 1] == b[i] * shape[i])) {
            shape[m - 1] *= shape[i];
            a[m - 1] = a[i];
            if (b) b[m - 1] = b[i];
        } else {
            shape[m] = shape[i];
            a[m] = a[i];
            if (b) b[m] = b[i];
            m++;
        }
    }
    if (m == 0) { /* one element: a size-1 dim keeps the loops uniform */
        shape[0] = 1;
        a[0] = 0;
        if (b) b[0] = 0;
        m = 1;
    }
    return m;
}

/* Plans reducing the dims of x marked in `reduced` (x has no empty dims). With
 * keep_order false the reduced dims may be reordered (largest stride first) so
 * the innermost loop is the most contiguous; positions then lose their meaning,
 * which only argmax needs. */
static void plan_build(ReducePlan *p, const Tensor *x, const bool *reduced, bool keep_order) {
    p->in = tensor_data(x);
    p->nkeep = p->nred = 0;
    p->nout = p->rsize = 1;
    for (int d = 0; d < x->ndim; d++) {
        if (reduced[d]) {
            p->red_shape[p->nred] = x->shape[d];
            p->red_in[p->nred++] = x->stride[d];
            p->rsize *= x->shape[d];
        } else {
            p->keep_shape[p->nkeep] = x->shape[d];
            p->keep_in[p->nkeep++] = x->stride[d];
            p->nout *= x->shape[d];
        }
    }
    int64_t out_stride = 1; /* the output is contiguous over the kept dims */
    for (int i = p->nkeep - 1; i >= 0; i--) {
        p->keep_out[i] = out_stride;
        out_stride *= p->keep_shape[i];
    }
    if (!keep_order) { /* stable insertion sort, largest input stride first */
        for (int i = 1; i < p->nred; i++)
            for (int j = i; j > 0 && p->red_in[j - 1] < p->red_in[j]; j--) {
                int64_t s = p->red_shape[j];
                p->red_shape[j] = p->red_shape[j - 1];
                p->red_shape[j - 1] = s;
                s = p->red_in[j];
                p->red_in[j] = p->red_in[j - 1];
                p->red_in[j - 1] = s;
            }
    }
    p->nkeep = simplify_dims(p->nkeep, p->keep_shape, p->keep_in, p->keep_out);
    p->nred = simplify_dims(p->nred, p->red_shape, p->red_in, NULL);
}

static Partial partial_start(ReduceKind kind, int64_t position) {
    Partial part = {0.0, 0.0f, position};
    if (kind == RED_MAX) part.best = -INFINITY;
    if (kind == RED_MIN) part.best = INFINITY;
    return part;
}

/* Whether v replaces best: strictly more extreme, or the first NaN. */
static inline bool beats(ReduceKind kind, float v, float best) {
    if (v != v) return best == best;
    return kind == RED_MAX ? v > best : v < best;
}

/* Folds `right` (later positions) into `left`. */
static void partial_combine(ReduceKind kind, Partial *left, const Partial *right) {
    if (kind == RED_SUM || kind == RED_SUMEXP)
        left->acc += right->acc;
    else if (beats(kind, right->best, left->best))
        *left = *right;
}

static void partial_emit(const ReduceJob *job, int64_t o, const Partial *part) {
    switch (job->kind) {
    case RED_SUM:
        if (job->out_double)
            job->out_double[o] = part->acc;
        else
            job->out[o] = (float)(part->acc / job->divisor);
        break;
    case RED_SUMEXP:
        job->out[o] = (float)((double)job->shift[o] + log(part->acc));
        break;
    case RED_MAX:
    case RED_MIN:
        job->out[o] = part->best;
        if (job->arg) job->arg[o] = (float)part->arg;
        break;
    }
}

/* Folds n input elements x[0], x[stride], ... at positions pos, pos+1, ... */
static void accumulate_run(Partial *part, ReduceKind kind, float shift, const float *x, int64_t n,
                           int64_t stride, int64_t pos) {
    double acc = 0;
    switch (kind) {
    case RED_SUM:
        if (stride == 1) {
#pragma omp simd reduction(+ : acc)
            for (int64_t i = 0; i < n; i++) acc += x[i];
        } else {
            for (int64_t i = 0; i < n; i++) acc += x[i * stride];
        }
        part->acc += acc;
        break;
    case RED_SUMEXP:
        for (int64_t i = 0; i < n; i++) acc += expf(x[i * stride] - shift);
        part->acc += acc;
        break;
    case RED_MAX:
    case RED_MIN:
        for (int64_t i = 0; i < n; i++) {
            float v = x[i * stride];
            if (beats(kind, v, part->best)) {
                part->best = v;
                part->arg = pos + i;
            }
        }
        break;
    }
}

/* Reduces positions [r0, r1) of the reduced dims starting from `base`. */
static Partial reduce_positions(const ReducePlan *p, ReduceKind kind, float shift,
                                const float *base, int64_t r0, int64_t r1) {
    Partial part = partial_start(kind, r0);
    int nd = p->nred;
    int64_t index[TENSOR_MAX_DIMS], offset = 0, rem = r0;
    for (int d = nd - 1; d >= 0; d--) {
        index[d] = rem % p->red_shape[d];
        rem /= p->red_shape[d];
        offset += index[d] * p->red_in[d];
    }
    int64_t inner = p->red_shape[nd - 1], stride = p->red_in[nd - 1];
    for (int64_t pos = r0; pos < r1;) {
        int64_t run = inner - index[nd - 1];
        if (run > r1 - pos) run = r1 - pos;
        accumulate_run(&part, kind, shift, base + offset, run, stride, pos);
        pos += run;
        if (pos >= r1) break;
        offset += run * stride;
        index[nd - 1] += run;
        for (int d = nd - 1; d > 0 && index[d] == p->red_shape[d]; d--) {
            index[d] = 0;
            index[d - 1]++;
            offset += p->red_in[d - 1] - p->red_shape[d] * p->red_in[d];
        }
    }
    return part;
}

/* How many pieces to cut each reduction into when there are too few work
 * items (output elements or lane blocks) to share among threads. It depends on
 * the sizes only, never on the thread count, so results (the order in which
 * partial sums are added) are the same whatever the number of threads. */
static int64_t chunk_count(int64_t items, int64_t rsize) {
    if (items >= FEW_ITEMS) return 1;
    int64_t chunks = rsize / CHUNK_MIN;
    return chunks < 1 ? 1 : chunks > MAX_CHUNKS ? MAX_CHUNKS : chunks;
}

/* Combines the per-chunk partials parts[c * nout + o] in order and emits them. */
static void emit_chunked(const ReducePlan *p, const ReduceJob *job, const Partial *parts,
                         int64_t nchunks) {
    for (int64_t o = 0; o < p->nout; o++) {
        Partial total = parts[o];
        for (int64_t c = 1; c < nchunks; c++)
            partial_combine(job->kind, &total, &parts[c * p->nout + o]);
        partial_emit(job, o, &total);
    }
}

/* Inner-order work item: piece c of output o's reduction, item = o * nchunks + c.
 * Pieces go to parts[c * nout + o] when splitting, else straight to the output. */
static void inner_item(const ReducePlan *p, const ReduceJob *job, int64_t item, int64_t nchunks,
                       Partial *parts) {
    int64_t o = item / nchunks, c = item % nchunks, rsize = p->rsize;
    const float *base = p->in + iter_offset_of(o, p->nkeep, p->keep_shape, p->keep_in);
    float shift = job->shift ? job->shift[o] : 0.0f;
    Partial part =
        reduce_positions(p, job->kind, shift, base, c * rsize / nchunks, (c + 1) * rsize / nchunks);
    if (parts)
        parts[c * p->nout + o] = part;
    else
        partial_emit(job, o, &part);
}

static hg_status run_inner(const ReducePlan *p, const ReduceJob *job) {
    int64_t nout = p->nout, rsize = p->rsize;
    bool parallel = nout * rsize > REDUCE_PARALLEL_MIN;
    int64_t nchunks = chunk_count(nout, rsize), items = nout * nchunks;
    Partial *parts = NULL;
    if (nchunks > 1) {
        parts = malloc(sizeof(Partial) * (size_t)items);
        if (!parts) return hg_fail(HG_ERR_NOMEM, "reduce: out of memory for partial results");
    }
    /* Small reductions skip the (costly even when inactive) parallel region. */
    if (parallel) {
#pragma omp parallel for schedule(static)
        for (int64_t item = 0; item < items; item++) inner_item(p, job, item, nchunks, parts);
    } else {
        for (int64_t item = 0; item < items; item++) inner_item(p, job, item, nchunks, parts);
    }
    if (parts) {
        emit_chunked(p, job, parts, nchunks);
        free(parts);
    }
    return HG_OK;
}

/* Outer loop order: kept dim `lane` moves fastest in the input. For one block
 * of lanes and reduced positions [r0, r1) it walks the reduced positions in
 * order, updating all lanes of the block per position. */
static void outer_block(const ReducePlan *p, const ReduceJob *job, int lane, const float *base,
                        int64_t nb, int64_t r0, int64_t r1, Partial *part, const float *shift) {
    ReduceKind kind = job->kind;
    int64_t ls = p->keep_in[lane];
    double acc[LANE_BLOCK];
    float best[LANE_BLOCK];
    int64_t arg[LANE_BLOCK];
    for (int64_t j = 0; j < nb; j++) {
        acc[j] = 0;
        best[j] = kind == RED_MAX ? -INFINITY : INFINITY;
        arg[j] = r0;
    }
    int nd = p->nred;
    int64_t index[TENSOR_MAX_DIMS], offset = 0, rem = r0;
    for (int d = nd - 1; d >= 0; d--) {
        index[d] = rem % p->red_shape[d];
        rem /= p->red_shape[d];
        offset += index[d] * p->red_in[d];
    }
    for (int64_t r = r0; r < r1; r++) {
        const float *x = base + offset;
        if (kind == RED_SUM && ls == 1) {
            for (int64_t j = 0; j < nb; j++) acc[j] += x[j];
        } else if (kind == RED_SUM) {
            for (int64_t j = 0; j < nb; j++) acc[j] += x[j * ls];
        } else if (kind == RED_SUMEXP) {
            for (int64_t j = 0; j < nb; j++) acc[j] += expf(x[j * ls] - shift[j]);
        } else {
            for (int64_t j = 0; j < nb; j++) {
                float v = x[j * ls];
                if (beats(kind, v, best[j])) {
                    best[j] = v;
                    arg[j] = r;
                }
            }
        }
        for (int d = nd - 1; d >= 0; d--) { /* next reduced position */
            offset += p->red_in[d];
            if (++index[d] < p->red_shape[d]) break;
            offset -= p->red_shape[d] * p->red_in[d];
            index[d] = 0;
        }
    }
    for (int64_t j = 0; j < nb; j++) part[j] = (Partial){acc[j], best[j], arg[j]};
}

/* The outer order's view of the kept dims: `lane` and the others (rows). */
typedef struct OuterShape {
    int lane, nrow_dims;
    int64_t row_shape[TENSOR_MAX_DIMS], row_in[TENSOR_MAX_DIMS], row_out[TENSOR_MAX_DIMS];
    int64_t lanes, nblocks, nchunks;
} OuterShape;

/* Outer-order work item: piece c of the reduction of lane block `block` of
 * row `row`, item = (row * nblocks + block) * nchunks + c. */
static void outer_item(const ReducePlan *p, const ReduceJob *job, const OuterShape *os,
                       int64_t item, Partial *parts) {
    int64_t nchunks = os->nchunks, rsize = p->rsize, lane_out = p->keep_out[os->lane];
    int64_t c = item % nchunks, block = item / nchunks % os->nblocks;
    int64_t row = item / nchunks / os->nblocks;
    int64_t j0 = block * LANE_BLOCK, nb = os->lanes - j0 < LANE_BLOCK ? os->lanes - j0 : LANE_BLOCK;
    int64_t o0 = iter_offset_of(row, os->nrow_dims, os->row_shape, os->row_out) + j0 * lane_out;
    const float *base = p->in + iter_offset_of(row, os->nrow_dims, os->row_shape, os->row_in) +
                        j0 * p->keep_in[os->lane];
    float shift[LANE_BLOCK];
    if (job->shift)
        for (int64_t j = 0; j < nb; j++) shift[j] = job->shift[o0 + j * lane_out];
    Partial part[LANE_BLOCK];
    outer_block(p, job, os->lane, base, nb, c * rsize / nchunks, (c + 1) * rsize / nchunks, part,
                shift);
    for (int64_t j = 0; j < nb; j++) {
        int64_t o = o0 + j * lane_out;
        if (parts)
            parts[c * p->nout + o] = part[j];
        else
            partial_emit(job, o, &part[j]);
    }
}

static hg_status run_outer(const ReducePlan *p, const ReduceJob *job, int lane) {
    OuterShape os = {.lane = lane, .nrow_dims = 0};
    for (int d = 0; d < p->nkeep; d++) {
        if (d == lane) continue;
        os.row_shape[os.nrow_dims] = p->keep_shape[d];
        os.row_in[os.nrow_dims] = p->keep_in[d];
        os.row_out[os.nrow_dims++] = p->keep_out[d];
    }
    os.lanes = p->keep_shape[lane];
    os.nblocks = (os.lanes + LANE_BLOCK - 1) / LANE_BLOCK;
    int64_t nrows = p->nout / os.lanes;
    bool parallel = p->nout * p->rsize > REDUCE_PARALLEL_MIN;
    os.nchunks = chunk_count(nrows * os.nblocks, p->rsize);
    Partial *parts = NULL;
    if (os.nchunks > 1) {
        parts = malloc(sizeof(Partial) * (size_t)(p->nout * os.nchunks));
        if (!parts) return hg_fail(HG_ERR_NOMEM, "reduce: out of memory for partial results");
    }
    int64_t items = nrows * os.nblocks * os.nchunks;
    if (parallel) {
#pragma omp parallel for schedule(static)
        for (int64_t item = 0; item < items; item++) outer_item(p, job, &os, item, parts);
    } else {
        for (int64_t item = 0; item < items; item++) outer_item(p, job, &os, item, parts);
    }
    if (parts) {
        emit_chunked(p, job, parts, os.nchunks);
        free(parts);
    }
    return HG_OK;
}

/* Runs a planned reduction (nout > 0 and rsize > 0). */
static hg_status reduce_run(const ReducePlan *p, const ReduceJob *job) {
    /* The outer order pays off when a kept dim moves faster than every reduced
     * dim; the reduced dims are ordered so the last one moves fastest. */
    int lane = 0;
    for (int d = 1; d < p->nkeep; d++)
        if (p->keep_in[d] < p->keep_in[lane]) lane = d;
    int64_t red_fastest = p->red_in[p->nred - 1];
    for (int d = 0; d < p->nred; d++)
        if (p->red_in[d] < red_fastest) red_fastest = p->red_in[d];
    bool outer = p->keep_shape[lane] > 1 && p->rsize > 1 && p->keep_in[lane] < red_fastest;
    return outer ? run_outer(p, job, lane) : run_inner(p, job);
}

/* ---- public reductions ---- */

/* Marks the dims to reduce (all when ndims == 0). A 0-d tensor accepts dim 0 or
 * -1 and has nothing to reduce. */
static hg_status resolve_dims(const char *op, const Tensor *x, int ndims, const int *dims,
                              bool *reduced) {
    char buf[128];
    for (int d = 0; d < TENSOR_MAX_DIMS; d++) reduced[d] = ndims == 0;
    if (ndims < 0 || ndims > (x->ndim > 0 ? x->ndim : 1))
        return hg_fail(HG_ERR_ARG, "%s: %d dims given for shape %s", op, ndims,
                       tensor_shape_str(x, buf, sizeof buf));
    if (ndims > 0 && dims == NULL) return hg_fail(HG_ERR_ARG, "%s: dims is NULL", op);
    for (int i = 0; i < ndims; i++) {
        int d = x->ndim == 0 ? (dims[i] == 0 || dims[i] == -1 ? 0 : -1)
                             : tensor_normalize_dim(dims[i], x->ndim);
        if (d < 0)
            return hg_fail(HG_ERR_DIM, "%s: dim %d out of range for shape %s", op, dims[i],
                           tensor_shape_str(x, buf, sizeof buf));
        if (reduced[d] && x->ndim > 0)
            return hg_fail(HG_ERR_DIM, "%s: dim %d repeated for shape %s", op, dims[i],
                           tensor_shape_str(x, buf, sizeof buf));
        reduced[d] = true;
    }
    if (x->ndim == 0) reduced[0] = false;
    return HG_OK;
}

typedef enum { OUT_SUM, OUT_MEAN, OUT_MAX, OUT_MIN, OUT_LOGSUMEXP } ReduceOp;

/* Reduces the marked dims of x; *argout (when not NULL) receives positions of
 * the extremes for OUT_MAX/OUT_MIN. */
static Tensor *reduce_marked(const char *op, const Tensor *x, const bool *reduced, bool keepdim,
                             ReduceOp rop, Tensor **argout) {
    int ndim = 0;
    int64_t shape[TENSOR_MAX_DIMS], rsize = 1;
    for (int d = 0; d < x->ndim; d++) {
        if (!reduced[d])
            shape[ndim++] = x->shape[d];
        else if (keepdim)
            shape[ndim++] = 1;
        if (reduced[d]) rsize *= x->shape[d];
    }
    if (rsize == 0 && (rop == OUT_MAX || rop == OUT_MIN)) {
        char buf[128];
        hg_fail(HG_ERR_SHAPE, "%s: cannot reduce over an empty dim of shape %s", op,
                tensor_shape_str(x, buf, sizeof buf));
        return NULL;
    }
    Tensor *out = tensor_empty(ndim, shape);
    Tensor *arg = argout ? tensor_empty(ndim, shape) : NULL;
    if (!out || (argout && !arg)) goto fail;
    int64_t nout = tensor_numel(out);
    if (nout > 0 && rsize == 0) { /* empty reductions: sum 0, mean 0/0, logsumexp log 0 */
        float v = rop == OUT_SUM ? 0.0f : rop == OUT_MEAN ? NAN : -INFINITY;
        float *o = tensor_data(out);
        for (int64_t i = 0; i < nout; i++) o[i] = v;
    } else if (nout > 0) {
        ReducePlan plan;
        plan_build(&plan, x, reduced, argout != NULL);
        ReduceJob job = {.kind = RED_SUM, .out = tensor_data(out), .divisor = 1.0};
        if (rop == OUT_MEAN) job.divisor = (double)rsize;
        if (rop == OUT_MAX || rop == OUT_LOGSUMEXP) job.kind = RED_MAX;
        if (rop == OUT_MIN) job.kind = RED_MIN;
        if (arg) job.arg = tensor_data(arg);
        if (reduce_run(&plan, &job) != HG_OK) goto fail;
        if (rop == OUT_LOGSUMEXP) {
            /* logsumexp = m + log sum exp(x - m) with m the max; an infinite or
             * NaN max makes the shift 0 so that all -inf gives -inf (log 0),
             * +inf gives +inf and NaN stays NaN. */
            float *shift = malloc(sizeof(float) * (size_t)nout);
            if (!shift) {
                hg_fail(HG_ERR_NOMEM, "%s: out of memory", op);
                goto fail;
            }
            for (int64_t i = 0; i < nout; i++) shift[i] = isfinite(job.out[i]) ? job.out[i] : 0;
            job.kind = RED_SUMEXP;
            job.shift = shift;
            hg_status status = reduce_run(&plan, &job);
            free(shift);
            if (status != HG_OK) goto fail;
        }
    }
    if (argout) *argout = arg;
    return out;
fail:
    tensor_free(out);
    tensor_free(arg);
    return NULL;
}

static Tensor *reduce_dims(const char *op, const Tensor *x, int ndims, const int *dims,
                           bool keepdim, ReduceOp rop) {
    if (!x) {
        hg_fail(HG_ERR_ARG, "%s: input tensor is NULL", op);
        return NULL;
    }
    bool reduced[TENSOR_MAX_DIMS];
    if (resolve_dims(op, x, ndims, dims, reduced) != HG_OK) return NULL;
    return reduce_marked(op, x, reduced, keepdim, rop, NULL);
}

Tensor *tensor_sum(const Tensor *x, int ndims, const int *dims, bool keepdim) {
    return reduce_dims("sum", x, ndims, dims, keepdim, OUT_SUM);
}

Tensor *tensor_mean(const Tensor *x, int ndims, const int *dims, bool keepdim) {
    return reduce_dims("mean", x, ndims, dims, keepdim, OUT_MEAN);
}

Tensor *tensor_max(const Tensor *x, int ndims, const int *dims, bool keepdim) {
    return reduce_dims("max", x, ndims, dims, keepdim, OUT_MAX);
}

Tensor *tensor_min(const Tensor *x, int ndims, const int *dims, bool keepdim) {
    return reduce_dims("min", x, ndims, dims, keepdim, OUT_MIN);
}

Tensor *tensor_logsumexp(const Tensor *x, int ndims, const int *dims, bool keepdim) {
    return reduce_dims("logsumexp", x, ndims, dims, keepdim, OUT_LOGSUMEXP);
}

Tensor *tensor_max_dim(const Tensor *x, int dim, bool keepdim, Tensor **argmax) {
    if (argmax) *argmax = NULL;
    if (!x) {
        hg_fail(HG_ERR_ARG, "max_dim: input tensor is NULL");
        return NULL;
    }
    bool reduced[TENSOR_MAX_DIMS];
    if (resolve_dims("max_dim", x, 1, &dim, reduced) != HG_OK) return NULL;
    Tensor *arg = NULL;
    Tensor *out = reduce_marked("max_dim", x, reduced, keepdim, OUT_MAX, &arg);
    if (argmax)
        *argmax = arg;
    else
        tensor_free(arg);
    return out;
}

double tensor_sum_all(const Tensor *x) {
    if (!x) {
        hg_fail(HG_ERR_ARG, "sum_all: input tensor is NULL");
        return NAN;
    }
    if (tensor_numel(x) == 0) return 0.0;
    bool reduced[TENSOR_MAX_DIMS];
    for (int d = 0; d < TENSOR_MAX_DIMS; d++) reduced[d] = true;
    ReducePlan plan;
    plan_build(&plan, x, reduced, false);
    double total = 0;
    ReduceJob job = {.kind = RED_SUM, .out_double = &total, .divisor = 1.0};
    if (reduce_run(&plan, &job) != HG_OK) return NAN;
    return total;
}

Tensor *tensor_sum_to_shape(const Tensor *x, int ndim, const int64_t *shape) {
    if (!x || (ndim > 0 && !shape) || ndim < 0 || ndim > TENSOR_MAX_DIMS) {
        hg_fail(HG_ERR_ARG, "sum_to_shape: NULL tensor or bad target rank %d", ndim);
        return NULL;
    }
    /* Target dims beyond x's rank must be leading 1s; each remaining target dim
     * equals x's or is 1 (summed with keepdim); x's extra leading dims are summed. */
    int extra = x->ndim - ndim;
    bool ok = true, reduced[TENSOR_MAX_DIMS] = {false};
    for (int i = 0; i < ndim; i++) {
        int d = i + extra;
        if (d < 0)
            ok = ok && shape[i] == 1;
        else if (shape[i] == 1 && x->shape[d] != 1)
            reduced[d] = true;
        else
            ok = ok && shape[i] == x->shape[d];
    }
    if (!ok) {
        char sx[128], st[128] = "[";
        for (int i = 0; i < ndim; i++) {
            size_t len = strlen(st);
            snprintf(st + len, sizeof st - len, "%s%lld", i ? "," : "", (long long)shape[i]);
        }
        strncat(st, "]", sizeof st - strlen(st) - 1);
        hg_fail(HG_ERR_SHAPE, "sum_to_shape: cannot sum %s down to %s",
                tensor_shape_str(x, sx, sizeof sx), st);
        return NULL;
    }
    for (int d = 0; d < extra; d++) reduced[d] = true;
    Tensor *kept = reduce_marked("sum_to_shape", x, reduced, true, OUT_SUM, NULL);
    if (!kept) return NULL;
    Tensor *out = tensor_reshape(kept, ndim, shape);
    tensor_free(kept);
    return out;
}

/* ---- softmax ---- */

/* One contiguous row of d elements: softmax(x) = exp(x - m) / sum exp(x - m),
 * log_softmax(x) = x - m - log sum exp(x - m), m = max x (NaN and all -inf rows
 * give NaN, as torch). */
static void softmax_row(const float *x, float *y, int64_t d, bool log_form) {
    float m = -INFINITY;
    for (int64_t i = 0; i < d; i++) m = x[i] > m ? x[i] : m;
    double sum = 0;
    for (int64_t i = 0; i < d; i++) {
        float e = expf(x[i] - m);
        if (!log_form) y[i] = e;
        sum += e;
    }
    if (log_form) {
        float lse = (float)log(sum);
        for (int64_t i = 0; i < d; i++) y[i] = (x[i] - m) - lse;
    } else {
        float inv = (float)(1.0 / sum);
        for (int64_t i = 0; i < d; i++) y[i] *= inv;
    }
}

/* nb lanes (consecutive, contiguous) of d elements each, `inner` apart. */
static void softmax_lanes(const float *x, float *y, int64_t d, int64_t inner, int64_t nb,
                          bool log_form) {
    float m[LANE_BLOCK];
    double sum[LANE_BLOCK];
    for (int64_t j = 0; j < nb; j++) {
        m[j] = -INFINITY;
        sum[j] = 0;
    }
    for (int64_t i = 0; i < d; i++)
        for (int64_t j = 0; j < nb; j++) m[j] = x[i * inner + j] > m[j] ? x[i * inner + j] : m[j];
    for (int64_t i = 0; i < d; i++)
        for (int64_t j = 0; j < nb; j++) {
            float e = expf(x[i * inner + j] - m[j]);
            if (!log_form) y[i * inner + j] = e;
            sum[j] += e;
        }
    float fac[LANE_BLOCK];
    for (int64_t j = 0; j < nb; j++) fac[j] = log_form ? (float)log(sum[j]) : (float)(1.0 / sum[j]);
    for (int64_t i = 0; i < d; i++)
        for (int64_t j = 0; j < nb; j++) {
            if (log_form)
                y[i * inner + j] = (x[i * inner + j] - m[j]) - fac[j];
            else
                y[i * inner + j] *= fac[j];
        }
}

typedef struct SoftmaxShape {
    const float *in;
    float *out;
    int64_t len, inner, nblocks; /* (outer, len, inner) contiguous */
    bool log_form;
} SoftmaxShape;

/* One row (inner == 1) or one block of lanes of one outer index. */
static void softmax_item(const SoftmaxShape *sh, int64_t item) {
    if (sh->inner == 1) {
        softmax_row(sh->in + item * sh->len, sh->out + item * sh->len, sh->len, sh->log_form);
        return;
    }
    int64_t o = item / sh->nblocks, j0 = item % sh->nblocks * LANE_BLOCK;
    int64_t nb = sh->inner - j0 < LANE_BLOCK ? sh->inner - j0 : LANE_BLOCK;
    int64_t at = o * sh->len * sh->inner + j0;
    softmax_lanes(sh->in + at, sh->out + at, sh->len, sh->inner, nb, sh->log_form);
}

static Tensor *softmax_impl(const char *op, const Tensor *x, int dim, bool log_form) {
    char buf[128];
    if (!x) {
        hg_fail(HG_ERR_ARG, "%s: input tensor is NULL", op);
        return NULL;
    }
    int d = x->ndim == 0 ? (dim == 0 || dim == -1 ? 0 : -1) : tensor_normalize_dim(dim, x->ndim);
    if (d < 0) {
        hg_fail(HG_ERR_DIM, "%s: dim %d out of range for shape %s", op, dim,
                tensor_shape_str(x, buf, sizeof buf));
        return NULL;
    }
    Tensor *xc = tensor_contiguous(x);
    if (!xc) return NULL;
    Tensor *out = tensor_empty(x->ndim, x->shape);
    if (!out) {
        tensor_free(xc);
        return NULL;
    }
    int64_t outer = 1, len = x->ndim ? x->shape[d] : 1, inner = 1;
    for (int i = 0; i < d; i++) outer *= x->shape[i];
    for (int i = d + 1; i < x->ndim; i++) inner *= x->shape[i];
    const float *in = tensor_data(xc);
    float *y = tensor_data(out);
    bool parallel = outer * len * inner > REDUCE_PARALLEL_MIN;
    SoftmaxShape sh = {in, y, len, inner, (inner + LANE_BLOCK - 1) / LANE_BLOCK, log_form};
    int64_t items = inner == 1 ? outer : outer * sh.nblocks;
    if (parallel) {
#pragma omp parallel for schedule(static)
        for (int64_t item = 0; item < items; item++) softmax_item(&sh, item);
    } else {
        for (int64_t item = 0; item < items; item++) softmax_item(&sh, item);
    }
    tensor_free(xc);
    return out;
}

Tensor *tensor_softmax(const Tensor *x, int dim) {
    return softmax_impl("softmax", x, dim, false);
}

Tensor *tensor_log_softmax(const Tensor *x, int dim) {
    return softmax_impl("log_softmax", x, dim, true);
}
