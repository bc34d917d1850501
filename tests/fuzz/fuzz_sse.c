/* libFuzzer target: the SSE parser the load generator runs on server bytes.
 * The input is split at a point taken from its first byte, so chunk
 * boundaries are fuzzed too; every event must be NUL-terminated and within
 * the size limit. */
#include <stdint.h>
#include <string.h>
#include "load/sse.h"

static int on_event(void *ctx, const char *data, size_t len)
{
    (void)ctx;
    if (data[len] != 0 || len > 4096) __builtin_trap();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    if (n < 1) return 0;
    size_t cut = d[0] % n;
    dpb_sse p;
    dpb_sse_init(&p, 4096);
    const char *s = (const char *)d + 1;
    size_t len = n - 1;
    if (cut > len) cut = len;
    if (dpb_sse_feed(&p, s, cut, on_event, NULL) == DPB_OK) dpb_sse_feed(&p, s + cut, len - cut, on_event, NULL);
    dpb_sse_free(&p);
    return 0;
}
