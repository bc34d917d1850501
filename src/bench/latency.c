#include "tokenizer/chat_choose.h"
#include "bench/latency.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/checked.h"
#include "core/file.h"
#include "core/signal.h"

/* ---- prompts ---- */

dpb_status dpb_study_prompts_init(const dpb_checkpoint *ck, uint64_t seed, dpb_study_prompts *out)
{
    memset(out, 0, sizeof *out);
    const dpb_model_config *cfg = dpb_checkpoint_config(ck);
    out->vocab = cfg->vocab_size;
    out->seed = seed;
    if (out->vocab < 1) return dpb_error_set(DPB_E_FORMAT, "config.json/vocab_size: %lld", (long long)out->vocab);
    const char *path = dpb_checkpoint_tokenizer_path(ck);
    if (!path) {
        snprintf(out->kind, sizeof out->kind, "random ids (model has no tokenizer)");
        return DPB_OK;
    }
    dpb_status st = dpb_tokenizer_load(path, &out->tok);
    if (st) return dpb_error_prefix(st, "tokenizer %s", path);
    st = dpb_chat_template_choose(ck, NULL, &out->tpl);
    if (st) {
        dpb_tokenizer_free(out->tok);
        out->tok = NULL;
        return st;
    }
    snprintf(out->kind, sizeof out->kind, "templated (%s), exact length", dpb_chat_template_name(out->tpl));
    return DPB_OK;
}

dpb_status dpb_study_prompt_make(dpb_study_prompts *p, int64_t n, uint64_t req, int32_t *ids)
{
    if (n < 1) return dpb_error_set(DPB_E_ARG, "prompt length %lld: must be at least 1", (long long)n);
    if (!p->tok) {
        uint64_t x = p->seed * 0x9e3779b97f4a7c15ull + req + 1;
        for (int64_t i = 0; i < n; i++) {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            ids[i] = (int32_t)((x * 0x2545f4914f6cdd1dull >> 33) % (uint64_t)p->vocab);
        }
        return DPB_OK;
    }
    dpb_exact_prompt_options o = {0};
    o.tpl = p->tpl;
    dpb_chat_options_default(&o.chat);
    o.chat.date = "2025-08-05"; /* fixed: the same prompt on every day */
    if (p->reasoning) o.chat.reasoning = p->reasoning;
    o.seed = p->seed * 1000003u + req;
    char *msg = NULL;
    dpb_tokens t = {0};
    dpb_status st = dpb_tokenizer_exact_prompt(p->tok, &o, (size_t)n, &msg, &t);
    free(msg);
    if (st == DPB_OK && t.n != (size_t)n)
        st = dpb_error_set(DPB_E_INTERNAL, "exact prompt: %zu tokens for %lld asked", t.n, (long long)n);
    if (st == DPB_OK) {
        for (int64_t i = 0; i < n; i++) {
            if (t.ids[i] < 0 || t.ids[i] >= p->vocab) {
                st = dpb_error_set(DPB_E_RANGE, "prompt token %d at %lld: outside the model's vocabulary of %lld",
                                   t.ids[i], (long long)i, (long long)p->vocab);
                break;
            }
            ids[i] = t.ids[i];
        }
    }
    dpb_tokens_free(&t);
    return st;
}

void dpb_study_prompts_free(dpb_study_prompts *p)
{
    dpb_tokenizer_free(p->tok);
    p->tok = NULL;
}

/* ---- requests ---- */

void dpb_request_metrics_compute(const dpb_gen_result *r, dpb_request_metrics *m)
{
    memset(m, 0, sizeof *m);
    m->n = r->n;
    if (r->n < 1) return;
    uint64_t first = r->t_ns[0] - r->t_start_ns, last = r->t_ns[r->n - 1] - r->t_start_ns;
    m->ttft_ms = (double)first * 1e-6;
    m->e2e_ms = (double)last * 1e-6;
    m->prefill_ms = (double)(r->t_prefill_done_ns - r->t_start_ns) * 1e-6;
    m->tpot_ok = r->n >= 2;
    if (m->tpot_ok) m->tpot_ms = (double)(last - first) * 1e-6 / (double)(r->n - 1);
    m->seed_tpot_tokps = last > 0 ? (double)r->n / ((double)last * 1e-9) : 0;
}

