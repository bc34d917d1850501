/* deploybench safety: refusal, jailbreak and over-refusal rates beside the
 * governance table (docs/SAFETY.md). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "bench/manifest.h"
#include "bench/results.h"
#include "cli/cli.h"
#include "tokenizer/chat_choose.h"
#include "core/file.h"
#include "core/progress.h"
#include "core/signal.h"
#include "engine/engine.h"
#include "format/checkpoint.h"
#include "safety/channels.h"
#include "safety/client.h"
#include "safety/governance.h"
#include "safety/refusal.h"
#include "safety/report.h"
#include "safety/sets.h"
#include "tokenizer/tokenizer.h"

#define HARMONY_DATE "2025-08-05" /* fixed, so a run is reproducible */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: deploybench safety (--model M | --endpoint URL --model NAME) --out DIR\n"
            "                          [--sets builtin,advbench,harmbench,jbb,jbb-pair,xstest] [--data DIR] [--limit N]\n"
            "                          [--judge-endpoint URL --judge-model NAME] [options]\n\n"
            "Sends each prompt of the chosen safety sets to the model (greedy decoding, fixed seed), classifies\n"
            "each answer with a rule-based refusal detector (and optionally an LLM judge), and writes refusal,\n"
            "harmful-compliance and over-refusal rates with 95 %% Wilson intervals by set and category, next to\n"
            "a governance table (license, usage policy, model card, stated safety features).\n\n"
            "  --model M            in-process: a Hugging Face folder or synth:PRESET[:SEED][:INIT]; with --endpoint: the\n"
            "                       served model's name\n"
            "  --endpoint URL       an OpenAI-compatible server (POST URL/v1/chat/completions, not streamed)\n"
            "  --api-key KEY        bearer token for --endpoint and --judge-endpoint (default: $OPENAI_API_KEY)\n"
            "  --sets LIST          comma-separated: builtin (default; 100 prompts built in), advbench, harmbench,\n"
            "                       jbb (JailbreakBench behaviours), jbb-pair (its PAIR jailbreak prompts), xstest\n"
            "  --data DIR           folder holding advbench/, harmbench/, jailbreakbench/, xstest/ (as ../shared/data)\n"
            "  --prompts FILE       your own prompts, JSONL {id, category, kind: harmful|jailbreak|benign, prompt}\n"
            "                       per line (set \"custom\"); without --sets only these are run\n"
            "  --limit N            at most N prompts per set (the first N, in file order)\n"
            "  --out DIR            results folder (must be new or empty): manifest.json, responses.jsonl,\n"
            "                       summary.json, summary.csv, governance.json, report.md\n"
            "  --max-new-tokens N   tokens to generate per prompt (default 256)\n"
            "  --seed S             seed recorded with the run and sent to endpoints (default 0; decoding is greedy)\n"
            "  --tokenizer PATH     tokenizer folder or file (needed for synth: models)\n"
            "  --chat-template T    harmony, qwen3, chatml or none (default: from the model folder or architecture)\n"
            "  --no-thinking        Qwen3: render the template with thinking off\n"
            "  --backend B          cpu (default), ref or cuda\n"
            "  --threads N          cpu threads (default: all cores)\n"
            "  --metadata FILE      governance facts as JSON (license, usage_policy, model_card, safety_features,\n"
            "                       architecture, verified: [fields a person checked]); overrides the folder's\n"
            "  --model-card-dir DIR read governance files (README.md front matter, LICENSE) from DIR instead of\n"
            "                       the model folder\n"
            "  --judge-endpoint URL an OpenAI-compatible server running the judge model\n"
            "  --judge-model NAME   the judge model's name (the judge prompt is fixed: docs/SAFETY.md)\n"
            "  --timeout S          seconds per HTTP request (default 300)\n"
            "Exit codes: 0 ok, 2 bad input (the message names the option or file), 1 other failure, 130 interrupted.\n");
}

typedef struct run_ctx {
    /* in-process */
    dpb_checkpoint *ck;
    dpb_engine *eng;
    dpb_tokenizer *tok;
    dpb_chat_template tpl;
    bool thinking;
    /* endpoint */
    const char *endpoint, *model, *api_key;
    double timeout_s;
    int64_t max_new;
    uint64_t seed;
} run_ctx;

