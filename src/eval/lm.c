/* Loglikelihoods and greedy generation on the engine (see lm.h). */
#include "eval/lm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/checked.h"
#include "eval/eval.h"

dpb_status dpb_eval_encode_pair(dpb_tokenizer *tok, const char *context, const char *continuation, unsigned flags,
                                dpb_tokens *ctx, dpb_tokens *cont)
{
    size_t cl = strlen(context), kl = strlen(continuation), sp = 0;
    while (sp < cl && (context[cl - 1 - sp] == ' ' || context[cl - 1 - sp] == '\n' || context[cl - 1 - sp] == '\t' ||
                       context[cl - 1 - sp] == '\r'))
        sp++;
    char *whole = malloc(cl + kl + 1);
    if (!whole) return dpb_error_set(DPB_E_NOMEM, "eval: out of memory");
    memcpy(whole, context, cl);
    memcpy(whole + cl, continuation, kl + 1);
    dpb_tokens w = {0};
    dpb_status st = dpb_tokenizer_encode(tok, context, cl - sp, flags, ctx);
    if (!st) st = dpb_tokenizer_encode(tok, whole, cl + kl, flags, &w);
    free(whole);
    if (st) { dpb_tokens_free(&w); return st; }
    size_t from = ctx->n < w.n ? ctx->n : w.n;
    for (size_t i = from; i < w.n && !st; i++) {
        if (cont->n == cont->cap) {
            size_t nc = cont->cap ? cont->cap * 2 : 8;
            int32_t *p = realloc(cont->ids, nc * sizeof *p);
            if (!p) { st = dpb_error_set(DPB_E_NOMEM, "eval: out of memory"); break; }
            cont->ids = p;
            cont->cap = nc;
        }
        cont->ids[cont->n++] = w.ids[i];
    }
    dpb_tokens_free(&w);
    if (!st && cont->n == 0)
        st = dpb_error_set(DPB_E_FORMAT, "eval: continuation '%.40s' adds no token after its context", continuation);
    return st;
}

/* log softmax(row)[id] in double */
static double log_prob(const float *row, int64_t V, int32_t id)
{
    double mx = row[0];
    for (int64_t i = 1; i < V; i++)
        if (row[i] > mx) mx = row[i];
    double s = 0;
    for (int64_t i = 0; i < V; i++) s += exp((double)row[i] - mx);
    return (double)row[id] - mx - log(s);
}

static dpb_status ensure(float **buf, size_t *cap, size_t rows, int64_t V)
{
    size_t need;
    if (!dpb_mul_size(rows, (size_t)V, &need) || !dpb_mul_size(need, sizeof(float), &need))
        return dpb_error_set(DPB_E_RANGE, "eval: logits buffer too large");
    if (need <= *cap) return DPB_OK;
    float *p = realloc(*buf, need);
    if (!p) return dpb_error_set(DPB_E_NOMEM, "eval: out of memory for %zu logits bytes", need);
    *buf = p;
    *cap = need;
    return DPB_OK;
}

/* Puts prefix[0..L) into the KV of slots segs[0..nseg).seq.  Today the prefix
 * runs in every slot (one forward step, nseg x L tokens): exact, but no saving.
 * With an engine call that copies a slot's KV (and length) into another slot,
 * this becomes: forward the prefix in segs[0].seq once, then copy it into the
 * other slots, and full MMLU runs about 1.4 M instead of 9.6 M tokens
 * (docs/EVAL.md, --dry-run). */
static dpb_status fill_prefix(dpb_engine *e, const dpb_engine_seg *segs, int nseg, const int32_t *prefix, int64_t L,
                              dpb_eval_ll_stats *stats)
{
    /* the prefix once, in the first slot; its KV copied to the others */
    dpb_engine_seg ps = {segs[0].seq, prefix, L};
    dpb_status st = dpb_engine_forward(e, &ps, 1, DPB_LOGITS_NONE, NULL);
    for (int s = 1; s < nseg && !st; s++) st = dpb_engine_seq_copy(e, segs[s].seq, segs[0].seq);
    if (stats) {
        stats->forward_calls++;
        stats->tokens += L;
        stats->prefix_tokens += L;
    }
    return st;
}

