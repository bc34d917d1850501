/* Append-only JSON Lines files that survive kill -9.
 *
 * Each record is serialized completely in memory and handed to the kernel
 * with one write() on an O_APPEND descriptor, so once dpb_jsonlog_write returns
 * the line is in the page cache: a kill -9 of the process afterwards loses
 * nothing, and a kill during the call leaves at most one torn line at the end
 * (the kernel writes a regular-file append in one piece unless the disk fills).
 * fsync_each additionally survives power loss, at a large cost.
 *
 * Readers (resume) call dpb_jsonlog_repair first: it cuts a torn last line so
 * every line in the file is complete.
 *
 * src/bench/results.h has a second JSONL writer (dpb_jsonl_*) that fdatasyncs
 * every record (power-loss safe, milliseconds per record on a virtual disk);
 * this one is for the load generator's thousands of records per second, and
 * adds dpb_jsonlog_write_raw for lines built without cJSON. */
#ifndef DPB_CORE_JSONL_H
#define DPB_CORE_JSONL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "core/status.h"

typedef struct dpb_jsonlog dpb_jsonlog;

/* Opens (creating, 0644) path for appending.  Errors name the path. */
dpb_status dpb_jsonlog_open(const char *path, bool fsync_each, dpb_jsonlog **out);
/* Writes obj as one line (compact JSON + '\n'). */
dpb_status dpb_jsonlog_write(dpb_jsonlog *w, const cJSON *obj);
/* Writes len bytes that must hold one JSON value without a newline; the '\n' is added. */
dpb_status dpb_jsonlog_write_raw(dpb_jsonlog *w, const char *line, size_t len);
uint64_t dpb_jsonlog_lines(const dpb_jsonlog *w);
const char *dpb_jsonlog_path(const dpb_jsonlog *w);
dpb_status dpb_jsonlog_close(dpb_jsonlog *w);

/* Truncates a last line that has no '\n' (a torn write); *complete_lines gets
 * the number of whole lines left, *removed_bytes what was cut (either may be NULL).
 * A missing file is not an error (0 lines). */
dpb_status dpb_jsonlog_repair(const char *path, uint64_t *complete_lines, uint64_t *removed_bytes);

#endif
