/* The model server (src/serve/engine_llm.c) in one process on loopback, on
 * synth:gpt-oss-tiny: prompt logprobs with echo against the engine's own
 * logits, continuous batching against one-at-a-time generation, sampling
 * seeds, errors and their statuses, queue full, a client that disconnects,
 * metrics, stop strings (with a tokenizer from ../shared, skipped without). */
#include "t.h"
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <cjson/cJSON.h>
#include "core/timeutil.h"
#include "engine/engine.h"
#include "format/checkpoint.h"
#include "serve/engine_llm.h"
#include "serve/openai.h"

typedef struct srv {
    dpb_serve_engine *eng;
    dpb_openai_server *http;
    char url[64];
    uint16_t port;
} srv;

static int srv_start_lim(srv *s, const dpb_llm_engine_config *c, const dpb_http_limits *lim)
{
    memset(s, 0, sizeof *s);
    if (dpb_llm_engine_create(c, &s->eng) != DPB_OK) {
        fprintf(stderr, "  engine: %s\n", dpb_error_message());
        return 0;
    }
    if (dpb_openai_server_start(s->eng, "127.0.0.1", 0, lim, &s->http) != DPB_OK) return 0;
    s->port = dpb_openai_server_port(s->http);
    snprintf(s->url, sizeof s->url, "http://127.0.0.1:%u", s->port);
    return 1;
}

static int srv_start_cfg(srv *s, const dpb_llm_engine_config *c)
{
    dpb_http_limits lim;
    dpb_http_limits_default(&lim);
    lim.max_body_bytes = 65536;
    return srv_start_lim(s, c, &lim);
}

static void base_cfg(dpb_llm_engine_config *c)
{
    dpb_llm_engine_config_default(c);
    c->model = "synth:gpt-oss-tiny";
    c->model_id = "tiny";
    c->threads = 1;
    c->dtype = DPB_ENGINE_F32;
    c->max_batch = 4;
    c->max_model_len = 256;
}

static void srv_stop(srv *s)
{
    if (s->eng) dpb_llm_engine_destroy(s->eng);
    if (s->http) dpb_openai_server_stop(s->http);
    memset(s, 0, sizeof *s);
}

typedef struct buf {
    char *p;
    size_t n;
} buf;

static size_t on_data(char *d, size_t sz, size_t nm, void *u)
{
    buf *b = u;
    size_t n = sz * nm;
    char *np = realloc(b->p, b->n + n + 1);
    if (!np) return 0;
    b->p = np;
    memcpy(b->p + b->n, d, n);
    b->n += n;
    b->p[b->n] = 0;
    return n;
}

/* POST body to path (GET when body is NULL); returns the status, the response in *out (caller frees),
 * and the response headers in *hdrs when hdrs is not NULL (caller frees). */
static long http_h(const srv *s, const char *path, const char *body, char **out, char **hdrs)
{
    CURL *c = curl_easy_init();
    char url[256];
    snprintf(url, sizeof url, "%s%s", s->url, path);
    buf b = {0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (body) curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    buf hb = {0};
    if (hdrs) {
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_data);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, &hb);
    }
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    long code = 0;
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (out) *out = b.p ? b.p : calloc(1, 1);
    else free(b.p);
    if (hdrs) *hdrs = hb.p ? hb.p : calloc(1, 1);
    return code;
}

static long http(const srv *s, const char *path, const char *body, char **out)
{
    return http_h(s, path, body, out, NULL);
}

static int ids_json(char *o, size_t cap, const int32_t *ids, int n)
{
    size_t k = (size_t)snprintf(o, cap, "[");
    for (int i = 0; i < n; i++) k += (size_t)snprintf(o + k, cap - k, i ? ",%d" : "%d", ids[i]);
    k += (size_t)snprintf(o + k, cap - k, "]");
    return (int)k;
}

static void make_ids(int32_t *ids, int n, uint32_t seed)
{
    for (int i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        ids[i] = (int32_t)((seed >> 8) % 500);
    }
}

