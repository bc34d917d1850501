#include "serve/engine_llm.h"

#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include "core/checked.h"
#include "core/hist.h"
#include "core/timeutil.h"
#include "format/checkpoint.h"
#include "serve/openai.h"
#include "tokenizer/chat_choose.h"
#include "tokenizer/tokenizer.h"

#define ALL_LOGITS_BUDGET 64 /* prompt rows per step while a request needs prompt logprobs */

typedef enum { R_WAIT = 0, R_PREFILL, R_DECODE } rstate;

typedef struct req {
    struct req *next; /* waiting queue */
    dpb_gen_job *job;
    rstate state;
    int slot;
    int32_t *ids;
    int64_t n_prompt, n_done; /* prompt tokens, of which prefilled */
    int64_t max_new, n_gen;
    int32_t last;
    bool ignore_eos, echo, harmony;
    int logprobs;
    char *stop[DPB_SERVE_MAX_STOP];
    size_t stop_len[DPB_SERVE_MAX_STOP], max_stop;
    int n_stop;
    dpb_token_sampler sm;
    bool sm_ok, ts_ok;
    dpb_tokenizer_stream ts;
    dpb_harmony_split hs;
    char *text; /* content text so far (stop strings are matched on it) */
    size_t tlen, tcap, sent;
    char *echo_text;
    size_t echo_len;
    uint64_t t_submit, t_last;
} req;

typedef struct llm {
    dpb_serve_engine eng;
    dpb_llm_engine_config cfg;
    char *model_id;
    dpb_checkpoint *ck;
    dpb_engine *e;
    dpb_tokenizer *tok_enc; /* the encoding thread */
    dpb_tokenizer *tok_dec; /* the scheduler thread */
    dpb_chat_template tpl;
    int64_t V, max_ctx;
    int max_batch;
    int n_eos;
    int64_t eos[DPB_MAX_EOS + 2];
    uint64_t seed_ctr;
    /* scheduler */
    pthread_t thr;
    bool thr_ok;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    req *wq_head, *wq_tail;
    uint64_t n_wait;
    req **slots; /* [max_batch], the scheduler thread's */
    float *logits;
    size_t logits_rows;
    dpb_engine_seg *segs;
    req **seg_req;
    /* this step's sampling: [max_batch] each */
    req **samp_req;
    const float **samp_row;
    int32_t *samp_id;
    int32_t *seg_id; /* greedy steps: the id of each segment, from the engine's argmax */
    dpb_status *samp_st;
    /* metrics (under mu) */
    uint64_t m_requests[5]; /* ok (stop/length), abort, rejected 400, rejected 503, failed (engine error) */
    uint64_t m_prompt_tokens, m_gen_tokens, m_running, m_steps, m_engine_errors;
    int64_t m_kv_used;
    dpb_hist *h_ttft, *h_itl;
} llm;

/* ---- harmony ---- */

int dpb_harmony_split_token(dpb_harmony_split *h, int32_t id)
{
    if (id < 0) return 0;
    if (id == h->channel) {
        h->state = 1;
        h->chan_len = 0;
        h->chan[0] = 0;
        return 1;
    }
    if (id == h->message) {
        h->state = 0;
        h->reasoning = strncmp(h->chan, "analysis", 8) == 0;
        return 1;
    }
    if (id == h->end || id == h->start || id == h->ret || id == h->call) {
        h->state = 2;
        return 1;
    }
    if (id == h->constrain) {
        h->state = 2;
        return 1;
    }
    return 0;
}

int dpb_harmony_split_text(dpb_harmony_split *h, const char *text, size_t len)
{
    if (h->state == 1) {
        for (size_t i = 0; i < len && h->chan_len + 1 < sizeof h->chan; i++) {
            if (text[i] == ' ') { h->state = 2; break; } /* "final <|constrain|>json": the rest is header */
            h->chan[h->chan_len++] = text[i];
        }
        h->chan[h->chan_len] = 0;
        return -1;
    }
    if (h->state == 2) return -1;
    return h->reasoning ? 1 : 0;
}

static void harmony_init(dpb_harmony_split *h, const dpb_tokenizer *t)
{
    memset(h, 0, sizeof *h);
    h->channel = dpb_tokenizer_token_id(t, "<|channel|>");
    h->message = dpb_tokenizer_token_id(t, "<|message|>");
    h->end = dpb_tokenizer_token_id(t, "<|end|>");
    h->start = dpb_tokenizer_token_id(t, "<|start|>");
    h->ret = dpb_tokenizer_token_id(t, "<|return|>");
    h->call = dpb_tokenizer_token_id(t, "<|call|>");
    h->constrain = dpb_tokenizer_token_id(t, "<|constrain|>");
}

/* ---- prompt encoding ----
 * The BPE encoder keeps thread-local scratch (src/tokenizer/tokenizer.c) that
 * is never freed, so encoding on libmicrohttpd's threads would leave one
 * scratch per server thread behind when they exit.  Prompts are encoded on
 * one process-wide thread instead, which lives as long as the process: one
 * scratch in all.  (Encoding was serialized per tokenizer anyway.) */

typedef struct enc_task {
    dpb_tokenizer *tok;
    const char *text;
    size_t len;
    unsigned flags;
    dpb_tokens *out;
    dpb_status st;
    char err[512];
    bool done;
    struct enc_task *next;
} enc_task;

static pthread_once_t g_enc_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t g_enc_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_enc_cv = PTHREAD_COND_INITIALIZER, g_enc_done = PTHREAD_COND_INITIALIZER;
static enc_task *g_enc_head, *g_enc_tail;
static bool g_enc_ok;

