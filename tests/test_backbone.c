/* Backbones (models/backbone.h): names and shapes of the state dicts against
 * PyTorch's, batch-norm folding against nn/batchnorm, strict loading, tap
 * shapes, encoders, and, with ../shared, the shipped mobilenet_v2 against a
 * float64 PyTorch reference and its top-1 on the three test images.
 * The large random-weight parity checks of all four backbones are in
 * tests/parity_backbones.c (make parity). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/testutil.h"

#include "datasets/image.h"
#include "models/backbone.h"
#include "models/backbone_internal.h"
#include "nn/batchnorm.h"
#include "nn/resize.h"
#include "nn/safetensors.h"
#include "tensor/ops.h"
#include "tensor/rng.h"

/* ---- helpers ---- */

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* Random weights and non-trivial batch norms, by name: conv and linear
 * weights uniform with variance 1/fan_in (a cheap generator: wide_resnet50_2
 * has 25M of them), biases N(0, 0.1), bn weight U(0.5, 1.5), running_mean
 * N(0, 0.1), running_var U(0.5, 1.5). */
static void randomize(ParamSet *ps, uint64_t seed) {
    Rng rng = rng_new(seed);
    uint32_t state = (uint32_t)seed * 2654435761u + 1u;
    for (int64_t i = 0; i < param_set_size(ps); i++) {
        ParamEntry *e = param_set_at(ps, i);
        Tensor *t = e->var->value;
        float *v = tensor_data(t);
        int64_t n = tensor_numel(t);
        if (t->ndim >= 2) {
            float half_width = sqrtf(3.0f * (float)t->shape[0] / (float)n); /* var = 1/fan_in */
            for (int64_t k = 0; k < n; k++) {
                state = state * 1664525u + 1013904223u;
                v[k] = half_width * ((float)(state >> 8) / 8388608.0f - 1.0f);
            }
        } else if (ends_with(e->name, "running_var")) {
            rng_fill_uniform(&rng, v, n, 0.5f, 1.5f);
        } else if (ends_with(e->name, ".weight")) {
            rng_fill_uniform(&rng, v, n, 0.5f, 1.5f);
        } else {
            rng_fill_normal(&rng, v, n, 0.0f, 0.1f);
        }
    }
}

static void temp_path(char *buf, size_t size, const char *tag) {
    snprintf(buf, size, "/tmp/hg_test_backbone_%s_%d.safetensors", tag, (int)getpid());
}

/* Writes the ParamSet to `path` with changes: `skip` (a name prefix, may be
 * NULL) left out, `reshape` (a name, may be NULL) written as [3], and `extra`
 * (may be NULL) added as a [2] float tensor; also adds an int64
 * "bn1.num_batches_tracked"-style entry when `with_int64`. */
static void write_variant(const ParamSet *ps, const char *path, const char *skip,
                          const char *reshape, const char *extra, bool with_int64) {
    SafetensorsWriter *w = safetensors_writer_new();
    Tensor *small = tensor_full(SHAPE(3), 0.5f), *extra_t = tensor_full(SHAPE(2), 1.0f);
    for (int64_t i = 0; i < param_set_size(ps); i++) {
        const ParamEntry *e = param_set_at(ps, i);
        if (skip && param_name_has_prefix(e->name, skip)) continue;
        const Tensor *t = reshape && !strcmp(e->name, reshape) ? small : e->var->value;
        assert_ok(safetensors_writer_add(w, e->name, t));
    }
    if (extra) assert_ok(safetensors_writer_add(w, extra, extra_t));
    if (with_int64) {
        int64_t seven = 7;
        assert_ok(safetensors_writer_add_int64(w, "bn1.num_batches_tracked", 0, NULL, &seven));
    }
    assert_ok(safetensors_writer_save(w, path));
    safetensors_writer_free(w);
    tensor_free(small);
    tensor_free(extra_t);
}

static Tensor *random_input(int64_t n, int64_t h, int64_t w, uint64_t seed) {
    Rng rng = rng_new(seed);
    return tensor_normal(SHAPE(n, 3, h, w), 0.0f, 1.0f, &rng);
}

/* Under valgrind (tests/run.sh sets HG_VALGRIND=1) the forward-heavy tests
 * shrink their inputs: memory checking, not numbers, is the point there. */
static bool under_valgrind(void) {
    const char *vg = getenv("HG_VALGRIND");
    return vg && *vg == '1';
}

static const char *shared_path(char *buf, size_t size, const char *rel) {
    const char *dir = test_shared_dir();
    if (!dir) return NULL;
    snprintf(buf, size, "%s/%s", dir, rel);
    return access(buf, R_OK) == 0 ? buf : NULL;
}

