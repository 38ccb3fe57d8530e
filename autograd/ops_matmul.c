/* Differentiable matrix products, each forward followed by its backward.
 * The products themselves are tensor_matmul (our gemm underneath); the
 * transpose flags let every backward product read its operands in place. */
#include "autograd/internal.h"

static hg_status matmul_backward(Var *out);
static hg_status linear_backward(Var *out);

/* ---- matmul ---- */
/* ints[0], ints[1]: trans_a, trans_b.  saved[0] = a (needed for dL/db),
 * saved[1] = b (needed for dL/da). */
Var *ag_matmul(Tape *t, Var *a, Var *b, bool trans_a, bool trans_b) {
    Var *in[2] = {a, b};
    if (!ag_check("matmul", t, 2, in)) return NULL;
    Var *out = tape_record(t, "matmul", tensor_matmul(a->value, b->value, trans_a, trans_b), 2, in,
                           matmul_backward);
    if (out == NULL) return NULL;
    out->ints[0] = trans_a;
    out->ints[1] = trans_b;
    if (b->requires_grad && !ag_save(out, 0, a->value)) return NULL;
    if (a->requires_grad && !ag_save(out, 1, b->value)) return NULL;
    return out;
}

/* C = op(A) op(B) with G = dL/dC:
 *   dL/d op(A) = G op(B)^T,   dL/d op(B) = op(A)^T G.
 * Un-transposing gives, for the stored A and B:
 *   dA = G op(B)^T            (A not transposed)   = matmul(G, B, 0, !tb)
 *   dA = (G op(B)^T)^T = op(B) G^T  (A transposed) = matmul(B, G, tb, 1)
 *   dB = op(A)^T G            (B not transposed)   = matmul(A, G, !ta, 0)
 *   dB = (op(A)^T G)^T = G^T op(A)  (B transposed) = matmul(G, A, 1, ta)
 * Vectors are handled as matrices: a 1-d a (k) as a row (1, k), a 1-d b (k)
 * as a column (k, 1), with G given the dim the product dropped (size 1) and
 * that dim squeezed from the gradient again. Transposes do not apply to
 * vectors (as in tensor_matmul). Batched products give gradients of the
 * broadcast batch shape, which var_accumulate_grad sums back down. */
static hg_status matmul_backward(Var *out) {
    Var *va = out->inputs[0], *vb = out->inputs[1];
    bool a_vec = va->value->ndim == 1, b_vec = vb->value->ndim == 1;
    bool ta = out->ints[0] && !a_vec, tb = out->ints[1] && !b_vec;
    Tensor *a = NULL, *b = NULL, *g = NULL, *grad = NULL;
    hg_status s = HG_OK;
    if (va->requires_grad)
        b = b_vec ? tensor_unsqueeze(out->saved[1], -1) : tensor_ref(out->saved[1]);
    if (vb->requires_grad)
        a = a_vec ? tensor_unsqueeze(out->saved[0], 0) : tensor_ref(out->saved[0]);
    Tensor *g_row = a_vec ? tensor_unsqueeze(out->grad, b_vec ? 0 : -2) : tensor_ref(out->grad);
    g = g_row && b_vec ? tensor_unsqueeze(g_row, -1) : tensor_ref(g_row);
    tensor_free(g_row);
    if (g == NULL || (va->requires_grad && b == NULL) || (vb->requires_grad && a == NULL))
        s = hg_last_status();

    if (s == HG_OK && va->requires_grad) {
        grad = ta ? tensor_matmul(b, g, tb, true) : tensor_matmul(g, b, false, !tb);
        if (a_vec && grad) { /* (.., 1, k) -> (.., k) */
            Tensor *squeezed = tensor_squeeze(grad, -2);
            tensor_free(grad);
            grad = squeezed;
        }
        s = var_accumulate_grad(va, grad);
    }
    if (s == HG_OK && vb->requires_grad) {
        grad = tb ? tensor_matmul(g, a, true, ta) : tensor_matmul(a, g, !ta, false);
        if (b_vec && grad) { /* (.., k, 1) -> (.., k) */
            Tensor *squeezed = tensor_squeeze(grad, -1);
            tensor_free(grad);
            grad = squeezed;
        }
        s = var_accumulate_grad(vb, grad);
    }
    tensor_free(a);
    tensor_free(b);
    tensor_free(g);
    return s;
}

