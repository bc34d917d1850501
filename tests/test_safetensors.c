/* safetensors: the crafted-file corpus of issue 2 (generated here, at run
 * time, into a temporary folder), writer round trips, index parsing, and the
 * fixture files. */
#include "t.h"
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include "core/file.h"
#include "core/status.h"
#include "format/safetensors.h"

static char g_dir[256];

/* Writes file NAME = 8-byte length (hlen_override if nonzero, else strlen(hdr)) + hdr + data_len bytes. */
static void write_raw(const char *name, const void *bytes, size_t len, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); return; }
    if (len) fwrite(bytes, 1, len, f);
    fclose(f);
}

static void write_st(const char *name, uint64_t hlen, const char *hdr, size_t hdr_bytes, size_t data_len, char *path,
                     size_t cap)
{
    size_t total = 8 + hdr_bytes + data_len;
    uint8_t *b = calloc(1, total);
    for (int k = 0; k < 8; k++) b[k] = (uint8_t)(hlen >> (8 * k));
    memcpy(b + 8, hdr, hdr_bytes);
    for (size_t i = 0; i < data_len; i++) b[8 + hdr_bytes + i] = (uint8_t)i;
    write_raw(name, b, total, path, cap);
    free(b);
}

/* Opens the file and checks: status want, message names the file and holds each needle. */
static void expect_file(const char *path, dpb_status want, const char *n1, const char *n2)
{
    dpb_safetensors_file f;
    dpb_error_clear();
    dpb_status st = dpb_safetensors_open(path, &f);
    const char *m = dpb_error_message();
    if (getenv("T_VERBOSE")) fprintf(stderr, "%s -> %s\n", dpb_status_name(st), st ? m : "ok");
    T_CHECKF(st == want, "%s: status %s, want %s (%s)", path, dpb_status_name(st), dpb_status_name(want), m);
    if (st == DPB_OK) {
        dpb_safetensors_close(&f);
        return;
    }
    T_CHECKF(dpb_status_exit_code(st) == 2, "%s: exit code %d", path, dpb_status_exit_code(st));
    T_CHECKF(strstr(m, path) != NULL, "message '%s' does not name the file", m);
    T_CHECKF(!n1 || strstr(m, n1) != NULL, "message '%s' lacks '%s'", m, n1);
    T_CHECKF(!n2 || strstr(m, n2) != NULL, "message '%s' lacks '%s'", m, n2);
    T_CHECKF(strchr(m, '\n') == NULL, "message '%s' is not one line", m);
}

/* A header given as text, its true length, and data_len data bytes. */
static void expect_hdr(const char *name, const char *hdr, size_t data_len, dpb_status want, const char *n1,
                       const char *n2)
{
    char path[512];
    write_st(name, strlen(hdr), hdr, strlen(hdr), data_len, path, sizeof path);
    expect_file(path, want, n1, n2);
}

#define E(name, dt, shape, b, e) "\"" name "\":{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":[" #b "," #e "]}"

static void test_truncated(void)
{
    char path[512];
    write_raw("short.safetensors", "\x10\0\0", 3, path, sizeof path);
    expect_file(path, DPB_E_FORMAT, "too short", "3 bytes");
    write_raw("empty.safetensors", "", 0, path, sizeof path);
    expect_file(path, DPB_E_FORMAT, "too short", NULL);
    /* Header cut: claims 64 bytes, 20 present. */
    const char *h = "{\"a\":{\"dtype\":\"F32\",";
    write_st("cut.safetensors", 64, h, strlen(h), 0, path, sizeof path);
    expect_file(path, DPB_E_FORMAT, "header length 64", "runs past the end");
    /* Data cut: the tensor's bytes are not all there. */
    expect_hdr("datacut.safetensors", "{" E("w", "F32", "[4]", 0, 16) "}", 10, DPB_E_FORMAT, "tensor 'w'",
               "past the end of the file");
}

static void test_header_length(void)
{
    char path[512];
    const char *h = "{}";
    write_st("huge.safetensors", 1ull << 63, h, 2, 0, path, sizeof path);
    expect_file(path, DPB_E_FORMAT, "header length 9223372036854775808", "100000000");
    write_st("beyond.safetensors", 1000, h, 2, 0, path, sizeof path);
    expect_file(path, DPB_E_FORMAT, "header length 1000", "10-byte file");
    write_st("max.safetensors", UINT64_MAX, h, 2, 0, path, sizeof path);
    expect_file(path, DPB_E_FORMAT, "18446744073709551615", NULL);
    write_st("zero.safetensors", 0, "", 0, 0, path, sizeof path);
    expect_file(path, DPB_E_FORMAT, "header length 0", NULL);
}

