/* deploybench load: the load generator (see docs/LOADGEN.md). */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include "cli/cli.h"
#include "core/file.h"
#include "core/json.h"
#include "core/jsonl.h"
#include "core/signal.h"
#include "core/timeutil.h"
#include "core/version.h"
#include "load/load.h"
#include "tokenizer/tokenizer.h"

/* MLPerf Inference server-scenario limits (p99 TTFT / p99 TPOT, ms), from
 * mlcommons/inference loadgen/mlperf.conf (commit 001712e9). */
typedef struct preset { const char *name; double ttft_ms, tpot_ms; } preset;
static const preset k_presets[] = {
    {"llama2-70b", 2000, 200},          {"llama2-70b-interactive", 450, 40},
    {"mixtral-8x7b", 2000, 200},        {"llama3_1-405b", 6000, 175},
    {"llama3_1-405b-interactive", 4500, 80}, {"llama3_1-8b", 2000, 100},
    {"llama3_1-8b-interactive", 500, 30}, {"deepseek-r1", 2000, 80},
    {"deepseek-r1-interactive", 1500, 15},
};
#define N_PRESETS (sizeof k_presets / sizeof k_presets[0])

static void usage(void)
{
    printf("usage: deploybench load --endpoint URL [--endpoint URL2 ...] --out DIR\n"
           "         (--concurrency 1,8,32 | --request-rate 1,5,20,inf [--burstiness B])\n"
           "         (--num-requests N | --duration S) [options]\n\n"
           "Drives OpenAI-compatible servers (vLLM, SGLang, TGI, TensorRT-LLM, llama.cpp, deploybench serve)\n"
           "with streaming requests from one thread (libcurl multi on epoll) and reports TTFT, TPOT, ITL,\n"
           "E2EL, throughput and goodput per load level.  Details and definitions: docs/LOADGEN.md.\n\n"
           "target\n"
           "  --endpoint URL      base URL (http://host:port or .../v1); repeat to spread requests\n"
           "                      round-robin over a fleet\n"
           "  --model NAME        model name sent in requests (default: synthetic)\n"
           "  --api completions|chat   /v1/completions (default) or /v1/chat/completions\n"
           "  --api-key KEY       sent as 'Authorization: Bearer KEY' (default: $OPENAI_API_KEY if set)\n"
           "  --launch \"CMD\"      start the server with sh -c CMD, wait for GET /health, run, stop it\n"
           "  --launch-timeout S  how long to wait for /health (default 600)\n\n"
           "workload\n"
           "  --dataset random|FILE   random prompts (default), or FILE: one prompt per line, either\n"
           "                      plain text or a JSON object with a \"prompt\" string\n"
           "  --prompt-tokens N   random prompt length (default 128): token ids on completions (exact),\n"
           "                      N common words on chat (about N tokens)\n"
           "  --prompt-ids LO:HI  random token-id prompts draw from [LO, HI) (default 1000:21000; a model\n"
           "                      with a smaller vocabulary needs a range inside it)\n"
           "  --gen-tokens N      max_tokens per request (default 128)\n"
           "  --no-ignore-eos     do not send vLLM's ignore_eos (outputs may end early)\n"
           "  --no-usage-stats    do not send stream_options {include_usage, continuous_usage_stats}\n"
           "                      (for servers that reject it; token counts then come from the client)\n"
           "  --seed N            random seed for prompts and arrivals (default 0)\n"
           "  --tokenizer PATH    count output tokens on the client too (tokenizer.json[.gz], tokenizer.model or\n"
           "                      *.tiktoken); without it the client counts token-carrying chunks (\"chunks\").\n"
           "                      Both counts and their mismatch rate are reported beside the server's usage\n\n"
           "load (each list value is one level of a sweep)\n"
           "  --concurrency LIST  closed loop: N users, each sending its next request when the last ends\n"
           "  --request-rate LIST open loop: arrivals of a gamma process at R req/s ('inf': all at once)\n"
           "  --burstiness B      gamma shape (default 1 = Poisson; < 1 burstier, > 1 smoother)\n"
           "  --ramp-up S         closed loop: start the users evenly over S seconds instead of at once, so\n"
           "                      streams of equal length do not stay in lockstep (default 0)\n"
           "  --max-concurrency N open loop: at most N in flight; arrivals wait in the client, and the\n"
           "                      wait counts in latency from schedule\n"
           "  --num-requests N    requests per level (default 100 unless --duration)\n"
           "  --duration S        instead: issue for S seconds, then let requests in flight finish\n"
           "  --warmup N          N requests before each level, not recorded (default 0)\n"
           "  --timeout S         per-request limit (default 300); --connect-timeout S (default 10)\n"
           "  --max-consecutive-failures N  stop a level after N failures in a row (default 1000, 0 never)\n\n"
           "limits\n"
           "  --goodput ttft:MS,tpot:MS,e2el:MS   goodput counts requests within every given limit\n"
           "  --verdict PRESET    MLPerf-style VALID/INVALID: p99 TTFT and p99 TPOT against MLPerf\n"
           "                      Inference server limits; presets:");
    for (size_t i = 0; i < N_PRESETS; i++) printf("%s %s", i % 3 == 0 ? "\n                       " : ",", k_presets[i].name);
    printf("\n"
           "  --slo ttft:MS,tpot:MS   custom limits for the verdict (instead of a preset)\n"
           "  --slo-search        find the highest request rate whose verdict is VALID (needs --verdict or\n"
           "                      --slo; doubles from --slo-search-start R (default 1) then bisects\n"
           "                      --slo-search-steps times (default 6))\n\n"
           "output\n"
           "  --out DIR           manifest.json, summary.json, sweep.csv, serving_table.md, requests.jsonl\n"
           "                      (one line per request, appended as each ends), slo_search.csv\n"
           "  --record-chunks     add every chunk's arrival time to requests.jsonl\n\n"
           "exit status: 0 all requests succeeded; 1 some failed (counted by class in the summary, which\n"
           "is still written) or another failure; 2 bad usage; 130 interrupted (finished levels are kept).\n"
           "With --slo-search: 0 when a VALID rate was found (probes above capacity may fail), else 1.\n");
}

