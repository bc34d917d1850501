/* The engine against the reference fixtures (../shared/fixtures), computed
 * by transformers in float32: logits at every position and the greedy
 * continuation; bf16 mode against the looser bound; prefill == decode;
 * batched == alone; KV bytes. */
#include <math.h>
#include <stdint.h>
#include "t.h"
#include "engine/engine.h"
#include "format/checkpoint.h"
#include "format/safetensors.h"
#include "synth/synth.h"

static const char *k_fixtures[] = {"gpt-oss-tiny-bf16", "gpt-oss-tiny-mxfp4", "qwen3-tiny", "llama-tiny"};

typedef struct ref {
    int64_t ids[64], greedy[16];
    int n;
    float *logits; /* [n, V] */
    int64_t V;
} ref;

static int load_ref(const char *fx, ref *r)
{
    char path[512];
    snprintf(path, sizeof path, "%s/fixtures/%s/reference.safetensors", t_shared(), fx);
    dpb_safetensors_file f;
    if (dpb_safetensors_open(path, &f)) {
        fprintf(stderr, "%s\n", dpb_error_message());
        return 0;
    }
    int ok = 1;
    memset(r, 0, sizeof *r);
    for (size_t i = 0; i < f.hdr.count; i++) {
        const dpb_st_entry *e = &f.hdr.entries[i];
        const void *d = dpb_safetensors_data(&f, e);
        if (strcmp(e->name, "input_ids") == 0 && e->dtype == DPB_DT_I64 && e->shape[0] <= 64) {
            r->n = (int)e->shape[0];
            memcpy(r->ids, d, (size_t)r->n * 8);
        } else if (strcmp(e->name, "greedy_ids") == 0 && e->dtype == DPB_DT_I64 && e->shape[0] == 16) {
            memcpy(r->greedy, d, 16 * 8);
        } else if (strcmp(e->name, "logits") == 0 && e->dtype == DPB_DT_F32 && e->ndim == 2) {
            r->V = e->shape[1];
            r->logits = malloc(e->end - e->begin);
            memcpy(r->logits, d, e->end - e->begin);
        }
    }
    dpb_safetensors_close(&f);
    if (!r->logits || !r->n) ok = 0;
    return ok;
}

static const char *g_backend = "cpu";
static int64_t g_topk;
static int g_threads = 2;

static dpb_engine *open_engine(const char *fx, dpb_checkpoint **ck, dpb_engine_dtype dt, int64_t chunk, int seqs)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/fixtures/%s", t_shared(), fx);
    if (dpb_checkpoint_open(dir, NULL, ck)) {
        fprintf(stderr, "%s: %s\n", fx, dpb_error_message());
        return NULL;
    }
    dpb_engine_opts o = {0};
    o.dtype = dt;
    o.max_ctx = 80;
    o.prefill_chunk = chunk;
    o.max_seqs = seqs;
    o.threads = g_threads;
    o.backend = g_backend;
    o.experts_per_tok = g_topk;
    dpb_engine *e;
    if (dpb_engine_create(*ck, &o, &e)) {
        fprintf(stderr, "%s: %s\n", fx, dpb_error_message());
        dpb_checkpoint_close(*ck);
        return NULL;
    }
    return e;
}

static float *run_all(dpb_engine *e, const ref *r, int seq)
{
    int32_t ids[64];
    for (int i = 0; i < r->n; i++) ids[i] = (int32_t)r->ids[i];
    float *lg = malloc((size_t)(r->n * r->V) * 4);
    dpb_engine_seq_reset(e, seq);
    dpb_engine_seg s = {seq, ids, r->n};
    if (dpb_engine_forward(e, &s, 1, DPB_LOGITS_ALL, lg)) {
        fprintf(stderr, "forward: %s\n", dpb_error_message());
        free(lg);
        return NULL;
    }
    return lg;
}

