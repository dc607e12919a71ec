/* hash.h - 64-bit FNV-1a, the checksum and fingerprint hash of models, detection
 * parameters and batch shards. Streamable: feed pieces into a running hash that starts
 * at FV_FNV1A_BASIS. */
#ifndef FV_HASH_H
#define FV_HASH_H

#include <stddef.h>
#include <stdint.h>

#define FV_FNV1A_BASIS 14695981039346656037ULL

static inline uint64_t fv_fnv1a(uint64_t h, const void *data, size_t size)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < size; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

#endif
