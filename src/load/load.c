#include "load/load.h"

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include "core/checked.h"
#include "core/signal.h"
#include "core/timeutil.h"
#include "load/sse.h"

const char *dpb_load_fail_name(dpb_load_fail f)
{
    static const char *const n[] = {"connect", "timeout", "http_status", "malformed_sse", "early_close",
                                    "empty_output", "other"};
    return f < DPB_FAIL_N ? n[f] : "other";
}

void dpb_load_config_default(dpb_load_config *c)
{
    memset(c, 0, sizeof *c);
    c->model = "synthetic";
    c->prompt_tokens = 128;
    c->gen_tokens = 128;
    c->ignore_eos = true;
    c->usage_stats = true;
    c->concurrency = 1;
    c->rate = INFINITY;
    c->burstiness = 1.0;
    c->num_requests = 100;
    c->timeout_s = 300;
    c->connect_timeout_s = 10;
    c->max_consecutive_failures = 1000;
    c->seed = 0;
}

dpb_status dpb_load_result_create(dpb_load_result **out)
{
    dpb_load_result *r = calloc(1, sizeof *r);
    if (!r) return dpb_error_set(DPB_E_NOMEM, "load: out of memory");
    dpb_hist **hs[] = {&r->ttft, &r->ttft_sched, &r->tpot, &r->itl_chunk, &r->itl_token,
                       &r->e2el, &r->e2el_sched, &r->send_lag, &r->dispatch_lag};
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++) {
        dpb_status st = dpb_hist_create(hs[i]);
        if (st) {
            dpb_load_result_free(r);
            return st;
        }
    }
    r->client_count_method = "chunks";
    *out = r;
    return DPB_OK;
}

void dpb_load_result_free(dpb_load_result *r)
{
    if (!r) return;
    dpb_hist *hs[] = {r->ttft, r->ttft_sched, r->tpot, r->itl_chunk, r->itl_token,
                      r->e2el, r->e2el_sched, r->send_lag, r->dispatch_lag};
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++) dpb_hist_free(hs[i]);
    free(r);
}

/* ---- random numbers and arrivals ---- */

static uint64_t rnd64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double rnd_u01(uint64_t *s) { return ((double)(rnd64(s) >> 11) + 0.5) / 9007199254740992.0; }
static double rnd_normal(uint64_t *s)
{
    double u = rnd_u01(s), v = rnd_u01(s);
    return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}
/* Gamma(shape k, scale 1), Marsaglia and Tsang; k < 1 through Gamma(k + 1) * U^(1/k). */
static double rnd_gamma(uint64_t *s, double k)
{
    if (k < 1.0) return rnd_gamma(s, k + 1.0) * pow(rnd_u01(s), 1.0 / k);
    double d = k - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x = rnd_normal(s), v = 1.0 + c * x;
        if (v <= 0) continue;
        v = v * v * v;
        double u = rnd_u01(s);
        if (log(u) < 0.5 * x * x + d - d * v + d * log(v)) return d * v;
    }
}

dpb_status dpb_load_arrivals(double rate, double burstiness, uint64_t n, uint64_t seed, uint64_t **out)
{
    *out = NULL;
    if (!(rate > 0) || !(burstiness > 0))
        return dpb_error_set(DPB_E_ARG, "--request-rate and --burstiness must be > 0");
    size_t bytes;
    if (!dpb_mul_size(n ? n : 1, sizeof(uint64_t), &bytes)) return dpb_error_set(DPB_E_RANGE, "too many requests");
    uint64_t *a = calloc(1, bytes);
    if (!a) return dpb_error_set(DPB_E_NOMEM, "load: out of memory for %llu arrivals", (unsigned long long)n);
    uint64_t s = seed ^ 0xA5A5A5A5DEADBEEFull;
    double t = 0;
    for (uint64_t i = 0; i < n; i++) {
        a[i] = (uint64_t)llround(t * 1e9);
        if (isfinite(rate)) t += rnd_gamma(&s, burstiness) / (rate * burstiness); /* mean 1/rate */
    }
    *out = a;
    return DPB_OK;
}

/* ---- one request in flight ---- */

typedef struct gap { uint64_t ns; uint32_t tokens; } gap;

typedef struct lreq {
    struct run *run;
    CURL *easy;
    char *body;
    size_t blen, bcap;
    size_t endpoint;
    uint64_t index;
    uint64_t t_sched, t_ready, t_send, t_first, t_last;
    dpb_sse sse;
    gap *gaps;
    size_t ngaps, gcap;
    uint64_t *chunk_t;
    size_t nchunk_t, ccap;
    uint64_t chunks, client_tokens, server_tokens, server_prompt, events, bytes;
    bool have_server_usage, got_done, malformed, in_band_error;
    char *text; /* for a tokenizer */
    size_t tlen, tcap;
    char err[192];
    long http_status;
    char errbody[256];
    size_t errlen;
    bool warm;
    size_t slot; /* index in run.active */
    struct lreq *next_free;
} lreq;

