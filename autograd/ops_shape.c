/* Differentiable shape, view, joining and indexing ops, each forward followed
 * by its backward. Views share the input's storage (values are never written
 * in place, so sharing is safe); every backward routes each element of dL/dy
 * back to the input element it came from. */
#include <stdlib.h>
#include <string.h>

#include "autograd/internal.h"

static hg_status reshape_backward(Var *out);
static hg_status permute_backward(Var *out);
static hg_status transpose_backward(Var *out);
static hg_status narrow_backward(Var *out);
static hg_status expand_backward(Var *out);
static hg_status concat_backward(Var *out);
static hg_status index_select_backward(Var *out);
static hg_status gather_backward(Var *out);

/* ---- reshape ---- */
Var *ag_reshape(Tape *t, Var *x, int ndim, const int64_t *shape) {
    if (!ag_check("reshape", t, 1, &x)) return NULL;
    return tape_record(t, "reshape", tensor_reshape(x->value, ndim, shape), 1, &x,
                       reshape_backward);
}

static hg_status reshape_backward(Var *out) {
    const Tensor *x = out->inputs[0]->value;
    return var_accumulate_grad(out->inputs[0], tensor_reshape(out->grad, x->ndim, x->shape));
}

/* ---- permute ---- */
Var *ag_permute(Tape *t, Var *x, const int *dims) {
    if (!ag_check("permute", t, 1, &x)) return NULL;
    Var *out = tape_record(t, "permute", tensor_permute(x->value, dims), 1, &x, permute_backward);
    if (out == NULL) return NULL;
    /* y dim i is x dim dims[i]; the inverse permutation sends it back. */
    int ndim = x->value->ndim;
    for (int i = 0; i < ndim; i++) out->ints[tensor_normalize_dim(dims[i], ndim)] = i;
    return out;
}

static hg_status permute_backward(Var *out) {
    int inverse[TENSOR_MAX_DIMS];
    for (int i = 0; i < out->value->ndim; i++) inverse[i] = (int)out->ints[i];
    return var_accumulate_grad(out->inputs[0], tensor_permute(out->grad, inverse));
}

/* ---- transpose ---- */
Var *ag_transpose(Tape *t, Var *x, int dim0, int dim1) {
    if (!ag_check("transpose", t, 1, &x)) return NULL;
    Var *out = tape_record(t, "transpose", tensor_transpose(x->value, dim0, dim1), 1, &x,
                           transpose_backward);
    if (out) {
        out->ints[0] = dim0;
        out->ints[1] = dim1;
    }
    return out;
}

/* A transpose is its own inverse. */
static hg_status transpose_backward(Var *out) {
    return var_accumulate_grad(out->inputs[0],
                               tensor_transpose(out->grad, (int)out->ints[0], (int)out->ints[1]));
}

/* ---- narrow ---- */
Var *ag_narrow(Tape *t, Var *x, int dim, int64_t start, int64_t length) {
    if (!ag_check("narrow", t, 1, &x)) return NULL;
    Var *out = tape_record(t, "narrow", tensor_narrow(x->value, dim, start, length), 1, &x,
                           narrow_backward);
    if (out) {
        int d = tensor_normalize_dim(dim, x->value->ndim);
        out->ints[0] = d;
        out->ints[1] = start < 0 ? start + x->value->shape[d] : start;
    }
    return out;
}

/* dL/dx is g inside the slice and 0 outside. When x already has a gradient
 * (accumulated gradients are exclusively owned, see var_accumulate_grad) the
 * slice is added in place; otherwise a zero tensor carries it. */
static hg_status narrow_backward(Var *out) {
    Var *x = out->inputs[0];
    int dim = (int)out->ints[0];
    int64_t start = out->ints[1], length = out->value->shape[dim];
    Tensor *target = x->grad ? tensor_ref(x->grad) : tensor_zeros(x->value->ndim, x->value->shape);
    Tensor *slice = target ? tensor_narrow(target, dim, start, length) : NULL;
    hg_status s = slice ? tensor_add_(slice, out->grad) : hg_last_status();
    tensor_free(slice);
    if (x->grad) {
        tensor_free(target);
        return s;
    }
    if (s != HG_OK) {
        tensor_free(target);
        return s;
    }
    return var_accumulate_grad(x, target);
}