static void check_fixture_f32(const char *fx)
{
    ref r;
    if (!load_ref(fx, &r)) { T_CHECKF(0, "%s: reference not readable", fx); return; }
    dpb_checkpoint *ck;
    dpb_engine *e = open_engine(fx, &ck, DPB_ENGINE_F32, 0, 1);
    T_CHECK(e != NULL);
    if (!e) { free(r.logits); return; }
    float *lg = run_all(e, &r, 0);
    T_CHECK(lg != NULL);
    double worst = 0;
    for (int t = 0; lg && t < r.n; t++) {
        double md = 0, mr = 0;
        for (int64_t v = 0; v < r.V; v++) {
            double d = fabs((double)lg[t * r.V + v] - r.logits[t * r.V + v]);
            if (!(d <= md)) md = d;
            if (fabs(r.logits[t * r.V + v]) > mr) mr = fabs(r.logits[t * r.V + v]);
        }
        if (!(md / mr <= worst)) worst = md / mr;
    }
    fprintf(stderr, "  %s f32: worst max|diff|/max|ref| over %d positions = %.3g\n", fx, r.n, worst);
    T_CHECKF(worst <= 1e-4, "%s: %g", fx, worst);
    /* Greedy continuation with the KV cache, eos ignored. */
    int32_t ids[64];
    for (int i = 0; i < r.n; i++) ids[i] = (int32_t)r.ids[i];
    dpb_gen_request q = {ids, r.n, 16, dpb_sampling_greedy(), true, 0, NULL};
    dpb_gen_result res;
    T_CHECK(dpb_engine_generate(e, &q, 1, &res, NULL, NULL) == DPB_OK);
    int same = res.n == 16;
    for (int i = 0; same && i < 16; i++) same = res.ids[i] == r.greedy[i];
    T_CHECKF(same, "%s: greedy continuation differs", fx);
    for (int i = 1; i < res.n; i++) T_CHECK(res.t_ns[i] >= res.t_ns[i - 1]);
    T_CHECK(res.t_ns[0] >= res.t_prefill_done_ns && res.t_prefill_done_ns >= res.t_start_ns);
    dpb_gen_result_free(&res);
    free(lg);
    free(r.logits);
    dpb_engine_destroy(e);
    dpb_checkpoint_close(ck);
}

static void test_fixtures_f32(void)
{
    if (!t_shared()) T_SKIP("../shared/fixtures is absent");
    for (int i = 0; i < 4; i++) check_fixture_f32(k_fixtures[i]);
}

static void test_fixtures_bf16(void)
{
    if (!t_shared()) T_SKIP("../shared/fixtures is absent");
    for (int i = 0; i < 4; i++) {
        ref r;
        if (!load_ref(k_fixtures[i], &r)) { T_CHECK(0); continue; }
        dpb_checkpoint *ck;
        dpb_engine *e = open_engine(k_fixtures[i], &ck, DPB_ENGINE_BF16, 0, 1);
        T_CHECK(e != NULL);
        if (!e) { free(r.logits); continue; }
        float *lg = run_all(e, &r, 0);
        double worst = 0;
        int agree = 0;
        for (int t = 0; lg && t < r.n; t++) {
            double dd = 0, rr = 0;
            int64_t a = 0, b = 0;
            for (int64_t v = 0; v < r.V; v++) {
                double d = (double)lg[t * r.V + v] - r.logits[t * r.V + v];
                dd += d * d;
                rr += (double)r.logits[t * r.V + v] * r.logits[t * r.V + v];
                if (lg[t * r.V + v] > lg[t * r.V + a]) a = v;
                if (r.logits[t * r.V + v] > r.logits[t * r.V + b]) b = v;
            }
            double rel = sqrt(dd / rr);
            if (!(rel <= worst)) worst = rel;
            agree += a == b;
        }
        fprintf(stderr, "  %s bf16: worst ||diff||/||ref|| = %.3g, argmax agrees at %d/%d positions\n", k_fixtures[i],
                worst, agree, r.n);
        T_CHECKF(worst < 2e-2, "%s: %g", k_fixtures[i], worst);
        T_CHECK(agree * 4 >= r.n * 3);
        free(lg);
        free(r.logits);
        dpb_engine_destroy(e);
        dpb_checkpoint_close(ck);
    }
}

