/*
 * ns_apply.c - the write commands of the state machine, decided at apply time so every
 * replica reaches the same answer (DESIGN.md, write path step 4; Raft paper section 5.3:
 * committed entries are applied in log order).
 *
 * Invariants:
 *   - One entry = one pst batch: the changed 'K' records and the 'A' record (index, term,
 *     revision, key count) are written together, unsynced (the fsync'd Raft log makes the
 *     entry durable; restart replays entries past the applied index).
 *   - An entry that fails (syntax, limits, CAS) stages nothing: only the 'A' record is
 *     written and the reply is an error. Nothing is ever half-applied.
 *   - The revision advances by exactly one for an entry that changes at least one key.
 *     A key named twice in one entry (MSET a 1 a 2, DEL a a) changes once (last wins).
 *   - Only the entry's data is used (index, term, time_ms, actor): no clock, no rand.
 *   - Every staged change of a key also stages its history version (a tombstone for a
 *     deletion, FLUSHALL included) and the pruning of old versions (ns_history.c), in the
 *     same batch; the group history record is written with the first changing entry and
 *     whenever pruning raises the group's compacted revision.
 */
#include <string.h>
#include <strings.h>

#include "../rc.h"
#include "ns_internal.h"

#define REPLIED NS_REPLIED

static bool arg_is(const char *a, size_t alen, const char *word)
{
    size_t wlen = strlen(word);
    return alen == wlen && strncasecmp(a, word, wlen) == 0;
}

static int err(struct ns_reply *out, int rc, const char *msg)
{
    return ns_reply_set_error(out, rc, "%s", msg) == RC_OK ? REPLIED : RC_NOMEM;
}

static int err_arity(struct ns_reply *out, const char *name)
{
    int rc = ns_reply_set_error(out, RC_BADARG,
                                "wrong number of arguments for '%s' command", name);
    return rc == RC_OK ? REPLIED : RC_NOMEM;
}

static int check_key(const struct ns *n, size_t klen, struct ns_reply *out)
{
    if (klen == 0)
        return err(out, RC_BADARG, "empty keys are not allowed");
    if (klen > n->lim.key_len_max) {
        int rc = ns_reply_set_error(out, RC_TOOBIG, "key length %zu exceeds the limit of %zu bytes",
                                    klen, n->lim.key_len_max);
        return rc == RC_OK ? REPLIED : RC_NOMEM;
    }
    return RC_OK;
}

static int check_value(const struct ns *n, size_t vlen, struct ns_reply *out)
{
    if (vlen > n->lim.value_len_max) {
        int rc = ns_reply_set_error(out, RC_TOOBIG,
                                    "value length %zu exceeds the limit of %zu bytes", vlen,
                                    n->lim.value_len_max);
        return rc == RC_OK ? REPLIED : RC_NOMEM;
    }
    return RC_OK;
}

/* ------------------------------------------------------------------ SET */

struct set_opts {
    bool nx, xx, get;
};

static int parse_set_opts(int argc, char **argv, size_t *argvlen, struct set_opts *o,
                          struct ns_reply *out)
{
    static const char *const expiry[] = {"EX", "PX", "EXAT", "PXAT", "KEEPTTL", NULL};
    memset(o, 0, sizeof(*o));
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i];
        size_t alen = argvlen[i];
        if (arg_is(a, alen, "NX") && !o->xx) {
            o->nx = true;
        } else if (arg_is(a, alen, "XX") && !o->nx) {
            o->xx = true;
        } else if (arg_is(a, alen, "GET")) {
            o->get = true;
        } else {
            for (int k = 0; expiry[k]; k++) {
                if (arg_is(a, alen, expiry[k]))
                    return err(out, RC_BADARG,
                               "config keys do not expire: SET expiry options are not supported");
            }
            return err(out, RC_BADARG, "syntax error");
        }
    }
    return RC_OK;
}

