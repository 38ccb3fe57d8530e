/* Tensor creation, reference-counted storage, views and strided copies. */
#include "tensor/tensor.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/storage_pool.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* Largest element count accepted for any tensor (2^40 floats = 4 TiB). Keeps
 * every byte count and offset far from int64/size_t overflow. */
#define MAX_NUMEL ((int64_t)1 << 40)
/* Copies below this many elements stay on one thread. */
#define PARALLEL_COPY_MIN ((int64_t)1 << 16)

/* ---- shape helpers ---- */

static const char *shape_to_str(int ndim, const int64_t *shape, char *buf, size_t size) {
    if (size == 0) return buf;
    size_t used = 0;
    buf[0] = '\0';
    int n = snprintf(buf, size, "[");
    used = n > 0 ? (size_t)n : 0;
    for (int i = 0; i < ndim && used < size; i++) {
        n = snprintf(buf + used, size - used, i ? ",%lld" : "%lld", (long long)shape[i]);
        if (n < 0) break;
        used += (size_t)n;
    }
    if (used < size) snprintf(buf + used, size - used, "]");
    return buf;
}

/* Checks ndim and sizes and computes the element count. */
static hg_status check_shape(const char *op, int ndim, const int64_t *shape, int64_t *numel_out) {
    if (ndim < 0 || ndim > TENSOR_MAX_DIMS)
        return hg_fail(HG_ERR_ARG, "%s: ndim %d outside [0,%d]", op, ndim, TENSOR_MAX_DIMS);
    if (ndim > 0 && shape == NULL) return hg_fail(HG_ERR_ARG, "%s: shape is NULL", op);
    char buf[200];
    int64_t numel = 1;
    bool too_big = false;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return hg_fail(HG_ERR_SHAPE, "%s: negative size in shape %s", op,
                           shape_to_str(ndim, shape, buf, sizeof buf));
        if (shape[i] > MAX_NUMEL) too_big = true;
    }
    /* Multiply in an order that cannot overflow: every factor <= 2^40 and the
     * running product is checked against 2^40 before each step. */
    for (int i = 0; i < ndim && !too_big; i++) {
        if (shape[i] == 0) {
            numel = 0;
            continue;
        }
        if (numel > MAX_NUMEL / shape[i])
            too_big = true;
        else
            numel *= shape[i];
    }
    if (too_big) {
        /* A zero anywhere makes the count 0, but a single size > 2^40 is still rejected. */
        return hg_fail(HG_ERR_SHAPE, "%s: shape %s has more than 2^40 elements", op,
                       shape_to_str(ndim, shape, buf, sizeof buf));
    }
    if (numel_out) *numel_out = numel;
    return HG_OK;
}

static void contiguous_strides(int ndim, const int64_t *shape, int64_t *stride) {
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        stride[i] = s;
        s *= shape[i] > 1 ? shape[i] : 1;
    }
}

static int64_t shape_numel(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

/* ---- storage and tensor structs ---- */

static TensorStorage *storage_new(const char *op, int64_t numel) {
    TensorStorage *s = malloc(sizeof *s);
    if (!s) {
        hg_fail(HG_ERR_NOMEM, "%s: out of memory allocating %zu bytes", op, sizeof *s);
        return NULL;
    }
    size_t bytes = (size_t)numel * sizeof(float);
    /* Large blocks come from (and go back to) the cache of storage_pool.h, so
     * the temporaries of every op reuse pages that are already mapped. */
    s->data = storage_pool_alloc(bytes);
    if (!s->data) {
        free(s);
        hg_fail(HG_ERR_NOMEM, "%s: out of memory allocating %zu bytes", op, bytes);
        return NULL;
    }
    s->capacity = numel;
    s->refcount = 0;
    s->owns_data = true;
    return s;
}

static void storage_release(TensorStorage *s) {
    if (!s) return;
    if (--s->refcount > 0) return;
    if (s->owns_data) storage_pool_free(s->data, (size_t)s->capacity * sizeof(float));
    free(s);
}

/* A new Tensor struct viewing `storage` (takes a reference). */
static Tensor *view_new(const char *op, TensorStorage *storage, int64_t offset, int ndim,
                        const int64_t *shape, const int64_t *stride) {
    Tensor *t = malloc(sizeof *t);
    if (!t) {
        hg_fail(HG_ERR_NOMEM, "%s: out of memory allocating %zu bytes", op, sizeof *t);
        return NULL;
    }
    memset(t, 0, sizeof *t);
    t->storage = storage;
    storage->refcount++;
    t->offset = offset;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        t->stride[i] = stride[i];
    }
    return t;
}

