/* Incremental Server-Sent Events parser (the text/event-stream format).
 * Bytes go in as they arrive, in any split; each complete event's data
 * (its "data:" lines joined with '\n') comes out through the callback.
 * Comments (":...") and other fields (event, id, retry) are skipped. */
#ifndef DPB_LOAD_SSE_H
#define DPB_LOAD_SSE_H

#include <stddef.h>
#include "core/status.h"

/* Return nonzero to stop parsing (dpb_sse_feed then returns DPB_E_INTERRUPTED). */
typedef int (*dpb_sse_event_fn)(void *ctx, const char *data, size_t len);

typedef struct dpb_sse {
    char *line;      /* the current, incomplete line */
    size_t llen, lcap;
    char *data;      /* the current event's data */
    size_t dlen, dcap;
    int has_data;
    int skip_lf;     /* the previous line ended with CR: a following LF belongs to it */
    size_t max_event; /* larger lines/events are malformed (default 4 MiB) */
} dpb_sse;

void dpb_sse_init(dpb_sse *p, size_t max_event);
void dpb_sse_reset(dpb_sse *p);  /* forget partial state, keep buffers */
void dpb_sse_free(dpb_sse *p);
/* DPB_E_FORMAT for an oversized line or event (naming the sizes). */
dpb_status dpb_sse_feed(dpb_sse *p, const char *buf, size_t len, dpb_sse_event_fn fn, void *ctx);
/* 1 if bytes of an unfinished event are buffered (a stream cut mid-event). */
int dpb_sse_pending(const dpb_sse *p);

#endif
