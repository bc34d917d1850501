/* deploybench study: the reference study end to end, with one command.
 *
 * It runs each step by calling the step's own command in-process (the same
 * function `deploybench latency` etc. runs, with the same argv), so option
 * parsing, results folders, manifests and --resume stay those of the steps.
 * The study keeps one manifest of its own (OUT/manifest.json, field "study":
 * the models and every step with its folder, command, status and time) and
 * writes OUT/commands.sh: every step command that ran, in order. */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "bench/ablate.h"
#include "bench/latency.h"
#include "bench/manifest.h"
#include "cli/cli.h"
#include "core/file.h"
#include "core/json.h"
#include "core/signal.h"
#include "core/timeutil.h"
#include "format/config.h"
#include "report/report.h"
#include "synth/synth.h"

#define MAXM 8
#define MAXL 32

static void usage(FILE *f)
{
    fprintf(f,
            "usage: deploybench study --out DIR [--config study.json] [--models NAME[=DIR],...] [--synthetic]\n"
            "                         [--steps LIST] [--backend cpu|cuda] [--tokenizer DIR] [--resume] [grid options]\n\n"
            "Runs the reference study end to end: for every model, the latency grid, memory and KV scaling,\n"
            "energy, ablations, and (with --tokenizer) accuracy and safety; a serving sweep through the\n"
            "load generator against `deploybench serve` on loopback; then the unified CSVs, APE, and the\n"
            "report (figures, report.html, summary.md, paper/). Each step is the step's own command run\n"
            "in-process, into OUT/MODEL/STEP; OUT/commands.sh holds every command exactly as it ran.\n\n"
            "Models\n"
            "  --models LIST      NAME=DIR or NAME=synth:PRESET, or a bare NAME, comma-separated.  A bare\n"
            "                     NAME (no folder) runs as synth:NAME: random weights, marked synthetic\n"
            "                     everywhere.  Default: the reference study's gpt-oss-20b, qwen3-32b, yi-34b.\n"
            "  --synthetic        the CPU path: the tiny presets gpt-oss-tiny, qwen3-tiny and llama-tiny\n"
            "                     (standing in for gpt-oss-20b, qwen3-32b and yi-34b) and the small CPU grid\n"
            "                     below, unless --models or grid options say otherwise.\n"
            "  --tokenizer T      a tokenizer (folder or file) for every model, or NAME=PATH,... one per model:\n"
            "                     templated prompts, and the text steps (eval, safety) for synth: models; a\n"
            "                     model folder uses its own tokenizer\n\n"
            "Steps (--steps, comma-separated; default all, in this order)\n"
            "  latency  deploybench latency   TTFT/TPOT/ITL/E2E over prompt x generation lengths\n"
            "  memory   deploybench memory    weights, KV exact vs analytic, workspace, peak, per context\n"
            "  energy   deploybench energy    J per 1k tokens, idle baseline, NVML counter vs power integral\n"
            "  ablate   deploybench ablate    sampling, context, batch, experts, KV dtype, sliding window\n"
            "  eval     deploybench eval      needs --tokenizer and --eval-data; else skipped, with the reason\n"
            "  safety   deploybench safety    needs --tokenizer (built-in prompts); else skipped\n"
            "  serve    deploybench load --launch 'deploybench serve ...': closed-loop concurrency sweep,\n"
            "           throughput, latency and goodput.  Its random prompts are token ids in [1000, 21000),\n"
            "           or in [1, vocabulary) for a smaller vocabulary (the tiny presets)\n"
            "  unify    deploybench unify     unified_{latency,memory,energy}_comparison.csv (OUT/unified)\n"
            "  ape      deploybench ape       ape_analysis.csv/.json (OUT/ape)\n"
            "  report   deploybench report    figures, report.html, summary.md, paper/ (into OUT)\n"
            "  unify, ape and report use every finished step in OUT, from this and earlier calls.\n\n"
            "Grid (defaults: the reference study's / with --synthetic, the small CPU grid)\n"
            "  --prompt-tokens L      latency prompt lengths (128,512,1024,2048 / 16,64,256)\n"
            "  --gen-tokens L         latency generated lengths (64,128,256 / 8,16,32)\n"
            "  --num-requests N       latency requests per cell (10 / 3)\n"
            "  --warmup N             latency unrecorded rounds per cell (1 / 1)\n"
            "  --contexts L           memory contexts (2048,8192,16384,32768 / 256,1024,2048)\n"
            "  --memory-gen-tokens N  memory generated tokens (64 / 8)\n"
            "  --energy-contexts L    energy contexts (2048 / 128)\n"
            "  --energy-gen-tokens N  energy generated tokens (64 / 16)\n"
            "  --num-runs N           energy runs per context (5 / 3)\n"
            "  --idle-seconds S       energy idle baseline (10 / 1)\n"
            "  --power-poll-hz H      energy sampler rate (10 / 10)\n"
            "  --ablate-tests L       ablation tests (all / sampling,batch,experts,kv,window: the context test\n"
            "                         runs prompts up to 2048, which the latency grid covers)\n"
            "  --ablate-prompt-tokens N, --ablate-gen-tokens N, --ablate-requests N, --ablate-warmup N\n"
            "                         the ablation cell (512, 64, 5, 1 / 64, 8, 2, 0)\n"
            "  --concurrency L        serving sweep levels (1,2,4,8,16 / 1,2,4)\n"
            "  --serve-requests N     requests per level (50 / 8)\n"
            "  --serve-prompt-tokens N, --serve-gen-tokens N   (512, 128 / 32, 16)\n"
            "  --goodput SLO          goodput limits, as load takes them (ttft:2000,tpot:100)\n"
            "  --eval-data DIR        eval data folder (../shared/data); --eval-tasks L (mmlu); --eval-limit N (20)\n"
            "  --safety-limit N       safety prompts per set (20)\n"
            "  Contexts a model cannot hold (context + generated > its max_position_embeddings) are dropped for\n"
            "  that model and the step's record says so.\n\n"
            "Run control\n"
            "  --out DIR          the study folder (required; new or empty unless --resume)\n"
            "  --backend B        cpu (default), ref or cuda: passed to every step and to the server\n"
            "  --threads N        CPU threads for every step (default: all cores)\n"
            "  --seed S           prompt seed for every step (default 1)\n"
            "  --resume           continue in DIR: steps the study manifest records as complete are skipped;\n"
            "                     a step recorded complete with the same command is skipped; latency, memory,\n"
            "                     energy and eval otherwise continue with their own --resume (so a grid can be\n"
            "                     split over calls: --gen-tokens 64, then --gen-tokens 128, ...); a step without\n"
            "                     one (ablate-TEST, safety, serve) that did not finish, or whose command changed,\n"
            "                     is moved aside to STEP.incomplete-N and run again.  Use it to split a study.\n"
            "  --dry-run          print the commands that would run; run nothing\n"
            "  --config FILE      a JSON object of these options by long name (\"prompt_tokens\": [128, 512],\n"
            "                     \"models\": {\"gpt-oss-20b\": \"/models/gpt-oss-20b\"}, \"synthetic\": true, ...);\n"
            "                     options on the command line override it\n\n"
            "Writes OUT/manifest.json (the study's manifest; its \"study\" field lists every step), OUT/commands.sh,\n"
            "OUT/MODEL/{latency,memory,energy,ablate-TEST,eval-TASK,safety,serve}/ (each with its own manifest),\n"
            "OUT/unified/, OUT/ape/, OUT/figures/, OUT/report.html, OUT/summary.md, OUT/paper/.\n"
            "Exit status: 0 when every step that ran succeeded; 1 when one failed (the others still run);\n"
            "130 when interrupted (finished steps are kept; --resume continues).  docs/REPORT.md.\n\n"
            "Splitting (each call under 10 minutes), e.g. on a GPU:\n"
            "  deploybench study --backend cuda --out S --resume --models gpt-oss-20b --steps latency\n"
            "  deploybench study --backend cuda --out S --resume --models gpt-oss-20b --steps memory,energy\n"
            "  ... then: deploybench study --out S --resume --steps unify,ape,report\n");
}

