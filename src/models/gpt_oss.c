/* gpt-oss: attention sinks, q/k/v/o biases, sliding window on the layers
 * layer_types names, YaRN RoPE, and a mixture of experts: router logits
 * (with bias) -> top-k -> softmax over those k -> clamped SwiGLU experts on
 * interleaved gate/up rows, bf16 or MXFP4, down bias weighted by the
 * routing weight. */
#include <stdio.h>
#include <stdlib.h>
#include "models/model.h"

static dpb_status bind_layer(dpb_model *m, const dpb_checkpoint *ck, int L)
{
    const dpb_model_config *c = &m->cfg;
    dpb_layer_weights *lw = &m->layers[L];
    const int64_t H = c->hidden_size, I = c->intermediate_size, E = c->num_experts;
    char name[160];
    dpb_status st;
    snprintf(name, sizeof name, "model.layers.%d.self_attn.sinks", L);
    if ((st = dpb_model_bind_vector(ck, name, c->num_heads, &lw->sinks))) return st;
    snprintf(name, sizeof name, "model.layers.%d.mlp.router.weight", L);
    if ((st = dpb_model_bind_matrix(ck, name, E, H, &lw->router))) return st;
    snprintf(name, sizeof name, "model.layers.%d.mlp.router.bias", L);
    if ((st = dpb_model_bind_vector(ck, name, E, &lw->router_bias))) return st;
    snprintf(name, sizeof name, "model.layers.%d.mlp.experts.gate_up_proj_bias", L);
    if ((st = dpb_model_bind_vector(ck, name, E * 2 * I, &lw->gate_up_bias))) return st;
    snprintf(name, sizeof name, "model.layers.%d.mlp.experts.down_proj_bias", L);
    if ((st = dpb_model_bind_vector(ck, name, E * H, &lw->down_bias))) return st;
    lw->gate_up = m->expert_store + (size_t)L * (size_t)(2 * E);
    lw->down = lw->gate_up + E;
    for (int pass = 0; pass < 2; pass++) {
        const char *what = pass == 0 ? "gate_up_proj" : "down_proj";
        int64_t out = pass == 0 ? 2 * I : H, in = pass == 0 ? H : I;
        dpb_weight *dst = pass == 0 ? lw->gate_up : lw->down;
        snprintf(name, sizeof name, "model.layers.%d.mlp.experts.%s_blocks", L, what);
        const dpb_tensor *blk = dpb_checkpoint_get(ck, name);
        if (blk) {
            const dpb_tensor *scl;
            snprintf(name, sizeof name, "model.layers.%d.mlp.experts.%s_scales", L, what);
            if ((st = dpb_checkpoint_find(ck, name, &scl))) return st;
            if (in % 32 || blk->dtype != DPB_DT_U8 || scl->dtype != DPB_DT_U8 ||
                blk->nbytes != (uint64_t)(E * out * in / 2) || scl->nbytes != (uint64_t)(E * out * in / 32))
                return dpb_error_set(DPB_E_FORMAT, "%s: MXFP4 blocks/scales do not match [%lld, %lld, %lld]", blk->name,
                                     (long long)E, (long long)out, (long long)in);
            for (int64_t e = 0; e < E; e++) {
                dst[e] = (dpb_weight){DPB_W_MXFP4, out, in, false,
                                      (const uint8_t *)blk->data + (size_t)(e * out * in / 2),
                                      (const uint8_t *)scl->data + (size_t)(e * out * in / 32)};
            }
        } else {
            const dpb_tensor *t;
            snprintf(name, sizeof name, "model.layers.%d.mlp.experts.%s", L, what);
            if ((st = dpb_checkpoint_find(ck, name, &t))) return st;
            /* transformers' layout: [E, in, out] (x @ W) */
            if (t->dtype != DPB_DT_BF16 || t->ndim != 3 || t->shape[0] != E || t->shape[1] != in || t->shape[2] != out)
                return dpb_error_set(DPB_E_FORMAT, "%s: expected BF16 [%lld, %lld, %lld]", t->name, (long long)E,
                                     (long long)in, (long long)out);
            for (int64_t e = 0; e < E; e++)
                dst[e] = (dpb_weight){DPB_W_BF16, out, in, true, (const uint16_t *)t->data + (size_t)(e * out * in), NULL};
        }
    }
    return DPB_OK;
}

static dpb_status mlp(dpb_fwd *f, const dpb_layer_weights *lw, const float *xn, float *out)
{
    const dpb_model_config *c = &f->m->cfg;
    dpb_backend *be = f->be;
    dpb_status st;
    /* linear, [round_bf16], router_topk; one operation where the backend fuses them */
    if ((st = dpb_backend_router(be, &lw->router, lw->router_bias, xn, f->n, c->experts_per_tok, f->round_bf16,
                                 f->router_logits, f->ridx, f->rwts)))
        return st;
    dpb_moe_args a = {f->n, c->hidden_size, c->intermediate_size, c->experts_per_tok, xn,
                      lw->gate_up, lw->gate_up_bias, lw->down, lw->down_bias, f->ridx, f->rwts,
                      c->swiglu_limit > 0 ? (float)c->swiglu_limit : 7.0f, 1.702f, f->round_bf16, out};
    return be->ops->moe(be, &a);
}

const dpb_model_arch dpb_arch_gpt_oss = {DPB_ARCH_GPT_OSS, "gpt_oss", bind_layer, mlp};