/* A new contiguous, uninitialized tensor; `op` names the caller in errors. */
static Tensor *new_contiguous(const char *op, int ndim, const int64_t *shape) {
    int64_t numel = 0;
    if (check_shape(op, ndim, shape, &numel) != HG_OK) return NULL;
    TensorStorage *s = storage_new(op, numel);
    if (!s) return NULL;
    int64_t stride[TENSOR_MAX_DIMS];
    contiguous_strides(ndim, shape, stride);
    Tensor *t = view_new(op, s, 0, ndim, shape, stride);
    if (!t) {
        s->refcount = 1;
        storage_release(s);
    }
    return t;
}

/* ---- strided copy kernel ---- */

/* Merges adjacent dims that are contiguous with each other in both operands and
 * drops size-1 dims, so that e.g. a contiguous copy becomes one 1-d run. Returns
 * the new ndim (0 means a single element). */
static int coalesce(int ndim, int64_t *shape, int64_t *sa, int64_t *sb) {
    int k = -1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] == 1) continue;
        if (k >= 0 && sa[k] == shape[d] * sa[d] && sb[k] == shape[d] * sb[d]) {
            shape[k] *= shape[d];
            sa[k] = sa[d];
            sb[k] = sb[d];
        } else {
            k++;
            shape[k] = shape[d];
            sa[k] = sa[d];
            sb[k] = sb[d];
        }
    }
    return k + 1;
}

static void copy_run(float *dst, int64_t ds, const float *src, int64_t ss, int64_t n) {
    if (ds == 1 && ss == 1) {
        memcpy(dst, src, (size_t)n * sizeof(float));
    } else if (ss == 0) {
        float v = *src;
        if (ds == 1)
            for (int64_t i = 0; i < n; i++) dst[i] = v;
        else
            for (int64_t i = 0; i < n; i++) dst[i * ds] = v;
    } else if (ds == 1) {
        for (int64_t i = 0; i < n; i++) dst[i] = src[i * ss];
    } else {
        for (int64_t i = 0; i < n; i++) dst[i * ds] = src[i * ss];
    }
}

/* Copies rows [begin, end) where a row is the innermost dim and the rows are
 * numbered row-major over the outer dims. */
static void copy_rows(int ndim, const int64_t *shape, float *dst, const int64_t *ds,
                      const float *src, const int64_t *ss, int64_t begin, int64_t end) {
    int outer = ndim - 1;
    int64_t idx[TENSOR_MAX_DIMS] = {0};
    int64_t rem = begin, doff = 0, soff = 0;
    for (int d = outer - 1; d >= 0; d--) {
        idx[d] = rem % shape[d];
        rem /= shape[d];
        doff += idx[d] * ds[d];
        soff += idx[d] * ss[d];
    }
    int64_t n = shape[outer];
    for (int64_t r = begin; r < end; r++) {
        copy_run(dst + doff, ds[outer], src + soff, ss[outer], n);
        /* Advance the outer index like an odometer. */
        for (int d = outer - 1; d >= 0; d--) {
            idx[d]++;
            doff += ds[d];
            soff += ss[d];
            if (idx[d] < shape[d]) break;
            doff -= idx[d] * ds[d];
            soff -= idx[d] * ss[d];
            idx[d] = 0;
        }
    }
}

/* Copies where one side is contiguous along the last dim and the other along the
 * second-to-last (a transpose of the last two dims, e.g. NCHW -> NHWC): square
 * tiles keep both the reads and the writes within a few cache lines. */
#define COPY_TILE 32
static void copy_tiled(int ndim, const int64_t *shape, float *dst, const int64_t *ds,
                       const float *src, const int64_t *ss) {
    const int md = ndim - 2, nd = ndim - 1;
    const int64_t m = shape[md], n = shape[nd];
    int64_t batches = 1;
    for (int d = 0; d < md; d++) batches *= shape[d];
    const int64_t m_tiles = (m + COPY_TILE - 1) / COPY_TILE;
    const int64_t jobs = batches * m_tiles;
#pragma omp parallel for schedule(static) if (batches * m * n >= PARALLEL_COPY_MIN)
    for (int64_t job = 0; job < jobs; job++) {
        int64_t rem = job / m_tiles, doff = 0, soff = 0;
        for (int d = md - 1; d >= 0; d--) {
            int64_t c = rem % shape[d];
            rem /= shape[d];
            doff += c * ds[d];
            soff += c * ss[d];
        }
        int64_t i0 = (job % m_tiles) * COPY_TILE;
        int64_t i1 = i0 + COPY_TILE < m ? i0 + COPY_TILE : m;
        for (int64_t j0 = 0; j0 < n; j0 += COPY_TILE) {
            int64_t j1 = j0 + COPY_TILE < n ? j0 + COPY_TILE : n;
            for (int64_t i = i0; i < i1; i++) {
                float *drow = dst + doff + i * ds[md];
                const float *srow = src + soff + i * ss[md];
                for (int64_t j = j0; j < j1; j++) drow[j * ds[nd]] = srow[j * ss[nd]];
            }
        }
    }
}