/* Prompt logprobs with echo equal the log-softmax of the engine's logits (1e-4). */
static void test_echo_logprobs_match_engine(void)
{
    dpb_llm_engine_config c;
    base_cfg(&c);
    srv s;
    T_CHECK(srv_start_cfg(&s, &c));
    enum { N = 100 }; /* over the 64-row chunk used for prompt logprobs: crosses chunk boundaries */
    int32_t ids[N];
    make_ids(ids, N, 7);
    char body[4096], arr[2048];
    ids_json(arr, sizeof arr, ids, N);
    snprintf(body, sizeof body, "{\"model\":\"tiny\",\"prompt\":%s,\"max_tokens\":1,\"temperature\":0,\"echo\":true,\"logprobs\":2}", arr);
    char *resp;
    long code = http(&s, "/v1/completions", body, &resp);
    T_CHECKF(code == 200, "status %ld: %s", code, resp);
    cJSON *o = cJSON_Parse(resp);
    cJSON *lp = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "choices"), 0), "logprobs");
    cJSON *tl = cJSON_GetObjectItem(lp, "token_logprobs");
    T_CHECKF(cJSON_GetArraySize(tl) == N + 1, "%d token_logprobs", cJSON_GetArraySize(tl));
    T_CHECK(cJSON_IsNull(cJSON_GetArrayItem(tl, 0)));
    /* in process: the same model, one forward pass over the prompt, every row */
    dpb_checkpoint *ck = NULL;
    dpb_engine *e = NULL;
    T_CHECK(dpb_checkpoint_open("synth:gpt-oss-tiny", NULL, &ck) == DPB_OK);
    dpb_engine_opts eo = {0};
    eo.threads = 1;
    eo.dtype = DPB_ENGINE_F32;
    eo.max_ctx = 256;
    T_CHECK(dpb_engine_create(ck, &eo, &e) == DPB_OK);
    int64_t V = dpb_engine_vocab(e);
    float *lg = malloc((size_t)(N * V) * sizeof *lg);
    dpb_engine_seg sg = {0, ids, N};
    T_CHECK(dpb_engine_forward(e, &sg, 1, DPB_LOGITS_ALL, lg) == DPB_OK);
    double maxdiff = 0;
    int compared = 0;
    for (int p = 1; p < N && cJSON_GetArraySize(tl) == N + 1; p++) {
        const float *row = lg + (size_t)(p - 1) * (size_t)V;
        double mx = row[0], sum = 0;
        for (int64_t i = 1; i < V; i++) mx = row[i] > mx ? row[i] : mx;
        for (int64_t i = 0; i < V; i++) sum += exp(row[i] - mx);
        double want = row[ids[p]] - mx - log(sum);
        double got = cJSON_GetArrayItem(tl, p)->valuedouble;
        if (fabs(got - want) > maxdiff) maxdiff = fabs(got - want);
        compared++;
    }
    T_CHECKF(compared == N - 1 && maxdiff < 1e-4, "compared %d, max |diff| %g", compared, maxdiff);
    fprintf(stderr, "  echo logprobs: %d prompt tokens compared, max |HTTP - in-process| = %.3g\n", compared, maxdiff);
    /* the generated token's logprob comes from the last prompt row */
    const float *row = lg + (size_t)(N - 1) * (size_t)V;
    int64_t am = 0;
    for (int64_t i = 1; i < V; i++) am = row[i] > row[am] ? i : am;
    cJSON *toks = cJSON_GetObjectItem(lp, "tokens");
    char want_tok[32];
    snprintf(want_tok, sizeof want_tok, "token_id:%lld", (long long)am);
    T_CHECKF(cJSON_IsString(cJSON_GetArrayItem(toks, N)) && !strcmp(cJSON_GetArrayItem(toks, N)->valuestring, want_tok),
             "generated %s, argmax %s", cJSON_IsString(cJSON_GetArrayItem(toks, N)) ? cJSON_GetArrayItem(toks, N)->valuestring : "?",
             want_tok);
    cJSON *u = cJSON_GetObjectItem(o, "usage");
    T_CHECK(cJSON_GetObjectItem(u, "prompt_tokens")->valueint == N && cJSON_GetObjectItem(u, "completion_tokens")->valueint == 1);
    free(lg);
    dpb_engine_destroy(e);
    dpb_checkpoint_close(ck);
    cJSON_Delete(o);
    free(resp);
    srv_stop(&s);
}

/* Token ids of a completion (from logprobs.tokens, "token_id:N" without a tokenizer). */
static int gen_ids(const char *resp, int32_t *out, int cap)
{
    cJSON *o = cJSON_Parse(resp);
    cJSON *toks = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "choices"), 0), "logprobs"), "tokens");
    int n = 0;
    cJSON *t;
    cJSON_ArrayForEach(t, toks)
    {
        if (n < cap && cJSON_IsString(t)) out[n++] = atoi(t->valuestring + 9);
    }
    cJSON_Delete(o);
    return n;
}

