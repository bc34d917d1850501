/* deploybench latency: the reference study's latency grid on deploybench's
 * own engine, resumable, losing no finished request to Ctrl-C or kill -9. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "bench/latency.h"
#include "bench/manifest.h"
#include "bench/results.h"
#include "cli/cli.h"
#include "core/file.h"
#include "core/progress.h"
#include "core/signal.h"
#include "core/timeutil.h"
#include "telemetry/sampler.h"

#define MAXL 32

static void usage(FILE *f)
{
    fprintf(f,
            "usage: deploybench latency --model M --out DIR [--backend cpu|cuda] [--prompt-tokens 128,512,1024,2048]\n"
            "                           [--gen-tokens 64,128,256] [--batch 1] [--num-requests 10] [--warmup 1]\n"
            "                           [--threads N] [--seed S] [--cv-threshold X] [--tokenizer P] [--kv-dtype D]\n"
            "                           [--resume]\n\n"
            "The latency grid of the reference study on deploybench's own engine. Every cell (prompt length x\n"
            "generated length x batch) runs --num-requests rounds after --warmup unrecorded ones; a round\n"
            "generates for `batch` sequences together, each a request of exactly the prompt length (templated\n"
            "with the model's tokenizer and chat template, or random ids when it has none), greedy, end of\n"
            "sequence ignored, so each generates exactly the asked number of tokens.\n"
            "Underscore spellings (--prompt_tokens, --gen_tokens, --num_requests) are accepted.\n\n"
            "  --model M           a model folder or synth:PRESET[:SEED][:INIT] (required)\n"
            "  --out DIR           results folder (required; must be new or empty unless --resume)\n"
            "  --backend B         cpu (default), ref or cuda\n"
            "  --prompt-tokens L   prompt lengths (default 128,512,1024,2048)\n"
            "  --gen-tokens L      generated lengths, each >= 2 (default 64,128,256)\n"
            "  --batch L           sequences per round (default 1)\n"
            "  --num-requests N    measured rounds per cell (default 10)\n"
            "  --warmup N          unrecorded rounds per cell first (default 1)\n"
            "  --threads N         CPU threads (default: all cores)\n"
            "  --seed S            prompt seed (default 1)\n"
            "  --tokenizer PATH    a tokenizer folder or file for templated prompts (synth: models have none)\n"
            "  --kv-dtype D        KV cache element type: bf16 (default), f32 or fp8 (E4M3, scale 1)\n"
            "  --cv-threshold X    a cell is flagged unstable when the coefficient of variation of TTFT, TPOT\n"
            "                      or E2E exceeds X (default 0.10)\n"
            "  --resume            reuse DIR: cells already in cells.jsonl are skipped\n\n"
            "Writes DIR/manifest.json, requests.jsonl (one line per request as it completes: TTFT, TPOT,\n"
            "E2E, every token's time), cells.jsonl (one line per finished cell), summary.csv and summary.json\n"
            "(per cell: TTFT, TPOT, ITL, E2E mean/std/p50/p95/p99/min/max in ms, prefill and decode tok/s, the\n"
            "reference study's seed_TPOT_tokps_prefill_included, coefficients of variation, unstable flag).\n"
            "Definitions: docs/STUDY.md.\n");
}

typedef struct run_ctx {
    dpb_jsonl *req_log;
    const char *cell_key;
    const char *attempt;
    dpb_progress prog;
    uint64_t rounds_done;
} run_ctx;

static dpb_status on_request(void *user, const dpb_gen_result *r, const dpb_request_metrics *m, int round, int seq)
{
    run_ctx *c = user;
    cJSON *o = dpb_request_json(r, m);
    cJSON *h = cJSON_CreateObject();
    cJSON_AddStringToObject(h, "cell", c->cell_key);
    cJSON_AddStringToObject(h, "attempt", c->attempt);
    cJSON_AddNumberToObject(h, "round", round);
    cJSON_AddNumberToObject(h, "seq", seq);
    cJSON *it;
    while ((it = o->child)) {
        cJSON_DetachItemViaPointer(o, it);
        cJSON_AddItemToObject(h, it->string, it);
    }
    cJSON_Delete(o);
    dpb_status st = dpb_jsonl_append(c->req_log, h);
    cJSON_Delete(h);
    return st;
}

static void on_round(void *user)
{
    run_ctx *c = user;
    dpb_progress_update(&c->prog, ++c->rounds_done);
}

static bool cell_done(const cJSON *all, const char *key)
{
    const cJSON *o;
    cJSON_ArrayForEach(o, all) {
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(o, "cell");
        if (cJSON_IsString(k) && strcmp(k->valuestring, key) == 0) return true;
    }
    return false;
}

static dpb_status write_summaries(const char *dir, const cJSON *all)
{
    char *p;
    dpb_status st = dpb_path_join(dir, "summary.csv", &p);
    if (st) return st;
    st = dpb_csv_write_objects(p, dpb_latency_csv_columns, all);
    free(p);
    if (st) return st;
    if ((st = dpb_path_join(dir, "summary.json", &p))) return st;
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "schema", "deploybench.latency/1");
    cJSON_AddStringToObject(doc, "percentile_method", DPB_HIST_PERCENTILE_METHOD);
    cJSON_AddItemToObject(doc, "cells", cJSON_Duplicate(all, 1));
    st = dpb_json_write_file(p, doc);
    cJSON_Delete(doc);
    free(p);
    return st;
}

static cJSON *list_json(const int64_t *v, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber((double)v[i]));
    return a;
}

int dpb_cmd_latency(int argc, char **argv)
{
    enum { O_MODEL = 1, O_OUT, O_BACKEND, O_PT, O_GT, O_BATCH, O_NREQ, O_WARM, O_THREADS, O_SEED, O_CV, O_RESUME, O_TOK, O_KV };
    static const struct option opts[] = {
        {"model", required_argument, 0, O_MODEL},       {"out", required_argument, 0, O_OUT},
        {"backend", required_argument, 0, O_BACKEND},   {"prompt-tokens", required_argument, 0, O_PT},
        {"gen-tokens", required_argument, 0, O_GT},     {"batch", required_argument, 0, O_BATCH},
        {"num-requests", required_argument, 0, O_NREQ}, {"warmup", required_argument, 0, O_WARM},
        {"threads", required_argument, 0, O_THREADS},   {"seed", required_argument, 0, O_SEED},
        {"cv-threshold", required_argument, 0, O_CV},   {"resume", no_argument, 0, O_RESUME},
        {"tokenizer", required_argument, 0, O_TOK},     {"kv-dtype", required_argument, 0, O_KV},
        {"help", no_argument, 0, 'h'},                  {0, 0, 0, 0}};
    const char *model = NULL, *out = NULL, *backend = "cpu";
    dpb_checkpoint_opts co = {0};
    int64_t pts[MAXL] = {128, 512, 1024, 2048}, gts[MAXL] = {64, 128, 256}, bs[MAXL] = {1};
    size_t npt = 4, ngt = 3, nb = 1;
    long long nreq = 10, warm = 1, threads = 0, seed = 1;
    double cv = 0.10;
    bool resume = false;
    dpb_engine_kv kv = DPB_ENGINE_KV_AUTO;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        dpb_status st = DPB_OK;
        switch (c) {
        case O_MODEL: model = optarg; break;
        case O_OUT: out = optarg; break;
        case O_BACKEND:
            if (dpb_cli_check_backend("latency", optarg)) return 2;
            backend = optarg;
            break;
        case O_PT: st = dpb_parse_i64_list("--prompt-tokens", optarg, 1, 1 << 20, pts, MAXL, &npt); break;
        case O_GT: st = dpb_parse_i64_list("--gen-tokens", optarg, 2, 1 << 20, gts, MAXL, &ngt); break;
        case O_BATCH: st = dpb_parse_i64_list("--batch", optarg, 1, 1024, bs, MAXL, &nb); break;
        case O_NREQ: st = dpb_cli_parse_i64("--num-requests", optarg, 1, 1000000, &nreq); break;
        case O_WARM: st = dpb_cli_parse_i64("--warmup", optarg, 0, 1000, &warm); break;
        case O_THREADS: st = dpb_cli_parse_i64("--threads", optarg, 1, 4096, &threads); break;
        case O_SEED: st = dpb_cli_parse_i64("--seed", optarg, 0, INT64_MAX, &seed); break;
        case O_CV: st = dpb_cli_parse_double("--cv-threshold", optarg, 0.0001, 100, &cv); break;
        case O_RESUME: resume = true; break;
        case O_TOK: co.tokenizer = optarg; break;
        case O_KV:
            if ((st = dpb_engine_kv_parse(optarg, &kv))) dpb_error_prefix(st, "--kv-dtype");
            break;
        case 'h': usage(stdout); return 0;
        case ':': return dpb_cli_usage_error("latency", "%s needs a value", argv[optind - 1]);
        default: return dpb_cli_usage_error("latency", "unknown option '%s'", argv[optind - 1]);
        }
        if (st) return dpb_cli_usage_error("latency", "%s", dpb_error_message());
    }
    if (optind < argc) return dpb_cli_usage_error("latency", "unexpected argument '%s'", argv[optind]);
    if (!model) return dpb_cli_usage_error("latency", "--model is required");
    if (!out) return dpb_cli_usage_error("latency", "--out DIR is required");

    int64_t max_p = 0, max_g = 0, max_b = 0;
    for (size_t i = 0; i < npt; i++) max_p = pts[i] > max_p ? pts[i] : max_p;
    for (size_t i = 0; i < ngt; i++) max_g = gts[i] > max_g ? gts[i] : max_g;
    for (size_t i = 0; i < nb; i++) max_b = bs[i] > max_b ? bs[i] : max_b;

    dpb_telemetry t;
    dpb_telemetry_open(&t);
    dpb_manifest *man = NULL;
    dpb_checkpoint *ck = NULL;
    dpb_engine *e = NULL;
    dpb_study_prompts pr = {0};
    dpb_jsonl *req_log = NULL, *cell_log = NULL;
    cJSON *all = cJSON_CreateArray();
    char *req_path = NULL, *cell_path = NULL;
    size_t skipped = 0, ran = 0;
    run_ctx rc = {0};
    char attempt[64];
    snprintf(attempt, sizeof attempt, "%ld-%llu", (long)getpid(), (unsigned long long)dpb_now_ns());

    dpb_status st = dpb_manifest_begin(out, argc, argv, resume, t.nvml, &man);
    if (st) goto done;
    if ((st = dpb_path_join(out, "requests.jsonl", &req_path)) || (st = dpb_path_join(out, "cells.jsonl", &cell_path)))
        goto done;
    if ((st = dpb_jsonl_read(cell_path, dpb_jsonl_collect, all))) goto done;
    if ((st = dpb_jsonl_open(req_path, &req_log, NULL)) || (st = dpb_jsonl_open(cell_path, &cell_log, NULL))) goto done;
    {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "backend", backend);
        cJSON_AddItemToObject(p, "prompt_tokens", list_json(pts, npt));
        cJSON_AddItemToObject(p, "gen_tokens", list_json(gts, ngt));
        cJSON_AddItemToObject(p, "batch", list_json(bs, nb));
        cJSON_AddNumberToObject(p, "num_requests", (double)nreq);
        cJSON_AddNumberToObject(p, "warmup", (double)warm);
        cJSON_AddNumberToObject(p, "seed", (double)seed);
        cJSON_AddNumberToObject(p, "cv_threshold", cv);
        cJSON_AddStringToObject(p, "kv_dtype", dpb_kv_dtype_name(dpb_engine_kv_resolve(kv, DPB_ENGINE_BF16)));
        cJSON_AddStringToObject(p, "attempt", attempt);
        static const char *const same[] = {"backend", "kv_dtype", NULL};
        if ((st = dpb_manifest_resume_check(man, p, same))) {
            cJSON_Delete(p); /* the manifest keeps the earlier params */
            goto done;
        }
        dpb_manifest_add(man, "params", p);
    }
    if ((st = dpb_checkpoint_open(model, &co, &ck))) goto done;
    if ((st = dpb_manifest_set_model(man, model, ck))) goto done;
    {
        dpb_engine_opts eo = {0};
        eo.backend = backend;
        eo.threads = (int)threads;
        eo.kv = kv;
        eo.max_ctx = max_p + max_g;
        eo.max_seqs = (int)max_b;
        if ((st = dpb_engine_create(ck, &eo, &e))) goto done;
    }
    if ((st = dpb_study_prompts_init(ck, (uint64_t)seed, &pr))) goto done;
    fprintf(stderr, "latency: %s on %s, prompts %s; %zu x %zu x %zu cells, %lld rounds each -> %s\n", model,
            dpb_engine_backend(e)->ops->name, pr.kind, npt, ngt, nb, nreq, out);

    size_t todo = 0;
    for (size_t bi = 0; bi < nb; bi++)
        for (size_t pi = 0; pi < npt; pi++)
            for (size_t gi = 0; gi < ngt; gi++) {
                dpb_latency_cell cl = {.prompt_tokens = pts[pi], .gen_tokens = gts[gi], .batch = (int)bs[bi]};
                char key[64];
                dpb_latency_cell_key(&cl, key, sizeof key);
                if (!cell_done(all, key)) todo++;
            }
    rc.req_log = req_log;
    rc.attempt = attempt;
    dpb_progress_start(&rc.prog, "latency rounds", (uint64_t)todo * (uint64_t)(nreq + warm), NULL);
    for (size_t bi = 0; bi < nb && !st; bi++)
        for (size_t pi = 0; pi < npt && !st; pi++)
            for (size_t gi = 0; gi < ngt && !st; gi++) {
                dpb_latency_cell cl = {.prompt_tokens = pts[pi], .gen_tokens = gts[gi], .batch = (int)bs[bi], .rounds = (int)nreq, .warmup = (int)warm, .cv_threshold = cv};
                char key[64];
                dpb_latency_cell_key(&cl, key, sizeof key);
                if (cell_done(all, key)) {
                    skipped++;
                    continue;
                }
                rc.cell_key = key;
                cJSON *sum = NULL;
                st = dpb_latency_run_cell(e, &pr, &cl, on_request, on_round, &rc, &sum);
                if (st) break;
                cJSON_AddStringToObject(sum, "attempt", attempt);
                st = dpb_jsonl_append(cell_log, sum);
                cJSON_AddItemToArray(all, sum);
                if (!st) st = write_summaries(out, all);
                ran++;
                if (!rc.prog.enabled) {
                    const cJSON *a = cJSON_GetObjectItemCaseSensitive(sum, "ttft_ms_p50");
                    const cJSON *b = cJSON_GetObjectItemCaseSensitive(sum, "tpot_ms_p50");
                    fprintf(stderr, "  %s: TTFT p50 %.3f ms, TPOT p50 %.3f ms%s\n", key, a ? a->valuedouble : 0,
                            b ? b->valuedouble : 0,
                            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(sum, "unstable")) ? " (unstable)" : "");
                }
            }
    dpb_progress_finish(&rc.prog);
    if (st == DPB_OK || st == DPB_E_INTERRUPTED) {
        dpb_status s2 = write_summaries(out, all);
        if (st == DPB_OK) st = s2;
    }
    if (st == DPB_OK)
        printf("latency: %zu cells measured, %zu already done; wrote %s/{summary.csv,summary.json,requests.jsonl,"
               "cells.jsonl,manifest.json}\n",
               ran, skipped, out);
done:
    if (man) {
        dpb_manifest_end_with(man, st);
        dpb_manifest_free(man);
    }
    dpb_jsonl_close(req_log);
    dpb_jsonl_close(cell_log);
    dpb_study_prompts_free(&pr);
    dpb_engine_destroy(e);
    dpb_checkpoint_close(ck);
    dpb_telemetry_close(&t);
    cJSON_Delete(all);
    free(req_path);
    free(cell_path);
    if (st == DPB_E_INTERRUPTED) {
        fprintf(stderr, "deploybench latency: interrupted; finished cells and requests are kept in %s (--resume "
                        "continues)\n",
                out);
        return dpb_status_exit_code(st);
    }
    return st ? dpb_cli_fail("latency", st) : 0;
}
