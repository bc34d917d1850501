/* deploybench eval: accuracy on MMLU, GSM8K (+CoT), BBH and HumanEval,
 * defined as lm-evaluation-harness defines them (docs/EVAL.md). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "bench/manifest.h"
#include "bench/results.h"
#include "cli/cli.h"
#include "core/file.h"
#include "core/json.h"
#include "core/jsonl.h"
#include "core/progress.h"
#include "core/sha256.h"
#include "core/signal.h"
#include "core/timeutil.h"
#include "engine/engine.h"
#include "eval/eval.h"
#include "eval/lm.h"
#include "eval/remote.h"
#include "eval/sandbox.h"
#include "format/checkpoint.h"
#include "tokenizer/tokenizer.h"

typedef enum { T_MMLU, T_GSM8K, T_GSM8K_COT, T_BBH, T_HUMANEVAL } task_kind;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: deploybench eval --task mmlu|gsm8k|gsm8k_cot|bbh|humaneval --data DIR --model M --out DIR [options]\n"
            "       deploybench eval --task T --data DIR --endpoint URL --model NAME [--chat] --out DIR [options]\n"
            "       deploybench eval --task mmlu --data DIR --tokenizer PATH --dry-run --out DIR\n"
            "       deploybench eval --task T --data DIR --score-only --predictions FILE.jsonl --out DIR\n"
            "       deploybench eval --task humaneval --data DIR --canonical --out DIR\n\n"
            "Accuracy as lm-evaluation-harness defines it (docs/EVAL.md).  Nothing is downloaded.\n\n"
            "  --task T            mmlu (5-shot loglikelihood, acc), gsm8k (5-shot, strict-match and flexible-extract),\n"
            "                      gsm8k_cot (8-shot CoT), bbh (3-shot CoT, exact match), humaneval (pass@1, greedy)\n"
            "  --data DIR          the task's folder (../shared/data/mmlu) or its parent (../shared/data)\n"
            "  --model M           checkpoint folder or synth:PRESET (in-process engine)\n"
            "  --tokenizer PATH    tokenizer for a synthetic model or a folder without one\n"
            "  --out DIR           writes samples.jsonl (one line per item), summary.json, run.json and\n"
            "                      manifest.json (command line, commit, host, GPU, start and end times)\n"
            "  --resume            continue a run in --out: items already in samples.jsonl are skipped\n"
            "  --limit N           the first N items (after --subset) (default: all)\n"
            "  --subset NAME       one MMLU subject or one BBH task\n"
            "  --num-fewshot K     exemplars (default: mmlu 5, gsm8k 5, gsm8k_cot 8, bbh 3, humaneval 0)\n"
            "  --chat-template T   wrap each prompt as one user message: none (default), harmony, qwen3, chatml\n"
            "  --batch N           questions per forward step / sequences per generation (default 8)\n"
            "  --max-new-tokens N  generation cap (default: bbh 1024, others 256, as lm-eval)\n"
            "  --max-context N     engine context in tokens (default min(model's, 4096)); longer prompts keep their end\n"
            "  --backend B         cpu (default), ref or cuda;  --threads N: CPU threads (default all)\n"
            "  --prefill-chunk N   rows per engine forward pass (default the engine's, 256); larger is faster on a GPU\n"
            "  --exhaustive        MMLU: run every choice on its own instead of sharing the question's prefix\n"
            "  --score-only        score --predictions FILE.jsonl made elsewhere: {doc_id, output} lines,\n"
            "                      HumanEval {task_id, completion}, MMLU {doc_id, loglikelihoods:[4]}\n"
            "  --canonical         humaneval: score the canonical solutions (checks the sandbox: expect 164/164)\n"
            "  --endpoint URL      an OpenAI-compatible server instead of the in-process engine: http://host:port,\n"
            "                      .../v1 or .../v1/completions (lm-eval's local-completions requests); --model is\n"
            "                      the served model name; --batch N requests in flight; OPENAI_API_KEY is sent if set\n"
            "  --chat              with --endpoint: generate through /v1/chat/completions (prompt as one user message);\n"
            "                      generative tasks only: chat endpoints cannot give loglikelihoods\n"
            "  --fewshot-seed N    gsm8k: seed of lm-eval's few-shot sampler (default 1234, lm-eval's); mmlu takes\n"
            "                      the first K dev examples (first_n), gsm8k_cot and bbh fixed exemplars\n"
            "  --dry-run           mmlu: tokenize every prompt and count the forward tokens with and without\n"
            "                      reusing each subject's shared few-shot prefix (writes dry_run.json; no model)\n");
}

typedef struct run {
    task_kind kind;
    const char *task, *data, *model, *out, *subset, *tpl_name, *predictions;
    long long limit, fewshot, batch, max_new, max_ctx, threads, fewshot_seed, prefill_chunk;
    int exhaustive, canonical, score_only, resume, chat, dry_run;
    const char *endpoint;
    dpb_eval_remote remote;
    dpb_eval_remote_stats rstats;
    size_t *shots; /* gsm8k: lm-eval's sampled exemplars, fewshot per item */
    char dir[4096];
    dpb_eval_set items, pool;
    char **bbh_tasks, **bbh_desc, **bbh_shots;
    size_t n_bbh;
    dpb_chat_template tpl;
    unsigned tok_flags;
    dpb_tokenizer *tok;
    bool *done;
    dpb_jsonlog *log;
    dpb_sandbox_opts sb;
} run;

/* --data: the folder itself, or its parent holding <sub>. */
static dpb_status resolve_dir(run *r, const char *probe, const char *sub)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", r->data, probe);
    if (dpb_file_exists(p) || dpb_dir_exists(p)) { snprintf(r->dir, sizeof r->dir, "%s", r->data); return DPB_OK; }
    snprintf(p, sizeof p, "%s/%s/%s", r->data, sub, probe);
    if (dpb_file_exists(p) || dpb_dir_exists(p)) { snprintf(r->dir, sizeof r->dir, "%s/%s", r->data, sub); return DPB_OK; }
    return dpb_error_set(DPB_E_ARG, "--data %s: neither it nor %s/%s holds %s", r->data, r->data, sub, probe);
}

