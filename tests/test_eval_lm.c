/* In-process loglikelihoods: the shared-prefix path (one forward step per
 * batch of questions, MMLU's single-token choices) equals the per-choice
 * path and a plain log-softmax over the full sequence's logits; generation
 * stops at stop strings. */
#include "t.h"
#include "engine/engine.h"
#include "eval/eval.h"
#include "eval/lm.h"
#include "format/checkpoint.h"

static dpb_checkpoint *g_ck;
static dpb_engine *g_e;
static dpb_tokenizer *g_tok;

static int setup(void)
{
    const char *sh = t_shared();
    if (!sh) return 0;
    static char tp[1024];
    snprintf(tp, sizeof tp, "%s/data/tokenizers/qwen3/tokenizer.json.gz", sh);
    if (access(tp, R_OK) != 0) return 0;
    dpb_checkpoint_opts co = {0};
    co.tokenizer = tp;
    if (dpb_checkpoint_open("synth:qwen3-tiny", &co, &g_ck) != DPB_OK) return 0;
    if (dpb_tokenizer_load(dpb_checkpoint_tokenizer_path(g_ck), &g_tok) != DPB_OK) return 0;
    dpb_engine_opts eo = {0};
    eo.dtype = DPB_ENGINE_F32;
    eo.max_seqs = 3;
    eo.max_ctx = 256;
    eo.threads = 2;
    return dpb_engine_create(g_ck, &eo, &g_e) == DPB_OK;
}

/* log p(cont | ctx) from one full forward pass with every row's logits */
static double naive(const char *ctx, const char *cont)
{
    dpb_tokens a = {0}, b = {0};
    if (dpb_eval_encode_pair(g_tok, ctx, cont, 0, &a, &b) != DPB_OK) return NAN;
    int64_t V = dpb_engine_vocab(g_e), n = (int64_t)(a.n + b.n);
    int32_t *all = malloc((size_t)n * sizeof *all);
    float *lg = malloc((size_t)n * (size_t)V * sizeof *lg);
    memcpy(all, a.ids, a.n * sizeof *all);
    memcpy(all + a.n, b.ids, b.n * sizeof *all);
    dpb_engine_seq_reset(g_e, 0);
    dpb_engine_seg s = {0, all, n};
    double sum = NAN;
    if (dpb_engine_forward(g_e, &s, 1, DPB_LOGITS_ALL, lg) == DPB_OK) {
        sum = 0;
        for (size_t j = 0; j < b.n; j++) {
            const float *row = lg + (size_t)(a.n - 1 + j) * V;
            double mx = row[0], z = 0;
            for (int64_t i = 1; i < V; i++) if (row[i] > mx) mx = row[i];
            for (int64_t i = 0; i < V; i++) z += exp(row[i] - mx);
            sum += row[b.ids[j]] - mx - log(z);
        }
    }
    free(all);
    free(lg);
    dpb_tokens_free(&a);
    dpb_tokens_free(&b);
    return sum;
}

static void test_encode_pair(void)
{
    if (!g_e) T_SKIP("../shared tokenizer absent or engine unavailable");
    dpb_tokens a = {0}, b = {0};
    /* trailing whitespace moves to the continuation, like lm-eval's _encode_pair */
    T_CHECK(dpb_eval_encode_pair(g_tok, "Answer: ", "A", 0, &a, &b) == DPB_OK);
    dpb_tokens c = {0}, d = {0};
    T_CHECK(dpb_eval_encode_pair(g_tok, "Answer:", " A", 0, &c, &d) == DPB_OK);
    T_CHECK(a.n == c.n && b.n == d.n && b.n == 1 && b.ids[0] == d.ids[0]);
    dpb_tokens_free(&a); dpb_tokens_free(&b); dpb_tokens_free(&c); dpb_tokens_free(&d);
}

static void test_shared_prefix_exact(void)
{
    if (!g_e) T_SKIP("../shared tokenizer absent or engine unavailable");
    const char *ctx[3] = {"The capital of France is Paris.\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer:",
                          "2+2=?\nA. 3\nB. 4\nC. 5\nD. 6\nAnswer:", "Q\nAnswer:"};
    const char *conts[4] = {" A", " B", " C", " D"};
    double fast[12], slow[12];
    dpb_eval_ll_stats s1 = {0}, s2 = {0};
    T_CHECK(dpb_eval_loglik(g_e, g_tok, ctx, 3, conts, 4, 0, false, fast, &s1) == DPB_OK);
    T_CHECK(dpb_eval_loglik(g_e, g_tok, ctx, 3, conts, 4, 0, true, slow, &s2) == DPB_OK);
    T_CHECKF(s1.forward_calls == 1, "%lld", (long long)s1.forward_calls); /* 3 questions x 4 choices in one step */
    T_CHECK(s1.prefix_tokens == 0); /* nothing shared worth a step of its own */
    T_CHECK(s2.forward_calls >= 12);
    for (int q = 0; q < 3; q++)
        for (int c = 0; c < 4; c++) {
            T_CHECKF(fabs(fast[q * 4 + c] - slow[q * 4 + c]) < 1e-4, "q%d c%d %.6f %.6f", q, c, fast[q * 4 + c], slow[q * 4 + c]);
            T_CHECK(fast[q * 4 + c] < 0);
            if (q == 1 && c < 2) { /* an independent computation on a few (slow under ASan) */
                double nv = naive(ctx[q], conts[c]);
                T_CHECKF(fabs(fast[q * 4 + c] - nv) < 1e-4, "q%d c%d %.6f naive %.6f", q, c, fast[q * 4 + c], nv);
            }
        }
    /* multi-token continuations take the per-choice path and still match */
    const char *longc[2] = {" Paris is the answer", " Berlin"};
    double ml[2];
    T_CHECK(dpb_eval_loglik(g_e, g_tok, ctx, 1, longc, 2, 0, false, ml, NULL) == DPB_OK);
    T_CHECKF(fabs(ml[0] - naive(ctx[0], longc[0])) < 1e-4, "%.6f", ml[0]);
    T_CHECK(ml[1] < 0);
}

