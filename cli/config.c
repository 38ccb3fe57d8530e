#include "cli/config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1])) *--end = '\0';
    return s;
}

bool cli_config_apply(const char *command, const char *path, CliOption *options, int n_options,
                      char **storage) {
    *storage = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return cli_error(command, "config file %s cannot be opened", path), false;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (size < 0 || size > (1 << 20)) {
        fclose(f);
        return cli_error(command, "config file %s is not a small text file", path), false;
    }
    char *text = malloc((size_t)size + 1);
    size_t got = text ? fread(text, 1, (size_t)size, f) : 0;
    fclose(f);
    if (!text || got != (size_t)size) {
        free(text);
        return cli_error(command, "config file %s cannot be read", path), false;
    }
    text[size] = '\0';
    *storage = text;
    int line_no = 0;
    for (char *line = text, *next; line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        line_no++;
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char *body = trim(line);
        if (!*body) continue;
        char *eq = strchr(body, '=');
        if (!eq) return cli_error(command, "%s:%d: expected 'key = value'", path, line_no), false;
        *eq = '\0';
        char *key = trim(body), *value = trim(eq + 1);
        CliOption *o = NULL;
        for (int i = 0; i < n_options; i++)
            if (!strcmp(options[i].name, key)) o = &options[i];
        if (!o || !strcmp(key, "config"))
            return cli_error(command, "%s:%d: unknown key '%s'", path, line_no, key), false;
        if (o->value) continue; /* the command line wins */
        if (!o->takes_value) {
            if (!strcmp(value, "true") || !strcmp(value, "1")) o->value = "1";
            else if (strcmp(value, "false") && strcmp(value, "0"))
                return cli_error(command, "%s:%d: %s takes true or false", path, line_no, key), false;
            continue;
        }
        if (!*value) return cli_error(command, "%s:%d: %s has no value", path, line_no, key), false;
        o->value = value;
    }
    return true;
}

void cli_config_free(char *storage) {
    free(storage);
}
