#include "bench/memory.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/checked.h"
#include "core/timeutil.h"
#include "engine/engine.h"
#include "models/inspect.h"
#include "telemetry/host.h"
#include "telemetry/sampler.h"

const char *const dpb_memory_csv_columns[] = {
    "context", "gen_tokens", "max_ctx_tokens", "backend", "kv_dtype", "weight_bytes", "kv_bytes_allocated_exact",
    "kv_bytes_analytic", "kv_exact_equals_analytic", "kv_bytes_per_token_measured", "kv_bytes_per_token_analytic",
    "kv_bytes_per_token_full_layers_analytic", "kv_bytes_sliding_fixed_analytic", "workspace_bytes",
    "host_rss_baseline_bytes", "host_rss_after_engine_bytes", "host_rss_peak_bytes", "host_peak_rss_reset",
    "device_proc_mem_baseline_bytes", "device_proc_mem_after_engine_bytes", "device_proc_mem_peak_bytes",
    "device_mem_used_peak_bytes", "transient_bytes_measured", "seed_baseline_bytes",
    "seed_kv_cache_bytes_peak_minus_baseline",
    "seed_kv_cache_source", "prefill_ms", "decode_tok_s", NULL};

/* Resets VmHWM to the current RSS (Linux >= 4.0: "5" > /proc/self/clear_refs). */
static bool reset_peak_rss(void)
{
    int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    if (fd < 0) return false;
    bool ok = write(fd, "5", 1) == 1;
    close(fd);
    return ok;
}

static void add_u64(cJSON *o, const char *k, uint64_t v) { cJSON_AddNumberToObject(o, k, (double)v); }

/* Device memory of this process on o->gpu, or false with the reason in why. */
static bool proc_mem(const dpb_memory_opts *o, uint64_t *bytes, char *why, size_t cap)
{
    if (!o->nvml) {
        snprintf(why, cap, "unavailable: %s", o->nvml_reason ? o->nvml_reason : "NVML not opened");
        return false;
    }
    dpb_gpu_sample s;
    int err[DPB_GPU_METRIC_COUNT];
    if (dpb_nvml_read(o->nvml, o->gpu, 1u << DPB_GPU_PROC_MEM, &s, err) != DPB_OK) {
        snprintf(why, cap, "unavailable: %s", dpb_error_message());
        return false;
    }
    if (!(s.valid & (1u << DPB_GPU_PROC_MEM)) && err[DPB_GPU_PROC_MEM] == DPB_NVML_ERR_NO_PROCESS) {
        *bytes = 0; /* no CUDA context yet: this process holds no device memory (measured, not assumed) */
        return true;
    }
    if (!(s.valid & (1u << DPB_GPU_PROC_MEM))) {
        snprintf(why, cap, "unavailable: NVML process memory: %s",
                 dpb_nvml_error_string(o->nvml, err[DPB_GPU_PROC_MEM]));
        return false;
    }
    *bytes = s.proc_mem_bytes;
    return true;
}

static void add_maybe(cJSON *row, const char *k, bool ok, uint64_t v, const char *why)
{
    if (ok) add_u64(row, k, v);
    else cJSON_AddStringToObject(row, k, why);
}

