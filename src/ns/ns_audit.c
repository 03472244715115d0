/*
 * ns_audit.c - the audit trail of a group: one hash-chained record per changing entry,
 * written in the entry's batch, pruned to audit_max_records, read in revision order and
 * verified by recomputing the chain.
 *
 * Storage (group prefix 'g' + group u32 BE, docs/storage.md "Audit records"):
 *   'g' group 'U'            meta record, 17 bytes:
 *                              0 format = 1 | 1 oldest_rev u64 (oldest retained record;
 *                              revision + 1 when none) | 9 prune_hash u64 (hash of the
 *                              last pruned record, 0 when none was pruned)
 *   'g' group 'U' rev u64 BE one record per revision (every changing entry has one):
 *
 *   offset size  field
 *   0      1     format = 1
 *   1      8     revision
 *   9      8     index        Raft index of the entry
 *   17     8     term         Raft term of the entry
 *   25     8     time_ms      proposer's time stamped in the entry (unix ms)
 *   33     8     prev_hash    hash of the previous record of the group (0 for the first)
 *   41     4     nchanges     number of key changes below
 *   45     1     actor_len a, then a bytes actor ("default" when none)
 *   .      2     client_len c, then c bytes client address
 *   .      1     op_len o, then o bytes op ("set", "del", "flushall", "rollback", ...)
 *   .      1     flags        bit 0: subject present, bit 1: detail present
 *   .      4     subject_len s, then s bytes (0 when absent)
 *   .      4     detail_len d, then d bytes (0 when absent)
 *   .            nchanges x change:
 *                  4 klen, klen bytes key | 1 flags (bit 0 had_old, bit 1 present) |
 *                  8 version after (0 for a deletion) | [4 old_len, old bytes] if had_old |
 *                  [4 new_len, new bytes] if present
 *   end-8  8     hash = XXH3-64 over every byte before it (prev_hash included)
 * Integers big endian. Changes are in the order the entry first touched the keys (store
 * order for FLUSHALL): deterministic, so every replica writes the same bytes.
 *
 * Invariants (after every apply):
 *   - records exist for exactly the revisions audit_oldest..revision, contiguous;
 *   - record r's prev_hash is record r-1's hash, or prune_hash for the oldest retained one
 *     (0 when nothing was pruned and the chain starts there);
 *   - audit_hash is the newest record's hash; the meta record equals audit_oldest and
 *     audit_prune_hash once audit_meta_present.
 * Deterministic: only the entry and the store are used (no clock, no randomness).
 */
#include <string.h>
#include <strings.h>
#include <xxhash.h>

#include "../rc.h"
#include "ns_internal.h"

#define HDR_FIXED 45u
#define AUDIT_KEY_LEN (NS_GROUP_PREFIX_LEN + 8u)
#define CH_HAD_OLD 1u
#define CH_PRESENT 2u
#define F_SUBJECT 1u
#define F_DETAIL 2u

/* ------------------------------------------------------------------ encoding */

struct wbuf {
    uint8_t *p;
    size_t len, cap;
    bool oom;
};

static void wb_put(struct wbuf *w, const void *d, size_t n)
{
    if (w->oom)
        return;
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n)
            cap *= 2;
        uint8_t *p = realloc(w->p, cap);
        if (!p) {
            w->oom = true;
            return;
        }
        w->p = p;
        w->cap = cap;
    }
    if (n)
        memcpy(w->p + w->len, d, n);
    w->len += n;
}

static void wb_uint(struct wbuf *w, uint64_t v, unsigned bytes)
{
    uint8_t b[8];
    for (unsigned i = 0; i < bytes; i++)
        b[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
    wb_put(w, b, bytes);
}

static uint64_t rd_uint(const uint8_t *p, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++)
        v = (v << 8) | p[i];
    return v;
}