/* Generates one answer in-process: raw text with special tokens kept. */
static dpb_status gen_local(run_ctx *c, const char *prompt, char **text, int64_t *n_prompt, int64_t *n_gen,
                            const char **stop)
{
    dpb_chat_options co;
    dpb_chat_options_default(&co);
    co.date = HARMONY_DATE;
    co.enable_thinking = c->thinking;
    /* A prompt that holds marker-like text ("<|im_end|>") is rendered around a
     * placeholder and its own text encoded with specials off, so it cannot
     * inject template markers. */
    static const char placeholder[] = "\x01dpb-user-message\x01";
    bool guard = strstr(prompt, "<|") || strstr(prompt, "<think>") || strstr(prompt, "</think>");
    dpb_chat_message m = {"user", guard ? placeholder : prompt};
    char *rendered = NULL;
    size_t rlen = 0;
    dpb_status st = dpb_chat_render(c->tpl, &co, &m, 1, &rendered, &rlen);
    if (st) return st;
    dpb_tokens ids = {0};
    unsigned fl = c->tpl == DPB_CHAT_NONE ? 0 : DPB_TOK_ALLOW_SPECIAL;
    char *ph = guard ? strstr(rendered, placeholder) : NULL;
    if (guard && !ph) st = dpb_error_set(DPB_E_INTERNAL, "chat template %s dropped the user message", dpb_chat_template_name(c->tpl));
    else if (ph) {
        size_t pre = (size_t)(ph - rendered), post = pre + sizeof placeholder - 1;
        st = dpb_tokenizer_encode(c->tok, rendered, pre, fl, &ids);
        if (!st) st = dpb_tokenizer_encode(c->tok, prompt, strlen(prompt), 0, &ids);
        if (!st) st = dpb_tokenizer_encode(c->tok, rendered + post, rlen - post, fl, &ids);
    } else st = dpb_tokenizer_encode(c->tok, rendered, rlen, fl, &ids);
    free(rendered);
    if (st) { dpb_tokens_free(&ids); return st; }
    const dpb_model_config *cfg = dpb_engine_config(c->eng);
    int64_t room = dpb_engine_max_ctx(c->eng) - (int64_t)ids.n;
    if (room < 1) {
        dpb_tokens_free(&ids);
        return dpb_error_set(DPB_E_RANGE, "prompt of %zu tokens does not fit the context of %lld tokens", ids.n,
                             (long long)dpb_engine_max_ctx(c->eng));
    }
    for (size_t i = 0; i < ids.n; i++)
        if (ids.ids[i] >= cfg->vocab_size) {
            dpb_tokens_free(&ids);
            return dpb_error_set(DPB_E_RANGE, "token id %d is outside the model's vocabulary (%lld): use the model's tokenizer",
                                 ids.ids[i], (long long)cfg->vocab_size);
        }
    const dpb_generation_config *gen = dpb_checkpoint_generation(c->ck);
    dpb_gen_request q = {0};
    q.prompt = ids.ids;
    q.n_prompt = (int64_t)ids.n;
    q.max_new = c->max_new < room ? c->max_new : room;
    q.sampling = dpb_sampling_greedy();
    q.sampling.seed = c->seed;
    if (gen->n_eos > 0) { q.n_stop = gen->n_eos; q.stop_ids = gen->eos_ids; }
    else { q.n_stop = cfg->n_eos; q.stop_ids = cfg->eos_ids; }
    dpb_gen_result res;
    st = dpb_engine_generate(c->eng, &q, 1, &res, NULL, NULL);
    dpb_tokens_free(&ids);
    if (st) return st;
    size_t tl;
    st = dpb_tokenizer_decode(c->tok, res.ids, (size_t)res.n, false, text, &tl);
    *n_prompt = q.n_prompt;
    *n_gen = res.n;
    *stop = res.stop == DPB_STOP_EOS ? "eos" : res.stop == DPB_STOP_CONTEXT ? "context" : "length";
    dpb_gen_result_free(&res);
    return st;
}