static void *enc_main(void *arg)
{
    (void)arg;
    prctl(PR_SET_NAME, "dpb-encode", 0, 0, 0);
    for (;;) {
        pthread_mutex_lock(&g_enc_mu);
        while (!g_enc_head) pthread_cond_wait(&g_enc_cv, &g_enc_mu);
        enc_task *t = g_enc_head;
        g_enc_head = t->next;
        if (!g_enc_head) g_enc_tail = NULL;
        pthread_mutex_unlock(&g_enc_mu);
        t->st = dpb_tokenizer_encode(t->tok, t->text, t->len, t->flags, t->out);
        if (t->st) snprintf(t->err, sizeof t->err, "%s", dpb_error_message());
        pthread_mutex_lock(&g_enc_mu);
        t->done = true;
        pthread_cond_broadcast(&g_enc_done);
        pthread_mutex_unlock(&g_enc_mu);
    }
    return NULL;
}

static void enc_start(void)
{
    pthread_t th;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    g_enc_ok = pthread_create(&th, &at, enc_main, NULL) == 0;
    pthread_attr_destroy(&at);
}

static dpb_status encode_prompt(dpb_tokenizer *tok, const char *text, size_t len, unsigned flags, dpb_tokens *out)
{
    pthread_once(&g_enc_once, enc_start);
    if (!g_enc_ok) return dpb_error_set(DPB_E_INTERNAL, "serve: cannot start the prompt encoding thread");
    enc_task t = {tok, text, len, flags, out, DPB_OK, {0}, false, NULL};
    pthread_mutex_lock(&g_enc_mu);
    if (g_enc_tail) g_enc_tail->next = &t;
    else g_enc_head = &t;
    g_enc_tail = &t;
    pthread_cond_signal(&g_enc_cv);
    while (!t.done) pthread_cond_wait(&g_enc_done, &g_enc_mu);
    pthread_mutex_unlock(&g_enc_mu);
    if (t.st) return dpb_error_set(t.st, "%s", t.err);
    return DPB_OK;
}

/* ---- requests ---- */

static void req_free(req *r)
{
    if (!r) return;
    if (r->sm_ok) dpb_token_sampler_free(&r->sm);
    if (r->ts_ok) dpb_tokenizer_stream_free(&r->ts);
    for (int i = 0; i < r->n_stop; i++) free(r->stop[i]);
    free(r->ids);
    free(r->text);
    free(r->echo_text);
    free(r);
}

/* Chat messages -> rendered prompt text. */
static dpb_status render_chat(llm *L, const cJSON *messages, char **out, size_t *out_len)
{
    size_t n = (size_t)cJSON_GetArraySize(messages);
    dpb_chat_message *m = calloc(n ? n : 1, sizeof *m);
    char **owned = calloc(n ? n : 1, sizeof *owned);
    dpb_status st = DPB_OK;
    if (!m || !owned) {
        st = dpb_error_set(DPB_E_NOMEM, "request: out of memory");
        goto done;
    }
    size_t i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, messages)
    {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(e, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(e, "content");
        m[i].role = role->valuestring;
        if (cJSON_IsString(content)) m[i].content = content->valuestring;
        else if (cJSON_IsArray(content)) { /* content parts: the text ones, concatenated */
            size_t len = 0, cap = 0;
            const cJSON *part;
            cJSON_ArrayForEach(part, content)
            {
                const cJSON *ty = cJSON_GetObjectItemCaseSensitive(part, "type");
                const cJSON *tx = cJSON_GetObjectItemCaseSensitive(part, "text");
                if (!cJSON_IsString(ty) || strcmp(ty->valuestring, "text") != 0 || !cJSON_IsString(tx)) {
                    st = dpb_error_set(DPB_E_ARG, "request body: messages[%zu].content: only text parts are supported", i);
                    goto done;
                }
                if ((st = dpb_serve_buf_append(&owned[i], &len, &cap, tx->valuestring, strlen(tx->valuestring)))) goto done;
            }
            m[i].content = owned[i] ? owned[i] : "";
        } else m[i].content = "";
        i++;
    }
    dpb_chat_options co;
    dpb_chat_options_default(&co);
    st = dpb_chat_render(L->tpl, &co, m, n, out, out_len);
    if (st) st = dpb_error_set(DPB_E_ARG, "request body: messages: %s", dpb_error_message());
done:
    if (owned)
        for (size_t k = 0; k < n; k++) free(owned[k]);
    free(owned);
    free(m);
    return st;
}

static void count_reject(llm *L, int k)
{
    pthread_mutex_lock(&L->mu);
    L->m_requests[k]++;
    pthread_mutex_unlock(&L->mu);
}

