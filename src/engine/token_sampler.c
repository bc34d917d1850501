#include "engine/token_sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

dpb_sampling dpb_sampling_greedy(void)
{
    dpb_sampling s = {true, 1.0, 0, 1.0, 0.0, 0};
    return s;
}

dpb_status dpb_sampling_check(const dpb_sampling *s)
{
    if (s->greedy) return DPB_OK;
    if (!(s->temperature > 0) || !isfinite(s->temperature))
        return dpb_error_set(DPB_E_ARG, "temperature must be > 0 (use greedy for 0), got %g", s->temperature);
    if (s->top_k < 0) return dpb_error_set(DPB_E_ARG, "top_k must be >= 0, got %lld", (long long)s->top_k);
    if (!(s->top_p > 0 && s->top_p <= 1)) return dpb_error_set(DPB_E_ARG, "top_p must be in (0, 1], got %g", s->top_p);
    if (!(s->min_p >= 0 && s->min_p < 1)) return dpb_error_set(DPB_E_ARG, "min_p must be in [0, 1), got %g", s->min_p);
    return DPB_OK;
}

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
static uint64_t next_u64(dpb_token_sampler *sm)
{
    uint64_t *s = sm->s;
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}
double dpb_token_sampler_uniform(dpb_token_sampler *sm) { return (double)(next_u64(sm) >> 11) * 0x1.0p-53; }

dpb_status dpb_token_sampler_init(dpb_token_sampler *sm, const dpb_sampling *p, int64_t vocab)
{
    memset(sm, 0, sizeof *sm);
    dpb_status st = dpb_sampling_check(p);
    if (st) return st;
    if (vocab < 1) return dpb_error_set(DPB_E_ARG, "sampler: vocabulary size %lld", (long long)vocab);
    sm->p = *p;
    sm->vocab = vocab;
    uint64_t x = p->seed;
    for (int i = 0; i < 4; i++) sm->s[i] = splitmix(&x);
    if (!p->greedy) {
        sm->probs = malloc((size_t)vocab * sizeof *sm->probs);
        sm->order = malloc((size_t)vocab * sizeof *sm->order);
        if (!sm->probs || !sm->order) {
            dpb_token_sampler_free(sm);
            return dpb_error_set(DPB_E_NOMEM, "sampler: out of memory for %lld tokens", (long long)vocab);
        }
    }
    return DPB_OK;
}

void dpb_token_sampler_free(dpb_token_sampler *sm)
{
    free(sm->probs);
    free(sm->order);
    sm->probs = NULL;
    sm->order = NULL;
}

static int cmp_desc(const void *a, const void *b, void *ctx)
{
    const float *pr = ctx;
    float pa = pr[*(const int32_t *)a], pb = pr[*(const int32_t *)b];
    if (pa != pb) return pa > pb ? -1 : 1;
    return *(const int32_t *)a - *(const int32_t *)b;
}

dpb_status dpb_token_sampler_sample(dpb_token_sampler *sm, const float *logits, int32_t *out)
{
    int64_t V = sm->vocab;
    if (sm->p.greedy) {
        int64_t best = 0;
        for (int64_t i = 1; i < V; i++)
            if (logits[i] > logits[best] || (isnan(logits[best]) && !isnan(logits[i]))) best = i;
        if (isnan(logits[best])) return dpb_error_set(DPB_E_INTERNAL, "sampler: every logit is NaN");
        *out = (int32_t)best;
        return DPB_OK;
    }
    float *p = sm->probs;
    double inv_t = 1.0 / sm->p.temperature;
    float mx = -INFINITY;
    for (int64_t i = 0; i < V; i++) {
        p[i] = isnan(logits[i]) ? -INFINITY : (float)(logits[i] * inv_t);
        if (p[i] > mx) mx = p[i];
    }
    if (mx == -INFINITY) return dpb_error_set(DPB_E_INTERNAL, "sampler: no finite logit");
    double sum = 0;
    for (int64_t i = 0; i < V; i++) {
        p[i] = expf(p[i] - mx);
        sum += p[i];
    }
    for (int64_t i = 0; i < V; i++) p[i] = (float)(p[i] / sum);
    /* Candidates sorted by probability (descending, lower id first on ties). */
    int32_t *ord = sm->order;
    int64_t n = 0;
    for (int64_t i = 0; i < V; i++)
        if (p[i] > 0) ord[n++] = (int32_t)i;
    qsort_r(ord, (size_t)n, sizeof *ord, cmp_desc, p);
    if (sm->p.top_k > 0 && sm->p.top_k < n) n = sm->p.top_k;
    if (sm->p.top_p < 1) {
        double cum = 0, tot = 0;
        for (int64_t i = 0; i < n; i++) tot += p[ord[i]];
        int64_t keep = n;
        for (int64_t i = 0; i < n; i++) {
            cum += p[ord[i]] / tot;
            if (cum >= sm->p.top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
    }
    if (sm->p.min_p > 0) {
        double tot = 0;
        for (int64_t i = 0; i < n; i++) tot += p[ord[i]];
        double thr = sm->p.min_p * (p[ord[0]] / tot);
        int64_t keep = 1;
        while (keep < n && p[ord[keep]] / tot >= thr) keep++;
        n = keep;
    }
    double tot = 0;
    for (int64_t i = 0; i < n; i++) tot += p[ord[i]];
    double u = dpb_token_sampler_uniform(sm) * tot, cum = 0;
    for (int64_t i = 0; i < n; i++) {
        cum += p[ord[i]];
        if (u < cum) {
            *out = ord[i];
            return DPB_OK;
        }
    }
    *out = ord[n - 1];
    return DPB_OK;
}