static dpb_status parse_sets(const char *list, char ***names, size_t *n)
{
    *names = NULL;
    *n = 0;
    char *copy = strdup(list);
    if (!copy) return dpb_error_set(DPB_E_NOMEM, "out of memory");
    size_t cap = 1;
    for (const char *p = list; *p; p++) cap += *p == ',';
    char **v = calloc(cap, sizeof *v);
    if (!v) { free(copy); return dpb_error_set(DPB_E_NOMEM, "out of memory"); }
    char *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ') t++;
        if (!*t) continue;
        for (size_t i = 0; i < *n; i++)
            if (!strcmp(v[i], t)) { free(copy); for (size_t k = 0; k < *n; k++) free(v[k]); free(v); return dpb_error_set(DPB_E_ARG, "--sets: '%s' is listed twice", t); }
        v[(*n)++] = strdup(t);
    }
    free(copy);
    if (*n == 0) { free(v); return dpb_error_set(DPB_E_ARG, "--sets: empty list (known: %s)", DPB_SAFETY_SET_NAMES); }
    *names = v;
    return DPB_OK;
}

static dpb_status write_text(const char *dir, const char *name, const char *text)
{
    char *p = NULL;
    dpb_status st = dpb_path_join(dir, name, &p);
    if (!st) st = dpb_file_write(p, text, strlen(text));
    free(p);
    return st;
}

static dpb_status write_json(const char *dir, const char *name, const cJSON *o)
{
    char *s = cJSON_Print(o);
    if (!s) return dpb_error_set(DPB_E_NOMEM, "out of memory");
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (!t) { cJSON_free(s); return dpb_error_set(DPB_E_NOMEM, "out of memory"); }
    t[n] = '\n';
    t[n + 1] = 0;
    dpb_status st = write_text(dir, name, t);
    free(t);
    return st;
}

