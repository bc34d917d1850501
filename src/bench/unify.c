#include "bench/unify.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench/latency.h"
#include "core/file.h"

#define MIB 1048576.0

static cJSON *load_json(const char *dir, const char *name, dpb_status *st)
{
    *st = DPB_OK;
    char *p;
    if ((*st = dpb_path_join(dir, name, &p))) return NULL;
    if (!dpb_file_exists(p)) {
        free(p);
        return NULL;
    }
    char *text;
    size_t len;
    *st = dpb_file_read(p, 256u << 20, &text, &len);
    if (*st) {
        free(p);
        return NULL;
    }
    cJSON *j = cJSON_ParseWithLength(text, len);
    if (!j) *st = dpb_error_set(DPB_E_FORMAT, "%s: not valid JSON", p);
    free(text);
    free(p);
    return j;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* "synth:gpt-oss-20b:7" -> "gpt-oss-20b"; a folder -> its last component. */
static void model_short(const char *spec, char *buf, size_t cap)
{
    const char *s = spec;
    if (strncmp(s, "synth:", 6) == 0) s += 6;
    else {
        size_t l = strlen(s);
        while (l > 1 && s[l - 1] == '/') l--;
        const char *e = s + l, *b = e;
        while (b > s && b[-1] != '/') b--;
        snprintf(buf, cap, "%.*s", (int)(e - b), b);
        return;
    }
    const char *colon = strchr(s, ':');
    snprintf(buf, cap, "%.*s", (int)(colon ? (size_t)(colon - s) : strlen(s)), s);
}

static void add_ids(cJSON *row, const cJSON *man, const char *dir)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(man, "model");
    const char *spec = jstr(m, "spec") ? jstr(m, "spec") : "unknown";
    const char *arch = jstr(m, "arch") ? jstr(m, "arch") : "";
    char sh[256];
    model_short(spec, sh, sizeof sh);
    cJSON_AddStringToObject(row, "model_short", sh);
    cJSON_AddStringToObject(row, "model", spec);
    cJSON_AddStringToObject(row, "model_type", strcmp(arch, "gpt_oss") == 0 ? "moe" : "dense");
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(man, "host");
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(h, "gpus");
    const char *dev = NULL;
    if (cJSON_IsArray(g) && cJSON_GetArraySize(g) > 0) {
        const cJSON *g0 = cJSON_GetArrayItem(g, 0);
        dev = jstr(g0, "name");
        const cJSON *mt = cJSON_GetObjectItemCaseSensitive(g0, "mem_total_bytes");
        if (cJSON_IsNumber(mt)) cJSON_AddNumberToObject(row, "_gpu_mem_total_bytes", mt->valuedouble);
    }
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(man, "params");
    const char *be = jstr(params, "backend");
    if (!dev || (be && (strcmp(be, "cpu") == 0 || strcmp(be, "ref") == 0))) dev = jstr(h, "cpu_model");
    cJSON_AddStringToObject(row, "device", dev ? dev : "unknown");
    cJSON_AddStringToObject(row, "commit", jstr(man, "commit") ? jstr(man, "commit") : "unknown");
    cJSON_AddStringToObject(row, "results_dir", dir);
}

static void take_rows(cJSON *dst, const cJSON *src, const cJSON *man, const char *dir)
{
    const cJSON *r;
    cJSON_ArrayForEach(r, src) {
        cJSON *c = cJSON_Duplicate(r, 1);
        if (cJSON_GetObjectItemCaseSensitive(c, "model")) cJSON_DeleteItemFromObjectCaseSensitive(c, "model");
        add_ids(c, man, dir);
        cJSON_AddItemToArray(dst, c);
    }
}

dpb_status dpb_study_rows_load(const char *const *dirs, size_t n, dpb_study_rows *out)
{
    out->latency = cJSON_CreateArray();
    out->memory = cJSON_CreateArray();
    out->energy = cJSON_CreateArray();
    dpb_status st = DPB_OK;
    for (size_t i = 0; i < n && !st; i++) {
        cJSON *man = load_json(dirs[i], "manifest.json", &st);
        if (st) break;
        if (!man) {
            st = dpb_error_set(DPB_E_ARG, "--results %s: no manifest.json (not a results folder)", dirs[i]);
            break;
        }
        cJSON *lat = load_json(dirs[i], "summary.json", &st), *mem = NULL, *en = NULL;
        if (!st) mem = load_json(dirs[i], "memory.json", &st);
        if (!st) en = load_json(dirs[i], "energy_summary.json", &st);
        if (!st && !lat && !mem && !en)
            st = dpb_error_set(DPB_E_ARG, "--results %s: no summary.json, memory.json or energy_summary.json", dirs[i]);
        if (!st) {
            take_rows(out->latency, cJSON_GetObjectItemCaseSensitive(lat, "cells"), man, dirs[i]);
            take_rows(out->memory, cJSON_GetObjectItemCaseSensitive(mem, "rows"), man, dirs[i]);
            take_rows(out->energy, cJSON_GetObjectItemCaseSensitive(en, "contexts"), man, dirs[i]);
        }
        cJSON_Delete(man);
        cJSON_Delete(lat);
        cJSON_Delete(mem);
        cJSON_Delete(en);
    }
    if (st) dpb_study_rows_free(out);
    return st;
}

