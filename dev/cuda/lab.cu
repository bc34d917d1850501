/* dev/cuda kernel lab: every decode kernel of src/backend/cuda/decode_kernels.cu
 * checked against a CPU reference (double accumulation) on fresh random
 * inputs and timed against the copy bandwidth measured in the same process.
 *
 *   lab [--quick] [--seed N] [--reps N]
 *
 * Prints one Markdown table on stdout (progress on stderr).  Exit status 0
 * when every check passes, 1 otherwise.  Build and run: dev/cuda/run_lab.sh.
 *
 * Method (docs/CUDA.md): outputs poisoned with NaN (0xFF bytes) before the
 * checked runs; a check fails on any NaN or when
 *   max_i |y_i - ref_i| / max(|ref_i|, rms(ref)) > 1e-2.
 * Timing: CUDA events around each launch, 3 warm-up runs, median of --reps
 * (default 25) runs, L2 flushed before every run by a 256 MiB memset that is
 * outside the timed interval. */
#include "backend/cuda/decode_kernels.h"
#include "backend/cuda/moe_wgmma.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <string>
#include <vector>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#define CK(call)                                                                                   \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            std::fprintf(stderr, "lab: %s:%d: %s: %s\n", __FILE__, __LINE__, #call,                \
                         cudaGetErrorString(e_));                                                  \
            std::exit(2);                                                                          \
        }                                                                                          \
    } while (0)
#define CKB(call)                                                                                  \
    do {                                                                                           \
        cublasStatus_t s_ = (call);                                                                \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                         \
            std::fprintf(stderr, "lab: %s:%d: %s: cublas status %d\n", __FILE__, __LINE__, #call, \
                         (int)s_);                                                                 \
            std::exit(2);                                                                          \
        }                                                                                          \
    } while (0)
#define CKD(call)                                                                                  \
    do {                                                                                           \
        dpb_status s_ = (call);                                                                    \
        if (s_ != DPB_OK) {                                                                        \
            std::fprintf(stderr, "lab: %s:%d: %s: %s\n", __FILE__, __LINE__, #call,                \
                         dpb_error_message());                                                     \
            std::exit(2);                                                                          \
        }                                                                                          \
    } while (0)

static const double kTol = 1e-2;

