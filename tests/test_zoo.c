/* "hgad zoo" end to end with the shipped configs/zoo files on a tiny synthetic
 * data set (every size overridden to a toy preset), and its bad input. Run
 * from the repository root (configs/zoo is a relative path), as make test does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/testutil.h"

static const char *dir; /* the scratch directory */
static char out[65536];

/* Runs "hgad ARGS", capturing stdout+stderr into out; returns the exit code. */
#define hgad(...) test_run_hgad(out, sizeof out, __VA_ARGS__)

static const char *TOY =
    "--backbone builtin --img-size 64 --msk-size 64 --levels 2 --epochs 3 --sub-epochs 1 "
    "--batch 2 --coupling-blocks 1 --cond-dim 8 --quiet";

/* The text of a file in the scratch directory (one of 8 rotating static buffers), or NULL. */
static char *read_file(const char *name) {
    FILE *f = fopen(test_temp_path("%s", name), "rb");
    if (!f) return NULL;
    static char buf[8][65536];
    static int slot;
    slot = (slot + 1) % 8;
    size_t n = fread(buf[slot], 1, sizeof buf[slot] - 1, f);
    buf[slot][n] = '\0';
    fclose(f);
    return buf[slot];
}

/* The metric cells of the table row "| NAME | a | b | c | s |": "a | b | c". */
static void row_metrics(const char *doc, const char *name, char *metrics, size_t size) {
    char head[96];
    snprintf(head, sizeof head, "\n| %s |", name);
    const char *row = strstr(doc, head);
    if (!row) fail_msg("no row for %s in:\n%s", name, doc);
    row += strlen(head);
    const char *end = row;
    for (int bars = 0; bars < 3 && *end && *end != '\n'; end++) bars += *end == '|';
    snprintf(metrics, size, "%.*s", (int)(end - row), row);
}

static int setup(void **state) {
    if (access("configs/zoo/hgad.cfg", R_OK) != 0) {
        fprintf(stderr, "run from the repository root (configs/zoo/hgad.cfg not found)\n");
        return -1;
    }
    dir = test_temp_dir();
    return test_temp_dir_with_synthetic_data("hgad_zoo");
}

static int teardown(void **state) {
    return test_temp_dir_remove();
}

static void test_zoo_table(void **state) {
    if (hgad("zoo --root %s/data %s --output %s/zoo", dir, TOY, dir) != 0) fail_msg("zoo: %s", out);
    const char *doc = read_file("zoo/zoo.md");
    assert_non_null(doc);
    /* every shipped entry, in the table's order */
    const char *order[] = {"hgad",     "cflow_ad", "single_gaussian", "inter_class",
                           "no_intra", "no_mi",    "no_entropy"};
    const char *previous = doc;
    for (int i = 0; i < 7; i++) {
        char head[64];
        snprintf(head, sizeof head, "\n| %s |", order[i]);
        const char *at = strstr(doc, head);
        if (!at || at < previous) fail_msg("row %s missing or out of order:\n%s", order[i], doc);
        previous = at;
    }
    assert_null(strstr(doc, "failed"));
    assert_non_null(strstr(doc, "| Entry | Image AUROC | Pixel AUROC | AUPRO | Train s |"));
    assert_non_null(strstr(doc, "Command: `hgad zoo --root"));
    assert_non_null(strstr(doc, "load average"));
    /* CFLOW-AD: one model per category, the multilayer encoder replaced for the built-in one */
    assert_true(test_temp_exists("zoo/cflow_ad/weave/model.safetensors"));
    assert_true(test_temp_exists("zoo/cflow_ad/disc/model.safetensors"));
    assert_false(test_temp_exists("zoo/cflow_ad/model.safetensors"));
    assert_non_null(strstr(doc, "Trained per category: 2 models."));
    assert_non_null(strstr(doc, "ran as multiscale"));
    /* its config reached the model: Gaussian prior, Adam (0.9, 0.999), no weight decay, the
     * override */
    assert_int_equal(hgad("weights-info %s/zoo/cflow_ad/disc/model.safetensors", dir), 0);
    assert_non_null(strstr(out, "hgad.prior = gaussian"));
    assert_non_null(strstr(out, "hgad.beta2 = 0.999"));
    assert_non_null(strstr(out, "hgad.flow_weight_decay = 0\n"));
    assert_non_null(strstr(out, "hgad.cond_dim = 8\n"));
    assert_non_null(strstr(out, "class_names = disc\n"));
    assert_int_equal(hgad("weights-info %s/zoo/no_mi/model.safetensors", dir), 0);
    assert_non_null(strstr(out, "hgad.use_mi = 0"));
    assert_non_null(strstr(out, "hgad.use_entropy = 1"));
    /* inter-class only and intra-centers = 1 are the same model (configs/zoo/no_intra.cfg) */
    char a[128], b[128];
    row_metrics(doc, "inter_class", a, sizeof a);
    row_metrics(doc, "no_intra", b, sizeof b);
    assert_string_equal(a, b);
    /* the zoo scores as 'hgad eval' does: the same per-category table */
    assert_int_equal(
        hgad(
            "eval --checkpoint %s/zoo/hgad/model.safetensors --output %s/eval --heatmaps 0 --quiet",
            dir, dir),
        0);
    const char *eval_md = read_file("eval/results.md"), *zoo_md = read_file("zoo/hgad/results.md");
    assert_non_null(eval_md);
    assert_non_null(zoo_md);
    assert_string_equal(eval_md, zoo_md);
    row_metrics(doc, "hgad", a, sizeof a);
    row_metrics(eval_md, "Mean", b, sizeof b);
    assert_string_equal(a, b);
}

