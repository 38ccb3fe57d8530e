/* A chain of invertible modules (FrEIA's SequenceINN), itself an
 * InvertibleModule: forward runs the modules in order and sums their
 * log-dets; reverse runs their inverses in the opposite order. */
#ifndef HG_MODELS_FLOW_H
#define HG_MODELS_FLOW_H

#include "models/coupling.h"

/* A chain that owns `count` modules (the array is copied; the modules are
 * taken, also on failure). All must share dim and cond_dim. */
InvertibleModule *flow_chain_new(int count, InvertibleModule **modules);

/* K coupling blocks named {prefix}.module_list.{k}. (the public code's names
 * for nfs.{level}), each with `options`. */
InvertibleModule *flow_coupling_chain_new(ParamSet *ps, const char *prefix, int blocks,
                                          const CouplingOptions *options, Rng *rng);

/* Module k of a chain made by flow_chain_new (NULL when `m` is not a chain or
 * k is out of range), e.g. to audit one block. */
const InvertibleModule *flow_chain_at(const InvertibleModule *m, int k);

/* Frees any invertible module (a chain frees its modules). NULL is fine. */
void invertible_free(InvertibleModule *m);

#endif
