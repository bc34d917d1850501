/* Self-checking program of the CUDA backend (run on the GPU machine by
 * dev/cuda/run_backend_check.sh):
 *   1. every operation against the reference backend (backend_ops_check.h);
 *   2. the four public fixtures through the engine on the backend: logits
 *      per position against reference.safetensors (f32 and bf16 engines,
 *      ||diff|| / ||ref|| <= 2e-2), and the 16-token greedy continuation
 *      of the f32 engine identical to the reference; on cuda the prefill
 *      operations and the fixtures again with DPB_CUDA_PREFILL=new (and the
 *      operations with =old), the MoE checks with DPB_CUDA_MOE_GROUPED=on;
 *   3. decode speed: synth models generated in host memory, uploaded, batch
 *      1, greedy, end-of-sequence ignored, prompts of random ids; tok/s from
 *      the engine's per-token timestamps next to the roofline (active bytes
 *      per token from inspect / device copy bandwidth measured here); on
 *      cuda the longest prompt again with DPB_CUDA_PREFILL=old (the first
 *      prefill kernels: before/after in one run) and with one prefill chunk
 *      of the whole prompt; the shortest prompt's decode again with
 *      DPB_CUDA_MOE_LUT=1 (byte-table MXFP4 decoding in kernels A/B).
 * Options:
 *   --backend B        the backend under test (default cuda; "cpu-staged"
 *                      runs the same checks on the cpu, to test this program)
 *   --fixtures DIR     (default $DPB_FIXTURES, else ../shared/fixtures)
 *   --skip-ops, --skip-fixtures
 *   --speed MODEL[@N]  a synth model for the speed runs (repeatable; default
 *                      synth:gpt-oss-20b; "none" skips them); @N keeps N layers
 *                      (e.g. synth:qwen3-32b@8), the roofline follows
 *   --layers N         synth layer override for speed models without @N (0 = all)
 *   --ctx A,B          prompt lengths (default 128,2048)
 *   --new N            tokens generated per run (default 64)
 *   --seed S           seed of the operation checks' inputs (default: from the clock, printed)
 * Exit status: 0 when every check passed, 1 otherwise. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "core/timeutil.h"
#include "engine/engine.h"
#include "synth/synth.h"
#include "format/checkpoint.h"
#include "format/safetensors.h"
#include "models/inspect.h"
#include "backend_ops_check.h"

static const char *g_backend = "cuda";
static int g_fail;

/* DPB_CUDA_PREFILL for the backends opened until restore_prefill(). */
static char g_prefill_was[64];
static int g_prefill_had;
static void with_prefill(const char *mode)
{
    const char *was = getenv("DPB_CUDA_PREFILL");
    g_prefill_had = was != NULL;
    snprintf(g_prefill_was, sizeof g_prefill_was, "%s", was ? was : "");
    setenv("DPB_CUDA_PREFILL", mode, 1);
}
static void restore_prefill(void)
{
    if (g_prefill_had) setenv("DPB_CUDA_PREFILL", g_prefill_was, 1);
    else unsetenv("DPB_CUDA_PREFILL");
}

typedef struct fxref {
    int64_t ids[64], greedy[16];
    int n;
    float *logits;
    int64_t V;
} fxref;

static int load_ref(const char *dir, const char *fx, fxref *r)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s/reference.safetensors", dir, fx);
    dpb_safetensors_file f;
    memset(r, 0, sizeof *r);
    if (dpb_safetensors_open(path, &f)) {
        printf("FAIL %s: %s\n", fx, dpb_error_message());
        return 0;
    }
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
    return r->logits && r->n;
}

