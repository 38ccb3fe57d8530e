/* comm.h for one process (the default build): rank 0 of 1; reductions over
 * one rank leave the data as it is, a gather is a copy. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/comm.h"

static int64_t bucket_floats = (int64_t)1 << 20;
static bool failure_shared;

hg_status comm_init(int *argc, char ***argv) {
    (void)argc, (void)argv;
    return HG_OK;
}

int comm_finalize(int exit_code) {
    return exit_code;
}

const char *comm_backend(void) {
    return "single";
}

int comm_rank(void) {
    return 0;
}

int comm_size(void) {
    return 1;
}

void comm_begin_solo(void) {}
void comm_end_solo(void) {}

static hg_status check_count(const char *op, int64_t n, const void *data) {
    if (n < 0 || (n > 0 && !data))
        return hg_fail(HG_ERR_ARG, "%s: %lld elements at %p", op, (long long)n, data);
    return HG_OK;
}

hg_status comm_allreduce_sum_float(float *data, int64_t n) {
    return check_count("comm_allreduce_sum_float", n, data);
}

hg_status comm_allreduce_sum_double(double *data, int64_t n) {
    return check_count("comm_allreduce_sum_double", n, data);
}

hg_status comm_allreduce_sum_int64(int64_t *data, int64_t n) {
    return check_count("comm_allreduce_sum_int64", n, data);
}

void comm_set_bucket_floats(int64_t n) {
    if (n > 0) bucket_floats = n;
}

int64_t comm_bucket_floats(void) {
    return bucket_floats;
}

hg_status comm_broadcast(void *data, int64_t bytes, int root) {
    if (root != 0) return hg_fail(HG_ERR_ARG, "comm_broadcast: root %d of 1 rank", root);
    return check_count("comm_broadcast", bytes, data);
}

hg_status comm_barrier(void) {
    return HG_OK;
}

hg_status comm_gather(const void *send, int64_t bytes, void **recv, int64_t *counts, int root) {
    *recv = NULL;
    if (root != 0) return hg_fail(HG_ERR_ARG, "comm_gather: root %d of 1 rank", root);
    hg_status s = check_count("comm_gather", bytes, send);
    if (s != HG_OK) return s;
    *recv = malloc(bytes ? (size_t)bytes : 1);
    if (!*recv)
        return hg_fail(HG_ERR_NOMEM, "comm_gather: out of memory for %lld bytes", (long long)bytes);
    if (bytes) memcpy(*recv, send, (size_t)bytes);
    counts[0] = bytes;
    return HG_OK;
}

hg_status comm_agree(hg_status local) {
    if (local != HG_OK) failure_shared = true;
    return local;
}

bool comm_failure_is_shared(void) {
    return failure_shared;
}

_Noreturn void comm_abort(const char *message) {
    fprintf(stderr, "hgad: rank 0 of 1: %s\n", message);
    exit(1);
}
