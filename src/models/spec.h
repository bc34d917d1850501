/* The tensors an architecture needs, by Hugging Face name and shape.
 *
 * One list serves binding (checking a checkpoint), synth (writing one),
 * inspect (counting parameters and bytes) and the engine (finding weights). */
#ifndef DPB_SPEC_H
#define DPB_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/status.h"
#include "format/config.h"
#include "format/dtype.h"

typedef enum dpb_component {
    DPB_COMP_EMBED = 0, DPB_COMP_ATTN, DPB_COMP_NORM, DPB_COMP_ROUTER, DPB_COMP_EXPERTS, DPB_COMP_MLP,
    DPB_COMP_LM_HEAD, DPB_COMP_COUNT
} dpb_component;

typedef enum dpb_init_kind {
    DPB_INIT_NORMAL = 0,  /* N(0, 0.02) in bf16 */
    DPB_INIT_ONES,        /* RMSNorm weights */
    DPB_INIT_ZEROS,
    DPB_INIT_MXFP4_BLOCKS, /* uniform random nibbles */
    DPB_INIT_MXFP4_SCALES  /* the E8M0 exponent giving std ~0.02 */
} dpb_init_kind;

typedef struct dpb_tensor_spec {
    char name[96];
    dpb_dtype dtype;
    int ndim;
    int64_t shape[4];
    uint64_t nbytes;
    uint64_t params;        /* logical parameters (MXFP4: 2 per block byte; scales 0) */
    dpb_component component;
    int layer;              /* -1 for global tensors */
    dpb_init_kind init;
    bool per_expert;        /* leading dim is the expert index: active share is top-k/E */
} dpb_tensor_spec;

typedef struct dpb_tensor_specs {
    dpb_tensor_spec *t;
    size_t n;
} dpb_tensor_specs;

/* The tensors of cfg (experts format from cfg->experts_format). */
dpb_status dpb_model_tensor_specs(const dpb_model_config *cfg, dpb_tensor_specs *out);
void dpb_tensor_specs_free(dpb_tensor_specs *s);
const char *dpb_component_name(dpb_component c);

/* A tensor as found in a checkpoint, for binding. */
typedef struct dpb_tensor_desc {
    const char *name;
    dpb_dtype dtype;
    int ndim;
    const int64_t *shape;
} dpb_tensor_desc;

/* Checks found tensors against the spec: every missing, unexpected or
 * mis-shaped tensor is listed in one error message ("what" names the folder). */
dpb_status dpb_model_bind_check(const dpb_model_config *cfg, const dpb_tensor_desc *found, size_t n,
                                const char *what);

#endif
