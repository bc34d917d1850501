/* deploybench eval --endpoint: lm-eval's local-completions requests (remote.h). */
#include "eval/remote.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "core/json.h"
#include "eval/eval.h"

static bool ends_with(const char *s, size_t n, const char *suf)
{
    size_t k = strlen(suf);
    return n >= k && memcmp(s + n - k, suf, k) == 0;
}

dpb_status dpb_eval_remote_init(dpb_eval_remote *r, const char *endpoint, const char *model, bool chat, int inflight)
{
    memset(r, 0, sizeof *r);
    if (strncmp(endpoint, "http://", 7) != 0 && strncmp(endpoint, "https://", 8) != 0)
        return dpb_error_set(DPB_E_ARG, "--endpoint %s: expected an http:// or https:// URL", endpoint);
    size_t n = strlen(endpoint);
    while (n && endpoint[n - 1] == '/') n--;
    if (ends_with(endpoint, n, "/v1/chat/completions")) { n -= strlen("/v1/chat/completions"); chat = true; }
    else if (ends_with(endpoint, n, "/v1/completions")) n -= strlen("/v1/completions");
    else if (ends_with(endpoint, n, "/v1")) n -= 3;
    r->completions_url = malloc(n + 32);
    r->chat_url = malloc(n + 32);
    if (!r->completions_url || !r->chat_url) { dpb_eval_remote_free(r); return dpb_error_set(DPB_E_NOMEM, "out of memory"); }
    snprintf(r->completions_url, n + 32, "%.*s/v1/completions", (int)n, endpoint);
    snprintf(r->chat_url, n + 32, "%.*s/v1/chat/completions", (int)n, endpoint);
    r->model = model;
    r->chat = chat;
    r->seed = 1234;
    dpb_post_opts_default(&r->post);
    r->post.max_inflight = inflight > 0 ? inflight : 1;
    r->post.api_key = getenv("OPENAI_API_KEY"); /* as lm-eval's local-completions */
    if (r->post.api_key && !r->post.api_key[0]) r->post.api_key = NULL;
    return DPB_OK;
}

void dpb_eval_remote_free(dpb_eval_remote *r)
{
    free(r->completions_url);
    free(r->chat_url);
    r->completions_url = r->chat_url = NULL;
}

static dpb_status body_done(cJSON *o, char **out)
{
    *out = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return *out ? DPB_OK : dpb_error_set(DPB_E_NOMEM, "out of memory");
}

dpb_status dpb_eval_remote_ll_body(const dpb_eval_remote *r, const char *prompt, char **out)
{
    cJSON *o = cJSON_CreateObject();
    if (o) {
        cJSON_AddStringToObject(o, "model", r->model);
        cJSON_AddStringToObject(o, "prompt", prompt);
        cJSON_AddNumberToObject(o, "temperature", 0);
        cJSON_AddNumberToObject(o, "max_tokens", 1);
        cJSON_AddNumberToObject(o, "logprobs", 1);
        cJSON_AddNumberToObject(o, "seed", (double)r->seed);
        cJSON_AddBoolToObject(o, "echo", 1);
    }
    return body_done(o, out);
}

static dpb_status gen_body(const dpb_eval_remote *r, const char *prompt, int64_t max_new, const char *const *stops,
                           int nstops, char **out)
{
    cJSON *o = cJSON_CreateObject();
    if (o) {
        cJSON_AddStringToObject(o, "model", r->model);
        if (r->chat) {
            cJSON *msgs = cJSON_AddArrayToObject(o, "messages");
            cJSON *m = cJSON_CreateObject();
            cJSON_AddStringToObject(m, "role", "user");
            cJSON_AddStringToObject(m, "content", prompt);
            cJSON_AddItemToArray(msgs, m);
        } else cJSON_AddStringToObject(o, "prompt", prompt);
        cJSON_AddNumberToObject(o, "max_tokens", (double)max_new);
        cJSON_AddNumberToObject(o, "temperature", 0);
        cJSON_AddNumberToObject(o, "seed", (double)r->seed);
        if (nstops > 0) {
            cJSON *a = cJSON_AddArrayToObject(o, "stop");
            for (int i = 0; i < nstops && i < 4; i++) cJSON_AddItemToArray(a, cJSON_CreateString(stops[i]));
        }
    }
    return body_done(o, out);
}

