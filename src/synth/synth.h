/* Random-weight checkpoints of preset architectures: written as Hugging Face
 * folders (deploybench synth) or generated in memory (synth:PRESET[:SEED][:INIT]).
 * Weights are a pure function of (seed, init, tensor name, element index), so a
 * file and an in-memory model of the same preset, seed and init are identical,
 * whatever the thread count. */
#ifndef DPB_SYNTH_H
#define DPB_SYNTH_H

#include <stdbool.h>
#include <stdint.h>
#include "core/status.h"
#include "format/checkpoint.h"
#include "backend/backend.h"
#include "format/config.h"

#define DPB_SYNTH_DEFAULT_SEED 0

/* How the random weights are spread (src/synth/synth.c, tensor_spread, and
 * docs/CHECKPOINTS.md): hf is N(0, 0.02) everywhere as transformers
 * initializes (the default); scaled is fan-in scaling with GPT-2's
 * residual-output scaling, a unit-variance embedding and matching MXFP4
 * scales: a well-conditioned random model at any width and depth. */
typedef enum dpb_synth_init { DPB_SYNTH_INIT_HF = 0, DPB_SYNTH_INIT_SCALED = 1 } dpb_synth_init;
/* "hf" or "scaled"; anything else is an error naming the value. */
dpb_status dpb_synth_init_parse(const char *s, dpb_synth_init *out);
const char *dpb_synth_init_name(dpb_synth_init init);

typedef struct dpb_preset {
    const char *name;
    const char *description;
} dpb_preset;

/* The preset list (NULL-terminated names). */
const dpb_preset *dpb_synth_presets(int *count);
/* Config of a preset (published values), with --layers/--experts overrides (0 = keep). */
dpb_status dpb_synth_preset_config(const char *name, int64_t layers, int experts_format, dpb_model_config *out);
/* True if spec starts with "synth:" (synth:PRESET[:SEED][:INIT], INIT hf or scaled). */
bool dpb_synth_is_spec(const char *spec);
/* Opens a synth:PRESET[:SEED][:INIT] model in host memory (checkpoint.c calls this). */
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
    int init;                /* dpb_synth_init (0: hf) */
} dpb_synth_write_opts;

typedef struct dpb_synth_write_result {
    uint64_t bytes_written;
    int shards;
    double seconds;
} dpb_synth_write_result;

dpb_status dpb_synth_write(const dpb_synth_write_opts *o, dpb_synth_write_result *res);

/* Fills n bytes of tensor data for the spec'd tensor named name, starting at
 * byte offset off of that tensor (off a multiple of 8), init hf. Pure function. */
struct dpb_tensor_spec;
void dpb_synth_fill(const struct dpb_tensor_spec *t, uint64_t seed, uint64_t off, uint64_t n, void *dst);
/* The fill rule of tensor t of a model of config cfg under init and seed
 * (what dpb_synth_fill_rule and a backend's fill run). */
dpb_status dpb_synth_tensor_rule(const struct dpb_tensor_spec *t, const dpb_model_config *cfg, dpb_synth_init init,
                                 uint64_t seed, dpb_fill_rule *out);
/* The nominal standard deviation of t's values under init (MXFP4 blocks: of
 * the dequantized weights; norms and zeros: 0). */
double dpb_synth_tensor_std(const struct dpb_tensor_spec *t, const dpb_model_config *cfg, dpb_synth_init init);

/* Deferred weights: while on, synth:PRESET checkpoints open without host
 * weights (the CLI turns it on for device backends); an engine then
 * generates them where its backend keeps memory (dpb_synth_placed). */
void dpb_synth_set_deferred(bool on);
bool dpb_synth_deferred(void);

/* A copy of synthetic checkpoint src whose tensor data is placed by place():
 * called once per tensor with its fill rule and size, it returns where the
 * bytes now are (e.g. device memory it allocated and filled).  The copy owns
 * no weight memory; close it with dpb_checkpoint_close. */
typedef dpb_status (*dpb_synth_place_fn)(void *ctx, const dpb_fill_rule *rule, uint64_t bytes, const void **out);
dpb_status dpb_synth_placed(const dpb_checkpoint *src, dpb_synth_place_fn place, void *ctx, dpb_checkpoint **out);
/* Host version of a fill rule: n bytes from byte offset off (a multiple of 8). */
void dpb_synth_fill_rule(const dpb_fill_rule *r, uint64_t off, uint64_t n, void *dst);

#endif
