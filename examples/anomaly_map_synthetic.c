/* End to end on a synthetic texture: features, a flow, an anomaly map.
 *
 * The same pipeline as HGAD on MVTec, shrunk to run in a second:
 *
 *   1. images: a woven texture drawn procedurally; training images are
 *      defect-free, the test set holds one clean and one defective image
 *      (a bright scratch and a faded stain) whose defect mask we know;
 *   2. features: instead of a pretrained backbone, a fixed random filter bank
 *      (16 random 7x7 filters, nn/conv2d.h) whose local energies, averaged
 *      over 4x4 and 8x8 cells, give two feature levels (32x32 and 16x16 maps
 *      of 16-d vectors); HGAD's backbone gives three levels the same way;
 *   3. one flow per level, trained by maximum likelihood on the defect-free
 *      vectors under a standard Gaussian prior (gaussian_prior_new: CFLOW-AD's
 *      loss, the single-class special case of HGAD's prior);
 *   4. scoring (spec/hgad.md section 7): per level the log-likelihood per
 *      dimension of every vector, as maps; anomaly_normalization() and
 *      anomaly_maps() turn them into one anomaly map per image
 *      (exp, upsample, sum over levels, max minus, Gaussian blur sigma 4);
 *      the image score is the map's maximum;
 *   5. metrics: pixel AUROC of the defective image's map against its mask.
 *
 * The PNG: the clean and the defective test image, each with its anomaly map
 * over it (Turbo colours as in hgad eval, one scale for both), and the true
 * defect mask.
 *
 * Run: build/examples/anomaly_map_synthetic [out_dir]
 *      -> out_dir/anomaly_map_synthetic.png */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "autograd/ops.h"
#include "datasets/metrics.h"
#include "examples/plot.h"
#include "models/anomaly_map.h"
#include "models/flow.h"
#include "models/prior.h"
#include "nn/conv2d.h"
#include "nn/optim.h"
#include "nn/pool.h"
#include "tensor/ops.h"
#include "tensor/rng.h"

enum {
    S = 128,             /* image size, also the anomaly-map size (msk_size) */
    KSIZE = 7,           /* filter size; images are drawn KSIZE - 1 larger so that */
    RAW = S + KSIZE - 1, /* the filters see no border ("valid" convolution) */
    FILTERS = 16,        /* feature dimension D */
    LEVELS = 2,
    TRAIN_IMAGES = 4,
    BLOCKS = 4,
    HIDDEN = 64,
    STEPS = 300,
};
static const int cell[LEVELS] = {4, 8}; /* pooling cell of each level: maps 32x32, 16x16 */

/* ---- 1. images ---- */

/* A woven texture (a rotated product of two sine waves, period 8 px) with
 * grain; each image gets its own phase, slight rotation and noise. When
 * `mask` is not NULL a scratch and a stain are painted, and mask (S x S,
 * image coordinates after the border crop) marks them. */
static void draw_texture(float *img, uint8_t *mask, Rng *rng) {
    const double period = 8, angle = 0.01 * rng_normal(rng);
    const double px = 8 * rng_uniform(rng), py = 8 * rng_uniform(rng);
    const double ca = cos(angle), sa = sin(angle);
    for (int y = 0; y < RAW; y++)
        for (int x = 0; x < RAW; x++) {
            double u = ca * x + sa * y + px, v = -sa * x + ca * y + py;
            double weave = sin(2 * M_PI * u / period) * sin(2 * M_PI * v / period);
            img[y * RAW + x] = (float)(0.5 + 0.25 * weave + 0.04 * rng_normal(rng));
        }
    if (!mask) return;
    const int b = KSIZE / 2; /* offset of the cropped image inside the raw one */
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            /* scratch: within 1.5 px of the segment (25, 95) - (85, 70) */
            double ax = x - 25.0, ay = y - 95.0, dx = 60, dy = -25;
            double t = fmin(fmax((ax * dx + ay * dy) / (dx * dx + dy * dy), 0), 1);
            double dist = hypot(ax - t * dx, ay - t * dy);
            /* stain: a disc of radius 10 at (92, 36) where the weave fades */
            double stain = hypot(x - 92.0, y - 36.0);
            float *p = &img[(y + b) * RAW + (x + b)];
            mask[y * S + x] = dist < 1.5 || stain < 10;
            if (dist < 1.5)
                *p = 0.95f;
            else if (stain < 10)
                *p = 0.5f + 0.3f * (*p - 0.5f) - 0.08f;
        }
}

