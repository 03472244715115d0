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
#define NS_LETTER_HISTORY 'V'

/* Record format versions (first byte of every record). */
#define NS_APPLIED_FORMAT 1u
#define NS_KEY_FORMAT 1u
#define NS_APPLIED_LEN 33u        /* version 1 'A' record, exact */
#define NS_KEY_HDR_LEN 35u        /* version 1 'K' record header before actor and value */
#define NS_ACTOR_LEN_MAX 255u     /* actor names longer than this are stored truncated */

/* History records ('V', ns_record.c has the byte tables). */
#define NS_HIST_FORMAT 1u
#define NS_HIST_TOMBSTONE 1u      /* flags bit of a version record: a deletion */
#define NS_HIST_META_PRUNED 1u    /* flags bit of a key meta record: older versions pruned */
#define NS_HIST_META_LEN 18u
#define NS_HIST_GROUP_LEN 9u
#define NS_HTAG_META 0u           /* 'V' esc(key) 00 00: the key's history meta */
#define NS_HTAG_VER 1u            /* 'V' esc(key) 00 01 rev: one version */
#define NS_HTAG_END 2u            /* 'V' esc(key) 00 02: upper bound of the versions */
/* At most this many versions of one key are pruned by one apply (bounded work; a lowered
 * history-max-versions catches up over later writes of the key). */
#define NS_HIST_PRUNE_MAX 64u

/* Audit records ('U', ns_audit.c has the byte tables). */
#define NS_LETTER_AUDIT 'U'
#define NS_AUDIT_FORMAT 1u
#define NS_AUDIT_META_LEN 17u
/* At most this many audit records are pruned by one entry (a lowered audit-max-records
 * catches up over later entries). */
#define NS_AUDIT_PRUNE_MAX 64u

