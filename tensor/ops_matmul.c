/* tensor_matmul (tensor/ops.h): torch.matmul semantics with optional transposes
 * of the last two dims, on top of gemm() (tensor/gemm.h).
 *
 * Each operand's matrices are handed to gemm() in place whenever a row-major
 * description exists: rows contiguous (column stride 1, lda = row stride), or
 * columns contiguous (row stride 1), which is the row-major transpose with the
 * transpose flag flipped. Only other layouts are copied. When b is shared by
 * every batch entry and a's batch dims step through memory like extra rows,
 * the whole batch is one gemm() with m * batch rows (the common x @ W^T of a
 * linear layer on (B, L, C) input). */
#include <stdio.h>

#include "tensor/gemm.h"
#include "tensor/iterate.h"
#include "tensor/ops.h"

/* Multiply-adds per product below which batch entries run on separate threads
 * instead of gemm() threading each product (gemm's own threshold is similar). */
#define BATCH_PARALLEL_MAX_MACS       (96.0 * 96.0 * 96.0)
#define BATCH_PARALLEL_MIN_TOTAL_MACS 65536.0

/* One operand: the stored matrix (last two dims, or a vector as a 1 x k row /
 * k x 1 column) and how gemm() reads it. */
typedef struct MatOperand {
    const Tensor *t; /* the operand, or its contiguous copy */
    Tensor *copy;    /* owned copy, if one was needed */
    int batch_ndim;  /* leading dims */
    int64_t rows, cols, row_stride, col_stride;
    bool gemm_trans; /* transpose flag for gemm() */
    int64_t ld;      /* leading dimension for gemm() */
} MatOperand;

static void describe(MatOperand *op, const Tensor *t, bool is_b) {
    op->t = t;
    if (t->ndim == 1) { /* a: 1 x k row; b: k x 1 column */
        op->batch_ndim = 0;
        op->rows = is_b ? t->shape[0] : 1;
        op->cols = is_b ? 1 : t->shape[0];
        op->row_stride = is_b ? t->stride[0] : 0;
        op->col_stride = is_b ? 0 : t->stride[0];
    } else {
        op->batch_ndim = t->ndim - 2;
        op->rows = t->shape[t->ndim - 2];
        op->cols = t->shape[t->ndim - 1];
        op->row_stride = t->stride[t->ndim - 2];
        op->col_stride = t->stride[t->ndim - 1];
    }
}

/* Chooses how gemm() reads the operand (trans is the requested transpose);
 * makes a contiguous copy when neither rows nor columns are contiguous. */
static hg_status prepare(MatOperand *op, const Tensor *t, bool trans, bool is_b) {
    op->copy = NULL;
    describe(op, t, is_b);
    for (;;) {
        int64_t r = op->rows, c = op->cols, rs = op->row_stride, cs = op->col_stride;
        /* Row-major with ld = rs: rows contiguous and not overlapping. */
        if ((c <= 1 || cs == 1) && (r <= 1 || rs >= c)) {
            op->gemm_trans = trans;
            op->ld = r <= 1 ? (c > 1 ? c : 1) : rs;
            return HG_OK;
        }
        /* Columns contiguous: the stored transpose is row-major with ld = cs. */
        if ((r <= 1 || rs == 1) && (c <= 1 || cs >= r)) {
            op->gemm_trans = !trans;
            op->ld = c <= 1 ? (r > 1 ? r : 1) : cs;
            return HG_OK;
        }
        if (op->copy) break; /* cannot happen: a contiguous copy is row-major */
        op->copy = tensor_contiguous(t);
        if (!op->copy) return hg_last_status();
        describe(op, op->copy, is_b);
    }
    return hg_fail(HG_ERR_UNSUPPORTED, "matmul: no row-major layout for operand");
}

/* Strides of the operand's batch dims seen through the broadcast batch shape. */
static void batch_strides(const MatOperand *op, int ndim, const int64_t *shape, int64_t *stride) {
    int lead = ndim - op->batch_ndim;
    for (int i = 0; i < ndim; i++) {
        int j = i - lead;
        stride[i] = (j < 0 || op->t->shape[j] == 1) ? 0 : op->t->stride[j];
    }
}

/* When b is the same matrix for every batch entry and op(A) is read row by row,
 * a's batch dims may continue its row dim with one stride: then the whole batch
 * is an (nbatch * m) x k matrix with that row stride. Returns it, or 0. */
static int64_t folded_row_stride(const MatOperand *a, int64_t m, int64_t k, int ndim,
                                 const int64_t *shape, const int64_t *a_stride,
                                 const int64_t *b_stride) {
    if (a->gemm_trans) return 0;
    for (int i = 0; i < ndim; i++)
        if (shape[i] > 1 && b_stride[i] != 0) return 0;
    int64_t stride = m > 1 ? a->ld : 0, extent = m; /* rows so far and their stride */
    for (int i = ndim - 1; i >= 0; i--) {
        if (shape[i] == 1) continue;
        if (extent == 1)
            stride = a_stride[i];
        else if (a_stride[i] != stride * extent)
            return 0;
        extent *= shape[i];
    }
    if (extent <= 1) return k > 1 ? k : 1;
    return stride >= k && stride > 0 ? stride : 0;
}

