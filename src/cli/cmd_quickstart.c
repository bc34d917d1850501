/* deploybench quickstart: the README's main job.  Generates a small
 * synthetic gpt-oss-architecture model in memory, runs a handful of
 * fixed-length requests on the engine and prints real TTFT / TPOT / E2E
 * figures from the engine's own per-token timestamps. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "core/signal.h"
#include "core/timeutil.h"
#include "engine/engine.h"
#include "format/checkpoint.h"
#include "models/inspect.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: deploybench quickstart [--model M] [--backend cpu|ref|cuda] [--prompt-tokens N] [--gen-tokens N]\n"
            "                              [--requests N] [--threads N] [--seed S]\n\n"
            "A first measurement in under a minute: N requests of fixed length (random prompt ids, greedy,\n"
            "end-of-sequence ignored) on deploybench's own engine, with TTFT, TPOT and end-to-end latency from\n"
            "the engine's per-token timestamps. Without --model it runs synth:gpt-oss-1b (the gpt-oss\n"
            "architecture at ~1.2B parameters, random weights generated in memory) on the CPU.\n"
            "The full benchmark grid is `deploybench latency` (see docs/).\n\n"
            "  --model M          a model folder or synth:PRESET[:SEED][:INIT] (default synth:gpt-oss-1b)\n"
            "  --backend B        cpu (default), ref or cuda\n"
            "  --prompt-tokens N  prompt length (default 128)\n"
            "  --gen-tokens N     tokens generated per request (default 32)\n"
            "  --requests N       measured requests after one warm-up (default 5)\n"
            "  --threads N        CPU threads (default: all cores)\n"
            "  --seed S           prompt ids seed (default 1)\n");
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v[n]. */
static double pct(const double *v, int n, double p)
{
    int k = (int)(p / 100.0 * n + 0.999999);
    if (k < 1) k = 1;
    if (k > n) k = n;
    return v[k - 1];
}