typedef struct job {
    const srv *s;
    char body[4096];
    char *resp;
    long code;
} job;

static void *job_main(void *a)
{
    job *j = a;
    j->code = http(j->s, "/v1/completions", j->body, &j->resp);
    return NULL;
}

/* Six concurrent greedy requests of different lengths through 4 slots give
 * the tokens dpb_engine_generate gives for each alone. */
static void test_batching_equals_alone(void)
{
    dpb_llm_engine_config c;
    base_cfg(&c);
    c.prefill_chunk = 16; /* long prompts take several steps, interleaved with decode */
    c.threads = 2;        /* sampling spread over threads */
    srv s;
    T_CHECK(srv_start_cfg(&s, &c));
    enum { R = 6, G = 12 };
    static const int lens[R] = {3, 40, 7, 60, 1, 25};
    int32_t ids[R][64];
    job jobs[R];
    pthread_t th[R];
    for (int r = 0; r < R; r++) {
        make_ids(ids[r], lens[r], 100u + (uint32_t)r);
        char arr[1024];
        ids_json(arr, sizeof arr, ids[r], lens[r]);
        memset(&jobs[r], 0, sizeof jobs[r]);
        jobs[r].s = &s;
        snprintf(jobs[r].body, sizeof jobs[r].body,
                 "{\"prompt\":%s,\"max_tokens\":%d,\"temperature\":0,\"logprobs\":0,\"ignore_eos\":true}", arr, G);
        pthread_create(&th[r], NULL, job_main, &jobs[r]);
    }
    for (int r = 0; r < R; r++) pthread_join(th[r], NULL);
    dpb_checkpoint *ck = NULL;
    dpb_engine *e = NULL;
    T_CHECK(dpb_checkpoint_open("synth:gpt-oss-tiny", NULL, &ck) == DPB_OK);
    dpb_engine_opts eo = {0};
    eo.threads = 1;
    eo.dtype = DPB_ENGINE_F32;
    eo.max_ctx = 256;
    T_CHECK(dpb_engine_create(ck, &eo, &e) == DPB_OK);
    for (int r = 0; r < R; r++) {
        T_CHECKF(jobs[r].code == 200, "request %d: %ld %s", r, jobs[r].code, jobs[r].resp);
        int32_t got[G + 1];
        int n = gen_ids(jobs[r].resp, got, G + 1);
        dpb_gen_request q = {0};
        q.prompt = ids[r];
        q.n_prompt = lens[r];
        q.max_new = G;
        q.ignore_eos = true;
        q.sampling = dpb_sampling_greedy();
        dpb_gen_result res;
        T_CHECK(dpb_engine_generate(e, &q, 1, &res, NULL, NULL) == DPB_OK);
        int same = n == G && res.n == G;
        for (int i = 0; same && i < G; i++) same = got[i] == res.ids[i];
        T_CHECKF(same, "request %d (prompt %d): %d tokens over HTTP differ from the engine alone", r, lens[r], n);
        dpb_gen_result_free(&res);
        free(jobs[r].resp);
    }
    dpb_engine_destroy(e);
    dpb_checkpoint_close(ck);
    srv_stop(&s);
}

/* The same seed gives the same sample; another seed (almost surely) not. */
static void test_seeded_sampling(void)
{
    dpb_llm_engine_config c;
    base_cfg(&c);
    srv s;
    T_CHECK(srv_start_cfg(&s, &c));
    const char *fmt = "{\"prompt\":[1,2,3],\"max_tokens\":16,\"temperature\":1.0,\"top_p\":0.9,\"seed\":%d,\"logprobs\":0,\"ignore_eos\":true}";
    char b[256];
    int32_t a1[16], a2[16], a3[16];
    char *r;
    snprintf(b, sizeof b, fmt, 5);
    T_CHECK(http(&s, "/v1/completions", b, &r) == 200);
    int n1 = gen_ids(r, a1, 16);
    free(r);
    T_CHECK(http(&s, "/v1/completions", b, &r) == 200);
    int n2 = gen_ids(r, a2, 16);
    free(r);
    snprintf(b, sizeof b, fmt, 6);
    T_CHECK(http(&s, "/v1/completions", b, &r) == 200);
    int n3 = gen_ids(r, a3, 16);
    free(r);
    T_CHECK(n1 == 16 && n2 == 16 && n3 == 16);
    T_CHECK(memcmp(a1, a2, sizeof a1) == 0);
    T_CHECK(memcmp(a1, a3, sizeof a1) != 0);
    srv_stop(&s);
}

