#include "core/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/file.h"

bool dpb_utf8_valid(const uint8_t *s, size_t len, size_t *bad_offset)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c < 0x80) { i++; continue; }
        size_t n;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) { n = 1; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { n = 2; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { n = 3; cp = c & 0x07; }
        else goto bad;
        if (len - i <= n) goto bad;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) goto bad;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            goto bad;
        i += n + 1;
    }
    return true;
bad:
    if (bad_offset) *bad_offset = i;
    return false;
}

dpb_status dpb_json_parse(const char *text, size_t len, const char *what, cJSON **out)
{
    *out = NULL;
    size_t bad;
    if (!dpb_utf8_valid((const uint8_t *)text, len, &bad))
        return dpb_error_set(DPB_E_FORMAT, "%s: not valid UTF-8 at byte %zu", what, bad);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        size_t off = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
        unsigned line = 1, col = 1;
        for (size_t i = 0; i < off; i++) {
            if (text[i] == '\n') { line++; col = 1; } else col++;
        }
        return dpb_error_set(DPB_E_FORMAT, "%s: invalid JSON at line %u column %u", what, line, col);
    }
    /* Only whitespace may follow the value. */
    if (end) {
        for (const char *p = end; p < text + len; p++) {
            if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t' && *p != 0) {
                cJSON_Delete(root);
                return dpb_error_set(DPB_E_FORMAT, "%s: trailing data after the JSON value at byte %zu",
                                     what, (size_t)(p - text));
            }
        }
    }
    *out = root;
    return DPB_OK;
}

dpb_status dpb_json_load(const char *path, size_t max_bytes, cJSON **out)
{
    char *text;
    size_t len;
    *out = NULL;
    dpb_status st = dpb_file_read(path, max_bytes, &text, &len);
    if (st) return st;
    st = dpb_json_parse(text, len, path, out);
    free(text);
    return st;
}

static const cJSON *field(const cJSON *obj, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    return (it && !cJSON_IsNull(it)) ? it : NULL;
}

static dpb_status missing(const char *what, const char *key)
{
    return dpb_error_set(DPB_E_FORMAT, "%s: required field '%s' is missing", what, key);
}

dpb_status dpb_json_item_int(const cJSON *it, const char *what, const char *key, int64_t min, int64_t max,
                             int64_t *out)
{
    if (!cJSON_IsNumber(it))
        return dpb_error_set(DPB_E_FORMAT, "%s: field '%s' must be an integer", what, key);
    double v = it->valuedouble;
    if (!isfinite(v) || v != floor(v) || fabs(v) > 9007199254740992.0)
        return dpb_error_set(DPB_E_FORMAT, "%s: field '%s' must be an integer, got %.17g", what, key, v);
    int64_t iv = (int64_t)v;
    if (iv < min || iv > max)
        return dpb_error_set(DPB_E_RANGE, "%s: field '%s' is %lld, outside [%lld, %lld]", what, key,
                             (long long)iv, (long long)min, (long long)max);
    *out = iv;
    return DPB_OK;
}

dpb_status dpb_json_get_int(const cJSON *obj, const char *key, const char *what, dpb_json_need need,
                            int64_t min, int64_t max, int64_t def, int64_t *out, bool *present)
{
    const cJSON *it = field(obj, key);
    if (present) *present = it != NULL;
    if (!it) {
        if (need == DPB_JSON_REQUIRED) return missing(what, key);
        *out = def;
        return DPB_OK;
    }
    return dpb_json_item_int(it, what, key, min, max, out);
}

dpb_status dpb_json_get_double(const cJSON *obj, const char *key, const char *what, dpb_json_need need,
                               double min, double max, double def, double *out, bool *present)
{
    const cJSON *it = field(obj, key);
    if (present) *present = it != NULL;
    if (!it) {
        if (need == DPB_JSON_REQUIRED) return missing(what, key);
        *out = def;
        return DPB_OK;
    }
    if (!cJSON_IsNumber(it))
        return dpb_error_set(DPB_E_FORMAT, "%s: field '%s' must be a number", what, key);
    double v = it->valuedouble;
    if (!isfinite(v) || v < min || v > max)
        return dpb_error_set(DPB_E_RANGE, "%s: field '%s' is %g, outside [%g, %g]", what, key, v, min, max);
    *out = v;
    return DPB_OK;
}

dpb_status dpb_json_get_bool(const cJSON *obj, const char *key, const char *what, dpb_json_need need,
                             bool def, bool *out, bool *present)
{
    const cJSON *it = field(obj, key);
    if (present) *present = it != NULL;
    if (!it) {
        if (need == DPB_JSON_REQUIRED) return missing(what, key);
        *out = def;
        return DPB_OK;
    }
    if (!cJSON_IsBool(it))
        return dpb_error_set(DPB_E_FORMAT, "%s: field '%s' must be true or false", what, key);
    *out = cJSON_IsTrue(it);
    return DPB_OK;
}

dpb_status dpb_json_get_string(const cJSON *obj, const char *key, const char *what, dpb_json_need need,
                               const char *def, const char **out, bool *present)
{
    const cJSON *it = field(obj, key);
    if (present) *present = it != NULL;
    if (!it) {
        if (need == DPB_JSON_REQUIRED) return missing(what, key);
        *out = def;
        return DPB_OK;
    }
    if (!cJSON_IsString(it) || !it->valuestring)
        return dpb_error_set(DPB_E_FORMAT, "%s: field '%s' must be a string", what, key);
    *out = it->valuestring;
    return DPB_OK;
}
