/* SHA-256 (FIPS 180-4), for manifests: hashes of model configs and tensor
 * indexes.  Incremental: init, update any number of times, final. */
#ifndef DPB_SHA256_H
#define DPB_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct dpb_sha256 {
    uint32_t h[8];
    uint64_t total_bytes;   /* message length so far */
    uint8_t block[64];
    size_t used;            /* bytes waiting in block */
} dpb_sha256;

void dpb_sha256_init(dpb_sha256 *c);
void dpb_sha256_update(dpb_sha256 *c, const void *data, size_t len);
/* Writes the 32-byte digest; c must be initialised again before reuse. */
void dpb_sha256_final(dpb_sha256 *c, uint8_t digest[32]);
/* One-shot: the digest of len bytes as 64 lowercase hex digits + NUL. */
void dpb_sha256_hex(const void *data, size_t len, char hex[65]);
/* Formats a finished 32-byte digest as lowercase hex. */
void dpb_sha256_to_hex(const uint8_t digest[32], char hex[65]);

#endif