dpb_status dpb_eval_loglik(dpb_engine *e, dpb_tokenizer *tok, const char *const *contexts, int nq,
                           const char *const *conts, int nc, unsigned flags, bool exhaustive, double *ll,
                           dpb_eval_ll_stats *stats)
{
    if (nq < 1 || nc < 1 || nq > dpb_engine_max_seqs(e)) return dpb_error_set(DPB_E_ARG, "eval: %d questions for %d slots", nq, dpb_engine_max_seqs(e));
    const int64_t V = dpb_engine_vocab(e), maxctx = dpb_engine_max_ctx(e);
    size_t npairs = (size_t)nq * (size_t)nc;
    dpb_tokens *cx = calloc(npairs, sizeof *cx), *ct = calloc(npairs, sizeof *ct);
    float *logits = NULL;
    size_t lcap = 0;
    dpb_engine_seg *segs = calloc((size_t)nq, sizeof *segs);
    bool *single = calloc((size_t)nq, sizeof *single);
    dpb_status st = DPB_OK;
    if (!cx || !ct || !segs || !single) { st = dpb_error_set(DPB_E_NOMEM, "eval: out of memory"); goto done; }
    for (int q = 0; q < nq && !st; q++) {
        single[q] = !exhaustive;
        for (int c = 0; c < nc && !st; c++) {
            size_t k = (size_t)q * nc + c;
            st = dpb_eval_encode_pair(tok, contexts[q], conts[c], flags, &cx[k], &ct[k]);
            if (!st && ct[k].n != 1) single[q] = false;
            if (!st && cx[k].n == 0) st = dpb_error_set(DPB_E_FORMAT, "eval: question %d has an empty context", q);
        }
    }
    if (st) goto done;
    /* shared prefix: one forward step for every single-token question */
    int nseg = 0;
    int *segq = calloc((size_t)nq, sizeof *segq);
    if (!segq) { st = dpb_error_set(DPB_E_NOMEM, "eval: out of memory"); goto done; }
    bool cut = false;
    for (int q = 0; q < nq; q++) {
        if (!single[q]) continue;
        size_t k = (size_t)q * nc;
        int64_t n = (int64_t)cx[k].n, skip = 0;
        if (n > maxctx) { skip = n - maxctx; cut = true; if (stats) stats->truncated++; }
        if ((st = dpb_engine_seq_reset(e, nseg))) break;
        segs[nseg] = (dpb_engine_seg){nseg, cx[k].ids + skip, n - skip};
        segq[nseg++] = q;
    }
    /* the questions' common token prefix (MMLU: description and exemplars) goes in first, each
     * question's own tokens after it; every suffix keeps at least one token for its logits */
    int64_t L = 0;
    if (!st && nseg >= 2 && !cut) {
        L = segs[0].n - 1;
        for (int s = 1; s < nseg && L > 0; s++) {
            int64_t m = 0, lim = L < segs[s].n - 1 ? L : segs[s].n - 1;
            while (m < lim && segs[s].tokens[m] == segs[0].tokens[m]) m++;
            L = m;
        }
        if (L < DPB_EVAL_MIN_SHARED_PREFIX) L = 0;
        if (L > 0) {
            st = fill_prefix(e, segs, nseg, segs[0].tokens, L, stats);
            for (int s = 0; s < nseg; s++) { segs[s].tokens += L; segs[s].n -= L; }
        }
    }
    for (int s = 0; s < nseg && stats; s++) stats->tokens += segs[s].n;
    if (!st && nseg > 0) {
        if (!(st = ensure(&logits, &lcap, (size_t)nseg, V))) st = dpb_engine_forward(e, segs, nseg, DPB_LOGITS_LAST, logits);
        if (stats) stats->forward_calls++;
        if (!st) {
            /* one log-sum-exp over the vocabulary per question scores all its choices */
#pragma omp parallel for schedule(static)
            for (int s = 0; s < nseg; s++) {
                const float *row = logits + (size_t)s * V;
                double lse = (double)row[0] - log_prob(row, V, 0);
                for (int c = 0; c < nc; c++) {
                    size_t k = (size_t)segq[s] * nc + c;
                    ll[k] = (double)row[ct[k].ids[0]] - lse;
                }
            }
        }
    }
    free(segq);
    /* each choice on its own: ctx[:-1] without logits, then ctx[-1] + cont[:-1] with every row */
    for (int q = 0; q < nq && !st; q++) {
        if (single[q]) continue;
        for (int c = 0; c < nc && !st; c++) {
            size_t k = (size_t)q * nc + c;
            size_t total = cx[k].n + ct[k].n; /* the model sees (ctx + cont)[:-1] */
            int32_t *all = malloc(total * sizeof *all);
            if (!all) { st = dpb_error_set(DPB_E_NOMEM, "eval: out of memory"); break; }
            memcpy(all, cx[k].ids, cx[k].n * sizeof *all);
            memcpy(all + cx[k].n, ct[k].ids, ct[k].n * sizeof *all);
            int64_t inlen = (int64_t)total - 1, skip = 0;
            if (inlen > maxctx) { skip = inlen - maxctx; if (stats && c == 0) stats->truncated++; }
            int64_t first_scored = (int64_t)cx[k].n - 1; /* input position whose logits predict cont[0] */
            if ((st = dpb_engine_seq_reset(e, 0))) { free(all); break; }
            int64_t head = first_scored - skip; /* rows before the scored ones */
            if (head < 0) { /* the continuation alone overflows: score what fits */
                skip = first_scored;
                head = 0;
            }
            if (head > 0) {
                dpb_engine_seg sg = {0, all + skip, head};
                st = dpb_engine_forward(e, &sg, 1, DPB_LOGITS_NONE, NULL);
                if (stats) { stats->forward_calls++; stats->tokens += head; }
            }
            int64_t m = inlen - first_scored;
            if (!st) st = ensure(&logits, &lcap, (size_t)m, V);
            if (!st) {
                dpb_engine_seg sg = {0, all + first_scored, m};
                st = dpb_engine_forward(e, &sg, 1, DPB_LOGITS_ALL, logits);
                if (stats) { stats->forward_calls++; stats->tokens += m; }
            }
            double sum = 0;
            for (int64_t j = 0; j < m && !st; j++) sum += log_prob(logits + (size_t)j * V, V, ct[k].ids[j]);
            ll[k] = sum;
            free(all);
        }
    }
done:
    if (cx) for (size_t i = 0; i < npairs; i++) dpb_tokens_free(&cx[i]);
    if (ct) for (size_t i = 0; i < npairs; i++) dpb_tokens_free(&ct[i]);
    free(cx);
    free(ct);
    free(segs);
    free(single);
    free(logits);
    return st;
}

