#include "bench/ablate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "engine/engine.h"

static const char *g_cols[128];

const char *const *dpb_ablate_columns(void)
{
    if (!g_cols[0]) {
        size_t n = 0;
        g_cols[n++] = "test";
        g_cols[n++] = "factor";
        g_cols[n++] = "value";
        for (size_t i = 0; dpb_latency_csv_columns[i] && n < 124; i++) g_cols[n++] = dpb_latency_csv_columns[i];
        g_cols[n++] = "kv_bytes_allocated";
        g_cols[n++] = "tokens_compared";
        g_cols[n++] = "leading_tokens_equal_to_first_value";
        g_cols[n] = NULL;
    }
    return g_cols;
}

typedef struct variant {
    char value[64];
    const char *reasoning;    /* effort: the prompts' reasoning effort */
    const dpb_checkpoint *ck; /* NULL: the run's checkpoint */
    dpb_engine_opts eo;
    dpb_latency_cell cell;
    dpb_sampling samp;
    bool use_samp;
} variant;

static cJSON *note_row(const char *test, const char *factor, const char *why)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "test", test);
    cJSON_AddStringToObject(o, "factor", factor);
    cJSON_AddStringToObject(o, "value", why);
    return o;
}

/* The earlier row of (test, value) in done, or NULL. */
static const cJSON *done_row(const cJSON *done, const char *test, const char *value)
{
    const cJSON *r;
    cJSON_ArrayForEach(r, done) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(r, "test"), *v = cJSON_GetObjectItemCaseSensitive(r, "value");
        if (cJSON_IsString(t) && cJSON_IsString(v) && strcmp(t->valuestring, test) == 0 && strcmp(v->valuestring, value) == 0)
            return r;
    }
    return NULL;
}

static dpb_status add_row(cJSON *rows, cJSON *row, dpb_ablate_row_fn on_row, void *ctx)
{
    cJSON_AddItemToArray(rows, row);
    return on_row ? on_row(row, ctx) : DPB_OK;
}

/* The first measured request's generated ids (round 0, sequence 0): the same prompt in every value of a test. */
static dpb_status keep_first_ids(void *user, const dpb_gen_result *r, const dpb_request_metrics *m, int round, int seq)
{
    (void)m;
    cJSON **ids = user;
    if (round != 0 || seq != 0 || *ids) return DPB_OK;
    *ids = cJSON_CreateArray();
    for (int64_t i = 0; i < r->n; i++) cJSON_AddItemToArray(*ids, cJSON_CreateNumber(r->ids[i]));
    return DPB_OK;
}

/* Greedy tests whose values should change speed or memory, not the tokens much: each row says how many leading
 * tokens of its first request equal the test's first value's (same prompt), so a quality cost shows beside the
 * speed. */
static bool compares_tokens(const char *test)
{
    return !strcmp(test, "kv") || !strcmp(test, "precision") || !strcmp(test, "graphs") ||
           !strcmp(test, "experts_format") || !strcmp(test, "window");
}

static void add_token_match(cJSON *row, const cJSON *first_row)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(row, "first_request_ids");
    const cJSON *b = first_row ? cJSON_GetObjectItemCaseSensitive(first_row, "first_request_ids") : NULL;
    if (!cJSON_IsArray(a) || !cJSON_IsArray(b)) return;
    int n = cJSON_GetArraySize(a) < cJSON_GetArraySize(b) ? cJSON_GetArraySize(a) : cJSON_GetArraySize(b), same = 0;
    while (same < n && cJSON_GetArrayItem(a, same)->valuedouble == cJSON_GetArrayItem(b, same)->valuedouble) same++;
    cJSON_AddNumberToObject(row, "tokens_compared", n);
    cJSON_AddNumberToObject(row, "leading_tokens_equal_to_first_value", same);
}

static dpb_status run_variant(const dpb_checkpoint *ck, dpb_study_prompts *p, const char *test, const char *factor,
                              variant *v, const cJSON *done, dpb_ablate_row_fn on_row, void *ctx, cJSON *rows)
{
    const cJSON *old = done_row(done, test, v->value);
    if (old) {
        cJSON_AddItemToArray(rows, cJSON_Duplicate(old, 1));
        return DPB_OK;
    }
    if (v->use_samp) v->cell.sampling = &v->samp;
    if (!v->eo.max_ctx) v->eo.max_ctx = v->cell.prompt_tokens + v->cell.gen_tokens;
    if (!v->eo.max_seqs) v->eo.max_seqs = v->cell.batch;
    dpb_engine *e;
    dpb_status st = dpb_engine_create(v->ck ? v->ck : ck, &v->eo, &e);
    if (st) return dpb_error_prefix(st, "ablate %s=%s", factor, v->value);
    cJSON *sum = NULL, *ids = NULL;
    const char *keep = p->reasoning;
    if (v->reasoning) p->reasoning = v->reasoning;
    const uint64_t kv_bytes = dpb_engine_kv_bytes(e);
    st = dpb_latency_run_cell(e, p, &v->cell, keep_first_ids, NULL, &ids, &sum);
    p->reasoning = keep;
    dpb_engine_destroy(e);
    if (st) {
        cJSON_Delete(ids);
        return dpb_error_prefix(st, "ablate %s=%s", factor, v->value);
    }
    cJSON_AddStringToObject(sum, "test", test);
    cJSON_AddStringToObject(sum, "factor", factor);
    cJSON_AddStringToObject(sum, "value", v->value);
    cJSON_AddNumberToObject(sum, "kv_bytes_allocated", (double)kv_bytes);
    if (ids && compares_tokens(test) && (!v->use_samp || v->samp.greedy)) {
        cJSON_AddItemToObject(sum, "first_request_ids", ids);
        ids = NULL;
        const cJSON *first = NULL, *r;
        cJSON_ArrayForEach(r, rows) {
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(r, "test");
            if (cJSON_IsString(t) && !strcmp(t->valuestring, test)) {
                first = r;
                break;
            }
        }
        add_token_match(sum, first ? first : sum);
    }
    cJSON_Delete(ids);
    return add_row(rows, sum, on_row, ctx);
}