static void audit_key(uint32_t group, uint64_t rev, uint8_t *buf)
{
    ns_key_group_letter(buf, group, NS_LETTER_AUDIT);
    ns_put_u64(buf + NS_GROUP_PREFIX_LEN, rev);
}

/* The audit name of a key command (t->op names group-level operations). */
static const char *op_name(char **argv, size_t *argvlen, int argc, char *buf, size_t cap)
{
    static const struct {
        const char *cmd, *op;
    } map[] = {{"SET", "set"},           {"MSET", "set"},         {"CFG.SET", "set"},
               {"DEL", "del"},           {"UNLINK", "del"},       {"CFG.DEL", "del"},
               {"FLUSHALL", "flushall"}, {"FLUSHDB", "flushall"}};
    if (argc < 1)
        return "unknown";
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strlen(map[i].cmd) == argvlen[0] && strncasecmp(argv[0], map[i].cmd, argvlen[0]) == 0)
            return map[i].op;
    size_t n = argvlen[0] < cap - 1 ? argvlen[0] : cap - 1;
    for (size_t i = 0; i < n; i++) {
        char ch = argv[0][i];
        buf[i] = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
    }
    buf[n] = '\0';
    return buf;
}

static void put_changes(struct wbuf *w, const struct ns_txn *t)
{
    for (size_t i = 0; i < t->nkeys; i++) {
        const struct ns_txkey *k = &t->keys[i];
        if (!k->staged)
            continue;
        wb_uint(w, k->klen, 4);
        wb_put(w, k->key, k->klen);
        uint8_t fl = (uint8_t)((k->had_old ? CH_HAD_OLD : 0) | (k->present ? CH_PRESENT : 0));
        wb_put(w, &fl, 1);
        wb_uint(w, k->present ? k->cur.version : 0, 8);
        if (k->had_old) {
            wb_uint(w, k->old.vlen, 4);
            wb_put(w, k->old.value, k->old.vlen);
        }
        if (k->present) {
            wb_uint(w, k->cur.vlen, 4);
            wb_put(w, k->cur.value, k->cur.vlen);
        }
    }
}

static uint32_t count_changes(const struct ns_txn *t)
{
    uint32_t c = 0;
    for (size_t i = 0; i < t->nkeys; i++)
        c += t->keys[i].staged ? 1u : 0u;
    return c;
}

/* Encode t's record with prev_hash; returns malloc'd bytes (NULL on OOM). */
static uint8_t *encode(const struct ns_txn *t, uint64_t prev_hash, int argc, char **argv,
                       size_t *argvlen, size_t *len)
{
    const struct ns_meta *m = t->m;
    char opbuf[33];
    const char *op = t->op ? t->op : op_name(argv, argvlen, argc, opbuf, sizeof(opbuf));
    const char *actor = m->actor ? m->actor : "default";
    const char *client = m->client ? m->client : "";
    size_t alen = strlen(actor), clen = strlen(client), olen = strlen(op);
    alen = alen > 255 ? 255 : alen;
    clen = clen > 65535 ? 65535 : clen;
    olen = olen > 255 ? 255 : olen;
    struct wbuf w = {0};
    uint8_t fmt = NS_AUDIT_FORMAT;
    wb_put(&w, &fmt, 1);
    wb_uint(&w, t->rev, 8);
    wb_uint(&w, m->index, 8);
    wb_uint(&w, m->term, 8);
    wb_uint(&w, m->time_ms, 8);
    wb_uint(&w, prev_hash, 8);
    wb_uint(&w, count_changes(t), 4);
    wb_uint(&w, alen, 1);
    wb_put(&w, actor, alen);
    wb_uint(&w, clen, 2);
    wb_put(&w, client, clen);
    wb_uint(&w, olen, 1);
    wb_put(&w, op, olen);
    uint8_t fl = (uint8_t)((t->subject ? F_SUBJECT : 0) | (t->detail ? F_DETAIL : 0));
    wb_put(&w, &fl, 1);
    wb_uint(&w, t->subject ? t->subject_len : 0, 4);
    wb_put(&w, t->subject, t->subject ? t->subject_len : 0);
    wb_uint(&w, t->detail ? t->detail_len : 0, 4);
    wb_put(&w, t->detail, t->detail ? t->detail_len : 0);
    put_changes(&w, t);
    if (!w.oom)
        wb_uint(&w, XXH3_64bits(w.p, w.len), 8);
    if (w.oom) {
        free(w.p);
        return NULL;
    }
    *len = w.len;
    return w.p;
}

