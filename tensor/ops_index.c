/* Joining, splitting and indexing: concat, split, index_select, gather,
 * scatter_add, one_hot (semantics of the torch functions of the same names). */
#include "tensor/ops.h"

#include <stdio.h>
#include <string.h>

/* Loops above this many elements use OpenMP threads. */
#define PARALLEL_MIN ((int64_t)1 << 15)

/* Re-labels the last error with this op's name (e.g. an allocation that failed
 * inside tensor_empty), keeping its status. */
static void relabel_error(const char *op) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", hg_last_error());
    hg_fail(hg_last_status(), "%s: %s", op, msg);
}

static int resolve_dim(const char *op, const Tensor *t, int dim) {
    int d = tensor_normalize_dim(dim, t->ndim);
    if (d < 0) {
        char buf[200];
        hg_fail(HG_ERR_DIM, "%s: dim %d out of range for shape %s", op, dim,
                tensor_shape_str(t, buf, sizeof buf));
    }
    return d;
}

static const char *dims_str(int ndim, const int64_t *shape, char *buf, size_t size) {
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < ndim && used < size; i++)
        used +=
            (size_t)snprintf(buf + used, size - used, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (used < size) snprintf(buf + used, size - used, "]");
    return buf;
}

/* Coordinates (all dims but `dim`) of line `line` when the lines along `dim` of
 * `shape` are numbered row-major; returns sum coord * stride for two layouts. */
static void line_offsets(int ndim, const int64_t *shape, int dim, int64_t line,
                         const int64_t *stride_a, int64_t *off_a, const int64_t *stride_b,
                         int64_t *off_b) {
    int64_t a = 0, b = 0;
    for (int d = ndim - 1; d >= 0; d--) {
        if (d == dim) continue;
        int64_t c = line % shape[d];
        line /= shape[d];
        a += c * stride_a[d];
        b += c * stride_b[d];
    }
    *off_a = a;
    *off_b = b;
}

static void row_major_strides(int ndim, const int64_t *shape, int64_t *stride) {
    int64_t s = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        stride[d] = s;
        s *= shape[d] > 1 ? shape[d] : 1;
    }
}

/* ---- concat / split ---- */

Tensor *tensor_concat(int count, const Tensor *const *parts, int dim) {
    if (count < 1 || !parts) return hg_fail(HG_ERR_ARG, "concat: no tensors given"), NULL;
    for (int i = 0; i < count; i++)
        if (!parts[i]) return hg_fail(HG_ERR_ARG, "concat: part %d is NULL", i), NULL;
    const Tensor *first = parts[0];
    int d = resolve_dim("concat", first, dim);
    if (d < 0) return NULL;
    int64_t shape[TENSOR_MAX_DIMS];
    memcpy(shape, first->shape, sizeof shape);
    shape[d] = 0;
    for (int i = 0; i < count; i++) {
        const Tensor *p = parts[i];
        bool ok = p->ndim == first->ndim;
        for (int j = 0; ok && j < p->ndim; j++) ok = j == d || p->shape[j] == first->shape[j];
        if (!ok) {
            char sa[200], sb[200];
            return hg_fail(HG_ERR_SHAPE,
                           "concat: part %d has shape %s, incompatible with %s along dim %d", i,
                           tensor_shape_str(p, sa, sizeof sa),
                           tensor_shape_str(first, sb, sizeof sb), dim),
                   NULL;
        }
        shape[d] += p->shape[d];
    }
    Tensor *out = tensor_empty(first->ndim, shape);
    if (!out) return relabel_error("concat"), NULL;
    int64_t start = 0;
    for (int i = 0; i < count; i++) {
        int64_t len = parts[i]->shape[d];
        if (len == 0) continue;
        Tensor *slot = tensor_narrow(out, d, start, len);
        hg_status st = slot ? tensor_copy_(slot, parts[i]) : hg_last_status();
        tensor_free(slot);
        if (st != HG_OK) {
            tensor_free(out);
            return NULL;
        }
        start += len;
    }
    return out;
}