static void test_bad_text(void)
{
    expect_hdr("utf8.safetensors", "{\"a\xff\":{}}", 0, DPB_E_FORMAT, "not valid UTF-8", "byte 11");
    expect_hdr("overlong.safetensors", "{\"a\xc0\xaf\":{}}", 0, DPB_E_FORMAT, "not valid UTF-8", NULL);
    expect_hdr("json.safetensors", "{\"a\":{\"dtype\":\"F32\",}}", 0, DPB_E_FORMAT, "not valid JSON", "byte");
    expect_hdr("json2.safetensors", "{\"a\" {}}", 0, DPB_E_FORMAT, "not valid JSON", "expected ':'");
    expect_hdr("notobj.safetensors", "[1, 2]", 0, DPB_E_FORMAT, "start with '{'", NULL);
    expect_hdr("after.safetensors", "{} {}", 0, DPB_E_FORMAT, "data after the JSON value", NULL);
    expect_hdr("ctrl.safetensors", "{\"a\tb\":{}}", 0, DPB_E_FORMAT, "control character", NULL);
    expect_hdr("esc.safetensors", "{\"a\\qb\":{}}", 0, DPB_E_FORMAT, "invalid escape", NULL);
    expect_hdr("surrogate.safetensors", "{\"a\\ud800\":{}}", 0, DPB_E_FORMAT, "surrogate", NULL);
    expect_hdr("lowsurr.safetensors", "{\"a\\udc00\":{}}", 0, DPB_E_FORMAT, "surrogate", NULL);
    expect_hdr("nul.safetensors", "{\"a\\u0000b\":{}}", 0, DPB_E_FORMAT, "\\u0000", NULL);
    expect_hdr("lit.safetensors", "{\"a\":tru}", 0, DPB_E_FORMAT, "not valid JSON", NULL);
    expect_hdr("lead0.safetensors", "{" E("a", "U8", "[1]", 0, 01) "}", 1, DPB_E_FORMAT, "leading zero", NULL);
    expect_hdr("unterminated.safetensors", "{\"abc", 0, DPB_E_FORMAT, "unterminated string", NULL);
}

static void test_deep_nesting(void)
{
    /* 100 levels: over the limit, reported as such. */
    char h[400];
    size_t k = 0;
    k += (size_t)snprintf(h, sizeof h, "{\"a\":");
    for (int i = 0; i < 100; i++) h[k++] = '[';
    for (int i = 0; i < 100; i++) h[k++] = ']';
    h[k++] = '}';
    h[k] = 0;
    expect_hdr("deep.safetensors", h, 0, DPB_E_FORMAT, "nesting deeper than 64", NULL);
    /* A million levels: no recursion, so no stack exhaustion. */
    size_t n = 1000000;
    char *big = malloc(2 * n + 16);
    k = 0;
    big[k++] = '{';
    big[k++] = '"';
    big[k++] = 'a';
    big[k++] = '"';
    big[k++] = ':';
    for (size_t i = 0; i < n; i++) big[k++] = '[';
    big[k] = 0;
    expect_hdr("deeper.safetensors", big, 0, DPB_E_FORMAT, "nesting deeper than 64", NULL);
    free(big);
    /* Nesting within the limit but against the schema. */
    expect_hdr("schema.safetensors", "{\"a\":{\"dtype\":[[[\"F32\"]]],\"shape\":[],\"data_offsets\":[0,4]}}", 4,
               DPB_E_FORMAT, "tensor 'a'", "'dtype' must be a string");
}

static void test_duplicates(void)
{
    expect_hdr("dup.safetensors", "{" E("w", "U8", "[2]", 0, 2) "," E("w", "U8", "[2]", 2, 4) "}", 4, DPB_E_FORMAT,
               "tensor 'w'", "appears twice");
    expect_hdr("dupfield.safetensors", "{\"w\":{\"dtype\":\"U8\",\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}",
               2, DPB_E_FORMAT, "tensor 'w'", "'dtype' appears twice");
    expect_hdr("dupmeta.safetensors", "{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\"}}", 0, DPB_E_FORMAT, "__metadata__",
               "'a' appears twice");
}

