/* n-d float32 tensors with shared, reference-counted storage and strided views.
 *
 * A Tensor is a view: (storage, offset, shape, stride). Views made by reshape,
 * permute, narrow, expand ... share the storage of their source and keep it
 * alive; every Tensor returned by a function here is owned by the caller and is
 * released with tensor_free(). Strides are in elements and may be 0 (expanded
 * dimensions). Functions returning Tensor* return NULL on failure with the
 * reason in hg_last_error(); functions returning hg_status return it.
 *
 * Reference counts are not atomic: a tensor may be read by many threads, but
 * views of it must be made and freed by one thread at a time. */
#ifndef HG_TENSOR_H
#define HG_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tensor/error.h"

#define TENSOR_MAX_DIMS 8

typedef struct TensorStorage {
    float *data;
    int64_t capacity; /* elements */
    int refcount;
    bool owns_data; /* false for wrapped memory, e.g. a memory-mapped file */
} TensorStorage;

typedef struct Tensor {
    TensorStorage *storage;
    int64_t offset; /* elements from storage->data to element [0,...,0] */
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    int64_t stride[TENSOR_MAX_DIMS];
} Tensor;

/* Shape literal helper: tensor_zeros(SHAPE(2, 3)) == tensor_zeros(2, (int64_t[]){2, 3}). */
#define SHAPE_NARGS_(...) (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t))
#define SHAPE(...) SHAPE_NARGS_(__VA_ARGS__), (const int64_t[]){__VA_ARGS__}

/* ---- creation (contiguous, new storage) ---- */
Tensor *tensor_empty(int ndim, const int64_t *shape); /* uninitialized */
Tensor *tensor_zeros(int ndim, const int64_t *shape);
Tensor *tensor_ones(int ndim, const int64_t *shape);
Tensor *tensor_full(int ndim, const int64_t *shape, float value);
Tensor *tensor_scalar(float value); /* 0-d tensor */
/* 1-d [start, start+step, ...) below stop (above for negative step). */
Tensor *tensor_arange(float start, float stop, float step);
/* Copies `data` (numel floats, row-major). */
Tensor *tensor_from_data(int ndim, const int64_t *shape, const float *data);
/* Views caller-owned memory without copying; the memory must outlive the tensor. */
Tensor *tensor_wrap(int ndim, const int64_t *shape, float *data);
Tensor *tensor_empty_like(const Tensor *t);
Tensor *tensor_zeros_like(const Tensor *t);

/* ---- ownership ---- */
void tensor_free(Tensor *t);          /* NULL is fine */
Tensor *tensor_ref(const Tensor *t);  /* a new view of the same elements */
Tensor *tensor_clone(const Tensor *t); /* contiguous deep copy */

/* ---- queries ---- */
int64_t tensor_numel(const Tensor *t);
bool tensor_is_contiguous(const Tensor *t);
bool tensor_same_shape(const Tensor *a, const Tensor *b);
/* Pointer to element [0,...,0]; index with strides, or directly when contiguous. */
float *tensor_data(const Tensor *t);
/* Element at a full index (ndim entries). No bounds check beyond debug asserts. */
float tensor_get(const Tensor *t, const int64_t *index);
void tensor_set(Tensor *t, const int64_t *index, float value);
/* Writes "[2,3,4]" into buf; returns buf. For error messages. */
const char *tensor_shape_str(const Tensor *t, char *buf, size_t size);
/* Resolves a possibly negative dim (-1 = last) against ndim; -1 if invalid. */
int tensor_normalize_dim(int dim, int ndim);

/* ---- views (share storage) ---- */
/* Same elements, new shape; one entry may be -1 (inferred). A view when the
 * strides allow it, otherwise a contiguous copy. */
Tensor *tensor_reshape(const Tensor *t, int ndim, const int64_t *shape);
Tensor *tensor_flatten(const Tensor *t); /* 1-d */
Tensor *tensor_permute(const Tensor *t, const int *dims);
Tensor *tensor_transpose(const Tensor *t, int dim0, int dim1);
/* Elements start .. start+length-1 of `dim` (negative start counts from the end). */
Tensor *tensor_narrow(const Tensor *t, int dim, int64_t start, int64_t length);
/* Python-style start:stop:step on one dim (step > 0). */
Tensor *tensor_slice(const Tensor *t, int dim, int64_t start, int64_t stop, int64_t step);
/* Index `index` of `dim`, removing that dim. */
Tensor *tensor_select(const Tensor *t, int dim, int64_t index);
/* Broadcast to `shape` (size-1 dims get stride 0; new leading dims may be added). */
Tensor *tensor_expand(const Tensor *t, int ndim, const int64_t *shape);
Tensor *tensor_unsqueeze(const Tensor *t, int dim);
Tensor *tensor_squeeze(const Tensor *t, int dim);
/* A contiguous tensor with the same elements: a new reference when already contiguous. */
Tensor *tensor_contiguous(const Tensor *t);

/* ---- copying ---- */
/* dst[...] = src[...] where src broadcasts to dst's shape; dst may be any view. */
hg_status tensor_copy_(Tensor *dst, const Tensor *src);
hg_status tensor_fill_(Tensor *t, float value);
/* Copies the elements to `out` (numel floats, row-major). */
hg_status tensor_to_array(const Tensor *t, float *out);

/* Computes the broadcast shape of a and b (numpy rules). */
hg_status tensor_broadcast_shape(const char *op, int ndim_a, const int64_t *shape_a, int ndim_b,
                                 const int64_t *shape_b, int *ndim_out, int64_t *shape_out);

#endif
