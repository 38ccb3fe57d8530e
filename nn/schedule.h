/* Learning-rate schedules as closed-form functions of the step (or epoch)
 * count t = 0, 1, 2, ..., following torch.optim.lr_scheduler:
 *
 *   constant   lr = base
 *   step       lr = base * gamma^floor(t / step_size)                 (StepLR)
 *   cosine     lr = eta_min + (base - eta_min)(1 + cos(pi t / T_max)) / 2
 *                                               (CosineAnnealingLR, closed form)
 *   linear     lr = base * (start + (end - start) min(t, n) / n)      (LinearLR,
 *              the usual warm-up: start_factor 0.1, end_factor 1, n steps)
 *   sequence   part k of parts, run from milestone k-1 with its own count
 *              restarted at 0                                          (SequentialLR)
 *
 * Schedules are values; a sequence points to its parts (not owned; they must
 * outlive it). `base` is each optimizer group's initial lr, as torch keeps
 * "initial_lr" per group. */
#ifndef HG_NN_SCHEDULE_H
#define HG_NN_SCHEDULE_H

#include <stdint.h>

#include "nn/optim.h"

#define SCHEDULE_MAX_PARTS 8

typedef enum {
    SCHED_CONSTANT,
    SCHED_STEP,
    SCHED_COSINE,
    SCHED_LINEAR,
    SCHED_SEQUENCE,
} ScheduleKind;

typedef struct Schedule {
    ScheduleKind kind;
    int64_t step_size;               /* step */
    double gamma;                    /* step */
    int64_t t_max;                   /* cosine */
    double eta_min;                  /* cosine */
    double start_factor, end_factor; /* linear */
    int64_t total_iters;             /* linear */
    int n_parts;                     /* sequence */
    const struct Schedule *parts[SCHEDULE_MAX_PARTS];
    int64_t milestones[SCHEDULE_MAX_PARTS - 1]; /* increasing; part k starts at milestone k-1 */
} Schedule;

Schedule schedule_constant(void);
Schedule schedule_step(int64_t step_size, double gamma);
Schedule schedule_cosine(int64_t t_max, double eta_min);
Schedule schedule_linear(double start_factor, double end_factor, int64_t total_iters);
/* n_parts parts and n_parts - 1 milestones. */
Schedule schedule_sequence(int n_parts, const Schedule *const *parts, const int64_t *milestones);

/* HG_ERR_ARG naming the problem when a schedule (or one of its parts) is
 * unusable: step_size, t_max or total_iters <= 0, too many parts, milestones
 * not increasing ... */
hg_status schedule_check(const Schedule *s);

/* The learning rate at count t >= 0 for a group whose initial lr is `base`.
 * Unchecked schedules may give NaN. */
double schedule_lr(const Schedule *s, double base, int64_t t);
/* Sets every group's lr to schedule_lr(s, group initial lr, t). */
void schedule_apply(const Schedule *s, Optimizer *opt, int64_t t);

/* ---- HGAD (spec/hgad.md section 6) ----
 * Cosine per meta epoch e of E, eta_min = lr * decay^3 (decay 0.1):
 *   lr_e = eta_min + (lr - eta_min)(1 + cos(pi e / E)) / 2.
 * Warm-up during meta epochs e < warm_epochs (2): within meta epoch e, at
 * batch b of T = batches per meta epoch (sub-epochs included),
 *   p  = (b + e T) / (warm_epochs T)
 *   lr = lr/10 + p (to - lr/10),  to = eta_min + (lr - eta_min)(1 + cos(pi warm_epochs / E)) / 2
 * (the public code's adjust_learning_rate + warmup_learning_rate). */
typedef struct HgadSchedule {
    double lr;           /* 2e-4 */
    int meta_epochs;     /* E = 25 */
    int warm_epochs;     /* 2; 0 disables the warm-up */
    double decay_rate;   /* 0.1: eta_min = lr * decay_rate^3 */
    double warmup_ratio; /* 0.1: the warm-up starts at lr * warmup_ratio */
} HgadSchedule;

/* The faithful defaults above for a given lr and number of meta epochs. */
HgadSchedule hgad_schedule_default(double lr, int meta_epochs);
/* lr at batch `batch` (0 .. batches_per_meta_epoch-1, counted over all
 * sub-epochs) of meta epoch `meta_epoch`. */
double hgad_schedule_lr(const HgadSchedule *s, int meta_epoch, int64_t batch,
                        int64_t batches_per_meta_epoch);

#endif
