/* The communication layer (pipeline/comm.h) over MPI: every collective
 * against values each rank can compute on its own. Run by tests/mpi/run.sh
 * under `mpirun -np 1` and `-np 2`. */
#include "tests/mpi/mpi_testutil.h"

static void test_ranks_are_distinct_and_counted(void **state) {
    (void)state;
    const int rank = comm_rank(), size = comm_size();
    const char *env = getenv("OMPI_COMM_WORLD_SIZE");
    int64_t sum = rank;
    assert_ok(comm_allreduce_sum_int64(&sum, 1));
    assert_all(rank >= 0 && rank < size && sum == (int64_t)size * (size - 1) / 2 &&
                   (!env || atoi(env) == size) && !strcmp(comm_backend(), "mpi"),
               "rank %d of %d, rank sum %lld, OMPI size %s, backend %s", rank, size, (long long)sum,
               env ? env : "-", comm_backend());
}

/* Sums cross the bucket boundaries exactly: small integers in floats. */
static void test_allreduce_in_buckets(void **state) {
    (void)state;
    const int64_t saved = comm_bucket_floats(), n = 3 * 1000 + 7;
    comm_set_bucket_floats(1000);
    const int64_t size = comm_size(), rank = comm_rank(), triangle = size * (size + 1) / 2;
    float *f = malloc(sizeof(float) * (size_t)n);
    double d[5];
    int64_t i64[3];
    for (int64_t i = 0; i < n; i++) f[i] = (float)((rank + 1) * (i % 97));
    for (int i = 0; i < 5; i++) d[i] = (rank + 1) * 0.25 * i;
    for (int i = 0; i < 3; i++) i64[i] = (rank + 1) * ((int64_t)1 << 40) + i;
    assert_ok(comm_allreduce_sum_float(f, n));
    assert_ok(comm_allreduce_sum_double(d, 5));
    assert_ok(comm_allreduce_sum_int64(i64, 3));
    int64_t wrong = 0;
    for (int64_t i = 0; i < n; i++) wrong += f[i] != (float)(triangle * (i % 97));
    for (int i = 0; i < 5; i++) wrong += d[i] != triangle * 0.25 * i;
    for (int i = 0; i < 3; i++) wrong += i64[i] != triangle * ((int64_t)1 << 40) + size * i;
    comm_set_bucket_floats(saved);
    free(f);
    assert_all(wrong == 0, "%lld wrong sums", (long long)wrong);
    assert_all(comm_bucket_floats() == saved, "bucket size not restored");
}

static void test_broadcast_from_the_last_rank(void **state) {
    (void)state;
    const int root = comm_size() - 1;
    unsigned char buffer[10000];
    for (int i = 0; i < 10000; i++)
        buffer[i] = comm_rank() == root ? (unsigned char)(i * 7 + 3) : 0;
    assert_ok(comm_broadcast(buffer, sizeof buffer, root));
    int wrong = 0;
    for (int i = 0; i < 10000; i++) wrong += buffer[i] != (unsigned char)(i * 7 + 3);
    assert_all(wrong == 0, "%d wrong bytes", wrong);
}

/* Rank r sends 3r + 1 bytes of value r + 10; rank 0 gets them in rank order. */
static void test_gather_of_unequal_sizes(void **state) {
    (void)state;
    const int rank = comm_rank(), size = comm_size();
    unsigned char mine[64];
    memset(mine, rank + 10, sizeof mine);
    void *all = NULL;
    int64_t counts[64] = {0};
    assert_ok(comm_gather(mine, 3 * rank + 1, &all, counts, 0));
    int wrong = 0;
    if (rank == 0) {
        const unsigned char *p = all;
        for (int r = 0; r < size; r++) {
            wrong += counts[r] != 3 * r + 1;
            for (int k = 0; k < 3 * r + 1; k++) wrong += *p++ != r + 10;
        }
    } else {
        wrong += all != NULL;
    }
    free(all);
    assert_all(wrong == 0, "%d wrong bytes or counts", wrong);
}

/* Ranks 1.. fail with their own message: every rank gets rank 1's. */
static void test_agree_passes_on_the_first_failure(void **state) {
    (void)state;
    const int rank = comm_rank(), size = comm_size();
    assert_all(comm_agree(HG_OK) == HG_OK, "all fine, yet %s", hg_last_error());
    const int first = size > 1 ? 1 : 0;
    hg_status local = rank >= first ? hg_fail(HG_ERR_IO, "disk full on rank %d", rank) : HG_OK;
    hg_status s = comm_agree(local);
    char expected[96];
    if (size > 1)
        snprintf(expected, sizeof expected, "rank 1 of %d: disk full on rank 1", size);
    else
        snprintf(expected, sizeof expected, "disk full on rank 0");
    assert_all(s == HG_ERR_IO && !strcmp(hg_last_error(), expected) && comm_failure_is_shared(),
               "%d: %s", (int)s, hg_last_error());
    /* agreeing again on the agreed failure keeps its message */
    s = comm_agree(s);
    assert_all(s == HG_ERR_IO && !strcmp(hg_last_error(), expected), "again: %s", hg_last_error());
    /* every rank failing: said so, with rank 0's message */
    s = comm_agree(hg_fail(HG_ERR_ARG, "bad option on rank %d", rank));
    if (size > 1)
        snprintf(expected, sizeof expected, "every rank of %d: bad option on rank 0", size);
    else
        snprintf(expected, sizeof expected, "bad option on rank 0");
    assert_all(s == HG_ERR_ARG && !strcmp(hg_last_error(), expected), "all failing: %s",
               hg_last_error());
    hg_clear_error();
}

static void test_solo_is_one_process(void **state) {
    (void)state;
    int64_t value = comm_rank() + 5;
    comm_begin_solo();
    const bool alone = comm_rank() == 0 && comm_size() == 1;
    hg_status s = comm_allreduce_sum_int64(&value, 1);
    comm_end_solo();
    assert_all(alone && s == HG_OK && value == comm_rank() + 5, "solo: rank %d, sum %lld",
               comm_rank(), (long long)value);
}

int main(int argc, char **argv) {
    mpi_test_init(&argc, &argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ranks_are_distinct_and_counted),
        cmocka_unit_test(test_allreduce_in_buckets),
        cmocka_unit_test(test_broadcast_from_the_last_rank),
        cmocka_unit_test(test_gather_of_unequal_sizes),
        cmocka_unit_test(test_agree_passes_on_the_first_failure),
        cmocka_unit_test(test_solo_is_one_process),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    return comm_finalize(failed ? 1 : 0);
}
