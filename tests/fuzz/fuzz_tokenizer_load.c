/* Fuzz the tokenizer loaders: tokenizer.json text (first byte even) or a
 * SentencePiece model (first byte odd); a loaded tokenizer must encode and
 * decode without memory errors. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "tokenizer/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1 << 20)) return 0;
    dpb_tokenizer *t = NULL;
    dpb_status st;
    if ((data[0] & 1) == 0) st = dpb_tokenizer_load_json_text((const char *)data + 1, size - 1, "fuzz.json", &t);
    else st = dpb_tokenizer_load_spm_bytes(data + 1, size - 1, "fuzz.model", &t);
    if (st != DPB_OK) return 0;
    dpb_tokenizer_set_match_limits(t, 100000, 1000);
    static const char *const texts[] = {"Hello, world! 123  \n\n", "<|endoftext|>ab<s>", "\xC3\xA9\xE4\xB8\xAD \xF0\x9F\xA6\x99", ""};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        dpb_tokens tk = {0};
        if (dpb_tokenizer_encode(t, texts[i], strlen(texts[i]), DPB_TOK_ALLOW_SPECIAL, &tk) == DPB_OK) {
            char *d;
            if (dpb_tokenizer_decode(t, tk.ids, tk.n, false, &d, NULL) == DPB_OK) free(d);
        }
        dpb_tokens_free(&tk);
    }
    int32_t ids[4] = {0, 1, (int32_t)dpb_tokenizer_vocab_size(t) - 1, (int32_t)dpb_tokenizer_vocab_size(t)};
    char *d;
    if (dpb_tokenizer_decode(t, ids, 3, true, &d, NULL) == DPB_OK) free(d);
    if (dpb_tokenizer_decode(t, ids, 4, false, &d, NULL) == DPB_OK) abort(); /* id == vocab size must fail */
    dpb_tokenizer_free(t);
    return 0;
}
