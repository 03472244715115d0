/*
 * pst_cache.c - a row cache wrapped around an engine, which also gathers unsynced writes:
 * point reads of the latest state (snap NULL) are answered from memory when the key was
 * read or written recently, including "absent" answers, and unsynced batches are kept in
 * the cache (dirty) and reach the inner engine together, one write of each key's final
 * state, when the next synced write comes (or an iterator, a snapshot, or the dirty bytes
 * pass a bound). Every apply reads the keys it changes and writes its applied record; with
 * the cache those reads stop reaching LevelDB's tables and one turn's applies cost one
 * LevelDB write instead of one each.
 *
 * Why this keeps the engine contract (pst.h): an unsynced write is not durable until a
 * later synced write, and that synced write first writes the gathered state (one atomic
 * batch), so everything written before it is durable when it returns, in order. A process
 * crash loses the gathered writes, which a crash may lose anyway (they were not synced);
 * the state machine's applied record is in the same gathered batch as the state it
 * describes, so what reaches the disk is always a consistent earlier state.
 *
 * Invariants:
 *   - a read of the latest state through the cache answers what the inner engine would
 *     answer had every write been passed straight through: a dirty entry holds the newest
 *     state of its key; a clean entry equals the inner engine's state; a key without an
 *     entry has no gathered write;
 *   - dirty entries are never evicted; they are written (and become clean) by flush, and
 *     flush runs before every synced write, iterator, snapshot, size estimate and compaction;
 *   - only rows that were read stay cached once clean: a row only ever written (history
 *     versions, audit records, the applied record, the Raft log) is dropped by the flush
 *     that writes it, and a synced write updates rows already cached but adds none;
 *   - a failed inner write leaves no clean entry for a key the batch names (dropped);
 *   - reads through a snapshot and iterators bypass the cache;
 *   - memory is bounded: at most max_bytes of keys, values and entry overhead; a value
 *     larger than PST_CACHE_VALUE_MAX is never cached (its key's entry is dropped);
 *     eviction is CLOCK over the hash buckets (an entry read since the hand last passed
 *     gets a second chance).
 * One thread, like every engine.
 */
#include <xxhash.h>

#include "pst_internal.h"
#include "rc.h"

#define PST_CACHE_VALUE_MAX ((size_t)16 * 1024)
/* What one row costs besides its key and value bytes: the entry struct and three malloc
 * headers (entry, key, value), so max_bytes bounds the real heap use. */
#define PST_CACHE_ENTRY_OVERHEAD (sizeof(struct centry) + 3 * 16u)

struct centry {
    struct centry *next;
    struct centry *dnext; /* dirty list */
    size_t klen, vlen;
    bool absent;
    bool ref;   /* CLOCK: read since the hand last passed */
    bool read;  /* read at least once: kept after a flush (write-only rows are dropped) */
    bool dirty;
    char *key;
    char *val; /* NULL when absent */
};

struct cache_engine {
    struct pst_engine base;
    struct pst_engine_ops ops_copy; /* cache_ops with the inner engine's name */
    struct pst_engine *inner;
    struct centry **buckets;
    size_t nbuckets; /* power of two */
    size_t hand;
    size_t bytes, max_bytes;
    struct centry *dirty; /* entries with gathered, unwritten state */
    size_t dirty_bytes;
    struct pst_batch *flush_batch;
};

static size_t entry_bytes(const struct centry *c)
{
    return c->klen + c->vlen + PST_CACHE_ENTRY_OVERHEAD;
}

static struct centry **find_slot(struct cache_engine *ce, const void *k, size_t klen)
{
    size_t b = (size_t)XXH3_64bits(k, klen) & (ce->nbuckets - 1);
    struct centry **pp = &ce->buckets[b];
    while (*pp && ((*pp)->klen != klen || (klen && memcmp((*pp)->key, k, klen) != 0)))
        pp = &(*pp)->next;
    return pp;
}

static void entry_free(struct cache_engine *ce, struct centry **pp)
{
    struct centry *c = *pp;
    *pp = c->next;
    ce->bytes -= entry_bytes(c);
    free(c->key);
    free(c->val);
    free(c);
}

