/* Error values for the whole library.
 *
 * Library functions never print and never abort. A failing function records a
 * one-line message in a thread-local slot and returns a non-OK status (or NULL
 * for functions that return objects). The message names the operation and the
 * shapes or file involved, e.g. "add: shapes [2,3] and [4] do not broadcast".
 * Only the command-line tool prints it. */
#ifndef HG_ERROR_H
#define HG_ERROR_H

typedef enum {
    HG_OK = 0,
    HG_ERR_ARG,         /* invalid argument or option */
    HG_ERR_SHAPE,       /* shapes do not match or do not broadcast */
    HG_ERR_DIM,         /* dimension index out of range */
    HG_ERR_NOMEM,       /* allocation failed */
    HG_ERR_IO,          /* file could not be opened, read or written */
    HG_ERR_FORMAT,      /* file content is corrupt or not in the expected format */
    HG_ERR_UNSUPPORTED, /* valid input that this build does not handle */
    HG_ERR_CHECK,       /* a numerical self-check failed */
} hg_status;

/* Records a printf-style message for `code` and returns `code`, so that a
 * failing function can `return hg_fail(HG_ERR_SHAPE, "...")`. */
hg_status hg_fail(hg_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The message and status of the most recent failure on this thread. */
const char *hg_last_error(void);
hg_status hg_last_status(void);
void hg_clear_error(void);

/* Human-readable name of a status code ("shape mismatch", ...). */
const char *hg_status_name(hg_status code);

#endif