/* ------------------------------------------------------------- random -- */
static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static inline uint64_t rnd64()
{
    uint64_t z = (g_rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static inline float rndu(float lo, float hi) { return lo + (hi - lo) * (float)((rnd64() >> 40) * (1.0 / 16777216.0)); }

static inline uint16_t f2bf(float f)
{
    uint32_t u;
    std::memcpy(&u, &f, 4);
    u += 0x7fff + ((u >> 16) & 1); /* round to nearest even; inputs are finite */
    return (uint16_t)(u >> 16);
}
static inline float bf2f(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
/* bf16 in [-a, a] fast: random bits for 4 values at a time */
static void fill_bf16(std::vector<uint16_t> &v, float a)
{
    for (size_t i = 0; i < v.size(); i += 4) {
        uint64_t r = rnd64();
        for (size_t j = 0; j < 4 && i + j < v.size(); j++) {
            float u = (float)((r >> (16 * j)) & 0xffff) * (1.0f / 65536.0f);
            v[i + j] = f2bf(a * (2.f * u - 1.f));
        }
    }
}
static void fill_f32(std::vector<float> &v, float lo, float hi)
{
    for (auto &x : v) x = rndu(lo, hi);
}

/* k distinct experts of E per token and their routing weights in [0.1, 1) (summing to 1 when normalize),
 * for M tokens. */
static void random_routing(std::vector<int32_t> &ids, std::vector<float> &wts, int M, int k, int E, bool normalize)
{
    for (int m = 0; m < M; m++) {
        float s = 0;
        for (int e = 0; e < k; e++) {
            int id;
            bool dup;
            do {
                id = (int)(rnd64() % E);
                dup = false;
                for (int f = 0; f < e; f++) dup |= ids[m * k + f] == id;
            } while (dup);
            ids[m * k + e] = id;
            wts[m * k + e] = rndu(0.1f, 1.f);
            s += wts[m * k + e];
        }
        if (normalize)
            for (int e = 0; e < k; e++) wts[m * k + e] /= s;
    }
}

/* ------------------------------------------------------------ checking -- */
static double rel_err(const float *y, const double *ref, size_t n, bool *nan)
{
    double ss = 0;
    for (size_t i = 0; i < n; i++) ss += ref[i] * ref[i];
    double rms = std::sqrt(ss / (double)(n ? n : 1));
    double worst = 0;
    *nan = false;
    for (size_t i = 0; i < n; i++) {
        if (!std::isfinite(y[i])) { *nan = true; continue; }
        double den = std::max(std::fabs(ref[i]), rms);
        if (den == 0) den = 1;
        worst = std::max(worst, std::fabs((double)y[i] - ref[i]) / den);
    }
    return worst;
}

/* ------------------------------------------------------------- timing -- */
struct Timer {
    cudaEvent_t a, b;
    void *flush = nullptr;
    size_t flush_bytes = (size_t)256 << 20;
    int reps = 25;
    Timer()
    {
        CK(cudaEventCreate(&a));
        CK(cudaEventCreate(&b));
        CK(cudaMalloc(&flush, flush_bytes));
        CK(cudaStreamCreateWithFlags(&gs, cudaStreamNonBlocking));
    }
    /* median µs of fn() with L2 flushed before every run */
    double median_us(const std::function<void()> &fn, bool do_flush = true)
    {
        for (int i = 0; i < 3; i++) fn();
        CK(cudaDeviceSynchronize());
        std::vector<double> t;
        for (int i = 0; i < reps; i++) {
            if (do_flush) CK(cudaMemsetAsync(flush, i & 0xff, flush_bytes, 0));
            CK(cudaEventRecord(a, 0));
            fn();
            CK(cudaEventRecord(b, 0));
            CK(cudaEventSynchronize(b));
            float ms = 0;
            CK(cudaEventElapsedTime(&ms, a, b));
            t.push_back(ms * 1000.0);
        }
        CK(cudaGetLastError());
        std::sort(t.begin(), t.end());
        return t[t.size() / 2];
    }
    /* Back-to-back launches inside one CUDA graph, as in a captured decode
     * step: launch(stream, i) for i < n captured into a graph; the caller
     * rotates over weight copies whose total exceeds L2 (or over weights
     * larger than L2).  Median over 9 graph launches of total / n. */
    cudaStream_t gs = nullptr;
    double graph_us(const std::function<void(cudaStream_t, int)> &launch, int n)
    {
        cudaGraph_t g;
        cudaGraphExec_t ge;
        launch(gs, 0); /* once outside capture: lazy initialization, early errors */
        CK(cudaStreamSynchronize(gs));
        CK(cudaStreamBeginCapture(gs, cudaStreamCaptureModeThreadLocal));
        for (int i = 0; i < n; i++) launch(gs, i);
        CK(cudaStreamEndCapture(gs, &g));
        CK(cudaGraphInstantiate(&ge, g, 0));
        for (int i = 0; i < 2; i++) CK(cudaGraphLaunch(ge, gs));
        CK(cudaStreamSynchronize(gs));
        std::vector<double> t;
        for (int i = 0; i < 9; i++) {
            CK(cudaMemsetAsync(flush, i & 0xff, flush_bytes, gs));
            CK(cudaEventRecord(a, gs));
            CK(cudaGraphLaunch(ge, gs));
            CK(cudaEventRecord(b, gs));
            CK(cudaEventSynchronize(b));
            float ms = 0;
            CK(cudaEventElapsedTime(&ms, a, b));
            t.push_back(ms * 1000.0 / n);
        }
        CK(cudaGraphExecDestroy(ge));
        CK(cudaGraphDestroy(g));
        std::sort(t.begin(), t.end());
        return t[t.size() / 2];
    }
};

/* how many copies of a `bytes` weight set to rotate over so that the set
 * rotated through exceeds L2 several times (1 when it alone is > 4x L2) */
static int rotate_copies(double bytes)
{
    const double target = 256.0 * 1048576.0;
    if (bytes >= target) return 1;
    int c = (int)std::ceil(target / bytes);
    return std::min(c, 1024);
}

/* ------------------------------------------------------------- report -- */
struct Row {
    std::string kernel, shape, variant;
    double us, bytes, err;
    bool checked, pass;
    std::string note;
};
static std::vector<Row> g_rows;
static double g_copy_gbs = 0;
static int g_fail = 0;

static void add_row(const std::string &k, const std::string &s, const std::string &v, double us, double bytes,
                    bool checked, double err, bool nan, const std::string &note = "")
{
    Row r{k, s, v, us, bytes, err, checked, checked ? (!nan && err <= kTol) : true, note};
    if (nan) r.note += (r.note.empty() ? "" : "; ") + std::string("NaN in output");
    if (!r.pass) g_fail++;
    g_rows.push_back(r);
    double gbs = bytes / (us * 1e3);
    std::fprintf(stderr, "  %-12s %-28s %-14s %9.2f us %8.1f GB/s  err %.2e %s\n", k.c_str(), s.c_str(), v.c_str(), us,
                 gbs, err, checked ? (r.pass ? "PASS" : "FAIL") : "-");
}

static void print_table(const char *dev)
{
    std::printf("\n### dev/cuda lab on %s\n\n", dev);
    std::printf("moe A = gate_up + bias + clamped SwiGLU, moe B = down + bias, x routing weight, sum over top-4, + residual "
                "(MXFP4, E=32, bytes over the distinct experts); graph×n = n launches in one CUDA graph over weight "
                "copies > L2, time per launch; \"—\" = timing only (the same kernel is checked in another row)\n\n");
    std::printf("Copy bandwidth (bytes read + written, same process): %.0f GB/s (cudaMemcpy D2D 2 GiB; %%-of-copy column)\n\n",
                g_copy_gbs);
    std::printf("| kernel | shape | variant | µs (median) | GB/s | %% of copy BW | max rel err | PASS/FAIL |\n");
    std::printf("|---|---|---|---:|---:|---:|---:|---|\n");
    for (auto &r : g_rows) {
        double gbs = r.bytes / (r.us * 1e3);
        char err[32];
        if (r.checked) std::snprintf(err, sizeof err, "%.1e", r.err);
        else std::snprintf(err, sizeof err, "—");
        char us[32], bw[32], pct[32];
        if (std::isfinite(r.us) && r.us > 0) {
            std::snprintf(us, sizeof us, "%.2f", r.us);
            std::snprintf(bw, sizeof bw, "%.0f", gbs);
            std::snprintf(pct, sizeof pct, "%.1f %%", 100.0 * gbs / g_copy_gbs);
        } else {
            std::snprintf(us, sizeof us, "—");
            std::snprintf(bw, sizeof bw, "—");
            std::snprintf(pct, sizeof pct, "—");
        }
        std::printf("| %s | %s | %s | %s | %s | %s | %s | %s%s%s |\n", r.kernel.c_str(), r.shape.c_str(),
                    r.variant.c_str(), us, bw, pct, err,
                    r.checked ? (r.pass ? "PASS" : "FAIL") : "—", r.note.empty() ? "" : " ", r.note.c_str());
    }
    std::printf("\n%d checks failed\n", g_fail);
}

/* ---------------------------------------------------------- copy BW -- */
__global__ void copy_kernel(const uint4 *__restrict__ s, uint4 *__restrict__ d, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        d[i] = s[i];
}

static void bench_copy(Timer &T)
{
    const size_t bytes = (size_t)2 << 30;
    void *s, *d;
    CK(cudaMalloc(&s, bytes));
    CK(cudaMalloc(&d, bytes));
    CK(cudaMemset(s, 1, bytes));
    CK(cudaMemset(d, 0, bytes));
    double us = T.median_us([&] { CK(cudaMemcpyAsync(d, s, bytes, cudaMemcpyDeviceToDevice, 0)); }, false);
    g_copy_gbs = 2.0 * bytes / (us * 1e3);
    add_row("copy", "2 GiB", "cudaMemcpy D2D", us, 2.0 * bytes, false, 0, false);
    int sms = 0;
    CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    double us2 = T.median_us([&] {
        copy_kernel<<<sms * 8, 512>>>((const uint4 *)s, (uint4 *)d, bytes / 16);
    }, false);
    add_row("copy", "2 GiB", "copy kernel 16B", us2, 2.0 * bytes, false, 0, false);
    CK(cudaFree(s));
    CK(cudaFree(d));
}

/* -------------------------------------------------------------- GEMV -- */
/* cuBLAS on a stream with an explicit workspace (needed for graph capture;
 * cublasSetStream resets the workspace, so both are set together) */
static void *g_cbws;
static const size_t g_cbws_bytes = (size_t)32 << 20;
static void cublas_on(cublasHandle_t cb, cudaStream_t st)
{
    CKB(cublasSetStream(cb, st));
    CKB(cublasSetWorkspace(cb, g_cbws, g_cbws_bytes));
}

struct GemvShape {
    const char *name;
    int N, K;
};

static void bench_gemv(Timer &T, cublasHandle_t cb, const GemvShape &sh, const std::vector<int> &Ms, bool all_variants)
{
    const int N = sh.N, K = sh.K, Mmax = 8;
    std::fprintf(stderr, "gemv %s %dx%d\n", sh.name, N, K);
    std::vector<uint16_t> W((size_t)N * K);
    fill_bf16(W, 1.0f);
    std::vector<float> bias(N), x((size_t)Mmax * K);
    fill_f32(bias, -1.f, 1.f);
    fill_f32(x, -1.f, 1.f);
    std::vector<uint16_t> xb((size_t)Mmax * K);
    for (size_t i = 0; i < xb.size(); i++) xb[i] = f2bf(x[i]);

    uint16_t *dW, *dxb;
    float *dbias, *dx, *dy;
    CK(cudaMalloc(&dW, W.size() * 2));
    CK(cudaMalloc(&dxb, xb.size() * 2));
    CK(cudaMalloc(&dbias, N * 4));
    CK(cudaMalloc(&dx, x.size() * 4));
    CK(cudaMalloc(&dy, (size_t)Mmax * N * 4));
    CK(cudaMemcpy(dW, W.data(), W.size() * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dxb, xb.data(), xb.size() * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dbias, bias.data(), N * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dx, x.data(), x.size() * 4, cudaMemcpyHostToDevice));

    /* references: fp32 x (with bias) and bf16 x (no bias, as cuBLAS computes) */
    std::vector<double> ref((size_t)Mmax * N), refb((size_t)Mmax * N);
    int Mref = *std::max_element(Ms.begin(), Ms.end());
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const uint16_t *w = &W[(size_t)n * K];
        for (int m = 0; m < Mref; m++) {
            double a = 0, b = 0;
            const float *xm = &x[(size_t)m * K];
            const uint16_t *xbm = &xb[(size_t)m * K];
            for (int k = 0; k < K; k++) {
                double wv = bf2f(w[k]);
                a += wv * xm[k];
                b += wv * bf2f(xbm[k]);
            }
            ref[(size_t)m * N + n] = a + bias[n];
            refb[(size_t)m * N + n] = b;
        }
    }
    std::vector<float> y((size_t)Mmax * N);
    char shape[64];

    auto check = [&](int M, const std::vector<double> &r, double *err, bool *nan) {
        CK(cudaDeviceSynchronize());
        CK(cudaMemcpy(y.data(), dy, (size_t)M * N * 4, cudaMemcpyDeviceToHost));
        *err = rel_err(y.data(), r.data(), (size_t)M * N, nan);
    };
    auto poison = [&]() {
        CK(cudaMemset(dy, 0xff, (size_t)Mmax * N * 4));
        CK(cudaDeviceSynchronize()); /* the graph runs on another (non-blocking) stream */
    };

    for (int M : Ms) {
        std::snprintf(shape, sizeof shape, "%s %dx%d M=%d", sh.name, N, K, M);
        double bytes = (double)N * K * 2 + (double)M * K * 4 + (double)N * 4 + (double)M * N * 4;
        std::vector<int> vs;
        if (all_variants && M == 1)
            for (int v = 0; v < DPB_GEMV_NVARIANTS; v++) vs.push_back(v);
        else
            vs.push_back(DPB_GEMV_AUTO);
        for (int v : vs) {
            auto run = [&] {
                CKD(dpb_cuda_gemv_bf16(dW, dbias, dx, 0, dy, M, N, K, (dpb_cuda_gemv_variant)v, 0));
            };
            double e1, e2;
            bool n1, n2;
            poison();
            run();
            check(M, ref, &e1, &n1);
            double us = T.median_us(run);
            poison();
            run();
            check(M, ref, &e2, &n2);
            add_row("gemv", shape, std::string(dpb_cuda_gemv_variant_name((dpb_cuda_gemv_variant)v)) + " xf32",
                    us, bytes, true, std::max(e1, e2), n1 || n2);
        }
        /* same kernel with bf16 x, and cuBLAS on identical operands */
        {
            double bytesb = (double)N * K * 2 + (double)M * K * 2 + (double)M * N * 4;
            double e, us;
            bool nn;
            if (M == 1) {
                auto run = [&] { CKD(dpb_cuda_gemv_bf16(dW, nullptr, dxb, 1, dy, M, N, K, DPB_GEMV_AUTO, 0)); };
                poison();
                run();
                check(M, refb, &e, &nn);
                us = T.median_us(run);
                add_row("gemv", shape, "auto xbf16", us, bytesb, true, e, nn);
            }

            const float one = 1.f, zero = 0.f;
            auto runb = [&] {
                CKB(cublasGemmEx(cb, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &one, dW, CUDA_R_16BF, K, dxb, CUDA_R_16BF, K,
                                 &zero, dy, CUDA_R_32F, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
            };
            poison();
            runb();
            check(M, refb, &e, &nn);
            us = T.median_us(runb);
            add_row("gemv", shape, "cuBLAS", us, bytesb, true, e, nn);
        }
        if (M == 1) { /* in a CUDA graph, rotating over weight copies */
            const size_t wb = (size_t)N * K * 2;
            const int copies = rotate_copies((double)wb), n = std::max(copies, 8);
            uint16_t *rot;
            CK(cudaMalloc(&rot, wb * copies));
            for (int c = 0; c < copies; c++) CK(cudaMemcpy(rot + (size_t)c * N * K, dW, wb, cudaMemcpyDeviceToDevice));
            char var[96];
            double e;
            bool nn;
            double us = 0;
            /* every variant in a graph for the mid and small shapes (the decode matrices) */
            for (int v = 0; v < (N <= 8192 ? (int)DPB_GEMV_NVARIANTS : 1); v++) {
                poison();
                us = T.graph_us([&](cudaStream_t st, int i) {
                    CKD(dpb_cuda_gemv_bf16(rot + (size_t)(i % copies) * N * K, dbias, dx, 0, dy, M, N, K,
                                           (dpb_cuda_gemv_variant)v, st));
                }, n);
                check(M, ref, &e, &nn);
                std::snprintf(var, sizeof var, "%s xf32 graph×%d", dpb_cuda_gemv_variant_name((dpb_cuda_gemv_variant)v), n);
                add_row("gemv", shape, var, us, bytes, true, e, nn);
            }
            const float one = 1.f, zero = 0.f;
            poison();
            cublas_on(cb, T.gs); /* before capture: setting the stream resets the workspace */
            us = T.graph_us([&](cudaStream_t, int i) {
                CKB(cublasGemmEx(cb, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &one, rot + (size_t)(i % copies) * N * K,
                                 CUDA_R_16BF, K, dxb, CUDA_R_16BF, K, &zero, dy, CUDA_R_32F, N, CUBLAS_COMPUTE_32F,
                                 CUBLAS_GEMM_DEFAULT));
            }, n);
            cublas_on(cb, 0);
            check(M, refb, &e, &nn);
            std::snprintf(var, sizeof var, "cuBLAS graph×%d", n);
            add_row("gemv", shape, var, us, (double)N * K * 2 + (double)M * K * 2 + (double)M * N * 4, true, e, nn);
            CK(cudaFree(rot));
        }
    }
    CK(cudaFree(dW));
    CK(cudaFree(dxb));
    CK(cudaFree(dbias));
    CK(cudaFree(dx));
    CK(cudaFree(dy));
}

/* ------------------------------------------------------------- MXFP4 -- */
static const float kFp4[16] = {0.f, .5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f, -0.f, -.5f, -1.f, -1.5f, -2.f, -3.f, -4.f, -6.f};
__constant__ float kFp4d[16] = {0.f, .5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f, -0.f, -.5f, -1.f, -1.5f, -2.f, -3.f, -4.f, -6.f};

/* element c of row `row` (global row index over [E*rows]) */
static inline double mx_w(const std::vector<uint8_t> &blocks, const std::vector<uint8_t> &scales, size_t row,
                          int cols, int c)
{
    size_t nb = (size_t)cols / 32;
    uint8_t byte = blocks[(row * nb + c / 32) * 16 + (c % 32) / 2];
    int code = (c & 1) ? (byte >> 4) : (byte & 15);
    return (double)kFp4[code] * std::ldexp(1.0, (int)scales[row * nb + c / 32] - 127);
}

static void fill_mx(std::vector<uint8_t> &blocks, std::vector<uint8_t> &scales, int smin, int smax)
{
    for (size_t i = 0; i < blocks.size(); i += 8) {
        uint64_t r = rnd64();
        for (size_t j = 0; j < 8 && i + j < blocks.size(); j++) blocks[i + j] = (uint8_t)(r >> (8 * j));
    }
    for (auto &s : scales) s = (uint8_t)(smin + (int)(rnd64() % (uint64_t)(smax - smin + 1)));
}

static void bench_moe(Timer &T, const std::vector<int> &Ms)
{
    const int E = 32, k = 4, H = 2880, I = 2880, nbH = H / 32, nbI = I / 32;
    const float alpha = 1.702f, limit = 7.f;
    std::fprintf(stderr, "moe E=%d k=%d H=%d I=%d\n", E, k, H, I);
    std::vector<uint8_t> gub((size_t)E * 2 * I * nbH * 16), gus((size_t)E * 2 * I * nbH);
    std::vector<uint8_t> db((size_t)E * H * nbI * 16), ds((size_t)E * H * nbI);
    fill_mx(gub, gus, 119, 125);
    fill_mx(db, ds, 119, 125);
    std::vector<uint16_t> gubias((size_t)E * 2 * I), dbias((size_t)E * H);
    fill_bf16(gubias, 1.f);
    fill_bf16(dbias, 1.f);
    const int Mmax = 8;
    std::vector<float> x((size_t)Mmax * H), act((size_t)Mmax * k * I), resid((size_t)Mmax * H), wts((size_t)Mmax * k);
    fill_f32(x, -1.f, 1.f);
    fill_f32(act, -3.f, 3.f);
    fill_f32(resid, -2.f, 2.f);
    std::vector<int32_t> ids((size_t)Mmax * k);
    random_routing(ids, wts, Mmax, k, E, true);

    uint8_t *dgub, *dgus, *ddb, *dds;
    uint16_t *dgubias, *ddbias;
    float *dx, *dact, *dresid, *dwts, *dout, *dact_out;
    int32_t *dids;
    CK(cudaMalloc(&dgub, gub.size()));
    CK(cudaMalloc(&dgus, gus.size()));
    CK(cudaMalloc(&ddb, db.size()));
    CK(cudaMalloc(&dds, ds.size()));
    CK(cudaMalloc(&dgubias, gubias.size() * 2));
    CK(cudaMalloc(&ddbias, dbias.size() * 2));
    CK(cudaMalloc(&dx, x.size() * 4));
    CK(cudaMalloc(&dact, act.size() * 4));
    CK(cudaMalloc(&dact_out, act.size() * 4));
    CK(cudaMalloc(&dresid, resid.size() * 4));
    CK(cudaMalloc(&dwts, wts.size() * 4));
    CK(cudaMalloc(&dout, resid.size() * 4));
    CK(cudaMalloc(&dids, ids.size() * 4));
    CK(cudaMemcpy(dgub, gub.data(), gub.size(), cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dgus, gus.data(), gus.size(), cudaMemcpyHostToDevice));
    CK(cudaMemcpy(ddb, db.data(), db.size(), cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dds, ds.data(), ds.size(), cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dgubias, gubias.data(), gubias.size() * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(ddbias, dbias.data(), dbias.size() * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dx, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dact, act.data(), act.size() * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dresid, resid.data(), resid.size() * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dwts, wts.data(), wts.size() * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dids, ids.data(), ids.size() * 4, cudaMemcpyHostToDevice));

    /* references for all Mmax tokens */
    std::vector<double> refA((size_t)Mmax * k * I), refB((size_t)Mmax * H);
    int clamped = 0;
#pragma omp parallel for schedule(static) reduction(+ : clamped)
    for (int pj = 0; pj < Mmax * k * I; pj++) {
        int p = pj / I, j = pj % I, m = p / k, e = ids[p];
        double g = 0, u = 0;
        size_t rg = (size_t)e * 2 * I + 2 * (size_t)j;
        for (int c = 0; c < H; c++) {
            g += mx_w(gub, gus, rg, H, c) * x[(size_t)m * H + c];
            u += mx_w(gub, gus, rg + 1, H, c) * x[(size_t)m * H + c];
        }
        g += bf2f(gubias[rg]);
        u += bf2f(gubias[rg + 1]);
        if (g > limit || u > limit || u < -limit) clamped++;
        g = std::min(g, (double)limit);
        u = std::max(std::min(u, (double)limit), -(double)limit);
        refA[pj] = g / (1.0 + std::exp(-(double)alpha * g)) * (u + 1.0);
    }
#pragma omp parallel for schedule(static)
    for (int mh = 0; mh < Mmax * H; mh++) {
        int m = mh / H, h = mh % H;
        double s = resid[mh];
        for (int ei = 0; ei < k; ei++) {
            int p = m * k + ei, e = ids[p];
            size_t row = (size_t)e * H + h;
            double d = bf2f(dbias[row]);
            for (int c = 0; c < I; c++) d += mx_w(db, ds, row, I, c) * act[(size_t)p * I + c];
            s += wts[p] * d;
        }
        refB[mh] = s;
    }
    std::fprintf(stderr, "  (reference: %d of %d gate/up outputs hit the SwiGLU clamp)\n", clamped, Mmax * k * I);
    std::vector<float> y(act.size());
    char shape[96];
    /* Variants: the rows_per_warp argument of kernels A and B (see
     * decode_kernels.h).  0 is the default; the others are timed next to it
     * at M=1, the default and the first version at every M. */
    struct Var {
        int v;
        const char *name;
    };
    const int V3 = DPB_CUDA_MOE_V3, V2 = DPB_CUDA_MOE_V2, V1 = DPB_CUDA_MOE_V1;
    const std::vector<Var> varsA = {{0, "default"},
                                    {V1 | 8, "v1 8 rows/warp"},
                                    {V1 | 8 | DPB_CUDA_MOE_LUT, "v1 8 rows byte LUT"},
                                    {V2 | 4, "v2 4 rows/warp"},
                                    {V2 | 8, "v2 8 rows/warp"},
                                    {V3 | (2 << 4) | 1, "v3 mma 2 steps"},
                                    {V3 | (4 << 4) | 1, "v3 mma 4 steps"},
                                    {V3 | (2 << 4) | 2, "v3 mma 2 steps K/2"},
                                    {V3 | (4 << 4) | 2, "v3 mma 4 steps K/2"}};
    const std::vector<Var> varsB = {{0, "default"},
                                    {V1 | 2, "v1 2 rows/warp"},
                                    {V2 | 4, "v2 4 rows"},
                                    {V2 | 8, "v2 8 rows"},
                                    {V3 | (2 << 4) | 2, "v3 mma 2 steps K/2"},
                                    {V3 | (4 << 4) | 2, "v3 mma 4 steps K/2"},
                                    {V3 | (2 << 4) | 4, "v3 mma 2 steps K/4"},
                                    {V3 | (4 << 4) | 4, "v3 mma 4 steps K/4"}};
    /* LAB_MOE_FILTER=substring: only the variants whose name contains it;
     * LAB_MOE_CHECKONLY=1: no timing (for the sanitizer) */
    const char *filt = std::getenv("LAB_MOE_FILTER");
    const bool check_only = std::getenv("LAB_MOE_CHECKONLY") != nullptr;
    auto keep = [&](const Var &v) { return !filt || std::strstr(v.name, filt) != nullptr; };
    for (int M : Ms) {
        int distinct = 0;
        {
            std::vector<int> seen(E, 0);
            for (int i = 0; i < M * k; i++)
                if (!seen[ids[i]]++) distinct++;
        }
        /* kernel A */
        for (const Var &va : varsA) {
            if (M > 1 && va.v != 0 && va.v != (V1 | 8) && va.v != (V3 | (2 << 4) | 1)) continue;
            if (!keep(va)) continue;
            std::fprintf(stderr, "  moe A M=%d %s ...\n", M, va.name);
            const int rpw = va.v;
            double bytes = (double)distinct * 2 * I * nbH * 17 + (double)distinct * 2 * I * 2 + (double)M * H * 4 +
                           (double)M * k * I * 4;
            auto run = [&] {
                CKD(dpb_cuda_moe_gate_up_swiglu(dgub, dgus, dgubias, dx, dids, dact_out, M, k, E, H, I, alpha, limit,
                                                rpw, 0));
            };
            double e1, e2;
            bool n1, n2;
            CK(cudaMemset(dact_out, 0xff, act.size() * 4));
            run();
            CK(cudaDeviceSynchronize());
            CK(cudaMemcpy(y.data(), dact_out, (size_t)M * k * I * 4, cudaMemcpyDeviceToHost));
            e1 = rel_err(y.data(), refA.data(), (size_t)M * k * I, &n1);
            double us = check_only ? NAN : T.median_us(run);
            CK(cudaMemset(dact_out, 0xff, act.size() * 4));
            run();
            CK(cudaDeviceSynchronize());
            CK(cudaMemcpy(y.data(), dact_out, (size_t)M * k * I * 4, cudaMemcpyDeviceToHost));
            e2 = rel_err(y.data(), refA.data(), (size_t)M * k * I, &n2);
            std::snprintf(shape, sizeof shape, "%d->2x%d M=%d (%d exp)", H, I, M, distinct);
            add_row("moe A", shape, va.name, us, bytes, true, std::max(e1, e2), n1 || n2);
        }
        /* kernel B */
        for (const Var &vb : varsB) {
            if (M > 1 && vb.v != 0 && vb.v != (V1 | 2) && vb.v != (V3 | (2 << 4) | 2)) continue;
            if (!keep(vb)) continue;
            std::fprintf(stderr, "  moe B M=%d %s ...\n", M, vb.name);
            const int rpw = vb.v;
            double bytes = (double)distinct * H * nbI * 17 + (double)distinct * H * 2 + (double)M * k * I * 4 +
                           (double)M * H * 8;
            auto run = [&] {
                CKD(dpb_cuda_moe_down_sum(ddb, dds, ddbias, dact, dids, dwts, dresid, dout, M, k, E, H, I, rpw, 0));
            };
            double e1, e2;
            bool n1, n2;
            CK(cudaMemset(dout, 0xff, resid.size() * 4));
            run();
            CK(cudaDeviceSynchronize());
            CK(cudaMemcpy(y.data(), dout, (size_t)M * H * 4, cudaMemcpyDeviceToHost));
            e1 = rel_err(y.data(), refB.data(), (size_t)M * H, &n1);
            double us = check_only ? NAN : T.median_us(run);
            CK(cudaMemset(dout, 0xff, resid.size() * 4));
            run();
            CK(cudaDeviceSynchronize());
            CK(cudaMemcpy(y.data(), dout, (size_t)M * H * 4, cudaMemcpyDeviceToHost));
            e2 = rel_err(y.data(), refB.data(), (size_t)M * H, &n2);
            std::snprintf(shape, sizeof shape, "%d->%d M=%d (%d exp)", I, H, M, distinct);
            add_row("moe B", shape, vb.name, us, bytes, true, std::max(e1, e2), n1 || n2);
        }
    }
    /* M=1 in a CUDA graph: 16 launches rotating over 8 disjoint sets of k
     * experts (all 32 experts: 282 MB of gate_up, 141 MB of down) */
    if (!check_only) {
        std::vector<int32_t> perm(E);
        for (int i = 0; i < E; i++) perm[i] = i;
        for (int i = E - 1; i > 0; i--) std::swap(perm[i], perm[rnd64() % (uint64_t)(i + 1)]);
        const int sets = E / k, n = 2 * sets;
        int32_t *drot;
        CK(cudaMalloc(&drot, E * 4));
        CK(cudaMemcpy(drot, perm.data(), E * 4, cudaMemcpyHostToDevice));
        double bytesA = (double)k * 2 * I * nbH * 17 + (double)k * 2 * I * 2 + (double)H * 4 + (double)k * I * 4;
        double bytesB = (double)k * H * nbI * 17 + (double)k * H * 2 + (double)k * I * 4 + (double)H * 8;
        char shape2[96], var[96];
        for (const Var &va : varsA) {
            if (va.v == (V1 | 8 | DPB_CUDA_MOE_LUT) || !keep(va)) continue;
            double us = T.graph_us([&](cudaStream_t st, int i) {
                CKD(dpb_cuda_moe_gate_up_swiglu(dgub, dgus, dgubias, dx, drot + (i % sets) * k, dact_out, 1, k, E, H, I,
                                                alpha, limit, va.v, st));
            }, n);
            std::snprintf(shape2, sizeof shape2, "%d->2x%d M=1 (4 exp)", H, I);
            std::snprintf(var, sizeof var, "%s graph×%d", va.name, n);
            add_row("moe A", shape2, var, us, bytesA, false, 0, false);
        }
        for (const Var &vb : varsB) {
            if (!keep(vb)) continue;
            double us = T.graph_us([&](cudaStream_t st, int i) {
                CKD(dpb_cuda_moe_down_sum(ddb, dds, ddbias, dact, drot + (i % sets) * k, dwts, dresid, dout, 1, k, E, H, I,
                                          vb.v, st));
            }, n);
            std::snprintf(shape2, sizeof shape2, "%d->%d M=1 (4 exp)", I, H);
            std::snprintf(var, sizeof var, "%s graph×%d", vb.name, n);
            add_row("moe B", shape2, var, us, bytesB, false, 0, false);
        }
        CK(cudaFree(drot));
    }
    /* The backend's path: per-expert pointer tables (experts not
     * contiguous) and rounding as the bf16 engine does (rnd = 1), against a
     * reference that rounds the same values to bf16. */
    {
        const int Mr = *std::max_element(Ms.begin(), Ms.end());
        std::vector<const uint8_t *> tab(4 * (size_t)E);
        for (int e = 0; e < E; e++) {
            tab[e] = dgub + (size_t)e * 2 * I * nbH * 16;
            tab[E + e] = dgus + (size_t)e * 2 * I * nbH;
            tab[2 * E + e] = ddb + (size_t)e * H * nbI * 16;
            tab[3 * E + e] = dds + (size_t)e * H * nbI;
        }
        const uint8_t **dtab;
        CK(cudaMalloc(&dtab, tab.size() * sizeof(void *)));
        CK(cudaMemcpy(dtab, tab.data(), tab.size() * sizeof(void *), cudaMemcpyHostToDevice));
        auto rb = [](double v) { return (double)bf2f(f2bf((float)v)); };
        std::vector<double> refAr((size_t)Mr * k * I), refBr((size_t)Mr * H);
#pragma omp parallel for schedule(static)
        for (int pj = 0; pj < Mr * k * I; pj++) {
            int p = pj / I, j = pj % I, m = p / k, e = ids[p];
            double g = 0, u = 0;
            size_t rg = (size_t)e * 2 * I + 2 * (size_t)j;
            for (int c = 0; c < H; c++) {
                g += mx_w(gub, gus, rg, H, c) * x[(size_t)m * H + c];
                u += mx_w(gub, gus, rg + 1, H, c) * x[(size_t)m * H + c];
            }
            g = rb(g + bf2f(gubias[rg]));
            u = rb(u + bf2f(gubias[rg + 1]));
            g = std::min(g, (double)limit);
            u = std::max(std::min(u, (double)limit), -(double)limit);
            refAr[pj] = rb(g / (1.0 + std::exp(-(double)alpha * g)) * (u + 1.0));
        }
#pragma omp parallel for schedule(static)
        for (int mh = 0; mh < Mr * H; mh++) {
            int m = mh / H, h = mh % H;
            double s = resid[mh];
            for (int ei = 0; ei < k; ei++) {
                int p = m * k + ei, e = ids[p];
                size_t row = (size_t)e * H + h;
                double d = bf2f(dbias[row]);
                for (int c = 0; c < I; c++) d += mx_w(db, ds, row, I, c) * act[(size_t)p * I + c];
                s += wts[p] * rb(d);
            }
            refBr[mh] = s;
        }
        const Var checks[] = {{0, "default"}, {V1, "v1"}, {V2, "v2"}, {V3 | (2 << 4) | 2, "v3 K/2"}};
        for (const Var &cv : checks) {
            if (!keep(cv)) continue;
            std::fprintf(stderr, "  moe tables+rounding %s ...\n", cv.name);
            char var[96];
            std::snprintf(var, sizeof var, "%s, expert tables, bf16 rounding", cv.name);
            CK(cudaMemset(dact_out, 0xff, act.size() * 4));
            CKD(dpb_cuda_moe_gate_up_swiglu_ex(nullptr, nullptr, dtab, dtab + E, dgubias, dx, dids, dact_out, Mr, k, E, H, I,
                                               alpha, limit, 1, cv.v, 0));
            CK(cudaDeviceSynchronize());
            CK(cudaMemcpy(y.data(), dact_out, (size_t)Mr * k * I * 4, cudaMemcpyDeviceToHost));
            bool nn;
            double e = rel_err(y.data(), refAr.data(), (size_t)Mr * k * I, &nn);
            std::snprintf(shape, sizeof shape, "%d->2x%d M=%d", H, I, Mr);
            add_row("moe A", shape, var, NAN, 0, true, e, nn);
            CK(cudaMemset(dout, 0xff, resid.size() * 4));
            CKD(dpb_cuda_moe_down_sum_ex(nullptr, nullptr, dtab + 2 * E, dtab + 3 * E, ddbias, dact, dids, dwts, dresid, dout,
                                         Mr, k, E, H, I, 1, cv.v, 0));
            CK(cudaDeviceSynchronize());
            CK(cudaMemcpy(y.data(), dout, (size_t)Mr * H * 4, cudaMemcpyDeviceToHost));
            e = rel_err(y.data(), refBr.data(), (size_t)Mr * H, &nn);
            std::snprintf(shape, sizeof shape, "%d->%d M=%d", I, H, Mr);
            add_row("moe B", shape, var, NAN, 0, true, e, nn);
        }
        CK(cudaFree(dtab));
    }
    /* in-place residual (out == resid), M=1 */
    {
        CK(cudaMemcpy(dout, resid.data(), (size_t)H * 4, cudaMemcpyHostToDevice));
        CKD(dpb_cuda_moe_down_sum(ddb, dds, ddbias, dact, dids, dwts, dout, dout, 1, k, E, H, I, 0, 0));
        CK(cudaDeviceSynchronize());
        CK(cudaMemcpy(y.data(), dout, (size_t)H * 4, cudaMemcpyDeviceToHost));
        bool nn;
        double e = rel_err(y.data(), refB.data(), H, &nn);
        add_row("moe B", "M=1 out == resid", "in place, check only", NAN, 0, true, e, nn);
    }
    for (void *p : std::initializer_list<void *>{dgub, dgus, ddb, dds, dgubias, ddbias, dx, dact, dact_out, dresid,
                                                 dwts, dout, dids})
        CK(cudaFree(p));
}

/* Small expert shapes (the gpt-oss-tiny fixtures: H = I = 128, 8 experts,
 * and H = I = 64 with k = 2): every version, with expert tables, with and
 * without bf16 rounding, M = 1, 3 and 8; checks only. */
static void check_moe_small()
{
    struct Shape {
        int E, k, H, I;
    };
    const float alpha = 1.702f, limit = 7.f;
    for (const Shape sh : {Shape{8, 4, 128, 128}, Shape{4, 2, 64, 96}}) {
        const int E = sh.E, k = sh.k, H = sh.H, I = sh.I, nbH = H / 32, nbI = I / 32, Mmax = 8;
        std::fprintf(stderr, "moe small E=%d k=%d H=%d I=%d\n", E, k, H, I);
        std::vector<uint8_t> gub((size_t)E * 2 * I * nbH * 16), gus((size_t)E * 2 * I * nbH);
        std::vector<uint8_t> db((size_t)E * H * nbI * 16), ds((size_t)E * H * nbI);
        fill_mx(gub, gus, 119, 125);
        fill_mx(db, ds, 119, 125);
        std::vector<uint16_t> gubias((size_t)E * 2 * I), dbias((size_t)E * H);
        fill_bf16(gubias, 1.f);
        fill_bf16(dbias, 1.f);
        std::vector<float> x((size_t)Mmax * H), act((size_t)Mmax * k * I), resid((size_t)Mmax * H), wts((size_t)Mmax * k);
        fill_f32(x, -1.f, 1.f);
        fill_f32(act, -3.f, 3.f);
        fill_f32(resid, -2.f, 2.f);
        std::vector<int32_t> ids((size_t)Mmax * k);
        random_routing(ids, wts, Mmax, k, E, false);
        auto rb = [](double v) { return (double)bf2f(f2bf((float)v)); };
        /* references [rnd][...] */
        std::vector<double> refA[2], refB[2];
        for (int r = 0; r < 2; r++) {
            refA[r].resize((size_t)Mmax * k * I);
            refB[r].resize((size_t)Mmax * H);
            for (int p = 0; p < Mmax * k; p++) {
                const int m = p / k, e = ids[p];
                for (int j = 0; j < I; j++) {
                    const size_t rg = (size_t)e * 2 * I + 2 * (size_t)j;
                    double g = bf2f(gubias[rg]), u = bf2f(gubias[rg + 1]);
                    for (int c = 0; c < H; c++) {
                        g += mx_w(gub, gus, rg, H, c) * x[(size_t)m * H + c];
                        u += mx_w(gub, gus, rg + 1, H, c) * x[(size_t)m * H + c];
                    }
                    if (r) { g = rb(g); u = rb(u); }
                    g = std::min(g, (double)limit);
                    u = std::max(std::min(u, (double)limit), -(double)limit);
                    const double a = g / (1.0 + std::exp(-(double)alpha * g)) * (u + 1.0);
                    refA[r][(size_t)p * I + j] = r ? rb(a) : a;
                }
            }
            for (int m = 0; m < Mmax; m++)
                for (int h = 0; h < H; h++) {
                    double sacc = resid[(size_t)m * H + h];
                    for (int ei = 0; ei < k; ei++) {
                        const int p = m * k + ei, e = ids[p];
                        const size_t row = (size_t)e * H + h;
                        double d = bf2f(dbias[row]);
                        for (int c = 0; c < I; c++) d += mx_w(db, ds, row, I, c) * act[(size_t)p * I + c];
                        sacc += wts[p] * (r ? rb(d) : d);
                    }
                    refB[r][(size_t)m * H + h] = sacc;
                }
        }
        uint8_t *dgub, *dgus, *ddb, *dds;
        uint16_t *dgubias, *ddbias;
        float *dx, *dact, *dresid, *dwts, *dout, *dact_out;
        int32_t *dids;
        CK(cudaMalloc(&dgub, gub.size()));
        CK(cudaMalloc(&dgus, gus.size()));
        CK(cudaMalloc(&ddb, db.size()));
        CK(cudaMalloc(&dds, ds.size()));
        CK(cudaMalloc(&dgubias, gubias.size() * 2));
        CK(cudaMalloc(&ddbias, dbias.size() * 2));
        CK(cudaMalloc(&dx, x.size() * 4));
        CK(cudaMalloc(&dact, act.size() * 4));
        CK(cudaMalloc(&dact_out, act.size() * 4));
        CK(cudaMalloc(&dresid, resid.size() * 4));
        CK(cudaMalloc(&dwts, wts.size() * 4));
        CK(cudaMalloc(&dout, resid.size() * 4));
        CK(cudaMalloc(&dids, ids.size() * 4));
        CK(cudaMemcpy(dgub, gub.data(), gub.size(), cudaMemcpyHostToDevice));
        CK(cudaMemcpy(dgus, gus.data(), gus.size(), cudaMemcpyHostToDevice));
        CK(cudaMemcpy(ddb, db.data(), db.size(), cudaMemcpyHostToDevice));
        CK(cudaMemcpy(dds, ds.data(), ds.size(), cudaMemcpyHostToDevice));
        CK(cudaMemcpy(dgubias, gubias.data(), gubias.size() * 2, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(ddbias, dbias.data(), dbias.size() * 2, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(dx, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(dact, act.data(), act.size() * 4, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(dresid, resid.data(), resid.size() * 4, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(dwts, wts.data(), wts.size() * 4, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(dids, ids.data(), ids.size() * 4, cudaMemcpyHostToDevice));
        std::vector<const uint8_t *> tab(4 * (size_t)E);
        for (int e = 0; e < E; e++) {
            tab[e] = dgub + (size_t)e * 2 * I * nbH * 16;
            tab[E + e] = dgus + (size_t)e * 2 * I * nbH;
            tab[2 * E + e] = ddb + (size_t)e * H * nbI * 16;
            tab[3 * E + e] = dds + (size_t)e * H * nbI;
        }
        const uint8_t **dtab;
        CK(cudaMalloc(&dtab, tab.size() * sizeof(void *)));
        CK(cudaMemcpy(dtab, tab.data(), tab.size() * sizeof(void *), cudaMemcpyHostToDevice));
        std::vector<float> y(act.size());
        const int V3 = DPB_CUDA_MOE_V3, V2 = DPB_CUDA_MOE_V2, V1 = DPB_CUDA_MOE_V1;
        const struct {
            int v;
            const char *name;
        } vars[] = {{0, "default"}, {V1, "v1"}, {V2, "v2"}, {V3 | (2 << 4) | 1, "v3"}, {V3 | (2 << 4) | 2, "v3 K/2"},
                    {V3 | (4 << 4) | 4, "v3 4 steps K/4"}};
        for (int M : {1, 3, 8})
            for (int r = 0; r < 2; r++)
                for (const auto &vv : vars) {
                    char shape[96], var[96];
                    std::snprintf(var, sizeof var, "%s, tables%s", vv.name, r ? ", bf16 rounding" : "");
                    CK(cudaMemset(dact_out, 0xff, act.size() * 4));
                    CKD(dpb_cuda_moe_gate_up_swiglu_ex(nullptr, nullptr, dtab, dtab + E, dgubias, dx, dids, dact_out, M, k, E,
                                                       H, I, alpha, limit, r, vv.v, 0));
                    CK(cudaDeviceSynchronize());
                    CK(cudaMemcpy(y.data(), dact_out, (size_t)M * k * I * 4, cudaMemcpyDeviceToHost));
                    bool nn;
                    double e = rel_err(y.data(), refA[r].data(), (size_t)M * k * I, &nn);
                    std::snprintf(shape, sizeof shape, "small E=%d k=%d %d->2x%d M=%d", E, k, H, I, M);
                    add_row("moe A", shape, var, NAN, 0, true, e, nn);
                    CK(cudaMemset(dout, 0xff, resid.size() * 4));
                    CKD(dpb_cuda_moe_down_sum_ex(nullptr, nullptr, dtab + 2 * E, dtab + 3 * E, ddbias, dact, dids, dwts, dresid,
                                                 dout, M, k, E, H, I, r, vv.v, 0));
                    CK(cudaDeviceSynchronize());
                    CK(cudaMemcpy(y.data(), dout, (size_t)M * H * 4, cudaMemcpyDeviceToHost));
                    e = rel_err(y.data(), refB[r].data(), (size_t)M * H, &nn);
                    std::snprintf(shape, sizeof shape, "small E=%d k=%d %d->%d M=%d", E, k, I, H, M);
                    add_row("moe B", shape, var, NAN, 0, true, e, nn);
                }
        for (void *q : std::initializer_list<void *>{dgub, dgus, ddb, dds, dgubias, ddbias, dx, dact, dact_out, dresid, dwts,
                                                     dout, dids, (void *)dtab})
            CK(cudaFree(q));
    }
}

/* ------------------------------------------------------ add + RMSNorm -- */
static void bench_addnorm(Timer &T)
{
    std::fprintf(stderr, "add_rmsnorm\n");
    const float eps = 1e-5f;
    for (int dim : {2880, 8192, 100}) {
        for (int rows : {1, 8}) {
            const size_t n = (size_t)rows * dim;
            std::vector<float> x(n), r(n), xo(n), yo(n);
            std::vector<uint16_t> w(dim);
            fill_f32(x, -4.f, 4.f);
            fill_f32(r, -4.f, 4.f);
            fill_bf16(w, 2.f);
            float *dx, *dr, *dy;
            uint16_t *dw;
            CK(cudaMalloc(&dx, n * 4));
            CK(cudaMalloc(&dr, n * 4));
            CK(cudaMalloc(&dy, n * 4));
            CK(cudaMalloc(&dw, (size_t)dim * 2));
            CK(cudaMemcpy(dr, r.data(), n * 4, cudaMemcpyHostToDevice));
            CK(cudaMemcpy(dw, w.data(), (size_t)dim * 2, cudaMemcpyHostToDevice));
            for (int rnd : {0, 1}) {
                /* reference: the fp32 add (the same operation as on the GPU), the
                 * same rounding, the norm in double */
                std::vector<double> refx(n), refy(n);
                for (int m = 0; m < rows; m++) {
                    double ss = 0;
                    for (int i = 0; i < dim; i++) {
                        float a = x[(size_t)m * dim + i] + r[(size_t)m * dim + i];
                        if (rnd) a = bf2f(f2bf(a));
                        refx[(size_t)m * dim + i] = a;
                        ss += (double)a * a;
                    }
                    double sc = 1.0 / std::sqrt(ss / dim + eps);
                    for (int i = 0; i < dim; i++) {
                        double o = bf2f(w[i]) * (refx[(size_t)m * dim + i] * sc);
                        refy[(size_t)m * dim + i] = rnd ? bf2f(f2bf((float)o)) : o;
                    }
                }
                CK(cudaMemcpy(dx, x.data(), n * 4, cudaMemcpyHostToDevice));
                CK(cudaMemset(dy, 0xff, n * 4));
                CKD(dpb_cuda_add_rmsnorm(dx, dr, dw, dy, rows, dim, eps, rnd, rnd, 0));
                CK(cudaDeviceSynchronize());
                CK(cudaMemcpy(xo.data(), dx, n * 4, cudaMemcpyDeviceToHost));
                CK(cudaMemcpy(yo.data(), dy, n * 4, cudaMemcpyDeviceToHost));
                bool n1, n2;
                double ex = rel_err(xo.data(), refx.data(), n, &n1), ey = rel_err(yo.data(), refy.data(), n, &n2);
                char shape[64], var[64];
                std::snprintf(shape, sizeof shape, "%d rows x %d", rows, dim);
                std::snprintf(var, sizeof var, "x%s (x err %.0e)", rnd ? ", bf16 rounding" : "", ex);
                /* timing: x keeps growing by r, which changes nothing in the cost */
                auto run = [&] { CKD(dpb_cuda_add_rmsnorm(dx, dr, dw, dy, rows, dim, eps, rnd, rnd, 0)); };
                double us = T.median_us(run);
                double bytes = (double)n * 16 + dim * 2.0;
                add_row("add+norm", shape, var, us, bytes, true, std::max(ex, ey), n1 || n2);
                if (rows == 1 && dim == 2880) {
                    us = T.graph_us([&](cudaStream_t st, int) {
                        CKD(dpb_cuda_add_rmsnorm(dx, dr, dw, dy, rows, dim, eps, rnd, rnd, st));
                    }, 16);
                    std::snprintf(var, sizeof var, "%s graph×16", rnd ? "bf16 rounding" : "fp32");
                    add_row("add+norm", shape, var, us, bytes, false, 0, false);
                }
            }
            for (void *q : std::initializer_list<void *>{dx, dr, dy, dw}) CK(cudaFree(q));
        }
    }
}

/* ------------------------------------------------------------- router -- */
static void bench_router(Timer &T, const std::vector<int> &Ms)
{
    const int E = 32, H = 2880, k = 4, Mmax = 8;
    std::fprintf(stderr, "router E=%d H=%d k=%d\n", E, H, k);
    std::vector<uint16_t> W((size_t)E * H), b(E);
    fill_bf16(W, 1.f);
    fill_bf16(b, 1.f);
    std::vector<float> x((size_t)Mmax * H);
    fill_f32(x, -1.f, 1.f);
    std::vector<double> logit((size_t)Mmax * E);
    for (int m = 0; m < Mmax; m++)
        for (int e = 0; e < E; e++) {
            double a = bf2f(b[e]);
            for (int c = 0; c < H; c++) a += (double)bf2f(W[(size_t)e * H + c]) * x[(size_t)m * H + c];
            logit[(size_t)m * E + e] = a;
        }
    uint16_t *dW, *db;
    float *dx, *dw;
    int32_t *di;
    CK(cudaMalloc(&dW, W.size() * 2));
    CK(cudaMalloc(&db, b.size() * 2));
    CK(cudaMalloc(&dx, x.size() * 4));
    CK(cudaMalloc(&dw, (size_t)Mmax * k * 4));
    CK(cudaMalloc(&di, (size_t)Mmax * k * 4));
    CK(cudaMemcpy(dW, W.data(), W.size() * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(db, b.data(), b.size() * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dx, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
    std::vector<float> w((size_t)Mmax * k);
    std::vector<int32_t> id((size_t)Mmax * k);
    char shape[64];
    for (int M : Ms) {
        auto run = [&] { CKD(dpb_cuda_router_topk(dW, db, dx, di, dw, M, E, H, k, 0)); };
        CK(cudaMemset(dw, 0xff, (size_t)Mmax * k * 4));
        CK(cudaMemset(di, 0xff, (size_t)Mmax * k * 4));
        run();
        CK(cudaDeviceSynchronize());
        CK(cudaMemcpy(w.data(), dw, w.size() * 4, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(id.data(), di, id.size() * 4, cudaMemcpyDeviceToHost));
        /* ids: must be the reference top-k (a near tie at rank k may swap);
         * weights: softmax of the reference logits of the returned ids */
        bool ok_ids = true, nan = false;
        double err = 0;
        std::string note;
        for (int m = 0; m < M; m++) {
            std::vector<double> l(logit.begin() + (size_t)m * E, logit.begin() + (size_t)(m + 1) * E);
            std::vector<double> srt = l;
            std::sort(srt.rbegin(), srt.rend());
            double kth = srt[k - 1];
            std::vector<double> refw(k);
            double mx = -1e300, s = 0;
            for (int t = 0; t < k; t++) {
                int e = id[(size_t)m * k + t];
                if (e < 0 || e >= E) { ok_ids = false; break; }
                for (int u = 0; u < t; u++)
                    if (id[(size_t)m * k + u] == e) ok_ids = false;
                if (l[e] < kth - 1e-4 * std::max(1.0, std::fabs(kth))) ok_ids = false;
                if (t > 0 && l[e] > l[id[(size_t)m * k + t - 1]] + 1e-4) ok_ids = false; /* descending */
                mx = std::max(mx, l[e]);
            }
            if (!ok_ids) break;
            for (int t = 0; t < k; t++) s += std::exp(l[id[(size_t)m * k + t]] - mx);
            for (int t = 0; t < k; t++) refw[t] = std::exp(l[id[(size_t)m * k + t]] - mx) / s;
            bool n1;
            err = std::max(err, rel_err(&w[(size_t)m * k], refw.data(), k, &n1));
            nan |= n1;
        }
        if (!ok_ids) {
            note = "wrong expert ids";
            err = INFINITY;
        }
        double us = T.median_us(run);
        double bytes = (double)E * H * 2 + E * 2 + (double)M * H * 4 + (double)M * k * 8;
        std::snprintf(shape, sizeof shape, "%dx%d top%d M=%d", E, H, k, M);
        add_row("router", shape, "1 block/token", us, bytes, true, err, nan, note);
        if (M == 1) {
            const size_t wb = (size_t)E * H * 2;
            const int copies = rotate_copies((double)wb);
            uint16_t *rot;
            CK(cudaMalloc(&rot, wb * copies));
            for (int c = 0; c < copies; c++) CK(cudaMemcpy(rot + (size_t)c * E * H, dW, wb, cudaMemcpyDeviceToDevice));
            us = T.graph_us([&](cudaStream_t st, int i) {
                CKD(dpb_cuda_router_topk(rot + (size_t)(i % copies) * E * H, db, dx, di, dw, M, E, H, k, st));
            }, copies);
            char var[64];
            std::snprintf(var, sizeof var, "graph×%d", copies);
            add_row("router", shape, var, us, bytes, false, 0, false);
            CK(cudaFree(rot));
        }
    }
    for (void *p : std::initializer_list<void *>{dW, db, dx, dw, di}) CK(cudaFree(p));
}

/* ---------------------------------------------------------- attention -- */
static void bench_attn(Timer &T, const std::vector<int> &ctxs)
{
    const int Hq = 64, Hkv = 8, D = 64, G = Hq / Hkv;
    const float scale = 0.125f;
    int capmax = *std::max_element(ctxs.begin(), ctxs.end());
    std::fprintf(stderr, "attention Hq=%d Hkv=%d D=%d\n", Hq, Hkv, D);
    std::vector<uint16_t> kc((size_t)Hkv * capmax * D), vc((size_t)Hkv * capmax * D);
    fill_bf16(kc, 1.f);
    fill_bf16(vc, 1.f);
    std::vector<float> q((size_t)Hq * D), sinks(Hq);
    fill_f32(q, -6.f, 6.f); /* scores with a spread of a few units: a peaked softmax */
    fill_f32(sinks, -1.f, 3.f);
    uint16_t *dk, *dv;
    float *dq, *ds, *dout;
    void *work;
    size_t wb;
    CKD(dpb_cuda_attn_decode_work_bytes(Hq, D, DPB_CUDA_ATTN_MAX_SPLITS, &wb));
    CK(cudaMalloc(&dq, q.size() * 4));
    CK(cudaMalloc(&ds, sinks.size() * 4));
    CK(cudaMalloc(&dout, q.size() * 4));
    CK(cudaMalloc(&work, wb));
    CK(cudaMemcpy(dq, q.data(), q.size() * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(ds, sinks.data(), sinks.size() * 4, cudaMemcpyHostToDevice));
    std::vector<float> y(q.size());
    std::vector<double> ref(q.size());
    char shape[96];
    for (int ctx : ctxs) {
        /* layout [Hkv, cap, D] with cap > len: the unused tail is NaN, so a
         * read past len or with the wrong stride shows up */
        const int cap = ctx + 96;
        CK(cudaMalloc(&dk, (size_t)Hkv * cap * D * 2));
        CK(cudaMalloc(&dv, (size_t)Hkv * cap * D * 2));
        CK(cudaMemset(dk, 0xff, (size_t)Hkv * cap * D * 2));
        CK(cudaMemset(dv, 0xff, (size_t)Hkv * cap * D * 2));
        for (int g = 0; g < Hkv; g++) {
            CK(cudaMemcpy(dk + (size_t)g * cap * D, &kc[(size_t)g * capmax * D], (size_t)ctx * D * 2, cudaMemcpyHostToDevice));
            CK(cudaMemcpy(dv + (size_t)g * cap * D, &vc[(size_t)g * capmax * D], (size_t)ctx * D * 2, cudaMemcpyHostToDevice));
        }
        for (int window : {0, 128}) {
            if (window && ctx <= window) continue;
            for (int with_sink : {1, 0}) {
                if (!with_sink && window) continue;
                const int len = ctx, start = window ? len - window : 0;
#pragma omp parallel for schedule(static)
                for (int hq = 0; hq < Hq; hq++) {
                    int g = hq / G;
                    std::vector<double> s(len - start);
                    double mx = with_sink ? sinks[hq] : -1e300;
                    for (int p = start; p < len; p++) {
                        double a = 0;
                        for (int d = 0; d < D; d++)
                            a += (double)q[(size_t)hq * D + d] * bf2f(kc[((size_t)g * capmax + p) * D + d]);
                        s[p - start] = a * scale;
                        mx = std::max(mx, s[p - start]);
                    }
                    double den = with_sink ? std::exp(sinks[hq] - mx) : 0;
                    for (auto &v : s) { v = std::exp(v - mx); den += v; }
                    for (int d = 0; d < D; d++) {
                        double o = 0;
                        for (int p = start; p < len; p++) o += s[p - start] * bf2f(vc[((size_t)g * capmax + p) * D + d]);
                        ref[(size_t)hq * D + d] = o / den;
                    }
                }
                int ns_auto;
                CKD(dpb_cuda_attn_decode_auto_splits(len, window, &ns_auto));
                std::vector<int> splits{0};
                if (with_sink && ns_auto != 1) splits.push_back(1);
                if (with_sink && ns_auto != 64 && (len - start) >= 64 * 32) splits.push_back(64);
                for (int ns : splits) {
                    auto run = [&] {
                        CKD(dpb_cuda_attn_decode(dq, dk, dv, with_sink ? ds : nullptr, dout, Hq, Hkv, D, cap, len, window,
                                                 scale, ns, work, 0));
                    };
                    CK(cudaMemset(dout, 0xff, q.size() * 4));
                    CK(cudaMemset(work, 0xff, wb));
                    run();
                    CK(cudaDeviceSynchronize());
                    CK(cudaMemcpy(y.data(), dout, y.size() * 4, cudaMemcpyDeviceToHost));
                    bool nan;
                    double err = rel_err(y.data(), ref.data(), y.size(), &nan);
                    double us = T.median_us(run);
                    double bytes = 2.0 * Hkv * (len - start) * D * 2 + (double)Hq * D * 8;
                    std::snprintf(shape, sizeof shape, "ctx %d%s%s", ctx, window ? " win128" : "",
                                  with_sink ? " sinks" : "");
                    char var[48];
                    std::snprintf(var, sizeof var, "%d splits%s", ns ? ns : ns_auto, ns ? "" : " (auto)");
                    add_row("attn", shape, var, us, bytes, true, err, nan);
                }
                if (with_sink && !window) { /* in a CUDA graph, rotating over cache copies */
                    const size_t cb = (size_t)Hkv * cap * D * 2;
                    const int copies = rotate_copies(2.0 * cb), n = std::max(copies, 8);
                    uint16_t *rk, *rv;
                    CK(cudaMalloc(&rk, cb * copies));
                    CK(cudaMalloc(&rv, cb * copies));
                    for (int c = 0; c < copies; c++) {
                        CK(cudaMemcpy((char *)rk + cb * c, dk, cb, cudaMemcpyDeviceToDevice));
                        CK(cudaMemcpy((char *)rv + cb * c, dv, cb, cudaMemcpyDeviceToDevice));
                    }
                    CK(cudaMemset(dout, 0xff, q.size() * 4));
                    CK(cudaDeviceSynchronize());
                    double us = T.graph_us([&](cudaStream_t st, int i) {
                        size_t off = (size_t)(i % copies) * Hkv * cap * D;
                        CKD(dpb_cuda_attn_decode(dq, rk + off, rv + off, ds, dout, Hq, Hkv, D, cap, len, 0, scale, 0, work,
                                                 st));
                    }, n);
                    CK(cudaMemcpy(y.data(), dout, y.size() * 4, cudaMemcpyDeviceToHost));
                    bool nan;
                    double err = rel_err(y.data(), ref.data(), y.size(), &nan);
                    double bytes = 2.0 * Hkv * len * D * 2 + (double)Hq * D * 8;
                    std::snprintf(shape, sizeof shape, "ctx %d sinks", ctx);
                    char var[64];
                    std::snprintf(var, sizeof var, "%d splits graph×%d", ns_auto, n);
                    add_row("attn", shape, var, us, bytes, true, err, nan);
                    CK(cudaFree(rk));
                    CK(cudaFree(rv));
                }
            }
        }
        CK(cudaFree(dk));
        CK(cudaFree(dv));
    }
    for (void *p : std::initializer_list<void *>{dq, ds, dout, work}) CK(cudaFree(p));
}

/* ------------------------------------------------ grouped MXFP4 MoE --
 * dpb_cuda_moe_grouped (the whole op: sort, x to f16, gate_up + SwiGLU,
 * act to f16, down + bias, combine) at n tokens with k=4 random routing,
 * next to today's paths: kernels A/B in chunks of 8 tokens (the n <= 31
 * path) and a model of the backend's moe_prefill (per active expert:
 * dequantize to bf16, cuBLAS gate_up hi + lo, SwiGLU, cuBLAS down hi + lo;
 * without its sort, host sync, gather and combine, so a lower bound of its
 * time).  Checked against the CPU for n <= 16, else against the A/B chunks
 * (checked against the CPU in the moe rows).  GB/s: MXFP4 bytes of the
 * distinct experts touched / time. */
__global__ void lab_dequant_mx(const uint8_t *__restrict__ b, const uint8_t *__restrict__ s, size_t n8,
                               uint4 *__restrict__ out)
{
    __shared__ float lut[16];
    if (threadIdx.x < 16) lut[threadIdx.x] = kFp4d[threadIdx.x];
    __syncthreads();
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n8; i += (size_t)gridDim.x * blockDim.x) {
        const float sc = ldexpf(1.f, (int)s[i >> 2] - 127);
        uint32_t w[4];
        for (int j = 0; j < 4; j++) {
            const uint8_t by = b[i * 4 + j];
            const float lo = lut[by & 15] * sc, hi = lut[by >> 4] * sc;
            w[j] = (__float_as_uint(lo) >> 16) | (__float_as_uint(hi) & 0xffff0000u);
        }
        out[i] = make_uint4(w[0], w[1], w[2], w[3]);
    }
}
__global__ void lab_gather_hilo(const float *__restrict__ x, const int32_t *__restrict__ tok, size_t rows, int H,
                                uint16_t *__restrict__ hi, uint16_t *__restrict__ lo)
{
    for (size_t q = blockIdx.x * (size_t)blockDim.x + threadIdx.x; q < rows * H; q += (size_t)gridDim.x * blockDim.x) {
        const float v = x[(size_t)tok[q / H] * H + q % H];
        const uint32_t u = __float_as_uint(v) & 0xffff0000u;
        hi[q] = (uint16_t)(u >> 16);
        lo[q] = (uint16_t)(__float_as_uint(v - __uint_as_float(u)) >> 16);
    }
}
__global__ void lab_swiglu_hilo(const float *__restrict__ gu, size_t rows, int I, uint16_t *__restrict__ hi,
                                uint16_t *__restrict__ lo)
{
    for (size_t q = blockIdx.x * (size_t)blockDim.x + threadIdx.x; q < rows * I; q += (size_t)gridDim.x * blockDim.x) {
        const size_t r = q / I, i = q % I;
        float g = fminf(gu[r * 2 * I + 2 * i], 7.f), u = fminf(fmaxf(gu[r * 2 * I + 2 * i + 1], -7.f), 7.f);
        const float v = g / (1.f + expf(-1.702f * g)) * (u + 1.f);
        const uint32_t b = __float_as_uint(v) & 0xffff0000u;
        hi[q] = (uint16_t)(b >> 16);
        lo[q] = (uint16_t)(__float_as_uint(v - __uint_as_float(b)) >> 16);
    }
}

static void bench_moe_grouped(Timer &T, cublasHandle_t cb, bool quick)
{
    const int E = 32, k = 4, H = 2880, I = 2880, nbH = H / 32, nbI = I / 32;
    const float alpha = 1.702f, limit = 7.f;
    std::vector<int> Ns = quick ? std::vector<int>{8, 64, 256} : std::vector<int>{1, 8, 16, 24, 32, 64, 256, 2048};
    if (const char *ev = std::getenv("LAB_GRP_N")) { /* LAB_GRP_N=64,256: these n only (ascending) */
        Ns.clear();
        for (const char *p = ev; *p;) {
            char *end;
            const long v = std::strtol(p, &end, 10);
            if (end == p) break;
            if (v >= 1 && v <= 4096) Ns.push_back((int)v);
            p = *end == ',' ? end + 1 : end;
        }
        if (Ns.empty()) Ns.push_back(64);
    }
    const int Nmax = std::max(Ns.back(), 24);
    std::fprintf(stderr, "moe grouped E=%d k=%d H=%d I=%d\n", E, k, H, I);
    std::vector<uint8_t> gub((size_t)E * 2 * I * nbH * 16), gus((size_t)E * 2 * I * nbH);
    std::vector<uint8_t> db((size_t)E * H * nbI * 16), ds((size_t)E * H * nbI);
    fill_mx(gub, gus, 119, 125);
    fill_mx(db, ds, 119, 125);
    std::vector<uint16_t> gubias((size_t)E * 2 * I), dbias((size_t)E * H);
    fill_bf16(gubias, 1.f);
    fill_bf16(dbias, 1.f);
    std::vector<float> x((size_t)Nmax * H), wts((size_t)Nmax * k);
    fill_f32(x, -1.f, 1.f);
    std::vector<int32_t> ids((size_t)Nmax * k);
    random_routing(ids, wts, Nmax, k, E, true);
    uint8_t *dgub, *dgus, *ddb, *dds;
    uint16_t *dgubias, *ddbias;
    float *dx, *dwts, *dout, *dout2, *dzero, *dact;
    int32_t *dids;
    void *work;
    size_t wbytes = 0;
    CKD(dpb_cuda_moe_grouped_work_bytes(Nmax, k, E, H, I, 0, &wbytes));
    for (int v : {32, 64, 128}) {
        size_t b2 = 0;
        CKD(dpb_cuda_moe_grouped_work_bytes(Nmax, k, E, H, I, v, &b2));
        wbytes = std::max(wbytes, b2);
    }
    CK(cudaMalloc(&dgub, gub.size()));
    CK(cudaMalloc(&dgus, gus.size()));
    CK(cudaMalloc(&ddb, db.size()));
    CK(cudaMalloc(&dds, ds.size()));
    CK(cudaMalloc(&dgubias, gubias.size() * 2));
    CK(cudaMalloc(&ddbias, dbias.size() * 2));
    CK(cudaMalloc(&dx, x.size() * 4));
    CK(cudaMalloc(&dwts, wts.size() * 4));
    CK(cudaMalloc(&dids, ids.size() * 4));
    CK(cudaMalloc(&dout, x.size() * 4));
    CK(cudaMalloc(&dout2, x.size() * 4));
    CK(cudaMalloc(&dzero, (size_t)8 * H * 4));
    CK(cudaMalloc(&dact, (size_t)8 * k * I * 4));
    CK(cudaMalloc(&work, wbytes));
    CK(cudaMemset(dzero, 0, (size_t)8 * H * 4));
    CK(cudaMemcpy(dgub, gub.data(), gub.size(), cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dgus, gus.data(), gus.size(), cudaMemcpyHostToDevice));
    CK(cudaMemcpy(ddb, db.data(), db.size(), cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dds, ds.data(), ds.size(), cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dgubias, gubias.data(), gubias.size() * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(ddbias, dbias.data(), dbias.size() * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dx, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dwts, wts.data(), wts.size() * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dids, ids.data(), ids.size() * 4, cudaMemcpyHostToDevice));
    /* the moe_prefill model's buffers */
    uint16_t *wg, *xh, *xl, *ah, *al;
    float *GU, *DN;
    int32_t *dtok;
    CK(cudaMalloc(&wg, ((size_t)2 * I * H + (size_t)H * I) * 2));
    CK(cudaMalloc(&xh, (size_t)Nmax * k * H * 2));
    CK(cudaMalloc(&xl, (size_t)Nmax * k * H * 2));
    CK(cudaMalloc(&ah, (size_t)Nmax * k * I * 2));
    CK(cudaMalloc(&al, (size_t)Nmax * k * I * 2));
    CK(cudaMalloc(&GU, (size_t)Nmax * k * 2 * I * 4));
    CK(cudaMalloc(&DN, (size_t)Nmax * k * H * 4));
    CK(cudaMalloc(&dtok, (size_t)Nmax * k * 4));
    const double exp_bytes = (double)2 * I * nbH * 17 + (double)H * nbI * 17; /* one expert's blocks + scales */
    /* x rounded to bf16 (the bf16 engine's rows) for the rnd rows */
    float *dxb;
    {
        std::vector<float> xb(x);
        for (float &v : xb) {
            uint32_t u;
            std::memcpy(&u, &v, 4);
            u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
            std::memcpy(&v, &u, 4);
        }
        CK(cudaMalloc(&dxb, xb.size() * 4));
        CK(cudaMemcpy(dxb, xb.data(), xb.size() * 4, cudaMemcpyHostToDevice));
    }
    auto run_grouped = [&](int n, int variant, float *o, cudaStream_t st, int rnd = 0) {
        CKD(dpb_cuda_moe_grouped(nullptr, dgub, dgus, ddb, dds, dgubias, ddbias, rnd ? dxb : dx, dids, dwts, o, n, k, E, H, I,
                                 alpha, limit, rnd, variant, work, wbytes, st));
    };
    auto run_chunks = [&](int n, float *o, int rnd = 0) {
        for (int t0 = 0; t0 < n; t0 += 8) {
            const int M = std::min(8, n - t0);
            CKD(dpb_cuda_moe_gate_up_swiglu_ex(dgub, dgus, nullptr, nullptr, dgubias, (rnd ? dxb : dx) + (size_t)t0 * H, dids + t0 * k, dact,
                                               M, k, E, H, I, alpha, limit, rnd, 0, 0));
            CKD(dpb_cuda_moe_down_sum_ex(ddb, dds, nullptr, nullptr, ddbias, dact, dids + t0 * k, dwts + t0 * k, dzero,
                                         o + (size_t)t0 * H, M, k, E, H, I, rnd, 0, 0));
        }
    };
    for (int n : Ns) {
        /* per-expert rows, sorted (host side: the model knows the counts without a sync) */
        std::vector<std::vector<int>> rows(E);
        for (int p = 0; p < n * k; p++) rows[ids[p]].push_back(p / k);
        std::vector<int32_t> tok;
        int distinct = 0;
        for (int e = 0; e < E; e++) {
            distinct += !rows[e].empty();
            tok.insert(tok.end(), rows[e].begin(), rows[e].end());
        }
        CK(cudaMemcpy(dtok, tok.data(), tok.size() * 4, cudaMemcpyHostToDevice));
        const double bytes = distinct * exp_bytes;
        const double flops = 2.0 * n * k * (2.0 * I * H + (double)H * I);
        char shape[96], var[96], note[96];
        std::snprintf(shape, sizeof shape, "n=%d (%d experts)", n, distinct);
        /* reference: CPU for small n, else the A/B chunks */
        std::vector<double> ref((size_t)n * H);
        bool cpu = n <= 16;
        if (cpu) {
            std::vector<double> a((size_t)n * k * I);
#pragma omp parallel for schedule(static)
            for (int pj = 0; pj < n * k * I; pj++) {
                const int p = pj / I, j = pj % I, m = p / k, e = ids[p];
                double g = 0, u = 0;
                const size_t rg = (size_t)e * 2 * I + 2 * (size_t)j;
                for (int c = 0; c < H; c++) {
                    g += mx_w(gub, gus, rg, H, c) * x[(size_t)m * H + c];
                    u += mx_w(gub, gus, rg + 1, H, c) * x[(size_t)m * H + c];
                }
                g = std::min(g + bf2f(gubias[rg]), (double)limit);
                u = std::max(std::min(u + bf2f(gubias[rg + 1]), (double)limit), -(double)limit);
                a[pj] = g / (1.0 + std::exp(-(double)alpha * g)) * (u + 1.0);
            }
#pragma omp parallel for schedule(static)
            for (int mh = 0; mh < n * H; mh++) {
                const int m = mh / H, h = mh % H;
                double s = 0;
                for (int ei = 0; ei < k; ei++) {
                    const int p = m * k + ei, e = ids[p];
                    const size_t row = (size_t)e * H + h;
                    double d = bf2f(dbias[row]);
                    for (int c = 0; c < I; c++) d += mx_w(db, ds, row, I, c) * a[(size_t)p * I + c];
                    s += wts[p] * d;
                }
                ref[mh] = s;
            }
        }
        std::vector<float> y((size_t)n * H);
        /* today's chunks of 8 */
        CK(cudaMemset(dout2, 0xff, (size_t)n * H * 4));
        run_chunks(n, dout2);
        CK(cudaDeviceSynchronize());
        CK(cudaMemcpy(y.data(), dout2, y.size() * 4, cudaMemcpyDeviceToHost));
        double e2 = 0;
        bool nn2 = false;
        if (cpu) e2 = rel_err(y.data(), ref.data(), y.size(), &nn2);
        else for (size_t i = 0; i < y.size(); i++) ref[i] = y[i];
        double us = T.median_us([&] { run_chunks(n, dout2); });
        std::snprintf(var, sizeof var, "A/B chunks of 8 (%d)", (n + 7) / 8);
        add_row("moe n>8", shape, var, us, bytes, cpu, e2, nn2);
        const double us_old = us;
        /* grouped: auto, and each token tile */
        const int B1 = DPB_CUDA_MOE_GROUPED_BM128, B2 = DPB_CUDA_MOE_GROUPED_BM256;
        const int W2 = DPB_CUDA_MOE_GROUPED_W32;
        const int WG = DPB_CUDA_MOE_GROUPED_WG, MM = DPB_CUDA_MOE_GROUPED_MMA;
        /* LAB_GRP_SHORT=1: auto, the wgmma kernel and the mma.sync auto choice only */
        const bool short_list = std::getenv("LAB_GRP_SHORT") && std::getenv("LAB_GRP_SHORT")[0] == '1';
        const int WD = DPB_CUDA_MOE_GROUPED_WGDEEP, WS = DPB_CUDA_MOE_GROUPED_WGSHALLOW, WF = DPB_CUDA_MOE_GROUPED_WGF32;
        const int WN = DPB_CUDA_MOE_GROUPED_WGMERGE;
        const int WFI = DPB_CUDA_MOE_GROUPED_WGFINE, W256 = DPB_CUDA_MOE_GROUPED_WG256, W192 = DPB_CUDA_MOE_GROUPED_WG192;
        const int WF8 = DPB_CUDA_MOE_GROUPED_WGFINE8;
        const int WL = DPB_CUDA_MOE_GROUPED_WGLPT, WC = DPB_CUDA_MOE_GROUPED_WGCOARSE;
        std::vector<int> variants = {0, WG | WC, WG | WFI, WG | WFI | WL, WG | WF8, WG | WF8 | WL, WG | W256, WG | W256 | WFI, WG | W256 | WFI | WL,
                                     WG | W192, WG | WN, WG | WD, WG | WF, MM};
        if (!short_list)
            for (int v : {32 | B1, 64 | B1, 128 | B1, 32 | B1 | W2, 64 | B1 | W2, 128 | B1 | W2, 64 | B2, 64 | B2 | W2}) variants.push_back(v);
        for (int variant : variants) {
            CK(cudaMemset(dout, 0xff, (size_t)n * H * 4));
            run_grouped(n, variant, dout, 0);
            CK(cudaDeviceSynchronize());
            CK(cudaMemcpy(y.data(), dout, y.size() * 4, cudaMemcpyDeviceToHost));
            bool nn = false;
            const double e = rel_err(y.data(), ref.data(), y.size(), &nn);
            us = T.median_us([&] { run_grouped(n, variant, dout, 0); });
            if (variant == 0) std::snprintf(var, sizeof var, "grouped auto");
            else if (variant & WG)
                std::snprintf(var, sizeof var, (variant & WL) ? "grouped wgmma, longest first%s" : "grouped wgmma%s",
                              (variant & WS) ? ", 4 stages" : (variant & WD) ? ", 5 stages" : (variant & WF) ? ", act via f32 + prep"
                              : (variant & WN) ? ", remainders merged" : (variant & W256) ? ((variant & WFI) ? ", 256 rows/block, 6 stages, widths by 16" : ", 256 rows/block, 6 stages")
                              : (variant & WFI) ? ", widths by 16" : (variant & WF8) ? ", widths by 8" : (variant & W192) ? ", 192 rows/block, tiles <= 192"
                              : (variant & WC) ? ", widths 32/64/128 (session 5)" : "");
            else if (variant == MM) std::snprintf(var, sizeof var, "grouped mma.sync auto (before session 5)");
            else std::snprintf(var, sizeof var, "grouped %d tok x %d rows%s", variant & 0xff, (variant & B2) ? 256 : 128,
                               (variant & W2) ? ", 32 rows/warp" : "");
            std::snprintf(note, sizeof note, "%.2fx vs chunks; %.0f TFLOP/s%s", us_old / us, flops / (us * 1e6),
                          cpu ? "" : "; err vs A/B chunks");
            add_row("moe n>8", shape, var, us, bytes, true, e, nn, note);
        }
        if (!dpb_cuda_grpwg_available()) std::fprintf(stderr, "note: no sm_90a wgmma kernels here: the wgmma rows ran mma.sync\n");
        /* rnd (the bf16 engine's roundings: gate, up, act, each expert's output; the wgmma path then stores dn as bf16)
         * against the A/B chunks with rnd; x rounded to bf16 first as the engine's are */
        {
            std::vector<float> yr((size_t)n * H);
            CK(cudaMemset(dout2, 0xff, (size_t)n * H * 4));
            run_chunks(n, dout2, 1);
            CK(cudaDeviceSynchronize());
            CK(cudaMemcpy(yr.data(), dout2, yr.size() * 4, cudaMemcpyDeviceToHost));
            std::vector<double> rr(yr.begin(), yr.end());
            for (int v : {0, MM}) {
                CK(cudaMemset(dout, 0xff, (size_t)n * H * 4));
                run_grouped(n, v, dout, 0, 1);
                CK(cudaDeviceSynchronize());
                CK(cudaMemcpy(y.data(), dout, y.size() * 4, cudaMemcpyDeviceToHost));
                bool nn = false;
                const double e = rel_err(y.data(), rr.data(), y.size(), &nn);
                us = T.median_us([&] { run_grouped(n, v, dout, 0, 1); });
                /* not a check: with rnd, A/B (f32 x) and the grouped kernels (f16 x) flip some bf16 roundings of gate / up /
                 * act differently; mma.sync and wgmma differ from A/B alike (1.2e-2 at n >= 256, 2026-11-26); the
                 * backend's op checks compare rnd with the CPU reference */
                char nt[96];
                std::snprintf(nt, sizeof nt, "err vs A/B chunks with rnd %.1e (not a check)%s", e, nn ? "; NaN" : "");
                add_row("moe n>8", shape, v ? "grouped mma.sync, rnd, x bf16 (bf16 engine)" : "grouped auto, rnd, x bf16 (bf16 engine)",
                        us, bytes, false, 0, nn, nt);
            }
        }
        /* in a CUDA graph (no host sync inside): 4 launches */
        us = T.graph_us([&](cudaStream_t st, int) { run_grouped(n, 0, dout, st); }, 4);
        add_row("moe n>8", shape, "grouped auto graph×4", us, bytes, false, 0, false);
        /* the dequant + cuBLAS model (timing only) */
        if (n >= 16) {
            const size_t P = tok.size();
            const float one = 1.f, zero = 0.f;
            bool lo_parts = true;
            auto run_model = [&] {
                lab_gather_hilo<<<1024, 256>>>(dx, dtok, P, H, xh, xl);
                size_t r0 = 0;
                for (int e = 0; e < E; e++) {
                    const int c = (int)rows[e].size();
                    if (!c) continue;
                    lab_dequant_mx<<<2048, 256>>>(dgub + (size_t)e * 2 * I * nbH * 16, dgus + (size_t)e * 2 * I * nbH,
                                                  (size_t)2 * I * H / 8, reinterpret_cast<uint4 *>(wg));
                    lab_dequant_mx<<<2048, 256>>>(ddb + (size_t)e * H * nbI * 16, dds + (size_t)e * H * nbI, (size_t)H * I / 8,
                                                  reinterpret_cast<uint4 *>(wg + (size_t)2 * I * H));
                    for (int part = 0; part < (lo_parts ? 2 : 1); part++)
                        CKB(cublasGemmEx(cb, CUBLAS_OP_T, CUBLAS_OP_N, 2 * I, c, H, &one, wg, CUDA_R_16BF, H,
                                         (part ? xl : xh) + r0 * H, CUDA_R_16BF, H, part ? &one : &zero, GU, CUDA_R_32F,
                                         2 * I, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
                    lab_swiglu_hilo<<<1024, 256>>>(GU, (size_t)c, I, ah + r0 * I, al + r0 * I);
                    for (int part = 0; part < (lo_parts ? 2 : 1); part++)
                        CKB(cublasGemmEx(cb, CUBLAS_OP_T, CUBLAS_OP_N, H, c, I, &one, wg + (size_t)2 * I * H, CUDA_R_16BF, I,
                                         (part ? al : ah) + r0 * I, CUDA_R_16BF, I, part ? &one : &zero, DN + r0 * H,
                                         CUDA_R_32F, H, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
                    r0 += (size_t)c;
                }
            };
            us = T.median_us(run_model);
            std::snprintf(note, sizeof note, "lower bound of moe_prefill (no sort/sync/combine)");
            add_row("moe n>8", shape, "dequant+cuBLAS model, f32 x (hi+lo)", us, bytes, false, 0, false, note);
            lo_parts = false;
            us = T.median_us(run_model);
            add_row("moe n>8", shape, "dequant+cuBLAS model, bf16 x", us, bytes, false, 0, false, note);
        }
    }
    /* scales outside [104, 128] in some tiles: the grouped kernels' exact
     * fp32 path for those tiles (checked against the A/B chunks) */
    {
        fill_mx(gub, gus, 98, 126);
        fill_mx(db, ds, 98, 126);
        CK(cudaMemcpy(dgub, gub.data(), gub.size(), cudaMemcpyHostToDevice));
        CK(cudaMemcpy(dgus, gus.data(), gus.size(), cudaMemcpyHostToDevice));
        CK(cudaMemcpy(ddb, db.data(), db.size(), cudaMemcpyHostToDevice));
        CK(cudaMemcpy(dds, ds.data(), ds.size(), cudaMemcpyHostToDevice));
        for (int n : {24, std::min(300, Nmax)}) {
            std::vector<float> y((size_t)n * H), yr((size_t)n * H);
            run_chunks(n, dout2);
            CK(cudaMemset(dout, 0xff, (size_t)n * H * 4));
            run_grouped(n, DPB_CUDA_MOE_GROUPED_MMA, dout, 0);
            CK(cudaDeviceSynchronize());
            CK(cudaMemcpy(yr.data(), dout2, yr.size() * 4, cudaMemcpyDeviceToHost));
            CK(cudaMemcpy(y.data(), dout, y.size() * 4, cudaMemcpyDeviceToHost));
            std::vector<double> ref(yr.begin(), yr.end());
            bool nn = false;
            const double e = rel_err(y.data(), ref.data(), y.size(), &nn);
            const double us = T.median_us([&] { run_grouped(n, DPB_CUDA_MOE_GROUPED_MMA, dout, 0); });
            char shape[64];
            std::snprintf(shape, sizeof shape, "n=%d scales 2^-29..2^-1", n);
            add_row("moe n>8", shape, "grouped mma.sync (fp32 scale path)", us, 32 * exp_bytes, true, e, nn, "err vs A/B chunks");
            CK(cudaMemset(dout, 0xff, (size_t)n * H * 4));
            run_grouped(n, 0, dout, 0);
            CK(cudaDeviceSynchronize());
            CK(cudaMemcpy(y.data(), dout, y.size() * 4, cudaMemcpyDeviceToHost));
            bool nn4 = false;
            const double e4 = rel_err(y.data(), ref.data(), y.size(), &nn4);
            const double us4 = T.median_us([&] { run_grouped(n, 0, dout, 0); });
            add_row("moe n>8", shape, "grouped auto", us4, 32 * exp_bytes, true, e4, nn4, "err vs A/B chunks");
            /* the wgmma kernel: per-row scale offsets (exact within 2^22 of the row's largest scale) */
            CK(cudaMemset(dout, 0xff, (size_t)n * H * 4));
            run_grouped(n, DPB_CUDA_MOE_GROUPED_WG | DPB_CUDA_MOE_GROUPED_WGDEEP, dout, 0);
            CK(cudaDeviceSynchronize());
            CK(cudaMemcpy(y.data(), dout, y.size() * 4, cudaMemcpyDeviceToHost));
            bool nn3 = false;
            const double e3 = rel_err(y.data(), ref.data(), y.size(), &nn3);
            const double us3 = T.median_us([&] { run_grouped(n, DPB_CUDA_MOE_GROUPED_WG | DPB_CUDA_MOE_GROUPED_WGDEEP, dout, 0); });
            add_row("moe n>8", shape, "grouped wgmma, 5 stages", us3, 32 * exp_bytes, true, e3, nn3, "err vs A/B chunks");
        }
    }
    for (void *p : std::initializer_list<void *>{dgub, dgus, ddb, dds, dgubias, ddbias, dx, dwts, dids, dout, dout2, dzero,
                                                 dact, work, wg, xh, xl, ah, al, GU, DN, dtok, dxb})
        CK(cudaFree(p));
}

/* --------------------------------------------------------------- main -- */
int main(int argc, char **argv)
{
    bool quick = false;
    int reps = 25;
    std::string only;
    for (int i = 1; i < argc; i++) {
        if (!std::strcmp(argv[i], "--quick")) quick = true;
        else if (!std::strcmp(argv[i], "--seed") && i + 1 < argc) g_rng = std::strtoull(argv[++i], nullptr, 0);
        else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) reps = std::atoi(argv[++i]);
        else if (!std::strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else {
            std::fprintf(stderr,
                         "usage: lab [--quick] [--seed N] [--reps N] [--only GROUPS]\n"
                         "  --quick   small shapes only (lm_head, M>1 and 32k context left out)\n"
                         "  --seed N  random seed for the inputs (default: time based)\n"
                         "  --reps N  timed runs per kernel, median reported (default 25, at least 20 advised)\n"
                         "  --only G  comma-separated subset of gemv,router,moe,moesmall,moegrouped,norm,attn (the copy rows always run)\n");
            return 2;
        }
    }
    if (g_rng == 0x9e3779b97f4a7c15ull) {
        timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        g_rng ^= (uint64_t)ts.tv_nsec * 0x2545f4914f6cdd1dull + (uint64_t)ts.tv_sec;
    }
    std::fprintf(stderr, "lab: seed 0x%llx\n", (unsigned long long)g_rng);
    if (reps < 1) reps = 1;
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    char dev[512];
    std::snprintf(dev, sizeof dev, "%s (%d SMs, L2 %d MiB, %.0f GiB)", prop.name, prop.multiProcessorCount,
                  prop.l2CacheSize >> 20, prop.totalGlobalMem / 1073741824.0);
    std::fprintf(stderr, "lab: %s\n", dev);
    Timer T;
    T.reps = reps;
    cublasHandle_t cb;
    CKB(cublasCreate(&cb));
    CK(cudaMalloc(&g_cbws, g_cbws_bytes));
    cublas_on(cb, 0);

    bench_copy(T);
    std::vector<int> Ms = quick ? std::vector<int>{1} : std::vector<int>{1, 2, 4, 8};
    std::vector<GemvShape> shapes = {{"qkv", 5120, 2880}, {"q", 4096, 2880}, {"o", 2880, 4096}, {"k", 512, 2880},
                                     {"router", 32, 2880}};
    if (!quick) shapes.insert(shapes.begin(), GemvShape{"lm_head", 201088, 2880});
    auto want = [&](const char *g) { return only.empty() || ("," + only + ",").find(std::string(",") + g + ",") != std::string::npos; };
    if (want("gemv"))
        for (auto &s : shapes) bench_gemv(T, cb, s, Ms, true);
    if (want("router")) bench_router(T, Ms);
    if (want("moe")) bench_moe(T, Ms);
    if (want("moesmall")) check_moe_small();
    if (want("moegrouped")) bench_moe_grouped(T, cb, quick);
    if (want("norm")) bench_addnorm(T);
    if (want("attn")) bench_attn(T, quick ? std::vector<int>{128, 2048} : std::vector<int>{128, 2048, 8192, 32768});

    CKB(cublasDestroy(cb));
    print_table(dev);
    return g_fail ? 1 : 0;
}
