#include "serve/openai.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "core/json.h"

struct dpb_openai_server {
    dpb_serve_engine *eng;
    dpb_http_server *http;
    long created;
    atomic_uint_fast64_t next_id;
};

struct dpb_gen_job {
    pthread_mutex_t mu; /* held by the front end from submit until the stream is open */
    dpb_http_stream *st;
    dpb_api_kind api;
    bool stream, include_usage, continuous, finish_sent, failed, role_sent;
    char id[48];
    long created;
    const char *model;
    uint64_t prompt_tokens, completion_tokens;
    char *text; /* non-streaming: the whole output */
    size_t tlen, tcap;
    char *out; /* scratch for one chunk */
    size_t olen, ocap;
    char *reason; /* non-streaming chat: the reasoning text */
    size_t rlen, rcap;
    bool want_lp;
    /* logprobs not yet sent: completions keep four JSON array bodies
     * (tokens, token_logprobs, top_logprobs, text_offset), chat one (content) */
    char *lpa[4];
    size_t lpl[4], lpc[4];
    uint64_t text_off;
};

/* ---- small growable-buffer helpers ---- */

static dpb_status grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap) return DPB_OK;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    char *nb = realloc(*buf, c);
    if (!nb) return dpb_error_set(DPB_E_NOMEM, "response: out of memory (%zu bytes)", need);
    *buf = nb;
    *cap = c;
    return DPB_OK;
}

dpb_status dpb_serve_buf_append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (n >= SIZE_MAX / 2 - *len) return dpb_error_set(DPB_E_NOMEM, "response: %zu bytes is too long", n);
    dpb_status st = grow(buf, cap, *len + n + 1);
    if (st) return st;
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = 0;
    return DPB_OK;
}

dpb_status dpb_serve_buf_appendf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return dpb_error_set(DPB_E_INTERNAL, "response: format error");
    if ((size_t)n < sizeof tmp) return dpb_serve_buf_append(buf, len, cap, tmp, (size_t)n);
    dpb_status st = grow(buf, cap, *len + (size_t)n + 1);
    if (st) return st;
    va_start(ap, fmt);
    vsnprintf(*buf + *len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    *len += (size_t)n;
    return DPB_OK;
}

dpb_status dpb_json_escape_append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    dpb_status st = grow(buf, cap, *len + n * 6 + 1);
    if (st) return st;
    char *o = *buf + *len;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': *o++ = '\\'; *o++ = '"'; break;
        case '\\': *o++ = '\\'; *o++ = '\\'; break;
        case '\n': *o++ = '\\'; *o++ = 'n'; break;
        case '\r': *o++ = '\\'; *o++ = 'r'; break;
        case '\t': *o++ = '\\'; *o++ = 't'; break;
        default:
            if (c < 0x20) o += sprintf(o, "\\u%04x", c);
            else *o++ = (char)c;
        }
    }
    *len = (size_t)(o - *buf);
    (*buf)[*len] = 0;
    return DPB_OK;
}

/* ---- errors ---- */

/* {"error": {"message", "type", "param", "code"}} into a malloc'd buffer (NULL when out of memory). */
static char *error_json(unsigned status, const char *type, const char *param, const char *msg, size_t *len)
{
    char *b = NULL;
    size_t cap = 0;
    *len = 0;
    dpb_status st = dpb_serve_buf_appendf(&b, len, &cap, "{\"error\":{\"message\":\"");
    if (!st) st = dpb_json_escape_append(&b, len, &cap, msg, strlen(msg));
    if (!st && param)
        st = dpb_serve_buf_appendf(&b, len, &cap, "\",\"type\":\"%s\",\"param\":\"%s\",\"code\":%u}}", type, param, status);
    else if (!st) st = dpb_serve_buf_appendf(&b, len, &cap, "\",\"type\":\"%s\",\"param\":null,\"code\":%u}}", type, status);
    if (st) {
        free(b);
        return NULL;
    }
    return b;
}