/* dst[i...] = src[i...] over `shape`; shapes already equal (src strides may be 0). */
static void strided_copy(int ndim, const int64_t *shape_in, float *dst, const int64_t *dst_stride,
                         const float *src, const int64_t *src_stride) {
    int64_t shape[TENSOR_MAX_DIMS], ds[TENSOR_MAX_DIMS], ss[TENSOR_MAX_DIMS];
    for (int d = 0; d < ndim; d++) {
        if (shape_in[d] == 0) return;
        shape[d] = shape_in[d];
        ds[d] = dst_stride[d];
        ss[d] = src_stride[d];
    }
    ndim = coalesce(ndim, shape, ds, ss);
    if (ndim == 0) {
        *dst = *src;
        return;
    }
    if (ndim >= 2 && ((ss[ndim - 2] == 1 && ss[ndim - 1] > 1 && ds[ndim - 1] == 1) ||
                      (ds[ndim - 2] == 1 && ds[ndim - 1] > 1 && ss[ndim - 1] == 1))) {
        copy_tiled(ndim, shape, dst, ds, src, ss);
        return;
    }
    int64_t rows = 1;
    for (int d = 0; d < ndim - 1; d++) rows *= shape[d];
    int64_t total = rows * shape[ndim - 1];
    if (total < PARALLEL_COPY_MIN || rows == 1) {
        copy_rows(ndim, shape, dst, ds, src, ss, 0, rows);
        return;
    }
#pragma omp parallel
    {
        int nth = 1, tid = 0;
#ifdef _OPENMP
        nth = omp_get_num_threads();
        tid = omp_get_thread_num();
#endif
        int64_t begin = rows * tid / nth, end = rows * (tid + 1) / nth;
        if (begin < end) copy_rows(ndim, shape, dst, ds, src, ss, begin, end);
    }
}

/* [lo, hi] element offsets touched by a non-empty view. */
static void view_extent(const Tensor *t, int64_t *lo, int64_t *hi) {
    *lo = *hi = t->offset;
    for (int d = 0; d < t->ndim; d++) {
        int64_t span = (t->shape[d] - 1) * t->stride[d];
        if (span < 0)
            *lo += span;
        else
            *hi += span;
    }
}

/* ---- creation ---- */

Tensor *tensor_empty(int ndim, const int64_t *shape) {
    return new_contiguous("empty", ndim, shape);
}

static Tensor *full_named(const char *op, int ndim, const int64_t *shape, float value) {
    Tensor *t = new_contiguous(op, ndim, shape);
    if (!t) return NULL;
    tensor_fill_(t, value);
    return t;
}

Tensor *tensor_zeros(int ndim, const int64_t *shape) {
    return full_named("zeros", ndim, shape, 0.0f);
}

Tensor *tensor_ones(int ndim, const int64_t *shape) {
    return full_named("ones", ndim, shape, 1.0f);
}

Tensor *tensor_full(int ndim, const int64_t *shape, float value) {
    return full_named("full", ndim, shape, value);
}

Tensor *tensor_scalar(float value) {
    return full_named("scalar", 0, NULL, value);
}

Tensor *tensor_arange(float start, float stop, float step) {
    if (!isfinite(start) || !isfinite(stop) || !isfinite(step))
        return hg_fail(HG_ERR_ARG, "arange: non-finite start %g, stop %g or step %g", start, stop,
                       step),
               NULL;
    if (step == 0) return hg_fail(HG_ERR_ARG, "arange: step is 0"), NULL;
    double count = ceil(((double)stop - start) / step);
    if (count < 0) count = 0;
    if (count > (double)MAX_NUMEL)
        return hg_fail(HG_ERR_SHAPE, "arange: %g elements is more than 2^40", count), NULL;
    int64_t n = (int64_t)count;
    Tensor *t = new_contiguous("arange", 1, &n);
    if (!t) return NULL;
    float *p = tensor_data(t);
    for (int64_t i = 0; i < n; i++) p[i] = (float)(start + (double)i * step);
    return t;
}

Tensor *tensor_from_data(int ndim, const int64_t *shape, const float *data) {
    int64_t numel = 0;
    if (check_shape("from_data", ndim, shape, &numel) != HG_OK) return NULL;
    if (numel > 0 && !data) return hg_fail(HG_ERR_ARG, "from_data: data is NULL"), NULL;
    Tensor *t = new_contiguous("from_data", ndim, shape);
    if (!t) return NULL;
    if (numel > 0) memcpy(tensor_data(t), data, (size_t)numel * sizeof(float));
    return t;
}