static void evict(struct cache_engine *ce, size_t need)
{
    size_t scanned = 0;
    while (ce->bytes + need > ce->max_bytes && ce->bytes > 0 && scanned < 4 * ce->nbuckets) {
        struct centry **pp = &ce->buckets[ce->hand];
        while (*pp && ce->bytes + need > ce->max_bytes) {
            if ((*pp)->ref || (*pp)->dirty) {
                (*pp)->ref = false;
                pp = &(*pp)->next;
            } else {
                entry_free(ce, pp);
            }
        }
        ce->hand = (ce->hand + 1) & (ce->nbuckets - 1);
        scanned++;
    }
}

static void cache_drop(struct cache_engine *ce, const void *k, size_t klen)
{
    struct centry **pp = find_slot(ce, k, klen);
    if (*pp) {
        PST_ASSERT(!(*pp)->dirty);
        entry_free(ce, pp);
    }
}

/* Set the dirty entry c to v/vlen, or to absent, in place. RC_OK or RC_NOMEM (then nothing
 * changed). (v may be NULL for an empty value: the flag says absent, not the pointer.) */
static int dirty_set(struct cache_engine *ce, struct centry *c, bool absent, const void *v,
                     size_t vlen)
{
    char *nv = NULL;
    if (!absent) {
        nv = malloc(vlen ? vlen : 1);
        if (!nv)
            return RC_NOMEM;
        if (vlen)
            memcpy(nv, v, vlen);
    }
    ce->bytes -= entry_bytes(c);
    free(c->val);
    c->val = nv;
    c->vlen = absent ? 0 : vlen;
    c->absent = absent;
    ce->bytes += entry_bytes(c);
    if (!c->dirty) {
        c->dirty = true;
        c->dnext = ce->dirty;
        ce->dirty = c;
    }
    return RC_OK;
}

/* A new entry for k = v/vlen (or absent), not yet in the table. NULL when it cannot be
 * cached (no memory, or too large). */
static struct centry *entry_new(struct cache_engine *ce, const void *k, size_t klen,
                                bool absent, const void *v, size_t vlen)
{
    if (!absent && vlen > PST_CACHE_VALUE_MAX)
        return NULL;
    if (klen + (absent ? 0 : vlen) + PST_CACHE_ENTRY_OVERHEAD > ce->max_bytes / 4)
        return NULL;
    struct centry *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->key = malloc(klen ? klen : 1);
    c->val = absent ? NULL : malloc(vlen ? vlen : 1);
    if (!c->key || (!absent && !c->val)) {
        free(c->key);
        free(c->val);
        free(c);
        return NULL;
    }
    if (klen)
        memcpy(c->key, k, klen);
    if (!absent && vlen)
        memcpy(c->val, v, vlen);
    c->klen = klen;
    c->vlen = absent ? 0 : vlen;
    c->absent = absent;
    return c;
}

/* Put c (whose key is not in the table) in, making room first. */
static void entry_insert(struct cache_engine *ce, struct centry *c)
{
    evict(ce, entry_bytes(c));
    struct centry **pp = find_slot(ce, c->key, c->klen); /* evict may have changed chains */
    c->next = *pp;
    *pp = c;
    ce->bytes += entry_bytes(c);
}

/* Remember what a read of the inner engine answered: k = v/vlen, or absent. */
static void cache_put_read(struct cache_engine *ce, const void *k, size_t klen, bool absent,
                           const void *v, size_t vlen)
{
    cache_drop(ce, k, klen);
    struct centry *c = entry_new(ce, k, klen, absent, v, vlen);
    if (!c)
        return;
    c->ref = c->read = true;
    entry_insert(ce, c);
}

/* After a write that reached the inner engine: a cached row of k takes the new state (a
 * row never read is not added: the log and history rows are written, not read). */
static void cache_update_written(struct cache_engine *ce, const void *k, size_t klen,
                                 bool absent, const void *v, size_t vlen)
{
    struct centry **pp = find_slot(ce, k, klen);
    if (!*pp)
        return;
    PST_ASSERT(!(*pp)->dirty);
    bool ref = (*pp)->ref, read = (*pp)->read;
    entry_free(ce, pp);
    struct centry *c = entry_new(ce, k, klen, absent, v, vlen);
    if (!c)
        return;
    c->ref = ref;
    c->read = read;
    entry_insert(ce, c);
}

/* Write every dirty entry's state to the inner engine in one unsynced batch; they become
 * clean. On failure they stay dirty (the caller reports the error; the node stops). */