/* ---- configuration -------------------------------------------------- */

typedef struct study_model {
    char name[64];
    char spec[PATH_MAX + 16];
    char stands_for[64]; /* the reference model a tiny preset stands in for, or "" */
    bool synthetic;
    int64_t max_pos, vocab;
    char tok[PATH_MAX]; /* --tokenizer for this model, or "" */
} study_model;

enum {
    S_LATENCY = 1 << 0, S_MEMORY = 1 << 1, S_ENERGY = 1 << 2, S_ABLATE = 1 << 3, S_EVAL = 1 << 4,
    S_SAFETY = 1 << 5, S_SERVE = 1 << 6, S_UNIFY = 1 << 7, S_APE = 1 << 8, S_REPORT = 1 << 9
};
static const char *const k_steps[] = {"latency", "memory", "energy", "ablate", "eval",
                                       "safety",  "serve",  "unify",  "ape",    "report"};
#define N_STEPS 10

typedef struct ilist {
    int64_t v[MAXL];
    size_t n;
    bool set;
} ilist;

typedef struct study_cfg {
    study_model models[MAXM];
    size_t nmodels;
    bool models_set, synthetic, resume, dry_run;
    unsigned steps;
    char backend[16];
    char *tokenizer, *eval_data, *eval_tasks, *ablate_tests, *goodput, *out;
    ilist pts, gts, mem_ctx, en_ctx, conc;
    long long nreq, warm, mem_gen, en_gen, en_runs, ab_pt, ab_gt, ab_nreq, ab_warm, srv_nreq, srv_pt, srv_gt, eval_limit,
        safety_limit, threads, seed;
    double idle_s, hz;
} study_cfg;

static void cfg_free(study_cfg *c)
{
    free(c->tokenizer);
    free(c->eval_data);
    free(c->eval_tasks);
    free(c->ablate_tests);
    free(c->goodput);
    free(c->out);
}

static dpb_status set_str(char **dst, const char *v)
{
    free(*dst);
    *dst = strdup(v);
    return *dst ? DPB_OK : dpb_error_set(DPB_E_NOMEM, "study: out of memory");
}

/* The tiny preset standing in for a reference model, and back. */
static const char *const k_ref_models[3] = {"gpt-oss-20b", "qwen3-32b", "yi-34b"};
static const char *const k_tiny_models[3] = {"gpt-oss-tiny", "qwen3-tiny", "llama-tiny"};

static dpb_status add_model(study_cfg *c, const char *item)
{
    if (c->nmodels == MAXM) return dpb_error_set(DPB_E_ARG, "--models: at most %d models", MAXM);
    study_model *m = &c->models[c->nmodels];
    memset(m, 0, sizeof *m);
    const char *eq = strchr(item, '=');
    size_t nl = eq ? (size_t)(eq - item) : strlen(item);
    if (nl == 0 || nl >= sizeof m->name)
        return dpb_error_set(DPB_E_ARG, "--models: '%s': a model needs a name of 1-63 characters", item);
    memcpy(m->name, item, nl);
    for (size_t i = 0; i < nl; i++)
        if (m->name[i] == '/' || m->name[i] == ',' || (unsigned char)m->name[i] < 0x20 || (m->name[i] == '.' && i == 0))
            return dpb_error_set(DPB_E_ARG, "--models: '%s' is not usable as a folder name", m->name);
    const char *spec = eq ? eq + 1 : NULL;
    if (spec && !*spec) return dpb_error_set(DPB_E_ARG, "--models: '%s=' needs a folder or synth:PRESET", m->name);
    if (spec) {
        if (strlen(spec) >= sizeof m->spec) return dpb_error_set(DPB_E_ARG, "--models: '%s': path too long", m->name);
        snprintf(m->spec, sizeof m->spec, "%s", spec);
    } else {
        memcpy(m->spec, "synth:", 6);
        memcpy(m->spec + 6, m->name, nl + 1);
    }
    m->synthetic = dpb_synth_is_spec(m->spec);
    for (int i = 0; i < 3; i++) {
        char t[80];
        snprintf(t, sizeof t, "synth:%s", k_tiny_models[i]);
        if (strcmp(m->spec, t) == 0) snprintf(m->stands_for, sizeof m->stands_for, "%s", k_ref_models[i]);
    }
    for (size_t i = 0; i < c->nmodels; i++)
        if (strcmp(c->models[i].name, m->name) == 0) return dpb_error_set(DPB_E_ARG, "--models: '%s' twice", m->name);
    c->nmodels++;
    return DPB_OK;
}

static dpb_status parse_models(study_cfg *c, const char *v)
{
    c->nmodels = 0;
    c->models_set = true;
    char *dup = strdup(v);
    if (!dup) return dpb_error_set(DPB_E_NOMEM, "study: out of memory");
    dpb_status st = DPB_OK;
    for (char *sv, *t = strtok_r(dup, ",", &sv); t && !st; t = strtok_r(NULL, ",", &sv)) st = add_model(c, t);
    free(dup);
    if (!st && c->nmodels == 0) st = dpb_error_set(DPB_E_ARG, "--models: no model in '%s'", v);
    return st;
}

static dpb_status parse_steps(study_cfg *c, const char *v)
{
    c->steps = 0;
    char *dup = strdup(v);
    if (!dup) return dpb_error_set(DPB_E_NOMEM, "study: out of memory");
    dpb_status st = DPB_OK;
    for (char *sv, *t = strtok_r(dup, ",", &sv); t && !st; t = strtok_r(NULL, ",", &sv)) {
        if (strcmp(t, "all") == 0) {
            c->steps = (1u << N_STEPS) - 1;
            continue;
        }
        int k = -1;
        for (int i = 0; i < N_STEPS; i++)
            if (strcmp(t, k_steps[i]) == 0) k = i;
        if (k < 0)
            st = dpb_error_set(DPB_E_ARG,
                               "--steps: unknown step '%s' (steps: latency, memory, energy, ablate, eval, safety, "
                               "serve, unify, ape, report, all)",
                               t);
        else c->steps |= 1u << k;
    }
    free(dup);
    if (!st && !c->steps) st = dpb_error_set(DPB_E_ARG, "--steps: no step in '%s'", v);
    return st;
}

static dpb_status parse_list(ilist *l, const char *opt, const char *v, long long min, long long max)
{
    l->set = true;
    return dpb_parse_i64_list(opt, v, min, max, l->v, MAXL, &l->n);
}

