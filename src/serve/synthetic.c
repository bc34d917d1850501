#include "serve/synthetic.h"

#include <math.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include "core/timeutil.h"

typedef struct item {
    uint64_t due_ns;
    uint64_t left;    /* tokens still to emit */
    uint64_t emitted;
    dpb_gen_job *job;
} item;

typedef struct synth synth;

/* One scheduling thread with its own heap; requests are spread over shards. */
typedef struct shard {
    synth *s;
    pthread_t thr;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    item *heap;
    size_t n, cap;
    uint64_t rng;
    bool stop, started;
} shard;

struct synth {
    dpb_serve_engine eng;
    dpb_synth_engine_config cfg;
    char *model_id;
    shard *shards;
    unsigned nshards;
    atomic_uint next;
    atomic_uint_fast64_t inflight;
};

static const char *const k_words[] = {" the", " of", " and", " to", " in", " is", " that", " it"};
#define N_WORDS (sizeof k_words / sizeof k_words[0])

static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* interval_ns plus a uniform jitter in [-j, +j], at least 0. */
static uint64_t jittered(shard *s, double ms)
{
    double v = ms;
    if (s->s->cfg.jitter_ms > 0)
        v += s->s->cfg.jitter_ms * (2.0 * (double)(rnd(&s->rng) >> 11) / 9007199254740992.0 - 1.0);
    if (v < 0) v = 0;
    return (uint64_t)llround(v * 1e6);
}

static void heap_up(item *h, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p].due_ns <= h[i].due_ns) break;
        item t = h[p]; h[p] = h[i]; h[i] = t;
        i = p;
    }
}

static void heap_down(item *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && h[l].due_ns < h[m].due_ns) m = l;
        if (r < n && h[r].due_ns < h[m].due_ns) m = r;
        if (m == i) return;
        item t = h[m]; h[m] = h[i]; h[i] = t;
        i = m;
    }
}

static bool heap_push(shard *s, item it)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 1024;
        item *nh = realloc(s->heap, cap * sizeof *nh);
        if (!nh) return false;
        s->heap = nh;
        s->cap = cap;
    }
    s->heap[s->n] = it;
    heap_up(s->heap, s->n++);
    return true;
}

static item heap_pop(shard *s)
{
    item top = s->heap[0];
    s->heap[0] = s->heap[--s->n];
    heap_down(s->heap, s->n, 0);
    return top;
}

static void *run(void *arg)
{
    shard *s = arg;
    const dpb_synth_engine_config *cfg = &s->s->cfg;
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); /* 1 ns: wake on time, not up to 50 us late */
    size_t bcap = 256, bn;
    item *batch = malloc(bcap * sizeof *batch);
    char text[4096];
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        if (s->n == 0) {
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        uint64_t now = dpb_now_ns();
        if (s->heap[0].due_ns > now) {
            struct timespec ts = {(time_t)(s->heap[0].due_ns / 1000000000ull), (long)(s->heap[0].due_ns % 1000000000ull)};
            pthread_cond_timedwait(&s->cv, &s->mu, &ts);
            continue;
        }
        bn = 0;
        while (s->n && s->heap[0].due_ns <= now) {
            if (bn == bcap) {
                item *nb = batch ? realloc(batch, 2 * bcap * sizeof *nb) : NULL;
                if (!nb) break;
                batch = nb;
                bcap *= 2;
            }
            batch[bn++] = heap_pop(s);
        }
        pthread_mutex_unlock(&s->mu);
        for (size_t i = 0; i < bn; i++) {
            item *it = &batch[i];
            uint64_t k = it->emitted == 0 ? 1 : cfg->tokens_per_chunk;
            if (k > it->left) k = it->left;
            size_t tl = 0;
            for (uint64_t t = 0; t < k && tl + 8 < sizeof text; t++) {
                const char *w = k_words[(it->emitted + t) % N_WORDS];
                size_t wl = strlen(w);
                memcpy(text + tl, w, wl);
                tl += wl;
            }
            it->left -= k;
            it->emitted += k;
            dpb_status st = dpb_gen_emit(it->job, text, tl, (uint32_t)k, it->left == 0 ? "length" : NULL);
            if (st != DPB_OK || it->left == 0) {
                dpb_gen_finish(it->job, st != DPB_OK ? "abort" : "length");
                it->job = NULL;
                atomic_fetch_sub(&s->s->inflight, 1);
            } else {
                it->due_ns += jittered(s, cfg->itl_ms * (double)(it->left < cfg->tokens_per_chunk ? it->left : cfg->tokens_per_chunk));
            }
        }
        pthread_mutex_lock(&s->mu);
        for (size_t i = 0; i < bn; i++)
            if (batch[i].job && !heap_push(s, batch[i])) {
                dpb_gen_finish(batch[i].job, "abort");
                atomic_fetch_sub(&s->s->inflight, 1);
            }
    }
    while (s->n) {
        dpb_gen_finish(heap_pop(s).job, "abort");
        atomic_fetch_sub(&s->s->inflight, 1);
    }
    pthread_mutex_unlock(&s->mu);
    free(batch);
    return NULL;
}

static uint64_t count_words(const char *p)
{
    uint64_t n = 0;
    bool in = false;
    for (; *p; p++) {
        bool sp = *p == ' ' || *p == '\n' || *p == '\t' || *p == '\r';
        if (!sp && !in) n++;
        in = !sp;
    }
    return n;
}

