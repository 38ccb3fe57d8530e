/* Data-parallel training speed (make MPI=1 bench-mpi, bench/bench_mpi.sh):
 * train_hgad on synthetic cached features, one level of D=200, Dc=256, K=12
 * (bench_flow's flow_step) with a global batch of 16 images of 16x16
 * positions = 4096 rows, timed after a warm-up batch; and, separately, the
 * all-reduce of that level's gradients alone. Prints one line:
 *   mpi_step ranks=R threads=T rows=4096 ... steps_per_s=S step_seconds=S
 *     allreduce_floats=N allreduce_seconds=S average_seconds=S
 * Usage: bench_mpi_step [--quick] [--sweep]   (--sweep: see sweep() below) */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pipeline/comm.h"
#include "pipeline/data_parallel.h"
#include "pipeline/train.h"
#include "tensor/rng.h"

enum { D = 200, DC = 256, K = 12, SIDE = 16, BATCH = 16, CLASSES = 15 };

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static hg_status produce(void *context, int64_t index, Tensor **maps) {
    (void)context;
    Rng rng = rng_new(77 + (uint64_t)index);
    maps[0] = tensor_normal(SHAPE(1, D, SIDE, SIDE), 0, 1, &rng);
    return maps[0] ? HG_OK : hg_last_status();
}

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct Timing {
    int batches;
    double first, last;         /* end of the warm-up batch, end of the last one */
    double cpu_first, cpu_last; /* the same in this process's CPU time */
} Timing;

static bool on_batch(void *context, const TrainEvent *ev) {
    Timing *t = context;
    (void)ev;
    if (t->batches++ == 0) t->first = now(), t->cpu_first = cpu_now();
    t->last = now();
    t->cpu_last = cpu_now();
    return true;
}

static void die(const char *what) {
    char message[600];
    snprintf(message, sizeof message, "bench_mpi_step: %s: %s", what, hg_last_error());
    comm_abort(message);
}

static int compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* --sweep (one process): the parts of a step for the scaling model of
 * docs/distributed.md: forward + backward on n rows for the shares
 * n = 4096 / N of N = 1, 8, 64, 512 ranks, and the Adam step, which every
 * rank repeats whatever N. Medians of `repeats` runs, in CPU seconds of this
 * one-thread process (its wall time on an idle core; robust to a busy
 * machine). */
static void sweep(int repeats) {
    HgadConfig config = hgad_default_config(1, D, CLASSES);
    config.cond_dim = DC;
    config.coupling_blocks = K;
    config.inter_epochs = 0;
    Hgad *model = hgad_new(&config);
    if (!model) die("model");
    static const int ranks[] = {1, 8, 64, 512};
    double times[32];
    for (int r = 0; r < 4; r++) {
        const int n = BATCH * SIDE * SIDE / ranks[r];
        Rng rng = rng_new(5);
        Tensor *x = tensor_normal(SHAPE(n, D), 0, 1, &rng),
               *cond = tensor_normal(SHAPE(n, DC), 0, 1, &rng);
        int64_t *labels = malloc(sizeof(int64_t) * (size_t)n);
        for (int i = 0; i < n; i++) labels[i] = i % CLASSES;
        for (int k = 0; k <= repeats; k++) {
            const double start = cpu_now();
            if (hgad_compute_gradients(model, 0, x, cond, labels, 0, NULL) != HG_OK)
                die("gradients");
            if (k) times[k - 1] = cpu_now() - start;
        }
        qsort(times, (size_t)repeats, sizeof(double), compare_double);
        printf("mpi_model ranks=%d rows_per_rank=%d grad_seconds=%.5f\n", ranks[r], n,
               times[repeats / 2]);
        tensor_free(x), tensor_free(cond);
        free(labels);
    }
    for (int k = 0; k < repeats; k++) {
        const double start = cpu_now();
        if (hgad_apply_step(model) != HG_OK) die("apply");
        times[k] = cpu_now() - start;
    }
    qsort(times, (size_t)repeats, sizeof(double), compare_double);
    printf("mpi_model params=%lld adam_seconds=%.5f\n",
           (long long)param_set_numel(model->params, true), times[repeats / 2]);
    hgad_free(model);
}

