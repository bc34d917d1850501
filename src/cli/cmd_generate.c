/* deploybench generate: run the engine on one prompt, stream the tokens,
 * report TTFT and decode speed from the engine's own timestamps. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "cli/cli.h"
#include "engine/engine.h"
#include "tokenizer/chat_choose.h"
#include "tokenizer/tokenizer.h"
#include "format/checkpoint.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: deploybench generate --model M (--prompt TEXT [--chat] | --prompt-ids 1,2,3) [--tokenizer PATH]\n"
            "                            [--max-new-tokens N] [--greedy | --temperature X [--top-p P] [--top-k K]\n"
            "                            [--min-p P] [--seed S]] [--ignore-eos] [--backend cpu|ref|cuda] [--threads N]\n"
            "                            [--dtype bf16|f32] [--max-context N] [--json]\n\n"
            "Generates a continuation with deploybench's own engine and prints the tokens as they come\n"
            "(stdout), then TTFT and decode speed measured by the engine (stderr).\n\n"
            "  --model M          a Hugging Face folder, or synth:PRESET[:SEED][:INIT] (random weights in memory)\n"
            "  --prompt TEXT      text prompt, tokenized with the model's tokenizer (its folder's, or --tokenizer)\n"
            "  --prompt-ids LIST  token ids, comma-separated\n"
            "  --chat             wrap the prompt in the model's chat template as a user message\n"
            "  --chat-template T  harmony, qwen3, chatml or none (default: from the model folder or architecture)\n"
            "  --tokenizer PATH   a tokenizer folder or file (synth: models; sizes their vocabulary to it)\n"
            "  --max-new-tokens N tokens to generate at most (default 64)\n"
            "  --greedy           argmax decoding (the default when generation_config.json does not sample)\n"
            "  --temperature X    sampling temperature, 0 < X <= 100 (0 means greedy)\n"
            "  --top-p P          nucleus sampling, 0 < P <= 1 (default: generation_config, else 1)\n"
            "  --top-k K          keep the K most likely tokens, 0 = off\n"
            "  --min-p P          drop tokens below P x the top probability, 0 <= P < 1\n"
            "  --seed S           sampling seed (default 0)\n"
            "  --ignore-eos       do not stop on end-of-sequence ids: exactly N tokens (benchmarks)\n"
            "  --backend B        cpu (default: threads + SIMD), ref (plain reference code, slow) or cuda\n"
            "  --threads N        cpu threads, 1..1024 (default: all cores)\n"
            "  --dtype D          bf16 (default: bf16 KV cache and activations) or f32 (reference)\n"
            "  --max-context N    KV cache tokens per sequence (default: prompt + max-new-tokens)\n"
            "  --kv-dtype D       KV cache element type: auto (bf16 in bf16 mode, f32 in f32 mode), bf16, f32\n"
            "                     or fp8 (E4M3 with scale 1, as vLLM's --kv-cache-dtype fp8 without scales)\n"
            "  --experts-per-token K   ablation: gpt-oss active experts per token (default: the config's)\n"
            "  --no-sliding-window     ablation: sliding-window layers attend to the whole context\n"
            "  --json             one JSON object: ids, per-token times (ms from the start), TTFT, TPOT,\n"
            "                     prefill and decode tok/s, stop reason, KV bytes\n"
            "Exit codes: 0 ok, 2 bad input (with a message naming the option), 1 other failure.\n");
}

static dpb_status parse_ids(const char *s, int32_t **out, int64_t *n)
{
    *out = NULL;
    *n = 0;
    size_t len = strlen(s), cap = 1;
    for (size_t i = 0; i < len; i++) cap += s[i] == ',';
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids) return dpb_error_set(DPB_E_NOMEM, "out of memory");
    const char *p = s;
    int64_t k = 0;
    for (;;) {
        while (*p == ' ') p++;
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < 0 || v > INT32_MAX) {
            free(ids);
            return dpb_error_set(DPB_E_ARG, "--prompt-ids: '%.40s' is not a token id (a whole number >= 0)", p);
        }
        ids[k++] = (int32_t)v;
        p = end;
        while (*p == ' ') p++;
        if (*p == 0) break;
        if (*p != ',') {
            free(ids);
            return dpb_error_set(DPB_E_ARG, "--prompt-ids: expected ',' at '%.40s'", p);
        }
        p++;
    }
    *out = ids;
    *n = k;
    return DPB_OK;
}

typedef struct stream_ctx {
    int json;
    dpb_tokenizer_stream *ts; /* text streaming when the model has a tokenizer */
} stream_ctx;