static void test_offsets(void)
{
    expect_hdr("overlap.safetensors", "{" E("a", "F32", "[2]", 0, 8) "," E("b", "F32", "[2]", 4, 12) "}", 12,
               DPB_E_FORMAT, "tensor 'b'", "overlap tensor 'a'");
    expect_hdr("hole.safetensors", "{" E("a", "F32", "[1]", 0, 4) "," E("b", "F32", "[1]", 8, 12) "}", 12,
               DPB_E_FORMAT, "tensor 'b'", "hole of 4 bytes");
    expect_hdr("outside.safetensors", "{" E("a", "F32", "[4]", 0, 16) "}", 8, DPB_E_FORMAT, "tensor 'a'",
               "past the end of the file");
    expect_hdr("start.safetensors", "{" E("a", "F32", "[1]", 4, 8) "}", 8, DPB_E_FORMAT, "tensor 'a'",
               "must start at 0");
    expect_hdr("backwards.safetensors", "{" E("a", "F32", "[1]", 8, 4) "}", 8, DPB_E_FORMAT, "tensor 'a'",
               "end before they begin");
    expect_hdr("trailing.safetensors", "{" E("a", "F32", "[1]", 0, 4) "}", 9, DPB_E_FORMAT, "5 trailing bytes", NULL);
    expect_hdr("trailing0.safetensors", "{}", 3, DPB_E_FORMAT, "3 trailing bytes", NULL);
    expect_hdr("onenum.safetensors", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0]}}", 1, DPB_E_FORMAT,
               "tensor 'a'", "exactly 2 integers");
    expect_hdr("threenum.safetensors", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1,2]}}", 1,
               DPB_E_FORMAT, "tensor 'a'", "exactly 2 integers");
    /* Offsets near 2^64: no wrap-around. */
    expect_hdr("wrap.safetensors", "{" E("a", "U8", "[1]", 18446744073709551615, 0) "}", 1, DPB_E_FORMAT,
               "tensor 'a'", "end before they begin");
}

static void test_shapes(void)
{
    expect_hdr("overflow.safetensors", "{" E("x", "BF16", "[2, 9223372036854775807]", 0, 4) "}", 4, DPB_E_RANGE,
               "tensor 'x'", "overflows");
    expect_hdr("overflow2.safetensors", "{" E("x", "F64", "[4294967296, 4294967296]", 0, 4) "}", 4, DPB_E_RANGE,
               "tensor 'x'", "overflows");
    expect_hdr("dimbig.safetensors", "{" E("x", "U8", "[9223372036854775808]", 0, 4) "}", 4, DPB_E_RANGE,
               "tensor 'x'", "larger than 9223372036854775807");
    expect_hdr("negative.safetensors", "{" E("x", "F32", "[-1, 2]", 0, 4) "}", 4, DPB_E_FORMAT, "tensor 'x'",
               "negative number -1");
    expect_hdr("mismatch.safetensors", "{" E("x", "BF16", "[2, 3]", 0, 10) "}", 10, DPB_E_FORMAT, "tensor 'x'",
               "data_offsets [0, 10] hold 10 bytes but shape [2, 3] of BF16 needs 12");
    expect_hdr("dtype.safetensors", "{" E("x", "F13", "[1]", 0, 1) "}", 1, DPB_E_UNSUPPORTED, "tensor 'x'",
               "unknown dtype 'F13'");
    expect_hdr("dtypecase.safetensors", "{" E("x", "bf16", "[1]", 0, 2) "}", 2, DPB_E_UNSUPPORTED, "tensor 'x'",
               "unknown dtype 'bf16'");
    expect_hdr("ndim.safetensors", "{" E("x", "U8", "[1,1,1,1,1,1,1,1,1]", 0, 1) "}", 1, DPB_E_UNSUPPORTED,
               "tensor 'x'", "more than 8 dimensions");
    expect_hdr("shapestr.safetensors", "{" E("x", "U8", "[\"1\"]", 0, 1) "}", 1, DPB_E_FORMAT, "tensor 'x'",
               "shape must hold integers");
    expect_hdr("shapeobj.safetensors", "{" E("x", "U8", "{}", 0, 1) "}", 1, DPB_E_FORMAT, "tensor 'x'",
               "'shape' must be a list");
}

