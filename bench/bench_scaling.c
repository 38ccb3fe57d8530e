/* How the cost of HGAD training grows, ours against PyTorch in the same run:
 * time and peak memory of one training step as N, D and K double, of the
 * feature extraction + step as the image size doubles, and both at 1 and 2
 * threads. One line per case:
 *   scaling series=n n=2048 d=200 dc=256 k=12 size=0 threads=1 seconds=..
 *           torch_seconds=.. torch_threads=1 torch_blas_threads=1 speedup=..
 *           peak_mb=.. torch_peak_mb=.. torch_base_mb=..
 * (the size series adds extract_seconds, step_seconds and their torch_ twins).
 * Then writes a table (bench/scaling.md) and a plot (bench/scaling.png), or
 * into --out DIR.
 *
 * Step cases: one training step of one level (flow of K coupling blocks with
 * condition size Dc, hierarchical prior of 15 classes x 10 centers in the full
 * phase, backward, Adam), N rows of D values; base N = 4096, D = 200,
 * Dc = 256, K = 12 (the case); series n, d, k double one of them.
 * Size cases: tf_efficientnet_b6 (random weights) as HGAD's multiscale
 * encoder on one S x S image (3 levels, stride 16, 200 channels), then one
 * step of each level on a batch of 8 copies of those maps (level 0 has
 * N = 8 (S/16)^2 rows): seconds = extract_seconds + step_seconds.
 * Series n, d, k and size run with 1 thread on both sides (the growth, not
 * the threading, is measured; PyTorch pinned to torch.set_num_threads(1),
 * OMP_NUM_THREADS = MKL_NUM_THREADS = OPENBLAS_NUM_THREADS = 1); series
 * threads repeats the base step at 1 and 2 threads. PyTorch's figure of a case
 * with T threads is its best over the thread settings of bench_common.h that
 * use at most T threads in each pool (torch_threads = torch.set_num_threads =
 * OMP_NUM_THREADS = MKL_NUM_THREADS, torch_blas_threads =
 * OPENBLAS_NUM_THREADS): T = 1 is (1, 1) alone, T = 2 the best of (1, 1),
 * (2, 2), (1, 2) and (2, 1), the same core budget as ours.
 * Each of our cases runs in a fresh child process (peak_mb: its peak RSS);
 * each PyTorch case in its own python3 (tools/bench/torch_hgad.py step or
 * extract_step; torch_base_mb: its RSS after importing torch). Times are
 * medians of `reps` runs after one warm-up run. speedup = torch / ours.
 * Options: --quick (3 points per series around N = 1024 instead of 4 around
 * N = 4096, image sizes 128 and 256 only, 1 timed run instead of 2), --out DIR. */
#include <math.h>
#include <omp.h>

#include "bench/bench_common.h"
#include "models/hgad.h"
#include "models/positional.h"
#include "pipeline/encoder.h"
#include "report/plot.h"
#include "tensor/rng.h"

#define CLASSES     15
#define BATCH       8
#define MAX_CASES   32
#define MAX_TIMINGS 16

typedef struct Case {
    const char *series; /* n, d, k, size, threads */
    int n, d, dc, k, size, threads;
    /* results */
    bool done;
    double seconds, extract, step, peak_mb;
    TorchResult torch;
} Case;

typedef struct Bench {
    int reps;
    char weights[700]; /* tf_efficientnet_b6 random weights */
    Case cases[MAX_CASES];
    int n_cases;
} Bench;

static Bench bench;

static void fill_labels(int64_t *labels, int64_t n, int64_t per_image) {
    for (int64_t i = 0; i < n; i++) labels[i] = (i / per_image) % CLASSES;
}