/* ------------------------------------------------------------------ decoding */

struct rd {
    const uint8_t *p;
    size_t len, off;
    bool bad;
};

static const uint8_t *rd_take(struct rd *r, size_t n)
{
    if (r->bad || r->len - r->off < n) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *p = r->p + r->off;
    r->off += n;
    return p;
}

static uint64_t rd_num(struct rd *r, unsigned bytes)
{
    const uint8_t *p = rd_take(r, bytes);
    return p ? rd_uint(p, bytes) : 0;
}

static const char *rd_str(struct rd *r, unsigned lenbytes, size_t *len)
{
    *len = (size_t)rd_num(r, lenbytes);
    return (const char *)rd_take(r, *len);
}

/* One change at r's offset; false when malformed. */
static bool rd_change(struct rd *r, struct ns_audit_change *c)
{
    c->key = rd_str(r, 4, &c->klen);
    const uint8_t *fl = rd_take(r, 1);
    c->version = rd_num(r, 8);
    if (r->bad || (*fl & ~(CH_HAD_OLD | CH_PRESENT)) != 0)
        return false;
    c->had_old = (*fl & CH_HAD_OLD) != 0;
    c->present = (*fl & CH_PRESENT) != 0;
    c->old = NULL;
    c->old_len = 0;
    c->val = NULL;
    c->vlen = 0;
    if (c->had_old)
        c->old = rd_str(r, 4, &c->old_len);
    if (c->present)
        c->val = rd_str(r, 4, &c->vlen);
    return !r->bad && (c->present ? c->version >= 1 : c->version == 0);
}

/* Decode and validate a record's structure (not its hash: see hash_ok). */
static int decode(const void *buf, size_t len, struct ns_audit_rec *a)
{
    struct rd r = {.p = buf, .len = len};
    memset(a, 0, sizeof(*a));
    if (len < HDR_FIXED + 8 + 13 || r.p[0] != NS_AUDIT_FORMAT)
        return RC_CORRUPT;
    r.len = len - 8; /* the hash trailer */
    r.off = 1;
    a->revision = rd_num(&r, 8);
    a->index = rd_num(&r, 8);
    a->term = rd_num(&r, 8);
    a->time_ms = rd_num(&r, 8);
    a->prev_hash = rd_num(&r, 8);
    a->nchanges = (uint32_t)rd_num(&r, 4);
    a->actor = rd_str(&r, 1, &a->actor_len);
    a->client = rd_str(&r, 2, &a->client_len);
    a->op = rd_str(&r, 1, &a->op_len);
    const uint8_t *fl = rd_take(&r, 1);
    a->subject = rd_str(&r, 4, &a->subject_len);
    a->detail = rd_str(&r, 4, &a->detail_len);
    if (r.bad || (*fl & ~(F_SUBJECT | F_DETAIL)) != 0 || a->revision == 0)
        return RC_CORRUPT;
    if (!(*fl & F_SUBJECT))
        a->subject = NULL;
    if (!(*fl & F_DETAIL))
        a->detail = NULL;
    a->changes = r.p + r.off;
    a->changes_len = r.len - r.off;
    for (uint32_t i = 0; i < a->nchanges; i++) {
        struct ns_audit_change c;
        if (!rd_change(&r, &c))
            return RC_CORRUPT;
    }
    if (r.off != r.len)
        return RC_CORRUPT;
    a->hash = rd_uint(r.p + len - 8, 8);
    return RC_OK;
}