typedef struct run {
    const dpb_load_config *c;
    dpb_load_result *r;
    CURLM *multi;
    int epfd, tfd;
    struct curl_slist *hdrs;
    char **urls;
    long curl_timeout_ms;
    uint64_t curl_deadline;
    lreq *free_list;
    uint64_t inflight, issued, done, rr, consec_fail;
    uint64_t t0;
    uint64_t last_done, last_slot_free;
    uint64_t wake_ns; /* when epoll_wait last returned: the arrival time of what it reported */
    lreq **active;
    size_t nactive, acap;
    uint64_t seed;
    bool warm; /* this phase is warm-up */
    char tmp[65536];
} run;

static int sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *sockp)
{
    (void)e;
    run *R = userp;
    struct epoll_event ev = {0};
    ev.data.fd = s;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(R->epfd, EPOLL_CTL_DEL, s, NULL);
        curl_multi_assign(R->multi, s, NULL);
        return 0;
    }
    ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0);
    if (!sockp) {
        if (epoll_ctl(R->epfd, EPOLL_CTL_ADD, s, &ev) != 0 && errno == EEXIST) epoll_ctl(R->epfd, EPOLL_CTL_MOD, s, &ev);
        curl_multi_assign(R->multi, s, (void *)1);
    } else epoll_ctl(R->epfd, EPOLL_CTL_MOD, s, &ev);
    return 0;
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
    (void)m;
    run *R = userp;
    R->curl_timeout_ms = timeout_ms;
    R->curl_deadline = timeout_ms < 0 ? UINT64_MAX : dpb_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    return 0;
}

static bool grow_arr(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return true;
    size_t c = *cap ? *cap * 2 : 64;
    while (c < need) c *= 2;
    void *np = realloc(*p, c * elem);
    if (!np) return false;
    *p = np;
    *cap = c;
    return true;
}

/* Parses one SSE event's JSON.  Returns nonzero to abort the transfer. */
static int on_event(void *ctx, const char *data, size_t len)
{
    lreq *q = ctx;
    run *R = q->run;
    if (!q->warm) R->r->sse_events++;
    q->events++;
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        q->got_done = true;
        return 0;
    }
    if (q->got_done) {
        snprintf(q->err, sizeof q->err, "data after [DONE]");
        q->malformed = true;
        return 1;
    }
    cJSON *o = cJSON_ParseWithLength(data, len);
    if (!o || !cJSON_IsObject(o)) {
        snprintf(q->err, sizeof q->err, "an SSE event is not a JSON object: %.60s", data);
        q->malformed = true;
        cJSON_Delete(o);
        return 1;
    }
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(o, "error");
    if (err && !cJSON_IsNull(err)) {
        const cJSON *m = cJSON_IsObject(err) ? cJSON_GetObjectItemCaseSensitive(err, "message") : NULL;
        snprintf(q->err, sizeof q->err, "error event: %.150s", cJSON_IsString(m) ? m->valuestring : "(no message)");
        q->in_band_error = true;
        cJSON_Delete(o);
        return 1;
    }
    uint64_t toks_usage = 0;
    bool usage_delta = false;
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(o, "usage");
    if (cJSON_IsObject(u)) {
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(u, "completion_tokens");
        const cJSON *pt = cJSON_GetObjectItemCaseSensitive(u, "prompt_tokens");
        if (cJSON_IsNumber(ct) && !(ct->valuedouble >= 0 && ct->valuedouble <= 4294967295.0)) {
            snprintf(q->err, sizeof q->err, "usage.completion_tokens out of range");
            q->malformed = true;
            cJSON_Delete(o);
            return 1;
        }
        if (cJSON_IsNumber(ct)) {
            uint64_t v = (uint64_t)ct->valuedouble;
            if (v > q->server_tokens) {
                toks_usage = v - q->server_tokens;
                usage_delta = true;
            }
            q->server_tokens = v;
            q->have_server_usage = true;
        }
        if (cJSON_IsNumber(pt) && pt->valuedouble >= 0 && pt->valuedouble <= 4294967295.0)
            q->server_prompt = (uint64_t)pt->valuedouble;
    }
    const char *text = NULL;
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(o, "choices");
    if (cJSON_IsArray(ch) && cJSON_GetArraySize(ch) > 0) {
        const cJSON *c0 = cJSON_GetArrayItem(ch, 0);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(c0, "text");
        if (!cJSON_IsString(t)) {
            const cJSON *d = cJSON_GetObjectItemCaseSensitive(c0, "delta");
            t = cJSON_GetObjectItemCaseSensitive(d, "content");
            if (!cJSON_IsString(t) || !t->valuestring[0]) {
                const cJSON *rc = cJSON_GetObjectItemCaseSensitive(d, "reasoning_content");
                if (cJSON_IsString(rc) && rc->valuestring[0]) t = rc;
            }
        }
        if (cJSON_IsString(t) && t->valuestring[0]) text = t->valuestring;
    } else if (!cJSON_IsArray(ch) && !cJSON_IsObject(u)) {
        snprintf(q->err, sizeof q->err, "an SSE event has neither choices nor usage");
        q->malformed = true;
        cJSON_Delete(o);
        return 1;
    }
    /* A usage-only final chunk (choices: []) repeats the total: not new tokens. */
    bool has_choice = cJSON_IsArray(ch) && cJSON_GetArraySize(ch) > 0;
    if (text || (usage_delta && has_choice)) {
        uint64_t now_ns = R->wake_ns ? R->wake_ns : dpb_now_ns();
        uint32_t k = usage_delta ? (uint32_t)toks_usage : 1;
        if (!usage_delta && R->c->tokenizer && text) {
            uint64_t n = 0;
            if (R->c->tokenizer->count(R->c->tokenizer->ctx, text, strlen(text), &n) == DPB_OK && n > 0) k = (uint32_t)n;
        }
        if (q->chunks == 0) q->t_first = now_ns;
        else {
            if (grow_arr((void **)&q->gaps, &q->gcap, q->ngaps + 1, sizeof *q->gaps)) {
                q->gaps[q->ngaps].ns = now_ns - q->t_last;
                q->gaps[q->ngaps].tokens = k ? k : 1;
                q->ngaps++;
            }
        }
        if (R->c->record_chunks && grow_arr((void **)&q->chunk_t, &q->ccap, q->nchunk_t + 1, sizeof *q->chunk_t))
            q->chunk_t[q->nchunk_t++] = now_ns;
        q->t_last = now_ns;
        q->chunks++;
        if (text) {
            q->client_tokens++;
            if (R->c->tokenizer) {
                size_t tl = strlen(text);
                if (grow_arr((void **)&q->text, &q->tcap, q->tlen + tl + 1, 1)) {
                    memcpy(q->text + q->tlen, text, tl);
                    q->tlen += tl;
                }
            }
        }
    }
    cJSON_Delete(o);
    return 0;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
    lreq *q = ud;
    size_t n = size * nmemb;
    if (!q->warm) q->run->r->bytes_received += n;
    q->bytes += n;
    if (q->http_status == 0) curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &q->http_status);
    if (q->http_status < 200 || q->http_status > 299) {
        size_t k = sizeof q->errbody - 1 - q->errlen;
        if (k > n) k = n;
        memcpy(q->errbody + q->errlen, ptr, k);
        q->errlen += k;
        q->errbody[q->errlen] = 0;
        return n;
    }
    dpb_status st = dpb_sse_feed(&q->sse, ptr, n, on_event, q);
    if (st == DPB_E_FORMAT) {
        snprintf(q->err, sizeof q->err, "%s", dpb_error_message());
        q->malformed = true;
    }
    return st ? 0 : n; /* 0 aborts the transfer */
}

