/* Benchmark of conv2d_forward on EfficientNet-typical layers (batch 1, no bias)
 * against PyTorch's F.conv2d measured in the same run. One line per case and
 * thread count T of ours (1, 2):
 *   conv kind=dw3x3 c=192 hw=64 stride=1 threads=2 ms=0.123 torch_ms=0.150
 *        torch_threads=1 torch_blas_threads=2
 * ms: the best (minimum) time over repetitions after 5 warm-up runs with T
 * OpenMP threads; torch_ms: PyTorch's best time over the same repetitions
 * after the same warm-up, in its fastest thread setting of
 * bench/bench_common.h (torch_threads = torch.set_num_threads =
 * OMP_NUM_THREADS = MKL_NUM_THREADS, torch_blas_threads =
 * OPENBLAS_NUM_THREADS; (1, 1), (2, 2), (1, 2), (2, 1): torch runs 1x1 and
 * small convolutions as im2col + OpenBLAS GEMM, the others in oneDNN), one
 * embedded python3 script per setting; "NA" when no python3 with torch is
 * found. Minima are used on both sides because they are robust to other
 * processes sharing the cores (medians of 2-thread runs on a busy 2-core
 * machine mostly measure the scheduler). `--quick`: fewer repetitions. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/bench_common.h"
#include "nn/conv2d.h"
#include "tensor/rng.h"

typedef struct Case {
    const char *kind; /* pw (1x1), dw3x3, dw5x5 */
    int64_t cin, cout, k, hw;
    int stride;
} Case;

/* PyTorch's times of one case. */
typedef struct TorchTimes {
    double ms;                               /* best over the settings; < 0 when unknown */
    TorchSetting setting;                    /* that gave ms */
    double by_setting[BENCH_TORCH_SETTINGS]; /* < 0 when unknown */
} TorchTimes;

static bool is_depthwise(const Case *c) {
    return c->kind[0] == 'd';
}

/* Times every case listed in argv (kind,cin,cout,k,hw,stride) with t threads and
 * prints "index ms" lines (minimum of reps after warm-up). */
static const char *torch_script =
    "import sys, time, torch\n"
    "import torch.nn.functional as F\n"
    "t, reps = int(sys.argv[1]), int(sys.argv[2])\n"
    "torch.set_num_threads(t)\n"
    "torch.manual_seed(0)\n"
    "for i, spec in enumerate(sys.argv[3:]):\n"
    "    kind, cin, cout, k, hw, s = spec.split(',')\n"
    "    cin, cout, k, hw, s = int(cin), int(cout), int(k), int(hw), int(s)\n"
    "    g = cin if kind.startswith('dw') else 1\n"
    "    x = torch.randn(1, cin, hw, hw)\n"
    "    w = torch.randn(cout, cin // g, k, k)\n"
    "    times = []\n"
    "    with torch.no_grad():\n"
    "        for r in range(reps + 5):\n"
    "            t0 = time.perf_counter()\n"
    "            F.conv2d(x, w, None, s, k // 2, 1, g)\n"
    "            times.append(time.perf_counter() - t0)\n"
    "    print(i, min(times[5:]) * 1e3, flush=True)\n";

/* Every case in every thread setting, one python3 per setting. */
static void measure_torch(const Case *cases, TorchTimes *torch, int n, int reps) {
    for (int i = 0; i < n; i++) {
        torch[i].ms = -1;
        for (int k = 0; k < BENCH_TORCH_SETTINGS; k++) torch[i].by_setting[k] = -1;
    }
    if (!bench_have_torch()) return;
    setenv("HG_BENCH_TORCH_SCRIPT", torch_script, 1);
    for (int k = 0; k < BENCH_TORCH_SETTINGS; k++) {
        const TorchSetting setting = bench_torch_setting(k);
        char cmd[4096], env[128];
        int len = snprintf(cmd, sizeof cmd,
                           "%s %s -c 'import os; "
                           "exec(os.environ[\"HG_BENCH_TORCH_SCRIPT\"])' %d %d",
                           bench_torch_env(setting, env, sizeof env), bench_python(),
                           setting.threads, reps);
        for (int i = 0; i < n; i++)
            len += snprintf(cmd + len, sizeof cmd - (size_t)len, " %s,%lld,%lld,%lld,%lld,%d",
                            cases[i].kind, (long long)cases[i].cin, (long long)cases[i].cout,
                            (long long)cases[i].k, (long long)cases[i].hw, cases[i].stride);
        FILE *p = popen(cmd, "r");
        if (!p) continue;
        int index;
        double ms;
        while (fscanf(p, "%d %lf", &index, &ms) == 2)
            if (index >= 0 && index < n) torch[index].by_setting[k] = ms;
        if (pclose(p) != 0)
            for (int i = 0; i < n; i++) torch[i].by_setting[k] = -1;
    }
    for (int i = 0; i < n; i++)
        for (int k = 0; k < BENCH_TORCH_SETTINGS; k++) {
            const double ms = torch[i].by_setting[k];
            if (ms >= 0 && (torch[i].ms < 0 || ms < torch[i].ms))
                torch[i].ms = ms, torch[i].setting = bench_torch_setting(k);
        }
}

