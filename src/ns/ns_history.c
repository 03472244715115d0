/*
 * ns_history.c - per-key version history: written at apply time next to every change,
 * pruned to history_max_versions per key, and read "as of a revision" or as a listing.
 *
 * Records (byte tables in ns_record.c, docs/storage.md "History records"):
 *   'V'                      group record: compact_rev
 *   'V' esc(key) 00 00       key meta: count, oldest_rev, pruned flag
 *   'V' esc(key) 00 01 rev   one version (the 'K' layout, tombstone flag for deletions)
 *
 * Invariants (after every applied entry):
 *   - a key's retained versions are its newest `count` versions, contiguous: pruning only
 *     ever removes the oldest one, so the version that answers a read at r (the newest with
 *     revision <= r) is either retained or older than oldest_rev;
 *   - meta.count equals the number of version records, meta.oldest_rev is the first one's
 *     revision; every version record's mod_rev equals the revision in its storage key;
 *   - meta.pruned is set once an older version of the key was dropped (or the key's
 *     history began before history existed): reads at r < oldest_rev are then COMPACTED,
 *     otherwise the key did not exist at r;
 *   - compact_rev = the largest oldest_rev any pruning produced (0 if none), so every key
 *     is answerable at revisions >= compact_rev (watch and rollback rely on it).
 * Deterministic: depends only on the store and the entry (no clock, no randomness); the
 * pruning hook ns_history_pin_rev() is state of the group too.
 */
#include <string.h>

#include "../rc.h"
#include "ns_internal.h"

uint64_t ns_compact_revision(const struct ns *n) { return n->compact_rev; }

uint64_t ns_history_pin_rev(const struct ns *n)
{
    /* The oldest revision any pinned snapshot of the group needs (ns_snapshot.c keeps it
     * equal to the 'P' records); pins apply group-wide, whatever their prefix. */
    return n->snap_count ? n->snap_pin_rev : 0;
}

int ns_hist_load_group(struct ns *n)
{
    uint8_t key[NS_GROUP_PREFIX_LEN];
    ns_key_group_letter(key, n->group, NS_LETTER_HISTORY);
    void *val = NULL;
    size_t vlen = 0;
    int rc = pst_get(n->e, NULL, key, sizeof(key), &val, &vlen);
    if (rc == RC_NOTFOUND) {
        /* Fresh group: revision 0. A store from before history: nothing older than the
         * revision it is opened at can be answered (every key has at most its 'K'). */
        n->compact_rev = n->revision;
        n->hist_rec_present = false;
        return RC_OK;
    }
    if (rc != RC_OK)
        return rc;
    uint64_t c = 0;
    rc = ns_histgroup_decode(val, vlen, &c);
    free(val);
    if (rc == RC_OK && c > n->revision)
        rc = RC_CORRUPT;
    if (rc == RC_OK) {
        n->compact_rev = c;
        n->hist_rec_present = true;
    }
    return rc;
}

void ns_hist_stage_group(struct ns *n, uint64_t compact_rev)
{
    uint8_t key[NS_GROUP_PREFIX_LEN];
    uint8_t rec[NS_HIST_GROUP_LEN];
    ns_key_group_letter(key, n->group, NS_LETTER_HISTORY);
    ns_histgroup_encode(compact_rev, rec);
    pst_batch_put(n->batch, key, sizeof(key), rec, sizeof(rec));
}

/* RC_OK (*found), RC_IO, RC_CORRUPT, RC_NOMEM. */
static int load_meta(struct ns *n, const void *key, size_t klen, struct ns_histmeta *m,
                     bool *found)
{
    size_t sklen = 0;
    uint8_t *sk = ns_key_hist(n->group, key, klen, NS_HTAG_META, NULL, &sklen);
    if (!sk)
        return RC_NOMEM;
    void *val = NULL;
    size_t vlen = 0;
    int rc = pst_get(n->e, NULL, sk, sklen, &val, &vlen);
    free(sk);
    memset(m, 0, sizeof(*m));
    *found = rc == RC_OK;
    if (rc == RC_NOTFOUND)
        return RC_OK;
    if (rc != RC_OK)
        return rc;
    rc = ns_histmeta_decode(val, vlen, m);
    free(val);
    return rc;
}

