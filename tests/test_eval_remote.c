/* deploybench eval --endpoint pieces: lm-eval's few-shot sampler (Python's
 * random), parsing echo+logprobs replies (token boundaries from text_offset),
 * and the HTTP client against a fake OpenAI server (concurrency, retries,
 * errors naming the request and the server's message, chat refusals). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "eval/eval.h"
#include "eval/pyrandom.h"
#include "eval/remote.h"
#include "load/post.h"
#include "serve/http.h"
#include "t.h"

/* Expected values printed by CPython 3.11:
 *   r = random.Random(1234); [r.getrandbits(32) for _ in range(3)]
 *   r = random.Random(1234); [r.sample(range(7473), 5) for _ in range(3)]
 *   random.Random(7).sample(range(10), 4); random.Random(2**40 + 5).sample(range(100000), 3) */
static void test_pyrandom(void)
{
    dpb_pyrandom r;
    dpb_pyrandom_seed(&r, 1234);
    T_CHECK(dpb_pyrandom_u32(&r) == 4150886329u);
    T_CHECK(dpb_pyrandom_u32(&r) == 3342196574u);
    T_CHECK(dpb_pyrandom_u32(&r) == 1892932127u);
    static const size_t want[3][5] = {{6374, 3610, 957, 61, 742}, {7462, 6610, 4769, 286, 5501}, {5677, 687, 806, 6279, 2905}};
    size_t *shots = NULL;
    T_CHECK(dpb_eval_fewshot_random(3, 7473, 5, 1234, &shots) == DPB_OK);
    for (int d = 0; shots && d < 3; d++)
        for (int k = 0; k < 5; k++) T_CHECKF(shots[d * 5 + k] == want[d][k], "doc %d shot %d: %zu", d, k, shots[d * 5 + k]);
    free(shots);
    size_t out[5];
    dpb_pyrandom_seed(&r, 7); /* n <= setsize: the pool algorithm */
    T_CHECK(dpb_pyrandom_sample(&r, 10, 4, out) == DPB_OK);
    T_CHECK(out[0] == 5 && out[1] == 2 && out[2] == 6 && out[3] == 9);
    dpb_pyrandom_seed(&r, (1ull << 40) + 5); /* a seed of two 32-bit words */
    T_CHECK(dpb_pyrandom_sample(&r, 100000, 3, out) == DPB_OK);
    T_CHECK(out[0] == 66110 && out[1] == 67753 && out[2] == 35206);
    T_CHECK(dpb_eval_fewshot_random(1, 3, 5, 1234, &shots) == DPB_E_ARG && shots == NULL);
    /* the prompt uses the sampled exemplars in order */
    dpb_eval_set pool = {0};
    const char *j = "{\"question\":\"q0\",\"answer\":\"a #### 0\"}\n{\"question\":\"q1\",\"answer\":\"a #### 1\"}\n{\"question\":\"q2\",\"answer\":\"a #### 2\"}\n";
    T_CHECK(dpb_eval_gsm8k_parse(j, strlen(j), "pool", &pool) == DPB_OK);
    size_t pick[2] = {2, 0};
    char *p = NULL;
    T_CHECK(dpb_eval_gsm8k_prompt(&pool.items[1], &pool, pick, 2, &p) == DPB_OK);
    T_CHECK(p && strcmp(p, "Question: q2\nAnswer: a #### 2\n\nQuestion: q0\nAnswer: a #### 0\n\nQuestion: q1\nAnswer:") == 0);
    free(p);
    dpb_eval_set_free(&pool);
}