static void test_numbers(void)
{
    expect_hdr("exp.safetensors", "{\"x\":{\"dtype\":\"U8\",\"shape\":[1000],\"data_offsets\":[0,1e3]}}", 1000,
               DPB_E_FORMAT, "tensor 'x'", "data_offsets holds 1e3, which is not an integer");
    expect_hdr("frac.safetensors", "{\"x\":{\"dtype\":\"U8\",\"shape\":[10],\"data_offsets\":[0,10.0]}}", 10,
               DPB_E_FORMAT, "tensor 'x'", "10.0, which is not an integer");
    expect_hdr("shapefrac.safetensors", "{\"x\":{\"dtype\":\"U8\",\"shape\":[1.5],\"data_offsets\":[0,1]}}", 1,
               DPB_E_FORMAT, "tensor 'x'", "shape holds 1.5");
    expect_hdr("big.safetensors",
               "{\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,18446744073709551616]}}", 1, DPB_E_RANGE,
               "tensor 'x'", "18446744073709551616, larger than 18446744073709551615");
    expect_hdr("bigger.safetensors",
               "{\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,99999999999999999999999999999]}}", 1,
               DPB_E_RANGE, "tensor 'x'", "larger than");
    /* 2^64 - 1 is a valid integer, and then runs past the file. */
    expect_hdr("max.safetensors", "{\"x\":{\"dtype\":\"U8\",\"shape\":[18446744073709551615],\"data_offsets\":[0,1]}}",
               1, DPB_E_RANGE, "tensor 'x'", "larger than 9223372036854775807");
    expect_hdr("negoff.safetensors", "{\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[-0,1]}}", 1,
               DPB_E_FORMAT, "tensor 'x'", "negative number -0");
}

static void test_fields(void)
{
    expect_hdr("nodtype.safetensors", "{\"x\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 1, DPB_E_FORMAT, "tensor 'x'",
               "field 'dtype' is missing");
    expect_hdr("noshape.safetensors", "{\"x\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", 1, DPB_E_FORMAT,
               "tensor 'x'", "field 'shape' is missing");
    expect_hdr("nooffs.safetensors", "{\"x\":{\"dtype\":\"U8\",\"shape\":[1]}}", 1, DPB_E_FORMAT, "tensor 'x'",
               "field 'data_offsets' is missing");
    expect_hdr("emptyentry.safetensors", "{\"x\":{}}", 0, DPB_E_FORMAT, "tensor 'x'", "is missing");
    expect_hdr("extra.safetensors",
               "{\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"foo\":1}}", 1, DPB_E_FORMAT,
               "tensor 'x'", "unknown field 'foo'");
    expect_hdr("notentry.safetensors", "{\"x\":3}", 0, DPB_E_FORMAT, "tensor 'x'", "must be an object");
    expect_hdr("metanum.safetensors", "{\"__metadata__\":{\"format\":1}}", 0, DPB_E_FORMAT, "__metadata__",
               "'format' must have a string value");
    expect_hdr("metalist.safetensors", "{\"__metadata__\":[]}", 0, DPB_E_FORMAT, "__metadata__",
               "must be an object");
    expect_hdr("metatwice.safetensors", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, DPB_E_FORMAT,
               "__metadata__ appears twice", NULL);
    /* A weird tensor name is quoted on one line. */
    expect_hdr("weird.safetensors", "{\"a\\nb\":{\"dtype\":\"Q\",\"shape\":[],\"data_offsets\":[0,0]}}", 0,
               DPB_E_UNSUPPORTED, "tensor 'a\\x0ab'", NULL);
}

/* ----------------------------------------------------------- positives */

static void test_valid_headers(void)
{
    char path[512];
    /* Empty tensor, scalar, metadata, escapes, whitespace padding, out-of-order entries. */
    const char *h = "{ \"__metadata__\" : {\"format\":\"pt\", \"k\\\"\":\"v\\u00e9\\ud83d\\ude00\"},"
                    E("s", "F32", "[]", 4, 8) "," E("e", "BF16", "[0]", 0, 0) ","
                    E("\\u00e9t\\u00e9", "U8", "[2, 2]", 8, 12) "," E("z", "I64", "[0, 5]", 4, 4) "," E("f", "F32", "[1]", 0, 4) "}   \n ";
    write_st("valid.safetensors", strlen(h), h, strlen(h), 12, path, sizeof path);
    dpb_safetensors_file f;
    dpb_status st = dpb_safetensors_open(path, &f);
    T_CHECKF(st == DPB_OK, "%s", dpb_error_message());
    if (st) return;
    T_CHECK(f.hdr.count == 5);
    T_CHECK(f.hdr.data_offset == 8 + strlen(h));
    /* Sorted by offset, ties by end then name. */
    const char *order[] = {"e", "f", "z", "s", "\xc3\xa9t\xc3\xa9"};
    for (size_t i = 0; i < 5 && i < f.hdr.count; i++)
        T_CHECKF(strcmp(f.hdr.entries[i].name, order[i]) == 0, "entry %zu is '%s'", i, f.hdr.entries[i].name);
    T_CHECK(f.hdr.entries[3].ndim == 0 && f.hdr.entries[3].dtype == DPB_DT_F32);
    T_CHECK(f.hdr.entries[0].ndim == 1 && f.hdr.entries[0].shape[0] == 0);
    T_CHECK(f.hdr.entries[4].ndim == 2 && f.hdr.entries[4].shape[1] == 2);
    const uint8_t *d = dpb_safetensors_data(&f, &f.hdr.entries[4]);
    T_CHECK(d[0] == 8 && d[3] == 11);
    T_CHECK(f.hdr.meta_count == 2);
    if (f.hdr.meta_count == 2) {
        T_CHECK(strcmp(f.hdr.meta_keys[0], "format") == 0 && strcmp(f.hdr.meta_values[0], "pt") == 0);
        T_CHECK(strcmp(f.hdr.meta_keys[1], "k\"") == 0);
        T_CHECK(strcmp(f.hdr.meta_values[1], "v\xc3\xa9\xf0\x9f\x98\x80") == 0);
    }
    dpb_safetensors_close(&f);
    /* Empty header object, no data; null metadata. */
    expect_hdr("emptyobj.safetensors", "{}", 0, DPB_OK, NULL, NULL);
    expect_hdr("nullmeta.safetensors", "{\"__metadata__\":null}", 0, DPB_OK, NULL, NULL);
    /* A 100 MB header limit is not reached by a big-but-legal header length check alone. */
    expect_hdr("spaces.safetensors", "{}                              ", 0, DPB_OK, NULL, NULL);
}

