/* deploybench serve: the OpenAI-compatible server, on deploybench's own
 * engine (--model, src/serve/engine_llm.h) or the synthetic calibration
 * engine (--engine synthetic), behind the same HTTP layer (src/serve/engine.h). */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "cli/cli.h"
#include "core/signal.h"
#include "serve/openai.h"
#include "serve/engine_llm.h"
#include "serve/synthetic.h"

static void usage(void)
{
    printf("usage: deploybench serve --model M [--backend cpu|cuda] [--host ADDR] [--port N] [--max-batch N]\n"
           "                         [--max-queue N] [--max-model-len N] [options]\n"
           "       deploybench serve --engine synthetic [--ttft MS] [--itl MS] [--jitter MS]\n"
           "                         [--tokens-per-chunk K] [--host ADDR] [--port N] [options]\n\n"
           "Serves the OpenAI API as vLLM shapes it: POST /v1/completions, POST /v1/chat/completions\n"
           "(streaming and not; usage in the final chunk with stream_options.include_usage, in every\n"
           "chunk with continuous_usage_stats), GET /v1/models, GET /health, GET /metrics (--model).\n\n"
           "--model M           a Hugging Face folder or synth:PRESET[:SEED][:INIT]: deploybench's engine with\n"
           "                    continuous batching (docs/SERVE.md)\n"
           "--tokenizer PATH    tokenizer file or folder (synth: models need one for text prompts)\n"
           "--chat-template T   harmony, qwen3, chatml or none (default: from the model)\n"
           "--served-model-name NAME  the id clients use (default: the --model argument)\n"
           "--backend B         cpu (default), ref or cuda\n"
           "--threads-engine N  backend threads (default: all cores)\n"
           "--dtype D           bf16 (default) or f32 (reference)\n"
           "--kv-cache-dtype D  auto (default: as --dtype), bf16, f32 or fp8 (E4M3, scale 1; vLLM's\n"
           "                    fp8 / fp8_e4m3): half the KV bytes of bf16\n"
           "--max-batch N       sequence slots running together (default 16); KV is allocated for\n"
           "                    N x max-model-len tokens up front\n"
           "--prefill-chunk N   prompt tokens per engine step, interleaved with decode (default 256)\n"
           "--max-model-len N   context per sequence; longer requests get 400 (default\n"
           "                    min(max_position_embeddings, 4096); synthetic: 1048576)\n"
           "--max-queue N       waiting requests beyond N get 503 (default 1024; synthetic: 0, unlimited)\n"
           "--max-request-time S  a request still running after S s is ended (finish_reason abort;\n"
           "                    default 600, 0: no limit)\n\n"
           "--engine synthetic  answers without a model, on a known schedule: a calibration target\n"
           "                    for measuring the load generator itself, not a model server.\n"
           "                    Schedule: first token TTFT after the request arrives, then chunks of\n"
           "                    K tokens every K*ITL; output length = max_tokens (default 16).\n"
           "--ttft MS           time to the first token (default 50)\n"
           "--itl MS            time per output token after the first (default 10)\n"
           "--jitter MS         each interval gets a uniform offset in [-MS, +MS] (default 0)\n"
           "--tokens-per-chunk K  tokens per SSE chunk after the first (default 1)\n"
           "--seed N            jitter random seed (default 1)\n"
           "--model NAME        the model id served (default synthetic)\n"
           "--max-model-len N   context length; longer requests get 400 (default 1048576)\n"
           "--max-queue N       requests in flight beyond N get 503 (default 0: unlimited)\n"
           "--host ADDR         numeric IPv4 address to bind (default 127.0.0.1)\n"
           "--port N            TCP port, 0 picks a free one (default 8000)\n"
           "--threads N         HTTP threads: 1 = one epoll thread (default), N = a pool\n"
           "--engine-threads N  synthetic engine scheduling threads, requests spread over them (default 1)\n"
           "--max-connections N concurrent connections (default 16384)\n"
           "--max-body-bytes N  request body limit, larger gets 413 (default 8388608)\n"
           "--idle-timeout S    idle (e.g. slow-header) connections are closed after S s (default 60)\n"
           "--read-timeout S    a request's headers and body must all arrive within S s of the connection opening\n"
           "                    (or of the previous response ending), however slowly they trickle (default 30)\n"
           "--port-file PATH    write the bound port there once listening (for tests)\n\n"
           "Stops on SIGINT/SIGTERM.  The file-descriptor limit bounds the connections: raise\n"
           "it with `ulimit -n` for many streams.\n");
}