static const char *stop_name(dpb_stop_reason s)
{
    return s == DPB_STOP_EOS ? "eos" : s == DPB_STOP_CONTEXT ? "context" : "length";
}

cJSON *dpb_request_json(const dpb_gen_result *r, const dpb_request_metrics *m)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "n_generated", (double)m->n);
    cJSON_AddNumberToObject(o, "ttft_ms", m->ttft_ms);
    if (m->tpot_ok) cJSON_AddNumberToObject(o, "tpot_ms", m->tpot_ms);
    else cJSON_AddStringToObject(o, "tpot_ms", "unavailable: fewer than 2 tokens");
    cJSON_AddNumberToObject(o, "e2e_ms", m->e2e_ms);
    cJSON_AddNumberToObject(o, "prefill_ms", m->prefill_ms);
    cJSON_AddNumberToObject(o, "seed_TPOT_tokps_prefill_included", m->seed_tpot_tokps);
    cJSON_AddStringToObject(o, "stop", stop_name(r->stop));
    cJSON_AddNumberToObject(o, "t_start_ns", (double)r->t_start_ns);
    cJSON *a = cJSON_AddArrayToObject(o, "token_times_ms");
    for (int64_t i = 0; i < r->n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber((double)(r->t_ns[i] - r->t_start_ns) * 1e-6));
    return o;
}

/* ---- statistics ---- */

void dpb_stat_from_hist(const dpb_hist *h, double scale, dpb_stat *s)
{
    memset(s, 0, sizeof *s);
    s->count = dpb_hist_count(h);
    if (s->count == 0) return;
    uint64_t mn, mx;
    dpb_hist_min(h, &mn);
    dpb_hist_max(h, &mx);
    dpb_hist_mean(h, &s->mean);
    dpb_hist_stddev(h, &s->std);
    dpb_hist_percentile(h, 50, &s->p50);
    dpb_hist_percentile(h, 95, &s->p95);
    dpb_hist_percentile(h, 99, &s->p99);
    s->cv = s->mean > 0 ? s->std / s->mean : 0;
    s->mean *= scale;
    s->std *= scale;
    s->p50 *= scale;
    s->p95 *= scale;
    s->p99 *= scale;
    s->min = (double)mn * scale;
    s->max = (double)mx * scale;
    s->ok = true;
}

void dpb_stat_add_json(cJSON *o, const char *prefix, const dpb_stat *s)
{
    static const char *const names[] = {"mean", "std", "p50", "p95", "p99", "min", "max"};
    const double v[] = {s->mean, s->std, s->p50, s->p95, s->p99, s->min, s->max};
    char key[96];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(key, sizeof key, "%s_%s", prefix, names[i]);
        if (s->ok) cJSON_AddNumberToObject(o, key, v[i]);
        else cJSON_AddStringToObject(o, key, "unavailable: no samples");
    }
}

/* ---- cells ---- */

const char *const dpb_latency_csv_columns[] = {
    "cell", "prompt_tokens", "gen_tokens", "batch", "requests", "prompt_kind", "backend",
    "ttft_ms_mean", "ttft_ms_std", "ttft_ms_p50", "ttft_ms_p95", "ttft_ms_p99", "ttft_ms_min", "ttft_ms_max",
    "tpot_ms_mean", "tpot_ms_std", "tpot_ms_p50", "tpot_ms_p95", "tpot_ms_p99", "tpot_ms_min", "tpot_ms_max",
    "itl_ms_mean", "itl_ms_std", "itl_ms_p50", "itl_ms_p95", "itl_ms_p99", "itl_ms_min", "itl_ms_max",
    "e2e_ms_mean", "e2e_ms_std", "e2e_ms_p50", "e2e_ms_p95", "e2e_ms_p99", "e2e_ms_min", "e2e_ms_max",
    "prefill_ms_mean", "prefill_tok_s", "decode_tok_s_per_seq", "decode_tok_s_aggregate",
    "seed_TPOT_tokps_prefill_included", "ttft_cv", "tpot_cv", "e2e_cv", "unstable", "kv_bytes",
    "percentile_method", "output_tokens_mean", NULL};

void dpb_latency_cell_key(const dpb_latency_cell *c, char *buf, size_t cap)
{
    snprintf(buf, cap, "p%lld_g%lld_b%d", (long long)c->prompt_tokens, (long long)c->gen_tokens, c->batch);
}