/* A test that does not apply: one row saying why (kept once across --resume). */
static dpb_status note(const char *test, const char *factor, const char *why, const cJSON *done, dpb_ablate_row_fn on_row,
                       void *ctx, cJSON *rows)
{
    const cJSON *old = done_row(done, test, why);
    if (old) {
        cJSON_AddItemToArray(rows, cJSON_Duplicate(old, 1));
        return DPB_OK;
    }
    return add_row(rows, note_row(test, factor, why), on_row, ctx);
}

dpb_status dpb_ablate_run(const dpb_checkpoint *ck, dpb_study_prompts *p, const dpb_ablate_opts *o, const char *test,
                          const cJSON *done, dpb_ablate_row_fn on_row, void *ctx, cJSON *rows)
{
    const dpb_model_config *cfg = dpb_checkpoint_config(ck);
    variant base = {0};
    base.eo.backend = o->backend;
    base.eo.threads = o->threads;
    base.cell.prompt_tokens = o->prompt_tokens;
    base.cell.gen_tokens = o->gen_tokens;
    base.cell.batch = 1;
    base.cell.rounds = o->rounds;
    base.cell.warmup = o->warmup;
    variant vs[8];
    int nv = 0;
    const char *factor;
    if (strcmp(test, "sampling") == 0) {
        factor = "sampling";
        static const struct { const char *name; double t, tp, mp; int64_t tk; bool g; } s[] = {
            {"greedy", 0, 1, 0, 0, true}, {"temperature=0.7,top_p=0.9", 0.7, 0.9, 0, 0, false},
            {"temperature=1.0", 1.0, 1, 0, 0, false}, {"temperature=1.0,top_k=50", 1.0, 1, 0, 50, false},
            {"temperature=1.0,min_p=0.05", 1.0, 1, 0.05, 0, false}};
        for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
            vs[nv] = base;
            snprintf(vs[nv].value, sizeof vs[nv].value, "%s", s[i].name);
            vs[nv].samp = (dpb_sampling){s[i].g, s[i].g ? 1.0 : s[i].t, s[i].tk, s[i].tp, s[i].mp, 1};
            vs[nv].use_samp = true;
            nv++;
        }
    } else if (strcmp(test, "context") == 0) {
        factor = "prompt_tokens";
        static const int64_t plens[] = {128, 512, 1024, 2048};
        for (size_t i = 0; i < 4; i++) {
            if (cfg->max_position_embeddings > 0 && plens[i] + o->gen_tokens > cfg->max_position_embeddings) continue;
            vs[nv] = base;
            vs[nv].cell.prompt_tokens = plens[i];
            snprintf(vs[nv].value, sizeof vs[nv].value, "%lld", (long long)plens[i]);
            nv++;
        }
    } else if (strcmp(test, "batch") == 0) {
        factor = "batch";
        for (int b = 1; b <= 8; b *= 2) {
            vs[nv] = base;
            vs[nv].cell.batch = b;
            snprintf(vs[nv].value, sizeof vs[nv].value, "%d", b);
            nv++;
        }
    } else if (strcmp(test, "experts") == 0) {
        factor = "experts_per_tok";
        if (cfg->num_experts <= 0) {
            return note(test, factor, "not applicable: a dense model has no experts", done, on_row, ctx, rows);
        }
        static const int64_t k[] = {1, 2, 4, 8};
        bool have_cfg = false;
        for (size_t i = 0; i < 4; i++) {
            if (k[i] > cfg->num_experts) continue;
            vs[nv] = base;
            vs[nv].eo.experts_per_tok = k[i];
            have_cfg |= k[i] == cfg->experts_per_tok;
            snprintf(vs[nv].value, sizeof vs[nv].value, "%lld%s", (long long)k[i],
                     k[i] == cfg->experts_per_tok ? " (config)" : "");
            nv++;
        }
        if (!have_cfg && cfg->experts_per_tok <= cfg->num_experts) {
            vs[nv] = base;
            vs[nv].eo.experts_per_tok = cfg->experts_per_tok;
            snprintf(vs[nv].value, sizeof vs[nv].value, "%lld (config)", (long long)cfg->experts_per_tok);
            nv++;
        }
    } else if (strcmp(test, "experts_format") == 0) {
        factor = "experts_format";
        if (cfg->num_experts <= 0)
            return note(test, factor, "not applicable: a dense model has no experts", done, on_row, ctx, rows);
        if (!dpb_checkpoint_is_synthetic(ck) || !o->model)
            return note(test, factor, "not applicable: only synth: models are made with either expert format", done,
                        on_row, ctx, rows);
        dpb_checkpoint_opts co = {0};
        if (o->ck_opts) co = *o->ck_opts;
        dpb_checkpoint *other = NULL;
        co.experts_format = cfg->experts_format == DPB_EXPERTS_MXFP4 ? DPB_EXPERTS_BF16 : DPB_EXPERTS_MXFP4;
        dpb_status st = dpb_checkpoint_open(o->model, &co, &other);
        if (st) return dpb_error_prefix(st, "ablate experts_format");
        variant two[2] = {base, base};
        const bool mx = cfg->experts_format == DPB_EXPERTS_MXFP4;
        snprintf(two[0].value, sizeof two[0].value, "%s (config)", mx ? "mxfp4" : "bf16");
        snprintf(two[1].value, sizeof two[1].value, "%s", mx ? "bf16" : "mxfp4");
        two[1].ck = other;
        for (int i = 0; i < 2 && !st; i++) st = run_variant(ck, p, test, factor, &two[i], done, on_row, ctx, rows);
        dpb_checkpoint_close(other);
        return st;
    } else if (strcmp(test, "effort") == 0) {
        factor = "reasoning_effort";
        if (!p->tok || p->tpl != DPB_CHAT_HARMONY)
            return note(test, factor, "not applicable: only harmony-templated prompts carry a reasoning effort", done,
                        on_row, ctx, rows);
        const dpb_generation_config *g = dpb_checkpoint_generation(ck);
        static const char *const eff[] = {"low", "medium", "high"};
        for (size_t i = 0; i < 3; i++) {
            vs[nv] = base;
            vs[nv].reasoning = eff[i];
            if (g && g->n_eos > 0) {
                vs[nv].cell.n_stop = g->n_eos;
                vs[nv].cell.stop_ids = g->eos_ids;
            } else {
                vs[nv].cell.n_stop = cfg->n_eos;
                vs[nv].cell.stop_ids = cfg->eos_ids;
            }
            snprintf(vs[nv].value, sizeof vs[nv].value, "%s%s", eff[i], i == 1 ? " (default)" : "");
            nv++;
        }
    } else if (strcmp(test, "kv") == 0) {
        factor = "kv_dtype";
        static const struct { const char *name; dpb_engine_kv kv; } kv[] = {
            {"bf16", DPB_ENGINE_KV_BF16}, {"fp8 (e4m3)", DPB_ENGINE_KV_FP8}, {"f32", DPB_ENGINE_KV_F32}};
        for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++) {
            vs[nv] = base;
            vs[nv].eo.kv = kv[i].kv;
            snprintf(vs[nv++].value, sizeof vs[0].value, "%s", kv[i].name);
        }
    } else if (strcmp(test, "window") == 0) {
        factor = "sliding_window";
        if (cfg->num_sliding_layers <= 0 || cfg->sliding_window <= 0) {
            return note(test, factor, "not applicable: the model has no sliding-window layers", done, on_row, ctx, rows);
        }
        vs[nv] = base;
        snprintf(vs[nv++].value, sizeof vs[0].value, "on (window %lld)", (long long)cfg->sliding_window);
        vs[nv] = base;
        vs[nv].eo.no_sliding = 1;
        snprintf(vs[nv++].value, sizeof vs[0].value, "off (full attention)");
    } else if (strcmp(test, "precision") == 0) {
        /* the reference study's precision ablation: activations and KV in bf16, or the f32 reference mode */
        factor = "engine_dtype";
        vs[nv] = base;
        snprintf(vs[nv++].value, sizeof vs[0].value, "bf16 (activations and KV)");
        vs[nv] = base;
        vs[nv].eo.dtype = DPB_ENGINE_F32;
        snprintf(vs[nv++].value, sizeof vs[0].value, "f32 (reference mode)");
    } else if (strcmp(test, "graphs") == 0) {
        factor = "cuda_graphs";
        if (!o->backend || strcmp(o->backend, "cuda") != 0) {
            return note(test, factor, "not applicable: only the cuda backend replays decode graphs", done, on_row, ctx, rows);
        }
        vs[nv] = base;
        snprintf(vs[nv++].value, sizeof vs[0].value, "on");
        vs[nv] = base;
        vs[nv].eo.no_graphs = 1;
        snprintf(vs[nv++].value, sizeof vs[0].value, "off");
    } else {
        return dpb_error_set(DPB_E_ARG, "--tests: unknown test '%s' (known: %s)", test, DPB_ABLATE_TESTS);
    }
    for (int i = 0; i < nv; i++) {
        dpb_status st = run_variant(ck, p, test, factor, &vs[i], done, on_row, ctx, rows);
        if (st) return st;
    }
    return DPB_OK;
}
