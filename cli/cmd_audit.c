/* hgad audit: numerical self-checks of a checkpoint's flows and priors
 * (models/hgad_audit.h) and statistics of its parameters. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "models/hgad_audit.h"

static const char *const NAME = "audit";

static const char *const prior_names[] = {"hierarchical", "inter-class", "gaussian"};

static void print_model(const char *path, const Hgad *m) {
    const HgadConfig *c = &m->config;
    printf("audit of %s\n  %d levels (D =", path, c->levels);
    for (int l = 0; l < c->levels; l++) printf(" %lld", (long long)c->dims[l]);
    printf("), condition %lld, %d coupling blocks, clamp %g%s, prior %s, %lld class%s",
           (long long)c->cond_dim, c->coupling_blocks, c->clamp, c->new_clamp ? " (new clamp)" : "",
           prior_names[c->prior], (long long)c->classes, c->classes == 1 ? "" : "es");
    if (c->prior == PRIOR_HIERARCHICAL)
        printf(", %lld intra-class centers", (long long)c->intra_centers);
    printf(", %lld parameters\n", (long long)param_set_numel(m->params, true));
}

static void print_checks(const HgadAudit *a) {
    int level = -2;
    for (int i = 0; i < a->n_checks; i++) {
        const HgadAuditCheck *c = &a->checks[i];
        if (c->level != level) {
            level = c->level;
            if (level < 0)
                printf("\nmodel:\n");
            else
                printf("\nlevel %d:\n", level);
        }
        printf("  %-16s %-4s %10.3g (tolerance %.3g)  %s\n", c->name, c->passed ? "ok" : "FAIL",
               c->value, c->tolerance, c->detail);
    }
}

static void print_stats(const HgadAudit *a) {
    printf("\nparameters and buffers (blocks of a flow pooled as module_list.*):\n");
    printf("  %-44s %7s %10s %11s %11s %11s %11s %s\n", "group", "tensors", "values", "mean", "std",
           "min", "max", "non-finite");
    for (int k = 0; k < a->n_groups; k++) {
        const HgadParamStats *g = &a->groups[k];
        printf("  %-44s %7lld %10lld %11.4g %11.4g %11.4g %11.4g", g->group, (long long)g->tensors,
               (long long)g->count, g->mean, g->std, g->min, g->max);
        if (g->nan || g->inf)
            printf(" %lld NaN, %lld Inf", (long long)g->nan, (long long)g->inf);
        else
            printf(" 0");
        printf("\n");
    }
}

int cmd_audit(int argc, char **argv) {
    CliOption options[] = {
        {"checkpoint", true, "HGAD checkpoint (model.safetensors or checkpoint.safetensors)", NULL},
        {"samples", true, "random vectors per level for the inverse check (default 64)", NULL},
        {"jacobian-vectors", true, "vectors whose full Jacobian is differenced (default 2)", NULL},
        {"gradcheck-rows", true, "sub-batch of the gradient checks (default 4)", NULL},
        {"seed", true, "random seed (default 0)", NULL},
        {"threads", true, "OpenMP threads", NULL},
    };
    const int n_options = (int)(sizeof options / sizeof options[0]);
    CliArgs args;
    int early = cli_parse_or_help(
        NAME, argc, argv, options, n_options, "--checkpoint CKPT [--samples N] [--seed S]",
        "Checks each level's flow and prior numerically: inverse consistency\n"
        "max|f^-1(f(x)) - x| on random normal x with the positional condition, the\n"
        "log-det against log|det J| of the central-difference Jacobian, finite-difference\n"
        "gradient checks of the loss terms (prior parameters, one block's global_scale),\n"
        "and that no parameter is NaN or Inf; prints statistics of every parameter group.\n"
        "Exits with 1 when a check fails.",
        &args);
    if (early >= 0) return early;
    int rc = 1;
    Hgad *model = NULL;
    HgadAudit audit = {0};
    HgadAuditOptions o = hgad_audit_default_options();
    int64_t samples = o.samples, vectors = o.jacobian_vectors, rows = o.gradcheck_rows, seed = 0,
            threads = 0;
    const char *ckpt = cli_get(&args, "checkpoint");
    if (!cli_check_args(NAME, &args, "checkpoint")) goto done;
    if (!cli_get_int(NAME, &args, "samples", 1, 1 << 20, &samples) ||
        !cli_get_int(NAME, &args, "jacobian-vectors", 0, 1000, &vectors) ||
        !cli_get_int(NAME, &args, "gradcheck-rows", 0, 4096, &rows) ||
        !cli_get_int(NAME, &args, "seed", 0, INT64_MAX, &seed) ||
        !cli_get_int(NAME, &args, "threads", 1, 1024, &threads))
        goto done;
    cli_set_threads(threads);
    o.samples = samples;
    o.jacobian_vectors = (int)vectors;
    o.gradcheck_rows = rows;
    o.seed = (uint64_t)seed;
    if (!(model = hgad_load(ckpt, NULL))) {
        rc = cli_error(NAME, "%s", hg_last_error());
        goto done;
    }
    print_model(ckpt, model);
    if (hgad_audit(model, &o, &audit) != HG_OK) {
        rc = cli_error(NAME, "%s", hg_last_error());
        goto done;
    }
    print_checks(&audit);
    print_stats(&audit);
    printf("\nresult: %s (%d of %d checks failed)\n", audit.failures ? "FAIL" : "PASS",
           audit.failures, audit.n_checks);
    fflush(stdout);
    rc = audit.failures ? 1 : 0;
done:
    hgad_audit_free(&audit);
    hgad_free(model);
    cli_args_free(&args);
    return rc;
}