/* A reply in the shape of /v1/completions with echo and logprobs. */
static char *reply(const char *const *toks, const double *lps, const int *offs, int n, int prompt_tokens)
{
    cJSON *o = cJSON_CreateObject(), *ch = cJSON_AddArrayToObject(o, "choices"), *c = cJSON_CreateObject();
    cJSON_AddItemToArray(ch, c);
    cJSON *lp = cJSON_AddObjectToObject(c, "logprobs");
    cJSON *t = cJSON_AddArrayToObject(lp, "tokens"), *l = cJSON_AddArrayToObject(lp, "token_logprobs"),
          *f = cJSON_AddArrayToObject(lp, "text_offset");
    for (int i = 0; i < n; i++) {
        cJSON_AddItemToArray(t, cJSON_CreateString(toks[i]));
        cJSON_AddItemToArray(l, i == 0 ? cJSON_CreateNull() : cJSON_CreateNumber(lps[i]));
        cJSON_AddItemToArray(f, cJSON_CreateNumber(offs[i]));
    }
    if (prompt_tokens >= 0) {
        cJSON *u = cJSON_AddObjectToObject(o, "usage");
        cJSON_AddNumberToObject(u, "prompt_tokens", prompt_tokens);
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static void test_ll_parse(void)
{
    const char *prompt = "Q?\nAnswer: A";
    size_t ctx = strlen("Q?\nAnswer:");
    const char *toks[] = {"Q", "?", "\n", "Answer", ":", " A", "\n\n"};
    double lps[] = {0, -1, -2, -3, -4, -0.5, -9};
    int offs[] = {0, 1, 2, 3, 9, 10, 12};
    double ll = 0;
    int64_t pt = 0;
    bool sd = true;
    char *s = reply(toks, lps, offs, 7, 6);
    T_CHECK(dpb_eval_remote_ll_parse(s, strlen(s), ctx, prompt, "req", &ll, &pt, &sd) == DPB_OK);
    T_CHECK(ll == -0.5 && pt == 6 && !sd);
    free(s);
    /* without usage: the prompt tokens are those starting inside the prompt */
    s = reply(toks, lps, offs, 7, -1);
    T_CHECK(dpb_eval_remote_ll_parse(s, strlen(s), ctx, prompt, "req", &ll, &pt, &sd) == DPB_OK && ll == -0.5 && pt == 6);
    free(s);
    /* a continuation of two tokens: both summed */
    const char *p2 = "Q?\nAnswer: AB";
    const char *t2[] = {"Q?", "\nAnswer:", " A", "B", "x"};
    double l2[] = {0, -1, -0.25, -0.5, -7};
    int o2[] = {0, 2, 10, 12, 13};
    s = reply(t2, l2, o2, 5, 4);
    T_CHECK(dpb_eval_remote_ll_parse(s, strlen(s), ctx, p2, "req", &ll, &pt, &sd) == DPB_OK && ll == -0.75 && !sd);
    free(s);
    /* the context ends inside a token: that token is scored with the continuation */
    const char *t3[] = {"Q?\nAnswer", ": A", "x"};
    double l3[] = {0, -2, -7};
    int o3[] = {0, 9, 12};
    s = reply(t3, l3, o3, 3, 2);
    T_CHECK(dpb_eval_remote_ll_parse(s, strlen(s), ctx, prompt, "req", &ll, &pt, &sd) == DPB_OK && ll == -2 && sd);
    free(s);
    /* offsets in characters (vLLM): "é" is 2 bytes, 1 character */
    const char *p4 = "caf\xc3\xa9: A";
    const char *t4[] = {"caf\xc3\xa9", ":", " A", "x"};
    double l4[] = {0, -1, -0.125, -7};
    int o4[] = {0, 4, 5, 7};
    s = reply(t4, l4, o4, 4, 3);
    T_CHECK(dpb_eval_remote_ll_parse(s, strlen(s), strlen("caf\xc3\xa9:"), p4, "req", &ll, &pt, &sd) == DPB_OK && ll == -0.125);
    free(s);
    /* the same in bytes (deploybench serve) */
    int o5[] = {0, 5, 6, 8};
    s = reply(t4, l4, o5, 4, 3);
    T_CHECK(dpb_eval_remote_ll_parse(s, strlen(s), strlen("caf\xc3\xa9:"), p4, "req", &ll, &pt, &sd) == DPB_OK && ll == -0.125);
    free(s);
    /* errors name the request */
    const char *noecho = "{\"choices\":[{\"text\":\"x\",\"logprobs\":null}]}";
    T_CHECK(dpb_eval_remote_ll_parse(noecho, strlen(noecho), ctx, prompt, "POST x (doc_id 3)", &ll, &pt, &sd) == DPB_E_FORMAT);
    T_CHECK(strstr(dpb_error_message(), "doc_id 3") && strstr(dpb_error_message(), "echo"));
    s = reply(toks, lps, offs, 7, 6);
    T_CHECK(dpb_eval_remote_ll_parse(s, strlen(s), strlen(prompt), prompt, "req", &ll, &pt, &sd) == DPB_E_FORMAT);
    T_CHECK(strstr(dpb_error_message(), "continuation adds no prompt token") != NULL);
    T_CHECK(dpb_eval_remote_ll_parse(s, strlen(s), ctx, "Q?\nAnswer: A and more", "req", &ll, &pt, &sd) == DPB_E_FORMAT);
    T_CHECK(strstr(dpb_error_message(), "cannot place the continuation") != NULL);
    free(s);
    T_CHECK(dpb_eval_remote_ll_parse("{oops", 5, ctx, prompt, "req", &ll, &pt, &sd) != DPB_OK);

    char *txt = NULL;
    const char *chat = "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":null}}]}";
    T_CHECK(dpb_eval_remote_gen_parse(chat, strlen(chat), true, "req", &txt, NULL) == DPB_OK && txt && !txt[0]);
    free(txt);
    const char *comp = "{\"choices\":[{\"text\":\" 42\"}],\"usage\":{\"prompt_tokens\":7}}";
    T_CHECK(dpb_eval_remote_gen_parse(comp, strlen(comp), false, "req", &txt, &pt) == DPB_OK && !strcmp(txt, " 42") && pt == 7);
    free(txt);
    T_CHECK(dpb_eval_remote_gen_parse(comp, strlen(comp), true, "req", &txt, NULL) == DPB_E_FORMAT);
}