Tensor *tensor_wrap(int ndim, const int64_t *shape, float *data) {
    int64_t numel = 0;
    if (check_shape("wrap", ndim, shape, &numel) != HG_OK) return NULL;
    if (numel > 0 && !data) return hg_fail(HG_ERR_ARG, "wrap: data is NULL"), NULL;
    TensorStorage *s = malloc(sizeof *s);
    if (!s)
        return hg_fail(HG_ERR_NOMEM, "wrap: out of memory allocating %zu bytes", sizeof *s), NULL;
    s->data = data;
    s->capacity = numel;
    s->refcount = 0;
    s->owns_data = false;
    int64_t stride[TENSOR_MAX_DIMS];
    contiguous_strides(ndim, shape, stride);
    Tensor *t = view_new("wrap", s, 0, ndim, shape, stride);
    if (!t) free(s);
    return t;
}

Tensor *tensor_empty_like(const Tensor *t) {
    if (!t) return hg_fail(HG_ERR_ARG, "empty_like: tensor is NULL"), NULL;
    return new_contiguous("empty_like", t->ndim, t->shape);
}

Tensor *tensor_zeros_like(const Tensor *t) {
    if (!t) return hg_fail(HG_ERR_ARG, "zeros_like: tensor is NULL"), NULL;
    Tensor *z = new_contiguous("zeros_like", t->ndim, t->shape);
    if (z) tensor_fill_(z, 0.0f);
    return z;
}

/* ---- ownership ---- */

void tensor_free(Tensor *t) {
    if (!t) return;
    storage_release(t->storage);
    free(t);
}

Tensor *tensor_ref(const Tensor *t) {
    if (!t) return hg_fail(HG_ERR_ARG, "ref: tensor is NULL"), NULL;
    return view_new("ref", t->storage, t->offset, t->ndim, t->shape, t->stride);
}

static Tensor *clone_named(const char *op, const Tensor *t) {
    if (!t) return hg_fail(HG_ERR_ARG, "%s: tensor is NULL", op), NULL;
    Tensor *c = new_contiguous(op, t->ndim, t->shape);
    if (!c) return NULL;
    strided_copy(t->ndim, t->shape, tensor_data(c), c->stride, tensor_data(t), t->stride);
    return c;
}

Tensor *tensor_clone(const Tensor *t) {
    return clone_named("clone", t);
}

/* ---- queries ---- */

int64_t tensor_numel(const Tensor *t) {
    return t ? shape_numel(t->ndim, t->shape) : 0;
}

bool tensor_is_contiguous(const Tensor *t) {
    if (!t) return false;
    if (tensor_numel(t) == 0) return true;
    int64_t expected = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] == 1) continue;
        if (t->stride[d] != expected) return false;
        expected *= t->shape[d];
    }
    return true;
}

bool tensor_same_shape(const Tensor *a, const Tensor *b) {
    if (!a || !b || a->ndim != b->ndim) return false;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return false;
    return true;
}

float *tensor_data(const Tensor *t) {
    return t ? t->storage->data + t->offset : NULL;
}

static int64_t element_offset(const Tensor *t, const int64_t *index) {
    int64_t off = t->offset;
    for (int d = 0; d < t->ndim; d++) {
        assert(index[d] >= 0 && index[d] < t->shape[d]);
        off += index[d] * t->stride[d];
    }
    return off;
}

float tensor_get(const Tensor *t, const int64_t *index) {
    return t->storage->data[element_offset(t, index)];
}

void tensor_set(Tensor *t, const int64_t *index, float value) {
    t->storage->data[element_offset(t, index)] = value;
}

const char *tensor_shape_str(const Tensor *t, char *buf, size_t size) {
    if (!t) {
        if (size) snprintf(buf, size, "(null)");
        return buf;
    }
    return shape_to_str(t->ndim, t->shape, buf, size);
}

int tensor_normalize_dim(int dim, int ndim) {
    if (dim < 0) dim += ndim;
    return dim >= 0 && dim < ndim ? dim : -1;
}

/* Resolves `dim` or records "op: dim D out of range for shape S". */
static int resolve_dim(const char *op, const Tensor *t, int dim) {
    int d = tensor_normalize_dim(dim, t->ndim);
    if (d < 0) {
        char buf[200];
        hg_fail(HG_ERR_DIM, "%s: dim %d out of range for shape %s", op, dim,
                tensor_shape_str(t, buf, sizeof buf));
    }
    return d;
}

/* ---- views ---- */

/* Strides that let a view with `t`'s elements have shape `shape`, following the
 * rule of torch.Tensor.view: the old dims are split into runs that are contiguous
 * with each other ("chunks"), and each chunk must be exactly covered by a run of
 * new dims. Returns false when no such strides exist. */