static dpb_status submit(void *ctx, const dpb_serve_request *rq, dpb_gen_job *job)
{
    llm *L = ctx;
    dpb_status st = DPB_OK;
    /* a full queue refuses before tokenizing (checked again when queueing) */
    pthread_mutex_lock(&L->mu);
    bool full = L->cfg.max_queue && L->n_wait >= L->cfg.max_queue;
    if (full) L->m_requests[3]++;
    pthread_mutex_unlock(&L->mu);
    if (full)
        return dpb_error_set(DPB_E_UNAVAILABLE, "the server's queue is full (%llu requests waiting); retry later",
                             (unsigned long long)L->cfg.max_queue);
    req *r = calloc(1, sizeof *r);
    if (!r) return dpb_error_set(DPB_E_NOMEM, "request: out of memory");
    r->job = job;
    r->slot = -1;
    r->ignore_eos = rq->ignore_eos;
    r->echo = rq->api == DPB_API_COMPLETIONS && rq->echo;
    r->logprobs = rq->logprobs;
    r->harmony = rq->api == DPB_API_CHAT && L->tpl == DPB_CHAT_HARMONY && L->tok_dec;
    /* the prompt's ids */
    if (rq->prompt_ids) {
        r->ids = malloc(rq->n_prompt_ids * sizeof *r->ids);
        if (!r->ids) { st = dpb_error_set(DPB_E_NOMEM, "request: out of memory"); goto fail; }
        for (size_t i = 0; i < rq->n_prompt_ids; i++) {
            if (rq->prompt_ids[i] >= L->V) {
                st = dpb_error_set(DPB_E_ARG, "request body: prompt[%zu]: token id %lld is outside the vocabulary [0, %lld)",
                                   i, (long long)rq->prompt_ids[i], (long long)L->V);
                goto fail;
            }
            r->ids[i] = (int32_t)rq->prompt_ids[i];
        }
        r->n_prompt = (int64_t)rq->n_prompt_ids;
    } else {
        if (!L->tok_enc) {
            st = dpb_error_set(DPB_E_ARG, "request body: this model has no tokenizer: send the prompt as token ids "
                                          "(serve --tokenizer gives it one)");
            goto fail;
        }
        char *text = NULL;
        size_t len = 0;
        const char *src = rq->prompt;
        unsigned flags = 0;
        if (rq->api == DPB_API_CHAT) {
            if ((st = render_chat(L, rq->messages, &text, &len))) goto fail;
            src = text;
            flags = DPB_TOK_ALLOW_SPECIAL;
        } else len = strlen(src);
        dpb_tokens t = {0};
        st = encode_prompt(L->tok_enc, src, len, flags, &t);
        free(text);
        if (st) {
            dpb_tokens_free(&t);
            st = dpb_error_set(DPB_E_ARG, "request body: %s: %s", rq->api == DPB_API_CHAT ? "messages" : "prompt",
                               dpb_error_message());
            goto fail;
        }
        r->ids = t.ids;
        r->n_prompt = (int64_t)t.n;
        if (r->echo) {
            r->echo_text = malloc(strlen(rq->prompt) + 1);
            if (!r->echo_text) { st = dpb_error_set(DPB_E_NOMEM, "request: out of memory"); goto fail; }
            r->echo_len = strlen(rq->prompt);
            memcpy(r->echo_text, rq->prompt, r->echo_len + 1);
        }
    }
    if (r->n_prompt < 1) {
        st = dpb_error_set(DPB_E_ARG, "request body: prompt: the prompt is empty (0 tokens)");
        goto fail;
    }
    if (r->echo && !r->echo_text && L->tok_dec) {
        size_t el;
        if ((st = dpb_tokenizer_decode(L->tok_dec, r->ids, (size_t)r->n_prompt, false, &r->echo_text, &el))) goto fail;
        r->echo_len = el;
    }
    /* context: vLLM's message and status */
    /* defaults as vLLM's: 16 on completions, the rest of the context on chat */
    int64_t mt = rq->max_tokens ? (int64_t)rq->max_tokens
                                : (rq->api == DPB_API_COMPLETIONS ? 16 : L->max_ctx - r->n_prompt);
    if (!rq->max_tokens && mt > L->max_ctx - r->n_prompt) mt = L->max_ctx - r->n_prompt;
    if (r->n_prompt >= L->max_ctx || r->n_prompt + mt > L->max_ctx) {
        st = dpb_error_set(DPB_E_RANGE,
                           "This model's maximum context length is %lld tokens. However, you requested %lld tokens "
                           "(%lld in the %s, %lld for the completion). Please reduce the length of the %s or completion.",
                           (long long)L->max_ctx, (long long)(r->n_prompt + mt), (long long)r->n_prompt,
                           rq->api == DPB_API_CHAT ? "messages" : "prompt", (long long)mt,
                           rq->api == DPB_API_CHAT ? "messages" : "prompt");
        goto fail;
    }
    r->max_new = mt;
    /* stop strings */
    for (int i = 0; i < rq->n_stop && i < DPB_SERVE_MAX_STOP; i++) {
        r->stop[i] = malloc(rq->stop_len[i] + 1);
        if (!r->stop[i]) { st = dpb_error_set(DPB_E_NOMEM, "request: out of memory"); goto fail; }
        memcpy(r->stop[i], rq->stop[i], rq->stop_len[i] + 1);
        r->stop_len[i] = rq->stop_len[i];
        if (r->stop_len[i] > r->max_stop) r->max_stop = r->stop_len[i];
        r->n_stop++;
    }
    /* sampling */
    dpb_sampling sp;
    if (rq->temperature < 1e-5) sp = dpb_sampling_greedy();
    else {
        memset(&sp, 0, sizeof sp);
        sp.temperature = rq->temperature;
        sp.top_p = rq->top_p;
        pthread_mutex_lock(&L->mu);
        uint64_t k = ++L->seed_ctr;
        pthread_mutex_unlock(&L->mu);
        sp.seed = rq->has_seed ? (uint64_t)rq->seed : dpb_now_ns() ^ (k * 0x9E3779B97F4A7C15ull);
    }
    if ((st = dpb_sampling_check(&sp))) { st = dpb_error_set(DPB_E_ARG, "request body: %s", dpb_error_message()); goto fail; }
    if ((st = dpb_token_sampler_init(&r->sm, &sp, L->V))) goto fail;
    r->sm_ok = true;
    if (L->tok_dec) {
        dpb_tokenizer_stream_init(&r->ts, L->tok_dec, true);
        r->ts_ok = true;
        if (r->harmony) harmony_init(&r->hs, L->tok_dec);
    }
    dpb_gen_set_prompt_tokens(job, (uint64_t)r->n_prompt);
    r->t_submit = dpb_now_ns();
    pthread_mutex_lock(&L->mu);
    if (L->stop || (L->cfg.max_queue && L->n_wait >= L->cfg.max_queue)) {
        L->m_requests[3]++;
        pthread_mutex_unlock(&L->mu);
        req_free(r);
        return dpb_error_set(DPB_E_UNAVAILABLE, "the server's queue is full (%llu requests waiting); retry later",
                             (unsigned long long)L->cfg.max_queue);
    }
    if (L->wq_tail) L->wq_tail->next = r;
    else L->wq_head = r;
    L->wq_tail = r;
    L->n_wait++;
    pthread_cond_signal(&L->cv);
    pthread_mutex_unlock(&L->mu);
    return DPB_OK;
fail:
    req_free(r);
    count_reject(L, 2);
    return st == DPB_E_NOMEM || st == DPB_E_INTERNAL ? st : (st == DPB_E_RANGE ? DPB_E_RANGE : DPB_E_ARG);
}

