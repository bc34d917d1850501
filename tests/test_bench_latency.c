/* The latency study's cells on the CPU with a tiny preset: percentiles in
 * order, TTFT + (n-1) TPOT = E2E for every request, counts, batch cells,
 * exact-length prompts; the CSV writer and the list parser. */
#include <stdint.h>
#include "t.h"
#include "bench/latency.h"
#include "core/file.h"

typedef struct seen {
    int n;
    int bad_identity;
    int64_t gen;
    double max_err_ms;
} seen;

static dpb_status on_req(void *user, const dpb_gen_result *r, const dpb_request_metrics *m, int round, int seq)
{
    seen *s = user;
    (void)round;
    (void)seq;
    s->n++;
    if (m->n != s->gen || !m->tpot_ok) s->bad_identity++;
    /* TTFT + (n-1) TPOT = E2E, within timer resolution (1 ns). */
    double err = fabs(m->ttft_ms + (double)(m->n - 1) * m->tpot_ms - m->e2e_ms);
    if (err > s->max_err_ms) s->max_err_ms = err;
    /* E2E is the last token's time; TTFT the first's. */
    if (fabs(m->e2e_ms - (double)(r->t_ns[r->n - 1] - r->t_start_ns) * 1e-6) > 1e-9) s->bad_identity++;
    if (fabs(m->ttft_ms - (double)(r->t_ns[0] - r->t_start_ns) * 1e-6) > 1e-9) s->bad_identity++;
    if (m->prefill_ms > m->ttft_ms) s->bad_identity++;
    return DPB_OK;
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void check_ordered(const cJSON *o, const char *prefix)
{
    char a[64], b[64], c[64], mn[64], mx[64];
    snprintf(a, sizeof a, "%s_p50", prefix);
    snprintf(b, sizeof b, "%s_p95", prefix);
    snprintf(c, sizeof c, "%s_p99", prefix);
    snprintf(mn, sizeof mn, "%s_min", prefix);
    snprintf(mx, sizeof mx, "%s_max", prefix);
    T_CHECKF(num(o, mn) <= num(o, a) && num(o, a) <= num(o, b) && num(o, b) <= num(o, c) && num(o, c) <= num(o, mx),
             "%s: min %g p50 %g p95 %g p99 %g max %g", prefix, num(o, mn), num(o, a), num(o, b), num(o, c), num(o, mx));
}

static void run_cells(int batch)
{
    dpb_checkpoint *ck;
    if (dpb_checkpoint_open("synth:gpt-oss-tiny", NULL, &ck)) {
        T_CHECKF(0, "%s", dpb_error_message());
        return;
    }
    dpb_engine_opts eo = {0};
    eo.threads = 1;
    eo.max_ctx = 64;
    eo.max_seqs = 4;
    dpb_engine *e;
    T_CHECK(dpb_engine_create(ck, &eo, &e) == DPB_OK);
    dpb_study_prompts p;
    T_CHECK(dpb_study_prompts_init(ck, 7, &p) == DPB_OK);
    T_CHECK(strstr(p.kind, "random ids") != NULL);
    dpb_latency_cell c = {.prompt_tokens = 20, .gen_tokens = 6, .batch = batch, .rounds = 5, .warmup = 1};
    seen s = {.gen = 6};
    cJSON *sum = NULL;
    T_CHECK(dpb_latency_run_cell(e, &p, &c, on_req, NULL, &s, &sum) == DPB_OK);
    T_CHECKF(s.n == 5 * batch, "%d requests recorded", s.n);
    T_CHECK(s.bad_identity == 0);
    T_CHECKF(s.max_err_ms <= 1e-6, "TTFT + (n-1) TPOT - E2E = %g ms", s.max_err_ms);
    T_CHECK(sum != NULL);
    if (sum) {
        T_CHECK(num(sum, "requests") == 5 * batch);
        T_CHECK(num(sum, "batch") == batch);
        check_ordered(sum, "ttft_ms");
        check_ordered(sum, "tpot_ms");
        check_ordered(sum, "itl_ms");
        check_ordered(sum, "e2e_ms");
        /* mean E2E = mean TTFT + (n-1) mean TPOT, within the histogram's rounding of TPOT to whole ns */
        double lhs = num(sum, "ttft_ms_mean") + 5 * num(sum, "tpot_ms_mean"), rhs = num(sum, "e2e_ms_mean");
        T_CHECKF(fabs(lhs - rhs) <= 5e-6, "means: %g vs %g", lhs, rhs);
        T_CHECK(num(sum, "prefill_tok_s") > 0 && num(sum, "decode_tok_s_per_seq") > 0);
        T_CHECK(num(sum, "seed_TPOT_tokps_prefill_included") > 0);
        /* the seed's figure includes prefill: below the decode rate */
        T_CHECK(num(sum, "seed_TPOT_tokps_prefill_included") < num(sum, "decode_tok_s_per_seq") * 6.0 / 5.0 + 1e-9);
        T_CHECK(num(sum, "kv_bytes") == (double)dpb_engine_kv_bytes(e));
        T_CHECK(cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(sum, "unstable")));
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(sum, "cell");
        char want[32];
        snprintf(want, sizeof want, "p20_g6_b%d", batch);
        T_CHECK(cJSON_IsString(k) && strcmp(k->valuestring, want) == 0);
        for (size_t i = 0; dpb_latency_csv_columns[i]; i++)
            T_CHECKF(cJSON_GetObjectItemCaseSensitive(sum, dpb_latency_csv_columns[i]) != NULL, "column %s missing",
                     dpb_latency_csv_columns[i]);
    }
    cJSON_Delete(sum);
    /* too long for the engine's context, and a batch above its slots */
    dpb_latency_cell bad = c;
    bad.prompt_tokens = 60;
    T_CHECK(dpb_latency_run_cell(e, &p, &bad, NULL, NULL, NULL, &sum) == DPB_E_ARG);
    T_CHECK(strstr(dpb_error_message(), "--prompt-tokens 60") != NULL);
    bad = c;
    bad.batch = 5;
    T_CHECK(dpb_latency_run_cell(e, &p, &bad, NULL, NULL, NULL, &sum) == DPB_E_ARG);
    T_CHECK(strstr(dpb_error_message(), "--batch 5") != NULL);
    dpb_study_prompts_free(&p);
    dpb_engine_destroy(e);
    dpb_checkpoint_close(ck);
}