static int cmd_set(struct ns_txn *t, int argc, char **argv, size_t *argvlen,
                   struct ns_reply *out)
{
    if (argc < 3)
        return err_arity(out, "set");
    struct set_opts o;
    int rc = parse_set_opts(argc, argv, argvlen, &o, out);
    if (rc == RC_OK)
        rc = check_key(t->n, argvlen[1], out);
    if (rc == RC_OK)
        rc = check_value(t->n, argvlen[2], out);
    if (rc != RC_OK)
        return rc;
    const struct ns_keyrec *old = NULL;
    rc = ns_txn_get(t, argv[1], argvlen[1], &old);
    if (rc != RC_OK && rc != RC_NOTFOUND)
        return rc;
    bool exists = rc == RC_OK;
    bool met = !(o.nx && exists) && !(o.xx && !exists);
    if (met && (rc = ns_schema_check(t, argv[1], argvlen[1], argv[2], argvlen[2], out)))
        return rc; /* the value fails its schema (issue 5) */
    /* GET answers the value before this SET: reply before staging (old is then reused). */
    rc = RC_OK;
    if (o.get && exists)
        rc = ns_reply_set_bulk(out, old->value, old->vlen);
    else if (o.get || !met)
        ns_reply_set_null(out);
    else
        rc = ns_reply_set_status(out, "OK");
    if (rc == RC_OK && met)
        rc = ns_txn_put(t, argv[1], argvlen[1], argv[2], argvlen[2], NULL);
    return rc;
}

/* ------------------------------------------------------------------ multi-key */

struct argref {
    const char *p;
    size_t len;
    int pos;
};

static int cmp_argref(const void *a, const void *b)
{
    const struct argref *x = a, *y = b;
    size_t m = x->len < y->len ? x->len : y->len;
    int c = m ? memcmp(x->p, y->p, m) : 0;
    if (c)
        return c;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return (x->pos > y->pos) - (x->pos < y->pos); /* total order: deterministic */
}

/* Positions (first, first+step, ...) of argv holding keys, one per distinct key: the last
 * occurrence. *pos is malloc'd (sorted by key), *npos set. */
static int unique_keys(int argc, char **argv, size_t *argvlen, int first, int step, int **pos,
                       size_t *npos)
{
    size_t cnt = (size_t)(argc - first + step - 1) / (size_t)step;
    struct argref *refs = malloc(cnt * sizeof(*refs));
    *pos = malloc(cnt * sizeof(**pos));
    if (!refs || !*pos) {
        free(refs);
        free(*pos);
        *pos = NULL;
        return RC_NOMEM;
    }
    for (size_t i = 0; i < cnt; i++) {
        int k = first + (int)i * step;
        refs[i] = (struct argref){argv[k], argvlen[k], k};
    }
    qsort(refs, cnt, sizeof(*refs), cmp_argref);
    *npos = 0;
    for (size_t i = 0; i < cnt; i++) {
        bool last = i + 1 == cnt || refs[i].len != refs[i + 1].len ||
                    (refs[i].len && memcmp(refs[i].p, refs[i + 1].p, refs[i].len) != 0);
        if (last)
            (*pos)[(*npos)++] = refs[i].pos;
    }
    free(refs);
    return RC_OK;
}

static int cmd_mset(struct ns_txn *t, int argc, char **argv, size_t *argvlen, struct ns_reply *out)
{
    if (argc < 3 || argc % 2 == 0)
        return err_arity(out, "mset");
    for (int i = 1; i < argc; i += 2) { /* validate everything before staging anything */
        int rc = check_key(t->n, argvlen[i], out);
        if (rc == RC_OK)
            rc = check_value(t->n, argvlen[i + 1], out);
        if (rc != RC_OK)
            return rc;
    }
    int *pos = NULL;
    size_t npos = 0;
    int rc = unique_keys(argc, argv, argvlen, 1, 2, &pos, &npos);
    for (size_t i = 0; rc == RC_OK && i < npos; i++) /* schemas (issue 5): all or nothing */
        rc = ns_schema_check(t, argv[pos[i]], argvlen[pos[i]], argv[pos[i] + 1],
                             argvlen[pos[i] + 1], out);
    for (size_t i = 0; rc == RC_OK && i < npos; i++) {
        int k = pos[i];
        rc = ns_txn_put(t, argv[k], argvlen[k], argv[k + 1], argvlen[k + 1], NULL);
    }
    free(pos);
    if (rc == RC_OK)
        rc = ns_reply_set_status(out, "OK");
    return rc;
}

