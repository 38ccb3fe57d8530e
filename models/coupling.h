/* The affine coupling block of the HGAD flows: FrEIA's AllInOneBlock with a
 * condition, a soft (or hard) permutation and the SOFTPLUS global affine
 * (spec section 4). Forward for x (N, D), condition c (N, Dc):
 *
 *   x1, x2 = x[:, :D - D/2], x[:, D - D/2:]            (passive, active)
 *   a  = 0.1 * subnet([x1, c])                          subnet: Linear, ReLU, Linear
 *   s  = alpha * tanh(a[:, :D/2])   (or alpha * tanh(a/alpha) with new_clamp)
 *   y2 = x2 * exp(s) + a[:, D/2:]                       log-det += sum(s)
 *   v  = [x1, y2] * g + offset,  g = 0.1 softplus_{beta=0.5}(global_scale)
 *                                                       log-det += sum(log g)
 *   y  = v W^T                                          W fixed rotation
 *
 * Parameter names follow FrEIA: {prefix}.global_scale (1, D), .global_offset
 * (1, D), .w_perm (D, D), .w_perm_inv (D, D), .subnet.0.weight/bias,
 * .subnet.2.weight/bias. w_perm and w_perm_inv are buffers (never trained). */
#ifndef HG_MODELS_COUPLING_H
#define HG_MODELS_COUPLING_H

#include "models/invertible.h"
#include "nn/linear.h"
#include "nn/params.h"

typedef struct CouplingOptions {
    int64_t dim;           /* D >= 2 */
    int64_t cond_dim;      /* Dc, 0 for an unconditional block */
    int64_t hidden;        /* subnet width; 0 = 2 * (D - D/2 + Dc), the reference's */
    float clamp;           /* alpha, 1.9 in HGAD */
    bool new_clamp;        /* alpha * tanh(a / alpha) (newer FrEIA) instead of alpha * tanh(a) */
    bool hard_permutation; /* a permutation matrix instead of a random rotation */
    /* The forward direction runs as one fused tape op with a hand-written
     * backward (models/coupling_fused.c) unless generic_ops is set: then it is
     * recorded op by op (models/coupling.c), the readable reference the fused
     * op is tested against. The reverse direction always uses generic ops. */
    bool generic_ops;
} CouplingOptions;

/* HGAD's defaults for dimension D and condition size Dc. */
CouplingOptions coupling_default_options(int64_t dim, int64_t cond_dim);

/* Builds a block, registering its parameters in `ps` under `prefix`, drawing
 * the subnet weights (PyTorch Linear init) and the permutation from `rng`. */
InvertibleModule *coupling_new(ParamSet *ps, const char *prefix, const CouplingOptions *options,
                               Rng *rng);

#endif