/* ---- expand ---- */
Var *ag_expand(Tape *t, Var *x, int ndim, const int64_t *shape) {
    if (!ag_check("expand", t, 1, &x)) return NULL;
    return tape_record(t, "expand", tensor_expand(x->value, ndim, shape), 1, &x, expand_backward);
}

/* An expanded element is used once per copy: var_accumulate_grad sums g over
 * the broadcast dims back to x's shape. */
static hg_status expand_backward(Var *out) {
    return var_accumulate_grad(out->inputs[0], tensor_ref(out->grad));
}

/* ---- concat ---- */
/* The parts can outnumber VAR_MAX_INPUTS, so they live in the context. */
typedef struct {
    int count, dim;
    struct {
        Var *part;
        int64_t size; /* along dim */
    } entries[];
} ConcatContext;

Var *ag_concat(Tape *t, int count, Var *const *parts, int dim) {
    if (count <= 0 || parts == NULL) {
        hg_fail(HG_ERR_ARG, "concat: %d parts", count);
        return NULL;
    }
    if (!ag_check("concat", t, count, parts)) return NULL;
    const Tensor **values = malloc(sizeof *values * (size_t)count);
    if (values == NULL) {
        hg_fail(HG_ERR_NOMEM, "concat: out of memory");
        return NULL;
    }
    for (int i = 0; i < count; i++) values[i] = parts[i]->value;
    Tensor *value = tensor_concat(count, values, dim);
    free(values);
    Var *out = tape_record(t, "concat", value, 0, NULL, NULL);
    if (out == NULL) return NULL;
    bool needs_grad = false;
    for (int i = 0; i < count; i++) needs_grad |= parts[i]->requires_grad;
    if (!tape_grad_enabled(t) || !needs_grad) return out;

    ConcatContext *ctx = malloc(sizeof *ctx + sizeof ctx->entries[0] * (size_t)count);
    if (ctx == NULL) {
        hg_fail(HG_ERR_NOMEM, "concat: out of memory");
        return NULL;
    }
    ctx->count = count;
    ctx->dim = tensor_normalize_dim(dim, value->ndim);
    for (int i = 0; i < count; i++) {
        ctx->entries[i].part = parts[i];
        ctx->entries[i].size = parts[i]->value->shape[ctx->dim];
    }
    out->context = ctx;
    out->requires_grad = true;
    out->backward = concat_backward;
    return out;
}

/* Each part's gradient is its own slab of g along dim. */
static hg_status concat_backward(Var *out) {
    const ConcatContext *ctx = out->context;
    int64_t offset = 0;
    for (int i = 0; i < ctx->count; i++) {
        Var *part = ctx->entries[i].part;
        int64_t size = ctx->entries[i].size;
        if (part->requires_grad) {
            hg_status s =
                var_accumulate_grad(part, tensor_narrow(out->grad, ctx->dim, offset, size));
            if (s != HG_OK) return s;
        }
        offset += size;
    }
    return HG_OK;
}

/* ---- split: one narrow per piece ---- */
hg_status ag_split(Tape *t, Var *x, int dim, int count, const int64_t *sizes, Var **parts) {
    if (parts == NULL || count <= 0 || sizes == NULL)
        return hg_fail(HG_ERR_ARG, "split: %d pieces", count);
    for (int i = 0; i < count; i++) parts[i] = NULL;
    if (!ag_check("split", t, 1, &x)) return hg_last_status();
    int d = tensor_normalize_dim(dim, x->value->ndim);
    char shape[96];
    if (d < 0)
        return hg_fail(HG_ERR_DIM, "split: dim %d out of range for shape %s", dim,
                       tensor_shape_str(x->value, shape, sizeof shape));
    int64_t total = 0;
    for (int i = 0; i < count; i++) {
        if (sizes[i] < 0)
            return hg_fail(HG_ERR_ARG, "split: piece %d has size %lld", i, (long long)sizes[i]);
        total += sizes[i];
    }
    if (total != x->value->shape[d])
        return hg_fail(HG_ERR_SHAPE, "split: sizes add up to %lld, dim %d of %s has %lld",
                       (long long)total, dim, tensor_shape_str(x->value, shape, sizeof shape),
                       (long long)x->value->shape[d]);
    int64_t offset = 0;
    for (int i = 0; i < count; i++) {
        parts[i] = ag_narrow(t, x, d, offset, sizes[i]);
        if (parts[i] == NULL) {
            for (int k = 0; k < count; k++) parts[k] = NULL; /* the tape frees them */
            return hg_last_status();
        }
        offset += sizes[i];
    }
    return HG_OK;
}

