/* JSON reading on top of cJSON, with errors that name the file and field.
 *
 * cJSON keeps numbers as doubles, which is exact for the integers that model
 * configs hold (|n| < 2^53); dpb_json_get_int rejects anything larger or not
 * integral.  Formats that need exact 64-bit integers (the safetensors header)
 * use their own parser. */
#ifndef DPB_JSON_H
#define DPB_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "core/status.h"

/* 1 if the len bytes are valid UTF-8 (no overlongs, surrogates or > U+10FFFF).
 * On failure *bad_offset gets the first bad byte's offset. */
bool dpb_utf8_valid(const uint8_t *s, size_t len, size_t *bad_offset);

/* Parses UTF-8 JSON text; "what" names the source in errors. */
dpb_status dpb_json_parse(const char *text, size_t len, const char *what, cJSON **out);
/* Reads and parses a file of at most max_bytes. */
dpb_status dpb_json_load(const char *path, size_t max_bytes, cJSON **out);

typedef enum { DPB_JSON_OPTIONAL = 0, DPB_JSON_REQUIRED = 1 } dpb_json_need;

/* Each getter: absent or null and optional -> *out = def, *present = false.
 * Present with the wrong type or out of [min, max] -> DPB_E_FORMAT/RANGE
 * naming what and key.  present may be NULL. */
dpb_status dpb_json_get_int(const cJSON *obj, const char *key, const char *what, dpb_json_need need,
                            int64_t min, int64_t max, int64_t def, int64_t *out, bool *present);
dpb_status dpb_json_get_double(const cJSON *obj, const char *key, const char *what, dpb_json_need need,
                               double min, double max, double def, double *out, bool *present);
dpb_status dpb_json_get_bool(const cJSON *obj, const char *key, const char *what, dpb_json_need need,
                             bool def, bool *out, bool *present);
/* *out points into the cJSON tree (not copied); def may be NULL. */
dpb_status dpb_json_get_string(const cJSON *obj, const char *key, const char *what, dpb_json_need need,
                               const char *def, const char **out, bool *present);
/* Converts an item to an integer in [min, max] (what/key for errors). */
dpb_status dpb_json_item_int(const cJSON *item, const char *what, const char *key, int64_t min, int64_t max,
                             int64_t *out);

#endif
