/* Prefill GEMM bench (issue 5, TTFT): what cuBLAS / cuBLASLt give for the prefill shapes of the dense models
 * and gpt-oss's attention projections at M = 2048 tokens, bf16 operands, fp32 accumulation.
 *   ex        cublasGemmEx, fp32 C, default algorithm (the backend before)
 *   lt0       cuBLASLt, fp32 C, the heuristic's first algorithm, 64 MiB workspace
 *   lt-best   cuBLASLt, fp32 C, the fastest of the heuristic's first 8 (what DPB_CUDA_GEMM=tune picks)
 *   lt-bf16   cuBLASLt, bf16 C, the fastest of 8 (a GEMM writing bf16 directly)
 * Also one pass of each elementwise shape prefill runs per layer (fp32 -> bf16 of 2048 x N).
 * Build (development machine): nvcc -O3 -std=c++17 -gencode arch=compute_90,code=sm_90 dev/cuda/pf_bench.cu \
 *   -lcublasLt -o build/pf_bench
 * Run: build/pf_bench [M] [quant]   (quant: only the wave-quantization table of quant_bench; prints a Markdown table; TFLOP/s against the 797 measured on the H200) */
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <algorithm>
#include <vector>

#define CK(x)                                                                                   \
    do {                                                                                        \
        cudaError_t e_ = (x);                                                                   \
        if (e_ != cudaSuccess) {                                                                \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
            exit(2);                                                                            \
        }                                                                                       \
    } while (0)

struct shape {
    const char *model, *name;
    int out, in;
};

static const shape kShapes[] = {
    {"qwen3-32b", "q", 8192, 5120},       {"qwen3-32b", "k / v", 1024, 5120},  {"qwen3-32b", "qkv merged", 10240, 5120},
    {"qwen3-32b", "o", 5120, 8192},       {"qwen3-32b", "gate / up", 25600, 5120},
    {"qwen3-32b", "gate+up merged", 51200, 5120},                              {"qwen3-32b", "down", 5120, 25600},
    {"yi-34b", "q / o", 7168, 7168},      {"yi-34b", "k / v", 1024, 7168},     {"yi-34b", "gate / up", 20480, 7168},
    {"yi-34b", "down", 7168, 20480},      {"gpt-oss-20b", "q", 4096, 2880},    {"gpt-oss-20b", "k / v", 512, 2880},
    {"gpt-oss-20b", "o", 2880, 4096},
};

__global__ void k_fill(uint16_t *p, size_t n, uint32_t seed)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint32_t h = (uint32_t)i * 2654435761u ^ seed;
        h ^= h >> 13;
        h *= 0x5bd1e995u;
        h ^= h >> 15;
        float f = ((float)(h & 0xffff) / 65536.0f - 0.5f) * 0.1f;
        p[i] = (uint16_t)(__float_as_uint(f) >> 16);
    }
}
__global__ void k_split(const float *__restrict__ x, size_t n, uint16_t *__restrict__ hi)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        hi[i] = (uint16_t)(__float_as_uint(x[i]) >> 16);
}

static cublasLtHandle_t g_lt;
static void *g_ws;
static const size_t kWs = (size_t)64 << 20;
static cudaEvent_t g_e0, g_e1;

/* average ms of reps launches */
template <class F> static float timeit(F f, int reps)
{
    f();
    CK(cudaDeviceSynchronize());
    CK(cudaEventRecord(g_e0));
    for (int r = 0; r < reps; r++) f();
    CK(cudaEventRecord(g_e1));
    CK(cudaEventSynchronize(g_e1));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, g_e0, g_e1));
    return ms / reps;
}

/* C[m, n] = W^T-ish: the backend's call: opA = T on W [out, in] row-major (column-major [in, out]), B = X [in, n] */
static float lt_time(int m, int n, int k, const void *A, const void *B, void *C, cudaDataType_t ct, int which, int reps,
                     int *nalgo)
{
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
    cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, k, m, k);
    cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, k, n, k);
    cublasLtMatrixLayoutCreate(&lc, ct, m, n, m);
    cublasLtMatmulPreference_t pref;
    cublasLtMatmulPreferenceCreate(&pref);
    uint64_t wsb = kWs;
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb, sizeof wsb);
    cublasLtMatmulHeuristicResult_t res[8];
    int got = 0;
    cublasLtMatmulAlgoGetHeuristic(g_lt, op, la, lb, lc, lc, pref, 8, res, &got);
    *nalgo = got;
    float best = 1e30f;
    const float one = 1.f, zero = 0.f;
    for (int i = 0; i < got; i++) {
        if (which == 0 && i > 0) break;
        if (cublasLtMatmul(g_lt, op, &one, A, la, B, lb, &zero, C, lc, C, lc, &res[i].algo, g_ws, kWs, 0) !=
            CUBLAS_STATUS_SUCCESS)
            continue;
        float ms = timeit([&] { cublasLtMatmul(g_lt, op, &one, A, la, B, lb, &zero, C, lc, C, lc, &res[i].algo, g_ws, kWs, 0); },
                          reps);
        if (ms < best) best = ms;
    }
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatrixLayoutDestroy(la);
    cublasLtMatrixLayoutDestroy(lb);
    cublasLtMatrixLayoutDestroy(lc);
    cublasLtMatmulDescDestroy(op);
    return best;
}