static void test_writer_round_trip(void)
{
    /* One tensor of every dtype, plus an empty and a scalar. */
    enum { N = DPB_DT_COUNT - 1 + 2 };
    dpb_st_write_entry e[N];
    const void *data[N];
    char names[N][32];
    int64_t shapes[N][2];
    uint8_t *bufs[N];
    size_t n = 0;
    for (int t = 1; t < DPB_DT_COUNT; t++, n++) {
        snprintf(names[n], sizeof names[n], "t.%s \"q\"", dpb_dtype_name((dpb_dtype)t));
        shapes[n][0] = 3;
        shapes[n][1] = t;
        e[n] = (dpb_st_write_entry){names[n], (dpb_dtype)t, 2, shapes[n]};
        size_t bytes = 3 * (size_t)t * dpb_dtype_size((dpb_dtype)t);
        bufs[n] = malloc(bytes);
        for (size_t i = 0; i < bytes; i++) bufs[n][i] = (uint8_t)(i * 7 + (size_t)t);
        data[n] = bufs[n];
    }
    snprintf(names[n], sizeof names[n], "empty");
    shapes[n][0] = 0;
    e[n] = (dpb_st_write_entry){names[n], DPB_DT_BF16, 1, shapes[n]};
    bufs[n] = NULL;
    data[n++] = NULL;
    snprintf(names[n], sizeof names[n], "scalar");
    e[n] = (dpb_st_write_entry){names[n], DPB_DT_F32, 0, NULL};
    bufs[n] = malloc(4);
    memcpy(bufs[n], "\x00\x00\x80\x3f", 4);
    data[n] = bufs[n];
    n++;

    char path[512];
    snprintf(path, sizeof path, "%s/written.safetensors", g_dir);
    dpb_status st = dpb_safetensors_write(path, e, data, n);
    T_CHECKF(st == DPB_OK, "%s", dpb_error_message());
    dpb_safetensors_file f;
    st = dpb_safetensors_open(path, &f);
    T_CHECKF(st == DPB_OK, "%s", dpb_error_message());
    if (!st) {
        T_CHECK(f.hdr.count == n);
        T_CHECKF(f.hdr.data_offset % 8 == 0, "data offset %llu not 8-aligned", (unsigned long long)f.hdr.data_offset);
        for (size_t i = 0; i < n; i++) {
            const dpb_st_entry *x = NULL;
            for (size_t j = 0; j < f.hdr.count; j++)
                if (strcmp(f.hdr.entries[j].name, names[i]) == 0) x = &f.hdr.entries[j];
            T_CHECKF(x != NULL, "tensor '%s' lost", names[i]);
            if (!x) continue;
            T_CHECK(x->dtype == e[i].dtype && x->ndim == e[i].ndim);
            for (int d = 0; d < x->ndim; d++) T_CHECK(x->shape[d] == e[i].shape[d]);
            if (bufs[i]) T_CHECK(memcmp(dpb_safetensors_data(&f, x), bufs[i], x->end - x->begin) == 0);
            else T_CHECK(x->end == x->begin);
        }
        /* Header padded with spaces. */
        const uint8_t *hdr = f.map.data + 8;
        size_t hl = (size_t)f.hdr.data_offset - 8;
        T_CHECK(hdr[hl - 1] == '}' || hdr[hl - 1] == ' ');
        dpb_safetensors_close(&f);
    }
    /* header_build with metadata and offsets. */
    uint8_t *prefix;
    size_t plen;
    uint64_t offs[N];
    const char *mk[] = {"format"}, *mv[] = {"pt"};
    st = dpb_safetensors_header_build(e, n, mk, mv, 1, &prefix, &plen, offs);
    T_CHECKF(st == DPB_OK, "%s", dpb_error_message());
    if (!st) {
        T_CHECK(plen % 8 == 0 && offs[0] == 0 && offs[1] == 3 * 1 * 1);
        T_CHECK(memmem(prefix, plen, "\"__metadata__\":{\"format\":\"pt\"}", 30) != NULL);
        free(prefix);
    }
    /* Writer rejects what the reader would reject. */
    dpb_st_write_entry dup[2] = {{"a", DPB_DT_U8, 0, NULL}, {"a", DPB_DT_U8, 0, NULL}};
    T_CHECK(dpb_safetensors_header_build(dup, 2, NULL, NULL, 0, &prefix, &plen, NULL) == DPB_E_ARG);
    int64_t neg = -1;
    dpb_st_write_entry bad = {"a", DPB_DT_U8, 1, &neg};
    T_CHECK(dpb_safetensors_header_build(&bad, 1, NULL, NULL, 0, &prefix, &plen, NULL) == DPB_E_ARG);
    dpb_st_write_entry meta = {"__metadata__", DPB_DT_U8, 0, NULL};
    T_CHECK(dpb_safetensors_header_build(&meta, 1, NULL, NULL, 0, &prefix, &plen, NULL) == DPB_E_ARG);
    for (size_t i = 0; i < n; i++) free(bufs[i]);
}

