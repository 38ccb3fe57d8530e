/* HGAD's hierarchical Gaussian-mixture prior on 2-d toy data.
 *
 * HGAD trains one flow for many classes (product categories) at once. With a
 * single Gaussian prior, features of every class are pulled into the same
 * blob, so normal features of one class can land where another class lives
 * (the paper's "homogeneous mapping"). The hierarchical prior gives class y a
 * main center mu_y and M intra-class centers m_y0 = mu_y, m_yk = mu_y +
 * delta_y,k-1, so a class with several modes can keep them apart
 * (spec/hgad.md section 5; sg = stop gradient):
 *
 *   inter-class  L_g  = mean_i [-logsumexp_j(-|z_i - mu_j|^2 / 2 + log pi_j) - logdet_i] / D
 *                L_mi = mean_i sum_j ybar_ij [log softmax_j(-|z_i - mu_j|^2 / 2 + log pi_j)
 *                                             - log pi_j]          (class information, maximized)
 *                L_e  = mean_i H(softmax_j(-|z_i - mu_j|^2 / 2))   (posterior entropy, minimized)
 *   intra-class  L_g_intra = mean_i [-logsumexp_k(-|z_i - m_{y_i,k}|^2 / 2 + log rho_{y_i,k})
 *                                    - logdet_i] / D                (centers: sg(mu) + delta)
 *                L_z  = mean_i -log sigmoid(logp_i)
 *
 *   phase 1 (HGAD's meta epochs 0-1):  loss = L_g - 100 L_mi + L_e
 *   phase 2 (later):                    loss = L_g - 100 L_mi + L_e + L_g_intra + L_z
 *
 * The data: nine Gaussian blobs on a ring, three neighbouring blobs per class,
 * so every class is multi-modal. A coupling flow (D = 2) and the prior
 * (mixture_prior_new, C = 3 classes, M = 3 centers per class) are trained
 * together with Adam, as HGAD does per feature level. The flow is
 * deliberately weak (one coupling block): a deeper flow simply merges the
 * three modes of a class into one blob around mu_y (that is what L_g asks
 * for), and the intra-class centers would have nothing left to find. In
 * HGAD's 200-dimensional feature space no flow can do that, which is why the
 * intra-class centers matter there.
 *
 * The PNG: the data; the latent space z = f(x) with the main centers mu
 * (large rings) and the intra-class centers mu + delta (small rings) over the
 * prior density tinted by the most likely class; and the loss terms during
 * training, with the switch from phase 1 to phase 2.
 *
 * Run: build/examples/hgad_prior_2d [out_dir]   -> out_dir/hgad_prior_2d.png */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "autograd/ops.h"
#include "examples/plot.h"
#include "models/flow.h"
#include "models/prior.h"
#include "nn/optim.h"
#include "tensor/ops.h"
#include "tensor/rng.h"

enum {
    CLASSES = 3,
    CENTERS = 3, /* M, intra-class centers per class (the main one included) */
    BLOBS = 9,
    PER_BLOB = 50,
    N = BLOBS * PER_BLOB,
    BLOCKS = 1,
    HIDDEN = 64,
    INTER_STEPS = 400, /* phase 1 */
    FULL_STEPS = 1600, /* phase 2 */
    STEPS = INTER_STEPS + FULL_STEPS,
    GRID = 120,
};
static const float LAMBDA1 = 1.0f, LAMBDA2 = 100.0f; /* spec section 5 */

/* Blob b sits at angle 40 b degrees on a ring of radius 2.5 and belongs to
 * class b / 3: each class is an arc of three separate modes. */
static void make_data(float *x, int64_t *labels, Rng *rng) {
    for (int i = 0; i < N; i++) {
        int b = i % BLOBS;
        double a = 2 * M_PI * b / BLOBS;
        x[2 * i] = (float)(2.5 * cos(a) + 0.3 * rng_normal(rng));
        x[2 * i + 1] = (float)(2.5 * sin(a) + 0.3 * rng_normal(rng));
        labels[i] = b / 3;
    }
}

/* The loss terms of one step, for the curves (NaN when not computed). */
enum { T_LOSS, T_G, T_MI, T_E, T_G_INTRA, T_Z, N_TERMS };
static const char *const term_names[N_TERMS] = {"LOSS/100", "L_G",       "L_MI",
                                                "L_E",      "L_G_INTRA", "L_Z"};

