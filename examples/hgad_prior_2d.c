/* HGAD's hierarchical Gaussian-mixture prior on 2-d toy data.
 *
 * HGAD trains one flow for many classes (product categories) at once. A single
 * Gaussian prior would pull every class into the same blob, so normal features
 * of one class could be mapped where another class lives ("homogeneous
 * mapping"). The hierarchical prior gives class y a main center mu_y and M
 * intra-class centers m_y0 = mu_y, m_yk = mu_y + delta_y,k-1, so a class with
 * several modes keeps them apart (spec/hgad.md section 5):
 *
 *   inter-class  L_g  = mean_i [-logsumexp_j(-|z_i - mu_j|^2 / 2 + log pi_j) - logdet_i] / D
 *                L_mi = mean_i sum_j ybar_ij [log softmax_j(..) - log pi_j]  (class information, maximized)
 *                L_e  = mean_i H(softmax_j(-|z_i - mu_j|^2 / 2))          (entropy, minimized)
 *   intra-class  L_g_intra = mean_i [-logsumexp_k(-|z_i - m_{y_i,k}|^2 / 2 + log rho_{y_i,k}) - logdet_i] / D
 *                L_z  = mean_i -log sigmoid(logp_i)
 *
 *   phase 1 (HGAD's meta epochs 0-1):  loss = L_g - 100 L_mi + L_e
 *   phase 2 (later):                    loss = L_g - 100 L_mi + L_e + L_g_intra + L_z
 *
 * The data: nine Gaussian blobs on a ring, three neighbouring blobs per class,
 * so every class is multi-modal. A coupling flow (D = 2) and the prior
 * (mixture_prior_new, C = 3 classes, M = 4 centers per class) are trained
 * together with Adam, as HGAD does per feature level.
 *
 * The PNG: the data; the latent space z = f(x) with the main centers mu (large
 * rings) and the intra-class centers (small rings) over the prior density,
 * tinted by the most likely class; and the model density log p(x) in input
 * space, where a point far from every blob (an anomaly) gets a low value.
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
    CENTERS = 4, /* M, intra-class centers per class */
    BLOBS = 9,
    PER_BLOB = 100,
    N = BLOBS * PER_BLOB,
    BLOCKS = 6,
    HIDDEN = 64,
    INTER_STEPS = 400, /* phase 1 */
    FULL_STEPS = 800,  /* phase 2 */
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

/* z = f(x) and log|det df/dx| on the tape. */
static Var *flow_forward(Tape *tape, const InvertibleModule *flow, Var *x, Var **logdet) {
    *logdet = NULL;
    return invertible_forward(flow, tape, x, NULL, false, logdet);
}

/* One training step of flow + prior (what hgad_train_step does for a level). */
static hg_status train_step(const InvertibleModule *flow, const Prior *prior, Optimizer *adam,
                            const float *data, const int64_t *labels, PriorPhase phase,
                            double *loss_value) {
    Tape *tape = tape_new();
    Var *logdet;
    Var *z = flow_forward(tape, flow, ag_constant(tape, tensor_from_data(SHAPE(N, 2), data)), &logdet);
    PriorLosses t;
    hg_status s = z ? prior->ops->losses(prior, tape, z, logdet, labels, phase, &t) : hg_last_status();
    if (s != HG_OK) {
        tape_free(tape);
        return s;
    }
    /* lambda1 L_g - lambda2 L_mi + L_e [+ L_g_intra + L_z]: the loss of hgad_level_loss(). */
    Var *loss = ag_add(tape, ag_sub(tape, ag_scale(tape, t.L_g, LAMBDA1),
                                    ag_scale(tape, t.L_mi, LAMBDA2)), t.L_e);
    if (phase == PRIOR_PHASE_FULL) loss = ag_add(tape, ag_add(tape, loss, t.L_g_intra), t.L_z);
    if (!loss) {
        tape_free(tape);
        return hg_last_status();
    }
    *loss_value = tensor_data(loss->value)[0];
    optim_zero_grad(adam);
    s = tape_backward(tape, loss, NULL);
    tape_free(tape);
    return s == HG_OK ? optim_step(adam) : s;
}

/* log p of rows x (n, 2) under the whole model: the prior's per-class evidence
 * (section 7: logp_c = (D log(1/sqrt(2 pi)) + lse_c + logdet) / D, per
 * dimension) combined over classes with the class weights pi:
 *   log p(x) = logsumexp_c(log pi_c + D logp_c).
 * With through_flow false the rows are latent points z (logdet 0). */
