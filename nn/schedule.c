/* Learning-rate schedules (closed forms). */
#include "nn/schedule.h"

#include <math.h>

Schedule schedule_constant(void) {
    return (Schedule){.kind = SCHED_CONSTANT};
}

Schedule schedule_step(int64_t step_size, double gamma) {
    return (Schedule){.kind = SCHED_STEP, .step_size = step_size, .gamma = gamma};
}

Schedule schedule_cosine(int64_t t_max, double eta_min) {
    return (Schedule){.kind = SCHED_COSINE, .t_max = t_max, .eta_min = eta_min};
}

Schedule schedule_linear(double start_factor, double end_factor, int64_t total_iters) {
    return (Schedule){.kind = SCHED_LINEAR,
                      .start_factor = start_factor,
                      .end_factor = end_factor,
                      .total_iters = total_iters};
}

Schedule schedule_sequence(int n_parts, const Schedule *const *parts, const int64_t *milestones) {
    Schedule s = {.kind = SCHED_SEQUENCE, .n_parts = n_parts};
    for (int i = 0; i < n_parts && i < SCHEDULE_MAX_PARTS; i++) {
        s.parts[i] = parts[i];
        if (i > 0) s.milestones[i - 1] = milestones[i - 1];
    }
    return s;
}

hg_status schedule_check(const Schedule *s) {
    switch (s->kind) {
    case SCHED_CONSTANT:
        return HG_OK;
    case SCHED_STEP:
        if (s->step_size <= 0)
            return hg_fail(HG_ERR_ARG, "schedule step: step_size %lld must be > 0",
                           (long long)s->step_size);
        return HG_OK;
    case SCHED_COSINE:
        if (s->t_max <= 0)
            return hg_fail(HG_ERR_ARG, "schedule cosine: T_max %lld must be > 0",
                           (long long)s->t_max);
        return HG_OK;
    case SCHED_LINEAR:
        if (s->total_iters <= 0)
            return hg_fail(HG_ERR_ARG, "schedule linear: total_iters %lld must be > 0",
                           (long long)s->total_iters);
        return HG_OK;
    case SCHED_SEQUENCE:
        if (s->n_parts < 1 || s->n_parts > SCHEDULE_MAX_PARTS)
            return hg_fail(HG_ERR_ARG, "schedule sequence: %d parts (1 to %d)", s->n_parts,
                           SCHEDULE_MAX_PARTS);
        for (int i = 0; i < s->n_parts; i++) {
            if (!s->parts[i]) return hg_fail(HG_ERR_ARG, "schedule sequence: part %d is NULL", i);
            if (i > 0 && s->milestones[i - 1] <= (i > 1 ? s->milestones[i - 2] : 0))
                return hg_fail(HG_ERR_ARG,
                               "schedule sequence: milestones must be positive and increasing");
            hg_status st = schedule_check(s->parts[i]);
            if (st != HG_OK) return st;
        }
        return HG_OK;
    }
    return hg_fail(HG_ERR_ARG, "schedule: unknown kind %d", (int)s->kind);
}

static const double pi = 3.14159265358979323846;

double schedule_lr(const Schedule *s, double base, int64_t t) {
    if (t < 0) t = 0;
    switch (s->kind) {
    case SCHED_CONSTANT:
        return base;
    case SCHED_STEP:
        return base * pow(s->gamma, (double)(t / s->step_size));
    case SCHED_COSINE:
        return s->eta_min +
               (base - s->eta_min) * (1.0 + cos(pi * (double)t / (double)s->t_max)) / 2.0;
    case SCHED_LINEAR: {
        double done = (double)(t < s->total_iters ? t : s->total_iters) / (double)s->total_iters;
        return base * (s->start_factor + (s->end_factor - s->start_factor) * done);
    }
    case SCHED_SEQUENCE: {
        /* The last part whose milestone has been reached, counted from it. */
        int k = 0;
        while (k + 1 < s->n_parts && t >= s->milestones[k]) k++;
        int64_t start = k > 0 ? s->milestones[k - 1] : 0;
        return schedule_lr(s->parts[k], base, t - start);
    }
    }
    return NAN;
}

void schedule_apply(const Schedule *s, Optimizer *opt, int64_t t) {
    for (int g = 0; g < opt->n_groups; g++)
        opt->groups[g].hyper.lr = schedule_lr(s, opt->groups[g].initial_lr, t);
}

HgadSchedule hgad_schedule_default(double lr, int meta_epochs) {
    return (HgadSchedule){.lr = lr,
                          .meta_epochs = meta_epochs,
                          .warm_epochs = 2,
                          .decay_rate = 0.1,
                          .warmup_ratio = 0.1};
}

/* spec/hgad.md section 6: lr_e = eta_min + (lr - eta_min)(1 + cos(pi e / E)) / 2. */
static double hgad_cosine(const HgadSchedule *s, double e) {
    double eta_min = s->lr * pow(s->decay_rate, 3);
    return eta_min + (s->lr - eta_min) * (1.0 + cos(pi * e / (double)s->meta_epochs)) / 2.0;
}

double hgad_schedule_lr(const HgadSchedule *s, int meta_epoch, int64_t batch,
                        int64_t batches_per_meta_epoch) {
    if (meta_epoch < s->warm_epochs && batches_per_meta_epoch > 0) {
        /* spec/hgad.md section 6 warm-up: linear from lr/10 to the cosine value
         * at meta epoch warm_epochs, over p = (b + e T) / (warm_epochs T). */
        double from = s->lr * s->warmup_ratio, to = hgad_cosine(s, s->warm_epochs);
        double p = ((double)batch + (double)meta_epoch * (double)batches_per_meta_epoch) /
                   ((double)s->warm_epochs * (double)batches_per_meta_epoch);
        return from + p * (to - from);
    }
    return hgad_cosine(s, meta_epoch);
}