/* One option by its long name (without "--"); v is NULL for a flag. */
static dpb_status apply_opt(study_cfg *c, const char *name, const char *v)
{
    static const char *const flags[] = {"synthetic", "resume", "dry-run", NULL};
    bool is_flag = false;
    for (int i = 0; flags[i]; i++) is_flag |= strcmp(name, flags[i]) == 0;
    if (is_flag && v) return dpb_error_set(DPB_E_ARG, "--%s takes no value", name);
    if (!is_flag && !v) return dpb_error_set(DPB_E_ARG, "--%s needs a value", name);
    char opt[80];
    snprintf(opt, sizeof opt, "--%s", name);
    if (!strcmp(name, "synthetic")) c->synthetic = true;
    else if (!strcmp(name, "resume")) c->resume = true;
    else if (!strcmp(name, "dry-run")) c->dry_run = true;
    else if (!strcmp(name, "models")) return parse_models(c, v);
    else if (!strcmp(name, "steps")) return parse_steps(c, v);
    else if (!strcmp(name, "backend")) {
        if (strcmp(v, "cpu") && strcmp(v, "ref") && strcmp(v, "cuda"))
            return dpb_error_set(DPB_E_ARG, "--backend takes cpu, ref or cuda, not '%s'", v);
        snprintf(c->backend, sizeof c->backend, "%s", v);
    } else if (!strcmp(name, "tokenizer")) return set_str(&c->tokenizer, v);
    else if (!strcmp(name, "eval-data")) return set_str(&c->eval_data, v);
    else if (!strcmp(name, "eval-tasks")) return set_str(&c->eval_tasks, v);
    else if (!strcmp(name, "ablate-tests")) return set_str(&c->ablate_tests, v);
    else if (!strcmp(name, "goodput")) return set_str(&c->goodput, v);
    else if (!strcmp(name, "out")) return set_str(&c->out, v);
    else if (!strcmp(name, "prompt-tokens")) return parse_list(&c->pts, opt, v, 1, 1 << 20);
    else if (!strcmp(name, "gen-tokens")) return parse_list(&c->gts, opt, v, 2, 1 << 20);
    else if (!strcmp(name, "contexts")) return parse_list(&c->mem_ctx, opt, v, 1, 1 << 24);
    else if (!strcmp(name, "energy-contexts")) return parse_list(&c->en_ctx, opt, v, 1, 1 << 24);
    else if (!strcmp(name, "concurrency")) return parse_list(&c->conc, opt, v, 1, 4096);
    else if (!strcmp(name, "num-requests")) return dpb_cli_parse_i64(opt, v, 1, 1000000, &c->nreq);
    else if (!strcmp(name, "warmup")) return dpb_cli_parse_i64(opt, v, 0, 1000, &c->warm);
    else if (!strcmp(name, "memory-gen-tokens")) return dpb_cli_parse_i64(opt, v, 2, 1 << 20, &c->mem_gen);
    else if (!strcmp(name, "energy-gen-tokens")) return dpb_cli_parse_i64(opt, v, 2, 1 << 20, &c->en_gen);
    else if (!strcmp(name, "num-runs")) return dpb_cli_parse_i64(opt, v, 1, 100000, &c->en_runs);
    else if (!strcmp(name, "ablate-prompt-tokens")) return dpb_cli_parse_i64(opt, v, 1, 1 << 20, &c->ab_pt);
    else if (!strcmp(name, "ablate-gen-tokens")) return dpb_cli_parse_i64(opt, v, 2, 1 << 20, &c->ab_gt);
    else if (!strcmp(name, "ablate-requests")) return dpb_cli_parse_i64(opt, v, 1, 100000, &c->ab_nreq);
    else if (!strcmp(name, "ablate-warmup")) return dpb_cli_parse_i64(opt, v, 0, 1000, &c->ab_warm);
    else if (!strcmp(name, "serve-requests")) return dpb_cli_parse_i64(opt, v, 1, 1000000, &c->srv_nreq);
    else if (!strcmp(name, "serve-prompt-tokens")) return dpb_cli_parse_i64(opt, v, 1, 1 << 20, &c->srv_pt);
    else if (!strcmp(name, "serve-gen-tokens")) return dpb_cli_parse_i64(opt, v, 1, 1 << 20, &c->srv_gt);
    else if (!strcmp(name, "eval-limit")) return dpb_cli_parse_i64(opt, v, 1, 1000000, &c->eval_limit);
    else if (!strcmp(name, "safety-limit")) return dpb_cli_parse_i64(opt, v, 1, 1000000, &c->safety_limit);
    else if (!strcmp(name, "threads")) return dpb_cli_parse_i64(opt, v, 1, 4096, &c->threads);
    else if (!strcmp(name, "seed")) return dpb_cli_parse_i64(opt, v, 0, INT64_MAX, &c->seed);
    else if (!strcmp(name, "idle-seconds")) return dpb_cli_parse_double(opt, v, 0, 3600, &c->idle_s);
    else if (!strcmp(name, "power-poll-hz")) return dpb_cli_parse_double(opt, v, 1, 100, &c->hz);
    else return dpb_error_set(DPB_E_ARG, "unknown option '--%s'", name);
    return DPB_OK;
}

/* A config file: a JSON object of options by long name (- or _). */
static dpb_status apply_config(study_cfg *c, const char *path)
{
    cJSON *doc = NULL;
    dpb_status st = dpb_json_load(path, 1 << 20, &doc);
    if (st) return st;
    if (!cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        return dpb_error_set(DPB_E_FORMAT, "%s: a study config is a JSON object of options", path);
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, doc) {
        char name[64];
        if (!it->string || strlen(it->string) >= sizeof name) {
            st = dpb_error_set(DPB_E_FORMAT, "%s: a key is too long", path);
            break;
        }
        snprintf(name, sizeof name, "%s", it->string);
        for (char *p = name; *p; p++)
            if (*p == '_') *p = '-';
        if (!strcmp(name, "config") || !strcmp(name, "help")) {
            st = dpb_error_set(DPB_E_FORMAT, "%s/%s: not allowed in a config file", path, it->string);
            break;
        }
        char *val = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&val, &len);
        if (!m) {
            st = dpb_error_set(DPB_E_NOMEM, "study: out of memory");
            break;
        }
        bool flag = false, skip = false, bad = false;
        if (cJSON_IsTrue(it)) flag = true;
        else if (cJSON_IsFalse(it) || cJSON_IsNull(it)) skip = true;
        else if (cJSON_IsString(it)) fputs(it->valuestring, m);
        else if (cJSON_IsNumber(it)) fprintf(m, "%.17g", it->valuedouble);
        else if (cJSON_IsArray(it) || cJSON_IsObject(it)) {
            const cJSON *e;
            int i = 0;
            cJSON_ArrayForEach(e, it) {
                if (i++) fputc(',', m);
                if (cJSON_IsObject(it)) {
                    if (!cJSON_IsString(e)) bad = true;
                    else fprintf(m, "%s=%s", e->string, e->valuestring);
                } else if (cJSON_IsString(e)) fputs(e->valuestring, m);
                else if (cJSON_IsNumber(e)) fprintf(m, "%.17g", e->valuedouble);
                else bad = true;
            }
        } else bad = true;
        fclose(m);
        if (bad) st = dpb_error_set(DPB_E_FORMAT, "%s/%s: a value of an unusable type", path, it->string);
        else if (!skip) {
            st = apply_opt(c, name, flag ? NULL : val);
            if (st) st = dpb_error_set(st, "%s/%s: %s", path, it->string, dpb_error_message());
        }
        free(val);
        if (st) break;
    }
    cJSON_Delete(doc);
    return st;
}

static void def_list(ilist *l, const int64_t *v, size_t n)
{
    if (l->set) return;
    memcpy(l->v, v, n * sizeof *v);
    l->n = n;
}

static void def_ll(long long *x, long long v)
{
    if (*x < 0) *x = v;
}

