/*
 * ns_txn.c - the keys one entry reads and changes while it is applied: an overlay over the
 * store, so a command that touches a key twice (MULTI/EXEC, rollback, FLUSHALL after SET)
 * sees its own staged changes, and a list of what changed for the audit trail, watches and
 * keyspace notifications.
 *
 * Invariants:
 *   - a key enters the overlay the first time the entry touches it (read or write), with
 *     its record as the store has it before the entry (had_old/old); afterwards every read
 *     of the key in this entry answers the overlay's present/cur, never the store;
 *   - every change stages the 'K' put or delete in the entry's batch and updates the
 *     overlay; the key's history is staged once per entry (all changes of one entry share
 *     one revision, the last one wins, as in the 'K' record);
 *   - a key's version advances at most once per entry: a key present before the entry gets
 *     old.version + 1 however often the entry sets it; a key created (or re-created after a
 *     deletion) in the entry gets version 1 and create_rev = the entry's revision. So
 *     version <= mod_rev - create_rev + 1 holds for every record (ns_internal.h);
 *   - key_count moves only on present/absent transitions.
 * Keys are looked up through an open-addressing index (FNV-1a) so an entry touching
 * thousands of keys (a rollback) stays linear.
 */
#include <string.h>

#include "../rc.h"
#include "ns_internal.h"

