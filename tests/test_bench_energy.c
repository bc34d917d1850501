/* deploybench energy's per-run figures: against the fake NVML
 * (build/tests/libfake_nvml.so: P(t) = 100 + 50 (1 - cos(pi t)) W on GPU 0,
 * counter = its exact integral) the numbers hold together; with NVML absent
 * (DPB_NVML_LIBRARY=/nonexistent) every energy figure is "unavailable: ..."
 * and never 0, while tok/s is still measured. */
#include <libgen.h>
#include <stdint.h>
#include <stdlib.h>
#include "t.h"
#include "bench/energy.h"

static char g_fake[4096];

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static int setup(dpb_checkpoint **ck, dpb_engine **e, dpb_study_prompts *p)
{
    if (dpb_checkpoint_open("synth:gpt-oss-tiny", NULL, ck)) return 0;
    dpb_engine_opts eo = {0};
    eo.threads = 1;
    eo.max_ctx = 64;
    if (dpb_engine_create(*ck, &eo, e)) return 0;
    return dpb_study_prompts_init(*ck, 1, p) == DPB_OK;
}

static void test_fake_nvml_numbers(void)
{
    if (access(g_fake, R_OK) != 0) T_SKIP("%s is absent (make builds it)", g_fake);
    setenv("DPB_NVML_LIBRARY", g_fake, 1);
    setenv("FAKE_NVML_DEVICES", "1", 1);
    dpb_telemetry t;
    dpb_telemetry_open(&t);
    T_CHECKF(t.nvml != NULL, "%s", t.nvml_reason);
    if (!t.nvml) return;
    dpb_checkpoint *ck = NULL;
    dpb_engine *e = NULL;
    dpb_study_prompts p = {0};
    T_CHECK(setup(&ck, &e, &p));
    unsigned g = 0;
    dpb_sampler_opts so = {.hz = 100, .gpus = &g, .n_gpus = 1};
    dpb_sampler *s = NULL;
    T_CHECK(dpb_sampler_create(t.nvml, NULL, &so, &s) == DPB_OK);
    dpb_idle_baseline ib;
    T_CHECK(dpb_sampler_idle_baseline(s, 0.3, &ib) == DPB_OK);
    T_CHECK(ib.n_gpus == 1 && ib.gpu_energy[0].avg_w_ok);
    double idle_w = ib.gpu_energy[0].avg_w;
    T_CHECKF(idle_w >= 100 && idle_w <= 200, "idle %g W", idle_w);
    T_CHECK(dpb_sampler_start(s) == DPB_OK);
    dpb_energy_opts o = {.context = 40, .gen_tokens = 16, .sampler = s, .have_gpu = true, .gpu = 0,
                         .rapl_reason = "RAPL unavailable: test", .idle_ok = true, .idle_w = idle_w};
    for (int run = 0; run < 3; run++) {
        o.run = run;
        cJSON *r = NULL;
        T_CHECK(dpb_energy_run(e, &p, &o, &r) == DPB_OK);
        if (!r) continue;
        double gen = num(r, "generated_tokens"), J = num(r, "total_energy_counter_j");
        T_CHECK(gen == 16);
        T_CHECKF(num(r, "total_avg_w") >= 100 && num(r, "total_avg_w") <= 200, "%g W", num(r, "total_avg_w"));
        T_CHECKF(fabs(num(r, "total_energy_rel_diff")) < 0.05, "counter vs integral %g", num(r, "total_energy_rel_diff"));
        T_CHECK(fabs(num(r, "total_energy_integral_j") - J) <= 0.05 * J);
        T_CHECKF(fabs(num(r, "prefill_energy_counter_j") + num(r, "decode_energy_counter_j") - J) <= 1e-9 + 1e-9 * J,
                 "%g + %g vs %g", num(r, "prefill_energy_counter_j"), num(r, "decode_energy_counter_j"), J);
        T_CHECK(fabs(num(r, "prefill_s") + num(r, "decode_s") - num(r, "total_s")) < 1e-9);
        T_CHECK(fabs(J / num(r, "total_s") - num(r, "total_avg_w")) < 1e-6 * num(r, "total_avg_w"));
        T_CHECK(fabs(num(r, "j_per_1k_tokens") - J / gen * 1000) < 1e-9 * J * 1000);
        T_CHECK(fabs(num(r, "wh_per_1k_tokens") - J / 3600 / gen * 1000) < 1e-9 * J);
        T_CHECK(fabs(num(r, "tokens_per_j") - gen / J) < 1e-9 * gen / J);
        T_CHECK(fabs(num(r, "decode_j_per_token") - num(r, "decode_energy_counter_j") / (gen - 1)) < 1e-12 + 1e-9 * J);
        T_CHECK(fabs(num(r, "total_energy_above_idle_j") - (J - idle_w * num(r, "total_s"))) < 1e-9 + 1e-9 * J);
        T_CHECK(num(r, "tok_s_decode") > 0 && num(r, "tok_s_e2e") > 0);
        T_CHECK(num(r, "seed_j_per_1k_tokens_avg_w_x_time_no_idle") > 0);
        const cJSON *cpu = cJSON_GetObjectItemCaseSensitive(r, "cpu_package_energy_j");
        T_CHECK(cJSON_IsString(cpu) && strstr(cpu->valuestring, "unavailable: RAPL unavailable: test"));
        for (size_t i = 0; dpb_energy_csv_columns[i]; i++)
            T_CHECKF(cJSON_GetObjectItemCaseSensitive(r, dpb_energy_csv_columns[i]) != NULL, "%s missing",
                     dpb_energy_csv_columns[i]);
        cJSON *runs = cJSON_CreateArray();
        cJSON_AddItemToArray(runs, r);
        cJSON *sum = dpb_energy_summarize(runs, 40);
        T_CHECK(num(sum, "runs") == 1 && num(sum, "j_per_1k_tokens") == num(r, "j_per_1k_tokens"));
        T_CHECK(num(sum, "j_per_1k_tokens_std") == 0);
        cJSON_Delete(sum);
        cJSON_Delete(runs);
    }
    dpb_sampler_stop(s);
    dpb_sampler_free(s);
    dpb_study_prompts_free(&p);
    dpb_engine_destroy(e);
    dpb_checkpoint_close(ck);
    dpb_telemetry_close(&t);
}