static double value_of(const Var *v) {
    return v ? tensor_data(v->value)[0] : NAN;
}

/* One training step of flow + prior: what hgad_train_step() does for a level. */
static hg_status train_step(const InvertibleModule *flow, const Prior *prior, Optimizer *adam,
                            const float *data, const int64_t *labels, PriorPhase phase,
                            double *terms) {
    Tape *tape = tape_new();
    Var *x = ag_constant(tape, tensor_from_data(SHAPE(N, 2), data));
    Var *logdet = NULL;
    Var *z = invertible_forward(flow, tape, x, NULL, false, &logdet); /* z = f(x) */
    PriorLosses t;
    hg_status s =
        z ? prior->ops->losses(prior, tape, z, logdet, labels, phase, &t) : hg_last_status();
    if (s != HG_OK) {
        tape_free(tape);
        return s;
    }
    /* lambda1 L_g - lambda2 L_mi + L_e [+ L_g_intra + L_z], as hgad_level_loss(). */
    Var *loss = ag_add(
        tape, ag_sub(tape, ag_scale(tape, t.L_g, LAMBDA1), ag_scale(tape, t.L_mi, LAMBDA2)), t.L_e);
    if (phase == PRIOR_PHASE_FULL) loss = ag_add(tape, ag_add(tape, loss, t.L_g_intra), t.L_z);
    if (!loss) {
        tape_free(tape);
        return hg_last_status();
    }
    const Var *vars[N_TERMS] = {loss, t.L_g, t.L_mi, t.L_e, t.L_g_intra, t.L_z};
    for (int k = 0; k < N_TERMS; k++) terms[k] = value_of(vars[k]);
    terms[T_LOSS] /= 100; /* to share the axis with the terms */
    optim_zero_grad(adam);
    s = tape_backward(tape, loss, NULL); /* also frees the graph */
    tape_free(tape);
    return s == HG_OK ? optim_step(adam) : s;
}

/* Paints the prior density over the latent panel: for every grid point z the
 * prior's own per-class evidence (PriorOps.score, spec section 7: logp_c per
 * dimension over the intra-class centers of class c, with logdet 0 since the
 * points are already in z) is combined over classes,
 *   log p(z) = logsumexp_c(log pi_c + D logp_c),
 * and shown as the tint of the most likely class, fading out 12 nats below
 * the maximum. */
static hg_status paint_prior(const Panel *p, const Prior *prior, const Tensor *log_pi) {
    static float points[2 * GRID * GRID], logp[GRID * GRID];
    static int best[GRID * GRID];
    static PlotColor colors[GRID * GRID];
    for (int j = 0; j < GRID; j++)
        for (int i = 0; i < GRID; i++) {
            double gx, gy;
            panel_grid_point(p, GRID, GRID, i, j, &gx, &gy);
            points[2 * (j * GRID + i)] = (float)gx, points[2 * (j * GRID + i) + 1] = (float)gy;
        }
    Tensor *z = tensor_from_data(SHAPE(GRID * GRID, 2), points);
    Tensor *logdet = tensor_zeros(SHAPE(GRID * GRID));
    hg_status s = z && logdet ? HG_OK : hg_last_status();
    for (int k = 0; k < GRID * GRID; k++) logp[k] = -INFINITY;
    for (int c = 0; c < CLASSES && s == HG_OK; c++) {
        Tensor *logp_c = NULL, *neg_entropy = NULL;
        s = prior->ops->score(prior, z, logdet, c, &logp_c, &neg_entropy);
        for (int k = 0; s == HG_OK && k < GRID * GRID; k++) {
            float term = tensor_data(log_pi)[c] + 2.0f * tensor_data(logp_c)[k], m = logp[k];
            if (term > m) best[k] = c;
            /* running logsumexp over the classes */
            logp[k] = isinf(m) ? term : fmaxf(m, term) + log1pf(expf(-fabsf(m - term)));
        }
        tensor_free(logp_c), tensor_free(neg_entropy);
    }
    tensor_free(z), tensor_free(logdet);
    if (s != HG_OK) return s;
    float top = -INFINITY;
    for (int k = 0; k < GRID * GRID; k++) top = fmaxf(top, logp[k]);
    for (int k = 0; k < GRID * GRID; k++)
        colors[k] = rgb_mix(PLOT_WHITE, plot_palette(best[k]), 0.8 * (1 + (logp[k] - top) / 12));
    panel_color_grid(p, colors, GRID, GRID);
    return HG_OK;
}

