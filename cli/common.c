#include "cli/common.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <unistd.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/args.h"

int cli_parse_or_help(const char *command, int argc, char **argv, CliOption *options, int n_options,
                      const char *usage, const char *summary, CliArgs *args) {
    if (!cli_parse(command, argc, argv, options, n_options, args)) return 2;
    if (!args->help) return -1;
    cli_print_help(command, usage, summary, options, n_options);
    cli_args_free(args);
    return 0;
}

bool cli_check_args(const char *command, const CliArgs *args, const char *required) {
    if (args->n_positional)
        return cli_error(command, "unexpected argument '%s'", args->positional[0]), false;
    if (required && !cli_get(args, required))
        return cli_error(command, "--%s is required (see --help)", required), false;
    return true;
}

void cli_set_threads(int64_t threads) {
    if (threads > 0) omp_set_num_threads((int)threads);
}

bool cli_make_dir(const char *command, const char *dir) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return cli_error(command, "path too long: %s", dir), false;
    for (char *p = path + 1;; p++) {
        bool end = *p == '\0';
        if (*p == '/' || end) {
            *p = '\0';
            if (mkdir(path, 0755) != 0 && errno != EEXIST)
                return cli_error(command, "cannot create directory %s: %s", path, strerror(errno)), false;
            if (end) break;
            *p = '/';
        }
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return cli_error(command, "%s is not a directory", dir), false;
    return true;
}

/* Splits "a,b,c" in place into at most `max` names. */
static int split_csv(char *text, char **names, int max) {
    int n = 0;
    for (char *p = text; p && *p && n < max;) {
        char *comma = strchr(p, ',');
        if (comma) *comma = '\0';
        if (*p) names[n++] = p;
        p = comma ? comma + 1 : NULL;
    }
    return n;
}

DataSet *cli_open_dataset(const char *command, const char *format, const char *root,
                          const char *categories_csv, DataSplit split) {
    if (!root) return cli_error(command, "--root is required (the data set directory)"), NULL;
    char roots_text[4096];
    snprintf(roots_text, sizeof roots_text, "%s", root);
    if (format && !strcmp(format, "union")) {
        char *roots[4];
        if (split_csv(roots_text, roots, 4) != 4)
            return cli_error(command, "--dataset union needs --root MVTEC,BTAD,MVTEC3D,VISA"), NULL;
        DataSet *ds = dataset_open_union((const char *const *)roots, split);
        if (!ds) cli_error(command, "%s", hg_last_error());
        return ds;
    }
    DataSetFormat f = DATASET_MVTEC;
    if (format && dataset_format_from_name(format, &f) != HG_OK)
        return cli_error(command, "%s", hg_last_error()), NULL;
    char csv[4096] = "", *names[256];
    int n = 0;
    char **found = NULL;
    if (categories_csv) {
        snprintf(csv, sizeof csv, "%s", categories_csv);
        n = split_csv(csv, names, 256);
        if (n == 0) return cli_error(command, "--categories is empty"), NULL;
    } else if (f != DATASET_VISA) {
        /* an MVTec-like root: the categories found under it (synthetic data sets too) */
        if (dataset_list_categories(root, &found, &n) != HG_OK)
            return cli_error(command, "%s", hg_last_error()), NULL;
        if (n == 0) return cli_error(command, "no category directories with a train/ folder under %s", root), NULL;
    }
    DataSet *ds = dataset_open(f, root, categories_csv ? (const char *const *)names : (const char *const *)found,
                               n, split);
    if (!ds) cli_error(command, "%s", hg_last_error());
    for (int i = 0; found && i < n; i++) free(found[i]);
    free(found);
    return ds;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

void cli_remove_tree(const char *path) {
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

bool cli_move_contents(const char *command, const char *from, const char *to) {
    if (!cli_make_dir(command, to)) return false;
    DIR *dir = opendir(from);
    if (!dir) return cli_error(command, "cannot read %s: %s", from, strerror(errno)), false;
    bool ok = true;
    for (struct dirent *e; ok && (e = readdir(dir));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char src[4096], dst[4096];
        snprintf(src, sizeof src, "%s/%s", from, e->d_name);
        snprintf(dst, sizeof dst, "%s/%s", to, e->d_name);
        struct stat st;
        if (stat(dst, &st) == 0 && S_ISDIR(st.st_mode)) cli_remove_tree(dst);
        if (rename(src, dst) != 0) {
            cli_error(command, "cannot move %s to %s: %s", src, dst, strerror(errno));
            ok = false;
        }
    }
    closedir(dir);
    if (ok) rmdir(from);
    return ok;
}
