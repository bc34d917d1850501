#ifndef DPB_TIMEUTIL_H
#define DPB_TIMEUTIL_H
#include <stdint.h>
#include <time.h>
/* CLOCK_MONOTONIC in nanoseconds: the only clock used for latencies. */
static inline uint64_t dpb_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
/* Wall-clock time as an ISO 8601 UTC string (for manifests), buf >= 32. */
void dpb_time_iso8601(char *buf, unsigned len);
#endif