/* ---- names, taps, state dicts ---- */

static void test_kind_names_round_trip(void **state) {
    for (int k = 0; k < BACKBONE_KIND_COUNT; k++) {
        BackboneKind parsed;
        assert_ok(backbone_kind_from_name(backbone_kind_name((BackboneKind)k), &parsed));
        assert_int_equal(parsed, k);
    }
    BackboneKind kind;
    assert_int_equal(backbone_kind_from_name("resnet50", &kind), HG_ERR_ARG);
    assert_non_null(strstr(hg_last_error(), "resnet50"));
    assert_non_null(strstr(hg_last_error(), "tf_efficientnet_b6"));
    BackboneNorm mb = backbone_input_norm(BACKBONE_MOBILENET_V2);
    assert_true(mb.mean[0] == 0.5f && mb.std[2] == 0.5f);
    BackboneNorm in = backbone_input_norm(BACKBONE_TF_EFFICIENTNET_B6);
    assert_true(in.mean[0] == 0.485f && in.std[2] == 0.225f);
}

static void test_tap_table(void **state) {
    BackboneTap t;
    assert_ok(backbone_tap_info(BACKBONE_TF_EFFICIENTNET_B6, 3, &t));
    assert_string_equal(t.module, "blocks.4");
    assert_int_equal(t.stride, 16);
    assert_int_equal(t.channels, 200);
    assert_int_equal(backbone_tap_info(BACKBONE_TF_EFFICIENTNET_B6, 4, &t), HG_ERR_ARG);
    assert_int_equal(backbone_tap_info(BACKBONE_RESNET18, -1, &t), HG_ERR_ARG);
    assert_ok(backbone_tap_info(BACKBONE_WIDE_RESNET50_2, 3, &t));
    assert_true(t.channels == 1024 && t.stride == 16 && !strcmp(t.module, "layer3"));
    assert_ok(backbone_tap_info(BACKBONE_MOBILENET_V2, 13, &t));
    assert_true(t.channels == 96 && t.stride == 16);
    assert_ok(backbone_tap_info(BACKBONE_MOBILENET_V2, 17, &t));
    assert_true(t.channels == 320 && t.stride == 32);
    int64_t oh, ow;
    assert_ok(backbone_tap_size(BACKBONE_TF_EFFICIENTNET_B6, 3, 97, 128, &oh, &ow));
    assert_true(oh == 7 && ow == 8);
    int taps[BACKBONE_MAX_TAPS];
    assert_int_equal(backbone_default_taps(BACKBONE_MOBILENET_V2, taps), 3);
    assert_true(taps[0] == 6 && taps[1] == 13 && taps[2] == 17);
    assert_int_equal(backbone_default_taps(BACKBONE_TF_EFFICIENTNET_B6, taps), 1);
    assert_int_equal(taps[0], 3);
}

/* Entry and element counts of the float state-dict entries the library
 * builds, from PyTorch (make_backbone_fixtures.py counts): torchvision for
 * the resnets (without layer4, fc) and mobilenet_v2(num_classes=1001), the
 * timm 0.6.7 definition for tf_efficientnet_b6 (stem and stages 0-4). */
static void test_state_dicts_match_pytorch(void **state) {
    const struct {
        BackboneKind kind;
        int64_t tensors, elements;
    } expected[] = {{BACKBONE_TF_EFFICIENTNET_B6, 579, 7965988},
                    {BACKBONE_RESNET18, 75, 2787264},
                    {BACKBONE_WIDE_RESNET50_2, 215, 24902080},
                    {BACKBONE_MOBILENET_V2, 262, 3540265}};
    for (int i = 0; i < 4; i++) {
        Backbone *bb = backbone_new(expected[i].kind);
        assert_ok_ptr(bb);
        ParamSet *ps = backbone_params(bb);
        assert_int_equal(param_set_size(ps), expected[i].tensors);
        assert_int_equal(param_set_numel(ps, false), expected[i].elements);
        assert_int_equal(param_set_numel(ps, true), 0); /* frozen */
        backbone_free(bb);
    }
    /* A few names and shapes the spec spells out. */
    Backbone *eff = backbone_new(BACKBONE_TF_EFFICIENTNET_B6);
    const Tensor *t =
        param_set_find(backbone_params(eff), "blocks.0.0.se.conv_reduce.weight")->value;
    assert_true(t->shape[0] == 14 && t->shape[1] == 56);
    t = param_set_find(backbone_params(eff), "blocks.1.0.se.conv_reduce.weight")->value;
    assert_true(t->shape[0] == 8 && t->shape[1] == 192);
    t = param_set_find(backbone_params(eff), "blocks.4.7.conv_pwl.weight")->value;
    assert_true(t->shape[0] == 200 && t->shape[1] == 1200);
    assert_null(param_set_find(backbone_params(eff), "blocks.5.0.conv_pw.weight"));
    backbone_free(eff);
    Backbone *mb = backbone_new(BACKBONE_MOBILENET_V2);
    assert_non_null(param_set_find(backbone_params(mb), "features.1.conv.2.running_var"));
    assert_non_null(param_set_find(backbone_params(mb), "features.17.conv.3.bias"));
    t = param_set_find(backbone_params(mb), "classifier.1.weight")->value;
    assert_true(t->shape[0] == 1001 && t->shape[1] == 1280);
    backbone_free(mb);
}

