/*
 * ns.h - the replicated state machine of one Raft group: keys with values and metadata,
 * ordered, under namespaces (prefixes ending in '/').
 *
 * Deterministic: the same entries applied in the same order give the same bytes in the
 * store on every replica. Time comes from the entry (stamped by the proposer), never from
 * a clock. Every apply writes the state it changes AND the group's applied index in one
 * pst batch (unsynced: the Raft log, fsync'd before apply, is what makes it durable; a
 * later synced write makes it durable too, and restart replays entries past the applied
 * index). Writes are decided here (compare-and-set, NX/XX, limits), so all replicas agree.
 *
 * Storage layout, all under the group prefix "g" + group (u32 big endian), see
 * docs/storage.md:
 *   'A'            applied state: index u64, term u64, revision u64 (big endian)
 *   'K' + key      current value record: create_rev u64, mod_rev u64, version u64,
 *                  mtime_ms u64, value bytes
 * (history, audit, schemas and namespace snapshots get their own letters in the
 * governance issue.)
 */
#ifndef RAFTCONF_NS_H
#define RAFTCONF_NS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../persist/pst.h"

struct ns;

struct ns_limits {
    size_t key_len_max;   /* default 4096 */
    size_t value_len_max; /* default 1 MiB */
};
void ns_limits_default(struct ns_limits *l);

/* Open the state of `group` in engine e (does not own e). Reads the applied index. */
int ns_open(struct pst_engine *e, uint32_t group, const struct ns_limits *lim, struct ns **out);
void ns_close(struct ns *n);
uint32_t ns_group(const struct ns *n);
uint64_t ns_applied_index(const struct ns *n);
uint64_t ns_applied_term(const struct ns *n);
uint64_t ns_revision(const struct ns *n); /* group revision: advanced by every change */
uint64_t ns_key_count(const struct ns *n);

/* ---------------------------------------------------------------- replies */

/* A reply tree built by ns_apply and the readers; the service renders it as RESP. */
enum ns_rtype {
    NS_R_STATUS = 1, /* simple string in str ("OK") */
    NS_R_ERR,        /* error: rc (RC_* code; gives the RESP prefix) and message in str */
    NS_R_INT,        /* integer in i */
    NS_R_BULK,       /* bytes in str/len */
    NS_R_NULL,       /* null (nil bulk) */
    NS_R_ARRAY,      /* n elements in elem */
    NS_R_MAP,        /* n key/value pairs: elem has 2n elements */
};
struct ns_reply {
    uint8_t type;
    int rc;
    long long i;
    char *str; /* malloc'd, NUL-terminated */
    size_t len;
    size_t n;
    struct ns_reply *elem; /* malloc'd array */
};
/* Free the contents of r (not r itself). */
void ns_reply_clear(struct ns_reply *r);
/* Free r and its contents. */
void ns_reply_free(struct ns_reply *r);

/* ---------------------------------------------------------------- writes (apply) */

/* What the log entry says about the write besides the command. */
struct ns_meta {
    uint64_t index;      /* Raft index of the entry */
    uint64_t term;       /* Raft term of the entry */
    uint64_t time_ms;    /* proposer's wall-clock time, unix ms */
    uint64_t request_id; /* unique per proposal */
    const char *actor;   /* authenticated user, "default" when none */
    const char *client;  /* client address "ip:port" */
};

/*
 * Apply one committed command. argv is the normalized write command (upper-case name):
 *   SET key value [NX|XX] [GET]    -> +OK / nil (NX/XX not met) / old value (GET)
 *   DEL key [key ...]              -> :number deleted         (UNLINK is sent as DEL)
 *   MSET key value [key value ...] -> +OK (atomic)
 *   CFG.SET key value [IFVERSION n]-> map {revision, version} ; -VERSION mismatch
 *   CFG.DEL key [IFVERSION n]      -> :1 / :0 ; -VERSION mismatch
 *   FLUSHALL                       -> +OK (deletes every key of the group)
 *   NOOP                           -> +OK (advances the applied index only)
 * A command that fails (CAS mismatch, limits, unknown op, malformed) is a no-op with an
 * error reply (NS_R_ERR) and still advances the applied index. ns_apply returns RC_OK
 * whenever the entry was applied (even with an error reply) and RC_IO when the store
 * failed (the node must stop). Entries at or below the applied index are skipped with
 * RC_OK and a NULL-typed reply (type 0) so replays are idempotent.
 */
int ns_apply(struct ns *n, const struct ns_meta *m, int argc, char **argv, size_t *argvlen,
             struct ns_reply *out);

/* The applied index advances for an entry that carries no command (Raft no-op, conf
 * change): writes the applied record only. */
int ns_apply_empty(struct ns *n, uint64_t index, uint64_t term);

/* ---------------------------------------------------------------- reads */

struct ns_kv {
    char *key;
    size_t klen;
    char *value; /* malloc'd, NUL-terminated */
    size_t vlen;
    uint64_t create_rev;
    uint64_t mod_rev;
    uint64_t version;
    uint64_t mtime_ms;
};
void ns_kv_clear(struct ns_kv *kv);

/* RC_OK with *out filled (caller clears), RC_NOTFOUND, RC_IO/RC_CORRUPT. */
int ns_get(struct ns *n, const void *key, size_t klen, struct ns_kv *out);
int ns_exists(struct ns *n, const void *key, size_t klen, bool *exists);

/* Visit keys >= start (start NULL: from the first) in order, at most `limit` (0: no limit),
 * only those beginning with prefix (NULL/0: all). fn returns false to stop. with_values
 * loads values (otherwise kv->value is NULL). Returns RC_OK/RC_IO; *next_out (if non-NULL)
 * gets a malloc'd copy of the key after the last visited one (NULL when the end was reached). */
typedef bool (*ns_visit_fn)(void *ud, const struct ns_kv *kv);
int ns_scan(struct ns *n, const void *prefix, size_t plen, const void *start, size_t slen,
            size_t limit, bool with_values, ns_visit_fn fn, void *ud, char **next_out,
            size_t *next_len);

#endif
