/* Private to the coupling block's sources (models/coupling.c, the generic-op
 * reference, and models/coupling_fused.c, the fused forward/backward) and to
 * models/flow.c, which shares one condition factorization among its blocks. */
#ifndef HG_MODELS_COUPLING_INTERNAL_H
#define HG_MODELS_COUPLING_INTERNAL_H

#include "models/cond_rows.h"
#include "models/coupling.h"

typedef struct CouplingBlock {
    InvertibleModule base;
    CouplingOptions options;
    int64_t passive, active; /* D - D/2 and D/2 */
    Linear subnet_in, subnet_out;
    Var *global_scale, *global_offset, *w_perm, *w_perm_inv;
} CouplingBlock;

/* The condition's distinct rows (models/cond_rows.h) for one forward of a
 * chain: factored by the first block that needs them, then reused by the
 * others. Start zeroed; release `rows` with cond_rows_free() at the end. */
typedef struct CondShare {
    bool done;      /* factoring was decided (and done when worthwhile) */
    CondRows *rows; /* NULL: the dense path */
} CondShare;

/* invertible_forward() for any module; a coupling block's fused forward takes
 * (or first fills) the condition's factorization from `share`. */
Var *coupling_forward_shared(const InvertibleModule *m, Tape *tape, Var *x, Var *cond, bool reverse,
                             Var **logdet, CondShare *share);

/* The forward direction as one tape op: returns y (N, D) and sets *logdet_term
 * (N) to the block's own log-det (sum s + sum log g), itself on the tape and
 * differentiable. x and cond are checked by the caller. `rows`, when not NULL,
 * is cond's factorization: the condition's share of the first Linear is then
 * computed per distinct row (the op keeps a reference for its backward). */
Var *coupling_fused_forward(const CouplingBlock *b, Tape *tape, Var *x, Var *cond, CondRows *rows,
                            Var **logdet_term);

/* One row's active channels, vectorized (models/coupling_fused_avx2.c; call
 * only when the CPU has AVX2 and FMA): from the raw second-Linear output a_row
 * (2A, before bias and the 0.1), writes tanh values, exp(s) and y2 = x2 exp(s)
 * + t for the leading channels in multiples of 8, sets *s_sum to their sum of
 * s, and returns how many channels it did (the caller does the rest). */
int64_t coupling_active_row_avx2(int64_t active, const float *a_row, const float *b2,
                                 const float *x2, float alpha, bool new_clamp, float *th_out,
                                 float *exp_s_out, float *y2_out, float *s_sum);

#endif