/* ---- a fake OpenAI server: one token per byte, logprob -(byte)/100 ---- */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static int g_fail_once = 1, g_requests = 0, g_nstop = -1;
static char g_last_path[64];

static void handler(void *ctx, const dpb_http_request *req)
{
    (void)ctx;
    cJSON *b = cJSON_Parse(req->body);
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(b, "prompt");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(b, "stop");
    pthread_mutex_lock(&g_mu);
    g_requests++;
    snprintf(g_last_path, sizeof g_last_path, "%s", req->path);
    if (cJSON_IsArray(st)) g_nstop = cJSON_GetArraySize(st);
    bool fail503 = cJSON_IsString(pr) && strstr(pr->valuestring, "RETRY") && g_fail_once-- > 0;
    pthread_mutex_unlock(&g_mu);
    char *out = NULL;
    if (fail503) {
        const char *e = "{\"error\":{\"message\":\"queue full\"}}";
        dpb_http_reply(req->conn, 503, "application/json", e, strlen(e));
    } else if (!strcmp(req->path, "/v1/chat/completions")) {
        const char *e = "{\"choices\":[{\"message\":{\"content\":\"6 * 7 = 42 STOP5 more\"}}]}";
        dpb_http_reply(req->conn, 200, "application/json", e, strlen(e));
    } else if (!cJSON_IsString(pr) || strstr(pr->valuestring, "TOOLONG")) {
        const char *e = "{\"error\":{\"message\":\"This model's maximum context length is 64 tokens\",\"type\":\"BadRequestError\"}}";
        dpb_http_reply(req->conn, 400, "application/json", e, strlen(e));
    } else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(b, "echo"))) {
        const char *p = pr->valuestring;
        size_t n = strlen(p);
        const char **toks = calloc(n + 1, sizeof *toks);
        char *store = calloc(n + 1, 2);
        double *lps = calloc(n + 1, sizeof *lps);
        int *offs = calloc(n + 1, sizeof *offs);
        for (size_t i = 0; i <= n; i++) {
            store[2 * i] = i < n ? p[i] : 'x';
            toks[i] = &store[2 * i];
            lps[i] = -(double)(unsigned char)store[2 * i] / 100.0;
            offs[i] = (int)i;
        }
        out = reply(toks, lps, offs, (int)n + 1, (int)n);
        free(toks); free(store); free(lps); free(offs);
        dpb_http_reply(req->conn, 200, "application/json", out, strlen(out));
    } else {
        const char *e = "{\"choices\":[{\"text\":\" 42 STOP5 more\"}]}";
        dpb_http_reply(req->conn, 200, "application/json", e, strlen(e));
    }
    free(out);
    cJSON_Delete(b);
}