/* Child: the median of `reps` steps. values[0] = seconds. */
static bool run_step(void *context, double *values) {
    const Case *c = context;
    omp_set_num_threads(c->threads);
    HgadConfig config = hgad_default_config(1, c->d, CLASSES);
    config.cond_dim = c->dc;
    config.coupling_blocks = c->k;
    Hgad *model = hgad_new(&config);
    Rng rng = rng_new(1);
    Tensor *x = tensor_normal(SHAPE(c->n, c->d), 0, 1, &rng);
    /* The condition of training: positional codes of N / 256 images of a 16 x 16
     * map (every N of the step cases is a multiple of 256), as pipeline/train.c. */
    Tensor *cond = positional_code_batch(c->dc, 16, 16, c->n / 256);
    int64_t *labels = malloc(sizeof(int64_t) * (size_t)c->n);
    bool ok = model && x && cond && labels;
    double times[MAX_TIMINGS];
    if (labels) fill_labels(labels, c->n, 1);
    for (int r = -1; ok && r < bench.reps; r++) {
        double t0 = bench_now();
        ok = hgad_train_step(model, 0, x, cond, labels, config.inter_epochs, NULL) == HG_OK;
        if (r >= 0) times[r] = bench_now() - t0;
    }
    if (!ok) fprintf(stderr, "bench_scaling: step: %s\n", hg_last_error());
    values[0] = ok ? bench_median(times, bench.reps) : 0;
    hgad_free(model);
    tensor_free(x), tensor_free(cond);
    free(labels);
    return ok;
}

/* One step of every level on BATCH copies of one image's maps. */
static hg_status step_levels(Hgad *model, Tensor *const *maps) {
    hg_status s = HG_OK;
    for (int l = 0; s == HG_OK && l < model->config.levels; l++) {
        const int64_t D = maps[l]->shape[1], H = maps[l]->shape[2], W = maps[l]->shape[3];
        Tensor *nhwc = tensor_permute(maps[l], (const int[]){0, 2, 3, 1});
        Tensor *rows = nhwc ? tensor_contiguous(nhwc) : NULL;
        Tensor *x = tensor_empty(SHAPE(BATCH * H * W, D));
        Tensor *cond = positional_code_batch(model->config.cond_dim, H, W, BATCH);
        int64_t *labels = malloc(sizeof(int64_t) * (size_t)(BATCH * H * W));
        if (rows && x && cond && labels) {
            for (int b = 0; b < BATCH; b++)
                memcpy(tensor_data(x) + b * H * W * D, tensor_data(rows),
                       sizeof(float) * (size_t)(H * W * D));
            fill_labels(labels, BATCH * H * W, H * W);
            s = hgad_train_step(model, l, x, cond, labels, model->config.inter_epochs, NULL);
        } else {
            s = hg_last_status() != HG_OK ? hg_last_status()
                                          : hg_fail(HG_ERR_NOMEM, "bench_scaling: out of memory");
        }
        tensor_free(nhwc), tensor_free(rows), tensor_free(x), tensor_free(cond);
        free(labels);
    }
    return s;
}

/* Child: values[0] = median total, [1] = median extraction, [2] = median step. */
static bool run_extract_step(void *context, double *values) {
    const Case *c = context;
    omp_set_num_threads(c->threads);
    FeatureEncoder *enc =
        feature_encoder_new("tf_efficientnet_b6", bench.weights, ENCODER_MULTISCALE, 3, c->size);
    Hgad *model = NULL;
    Tensor *image = NULL;
    if (enc) {
        HgadConfig config = hgad_default_config(enc->spec.levels, 0, CLASSES);
        for (int l = 0; l < config.levels; l++) {
            int64_t h, w;
            feature_encoder_level_shape(enc, l, &config.dims[l], &h, &w);
        }
        model = hgad_new(&config);
        Rng rng = rng_new(2);
        image = tensor_normal(SHAPE(1, 3, c->size, c->size), 0, 1, &rng);
    }
    bool ok = enc && model && image;
    double total[MAX_TIMINGS], extract[MAX_TIMINGS], step[MAX_TIMINGS];
    for (int r = -1; ok && r < bench.reps; r++) {
        Tensor *maps[BACKBONE_MAX_LEVELS] = {0};
        double t0 = bench_now();
        ok = feature_encoder_forward(enc, image, maps) == HG_OK;
        double t1 = bench_now();
        ok = ok && step_levels(model, maps) == HG_OK;
        double t2 = bench_now();
        for (int l = 0; l < BACKBONE_MAX_LEVELS; l++) tensor_free(maps[l]);
        if (r >= 0) total[r] = t2 - t0, extract[r] = t1 - t0, step[r] = t2 - t1;
    }
    if (!ok) fprintf(stderr, "bench_scaling: extract+step: %s\n", hg_last_error());
    if (ok) {
        values[0] = bench_median(total, bench.reps);
        values[1] = bench_median(extract, bench.reps);
        values[2] = bench_median(step, bench.reps);
    }
    hgad_free(model);
    feature_encoder_free(enc);
    tensor_free(image);
    return ok;
}