static void check_fixture(const char *dir, const char *fx, dpb_engine_dtype dt)
{
    const char *mode = dt == DPB_ENGINE_F32 ? "f32" : "bf16";
    fxref r;
    if (!load_ref(dir, fx, &r)) { g_fail++; return; }
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, fx);
    dpb_checkpoint *ck = NULL;
    dpb_engine *e = NULL;
    dpb_engine_opts o = {0};
    o.dtype = dt;
    o.max_ctx = 80;
    o.backend = g_backend;
    float *lg = malloc((size_t)(r.n * r.V) * 4);
    int32_t ids[64];
    for (int i = 0; i < r.n; i++) ids[i] = (int32_t)r.ids[i];
    if (dpb_checkpoint_open(path, NULL, &ck) || dpb_engine_create(ck, &o, &e)) {
        printf("FAIL fixture %s %s: %s\n", fx, mode, dpb_error_message());
        g_fail++;
        goto out;
    }
    dpb_engine_seg s = {0, ids, r.n};
    if (dpb_engine_forward(e, &s, 1, DPB_LOGITS_ALL, lg)) {
        printf("FAIL fixture %s %s forward: %s\n", fx, mode, dpb_error_message());
        g_fail++;
        goto out;
    }
    double worst_norm = 0, worst_max = 0;
    int agree = 0, nan = 0;
    for (int t = 0; t < r.n; t++) {
        double dd = 0, rr = 0, md = 0, mr = 0;
        int64_t am = 0, ar = 0;
        for (int64_t v = 0; v < r.V; v++) {
            double a = lg[t * r.V + v], b = r.logits[t * r.V + v];
            if (isnan(a)) nan++;
            dd += (a - b) * (a - b);
            rr += b * b;
            if (fabs(a - b) > md) md = fabs(a - b);
            if (fabs(b) > mr) mr = fabs(b);
            if (a > lg[t * r.V + am]) am = v;
            if (b > r.logits[t * r.V + ar]) ar = v;
        }
        double nr = rr > 0 ? sqrt(dd / rr) : sqrt(dd);
        if (!(nr <= worst_norm)) worst_norm = nr;
        if (!(md / mr <= worst_max)) worst_max = md / mr;
        agree += am == ar;
    }
    int ok = !nan && worst_norm <= 2e-2;
    printf("%s fixture %-20s %-4s logits: worst ||diff||/||ref|| %.3g (bound 2e-2), worst max|diff|/max|ref| %.3g, "
           "argmax agrees %d/%d%s\n",
           ok ? "ok  " : "FAIL", fx, mode, worst_norm, worst_max, agree, r.n, nan ? ", NaN!" : "");
    if (!ok) g_fail++;
    dpb_gen_request q = {ids, r.n, 16, dpb_sampling_greedy(), true, 0, NULL};
    dpb_gen_result res;
    if (dpb_engine_generate(e, &q, 1, &res, NULL, NULL)) {
        printf("FAIL fixture %s %s generate: %s\n", fx, mode, dpb_error_message());
        g_fail++;
        goto out;
    }
    int same = res.n == 16;
    for (int i = 0; same && i < 16; i++) same = res.ids[i] == r.greedy[i];
    /* the gate is the f32 engine; the bf16 engine's continuation is reported */
    printf("%s fixture %-20s %-4s greedy 16: %s\n", same ? "ok  " : (dt == DPB_ENGINE_F32 ? "FAIL" : "note"), fx, mode,
           same ? "identical" : "differs");
    if (!same) {
        printf("     got:");
        for (int i = 0; i < res.n; i++) printf(" %d", res.ids[i]);
        printf("\n     ref:");
        for (int i = 0; i < 16; i++) printf(" %lld", (long long)r.greedy[i]);
        printf("\n");
        if (dt == DPB_ENGINE_F32) g_fail++;
    }
    dpb_gen_result_free(&res);
out:
    dpb_engine_destroy(e);
    dpb_checkpoint_close(ck);
    free(lg);
    free(r.logits);
}

static double secs(uint64_t ns) { return (double)ns / 1e9; }