/* UTF-8 code points in s[0..n) (continuation bytes are not counted). */
static size_t cps(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

static const cJSON *get_path(const cJSON *root, const char *a, int idx, const char *b)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(root, a);
    if (idx >= 0) x = cJSON_IsArray(x) ? cJSON_GetArrayItem(x, idx) : NULL;
    if (b) x = cJSON_IsObject(x) ? cJSON_GetObjectItemCaseSensitive(x, b) : NULL;
    return x;
}

static int64_t usage_int(const cJSON *root, const char *key)
{
    const cJSON *v = get_path(root, "usage", -1, key);
    return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 1e15 ? (int64_t)v->valuedouble : -1;
}

dpb_status dpb_eval_remote_ll_parse(const char *reply, size_t len, size_t ctx_bytes, const char *prompt,
                                    const char *what, double *ll, int64_t *prompt_tokens, bool *straddled)
{
    *straddled = false;
    cJSON *root = NULL;
    dpb_status st = dpb_json_parse(reply, len, what, &root);
    if (st) return st;
    const cJSON *lp = get_path(root, "choices", 0, "logprobs");
    const cJSON *toks = cJSON_IsObject(lp) ? cJSON_GetObjectItemCaseSensitive(lp, "tokens") : NULL;
    const cJSON *tlp = cJSON_IsObject(lp) ? cJSON_GetObjectItemCaseSensitive(lp, "token_logprobs") : NULL;
    const cJSON *off = cJSON_IsObject(lp) ? cJSON_GetObjectItemCaseSensitive(lp, "text_offset") : NULL;
    int n = cJSON_GetArraySize(toks);
    if (!cJSON_IsArray(toks) || !cJSON_IsArray(tlp) || !cJSON_IsArray(off) || n < 1 || cJSON_GetArraySize(tlp) != n ||
        cJSON_GetArraySize(off) != n) {
        st = dpb_error_set(DPB_E_FORMAT, "%s: reply has no choices[0].logprobs with tokens, token_logprobs and text_offset "
                                         "of one length (does the server support echo with logprobs?)", what);
        goto out;
    }
    size_t pb = strlen(prompt);
    /* the prompt's tokens: usage.prompt_tokens, else those starting inside the prompt */
    int64_t P = usage_int(root, "prompt_tokens");
    int nt = 0;
    double *o = malloc((size_t)n * sizeof *o);
    size_t *tl = malloc((size_t)n * sizeof *tl), *tc = malloc((size_t)n * sizeof *tc);
    if (!o || !tl || !tc) { free(o); free(tl); free(tc); st = dpb_error_set(DPB_E_NOMEM, "out of memory"); goto out; }
    const cJSON *it;
    cJSON_ArrayForEach(it, off) o[nt++] = cJSON_IsNumber(it) ? it->valuedouble : -1;
    nt = 0;
    cJSON_ArrayForEach(it, toks)
    {
        const char *s = cJSON_IsString(it) ? it->valuestring : "";
        tl[nt] = strlen(s);
        tc[nt] = cps(s, tl[nt]);
        nt++;
    }
    for (int i = 0; i < n && !st; i++)
        if (o[i] < 0 || (i > 0 && o[i] < o[i - 1]))
            st = dpb_error_set(DPB_E_FORMAT, "%s: text_offset[%d] is not a non-decreasing offset", what, i);
    if (st) goto free_arrays;
    bool chars = false;
    if (P < 1 || P > n) {
        P = 0;
        while (P < n && o[P] < (double)pb) P++;
    }
    if (P < 1) { st = dpb_error_set(DPB_E_FORMAT, "%s: the reply has no prompt tokens", what); goto free_arrays; }
    /* offsets in bytes (deploybench serve) or in characters (vLLM, Python strings) */
    double end = o[P - 1] + (double)tl[P - 1], endc = o[P - 1] + (double)tc[P - 1];
    size_t ctx_units = ctx_bytes;
    if (end != (double)pb) {
        if (endc == (double)cps(prompt, pb)) {
            chars = true;
            ctx_units = cps(prompt, ctx_bytes);
        } else {
            st = dpb_error_set(DPB_E_FORMAT,
                               "%s: the echoed tokens end at offset %.0f, but the prompt is %zu bytes (%zu characters): "
                               "cannot place the continuation", what, end, pb, cps(prompt, pb));
            goto free_arrays;
        }
    }
    int k0 = 0;
    while (k0 < P && o[k0] < (double)ctx_units) k0++;
    if (k0 > 0 && o[k0 - 1] + (double)(chars ? tc[k0 - 1] : tl[k0 - 1]) > (double)ctx_units) {
        k0--; /* the context ends inside this token: it goes with the continuation */
        *straddled = true;
    }
    if (k0 == P) { st = dpb_error_set(DPB_E_FORMAT, "%s: the continuation adds no prompt token", what); goto free_arrays; }
    if (k0 == 0) {
        st = dpb_error_set(DPB_E_FORMAT, "%s: the context is empty (its first token has no logprob)", what);
        goto free_arrays;
    }
    double sum = 0;
    for (int i = k0; i < P; i++) {
        const cJSON *v = cJSON_GetArrayItem(tlp, i);
        if (!cJSON_IsNumber(v)) { st = dpb_error_set(DPB_E_FORMAT, "%s: token_logprobs[%d] is not a number", what, i); break; }
        sum += v->valuedouble;
    }
    if (!st) {
        *ll = sum;
        if (prompt_tokens) *prompt_tokens = P;
    }
free_arrays:
    free(o);
    free(tl);
    free(tc);
out:
    cJSON_Delete(root);
    return st;
}

