/* comm.h over MPI_COMM_WORLD (built with `make MPI=1`, -DHG_MPI).
 *
 * Errors of MPI calls are returned, not fatal (MPI_ERRORS_RETURN), so that the
 * library's convention holds; a rank that cannot continue ends the job with
 * comm_finalize()/comm_abort(). Only the main thread calls MPI (OpenMP
 * threads never do), which MPI_THREAD_FUNNELED allows. */
#include <limits.h>
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline/comm.h"

#define MESSAGE_BYTES 512

static bool started;   /* comm_init ran MPI_Init (or found MPI running) */
static bool finished;  /* comm_finalize ran */
static int solo_depth; /* comm_begin_solo nesting */
static int world_rank, world_size = 1;
static int64_t bucket_floats = (int64_t)1 << 20;
static bool failure_shared;
static int64_t collectives;                /* collective calls made with other ranks */
static char agreed_message[MESSAGE_BYTES]; /* the last message comm_agree produced */
static char terminated_message[160];       /* written by the SIGTERM handler */
static volatile sig_atomic_t aborting;

static bool active(void) {
    return started && !finished && solo_depth == 0;
}

static hg_status mpi_fail(const char *op, int code) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(code, text, &len) != MPI_SUCCESS)
        snprintf(text, sizeof text, "MPI error %d", code);
    return hg_fail(HG_ERR_IO, "%s: %s (rank %d of %d; a peer rank may have died)", op, text,
                   world_rank, world_size);
}

/* mpirun ends the other ranks with SIGTERM when one rank dies or aborts: say
 * so on this rank's stderr before dying of the signal (write() and raise()
 * are async-signal-safe). */
static void on_sigterm(int sig) {
    if (!aborting) {
        ssize_t ignored = write(STDERR_FILENO, terminated_message, strlen(terminated_message));
        (void)ignored;
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

hg_status comm_init(int *argc, char ***argv) {
    if (started) return HG_OK;
    int initialized = 0, provided = 0, rc = MPI_SUCCESS;
    MPI_Initialized(&initialized);
    if (!initialized) rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS)
        return hg_fail(HG_ERR_IO, "comm_init: MPI_Init_thread failed (code %d)", rc);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world_size);
    started = true;
    if (world_size > 1) {
        snprintf(
            terminated_message, sizeof terminated_message,
            "hgad: rank %d of %d: stopped by the MPI launcher (another rank failed or the job was "
            "cancelled)\n",
            world_rank, world_size);
        signal(SIGTERM, on_sigterm);
    }
    return HG_OK;
}

int comm_finalize(int exit_code) {
    if (!started || finished) return exit_code;
    solo_depth = 0;
    if (exit_code != 0 && world_size > 1 && !failure_shared) {
        /* Before any communication, the other ranks are either here too or
         * waiting in their first collective, which by convention (comm.h) is
         * a comm_agree: tell them. Later, they may wait anywhere: abort. */
        if (collectives == 0)
            comm_agree(hg_fail(HG_ERR_ARG,
                               "the command failed before the ranks started working together "
                               "(its error is above)"));
        else
            comm_abort("the command failed on this rank (error above) while the other ranks "
                       "may be waiting for it; ending the job");
    }
    signal(SIGTERM, SIG_DFL);
    MPI_Finalize();
    finished = true;
    return exit_code;
}

const char *comm_backend(void) {
    return "mpi";
}

int comm_rank(void) {
    return active() ? world_rank : 0;
}

int comm_size(void) {
    return active() ? world_size : 1;
}

void comm_begin_solo(void) {
    solo_depth++;
}

void comm_end_solo(void) {
    if (solo_depth > 0) solo_depth--;
}

static hg_status check_count(const char *op, int64_t n, const void *data) {
    if (n < 0 || (n > 0 && !data))
        return hg_fail(HG_ERR_ARG, "%s: %lld elements at %p", op, (long long)n, data);
    return HG_OK;
}

/* In-place sum of n elements of `type` (element size `size`) in chunks of at
 * most `chunk` elements. */
