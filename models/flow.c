#include "models/flow.h"

#include <stdio.h>
#include <stdlib.h>

#include "models/coupling_internal.h"

typedef struct FlowChain {
    InvertibleModule base;
    int count;
    InvertibleModule **modules;
} FlowChain;

static Var *chain_forward(const InvertibleModule *m, Tape *tape, Var *x, Var *cond, bool reverse,
                          Var **logdet) {
    const FlowChain *chain = (const FlowChain *)m;
    /* One factorization of the condition's distinct rows for all the blocks. */
    CondShare share = {0};
    for (int i = 0; i < chain->count && x; i++) {
        const InvertibleModule *step = chain->modules[reverse ? chain->count - 1 - i : i];
        x = coupling_forward_shared(step, tape, x, cond, reverse, logdet, &share);
    }
    cond_rows_free(share.rows);
    return x;
}

static void chain_free(InvertibleModule *m) {
    FlowChain *chain = (FlowChain *)m;
    for (int i = 0; i < chain->count; i++) invertible_free(chain->modules[i]);
    free(chain->modules);
    free(chain);
}

static const InvertibleModuleOps chain_ops = {"chain", chain_forward, chain_free};

const InvertibleModule *flow_chain_at(const InvertibleModule *m, int k) {
    if (!m || m->ops != &chain_ops) return NULL;
    const FlowChain *chain = (const FlowChain *)m;
    return k >= 0 && k < chain->count ? chain->modules[k] : NULL;
}

void invertible_free(InvertibleModule *m) {
    if (m) m->ops->free(m);
}

InvertibleModule *flow_chain_new(int count, InvertibleModule **modules) {
    FlowChain *chain = calloc(1, sizeof *chain);
    InvertibleModule **copy = count > 0 ? malloc(sizeof *copy * (size_t)count) : NULL;
    bool ok = chain && copy && count > 0;
    for (int i = 0; ok && i < count; i++)
        ok = modules[i] && modules[i]->dim == modules[0]->dim &&
             modules[i]->cond_dim == modules[0]->cond_dim;
    if (!ok) {
        for (int i = 0; i < count; i++) invertible_free(modules[i]);
        free(copy);
        free(chain);
        if (count <= 0) hg_fail(HG_ERR_ARG, "flow: a chain needs at least one module");
        else if (hg_last_status() == HG_OK)
            hg_fail(HG_ERR_ARG, "flow: modules of a chain must share dim and cond_dim");
        return NULL;
    }
    for (int i = 0; i < count; i++) copy[i] = modules[i];
    chain->base = (InvertibleModule){&chain_ops, modules[0]->dim, modules[0]->cond_dim};
    chain->count = count;
    chain->modules = copy;
    return &chain->base;
}

InvertibleModule *flow_coupling_chain_new(ParamSet *ps, const char *prefix, int blocks,
                                          const CouplingOptions *options, Rng *rng) {
    if (blocks <= 0 || blocks > 1024) {
        hg_fail(HG_ERR_ARG, "flow: invalid number of coupling blocks %d", blocks);
        return NULL;
    }
    InvertibleModule **modules = calloc((size_t)blocks, sizeof *modules);
    if (!modules) {
        hg_fail(HG_ERR_NOMEM, "flow: out of memory");
        return NULL;
    }
    char name[256];
    for (int k = 0; k < blocks; k++) {
        int len = snprintf(name, sizeof name, "%s%smodule_list.%d", prefix ? prefix : "",
                           prefix && *prefix ? "." : "", k);
        modules[k] = len < (int)sizeof name ? coupling_new(ps, name, options, rng) : NULL;
        if (!modules[k]) {
            if (len >= (int)sizeof name) hg_fail(HG_ERR_ARG, "flow: prefix too long");
            for (int j = 0; j < k; j++) invertible_free(modules[j]);
            free(modules);
            return NULL;
        }
    }
    InvertibleModule *chain = flow_chain_new(blocks, modules);
    free(modules);
    return chain;
}