/* ---------------------------------------------------------------- index */

static dpb_status index_parse(const char *json, dpb_st_index *ix)
{
    return dpb_safetensors_index_parse(json, strlen(json), "model.safetensors.index.json", ix);
}

static void expect_index(const char *json, const char *n1, const char *n2)
{
    dpb_st_index ix;
    dpb_status st = index_parse(json, &ix);
    const char *m = dpb_error_message();
    if (getenv("T_VERBOSE")) fprintf(stderr, "%s -> %s\n", dpb_status_name(st), m);
    T_CHECKF(st == DPB_E_FORMAT, "status %s for %s", dpb_status_name(st), json);
    if (st == DPB_OK) dpb_st_index_free(&ix);
    T_CHECKF(strstr(m, "model.safetensors.index.json") != NULL, "message '%s' names no file", m);
    T_CHECKF(!n1 || strstr(m, n1), "message '%s' lacks '%s'", m, n1);
    T_CHECKF(!n2 || strstr(m, n2), "message '%s' lacks '%s'", m, n2);
}

static void test_index(void)
{
    dpb_st_index ix;
    dpb_status st = index_parse("{\"metadata\":{\"total_size\":123},\"weight_map\":{\"a\":\"s1.safetensors\","
                                "\"b\":\"s2.safetensors\",\"c\":\"s1.safetensors\"}}", &ix);
    T_CHECKF(st == DPB_OK, "%s", dpb_error_message());
    if (!st) {
        T_CHECK(ix.count == 3 && ix.shard_count == 2);
        T_CHECK(strcmp(ix.shard_files[0], "s1.safetensors") == 0 && strcmp(ix.shard_files[1], "s2.safetensors") == 0);
        T_CHECK(strcmp(ix.tensors[2], "c") == 0 && strcmp(ix.shards[2], "s1.safetensors") == 0);
        dpb_st_index_free(&ix);
    }
    /* Empty weight_map: parses (the folder reader rejects it). */
    st = index_parse("{\"weight_map\":{}}", &ix);
    T_CHECKF(st == DPB_OK && ix.count == 0 && ix.shard_count == 0, "%s", dpb_error_message());
    if (!st) dpb_st_index_free(&ix);
    /* Shards in first-seen order, many entries. */
    st = index_parse("{\"weight_map\":{\"a\":\"z\",\"b\":\"y\",\"c\":\"z\",\"d\":\"x\",\"e\":\"y\"}}", &ix);
    T_CHECK(st == DPB_OK && ix.shard_count == 3);
    if (!st) {
        T_CHECK(!strcmp(ix.shard_files[0], "z") && !strcmp(ix.shard_files[1], "y") && !strcmp(ix.shard_files[2], "x"));
        dpb_st_index_free(&ix);
    }
    expect_index("{\"weight_map\":{\"a\":\"../x.safetensors\"}}", "tensor 'a'", "not a plain file name");
    expect_index("{\"weight_map\":{\"a\":\"/etc/passwd\"}}", "'/etc/passwd'", "not a plain file name");
    expect_index("{\"weight_map\":{\"a\":\"..\"}}", "'..'", "not a plain file name");
    expect_index("{\"weight_map\":{\"a\":\"\"}}", "tensor 'a'", "not a plain file name");
    expect_index("{\"weight_map\":{\"a\":\"s\",\"a\":\"t\"}}", "tensor 'a'", "listed twice");
    expect_index("{\"weight_map\":{\"a\":1}}", "tensor 'a'", "shard file name");
    expect_index("{\"metadata\":{}}", "'weight_map' is missing", NULL);
    expect_index("{\"weight_map\":[]}", "weight_map", "must be an object");
    expect_index("[]", "top level", NULL);
    expect_index("{\"weight_map\":{", "invalid JSON", NULL);
}

