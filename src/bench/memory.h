/* deploybench memory: where a model's memory goes at a given context.
 *
 * Per context C (one sequence, C prompt tokens + G generated):
 *   weight_bytes                 the checkpoint's tensor bytes
 *   kv_bytes_allocated_exact     what the engine allocated (dpb_engine_kv_bytes), for max_ctx = C + G
 *   kv_bytes_analytic            inspect's formula (dpb_model_kv_bytes) at the same context: must be equal
 *   workspace_bytes              the engine's persistent activation workspace
 *   host RSS (baseline after the weights, after the engine, peak during generation; /proc/self/status,
 *   peak reset through /proc/self/clear_refs when the kernel allows) and, with NVML, this process's
 *   device memory (baseline, after the engine, peak from 100 Hz polling during generation)
 *   seed_kv_cache_bytes_peak_minus_baseline: the reference study's "KV cache" column, peak memory
 *   during generation minus memory after loading the weights.  It holds the KV cache, the
 *   workspace, transient activations and allocator slack: it is NOT the KV cache. */
#ifndef DPB_BENCH_MEMORY_H
#define DPB_BENCH_MEMORY_H

#include <cjson/cJSON.h>
#include "bench/latency.h"
#include "core/status.h"
#include "engine/engine.h"
#include "format/checkpoint.h"
#include "telemetry/nvml.h"

typedef struct dpb_memory_opts {
    const char *backend;   /* "cpu" (default), "ref", "cuda" */
    int threads;
    int64_t context;       /* prompt tokens */
    int64_t gen_tokens;    /* >= 1 */
    dpb_engine_kv kv;      /* KV cache element type (auto: bf16) */
    dpb_nvml *nvml;        /* NULL: no device figures ("unavailable: <nvml_reason>") */
    const char *nvml_reason;
    unsigned gpu;          /* NVML index */
} dpb_memory_opts;

/* Measures one context; *row gets the fields above (see docs/STUDY.md). */
dpb_status dpb_memory_measure(const dpb_checkpoint *ck, dpb_study_prompts *p, const dpb_memory_opts *o, cJSON **row);

extern const char *const dpb_memory_csv_columns[];

#endif