hg_status tensor_split(const Tensor *x, int dim, int count, const int64_t *sizes, Tensor **parts) {
    if (!x) return hg_fail(HG_ERR_ARG, "split: tensor is NULL");
    if (count < 0 || (count > 0 && (!sizes || !parts)))
        return hg_fail(HG_ERR_ARG, "split: invalid count %d or NULL sizes/parts", count);
    int d = resolve_dim("split", x, dim);
    if (d < 0) return hg_last_status();
    int64_t total = 0;
    bool ok = true;
    for (int i = 0; i < count && ok; i++) {
        ok = sizes[i] >= 0 && sizes[i] <= x->shape[d] - total;
        if (ok) total += sizes[i];
    }
    if (!ok || total != x->shape[d]) {
        char sa[200], sb[200];
        return hg_fail(HG_ERR_SHAPE, "split: sizes %s do not add up to dim %d of %s",
                       dims_str(count < TENSOR_MAX_DIMS * 4 ? count : TENSOR_MAX_DIMS * 4, sizes,
                                sb, sizeof sb),
                       dim, tensor_shape_str(x, sa, sizeof sa));
    }
    for (int i = 0; i < count; i++) parts[i] = NULL;
    int64_t start = 0;
    for (int i = 0; i < count; i++) {
        parts[i] = tensor_narrow(x, d, start, sizes[i]);
        if (!parts[i]) {
            for (int j = 0; j < i; j++) {
                tensor_free(parts[j]);
                parts[j] = NULL;
            }
            return hg_last_status();
        }
        start += sizes[i];
    }
    return HG_OK;
}

/* ---- index_select ---- */