static bool write_weights(void *context, double *values) {
    return bench_write_random_weights(BACKBONE_TF_EFFICIENTNET_B6, bench.weights);
}

static Case *add_case(const char *series, int n, int d, int k, int size, int threads) {
    Case *c = &bench.cases[bench.n_cases++];
    *c = (Case){series, n, d, 256, k, size, threads, false, 0, 0, 0, 0, {0}};
    return c;
}

/* A case of the same work measured earlier (the base case is in every series). */
static const Case *find_same(const Case *c) {
    for (const Case *o = bench.cases; o < c; o++)
        if (o->done && o->n == c->n && o->d == c->d && o->k == c->k && o->size == c->size &&
            o->threads == c->threads)
            return o;
    return NULL;
}

/* torch_hgad.py arguments of a case (no pilot: every case is short). */
static void torch_case_args(const void *context, int threads, bool pilot, char *args, size_t size) {
    const Case *c = context;
    if (c->size)
        snprintf(args, size, "extract_step %d %d %d", c->size, threads, bench.reps);
    else
        snprintf(args, size, "step %d %d %d %d %d %d", c->n, c->d, c->dc, c->k, threads,
                 bench.reps);
}

static bool measure(Case *c) {
    const Case *same = find_same(c);
    if (same) {
        const char *series = c->series;
        *c = *same;
        c->series = series;
        return true;
    }
    double v[BENCH_MAX_VALUES];
    if (c->size) {
        if (!bench_in_child(run_extract_step, c, v, &c->peak_mb)) return false;
        c->seconds = v[0], c->extract = v[1], c->step = v[2];
    } else {
        if (!bench_in_child(run_step, c, v, &c->peak_mb)) return false;
        c->seconds = v[0];
    }
    char label[128];
    snprintf(label, sizeof label, "scaling series=%s n=%d d=%d k=%d size=%d threads=%d", c->series,
             c->n, c->d, c->k, c->size, c->threads);
    c->torch = bench_torch_sweep(label, torch_case_args, c, c->threads, false, NULL);
    c->done = true;
    return true;
}

static void print_case(const Case *c) {
    char ts[32], sp[32], tp[32], tb[32], extra[256] = "";
    const TorchResult *t = &c->torch;
    if (c->size) {
        char te[32], tt[32];
        snprintf(extra, sizeof extra,
                 " extract_seconds=%.4f step_seconds=%.4f torch_extract_seconds=%s "
                 "torch_step_seconds=%s",
                 c->extract, c->step, bench_fmt(te, sizeof te, 4, t->extra[0], t->ok),
                 bench_fmt(tt, sizeof tt, 4, t->extra[1], t->ok));
    }
    printf("scaling series=%s n=%d d=%d dc=%d k=%d size=%d threads=%d seconds=%.4f "
           "torch_seconds=%s torch_threads=%d torch_blas_threads=%d speedup=%s peak_mb=%.0f "
           "torch_peak_mb=%s torch_base_mb=%s%s\n",
           c->series, c->n, c->d, c->dc, c->k, c->size, c->threads, c->seconds,
           bench_fmt(ts, sizeof ts, 4, t->seconds, t->ok), t->ok ? t->setting.threads : 0,
           t->ok ? t->setting.blas_threads : 0,
           bench_fmt(sp, sizeof sp, 2, t->seconds / c->seconds, t->ok), c->peak_mb,
           bench_fmt(tp, sizeof tp, 0, t->peak_mb, t->ok),
           bench_fmt(tb, sizeof tb, 0, t->base_mb, t->ok), extra);
    fflush(stdout);
}

/* ---- report: table and plot ---- */

static const char *const SERIES[] = {"n", "d", "k", "size", "threads"};
#define N_SERIES      5
#define N_PLOT_SERIES 4 /* the doubling series; threads are in the table only */

static double series_value(const Case *c, const char *series) {
    if (!strcmp(series, "n")) return c->n;
    if (!strcmp(series, "d")) return c->d;
    if (!strcmp(series, "k")) return c->k;
    if (!strcmp(series, "size")) return c->size;
    return c->threads;
}

