/* hgad synth: writes a synthetic MVTec-layout data set with exact defect masks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "datasets/synthetic.h"

static const char *const NAME = "synth";

int cmd_synth(int argc, char **argv) {
    CliOption options[] = {
        {"output", true, "directory to write (created; default synthetic-data)", NULL},
        {"categories", true, "comma-separated subset of the synthetic categories (default: all)", NULL},
        {"size", true, "image size in pixels (default 128)", NULL},
        {"train", true, "defect-free training images per category (default 40)", NULL},
        {"test-good", true, "defect-free test images per category (default 10)", NULL},
        {"test-defective", true, "defective test images per category (default 10)", NULL},
        {"seed", true, "random seed (default 0); the same seed writes the same files", NULL},
        {"list", false, "list the categories and their defect types", NULL},
    };
    const int n_options = (int)(sizeof options / sizeof options[0]);
    CliArgs args;
    int early = cli_parse_or_help(
        NAME, argc, argv, options, n_options, "[--output DIR] [options]",
        "Writes textures and objects with scratches, spots, cracks, holes, stains and\n"
        "missing parts in the MVTec AD layout (train/good, test/<defect>,\n"
        "ground_truth/<defect>/*_mask.png), deterministically from the seed.",
        &args);
    if (early >= 0) return early;
    int rc = 1;
    const char *const *all;
    int n_all = synthetic_category_names(&all);
    if (cli_get(&args, "list")) {
        for (int c = 0; c < n_all; c++) {
            const char *const *defects;
            int n = synthetic_defect_names(c, &defects);
            printf("%s:", all[c]);
            for (int k = 0; k < n; k++) printf(" %s", defects[k]);
            printf("\n");
        }
        cli_args_free(&args);
        return 0;
    }
    SyntheticConfig config = synthetic_default_config();
    int64_t size = config.image_size, train = config.n_train_good, good = config.n_test_good,
            bad = config.n_test_defective, seed = 0;
    if (!cli_get_int(NAME, &args, "size", 32, 4096, &size) ||
        !cli_get_int(NAME, &args, "train", 1, 100000, &train) ||
        !cli_get_int(NAME, &args, "test-good", 0, 100000, &good) ||
        !cli_get_int(NAME, &args, "test-defective", 0, 100000, &bad) ||
        !cli_get_int(NAME, &args, "seed", 0, INT64_MAX, &seed))
        goto done;
    if (!cli_check_args(NAME, &args, NULL)) goto done;
    char csv[4096] = "";
    const char *names[64];
    int n = 0;
    if (cli_get(&args, "categories")) {
        snprintf(csv, sizeof csv, "%s", cli_get(&args, "categories"));
        for (char *p = strtok(csv, ","); p && n < 64; p = strtok(NULL, ",")) names[n++] = p;
        config.categories = names;
        config.n_categories = n;
    }
    config.image_size = (int)size;
    config.n_train_good = (int)train;
    config.n_test_good = (int)good;
    config.n_test_defective = (int)bad;
    config.seed = (uint64_t)seed;
    const char *output = cli_get(&args, "output") ? cli_get(&args, "output") : "synthetic-data";
    if (synthetic_write(output, &config) != HG_OK) {
        rc = cli_error(NAME, "%s", hg_last_error());
        goto done;
    }
    printf("wrote %s\n", output);
    rc = 0;
done:
    cli_args_free(&args);
    return rc;
}
