/* Active Parameter Efficiency, as the reference study defines it: a metric
 * divided by the model's active parameters in billions.  The active count
 * comes from the checkpoint (dpb_inspect_tensors: MoE models count the top-k
 * experts, attention, router, norms and lm_head, not the embedding table). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench/latency.h"
#include "bench/unify.h"
#include "core/file.h"
#include "format/checkpoint.h"
#include "models/inspect.h"

const char *const dpb_ape_columns[] = {
    "model_short", "model", "model_type", "context_length", "gen_tokens", "params_total_b", "params_active_b",
    "decode_tok_s", "decode_tok_s_per_active_b", "seed_TPOT_tokps_prefill_included",
    "seed_TPOT_tokps_per_active_b", "ttft_ms", "inv_ttft_per_s_per_active_b", "tokens_per_watt",
    "tokens_per_watt_per_active_b", "peak_memory_gb", "decode_tok_s_per_gb_peak", "accuracy_per_active_b",
    "device", NULL};

static dpb_status active_params(const char *spec, uint64_t *total, uint64_t *active)
{
    dpb_checkpoint_opts co = {0};
    co.no_weights = true;
    dpb_checkpoint *ck;
    dpb_status st = dpb_checkpoint_open(spec, &co, &ck);
    if (st) return dpb_error_prefix(st, "ape: model %s", spec);
    size_t n = dpb_checkpoint_tensor_count(ck);
    dpb_tensor_desc *ds = calloc(n ? n : 1, sizeof *ds);
    if (!ds) {
        dpb_checkpoint_close(ck);
        return dpb_error_set(DPB_E_NOMEM, "ape: out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        const dpb_tensor *t = dpb_checkpoint_tensor_at(ck, i);
        ds[i] = (dpb_tensor_desc){t->name, t->dtype, t->ndim, t->shape};
    }
    dpb_inspect_opts io = {2048, 1, 80.0, 2};
    dpb_inspect_result r;
    st = dpb_inspect_tensors(dpb_checkpoint_config(ck), ds, n, &io, &r);
    free(ds);
    dpb_checkpoint_close(ck);
    if (st) return st;
    *total = r.params_total;
    *active = r.params_active;
    return DPB_OK;
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* The row of `rows` for this model at this context (key ctx_key), batch 1. */
static const cJSON *find(const cJSON *rows, const char *model, const char *ctx_key, double ctx)
{
    const cJSON *r;
    cJSON_ArrayForEach(r, rows) {
        if (strcmp(str(r, "model"), model) != 0 || num(r, ctx_key) != ctx) continue;
        double b = num(r, "batch");
        if (!isnan(b) && b != 1) continue;
        return r;
    }
    return NULL;
}

static void put(cJSON *o, const char *k, double v, const char *why)
{
    if (isfinite(v)) cJSON_AddNumberToObject(o, k, v);
    else cJSON_AddStringToObject(o, k, why);
}

dpb_status dpb_ape_compute(const dpb_study_rows *rows, cJSON **out)
{
    cJSON *res = cJSON_CreateArray();
    const cJSON *lat;
    /* One APE row per latency cell at batch 1; memory and energy joined on the context. */
    cJSON_ArrayForEach(lat, rows->latency) {
        double b = num(lat, "batch");
        if (!isnan(b) && b != 1) continue;
        const char *model = str(lat, "model");
        uint64_t tot = 0, act = 0;
        dpb_status st = active_params(model, &tot, &act);
        if (st) {
            cJSON_Delete(res);
            return st;
        }
        double ab = (double)act / 1e9, ctx = num(lat, "prompt_tokens");
        const cJSON *mem = find(rows->memory, model, "context", ctx);
        const cJSON *en = find(rows->energy, model, "context", ctx);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "model_short", str(lat, "model_short"));
        cJSON_AddStringToObject(o, "model", model);
        cJSON_AddStringToObject(o, "model_type", str(lat, "model_type"));
        cJSON_AddNumberToObject(o, "context_length", ctx);
        cJSON_AddNumberToObject(o, "gen_tokens", num(lat, "gen_tokens"));
        cJSON_AddNumberToObject(o, "params_total_b", (double)tot / 1e9);
        cJSON_AddNumberToObject(o, "params_active_b", ab);
        double dec = num(lat, "decode_tok_s_per_seq"), seed = num(lat, "seed_TPOT_tokps_prefill_included");
        double ttft = num(lat, "ttft_ms_mean");
        put(o, "decode_tok_s", dec, "unavailable: no latency figure");
        put(o, "decode_tok_s_per_active_b", dec / ab, "unavailable: no latency figure");
        put(o, "seed_TPOT_tokps_prefill_included", seed, "unavailable: no latency figure");
        put(o, "seed_TPOT_tokps_per_active_b", seed / ab, "unavailable: no latency figure");
        put(o, "ttft_ms", ttft, "unavailable: no latency figure");
        put(o, "inv_ttft_per_s_per_active_b", 1000.0 / ttft / ab, "unavailable: no latency figure");
        double tpw = en ? num(en, "tok_s_decode") / num(en, "total_avg_w") : NAN;
        const char *enwhy = en ? "unavailable: no GPU power (NVML)" : "unavailable: no energy run at this context";
        put(o, "tokens_per_watt", tpw, enwhy);
        put(o, "tokens_per_watt_per_active_b", tpw / ab, enwhy);
        double peak = NAN;
        if (mem) {
            const char *srcn = str(mem, "seed_kv_cache_source");
            peak = num(mem, strncmp(srcn, "device", 6) == 0 ? "device_proc_mem_peak_bytes" : "host_rss_peak_bytes");
        }
        const char *mwhy = mem ? "unavailable: no peak memory reading" : "unavailable: no memory run at this context";
        put(o, "peak_memory_gb", peak / 1e9, mwhy);
        put(o, "decode_tok_s_per_gb_peak", dec / (peak / 1e9), mwhy);
        cJSON_AddStringToObject(o, "accuracy_per_active_b", "unavailable: no accuracy results in these folders");
        cJSON_AddStringToObject(o, "device", str(lat, "device"));
        cJSON_AddItemToArray(res, o);
    }
    *out = res;
    return DPB_OK;
}

dpb_status dpb_ape_write(const cJSON *ape, const char *out_dir)
{
    dpb_status st = dpb_dir_create(out_dir);
    if (st) return st;
    char *p;
    if ((st = dpb_path_join(out_dir, "ape_analysis.csv", &p))) return st;
    st = dpb_csv_write_objects(p, dpb_ape_columns, ape);
    free(p);
    if (st) return st;
    if ((st = dpb_path_join(out_dir, "ape_analysis.json", &p))) return st;
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "schema", "deploybench.ape/1");
    cJSON_AddStringToObject(doc, "definition", "metric / active parameters in billions (active from the checkpoint: "
                                               "top-k experts, attention, router, norms, lm_head; no embedding)");
    cJSON_AddItemToObject(doc, "rows", cJSON_Duplicate(ape, 1));
    st = dpb_json_write_file(p, doc);
    cJSON_Delete(doc);
    free(p);
    return st;
}