static void test_remote(void)
{
    dpb_http_limits lim;
    dpb_http_limits_default(&lim);
    dpb_http_server *srv = NULL;
    if (dpb_http_server_start("127.0.0.1", 0, &lim, handler, NULL, &srv) != DPB_OK) T_SKIP("cannot listen on 127.0.0.1");
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/v1/", (unsigned)dpb_http_server_port(srv));
    dpb_eval_remote r;
    T_CHECK(dpb_eval_remote_init(&r, url, "m", false, 3) == DPB_OK);
    T_CHECK(strstr(r.completions_url, "/v1/completions") && !strstr(r.completions_url, "/v1/v1"));
    r.post.backoff_s = 0.01;
    /* 5 questions x 4 choices with 3 in flight; one 503 is retried */
    const char *ctxs[5] = {"Q0\nAnswer:", "Q1 RETRY\nAnswer:", "Q2\nAnswer: ", "Q3\nAnswer:", "Q4\nAnswer:"};
    const char *conts[4] = {" A", " B", " C", " D"};
    size_t ids[5] = {10, 11, 12, 13, 14};
    double ll[20];
    dpb_eval_remote_stats rs = {0};
    T_CHECK(dpb_eval_remote_loglik(&r, ctxs, ids, 5, conts, 4, ll, &rs) == DPB_OK);
    for (int k = 0; k < 20; k++) {
        double want = -(32.0 + 'A' + k % 4) / 100.0;
        if (k / 4 == 2) want -= 0.32; /* "Answer: " + " A": the context's trailing space is scored with the choice */
        T_CHECKF(fabs(ll[k] - want) < 1e-12, "ll[%d] = %g, want %g", k, ll[k], want);
    }
    T_CHECK(rs.requests == 20 && rs.straddled == 0);
    T_CHECK(g_requests == 21); /* 20 + the retried one */
    /* an error names the request and carries the server's message */
    const char *bad[1] = {"TOOLONG\nAnswer:"};
    size_t bid = 7;
    T_CHECK(dpb_eval_remote_loglik(&r, bad, &bid, 1, conts, 4, ll, NULL) == DPB_E_IO);
    T_CHECKF(strstr(dpb_error_message(), "doc_id 7") && strstr(dpb_error_message(), "HTTP 400") &&
                 strstr(dpb_error_message(), "maximum context length is 64 tokens"),
             "%s", dpb_error_message());
    /* generation: 4 stops sent, the 5th applied here */
    const char *stops[5] = {"S1", "S2", "S3", "S4", "STOP5"};
    const char *prompts[2] = {"Question: 6*7?\nAnswer:", "Question: 7*6?\nAnswer:"};
    char *outs[2] = {0};
    T_CHECK(dpb_eval_remote_generate(&r, prompts, NULL, 2, 16, stops, 5, outs, NULL) == DPB_OK);
    T_CHECK(outs[0] && !strcmp(outs[0], " 42 ") && outs[1] && !strcmp(outs[1], " 42 "));
    T_CHECK(g_nstop == 4 && !strcmp(g_last_path, "/v1/completions"));
    free(outs[0]);
    free(outs[1]);
    dpb_eval_remote_free(&r);
    /* a chat URL: generation through chat, loglikelihood refused with the reason */
    snprintf(url, sizeof url, "http://127.0.0.1:%u/v1/chat/completions", (unsigned)dpb_http_server_port(srv));
    T_CHECK(dpb_eval_remote_init(&r, url, "m", false, 2) == DPB_OK && r.chat);
    T_CHECK(dpb_eval_remote_generate(&r, prompts, NULL, 1, 16, stops, 5, outs, NULL) == DPB_OK);
    T_CHECK(outs[0] && !strcmp(outs[0], "6 * 7 = 42 ") && !strcmp(g_last_path, "/v1/chat/completions"));
    free(outs[0]);
    T_CHECK(dpb_eval_remote_loglik(&r, ctxs, ids, 1, conts, 4, ll, NULL) == DPB_E_ARG);
    T_CHECK(strstr(dpb_error_message(), "chat endpoints cannot give loglikelihoods") != NULL);
    dpb_eval_remote_free(&r);
    uint16_t port = dpb_http_server_port(srv);
    dpb_http_server_stop(srv);
    /* nothing listening: the transport error, after the retries */
    snprintf(url, sizeof url, "http://127.0.0.1:%u", (unsigned)port);
    T_CHECK(dpb_eval_remote_init(&r, url, "m", false, 1) == DPB_OK);
    r.post.backoff_s = 0.01;
    T_CHECK(dpb_eval_remote_generate(&r, prompts, &bid, 1, 16, stops, 1, outs, NULL) == DPB_E_IO);
    T_CHECKF(strstr(dpb_error_message(), "doc_id 7") && strstr(dpb_error_message(), "3 attempts"), "%s", dpb_error_message());
    dpb_eval_remote_free(&r);
    T_CHECK(dpb_eval_remote_init(&r, "ftp://x", "m", false, 1) == DPB_E_ARG);
}

int main(void)
{
    T_RUN(test_pyrandom);
    T_RUN(test_ll_parse);
    T_RUN(test_remote);
    return t_done();
}