static bool hash_ok(const void *buf, size_t len)
{
    return len >= 8 && XXH3_64bits(buf, len - 8) == rd_uint((const uint8_t *)buf + len - 8, 8);
}

bool ns_audit_change_next(const struct ns_audit_rec *a, size_t *off, struct ns_audit_change *c)
{
    NS_ASSERT(*off <= a->changes_len);
    if (*off == a->changes_len)
        return false;
    struct rd r = {.p = a->changes, .len = a->changes_len, .off = *off};
    bool ok = rd_change(&r, c);
    NS_ASSERT(ok); /* the record was validated by decode */
    *off = r.off;
    return true;
}

/* ------------------------------------------------------------------ state */

static int load_meta(struct ns *n, bool *found, uint64_t *oldest, uint64_t *prune_hash)
{
    uint8_t key[NS_GROUP_PREFIX_LEN];
    ns_key_group_letter(key, n->group, NS_LETTER_AUDIT);
    void *val = NULL;
    size_t vlen = 0;
    int rc = pst_get(n->e, NULL, key, sizeof(key), &val, &vlen);
    *found = rc == RC_OK;
    if (rc == RC_NOTFOUND)
        return RC_OK;
    if (rc != RC_OK)
        return rc;
    const uint8_t *p = val;
    if (vlen != NS_AUDIT_META_LEN || p[0] != NS_AUDIT_FORMAT) {
        free(val);
        return RC_CORRUPT;
    }
    *oldest = ns_get_u64(p + 1);
    *prune_hash = ns_get_u64(p + 9);
    free(val);
    return RC_OK;
}

/* Iterator over the group's audit records with revision >= from. */
static struct pst_iter *records_iter(struct ns *n, uint64_t from)
{
    uint8_t lo[AUDIT_KEY_LEN], hi[NS_GROUP_PREFIX_LEN];
    audit_key(n->group, from, lo);
    ns_key_group_letter(hi, n->group, NS_LETTER_AUDIT + 1);
    return pst_iter_new(n->e, NULL, lo, sizeof(lo), hi, sizeof(hi));
}

int ns_audit_load(struct ns *n)
{
    bool found = false;
    uint64_t oldest = n->revision + 1, prune_hash = 0;
    int rc = load_meta(n, &found, &oldest, &prune_hash);
    if (rc != RC_OK)
        return rc;
    if (found && oldest > n->revision + 1)
        return RC_CORRUPT;
    n->audit_meta_present = found;
    n->audit_oldest = oldest;
    n->audit_prune_hash = prune_hash;
    n->audit_hash = prune_hash;
    free(n->audit_last);
    n->audit_last = NULL;
    n->audit_last_len = 0;
    if (n->revision == 0 || n->audit_oldest > n->revision)
        return RC_OK; /* no record retained: the next one chains to prune_hash */
    /* The record at the applied revision heads the chain. Records past it can exist only
     * when the applied state was lost but they were not (a test's partial crash); replay
     * writes them again, byte for byte (apply is deterministic). Only the trailer is read:
     * a record altered in place is for VERIFY to report, not a reason to refuse to start. */
    uint8_t key[AUDIT_KEY_LEN];
    audit_key(n->group, n->revision, key);
    void *val = NULL;
    size_t vlen = 0;
    rc = pst_get(n->e, NULL, key, sizeof(key), &val, &vlen);
    if (rc == RC_NOTFOUND) {
        free(val);
        return RC_OK; /* a store written before audit existed: VERIFY reports the gap */
    }
    if (rc == RC_OK && vlen < 8)
        rc = RC_CORRUPT;
    if (rc == RC_OK)
        n->audit_hash = rd_uint((const uint8_t *)val + vlen - 8, 8);
    free(val);
    return rc;
}

uint64_t ns_audit_oldest(const struct ns *n) { return n->audit_oldest; }

