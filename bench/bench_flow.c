/* One HGAD training step of one level (flow forward, hierarchical-prior losses,
 * backward, Adam step) against the committed PyTorch reference measured in the
 * same run: flow_step n=4096 d=200 dc=256 k=12 threads=T seconds=S torch_seconds=S ... */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "models/hgad.h"
#include "tensor/rng.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median seconds of PyTorch's step with `threads` threads, or -1 when torch is missing. */
static double torch_step(int n, int d, int dc, int k, int threads, int repeats) {
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "OMP_NUM_THREADS=%d OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 %s "
             "tools/bench/torch_flow_step.py %d %d %d %d %d %d 2>/dev/null",
             threads, getenv("PYTHON") ? getenv("PYTHON") : "/usr/bin/python3", n, d, dc, k, threads, repeats);
    FILE *p = popen(cmd, "r");
    double seconds = -1;
    if (p && fscanf(p, "%lf", &seconds) != 1) seconds = -1;
    if (p) pclose(p);
    return seconds;
}

static double our_step(int n, int d, int dc, int k, int repeats) {
    HgadConfig config = hgad_default_config(1, d, 15);
    config.cond_dim = dc;
    config.coupling_blocks = k;
    Hgad *model = hgad_new(&config);
    Rng rng = rng_new(1);
    Tensor *x = tensor_normal(SHAPE(n, d), 0, 1, &rng), *cond = tensor_normal(SHAPE(n, dc), 0, 1, &rng);
    int64_t *labels = malloc(sizeof(int64_t) * (size_t)n);
    for (int i = 0; i < n; i++) labels[i] = (int64_t)rng_below(&rng, 15);
    double times[64];
    for (int r = 0; r <= repeats; r++) {
        double start = now();
        if (hgad_train_step(model, 0, x, cond, labels, 2, NULL) != HG_OK) {
            fprintf(stderr, "flow_step: %s\n", hg_last_error());
            exit(1);
        }
        if (r) times[r - 1] = now() - start;
    }
    qsort(times, (size_t)repeats, sizeof(double), compare_double);
    hgad_free(model);
    tensor_free(x), tensor_free(cond);
    free(labels);
    return times[repeats / 2];
}

int main(int argc, char **argv) {
    bool quick = argc > 1 && !strcmp(argv[1], "--quick");
    const int n = 4096, d = 200, dc = 256, k = 12, repeats = quick ? 3 : 7;
    double torch_best = -1;
    int torch_best_threads = 0;
    for (int t = 1; t <= 2; t++) {
        double s = torch_step(n, d, dc, k, t, repeats);
        if (s > 0 && (torch_best < 0 || s < torch_best)) torch_best = s, torch_best_threads = t;
    }
    for (int threads = 1; threads <= 2; threads++) {
        omp_set_num_threads(threads);
        double ours = our_step(n, d, dc, k, repeats);
        double torch_same = torch_step(n, d, dc, k, threads, repeats);
        printf("flow_step n=%d d=%d dc=%d k=%d threads=%d seconds=%.4f torch_seconds=%.4f "
               "torch_best_seconds=%.4f torch_best_threads=%d speedup_vs_best=%.2f\n",
               n, d, dc, k, threads, ours, torch_same, torch_best, torch_best_threads,
               torch_best > 0 ? torch_best / ours : 0.0);
        fflush(stdout);
    }
    return 0;
}
