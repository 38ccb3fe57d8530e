/* Minimal option parsing shared by the sub-commands: "--name value",
 * "--name=value" and boolean "--flag"; anything not starting with "--" is a
 * positional argument. Unknown options are errors. */
#ifndef HG_CLI_ARGS_H
#define HG_CLI_ARGS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct CliOption {
    const char *name;  /* without the leading "--" */
    bool takes_value;  /* false: a flag */
    const char *help;  /* one line for --help */
    const char *value; /* filled by cli_parse: the value, "1" for a set flag, or NULL */
} CliOption;

typedef struct CliArgs {
    CliOption *options;
    int n_options;
    const char **positional;
    int n_positional;
    bool help; /* --help or -h was given */
} CliArgs;

/* Parses argv[1..argc) (argv[0] is the command's name). On error prints
 * "hgad COMMAND: message" to stderr and returns false. */
bool cli_parse(const char *command, int argc, char **argv, CliOption *options, int n_options,
               CliArgs *args);
void cli_args_free(CliArgs *args);
/* Prints "usage: hgad COMMAND USAGE" and the option table to stdout. */
void cli_print_help(const char *command, const char *usage, const char *summary,
                    const CliOption *options, int n_options);
/* The value of option `name` or NULL. */
const char *cli_get(const CliArgs *args, const char *name);
/* Integer / float values with range checks; print an error and return false on
 * a malformed or out-of-range value. A missing option leaves *out unchanged. */
bool cli_get_int(const char *command, const CliArgs *args, const char *name, int64_t low,
                 int64_t high, int64_t *out);
bool cli_get_double(const char *command, const CliArgs *args, const char *name, double low,
                    double high, double *out);
/* Prints "hgad COMMAND: message" to stderr; returns 1 (the exit code). */
int cli_error(const char *command, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