static dpb_status load_data(run *r)
{
    dpb_status st;
    char p[4200];
    switch (r->kind) {
    case T_MMLU:
        if ((st = resolve_dir(r, "test", "mmlu"))) return st;
        snprintf(p, sizeof p, "%s/test", r->dir);
        if ((st = dpb_eval_mmlu_load_dir(p, "test", r->subset, &r->items))) return st;
        snprintf(p, sizeof p, "%s/dev", r->dir);
        if (r->fewshot > 0 && (st = dpb_eval_mmlu_load_dir(p, "dev", r->subset, &r->pool))) return st;
        break;
    case T_GSM8K:
    case T_GSM8K_COT:
        if ((st = resolve_dir(r, "test.jsonl", "gsm8k"))) return st;
        snprintf(p, sizeof p, "%s/test.jsonl", r->dir);
        if ((st = dpb_eval_gsm8k_load(p, &r->items))) return st;
        snprintf(p, sizeof p, "%s/train.jsonl", r->dir);
        if (r->kind == T_GSM8K && r->fewshot > 0 && (st = dpb_eval_gsm8k_load(p, &r->pool))) return st;
        break;
    case T_BBH: {
        if ((st = resolve_dir(r, "cot-prompts", "bbh"))) return st;
        snprintf(p, sizeof p, "%s/bbh", r->dir);
        char **names;
        size_t n;
        if ((st = dpb_eval_bbh_tasks(p, &names, &n))) return st;
        r->bbh_tasks = names;
        r->n_bbh = n;
        r->bbh_desc = calloc(n ? n : 1, sizeof *r->bbh_desc);
        r->bbh_shots = calloc(n ? n : 1, sizeof *r->bbh_shots);
        if (!r->bbh_desc || !r->bbh_shots) return dpb_error_set(DPB_E_NOMEM, "out of memory");
        size_t used = 0;
        for (size_t i = 0; i < n; i++) {
            if (r->subset && strcmp(r->subset, names[i]) != 0) continue;
            used++;
            char *text;
            size_t len;
            snprintf(p, sizeof p, "%s/bbh/%s.json", r->dir, names[i]);
            if ((st = dpb_file_read(p, DPB_EVAL_MAX_FILE, &text, &len))) return st;
            st = dpb_eval_bbh_parse(text, len, names[i], p, &r->items);
            free(text);
            if (st) return st;
            snprintf(p, sizeof p, "%s/cot-prompts/%s.txt", r->dir, names[i]);
            if ((st = dpb_file_read(p, DPB_EVAL_MAX_FILE, &text, &len))) return st;
            st = dpb_eval_bbh_cot_parse(text, len, p, &r->bbh_desc[i], &r->bbh_shots[i]);
            free(text);
            if (st) return st;
        }
        if (!used) return dpb_error_set(DPB_E_ARG, "--subset %s: no such BBH task in %s/bbh", r->subset, r->dir);
        break;
    }
    case T_HUMANEVAL:
        if ((st = resolve_dir(r, "HumanEval.jsonl.gz", "humaneval"))) return st;
        snprintf(p, sizeof p, "%s/HumanEval.jsonl.gz", r->dir);
        if ((st = dpb_eval_humaneval_load(p, &r->items))) return st;
        break;
    }
    return DPB_OK;
}

static const char *bbh_field(run *r, const char *task, int which)
{
    for (size_t i = 0; i < r->n_bbh; i++)
        if (strcmp(r->bbh_tasks[i], task) == 0) return which ? r->bbh_shots[i] : r->bbh_desc[i];
    return NULL;
}

/* The prompt text the model sees (chat template applied). */
static dpb_status build_prompt(run *r, const dpb_eval_item *it, char **out)
{
    char *p = NULL;
    dpb_status st = DPB_OK;
    switch (r->kind) {
    case T_MMLU: st = dpb_eval_mmlu_fewshot(it, &r->pool, (int)r->fewshot, &p); break;
    case T_GSM8K:
        st = dpb_eval_gsm8k_prompt(it, &r->pool, r->shots ? r->shots + (size_t)(it - r->items.items) * (size_t)r->fewshot : NULL,
                                   (int)r->fewshot, &p);
        break;
    case T_GSM8K_COT: st = dpb_eval_gsm8k_cot_prompt(it, (int)r->fewshot, &p); break;
    case T_BBH:
        st = dpb_eval_bbh_prompt(it, bbh_field(r, it->subset, 0), bbh_field(r, it->subset, 1), (int)r->fewshot, &p);
        break;
    case T_HUMANEVAL: p = strdup(it->question); if (!p) st = dpb_error_set(DPB_E_NOMEM, "out of memory"); break;
    }
    if (st) return st;
    if (r->tpl != DPB_CHAT_NONE) {
        dpb_chat_options co;
        dpb_chat_options_default(&co);
        co.enable_thinking = false;
        co.date = "2025-01-01"; /* fixed, so prompts (and their hashes) do not change with the day */
        dpb_chat_message m = {"user", p};
        char *q;
        size_t ql;
        st = dpb_chat_render(r->tpl, &co, &m, 1, &q, &ql);
        free(p);
        if (st) return st;
        p = q;
    }
    *out = p;
    return DPB_OK;
}

static void add_common(cJSON *o, run *r, size_t i, const char *prompt)
{
    const dpb_eval_item *it = &r->items.items[i];
    cJSON_AddNumberToObject(o, "doc_id", (double)i);
    cJSON_AddStringToObject(o, "task", r->task);
    if (it->subset) cJSON_AddStringToObject(o, "subset", it->subset);
    if (it->task_id) cJSON_AddStringToObject(o, "task_id", it->task_id);
    if (prompt) {
        char hex[65];
        dpb_sha256_hex(prompt, strlen(prompt), hex);
        cJSON_AddStringToObject(o, "prompt_sha256", hex);
    }
}