static bool view_strides(const Tensor *t, int ndim, const int64_t *shape, int64_t *stride) {
    if (tensor_numel(t) == 0 || t->ndim == 0) {
        contiguous_strides(ndim, shape, stride);
        return true;
    }
    int nd = ndim - 1; /* next new dim to assign, inner to outer */
    int64_t chunk_stride =
        t->stride[t->ndim - 1]; /* stride of the innermost element of the chunk */
    int64_t chunk_numel = 1, view_numel = 1;
    for (int od = t->ndim - 1; od >= 0; od--) {
        chunk_numel *= t->shape[od];
        bool chunk_ends =
            od == 0 || (t->shape[od - 1] != 1 && t->stride[od - 1] != chunk_numel * chunk_stride);
        if (!chunk_ends) continue;
        while (nd >= 0 && (view_numel < chunk_numel || shape[nd] == 1)) {
            stride[nd] = view_numel * chunk_stride;
            view_numel *= shape[nd];
            nd--;
        }
        if (view_numel != chunk_numel) return false;
        if (od > 0) {
            chunk_stride = t->stride[od - 1];
            chunk_numel = 1;
            view_numel = 1;
        }
    }
    return nd == -1;
}

Tensor *tensor_reshape(const Tensor *t, int ndim, const int64_t *shape_in) {
    if (!t) return hg_fail(HG_ERR_ARG, "reshape: tensor is NULL"), NULL;
    if (ndim < 0 || ndim > TENSOR_MAX_DIMS)
        return hg_fail(HG_ERR_ARG, "reshape: ndim %d outside [0,%d]", ndim, TENSOR_MAX_DIMS), NULL;
    if (ndim > 0 && !shape_in) return hg_fail(HG_ERR_ARG, "reshape: shape is NULL"), NULL;
    char sa[200], sb[200];
    int64_t shape[TENSOR_MAX_DIMS] = {0};
    int infer = -1;
    int64_t known = 1;
    bool zero = false;
    for (int d = 0; d < ndim; d++) {
        shape[d] = shape_in[d];
        if (shape[d] == -1) {
            if (infer >= 0)
                return hg_fail(HG_ERR_SHAPE, "reshape: more than one -1 in shape %s",
                               shape_to_str(ndim, shape_in, sa, sizeof sa)),
                       NULL;
            infer = d;
        } else if (shape[d] < 0) {
            return hg_fail(HG_ERR_SHAPE, "reshape: negative size in shape %s",
                           shape_to_str(ndim, shape_in, sa, sizeof sa)),
                   NULL;
        } else if (shape[d] == 0) {
            zero = true;
        } else if (shape[d] > MAX_NUMEL || known > MAX_NUMEL / shape[d]) {
            return hg_fail(HG_ERR_SHAPE, "reshape: cannot view %s as %s",
                           tensor_shape_str(t, sa, sizeof sa),
                           shape_to_str(ndim, shape_in, sb, sizeof sb)),
                   NULL;
        } else {
            known *= shape[d];
        }
    }
    int64_t numel = tensor_numel(t);
    if (infer >= 0) {
        if (zero || known == 0 || numel % known != 0)
            return hg_fail(HG_ERR_SHAPE, "reshape: cannot view %s as %s",
                           tensor_shape_str(t, sa, sizeof sa),
                           shape_to_str(ndim, shape_in, sb, sizeof sb)),
                   NULL;
        shape[infer] = numel / known;
    }
    if (check_shape("reshape", ndim, shape, NULL) != HG_OK) return NULL;
    if (shape_numel(ndim, shape) != numel)
        return hg_fail(HG_ERR_SHAPE, "reshape: cannot view %s as %s",
                       tensor_shape_str(t, sa, sizeof sa),
                       shape_to_str(ndim, shape_in, sb, sizeof sb)),
               NULL;
    int64_t stride[TENSOR_MAX_DIMS];
    if (view_strides(t, ndim, shape, stride))
        return view_new("reshape", t->storage, t->offset, ndim, shape, stride);
    Tensor *c = clone_named("reshape", t);
    if (!c) return NULL;
    c->ndim = ndim;
    for (int d = 0; d < ndim; d++) c->shape[d] = shape[d];
    contiguous_strides(ndim, shape, c->stride);
    return c;
}

Tensor *tensor_flatten(const Tensor *t) {
    if (!t) return hg_fail(HG_ERR_ARG, "flatten: tensor is NULL"), NULL;
    int64_t n = tensor_numel(t);
    return tensor_reshape(t, 1, &n);
}