static int flush(struct cache_engine *ce)
{
    if (!ce->dirty)
        return RC_OK;
    struct pst_batch *b = ce->flush_batch;
    pst_batch_clear(b);
    for (struct centry *c = ce->dirty; c; c = c->dnext) {
        if (c->absent)
            pst_batch_del(b, c->key, c->klen);
        else
            pst_batch_put(b, c->key, c->klen, c->val, c->vlen);
    }
    int rc = pst_batch_status(b);
    if (rc == RC_OK)
        rc = ce->inner->ops->write(ce->inner, b, false);
    pst_batch_clear(b);
    if (rc != RC_OK)
        return rc;
    while (ce->dirty) {
        struct centry *c = ce->dirty;
        ce->dirty = c->dnext;
        c->dnext = NULL;
        c->dirty = false;
        if (!c->read) /* a row only written (history, audit, applied record): drop it */
            entry_free(ce, find_slot(ce, c->key, c->klen));
    }
    ce->dirty_bytes = 0;
    return RC_OK;
}

/* Gather an unsynced batch in the cache: RC_OK, a flush failure, or -1 when the batch
 * cannot be gathered (a value or the batch too large): the caller writes it through. */
static int gather(struct cache_engine *ce, const struct pst_batch *b)
{
    size_t add = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (b->ops[i].kind == PST_OP_PUT && b->ops[i].vlen > PST_CACHE_VALUE_MAX)
            return -1;
        add += b->ops[i].klen + b->ops[i].vlen + PST_CACHE_ENTRY_OVERHEAD;
    }
    if (add > ce->max_bytes / 4)
        return -1;
    for (size_t i = 0; i < b->n; i++) {
        const struct pst_batch_op *op = &b->ops[i];
        const char *k = pst_op_key(b, op);
        struct centry *c = *find_slot(ce, k, op->klen);
        if (!c) {
            c = entry_new(ce, k, op->klen, true, NULL, 0); /* made dirty below */
            if (c)
                entry_insert(ce, c);
        }
        bool put = op->kind == PST_OP_PUT;
        if (!c || dirty_set(ce, c, !put, pst_op_value(b, op), op->vlen) != RC_OK) {
            /* Out of memory part way: the ops so far are gathered, write the rest
             * through after them. */
            int rc = flush(ce);
            if (rc != RC_OK)
                return rc;
            struct pst_batch *rest = pst_batch_new();
            if (!rest)
                return RC_NOMEM;
            for (size_t j = i; j < b->n; j++) {
                const struct pst_batch_op *o = &b->ops[j];
                if (o->kind == PST_OP_PUT)
                    pst_batch_put(rest, pst_op_key(b, o), o->klen, pst_op_value(b, o),
                                  o->vlen);
                else
                    pst_batch_del(rest, pst_op_key(b, o), o->klen);
            }
            rc = pst_batch_status(rest);
            if (rc == RC_OK)
                rc = ce->inner->ops->write(ce->inner, rest, false);
            for (size_t j = i; j < b->n; j++) {
                struct centry **pp = find_slot(ce, pst_op_key(b, &b->ops[j]), b->ops[j].klen);
                if (*pp && !(*pp)->dirty)
                    entry_free(ce, pp);
            }
            pst_batch_free(rest);
            return rc;
        }
    }
    ce->dirty_bytes += add;
    return ce->dirty_bytes > ce->max_bytes / 2 ? flush(ce) : RC_OK;
}

static void c_close(struct pst_engine *e)
{
    struct cache_engine *ce = (struct cache_engine *)e;
    (void)flush(ce); /* best effort: what is not written was never synced */
    pst_batch_free(ce->flush_batch);
    for (size_t b = 0; b < ce->nbuckets; b++)
        while (ce->buckets[b])
            entry_free(ce, &ce->buckets[b]);
    free(ce->buckets);
    pst_close(ce->inner);
    free(ce);
}

static int c_get(struct pst_engine *e, const struct pst_snap *snap, const void *key,
                 size_t klen, void **val, size_t *vlen)
{
    struct cache_engine *ce = (struct cache_engine *)e;
    if (snap)
        return ce->inner->ops->get(ce->inner, snap, key, klen, val, vlen);
    struct centry *c = *find_slot(ce, key, klen);
    if (c) {
        c->ref = c->read = true;
        if (c->absent)
            return RC_NOTFOUND;
        *val = pst_dup_nul(c->val, c->vlen);
        if (!*val)
            return RC_NOMEM;
        *vlen = c->vlen;
        return RC_OK;
    }
    int rc = ce->inner->ops->get(ce->inner, NULL, key, klen, val, vlen);
    if (rc == RC_OK)
        cache_put_read(ce, key, klen, false, *val, *vlen);
    else if (rc == RC_NOTFOUND)
        cache_put_read(ce, key, klen, true, NULL, 0);
    return rc;
}