/* ---- building a request body ---- */

static bool body_append(lreq *q, const char *s, size_t n)
{
    if (!grow_arr((void **)&q->body, &q->bcap, q->blen + n + 1, 1)) return false;
    memcpy(q->body + q->blen, s, n);
    q->blen += n;
    q->body[q->blen] = 0;
    return true;
}

static bool body_json_string(lreq *q, const char *s)
{
    if (!body_append(q, "\"", 1)) return false;
    for (const char *p = s; *p; p++) {
        char e[8];
        unsigned char ch = (unsigned char)*p;
        if (ch == '"' || ch == '\\') { e[0] = '\\'; e[1] = (char)ch; if (!body_append(q, e, 2)) return false; }
        else if (ch < 0x20) { int k = snprintf(e, sizeof e, "\\u%04x", ch); if (!body_append(q, e, (size_t)k)) return false; }
        else if (!body_append(q, p, 1)) return false;
    }
    return body_append(q, "\"", 1);
}

static const char *const k_words[] = {"the", "of", "and", "to", "in", "is", "that", "it", "was", "for",
                                      "on", "are", "with", "as", "at", "be"};

static bool build_body(run *R, lreq *q)
{
    const dpb_load_config *c = R->c;
    q->blen = 0;
    char b[256];
    int k = snprintf(b, sizeof b, "{\"model\":");
    if (!body_append(q, b, (size_t)k) || !body_json_string(q, c->model)) return false;
    bool text_prompt = c->chat || c->prompts;
    if (c->chat) {
        if (!body_append(q, ",\"messages\":[{\"role\":\"user\",\"content\":", 38)) return false;
    } else if (!body_append(q, ",\"prompt\":", 10)) return false;
    if (c->prompts) {
        if (!body_json_string(q, c->prompts[q->index % c->n_prompts])) return false;
    } else if (text_prompt) {
        /* random common words: about one token each in most tokenizers */
        if (!body_append(q, "\"", 1)) return false;
        for (uint64_t i = 0; i < c->prompt_tokens; i++) {
            const char *w = k_words[rnd64(&R->seed) % (sizeof k_words / sizeof k_words[0])];
            if ((i && !body_append(q, " ", 1)) || !body_append(q, w, strlen(w))) return false;
        }
        if (!body_append(q, "\"", 1)) return false;
    } else {
        /* random token ids: exact prompt length on servers that take ids (vLLM does) */
        if (!body_append(q, "[", 1)) return false;
        const uint32_t lo = c->id_hi > c->id_lo ? c->id_lo : 1000, span = c->id_hi > c->id_lo ? c->id_hi - c->id_lo : 20000;
        for (uint64_t i = 0; i < c->prompt_tokens; i++) {
            int n = snprintf(b, sizeof b, i ? ",%u" : "%u", (unsigned)(lo + rnd64(&R->seed) % span));
            if (!body_append(q, b, (size_t)n)) return false;
        }
        if (!body_append(q, "]", 1)) return false;
    }
    if (c->chat && !body_append(q, "}]", 2)) return false;
    k = snprintf(b, sizeof b, ",\"%s\":%llu,\"temperature\":0,\"stream\":true", c->chat ? "max_completion_tokens" : "max_tokens",
                 (unsigned long long)c->gen_tokens);
    if (!body_append(q, b, (size_t)k)) return false;
    if (c->ignore_eos && !body_append(q, ",\"ignore_eos\":true", 18)) return false;
    if (c->usage_stats) {
        const char *so = ",\"stream_options\":{\"include_usage\":true,\"continuous_usage_stats\":true}";
        if (!body_append(q, so, strlen(so))) return false;
    }
    return body_append(q, "}", 1);
}