Tensor *tensor_index_select(const Tensor *x, int dim, int64_t count, const int64_t *index) {
    if (!x) return hg_fail(HG_ERR_ARG, "index_select: tensor is NULL"), NULL;
    int d = resolve_dim("index_select", x, dim);
    if (d < 0) return NULL;
    if (count < 0 || (count > 0 && !index))
        return hg_fail(HG_ERR_ARG, "index_select: invalid count %lld or NULL index",
                       (long long)count),
               NULL;
    int64_t size = x->shape[d];
    for (int64_t i = 0; i < count; i++) {
        if (index[i] < 0 || index[i] >= size) {
            char buf[200];
            return hg_fail(HG_ERR_ARG,
                           "index_select: index[%lld] = %lld out of range for dim %d of %s",
                           (long long)i, (long long)index[i], dim,
                           tensor_shape_str(x, buf, sizeof buf)),
                   NULL;
        }
    }
    int64_t shape[TENSOR_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[d] = count;
    Tensor *out = tensor_empty(x->ndim, shape);
    if (!out) return relabel_error("index_select"), NULL;
    int64_t n = tensor_numel(out);
    if (n == 0) return out;
    Tensor *xc = tensor_contiguous(x);
    if (!xc) {
        tensor_free(out);
        return NULL;
    }
    /* Both as (outer, size or count, inner) row-major blocks. */
    int64_t outer = 1, inner = 1;
    for (int j = 0; j < d; j++) outer *= x->shape[j];
    for (int j = d + 1; j < x->ndim; j++) inner *= x->shape[j];
    const float *src = tensor_data(xc);
    float *dst = tensor_data(out);
    int64_t rows = outer * count;
#pragma omp parallel for schedule(static) if (n > PARALLEL_MIN)
    for (int64_t r = 0; r < rows; r++) {
        int64_t o = r / count, i = r % count;
        memcpy(dst + r * inner, src + (o * size + index[i]) * inner, (size_t)inner * sizeof(float));
    }
    tensor_free(xc);
    return out;
}

/* ---- gather / scatter_add ---- */

/* Checks an index array of shape `ishape` against a tensor of shape `tshape` for
 * gather/scatter: same ndim, ishape[j] <= tshape[j] for j != dim, every entry in
 * [0, tshape[dim]). */
static hg_status check_index(const char *op, int ndim, const int64_t *tshape, int dim,
                             int index_ndim, const int64_t *ishape, const int64_t *index,
                             const char *what) {
    char sa[200], sb[200];
    if (index_ndim != ndim || (ndim > 0 && !ishape))
        return hg_fail(HG_ERR_SHAPE, "%s: index has %d dims, %s has %d", op, index_ndim, what,
                       ndim);
    int64_t n = 1;
    for (int j = 0; j < ndim; j++) {
        if (ishape[j] < 0 || (j != dim && ishape[j] > tshape[j]))
            return hg_fail(HG_ERR_SHAPE, "%s: index shape %s does not fit %s shape %s (dim %d)", op,
                           dims_str(ndim, ishape, sa, sizeof sa), what,
                           dims_str(ndim, tshape, sb, sizeof sb), dim);
        n *= ishape[j];
    }
    if (n > 0 && !index) return hg_fail(HG_ERR_ARG, "%s: index is NULL", op);
    for (int64_t i = 0; i < n; i++)
        if (index[i] < 0 || index[i] >= tshape[dim])
            return hg_fail(HG_ERR_ARG, "%s: index[%lld] = %lld out of range for dim %d of %s %s",
                           op, (long long)i, (long long)index[i], dim, what,
                           dims_str(ndim, tshape, sb, sizeof sb));
    return HG_OK;
}

Tensor *tensor_gather(const Tensor *x, int dim, int index_ndim, const int64_t *index_shape,
                      const int64_t *index) {
    if (!x) return hg_fail(HG_ERR_ARG, "gather: tensor is NULL"), NULL;
    int d = resolve_dim("gather", x, dim);
    if (d < 0) return NULL;
    if (check_index("gather", x->ndim, x->shape, d, index_ndim, index_shape, index, "input") !=
        HG_OK)
        return NULL;
    Tensor *out = tensor_empty(index_ndim, index_shape);
    if (!out) return relabel_error("gather"), NULL;
    int64_t n = tensor_numel(out);
    if (n == 0) return out;
    /* Lines along `dim`: out and index are row-major in index_shape, x strided. */
    int ndim = x->ndim;
    int64_t len = index_shape[d], lines = n / len;
    int64_t istride[TENSOR_MAX_DIMS];
    row_major_strides(ndim, index_shape, istride);
    const float *src = tensor_data(x);
    float *dst = tensor_data(out);
    int64_t xs = x->stride[d], is = istride[d];
#pragma omp parallel for schedule(static) if (n > PARALLEL_MIN)
    for (int64_t l = 0; l < lines; l++) {
        int64_t xoff, ioff;
        line_offsets(ndim, index_shape, d, l, x->stride, &xoff, istride, &ioff);
        for (int64_t j = 0; j < len; j++) {
            int64_t p = ioff + j * is;
            dst[p] = src[xoff + index[p] * xs];
        }
    }
    return out;
}

Tensor *tensor_scatter_add(int ndim, const int64_t *shape, int dim, const Tensor *src,
                           const int64_t *index) {
    if (!src) return hg_fail(HG_ERR_ARG, "scatter_add: src is NULL"), NULL;
    Tensor *out = tensor_zeros(ndim, shape);
    if (!out) return relabel_error("scatter_add"), NULL;
    int d = resolve_dim("scatter_add", out, dim);
    if (d < 0 || check_index("scatter_add", ndim, shape, d, src->ndim, src->shape, index,
                             "output") != HG_OK) {
        tensor_free(out);
        return NULL;
    }
    int64_t n = tensor_numel(src);
    if (n == 0) return out;
    /* Lines along `dim` with different other coordinates write to disjoint
     * outputs, so they run in parallel; each line adds in order (deterministic). */
    int64_t len = src->shape[d], lines = n / len;
    int64_t istride[TENSOR_MAX_DIMS];
    row_major_strides(ndim, src->shape, istride);
    const float *s = tensor_data(src);
    float *o = tensor_data(out);
    int64_t os = out->stride[d], is = istride[d], ss = src->stride[d];
#pragma omp parallel for schedule(static) if (n > PARALLEL_MIN)
    for (int64_t l = 0; l < lines; l++) {
        int64_t soff, ioff, ooff, unused;
        line_offsets(ndim, src->shape, d, l, src->stride, &soff, istride, &ioff);
        line_offsets(ndim, src->shape, d, l, out->stride, &ooff, istride, &unused);
        for (int64_t j = 0; j < len; j++) o[ooff + index[ioff + j * is] * os] += s[soff + j * ss];
    }
    return out;
}

/* ---- one_hot ---- */

Tensor *tensor_one_hot(int64_t n, const int64_t *labels, int64_t classes) {
    if (n < 0 || classes < 0)
        return hg_fail(HG_ERR_ARG, "one_hot: invalid n %lld or classes %lld", (long long)n,
                       (long long)classes),
               NULL;
    if (n > 0 && !labels) return hg_fail(HG_ERR_ARG, "one_hot: labels is NULL"), NULL;
    for (int64_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= classes)
            return hg_fail(HG_ERR_ARG, "one_hot: labels[%lld] = %lld outside [0,%lld)",
                           (long long)i, (long long)labels[i], (long long)classes),
                   NULL;
    Tensor *out = tensor_zeros(2, (const int64_t[]){n, classes});
    if (!out) return relabel_error("one_hot"), NULL;
    float *p = tensor_data(out);
    for (int64_t i = 0; i < n; i++) p[i * classes + labels[i]] = 1.0f;
    return out;
}
