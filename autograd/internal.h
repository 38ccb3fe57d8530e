/* Private helpers shared by the autograd sources (not part of the public API).
 *
 * - var_release(): frees a Var and everything it owns (leaf or tape node).
 * - ag_check(): the NULL-propagation rule of autograd.h for an op's arguments.
 * - ag_save(): keeps a tensor for the backward pass, only when one will run.
 * - GRAD_KERNEL2/3: element-wise gradient formulas that have no tensor op
 *   (sign, masks, ...) as a loop over contiguous copies of same-shape inputs. */
#ifndef HG_AUTOGRAD_INTERNAL_H
#define HG_AUTOGRAD_INTERNAL_H

#include <stdbool.h>

#include "autograd/autograd.h"
#include "tensor/ops.h"

/* Frees value, grad, saved tensors, context and the Var itself. */
void var_release(Var *v);

/* Element counts above which gradient loops use OpenMP threads. */
#define AG_PARALLEL_MIN 32768

/* false when the op must return NULL: an input is NULL (an earlier op failed;
 * its message is kept) or the tape is NULL (a new message naming `op`). */
static inline bool ag_check(const char *op, const Tape *tape, int n, Var *const *inputs) {
    for (int i = 0; i < n; i++)
        if (inputs[i] == NULL) {
            if (hg_last_status() == HG_OK) hg_fail(HG_ERR_ARG, "%s: input %d is NULL", op, i);
            return false;
        }
    if (tape == NULL) {
        hg_fail(HG_ERR_ARG, "%s: tape is NULL", op);
        return false;
    }
    return true;
}

/* out->saved[slot] = a new view of t, but only when out will run a backward
 * (in no-grad mode, or when no input needs a gradient, nothing is kept).
 * false only when the view could not be allocated. */
static inline bool ag_save(Var *out, int slot, const Tensor *t) {
    if (!out->requires_grad) return true;
    out->saved[slot] = tensor_ref(t);
    return out->saved[slot] != NULL;
}

/* Defines `static Tensor *name(const Tensor *a, const Tensor *b, float p)`:
 * out[i] = EXPR for same-shape a and b (any strides), where EXPR may use the
 * floats A, B and the parameter P. Returns NULL on allocation failure. */
// clang-format off
#define GRAD_KERNEL2(name, EXPR)                                                                   \
    static Tensor *name(const Tensor *a_, const Tensor *b_, float P) {                             \
        Tensor *ac_ = tensor_contiguous(a_), *bc_ = tensor_contiguous(b_);                         \
        Tensor *out_ = ac_ && bc_ ? tensor_empty(a_->ndim, a_->shape) : NULL;                      \
        if (out_) {                                                                                \
            const float *pa_ = tensor_data(ac_), *pb_ = tensor_data(bc_);                          \
            float *po_ = tensor_data(out_);                                                        \
            int64_t n_ = tensor_numel(out_);                                                       \
            _Pragma("omp parallel for if(n_ > AG_PARALLEL_MIN)")                                   \
            for (int64_t i_ = 0; i_ < n_; i_++) {                                                  \
                float A = pa_[i_], B = pb_[i_];                                                    \
                po_[i_] = (EXPR);                                                                  \
            }                                                                                      \
        }                                                                                          \
        tensor_free(ac_);                                                                          \
        tensor_free(bc_);                                                                          \
        (void)P;                                                                                   \
        return out_;                                                                               \
    }

/* As GRAD_KERNEL2 with three same-shape inputs A, B, C. */
#define GRAD_KERNEL3(name, EXPR)                                                                   \
    static Tensor *name(const Tensor *a_, const Tensor *b_, const Tensor *c_, float P) {           \
        Tensor *ac_ = tensor_contiguous(a_), *bc_ = tensor_contiguous(b_);                         \
        Tensor *cc_ = tensor_contiguous(c_);                                                       \
        Tensor *out_ = ac_ && bc_ && cc_ ? tensor_empty(a_->ndim, a_->shape) : NULL;               \
        if (out_) {                                                                                \
            const float *pa_ = tensor_data(ac_), *pb_ = tensor_data(bc_);                          \
            const float *pc_ = tensor_data(cc_);                                                   \
            float *po_ = tensor_data(out_);                                                        \
            int64_t n_ = tensor_numel(out_);                                                       \
            _Pragma("omp parallel for if(n_ > AG_PARALLEL_MIN)")                                   \
            for (int64_t i_ = 0; i_ < n_; i_++) {                                                  \
                float A = pa_[i_], B = pb_[i_], C = pc_[i_];                                       \
                po_[i_] = (EXPR);                                                                  \
            }                                                                                      \
        }                                                                                          \
        tensor_free(ac_);                                                                          \
        tensor_free(bc_);                                                                          \
        tensor_free(cc_);                                                                          \
        (void)P;                                                                                   \
        return out_;                                                                               \
    }
// clang-format on

#endif