int main(int argc, char **argv) {
    if (comm_init(&argc, &argv) != HG_OK) die("comm_init");
    const bool quick = argc > 1 && !strcmp(argv[1], "--quick");
    if (argc > 1 && !strcmp(argv[argc - 1], "--sweep")) {
        if (comm_rank() == 0) sweep(quick ? 3 : 7);
        return comm_finalize(0);
    }
    const int steps = quick ? 4 : 12, images = BATCH * steps;
    char dir[256] = "";
    if (comm_rank() == 0) {
        snprintf(dir, sizeof dir, "/tmp/hgad_bench_mpi_XXXXXX");
        if (!mkdtemp(dir)) dir[0] = '\0';
    }
    comm_broadcast(dir, sizeof dir, 0);
    if (!dir[0]) die("mkdtemp");
    char path[300];
    snprintf(path, sizeof path, "%s/features.cache", dir);
    FeatureCacheShape shape = {1, images, {D}, {SIDE}, {SIDE}};
    FeatureCache *cache =
        feature_cache_open_or_build_shared(path, "bench", &shape, false, produce, NULL, NULL, NULL);
    if (!cache) die("cache");
    int64_t *labels = malloc(sizeof(int64_t) * (size_t)images);
    for (int i = 0; i < images; i++) labels[i] = i % CLASSES;
    HgadConfig config = hgad_default_config(1, D, CLASSES);
    config.cond_dim = DC;
    config.coupling_blocks = K;
    config.meta_epochs = 1;
    config.inter_epochs = 0; /* the full phase: every loss term */
    config.sub_epochs = 1;
    Hgad *model = hgad_new(&config);
    if (!model) die("model");
    Timing timing = {0};
    TrainOptions options = {BATCH, 1, 0, 0};
    if (train_hgad(model, cache, labels, &options, on_batch, NULL, &timing) != HG_OK) die("train");
    const double step_seconds = (timing.last - timing.first) / (timing.batches - 1);
    /* CPU seconds per step, the largest over the ranks: what a step would
     * take with a core per rank and nothing else running (includes MPI's
     * busy waiting); shown because a shared machine inflates wall time */
    double cpu_seconds = (timing.cpu_last - timing.cpu_first) / (timing.batches - 1);
    double cpu_all[1024] = {0};
    if (comm_size() <= 1024) {
        cpu_all[comm_rank()] = cpu_seconds;
        comm_allreduce_sum_double(cpu_all, comm_size());
        for (int r = 0; r < comm_size(); r++)
            if (cpu_all[r] > cpu_seconds) cpu_seconds = cpu_all[r];
    }
    /* the gradient averaging alone (pack, all-reduce, scale, unpack), and the
     * all-reduce alone, on the level's gradients (present after training) */
    GradientBuffer buffer = {0};
    int64_t floats = 0;
    double average_seconds = 0, reduce_seconds = 0, pack_seconds = 0;
    if (comm_size() > 1) {
        const int repeats = quick ? 5 : 20;
        dp_average_gradients(model, 0, &buffer, &floats); /* warm-up */
        comm_barrier();
        double start = now(), cpu_start = cpu_now();
        for (int r = 0; r < repeats; r++)
            if (dp_average_gradients(model, 0, &buffer, &floats) != HG_OK) die("average");
        average_seconds = (now() - start) / repeats;
        pack_seconds = (cpu_now() - cpu_start) / repeats;
        comm_barrier();
        start = now(), cpu_start = cpu_now();
        for (int r = 0; r < repeats; r++)
            if (comm_allreduce_sum_float(buffer.data, floats) != HG_OK) die("all-reduce");
        reduce_seconds = (now() - start) / repeats;
        /* copy in, scale and copy out: the averaging's own CPU time */
        pack_seconds -= (cpu_now() - cpu_start) / repeats;
    }
    if (comm_rank() == 0) {
        printf("mpi_step ranks=%d threads=%d rows=%d d=%d dc=%d k=%d params=%lld steps=%d "
               "steps_per_s=%.3f step_seconds=%.4f allreduce_floats=%lld allreduce_seconds=%.5f "
               "average_seconds=%.5f pack_cpu_seconds=%.5f cpu_step_seconds=%.4f\n",
               comm_size(), omp_get_max_threads(), BATCH * SIDE * SIDE, D, DC, K,
               (long long)param_set_numel(model->params, true), timing.batches - 1,
               1.0 / step_seconds, step_seconds, (long long)floats, reduce_seconds, average_seconds,
               pack_seconds, cpu_seconds);
        fflush(stdout);
    }
    gradient_buffer_free(&buffer);
    hgad_free(model);
    free(labels);
    feature_cache_close(cache);
    comm_barrier();
    if (comm_rank() == 0) {
        unlink(path);
        rmdir(dir);
    }
    return comm_finalize(0);
}