static void test_bf16_vs_mxfp4(void)
{
    if (!t_shared()) T_SKIP("../shared/fixtures is absent");
    ref r;
    if (!load_ref("gpt-oss-tiny-bf16", &r)) { T_CHECK(0); return; }
    dpb_checkpoint *c1, *c2;
    dpb_engine *e1 = open_engine("gpt-oss-tiny-bf16", &c1, DPB_ENGINE_F32, 0, 1);
    dpb_engine *e2 = open_engine("gpt-oss-tiny-mxfp4", &c2, DPB_ENGINE_F32, 0, 1);
    T_CHECK(e1 && e2);
    if (e1 && e2) {
        float *a = run_all(e1, &r, 0), *b = run_all(e2, &r, 0);
        double md = 0, mr = 0;
        for (int64_t i = 0; a && b && i < r.n * r.V; i++) {
            double d = fabs((double)a[i] - b[i]);
            if (!(d <= md)) md = d;
            if (fabs(a[i]) > mr) mr = fabs(a[i]);
        }
        fprintf(stderr, "  bf16 vs mxfp4 experts: max|diff|/max|logit| = %.3g\n", md / mr);
        T_CHECKF(md / mr < 1e-5, "%g", md / mr);
        free(a);
        free(b);
    }
    if (e1) { dpb_engine_destroy(e1); dpb_checkpoint_close(c1); }
    if (e2) { dpb_engine_destroy(e2); dpb_checkpoint_close(c2); }
    free(r.logits);
}

/* One prefill == chunked prefill == token-by-token decode, bitwise, past the window. */
static void check_prefill_decode(const char *fx, dpb_engine_dtype dt)
{
    ref r;
    if (!load_ref(fx, &r)) { T_CHECK(0); return; }
    dpb_checkpoint *c1, *c2, *c3;
    dpb_engine *e1 = open_engine(fx, &c1, dt, 0, 1), *e2 = open_engine(fx, &c2, dt, 5, 1),
               *e3 = open_engine(fx, &c3, dt, 0, 1);
    T_CHECK(e1 && e2 && e3);
    if (e1 && e2 && e3) {
        float *a = run_all(e1, &r, 0), *b = run_all(e2, &r, 0);
        float *c = malloc((size_t)(r.n * r.V) * 4);
        for (int t = 0; t < r.n; t++) {
            int32_t id = (int32_t)r.ids[t];
            dpb_engine_seg s = {0, &id, 1};
            T_CHECK(dpb_engine_forward(e3, &s, 1, DPB_LOGITS_LAST, c + (int64_t)t * r.V) == DPB_OK);
        }
        int bad_chunk = -1, bad_dec = -1;
        for (int t = r.n - 1; t >= 0; t--) {
            if (memcmp(a + t * r.V, b + t * r.V, (size_t)r.V * 4)) bad_chunk = t;
            if (memcmp(a + t * r.V, c + t * r.V, (size_t)r.V * 4)) bad_dec = t;
        }
        T_CHECKF(bad_chunk < 0, "%s dtype %d: chunked prefill differs from position %d", fx, dt, bad_chunk);
        T_CHECKF(bad_dec < 0, "%s dtype %d: decode differs from position %d", fx, dt, bad_dec);
        free(a); free(b); free(c);
    }
    if (e1) { dpb_engine_destroy(e1); dpb_checkpoint_close(c1); }
    if (e2) { dpb_engine_destroy(e2); dpb_checkpoint_close(c2); }
    if (e3) { dpb_engine_destroy(e3); dpb_checkpoint_close(c3); }
    free(r.logits);
}

static void test_prefill_equals_decode(void)
{
    if (!t_shared()) T_SKIP("../shared/fixtures is absent");
    check_prefill_decode("gpt-oss-tiny-mxfp4", DPB_ENGINE_F32);
    check_prefill_decode("gpt-oss-tiny-bf16", DPB_ENGINE_BF16);
    check_prefill_decode("qwen3-tiny", DPB_ENGINE_BF16);
}

