/* The CUDA backend's operations against the reference backend (the
 * decode-sized shapes; dev/cuda/backend_check adds the gpt-oss-sized ones,
 * the fixtures through the engine and the speed runs).  Skips when the
 * backend is not compiled in or no device is present.  Also checks that a
 * build without CUDA refuses --backend cuda with a clear message. */
#include "t.h"
#include "backend/backend.h"
#include "../dev/cuda/backend_ops_check.h"
#include "engine/engine.h"
#include "format/checkpoint.h"
#include "synth/synth.h"

static void test_open_or_refuse(void)
{
    dpb_backend *b = NULL;
    dpb_status st = dpb_backend_open("cuda", 0, &b);
#ifndef DPB_HAVE_CUDA
    T_CHECK(st == DPB_E_UNAVAILABLE);
    T_CHECK(b == NULL);
    T_CHECKF(strstr(dpb_error_message(), "CUDA backend not compiled in") != NULL, "%s", dpb_error_message());
#else
    if (st) {
        T_CHECK(st == DPB_E_UNAVAILABLE || st == DPB_E_ARG);
        T_CHECK(b == NULL);
        T_SKIP("no CUDA device: %s", dpb_error_message());
    }
    T_CHECK(b != NULL && strcmp(b->ops->name, "cuda") == 0 && !b->host_memory);
    dpb_backend_close(b);
#endif
}

/* The backend's environment switches refuse values they do not know, naming the variable (before any device is
 * touched, so this runs on machines without a GPU too). */
static void test_env_refused(void)
{
#ifndef DPB_HAVE_CUDA
    T_SKIP("CUDA backend not compiled in");
#else
    static const char *const vars[] = {"DPB_CUDA_PREFILL", "DPB_CUDA_MOE_GROUPED", "DPB_CUDA_PDL"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *was = getenv(vars[i]);
        char *keep = was ? strdup(was) : NULL;
        setenv(vars[i], "bogus", 1);
        dpb_backend *b = NULL;
        dpb_status st = dpb_backend_open("cuda", 0, &b);
        T_CHECKF(st == DPB_E_ARG && b == NULL, "%s=bogus: status %d", vars[i], (int)st);
        T_CHECKF(strstr(dpb_error_message(), vars[i]) && strstr(dpb_error_message(), "'bogus'"), "%s",
                 dpb_error_message());
        if (keep) setenv(vars[i], keep, 1);
        else unsetenv(vars[i]);
        free(keep);
        if (b) dpb_backend_close(b);
    }
#endif
}

static void test_ops_vs_ref(void)
{
    dpb_backend *dev = NULL, *ref = NULL;
    if (dpb_backend_open("cuda", 0, &dev)) T_SKIP("no CUDA device: %s", dpb_error_message());
    T_CHECK(dpb_backend_open("ref", 1, &ref) == DPB_OK);
    opc c = {dev, ref, 0x9e3779b97f4a7c15ull, 0, 0, stderr};
    opc_run_all(&c, 0);
    fprintf(stderr, "  %d checks, %d failed\n", c.checks, c.fails);
    T_CHECK(c.checks > 40);
    T_CHECK(c.fails == 0);
    dpb_backend_close(dev);
    dpb_backend_close(ref);
}

/* The prefill MoE on the grouped-by-expert path (DPB_CUDA_MOE_GROUPED=1). */
static void test_moe_grouped_vs_ref(void)
{
    dpb_backend *dev = NULL, *ref = NULL;
    setenv("DPB_CUDA_MOE_GROUPED", "1", 1);
    dpb_status st = dpb_backend_open("cuda", 0, &dev);
    unsetenv("DPB_CUDA_MOE_GROUPED");
    if (st) T_SKIP("no CUDA device: %s", dpb_error_message());
    T_CHECK(dpb_backend_open("ref", 1, &ref) == DPB_OK);
    opc c = {dev, ref, 0x243f6a8885a308d3ull, 0, 0, stderr};
    opc_run_moe_prefill(&c);
    fprintf(stderr, "  %d checks, %d failed\n", c.checks, c.fails);
    T_CHECK(c.checks >= 6);
    T_CHECK(c.fails == 0);
    dpb_backend_close(dev);
    dpb_backend_close(ref);
}

/* Decode on the device through captured graphs, with weights generated on
 * the device, against the cpu engine on the same synth model (f32, so the
 * greedy tokens must agree); and the graphs really replay. */
