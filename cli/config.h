/* Config files for the hgad commands: "key = value" lines ('#' starts a
 * comment), where each key is the name of a command-line option (without
 * "--"; flags take true/false/1/0). Values given on the command line win. */
#ifndef HG_CLI_CONFIG_H
#define HG_CLI_CONFIG_H

#include "cli/args.h"

/* Fills options not set on the command line from `path`; an unknown key or a
 * malformed line is an error naming the file and line. The strings live in
 * `storage` (freed with cli_config_free). */
bool cli_config_apply(const char *command, const char *path, CliOption *options, int n_options,
                      char **storage);
void cli_config_free(char *storage);

#endif
