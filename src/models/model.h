/* A model bound to its weights, and the architecture hooks the generic
 * forward pass (src/engine/forward.c) calls.  One file per architecture:
 * gpt_oss.c, qwen3.c, llama.c.  Tensor names and shapes come from
 * src/models/spec.h; the checkpoint has already checked them. */
#ifndef DPB_MODEL_H
#define DPB_MODEL_H

#include <stdbool.h>
#include <stdint.h>
#include "backend/backend.h"
#include "core/status.h"
#include "format/checkpoint.h"
#include "format/config.h"

typedef struct dpb_layer_weights {
    const uint16_t *attn_norm, *mlp_norm;           /* [H] bf16 */
    dpb_weight q, k, v, o;
    const uint16_t *bq, *bk, *bv, *bo;              /* biases or NULL */
    const uint16_t *q_norm, *k_norm;                /* qwen3: [head_dim] */
    const uint16_t *sinks;                          /* gpt-oss: [heads] */
    bool sliding;
    /* gpt-oss mixture of experts */
    dpb_weight router;
    const uint16_t *router_bias;
    dpb_weight *gate_up, *down;                     /* [num_experts] each */
    const uint16_t *gate_up_bias, *down_bias;
    /* dense SwiGLU MLP */
    dpb_weight gate, up, down_dense;
    const uint16_t *b_gate, *b_up, *b_down;
} dpb_layer_weights;

struct dpb_model_arch;

typedef struct dpb_model {
    dpb_model_config cfg;
    const struct dpb_model_arch *arch;
    dpb_weight embed, lm_head;
    const uint16_t *final_norm;
    dpb_layer_weights *layers;
    dpb_rope_table rope;
    float attn_scale;
    dpb_weight *expert_store; /* owns the per-expert weight descriptors */
} dpb_model;

/* Scratch and settings of one forward pass over n rows (see forward.c). */
typedef struct dpb_fwd {
    dpb_backend *be;
    const dpb_model *m;
    bool round_bf16;  /* bf16 activations: round where a bf16 engine would store */
    int64_t n;        /* rows in this pass */
    float *tmp_a, *tmp_b; /* [rows, max(2I, q_dim, H)] */
    float *router_logits; /* [rows, E] */
    int32_t *ridx;        /* [rows, top_k] */
    float *rwts;
} dpb_fwd;

typedef struct dpb_model_arch {
    dpb_arch arch;
    const char *name;
    /* Binds the architecture-specific tensors of layer L (the generic ones,
     * norms and q/k/v/o with biases, are bound by the caller). */
    dpb_status (*bind_layer)(dpb_model *m, const dpb_checkpoint *ck, int L);
    /* out[n, H] = MLP(xn[n, H]) for layer lw. */
    dpb_status (*mlp)(dpb_fwd *f, const dpb_layer_weights *lw, const float *xn, float *out);
} dpb_model_arch;

extern const dpb_model_arch dpb_arch_gpt_oss, dpb_arch_qwen3, dpb_arch_llama;

/* Binds a checkpoint's tensors (weights stay where the checkpoint holds them). */
dpb_status dpb_model_bind(const dpb_checkpoint *ck, dpb_model *out);
void dpb_model_unbind(dpb_model *m);

/* Binding helpers for the architecture files. */
dpb_status dpb_model_bind_matrix(const dpb_checkpoint *ck, const char *name, int64_t out, int64_t in, dpb_weight *w);
dpb_status dpb_model_bind_vector(const dpb_checkpoint *ck, const char *name, int64_t len, const uint16_t **v);
const uint16_t *dpb_model_opt_vector(const dpb_checkpoint *ck, const char *name, int64_t len);

#endif