dpb_status dpb_eval_remote_gen_parse(const char *reply, size_t len, bool chat, const char *what, char **text,
                                     int64_t *prompt_tokens)
{
    *text = NULL;
    cJSON *root = NULL;
    dpb_status st = dpb_json_parse(reply, len, what, &root);
    if (st) return st;
    const cJSON *t = chat ? get_path(get_path(root, "choices", 0, "message"), "content", -1, NULL)
                          : get_path(root, "choices", 0, "text");
    if (cJSON_IsString(t) || (chat && cJSON_IsNull(t))) { /* null content: "" as lm-eval */
        *text = strdup(cJSON_IsString(t) ? t->valuestring : "");
        if (!*text) st = dpb_error_set(DPB_E_NOMEM, "out of memory");
    } else
        st = dpb_error_set(DPB_E_FORMAT, "%s: reply has no %s string", what,
                           chat ? "choices[0].message.content" : "choices[0].text");
    if (!st && prompt_tokens) *prompt_tokens = usage_int(root, "prompt_tokens");
    cJSON_Delete(root);
    return st;
}

static size_t ctx_end(const char *context)
{
    size_t cl = strlen(context);
    while (cl && (context[cl - 1] == ' ' || context[cl - 1] == '\n' || context[cl - 1] == '\t' || context[cl - 1] == '\r'))
        cl--;
    return cl;
}

static dpb_status fail_request(const dpb_post *p, const char *what)
{
    char d[512];
    return dpb_error_set(DPB_E_IO, "%s: %s", what, dpb_post_describe(p, d, sizeof d));
}

