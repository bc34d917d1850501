#include "format/config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "core/file.h"
#include "core/json.h"

#define MAX_CONFIG_BYTES (16u << 20)
#define MAX_VOCAB (1ll << 24)      /* 16.7M tokens: far above any real vocabulary */
#define MAX_HIDDEN (1ll << 17)
#define MAX_INTER (1ll << 20)
#define MAX_HEADS 4096
#define MAX_HEAD_DIM 1024
#define MAX_POS (1ll << 26)
#define MAX_EXPERTS 4096

const char *dpb_arch_name(dpb_arch a)
{
    switch (a) {
    case DPB_ARCH_GPT_OSS: return "gpt_oss";
    case DPB_ARCH_QWEN3: return "qwen3";
    case DPB_ARCH_LLAMA: return "llama";
    default: return "none";
    }
}

#define TRY(x) do { dpb_status st_ = (x); if (st_) { st = st_; goto done; } } while (0)

/* eos_token_id: an integer or a list of integers. */
static dpb_status parse_token_ids(const cJSON *obj, const char *key, const char *what, int64_t vocab, int *n,
                                  int64_t *ids)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    *n = 0;
    if (!it || cJSON_IsNull(it)) return DPB_OK;
    int64_t max = vocab > 0 ? vocab - 1 : MAX_VOCAB;
    if (cJSON_IsArray(it)) {
        int count = cJSON_GetArraySize(it);
        if (count > DPB_MAX_EOS)
            return dpb_error_set(DPB_E_RANGE, "%s: field '%s' lists %d ids, more than %d", what, key, count,
                                 DPB_MAX_EOS);
        const cJSON *e;
        cJSON_ArrayForEach(e, it) {
            dpb_status st = dpb_json_item_int(e, what, key, 0, max, &ids[*n]);
            if (st) return st;
            (*n)++;
        }
        return DPB_OK;
    }
    dpb_status st = dpb_json_item_int(it, what, key, 0, max, &ids[0]);
    if (st) return st;
    *n = 1;
    return DPB_OK;
}

