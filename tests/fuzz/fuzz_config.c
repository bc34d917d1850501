/* libFuzzer target: config.json, generation_config.json and
 * tokenizer_config.json readers on the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include "format/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dpb_model_config *c = malloc(sizeof *c);
    if (!c) return 0;
    (void)dpb_config_parse((const char *)data, size, "config.json", c);
    free(c);
    dpb_generation_config g;
    (void)dpb_generation_config_parse((const char *)data, size, "generation_config.json", &g);
    dpb_tokenizer_config tc;
    if (dpb_tokenizer_config_parse((const char *)data, size, "tokenizer_config.json", &tc) == DPB_OK)
        dpb_tokenizer_config_free(&tc);
    return 0;
}