static int put_version(struct ns *n, const void *key, size_t klen, const struct ns_keyrec *r,
                       bool tombstone)
{
    size_t sklen = 0, reclen = 0;
    uint8_t *sk = ns_key_hist(n->group, key, klen, NS_HTAG_VER, &r->mod_rev, &sklen);
    uint8_t *rec = sk ? ns_histrec_encode(r, tombstone, &reclen) : NULL;
    if (rec)
        pst_batch_put(n->batch, sk, sklen, rec, reclen);
    free(sk);
    free(rec);
    return rec ? RC_OK : RC_NOMEM;
}

/* The revision in a version record's storage key (the iterator's bounds guarantee the
 * prefix); RC_CORRUPT when the key has the wrong length or the record disagrees. */
static int version_at(struct pst_iter *it, size_t prefix_len, struct ns_keyrec *r,
                      bool *tombstone)
{
    size_t klen = 0, vlen = 0;
    const uint8_t *k = pst_iter_key(it, &klen);
    const void *v = pst_iter_value(it, &vlen);
    if (klen != prefix_len + 8)
        return RC_CORRUPT;
    int rc = ns_histrec_decode(v, vlen, r, tombstone);
    if (rc == RC_OK && r->mod_rev != ns_get_u64(k + prefix_len))
        rc = RC_CORRUPT;
    return rc;
}

/* Iterator over key's version records in [lo_rev, hi_rev) (hi_rev 0: to the end).
 * *prefix_len gets the length of the storage key without the revision. */
static struct pst_iter *versions_iter(struct ns *n, const void *key, size_t klen,
                                      uint64_t lo_rev, uint64_t hi_rev, size_t *prefix_len)
{
    size_t lolen = 0, hilen = 0;
    uint8_t *lo = ns_key_hist(n->group, key, klen, NS_HTAG_VER, &lo_rev, &lolen);
    uint8_t *hi = hi_rev ? ns_key_hist(n->group, key, klen, NS_HTAG_VER, &hi_rev, &hilen)
                         : ns_key_hist(n->group, key, klen, NS_HTAG_END, NULL, &hilen);
    struct pst_iter *it = NULL;
    if (lo && hi)
        it = pst_iter_new(n->e, NULL, lo, lolen, hi, hilen);
    free(lo);
    free(hi);
    *prefix_len = lolen - 8;
    return it;
}

/* Drop the oldest versions while more than the limit are kept, at most
 * NS_HIST_PRUNE_MAX, never one a pinned revision still needs. m counts the version at
 * new_rev, staged but not yet in the store: it is the last successor. */
static int prune(struct ns *n, const void *key, size_t klen, struct ns_histmeta *m,
                 uint64_t new_rev, uint64_t *compact_rev)
{
    uint64_t keep = n->lim.history_max_versions ? n->lim.history_max_versions : 1;
    if (m->count <= keep)
        return RC_OK;
    uint64_t pin = ns_history_pin_rev(n);
    size_t plen = 0;
    struct pst_iter *it = versions_iter(n, key, klen, m->oldest_rev, 0, &plen);
    if (!it)
        return RC_NOMEM;
    int rc = RC_OK;
    for (unsigned done = 0; m->count > keep && done < NS_HIST_PRUNE_MAX; done++) {
        struct ns_keyrec r;
        bool tomb = false;
        if (!pst_iter_valid(it)) { /* meta counts versions the store does not have */
            rc = pst_iter_status(it) != RC_OK ? pst_iter_status(it) : RC_CORRUPT;
            break;
        }
        rc = version_at(it, plen, &r, &tomb);
        if (rc == RC_OK && r.mod_rev != m->oldest_rev)
            rc = RC_CORRUPT;
        if (rc != RC_OK)
            break;
        pst_iter_next(it);
        uint64_t succ = new_rev;
        if (m->count > 2) { /* the successor is in the store too */
            struct ns_keyrec s;
            rc = pst_iter_valid(it) ? version_at(it, plen, &s, &tomb) : RC_CORRUPT;
            if (rc != RC_OK)
                break;
            succ = s.mod_rev;
        }
        NS_ASSERT(succ > r.mod_rev);
        if (pin && succ > pin)
            break; /* reads at the pinned revision still need this version */
        size_t sklen = 0;
        uint8_t *sk = ns_key_hist(n->group, key, klen, NS_HTAG_VER, &r.mod_rev, &sklen);
        if (!sk) {
            rc = RC_NOMEM;
            break;
        }
        pst_batch_del(n->batch, sk, sklen);
        free(sk);
        m->count--;
        m->oldest_rev = succ;
        m->pruned = true;
        if (succ > *compact_rev)
            *compact_rev = succ;
    }
    pst_iter_free(it);
    return rc;
}