static dpb_status parse_rope(const cJSON *root, const char *what, dpb_model_config *c)
{
    dpb_status st = DPB_OK;
    /* transformers 5: rope_parameters {rope_type, rope_theta, ...}; published:
     * rope_theta at top level and rope_scaling {rope_type|type, factor, ...}. */
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    const cJSON *scaling = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    if (params && !cJSON_IsNull(params) && !cJSON_IsObject(params))
        return dpb_error_set(DPB_E_FORMAT, "%s: field 'rope_parameters' must be an object", what);
    if (scaling && !cJSON_IsNull(scaling) && !cJSON_IsObject(scaling))
        return dpb_error_set(DPB_E_FORMAT, "%s: field 'rope_scaling' must be an object or null", what);
    const cJSON *src = (params && cJSON_IsObject(params)) ? params : NULL;
    const cJSON *sc = src ? src : (scaling && cJSON_IsObject(scaling) ? scaling : NULL);
    char fieldname[64];
    bool has_theta = false;
    double theta = 10000.0;
    if (src) {
        snprintf(fieldname, sizeof fieldname, "%s (rope_parameters)", what);
        TRY(dpb_json_get_double(src, "rope_theta", fieldname, DPB_JSON_OPTIONAL, 1e-3, 1e12, 10000.0, &theta,
                                &has_theta));
    }
    if (!has_theta)
        TRY(dpb_json_get_double(root, "rope_theta", what, DPB_JSON_OPTIONAL, 1e-3, 1e12, 10000.0, &theta, NULL));
    c->rope.theta = theta;
    c->rope.type = DPB_ROPE_DEFAULT;
    c->rope.factor = 1.0;
    c->rope.truncate = true;
    if (!sc) return DPB_OK;
    const char *sname = src ? "rope_parameters" : "rope_scaling";
    snprintf(fieldname, sizeof fieldname, "%s (%s)", what, sname);
    const char *type = NULL;
    TRY(dpb_json_get_string(sc, "rope_type", fieldname, DPB_JSON_OPTIONAL, NULL, &type, NULL));
    if (!type) TRY(dpb_json_get_string(sc, "type", fieldname, DPB_JSON_OPTIONAL, "default", &type, NULL));
    if (strcmp(type, "default") == 0) c->rope.type = DPB_ROPE_DEFAULT;
    else if (strcmp(type, "yarn") == 0) c->rope.type = DPB_ROPE_YARN;
    else if (strcmp(type, "linear") == 0) c->rope.type = DPB_ROPE_LINEAR;
    else if (strcmp(type, "llama3") == 0) c->rope.type = DPB_ROPE_LLAMA3;
    else return dpb_error_set(DPB_E_UNSUPPORTED, "%s: rope_type '%s' is not supported (default, yarn, linear, llama3)",
                              fieldname, type);
    if (c->rope.type == DPB_ROPE_DEFAULT) return DPB_OK;
    TRY(dpb_json_get_double(sc, "factor", fieldname, DPB_JSON_REQUIRED, 1e-6, 1e6, 1.0, &c->rope.factor, NULL));
    TRY(dpb_json_get_double(sc, "beta_fast", fieldname, DPB_JSON_OPTIONAL, 0, 1e6, 32.0, &c->rope.beta_fast, NULL));
    TRY(dpb_json_get_double(sc, "beta_slow", fieldname, DPB_JSON_OPTIONAL, 0, 1e6, 1.0, &c->rope.beta_slow, NULL));
    TRY(dpb_json_get_double(sc, "low_freq_factor", fieldname, DPB_JSON_OPTIONAL, 0, 1e6, 1.0,
                            &c->rope.low_freq_factor, NULL));
    TRY(dpb_json_get_double(sc, "high_freq_factor", fieldname, DPB_JSON_OPTIONAL, 0, 1e6, 4.0,
                            &c->rope.high_freq_factor, NULL));
    TRY(dpb_json_get_double(sc, "attention_factor", fieldname, DPB_JSON_OPTIONAL, 0, 1e6, 0.0,
                            &c->rope.attention_factor, NULL));
    TRY(dpb_json_get_bool(sc, "truncate", fieldname, DPB_JSON_OPTIONAL, true, &c->rope.truncate, NULL));
    TRY(dpb_json_get_int(sc, "original_max_position_embeddings", fieldname, DPB_JSON_OPTIONAL, 1, MAX_POS,
                         c->max_position_embeddings, &c->rope.original_max_position, NULL));
done:
    return st;
}