void dpb_study_rows_free(dpb_study_rows *r)
{
    cJSON_Delete(r->latency);
    cJSON_Delete(r->memory);
    cJSON_Delete(r->energy);
    memset(r, 0, sizeof *r);
}

/* ---- mapping ---- */

typedef struct colmap {
    const char *out;
    const char *src;      /* NULL: unavail */
    double scale;         /* numbers multiplied by it (0: 1) */
    const char *unavail;  /* when src is NULL or absent */
} colmap;

static double num_or_nan(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void set_derived(cJSON *o, const char *k, double v, const char *why)
{
    if (isfinite(v)) cJSON_AddNumberToObject(o, k, v);
    else cJSON_AddStringToObject(o, k, why);
}

static cJSON *map_rows(const cJSON *rows, const colmap *m, size_t nm)
{
    cJSON *outa = cJSON_CreateArray();
    const cJSON *r;
    cJSON_ArrayForEach(r, rows) {
        cJSON *o = cJSON_CreateObject();
        for (size_t i = 0; i < nm; i++) {
            const cJSON *v = m[i].src ? cJSON_GetObjectItemCaseSensitive(r, m[i].src) : NULL;
            if (cJSON_IsNumber(v)) cJSON_AddNumberToObject(o, m[i].out, v->valuedouble * (m[i].scale ? m[i].scale : 1));
            else if (v) cJSON_AddItemToObject(o, m[i].out, cJSON_Duplicate(v, 1));
            else cJSON_AddStringToObject(o, m[i].out, m[i].unavail ? m[i].unavail : "unavailable: not measured");
        }
        cJSON_AddItemToArray(outa, o);
    }
    return outa;
}

static const colmap k_lat[] = {
    {"model_short", "model_short", 0, NULL}, {"model", "model", 0, NULL}, {"model_type", "model_type", 0, NULL},
    {"prompt_tokens", "prompt_tokens", 0, NULL}, {"gen_tokens", "gen_tokens", 0, NULL},
    {"TTFT_ms", "ttft_ms_mean", 0, NULL}, {"p50_ms", "e2e_ms_p50", 0, NULL}, {"p95_ms", "e2e_ms_p95", 0, NULL},
    {"p99_ms", "e2e_ms_p99", 0, NULL}, {"TPOT_tokps", "seed_TPOT_tokps_prefill_included", 0, NULL},
    {"context_length", "prompt_tokens", 0, NULL}, {"ttft_ms", "ttft_ms_mean", 0, NULL},
    {"batch", "batch", 0, NULL}, {"backend", "backend", 0, NULL}, {"device", "device", 0, NULL},
    {"requests", "requests", 0, NULL}, {"ttft_ms_p50", "ttft_ms_p50", 0, NULL},
    {"ttft_ms_p95", "ttft_ms_p95", 0, NULL}, {"ttft_ms_p99", "ttft_ms_p99", 0, NULL},
    {"tpot_ms_mean", "tpot_ms_mean", 0, NULL}, {"tpot_ms_p50", "tpot_ms_p50", 0, NULL},
    {"tpot_ms_p95", "tpot_ms_p95", 0, NULL}, {"tpot_ms_p99", "tpot_ms_p99", 0, NULL},
    {"itl_ms_p50", "itl_ms_p50", 0, NULL}, {"itl_ms_p99", "itl_ms_p99", 0, NULL},
    {"e2e_ms_mean", "e2e_ms_mean", 0, NULL}, {"prefill_tok_s", "prefill_tok_s", 0, NULL},
    {"decode_tok_s_per_seq", "decode_tok_s_per_seq", 0, NULL},
    {"decode_tok_s_aggregate", "decode_tok_s_aggregate", 0, NULL}, {"ttft_cv", "ttft_cv", 0, NULL},
    {"tpot_cv", "tpot_cv", 0, NULL}, {"unstable", "unstable", 0, NULL}, {"prompt_kind", "prompt_kind", 0, NULL},
    {"commit", "commit", 0, NULL}, {"results_dir", "results_dir", 0, NULL}};

#define NO_ALLOC "unavailable: deploybench has no PyTorch caching allocator (no reserved figure)"
#define NO_TOK "unavailable: prompts are token ids before the engine starts (no tokenize step)"
static const colmap k_mem[] = {
    {"model_short", "model_short", 0, NULL}, {"model", "model", 0, NULL}, {"device_name", "device", 0, NULL},
    {"context_length", "context", 0, NULL}, {"gen_tokens", "gen_tokens", 0, NULL},
    {"total_tokens", "max_ctx_tokens", 0, NULL}, {"baseline_alloc_mb", "seed_baseline_bytes", 1 / MIB, NULL},
    {"baseline_reserved_mb", NULL, 0, NO_ALLOC}, {"after_tokenize_alloc_mb", NULL, 0, NO_TOK},
    {"after_tokenize_reserved_mb", NULL, 0, NO_TOK}, {"after_generate_alloc_mb", "_after_generate_bytes", 1 / MIB, NULL},
    {"after_generate_reserved_mb", NULL, 0, NO_ALLOC}, {"peak_alloc_mb", "_peak_bytes", 1 / MIB, NULL},
    {"peak_reserved_mb", NULL, 0, NO_ALLOC}, {"tokenize_delta_alloc_mb", NULL, 0, NO_TOK},
    {"generate_delta_alloc_mb", "seed_kv_cache_bytes_peak_minus_baseline", 1 / MIB, NULL},
    {"total_delta_alloc_mb", "seed_kv_cache_bytes_peak_minus_baseline", 1 / MIB, NULL},
    {"kv_cache_alloc_mb", "seed_kv_cache_bytes_peak_minus_baseline", 1 / MIB, NULL},
    {"kv_cache_reserved_mb", NULL, 0, NO_ALLOC}, {"memory_per_token_alloc_mb", "_seed_per_token_bytes", 1 / MIB, NULL},
    {"memory_per_token_reserved_mb", NULL, 0, NO_ALLOC}, {"util_after_percent_alloc", "_util_after", 0, NULL},
    {"util_peak_percent_alloc", "_util_peak", 0, NULL}, {"util_peak_percent_reserved", NULL, 0, NO_ALLOC},
    {"total_gpu_memory_mb", "_gpu_mem_total_bytes", 1 / MIB, "unavailable: no GPU memory total in the manifest"},
    {"peak_memory_mb", "_peak_bytes", 1 / MIB, NULL}, {"memory_efficiency", "_memory_efficiency", 0, NULL},
    {"backend", "backend", 0, NULL}, {"memory_source", "seed_kv_cache_source", 0, NULL},
    {"weight_bytes", "weight_bytes", 0, NULL}, {"kv_bytes_allocated_exact", "kv_bytes_allocated_exact", 0, NULL},
    {"kv_bytes_analytic", "kv_bytes_analytic", 0, NULL},
    {"kv_exact_equals_analytic", "kv_exact_equals_analytic", 0, NULL},
    {"kv_bytes_per_token_measured", "kv_bytes_per_token_measured", 0, NULL},
    {"kv_bytes_per_token_full_layers_analytic", "kv_bytes_per_token_full_layers_analytic", 0, NULL},
    {"workspace_bytes", "workspace_bytes", 0, NULL}, {"transient_bytes_measured", "transient_bytes_measured", 0, NULL},
    {"device_proc_mem_peak_bytes", "device_proc_mem_peak_bytes", 0, NULL},
    {"host_rss_peak_bytes", "host_rss_peak_bytes", 0, NULL}, {"commit", "commit", 0, NULL},
    {"results_dir", "results_dir", 0, NULL}};

#define NO_UTIL "unavailable: utilization is in telemetry.csv, not averaged per context"
static const colmap k_en[] = {
    {"model_short", "model_short", 0, NULL}, {"model", "model", 0, NULL}, {"context_length", "context", 0, NULL},
    {"gen_tokens", "gen_tokens", 0, NULL}, {"ttft_ms", "prefill_s", 1000, NULL},
    {"ttft_joules", "prefill_energy_counter_j", 0, NULL}, {"decode_tokens_per_second", "tok_s_decode", 0, NULL},
    {"total_tokens_per_second", "tok_s_e2e", 0, NULL}, {"avg_gpu_power_watts", "total_avg_w", 0, NULL},
    {"baseline_gpu_power_watts", "idle_avg_w", 0, NULL}, {"avg_gpu_utilization_percent", NULL, 0, NO_UTIL},
    {"avg_memory_utilization_percent", NULL, 0, NO_UTIL},
    {"energy_per_decoded_token_joules", "decode_j_per_token", 0, NULL},
    {"energy_per_1k_decoded_tokens_joules", "decode_j_per_token", 1000, NULL},
    {"energy_per_total_token_joules", "j_per_1k_tokens", 0.001, NULL},
    {"tokens_per_watt", "_tokens_per_watt", 0, NULL}, {"energy_per_1k_joules", "decode_j_per_token", 1000, NULL},
    {"TPOT_tokps", "tok_s_decode", 0, NULL}, {"backend", "backend", 0, NULL}, {"device", "device", 0, NULL},
    {"runs", "runs", 0, NULL}, {"j_per_1k_tokens", "j_per_1k_tokens", 0, NULL},
    {"wh_per_1k_tokens", "wh_per_1k_tokens", 0, NULL}, {"tokens_per_j", "tokens_per_j", 0, NULL},
    {"total_energy_counter_j", "total_energy_counter_j", 0, NULL},
    {"total_energy_integral_j", "total_energy_integral_j", 0, NULL},
    {"total_energy_rel_diff", "total_energy_rel_diff", 0, NULL},
    {"total_energy_above_idle_j", "total_energy_above_idle_j", 0, NULL},
    {"seed_j_per_1k_tokens_avg_w_x_time_no_idle", "seed_j_per_1k_tokens_avg_w_x_time_no_idle", 0, NULL},
    {"commit", "commit", 0, NULL}, {"results_dir", "results_dir", 0, NULL}};

#define NCOL(a) (sizeof a / sizeof a[0])
/* Column lists (filled at first use from the tables). */
const char *dpb_unified_latency_columns[NCOL(k_lat) + 1];
const char *dpb_unified_memory_columns[NCOL(k_mem) + 1];
const char *dpb_unified_energy_columns[NCOL(k_en) + 1];

static void fill_cols(const char **dst, const colmap *m, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = m[i].out;
    dst[n] = NULL;
}

static void derive_memory(cJSON *rows)
{
    cJSON *r;
    cJSON_ArrayForEach(r, rows) {
        const char *src = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "seed_kv_cache_source"));
        bool dev = src && strncmp(src, "device", 6) == 0;
        double peak = num_or_nan(r, dev ? "device_proc_mem_peak_bytes" : "host_rss_peak_bytes");
        double tot = num_or_nan(r, "max_ctx_tokens"), gpu = num_or_nan(r, "_gpu_mem_total_bytes");
        double after = num_or_nan(r, dev ? "device_proc_mem_after_engine_bytes" : "host_rss_after_engine_bytes");
        set_derived(r, "_peak_bytes", peak, "unavailable: no peak memory reading");
        set_derived(r, "_after_generate_bytes", after, "unavailable: no reading");
        set_derived(r, "_seed_per_token_bytes", num_or_nan(r, "seed_kv_cache_bytes_peak_minus_baseline") / tot,
                    "unavailable: no peak - baseline");
        set_derived(r, "_memory_efficiency", tot / (peak / MIB), "unavailable: no peak memory reading");
        const char *nog = dev ? "unavailable: no GPU memory total" : "unavailable: measured on the host (CPU backend)";
        set_derived(r, "_util_after", dev ? 100 * after / gpu : NAN, nog);
        set_derived(r, "_util_peak", dev ? 100 * peak / gpu : NAN, nog);
    }
}