int ns_hist_stage(struct ns *n, const void *key, size_t klen, const struct ns_keyrec *rec,
                  bool tombstone, const struct ns_keyrec *old, uint64_t *compact_rev)
{
    NS_ASSERT(rec->mod_rev == n->revision + 1);
    NS_ASSERT(!old || old->mod_rev < rec->mod_rev);
    struct ns_histmeta m;
    bool found = false;
    int rc = load_meta(n, key, klen, &m, &found);
    if (rc != RC_OK)
        return rc;
    if (found && m.oldest_rev > n->revision)
        return RC_CORRUPT;
    uint64_t keep = n->lim.history_max_versions ? n->lim.history_max_versions : 1;
    if (!found && old) {
        /* A key written before history existed: its current record is the oldest version
         * known; whatever came before it is unknown, i.e. compacted. */
        m.pruned = true;
        if (keep >= 2) {
            rc = put_version(n, key, klen, old, false);
            m.count = 1;
            m.oldest_rev = old->mod_rev;
        }
    }
    if (rc == RC_OK)
        rc = put_version(n, key, klen, rec, tombstone);
    if (rc != RC_OK)
        return rc;
    if (m.count == 0)
        m.oldest_rev = rec->mod_rev;
    m.count++;
    rc = prune(n, key, klen, &m, rec->mod_rev, compact_rev);
    if (rc != RC_OK)
        return rc;
    size_t sklen = 0;
    uint8_t *sk = ns_key_hist(n->group, key, klen, NS_HTAG_META, NULL, &sklen);
    if (!sk)
        return RC_NOMEM;
    uint8_t buf[NS_HIST_META_LEN];
    ns_histmeta_encode(&m, buf);
    pst_batch_put(n->batch, sk, sklen, buf, sizeof(buf));
    free(sk);
    return RC_OK;
}

int ns_hist_restage(struct ns *n, const void *key, size_t klen, const struct ns_keyrec *rec,
                    bool tombstone)
{
    NS_ASSERT(rec->mod_rev == n->revision + 1);
    return put_version(n, key, klen, rec, tombstone);
}

/* ------------------------------------------------------------------ reads */

static char *dup_bytes(const void *p, size_t len)
{
    char *s = malloc(len + 1);
    if (!s)
        return NULL;
    if (len)
        memcpy(s, p, len);
    s[len] = '\0';
    return s;
}

static int fill_kv(const void *key, size_t klen, const struct ns_keyrec *r, struct ns_kv *out)
{
    out->key = dup_bytes(key, klen);
    out->value = dup_bytes(r->value, r->vlen);
    if (!out->key || !out->value) {
        ns_kv_clear(out);
        return RC_NOMEM;
    }
    out->klen = klen;
    out->vlen = r->vlen;
    out->create_rev = r->create_rev;
    out->mod_rev = r->mod_rev;
    out->version = r->version;
    out->mtime_ms = r->mtime_ms;
    return RC_OK;
}

/* No retained version at or below rev: decide between "did not exist" and COMPACTED from
 * the meta, or, for a key without history (written before history existed), its 'K'. */
