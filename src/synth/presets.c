/* Preset architectures: the published configs of gpt-oss-20b, Qwen3-32B and
 * Yi-34B, plus tiny (tests) and ~1B (CPU benchmarks) models of each family. */
#include <stdio.h>
#include <string.h>
#include "synth/synth.h"

static const dpb_preset k_presets[] = {
    {"gpt-oss-20b", "openai/gpt-oss-20b: 24 layers, 32 experts top-4, MXFP4 experts, 20.9B total / 3.6B active"},
    {"qwen3-32b", "Qwen/Qwen3-32B: 64 layers, hidden 5120, GQA 64/8, 32.8B dense"},
    {"yi-34b", "01-ai/Yi-34B (llama): 60 layers, hidden 7168, GQA 56/8, 34.4B dense"},
    {"gpt-oss-1b", "gpt-oss architecture, ~1.2B total: hidden 1024, 8 layers, 32 experts top-4 (CPU benchmarks)"},
    {"qwen3-1b", "qwen3 architecture, ~1.1B: hidden 2048, 10 layers (CPU benchmarks)"},
    {"llama-1b", "llama architecture, ~1.0B: hidden 2048, 16 layers, GQA 16/4 (CPU benchmarks)"},
    {"gpt-oss-tiny", "gpt-oss architecture, a few MB: the shapes of the test fixtures (hidden 128, 4 layers, 8 experts)"},
    {"qwen3-tiny", "qwen3 architecture, a few MB: hidden 128, 4 layers"},
    {"llama-tiny", "llama architecture, a few MB: hidden 128, 4 layers"},
};

const dpb_preset *dpb_synth_presets(int *count)
{
    *count = (int)(sizeof k_presets / sizeof k_presets[0]);
    return k_presets;
}

static void base(dpb_model_config *c, dpb_arch arch, int64_t V, int64_t H, int64_t I, int64_t L, int64_t nh,
                 int64_t nkv, int64_t hd, int64_t maxpos, double eps, double theta)
{
    memset(c, 0, sizeof *c);
    c->arch = arch;
    snprintf(c->model_type, sizeof c->model_type, "%s", dpb_arch_name(arch));
    c->vocab_size = V;
    c->hidden_size = H;
    c->intermediate_size = I;
    c->num_layers = L;
    c->num_heads = nh;
    c->num_kv_heads = nkv;
    c->head_dim = hd;
    c->max_position_embeddings = maxpos;
    c->rms_norm_eps = eps;
    c->rope.type = DPB_ROPE_DEFAULT;
    c->rope.theta = theta;
    c->rope.factor = 1.0;
    c->rope.truncate = true;
    c->bos_token_id = c->pad_token_id = -1;
}

static void gpt_oss(dpb_model_config *c, int64_t V, int64_t H, int64_t I, int64_t L, int64_t nh, int64_t nkv,
                    int64_t E, int64_t window)
{
    base(c, DPB_ARCH_GPT_OSS, V, H, I, L, nh, nkv, 64, 131072, 1e-5, 150000.0);
    c->rope.type = DPB_ROPE_YARN;
    c->rope.factor = 32.0;
    c->rope.beta_fast = 32.0;
    c->rope.beta_slow = 1.0;
    c->rope.original_max_position = 4096;
    c->rope.truncate = false;
    c->attention_bias = true;
    c->sliding_window = window;
    for (int64_t i = 0; i < L; i++) c->layer_sliding[i] = (i % 2) == 0;
    c->num_experts = E;
    c->experts_per_tok = 4;
    c->swiglu_limit = 7.0;
    c->experts_format = DPB_EXPERTS_MXFP4;
}

