/* manifest.json: what a results folder was measured with.
 *
 * A benchmark calls, in order:
 *   dpb_manifest_begin(dir, argc, argv, resume, nvml, &m)  // prepares --out DIR (dpb_results_dir_open), writes
 *                                                          // manifest.json with "status": "running"
 *   dpb_manifest_set_model(m, "synth:gpt-oss-20b", ck)     // model spec and hashes; rewrites the file
 *   dpb_manifest_add(m, "params", json)                    // optional: its own settings, any time
 *   ... measure ...
 *   dpb_manifest_end_with(m, st)                           // end time and status; rewrites atomically
 *   dpb_manifest_free(m)
 *
 * Every rewrite is atomic (dpb_file_write: temporary file + rename), so the
 * file is always whole.  A run killed with kill -9 leaves "running": a reader
 * that finds "running" and no live "pid" knows the run died.
 *
 * Fields (docs/TELEMETRY.md has the full schema):
 *   schema ("deploybench.manifest/1"), command, argv, command_line (shell-quoted),
 *   deploybench_version, commit, hostname, pid, host {cpu_model, cpu_threads,
 *   mem_total_bytes, kernel, gpus, gpu_driver_version, cuda_driver_version},
 *   model {spec, arch, config_sha256, tensor_index_sha256, model_sha256, tensors, weight_bytes},
 *   start {utc, monotonic_ns}, end {utc, monotonic_ns, elapsed_s} (null while running),
 *   status ("running" | "complete" | "interrupted" | "failed"), message,
 *   resumed_from [earlier manifests' start/end/status/commit] (with --resume).
 *
 * Model hashes (SHA-256, lowercase hex):
 *   config_sha256        of the config.json text as read from the folder (for synth: models, the text
 *                        that `deploybench synth` would write);
 *   tensor_index_sha256  of one line per tensor, sorted by name (bytewise): "NAME\tDTYPE\tD0,D1,...\n";
 *   model_sha256         of the config text followed by those lines. */
#ifndef DPB_BENCH_MANIFEST_H
#define DPB_BENCH_MANIFEST_H

#include <stdbool.h>
#include <cjson/cJSON.h>
#include "core/status.h"
#include "format/checkpoint.h"
#include "telemetry/nvml.h"

typedef enum dpb_run_status {
    DPB_RUN_RUNNING = 0,
    DPB_RUN_COMPLETE,
    DPB_RUN_INTERRUPTED,
    DPB_RUN_FAILED
} dpb_run_status;

typedef struct dpb_manifest dpb_manifest;

/* argv[0] is the subcommand name (as the CLI passes it); the recorded command
 * line is "deploybench" followed by argv.  nvml may be NULL (GPU facts then
 * come from the CUDA probe, or are "unavailable: ..."). */
dpb_status dpb_manifest_begin(const char *dir, int argc, char *const *argv, bool resume, const dpb_nvml *nvml,
                              dpb_manifest **out);
/* Records the model (spec is the --model argument) and its hashes, and rewrites the file. */
dpb_status dpb_manifest_set_model(dpb_manifest *m, const char *spec, const dpb_checkpoint *ck);
/* Adds (or replaces) a top-level field; takes ownership of item.  Written at the next rewrite. */
dpb_status dpb_manifest_add(dpb_manifest *m, const char *key, cJSON *item);
/* On --resume: DPB_E_ARG naming the key when one of keys (NULL-terminated) has another value in params than in the
 * folder's earlier manifest (a cell measured one way must not be completed another way); keys absent on either side
 * pass. */
dpb_status dpb_manifest_resume_check(const dpb_manifest *m, const cJSON *params, const char *const *keys);
/* Rewrites manifest.json now. */
dpb_status dpb_manifest_write(dpb_manifest *m);
/* Sets end time and status (message may be NULL) and rewrites the file. */
dpb_status dpb_manifest_end(dpb_manifest *m, dpb_run_status status, const char *message);
/* The same from a command's final status: DPB_OK -> complete, DPB_E_INTERRUPTED
 * -> interrupted, else failed with dpb_error_message().  Keeps the current
 * error message intact for the caller to print. */
dpb_status dpb_manifest_end_with(dpb_manifest *m, dpb_status st);
/* The manifest's path (DIR/manifest.json) and its JSON tree (read-only). */
const char *dpb_manifest_path(const dpb_manifest *m);
const cJSON *dpb_manifest_json(const dpb_manifest *m);
void dpb_manifest_free(dpb_manifest *m);

const char *dpb_run_status_name(dpb_run_status s);

/* Hashes of a model, as recorded in the manifest (see above). */
typedef struct dpb_model_hash {
    char config_sha256[65];
    char tensor_index_sha256[65];
    char model_sha256[65];
    size_t tensors;
} dpb_model_hash;
dpb_status dpb_model_hash_compute(const dpb_checkpoint *ck, dpb_model_hash *out);

/* A command line as one string, each argument shell-quoted when needed
 * (single quotes; ' becomes '\''). Caller frees. */
dpb_status dpb_shell_join(int argc, char *const *argv, char **out);

#endif