/* questions sharing a few-shot prefix: the prefix runs in a step of its own, the values do not change */
static void test_shared_prefix_split(void)
{
    if (!g_e) T_SKIP("../shared tokenizer absent or engine unavailable");
    const char *ctx[3] = {
        "The following are multiple choice questions (with answers) about arithmetic.\n\n1+1=?\nA. 1\nB. 2\nC. 3\nD. 4\n"
        "Answer: B\n\n2+2=?\nA. 3\nB. 4\nC. 5\nD. 6\nAnswer:",
        "The following are multiple choice questions (with answers) about arithmetic.\n\n1+1=?\nA. 1\nB. 2\nC. 3\nD. 4\n"
        "Answer: B\n\n3+3=?\nA. 6\nB. 7\nC. 8\nD. 9\nAnswer:",
        "The following are multiple choice questions (with answers) about arithmetic.\n\n1+1=?\nA. 1\nB. 2\nC. 3\nD. 4\n"
        "Answer: B\n\n9-1=?\nA. 1\nB. 8\nC. 9\nD. 0\nAnswer:"};
    const char *conts[4] = {" A", " B", " C", " D"};
    double fast[12], slow[12];
    dpb_eval_ll_stats s1 = {0}, s2 = {0};
    T_CHECK(dpb_eval_loglik(g_e, g_tok, ctx, 3, conts, 4, 0, false, fast, &s1) == DPB_OK);
    T_CHECK(dpb_eval_loglik(g_e, g_tok, ctx, 3, conts, 4, 0, true, slow, &s2) == DPB_OK);
    T_CHECKF(s1.forward_calls == 2 && s1.prefix_tokens >= DPB_EVAL_MIN_SHARED_PREFIX, "%lld calls, prefix %lld",
             (long long)s1.forward_calls, (long long)s1.prefix_tokens);
    for (int k = 0; k < 12; k++) T_CHECKF(fabs(fast[k] - slow[k]) < 1e-4, "%d: %.6f %.6f", k, fast[k], slow[k]);
    T_CHECKF(fabs(fast[1] - naive(ctx[0], conts[1])) < 1e-4, "%.6f", fast[1]);
}

static void test_generate_stops(void)
{
    if (!g_e) T_SKIP("../shared tokenizer absent or engine unavailable");
    const char *p[2] = {"Question: 1+1?\nAnswer:", "Hello"};
    char *out[2] = {0};
    const char *none[1] = {"\x01"};
    T_CHECK(dpb_eval_generate(g_e, g_tok, p, 2, 0, 12, none, 1, NULL, 0, out) == DPB_OK);
    T_CHECK(out[0] && out[1] && strlen(out[0]) > 0);
    /* a stop string taken from the unconstrained output cuts it there */
    if (out[0] && strlen(out[0]) > 4) {
        char stop[3] = {out[0][2], out[0][3], 0};
        const char *st[1] = {stop};
        char *o2[2] = {0};
        if ((unsigned char)stop[0] < 0x80 && (unsigned char)stop[1] < 0x80) {
            T_CHECK(dpb_eval_generate(g_e, g_tok, p, 1, 0, 12, st, 1, NULL, 0, o2) == DPB_OK);
            T_CHECK(o2[0] && strstr(o2[0], stop) == NULL && strncmp(o2[0], out[0], strlen(o2[0])) == 0);
            free(o2[0]);
        }
    }
    free(out[0]);
    free(out[1]);
}

int main(void)
{
    setup();
    T_RUN(test_encode_pair);
    T_RUN(test_shared_prefix_exact);
    T_RUN(test_shared_prefix_split);
    T_RUN(test_generate_stops);
    dpb_engine_destroy(g_e);
    dpb_tokenizer_free(g_tok);
    if (g_ck) dpb_checkpoint_close(g_ck);
    return t_done();
}
