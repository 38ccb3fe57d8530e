/* The distinct rows of a flow's condition (N, Dc), private to the flows.
 *
 * HGAD's condition is the positional code (spec section 3): a batch of B maps
 * of H x W positions has N = B H W rows but only H W distinct ones. The
 * coupling subnet's first Linear multiplies every row by the condition's
 * columns of its weight; with the rows factored as cond = unique[index], that
 * product is computed once per distinct row and gathered, and its weight
 * gradient is summed per distinct row before the product
 * (models/coupling_fused.c). The factorization is computed once per forward
 * of a chain and shared (by reference) by its blocks and their backwards. */
#ifndef HG_MODELS_COND_ROWS_H
#define HG_MODELS_COND_ROWS_H

#include <stdbool.h>
#include <stdint.h>

#include "tensor/tensor.h"

typedef struct CondRows {
    int64_t rows;     /* N */
    int64_t distinct; /* U */
    int64_t dim;      /* Dc */
    Tensor *unique;   /* (U, Dc) the distinct rows, in order of first occurrence */
    int32_t *index;   /* (N) row i of the condition is row index[i] of unique */
    /* The rows of each distinct row, grouped: group u is rows
     * members[start[u]] .. members[start[u + 1] - 1], in increasing order. */
    int32_t *start;   /* (U + 1) */
    int32_t *members; /* (N) */
    int refcount;
} CondRows;

/* Factors a 2-d condition (N, Dc) (any strides): rows are equal when their
 * float bit patterns are (found by hashing, confirmed by comparison). Returns
 * a new factorization with one reference, or NULL with the error set. */
CondRows *cond_rows_factor(const Tensor *cond);

/* Another reference to `rows` (returned). */
CondRows *cond_rows_ref(CondRows *rows);

/* Drops a reference; the last one frees. NULL is fine. */
void cond_rows_free(CondRows *rows);

/* When the factored path is used. AUTO: when at most half of the rows are
 * distinct (the measured gain of fewer rows outweighs the gather and the
 * factoring). The other two are for tests comparing the paths. */
typedef enum CondRowsMode {
    COND_ROWS_AUTO,
    COND_ROWS_NEVER, /* always the dense path (no factoring at all) */
    COND_ROWS_ALWAYS /* always the factored path, even with all rows distinct */
} CondRowsMode;

/* Process-wide; AUTO by default. Set it only while no flow is running. */
void cond_rows_set_mode(CondRowsMode mode);
CondRowsMode cond_rows_mode(void);

/* Whether the factored path should be used for `rows` under the current mode. */
bool cond_rows_worthwhile(const CondRows *rows);

#endif
