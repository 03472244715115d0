/*
 * bytes.h - big-endian integers in byte buffers, for the node's record and key formats
 * (src/node_*.c). Big endian so that encoded integers in keys sort in numeric order.
 * Callers check lengths before calling; n is 1..8.
 */
#ifndef RAFTCONF_BYTES_H
#define RAFTCONF_BYTES_H

#include <stdint.h>

static inline void be_put(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static inline uint64_t be_get(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

#endif