static int cmd_del(struct ns_txn *t, int argc, char **argv, size_t *argvlen, struct ns_reply *out)
{
    if (argc < 2)
        return err_arity(out, "del");
    for (int i = 1; i < argc; i++) {
        int rc = check_key(t->n, argvlen[i], out);
        if (rc != RC_OK)
            return rc;
    }
    int *pos = NULL;
    size_t npos = 0;
    long long deleted = 0;
    int rc = unique_keys(argc, argv, argvlen, 1, 1, &pos, &npos);
    for (size_t i = 0; rc == RC_OK && i < npos; i++) {
        bool existed = false;
        rc = ns_txn_del(t, argv[pos[i]], argvlen[pos[i]], &existed);
        deleted += existed;
    }
    free(pos);
    if (rc == RC_OK)
        ns_reply_set_int(out, deleted);
    return rc;
}

/* Every key of the group is deleted in this one batch: those in the store, and those the
 * same entry created before (MULTI/EXEC) through the overlay. */
static int cmd_flushall(struct ns_txn *t, int argc, char **argv, size_t *argvlen,
                        struct ns_reply *out)
{
    if (argc > 2 || (argc == 2 && !arg_is(argv[1], argvlen[1], "SYNC") &&
                     !arg_is(argv[1], argvlen[1], "ASYNC")))
        return argc > 2 ? err_arity(out, "flushall") : err(out, RC_BADARG, "syntax error");
    uint8_t lo[NS_GROUP_PREFIX_LEN], hi[NS_GROUP_PREFIX_LEN];
    ns_key_group_letter(lo, t->n->group, NS_LETTER_KEY);
    ns_key_group_letter(hi, t->n->group, NS_LETTER_KEY + 1);
    struct pst_iter *it = pst_iter_new(t->n->e, NULL, lo, sizeof(lo), hi, sizeof(hi));
    if (!it)
        return RC_NOMEM;
    int rc = RC_OK;
    for (; rc == RC_OK && pst_iter_valid(it); pst_iter_next(it)) {
        size_t klen = 0;
        const uint8_t *k = pst_iter_key(it, &klen);
        NS_ASSERT(klen > NS_GROUP_PREFIX_LEN); /* the bounds and non-empty keys */
        rc = ns_txn_del(t, k + NS_GROUP_PREFIX_LEN, klen - NS_GROUP_PREFIX_LEN, NULL);
    }
    if (rc == RC_OK)
        rc = pst_iter_status(it);
    pst_iter_free(it);
    for (size_t i = 0; rc == RC_OK && i < t->nkeys; i++)
        if (t->keys[i].present)
            rc = ns_txn_del(t, t->keys[i].key, t->keys[i].klen, NULL);
    if (rc == RC_OK)
        rc = ns_reply_set_status(out, "OK");
    return rc;
}

static int cmd_noop(struct ns_txn *t, int argc, char **argv, size_t *argvlen, struct ns_reply *out)
{
    (void)t, (void)argv, (void)argvlen;
    if (argc != 1)
        return err_arity(out, "noop");
    return ns_reply_set_status(out, "OK");
}

/* ------------------------------------------------------------------ CFG.SET / CFG.DEL */

/* Parse the optional "IFVERSION n" at argv[first]: RC_OK (*has set), REPLIED, RC_NOMEM. */
static int parse_ifversion(int argc, char **argv, size_t *argvlen, int first, bool *has,
                           uint64_t *want, struct ns_reply *out)
{
    *has = false;
    if (argc == first)
        return RC_OK;
    if (argc != first + 2 || !arg_is(argv[first], argvlen[first], "IFVERSION"))
        return err(out, RC_BADARG, "syntax error");
    if (!ns_parse_u64(argv[first + 1], argvlen[first + 1], want))
        return err(out, RC_BADARG, "value is not an integer or out of range");
    *has = true;
    return RC_OK;
}

/* Compare-and-set check: REPLIED with -VERSION when want differs from the current version
 * (0 when the key is absent). */
