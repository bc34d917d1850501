/* In-process side of bench/serve/overhead.sh: the same prompts the HTTP side
 * sends, through dpb_engine_generate one at a time on a warm engine.  Prints
 * one JSON line per request: ttft_ms (from just before the generate call to
 * the first token sampled; the prompt is tokenized before), token_times_ms
 * (from the same start), prompt_tokens, generated_tokens.
 *
 * usage: serve_inproc MODEL TOKENIZER PROMPTS_FILE GEN BACKEND THREADS WARMUP */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/timeutil.h"
#include "engine/engine.h"
#include "format/checkpoint.h"
#include "tokenizer/tokenizer.h"

static int fail(const char *what)
{
    fprintf(stderr, "serve_inproc: %s: %s\n", what, dpb_error_message());
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 8) {
        fprintf(stderr, "usage: serve_inproc MODEL TOKENIZER PROMPTS_FILE GEN BACKEND THREADS WARMUP\n");
        return 2;
    }
    int64_t gen = atoll(argv[4]);
    int warm = atoi(argv[7]);
    dpb_checkpoint_opts co = {0};
    co.tokenizer = argv[2];
    dpb_checkpoint *ck;
    if (dpb_checkpoint_open(argv[1], &co, &ck)) return fail("model");
    dpb_tokenizer *tok;
    if (dpb_tokenizer_load(argv[2], &tok)) return fail("tokenizer");
    dpb_engine_opts eo = {0};
    eo.backend = argv[5];
    eo.threads = atoi(argv[6]);
    eo.max_ctx = 4096;
    eo.max_seqs = 1;
    dpb_engine *e;
    if (dpb_engine_create(ck, &eo, &e)) return fail("engine");
    FILE *f = fopen(argv[3], "r");
    if (!f) {
        fprintf(stderr, "serve_inproc: cannot open %s\n", argv[3]);
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    dpb_tokens t = {0};
    int k = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        t.n = 0;
        if (dpb_tokenizer_encode(tok, line, (size_t)n, 0, &t)) return fail("encode");
        /* the first prompts warm the engine up, as the HTTP side's --warmup */
        for (int rep = 0; rep < (k == 0 ? warm + 1 : 1); rep++) {
            dpb_gen_request q = {0};
            q.prompt = t.ids;
            q.n_prompt = (int64_t)t.n;
            q.max_new = gen;
            q.ignore_eos = true;
            q.sampling = dpb_sampling_greedy();
            dpb_gen_result r;
            uint64_t t0 = dpb_now_ns();
            if (dpb_engine_generate(e, &q, 1, &r, NULL, NULL)) return fail("generate");
            if (rep == (k == 0 ? warm : 0)) {
                printf("{\"prompt_tokens\":%zu,\"generated_tokens\":%lld,\"ttft_ms\":%.6f,\"token_times_ms\":[", t.n,
                       (long long)r.n, r.n ? (double)(r.t_ns[0] - t0) / 1e6 : -1.0);
                for (int64_t i = 0; i < r.n; i++) printf(i ? ",%.6f" : "%.6f", (double)(r.t_ns[i] - t0) / 1e6);
                printf("]}\n");
            }
            dpb_gen_result_free(&r);
        }
        k++;
    }
    free(line);
    fclose(f);
    dpb_tokens_free(&t);
    dpb_engine_destroy(e);
    dpb_tokenizer_free(tok);
    dpb_checkpoint_close(ck);
    return 0;
}