static hg_status allreduce_sum(const char *op, void *data, int64_t n, MPI_Datatype type,
                               size_t size, int64_t chunk) {
    hg_status s = check_count(op, n, data);
    if (s != HG_OK || !active() || world_size == 1) return s;
    if (chunk > INT_MAX) chunk = INT_MAX;
    collectives++;
    for (int64_t first = 0; first < n; first += chunk) {
        const int count = (int)(n - first < chunk ? n - first : chunk);
        int rc = MPI_Allreduce(MPI_IN_PLACE, (char *)data + (size_t)first * size, count, type,
                               MPI_SUM, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_fail(op, rc);
    }
    return HG_OK;
}

hg_status comm_allreduce_sum_float(float *data, int64_t n) {
    return allreduce_sum("comm_allreduce_sum_float", data, n, MPI_FLOAT, sizeof(float),
                         bucket_floats);
}

hg_status comm_allreduce_sum_double(double *data, int64_t n) {
    return allreduce_sum("comm_allreduce_sum_double", data, n, MPI_DOUBLE, sizeof(double), INT_MAX);
}

hg_status comm_allreduce_sum_int64(int64_t *data, int64_t n) {
    return allreduce_sum("comm_allreduce_sum_int64", data, n, MPI_INT64_T, sizeof(int64_t),
                         INT_MAX);
}

void comm_set_bucket_floats(int64_t n) {
    if (n > 0) bucket_floats = n;
}

int64_t comm_bucket_floats(void) {
    return bucket_floats;
}

hg_status comm_broadcast(void *data, int64_t bytes, int root) {
    hg_status s = check_count("comm_broadcast", bytes, data);
    if (s != HG_OK) return s;
    if (root < 0 || root >= comm_size())
        return hg_fail(HG_ERR_ARG, "comm_broadcast: root %d of %d ranks", root, comm_size());
    if (!active() || world_size == 1) return HG_OK;
    collectives++;
    for (int64_t first = 0; first < bytes; first += INT_MAX) {
        const int count = (int)(bytes - first < INT_MAX ? bytes - first : INT_MAX);
        int rc = MPI_Bcast((char *)data + first, count, MPI_BYTE, root, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_fail("comm_broadcast", rc);
    }
    return HG_OK;
}

hg_status comm_barrier(void) {
    if (!active() || world_size == 1) return HG_OK;
    collectives++;
    int rc = MPI_Barrier(MPI_COMM_WORLD);
    return rc == MPI_SUCCESS ? HG_OK : mpi_fail("comm_barrier", rc);
}

hg_status comm_gather(const void *send, int64_t bytes, void **recv, int64_t *counts, int root) {
    *recv = NULL;
    const int size = comm_size(), rank = comm_rank();
    hg_status s = check_count("comm_gather", bytes, send);
    if (s != HG_OK) return s;
    if (root < 0 || root >= size)
        return hg_fail(HG_ERR_ARG, "comm_gather: root %d of %d ranks", root, size);
    /* Every rank learns every size, so that all of them reject an oversized
     * gather together instead of leaving the others waiting. */
    int64_t *sizes = malloc(sizeof(int64_t) * (size_t)size);
    int *ints = malloc(sizeof(int) * (size_t)size * 2);
    if (!sizes || !ints) {
        free(sizes), free(ints);
        return hg_fail(HG_ERR_NOMEM, "comm_gather: out of memory");
    }
    sizes[0] = bytes;
    if (active() && size > 1) {
        collectives++;
        int rc = MPI_Allgather(&bytes, 1, MPI_INT64_T, sizes, 1, MPI_INT64_T, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) s = mpi_fail("comm_gather", rc);
    }
    int64_t total = 0;
    for (int r = 0; s == HG_OK && r < size; r++) total += sizes[r];
    if (s == HG_OK && total > INT_MAX)
        s = hg_fail(HG_ERR_UNSUPPORTED,
                    "comm_gather: %lld bytes in all, more than one gather carries (2 GB)",
                    (long long)total);
    const bool sizes_ok = s == HG_OK; /* the same on every rank */
    char *out = NULL;
    if (s == HG_OK && rank == root) {
        out = malloc(total ? (size_t)total : 1);
        if (!out)
            s = hg_fail(HG_ERR_NOMEM, "comm_gather: out of memory for %lld bytes",
                        (long long)total);
    }
    if (active() && size > 1) {
        /* the root's allocation decides for everyone */
        if (sizes_ok) s = comm_agree(s);
        if (s == HG_OK) {
            int *displs = ints + size;
            for (int r = 0, offset = 0; r < size; r++) {
                ints[r] = (int)sizes[r];
                displs[r] = offset;
                offset += ints[r];
            }
            int rc = MPI_Gatherv(send, (int)bytes, MPI_BYTE, out, ints, displs, MPI_BYTE, root,
                                 MPI_COMM_WORLD);
            if (rc != MPI_SUCCESS) s = mpi_fail("comm_gather", rc);
        }
    } else if (s == HG_OK && bytes) {
        memcpy(out, send, (size_t)bytes);
    }
    if (s == HG_OK && rank == root) {
        for (int r = 0; r < size; r++) counts[r] = sizes[r];
        *recv = out;
    } else {
        free(out);
    }
    free(sizes), free(ints);
    return s;
}

hg_status comm_agree(hg_status local) {
    if (!active() || world_size == 1) {
        if (local != HG_OK) failure_shared = true;
        return local;
    }
    collectives++;
    int mine = local != HG_OK ? world_rank : world_size, first = world_size;
    int rc = MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return mpi_fail("comm_agree", rc);
    if (first == world_size) return HG_OK;
    int failing = local != HG_OK, count = 0;
    rc = MPI_Allreduce(&failing, &count, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return mpi_fail("comm_agree", rc);
    /* The first failing rank tells everyone its status and message; a message
     * that an earlier agreement already produced is passed on unchanged. */
    struct {
        int status, agreed_before;
        char text[MESSAGE_BYTES];
    } m = {0};
    if (world_rank == first) {
        m.status = (int)local;
        snprintf(m.text, sizeof m.text, "%s", hg_last_error());
        m.agreed_before = failure_shared && !strcmp(m.text, agreed_message);
    }
    rc = MPI_Bcast(&m, (int)sizeof m, MPI_BYTE, first, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return mpi_fail("comm_agree", rc);
    m.text[MESSAGE_BYTES - 1] = '\0';
    if (m.agreed_before)
        hg_fail((hg_status)m.status, "%s", m.text);
    else if (count == world_size)
        hg_fail((hg_status)m.status, "every rank of %d: %s", world_size, m.text);
    else if (count == 1)
        hg_fail((hg_status)m.status, "rank %d of %d: %s", first, world_size, m.text);
    else
        hg_fail((hg_status)m.status, "rank %d of %d (and %d more): %s", first, world_size,
                count - 1, m.text);
    snprintf(agreed_message, sizeof agreed_message, "%s", hg_last_error());
    failure_shared = true;
    return (hg_status)m.status;
}

bool comm_failure_is_shared(void) {
    return failure_shared;
}

_Noreturn void comm_abort(const char *message) {
    aborting = 1;
    fprintf(stderr, "hgad: rank %d of %d: %s\n", world_rank, world_size, message);
    fflush(stderr);
    if (started && !finished) MPI_Abort(MPI_COMM_WORLD, 1);
    exit(1);
}
