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
 * docs/storage.md ("State machine records") and the byte tables in ns_record.c:
 *   'A'            applied state: format byte, index u64, term u64, revision u64,
 *                  key_count u64 (big endian)
 *   'K' + key      current value record: format byte, flags, create_rev u64, mod_rev u64,
 *                  version u64, mtime_ms u64, actor (u8 length + bytes), value bytes
 *   'V' ...        history: the group record, per key a meta record and one version
 *                  record per retained revision (ns_record.c; docs/storage.md)
 *   'C' + pattern  schema of a key pattern; 'P' snapshot counter, 'P' + id u64 a pinned
 *                  snapshot (ns_schema_store.c, ns_snapshot.c; audit gets its own letter)
 *
 * Revisions: the group revision advances by exactly 1 for every entry that changes at
 * least one key (MSET of many keys is one revision, like an etcd transaction); entries
 * that change nothing (failed CAS, DEL of absent keys, NOOP) leave it alone. A key's
 * version is 1 when created and +1 per change; a deleted and re-created key starts at 1.
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
    /* Versions kept per key, the current one (or the deletion) included; default 100.
     * 0 behaves as 1 (only the newest version). Every replica must use the same value:
     * pruning is decided at apply time. */
    uint64_t history_max_versions;
    /* Audit records kept per group (the newest); default 1,000,000, 0 behaves as 1. Every
     * replica must use the same value: pruning is decided at apply time. (audit, issue 5) */
    uint64_t audit_max_records;
    /* Governance (schemas, snapshots, rollback; issue 5). 0 behaves as the default. Same
     * on every replica (decided at apply time). */
    uint64_t snapshots_max;     /* pinned snapshots per group; default 1000 */
    uint64_t rollback_keys_max; /* keys one CFG.ROLLBACK may change; default 100000 */
};
void ns_limits_default(struct ns_limits *l);

/* Open the state of `group` in engine e (does not own e; e must outlive the ns). Reads the
 * applied record (a fresh group starts at index 0, term 0, revision 0). lim NULL: defaults.
 * RC_OK, RC_NOMEM, RC_IO, RC_CORRUPT (bad 'A' record). */
int ns_open(struct pst_engine *e, uint32_t group, const struct ns_limits *lim, struct ns **out);
void ns_close(struct ns *n);
uint32_t ns_group(const struct ns *n);
uint64_t ns_applied_index(const struct ns *n);
uint64_t ns_applied_term(const struct ns *n);
uint64_t ns_revision(const struct ns *n); /* group revision: advanced by every change */
uint64_t ns_key_count(const struct ns *n); /* keys of the group, O(1) (DBSIZE) */

/* Re-read the applied record after the group's key range was replaced underneath (Raft
 * snapshot install copies the whole range, 'A' record included). RC_OK/RC_IO/RC_CORRUPT. */
int ns_reload(struct ns *n);
/* Move the applied index forward to (index, term) without a command, keeping revision and
 * key count, e.g. after installing a snapshot whose data ends at index. Unlike ns_apply it
 * allows a gap. index must be >= the applied index (RC_BADARG otherwise). */
int ns_reset_applied(struct ns *n, uint64_t index, uint64_t term);

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
/* Free the contents of r (not r itself) and zero it. */
void ns_reply_clear(struct ns_reply *r);
/* Free r and its contents. */
void ns_reply_free(struct ns_reply *r);

/* Reply builders (also for the service's own read replies). r must be zeroed or cleared.
 * Return RC_OK or RC_NOMEM (r is then left cleared). */
int ns_reply_set_status(struct ns_reply *r, const char *s);
/* Error with code rc (gives the RESP prefix) and a printf-formatted message WITHOUT the
 * prefix: the client sees "-<rc_prefix(rc)> <message>". */