/* Main centers as large rings, intra-class centers mu + delta as small ones. */
static void draw_centers(const Panel *p, const Tensor *mu, const Tensor *delta) {
    for (int c = 0; c < CLASSES; c++) {
        const float *m = tensor_data(mu) + 2 * c;
        double px, py;
        for (int k = 0; k < CENTERS - 1; k++) {
            const float *d = tensor_data(delta) + 2 * (c * (CENTERS - 1) + k);
            panel_to_pixel(p, m[0] + d[0], m[1] + d[1], &px, &py);
            draw_disc(p->img, px, py, 4, PLOT_WHITE);
            draw_circle(p->img, px, py, 4, PLOT_BLACK);
        }
        panel_to_pixel(p, m[0], m[1], &px, &py);
        draw_disc(p->img, px, py, 7, plot_palette(c));
        draw_circle(p->img, px, py, 7, PLOT_BLACK);
        draw_circle(p->img, px, py, 8, PLOT_BLACK);
    }
}

static void draw_curves(const Panel *p, double (*terms)[N_TERMS]) {
    static const PlotColor colors[N_TERMS] = {{0, 0, 0},     {31, 119, 180},  {214, 39, 40},
                                              {44, 160, 44}, {148, 103, 189}, {255, 127, 14}};
    double px, py, qx, qy;
    panel_to_pixel(p, INTER_STEPS, p->y0, &px, &py); /* the phase switch */
    panel_to_pixel(p, INTER_STEPS, p->y1, &qx, &qy);
    for (int y = (int)qy; y < (int)py; y += 6)
        draw_line(p->img, (int)px, y, (int)px, y + 3, EXAMPLE_GREY);
    plot_text(p->img, (int)px - plot_text_width("PHASE 1", 1) - 4, (int)qy + 4, 1, EXAMPLE_GREY,
              "PHASE 1");
    plot_text(p->img, (int)px + 4, (int)qy + 4, 1, EXAMPLE_GREY, "PHASE 2");
    for (int k = 0; k < N_TERMS; k++) {
        for (int step = 1; step < STEPS; step++)
            if (!isnan(terms[step - 1][k]) && !isnan(terms[step][k]))
                panel_line(p, step - 1, fmax(terms[step - 1][k], p->y0), step,
                           fmax(terms[step][k], p->y0), colors[k]);
        plot_text(p->img, p->left + p->width - 70, p->top + 16 + 10 * k, 1, colors[k],
                  term_names[k]);
    }
}

static int fail(const char *what) {
    fprintf(stderr, "hgad_prior_2d: %s: %s\n", what, hg_last_error());
    return 1;
}

