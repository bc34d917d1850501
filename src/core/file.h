/* Files: read-only mappings and bounded whole-file reads. */
#ifndef DPB_FILE_H
#define DPB_FILE_H

#include <stddef.h>
#include <stdint.h>
#include "core/status.h"

typedef struct dpb_file_map {
    const uint8_t *data; /* NULL for an empty file */
    uint64_t size;
    char *path;          /* owned copy, for error messages */
} dpb_file_map;

/* Maps path read-only.  Errors name the path. */
dpb_status dpb_file_map_open(const char *path, dpb_file_map *out);
void dpb_file_map_close(dpb_file_map *m);

/* Reads a whole file of at most max_bytes into a NUL-terminated buffer the
 * caller frees.  A larger file is an error naming the path and both sizes. */
dpb_status dpb_file_read(const char *path, size_t max_bytes, char **out, size_t *out_len);
/* Writes len bytes to path atomically (temporary file + rename). */
dpb_status dpb_file_write(const char *path, const void *data, size_t len);
/* dpb_file_write of a NUL-terminated text to dir/name. */
dpb_status dpb_file_write_text_in(const char *dir, const char *name, const char *text);
/* 1 if path exists as a regular file, 0 otherwise. */
int dpb_file_exists(const char *path);
int dpb_dir_exists(const char *path);
/* mkdir -p */
dpb_status dpb_dir_create(const char *path);
/* Joins dir and name with one '/', into a newly allocated string. */
dpb_status dpb_path_join(const char *dir, const char *name, char **out);
/* Copies a file (for tokenizer files); errors name both paths. */
dpb_status dpb_file_copy(const char *src, const char *dst);

#endif