/* A heading naming what varies and what the series holds fixed. */
static void series_title(const char *series, char *buf, size_t size) {
    const Case *c = NULL;
    for (int i = 0; i < bench.n_cases && !c; i++)
        if (!strcmp(bench.cases[i].series, series)) c = &bench.cases[i];
    if (!c) {
        snprintf(buf, size, "%s", series);
    } else if (!strcmp(series, "n")) {
        snprintf(buf, size, "rows N (D = %d, Dc = %d, K = %d), one step, 1 thread", c->d, c->dc,
                 c->k);
    } else if (!strcmp(series, "d")) {
        snprintf(buf, size, "feature size D (N = %d, Dc = %d, K = %d), one step, 1 thread", c->n,
                 c->dc, c->k);
    } else if (!strcmp(series, "k")) {
        snprintf(buf, size, "coupling blocks K (N = %d, D = %d, Dc = %d), one step, 1 thread", c->n,
                 c->d, c->dc);
    } else if (!strcmp(series, "size")) {
        snprintf(buf, size,
                 "image size S: tf_efficientnet_b6 features of one image (3 scales) + one step "
                 "of each level on %d images (level 0: N = %d (S/16)^2), 1 thread",
                 BATCH, BATCH);
    } else {
        snprintf(buf, size, "threads, one step (N = %d, D = %d, Dc = %d, K = %d)", c->n, c->d,
                 c->dc, c->k);
    }
}

static double torch_work_mb(const TorchResult *t) {
    return t->peak_mb - t->base_mb;
}

static bool write_table(const char *path, const char *header) {
    FILE *f = fopen(path, "w");
    if (!f) return false;
    fprintf(f, "# Scaling of HGAD training cost: ours vs PyTorch 1.13\n\n%s\n\n", header);
    fprintf(f,
            "Written by `build/bench/bench_scaling` (`make bench`). Times are medians of "
            "%d timed run(s) after a warm-up; peak memory is the peak RSS of a fresh process "
            "per case (ours: a forked child; PyTorch: its python3, whose RSS after importing "
            "torch is the *base*, so *work* = peak - base). *x prev* is the growth from the "
            "previous row (a doubling). *torch s*: PyTorch pinned to 1 thread "
            "(torch.set_num_threads = OMP_NUM_THREADS = MKL_NUM_THREADS = OPENBLAS_NUM_THREADS "
            "= 1) in the 1-thread rows; at 2 threads its best of the settings (torch threads, "
            "OpenBLAS threads) = (1, 1), (2, 2), (1, 2), (2, 1), named in *torch "
            "threads/OpenBLAS*. "
            "Plot: [scaling.png](scaling.png).\n",
            bench.reps);
    for (int s = 0; s < N_SERIES; s++) {
        char title[256];
        series_title(SERIES[s], title, sizeof title);
        fprintf(f, "\n## %s\n\n", title);
        fprintf(f,
                "| %s | ours s | x prev | torch s | torch threads/OpenBLAS | x prev | torch/ours "
                "| ours peak MB | x prev | torch peak MB | torch work MB "
                "|\n|---|---|---|---|---|---|---|---|---|---|---|\n",
                SERIES[s]);
        const Case *prev = NULL;
        for (int i = 0; i < bench.n_cases; i++) {
            const Case *c = &bench.cases[i];
            if (strcmp(c->series, SERIES[s]) || !c->done) continue;
            const TorchResult *t = &c->torch;
            fprintf(f, "| %g | %.3f |", series_value(c, SERIES[s]), c->seconds);
            if (prev)
                fprintf(f, " %.2f |", c->seconds / prev->seconds);
            else
                fprintf(f, " |");
            if (t->ok)
                fprintf(f, " %.3f | %d/%d |", t->seconds, t->setting.threads,
                        t->setting.blas_threads);
            else
                fprintf(f, " NA | |");
            if (prev && t->ok && prev->torch.ok)
                fprintf(f, " %.2f |", t->seconds / prev->torch.seconds);
            else
                fprintf(f, " |");
            if (t->ok)
                fprintf(f, " %.2f |", t->seconds / c->seconds);
            else
                fprintf(f, " NA |");
            fprintf(f, " %.0f |", c->peak_mb);
            if (prev)
                fprintf(f, " %.2f |", c->peak_mb / prev->peak_mb);
            else
                fprintf(f, " |");
            if (t->ok)
                fprintf(f, " %.0f | %.0f |\n", t->peak_mb, torch_work_mb(t));
            else
                fprintf(f, " NA | NA |\n");
            prev = c;
        }
    }
    return fclose(f) == 0;
}