/* Scores one generated output and appends its line. */
static dpb_status score_generation(run *r, size_t i, const char *prompt, const char *output)
{
    const dpb_eval_item *it = &r->items.items[i];
    cJSON *o = cJSON_CreateObject();
    if (!o) return dpb_error_set(DPB_E_NOMEM, "out of memory");
    add_common(o, r, i, prompt);
    cJSON_AddStringToObject(o, "output", output);
    dpb_status st = DPB_OK;
    if (r->kind == T_GSM8K || r->kind == T_GSM8K_COT) {
        char *s = NULL, *f = NULL;
        bool ms = false, mf = false;
        st = r->kind == T_GSM8K ? dpb_eval_gsm8k_strict(output, &s) : dpb_eval_gsm8k_cot_strict(output, &s);
        if (!st) st = dpb_eval_gsm8k_flexible(output, &f);
        const char *tgt = it->target;
        if (!st && r->kind == T_GSM8K_COT) { /* doc_to_target: answer.split('####')[-1].strip() */
            const char *h = strstr(tgt, "####");
            while (h && strstr(h + 4, "####")) h = strstr(h + 4, "####");
            if (h) tgt = h + 4;
            while (*tgt == ' ') tgt++;
        }
        if (!st) st = dpb_eval_gsm8k_match(s, tgt, &ms);
        if (!st) st = dpb_eval_gsm8k_match(f, tgt, &mf);
        if (!st) {
            cJSON *x = cJSON_AddObjectToObject(o, "extracted");
            cJSON_AddStringToObject(x, "strict-match", s);
            cJSON_AddStringToObject(x, "flexible-extract", f);
            const char *h = strstr(it->target, "#### ");
            cJSON_AddStringToObject(o, "target", h ? h + 5 : it->target);
            cJSON *c = cJSON_AddObjectToObject(o, "correct");
            cJSON_AddBoolToObject(c, "strict-match", ms);
            cJSON_AddBoolToObject(c, "flexible-extract", mf);
        }
        free(s);
        free(f);
    } else if (r->kind == T_BBH) {
        char *x = NULL;
        if (!(st = dpb_eval_bbh_extract(output, &x))) {
            cJSON_AddStringToObject(o, "extracted", x);
            cJSON_AddStringToObject(o, "target", it->target);
            cJSON *c = cJSON_AddObjectToObject(o, "correct");
            cJSON_AddBoolToObject(c, "exact_match", dpb_eval_bbh_match(x, it->target));
        }
        free(x);
    } else if (r->kind == T_HUMANEVAL) {
        dpb_sandbox_result sr;
        if (!(st = dpb_humaneval_check(&r->sb, it, output, &sr))) {
            cJSON_AddStringToObject(o, "result", sr.reason);
            cJSON *c = cJSON_AddObjectToObject(o, "correct");
            cJSON_AddBoolToObject(c, "pass@1", sr.passed);
            dpb_sandbox_result_free(&sr);
        }
    }
    if (!st) st = dpb_jsonlog_write(r->log, o);
    cJSON_Delete(o);
    return st;
}

static dpb_status score_mmlu(run *r, size_t i, const char *prompt, const double *ll)
{
    const dpb_eval_item *it = &r->items.items[i];
    cJSON *o = cJSON_CreateObject();
    if (!o) return dpb_error_set(DPB_E_NOMEM, "out of memory");
    add_common(o, r, i, prompt);
    cJSON *a = cJSON_AddArrayToObject(o, "loglikelihoods");
    for (int c = 0; c < 4; c++) cJSON_AddItemToArray(a, cJSON_CreateNumber(ll[c]));
    int pred = dpb_eval_argmax(ll, 4);
    char pl[2] = {(char)('A' + pred), 0}, tl[2] = {(char)('A' + it->answer), 0};
    cJSON_AddStringToObject(o, "extracted", pl);
    cJSON_AddStringToObject(o, "target", tl);
    cJSON *c = cJSON_AddObjectToObject(o, "correct");
    cJSON_AddBoolToObject(c, "acc", pred == it->answer);
    dpb_status st = dpb_jsonlog_write(r->log, o);
    cJSON_Delete(o);
    return st;
}

/* ---- resume and summary: both read samples.jsonl ---- */

typedef struct agg {
    run *r;
    char names[8][32];
    double sum[8], n[8];
    int nm;
    cJSON *subsets; /* name -> {metric: [correct, n]} */
} agg;

static dpb_status mark_done(const cJSON *obj, size_t line, void *ctx)
{
    run *r = ctx;
    int64_t id;
    char w[64];
    snprintf(w, sizeof w, "samples.jsonl line %zu", line);
    dpb_status st = dpb_json_get_int(obj, "doc_id", w, DPB_JSON_REQUIRED, 0, (int64_t)r->items.n - 1, 0, &id, NULL);
    if (st) return st;
    r->done[id] = true;
    return DPB_OK;
}

static dpb_status add_line(const cJSON *obj, size_t line, void *ctx)
{
    agg *g = ctx;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(obj, "correct");
    if (!cJSON_IsObject(c)) return dpb_error_set(DPB_E_FORMAT, "samples.jsonl line %zu: field correct is not an object", line);
    const cJSON *sub = cJSON_GetObjectItemCaseSensitive(obj, "subset");
    const cJSON *m;
    cJSON_ArrayForEach(m, c)
    {
        int k = 0;
        while (k < g->nm && strcmp(g->names[k], m->string) != 0) k++;
        if (k == g->nm) {
            if (g->nm == 8) continue;
            snprintf(g->names[g->nm++], sizeof g->names[0], "%s", m->string);
        }
        g->n[k] += 1;
        g->sum[k] += cJSON_IsTrue(m) ? 1 : 0;
        if (cJSON_IsString(sub)) {
            cJSON *s = cJSON_GetObjectItemCaseSensitive(g->subsets, sub->valuestring);
            if (!s) s = cJSON_AddObjectToObject(g->subsets, sub->valuestring);
            cJSON *v = cJSON_GetObjectItemCaseSensitive(s, m->string);
            if (!v) { v = cJSON_AddArrayToObject(s, m->string); cJSON_AddItemToArray(v, cJSON_CreateNumber(0)); cJSON_AddItemToArray(v, cJSON_CreateNumber(0)); }
            cJSON *a0 = cJSON_GetArrayItem(v, 0), *a1 = cJSON_GetArrayItem(v, 1);
            cJSON_SetNumberValue(a0, a0->valuedouble + (cJSON_IsTrue(m) ? 1 : 0));
            cJSON_SetNumberValue(a1, a1->valuedouble + 1);
        }
    }
    return DPB_OK;
}