static double measure_ours(const Case *c, int reps) {
    Rng rng = rng_new(1);
    int64_t groups = is_depthwise(c) ? c->cin : 1;
    Tensor *x = tensor_normal(SHAPE(1, c->cin, c->hw, c->hw), 0, 1, &rng);
    Tensor *w = tensor_normal(SHAPE(c->cout, c->cin / groups, c->k, c->k), 0, 1, &rng);
    Conv2dSpec spec = conv2d_spec(c->stride, (int)(c->k / 2), 1, (int)groups);
    double best = 1e30;
    for (int r = -5; r < reps; r++) {
        double t0 = bench_now();
        Tensor *y = conv2d_forward(x, w, NULL, &spec);
        double t = bench_now() - t0;
        if (!y) {
            fprintf(stderr, "bench_conv: %s\n", hg_last_error());
            exit(1);
        }
        tensor_free(y);
        if (r >= 0 && t < best) best = t;
    }
    double ms = best * 1e3;
    tensor_free(x);
    tensor_free(w);
    return ms;
}

int main(int argc, char **argv) {
    bool quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    int reps = quick ? 20 : 100;
    Case cases[] = {
        {"pw", 32, 192, 1, 64, 1},      {"pw", 192, 32, 1, 64, 1},
        {"pw", 32, 192, 1, 128, 1},     {"pw", 192, 32, 1, 128, 1},
        {"dw3x3", 192, 192, 3, 64, 1},  {"dw3x3", 192, 192, 3, 64, 2},
        {"dw3x3", 192, 192, 3, 128, 1}, {"dw3x3", 192, 192, 3, 128, 2},
        {"dw5x5", 192, 192, 5, 64, 1},  {"dw5x5", 192, 192, 5, 64, 2},
        {"dw5x5", 192, 192, 5, 128, 1}, {"dw5x5", 192, 192, 5, 128, 2},
    };
    int n = (int)(sizeof cases / sizeof *cases);
    TorchTimes torch_times[sizeof cases / sizeof *cases];
    measure_torch(cases, torch_times, n, reps);
    for (int i = 0; i < n; i++) {
        const Case *c = &cases[i];
        const TorchTimes *t = &torch_times[i];
        char kind[32], torch[32], line[512];
        if (is_depthwise(c))
            snprintf(kind, sizeof kind, "%s c=%lld", c->kind, (long long)c->cin);
        else
            snprintf(kind, sizeof kind, "pw%lldto%lld c=%lld", (long long)c->cin,
                     (long long)c->cout, (long long)(c->cin > c->cout ? c->cin : c->cout));
        int len =
            snprintf(line, sizeof line,
                     "# torch conv kind=%s hw=%lld stride=%d, ms by setting (threads/blas):", kind,
                     (long long)c->hw, c->stride);
        for (int k = 0; k < BENCH_TORCH_SETTINGS && len > 0 && len < (int)sizeof line; k++)
            len += snprintf(
                line + len, sizeof line - (size_t)len, " %d/%d %s;", bench_torch_setting(k).threads,
                bench_torch_setting(k).blas_threads,
                bench_fmt(torch, sizeof torch, 3, t->by_setting[k], t->by_setting[k] >= 0));
        printf("%s\n", line);
        for (int threads = 1; threads <= 2; threads++) {
            omp_set_num_threads(threads);
            const double ms = measure_ours(c, reps);
            const bool ok = t->ms >= 0;
            printf("conv kind=%s hw=%lld stride=%d threads=%d ms=%.3f torch_ms=%s "
                   "torch_threads=%d torch_blas_threads=%d\n",
                   kind, (long long)c->hw, c->stride, threads, ms,
                   bench_fmt(torch, sizeof torch, 3, t->ms, ok), ok ? t->setting.threads : 0,
                   ok ? t->setting.blas_threads : 0);
            fflush(stdout);
        }
    }
    return 0;
}
