/* A normalizing flow learns a 2-d density by maximum likelihood.
 *
 * A flow is an invertible map z = f(x) with a tractable Jacobian. Under a
 * standard Gaussian prior on z the change of variables gives the exact
 * log-density of x:
 *
 *   log p(x) = log N(f(x); 0, I) + log |det df/dx|
 *            = -|z|^2 / 2 - (D/2) log(2 pi) + logdet,        D = 2 here
 *
 * and training maximizes its mean over the data (minimizes the negative).
 * The flow is the one HGAD uses at every feature level (models/flow.h): a
 * chain of affine coupling blocks, each splitting x into a passive half that
 * conditions a small network and an active half that is scaled and shifted
 * (with D = 2 each half is one coordinate), followed by a fixed random
 * rotation so the next block mixes the coordinates differently.
 *
 * The PNG has three panels: the model density p(x) (square-root scale) on a
 * grid before training (the untrained flow is nearly a rotation, so p is a
 * round Gaussian), after training (two moons), and samples drawn by running
 * the flow backwards, x = f^-1(z) with z ~ N(0, I), over the training data.
 *
 * Run: build/examples/flow_density_2d [out_dir]   -> out_dir/flow_density_2d.png */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "autograd/ops.h"
#include "examples/plot.h"
#include "models/flow.h"
#include "nn/optim.h"
#include "tensor/ops.h"
#include "tensor/rng.h"

enum { N = 1024, BLOCKS = 8, HIDDEN = 64, STEPS = 1000, GRID = 120, SAMPLES = 600 };
static const double LOG_2PI = 1.8378770664093453;
static const int dim1 = 1;

/* Two interleaving half circles ("two moons"), centered and scaled to about
 * unit variance so that the untrained flow (close to a rotation) fits them. */
static void make_moons(float *x, Rng *rng) {
    for (int i = 0; i < N; i++) {
        double a = M_PI * rng_uniform(rng), px, py;
        if (i % 2 == 0)
            px = cos(a), py = sin(a);
        else
            px = 1 - cos(a), py = 0.5 - sin(a);
        x[2 * i] = (float)((px - 0.5 + 0.08 * rng_normal(rng)) / 0.87);
        x[2 * i + 1] = (float)((py - 0.25 + 0.08 * rng_normal(rng)) / 0.5);
    }
}

/* log p(x) per row (N): the change-of-variables formula above, on the tape. */
static Var *log_density(Tape *tape, const InvertibleModule *flow, Var *x) {
    Var *logdet = NULL; /* NULL means 0: each block adds its own log|det| */
    Var *z = invertible_forward(flow, tape, x, NULL, false, &logdet);
    Var *half_sq = ag_scale(tape, ag_sum(tape, ag_square(tape, z), 1, &dim1, false), -0.5f);
    return ag_add_scalar(tape, ag_add(tape, half_sq, logdet), (float)-LOG_2PI);
}

/* sqrt p(x) on the panel's grid (GRID x GRID, row 0 at the top), without gradients. */
static hg_status density_grid(const InvertibleModule *flow, const Panel *p, float *density) {
    float *points = malloc(sizeof(float) * 2 * GRID * GRID);
    Tape *tape = tape_new();
    if (!points || !tape) {
        free(points), tape_free(tape);
        return hg_fail(HG_ERR_NOMEM, "density_grid: out of memory");
    }
    for (int j = 0; j < GRID; j++)
        for (int i = 0; i < GRID; i++) {
            double gx, gy;
            panel_grid_point(p, GRID, GRID, i, j, &gx, &gy);
            points[2 * (j * GRID + i)] = (float)gx, points[2 * (j * GRID + i) + 1] = (float)gy;
        }
    tape_set_grad_enabled(tape, false);
    Var *x = ag_constant(tape, tensor_from_data(SHAPE(GRID * GRID, 2), points));
    Var *logp = log_density(tape, flow, x);
    hg_status s = logp ? HG_OK : hg_last_status();
    /* Shown on a square-root scale, so that the broad wings of the density are
     * visible next to its sharpest ridges. */
    for (int k = 0; logp && k < GRID * GRID; k++)
        density[k] = sqrtf(expf(tensor_data(logp->value)[k]));
    tape_free(tape); /* frees every Var it recorded */
    free(points);
    return s;
}

static float max_of(const float *v, int n) {
    float m = 0;
    for (int i = 0; i < n; i++) m = fmaxf(m, v[i]);
    return m;
}

static int fail(const char *what) {
    fprintf(stderr, "flow_density_2d: %s: %s\n", what, hg_last_error());
    return 1;
}

