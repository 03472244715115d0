/*
 * ns_internal.h - what the files of src/ns share: the state struct, storage key builders,
 * record codecs (ns_record.c), reply builders (ns_reply.c) and the assertion macro.
 *
 * Invariants of struct ns (checked by ns_apply and on open):
 *   - applied_index/applied_term/revision/key_count equal the 'A' record in the store
 *     after every successful ns_apply / ns_apply_empty (one batch writes both).
 *   - applied_term never decreases; applied_index only grows.
 *   - every 'K' record has 1 <= create_rev <= mod_rev <= revision and
 *     1 <= version <= mod_rev - create_rev + 1 (one revision per changing entry).
 */
#ifndef RAFTCONF_NS_INTERNAL_H
#define RAFTCONF_NS_INTERNAL_H

#include <stdio.h>
#include <stdlib.h>

#include "ns.h"

/* Stays on in release builds (STYLE.md): a failed check is a bug in raftconf, not bad
 * input. Bad input from disk or the log is an error code instead. */
#define NS_ASSERT(cond)                                                                    \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "%s:%d: ns assertion failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                       \
        }                                                                                  \
    } while (0)

/* Group-scoped key layout (brief / docs/storage.md): 'g' + group u32 BE + letter [+ rest]. */
#define NS_GROUP_PREFIX_LEN 6u
#define NS_LETTER_APPLIED 'A'
#define NS_LETTER_KEY 'K'

/* Record format versions (first byte of every record). */
#define NS_APPLIED_FORMAT 1u
#define NS_KEY_FORMAT 1u
#define NS_APPLIED_LEN 33u        /* version 1 'A' record, exact */
#define NS_KEY_HDR_LEN 35u        /* version 1 'K' record header before actor and value */
#define NS_ACTOR_LEN_MAX 255u     /* actor names longer than this are stored truncated */

struct ns {
    struct pst_engine *e;
    uint32_t group;
    struct ns_limits lim;
    uint64_t applied_index;
    uint64_t applied_term;
    uint64_t revision;
    uint64_t key_count;
    struct pst_batch *batch; /* reused by every apply; empty between calls */
};

/* The applied state of a group ('A' record). */
struct ns_applied {
    uint64_t index;
    uint64_t term;
    uint64_t revision;
    uint64_t key_count;
};

/* A decoded key record; actor and value point into the record bytes (borrowed). */
struct ns_keyrec {
    uint64_t create_rev;
    uint64_t mod_rev;
    uint64_t version;
    uint64_t mtime_ms;
    const char *actor;
    size_t actor_len;
    const char *value;
    size_t vlen;
};

/* ------------------------------------------------------------------ ns_record.c */

/* Storage keys. buf must hold NS_GROUP_PREFIX_LEN bytes. */
void ns_key_group_letter(uint8_t *buf, uint32_t group, char letter);
/* 'K' key for a user key: malloc'd (NULL on OOM), *len set. */
uint8_t *ns_key_data(uint32_t group, const void *key, size_t klen, size_t *len);

/* 'A' record: encode into buf (NS_APPLIED_LEN bytes); decode returns RC_OK / RC_CORRUPT. */
void ns_applied_encode(const struct ns_applied *a, uint8_t *buf);
int ns_applied_decode(const void *buf, size_t len, struct ns_applied *a);

/* 'K' record: encode returns a malloc'd buffer (NULL on OOM) and its length; the actor is
 * truncated to NS_ACTOR_LEN_MAX bytes. Decode validates format, lengths and the metadata
 * invariants above (RC_OK / RC_CORRUPT); rec points into buf. */
uint8_t *ns_keyrec_encode(const struct ns_keyrec *r, size_t *len);
int ns_keyrec_decode(const void *buf, size_t len, struct ns_keyrec *r);

/* Big-endian integers. */
void ns_put_u64(uint8_t *p, uint64_t v);
uint64_t ns_get_u64(const uint8_t *p);

/* ------------------------------------------------------------------ ns.c */

/* Read and decode the 'K' record of key: RC_OK (*raw malloc'd, rec points into it),
 * RC_NOTFOUND, RC_IO, RC_CORRUPT (also when mod_rev is above the group revision),
 * RC_NOMEM. */
int ns_load_key(struct ns *n, const void *key, size_t klen, void **raw, struct ns_keyrec *rec);

/* Add the 'A' record for a to n's batch, write the batch (unsynced) and, on success, make
 * a the in-memory applied state. The batch is cleared either way. RC_OK/RC_IO/RC_NOMEM. */
int ns_commit_batch(struct ns *n, const struct ns_applied *a);

/* ------------------------------------------------------------------ ns_reply.c */

/* The CFG.SET success reply {"revision": r, "version": v, "created": 0|1}. */
int ns_reply_cfgset(struct ns_reply *r, uint64_t revision, uint64_t version, bool created);

#endif