/* ---- argument helpers ---- */

static dpb_status parse_list(const char *opt, const char *s, bool allow_inf, double **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    size_t cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',';
    double *v = calloc(cap, sizeof *v);
    if (!v) return dpb_error_set(DPB_E_NOMEM, "out of memory");
    char *dup = strdup(s), *save = NULL;
    if (!dup) { free(v); return dpb_error_set(DPB_E_NOMEM, "out of memory"); }
    for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (allow_inf && (strcmp(t, "inf") == 0 || strcmp(t, "INF") == 0)) v[(*n)++] = INFINITY;
        else {
            dpb_status st = dpb_cli_parse_double(opt, t, 1e-6, 1e9, &v[*n]);
            if (st) { free(dup); free(v); return st; }
            (*n)++;
        }
    }
    free(dup);
    if (!*n) { free(v); return dpb_error_set(DPB_E_ARG, "%s: an empty list", opt); }
    *out = v;
    return DPB_OK;
}

static dpb_status parse_limits(const char *opt, const char *s, double *ttft, double *tpot, double *e2el)
{
    char *dup = strdup(s), *save = NULL;
    if (!dup) return dpb_error_set(DPB_E_NOMEM, "out of memory");
    dpb_status st = DPB_OK;
    for (char *t = strtok_r(dup, ",", &save); t && !st; t = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(t, ':');
        if (!colon) { st = dpb_error_set(DPB_E_ARG, "%s: '%s' is not NAME:MS", opt, t); break; }
        *colon = 0;
        double *dst = !strcmp(t, "ttft") ? ttft : !strcmp(t, "tpot") ? tpot : (!strcmp(t, "e2el") && e2el) ? e2el : NULL;
        if (!dst) { st = dpb_error_set(DPB_E_ARG, "%s: unknown limit '%s' (ttft, tpot%s)", opt, t, e2el ? ", e2el" : ""); break; }
        st = dpb_cli_parse_double(opt, colon + 1, 1e-6, 1e9, dst);
    }
    free(dup);
    return st;
}

static dpb_status load_dataset(const char *path, char ***prompts, size_t *n, char **storage)
{
    char *text;
    size_t len;
    dpb_status st = dpb_file_read(path, (size_t)1 << 31, &text, &len);
    if (st) return st;
    size_t cap = 16, cnt = 0;
    char **v = malloc(cap * sizeof *v);
    if (!v) { free(text); return dpb_error_set(DPB_E_NOMEM, "%s: out of memory", path); }
    size_t lineno = 0;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        lineno++;
        size_t l = strlen(line);
        if (l && line[l - 1] == '\r') line[--l] = 0;
        if (!l) continue;
        char *prompt = line;
        if (line[0] == '{') {
            cJSON *o;
            char what[64];
            snprintf(what, sizeof what, "line %zu", lineno);
            if ((st = dpb_json_parse(line, l, what, &o))) { dpb_error_prefix(st, "%s", path); goto fail; }
            const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "prompt");
            if (!cJSON_IsString(p)) {
                cJSON_Delete(o);
                st = dpb_error_set(DPB_E_FORMAT, "%s: line %zu: \"prompt\" must be a string", path, lineno);
                goto fail;
            }
            /* the prompt text is shorter than the line: copy it back in place */
            size_t pl = strlen(p->valuestring);
            memmove(line, p->valuestring, pl + 1);
            cJSON_Delete(o);
        }
        if (cnt == cap) {
            char **nv = realloc(v, 2 * cap * sizeof *nv);
            if (!nv) { st = dpb_error_set(DPB_E_NOMEM, "%s: out of memory", path); goto fail; }
            v = nv;
            cap *= 2;
        }
        v[cnt++] = prompt;
    }
    if (!cnt) { st = dpb_error_set(DPB_E_FORMAT, "%s: no prompts", path); goto fail; }
    *prompts = v;
    *n = cnt;
    *storage = text;
    return DPB_OK;
fail:
    free(v);
    free(text);
    return st;
}

/* ---- client-side token counting through the tokenizer ---- */

static dpb_status tok_count(void *ctx, const char *text, size_t len, uint64_t *n)
{
    size_t k = 0;
    dpb_status st = dpb_tokenizer_count(ctx, text, len, 0, &k);
    *n = k;
    return st;
}

/* ---- the server under --launch ---- */

static size_t discard(char *p, size_t s, size_t n, void *u) { (void)p; (void)u; return s * n; }

