/* Reader for the "<name> <ndim> <shape...> <values...>" record files written by
 * tools/fixtures/make_optim_fixtures.py ('#' lines are comments). Header-only:
 * included by the suites that read those fixtures. */
#ifndef HG_TESTS_FIXTURE_RECORDS_H
#define HG_TESTS_FIXTURE_RECORDS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/tensor.h"

typedef struct {
    char name[96];
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    int64_t n;
    double *values;
} FixtureRecord;

typedef struct {
    FixtureRecord *records;
    int count;
} FixtureFile;

/* Reads every record; false (with a message on stderr) when the file is
 * missing or malformed. */
static inline bool fixture_file_read(FixtureFile *ff, const char *path) {
    memset(ff, 0, sizeof *ff);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "fixture %s: cannot open\n", path);
        return false;
    }
    int cap = 0;
    for (;;) {
        int c = fgetc(f);
        while (c == ' ' || c == '\n' || c == '\r' || c == '\t') c = fgetc(f);
        if (c == EOF) break;
        if (c == '#') {
            while (c != '\n' && c != EOF) c = fgetc(f);
            continue;
        }
        ungetc(c, f);
        if (ff->count == cap) {
            cap = cap ? 2 * cap : 64;
            ff->records = realloc(ff->records, (size_t)cap * sizeof *ff->records);
        }
        FixtureRecord *r = &ff->records[ff->count];
        memset(r, 0, sizeof *r);
        if (fscanf(f, "%95s %d", r->name, &r->ndim) != 2 || r->ndim < 0 ||
            r->ndim > TENSOR_MAX_DIMS)
            goto bad;
        r->n = 1;
        for (int d = 0; d < r->ndim; d++) {
            long long s;
            if (fscanf(f, "%lld", &s) != 1) goto bad;
            r->shape[d] = s;
            r->n *= s;
        }
        r->values = malloc(sizeof(double) * (size_t)(r->n ? r->n : 1));
        ff->count++;
        for (int64_t i = 0; i < r->n; i++)
            if (fscanf(f, "%lf", &r->values[i]) != 1) goto bad;
    }
    fclose(f);
    return true;
bad:
    fprintf(stderr, "fixture %s: malformed record %d\n", path, ff->count);
    fclose(f);
    return false;
}

static inline void fixture_file_free(FixtureFile *ff) {
    for (int i = 0; i < ff->count; i++) free(ff->records[i].values);
    free(ff->records);
    memset(ff, 0, sizeof *ff);
}

static inline const FixtureRecord *fixture_find(const FixtureFile *ff, const char *name) {
    for (int i = 0; i < ff->count; i++)
        if (strcmp(ff->records[i].name, name) == 0) return &ff->records[i];
    return NULL;
}

/* A new float tensor of the record's shape, or NULL when absent. */
static inline Tensor *fixture_tensor(const FixtureFile *ff, const char *name) {
    const FixtureRecord *r = fixture_find(ff, name);
    if (!r) return NULL;
    Tensor *t = tensor_empty(r->ndim, r->shape);
    float *d = tensor_data(t);
    for (int64_t i = 0; i < r->n; i++) d[i] = (float)r->values[i];
    return t;
}

#endif
