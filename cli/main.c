/* hgad: train, evaluate and audit HGAD anomaly detectors. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "pipeline/comm.h"

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
    {"classify", cmd_classify, "ImageNet top-5 of images with the mobilenet_v2 classifier"},
    {"backbone-run", cmd_backbone_run, "run a backbone on an NCHW tensor and write its feature maps"},
    {"weights-info", cmd_weights_info, "list the tensors and metadata of a safetensors file"},
    {"flow-run", cmd_flow_run, "run one level's flow and prior of a checkpoint on given vectors"},
    {"audit", cmd_audit, "check a checkpoint numerically: inverses, log-dets, gradients, parameters"},
    {"zoo", cmd_zoo, "train and evaluate the model zoo (HGAD, CFLOW-AD, ablations) into one table"},
};
static const int command_count = (int)(sizeof commands / sizeof commands[0]);

static void print_usage(FILE *out) {
    fprintf(out, "usage: hgad COMMAND [options]   (hgad COMMAND --help for details)\n\ncommands:\n");
    for (int i = 0; i < command_count; i++)
        fprintf(out, "  %-14s %s\n", commands[i].name, commands[i].summary);
}

/* Under mpirun (the MPI=1 build, docs/distributed.md) train and eval run
 * data-parallel on every rank; any other command runs on rank 0 alone. */
static bool is_distributed(const Command *c) {
    return c->run == cmd_train || c->run == cmd_eval;
}

static int run_command(const Command *c, int argc, char **argv) {
    if (comm_size() == 1 || is_distributed(c)) return c->run(argc, argv);
    int rc = 0;
    if (comm_rank() == 0) {
        comm_begin_solo();
        rc = c->run(argc, argv);
        comm_end_solo();
    }
    /* the other ranks learn the outcome and end with it */
    hg_status s = rc ? hg_fail(HG_ERR_ARG, "hgad %s failed (exit %d)", c->name, rc) : HG_OK;
    if (comm_agree(s) != HG_OK && !rc) rc = 1;
    return rc;
}

static int run(int argc, char **argv) {
    if (argc < 2) {
        print_usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        print_usage(stdout);
        return 0;
    }
    for (int i = 0; i < command_count; i++)
        if (!strcmp(argv[1], commands[i].name))
            return run_command(&commands[i], argc - 1, argv + 1);
    fprintf(stderr, "hgad: unknown command '%s' (run 'hgad --help' for the list)\n", argv[1]);
    return 2;
}

int main(int argc, char **argv) {
    if (comm_init(&argc, &argv) != HG_OK) {
        fprintf(stderr, "hgad: %s\n", hg_last_error());
        return 1;
    }
    /* only rank 0 writes to stdout (progress, tables); errors go to stderr on every rank */
    if (comm_rank() != 0 && !freopen("/dev/null", "w", stdout)) return comm_finalize(1);
    return comm_finalize(run(argc, argv));
}