struct ns {
    struct pst_engine *e;
    uint32_t group;
    struct ns_limits lim;
    uint64_t applied_index;
    uint64_t applied_term;
    uint64_t revision;
    uint64_t key_count;
    struct pst_batch *batch; /* reused by every apply; empty between calls */
    /* History: every read at a revision >= compact_rev is answerable for every key (the
     * group 'V' record; equals it once hist_rec_present). A store written before history
     * existed has no such record: compact_rev starts at the revision it was opened at. */
    uint64_t compact_rev;
    bool hist_rec_present;
    /* Audit (ns_audit.c, issue 5): the chain's state, equal to the 'U' records after every
     * apply. audit_oldest: oldest retained record (revision + 1 when none); audit_hash: hash
     * of the newest record (0 before the first); audit_prune_hash: hash of the last pruned
     * record (0 when none was); audit_meta_present: the 'U' group meta record exists.
     * audit_last/audit_last_len: the record the last ns_apply wrote (NULL if none). */
    uint64_t audit_oldest;
    uint64_t audit_hash;
    uint64_t audit_prune_hash;
    bool audit_meta_present;
    uint8_t *audit_last;
    size_t audit_last_len;
    uint64_t audit_next_oldest;     /* staged by ns_audit_stage, applied when committed */
    uint64_t audit_next_prune_hash;
    /* Governance (ns_schema_store.c, ns_snapshot.c; issue 5). gov: the group's 'C'
     * records compiled and its pinned revisions (ns_gov.h); snap_*: summary of its 'P'
     * records (count, oldest pinned revision, next id). Always equal to the store: loaded
     * at open/reload, changed only by ns_gov_commit after the batch was written. */
    struct ns_gov_state *gov;
    uint64_t snap_count;
    uint64_t snap_pin_rev;
    uint64_t snap_next_id;
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

/* One key the entry being applied touched (ns_txn.c). old/cur point into old_raw/cur_buf. */
struct ns_txkey {
    char *key;
    size_t klen;
    bool had_old;          /* present before the entry; old is its record then */
    struct ns_keyrec old;
    void *old_raw;
    bool present;          /* present after the entry's changes so far; cur is its record */
    struct ns_keyrec cur;  /* when !present and staged: the tombstone (version 0, no value) */
    char *cur_buf;
    bool staged;           /* changed by this entry: its history is staged */
};

/* What one entry is about to change: the overlay of the keys it touched (ns_txn.c), in
 * the order first touched, and the entry's group-level effects. */
struct ns_txn {
    struct ns *n;
    const struct ns_meta *m;
    uint64_t rev;         /* the revision this entry's changes get */
    uint64_t key_count;   /* key count after the staged changes */
    bool changed;         /* the entry changes the group: the revision advances */
    uint64_t compact_rev; /* group compacted revision after the staged pruning */
    struct ns_txkey *keys;
    size_t nkeys, cap;
    uint32_t *slots; /* open-addressing index: 0 empty, else keys index + 1 */
    size_t nslots;
    /* The audit operation of the entry ("set", "del", "rollback", "schema.set", ...);
     * NULL: named after the command. */
    const char *op;
    /* What a group-level operation acted on, for its audit record (borrowed from argv or
     * owned by the handler until ns_apply returns): the schema pattern, the snapshot id or
     * the rollback prefix; detail: the schema text, label, reason ... NULL when none. */
    const char *subject;
    size_t subject_len;
    const char *detail;
    size_t detail_len;
    /* Governance (issue 5): schema and snapshot changes staged by this entry, applied to
     * struct ns by ns_gov_commit once the batch was written, dropped otherwise. NULL: none.
     * detail_buf: an owned buffer detail may point into (freed by ns_gov_commit). */
    struct ns_gov_txn *gov;
    char *detail_buf;
};

/* Handler status besides RC_*: an error reply was built and nothing was staged. */
#define NS_REPLIED (-1)

/* Run one write command of the state machine inside entry t (ns_apply.c): the handlers
 * every entry uses, also for each command of a MULTI/EXEC entry. Returns RC_OK (reply in
 * out; an NS_R_ERR reply staged nothing), NS_REPLIED (error reply, nothing staged) or a
 * store failure. */
int ns_apply_dispatch(struct ns_txn *t, int argc, char **argv, size_t *argvlen,
                      struct ns_reply *out);
/* The EXEC command (ns_exec.c, format in ns.h): watches, then each command through
 * ns_apply_dispatch or a transaction read. Same returns as ns_apply_dispatch. */
int ns_exec_apply(struct ns_txn *t, int argc, char **argv, size_t *argvlen,
                  struct ns_reply *out);

/* The key's record as the entry sees it: RC_OK (*rec borrowed until ns_txn_free),
 * RC_NOTFOUND, RC_IO/RC_CORRUPT/RC_NOMEM. */
int ns_txn_get(struct ns_txn *t, const void *key, size_t klen, const struct ns_keyrec **rec);
/* Stage key = val (with its history); *version_out (may be NULL) gets the new version.
 * The caller checked key and value limits. RC_OK/RC_IO/RC_CORRUPT/RC_NOMEM. */
int ns_txn_put(struct ns_txn *t, const void *key, size_t klen, const void *val, size_t vlen,
               uint64_t *version_out);
/* Stage the deletion of key if present (*existed, may be NULL, says whether it was). */
int ns_txn_del(struct ns_txn *t, const void *key, size_t klen, bool *existed);
void ns_txn_free(struct ns_txn *t);

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

/* History records. ns_key_hist: 'V' key of user key (klen >= 1) with tag NS_HTAG_* and,
 * when rev is non-NULL, the revision appended; malloc'd (NULL on OOM). */
uint8_t *ns_key_hist(uint32_t group, const void *key, size_t klen, uint8_t tag,
                     const uint64_t *rev, size_t *len);
/* A version record: the 'K' layout with the tombstone flag (a tombstone has version 0
 * and no value). Decode validates as for 'K' (RC_OK / RC_CORRUPT). */
uint8_t *ns_histrec_encode(const struct ns_keyrec *r, bool tombstone, size_t *len);
int ns_histrec_decode(const void *buf, size_t len, struct ns_keyrec *r, bool *tombstone);
/* The history meta of one key: count of retained versions, the revision of the oldest,
 * and whether older ones were pruned (reads before oldest_rev are then COMPACTED). */
struct ns_histmeta {
    uint64_t count;
    uint64_t oldest_rev;
    bool pruned;
};
void ns_histmeta_encode(const struct ns_histmeta *m, uint8_t *buf); /* NS_HIST_META_LEN */
int ns_histmeta_decode(const void *buf, size_t len, struct ns_histmeta *m);
void ns_histgroup_encode(uint64_t compact_rev, uint8_t *buf); /* NS_HIST_GROUP_LEN */
int ns_histgroup_decode(const void *buf, size_t len, uint64_t *compact_rev);

/* Strict unsigned decimal as commands take it (IFVERSION, REV, ids): 1..20 digits, no sign
 * or spaces, no overflow. */
bool ns_parse_u64(const char *s, size_t len, uint64_t *v);

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

/* ------------------------------------------------------------------ ns_history.c */

/* Read the group history record into n (absent: compact_rev = n->revision, see above). */
int ns_hist_load_group(struct ns *n);
/* Stage, in n's batch, the history of one change of key: the version rec (mod_rev = the
 * entry's revision; tombstone for a deletion), the key's meta, and the pruning of its
 * oldest versions beyond history_max_versions (at most NS_HIST_PRUNE_MAX). old is the
 * key's current 'K' record before the change (NULL when absent); it seeds the history of
 * a key written before history existed. *compact_rev is raised to the oldest revision
 * still answerable after pruning. RC_OK / RC_IO / RC_CORRUPT / RC_NOMEM. */
int ns_hist_stage(struct ns *n, const void *key, size_t klen, const struct ns_keyrec *rec,
                  bool tombstone, const struct ns_keyrec *old, uint64_t *compact_rev);
/* Overwrite the version staged earlier in the same entry for key (same revision): a key
 * changed twice by one entry keeps one version, the last. */
int ns_hist_restage(struct ns *n, const void *key, size_t klen, const struct ns_keyrec *rec,
                    bool tombstone);
/* Stage the group history record with compact_rev. */
void ns_hist_stage_group(struct ns *n, uint64_t compact_rev);

/* ------------------------------------------------------------------ ns_audit.c */

/* Load the chain state of n's group (open, reload). RC_OK/RC_IO/RC_CORRUPT/RC_NOMEM. */
int ns_audit_load(struct ns *n);
/* Stage the audit record of changing entry t (and the pruning of old records) in n's
 * batch; *rec and *rec_len get the encoded record (malloc'd; the caller hands it to
 * ns_audit_committed or frees it). RC_OK/RC_NOMEM/RC_IO/RC_CORRUPT. */
int ns_audit_stage(struct ns_txn *t, int argc, char **argv, size_t *argvlen, uint8_t **rec,
                   size_t *rec_len);
/* The batch holding rec was written: make it the chain's head (takes rec; NULL: the entry
 * changed nothing). */
void ns_audit_committed(struct ns *n, uint8_t *rec, size_t rec_len);

/* ------------------------------------------------------------------ governance */

/* Record letters (docs/storage.md): 'C' + pattern = schema, 'P' = snapshot counter,
 * 'P' + id u64 BE = one pinned snapshot. */
#define NS_LETTER_SCHEMA 'C'
#define NS_LETTER_SNAPSHOT 'P'
#define NS_SCHEMAS_MAX 1000u        /* schemas per group */
#define NS_PATTERN_LEN_MAX 1024u    /* bytes of a schema pattern */
#define NS_SNAP_LABEL_MAX 1024u     /* bytes of a snapshot label */
#define NS_ROLLBACK_REASON_MAX 1024u
#define NS_GOV_REPORT_KEYS 10u      /* failing keys named in a refusal */

/* ns_schema_store.c: load the compiled schemas and the snapshot summary (open, reload);
 * free them (close). RC_OK/RC_IO/RC_CORRUPT/RC_NOMEM. */
int ns_gov_load(struct ns *n);
void ns_gov_close(struct ns *n);
/* After ns_apply wrote (committed = true) or dropped the entry's batch: apply t->gov to
 * struct ns or discard it; frees t->gov and t->detail_buf. */
void ns_gov_commit(struct ns *n, struct ns_txn *t, bool committed);
/* The schema check of a write of key = val inside t (the most specific schema, as the
 * entry sees it): RC_OK (no schema, or the value conforms), NS_REPLIED (-SCHEMA error
 * reply in out), RC_NOMEM. */
int ns_schema_check(struct ns_txn *t, const void *key, size_t klen, const void *val,
                    size_t vlen, struct ns_reply *out);

/* State machine commands (ns_apply.c's dispatch table; same contract as its handlers). */
int ns_cmd_schema_set(struct ns_txn *t, int argc, char **argv, size_t *argvlen,
                      struct ns_reply *out);
int ns_cmd_schema_del(struct ns_txn *t, int argc, char **argv, size_t *argvlen,
                      struct ns_reply *out);
int ns_cmd_snapshot(struct ns_txn *t, int argc, char **argv, size_t *argvlen,
                    struct ns_reply *out);
int ns_cmd_snapshot_del(struct ns_txn *t, int argc, char **argv, size_t *argvlen,
                        struct ns_reply *out);
int ns_cmd_rollback(struct ns_txn *t, int argc, char **argv, size_t *argvlen,
                    struct ns_reply *out);

/* ------------------------------------------------------------------ ns_reply.c */

/* The CFG.SET success reply {"revision": r, "version": v, "created": 0|1}. */
int ns_reply_cfgset(struct ns_reply *r, uint64_t revision, uint64_t version, bool created);

#endif
