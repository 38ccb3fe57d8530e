#include "models/hgad.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/ops.h"
#include "tensor/ops.h"

HgadConfig hgad_default_config(int levels, int64_t dim, int64_t classes) {
    HgadConfig c = {
        .levels = levels,
        .cond_dim = 256,
        .coupling_blocks = 12,
        .clamp = 1.9f,
        .prior = PRIOR_HIERARCHICAL,
        .classes = classes,
        .intra_centers = 10,
        .label_smoothing = 0.02f,
        .lambda1 = 1.0f,
        .lambda2 = 100.0f,
        .use_mi = true,
        .use_entropy = true,
        .lr = 2e-4,
        .beta1 = 0.95,
        .beta2 = 0.99,
        .flow_weight_decay = 1e-4,
        .meta_epochs = 25,
        .sub_epochs = 8,
        .inter_epochs = 2,
        .seed = 0,
    };
    for (int l = 0; l < HGAD_MAX_LEVELS; l++) c.dims[l] = dim;
    return c;
}

PriorPhase hgad_phase(const HgadConfig *config, int meta_epoch) {
    return meta_epoch < config->inter_epochs ? PRIOR_PHASE_INTER : PRIOR_PHASE_FULL;
}

static hg_status check_config(const HgadConfig *c) {
    if (c->levels < 1 || c->levels > HGAD_MAX_LEVELS)
        return hg_fail(HG_ERR_ARG, "hgad: levels %d outside [1, %d]", c->levels, HGAD_MAX_LEVELS);
    for (int l = 0; l < c->levels; l++)
        if (c->dims[l] < 2)
            return hg_fail(HG_ERR_ARG, "hgad: level %d has %lld channels, need at least 2", l,
                           (long long)c->dims[l]);
    if (c->cond_dim < 0 || c->cond_dim % 4 != 0)
        return hg_fail(HG_ERR_ARG, "hgad: condition size %lld is not a multiple of 4",
                       (long long)c->cond_dim);
    if (c->coupling_blocks < 1) return hg_fail(HG_ERR_ARG, "hgad: need at least one coupling block");
    if (c->classes < 1) return hg_fail(HG_ERR_ARG, "hgad: need at least one class");
    if (c->intra_centers < 1) return hg_fail(HG_ERR_ARG, "hgad: need at least one intra-class center");
    if (!(c->lr > 0)) return hg_fail(HG_ERR_ARG, "hgad: learning rate must be positive");
    return HG_OK;
}

/* Optimizer groups of the public code (section 6): flows with L2 weight decay,
 * class centers and class weights without. */
static hg_status build_optimizer(Hgad *m) {
    const HgadConfig *c = &m->config;
    m->optimizer = optim_new(OPTIM_ADAM);
    if (!m->optimizer) return hg_last_status();
    OptimHyper flows = optim_default_hyper(OPTIM_ADAM);
    flows.lr = c->lr;
    flows.beta1 = c->beta1;
    flows.beta2 = c->beta2;
    flows.weight_decay = c->flow_weight_decay;
    OptimHyper centers = flows, weights = flows;
    centers.weight_decay = weights.weight_decay = 0;
    if (c->centers_lr_x3) centers.lr = 3 * c->lr;
    m->group_flows = optim_add_group(m->optimizer, "flows", &flows);
    m->group_centers = optim_add_group(m->optimizer, "centers", &centers);
    m->group_weights = optim_add_group(m->optimizer, "weights", &weights);
    if (m->group_flows < 0 || m->group_centers < 0 || m->group_weights < 0) return hg_last_status();
    for (int64_t i = 0; i < param_set_size(m->params); i++) {
        ParamEntry *e = param_set_at(m->params, i);
        if (!param_entry_trainable(e)) continue;
        int group = !strncmp(e->name, "nfs.", 4)                                   ? m->group_flows
                    : (!strncmp(e->name, "mus.", 4) || !strncmp(e->name, "mu_deltas.", 10)) ? m->group_centers
                                                                                              : m->group_weights;
        hg_status s = optim_add_param(m->optimizer, group, e->name, e->var);
        if (s != HG_OK) return s;
    }
    return HG_OK;
}