static dpb_status apply_defaults(study_cfg *c)
{
    bool s = c->synthetic;
    if (!c->models_set)
        for (int i = 0; i < 3; i++) {
            dpb_status st = add_model(c, s ? k_tiny_models[i] : k_ref_models[i]);
            if (st) return st;
        }
    static const int64_t pts_ref[] = {128, 512, 1024, 2048}, gts_ref[] = {64, 128, 256},
                         mem_ref[] = {2048, 8192, 16384, 32768}, en_ref[] = {2048}, conc_ref[] = {1, 2, 4, 8, 16};
    static const int64_t pts_cpu[] = {16, 64, 256}, gts_cpu[] = {8, 16, 32}, mem_cpu[] = {256, 1024, 2048},
                         en_cpu[] = {128}, conc_cpu[] = {1, 2, 4};
    if (s) {
        def_list(&c->pts, pts_cpu, 3);
        def_list(&c->gts, gts_cpu, 3);
        def_list(&c->mem_ctx, mem_cpu, 3);
        def_list(&c->en_ctx, en_cpu, 1);
        def_list(&c->conc, conc_cpu, 3);
    } else {
        def_list(&c->pts, pts_ref, 4);
        def_list(&c->gts, gts_ref, 3);
        def_list(&c->mem_ctx, mem_ref, 4);
        def_list(&c->en_ctx, en_ref, 1);
        def_list(&c->conc, conc_ref, 5);
    }
    def_ll(&c->nreq, s ? 3 : 10);
    def_ll(&c->warm, 1);
    def_ll(&c->mem_gen, s ? 8 : 64);
    def_ll(&c->en_gen, s ? 16 : 64);
    def_ll(&c->en_runs, s ? 3 : 5);
    def_ll(&c->ab_pt, s ? 64 : 512);
    def_ll(&c->ab_gt, s ? 8 : 64);
    def_ll(&c->ab_nreq, s ? 2 : 5);
    def_ll(&c->ab_warm, s ? 0 : 1);
    def_ll(&c->srv_nreq, s ? 8 : 50);
    def_ll(&c->srv_pt, s ? 32 : 512);
    def_ll(&c->srv_gt, s ? 16 : 128);
    def_ll(&c->eval_limit, 20);
    def_ll(&c->safety_limit, 20);
    def_ll(&c->seed, 1);
    if (c->idle_s < 0) c->idle_s = s ? 1 : 10;
    if (c->hz < 0) c->hz = 10;
    if (!c->ablate_tests && set_str(&c->ablate_tests, s ? "sampling,batch,experts,kv,window" : "all")) return DPB_E_NOMEM;
    if (!c->goodput && set_str(&c->goodput, "ttft:2000,tpot:100")) return DPB_E_NOMEM;
    if (!c->eval_tasks && set_str(&c->eval_tasks, "mmlu")) return DPB_E_NOMEM;
    if (!c->steps) c->steps = (1u << N_STEPS) - 1;
    if (!c->backend[0]) snprintf(c->backend, sizeof c->backend, "cpu");
    /* Each model's positions, to drop contexts it cannot hold. */
    for (size_t i = 0; i < c->nmodels; i++) {
        study_model *m = &c->models[i];
        dpb_model_config mc;
        dpb_status st;
        if (m->synthetic) {
            char preset[64];
            const char *p = m->spec + 6, *colon = strchr(p, ':');
            size_t n = colon ? (size_t)(colon - p) : strlen(p);
            if (n >= sizeof preset) return dpb_error_set(DPB_E_ARG, "--models: %s: preset name too long", m->name);
            memcpy(preset, p, n);
            preset[n] = 0;
            st = dpb_synth_preset_config(preset, 0, 0, &mc);
        } else {
            char *cp;
            if ((st = dpb_path_join(m->spec, "config.json", &cp))) return st;
            st = dpb_config_load(cp, &mc);
            free(cp);
        }
        if (st) return dpb_error_set(st, "--models: %s: %s", m->name, dpb_error_message());
        m->max_pos = mc.max_position_embeddings > 0 ? mc.max_position_embeddings : INT64_MAX;
        m->vocab = mc.vocab_size;
        m->tok[0] = 0;
        if (c->tokenizer && !strchr(c->tokenizer, '=')) snprintf(m->tok, sizeof m->tok, "%s", c->tokenizer);
    }
    if (c->tokenizer && strchr(c->tokenizer, '=')) {
        char *dup = strdup(c->tokenizer);
        if (!dup) return dpb_error_set(DPB_E_NOMEM, "study: out of memory");
        dpb_status st = DPB_OK;
        for (char *sv, *t = strtok_r(dup, ",", &sv); t && !st; t = strtok_r(NULL, ",", &sv)) {
            char *eq = strchr(t, '=');
            study_model *hit = NULL;
            if (eq) {
                *eq = 0;
                for (size_t i = 0; i < c->nmodels; i++)
                    if (!strcmp(c->models[i].name, t)) hit = &c->models[i];
            }
            if (!eq || !eq[1]) st = dpb_error_set(DPB_E_ARG, "--tokenizer: '%s' is not NAME=PATH", t);
            else if (!hit) st = dpb_error_set(DPB_E_ARG, "--tokenizer: no model named '%s' in --models", t);
            else snprintf(hit->tok, sizeof hit->tok, "%s", eq + 1);
        }
        free(dup);
        if (st) return st;
    }
    return DPB_OK;
}

/* ---- running steps -------------------------------------------------- */

typedef struct study_run {
    study_cfg *cfg;
    dpb_manifest *man;
    cJSON *steps;  /* the manifest's study.steps (owned by the manifest's tree after add) */
    cJSON *prev;   /* steps of earlier calls (resume), or NULL */
    char self[PATH_MAX];
    int failed;
    int ran;
    bool interrupted;
} study_run;

typedef struct argvec {
    char *a[96];
    int n;
    bool overflow;
} argvec;

static void av_add(argvec *v, const char *s)
{
    if (v->n >= (int)(sizeof v->a / sizeof v->a[0]) - 1 || !(v->a[v->n] = strdup(s))) {
        v->overflow = true;
        return;
    }
    v->a[++v->n] = NULL;
}

static void av_addf(argvec *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void av_addf(argvec *v, const char *fmt, ...)
{
    char buf[PATH_MAX + 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    av_add(v, buf);
}

static void av_list(argvec *v, const char *opt, const int64_t *x, size_t n)
{
    char buf[MAXL * 24];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += (size_t)snprintf(buf + k, sizeof buf - k, "%s%lld", i ? "," : "", (long long)x[i]);
    av_add(v, opt);
    av_add(v, buf);
}

static void av_free(argvec *v)
{
    for (int i = 0; i < v->n; i++) free(v->a[i]);
    v->n = 0;
}

/* The latest record of a model's step (records accumulate: one per run, in order). */
static cJSON *find_step(const cJSON *steps, const char *model, const char *step)
{
    cJSON *o, *last = NULL;
    cJSON_ArrayForEach(o, steps) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "model");
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "step");
        if (cJSON_IsString(s) && strcmp(s->valuestring, step) == 0 &&
            ((!model && cJSON_IsNull(m)) || (model && cJSON_IsString(m) && strcmp(m->valuestring, model) == 0)))
            last = o;
    }
    return last;
}

