/* hgad flow-run: runs one level's flow (and prior) of a checkpoint on given
 * vectors, for auditing against another implementation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/ops.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "models/hgad.h"
#include "nn/safetensors.h"

static const char *const NAME = "flow-run";

/* Class ids of `y` (N): int64/int32 exactly, or float holding integers. */
static int load_labels(const SafetensorsFile *in, int64_t n, int64_t classes, int64_t **labels) {
    const SafetensorsEntry *e = safetensors_find(in, "y");
    if (e->ndim != 1 || e->numel != n)
        return cli_error(NAME, "y has %lld elements in %d dims, expected (%lld)",
                         (long long)e->numel, e->ndim, (long long)n);
    int64_t count = 0;
    if (e->dtype == ST_F32 || e->dtype == ST_F16 || e->dtype == ST_BF16 || e->dtype == ST_F64) {
        Tensor *t = safetensors_load_tensor(in, "y");
        *labels = malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
        if (!t || !*labels) return tensor_free(t), cli_error(NAME, "y: %s", hg_last_error());
        for (int64_t i = 0; i < n; i++) {
            float v = tensor_data(t)[i];
            (*labels)[i] = (int64_t)v;
            if ((float)(*labels)[i] != v) {
                tensor_free(t);
                return cli_error(NAME, "y[%lld] = %g is not a class id", (long long)i, v);
            }
        }
        tensor_free(t);
    } else if (safetensors_load_int64(in, "y", labels, &count) != HG_OK) {
        return cli_error(NAME, "y: %s", hg_last_error());
    }
    for (int64_t i = 0; i < n; i++)
        if ((*labels)[i] < 0 || (*labels)[i] >= classes)
            return cli_error(NAME, "y[%lld] = %lld outside the model's %lld classes", (long long)i,
                             (long long)(*labels)[i], (long long)classes);
    return 0;
}

/* The five loss terms of the full phase (section 5) on the given labels. */
static int add_losses(const Hgad *model, int level, const Tensor *x, const Tensor *cond,
                      const int64_t *labels, SafetensorsWriter *out, Tensor **keep) {
    Tape *tape = tape_new();
    tape_set_grad_enabled(tape, false);
    PriorLosses terms;
    Var *loss = hgad_level_loss(model, tape, level, ag_constant(tape, tensor_ref(x)),
                                cond ? ag_constant(tape, tensor_ref(cond)) : NULL, labels,
                                PRIOR_PHASE_FULL, &terms);
    if (!loss) {
        tape_free(tape);
        return cli_error(NAME, "%s", hg_last_error());
    }
    const char *names[] = {"L_g", "L_mi", "L_e", "L_g_intra", "L_z", "loss"};
    Var *vars[] = {terms.L_g, terms.L_mi, terms.L_e, terms.L_g_intra, terms.L_z, loss};
    int kept = 0;
    for (int i = 0; i < 6; i++) {
        if (!vars[i]) continue;
        keep[kept] = tensor_clone(vars[i]->value);
        if (!keep[kept] || safetensors_writer_add(out, names[i], keep[kept]) != HG_OK) {
            tape_free(tape);
            return cli_error(NAME, "%s", hg_last_error());
        }
        kept++;
    }
    tape_free(tape);
    return 0;
}

