/* The report's tables, built once as plain strings and written as HTML,
 * Markdown and LaTeX (write.c). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "report/internal.h"

const rp_definition rp_definitions[] = {
    {"TTFT (ms)", "time of the first generated token - request start (prefill and the first sample), from the "
                  "engine's CLOCK_MONOTONIC timestamps",
     "time to first token (the same quantity)"},
    {"TPOT (ms/token)", "(time of the last token - time of the first token) / (n - 1): the first token excluded, so "
                        "TTFT + (n - 1) x TPOT = E2E",
     "\"TPOT\" is n / (whole generate call) in tokens/s, prefill included; ours keeps it as "
     "seed_TPOT_tokps_prefill_included"},
    {"ITL (ms)", "every gap between consecutive tokens of a request", "not reported"},
    {"E2E (ms)", "time of the last token - request start", "not reported separately"},
    {"decode tok/s", "(n - 1) / (time of the last token - time of the first token), per sequence", "not reported"},
    {"KV cache (bytes)", "bytes the engine allocated for K and V = the analytic formula: layers x 2 x kv_heads x "
                         "head_dim x element bytes x tokens (sliding-window layers hold at most their window)",
     "\"KV cache\" is peak memory - memory after loading: KV plus workspace and activations; ours keeps it as "
     "seed_kv_cache_bytes_peak_minus_baseline"},
    {"peak memory", "device memory of the process from NVML at its peak (100 Hz polling); host RSS peak (VmHWM) on "
                    "the CPU",
     "peak GPU memory during generate"},
    {"energy (J per 1k tokens)", "NVML total-energy counter over the request (cross-checked with the integral of "
                                 "polled power) / generated tokens x 1000; the idle baseline is measured and "
                                 "reported beside it",
     "average board power x time, no idle baseline; ours keeps it as seed_j_per_1k_tokens_avg_w_x_time_no_idle"},
    {"APE", "metric / active parameters in billions, active counted from the checkpoint (top-k experts, attention, "
            "router, norms, lm_head; no embedding)",
     "metric / active parameters in billions (the same formula)"},
    {"goodput (req/s)", "completed requests that met every limit (TTFT, TPOT, E2E) / duration of the level",
     "not in the reference study"},
    {"percentiles", "nearest rank on a log-linear histogram (bucket midpoint, within 2^-11 relative)",
     "not stated"},
};
const int rp_n_definitions = (int)(sizeof rp_definitions / sizeof rp_definitions[0]);

static rp_table *tab_new(rp_data *d, const char *id, const char *title, const char *caption, int ncols, ...)
{
    if (d->ntab == RP_MAXTAB) return NULL;
    rp_table *t = &d->tab[d->ntab++];
    memset(t, 0, sizeof *t);
    snprintf(t->id, sizeof t->id, "%s", id);
    snprintf(t->title, sizeof t->title, "%s", title);
    snprintf(t->caption, sizeof t->caption, "%s", caption);
    t->ncols = ncols;
    va_list ap;
    va_start(ap, ncols);
    for (int i = 0; i < ncols && i < 16; i++) t->head[i] = va_arg(ap, const char *);
    va_end(ap);
    t->rows = cJSON_CreateArray();
    return t;
}

static cJSON *row(rp_table *t)
{
    cJSON *r = cJSON_CreateArray();
    cJSON_AddItemToArray(t->rows, r);
    return r;
}

static void cell(cJSON *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void cell(cJSON *r, const char *fmt, ...)
{
    char b[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b, sizeof b, fmt, ap);
    va_end(ap);
    cJSON_AddItemToArray(r, cJSON_CreateString(b));
}

/* A number with about 4 significant digits, or "n/a". */
static void celln(cJSON *r, double v)
{
    if (!isfinite(v)) cell(r, "n/a");
    else if (fabs(v) >= 10000) cell(r, "%.0f", v);
    else if (fabs(v) >= 100) cell(r, "%.1f", v);
    else if (fabs(v) >= 1) cell(r, "%.3f", v);
    else cell(r, "%.4g", v);
}