/* ---- issuing and finishing ---- */

static lreq *get_req(run *R)
{
    lreq *q = R->free_list;
    if (q) {
        R->free_list = q->next_free;
        return q;
    }
    q = calloc(1, sizeof *q);
    if (!q) return NULL;
    q->run = R;
    q->easy = curl_easy_init();
    if (!q->easy) {
        free(q);
        return NULL;
    }
    dpb_sse_init(&q->sse, 0);
    CURL *e = q->easy;
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, R->hdrs);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, q);
    curl_easy_setopt(e, CURLOPT_PRIVATE, q);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(R->c->timeout_s * 1000));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(R->c->connect_timeout_s * 1000));
    return q;
}

static void put_req(run *R, lreq *q)
{
    q->next_free = R->free_list;
    R->free_list = q;
}

static void free_reqs(run *R)
{
    while (R->free_list) {
        lreq *q = R->free_list;
        R->free_list = q->next_free;
        curl_easy_cleanup(q->easy);
        dpb_sse_free(&q->sse);
        free(q->body);
        free(q->gaps);
        free(q->chunk_t);
        free(q->text);
        free(q);
    }
}

static dpb_status issue(run *R, uint64_t t_sched, uint64_t t_ready)
{
    lreq *q = get_req(R);
    if (!q) return dpb_error_set(DPB_E_NOMEM, "load: out of memory for a request");
    q->index = R->issued++;
    q->endpoint = R->rr++ % R->c->n_endpoints;
    q->t_sched = t_sched;
    q->t_ready = t_ready;
    q->t_first = q->t_last = 0;
    q->ngaps = q->nchunk_t = 0;
    q->chunks = q->client_tokens = q->server_tokens = q->server_prompt = q->events = q->bytes = 0;
    q->have_server_usage = q->got_done = q->malformed = q->in_band_error = false;
    q->tlen = 0;
    q->err[0] = 0;
    q->http_status = 0;
    q->errlen = 0;
    q->errbody[0] = 0;
    q->warm = R->warm;
    dpb_sse_reset(&q->sse);
    if (!build_body(R, q)) {
        put_req(R, q);
        return dpb_error_set(DPB_E_NOMEM, "load: out of memory building a request body");
    }
    curl_easy_setopt(q->easy, CURLOPT_URL, R->urls[q->endpoint]);
    curl_easy_setopt(q->easy, CURLOPT_POSTFIELDS, q->body);
    curl_easy_setopt(q->easy, CURLOPT_POSTFIELDSIZE, (long)q->blen);
    if (!grow_arr((void **)&R->active, &R->acap, R->nactive + 1, sizeof *R->active)) {
        put_req(R, q);
        return dpb_error_set(DPB_E_NOMEM, "load: out of memory");
    }
    q->t_send = dpb_now_ns();
    CURLMcode mc = curl_multi_add_handle(R->multi, q->easy);
    if (mc != CURLM_OK) {
        put_req(R, q);
        return dpb_error_set(DPB_E_INTERNAL, "load: libcurl refused a request: %s", curl_multi_strerror(mc));
    }
    q->slot = R->nactive;
    R->active[R->nactive++] = q;
    R->inflight++;
    if (!R->warm && R->inflight > R->r->peak_inflight) R->r->peak_inflight = R->inflight;
    return DPB_OK;
}

static double ms(uint64_t ns) { return (double)ns / 1e6; }

/* snprintf that never runs past cap: a truncated field leaves *n at cap - 1. */
static void put(char *b, size_t cap, size_t *n, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void put(char *b, size_t cap, size_t *n, const char *fmt, ...)
{
    if (*n + 1 >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b + *n, cap - *n, fmt, ap);
    va_end(ap);
    if (k < 0) return;
    *n = *n + (size_t)k >= cap ? cap - 1 : *n + (size_t)k;
}

/* s as the body of a JSON string: quotes and backslashes escaped, control and non-ASCII bytes dropped. */
static void put_escaped(char *b, size_t cap, size_t *n, const char *s)
{
    for (const char *p = s; *p && *n + 8 < cap; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '"' || ch == '\\') { b[(*n)++] = '\\'; b[(*n)++] = (char)ch; }
        else if (ch >= 0x20 && ch < 0x7f) b[(*n)++] = (char)ch;
    }
    b[*n] = 0;
}