dpb_status dpb_synth_preset_config(const char *name, int64_t layers, int experts_format, dpb_model_config *c)
{
    if (strcmp(name, "gpt-oss-20b") == 0) {
        gpt_oss(c, 201088, 2880, 2880, 24, 64, 8, 32, 128);
        c->eos_ids[0] = 200002;
        c->n_eos = 1;
        c->pad_token_id = 199999;
    } else if (strcmp(name, "gpt-oss-1b") == 0) {
        gpt_oss(c, 201088, 1024, 1024, 8, 16, 4, 32, 128);
        c->eos_ids[0] = 200002;
        c->n_eos = 1;
        c->pad_token_id = 199999;
    } else if (strcmp(name, "gpt-oss-tiny") == 0) {
        gpt_oss(c, 512, 128, 128, 4, 4, 2, 8, 8);
        c->head_dim = 32;
        c->eos_ids[0] = 1;
        c->n_eos = 1;
        c->pad_token_id = 0;
    } else if (strcmp(name, "qwen3-32b") == 0) {
        base(c, DPB_ARCH_QWEN3, 151936, 5120, 25600, 64, 64, 8, 128, 40960, 1e-6, 1e6);
        c->bos_token_id = 151643;
        c->eos_ids[0] = 151645;
        c->n_eos = 1;
    } else if (strcmp(name, "qwen3-1b") == 0) {
        base(c, DPB_ARCH_QWEN3, 151936, 2048, 6144, 10, 16, 8, 128, 40960, 1e-6, 1e6);
        c->bos_token_id = 151643;
        c->eos_ids[0] = 151645;
        c->n_eos = 1;
    } else if (strcmp(name, "qwen3-tiny") == 0) {
        base(c, DPB_ARCH_QWEN3, 512, 128, 256, 4, 4, 2, 32, 4096, 1e-6, 1e6);
    } else if (strcmp(name, "yi-34b") == 0) {
        base(c, DPB_ARCH_LLAMA, 64000, 7168, 20480, 60, 56, 8, 128, 4096, 1e-5, 5e6);
        c->bos_token_id = 1;
        c->eos_ids[0] = 2;
        c->n_eos = 1;
        c->pad_token_id = 0;
    } else if (strcmp(name, "llama-1b") == 0) {
        base(c, DPB_ARCH_LLAMA, 64000, 2048, 5632, 16, 16, 4, 128, 4096, 1e-5, 5e6);
        c->bos_token_id = 1;
        c->eos_ids[0] = 2;
        c->n_eos = 1;
        c->pad_token_id = 0;
    } else if (strcmp(name, "llama-tiny") == 0) {
        base(c, DPB_ARCH_LLAMA, 512, 128, 256, 4, 4, 2, 32, 4096, 1e-5, 5e6);
        c->bos_token_id = 1;
        c->eos_ids[0] = 2;
        c->n_eos = 1;
    } else {
        int n;
        const dpb_preset *p = dpb_synth_presets(&n);
        char list[512];
        size_t k = 0;
        for (int i = 0; i < n; i++) k += (size_t)snprintf(list + k, sizeof list - k, "%s%s", i ? ", " : "", p[i].name);
        return dpb_error_set(DPB_E_ARG, "unknown preset '%s' (presets: %s)", name, list);
    }
    if (layers > 0) {
        if (layers > DPB_MAX_LAYERS) return dpb_error_set(DPB_E_ARG, "--layers %lld is over %d", (long long)layers, DPB_MAX_LAYERS);
        c->num_layers = layers;
        c->num_sliding_layers = 0;
        for (int64_t i = 0; i < layers; i++) {
            if (c->arch != DPB_ARCH_GPT_OSS) c->layer_sliding[i] = 0;
            c->num_sliding_layers += c->layer_sliding[i];
        }
        memset(c->layer_sliding + layers, 0, (size_t)(DPB_MAX_LAYERS - layers));
    }
    c->num_sliding_layers = 0;
    for (int64_t i = 0; i < c->num_layers; i++) c->num_sliding_layers += c->layer_sliding[i];
    if (experts_format) {
        if (c->arch != DPB_ARCH_GPT_OSS)
            return dpb_error_set(DPB_E_ARG, "--experts applies to gpt-oss presets only, not '%s'", name);
        c->experts_format = (dpb_experts_format)experts_format;
    }
    return DPB_OK;
}