/* ------------------------------------------------------------- fixtures */

static void test_fixture_files(void)
{
    const char *sh = t_shared();
    if (!sh) T_SKIP("../shared absent: fixtures not available");
    const char *dirs[] = {"gpt-oss-tiny-bf16", "gpt-oss-tiny-mxfp4", "qwen3-tiny", "llama-tiny"};
    const size_t counts[] = {71, 79, 47, 39};
    for (int i = 0; i < 4; i++) {
        char path[512];
        dpb_safetensors_file f;
        snprintf(path, sizeof path, "%s/fixtures/%s/model.safetensors", sh, dirs[i]);
        dpb_status st = dpb_safetensors_open(path, &f);
        T_CHECKF(st == DPB_OK, "%s", dpb_error_message());
        if (!st) {
            T_CHECKF(f.hdr.count == counts[i], "%s: %zu tensors", dirs[i], f.hdr.count);
            T_CHECK(f.hdr.meta_count == 1 && strcmp(f.hdr.meta_keys[0], "format") == 0 &&
                    strcmp(f.hdr.meta_values[0], "pt") == 0);
            bool lm = false;
            uint64_t sum = 0;
            for (size_t j = 0; j < f.hdr.count; j++) {
                const dpb_st_entry *e = &f.hdr.entries[j];
                sum += e->end - e->begin;
                if (strcmp(e->name, "lm_head.weight") == 0)
                    lm = e->dtype == DPB_DT_BF16 && e->ndim == 2 && e->shape[0] == 512 && e->shape[1] == 128;
            }
            T_CHECK(lm);
            T_CHECK(sum == f.map.size - f.hdr.data_offset);
            dpb_safetensors_close(&f);
        }
        snprintf(path, sizeof path, "%s/fixtures/%s/reference.safetensors", sh, dirs[i]);
        if (access(path, R_OK) != 0) continue;
        st = dpb_safetensors_open(path, &f);
        T_CHECKF(st == DPB_OK, "%s", dpb_error_message());
        if (st) continue;
        T_CHECK(f.hdr.count == 3);
        for (size_t j = 0; j < f.hdr.count; j++) {
            const dpb_st_entry *e = &f.hdr.entries[j];
            if (strcmp(e->name, "input_ids") == 0) T_CHECK(e->dtype == DPB_DT_I64 && e->ndim == 1 && e->shape[0] == 48);
            else if (strcmp(e->name, "greedy_ids") == 0)
                T_CHECK(e->dtype == DPB_DT_I64 && e->ndim == 1 && e->shape[0] == 16);
            else if (strcmp(e->name, "logits") == 0)
                T_CHECK(e->dtype == DPB_DT_F32 && e->ndim == 2 && e->shape[0] == 48 && e->shape[1] == 512);
            else T_CHECKF(0, "unexpected tensor '%s'", e->name);
        }
        dpb_safetensors_close(&f);
    }
}

/* Every truncation of a valid file is rejected cleanly. */
static void test_every_truncation(void)
{
    char path[512];
    const char *h = "{\"__metadata__\":{\"format\":\"pt\"}," E("a", "F32", "[2]", 0, 8) "," E("b", "U8", "[3]", 8, 11) "}";
    size_t hl = strlen(h), total = 8 + hl + 11;
    write_st("full.safetensors", hl, h, hl, 11, path, sizeof path);
    dpb_file_map m;
    T_CHECK(dpb_file_map_open(path, &m) == DPB_OK);
    dpb_st_header hdr;
    T_CHECK(dpb_safetensors_parse(m.data, m.size, "full", &hdr) == DPB_OK);
    dpb_st_header_free(&hdr);
    int rejected = 0;
    for (size_t len = 0; len < total; len++) {
        uint8_t *copy = malloc(len ? len : 1); /* exact size: ASan catches any overread */
        memcpy(copy, m.data, len);
        dpb_status st = dpb_safetensors_parse(copy, len, "cut", &hdr);
        if (st != DPB_OK && strstr(dpb_error_message(), "cut: ")) rejected++;
        if (st == DPB_OK) dpb_st_header_free(&hdr);
        free(copy);
    }
    T_CHECKF(rejected == (int)total, "%d of %zu truncations rejected", rejected, total);
    dpb_file_map_close(&m);
}