static int has_error(const char *resp, const char *needle)
{
    cJSON *o = cJSON_Parse(resp);
    cJSON *e = cJSON_GetObjectItem(o, "error");
    cJSON *m = cJSON_GetObjectItem(e, "message");
    int ok = cJSON_IsString(m) && cJSON_GetObjectItem(e, "type") && cJSON_GetObjectItem(e, "code") &&
             (!needle || strstr(m->valuestring, needle));
    if (!ok) fprintf(stderr, "  response: %s\n", resp);
    cJSON_Delete(o);
    return ok;
}

/* The error object exactly as OpenAI shapes it: message (containing needle), type, param, code. */
static int is_error(const char *resp, long code, const char *type, const char *needle)
{
    cJSON *o = cJSON_Parse(resp);
    cJSON *e = cJSON_GetObjectItem(o, "error");
    cJSON *m = cJSON_GetObjectItem(e, "message"), *t = cJSON_GetObjectItem(e, "type"),
          *c = cJSON_GetObjectItem(e, "code");
    int ok = cJSON_IsObject(o) && cJSON_GetArraySize(o) == 1 && cJSON_GetArraySize(e) == 4 && cJSON_IsString(m) &&
             strstr(m->valuestring, needle) && cJSON_IsString(t) && strcmp(t->valuestring, type) == 0 &&
             cJSON_HasObjectItem(e, "param") && cJSON_IsNumber(c) && (long)c->valuedouble == code;
    if (!ok) fprintf(stderr, "  response: %s\n", resp);
    cJSON_Delete(o);
    return ok;
}

static void test_errors(void)
{
    dpb_llm_engine_config c;
    base_cfg(&c);
    srv s;
    T_CHECK(srv_start_cfg(&s, &c));
    static const struct { const char *path, *body, *needle; long code; } cases[] = {
        {"/v1/completions", "{\"prompt\":[1,2", NULL, 400},
        {"/v1/completions", "{\"prompt\":[1,2],\"max_tokens\":\"x\"}", "max_tokens", 400},
        {"/v1/completions", "{\"prompt\":[1,2],\"temperature\":\"hot\"}", "temperature", 400},
        {"/v1/completions", "{\"prompt\":[1,2],\"max_tokens\":255}", "maximum context length is 256", 400},
        {"/v1/completions", "{\"prompt\":[1,2],\"max_tokens\":100000000}", "max_tokens", 400},
        {"/v1/completions", "{\"prompt\":[1,99999]}", "vocabulary", 400},
        {"/v1/completions", "{\"prompt\":\"text\"}", "no tokenizer", 400},
        {"/v1/completions", "{\"model\":\"gpt-5\",\"prompt\":[1]}", "does not exist", 404},
        {"/v1/completions", "{\"prompt\":[1],\"stop\":7}", "stop", 400},
        {"/v1/completions", "{\"prompt\":[1],\"logprobs\":50}", "logprobs", 400},
        {"/v1/nothing", "{}", NULL, 404},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *r;
        long code = http(&s, cases[i].path, cases[i].body, &r);
        T_CHECKF(code == cases[i].code && has_error(r, cases[i].needle), "case %zu: status %ld", i, code);
        free(r);
    }
    /* a prompt over the context */
    static char big[8192];
    int32_t ids[300];
    make_ids(ids, 300, 3);
    char arr[4096];
    ids_json(arr, sizeof arr, ids, 300);
    snprintf(big, sizeof big, "{\"prompt\":%s,\"max_tokens\":1}", arr);
    char *r;
    long code = http(&s, "/v1/completions", big, &r);
    T_CHECKF(code == 400 && has_error(r, NULL), "prompt over the context: %ld", code);
    free(r);
    /* an oversized body */
    size_t n = 70000;
    char *huge = malloc(n + 64);
    memcpy(huge, "{\"prompt\":\"", 11);
    memset(huge + 11, 'a', n);
    strcpy(huge + 11 + n, "\"}");
    code = http(&s, "/v1/completions", huge, &r);
    T_CHECKF(code == 413, "oversized body: %ld", code);
    free(r);
    free(huge);
    /* still serving, and the models list */
    code = http(&s, "/v1/models", NULL, &r);
    T_CHECK(code == 200 && strstr(r, "\"id\":\"tiny\"") && strstr(r, "\"max_model_len\":256"));
    free(r);
    code = http(&s, "/metrics", NULL, &r);
    T_CHECKF(code == 200 && strstr(r, "dpb_requests_total{outcome=\"rejected_invalid\"} ") &&
                 strstr(r, "dpb_time_to_first_token_seconds_bucket{le=\"+Inf\"}"), "%s", r);
    free(r);
    srv_stop(&s);
}