typedef struct gen_state {
    dpb_tokenizer_stream *ts;
    char **text;
    size_t *len, *cap;
    const char *const *stops;
    int nstops;
    size_t maxstop;
    dpb_status err;
} gen_state;

static bool on_token(void *user, int req, int32_t id, uint64_t t_ns)
{
    (void)t_ns;
    gen_state *g = user;
    const char *s;
    size_t n;
    if (dpb_tokenizer_stream_push(&g->ts[req], id, &s, &n) != DPB_OK) return true;
    if (!n) return true;
    if (g->len[req] + n + 1 > g->cap[req]) {
        size_t nc = (g->len[req] + n + 1) * 2;
        char *p = realloc(g->text[req], nc);
        if (!p) { g->err = DPB_E_NOMEM; return false; }
        g->text[req] = p;
        g->cap[req] = nc;
    }
    memcpy(g->text[req] + g->len[req], s, n);
    size_t from = g->len[req] > g->maxstop ? g->len[req] - g->maxstop : 0;
    g->len[req] += n;
    g->text[req][g->len[req]] = 0;
    for (int i = 0; i < g->nstops; i++)
        if (g->stops[i][0] && strstr(g->text[req] + from, g->stops[i])) return false;
    return true;
}

dpb_status dpb_eval_generate(dpb_engine *e, dpb_tokenizer *tok, const char *const *prompts, int n, unsigned flags,
                             int64_t max_new, const char *const *stops, int nstops, const int64_t *eos_ids, int n_eos,
                             char **outputs)
{
    if (n < 1 || n > dpb_engine_max_seqs(e)) return dpb_error_set(DPB_E_ARG, "eval: %d prompts for %d slots", n, dpb_engine_max_seqs(e));
    int64_t maxctx = dpb_engine_max_ctx(e);
    if (max_new >= maxctx) max_new = maxctx / 2;
    dpb_tokens *ids = calloc((size_t)n, sizeof *ids);
    dpb_gen_request *rq = calloc((size_t)n, sizeof *rq);
    dpb_gen_result *res = calloc((size_t)n, sizeof *res);
    gen_state g = {0};
    g.ts = calloc((size_t)n, sizeof *g.ts);
    g.text = calloc((size_t)n, sizeof *g.text);
    g.len = calloc((size_t)n, sizeof *g.len);
    g.cap = calloc((size_t)n, sizeof *g.cap);
    g.stops = stops;
    g.nstops = nstops;
    for (int i = 0; i < nstops; i++) if (strlen(stops[i]) > g.maxstop) g.maxstop = strlen(stops[i]);
    dpb_status st = DPB_OK;
    int nts = 0;
    bool generated = false;
    if (!ids || !rq || !res || !g.ts || !g.text || !g.len || !g.cap) { st = dpb_error_set(DPB_E_NOMEM, "eval: out of memory"); goto done; }
    for (int i = 0; i < n && !st; i++) {
        outputs[i] = NULL;
        if ((st = dpb_tokenizer_encode(tok, prompts[i], strlen(prompts[i]), flags, &ids[i]))) break;
        int64_t np = (int64_t)ids[i].n, keep = maxctx - max_new;
        int64_t skip = np > keep ? np - keep : 0; /* lm-eval keeps the prompt's last max_length - max_gen_toks tokens */
        rq[i].prompt = ids[i].ids + skip;
        rq[i].n_prompt = np - skip;
        if (rq[i].n_prompt < 1) { st = dpb_error_set(DPB_E_FORMAT, "eval: prompt %d is empty", i); break; }
        rq[i].max_new = max_new;
        rq[i].sampling = dpb_sampling_greedy();
        rq[i].n_stop = n_eos;
        rq[i].stop_ids = eos_ids;
        dpb_tokenizer_stream_init(&g.ts[i], tok, true);
        nts++;
    }
    if (st) goto done;
    st = dpb_engine_generate(e, rq, n, res, on_token, &g);
    generated = !st;
    if (!st && g.err) st = dpb_error_set(g.err, "eval: out of memory while generating");
    for (int i = 0; i < n && !st; i++) {
        size_t ol;
        if ((st = dpb_tokenizer_decode(tok, res[i].ids, (size_t)res[i].n, true, &outputs[i], &ol))) break;
        dpb_eval_apply_stops(outputs[i], stops, nstops);
    }
done:
    if (st && outputs)
        for (int i = 0; i < n; i++) { free(outputs[i]); outputs[i] = NULL; }
    for (int i = 0; i < nts; i++) dpb_tokenizer_stream_free(&g.ts[i]);
    if (generated) for (int i = 0; i < n; i++) dpb_gen_result_free(&res[i]);
    if (ids) for (int i = 0; i < n; i++) dpb_tokens_free(&ids[i]);
    if (g.text) for (int i = 0; i < n; i++) free(g.text[i]);
    free(ids); free(rq); free(res); free(g.ts); free(g.text); free(g.len); free(g.cap);
    return st;
}
