#include "tensor/error.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char last_message[512];
static _Thread_local hg_status last_status = HG_OK;

hg_status hg_fail(hg_status code, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    vsnprintf(last_message, sizeof last_message, fmt, args);
    va_end(args);
    last_status = code;
    return code;
}

const char *hg_last_error(void) {
    return last_status == HG_OK ? "no error" : last_message;
}

hg_status hg_last_status(void) {
    return last_status;
}

void hg_clear_error(void) {
    last_status = HG_OK;
    last_message[0] = '\0';
}

const char *hg_status_name(hg_status code) {
    switch (code) {
    case HG_OK: return "ok";
    case HG_ERR_ARG: return "invalid argument";
    case HG_ERR_SHAPE: return "shape mismatch";
    case HG_ERR_DIM: return "invalid dimension";
    case HG_ERR_NOMEM: return "out of memory";
    case HG_ERR_IO: return "i/o error";
    case HG_ERR_FORMAT: return "bad format";
    case HG_ERR_UNSUPPORTED: return "unsupported";
    case HG_ERR_CHECK: return "check failed";
    }
    return "unknown error";
}