static int raw_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int raw_post_stream(uint16_t port, const char *body)
{
    int fd = raw_connect(port);
    if (fd < 0) return -1;
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     strlen(body), body);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    return fd;
}


static double metric_f(const srv *s, const char *name)
{
    char *r;
    double v = -1;
    if (http(s, "/metrics", NULL, &r) == 200) {
        char pat[160];
        snprintf(pat, sizeof pat, "\n%s", name);
        char *p = strstr(r, pat);
        if (p) v = strtod(p + strlen(pat), NULL);
    }
    free(r);
    return v;
}

static long metric(const srv *s, const char *name) { return (long)metric_f(s, name); }

/* A client that goes away mid-stream frees its slot: with one slot, the next
 * request completes at once instead of waiting for 4000 tokens. */
static void test_disconnect_frees_slot(void)
{
    dpb_llm_engine_config c;
    base_cfg(&c);
    c.max_batch = 1;
    c.max_model_len = 4096;
    srv s;
    T_CHECK(srv_start_cfg(&s, &c));
    int fd = raw_post_stream(s.port, "{\"prompt\":[1,2,3],\"max_tokens\":4000,\"stream\":true,\"ignore_eos\":true}");
    T_CHECK(fd >= 0);
    char b[512];
    ssize_t got = read(fd, b, sizeof b); /* the stream has started */
    T_CHECK(got > 0);
    for (int i = 0; i < 200 && !(metric(&s, "dpb_num_requests_running ") == 1 && metric_f(&s, "dpb_kv_cache_usage_perc ") > 0); i++)
        usleep(5000);
    T_CHECK(metric_f(&s, "dpb_kv_cache_usage_perc ") > 0);
    /* close with a reset, so the server's next write fails at once */
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    long s0 = metric(&s, "dpb_engine_steps_total ");
    close(fd);
    long s0a = metric(&s, "dpb_engine_steps_total "); /* read after the close: a lower bound on steps at the close */
    for (int i = 0; i < 400 && metric(&s, "dpb_num_requests_running ") != 0; i++) usleep(5000);
    long s1 = metric(&s, "dpb_engine_steps_total ");
    /* The scheduler looks at each running request's socket before every
     * step, so the step under way at the close (if any) is its last: at most
     * one step after the close, whatever delays this thread (s0, read before
     * the close, can be many steps early on a busy machine). */
    T_CHECKF(metric(&s, "dpb_num_requests_running ") == 0 && s1 - s0a <= 1, "running %ld, %ld steps after the close",
             metric(&s, "dpb_num_requests_running "), s1 - s0a);
    fprintf(stderr, "  steps from the close to the slot's release: %ld (counted from before the close: %ld)\n", s1 - s0a,
            s1 - s0);
    T_CHECKF(metric_f(&s, "dpb_kv_cache_usage_perc ") == 0, "kv usage %g after the release",
             metric_f(&s, "dpb_kv_cache_usage_perc "));
    uint64_t t0 = dpb_now_ns();
    char *r;
    long code = http(&s, "/v1/completions", "{\"prompt\":[4,5],\"max_tokens\":4}", &r);
    double ms = (double)(dpb_now_ns() - t0) / 1e6;
    T_CHECKF(code == 200 && ms < 1000, "status %ld after %.0f ms", code, ms);
    free(r);
    T_CHECKF(metric(&s, "dpb_requests_total{outcome=\"aborted\"} ") == 1, "aborted %ld",
             metric(&s, "dpb_requests_total{outcome=\"aborted\"} "));
    /* not streaming: nothing is written until the end, yet the close is seen
     * (the parked connection's socket is looked at before each step) */
    fd = raw_post_stream(s.port, "{\"prompt\":[1,2,3],\"max_tokens\":4000,\"ignore_eos\":true}");
    T_CHECK(fd >= 0);
    for (int i = 0; i < 200 && metric(&s, "dpb_num_requests_running ") != 1; i++) usleep(5000);
    T_CHECK(metric(&s, "dpb_num_requests_running ") == 1);
    close(fd);
    for (int i = 0; i < 400 && metric(&s, "dpb_num_requests_running ") != 0; i++) usleep(5000);
    T_CHECKF(metric(&s, "dpb_num_requests_running ") == 0 && metric(&s, "dpb_requests_total{outcome=\"aborted\"} ") == 2,
             "not streaming: running %ld, aborted %ld", metric(&s, "dpb_num_requests_running "),
             metric(&s, "dpb_requests_total{outcome=\"aborted\"} "));
    code = http(&s, "/v1/completions", "{\"prompt\":[4,5],\"max_tokens\":4}", &r);
    T_CHECK(code == 200);
    free(r);
    srv_stop(&s);
}

