/*
 * ns_gov.h - what the governance files of src/ns share (ns_schema_store.c, ns_snapshot.c,
 * ns_rollback.c): compiled key patterns, the group's in-memory governance state and the
 * changes one entry stages before they are committed.
 *
 * Invariants:
 *   - struct ns_gov_state equals the group's 'C' and 'P' records after every ns_apply: it
 *     is loaded from the store (ns_gov_load) and changed only by ns_gov_commit, after the
 *     batch holding the matching record changes was written. Everything commit needs
 *     (compiled schemas, array capacity) is prepared while staging, so commit cannot fail.
 *   - struct ns_gov_txn holds, in order, the schema and snapshot changes of one entry; the
 *     entry's own later commands see them (a SET after CFG.SCHEMA.SET in one MULTI/EXEC is
 *     checked against the new schema).
 */
#ifndef RAFTCONF_NS_GOV_H
#define RAFTCONF_NS_GOV_H

#include "ns_internal.h"
#include "schema.h"

/* A compiled key pattern (docs/governance.md "Patterns"). */
enum { GP_LIT = 0, GP_ONE, GP_CLASS, GP_STAR, GP_DSTAR };
struct gov_tok {
    uint8_t kind;
    uint8_t ch;       /* GP_LIT */
    uint16_t cls;     /* GP_CLASS: index into classes */
};
struct gov_pat {
    struct gov_tok *tok;
    size_t ntok;
    uint8_t (*classes)[32]; /* 256-bit byte sets */
    size_t nclasses;
    uint8_t *lit;     /* the literal bytes before the first wildcard */
    size_t lit_len;
    size_t nwild;
    bool prefix;      /* ends with '/': matches every key beginning with a match */
};
int gov_pat_compile(const void *pat, size_t plen, struct gov_pat *g, char *err,
                    size_t err_cap);
void gov_pat_free(struct gov_pat *g);
bool gov_pat_match(const struct gov_pat *g, const void *key, size_t klen);

/* One schema of the group, compiled. */
struct gov_schema {
    char *pat;
    size_t plen;
    struct gov_pat gp;
    struct ns_schema *s;
};
/* < 0 when a is more specific than b (docs/governance.md "Which schema applies"). */
int gov_schema_cmp(const struct gov_schema *a, const struct gov_schema *b);

struct gov_pin {
    uint64_t id;
    uint64_t revision;
};

struct ns_gov_state {
    struct gov_schema *schemas; /* unordered */
    size_t nschemas, schemas_cap;
    struct gov_pin *pins; /* by id */
    size_t npins, pins_cap;
};

/* One staged schema change: set (sc.s != NULL) or delete (sc.s == NULL). */
struct gov_schema_chg {
    struct gov_schema sc;
    bool del;
};

struct ns_gov_txn {
    struct gov_schema_chg *chg;
    size_t nchg, chg_cap;
    bool snaps_changed;     /* the fields below are the entry's view */
    uint64_t snap_count;
    uint64_t next_id;
    struct gov_pin *created; /* snapshots created by this entry */
    size_t ncreated, created_cap;
    uint64_t *deleted;      /* ids deleted by this entry (of the store) */
    size_t ndeleted, deleted_cap;
};

/* Like ns_schema_check without a reply: RC_OK, RC_SCHEMA (where/why filled, *pat the
 * applying pattern, borrowed until the entry ends), RC_NOMEM. */
int gov_schema_verdict(struct ns_txn *t, const void *key, size_t klen, const void *val,
                       size_t vlen, char *where, size_t where_cap, char *why, size_t why_cap,
                       const char **pat, size_t *plen);
/* Allocate t->gov if needed: RC_OK/RC_NOMEM. */
int gov_txn_get(struct ns_txn *t, struct ns_gov_txn **out);
/* Printable copy of bytes for messages (non-printables as '?', at most max bytes, then
 * "..."): writes into buf (cap >= max + 4) and returns it. */
const char *gov_printable(const void *p, size_t len, size_t max, char *buf, size_t cap);

/* ns_snapshot.c */
int gov_snap_load(struct ns *n);
/* Snapshot id as the entry sees it: RC_OK (*rev; *prefix malloc'd), RC_NOTFOUND,
 * RC_IO/RC_CORRUPT/RC_NOMEM. */
int gov_snap_lookup(struct ns_txn *t, uint64_t id, uint64_t *rev, char **prefix,
                    size_t *plen);
/* The newest snapshot in the store, not deleted by g (may be NULL), whose prefix is a
 * prefix of p: RC_OK (*id, *rev), RC_NOTFOUND, RC_IO/RC_CORRUPT/RC_NOMEM. */
int gov_snap_latest_covering(struct ns *n, const struct ns_gov_txn *g, const void *p,
                             size_t plen, uint64_t *id, uint64_t *rev);

/* Effective limits (0 in ns_limits: the default). */
uint64_t gov_snapshots_max(const struct ns *n);
uint64_t gov_rollback_keys_max(const struct ns *n);

/* ns_snapshot.c: apply the entry's snapshot changes to n (commit time, cannot fail). */
void gov_snap_commit(struct ns *n, struct ns_gov_txn *g);
void gov_snap_free_txn(struct ns_gov_txn *g);

/* Grow *arr (element size sz) to hold at least need elements. RC_OK/RC_NOMEM. */
int gov_reserve(void **arr, size_t *cap, size_t need, size_t sz);

/* Build a NS_R_ERR reply: REPLIED or RC_NOMEM. */
int gov_err(struct ns_reply *out, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
bool gov_arg_is(const char *a, size_t alen, const char *word);
/* Replace t->detail_buf with a formatted string and return it (NULL on OOM). */
char *gov_own_text(struct ns_txn *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
