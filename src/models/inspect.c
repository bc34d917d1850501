#include "models/inspect.h"

#include <stdlib.h>
#include <string.h>
#include "core/checked.h"

dpb_status dpb_model_kv_bytes(const dpb_model_config *c, int64_t context, int64_t batch, int elem_bytes,
                              dpb_kv_accounting *out)
{
    memset(out, 0, sizeof *out);
    if (context < 0 || batch < 0 || elem_bytes <= 0)
        return dpb_error_set(DPB_E_ARG, "KV accounting: context, batch and element size must be positive");
    uint64_t slot = 2ull * (uint64_t)c->num_kv_heads * (uint64_t)c->head_dim * (uint64_t)elem_bytes;
    uint64_t full = (uint64_t)(c->num_layers - c->num_sliding_layers);
    uint64_t sl = (uint64_t)c->num_sliding_layers;
    out->bytes_per_token_full_layer = slot;
    out->bytes_per_token_sliding_layer = slot;
    out->bytes_per_token = full * slot;
    out->bytes_fixed = sl * (uint64_t)c->sliding_window * slot;
    uint64_t win = (uint64_t)(context < c->sliding_window ? context : c->sliding_window);
    uint64_t per_seq, a, b;
    if (!dpb_mul_u64(out->bytes_per_token, (uint64_t)context, &a) || !dpb_mul_u64(sl * slot, win, &b) ||
        !dpb_add_u64(a, b, &per_seq) || !dpb_mul_u64(per_seq, (uint64_t)batch, &out->bytes))
        return dpb_error_set(DPB_E_RANGE, "KV accounting overflows at context %lld, batch %lld", (long long)context,
                             (long long)batch);
    return DPB_OK;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const dpb_tensor_spec *)a)->name, ((const dpb_tensor_spec *)b)->name);
}

dpb_status dpb_inspect_tensors(const dpb_model_config *c, const dpb_tensor_desc *ts, size_t n,
                               const dpb_inspect_opts *opts, dpb_inspect_result *r)
{
    memset(r, 0, sizeof *r);
    dpb_inspect_opts o = {2048, 1, 80.0, 2};
    if (opts) {
        if (opts->context > 0) o.context = opts->context;
        if (opts->batch > 0) o.batch = opts->batch;
        if (opts->gpu_mem_gib > 0) o.gpu_mem_gib = opts->gpu_mem_gib;
        if (opts->kv_elem_bytes > 0) o.kv_elem_bytes = opts->kv_elem_bytes;
    }
    r->arch = c->arch;
    r->context = o.context;
    r->batch = o.batch;
    dpb_tensor_specs specs;
    dpb_status st = dpb_model_tensor_specs(c, &specs);
    if (st) return st;
    qsort(specs.t, specs.n, sizeof *specs.t, cmp_name);
    for (size_t i = 0; i < n; i++) {
        dpb_tensor_spec key;
        if (strlen(ts[i].name) >= sizeof key.name) goto unknown;
        strcpy(key.name, ts[i].name);
        const dpb_tensor_spec *s = bsearch(&key, specs.t, specs.n, sizeof *specs.t, cmp_name);
        if (!s) {
        unknown:
            dpb_tensor_specs_free(&specs);
            return dpb_error_set(DPB_E_FORMAT, "tensor '%.120s' is not part of the %s architecture", ts[i].name,
                                 dpb_arch_name(c->arch));
        }
        uint64_t elems = 1;
        for (int d = 0; d < ts[i].ndim; d++)
            if (!dpb_mul_u64(elems, (uint64_t)ts[i].shape[d], &elems)) {
                dpb_tensor_specs_free(&specs);
                return dpb_error_set(DPB_E_RANGE, "tensor '%s': size overflows", ts[i].name);
            }
        uint64_t bytes = elems * dpb_dtype_size(ts[i].dtype);
        uint64_t params = s->init == DPB_INIT_MXFP4_BLOCKS ? 2 * elems : s->init == DPB_INIT_MXFP4_SCALES ? 0 : elems;
        /* Active share per token: top-k of E for expert tensors, none of the
         * embedding table (a row lookup), all of everything else. */
        uint64_t active = params, active_bytes = bytes;
        if (s->per_expert && c->num_experts > 0) {
            active = params / (uint64_t)c->num_experts * (uint64_t)c->experts_per_tok;
            active_bytes = bytes / (uint64_t)c->num_experts * (uint64_t)c->experts_per_tok;
        }
        if (s->component == DPB_COMP_EMBED) {
            /* The convention of the model cards: a MoE model's active count
             * leaves out the embedding table (gpt-oss-20b: 3.6B); a dense
             * model's active count is its total (Qwen3-32B: 32.8B). */
            if (c->num_experts > 0) active = 0;
            active_bytes = (uint64_t)c->hidden_size * dpb_dtype_size(ts[i].dtype);
        }
        r->params_total += params;
        r->params_active += active;
        r->weight_bytes += bytes;
        r->active_weight_bytes += active_bytes;
        if (ts[i].dtype > 0 && ts[i].dtype < DPB_DT_COUNT) r->bytes_by_dtype[ts[i].dtype] += bytes;
        r->bytes_by_component[s->component] += bytes;
        r->params_by_component[s->component] += params;
        r->active_by_component[s->component] += active;
    }
    /* Tied embeddings serve as lm_head: count that use once more as active. */
    if (c->tie_word_embeddings) {
        uint64_t p = (uint64_t)c->vocab_size * (uint64_t)c->hidden_size;
        r->params_active += p;
        r->active_by_component[DPB_COMP_LM_HEAD] += p;
        r->active_weight_bytes += p * 2;
    }
    dpb_tensor_specs_free(&specs);
    st = dpb_model_kv_bytes(c, o.context, o.batch, o.kv_elem_bytes, &r->kv);
    if (st) return st;
    /* Activations (estimate): f32 logits for the batch, plus a 512-token
     * prefill chunk's f32 work buffers (residual, normed, q, k, v, attention
     * out, and the MLP's gate/up for the active width). */
    uint64_t q = (uint64_t)(c->num_heads * c->head_dim), kvw = (uint64_t)(c->num_kv_heads * c->head_dim);
    uint64_t inter = (uint64_t)c->intermediate_size * (c->num_experts ? (uint64_t)c->experts_per_tok : 1);
    uint64_t chunk = (uint64_t)(o.context < 512 ? o.context : 512) * (uint64_t)o.batch;
    r->activation_bytes = (uint64_t)o.batch * (uint64_t)c->vocab_size * 4 +
                          chunk * (3 * (uint64_t)c->hidden_size + 2 * q + 2 * kvw + 2 * inter) * 4;
    r->memory_bytes = r->weight_bytes + r->kv.bytes + r->activation_bytes;
    r->gpu_mem_bytes = (uint64_t)(o.gpu_mem_gib * 1073741824.0);
    r->fits = r->memory_bytes <= r->gpu_mem_bytes;
    return DPB_OK;
}