static long health(const char *endpoint)
{
    char url[1024];
    size_t l = strlen(endpoint);
    while (l && endpoint[l - 1] == '/') l--;
    if (l >= 3 && !memcmp(endpoint + l - 3, "/v1", 3)) l -= 3;
    snprintf(url, sizeof url, "%.*s/health", (int)l, endpoint);
    CURL *e = curl_easy_init();
    if (!e) return 0;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 2000L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    long code = 0;
    if (curl_easy_perform(e) == CURLE_OK) curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(e);
    return code;
}

static dpb_status launch(const char *cmd, const char *endpoint, double timeout_s, pid_t *out)
{
    pid_t pid = fork();
    if (pid < 0) return dpb_error_set(DPB_E_IO, "--launch: fork failed: %s", strerror(errno));
    if (pid == 0) {
        setpgid(0, 0);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid);
    *out = pid;
    uint64_t end = dpb_now_ns() + (uint64_t)(timeout_s * 1e9);
    while (dpb_now_ns() < end) {
        int stt;
        if (waitpid(pid, &stt, WNOHANG) == pid) {
            *out = 0;
            return dpb_error_set(DPB_E_IO, "--launch: the server exited (status %d) before /health answered",
                                 WIFEXITED(stt) ? WEXITSTATUS(stt) : 128 + WTERMSIG(stt));
        }
        if (health(endpoint) == 200) return DPB_OK;
        if (dpb_interrupted()) return dpb_error_set(DPB_E_INTERRUPTED, "--launch: interrupted");
        struct timespec ts = {0, 250000000};
        nanosleep(&ts, NULL);
    }
    return dpb_error_set(DPB_E_IO, "--launch: %s/health did not answer 200 within %g s", endpoint, timeout_s);
}

static void stop_launched(pid_t pid)
{
    if (pid <= 0) return;
    kill(-pid, SIGTERM);
    for (int i = 0; i < 150; i++) {
        if (waitpid(pid, NULL, WNOHANG) == pid) return;
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
    }
    kill(-pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* ---- outputs ---- */

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void csv_num(FILE *f, double v)
{
    if (isnan(v)) fputs(",", f);
    else fprintf(f, ",%.6g", v);
}

static const char *k_csv_cols[] = {"completed", "failed", "duration_s", "request_throughput_req_per_s",
                                   "request_goodput", "output_throughput_tok_per_s", "total_token_throughput_tok_per_s",
                                   "mean_ttft_ms", "median_ttft_ms", "p90_ttft_ms", "p99_ttft_ms",
                                   "median_ttft_from_schedule_ms", "p99_ttft_from_schedule_ms",
                                   "mean_tpot_ms", "median_tpot_ms", "p99_tpot_ms", "median_itl_ms", "p99_itl_ms",
                                   "median_itl_per_token_ms", "p99_itl_per_token_ms", "median_e2el_ms", "p99_e2el_ms",
                                   "p99_e2el_from_schedule_ms", "p99_send_lag_ms", "p99_dispatch_lag_ms"};
#define N_CSV (sizeof k_csv_cols / sizeof k_csv_cols[0])

static dpb_status write_outputs(const char *out, cJSON *levels)
{
    char *p;
    dpb_status st = dpb_path_join(out, "sweep.csv", &p);
    if (st) return st;
    char *tmp = malloc(strlen(p) + 8);
    if (!tmp) { free(p); return dpb_error_set(DPB_E_NOMEM, "out of memory"); }
    sprintf(tmp, "%s.tmp", p);
    FILE *f = fopen(tmp, "w");
    if (!f) { st = dpb_error_set(DPB_E_IO, "%s: cannot write: %s", tmp, strerror(errno)); free(p); free(tmp); return st; }
    fprintf(f, "level,load_model,concurrency,request_rate_req_per_s,burstiness");
    for (size_t i = 0; i < N_CSV; i++) fprintf(f, ",%s", !strcmp(k_csv_cols[i], "request_goodput") ? "request_goodput_req_per_s" : k_csv_cols[i]);
    fprintf(f, ",client_cpu_utilization,client_bound,verdict\n");
    const cJSON *lv;
    int li = 0;
    cJSON_ArrayForEach(lv, levels)
    {
        const cJSON *lm = cJSON_GetObjectItemCaseSensitive(lv, "load_model");
        const cJSON *rr = cJSON_GetObjectItemCaseSensitive(lv, "request_rate");
        bool closed = cJSON_IsString(lm) && !strcmp(lm->valuestring, "closed");
        fprintf(f, "%d,%s", li++, cJSON_IsString(lm) ? lm->valuestring : "");
        csv_num(f, num(lv, "max_concurrency"));
        if (closed) fputs(",", f);
        else if (cJSON_IsString(rr)) fprintf(f, ",%s", rr->valuestring);
        else csv_num(f, num(lv, "request_rate"));
        csv_num(f, num(lv, "burstiness"));
        for (size_t i = 0; i < N_CSV; i++) csv_num(f, num(lv, k_csv_cols[i]));
        const cJSON *cl = cJSON_GetObjectItemCaseSensitive(lv, "client");
        csv_num(f, num(cl, "cpu_utilization_of_one_core"));
        fprintf(f, ",%s", cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cl, "client_bound")) ? "true" : "false");
        const cJSON *vd = cJSON_GetObjectItemCaseSensitive(lv, "verdict");
        const cJSON *vr = cJSON_GetObjectItemCaseSensitive(vd, "result");
        fprintf(f, ",%s\n", cJSON_IsString(vr) ? vr->valuestring : "");
    }
    int err = ferror(f);
    if (fclose(f) != 0 || err || rename(tmp, p) != 0) st = dpb_error_set(DPB_E_IO, "%s: write failed", p);
    free(p);
    free(tmp);
    if (st) return st;
    /* the serving table: what issue 8's sweep reports (output tok/s, TTFT/TPOT percentiles) */
    char *md = NULL;
    size_t ml = 0, mc = 0;
    FILE *m = open_memstream(&md, &ml);
    (void)mc;
    if (!m) return dpb_error_set(DPB_E_NOMEM, "out of memory");
    fprintf(m, "| level | concurrency | rate (req/s) | completed | failed | req/s | output tok/s | total tok/s |"
               " TTFT p50 (ms) | TTFT p99 (ms) | TPOT p50 (ms) | TPOT p99 (ms) | ITL p50 (ms) | ITL p99 (ms) |"
               " E2EL p50 (ms) | E2EL p99 (ms) | verdict |\n");
    fprintf(m, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    li = 0;
    cJSON_ArrayForEach(lv, levels)
    {
        const cJSON *rr = cJSON_GetObjectItemCaseSensitive(lv, "request_rate");
        const cJSON *vd = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(lv, "verdict"), "result");
        char rate[32];
        if (cJSON_IsString(rr)) snprintf(rate, sizeof rate, "%s", rr->valuestring);
        else snprintf(rate, sizeof rate, "%.4g", num(lv, "request_rate"));
        fprintf(m, "| %d | %.0f | %s | %.0f | %.0f | %.2f | %.1f | %.1f | %.2f | %.2f | %.3f | %.3f | %.3f | %.3f | %.1f | %.1f | %s |\n",
                li++, num(lv, "max_concurrency"), rate, num(lv, "completed"), num(lv, "failed"),
                num(lv, "request_throughput"), num(lv, "output_throughput"), num(lv, "total_token_throughput"),
                num(lv, "median_ttft_ms"), num(lv, "p99_ttft_ms"), num(lv, "median_tpot_ms"), num(lv, "p99_tpot_ms"),
                num(lv, "median_itl_ms"), num(lv, "p99_itl_ms"), num(lv, "median_e2el_ms"), num(lv, "p99_e2el_ms"),
                cJSON_IsString(vd) ? vd->valuestring : "-");
    }
    fclose(m);
    if ((st = dpb_path_join(out, "serving_table.md", &p)) == DPB_OK) {
        st = dpb_file_write(p, md, ml);
        free(p);
    }
    free(md);
    return st;
}

