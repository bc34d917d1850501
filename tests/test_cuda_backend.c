/* The CUDA backend's operations against the reference backend (the
 * decode-sized shapes; dev/cuda/backend_check adds the gpt-oss-sized ones,
 * the fixtures through the engine and the speed runs).  Skips when the
 * backend is not compiled in or no device is present.  Also checks that a
 * build without CUDA refuses --backend cuda with a clear message. */
#include "t.h"
#include "backend/backend.h"
#include "../dev/cuda/backend_ops_check.h"

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

int main(void)
{
    T_RUN(test_open_or_refuse);
    T_RUN(test_ops_vs_ref);
    T_RUN(test_moe_grouped_vs_ref);
    return t_done();
}