static void reply_error_hdrs(dpb_http_conn *c, unsigned status, const char *type, const char *param,
                             const char *const *hdrs, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void reply_error_hdrs(dpb_http_conn *c, unsigned status, const char *type, const char *param,
                             const char *const *hdrs, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t len;
    char *b = error_json(status, type, param, msg, &len);
    if (b) dpb_http_reply_hdrs(c, status, "application/json", hdrs, b, len);
    else dpb_http_reply(c, 500, "text/plain", "out of memory", 13);
    free(b);
}

#define reply_error(c, status, type, param, ...) reply_error_hdrs(c, status, type, param, NULL, __VA_ARGS__)

/* ---- job output ---- */

void dpb_gen_set_prompt_tokens(dpb_gen_job *job, uint64_t n) { job->prompt_tokens = n; }

static dpb_status usage_json(dpb_gen_job *j)
{
    return dpb_serve_buf_appendf(&j->out, &j->olen, &j->ocap,
                   "{\"prompt_tokens\":%llu,\"total_tokens\":%llu,\"completion_tokens\":%llu}",
                   (unsigned long long)j->prompt_tokens,
                   (unsigned long long)(j->prompt_tokens + j->completion_tokens),
                   (unsigned long long)j->completion_tokens);
}

static dpb_status chunk_head(dpb_gen_job *j)
{
    j->olen = 0;
    if (j->api == DPB_API_CHAT)
        return dpb_serve_buf_appendf(&j->out, &j->olen, &j->ocap,
                       "data: {\"id\":\"chatcmpl-%s\",\"object\":\"chat.completion.chunk\",\"created\":%ld,"
                       "\"model\":\"%s\",\"choices\":[",
                       j->id, j->created, j->model);
    return dpb_serve_buf_appendf(&j->out, &j->olen, &j->ocap,
                   "data: {\"id\":\"cmpl-%s\",\"object\":\"text_completion\",\"created\":%ld,\"model\":\"%s\","
                   "\"choices\":[",
                   j->id, j->created, j->model);
}

/* Appends the pending logprobs object (or null) to the chunk/body and clears it. */
static dpb_status logprobs_json(dpb_gen_job *j)
{
    if (!j->want_lp) return dpb_serve_buf_appendf(&j->out, &j->olen, &j->ocap, "null");
    dpb_status st;
    if (j->api == DPB_API_CHAT) {
        st = dpb_serve_buf_appendf(&j->out, &j->olen, &j->ocap, "{\"content\":[%s]}", j->lpa[0] ? j->lpa[0] : "");
    } else {
        st = dpb_serve_buf_appendf(&j->out, &j->olen, &j->ocap, "{\"tokens\":[%s],\"token_logprobs\":[%s],\"top_logprobs\":[%s],"
                     "\"text_offset\":[%s]}", j->lpa[0] ? j->lpa[0] : "", j->lpa[1] ? j->lpa[1] : "",
                     j->lpa[2] ? j->lpa[2] : "", j->lpa[3] ? j->lpa[3] : "");
    }
    for (int i = 0; i < 4; i++) {
        j->lpl[i] = 0;
        if (j->lpa[i]) j->lpa[i][0] = 0;
    }
    return st;
}

/* One streamed chunk carrying text (maybe empty) and maybe a finish reason;
 * reasoning: the text is chat reasoning_content. */
static dpb_status send_chunk_r(dpb_gen_job *j, const char *text, size_t len, const char *finish, bool role,
                               bool reasoning)
{
    dpb_status st = chunk_head(j);
    if (j->api == DPB_API_CHAT) {
        if (!st) st = dpb_serve_buf_appendf(&j->out, &j->olen, &j->ocap, "{\"index\":0,\"delta\":{%s\"%s\":\"",
                              role ? "\"role\":\"assistant\"," : "", reasoning ? "reasoning_content" : "content");
        if (!st) st = dpb_json_escape_append(&j->out, &j->olen, &j->ocap, text, len);
        if (!st) st = dpb_serve_buf_appendf(&j->out, &j->olen, &j->ocap, "\"},\"logprobs\":");
        if (!st) st = logprobs_json(j);
        if (!st) st = dpb_serve_buf_appendf(&j->out, &j->olen, &j->ocap, ",\"finish_reason\":");
    } else {
        if (!st) st = dpb_serve_buf_appendf(&j->out, &j->olen, &j->ocap, "{\"index\":0,\"text\":\"");
        if (!st) st = dpb_json_escape_append(&j->out, &j->olen, &j->ocap, text, len);
        if (!st) st = dpb_serve_buf_appendf(&j->out, &j->olen, &j->ocap, "\",\"logprobs\":");
        if (!st) st = logprobs_json(j);
        if (!st) st = dpb_serve_buf_appendf(&j->out, &j->olen, &j->ocap, ",\"finish_reason\":");
    }
    if (!st) {
        if (finish) st = dpb_serve_buf_appendf(&j->out, &j->olen, &j->ocap, "\"%s\"", finish);
        else st = dpb_serve_buf_appendf(&j->out, &j->olen, &j->ocap, "null");
    }
    if (!st && j->api == DPB_API_COMPLETIONS) st = dpb_serve_buf_appendf(&j->out, &j->olen, &j->ocap, ",\"stop_reason\":null");
    if (!st) st = dpb_serve_buf_appendf(&j->out, &j->olen, &j->ocap, "}]");
    if (!st && j->include_usage) {
        if (j->continuous) {
            st = dpb_serve_buf_appendf(&j->out, &j->olen, &j->ocap, ",\"usage\":");
            if (!st) st = usage_json(j);
        } else st = dpb_serve_buf_appendf(&j->out, &j->olen, &j->ocap, ",\"usage\":null");
    }
    if (!st) st = dpb_serve_buf_appendf(&j->out, &j->olen, &j->ocap, "}\n\n");
    if (!st) st = dpb_http_stream_write(j->st, j->out, j->olen);
    return st;
}

static dpb_status send_chunk(dpb_gen_job *j, const char *text, size_t len, const char *finish, bool role)
{
    return send_chunk_r(j, text, len, finish, role, false);
}

static dpb_status emit_locked(dpb_gen_job *j, const char *text, size_t len, uint32_t n_tokens, const char *finish)
{
    if (j->failed) return dpb_error_set(DPB_E_IO, "request %s: the client closed the connection", j->id);
    if (finish) j->finish_sent = true;
    if (!j->stream) {
        j->completion_tokens += n_tokens;
        dpb_status st = dpb_serve_buf_append(&j->text, &j->tlen, &j->tcap, text, len);
        if (!st && dpb_http_stream_gone(j->st)) st = DPB_E_IO;
        if (st) j->failed = true;
        return st;
    }
    dpb_status st = DPB_OK;
    /* chat: the role chunk goes out with the first tokens, as vLLM sends it */
    if (j->api == DPB_API_CHAT && !j->role_sent) {
        j->role_sent = true;
        st = send_chunk(j, "", 0, NULL, true); /* its usage, if any, counts no token yet */
    }
    j->completion_tokens += n_tokens;
    if (!st) st = send_chunk(j, text, len, finish, false);
    if (st) j->failed = true;
    return st;
}

bool dpb_gen_gone(dpb_gen_job *j)
{
    pthread_mutex_lock(&j->mu);
    bool gone = j->failed || (j->st && dpb_http_stream_gone(j->st));
    pthread_mutex_unlock(&j->mu);
    return gone;
}

dpb_status dpb_gen_emit_reasoning(dpb_gen_job *j, const char *text, size_t len, uint32_t n_tokens)
{
    pthread_mutex_lock(&j->mu);
    dpb_status st = DPB_OK;
    if (j->failed) st = dpb_error_set(DPB_E_IO, "request %s: the client closed the connection", j->id);
    else if (!j->stream) {
        j->completion_tokens += n_tokens;
        st = dpb_serve_buf_append(&j->reason, &j->rlen, &j->rcap, text, len);
        if (!st && dpb_http_stream_gone(j->st)) st = DPB_E_IO;
    } else {
        if (j->api == DPB_API_CHAT && !j->role_sent) {
            j->role_sent = true;
            st = send_chunk(j, "", 0, NULL, true);
        }
        j->completion_tokens += n_tokens;
        if (!st) st = send_chunk_r(j, text, len, NULL, false, j->api == DPB_API_CHAT);
    }
    if (st) j->failed = true;
    pthread_mutex_unlock(&j->mu);
    return st;
}

/* A JSON number for a logprob (-9999.0 for -inf, as vLLM clamps it). */
static double lp_clamp(double lp) { return lp < -9999.0 || lp != lp ? -9999.0 : lp; }

static dpb_status lp_sep(dpb_gen_job *j, int k)
{
    return j->lpl[k] ? dpb_serve_buf_append(&j->lpa[k], &j->lpl[k], &j->lpc[k], ",", 1) : DPB_OK;
}

/* chat: {"token","logprob","bytes":[...]} */
static dpb_status chat_lp_item(dpb_gen_job *j, const char *tok, size_t len, double lp)
{
    dpb_status st = dpb_serve_buf_append(&j->lpa[0], &j->lpl[0], &j->lpc[0], "{\"token\":\"", 10);
    if (!st) st = dpb_json_escape_append(&j->lpa[0], &j->lpl[0], &j->lpc[0], tok, len);
    if (!st) st = dpb_serve_buf_appendf(&j->lpa[0], &j->lpl[0], &j->lpc[0], "\",\"logprob\":%.9g,\"bytes\":[", lp_clamp(lp));
    for (size_t i = 0; !st && i < len; i++)
        st = dpb_serve_buf_appendf(&j->lpa[0], &j->lpl[0], &j->lpc[0], i ? ",%u" : "%u", (unsigned)(unsigned char)tok[i]);
    if (!st) st = dpb_serve_buf_append(&j->lpa[0], &j->lpl[0], &j->lpc[0], "]", 1);
    return st;
}

dpb_status dpb_gen_add_logprob(dpb_gen_job *j, const char *tok, size_t len, bool has_lp, double lp,
                               const dpb_gen_top *top, int n_top)
{
    pthread_mutex_lock(&j->mu);
    dpb_status st = DPB_OK;
    if (!j->want_lp || j->failed) goto out;
    if (j->api == DPB_API_CHAT) {
        st = lp_sep(j, 0);
        if (!st) st = chat_lp_item(j, tok, len, lp);
        if (!st) st = dpb_serve_buf_append(&j->lpa[0], &j->lpl[0], &j->lpc[0], ",\"top_logprobs\":[", 17);
        for (int i = 0; !st && i < n_top; i++) {
            if (i) st = dpb_serve_buf_append(&j->lpa[0], &j->lpl[0], &j->lpc[0], ",", 1);
            if (!st) st = chat_lp_item(j, top[i].text, top[i].len, top[i].lp);
            if (!st) st = dpb_serve_buf_append(&j->lpa[0], &j->lpl[0], &j->lpc[0], "}", 1);
        }
        if (!st) st = dpb_serve_buf_append(&j->lpa[0], &j->lpl[0], &j->lpc[0], "]}", 2);
    } else {
        for (int k = 0; !st && k < 4; k++) st = lp_sep(j, k);
        if (!st) st = dpb_serve_buf_append(&j->lpa[0], &j->lpl[0], &j->lpc[0], "\"", 1);
        if (!st) st = dpb_json_escape_append(&j->lpa[0], &j->lpl[0], &j->lpc[0], tok, len);
        if (!st) st = dpb_serve_buf_append(&j->lpa[0], &j->lpl[0], &j->lpc[0], "\"", 1);
        if (!st) {
            if (has_lp) st = dpb_serve_buf_appendf(&j->lpa[1], &j->lpl[1], &j->lpc[1], "%.9g", lp_clamp(lp));
            else st = dpb_serve_buf_append(&j->lpa[1], &j->lpl[1], &j->lpc[1], "null", 4);
        }
        if (!st) {
            if (!has_lp) st = dpb_serve_buf_append(&j->lpa[2], &j->lpl[2], &j->lpc[2], "null", 4);
            else {
                st = dpb_serve_buf_append(&j->lpa[2], &j->lpl[2], &j->lpc[2], "{", 1);
                for (int i = 0; !st && i < n_top; i++) {
                    if (i) st = dpb_serve_buf_append(&j->lpa[2], &j->lpl[2], &j->lpc[2], ",", 1);
                    if (!st) st = dpb_serve_buf_append(&j->lpa[2], &j->lpl[2], &j->lpc[2], "\"", 1);
                    if (!st) st = dpb_json_escape_append(&j->lpa[2], &j->lpl[2], &j->lpc[2], top[i].text, top[i].len);
                    if (!st) st = dpb_serve_buf_appendf(&j->lpa[2], &j->lpl[2], &j->lpc[2], "\":%.9g", lp_clamp(top[i].lp));
                }
                if (!st) st = dpb_serve_buf_append(&j->lpa[2], &j->lpl[2], &j->lpc[2], "}", 1);
            }
        }
        if (!st) st = dpb_serve_buf_appendf(&j->lpa[3], &j->lpl[3], &j->lpc[3], "%llu", (unsigned long long)j->text_off);
        j->text_off += len;
    }
    if (st) j->failed = true;
out:
    pthread_mutex_unlock(&j->mu);
    return st;
}

dpb_status dpb_gen_emit(dpb_gen_job *j, const char *text, size_t len, uint32_t n_tokens, const char *finish)
{
    pthread_mutex_lock(&j->mu);
    dpb_status st = emit_locked(j, text, len, n_tokens, finish);
    pthread_mutex_unlock(&j->mu);
    return st;
}

static const char *final_reason(const char *r) { return r && strcmp(r, "abort") != 0 ? r : "abort"; }

static void job_unlock_free(dpb_gen_job *j);

void dpb_gen_finish(dpb_gen_job *j, const char *finish)
{
    pthread_mutex_lock(&j->mu);
    if (!j->failed) {
        dpb_status st = DPB_OK;
        if (j->stream) {
            if (j->api == DPB_API_CHAT && !j->role_sent) {
                j->role_sent = true;
                st = send_chunk(j, "", 0, NULL, true);
            }
            if (!st && !j->finish_sent) st = send_chunk(j, "", 0, final_reason(finish), false);
            if (!st && j->include_usage) {
                st = chunk_head(j);
                if (!st) st = dpb_serve_buf_appendf(&j->out, &j->olen, &j->ocap, "],\"usage\":");
                if (!st) st = usage_json(j);
                if (!st) st = dpb_serve_buf_appendf(&j->out, &j->olen, &j->ocap, "}\n\n");
                if (!st) st = dpb_http_stream_write(j->st, j->out, j->olen);
            }
            if (!st) dpb_http_stream_write(j->st, "data: [DONE]\n\n", 14);
        } else {
            const char *fr = final_reason(finish);
            j->olen = 0;
            if (j->api == DPB_API_CHAT) {
                st = dpb_serve_buf_appendf(&j->out, &j->olen, &j->ocap,
                             "{\"id\":\"chatcmpl-%s\",\"object\":\"chat.completion\",\"created\":%ld,\"model\":\"%s\","
                             "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"",
                             j->id, j->created, j->model);
                if (!st) st = dpb_json_escape_append(&j->out, &j->olen, &j->ocap, j->text ? j->text : "", j->tlen);
                if (!st && j->reason) {
                    st = dpb_serve_buf_appendf(&j->out, &j->olen, &j->ocap, "\",\"reasoning_content\":\"");
                    if (!st) st = dpb_json_escape_append(&j->out, &j->olen, &j->ocap, j->reason, j->rlen);
                }
                if (!st) st = dpb_serve_buf_appendf(&j->out, &j->olen, &j->ocap, "\"},\"logprobs\":");
                if (!st) st = logprobs_json(j);
                if (!st) st = dpb_serve_buf_appendf(&j->out, &j->olen, &j->ocap, ",\"finish_reason\":\"%s\"}],\"usage\":", fr);
            } else {
                st = dpb_serve_buf_appendf(&j->out, &j->olen, &j->ocap,
                             "{\"id\":\"cmpl-%s\",\"object\":\"text_completion\",\"created\":%ld,\"model\":\"%s\","
                             "\"choices\":[{\"index\":0,\"text\":\"",
                             j->id, j->created, j->model);
                if (!st) st = dpb_json_escape_append(&j->out, &j->olen, &j->ocap, j->text ? j->text : "", j->tlen);
                if (!st) st = dpb_serve_buf_appendf(&j->out, &j->olen, &j->ocap, "\",\"logprobs\":");
                if (!st) st = logprobs_json(j);
                if (!st) st = dpb_serve_buf_appendf(&j->out, &j->olen, &j->ocap,
                                      ",\"finish_reason\":\"%s\",\"stop_reason\":null}],\"usage\":", fr);
            }
            if (!st) st = usage_json(j);
            if (!st) st = dpb_serve_buf_appendf(&j->out, &j->olen, &j->ocap, "}");
            if (!st) {
                dpb_http_deferred_reply(j->st, 200, "application/json", j->out, j->olen);
                j->st = NULL;
            }
        }
    }
    if (j->st) dpb_http_stream_end(j->st); /* a deferred one without an answer gets a 500 */
    job_unlock_free(j);
}

void dpb_gen_fail(dpb_gen_job *j, const char *message)
{
    pthread_mutex_lock(&j->mu);
    size_t len;
    char *b = error_json(500, "InternalServerError", NULL, message, &len);
    if (!j->failed && j->st && b) {
        if (j->stream) { /* the status went out with the headers: an error event, then [DONE] (as vLLM) */
            j->olen = 0;
            if (!dpb_serve_buf_append(&j->out, &j->olen, &j->ocap, "data: ", 6) &&
                !dpb_serve_buf_append(&j->out, &j->olen, &j->ocap, b, len) &&
                !dpb_serve_buf_append(&j->out, &j->olen, &j->ocap, "\n\ndata: [DONE]\n\n", 16))
                dpb_http_stream_write(j->st, j->out, j->olen);
        } else {
            dpb_http_deferred_reply(j->st, 500, "application/json", b, len);
            j->st = NULL;
        }
    }
    free(b);
    if (j->st) dpb_http_stream_end(j->st);
    job_unlock_free(j);
}

static void job_unlock_free(dpb_gen_job *j)
{
    pthread_mutex_unlock(&j->mu);
    pthread_mutex_destroy(&j->mu);
    free(j->text);
    free(j->out);
    free(j->reason);
    for (int i = 0; i < 4; i++) free(j->lpa[i]);
    free(j);
}

/* ---- request parsing ---- */

static bool get_bool(const cJSON *o, const char *k, bool def, bool *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v || cJSON_IsNull(v)) { *out = def; return true; }
    if (!cJSON_IsBool(v)) return false;
    *out = cJSON_IsTrue(v);
    return true;
}