static void cellb(cJSON *r, double bytes)
{
    if (!isfinite(bytes)) cell(r, "n/a");
    else if (bytes >= 1073741824.0) cell(r, "%.3f GiB", bytes / 1073741824.0);
    else if (bytes >= 1048576.0) cell(r, "%.2f MiB", bytes / 1048576.0);
    else cell(r, "%.1f KiB", bytes / 1024.0);
}

static void label(const rp_model *m, cJSON *r)
{
    char b[200];
    rp_model_label(m, b, sizeof b);
    cell(r, "%s", b);
}

static const cJSON *row_at(const cJSON *arr, const char *key, double want)
{
    const cJSON *o, *best = NULL;
    double bd = 1e300;
    cJSON_ArrayForEach(o, arr) {
        double v = rp_num(o, key);
        if (isfinite(v) && fabs(v - want) < bd) best = o, bd = fabs(v - want);
    }
    return best;
}

static double peak_bytes(const cJSON *mem)
{
    double p = rp_num(mem, "device_proc_mem_peak_bytes");
    return isfinite(p) && p > 0 ? p : rp_num(mem, "host_rss_peak_bytes");
}

dpb_status rp_tables_build(rp_data *d)
{
    /* models */
    rp_table *t = tab_new(d, "models", "Models",
                          "Synthetic models have random weights (deploybench synth:PRESET): their speed and memory are "
                          "those of the architecture; their outputs mean nothing.",
                          5, "model", "weights", "synthetic", "stands in for", "colour");
    for (size_t i = 0; t && i < d->n; i++) {
        cJSON *r = row(t);
        cell(r, "%s", d->m[i].name);
        cell(r, "%s", d->m[i].spec[0] ? d->m[i].spec : "?");
        cell(r, "%s", d->m[i].synthetic ? "yes: random weights" : "no");
        cell(r, "%s", d->m[i].stands_for[0] ? d->m[i].stands_for : "-");
        cell(r, "%s", d->m[i].color);
    }

    /* comparison with the reference study */
    t = tab_new(d, "reference", "Headline figures beside the reference study",
                "Each model at its headline cell (2048-token prompt, 64 generated, batch 1, or the nearest measured) "
                "beside the reference study's published gpt-oss-20b figures (H100 NVL, Hugging Face transformers, "
                "bf16). Rows marked 'study def.' use the reference study's definitions (see Definitions); compare "
                "only rows of the same definition, and synthetic models only as architectures.",
                2 + (int)(d->n < 12 ? d->n : 12), "metric", "reference study (gpt-oss-20b, H100 NVL)", "", "", "", "",
                "", "", "", "", "", "", "", "");
    if (t) {
        static char heads[12][200];
        for (size_t i = 0; i < d->n && i < 12; i++) {
            const cJSON *c = rp_headline_cell(&d->m[i]);
            char lab[160];
            rp_model_label(&d->m[i], lab, sizeof lab);
            if (c) snprintf(heads[i], sizeof heads[i], "%s, %.0f/%.0f", lab, rp_num(c, "prompt_tokens"), rp_num(c, "gen_tokens"));
            else snprintf(heads[i], sizeof heads[i], "%s", lab);
            t->head[2 + i] = heads[i];
        }
        static const char *const names[] = {"TTFT p50 (ms)",
                                            "study def. \"TPOT\": tok/s incl. prefill",
                                            "TPOT p50 (ms/token, first excluded)",
                                            "energy per 1k tokens, ours (J)",
                                            "study def. energy per 1k tokens (J, avg W x time)",
                                            "peak memory (GiB)",
                                            "study def. \"KV cache\": peak - baseline (GiB)",
                                            "KV cache allocated, exact (GiB)"};
        /* as published (docs/RESULTS.md) */
        static const char *const refv[] = {"476",   "31.1",         "not reported",           "not reported",
                                           "9,764", "42.5",         "3.5 GB (as published)", "not reported"};
        for (int k = 0; k < 8; k++) {
            cJSON *r = row(t);
            cell(r, "%s", names[k]);
            cell(r, "%s", refv[k]);
            for (size_t i = 0; i < d->n && i < 12; i++) {
                const rp_model *m = &d->m[i];
                const cJSON *c = rp_headline_cell(m);
                double ctx = c ? rp_num(c, "prompt_tokens") : 2048;
                const cJSON *mem = row_at(m->memory, "context", ctx), *en = row_at(m->energy, "context", ctx);
                double v = NAN;
                switch (k) {
                case 0: v = rp_num(c, "ttft_ms_p50"); break;
                case 1: v = rp_num(c, "seed_TPOT_tokps_prefill_included"); break;
                case 2: v = rp_num(c, "tpot_ms_p50"); break;
                case 3: v = rp_num(en, "j_per_1k_tokens"); break;
                case 4: v = rp_num(en, "seed_j_per_1k_tokens_avg_w_x_time_no_idle"); break;
                case 5: v = peak_bytes(mem) / 1073741824.0; break;
                case 6: v = rp_num(mem, "seed_kv_cache_bytes_peak_minus_baseline") / 1073741824.0; break;
                case 7: v = rp_num(mem, "kv_bytes_allocated_exact") / 1073741824.0; break;
                }
                celln(r, v);
            }
        }
    }

    /* latency */
    t = tab_new(d, "latency", "Latency grid",
                "Per cell (prompt / generated tokens, batch): TTFT and TPOT percentiles, ITL and E2E p50, the reference "
                "study's tok/s incl. prefill, and decode tok/s per sequence. '*': an unstable cell (a coefficient of "
                "variation of TTFT, TPOT or E2E above the threshold).",
                12, "model", "prompt", "gen", "batch", "TTFT p50 (ms)", "TTFT p99 (ms)", "TPOT p50 (ms)",
                "TPOT p99 (ms)", "ITL p50 (ms)", "E2E p50 (ms)", "study tok/s incl. prefill", "decode tok/s");
    for (size_t i = 0; t && i < d->n; i++) {
        const cJSON *c;
        cJSON_ArrayForEach(c, d->m[i].latency) {
            cJSON *r = row(t);
            label(&d->m[i], r);
            cell(r, "%.0f", rp_num(c, "prompt_tokens"));
            cell(r, "%.0f", rp_num(c, "gen_tokens"));
            cell(r, "%.0f", rp_num(c, "batch"));
            static const char *const k[] = {"ttft_ms_p50", "ttft_ms_p99", "tpot_ms_p50", "tpot_ms_p99", "itl_ms_p50",
                                            "e2e_ms_p50", "seed_TPOT_tokps_prefill_included", "decode_tok_s_per_seq"};
            for (int j = 0; j < 8; j++) celln(r, rp_num(c, k[j]));
            if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "unstable"))) {
                cJSON *last = cJSON_GetArrayItem(r, 11);
                char b[64];
                snprintf(b, sizeof b, "%s *", last->valuestring);
                cJSON_ReplaceItemInArray(r, 11, cJSON_CreateString(b));
            }
        }
    }

    /* memory */
    t = tab_new(d, "memory", "Memory and KV cache vs context",
                "KV allocated by the engine must equal the analytic figure exactly. 'peak' is the process's device "
                "memory from NVML, or host RSS on the CPU; 'study def. KV' is the reference study's peak - baseline.",
                9, "model", "context", "weights", "KV exact", "KV analytic", "equal", "workspace", "peak",
                "study def. KV (peak - baseline)");
    for (size_t i = 0; t && i < d->n; i++) {
        const cJSON *c;
        cJSON_ArrayForEach(c, d->m[i].memory) {
            cJSON *r = row(t);
            label(&d->m[i], r);
            cell(r, "%.0f+%.0f", rp_num(c, "context"), rp_num(c, "gen_tokens"));
            cellb(r, rp_num(c, "weight_bytes"));
            cellb(r, rp_num(c, "kv_bytes_allocated_exact"));
            cellb(r, rp_num(c, "kv_bytes_analytic"));
            cell(r, "%s", cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "kv_exact_equals_analytic")) ? "yes" : "NO");
            cellb(r, rp_num(c, "workspace_bytes"));
            cellb(r, peak_bytes(c));
            cellb(r, rp_num(c, "seed_kv_cache_bytes_peak_minus_baseline"));
        }
    }

    /* energy */
    t = tab_new(d, "energy", "Energy",
                "Ours: the NVML energy counter (or the power integral); the counter-vs-integral difference checks it. "
                "The study's method: average power x time, no idle baseline. A figure that could not be measured "
                "says why.",
                9, "model", "context/gen", "J per 1k tokens", "study def. J per 1k", "idle W", "avg W", "decode tok/s",
                "counter vs integral", "note");
    for (size_t i = 0; t && i < d->n; i++) {
        const cJSON *c;
        cJSON_ArrayForEach(c, d->m[i].energy) {
            cJSON *r = row(t);
            label(&d->m[i], r);
            cell(r, "%.0f/%.0f", rp_num(c, "context"), rp_num(c, "gen_tokens"));
            celln(r, rp_num(c, "j_per_1k_tokens"));
            celln(r, rp_num(c, "seed_j_per_1k_tokens_avg_w_x_time_no_idle"));
            celln(r, rp_num(c, "idle_avg_w"));
            celln(r, rp_num(c, "total_avg_w"));
            celln(r, rp_num(c, "tok_s_decode"));
            double rd = rp_num(c, "total_energy_rel_diff");
            if (isfinite(rd)) cell(r, "%+.1f %%", 100 * rd);
            else cell(r, "n/a");
            const char *why = rp_unavailable(c, "j_per_1k_tokens");
            cell(r, "%s", why && isnan(rp_num(c, "j_per_1k_tokens")) ? why : "");
        }
    }

    /* APE */
    t = tab_new(d, "ape", "Active Parameter Efficiency",
                "metric / active parameters in billions (counted from the checkpoint); one row per latency cell at "
                "batch 1.",
                8, "model", "context/gen", "active B", "decode tok/s per active B", "1000/TTFT per active B",
                "tokens/W per active B", "tok/s per GB peak", "study tok/s per active B");
    if (t && d->ape) {
        const cJSON *c;
        cJSON_ArrayForEach(c, d->ape) {
            const rp_model *m = NULL;
            for (size_t i = 0; i < d->n; i++)
                if (rp_str(c, "model") && !strcmp(rp_str(c, "model"), d->m[i].spec)) m = &d->m[i];
            cJSON *r = row(t);
            if (m) label(m, r);
            else cell(r, "%s", rp_str(c, "model") ? rp_str(c, "model") : "?");
            cell(r, "%.0f/%.0f", rp_num(c, "context_length"), rp_num(c, "gen_tokens"));
            celln(r, rp_num(c, "params_active_b"));
            celln(r, rp_num(c, "decode_tok_s_per_active_b"));
            celln(r, rp_num(c, "inv_ttft_per_s_per_active_b"));
            celln(r, rp_num(c, "tokens_per_watt_per_active_b"));
            celln(r, rp_num(c, "decode_tok_s_per_gb_peak"));
            celln(r, rp_num(c, "seed_TPOT_tokps_per_active_b"));
        }
    }

    /* serving */
    t = tab_new(d, "serving", "Serving sweep",
                "deploybench load (closed loop, N concurrent users) against deploybench serve on loopback: "
                "throughput, latency percentiles and goodput per concurrency level.",
                10, "model", "users", "completed", "failed", "req/s", "goodput req/s", "output tok/s", "TTFT p50 (ms)",
                "TTFT p99 (ms)", "TPOT p50 (ms)");
    for (size_t i = 0; t && i < d->n; i++) {
        const cJSON *c;
        cJSON_ArrayForEach(c, d->m[i].serve) {
            cJSON *r = row(t);
            label(&d->m[i], r);
            cell(r, "%.0f", rp_num(c, "max_concurrency"));
            cell(r, "%.0f", rp_num(c, "completed"));
            cell(r, "%.0f", rp_num(c, "failed"));
            celln(r, rp_num(c, "request_throughput_req_per_s"));
            celln(r, rp_num(c, "request_goodput"));
            celln(r, rp_num(c, "output_throughput_tok_per_s"));
            celln(r, rp_num(c, "median_ttft_ms"));
            celln(r, rp_num(c, "p99_ttft_ms"));
            celln(r, rp_num(c, "median_tpot_ms"));
        }
    }

    /* ablations */
    t = tab_new(d, "ablations", "Ablations",
                "One latency cell per value of one factor, everything else fixed (deploybench ablate).", 7, "model",
                "test", "value", "TTFT p50 (ms)", "TPOT p50 (ms)", "decode tok/s", "E2E p50 (ms)");
    for (size_t i = 0; t && i < d->n; i++) {
        const cJSON *c;
        cJSON_ArrayForEach(c, d->m[i].ablate) {
            cJSON *r = row(t);
            label(&d->m[i], r);
            cell(r, "%s", rp_str(c, "test") ? rp_str(c, "test") : "?");
            cell(r, "%s", rp_str(c, "value") ? rp_str(c, "value") : "?");
            celln(r, rp_num(c, "ttft_ms_p50"));
            celln(r, rp_num(c, "tpot_ms_p50"));
            celln(r, rp_num(c, "decode_tok_s_per_seq"));
            celln(r, rp_num(c, "e2e_ms_p50"));
        }
    }

    /* accuracy and safety */
    t = tab_new(d, "accuracy", "Accuracy and safety",
                "deploybench eval (lm-evaluation-harness definitions) per task and metric; deploybench safety's rates "
                "are in its own report.md, named here. Synthetic models' figures mean nothing.",
                6, "model", "task", "metric", "items", "accuracy", "stderr");
    for (size_t i = 0; t && i < d->n; i++) {
        const cJSON *c;
        cJSON_ArrayForEach(c, d->m[i].eval) {
            cJSON *r = row(t);
            label(&d->m[i], r);
            cell(r, "%s", rp_str(c, "task"));
            cell(r, "%s", rp_str(c, "metric"));
            cell(r, "%.0f", rp_num(c, "n"));
            celln(r, rp_num(c, "accuracy"));
            celln(r, rp_num(c, "stderr"));
        }
        if (cJSON_IsString(d->m[i].safety)) {
            cJSON *r = row(t);
            label(&d->m[i], r);
            cell(r, "safety");
            cell(r, "refusal, jailbreak, over-refusal rates");
            cell(r, "-");
            cell(r, "see %s/report.md", d->m[i].safety->valuestring);
            cell(r, "-");
        }
    }

    /* steps not run */
    t = tab_new(d, "notrun", "Steps skipped, failed or not finished",
                "From the study manifest: what did not produce results, and why.", 4, "model", "step", "status",
                "reason");
    const cJSON *n;
    cJSON_ArrayForEach(n, d->notes) {
        if (!t) break;
        cJSON *r = row(t);
        cell(r, "%s", rp_str(n, "model"));
        cell(r, "%s", rp_str(n, "step"));
        cell(r, "%s", rp_str(n, "status"));
        cell(r, "%s", rp_str(n, "reason"));
    }
    return DPB_OK;
}
