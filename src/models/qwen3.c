/* Qwen3: Llama's layout plus a per-head RMSNorm on q and k (applied before
 * RoPE; forward.c does it when q_norm/k_norm are bound). */
#include <stdio.h>
#include "models/model.h"

dpb_status dpb_dense_bind_mlp(dpb_model *m, const dpb_checkpoint *ck, int L);
dpb_status dpb_dense_mlp(dpb_fwd *f, const dpb_layer_weights *lw, const float *xn, float *out);

static dpb_status bind_layer(dpb_model *m, const dpb_checkpoint *ck, int L)
{
    dpb_layer_weights *lw = &m->layers[L];
    char name[160];
    dpb_status st;
    snprintf(name, sizeof name, "model.layers.%d.self_attn.q_norm.weight", L);
    if ((st = dpb_model_bind_vector(ck, name, m->cfg.head_dim, &lw->q_norm))) return st;
    snprintf(name, sizeof name, "model.layers.%d.self_attn.k_norm.weight", L);
    if ((st = dpb_model_bind_vector(ck, name, m->cfg.head_dim, &lw->k_norm))) return st;
    return dpb_dense_bind_mlp(m, ck, L);
}

const dpb_model_arch dpb_arch_qwen3 = {DPB_ARCH_QWEN3, "qwen3", bind_layer, dpb_dense_mlp};