/* The points of one series: x = doublings from its first value. */
static int series_points(const char *series, double *x, double *time, double *ttime, double *mb,
                         double *tmb, bool *torch_ok) {
    int n = 0;
    double first = 0;
    *torch_ok = true;
    for (int i = 0; i < bench.n_cases; i++) {
        const Case *c = &bench.cases[i];
        if (strcmp(c->series, series) || !c->done) continue;
        if (n == 0) first = series_value(c, series);
        x[n] = log2(series_value(c, series) / first);
        time[n] = c->seconds;
        ttime[n] = c->torch.seconds;
        mb[n] = c->peak_mb;
        tmb[n] = torch_work_mb(&c->torch);
        *torch_ok = *torch_ok && c->torch.ok;
        n++;
    }
    return n;
}

/* Left: log2 of time over the series' first time (slope 1 = linear growth);
 * right: peak MB (ours) and work MB (PyTorch). Solid ours, dashed PyTorch. */
static bool write_plot(const char *path) {
    enum { W = 1500, H = 660, AX_W = 560, AX_H = 470, TOP = 70, LEFT1 = 110, LEFT2 = 860 };
    double x[N_PLOT_SERIES][MAX_CASES], t[N_PLOT_SERIES][MAX_CASES], tt[N_PLOT_SERIES][MAX_CASES];
    double mb[N_PLOT_SERIES][MAX_CASES], tmb[N_PLOT_SERIES][MAX_CASES];
    int count[N_PLOT_SERIES];
    bool tok[N_PLOT_SERIES];
    double xmax = 1, ylo = 0, yhi = 1, mbhi = 1;
    for (int s = 0; s < N_PLOT_SERIES; s++) {
        count[s] = series_points(SERIES[s], x[s], t[s], tt[s], mb[s], tmb[s], &tok[s]);
        const double t0 = t[s][0], tt0 = tt[s][0];
        for (int i = 0; i < count[s]; i++) {
            t[s][i] = log2(t[s][i] / t0);
            if (tok[s]) tt[s][i] = log2(tt[s][i] / tt0);
            xmax = fmax(xmax, x[s][i]);
            ylo = fmin(ylo, fmin(t[s][i], tok[s] ? tt[s][i] : 0));
            yhi = fmax(yhi, fmax(t[s][i], tok[s] ? tt[s][i] : 0));
            mbhi = fmax(mbhi, fmax(mb[s][i], tok[s] ? tmb[s][i] : 0));
        }
    }
    ylo = floor(ylo), yhi = ceil(yhi);
    double mbstep = mbhi > 2000 ? 500 : mbhi > 800 ? 200 : mbhi > 300 ? 100 : 50;
    mbhi = ceil(mbhi * 1.05 / mbstep) * mbstep;
    Plot *left = plot_new(W, H, LEFT1, TOP, AX_W, AX_H, 0, xmax, ylo, yhi);
    Plot *right = plot_new(W, H, LEFT2, TOP, AX_W, AX_H, 0, xmax, 0, mbhi);
    if (!left || !right) {
        plot_free(left), plot_free(right);
        return false;
    }
    left->scale = right->scale = 2;
    plot_axes(left, "time: log2(t / t at the first point)", "doublings of N, D, K or S",
              "log2 time ratio", 1, 1);
    plot_axes(right, "peak memory (PyTorch: peak - import)", "doublings of N, D, K or S", "MB", 1,
              mbstep);
    const double diag_x[2] = {0, xmax}, diag_y[2] = {0, xmax};
    plot_polyline(left, diag_x, diag_y, 2, (PlotColor){150, 150, 150}, 1, 4);
    const char *labels[2 * N_PLOT_SERIES];
    PlotColor colors[2 * N_PLOT_SERIES];
    int dashes[2 * N_PLOT_SERIES], n_legend = 0;
    static const char *const names[N_PLOT_SERIES][2] = {
        {"ours N", "torch N"}, {"ours D", "torch D"}, {"ours K", "torch K"}, {"ours S", "torch S"}};
    for (int s = 0; s < N_PLOT_SERIES; s++) {
        if (count[s] < 2) continue;
        PlotColor col = plot_palette(s);
        plot_polyline(left, x[s], t[s], count[s], col, 3, 0);
        plot_polyline(right, x[s], mb[s], count[s], col, 3, 0);
        labels[n_legend] = names[s][0], colors[n_legend] = col, dashes[n_legend++] = 0;
        if (tok[s]) {
            plot_polyline(left, x[s], tt[s], count[s], col, 2, 8);
            plot_polyline(right, x[s], tmb[s], count[s], col, 2, 8);
            labels[n_legend] = names[s][1], colors[n_legend] = col, dashes[n_legend++] = 8;
        }
    }
    /* top left of the memory axes: memory grows to the right, so that corner stays clear */
    PlotLegend legend = {n_legend, labels, colors, dashes};
    plot_legend_draw(right->image, LEFT2 + 12, TOP + 12, 2, AX_H - 24, &legend);
    plot_text(left->image, LEFT1, H - 28, 2, PLOT_BLACK,
              "grey dashed: linear growth (time doubles with each doubling)");
    /* the right panel's pixels into the left canvas */
    const size_t row = image_row_bytes(left->image), from = (size_t)(LEFT2 - 100) * 3;
    for (int y = 0; y < H - 40; y++)
        memcpy(left->image->data8 + (size_t)y * row + from,
               right->image->data8 + (size_t)y * row + from, row - from);
    hg_status s = plot_save_png(left, path);
    plot_free(left), plot_free(right);
    return s == HG_OK;
}

