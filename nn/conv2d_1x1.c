/* 1x1 convolution, stride 1, no padding: a matrix product per image, with no
 * im2col since an NCHW image already is the (Cin x HW) matrix the GEMM needs.
 * The forward uses the direct kernel of conv2d_1x1_avx512.c or
 * conv2d_1x1_avx2.c when the CPU has one (no packing of W, x read once), gemm()
 * otherwise; the backward uses gemm().
 * Per image n and group g (Cin_g, Cout_g channels):
 *
 *   forward:   out[n]_g = W_g (Cout_g x Cin_g) @ x[n]_g (Cin_g x HW)  (+ b)
 *   backward:  dx[n]_g  = W_g^T @ dout[n]_g
 *              dW_g     = sum_n dout[n]_g (Cout_g x HW) @ x[n]_g^T
 *              db       = sum over n and HW of dout */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "nn/conv2d_kernels.h"
#include "tensor/gemm.h"

/* Pixel columns per task of the direct kernels: a multiple of both tile widths
 * (24 for AVX2, 48 for AVX-512), small enough that a 64x64 image gives the two
 * threads of a static schedule nearly equal shares (43 tasks), large enough
 * that a task outweighs its scheduling. */
#define COLUMNS_PER_TASK 96
/* Output rows per task at the least when rows are split too. */
#define ROWS_PER_BLOCK_MIN 32

typedef void (*Columns1x1)(float *out, const float *x, const float *w, const float *b, int64_t m,
                           int64_t k, int64_t hw, int64_t p0, int64_t p1, float *panel);

hg_status conv2d_1x1_forward(float *out, const float *x, const float *w, const float *b,
                             const Conv2dGeom *g, bool portable) {
    int64_t hw = g->h * g->w, cin_g = g->c_in / g->groups, cout_g = g->c_out / g->groups;
    Columns1x1 columns = NULL;
    if (!portable && hg_cpu_has_avx512f())
        columns = conv2d_1x1_columns_avx512;
    else if (!portable && hg_cpu_has_avx2_fma())
        columns = conv2d_1x1_columns_avx2;
    if (columns) {
        /* Tasks are (image, group, column range, row block): disjoint parts of
         * out. Rows are split (in blocks of 8, the AVX-512 tile height) only
         * when the columns alone give the threads too few tasks: small maps
         * (8x8, 16x16) with many channels. Each row block packs its own copy
         * of the columns, a small cost next to its rows of products. */
        int64_t per_image = (hw + COLUMNS_PER_TASK - 1) / COLUMNS_PER_TASK;
        int64_t col_tasks = g->n * g->groups * per_image;
        int64_t want = 4 * (int64_t)omp_get_max_threads();
        int64_t row_blocks = col_tasks < want ? (want + col_tasks - 1) / col_tasks : 1;
        int64_t max_blocks = (cout_g + ROWS_PER_BLOCK_MIN - 1) / ROWS_PER_BLOCK_MIN;
        if (row_blocks > max_blocks) row_blocks = max_blocks;
        if (row_blocks < 1) row_blocks = 1;
        int64_t block_rows = ((cout_g + row_blocks - 1) / row_blocks + 7) / 8 * 8;
        if (block_rows < 8) block_rows = 8; /* cout_g == 0: no tasks */
        row_blocks = (cout_g + block_rows - 1) / block_rows;
        int64_t tasks = col_tasks * row_blocks;
        int failed = 0;
#pragma omp parallel if (g->n * g->c_out * cin_g * hw > (1 << 18))
        {
            float *panel = malloc(sizeof(float) * (size_t)(CONV1X1_PANEL_COLS * cin_g + 1));
            if (!panel) {
#pragma omp atomic write
                failed = 1;
            }
#pragma omp for schedule(static)
            for (int64_t t = 0; t < tasks; t++) {
                if (!panel) continue;
                int64_t ct = t / row_blocks, o0 = (t % row_blocks) * block_rows;
                int64_t o1 = o0 + block_rows < cout_g ? o0 + block_rows : cout_g;
                int64_t img = ct / (g->groups * per_image), grp = (ct / per_image) % g->groups;
                int64_t p0 = (ct % per_image) * COLUMNS_PER_TASK;
                int64_t p1 = p0 + COLUMNS_PER_TASK < hw ? p0 + COLUMNS_PER_TASK : hw;
                int64_t orow = grp * cout_g + o0; /* first output channel of the task */
                columns(out + (img * g->c_out + orow) * hw, x + (img * g->c_in + grp * cin_g) * hw,
                        w + orow * cin_g, b ? b + orow : NULL, o1 - o0, cin_g, hw, p0, p1, panel);
            }
            free(panel);
        }
        if (failed)
            return hg_fail(HG_ERR_NOMEM, "conv2d (1x1): no memory for a %d x %lld panel",
                           CONV1X1_PANEL_COLS, (long long)cin_g);
        return HG_OK;
    }
    for (int64_t n = 0; n < g->n; n++) {
        float *on = out + n * g->c_out * hw;
        if (b) {
            /* Start from the bias and let the GEMM add the product (beta = 1). */
#pragma omp parallel for schedule(static) if (g->c_out * hw > (1 << 16))
            for (int64_t o = 0; o < g->c_out; o++)
                for (int64_t k = 0; k < hw; k++) on[o * hw + k] = b[o];
        }
        for (int64_t grp = 0; grp < g->groups; grp++)
            gemm(false, false, cout_g, hw, cin_g, 1.0f, w + grp * cout_g * cin_g, cin_g,
                 x + (n * g->c_in + grp * cin_g) * hw, hw, b ? 1.0f : 0.0f, on + grp * cout_g * hw,
                 hw);
    }
    return HG_OK;
}

hg_status conv2d_1x1_backward(float *dx, float *dw, float *db, const float *dout, const float *x,
                              const float *w, const Conv2dGeom *g) {
    int64_t hw = g->h * g->w, cin_g = g->c_in / g->groups, cout_g = g->c_out / g->groups;
    if (db) conv2d_bias_grad(db, dout, g);
    for (int64_t n = 0; n < g->n; n++) {
        for (int64_t grp = 0; grp < g->groups; grp++) {
            const float *dn = dout + (n * g->c_out + grp * cout_g) * hw;
            const float *wg = w + grp * cout_g * cin_g;
            int64_t xoff = (n * g->c_in + grp * cin_g) * hw;
            if (dx)
                gemm(true, false, cin_g, hw, cout_g, 1.0f, wg, cin_g, dn, hw, 0.0f, dx + xoff, hw);
            if (dw)
                gemm(false, true, cout_g, cin_g, hw, 1.0f, dn, hw, x + xoff, hw, n ? 1.0f : 0.0f,
                     dw + grp * cout_g * cin_g, cin_g);
        }
    }
    if (dw && g->n == 0) memset(dw, 0, sizeof(float) * (size_t)(g->c_out * cin_g));
    return HG_OK;
}
