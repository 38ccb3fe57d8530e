/* hgad classify: ImageNet top-k of images with the mobilenet_v2 classifier.
 * hgad backbone-run: a backbone's feature maps of a given NCHW tensor, for
 * auditing against another implementation (e.g. PyTorch). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "datasets/image.h"
#include "models/backbone.h"
#include "nn/resize.h"
#include "nn/safetensors.h"

#define CLASSIFY_SIZE 224 /* spec/backbones.md: bilinear resize to 224 x 224 */
#define MAX_TOP       20

/* ---- classify ---- */

/* Lines of a labels file (line k = class k); NULL entries past its end. */
typedef struct Labels {
    char **lines;
    int64_t count;
} Labels;

static void labels_free(Labels *l) {
    for (int64_t i = 0; i < l->count; i++) free(l->lines[i]);
    free(l->lines);
    l->lines = NULL;
    l->count = 0;
}

static bool labels_load(const char *path, Labels *l) {
    memset(l, 0, sizeof *l);
    FILE *f = fopen(path, "r");
    if (!f) return false;
    char buf[1024];
    int64_t cap = 0;
    while (fgets(buf, sizeof buf, f)) {
        buf[strcspn(buf, "\r\n")] = '\0';
        if (l->count == cap) {
            cap = cap ? 2 * cap : 1024;
            char **grown = realloc(l->lines, sizeof *grown * (size_t)cap);
            if (!grown) break;
            l->lines = grown;
        }
        if (!(l->lines[l->count] = strdup(buf))) break;
        l->count++;
    }
    fclose(f);
    return true;
}

/* The image as the network input [1, 3, 224, 224]: RGB in [0, 1], bilinear
 * resize (align_corners = false), then (x - mean) / std of the backbone. */
static Tensor *classify_input(const char *path, BackboneKind kind) {
    Image *img = image_load(path);
    if (!img) return NULL;
    Tensor *chw = image_to_tensor(img);
    image_free(img);
    Tensor *nchw = chw ? tensor_unsqueeze(chw, 0) : NULL;
    tensor_free(chw);
    Tensor *x = nchw ? resize_bilinear_forward(nchw, CLASSIFY_SIZE, CLASSIFY_SIZE, false) : NULL;
    tensor_free(nchw);
    if (!x) return NULL;
    BackboneNorm norm = backbone_input_norm(kind);
    float *v = tensor_data(x);
    int64_t plane = CLASSIFY_SIZE * CLASSIFY_SIZE;
    for (int c = 0; c < 3; c++)
        for (int64_t i = 0; i < plane; i++)
            v[c * plane + i] = (v[c * plane + i] - norm.mean[c]) / norm.std[c];
    return x;
}

/* Prints the `top` most probable classes (softmax of the logits). */
static void print_top(const char *path, const Tensor *logits, int top, const Labels *labels) {
    int64_t n = logits->shape[1];
    const float *z = tensor_data(logits);
    double max = z[0], sum = 0;
    for (int64_t k = 1; k < n; k++) max = z[k] > max ? z[k] : max;
    for (int64_t k = 0; k < n; k++) sum += exp(z[k] - max);
    int64_t best[MAX_TOP];
    int found = 0;
    for (; found < top && found < n; found++) {
        int64_t arg = -1;
        for (int64_t k = 0; k < n; k++) {
            bool taken = false;
            for (int j = 0; j < found; j++) taken |= best[j] == k;
            if (!taken && (arg < 0 || z[k] > z[arg])) arg = k;
        }
        best[found] = arg;
    }
    printf("%s\n", path);
    for (int j = 0; j < found; j++) {
        int64_t k = best[j];
        printf("  %.4f  %4lld  %s\n", exp(z[k] - max) / sum, (long long)k,
               k < labels->count ? labels->lines[k] : "");
    }
}