int main(int argc, char **argv) {
    const bool quick = bench_has_flag(argc, argv, "--quick");
    char out[512];
    snprintf(out, sizeof out, "%s/bench", bench_source_dir());
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--out") && i + 1 < argc) snprintf(out, sizeof out, "%s", argv[++i]);
    /* full: around the case N = 4096, D = 200, K = 12; --quick: around
     * N = 1024 (a quarter of the work per step) */
    bench.reps = quick ? 1 : 2;
    const int base_n = 4096, base_d = 200, base_k = 12, small_n = quick ? 1024 : base_n;
    for (int i = 0; i < (quick ? 3 : 4); i++) add_case("n", 1024 << i, base_d, base_k, 0, 1);
    for (int i = 0; i < (quick ? 3 : 4); i++) add_case("d", small_n, 50 << i, base_k, 0, 1);
    for (int i = 0; i < (quick ? 3 : 4); i++) add_case("k", small_n, base_d, 3 << i, 0, 1);
    for (int i = 0; i < (quick ? 2 : 3); i++)
        add_case("size", BATCH * (8 << i) * (8 << i), base_d, base_k, 128 << i, 1);
    for (int t = 1; t <= 2; t++) add_case("threads", small_n, base_d, base_k, 0, t);

    char dir[512];
    if (!bench_temp_dir("scaling", dir, sizeof dir)) {
        fprintf(stderr, "bench_scaling: cannot create a temporary directory\n");
        return 1;
    }
    snprintf(bench.weights, sizeof bench.weights, "%s/tf_efficientnet_b6.safetensors", dir);
    double unused[BENCH_MAX_VALUES], unused_peak;
    bool ok = bench_in_child(write_weights, NULL, unused, &unused_peak);
    if (!ok)
        fprintf(stderr, "bench_scaling: cannot write the backbone weights: %s\n", hg_last_error());
    for (int i = 0; ok && i < bench.n_cases; i++) {
        ok = measure(&bench.cases[i]);
        if (ok)
            print_case(&bench.cases[i]);
        else
            fprintf(stderr, "bench_scaling: case %d (series %s) failed\n", i,
                    bench.cases[i].series);
    }
    bench_remove_dir(dir);
    if (!ok) return 1;

    char header[512], table[600], png[600], host[128] = "";
    FILE *cpu = popen("sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1", "r");
    if (cpu && fgets(host, sizeof host, cpu)) host[strcspn(host, "\n")] = 0;
    if (cpu) pclose(cpu);
    double load[3] = {0};
    if (getloadavg(load, 3) != 3) load[0] = load[1] = load[2] = 0;
    time_t now = time(NULL);
    char when[64];
    strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    snprintf(header, sizeof header,
             "Measured %s on %s, %ld cpus; load average at the end %.2f %.2f %.2f (a shared "
             "machine: other jobs ran at the same time)%s.",
             when, host, sysconf(_SC_NPROCESSORS_ONLN), load[0], load[1], load[2],
             quick ? "; --quick: fewer and smaller cases, 1 timed run each" : "");
    snprintf(table, sizeof table, "%s/scaling.md", out);
    snprintf(png, sizeof png, "%s/scaling.png", out);
    if (!write_table(table, header) || !write_plot(png)) {
        fprintf(stderr, "bench_scaling: cannot write %s or %s\n", table, png);
        return 1;
    }
    printf("# wrote %s and %s\n", table, png);
    return 0;
}