int ns_reply_set_error(struct ns_reply *r, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void ns_reply_set_int(struct ns_reply *r, long long v);
int ns_reply_set_bulk(struct ns_reply *r, const void *p, size_t len);
void ns_reply_set_null(struct ns_reply *r);
/* An array of n zeroed elements / a map of npairs zeroed pairs (2*npairs elements). */
int ns_reply_set_array(struct ns_reply *r, size_t n);
int ns_reply_set_map(struct ns_reply *r, size_t npairs);

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
 * Apply one committed command. argv is the normalized write command (upper-case name;
 * matched case-insensitively; options too). Arguments are binary (argvlen gives lengths):
 *   SET key value [NX|XX] [GET]    -> +OK / nil (NX/XX not met) / old value or nil (GET)
 *   DEL key [key ...]              -> :number deleted         (UNLINK is sent as DEL)
 *   MSET key value [key value ...] -> +OK (atomic; a repeated key: the last value wins)
 *   CFG.SET key value [IFVERSION n]-> map {"revision": r, "version": v, "created": 0|1}
 *                                     ; -VERSION version mismatch: current version is <v>
 *   CFG.DEL key [IFVERSION n]      -> :1 / :0 ; -VERSION mismatch as above
 *   FLUSHALL [SYNC|ASYNC]          -> +OK (deletes every key of the group; FLUSHDB too)
 *   NOOP                           -> +OK (advances the applied index only)
 * (docs/commands-cfg.md documents the CFG.* replies.) Keys must be 1..key_len_max bytes,
 * values at most value_len_max (RC_BADARG / RC_TOOBIG error replies).
 * A command that fails (CAS mismatch, limits, unknown op, malformed) is a no-op with an
 * error reply (NS_R_ERR) and still advances the applied index. ns_apply returns RC_OK
 * whenever the entry was applied (even with an error reply); RC_IO / RC_CORRUPT /
 * RC_NOMEM when the store failed or holds a bad record (nothing was applied, *out is
 * cleared; the node must stop). Entries at or below the applied index are skipped with
 * RC_OK and a NULL-typed reply (type 0) so replays are idempotent. An index past
 * applied+1 (a gap) or a term below the applied term is a caller bug: RC_BADARG, nothing
 * applied (use ns_reset_applied after a snapshot install).
 * *out must be zeroed or cleared; the caller clears it afterwards.
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

/* RC_OK with *out filled (key and value malloc'd; caller clears), RC_NOTFOUND,
 * RC_IO/RC_CORRUPT/RC_NOMEM. */
int ns_get(struct ns *n, const void *key, size_t klen, struct ns_kv *out);
int ns_exists(struct ns *n, const void *key, size_t klen, bool *exists);
/* The value with its metadata as a map, the CFG.GET shape (docs/commands-cfg.md):
 * {"value": bulk, "version": int, "create_revision": int, "mod_revision": int,
 *  "mtime_ms": int}. RC_OK / RC_NOMEM. */
int ns_reply_kv(const struct ns_kv *kv, struct ns_reply *r);

/* Visit keys >= start (start NULL: from the first) in order, at most `limit` (0: no limit),
 * only those beginning with prefix (NULL/0: all). fn returns false to stop (the key it was
 * given counts as visited). with_values loads values (otherwise kv->value is NULL). The kv
 * given to fn and everything it points to is borrowed for that call only. Returns
 * RC_OK/RC_IO/RC_CORRUPT/RC_NOMEM; *next_out (if non-NULL) gets a malloc'd copy of the key
 * after the last visited one (NULL when the end was reached), for paging. */
typedef bool (*ns_visit_fn)(void *ud, const struct ns_kv *kv);
int ns_scan(struct ns *n, const void *prefix, size_t plen, const void *start, size_t slen,
            size_t limit, bool with_values, ns_visit_fn fn, void *ud, char **next_out,
            size_t *next_len);

/* ---------------------------------------------------------------- history */

/*
 * Every change of a key (set or delete) is also written as a version at the entry's
 * revision, in the same batch; a key keeps its newest history_max_versions versions (the
 * oldest are pruned as new ones are written). Reading key k "as of revision r" answers
 * the newest version of k with revision <= r: its value, or absent when that version is
 * a deletion or there is none because k did not exist yet. When that version was pruned
 * the read is RC_COMPACTED and *oldest_out is the revision of k's oldest retained
 * version (reads at r >= it are answerable).
 */

/* One retained version, borrowed for the callback only. deleted: a deletion (version 0,
 * value NULL); otherwise value/vlen is the value as written at `revision`. */
struct ns_version {
    uint64_t revision;   /* revision that wrote this version */
    uint64_t create_rev; /* revision that created this incarnation of the key */
    uint64_t version;    /* key version (1 on create), 0 for a deletion */
    uint64_t mtime_ms;   /* proposer's time of the change */
    bool deleted;
    const char *actor;
    size_t actor_len;
    const char *value;
    size_t vlen;
};

/* Key as of revision rev (<= ns_revision; RC_BADARG otherwise). RC_OK with *out filled as
 * by ns_get (mod_rev = the revision of the version), RC_NOTFOUND (absent or deleted at
 * rev; always for rev 0 and keys outside 1..key_len_max bytes), RC_COMPACTED (*oldest_out
 * set), RC_IO/RC_CORRUPT/RC_NOMEM. */
int ns_get_at(struct ns *n, const void *key, size_t klen, uint64_t rev, struct ns_kv *out,
              uint64_t *oldest_out);

/* Visit key's retained versions with revision < before (0: no bound), newest first, at
 * most limit (0: no limit); fn returns false to stop. RC_OK/RC_IO/RC_CORRUPT/RC_NOMEM. */
typedef bool (*ns_version_fn)(void *ud, const struct ns_version *v);
int ns_history(struct ns *n, const void *key, size_t klen, uint64_t before, size_t limit,
               ns_version_fn fn, void *ud);

/* The oldest revision at which every key of the group is answerable: reads of any key at
 * revisions >= it never fail with RC_COMPACTED. 0 until something was pruned. */
uint64_t ns_compact_revision(const struct ns *n);

/* Pruning hook for pinned snapshots: 0 when nothing is pinned, else the oldest pinned
 * revision P. A version is pruned only if every read at a revision >= P can do without
 * it (the next version's revision <= P). Pins apply group-wide (ns_snapshot.c). */
uint64_t ns_history_pin_rev(const struct ns *n);

/* ---------------------------------------------------------------- governance (issue 5)
 *
 * Schemas ('C' records, ns_schema_store.c), pinned snapshots ('P', ns_snapshot.c) and
 * rollback (ns_rollback.c); the commands are applied through ns_apply:
 *   CFG.SCHEMA.SET pattern schema [FORCE]  -> +OK | -ERR bad pattern/schema | -SCHEMA keys
 *   CFG.SCHEMA.DEL pattern                 -> :1 / :0
 *   CFG.SNAPSHOT prefix [LABEL label]      -> :id
 *   CFG.SNAPSHOT.DEL id                    -> :1 / :0
 *   CFG.ROLLBACK prefix [TO id|REV r] [DRYRUN] [REASON text] -> array of changes
 * Semantics and replies: docs/governance.md. Writes (SET, MSET, CFG.SET) of a key that a
 * schema's pattern matches are checked against the most specific one at apply time.
 */

/* Pattern syntax check (docs/governance.md "Patterns"): RC_OK, or RC_BADARG with a
 * one-line reason in err (NUL-terminated, truncated to err_cap). */
int ns_pattern_check(const void *pat, size_t plen, char *err, size_t err_cap);
/* Does pattern pat match key? (false for a malformed pattern) */
bool ns_pattern_match(const void *pat, size_t plen, const void *key, size_t klen);

/* The schema text set for exactly this pattern: RC_OK (*text malloc'd, NUL-terminated,
 * caller frees), RC_NOTFOUND, RC_IO/RC_CORRUPT/RC_NOMEM. */
int ns_schema_get(struct ns *n, const void *pat, size_t plen, char **text, size_t *len);
/* Visit the patterns beginning with prefix (NULL/0: all) in byte order; fn returns false
 * to stop. pat/text borrowed for the call. RC_OK/RC_IO/RC_CORRUPT/RC_NOMEM. */
typedef bool (*ns_schema_fn)(void *ud, const char *pat, size_t plen, const char *text,
                             size_t tlen);
int ns_schema_list(struct ns *n, const void *prefix, size_t plen, ns_schema_fn fn, void *ud);
/* The pattern of the schema that applies to key now (most specific match): RC_OK (*pat
 * malloc'd, caller frees), RC_NOTFOUND (no schema applies), RC_NOMEM. */
int ns_schema_for_key(struct ns *n, const void *key, size_t klen, char **pat, size_t *plen);

/* One pinned snapshot, borrowed for the callback only. */
struct ns_snapshot {
    uint64_t id;       /* per group, increasing, never reused */
    uint64_t revision; /* the pinned revision */
    uint64_t time_ms;  /* proposer's time of the CFG.SNAPSHOT entry */
    const char *prefix, *label, *actor;
    size_t prefix_len, label_len, actor_len;
};
/* Visit the snapshots whose prefix begins with prefix (NULL/0: all), by id.
 * RC_OK/RC_IO/RC_CORRUPT/RC_NOMEM. */
typedef bool (*ns_snapshot_fn)(void *ud, const struct ns_snapshot *s);
int ns_snapshots(struct ns *n, const void *prefix, size_t plen, ns_snapshot_fn fn, void *ud);
uint64_t ns_snapshot_count(const struct ns *n);

/* ---------------------------------------------------------------- audit (issue 5)
 *
 * Every entry that changes the group (its revision advances) writes ONE audit record at
 * that revision, in the entry's batch: who (actor, client), when (the entry's time, index,
 * term), what (op, subject, detail) and every key change with its old and new value. The
 * records of a group form a hash chain: each carries the XXH3-64 of the previous record and
 * its own hash over prev_hash + contents. The newest audit_max_records are kept (the oldest
 * are pruned at apply time, at most NS_AUDIT_PRUNE_MAX per entry); the hash of the last
 * pruned record is kept so the chain can still be checked from the oldest retained one.
 * Layout: ns_audit.c and docs/storage.md "Audit records".
 */

/* One key change of a record (borrowed from the record). */
struct ns_audit_change {
    const char *key;
    size_t klen;
    bool had_old;        /* the key existed before the entry: old/old_len is its value */
    const char *old;
    size_t old_len;
    bool present;        /* the key exists after the entry (a set): val/vlen, version */
    const char *val;
    size_t vlen;
    uint64_t version;    /* the key's version after the entry; 0 for a deletion */
};

/* A decoded audit record; the strings point into the record bytes (not NUL-terminated),
 * valid as long as the bytes given to the decoder / the callback's call. */
struct ns_audit_rec {
    uint64_t revision, index, term, time_ms;
    uint64_t prev_hash, hash;
    const char *actor, *client, *op, *subject, *detail; /* subject/detail NULL: none */
    size_t actor_len, client_len, op_len, subject_len, detail_len;
    uint32_t nchanges;
    const uint8_t *changes; /* encoded change list: walk it with ns_audit_change_next */
    size_t changes_len;
};

/* The change at *off of r (start with *off = 0): true and *c filled, false at the end. */
bool ns_audit_change_next(const struct ns_audit_rec *r, size_t *off, struct ns_audit_change *c);

/* The audit record written by the last ns_apply on n: RC_OK (*out borrowed until the next
 * ns_apply / ns_apply_empty / ns_reload / ns_close), RC_NOTFOUND when that entry changed
 * nothing. For observers of applied entries (watch wake-ups, keyspace notifications, the
 * audit file sink). */
int ns_last_audit(const struct ns *n, struct ns_audit_rec *out);

/* Oldest retained audit record's revision (ns_revision + 1 when none is retained). */
uint64_t ns_audit_oldest(const struct ns *n);

/* Visit the records with revision >= from_rev in revision order; fn returns false to stop
 * (the record given to fn is borrowed for that call). RC_OK, RC_COMPACTED when from_rev is
 * below the oldest retained record (*oldest_out set; nothing visited), RC_IO / RC_CORRUPT
 * (a record that does not decode or whose revision disagrees with its key) / RC_NOMEM. */
typedef bool (*ns_audit_fn)(void *ud, const struct ns_audit_rec *r);
int ns_audit_scan(struct ns *n, uint64_t from_rev, ns_audit_fn fn, void *ud,
                  uint64_t *oldest_out);

/* Recompute the chain from the oldest retained record to the newest. */
struct ns_audit_verify {
    bool ok;
    uint64_t records;     /* records checked */
    uint64_t first_break; /* revision of the first bad record (0 when ok) */
    char reason[128];     /* why, when !ok */
};
/* RC_OK with *v filled (a broken chain is RC_OK with v->ok false), RC_IO / RC_NOMEM. */
int ns_audit_verify(struct ns *n, struct ns_audit_verify *v);

/* ---------------------------------------------------------------- transactions (issue 6)
 *
 * MULTI/EXEC is one entry whose argv is (every number in decimal; ns_exec.c):
 *   "EXEC" "1" W  key_1 rev_1 ... key_W rev_W  C  n_1 arg ... arg  ...  n_C arg ... arg
 * "1" is the format; W watched keys, each with the group revision seen at WATCH; C
 * commands, each as its argument count n (>= 1) and its n arguments (name first). If a
 * watched key has a version with revision > its rev (set or deleted since), the reply is
 * NS_R_NULL (a null array for the client) and nothing changes. Otherwise the commands run
 * in order inside the entry (each sees the changes of those before it; all changes share
 * one revision; a key's version advances once) and the reply is the array of their
 * replies; a command that fails is an error element and the others still apply. Besides
 * the write commands of ns_apply, a transaction may read, as of its point in the
 * transaction: GET key, MGET key [key ...], EXISTS key [key ...], STRLEN key, TYPE key,
 * DBSIZE, CFG.GET key [REV r], PING [message], ECHO message. A malformed EXEC entry is an
 * error reply and changes nothing.
 */
#define NS_EXEC_CMDS_MAX 10000u              /* commands per transaction */
#define NS_EXEC_WATCH_MAX 1000u              /* watched keys per transaction */
#define NS_EXEC_ARGS_MAX 60000u              /* the whole EXEC argv (entry limit: 65536) */
#define NS_EXEC_BYTES_MAX (3u * 1024 * 1024) /* argument bytes + 4 per argument */

#endif
