/* Helpers of the MPI test binaries (tests/mpi/test_mpi_*.c, run by
 * tests/mpi/run.sh under `mpirun -np 1` and `-np 2`).
 *
 * Every test runs on every rank in the same order. A CMocka assertion that
 * fails on one rank only would send that rank to the next test while the
 * others wait in a collective, so checks of per-rank results go through
 * assert_all(), which agrees on the outcome first and fails on every rank. */
#ifndef HG_TESTS_MPI_TESTUTIL_H
#define HG_TESTS_MPI_TESTUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline/comm.h"
#include "tests/testutil.h"

/* Fails on every rank when `ok` is false on any rank; the message names this
 * rank's own failure (if any). Collective. */
#define assert_all(ok, ...)                                                                        \
    do {                                                                                           \
        char why_[512] = "";                                                                       \
        int64_t bad_ = !(ok);                                                                      \
        if (bad_) snprintf(why_, sizeof why_, __VA_ARGS__);                                        \
        if (comm_allreduce_sum_int64(&bad_, 1) != HG_OK)                                           \
            fail_msg("allreduce: %s", hg_last_error());                                            \
        if (bad_)                                                                                  \
            fail_msg("%lld rank(s) failed; rank %d: %s", (long long)bad_, comm_rank(),             \
                     why_[0] ? why_ : "fine here");                                                \
    } while (0)

/* Starts MPI; ranks other than 0 keep their stdout quiet (failures still
 * reach stderr). */
static inline void mpi_test_init(int *argc, char ***argv) {
    if (comm_init(argc, argv) != HG_OK) {
        fprintf(stderr, "comm_init: %s\n", hg_last_error());
        exit(1);
    }
    if (comm_rank() != 0 && !freopen("/dev/null", "w", stdout)) exit(1);
}

/* A scratch directory every rank sees (made by rank 0, in /tmp). */
static inline void mpi_test_dir(char *path, size_t size) {
    char dir[256] = "";
    if (comm_rank() == 0) {
        snprintf(dir, sizeof dir, "/tmp/hgad_mpi_test_XXXXXX");
        if (!mkdtemp(dir)) dir[0] = '\0';
    }
    comm_broadcast(dir, sizeof dir, 0);
    snprintf(path, size, "%s", dir);
}

/* Removes the scratch directory (rank 0, after every rank is done with it). */
static inline void mpi_test_remove_dir(const char *path) {
    comm_barrier();
    if (comm_rank() == 0 && path[0]) {
        char command[600];
        snprintf(command, sizeof command, "rm -rf '%s'", path);
        if (system(command) != 0) fprintf(stderr, "could not remove %s\n", path);
    }
}

#endif
