/* Internals of dpb_checkpoint, shared by the folder reader (checkpoint.c)
 * and the in-memory synthesizer (synth/). */
#ifndef DPB_CHECKPOINT_IMPL_H
#define DPB_CHECKPOINT_IMPL_H

#include "format/checkpoint.h"
#include "format/safetensors.h"

struct dpb_checkpoint {
    dpb_model_config cfg;
    dpb_generation_config gen;
    dpb_tokenizer_config tokcfg;
    char *dir;               /* folder, NULL for synthetic */
    char *tokenizer_path;    /* resolved tokenizer file, or NULL */
    dpb_tensor *tensors;     /* sorted by name */
    size_t n_tensors;
    char **names;            /* owned tensor names (synthetic) */
    dpb_safetensors_file *shards;
    size_t n_shards;
    void *arena;             /* synthetic: one allocation holding all tensor data */
    size_t arena_bytes;
    bool synthetic;
    char *synth_preset;
    uint64_t synth_seed;
    int synth_init;          /* dpb_synth_init of synth:PRESET[:SEED][:INIT] (0: hf) */
};

/* Sorts ck->tensors by name and rejects duplicates (naming both files). */
dpb_status dpb_checkpoint_index_tensors(dpb_checkpoint *ck);
/* Resolves a --tokenizer argument (a folder holding tokenizer.json or
 * tokenizer.model, or a file) into an owned path. */
dpb_status dpb_checkpoint_resolve_tokenizer(const char *arg, char **out);

#endif
