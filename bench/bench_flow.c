/* One HGAD training step of one level (flow forward, hierarchical-prior losses,
 * backward, Adam step) against the committed PyTorch reference measured in the
 * same run. One line per thread count T of ours (1, 2):
 *   flow_step n=4096 d=200 dc=256 k=12 threads=T seconds=S torch_seconds=S
 *             torch_threads=1 torch_blas_threads=1 torch_best_seconds=S
 *             torch_best_threads=2 torch_best_blas_threads=2 speedup_vs_best=R
 * Both sides: the median of `repeats` steps after one warm-up step, N rows.
 * PyTorch (tools/bench/torch_hgad.py step) runs once in each thread setting of
 * bench/bench_common.h (torch_threads = torch.set_num_threads =
 * OMP_NUM_THREADS = MKL_NUM_THREADS, torch_blas_threads =
 * OPENBLAS_NUM_THREADS; (1, 1), (2, 2), (1, 2), (2, 1)). torch_seconds: its
 * best with at most T threads in each pool (the same core budget: (1, 1) for
 * T = 1); torch_best_seconds: its best overall, and
 * speedup_vs_best = torch_best_seconds / seconds. `--quick`: fewer steps. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/bench_common.h"
#include "models/hgad.h"
#include "models/positional.h"
#include "tensor/rng.h"

typedef struct StepCase {
    int n, d, dc, k, repeats;
} StepCase;

/* torch_hgad.py step arguments (no pilot: every setting runs in full). */
static void torch_step_args(const void *context, int threads, bool pilot, char *args, size_t size) {
    const StepCase *c = context;
    snprintf(args, size, "step %d %d %d %d %d %d", c->n, c->d, c->dc, c->k, threads, c->repeats);
}

static double our_step(int n, int d, int dc, int k, int repeats) {
    HgadConfig config = hgad_default_config(1, d, 15);
    config.cond_dim = dc;
    config.coupling_blocks = k;
    Hgad *model = hgad_new(&config);
    Rng rng = rng_new(1);
    /* The condition of training: positional codes of n / 256 images of a 16 x 16
     * map (16 images for n = 4096), as pipeline/train.c builds it. */
    Tensor *x = tensor_normal(SHAPE(n, d), 0, 1, &rng);
    Tensor *cond = positional_code_batch(dc, 16, 16, n / 256);
    int64_t *labels = malloc(sizeof(int64_t) * (size_t)n);
    for (int i = 0; i < n; i++) labels[i] = (int64_t)rng_below(&rng, 15);
    double times[64];
    for (int r = 0; r <= repeats; r++) {
        double start = bench_now();
        if (hgad_train_step(model, 0, x, cond, labels, 2, NULL) != HG_OK) {
            fprintf(stderr, "flow_step: %s\n", hg_last_error());
            exit(1);
        }
        if (r) times[r - 1] = bench_now() - start;
    }
    const double median = bench_median(times, repeats);
    hgad_free(model);
    tensor_free(x), tensor_free(cond);
    free(labels);
    return median;
}

int main(int argc, char **argv) {
    bool quick = bench_has_flag(argc, argv, "--quick");
    const int n = 4096, d = 200, dc = 256, k = 12, repeats = quick ? 3 : 7;
    /* PyTorch first, each setting once; then ours (its OpenMP pool is never
     * forked: popen execs at once) */
    const StepCase step = {n, d, dc, k, repeats};
    TorchResult torch[BENCH_TORCH_SETTINGS];
    const TorchResult best =
        bench_torch_sweep("flow_step", torch_step_args, &step, 2, false, torch);
    for (int threads = 1; threads <= 2; threads++) {
        omp_set_num_threads(threads);
        double ours = our_step(n, d, dc, k, repeats);
        const TorchResult same = bench_torch_fastest(torch, threads);
        char ts[32], tb[32], sp[32];
        printf("flow_step n=%d d=%d dc=%d k=%d threads=%d seconds=%.4f torch_seconds=%s "
               "torch_threads=%d torch_blas_threads=%d torch_best_seconds=%s "
               "torch_best_threads=%d torch_best_blas_threads=%d speedup_vs_best=%s\n",
               n, d, dc, k, threads, ours, bench_fmt(ts, sizeof ts, 4, same.seconds, same.ok),
               same.ok ? same.setting.threads : 0, same.ok ? same.setting.blas_threads : 0,
               bench_fmt(tb, sizeof tb, 4, best.seconds, best.ok),
               best.ok ? best.setting.threads : 0, best.ok ? best.setting.blas_threads : 0,
               bench_fmt(sp, sizeof sp, 2, best.seconds / ours, best.ok));
        fflush(stdout);
    }
    return 0;
}
