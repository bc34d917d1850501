/* A progress bar on stderr, drawn only when stderr is a terminal. */
#ifndef DPB_PROGRESS_H
#define DPB_PROGRESS_H
#include <stdint.h>
typedef struct dpb_progress {
    const char *label;
    uint64_t total, done;
    uint64_t start_ns, last_draw_ns;
    int enabled;
    const char *unit; /* "B" for bytes (shown in GB and GB/s), else items */
} dpb_progress;
void dpb_progress_start(dpb_progress *p, const char *label, uint64_t total, const char *unit);
/* Thread-safe to call from one thread at a time; redraws at most 10 times a second. */
void dpb_progress_update(dpb_progress *p, uint64_t done);
void dpb_progress_finish(dpb_progress *p);
#endif
