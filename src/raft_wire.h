/*
 * raft_wire.h - the versioned wire encoding of Raft messages (struct raft_msg) and of
 * single log entries (struct raft_entry), with an XXH3-64 checksum.
 *
 * It lives beside src/raft (not in it) so the core stays libc-only. The byte layout is
 * documented in raft_wire.c and docs/wire.md. Every frame is
 *   version (1 byte) | group id (u32 LE) | kind ('M' or 'E') | body | XXH3_64 (u64 LE)
 * where the checksum covers every byte before it.
 *
 * Decoding is strict: a frame that is truncated, has trailing bytes, a wrong version,
 * kind or checksum, a count larger than the bytes that remain, a field out of range or
 * beyond the limits, or a non-canonical encoding is rejected with RC_CORRUPT, and the
 * decoder never reads outside [buf, buf + len). A decoded message or entry owns its memory:
 * release it with raft_wire_msg_free() / raft_wire_entry_free().
 */
#ifndef RAFTCONF_RAFT_WIRE_H
#define RAFTCONF_RAFT_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "raft/raft.h"

#define RAFT_WIRE_VERSION 1
#define RAFT_WIRE_KIND_MSG 'M'
#define RAFT_WIRE_KIND_ENTRY 'E'
#define RAFT_WIRE_HEADER_BYTES 6 /* version + group id + kind */
#define RAFT_WIRE_CHECKSUM_BYTES 8

/* Defaults for the decoder's limits (raft_config_default: 4 MiB entries, 1 MiB batches). */
#define RAFT_WIRE_ENTRIES_MAX_DEFAULT 65536u
#define RAFT_WIRE_ENTRY_BYTES_MAX_DEFAULT (8u << 20)
#define RAFT_WIRE_MSG_BYTES_MAX_DEFAULT (64u << 20)

struct raft_wire_limits {
    uint32_t entries_max;     /* entries in one message */
    uint32_t entry_bytes_max; /* data bytes of one entry */
    uint64_t msg_bytes_max;   /* bytes of one whole frame */
};
void raft_wire_limits_default(struct raft_wire_limits *lim);

/* Exact encoded size of a frame holding m / e (0 if m / e is invalid, see encode). */
size_t raft_wire_msg_size(const struct raft_msg *m);
size_t raft_wire_entry_size(const struct raft_entry *e);

/* Encode into buf (capacity cap); *len = bytes written. Returns RC_OK, RC_BADARG for a
 * message the core could not have produced (type out of range, more than RAFT_VOTERS_MAX
 * voters, entry type unknown, data NULL with len > 0), RC_TOOBIG when cap is too small. */
int raft_wire_msg_encode(uint32_t group, const struct raft_msg *m, uint8_t *buf, size_t cap,
                         size_t *len);
int raft_wire_entry_encode(uint32_t group, const struct raft_entry *e, uint8_t *buf,
                           size_t cap, size_t *len);

/* Decode one frame (lim NULL = defaults). RC_OK fills *group and *out (which then owns its
 * entries and data); RC_CORRUPT for malformed input, RC_NOMEM; *out is untouched on error. */
int raft_wire_msg_decode(const uint8_t *buf, size_t len, const struct raft_wire_limits *lim,
                         uint32_t *group, struct raft_msg *out);
int raft_wire_entry_decode(const uint8_t *buf, size_t len, const struct raft_wire_limits *lim,
                           uint32_t *group, struct raft_entry *out);

/* Release what a successful decode allocated; safe on a zeroed struct. */
void raft_wire_msg_free(struct raft_msg *m);
void raft_wire_entry_free(struct raft_entry *e);

#endif