static hg_status model_log_density(const InvertibleModule *flow, const Prior *prior,
                                   const Tensor *log_pi, const Tensor *x, bool through_flow,
                                   float *logp_out, int *best_class) {
    int64_t n = x->shape[0];
    Tensor *z = NULL, *logdet = NULL;
    Tape *tape = tape_new();
    tape_set_grad_enabled(tape, false);
    if (through_flow) {
        Var *ld;
        Var *zv = flow_forward(tape, flow, ag_constant(tape, tensor_ref(x)), &ld);
        if (!zv) return hg_last_status();
        z = tensor_ref(zv->value), logdet = tensor_ref(ld->value);
    } else {
        z = tensor_ref(x), logdet = tensor_zeros(SHAPE(n));
    }
    tape_free(tape);
    for (int64_t i = 0; i < n; i++) logp_out[i] = -INFINITY, best_class[i] = 0;
    for (int c = 0; c < CLASSES; c++) {
        Tensor *logp, *neg_entropy;
        hg_status s = prior->ops->score(prior, z, logdet, c, &logp, &neg_entropy);
        if (s != HG_OK) return s;
        for (int64_t i = 0; i < n; i++) {
            float term = tensor_data(log_pi)[c] + 2.0f * tensor_data(logp)[i], m = logp_out[i];
            if (term > m) best_class[i] = c;
            /* running logsumexp over classes */
            logp_out[i] = fmaxf(m, term) + log1pf(expf(-fabsf(m - term)));
            if (isinf(m)) logp_out[i] = term;
        }
        tensor_free(logp), tensor_free(neg_entropy);
    }
    tensor_free(z), tensor_free(logdet);
    return HG_OK;
}

/* Evaluates model_log_density on the panel's grid and paints it: brightness
 * from the density (relative to its maximum, over `range` nats), hue from the
 * most likely class when `tint_by_class`, else the viridis map. */