static const char *str_of(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* commands.sh: every step command recorded as run, in order. */
static dpb_status write_commands(study_run *r)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return dpb_error_set(DPB_E_NOMEM, "study: out of memory");
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) snprintf(cwd, sizeof cwd, ".");
    const char *line = str_of(dpb_manifest_json(r->man), "command_line");
    fprintf(f,
            "#!/bin/sh\n# The commands deploybench study ran, in order (study manifest: manifest.json).\n"
            "# Run from the folder the study ran in; DPB names the binary.\n# study: ");
    /* a comment line: a newline in an argument must not end it */
    for (const char *p = line ? line : "?"; *p; p++) fputc((unsigned char)*p < 0x20 ? '?' : *p, f);
    fputc('\n', f);
    char *qcwd = NULL;
    char *cw[1] = {cwd};
    if (dpb_shell_join(1, cw, &qcwd) == DPB_OK) fprintf(f, "cd %s || exit 1\n", qcwd);
    free(qcwd);
    fprintf(f, "DPB=${DPB:-deploybench}\nset -e\n");
    const cJSON *o;
    cJSON_ArrayForEach(o, r->steps) {
        const char *st = str_of(o, "status"), *cmd = str_of(o, "command");
        if (!cmd || !st || !strcmp(st, "skipped")) continue;
        const char *when = str_of(o, "start_utc");
        fprintf(f, "# %s %s: %s%s%s\n\"$DPB\" %s\n", str_of(o, "model") ? str_of(o, "model") : "(all models)",
                str_of(o, "step"), st, when ? ", started " : "", when ? when : "", cmd);
    }
    fclose(f);
    dpb_status s = dpb_file_write_text_in(r->cfg->out, "commands.sh", buf);
    free(buf);
    return s;
}

/* Moves an unfinished folder of a step without --resume aside. */
static dpb_status move_aside(const char *dir)
{
    if (!dpb_dir_exists(dir)) return DPB_OK;
    for (int i = 1; i < 1000; i++) {
        char to[PATH_MAX + 32];
        snprintf(to, sizeof to, "%s.incomplete-%d", dir, i);
        struct stat sb;
        if (stat(to, &sb) == 0) continue;
        if (rename(dir, to) != 0) return dpb_error_set(DPB_E_IO, "%s: cannot move aside: %s", dir, strerror(errno));
        fprintf(stderr, "study: %s did not finish before; moved to %s\n", dir, to);
        return DPB_OK;
    }
    return dpb_error_set(DPB_E_IO, "%s: too many incomplete copies", dir);
}

static bool step_manifest_complete(const char *dir)
{
    char *p;
    if (dpb_path_join(dir, "manifest.json", &p)) return false;
    cJSON *m = NULL;
    bool ok = dpb_json_load(p, 1 << 22, &m) == DPB_OK && str_of(m, "status") && !strcmp(str_of(m, "status"), "complete");
    cJSON_Delete(m);
    free(p);
    return ok;
}

static void iso_now(char *b, unsigned n) { dpb_time_iso8601(b, n); }

/* Records a run of a step (after any earlier records: commands.sh lists them all; the latest counts). */
static cJSON *record(study_run *r, const char *model, const char *step, const char *dir_rel)
{
    cJSON *o = cJSON_CreateObject();
    if (model) cJSON_AddStringToObject(o, "model", model);
    else cJSON_AddNullToObject(o, "model");
    cJSON_AddStringToObject(o, "step", step);
    if (dir_rel) cJSON_AddStringToObject(o, "dir", dir_rel);
    cJSON_AddItemToArray(r->steps, o);
    return o;
}

static void record_skip(study_run *r, const char *model, const char *step, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void record_skip(study_run *r, const char *model, const char *step, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (r->cfg->dry_run) {
        printf("# %s %s skipped: %s\n", model ? model : "", step, why);
        return;
    }
    cJSON *old = find_step(r->steps, model, step);
    if (old && str_of(old, "status") && strcmp(str_of(old, "status"), "skipped")) return; /* keep a real run */
    if (old) cJSON_DetachItemViaPointer(r->steps, old), cJSON_Delete(old);
    cJSON *o = record(r, model, step, NULL);
    cJSON_AddStringToObject(o, "status", "skipped");
    cJSON_AddStringToObject(o, "reason", why);
    fprintf(stderr, "study: %s %s skipped: %s\n", model ? model : "", step, why);
    dpb_manifest_write(r->man);
}

typedef int (*step_fn)(int argc, char **argv);

/* How a step continues after an earlier call: with its own --resume; by running again after its unfinished
 * folder is moved aside; or always again, overwriting (unify, ape, report: they derive from the rest). */
typedef enum { R_FLAG, R_ASIDE, R_ALWAYS } resume_mode;

/* Runs one step: v holds the argv (v.a[0] is the command name). */
static void run_step(study_run *r, const char *model, const char *step, const char *dir, resume_mode mode,
                     step_fn fn, argvec *v, const char *note)
{
    study_cfg *c = r->cfg;
    if (r->interrupted) return;
    if (v->overflow) {
        fprintf(stderr, "study: %s %s: too many arguments (a bug)\n", model ? model : "", step);
        r->failed++;
        return;
    }
    const char *rel = dir + strlen(c->out) + (dir[strlen(c->out)] == '/');
    const cJSON *old = find_step(r->steps, model, step);
    /* The step's command without --resume: a finished step is skipped only when it would run the same
     * command again (a grid split over calls runs each part, the step's own --resume keeping what is done). */
    char *key = NULL;
    if (dpb_shell_join(v->n, v->a, &key)) {
        r->failed++;
        return;
    }
    const char *old_key = old ? str_of(old, "command_key") : NULL;
    if (c->resume && mode != R_ALWAYS && old && str_of(old, "status") && !strcmp(str_of(old, "status"), "complete") &&
        old_key && !strcmp(old_key, key) && step_manifest_complete(dir)) {
        fprintf(stderr, "study: %s %s already complete (%s)\n", model ? model : "", step, rel);
        free(key);
        return;
    }
    if (c->resume && dpb_dir_exists(dir) && mode != R_ALWAYS) {
        if (mode == R_FLAG) av_add(v, "--resume");
        else if (!c->dry_run && move_aside(dir)) {
            fprintf(stderr, "study: %s\n", dpb_error_message());
            r->failed++;
            free(key);
            return;
        }
    }
    char *line = NULL;
    if (dpb_shell_join(v->n, v->a, &line)) {
        r->failed++;
        free(key);
        return;
    }
    if (c->dry_run) {
        printf("deploybench %s\n", line);
        free(line);
        free(key);
        return;
    }
    cJSON *o = record(r, model, step, rel);
    cJSON_AddStringToObject(o, "command", line);
    cJSON_AddStringToObject(o, "command_key", key);
    free(key);
    if (note && *note) cJSON_AddStringToObject(o, "note", note);
    char ts[40];
    iso_now(ts, sizeof ts);
    cJSON_AddStringToObject(o, "start_utc", ts);
    cJSON_AddStringToObject(o, "status", "running");
    dpb_manifest_write(r->man);
    write_commands(r);
    fprintf(stderr, "study: %s %s -> %s\n  deploybench %s\n", model ? model : "(all)", step, rel, line);
    fflush(stdout);
    uint64_t t0 = dpb_now_ns();
    int rc = fn(v->n, v->a);
    fflush(stdout);
    double el = (double)(dpb_now_ns() - t0) / 1e9;
    const char *status = rc == 0 ? "complete" : rc == 130 ? "interrupted" : "failed";
    cJSON_ReplaceItemInObject(o, "status", cJSON_CreateString(status));
    cJSON_AddNumberToObject(o, "exit_code", rc);
    cJSON_AddNumberToObject(o, "elapsed_s", el);
    if (rc) {
        cJSON_AddStringToObject(o, "message", dpb_error_message());
        fprintf(stderr, "study: %s %s %s (exit %d) after %.1f s\n", model ? model : "", step, status, rc, el);
    }
    if (rc == 130 || dpb_interrupted()) r->interrupted = true;
    else if (rc) r->failed++;
    r->ran++;
    dpb_manifest_write(r->man);
    write_commands(r);
    free(line);
}

/* Keeps the contexts a model can hold; says which were dropped in note. */
static size_t fit(const int64_t *in, size_t n, int64_t extra, int64_t max_pos, int64_t *out, char *note, size_t cap,
                  const char *what)
{
    size_t k = 0, dn = 0;
    char dropped[MAXL * 24] = "";
    for (size_t i = 0; i < n; i++) {
        if (in[i] + extra <= max_pos) out[k++] = in[i];
        else dn += (size_t)snprintf(dropped + dn, sizeof dropped - dn, "%s%lld", dn ? "," : "", (long long)in[i]);
    }
    if (dn)
        snprintf(note, cap, "%s %s dropped: with %lld generated tokens beyond the model's %lld positions", what, dropped,
                 (long long)extra, (long long)max_pos);
    return k;
}

static void common_args(study_run *r, argvec *v, const study_model *m, const char *dir)
{
    av_add(v, "--model");
    av_add(v, m->spec);
    av_add(v, "--out");
    av_add(v, dir);
    av_add(v, "--backend");
    av_add(v, r->cfg->backend);
    if (r->cfg->threads > 0) {
        av_add(v, "--threads");
        av_addf(v, "%lld", r->cfg->threads);
    }
    if (m->tok[0]) {
        av_add(v, "--tokenizer");
        av_add(v, m->tok);
    }
}

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = 0};
    socklen_t l = sizeof a;
    int port = -1;
    if (bind(s, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(s, (struct sockaddr *)&a, &l) == 0)
        port = ntohs(a.sin_port);
    close(s);
    return port;
}