static dpb_status write_json(const char *dir, const char *name, const cJSON *o)
{
    char *p, *s = cJSON_Print(o);
    if (!s) return dpb_error_set(DPB_E_NOMEM, "out of memory");
    dpb_status st = dpb_path_join(dir, name, &p);
    if (!st) {
        size_t l = strlen(s);
        s[l] = '\n';
        st = dpb_file_write(p, s, l + 1);
        s[l] = 0;
        free(p);
    }
    cJSON_free(s);
    return st;
}

static void add_verdict(cJSON *lv, const dpb_load_config *c, const char *preset_name, double ttft_lim, double tpot_lim)
{
    if (!(ttft_lim > 0) && !(tpot_lim > 0)) return;
    cJSON *v = cJSON_AddObjectToObject(lv, "verdict");
    bool open = c->mode == DPB_LOAD_OPEN;
    /* MLPerf's loadgen times a query from its scheduled issue: in the open loop we do the same */
    const char *ttft_key = open ? "p99_ttft_from_schedule_ms" : "p99_ttft_ms";
    double ttft = num(lv, ttft_key), tpot = num(lv, "p99_tpot_ms"), failed = num(lv, "failed");
    cJSON *reasons = cJSON_AddArrayToObject(v, "reasons");
    char b[200];
    bool ok = true;
    if (ttft_lim > 0) {
        if (isnan(ttft)) { ok = false; cJSON_AddItemToArray(reasons, cJSON_CreateString("p99 TTFT unavailable (no completed request)")); }
        else if (ttft > ttft_lim) {
            ok = false;
            snprintf(b, sizeof b, "p99 TTFT %.2f ms > %.0f ms", ttft, ttft_lim);
            cJSON_AddItemToArray(reasons, cJSON_CreateString(b));
        }
    }
    if (tpot_lim > 0) {
        if (isnan(tpot)) { ok = false; cJSON_AddItemToArray(reasons, cJSON_CreateString("p99 TPOT unavailable")); }
        else if (tpot > tpot_lim) {
            ok = false;
            snprintf(b, sizeof b, "p99 TPOT %.3f ms > %.0f ms", tpot, tpot_lim);
            cJSON_AddItemToArray(reasons, cJSON_CreateString(b));
        }
    }
    if (failed > 0) {
        ok = false;
        snprintf(b, sizeof b, "%.0f requests failed", failed);
        cJSON_AddItemToArray(reasons, cJSON_CreateString(b));
    }
    cJSON_AddStringToObject(v, "result", ok ? "VALID" : "INVALID");
    cJSON_AddStringToObject(v, "preset", preset_name ? preset_name : "custom");
    if (ttft_lim > 0) cJSON_AddNumberToObject(v, "p99_ttft_limit_ms", ttft_lim);
    if (tpot_lim > 0) cJSON_AddNumberToObject(v, "p99_tpot_limit_ms", tpot_lim);
    cJSON_AddStringToObject(v, "ttft_measured_from", open ? "schedule" : "send");
    if (preset_name) cJSON_AddStringToObject(v, "source", "mlcommons/inference loadgen/mlperf.conf (Server scenario ttft_latency/tpot_latency, 99th percentile)");
    double dur = num(lv, "duration_s");
    if (dur < 600) {
        snprintf(b, sizeof b, "latency limits only: the run lasted %.0f s, MLPerf also requires >= 600 s on its own dataset", dur);
        cJSON_AddStringToObject(v, "note", b);
    }
}

