/* The process group of a data-parallel run (docs/distributed.md).
 *
 * Two implementations with this one interface: pipeline/comm_mpi.c (built with
 * `make MPI=1`, over MPI_COMM_WORLD) and pipeline/comm_single.c (the default
 * build: one process, rank 0 of 1, every collective a no-op or a copy). The
 * rest of the code calls only these functions, so one source serves both.
 *
 * Every function documented "collective" must be called by every rank, in the
 * same order. Errors follow the library's convention (hg_fail, no printing);
 * the exceptions are comm_abort() and comm_finalize(), which end the process.
 *
 * A failure on one rank must not leave the others waiting in a collective:
 * code that can fail locally passes its status through comm_agree() before the
 * next collective, so that every rank stops together with the same message.
 * By the same convention the first collective of a command is a comm_agree(),
 * which lets comm_finalize() tell the others about a failure during setup. */
#ifndef HG_PIPELINE_COMM_H
#define HG_PIPELINE_COMM_H

#include <stdbool.h>
#include <stdint.h>

#include "tensor/error.h"

/* Starts the group (MPI_Init; nothing for one process). Without it, or
 * before it, the MPI build behaves as one process too. */
hg_status comm_init(int *argc, char ***argv);

/* Ends the group and returns exit_code, the process's exit status. A non-zero
 * exit_code whose failure the other ranks did not learn through comm_agree()
 * is first made known: with a comm_agree() when this rank has not
 * communicated yet (the others are here too or in their first comm_agree),
 * else by ending the whole job with comm_abort() (they may be waiting in any
 * collective). */
int comm_finalize(int exit_code);

/* "mpi" or "single". */
const char *comm_backend(void);

/* This process's rank in [0, comm_size()), and the number of ranks. */
int comm_rank(void);
int comm_size(void);

/* Runs the calls that follow as if this process were alone (rank 0 of 1,
 * collectives local) until comm_end_solo(); pairs nest. For work that one
 * rank does by itself (rank 0 writing a report) and for single-process
 * references in tests. */
void comm_begin_solo(void);
void comm_end_solo(void);

/* Collective: sums data[0 .. n) element-wise over the ranks, in place, in
 * messages of at most comm_bucket_floats() elements (bounded buffers inside
 * MPI and no 2^31 count limit). Every rank gets the same bits. */
hg_status comm_allreduce_sum_float(float *data, int64_t n);
hg_status comm_allreduce_sum_double(double *data, int64_t n);
hg_status comm_allreduce_sum_int64(int64_t *data, int64_t n);
/* Bucket size of comm_allreduce_sum_float (default 1 << 20 floats, 4 MB). */
void comm_set_bucket_floats(int64_t n);
int64_t comm_bucket_floats(void);

/* Collective: copies `bytes` bytes at data on rank `root` to data on every rank. */
hg_status comm_broadcast(void *data, int64_t bytes, int root);

/* Collective: returns when every rank has called it. */
hg_status comm_barrier(void);

/* Collective: rank `root` receives the concatenation, in rank order, of every
 * rank's `bytes` bytes at `send` (sizes may differ): *recv a new buffer (free
 * it) and counts[r] (an array of comm_size() entries) rank r's size. On other
 * ranks *recv is NULL and counts is untouched (it may be NULL there). */
hg_status comm_gather(const void *send, int64_t bytes, void **recv, int64_t *counts, int root);

/* Collective: HG_OK when every rank passes HG_OK. Otherwise every rank returns
 * the status of the lowest failing rank, with its message (hg_last_error() on
 * that rank) as "rank R of N: message" ("every rank of N: message" when all
 * failed, "rank R of N (and K more): message" when several did). */
hg_status comm_agree(hg_status local);

/* True after comm_agree() returned a failure: every rank knows, so the ranks
 * can end normally. */
bool comm_failure_is_shared(void);

/* Prints "hgad: rank R of N: message" on stderr and ends the whole job (every
 * rank) with exit status 1. For failures that cannot be agreed on. */
_Noreturn void comm_abort(const char *message);

#endif