static dpb_status write_summary(run *r, const char *samples, double elapsed_s, const dpb_eval_ll_stats *ls)
{
    agg g = {0};
    g.r = r;
    g.subsets = cJSON_CreateObject();
    dpb_status st = dpb_jsonl_read(samples, add_line, &g);
    if (st) { cJSON_Delete(g.subsets); return st; }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "task", r->task);
    if (r->model) cJSON_AddStringToObject(o, "model", r->model);
    if (r->predictions) cJSON_AddStringToObject(o, "predictions", r->predictions);
    cJSON_AddNumberToObject(o, "num_fewshot", (double)r->fewshot);
    cJSON_AddNumberToObject(o, "items_selected", (double)r->items.n);
    cJSON *ms = cJSON_AddObjectToObject(o, "metrics");
    for (int k = 0; k < g.nm; k++) {
        cJSON *m = cJSON_AddObjectToObject(ms, g.names[k]);
        cJSON_AddNumberToObject(m, "n", g.n[k]);
        cJSON_AddNumberToObject(m, "correct", g.sum[k]);
        cJSON_AddNumberToObject(m, "accuracy", g.n[k] > 0 ? g.sum[k] / g.n[k] : 0);
        double se = dpb_eval_stderr(g.sum[k], g.n[k]);
        if (isnan(se)) { cJSON_AddNullToObject(m, "stderr"); cJSON_AddStringToObject(m, "stderr_unavailable", "fewer than 2 items"); }
        else cJSON_AddNumberToObject(m, "stderr", se);
        if (isnan(se)) printf("%s %s: %.4f (%g/%g; stderr unavailable)\n", r->task, g.names[k], g.n[k] > 0 ? g.sum[k] / g.n[k] : 0, g.sum[k], g.n[k]);
        else printf("%s %s: %.4f +- %.4f (%g/%g)\n", r->task, g.names[k], g.sum[k] / g.n[k], se, g.sum[k], g.n[k]);
    }
    cJSON *sub = cJSON_AddObjectToObject(o, "subsets");
    cJSON *s;
    cJSON_ArrayForEach(s, g.subsets)
    {
        cJSON *so = cJSON_AddObjectToObject(sub, s->string);
        cJSON *v;
        cJSON_ArrayForEach(v, s)
        {
            double c = cJSON_GetArrayItem(v, 0)->valuedouble, n = cJSON_GetArrayItem(v, 1)->valuedouble;
            cJSON *x = cJSON_AddObjectToObject(so, v->string);
            cJSON_AddNumberToObject(x, "n", n);
            cJSON_AddNumberToObject(x, "accuracy", n > 0 ? c / n : 0);
        }
    }
    cJSON_AddNumberToObject(o, "elapsed_s_this_invocation", elapsed_s);
    if (ls && ls->forward_calls) {
        cJSON_AddNumberToObject(o, "forward_calls", (double)ls->forward_calls);
        cJSON_AddNumberToObject(o, "tokens_run", (double)ls->tokens);
        cJSON_AddNumberToObject(o, "contexts_truncated", (double)ls->truncated);
        cJSON_AddNumberToObject(o, "shared_prefix_tokens", (double)ls->prefix_tokens);
    }
    if (r->endpoint) {
        cJSON_AddStringToObject(o, "endpoint", r->endpoint);
        cJSON_AddNumberToObject(o, "requests", (double)r->rstats.requests);
        cJSON_AddNumberToObject(o, "server_prompt_tokens", (double)r->rstats.prompt_tokens);
        if (r->kind == T_MMLU) cJSON_AddNumberToObject(o, "context_ends_inside_a_token", (double)r->rstats.straddled);
    }
    char *txt = cJSON_Print(o);
    char p[4200];
    snprintf(p, sizeof p, "%s/summary.json", r->out);
    st = txt ? dpb_file_write(p, txt, strlen(txt)) : dpb_error_set(DPB_E_NOMEM, "out of memory");
    cJSON_free(txt);
    cJSON_Delete(o);
    cJSON_Delete(g.subsets);
    return st;
}

/* run.json: a resumed run must use the same settings */
static dpb_status check_run_json(run *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "task", r->task);
    cJSON_AddStringToObject(o, "model", r->model ? r->model : (r->canonical ? "canonical" : r->dry_run ? "dry-run" : "predictions"));
    cJSON_AddNumberToObject(o, "num_fewshot", (double)r->fewshot);
    cJSON_AddStringToObject(o, "chat_template", dpb_chat_template_name(r->tpl));
    cJSON_AddStringToObject(o, "subset", r->subset ? r->subset : "");
    cJSON_AddNumberToObject(o, "max_new_tokens", (double)r->max_new);
    if (r->endpoint) {
        cJSON_AddStringToObject(o, "endpoint", r->endpoint);
        cJSON_AddBoolToObject(o, "chat", r->chat);
    }
    if (r->shots) cJSON_AddNumberToObject(o, "fewshot_seed", (double)r->fewshot_seed);
    char p[4200];
    snprintf(p, sizeof p, "%s/run.json", r->out);
    dpb_status st = DPB_OK;
    if (dpb_file_exists(p)) {
        cJSON *old = NULL;
        if (!(st = dpb_json_load(p, 1 << 20, &old))) {
            const cJSON *f;
            cJSON_ArrayForEach(f, o)
            {
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(old, f->string);
                if (!v || !cJSON_Compare(v, f, true)) {
                    st = dpb_error_set(DPB_E_ARG, "%s: this run used a different %s; use a new --out to change it", p, f->string);
                    break;
                }
            }
            cJSON_Delete(old);
        }
    } else {
        char *t = cJSON_Print(o);
        st = t ? dpb_file_write(p, t, strlen(t)) : dpb_error_set(DPB_E_NOMEM, "out of memory");
        cJSON_free(t);
    }
    cJSON_Delete(o);
    return st;
}

/* ---- score-only ---- */

typedef struct pred_ctx {
    run *r;
    size_t n;
} pred_ctx;

