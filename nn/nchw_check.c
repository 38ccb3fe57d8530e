#include "nn/nchw_check.h"

hg_status nchw_check_input(const char *op, const Tensor *x) {
    char s[96];
    if (!x) return hg_fail(HG_ERR_ARG, "%s: input is NULL", op);
    if (x->ndim != 4)
        return hg_fail(HG_ERR_SHAPE, "%s: input %s must be 4-d NCHW", op,
                       tensor_shape_str(x, s, sizeof s));
    return HG_OK;
}