/* ---- 2. features ---- */

/* Level maps (B, D, S/cell, S/cell) of B raw images: responses r of the
 * filters (valid convolution, S x S), local energy sqrt(mean(r^2)) over each
 * cell (average pooling). */
static hg_status extract(const float *images, int count, const Tensor *filters, Tensor **levels) {
    Tensor *x = tensor_from_data(SHAPE(count, 1, RAW, RAW), images);
    Conv2dSpec spec = conv2d_spec(1, 0, 1, 1);
    Tensor *r = x ? conv2d_forward(x, filters, NULL, &spec) : NULL; /* (B, D, S, S) */
    Tensor *r2 = r ? tensor_square(r) : NULL;
    hg_status s = r2 ? HG_OK : hg_last_status();
    for (int l = 0; l < LEVELS; l++) {
        Pool2dSpec pool = pool2d_spec(cell[l], cell[l], 0);
        Tensor *energy = s == HG_OK ? avgpool2d_forward(r2, &pool) : NULL;
        levels[l] = energy ? tensor_sqrt(energy) : NULL;
        tensor_free(energy);
        if (!levels[l] && s == HG_OK) s = hg_last_status();
    }
    tensor_free(x), tensor_free(r), tensor_free(r2);
    return s;
}

/* (B, D, H, W) maps -> (B*H*W, D) vectors, row b*H*W + h*W + w (HGAD's order). */
static Tensor *to_vectors(const Tensor *maps) {
    int dims[4] = {0, 2, 3, 1};
    Tensor *nhwc = tensor_permute(maps, dims);
    Tensor *v = nhwc ? tensor_reshape(nhwc, SHAPE(-1, maps->shape[1])) : NULL;
    tensor_free(nhwc);
    return v;
}

/* Per-channel mean and std of the training vectors, so the flow sees
 * standardized inputs (as a backbone's batch-normalized features roughly are). */
typedef struct {
    Tensor *mean, *std;
} Standardizer;

static Tensor *standardize(const Standardizer *st, const Tensor *v) {
    Tensor *centered = tensor_sub(v, st->mean);
    Tensor *out = centered ? tensor_div(centered, st->std) : NULL;
    tensor_free(centered);
    return out;
}

/* ---- 3. a flow per level ---- */

static hg_status train_flow(const InvertibleModule *flow, const Prior *prior, ParamSet *ps,
                            const Tensor *x, int level) {
    Optimizer *adam = optim_new(OPTIM_ADAM);
    OptimHyper h = optim_default_hyper(OPTIM_ADAM);
    h.lr = 2e-3;
    int group = optim_add_group(adam, NULL, &h);
    char prefix[32];
    snprintf(prefix, sizeof prefix, "nfs.%d", level); /* this level's flow only */
    hg_status s = group < 0 ? hg_last_status() : optim_add_param_set(adam, group, ps, prefix);
    for (int step = 0; step < STEPS && s == HG_OK; step++) {
        Tape *tape = tape_new();
        Var *logdet = NULL;
        Var *z =
            invertible_forward(flow, tape, ag_constant(tape, tensor_ref(x)), NULL, false, &logdet);
        PriorLosses losses;
        s = z ? prior->ops->losses(prior, tape, z, logdet, NULL, PRIOR_PHASE_FULL, &losses)
              : hg_last_status();
        if (s == HG_OK) {
            if (step % 100 == 0 || step == STEPS - 1)
                printf("level %d step %3d  L_z %.4f\n", level, step,
                       tensor_data(losses.L_z->value)[0]);
            optim_zero_grad(adam);
            s = tape_backward(tape, losses.L_z, NULL);
            if (s == HG_OK) s = optim_step(adam);
        }
        tape_free(tape);
    }
    optim_free(adam);
    return s;
}

