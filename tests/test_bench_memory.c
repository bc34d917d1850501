/* deploybench memory's figures: the KV bytes the engine allocates equal
 * inspect's analytic formula exactly (full and sliding-window layers, bf16 and
 * f32 and fp8, batch 1 and 3, contexts below, at and above the window), and a
 * measured row has its fields, with device memory "unavailable" (never 0)
 * when NVML is absent. */
#include <libgen.h>
#include <stdint.h>
#include <stdlib.h>
#include "t.h"
#include "bench/memory.h"
#include "engine/engine.h"
#include "models/inspect.h"

static void test_kv_exact_equals_analytic(void)
{
    static const char *models[] = {"synth:gpt-oss-tiny", "synth:qwen3-tiny", "synth:llama-tiny"};
    static const int64_t ctxs[] = {1, 8, 9, 300};
    int compared = 0;
    for (size_t m = 0; m < 3; m++) {
        dpb_checkpoint *ck;
        if (dpb_checkpoint_open(models[m], NULL, &ck)) {
            T_CHECKF(0, "%s", dpb_error_message());
            continue;
        }
        const dpb_model_config *cfg = dpb_checkpoint_config(ck);
        for (size_t i = 0; i < sizeof ctxs / sizeof ctxs[0]; i++)
            for (int batch = 1; batch <= 3; batch += 2)
                for (int kvi = 0; kvi < 3; kvi++) {
                    static const dpb_engine_kv kvs[] = {DPB_ENGINE_KV_BF16, DPB_ENGINE_KV_F32, DPB_ENGINE_KV_FP8};
                    static const int elem[] = {2, 4, 1};
                    dpb_engine_opts eo = {0};
                    eo.threads = 1;
                    eo.max_ctx = ctxs[i];
                    eo.max_seqs = batch;
                    eo.kv = kvs[kvi];
                    dpb_engine *e;
                    if (dpb_engine_create(ck, &eo, &e)) {
                        T_CHECKF(0, "%s ctx %lld: %s", models[m], (long long)ctxs[i], dpb_error_message());
                        continue;
                    }
                    dpb_kv_accounting kv;
                    T_CHECK(dpb_model_kv_bytes(cfg, ctxs[i], batch, elem[kvi], &kv) == DPB_OK);
                    T_CHECKF(dpb_engine_kv_bytes(e) == kv.bytes, "%s ctx %lld batch %d kv elem %d: engine %llu, analytic %llu",
                             models[m], (long long)ctxs[i], batch, elem[kvi], (unsigned long long)dpb_engine_kv_bytes(e),
                             (unsigned long long)kv.bytes);
                    T_CHECK(dpb_engine_kv_bytes(e) > 0);
                    compared++;
                    dpb_engine_destroy(e);
                }
        dpb_checkpoint_close(ck);
    }
    T_CHECK(compared == 3 * 4 * 2 * 3);
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void test_measure_row(void)
{
    dpb_checkpoint *ck;
    if (dpb_checkpoint_open("synth:gpt-oss-tiny", NULL, &ck)) {
        T_CHECKF(0, "%s", dpb_error_message());
        return;
    }
    dpb_study_prompts p;
    T_CHECK(dpb_study_prompts_init(ck, 1, &p) == DPB_OK);
    dpb_memory_opts o = {.backend = "cpu", .threads = 1, .context = 100, .gen_tokens = 4,
                         .nvml = NULL, .nvml_reason = "NVML unavailable: test"};
    cJSON *row = NULL;
    T_CHECK(dpb_memory_measure(ck, &p, &o, &row) == DPB_OK);
    if (row) {
        T_CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(row, "kv_exact_equals_analytic")));
        T_CHECK(num(row, "kv_bytes_allocated_exact") == num(row, "kv_bytes_analytic"));
        T_CHECK(num(row, "kv_bytes_per_token_measured") == num(row, "kv_bytes_per_token_analytic"));
        T_CHECK(num(row, "max_ctx_tokens") == 104);
        T_CHECK(num(row, "weight_bytes") == (double)dpb_checkpoint_weight_bytes(ck));
        T_CHECK(num(row, "workspace_bytes") > 0);
        /* gpt-oss-tiny: 2 full layers of 2 KV heads x 32 dims, K and V, bf16: 512 bytes per token */
        T_CHECKF(num(row, "kv_bytes_per_token_full_layers_analytic") == 512, "%g",
                 num(row, "kv_bytes_per_token_full_layers_analytic"));
        T_CHECK(num(row, "host_rss_peak_bytes") >= num(row, "host_rss_baseline_bytes"));
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(row, "device_proc_mem_peak_bytes");
        T_CHECK(cJSON_IsString(d) && strstr(d->valuestring, "unavailable: NVML unavailable: test"));
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(row, "seed_kv_cache_source");
        T_CHECK(cJSON_IsString(s) && strstr(s->valuestring, "not the KV cache"));
        for (size_t i = 0; dpb_memory_csv_columns[i]; i++)
            T_CHECKF(cJSON_GetObjectItemCaseSensitive(row, dpb_memory_csv_columns[i]) != NULL, "%s missing",
                     dpb_memory_csv_columns[i]);
    }
    cJSON_Delete(row);
    o.context = 100000000; /* beyond max_position_embeddings */
    row = NULL;
    T_CHECK(dpb_memory_measure(ck, &p, &o, &row) == DPB_E_ARG && row == NULL);
    T_CHECK(strstr(dpb_error_message(), "max_position_embeddings") != NULL);
    dpb_study_prompts_free(&p);
    dpb_checkpoint_close(ck);
}

