/* hgad weights-info FILE: lists the metadata and tensors of a safetensors file. */
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "nn/safetensors.h"

static const char *const NAME = "weights-info";

static void print_usage(FILE *out) {
    fprintf(out, "usage: hgad weights-info FILE.safetensors\n"
                 "\n"
                 "Validates a safetensors file and prints its metadata (key = value) and\n"
                 "each tensor's name, dtype and shape, in name order.\n"
                 "\n"
                 "options:\n"
                 "  -h, --help   show this help\n");
}

/* Prints `s` on one line: control characters become \n, \t or \xNN. */
static void print_escaped(const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\n')
            fputs("\\n", stdout);
        else if (*p == '\t')
            fputs("\\t", stdout);
        else if (*p < 0x20 || *p == 0x7f)
            printf("\\x%02x", *p);
        else
            putchar(*p);
    }
}

/* Not cli_parse: the file is a positional argument, and its help and errors
 * (exit 1, options named as given) predate the shared parser. */
int cmd_weights_info(int argc, char **argv) {
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            print_usage(stdout);
            return 0;
        }
        if (arg[0] == '-' && arg[1] != '\0')
            return cli_error(NAME, "unknown option '%s' (see hgad weights-info --help)", arg);
        if (path) return cli_error(NAME, "expects one file (see hgad weights-info --help)");
        path = arg;
    }
    if (!path) return cli_error(NAME, "missing FILE argument (see hgad weights-info --help)");

    SafetensorsFile *f = safetensors_open(path);
    if (!f) return cli_error(NAME, "%s", hg_last_error());

    int n_meta = safetensors_metadata_count(f);
    printf("file: %s\n", path);
    printf("metadata: %d %s\n", n_meta, n_meta == 1 ? "entry" : "entries");
    for (int i = 0; i < n_meta; i++) {
        fputs("  ", stdout);
        print_escaped(safetensors_metadata_key(f, i));
        fputs(" = ", stdout);
        print_escaped(safetensors_metadata_value(f, i));
        putchar('\n');
    }

    int count = safetensors_count(f);
    int64_t elements = 0;
    uint64_t bytes = 0;
    int name_width = 4;
    for (int i = 0; i < count; i++) {
        const SafetensorsEntry *e = safetensors_entry(f, i);
        elements += e->numel;
        bytes += e->nbytes;
        int len = (int)strlen(e->name);
        if (len > name_width && len <= 60) name_width = len;
    }
    printf("tensors: %d (%lld elements, %llu bytes)\n", count, (long long)elements,
           (unsigned long long)bytes);
    for (int i = 0; i < count; i++) {
        const SafetensorsEntry *e = safetensors_entry(f, i);
        fputs("  ", stdout);
        print_escaped(e->name);
        int pad = name_width - (int)strlen(e->name);
        printf("%*s  %-7s [", pad > 0 ? pad : 0, "", safetensors_dtype_name(e->dtype));
        for (int d = 0; d < e->ndim; d++) printf(d ? ",%lld" : "%lld", (long long)e->shape[d]);
        printf("]\n");
    }
    safetensors_close(f);
    if (fflush(stdout) != 0) return cli_error(NAME, "cannot write to standard output");
    return 0;
}