int cmd_classify(int argc, char **argv) {
    static const char *const NAME = "classify";
    CliOption options[] = {
        {"backbone", true, "classifier backbone (default mobilenet_v2, the only one with a head)",
         NULL},
        {"weights", true, "backbone weights (safetensors with the state-dict names)", NULL},
        {"labels", true, "class names, line k = class k (e.g. imagenet_labels_1001.txt)", NULL},
        {"top", true, "how many classes to print (default 5)", NULL},
    };
    const int n_options = (int)(sizeof options / sizeof options[0]);
    CliArgs args;
    int early = cli_parse_or_help(
        NAME, argc, argv, options, n_options, "--weights W [--labels L] [--top K] IMAGE...",
        "Classifies each image (PNG, JPEG or BMP): RGB, bilinear resize to 224x224,\n"
        "the backbone's input normalization ([-1, 1] for mobilenet_v2), then prints\n"
        "the top-K softmax probabilities with class index and label.",
        &args);
    if (early >= 0) return early;
    int rc = 1;
    Labels labels = {0};
    Backbone *bb = NULL;
    int64_t top = 5;
    const char *name = cli_get(&args, "backbone"), *weights = cli_get(&args, "weights"),
               *labels_path = cli_get(&args, "labels");
    BackboneKind kind = BACKBONE_MOBILENET_V2;
    if (name && backbone_kind_from_name(name, &kind) != HG_OK) {
        rc = cli_error(NAME, "%s", hg_last_error());
        goto done;
    }
    if (kind != BACKBONE_MOBILENET_V2) {
        rc = cli_error(NAME, "%s has no classifier here (only mobilenet_v2 does)",
                       backbone_kind_name(kind));
        goto done;
    }
    if (!weights || args.n_positional == 0) {
        rc = cli_error(NAME, "--weights and at least one IMAGE are required (see --help)");
        goto done;
    }
    if (!cli_get_int(NAME, &args, "top", 1, MAX_TOP, &top)) goto done;
    if (labels_path && !labels_load(labels_path, &labels)) {
        rc = cli_error(NAME, "cannot read labels file %s", labels_path);
        goto done;
    }
    if (!(bb = backbone_load(kind, weights))) {
        rc = cli_error(NAME, "%s", hg_last_error());
        goto done;
    }
    if (!backbone_has_classifier(bb)) {
        rc = cli_error(NAME, "%s has no classifier weights (features.18, classifier.1)", weights);
        goto done;
    }
    rc = 0;
    for (int i = 0; i < args.n_positional; i++) {
        Tensor *x = classify_input(args.positional[i], kind);
        Tensor *logits = x ? backbone_classify(bb, x) : NULL;
        if (!logits)
            rc = cli_error(NAME, "%s", hg_last_error());
        else
            print_top(args.positional[i], logits, (int)top, &labels);
        tensor_free(x);
        tensor_free(logits);
    }
done:
    backbone_free(bb);
    labels_free(&labels);
    cli_args_free(&args);
    return rc;
}

/* ---- backbone-run ---- */

/* "3" or "1,2,3" into taps[]; returns the count, or -1 on a malformed list. */
static int parse_taps(const char *s, int *taps) {
    int n = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 0 || v >= BACKBONE_MAX_TAPS || n == BACKBONE_MAX_TAPS) return -1;
        taps[n++] = (int)v;
        if (*end == ',')
            end++;
        else if (*end)
            return -1;
        s = end;
    }
    return n;
}

