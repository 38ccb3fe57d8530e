/* Linear layer and activation glue. */
#include "nn/linear.h"

#include <math.h>
#include <string.h>

hg_status linear_init(Linear *l, ParamSet *ps, const char *prefix, int64_t in, int64_t out,
                      bool bias, Rng *rng) {
    memset(l, 0, sizeof *l);
    if (in <= 0 || out <= 0)
        return hg_fail(HG_ERR_ARG, "linear_init '%s': features in=%lld out=%lld must be > 0",
                       prefix ? prefix : "", (long long)in, (long long)out);
    /* kaiming_uniform(a = sqrt(5)): gain = sqrt(2 / (1 + a^2)) = sqrt(1/3),
     * bound = gain * sqrt(3 / fan_in) = 1 / sqrt(fan_in). */
    float bound = (float)(1.0 / sqrt((double)in));
    l->in_features = in;
    l->out_features = out;
    l->weight = param_set_add_under(ps, prefix, "weight",
                                    tensor_uniform(SHAPE(out, in), -bound, bound, rng), false);
    if (!l->weight) return hg_last_status();
    if (bias) {
        l->bias = param_set_add_under(ps, prefix, "bias",
                                      tensor_uniform(SHAPE(out), -bound, bound, rng), false);
        if (!l->bias) return hg_last_status();
    }
    return HG_OK;
}

Var *linear_forward(Tape *tape, const Linear *l, Var *x) {
    return ag_linear(tape, x, l->weight, l->bias);
}

static const char *const activation_names[] = {
    [ACT_IDENTITY] = "identity", [ACT_RELU] = "relu", [ACT_RELU6] = "relu6", [ACT_TANH] = "tanh",
    [ACT_SIGMOID] = "sigmoid",   [ACT_SILU] = "silu", [ACT_GELU] = "gelu",
};

Var *activation_forward(Tape *tape, Activation act, Var *x) {
    switch (act) {
    case ACT_IDENTITY:
        return x;
    case ACT_RELU:
        return ag_relu(tape, x);
    case ACT_RELU6:
        return ag_relu6(tape, x);
    case ACT_TANH:
        return ag_tanh(tape, x);
    case ACT_SIGMOID:
        return ag_sigmoid(tape, x);
    case ACT_SILU:
        return ag_silu(tape, x);
    case ACT_GELU:
        return ag_gelu(tape, x);
    }
    hg_fail(HG_ERR_ARG, "activation_forward: unknown activation %d", (int)act);
    return NULL;
}

hg_status activation_from_name(const char *name, Activation *act) {
    for (int i = 0; i < (int)(sizeof activation_names / sizeof *activation_names); i++) {
        if (activation_names[i] && strcmp(name, activation_names[i]) == 0) {
            *act = (Activation)i;
            return HG_OK;
        }
    }
    if (strcmp(name, "swish") == 0) {
        *act = ACT_SILU;
        return HG_OK;
    }
    return hg_fail(HG_ERR_ARG,
                   "activation: unknown name '%s' (identity, relu, relu6, tanh, sigmoid, silu, "
                   "gelu)",
                   name);
}

const char *activation_name(Activation act) {
    if ((int)act < 0 || (int)act >= (int)(sizeof activation_names / sizeof *activation_names))
        return "unknown";
    return activation_names[act];
}
