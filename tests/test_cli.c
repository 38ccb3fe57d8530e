/* The hgad command end to end on a tiny synthetic data set, and its handling
 * of bad input: one clear line on stderr, a non-zero exit, no partial output. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/testutil.h"

static const char *dir; /* the scratch directory */
static char out[16384];

/* Runs "hgad ARGS", capturing stdout+stderr into out; returns the exit code. */
#define hgad(...) test_run_hgad(out, sizeof out, __VA_ARGS__)

#define assert_error(rc, needle) test_assert_cli_error(out, rc, needle)

static const char *TRAIN = "train --img-size 64 --levels 2 --epochs 3 --sub-epochs 1 --batch 2 "
                           "--coupling-blocks 1 --cond-dim 8 --intra-centers 2 --quiet";

static int setup(void **state) {
    dir = test_temp_dir();
    return test_temp_dir_with_synthetic_data("hgad_cli");
}

static int teardown(void **state) {
    return test_temp_dir_remove();
}

static void test_help_on_every_command(void **state) {
    const char *commands[] = {"train",        "eval",     "predict",      "synth", "flow-run",
                              "weights-info", "classify", "backbone-run", "audit", "zoo"};
    for (int i = 0; i < 10; i++) {
        if (hgad("%s --help", commands[i]) != 0) fail_msg("%s --help: %s", commands[i], out);
        assert_non_null(strstr(out, "usage: hgad"));
    }
    assert_int_equal(hgad("--help"), 0);
    assert_int_not_equal(hgad("no-such-command"), 0);
    assert_non_null(strstr(out, "unknown command"));
}

/* The shared parser's errors (cli_parse_or_help, cli_check_args): an unknown
 * option exits 2, a stray argument and a missing required option exit 1, each
 * with one line naming the culprit. weights-info parses by hand: exit 1. */
static void test_option_errors_on_every_command(void **state) {
    const char *parsed[] = {"train",    "eval",         "predict", "synth",
                            "flow-run", "backbone-run", "audit",   "zoo"};
    for (int i = 0; i < 8; i++) {
        int rc = hgad("%s --bogus", parsed[i]);
        assert_error(rc, "unknown option --bogus");
        if (rc != 2) fail_msg("%s --bogus: exit %d, expected 2", parsed[i], rc);
    }
    assert_int_equal(hgad("classify --bogus=1"), 2);
    assert_error(2, "unknown option --bogus");
    assert_int_equal(hgad("weights-info --bogus"), 1);
    assert_error(1, "unknown option '--bogus'");
    const char *no_positional[] = {"train",        "eval",  "synth", "flow-run",
                                   "backbone-run", "audit", "zoo"};
    for (int i = 0; i < 7; i++) {
        int rc = hgad("%s stray", no_positional[i]);
        assert_error(rc, "unexpected argument 'stray'");
        if (rc != 1) fail_msg("%s stray: exit %d, expected 1", no_positional[i], rc);
    }
    assert_int_equal(hgad("zoo"), 1);
    assert_error(1, "--root is required");
    assert_int_equal(hgad("flow-run --checkpoint c"), 1);
    assert_error(1, "--checkpoint, --input and --output are required");
    assert_int_equal(hgad("predict a.png"), 1);
    assert_error(1, "--checkpoint is required");
    assert_int_equal(hgad("predict --checkpoint c"), 1);
    assert_error(1, "no images given");
    assert_int_equal(hgad("weights-info"), 1);
    assert_error(1, "missing FILE argument");
}

static void test_train_eval_predict(void **state) {
    if (hgad("%s --root %s/data --output %s/run", TRAIN, dir, dir) != 0) fail_msg("train: %s", out);
    assert_true(test_temp_exists("run/model.safetensors"));
    assert_true(test_temp_exists("run/checkpoint.safetensors"));
    assert_true(test_temp_exists("run/features.cache"));
    if (hgad("eval --checkpoint %s/run/model.safetensors --output %s/eval --heatmaps 2 --quiet",
             dir, dir) != 0)
        fail_msg("eval: %s", out);
    assert_non_null(strstr(out, "| Weave |"));
    const char *files[] = {"results.md", "results.json", "roc.png", "heatmaps/disc"};
    for (int i = 0; i < 4; i++)
        if (!test_temp_exists("eval/%s", files[i])) fail_msg("eval did not write %s", files[i]);
    if (hgad("eval --checkpoint %s/run/model.safetensors --output %s/eval2 --mode deployable "
             "--heatmaps 0 --quiet",
             dir, dir) != 0)
        fail_msg("eval deployable: %s", out);
    if (hgad("predict --checkpoint %s/run/model.safetensors --class disc --output %s/pred "
             "%s/data/disc/test/good",
             dir, dir, dir) != 0)
        fail_msg("predict: %s", out);
    assert_non_null(strstr(out, "disc/test/good/000.png "));
    assert_true(test_temp_exists("pred/good_000_heatmap.png"));
    /* resuming the last checkpoint continues (here: nothing left to do) */
    if (hgad("%s --root %s/data --output %s/run --resume %s/run/checkpoint.safetensors", TRAIN, dir,
             dir, dir) != 0)
        fail_msg("resume: %s", out);
}