static bool on_token(void *user, int req, int32_t id, uint64_t t)
{
    stream_ctx *sc = user;
    (void)req;
    (void)t;
    if (sc->json) return true;
    if (sc->ts) {
        const char *txt;
        size_t len;
        if (dpb_tokenizer_stream_push(sc->ts, id, &txt, &len) == DPB_OK && len) fwrite(txt, 1, len, stdout);
    } else printf("%d ", id);
    fflush(stdout);
    return true;
}

/* Tokenizes --prompt (wrapped in the chat template with --chat). */
static dpb_status text_prompt(const dpb_checkpoint *ck, const char *prompt, int chat, const char *tpl_name,
                              dpb_tokenizer **tok, int32_t **ids, int64_t *n_ids)
{
    const char *path = dpb_checkpoint_tokenizer_path(ck);
    if (!path)
        return dpb_error_set(DPB_E_ARG, "%s has no tokenizer: give --tokenizer DIR|FILE, or token ids with --prompt-ids",
                             dpb_checkpoint_dir(ck) ? dpb_checkpoint_dir(ck) : "this synthetic model");
    dpb_status st = dpb_tokenizer_load(path, tok);
    if (st) return st;
    char *text = NULL;
    size_t len = strlen(prompt);
    unsigned flags = 0;
    if (chat) {
        dpb_chat_template tpl;
        if ((st = dpb_chat_template_choose(ck, tpl_name, &tpl))) return st;
        dpb_chat_options co;
        dpb_chat_options_default(&co);
        dpb_chat_message m = {"user", prompt};
        if ((st = dpb_chat_render(tpl, &co, &m, 1, &text, &len))) return st;
        flags = DPB_TOK_ALLOW_SPECIAL; /* the template's own markers */
    }
    dpb_tokens t = {0};
    st = dpb_tokenizer_encode(*tok, text ? text : prompt, len, flags, &t);
    free(text);
    if (st) { dpb_tokens_free(&t); return st; }
    *ids = t.ids;
    *n_ids = (int64_t)t.n;
    return DPB_OK;
}

static const char *stop_name(dpb_stop_reason r)
{
    return r == DPB_STOP_EOS ? "eos" : r == DPB_STOP_CONTEXT ? "context" : "length";
}