static int get_without_version(struct ns *n, const void *key, size_t klen, uint64_t rev,
                               struct ns_kv *out, uint64_t *oldest_out)
{
    struct ns_histmeta m;
    bool found = false;
    int rc = load_meta(n, key, klen, &m, &found);
    if (rc != RC_OK)
        return rc;
    if (found) {
        if (!m.pruned || rev >= m.oldest_rev)
            return RC_NOTFOUND;
        *oldest_out = m.oldest_rev;
        return RC_COMPACTED;
    }
    void *raw = NULL;
    struct ns_keyrec k;
    rc = ns_load_key(n, key, klen, &raw, &k);
    if (rc == RC_OK && k.mod_rev <= rev)
        rc = fill_kv(key, klen, &k, out);
    else if (rc == RC_OK) {
        *oldest_out = k.mod_rev;
        rc = RC_COMPACTED;
    }
    free(raw);
    return rc;
}

int ns_get_at(struct ns *n, const void *key, size_t klen, uint64_t rev, struct ns_kv *out,
              uint64_t *oldest_out)
{
    NS_ASSERT(out != NULL);
    NS_ASSERT(oldest_out != NULL);
    memset(out, 0, sizeof(*out));
    *oldest_out = 0;
    if (rev > n->revision)
        return RC_BADARG;
    if (rev == 0 || klen == 0 || klen > n->lim.key_len_max)
        return RC_NOTFOUND; /* nothing exists before the first change; no such keys */
    size_t plen = 0;
    struct pst_iter *it = versions_iter(n, key, klen, 1, rev + 1, &plen);
    if (!it)
        return RC_NOMEM;
    pst_iter_seek_last(it);
    int rc = pst_iter_status(it);
    if (rc == RC_OK && pst_iter_valid(it)) {
        struct ns_keyrec r;
        bool tomb = false;
        rc = version_at(it, plen, &r, &tomb);
        if (rc == RC_OK)
            rc = tomb ? RC_NOTFOUND : fill_kv(key, klen, &r, out);
    } else if (rc == RC_OK) {
        rc = get_without_version(n, key, klen, rev, out, oldest_out);
    }
    pst_iter_free(it);
    return rc;
}

static void version_of(const struct ns_keyrec *r, bool tomb, struct ns_version *v)
{
    v->revision = r->mod_rev;
    v->create_rev = r->create_rev;
    v->version = r->version;
    v->mtime_ms = r->mtime_ms;
    v->deleted = tomb;
    v->actor = r->actor;
    v->actor_len = r->actor_len;
    v->value = tomb ? NULL : r->value;
    v->vlen = tomb ? 0 : r->vlen;
}

/* A key without history (written before history existed): its 'K' is its one version. */
static int history_legacy(struct ns *n, const void *key, size_t klen, uint64_t before,
                          ns_version_fn fn, void *ud)
{
    struct ns_histmeta m;
    bool found = false;
    int rc = load_meta(n, key, klen, &m, &found);
    if (rc != RC_OK || found)
        return rc;
    void *raw = NULL;
    struct ns_keyrec k;
    rc = ns_load_key(n, key, klen, &raw, &k);
    if (rc == RC_OK && (before == 0 || k.mod_rev < before)) {
        struct ns_version v;
        version_of(&k, false, &v);
        fn(ud, &v);
    }
    free(raw);
    return rc == RC_NOTFOUND ? RC_OK : rc;
}

int ns_history(struct ns *n, const void *key, size_t klen, uint64_t before, size_t limit,
               ns_version_fn fn, void *ud)
{
    NS_ASSERT(fn != NULL);
    if (klen == 0 || klen > n->lim.key_len_max || before == 1)
        return RC_OK; /* no such keys; no revision below 1 */
    size_t plen = 0;
    struct pst_iter *it = versions_iter(n, key, klen, 1, before, &plen);
    if (!it)
        return RC_NOMEM;
    pst_iter_seek_last(it);
    size_t visited = 0;
    int rc = RC_OK;
    for (; pst_iter_valid(it) && (limit == 0 || visited < limit); pst_iter_prev(it)) {
        struct ns_keyrec r;
        bool tomb = false;
        rc = version_at(it, plen, &r, &tomb);
        if (rc != RC_OK)
            break;
        struct ns_version v;
        version_of(&r, tomb, &v);
        visited++;
        if (!fn(ud, &v))
            break;
    }
    if (rc == RC_OK)
        rc = pst_iter_status(it);
    pst_iter_free(it);
    if (rc == RC_OK && visited == 0)
        rc = history_legacy(n, key, klen, before, fn, ud);
    return rc;
}
