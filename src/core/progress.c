#include "core/progress.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "core/timeutil.h"

void dpb_progress_start(dpb_progress *p, const char *label, uint64_t total, const char *unit)
{
    memset(p, 0, sizeof *p);
    p->label = label;
    p->total = total;
    p->unit = unit ? unit : "";
    p->start_ns = dpb_now_ns();
    p->enabled = isatty(2);
}

static void draw(dpb_progress *p, uint64_t now)
{
    double frac = p->total ? (double)p->done / (double)p->total : 0;
    if (frac > 1) frac = 1;
    int w = 30, fill = (int)(frac * w);
    char bar[31];
    for (int i = 0; i < w; i++) bar[i] = i < fill ? '#' : '.';
    bar[w] = 0;
    double secs = (double)(now - p->start_ns) / 1e9;
    if (strcmp(p->unit, "B") == 0)
        fprintf(stderr, "\r%s [%s] %5.1f%% %.2f/%.2f GB %.2f GB/s ", p->label, bar, frac * 100, p->done / 1e9,
                p->total / 1e9, secs > 0 ? p->done / 1e9 / secs : 0);
    else
        fprintf(stderr, "\r%s [%s] %5.1f%% %llu/%llu %s ", p->label, bar, frac * 100, (unsigned long long)p->done,
                (unsigned long long)p->total, p->unit);
    fflush(stderr);
}

void dpb_progress_update(dpb_progress *p, uint64_t done)
{
    p->done = done;
    if (!p->enabled) return;
    uint64_t now = dpb_now_ns();
    if (now - p->last_draw_ns < 100000000ull && done < p->total) return;
    p->last_draw_ns = now;
    draw(p, now);
}

void dpb_progress_finish(dpb_progress *p)
{
    if (!p->enabled) return;
    draw(p, dpb_now_ns());
    fputc('\n', stderr);
}