/* A batch of products C[i] = op(A[i]) op(B[i]), C contiguous. */
typedef struct Batch {
    const MatOperand *a, *b;
    const float *pa, *pb;
    float *pc;
    int64_t m, n, k;
    int ndim; /* broadcast batch dims */
    int64_t nbatch, shape[TENSOR_MAX_DIMS], a_stride[TENSOR_MAX_DIMS], b_stride[TENSOR_MAX_DIMS];
} Batch;

static void batch_product(const Batch *bt, int64_t i) {
    const float *ai = bt->pa + iter_offset_of(i, bt->ndim, bt->shape, bt->a_stride);
    const float *bi = bt->pb + iter_offset_of(i, bt->ndim, bt->shape, bt->b_stride);
    gemm(bt->a->gemm_trans, bt->b->gemm_trans, bt->m, bt->n, bt->k, 1.0f, ai, bt->a->ld, bi,
         bt->b->ld, 0.0f, bt->pc + i * bt->m * bt->n, bt->n);
}

static Tensor *matmul_fail(hg_status code, const Tensor *a, const Tensor *b, bool ta, bool tb,
                           const char *what) {
    char sa[128], sb[128];
    hg_fail(code, "matmul: shapes %s%s and %s%s %s", tensor_shape_str(a, sa, sizeof sa),
            ta ? "^T" : "", tensor_shape_str(b, sb, sizeof sb), tb ? "^T" : "", what);
    return NULL;
}

Tensor *tensor_matmul(const Tensor *a, const Tensor *b, bool trans_a, bool trans_b) {
    if (!a || !b) {
        hg_fail(HG_ERR_ARG, "matmul: input tensor is NULL");
        return NULL;
    }
    if (a->ndim == 0 || b->ndim == 0)
        return matmul_fail(HG_ERR_SHAPE, a, b, trans_a, trans_b, "include a 0-d tensor");
    /* A vector operand has no transpose (as torch's .T on 1-d). */
    bool ta = a->ndim > 1 && trans_a, tb = b->ndim > 1 && trans_b;
    MatOperand oa, ob;
    describe(&oa, a, false);
    describe(&ob, b, true);
    int64_t m = ta ? oa.cols : oa.rows, k = ta ? oa.rows : oa.cols;
    int64_t kb = tb ? ob.cols : ob.rows, n = tb ? ob.rows : ob.cols;
    if (k != kb) return matmul_fail(HG_ERR_SHAPE, a, b, ta, tb, "do not match in the inner dim");

    int bnd;
    int64_t bshape[TENSOR_MAX_DIMS];
    if (tensor_broadcast_shape("matmul", oa.batch_ndim, a->shape, ob.batch_ndim, b->shape, &bnd,
                               bshape) != HG_OK)
        return matmul_fail(HG_ERR_SHAPE, a, b, ta, tb, "have batch dims that do not broadcast");
    int ndim = bnd;
    int64_t shape[TENSOR_MAX_DIMS];
    for (int i = 0; i < bnd; i++) shape[i] = bshape[i];
    if (a->ndim > 1) shape[ndim++] = m;
    if (b->ndim > 1) shape[ndim++] = n;
    Tensor *out = tensor_empty(ndim, shape);
    if (!out || tensor_numel(out) == 0) return out;

    if (prepare(&oa, a, ta, false) != HG_OK || prepare(&ob, b, tb, true) != HG_OK) {
        tensor_free(oa.copy);
        tensor_free(ob.copy);
        tensor_free(out);
        return NULL;
    }
    Batch bt = {.a = &oa, .b = &ob, .m = m, .n = n, .k = k, .ndim = bnd, .nbatch = 1};
    for (int i = 0; i < bnd; i++) {
        bt.shape[i] = bshape[i];
        bt.nbatch *= bshape[i];
    }
    batch_strides(&oa, bnd, bshape, bt.a_stride);
    batch_strides(&ob, bnd, bshape, bt.b_stride);
    bt.pa = tensor_data(oa.t);
    bt.pb = tensor_data(ob.t);
    bt.pc = tensor_data(out);

    int64_t fold_lda =
        bt.nbatch > 1 ? folded_row_stride(&oa, m, k, bnd, bshape, bt.a_stride, bt.b_stride) : 0;
    double macs = (double)m * (double)n * (double)k;
    if (fold_lda > 0) {
        gemm(false, ob.gemm_trans, bt.nbatch * m, n, k, 1.0f, bt.pa, fold_lda, bt.pb, ob.ld, 0.0f,
             bt.pc, n);
    } else if (bt.nbatch > 1 && macs < BATCH_PARALLEL_MAX_MACS &&
               macs * (double)bt.nbatch > BATCH_PARALLEL_MIN_TOTAL_MACS) {
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < bt.nbatch; i++) batch_product(&bt, i);
    } else {
        for (int64_t i = 0; i < bt.nbatch; i++) batch_product(&bt, i);
    }
    tensor_free(oa.copy);
    tensor_free(ob.copy);
    return out;
}
