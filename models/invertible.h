/* One interface for every invertible module of a normalizing flow (FrEIA's):
 *
 *   y = module(x, c)          forward,  logdet += log |det dy/dx|
 *   x = module^-1(y, c)       reverse,  logdet += log |det dx/dy| = -(forward's)
 *
 * x and y are (N, D) rows, c is the condition (N, Dc) or NULL. Both directions
 * run on the autograd tape, so either can be trained through. A chain of
 * modules (models/flow.h) is itself used through this interface, so a new
 * coupling block plugs into the training loop without touching it. */
#ifndef HG_MODELS_INVERTIBLE_H
#define HG_MODELS_INVERTIBLE_H

#include "autograd/autograd.h"

typedef struct InvertibleModule InvertibleModule;

typedef struct InvertibleModuleOps {
    const char *name;
    /* Returns y (or x when reverse). *logdet is an (N) Var: NULL on entry means
     * zero; the module replaces it with logdet + its own term. */
    Var *(*forward)(const InvertibleModule *m, Tape *tape, Var *x, Var *cond, bool reverse,
                    Var **logdet);
    void (*free)(InvertibleModule *m); /* frees the module, not its ParamSet entries */
} InvertibleModuleOps;

struct InvertibleModule {
    const InvertibleModuleOps *ops;
    int64_t dim;      /* D */
    int64_t cond_dim; /* Dc, 0 when unconditional */
};

static inline Var *invertible_forward(const InvertibleModule *m, Tape *tape, Var *x, Var *cond,
                                      bool reverse, Var **logdet) {
    return m->ops->forward(m, tape, x, cond, reverse, logdet);
}

#endif