int dpb_cmd_generate(int argc, char **argv)
{
    enum { O_MODEL = 256, O_PROMPT, O_IDS, O_CHAT, O_MAXNEW, O_GREEDY, O_TEMP, O_TOPP, O_TOPK, O_MINP, O_SEED,
           O_IGNORE, O_BACKEND, O_THREADS, O_DTYPE, O_JSON, O_CTX, O_TOK, O_KV, O_EXPERTS, O_NOSLIDE, O_TPL };
    static const struct option opts[] = {
        {"model", required_argument, 0, O_MODEL}, {"prompt", required_argument, 0, O_PROMPT},
        {"prompt-ids", required_argument, 0, O_IDS}, {"chat", no_argument, 0, O_CHAT},
        {"max-new-tokens", required_argument, 0, O_MAXNEW}, {"greedy", no_argument, 0, O_GREEDY},
        {"temperature", required_argument, 0, O_TEMP}, {"top-p", required_argument, 0, O_TOPP},
        {"top-k", required_argument, 0, O_TOPK}, {"min-p", required_argument, 0, O_MINP},
        {"seed", required_argument, 0, O_SEED}, {"ignore-eos", no_argument, 0, O_IGNORE},
        {"backend", required_argument, 0, O_BACKEND}, {"threads", required_argument, 0, O_THREADS},
        {"dtype", required_argument, 0, O_DTYPE}, {"json", no_argument, 0, O_JSON},
        {"max-context", required_argument, 0, O_CTX}, {"tokenizer", required_argument, 0, O_TOK},
        {"chat-template", required_argument, 0, O_TPL},
        {"kv-dtype", required_argument, 0, O_KV}, {"experts-per-token", required_argument, 0, O_EXPERTS},
        {"no-sliding-window", no_argument, 0, O_NOSLIDE},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *model = NULL, *prompt = NULL, *ids_arg = NULL, *backend = "cpu", *tpl_name = NULL;
    int chat = 0, greedy = 0, sample_opt = 0, ignore_eos = 0, json = 0;
    long long max_new = 64, threads = 0, top_k = -1, max_ctx = 0, experts = 0;
    dpb_engine_kv kv = DPB_ENGINE_KV_AUTO;
    int no_slide = 0;
    double temp = -1, top_p = -1, min_p = -1;
    long long seed = 0;
    dpb_engine_dtype dtype = DPB_ENGINE_BF16;
    dpb_checkpoint_opts co = {0};
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        dpb_status st = DPB_OK;
        switch (c) {
        case O_MODEL: model = optarg; break;
        case O_PROMPT: prompt = optarg; break;
        case O_IDS: ids_arg = optarg; break;
        case O_CHAT: chat = 1; break;
        case O_MAXNEW: st = dpb_cli_parse_i64("--max-new-tokens", optarg, 1, 1 << 24, &max_new); break;
        case O_GREEDY: greedy = 1; break;
        case O_TEMP: st = dpb_cli_parse_double("--temperature", optarg, 0, 100, &temp); sample_opt = 1; break;
        case O_TOPP: st = dpb_cli_parse_double("--top-p", optarg, 1e-9, 1, &top_p); sample_opt = 1; break;
        case O_TOPK: st = dpb_cli_parse_i64("--top-k", optarg, 0, 1 << 30, &top_k); sample_opt = 1; break;
        case O_MINP: st = dpb_cli_parse_double("--min-p", optarg, 0, 0.999999, &min_p); sample_opt = 1; break;
        case O_SEED: st = dpb_cli_parse_i64("--seed", optarg, 0, INT64_MAX, &seed); break;
        case O_IGNORE: ignore_eos = 1; break;
        case O_BACKEND:
            if (dpb_cli_check_backend("generate", optarg)) return 2;
            backend = optarg;
            break;
        case O_THREADS: st = dpb_cli_parse_i64("--threads", optarg, 1, 1024, &threads); break;
        case O_DTYPE:
            if (strcmp(optarg, "bf16") == 0) dtype = DPB_ENGINE_BF16;
            else if (strcmp(optarg, "f32") == 0) dtype = DPB_ENGINE_F32;
            else return dpb_cli_usage_error("generate", "--dtype takes bf16 or f32, not '%s'", optarg);
            break;
        case O_JSON: json = 1; break;
        case O_CTX: st = dpb_cli_parse_i64("--max-context", optarg, 1, 1ll << 24, &max_ctx); break;
        case O_TOK: co.tokenizer = optarg; break;
        case O_TPL: tpl_name = optarg; break;
        case O_KV:
            if (dpb_engine_kv_parse(optarg, &kv))
                return dpb_cli_usage_error("generate", "--kv-dtype takes auto, bf16, f32 or fp8, not '%s'", optarg);
            break;
        case O_EXPERTS: st = dpb_cli_parse_i64("--experts-per-token", optarg, 1, 64, &experts); break;
        case O_NOSLIDE: no_slide = 1; break;
        case 'h': usage(stdout); return 0;
        default: return dpb_cli_usage_error("generate", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
        if (st) return dpb_cli_fail("generate", st);
    }
    if (optind < argc) return dpb_cli_usage_error("generate", "unexpected argument '%s'", argv[optind]);
    if (!model) return dpb_cli_usage_error("generate", "--model is required");
    if (!!prompt + !!ids_arg != 1) return dpb_cli_usage_error("generate", "give exactly one of --prompt and --prompt-ids");
    if (greedy && sample_opt)
        return dpb_cli_usage_error("generate", "--greedy cannot be combined with --temperature/--top-p/--top-k/--min-p");
    if (chat && !prompt) return dpb_cli_usage_error("generate", "--chat needs a text --prompt");
    int32_t *ids = NULL;
    int64_t n_ids = 0;
    dpb_status st = DPB_OK;
    if (ids_arg && (st = parse_ids(ids_arg, &ids, &n_ids))) return dpb_cli_fail("generate", st);

    dpb_checkpoint *ck = NULL;
    dpb_engine *e = NULL;
    dpb_tokenizer *tok = NULL;
    dpb_tokenizer_stream ts;
    int have_stream = 0;
    int rc = 0;
    if ((st = dpb_checkpoint_open(model, &co, &ck))) goto fail;
    if (prompt && (st = text_prompt(ck, prompt, chat, tpl_name, &tok, &ids, &n_ids))) goto fail;
    if (!tok && dpb_checkpoint_tokenizer_path(ck) && dpb_tokenizer_load(dpb_checkpoint_tokenizer_path(ck), &tok) != DPB_OK)
        tok = NULL; /* ids in, ids out when the tokenizer cannot be read */
    if (tok) {
        dpb_tokenizer_stream_init(&ts, tok, true);
        have_stream = 1;
    }
    const dpb_model_config *cfg = dpb_checkpoint_config(ck);
    const dpb_generation_config *gen = dpb_checkpoint_generation(ck);
    int64_t maxpos = cfg->max_position_embeddings > 0 ? cfg->max_position_embeddings : 4096;
    int64_t ctx_limit = max_ctx ? max_ctx : maxpos;
    if (n_ids > ctx_limit) {
        st = dpb_error_set(DPB_E_RANGE, "the prompt has %lld tokens but the context is %lld tokens", (long long)n_ids,
                           (long long)ctx_limit);
        goto fail;
    }
    for (int64_t i = 0; i < n_ids; i++)
        if (ids[i] >= cfg->vocab_size) {
            st = dpb_error_set(DPB_E_RANGE, "--prompt-ids: token id %d (position %lld) is outside the vocabulary [0, %lld)",
                               ids[i], (long long)i, (long long)cfg->vocab_size);
            goto fail;
        }
    dpb_engine_opts eo = {0};
    eo.backend = backend;
    eo.threads = (int)threads;
    eo.dtype = dtype;
    eo.max_ctx = max_ctx ? max_ctx : (n_ids + max_new < maxpos ? n_ids + max_new : maxpos);
    eo.kv = kv;
    eo.experts_per_tok = experts;
    eo.no_sliding = no_slide;
    if ((st = dpb_engine_create(ck, &eo, &e))) goto fail;

    dpb_gen_request q = {0};
    q.prompt = ids;
    q.n_prompt = n_ids;
    q.max_new = max_new;
    q.ignore_eos = ignore_eos;
    if (gen->n_eos > 0) { q.n_stop = gen->n_eos; q.stop_ids = gen->eos_ids; }
    else { q.n_stop = cfg->n_eos; q.stop_ids = cfg->eos_ids; }
    bool do_sample = sample_opt ? true : (greedy ? false : (gen->present && gen->do_sample));
    if (temp == 0) do_sample = false;
    if (do_sample) {
        q.sampling.greedy = false;
        q.sampling.temperature = temp > 0 ? temp : (gen->temperature > 0 ? gen->temperature : 1.0);
        q.sampling.top_p = top_p > 0 ? top_p : (gen->top_p > 0 && gen->top_p <= 1 ? gen->top_p : 1.0);
        q.sampling.top_k = top_k >= 0 ? top_k : (gen->top_k > 0 ? gen->top_k : 0);
        q.sampling.min_p = min_p >= 0 ? min_p : (gen->min_p > 0 && gen->min_p < 1 ? gen->min_p : 0);
        q.sampling.seed = (uint64_t)seed;
    } else q.sampling = dpb_sampling_greedy();

    stream_ctx sc = {json, have_stream ? &ts : NULL};
    dpb_gen_result res;
    if ((st = dpb_engine_generate(e, &q, 1, &res, on_token, &sc))) goto fail;
    if (!json && have_stream) {
        const char *tail;
        size_t tl;
        if (dpb_tokenizer_stream_finish(&ts, &tail, &tl) == DPB_OK && tl) fwrite(tail, 1, tl, stdout);
    }
    if (!json) printf("\n");
    double ttft = res.n ? (double)(res.t_ns[0] - res.t_start_ns) / 1e6 : NAN;
    double decode_ms = res.n > 1 ? (double)(res.t_ns[res.n - 1] - res.t_ns[0]) / 1e6 : NAN;
    double tpot = res.n > 1 ? decode_ms / (double)(res.n - 1) : NAN;
    double prefill_s = (double)(res.t_prefill_done_ns - res.t_start_ns) / 1e9;
    dpb_backend *be = dpb_engine_backend(e);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "model", model);
        cJSON_AddStringToObject(o, "backend", be->ops->name);
        cJSON_AddNumberToObject(o, "threads", be->threads);
        cJSON_AddStringToObject(o, "simd", be->simd);
        cJSON_AddStringToObject(o, "dtype", dtype == DPB_ENGINE_F32 ? "f32" : "bf16");
        cJSON_AddNumberToObject(o, "prompt_tokens", (double)n_ids);
        cJSON_AddNumberToObject(o, "generated_tokens", (double)res.n);
        cJSON *a = cJSON_AddArrayToObject(o, "ids");
        cJSON *tm = cJSON_AddArrayToObject(o, "token_times_ms");
        for (int64_t i = 0; i < res.n; i++) {
            cJSON_AddItemToArray(a, cJSON_CreateNumber(res.ids[i]));
            cJSON_AddItemToArray(tm, cJSON_CreateNumber((double)(res.t_ns[i] - res.t_start_ns) / 1e6));
        }
        if (tok) {
            char *txt = NULL;
            size_t tl;
            if (dpb_tokenizer_decode(tok, res.ids, (size_t)res.n, true, &txt, &tl) == DPB_OK)
                cJSON_AddStringToObject(o, "text", txt);
            free(txt);
        }
        cJSON_AddNumberToObject(o, "ttft_ms", ttft);
        if (res.n > 1) {
            cJSON_AddNumberToObject(o, "tpot_ms", tpot);
            cJSON_AddNumberToObject(o, "decode_tok_s", 1000.0 / tpot);
        } else {
            cJSON_AddNullToObject(o, "tpot_ms");
            cJSON_AddStringToObject(o, "tpot_unavailable", "fewer than 2 tokens generated");
        }
        cJSON_AddNumberToObject(o, "prefill_tok_s", (double)n_ids / prefill_s);
        cJSON_AddStringToObject(o, "stop_reason", stop_name(res.stop));
        cJSON_AddNumberToObject(o, "kv_bytes", (double)dpb_engine_kv_bytes(e));
        cJSON_AddNumberToObject(o, "workspace_bytes", (double)dpb_engine_workspace_bytes(e));
        cJSON_AddNumberToObject(o, "max_context", (double)dpb_engine_max_ctx(e));
        char *s = cJSON_Print(o);
        printf("%s\n", s);
        cJSON_free(s);
        cJSON_Delete(o);
    } else {
        fprintf(stderr, "prompt %lld tokens, generated %lld (stop: %s); TTFT %.2f ms, prefill %.1f tok/s", (long long)n_ids,
                (long long)res.n, stop_name(res.stop), ttft, (double)n_ids / prefill_s);
        if (res.n > 1) fprintf(stderr, ", TPOT %.2f ms (%.1f tok/s)", tpot, 1000.0 / tpot);
        fprintf(stderr, "; %s backend, %d threads, %s, KV %llu bytes\n", be->ops->name, be->threads, be->simd,
                (unsigned long long)dpb_engine_kv_bytes(e));
    }
    dpb_gen_result_free(&res);
    goto done;
fail:
    rc = dpb_cli_fail("generate", st);
done:
    if (have_stream) dpb_tokenizer_stream_free(&ts);
    dpb_tokenizer_free(tok);
    dpb_engine_destroy(e);
    if (ck) dpb_checkpoint_close(ck);
    free(ids);
    return rc;
}
