/* Internal to nn/conv2d*.c (and their tests): the implicit-GEMM forward of
 * ungrouped convolutions (conv2d_implicit.c), which conv2d_forward prefers to
 * im2col + GEMM when the CPU has AVX2/FMA. */
#ifndef HG_NN_CONV2D_IMPLICIT_H
#define HG_NN_CONV2D_IMPLICIT_H

#include <stdbool.h>
#include <stdint.h>

#include "nn/conv2d_kernels.h"

/* True when conv2d_implicit_forward serves g: groups == 1 and the CPU has
 * AVX2/FMA (it runs gemm's AVX2 micro-kernel). */
bool conv2d_implicit_supported(const Conv2dGeom *g);

/* The contract of conv2d_im2col_forward (out overwritten, b may be NULL) for
 * any kernel, stride, dilation and padding, then out = max(out, 0) when relu;
 * call only when supported. With avx512 (only when hg_cpu_has_avx512f()) the
 * AVX-512 8 x 48 tile runs, else gemm's AVX2 6 x 16 micro-kernel. */
hg_status conv2d_implicit_forward(float *out, const float *x, const float *w, const float *b,
                                  const Conv2dGeom *g, bool relu, bool avx512);

/* ---- AVX-512 micro-kernel (conv2d_implicit_avx512.c; call only when
 * hg_cpu_has_avx512f()) ---- */

#define IMPLICIT512_MR 8  /* output channels per tile */
#define IMPLICIT512_NR 48 /* outputs per tile */

/* C[0:mr, 0:nr] (row stride ldc) = init + A @ B over kc steps, with A packed
 * [kc][IMPLICIT512_MR] (rows past mr zero), B packed [kc][IMPLICIT512_NR]
 * (64-byte aligned, columns past nr zero) and init = C itself when
 * accumulate, else bias[0:mr] (NULL: zeros); negative results become 0 when
 * relu (the last K block of a ReLU unit). */
void conv2d_implicit_tile_avx512(int64_t kc, const float *a, const float *b, float *c, int64_t ldc,
                                 const float *bias, bool accumulate, bool relu, int mr, int nr);

/* A B panel of the AVX-512 tile (d 64-byte aligned, [kc][IMPLICIT512_NR]):
 * for K row r, segment q of the outputs (a run within one output row) is
 * d[r][seg_dst[q] + t] = planes[tap[r] + seg_off[q] + t], t < seg_len[q];
 * columns past the segments are zero. */
void conv2d_implicit_pack_avx512(float *d, const float *planes, const int64_t *tap, int64_t kc,
                                 int nseg, const int64_t *seg_off, const int *seg_len,
                                 const int *seg_dst);

#endif