dpb_status dpb_config_parse(const char *text, size_t len, const char *what, dpb_model_config *out)
{
    memset(out, 0, sizeof *out);
    dpb_model_config *c = out;
    cJSON *root = NULL;
    dpb_status st = dpb_json_parse(text, len, what, &root);
    if (st) return st;
    if (!cJSON_IsObject(root)) {
        st = dpb_error_set(DPB_E_FORMAT, "%s: the top level must be a JSON object", what);
        goto done;
    }
    const char *mt = NULL;
    TRY(dpb_json_get_string(root, "model_type", what, DPB_JSON_REQUIRED, NULL, &mt, NULL));
    if (strcmp(mt, "gpt_oss") == 0) c->arch = DPB_ARCH_GPT_OSS;
    else if (strcmp(mt, "qwen3") == 0) c->arch = DPB_ARCH_QWEN3;
    else if (strcmp(mt, "llama") == 0) c->arch = DPB_ARCH_LLAMA;
    else {
        st = dpb_error_set(DPB_E_UNSUPPORTED,
                           "%s: field 'model_type' is '%.40s', an unknown architecture (supported: gpt_oss, qwen3, llama)",
                           what, mt);
        goto done;
    }
    snprintf(c->model_type, sizeof c->model_type, "%s", mt);

    TRY(dpb_json_get_int(root, "vocab_size", what, DPB_JSON_REQUIRED, 1, MAX_VOCAB, 0, &c->vocab_size, NULL));
    TRY(dpb_json_get_int(root, "hidden_size", what, DPB_JSON_REQUIRED, 1, MAX_HIDDEN, 0, &c->hidden_size, NULL));
    TRY(dpb_json_get_int(root, "intermediate_size", what, DPB_JSON_REQUIRED, 1, MAX_INTER, 0, &c->intermediate_size,
                         NULL));
    TRY(dpb_json_get_int(root, "num_hidden_layers", what, DPB_JSON_REQUIRED, 1, DPB_MAX_LAYERS, 0, &c->num_layers,
                         NULL));
    TRY(dpb_json_get_int(root, "num_attention_heads", what, DPB_JSON_REQUIRED, 1, MAX_HEADS, 0, &c->num_heads, NULL));
    TRY(dpb_json_get_int(root, "num_key_value_heads", what, DPB_JSON_OPTIONAL, 1, MAX_HEADS, c->num_heads,
                         &c->num_kv_heads, NULL));
    bool has_hd = false;
    TRY(dpb_json_get_int(root, "head_dim", what, DPB_JSON_OPTIONAL, 1, MAX_HEAD_DIM, 0, &c->head_dim, &has_hd));
    if (!has_hd) {
        if (c->hidden_size % c->num_heads != 0) {
            st = dpb_error_set(DPB_E_FORMAT,
                               "%s: num_attention_heads (%lld) does not divide hidden_size (%lld) and head_dim is absent",
                               what, (long long)c->num_heads, (long long)c->hidden_size);
            goto done;
        }
        c->head_dim = c->hidden_size / c->num_heads;
        if (c->head_dim > MAX_HEAD_DIM) {
            st = dpb_error_set(DPB_E_RANGE, "%s: head_dim hidden_size/num_attention_heads = %lld is over %d", what,
                               (long long)c->head_dim, MAX_HEAD_DIM);
            goto done;
        }
    }
    if (c->num_heads % c->num_kv_heads != 0) {
        st = dpb_error_set(DPB_E_FORMAT, "%s: num_key_value_heads (%lld) does not divide num_attention_heads (%lld)",
                           what, (long long)c->num_kv_heads, (long long)c->num_heads);
        goto done;
    }
    if (c->head_dim % 2 != 0) {
        st = dpb_error_set(DPB_E_FORMAT, "%s: head_dim (%lld) must be even for rotary embeddings", what,
                           (long long)c->head_dim);
        goto done;
    }
    TRY(dpb_json_get_int(root, "max_position_embeddings", what, DPB_JSON_OPTIONAL, 1, MAX_POS, 4096,
                         &c->max_position_embeddings, NULL));
    TRY(dpb_json_get_double(root, "rms_norm_eps", what, DPB_JSON_OPTIONAL, 1e-12, 1.0, 1e-6, &c->rms_norm_eps, NULL));
    TRY(dpb_json_get_bool(root, "attention_bias", what, DPB_JSON_OPTIONAL, c->arch == DPB_ARCH_GPT_OSS,
                          &c->attention_bias, NULL));
    TRY(dpb_json_get_bool(root, "mlp_bias", what, DPB_JSON_OPTIONAL, false, &c->mlp_bias, NULL));
    TRY(dpb_json_get_bool(root, "tie_word_embeddings", what, DPB_JSON_OPTIONAL, false, &c->tie_word_embeddings,
                          NULL));
    const char *act = NULL;
    TRY(dpb_json_get_string(root, "hidden_act", what, DPB_JSON_OPTIONAL, "silu", &act, NULL));
    if (strcmp(act, "silu") != 0 && strcmp(act, "swish") != 0) {
        st = dpb_error_set(DPB_E_UNSUPPORTED, "%s: hidden_act '%.40s' is not supported (silu)", what, act);
        goto done;
    }
    TRY(parse_rope(root, what, c));

    /* Sliding window and layer types. */
    int64_t sw = 0;
    bool has_sw = false;
    TRY(dpb_json_get_int(root, "sliding_window", what, DPB_JSON_OPTIONAL, 1, MAX_POS, 0, &sw, &has_sw));
    const cJSON *lt = cJSON_GetObjectItemCaseSensitive(root, "layer_types");
    if (lt && !cJSON_IsNull(lt)) {
        if (!cJSON_IsArray(lt)) {
            st = dpb_error_set(DPB_E_FORMAT, "%s: field 'layer_types' must be a list", what);
            goto done;
        }
        if (cJSON_GetArraySize(lt) != c->num_layers) {
            st = dpb_error_set(DPB_E_FORMAT, "%s: field 'layer_types' has %d entries for %lld layers", what,
                               cJSON_GetArraySize(lt), (long long)c->num_layers);
            goto done;
        }
        int i = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, lt) {
            if (!cJSON_IsString(e)) {
                st = dpb_error_set(DPB_E_FORMAT, "%s: layer_types[%d] must be a string", what, i);
                goto done;
            }
            if (strcmp(e->valuestring, "sliding_attention") == 0) c->layer_sliding[i] = 1;
            else if (strcmp(e->valuestring, "full_attention") != 0) {
                st = dpb_error_set(DPB_E_UNSUPPORTED, "%s: layer_types[%d] is '%.40s' (full_attention, sliding_attention)",
                                   what, i, e->valuestring);
                goto done;
            }
            i++;
        }
    } else if (c->arch == DPB_ARCH_QWEN3) {
        bool use_sw = false;
        int64_t mwl = c->num_layers;
        TRY(dpb_json_get_bool(root, "use_sliding_window", what, DPB_JSON_OPTIONAL, false, &use_sw, NULL));
        TRY(dpb_json_get_int(root, "max_window_layers", what, DPB_JSON_OPTIONAL, 0, DPB_MAX_LAYERS, c->num_layers, &mwl,
                             NULL));
        if (use_sw && has_sw)
            for (int64_t i = mwl; i < c->num_layers; i++) c->layer_sliding[i] = 1;
    } else if (c->arch == DPB_ARCH_GPT_OSS) {
        for (int64_t i = 0; i < c->num_layers; i++) c->layer_sliding[i] = (i % 2) == 0;
    }
    if (c->arch == DPB_ARCH_QWEN3) {
        /* transformers' Qwen3 ignores sliding layers unless use_sliding_window. */
        bool use_sw = false;
        TRY(dpb_json_get_bool(root, "use_sliding_window", what, DPB_JSON_OPTIONAL, false, &use_sw, NULL));
        if (!use_sw) memset(c->layer_sliding, 0, sizeof c->layer_sliding);
    }
    for (int64_t i = 0; i < c->num_layers; i++) c->num_sliding_layers += c->layer_sliding[i];
    if (c->num_sliding_layers > 0) {
        if (!has_sw) {
            st = dpb_error_set(DPB_E_FORMAT, "%s: layer_types names sliding_attention layers but sliding_window is absent",
                               what);
            goto done;
        }
        c->sliding_window = sw;
    }

    /* Mixture of experts. */
    if (c->arch == DPB_ARCH_GPT_OSS) {
        TRY(dpb_json_get_int(root, "num_local_experts", what, DPB_JSON_REQUIRED, 1, MAX_EXPERTS, 0, &c->num_experts,
                             NULL));
        bool has_k = false;
        TRY(dpb_json_get_int(root, "num_experts_per_tok", what, DPB_JSON_OPTIONAL, 1, MAX_EXPERTS, 0,
                             &c->experts_per_tok, &has_k));
        if (!has_k)
            TRY(dpb_json_get_int(root, "experts_per_token", what, DPB_JSON_REQUIRED, 1, MAX_EXPERTS, 0,
                                 &c->experts_per_tok, NULL));
        if (c->experts_per_tok > c->num_experts) {
            st = dpb_error_set(DPB_E_RANGE, "%s: num_experts_per_tok (%lld) exceeds num_local_experts (%lld)", what,
                               (long long)c->experts_per_tok, (long long)c->num_experts);
            goto done;
        }
        TRY(dpb_json_get_double(root, "swiglu_limit", what, DPB_JSON_OPTIONAL, 0, 1e6, 7.0, &c->swiglu_limit, NULL));
        c->experts_format = DPB_EXPERTS_BF16;
        const cJSON *q = cJSON_GetObjectItemCaseSensitive(root, "quantization_config");
        if (q && !cJSON_IsNull(q)) {
            const char *qm = NULL;
            if (!cJSON_IsObject(q)) {
                st = dpb_error_set(DPB_E_FORMAT, "%s: field 'quantization_config' must be an object", what);
                goto done;
            }
            TRY(dpb_json_get_string(q, "quant_method", what, DPB_JSON_REQUIRED, NULL, &qm, NULL));
            if (strcmp(qm, "mxfp4") != 0) {
                st = dpb_error_set(DPB_E_UNSUPPORTED, "%s: quantization_config.quant_method '%.40s' is not supported (mxfp4)",
                                   what, qm);
                goto done;
            }
            c->experts_format = DPB_EXPERTS_MXFP4;
            if (c->hidden_size % 32 || c->intermediate_size % 32) {
                st = dpb_error_set(DPB_E_FORMAT, "%s: MXFP4 experts need hidden_size and intermediate_size divisible by 32",
                                   what);
                goto done;
            }
        }
    } else {
        const cJSON *q = cJSON_GetObjectItemCaseSensitive(root, "quantization_config");
        if (q && !cJSON_IsNull(q)) {
            st = dpb_error_set(DPB_E_UNSUPPORTED, "%s: quantization_config is only supported for gpt_oss (mxfp4)", what);
            goto done;
        }
    }

    c->bos_token_id = c->pad_token_id = -1;
    TRY(dpb_json_get_int(root, "bos_token_id", what, DPB_JSON_OPTIONAL, 0, c->vocab_size - 1, -1, &c->bos_token_id,
                         NULL));
    TRY(dpb_json_get_int(root, "pad_token_id", what, DPB_JSON_OPTIONAL, 0, c->vocab_size - 1, -1, &c->pad_token_id,
                         NULL));
    TRY(parse_token_ids(root, "eos_token_id", what, c->vocab_size, &c->n_eos, c->eos_ids));