static void model_steps(study_run *r, const study_model *m)
{
    study_cfg *c = r->cfg;
    char dir[PATH_MAX + 128], note[512];
    int64_t tmp[MAXL];
    int64_t maxg = 0;
    for (size_t i = 0; i < c->gts.n; i++) maxg = c->gts.v[i] > maxg ? c->gts.v[i] : maxg;
#define DIR(step) snprintf(dir, sizeof dir, "%s/%s/%s", c->out, m->name, step)
    if (c->steps & S_LATENCY) {
        argvec v = {0};
        note[0] = 0;
        size_t n = fit(c->pts.v, c->pts.n, maxg, m->max_pos, tmp, note, sizeof note, "prompt lengths");
        DIR("latency");
        if (!n) record_skip(r, m->name, "latency", "%s", note);
        else {
            av_add(&v, "latency");
            common_args(r, &v, m, dir);
            av_list(&v, "--prompt-tokens", tmp, n);
            av_list(&v, "--gen-tokens", c->gts.v, c->gts.n);
            av_add(&v, "--num-requests");
            av_addf(&v, "%lld", c->nreq);
            av_add(&v, "--warmup");
            av_addf(&v, "%lld", c->warm);
            av_add(&v, "--seed");
            av_addf(&v, "%lld", c->seed);
            run_step(r, m->name, "latency", dir, R_FLAG, dpb_cmd_latency, &v, note);
        }
        av_free(&v);
    }
    if (c->steps & S_MEMORY) {
        argvec v = {0};
        note[0] = 0;
        size_t n = fit(c->mem_ctx.v, c->mem_ctx.n, c->mem_gen, m->max_pos, tmp, note, sizeof note, "contexts");
        DIR("memory");
        if (!n) record_skip(r, m->name, "memory", "%s", note);
        else {
            av_add(&v, "memory");
            common_args(r, &v, m, dir);
            av_list(&v, "--contexts", tmp, n);
            av_add(&v, "--gen-tokens");
            av_addf(&v, "%lld", c->mem_gen);
            av_add(&v, "--seed");
            av_addf(&v, "%lld", c->seed);
            run_step(r, m->name, "memory", dir, R_FLAG, dpb_cmd_memory, &v, note);
        }
        av_free(&v);
    }
    if (c->steps & S_ENERGY) {
        argvec v = {0};
        note[0] = 0;
        size_t n = fit(c->en_ctx.v, c->en_ctx.n, c->en_gen, m->max_pos, tmp, note, sizeof note, "contexts");
        DIR("energy");
        if (!n) record_skip(r, m->name, "energy", "%s", note);
        else {
            av_add(&v, "energy");
            common_args(r, &v, m, dir);
            av_list(&v, "--contexts", tmp, n);
            av_add(&v, "--gen-tokens");
            av_addf(&v, "%lld", c->en_gen);
            av_add(&v, "--num-runs");
            av_addf(&v, "%lld", c->en_runs);
            av_add(&v, "--idle-seconds");
            av_addf(&v, "%g", c->idle_s);
            av_add(&v, "--power-poll-hz");
            av_addf(&v, "%g", c->hz);
            av_add(&v, "--seed");
            av_addf(&v, "%lld", c->seed);
            run_step(r, m->name, "energy", dir, R_FLAG, dpb_cmd_energy, &v, note);
        }
        av_free(&v);
    }
    if (c->steps & S_ABLATE) {
        /* One step per test (MODEL/ablate-TEST), so a study can be split by test and resumed. */
        char *dup = strdup(strcmp(c->ablate_tests, "all") == 0 ? DPB_ABLATE_TESTS : c->ablate_tests);
        for (char *sv, *t = dup ? strtok_r(dup, ",", &sv) : NULL; t; t = strtok_r(NULL, ",", &sv)) {
            argvec v = {0};
            char step[64];
            snprintf(step, sizeof step, "ablate-%s", t);
            DIR(step);
            if (c->ab_pt + c->ab_gt > m->max_pos)
                record_skip(r, m->name, step, "the ablation cell %lld + %lld tokens is beyond the model's %lld positions",
                            c->ab_pt, c->ab_gt, (long long)m->max_pos);
            else {
                av_add(&v, "ablate");
                common_args(r, &v, m, dir);
                av_add(&v, "--tests");
                av_add(&v, t);
                av_add(&v, "--prompt-tokens");
                av_addf(&v, "%lld", c->ab_pt);
                av_add(&v, "--gen-tokens");
                av_addf(&v, "%lld", c->ab_gt);
                av_add(&v, "--num-requests");
                av_addf(&v, "%lld", c->ab_nreq);
                av_add(&v, "--warmup");
                av_addf(&v, "%lld", c->ab_warm);
                av_add(&v, "--seed");
                av_addf(&v, "%lld", c->seed);
                run_step(r, m->name, step, dir, R_ASIDE, dpb_cmd_ablate, &v, NULL);
            }
            av_free(&v);
        }
        free(dup);
    }
    if (c->steps & S_EVAL) {
        if (!m->tok[0] && m->synthetic)
            record_skip(r, m->name, "eval", "no --tokenizer: a synth: model has none, and the text steps need one");
        else if (!c->eval_data) record_skip(r, m->name, "eval", "no --eval-data: the tasks' data folder was not given");
        else {
            char *dup = strdup(c->eval_tasks);
            for (char *sv, *t = dup ? strtok_r(dup, ",", &sv) : NULL; t; t = strtok_r(NULL, ",", &sv)) {
                argvec v = {0};
                char step[64];
                snprintf(step, sizeof step, "eval-%s", t);
                DIR(step);
                av_add(&v, "eval");
                common_args(r, &v, m, dir);
                av_add(&v, "--task");
                av_add(&v, t);
                av_add(&v, "--data");
                av_add(&v, c->eval_data);
                av_add(&v, "--limit");
            av_addf(&v, "%lld", c->eval_limit);
                run_step(r, m->name, step, dir, R_FLAG, dpb_cmd_eval, &v, NULL);
                av_free(&v);
            }
            free(dup);
        }
    }
    if (c->steps & S_SAFETY) {
        if (!m->tok[0] && m->synthetic)
            record_skip(r, m->name, "safety", "no --tokenizer: a synth: model has none, and the text steps need one");
        else {
            argvec v = {0};
            DIR("safety");
            av_add(&v, "safety");
            common_args(r, &v, m, dir);
            av_add(&v, "--sets");
            av_add(&v, "builtin");
            av_add(&v, "--limit");
            av_addf(&v, "%lld", c->safety_limit);
            av_add(&v, "--max-new-tokens");
            av_add(&v, "32");
            run_step(r, m->name, "safety", dir, R_ASIDE, dpb_cmd_safety, &v, NULL);
            av_free(&v);
        }
    }
    if (c->steps & S_SERVE) {
        DIR("serve");
        int64_t maxc = 1;
        for (size_t i = 0; i < c->conc.n; i++) maxc = c->conc.v[i] > maxc ? c->conc.v[i] : maxc;
        int64_t len = c->srv_pt + c->srv_gt + 16;
        int port = free_port();
        /* load's random prompt ids are in [1000, 21000) unless told otherwise: a smaller vocabulary gets
         * ids from [1, vocab) (completions take token ids, so the prompt length stays exact) */
        bool small_vocab = m->vocab < 21000;
        if (small_vocab && m->vocab < 2)
            record_skip(r, m->name, "serve", "a vocabulary of %lld tokens cannot make random prompts", (long long)m->vocab);
        else if (len > m->max_pos)
            record_skip(r, m->name, "serve", "%lld + %lld tokens is beyond the model's %lld positions", c->srv_pt,
                        c->srv_gt, (long long)m->max_pos);
        else if (port <= 0) record_skip(r, m->name, "serve", "no free loopback port: %s", strerror(errno));
        else {
            argvec sv = {0}, v = {0};
            av_add(&sv, r->self);
            av_add(&sv, "serve");
            av_add(&sv, "--model");
            av_add(&sv, m->spec);
            av_add(&sv, "--backend");
            av_add(&sv, c->backend);
            av_add(&sv, "--host");
            av_add(&sv, "127.0.0.1");
            av_add(&sv, "--port");
            av_addf(&sv, "%d", port);
            av_add(&sv, "--max-batch");
            av_addf(&sv, "%lld", (long long)maxc);
            av_add(&sv, "--max-model-len");
            av_addf(&sv, "%lld", (long long)len);
            if (c->threads > 0) {
                av_add(&sv, "--threads-engine");
                av_addf(&sv, "%lld", c->threads);
            }
            if (m->tok[0]) {
                av_add(&sv, "--tokenizer");
                av_add(&sv, m->tok);
            }
            char *launch = NULL;
            if (!sv.overflow && dpb_shell_join(sv.n, sv.a, &launch) == DPB_OK) {
                av_add(&v, "load");
                av_add(&v, "--launch");
                av_add(&v, launch);
                av_add(&v, "--endpoint");
                av_addf(&v, "http://127.0.0.1:%d", port);
                av_add(&v, "--model");
                av_add(&v, m->spec);
                if (small_vocab) {
                    av_add(&v, "--prompt-ids");
                    av_addf(&v, "1:%lld", (long long)m->vocab);
                }
                av_list(&v, "--concurrency", c->conc.v, c->conc.n);
                av_add(&v, "--num-requests");
            av_addf(&v, "%lld", c->srv_nreq);
                av_add(&v, "--prompt-tokens");
            av_addf(&v, "%lld", c->srv_pt);
                av_add(&v, "--gen-tokens");
            av_addf(&v, "%lld", c->srv_gt);
                av_add(&v, "--goodput");
                av_add(&v, c->goodput);
                av_add(&v, "--seed");
            av_addf(&v, "%lld", c->seed);
                av_add(&v, "--out");
                av_add(&v, dir);
                run_step(r, m->name, "serve", dir, R_ASIDE, dpb_cmd_load, &v, NULL);
            } else r->failed++;
            free(launch);
            av_free(&sv);
            av_free(&v);
        }
    }
#undef DIR
}

