/* deploybench: status codes and the per-thread error message.
 *
 * Every library function returns a dpb_status and writes results through
 * out-parameters.  On failure it records a one-line message (naming the file,
 * field, tensor or request at fault) with dpb_error_set(); callers add context
 * with dpb_error_prefix().  Only tools/ mains turn a status into an exit code.
 */
#ifndef DPB_STATUS_H
#define DPB_STATUS_H

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dpb_status {
    DPB_OK = 0,
    DPB_E_ARG,          /* bad command-line argument or API parameter */
    DPB_E_IO,           /* file or device I/O failed */
    DPB_E_FORMAT,       /* malformed input file or request */
    DPB_E_UNSUPPORTED,  /* well-formed but not supported (architecture, dtype) */
    DPB_E_RANGE,        /* a value outside its allowed range, or overflow */
    DPB_E_NOMEM,        /* allocation failed */
    DPB_E_UNAVAILABLE,  /* a measurement or backend that cannot be used here */
    DPB_E_INTERRUPTED,  /* stopped by a signal (Ctrl-C) */
    DPB_E_INTERNAL      /* a bug: an invariant did not hold */
} dpb_status;

/* Records a formatted message for this thread and returns st. */
dpb_status dpb_error_set(dpb_status st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prepends "context: " to the current message and returns st. */
dpb_status dpb_error_prefix(dpb_status st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
const char *dpb_error_message(void);
void dpb_error_clear(void);
const char *dpb_status_name(dpb_status st);
/* Process exit code for a status: 0 ok, 2 bad input/usage, 1 otherwise. */
int dpb_status_exit_code(dpb_status st);

#ifdef __cplusplus
}
#endif
#endif
