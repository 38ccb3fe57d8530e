/* Internal to nn/conv2d*.c (and their tests): the resolved geometry of one
 * convolution and the raw-pointer kernels behind conv2d_forward/backward.
 *
 * All buffers are contiguous NCHW (x, out, dx), OIHW (w, dw) or [Cout] (b, db).
 * Forward kernels overwrite out. Backward kernels overwrite each of dx, dw, db
 * that is not NULL and skip the NULL ones. Kernels return HG_ERR_NOMEM when a
 * scratch buffer cannot be allocated, HG_OK otherwise. */
#ifndef HG_NN_CONV2D_KERNELS_H
#define HG_NN_CONV2D_KERNELS_H

#include <stdbool.h>
#include <stdint.h>

#include "nn/conv2d.h"
#include "tensor/cpu.h"

typedef struct Conv2dGeom {
    int64_t n, c_in, h, w; /* input [n, c_in, h, w] */
    int64_t c_out, kh, kw; /* weight [c_out, c_in / groups, kh, kw] */
    int64_t oh, ow;        /* output [n, c_out, oh, ow] */
    int sh, sw, dh, dw, groups;
    int pt, pb, pl, pr; /* resolved padding (TF "same" already applied) */
} Conv2dGeom;

/* Checks x [N,C,H,W], w [O,C/g,KH,KW] and the spec; fills g. `op` names the caller
 * in messages. */
hg_status conv2d_geometry(const char *op, const Tensor *x, const Tensor *w, const Conv2dSpec *spec,
                          Conv2dGeom *g);

/* 1x1, stride 1, no padding (any groups). The forward uses the direct AVX2
 * kernel when the CPU has it and `portable` is false, gemm() otherwise. */
hg_status conv2d_1x1_forward(float *out, const float *x, const float *w, const float *b,
                             const Conv2dGeom *g, bool portable);
hg_status conv2d_1x1_backward(float *dx, float *dw, float *db, const float *dout, const float *x,
                              const float *w, const Conv2dGeom *g);

/* groups == c_in == c_out, any kernel, stride, dilation and padding. Uses the
 * AVX2/FMA kernel when the CPU has it and `portable` is false. */
hg_status conv2d_depthwise_forward(float *out, const float *x, const float *w, const float *b,
                                   const Conv2dGeom *g, bool portable);
hg_status conv2d_depthwise_backward(float *dx, float *dw, float *db, const float *dout,
                                    const float *x, const float *w, const Conv2dGeom *g);

/* The general path: im2col + GEMM per image and group. */
hg_status conv2d_im2col_forward(float *out, const float *x, const float *w, const float *b,
                                const Conv2dGeom *g);
hg_status conv2d_im2col_backward(float *dx, float *dw, float *db, const float *dout, const float *x,
                                 const float *w, const Conv2dGeom *g);

/* db[o] = sum_{n,y,x} dout[n,o,y,x] (every kernel's bias gradient). */
void conv2d_bias_grad(float *db, const float *dout, const Conv2dGeom *g);

/* ---- depthwise helpers shared by the portable and AVX2 kernels ---- */

/* One input plane laid out for stride-s access: zero-padded, and each padded
 * row split into s phases so that the columns read by one kernel tap for
 * consecutive outputs are consecutive in memory. Padded column pc lives at
 * row * row_stride + (pc % s) * phase_len + pc / s. */
typedef struct DwPlane {
    int64_t rows;       /* padded rows kept: (oh-1)*sh + (kh-1)*dh + 1 */
    int64_t phase_len;  /* >= round_up(ow, 8) + (kw-1)*dw / sw + 1 (slack for 8-wide loads) */
    int64_t row_stride; /* sw * phase_len */
} DwPlane;

DwPlane dw_plane_layout(const Conv2dGeom *g);
/* Fills buf (rows * row_stride floats) from one input plane x (h x w). */
void dw_plane_fill(float *buf, const float *x, const Conv2dGeom *g, const DwPlane *p);
/* The offset in a plane row of the first column read by tap j: phase and shift. */
static inline int64_t dw_tap_offset(const Conv2dGeom *g, const DwPlane *p, int64_t j) {
    int64_t c = j * g->dw;
    return (c % g->sw) * p->phase_len + c / g->sw;
}

/* ---- AVX2/FMA kernels (files *_avx2.c, compiled with -mavx2 -mfma) ---- */

/* Call these only when hg_cpu_has_avx2_fma() (tensor/cpu.h). */
/* Depthwise forward of one plane: out (oh x ow) from a filled DwPlane buffer, the
 * plane's kh x kw weights and bias (conv2d_depthwise_avx2.c). */
void conv2d_depthwise_plane_avx2(float *out, const float *plane, const float *w, float b,
                                 const Conv2dGeom *g, const DwPlane *p);
/* dw_plane_fill with AVX2 de-interleaving for stride 2 (the same result). */
void dw_plane_fill_avx2(float *buf, const float *x, const Conv2dGeom *g, const DwPlane *p);
/* 1x1 convolution of one image and group (conv2d_1x1_avx2.c):
 * out[o][p] = b[o] + sum_c w[o*k + c] * x[c*hw + p] for o < m and p in [p0, p1),
 * b may be NULL; panel is scratch of CONV1X1_PANEL_COLS * k floats (enough for
 * either the AVX2 or the AVX-512 kernel). */
#define CONV1X1_PANEL_COLS 48
void conv2d_1x1_columns_avx2(float *out, const float *x, const float *w, const float *b, int64_t m,
                             int64_t k, int64_t hw, int64_t p0, int64_t p1, float *panel);

/* ---- AVX-512 kernels (files *_avx512.c, compiled with the generic flags: their
 * functions carry target attributes; call them only when the CPU has it) ---- */

/* Call these only when hg_cpu_has_avx512f() (tensor/cpu.h). */
/* conv2d_depthwise_plane_avx2 and dw_plane_fill_avx2 with 16-wide vectors
 * (conv2d_depthwise_avx512.c; kernels other than 3x3/5x5 at stride 1 or 2 and
 * dilation 1 are passed on to the AVX2 version). */
void conv2d_depthwise_plane_avx512(float *out, const float *plane, const float *w, float b,
                                   const Conv2dGeom *g, const DwPlane *p);
void dw_plane_fill_avx512(float *buf, const float *x, const Conv2dGeom *g, const DwPlane *p);
/* conv2d_1x1_columns_avx2 with 16-wide vectors (the same contract). */
void conv2d_1x1_columns_avx512(float *out, const float *x, const float *w, const float *b,
                               int64_t m, int64_t k, int64_t hw, int64_t p0, int64_t p1,
                               float *panel);

#endif