static void test_entries_and_config_dir(void **state) {
    /* a config directory of one's own, and --entries choosing from it */
    mkdir(test_temp_path("configs"), 0700);
    FILE *f = fopen(test_temp_path("configs/tiny.cfg"), "w");
    assert_non_null(f);
    fputs("# A tiny model of my own.\nprior = inter-class\nintra-centers = 3\n", f);
    fclose(f);
    if (hgad("zoo --root %s/data --categories disc %s --config-dir %s/configs --output %s/own", dir,
             TOY, dir, dir) != 0)
        fail_msg("zoo: %s", out);
    const char *doc = read_file("own/zoo.md");
    assert_non_null(doc);
    assert_non_null(strstr(doc, "| tiny |"));
    assert_non_null(strstr(doc, "A tiny model of my own."));
    assert_non_null(strstr(doc, "1 category (disc)"));
    if (hgad("zoo --root %s/data --categories disc %s --entries no_mi,hgad --output %s/two", dir,
             TOY, dir) != 0)
        fail_msg("zoo: %s", out);
    doc = read_file("two/zoo.md");
    assert_non_null(doc);
    assert_true(strstr(doc, "| no_mi |") < strstr(doc, "| hgad |")); /* --entries keeps its order */
    assert_null(strstr(doc, "| cflow_ad |"));
}

#define assert_error(rc, needle) test_assert_cli_error(out, rc, needle)

static void test_bad_input(void **state) {
    assert_int_equal(hgad("zoo --help"), 0);
    assert_non_null(strstr(out, "usage: hgad zoo"));
    assert_int_equal(hgad("audit --help"), 0);
    assert_non_null(strstr(out, "usage: hgad audit"));
    assert_int_equal(hgad("--help"), 0);
    assert_non_null(strstr(out, "  zoo "));
    assert_non_null(strstr(out, "  audit "));
    assert_error(hgad("audit"), "--checkpoint is required");
    assert_error(hgad("audit --checkpoint %s/none.safetensors", dir), "none.safetensors");
    assert_error(hgad("zoo --entries hgad"), "--root is required");
    assert_error(hgad("zoo --root %s/data --entries hgad,nope --output %s/bad", dir, dir), "nope");
    assert_false(test_temp_exists("bad"));
    assert_error(hgad("zoo --root %s/data --entries ../hgad --output %s/bad", dir, dir),
                 "not an entry name");
    assert_error(hgad("zoo --root %s/data --mode fast", dir), "--mode fast");
    /* CFLOW-AD's config trains one model per category: train refuses two */
    assert_error(
        hgad("train --config configs/zoo/cflow_ad.cfg --root %s/data %s --encoder multiscale "
             "--output %s/cflow",
             dir, TOY, dir),
        "per-category");
    assert_error(hgad("train --root %s/data %s --adam-betas 0.9 --output %s/betas", dir, TOY, dir),
                 "--adam-betas");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zoo_table),
        cmocka_unit_test(test_entries_and_config_dir),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