typedef struct cell_acc {
    dpb_hist *h[5]; /* ttft, tpot, itl, e2e, prefill (ns) */
    double prompt_tok, prefill_s, decode_tok, decode_s, seed_sum;
    double round_decode_tok, round_decode_s, out_tok;
    uint64_t n_req;
} cell_acc;

static dpb_status run_round(dpb_engine *e, dpb_study_prompts *p, const dpb_latency_cell *c, int32_t *ids,
                            dpb_gen_request *rq, dpb_gen_result *res, uint64_t req_base)
{
    for (int s = 0; s < c->batch; s++) {
        int32_t *pi = ids + (size_t)s * (size_t)c->prompt_tokens;
        dpb_status st = dpb_study_prompt_make(p, c->prompt_tokens, req_base + (uint64_t)s, pi);
        if (st) return st;
        memset(&rq[s], 0, sizeof rq[s]);
        rq[s].prompt = pi;
        rq[s].n_prompt = c->prompt_tokens;
        rq[s].max_new = c->gen_tokens;
        rq[s].sampling = dpb_sampling_greedy();
        if (c->sampling) {
            rq[s].sampling = *c->sampling;
            rq[s].sampling.seed = c->sampling->seed + req_base + (uint64_t)s;
        }
        rq[s].ignore_eos = c->n_stop <= 0;
        if (c->n_stop > 0) {
            rq[s].n_stop = c->n_stop;
            rq[s].stop_ids = c->stop_ids;
        }
    }
    return dpb_engine_generate(e, rq, c->batch, res, NULL, NULL);
}

