/* Benchmark of gemm() against OpenBLAS sgemm, measured in the same run with
 * the two interleaved (rounds of a batch of ours then a batch of OpenBLAS) so
 * that clock and thermal drift hit both alike. One line per case:
 *   gemm m=1024 n=1024 k=1024 trans=NN threads=1 gflops=71.2 openblas_gflops=74.8 ratio=0.95
 * gflops are medians over repetitions. `--quick` runs fewer cases and repetitions. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tensor/gemm.h"

#define ROUNDS   3
#define PAUSE_NS 150000000L /* 0.15 s */

typedef struct Case {
    int64_t m, n, k;
    bool ta, tb;
} Case;

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void fill(float *x, int64_t n, unsigned seed) {
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)((seed >> 8) & 0xffff) / 65536.0f - 0.5f;
    }
}

static void run_openblas(const Case *cs, const float *a, int64_t lda, const float *b, int64_t ldb,
                         float *c) {
    cblas_sgemm(CblasRowMajor, cs->ta ? CblasTrans : CblasNoTrans,
                cs->tb ? CblasTrans : CblasNoTrans, (int)cs->m, (int)cs->n, (int)cs->k, 1.0f, a,
                (int)lda, b, (int)ldb, 0.0f, c, (int)cs->n);
}

static void bench_case(const Case *cs, int threads, int reps) {
    int64_t m = cs->m, n = cs->n, k = cs->k;
    int64_t lda = cs->ta ? m : k, ldb = cs->tb ? k : n;
    float *a = malloc(sizeof(float) * (size_t)(m * k));
    float *b = malloc(sizeof(float) * (size_t)(k * n));
    float *c = malloc(sizeof(float) * (size_t)(m * n));
    float *c_ref = malloc(sizeof(float) * (size_t)(m * n));
    double *ours = malloc(sizeof(double) * (size_t)(reps + ROUNDS));
    double *theirs = malloc(sizeof(double) * (size_t)(reps + ROUNDS));
    if (!a || !b || !c || !c_ref || !ours || !theirs) {
        fprintf(stderr, "bench_gemm: out of memory\n");
        exit(1);
    }
    fill(a, m * k, 1);
    fill(b, k * n, 2);
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);

    /* Warm-up (page faults, packing buffers, thread pools) and a sanity check. */
    gemm(cs->ta, cs->tb, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, n);
    run_openblas(cs, a, lda, b, ldb, c_ref);
    double max_diff = 0, max_ref = 1e-30;
    for (int64_t i = 0; i < m * n; i++) {
        max_diff = fmax(max_diff, fabs((double)c[i] - c_ref[i]));
        max_ref = fmax(max_ref, fabs((double)c_ref[i]));
    }
    if (!(max_diff <= 1e-4 * max_ref))
        fprintf(stderr, "bench_gemm: result differs from OpenBLAS (max diff %g)\n", max_diff);

    /* Rounds of [ours x batch][OpenBLAS x batch]. Each batch starts with an
     * untimed call so that its thread pool is awake; with several threads,
     * a pause before each batch lets the other library's idle threads stop
     * spinning (OpenBLAS's keep polling for ~0.1 s), which would otherwise
     * steal a core from the library being timed. */
    double flops = 2.0 * (double)m * (double)n * (double)k;
    int batch = (reps + ROUNDS - 1) / ROUNDS, nt = 0;
    for (int round = 0; round < ROUNDS; round++) {
        for (int lib = 0; lib < 2; lib++) {
            if (threads > 1) nanosleep(&(struct timespec){0, PAUSE_NS}, NULL);
            for (int r = -1; r < batch; r++) {
                double t0 = now_seconds();
                if (lib == 0)
                    gemm(cs->ta, cs->tb, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, n);
                else
                    run_openblas(cs, a, lda, b, ldb, c_ref);
                double dt = now_seconds() - t0;
                if (r >= 0) (lib == 0 ? ours : theirs)[nt + r] = flops / dt * 1e-9;
            }
        }
        nt += batch;
    }
    double g = median(ours, nt), go = median(theirs, nt);
    printf("gemm m=%lld n=%lld k=%lld trans=%c%c threads=%d gflops=%.1f openblas_gflops=%.1f "
           "ratio=%.2f\n",
           (long long)m, (long long)n, (long long)k, cs->ta ? 'T' : 'N', cs->tb ? 'T' : 'N',
           threads, g, go, g / go);
    fflush(stdout);
    free(a);
    free(b);
    free(c);
    free(c_ref);
    free(ours);
    free(theirs);
}

int main(int argc, char **argv) {
    bool quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    const Case full[] = {
        {256, 256, 256, false, false},    {512, 512, 512, false, false},
        {1024, 1024, 1024, false, false}, {2048, 2048, 2048, false, false},
        {4096, 712, 356, false, false},   {4096, 712, 356, false, true},
        {4096, 712, 356, true, false},    {4096, 200, 712, false, false},
        {4096, 200, 712, false, true},    {4096, 200, 712, true, false},
    };
    const Case short_list[] = {
        {512, 512, 512, false, false},
        {4096, 712, 356, false, true},
        {4096, 200, 712, true, false},
    };
    const Case *cases = quick ? short_list : full;
    int ncases =
        quick ? (int)(sizeof short_list / sizeof *short_list) : (int)(sizeof full / sizeof *full);
    for (int threads = 1; threads <= 2; threads++)
        for (int i = 0; i < ncases; i++) {
            double flops = 2.0 * (double)cases[i].m * (double)cases[i].n * (double)cases[i].k;
            /* About 0.5 s per library per case (at ~100 GFLOP/s), 9..60 timed calls. */
            int reps = (int)(5e10 / flops);
            if (reps < 9) reps = 9;
            if (reps > 60) reps = 60;
            if (quick) reps = 6;
            bench_case(&cases[i], threads, reps);
        }
    return 0;
}
