/* Benchmark of conv2d_forward on EfficientNet-typical layers (batch 1, no bias)
 * against PyTorch's F.conv2d measured in the same run. One line per case:
 *   conv kind=dw3x3 c=192 hw=64 stride=1 threads=2 ms=0.123 torch_ms=0.150
 * ms: the best (minimum) time over repetitions with this process's OpenMP
 * threads (T); torch_ms: the best time of PyTorch with 1 and with 2 threads, each
 * measured by an embedded python3 script with torch.set_num_threads and
 * OMP_NUM_THREADS pinned; "NA" when no python3 with torch is found. Minima are
 * used on both sides because they are robust to other processes sharing the
 * cores (medians of 2-thread runs on a busy 2-core machine mostly measure the
 * scheduler). `--quick`: fewer repetitions. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nn/conv2d.h"
#include "tensor/rng.h"

typedef struct Case {
    const char *kind; /* pw (1x1), dw3x3, dw5x5 */
    int64_t cin, cout, k, hw;
    int stride;
    double torch_ms; /* best over thread counts; < 0 when unknown */
} Case;

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

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

/* A python3 that imports torch, or NULL. */
static const char *find_python(void) {
    static const char *candidates[] = {"python3", "/usr/bin/python3"};
    for (size_t i = 0; i < sizeof candidates / sizeof *candidates; i++) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "%s -c 'import torch' >/dev/null 2>&1", candidates[i]);
        if (system(cmd) == 0) return candidates[i];
    }
    return NULL;
}

static void measure_torch(Case *cases, int n, int reps) {
    for (int i = 0; i < n; i++) cases[i].torch_ms = -1;
    const char *python = find_python();
    if (!python) return;
    setenv("HG_BENCH_TORCH_SCRIPT", torch_script, 1);
    for (int threads = 1; threads <= 2; threads++) {
        char cmd[4096];
        int len = snprintf(cmd, sizeof cmd,
                           "OMP_NUM_THREADS=%d %s -c 'import os; "
                           "exec(os.environ[\"HG_BENCH_TORCH_SCRIPT\"])' %d %d",
                           threads, python, threads, reps);
        for (int i = 0; i < n; i++)
            len += snprintf(cmd + len, sizeof cmd - (size_t)len, " %s,%lld,%lld,%lld,%lld,%d",
                            cases[i].kind, (long long)cases[i].cin, (long long)cases[i].cout,
                            (long long)cases[i].k, (long long)cases[i].hw, cases[i].stride);
        FILE *p = popen(cmd, "r");
        if (!p) continue;
        int index;
        double ms;
        while (fscanf(p, "%d %lf", &index, &ms) == 2)
            if (index >= 0 && index < n &&
                (cases[index].torch_ms < 0 || ms < cases[index].torch_ms))
                cases[index].torch_ms = ms;
        pclose(p);
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
        double t0 = now_seconds();
        Tensor *y = conv2d_forward(x, w, NULL, &spec);
        double t = now_seconds() - t0;
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
        {"pw", 32, 192, 1, 64, 1, 0},      {"pw", 192, 32, 1, 64, 1, 0},
        {"pw", 32, 192, 1, 128, 1, 0},     {"pw", 192, 32, 1, 128, 1, 0},
        {"dw3x3", 192, 192, 3, 64, 1, 0},  {"dw3x3", 192, 192, 3, 64, 2, 0},
        {"dw3x3", 192, 192, 3, 128, 1, 0}, {"dw3x3", 192, 192, 3, 128, 2, 0},
        {"dw5x5", 192, 192, 5, 64, 1, 0},  {"dw5x5", 192, 192, 5, 64, 2, 0},
        {"dw5x5", 192, 192, 5, 128, 1, 0}, {"dw5x5", 192, 192, 5, 128, 2, 0},
    };
    int n = (int)(sizeof cases / sizeof *cases);
    measure_torch(cases, n, reps);
    int threads = omp_get_max_threads();
    for (int i = 0; i < n; i++) {
        const Case *c = &cases[i];
        double ms = measure_ours(c, reps);
        char kind[32], torch[32];
        if (is_depthwise(c))
            snprintf(kind, sizeof kind, "%s c=%lld", c->kind, (long long)c->cin);
        else
            snprintf(kind, sizeof kind, "pw%lldto%lld c=%lld", (long long)c->cin,
                     (long long)c->cout, (long long)(c->cin > c->cout ? c->cin : c->cout));
        if (c->torch_ms >= 0)
            snprintf(torch, sizeof torch, "%.3f", c->torch_ms);
        else
            snprintf(torch, sizeof torch, "NA");
        printf("conv kind=%s hw=%lld stride=%d threads=%d ms=%.3f torch_ms=%s\n", kind,
               (long long)c->hw, c->stride, threads, ms, torch);
        fflush(stdout);
    }
    return 0;
}