/* ---- batch-norm folding and the fused units, against nn layers ---- */

/* A standalone unit with random weights and batch norm. */
static void make_unit(ConvBn *u, Tensor **owned, int64_t cout, int64_t cin_g, int64_t k,
                      Conv2dSpec spec, Activation act, Rng *rng) {
    owned[0] = u->weight = tensor_normal(SHAPE(cout, cin_g, k, k), 0.0f, 0.3f, rng);
    owned[1] = u->bn_weight = tensor_uniform(SHAPE(cout), 0.5f, 1.5f, rng);
    owned[2] = u->bn_bias = tensor_normal(SHAPE(cout), 0.0f, 0.2f, rng);
    owned[3] = u->bn_mean = tensor_normal(SHAPE(cout), 0.0f, 0.2f, rng);
    owned[4] = u->bn_var = tensor_uniform(SHAPE(cout), 0.5f, 1.5f, rng);
    u->eps = 1e-3f;
    u->spec = spec;
    u->act = act;
}

/* act(batchnorm(conv(x)) + residual) with nn/conv2d and nn/batchnorm. */
static Tensor *unit_reference(const ConvBn *u, const Tensor *x, const Tensor *residual) {
    Tensor *c = conv2d_forward(x, u->weight, NULL, &u->spec);
    Tensor *b = batchnorm2d_forward(c, u->bn_weight, u->bn_bias, u->bn_mean, u->bn_var, false, 0.1f,
                                    u->eps, NULL, NULL);
    tensor_free(c);
    if (residual) {
        Tensor *s = tensor_add(b, residual);
        tensor_free(b);
        b = s;
    }
    Tensor *out = u->act == ACT_RELU    ? tensor_relu(b)
                  : u->act == ACT_RELU6 ? tensor_relu6(b)
                  : u->act == ACT_SILU  ? tensor_silu(b)
                                        : tensor_clone(b);
    tensor_free(b);
    return out;
}

static void free_unit(Tensor **owned) {
    for (int i = 0; i < 5; i++) tensor_free(owned[i]);
}

static void check_unit(int64_t cout, int64_t cin, int64_t k, Conv2dSpec spec, Activation act,
                       bool with_residual, uint64_t seed) {
    Rng rng = rng_new(seed);
    ConvBn u;
    Tensor *owned[5];
    int64_t groups = spec.groups > 1 ? spec.groups : 1;
    make_unit(&u, owned, cout, cin / groups, k, spec, act, &rng);
    Tensor *x = tensor_normal(SHAPE(2, cin, 13, 10), 0.0f, 1.0f, &rng);
    Tensor *ref0 = unit_reference(&u, x, NULL);
    Tensor *res = with_residual ? tensor_normal(4, ref0->shape, 0.0f, 1.0f, &rng) : NULL;
    Tensor *ref = with_residual ? unit_reference(&u, x, res) : tensor_ref(ref0);
    assert_false(convbn_is_folded(&u));
    convbn_fold(&u);
    assert_true(convbn_is_folded(&u));
    float means[2 * 64];
    Tensor *y = convbn_forward(&u, x, res, NULL, means);
    assert_ok_ptr(y);
    test_assert_close(y, ref, 1e-4, 1e-5);
    /* Plane means as the squeeze-excite and the pooling need them. */
    int64_t hw = y->shape[2] * y->shape[3];
    for (int64_t p = 0; p < 2 * cout; p++) {
        double s = 0;
        for (int64_t i = 0; i < hw; i++) s += tensor_data(ref)[p * hw + i];
        assert_true(fabs(means[p] - s / hw) <= 1e-4 * (1 + fabs(s / hw)));
    }
    /* Folding twice changes nothing. */
    convbn_fold(&u);
    Tensor *y2 = convbn_forward(&u, x, res, NULL, NULL);
    test_assert_close(y2, y, 0, 0);
    tensor_free(y2);
    tensor_free(y);
    tensor_free(ref);
    tensor_free(ref0);
    tensor_free(res);
    tensor_free(x);
    free_unit(owned);
}