/* ---- 4. scoring ---- */

/* Evidence maps (B, H, W) of a level: logp per vector (section 7), no gradient. */
static Tensor *evidence_map(const InvertibleModule *flow, const Prior *prior, const Tensor *x,
                            int64_t b, int64_t h, int64_t w) {
    Tape *tape = tape_new();
    tape_set_grad_enabled(tape, false);
    Var *logdet = NULL;
    Var *z = invertible_forward(flow, tape, ag_constant(tape, tensor_ref(x)), NULL, false, &logdet);
    Tensor *logp = NULL, *neg_entropy = NULL, *map = NULL;
    if (z && prior->ops->score(prior, z->value, logdet->value, 0, &logp, &neg_entropy) == HG_OK)
        map = tensor_reshape(logp, SHAPE(b, h, w));
    tensor_free(logp), tensor_free(neg_entropy); /* a Gaussian prior has no entropy map */
    tape_free(tape);
    return map;
}

/* ---- drawing ---- */

/* Draws an S x S grey image at (x0, y0), twice enlarged, optionally overlaid
 * with a heat map (alpha 0.5) normalized by [lo, hi]. */
static void draw_image(Image *img, int x0, int y0, const float *grey, int stride, const float *heat,
                       float lo, float hi) {
    for (int y = 0; y < 2 * S; y++)
        for (int x = 0; x < 2 * S; x++) {
            float g = fminf(fmaxf(grey[(y / 2) * stride + x / 2], 0), 1);
            PlotColor c = {(uint8_t)(255 * g), (uint8_t)(255 * g), (uint8_t)(255 * g)};
            if (heat)
                c = rgb_mix(c, colormap_turbo((heat[(y / 2) * S + x / 2] - lo) / (hi - lo)), 0.5);
            draw_pixel(img, x0 + x, y0 + y, c);
        }
}

static int fail(const char *what) {
    fprintf(stderr, "anomaly_map_synthetic: %s: %s\n", what, hg_last_error());
    return 1;
}