Tensor *tensor_permute(const Tensor *t, const int *dims) {
    if (!t) return hg_fail(HG_ERR_ARG, "permute: tensor is NULL"), NULL;
    if (t->ndim > 0 && !dims) return hg_fail(HG_ERR_ARG, "permute: dims is NULL"), NULL;
    char buf[200];
    bool seen[TENSOR_MAX_DIMS] = {false};
    int64_t shape[TENSOR_MAX_DIMS], stride[TENSOR_MAX_DIMS];
    for (int i = 0; i < t->ndim; i++) {
        int d = tensor_normalize_dim(dims[i], t->ndim);
        if (d < 0 || seen[d]) {
            char pbuf[100];
            size_t used = 0;
            for (int j = 0; j < t->ndim && used < sizeof pbuf; j++)
                used +=
                    (size_t)snprintf(pbuf + used, sizeof pbuf - used, j ? ",%d" : "%d", dims[j]);
            return hg_fail(HG_ERR_DIM, "permute: (%s) is not a permutation of the dims of %s", pbuf,
                           tensor_shape_str(t, buf, sizeof buf)),
                   NULL;
        }
        seen[d] = true;
        shape[i] = t->shape[d];
        stride[i] = t->stride[d];
    }
    return view_new("permute", t->storage, t->offset, t->ndim, shape, stride);
}

Tensor *tensor_transpose(const Tensor *t, int dim0, int dim1) {
    if (!t) return hg_fail(HG_ERR_ARG, "transpose: tensor is NULL"), NULL;
    int a = resolve_dim("transpose", t, dim0);
    if (a < 0) return NULL;
    int b = resolve_dim("transpose", t, dim1);
    if (b < 0) return NULL;
    Tensor *v = view_new("transpose", t->storage, t->offset, t->ndim, t->shape, t->stride);
    if (!v) return NULL;
    v->shape[a] = t->shape[b];
    v->stride[a] = t->stride[b];
    v->shape[b] = t->shape[a];
    v->stride[b] = t->stride[a];
    return v;
}

Tensor *tensor_narrow(const Tensor *t, int dim, int64_t start, int64_t length) {
    if (!t) return hg_fail(HG_ERR_ARG, "narrow: tensor is NULL"), NULL;
    int d = resolve_dim("narrow", t, dim);
    if (d < 0) return NULL;
    int64_t size = t->shape[d];
    int64_t s = start < 0 ? start + size : start;
    if (s < 0 || s > size || length < 0 || length > size - s) {
        char buf[200];
        return hg_fail(HG_ERR_ARG, "narrow: start %lld length %lld out of range for dim %d of %s",
                       (long long)start, (long long)length, dim,
                       tensor_shape_str(t, buf, sizeof buf)),
               NULL;
    }
    Tensor *v = view_new("narrow", t->storage, t->offset, t->ndim, t->shape, t->stride);
    if (!v) return NULL;
    if (length > 0) v->offset += s * t->stride[d];
    v->shape[d] = length;
    return v;
}

Tensor *tensor_slice(const Tensor *t, int dim, int64_t start, int64_t stop, int64_t step) {
    if (!t) return hg_fail(HG_ERR_ARG, "slice: tensor is NULL"), NULL;
    int d = resolve_dim("slice", t, dim);
    if (d < 0) return NULL;
    if (step <= 0)
        return hg_fail(HG_ERR_ARG, "slice: step %lld is not positive", (long long)step), NULL;
    int64_t size = t->shape[d];
    /* Python semantics: negative bounds count from the end, then clamp to [0, size]. */
    if (start < 0) start = start < -size ? 0 : start + size;
    if (stop < 0) stop = stop < -size ? 0 : stop + size;
    if (start > size) start = size;
    if (stop > size) stop = size;
    int64_t length = stop > start ? (stop - start - 1) / step + 1 : 0;
    Tensor *v = view_new("slice", t->storage, t->offset, t->ndim, t->shape, t->stride);
    if (!v) return NULL;
    if (length > 0) v->offset += start * t->stride[d];
    v->shape[d] = length;
    v->stride[d] = t->stride[d] * step;
    return v;
}

Tensor *tensor_select(const Tensor *t, int dim, int64_t index) {
    if (!t) return hg_fail(HG_ERR_ARG, "select: tensor is NULL"), NULL;
    int d = resolve_dim("select", t, dim);
    if (d < 0) return NULL;
    int64_t size = t->shape[d];
    int64_t i = index < 0 ? index + size : index;
    if (i < 0 || i >= size) {
        char buf[200];
        return hg_fail(HG_ERR_ARG, "select: index %lld out of range for dim %d of %s",
                       (long long)index, dim, tensor_shape_str(t, buf, sizeof buf)),
               NULL;
    }
    int64_t shape[TENSOR_MAX_DIMS], stride[TENSOR_MAX_DIMS];
    int k = 0;
    for (int j = 0; j < t->ndim; j++) {
        if (j == d) continue;
        shape[k] = t->shape[j];
        stride[k] = t->stride[j];
        k++;
    }
    return view_new("select", t->storage, t->offset + i * t->stride[d], k, shape, stride);
}

