/*
 * node_entry.h - the payload envelope of an application log entry (RAFT_ENTRY_NORMAL with
 * data): who proposed which write command, when. The Raft core sees only opaque bytes; every
 * replica decodes the same bytes into the same ns_apply() call, so decoding must be total:
 * any byte string either decodes to a fully validated entry or is rejected (never a crash,
 * never a partial result).
 *
 * Byte layout (all integers big endian), version 1:
 *
 *   offset        size      field
 *   0             1         version (NODE_ENTRY_VERSION = 1)
 *   1             8         request_id (unique per proposal: proposer node id << 48 | seq)
 *   9             8         time_ms (proposer's wall-clock time, unix ms)
 *   17            2         actor_len A (<= NODE_ENTRY_NAME_MAX, no NUL bytes)
 *   19            A         actor (authenticated user, "default" when none)
 *   19+A          2         client_len C (<= NODE_ENTRY_NAME_MAX, no NUL bytes)
 *   21+A          C         client ("ip:port")
 *   21+A+C        4         argc (1 ..= NODE_ENTRY_ARGC_MAX)
 *   25+A+C        ...       argc times: u32 length L, then L bytes (binary safe)
 *
 * The envelope ends exactly after the last argument (trailing bytes are an error). The whole
 * envelope is at most NODE_ENTRY_BYTES_MAX bytes. Integrity is the log record's job (its
 * xxHash covers these bytes), see node_log.h.
 */
#ifndef RAFTCONF_NODE_ENTRY_H
#define RAFTCONF_NODE_ENTRY_H

#include <stddef.h>
#include <stdint.h>

#define NODE_ENTRY_VERSION 1u
#define NODE_ENTRY_NAME_MAX 256u                  /* actor and client, bytes */
#define NODE_ENTRY_ARGC_MAX 65536u                /* arguments per command */
#define NODE_ENTRY_BYTES_MAX (64u * 1024u * 1024u) /* whole envelope */
#define NODE_ENTRY_HEADER_BYTES 25u               /* fixed part with empty names, argc */

/* A decoded (or to-be-encoded) envelope. After node_entry_decode() every pointer points
 * into one allocation owned by the struct (free with node_entry_clear()); actor, client and
 * every argv[i] are NUL-terminated (argv[i] may contain NUL bytes inside argvlen[i]). */
struct node_entry {
    uint64_t request_id;
    uint64_t time_ms;
    const char *actor;
    size_t actor_len;
    const char *client;
    size_t client_len;
    uint32_t argc;
    char **argv;
    size_t *argvlen;
    void *mem_; /* decode only: the one allocation */
};

/* Encode e into a malloc'd buffer (*out, *len; the caller frees). RC_OK, RC_BADARG when a
 * field exceeds its limit (names, argc 0 or too many, total size), RC_NOMEM. */
int node_entry_encode(const struct node_entry *e, uint8_t **out, size_t *len);
/* Decode and validate buf. RC_OK (free with node_entry_clear()), RC_CORRUPT for malformed
 * bytes (bad version, truncation, trailing bytes, limits, NUL in a name), RC_NOMEM. */
int node_entry_decode(const uint8_t *buf, size_t len, struct node_entry *out);
void node_entry_clear(struct node_entry *e);

#endif
