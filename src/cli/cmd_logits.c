/* deploybench logits: one forward pass over input_ids, every position's
 * logits written in the fixtures' reference.safetensors format. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "engine/engine.h"
#include "format/checkpoint.h"
#include "format/safetensors.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: deploybench logits --model M --input IN.safetensors --out OUT.safetensors\n"
            "                          [--dtype f32|bf16] [--backend cpu|ref|cuda] [--threads N] [--prefill-chunk N]\n\n"
            "Reads input_ids (I64 [T], or I32) from IN, runs one forward pass and writes OUT with\n"
            "input_ids (I64 [T]) and logits (F32 [T, V]): the logits at every position, the format of the\n"
            "test fixtures' reference.safetensors.\n\n"
            "  --model M     a Hugging Face folder, or synth:PRESET[:SEED][:INIT]\n"
            "  --input IN    safetensors file holding input_ids\n"
            "  --out OUT     file to write (replaced atomically)\n"
            "  --dtype D     f32 (default: the reference mode) or bf16\n"
            "  --backend B   cpu (default), ref (plain reference code) or cuda\n"
            "  --threads N   cpu threads, 1..1024 (default: all cores)\n"
            "  --prefill-chunk N\n"
            "                rows per forward pass, 1..65536 (default: the engine's, 256). On CUDA, chunks of <= 8\n"
            "                rows keep the MXFP4 experts in fp32-level precision (kernels A/B); larger chunks use\n"
            "                the grouped experts, whose activations are rounded to f16 (docs/CUDA.md)\n");
}

int dpb_cmd_logits(int argc, char **argv)
{
    enum { O_MODEL = 256, O_IN, O_OUT, O_DTYPE, O_BACKEND, O_THREADS, O_CHUNK };
    static const struct option opts[] = {
        {"model", required_argument, 0, O_MODEL}, {"input", required_argument, 0, O_IN},
        {"out", required_argument, 0, O_OUT},     {"dtype", required_argument, 0, O_DTYPE},
        {"backend", required_argument, 0, O_BACKEND}, {"threads", required_argument, 0, O_THREADS},
        {"prefill-chunk", required_argument, 0, O_CHUNK},
        {"help", no_argument, 0, 'h'},            {0, 0, 0, 0}};
    const char *model = NULL, *in = NULL, *outp = NULL, *backend = "cpu";
    dpb_engine_dtype dtype = DPB_ENGINE_F32;
    long long threads = 0, chunk = 0;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        dpb_status st = DPB_OK;
        switch (c) {
        case O_MODEL: model = optarg; break;
        case O_IN: in = optarg; break;
        case O_OUT: outp = optarg; break;
        case O_DTYPE:
            if (strcmp(optarg, "bf16") == 0) dtype = DPB_ENGINE_BF16;
            else if (strcmp(optarg, "f32") == 0) dtype = DPB_ENGINE_F32;
            else return dpb_cli_usage_error("logits", "--dtype takes f32 or bf16, not '%s'", optarg);
            break;
        case O_BACKEND:
            if (dpb_cli_check_backend("logits", optarg)) return 2;
            backend = optarg;
            break;
        case O_THREADS: st = dpb_cli_parse_i64("--threads", optarg, 1, 1024, &threads); break;
        case O_CHUNK: st = dpb_cli_parse_i64("--prefill-chunk", optarg, 1, 65536, &chunk); break;
        case 'h': usage(stdout); return 0;
        default: return dpb_cli_usage_error("logits", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
        if (st) return dpb_cli_fail("logits", st);
    }
    if (optind < argc) return dpb_cli_usage_error("logits", "unexpected argument '%s'", argv[optind]);
    if (!model || !in || !outp) return dpb_cli_usage_error("logits", "--model, --input and --out are required");

    dpb_safetensors_file f;
    dpb_status st = dpb_safetensors_open(in, &f);
    if (st) return dpb_cli_fail("logits", st);
    int64_t *ids64 = NULL;
    int32_t *ids = NULL;
    float *lg = NULL;
    dpb_checkpoint *ck = NULL;
    dpb_engine *e = NULL;
    int64_t T = 0;
    const dpb_st_entry *ent = NULL;
    for (size_t i = 0; i < f.hdr.count; i++)
        if (strcmp(f.hdr.entries[i].name, "input_ids") == 0) ent = &f.hdr.entries[i];
    if (!ent) { st = dpb_error_set(DPB_E_FORMAT, "%s: no tensor 'input_ids'", in); goto out; }
    if ((ent->dtype != DPB_DT_I64 && ent->dtype != DPB_DT_I32) || ent->ndim < 1 || ent->ndim > 2 ||
        (ent->ndim == 2 && ent->shape[0] != 1)) {
        st = dpb_error_set(DPB_E_FORMAT, "%s: input_ids must be I64 or I32 [T] (or [1, T])", in);
        goto out;
    }
    T = ent->shape[ent->ndim - 1];
    if (T < 1) { st = dpb_error_set(DPB_E_FORMAT, "%s: input_ids is empty", in); goto out; }
    ids64 = malloc((size_t)T * sizeof *ids64);
    ids = malloc((size_t)T * sizeof *ids);
    if (!ids64 || !ids) { st = dpb_error_set(DPB_E_NOMEM, "out of memory for %lld ids", (long long)T); goto out; }
    {
        const uint8_t *d = dpb_safetensors_data(&f, ent);
        for (int64_t t = 0; t < T; t++) {
            int64_t v;
            if (ent->dtype == DPB_DT_I64) memcpy(&v, d + t * 8, 8);
            else { int32_t v32; memcpy(&v32, d + t * 4, 4); v = v32; }
            ids64[t] = v;
        }
    }
    if ((st = dpb_checkpoint_open(model, NULL, &ck))) goto out;
    const dpb_model_config *cfg = dpb_checkpoint_config(ck);
    int64_t V = cfg->vocab_size;
    for (int64_t t = 0; t < T; t++) {
        if (ids64[t] < 0 || ids64[t] >= V) {
            st = dpb_error_set(DPB_E_RANGE, "%s: input_ids[%lld] = %lld is outside the vocabulary [0, %lld)", in, (long long)t,
                               (long long)ids64[t], (long long)V);
            goto out;
        }
        ids[t] = (int32_t)ids64[t];
    }
    int64_t maxpos = cfg->max_position_embeddings > 0 ? cfg->max_position_embeddings : 4096;
    if (T > maxpos) {
        st = dpb_error_set(DPB_E_RANGE, "%s: %lld input ids but the context is %lld tokens", in, (long long)T, (long long)maxpos);
        goto out;
    }
    size_t nlog;
    if (__builtin_mul_overflow((size_t)T, (size_t)V, &nlog) || nlog > ((size_t)1 << 33)) {
        st = dpb_error_set(DPB_E_RANGE, "%s: %lld x %lld logits are too many to write", in, (long long)T, (long long)V);
        goto out;
    }
    lg = malloc(nlog * sizeof *lg);
    if (!lg) { st = dpb_error_set(DPB_E_NOMEM, "out of memory for %zu logits", nlog); goto out; }
    dpb_engine_opts eo = {0};
    eo.backend = backend;
    eo.threads = (int)threads;
    eo.dtype = dtype;
    eo.max_ctx = T;
    eo.prefill_chunk = chunk;
    if ((st = dpb_engine_create(ck, &eo, &e))) goto out;
    dpb_engine_seg s = {0, ids, T};
    if ((st = dpb_engine_forward(e, &s, 1, DPB_LOGITS_ALL, lg))) goto out;
    {
        int64_t sh_ids[1] = {T}, sh_lg[2] = {T, V};
        dpb_st_write_entry we[2] = {{"input_ids", DPB_DT_I64, 1, sh_ids}, {"logits", DPB_DT_F32, 2, sh_lg}};
        const void *data[2] = {ids64, lg};
        st = dpb_safetensors_write(outp, we, data, 2);
    }
out:
    dpb_engine_destroy(e);
    if (ck) dpb_checkpoint_close(ck);
    dpb_safetensors_close(&f);
    free(ids64);
    free(ids);
    free(lg);
    if (st) return dpb_cli_fail("logits", st);
    return 0;
}
