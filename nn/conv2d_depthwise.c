/* Depthwise convolution (groups == Cin == Cout): every channel is filtered by
 * its own kh x kw kernel,
 *
 *   out[n,c,y,x] = b[c] + sum_{i,j} w[c,0,i,j] * xp[n,c, y*sh + i*dh, x*sw + j*dw]
 *
 * where xp is the zero-padded input. There is no channel reduction, so GEMM does
 * not fit; instead each (n, c) plane is copied once into a padded, phase-split
 * buffer (DwPlane in conv2d_kernels.h) in which the inputs read by one tap for
 * consecutive x are consecutive, and the loops over x become unit-stride
 * multiply-adds for any stride, dilation and kernel size. The AVX-512 and AVX2
 * kernels (conv2d_depthwise_avx512.c, conv2d_depthwise_avx2.c; the widest the
 * CPU runs) keep blocks of outputs in registers across taps; the portable one
 * here is the reference and the fallback. Backward:
 *
 *   dw[c,i,j] = sum_{n,y,x} dout[n,c,y,x] * xp[n,c, y*sh + i*dh, x*sw + j*dw]
 *   dxp[n,c, y*sh + i*dh, x*sw + j*dw] += w[c,i,j] * dout[n,c,y,x], dx = interior of dxp
 *   db[c] = sum_{n,y,x} dout[n,c,y,x] */
#include <stdlib.h>
#include <string.h>

#include "nn/conv2d_kernels.h"
#include "tensor/cpu.h"

DwPlane dw_plane_layout(const Conv2dGeom *g) {
    DwPlane p;
    int64_t ow_rounded = (g->ow + 7) / 8 * 8;
    p.rows = (g->oh - 1) * g->sh + (g->kh - 1) * g->dh + 1;
    p.phase_len = ow_rounded + (g->kw - 1) * g->dw / g->sw + 1;
    p.row_stride = g->sw * p.phase_len;
    return p;
}

/* Padded columns pc = k*sw + phase that hold input columns (0 <= pc - pl < w):
 * k in [*lo, *hi), clamped to [0, phase_len). */
static void phase_valid_range(const Conv2dGeom *g, const DwPlane *p, int64_t phase, int64_t *lo,
                              int64_t *hi) {
    int64_t a = g->pl - phase; /* input column = k*sw - a */
    int64_t l = a <= 0 ? 0 : (a + g->sw - 1) / g->sw;
    int64_t b = g->w - 1 + a;
    int64_t h = b < 0 ? 0 : b / g->sw + 1;
    if (l > p->phase_len) l = p->phase_len;
    if (h > p->phase_len) h = p->phase_len;
    if (h < l) h = l;
    *lo = l;
    *hi = h;
}

void dw_plane_fill(float *buf, const float *x, const Conv2dGeom *g, const DwPlane *p) {
    for (int64_t r = 0; r < p->rows; r++) {
        float *dst_row = buf + r * p->row_stride;
        int64_t iy = r - g->pt;
        if (iy < 0 || iy >= g->h) {
            memset(dst_row, 0, sizeof(float) * (size_t)p->row_stride);
            continue;
        }
        const float *src = x + iy * g->w;
        for (int64_t ph = 0; ph < g->sw; ph++) {
            float *dst = dst_row + ph * p->phase_len;
            int64_t lo, hi, a = g->pl - ph;
            phase_valid_range(g, p, ph, &lo, &hi);
            for (int64_t k = 0; k < lo; k++) dst[k] = 0;
            if (g->sw == 1) {
                if (hi > lo) memcpy(dst + lo, src + (lo - a), sizeof(float) * (size_t)(hi - lo));
            } else {
                for (int64_t k = lo; k < hi; k++) dst[k] = src[k * g->sw - a];
            }
            for (int64_t k = hi; k < p->phase_len; k++) dst[k] = 0;
        }
    }
}

