#include "format/dtype.h"

#include <math.h>

static const struct { const char *name; size_t size; } k_dtypes[DPB_DT_COUNT] = {
    [DPB_DT_INVALID] = {"INVALID", 0},
    [DPB_DT_BOOL] = {"BOOL", 1},   [DPB_DT_U8] = {"U8", 1},           [DPB_DT_I8] = {"I8", 1},
    [DPB_DT_F8_E4M3] = {"F8_E4M3", 1}, [DPB_DT_F8_E5M2] = {"F8_E5M2", 1}, [DPB_DT_F8_E8M0] = {"F8_E8M0", 1},
    [DPB_DT_I16] = {"I16", 2},     [DPB_DT_U16] = {"U16", 2},         [DPB_DT_F16] = {"F16", 2},
    [DPB_DT_BF16] = {"BF16", 2},   [DPB_DT_I32] = {"I32", 4},         [DPB_DT_U32] = {"U32", 4},
    [DPB_DT_F32] = {"F32", 4},     [DPB_DT_I64] = {"I64", 8},         [DPB_DT_U64] = {"U64", 8},
    [DPB_DT_F64] = {"F64", 8},
};

size_t dpb_dtype_size(dpb_dtype t) { return (t > 0 && t < DPB_DT_COUNT) ? k_dtypes[t].size : 0; }
const char *dpb_dtype_name(dpb_dtype t) { return (t > 0 && t < DPB_DT_COUNT) ? k_dtypes[t].name : "INVALID"; }

dpb_dtype dpb_dtype_parse(const char *s, size_t len)
{
    for (int t = 1; t < DPB_DT_COUNT; t++) {
        const char *n = k_dtypes[t].name;
        if (strlen(n) == len && memcmp(n, s, len) == 0) return (dpb_dtype)t;
    }
    return DPB_DT_INVALID;
}

float dpb_f16_to_f32(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    float v;
    if (e == 0) v = ldexpf((float)m, -24);
    else if (e == 31) v = m ? NAN : INFINITY;
    else v = ldexpf((float)(m | 0x400), e - 25);
    return s ? -v : v;
}
