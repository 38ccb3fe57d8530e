/* Internal: strided n-d iteration over a few tensors that share one broadcast shape.
 *
 * Used by the element-wise ops (ops_unary.c, ops_binary.c) and the reductions.
 * Operand 0 is the one written (the result, or the destination of an in-place
 * op); the others are read and may be any strided view, including expanded
 * (stride 0) ones. The iteration shape is simplified before running:
 *   - dims of size 1 are dropped,
 *   - neighbouring dims are merged when every operand steps through them as one
 *     (stride[outer] == stride[inner] * shape[inner]), so contiguous operands of
 *     one shape become a single flat run and a kernel sees plain float arrays.
 * A kernel processes one run of n elements along the innermost remaining dim;
 * kernels branch on the run strides to reach simple vectorizable loops.
 * Large iterations are split into equal element ranges across OpenMP threads.
 * Not part of the public API. */
#ifndef HG_TENSOR_ITERATE_H
#define HG_TENSOR_ITERATE_H

#include <omp.h>
#include <stdint.h>

#include "tensor/tensor.h"

#define ITER_MAX_OPERANDS 4
/* Element count above which element-wise work is spread over threads. */
#define ITER_PARALLEL_MIN 32768

typedef struct StridedIter {
    int noperands;
    int ndim; /* >= 1 after iter_init */
    int64_t numel;
    int64_t shape[TENSOR_MAX_DIMS];
    int64_t stride[ITER_MAX_OPERANDS][TENSOR_MAX_DIMS];
    float *data[ITER_MAX_OPERANDS];
} StridedIter;

/* Processes n elements: operand k starts at p[k] and advances by s[k] elements. */
typedef void (*iter_kernel_fn)(int64_t n, float *const *p, const int64_t *s, const void *ctx);

/* Strides of `t` seen through a broadcast to (ndim, shape): 0 along dims that t
 * lacks (leading) or has with size 1 while shape does not. t must broadcast. */
static inline void iter_broadcast_strides(const Tensor *t, int ndim, const int64_t *shape,
                                          int64_t *stride) {
    int lead = ndim - t->ndim;
    for (int i = 0; i < ndim; i++) {
        int j = i - lead;
        if (j < 0 || (t->shape[j] == 1 && shape[i] != 1))
            stride[i] = 0;
        else
            stride[i] = t->stride[j];
    }
}

/* Drops size-1 dims and merges dims that every operand traverses contiguously. */
static inline void iter_collapse(StridedIter *it) {
    int nops = it->noperands;
    if (it->numel == 0) { /* nothing will run; keep one empty dim */
        it->ndim = 1;
        it->shape[0] = 0;
        for (int k = 0; k < nops; k++) it->stride[k][0] = 1;
        return;
    }
    /* Build the simplified dims from the innermost outwards into the tail. */
    int out = TENSOR_MAX_DIMS; /* simplified dims live in [out, TENSOR_MAX_DIMS) */
    int64_t shape[TENSOR_MAX_DIMS], stride[ITER_MAX_OPERANDS][TENSOR_MAX_DIMS];
    for (int d = it->ndim - 1; d >= 0; d--) {
        if (it->shape[d] == 1) continue;
        bool merge = out < TENSOR_MAX_DIMS;
        for (int k = 0; k < nops && merge; k++)
            merge = it->stride[k][d] == stride[k][out] * shape[out];
        if (merge) {
            shape[out] *= it->shape[d];
        } else {
            out--;
            shape[out] = it->shape[d];
            for (int k = 0; k < nops; k++) stride[k][out] = it->stride[k][d];
        }
    }
    if (out == TENSOR_MAX_DIMS) { /* a single element */
        out--;
        shape[out] = 1;
        for (int k = 0; k < nops; k++) stride[k][out] = 1;
    }
    it->ndim = TENSOR_MAX_DIMS - out;
    for (int d = 0; d < it->ndim; d++) {
        it->shape[d] = shape[out + d];
        for (int k = 0; k < nops; k++) it->stride[k][d] = stride[k][out + d];
    }
}

/* Sets up `noperands` tensors (each broadcasting to (ndim, shape)) and simplifies. */
static inline void iter_init(StridedIter *it, int ndim, const int64_t *shape, int noperands,
                             const Tensor *const *operands) {
    it->noperands = noperands;
    it->ndim = ndim;
    it->numel = 1;
    for (int d = 0; d < ndim; d++) {
        it->shape[d] = shape[d];
        it->numel *= shape[d];
    }
    for (int k = 0; k < noperands; k++) {
        iter_broadcast_strides(operands[k], ndim, shape, it->stride[k]);
        it->data[k] = tensor_data(operands[k]);
    }
    iter_collapse(it);
}

/* Runs the kernel over linear elements [begin, end) of the (row-major) iteration. */
static inline void iter_run_range(const StridedIter *it, int64_t begin, int64_t end,
                                  iter_kernel_fn kernel, const void *ctx) {
    int nd = it->ndim, nops = it->noperands;
    int64_t index[TENSOR_MAX_DIMS], offset[ITER_MAX_OPERANDS] = {0};
    int64_t rem = begin;
    for (int d = nd - 1; d >= 0; d--) {
        index[d] = rem % it->shape[d];
        rem /= it->shape[d];
        for (int k = 0; k < nops; k++) offset[k] += index[d] * it->stride[k][d];
    }
    int64_t inner = it->shape[nd - 1], inner_stride[ITER_MAX_OPERANDS];
    for (int k = 0; k < nops; k++) inner_stride[k] = it->stride[k][nd - 1];
    float *p[ITER_MAX_OPERANDS];
    for (int64_t pos = begin; pos < end;) {
        int64_t run = inner - index[nd - 1];
        if (run > end - pos) run = end - pos;
        for (int k = 0; k < nops; k++) p[k] = it->data[k] + offset[k];
        kernel(run, p, inner_stride, ctx);
        pos += run;
        if (pos >= end) break;
        /* Advance the odometer by `run` (always to the start of the next row). */
        for (int k = 0; k < nops; k++) offset[k] += run * inner_stride[k];
        index[nd - 1] += run;
        for (int d = nd - 1; d > 0 && index[d] == it->shape[d]; d--) {
            index[d] = 0;
            index[d - 1]++;
            for (int k = 0; k < nops; k++)
                offset[k] += it->stride[k][d - 1] - it->shape[d] * it->stride[k][d];
        }
    }
}

/* Runs the kernel over all elements, split over threads when large. */
static inline void iter_run(const StridedIter *it, iter_kernel_fn kernel, const void *ctx) {
    int64_t numel = it->numel;
    if (numel <= ITER_PARALLEL_MIN) { /* even an inactive parallel region costs ~1 us */
        if (numel > 0) iter_run_range(it, 0, numel, kernel, ctx);
        return;
    }
#pragma omp parallel
    {
        int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
        /* Chunks are multiples of 16 elements so each thread's runs stay aligned. */
        int64_t chunk = ((numel + threads - 1) / threads + 15) / 16 * 16;
        int64_t begin = t * chunk < numel ? t * chunk : numel;
        int64_t end = begin + chunk < numel ? begin + chunk : numel;
        if (begin < end) iter_run_range(it, begin, end, kernel, ctx);
    }
}

/* Linear element offset of row-major position `linear` in (ndim, shape) with `stride`. */
static inline int64_t iter_offset_of(int64_t linear, int ndim, const int64_t *shape,
                                     const int64_t *stride) {
    int64_t offset = 0;
    for (int d = ndim - 1; d >= 0; d--) {
        offset += (linear % shape[d]) * stride[d];
        linear /= shape[d];
    }
    return offset;
}

#endif