Hgad *hgad_new(const HgadConfig *config) {
    if (check_config(config) != HG_OK) return NULL;
    Hgad *m = calloc(1, sizeof *m);
    if (!m) {
        hg_fail(HG_ERR_NOMEM, "hgad: out of memory");
        return NULL;
    }
    m->config = *config;
    m->params = param_set_new();
    Rng rng = rng_new(config->seed);
    bool ok = m->params != NULL;
    for (int l = 0; ok && l < config->levels; l++) {
        m->level_params[l] = param_set_size(m->params);
        char prefix[32];
        snprintf(prefix, sizeof prefix, "nfs.%d", l);
        CouplingOptions o = coupling_default_options(config->dims[l], config->cond_dim);
        o.clamp = config->clamp;
        o.new_clamp = config->new_clamp;
        o.hard_permutation = config->hard_permutation;
        o.hidden = config->subnet_hidden;
        m->flows[l] = flow_coupling_chain_new(m->params, prefix, config->coupling_blocks, &o, &rng);
        if (config->prior == PRIOR_GAUSSIAN) {
            m->priors[l] = gaussian_prior_new(config->dims[l]);
        } else {
            MixturePriorOptions po = {config->dims[l], config->classes,
                                      config->prior == PRIOR_HIERARCHICAL ? config->intra_centers : 1,
                                      config->label_smoothing};
            m->priors[l] = mixture_prior_new(m->params, l, &po, &rng);
        }
        ok = m->flows[l] && m->priors[l];
        m->level_params[l + 1] = ok ? param_set_size(m->params) : m->level_params[l];
    }
    if (!ok || build_optimizer(m) != HG_OK) {
        hgad_free(m);
        return NULL;
    }
    return m;
}

void hgad_free(Hgad *m) {
    if (!m) return;
    for (int l = 0; l < HGAD_MAX_LEVELS; l++) {
        invertible_free(m->flows[l]);
        prior_free(m->priors[l]);
    }
    optim_free(m->optimizer);
    param_set_free(m->params);
    free(m);
}

static hg_status check_level(const Hgad *m, int level, const Tensor *x, const Tensor *cond) {
    char xs[64], cs[64];
    if (level < 0 || level >= m->config.levels)
        return hg_fail(HG_ERR_ARG, "hgad: level %d outside [0, %d)", level, m->config.levels);
    const int64_t D = m->config.dims[level], Dc = m->config.cond_dim;
    if (x->ndim != 2 || x->shape[1] != D)
        return hg_fail(HG_ERR_SHAPE, "hgad: level %d expects vectors (N, %lld), got %s", level,
                       (long long)D, tensor_shape_str(x, xs, sizeof xs));
    if (Dc > 0 && (!cond || cond->ndim != 2 || cond->shape[1] != Dc || cond->shape[0] != x->shape[0]))
        return hg_fail(HG_ERR_SHAPE, "hgad: condition %s for vectors %s, expected (%lld, %lld)",
                       cond ? tensor_shape_str(cond, cs, sizeof cs) : "missing",
                       tensor_shape_str(x, xs, sizeof xs), (long long)x->shape[0], (long long)Dc);
    return HG_OK;
}

Var *hgad_level_loss(const Hgad *m, Tape *tape, int level, Var *x, Var *cond,
                     const int64_t *labels, PriorPhase phase, PriorLosses *terms) {
    PriorLosses local;
    PriorLosses *t = terms ? terms : &local;
    memset(t, 0, sizeof *t);
    if (!x || check_level(m, level, x->value, cond ? cond->value : NULL) != HG_OK) return NULL;
    Var *logdet = NULL;
    Var *z = invertible_forward(m->flows[level], tape, x, m->config.cond_dim ? cond : NULL, false,
                                &logdet);
    if (!z || m->priors[level]->ops->losses(m->priors[level], tape, z, logdet, labels, phase, t) != HG_OK)
        return NULL;
    const HgadConfig *c = &m->config;
    if (c->prior == PRIOR_GAUSSIAN) return t->L_z;
    /* lambda1 L_g - lambda2 L_mi + L_e [+ L_g_intra + L_z] (section 5). */
    Var *loss = ag_scale(tape, t->L_g, c->lambda1);
    if (c->use_mi) loss = ag_sub(tape, loss, ag_scale(tape, t->L_mi, c->lambda2));
    if (c->use_entropy) loss = ag_add(tape, loss, t->L_e);
    if (t->L_g_intra) loss = ag_add(tape, loss, t->L_g_intra);
    if (t->L_z) loss = ag_add(tape, loss, t->L_z);
    return loss;
}

static double value_or_nan(const Var *v) {
    return v ? (double)tensor_data(v->value)[0] : NAN;
}

/* torch 1.13's zero_grad(set_to_none=False): gradients that exist are zeroed,
 * not dropped, so Adam keeps stepping those parameters (decaying moments and
 * weight decay) on the steps of the other levels, as in the public code. */