/* Three sequences in one step give the logits each gives alone. */
static void test_batched_sequences(void)
{
    if (!t_shared()) T_SKIP("../shared/fixtures is absent");
    ref r;
    if (!load_ref("gpt-oss-tiny-mxfp4", &r)) { T_CHECK(0); return; }
    dpb_checkpoint *ck;
    dpb_engine *e = open_engine("gpt-oss-tiny-mxfp4", &ck, DPB_ENGINE_BF16, 16, 3);
    T_CHECK(e != NULL);
    if (!e) { free(r.logits); return; }
    int32_t ids[64];
    for (int i = 0; i < r.n; i++) ids[i] = (int32_t)r.ids[i];
    /* alone: prefixes of 48, 20, 33 tokens */
    int64_t lens[3] = {48, 20, 33};
    float *alone = malloc((size_t)(3 * r.V) * 4), *tog = malloc((size_t)(3 * r.V) * 4);
    for (int s = 0; s < 3; s++) {
        dpb_engine_seq_reset(e, s);
        dpb_engine_seg g = {s, ids + s, lens[s]};
        T_CHECK(dpb_engine_forward(e, &g, 1, DPB_LOGITS_LAST, alone + s * r.V) == DPB_OK);
    }
    dpb_engine_seg gs[3];
    for (int s = 0; s < 3; s++) {
        dpb_engine_seq_reset(e, s);
        gs[s] = (dpb_engine_seg){s, ids + s, lens[s]};
    }
    T_CHECK(dpb_engine_forward(e, gs, 3, DPB_LOGITS_LAST, tog) == DPB_OK);
    T_CHECK(memcmp(alone, tog, (size_t)(3 * r.V) * 4) == 0);
    T_CHECK(dpb_engine_seq_len(e, 1) == 20);
    /* one decode step for all three */
    int32_t nxt[3] = {5, 6, 7};
    for (int s = 0; s < 3; s++) gs[s] = (dpb_engine_seg){s, &nxt[s], 1};
    T_CHECK(dpb_engine_forward(e, gs, 3, DPB_LOGITS_LAST, tog) == DPB_OK);
    dpb_engine_seq_reset(e, 0);
    dpb_engine_seg g0 = {0, ids, 48};
    dpb_engine_forward(e, &g0, 1, DPB_LOGITS_NONE, NULL);
    g0 = (dpb_engine_seg){0, &nxt[0], 1};
    dpb_engine_forward(e, &g0, 1, DPB_LOGITS_LAST, alone);
    T_CHECK(memcmp(alone, tog, (size_t)r.V * 4) == 0);
    /* errors */
    dpb_engine_seg twice[2] = {{0, ids, 1}, {0, ids, 1}};
    T_CHECK(dpb_engine_forward(e, twice, 2, DPB_LOGITS_NONE, NULL) == DPB_E_ARG);
    int32_t badid = 512;
    dpb_engine_seg bad = {1, &badid, 1};
    T_CHECK(dpb_engine_forward(e, &bad, 1, DPB_LOGITS_NONE, NULL) == DPB_E_RANGE);
    T_CHECK(strstr(dpb_error_message(), "512") != NULL);
    free(alone); free(tog); free(r.logits);
    dpb_engine_destroy(e);
    dpb_checkpoint_close(ck);
}

/* Two sequences (12 and 6 tokens of k_two_ids) through engines a and b: the same last-row logits, bit for
 * bit; *la_out (malloc'ed, [2, V]) keeps a's. */
static const int32_t k_two_ids[12] = {1, 5, 9, 2, 7, 7, 3, 100, 42, 8, 0, 11};
static void same_two_seqs(dpb_engine *a, dpb_engine *b, float **la_out)
{
    int64_t V = dpb_engine_vocab(a);
    float *la = malloc((size_t)(2 * V) * 4), *lb = malloc((size_t)(2 * V) * 4);
    dpb_engine_seg sa[2] = {{0, k_two_ids, 12}, {1, k_two_ids + 3, 6}};
    T_CHECK(dpb_engine_forward(a, sa, 2, DPB_LOGITS_LAST, la) == DPB_OK);
    T_CHECK(dpb_engine_forward(b, sa, 2, DPB_LOGITS_LAST, lb) == DPB_OK);
    T_CHECK(memcmp(la, lb, (size_t)(2 * V) * 4) == 0);
    free(lb);
    *la_out = la;
}