static void print_level(const cJSON *lv, const char *label)
{
    printf("============ deploybench load: %s ============\n", label);
    printf("%-40s %.0f\n", "Successful requests:", num(lv, "completed"));
    printf("%-40s %.0f\n", "Failed requests:", num(lv, "failed"));
    printf("%-40s %.2f\n", "Benchmark duration (s):", num(lv, "duration"));
    printf("%-40s %.0f\n", "Total input tokens:", num(lv, "total_input_tokens"));
    printf("%-40s %.0f\n", "Total generated tokens:", num(lv, "total_output_tokens"));
    printf("%-40s %.2f\n", "Request throughput (req/s):", num(lv, "request_throughput"));
    printf("%-40s %.2f\n", "Output token throughput (tok/s):", num(lv, "output_throughput"));
    printf("%-40s %.3f / %.3f / %.3f\n", "TTFT mean / p50 / p99 (ms):", num(lv, "mean_ttft_ms"), num(lv, "median_ttft_ms"), num(lv, "p99_ttft_ms"));
    printf("%-40s %.3f / %.3f\n", "TTFT from schedule p50 / p99 (ms):", num(lv, "median_ttft_from_schedule_ms"), num(lv, "p99_ttft_from_schedule_ms"));
    printf("%-40s %.3f / %.3f / %.3f\n", "TPOT mean / p50 / p99 (ms):", num(lv, "mean_tpot_ms"), num(lv, "median_tpot_ms"), num(lv, "p99_tpot_ms"));
    printf("%-40s %.3f / %.3f / %.3f\n", "ITL mean / p50 / p99 (ms):", num(lv, "mean_itl_ms"), num(lv, "median_itl_ms"), num(lv, "p99_itl_ms"));
    printf("%-40s %.3f / %.3f / %.3f\n", "E2EL mean / p50 / p99 (ms):", num(lv, "mean_e2el_ms"), num(lv, "median_e2el_ms"), num(lv, "p99_e2el_ms"));
    const cJSON *cl = cJSON_GetObjectItemCaseSensitive(lv, "client");
    printf("%-40s %.0f%% of a core, %.0f SSE events/s, p99 send lag %.3f ms\n", "Client:", 100 * num(cl, "cpu_utilization_of_one_core"),
           num(cl, "sse_events_per_s"), num(lv, "p99_send_lag_ms"));
    const cJSON *vd = cJSON_GetObjectItemCaseSensitive(lv, "verdict");
    if (vd) printf("%-40s %s\n", "Verdict:", cJSON_GetObjectItemCaseSensitive(vd, "result")->valuestring);
    const cJSON *fe = cJSON_GetObjectItemCaseSensitive(lv, "first_error");
    if (cJSON_IsString(fe)) printf("%-40s %s\n", "First error:", fe->valuestring);
    fflush(stdout);
}

static void host_info(cJSON *m)
{
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    cJSON_AddStringToObject(m, "hostname", host);
    char line[512], cpu[256] = "unknown";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "model name", 10)) {
                char *c = strchr(line, ':');
                if (c) {
                    c++;
                    while (*c == ' ') c++;
                    c[strcspn(c, "\n")] = 0;
                    snprintf(cpu, sizeof cpu, "%s", c);
                }
                break;
            }
        fclose(f);
    }
    cJSON_AddStringToObject(m, "cpu_model", cpu);
    cJSON_AddNumberToObject(m, "online_cpus", (double)sysconf(_SC_NPROCESSORS_ONLN));
    double la[3];
    if (getloadavg(la, 3) == 3) {
        cJSON *a = cJSON_AddArrayToObject(m, "load_average_at_start");
        for (int i = 0; i < 3; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(la[i]));
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) cJSON_AddNumberToObject(m, "fd_limit", (double)rl.rlim_cur);
}