static dpb_status score_pred(const cJSON *obj, size_t line, void *ctx)
{
    pred_ctx *pc = ctx;
    run *r = pc->r;
    char w[4200];
    snprintf(w, sizeof w, "%s: line %zu", r->predictions, line);
    int64_t id = -1;
    const char *tid = NULL, *out = NULL;
    bool have_tid = false;
    dpb_status st;
    if ((st = dpb_json_get_string(obj, "task_id", w, DPB_JSON_OPTIONAL, NULL, &tid, &have_tid))) return st;
    if (have_tid) {
        for (size_t i = 0; i < r->items.n; i++)
            if (r->items.items[i].task_id && strcmp(r->items.items[i].task_id, tid) == 0) { id = (int64_t)i; break; }
        if (id < 0) return dpb_error_set(DPB_E_FORMAT, "%s: task_id '%.60s' is not in the data", w, tid);
    } else if ((st = dpb_json_get_int(obj, "doc_id", w, DPB_JSON_REQUIRED, 0, (int64_t)r->items.n - 1, 0, &id, NULL)))
        return st;
    if (r->done[id]) return DPB_OK;
    if (r->kind == T_MMLU) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, "loglikelihoods");
        if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 4)
            return dpb_error_set(DPB_E_FORMAT, "%s: field loglikelihoods is not an array of 4 numbers", w);
        double ll[4];
        for (int c = 0; c < 4; c++) {
            const cJSON *v = cJSON_GetArrayItem(a, c);
            if (!cJSON_IsNumber(v)) return dpb_error_set(DPB_E_FORMAT, "%s: loglikelihoods[%d] is not a number", w, c);
            ll[c] = v->valuedouble;
        }
        st = score_mmlu(r, (size_t)id, NULL, ll);
    } else {
        const char *key = r->kind == T_HUMANEVAL ? "completion" : "output";
        if ((st = dpb_json_get_string(obj, key, w, DPB_JSON_REQUIRED, NULL, &out, NULL))) return st;
        char *o2 = strdup(out);
        if (!o2) return dpb_error_set(DPB_E_NOMEM, "out of memory");
        st = score_generation(r, (size_t)id, NULL, o2);
        free(o2);
    }
    if (!st) { r->done[id] = true; pc->n++; }
    return st;
}

/* ---- --dry-run: forward tokens of MMLU with and without prefix reuse ---- */

static dpb_status dry_run(run *r)
{
    /* per subject: the tokens every question shares (the longest common token prefix: description and
     * exemplars), run once with a KV copy, then each question's own suffix */
    int64_t total = 0, reuse = 0, per_choice = 0, maxlen = 0, subjects = 0, prefix_sum = 0;
    int64_t s_sum = 0, s_n = 0;
    dpb_tokens first = {0}, cur = {0};
    size_t lcp = 0;
    const char *subj = NULL;
    dpb_status st = DPB_OK;
    for (size_t i = 0; i <= r->items.n && !st; i++) {
        const dpb_eval_item *it = i < r->items.n ? &r->items.items[i] : NULL;
        const char *name = it && it->subset ? it->subset : "";
        if (!it || !subj || strcmp(subj, name) != 0) {
            if (subj) {
                reuse += (int64_t)lcp + (s_sum - s_n * (int64_t)lcp);
                prefix_sum += (int64_t)lcp;
            }
            if (!it) break;
            subj = name;
            subjects++;
            s_sum = s_n = 0;
            first.n = 0;
        }
        char *p = NULL;
        if ((st = build_prompt(r, it, &p))) break;
        size_t cl = strlen(p);
        while (cl && (p[cl - 1] == ' ' || p[cl - 1] == '\n' || p[cl - 1] == '\t' || p[cl - 1] == '\r'))
            cl--; /* what dpb_eval_encode_pair encodes as the context */
        cur.n = 0;
        st = dpb_tokenizer_encode(r->tok, p, cl, r->tok_flags, &cur);
        free(p);
        if (st) break;
        int64_t n = (int64_t)cur.n;
        total += n;
        s_sum += n;
        s_n++;
        per_choice += 4 * (n + 1); /* lm-eval over HTTP: a request per choice: context + choice + 1 generated */
        if (n > maxlen) maxlen = n;
        if (s_n == 1) {
            dpb_tokens t = first;
            first = cur;
            cur = t;
            lcp = first.n;
        } else {
            size_t k = 0;
            while (k < lcp && k < cur.n && cur.ids[k] == first.ids[k]) k++;
            lcp = k;
        }
    }
    dpb_tokens_free(&first);
    dpb_tokens_free(&cur);
    if (st) return st;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "task", r->task);
    cJSON_AddNumberToObject(o, "questions", (double)r->items.n);
    cJSON_AddNumberToObject(o, "subjects", (double)subjects);
    cJSON_AddNumberToObject(o, "num_fewshot", (double)r->fewshot);
    cJSON_AddNumberToObject(o, "forward_tokens_one_pass_per_question", (double)total);
    cJSON_AddNumberToObject(o, "forward_tokens_prefix_reused", (double)reuse);
    cJSON_AddNumberToObject(o, "shared_prefix_tokens_all_subjects", (double)prefix_sum);
    cJSON_AddNumberToObject(o, "forward_tokens_one_request_per_choice", (double)per_choice);
    cJSON_AddNumberToObject(o, "longest_prompt_tokens", (double)maxlen);
    char *txt = cJSON_Print(o);
    char path[4200];
    snprintf(path, sizeof path, "%s/dry_run.json", r->out);
    st = txt ? dpb_file_write(path, txt, strlen(txt)) : dpb_error_set(DPB_E_NOMEM, "out of memory");
    cJSON_free(txt);
    cJSON_Delete(o);
    if (!st)
        printf("mmlu dry run: %zu questions in %lld subjects; forward tokens: %lld with one pass per question, %lld with each "
               "subject's shared prefix (%lld tokens in all) run once, %lld with one request per choice; longest prompt "
               "%lld tokens\n",
               r->items.n, (long long)subjects, (long long)total, (long long)reuse, (long long)prefix_sum,
               (long long)per_choice, (long long)maxlen);
    return st;
}