static int check_version(bool has, uint64_t want, uint64_t cur, struct ns_reply *out)
{
    if (!has || want == cur)
        return RC_OK;
    int rc = ns_reply_set_error(out, RC_VERSION, "version mismatch: current version is %llu",
                                (unsigned long long)cur);
    return rc == RC_OK ? REPLIED : RC_NOMEM;
}

/* The shared front of CFG.SET and CFG.DEL: parse "IFVERSION n" (at argument cond_at), check
 * the key (and the value's length when value_len is not NULL), look the key up and decide
 * the compare-and-set. On RC_OK *exists says whether the key is there. Any other return:
 * an error reply was set (REPLIED) or the store failed. */
static int cas_front(struct ns_txn *t, int argc, char **argv, size_t *argvlen, int cond_at,
                     const size_t *value_len, bool *exists, struct ns_reply *out)
{
    bool has = false;
    uint64_t want = 0;
    int rc = parse_ifversion(argc, argv, argvlen, cond_at, &has, &want, out);
    if (rc == RC_OK)
        rc = check_key(t->n, argvlen[1], out);
    if (rc == RC_OK && value_len)
        rc = check_value(t->n, *value_len, out);
    if (rc != RC_OK)
        return rc;
    const struct ns_keyrec *old = NULL;
    rc = ns_txn_get(t, argv[1], argvlen[1], &old);
    if (rc != RC_OK && rc != RC_NOTFOUND)
        return rc;
    *exists = rc == RC_OK;
    return check_version(has, want, *exists ? old->version : 0, out);
}

static int cmd_cfg_set(struct ns_txn *t, int argc, char **argv, size_t *argvlen,
                       struct ns_reply *out)
{
    if (argc != 3 && argc != 5)
        return argc < 3 ? err_arity(out, "cfg.set") : err(out, RC_BADARG, "syntax error");
    bool exists = false;
    int rc = cas_front(t, argc, argv, argvlen, 3, &argvlen[2], &exists, out);
    if (rc == RC_OK) /* the value must pass its schema (issue 5) */
        rc = ns_schema_check(t, argv[1], argvlen[1], argv[2], argvlen[2], out);
    if (rc != RC_OK)
        return rc;
    uint64_t version = 0;
    rc = ns_txn_put(t, argv[1], argvlen[1], argv[2], argvlen[2], &version);
    if (rc == RC_OK)
        rc = ns_reply_cfgset(out, t->rev, version, !exists);
    return rc;
}

static int cmd_cfg_del(struct ns_txn *t, int argc, char **argv, size_t *argvlen,
                       struct ns_reply *out)
{
    if (argc != 2 && argc != 4)
        return argc < 2 ? err_arity(out, "cfg.del") : err(out, RC_BADARG, "syntax error");
    bool exists = false;
    int rc = cas_front(t, argc, argv, argvlen, 2, NULL, &exists, out);
    if (rc != RC_OK)
        return rc;
    rc = ns_txn_del(t, argv[1], argvlen[1], NULL);
    if (rc == RC_OK)
        ns_reply_set_int(out, exists ? 1 : 0);
    return rc;
}

/* ------------------------------------------------------------------ dispatch */

typedef int (*cmd_fn)(struct ns_txn *t, int argc, char **argv, size_t *argvlen,
                      struct ns_reply *out);

static const struct {
    const char *name;
    cmd_fn fn;
} cmds[] = {
    {"SET", cmd_set},         {"DEL", cmd_del},         {"UNLINK", cmd_del},
    {"MSET", cmd_mset},       {"CFG.SET", cmd_cfg_set}, {"CFG.DEL", cmd_cfg_del},
    {"FLUSHALL", cmd_flushall}, {"FLUSHDB", cmd_flushall}, {"NOOP", cmd_noop},
    /* governance (issue 5): ns_schema_store.c, ns_snapshot.c, ns_rollback.c */
    {"CFG.SCHEMA.SET", ns_cmd_schema_set}, {"CFG.SCHEMA.DEL", ns_cmd_schema_del},
    {"CFG.SNAPSHOT", ns_cmd_snapshot},     {"CFG.SNAPSHOT.DEL", ns_cmd_snapshot_del},
    {"CFG.ROLLBACK", ns_cmd_rollback},
    {"EXEC", ns_exec_apply}, /* MULTI/EXEC (issue 6): ns_exec.c */
};

