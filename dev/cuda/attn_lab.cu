/* Attention lab.  With --decode: the decode attention of the backend, the
 * kernels before attn_decode.cu ("old": k_attn + k_attn_combine per (row,
 * head); k_attn_batch for attention_batch) against the flash-decoding kernel
 * (attn_decode.cu) at contexts 128, 2048 and 8192 for gpt-oss-20b (full and
 * sliding layers) and Qwen3-32B, one sequence with the position in device
 * memory and attention_batch of 8 sequences, bf16 KV (old and new) and FP8
 * (new; old on the same bytes as the check), each op captured 20 times in a
 * graph replayed 10 times; the copy bandwidth measured in the same run.
 *
 * Otherwise, prefill attention: the CUDA-core tiled kernels of the backend (the
 * path before attn_prefill.cu) against the tensor-core kernel
 * (src/backend/cuda/attn_prefill.cu), on the real models' shapes.
 *
 * For each shape the same bf16-exact q goes through
 *   old: the backend's attention with q not known to be bf16-exact
 *        (k_attn_tiled for head_dim 64, k_attn_tiled_dsplit for 128);
 *   new: the backend's attention after round_bf16 marked q bf16-exact (the
 *        tensor-core kernel, variant auto), and each tile variant launched
 *        directly.
 * Each result is compared with old's (max|diff| / max|old|, bound 1e-2); the
 * times come from CUDA events around reps launches after a warm-up.  FLOPs
 * are counted honestly for causal masks: 4 * head_dim * (keys row t sees)
 * per row and head, keys = min(pos + 1, window) (window 0: pos + 1).
 * TFLOP/s is also given as a share of 797 TFLOP/s (the bf16 cuBLAS matmul
 * measured on this H200).
 *
 * Run by dev/cuda/run_attn_lab.sh (build with nvcc anywhere, run on the GPU).  Options:
 *   --decode     the decode tables only (above)
 *   --quick      the 2048-row shapes only at pos0 0 (no 32k chunk)
 *   --reps N     timed launches of the new kernels (default 10; old: 3)
 * Output: progress on stderr; the Markdown tables on stdout.
 * Exit status: 0 all checks passed, 1 a check failed, 2 a CUDA / backend error. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>

#include "backend/cuda/attn_decode.h"
#include "backend/cuda/attn_prefill.h"
#include "backend/cuda/cuda_backend.h"
#include "format/dtype.h"

extern "C" const char *dpb_build_commit(void); /* core/version.h, which has no C++ guards */