static void test_folded_units_match_conv_then_batchnorm(void **state) {
    /* 1x1 (the GEMM path), with SiLU and with a residual. */
    check_unit(24, 16, 1, conv2d_spec(1, 0, 1, 1), ACT_SILU, false, 11);
    check_unit(16, 16, 1, conv2d_spec(1, 0, 1, 1), ACT_IDENTITY, true, 12);
    /* depthwise stride 2 with TF "same" padding (13x10: odd and even sizes). */
    check_unit(32, 32, 5, conv2d_spec_same(2, 1, 32), ACT_SILU, false, 13);
    check_unit(32, 32, 3, conv2d_spec(1, 1, 1, 32), ACT_RELU6, false, 14);
    /* 3x3 with a residual and ReLU (resnet basic block), 1x1 stride 2 (downsample). */
    check_unit(8, 8, 3, conv2d_spec(1, 1, 1, 1), ACT_RELU, true, 15);
    check_unit(12, 8, 1, conv2d_spec(2, 0, 1, 1), ACT_IDENTITY, false, 16);
}

/* The squeeze-excite gate applied through the projection's weights equals the
 * projection of the explicitly gated input (timm: x * sigmoid(...)). */
static void test_squeeze_excite_gate_through_weights(void **state) {
    Rng rng = rng_new(21);
    int64_t c = 24, rd = 6, cout = 16;
    SqueezeExcite se = {tensor_normal(SHAPE(rd, c, 1, 1), 0.0f, 0.5f, &rng),
                        tensor_normal(SHAPE(rd), 0.0f, 0.5f, &rng),
                        tensor_normal(SHAPE(c, rd, 1, 1), 0.0f, 0.5f, &rng),
                        tensor_normal(SHAPE(c), 0.0f, 0.5f, &rng)};
    Tensor *x = tensor_normal(SHAPE(2, c, 7, 9), 0.5f, 1.0f, &rng);
    /* Reference gates with tensor ops: mean, 1x1 convs as conv2d, SiLU, sigmoid. */
    int dims[2] = {2, 3};
    Tensor *m = tensor_mean(x, 2, dims, true);
    Tensor *r = conv2d_forward(m, se.w_reduce, se.b_reduce, &(Conv2dSpec){0});
    Tensor *a = tensor_silu(r);
    Tensor *e = conv2d_forward(a, se.w_expand, se.b_expand, &(Conv2dSpec){0});
    Tensor *g = tensor_sigmoid(e);
    Tensor *gated = tensor_mul(x, g);
    float means[48], gates[48];
    for (int64_t i = 0; i < 48; i++) means[i] = tensor_data(m)[i];
    assert_ok(se_gates(&se, means, 2, gates));
    for (int64_t i = 0; i < 48; i++) assert_true(fabsf(gates[i] - tensor_data(g)[i]) < 1e-6f);
    ConvBn u;
    Tensor *owned[5];
    make_unit(&u, owned, cout, c, 1, conv2d_spec(1, 0, 1, 1), ACT_IDENTITY, &rng);
    Tensor *ref = unit_reference(&u, gated, NULL);
    convbn_fold(&u);
    Tensor *y = convbn_forward(&u, x, NULL, gates, NULL);
    assert_ok_ptr(y);
    test_assert_close(y, ref, 1e-4, 1e-5);
    /* Input scaling is only for 1x1 stride-1 units. */
    ConvBn u3;
    Tensor *owned3[5];
    make_unit(&u3, owned3, c, c, 3, conv2d_spec(1, 1, 1, 1), ACT_IDENTITY, &rng);
    assert_null(convbn_forward(&u3, x, NULL, gates, NULL));
    assert_int_equal(hg_last_status(), HG_ERR_ARG);
    free_unit(owned3);
    Tensor *all[] = {m, r, a,           e,           g,           gated,      ref,
                     y, x, se.w_reduce, se.b_reduce, se.w_expand, se.b_expand};
    for (int i = 0; i < 13; i++) tensor_free(all[i]);
    free_unit(owned);
}

/* ---- loading ---- */

