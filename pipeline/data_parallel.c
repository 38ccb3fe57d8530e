#include "pipeline/data_parallel.h"

#include <stdlib.h>
#include <string.h>

#include "pipeline/comm.h"

hg_status dp_batch_shard(int64_t batch, int64_t *first, int64_t *count) {
    const int ranks = comm_size();
    if (batch < 1 || batch % ranks != 0)
        return hg_fail(
            HG_ERR_ARG,
            "data parallel: a global batch of %lld images does not split evenly over %d ranks "
            "(use a batch that is a multiple of %d)",
            (long long)batch, ranks, ranks);
    *count = batch / ranks;
    *first = (int64_t)comm_rank() * *count;
    return HG_OK;
}

void gradient_buffer_free(GradientBuffer *b) {
    free(b->data);
    free(b->vars);
    memset(b, 0, sizeof *b);
}

static hg_status reserve(GradientBuffer *b, int64_t vars, int64_t floats) {
    if (vars > b->vars_capacity) {
        Var **v = realloc(b->vars, sizeof(Var *) * (size_t)vars);
        if (!v)
            return hg_fail(HG_ERR_NOMEM, "data parallel: out of memory for %lld parameters",
                           (long long)vars);
        b->vars = v;
        b->vars_capacity = vars;
    }
    if (floats > b->capacity) {
        float *d = realloc(b->data, sizeof(float) * (size_t)floats);
        if (!d)
            return hg_fail(HG_ERR_NOMEM, "data parallel: out of memory for %lld gradients",
                           (long long)floats);
        b->data = d;
        b->capacity = floats;
    }
    return HG_OK;
}

hg_status dp_average_gradients(Hgad *model, int level, GradientBuffer *b, int64_t *floats) {
    if (floats) *floats = 0;
    const int ranks = comm_size();
    if (ranks == 1) return HG_OK;
    const int64_t n_vars = hgad_level_parameters(model, level, NULL, 0);
    hg_status s = reserve(b, n_vars, 0);
    if (s != HG_OK) return s;
    hgad_level_parameters(model, level, b->vars, n_vars);
    /* Parameters without a gradient (the intra-class ones before the full
     * phase) have none on any rank: skip them, as the optimizer does. */
    int64_t total = 0;
    for (int64_t i = 0; i < n_vars; i++) {
        const Tensor *g = b->vars[i]->grad;
        if (!g) continue;
        if (!tensor_is_contiguous(g))
            return hg_fail(HG_ERR_UNSUPPORTED,
                           "data parallel: level %d gradient %lld is not contiguous", level,
                           (long long)i);
        total += tensor_numel(g);
    }
    if ((s = reserve(b, n_vars, total)) != HG_OK) return s;
    /* One flat buffer, reduced in buckets (comm.h): few large messages
     * instead of one per tensor. */
    int64_t offset = 0;
    for (int64_t i = 0; i < n_vars; i++) {
        const Tensor *g = b->vars[i]->grad;
        if (!g) continue;
        memcpy(b->data + offset, tensor_data(g), sizeof(float) * (size_t)tensor_numel(g));
        offset += tensor_numel(g);
    }
    if ((s = comm_allreduce_sum_float(b->data, total)) != HG_OK) return s;
    const float scale = 1.0f / (float)ranks;
    offset = 0;
    for (int64_t i = 0; i < n_vars; i++) {
        Tensor *g = b->vars[i]->grad;
        if (!g) continue;
        float *dst = tensor_data(g);
        const float *src = b->data + offset;
        const int64_t n = tensor_numel(g);
        for (int64_t k = 0; k < n; k++) dst[k] = src[k] * scale;
        offset += n;
    }
    if (floats) *floats = total;
    return HG_OK;
}

hg_status dp_average_losses(HgadLossValues *values, int levels) {
    const int ranks = comm_size();
    if (ranks == 1) return HG_OK;
    enum { TERMS = 6 };
    double sums[HGAD_MAX_LEVELS * TERMS];
    for (int l = 0; l < levels; l++) {
        const HgadLossValues *v = &values[l];
        const double terms[TERMS] = {v->loss, v->L_g, v->L_mi, v->L_e, v->L_g_intra, v->L_z};
        memcpy(sums + l * TERMS, terms, sizeof terms);
    }
    hg_status s = comm_allreduce_sum_double(sums, (int64_t)levels * TERMS);
    if (s != HG_OK) return s;
    for (int l = 0; l < levels; l++) {
        const double *m = sums + l * TERMS;
        values[l] = (HgadLossValues){m[0] / ranks, m[1] / ranks, m[2] / ranks,
                                     m[3] / ranks, m[4] / ranks, m[5] / ranks};
    }
    return HG_OK;
}

static uint64_t fnv1a(uint64_t h, const void *data, size_t bytes) {
    const unsigned char *p = data;
    for (size_t i = 0; i < bytes; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

uint64_t dp_param_checksum(const ParamSet *ps) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int64_t i = 0; i < param_set_size(ps); i++) {
        const ParamEntry *e = param_set_at(ps, i);
        const Tensor *t = e->var->value;
        h = fnv1a(h, e->name, strlen(e->name) + 1);
        h = fnv1a(h, t->shape, sizeof(int64_t) * (size_t)t->ndim);
        /* parameter values are contiguous (params.h); copy otherwise */
        Tensor *c = tensor_is_contiguous(t) ? NULL : tensor_contiguous(t);
        const Tensor *v = c ? c : t;
        h = fnv1a(h, tensor_data(v), sizeof(float) * (size_t)tensor_numel(v));
        tensor_free(c);
    }
    return h;
}

hg_status dp_check_replicas(const ParamSet *ps) {
    if (comm_size() == 1) return HG_OK;
    const uint64_t mine = dp_param_checksum(ps);
    uint64_t root = mine;
    hg_status s = comm_broadcast(&root, sizeof root, 0);
    if (s != HG_OK) return s;
    if (mine != root)
        s = hg_fail(
            HG_ERR_CHECK,
            "data parallel: this rank's parameters differ from rank 0's (checksum %016llx, rank 0 "
            "%016llx)",
            (unsigned long long)mine, (unsigned long long)root);
    return comm_agree(s);
}