/* unify / ape over every finished latency, memory and energy folder of the study. */
static void cross_step(study_run *r, const char *step, step_fn fn)
{
    study_cfg *c = r->cfg;
    argvec v = {0};
    av_add(&v, step);
    int n = 0;
    const cJSON *o;
    cJSON_ArrayForEach(o, r->steps) {
        const char *s = str_of(o, "step"), *st = str_of(o, "status"), *d = str_of(o, "dir");
        if (!s || !st || !d || strcmp(st, "complete")) continue;
        if (strcmp(s, "latency") && strcmp(s, "memory") && strcmp(s, "energy")) continue;
        if (find_step(r->steps, str_of(o, "model"), s) != o) continue; /* an earlier run of the same step */
        av_add(&v, "--results");
        av_addf(&v, "%s/%s", c->out, d);
        n++;
    }
    char dir[PATH_MAX + 32];
    snprintf(dir, sizeof dir, "%s/%s", c->out, !strcmp(step, "unify") ? "unified" : "ape");
    av_add(&v, "--out");
    av_add(&v, dir);
    if (!n) record_skip(r, NULL, step, "no finished latency, memory or energy step in %s", c->out);
    else {
        /* Always recomputed: the set of folders may have grown. */
        run_step(r, NULL, step, dir, R_ALWAYS, fn, &v, NULL);
    }
    av_free(&v);
}

static int report_step_fn(int argc, char **argv)
{
    return dpb_cmd_report(argc, argv);
}