static void record(run *R, lreq *q, CURLcode cc, uint64_t t_done)
{
    dpb_load_result *r = R->r;
    const dpb_load_config *c = R->c;
    int fail = -1;
    if (cc == CURLE_OK || cc == CURLE_WRITE_ERROR) {
        if (q->http_status < 200 || q->http_status > 299) {
            fail = DPB_FAIL_HTTP_STATUS;
            snprintf(q->err, sizeof q->err, "HTTP %ld: %.150s", q->http_status, q->errbody);
        } else if (q->malformed || q->in_band_error) fail = DPB_FAIL_MALFORMED;
        else if (cc != CURLE_OK) { fail = DPB_FAIL_OTHER; snprintf(q->err, sizeof q->err, "%s", curl_easy_strerror(cc)); }
        else if (!q->got_done && q->events == 0 && !dpb_sse_pending(&q->sse) && q->bytes) {
            fail = DPB_FAIL_MALFORMED;
            snprintf(q->err, sizeof q->err, "the response is not an SSE stream (no data: event)");
        } else if (!q->got_done) {
            fail = DPB_FAIL_EARLY_CLOSE;
            snprintf(q->err, sizeof q->err, "the stream ended without [DONE]%s",
                     dpb_sse_pending(&q->sse) ? " (inside an event)" : "");
        } else if (q->chunks == 0) { fail = DPB_FAIL_EMPTY; snprintf(q->err, sizeof q->err, "no output token"); }
    } else {
        switch (cc) {
        case CURLE_COULDNT_CONNECT: case CURLE_COULDNT_RESOLVE_HOST: case CURLE_COULDNT_RESOLVE_PROXY:
            fail = DPB_FAIL_CONNECT; break;
        case CURLE_OPERATION_TIMEDOUT: fail = DPB_FAIL_TIMEOUT; break;
        case CURLE_RECV_ERROR: case CURLE_SEND_ERROR: case CURLE_PARTIAL_FILE: case CURLE_GOT_NOTHING:
            fail = DPB_FAIL_EARLY_CLOSE; break;
        default: fail = DPB_FAIL_OTHER;
        }
        snprintf(q->err, sizeof q->err, "%s", curl_easy_strerror(cc));
    }
    if (q->warm) return;
    uint64_t client_tokens = q->client_tokens;
    if (c->tokenizer && q->tlen) {
        uint64_t n = 0;
        if (c->tokenizer->count(c->tokenizer->ctx, q->text, q->tlen, &n) == DPB_OK) client_tokens = n;
    }
    uint64_t n_out = q->have_server_usage ? q->server_tokens : client_tokens;
    /* (timestamps of arrivals are never before the send: both come from the loop in order) */
    if (q->t_first && q->t_first < q->t_send) q->t_first = q->t_send;
    if (t_done < q->t_send) t_done = q->t_send;
    uint64_t ttft = q->t_first ? q->t_first - q->t_send : 0;
    uint64_t e2el = t_done - q->t_send;
    double tpot_ns = -1;
    uint64_t dispatch_from = q->t_sched > q->t_ready ? q->t_sched : q->t_ready;
    uint64_t send_lag = q->t_send > q->t_sched ? q->t_send - q->t_sched : 0;
    uint64_t dispatch_lag = q->t_send > dispatch_from ? q->t_send - dispatch_from : 0;
    dpb_hist_record(r->send_lag, send_lag);
    dpb_hist_record(r->dispatch_lag, dispatch_lag);
    bool good = false;
    if (fail < 0) {
        r->completed++;
        R->consec_fail = 0;
        dpb_hist_record(r->ttft, ttft);
        dpb_hist_record(r->ttft_sched, q->t_first - q->t_sched);
        dpb_hist_record(r->e2el, e2el);
        dpb_hist_record(r->e2el_sched, t_done - q->t_sched);
        if (n_out > 1) {
            tpot_ns = (double)(e2el - ttft) / (double)(n_out - 1);
            dpb_hist_record(r->tpot, (uint64_t)llround(tpot_ns));
        }
        for (size_t i = 0; i < q->ngaps; i++) {
            dpb_hist_record(r->itl_chunk, q->gaps[i].ns);
            uint32_t k = q->gaps[i].tokens;
            uint64_t each = q->gaps[i].ns / k, rem = q->gaps[i].ns % k;
            /* split evenly; the remainder ns go one each to the first tokens so the sum is exact */
            if (rem) dpb_hist_record_n(r->itl_token, each + 1, rem);
            dpb_hist_record_n(r->itl_token, each, k - rem);
        }
        r->output_tokens += n_out;
        r->input_tokens += q->server_prompt ? q->server_prompt : c->prompt_tokens;
        if (q->have_server_usage) { r->server_counted++; r->any_server_usage = true; }
        r->client_counted++;
        if (q->have_server_usage && client_tokens != q->server_tokens) r->mismatched++;
        good = (c->slo_ttft_ms <= 0 || ms(ttft) <= c->slo_ttft_ms) &&
               (c->slo_tpot_ms <= 0 || tpot_ns < 0 || tpot_ns / 1e6 <= c->slo_tpot_ms) &&
               (c->slo_e2el_ms <= 0 || ms(e2el) <= c->slo_e2el_ms);
        if (good) r->good++;
    } else {
        r->failed++;
        r->fails[fail]++;
        R->consec_fail++;
        if (!r->first_error[0]) snprintf(r->first_error, sizeof r->first_error, "%s: %s", dpb_load_fail_name((dpb_load_fail)fail), q->err);
    }
    if (t_done > R->last_done) R->last_done = t_done;
    if (!c->jsonl) return;
    /* one JSON line, built by hand (this runs at up to tens of thousands per second) */
    char *b = R->tmp;
    size_t cap = sizeof R->tmp, n = 0;
    put(b, cap, &n, "{\"level\":%d,\"index\":%llu,\"endpoint\":\"", c->level, (unsigned long long)q->index);
    put_escaped(b, cap, &n, c->endpoints[q->endpoint]);
    put(b, cap, &n,
        "\",\"ok\":%s,\"error_class\":%s%s%s,"
        "\"http_status\":%ld,\"t_sched_ms\":%.6f,\"send_lag_ms\":%.6f,\"dispatch_lag_ms\":%.6f,",
        fail < 0 ? "true" : "false", fail < 0 ? "" : "\"",
        fail < 0 ? "null" : dpb_load_fail_name((dpb_load_fail)fail), fail < 0 ? "" : "\"", q->http_status,
        ms(q->t_sched - R->t0), ms(send_lag), ms(dispatch_lag));
    if (q->t_first)
        put(b, cap, &n, "\"ttft_ms\":%.6f,\"ttft_from_schedule_ms\":%.6f,", ms(ttft),
                      ms(q->t_first - q->t_sched));
    else put(b, cap, &n, "\"ttft_ms\":null,\"ttft_from_schedule_ms\":null,");
    put(b, cap, &n, "\"e2el_ms\":%.6f,\"e2el_from_schedule_ms\":%.6f,", ms(e2el), ms(t_done - q->t_sched));
    if (tpot_ns >= 0) put(b, cap, &n, "\"tpot_ms\":%.6f,", tpot_ns / 1e6);
    else put(b, cap, &n, "\"tpot_ms\":null,");
    if (q->have_server_usage)
        put(b, cap, &n, "\"prompt_tokens_server\":%llu,\"output_tokens_server\":%llu,",
                      (unsigned long long)q->server_prompt, (unsigned long long)q->server_tokens);
    else put(b, cap, &n, "\"prompt_tokens_server\":null,\"output_tokens_server\":null,");
    put(b, cap, &n, "\"output_tokens_client\":%llu,\"output_tokens_client_method\":\"%s\",\"chunks\":%llu,\"good\":%s",
                  (unsigned long long)client_tokens, r->client_count_method, (unsigned long long)q->chunks,
                  good ? "true" : "false");
    if (fail >= 0) {
        put(b, cap, &n, ",\"error\":\"");
        put_escaped(b, cap, &n, q->err);
        put(b, cap, &n, "\"");
    }
    if (c->record_chunks && q->nchunk_t) {
        put(b, cap, &n, ",\"chunk_times_ms\":[");
        for (size_t i = 0; i < q->nchunk_t && n + 64 < cap; i++)
            put(b, cap, &n, i ? ",%.4f" : "%.4f", ms(q->chunk_t[i] - q->t_send));
        put(b, cap, &n, "]");
    }
    if (n + 2 < cap) {
        b[n++] = '}';
        dpb_jsonlog_write_raw(c->jsonl, b, n);
    } else r->jsonl_dropped++; /* cannot happen with the sizes above; counted, never a torn line */
}

