/* libFuzzer target: model.safetensors.index.json. Accepted indexes must hold
 * only plain shard names, each listed in shard_files. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "format/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dpb_st_index ix;
    if (dpb_safetensors_index_parse((const char *)data, size, "model.safetensors.index.json", &ix) != DPB_OK) return 0;
    for (size_t i = 0; i < ix.count; i++) {
        if (!ix.shards[i][0] || strchr(ix.shards[i], '/') || !strcmp(ix.shards[i], "..") || !strcmp(ix.shards[i], "."))
            abort();
        size_t j = 0;
        while (j < ix.shard_count && strcmp(ix.shard_files[j], ix.shards[i]) != 0) j++;
        if (j == ix.shard_count) abort();
    }
    dpb_st_index_free(&ix);
    return 0;
}
