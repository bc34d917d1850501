/* A model's weights and configuration: a Hugging Face folder (mmapped
 * safetensors, single or sharded) or a synth:PRESET[:SEED][:INIT] model generated in
 * memory.  Tensors are bound to the architecture on open. */
#ifndef DPB_CHECKPOINT_H
#define DPB_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/status.h"
#include "format/config.h"
#include "format/dtype.h"

typedef struct dpb_tensor {
    const char *name;
    dpb_dtype dtype;
    int ndim;
    int64_t shape[DPB_MAX_DIMS];
    uint64_t nbytes;
    const void *data;  /* host memory: mapping or generated buffer */
    const char *file;  /* shard file name, NULL for synthetic */
} dpb_tensor;

typedef struct dpb_checkpoint dpb_checkpoint;

typedef struct dpb_checkpoint_opts {
    const char *tokenizer;  /* --tokenizer DIR|FILE, or NULL */
    int64_t layers;         /* synth: --layers N override, 0 = preset's */
    int experts_format;     /* synth: 0 = preset default, else dpb_experts_format */
    bool no_weights;        /* synth: config only, no tensor data (inspect, device generation) */
} dpb_checkpoint_opts;

/* model_arg: a folder, or "synth:PRESET[:SEED][:INIT]". opts may be NULL. */
dpb_status dpb_checkpoint_open(const char *model_arg, const dpb_checkpoint_opts *opts, dpb_checkpoint **out);
/* A folder with config.json and model.safetensors or model.safetensors.index.json. */
dpb_status dpb_checkpoint_open_dir(const char *dir, const dpb_checkpoint_opts *opts, dpb_checkpoint **out);
void dpb_checkpoint_close(dpb_checkpoint *ck);

const dpb_model_config *dpb_checkpoint_config(const dpb_checkpoint *ck);
const dpb_generation_config *dpb_checkpoint_generation(const dpb_checkpoint *ck);
size_t dpb_checkpoint_tensor_count(const dpb_checkpoint *ck);
const dpb_tensor *dpb_checkpoint_tensor_at(const dpb_checkpoint *ck, size_t i);
/* DPB_E_FORMAT naming the tensor when absent. */
dpb_status dpb_checkpoint_find(const dpb_checkpoint *ck, const char *name, const dpb_tensor **out);
/* Like find, but NULL without an error when absent. */
const dpb_tensor *dpb_checkpoint_get(const dpb_checkpoint *ck, const char *name);
/* The folder, or NULL for synthetic models. */
const char *dpb_checkpoint_dir(const dpb_checkpoint *ck);
bool dpb_checkpoint_is_synthetic(const dpb_checkpoint *ck);
/* False for a synthetic checkpoint opened without weights (inspect, deferred generation). */
bool dpb_checkpoint_has_weights(const dpb_checkpoint *ck);
/* Path of tokenizer.json (or tokenizer.model / *.tiktoken) to use, or NULL: --tokenizer first, then the folder's. */
const char *dpb_checkpoint_tokenizer_path(const dpb_checkpoint *ck);
/* Total bytes of tensor data. */
uint64_t dpb_checkpoint_weight_bytes(const dpb_checkpoint *ck);

#endif