/* The portable forward of one plane: out (oh x ow) accumulated tap by tap. */
static void plane_forward(float *out, const float *plane, const float *w, float b,
                          const Conv2dGeom *g, const DwPlane *p) {
    for (int64_t y = 0; y < g->oh; y++) {
        float *o = out + y * g->ow;
        for (int64_t x = 0; x < g->ow; x++) o[x] = b;
        for (int64_t i = 0; i < g->kh; i++) {
            const float *row = plane + (y * g->sh + i * g->dh) * p->row_stride;
            for (int64_t j = 0; j < g->kw; j++) {
                const float *src = row + dw_tap_offset(g, p, j);
                float wv = w[i * g->kw + j];
                for (int64_t x = 0; x < g->ow; x++) o[x] += wv * src[x];
            }
        }
    }
}

/* Threads above this many multiply-adds. */
#define DW_PARALLEL_WORK (1 << 16)
/* Plane buffers up to this many floats (32 KB) stay in L1 next to the outputs;
 * taller planes are processed in bands of output rows. */
#define DW_BAND_FLOATS 8192

/* Output rows per band: as few bands as keep the buffer under DW_BAND_FLOATS,
 * of equal height (even, for the AVX2 kernel's row pairs). */
static int64_t band_rows(const Conv2dGeom *g) {
    DwPlane whole = dw_plane_layout(g);
    int64_t bands = (whole.rows * whole.row_stride + DW_BAND_FLOATS - 1) / DW_BAND_FLOATS;
    if (bands < 1) bands = 1;
    int64_t rows = (g->oh + bands - 1) / bands;
    rows += rows % 2;
    return rows < g->oh ? rows : g->oh;
}

/* The geometry of output rows [y0, y0 + rows): the same convolution on the input
 * shifted up by y0*sh rows (pt may become negative). */
static Conv2dGeom band_geometry(const Conv2dGeom *g, int64_t y0, int64_t rows) {
    Conv2dGeom b = *g;
    b.oh = rows < g->oh - y0 ? rows : g->oh - y0;
    b.pt = (int)(g->pt - y0 * g->sh);
    return b;
}

hg_status conv2d_depthwise_forward(float *out, const float *x, const float *w, const float *b,
                                   const Conv2dGeom *g, bool portable) {
    bool avx512 = !portable && hg_cpu_has_avx512f();
    bool avx2 = !portable && !avx512 && hg_cpu_has_avx2_fma();
    int64_t planes = g->n * g->c_in, kk = g->kh * g->kw, ohw = g->oh * g->ow;
    int64_t band = band_rows(g);
    Conv2dGeom first = band_geometry(g, 0, band);
    DwPlane fp = dw_plane_layout(&first);
    size_t buf_bytes = (sizeof(float) * (size_t)(fp.rows * fp.row_stride) + 63) / 64 * 64;
    int failed = 0;
#pragma omp parallel if (planes * ohw * kk > DW_PARALLEL_WORK)
    {
        float *buf = aligned_alloc(64, buf_bytes);
        if (!buf) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int64_t q = 0; q < planes; q++) {
            if (!buf) continue;
            int64_t c = q % g->c_in;
            const float *xq = x + q * g->h * g->w;
            for (int64_t y0 = 0; y0 < g->oh; y0 += band) {
                Conv2dGeom gb = band_geometry(g, y0, band);
                DwPlane p = dw_plane_layout(&gb);
                float *o = out + q * ohw + y0 * g->ow;
                if (avx512) {
                    dw_plane_fill_avx512(buf, xq, &gb, &p);
                    conv2d_depthwise_plane_avx512(o, buf, w + c * kk, b ? b[c] : 0.0f, &gb, &p);
                } else if (avx2) {
                    dw_plane_fill_avx2(buf, xq, &gb, &p);
                    conv2d_depthwise_plane_avx2(o, buf, w + c * kk, b ? b[c] : 0.0f, &gb, &p);
                } else {
                    dw_plane_fill(buf, xq, &gb, &p);
                    plane_forward(o, buf, w + c * kk, b ? b[c] : 0.0f, &gb, &p);
                }
            }
        }
        free(buf);
    }
    if (failed)
        return hg_fail(HG_ERR_NOMEM, "conv2d (depthwise): no memory for a %lld-float plane buffer",
                       (long long)(fp.rows * fp.row_stride));
    return HG_OK;
}