int dpb_cmd_load(int argc, char **argv)
{
    const char *eps[64];
    size_t neps = 0;
    dpb_load_config c;
    dpb_load_config_default(&c);
    c.num_requests = 0;
    const char *tok_path = NULL;
    const char *out = NULL, *dataset = "random", *launch_cmd = NULL, *verdict = NULL, *conc_s = NULL, *rate_s = NULL;
    double launch_timeout = 600, slo_ttft = 0, slo_tpot = 0, search_start = 1;
    long long v, search_steps = 6;
    bool slo_search = false, have_num = false;
    c.api_key = getenv("OPENAI_API_KEY");
    dpb_status st = DPB_OK;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(); return 0; }
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED() do { if (!val) return dpb_cli_usage_error("load", "%s needs a value", a); i++; } while (0)
        if (!strcmp(a, "--endpoint")) {
            NEED();
            if (neps == 64) return dpb_cli_usage_error("load", "--endpoint: at most 64");
            eps[neps++] = val;
        } else if (!strcmp(a, "--model")) { NEED(); c.model = val; }
        else if (!strcmp(a, "--api")) {
            NEED();
            if (!strcmp(val, "chat")) c.chat = true;
            else if (!strcmp(val, "completions")) c.chat = false;
            else return dpb_cli_usage_error("load", "--api: '%s' is not completions or chat", val);
        } else if (!strcmp(a, "--api-key")) { NEED(); c.api_key = val; }
        else if (!strcmp(a, "--dataset")) { NEED(); dataset = val; }
        else if (!strcmp(a, "--prompt-tokens")) { NEED(); st = dpb_cli_parse_i64(a, val, 1, 10000000, &v); c.prompt_tokens = (uint64_t)v; }
        else if (!strcmp(a, "--prompt-ids")) {
            NEED();
            unsigned long long lo, hi;
            char tail;
            if (sscanf(val, "%llu:%llu%c", &lo, &hi, &tail) != 2 || hi <= lo || hi > 0xffffffffull)
                return dpb_cli_usage_error("load", "--prompt-ids: '%s' is not LO:HI with LO < HI (token ids, HI excluded)", val);
            c.id_lo = (uint32_t)lo;
            c.id_hi = (uint32_t)hi;
        }
        else if (!strcmp(a, "--gen-tokens")) { NEED(); st = dpb_cli_parse_i64(a, val, 1, 10000000, &v); c.gen_tokens = (uint64_t)v; }
        else if (!strcmp(a, "--no-ignore-eos")) c.ignore_eos = false;
        else if (!strcmp(a, "--no-usage-stats")) c.usage_stats = false;
        else if (!strcmp(a, "--seed")) { NEED(); st = dpb_cli_parse_i64(a, val, 0, INT64_MAX, &v); c.seed = (uint64_t)v; }
        else if (!strcmp(a, "--concurrency")) { NEED(); conc_s = val; }
        else if (!strcmp(a, "--request-rate")) { NEED(); rate_s = val; }
        else if (!strcmp(a, "--ramp-up")) { NEED(); st = dpb_cli_parse_double(a, val, 0, 86400, &c.ramp_up_s); }
        else if (!strcmp(a, "--burstiness")) { NEED(); st = dpb_cli_parse_double(a, val, 1e-3, 1e3, &c.burstiness); }
        else if (!strcmp(a, "--max-concurrency")) { NEED(); st = dpb_cli_parse_i64(a, val, 1, 10000000, &v); c.max_concurrency = (uint64_t)v; }
        else if (!strcmp(a, "--num-requests")) { NEED(); st = dpb_cli_parse_i64(a, val, 1, 100000000, &v); c.num_requests = (uint64_t)v; have_num = true; }
        else if (!strcmp(a, "--duration")) { NEED(); st = dpb_cli_parse_double(a, val, 0.001, 1e7, &c.duration_s); }
        else if (!strcmp(a, "--warmup")) { NEED(); st = dpb_cli_parse_i64(a, val, 0, 10000000, &v); c.warmup = (uint64_t)v; }
        else if (!strcmp(a, "--timeout")) { NEED(); st = dpb_cli_parse_double(a, val, 0.001, 1e6, &c.timeout_s); }
        else if (!strcmp(a, "--connect-timeout")) { NEED(); st = dpb_cli_parse_double(a, val, 0.001, 1e6, &c.connect_timeout_s); }
        else if (!strcmp(a, "--max-consecutive-failures")) { NEED(); st = dpb_cli_parse_i64(a, val, 0, INT64_MAX, &v); c.max_consecutive_failures = (uint64_t)v; }
        else if (!strcmp(a, "--goodput")) { NEED(); st = parse_limits(a, val, &c.slo_ttft_ms, &c.slo_tpot_ms, &c.slo_e2el_ms); }
        else if (!strcmp(a, "--verdict")) { NEED(); verdict = val; }
        else if (!strcmp(a, "--slo")) { NEED(); st = parse_limits(a, val, &slo_ttft, &slo_tpot, NULL); }
        else if (!strcmp(a, "--slo-search")) slo_search = true;
        else if (!strcmp(a, "--slo-search-start")) { NEED(); st = dpb_cli_parse_double(a, val, 1e-3, 1e7, &search_start); }
        else if (!strcmp(a, "--slo-search-steps")) { NEED(); st = dpb_cli_parse_i64(a, val, 0, 30, &search_steps); }
        else if (!strcmp(a, "--launch")) { NEED(); launch_cmd = val; }
        else if (!strcmp(a, "--launch-timeout")) { NEED(); st = dpb_cli_parse_double(a, val, 0.1, 86400, &launch_timeout); }
        else if (!strcmp(a, "--out")) { NEED(); out = val; }
        else if (!strcmp(a, "--record-chunks")) c.record_chunks = true;
        else if (!strcmp(a, "--tokenizer")) { NEED(); tok_path = val; }
        else return dpb_cli_usage_error("load", "unknown option '%s'", a);