#define FAIL(code, typ, prm, ...)                                                                  \
    do {                                                                                           \
        out->status = (code);                                                                      \
        out->type = (typ);                                                                         \
        out->param = (prm);                                                                        \
        snprintf(out->message, sizeof out->message, __VA_ARGS__);                                  \
        goto fail;                                                                                 \
    } while (0)

dpb_status dpb_openai_parse(dpb_api_kind api, const char *body, size_t len, const char *model_id,
                            uint64_t max_model_len, dpb_openai_parsed *out)
{
    memset(out, 0, sizeof *out);
    cJSON *root = NULL;
    int64_t *ids = NULL;
    if (dpb_json_parse(body, len, "request body", &root) != DPB_OK) {
        FAIL(400, "BadRequestError", NULL, "%s", dpb_error_message());
    }
    if (!cJSON_IsObject(root)) {
        FAIL(400, "BadRequestError", NULL, "request body: expected a JSON object");
    }
    dpb_serve_request g;
    memset(&g, 0, sizeof g);
    g.api = api;
    out->root = root;
    g.temperature = 1.0;
    g.top_p = 1.0;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (model && !cJSON_IsNull(model)) {
        if (!cJSON_IsString(model)) {
            FAIL(400, "BadRequestError", "model", "request body: model: expected a string");
        }
        if (strcmp(model->valuestring, model_id) != 0) {
            FAIL(404, "NotFoundError", "model", "The model `%.200s` does not exist.", model->valuestring);
        }
    }
    const char *mt_key = "max_tokens";
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "max_tokens");
    if ((!mt || cJSON_IsNull(mt)) && api == DPB_API_CHAT) {
        mt = cJSON_GetObjectItemCaseSensitive(root, "max_completion_tokens");
        mt_key = "max_completion_tokens";
    }
    if (mt && !cJSON_IsNull(mt)) {
        int64_t v;
        if (dpb_json_item_int(mt, "request body", mt_key, 1, (int64_t)max_model_len, &v) != DPB_OK) {
            FAIL(400, "BadRequestError", mt_key, "%s", dpb_error_message());
        }
        g.max_tokens = (uint64_t)v;
    }
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(root, "n");
    if (n && !cJSON_IsNull(n) && !(cJSON_IsNumber(n) && n->valuedouble == 1.0)) {
        FAIL(400, "BadRequestError", "n", "request body: n: only n=1 is supported");
    }
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "temperature");
    if (t && !cJSON_IsNull(t)) {
        if (!cJSON_IsNumber(t) || t->valuedouble < 0 || t->valuedouble > 100) {
            FAIL(400, "BadRequestError", "temperature", "request body: temperature: expected a number >= 0");
        }
        g.temperature = t->valuedouble;
    }
    const cJSON *tp = cJSON_GetObjectItemCaseSensitive(root, "top_p");
    if (tp && !cJSON_IsNull(tp)) {
        if (!cJSON_IsNumber(tp) || !(tp->valuedouble > 0 && tp->valuedouble <= 1)) {
            FAIL(400, "BadRequestError", "top_p", "request body: top_p: expected a number in (0, 1]");
        }
        g.top_p = tp->valuedouble;
    }
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(root, "seed");
    if (seed && !cJSON_IsNull(seed)) {
        if (dpb_json_item_int(seed, "request body", "seed", INT64_MIN / 2, INT64_MAX / 2, &g.seed) != DPB_OK) {
            FAIL(400, "BadRequestError", "seed", "%s", dpb_error_message());
        }
        g.has_seed = true;
    }
    bool include_usage = false, continuous = false;
    if (!get_bool(root, "stream", false, &g.stream) || !get_bool(root, "ignore_eos", false, &g.ignore_eos)) {
        FAIL(400, "BadRequestError", NULL, "request body: stream and ignore_eos must be booleans");
    }
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
    if (so && !cJSON_IsNull(so)) {
        if (!g.stream) {
            FAIL(400, "BadRequestError", "stream_options",
                        "Stream options can only be defined when `stream=True`.");
        }
        if (!cJSON_IsObject(so) || !get_bool(so, "include_usage", false, &include_usage) ||
            !get_bool(so, "continuous_usage_stats", false, &continuous)) {
            FAIL(400, "BadRequestError", "stream_options",
                        "request body: stream_options: expected {include_usage: bool, continuous_usage_stats: bool}");
        }
    }
    const cJSON *stop = cJSON_GetObjectItemCaseSensitive(root, "stop");
    if (stop && !cJSON_IsNull(stop)) {
        if (cJSON_IsString(stop)) {
            if (stop->valuestring[0]) {
                g.stop[0] = stop->valuestring;
                g.stop_len[0] = strlen(stop->valuestring);
                g.n_stop = 1;
            }
        } else if (cJSON_IsArray(stop) && cJSON_GetArraySize(stop) <= DPB_SERVE_MAX_STOP) {
            const cJSON *e;
            cJSON_ArrayForEach(e, stop)
            {
                if (!cJSON_IsString(e)) {
                    FAIL(400, "BadRequestError", "stop", "request body: stop: expected strings");
                }
                if (!e->valuestring[0]) continue;
                g.stop[g.n_stop] = e->valuestring;
                g.stop_len[g.n_stop++] = strlen(e->valuestring);
            }
        } else {
            FAIL(400, "BadRequestError", "stop", "request body: stop: expected a string or an array of at most %d strings",
                 DPB_SERVE_MAX_STOP);
        }
    }
    g.logprobs = -1;
    const cJSON *lp = cJSON_GetObjectItemCaseSensitive(root, "logprobs");
    if (api == DPB_API_COMPLETIONS) {
        if (lp && !cJSON_IsNull(lp)) {
            int64_t v;
            if (dpb_json_item_int(lp, "request body", "logprobs", 0, DPB_SERVE_MAX_LOGPROBS, &v) != DPB_OK) {
                FAIL(400, "BadRequestError", "logprobs", "%s", dpb_error_message());
            }
            g.logprobs = (int)v;
        }
        if (!get_bool(root, "echo", false, &g.echo)) {
            FAIL(400, "BadRequestError", "echo", "request body: echo: expected a boolean");
        }
    } else {
        bool want = false;
        if (!get_bool(root, "logprobs", false, &want)) {
            FAIL(400, "BadRequestError", "logprobs", "request body: logprobs: expected a boolean");
        }
        const cJSON *tl = cJSON_GetObjectItemCaseSensitive(root, "top_logprobs");
        int64_t v = 0;
        if (tl && !cJSON_IsNull(tl) &&
            dpb_json_item_int(tl, "request body", "top_logprobs", 0, DPB_SERVE_MAX_LOGPROBS, &v) != DPB_OK) {
            FAIL(400, "BadRequestError", "top_logprobs", "%s", dpb_error_message());
        }
        if (want) g.logprobs = (int)v;
    }
    if (api == DPB_API_COMPLETIONS) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "prompt");
        if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1 && cJSON_IsString(cJSON_GetArrayItem(p, 0)))
            p = cJSON_GetArrayItem(p, 0);
        if (cJSON_IsString(p)) g.prompt = p->valuestring;
        else if (cJSON_IsArray(p) && cJSON_GetArraySize(p) > 0) {
            size_t cnt = (size_t)cJSON_GetArraySize(p);
            if (cnt > max_model_len) {
                FAIL(400, "BadRequestError", "prompt",
                            "request body: prompt: %zu tokens is more than the model's context of %llu", cnt,
                            (unsigned long long)max_model_len);
            }
            ids = malloc(cnt * sizeof *ids);
            if (!ids) {
                FAIL(500, "InternalServerError", NULL, "out of memory");
            }
            size_t i = 0;
            const cJSON *e;
            cJSON_ArrayForEach(e, p)
            {
                if (dpb_json_item_int(e, "request body", "prompt[]", 0, INT32_MAX, &ids[i]) != DPB_OK) {
                    FAIL(400, "BadRequestError", "prompt", "%s", dpb_error_message());
                }
                i++;
            }
            g.prompt_ids = ids;
            g.n_prompt_ids = cnt;
        } else {
            FAIL(400, "BadRequestError", "prompt",
                        "request body: prompt: expected a string or a non-empty array of token ids");
        }
    } else {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "messages");
        if (!cJSON_IsArray(m) || cJSON_GetArraySize(m) == 0) {
            FAIL(400, "BadRequestError", "messages", "request body: messages: expected a non-empty array");
        }
        const cJSON *e;
        cJSON_ArrayForEach(e, m)
        {
            const cJSON *role = cJSON_GetObjectItemCaseSensitive(e, "role");
            const cJSON *content = cJSON_GetObjectItemCaseSensitive(e, "content");
            if (!cJSON_IsObject(e) || !cJSON_IsString(role) ||
                !(cJSON_IsString(content) || cJSON_IsArray(content) || cJSON_IsNull(content))) {
                FAIL(400, "BadRequestError", "messages",
                            "request body: messages: each message needs a string role and a content");
            }
        }
        g.messages = m;
    }
    out->g = g;
    out->ids = ids;
    out->include_usage = include_usage;
    out->continuous = include_usage && continuous;
    return DPB_OK;