/* ---- the in-process run ---- */

static dpb_status run_model(run *r, dpb_checkpoint *ck, dpb_engine *e, dpb_eval_ll_stats *ls)
{
    const int64_t *eos = NULL;
    int n_eos = 0;
    if (ck) {
        const dpb_model_config *cfg = dpb_checkpoint_config(ck);
        const dpb_generation_config *gen = dpb_checkpoint_generation(ck);
        eos = gen->n_eos > 0 ? gen->eos_ids : cfg->eos_ids;
        n_eos = gen->n_eos > 0 ? gen->n_eos : cfg->n_eos;
    }
    static const char *const s_gsm[] = {"Question:", "</s>", "<|im_end|>"};
    static const char *const s_cot[] = {"Q:", "</s>", "<|im_end|>"};
    static const char *const s_bbh[] = {"</s>", "Q", "\n\n"};
    const char *const *stops = r->kind == T_GSM8K ? s_gsm : r->kind == T_GSM8K_COT ? s_cot : r->kind == T_BBH ? s_bbh : dpb_humaneval_stops;
    int nstops = r->kind == T_HUMANEVAL ? 5 : 3;
    /* over HTTP a chunk holds more items than requests in flight, so the tail of a chunk is short */
    int B = r->endpoint ? (int)r->batch * 4 : (int)r->batch;
    size_t *idx = calloc((size_t)B, sizeof *idx);
    char **prompts = calloc((size_t)B, sizeof *prompts), **outs = calloc((size_t)B, sizeof *outs);
    double *ll = calloc((size_t)B * 4, sizeof *ll);
    dpb_status st = DPB_OK;
    if (!idx || !prompts || !outs || !ll) { st = dpb_error_set(DPB_E_NOMEM, "out of memory"); goto done; }
    size_t todo = 0, finished = 0;
    for (size_t i = 0; i < r->items.n; i++) todo += !r->done[i];
    dpb_progress pg;
    dpb_progress_start(&pg, r->task, todo, NULL);
    size_t i = 0;
    while (i < r->items.n && !st) {
        if (dpb_interrupted()) { st = dpb_error_set(DPB_E_INTERRUPTED, "interrupted; --resume continues this run"); break; }
        int nb = 0;
        while (i < r->items.n && nb < B) {
            /* in process, an MMLU batch holds one subject: its questions share the few-shot prefix */
            if (r->kind == T_MMLU && !r->endpoint && nb > 0 && r->items.items[i].subset &&
                r->items.items[idx[0]].subset && strcmp(r->items.items[i].subset, r->items.items[idx[0]].subset) != 0)
                break;
            if (!r->done[i]) {
                if ((st = build_prompt(r, &r->items.items[i], &prompts[nb]))) break;
                idx[nb++] = i;
            }
            i++;
        }
        if (!st && nb > 0) {
            if (r->kind == T_MMLU) {
                static const char *const conts[4] = {" A", " B", " C", " D"};
                if (r->endpoint)
                    st = dpb_eval_remote_loglik(&r->remote, (const char *const *)prompts, idx, nb, conts, 4, ll, &r->rstats);
                else
                    st = dpb_eval_loglik(e, r->tok, (const char *const *)prompts, nb, conts, 4, r->tok_flags, r->exhaustive, ll, ls);
                for (int k = 0; k < nb && !st; k++) st = score_mmlu(r, idx[k], prompts[k], ll + 4 * k);
            } else {
                if (r->endpoint)
                    st = dpb_eval_remote_generate(&r->remote, (const char *const *)prompts, idx, nb, r->max_new, stops, nstops,
                                                  outs, &r->rstats);
                else
                    st = dpb_eval_generate(e, r->tok, (const char *const *)prompts, nb, r->tok_flags, r->max_new, stops,
                                           nstops, eos, n_eos, outs);
                for (int k = 0; k < nb && !st; k++) st = score_generation(r, idx[k], prompts[k], outs[k]);
                for (int k = 0; k < nb; k++) { free(outs[k]); outs[k] = NULL; }
            }
        }
        for (int k = 0; k < nb; k++) { free(prompts[k]); prompts[k] = NULL; }
        finished += (size_t)nb;
        dpb_progress_update(&pg, finished);
    }
    dpb_progress_finish(&pg);
done:
    free(idx);
    free(prompts);
    free(outs);
    free(ll);
    return st;
}

