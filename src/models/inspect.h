/* Parameter, byte and memory accounting of a model (deploybench inspect). */
#ifndef DPB_INSPECT_H
#define DPB_INSPECT_H

#include <stdbool.h>
#include <stdint.h>
#include "core/status.h"
#include "format/config.h"
#include "models/spec.h"

typedef struct dpb_kv_accounting {
    uint64_t bytes_per_token;        /* layers whose cache grows with context (full attention) */
    uint64_t bytes_fixed;            /* sliding-window layers at their full window, per sequence */
    uint64_t bytes_per_token_full_layer;    /* one full-attention layer */
    uint64_t bytes_per_token_sliding_layer; /* one sliding layer, per slot */
    uint64_t bytes;                  /* at (context, batch): what the engine allocates */
} dpb_kv_accounting;

/* KV cache bytes at context tokens and batch sequences: full layers hold
 * context slots, sliding layers min(window, context); each slot holds K and V
 * for every KV head (2 * kv_heads * head_dim * elem_bytes). */
dpb_status dpb_model_kv_bytes(const dpb_model_config *cfg, int64_t context, int64_t batch, int elem_bytes,
                              dpb_kv_accounting *out);

typedef struct dpb_inspect_opts {
    int64_t context;     /* default: 2048 */
    int64_t batch;       /* default: 1 */
    double gpu_mem_gib;  /* default: 80 */
    int kv_elem_bytes;   /* default: 2 (bf16) */
} dpb_inspect_opts;

typedef struct dpb_inspect_result {
    dpb_arch arch;
    /* params_active: MoE models count the top-k experts, attention, router,
     * norms and lm_head, not the embedding table; dense models count all. */
    uint64_t params_total, params_active, weight_bytes;
    uint64_t bytes_by_dtype[DPB_DT_COUNT];
    uint64_t bytes_by_component[DPB_COMP_COUNT];
    uint64_t params_by_component[DPB_COMP_COUNT];
    uint64_t active_by_component[DPB_COMP_COUNT];
    uint64_t active_weight_bytes;    /* bytes read per token at batch 1 (experts: top-k of E) */
    dpb_kv_accounting kv;
    uint64_t activation_bytes;       /* estimate: see docs/INSPECT.md */
    uint64_t memory_bytes, gpu_mem_bytes;
    int64_t context, batch;
    bool fits;
} dpb_inspect_result;

/* Accounts the given tensors (as found in a checkpoint or listed by the spec);
 * each is classified by its spec entry of the same name. */
dpb_status dpb_inspect_tensors(const dpb_model_config *cfg, const dpb_tensor_desc *ts, size_t n,
                               const dpb_inspect_opts *opts, dpb_inspect_result *out);

#endif
