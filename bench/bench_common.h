/* Helpers shared by the benchmarks against PyTorch (bench_flow, bench_epoch,
 * bench_score, bench_scaling; bench_conv and bench_backbone use the thread
 * settings): clocks, medians, running a case in a fresh child process to
 * measure its peak memory alone, and running the PyTorch side
 * (tools/bench/torch_hgad.py) in its own process in each thread setting.
 *
 * Every function is static: each benchmark is one translation unit linked with
 * the library (Makefile rule $(BUILD)/bench/%). The parent process never runs
 * OpenMP work itself, only its children do: libgomp's thread pool does not
 * survive fork(), so a parent that had used it could hang its children. */
#ifndef HG_BENCH_COMMON_H
#define HG_BENCH_COMMON_H

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "models/backbone.h"

static inline double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int bench_compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v[0 .. n) (sorts v). */
static inline double bench_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, bench_compare_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static inline bool bench_has_flag(int argc, char **argv, const char *flag) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], flag)) return true;
    return false;
}

/* The repository root (scripts are found under it): HG_SOURCE_DIR or ".". */
static inline const char *bench_source_dir(void) {
    const char *root = getenv("HG_SOURCE_DIR");
    return root && *root ? root : ".";
}

/* ---- a case in a child process ---- */

#define BENCH_MAX_VALUES 8

/* Fills values[0 .. BENCH_MAX_VALUES) with the case's figures; false on failure
 * (after printing the reason to stderr). */
typedef bool (*BenchCase)(void *context, double *values);

/* Runs `run` in a forked child so that its peak RSS (ru_maxrss, from wait4) is
 * the case's alone, not the maximum of every case run so far. The figures come
 * back through a pipe. */
static inline bool bench_in_child(BenchCase run, void *context, double *values, double *peak_mb) {
    int fds[2];
    if (pipe(fds) != 0) return false;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]), close(fds[1]);
        return false;
    }
    if (pid == 0) {
        close(fds[0]);
        double v[BENCH_MAX_VALUES] = {0};
        bool ok = run(context, v);
        ssize_t w = ok ? write(fds[1], v, sizeof v) : 0;
        fflush(stdout);
        fflush(stderr);
        _exit(ok && w == (ssize_t)sizeof v ? 0 : 1);
    }
    close(fds[1]);
    double v[BENCH_MAX_VALUES];
    ssize_t got = read(fds[0], v, sizeof v);
    close(fds[0]);
    int status = 0;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
        got != (ssize_t)sizeof v)
        return false;
    memcpy(values, v, sizeof v);
    *peak_mb = (double)ru.ru_maxrss / 1024.0; /* kilobytes on Linux */
    return true;
}

/* ---- the PyTorch side ---- */

/* One thread setting of PyTorch. Debian's torch 1.13 runs matmuls through
 * OpenBLAS, whose own thread pool OPENBLAS_NUM_THREADS sizes, and most
 * convolutions through oneDNN on torch's OpenMP pool (torch.set_num_threads,
 * OMP_NUM_THREADS; MKL_NUM_THREADS is pinned alike although no MKL is
 * linked). Both pools at 2 threads oversubscribe 2 cores, while one of them at
 * 1 leaves a core idle in that part of the work, so no single pinning is best
 * for every workload: every side-by-side case measures PyTorch in each of the
 * BENCH_TORCH_SETTINGS settings and compares against the fastest, naming it
 * (torch_threads, torch_blas_threads). */
typedef struct TorchSetting {
    int threads;      /* torch.set_num_threads = OMP_NUM_THREADS = MKL_NUM_THREADS */
    int blas_threads; /* OPENBLAS_NUM_THREADS */
} TorchSetting;

#define BENCH_TORCH_SETTINGS 4

/* Setting i of (1, 1), (2, 2), (1, 2), (2, 1): (1, 1) first, so that the
 * 1-thread figure is always measured in full (bench_torch_sweep's time limit
 * applies to the later ones). */
static inline TorchSetting bench_torch_setting(int i) {
    static const TorchSetting settings[BENCH_TORCH_SETTINGS] = {{1, 1}, {2, 2}, {1, 2}, {2, 1}};
    return settings[i];
}

/* True when setting s uses at most max_threads threads in each pool. */
static inline bool bench_torch_within(TorchSetting s, int max_threads) {
    return s.threads <= max_threads && s.blas_threads <= max_threads;
}

