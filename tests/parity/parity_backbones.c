/* Parity of the four backbones with PyTorch (opt-in: make parity).
 *
 * tools/fixtures/make_backbone_fixtures.py parity --out DIR writes, per
 * backbone, random weights with non-trivial batch norms under the reference
 * state-dict names (unused parts and num_batches_tracked included), and
 * inputs 2x3x97x97 and 1x3x128x128 with the float64 reference maps
 * "features.{tap}" (and "logits" for mobilenet_v2). Every map must satisfy
 * max |ours - reference| / max |reference| < 1e-4.
 * Usage: parity_backbones DIR   (or HG_PARITY_DIR=DIR). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/testutil.h"

#include "models/backbone.h"
#include "nn/safetensors.h"

#define TOLERANCE 1e-4

static const char *parity_dir = "build/parity";

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static void check_case(Backbone *bb, const char *name, const char *tag, int *failures) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s_%s.safetensors", parity_dir, name, tag);
    SafetensorsFile *f = safetensors_open(path);
    if (!f) fail_msg("%s (run make parity to create the fixtures)", hg_last_error());
    Tensor *x = safetensors_load_tensor(f, "input");
    assert_ok_ptr(x);
    int taps[BACKBONE_MAX_TAPS], n = 0;
    const char *names[BACKBONE_MAX_TAPS];
    for (int i = 0; i < safetensors_count(f); i++) {
        const SafetensorsEntry *e = safetensors_entry(f, i);
        if (!strncmp(e->name, "features.", 9) && n < BACKBONE_MAX_TAPS) {
            names[n] = e->name;
            taps[n++] = atoi(e->name + 9);
        }
    }
    Tensor *out[BACKBONE_MAX_TAPS];
    double t0 = now_ms();
    assert_ok(backbone_forward(bb, x, n, taps, out));
    double ms = now_ms() - t0;
    for (int i = 0; i < n; i++) {
        Tensor *ref = safetensors_load_tensor(f, names[i]);
        assert_ok_ptr(ref);
        double err = test_max_rel_diff(out[i], ref);
        bool ok = tensor_same_shape(out[i], ref) && err < TOLERANCE;
        printf("parity %s input=%s %s err=%.3g forward_ms=%.1f %s\n", name, tag, names[i], err, ms,
               ok ? "ok" : "FAIL");
        *failures += !ok;
        tensor_free(ref);
        tensor_free(out[i]);
    }
    if (safetensors_find(f, "logits")) {
        Tensor *logits = backbone_classify(bb, x), *ref = safetensors_load_tensor(f, "logits");
        assert_ok_ptr(logits);
        double err = test_max_rel_diff(logits, ref);
        bool ok = tensor_same_shape(logits, ref) && err < TOLERANCE;
        printf("parity %s input=%s logits err=%.3g %s\n", name, tag, err, ok ? "ok" : "FAIL");
        *failures += !ok;
        tensor_free(logits);
        tensor_free(ref);
    }
    tensor_free(x);
    safetensors_close(f);
}

static void check_backbone(BackboneKind kind) {
    const char *name = backbone_kind_name(kind);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s_weights.safetensors", parity_dir, name);
    Backbone *bb = backbone_load(kind, path);
    if (!bb) fail_msg("%s", hg_last_error());
    int failures = 0;
    check_case(bb, name, "97", &failures);
    check_case(bb, name, "128", &failures);
    backbone_free(bb);
    if (failures) fail_msg("%s: %d maps above the tolerance %g", name, failures, TOLERANCE);
}

static void test_tf_efficientnet_b6(void **state) {
    check_backbone(BACKBONE_TF_EFFICIENTNET_B6);
}
static void test_wide_resnet50_2(void **state) {
    check_backbone(BACKBONE_WIDE_RESNET50_2);
}
static void test_resnet18(void **state) {
    check_backbone(BACKBONE_RESNET18);
}
static void test_mobilenet_v2(void **state) {
    check_backbone(BACKBONE_MOBILENET_V2);
}

int main(int argc, char **argv) {
    const char *env = getenv("HG_PARITY_DIR");
    if (argc > 1)
        parity_dir = argv[1];
    else if (env && *env)
        parity_dir = env;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tf_efficientnet_b6),
        cmocka_unit_test(test_wide_resnet50_2),
        cmocka_unit_test(test_resnet18),
        cmocka_unit_test(test_mobilenet_v2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
