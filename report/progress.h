/* Progress reporting for long work (training epochs, feature extraction, eval).
 *
 * On a terminal: one line redrawn in place with '\r' at most every
 * PROGRESS_BAR_INTERVAL seconds,
 *   train  45% [=============>                 ] 45/100 0:04<0:05 12.3 it/s loss 1.234
 * fitted to the terminal width. Anywhere else (log files, pipes): plain lines,
 * never '\r', at most one per interval (PROGRESS_LOG_INTERVAL seconds by
 * default) plus one at the end,
 *   train: 45/100 (45%), 12.3 it/s, elapsed 0:04, ETA 0:05, loss 1.234
 * The rate is the average since progress_start(); the ETA assumes it holds.
 * No colour is used, so NO_COLOR is honoured trivially.
 *
 * These functions write to the FILE the caller chose (the one exception to the
 * library's "never print" rule: printing is their job). A Progress is used by
 * one thread; every function accepts NULL (so a failed start needs no checks). */
#ifndef HG_REPORT_PROGRESS_H
#define HG_REPORT_PROGRESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PROGRESS_BAR_INTERVAL 0.1
#define PROGRESS_LOG_INTERVAL 10.0

typedef enum {
    PROGRESS_AUTO,  /* bar when isatty(fileno(out)), log lines otherwise */
    PROGRESS_BAR,   /* always the redrawn bar */
    PROGRESS_LOG,   /* always plain lines */
    PROGRESS_QUIET, /* nothing */
} ProgressMode;

typedef struct Progress Progress;

/* total <= 0 means unknown (no percentage, bar or ETA). out NULL is quiet.
 * NULL only when out of memory. */
Progress *progress_start(const char *label, int64_t total, FILE *out);
Progress *progress_start_mode(const char *label, int64_t total, FILE *out, ProgressMode mode);
/* Seconds between plain log lines (>= 0; 0 logs every update). */
void progress_set_interval(Progress *p, double seconds);
/* `done` items are finished; `extra` (NULL or short text, e.g. "loss 1.234")
 * is shown after the numbers and kept for the final line. */
void progress_update(Progress *p, int64_t done, const char *extra);
/* Draws the final state (ending the bar's line) and frees p. */
void progress_finish(Progress *p);

/* "0:05", "12:34", "1:02:03" (h:mm:ss past an hour); "--:--" for negative or
 * non-finite seconds. */
void progress_format_duration(double seconds, char *buf, size_t size);

#endif
