/* Plain JSON POSTs with a concurrency cap: libcurl's multi interface, the
 * whole reply kept (no streaming).  For clients that need answers, not
 * timings (deploybench eval --endpoint); the load generator (load.h) is the
 * one for measurements.
 *
 * Each request is retried on transport errors, 429 and 5xx (not on other
 * 4xx) with a doubling back-off, as lm-eval's API models do (3 attempts). */
#ifndef DPB_LOAD_POST_H
#define DPB_LOAD_POST_H

#include <stddef.h>
#include "core/status.h"

typedef struct dpb_post {
    /* in */
    const char *url;
    const char *body;  /* JSON, NUL-terminated */
    /* out */
    long status;       /* the last attempt's HTTP status; 0 when none came */
    char *reply;       /* the last attempt's body (owned, NUL-terminated; may be NULL) */
    size_t reply_len;
    char error[256];   /* transport error of the last attempt ("" when an HTTP status came) */
    int attempts;
} dpb_post;

typedef struct dpb_post_opts {
    int max_inflight;          /* requests in flight at once (>= 1) */
    int attempts;              /* tries per request (default 3) */
    double timeout_s;          /* per attempt (default 600) */
    double connect_timeout_s;  /* default 10 */
    double backoff_s;          /* first retry delay (default 0.5), doubled each retry */
    size_t max_reply;          /* a larger reply is a transport error (default 64 MiB) */
    const char *api_key;       /* NULL: no Authorization header */
} dpb_post_opts;

void dpb_post_opts_default(dpb_post_opts *o);

/* Runs the n requests.  Per-request failures stay in each dpb_post (status,
 * error); the return value is for setup errors and DPB_E_INTERRUPTED (Ctrl-C:
 * requests not finished have status 0 and error "interrupted"). */
dpb_status dpb_post_run(dpb_post *reqs, size_t n, const dpb_post_opts *o);

/* Frees the replies (the structs belong to the caller). */
void dpb_post_clear(dpb_post *reqs, size_t n);

/* One line describing a failed request for an error message: "HTTP 400:
 * <the server's error.message>" (OpenAI error bodies), "HTTP 500: <body
 * start>", or the transport error.  Writes into buf. */
const char *dpb_post_describe(const dpb_post *r, char *buf, size_t cap);

#endif