dpb_status dpb_latency_run_cell(dpb_engine *e, dpb_study_prompts *p, const dpb_latency_cell *c, dpb_request_fn fn,
                                dpb_round_fn round_fn, void *user, cJSON **summary)
{
    if (c->batch < 1 || c->batch > dpb_engine_max_seqs(e))
        return dpb_error_set(DPB_E_ARG, "--batch %d: the engine has %d sequence slots", c->batch, dpb_engine_max_seqs(e));
    if (c->gen_tokens < 2) return dpb_error_set(DPB_E_ARG, "--gen-tokens %lld: TPOT needs at least 2", (long long)c->gen_tokens);
    if (c->prompt_tokens < 1 || c->rounds < 1 || c->warmup < 0)
        return dpb_error_set(DPB_E_ARG, "latency cell: prompt %lld, rounds %d, warm-up %d", (long long)c->prompt_tokens,
                             c->rounds, c->warmup);
    int64_t need;
    if (!dpb_add_i64(c->prompt_tokens, c->gen_tokens, &need) || need > dpb_engine_max_ctx(e))
        return dpb_error_set(DPB_E_ARG, "--prompt-tokens %lld + --gen-tokens %lld exceed the engine's context %lld",
                             (long long)c->prompt_tokens, (long long)c->gen_tokens, (long long)dpb_engine_max_ctx(e));
    size_t nids;
    if (!dpb_mul_size((size_t)c->batch, (size_t)c->prompt_tokens, &nids))
        return dpb_error_set(DPB_E_RANGE, "latency cell: prompt ids overflow");
    int32_t *ids = malloc(nids * sizeof *ids);
    dpb_gen_request *rq = calloc((size_t)c->batch, sizeof *rq);
    dpb_gen_result *res = calloc((size_t)c->batch, sizeof *res);
    cell_acc a = {0};
    dpb_status st = DPB_OK;
    if (!ids || !rq || !res) st = dpb_error_set(DPB_E_NOMEM, "latency cell: out of memory");
    for (int i = 0; i < 5 && !st; i++) st = dpb_hist_create(&a.h[i]);
    for (int r = -c->warmup; r < c->rounds && !st; r++) {
        if (dpb_interrupted()) {
            st = dpb_error_set(DPB_E_INTERRUPTED, "interrupted");
            break;
        }
        uint64_t base = (uint64_t)(r + c->warmup) * (uint64_t)c->batch;
        st = run_round(e, p, c, ids, rq, res, base);
        if (st) break;
        if (r >= 0) {
            uint64_t dec_start = UINT64_MAX, dec_end = 0;
            for (int s = 0; s < c->batch && !st; s++) {
                dpb_gen_result *g = &res[s];
                dpb_request_metrics m;
                dpb_request_metrics_compute(g, &m);
                if (m.n < 1) {
                    st = dpb_error_set(DPB_E_INTERNAL, "request %d.%d generated no token", r, s);
                    break;
                }
                uint64_t first = g->t_ns[0] - g->t_start_ns, last = g->t_ns[g->n - 1] - g->t_start_ns;
                dpb_hist_record(a.h[0], first);
                dpb_hist_record(a.h[3], last);
                dpb_hist_record(a.h[4], g->t_prefill_done_ns - g->t_start_ns);
                if (m.tpot_ok) dpb_hist_record(a.h[1], (uint64_t)llround((double)(last - first) / (double)(g->n - 1)));
                for (int64_t i = 1; i < g->n; i++) dpb_hist_record(a.h[2], g->t_ns[i] - g->t_ns[i - 1]);
                a.prompt_tok += (double)c->prompt_tokens;
                a.prefill_s += (double)(g->t_prefill_done_ns - g->t_start_ns) * 1e-9;
                a.decode_tok += (double)(g->n - 1);
                a.decode_s += (double)(last - first) * 1e-9;
                a.round_decode_tok += (double)(g->n - 1);
                if (g->t_ns[0] < dec_start) dec_start = g->t_ns[0];
                if (g->t_ns[g->n - 1] > dec_end) dec_end = g->t_ns[g->n - 1];
                a.seed_sum += m.seed_tpot_tokps;
                a.out_tok += (double)g->n;
                a.n_req++;
                if (fn) st = fn(user, g, &m, r, s);
            }
            if (dec_end > dec_start) a.round_decode_s += (double)(dec_end - dec_start) * 1e-9;
        }
        for (int s = 0; s < c->batch; s++) dpb_gen_result_free(&res[s]);
        if (round_fn) round_fn(user);
    }
    if (st == DPB_OK) {
        dpb_stat s[5];
        for (int i = 0; i < 5; i++) dpb_stat_from_hist(a.h[i], 1e-6, &s[i]);
        double thr = c->cv_threshold > 0 ? c->cv_threshold : 0.10;
        cJSON *o = cJSON_CreateObject();
        char key[64];
        dpb_latency_cell_key(c, key, sizeof key);
        cJSON_AddStringToObject(o, "cell", key);
        cJSON_AddNumberToObject(o, "prompt_tokens", (double)c->prompt_tokens);
        cJSON_AddNumberToObject(o, "gen_tokens", (double)c->gen_tokens);
        cJSON_AddNumberToObject(o, "batch", c->batch);
        cJSON_AddNumberToObject(o, "requests", (double)a.n_req);
        cJSON_AddNumberToObject(o, "warmup_rounds", c->warmup);
        cJSON_AddStringToObject(o, "prompt_kind", p->kind);
        cJSON_AddStringToObject(o, "backend", dpb_engine_backend(e)->ops->name);
        dpb_stat_add_json(o, "ttft_ms", &s[0]);
        dpb_stat_add_json(o, "tpot_ms", &s[1]);
        dpb_stat_add_json(o, "itl_ms", &s[2]);
        dpb_stat_add_json(o, "e2e_ms", &s[3]);
        dpb_stat_add_json(o, "prefill_ms", &s[4]);
        cJSON_AddNumberToObject(o, "prefill_tok_s", a.prefill_s > 0 ? a.prompt_tok / a.prefill_s : 0);
        cJSON_AddNumberToObject(o, "decode_tok_s_per_seq", a.decode_s > 0 ? a.decode_tok / a.decode_s : 0);
        cJSON_AddNumberToObject(o, "decode_tok_s_aggregate",
                                a.round_decode_s > 0 ? a.round_decode_tok / a.round_decode_s : 0);
        cJSON_AddNumberToObject(o, "seed_TPOT_tokps_prefill_included", a.n_req ? a.seed_sum / (double)a.n_req : 0);
        cJSON_AddNumberToObject(o, "ttft_cv", s[0].cv);
        cJSON_AddNumberToObject(o, "tpot_cv", s[1].cv);
        cJSON_AddNumberToObject(o, "e2e_cv", s[3].cv);
        cJSON_AddNumberToObject(o, "cv_threshold", thr);
        bool unstable = s[0].cv > thr || s[1].cv > thr || s[3].cv > thr;
        cJSON_AddBoolToObject(o, "unstable", unstable);
        cJSON_AddNumberToObject(o, "kv_bytes", (double)dpb_engine_kv_bytes(e));
        cJSON_AddStringToObject(o, "percentile_method", DPB_HIST_PERCENTILE_METHOD);
        cJSON_AddNumberToObject(o, "output_tokens_mean", a.n_req ? a.out_tok / (double)a.n_req : 0);
        cJSON_AddBoolToObject(o, "stops_at_eos", c->n_stop > 0);
        *summary = o;
    }
    for (int i = 0; i < 5; i++) dpb_hist_free(a.h[i]);
    free(ids);
    free(rq);
    free(res);
    return st;
}

