/* The operation checks of session 6's dense-prefill work (helper dpf) alone, for a short device call: the
 * backend_ops_check.h cases of swiglu_mlp, qkv_prep, the bias epilogues, and the existing linear, linear_multi,
 * swiglu_bf16 and qk_prep checks whose paths that work touches.  backend_check runs all of them with the rest.
 * Build: as backend_check (dev/cuda/run_backend_check.sh), with this file in place of backend_check.c.
 * Usage: dpf_check [seed]; exit status 0 when every check passed. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "backend/backend.h"
#include "core/timeutil.h"
#include "backend_ops_check.h"

int main(int argc, char **argv)
{
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 0) : (0x9e3779b97f4a7c15ull ^ dpb_now_ns());
    dpb_backend *dev = NULL, *ref = NULL;
    if (dpb_backend_open("cuda", 0, &dev) || dpb_backend_open("ref", 1, &ref)) {
        printf("FAIL open backends: %s\n", dpb_error_message());
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    opc c = {dev, ref, seed ? seed : 1, 0, 0, stdout};
    printf("== dpf operations vs ref (seed %llu)\n", (unsigned long long)c.rng);
    opc_linear(&c, 1);
    {
        const int64_t qkv[3] = {4096, 512, 512}, gu[2] = {1000, 1000}, odd[3] = {72, 8, 200};
        opc_linear_multi(&c, 3, qkv, 2880, 1, false);
        opc_linear_multi(&c, 2, gu, 512, 9, true);
        opc_linear_multi(&c, 3, qkv, 2880, 64, false);
        opc_linear_multi(&c, 3, odd, 96, 40, true);
    }
    opc_swiglu_bf16(&c, 3, 1000, 0);
    opc_swiglu_bf16(&c, 5, 77, 1);
    opc_qk_prep(&c, 3, 64, 8, 128, true, true, DPB_KV_BF16);
    opc_qk_prep(&c, 2, 16, 4, 64, false, false, DPB_KV_F32);
    opc_qk_prep(&c, 4, 8, 2, 128, true, false, DPB_KV_F32);
    opc_qk_prep(&c, 40, 8, 2, 32, true, true, DPB_KV_BF16);
    opc_run_dpf(&c, 1);
    /* the prefill attention's round_out, side copy and attention_linear paths (bf16 and fp8 KV, hd 128 / 64, sinks) */
    opc_attention_q(&c, 333, 1000, 64, 8, 64, 256, 128, DPB_KV_BF16, true, true);
    opc_attention_q(&c, 200, 77, 16, 2, 128, 512, 0, DPB_KV_BF16, false, true);
    opc_attention_q(&c, 150, 0, 56, 8, 128, 256, 0, DPB_KV_BF16, false, true);
    opc_attention_q(&c, 65, 3, 14, 2, 128, 80, 0, DPB_KV_BF16, true, true);
    opc_attention_q(&c, 200, 77, 16, 2, 128, 512, 0, DPB_KV_FP8, false, true);
    printf("== dpf operations: %d checks, %d failed\n", c.checks, c.fails);
    dpb_backend_close(dev);
    dpb_backend_close(ref);
    return c.fails ? 1 : 0;
}