static void test_strict_loading_names_the_tensor(void **state) {
    char path[256];
    temp_path(path, sizeof path, "load");
    Backbone *src = backbone_new(BACKBONE_RESNET18);
    randomize(backbone_params(src), 31);
    Tensor *x = random_input(1, 3, 37, 29);
    Tensor *before = NULL;

    /* Tolerated: int64 entries, layer4 and fc of the reference model. */
    write_variant(backbone_params(src), path, NULL, NULL, "layer4.1.bn2.weight", true);
    Backbone *bb = backbone_load(BACKBONE_RESNET18, path);
    assert_ok_ptr(bb);
    int tap = 3;
    assert_ok(backbone_forward(bb, x, 1, &tap, &before));

    /* Missing, mis-shaped and unknown tensors are errors naming them; the
     * backbone keeps its weights. */
    write_variant(backbone_params(src), path, "layer2.1.bn2.running_var", NULL, NULL, false);
    assert_int_equal(backbone_load_weights(bb, path), HG_ERR_FORMAT);
    assert_non_null(strstr(hg_last_error(), "'layer2.1.bn2.running_var' is missing"));
    write_variant(backbone_params(src), path, NULL, "layer1.0.conv1.weight", NULL, false);
    assert_int_equal(backbone_load_weights(bb, path), HG_ERR_FORMAT);
    assert_non_null(strstr(hg_last_error(), "'layer1.0.conv1.weight'"));
    assert_non_null(strstr(hg_last_error(), "[3]"));
    assert_non_null(strstr(hg_last_error(), "[64,64,3,3]"));
    write_variant(backbone_params(src), path, NULL, NULL, "layer1.0.conv9.weight", false);
    assert_int_equal(backbone_load_weights(bb, path), HG_ERR_FORMAT);
    assert_non_null(strstr(hg_last_error(), "unexpected tensor 'layer1.0.conv9.weight'"));
    assert_null(backbone_load(BACKBONE_MOBILENET_V2, path)); /* another architecture */
    assert_non_null(strstr(hg_last_error(), "is missing"));
    assert_null(backbone_load(BACKBONE_RESNET18, "/nonexistent/w.safetensors"));

    Tensor *after = NULL;
    assert_ok(backbone_forward(bb, x, 1, &tap, &after));
    test_assert_close(after, before, 0, 0);
    tensor_free(after);
    backbone_free(bb);
    backbone_free(src);
    tensor_free(before);
    tensor_free(x);
    unlink(path);
}

/* Folding keeps the ParamSet a state dict of the same function: saving a
 * loaded (folded) backbone and loading it again gives the same maps, and so
 * does a plain strict param_set_load of the unfolded file (folded lazily). */
static void test_folded_state_dict_round_trip(void **state) {
    char path[256], path2[256];
    temp_path(path, sizeof path, "fold1");
    temp_path(path2, sizeof path2, "fold2");
    Backbone *src = backbone_new(BACKBONE_MOBILENET_V2);
    randomize(backbone_params(src), 41);
    assert_ok(param_set_save(backbone_params(src), path, 0, NULL, NULL));
    Tensor *x = random_input(2, 45, 38, 42);
    int taps[2] = {17, 6};

    Backbone *a = backbone_load(BACKBONE_MOBILENET_V2, path);
    assert_ok_ptr(a);
    Tensor *ya[2], *yb[2], *yc[2];
    assert_ok(backbone_forward(a, x, 2, taps, ya));
    assert_ok(param_set_save(backbone_params(a), path2, 0, NULL, NULL));
    Backbone *b = backbone_load(BACKBONE_MOBILENET_V2, path2);
    assert_ok(backbone_forward(b, x, 2, taps, yb));
    Backbone *c = backbone_new(BACKBONE_MOBILENET_V2);
    assert_ok(param_set_load(backbone_params(c), path, true, NULL, NULL));
    assert_ok(backbone_forward(c, x, 2, taps, yc));
    for (int i = 0; i < 2; i++) {
        test_assert_close(yb[i], ya[i], 1e-6, 1e-6);
        test_assert_close(yc[i], ya[i], 0, 0);
        tensor_free(ya[i]);
        tensor_free(yb[i]);
        tensor_free(yc[i]);
    }
    /* The folded form: bn weight 1, running_mean 0. */
    const Tensor *g = param_set_find(backbone_params(a), "features.3.conv.1.1.weight")->value;
    const Tensor *m = param_set_find(backbone_params(a), "features.3.conv.1.1.running_mean")->value;
    for (int64_t i = 0; i < tensor_numel(g); i++)
        assert_true(tensor_data(g)[i] == 1.0f && tensor_data(m)[i] == 0.0f);
    backbone_free(a);
    backbone_free(b);
    backbone_free(c);
    backbone_free(src);
    tensor_free(x);
    unlink(path);
    unlink(path2);
}

