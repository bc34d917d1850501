/* Hugging Face model configuration: config.json, generation_config.json,
 * tokenizer_config.json.  Accepts both the published form (rope_theta and
 * rope_scaling at the top level) and the transformers 5 form
 * (rope_parameters). */
#ifndef DPB_CONFIG_H
#define DPB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/status.h"

typedef enum dpb_arch { DPB_ARCH_NONE = 0, DPB_ARCH_GPT_OSS, DPB_ARCH_QWEN3, DPB_ARCH_LLAMA } dpb_arch;
typedef enum dpb_rope_type { DPB_ROPE_DEFAULT = 0, DPB_ROPE_YARN, DPB_ROPE_LINEAR, DPB_ROPE_LLAMA3 } dpb_rope_type;
typedef enum dpb_experts_format { DPB_EXPERTS_NONE = 0, DPB_EXPERTS_BF16, DPB_EXPERTS_MXFP4 } dpb_experts_format;

#define DPB_MAX_LAYERS 1024
#define DPB_MAX_EOS 8

typedef struct dpb_rope {
    dpb_rope_type type;
    double theta;
    double factor;                  /* yarn, linear, llama3 */
    double beta_fast, beta_slow;    /* yarn */
    double low_freq_factor, high_freq_factor; /* llama3 */
    int64_t original_max_position;  /* yarn, llama3 */
    bool truncate;                  /* yarn: transformers' default is true; gpt-oss sets false */
    double attention_factor;        /* yarn: 0 = derive 0.1*ln(factor)+1 */
} dpb_rope;

typedef struct dpb_model_config {
    dpb_arch arch;
    char model_type[32];
    int64_t vocab_size, hidden_size, intermediate_size;
    int64_t num_layers, num_heads, num_kv_heads, head_dim;
    int64_t max_position_embeddings;
    double rms_norm_eps;
    dpb_rope rope;
    bool attention_bias, mlp_bias, tie_word_embeddings;
    int64_t sliding_window;               /* 0: none */
    uint8_t layer_sliding[DPB_MAX_LAYERS]; /* 1: sliding_attention layer */
    int64_t num_sliding_layers;
    /* Mixture of experts (gpt_oss); zero for dense models. */
    int64_t num_experts, experts_per_tok;
    double swiglu_limit;                  /* gpt_oss: 7.0 */
    dpb_experts_format experts_format;    /* from quantization_config */
    /* Token ids from config.json (-1 when absent); generation_config overrides eos. */
    int64_t bos_token_id, pad_token_id;
    int n_eos;
    int64_t eos_ids[DPB_MAX_EOS];
} dpb_model_config;

/* Parses config.json text; "what" (usually the path) names the source in errors. */
dpb_status dpb_config_parse(const char *text, size_t len, const char *what, dpb_model_config *out);
dpb_status dpb_config_load(const char *path, dpb_model_config *out);
/* Writes the published form of config.json (what synth writes). */
dpb_status dpb_config_to_json(const dpb_model_config *cfg, char **out);
const char *dpb_arch_name(dpb_arch a);

typedef struct dpb_generation_config {
    int n_eos;
    int64_t eos_ids[DPB_MAX_EOS];
    int64_t bos_token_id, pad_token_id; /* -1 when absent */
    bool do_sample;
    double temperature, top_p, min_p;   /* temperature 1, top_p 1, min_p 0 when absent */
    int64_t top_k;                      /* 0 when absent */
    bool present;                       /* a generation_config.json was read */
} dpb_generation_config;

dpb_status dpb_generation_config_parse(const char *text, size_t len, const char *what,
                                       dpb_generation_config *out);
void dpb_generation_config_default(const dpb_model_config *cfg, dpb_generation_config *out);

/* tokenizer_config.json: special-token strings and the chat template, kept as
 * data (never executed).  Strings are owned; free with ..._free. */
typedef struct dpb_tokenizer_config {
    char *bos_token, *eos_token, *pad_token, *unk_token;
    char *chat_template;
    bool add_bos_token, add_eos_token;
    int64_t model_max_length; /* 0 when absent or absurd */
    bool present;
} dpb_tokenizer_config;

dpb_status dpb_tokenizer_config_parse(const char *text, size_t len, const char *what,
                                      dpb_tokenizer_config *out);
void dpb_tokenizer_config_free(dpb_tokenizer_config *tc);

#endif
