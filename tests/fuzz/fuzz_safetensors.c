/* libFuzzer target: a whole safetensors file image through the strict reader.
 * When the reader accepts an input, its invariants are checked and the
 * header is rebuilt with the writer and read back: the same tensors must come
 * out (a disagreement aborts, which libFuzzer reports). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "format/safetensors.h"

static void check(int ok)
{
    if (!ok) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dpb_st_header h;
    if (dpb_safetensors_parse(data, size, "fuzz.safetensors", &h) != DPB_OK) return 0;
    /* Contiguous from 0 to the end of the file, each range matching its shape. */
    uint64_t pos = 0;
    for (size_t i = 0; i < h.count; i++) {
        const dpb_st_entry *e = &h.entries[i];
        check(e->begin == pos && e->end >= e->begin);
        uint64_t bytes = dpb_dtype_size(e->dtype);
        for (int d = 0; d < e->ndim; d++) bytes *= (uint64_t)e->shape[d];
        check(bytes == e->end - e->begin);
        pos = e->end;
    }
    check(h.data_offset + pos == size);
    /* Writer round trip. */
    dpb_st_write_entry *w = malloc((h.count ? h.count : 1) * sizeof *w);
    uint64_t *offs = malloc((h.count ? h.count : 1) * sizeof *offs);
    check(w && offs);
    for (size_t i = 0; i < h.count; i++)
        w[i] = (dpb_st_write_entry){h.entries[i].name, h.entries[i].dtype, h.entries[i].ndim, h.entries[i].shape};
    uint8_t *prefix;
    size_t plen;
    dpb_status st = dpb_safetensors_header_build(w, h.count, (const char *const *)h.meta_keys,
                                                 (const char *const *)h.meta_values, h.meta_count, &prefix, &plen,
                                                 offs);
    if (st == DPB_OK) {
        check(plen % 8 == 0);
        uint8_t *img = malloc(plen + pos + 1);
        check(img != NULL);
        memcpy(img, prefix, plen);
        memcpy(img + plen, data + h.data_offset, pos);
        dpb_st_header h2;
        check(dpb_safetensors_parse(img, plen + pos, "rebuilt", &h2) == DPB_OK);
        check(h2.count == h.count && h2.meta_count == h.meta_count);
        for (size_t i = 0; i < h.count; i++) {
            check(strcmp(h2.entries[i].name, h.entries[i].name) == 0);
            check(h2.entries[i].begin == h.entries[i].begin && h2.entries[i].end == h.entries[i].end);
            check(h2.entries[i].ndim == h.entries[i].ndim && h2.entries[i].dtype == h.entries[i].dtype);
        }
        for (size_t i = 0; i < h.meta_count; i++)
            check(strcmp(h2.meta_keys[i], h.meta_keys[i]) == 0 && strcmp(h2.meta_values[i], h.meta_values[i]) == 0);
        dpb_st_header_free(&h2);
        free(img);
        free(prefix);
    } else {
        /* The writer refuses only what it must (it caps the header at 100 MB). */
        check(st == DPB_E_RANGE || st == DPB_E_NOMEM);
    }
    free(w);
    free(offs);
    dpb_st_header_free(&h);
    return 0;
}