static void test_mobilenet_head_is_optional_as_a_whole(void **state) {
    char path[256];
    temp_path(path, sizeof path, "head");
    Backbone *src = backbone_new(BACKBONE_MOBILENET_V2);
    randomize(backbone_params(src), 51);
    Tensor *x = random_input(1, 40, 40, 52);

    write_variant(backbone_params(src), path, "classifier", NULL, NULL, false);
    assert_null(backbone_load(BACKBONE_MOBILENET_V2, path));
    assert_non_null(strstr(hg_last_error(), "classifier.1."));

    write_variant(backbone_params(src), path, "features.18", NULL, NULL, true);
    /* features.18 gone but classifier present: still partial. */
    assert_null(backbone_load(BACKBONE_MOBILENET_V2, path));

    SafetensorsWriter *w = safetensors_writer_new();
    for (int64_t i = 0; i < param_set_size(backbone_params(src)); i++) {
        const ParamEntry *e = param_set_at(backbone_params(src), i);
        if (!param_name_has_prefix(e->name, "features.18") &&
            !param_name_has_prefix(e->name, "classifier"))
            assert_ok(safetensors_writer_add(w, e->name, e->var->value));
    }
    assert_ok(safetensors_writer_save(w, path));
    safetensors_writer_free(w);
    Backbone *bb = backbone_load(BACKBONE_MOBILENET_V2, path);
    assert_ok_ptr(bb);
    assert_false(backbone_has_classifier(bb));
    assert_null(backbone_classify(bb, x));
    int tap = 18, ok_tap = 17;
    Tensor *y = NULL;
    assert_int_equal(backbone_forward(bb, x, 1, &tap, &y), HG_ERR_ARG);
    assert_null(y);
    assert_ok(backbone_forward(bb, x, 1, &ok_tap, &y));
    tensor_free(y);
    backbone_free(bb);
    backbone_free(src);
    tensor_free(x);
    unlink(path);
}

/* ---- forward ---- */

static void test_tap_shapes_and_early_stop(void **state) {
    int64_t h = under_valgrind() ? 17 : 33, w = under_valgrind() ? 14 : 46;
    for (int k = 0; k < BACKBONE_KIND_COUNT; k++) {
        Backbone *bb = backbone_new((BackboneKind)k);
        randomize(backbone_params(bb), 60 + k);
        Tensor *x = random_input(2, h, w, 70 + k);
        int taps[4] = {3, 1, 2, 3}, n = 4;
        if (k == BACKBONE_MOBILENET_V2) taps[0] = 17, taps[1] = 6, taps[2] = 13, taps[3] = 17;
        Tensor *all[4];
        assert_ok(backbone_forward(bb, x, n, taps, all));
        for (int i = 0; i < n; i++) {
            BackboneTap info;
            int64_t oh, ow;
            assert_ok(backbone_tap_info((BackboneKind)k, taps[i], &info));
            assert_ok(backbone_tap_size((BackboneKind)k, taps[i], h, w, &oh, &ow));
            assert_int_equal(all[i]->ndim, 4);
            assert_int_equal(all[i]->shape[0], 2);
            assert_int_equal(all[i]->shape[1], info.channels);
            assert_int_equal(all[i]->shape[2], oh);
            assert_int_equal(all[i]->shape[3], ow);
        }
        /* A shallower request (stopping early) gives the same map. */
        Tensor *one = NULL;
        assert_ok(backbone_forward(bb, x, 1, &taps[1], &one));
        test_assert_close(one, all[1], 0, 0);
        test_assert_close(all[3], all[0], 0, 0);
        tensor_free(one);
        for (int i = 0; i < n; i++) tensor_free(all[i]);
        /* Each image of a batch is computed on its own. */
        Tensor *x1 = tensor_narrow(x, 0, 1, 1), *single = NULL, *batch = NULL;
        assert_ok(backbone_forward(bb, x1, 1, &taps[0], &single));
        assert_ok(backbone_forward(bb, x, 1, &taps[0], &batch));
        Tensor *b1 = tensor_narrow(batch, 0, 1, 1);
        test_assert_close(single, b1, 1e-5, 1e-5);
        tensor_free(b1);
        tensor_free(batch);
        tensor_free(single);
        tensor_free(x1);
        tensor_free(x);
        backbone_free(bb);
    }
}