dpb_status dpb_memory_measure(const dpb_checkpoint *ck, dpb_study_prompts *p, const dpb_memory_opts *o, cJSON **row)
{
    const dpb_model_config *cfg = dpb_checkpoint_config(ck);
    if (o->context < 1 || o->gen_tokens < 1)
        return dpb_error_set(DPB_E_ARG, "--contexts %lld / --gen-tokens %lld: must be at least 1", (long long)o->context,
                             (long long)o->gen_tokens);
    int64_t max_ctx;
    if (!dpb_add_i64(o->context, o->gen_tokens, &max_ctx))
        return dpb_error_set(DPB_E_RANGE, "--contexts %lld: too large", (long long)o->context);
    if (cfg->max_position_embeddings > 0 && max_ctx > cfg->max_position_embeddings)
        return dpb_error_set(DPB_E_ARG, "--contexts %lld + --gen-tokens %lld exceed the model's max_position_embeddings %lld",
                             (long long)o->context, (long long)o->gen_tokens, (long long)cfg->max_position_embeddings);
    const dpb_kv_dtype kvdt = dpb_engine_kv_resolve(o->kv, DPB_ENGINE_BF16);
    int elem = (int)dpb_kv_dtype_size(kvdt);
    dpb_kv_accounting kv;
    dpb_status st = dpb_model_kv_bytes(cfg, max_ctx, 1, elem, &kv);
    if (st) return st;
    size_t nids;
    if (!dpb_mul_size((size_t)o->context, sizeof(int32_t), &nids)) return dpb_error_set(DPB_E_RANGE, "--contexts: too large");
    int32_t *ids = malloc(nids);
    if (!ids) return dpb_error_set(DPB_E_NOMEM, "--contexts %lld: out of memory for the prompt", (long long)o->context);
    if ((st = dpb_study_prompt_make(p, o->context, (uint64_t)o->context, ids))) {
        free(ids);
        return st;
    }
    char dwhy[600] = "";
    uint64_t rss0 = 0, pk0 = 0, rss1 = 0, pk1 = 0, rss2 = 0, pk2 = 0, d0 = 0, d1 = 0, dpeak = 0, dused = 0;
    bool host_ok = dpb_host_memory(&rss0, &pk0) == DPB_OK;
    bool d0_ok = proc_mem(o, &d0, dwhy, sizeof dwhy);
    bool reset = reset_peak_rss();
    dpb_engine_opts eo = {0};
    eo.backend = o->backend;
    eo.threads = o->threads;
    eo.max_ctx = max_ctx;
    eo.max_seqs = 1;
    eo.kv = o->kv;
    dpb_engine *e = NULL;
    dpb_sampler *smp = NULL;
    dpb_gen_result res = {0};
    if ((st = dpb_engine_create(ck, &eo, &e))) goto out;
    host_ok = host_ok && dpb_host_memory(&rss1, &pk1) == DPB_OK;
    bool d1_ok = proc_mem(o, &d1, dwhy, sizeof dwhy);
    bool dpeak_ok = false, dused_ok = false;
    if (d1_ok) {
        unsigned g = o->gpu;
        dpb_sampler_opts so = {.hz = DPB_SAMPLER_MAX_HZ, .gpus = &g, .n_gpus = 1,
                               .metrics = (1u << DPB_GPU_PROC_MEM) | (1u << DPB_GPU_MEM_USED)};
        if (dpb_sampler_create(o->nvml, NULL, &so, &smp) != DPB_OK || dpb_sampler_start(smp) != DPB_OK) {
            dpb_sampler_free(smp);
            smp = NULL;
        }
    }
    dpb_gen_request rq = {0};
    rq.prompt = ids;
    rq.n_prompt = o->context;
    rq.max_new = o->gen_tokens;
    rq.sampling = dpb_sampling_greedy();
    rq.ignore_eos = true;
    if (smp) dpb_sampler_mark(smp, "generate_start", NULL);
    st = dpb_engine_generate(e, &rq, 1, &res, NULL, NULL);
    if (smp) {
        dpb_sampler_mark(smp, "generate_end", NULL);
        dpb_sampler_stop(smp);
        dpb_gpu_sample *ss = NULL;
        size_t ns = 0;
        if (dpb_sampler_gpu_samples(smp, o->gpu, &ss, &ns) == DPB_OK) {
            for (size_t i = 0; i < ns; i++) {
                if ((ss[i].valid & (1u << DPB_GPU_PROC_MEM)) && ss[i].proc_mem_bytes >= dpeak) {
                    dpeak = ss[i].proc_mem_bytes;
                    dpeak_ok = true;
                }
                if ((ss[i].valid & (1u << DPB_GPU_MEM_USED)) && ss[i].mem_used_bytes >= dused) {
                    dused = ss[i].mem_used_bytes;
                    dused_ok = true;
                }
            }
        }
        free(ss);
        if (!dpeak_ok) snprintf(dwhy, sizeof dwhy, "unavailable: no process-memory sample during generation");
    }
    if (st) goto out;
    host_ok = host_ok && dpb_host_memory(&rss2, &pk2) == DPB_OK;

    cJSON *r = cJSON_CreateObject();
    add_u64(r, "context", (uint64_t)o->context);
    add_u64(r, "gen_tokens", (uint64_t)o->gen_tokens);
    add_u64(r, "max_ctx_tokens", (uint64_t)max_ctx);
    cJSON_AddStringToObject(r, "backend", dpb_engine_backend(e)->ops->name);
    cJSON_AddStringToObject(r, "kv_dtype", dpb_kv_dtype_name(kvdt));
    add_u64(r, "weight_bytes", dpb_checkpoint_weight_bytes(ck));
    uint64_t kv_exact = dpb_engine_kv_bytes(e);
    add_u64(r, "kv_bytes_allocated_exact", kv_exact);
    add_u64(r, "kv_bytes_analytic", kv.bytes);
    cJSON_AddBoolToObject(r, "kv_exact_equals_analytic", kv_exact == kv.bytes);
    cJSON_AddNumberToObject(r, "kv_bytes_per_token_measured", (double)kv_exact / (double)max_ctx);
    cJSON_AddNumberToObject(r, "kv_bytes_per_token_analytic", (double)kv.bytes / (double)max_ctx);
    add_u64(r, "kv_bytes_per_token_full_layers_analytic", kv.bytes_per_token);
    add_u64(r, "kv_bytes_sliding_fixed_analytic", kv.bytes_fixed);
    add_u64(r, "workspace_bytes", dpb_engine_workspace_bytes(e));
    const char *hwhy = "unavailable: /proc/self/status unreadable";
    add_maybe(r, "host_rss_baseline_bytes", host_ok, rss0, hwhy);
    add_maybe(r, "host_rss_after_engine_bytes", host_ok, rss1, hwhy);
    add_maybe(r, "host_rss_peak_bytes", host_ok, pk2, hwhy);
    cJSON_AddBoolToObject(r, "host_peak_rss_reset", reset);
    add_maybe(r, "device_proc_mem_baseline_bytes", d0_ok, d0, dwhy);
    add_maybe(r, "device_proc_mem_after_engine_bytes", d1_ok, d1, dwhy);
    add_maybe(r, "device_proc_mem_peak_bytes", dpeak_ok, dpeak, dwhy);
    add_maybe(r, "device_mem_used_peak_bytes", dused_ok, dused, dwhy);
    /* The seed's column: peak during generation minus the memory with the
     * weights loaded and nothing else.  Our engine allocates its KV cache and
     * workspace when it is built (transformers grows them during generate), so
     * that baseline is the memory after the engine minus those two; the
     * difference then holds KV + workspace + transient activations + allocator
     * slack, as the seed's does.  On the device when NVML reads it, else the
     * host's RSS (peak reset before the engine when the kernel allows). */
    const char *bname = dpb_engine_backend(e)->ops->name;
    bool on_dev = dpeak_ok && d1_ok && strcmp(bname, "cpu") != 0 && strcmp(bname, "ref") != 0;
    uint64_t kv_ws = kv_exact + dpb_engine_workspace_bytes(e);
    uint64_t after = on_dev ? d1 : rss1, peak = on_dev ? dpeak : pk2;
    uint64_t base = after > kv_ws ? after - kv_ws : 0;
    bool seed_ok = on_dev || (host_ok && reset);
    if (seed_ok && peak >= base) {
        add_u64(r, "seed_baseline_bytes", base);
        add_u64(r, "seed_kv_cache_bytes_peak_minus_baseline", peak - base);
        if (peak - base >= kv_ws) add_u64(r, "transient_bytes_measured", peak - base - kv_ws);
        else cJSON_AddStringToObject(r, "transient_bytes_measured",
                                     "unavailable: peak - baseline below KV + workspace (pages not touched)");
    } else {
        const char *w = host_ok && !reset ? "unavailable: the peak RSS could not be reset (/proc/self/clear_refs)"
                                          : "unavailable: no memory readings";
        cJSON_AddStringToObject(r, "seed_baseline_bytes", w);
        cJSON_AddStringToObject(r, "seed_kv_cache_bytes_peak_minus_baseline", w);
        cJSON_AddStringToObject(r, "transient_bytes_measured", w);
    }
    cJSON_AddStringToObject(r, "seed_kv_cache_source",
                            on_dev ? "device process memory (NVML): KV + workspace + activations, not the KV cache"
                                   : "host RSS: KV + workspace + activations, not the KV cache");
    cJSON_AddNumberToObject(r, "prefill_ms", (double)(res.t_prefill_done_ns - res.t_start_ns) * 1e-6);
    if (res.n >= 2)
        cJSON_AddNumberToObject(r, "decode_tok_s",
                                (double)(res.n - 1) / ((double)(res.t_ns[res.n - 1] - res.t_ns[0]) * 1e-9));
    else cJSON_AddStringToObject(r, "decode_tok_s", "unavailable: fewer than 2 tokens");
    *row = r;
out:
    dpb_gen_result_free(&res);
    dpb_sampler_free(smp);
    dpb_engine_destroy(e);
    free(ids);
    return st;
}