/* The environment assignments that pin setting s, for a shell command. */
static inline const char *bench_torch_env(TorchSetting s, char *buf, size_t size) {
    snprintf(buf, size, "OMP_NUM_THREADS=%d MKL_NUM_THREADS=%d OPENBLAS_NUM_THREADS=%d", s.threads,
             s.threads, s.blas_threads);
    return buf;
}

/* The python3 with torch: $PYTHON (the Makefile exports Debian's
 * /usr/bin/python3) or python3 on PATH. */
static inline const char *bench_python(void) {
    const char *python = getenv("PYTHON");
    return python && *python ? python : "python3";
}

typedef struct TorchResult {
    bool ok;
    TorchSetting setting;
    double seconds, peak_mb, base_mb;
    double extra[2]; /* the first two further key=value figures, if any */
    double wall;     /* of the whole python process (start-up included) */
} TorchResult;

/* True when bench_python() imports torch (checked once). */
static inline bool bench_have_torch(void) {
    static int have = -1;
    if (have < 0) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "%s -c 'import torch' >/dev/null 2>&1", bench_python());
        have = system(cmd) == 0;
    }
    return have == 1;
}

/* Runs tools/bench/torch_hgad.py ARGS pinned to setting s (ARGS must pass
 * s.threads as the script's THREADS) and parses its line "seconds=S
 * peak_mb=P base_mb=B [k=v ...]". With limit > 0 the process is killed after
 * `limit` seconds (the result is then not ok). */
static inline TorchResult bench_torch_run(TorchSetting s, double limit, const char *args) {
    TorchResult r = {.ok = false, .setting = s};
    if (!bench_have_torch()) return r;
    char cmd[4096], line[1024], stop[64] = "", env[128];
    if (limit > 0) snprintf(stop, sizeof stop, "timeout -s KILL %.0f ", ceil(limit));
    snprintf(cmd, sizeof cmd, "exec env %s %s%s %s/tools/bench/torch_hgad.py %s",
             bench_torch_env(s, env, sizeof env), stop, bench_python(), bench_source_dir(), args);
    fflush(stdout);
    const double start = bench_now();
    FILE *p = popen(cmd, "r");
    if (!p) return r;
    while (fgets(line, sizeof line, p)) {
        TorchResult t = r;
        char *rest = line;
        int used = 0;
        if (sscanf(line, "seconds=%lf peak_mb=%lf base_mb=%lf%n", &t.seconds, &t.peak_mb,
                   &t.base_mb, &used) != 3)
            continue;
        rest += used;
        for (int i = 0; i < 2; i++) {
            char *eq = strchr(rest, '=');
            if (!eq) break;
            t.extra[i] = strtod(eq + 1, &rest);
        }
        t.ok = true;
        r = t;
    }
    if (pclose(p) != 0) r.ok = false;
    r.wall = bench_now() - start;
    return r;
}

/* Writes into args (size bytes) the torch_hgad.py arguments of one run with
 * `threads` torch threads; pilot: the short run that only ranks the settings. */
typedef void (*TorchArgs)(const void *context, int threads, bool pilot, char *args, size_t size);

/* The fastest ok result among results[0 .. BENCH_TORCH_SETTINGS) whose
 * setting is within max_threads (ok false if there is none). */
static inline TorchResult bench_torch_fastest(const TorchResult *results, int max_threads) {
    TorchResult best = {.ok = false};
    for (int i = 0; i < BENCH_TORCH_SETTINGS; i++)
        if (results[i].ok && bench_torch_within(results[i].setting, max_threads) &&
            (!best.ok || results[i].seconds < best.seconds))
            best = results[i];
    return best;
}

/* Measures PyTorch once in each setting within max_threads and returns the
 * fastest; results (may be NULL) receives each setting's run (not ok: not
 * run, failed or stopped). With pilot, every setting runs the pilot arguments
 * and only the fastest of them runs the full ones, which give the result.
 * A run is stopped once it has taken 1.2x as long as the whole fastest process
 * so far plus 5 s: it could no longer be the faster one (it has the same
 * start-up work), and on a machine shared with other jobs an oversubscribed
 * setting can be many times slower. Prints "# torch LABEL: ..." with every
 * setting's time (make_results.sh lists these lines). */
