#include "core/status.h"

#include <stdio.h>
#include <string.h>

#define DPB_ERR_CAP 1024
static _Thread_local char g_err[DPB_ERR_CAP];

dpb_status dpb_error_set(dpb_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
    return st;
}

dpb_status dpb_error_prefix(dpb_status st, const char *fmt, ...)
{
    char old[DPB_ERR_CAP];
    va_list ap;
    memcpy(old, g_err, sizeof old);
    va_start(ap, fmt);
    int n = vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    size_t k = (size_t)n < sizeof g_err ? (size_t)n : sizeof g_err - 1;
    const char *rest = old[0] ? old : dpb_status_name(st);
    if (k + 2 < sizeof g_err) {
        g_err[k++] = ':';
        g_err[k++] = ' ';
        size_t r = strlen(rest);
        if (r > sizeof g_err - 1 - k) r = sizeof g_err - 1 - k;
        memcpy(g_err + k, rest, r);
        g_err[k + r] = 0;
    }
    return st;
}

const char *dpb_error_message(void) { return g_err[0] ? g_err : "no error message"; }
void dpb_error_clear(void) { g_err[0] = 0; }

const char *dpb_status_name(dpb_status st)
{
    switch (st) {
    case DPB_OK: return "ok";
    case DPB_E_ARG: return "invalid argument";
    case DPB_E_IO: return "I/O error";
    case DPB_E_FORMAT: return "malformed input";
    case DPB_E_UNSUPPORTED: return "unsupported";
    case DPB_E_RANGE: return "value out of range";
    case DPB_E_NOMEM: return "out of memory";
    case DPB_E_UNAVAILABLE: return "unavailable";
    case DPB_E_INTERRUPTED: return "interrupted";
    case DPB_E_INTERNAL: return "internal error";
    }
    return "unknown status";
}

int dpb_status_exit_code(dpb_status st)
{
    switch (st) {
    case DPB_OK: return 0;
    case DPB_E_ARG: case DPB_E_IO: case DPB_E_FORMAT: case DPB_E_UNSUPPORTED: case DPB_E_RANGE:
        return 2;
    case DPB_E_INTERRUPTED: return 130;
    default: return 1;
    }
}
