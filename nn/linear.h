/* Fully connected layer (PyTorch's nn.Linear) and activations as layers.
 *
 *   y = x W^T + b,   x (..., in), W (out, in), b (out)
 *
 * Parameters live in a ParamSet under "{prefix}.weight" and "{prefix}.bias",
 * so a subnet built as Linear, ReLU, Linear at prefix "subnet" holds
 * "subnet.0.weight" ... "subnet.2.bias" exactly as torch's nn.Sequential. */
#ifndef HG_NN_LINEAR_H
#define HG_NN_LINEAR_H

#include "autograd/ops.h"
#include "nn/params.h"
#include "tensor/rng.h"

typedef struct Linear {
    int64_t in_features, out_features;
    Var *weight; /* (out, in), owned by the ParamSet */
    Var *bias;   /* (out) or NULL */
} Linear;

/* Registers the parameters with PyTorch's default initialization:
 * kaiming_uniform(a = sqrt(5)) for the weight, which is U(-1/sqrt(in), 1/sqrt(in)),
 * and the bias U(-1/sqrt(in), 1/sqrt(in)); weight drawn first, then bias. */
hg_status linear_init(Linear *l, ParamSet *ps, const char *prefix, int64_t in, int64_t out,
                      bool bias, Rng *rng);
/* y = x W^T + b on the tape (ag_linear). */
Var *linear_forward(Tape *tape, const Linear *l, Var *x);

/* Element-wise activations usable as a layer of a sequence (no parameters). */
typedef enum {
    ACT_IDENTITY,
    ACT_RELU,
    ACT_RELU6,
    ACT_TANH,
    ACT_SIGMOID,
    ACT_SILU,
    ACT_GELU,
} Activation;

/* Applies `act` to x (ACT_IDENTITY returns x itself). */
Var *activation_forward(Tape *tape, Activation act, Var *x);
/* "identity", "relu", "relu6", "tanh", "sigmoid", "silu" (or "swish"), "gelu";
 * HG_ERR_ARG for any other name. */
hg_status activation_from_name(const char *name, Activation *act);
const char *activation_name(Activation act);

#endif
