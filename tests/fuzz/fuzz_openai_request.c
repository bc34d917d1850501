/* libFuzzer target: the OpenAI request parser the server runs on every
 * /v1/completions and /v1/chat/completions body.  The first byte picks the
 * API; a parsed request must satisfy the validated invariants. */
#include <stdint.h>
#include <string.h>
#include "serve/openai.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    if (n < 1) return 0;
    dpb_api_kind api = (d[0] & 1) ? DPB_API_CHAT : DPB_API_COMPLETIONS;
    dpb_openai_parsed p;
    dpb_status st = dpb_openai_parse(api, (const char *)d + 1, n - 1, "synthetic", 4096, &p);
    if (st == DPB_OK) {
        if (p.g.max_tokens > 4096) __builtin_trap();
        if (api == DPB_API_COMPLETIONS && !p.g.prompt && !(p.g.prompt_ids && p.g.n_prompt_ids > 0 && p.g.n_prompt_ids <= 4096))
            __builtin_trap();
        if (api == DPB_API_CHAT && !p.g.messages) __builtin_trap();
        if (p.continuous && !p.include_usage) __builtin_trap();
        dpb_openai_parsed_free(&p);
    } else if (!(p.status == 400 || p.status == 404) || !p.message[0] || p.root || p.ids) {
        __builtin_trap();
    }
    return 0;
}