/* DPB_ST_COMPAT=DIR (used by tests/py/st_compat.py with the Python
 * safetensors library): every DIR/py_*.safetensors is read with the reader
 * and written again with the writer as DIR/c_*.safetensors; prints one line
 * per file.  Also writes DIR/c_all_dtypes.safetensors (one tensor per dtype,
 * byte i of tensor t = i * 7 + t). */
#include <dirent.h>
static int compat_mode(const char *dir)
{
    int bad = 0;
    DIR *d = opendir(dir);
    if (!d) {
        perror(dir);
        return 1;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, "py_", 3) != 0) continue;
        char in[1024], out[1024];
        snprintf(in, sizeof in, "%s/%s", dir, de->d_name);
        snprintf(out, sizeof out, "%s/c_%s", dir, de->d_name + 3);
        dpb_safetensors_file f;
        if (dpb_safetensors_open(in, &f) != DPB_OK) {
            printf("READ-FAIL %s\n", dpb_error_message());
            bad = 1;
            continue;
        }
        dpb_st_write_entry *e = calloc(f.hdr.count + 1, sizeof *e);
        const void **data = calloc(f.hdr.count + 1, sizeof *data);
        for (size_t i = 0; i < f.hdr.count; i++) {
            const dpb_st_entry *x = &f.hdr.entries[i];
            e[i] = (dpb_st_write_entry){x->name, x->dtype, x->ndim, x->shape};
            data[i] = dpb_safetensors_data(&f, x);
        }
        if (dpb_safetensors_write(out, e, data, f.hdr.count) != DPB_OK) {
            printf("WRITE-FAIL %s\n", dpb_error_message());
            bad = 1;
        } else {
            printf("OK %s: %zu tensors, %zu metadata\n", de->d_name, f.hdr.count, f.hdr.meta_count);
        }
        free(e);
        free(data);
        dpb_safetensors_close(&f);
    }
    closedir(d);
    dpb_st_write_entry e[DPB_DT_COUNT];
    const void *data[DPB_DT_COUNT];
    int64_t shapes[DPB_DT_COUNT][2];
    char names[DPB_DT_COUNT][16];
    uint8_t *bufs[DPB_DT_COUNT];
    size_t n = 0;
    for (int t = 1; t < DPB_DT_COUNT; t++, n++) {
        snprintf(names[n], sizeof names[n], "%s", dpb_dtype_name((dpb_dtype)t));
        shapes[n][0] = 3;
        shapes[n][1] = t;
        e[n] = (dpb_st_write_entry){names[n], (dpb_dtype)t, 2, shapes[n]};
        size_t bytes = 3 * (size_t)t * dpb_dtype_size((dpb_dtype)t);
        bufs[n] = malloc(bytes);
        for (size_t i = 0; i < bytes; i++) bufs[n][i] = (uint8_t)(i * 7 + (size_t)t);
        data[n] = bufs[n];
    }
    char out[1024];
    snprintf(out, sizeof out, "%s/c_all_dtypes.safetensors", dir);
    if (dpb_safetensors_write(out, e, data, n) != DPB_OK) {
        printf("WRITE-FAIL %s\n", dpb_error_message());
        bad = 1;
    }
    for (size_t i = 0; i < n; i++) free(bufs[i]);
    return bad;
}

int main(void)
{
    if (getenv("DPB_ST_COMPAT")) return compat_mode(getenv("DPB_ST_COMPAT"));
    const char *d = t_tmpdir();
    if (!d) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(g_dir, sizeof g_dir, "%s", d);
    T_RUN(test_truncated);
    T_RUN(test_header_length);
    T_RUN(test_bad_text);
    T_RUN(test_deep_nesting);
    T_RUN(test_duplicates);
    T_RUN(test_offsets);
    T_RUN(test_shapes);
    T_RUN(test_numbers);
    T_RUN(test_fields);
    T_RUN(test_valid_headers);
    T_RUN(test_writer_round_trip);
    T_RUN(test_index);
    T_RUN(test_fixture_files);
    T_RUN(test_every_truncation);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    return t_done();
}