/* Strides of `t` broadcast to `shape`, or false when it does not broadcast. */
static bool expand_strides(const Tensor *t, int ndim, const int64_t *shape, int64_t *stride) {
    if (ndim < t->ndim) return false;
    int lead = ndim - t->ndim;
    for (int d = 0; d < ndim; d++) {
        if (d < lead) {
            stride[d] = 0;
            continue;
        }
        int64_t have = t->shape[d - lead];
        if (have == shape[d])
            stride[d] = t->stride[d - lead];
        else if (have == 1)
            stride[d] = 0;
        else
            return false;
    }
    return true;
}

Tensor *tensor_expand(const Tensor *t, int ndim, const int64_t *shape_in) {
    if (!t) return hg_fail(HG_ERR_ARG, "expand: tensor is NULL"), NULL;
    if (ndim < 0 || ndim > TENSOR_MAX_DIMS)
        return hg_fail(HG_ERR_ARG, "expand: ndim %d outside [0,%d]", ndim, TENSOR_MAX_DIMS), NULL;
    if (ndim > 0 && !shape_in) return hg_fail(HG_ERR_ARG, "expand: shape is NULL"), NULL;
    char sa[200], sb[200];
    int64_t shape[TENSOR_MAX_DIMS], stride[TENSOR_MAX_DIMS];
    int lead = ndim - t->ndim;
    /* -1 keeps an existing dim's size (as torch.expand). */
    for (int d = 0; d < ndim; d++)
        shape[d] = (shape_in[d] == -1 && d >= lead) ? t->shape[d - lead] : shape_in[d];
    if (check_shape("expand", ndim, shape, NULL) != HG_OK) return NULL;
    if (!expand_strides(t, ndim, shape, stride))
        return hg_fail(HG_ERR_SHAPE, "expand: cannot expand %s to %s",
                       tensor_shape_str(t, sa, sizeof sa),
                       shape_to_str(ndim, shape_in, sb, sizeof sb)),
               NULL;
    return view_new("expand", t->storage, t->offset, ndim, shape, stride);
}

Tensor *tensor_unsqueeze(const Tensor *t, int dim) {
    if (!t) return hg_fail(HG_ERR_ARG, "unsqueeze: tensor is NULL"), NULL;
    char buf[200];
    if (t->ndim >= TENSOR_MAX_DIMS)
        return hg_fail(HG_ERR_DIM, "unsqueeze: %s already has %d dims",
                       tensor_shape_str(t, buf, sizeof buf), TENSOR_MAX_DIMS),
               NULL;
    int d = tensor_normalize_dim(dim, t->ndim + 1);
    if (d < 0)
        return hg_fail(HG_ERR_DIM, "unsqueeze: dim %d out of range for shape %s", dim,
                       tensor_shape_str(t, buf, sizeof buf)),
               NULL;
    int64_t shape[TENSOR_MAX_DIMS], stride[TENSOR_MAX_DIMS];
    for (int j = 0, k = 0; j <= t->ndim; j++) {
        if (j == d) {
            shape[j] = 1;
            stride[j] = d < t->ndim ? t->stride[d] * (t->shape[d] > 1 ? t->shape[d] : 1) : 1;
        } else {
            shape[j] = t->shape[k];
            stride[j] = t->stride[k];
            k++;
        }
    }
    return view_new("unsqueeze", t->storage, t->offset, t->ndim + 1, shape, stride);
}

Tensor *tensor_squeeze(const Tensor *t, int dim) {
    if (!t) return hg_fail(HG_ERR_ARG, "squeeze: tensor is NULL"), NULL;
    int d = resolve_dim("squeeze", t, dim);
    if (d < 0) return NULL;
    /* As torch.squeeze(dim): a dim whose size is not 1 is left alone. */
    if (t->shape[d] != 1) return tensor_ref(t);
    int64_t shape[TENSOR_MAX_DIMS], stride[TENSOR_MAX_DIMS];
    int k = 0;
    for (int j = 0; j < t->ndim; j++) {
        if (j == d) continue;
        shape[k] = t->shape[j];
        stride[k] = t->stride[j];
        k++;
    }
    return view_new("squeeze", t->storage, t->offset, k, shape, stride);
}

Tensor *tensor_contiguous(const Tensor *t) {
    if (!t) return hg_fail(HG_ERR_ARG, "contiguous: tensor is NULL"), NULL;
    if (tensor_is_contiguous(t)) return tensor_ref(t);
    return clone_named("contiguous", t);
}