static void test_cell_batch1(void) { run_cells(1); }
static void test_cell_batch3(void) { run_cells(3); }

static void test_stats_known(void)
{
    dpb_hist *h;
    T_CHECK(dpb_hist_create(&h) == DPB_OK);
    for (uint64_t v = 1; v <= 100; v++) dpb_hist_record(h, v * 1000000u); /* 1..100 ms */
    dpb_stat s;
    dpb_stat_from_hist(h, 1e-6, &s);
    T_CHECK(s.ok && s.count == 100);
    T_CHECKF(fabs(s.mean - 50.5) < 1e-9, "mean %g", s.mean);
    T_CHECKF(fabs(s.p50 - 50) < 50 * 1e-3, "p50 %g", s.p50);
    T_CHECKF(fabs(s.p95 - 95) < 95 * 1e-3, "p95 %g", s.p95);
    T_CHECKF(fabs(s.p99 - 99) < 99 * 1e-3, "p99 %g", s.p99);
    T_CHECK(s.min == 1 && s.max == 100);
    T_CHECKF(fabs(s.std - 28.866070) < 1e-4, "std %g", s.std);
    dpb_hist_reset(h);
    dpb_stat_from_hist(h, 1e-6, &s);
    T_CHECK(!s.ok);
    cJSON *o = cJSON_CreateObject();
    dpb_stat_add_json(o, "x_ms", &s);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "x_ms_p50");
    T_CHECK(cJSON_IsString(v) && strncmp(v->valuestring, "unavailable", 11) == 0);
    cJSON_Delete(o);
    dpb_hist_free(h);
}

static void test_csv_and_lists(void)
{
    char dir[] = "/tmp/dpb-test-bench-XXXXXX";
    T_CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/x.csv", dir);
    cJSON *a = cJSON_CreateArray(), *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "a", "x,\"y\"");
    cJSON_AddNumberToObject(o, "b", 2);
    cJSON_AddNumberToObject(o, "c", 0.125);
    cJSON_AddBoolToObject(o, "d", 1);
    cJSON_AddItemToArray(a, o);
    const char *cols[] = {"a", "b", "c", "d", "e", NULL};
    T_CHECK(dpb_csv_write_objects(path, cols, a) == DPB_OK);
    char *text;
    size_t len;
    T_CHECK(dpb_file_read(path, 4096, &text, &len) == DPB_OK);
    T_CHECKF(strcmp(text, "a,b,c,d,e\n\"x,\"\"y\"\"\",2,0.125,true,unavailable\n") == 0, "%s", text);
    free(text);
    unlink(path);
    rmdir(dir);
    cJSON_Delete(a);

    int64_t v[4];
    size_t n;
    T_CHECK(dpb_parse_i64_list("--x", "1,22,333", 1, 1000, v, 4, &n) == DPB_OK && n == 3 && v[2] == 333);
    T_CHECK(dpb_parse_i64_list("--x", "1,,2", 1, 1000, v, 4, &n) == DPB_E_ARG);
    T_CHECK(dpb_parse_i64_list("--x", "1,2,", 1, 1000, v, 4, &n) == DPB_E_ARG);
    T_CHECK(dpb_parse_i64_list("--x", "0", 1, 1000, v, 4, &n) == DPB_E_ARG && strstr(dpb_error_message(), "--x"));
    T_CHECK(dpb_parse_i64_list("--x", "1,2,3,4,5", 1, 1000, v, 4, &n) == DPB_E_ARG);
    T_CHECK(dpb_parse_i64_list("--x", "12a", 1, 1000, v, 4, &n) == DPB_E_ARG);
}