static void drain_done(run *R)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(R->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        CURL *e = m->easy_handle;
        CURLcode cc = m->data.result;
        uint64_t t_done = R->wake_ns ? R->wake_ns : dpb_now_ns();
        lreq *q = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&q);
        if (q->http_status == 0) curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &q->http_status);
        curl_multi_remove_handle(R->multi, e);
        R->active[q->slot] = R->active[--R->nactive];
        R->active[q->slot]->slot = q->slot;
        R->inflight--;
        R->done++;
        record(R, q, cc, t_done);
        put_req(R, q);
    }
}

/* ---- the event loop for one phase (warm-up or measurement) ---- */

static void arm_timer(run *R, uint64_t at_ns)
{
    struct itimerspec its = {0};
    if (at_ns != UINT64_MAX) {
        if (at_ns == 0) at_ns = 1;
        its.it_value.tv_sec = (time_t)(at_ns / 1000000000ull);
        its.it_value.tv_nsec = (long)(at_ns % 1000000000ull);
    }
    timerfd_settime(R->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* Runs requests until the budget is spent and everything in flight ended. */
static dpb_status phase(run *R, dpb_load_mode mode, uint64_t users, const uint64_t *arrivals, uint64_t n_budget,
                        uint64_t deadline_ns, uint64_t max_inflight, double ramp_s)
{
    dpb_status st = DPB_OK;
    R->issued = R->done = 0;
    R->consec_fail = 0;
    uint64_t next = 0; /* open loop: next arrival index */
    /* closed loop: users that are free, and since when */
    uint64_t *ready = NULL;
    size_t nready = 0;
    if (mode == DPB_LOAD_CLOSED) {
        ready = malloc((users ? users : 1) * sizeof *ready);
        if (!ready) return dpb_error_set(DPB_E_NOMEM, "load: out of memory");
        /* Users start at t0 + i * ramp / users; the stack's top is always the
         * earliest (later starts pushed first; completions push "now", which is
         * earlier than any start still to come). */
        for (uint64_t i = users; i-- > 0;)
            ready[nready++] = R->t0 + (uint64_t)(ramp_s * 1e9 * (double)i / (double)users);
    }
    uint64_t armed = UINT64_MAX;
    struct epoll_event *evs = malloc(256 * sizeof *evs);
    if (!evs) {
        free(ready);
        return dpb_error_set(DPB_E_NOMEM, "load: out of memory");
    }
    bool stop_issuing = false;
    for (;;) {
        uint64_t now = dpb_now_ns();
        if (dpb_interrupted()) {
            st = dpb_error_set(DPB_E_INTERRUPTED, "load: interrupted");
            break;
        }
        if (R->c->max_consecutive_failures && R->consec_fail >= R->c->max_consecutive_failures && !stop_issuing) {
            stop_issuing = true;
            R->r->aborted = true;
            snprintf(R->r->abort_reason, sizeof R->r->abort_reason, "stopped after %llu consecutive failed requests",
                     (unsigned long long)R->consec_fail);
        }
        if (deadline_ns && now >= deadline_ns) stop_issuing = true;
        if (n_budget && R->issued >= n_budget) stop_issuing = true;
        /* issue what is due */
        uint64_t next_due = UINT64_MAX;
        if (!stop_issuing) {
            if (mode == DPB_LOAD_CLOSED) {
                while (nready && !(n_budget && R->issued >= n_budget) && ready[nready - 1] <= now) {
                    uint64_t tr = ready[--nready];
                    if ((st = issue(R, tr, tr))) goto out;
                }
                if (nready && !(n_budget && R->issued >= n_budget)) next_due = ready[nready - 1];
            } else {
                while ((!n_budget || next < n_budget) && R->t0 + arrivals[next] <= now &&
                       (!max_inflight || R->inflight < max_inflight)) {
                    if (deadline_ns && R->t0 + arrivals[next] >= deadline_ns) { stop_issuing = true; break; }
                    /* t_ready: when a slot was free for it (now, if it waited for one) */
                    uint64_t sched = R->t0 + arrivals[next];
                    uint64_t tr = max_inflight && R->last_slot_free > sched ? R->last_slot_free : sched;
                    if ((st = issue(R, sched, tr))) goto out;
                    next++;
                    now = dpb_now_ns();
                }
                if ((!n_budget || next < n_budget) && !(max_inflight && R->inflight >= max_inflight))
                    next_due = R->t0 + arrivals[next];
            }
        }
        if (stop_issuing && R->inflight == 0) break;
        if (next_due != armed) {
            arm_timer(R, next_due);
            armed = next_due;
        }
        int wait_ms;
        if (R->curl_timeout_ms < 0) wait_ms = 1000;
        else wait_ms = R->curl_timeout_ms > 1000 ? 1000 : (int)R->curl_timeout_ms;
        if (R->curl_deadline != UINT64_MAX) {
            uint64_t t = dpb_now_ns();
            wait_ms = R->curl_deadline <= t ? 0 : (int)((R->curl_deadline - t + 999999) / 1000000);
            if (wait_ms > 1000) wait_ms = 1000;
        }
        int ne = epoll_wait(R->epfd, evs, 256, wait_ms);
        /* Everything epoll reported was there when it returned: one timestamp for
         * the batch, so events handled later in it are not timed late. */
        R->wake_ns = dpb_now_ns();
        int running;
        for (int i = 0; i < ne; i++) {
            if (evs[i].data.fd == R->tfd) {
                uint64_t x;
                ssize_t rr = read(R->tfd, &x, sizeof x);
                (void)rr;
                armed = UINT64_MAX;
                continue;
            }
            int fl = ((evs[i].events & EPOLLIN) ? CURL_CSELECT_IN : 0) | ((evs[i].events & EPOLLOUT) ? CURL_CSELECT_OUT : 0) |
                     ((evs[i].events & (EPOLLERR | EPOLLHUP)) ? CURL_CSELECT_ERR : 0);
            curl_multi_socket_action(R->multi, evs[i].data.fd, fl, &running);
        }
        if (R->curl_deadline <= dpb_now_ns()) {
            R->curl_deadline = UINT64_MAX;
            curl_multi_socket_action(R->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        }
        uint64_t before = R->done;
        drain_done(R);
        if (R->done != before) {
            uint64_t t = dpb_now_ns();
            R->last_slot_free = t;
            if (mode == DPB_LOAD_CLOSED)
                for (uint64_t k = before; k < R->done && nready < users; k++) ready[nready++] = t;
        }
    }
out:
    free(evs);
    /* interrupted or a setup error: abandon what is in flight (not counted as failures) */
    while (R->nactive) {
        lreq *q = R->active[--R->nactive];
        curl_multi_remove_handle(R->multi, q->easy);
        if (!q->warm) R->r->interrupted++;
        R->inflight--;
        put_req(R, q);
    }
    free(ready);
    return st;
}

static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

dpb_status dpb_load_run(const dpb_load_config *c, dpb_load_result *r)
{
    if (!c->n_endpoints) return dpb_error_set(DPB_E_ARG, "--endpoint: at least one is needed");
    if (c->mode == DPB_LOAD_CLOSED && c->concurrency < 1) return dpb_error_set(DPB_E_ARG, "--concurrency must be >= 1");
    if (!c->num_requests && !(c->duration_s > 0))
        return dpb_error_set(DPB_E_ARG, "give --num-requests or --duration");
    if (c->mode == DPB_LOAD_OPEN && !isfinite(c->rate) && !c->num_requests)
        return dpb_error_set(DPB_E_ARG, "--request-rate inf needs --num-requests (a duration would be unbounded)");
    pthread_once(&g_curl_once, curl_init_once);
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    run *R = calloc(1, sizeof *R);
    if (!R) return dpb_error_set(DPB_E_NOMEM, "load: out of memory");
    R->c = c;
    R->r = r;
    R->seed = c->seed * 0x9E3779B97F4A7C15ull + 12345;
    R->curl_timeout_ms = -1;
    R->curl_deadline = UINT64_MAX;
    R->tfd = -1;
    r->client_count_method = c->tokenizer ? c->tokenizer->name : "chunks";
    dpb_status st = DPB_OK;
    uint64_t *arr = NULL;
    R->epfd = epoll_create1(EPOLL_CLOEXEC);
    R->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    R->multi = curl_multi_init();
    R->urls = calloc(c->n_endpoints, sizeof *R->urls);
    if (R->epfd < 0 || R->tfd < 0 || !R->multi || !R->urls) {
        st = dpb_error_set(DPB_E_INTERNAL, "load: cannot set up epoll/timerfd/libcurl: %s", strerror(errno));
        goto out;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = R->tfd};
    epoll_ctl(R->epfd, EPOLL_CTL_ADD, R->tfd, &ev);
    for (size_t i = 0; i < c->n_endpoints; i++) {
        const char *ep = c->endpoints[i];
        size_t l = strlen(ep);
        while (l && ep[l - 1] == '/') l--;
        const char *path = c->chat ? "/v1/chat/completions" : "/v1/completions";
        /* an endpoint may already end in /v1 */
        if (l >= 3 && memcmp(ep + l - 3, "/v1", 3) == 0) path += 3;
        R->urls[i] = malloc(l + strlen(path) + 1);
        if (!R->urls[i]) { st = dpb_error_set(DPB_E_NOMEM, "load: out of memory"); goto out; }
        memcpy(R->urls[i], ep, l);
        strcpy(R->urls[i] + l, path);
    }
    R->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    R->hdrs = curl_slist_append(R->hdrs, "Accept: text/event-stream");
    R->hdrs = curl_slist_append(R->hdrs, "Expect:");
    if (c->api_key) {
        char h[512];
        snprintf(h, sizeof h, "Authorization: Bearer %s", c->api_key);
        R->hdrs = curl_slist_append(R->hdrs, h);
    }
    curl_multi_setopt(R->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(R->multi, CURLMOPT_SOCKETDATA, R);
    curl_multi_setopt(R->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(R->multi, CURLMOPT_TIMERDATA, R);
    uint64_t width = c->mode == DPB_LOAD_CLOSED ? c->concurrency : (c->max_concurrency ? c->max_concurrency : 4096);
    curl_multi_setopt(R->multi, CURLMOPT_MAXCONNECTS, (long)(width + 16));
    /* warm-up: closed loop, not recorded */
    if (c->warmup) {
        R->warm = true;
        R->t0 = dpb_now_ns();
        uint64_t u = c->mode == DPB_LOAD_CLOSED ? c->concurrency : (c->max_concurrency ? c->max_concurrency : 8);
        if (u > c->warmup) u = c->warmup;
        st = phase(R, DPB_LOAD_CLOSED, u, NULL, c->warmup, 0, 0, 0);
        R->warm = false;
        if (st) goto out;
        r->aborted = false;
        r->abort_reason[0] = 0;
    }
    uint64_t n_arr = c->num_requests;
    if (c->mode == DPB_LOAD_OPEN) {
        if (!n_arr) {
            double e = c->rate * c->duration_s * 1.5 + 1000;
            if (e > 5e7) { st = dpb_error_set(DPB_E_RANGE, "--request-rate x --duration is too large"); goto out; }
            n_arr = (uint64_t)e;
        }
        if ((st = dpb_load_arrivals(c->rate, c->burstiness, n_arr, c->seed, &arr))) goto out;
    }
    double cpu0 = cpu_seconds();
    R->t0 = dpb_now_ns();
    R->last_done = R->t0;
    R->last_slot_free = 0;
    uint64_t deadline = c->duration_s > 0 && !c->num_requests ? R->t0 + (uint64_t)(c->duration_s * 1e9) : 0;
    st = phase(R, c->mode, c->concurrency, arr, c->mode == DPB_LOAD_OPEN ? n_arr : c->num_requests, deadline,
               c->mode == DPB_LOAD_OPEN ? c->max_concurrency : 0, c->ramp_up_s);
    r->issued = R->issued;
    r->wall_s = (double)(dpb_now_ns() - R->t0) / 1e9;
    r->cpu_s = cpu_seconds() - cpu0;
    r->duration_s = (double)(R->last_done - R->t0) / 1e9;
out:
    free(arr);
    while (R->nactive) {
        lreq *q = R->active[--R->nactive];
        curl_multi_remove_handle(R->multi, q->easy);
        put_req(R, q);
    }
    free_reqs(R);
    free(R->active);
    if (R->multi) curl_multi_cleanup(R->multi);
    curl_slist_free_all(R->hdrs);
    if (R->urls)
        for (size_t i = 0; i < c->n_endpoints; i++) free(R->urls[i]);
    free(R->urls);
    if (R->epfd >= 0) close(R->epfd);
    if (R->tfd >= 0) close(R->tfd);
    free(R);
    return st;
}
