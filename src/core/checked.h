/* Checked integer arithmetic for lengths, offsets and counts read from files
 * or requests.  Each returns false (and leaves *out unspecified) on overflow. */
#ifndef DPB_CHECKED_H
#define DPB_CHECKED_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

static inline bool dpb_add_u64(uint64_t a, uint64_t b, uint64_t *out) { return !__builtin_add_overflow(a, b, out); }
static inline bool dpb_mul_u64(uint64_t a, uint64_t b, uint64_t *out) { return !__builtin_mul_overflow(a, b, out); }
static inline bool dpb_add_i64(int64_t a, int64_t b, int64_t *out) { return !__builtin_add_overflow(a, b, out); }
static inline bool dpb_mul_i64(int64_t a, int64_t b, int64_t *out) { return !__builtin_mul_overflow(a, b, out); }
static inline bool dpb_mul_size(size_t a, size_t b, size_t *out) { return !__builtin_mul_overflow(a, b, out); }
static inline bool dpb_add_size(size_t a, size_t b, size_t *out) { return !__builtin_add_overflow(a, b, out); }

#endif
