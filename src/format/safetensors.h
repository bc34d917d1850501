/* safetensors: strict reader and header writer.
 *
 * Rules (those of the reference loader, checked with overflow-safe
 * arithmetic): 8-byte little-endian header length N with N <= 100 MB and
 * 8 + N <= file size; the header is UTF-8 JSON, an object of tensor name ->
 * {"dtype", "shape", "data_offsets"} plus an optional "__metadata__" object of
 * string -> string; known dtype; shape product x dtype size (overflow-checked)
 * equals end - begin; offsets parsed as exact 64-bit integers (never through
 * double); ranges contiguous from 0 and non-overlapping once sorted; the
 * data region ends exactly at the end of the file; duplicate names rejected.
 * Every error is one line naming the file and the field or tensor. */
#ifndef DPB_SAFETENSORS_H
#define DPB_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include "core/file.h"
#include "core/status.h"
#include "format/dtype.h"

#define DPB_ST_MAX_HEADER (100u * 1000u * 1000u)

typedef struct dpb_st_entry {
    char *name;
    dpb_dtype dtype;
    int ndim;
    int64_t shape[DPB_MAX_DIMS];
    uint64_t begin, end; /* relative to the start of the data region */
} dpb_st_entry;

typedef struct dpb_st_header {
    dpb_st_entry *entries; /* in file order of data_offsets (sorted by begin) */
    size_t count;
    uint64_t data_offset;  /* 8 + header length: where the data region starts */
    char **meta_keys, **meta_values; /* __metadata__ */
    size_t meta_count;
    char *strings;         /* one block holding every name, key and value above */
} dpb_st_header;

/* Validates a whole file image (file_size bytes at file) and fills out.
 * fname is used only in error messages. */
dpb_status dpb_safetensors_parse(const uint8_t *file, uint64_t file_size, const char *fname,
                                 dpb_st_header *out);
void dpb_st_header_free(dpb_st_header *h);

typedef struct dpb_safetensors_file {
    dpb_file_map map;
    dpb_st_header hdr;
} dpb_safetensors_file;

/* mmaps and validates path. */
dpb_status dpb_safetensors_open(const char *path, dpb_safetensors_file *out);
void dpb_safetensors_close(dpb_safetensors_file *f);
/* Pointer to an entry's bytes inside the mapping. */
const void *dpb_safetensors_data(const dpb_safetensors_file *f, const dpb_st_entry *e);

/* model.safetensors.index.json: {"metadata": {...}, "weight_map": {tensor: shard}}. */
typedef struct dpb_st_index {
    char **tensors, **shards; /* parallel, count entries */
    size_t count;
    char **shard_files;       /* distinct shard names in first-seen order */
    size_t shard_count;
} dpb_st_index;

/* Shard names must be plain file names (no '/', not "." or ".."). */
dpb_status dpb_safetensors_index_parse(const char *text, size_t len, const char *fname, dpb_st_index *out);
void dpb_st_index_free(dpb_st_index *ix);

/* Writer: builds the 8-byte length + JSON header for n tensors laid out
 * contiguously in the given order, padded with spaces to a multiple of 8.
 * *prefix gets the bytes (caller frees), *prefix_len their count; offsets[i]
 * gets tensor i's begin within the data region.  metadata may be NULL. */
typedef struct dpb_st_write_entry {
    const char *name;
    dpb_dtype dtype;
    int ndim;
    const int64_t *shape;
} dpb_st_write_entry;

dpb_status dpb_safetensors_header_build(const dpb_st_write_entry *e, size_t n, const char *const *meta_keys,
                                        const char *const *meta_values, size_t meta_count, uint8_t **prefix,
                                        size_t *prefix_len, uint64_t *offsets);
/* Writes a small file in one go (logits outputs, test corpora). */
dpb_status dpb_safetensors_write(const char *path, const dpb_st_write_entry *e, const void *const *data,
                                 size_t n);

#endif