/* Device memory through the fake NVML (this process listed with 256 MiB). */
static char g_fake[4096];
static void test_device_memory_fake_nvml(void)
{
    if (access(g_fake, R_OK) != 0) T_SKIP("%s is absent (make builds it)", g_fake);
    setenv("DPB_NVML_LIBRARY", g_fake, 1);
    setenv("FAKE_NVML_DEVICES", "1", 1);
    dpb_nvml *nv = NULL;
    T_CHECKF(dpb_nvml_open(&nv) == DPB_OK, "%s", dpb_error_message());
    if (!nv) return;
    dpb_checkpoint *ck;
    T_CHECK(dpb_checkpoint_open("synth:llama-tiny", NULL, &ck) == DPB_OK);
    dpb_study_prompts p;
    T_CHECK(dpb_study_prompts_init(ck, 1, &p) == DPB_OK);
    dpb_memory_opts o = {.backend = "cpu", .threads = 1, .context = 32, .gen_tokens = 4, .nvml = nv, .gpu = 0};
    cJSON *row = NULL;
    T_CHECK(dpb_memory_measure(ck, &p, &o, &row) == DPB_OK);
    if (row) {
        T_CHECK(num(row, "device_proc_mem_baseline_bytes") == 256.0 * 1048576);
        T_CHECK(num(row, "device_proc_mem_after_engine_bytes") == 256.0 * 1048576);
        T_CHECKF(num(row, "device_proc_mem_peak_bytes") == 256.0 * 1048576, "%g", num(row, "device_proc_mem_peak_bytes"));
        T_CHECK(num(row, "device_mem_used_peak_bytes") == 10.0 * 1073741824);
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(row, "seed_kv_cache_source");
        T_CHECK(cJSON_IsString(s) && strncmp(s->valuestring, "host RSS", 8) == 0); /* cpu backend: the host's figure */
    }
    cJSON_Delete(row);
    dpb_study_prompts_free(&p);
    dpb_checkpoint_close(ck);
    dpb_nvml_close(nv);
}

int main(void)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = 0;
    snprintf(g_fake, sizeof g_fake, "%s/libfake_nvml.so", dirname(exe));
    T_RUN(test_kv_exact_equals_analytic);
    T_RUN(test_measure_row);
    T_RUN(test_device_memory_fake_nvml);
    return t_done();
}