namespace {

constexpr double kPeak = 797.0; /* TFLOP/s, the bf16 cuBLAS matmul measured on the H200 (issue 5) */

struct shape {
    const char *name;
    int64_t n, pos0, heads, kvh, hd, window, slots;
    bool sinks;
};

uint64_t g_rng = 0x2545f4914f6cdd1dull;
float frand()
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)((double)(g_rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

double flops(const shape &s)
{
    double f = 0;
    for (int64_t t = 0; t < s.n; t++) {
        int64_t p = s.pos0 + t, k = p + 1;
        if (s.window > 0 && k > s.window) k = s.window;
        f += (double)k;
    }
    return f * 4.0 * (double)s.hd * (double)s.heads;
}

int g_cuda_fail;
#define CK(x)                                                                                    \
    do {                                                                                         \
        if (x) {                                                                                 \
            fprintf(stderr, "attn_lab: %s failed: %s\n", #x, dpb_error_message());               \
            g_cuda_fail = 1;                                                                     \
            return;                                                                              \
        }                                                                                        \
    } while (0)

double rel_err(const float *got, const float *ref, size_t n)
{
    double md = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(got[i]) || isnan(ref[i])) return INFINITY;
        double d = fabs((double)got[i] - ref[i]);
        if (d > md) md = d;
        if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
    }
    return mr > 0 ? md / mr : md;
}

struct row_result {
    double old_ms, new_ms, var_ms[DPB_ATTN_PREFILL_NVARIANTS], new_err, var_err[DPB_ATTN_PREFILL_NVARIANTS];
    double gflop;
};

int g_reps = 10, g_fails;

/* ms per launch of fn over reps launches (events on the legacy stream, which the backend's blocking stream
 * is ordered with) */
template <typename F> double time_ms(int reps, F fn)
{
    cudaEvent_t a, b;
    cudaEventCreate(&a);
    cudaEventCreate(&b);
    fn(); /* warm-up */
    cudaEventRecord(a, 0);
    for (int i = 0; i < reps; i++) fn();
    cudaEventRecord(b, 0);
    cudaEventSynchronize(b);
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    return ms / reps;
}

void run_shape(dpb_backend *be, const shape &s, row_result *r)
{
    const dpb_backend_ops *o = be->ops;
    const size_t qn = (size_t)(s.n * s.heads * s.hd), kvn = (size_t)(s.n * s.kvh * s.hd),
                 cn = (size_t)(s.slots * s.kvh * s.hd);
    float *hq = (float *)malloc(qn * 4), *hold = (float *)malloc(qn * 4), *hnew = (float *)malloc(qn * 4);
    uint16_t *hk = (uint16_t *)malloc((cn > kvn ? cn : kvn) * 2), hs[256];
    for (size_t i = 0; i < qn; i++) hq[i] = dpb_bf16_to_f32(dpb_f32_to_bf16(frand() * 2.f));
    for (int i = 0; i < 256; i++) hs[i] = dpb_f32_to_bf16(frand() * 3.f);
    void *q_plain = NULL, *q_round = NULL, *kn = NULL, *vn = NULL, *kc = NULL, *vc = NULL, *sk = NULL, *out = NULL;
    CK(o->alloc(be, qn * 4, &q_plain));
    CK(o->alloc(be, qn * 4, &q_round));
    CK(o->alloc(be, kvn * 2, &kn));
    CK(o->alloc(be, kvn * 2, &vn));
    CK(o->alloc(be, cn * 2, &kc));
    CK(o->alloc(be, cn * 2, &vc));
    CK(o->alloc(be, 512, &sk));
    CK(o->alloc(be, qn * 4, &out));
    CK(o->upload(be, q_plain, hq, qn * 4));
    CK(o->upload(be, q_round, hq, qn * 4));
    CK(o->round_bf16(be, (float *)q_round, (int64_t)qn)); /* values unchanged; the backend now knows */
    void *bufs[4] = {kn, vn, kc, vc};
    size_t cnt[4] = {kvn, kvn, cn, cn};
    for (int b = 0; b < 4; b++) {
        for (size_t i = 0; i < cnt[b]; i++) hk[i] = dpb_f32_to_bf16(frand());
        CK(o->upload(be, bufs[b], hk, cnt[b] * 2));
    }
    CK(o->upload(be, sk, hs, 512));
    CK(o->sync(be));
    dpb_attn_args a = {s.n, s.pos0, s.heads, s.kvh, s.hd, (const float *)q_plain, kn, vn, kc, vc, s.slots, s.window,
                       DPB_KV_BF16, s.sinks ? (const uint16_t *)sk : NULL, 1.0f / sqrtf((float)s.hd), (float *)out,
                       NULL, false};
    r->gflop = flops(s) / 1e9;
    /* old: the tiled CUDA-core kernel */
    bool bad = false;
    r->old_ms = time_ms(3, [&] { bad |= o->attention(be, &a) != DPB_OK; });
    CK(o->download(be, hold, out, qn * 4));
    fprintf(stderr, "  %-34s old  %9.3f ms\n", s.name, r->old_ms);
    /* new through the backend (auto variant) */
    dpb_attn_args an = a;
    an.q = (const float *)q_round;
    r->new_ms = time_ms(g_reps, [&] { bad |= o->attention(be, &an) != DPB_OK; });
    CK(o->download(be, hnew, out, qn * 4));
    r->new_err = rel_err(hnew, hold, qn);
    fprintf(stderr, "  %-34s new  %9.3f ms  rel %.3g\n", s.name, r->new_ms, r->new_err);
    if (!(r->new_err <= 1e-2)) g_fails++;
    /* each variant launched directly */
    for (int v = 1; v < DPB_ATTN_PREFILL_NVARIANTS; v++) {
        cudaMemset(out, 0xff, qn * 4);
        r->var_ms[v] = time_ms(g_reps, [&] {
            bad |= dpb_attn_prefill_launch(&an, (dpb_attn_prefill_variant)v, 0) != DPB_OK;
        });
        cudaError_t e = cudaDeviceSynchronize();
        if (e != cudaSuccess) {
            fprintf(stderr, "attn_lab: %s variant %s: %s\n", s.name, dpb_attn_prefill_variant_name((dpb_attn_prefill_variant)v),
                    cudaGetErrorString(e));
            g_cuda_fail = 1;
            return;
        }
        cudaMemcpy(hnew, out, qn * 4, cudaMemcpyDeviceToHost);
        r->var_err[v] = rel_err(hnew, hold, qn);
        if (!(r->var_err[v] <= 1e-2)) g_fails++;
        fprintf(stderr, "  %-34s %-9s %9.3f ms  rel %.3g\n", s.name,
                dpb_attn_prefill_variant_name((dpb_attn_prefill_variant)v), r->var_ms[v], r->var_err[v]);
    }
    if (bad) {
        fprintf(stderr, "attn_lab: %s: a launch failed: %s\n", s.name, dpb_error_message());
        g_cuda_fail = 1;
    }
    void *fr[8] = {q_plain, q_round, kn, vn, kc, vc, sk, out};
    for (int i = 0; i < 8; i++) o->free(be, fr[i]);
    free(hq); free(hold); free(hnew); free(hk);
}

/* ---- decode: the per-sequence op (n = 1, position in device memory, as the engine's captured graphs run it)
 * and attention_batch, old kernels vs flash-decoding, bf16 and fp8 KV.  Each figure: a graph of kGraphOps
 * launches replayed kGraphReps times between events, per launch. */
constexpr int kGraphOps = 20, kGraphReps = 10;

struct dshape {
    const char *name;
    int64_t heads, kvh, hd, window;
    bool sinks;
};

struct dres {
    double us[3], err[3]; /* old bf16, new bf16, new fp8 (err: new vs old on the same bytes) */
    double bytes[3];
};

/* us per op of fn (enqueues one op) captured kGraphOps times into a graph */
template <typename F> double graph_us(dpb_backend *be, F fn)
{
    const dpb_backend_ops *o = be->ops;
    void *g = NULL;
    if (o->graph_begin(be)) return NAN;
    bool bad = false;
    for (int i = 0; i < kGraphOps; i++) bad |= fn() != DPB_OK;
    if (o->graph_end(be, &g) || bad) return NAN;
    bool stale = false;
    o->graph_launch(be, g, &stale); /* warm-up */
    o->sync(be);
    cudaEvent_t a, b;
    cudaEventCreate(&a);
    cudaEventCreate(&b);
    cudaEventRecord(a, 0);
    for (int i = 0; i < kGraphReps; i++) o->graph_launch(be, g, &stale);
    cudaEventRecord(b, 0);
    cudaEventSynchronize(b);
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    o->graph_free(be, g);
    return 1000.0 * ms / (kGraphReps * kGraphOps);
}

void fill_kv(dpb_backend *be, void *dst, size_t count, dpb_kv_dtype dt, size_t *scratch_n, void **scratch)
{
    /* random values made once per size and dtype (host time), then reused */
    static dpb_kv_dtype last = DPB_KV_F32;
    static size_t made = 0;
    const size_t es = dpb_kv_dtype_size(dt);
    if (*scratch_n < count * es) {
        free(*scratch);
        *scratch = malloc(count * es);
        *scratch_n = count * es;
        made = 0;
    }
    if (last == dt && made >= count) {
        be->ops->upload(be, dst, *scratch, count * es);
        return;
    }
    last = dt;
    made = count;
    for (size_t i = 0; i < count; i++) {
        float v = frand();
        if (dt == DPB_KV_FP8) ((uint8_t *)*scratch)[i] = dpb_f32_to_fp8e4m3(v);
        else ((uint16_t *)*scratch)[i] = dpb_f32_to_bf16(v);
    }
    be->ops->upload(be, dst, *scratch, count * es);
}

/* one sequence (batch 0) or nb sequences (attention_batch) at context ctx (keys 0 .. ctx-1, the last new) */
void run_decode(dpb_backend *be, const dshape &s, int64_t ctx, int nb, dres *r)
{
    const dpb_backend_ops *o = be->ops;
    const int64_t slots = 8192, rows = nb > 0 ? nb : 1, seqs = rows;
    const size_t row = (size_t)(s.kvh * s.hd), qn = (size_t)(rows * s.heads * s.hd);
    float *hq = (float *)malloc(qn * 4), *h0 = (float *)malloc(qn * 4), *h1 = (float *)malloc(qn * 4);
    for (size_t i = 0; i < qn; i++) hq[i] = dpb_bf16_to_f32(dpb_f32_to_bf16(frand()));
    uint16_t hs[256];
    for (int i = 0; i < 256; i++) hs[i] = dpb_f32_to_bf16(frand() * 3.f);
    void *q = NULL, *out = NULL, *sk = NULL, *posd = NULL, *seqd = NULL, *ktd = NULL, *vtd = NULL;
    CK(o->alloc(be, qn * 4, &q));
    CK(o->alloc(be, qn * 4, &out));
    CK(o->alloc(be, 512, &sk));
    CK(o->upload(be, q, hq, qn * 4));
    CK(o->upload(be, sk, hs, 512));
    const int64_t p = ctx - 1;
    int64_t *hpos = (int64_t *)malloc((size_t)rows * 8);
    int32_t *hseq = (int32_t *)malloc((size_t)rows * 4);
    for (int64_t i = 0; i < rows; i++) { hpos[i] = p; hseq[i] = (int32_t)i; }
    CK(o->alloc(be, (size_t)rows * 8, &posd));
    CK(o->alloc(be, (size_t)rows * 4, &seqd));
    CK(o->upload(be, posd, hpos, (size_t)rows * 8));
    CK(o->upload(be, seqd, hseq, (size_t)rows * 4));
    size_t scn = 0;
    void *scr = NULL;
    const int64_t keys = s.window > 0 && s.window < ctx ? s.window : ctx;
    for (int v = 0; v < 3; v += 2) {
        const dpb_kv_dtype dt = v == 2 ? DPB_KV_FP8 : DPB_KV_BF16;
        const size_t es = dpb_kv_dtype_size(dt);
        void **kc = (void **)calloc((size_t)seqs, sizeof(void *)), **vc = (void **)calloc((size_t)seqs, sizeof(void *));
        void *kn = NULL, *vn = NULL;
        CK(o->alloc(be, (size_t)rows * row * es, &kn));
        CK(o->alloc(be, (size_t)rows * row * es, &vn));
        g_rng = 0x1234567ull + (uint64_t)ctx; /* the same values for every variant */
        fill_kv(be, kn, (size_t)rows * row, dt, &scn, &scr);
        fill_kv(be, vn, (size_t)rows * row, dt, &scn, &scr);
        for (int64_t i = 0; i < seqs; i++) {
            CK(o->alloc(be, (size_t)slots * row * es, &kc[i]));
            CK(o->alloc(be, (size_t)slots * row * es, &vc[i]));
            fill_kv(be, kc[i], (size_t)slots * row, dt, &scn, &scr);
            fill_kv(be, vc[i], (size_t)slots * row, dt, &scn, &scr);
        }
        CK(o->alloc(be, (size_t)seqs * sizeof(void *), &ktd));
        CK(o->alloc(be, (size_t)seqs * sizeof(void *), &vtd));
        CK(o->upload(be, ktd, kc, (size_t)seqs * sizeof(void *)));
        CK(o->upload(be, vtd, vc, (size_t)seqs * sizeof(void *)));
        dpb_attn_args a = {1, p, s.heads, s.kvh, s.hd, (const float *)q, kn, vn, kc[0], vc[0], slots, s.window, dt,
                           s.sinks ? (const uint16_t *)sk : NULL, 1.0f / sqrtf((float)s.hd), (float *)out,
                           (const int64_t *)posd, false};
        dpb_attn_batch_args ab = {rows, s.heads, s.kvh, s.hd, (const float *)q, kn, vn, (void *const *)ktd,
                                  (void *const *)vtd, (const int32_t *)seqd, (const int64_t *)posd, slots, s.window,
                                  slots - 1, dt, s.sinks ? (const uint16_t *)sk : NULL, 1.0f / sqrtf((float)s.hd),
                                  (float *)out, false};
        auto op = [&]() { return nb > 0 ? o->attention_batch(be, &ab) : o->attention(be, &a); };
        /* old and new on these bytes: the check */
        dpb_attn_decode_set_enabled(false);
        CK(op());
        CK(o->download(be, h0, out, qn * 4));
        const double us_old = v == 0 ? graph_us(be, op) : NAN; /* fp8: old only as the check's reference */
        dpb_attn_decode_set_enabled(true);
        cudaMemset(out, 0xff, qn * 4);
        CK(op());
        CK(o->download(be, h1, out, qn * 4));
        const double us_new = graph_us(be, op);
        const double err = rel_err(h1, h0, qn);
        if (!(err <= 1e-2)) g_fails++;
        if (v == 0) { r->us[0] = us_old; r->err[0] = 0; }
        r->us[v == 0 ? 1 : 2] = us_new;
        r->err[v == 0 ? 1 : 2] = err;
        r->bytes[v == 0 ? 1 : 2] = (double)rows * (double)keys * (double)row * (double)es * 2.0;
        if (v == 0) r->bytes[0] = r->bytes[1];
        fprintf(stderr, "  %-28s ctx %5lld %s%-4s old %8.2f us  new %8.2f us  rel %.3g\n", s.name, (long long)ctx,
                nb > 0 ? "batch " : "", dpb_kv_dtype_name(dt), us_old, us_new, err);
        for (int64_t i = 0; i < seqs; i++) { o->free(be, kc[i]); o->free(be, vc[i]); }
        o->free(be, kn); o->free(be, vn); o->free(be, ktd); o->free(be, vtd);
        free(kc); free(vc);
    }
    o->free(be, q); o->free(be, out); o->free(be, sk); o->free(be, posd); o->free(be, seqd);
    free(hq); free(h0); free(h1); free(hpos); free(hseq); free(scr);
}

int decode_lab(dpb_backend *be, const cudaDeviceProp &prop)
{
    double bw = 0;
    if (dpb_cuda_copy_bandwidth(be, (size_t)1 << 30, 10, &bw)) {
        fprintf(stderr, "attn_lab: copy bandwidth: %s\n", dpb_error_message());
        bw = NAN;
    }
    fprintf(stderr, "attn_lab decode: copy bandwidth %.0f GB/s\n", bw);
    const dshape shapes[] = {
        {"gpt-oss full (64/8, hd 64, sinks)", 64, 8, 64, 0, true},
        {"gpt-oss sliding (W 128, sinks)", 64, 8, 64, 128, true},
        {"qwen3-32b (64/8, hd 128)", 64, 8, 128, 0, false},
    };
    const int64_t ctxs[] = {128, 2048, 8192};
    const int nbs[] = {0, 8};
    printf("\n### Decode attention: old kernels vs flash-decoding, %s, commit %s, copy bandwidth %.0f GB/s\n\n", prop.name,
           dpb_build_commit(), bw);
    printf("Per launch, replayed in a CUDA graph (%d launches per graph, %d replays); KV MB = bytes of K and V the "
           "rows see; %% bw = KV bytes / time against the copy bandwidth.\n\n", kGraphOps, kGraphReps);
    printf("| shape | rows | context | KV MB bf16 | old bf16 us | new bf16 us | speedup | %% bw | new fp8 us | %% bw (fp8 bytes) | "
           "rel err bf16 / fp8 |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (const dshape &s : shapes)
        for (int nb : nbs)
            for (int64_t ctx : ctxs) {
                if (nb > 0 && s.window > 0) continue;
                dres r;
                memset(&r, 0, sizeof r);
                run_decode(be, s, ctx, nb, &r);
                if (g_cuda_fail) return 2;
                printf("| %s | %s | %lld | %.2f | %.2f | %.2f | %.1fx | %.0f %% | %.2f | %.0f %% | %.2g / %.2g |\n", s.name,
                       nb > 0 ? "8 (attention_batch)" : "1 (pos on device)", (long long)ctx, r.bytes[1] / 1e6, r.us[0],
                       r.us[1], r.us[0] / r.us[1], 100.0 * (r.bytes[1] / (r.us[1] * 1e3)) / bw, r.us[2],
                       100.0 * (r.bytes[2] / (r.us[2] * 1e3)) / bw, r.err[1], r.err[2]);
                fflush(stdout);
            }
    printf("\ndecode checks: %d failed (new vs old on the same bytes, bound 1e-2)\n", g_fails);
    return 0;
}

} // namespace

int main(int argc, char **argv)
{
    bool quick = false, decode = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) quick = true;
        else if (strcmp(argv[i], "--decode") == 0) decode = true;
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) g_reps = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: attn_lab [--decode] [--quick] [--reps N]\n");
            return 2;
        }
    }
    if (g_reps < 1) g_reps = 1;
    setenv("DPB_CUDA_PREFILL", "new", 1); /* the tiled kernels for every n > 1 */
    dpb_backend *be = NULL;
    if (dpb_backend_cuda_open(0, &be)) {
        fprintf(stderr, "attn_lab: %s\n", dpb_error_message());
        return 2;
    }
    cudaDeviceProp prop;
    cudaGetDeviceProperties(&prop, 0);
    fprintf(stderr, "attn_lab: %s, %d SMs, reps %d\n", prop.name, prop.multiProcessorCount, g_reps);
    if (decode) {
        int rc = decode_lab(be, prop);
        dpb_backend_close(be);
        if (rc) return rc;
        return g_fails ? 1 : 0;
    }
    const shape shapes[] = {
        {"gpt-oss n=2048 pos0=0 W=0 sinks", 2048, 0, 64, 8, 64, 0, 4096, true},
        {"gpt-oss n=2048 pos0=0 W=128 sinks", 2048, 0, 64, 8, 64, 128, 4096, true},
        {"gpt-oss n=256 pos0=1792 W=0 sinks", 256, 1792, 64, 8, 64, 0, 4096, true},
        {"qwen3 n=2048 pos0=0", 2048, 0, 64, 8, 128, 0, 4096, false},
        {"qwen3 n=2048 pos0=30720", 2048, 30720, 64, 8, 128, 0, 32768, false},
        {"qwen3 n=256 pos0=1792", 256, 1792, 64, 8, 128, 0, 4096, false},
        {"qwen3 n=256 pos0=30464", 256, 30464, 64, 8, 128, 0, 32768, false},
        {"yi n=2048 pos0=0", 2048, 0, 56, 8, 128, 0, 4096, false},
        /* odd sizes (checks of every variant against old: partial tiles, ring wrap, window, sinks) */
        {"check n=333 pos0=1000 W=128 ring 256", 333, 1000, 64, 8, 64, 128, 256, true},
        {"check n=1000 pos0=77 56/8 sinks ring 600", 1000, 77, 56, 8, 128, 0, 600, true},
    };
    const int ns = (int)(sizeof shapes / sizeof shapes[0]);
    row_result res[16];
    memset(res, 0, sizeof res);
    bool ran[16] = {false};
    for (int i = 0; i < ns; i++) {
        if (quick && shapes[i].pos0 > 0) continue;
        run_shape(be, shapes[i], &res[i]);
        ran[i] = true;
        if (g_cuda_fail) break;
    }
    dpb_backend_close(be);
    printf("\n### Prefill attention: CUDA-core tiled (old) vs tensor cores (new), %s, commit %s\n\n", prop.name,
           dpb_build_commit());
    printf("| shape | heads | head_dim | GFLOP | old ms | old TFLOP/s | new ms | new TFLOP/s | %% of %.0f | speedup | rel err | "
           "new = |\n",
           kPeak);
    printf("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < ns; i++) {
        if (!ran[i]) continue;
        const row_result &r = res[i];
        const shape &s = shapes[i];
        const double to = r.gflop / r.old_ms, tn = r.gflop / r.new_ms; /* GFLOP / ms = TFLOP/s */
        dpb_attn_args pa;
        memset(&pa, 0, sizeof pa);
        pa.n = s.n; pa.pos0 = s.pos0; pa.heads = s.heads; pa.kv_heads = s.kvh; pa.head_dim = s.hd;
        pa.window = s.window;
        printf("| %s | %lld/%lld | %lld | %.1f | %.3f | %.1f | %.3f | %.1f | %.1f %% | %.1fx | %.2g | %s |\n", s.name,
               (long long)s.heads, (long long)s.kvh, (long long)s.hd, r.gflop, r.old_ms, to, r.new_ms, tn,
               100.0 * tn / kPeak, r.old_ms / r.new_ms, r.new_err, dpb_attn_prefill_variant_name(dpb_attn_prefill_pick(&pa)));
    }
    printf("\n### Tile variants of the tensor-core kernel (ms / TFLOP/s / rel err vs old)\n\n| shape |");
    for (int v = 1; v < DPB_ATTN_PREFILL_NVARIANTS; v++) printf(" %s |", dpb_attn_prefill_variant_name((dpb_attn_prefill_variant)v));
    printf("\n|---|");
    for (int v = 1; v < DPB_ATTN_PREFILL_NVARIANTS; v++) printf("---|");
    printf("\n");
    for (int i = 0; i < ns; i++) {
        if (!ran[i]) continue;
        printf("| %s |", shapes[i].name);
        for (int v = 1; v < DPB_ATTN_PREFILL_NVARIANTS; v++)
            printf(" %.3f / %.0f / %.1g |", res[i].var_ms[v], res[i].gflop / res[i].var_ms[v], res[i].var_err[v]);
        printf("\n");
    }
    printf("\nchecks: %d failed (bound 1e-2)%s\n", g_fails, g_cuda_fail ? "; CUDA error (see stderr)" : "");
    if (g_cuda_fail) return 2;
    return g_fails ? 1 : 0;
}