/* Stage the pruning of the oldest records beyond the limit (the new one counted). */
static int stage_prune(struct ns_txn *t)
{
    struct ns *n = t->n;
    uint64_t keep = n->lim.audit_max_records ? n->lim.audit_max_records : 1;
    uint64_t oldest = n->audit_oldest <= n->revision ? n->audit_oldest : t->rev;
    uint64_t prune_hash = n->audit_prune_hash;
    unsigned pruned = 0;
    uint8_t key[AUDIT_KEY_LEN];
    while (t->rev - oldest + 1 > keep && pruned < NS_AUDIT_PRUNE_MAX) {
        audit_key(n->group, oldest, key);
        if (pruned + 1 == NS_AUDIT_PRUNE_MAX || t->rev - oldest == keep) {
            /* The last one pruned now: its hash anchors the chain's retained part. */
            void *val = NULL;
            size_t vlen = 0;
            int rc = pst_get(n->e, NULL, key, sizeof(key), &val, &vlen);
            if (rc == RC_NOTFOUND || (rc == RC_OK && vlen < 8))
                rc = RC_CORRUPT;
            if (rc != RC_OK) {
                free(val);
                return rc;
            }
            prune_hash = rd_uint((const uint8_t *)val + vlen - 8, 8);
            free(val);
        }
        pst_batch_del(n->batch, key, sizeof(key));
        oldest++;
        pruned++;
    }
    n->audit_next_oldest = oldest;
    n->audit_next_prune_hash = prune_hash;
    if (pruned > 0 || !n->audit_meta_present) {
        uint8_t mk[NS_GROUP_PREFIX_LEN], mv[NS_AUDIT_META_LEN];
        ns_key_group_letter(mk, n->group, NS_LETTER_AUDIT);
        mv[0] = NS_AUDIT_FORMAT;
        ns_put_u64(mv + 1, oldest);
        ns_put_u64(mv + 9, prune_hash);
        pst_batch_put(n->batch, mk, sizeof(mk), mv, sizeof(mv));
    }
    return RC_OK;
}

int ns_audit_stage(struct ns_txn *t, int argc, char **argv, size_t *argvlen, uint8_t **rec,
                   size_t *rec_len)
{
    NS_ASSERT(t->changed);
    NS_ASSERT(t->rev == t->n->revision + 1);
    *rec = NULL;
    *rec_len = 0;
    size_t len = 0;
    uint8_t *enc = encode(t, t->n->audit_hash, argc, argv, argvlen, &len);
    if (!enc)
        return RC_NOMEM;
    uint8_t key[AUDIT_KEY_LEN];
    audit_key(t->n->group, t->rev, key);
    pst_batch_put(t->n->batch, key, sizeof(key), enc, len);
    int rc = stage_prune(t);
    if (rc != RC_OK) {
        free(enc);
        return rc;
    }
    *rec = enc;
    *rec_len = len;
    return RC_OK;
}

void ns_audit_committed(struct ns *n, uint8_t *rec, size_t rec_len)
{
    free(n->audit_last);
    n->audit_last = rec;
    n->audit_last_len = rec ? rec_len : 0;
    if (!rec)
        return;
    NS_ASSERT(rec_len >= 8);
    n->audit_hash = rd_uint(rec + rec_len - 8, 8);
    n->audit_oldest = n->audit_next_oldest;
    n->audit_prune_hash = n->audit_next_prune_hash;
    n->audit_meta_present = true;
}

int ns_last_audit(const struct ns *n, struct ns_audit_rec *out)
{
    if (!n->audit_last)
        return RC_NOTFOUND;
    int rc = decode(n->audit_last, n->audit_last_len, out);
    NS_ASSERT(rc == RC_OK); /* we encoded it */
    return rc;
}

/* ------------------------------------------------------------------ reads */

