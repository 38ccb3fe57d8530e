/* The input check shared by the layers on NCHW maps (pooling, batch norm,
 * resizing), so that they reject bad input with the same message. */
#ifndef HG_NN_NCHW_CHECK_H
#define HG_NN_NCHW_CHECK_H

#include "tensor/tensor.h"

/* HG_OK when x is a 4-d tensor; else records "OP: input is NULL" (HG_ERR_ARG)
 * or "OP: input [..] must be 4-d NCHW" (HG_ERR_SHAPE) and returns its status. */
hg_status nchw_check_input(const char *op, const Tensor *x);

#endif