/* Session 5 (helper pfd): wave quantization.  lt0 against (a) the fastest of up to 32 heuristic candidates and
 * (b) the GEMM split by output rows (weight rows) into two halves run at once on two streams (own workspaces),
 * so that the second half's tiles fill the multiprocessors the first leaves idle in its last wave. */
struct lt_one {
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulHeuristicResult_t res[32];
    int got;
};
static void lt_make(lt_one &o, int m, int n, int k, int ldc, int want)
{
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    cublasLtMatmulDescCreate(&o.op, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    cublasLtMatmulDescSetAttribute(o.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    cublasLtMatmulDescSetAttribute(o.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
    cublasLtMatrixLayoutCreate(&o.la, CUDA_R_16BF, k, m, k);
    cublasLtMatrixLayoutCreate(&o.lb, CUDA_R_16BF, k, n, k);
    cublasLtMatrixLayoutCreate(&o.lc, CUDA_R_32F, m, n, ldc);
    cublasLtMatmulPreference_t pref;
    cublasLtMatmulPreferenceCreate(&pref);
    uint64_t wsb = kWs / 2;
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb, sizeof wsb);
    o.got = 0;
    cublasLtMatmulAlgoGetHeuristic(g_lt, o.op, o.la, o.lb, o.lc, o.lc, pref, want, o.res, &o.got);
    cublasLtMatmulPreferenceDestroy(pref);
}
static void quant_bench(int M, const uint16_t *W, const uint16_t *X, float *C)
{
    struct qs { const char *model, *name; int out, in; };
    const qs q[] = {{"yi-34b", "q / o", 7168, 7168}, {"yi-34b", "down", 7168, 20480}, {"yi-34b", "k / v", 1024, 7168},
                    {"yi-34b", "gate / up", 20480, 7168}, {"qwen3-32b", "q", 8192, 5120}, {"qwen3-32b", "o", 5120, 8192},
                    {"qwen3-32b", "down", 5120, 25600}, {"qwen3-32b", "gate / up", 25600, 5120},
                    {"gpt-oss-20b", "q", 4096, 2880}, {"gpt-oss-20b", "o", 2880, 4096}};
    cudaStream_t s1, s2;
    cudaEvent_t ef, ej;
    CK(cudaStreamCreateWithFlags(&s1, cudaStreamNonBlocking));
    CK(cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking));
    CK(cudaEventCreateWithFlags(&ef, cudaEventDisableTiming));
    CK(cudaEventCreateWithFlags(&ej, cudaEventDisableTiming));
    char *ws2 = static_cast<char *>(g_ws) + kWs / 2;
    printf("\n| model | matrix | GFLOP | lt0 ms (TFLOP/s) | best of 32 ms (TFLOP/s, index) | 2 halves on 2 streams ms (TFLOP/s) | "
           "2 halves, best of 32 each ms |\n|---|---|---:|---:|---:|---:|---:|\n");
    for (const qs &s : q) {
        const int m = s.out, k = s.in, n = M, h = m / 2;
        const double gf = 2.0 * m * (double)n * k / 1e9;
        const int reps = gf > 200 ? 5 : 20;
        const float one = 1.f, zero = 0.f;
        lt_one full, half;
        lt_make(full, m, n, k, m, 32);
        lt_make(half, h, n, k, m, 32);
        if (full.got < 1 || half.got < 1) {
            printf("| %s | %s | %.1f | no algorithm | | | |\n", s.model, s.name, gf);
            continue;
        }
        auto run_full = [&](int i) {
            cublasLtMatmul(g_lt, full.op, &one, W, full.la, X, full.lb, &zero, C, full.lc, C, full.lc, &full.res[i].algo,
                           g_ws, kWs / 2, 0);
        };
        float l0 = timeit([&] { run_full(0); }, reps), best = l0;
        int bi = 0;
        for (int i = 1; i < full.got; i++) {
            float t = timeit([&] { run_full(i); }, reps);
            if (t < best) { best = t; bi = i; }
        }
        auto run_split = [&](int ia, int ib) {
            CK(cudaEventRecord(ef, 0));
            CK(cudaStreamWaitEvent(s1, ef, 0));
            CK(cudaStreamWaitEvent(s2, ef, 0));
            cublasLtMatmul(g_lt, half.op, &one, W, half.la, X, half.lb, &zero, C, half.lc, C, half.lc, &half.res[ia].algo,
                           g_ws, kWs / 2, s1);
            cublasLtMatmul(g_lt, half.op, &one, W + (size_t)h * k, half.la, X, half.lb, &zero, C + h, half.lc, C + h,
                           half.lc, &half.res[ib].algo, ws2, kWs / 2, s2);
            CK(cudaEventRecord(ej, s1));
            CK(cudaStreamWaitEvent(0, ej, 0));
            CK(cudaEventRecord(ej, s2));
            CK(cudaStreamWaitEvent(0, ej, 0));
        };
        float sp = timeit([&] { run_split(0, 0); }, reps), spb = sp;
        for (int i = 1; i < half.got && i < 8; i++) {
            float t = timeit([&] { run_split(i, i); }, reps);
            if (t < spb) spb = t;
        }
        printf("| %s | %s | %.1f | %.3f (%.0f) | %.3f (%.0f, #%d of %d) | %.3f (%.0f) | %.3f (%.0f) |\n", s.model, s.name, gf,
               l0, gf / l0, best, gf / best, bi, full.got, sp, gf / sp, spb, gf / spb);
        fflush(stdout);
    }
}

int main(int argc, char **argv)
{
    const int M = argc > 1 ? atoi(argv[1]) : 2048;
    const double peak = 797.0;
    cublasHandle_t h;
    if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS || cublasLtCreate(&g_lt) != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "cublas init failed\n");
        return 2;
    }
    CK(cudaEventCreate(&g_e0));
    CK(cudaEventCreate(&g_e1));
    CK(cudaMalloc(&g_ws, kWs));
    size_t maxw = 0, maxx = 0, maxc = 0;
    for (const shape &s : kShapes) {
        maxw = std::max(maxw, (size_t)s.out * s.in);
        maxx = std::max(maxx, (size_t)M * s.in);
        maxc = std::max(maxc, (size_t)M * s.out);
    }
    uint16_t *W, *X;
    float *C;
    CK(cudaMalloc(&W, maxw * 2));
    CK(cudaMalloc(&X, maxx * 2));
    CK(cudaMalloc(&C, maxc * 4));
    k_fill<<<1024, 256>>>(W, maxw, 1);
    k_fill<<<1024, 256>>>(X, maxx, 2);
    CK(cudaDeviceSynchronize());
    if (argc > 2 && strcmp(argv[2], "quant") == 0) {
        quant_bench(M, W, X, C);
        return 0;
    }
    printf("| model | matrix | M x N x K | GFLOP | ex ms | ex TFLOP/s | lt0 ms | lt-best ms | lt-best TFLOP/s | %% of %.0f | lt-bf16 ms | algos |\n",
           peak);
    printf("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (const shape &s : kShapes) {
        const int m = s.out, k = s.in, n = M;
        const double gf = 2.0 * m * (double)n * k / 1e9;
        const int reps = gf > 200 ? 5 : 20;
        const float one = 1.f, zero = 0.f;
        float ex = timeit([&] {
            cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, W, CUDA_R_16BF, k, X, CUDA_R_16BF, k, &zero, C,
                         CUDA_R_32F, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        }, reps);
        int na = 0, nb = 0;
        float l0 = lt_time(m, n, k, W, X, C, CUDA_R_32F, 0, reps, &na);
        float lb = lt_time(m, n, k, W, X, C, CUDA_R_32F, 1, reps, &na);
        float lh = lt_time(m, n, k, W, X, C, CUDA_R_16BF, 1, reps, &nb);
        printf("| %s | %s | %d x %d x %d | %.1f | %.3f | %.0f | %.3f | %.3f | %.0f | %.0f %% | %.3f | %d/%d |\n", s.model,
               s.name, n, m, k, gf, ex, gf / ex, l0, lb, gf / lb, 100.0 * gf / lb / peak, lh, na, nb);
        fflush(stdout);
    }
    /* elementwise: fp32 -> bf16 of M x N (read 4, write 2 bytes an element) */
    printf("\n| pass | elements | us | GB/s |\n|---|---:|---:|---:|\n");
    for (int N : {2880, 5120, 7168, 8192, 20480, 25600}) {
        const size_t el = (size_t)M * N;
        float *xf;
        uint16_t *hb;
        CK(cudaMalloc(&xf, el * 4));
        CK(cudaMalloc(&hb, el * 2));
        CK(cudaMemset(xf, 0, el * 4));
        float ms = timeit([&] { k_split<<<2048, 256>>>(xf, el, hb); }, 20);
        printf("| f32 -> bf16, %d x %d | %zu | %.1f | %.0f |\n", M, N, el, ms * 1e3, el * 6.0 / (ms * 1e6));
        CK(cudaFree(xf));
        CK(cudaFree(hb));
    }
    return 0;
}