/* The record at the iterator: RC_OK with *a filled (borrowed from the iterator). */
static int record_at(struct pst_iter *it, struct ns_audit_rec *a, uint64_t *key_rev,
                     const void **raw, size_t *raw_len)
{
    size_t klen = 0;
    const uint8_t *k = pst_iter_key(it, &klen);
    *raw = pst_iter_value(it, raw_len);
    if (klen != AUDIT_KEY_LEN)
        return RC_CORRUPT;
    *key_rev = ns_get_u64(k + NS_GROUP_PREFIX_LEN);
    int rc = decode(*raw, *raw_len, a);
    if (rc == RC_OK && a->revision != *key_rev)
        rc = RC_CORRUPT;
    return rc;
}

int ns_audit_scan(struct ns *n, uint64_t from_rev, ns_audit_fn fn, void *ud,
                  uint64_t *oldest_out)
{
    NS_ASSERT(fn != NULL);
    if (oldest_out)
        *oldest_out = n->audit_oldest;
    if (from_rev == 0)
        from_rev = 1;
    if (from_rev > n->revision)
        return RC_OK;
    if (from_rev < n->audit_oldest)
        return RC_COMPACTED;
    struct pst_iter *it = records_iter(n, from_rev);
    if (!it)
        return RC_NOMEM;
    int rc = RC_OK;
    for (; pst_iter_valid(it); pst_iter_next(it)) {
        struct ns_audit_rec a;
        uint64_t krev = 0;
        const void *raw = NULL;
        size_t raw_len = 0;
        rc = record_at(it, &a, &krev, &raw, &raw_len);
        if (rc != RC_OK || !fn(ud, &a))
            break;
    }
    if (rc == RC_OK)
        rc = pst_iter_status(it);
    pst_iter_free(it);
    return rc;
}

static void set_break(struct ns_audit_verify *v, uint64_t rev, const char *why)
{
    v->ok = false;
    v->first_break = rev;
    snprintf(v->reason, sizeof(v->reason), "%s", why);
}

int ns_audit_verify(struct ns *n, struct ns_audit_verify *v)
{
    memset(v, 0, sizeof(*v));
    v->ok = true;
    bool found = false;
    uint64_t oldest = n->revision + 1, prev = 0;
    int rc = load_meta(n, &found, &oldest, &prev);
    if (rc == RC_CORRUPT) {
        set_break(v, n->audit_oldest, "the audit meta record is malformed");
        return RC_OK;
    }
    if (rc != RC_OK)
        return rc;
    if (oldest != n->audit_oldest || prev != n->audit_prune_hash)
        set_break(v, oldest, "the audit meta record disagrees with the applied state");
    struct pst_iter *it = records_iter(n, 0);
    if (!it)
        return RC_NOMEM;
    uint64_t expect = oldest;
    for (; v->ok && pst_iter_valid(it); pst_iter_next(it)) {
        struct ns_audit_rec a;
        uint64_t krev = 0;
        const void *raw = NULL;
        size_t raw_len = 0;
        int drc = record_at(it, &a, &krev, &raw, &raw_len);
        if (krev != expect)
            set_break(v, expect, krev < expect ? "a record older than the oldest retained one"
                                               : "a record is missing");
        else if (drc != RC_OK)
            set_break(v, krev, "the record is malformed");
        else if (!hash_ok(raw, raw_len))
            set_break(v, krev, "hash mismatch: the record's contents were altered");
        else if (a.prev_hash != prev)
            set_break(v, krev, "prev_hash does not match the previous record");
        if (!v->ok)
            break;
        prev = a.hash;
        expect++;
        v->records++;
    }
    rc = pst_iter_status(it);
    pst_iter_free(it);
    if (rc != RC_OK)
        return rc;
    if (v->ok && expect != n->revision + 1)
        set_break(v, expect, "records are missing at the end of the chain");
    else if (v->ok && prev != n->audit_hash)
        set_break(v, n->revision, "the newest record's hash differs from the applied state");
    return RC_OK;
}