static int c_write(struct pst_engine *e, const struct pst_batch *b, bool sync)
{
    struct cache_engine *ce = (struct cache_engine *)e;
    if (!sync) {
        int g = gather(ce, b);
        if (g != -1)
            return g;
    }
    int rc = flush(ce);
    if (rc != RC_OK)
        return rc;
    rc = ce->inner->ops->write(ce->inner, b, sync);
    for (size_t i = 0; i < b->n; i++) {
        const struct pst_batch_op *op = &b->ops[i];
        const char *k = pst_op_key(b, op);
        if (rc != RC_OK)
            cache_drop(ce, k, op->klen);
        else
            cache_update_written(ce, k, op->klen, op->kind != PST_OP_PUT, pst_op_value(b, op),
                                 op->vlen);
    }
    return rc;
}

static struct pst_snap *c_snap_take(struct pst_engine *e)
{
    struct cache_engine *ce = (struct cache_engine *)e;
    if (flush(ce) != RC_OK)
        return NULL; /* the inner engine failed: no consistent view */
    return ce->inner->ops->snap_take(ce->inner);
}

static void c_snap_release(struct pst_engine *e, struct pst_snap *s)
{
    struct cache_engine *ce = (struct cache_engine *)e;
    ce->inner->ops->snap_release(ce->inner, s);
}

static struct pst_raw_iter *c_iter_new(struct pst_engine *e, const struct pst_snap *snap)
{
    struct cache_engine *ce = (struct cache_engine *)e;
    if (flush(ce) != RC_OK)
        return NULL; /* the inner engine failed: no consistent view */
    return ce->inner->ops->iter_new(ce->inner, snap);
}

static uint64_t c_approx_size(struct pst_engine *e, const void *lo, size_t lolen,
                              const void *hi, size_t hilen)
{
    struct cache_engine *ce = (struct cache_engine *)e;
    (void)flush(ce);
    return ce->inner->ops->approx_size(ce->inner, lo, lolen, hi, hilen);
}

static void c_compact_range(struct pst_engine *e, const void *lo, size_t lolen, const void *hi,
                            size_t hilen)
{
    struct cache_engine *ce = (struct cache_engine *)e;
    (void)flush(ce);
    ce->inner->ops->compact_range(ce->inner, lo, lolen, hi, hilen);
}

static const char *c_last_error(struct pst_engine *e)
{
    struct cache_engine *ce = (struct cache_engine *)e;
    return ce->inner->ops->last_error(ce->inner);
}

static const struct pst_engine_ops cache_ops = {
    .name = NULL, /* set from the inner engine: the cache is invisible */
    .close = c_close,
    .get = c_get,
    .write = c_write,
    .snap_take = c_snap_take,
    .snap_release = c_snap_release,
    .iter_new = c_iter_new,
    .approx_size = c_approx_size,
    .compact_range = c_compact_range,
    .last_error = c_last_error,
};

int pst_cache_wrap(struct pst_engine *inner, size_t max_bytes, struct pst_engine **out)
{
    PST_ASSERT(inner != NULL && out != NULL);
    struct cache_engine *ce = calloc(1, sizeof(*ce));
    size_t nb = 1024;
    while (nb < max_bytes / 256 && nb < ((size_t)1 << 24))
        nb *= 2;
    if (ce) {
        ce->buckets = calloc(nb, sizeof(*ce->buckets));
        ce->flush_batch = pst_batch_new();
    }
    if (!ce || !ce->buckets || !ce->flush_batch) {
        if (ce) {
            free(ce->buckets);
            pst_batch_free(ce->flush_batch);
        }
        free(ce);
        return RC_NOMEM;
    }
    ce->ops_copy = cache_ops;
    ce->ops_copy.name = inner->ops->name;
    ce->base.ops = &ce->ops_copy;
    ce->inner = inner;
    ce->nbuckets = nb;
    ce->max_bytes = max_bytes;
    *out = &ce->base;
    return RC_OK;
}