/* A synth checkpoint opened without weights: the engine generates them
 * itself (host fallback here), giving the same logits as the in-memory
 * model; forward_argmax gives the argmax of those logits. */
static void test_deferred_synth_and_argmax(void)
{
    dpb_checkpoint *full = NULL, *lazy = NULL;
    T_CHECK(dpb_checkpoint_open("synth:gpt-oss-tiny:5", NULL, &full) == DPB_OK);
    dpb_synth_set_deferred(true);
    T_CHECK(dpb_checkpoint_open("synth:gpt-oss-tiny:5", NULL, &lazy) == DPB_OK);
    dpb_synth_set_deferred(false);
    if (!full || !lazy) return;
    dpb_engine_opts o = {.backend = "cpu", .threads = 1, .dtype = DPB_ENGINE_F32, .max_ctx = 64, .max_seqs = 2};
    dpb_engine *a = NULL, *b = NULL;
    T_CHECK(dpb_engine_create(full, &o, &a) == DPB_OK);
    T_CHECK(dpb_engine_create(lazy, &o, &b) == DPB_OK);
    if (!a || !b) return;
    int64_t V = dpb_engine_vocab(a);
    float *la;
    same_two_seqs(a, b, &la);
    dpb_engine_seg sa[2] = {{0, k_two_ids, 12}, {1, k_two_ids + 3, 6}};
    int32_t want[2], got[2];
    for (int r = 0; r < 2; r++) {
        int64_t best = 0;
        for (int64_t v = 1; v < V; v++)
            if (la[r * V + v] > la[r * V + best]) best = v;
        want[r] = (int32_t)best;
    }
    dpb_engine_seq_reset(b, 0);
    dpb_engine_seq_reset(b, 1);
    T_CHECK(dpb_engine_forward_argmax(b, sa, 2, got) == DPB_OK);
    T_CHECK(got[0] == want[0] && got[1] == want[1]);
    T_CHECK(dpb_engine_seq_len(b, 0) == 12 && dpb_engine_seq_len(b, 1) == 6);
    uint64_t rep = 9, cap = 9;
    dpb_engine_graph_stats(b, &rep, &cap);
    T_CHECK(rep == 0 && cap == 0); /* host backends have no graphs */
    free(la);
    dpb_engine_destroy(a);
    dpb_engine_destroy(b);
    dpb_checkpoint_close(full);
    dpb_checkpoint_close(lazy);
}

/* A copied slot continues exactly as the slot that ran the tokens itself
 * (a prefix longer than the sliding window, so rings wrap). */
static void test_seq_copy(void)
{
    dpb_checkpoint *ck = NULL;
    T_CHECK(dpb_checkpoint_open("synth:gpt-oss-tiny:9", NULL, &ck) == DPB_OK);
    if (!ck) return;
    const dpb_model_config *c = dpb_checkpoint_config(ck);
    dpb_engine_opts o = {.backend = "cpu", .threads = 1, .max_ctx = 256, .max_seqs = 3};
    dpb_engine *e = NULL;
    T_CHECK(dpb_engine_create(ck, &o, &e) == DPB_OK);
    if (!e) { dpb_checkpoint_close(ck); return; }
    int64_t V = dpb_engine_vocab(e), P = c->sliding_window > 0 ? 2 * c->sliding_window + 5 : 40;
    int32_t ids[300];
    for (int i = 0; i < 300; i++) ids[i] = (i * 29 + 7) % (int32_t)V;
    float *a = malloc((size_t)(2 * V) * 4), *b = malloc((size_t)(2 * V) * 4);
    dpb_engine_seg p0 = {0, ids, P};
    T_CHECK(dpb_engine_forward(e, &p0, 1, DPB_LOGITS_NONE, NULL) == DPB_OK);
    T_CHECK(dpb_engine_seq_copy(e, 1, 0) == DPB_OK);
    T_CHECK(dpb_engine_seq_len(e, 1) == P);
    dpb_engine_seg two[2] = {{0, ids + P, 7}, {1, ids + P, 7}};
    T_CHECK(dpb_engine_forward(e, two, 2, DPB_LOGITS_LAST, a) == DPB_OK);
    dpb_engine_seg whole = {2, ids, P + 7};
    T_CHECK(dpb_engine_forward(e, &whole, 1, DPB_LOGITS_LAST, b) == DPB_OK);
    T_CHECK(memcmp(a, b, (size_t)V * 4) == 0);
    T_CHECK(memcmp(a + V, b, (size_t)V * 4) == 0);
    T_CHECK(dpb_engine_seq_copy(e, 3, 0) == DPB_E_ARG);
    T_CHECK(strstr(dpb_error_message(), "slot 3") != NULL);
    free(a); free(b);
    dpb_engine_destroy(e);
    dpb_checkpoint_close(ck);
}