static void test_nvml_absent(void)
{
    setenv("DPB_NVML_LIBRARY", "/nonexistent", 1);
    dpb_telemetry t;
    dpb_telemetry_open(&t);
    T_CHECK(t.nvml == NULL && strstr(t.nvml_reason, "NVML unavailable") != NULL);
    dpb_checkpoint *ck = NULL;
    dpb_engine *e = NULL;
    dpb_study_prompts p = {0};
    T_CHECK(setup(&ck, &e, &p));
    dpb_energy_opts o = {.context = 20, .gen_tokens = 4, .sampler = NULL, .have_gpu = false,
                         .gpu_reason = t.nvml_reason, .rapl_reason = t.rapl_reason};
    cJSON *r = NULL;
    T_CHECK(dpb_energy_run(e, &p, &o, &r) == DPB_OK);
    if (r) {
        static const char *energy_cols[] = {"prefill_energy_counter_j", "decode_energy_integral_j", "total_energy_counter_j",
                                            "total_energy_integral_j", "total_energy_rel_diff", "total_avg_w",
                                            "j_per_1k_tokens", "wh_per_1k_tokens", "tokens_per_j", "decode_j_per_token",
                                            "idle_avg_w", "seed_j_per_1k_tokens_avg_w_x_time_no_idle", "gpu"};
        for (size_t i = 0; i < sizeof energy_cols / sizeof energy_cols[0]; i++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, energy_cols[i]);
            T_CHECKF(cJSON_IsString(v) && strstr(v->valuestring, "unavailable: NVML unavailable"), "%s", energy_cols[i]);
        }
        T_CHECK(num(r, "tok_s_decode") > 0);
        cJSON *runs = cJSON_CreateArray();
        cJSON_AddItemToArray(runs, r);
        cJSON *sum = dpb_energy_summarize(runs, 20);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(sum, "j_per_1k_tokens");
        T_CHECK(cJSON_IsString(v) && strncmp(v->valuestring, "unavailable", 11) == 0);
        v = cJSON_GetObjectItemCaseSensitive(sum, "j_per_1k_tokens_std");
        T_CHECK(cJSON_IsString(v) && strncmp(v->valuestring, "unavailable", 11) == 0);
        T_CHECK(num(sum, "tok_s_decode") > 0);
        cJSON_Delete(sum);
        cJSON_Delete(runs);
    }
    dpb_study_prompts_free(&p);
    dpb_engine_destroy(e);
    dpb_checkpoint_close(ck);
    dpb_telemetry_close(&t);
}

int main(int argc, char **argv)
{
    (void)argc;
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) snprintf(exe, sizeof exe, "%s", argv[0]);
    else exe[n] = 0;
    snprintf(g_fake, sizeof g_fake, "%s/libfake_nvml.so", dirname(exe));
    T_RUN(test_fake_nvml_numbers);
    T_RUN(test_nvml_absent);
    return t_done();
}