done:
    cJSON_Delete(root);
    return st;
}

dpb_status dpb_config_load(const char *path, dpb_model_config *out)
{
    char *text;
    size_t len;
    dpb_status st = dpb_file_read(path, MAX_CONFIG_BYTES, &text, &len);
    if (st) return st;
    st = dpb_config_parse(text, len, path, out);
    free(text);
    return st;
}

dpb_status dpb_config_to_json(const dpb_model_config *c, char **out)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return dpb_error_set(DPB_E_NOMEM, "out of memory");
    const char *archname = c->arch == DPB_ARCH_GPT_OSS ? "GptOssForCausalLM"
                           : c->arch == DPB_ARCH_QWEN3 ? "Qwen3ForCausalLM" : "LlamaForCausalLM";
    cJSON *arr = cJSON_AddArrayToObject(o, "architectures");
    cJSON_AddItemToArray(arr, cJSON_CreateString(archname));
    cJSON_AddBoolToObject(o, "attention_bias", c->attention_bias);
    cJSON_AddNumberToObject(o, "attention_dropout", 0.0);
    if (c->bos_token_id >= 0) cJSON_AddNumberToObject(o, "bos_token_id", (double)c->bos_token_id);
    if (c->n_eos == 1) cJSON_AddNumberToObject(o, "eos_token_id", (double)c->eos_ids[0]);
    else if (c->n_eos > 1) {
        cJSON *e = cJSON_AddArrayToObject(o, "eos_token_id");
        for (int i = 0; i < c->n_eos; i++) cJSON_AddItemToArray(e, cJSON_CreateNumber((double)c->eos_ids[i]));
    }
    if (c->arch == DPB_ARCH_GPT_OSS) cJSON_AddNumberToObject(o, "experts_per_token", (double)c->experts_per_tok);
    cJSON_AddNumberToObject(o, "head_dim", (double)c->head_dim);
    cJSON_AddStringToObject(o, "hidden_act", "silu");
    cJSON_AddNumberToObject(o, "hidden_size", (double)c->hidden_size);
    if (c->arch == DPB_ARCH_GPT_OSS)
        cJSON_AddNumberToObject(o, "initial_context_length", (double)c->rope.original_max_position);
    cJSON_AddNumberToObject(o, "initializer_range", 0.02);
    cJSON_AddNumberToObject(o, "intermediate_size", (double)c->intermediate_size);
    if (c->num_sliding_layers > 0 || c->arch == DPB_ARCH_GPT_OSS) {
        cJSON *lt = cJSON_AddArrayToObject(o, "layer_types");
        for (int64_t i = 0; i < c->num_layers; i++)
            cJSON_AddItemToArray(lt, cJSON_CreateString(c->layer_sliding[i] ? "sliding_attention" : "full_attention"));
    }
    cJSON_AddNumberToObject(o, "max_position_embeddings", (double)c->max_position_embeddings);
    if (c->arch == DPB_ARCH_QWEN3) cJSON_AddNumberToObject(o, "max_window_layers", (double)c->num_layers);
    if (c->arch == DPB_ARCH_LLAMA) cJSON_AddBoolToObject(o, "mlp_bias", c->mlp_bias);
    cJSON_AddStringToObject(o, "model_type", c->model_type[0] ? c->model_type : dpb_arch_name(c->arch));
    cJSON_AddNumberToObject(o, "num_attention_heads", (double)c->num_heads);
    if (c->arch == DPB_ARCH_GPT_OSS) cJSON_AddNumberToObject(o, "num_experts_per_tok", (double)c->experts_per_tok);
    cJSON_AddNumberToObject(o, "num_hidden_layers", (double)c->num_layers);
    cJSON_AddNumberToObject(o, "num_key_value_heads", (double)c->num_kv_heads);
    if (c->arch == DPB_ARCH_GPT_OSS) {
        cJSON_AddNumberToObject(o, "num_local_experts", (double)c->num_experts);
        cJSON_AddBoolToObject(o, "output_router_logits", 0);
    }
    if (c->pad_token_id >= 0) cJSON_AddNumberToObject(o, "pad_token_id", (double)c->pad_token_id);
    if (c->arch == DPB_ARCH_GPT_OSS && c->experts_format == DPB_EXPERTS_MXFP4) {
        cJSON *q = cJSON_AddObjectToObject(o, "quantization_config");
        cJSON *m = cJSON_AddArrayToObject(q, "modules_to_not_convert");
        const char *mods[] = {"model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"};
        for (int i = 0; i < 4; i++) cJSON_AddItemToArray(m, cJSON_CreateString(mods[i]));
        cJSON_AddStringToObject(q, "quant_method", "mxfp4");
    }
    cJSON_AddNumberToObject(o, "rms_norm_eps", c->rms_norm_eps);
    if (c->rope.type == DPB_ROPE_DEFAULT) cJSON_AddNullToObject(o, "rope_scaling");
    else {
        cJSON *r = cJSON_AddObjectToObject(o, "rope_scaling");
        if (c->rope.type == DPB_ROPE_YARN) {
            cJSON_AddNumberToObject(r, "beta_fast", c->rope.beta_fast);
            cJSON_AddNumberToObject(r, "beta_slow", c->rope.beta_slow);
        }
        cJSON_AddNumberToObject(r, "factor", c->rope.factor);
        if (c->rope.type == DPB_ROPE_LLAMA3) {
            cJSON_AddNumberToObject(r, "high_freq_factor", c->rope.high_freq_factor);
            cJSON_AddNumberToObject(r, "low_freq_factor", c->rope.low_freq_factor);
        }
        if (c->rope.type != DPB_ROPE_LINEAR)
            cJSON_AddNumberToObject(r, "original_max_position_embeddings", (double)c->rope.original_max_position);
        cJSON_AddStringToObject(r, "rope_type", c->rope.type == DPB_ROPE_YARN ? "yarn"
                                                : c->rope.type == DPB_ROPE_LLAMA3 ? "llama3" : "linear");
        if (c->rope.type == DPB_ROPE_YARN) cJSON_AddBoolToObject(r, "truncate", c->rope.truncate);
    }
    cJSON_AddNumberToObject(o, "rope_theta", c->rope.theta);
    if (c->arch == DPB_ARCH_GPT_OSS) cJSON_AddNumberToObject(o, "router_aux_loss_coef", 0.9);
    if (c->sliding_window > 0) cJSON_AddNumberToObject(o, "sliding_window", (double)c->sliding_window);
    else cJSON_AddNullToObject(o, "sliding_window");
    if (c->arch == DPB_ARCH_GPT_OSS) cJSON_AddNumberToObject(o, "swiglu_limit", c->swiglu_limit);
    cJSON_AddBoolToObject(o, "tie_word_embeddings", c->tie_word_embeddings);
    cJSON_AddStringToObject(o, "torch_dtype", "bfloat16");
    cJSON_AddStringToObject(o, "transformers_version", "4.55.0");
    cJSON_AddBoolToObject(o, "use_cache", 1);
    if (c->arch == DPB_ARCH_QWEN3) cJSON_AddBoolToObject(o, "use_sliding_window", c->num_sliding_layers > 0);
    cJSON_AddNumberToObject(o, "vocab_size", (double)c->vocab_size);
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    if (!s) return dpb_error_set(DPB_E_NOMEM, "out of memory");
    *out = s;
    return DPB_OK;
}