/* FP8 KV cache (E4M3, scale 1): half the bytes of bf16, the same for every
 * model family; logits close to the bf16 cache's but not equal (the cache is
 * really quantized); decoding through the cache equals the whole prompt in
 * one pass; bad names are refused. */
static void test_kv_fp8(void)
{
    static const char *const models[] = {"synth:gpt-oss-tiny:3", "synth:qwen3-tiny:3", "synth:llama-tiny:3"};
    for (size_t m = 0; m < sizeof models / sizeof models[0]; m++) {
        dpb_checkpoint *ck = NULL;
        T_CHECKF(dpb_checkpoint_open(models[m], NULL, &ck) == DPB_OK, "%s: %s", models[m], dpb_error_message());
        if (!ck) continue;
        dpb_engine *e[2] = {NULL, NULL};
        const dpb_engine_kv kv[2] = {DPB_ENGINE_KV_BF16, DPB_ENGINE_KV_FP8};
        for (int i = 0; i < 2; i++) {
            dpb_engine_opts o = {.backend = "cpu", .threads = 1, .max_ctx = 96, .max_seqs = 2, .kv = kv[i]};
            T_CHECKF(dpb_engine_create(ck, &o, &e[i]) == DPB_OK, "%s: %s", models[m], dpb_error_message());
        }
        if (!e[0] || !e[1]) goto next;
        T_CHECKF(2 * dpb_engine_kv_bytes(e[1]) == dpb_engine_kv_bytes(e[0]), "%s: fp8 %llu, bf16 %llu bytes", models[m],
                 (unsigned long long)dpb_engine_kv_bytes(e[1]), (unsigned long long)dpb_engine_kv_bytes(e[0]));
        uint64_t a;
        T_CHECK(dpb_kv_bytes_analytic(dpb_engine_config(e[1]), 2, 96, 1, &a) == DPB_OK && a == dpb_engine_kv_bytes(e[1]));
        int64_t V = dpb_engine_vocab(e[0]);
        int32_t ids[60];
        for (int i = 0; i < 60; i++) ids[i] = (i * 37 + 11) % (int32_t)V;
        float *l0 = malloc((size_t)V * 4), *l1 = malloc((size_t)V * 4), *l2 = malloc((size_t)V * 4);
        dpb_engine_seg s0 = {0, ids, 60};
        T_CHECK(dpb_engine_forward(e[0], &s0, 1, DPB_LOGITS_LAST, l0) == DPB_OK);
        T_CHECK(dpb_engine_forward(e[1], &s0, 1, DPB_LOGITS_LAST, l1) == DPB_OK);
        /* slot 1 of the fp8 engine: 50 tokens, then 10 one by one through the cache */
        dpb_engine_seg s1 = {1, ids, 50};
        T_CHECK(dpb_engine_forward(e[1], &s1, 1, DPB_LOGITS_NONE, NULL) == DPB_OK);
        for (int t = 50; t < 60; t++) {
            dpb_engine_seg st = {1, ids + t, 1};
            T_CHECK(dpb_engine_forward(e[1], &st, 1, DPB_LOGITS_LAST, l2) == DPB_OK);
        }
        double num = 0, den = 0, d2 = 0;
        for (int64_t v = 0; v < V; v++) {
            num += (double)(l1[v] - l0[v]) * (l1[v] - l0[v]);
            den += (double)l0[v] * l0[v];
            d2 += (double)(l2[v] - l1[v]) * (l2[v] - l1[v]);
        }
        double rel = sqrt(num / den), rel2 = sqrt(d2 / den);
        T_CHECKF(rel > 1e-6 && rel < 0.2, "%s: fp8 vs bf16 KV logits rel_l2 %g (want (1e-6, 0.2))", models[m], rel);
        T_CHECKF(rel2 < 1e-4, "%s: fp8 decode through the cache vs one pass rel_l2 %g", models[m], rel2);
        free(l0); free(l1); free(l2);
    next:
        dpb_engine_destroy(e[0]);
        dpb_engine_destroy(e[1]);
        dpb_checkpoint_close(ck);
    }
    dpb_engine_kv k;
    T_CHECK(dpb_engine_kv_parse("fp8_e4m3", &k) == DPB_OK && k == DPB_ENGINE_KV_FP8);
    T_CHECK(dpb_engine_kv_parse("fp16", &k) == DPB_E_ARG && strstr(dpb_error_message(), "'fp16'"));
    T_CHECK(dpb_engine_kv_resolve(DPB_ENGINE_KV_AUTO, DPB_ENGINE_F32) == DPB_KV_F32);
    T_CHECK(dpb_engine_kv_resolve(DPB_ENGINE_KV_AUTO, DPB_ENGINE_BF16) == DPB_KV_BF16);
}

