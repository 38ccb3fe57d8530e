/* Loading and saving a ParamSet as a safetensors state dict. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/params.h"
#include "nn/safetensors.h"

/* How many names of each kind a strict-load error message lists. */
#define LOAD_MESSAGE_NAMES 3

void load_report_free(LoadReport *r) {
    if (!r) return;
    for (int64_t i = 0; i < r->n_missing; i++) free(r->missing[i]);
    for (int64_t i = 0; i < r->n_unexpected; i++) free(r->unexpected[i]);
    for (int64_t i = 0; i < r->n_mismatched; i++) free(r->mismatched[i]);
    free(r->missing);
    free(r->unexpected);
    free(r->mismatched);
    memset(r, 0, sizeof *r);
}

/* Appends a copy of `name` to a name list sized for `cap` entries. */
static hg_status list_push(char **list, int64_t *n, const char *name) {
    char *copy = strdup(name);
    if (!copy) return hg_fail(HG_ERR_NOMEM, "param_set_load: out of memory");
    list[(*n)++] = copy;
    return HG_OK;
}

static bool is_float_dtype(SafetensorsDtype d) {
    return d == ST_F32 || d == ST_F16 || d == ST_BF16 || d == ST_F64 || d == ST_F8_E4M3 ||
           d == ST_F8_E5M2;
}

static bool entry_shape_matches(const SafetensorsEntry *e, const Tensor *t) {
    if (e->ndim != t->ndim) return false;
    for (int i = 0; i < e->ndim; i++)
        if (e->shape[i] != t->shape[i]) return false;
    return true;
}

static void entry_shape_str(const SafetensorsEntry *e, char *buf, size_t size) {
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < e->ndim && used < size; i++)
        used +=
            (size_t)snprintf(buf + used, size - used, i ? ",%lld" : "%lld", (long long)e->shape[i]);
    if (used < size) snprintf(buf + used, size - used, "]");
}

/* Appends "kind: a, b, c (and N more)" for the first few names of a list. */
static void describe(char *buf, size_t size, const char *kind, char *const *names, int64_t n) {
    if (n == 0) return;
    size_t used = strlen(buf);
    used += (size_t)snprintf(buf + used, used < size ? size - used : 0, "%s%lld %s (",
                             used ? "; " : "", (long long)n, kind);
    for (int64_t i = 0; i < n && i < LOAD_MESSAGE_NAMES && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? ", %s" : "%s", names[i]);
    if (n > LOAD_MESSAGE_NAMES && used < size)
        used += (size_t)snprintf(buf + used, size - used, ", ...");
    if (used < size) snprintf(buf + used, size - used, ")");
}

/* Classifies every name; `matched` receives the file's entries to load, in
 * ParamSet order, as (set index, file entry) pairs. */
typedef struct {
    int64_t set_index;
    const SafetensorsEntry *entry;
} LoadMatch;

static hg_status classify(const ParamSet *ps, const SafetensorsFile *f, const char *prefix,
                          const char *skip_prefix, LoadReport *r, LoadMatch *matched,
                          int64_t *n_matched) {
    size_t plen = prefix ? strlen(prefix) : 0;
    char full[1024], line[1200], fs[128], ms[128];
    hg_status s = HG_OK;
    for (int64_t i = 0; i < ps->count && s == HG_OK; i++) {
        const ParamEntry *pe = &ps->entries[i];
        if (snprintf(full, sizeof full, "%s%s", plen ? prefix : "", pe->name) >= (int)sizeof full)
            return hg_fail(HG_ERR_ARG, "param_set_load: name '%s' too long", pe->name);
        const SafetensorsEntry *e = safetensors_find(f, full);
        if (!e) {
            s = list_push(r->missing, &r->n_missing, pe->name);
        } else if (!is_float_dtype(e->dtype) || !entry_shape_matches(e, pe->var->value)) {
            entry_shape_str(e, fs, sizeof fs);
            snprintf(line, sizeof line, "%s: file %s %s vs model %s", pe->name,
                     safetensors_dtype_name(e->dtype), fs,
                     tensor_shape_str(pe->var->value, ms, sizeof ms));
            s = list_push(r->mismatched, &r->n_mismatched, line);
        } else {
            matched[(*n_matched)++] = (LoadMatch){i, e};
        }
    }
    for (int i = 0; i < safetensors_count(f) && s == HG_OK; i++) {
        const SafetensorsEntry *e = safetensors_entry(f, i);
        if (plen && strncmp(e->name, prefix, plen) != 0) continue;
        if (skip_prefix && *skip_prefix && strncmp(e->name, skip_prefix, strlen(skip_prefix)) == 0)
            continue;
        if (!is_float_dtype(e->dtype)) continue; /* num_batches_tracked and the like */
        if (!param_set_entry(ps, e->name + plen))
            s = list_push(r->unexpected, &r->n_unexpected, e->name + plen);
    }
    return s;
}