int cmd_flow_run(int argc, char **argv) {
    CliOption options[] = {
        {"checkpoint", true, "HGAD checkpoint (safetensors)", NULL},
        {"level", true, "feature level L (default 0)", NULL},
        {"input", true, "safetensors with x (N x D), cond (N x Dc), optional y (N)", NULL},
        {"output", true, "safetensors to write: z, logdet [, logp, neg_entropy] [, losses]", NULL},
        {"class", true, "class id C: also write logp and neg_entropy (section 7)", NULL},
    };
    const int n_options = (int)(sizeof options / sizeof options[0]);
    CliArgs args;
    int early = cli_parse_or_help(
        NAME, argc, argv, options, n_options,
        "--checkpoint CKPT [--level L] --input IN --output OUT [--class C]",
        "Runs the flow of level L on vectors x with condition cond and writes the\n"
        "latents z and log-dets; with --class the per-vector log-likelihood per\n"
        "dimension and negative entropy before test-set normalization; with y in\n"
        "IN the scalar losses L_g, L_mi, L_e, L_g_intra, L_z and their total.",
        &args);
    if (early >= 0) return early;
    int rc = 1;
    Hgad *model = NULL;
    SafetensorsFile *in = NULL;
    SafetensorsWriter *out = NULL;
    Tensor *x = NULL, *cond = NULL, *z = NULL, *logdet = NULL, *logp = NULL, *negent = NULL;
    Tensor *losses[6] = {0};
    int64_t *labels = NULL, level = 0, class_id = -1;
    const char *ckpt = cli_get(&args, "checkpoint"), *in_path = cli_get(&args, "input"),
               *out_path = cli_get(&args, "output");
    if (!cli_check_args(NAME, &args, NULL)) goto done;
    if (!ckpt || !in_path || !out_path) {
        rc = cli_error(NAME, "--checkpoint, --input and --output are required (see --help)");
        goto done;
    }
    if (!cli_get_int(NAME, &args, "level", 0, HGAD_MAX_LEVELS - 1, &level) ||
        !cli_get_int(NAME, &args, "class", 0, 1 << 20, &class_id))
        goto done;
    if (!(model = hgad_load(ckpt, NULL))) {
        rc = cli_error(NAME, "%s", hg_last_error());
        goto done;
    }
    if (level >= model->config.levels) {
        rc = cli_error(NAME, "--level %lld: the checkpoint has %d levels", (long long)level,
                       model->config.levels);
        goto done;
    }
    if (class_id >= model->config.classes) {
        rc = cli_error(NAME, "--class %lld: the checkpoint has %lld classes", (long long)class_id,
                       (long long)model->config.classes);
        goto done;
    }
    if (!(in = safetensors_open(in_path))) {
        rc = cli_error(NAME, "%s", hg_last_error());
        goto done;
    }
    if (!safetensors_find(in, "x")) {
        rc = cli_error(NAME, "%s has no tensor named x", in_path);
        goto done;
    }
    if (!(x = safetensors_load_tensor(in, "x"))) {
        rc = cli_error(NAME, "%s", hg_last_error());
        goto done;
    }
    const int64_t D = model->config.dims[level], Dc = model->config.cond_dim;
    if (x->ndim != 2 || x->shape[1] != D) {
        char s[64];
        rc = cli_error(NAME, "x has shape %s, level %lld expects (N, %lld)",
                       tensor_shape_str(x, s, sizeof s), (long long)level, (long long)D);
        goto done;
    }
    if (Dc > 0) {
        if (!safetensors_find(in, "cond")) {
            rc = cli_error(NAME, "%s has no tensor named cond (the flow needs (N, %lld))", in_path,
                           (long long)Dc);
            goto done;
        }
        cond = safetensors_load_tensor(in, "cond");
        if (!cond || cond->ndim != 2 || cond->shape[0] != x->shape[0] || cond->shape[1] != Dc) {
            char s[64];
            rc = cli_error(NAME, "cond has shape %s, expected (%lld, %lld)",
                           cond ? tensor_shape_str(cond, s, sizeof s) : "?", (long long)x->shape[0],
                           (long long)Dc);
            goto done;
        }
    }
    if (hgad_flow_forward(model, (int)level, x, cond, false, &z, &logdet) != HG_OK) {
        rc = cli_error(NAME, "%s", hg_last_error());
        goto done;
    }
    out = safetensors_writer_new();
    if (!out || safetensors_writer_add(out, "z", z) != HG_OK ||
        safetensors_writer_add(out, "logdet", logdet) != HG_OK) {
        rc = cli_error(NAME, "%s", hg_last_error());
        goto done;
    }
    if (class_id >= 0) {
        if (hgad_level_evidence(model, (int)level, x, cond, class_id, &logp, &negent) != HG_OK ||
            safetensors_writer_add(out, "logp", logp) != HG_OK ||
            (negent && safetensors_writer_add(out, "neg_entropy", negent) != HG_OK)) {
            rc = cli_error(NAME, "%s", hg_last_error());
            goto done;
        }
    }
    if (safetensors_find(in, "y")) {
        if (load_labels(in, x->shape[0], model->config.classes, &labels) ||
            add_losses(model, (int)level, x, cond, labels, out, losses))
            goto done;
    }
    if (safetensors_writer_save(out, out_path) != HG_OK) {
        rc = cli_error(NAME, "%s", hg_last_error());
        goto done;
    }
    rc = 0;
done:
    for (int i = 0; i < 6; i++) tensor_free(losses[i]);
    tensor_free(x), tensor_free(cond), tensor_free(z), tensor_free(logdet), tensor_free(logp),
        tensor_free(negent);
    free(labels);
    safetensors_writer_free(out);
    safetensors_close(in);
    hgad_free(model);
    cli_args_free(&args);
    return rc;
}