/* Templated prompts of exact length through a real tokenizer (../shared). */
static void test_exact_prompts(void)
{
    const char *sh = t_shared();
    if (!sh) T_SKIP("../shared is absent");
    char tok[512];
    snprintf(tok, sizeof tok, "%s/data/tokenizers/qwen3/tokenizer.json.gz", sh);
    if (access(tok, R_OK) != 0) T_SKIP("%s is absent", tok);
    dpb_checkpoint_opts co = {.tokenizer = tok};
    dpb_checkpoint *ck;
    if (dpb_checkpoint_open("synth:qwen3-tiny", &co, &ck)) {
        T_CHECKF(0, "%s", dpb_error_message());
        return;
    }
    dpb_study_prompts p;
    T_CHECK(dpb_study_prompts_init(ck, 3, &p) == DPB_OK);
    T_CHECKF(strstr(p.kind, "templated (qwen3)") != NULL, "%s", p.kind);
    int32_t ids[128];
    T_CHECK(dpb_study_prompt_make(&p, 128, 0, ids) == DPB_OK);
    int32_t ids2[128];
    T_CHECK(dpb_study_prompt_make(&p, 128, 1, ids2) == DPB_OK);
    T_CHECK(memcmp(ids, ids2, sizeof ids) != 0); /* different requests, different prompts */
    T_CHECK(dpb_study_prompt_make(&p, 3, 0, ids) != DPB_OK); /* below the template's overhead */
    dpb_study_prompts_free(&p);
    dpb_checkpoint_close(ck);
}

/* Harmony prompts carry the reasoning effort: the same request with low and high gives prompts of the same
 * length that differ, and decoding them shows "Reasoning: high". */
static void test_effort_prompts(void)
{
    const char *sh = t_shared();
    if (!sh) T_SKIP("../shared is absent");
    char tok[512];
    snprintf(tok, sizeof tok, "%s/data/tokenizers/gpt-oss-harmony/tokenizer.json.gz", sh);
    if (access(tok, R_OK) != 0) T_SKIP("%s is absent", tok);
    dpb_checkpoint_opts co = {.tokenizer = tok};
    dpb_checkpoint *ck;
    if (dpb_checkpoint_open("synth:gpt-oss-tiny", &co, &ck)) {
        T_CHECKF(0, "%s", dpb_error_message());
        return;
    }
    dpb_study_prompts p;
    T_CHECK(dpb_study_prompts_init(ck, 3, &p) == DPB_OK);
    int32_t lo[160], hi[160];
    p.reasoning = "low";
    T_CHECK(dpb_study_prompt_make(&p, 160, 0, lo) == DPB_OK);
    p.reasoning = "high";
    T_CHECK(dpb_study_prompt_make(&p, 160, 0, hi) == DPB_OK);
    T_CHECK(memcmp(lo, hi, sizeof lo) != 0);
    char *text = NULL;
    size_t len = 0;
    T_CHECK(dpb_tokenizer_decode(p.tok, hi, 160, false, &text, &len) == DPB_OK);
    T_CHECKF(text && strstr(text, "Reasoning: high") != NULL, "%.200s", text ? text : "(null)");
    free(text);
    p.reasoning = "extreme";
    T_CHECK(dpb_study_prompt_make(&p, 160, 0, hi) == DPB_E_ARG);
    dpb_study_prompts_free(&p);
    dpb_checkpoint_close(ck);
}

int main(void)
{
    T_RUN(test_cell_batch1);
    T_RUN(test_effort_prompts);
    T_RUN(test_cell_batch3);
    T_RUN(test_stats_known);
    T_RUN(test_csv_and_lists);
    T_RUN(test_exact_prompts);
    return t_done();
}