int cmd_backbone_run(int argc, char **argv) {
    static const char *const NAME = "backbone-run";
    CliOption options[] = {
        {"backbone", true, "tf_efficientnet_b6, wide_resnet50_2, resnet18 or mobilenet_v2", NULL},
        {"weights", true, "weights (safetensors with the reference state-dict names)", NULL},
        {"input", true, "safetensors with 'input' [N, 3, H, W], already normalized", NULL},
        {"output", true, "safetensors to write: features.{tap} [N, C, H', W'] per tap", NULL},
        {"taps", true, "comma-separated tap ids (default: the backbone's, e.g. 6,13,17)", NULL},
        {"logits", false, "mobilenet_v2: also write the classifier's 'logits' [N, 1001]", NULL},
    };
    const int n_options = (int)(sizeof options / sizeof options[0]);
    CliArgs args;
    int early = cli_parse_or_help(
        NAME, argc, argv, options, n_options,
        "--backbone NAME --weights W --input IN --output OUT [--taps i,j]",
        "Runs the backbone on the tensor 'input' of IN (no preprocessing) and writes\n"
        "the map of each tap as features.{tap}. Taps: tf_efficientnet_b6 0-3 (3 =\n"
        "stage 4, stride 16), resnets 0-3 (stem, layer1-3), mobilenet_v2 0-18\n"
        "(features.i). The output file is written only when everything succeeded.",
        &args);
    if (early >= 0) return early;
    int rc = 1, taps[BACKBONE_MAX_TAPS], n_taps = 0;
    Backbone *bb = NULL;
    SafetensorsFile *in = NULL;
    SafetensorsWriter *out = NULL;
    Tensor *x = NULL, *maps[BACKBONE_MAX_TAPS] = {NULL}, *logits = NULL;
    const char *name = cli_get(&args, "backbone"), *weights = cli_get(&args, "weights"),
               *in_path = cli_get(&args, "input"), *out_path = cli_get(&args, "output"),
               *tap_list = cli_get(&args, "taps");
    BackboneKind kind;
    if (!cli_check_args(NAME, &args, NULL)) goto done;
    if (!name || !weights || !in_path || !out_path) {
        rc = cli_error(NAME,
                       "--backbone, --weights, --input and --output are required (see --help)");
        goto done;
    }
    if (backbone_kind_from_name(name, &kind) != HG_OK) {
        rc = cli_error(NAME, "%s", hg_last_error());
        goto done;
    }
    n_taps = tap_list ? parse_taps(tap_list, taps) : backbone_default_taps(kind, taps);
    if (n_taps <= 0) {
        rc = cli_error(NAME, "--taps '%s' is not a list of tap ids like 1,2,3", tap_list);
        n_taps = 0;
        goto done;
    }
    for (int i = 0; i < n_taps; i++)
        if (backbone_tap_info(kind, taps[i], NULL) != HG_OK) {
            rc = cli_error(NAME, "%s", hg_last_error());
            goto done;
        }
    if (cli_get(&args, "logits") && kind != BACKBONE_MOBILENET_V2) {
        rc = cli_error(NAME, "--logits: %s has no classifier", name);
        goto done;
    }
    if (!(in = safetensors_open(in_path))) {
        rc = cli_error(NAME, "%s", hg_last_error());
        goto done;
    }
    if (!safetensors_find(in, "input")) {
        rc = cli_error(NAME, "%s has no tensor named 'input'", in_path);
        goto done;
    }
    if (!(x = safetensors_load_tensor(in, "input"))) {
        rc = cli_error(NAME, "%s", hg_last_error());
        goto done;
    }
    if (x->ndim != 4 || x->shape[1] != 3) {
        char sx[96];
        rc = cli_error(NAME, "input has shape %s, expected [N, 3, H, W]",
                       tensor_shape_str(x, sx, sizeof sx));
        goto done;
    }
    if (!(bb = backbone_load(kind, weights)) ||
        backbone_forward(bb, x, n_taps, taps, maps) != HG_OK ||
        (cli_get(&args, "logits") && !(logits = backbone_classify(bb, x)))) {
        rc = cli_error(NAME, "%s", hg_last_error());
        goto done;
    }
    if (!(out = safetensors_writer_new())) {
        rc = cli_error(NAME, "%s", hg_last_error());
        goto done;
    }
    char key[32], tap_text[128] = "";
    for (int i = 0; i < n_taps; i++) {
        snprintf(key, sizeof key, "features.%d", taps[i]);
        size_t used = strlen(tap_text);
        if (used < sizeof tap_text)
            snprintf(tap_text + used, sizeof tap_text - used, i ? ",%d" : "%d", taps[i]);
        bool repeated = false;
        for (int j = 0; j < i; j++) repeated |= taps[j] == taps[i];
        if (repeated) continue;
        if (safetensors_writer_add(out, key, maps[i]) != HG_OK) {
            rc = cli_error(NAME, "%s", hg_last_error());
            goto done;
        }
    }
    if ((logits && safetensors_writer_add(out, "logits", logits) != HG_OK) ||
        safetensors_writer_set_metadata(out, "backbone", name) != HG_OK ||
        safetensors_writer_set_metadata(out, "taps", tap_text) != HG_OK ||
        safetensors_writer_save(out, out_path) != HG_OK) {
        rc = cli_error(NAME, "%s", hg_last_error());
        goto done;
    }
    rc = 0;
done:
    for (int i = 0; i < n_taps; i++) tensor_free(maps[i]);
    tensor_free(logits);
    tensor_free(x);
    safetensors_writer_free(out);
    safetensors_close(in);
    backbone_free(bb);
    cli_args_free(&args);
    return rc;
}
