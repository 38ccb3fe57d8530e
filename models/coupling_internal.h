/* Private to the coupling block's sources (models/coupling.c, the generic-op
 * reference, and models/coupling_fused.c, the fused forward/backward). */
#ifndef HG_MODELS_COUPLING_INTERNAL_H
#define HG_MODELS_COUPLING_INTERNAL_H

#include "models/coupling.h"

typedef struct CouplingBlock {
    InvertibleModule base;
    CouplingOptions options;
    int64_t passive, active; /* D - D/2 and D/2 */
    Linear subnet_in, subnet_out;
    Var *global_scale, *global_offset, *w_perm, *w_perm_inv;
} CouplingBlock;

/* The forward direction as one tape op: returns y (N, D) and sets *logdet_term
 * (N) to the block's own log-det (sum s + sum log g), itself on the tape and
 * differentiable. x and cond are checked by the caller. */
Var *coupling_fused_forward(const CouplingBlock *b, Tape *tape, Var *x, Var *cond,
                            Var **logdet_term);

#endif