dpb_status dpb_generation_config_parse(const char *text, size_t len, const char *what, dpb_generation_config *g)
{
    memset(g, 0, sizeof *g);
    g->bos_token_id = g->pad_token_id = -1;
    g->temperature = 1.0;
    g->top_p = 1.0;
    cJSON *root = NULL;
    dpb_status st = dpb_json_parse(text, len, what, &root);
    if (st) return st;
    if (!cJSON_IsObject(root)) {
        st = dpb_error_set(DPB_E_FORMAT, "%s: the top level must be a JSON object", what);
        goto done;
    }
    TRY(parse_token_ids(root, "eos_token_id", what, 0, &g->n_eos, g->eos_ids));
    TRY(dpb_json_get_int(root, "bos_token_id", what, DPB_JSON_OPTIONAL, 0, MAX_VOCAB, -1, &g->bos_token_id, NULL));
    TRY(dpb_json_get_int(root, "pad_token_id", what, DPB_JSON_OPTIONAL, 0, MAX_VOCAB, -1, &g->pad_token_id, NULL));
    TRY(dpb_json_get_bool(root, "do_sample", what, DPB_JSON_OPTIONAL, false, &g->do_sample, NULL));
    TRY(dpb_json_get_double(root, "temperature", what, DPB_JSON_OPTIONAL, 0, 100, 1.0, &g->temperature, NULL));
    TRY(dpb_json_get_double(root, "top_p", what, DPB_JSON_OPTIONAL, 0, 1, 1.0, &g->top_p, NULL));
    TRY(dpb_json_get_double(root, "min_p", what, DPB_JSON_OPTIONAL, 0, 1, 0.0, &g->min_p, NULL));
    TRY(dpb_json_get_int(root, "top_k", what, DPB_JSON_OPTIONAL, 0, MAX_VOCAB, 0, &g->top_k, NULL));
    g->present = true;
done:
    cJSON_Delete(root);
    return st;
}