static hg_status paint_density(const Panel *p, const InvertibleModule *flow, const Prior *prior,
                               const Tensor *log_pi, bool through_flow, bool tint_by_class,
                               double range) {
    static float points[2 * GRID * GRID], logp[GRID * GRID];
    static int best[GRID * GRID];
    static Rgb colors[GRID * GRID];
    for (int j = 0; j < GRID; j++)
        for (int i = 0; i < GRID; i++) {
            double gx, gy;
            panel_grid_point(p, GRID, GRID, i, j, &gx, &gy);
            points[2 * (j * GRID + i)] = (float)gx, points[2 * (j * GRID + i) + 1] = (float)gy;
        }
    Tensor *x = tensor_from_data(SHAPE(GRID * GRID, 2), points);
    hg_status s = model_log_density(flow, prior, log_pi, x, through_flow, logp, best);
    tensor_free(x);
    if (s != HG_OK) return s;
    float top = -INFINITY;
    for (int k = 0; k < GRID * GRID; k++) top = fmaxf(top, logp[k]);
    for (int k = 0; k < GRID * GRID; k++) {
        double t = 1 + (logp[k] - top) / range; /* 1 at the maximum, 0 `range` nats below */
        colors[k] = tint_by_class ? rgb_mix(RGB_WHITE, palette_color(best[k]), 0.8 * t)
                                  : colormap_viridis(t);
    }
    panel_color_grid(p, colors, GRID, GRID);
    return HG_OK;
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
     * public code's names: flow.module_list.{k}.* and mus.0, mu_deltas.0,
     * phi_inters.0, phi_intras.0 (level 0). */
    ParamSet *ps = param_set_new();
    CouplingOptions co = coupling_default_options(2, 0);
    co.hidden = HIDDEN; /* the reference width, 2, is too small for a 2-d toy */
    InvertibleModule *flow = flow_coupling_chain_new(ps, "flow", BLOCKS, &co, &rng);
    MixturePriorOptions po = {.dim = 2, .classes = CLASSES, .intra_centers = CENTERS,
                              .label_smoothing = 0.02f};
    Prior *prior = flow ? mixture_prior_new(ps, 0, &po, &rng) : NULL;
    if (!prior) return fail("model");

    /* Two optimizer groups as in HGAD: the flow with L2 weight decay, the
     * prior's centers and weights without. */
    Optimizer *adam = optim_new(OPTIM_ADAM);
    OptimHyper h = optim_default_hyper(OPTIM_ADAM);
    h.lr = 2e-3, h.beta1 = 0.95, h.beta2 = 0.99, h.weight_decay = 1e-4;
    int g_flow = optim_add_group(adam, "flows", &h);
    h.weight_decay = 0;
    int g_prior = optim_add_group(adam, "prior", &h);
    const char *prior_names[4] = {"mus", "mu_deltas", "phi_inters", "phi_intras"};
    hg_status s = optim_add_param_set(adam, g_flow, ps, "flow");
    for (int k = 0; k < 4 && s == HG_OK; k++) s = optim_add_param_set(adam, g_prior, ps, prior_names[k]);
    if (s != HG_OK) return fail("optimizer");

    for (int step = 0; step < INTER_STEPS + FULL_STEPS; step++) {
        PriorPhase phase = step < INTER_STEPS ? PRIOR_PHASE_INTER : PRIOR_PHASE_FULL;
        double loss;
        if (train_step(flow, prior, adam, data, labels, phase, &loss) != HG_OK) return fail("training");
        if (step % 200 == 0 || step == INTER_STEPS + FULL_STEPS - 1)
            printf("step %4d  phase %s  loss %.4f\n", step,
                   phase == PRIOR_PHASE_INTER ? "inter" : "full ", loss);
    }

    /* The learned prior parameters, looked up by name. */
    const Tensor *mu = param_set_find(ps, "mus.0")->value;            /* (C, D) */
    const Tensor *delta = param_set_find(ps, "mu_deltas.0")->value;   /* (C, M-1, D) */
    Tensor *log_pi = tensor_log_softmax(param_set_find(ps, "phi_inters.0")->value, 0);

    Image *img = canvas_new(1230, 470, RGB_WHITE);
    Panel in = panel_new(img, 40, 40, 380, 380, -4, 4, -4, 4);
    Panel latent = panel_new(img, 440, 40, 380, 380, -6, 6, -6, 6);
    Panel dens = panel_new(img, 840, 40, 380, 380, -4, 4, -4, 4);

    for (int i = 0; i < N; i++) panel_point(&in, data[2 * i], data[2 * i + 1], 2, palette_color((int)labels[i]));

    if (paint_density(&latent, flow, prior, log_pi, false, true, 12.0) != HG_OK) return fail("prior density");
    Tape *tape = tape_new();
    tape_set_grad_enabled(tape, false);
    Var *ld;
    Var *z = flow_forward(tape, flow, ag_constant(tape, tensor_from_data(SHAPE(N, 2), data)), &ld);
    if (!z) return fail("latent");
    for (int i = 0; i < N; i++)
        panel_point(&latent, tensor_data(z->value)[2 * i], tensor_data(z->value)[2 * i + 1], 1.6,
                    palette_color((int)labels[i]));
    tape_free(tape);
    for (int c = 0; c < CLASSES; c++) {
        const float *m = tensor_data(mu) + 2 * c;
        double px, py;
        for (int k = 0; k < CENTERS - 1; k++) { /* intra-class centers mu_c + delta_c,k */
            const float *d = tensor_data(delta) + 2 * (c * (CENTERS - 1) + k);
            panel_to_pixel(&latent, m[0] + d[0], m[1] + d[1], &px, &py);
            draw_disc(img, px, py, 4, RGB_WHITE);
            draw_circle(img, px, py, 4, RGB_BLACK);
        }
        panel_to_pixel(&latent, m[0], m[1], &px, &py); /* main center mu_c = m_c0 */
        draw_disc(img, px, py, 7, palette_color(c));
        draw_circle(img, px, py, 7, RGB_BLACK);
        draw_circle(img, px, py, 8, RGB_BLACK);
        printf("class %d: mu = (%.2f, %.2f), pi = %.3f\n", c, m[0], m[1], expf(tensor_data(log_pi)[c]));
    }

    if (paint_density(&dens, flow, prior, log_pi, true, false, 12.0) != HG_OK) return fail("model density");

    panel_axes(&in, "DATA: 3 CLASSES, 3 MODES EACH", RGB_BLACK);
    panel_axes(&latent, "LATENT Z: MU (BIG), MU+DELTA (SMALL)", RGB_BLACK);
    panel_axes(&dens, "MODEL LOG P(X), 12 NATS RANGE", RGB_BLACK);
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