/* Sends head, then piece every 200 ms (none when piece is NULL) until the
 * server closes the connection; returns the seconds from the start to the
 * close, or -1 if it is still open after max_s. */
static double trickle_until_closed(uint16_t port, const char *head, const char *piece, double max_s)
{
    int fd = raw_connect(port);
    if (fd < 0) return -1;
    uint64_t t0 = dpb_now_ns();
    double t = -1;
    send(fd, head, strlen(head), MSG_NOSIGNAL);
    while ((double)(dpb_now_ns() - t0) / 1e9 < max_s) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 200) == 1) {
            char b[256];
            if (recv(fd, b, sizeof b, 0) <= 0) { /* closed (or reset) */
                t = (double)(dpb_now_ns() - t0) / 1e9;
                break;
            }
        }
        if (piece && send(fd, piece, strlen(piece), MSG_NOSIGNAL) < 0) {
            t = (double)(dpb_now_ns() - t0) / 1e9;
            break;
        }
    }
    close(fd);
    return t;
}

/* Slow clients (slowloris): headers trickled a line every 200 ms, a body
 * trickled likewise, and headers that stop halfway are all cut at the read
 * deadline (1 s here), though each keeps the connection busy well within the
 * idle timeout (60 s); the server serves on. */
static void test_slow_clients(void)
{
    dpb_llm_engine_config c;
    base_cfg(&c);
    dpb_http_limits lim;
    dpb_http_limits_default(&lim);
    lim.idle_timeout_s = 60;
    lim.read_timeout_s = 1;
    c.max_model_len = 4096;
    srv s;
    T_CHECK(srv_start_lim(&s, &c, &lim));
    double t = trickle_until_closed(s.port, "POST /v1/completions HTTP/1.1\r\nHost: x\r\n", "X-Slow: y\r\n", 6);
    T_CHECKF(t >= 0.9 && t < 3, "trickled headers: closed after %.2f s", t);
    t = trickle_until_closed(s.port,
                             "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n{\"prompt\":",
                             "[1,2,3],", 6);
    T_CHECKF(t >= 0.9 && t < 3, "trickled body: closed after %.2f s", t);
    t = trickle_until_closed(s.port, "GET /health HTTP/1.1\r\nHo", NULL, 6);
    T_CHECKF(t >= 0.9 && t < 3, "half a header, then nothing: closed after %.2f s", t);
    fprintf(stderr, "  slow clients cut after the 1 s read deadline: the last one at %.2f s\n", t);
    /* a streamed response lasting longer than the read deadline is not cut */
    char *r;
    uint64_t t0 = dpb_now_ns();
    long code = http(&s, "/v1/completions", "{\"prompt\":[1,2],\"max_tokens\":1500,\"ignore_eos\":true,\"stream\":true}", &r);
    double secs = (double)(dpb_now_ns() - t0) / 1e9;
    T_CHECKF(code == 200 && strstr(r, "data: [DONE]"), "after the slow clients: %ld", code);
    fprintf(stderr, "  a 1500-token stream took %.2f s (read deadline 1 s)\n", secs);
    free(r);
    srv_stop(&s);
}

