/* libFuzzer target: the eval client's parsers of server replies (HTTP mode):
 * completions with echo + logprobs (loglikelihood), and completion / chat
 * replies (generation).  A server's reply is hostile input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "eval/remote.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    /* first byte: the context length in bytes; the prompt is a fixed text of the matching length */
    static const char prompt[] = "Question: 2+2?\nA. 3\nB. 4\nAnswer: B";
    size_t ctx = data[0] % sizeof prompt;
    const char *reply = (const char *)data + 1;
    size_t len = size - 1;
    double ll = 0;
    int64_t ptok = 0;
    bool straddled = false;
    (void)dpb_eval_remote_ll_parse(reply, len, ctx, prompt, "fuzz", &ll, &ptok, &straddled);
    for (int chat = 0; chat < 2; chat++) {
        char *text = NULL;
        if (dpb_eval_remote_gen_parse(reply, len, chat != 0, "fuzz", &text, &ptok) == DPB_OK) free(text);
    }
    return 0;
}
