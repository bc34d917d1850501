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

/* Appends s as a JSON string body (without quotes), escaped, to *buf.  Exposed for tests. */
dpb_status dpb_json_escape_append(char **buf, size_t *len, size_t *cap, const char *s, size_t n);

#endif