static void test_forward_rejects_bad_inputs(void **state) {
    Backbone *bb = backbone_new(BACKBONE_RESNET18);
    Tensor *y = (Tensor *)1;
    int tap = 1, bad_tap = 4;
    Tensor *x4 = tensor_zeros(SHAPE(1, 4, 16, 16)), *x3d = tensor_zeros(SHAPE(3, 16, 16));
    Tensor *x = tensor_zeros(SHAPE(1, 3, 16, 16));
    assert_int_equal(backbone_forward(bb, x4, 1, &tap, &y), HG_ERR_SHAPE);
    assert_null(y);
    assert_non_null(strstr(hg_last_error(), "[1,4,16,16]"));
    assert_int_equal(backbone_forward(bb, x3d, 1, &tap, &y), HG_ERR_SHAPE);
    assert_int_equal(backbone_forward(bb, x, 1, &bad_tap, &y), HG_ERR_ARG);
    assert_non_null(strstr(hg_last_error(), "no tap 4"));
    assert_null(backbone_classify(bb, x));
    assert_int_equal(hg_last_status(), HG_ERR_UNSUPPORTED);
    /* Tiny inputs still give 1x1 maps. */
    Tensor *x1 = tensor_zeros(SHAPE(1, 3, 1, 1));
    assert_ok(backbone_forward(bb, x1, 1, &tap, &y));
    assert_true(y->shape[2] == 1 && y->shape[3] == 1);
    tensor_free(y);
    tensor_free(x1);
    tensor_free(x4);
    tensor_free(x3d);
    tensor_free(x);
    backbone_free(bb);
}

static void test_encoders(void **state) {
    Backbone *bb = backbone_new(BACKBONE_TF_EFFICIENTNET_B6);
    randomize(backbone_params(bb), 81);
    Tensor *x = random_input(1, 64, 48, 82);
    EncoderSpec hgad = encoder_spec_hgad(BACKBONE_TF_EFFICIENTNET_B6);
    assert_int_equal(hgad.levels, 3);
    assert_int_equal(hgad.taps[0], 3);
    Tensor *levels[BACKBONE_MAX_LEVELS]; /* room for the 8-level spec below */
    assert_ok(backbone_encode(bb, &hgad, x, levels));
    for (int l = 0; l < 3; l++) {
        int64_t c, oh, ow;
        assert_ok(encoder_level_shape(BACKBONE_TF_EFFICIENTNET_B6, &hgad, 64, 48, l, &c, &oh, &ow));
        assert_true(c == 200 && oh == (64 >> l) / 16 + ((64 >> l) % 16 != 0));
        assert_true(levels[l]->shape[1] == c && levels[l]->shape[2] == oh &&
                    levels[l]->shape[3] == ow);
    }
    /* Level 2 is the backbone on the input resized to 16x12 (align_corners). */
    Tensor *small = resize_bilinear_forward(x, 16, 12, true), *direct = NULL;
    assert_ok(backbone_forward(bb, small, 1, &hgad.taps[0], &direct));
    test_assert_close(levels[2], direct, 0, 0);
    for (int l = 0; l < 3; l++) tensor_free(levels[l]);
    tensor_free(direct);
    tensor_free(small);

    EncoderSpec layers = encoder_spec_multilayer(BACKBONE_TF_EFFICIENTNET_B6);
    layers.levels = 2, layers.taps[0] = 1, layers.taps[1] = 3;
    assert_ok(backbone_encode(bb, &layers, x, levels));
    assert_true(levels[0]->shape[1] == 40 && levels[1]->shape[1] == 200);
    tensor_free(levels[0]);
    tensor_free(levels[1]);

    EncoderSpec too_deep = hgad;
    too_deep.levels = 8;
    assert_int_equal(backbone_encode(bb, &too_deep, x, levels), HG_ERR_SHAPE);
    EncoderSpec bad_tap = hgad;
    bad_tap.taps[0] = 9;
    assert_int_equal(encoder_spec_check(BACKBONE_TF_EFFICIENTNET_B6, &bad_tap, 64, 64), HG_ERR_ARG);
    tensor_free(x);
    backbone_free(bb);
}

/* ---- the shipped mobilenet_v2 (needs ../shared) ---- */

