/* hgad: train, evaluate and audit HGAD anomaly detectors. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"

typedef struct Command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} Command;

static const Command commands[] = {
    {"train", cmd_train, "train one unified HGAD model on a data set"},
    {"eval", cmd_eval, "score the test sets: AUROC, AUPRO, ROC plot, heat-maps"},
    {"predict", cmd_predict, "score images or folders and write heat-map overlays"},
    {"synth", cmd_synth, "write a synthetic MVTec-layout data set with exact masks"},
    {"weights-info", cmd_weights_info, "list the tensors and metadata of a safetensors file"},
    {"flow-run", cmd_flow_run, "run one level's flow and prior of a checkpoint on given vectors"},
};
static const int command_count = (int)(sizeof commands / sizeof commands[0]);

static void print_usage(FILE *out) {
    fprintf(out, "usage: hgad COMMAND [options]   (hgad COMMAND --help for details)\n\ncommands:\n");
    for (int i = 0; i < command_count; i++)
        fprintf(out, "  %-14s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        print_usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        print_usage(stdout);
        return 0;
    }
    for (int i = 0; i < command_count; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "hgad: unknown command '%s' (run 'hgad --help' for the list)\n", argv[1]);
    return 2;
}
