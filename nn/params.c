/* The named parameter registry: adding, finding, freezing, counting.
 * Loading and saving state dicts are in params_io.c. */
#include "nn/params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ParamSet *param_set_new(void) {
    ParamSet *ps = calloc(1, sizeof *ps);
    if (!ps) {
        hg_fail(HG_ERR_NOMEM, "param_set_new: out of memory");
        return NULL;
    }
    ps->training = true;
    return ps;
}

void param_set_free(ParamSet *ps) {
    if (!ps) return;
    for (int64_t i = 0; i < ps->count; i++) {
        free(ps->entries[i].name);
        var_free(ps->entries[i].var);
    }
    free(ps->entries);
    free(ps);
}

hg_status param_name_join(char *buf, size_t size, const char *prefix, const char *leaf) {
    int n = (prefix && *prefix) ? snprintf(buf, size, "%s.%s", prefix, leaf)
                                : snprintf(buf, size, "%s", leaf);
    if (n < 0 || (size_t)n >= size)
        return hg_fail(HG_ERR_ARG, "param_name_join: name '%s.%s' longer than %zu characters",
                       prefix ? prefix : "", leaf, size - 1);
    return HG_OK;
}

ParamEntry *param_set_entry(const ParamSet *ps, const char *name) {
    /* A linear scan: models have hundreds of entries, looked up at build and
     * load time only. */
    for (int64_t i = 0; i < ps->count; i++)
        if (strcmp(ps->entries[i].name, name) == 0) return &ps->entries[i];
    return NULL;
}

Var *param_set_find(const ParamSet *ps, const char *name) {
    ParamEntry *e = param_set_entry(ps, name);
    return e ? e->var : NULL;
}

Var *param_set_add(ParamSet *ps, const char *name, Tensor *value, bool is_buffer) {
    if (!value) return NULL; /* an earlier failure; keep its message */
    if (!name || !*name) {
        tensor_free(value);
        hg_fail(HG_ERR_ARG, "param_set_add: empty name");
        return NULL;
    }
    if (param_set_entry(ps, name)) {
        tensor_free(value);
        hg_fail(HG_ERR_ARG, "param_set_add: '%s' is already registered", name);
        return NULL;
    }
    if (ps->count == ps->capacity) {
        int64_t cap = ps->capacity ? 2 * ps->capacity : 16;
        ParamEntry *grown = realloc(ps->entries, (size_t)cap * sizeof *grown);
        if (!grown) {
            tensor_free(value);
            hg_fail(HG_ERR_NOMEM, "param_set_add: out of memory adding '%s'", name);
            return NULL;
        }
        ps->entries = grown;
        ps->capacity = cap;
    }
    char *copy = strdup(name);
    Var *var = copy ? var_new(value, !is_buffer) : NULL;
    if (!var) {
        if (!copy) tensor_free(value); /* var_new took it otherwise */
        free(copy);
        hg_fail(HG_ERR_NOMEM, "param_set_add: out of memory adding '%s'", name);
        return NULL;
    }
    ps->entries[ps->count++] = (ParamEntry){copy, var, is_buffer, false};
    return var;
}

Var *param_set_add_under(ParamSet *ps, const char *prefix, const char *leaf, Tensor *value,
                         bool is_buffer) {
    char name[512];
    if (param_name_join(name, sizeof name, prefix, leaf) != HG_OK) {
        tensor_free(value);
        return NULL;
    }
    return param_set_add(ps, name, value, is_buffer);
}

bool param_name_has_prefix(const char *name, const char *prefix) {
    if (!prefix || !*prefix) return true;
    size_t n = strlen(prefix);
    if (strncmp(name, prefix, n) != 0) return false;
    /* Match on whole dotted components only; a prefix given with its
     * trailing dot ("subnet.") also works. */
    return name[n] == '\0' || name[n] == '.' || prefix[n - 1] == '.';
}

int64_t param_set_freeze(ParamSet *ps, const char *prefix, bool frozen) {
    int64_t matched = 0;
    for (int64_t i = 0; i < ps->count; i++) {
        ParamEntry *e = &ps->entries[i];
        if (!param_name_has_prefix(e->name, prefix)) continue;
        matched++;
        if (e->is_buffer) continue;
        e->frozen = frozen;
        e->var->requires_grad = !frozen;
        if (frozen) var_zero_grad(e->var);
    }
    return matched;
}

void param_set_zero_grad(ParamSet *ps) {
    for (int64_t i = 0; i < ps->count; i++) var_zero_grad(ps->entries[i].var);
}

int64_t param_set_numel(const ParamSet *ps, bool trainable_only) {
    int64_t total = 0;
    for (int64_t i = 0; i < ps->count; i++) {
        const ParamEntry *e = &ps->entries[i];
        if (trainable_only && !param_entry_trainable(e)) continue;
        total += tensor_numel(e->var->value);
    }
    return total;
}

void param_set_train(ParamSet *ps, bool training) {
    ps->training = training;
}