/* ---- files ---- */

static bool csv_needs_quote(const char *s)
{
    return strpbrk(s, ",\"\n\r") != NULL;
}

dpb_status dpb_csv_write_objects(const char *path, const char *const *columns, const cJSON *objs)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return dpb_error_set(DPB_E_NOMEM, "%s: out of memory", path);
    for (size_t i = 0; columns[i]; i++) fprintf(f, "%s%s", i ? "," : "", columns[i]);
    fputc('\n', f);
    const cJSON *o;
    cJSON_ArrayForEach(o, objs) {
        for (size_t i = 0; columns[i]; i++) {
            if (i) fputc(',', f);
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, columns[i]);
            if (cJSON_IsNumber(v)) {
                double d = v->valuedouble;
                if (d == floor(d) && fabs(d) < 1e15) fprintf(f, "%.0f", d);
                else fprintf(f, "%.6g", d);
            } else if (cJSON_IsBool(v)) {
                fputs(cJSON_IsTrue(v) ? "true" : "false", f);
            } else {
                const char *s = cJSON_IsString(v) ? v->valuestring : "unavailable";
                if (!csv_needs_quote(s)) fputs(s, f);
                else {
                    fputc('"', f);
                    for (const char *q = s; *q; q++) {
                        if (*q == '"') fputc('"', f);
                        fputc(*q, f);
                    }
                    fputc('"', f);
                }
            }
        }
        fputc('\n', f);
    }
    if (fclose(f) != 0 || !buf) {
        free(buf);
        return dpb_error_set(DPB_E_NOMEM, "%s: out of memory", path);
    }
    dpb_status st = dpb_file_write(path, buf, len);
    free(buf);
    return st;
}

dpb_status dpb_json_write_file(const char *path, const cJSON *v)
{
    char *js = cJSON_Print(v);
    if (!js) return dpb_error_set(DPB_E_NOMEM, "%s: out of memory", path);
    size_t n = strlen(js);
    char *t = realloc(js, n + 2);
    if (!t) {
        cJSON_free(js);
        return dpb_error_set(DPB_E_NOMEM, "%s: out of memory", path);
    }
    t[n] = '\n';
    t[n + 1] = 0;
    dpb_status st = dpb_file_write(path, t, n + 1);
    free(t);
    return st;
}

dpb_status dpb_parse_i64_list(const char *opt, const char *s, long long min, long long max, int64_t *out, size_t cap,
                              size_t *n)
{
    *n = 0;
    if (!s || !*s) return dpb_error_set(DPB_E_ARG, "%s needs a comma-separated list of whole numbers", opt);
    const char *p = s;
    while (*p) {
        if (*n >= cap) return dpb_error_set(DPB_E_ARG, "%s: more than %zu values", opt, cap);
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (errno || end == p || (*end && *end != ','))
            return dpb_error_set(DPB_E_ARG, "%s: '%s' is not a comma-separated list of whole numbers", opt, s);
        if (v < min || v > max) return dpb_error_set(DPB_E_ARG, "%s: %lld is outside [%lld, %lld]", opt, v, min, max);
        out[(*n)++] = v;
        p = *end ? end + 1 : end;
        if (*end == ',' && !*p) return dpb_error_set(DPB_E_ARG, "%s: '%s' ends with a comma", opt, s);
    }
    return DPB_OK;
}

dpb_status dpb_jsonl_collect(const cJSON *obj, size_t line, void *ctx)
{
    (void)line;
    cJSON *c = cJSON_Duplicate(obj, 1);
    if (!c) return dpb_error_set(DPB_E_NOMEM, "out of memory reading line %zu", line);
    cJSON_AddItemToArray((cJSON *)ctx, c);
    return DPB_OK;
}