int dpb_cmd_serve(int argc, char **argv)
{
    const char *engine = NULL, *host = "127.0.0.1", *port_file = NULL;
    dpb_llm_engine_config lc;
    dpb_llm_engine_config_default(&lc);
    bool queue_set = false;
    long long port = 8000, v;
    dpb_synth_engine_config sc;
    dpb_synth_engine_config_default(&sc);
    dpb_http_limits lim;
    dpb_http_limits_default(&lim);
    dpb_status st = DPB_OK;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage();
            return 0;
        }
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED() do { if (!val) return dpb_cli_usage_error("serve", "%s needs a value", a); i++; } while (0)
        if (!strcmp(a, "--engine")) { NEED(); engine = val; }
        else if (!strcmp(a, "--ttft")) { NEED(); st = dpb_cli_parse_double(a, val, 0, 3.6e6, &sc.ttft_ms); }
        else if (!strcmp(a, "--itl")) { NEED(); st = dpb_cli_parse_double(a, val, 0, 3.6e6, &sc.itl_ms); }
        else if (!strcmp(a, "--jitter")) { NEED(); st = dpb_cli_parse_double(a, val, 0, 3.6e6, &sc.jitter_ms); }
        else if (!strcmp(a, "--tokens-per-chunk")) { NEED(); st = dpb_cli_parse_i64(a, val, 1, 4096, &v); sc.tokens_per_chunk = (uint32_t)v; }
        else if (!strcmp(a, "--seed")) { NEED(); st = dpb_cli_parse_i64(a, val, 0, INT64_MAX, &v); sc.seed = (uint64_t)v; }
        else if (!strcmp(a, "--model")) { NEED(); sc.model_id = val; lc.model = val; }
        else if (!strcmp(a, "--max-model-len")) { NEED(); st = dpb_cli_parse_i64(a, val, 2, 1LL << 40, &v); sc.max_model_len = (uint64_t)v; lc.max_model_len = v; }
        else if (!strcmp(a, "--max-queue")) { NEED(); st = dpb_cli_parse_i64(a, val, 0, 1LL << 40, &v); sc.max_queue = (uint64_t)v; lc.max_queue = (uint64_t)v; queue_set = true; }
        else if (!strcmp(a, "--tokenizer")) { NEED(); lc.tokenizer = val; }
        else if (!strcmp(a, "--chat-template")) { NEED(); lc.chat_template = val; }
        else if (!strcmp(a, "--served-model-name")) { NEED(); lc.model_id = val; }
        else if (!strcmp(a, "--backend")) {
            NEED();
            if (strcmp(val, "cpu") && strcmp(val, "ref") && strcmp(val, "cuda"))
                return dpb_cli_usage_error("serve", "--backend takes cpu, ref or cuda, not '%s'", val);
            lc.backend = val;
        }
        else if (!strcmp(a, "--threads-engine")) { NEED(); st = dpb_cli_parse_i64(a, val, 1, 1024, &v); lc.threads = (int)v; }
        else if (!strcmp(a, "--dtype")) {
            NEED();
            if (!strcmp(val, "bf16")) lc.dtype = DPB_ENGINE_BF16;
            else if (!strcmp(val, "f32")) lc.dtype = DPB_ENGINE_F32;
            else return dpb_cli_usage_error("serve", "--dtype takes bf16 or f32, not '%s'", val);
        }
        else if (!strcmp(a, "--kv-cache-dtype")) { NEED(); if ((st = dpb_engine_kv_parse(val, &lc.kv))) dpb_error_prefix(st, "--kv-cache-dtype"); }
        else if (!strcmp(a, "--max-batch")) { NEED(); st = dpb_cli_parse_i64(a, val, 1, 4096, &v); lc.max_batch = (int)v; }
        else if (!strcmp(a, "--max-request-time")) { NEED(); st = dpb_cli_parse_double(a, val, 0, 1e7, &lc.max_request_s); }
        else if (!strcmp(a, "--prefill-chunk")) { NEED(); st = dpb_cli_parse_i64(a, val, 1, 1 << 20, &v); lc.prefill_chunk = v; }
        else if (!strcmp(a, "--host")) { NEED(); host = val; }
        else if (!strcmp(a, "--port")) { NEED(); st = dpb_cli_parse_i64(a, val, 0, 65535, &port); }
        else if (!strcmp(a, "--engine-threads")) { NEED(); st = dpb_cli_parse_i64(a, val, 1, 256, &v); sc.threads = (unsigned)v; }
        else if (!strcmp(a, "--threads")) { NEED(); st = dpb_cli_parse_i64(a, val, 1, 256, &v); lim.threads = (unsigned)v; }
        else if (!strcmp(a, "--max-connections")) { NEED(); st = dpb_cli_parse_i64(a, val, 1, 1000000, &v); lim.max_connections = (unsigned)v; }
        else if (!strcmp(a, "--max-body-bytes")) { NEED(); st = dpb_cli_parse_i64(a, val, 1024, 1LL << 32, &v); lim.max_body_bytes = (size_t)v; }
        else if (!strcmp(a, "--idle-timeout")) { NEED(); st = dpb_cli_parse_i64(a, val, 1, 86400, &v); lim.idle_timeout_s = (unsigned)v; }
        else if (!strcmp(a, "--read-timeout")) { NEED(); st = dpb_cli_parse_i64(a, val, 1, 86400, &v); lim.read_timeout_s = (unsigned)v; }
        else if (!strcmp(a, "--port-file")) { NEED(); port_file = val; }
        else return dpb_cli_usage_error("serve", "unknown option '%s'", a);