static void test_kv_bytes(void)
{
    if (!t_shared()) T_SKIP("../shared/fixtures is absent");
    dpb_checkpoint *ck;
    dpb_engine *e = open_engine("gpt-oss-tiny-bf16", &ck, DPB_ENGINE_BF16, 0, 3);
    T_CHECK(e != NULL);
    if (!e) return;
    /* 3 seqs x (2 sliding layers x 8 slots + 2 full x 80) x 2 x 2 kv heads x 32 x 2 bytes */
    uint64_t want = 3ull * (2 * 8 + 2 * 80) * 2 * 2 * 32 * 2;
    T_CHECKF(dpb_engine_kv_bytes(e) == want, "%llu vs %llu", (unsigned long long)dpb_engine_kv_bytes(e),
             (unsigned long long)want);
    T_CHECK(dpb_engine_workspace_bytes(e) > 0 && dpb_engine_workspace_bytes(e) < (64u << 20));
    uint64_t a;
    T_CHECK(dpb_kv_bytes_analytic(dpb_engine_config(e), 3, 80, 2, &a) == DPB_OK && a == want);
    /* prompt longer than the context */
    int32_t ids[100] = {0};
    dpb_gen_request q = {ids, 100, 4, dpb_sampling_greedy(), true, 0, NULL};
    dpb_gen_result res;
    T_CHECK(dpb_engine_generate(e, &q, 1, &res, NULL, NULL) == DPB_E_RANGE);
    T_CHECK(strstr(dpb_error_message(), "100") && strstr(dpb_error_message(), "80"));
    dpb_engine_destroy(e);
    dpb_checkpoint_close(ck);
}

/* The staged path (ids, positions and logits through upload/download, as a
 * device backend needs) gives the same logits; the experts-per-token
 * override changes them only when it differs from the config. */