#undef NEED
        if (st) return dpb_cli_fail("load", st);
    }
    if (!neps) return dpb_cli_usage_error("load", "--endpoint is required");
    if (!out) return dpb_cli_usage_error("load", "--out DIR is required");
    if (conc_s && rate_s) return dpb_cli_usage_error("load", "give --concurrency or --request-rate, not both");
    if (!conc_s && !rate_s && !slo_search) return dpb_cli_usage_error("load", "give --concurrency LIST or --request-rate LIST");
    if (!have_num && !(c.duration_s > 0)) c.num_requests = 100;
    if (have_num && c.duration_s > 0) return dpb_cli_usage_error("load", "give --num-requests or --duration, not both");
    const preset *pr = NULL;
    if (verdict) {
        for (size_t i = 0; i < N_PRESETS; i++)
            if (!strcmp(verdict, k_presets[i].name)) pr = &k_presets[i];
        if (!pr) return dpb_cli_usage_error("load", "--verdict: unknown preset '%s' (see --help)", verdict);
        slo_ttft = pr->ttft_ms;
        slo_tpot = pr->tpot_ms;
    }
    if (slo_search && !(slo_ttft > 0 || slo_tpot > 0)) return dpb_cli_usage_error("load", "--slo-search needs --verdict PRESET or --slo ttft:MS,tpot:MS");
    if (slo_search && conc_s) return dpb_cli_usage_error("load", "--slo-search searches request rates: drop --concurrency");
    double *levels = NULL;
    size_t nlev = 0;
    if (conc_s) {
        if ((st = parse_list("--concurrency", conc_s, false, &levels, &nlev))) return dpb_cli_fail("load", st);
        for (size_t i = 0; i < nlev; i++)
            if (levels[i] != floor(levels[i]) || levels[i] < 1) { free(levels); return dpb_cli_usage_error("load", "--concurrency: whole numbers >= 1"); }
    } else if (rate_s && (st = parse_list("--request-rate", rate_s, true, &levels, &nlev))) return dpb_cli_fail("load", st);
    char **prompts = NULL, *storage = NULL;
    size_t nprompts = 0;
    if (strcmp(dataset, "random") != 0) {
        if ((st = load_dataset(dataset, &prompts, &nprompts, &storage))) { free(levels); return dpb_cli_fail("load", st); }
        c.prompts = (const char *const *)prompts;
        c.n_prompts = nprompts;
    }
    dpb_tokenizer *tok = NULL;
    dpb_load_tokenizer hook;
    char tok_name[300];
    if (tok_path) {
        if ((st = dpb_tokenizer_load(tok_path, &tok))) {
            free(levels);
            free(prompts);
            free(storage);
            return dpb_cli_fail("load", dpb_error_prefix(st, "--tokenizer"));
        }
        const char *base = strrchr(tok_path, '/');
        snprintf(tok_name, sizeof tok_name, "tokenizer:%s", base ? base + 1 : tok_path);
        hook.name = tok_name;
        hook.ctx = tok;
        hook.count = tok_count;
        c.tokenizer = &hook;
    }
    c.endpoints = eps;
    c.n_endpoints = neps;
    signal(SIGPIPE, SIG_IGN);
    int rc = 0;
    pid_t child = 0;
    cJSON *summary = cJSON_CreateObject(), *manifest = cJSON_AddObjectToObject(summary, "manifest");
    cJSON *jlevels = cJSON_AddArrayToObject(summary, "levels");
    dpb_jsonlog *jl = NULL;
    char *jpath = NULL;
    char ts[40];
    {
        cJSON *cmd = cJSON_AddArrayToObject(manifest, "command_line");
        cJSON_AddItemToArray(cmd, cJSON_CreateString("deploybench"));
        for (int i = 0; i < argc; i++) cJSON_AddItemToArray(cmd, cJSON_CreateString(argv[i]));
        cJSON_AddStringToObject(manifest, "version", DPB_VERSION);
        cJSON_AddStringToObject(manifest, "commit", dpb_build_commit());
        cJSON_AddStringToObject(manifest, "libcurl", curl_version());
        host_info(manifest);
        dpb_time_iso8601(ts, sizeof ts);
        cJSON_AddStringToObject(manifest, "start_time", ts);
        cJSON_AddStringToObject(manifest, "client_token_count_method", tok_path ? tok_name : "chunks");
        if (tok) cJSON_AddStringToObject(manifest, "tokenizer", dpb_tokenizer_describe(tok));
    }
    if ((st = dpb_dir_create(out)) || (st = dpb_path_join(out, "requests.jsonl", &jpath)) ||
        (st = dpb_jsonlog_open(jpath, false, &jl)) || (st = write_json(out, "manifest.json", manifest))) {
        rc = dpb_cli_fail("load", st);
        goto done;
    }
    c.jsonl = jl;
    if (launch_cmd) {
        fprintf(stderr, "deploybench load: starting the server: %s\n", launch_cmd);
        if ((st = launch(launch_cmd, eps[0], launch_timeout, &child))) { rc = dpb_cli_fail("load", st); goto done; }
    }
    bool any_failed = false;
    cJSON *search = NULL;
    size_t total = slo_search ? 1000 : nlev;
    double lo_ok = 0, hi_bad = INFINITY;
    int doublings = 0, steps = 0;
    double rate = search_start;
    if (slo_search) search = cJSON_AddArrayToObject(summary, "slo_search");
    for (size_t li = 0; li < total; li++) {
        dpb_load_config lc = c;
        lc.level = (int)li;
        char label[96];
        if (slo_search) {
            lc.mode = DPB_LOAD_OPEN;
            lc.rate = rate;
            snprintf(label, sizeof label, "slo search probe %zu: %.4g req/s", li, rate);
        } else if (conc_s) {
            lc.mode = DPB_LOAD_CLOSED;
            lc.concurrency = (uint64_t)levels[li];
            snprintf(label, sizeof label, "level %zu/%zu: concurrency %llu", li + 1, nlev, (unsigned long long)lc.concurrency);
        } else {
            lc.mode = DPB_LOAD_OPEN;
            lc.rate = levels[li];
            snprintf(label, sizeof label, "level %zu/%zu: %g req/s", li + 1, nlev, lc.rate);
        }
        if (isatty(2)) fprintf(stderr, "deploybench load: %s ...\n", label);
        dpb_load_result *r;
        if ((st = dpb_load_result_create(&r))) { rc = dpb_cli_fail("load", st); goto done; }
        st = dpb_load_run(&lc, r);
        if (st && st != DPB_E_INTERRUPTED) {
            dpb_load_result_free(r);
            rc = dpb_cli_fail("load", st);
            goto done;
        }
        cJSON *lv;
        dpb_status ss = dpb_load_summary(&lc, r, &lv);
        if (ss) {
            dpb_load_result_free(r);
            rc = dpb_cli_fail("load", ss);
            goto done;
        }
        add_verdict(lv, &lc, pr ? pr->name : NULL, slo_ttft, slo_tpot);
        if (r->failed) any_failed = true;
        cJSON_AddItemToArray(jlevels, lv);
        print_level(lv, label);
        const cJSON *cl = cJSON_GetObjectItemCaseSensitive(lv, "client");
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cl, "client_bound"))) {
            const cJSON *rs;
            cJSON_ArrayForEach(rs, cJSON_GetObjectItemCaseSensitive(cl, "client_bound_reasons"))
                fprintf(stderr, "deploybench load: warning: %s\n", rs->valuestring);
        }
        dpb_load_result_free(r);
        dpb_time_iso8601(ts, sizeof ts);
        cJSON_DeleteItemFromObject(manifest, "end_time");
        cJSON_AddStringToObject(manifest, "end_time", ts);
        dpb_status ws = write_json(out, "summary.json", summary);
        if (!ws) ws = write_outputs(out, jlevels);
        if (ws) { rc = dpb_cli_fail("load", ws); goto done; }
        if (st == DPB_E_INTERRUPTED) { rc = 130; goto done; }
        if (slo_search) {
            const cJSON *vd = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(lv, "verdict"), "result");
            bool ok = cJSON_IsString(vd) && !strcmp(vd->valuestring, "VALID");
            cJSON *pb = cJSON_CreateObject();
            cJSON_AddNumberToObject(pb, "request_rate", rate);
            cJSON_AddStringToObject(pb, "verdict", ok ? "VALID" : "INVALID");
            cJSON_AddItemToArray(search, pb);
            if (ok) lo_ok = rate;
            else hi_bad = rate;
            if (isinf(hi_bad)) {
                if (++doublings > 24) break;
                rate *= 2;
            } else if (lo_ok == 0) {
                if (++doublings > 24 || rate / 2 < 1e-3) break;
                rate /= 2;
            } else {
                if (++steps > search_steps) break;
                rate = (lo_ok + hi_bad) / 2;
            }
        }
    }
    if (slo_search) {
        cJSON *best = cJSON_AddObjectToObject(summary, "slo_search_result");
        if (lo_ok > 0) cJSON_AddNumberToObject(best, "highest_valid_request_rate", lo_ok);
        else cJSON_AddNullToObject(best, "highest_valid_request_rate");
        if (isfinite(hi_bad)) cJSON_AddNumberToObject(best, "lowest_invalid_request_rate", hi_bad);
        printf("SLO search: highest VALID rate %.4g req/s (lowest INVALID %.4g)\n", lo_ok, hi_bad);
        dpb_status ws = write_json(out, "summary.json", summary);
        if (ws) { rc = dpb_cli_fail("load", ws); goto done; }
    }
    if (slo_search) {
        /* probes above capacity fail by design: the search succeeds when it found a VALID rate */
        if (rc == 0 && !(lo_ok > 0)) {
            fprintf(stderr, "deploybench load: --slo-search found no request rate that meets the limits\n");
            rc = 1;
        }
    } else if (any_failed && rc == 0) {
        fprintf(stderr, "deploybench load: some requests failed (see failures in %s/summary.json)\n", out);
        rc = 1;
    }
done:
    if (child) {
        fprintf(stderr, "deploybench load: stopping the server\n");
        stop_launched(child);
    }
    if (jl) dpb_jsonlog_close(jl);
    free(jpath);
    cJSON_Delete(summary);
    free(levels);
    free(prompts);
    free(storage);
    dpb_tokenizer_free(tok);
    return rc;
}