static void test_engine_graphs_vs_cpu(void)
{
    dpb_backend *probe = NULL;
    if (dpb_backend_open("cuda", 0, &probe)) T_SKIP("no CUDA device: %s", dpb_error_message());
    dpb_backend_close(probe);
    const char *specs[] = {"synth:gpt-oss-tiny:11", "synth:qwen3-tiny:2"};
    for (size_t k = 0; k < 2; k++) {
        dpb_checkpoint *full = NULL, *lazy = NULL;
        T_CHECK(dpb_checkpoint_open(specs[k], NULL, &full) == DPB_OK);
        dpb_synth_set_deferred(true);
        T_CHECK(dpb_checkpoint_open(specs[k], NULL, &lazy) == DPB_OK);
        dpb_synth_set_deferred(false);
        if (!full || !lazy) return;
        dpb_engine_opts oc = {.backend = "cpu", .threads = 1, .dtype = DPB_ENGINE_F32, .max_ctx = 256, .max_seqs = 2};
        dpb_engine_opts og = oc;
        og.backend = "cuda";
        dpb_engine *c = NULL, *g = NULL;
        T_CHECK(dpb_engine_create(full, &oc, &c) == DPB_OK);
        T_CHECK(dpb_engine_create(lazy, &og, &g) == DPB_OK);
        if (!c || !g) return;
        int32_t p0[20], p1[9];
        for (int i = 0; i < 20; i++) p0[i] = (i * 37 + 5) % 200;
        for (int i = 0; i < 9; i++) p1[i] = (i * 11 + 3) % 200;
        dpb_gen_request rq[2] = {{p0, 20, 40, dpb_sampling_greedy(), true, 0, NULL},
                                 {p1, 9, 40, dpb_sampling_greedy(), true, 0, NULL}};
        dpb_gen_result rc[2], rg[2];
        T_CHECK(dpb_engine_generate(c, rq, 2, rc, NULL, NULL) == DPB_OK);
        T_CHECK(dpb_engine_generate(g, rq, 2, rg, NULL, NULL) == DPB_OK);
        int same = 0;
        for (int r = 0; r < 2; r++)
            for (int64_t i = 0; i < 40 && i < rc[r].n && i < rg[r].n; i++) same += rc[r].ids[i] == rg[r].ids[i];
        T_CHECKF(same == 80, "%s: %d of 80 greedy tokens agree", specs[k], same);
        uint64_t rep = 0, cap = 0;
        dpb_engine_graph_stats(g, &rep, &cap);
        T_CHECKF(cap == 1 && rep >= 37, "%s: %llu captures, %llu replays", specs[k], (unsigned long long)cap,
                 (unsigned long long)rep);
        /* one sequence alone: a second graph; and the logits path (not argmax) agrees too */
        for (int r = 0; r < 2; r++) { dpb_gen_result_free(&rc[r]); dpb_gen_result_free(&rg[r]); }
        int64_t V = dpb_engine_vocab(c);
        float *lc = malloc((size_t)V * 4), *lg = malloc((size_t)V * 4);
        dpb_engine_seq_reset(c, 0);
        dpb_engine_seq_reset(g, 0);
        dpb_engine_seg s0 = {0, p0, 20};
        T_CHECK(dpb_engine_forward(c, &s0, 1, DPB_LOGITS_LAST, lc) == DPB_OK);
        T_CHECK(dpb_engine_forward(g, &s0, 1, DPB_LOGITS_LAST, lg) == DPB_OK);
        double worst = 0;
        for (int step = 0; step < 6; step++) {
            int32_t t = p1[step];
            dpb_engine_seg s1 = {0, &t, 1};
            T_CHECK(dpb_engine_forward(c, &s1, 1, DPB_LOGITS_LAST, lc) == DPB_OK);
            T_CHECK(dpb_engine_forward(g, &s1, 1, DPB_LOGITS_LAST, lg) == DPB_OK);
            double mx = 0, d = 0;
            for (int64_t v = 0; v < V; v++) {
                mx = fmax(mx, fabs(lc[v]));
                d = fmax(d, fabs(lc[v] - lg[v]));
            }
            worst = fmax(worst, d / (mx > 0 ? mx : 1));
        }
        T_CHECKF(worst < 1e-4, "%s: decode logits differ by %.3g (relative to the largest)", specs[k], worst);
        dpb_engine_graph_stats(g, &rep, &cap);
        T_CHECKF(cap == 2, "%s: %llu captures after the logits steps", specs[k], (unsigned long long)cap);
        free(lc); free(lg);
        dpb_engine_destroy(c);
        dpb_engine_destroy(g);
        dpb_checkpoint_close(full);
        dpb_checkpoint_close(lazy);
    }
}

int main(void)
{
    T_RUN(test_open_or_refuse);
    T_RUN(test_env_refused);
    T_RUN(test_ops_vs_ref);
    T_RUN(test_moe_grouped_vs_ref);
    T_RUN(test_engine_graphs_vs_cpu);
    return t_done();
}