/* ---- copying ---- */

hg_status tensor_copy_(Tensor *dst, const Tensor *src) {
    if (!dst || !src) return hg_fail(HG_ERR_ARG, "copy_: %s is NULL", dst ? "src" : "dst");
    char sa[200], sb[200];
    int64_t sstride[TENSOR_MAX_DIMS];
    if (!expand_strides(src, dst->ndim, dst->shape, sstride))
        return hg_fail(HG_ERR_SHAPE, "copy_: cannot broadcast %s to %s",
                       tensor_shape_str(src, sa, sizeof sa), tensor_shape_str(dst, sb, sizeof sb));
    if (tensor_numel(dst) == 0) return HG_OK;
    for (int d = 0; d < dst->ndim; d++)
        if (dst->stride[d] == 0 && dst->shape[d] > 1)
            return hg_fail(HG_ERR_ARG,
                           "copy_: destination %s is expanded (several elements share memory)",
                           tensor_shape_str(dst, sb, sizeof sb));
    if (dst->storage == src->storage) {
        bool same = dst->offset == src->offset;
        for (int d = 0; d < dst->ndim && same; d++) same = dst->stride[d] == sstride[d];
        if (same) return HG_OK; /* copying a view onto itself */
        int64_t dlo, dhi, slo, shi;
        view_extent(dst, &dlo, &dhi);
        view_extent(src, &slo, &shi);
        if (dlo <= shi && slo <= dhi) {
            /* The views may overlap: read everything before writing anything. */
            Tensor *tmp = clone_named("copy_", src);
            if (!tmp) return hg_last_status();
            hg_status st = tensor_copy_(dst, tmp);
            tensor_free(tmp);
            return st;
        }
    }
    strided_copy(dst->ndim, dst->shape, tensor_data(dst), dst->stride, tensor_data(src), sstride);
    return HG_OK;
}

hg_status tensor_fill_(Tensor *t, float value) {
    if (!t) return hg_fail(HG_ERR_ARG, "fill_: tensor is NULL");
    int64_t shape[TENSOR_MAX_DIMS], zero[TENSOR_MAX_DIMS] = {0};
    for (int d = 0; d < t->ndim; d++) {
        /* Expanded dims alias one element: write it once (avoids racing writes). */
        shape[d] = t->stride[d] == 0 && t->shape[d] > 0 ? 1 : t->shape[d];
    }
    strided_copy(t->ndim, shape, tensor_data(t), t->stride, &value, zero);
    return HG_OK;
}

hg_status tensor_to_array(const Tensor *t, float *out) {
    if (!t) return hg_fail(HG_ERR_ARG, "to_array: tensor is NULL");
    if (tensor_numel(t) == 0) return HG_OK;
    if (!out) return hg_fail(HG_ERR_ARG, "to_array: out is NULL");
    int64_t stride[TENSOR_MAX_DIMS];
    contiguous_strides(t->ndim, t->shape, stride);
    strided_copy(t->ndim, t->shape, out, stride, tensor_data(t), t->stride);
    return HG_OK;
}

hg_status tensor_broadcast_shape(const char *op, int ndim_a, const int64_t *shape_a, int ndim_b,
                                 const int64_t *shape_b, int *ndim_out, int64_t *shape_out) {
    if (!op) op = "broadcast";
    if (check_shape(op, ndim_a, shape_a, NULL) != HG_OK) return hg_last_status();
    if (check_shape(op, ndim_b, shape_b, NULL) != HG_OK) return hg_last_status();
    if (!ndim_out || !shape_out) return hg_fail(HG_ERR_ARG, "%s: output pointer is NULL", op);
    int n = ndim_a > ndim_b ? ndim_a : ndim_b;
    int64_t out[TENSOR_MAX_DIMS];
    for (int i = 0; i < n; i++) {
        /* Align from the right. */
        int ia = i - (n - ndim_a), ib = i - (n - ndim_b);
        int64_t a = ia >= 0 ? shape_a[ia] : 1;
        int64_t b = ib >= 0 ? shape_b[ib] : 1;
        if (a == b || b == 1)
            out[i] = a;
        else if (a == 1)
            out[i] = b;
        else {
            char sa[200], sb[200];
            return hg_fail(HG_ERR_SHAPE, "%s: shapes %s and %s do not broadcast", op,
                           shape_to_str(ndim_a, shape_a, sa, sizeof sa),
                           shape_to_str(ndim_b, shape_b, sb, sizeof sb));
        }
    }
    *ndim_out = n;
    for (int i = 0; i < n; i++) shape_out[i] = out[i];
    return HG_OK;
}