static void speed(const char *model, int64_t layers, const int64_t *ctx, int nctx, int64_t max_new)
{
    dpb_checkpoint_opts co = {0};
    co.layers = layers;
    dpb_checkpoint *ck = NULL;
    dpb_engine *e = NULL;
    uint64_t t0 = dpb_now_ns();
    /* on cuda the engine generates the weights in device memory */
    dpb_synth_set_deferred(strcmp(g_backend, "cuda") == 0);
    dpb_status ost = dpb_checkpoint_open(model, &co, &ck);
    dpb_synth_set_deferred(false);
    if (ost) {
        printf("FAIL speed %s: %s\n", model, dpb_error_message());
        g_fail++;
        return;
    }
    uint64_t t1 = dpb_now_ns();
    const dpb_model_config *cfg = dpb_checkpoint_config(ck);
    size_t nt = dpb_checkpoint_tensor_count(ck);
    dpb_tensor_desc *ds = calloc(nt ? nt : 1, sizeof *ds);
    for (size_t i = 0; i < nt; i++) {
        const dpb_tensor *t = dpb_checkpoint_tensor_at(ck, i);
        ds[i] = (dpb_tensor_desc){t->name, t->dtype, t->ndim, t->shape};
    }
    dpb_inspect_opts io = {0};
    dpb_inspect_result ir;
    double active = 0;
    if (dpb_inspect_tensors(cfg, ds, nt, &io, &ir) == DPB_OK) active = (double)ir.active_weight_bytes;
    else printf("note %s: inspect: %s (roofline unavailable)\n", model, dpb_error_message());
    free(ds);
    int64_t maxc = 0;
    for (int i = 0; i < nctx; i++)
        if (ctx[i] > maxc) maxc = ctx[i];
    dpb_engine_opts o = {0};
    o.backend = g_backend;
    o.dtype = DPB_ENGINE_BF16;
    o.max_ctx = maxc + max_new + 8;
    if (dpb_engine_create(ck, &o, &e)) {
        printf("FAIL speed %s: engine: %s\n", model, dpb_error_message());
        g_fail++;
        dpb_checkpoint_close(ck);
        return;
    }
    uint64_t t2 = dpb_now_ns();
    dpb_backend *be = dpb_engine_backend(e);
    /* The roofline's bandwidth is the highest copy rate measured so far in this process (this model's included):
     * one low measurement (a copy right after 65 GiB of weights were generated read 3.8 TB/s once, 10 % under the
     * others) must not flatter the percentages. */
    static double bw_max = 0;
    double bw = 0;
    if (strcmp(g_backend, "cuda") == 0) {
        if (dpb_cuda_copy_bandwidth(be, (size_t)1 << 30, 10, &bw)) printf("note copy bandwidth: %s\n", dpb_error_message());
    } else dpb_cpu_copy_bandwidth((size_t)1 << 28, 3, &bw);
    double bw_here = bw;
    if (bw > bw_max) bw_max = bw;
    bw = bw_max;
    printf("speed %s%s (%lld layers): open %.1f s, engine (weights generated or uploaded) %.1f s; active bytes/token %.4g GB (inspect); "
           "copy bandwidth %.0f GB/s (here %.0f, highest in this process %.0f); roofline %.0f tok/s\n",
           model, layers ? " (layers overridden)" : "", (long long)cfg->num_layers, secs(t1 - t0), secs(t2 - t1), active / 1e9, bw,
           bw_here, bw_max, active > 0 && bw > 0 ? bw * 1e9 / active : 0.0);
    int64_t V = dpb_engine_vocab(e);
    uint64_t s = 0x2545F4914F6CDD1Dull;
    for (int c = 0; c < nctx; c++) {
        int32_t *p = malloc((size_t)ctx[c] * 4);
        for (int64_t i = 0; i < ctx[c]; i++) {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            p[i] = (int32_t)(s % (uint64_t)V);
        }
        /* one warm-up run (workspace, cuBLAS heuristics), then the measured one */
        for (int rep = 0; rep < 2; rep++) {
            dpb_gen_request q = {p, ctx[c], rep ? max_new : 4, dpb_sampling_greedy(), true, 0, NULL};
            dpb_gen_result res;
            if (dpb_engine_generate(e, &q, 1, &res, NULL, NULL)) {
                printf("FAIL speed %s ctx %lld: %s\n", model, (long long)ctx[c], dpb_error_message());
                g_fail++;
                break;
            }
            if (rep && res.n >= 2) {
                double dt = secs(res.t_ns[res.n - 1] - res.t_ns[0]);
                double tps = (double)(res.n - 1) / dt;
                double roof = active > 0 && bw > 0 ? bw * 1e9 / active : 0;
                dpb_cuda_mem mem = {0};
                dpb_cuda_backend_mem(be, &mem);
                printf("speed %s prompt %lld: TTFT %.1f ms; decode %lld tokens %.1f tok/s (%.2f ms/token)%s%.0f%% of "
                       "roofline; device memory peak %.2f GiB (weights %.2f, buffers %.2f, workspace %.2f); first ids",
                       model, (long long)ctx[c], secs(res.t_ns[0] - res.t_start_ns) * 1e3, (long long)res.n - 1, tps,
                       dt * 1e3 / (double)(res.n - 1), roof > 0 ? ", " : " ", roof > 0 ? 100.0 * tps / roof : 0.0,
                       (double)mem.peak / 1073741824.0, (double)mem.mapped / 1073741824.0,
                       (double)mem.allocated / 1073741824.0, (double)mem.workspace / 1073741824.0);
                for (int i = 0; i < res.n && i < 8; i++) printf(" %d", res.ids[i]);
                printf("\n");
            }
            dpb_gen_result_free(&res);
        }
        free(p);
        fflush(stdout);
    }
    dpb_engine_destroy(e);
    e = NULL;
    /* on cuda, the longest prompt again: with the first prefill kernels
     * (DPB_CUDA_PREFILL=old, the "before" figure), and with the new ones in
     * one prefill chunk of the whole prompt (engine option prefill_chunk) */
    if (strcmp(g_backend, "cuda") == 0) {
        int64_t longest = ctx[0];
        for (int c = 1; c < nctx; c++)
            if (ctx[c] > longest) longest = ctx[c];
        int64_t shortest = ctx[0];
        for (int c = 1; c < nctx; c++)
            if (ctx[c] < shortest) shortest = ctx[c];
        for (int variant = 0; variant < 3; variant++) {
            dpb_engine_opts o2 = o;
            const char *label = variant == 0 ? "no CUDA graphs" : variant == 1 ? "prefill_chunk = prompt" : "DPB_CUDA_MOE_LUT=1";
            if (variant == 0) o2.no_graphs = 1;
            else if (variant == 1) o2.prefill_chunk = longest;
            else setenv("DPB_CUDA_MOE_LUT", "1", 1);
            int64_t plen = variant != 1 ? shortest : longest;
            int64_t gen = variant != 1 ? max_new : 16;
            if (dpb_engine_create(ck, &o2, &e)) {
                printf("FAIL speed %s (%s): engine: %s\n", model, label, dpb_error_message());
                g_fail++;
                if (variant == 2) unsetenv("DPB_CUDA_MOE_LUT");
                continue;
            }
            int32_t *p = malloc((size_t)plen * 4);
            uint64_t s2 = 0x2545F4914F6CDD1Dull ^ 77;
            for (int64_t i = 0; i < plen; i++) {
                s2 ^= s2 << 13; s2 ^= s2 >> 7; s2 ^= s2 << 17;
                p[i] = (int32_t)(s2 % (uint64_t)V);
            }
            for (int rep = 0; rep < 2; rep++) {
                dpb_gen_request q = {p, plen, rep ? gen : 4, dpb_sampling_greedy(), true, 0, NULL};
                dpb_gen_result res;
                if (dpb_engine_generate(e, &q, 1, &res, NULL, NULL)) {
                    printf("FAIL speed %s (%s) prompt %lld: %s\n", model, label, (long long)plen, dpb_error_message());
                    g_fail++;
                    break;
                }
                if (rep && res.n >= 2) {
                    dpb_cuda_mem mem = {0};
                    dpb_cuda_backend_mem(dpb_engine_backend(e), &mem);
                    printf("speed %s prompt %lld with %s: TTFT %.1f ms; decode %.1f tok/s; device memory peak %.2f GiB\n",
                           model, (long long)plen, label, secs(res.t_ns[0] - res.t_start_ns) * 1e3,
                           (double)(res.n - 1) / secs(res.t_ns[res.n - 1] - res.t_ns[0]), (double)mem.peak / 1073741824.0);
                }
                dpb_gen_result_free(&res);
            }
            free(p);
            dpb_engine_destroy(e);
            e = NULL;
            if (variant == 2) unsetenv("DPB_CUDA_MOE_LUT");
        }
    }
    dpb_checkpoint_close(ck);
}

