/* A multi-layer perceptron learns the two-spirals problem.
 *
 * The smallest complete training program: data, a model made of layers whose
 * parameters live in a ParamSet, a loss on the autograd tape, tape_backward()
 * for the gradients, and an Adam step. The two interleaved spirals cannot be
 * separated by a line, so the hidden layers must bend the plane.
 *
 *   model   logits = L3(tanh(L2(tanh(L1(x)))))      2 -> 64 -> 64 -> 2
 *   loss    cross entropy of softmax(logits) against the spiral's label
 *   update  Adam, lr 1e-2, full batch, 600 steps
 *
 * The PNG shows the decision regions (the colour blends from one class to the
 * other through white as the predicted probability goes from 1 to 0) with the
 * training points on top.
 *
 * Run: build/examples/mlp_toy [out_dir]   -> out_dir/mlp_toy.png */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "autograd/ops.h"
#include "examples/plot.h"
#include "nn/linear.h"
#include "nn/losses.h"
#include "nn/optim.h"
#include "tensor/ops.h"
#include "tensor/rng.h"

enum { PER_CLASS = 300, N = 2 * PER_CLASS, HIDDEN = 64, STEPS = 600, GRID = 200 };

/* Two spirals of 1.5 turns, the second rotated by half a turn: point at
 * radius r in [0.1, 1] has angle 3 pi r (+ pi for class 1), plus a little noise. */
static void make_spirals(float *x, int64_t *labels, Rng *rng) {
    for (int i = 0; i < N; i++) {
        int c = i % 2;
        double r = 0.1 + 0.9 * rng_uniform(rng);
        double a = 3 * M_PI * r + c * M_PI;
        x[2 * i] = (float)(r * cos(a) + 0.03 * rng_normal(rng));
        x[2 * i + 1] = (float)(r * sin(a) + 0.03 * rng_normal(rng));
        labels[i] = c;
    }
}

typedef struct Mlp {
    Linear l1, l2, l3;
} Mlp;

/* Registers the three layers' weights in `ps` ("l1.weight", "l1.bias", ...),
 * initialized as PyTorch's nn.Linear. */
static hg_status mlp_init(Mlp *m, ParamSet *ps, Rng *rng) {
    hg_status s = linear_init(&m->l1, ps, "l1", 2, HIDDEN, true, rng);
    if (s == HG_OK) s = linear_init(&m->l2, ps, "l2", HIDDEN, HIDDEN, true, rng);
    if (s == HG_OK) s = linear_init(&m->l3, ps, "l3", HIDDEN, 2, true, rng);
    return s;
}

/* Records the forward pass on the tape; the result (N, 2) is owned by the tape. */
static Var *mlp_forward(Tape *tape, const Mlp *m, Var *x) {
    Var *h = activation_forward(tape, ACT_TANH, linear_forward(tape, &m->l1, x));
    h = activation_forward(tape, ACT_TANH, linear_forward(tape, &m->l2, h));
    return linear_forward(tape, &m->l3, h);
}

static int fail(const char *what) {
    fprintf(stderr, "mlp_toy: %s: %s\n", what, hg_last_error());
    return 1;
}

int main(int argc, char **argv) {
    Rng rng = rng_new(42);
    float points[2 * N];
    int64_t labels[N];
    make_spirals(points, labels, &rng);

    /* The model's parameters belong to the ParamSet; the optimizer only
     * points at them. */
    ParamSet *ps = param_set_new();
    Mlp mlp;
    if (mlp_init(&mlp, ps, &rng) != HG_OK) return fail("init");
    Optimizer *adam = optim_new(OPTIM_ADAM);
    OptimHyper hyper = optim_default_hyper(OPTIM_ADAM);
    hyper.lr = 1e-2;
    int group = optim_add_group(adam, "mlp", &hyper);
    if (group < 0 || optim_add_param_set(adam, group, ps, NULL) != HG_OK) return fail("optimizer");
    printf("%lld parameters\n", (long long)param_set_numel(ps, true));

    Tape *tape = tape_new();
    for (int step = 0; step <= STEPS; step++) {
        /* A constant is a tape-owned Var that needs no gradient: the data. */
        Var *x = ag_constant(tape, tensor_from_data(SHAPE(N, 2), points));
        Var *logits = mlp_forward(tape, &mlp, x);
        Var *loss = loss_cross_entropy(tape, logits, labels, 0.0f);
        if (!loss) return fail("forward");
        if (step % 100 == 0) {
            /* Read what we need from the graph before backward frees it. */
            int correct = 0;
            const float *lg = tensor_data(logits->value);
            for (int i = 0; i < N; i++) correct += (lg[2 * i + 1] > lg[2 * i]) == (labels[i] == 1);
            printf("step %4d  loss %.4f  accuracy %.3f\n", step, tensor_data(loss->value)[0],
                   (double)correct / N);
        }
        if (step == STEPS) {
            tape_reset(tape); /* the last forward was only for the report */
            break;
        }
        optim_zero_grad(adam);
        if (tape_backward(tape, loss, NULL) != HG_OK) return fail("backward"); /* frees the graph */
        if (optim_step(adam) != HG_OK) return fail("step");
    }

    /* Decision regions: evaluate the model on a grid covering the panel, with
     * gradients off (nothing is kept for a backward pass). */
    Image *img = canvas_new(560, 560, PLOT_WHITE);
    Panel panel = panel_new(img, 50, 40, 480, 480, -1.2, 1.2, -1.2, 1.2);
    float *grid = malloc(sizeof(float) * 2 * GRID * GRID);
    PlotColor *colors = malloc(sizeof(PlotColor) * GRID * GRID);
    for (int j = 0; j < GRID; j++)
        for (int i = 0; i < GRID; i++) {
            double gx, gy;
            panel_grid_point(&panel, GRID, GRID, i, j, &gx, &gy);
            grid[2 * (j * GRID + i)] = (float)gx;
            grid[2 * (j * GRID + i) + 1] = (float)gy;
        }
    tape_set_grad_enabled(tape, false);
    Var *gx = ag_constant(tape, tensor_from_data(SHAPE(GRID * GRID, 2), grid));
    Var *prob = ag_softmax(tape, mlp_forward(tape, &mlp, gx), 1);
    if (!prob) return fail("grid");
    for (int k = 0; k < GRID * GRID; k++) {
        double p1 = tensor_data(prob->value)[2 * k + 1]; /* P(class 1) */
        PlotColor tint = p1 > 0.5 ? plot_palette(1) : plot_palette(0);
        colors[k] = rgb_mix(PLOT_WHITE, tint, 0.55 * fabs(2 * p1 - 1));
    }
    tape_reset(tape);
    panel_color_grid(&panel, colors, GRID, GRID);
    for (int i = 0; i < N; i++) {
        panel_point(&panel, points[2 * i], points[2 * i + 1], 3.2, PLOT_WHITE);
        panel_point(&panel, points[2 * i], points[2 * i + 1], 2.2, plot_palette((int)labels[i]));
    }
    panel_axes(&panel, "TWO SPIRALS: MLP DECISION REGIONS", PLOT_BLACK);

    char path[512];
    int status = 0;
    if (!example_output_path(argc, argv, "mlp_toy.png", path, sizeof path) ||
        image_save_png(path, img) != HG_OK)
        status = fail("writing the PNG");
    else
        printf("wrote %s\n", path);
    image_free(img);
    free(grid);
    free(colors);
    tape_free(tape);
    optim_free(adam);
    param_set_free(ps);
    return status;
}