static void zero_existing_grads(ParamSet *ps) {
    for (int64_t i = 0; i < param_set_size(ps); i++) {
        Var *v = param_set_at(ps, i)->var;
        if (v->grad) tensor_fill_(v->grad, 0.0f);
    }
}

hg_status hgad_compute_gradients(Hgad *m, int level, const Tensor *x, const Tensor *cond,
                                 const int64_t *labels, int meta_epoch, HgadLossValues *values) {
    hg_status s = check_level(m, level, x, cond);
    if (s != HG_OK) return s;
    Tape *tape = tape_new();
    if (!tape) return hg_last_status();
    PriorLosses terms;
    Var *xv = ag_constant(tape, tensor_ref(x));
    Var *cv = m->config.cond_dim ? ag_constant(tape, tensor_ref(cond)) : NULL;
    Var *loss = hgad_level_loss(m, tape, level, xv, cv, labels, hgad_phase(&m->config, meta_epoch),
                                &terms);
    if (!loss) {
        tape_free(tape);
        return hg_last_status();
    }
    if (values)
        *values = (HgadLossValues){value_or_nan(loss),        value_or_nan(terms.L_g),
                                   value_or_nan(terms.L_mi),  value_or_nan(terms.L_e),
                                   value_or_nan(terms.L_g_intra), value_or_nan(terms.L_z)};
    if (!isfinite(tensor_data(loss->value)[0])) {
        tape_free(tape);
        return hg_fail(HG_ERR_CHECK, "hgad: level %d loss is not finite (%g)", level,
                       (double)tensor_data(loss->value)[0]);
    }
    zero_existing_grads(m->params);
    s = tape_backward(tape, loss, NULL);
    tape_free(tape);
    return s;
}

hg_status hgad_apply_step(Hgad *m) {
    return optim_step(m->optimizer);
}

hg_status hgad_train_step(Hgad *m, int level, const Tensor *x, const Tensor *cond,
                          const int64_t *labels, int meta_epoch, HgadLossValues *values) {
    hg_status s = hgad_compute_gradients(m, level, x, cond, labels, meta_epoch, values);
    return s == HG_OK ? hgad_apply_step(m) : s;
}

int64_t hgad_level_parameters(const Hgad *m, int level, Var **vars, int64_t cap) {
    if (level < 0 || level >= m->config.levels) return 0;
    int64_t n = 0;
    for (int64_t i = m->level_params[level]; i < m->level_params[level + 1]; i++) {
        ParamEntry *e = param_set_at(m->params, i);
        if (!param_entry_trainable(e)) continue;
        if (vars && n < cap) vars[n] = e->var;
        n++;
    }
    return n;
}

void hgad_set_lr(Hgad *m, double lr) {
    optim_set_lr(m->optimizer, lr);
    if (m->config.centers_lr_x3) optim_set_group_lr(m->optimizer, m->group_centers, 3 * lr);
}

hg_status hgad_flow_forward(const Hgad *m, int level, const Tensor *x, const Tensor *cond,
                            bool reverse, Tensor **z, Tensor **logdet) {
    *z = *logdet = NULL;
    hg_status s = check_level(m, level, x, cond);
    if (s != HG_OK) return s;
    Tape *tape = tape_new();
    if (!tape) return hg_last_status();
    tape_set_grad_enabled(tape, false);
    Var *ld = NULL;
    Var *out = invertible_forward(m->flows[level], tape, ag_constant(tape, tensor_ref(x)),
                                  m->config.cond_dim ? ag_constant(tape, tensor_ref(cond)) : NULL,
                                  reverse, &ld);
    s = out && ld ? HG_OK : hg_last_status();
    if (s == HG_OK) {
        *z = tensor_ref(out->value);
        *logdet = tensor_ref(ld->value);
    }
    tape_free(tape);
    return s;
}

hg_status hgad_level_evidence(const Hgad *m, int level, const Tensor *x, const Tensor *cond,
                              int64_t class_id, Tensor **logp, Tensor **neg_entropy) {
    Tensor *z = NULL, *ld = NULL;
    *logp = *neg_entropy = NULL;
    hg_status s = hgad_flow_forward(m, level, x, cond, false, &z, &ld);
    if (s == HG_OK)
        s = m->priors[level]->ops->score(m->priors[level], z, ld, class_id, logp, neg_entropy);
    tensor_free(z);
    tensor_free(ld);
    return s;
}