#undef NEED
        if (st) return dpb_cli_fail("serve", st);
    }
    bool synthetic = engine != NULL;
    if (engine && strcmp(engine, "synthetic") != 0)
        return dpb_cli_usage_error("serve", "--engine: '%s' is not an engine (only 'synthetic'; use --model for a model)", engine);
    if (!engine && !lc.model) return dpb_cli_usage_error("serve", "give --model M (or --engine synthetic)");
    if (!queue_set) lc.max_queue = 1024;
    signal(SIGPIPE, SIG_IGN);
    dpb_serve_engine *eng;
    if (synthetic) st = dpb_synth_engine_create(&sc, &eng);
    else st = dpb_llm_engine_create(&lc, &eng);
    if (st) return dpb_cli_fail("serve", st);
#define DESTROY_ENG() (synthetic ? dpb_synth_engine_destroy(eng) : dpb_llm_engine_destroy(eng))
    dpb_openai_server *srv;
    if ((st = dpb_openai_server_start(eng, host, (uint16_t)port, &lim, &srv))) {
        DESTROY_ENG();
        return dpb_cli_fail("serve", st);
    }
    unsigned bound = dpb_openai_server_port(srv);
    if (synthetic)
        fprintf(stderr, "deploybench serve: synthetic engine (ttft %.3g ms, itl %.3g ms, jitter %.3g ms, %u tokens/chunk) on http://%s:%u\n",
                sc.ttft_ms, sc.itl_ms, sc.jitter_ms, sc.tokens_per_chunk, host, bound);
    else
        fprintf(stderr, "deploybench serve: %s on the %s backend, %d slots x %llu tokens, on http://%s:%u\n",
                eng->model_id, eng->kind, lc.max_batch, (unsigned long long)eng->max_model_len, host, bound);
    if (port_file) {
        char b[16];
        int n = snprintf(b, sizeof b, "%u\n", bound);
        FILE *f = fopen(port_file, "w");
        if (!f || fwrite(b, 1, (size_t)n, f) != (size_t)n) {
            if (f) fclose(f);
            DESTROY_ENG();
            dpb_openai_server_stop(srv);
            fprintf(stderr, "deploybench serve: --port-file %s: cannot write\n", port_file);
            return 1;
        }
        fclose(f);
    }
    while (!dpb_interrupted()) pause();
    DESTROY_ENG();
    dpb_openai_server_stop(srv);
    return 0;
}
