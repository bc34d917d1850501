/* Binding a checkpoint's tensors to a dpb_model (no copies: weights stay in
 * the checkpoint's mapping or synthetic arena). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "models/model.h"

dpb_status dpb_model_bind_matrix(const dpb_checkpoint *ck, const char *name, int64_t out, int64_t in, dpb_weight *w)
{
    const dpb_tensor *t;
    dpb_status st = dpb_checkpoint_find(ck, name, &t);
    if (st) return st;
    if (t->ndim != 2 || t->shape[0] != out || t->shape[1] != in || (t->dtype != DPB_DT_BF16 && t->dtype != DPB_DT_F32))
        return dpb_error_set(DPB_E_FORMAT, "tensor '%s': expected BF16 or F32 [%lld, %lld]", name, (long long)out,
                             (long long)in);
    *w = (dpb_weight){t->dtype == DPB_DT_F32 ? DPB_W_F32 : DPB_W_BF16, out, in, false, t->data, NULL};
    return DPB_OK;
}

dpb_status dpb_model_bind_vector(const dpb_checkpoint *ck, const char *name, int64_t len, const uint16_t **v)
{
    const dpb_tensor *t;
    dpb_status st = dpb_checkpoint_find(ck, name, &t);
    if (st) return st;
    if (t->dtype != DPB_DT_BF16 || t->nbytes != (uint64_t)len * 2)
        return dpb_error_set(DPB_E_FORMAT, "tensor '%s': expected %lld BF16 values", name, (long long)len);
    *v = t->data;
    return DPB_OK;
}

const uint16_t *dpb_model_opt_vector(const dpb_checkpoint *ck, const char *name, int64_t len)
{
    const dpb_tensor *t = dpb_checkpoint_get(ck, name);
    if (!t || t->dtype != DPB_DT_BF16 || t->nbytes != (uint64_t)len * 2) return NULL;
    return t->data;
}

void dpb_model_unbind(dpb_model *m)
{
    free(m->layers);
    free(m->expert_store);
    m->layers = NULL;
    m->expert_store = NULL;
}

dpb_status dpb_model_bind(const dpb_checkpoint *ck, dpb_model *m)
{
    memset(m, 0, sizeof *m);
    m->cfg = *dpb_checkpoint_config(ck);
    const dpb_model_config *c = &m->cfg;
    switch (c->arch) {
    case DPB_ARCH_GPT_OSS: m->arch = &dpb_arch_gpt_oss; break;
    case DPB_ARCH_QWEN3: m->arch = &dpb_arch_qwen3; break;
    case DPB_ARCH_LLAMA: m->arch = &dpb_arch_llama; break;
    default: return dpb_error_set(DPB_E_UNSUPPORTED, "model_type '%s' is not supported by the engine", c->model_type);
    }
    const int64_t H = c->hidden_size, V = c->vocab_size, L = c->num_layers, hd = c->head_dim;
    if (H <= 0 || V <= 0 || L <= 0 || L > DPB_MAX_LAYERS || c->num_heads <= 0 || c->num_kv_heads <= 0 || hd <= 0 ||
        c->num_heads % c->num_kv_heads || hd % 2 || c->vocab_size > INT32_MAX)
        return dpb_error_set(DPB_E_FORMAT, "config: inconsistent sizes (hidden %lld, heads %lld/%lld, head_dim %lld, vocab %lld)",
                             (long long)H, (long long)c->num_heads, (long long)c->num_kv_heads, (long long)hd, (long long)V);
    if (c->arch == DPB_ARCH_GPT_OSS &&
        (c->num_experts <= 0 || c->experts_per_tok <= 0 || c->experts_per_tok > c->num_experts || c->experts_per_tok > 64))
        return dpb_error_set(DPB_E_FORMAT, "config: num_experts_per_tok %lld of num_local_experts %lld",
                             (long long)c->experts_per_tok, (long long)c->num_experts);
    dpb_status st;
    if ((st = dpb_model_bind_matrix(ck, "model.embed_tokens.weight", V, H, &m->embed))) goto fail;
    if (c->tie_word_embeddings && !dpb_checkpoint_get(ck, "lm_head.weight")) m->lm_head = m->embed;
    else if ((st = dpb_model_bind_matrix(ck, "lm_head.weight", V, H, &m->lm_head))) goto fail;
    if ((st = dpb_model_bind_vector(ck, "model.norm.weight", H, &m->final_norm))) goto fail;
    m->layers = calloc((size_t)L, sizeof *m->layers);
    if (!m->layers) { st = dpb_error_set(DPB_E_NOMEM, "out of memory"); goto fail; }
    if (c->num_experts > 0) {
        m->expert_store = calloc((size_t)(L * 2 * c->num_experts), sizeof *m->expert_store);
        if (!m->expert_store) { st = dpb_error_set(DPB_E_NOMEM, "out of memory"); goto fail; }
    }
    const int64_t qd = c->num_heads * hd, kvd = c->num_kv_heads * hd;
    for (int l = 0; l < (int)L; l++) {
        dpb_layer_weights *lw = &m->layers[l];
        char n[160];
#define NAME(fmt) (snprintf(n, sizeof n, "model.layers.%d." fmt, l), n)
        if ((st = dpb_model_bind_vector(ck, NAME("input_layernorm.weight"), H, &lw->attn_norm))) goto fail;
        if ((st = dpb_model_bind_vector(ck, NAME("post_attention_layernorm.weight"), H, &lw->mlp_norm))) goto fail;
        if ((st = dpb_model_bind_matrix(ck, NAME("self_attn.q_proj.weight"), qd, H, &lw->q))) goto fail;
        if ((st = dpb_model_bind_matrix(ck, NAME("self_attn.k_proj.weight"), kvd, H, &lw->k))) goto fail;
        if ((st = dpb_model_bind_matrix(ck, NAME("self_attn.v_proj.weight"), kvd, H, &lw->v))) goto fail;
        if ((st = dpb_model_bind_matrix(ck, NAME("self_attn.o_proj.weight"), H, qd, &lw->o))) goto fail;
        lw->bq = dpb_model_opt_vector(ck, NAME("self_attn.q_proj.bias"), qd);
        lw->bk = dpb_model_opt_vector(ck, NAME("self_attn.k_proj.bias"), kvd);
        lw->bv = dpb_model_opt_vector(ck, NAME("self_attn.v_proj.bias"), kvd);
        lw->bo = dpb_model_opt_vector(ck, NAME("self_attn.o_proj.bias"), H);
#undef NAME
        if (c->attention_bias && (!lw->bq || !lw->bk || !lw->bv || !lw->bo)) {
            st = dpb_error_set(DPB_E_FORMAT, "layer %d: attention_bias is set but a q/k/v/o bias is missing", l);
            goto fail;
        }
        lw->sliding = c->sliding_window > 0 && c->layer_sliding[l];
        if ((st = m->arch->bind_layer(m, ck, l))) goto fail;
    }
    if ((st = dpb_rope_table_init(&c->rope, hd, c->max_position_embeddings, &m->rope))) goto fail;
    m->attn_scale = (float)(1.0 / sqrt((double)hd));
    return DPB_OK;
fail:
    dpb_model_unbind(m);
    return st;
}