static void test_staged_and_topk(void)
{
    if (!t_shared()) T_SKIP("../shared/fixtures is absent");
    ref r;
    if (!load_ref("gpt-oss-tiny-mxfp4", &r)) { T_CHECK(0); return; }
    float *lg[4] = {0};
    const char *be[4] = {"cpu", "cpu-staged", "cpu", "cpu"};
    int64_t tk[4] = {0, 0, 4, 8};
    int th[4] = {2, 2, 1, 2}; /* the third run also checks 1 thread == 2 threads */
    for (int i = 0; i < 4; i++) {
        g_backend = be[i];
        g_topk = tk[i];
        g_threads = th[i];
        dpb_checkpoint *ck;
        dpb_engine *e = open_engine("gpt-oss-tiny-mxfp4", &ck, DPB_ENGINE_BF16, 20, 1);
        T_CHECK(e != NULL);
        if (!e) continue;
        lg[i] = run_all(e, &r, 0);
        dpb_engine_destroy(e);
        dpb_checkpoint_close(ck);
    }
    g_backend = "cpu";
    g_topk = 0;
    g_threads = 2;
    size_t bytes = (size_t)(r.n * r.V) * 4;
    T_CHECK(lg[0] && lg[1] && memcmp(lg[0], lg[1], bytes) == 0);
    T_CHECK(lg[0] && lg[2] && memcmp(lg[0], lg[2], bytes) == 0);
    T_CHECK(lg[0] && lg[3] && memcmp(lg[0], lg[3], bytes) != 0);
    /* out of range */
    g_topk = 9;
    dpb_checkpoint *ck;
    T_CHECK(open_engine("gpt-oss-tiny-mxfp4", &ck, DPB_ENGINE_BF16, 0, 1) == NULL);
    g_topk = 0;
    for (int i = 0; i < 4; i++) free(lg[i]);
    free(r.logits);
}

/* DPB_OP_PROFILE: the engine runs through the profiling wrapper, gives the
 * same logits, and writes a table naming each operation with its shape. */
static void test_op_profile(void)
{
    dpb_checkpoint *ck = NULL;
    T_CHECK(dpb_checkpoint_open("synth:gpt-oss-tiny:5", NULL, &ck) == DPB_OK);
    if (!ck) return;
    char path[] = "/tmp/dpb-prof-XXXXXX";
    int fd = mkstemp(path);
    T_CHECK(fd >= 0);
    if (fd < 0) return;
    close(fd);
    dpb_engine_opts o = {.backend = "cpu-staged", .threads = 1, .dtype = DPB_ENGINE_BF16, .max_ctx = 64, .max_seqs = 2};
    dpb_engine *a = NULL, *b = NULL;
    T_CHECK(dpb_engine_create(ck, &o, &a) == DPB_OK);
    setenv("DPB_OP_PROFILE", path, 1);
    T_CHECK(dpb_engine_create(ck, &o, &b) == DPB_OK);
    unsetenv("DPB_OP_PROFILE");
    if (!a || !b) return;
    T_CHECK(strcmp(dpb_engine_backend(b)->ops->name, dpb_engine_backend(a)->ops->name) == 0);
    float *la;
    same_two_seqs(a, b, &la);
    dpb_engine_destroy(a);
    dpb_engine_destroy(b); /* writes the table */
    FILE *f = fopen(path, "r");
    T_CHECK(f != NULL);
    char buf[16384];
    size_t got = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[got] = 0;
    if (f) fclose(f);
    unlink(path);
    T_CHECK(strstr(buf, "## Operation profile (cpu backend") != NULL);
    /* gpt-oss-tiny: q is [num_heads*head_dim x hidden], 18 rows in one pass */
    T_CHECKF(strstr(buf, "| linear bf16 [") != NULL && strstr(buf, "] n=18 |") != NULL, "%s", buf);
    T_CHECK(strstr(buf, "| moe mxfp4 n=18 |") != NULL || strstr(buf, "| moe bf16 n=18 |") != NULL);
    T_CHECK(strstr(buf, "| attention hd=") != NULL);
    T_CHECK(strstr(buf, "| download ") != NULL);
    free(la);
    dpb_checkpoint_close(ck);
}

int main(void)
{
    T_RUN(test_fixtures_f32);
    T_RUN(test_fixtures_bf16);
    T_RUN(test_bf16_vs_mxfp4);
    T_RUN(test_prefill_equals_decode);
    T_RUN(test_batched_sequences);
    T_RUN(test_deferred_synth_and_argmax);
    T_RUN(test_seq_copy);
    T_RUN(test_kv_bytes);
    T_RUN(test_kv_fp8);
    T_RUN(test_staged_and_topk);
    T_RUN(test_op_profile);
    return t_done();
}
