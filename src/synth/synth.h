/* Random-weight checkpoints of preset architectures: written as Hugging Face
 * folders (deploybench synth) or generated in memory (synth:PRESET[:SEED]).
 * Weights are a pure function of (seed, tensor name, element index), so a
 * file and an in-memory model of the same preset and seed are identical,
 * whatever the thread count. */
#ifndef DPB_SYNTH_H
#define DPB_SYNTH_H

#include <stdbool.h>
#include <stdint.h>
#include "core/status.h"
#include "format/checkpoint.h"
#include "format/config.h"

#define DPB_SYNTH_DEFAULT_SEED 0

typedef struct dpb_preset {
    const char *name;
    const char *description;
} dpb_preset;

/* The preset list (NULL-terminated names). */
const dpb_preset *dpb_synth_presets(int *count);
/* Config of a preset (published values), with --layers/--experts overrides (0 = keep). */
dpb_status dpb_synth_preset_config(const char *name, int64_t layers, int experts_format, dpb_model_config *out);
/* Parses "synth:PRESET[:SEED]"; false if spec does not start with "synth:". */
bool dpb_synth_is_spec(const char *spec);
/* Opens a synth:PRESET[:SEED] model in host memory (checkpoint.c calls this). */
dpb_status dpb_synth_open(const char *spec, const dpb_checkpoint_opts *opts, dpb_checkpoint **out);

typedef struct dpb_synth_write_opts {
    const char *preset;
    const char *out_dir;
    uint64_t seed;
    int64_t layers;          /* 0: preset's */
    int experts_format;      /* 0: preset default */
    const char *tokenizer;   /* folder or file to copy in, or NULL */
    uint64_t max_shard_bytes; /* 0: 5 GB */
    int threads;             /* 0: all */
} dpb_synth_write_opts;

typedef struct dpb_synth_write_result {
    uint64_t bytes_written;
    int shards;
    double seconds;
} dpb_synth_write_result;

dpb_status dpb_synth_write(const dpb_synth_write_opts *o, dpb_synth_write_result *res);

/* Fills n bytes of tensor data for the spec'd tensor named name, starting at
 * byte offset off of that tensor (off and n multiples of 8). Pure function. */
struct dpb_tensor_spec;
void dpb_synth_fill(const struct dpb_tensor_spec *t, uint64_t seed, uint64_t off, uint64_t n, void *dst);

#endif