int ns_apply_dispatch(struct ns_txn *t, int argc, char **argv, size_t *argvlen,
                      struct ns_reply *out)
{
    if (argc < 1)
        return err(out, RC_BADARG, "empty command");
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        if (arg_is(argv[0], argvlen[0], cmds[i].name))
            return cmds[i].fn(t, argc, argv, argvlen, out);
    }
    return err(out, RC_BADARG, "unknown command for the state machine");
}

/* Raft paper 5.3 / thesis 3.5: apply in order, exactly once; replays are skipped. */
static int check_entry(const struct ns *n, uint64_t index, uint64_t term)
{
    if (index != n->applied_index + 1 || term < n->applied_term || term == 0)
        return RC_BADARG;
    return RC_OK;
}

int ns_apply(struct ns *n, const struct ns_meta *m, int argc, char **argv, size_t *argvlen,
             struct ns_reply *out)
{
    NS_ASSERT(n != NULL);
    NS_ASSERT(m != NULL);
    NS_ASSERT(out != NULL);
    NS_ASSERT(out->str == NULL);
    NS_ASSERT(out->elem == NULL);
    NS_ASSERT(pst_batch_count(n->batch) == 0);
    memset(out, 0, sizeof(*out));
    ns_audit_committed(n, NULL, 0); /* forget the previous entry's record (ns_last_audit) */
    if (m->index <= n->applied_index)
        return RC_OK; /* already applied: idempotent replay */
    int rc = check_entry(n, m->index, m->term);
    if (rc != RC_OK)
        return rc;
    struct ns_txn t = {.n = n, .m = m, .rev = n->revision + 1, .key_count = n->key_count,
                         .compact_rev = n->compact_rev};
    rc = ns_apply_dispatch(&t, argc, argv, argvlen, out);
    if (rc == REPLIED || (rc == RC_OK && out->type == NS_R_ERR)) {
        /* A refused command changes nothing but the applied index. */
        NS_ASSERT(!t.changed);
        pst_batch_clear(n->batch);
        rc = RC_OK;
    }
    /* Entry-level effects of a changing entry are staged here, after the command (the
     * audit record of the governance layer goes here). */
    uint8_t *audit_rec = NULL; /* audit (issue 5): one record per changing entry */
    size_t audit_len = 0;
    if (rc == RC_OK && t.changed)
        rc = ns_audit_stage(&t, argc, argv, argvlen, &audit_rec, &audit_len);
    bool hist_group = false;
    if (rc == RC_OK && pst_batch_count(n->batch) > 0 &&
        (!n->hist_rec_present || t.compact_rev != n->compact_rev)) {
        ns_hist_stage_group(n, t.compact_rev);
        hist_group = true;
    }
    if (rc == RC_OK) {
        struct ns_applied a = {m->index, m->term, t.changed ? t.rev : n->revision,
                               t.key_count};
        rc = ns_commit_batch(n, &a);
    }
    if (rc == RC_OK && hist_group) {
        n->compact_rev = t.compact_rev;
        n->hist_rec_present = true;
    }
    if (rc == RC_OK)
        ns_audit_committed(n, audit_rec, audit_len); /* takes audit_rec */
    else
        free(audit_rec);
    /* Schemas and snapshot pins follow the store only once the batch is written. */
    ns_gov_commit(n, &t, rc == RC_OK && t.changed);
    ns_txn_free(&t);
    if (rc != RC_OK) {
        pst_batch_clear(n->batch);
        ns_reply_clear(out);
    }
    return rc;
}

int ns_apply_empty(struct ns *n, uint64_t index, uint64_t term)
{
    NS_ASSERT(n != NULL);
    NS_ASSERT(pst_batch_count(n->batch) == 0);
    ns_audit_committed(n, NULL, 0); /* this entry wrote no audit record */
    if (index <= n->applied_index)
        return RC_OK;
    int rc = check_entry(n, index, term);
    if (rc != RC_OK)
        return rc;
    struct ns_applied a = {index, term, n->revision, n->key_count};
    return ns_commit_batch(n, &a);
}