static void test_bad_roots_and_options(void **state) {
    assert_error(hgad("%s --root %s/nowhere --output %s/o1", TRAIN, dir, dir), "nowhere");
    assert_false(test_temp_exists("o1"));
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p %s/empty", dir);
    assert_int_equal(system(cmd), 0);
    assert_error(hgad("%s --root %s/empty --output %s/o2", TRAIN, dir, dir), "empty");
    assert_false(test_temp_exists("o2"));
    /* a category whose train/good holds no images */
    snprintf(cmd, sizeof cmd, "mkdir -p %s/noimg/cat/train/good %s/noimg/cat/test/good", dir, dir);
    assert_int_equal(system(cmd), 0);
    assert_error(hgad("%s --root %s/noimg --output %s/o3", TRAIN, dir, dir), "cat");
    assert_false(test_temp_exists("o3"));
    assert_int_equal(hgad("%s --root %s/data --bogus 3", TRAIN, dir), 2);
    assert_non_null(strstr(out, "unknown option --bogus"));
    /* 100 px does not tile into stride-8 cells at 2 levels */
    assert_error(hgad("train --root %s/data --img-size 100 --levels 2 --output %s/o4", dir, dir),
                 "img-size");
    assert_false(test_temp_exists("o4"));
    assert_error(hgad("%s --root %s/data --epochs zero", TRAIN, dir), "--epochs");
    assert_error(hgad("%s --root %s/data --backbone resnet18", TRAIN, dir), "weights");
    assert_error(hgad("%s --root %s/data --config %s/missing.cfg", TRAIN, dir, dir), "missing.cfg");
}

static void test_unreadable_image_leaves_nothing(void **state) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd,
             "cp -r %s/data %s/corrupt && printf 'not a png' > %s/corrupt/disc/train/good/001.png",
             dir, dir, dir);
    assert_int_equal(system(cmd), 0);
    assert_error(hgad("%s --root %s/corrupt --output %s/o5", TRAIN, dir, dir), "001.png");
    assert_false(test_temp_exists("o5"));
}

static void test_bad_masks_and_checkpoints(void **state) {
    char cmd[1600];
    /* a missing mask */
    snprintf(cmd, sizeof cmd,
             "cp -r %s/data %s/nomask && rm %s/nomask/disc/ground_truth/*/000_mask.png", dir, dir,
             dir);
    assert_int_equal(system(cmd), 0);
    assert_error(hgad("eval --checkpoint %s/run/model.safetensors --root %s/nomask --output %s/o6",
                      dir, dir, dir),
                 "000_mask.png");
    assert_false(test_temp_exists("o6"));
    /* a mask of another size than its image */
    snprintf(cmd, sizeof cmd,
             "cp -r %s/data %s/badmask && for m in %s/badmask/disc/ground_truth/*/000_mask.png; do "
             "cp %s/data/disc/ground_truth/$(basename $(dirname $m))/000_mask.png $m.tmp; done",
             dir, dir, dir, dir);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd,
             "%s/hgad synth --output %s/small --categories disc --size 32 --train 1 --test-good 0 "
             "--test-defective 3 --seed 3 >/dev/null && for m in "
             "%s/badmask/disc/ground_truth/*/000_mask.png; do "
             "cp %s/small/disc/ground_truth/$(basename $(dirname $m))/000_mask.png $m; done",
             test_build_dir(), dir, dir, dir);
    assert_int_equal(system(cmd), 0);
    assert_error(
        hgad("eval --checkpoint %s/run/model.safetensors --root %s/badmask --output %s/o7 --quiet",
             dir, dir, dir),
        "000_mask.png");
    assert_false(test_temp_exists("o7"));
    /* a category the checkpoint was not trained on */
    snprintf(cmd, sizeof cmd,
             "%s/hgad synth --output %s/other --categories granite --size 32 --train 1 "
             "--test-good 1 --test-defective 1 >/dev/null",
             test_build_dir(), dir);
    assert_int_equal(system(cmd), 0);
    assert_error(hgad("eval --checkpoint %s/run/model.safetensors --root %s/other --categories "
                      "granite --output %s/o8",
                      dir, dir, dir),
                 "not trained on category");
    assert_false(test_temp_exists("o8"));
    /* resuming with other categories than the checkpoint's */
    assert_error(hgad("%s --root %s/data --categories disc --output %s/o9 --resume "
                      "%s/run/checkpoint.safetensors",
                      TRAIN, dir, dir, dir),
                 "other categories");
    /* not a checkpoint at all */
    assert_error(
        hgad("eval --checkpoint %s/data/disc/train/good/000.png --output %s/o10", dir, dir),
        "000.png");
    assert_error(
        hgad("predict --checkpoint %s/run/model.safetensors %s/data/disc/test/good/000.png", dir,
             dir),
        "--class");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_on_every_command),
        cmocka_unit_test(test_option_errors_on_every_command),
        cmocka_unit_test(test_train_eval_predict),
        cmocka_unit_test(test_bad_roots_and_options),
        cmocka_unit_test(test_unreadable_image_leaves_nothing),
        cmocka_unit_test(test_bad_masks_and_checkpoints),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