int dpb_cmd_safety(int argc, char **argv)
{
    enum { O_MODEL = 256, O_ENDPOINT, O_KEY, O_SETS, O_DATA, O_LIMIT, O_OUT, O_MAXNEW, O_SEED, O_TOK, O_TPL, O_NOTHINK,
           O_BACKEND, O_THREADS, O_META, O_CARD, O_JEP, O_JMODEL, O_TIMEOUT, O_PROMPTS };
    static const struct option opts[] = {
        {"model", required_argument, 0, O_MODEL}, {"endpoint", required_argument, 0, O_ENDPOINT},
        {"api-key", required_argument, 0, O_KEY}, {"sets", required_argument, 0, O_SETS},
        {"data", required_argument, 0, O_DATA}, {"limit", required_argument, 0, O_LIMIT},
        {"out", required_argument, 0, O_OUT}, {"max-new-tokens", required_argument, 0, O_MAXNEW},
        {"seed", required_argument, 0, O_SEED}, {"tokenizer", required_argument, 0, O_TOK},
        {"chat-template", required_argument, 0, O_TPL}, {"no-thinking", no_argument, 0, O_NOTHINK},
        {"backend", required_argument, 0, O_BACKEND}, {"threads", required_argument, 0, O_THREADS},
        {"metadata", required_argument, 0, O_META}, {"model-card-dir", required_argument, 0, O_CARD},
        {"judge-endpoint", required_argument, 0, O_JEP}, {"judge-model", required_argument, 0, O_JMODEL},
        {"timeout", required_argument, 0, O_TIMEOUT}, {"prompts", required_argument, 0, O_PROMPTS}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *prompts_file = NULL;
    int sets_given = 0;
    const char *model = NULL, *endpoint = NULL, *api_key = getenv("OPENAI_API_KEY"), *sets_arg = "builtin", *data = NULL;
    const char *out = NULL, *tpl_name = NULL, *backend = "cpu", *meta = NULL, *card_dir = NULL, *jep = NULL, *jmodel = NULL;
    long long limit = 0, max_new = 256, seed = 0, threads = 0;
    double timeout = 300;
    int thinking = 1;
    dpb_checkpoint_opts cko = {0};
    int ch;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        dpb_status st = DPB_OK;
        switch (ch) {
        case O_MODEL: model = optarg; break;
        case O_ENDPOINT: endpoint = optarg; break;
        case O_KEY: api_key = optarg; break;
        case O_SETS: sets_arg = optarg; sets_given = 1; break;
        case O_PROMPTS: prompts_file = optarg; break;
        case O_DATA: data = optarg; break;
        case O_LIMIT: st = dpb_cli_parse_i64("--limit", optarg, 1, 1ll << 30, &limit); break;
        case O_OUT: out = optarg; break;
        case O_MAXNEW: st = dpb_cli_parse_i64("--max-new-tokens", optarg, 1, 1 << 20, &max_new); break;
        case O_SEED: st = dpb_cli_parse_i64("--seed", optarg, 0, INT64_MAX, &seed); break;
        case O_TOK: cko.tokenizer = optarg; break;
        case O_TPL: tpl_name = optarg; break;
        case O_NOTHINK: thinking = 0; break;
        case O_BACKEND:
            if (dpb_cli_check_backend("safety", optarg)) return 2;
            backend = optarg;
            break;
        case O_THREADS: st = dpb_cli_parse_i64("--threads", optarg, 1, 1024, &threads); break;
        case O_META: meta = optarg; break;
        case O_CARD: card_dir = optarg; break;
        case O_JEP: jep = optarg; break;
        case O_JMODEL: jmodel = optarg; break;
        case O_TIMEOUT: st = dpb_cli_parse_double("--timeout", optarg, 0.001, 86400, &timeout); break;
        case 'h': usage(stdout); return 0;
        default: return dpb_cli_usage_error("safety", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
        if (st) return dpb_cli_fail("safety", st);
    }
    if (optind < argc) return dpb_cli_usage_error("safety", "unexpected argument '%s'", argv[optind]);
    if (!model) return dpb_cli_usage_error("safety", "--model is required (a model, or with --endpoint the served name)");
    if (!out) return dpb_cli_usage_error("safety", "--out DIR is required");
    if (!!jep != !!jmodel) return dpb_cli_usage_error("safety", "--judge-endpoint and --judge-model go together");
    if (card_dir && !dpb_dir_exists(card_dir)) return dpb_cli_usage_error("safety", "--model-card-dir %s is not a folder", card_dir);
    if (data && !dpb_dir_exists(data)) return dpb_cli_usage_error("safety", "--data %s is not a folder", data);

    /* load the prompt sets first: a missing file fails before any work */
    char **set_names = NULL;
    size_t n_sets = 0;
    dpb_safety_set all = {0};
    dpb_status st = DPB_OK;
    if (!prompts_file || sets_given) st = parse_sets(sets_arg, &set_names, &n_sets);
    if (st) return dpb_cli_fail("safety", st);
    if (prompts_file) st = dpb_safety_read_prompts_file(prompts_file, &all);
    if (!st && limit && all.n > (size_t)limit) {
        for (size_t k = (size_t)limit; k < all.n; k++) { /* keep the first N, like the sets */
            dpb_safety_prompt *p = &all.items[k];
            free(p->set); free(p->category); free(p->id); free(p->kind); free(p->prompt); free(p->ref_response);
        }
        all.n = (size_t)limit;
    }
    for (size_t i = 0; i < n_sets && !st; i++) {
        dpb_safety_set one = {0};
        st = dpb_safety_set_load(set_names[i], data, &one);
        size_t take = limit && (size_t)limit < one.n ? (size_t)limit : one.n;
        for (size_t k = 0; !st && k < one.n; k++) {
            if (k < take) {
                if (all.n == all.cap) {
                    size_t nc = all.cap ? all.cap * 2 : 128;
                    dpb_safety_prompt *np = realloc(all.items, nc * sizeof *np);
                    if (!np) { st = dpb_error_set(DPB_E_NOMEM, "out of memory"); break; }
                    all.items = np;
                    all.cap = nc;
                }
                all.items[all.n++] = one.items[k];
                memset(&one.items[k], 0, sizeof one.items[k]);
            }
        }
        dpb_safety_set_free(&one);
    }
    for (size_t i = 0; i < n_sets; i++) free(set_names[i]);
    free(set_names);
    if (st) {
        dpb_safety_set_free(&all);
        return dpb_cli_fail("safety", st);
    }

    run_ctx c = {0};
    c.endpoint = endpoint;
    c.model = model;
    c.api_key = api_key;
    c.timeout_s = timeout;
    c.max_new = max_new;
    c.seed = (uint64_t)seed;
    c.thinking = thinking;
    dpb_manifest *man = NULL;
    dpb_jsonl *jl = NULL;
    dpb_refusal_detector *det = NULL;
    dpb_governance gov = {0};
    dpb_safety_record *recs = NULL;
    size_t n_recs = 0;
    cJSON *summary = NULL;
    char *csv = NULL, *md = NULL;
    int rc = 0;

    if ((st = dpb_manifest_begin(out, argc, argv, false, NULL, &man))) goto fail;
    if ((st = dpb_refusal_detector_create(&det))) goto fail;
    if (!endpoint) {
        if ((st = dpb_checkpoint_open(model, &cko, &c.ck))) goto fail;
        if ((st = dpb_manifest_set_model(man, model, c.ck))) goto fail;
        const char *tp = dpb_checkpoint_tokenizer_path(c.ck);
        if (!tp) {
            st = dpb_error_set(DPB_E_ARG, "%s has no tokenizer: give --tokenizer DIR|FILE",
                               dpb_checkpoint_dir(c.ck) ? dpb_checkpoint_dir(c.ck) : "this synthetic model");
            goto fail;
        }
        if ((st = dpb_tokenizer_load(tp, &c.tok))) goto fail;
        if ((st = dpb_chat_template_choose(c.ck, tpl_name, &c.tpl))) goto fail;
        const dpb_model_config *cfg = dpb_checkpoint_config(c.ck);
        int64_t maxpos = cfg->max_position_embeddings > 0 ? cfg->max_position_embeddings : 4096;
        int64_t ctx = 4096 + max_new;
        dpb_engine_opts eo = {0};
        eo.backend = backend;
        eo.threads = (int)threads;
        eo.max_ctx = ctx < maxpos ? ctx : maxpos;
        if ((st = dpb_engine_create(c.ck, &eo, &c.eng))) goto fail;
    } else if (tpl_name) {
        if ((st = dpb_chat_template_parse(tpl_name, &c.tpl))) goto fail;
    } else c.tpl = DPB_CHAT_NONE;
    {
        const char *gdir = card_dir ? card_dir : (c.ck ? dpb_checkpoint_dir(c.ck) : NULL);
        if ((st = dpb_governance_read(gdir, meta, &gov))) goto fail;
        cJSON *gj = dpb_governance_json(&gov);
        st = write_json(out, "governance.json", gj);
        cJSON_Delete(gj);
        if (st) goto fail;
    }
    {
        cJSON *params = cJSON_CreateObject();
        cJSON_AddStringToObject(params, "sets", n_sets ? sets_arg : "");
        if (prompts_file) cJSON_AddStringToObject(params, "prompts_file", prompts_file);
        cJSON_AddNumberToObject(params, "prompts", (double)all.n);
        if (limit) cJSON_AddNumberToObject(params, "limit_per_set", (double)limit);
        cJSON_AddStringToObject(params, "decoding", "greedy");
        cJSON_AddNumberToObject(params, "seed", (double)seed);
        cJSON_AddNumberToObject(params, "max_new_tokens", (double)max_new);
        cJSON_AddStringToObject(params, "mode", endpoint ? "endpoint" : "in-process");
        if (endpoint) cJSON_AddStringToObject(params, "endpoint", endpoint);
        cJSON_AddStringToObject(params, "chat_template", dpb_chat_template_name(c.tpl));
        if (c.tpl == DPB_CHAT_HARMONY) cJSON_AddStringToObject(params, "harmony_date", HARMONY_DATE);
        if (c.tpl == DPB_CHAT_QWEN3) cJSON_AddBoolToObject(params, "enable_thinking", thinking);
        if (jep) {
            cJSON_AddStringToObject(params, "judge_endpoint", jep);
            cJSON_AddStringToObject(params, "judge_model", jmodel);
            cJSON_AddStringToObject(params, "judge_prompt", DPB_JUDGE_VERSION);
        }
        if (data) cJSON_AddStringToObject(params, "data", data);
        if ((st = dpb_manifest_add(man, "safety", params)) || (st = dpb_manifest_write(man))) goto fail;
    }
    char *jpath = NULL;
    if ((st = dpb_path_join(out, "responses.jsonl", &jpath))) goto fail;
    st = dpb_jsonl_open(jpath, &jl, NULL);
    free(jpath);
    if (st) goto fail;
    recs = calloc(all.n ? all.n : 1, sizeof *recs);
    if (!recs) { st = dpb_error_set(DPB_E_NOMEM, "out of memory"); goto fail; }

    dpb_progress prog;
    dpb_progress_start(&prog, "safety", all.n, NULL);
    for (size_t i = 0; i < all.n; i++) {
        if (dpb_interrupted()) { st = dpb_error_set(DPB_E_INTERRUPTED, "interrupted after %zu of %zu prompts", i, all.n); break; }
        const dpb_safety_prompt *p = &all.items[i];
        char *raw = NULL, *reasoning_api = NULL;
        int64_t n_prompt = -1, n_gen = -1;
        const char *stop = NULL;
        if (endpoint) {
            dpb_chat_client_req q = {endpoint, model, api_key, NULL, p->prompt, max_new, (uint64_t)seed, timeout};
            st = dpb_chat_client_complete(&q, &raw, &reasoning_api);
        } else st = gen_local(&c, p->prompt, &raw, &n_prompt, &n_gen, &stop);
        if (st) { dpb_error_prefix(st, "prompt %s", p->id); break; }
        dpb_safety_split sp;
        dpb_chat_template split_tpl = c.tpl;
        if (endpoint && strstr(raw, "</think>")) split_tpl = DPB_CHAT_QWEN3;
        st = dpb_safety_split_response(split_tpl, raw, strlen(raw), &sp);
        if (!st && reasoning_api && *reasoning_api) {
            free(sp.reasoning);
            sp.reasoning = reasoning_api;
            reasoning_api = NULL;
            sp.has_reasoning = true;
        }
        free(reasoning_api);
        free(raw);
        if (st) break;
        dpb_refusal_result rr, rz;
        dpb_safety_record *R = &recs[n_recs];
        R->p = p;
        R->judge = -1;
        R->reasoning_rule = -1;
        R->final_missing = sp.final_missing;
        R->reasoning_present = sp.has_reasoning;
        st = dpb_refusal_classify(det, sp.final, strlen(sp.final), &rr);
        if (!st && sp.has_reasoning) {
            st = dpb_refusal_classify(det, sp.reasoning, strlen(sp.reasoning), &rz);
            if (!st) R->reasoning_rule = (int)rz.verdict;
        }
        if (st) { dpb_safety_split_free(&sp); break; }
        R->rule = rr.verdict;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "set", p->set);
        cJSON_AddStringToObject(o, "category", p->category);
        cJSON_AddStringToObject(o, "id", p->id);
        cJSON_AddStringToObject(o, "kind", p->kind);
        cJSON_AddStringToObject(o, "expected", p->expect == DPB_EXPECT_REFUSE ? "refuse" : "answer");
        cJSON_AddStringToObject(o, "response", sp.final);
        if (sp.has_reasoning) cJSON_AddStringToObject(o, "reasoning", sp.reasoning);
        cJSON_AddBoolToObject(o, "reasoning_present", sp.has_reasoning);
        if (c.tpl == DPB_CHAT_HARMONY) cJSON_AddBoolToObject(o, "final_channel_missing", sp.final_missing);
        cJSON *v = cJSON_AddObjectToObject(o, "verdicts");
        cJSON_AddStringToObject(v, "rule", dpb_refusal_verdict_name(rr.verdict));
        if (rr.refusal_rule) cJSON_AddStringToObject(v, "rule_refusal_pattern", rr.refusal_rule);
        if (rr.content_rule) cJSON_AddStringToObject(v, "rule_content_pattern", rr.content_rule);
        if (R->reasoning_rule >= 0) cJSON_AddStringToObject(v, "reasoning_rule", dpb_refusal_verdict_name(rz.verdict));
        if (jep) {
            char *jmsg = NULL, *jreply = NULL;
            dpb_status js = dpb_judge_build(p->prompt, sp.final, &jmsg);
            if (!js) {
                dpb_chat_client_req q = {jep, jmodel, api_key, dpb_judge_system_prompt, jmsg, 16, (uint64_t)seed, timeout};
                js = dpb_chat_client_complete(&q, &jreply, NULL);
            }
            dpb_refusal_verdict jv;
            if (!js) js = dpb_judge_parse(jreply, &jv);
            if (!js) {
                R->judge = (int)jv;
                cJSON_AddStringToObject(v, "judge", dpb_refusal_verdict_name(jv));
            } else {
                cJSON_AddNullToObject(v, "judge");
                cJSON_AddStringToObject(v, "judge_error", dpb_error_message());
                if (js == DPB_E_IO && !jreply) { /* the judge server is unreachable: stop rather than judge nothing */
                    st = js;
                }
            }
            free(jmsg);
            free(jreply);
        }
        if (n_gen >= 0) {
            cJSON_AddNumberToObject(o, "prompt_tokens", (double)n_prompt);
            cJSON_AddNumberToObject(o, "generated_tokens", (double)n_gen);
            cJSON_AddStringToObject(o, "stop_reason", stop);
        }
        dpb_safety_split_free(&sp);
        if (!st) st = dpb_jsonl_append(jl, o);
        cJSON_Delete(o);
        if (st) break;
        n_recs++;
        dpb_progress_update(&prog, n_recs);
    }
    dpb_progress_finish(&prog);
    {
        /* summaries from whatever finished, also after an interruption */
        dpb_status s2 = dpb_safety_summarize(recs, n_recs, &summary, &csv);
        if (!s2) {
            cJSON_AddNumberToObject(summary, "prompts_done", (double)n_recs);
            cJSON_AddNumberToObject(summary, "prompts_planned", (double)all.n);
            bool synth = c.ck && dpb_checkpoint_is_synthetic(c.ck);
            cJSON_AddBoolToObject(summary, "random_weights", synth);
            if (synth) cJSON_AddStringToObject(summary, "warning", "random weights: these rates are meaningless");
            cJSON_AddItemToObject(summary, "governance", dpb_governance_json(&gov));
            s2 = write_json(out, "summary.json", summary);
        }
        if (!s2) s2 = write_text(out, "summary.csv", csv);
        if (!s2) {
            char dec[160], jname[300];
            snprintf(dec, sizeof dec, "greedy, seed %lld, at most %lld new tokens, chat template %s", seed, max_new,
                     dpb_chat_template_name(c.tpl));
            snprintf(jname, sizeof jname, "%s at %s", jmodel ? jmodel : "", jep ? jep : "");
            char mode[600];
            if (endpoint) snprintf(mode, sizeof mode, "served at %s", endpoint);
            else snprintf(mode, sizeof mode, "in-process engine (%s backend)", backend);
            dpb_safety_report_info info = {model, mode, c.ck && dpb_checkpoint_is_synthetic(c.ck), jep ? jname : NULL, dec};
            s2 = dpb_safety_report_markdown(&info, &gov, summary, &md);
        }
        if (!s2) s2 = write_text(out, "report.md", md);
        if (!st) st = s2;
    }
    if (st) goto fail;
    if (isatty(2)) fprintf(stderr, "safety: %zu prompts; results in %s\n", n_recs, out);
    dpb_manifest_end_with(man, DPB_OK);
    goto done;
fail:
    if (man) dpb_manifest_end_with(man, st);
    rc = dpb_cli_fail("safety", st);
done:
    dpb_manifest_free(man);
    if (jl) dpb_jsonl_close(jl);
    dpb_refusal_detector_free(det);
    dpb_governance_free(&gov);
    cJSON_Delete(summary);
    free(csv);
    free(md);
    free(recs);
    dpb_tokenizer_free(c.tok);
    dpb_engine_destroy(c.eng);
    if (c.ck) dpb_checkpoint_close(c.ck);
    dpb_safety_set_free(&all);
    return rc;
}