int main(int argc, char **argv) {
    Rng rng = rng_new(3);
    static float data[2 * N];
    make_moons(data, &rng);

    /* HGAD's coupling block with D = 2 and no condition. The reference subnet
     * width 2 * (passive + cond) would be 2 here: far too small for a curved
     * density, so we widen it. */
    CouplingOptions options = coupling_default_options(2, 0);
    options.hidden = HIDDEN;
    ParamSet *ps = param_set_new();
    InvertibleModule *flow = flow_coupling_chain_new(ps, "flow", BLOCKS, &options, &rng);
    if (!flow) return fail("flow");
    Optimizer *adam = optim_new(OPTIM_ADAM);
    OptimHyper hyper = optim_default_hyper(OPTIM_ADAM);
    hyper.lr = 3e-3;
    int group = optim_add_group(adam, "flow", &hyper);
    /* optim_add_param_set skips buffers: the fixed rotations w_perm stay fixed. */
    if (group < 0 || optim_add_param_set(adam, group, ps, NULL) != HG_OK) return fail("optimizer");

    Image *img = canvas_new(1230, 470, PLOT_WHITE);
    Panel before = panel_new(img, 40, 40, 380, 380, -3, 3, -3, 3);
    Panel after = panel_new(img, 440, 40, 380, 380, -3, 3, -3, 3);
    Panel samples = panel_new(img, 840, 40, 380, 380, -3, 3, -3, 3);
    static float density[GRID * GRID];
    if (density_grid(flow, &before, density) != HG_OK) return fail("density before");
    panel_heatmap(&before, density, GRID, GRID, 0, max_of(density, GRID * GRID), colormap_viridis);

    Tape *tape = tape_new();
    for (int step = 0; step <= STEPS; step++) {
        Var *x = ag_constant(tape, tensor_from_data(SHAPE(N, 2), data));
        /* loss = -mean log p(x): the negative log-likelihood in nats per point */
        Var *loss = ag_neg(tape, ag_mean(tape, log_density(tape, flow, x), 0, NULL, false));
        if (!loss) return fail("forward");
        if (step % 100 == 0)
            printf("step %3d  -log p(x) = %.4f\n", step, tensor_data(loss->value)[0]);
        if (step == STEPS) break;
        optim_zero_grad(adam);
        if (tape_backward(tape, loss, NULL) != HG_OK || optim_step(adam) != HG_OK)
            return fail("training step");
    }
    tape_reset(tape);

    if (density_grid(flow, &after, density) != HG_OK) return fail("density after");
    panel_heatmap(&after, density, GRID, GRID, 0, max_of(density, GRID * GRID), colormap_viridis);

    /* Sampling runs the flow in reverse: x = f^-1(z), z ~ N(0, I). */
    tape_set_grad_enabled(tape, false);
    Var *z = ag_constant(tape, tensor_normal(SHAPE(SAMPLES, 2), 0.0f, 1.0f, &rng));
    Var *logdet = NULL;
    Var *x = invertible_forward(flow, tape, z, NULL, true, &logdet);
    /* ... and forward again must give z back (the inverse is exact). */
    Var *logdet2 = NULL;
    Var *z_again = invertible_forward(flow, tape, x, NULL, false, &logdet2);
    if (!z_again) return fail("sampling");
    double roundtrip = 0;
    for (int k = 0; k < 2 * SAMPLES; k++)
        roundtrip =
            fmax(roundtrip, fabs(tensor_data(z_again->value)[k] - tensor_data(z->value)[k]));
    printf("max |f(f^-1(z)) - z| = %.2g\n", roundtrip);
    for (int i = 0; i < N; i++)
        panel_point(&samples, data[2 * i], data[2 * i + 1], 2, (PlotColor){190, 190, 190});
    for (int i = 0; i < SAMPLES; i++)
        panel_point(&samples, tensor_data(x->value)[2 * i], tensor_data(x->value)[2 * i + 1], 2.2,
                    plot_palette(1));
    tape_reset(tape);

    panel_axes(&before, "SQRT P(X) BEFORE TRAINING", PLOT_BLACK);
    panel_axes(&after, "SQRT P(X) AFTER TRAINING", PLOT_BLACK);
    panel_axes(&samples, "SAMPLES F^-1(Z) OVER DATA", PLOT_BLACK);
    char path[512];
    int status = 0;
    if (!example_output_path(argc, argv, "flow_density_2d.png", path, sizeof path) ||
        image_save_png(path, img) != HG_OK)
        status = fail("writing the PNG");
    else
        printf("wrote %s\n", path);
    image_free(img);
    tape_free(tape);
    optim_free(adam);
    invertible_free(flow); /* the module; its parameters belong to the ParamSet */
    param_set_free(ps);
    return status;
}
