/* CPU kernel speed against the copy bandwidth measured in the same run:
 * bf16 matvec (row-major and transposed), MXFP4 matvec, and bf16 matmul
 * (prefill) throughput.  Usage: bench_kernels [threads] [MiB per matrix] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "backend/backend.h"
#include "core/timeutil.h"
#include "format/dtype.h"

static double best_of(dpb_backend *b, const dpb_weight *w, const float *x, int64_t n, float *y, int reps)
{
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        uint64_t t0 = dpb_now_ns();
        b->ops->linear(b, w, NULL, x, n, y);
        double dt = (double)(dpb_now_ns() - t0) / 1e9;
        if (dt < best) best = dt;
    }
    return best;
}

/* CPU model and load average, printed with the numbers they qualify. */
static void print_machine(void)
{
    char line[256], model[256] = "unknown";
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "model name", 10) == 0) {
            char *c = strchr(line, ':');
            if (c) snprintf(model, sizeof model, "%s", c + 2);
            model[strcspn(model, "\n")] = 0;
            break;
        }
    if (f) fclose(f);
    double l1 = -1;
    f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l1) != 1) l1 = -1;
        fclose(f);
    }
    printf("cpu: %s, %d logical cpus, load average (1 min) %.2f\n", model, (int)sysconf(_SC_NPROCESSORS_ONLN), l1);
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 0;
    if (threads < 0) threads = 0;
    int64_t mib = argc > 2 ? atoll(argv[2]) : 256;
    dpb_backend *b;
    if (dpb_backend_open("cpu", threads, &b)) { fprintf(stderr, "%s\n", dpb_error_message()); return 1; }
    print_machine();
    double copy;
    dpb_cpu_copy_bandwidth((size_t)mib << 20, 5, &copy);
    printf("threads %d, kernels %s, copy bandwidth %.2f GB/s (2 x %lld MiB, read+write counted)\n", b->threads, b->simd,
           copy, (long long)mib);
    int64_t in = 4096, out = ((int64_t)mib << 20) / (in * 2);
    uint16_t *wb = malloc((size_t)(out * in) * 2);
    uint8_t *blk = malloc((size_t)(2 * out * in) / 2), *scl = malloc((size_t)(2 * out * in) / 32);
    for (int64_t i = 0; i < out * in; i++) wb[i] = dpb_f32_to_bf16((float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f);
    memset(blk, 0x5a, (size_t)(out * in));
    memset(scl, 120, (size_t)(out * in) / 16);
    float *x = malloc((size_t)(64 * in) * 4 * 2), *y = malloc((size_t)(64 * 2 * out) * 4);
    for (int64_t i = 0; i < 64 * in * 2; i++) x[i] = (float)(i % 7) * 0.1f;
    dpb_weight w = {DPB_W_BF16, out, in, false, wb, NULL};
    double t = best_of(b, &w, x, 1, y, 10);
    double bytes = (double)(out * in) * 2;
    printf("bf16 matvec %lldx%lld: %.3f ms, %.2f GB/s = %.0f%% of copy\n", (long long)out, (long long)in, t * 1e3,
           bytes / t / 1e9, 100 * bytes / t / 1e9 / copy);
    dpb_weight wt = {DPB_W_BF16, in, out, true, wb, NULL};
    t = best_of(b, &wt, x, 1, y, 10);
    printf("bf16 transposed matvec %lldx%lld: %.3f ms, %.2f GB/s = %.0f%% of copy\n", (long long)in, (long long)out,
           t * 1e3, bytes / t / 1e9, 100 * bytes / t / 1e9 / copy);
    dpb_weight wm = {DPB_W_MXFP4, 2 * out, in, false, blk, scl};
    t = best_of(b, &wm, x, 1, y, 10);
    double mb = (double)(2 * out * in) / 2 + (double)(2 * out * in) / 32;
    printf("mxfp4 matvec %lldx%lld: %.3f ms, %.2f GB/s = %.0f%% of copy\n", (long long)(2 * out), (long long)in, t * 1e3,
           mb / t / 1e9, 100 * mb / t / 1e9 / copy);
    t = best_of(b, &w, x, 64, y, 3);
    printf("bf16 matmul 64 rows: %.3f ms, %.1f GFLOP/s, %.0f rows/s\n", t * 1e3, 2.0 * out * in * 64 / t / 1e9, 64 / t);
    t = best_of(b, &wm, x, 64, y, 3);
    printf("mxfp4 matmul 64 rows: %.3f ms, %.1f GFLOP/s\n", t * 1e3, 2.0 * 2 * out * in * 64 / t / 1e9);
    dpb_backend_close(b);
    free(wb); free(blk); free(scl); free(x); free(y);
    return 0;
}