static void test_mobilenet_matches_pytorch(void **state) {
    char wpath[4096];
    if (!shared_path(wpath, sizeof wpath, "weights/mobilenet_v2_tf_1001.safetensors")) skip();
    Backbone *bb = backbone_load(BACKBONE_MOBILENET_V2, wpath);
    assert_ok_ptr(bb);
    SafetensorsFile *f = safetensors_open(test_fixture("backbone_mobilenet_v2.safetensors"));
    assert_ok_ptr(f);
    Tensor *x = safetensors_load_tensor(f, "input");
    int taps[3] = {6, 13, 17};
    const char *names[3] = {"features.6", "features.13", "features.17"};
    Tensor *out[3];
    assert_ok(backbone_forward(bb, x, 3, taps, out));
    for (int i = 0; i < 3; i++) {
        Tensor *ref = safetensors_load_tensor(f, names[i]);
        double err = test_max_rel_diff(out[i], ref);
        if (!(err < 1e-4)) fail_msg("%s: max error / max value %.3g", names[i], err);
        tensor_free(ref);
        tensor_free(out[i]);
    }
    Tensor *logits = backbone_classify(bb, x), *ref = safetensors_load_tensor(f, "logits");
    assert_ok_ptr(logits);
    double err = test_max_rel_diff(logits, ref);
    if (!(err < 1e-4)) fail_msg("logits: max error / max value %.3g", err);
    tensor_free(logits);
    tensor_free(ref);
    tensor_free(x);
    safetensors_close(f);
    backbone_free(bb);
}

/* Line `index` (0-based) of the labels file, without the newline. */
static void label_line(const char *path, int64_t index, char *buf, size_t size) {
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    buf[0] = '\0';
    for (int64_t i = 0; i <= index && fgets(buf, (int)size, f); i++) {
    }
    fclose(f);
    buf[strcspn(buf, "\r\n")] = '\0';
}

static void test_mobilenet_top1_on_test_images(void **state) {
    char wpath[4096], lpath[4096], ipath[4096], label[256];
    if (!shared_path(wpath, sizeof wpath, "weights/mobilenet_v2_tf_1001.safetensors") ||
        !shared_path(lpath, sizeof lpath, "weights/testimages/imagenet_labels_1001.txt"))
        skip();
    Backbone *bb = backbone_load(BACKBONE_MOBILENET_V2, wpath);
    assert_ok_ptr(bb);
    const char *images[3] = {"cat.png", "bird.png", "grace_hopper.png"};
    const char *expected[3] = {"Egyptian cat", "chickadee", "military uniform"};
    for (int i = 0; i < (under_valgrind() ? 1 : 3); i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "weights/testimages/%s", images[i]);
        assert_non_null(shared_path(ipath, sizeof ipath, rel));
        Image *img = image_load(ipath);
        assert_ok_ptr(img);
        Tensor *chw = image_to_tensor(img), *nchw = tensor_unsqueeze(chw, 0);
        Tensor *resized = resize_bilinear_forward(nchw, 224, 224, false);
        Tensor *x = tensor_add_scalar(resized, -0.5f), *xs = tensor_scale(x, 2.0f);
        Tensor *logits = backbone_classify(bb, xs);
        assert_ok_ptr(logits);
        int64_t best = 0;
        for (int64_t k = 1; k < BACKBONE_MOBILENET_CLASSES; k++)
            if (tensor_data(logits)[k] > tensor_data(logits)[best]) best = k;
        label_line(lpath, best, label, sizeof label);
        if (strcmp(label, expected[i]))
            fail_msg("%s: top-1 '%s' (class %lld), expected '%s'", images[i], label,
                     (long long)best, expected[i]);
        Tensor *all[] = {chw, nchw, resized, x, xs, logits};
        for (int j = 0; j < 6; j++) tensor_free(all[j]);
        image_free(img);
    }
    backbone_free(bb);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kind_names_round_trip),
        cmocka_unit_test(test_tap_table),
        cmocka_unit_test(test_state_dicts_match_pytorch),
        cmocka_unit_test(test_folded_units_match_conv_then_batchnorm),
        cmocka_unit_test(test_squeeze_excite_gate_through_weights),
        cmocka_unit_test(test_strict_loading_names_the_tensor),
        cmocka_unit_test(test_folded_state_dict_round_trip),
        cmocka_unit_test(test_mobilenet_head_is_optional_as_a_whole),
        cmocka_unit_test(test_tap_shapes_and_early_stop),
        cmocka_unit_test(test_forward_rejects_bad_inputs),
        cmocka_unit_test(test_encoders),
        cmocka_unit_test(test_mobilenet_matches_pytorch),
        cmocka_unit_test(test_mobilenet_top1_on_test_images),
    };
    /* the portable kernels are checked by test_conv2d on small sizes: at
     * backbone sizes they would take most of the suite's time */
    return test_run_at_cpu_levels(tests, HG_CPU_AVX2);
}