int main(int argc, char **argv) {
    Rng rng = rng_new(2024);
    static float train[TRAIN_IMAGES * RAW * RAW], test[2 * RAW * RAW];
    static uint8_t mask[S * S];
    for (int i = 0; i < TRAIN_IMAGES; i++) draw_texture(train + i * RAW * RAW, NULL, &rng);
    draw_texture(test, NULL, &rng);             /* test image 0: clean */
    draw_texture(test + RAW * RAW, mask, &rng); /* test image 1: defective */

    /* The feature extractor: fixed random filters, never trained. */
    Tensor *filters = tensor_normal(SHAPE(FILTERS, 1, KSIZE, KSIZE), 0.0f, 1.0f / KSIZE, &rng);
    Tensor *train_maps[LEVELS], *test_maps[LEVELS];
    if (extract(train, TRAIN_IMAGES, filters, train_maps) != HG_OK ||
        extract(test, 2, filters, test_maps) != HG_OK)
        return fail("features");

    ParamSet *ps = param_set_new();
    CouplingOptions co = coupling_default_options(FILTERS, 0);
    co.hidden = HIDDEN;
    Prior *prior = gaussian_prior_new(FILTERS);
    Tensor *evidence[LEVELS];
    for (int l = 0; l < LEVELS; l++) {
        /* Vectors of every training position, standardized per channel. */
        Tensor *v = to_vectors(train_maps[l]);
        int dim0 = 0;
        Standardizer st = {tensor_mean(v, 1, &dim0, true), NULL};
        Tensor *var = tensor_sub(v, st.mean), *var2 = var ? tensor_square(var) : NULL;
        Tensor *var_mean = var2 ? tensor_mean(var2, 1, &dim0, true) : NULL;
        st.std = var_mean ? tensor_sqrt(var_mean) : NULL;
        tensor_free(var), tensor_free(var2), tensor_free(var_mean);
        Tensor *x_train = st.std ? standardize(&st, v) : NULL;
        tensor_free(v);

        char prefix[32];
        snprintf(prefix, sizeof prefix, "nfs.%d", l);
        InvertibleModule *flow = flow_coupling_chain_new(ps, prefix, BLOCKS, &co, &rng);
        if (!x_train || !flow || train_flow(flow, prior, ps, x_train, l) != HG_OK)
            return fail("training");

        const Tensor *m = test_maps[l];
        Tensor *tv = to_vectors(m);
        Tensor *x_test = tv ? standardize(&st, tv) : NULL;
        evidence[l] = x_test
                          ? evidence_map(flow, prior, x_test, m->shape[0], m->shape[2], m->shape[3])
                          : NULL;
        if (!evidence[l]) return fail("scoring");
        tensor_free(tv), tensor_free(x_test), tensor_free(x_train);
        tensor_free(st.mean), tensor_free(st.std);
        invertible_free(flow);
    }

    /* Section 7, "paper" normalization: the constants come from the test set
     * itself (both test images). A deployable model would compute them once
     * on training images and keep them (see models/anomaly_map.h). */
    MapNormalization norm;
    const Tensor *const *maps = (const Tensor *const *)evidence;
    if (anomaly_normalization(LEVELS, maps, S, &norm) != HG_OK) return fail("normalization");
    Tensor *anomaly = anomaly_maps(LEVELS, maps, S, 4.0, &norm); /* (2, S, S) */
    if (!anomaly) return fail("anomaly maps");
    float scores[2];
    anomaly_image_scores(anomaly, scores);
    const float *a = tensor_data(anomaly);
    double auroc = metric_auroc(a + S * S, mask, S * S); /* defective image's pixels */
    printf("image scores: clean %.4f, defective %.4f\n", scores[0], scores[1]);
    printf("pixel AUROC of the defective image: %.4f\n", auroc);

    float lo = a[0], hi = a[0];
    for (int k = 0; k < 2 * S * S; k++) lo = fminf(lo, a[k]), hi = fmaxf(hi, a[k]);
    Image *img = canvas_new(5 * (2 * S + 12) + 12, 2 * S + 60, PLOT_WHITE);
    const int b = KSIZE / 2, top = 40, step = 2 * S + 12;
    const float *clean = test + b * RAW + b, *bad = test + RAW * RAW + b * RAW + b;
    static float mask_f[S * S];
    for (int k = 0; k < S * S; k++) mask_f[k] = mask[k];
    draw_image(img, 12, top, clean, RAW, NULL, 0, 1);
    draw_image(img, 12 + step, top, clean, RAW, a, lo, hi);
    draw_image(img, 12 + 2 * step, top, bad, RAW, NULL, 0, 1);
    draw_image(img, 12 + 3 * step, top, bad, RAW, a + S * S, lo, hi);
    draw_image(img, 12 + 4 * step, top, mask_f, S, NULL, 0, 1);
    const char *titles[5] = {"CLEAN", "CLEAN + MAP", "DEFECTIVE", "DEFECTIVE + MAP",
                             "TRUE DEFECTS"};
    for (int k = 0; k < 5; k++)
        plot_text(img, 12 + k * step + (2 * S - plot_text_width(titles[k], 2)) / 2, 16, 2,
                  PLOT_BLACK, titles[k]);
    char caption[160];
    snprintf(caption, sizeof caption, "IMAGE SCORES: CLEAN %.3f, DEFECTIVE %.3f.  PIXEL AUROC %.3f",
             scores[0], scores[1], auroc);
    plot_text(img, 12, top + 2 * S + 8, 1, PLOT_BLACK, caption);

    char path[512];
    int status = 0;
    if (!example_output_path(argc, argv, "anomaly_map_synthetic.png", path, sizeof path) ||
        image_save_png(path, img) != HG_OK)
        status = fail("writing the PNG");
    else
        printf("wrote %s\n", path);
    image_free(img);
    tensor_free(anomaly);
    for (int l = 0; l < LEVELS; l++) {
        tensor_free(evidence[l]), tensor_free(train_maps[l]), tensor_free(test_maps[l]);
    }
    tensor_free(filters);
    prior_free(prior);
    param_set_free(ps);
    return status;
}
