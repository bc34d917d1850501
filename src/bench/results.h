/* Results folders and append-only JSONL, for benchmarks that must lose no
 * finished measurement to Ctrl-C or kill -9.
 *
 * One folder per run (--out DIR).  A fresh run creates it and refuses a
 * folder that already holds anything; with --resume an existing folder is
 * reused (the benchmark reads what is there and skips finished work).
 *
 * JSONL: one JSON object per line, each appended with a single write() and
 * fsync'd, so a killed process leaves at most a partial last line.  Opening
 * a JSONL file for append cuts such a partial last line off (it is a
 * measurement that never finished); reading skips it. */
#ifndef DPB_BENCH_RESULTS_H
#define DPB_BENCH_RESULTS_H

#include <stdbool.h>
#include <stddef.h>
#include <cjson/cJSON.h>
#include "core/status.h"

/* Prepares a run folder.  Fresh (resume false): creates dir (mkdir -p); an
 * existing non-empty folder is DPB_E_ARG naming it and --resume.  Resume:
 * creates it when absent, else uses it as it is.  *was_empty (may be NULL)
 * says whether the folder held nothing before. */
dpb_status dpb_results_dir_open(const char *dir, bool resume, bool *was_empty);

typedef struct dpb_jsonl dpb_jsonl;

/* Opens path for appending (created when absent).  A partial last line left
 * by a killed run is removed; *dropped_bytes (may be NULL) says how much. */
dpb_status dpb_jsonl_open(const char *path, dpb_jsonl **out, size_t *dropped_bytes);
/* Appends obj as one line (unformatted JSON + '\n'), written and fsync'd
 * before returning. */
dpb_status dpb_jsonl_append(dpb_jsonl *j, const cJSON *obj);
void dpb_jsonl_close(dpb_jsonl *j);

/* Calls fn for each complete line of path, parsed (lines that are not a JSON
 * object are an error naming the line number; a partial last line is
 * skipped).  fn returning non-OK stops the walk with that status.  A missing
 * file is not an error (no lines). */
typedef dpb_status (*dpb_jsonl_fn)(const cJSON *obj, size_t line, void *ctx);
dpb_status dpb_jsonl_read(const char *path, dpb_jsonl_fn fn, void *ctx);

#endif
