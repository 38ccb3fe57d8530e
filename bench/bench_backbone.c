/* Feature extraction per image (batch 1, square input) of the four backbones,
 * against the PyTorch reference of tools/fixtures/make_backbone_fixtures.py
 * measured in the same run. One line per case and thread count T of ours
 * (1, 2):
 *   backbone name=resnet18 size=256 threads=2 ms=... torch_ms=...
 *            torch_threads=1 torch_blas_threads=2 peak_mb=... torch_peak_mb=...
 *            torch_base_mb=... cpu_ms=... torch_cpu_ms=...
 * The network runs up to its deepest default tap (tf_efficientnet_b6: stage 4,
 * resnets: layer3, mobilenet_v2: features.17), as HGAD / CFLOW use them.
 * ms: best time over repetitions after one warm-up run, with T OpenMP threads.
 * torch_ms: PyTorch's best time over as many repetitions after one warm-up run
 * on the same input size, in its fastest thread setting of
 * bench/bench_common.h (torch_threads = torch.set_num_threads =
 * OMP_NUM_THREADS = MKL_NUM_THREADS, torch_blas_threads =
 * OPENBLAS_NUM_THREADS; (1, 1), (2, 2), (1, 2), (2, 1): torch runs 1x1 and
 * small convolutions as im2col + OpenBLAS GEMM, the others in oneDNN); both
 * rows of a case are compared with that one measurement. Minima are robust to
 * other processes sharing the cores. peak_mb: peak RSS of a child process that
 * builds the backbone (random weights) and runs the case; torch_peak_mb: the
 * same for the python process of the fastest setting, torch_base_mb its RSS
 * after importing torch and before building the model. cpu_ms / torch_cpu_ms:
 * the best CPU time (all threads) of a run (PyTorch: the lowest of its
 * settings), a check when other processes share the cores (the wall times then
 * mostly measure the scheduler). "NA" without python3 + torch.
 * Options: --quick (256 px only, fewer repetitions), --backbones a,b,
 * --sizes 256,512, --reps N. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_common.h"
#include "models/backbone.h"

static double now_seconds(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Best wall and CPU (all threads) milliseconds of a case. */
typedef struct Timing {
    double ms, cpu_ms;
} Timing;

/* Cheap deterministic weights of a sensible scale (speed does not depend on
 * the values, but denormals would): uniform with variance 1/fan_in, batch
 * norms near the identity. */
static void fill_weights(ParamSet *ps) {
    uint32_t s = 12345u;
    for (int64_t i = 0; i < param_set_size(ps); i++) {
        Tensor *t = param_set_at(ps, i)->var->value;
        float *v = tensor_data(t);
        int64_t n = tensor_numel(t);
        float scale = t->ndim >= 2 ? 1.7f / sqrtf((float)(n / t->shape[0])) : 0.1f;
        bool is_var = strstr(param_set_at(ps, i)->name, "running_var") != NULL;
        bool is_gamma = t->ndim == 1 && !is_var && strstr(param_set_at(ps, i)->name, ".weight");
        for (int64_t k = 0; k < n; k++) {
            s = s * 1664525u + 1013904223u;
            float u = (float)(s >> 8) / 16777216.0f - 0.5f; /* [-0.5, 0.5) */
            v[k] = is_var ? 1.0f + 0.5f * u : is_gamma ? 1.0f + 0.5f * u : 2.0f * scale * u;
        }
    }
}

/* Runs one case in this (child) process with `threads` OpenMP threads; ms < 0
 * on failure. */
static Timing run_case(BackboneKind kind, int size, int reps, int threads) {
    Timing best = {1e30, 1e30}, failed = {-1, -1};
    omp_set_num_threads(threads);
    Backbone *bb = backbone_new(kind);
    if (!bb) return failed;
    fill_weights(backbone_params(bb));
    Tensor *x = tensor_empty(SHAPE(1, 3, size, size));
    float *xv = tensor_data(x);
    for (int64_t i = 0; i < tensor_numel(x); i++) xv[i] = (float)((i * 7919) % 1000) / 500.0f - 1;
    int tap = kind == BACKBONE_MOBILENET_V2 ? 17 : backbone_stride16_tap(kind);
    for (int r = -1; r < reps; r++) {
        Tensor *y = NULL;
        double t0 = now_seconds(CLOCK_MONOTONIC), c0 = now_seconds(CLOCK_PROCESS_CPUTIME_ID);
        if (backbone_forward(bb, x, 1, &tap, &y) != HG_OK) {
            fprintf(stderr, "bench_backbone: %s\n", hg_last_error());
            return failed;
        }
        double t = now_seconds(CLOCK_MONOTONIC) - t0,
               c = now_seconds(CLOCK_PROCESS_CPUTIME_ID) - c0;
        tensor_free(y);
        if (r >= 0 && t * 1e3 < best.ms) best.ms = t * 1e3;
        if (r >= 0 && c * 1e3 < best.cpu_ms) best.cpu_ms = c * 1e3;
    }
    tensor_free(x);
    backbone_free(bb);
    return best;
}

/* Forks a child for the case so that its peak RSS is the case's alone. */
static bool measure_ours(BackboneKind kind, int size, int reps, int threads, Timing *time,
                         double *peak_mb) {
    int fds[2];
    if (pipe(fds) != 0) return false;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) return false;
    if (pid == 0) {
        close(fds[0]);
        Timing t = run_case(kind, size, reps, threads);
        ssize_t w = write(fds[1], &t, sizeof t);
        _exit(w == (ssize_t)sizeof t && t.ms >= 0 ? 0 : 1);
    }
    close(fds[1]);
    Timing t = {-1, -1};
    ssize_t got = read(fds[0], &t, sizeof t);
    close(fds[0]);
    int status = 0;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0 || got != (ssize_t)sizeof t || t.ms < 0) return false;
    *time = t;
    *peak_mb = ru.ru_maxrss / 1024.0;
    return true;
}

