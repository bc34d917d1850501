/* deploybench ablate: the study's ablations and what our engine can vary. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench/ablate.h"
#include "bench/manifest.h"
#include "bench/results.h"
#include "cli/cli.h"
#include "core/file.h"
#include "core/signal.h"
#include "telemetry/sampler.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: deploybench ablate --model M --out DIR [--tests all|" DPB_ABLATE_TESTS "]\n"
            "                          [--backend cpu|cuda] [--prompt-tokens 512] [--gen-tokens 64]\n"
            "                          [--num-requests 5] [--warmup 1] [--threads N] [--tokenizer P] [--seed S]\n"
            "                          [--resume]\n\n"
            "Ablations: one latency cell (--prompt-tokens, --gen-tokens, batch 1, --num-requests rounds after\n"
            "--warmup) per value of one factor, everything else fixed, on a fresh engine per value.\n"
            "  sampling  greedy; temperature 0.7 + top-p 0.9; temperature 1.0; + top-k 50; + min-p 0.05\n"
            "  context   prompt tokens 128, 512, 1024, 2048 (within the model's positions)\n"
            "  batch     1, 2, 4, 8 sequences per round\n"
            "  experts   active experts per token 1, 2, 4, 8 and the config's (MoE models)\n"
            "  experts_format  MXFP4 experts as published, or bf16 (synth: MoE models, made both ways)\n"
            "  kv        KV cache bf16, fp8 (E4M3, scale 1: half the bytes) or f32\n"
            "  window    sliding-window layers as configured, or full attention (models with them)\n"
            "  precision activations and KV in bf16, or the engine's f32 reference mode\n"
            "  graphs    decode steps replayed from CUDA graphs, or launched op by op (cuda backend)\n"
            "  effort    harmony reasoning effort low / medium / high in the prompts; each request ends at\n"
            "            the model's EOS (--gen-tokens is then a cap): output length and latency\n\n"
            "Writes DIR/ablation_TEST.csv per test (columns test, factor, value, then the latency\n"
            "columns of docs/STUDY.md, kv_bytes_allocated, and for the greedy tests kv, precision,\n"
            "graphs, experts_format and window leading_tokens_equal_to_first_value of tokens_compared:\n"
            "how long the first request's output matches the test's first value's), ablation.jsonl (each row appended and flushed as its value\n"
            "finishes), ablation.json and manifest.json.\n"
            "  --resume            reuse DIR: values already in ablation.jsonl are not run again (their\n"
            "                      rows go into the CSVs as they are)\n");
}

static dpb_status append_row(const cJSON *row, void *ctx) { return dpb_jsonl_append((dpb_jsonl *)ctx, row); }

int dpb_cmd_ablate(int argc, char **argv)
{
    enum { O_MODEL = 1, O_OUT, O_TESTS, O_BACKEND, O_PT, O_GT, O_NREQ, O_WARM, O_THREADS, O_TOK, O_SEED, O_RESUME };
    static const struct option opts[] = {
        {"model", required_argument, 0, O_MODEL},       {"out", required_argument, 0, O_OUT},
        {"tests", required_argument, 0, O_TESTS},       {"backend", required_argument, 0, O_BACKEND},
        {"prompt-tokens", required_argument, 0, O_PT},  {"gen-tokens", required_argument, 0, O_GT},
        {"num-requests", required_argument, 0, O_NREQ}, {"warmup", required_argument, 0, O_WARM},
        {"threads", required_argument, 0, O_THREADS},   {"tokenizer", required_argument, 0, O_TOK},
        {"seed", required_argument, 0, O_SEED},         {"resume", no_argument, 0, O_RESUME},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *model = NULL, *out = NULL, *tests = "all";
    dpb_checkpoint_opts co = {0};
    dpb_ablate_opts ao = {.backend = "cpu", .prompt_tokens = 512, .gen_tokens = 64, .rounds = 5, .warmup = 1};
    long long v, seed = 1;
    bool resume = false;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        dpb_status st = DPB_OK;
        switch (c) {
        case O_MODEL: model = optarg; break;
        case O_OUT: out = optarg; break;
        case O_TESTS: tests = optarg; break;
        case O_BACKEND:
            if (dpb_cli_check_backend("ablate", optarg)) return 2;
            ao.backend = optarg;
            break;
        case O_PT: st = dpb_cli_parse_i64("--prompt-tokens", optarg, 1, 1 << 20, &v); ao.prompt_tokens = v; break;
        case O_GT: st = dpb_cli_parse_i64("--gen-tokens", optarg, 2, 1 << 20, &v); ao.gen_tokens = v; break;
        case O_NREQ: st = dpb_cli_parse_i64("--num-requests", optarg, 1, 100000, &v); ao.rounds = (int)v; break;
        case O_WARM: st = dpb_cli_parse_i64("--warmup", optarg, 0, 1000, &v); ao.warmup = (int)v; break;
        case O_THREADS: st = dpb_cli_parse_i64("--threads", optarg, 1, 4096, &v); ao.threads = (int)v; break;
        case O_TOK: co.tokenizer = optarg; break;
        case O_SEED: st = dpb_cli_parse_i64("--seed", optarg, 0, INT64_MAX, &seed); break;
        case O_RESUME: resume = true; break;
        case 'h': usage(stdout); return 0;
        case ':': return dpb_cli_usage_error("ablate", "%s needs a value", argv[optind - 1]);
        default: return dpb_cli_usage_error("ablate", "unknown option '%s'", argv[optind - 1]);
        }
        if (st) return dpb_cli_usage_error("ablate", "%s", dpb_error_message());
    }
    if (optind < argc) return dpb_cli_usage_error("ablate", "unexpected argument '%s'", argv[optind]);
    if (!model) return dpb_cli_usage_error("ablate", "--model is required");
    if (!out) return dpb_cli_usage_error("ablate", "--out DIR is required");
    char list[256];
    snprintf(list, sizeof list, "%s", strcmp(tests, "all") == 0 ? DPB_ABLATE_TESTS : tests);
    /* Check the names before any work. */
    {
        char tmp[256];
        snprintf(tmp, sizeof tmp, "%s", list);
        for (char *sv, *t = strtok_r(tmp, ",", &sv); t; t = strtok_r(NULL, ",", &sv)) {
            char pat[300];
            snprintf(pat, sizeof pat, ",%s,", t);
            if (!strstr("," DPB_ABLATE_TESTS ",", pat))
                return dpb_cli_usage_error("ablate", "--tests: unknown test '%s' (known: all, %s)", t, DPB_ABLATE_TESTS);
        }
    }
    dpb_telemetry t;
    dpb_telemetry_open(&t);
    dpb_manifest *man = NULL;
    dpb_checkpoint *ck = NULL;
    dpb_study_prompts pr = {0};
    dpb_jsonl *log = NULL;
    cJSON *all = cJSON_CreateArray(), *earlier = cJSON_CreateArray();
    char *path = NULL;
    dpb_status st = dpb_manifest_begin(out, argc, argv, resume, t.nvml, &man);
    if (st) goto done;
    if ((st = dpb_path_join(out, "ablation.jsonl", &path)) || (st = dpb_jsonl_read(path, dpb_jsonl_collect, earlier)) ||
        (st = dpb_jsonl_open(path, &log, NULL)))
        goto done;
    free(path);
    path = NULL;
    if ((st = dpb_checkpoint_open(model, &co, &ck)) || (st = dpb_manifest_set_model(man, model, ck))) goto done;
    ao.model = model;
    ao.ck_opts = &co;
    if ((st = dpb_study_prompts_init(ck, (uint64_t)seed, &pr))) goto done;
    for (char *sv, *tn = strtok_r(list, ",", &sv); tn && !st; tn = strtok_r(NULL, ",", &sv)) {
        if (dpb_interrupted()) {
            st = dpb_error_set(DPB_E_INTERRUPTED, "interrupted");
            break;
        }
        fprintf(stderr, "ablate: %s ...\n", tn);
        cJSON *rows = cJSON_CreateArray();
        st = dpb_ablate_run(ck, &pr, &ao, tn, earlier, append_row, log, rows);
        const cJSON *r;
        cJSON_ArrayForEach(r, rows) {
            cJSON_AddItemToArray(all, cJSON_Duplicate(r, 1));
            const cJSON *tt = cJSON_GetObjectItemCaseSensitive(r, "tpot_ms_p50");
            const cJSON *tf = cJSON_GetObjectItemCaseSensitive(r, "ttft_ms_p50");
            const char *val = cJSON_GetObjectItemCaseSensitive(r, "value")->valuestring;
            if (cJSON_IsNumber(tf) && cJSON_IsNumber(tt))
                printf("%-9s %-34s TTFT p50 %10.3f ms  TPOT p50 %8.3f ms\n", tn, val, tf->valuedouble, tt->valuedouble);
            else
                printf("%-9s %s\n", tn, val); /* a test that does not apply: its reason, nothing measured */
        }
        char name[96];
        snprintf(name, sizeof name, "ablation_%s.csv", tn);
        if (!st && !(st = dpb_path_join(out, name, &path))) st = dpb_csv_write_objects(path, dpb_ablate_columns(), rows);
        free(path);
        path = NULL;
        cJSON_Delete(rows);
    }
    if (!st && !(st = dpb_path_join(out, "ablation.json", &path))) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "schema", "deploybench.ablation/1");
        cJSON_AddItemToObject(doc, "rows", cJSON_Duplicate(all, 1));
        st = dpb_json_write_file(path, doc);
        cJSON_Delete(doc);
    }
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
    cJSON_Delete(earlier);
    free(path);
    return st ? dpb_cli_fail("ablate", st) : 0;
}
