/* Llama (and Yi, which is Llama): RMSNorm, GQA attention with RoPE
 * (default/linear/llama3), SwiGLU MLP down(silu(gate(x)) * up(x)). */
#include <stdio.h>
#include "models/model.h"

dpb_status dpb_dense_bind_mlp(dpb_model *m, const dpb_checkpoint *ck, int L)
{
    const dpb_model_config *c = &m->cfg;
    dpb_layer_weights *lw = &m->layers[L];
    const int64_t H = c->hidden_size, I = c->intermediate_size;
    char name[160];
    dpb_status st;
    snprintf(name, sizeof name, "model.layers.%d.mlp.gate_proj.weight", L);
    if ((st = dpb_model_bind_matrix(ck, name, I, H, &lw->gate))) return st;
    snprintf(name, sizeof name, "model.layers.%d.mlp.up_proj.weight", L);
    if ((st = dpb_model_bind_matrix(ck, name, I, H, &lw->up))) return st;
    snprintf(name, sizeof name, "model.layers.%d.mlp.down_proj.weight", L);
    if ((st = dpb_model_bind_matrix(ck, name, H, I, &lw->down_dense))) return st;
    snprintf(name, sizeof name, "model.layers.%d.mlp.gate_proj.bias", L);
    lw->b_gate = dpb_model_opt_vector(ck, name, I);
    snprintf(name, sizeof name, "model.layers.%d.mlp.up_proj.bias", L);
    lw->b_up = dpb_model_opt_vector(ck, name, I);
    snprintf(name, sizeof name, "model.layers.%d.mlp.down_proj.bias", L);
    lw->b_down = dpb_model_opt_vector(ck, name, H);
    return DPB_OK;
}

dpb_status dpb_dense_mlp(dpb_fwd *f, const dpb_layer_weights *lw, const float *xn, float *out)
{
    dpb_backend *be = f->be;
    const int64_t I = f->m->cfg.intermediate_size;
    dpb_status st;
    const dpb_weight *w2[2] = {&lw->gate, &lw->up};
    const uint16_t *b2[2] = {lw->b_gate, lw->b_up};
    float *y2[2] = {f->tmp_a, f->tmp_b};
    if (f->round_bf16 && be->ops->swiglu_bf16) {
        /* the rounds of gate, up and the product in the one pass of the fused operation */
        if (be->ops->swiglu_mlp && be->ops->swiglu_down) {
            st = be->ops->swiglu_mlp(be, &lw->gate, lw->b_gate, &lw->up, lw->b_up, xn, f->n, f->tmp_a, f->tmp_b,
                                     &lw->down_dense, lw->b_down, out);
            if (st != DPB_E_UNSUPPORTED) return st;
            dpb_error_clear(); /* not taken: the two calls below */
        }
        if ((st = dpb_backend_linear_multi(be, 2, w2, b2, xn, f->n, false, y2))) return st;
        if (be->ops->swiglu_down)
            return be->ops->swiglu_down(be, f->tmp_a, f->tmp_b, f->n, I, &lw->down_dense, lw->b_down, out);
        if ((st = be->ops->swiglu_bf16(be, f->tmp_a, f->tmp_b, f->n, I, f->tmp_a))) return st;
        return be->ops->linear(be, &lw->down_dense, lw->b_down, f->tmp_a, f->n, out);
    }
    if ((st = dpb_backend_linear_multi(be, 2, w2, b2, xn, f->n, f->round_bf16, y2))) return st;
    if ((st = be->ops->swiglu(be, f->tmp_a, f->tmp_b, f->n, I, f->tmp_a))) return st;
    if (f->round_bf16 && (st = be->ops->round_bf16(be, f->tmp_a, f->n * I))) return st;
    return be->ops->linear(be, &lw->down_dense, lw->b_down, f->tmp_a, f->n, out);
}

const dpb_model_arch dpb_arch_llama = {DPB_ARCH_LLAMA, "llama", dpb_dense_bind_mlp, dpb_dense_mlp};