hg_status param_set_load_from(ParamSet *ps, const SafetensorsFile *f, const char *what, bool strict,
                              const char *prefix_filter, const char *skip_prefix,
                              LoadReport *report) {
    LoadReport local = {0};
    LoadReport *r = report ? report : &local;
    memset(r, 0, sizeof *r);
    int64_t n_file = safetensors_count(f);
    size_t cap_set = (size_t)(ps->count ? ps->count : 1), cap_file = (size_t)(n_file ? n_file : 1);
    r->missing = malloc(cap_set * sizeof(char *));
    r->mismatched = malloc(cap_set * sizeof(char *));
    r->unexpected = malloc(cap_file * sizeof(char *));
    LoadMatch *matched = malloc(cap_set * sizeof *matched);
    int64_t n_matched = 0;
    hg_status s = HG_OK;
    if (!r->missing || !r->mismatched || !r->unexpected || !matched)
        s = hg_fail(HG_ERR_NOMEM, "param_set_load: out of memory");
    if (s == HG_OK) s = classify(ps, f, prefix_filter, skip_prefix, r, matched, &n_matched);
    if (s == HG_OK && strict && (r->n_missing || r->n_unexpected || r->n_mismatched)) {
        char msg[1024] = "";
        describe(msg, sizeof msg, "missing", r->missing, r->n_missing);
        describe(msg, sizeof msg, "unexpected", r->unexpected, r->n_unexpected);
        describe(msg, sizeof msg, "mis-shaped", r->mismatched, r->n_mismatched);
        s = hg_fail(HG_ERR_FORMAT, "param_set_load %s: %s", what ? what : "", msg);
    }
    /* Every check passed (or is tolerated): copy the values in. */
    for (int64_t i = 0; s == HG_OK && i < n_matched; i++) {
        Tensor *t = safetensors_load_tensor(f, matched[i].entry->name);
        if (!t) {
            s = hg_last_status();
            break;
        }
        s = tensor_copy_(ps->entries[matched[i].set_index].var->value, t);
        tensor_free(t);
        if (s == HG_OK) r->loaded++;
    }
    free(matched);
    load_report_free(&local);
    return s;
}

hg_status param_set_load(ParamSet *ps, const char *path, bool strict, const char *prefix_filter,
                         LoadReport *report) {
    if (report) memset(report, 0, sizeof *report);
    SafetensorsFile *f = safetensors_open(path);
    if (!f) return hg_last_status();
    hg_status s = param_set_load_from(ps, f, path, strict, prefix_filter, NULL, report);
    safetensors_close(f);
    return s;
}

hg_status param_set_save(const ParamSet *ps, const char *path, int n_metadata,
                         const char *const *keys, const char *const *values) {
    SafetensorsWriter *w = safetensors_writer_new();
    if (!w) return hg_last_status();
    hg_status s = HG_OK;
    for (int64_t i = 0; s == HG_OK && i < ps->count; i++)
        s = safetensors_writer_add(w, ps->entries[i].name, ps->entries[i].var->value);
    for (int i = 0; s == HG_OK && i < n_metadata; i++)
        s = safetensors_writer_set_metadata(w, keys[i], values[i]);
    if (s == HG_OK) s = safetensors_writer_save(w, path);
    safetensors_writer_free(w);
    return s;
}
