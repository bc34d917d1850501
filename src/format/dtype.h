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

/* FP8 E4M3 (OCP "e4m3fn": bias 7, no infinities, 0x7f/0xff NaN, largest finite 448) <-> f32.
 * From f32: round to nearest even, saturating to +-448 (infinities too), NaN -> 0x7f with the sign;
 * the bytes are those of CUDA's cvt.rn.satfinite.e4m3x2.f32. */
static inline float dpb_fp8e4m3_to_f32(uint8_t b)
{
    const uint32_t s = (uint32_t)(b & 0x80) << 24, e = (b >> 3) & 15u, m = b & 7u;
    float f;
    if (e == 15 && m == 7) {
        uint32_t u = s | 0x7fc00000u;
        memcpy(&f, &u, 4);
        return f;
    }
    if (e == 0) f = (float)m * (1.0f / 512.0f); /* subnormal: m * 2^-9 */
    else {
        uint32_t u = ((e + 120u) << 23) | (m << 20); /* 2^(e-7) * (1 + m/8) */
        memcpy(&f, &u, 4);
    }
    return s ? -f : f;
}
static inline uint8_t dpb_f32_to_fp8e4m3(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    const uint8_t s = (uint8_t)((u >> 24) & 0x80);
    u &= 0x7fffffffu;
    if (u > 0x7f800000u) return (uint8_t)(s | 0x7f);
    if (u >= 0x43e80000u) return (uint8_t)(s | 0x7e); /* >= 464 (inf too): saturate to 448 */
    if (u < 0x3c800000u) {                           /* below 2^-6: subnormal steps of 2^-9 */
        float a;
        memcpy(&a, &u, 4);
        float q = (a * 512.0f + 8388608.0f) - 8388608.0f; /* round to nearest even */
        return (uint8_t)(s | (uint8_t)q);                /* q == 8 is the smallest normal, 0x08 */
    }
    u += 0x7ffffu + ((u >> 20) & 1u);
    uint32_t enc = (((u >> 23) - 120u) << 3) | ((u >> 20) & 7u);
    return (uint8_t)(s | (enc > 0x7e ? 0x7e : enc));
}

#endif