fail:
    free(ids);
    cJSON_Delete(root);
    out->root = NULL;
    out->ids = NULL;
    return dpb_error_set(out->status == 404 ? DPB_E_ARG : DPB_E_FORMAT, "request body: %s", out->message);
}
#undef FAIL

void dpb_openai_parsed_free(dpb_openai_parsed *p)
{
    cJSON_Delete(p->root);
    free(p->ids);
    p->root = NULL;
    p->ids = NULL;
}

static void handle_generate(dpb_openai_server *s, const dpb_http_request *rq, dpb_api_kind api)
{
    dpb_http_conn *c = rq->conn;
    dpb_gen_job *job = NULL;
    dpb_openai_parsed P;
    if (dpb_openai_parse(api, rq->body, rq->body_len, s->eng->model_id, s->eng->max_model_len, &P) != DPB_OK) {
        reply_error(c, P.status, P.type, P.param, "%s", P.message);
        return;
    }
    const dpb_serve_request g = P.g;
    bool include_usage = P.include_usage, continuous = P.continuous;

    job = calloc(1, sizeof *job);
    if (!job) {
        reply_error(c, 500, "InternalServerError", NULL, "out of memory");
        goto out;
    }
    job->api = api;
    job->stream = g.stream;
    job->include_usage = include_usage;
    job->continuous = include_usage && continuous;
    job->created = s->created;
    job->model = s->eng->model_id;
    job->want_lp = g.logprobs >= 0;
    snprintf(job->id, sizeof job->id, "%016llx", (unsigned long long)atomic_fetch_add(&s->next_id, 1));
    /* The job lock is held across submit and opening the stream, so an engine
     * thread that emits at once waits for the stream, and a refused request
     * still gets its own status code. */
    pthread_mutex_init(&job->mu, NULL);
    pthread_mutex_lock(&job->mu);
    dpb_status st = s->eng->submit(s->eng->ctx, &g, job);
    if (st != DPB_OK) {
        pthread_mutex_unlock(&job->mu);
        pthread_mutex_destroy(&job->mu);
        free(job);
        job = NULL;
        if (st == DPB_E_UNAVAILABLE) {
            /* queue full: 503, as vLLM's admission limits and SGLang's max_queued_requests */
            static const char *const retry[] = {"Retry-After", "1", NULL};
            reply_error_hdrs(c, 503, "ServiceUnavailableError", NULL, retry, "%s", dpb_error_message());
        }
        else if (st == DPB_E_ARG || st == DPB_E_RANGE)
            reply_error(c, 400, "BadRequestError", NULL, "%s", dpb_error_message());
        else reply_error(c, 500, "InternalServerError", NULL, "%s", dpb_error_message());
        goto out;
    }
    /* A stream's status goes out now (its first bytes may take a while); a
     * whole response waits for the outcome: 200, or 500 when the engine fails. */
    dpb_status ss = g.stream ? dpb_http_stream_start(c, 200, "text/event-stream", &job->st) : dpb_http_defer(c, &job->st);
    if (ss != DPB_OK) {
        /* The engine owns the job now: it learns of the failure at its next emit. */
        job->failed = true;
        reply_error(c, 500, "InternalServerError", NULL, "%s", dpb_error_message());
    }
    pthread_mutex_unlock(&job->mu);
out:
    dpb_openai_parsed_free(&P);
}