/* ---- linear ---- */
/* x (..., in) is viewed as a matrix x2 (N, in); y2 = x2 W^T (+ b) is (N, out)
 * and y is y2 viewed as (..., out).  saved[0] = x2 (for dW), saved[1] = W
 * (for dx); ints[0] = N. inputs = {x, W} or {x, W, b}. */
Var *ag_linear(Tape *t, Var *x, Var *weight, Var *bias) {
    Var *in[3] = {x, weight, bias};
    int n_in = bias ? 3 : 2;
    if (!ag_check("linear", t, n_in, in)) return NULL;
    const Tensor *xv = x->value, *wv = weight->value;
    char sx[96], sw[96], sb[96];
    if (xv->ndim < 1 || wv->ndim != 2 || xv->shape[xv->ndim - 1] != wv->shape[1]) {
        hg_fail(HG_ERR_SHAPE, "linear: input %s does not match weight %s (out, in)",
                tensor_shape_str(xv, sx, sizeof sx), tensor_shape_str(wv, sw, sizeof sw));
        return NULL;
    }
    if (bias && (bias->value->ndim != 1 || bias->value->shape[0] != wv->shape[0])) {
        hg_fail(HG_ERR_SHAPE, "linear: bias %s does not match weight %s (out, in)",
                tensor_shape_str(bias->value, sb, sizeof sb), tensor_shape_str(wv, sw, sizeof sw));
        return NULL;
    }
    int64_t n_features = wv->shape[1], n_out = wv->shape[0];
    int64_t rows = 1;
    for (int d = 0; d < xv->ndim - 1; d++) rows *= xv->shape[d];

    Tensor *x2 = tensor_reshape(xv, SHAPE(rows, n_features));
    Tensor *y2 = x2 ? tensor_matmul(x2, wv, false, true) : NULL;
    if (y2 && bias && tensor_add_(y2, bias->value) != HG_OK) {
        tensor_free(y2);
        y2 = NULL;
    }
    int64_t y_shape[TENSOR_MAX_DIMS];
    for (int d = 0; d < xv->ndim - 1; d++) y_shape[d] = xv->shape[d];
    y_shape[xv->ndim - 1] = n_out;
    Tensor *y = y2 ? tensor_reshape(y2, xv->ndim, y_shape) : NULL;
    tensor_free(y2);

    Var *out = tape_record(t, "linear", y, n_in, in, linear_backward);
    if (out == NULL) {
        tensor_free(x2);
        return NULL;
    }
    out->ints[0] = rows;
    if (out->requires_grad && weight->requires_grad) {
        out->saved[0] = x2; /* already a view of our own */
        x2 = NULL;
    }
    tensor_free(x2);
    if (x->requires_grad && !ag_save(out, 1, wv)) return NULL;
    return out;
}

/* y2 = x2 W^T + b with G = dL/dy2 (N, out):
 *   dx2 = G W (N, in),  dW = G^T x2 (out, in),  db = column sums of G (out). */
static hg_status linear_backward(Var *out) {
    Var *x = out->inputs[0], *w = out->inputs[1], *b = out->n_inputs > 2 ? out->inputs[2] : NULL;
    int64_t rows = out->ints[0], n_out = w->value->shape[0];
    Tensor *g = tensor_reshape(out->grad, SHAPE(rows, n_out));
    if (g == NULL) return hg_last_status();
    hg_status s = HG_OK;
    if (x->requires_grad) {
        Tensor *dx2 = tensor_matmul(g, out->saved[1], false, false);
        Tensor *dx = dx2 ? tensor_reshape(dx2, x->value->ndim, x->value->shape) : NULL;
        tensor_free(dx2);
        s = var_accumulate_grad(x, dx);
    }
    if (s == HG_OK && w->requires_grad)
        s = var_accumulate_grad(w, tensor_matmul(g, out->saved[0], true, false));
    if (s == HG_OK && b && b->requires_grad) {
        int rows_dim = 0;
        s = var_accumulate_grad(b, tensor_sum(g, 1, &rows_dim, false));
    }
    tensor_free(g);
    return s;
}