int main(int argc, char **argv)
{
    const char *fixtures = getenv("DPB_FIXTURES");
    if (!fixtures || !*fixtures) fixtures = "../shared/fixtures";
    int skip_ops = 0, skip_fx = 0, nspeed = 0;
    const char *speeds[8];
    int64_t layers = 0, max_new = 64, ctx[8] = {128, 2048};
    uint64_t seed = 0x9e3779b97f4a7c15ull ^ dpb_now_ns();
    int nctx = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--skip-ops") == 0) skip_ops = 1;
        else if (strcmp(a, "--skip-fixtures") == 0) skip_fx = 1;
        else if (strcmp(a, "--backend") == 0 && v) { g_backend = v; i++; }
        else if (strcmp(a, "--fixtures") == 0 && v) { fixtures = v; i++; }
        else if (strcmp(a, "--speed") == 0 && v && nspeed < 8) { speeds[nspeed++] = v; i++; }
        else if (strcmp(a, "--layers") == 0 && v) { layers = atoll(v); i++; }
        else if (strcmp(a, "--new") == 0 && v) { max_new = atoll(v); i++; }
        else if (strcmp(a, "--seed") == 0 && v) { seed = strtoull(v, NULL, 0); i++; }
        else if (strcmp(a, "--ctx") == 0 && v) {
            nctx = 0;
            for (char *p = (char *)v; *p && nctx < 8;) {
                ctx[nctx++] = strtoll(p, &p, 10);
                if (*p == ',') p++;
            }
            i++;
        } else {
            fprintf(stderr, "backend_check: unknown or incomplete option '%s' (see the comment at the top of "
                            "dev/cuda/backend_check.c)\n", a);
            return 2;
        }
    }
    if (max_new < 2 || nctx < 1) { fprintf(stderr, "backend_check: --new must be >= 2 and --ctx non-empty\n"); return 2; }
    if (nspeed == 0) speeds[nspeed++] = "synth:gpt-oss-20b";
    setvbuf(stdout, NULL, _IOLBF, 0);
    uint64_t t0 = dpb_now_ns();
    if (!skip_ops) {
        dpb_backend *dev = NULL, *ref = NULL;
        if (dpb_backend_open(g_backend, 0, &dev) || dpb_backend_open("ref", 1, &ref)) {
            printf("FAIL open backend %s: %s\n", g_backend, dpb_error_message());
            return 1;
        }
        opc c = {dev, ref, seed ? seed : 1, 0, 0, stdout};
        printf("== operations vs ref (seed %llu)\n", (unsigned long long)c.rng);
        opc_run_all(&c, 1);
        printf("== operations: %d checks, %d failed (%.1f s)\n", c.checks, c.fails, secs(dpb_now_ns() - t0));
        g_fail += c.fails;
        dpb_backend_close(dev);
        if (strcmp(g_backend, "cuda") == 0) {
            /* the grouped MXFP4 experts forced for every n > 8 (DPB_CUDA_MOE_GROUPED=on) */
            setenv("DPB_CUDA_MOE_GROUPED", "on", 1);
            if (dpb_backend_open(g_backend, 0, &dev)) {
                printf("FAIL open backend %s (DPB_CUDA_MOE_GROUPED=on): %s\n", g_backend, dpb_error_message());
                g_fail++;
            } else {
                c.dev = dev;
                c.checks = c.fails = 0;
                printf("== moe with DPB_CUDA_MOE_GROUPED=on\n");
                opc_run_moe_grouped(&c);
                opc_run_moe_prefill(&c);
                printf("== DPB_CUDA_MOE_GROUPED=on: %d checks, %d failed\n", c.checks, c.fails);
                g_fail += c.fails;
                dpb_backend_close(dev);
            }
            unsetenv("DPB_CUDA_MOE_GROUPED");
            /* the prefill checks again on each forced path: new (dequantize + cuBLAS experts,
             * tiled attention, whatever the row count) and old (the first kernels) */
            const char *modes[2] = {"new", "old"};
            for (int mi = 0; mi < 2; mi++) {
                with_prefill(modes[mi]);
                if (dpb_backend_open(g_backend, 0, &dev)) {
                    printf("FAIL open backend %s (DPB_CUDA_PREFILL=%s): %s\n", g_backend, modes[mi], dpb_error_message());
                    g_fail++;
                } else {
                    c.dev = dev;
                    c.checks = c.fails = 0;
                    printf("== prefill operations with DPB_CUDA_PREFILL=%s\n", modes[mi]);
                    opc_run_moe_prefill(&c);
                    opc_run_attn_prefill(&c, 1);
                    printf("== DPB_CUDA_PREFILL=%s: %d checks, %d failed\n", modes[mi], c.checks, c.fails);
                    g_fail += c.fails;
                    dpb_backend_close(dev);
                }
                restore_prefill();
            }
            /* the decode MoE kernels with the byte-table decoding (DPB_CUDA_MOE_LUT=1) */
            setenv("DPB_CUDA_MOE_LUT", "1", 1);
            if (dpb_backend_open(g_backend, 0, &dev)) {
                printf("FAIL open backend %s (DPB_CUDA_MOE_LUT=1): %s\n", g_backend, dpb_error_message());
                g_fail++;
            } else {
                c.dev = dev;
                c.checks = c.fails = 0;
                printf("== decode moe with DPB_CUDA_MOE_LUT=1\n");
                for (int r = 0; r < 2; r++) {
                    opc_moe(&c, DPB_W_MXFP4, false, 8, 512, 256, 4, 1, r);
                    opc_moe(&c, DPB_W_MXFP4, false, 8, 512, 256, 4, 3, r);
                    opc_moe(&c, DPB_W_MXFP4, false, 8, 512, 256, 4, 13, r);
                }
                opc_moe(&c, DPB_W_MXFP4, false, 32, 2880, 2880, 4, 1, true);
                printf("== DPB_CUDA_MOE_LUT=1: %d checks, %d failed\n", c.checks, c.fails);
                g_fail += c.fails;
                dpb_backend_close(dev);
            }
            unsetenv("DPB_CUDA_MOE_LUT");
        }
        dpb_backend_close(ref);
    }
    if (!skip_fx) {
        uint64_t t1 = dpb_now_ns();
        printf("== fixtures in %s\n", fixtures);
        const char *fx[] = {"gpt-oss-tiny-bf16", "gpt-oss-tiny-mxfp4", "qwen3-tiny", "llama-tiny"};
        for (int i = 0; i < 4; i++) {
            check_fixture(fixtures, fx[i], DPB_ENGINE_F32);
            check_fixture(fixtures, fx[i], DPB_ENGINE_BF16);
        }
        if (strcmp(g_backend, "cuda") == 0) {
            /* the fixtures' prompts are short: force the new prefill paths once */
            with_prefill("new");
            printf("== fixtures with DPB_CUDA_PREFILL=new\n");
            for (int i = 0; i < 4; i++) {
                check_fixture(fixtures, fx[i], DPB_ENGINE_F32);
                check_fixture(fixtures, fx[i], DPB_ENGINE_BF16);
            }
            restore_prefill();
        }
        printf("== fixtures done (%.1f s)\n", secs(dpb_now_ns() - t1));
    }
    for (int i = 0; i < nspeed; i++) {
        if (strcmp(speeds[i], "none") == 0) continue;
        uint64_t t1 = dpb_now_ns();
        printf("== speed %s\n", speeds[i]);
        char model[256];
        snprintf(model, sizeof model, "%s", speeds[i]);
        int64_t ml = layers;
        char *at = strchr(model, '@');
        if (at) {
            *at = 0;
            ml = atoll(at + 1);
        }
        speed(model, ml, ctx, nctx, max_new);
        printf("== speed %s done (%.1f s)\n", speeds[i], secs(dpb_now_ns() - t1));
    }
    printf("== %s: %d failed checks, %.1f s in all\n", g_fail ? "FAIL" : "PASS", g_fail, secs(dpb_now_ns() - t0));
    return g_fail ? 1 : 0;
}
