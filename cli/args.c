#include "cli/args.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_error(const char *command, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "hgad %s: ", command);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

static CliOption *find_option(CliOption *options, int n, const char *name, size_t len) {
    for (int i = 0; i < n; i++)
        if (strlen(options[i].name) == len && !strncmp(options[i].name, name, len)) return &options[i];
    return NULL;
}

bool cli_parse(const char *command, int argc, char **argv, CliOption *options, int n_options,
               CliArgs *args) {
    memset(args, 0, sizeof *args);
    args->options = options;
    args->n_options = n_options;
    args->positional = calloc((size_t)(argc > 0 ? argc : 1), sizeof(char *));
    if (!args->positional) return cli_error(command, "out of memory"), false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            args->help = true;
            continue;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            args->positional[args->n_positional++] = a;
            continue;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        CliOption *o = find_option(options, n_options, name, len);
        if (!o) {
            cli_error(command, "unknown option --%.*s (see hgad %s --help)", (int)len, name, command);
            cli_args_free(args);
            return false;
        }
        if (!o->takes_value) {
            if (eq) {
                cli_error(command, "option --%s takes no value", o->name);
                cli_args_free(args);
                return false;
            }
            o->value = "1";
        } else if (eq) {
            o->value = eq + 1;
        } else if (i + 1 < argc) {
            o->value = argv[++i];
        } else {
            cli_error(command, "option --%s needs a value", o->name);
            cli_args_free(args);
            return false;
        }
    }
    return true;
}

void cli_args_free(CliArgs *args) {
    free(args->positional);
    args->positional = NULL;
    args->n_positional = 0;
}

void cli_print_help(const char *command, const char *usage, const char *summary,
                    const CliOption *options, int n_options) {
    printf("usage: hgad %s %s\n\n%s\n\noptions:\n", command, usage, summary);
    for (int i = 0; i < n_options; i++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s", options[i].name, options[i].takes_value ? " VALUE" : "");
        printf("  %-26s %s\n", left, options[i].help);
    }
    printf("  %-26s %s\n", "--help", "show this help");
}

const char *cli_get(const CliArgs *args, const char *name) {
    for (int i = 0; i < args->n_options; i++)
        if (!strcmp(args->options[i].name, name)) return args->options[i].value;
    return NULL;
}

bool cli_get_int(const char *command, const CliArgs *args, const char *name, int64_t low,
                 int64_t high, int64_t *out) {
    const char *text = cli_get(args, name);
    if (!text) return true;
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end || v < low || v > high) {
        cli_error(command, "--%s %s: expected an integer in [%lld, %lld]", name, text,
                  (long long)low, (long long)high);
        return false;
    }
    *out = v;
    return true;
}

bool cli_get_double(const char *command, const CliArgs *args, const char *name, double low,
                    double high, double *out) {
    const char *text = cli_get(args, name);
    if (!text) return true;
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !(v >= low && v <= high)) {
        cli_error(command, "--%s %s: expected a number in [%g, %g]", name, text, low, high);
        return false;
    }
    *out = v;
    return true;
}