/* One slot, a queue of one: a third request is refused with 503. */
static void test_queue_full(void)
{
    dpb_llm_engine_config c;
    base_cfg(&c);
    c.max_batch = 1;
    c.max_queue = 1;
    c.max_model_len = 4096;
    srv s;
    T_CHECK(srv_start_cfg(&s, &c));
    const char *longreq = "{\"prompt\":[1,2,3],\"max_tokens\":4000,\"stream\":true,\"ignore_eos\":true}";
    int a = raw_post_stream(s.port, longreq);
    char b[512];
    /* running once its first token is out (the headers come at submit, before admission) */
    size_t got = 0;
    while (a >= 0 && got < sizeof b - 1) {
        ssize_t k = read(a, b + got, sizeof b - 1 - got);
        if (k <= 0) break;
        got += (size_t)k;
        b[got] = 0;
        if (strstr(b, "data:")) break;
    }
    T_CHECK(got > 0 && strstr(b, "data:"));
    int q = raw_post_stream(s.port, longreq);     /* waiting */
    for (int i = 0; i < 200 && metric(&s, "dpb_num_requests_waiting ") != 1; i++) usleep(5000);
    char *r;
    T_CHECKF(metric(&s, "dpb_num_requests_waiting ") == 1 && metric(&s, "dpb_num_requests_running ") == 1, "not queued");
    char *h;
    long code = http_h(&s, "/v1/completions", "{\"prompt\":[4,5],\"max_tokens\":4}", &r, &h);
    T_CHECKF(code == 503 && is_error(r, 503, "ServiceUnavailableError", "queue is full"), "status %ld", code);
    T_CHECKF(strcasestr(h, "\r\nRetry-After: 1\r\n") && strcasestr(h, "Content-Type: application/json"), "headers: %s", h);
    free(r);
    free(h);
    /* streaming too: refused before any stream starts */
    code = http_h(&s, "/v1/completions", "{\"prompt\":[4,5],\"max_tokens\":4,\"stream\":true}", &r, &h);
    T_CHECKF(code == 503 && is_error(r, 503, "ServiceUnavailableError", "queue is full") && strcasestr(h, "Retry-After: 1"),
             "stream: status %ld", code);
    free(r);
    free(h);
    close(a);
    close(q);
    long rq = metric(&s, "dpb_requests_total{outcome=\"rejected_queue_full\"} ");
    T_CHECKF(rq == 2, "rejected_queue_full %ld", rq);
    srv_stop(&s);
}

/* An engine failure (a forward pass that fails, injected with fault_step):
 * a whole response is a 500 in OpenAI's shape; a stream, whose 200 is out,
 * ends with an error event and [DONE]; the server carries on. */
static void test_engine_failure(void)
{
    dpb_llm_engine_config c;
    base_cfg(&c);
    c.fault_step = 2; /* step 1: the prompt; step 2: the first decode */
    srv s;
    T_CHECK(srv_start_cfg(&s, &c));
    char *r, *h;
    long code = http_h(&s, "/v1/completions", "{\"prompt\":[1,2,3],\"max_tokens\":8,\"ignore_eos\":true}", &r, &h);
    T_CHECKF(code == 500 && is_error(r, 500, "InternalServerError", "injected fault") &&
                 strcasestr(h, "Content-Type: application/json"), "status %ld", code);
    free(r);
    free(h);
    code = http(&s, "/v1/completions", "{\"prompt\":[1,2,3],\"max_tokens\":8,\"ignore_eos\":true}", &r);
    T_CHECKF(code == 200 && strstr(r, "\"completion_tokens\":8"), "after the failure: %ld %s", code, r);
    free(r);
    T_CHECK(metric(&s, "dpb_engine_errors_total ") == 1);
    T_CHECK(metric(&s, "dpb_requests_total{outcome=\"failed\"} ") == 1);
    T_CHECK(metric(&s, "dpb_num_requests_running ") == 0);
    srv_stop(&s);

    c.fault_step = 3; /* the stream has sent its first token */
    T_CHECK(srv_start_cfg(&s, &c));
    code = http(&s, "/v1/completions", "{\"prompt\":[1,2,3],\"max_tokens\":8,\"ignore_eos\":true,\"stream\":true}", &r);
    /* the last two events: the error, then [DONE] */
    char *err = strstr(r, "data: {\"error\":");
    T_CHECKF(code == 200 && err && strstr(r, "\"text_completion\"") && strcmp(strstr(err, "\n\n"), "\n\ndata: [DONE]\n\n") == 0,
             "stream: %ld %s", code, r);
    if (err) {
        char *e = strdup(err + 6);
        *strstr(e, "\n\n") = 0;
        T_CHECK(is_error(e, 500, "InternalServerError", "injected fault"));
        free(e);
    }
    free(r);
    srv_stop(&s);
}