int dpb_cmd_eval(int argc, char **argv)
{
    enum { O_TASK = 256, O_DATA, O_MODEL, O_TOK, O_OUT, O_RESUME, O_LIMIT, O_SUBSET, O_FEW, O_TPL, O_BATCH, O_MAXNEW,
           O_CTX, O_BACKEND, O_THREADS, O_EXH, O_SCORE, O_PRED, O_CANON, O_ENDPOINT, O_CHAT, O_FSEED, O_DRY, O_PCHUNK };
    static const struct option opts[] = {
        {"task", required_argument, 0, O_TASK}, {"data", required_argument, 0, O_DATA},
        {"model", required_argument, 0, O_MODEL}, {"tokenizer", required_argument, 0, O_TOK},
        {"out", required_argument, 0, O_OUT}, {"resume", no_argument, 0, O_RESUME},
        {"limit", required_argument, 0, O_LIMIT}, {"subset", required_argument, 0, O_SUBSET},
        {"num-fewshot", required_argument, 0, O_FEW}, {"chat-template", required_argument, 0, O_TPL},
        {"batch", required_argument, 0, O_BATCH}, {"max-new-tokens", required_argument, 0, O_MAXNEW},
        {"max-context", required_argument, 0, O_CTX}, {"backend", required_argument, 0, O_BACKEND},
        {"threads", required_argument, 0, O_THREADS}, {"exhaustive", no_argument, 0, O_EXH},
        {"score-only", no_argument, 0, O_SCORE}, {"predictions", required_argument, 0, O_PRED},
        {"canonical", no_argument, 0, O_CANON}, {"endpoint", required_argument, 0, O_ENDPOINT},
        {"chat", no_argument, 0, O_CHAT}, {"fewshot-seed", required_argument, 0, O_FSEED},
        {"dry-run", no_argument, 0, O_DRY}, {"prefill-chunk", required_argument, 0, O_PCHUNK},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    run r;
    memset(&r, 0, sizeof r);
    r.fewshot = -1;
    r.batch = 8;
    r.fewshot_seed = 1234;
    const char *backend = "cpu";
    dpb_checkpoint_opts co = {0};
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        dpb_status st = DPB_OK;
        switch (c) {
        case O_TASK: r.task = optarg; break;
        case O_DATA: r.data = optarg; break;
        case O_MODEL: r.model = optarg; break;
        case O_TOK: co.tokenizer = optarg; break;
        case O_OUT: r.out = optarg; break;
        case O_RESUME: r.resume = 1; break;
        case O_LIMIT: st = dpb_cli_parse_i64("--limit", optarg, 1, 1ll << 40, &r.limit); break;
        case O_SUBSET: r.subset = optarg; break;
        case O_FEW: st = dpb_cli_parse_i64("--num-fewshot", optarg, 0, 64, &r.fewshot); break;
        case O_TPL: r.tpl_name = optarg; break;
        case O_BATCH: st = dpb_cli_parse_i64("--batch", optarg, 1, 1024, &r.batch); break;
        case O_MAXNEW: st = dpb_cli_parse_i64("--max-new-tokens", optarg, 1, 1 << 20, &r.max_new); break;
        case O_CTX: st = dpb_cli_parse_i64("--max-context", optarg, 16, 1ll << 24, &r.max_ctx); break;
        case O_BACKEND: backend = optarg; break;
        case O_THREADS: st = dpb_cli_parse_i64("--threads", optarg, 1, 1024, &r.threads); break;
        case O_EXH: r.exhaustive = 1; break;
        case O_SCORE: r.score_only = 1; break;
        case O_PRED: r.predictions = optarg; break;
        case O_CANON: r.canonical = 1; break;
        case O_ENDPOINT: r.endpoint = optarg; break;
        case O_CHAT: r.chat = 1; break;
        case O_FSEED: st = dpb_cli_parse_i64("--fewshot-seed", optarg, 0, 1ll << 62, &r.fewshot_seed); break;
        case O_DRY: r.dry_run = 1; break;
        case O_PCHUNK: st = dpb_cli_parse_i64("--prefill-chunk", optarg, 1, 1 << 20, &r.prefill_chunk); break;
        case 'h': usage(stdout); return 0;
        default: return dpb_cli_usage_error("eval", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
        if (st) return dpb_cli_fail("eval", st);
    }
    if (optind < argc) return dpb_cli_usage_error("eval", "unexpected argument '%s'", argv[optind]);
    if (!r.task) return dpb_cli_usage_error("eval", "--task is required (mmlu, gsm8k, gsm8k_cot, bbh, humaneval)");
    if (!strcmp(r.task, "mmlu")) r.kind = T_MMLU;
    else if (!strcmp(r.task, "gsm8k")) r.kind = T_GSM8K;
    else if (!strcmp(r.task, "gsm8k_cot")) r.kind = T_GSM8K_COT;
    else if (!strcmp(r.task, "bbh")) r.kind = T_BBH;
    else if (!strcmp(r.task, "humaneval")) r.kind = T_HUMANEVAL;
    else return dpb_cli_usage_error("eval", "--task takes mmlu, gsm8k, gsm8k_cot, bbh or humaneval, not '%s'", r.task);
    if (!r.data) return dpb_cli_usage_error("eval", "--data DIR is required (e.g. ../shared/data); nothing is downloaded");
    if (!r.out) return dpb_cli_usage_error("eval", "--out DIR is required");
    if (r.endpoint && !r.model) return dpb_cli_usage_error("eval", "--endpoint needs --model NAME (the served model name)");
    if (r.chat && !r.endpoint) return dpb_cli_usage_error("eval", "--chat is for --endpoint (in process, use --chat-template)");
    if (r.chat && r.kind == T_MMLU)
        return dpb_cli_usage_error("eval", "--chat: chat endpoints cannot give loglikelihoods (no prompt logprobs), so "
                                           "mmlu needs /v1/completions; --chat is for gsm8k, gsm8k_cot, bbh, humaneval");
    if (r.chat && r.tpl_name) return dpb_cli_usage_error("eval", "--chat: the server applies its chat template; drop --chat-template");
    if (r.endpoint && r.exhaustive) return dpb_cli_usage_error("eval", "--exhaustive is for the in-process engine, not --endpoint");
    if (r.dry_run && (r.kind != T_MMLU || r.model || !co.tokenizer))
        return dpb_cli_usage_error("eval", "--dry-run is for --task mmlu with --tokenizer PATH and without --model");
    if (r.canonical && r.kind != T_HUMANEVAL) return dpb_cli_usage_error("eval", "--canonical is for --task humaneval");
    if (r.score_only != !!r.predictions) return dpb_cli_usage_error("eval", "--score-only and --predictions FILE go together");
    int modes = !!r.model + r.score_only + r.canonical + r.dry_run;
    if (modes != 1)
        return dpb_cli_usage_error("eval", "give exactly one of --model, --score-only --predictions, --canonical, --dry-run");
    if (strcmp(backend, "cpu") && strcmp(backend, "ref") && strcmp(backend, "cuda"))
        return dpb_cli_usage_error("eval", "--backend takes cpu, ref or cuda, not '%s'", backend);
    if (r.fewshot < 0) r.fewshot = r.kind == T_MMLU ? 5 : r.kind == T_GSM8K ? 5 : r.kind == T_GSM8K_COT ? 8 : r.kind == T_BBH ? 3 : 0;
    if (r.kind == T_GSM8K_COT && r.fewshot > 8) return dpb_cli_usage_error("eval", "--num-fewshot: gsm8k_cot has 8 exemplars");
    if (r.kind == T_MMLU && r.fewshot > 5) return dpb_cli_usage_error("eval", "--num-fewshot: MMLU's dev split has 5 per subject");
    if (!r.max_new) r.max_new = r.kind == T_BBH ? 1024 : 256; /* lm-eval: bbh sets 1024, the rest use the default 256 */
    r.tpl = DPB_CHAT_NONE;
    dpb_status st;
    if (r.tpl_name && (st = dpb_chat_template_parse(r.tpl_name, &r.tpl))) return dpb_cli_fail("eval", dpb_error_prefix(st, "--chat-template"));
    r.tok_flags = r.tpl != DPB_CHAT_NONE ? DPB_TOK_ALLOW_SPECIAL : 0;
    dpb_signal_install();

    dpb_checkpoint *ck = NULL;
    dpb_engine *e = NULL;
    dpb_manifest *man = NULL;
    int rc = 0;
    uint64_t t0 = dpb_now_ns();
    dpb_eval_ll_stats ls = {0};
    char samples[4200];
    snprintf(samples, sizeof samples, "%s/samples.jsonl", r.out);
    if ((st = load_data(&r))) goto fail;
    if (r.limit > 0 && (size_t)r.limit < r.items.n) {
        /* keep the first N items */
        dpb_eval_set rest = {r.items.items + r.limit, r.items.n - (size_t)r.limit, 0};
        for (size_t k = 0; k < rest.n; k++) {
            dpb_eval_item *it = &rest.items[k];
            free(it->subset); free(it->question); free(it->target); free(it->task_id);
            free(it->entry_point); free(it->canonical); free(it->test);
            for (int q = 0; q < 4; q++) free(it->choices[q]);
        }
        r.items.n = (size_t)r.limit;
    }
    if (r.items.n == 0) { st = dpb_error_set(DPB_E_ARG, "--data %s: no items selected", r.data); goto fail; }
    if (r.kind == T_GSM8K && r.fewshot > 0 && !r.score_only && !r.canonical &&
        (st = dpb_eval_fewshot_random(r.items.n, r.pool.n, (int)r.fewshot, (uint64_t)r.fewshot_seed, &r.shots)))
        goto fail;
    if (!(r.done = calloc(r.items.n, sizeof *r.done))) { st = dpb_error_set(DPB_E_NOMEM, "out of memory"); goto fail; }
    /* the folder, and manifest.json: command line, commit, host and GPU facts, start and end times */
    if ((st = dpb_manifest_begin(r.out, argc, argv, r.resume, NULL, &man))) goto fail;
    if ((st = check_run_json(&r))) goto fail;
    if ((st = dpb_jsonlog_repair(samples, NULL, NULL))) goto fail;
    if ((st = dpb_jsonl_read(samples, mark_done, &r))) goto fail;
    if ((st = dpb_jsonlog_open(samples, false, &r.log))) goto fail;
    if (r.score_only) {
        pred_ctx pc = {&r, 0};
        if ((st = dpb_jsonl_read(r.predictions, score_pred, &pc))) goto fail;
        if (pc.n == 0) fprintf(stderr, "eval: %s held no new predictions\n", r.predictions);
    } else if (r.dry_run) {
        if ((st = dpb_tokenizer_load(co.tokenizer, &r.tok))) goto fail;
        if ((st = dry_run(&r))) goto fail;
    } else if (r.endpoint) {
        if ((st = dpb_eval_remote_init(&r.remote, r.endpoint, r.model, r.chat, (int)r.batch))) goto fail;
        if (r.remote.chat && r.kind == T_MMLU) {
            st = dpb_error_set(DPB_E_ARG, "--endpoint %s: chat endpoints cannot give loglikelihoods (they return no prompt "
                                          "logprobs), so mmlu needs /v1/completions", r.endpoint);
            goto fail;
        }
        if ((st = run_model(&r, NULL, NULL, &ls))) goto fail;
    } else if (r.canonical) {
        for (size_t i = 0; i < r.items.n && !st; i++)
            if (!r.done[i]) st = score_generation(&r, i, r.items.items[i].question, r.items.items[i].canonical);
    } else {
        if ((st = dpb_checkpoint_open(r.model, &co, &ck)) || (st = dpb_manifest_set_model(man, r.model, ck))) goto fail;
        const char *tp = dpb_checkpoint_tokenizer_path(ck);
        if (!tp) {
            st = dpb_error_set(DPB_E_ARG, "--model %s has no tokenizer: give --tokenizer FILE|DIR", r.model);
            goto fail;
        }
        if ((st = dpb_tokenizer_load(tp, &r.tok))) goto fail;
        const dpb_model_config *cfg = dpb_checkpoint_config(ck);
        int64_t maxpos = cfg->max_position_embeddings > 0 ? cfg->max_position_embeddings : 4096;
        dpb_engine_opts eo = {0};
        eo.backend = backend;
        eo.threads = (int)r.threads;
        eo.max_seqs = (int)r.batch;
        eo.prefill_chunk = r.prefill_chunk;
        eo.max_ctx = r.max_ctx ? r.max_ctx : (maxpos < 4096 ? maxpos : 4096);
        if ((st = dpb_engine_create(ck, &eo, &e))) goto fail;
        if ((st = run_model(&r, ck, e, &ls))) goto fail;
    }
    if ((st = dpb_jsonlog_close(r.log))) { r.log = NULL; goto fail; }
    r.log = NULL;
    if (!r.dry_run && (st = write_summary(&r, samples, (double)(dpb_now_ns() - t0) / 1e9, &ls))) goto fail;
    goto done;
fail:
    if (r.log) { dpb_jsonlog_close(r.log); r.log = NULL; }
    rc = dpb_cli_fail("eval", st);
done:
    if (man) {
        dpb_manifest_end_with(man, rc ? st : DPB_OK);
        dpb_manifest_free(man);
    }
    dpb_engine_destroy(e);
    if (ck) dpb_checkpoint_close(ck);
    dpb_tokenizer_free(r.tok);
    dpb_eval_set_free(&r.items);
    dpb_eval_set_free(&r.pool);
    for (size_t i = 0; i < r.n_bbh; i++) {
        free(r.bbh_tasks[i]);
        if (r.bbh_desc) free(r.bbh_desc[i]);
        if (r.bbh_shots) free(r.bbh_shots[i]);
    }
    free(r.bbh_tasks);
    free(r.bbh_desc);
    free(r.bbh_shots);
    free(r.done);
    free(r.shots);
    dpb_eval_remote_free(&r.remote);
    return rc;
}