/* ---- the scheduler ---- */

/* Ends r and frees its slot: finish is its finish reason, or error (when
 * not NULL) the engine failure its client gets (500, or an error event). */
static void release_err(llm *L, req *r, const char *finish, const char *error)
{
    int64_t held = 0;
    if (r->slot >= 0) {
        held = dpb_engine_seq_len(L->e, r->slot);
        L->slots[r->slot] = NULL;
        dpb_engine_seq_reset(L->e, r->slot);
    }
    /* metrics first, so a client that has its answer sees them updated */
    pthread_mutex_lock(&L->mu);
    L->m_kv_used = L->m_kv_used > held ? L->m_kv_used - held : 0; /* the gauge drops now, not at the next step */
    L->m_requests[error ? 4 : strcmp(finish, "abort") == 0 ? 1 : 0]++;
    if (r->slot >= 0 && L->m_running) L->m_running--;
    pthread_mutex_unlock(&L->mu);
    if (error) dpb_gen_fail(r->job, error);
    else dpb_gen_finish(r->job, finish);
    req_free(r);
}

static void release(llm *L, req *r, const char *finish) { release_err(L, r, finish, NULL); }

/* An engine failure for r: logged, and its client gets a 500 (or an error event). */
static void release_failed(llm *L, req *r, const char *what)
{
    char msg[600];
    snprintf(msg, sizeof msg, "engine failure: %s: %s", what, dpb_error_message());
    fprintf(stderr, "deploybench serve: %s\n", msg);
    release_err(L, r, NULL, msg);
}

/* log-softmax of row at id, and the top n alternatives. */
static void row_logprobs(const float *row, int64_t V, int32_t id, double *lp, int n, int32_t *top_id, double *top_lp)
{
    float mx = row[0];
    for (int64_t i = 1; i < V; i++)
        if (row[i] > mx) mx = row[i];
    double s = 0;
    for (int64_t i = 0; i < V; i++) s += exp((double)row[i] - (double)mx);
    double lse = (double)mx + log(s);
    if (lp) *lp = (double)row[id] - lse;
    for (int k = 0; k < n; k++) {
        int32_t best = -1;
        for (int64_t i = 0; i < V; i++) {
            bool used = false;
            for (int q = 0; q < k; q++) used |= top_id[q] == (int32_t)i;
            if (used) continue;
            if (best < 0 || row[i] > row[best]) best = (int32_t)i;
        }
        top_id[k] = best;
        top_lp[k] = (double)row[best] - lse;
    }
}

static dpb_status add_logprob(llm *L, req *r, const float *row, int32_t id, bool has)
{
    int n = r->logprobs > 0 ? r->logprobs : 0;
    int32_t tid[DPB_SERVE_MAX_LOGPROBS];
    double tlp[DPB_SERVE_MAX_LOGPROBS];
    double lp = 0;
    if (has) row_logprobs(row, L->V, id, &lp, n, tid, tlp);
    char *txt[DPB_SERVE_MAX_LOGPROBS + 1] = {0};
    size_t tl[DPB_SERVE_MAX_LOGPROBS + 1] = {0};
    dpb_gen_top top[DPB_SERVE_MAX_LOGPROBS];
    int nt = has ? n : 0;
    dpb_status st = DPB_OK;
    for (int k = 0; k <= nt && !st; k++) {
        int32_t t = k == 0 ? id : tid[k - 1];
        if (L->tok_dec) st = dpb_tokenizer_decode(L->tok_dec, &t, 1, false, &txt[k], &tl[k]);
        else {
            txt[k] = malloc(24);
            if (!txt[k]) st = dpb_error_set(DPB_E_NOMEM, "out of memory");
            else tl[k] = (size_t)snprintf(txt[k], 24, "token_id:%d", t);
        }
    }
    for (int k = 0; k < nt && !st; k++) top[k] = (dpb_gen_top){txt[k + 1], tl[k + 1], tlp[k]};
    if (!st) st = dpb_gen_add_logprob(r->job, txt[0], tl[0], has, lp, top, nt);
    for (int k = 0; k <= nt; k++) free(txt[k]);
    return st;
}

static bool is_eos(const llm *L, int32_t id)
{
    for (int i = 0; i < L->n_eos; i++)
        if (L->eos[i] == id) return true;
    return false;
}

/* Earliest stop-string match in r->text at or after from; SIZE_MAX if none. */
static size_t find_stop(const req *r, size_t from)
{
    size_t best = SIZE_MAX;
    for (int i = 0; i < r->n_stop; i++) {
        size_t n = r->stop_len[i];
        for (size_t p = from; p + n <= r->tlen && p < best; p++)
            if (memcmp(r->text + p, r->stop[i], n) == 0) { best = p; break; }
    }
    return best;
}

/* A sampled token: logprobs, text, stop conditions, one chunk.  Returns
 * false when the request is finished (and released). */
