/* OpenAI-compatible routes over the HTTP layer, in the shapes vLLM documents:
 *   POST /v1/completions, POST /v1/chat/completions (stream and not; usage in
 *        the final chunk with stream_options.include_usage, and in every
 *        chunk with stream_options.continuous_usage_stats),
 *   GET /v1/models, GET /health.
 * Errors: {"error": {"message", "type", "param", "code"}} with 400/404/405/413/503/500. */
#ifndef DPB_SERVE_OPENAI_H
#define DPB_SERVE_OPENAI_H

#include <stdint.h>
#include "serve/engine.h"
#include "serve/http.h"

typedef struct dpb_openai_server dpb_openai_server;

/* Serves eng (not owned) on host:port. */
dpb_status dpb_openai_server_start(dpb_serve_engine *eng, const char *host, uint16_t port,
                                   const dpb_http_limits *lim, dpb_openai_server **out);
uint16_t dpb_openai_server_port(const dpb_openai_server *s);
/* Stops the HTTP layer (the engine is destroyed by its owner, before this). */
void dpb_openai_server_stop(dpb_openai_server *s);

/* A parsed, validated generation request.  g's pointers point into root
 * and ids, which the struct owns (dpb_openai_parsed_free). */
typedef struct dpb_openai_parsed {
    dpb_serve_request g;
    bool include_usage, continuous;
    cJSON *root;
    int64_t *ids;
    /* on failure: what the client gets */
    unsigned status;   /* 400 or 404 */
    const char *type;  /* "BadRequestError", "NotFoundError" */
    const char *param; /* the offending field, or NULL */
    char message[768];
} dpb_openai_parsed;

/* Parses and validates a /v1/completions (api = DPB_API_COMPLETIONS) or
 * /v1/chat/completions body the way vLLM's front end does.  On failure the
 * status is DPB_E_FORMAT (DPB_E_ARG for an unknown model) and out holds the
 * HTTP status, type, param and message; nothing is left to free. */
dpb_status dpb_openai_parse(dpb_api_kind api, const char *body, size_t len, const char *model_id,
                            uint64_t max_model_len, dpb_openai_parsed *out);
void dpb_openai_parsed_free(dpb_openai_parsed *p);

/* Growable NUL-terminated text buffers (*buf may start NULL with *len = *cap = 0). */
dpb_status dpb_serve_buf_append(char **buf, size_t *len, size_t *cap, const char *s, size_t n);
dpb_status dpb_serve_buf_appendf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Appends s as a JSON string body (without quotes), escaped, to *buf.  Exposed for tests. */
dpb_status dpb_json_escape_append(char **buf, size_t *len, size_t *cap, const char *s, size_t n);

#endif