int dpb_cmd_study(int argc, char **argv)
{
    study_cfg c;
    memset(&c, 0, sizeof c);
    c.nreq = c.warm = c.mem_gen = c.en_gen = c.en_runs = c.ab_pt = c.ab_gt = c.ab_nreq = c.ab_warm = c.srv_nreq = c.srv_pt =
        c.srv_gt = c.eval_limit = c.safety_limit = c.threads = c.seed = -1;
    c.idle_s = c.hz = -1;
    dpb_status st = DPB_OK;
    /* --config first, so that the command line overrides it. */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strncmp(argv[i], "--config", 8) && (argv[i][8] == 0 || argv[i][8] == '=')) {
            const char *p = argv[i][8] ? argv[i] + 9 : (i + 1 < argc ? argv[i + 1] : NULL);
            if (!p) return dpb_cli_usage_error("study", "--config needs a value");
            if ((st = apply_config(&c, p))) {
                cfg_free(&c);
                return dpb_cli_usage_error("study", "--config: %s", dpb_error_message());
            }
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || !a[2]) {
            cfg_free(&c);
            return dpb_cli_usage_error("study", "unexpected argument '%s'", a);
        }
        char name[64];
        const char *eq = strchr(a, '=');
        size_t nl = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (nl >= sizeof name) nl = sizeof name - 1;
        memcpy(name, a + 2, nl);
        name[nl] = 0;
        const char *val = eq ? eq + 1 : NULL;
        bool flag = !strcmp(name, "synthetic") || !strcmp(name, "resume") || !strcmp(name, "dry-run");
        if (!flag && !val) {
            if (i + 1 >= argc) {
                cfg_free(&c);
                return dpb_cli_usage_error("study", "--%s needs a value", name);
            }
            val = argv[++i];
        }
        if (!strcmp(name, "config")) continue;
        if ((st = apply_opt(&c, name, val))) {
            cfg_free(&c);
            return dpb_cli_usage_error("study", "%s", dpb_error_message());
        }
    }
    if (!c.out) {
        cfg_free(&c);
        return dpb_cli_usage_error("study", "--out DIR is required");
    }
    if ((st = apply_defaults(&c))) {
        cfg_free(&c);
        return dpb_cli_usage_error("study", "%s", dpb_error_message());
    }

    study_run r = {.cfg = &c};
    ssize_t sl = readlink("/proc/self/exe", r.self, sizeof r.self - 1);
    if (sl <= 0) snprintf(r.self, sizeof r.self, "deploybench");
    else r.self[sl] = 0;

    if (c.dry_run) {
        r.steps = cJSON_CreateArray();
        for (size_t i = 0; i < c.nmodels; i++) model_steps(&r, &c.models[i]);
        if (c.steps & S_UNIFY) printf("deploybench unify --results <finished latency/memory/energy folders> --out %s/unified\n", c.out);
        if (c.steps & S_APE) printf("deploybench ape --results <the same folders> --out %s/ape\n", c.out);
        if (c.steps & S_REPORT) printf("deploybench report --results %s\n", c.out);
        cJSON_Delete(r.steps);
        cfg_free(&c);
        return 0;
    }

    /* Earlier calls' step records (resume). */
    cJSON *prev_steps = NULL;
    if (c.resume) {
        char *mp;
        cJSON *pm = NULL;
        if (dpb_path_join(c.out, "manifest.json", &mp) == DPB_OK) {
            if (dpb_file_exists(mp) && dpb_json_load(mp, 1 << 24, &pm) == DPB_OK) {
                const cJSON *s = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(pm, "study"), "steps");
                if (cJSON_IsArray(s)) prev_steps = cJSON_Duplicate(s, 1);
            }
            free(mp);
        }
        cJSON_Delete(pm);
    }
    st = dpb_manifest_begin(c.out, argc, argv, c.resume, NULL, &r.man);
    if (st) {
        cJSON_Delete(prev_steps);
        cfg_free(&c);
        return dpb_cli_fail("study", st);
    }
    cJSON *study = cJSON_CreateObject();
    cJSON_AddStringToObject(study, "schema", "deploybench.study/1");
    cJSON_AddStringToObject(study, "backend", c.backend);
    cJSON_AddBoolToObject(study, "synthetic_cpu_grid", c.synthetic);
    cJSON *models = cJSON_AddArrayToObject(study, "models");
    /* This call's models, when it runs a per-model step (a call of unify/ape/report alone adds none). */
    const unsigned per_model = S_LATENCY | S_MEMORY | S_ENERGY | S_ABLATE | S_EVAL | S_SAFETY | S_SERVE;
    for (size_t i = 0; i < c.nmodels && (c.steps & per_model); i++) {
        const study_model *m = &c.models[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", m->name);
        cJSON_AddStringToObject(o, "spec", m->spec);
        cJSON_AddBoolToObject(o, "synthetic", m->synthetic);
        if (m->stands_for[0]) cJSON_AddStringToObject(o, "stands_for", m->stands_for);
        cJSON_AddNumberToObject(o, "max_position_embeddings", (double)m->max_pos);
        cJSON_AddItemToArray(models, o);
    }
    /* Previous calls' models (from their step records) that this call does not list. */
    if (prev_steps) {
        const cJSON *o;
        cJSON_ArrayForEach(o, prev_steps) {
            const cJSON *pmod = cJSON_GetObjectItemCaseSensitive(o, "model_info");
            const char *nm = str_of(o, "model");
            if (!nm || !cJSON_IsObject(pmod)) continue;
            bool have = false;
            const cJSON *e;
            cJSON_ArrayForEach(e, models) have |= str_of(e, "name") && !strcmp(str_of(e, "name"), nm);
            if (!have) cJSON_AddItemToArray(models, cJSON_Duplicate(pmod, 1));
        }
    }
    {
        cJSON *grid = cJSON_AddObjectToObject(study, "grid");
        cJSON *a = cJSON_AddArrayToObject(grid, "prompt_tokens");
        for (size_t i = 0; i < c.pts.n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber((double)c.pts.v[i]));
        a = cJSON_AddArrayToObject(grid, "gen_tokens");
        for (size_t i = 0; i < c.gts.n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber((double)c.gts.v[i]));
        cJSON_AddNumberToObject(grid, "num_requests", (double)c.nreq);
        a = cJSON_AddArrayToObject(grid, "memory_contexts");
        for (size_t i = 0; i < c.mem_ctx.n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber((double)c.mem_ctx.v[i]));
        a = cJSON_AddArrayToObject(grid, "energy_contexts");
        for (size_t i = 0; i < c.en_ctx.n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber((double)c.en_ctx.v[i]));
        cJSON_AddNumberToObject(grid, "energy_runs", (double)c.en_runs);
        a = cJSON_AddArrayToObject(grid, "concurrency");
        for (size_t i = 0; i < c.conc.n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber((double)c.conc.v[i]));
        cJSON_AddStringToObject(grid, "goodput", c.goodput);
    }
    r.steps = cJSON_AddArrayToObject(study, "steps");
    if (prev_steps) {
        cJSON *o;
        while ((o = prev_steps->child)) {
            cJSON_DetachItemViaPointer(prev_steps, o);
            const char *s = str_of(o, "status");
            if (s && !strcmp(s, "running")) cJSON_ReplaceItemInObject(o, "status", cJSON_CreateString("died"));
            cJSON_AddItemToArray(r.steps, o);
        }
        cJSON_Delete(prev_steps);
    }
    dpb_manifest_add(r.man, "study", study);
    dpb_manifest_write(r.man);

    for (size_t i = 0; i < c.nmodels && !r.interrupted && (c.steps & per_model); i++) {
        model_steps(&r, &c.models[i]);
        /* Each step record carries its model's description, for later calls and the report. */
        cJSON *o;
        cJSON_ArrayForEach(o, r.steps) {
            const char *nm = str_of(o, "model");
            if (!nm || strcmp(nm, c.models[i].name)) continue;
            cJSON *mi = cJSON_Duplicate(cJSON_GetArrayItem(models, (int)i), 1);
            if (cJSON_GetObjectItemCaseSensitive(o, "model_info")) cJSON_ReplaceItemInObject(o, "model_info", mi);
            else cJSON_AddItemToObject(o, "model_info", mi);
        }
        dpb_manifest_write(r.man);
    }
    if (!r.interrupted && (c.steps & S_UNIFY)) cross_step(&r, "unify", dpb_cmd_unify);
    if (!r.interrupted && (c.steps & S_APE)) cross_step(&r, "ape", dpb_cmd_ape);
    if (!r.interrupted && (c.steps & S_REPORT)) {
        argvec v = {0};
        av_add(&v, "report");
        av_add(&v, "--results");
        av_add(&v, c.out);
        run_step(&r, NULL, "report", c.out, R_ALWAYS, report_step_fn, &v, NULL);
        av_free(&v);
    }
    write_commands(&r);
    st = r.interrupted ? dpb_error_set(DPB_E_INTERRUPTED, "study interrupted")
         : r.failed    ? dpb_error_set(DPB_E_INTERNAL, "%d step(s) failed (manifest.json lists them)", r.failed)
                       : DPB_OK;
    dpb_manifest_end_with(r.man, st);
    dpb_manifest_free(r.man);
    if (!st) printf("study: %d step(s) ran; results in %s (report.html, summary.md, paper/, commands.sh)\n", r.ran, c.out);
    char outcopy[PATH_MAX];
    snprintf(outcopy, sizeof outcopy, "%s", c.out);
    cfg_free(&c);
    if (st == DPB_E_INTERRUPTED) {
        fprintf(stderr, "deploybench study: interrupted; finished steps are kept in %s (--resume continues)\n", outcopy);
        return dpb_status_exit_code(st);
    }
    if (st) {
        fprintf(stderr, "deploybench study: %s\n", dpb_error_message());
        return 1;
    }
    return 0;
}