static bool on_token(llm *L, req *r, const float *row, int32_t id, uint64_t now)
{
    r->n_gen++;
    r->last = id;
    pthread_mutex_lock(&L->mu);
    L->m_gen_tokens++;
    if (r->n_gen == 1) dpb_hist_record(L->h_ttft, now - r->t_submit);
    else dpb_hist_record(L->h_itl, now - r->t_last);
    pthread_mutex_unlock(&L->mu);
    r->t_last = now;
    dpb_status st = DPB_OK;
    if (r->logprobs >= 0) st = add_logprob(L, r, row, id, true);
    const char *finish = NULL;
    bool eos = !r->ignore_eos && is_eos(L, id);
    if (eos) finish = "stop";
    else if (r->n_gen >= r->max_new || dpb_engine_seq_len(L->e, r->slot) + 1 > L->max_ctx) finish = "length";
    /* text */
    const char *t = NULL;
    size_t tl = 0;
    int route = 0;
    if (r->ts_ok && !eos) {
        if (r->harmony && dpb_harmony_split_token(&r->hs, id)) route = -1;
        else if (!st) st = dpb_tokenizer_stream_push(&r->ts, id, &t, &tl);
        if (!st && route == 0 && r->harmony) route = dpb_harmony_split_text(&r->hs, t, tl);
    }
    if (!st && finish && r->ts_ok && route == 0) {
        const char *tail;
        size_t tal;
        if (tl && (st = dpb_serve_buf_append(&r->text, &r->tlen, &r->tcap, t, tl)) == DPB_OK) tl = 0;
        if (!st && (st = dpb_tokenizer_stream_finish(&r->ts, &tail, &tal)) == DPB_OK && tal)
            st = dpb_serve_buf_append(&r->text, &r->tlen, &r->tcap, tail, tal);
    }
    if (st) {
        release_failed(L, r, "detokenizing or logprobs");
        return false;
    }
    if (route == 1) {
        if (dpb_gen_emit_reasoning(r->job, t, tl, 1) != DPB_OK) { release(L, r, "abort"); return false; }
        if (!finish) return true;
        if (dpb_gen_emit(r->job, "", 0, 0, finish) != DPB_OK) { release(L, r, "abort"); return false; }
        release(L, r, finish);
        return false;
    }
    if (route == 0 && tl && (st = dpb_serve_buf_append(&r->text, &r->tlen, &r->tcap, t, tl))) {
        release(L, r, "abort");
        return false;
    }
    size_t upto = r->tlen;
    if (r->n_stop) {
        size_t from = r->sent >= r->max_stop ? r->sent - r->max_stop + 1 : 0;
        size_t p = find_stop(r, from);
        if (p != SIZE_MAX) {
            upto = p;
            r->tlen = p;
            finish = "stop";
        } else if (!finish) {
            size_t hold = r->max_stop - 1; /* a stop string may be starting */
            upto = r->tlen > r->sent + hold ? r->tlen - hold : r->sent;
        }
    }
    if (upto < r->sent) upto = r->sent;
    if (dpb_gen_emit(r->job, r->text ? r->text + r->sent : "", upto - r->sent, 1, finish) != DPB_OK) {
        release(L, r, "abort");
        return false;
    }
    r->sent = upto;
    if (finish) {
        release(L, r, finish);
        return false;
    }
    return true;
}

static dpb_status ensure_logits(llm *L, size_t rows)
{
    if (rows <= L->logits_rows) return DPB_OK;
    size_t bytes;
    if (!dpb_mul_size(rows, (size_t)L->V * sizeof(float), &bytes))
        return dpb_error_set(DPB_E_NOMEM, "serve: logits buffer too large");
    float *nb = realloc(L->logits, bytes);
    if (!nb) return dpb_error_set(DPB_E_NOMEM, "serve: out of memory for %zu rows of logits", rows);
    L->logits = nb;
    L->logits_rows = rows;
    return DPB_OK;
}