int main(int argc, char **argv) {
    Rng rng = rng_new(11);
    static float data[2 * N];
    static int64_t labels[N];
    make_data(data, labels, &rng);

    /* Flow and prior register their parameters in one ParamSet, under the
     * public code's names: flow.module_list.0.* and, for level 0, mus.0
     * (C x D), mu_deltas.0 (C x (M-1) x D), phi_inters.0 (C), phi_intras.0 (C x M). */
    ParamSet *ps = param_set_new();
    CouplingOptions co = coupling_default_options(2, 0);
    co.hidden = HIDDEN; /* the reference width, 2 (n + n), is too small for a 2-d toy */
    InvertibleModule *flow = flow_coupling_chain_new(ps, "flow", BLOCKS, &co, &rng);
    MixturePriorOptions po = {
        .dim = 2, .classes = CLASSES, .intra_centers = CENTERS, .label_smoothing = 0.02f};
    /* With C = 3 > D = 2 the spec's initialization leaves every mu at 0; the
     * class-information term L_mi pushes them apart within a few steps. */
    Prior *prior = flow ? mixture_prior_new(ps, 0, &po, &rng) : NULL;
    if (!prior) return fail("model");

    /* Two optimizer groups, as in HGAD: the flow with L2 weight decay, the
     * prior without. The prior gets a larger step here (HGAD's option of a
     * larger lr for the centers) so that it settles in a couple of thousand steps. */
    Optimizer *adam = optim_new(OPTIM_ADAM);
    OptimHyper h = optim_default_hyper(OPTIM_ADAM);
    h.lr = 5e-3, h.beta1 = 0.95, h.beta2 = 0.99, h.weight_decay = 1e-4;
    int g_flow = optim_add_group(adam, "flows", &h);
    h.lr = 2e-2, h.weight_decay = 0;
    int g_prior = optim_add_group(adam, "prior", &h);
    const char *prior_names[4] = {"mus", "mu_deltas", "phi_inters", "phi_intras"};
    hg_status s = optim_add_param_set(adam, g_flow, ps, "flow");
    for (int k = 0; k < 4 && s == HG_OK; k++)
        s = optim_add_param_set(adam, g_prior, ps, prior_names[k]);
    if (s != HG_OK) return fail("optimizer");

    static double terms[STEPS][N_TERMS];
    for (int step = 0; step < STEPS; step++) {
        PriorPhase phase = step < INTER_STEPS ? PRIOR_PHASE_INTER : PRIOR_PHASE_FULL;
        if (train_step(flow, prior, adam, data, labels, phase, terms[step]) != HG_OK)
            return fail("training");
        if (step % 400 == 0 || step == STEPS - 1)
            printf("step %4d  %s  loss %8.3f  L_g %.3f  L_mi %.3f  L_e %.3f  L_g_intra %.3f  L_z "
                   "%.3f\n",
                   step, phase == PRIOR_PHASE_INTER ? "phase 1" : "phase 2",
                   100 * terms[step][T_LOSS], terms[step][T_G], terms[step][T_MI], terms[step][T_E],
                   terms[step][T_G_INTRA], terms[step][T_Z]);
    }

    /* The learned prior parameters, looked up by their names. */
    const Tensor *mu = param_set_find(ps, "mus.0")->value;
    const Tensor *delta = param_set_find(ps, "mu_deltas.0")->value;
    Tensor *log_pi = tensor_log_softmax(param_set_find(ps, "phi_inters.0")->value, 0);
    for (int c = 0; c < CLASSES; c++)
        printf("class %d: mu = (%5.2f, %5.2f)  pi = %.3f\n", c, tensor_data(mu)[2 * c],
               tensor_data(mu)[2 * c + 1], expf(tensor_data(log_pi)[c]));

    Image *img = canvas_new(1230, 470, PLOT_WHITE);
    Panel in = panel_new(img, 40, 40, 380, 380, -4, 4, -4, 4);
    Panel latent = panel_new(img, 440, 40, 380, 380, -6, 6, -6, 6);
    Panel curves = panel_new(img, 840, 40, 380, 380, 0, STEPS, -1.5, 3.5);
    for (int i = 0; i < N; i++)
        panel_point(&in, data[2 * i], data[2 * i + 1], 2, plot_palette((int)labels[i]));

    if (paint_prior(&latent, prior, log_pi) != HG_OK) return fail("prior density");
    Tape *tape = tape_new();
    tape_set_grad_enabled(tape, false); /* evaluation: nothing kept for backward */
    Var *logdet = NULL;
    Var *z = invertible_forward(flow, tape, ag_constant(tape, tensor_from_data(SHAPE(N, 2), data)),
                                NULL, false, &logdet);
    if (!z) return fail("latent");
    for (int i = 0; i < N; i++)
        panel_point(&latent, tensor_data(z->value)[2 * i], tensor_data(z->value)[2 * i + 1], 1.6,
                    plot_palette((int)labels[i]));
    tape_free(tape);
    draw_centers(&latent, mu, delta);
    draw_curves(&curves, terms);

    panel_axes(&in, "DATA: 3 CLASSES, 3 MODES EACH", PLOT_BLACK);
    panel_axes(&latent, "Z = F(X): MU (BIG), MU+DELTA (SMALL)", PLOT_BLACK);
    panel_axes(&curves, "LOSS TERMS PER STEP", PLOT_BLACK);
    char path[512];
    int status = 0;
    if (!example_output_path(argc, argv, "hgad_prior_2d.png", path, sizeof path) ||
        image_save_png(path, img) != HG_OK)
        status = fail("writing the PNG");
    else
        printf("wrote %s\n", path);
    image_free(img);
    tensor_free(log_pi);
    optim_free(adam);
    prior_free(prior);
    invertible_free(flow);
    param_set_free(ps);
    return status;
}
