/* Helpers shared by the hgad sub-commands that work on data sets. */
#ifndef HG_CLI_COMMON_H
#define HG_CLI_COMMON_H

#include "cli/args.h"
#include "datasets/dataset.h"

/* The start of a sub-command: parses argv against `options` (cli_parse) and,
 * on --help, prints "usage: hgad COMMAND USAGE", the summary and the option
 * table. Returns -1 when the command goes on (args filled; the caller frees
 * them), else the exit code to return at once: 0 after --help, 2 after a
 * parse error (already printed). */
int cli_parse_or_help(const char *command, int argc, char **argv, CliOption *options, int n_options,
                      const char *usage, const char *summary, CliArgs *args);

/* The checks every sub-command without positional arguments makes: none was
 * given, and option `required` (NULL: none) is set. Prints the error and
 * returns false when a check fails. */
bool cli_check_args(const char *command, const CliArgs *args, const char *required);

/* Opens the `split` of a data set: format "mvtec", "btad", "mvtec3d", "visa"
 * (one root) or "union" (four roots, comma-separated, in the order MVTec AD,
 * BTAD, MVTec 3D, VisA). categories_csv (may be NULL) lists categories
 * "a,b,c"; without it an MVTec-like root uses the categories found under it.
 * Prints the error and returns NULL on failure. */
DataSet *cli_open_dataset(const char *command, const char *format, const char *root,
                          const char *categories_csv, DataSplit split);

/* Sets the OpenMP thread count from --threads (0 or missing: leave it). */
void cli_set_threads(int64_t threads);

/* Creates `dir` (and parents) if needed; prints the error and returns false on failure. */
bool cli_make_dir(const char *command, const char *dir);

/* Removes a directory tree (best effort; for the command's own temporary
 * directories only). */
void cli_remove_tree(const char *path);

/* Moves every entry of directory `from` into `to` (created if needed),
 * replacing entries of the same name, then removes `from`. */
bool cli_move_contents(const char *command, const char *from, const char *to);

#endif