/* One scheduling step; false when there was nothing to do. */
static bool step(llm *L)
{
    /* 1. admit */
    pthread_mutex_lock(&L->mu);
    for (int s = 0; s < L->max_batch && L->wq_head; s++) {
        if (L->slots[s]) continue;
        req *r = L->wq_head;
        L->wq_head = r->next;
        if (!L->wq_head) L->wq_tail = NULL;
        L->n_wait--;
        r->next = NULL;
        r->slot = s;
        r->state = R_PREFILL;
        L->slots[s] = r;
        L->m_prompt_tokens += (uint64_t)r->n_prompt;
    }
    pthread_mutex_unlock(&L->mu);
    /* 2. drop requests whose client has gone, or past the request time limit */
    uint64_t limit_ns = L->cfg.max_request_s > 0 ? (uint64_t)(L->cfg.max_request_s * 1e9) : 0, t_now = dpb_now_ns();
    for (int s = 0; s < L->max_batch; s++) {
        req *r = L->slots[s];
        if (!r) continue;
        if (dpb_gen_gone(r->job)) release(L, r, "abort");
        else if (limit_ns && t_now - r->t_submit > limit_ns) {
            fprintf(stderr, "deploybench serve: a request ran past --max-request-time %g s: ended\n", L->cfg.max_request_s);
            release(L, r, "abort");
        }
    }
    /* 3. the step's segments: decodes first, then prompt chunks */
    int ns = 0;
    bool need_all = false;
    for (int s = 0; s < L->max_batch; s++) {
        req *r = L->slots[s];
        if (r && r->state == R_PREFILL && r->echo && r->logprobs >= 0) need_all = true;
    }
    int64_t budget = need_all ? ALL_LOGITS_BUDGET : L->cfg.prefill_chunk;
    size_t rows = 0;
    for (int s = 0; s < L->max_batch; s++) {
        req *r = L->slots[s];
        if (!r || r->state != R_DECODE) continue;
        L->segs[ns] = (dpb_engine_seg){s, &r->last, 1};
        L->seg_req[ns++] = r;
        rows++;
    }
    for (int s = 0; s < L->max_batch && budget > 0; s++) {
        req *r = L->slots[s];
        if (!r || r->state != R_PREFILL) continue;
        int64_t n = r->n_prompt - r->n_done;
        if (n > budget) n = budget;
        budget -= n;
        L->segs[ns] = (dpb_engine_seg){s, r->ids + r->n_done, n};
        L->seg_req[ns++] = r;
        rows += need_all ? (size_t)n : 1;
    }
    pthread_mutex_lock(&L->mu);
    int64_t used = 0;
    uint64_t running = 0;
    for (int s = 0; s < L->max_batch; s++)
        if (L->slots[s]) {
            used += dpb_engine_seq_len(L->e, s);
            running++;
        }
    L->m_kv_used = used;
    L->m_running = running;
    pthread_mutex_unlock(&L->mu);
    if (!ns) return false;
    /* Every request of the step greedy and without logprobs: the engine's argmax (on the device where the
     * backend has one) instead of a vocabulary row of logits per request brought to the host. */
    bool greedy_ids = !need_all;
    for (int i = 0; i < ns && greedy_ids; i++) greedy_ids = L->seg_req[i]->sm.p.greedy && L->seg_req[i]->logprobs < 0;
    dpb_status st = greedy_ids ? DPB_OK : ensure_logits(L, need_all ? rows : (size_t)ns);
    pthread_mutex_lock(&L->mu);
    uint64_t step_no = L->m_steps + L->m_engine_errors + 1;
    pthread_mutex_unlock(&L->mu);
    if (!st && L->cfg.fault_step && step_no == L->cfg.fault_step)
        st = dpb_error_set(DPB_E_INTERNAL, "forward step %llu: injected fault (fault_step)", (unsigned long long)step_no);
    else if (!st && greedy_ids) st = dpb_engine_forward_argmax(L->e, L->segs, ns, L->seg_id);
    else if (!st) st = dpb_engine_forward(L->e, L->segs, ns, need_all ? DPB_LOGITS_ALL : DPB_LOGITS_LAST, L->logits);
    if (st) {
        pthread_mutex_lock(&L->mu);
        L->m_engine_errors++;
        pthread_mutex_unlock(&L->mu);
        char msg[600];
        snprintf(msg, sizeof msg, "engine failure: forward pass: %s", dpb_error_message());
        fprintf(stderr, "deploybench serve: %s\n", msg);
        for (int i = 0; i < ns; i++)
            if (L->slots[L->segs[i].seq] == L->seg_req[i]) release_err(L, L->seg_req[i], NULL, msg);
        return true;
    }
    pthread_mutex_lock(&L->mu);
    L->m_steps++;
    pthread_mutex_unlock(&L->mu);
    size_t row = 0;
    int nsamp = 0;
    for (int i = 0; i < ns; i++) {
        req *r = L->seg_req[i];
        int64_t n = L->segs[i].n;
        const float *last_row;
        if (need_all) {
            last_row = L->logits + (row + (size_t)n - 1) * (size_t)L->V;
            if (r->state == R_PREFILL && r->echo && r->logprobs >= 0) {
                bool ok = true;
                if (r->n_done == 0) ok = add_logprob(L, r, NULL, r->ids[0], false) == DPB_OK;
                for (int64_t j = 0; j < n && ok; j++) {
                    int64_t p = r->n_done + j; /* row j predicts prompt token p + 1 */
                    if (p + 1 < r->n_prompt)
                        ok = add_logprob(L, r, L->logits + (row + (size_t)j) * (size_t)L->V, r->ids[p + 1], true) == DPB_OK;
                }
                if (!ok) {
                    release(L, r, "abort");
                    row += (size_t)n;
                    continue;
                }
            }
            row += (size_t)n;
        } else last_row = greedy_ids ? NULL : L->logits + (size_t)i * (size_t)L->V;
        if (r->state == R_PREFILL) {
            r->n_done += n;
            if (r->n_done < r->n_prompt) continue;
            r->state = R_DECODE;
            if (r->echo) {
                if (dpb_gen_emit(r->job, r->echo_text ? r->echo_text : "", r->echo_len, 0, NULL) != DPB_OK) {
                    release(L, r, "abort");
                    continue;
                }
            }
        }
        L->samp_req[nsamp] = r;
        if (greedy_ids) L->samp_id[nsamp] = L->seg_id[i];
        L->samp_row[nsamp++] = last_row;
    }
    /* Sampling reads a whole vocabulary row per request: spread over the
     * backend's threads (each request has its own sampler and generator). */
    /* CPU backend: its threads; CUDA (whose host threads idle meanwhile): --threads-engine or all cores */
    const dpb_backend *be = dpb_engine_backend(L->e);
    int nt = strcmp(be->ops->name, "cuda") == 0 ? (L->cfg.threads > 0 ? L->cfg.threads : omp_get_num_procs()) : be->threads;
#pragma omp parallel for num_threads(nt > 0 ? nt : 1) schedule(dynamic, 1) if (nt > 1 && nsamp > 1 && !greedy_ids)
    for (int i = 0; i < nsamp; i++)
        L->samp_st[i] = greedy_ids ? DPB_OK : dpb_token_sampler_sample(&L->samp_req[i]->sm, L->samp_row[i], &L->samp_id[i]);
    uint64_t now = dpb_now_ns();
    for (int i = 0; i < nsamp; i++) {
        if (L->samp_st[i] != DPB_OK) {
            dpb_error_set(L->samp_st[i], "request: the sampler failed (status %d)", (int)L->samp_st[i]);
            release_failed(L, L->samp_req[i], "sampling");
            continue;
        }
        on_token(L, L->samp_req[i], L->samp_row[i], L->samp_id[i], now);
    }
    return true;
}

static void *sched_main(void *arg)
{
    llm *L = arg;
    prctl(PR_SET_NAME, "dpb-sched", 0, 0, 0);
    for (;;) {
        pthread_mutex_lock(&L->mu);
        bool idle = true;
        for (int s = 0; s < L->max_batch && idle; s++) idle = L->slots[s] == NULL;
        while (!L->stop && idle && !L->wq_head) pthread_cond_wait(&L->cv, &L->mu);
        bool stop = L->stop;
        pthread_mutex_unlock(&L->mu);
        if (stop) break;
        step(L);
    }
    return NULL;
}

/* ---- metrics ---- */