static void test_harmony_split(void)
{
    dpb_harmony_split h;
    memset(&h, 0, sizeof h);
    h.channel = 1;
    h.message = 2;
    h.end = 3;
    h.start = 4;
    h.ret = 5;
    h.call = 6;
    h.constrain = 7;
    T_CHECK(dpb_harmony_split_text(&h, "plain", 5) == 0); /* before any header: content */
    T_CHECK(dpb_harmony_split_token(&h, 1) == 1);
    T_CHECK(dpb_harmony_split_text(&h, "analysis", 8) == -1);
    T_CHECK(dpb_harmony_split_token(&h, 2) == 1);
    T_CHECK(dpb_harmony_split_text(&h, "think", 5) == 1);
    T_CHECK(dpb_harmony_split_token(&h, 3) == 1);
    T_CHECK(dpb_harmony_split_token(&h, 4) == 1);
    T_CHECK(dpb_harmony_split_text(&h, "assistant", 9) == -1);
    T_CHECK(dpb_harmony_split_token(&h, 1) == 1);
    T_CHECK(dpb_harmony_split_text(&h, "final", 5) == -1);
    T_CHECK(dpb_harmony_split_token(&h, 2) == 1);
    T_CHECK(dpb_harmony_split_text(&h, "answer", 6) == 0);
    T_CHECK(dpb_harmony_split_token(&h, 99) == 0);
}

/* Stop strings, with a real tokenizer: the text ends before the stop string. */
static void test_stop_string(void)
{
    const char *sh = t_shared();
    if (!sh) T_SKIP("../shared is absent");
    char tp[512];
    snprintf(tp, sizeof tp, "%s/data/tokenizers/gpt2/tokenizer.json", sh);
    if (access(tp, R_OK) != 0) T_SKIP("%s is absent", tp);
    dpb_llm_engine_config c;
    base_cfg(&c);
    c.tokenizer = tp;
    srv s;
    T_CHECK(srv_start_cfg(&s, &c));
    char *r;
    T_CHECK(http(&s, "/v1/completions", "{\"prompt\":\"Hello world\",\"max_tokens\":12,\"temperature\":0,\"ignore_eos\":true}", &r) == 200);
    cJSON *o = cJSON_Parse(r);
    free(r);
    const char *full = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "choices"), 0), "text")->valuestring;
    size_t fl = strlen(full);
    T_CHECKF(fl >= 8, "text '%s'", full);
    if (fl >= 8) {
        char stop[4] = {full[fl / 2], full[fl / 2 + 1], full[fl / 2 + 2], 0};
        cJSON *js = cJSON_CreateString(stop);
        char *esc = cJSON_PrintUnformatted(js);
        cJSON_Delete(js);
        char b[256];
        snprintf(b, sizeof b, "{\"prompt\":\"Hello world\",\"max_tokens\":12,\"temperature\":0,\"ignore_eos\":true,\"stop\":[%s]}", esc);
        T_CHECK(http(&s, "/v1/completions", b, &r) == 200);
        cJSON *o2 = cJSON_Parse(r);
        cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItem(o2, "choices"), 0);
        const char *t2 = cJSON_GetObjectItem(ch, "text")->valuestring;
        const char *first = strstr(full, stop);
        T_CHECKF(first && strlen(t2) == (size_t)(first - full) && !strncmp(t2, full, strlen(t2)), "'%s' then '%s'", full, t2);
        T_CHECK(!strcmp(cJSON_GetObjectItem(ch, "finish_reason")->valuestring, "stop"));
        cJSON_Delete(o2);
        free(r);
        free(esc);
    }
    cJSON_Delete(o);
    srv_stop(&s);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_ALL);
    T_RUN(test_harmony_split);
    T_RUN(test_echo_logprobs_match_engine);
    T_RUN(test_batching_equals_alone);
    T_RUN(test_seeded_sampling);
    T_RUN(test_errors);
    T_RUN(test_disconnect_frees_slot);
    T_RUN(test_queue_full);
    T_RUN(test_engine_failure);
    T_RUN(test_slow_clients);
    T_RUN(test_stop_string);
    curl_global_cleanup();
    return t_done();
}