/* ---- index_select ---- */
Var *ag_index_select(Tape *t, Var *x, int dim, int64_t count, const int64_t *index) {
    if (!ag_check("index_select", t, 1, &x)) return NULL;
    Var *out = tape_record(t, "index_select", tensor_index_select(x->value, dim, count, index), 1,
                           &x, index_select_backward);
    if (out == NULL) return NULL;
    out->ints[0] = tensor_normalize_dim(dim, x->value->ndim);
    out->ints[1] = count;
    if (out->requires_grad && count > 0) {
        out->context = malloc(sizeof(int64_t) * (size_t)count);
        if (out->context == NULL) {
            hg_fail(HG_ERR_NOMEM, "index_select: out of memory");
            return NULL;
        }
        memcpy(out->context, index, sizeof(int64_t) * (size_t)count);
    }
    return out;
}

/* y[.., i, ..] = x[.., index[i], ..], so dL/dx[.., j, ..] sums g[.., i, ..] over
 * every i with index[i] == j (repeated indices accumulate). Seen as
 * (outer, dim, inner) blocks; parallel over `outer`, whose slabs are disjoint. */
static hg_status index_select_backward(Var *out) {
    const Tensor *xv = out->inputs[0]->value;
    int dim = (int)out->ints[0];
    int64_t count = out->ints[1];
    const int64_t *index = out->context;
    int64_t outer = 1, inner = 1, n = xv->shape[dim];
    for (int d = 0; d < dim; d++) outer *= xv->shape[d];
    for (int d = dim + 1; d < xv->ndim; d++) inner *= xv->shape[d];
    Tensor *g = tensor_contiguous(out->grad);
    Tensor *grad = g ? tensor_zeros(xv->ndim, xv->shape) : NULL;
    if (grad == NULL) {
        tensor_free(g);
        return hg_last_status();
    }
    const float *pg = tensor_data(g);
    float *px = tensor_data(grad);
#pragma omp parallel for if (outer * count * inner > AG_PARALLEL_MIN)
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < count; i++) {
            const float *src = pg + (o * count + i) * inner;
            float *dst = px + (o * n + index[i]) * inner;
            for (int64_t k = 0; k < inner; k++) dst[k] += src[k];
        }
    tensor_free(g);
    return var_accumulate_grad(out->inputs[0], grad);
}

/* ---- gather ---- */
Var *ag_gather(Tape *t, Var *x, int dim, int index_ndim, const int64_t *index_shape,
               const int64_t *index) {
    if (!ag_check("gather", t, 1, &x)) return NULL;
    Var *out =
        tape_record(t, "gather", tensor_gather(x->value, dim, index_ndim, index_shape, index), 1,
                    &x, gather_backward);
    if (out == NULL) return NULL;
    out->ints[0] = tensor_normalize_dim(dim, x->value->ndim);
    int64_t n = tensor_numel(out->value); /* the index has the output's shape */
    if (out->requires_grad && n > 0) {
        out->context = malloc(sizeof(int64_t) * (size_t)n);
        if (out->context == NULL) {
            hg_fail(HG_ERR_NOMEM, "gather: out of memory");
            return NULL;
        }
        memcpy(out->context, index, sizeof(int64_t) * (size_t)n);
    }
    return out;
}

/* Each y element was read from one x element: scatter-add g back there. */
static hg_status gather_backward(Var *out) {
    const Tensor *xv = out->inputs[0]->value;
    if (out->context == NULL) return HG_OK; /* empty output: no gradient */
    return var_accumulate_grad(
        out->inputs[0],
        tensor_scatter_add(xv->ndim, xv->shape, (int)out->ints[0], out->grad, out->context));
}
