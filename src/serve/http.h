/* The HTTP server layer: libmicrohttpd underneath, a small request/response
 * API on top that the OpenAI routes (src/serve/openai.c) and any engine
 * behind them use.
 *
 * Threading: one libmicrohttpd thread polling with epoll (or a pool of
 * `threads` such threads) accepts connections, reads requests and calls the
 * handler.  The handler answers synchronously, either with a whole response
 * (dpb_http_reply) or by starting a chunked stream (dpb_http_stream_start)
 * that any other thread (an engine's) then feeds with dpb_http_stream_write
 * and ends with dpb_http_stream_end.  While a stream has nothing to send its
 * connection is suspended (no polling, no busy loop); a write resumes it.
 *
 * A stream whose client went away makes dpb_http_stream_write return
 * DPB_E_IO, so an engine can free the request's slot at its next step. */
#ifndef DPB_SERVE_HTTP_H
#define DPB_SERVE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/status.h"

typedef struct dpb_http_server dpb_http_server;
typedef struct dpb_http_stream dpb_http_stream;
typedef struct dpb_http_conn dpb_http_conn;

typedef struct dpb_http_request {
    const char *method;  /* "GET", "POST", ... */
    const char *path;    /* the URL path, without the query string */
    const char *body;    /* NUL-terminated; "" when there is none */
    size_t body_len;
    dpb_http_conn *conn; /* for dpb_http_reply / dpb_http_stream_start */
} dpb_http_request;

/* Called on a server thread once the whole request (headers and body) is in.
 * It must call dpb_http_reply or dpb_http_stream_start exactly once before
 * returning; if it calls neither, the client gets a 500. */
typedef void (*dpb_http_handler)(void *ctx, const dpb_http_request *req);

typedef struct dpb_http_limits {
    size_t max_body_bytes;      /* larger bodies get 413; default 8 MiB */
    size_t max_header_bytes;    /* per-connection memory for headers; default 32 KiB (431/413 beyond) */
    unsigned max_connections;   /* default 16384 */
    unsigned idle_timeout_s;    /* an idle connection (slow headers) is closed after this; default 60 */
    unsigned read_timeout_s;    /* a request's headers and body must all be in within this many seconds of the
                                 * connection opening (or of its previous response ending), however slowly
                                 * they trickle in, else the connection is closed (slowloris); default 30, 0: none */
    unsigned threads;           /* 0 or 1: one epoll thread; N > 1: a pool of N */
} dpb_http_limits;

void dpb_http_limits_default(dpb_http_limits *l);

/* host: numeric IPv4 address ("127.0.0.1", "0.0.0.0"); port 0 picks a free port. */
dpb_status dpb_http_server_start(const char *host, uint16_t port, const dpb_http_limits *lim,
                                 dpb_http_handler handler, void *ctx, dpb_http_server **out);
uint16_t dpb_http_server_port(const dpb_http_server *s);
/* Ends every open stream, stops the threads and frees the server. */
void dpb_http_server_stop(dpb_http_server *s);

/* A whole response; body is copied. */
dpb_status dpb_http_reply(dpb_http_conn *c, unsigned status, const char *content_type, const char *body,
                          size_t len);
/* The same with extra headers: hdrs is NULL or pairs of name, value ended by a NULL name. */
dpb_status dpb_http_reply_hdrs(dpb_http_conn *c, unsigned status, const char *content_type,
                               const char *const *hdrs, const char *body, size_t len);
/* Starts a chunked response (for SSE: "text/event-stream").  The stream has
 * one reference for the caller, released by dpb_http_stream_end. */
dpb_status dpb_http_stream_start(dpb_http_conn *c, unsigned status, const char *content_type,
                                 dpb_http_stream **out);
/* Queues bytes (copied); thread-safe.  DPB_E_IO once the client is gone. */
dpb_status dpb_http_stream_write(dpb_http_stream *s, const void *data, size_t len);
/* True once the client closed the connection or the server is stopping. */
bool dpb_http_stream_gone(dpb_http_stream *s);
/* Ends the response after what was queued and drops the caller's reference. */
void dpb_http_stream_end(dpb_http_stream *s);

/* A deferred whole response: the handler returns without answering, the
 * connection is parked (no polling), and any thread answers later, exactly
 * once, with dpb_http_deferred_reply, whose status can then depend on how the
 * work went (200, or 500 for an engine failure).  The object is a
 * dpb_http_stream that takes no writes; dpb_http_stream_gone is true once the
 * server is stopping (a parked connection is not watched for the client
 * closing it).  When the server stops first, the client gets a 503. */
dpb_status dpb_http_defer(dpb_http_conn *c, dpb_http_stream **out);
/* Answers a deferred request (body copied) and drops the caller's reference. */
void dpb_http_deferred_reply(dpb_http_stream *s, unsigned status, const char *content_type, const char *body,
                             size_t len);

#endif
