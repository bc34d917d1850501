/* Tensor element types, as safetensors names them. */
#ifndef DPB_DTYPE_H
#define DPB_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef enum dpb_dtype {
    DPB_DT_INVALID = 0,
    DPB_DT_BOOL, DPB_DT_U8, DPB_DT_I8, DPB_DT_F8_E4M3, DPB_DT_F8_E5M2, DPB_DT_F8_E8M0,
    DPB_DT_I16, DPB_DT_U16, DPB_DT_F16, DPB_DT_BF16,
    DPB_DT_I32, DPB_DT_U32, DPB_DT_F32,
    DPB_DT_I64, DPB_DT_U64, DPB_DT_F64,
    DPB_DT_COUNT
} dpb_dtype;

#define DPB_MAX_DIMS 8

/* Bytes per element (all dtypes here are whole bytes). */
size_t dpb_dtype_size(dpb_dtype t);
/* Safetensors spelling ("BF16", "F8_E4M3", ...). */
const char *dpb_dtype_name(dpb_dtype t);
/* Parses a safetensors dtype string of length len; DPB_DT_INVALID if unknown. */
dpb_dtype dpb_dtype_parse(const char *s, size_t len);

/* bf16 <-> f32 (round to nearest even; NaN stays NaN). */
static inline float dpb_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline uint16_t dpb_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
float dpb_f16_to_f32(uint16_t h);

#endif