int dpb_cmd_quickstart(int argc, char **argv)
{
    enum { O_MODEL = 1, O_BACKEND, O_PT, O_GT, O_REQ, O_THREADS, O_SEED };
    static const struct option opts[] = {
        {"model", required_argument, 0, O_MODEL},      {"backend", required_argument, 0, O_BACKEND},
        {"prompt-tokens", required_argument, 0, O_PT}, {"gen-tokens", required_argument, 0, O_GT},
        {"requests", required_argument, 0, O_REQ},     {"threads", required_argument, 0, O_THREADS},
        {"seed", required_argument, 0, O_SEED},        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *model = "synth:gpt-oss-1b", *backend = "cpu";
    long long pt = 128, gt = 32, nreq = 5, threads = 0, seed = 1, v;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        dpb_status st = DPB_OK;
        switch (c) {
        case O_MODEL: model = optarg; break;
        case O_BACKEND:
            if (dpb_cli_check_backend("quickstart", optarg)) return 2;
            backend = optarg;
            break;
        case O_PT: st = dpb_cli_parse_i64("--prompt-tokens", optarg, 1, 1 << 20, &pt); break;
        case O_GT: st = dpb_cli_parse_i64("--gen-tokens", optarg, 2, 1 << 20, &gt); break;
        case O_REQ: st = dpb_cli_parse_i64("--requests", optarg, 1, 100000, &nreq); break;
        case O_THREADS: st = dpb_cli_parse_i64("--threads", optarg, 1, 4096, &threads); break;
        case O_SEED: st = dpb_cli_parse_i64("--seed", optarg, 0, INT64_MAX, &v); seed = v; break;
        case 'h': usage(stdout); return 0;
        default: return dpb_cli_usage_error("quickstart", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
        if (st) return dpb_cli_fail("quickstart", st);
    }
    if (optind < argc) return dpb_cli_usage_error("quickstart", "unexpected argument '%s'", argv[optind]);

    uint64_t t0 = dpb_now_ns();
    fprintf(stderr, "quickstart: loading %s ...\n", model);
    dpb_checkpoint *ck;
    dpb_status st = dpb_checkpoint_open(model, NULL, &ck);
    if (st) return dpb_cli_fail("quickstart", st);
    const dpb_model_config *cfg = dpb_checkpoint_config(ck);
    dpb_engine_opts eo = {0};
    eo.backend = backend;
    eo.threads = (int)threads;
    eo.max_ctx = pt + gt;
    eo.max_seqs = 1;
    dpb_engine *e;
    st = dpb_engine_create(ck, &eo, &e);
    if (st) {
        dpb_checkpoint_close(ck);
        return dpb_cli_fail("quickstart", st);
    }
    dpb_backend *be = dpb_engine_backend(e);
    double load_s = (double)(dpb_now_ns() - t0) / 1e9;
    printf("deploybench quickstart: %s (%s, %lld layers, hidden %lld%s) on the %s backend (%d threads, %s)\n",
           model, dpb_arch_name(cfg->arch), (long long)cfg->num_layers, (long long)cfg->hidden_size,
           dpb_checkpoint_is_synthetic(ck) ? ", random weights" : "", be->ops->name, be->threads,
           be->simd ? be->simd : "-");
    printf("loaded in %.1f s; %lld requests of %lld prompt tokens + %lld generated (greedy, eos ignored), after 1 warm-up\n\n",
           load_s, nreq, pt, gt);

    int32_t *prompt = malloc((size_t)pt * sizeof *prompt);
    double *ttft = calloc((size_t)nreq, sizeof *ttft), *tpot = calloc((size_t)nreq, sizeof *tpot);
    double *e2e = calloc((size_t)nreq, sizeof *e2e);
    if (!prompt || !ttft || !tpot || !e2e) {
        st = dpb_error_set(DPB_E_NOMEM, "out of memory");
        goto out;
    }
    printf("%4s %10s %10s %10s %10s\n", "req", "TTFT_ms", "TPOT_ms", "E2E_ms", "decode_tok/s");
    int done = 0;
    for (long long r = -1; r < nreq && !dpb_interrupted(); r++) {
        uint64_t x = (uint64_t)seed * 0x9e3779b97f4a7c15ull + (uint64_t)(r + 2);
        for (long long i = 0; i < pt; i++) {
            x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
            prompt[i] = (int32_t)((x * 0x2545f4914f6cdd1dull >> 33) % (uint64_t)cfg->vocab_size);
        }
        dpb_gen_request rq = {0};
        rq.prompt = prompt;
        rq.n_prompt = pt;
        rq.max_new = gt;
        rq.sampling = dpb_sampling_greedy();
        rq.ignore_eos = true;
        dpb_gen_result res;
        st = dpb_engine_generate(e, &rq, 1, &res, NULL, NULL);
        if (st) goto out;
        if (r >= 0 && res.n >= 2) {
            double t_first = (double)(res.t_ns[0] - res.t_start_ns) / 1e6;
            double t_all = (double)(res.t_ns[res.n - 1] - res.t_start_ns) / 1e6;
            ttft[done] = t_first;
            e2e[done] = t_all;
            tpot[done] = (t_all - t_first) / (double)(res.n - 1);
            printf("%4lld %10.2f %10.3f %10.1f %10.1f\n", r, ttft[done], tpot[done], e2e[done], 1000.0 / tpot[done]);
            fflush(stdout);
            done++;
        }
        dpb_gen_result_free(&res);
    }
    if (done > 0) {
        qsort(ttft, (size_t)done, sizeof *ttft, cmp_double);
        qsort(tpot, (size_t)done, sizeof *tpot, cmp_double);
        qsort(e2e, (size_t)done, sizeof *e2e, cmp_double);
        printf("\n%-18s %10s %10s %10s   (nearest-rank percentiles over %d requests)\n", "", "p50", "p95", "max", done);
        printf("%-18s %10.2f %10.2f %10.2f\n", "TTFT ms", pct(ttft, done, 50), pct(ttft, done, 95), ttft[done - 1]);
        printf("%-18s %10.3f %10.3f %10.3f\n", "TPOT ms", pct(tpot, done, 50), pct(tpot, done, 95), tpot[done - 1]);
        printf("%-18s %10.1f %10.1f %10.1f\n", "E2E ms", pct(e2e, done, 50), pct(e2e, done, 95), e2e[done - 1]);
        printf("%-18s %10.1f\n", "decode tok/s (p50)", 1000.0 / pct(tpot, done, 50));
        printf("%-18s %10.1f\n", "prefill tok/s (p50)", (double)pt / pct(ttft, done, 50) * 1000.0);
        printf("\nKV cache allocated: %llu bytes. Next: deploybench inspect --preset gpt-oss-20b; deploybench help.\n",
               (unsigned long long)dpb_engine_kv_bytes(e));
    }
    if (dpb_interrupted()) st = dpb_error_set(DPB_E_INTERRUPTED, "interrupted after %d requests", done);
out:
    free(prompt);
    free(ttft);
    free(tpot);
    free(e2e);
    dpb_engine_destroy(e);
    dpb_checkpoint_close(ck);
    return st ? dpb_cli_fail("quickstart", st) : 0;
}
