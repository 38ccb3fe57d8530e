/* Progress bars on terminals, throttled log lines elsewhere. */
#include "report/progress.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "tensor/error.h"

#define LABEL_MAX      48
#define EXTRA_MAX      128
#define LINE_MAX_CHARS 512
#define BAR_MIN        10
#define BAR_MAX        30

struct Progress {
    FILE *out;
    bool bar; /* else plain lines */
    char label[LABEL_MAX];
    char extra[EXTRA_MAX];
    int64_t total, done;
    double start, last_draw; /* seconds on the monotonic clock */
    double interval;         /* between draws */
    int last_len;            /* characters of the bar's previous drawing, to blank */
    int columns;             /* terminal width */
};

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void progress_format_duration(double seconds, char *buf, size_t size) {
    if (!(seconds >= 0) || seconds > 1e9) {
        snprintf(buf, size, "--:--");
        return;
    }
    long s = (long)seconds;
    if (s >= 3600)
        snprintf(buf, size, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else
        snprintf(buf, size, "%ld:%02ld", s / 60, s % 60);
}

/* "12.3 it/s", or "4.2 s/it" when slower than one item a second. */
static void format_rate(double rate, char *buf, size_t size) {
    if (!(rate > 0) || !isfinite(rate))
        snprintf(buf, size, "-- it/s");
    else if (rate >= 100)
        snprintf(buf, size, "%.0f it/s", rate);
    else if (rate >= 1)
        snprintf(buf, size, "%.1f it/s", rate);
    else
        snprintf(buf, size, "%.1f s/it", 1.0 / rate);
}

static int terminal_columns(FILE *out) {
    struct winsize ws;
    if (ioctl(fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
    const char *env = getenv("COLUMNS");
    int c = env ? atoi(env) : 0;
    return c > 0 ? c : 80;
}

Progress *progress_start_mode(const char *label, int64_t total, FILE *out, ProgressMode mode) {
    Progress *p = calloc(1, sizeof *p);
    if (!p) {
        hg_fail(HG_ERR_NOMEM, "progress_start: out of memory");
        return NULL;
    }
    if (mode == PROGRESS_AUTO && out) mode = isatty(fileno(out)) ? PROGRESS_BAR : PROGRESS_LOG;
    p->out = mode == PROGRESS_QUIET ? NULL : out;
    p->bar = mode == PROGRESS_BAR;
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
    p->total = total > 0 ? total : 0;
    p->start = now_seconds();
    p->interval = p->bar ? PROGRESS_BAR_INTERVAL : PROGRESS_LOG_INTERVAL;
    /* the bar draws on its first update; log lines wait one interval */
    p->last_draw = p->bar ? -INFINITY : p->start;
    p->columns = p->out && p->bar ? terminal_columns(p->out) : 80;
    return p;
}

Progress *progress_start(const char *label, int64_t total, FILE *out) {
    return progress_start_mode(label, total, out, PROGRESS_AUTO);
}

void progress_set_interval(Progress *p, double seconds) {
    if (p && seconds >= 0) p->interval = seconds;
}

/* The bar's line (without '\r'), at most p->columns - 1 characters so that it
 * never wraps (a wrapped line cannot be redrawn with '\r'). */
static int bar_line(const Progress *p, double elapsed, bool final, char *line, size_t size) {
    /* sized so that head + bar + tail always fits a LINE_MAX_CHARS line */
    char when[32], eta[32], rate_s[32], head[96], tail[384];
    double rate = elapsed > 0 ? (double)p->done / elapsed : 0;
    format_rate(rate, rate_s, sizeof rate_s);
    progress_format_duration(elapsed, when, sizeof when);
    bool known = p->total > 0;
    if (!final && known && rate > 0)
        progress_format_duration((double)(p->total - p->done) / rate, eta, sizeof eta);
    else
        snprintf(eta, sizeof eta, final ? "" : "--:--");
    const char *sep = p->extra[0] ? " " : "";
    if (known) {
        double frac = (double)p->done / (double)p->total;
        frac = frac < 0 ? 0 : frac > 1 ? 1 : frac;
        snprintf(head, sizeof head, "%s %3d%% [", p->label, (int)(100 * frac));
        snprintf(tail, sizeof tail, "] %lld/%lld %s%s%s %s%s%s", (long long)p->done,
                 (long long)p->total, when, final ? "" : "<", eta, rate_s, sep, p->extra);
        int room = p->columns - 1 - (int)strlen(head) - (int)strlen(tail);
        int width = room < BAR_MIN ? BAR_MIN : room > BAR_MAX ? BAR_MAX : room;
        int filled = (int)(frac * width);
        char bar[BAR_MAX + 1];
        for (int i = 0; i < width; i++)
            bar[i] = i < filled ? '=' : (i == filled && !final) ? '>' : ' ';
        bar[width] = '\0';
        snprintf(line, size, "%s%s%s", head, bar, tail);
    } else {
        snprintf(line, size, "%s %lld it %s %s%s%s", p->label, (long long)p->done, when, rate_s,
                 sep, p->extra);
    }
    int len = (int)strlen(line);
    if (len > p->columns - 1 && p->columns > 1) {
        len = p->columns - 1;
        line[len] = '\0';
    }
    return len;
}

static void draw_bar(Progress *p, double elapsed, bool final) {
    char line[LINE_MAX_CHARS];
    int len = bar_line(p, elapsed, final, line, sizeof line);
    /* blank what is left of a longer previous drawing */
    int pad = p->last_len > len ? p->last_len - len : 0;
    fprintf(p->out, "\r%s%*s%s", line, pad, "", final ? "\n" : "");
    fflush(p->out);
    p->last_len = len;
}

static void log_line(Progress *p, double elapsed, bool final) {
    char when[32], eta[32], rate_s[32], count[64];
    double rate = elapsed > 0 ? (double)p->done / elapsed : 0;
    format_rate(rate, rate_s, sizeof rate_s);
    progress_format_duration(elapsed, when, sizeof when);
    if (p->total > 0)
        snprintf(count, sizeof count, "%lld/%lld (%d%%)", (long long)p->done, (long long)p->total,
                 (int)(100.0 * (double)p->done / (double)p->total));
    else
        snprintf(count, sizeof count, "%lld", (long long)p->done);
    fprintf(p->out, "%s: %s, %s, %s %s", p->label, count, rate_s, final ? "done in" : "elapsed",
            when);
    if (!final && p->total > 0 && rate > 0) {
        progress_format_duration((double)(p->total - p->done) / rate, eta, sizeof eta);
        fprintf(p->out, ", ETA %s", eta);
    }
    fprintf(p->out, "%s%s\n", p->extra[0] ? ", " : "", p->extra);
    fflush(p->out);
}

void progress_update(Progress *p, int64_t done, const char *extra) {
    if (!p) return;
    p->done = done;
    if (extra) {
        /* keep one line: control characters (a '\n' or '\r' in a message) become spaces */
        snprintf(p->extra, sizeof p->extra, "%s", extra);
        for (char *c = p->extra; *c; c++)
            if ((unsigned char)*c < 0x20) *c = ' ';
    }
    if (!p->out) return;
    double now = now_seconds();
    if (now - p->last_draw < p->interval) return;
    p->last_draw = now;
    if (p->bar)
        draw_bar(p, now - p->start, false);
    else
        log_line(p, now - p->start, false);
}

void progress_finish(Progress *p) {
    if (!p) return;
    if (p->out) {
        double elapsed = now_seconds() - p->start;
        if (p->bar)
            draw_bar(p, elapsed, true);
        else
            log_line(p, elapsed, true);
    }
    free(p);
}
