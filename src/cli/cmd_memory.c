/* deploybench memory: weights, KV cache (exact against inspect's formula),
 * workspace and process memory per context; the seed's peak-minus-baseline
 * column beside them, labelled for what it is. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "bench/latency.h"
#include "bench/manifest.h"
#include "bench/memory.h"
#include "bench/results.h"
#include "cli/cli.h"
#include "core/file.h"
#include "core/signal.h"
#include "telemetry/sampler.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: deploybench memory --model M --out DIR [--contexts 2048,8192,16384,32768] [--gen-tokens 64]\n"
            "                          [--backend cpu|cuda] [--kv bf16|f32|fp8] [--gpu N] [--threads N] [--tokenizer P]\n"
            "                          [--seed S] [--resume]\n\n"
            "Per context: one sequence of that many prompt tokens plus --gen-tokens generated, on an engine\n"
            "sized for exactly that (max context = context + gen tokens). Reports the weight bytes, the KV\n"
            "cache bytes the engine allocated against inspect's analytic formula (they must be equal), KV\n"
            "bytes per token (measured and analytic), the engine's workspace, host RSS (baseline after the\n"
            "weights, after the engine, peak during generation) and, when NVML is available, this process's\n"
            "device memory (baseline, after the engine, peak from 100 Hz polling). The reference study's\n"
            "\"KV cache\" column (peak minus baseline) is kept as seed_kv_cache_bytes_peak_minus_baseline: it\n"
            "holds KV + workspace + activations, not the KV cache.\n\n"
            "  --model M        a model folder or synth:PRESET[:SEED][:INIT] (required)\n"
            "  --out DIR        results folder (required; new or empty unless --resume)\n"
            "  --contexts L     prompt lengths (default 2048,8192,16384,32768)\n"
            "  --gen-tokens N   generated tokens per context (default 64)\n"
            "  --backend B      cpu (default), ref or cuda\n"
            "  --kv D           KV cache dtype: bf16 (default), f32 or fp8 (E4M3, scale 1)\n"
            "  --gpu N          NVML index of the GPU the backend uses (default 0)\n"
            "  --threads N      CPU threads (default: all cores)\n"
            "  --tokenizer P    tokenizer for templated prompts (default: the model's; else random ids)\n"
            "  --seed S         prompt seed (default 1)\n"
            "  --resume         reuse DIR: contexts already in memory.jsonl are skipped\n\n"
            "Writes DIR/manifest.json, memory.jsonl (a line per context as it finishes), memory.csv,\n"
            "memory.json. Definitions: docs/STUDY.md.\n");
}

static bool have_context(const cJSON *all, int64_t c, const char *kvname)
{
    const cJSON *o;
    cJSON_ArrayForEach(o, all) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "context");
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "kv_dtype");
        if (cJSON_IsNumber(v) && (int64_t)v->valuedouble == c && cJSON_IsString(d) &&
            strcmp(d->valuestring, kvname) == 0)
            return true;
    }
    return false;
}

static double gib(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble / 1073741824.0 : -1;
}

static void fmt_gib(char *b, size_t cap, double v)
{
    if (v < 0) snprintf(b, cap, "n/a");
    else snprintf(b, cap, "%.4f", v);
}

int dpb_cmd_memory(int argc, char **argv)
{
    enum { O_MODEL = 1, O_OUT, O_CTX, O_GT, O_BACKEND, O_KV, O_GPU, O_THREADS, O_TOK, O_SEED, O_RESUME };
    static const struct option opts[] = {
        {"model", required_argument, 0, O_MODEL},     {"out", required_argument, 0, O_OUT},
        {"contexts", required_argument, 0, O_CTX},    {"gen-tokens", required_argument, 0, O_GT},
        {"backend", required_argument, 0, O_BACKEND}, {"kv", required_argument, 0, O_KV},
        {"gpu", required_argument, 0, O_GPU},         {"threads", required_argument, 0, O_THREADS},
        {"tokenizer", required_argument, 0, O_TOK},   {"seed", required_argument, 0, O_SEED},
        {"resume", no_argument, 0, O_RESUME},         {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *model = NULL, *out = NULL;
    dpb_checkpoint_opts co = {0};
    dpb_memory_opts mo = {0};
    mo.backend = "cpu";
    int64_t ctxs[32] = {2048, 8192, 16384, 32768};
    size_t nctx = 4;
    long long gt = 64, gpu = 0, threads = 0, seed = 1;
    bool resume = false;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        dpb_status st = DPB_OK;
        switch (c) {
        case O_MODEL: model = optarg; break;
        case O_OUT: out = optarg; break;
        case O_CTX: st = dpb_parse_i64_list("--contexts", optarg, 1, 1 << 24, ctxs, 32, &nctx); break;
        case O_GT: st = dpb_cli_parse_i64("--gen-tokens", optarg, 1, 1 << 20, &gt); break;
        case O_BACKEND:
            if (dpb_cli_check_backend("memory", optarg)) return 2;
            mo.backend = optarg;
            break;
        case O_KV:
            if (dpb_engine_kv_parse(optarg, &mo.kv) || mo.kv == DPB_ENGINE_KV_AUTO)
                return dpb_cli_usage_error("memory", "--kv takes bf16, f32 or fp8, not '%s'", optarg);
            break;
        case O_GPU: st = dpb_cli_parse_i64("--gpu", optarg, 0, DPB_MAX_GPUS - 1, &gpu); break;
        case O_THREADS: st = dpb_cli_parse_i64("--threads", optarg, 1, 4096, &threads); break;
        case O_TOK: co.tokenizer = optarg; break;
        case O_SEED: st = dpb_cli_parse_i64("--seed", optarg, 0, INT64_MAX, &seed); break;
        case O_RESUME: resume = true; break;
        case 'h': usage(stdout); return 0;
        case ':': return dpb_cli_usage_error("memory", "%s needs a value", argv[optind - 1]);
        default: return dpb_cli_usage_error("memory", "unknown option '%s'", argv[optind - 1]);
        }
        if (st) return dpb_cli_usage_error("memory", "%s", dpb_error_message());
    }
    if (optind < argc) return dpb_cli_usage_error("memory", "unexpected argument '%s'", argv[optind]);
    if (!model) return dpb_cli_usage_error("memory", "--model is required");
    if (!out) return dpb_cli_usage_error("memory", "--out DIR is required");
    mo.threads = (int)threads;
    mo.gen_tokens = gt;
    mo.gpu = (unsigned)gpu;

    dpb_telemetry t;
    dpb_telemetry_open(&t);
    mo.nvml = t.nvml;
    mo.nvml_reason = t.nvml_reason;
    dpb_manifest *man = NULL;
    dpb_checkpoint *ck = NULL;
    dpb_study_prompts pr = {0};
    dpb_jsonl *log = NULL;
    cJSON *all = cJSON_CreateArray();
    char *log_path = NULL, *csv = NULL, *js = NULL;
    dpb_status st = dpb_manifest_begin(out, argc, argv, resume, t.nvml, &man);
    if (st) goto done;
    if ((st = dpb_path_join(out, "memory.jsonl", &log_path)) || (st = dpb_path_join(out, "memory.csv", &csv)) ||
        (st = dpb_path_join(out, "memory.json", &js)))
        goto done;
    if ((st = dpb_jsonl_read(log_path, dpb_jsonl_collect, all)) || (st = dpb_jsonl_open(log_path, &log, NULL))) goto done;
    if ((st = dpb_checkpoint_open(model, &co, &ck)) || (st = dpb_manifest_set_model(man, model, ck))) goto done;
    if ((st = dpb_study_prompts_init(ck, (uint64_t)seed, &pr))) goto done;
    {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "backend", mo.backend);
        cJSON *a = cJSON_AddArrayToObject(p, "contexts");
        for (size_t i = 0; i < nctx; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber((double)ctxs[i]));
        cJSON_AddNumberToObject(p, "gen_tokens", (double)gt);
        cJSON_AddStringToObject(p, "kv_dtype", dpb_kv_dtype_name(dpb_engine_kv_resolve(mo.kv, DPB_ENGINE_BF16)));
        cJSON_AddStringToObject(p, "prompts", pr.kind);
        static const char *const same[] = {"backend", NULL}; /* rows are kept per context and KV dtype */
        if ((st = dpb_manifest_resume_check(man, p, same))) {
            cJSON_Delete(p); /* the manifest keeps the earlier params */
            goto done;
        }
        dpb_manifest_add(man, "params", p);
        dpb_manifest_write(man);
    }
    printf("%8s %12s %14s %14s %6s %12s %12s %12s %14s\n", "context", "weights_GiB", "kv_exact_GiB", "kv_analytic_GiB",
           "equal", "workspace_GiB", "host_peak_GiB", "dev_peak_GiB", "seed_peak-base");
    for (size_t i = 0; i < nctx && !st; i++) {
        if (dpb_interrupted()) {
            st = dpb_error_set(DPB_E_INTERRUPTED, "interrupted");
            break;
        }
        if (have_context(all, ctxs[i], dpb_kv_dtype_name(dpb_engine_kv_resolve(mo.kv, DPB_ENGINE_BF16)))) continue;
        mo.context = ctxs[i];
        cJSON *row = NULL;
        st = dpb_memory_measure(ck, &pr, &mo, &row);
        if (st) {
            dpb_error_prefix(st, "--contexts %lld", (long long)ctxs[i]);
            break;
        }
        st = dpb_jsonl_append(log, row);
        cJSON_AddItemToArray(all, row);
        char a[32], b[32], cc[32], d[32], e[32], f[32], g[32];
        fmt_gib(a, sizeof a, gib(row, "weight_bytes"));
        fmt_gib(b, sizeof b, gib(row, "kv_bytes_allocated_exact"));
        fmt_gib(cc, sizeof cc, gib(row, "kv_bytes_analytic"));
        fmt_gib(d, sizeof d, gib(row, "workspace_bytes"));
        fmt_gib(e, sizeof e, gib(row, "host_rss_peak_bytes"));
        fmt_gib(f, sizeof f, gib(row, "device_proc_mem_peak_bytes"));
        fmt_gib(g, sizeof g, gib(row, "seed_kv_cache_bytes_peak_minus_baseline"));
        printf("%8lld %12s %14s %14s %6s %12s %12s %12s %14s\n", (long long)ctxs[i], a, b, cc,
               cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(row, "kv_exact_equals_analytic")) ? "yes" : "NO", d, e, f,
               g);
        fflush(stdout);
    }
    if (st == DPB_OK || st == DPB_E_INTERRUPTED) {
        dpb_status s2 = dpb_csv_write_objects(csv, dpb_memory_csv_columns, all);
        if (!s2) {
            cJSON *doc = cJSON_CreateObject();
            cJSON_AddStringToObject(doc, "schema", "deploybench.memory/1");
            cJSON_AddItemToObject(doc, "rows", cJSON_Duplicate(all, 1));
            s2 = dpb_json_write_file(js, doc);
            cJSON_Delete(doc);
        }
        if (st == DPB_OK) st = s2;
    }
    if (st == DPB_OK) printf("memory: wrote %s/{memory.csv,memory.json,memory.jsonl,manifest.json}\n", out);
done:
    if (man) {
        dpb_manifest_end_with(man, st);
        dpb_manifest_free(man);
    }
    dpb_jsonl_close(log);
    dpb_study_prompts_free(&pr);
    dpb_checkpoint_close(ck);
    dpb_telemetry_close(&t);
    cJSON_Delete(all);
    free(log_path);
    free(csv);
    free(js);
    return st ? dpb_cli_fail("memory", st) : 0;
}
