/* deploybench energy: idle baseline, then per context N runs with prefill and
 * decode split by sampler marks; NVML counter and power integral both. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "bench/energy.h"
#include "bench/latency.h"
#include "bench/manifest.h"
#include "bench/results.h"
#include "cli/cli.h"
#include "core/file.h"
#include "core/signal.h"
#include "core/timeutil.h"
#include "telemetry/sampler.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: deploybench energy --model M --out DIR [--contexts 2048] [--gen-tokens 64] [--num-runs 5]\n"
            "                          [--warmup 1] [--idle-seconds 10] [--power-poll-hz 10] [--gpu N]\n"
            "                          [--backend cpu|cuda] [--threads N] [--tokenizer P] [--seed S] [--resume]\n\n"
            "Energy per request. First an idle baseline (the GPU's average power with nothing running), then\n"
            "for each context --num-runs requests (after --warmup unrecorded ones) of that many prompt tokens\n"
            "and --gen-tokens generated. Each is split into prefill and decode by sampler marks; each phase's\n"
            "energy is computed from NVML's total-energy counter and from the integral of polled power, both\n"
            "reported with their relative difference. Per run and per context (means): avg W, J and Wh per 1k\n"
            "generated tokens, tokens per J, J per decode token, tok/s, energy above the idle baseline, the\n"
            "reference study's figure (average power x time, no idle baseline) labelled as such, and CPU\n"
            "package energy from RAPL when readable. Without NVML every GPU figure is \"unavailable: <reason>\"\n"
            "(never 0); tok/s is still measured.\n\n"
            "  --model M           a model folder or synth:PRESET[:SEED][:INIT] (required)\n"
            "  --out DIR           results folder (required; new or empty unless --resume)\n"
            "  --contexts L        prompt lengths (default 2048)\n"
            "  --gen-tokens N      generated tokens per run, >= 2 (default 64)\n"
            "  --num-runs N        measured runs per context (default 5)\n"
            "  --warmup N          unrecorded runs per context first (default 1)\n"
            "  --idle-seconds S    idle baseline length (default 10; 0 skips it)\n"
            "  --power-poll-hz F   sampler rate, 0.1..100 (default 10)\n"
            "  --gpu N             NVML index of the GPU the backend uses (default 0)\n"
            "  --backend B         cpu (default), ref or cuda\n"
            "  --threads N         CPU threads (default: all cores)\n"
            "  --tokenizer P       tokenizer for templated prompts (default: the model's; else random ids)\n"
            "  --seed S            prompt seed (default 1)\n"
            "  --resume            reuse DIR: contexts already in energy_contexts.jsonl are skipped\n\n"
            "Writes DIR/manifest.json, energy_runs.jsonl (a line per run as it finishes), energy_runs.csv,\n"
            "energy_contexts.jsonl, energy_summary.csv, energy_summary.json (with the idle baseline),\n"
            "telemetry.csv and marks.csv (the power trace). Definitions: docs/STUDY.md.\n");
}

static bool have_context(const cJSON *all, int64_t c)
{
    const cJSON *o;
    cJSON_ArrayForEach(o, all) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "context");
        if (cJSON_IsNumber(v) && (int64_t)v->valuedouble == c) return true;
    }
    return false;
}

static const char *fmtv(char *b, size_t cap, const cJSON *o, const char *k, const char *f)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (cJSON_IsNumber(v)) snprintf(b, cap, f, v->valuedouble);
    else snprintf(b, cap, "n/a");
    return b;
}

static dpb_status write_in(const char *dir, const char *name, const char *const *cols, const cJSON *a)
{
    char *p;
    dpb_status st = dpb_path_join(dir, name, &p);
    if (st) return st;
    st = dpb_csv_write_objects(p, cols, a);
    free(p);
    return st;
}

int dpb_cmd_energy(int argc, char **argv)
{
    enum { O_MODEL = 1, O_OUT, O_CTX, O_GT, O_RUNS, O_WARM, O_IDLE, O_HZ, O_GPU, O_BACKEND, O_THREADS, O_TOK, O_SEED,
           O_RESUME };
    static const struct option opts[] = {
        {"model", required_argument, 0, O_MODEL},       {"out", required_argument, 0, O_OUT},
        {"contexts", required_argument, 0, O_CTX},      {"gen-tokens", required_argument, 0, O_GT},
        {"num-runs", required_argument, 0, O_RUNS},     {"warmup", required_argument, 0, O_WARM},
        {"idle-seconds", required_argument, 0, O_IDLE}, {"power-poll-hz", required_argument, 0, O_HZ},
        {"gpu", required_argument, 0, O_GPU},           {"backend", required_argument, 0, O_BACKEND},
        {"threads", required_argument, 0, O_THREADS},   {"tokenizer", required_argument, 0, O_TOK},
        {"seed", required_argument, 0, O_SEED},         {"resume", no_argument, 0, O_RESUME},
        {"help", no_argument, 0, 'h'},                  {0, 0, 0, 0}};
    const char *model = NULL, *out = NULL, *backend = "cpu";
    dpb_checkpoint_opts co = {0};
    int64_t ctxs[32] = {2048};
    size_t nctx = 1;
    long long gt = 64, runs = 5, warm = 1, gpu = 0, threads = 0, seed = 1;
    double idle_s = 10, hz = DPB_SAMPLER_DEFAULT_HZ;
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
        case O_GT: st = dpb_cli_parse_i64("--gen-tokens", optarg, 2, 1 << 20, &gt); break;
        case O_RUNS: st = dpb_cli_parse_i64("--num-runs", optarg, 1, 100000, &runs); break;
        case O_WARM: st = dpb_cli_parse_i64("--warmup", optarg, 0, 1000, &warm); break;
        case O_IDLE: st = dpb_cli_parse_double("--idle-seconds", optarg, 0, 3600, &idle_s); break;
        case O_HZ: st = dpb_cli_parse_double("--power-poll-hz", optarg, DPB_SAMPLER_MIN_HZ, DPB_SAMPLER_MAX_HZ, &hz); break;
        case O_GPU: st = dpb_cli_parse_i64("--gpu", optarg, 0, DPB_MAX_GPUS - 1, &gpu); break;
        case O_BACKEND:
            if (dpb_cli_check_backend("energy", optarg)) return 2;
            backend = optarg;
            break;
        case O_THREADS: st = dpb_cli_parse_i64("--threads", optarg, 1, 4096, &threads); break;
        case O_TOK: co.tokenizer = optarg; break;
        case O_SEED: st = dpb_cli_parse_i64("--seed", optarg, 0, INT64_MAX, &seed); break;
        case O_RESUME: resume = true; break;
        case 'h': usage(stdout); return 0;
        case ':': return dpb_cli_usage_error("energy", "%s needs a value", argv[optind - 1]);
        default: return dpb_cli_usage_error("energy", "unknown option '%s'", argv[optind - 1]);
        }
        if (st) return dpb_cli_usage_error("energy", "%s", dpb_error_message());
    }
    if (optind < argc) return dpb_cli_usage_error("energy", "unexpected argument '%s'", argv[optind]);
    if (!model) return dpb_cli_usage_error("energy", "--model is required");
    if (!out) return dpb_cli_usage_error("energy", "--out DIR is required");
    int64_t max_ctx = 0;
    for (size_t i = 0; i < nctx; i++) max_ctx = ctxs[i] > max_ctx ? ctxs[i] : max_ctx;

    dpb_telemetry t;
    dpb_telemetry_open(&t);
    dpb_manifest *man = NULL;
    dpb_checkpoint *ck = NULL;
    dpb_engine *e = NULL;
    dpb_sampler *smp = NULL;
    dpb_study_prompts pr = {0};
    dpb_jsonl *run_log = NULL, *ctx_log = NULL;
    cJSON *all_runs = cJSON_CreateArray(), *all_ctx = cJSON_CreateArray(), *idle_json = NULL;
    char *rp = NULL, *cp = NULL, *path = NULL;
    dpb_energy_opts eo = {0};
    eo.gpu = (unsigned)gpu;
    eo.gpu_reason = t.nvml_reason;
    eo.rapl_reason = t.rapl_reason;
    eo.have_rapl = t.rapl != NULL;
    dpb_status st = dpb_manifest_begin(out, argc, argv, resume, t.nvml, &man);
    if (st) goto done;
    if ((st = dpb_path_join(out, "energy_runs.jsonl", &rp)) || (st = dpb_path_join(out, "energy_contexts.jsonl", &cp)))
        goto done;
    if ((st = dpb_jsonl_read(rp, dpb_jsonl_collect, all_runs)) || (st = dpb_jsonl_read(cp, dpb_jsonl_collect, all_ctx))) goto done;
    if ((st = dpb_jsonl_open(rp, &run_log, NULL)) || (st = dpb_jsonl_open(cp, &ctx_log, NULL))) goto done;
    if ((st = dpb_checkpoint_open(model, &co, &ck)) || (st = dpb_manifest_set_model(man, model, ck))) goto done;
    {
        dpb_engine_opts o = {0};
        o.backend = backend;
        o.threads = (int)threads;
        o.max_ctx = max_ctx + gt;
        o.max_seqs = 1;
        if ((st = dpb_engine_create(ck, &o, &e))) goto done;
    }
    if ((st = dpb_study_prompts_init(ck, (uint64_t)seed, &pr))) goto done;
    if (t.nvml || t.rapl) {
        unsigned g = eo.gpu;
        dpb_sampler_opts so = {.hz = hz, .gpus = t.nvml ? &g : NULL, .n_gpus = t.nvml ? 1 : 0,
                               .metrics = DPB_GPU_ALL_METRICS};
        if ((st = dpb_sampler_create(t.nvml, t.rapl, &so, &smp))) {
            if (st == DPB_E_ARG) dpb_error_prefix(st, "--gpu");
            goto done;
        }
        eo.sampler = smp;
        eo.have_gpu = t.nvml != NULL;
    }
    idle_json = cJSON_CreateObject();
    if (smp && idle_s > 0 && eo.have_gpu) {
        fprintf(stderr, "energy: idle baseline, %.1f s ...\n", idle_s);
        dpb_idle_baseline ib;
        if ((st = dpb_sampler_idle_baseline(smp, idle_s, &ib))) goto done;
        for (size_t i = 0; i < ib.n_gpus; i++)
            if (ib.gpu[i] == eo.gpu && ib.gpu_energy[i].avg_w_ok) {
                eo.idle_ok = true;
                eo.idle_w = ib.gpu_energy[i].avg_w;
                cJSON_AddItemToObject(idle_json, "gpu", dpb_energy_json(&ib.gpu_energy[i]));
            }
        if (ib.cpu_package.counter_ok) cJSON_AddItemToObject(idle_json, "cpu_package", dpb_energy_json(&ib.cpu_package));
    } else {
        cJSON_AddStringToObject(idle_json, "gpu", !eo.have_gpu ? t.nvml_reason : "unavailable: --idle-seconds 0");
    }
    cJSON_AddNumberToObject(idle_json, "seconds", idle_s);
    {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "backend", backend);
        cJSON *a = cJSON_AddArrayToObject(p, "contexts");
        for (size_t i = 0; i < nctx; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber((double)ctxs[i]));
        cJSON_AddNumberToObject(p, "gen_tokens", (double)gt);
        cJSON_AddNumberToObject(p, "num_runs", (double)runs);
        cJSON_AddNumberToObject(p, "warmup", (double)warm);
        cJSON_AddNumberToObject(p, "power_poll_hz", hz);
        cJSON_AddStringToObject(p, "prompts", pr.kind);
        cJSON_AddItemToObject(p, "idle_baseline", cJSON_Duplicate(idle_json, 1));
        static const char *const same[] = {"backend", NULL};
        if ((st = dpb_manifest_resume_check(man, p, same))) {
            cJSON_Delete(p); /* the manifest keeps the earlier params */
            goto done;
        }
        dpb_manifest_add(man, "params", p);
        dpb_manifest_write(man);
    }
    if (smp && (st = dpb_sampler_start(smp))) goto done;
    printf("%8s %6s %10s %10s %10s %12s %12s %10s %10s %10s\n", "context", "runs", "avg_W", "J/1k_tok", "Wh/1k_tok",
           "int_vs_ctr", "block_i_vs_c", "tok/J", "tok/s", "idle_W");
    for (size_t i = 0; i < nctx && !st; i++) {
        if (have_context(all_ctx, ctxs[i])) continue;
        cJSON *mine = cJSON_CreateArray();
        uint64_t blk0 = 0, blk1 = 0; /* the measured runs back to back: one window for both energy methods */
        for (long long r = -warm; r < runs && !st; r++) {
            if (r == 0) blk0 = dpb_now_ns();
            if (dpb_interrupted()) {
                st = dpb_error_set(DPB_E_INTERRUPTED, "interrupted");
                break;
            }
            eo.context = ctxs[i];
            eo.gen_tokens = gt;
            eo.run = (int)r;
            cJSON *row = NULL;
            st = dpb_energy_run(e, &pr, &eo, &row);
            if (st) break;
            if (r < 0) {
                cJSON_Delete(row);
                continue;
            }
            st = dpb_jsonl_append(run_log, row);
            cJSON_AddItemToArray(mine, cJSON_Duplicate(row, 1));
            cJSON_AddItemToArray(all_runs, row);
            blk1 = dpb_now_ns();
        }
        if (!st) {
            cJSON *s = dpb_energy_summarize(mine, ctxs[i]);
            /* Block: NVML's counter advances in ~100 ms steps, so a run of a few hundred ms carries a
             * quantization error of a step in its counter figure; over the whole block the two methods
             * can be compared to better than that. */
            dpb_energy be;
            static const char *const bk[] = {"block_s", "block_energy_counter_j", "block_energy_integral_j",
                                             "block_energy_rel_diff"};
            for (size_t k = 0; k < 4; k++) cJSON_DeleteItemFromObjectCaseSensitive(s, bk[k]);
            if (smp && blk1 > blk0 && dpb_sampler_gpu_energy(smp, eo.gpu, blk0, blk1, &be) == DPB_OK) {
                cJSON_AddNumberToObject(s, "block_s", be.seconds);
                if (be.counter_ok) cJSON_AddNumberToObject(s, "block_energy_counter_j", be.counter_j);
                else cJSON_AddStringToObject(s, "block_energy_counter_j", "unavailable");
                if (be.integral_ok) cJSON_AddNumberToObject(s, "block_energy_integral_j", be.integral_j);
                else cJSON_AddStringToObject(s, "block_energy_integral_j", "unavailable");
                if (be.rel_diff_ok) cJSON_AddNumberToObject(s, "block_energy_rel_diff", be.rel_diff);
                else cJSON_AddStringToObject(s, "block_energy_rel_diff", "unavailable: needs both energy figures");
            } else
                for (size_t k = 0; k < 4; k++)
                    cJSON_AddStringToObject(s, bk[k], "unavailable: no GPU telemetry for this block");
            st = dpb_jsonl_append(ctx_log, s);
            cJSON_AddItemToArray(all_ctx, s);
            char a[32], b[32], cc[32], d[32], d2[32], e2[32], f[32], g[32];
            printf("%8lld %6lld %10s %10s %10s %12s %12s %10s %10s %10s\n", (long long)ctxs[i], runs,
                   fmtv(a, sizeof a, s, "total_avg_w", "%.1f"), fmtv(b, sizeof b, s, "j_per_1k_tokens", "%.1f"),
                   fmtv(cc, sizeof cc, s, "wh_per_1k_tokens", "%.4f"),
                   fmtv(d, sizeof d, s, "total_energy_rel_diff", "%+.4f"),
                   fmtv(d2, sizeof d2, s, "block_energy_rel_diff", "%+.4f"), fmtv(e2, sizeof e2, s, "tokens_per_j", "%.3f"),
                   fmtv(f, sizeof f, s, "tok_s_decode", "%.1f"), fmtv(g, sizeof g, s, "idle_avg_w", "%.1f"));
            fflush(stdout);
        }
        cJSON_Delete(mine);
    }
    if (smp) dpb_sampler_stop(smp);
    if (st == DPB_OK || st == DPB_E_INTERRUPTED) {
        dpb_status s2 = write_in(out, "energy_runs.csv", dpb_energy_csv_columns, all_runs);
        if (!s2) s2 = write_in(out, "energy_summary.csv", dpb_energy_summary_columns, all_ctx);
        if (!s2 && !(s2 = dpb_path_join(out, "energy_summary.json", &path))) {
            cJSON *doc = cJSON_CreateObject();
            cJSON_AddStringToObject(doc, "schema", "deploybench.energy/1");
            cJSON_AddItemToObject(doc, "idle_baseline", cJSON_Duplicate(idle_json, 1));
            cJSON_AddItemToObject(doc, "contexts", cJSON_Duplicate(all_ctx, 1));
            s2 = dpb_json_write_file(path, doc);
            cJSON_Delete(doc);
            free(path);
            path = NULL;
        }
        if (!s2 && smp && eo.have_gpu && !(s2 = dpb_path_join(out, "telemetry.csv", &path))) {
            s2 = dpb_sampler_write_csv(smp, path);
            free(path);
            path = NULL;
            if (!s2 && !(s2 = dpb_path_join(out, "marks.csv", &path))) s2 = dpb_sampler_write_marks_csv(smp, path);
        }
        if (st == DPB_OK) st = s2;
    }
    if (st == DPB_OK)
        printf("energy: wrote %s/{energy_summary.csv,energy_summary.json,energy_runs.csv,energy_runs.jsonl%s,"
               "manifest.json}%s%s\n",
               out, eo.have_gpu ? ",telemetry.csv,marks.csv" : "", eo.have_gpu ? "" : "; GPU energy ",
               eo.have_gpu ? "" : t.nvml_reason);
done:
    if (man) {
        dpb_manifest_end_with(man, st);
        dpb_manifest_free(man);
    }
    dpb_sampler_free(smp);
    dpb_jsonl_close(run_log);
    dpb_jsonl_close(ctx_log);
    dpb_study_prompts_free(&pr);
    dpb_engine_destroy(e);
    dpb_checkpoint_close(ck);
    dpb_telemetry_close(&t);
    cJSON_Delete(all_runs);
    cJSON_Delete(all_ctx);
    cJSON_Delete(idle_json);
    free(rp);
    free(cp);
    free(path);
    return st ? dpb_cli_fail("energy", st) : 0;
}
