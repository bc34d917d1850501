/* Decode attention (flash-decoding) for the CUDA backend: one query row per
 * sequence, the semantics of dpb_attn_args with n == 1 (the per-sequence
 * operation, position from the host or from device memory) and of
 * dpb_attn_batch_args (n sequences, one row each, the row's keys and values
 * written into its cache slot).
 *
 * One block of 256 threads per (row, kv head, split) serves the whole query
 * group of that kv head (heads / kv_heads <= 16), so every key and value is
 * read once per group.  A split walks its keys 64 at a time: the K and V
 * tiles go to shared memory by cp.async (16-byte copies, two tiles in
 * flight), the 64 x G scores are computed at once (4 threads per key, each a
 * quarter of head_dim for every head), the online softmax runs per head in
 * the log2 domain, and the P V product accumulates 4 dims x G heads per
 * thread.  KV in bf16, f32 or fp8 (E4M3, converted in registers).  Sliding
 * layers read only their window; the sink joins the denominator when the
 * splits are merged.  Splits: sized for the most keys a row can see (so one
 * captured graph serves every later step), at least 64 keys each; at run time
 * a row uses only as many as its length needs (one up to 128 keys) and the
 * others exit at once.
 * The last split of a (row, kv head) to finish merges the partial results
 * (a counter in device memory, reset by that block), so there is no second
 * launch.  Design and figures: docs/CUDA.md, "Decode attention". */
#ifndef DPB_CUDA_ATTN_DECODE_H
#define DPB_CUDA_ATTN_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cuda_runtime_api.h>
#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif
#include "backend/backend.h" /* no C++ guards of its own */

/* One launch: either a per-sequence call (batch false: rows n at positions
 * pos0 + r, or pos_dev[0] + r when pos_dev, against k_cache/v_cache and
 * k_new/v_new from pos0 on) or a batch call (batch true: row r of sequence
 * seq[r] at pos[r], caches k_tab/v_tab[seq[r]], its own key in row r of
 * k_new/v_new, written into the cache). */
typedef struct dpb_attn_decode_args {
    bool batch;
    int64_t n, heads, kv_heads, head_dim, slots, window;
    dpb_kv_dtype kv_dtype;
    const float *q;
    const void *k_new, *v_new;
    const void *k_cache, *v_cache; /* per sequence */
    int64_t pos0;
    const int64_t *pos_dev;
    void *const *k_tab, *const *v_tab; /* batch */
    const int32_t *seq;
    const int64_t *pos;
    const uint16_t *sinks;
    float scale;
    float *out;
    int64_t cap; /* the most keys a row may see (sizes the splits) */
    int sms;     /* multiprocessors of the device */
    bool round_out; /* out rounded to bf16 as the last step */
} dpb_attn_decode_args;

/* True when the kernel takes the shape: head_dim 64 or 128, heads % kv_heads == 0, heads / kv_heads <= 16,
 * n * kv_heads <= 65536, slots >= 1, cap >= 1, q and out 16-byte aligned. */
bool dpb_attn_decode_supports(const dpb_attn_decode_args *a);

/* Bytes of scratch the launch needs (partial results of the splits); 0 when one split suffices. */
size_t dpb_attn_decode_scratch(const dpb_attn_decode_args *a);

/* Enqueues the attention on st; scratch holds dpb_attn_decode_scratch(a) bytes (may be NULL when 0). */
dpb_status dpb_attn_decode_launch(const dpb_attn_decode_args *a, void *scratch, cudaStream_t st);

/* The backend's choice of decode kernel: true (the default) this one, false the kernels before it (one block
 * per (row, head, split), a separate merge).  For the lab's comparisons; not thread-safe. */
void dpb_attn_decode_set_enabled(bool on);
/* Programmatic dependent launch of the kernel (pdl.h): 0 off, 1 wait, 2 early; set by the backend when it opens. */
cudaError_t dpb_attn_decode_pdl(int mode);
bool dpb_attn_decode_enabled(void);

#ifdef __cplusplus
}
#endif
#endif