/* bench_python() when it imports torch and torchvision, else NULL. */
static const char *find_python(void) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s -c 'import torch, torchvision' >/dev/null 2>&1", bench_python());
    return system(cmd) == 0 ? bench_python() : NULL;
}

/* PyTorch in each thread setting, the fastest into *time (its setting into
 * *setting); false when unavailable. Prints "# torch backbone ..." with every
 * setting's time. */
static bool measure_torch(const char *python, const char *script, const char *name, int size,
                          int reps, Timing *time, TorchSetting *setting, double *peak_mb,
                          double *base_mb) {
    bool any = false;
    char line[512];
    int len =
        snprintf(line, sizeof line,
                 "# torch backbone name=%s size=%d, ms by setting (threads/blas):", name, size);
    for (int k = 0; python && k < BENCH_TORCH_SETTINGS; k++) {
        const TorchSetting s = bench_torch_setting(k);
        char cmd[8192], env[128];
        snprintf(cmd, sizeof cmd, "%s %s %s bench --backbone %s --size %d --threads %d --reps %d",
                 bench_torch_env(s, env, sizeof env), python, script, name, size, s.threads, reps);
        FILE *p = popen(cmd, "r");
        if (!p) continue;
        double t = 0, peak = 0, base = 0, cpu = 0;
        bool ok = fscanf(p, "torch_ms=%lf torch_peak_mb=%lf torch_base_mb=%lf torch_cpu_ms=%lf", &t,
                         &peak, &base, &cpu) == 4;
        ok = pclose(p) == 0 && ok;
        if (ok) {
            if (!any || t < time->ms) time->ms = t, *setting = s, *peak_mb = peak, *base_mb = base;
            if (!any || cpu < time->cpu_ms) time->cpu_ms = cpu;
            any = true;
        }
        if (len > 0 && len < (int)sizeof line) {
            char ms[32];
            len += snprintf(line + len, sizeof line - (size_t)len, " %d/%d %s;", s.threads,
                            s.blas_threads, bench_fmt(ms, sizeof ms, 1, t, ok));
        }
    }
    if (python) printf("%s\n", line);
    return any;
}

static int parse_list(const char *s, int *out, int cap) {
    int n = 0;
    while (s && *s && n < cap) {
        out[n++] = atoi(s);
        s = strchr(s, ',');
        if (s) s++;
    }
    return n;
}

int main(int argc, char **argv) {
    bool quick = false;
    const char *names = "tf_efficientnet_b6,wide_resnet50_2,resnet18,mobilenet_v2";
    int sizes[8] = {256, 512}, n_sizes = 2, reps = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            quick = true;
            n_sizes = 1;
            reps = 2;
        } else if (!strcmp(argv[i], "--backbones") && i + 1 < argc) {
            names = argv[++i];
        } else if (!strcmp(argv[i], "--sizes") && i + 1 < argc) {
            n_sizes = parse_list(argv[++i], sizes, 8);
        } else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
            reps = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: bench_backbone [--quick] [--backbones a,b] [--sizes 256,512] "
                            "[--reps N]\n");
            return 2;
        }
    }
    (void)quick;
    const char *root = getenv("HG_SOURCE_DIR");
    char script[4096];
    snprintf(script, sizeof script, "%s/tools/fixtures/make_backbone_fixtures.py",
             root && *root ? root : ".");
    const char *python = access(script, R_OK) == 0 ? find_python() : NULL;
    char list[512];
    snprintf(list, sizeof list, "%s", names);
    for (char *name = strtok(list, ","); name; name = strtok(NULL, ",")) {
        BackboneKind kind;
        if (backbone_kind_from_name(name, &kind) != HG_OK) {
            fprintf(stderr, "bench_backbone: %s\n", hg_last_error());
            return 2;
        }
        for (int s = 0; s < n_sizes; s++) {
            Timing theirs = {0, 0};
            TorchSetting setting = {0, 0};
            double tpeak = 0, tbase = 0;
            bool torch = measure_torch(python, script, name, sizes[s], reps, &theirs, &setting,
                                       &tpeak, &tbase);
            char t1[32] = "NA", t2[32] = "NA", t3[32] = "NA", t4[32] = "NA";
            if (torch) {
                snprintf(t1, sizeof t1, "%.1f", theirs.ms);
                snprintf(t2, sizeof t2, "%.0f", tpeak);
                snprintf(t3, sizeof t3, "%.0f", tbase);
                snprintf(t4, sizeof t4, "%.1f", theirs.cpu_ms);
            }
            for (int threads = 1; threads <= 2; threads++) {
                Timing ours;
                double peak;
                if (!measure_ours(kind, sizes[s], reps, threads, &ours, &peak)) {
                    fprintf(stderr, "bench_backbone: %s at %d failed\n", name, sizes[s]);
                    return 1;
                }
                printf("backbone name=%s size=%d threads=%d ms=%.1f torch_ms=%s torch_threads=%d "
                       "torch_blas_threads=%d peak_mb=%.0f torch_peak_mb=%s torch_base_mb=%s "
                       "cpu_ms=%.1f torch_cpu_ms=%s\n",
                       name, sizes[s], threads, ours.ms, t1, setting.threads, setting.blas_threads,
                       peak, t2, t3, ours.cpu_ms, t4);
                fflush(stdout);
            }
        }
    }
    return 0;
}
