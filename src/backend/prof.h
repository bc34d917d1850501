/* Per-operation profile of any backend: a wrapper whose operations call the
 * wrapped backend's, wait for it (sync), and add the wall time to a table
 * keyed by operation and shape ("linear bf16 [5120 x 25600] n=2048").
 *
 * The engine wraps its backend when DPB_OP_PROFILE is set (a file path, or
 * "-" for stderr) and writes the table when it is destroyed.  Each timing
 * holds the operation's launch, its run and one synchronization: a profile
 * says where a forward pass spends its time, at the price of the overlap
 * between operations (and of CUDA graphs, which the wrapper does not offer),
 * so its sum is longer than the unprofiled pass.  Docs: docs/CUDA.md. */
#ifndef DPB_BACKEND_PROF_H
#define DPB_BACKEND_PROF_H

#include <stdio.h>
#include "backend/backend.h"
#include "core/status.h"

/* *out wraps inner, and owns it: dpb_backend_close(*out) writes the table to
 * `path` (NULL: no table; "-": stderr) and closes inner too.  On failure
 * inner is left open and untouched. */
dpb_status dpb_backend_prof_wrap(dpb_backend *inner, const char *path, dpb_backend **out);

/* The wrapped backend of a profiling wrapper, or b itself. */
dpb_backend *dpb_backend_prof_inner(dpb_backend *b);

/* The table so far as Markdown (sorted by total time). */
dpb_status dpb_backend_prof_write(const dpb_backend *b, FILE *f);

#endif