/* dw[c] += the correlation of the plane with dout (the dw formula in the header). */
static void plane_weight_grad(double *acc, const float *plane, const float *dout,
                              const Conv2dGeom *g, const DwPlane *p) {
    for (int64_t i = 0; i < g->kh; i++) {
        for (int64_t j = 0; j < g->kw; j++) {
            int64_t off = dw_tap_offset(g, p, j);
            double s = 0;
            for (int64_t y = 0; y < g->oh; y++) {
                const float *src = plane + (y * g->sh + i * g->dh) * p->row_stride + off;
                const float *d = dout + y * g->ow;
                float part = 0;
#pragma omp simd reduction(+ : part)
                for (int64_t x = 0; x < g->ow; x++) part += d[x] * src[x];
                s += part;
            }
            acc[i * g->kw + j] += s;
        }
    }
}

/* dx of one plane: scatter w * dout into the padded, phase-split gradient
 * buffer `grad`, then read the interior back into NCHW order. */
static void plane_input_grad(float *dx, float *grad, const float *w, const float *dout,
                             const Conv2dGeom *g, const DwPlane *p) {
    memset(grad, 0, sizeof(float) * (size_t)(p->rows * p->row_stride));
    for (int64_t y = 0; y < g->oh; y++) {
        const float *d = dout + y * g->ow;
        for (int64_t i = 0; i < g->kh; i++) {
            float *row = grad + (y * g->sh + i * g->dh) * p->row_stride;
            for (int64_t j = 0; j < g->kw; j++) {
                float *dst = row + dw_tap_offset(g, p, j);
                float wv = w[i * g->kw + j];
                for (int64_t x = 0; x < g->ow; x++) dst[x] += wv * d[x];
            }
        }
    }
    for (int64_t iy = 0; iy < g->h; iy++) {
        float *dst = dx + iy * g->w;
        int64_t r = iy + g->pt;
        if (r >= p->rows) { /* rows below the last window: never read */
            memset(dst, 0, sizeof(float) * (size_t)g->w);
            continue;
        }
        const float *row = grad + r * p->row_stride;
        for (int64_t ix = 0; ix < g->w; ix++) {
            int64_t pc = ix + g->pl, k = pc / g->sw;
            dst[ix] = k < p->phase_len ? row[(pc % g->sw) * p->phase_len + k] : 0.0f;
        }
    }
}

hg_status conv2d_depthwise_backward(float *dx, float *dw, float *db, const float *dout,
                                    const float *x, const float *w, const Conv2dGeom *g) {
    if (db) conv2d_bias_grad(db, dout, g);
    if (!dx && !dw) return HG_OK;
    DwPlane p = dw_plane_layout(g);
    int64_t kk = g->kh * g->kw, hw = g->h * g->w, ohw = g->oh * g->ow;
    size_t plane_floats = (size_t)(p.rows * p.row_stride);
    int failed = 0;
    /* Threads own channels: dw[c] and the dx planes of channel c are theirs alone. */
#pragma omp parallel if (g->n * g->c_in * ohw * kk > DW_PARALLEL_WORK)
    {
        float *buf = malloc(sizeof(float) * plane_floats);
        double *acc = malloc(sizeof(double) * (size_t)kk);
        if (!buf || !acc) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int64_t c = 0; c < g->c_in; c++) {
            if (!buf || !acc) continue;
            for (int64_t k = 0; k < kk; k++) acc[k] = 0;
            for (int64_t n = 0; n < g->n; n++) {
                int64_t q = n * g->c_in + c;
                if (dw) {
                    dw_plane_fill(buf, x + q * hw, g, &p);
                    plane_weight_grad(acc, buf, dout + q * ohw, g, &p);
                }
                if (dx) plane_input_grad(dx + q * hw, buf, w + c * kk, dout + q * ohw, g, &p);
            }
            if (dw)
                for (int64_t k = 0; k < kk; k++) dw[c * kk + k] = (float)acc[k];
        }
        free(buf);
        free(acc);
    }
    if (failed)
        return hg_fail(HG_ERR_NOMEM, "conv2d_backward (depthwise): no memory for a plane buffer");
    return HG_OK;
}