static uint64_t key_hash(const void *key, size_t klen)
{
    const uint8_t *p = key;
    uint64_t h = 1469598103934665603ull; /* FNV-1a 64 */
    for (size_t i = 0; i < klen; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static bool key_eq(const struct ns_txkey *k, const void *key, size_t klen)
{
    return k->klen == klen && (klen == 0 || memcmp(k->key, key, klen) == 0);
}

/* Slot of key in the index: the one holding it, or the empty one where it would go. */
static size_t slot_of(const struct ns_txn *t, const void *key, size_t klen)
{
    size_t mask = t->nslots - 1;
    size_t s = (size_t)key_hash(key, klen) & mask;
    while (t->slots[s] != 0 && !key_eq(&t->keys[t->slots[s] - 1], key, klen))
        s = (s + 1) & mask;
    return s;
}

static int grow_index(struct ns_txn *t)
{
    size_t n = t->nslots ? t->nslots * 2 : 64;
    uint32_t *slots = calloc(n, sizeof(*slots));
    if (!slots)
        return RC_NOMEM;
    free(t->slots);
    t->slots = slots;
    t->nslots = n;
    for (size_t i = 0; i < t->nkeys; i++)
        t->slots[slot_of(t, t->keys[i].key, t->keys[i].klen)] = (uint32_t)(i + 1);
    return RC_OK;
}

/* Add key to the overlay with its record from the store. */
static int txn_add(struct ns_txn *t, const void *key, size_t klen, struct ns_txkey **out)
{
    if (t->nkeys >= UINT32_MAX - 1)
        return RC_TOOBIG;
    if ((t->nkeys + 1) * 2 > t->nslots && grow_index(t) != RC_OK)
        return RC_NOMEM;
    if (t->nkeys == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        struct ns_txkey *keys = realloc(t->keys, cap * sizeof(*keys));
        if (!keys)
            return RC_NOMEM;
        t->keys = keys;
        t->cap = cap;
    }
    struct ns_txkey *k = &t->keys[t->nkeys];
    memset(k, 0, sizeof(*k));
    k->key = malloc(klen ? klen : 1);
    if (!k->key)
        return RC_NOMEM;
    if (klen)
        memcpy(k->key, key, klen);
    k->klen = klen;
    int rc = ns_load_key(t->n, key, klen, &k->old_raw, &k->old);
    if (rc != RC_OK && rc != RC_NOTFOUND) {
        free(k->key);
        return rc;
    }
    k->had_old = rc == RC_OK;
    k->present = k->had_old;
    k->cur = k->old;
    t->slots[slot_of(t, key, klen)] = (uint32_t)(t->nkeys + 1);
    t->nkeys++;
    *out = k;
    return RC_OK;
}

static int txn_find(struct ns_txn *t, const void *key, size_t klen, struct ns_txkey **out)
{
    if (t->nslots) {
        uint32_t at = t->slots[slot_of(t, key, klen)];
        if (at) {
            *out = &t->keys[at - 1];
            return RC_OK;
        }
    }
    return txn_add(t, key, klen, out);
}

int ns_txn_get(struct ns_txn *t, const void *key, size_t klen, const struct ns_keyrec **rec)
{
    struct ns_txkey *k = NULL;
    int rc = txn_find(t, key, klen, &k);
    if (rc != RC_OK)
        return rc;
    *rec = k->present ? &k->cur : NULL;
    return k->present ? RC_OK : RC_NOTFOUND;
}

/* Stage the history of k's change (first change of the entry: ns_hist_stage with the
 * pre-entry record; later ones overwrite the version at the same revision). */
static int stage_history(struct ns_txn *t, struct ns_txkey *k, bool tombstone)
{
    if (k->staged)
        return ns_hist_restage(t->n, k->key, k->klen, &k->cur, tombstone);
    k->staged = true;
    return ns_hist_stage(t->n, k->key, k->klen, &k->cur, tombstone,
                         k->had_old ? &k->old : NULL, &t->compact_rev);
}

int ns_txn_put(struct ns_txn *t, const void *key, size_t klen, const void *val, size_t vlen,
               uint64_t *version_out)
{
    struct ns_txkey *k = NULL;
    int rc = txn_find(t, key, klen, &k);
    if (rc != RC_OK)
        return rc;
    const char *actor = t->m->actor ? t->m->actor : "default";
    struct ns_keyrec r = {
        .mod_rev = t->rev,
        .mtime_ms = t->m->time_ms,
        .actor = actor,
        .actor_len = strlen(actor),
        .vlen = vlen,
    };
    if (k->present && k->staged) { /* set again in this entry: same incarnation */
        r.create_rev = k->cur.create_rev;
        r.version = k->cur.version;
    } else if (k->present) {
        r.create_rev = k->cur.create_rev;
        r.version = k->cur.version + 1;
    } else {
        r.create_rev = t->rev;
        r.version = 1;
    }
    char *buf = malloc(vlen ? vlen : 1);
    if (!buf)
        return RC_NOMEM;
    if (vlen)
        memcpy(buf, val, vlen);
    r.value = buf;
    size_t sklen = 0, reclen = 0;
    uint8_t *sk = ns_key_data(t->n->group, key, klen, &sklen);
    uint8_t *enc = sk ? ns_keyrec_encode(&r, &reclen) : NULL;
    if (enc)
        pst_batch_put(t->n->batch, sk, sklen, enc, reclen);
    free(sk);
    free(enc);
    if (!enc) {
        free(buf);
        return RC_NOMEM;
    }
    free(k->cur_buf);
    k->cur_buf = buf;
    k->cur = r;
    if (!k->present)
        t->key_count++;
    k->present = true;
    t->changed = true;
    if (version_out)
        *version_out = r.version;
    return stage_history(t, k, false);
}

int ns_txn_del(struct ns_txn *t, const void *key, size_t klen, bool *existed)
{
    struct ns_txkey *k = NULL;
    int rc = txn_find(t, key, klen, &k);
    if (rc != RC_OK)
        return rc;
    if (existed)
        *existed = k->present;
    if (!k->present)
        return RC_OK;
    if (t->key_count == 0)
        return RC_CORRUPT; /* the 'A' record disagrees with the 'K' records */
    const char *actor = t->m->actor ? t->m->actor : "default";
    /* The tombstone version keeps the incarnation's create_rev (ns_history.c). */
    k->cur.mod_rev = t->rev;
    k->cur.version = 0;
    k->cur.mtime_ms = t->m->time_ms;
    k->cur.actor = actor;
    k->cur.actor_len = strlen(actor);
    k->cur.value = NULL;
    k->cur.vlen = 0;
    size_t sklen = 0;
    uint8_t *sk = ns_key_data(t->n->group, key, klen, &sklen);
    if (!sk)
        return RC_NOMEM;
    pst_batch_del(t->n->batch, sk, sklen);
    free(sk);
    k->present = false;
    t->key_count--;
    t->changed = true;
    return stage_history(t, k, true);
}

void ns_txn_free(struct ns_txn *t)
{
    for (size_t i = 0; i < t->nkeys; i++) {
        free(t->keys[i].key);
        free(t->keys[i].old_raw);
        free(t->keys[i].cur_buf);
    }
    free(t->keys);
    free(t->slots);
    t->keys = NULL;
    t->slots = NULL;
    t->nkeys = t->cap = t->nslots = 0;
}