void dpb_generation_config_default(const dpb_model_config *cfg, dpb_generation_config *g)
{
    memset(g, 0, sizeof *g);
    g->n_eos = cfg->n_eos;
    memcpy(g->eos_ids, cfg->eos_ids, sizeof g->eos_ids);
    g->bos_token_id = cfg->bos_token_id;
    g->pad_token_id = cfg->pad_token_id;
    g->temperature = 1.0;
    g->top_p = 1.0;
}

/* A special token is a string or an AddedToken object {"content": ...}. */
static dpb_status token_string(const cJSON *root, const char *key, const char *what, char **out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    *out = NULL;
    if (!it || cJSON_IsNull(it)) return DPB_OK;
    const char *s = NULL;
    if (cJSON_IsString(it)) s = it->valuestring;
    else if (cJSON_IsObject(it)) {
        dpb_status st = dpb_json_get_string(it, "content", what, DPB_JSON_REQUIRED, NULL, &s, NULL);
        if (st) return st;
    } else return dpb_error_set(DPB_E_FORMAT, "%s: field '%s' must be a string or a token object", what, key);
    *out = strdup(s);
    return *out ? DPB_OK : dpb_error_set(DPB_E_NOMEM, "out of memory");
}

dpb_status dpb_tokenizer_config_parse(const char *text, size_t len, const char *what, dpb_tokenizer_config *tc)
{
    memset(tc, 0, sizeof *tc);
    cJSON *root = NULL;
    dpb_status st = dpb_json_parse(text, len, what, &root);
    if (st) return st;
    if (!cJSON_IsObject(root)) {
        st = dpb_error_set(DPB_E_FORMAT, "%s: the top level must be a JSON object", what);
        goto done;
    }
    TRY(token_string(root, "bos_token", what, &tc->bos_token));
    TRY(token_string(root, "eos_token", what, &tc->eos_token));
    TRY(token_string(root, "pad_token", what, &tc->pad_token));
    TRY(token_string(root, "unk_token", what, &tc->unk_token));
    TRY(dpb_json_get_bool(root, "add_bos_token", what, DPB_JSON_OPTIONAL, false, &tc->add_bos_token, NULL));
    TRY(dpb_json_get_bool(root, "add_eos_token", what, DPB_JSON_OPTIONAL, false, &tc->add_eos_token, NULL));
    const cJSON *mml = cJSON_GetObjectItemCaseSensitive(root, "model_max_length");
    if (cJSON_IsNumber(mml) && mml->valuedouble >= 1 && mml->valuedouble <= (double)MAX_POS)
        tc->model_max_length = (int64_t)mml->valuedouble; /* HF writes 1e30 for "unlimited" */
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(root, "chat_template");
    if (cJSON_IsString(ct)) {
        tc->chat_template = strdup(ct->valuestring);
        if (!tc->chat_template) { st = dpb_error_set(DPB_E_NOMEM, "out of memory"); goto done; }
    } else if (cJSON_IsArray(ct)) {
        /* [{name, template}, ...]: keep the "default" one. */
        const cJSON *e;
        cJSON_ArrayForEach(e, ct) {
            const cJSON *n = cJSON_GetObjectItemCaseSensitive(e, "name");
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "template");
            if (cJSON_IsString(n) && cJSON_IsString(t) && strcmp(n->valuestring, "default") == 0) {
                tc->chat_template = strdup(t->valuestring);
                break;
            }
        }
    }
    tc->present = true;
done:
    cJSON_Delete(root);
    if (st) dpb_tokenizer_config_free(tc);
    return st;
}

void dpb_tokenizer_config_free(dpb_tokenizer_config *tc)
{
    free(tc->bos_token);
    free(tc->eos_token);
    free(tc->pad_token);
    free(tc->unk_token);
    free(tc->chat_template);
    memset(tc, 0, sizeof *tc);
}