static inline TorchResult bench_torch_sweep(const char *label, TorchArgs make_args,
                                            const void *context, int max_threads, bool pilot,
                                            TorchResult *results) {
    TorchResult all[BENCH_TORCH_SETTINGS];
    double fastest_wall = 0;
    char args[2048], line[1024], item[128];
    snprintf(line, sizeof line, "# torch %s%s, seconds by setting (threads/blas):", label,
             pilot ? " (pilot runs)" : "");
    for (int i = 0; i < BENCH_TORCH_SETTINGS; i++) {
        const TorchSetting s = bench_torch_setting(i);
        all[i] = (TorchResult){.ok = false, .setting = s};
        if (!bench_torch_within(s, max_threads)) continue;
        make_args(context, s.threads, pilot, args, sizeof args);
        all[i] = bench_torch_run(s, fastest_wall > 0 ? 1.2 * fastest_wall + 5 : 0, args);
        if (all[i].ok && (fastest_wall == 0 || all[i].wall < fastest_wall))
            fastest_wall = all[i].wall;
        if (all[i].ok)
            snprintf(item, sizeof item, " %d/%d %.4f;", s.threads, s.blas_threads, all[i].seconds);
        else
            snprintf(item, sizeof item, " %d/%d stopped or failed;", s.threads, s.blas_threads);
        strncat(line, item, sizeof line - strlen(line) - 1);
    }
    TorchResult best = bench_torch_fastest(all, max_threads);
    if (pilot && best.ok) {
        make_args(context, best.setting.threads, false, args, sizeof args);
        best = bench_torch_run(best.setting, 0, args);
        if (best.ok)
            snprintf(item, sizeof item, " measured in %d/%d: %.4f", best.setting.threads,
                     best.setting.blas_threads, best.seconds);
        else
            snprintf(item, sizeof item, " measurement in %d/%d failed", best.setting.threads,
                     best.setting.blas_threads);
        strncat(line, item, sizeof line - strlen(line) - 1);
    }
    printf("%s\n", line);
    fflush(stdout);
    if (results) memcpy(results, all, sizeof all);
    return best;
}

/* "%.Nf" of v, or "NA" when !ok. */
static inline const char *bench_fmt(char *buf, size_t size, int digits, double v, bool ok) {
    if (ok)
        snprintf(buf, size, "%.*f", digits, v);
    else
        snprintf(buf, size, "NA");
    return buf;
}

/* A fresh directory /tmp/hgad-bench-NAME-XXXXXX (or under TMPDIR) into dir. */
static inline bool bench_temp_dir(const char *name, char *dir, size_t size) {
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, size, "%s/hgad-bench-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", name);
    return mkdtemp(dir) != NULL;
}

/* rm -rf of a directory this benchmark created. */
static inline void bench_remove_dir(const char *dir) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "bench: could not remove %s\n", dir);
}

/* ---- random backbone weights ---- */

/* Writes a weights file for `kind` with deterministic random values of a sane
 * scale (speed does not depend on the values, but denormals or overflow
 * would): convolutions uniform with variance about 1/fan_in, batch-norm
 * weights and running variances near 1, biases and means near 0. */
static inline bool bench_write_random_weights(BackboneKind kind, const char *path) {
    Backbone *bb = backbone_new(kind);
    if (!bb) return false;
    ParamSet *ps = backbone_params(bb);
    uint32_t state = 2024u;
    for (int64_t i = 0; i < param_set_size(ps); i++) {
        const char *name = param_set_at(ps, i)->name;
        Tensor *t = param_set_at(ps, i)->var->value;
        float *v = tensor_data(t);
        const int64_t n = tensor_numel(t);
        const bool near_one =
            t->ndim == 1 && (strstr(name, "running_var") || strstr(name, ".weight"));
        const float half_width = t->ndim >= 2 ? 1.7f / sqrtf((float)(n / t->shape[0])) : 0.05f;
        for (int64_t k = 0; k < n; k++) {
            state = state * 1664525u + 1013904223u;
            const float u = (float)(state >> 8) / 16777216.0f * 2.0f - 1.0f; /* [-1, 1) */
            v[k] = near_one ? 1.0f + 0.25f * u : half_width * u;
        }
    }
    bool ok = param_set_save(ps, path, 0, NULL, NULL) == HG_OK;
    backbone_free(bb);
    return ok;
}

#endif