static void derive_energy(cJSON *rows)
{
    cJSON *r;
    cJSON_ArrayForEach(r, rows)
        set_derived(r, "_tokens_per_watt", num_or_nan(r, "tok_s_decode") / num_or_nan(r, "total_avg_w"),
                    "unavailable: no average power");
}

static dpb_status write_one(const char *dir, const char *name, const cJSON *rows, const colmap *m, size_t nm,
                            const char **cols)
{
    fill_cols(cols, m, nm);
    cJSON *mapped = map_rows(rows, m, nm);
    char *p;
    dpb_status st = dpb_path_join(dir, name, &p);
    if (!st) st = dpb_csv_write_objects(p, cols, mapped);
    free(p);
    cJSON_Delete(mapped);
    return st;
}

dpb_status dpb_unify_write(const dpb_study_rows *rows, const char *out_dir)
{
    dpb_status st = dpb_dir_create(out_dir);
    if (st) return st;
    derive_memory(rows->memory);
    derive_energy(rows->energy);
    if ((st = write_one(out_dir, "unified_latency_comparison.csv", rows->latency, k_lat, NCOL(k_lat),
                        dpb_unified_latency_columns)))
        return st;
    if ((st = write_one(out_dir, "unified_memory_comparison.csv", rows->memory, k_mem, NCOL(k_mem),
                        dpb_unified_memory_columns)))
        return st;
    return write_one(out_dir, "unified_energy_comparison.csv", rows->energy, k_en, NCOL(k_en),
                     dpb_unified_energy_columns);
}