static void handler(void *ctx, const dpb_http_request *rq)
{
    dpb_openai_server *s = ctx;
    bool get = strcmp(rq->method, "GET") == 0, post = strcmp(rq->method, "POST") == 0;
    if (strcmp(rq->path, "/health") == 0) {
        if (!get) reply_error(rq->conn, 405, "MethodNotAllowed", NULL, "use GET for /health");
        else dpb_http_reply(rq->conn, 200, NULL, "", 0);
        return;
    }
    if (strcmp(rq->path, "/metrics") == 0 && s->eng->metrics) {
        if (!get) {
            reply_error(rq->conn, 405, "MethodNotAllowed", NULL, "use GET for /metrics");
            return;
        }
        char *b = NULL;
        size_t len = 0;
        if (s->eng->metrics(s->eng->ctx, &b, &len) != DPB_OK)
            reply_error(rq->conn, 500, "InternalServerError", NULL, "%s", dpb_error_message());
        else dpb_http_reply(rq->conn, 200, "text/plain; version=0.0.4", b, len);
        free(b);
        return;
    }
    if (strcmp(rq->path, "/v1/models") == 0) {
        if (!get) {
            reply_error(rq->conn, 405, "MethodNotAllowed", NULL, "use GET for /v1/models");
            return;
        }
        char b[1024];
        int len = snprintf(b, sizeof b,
                           "{\"object\":\"list\",\"data\":[{\"id\":\"%s\",\"object\":\"model\",\"created\":%ld,"
                           "\"owned_by\":\"deploybench\",\"root\":\"%s\",\"parent\":null,\"max_model_len\":%llu}]}",
                           s->eng->model_id, s->created, s->eng->model_id,
                           (unsigned long long)s->eng->max_model_len);
        dpb_http_reply(rq->conn, 200, "application/json", b, (size_t)len);
        return;
    }
    dpb_api_kind api;
    if (strcmp(rq->path, "/v1/completions") == 0) api = DPB_API_COMPLETIONS;
    else if (strcmp(rq->path, "/v1/chat/completions") == 0) api = DPB_API_CHAT;
    else {
        reply_error(rq->conn, 404, "NotFoundError", NULL, "no route for %.200s", rq->path);
        return;
    }
    if (!post) {
        reply_error(rq->conn, 405, "MethodNotAllowed", NULL, "use POST for %s", rq->path);
        return;
    }
    handle_generate(s, rq, api);
}

dpb_status dpb_openai_server_start(dpb_serve_engine *eng, const char *host, uint16_t port,
                                   const dpb_http_limits *lim, dpb_openai_server **out)
{
    *out = NULL;
    dpb_openai_server *s = calloc(1, sizeof *s);
    if (!s) return dpb_error_set(DPB_E_NOMEM, "serve: out of memory");
    s->eng = eng;
    s->created = (long)time(NULL);
    atomic_init(&s->next_id, ((uint64_t)s->created << 20));
    dpb_status st = dpb_http_server_start(host, port, lim, handler, s, &s->http);
    if (st) {
        free(s);
        return st;
    }
    *out = s;
    return DPB_OK;
}

uint16_t dpb_openai_server_port(const dpb_openai_server *s) { return dpb_http_server_port(s->http); }

void dpb_openai_server_stop(dpb_openai_server *s)
{
    if (!s) return;
    dpb_http_server_stop(s->http);
    free(s);
}