static const double k_buckets_s[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

/* Cumulative counts at the bucket bounds, from the log-linear histogram
 * (each bucket boundary is resolved to within 2^-11 of its value). */
static dpb_status hist_prom(char **b, size_t *len, size_t *cap, const char *name, const char *help, const dpb_hist *h)
{
    dpb_status st = dpb_serve_buf_appendf(b, len, cap, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t total = dpb_hist_count(h);
    for (size_t k = 0; !st && k < sizeof k_buckets_s / sizeof k_buckets_s[0]; k++) {
        uint64_t bound = (uint64_t)(k_buckets_s[k] * 1e9);
        uint64_t cnt = 0;
        if (total) {
            uint64_t lo = 0, hi = total; /* largest rank r with percentile(rank) <= bound */
            while (lo < hi) {
                uint64_t mid = lo + (hi - lo + 1) / 2;
                double v;
                dpb_hist_percentile(h, 100.0 * (double)mid / (double)total, &v);
                if (v <= (double)bound) lo = mid;
                else hi = mid - 1;
            }
            cnt = lo;
        }
        st = dpb_serve_buf_appendf(b, len, cap, "%s_bucket{le=\"%g\"} %llu\n", name, k_buckets_s[k], (unsigned long long)cnt);
    }
    double mean = 0;
    if (total) dpb_hist_mean(h, &mean);
    if (!st) st = dpb_serve_buf_appendf(b, len, cap, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9g\n%s_count %llu\n", name,
                          (unsigned long long)total, name, mean * (double)total / 1e9, name, (unsigned long long)total);
    return st;
}

static dpb_status metrics(void *ctx, char **b, size_t *len)
{
    llm *L = ctx;
    size_t cap = 0;
    *b = NULL;
    *len = 0;
    pthread_mutex_lock(&L->mu);
    double kv = (double)L->m_kv_used / ((double)L->max_batch * (double)L->max_ctx);
    dpb_status st = dpb_serve_buf_appendf(
        b, len, &cap,
        "# HELP dpb_requests_total Requests by outcome.\n# TYPE dpb_requests_total counter\n"
        "dpb_requests_total{outcome=\"finished\"} %llu\ndpb_requests_total{outcome=\"aborted\"} %llu\n"
        "dpb_requests_total{outcome=\"rejected_invalid\"} %llu\ndpb_requests_total{outcome=\"rejected_queue_full\"} %llu\n"
        "dpb_requests_total{outcome=\"failed\"} %llu\n"
        "# HELP dpb_prompt_tokens_total Prompt tokens admitted.\n# TYPE dpb_prompt_tokens_total counter\n"
        "dpb_prompt_tokens_total %llu\n"
        "# HELP dpb_generation_tokens_total Tokens generated.\n# TYPE dpb_generation_tokens_total counter\n"
        "dpb_generation_tokens_total %llu\n",
        (unsigned long long)L->m_requests[0], (unsigned long long)L->m_requests[1], (unsigned long long)L->m_requests[2],
        (unsigned long long)L->m_requests[3], (unsigned long long)L->m_requests[4], (unsigned long long)L->m_prompt_tokens, (unsigned long long)L->m_gen_tokens);
    if (!st)
        st = dpb_serve_buf_appendf(b, len, &cap,
                     "# HELP dpb_num_requests_waiting Requests in the queue.\n# TYPE dpb_num_requests_waiting gauge\n"
                     "dpb_num_requests_waiting %llu\n"
                     "# HELP dpb_num_requests_running Requests holding a sequence slot.\n# TYPE dpb_num_requests_running gauge\n"
                     "dpb_num_requests_running %llu\n"
                     "# HELP dpb_kv_cache_usage_perc KV tokens in use / (slots x max_model_len).\n"
                     "# TYPE dpb_kv_cache_usage_perc gauge\ndpb_kv_cache_usage_perc %.6f\n"
                     "# HELP dpb_engine_steps_total Forward steps.\n# TYPE dpb_engine_steps_total counter\n"
                     "dpb_engine_steps_total %llu\n"
                     "# HELP dpb_engine_errors_total Failed forward steps.\n# TYPE dpb_engine_errors_total counter\n"
                     "dpb_engine_errors_total %llu\n",
                     (unsigned long long)L->n_wait, (unsigned long long)L->m_running, kv,
                     (unsigned long long)L->m_steps, (unsigned long long)L->m_engine_errors);
    if (!st) st = hist_prom(b, len, &cap, "dpb_time_to_first_token_seconds", "From submit to the first token sampled.", L->h_ttft);
    if (!st) st = hist_prom(b, len, &cap, "dpb_inter_token_latency_seconds", "Between consecutive tokens of a request.", L->h_itl);
    pthread_mutex_unlock(&L->mu);
    if (st) {
        free(*b);
        *b = NULL;
    }
    return st;
}

/* ---- life cycle ---- */

void dpb_llm_engine_config_default(dpb_llm_engine_config *c)
{
    memset(c, 0, sizeof *c);
    c->backend = "cpu";
    c->dtype = DPB_ENGINE_BF16;
    c->max_batch = 16;
    c->max_queue = 1024;
    c->prefill_chunk = 256;
    c->max_request_s = 600;
}

void dpb_llm_engine_destroy(dpb_serve_engine *eng)
{
    if (!eng) return;
    llm *L = (llm *)eng;
    if (L->thr_ok) {
        pthread_mutex_lock(&L->mu);
        L->stop = true;
        pthread_cond_broadcast(&L->cv);
        pthread_mutex_unlock(&L->mu);
        pthread_join(L->thr, NULL);
    }
    while (L->wq_head) {
        req *r = L->wq_head;
        L->wq_head = r->next;
        dpb_gen_finish(r->job, "abort");
        req_free(r);
    }
    if (L->slots)
        for (int s = 0; s < L->max_batch; s++)
            if (L->slots[s]) {
                dpb_gen_finish(L->slots[s]->job, "abort");
                req_free(L->slots[s]);
            }
    free(L->slots);
    free(L->logits);
    free(L->segs);
    free(L->seg_req);
    free(L->samp_req);
    free(L->samp_row);
    free(L->samp_id);
    free(L->seg_id);
    free(L->samp_st);
    dpb_hist_free(L->h_ttft);
    dpb_hist_free(L->h_itl);
    dpb_engine_destroy(L->e);
    dpb_tokenizer_free(L->tok_enc);
    dpb_tokenizer_free(L->tok_dec);
    if (L->ck) dpb_checkpoint_close(L->ck);
    pthread_mutex_destroy(&L->mu);
    pthread_cond_destroy(&L->cv);
    free(L->model_id);
    free(L);
}

static void destroy_cb(void *ctx) { dpb_llm_engine_destroy(ctx); }

dpb_engine *dpb_llm_engine_engine(dpb_serve_engine *e) { return ((llm *)e)->e; }

dpb_status dpb_llm_engine_create(const dpb_llm_engine_config *c, dpb_serve_engine **out)
{
    *out = NULL;
    if (!c->model) return dpb_error_set(DPB_E_ARG, "serve: --model is required");
    if (c->max_batch < 1 || c->max_batch > 4096) return dpb_error_set(DPB_E_ARG, "serve: --max-batch %d is outside [1, 4096]", c->max_batch);
    if (c->prefill_chunk < 1) return dpb_error_set(DPB_E_ARG, "serve: prefill chunk must be >= 1");
    llm *L = calloc(1, sizeof *L);
    if (!L) return dpb_error_set(DPB_E_NOMEM, "serve: out of memory");
    L->cfg = *c;
    pthread_mutex_init(&L->mu, NULL);
    pthread_cond_init(&L->cv, NULL);
    dpb_status st;
    dpb_checkpoint_opts co = {0};
    co.tokenizer = c->tokenizer;
    if ((st = dpb_checkpoint_open(c->model, &co, &L->ck))) goto fail;
    const dpb_model_config *cfg = dpb_checkpoint_config(L->ck);
    const dpb_generation_config *gen = dpb_checkpoint_generation(L->ck);
    int64_t maxpos = cfg->max_position_embeddings > 0 ? cfg->max_position_embeddings : 4096;
    L->max_ctx = c->max_model_len > 0 ? c->max_model_len : (maxpos < 4096 ? maxpos : 4096);
    L->max_batch = c->max_batch;
    L->V = cfg->vocab_size;
    if ((st = dpb_chat_template_choose(L->ck, c->chat_template, &L->tpl))) goto fail;
    const char *tp = dpb_checkpoint_tokenizer_path(L->ck);
    if (tp) {
        if ((st = dpb_tokenizer_load(tp, &L->tok_enc))) goto fail;
        if ((st = dpb_tokenizer_load(tp, &L->tok_dec))) goto fail;
    }
    if (gen->n_eos > 0) {
        L->n_eos = gen->n_eos;
        memcpy(L->eos, gen->eos_ids, (size_t)gen->n_eos * sizeof L->eos[0]);
    } else {
        L->n_eos = cfg->n_eos;
        memcpy(L->eos, cfg->eos_ids, (size_t)cfg->n_eos * sizeof L->eos[0]);
    }
    if (L->tpl == DPB_CHAT_HARMONY && L->tok_dec) { /* harmony ends a turn with <|return|> or <|call|> */
        const char *ends[2] = {"<|return|>", "<|call|>"};
        for (int i = 0; i < 2; i++) {
            int32_t id = dpb_tokenizer_token_id(L->tok_dec, ends[i]);
            if (id >= 0 && id < L->V && !is_eos(L, id)) L->eos[L->n_eos++] = id;
        }
    }
    dpb_engine_opts eo = {0};
    eo.backend = c->backend ? c->backend : "cpu";
    eo.threads = c->threads;
    eo.dtype = c->dtype;
    eo.kv = c->kv;
    eo.max_ctx = L->max_ctx;
    eo.max_seqs = c->max_batch;
    eo.prefill_chunk = c->prefill_chunk;
    if ((st = dpb_engine_create(L->ck, &eo, &L->e))) goto fail;
    L->slots = calloc((size_t)c->max_batch, sizeof *L->slots);
    L->segs = calloc((size_t)c->max_batch, sizeof *L->segs);
    L->seg_req = calloc((size_t)c->max_batch, sizeof *L->seg_req);
    L->samp_req = calloc((size_t)c->max_batch, sizeof *L->samp_req);
    L->samp_row = calloc((size_t)c->max_batch, sizeof *L->samp_row);
    L->samp_id = calloc((size_t)c->max_batch, sizeof *L->samp_id);
    L->seg_id = calloc((size_t)c->max_batch, sizeof *L->seg_id);
    L->samp_st = calloc((size_t)c->max_batch, sizeof *L->samp_st);
    if (!L->slots || !L->segs || !L->seg_req || !L->samp_req || !L->samp_row || !L->samp_id || !L->seg_id || !L->samp_st) { st = dpb_error_set(DPB_E_NOMEM, "serve: out of memory"); goto fail; }
    if ((st = dpb_hist_create(&L->h_ttft)) || (st = dpb_hist_create(&L->h_itl))) goto fail;
    L->model_id = strdup(c->model_id ? c->model_id : c->model);
    if (!L->model_id) { st = dpb_error_set(DPB_E_NOMEM, "serve: out of memory"); goto fail; }
    L->eng.kind = eo.backend;
    L->eng.model_id = L->model_id;
    L->eng.max_model_len = (uint64_t)L->max_ctx;
    L->eng.ctx = L;
    L->eng.submit = submit;
    L->eng.destroy = destroy_cb;
    L->eng.metrics = metrics;
    if (pthread_create(&L->thr, NULL, sched_main, L) != 0) {
        st = dpb_error_set(DPB_E_INTERNAL, "serve: cannot start the scheduler thread");
        goto fail;
    }
    L->thr_ok = true;
    *out = &L->eng;
    return DPB_OK;
fail:
    dpb_llm_engine_destroy(&L->eng);
    return st;
}