dpb_status dpb_eval_remote_loglik(dpb_eval_remote *r, const char *const *contexts, const size_t *ids, int nq,
                                  const char *const *conts, int nc, double *ll, dpb_eval_remote_stats *stats)
{
    if (r->chat)
        return dpb_error_set(DPB_E_ARG, "--chat: chat endpoints cannot give loglikelihoods (they return no prompt logprobs); "
                                        "run loglikelihood tasks such as mmlu against /v1/completions");
    if (nq < 1 || nc < 1) return DPB_OK;
    size_t n = (size_t)nq * (size_t)nc;
    dpb_post *pr = calloc(n, sizeof *pr);
    char **prompts = calloc(n, sizeof *prompts), **bodies = calloc(n, sizeof *bodies);
    dpb_status st = DPB_OK;
    if (!pr || !prompts || !bodies) { st = dpb_error_set(DPB_E_NOMEM, "out of memory"); goto out; }
    for (size_t k = 0; k < n && !st; k++) {
        const char *cx = contexts[k / (size_t)nc], *ct = conts[k % (size_t)nc];
        size_t a = strlen(cx), b = strlen(ct);
        if (!(prompts[k] = malloc(a + b + 1))) { st = dpb_error_set(DPB_E_NOMEM, "out of memory"); break; }
        memcpy(prompts[k], cx, a);
        memcpy(prompts[k] + a, ct, b + 1);
        if (!(st = dpb_eval_remote_ll_body(r, prompts[k], &bodies[k]))) {
            pr[k].url = r->completions_url;
            pr[k].body = bodies[k];
        }
    }
    if (!st) st = dpb_post_run(pr, n, &r->post);
    if (st == DPB_E_INTERRUPTED) st = dpb_error_set(st, "interrupted; --resume continues this run");
    for (size_t k = 0; k < n && !st; k++) {
        char what[160];
        snprintf(what, sizeof what, "POST %s (doc_id %zu, continuation '%.20s')", r->completions_url,
                 ids ? ids[k / (size_t)nc] : k / (size_t)nc, conts[k % (size_t)nc]);
        if (pr[k].status < 200 || pr[k].status > 299) { st = fail_request(&pr[k], what); break; }
        int64_t pt = 0;
        bool straddled = false;
        st = dpb_eval_remote_ll_parse(pr[k].reply, pr[k].reply_len, ctx_end(contexts[k / (size_t)nc]), prompts[k], what,
                                      &ll[k], &pt, &straddled);
        if (!st && stats) {
            stats->requests++;
            stats->prompt_tokens += pt;
            stats->straddled += straddled;
        }
    }
out:
    if (pr) dpb_post_clear(pr, n);
    for (size_t k = 0; k < n; k++) {
        if (prompts) free(prompts[k]);
        if (bodies) free(bodies[k]);
    }
    free(prompts);
    free(bodies);
    free(pr);
    return st;
}

dpb_status dpb_eval_remote_generate(dpb_eval_remote *r, const char *const *prompts, const size_t *ids, int n,
                                    int64_t max_new,
                                    const char *const *stops, int nstops, char **outputs,
                                    dpb_eval_remote_stats *stats)
{
    if (n < 1) return DPB_OK;
    dpb_post *pr = calloc((size_t)n, sizeof *pr);
    char **bodies = calloc((size_t)n, sizeof *bodies);
    dpb_status st = DPB_OK;
    for (int i = 0; i < n; i++) outputs[i] = NULL;
    if (!pr || !bodies) { st = dpb_error_set(DPB_E_NOMEM, "out of memory"); goto out; }
    const char *url = r->chat ? r->chat_url : r->completions_url;
    for (int i = 0; i < n && !st; i++) {
        if (!(st = gen_body(r, prompts[i], max_new, stops, nstops, &bodies[i]))) {
            pr[i].url = url;
            pr[i].body = bodies[i];
        }
    }
    if (!st) st = dpb_post_run(pr, (size_t)n, &r->post);
    if (st == DPB_E_INTERRUPTED) st = dpb_error_set(st, "interrupted; --resume continues this run");
    for (int i = 0; i < n && !st; i++) {
        char what[160];
        snprintf(what, sizeof what, "POST %s (doc_id %zu)", url, ids ? ids[i] : (size_t)i);
        if (pr[i].status < 200 || pr[i].status > 299) { st = fail_request(&pr[i], what); break; }
        int64_t pt = -1;
        if ((st = dpb_eval_remote_gen_parse(pr[i].reply, pr[i].reply_len, r->chat, what, &outputs[i], &pt))) break;
        dpb_eval_apply_stops(outputs[i], stops, nstops); /* stops past the 4 a server takes */
        if (stats) {
            stats->requests++;
            if (pt > 0) stats->prompt_tokens += pt;
        }
    }
out:
    if (st)
        for (int i = 0; i < n; i++) { free(outputs[i]); outputs[i] = NULL; }
    if (pr) dpb_post_clear(pr, (size_t)n);
    for (int i = 0; bodies && i < n; i++) free(bodies[i]);
    free(bodies);
    free(pr);
    return st;
}
