#include "models/cond_rows.h"

#include <stdlib.h>
#include <string.h>

/* Rows above which the row hashes are computed by OpenMP threads. */
#define HASH_PARALLEL_MIN 1024

static CondRowsMode current_mode = COND_ROWS_AUTO;

void cond_rows_set_mode(CondRowsMode mode) {
    current_mode = mode;
}

CondRowsMode cond_rows_mode(void) {
    return current_mode;
}

bool cond_rows_worthwhile(const CondRows *rows) {
    switch (current_mode) {
    case COND_ROWS_NEVER:
        return false;
    case COND_ROWS_ALWAYS:
        return true;
    default:
        return rows->rows > 0 && 2 * rows->distinct <= rows->rows;
    }
}

/* A 64-bit hash of a row's bit patterns: four interleaved FNV-1a style lanes
 * (independent multiplies) folded at the end. Equal rows hash equally; unequal
 * rows are told apart by the comparison that follows a hash match. */
static uint64_t row_hash(const uint32_t *words, int64_t count) {
    const uint64_t prime = 0x100000001b3ull;
    uint64_t lane[4] = {0xcbf29ce484222325ull, 0x84222325cbf29ce4ull, 0x9e3779b97f4a7c15ull,
                        0x7f4a7c159e3779b9ull};
    int64_t j = 0;
    for (; j + 4 <= count; j += 4)
        for (int k = 0; k < 4; k++) lane[k] = (lane[k] ^ words[j + k]) * prime;
    for (; j < count; j++) lane[0] = (lane[0] ^ words[j]) * prime;
    uint64_t h = (uint64_t)count;
    for (int k = 0; k < 4; k++) h = (h ^ lane[k] ^ (lane[k] >> 29)) * prime;
    return h ^ (h >> 32);
}

static CondRows *fail_free(CondRows *rows, const char *message) {
    cond_rows_free(rows);
    hg_fail(HG_ERR_NOMEM, "%s", message);
    return NULL;
}

CondRows *cond_rows_factor(const Tensor *cond) {
    if (!cond || cond->ndim != 2) {
        hg_fail(HG_ERR_SHAPE, "cond_rows: the condition must be 2-d (N, Dc)");
        return NULL;
    }
    const int64_t N = cond->shape[0], Dc = cond->shape[1];
    if (N >= INT32_MAX) {
        hg_fail(HG_ERR_ARG, "cond_rows: %lld rows do not fit 32-bit indices", (long long)N);
        return NULL;
    }
    CondRows *out = calloc(1, sizeof *out);
    if (!out) return fail_free(NULL, "cond_rows: out of memory");
    out->refcount = 1;
    out->rows = N;
    out->dim = Dc;
    /* Open addressing with at least twice as many slots as rows. */
    int64_t slots = 16;
    while (slots < 2 * N) slots *= 2;
    Tensor *dense = tensor_contiguous(cond);
    uint64_t *hashes = malloc(sizeof *hashes * (size_t)(N ? N : 1));
    int32_t *table = malloc(sizeof *table * (size_t)slots);
    int32_t *first = malloc(sizeof *first * (size_t)(N ? N : 1)); /* first row of each group */
    out->index = malloc(sizeof *out->index * (size_t)(N ? N : 1));
    out->members = malloc(sizeof *out->members * (size_t)(N ? N : 1));
    if (!dense || !hashes || !table || !first || !out->index || !out->members) {
        tensor_free(dense);
        free(hashes), free(table), free(first);
        return fail_free(out, "cond_rows: out of memory");
    }
    const float *data = tensor_data(dense);
    const size_t row_bytes = sizeof(float) * (size_t)Dc;
#pragma omp parallel for schedule(static) if (N > HASH_PARALLEL_MIN)
    for (int64_t i = 0; i < N; i++) hashes[i] = row_hash((const uint32_t *)(data + i * Dc), Dc);

    for (int64_t s = 0; s < slots; s++) table[s] = -1;
    int64_t U = 0;
    for (int64_t i = 0; i < N; i++) {
        int64_t s = (int64_t)(hashes[i] & (uint64_t)(slots - 1));
        for (;; s = (s + 1) & (slots - 1)) {
            int32_t u = table[s];
            if (u < 0) { /* a new distinct row */
                table[s] = (int32_t)U;
                first[U] = (int32_t)i;
                out->index[i] = (int32_t)U++;
                break;
            }
            const int64_t f = first[u];
            if (hashes[f] == hashes[i] &&
                (!row_bytes || !memcmp(data + f * Dc, data + i * Dc, row_bytes))) {
                out->index[i] = u;
                break;
            }
        }
    }
    free(hashes);
    free(table);
    out->distinct = U;

    out->unique = tensor_empty(SHAPE(U, Dc));
    out->start = calloc((size_t)U + 1, sizeof *out->start);
    if (!out->unique || !out->start) {
        tensor_free(dense);
        free(first);
        return fail_free(out, "cond_rows: out of memory");
    }
    float *unique = tensor_data(out->unique);
    for (int64_t u = 0; u < U; u++)
        if (Dc) memcpy(unique + u * Dc, data + (int64_t)first[u] * Dc, row_bytes);
    tensor_free(dense);
    free(first);
    /* Counting sort of the rows by group (stable: increasing within a group). */
    for (int64_t i = 0; i < N; i++) out->start[out->index[i] + 1]++;
    for (int64_t u = 0; u < U; u++) out->start[u + 1] += out->start[u];
    int32_t *fill = malloc(sizeof *fill * (size_t)(U ? U : 1));
    if (!fill) return fail_free(out, "cond_rows: out of memory");
    memcpy(fill, out->start, sizeof *fill * (size_t)U);
    for (int64_t i = 0; i < N; i++) out->members[fill[out->index[i]]++] = (int32_t)i;
    free(fill);
    return out;
}

CondRows *cond_rows_ref(CondRows *rows) {
    if (rows) rows->refcount++;
    return rows;
}

void cond_rows_free(CondRows *rows) {
    if (!rows || --rows->refcount > 0) return;
    tensor_free(rows->unique);
    free(rows->index);
    free(rows->start);
    free(rows->members);
    free(rows);
}