static dpb_status submit(void *ctx, const dpb_serve_request *rq, dpb_gen_job *job)
{
    synth *S = ctx;
    uint64_t now = dpb_now_ns();
    uint64_t prompt = 0;
    if (rq->api == DPB_API_COMPLETIONS) prompt = rq->prompt ? count_words(rq->prompt) : rq->n_prompt_ids;
    else {
        const cJSON *m;
        cJSON_ArrayForEach(m, rq->messages)
        {
            const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
            if (cJSON_IsString(c)) prompt += count_words(c->valuestring);
        }
    }
    uint64_t max = rq->max_tokens ? rq->max_tokens : S->cfg.default_max_tokens;
    if (prompt + max > S->cfg.max_model_len)
        return dpb_error_set(DPB_E_RANGE,
                             "request: prompt (%llu tokens) + max_tokens (%llu) exceeds the context of %llu tokens",
                             (unsigned long long)prompt, (unsigned long long)max,
                             (unsigned long long)S->cfg.max_model_len);
    uint64_t inflight = atomic_fetch_add(&S->inflight, 1);
    if (S->cfg.max_queue && inflight >= S->cfg.max_queue) {
        atomic_fetch_sub(&S->inflight, 1);
        return dpb_error_set(DPB_E_UNAVAILABLE, "server busy: %llu requests in flight", (unsigned long long)inflight);
    }
    dpb_gen_set_prompt_tokens(job, prompt);
    shard *s = &S->shards[atomic_fetch_add(&S->next, 1) % S->nshards];
    pthread_mutex_lock(&s->mu);
    if (s->stop) {
        pthread_mutex_unlock(&s->mu);
        atomic_fetch_sub(&S->inflight, 1);
        return dpb_error_set(DPB_E_UNAVAILABLE, "server stopping");
    }
    item it = {now + jittered(s, S->cfg.ttft_ms), max, 0, job};
    bool ok = heap_push(s, it);
    bool wake = ok && s->heap[0].job == job;
    pthread_mutex_unlock(&s->mu);
    if (!ok) {
        atomic_fetch_sub(&S->inflight, 1);
        return dpb_error_set(DPB_E_NOMEM, "server: out of memory queueing a request");
    }
    if (wake) pthread_cond_signal(&s->cv);
    return DPB_OK;
}

static void destroy(void *ctx)
{
    synth *S = ctx;
    for (unsigned i = 0; S->shards && i < S->nshards; i++) {
        shard *s = &S->shards[i];
        if (s->started) {
            pthread_mutex_lock(&s->mu);
            s->stop = true;
            pthread_cond_signal(&s->cv);
            pthread_mutex_unlock(&s->mu);
            pthread_join(s->thr, NULL);
        }
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        free(s->heap);
    }
    free(S->shards);
    free(S->model_id);
    free(S);
}

void dpb_synth_engine_config_default(dpb_synth_engine_config *c)
{
    memset(c, 0, sizeof *c);
    c->ttft_ms = 50;
    c->itl_ms = 10;
    c->tokens_per_chunk = 1;
    c->default_max_tokens = 16;
    c->max_model_len = 1u << 20;
    c->seed = 1;
    c->model_id = "synthetic";
}

dpb_status dpb_synth_engine_create(const dpb_synth_engine_config *c, dpb_serve_engine **out)
{
    *out = NULL;
    if (!(c->ttft_ms >= 0 && c->itl_ms >= 0 && c->jitter_ms >= 0) || c->tokens_per_chunk < 1 ||
        c->default_max_tokens < 1 || c->max_model_len < 2 || c->threads > 256)
        return dpb_error_set(DPB_E_ARG, "synthetic engine: invalid schedule (ttft, itl, jitter >= 0; tokens per chunk >= 1; threads <= 256)");
    synth *S = calloc(1, sizeof *S);
    if (!S) return dpb_error_set(DPB_E_NOMEM, "synthetic engine: out of memory");
    S->cfg = *c;
    S->nshards = c->threads ? c->threads : 1;
    S->model_id = strdup(c->model_id ? c->model_id : "synthetic");
    S->shards = calloc(S->nshards, sizeof *S->shards);
    atomic_init(&S->next, 0);
    atomic_init(&S->inflight, 0);
    S->eng.kind = "synthetic";
    S->eng.model_id = S->model_id;
    S->eng.max_model_len = c->max_model_len;
    S->eng.ctx = S;
    S->eng.submit = submit;
    S->eng.destroy = destroy;
    if (!S->model_id || !S->shards) {
        free(S->shards);
        S->shards = NULL;
        destroy(S);
        return dpb_error_set(DPB_E_NOMEM, "synthetic engine: out of memory");
    }
    for (unsigned i = 0; i < S->nshards; i++) {
        shard *s = &S->shards[i];
        s->s = S;
        s->rng = c->seed + i * 0x9E3779B97F4A7C15ull;
        pthread_mutex_init(&s->mu, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&s->cv, &ca);
        pthread_condattr_destroy(&ca);
    }
    for (unsigned i = 0; i < S->nshards; i++) {
        if (pthread_create(&S->shards[i].thr, NULL, run, &S->shards[i]) != 0) {
            destroy(S);
            return dpb_error_set(DPB_E_INTERNAL, "synthetic engine: cannot start its threads");
        }
        S->shards[i].started = true;
    }
    *out = &S->eng;
    return DPB_OK;
}

void dpb_synth_engine_destroy(dpb_serve_engine *e)
{
    if (e) e->destroy(e->ctx);
}
