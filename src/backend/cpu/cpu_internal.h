/* Internals shared by the reference and the fast cpu backends. */
#ifndef DPB_CPU_INTERNAL_H
#define DPB_CPU_INTERNAL_H

#include "backend/backend.h"

dpb_status dpb_cpu_alloc(dpb_backend *b, size_t bytes, void **out);
void dpb_cpu_free(dpb_backend *b, void *p);
dpb_status dpb_cpu_copy(dpb_backend *b, void *dst, const void *src, size_t bytes);
dpb_status dpb_cpu_sync(dpb_backend *b);
dpb_status dpb_cpu_map_host(dpb_backend *b, const void *host, size_t bytes, const void **out);

dpb_status dpb_ref_embed(dpb_backend *b, const dpb_weight *table, const int32_t *ids, int64_t n, float *out);
dpb_status dpb_ref_rmsnorm(dpb_backend *b, const float *x, const uint16_t *w, int64_t n, int64_t dim, float eps,
                           float *y);
dpb_status dpb_ref_rope(dpb_backend *b, float *x, int64_t n, int64_t heads, const int64_t *pos,
                        const dpb_rope_table *rt);
dpb_status dpb_ref_kv_write(dpb_backend *b, void *k_cache, void *v_cache, int64_t slots, int64_t row_elems,
                            dpb_kv_dtype dt, const void *k_new, const void *v_new, int64_t n, int64_t pos0);
dpb_status dpb_ref_to_kv(dpb_backend *b, const float *src, int64_t n, dpb_kv_dtype dt, void *dst);
dpb_status dpb_ref_router_topk(dpb_backend *b, const float *logits, int64_t n, int64_t E, int64_t k, int32_t *idx,
                               float *wts);
dpb_status dpb_ref_swiglu(dpb_backend *b, const float *gate, const float *up, int64_t n, int64_t I, float *out);
dpb_status dpb_ref_add(dpb_backend *b, float *y, const float *x, int64_t n);
dpb_status dpb_ref_round_bf16(dpb_backend *b, float *x, int64_t n);
const void *dpb_attn_row(const dpb_attn_args *a, bool value, int64_t p);
float dpb_swiglu_clamped(float g, float u, float limit, float alpha);

/* SIMD kernel set, chosen at run time.  Each computes a slice of outputs for
 * all n rows of x; the summation order of one output never depends on n or
 * on the slice, so results are identical for any batching and threading. */
typedef struct dpb_cpu_kernels {
    const char *name;
    /* Row-major bf16/f32 W [out, in]: y[t, o] for o in [o0, o1). */
    void (*bf16_rows)(const dpb_weight *w, const float *x, int64_t n, float *y, int64_t o0, int64_t o1);
    /* Transposed bf16 W stored [in, out]: y[t, o] for o in [o0, o1) (o0, o1 multiples of 8 or o1 = out). */
    void (*bf16t_cols)(const dpb_weight *w, const float *x, int64_t n, float *y, int64_t o0, int64_t o1);
    /* MXFP4 with x pre-permuted per 32-block as [even elements, odd elements]. */
    void (*mxfp4_rows)(const dpb_weight *w, const float *xperm, int64_t n, float *y, int64_t o0, int64_t o1);
    /* q . k over d elements (k in kv dtype), and out += w * v. d a multiple of 8 for SIMD kernels. */
    float (*dot_kv)(const float *q, const void *k, dpb_kv_dtype dt, int64_t d);
    void (*axpy_kv)(float *out, float w, const void *v, dpb_kv_dtype dt, int64_t d);
} dpb_cpu_kernels;

const dpb_cpu_kernels *dpb_cpu_kernels_scalar(void);
const dpb_cpu_kernels *dpb_cpu_kernels_avx2(void);   /* NULL when not compiled */
const dpb_cpu_kernels *dpb_cpu_kernels_avx512(void); /* NULL when not compiled */
/* The best set this CPU supports; DPB_CPU_SIMD=scalar|avx2|avx512 forces one. */
const dpb_cpu_kernels *dpb_cpu_kernels_best(void);

#endif
