/*
 * pst.c - the engine-independent half of src/persist: write batches, dispatch through
 * the engine vtable (pst_internal.h), range-bounded iterators on top of an engine's raw
 * iterator, and pst_delete_range.
 *
 * Invariants:
 * - A batch's arena holds, per op, the key followed by the value; pst_batch_bytes is the
 *   arena length (keys + values). Once a batch fails (RC_NOMEM / RC_TOOBIG) it stays failed
 *   until pst_batch_clear, ignores further ops, and pst_write refuses it.
 * - A bounded iterator is valid only on a key k with lo <= k < hi (hi absent: no upper
 *   bound). Moving an invalid iterator with next/prev does nothing; seek and seek_last
 *   always reposition.
 */
#include "pst_internal.h"

#include "rc.h"

void pst_options_default(struct pst_options *o)
{
    PST_ASSERT(o != NULL);
    o->create_if_missing = true;
    o->cache_bytes = (size_t)32 * 1024 * 1024;
    o->write_buffer_bytes = (size_t)16 * 1024 * 1024;
    o->row_cache_bytes = (size_t)64 * 1024 * 1024;
}

/* ---- engine dispatch ---- */

void pst_close(struct pst_engine *e)
{
    if (e)
        e->ops->close(e);
}

const char *pst_engine_name(const struct pst_engine *e)
{
    PST_ASSERT(e != NULL);
    return e->ops->name;
}

const char *pst_last_error(struct pst_engine *e)
{
    PST_ASSERT(e != NULL);
    return e->ops->last_error(e);
}

int pst_get(struct pst_engine *e, const struct pst_snap *snap, const void *key, size_t klen,
            void **val, size_t *vlen)
{
    PST_ASSERT(e != NULL);
    PST_ASSERT(val != NULL && vlen != NULL);
    PST_ASSERT(key != NULL || klen == 0);
    *val = NULL;
    *vlen = 0;
    return e->ops->get(e, snap, key, klen, val, vlen);
}

int pst_write(struct pst_engine *e, struct pst_batch *b, bool sync)
{
    PST_ASSERT(e != NULL);
    PST_ASSERT(b != NULL);
    if (b->status != RC_OK)
        return b->status;
    return e->ops->write(e, b, sync);
}

struct pst_snap *pst_snap_take(struct pst_engine *e)
{
    PST_ASSERT(e != NULL);
    return e->ops->snap_take(e);
}

void pst_snap_release(struct pst_engine *e, struct pst_snap *s)
{
    PST_ASSERT(e != NULL);
    if (s)
        e->ops->snap_release(e, s);
}

uint64_t pst_approx_size(struct pst_engine *e, const void *lo, size_t lolen, const void *hi,
                         size_t hilen)
{
    PST_ASSERT(e != NULL);
    return e->ops->approx_size(e, lo, lolen, hi, hilen);
}

void pst_compact_range(struct pst_engine *e, const void *lo, size_t lolen, const void *hi,
                       size_t hilen)
{
    PST_ASSERT(e != NULL);
    e->ops->compact_range(e, lo, lolen, hi, hilen);
}

/* ---- write batches ---- */

struct pst_batch *pst_batch_new(void)
{
    return calloc(1, sizeof(struct pst_batch));
}

void pst_batch_free(struct pst_batch *b)
{
    if (!b)
        return;
    free(b->ops);
    free(b->buf);
    free(b);
}

void pst_batch_clear(struct pst_batch *b)
{
    PST_ASSERT(b != NULL);
    b->n = 0;
    b->len = 0;
    b->status = RC_OK;
}

size_t pst_batch_count(const struct pst_batch *b) { return b->n; }
size_t pst_batch_bytes(const struct pst_batch *b) { return b->len; }
bool pst_batch_oom(const struct pst_batch *b) { return b->status == RC_NOMEM; }
int pst_batch_status(const struct pst_batch *b) { return b->status; }

/* Room for one more op of need arena bytes; false (and the batch failed) otherwise. */
static bool batch_reserve(struct pst_batch *b, size_t need)
{
    if (need > PST_BATCH_BYTES_MAX - b->len) {
        b->status = RC_TOOBIG;
        return false;
    }
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        struct pst_batch_op *ops = realloc(b->ops, cap * sizeof(*ops));
        if (!ops)
            goto oom;
        b->ops = ops;
        b->cap = cap;
    }
    if (need > b->buf_cap - b->len) {
        size_t cap = b->buf_cap ? b->buf_cap : 256;
        while (cap - b->len < need)
            cap *= 2; /* bounded: len + need <= PST_BATCH_BYTES_MAX */
        char *buf = realloc(b->buf, cap);
        if (!buf)
            goto oom;
        b->buf = buf;
        b->buf_cap = cap;
    }
    return true;
oom:
    b->status = RC_NOMEM;
    return false;
}

static void batch_add(struct pst_batch *b, uint8_t kind, const void *k, size_t klen,
                      const void *v, size_t vlen)
{
    PST_ASSERT(b != NULL);
    PST_ASSERT(k != NULL || klen == 0);
    PST_ASSERT(v != NULL || vlen == 0);
    if (b->status != RC_OK)
        return;
    if (klen > PST_KEY_BYTES_MAX || vlen > PST_VALUE_BYTES_MAX) {
        b->status = RC_TOOBIG;
        return;
    }
    if (!batch_reserve(b, klen + vlen))
        return;
    struct pst_batch_op *op = &b->ops[b->n++];
    op->off = b->len;
    op->klen = (uint32_t)klen;
    op->vlen = (uint32_t)vlen;
    op->kind = kind;
    if (klen)
        memcpy(b->buf + b->len, k, klen);
    if (vlen)
        memcpy(b->buf + b->len + klen, v, vlen);
    b->len += klen + vlen;
}

void pst_batch_put(struct pst_batch *b, const void *k, size_t klen, const void *v, size_t vlen)
{
    batch_add(b, PST_OP_PUT, k, klen, v, vlen);
}

void pst_batch_del(struct pst_batch *b, const void *k, size_t klen)
{
    batch_add(b, PST_OP_DEL, k, klen, NULL, 0);
}

/* ---- bounded iterators ---- */

struct pst_iter {
    struct pst_raw_iter *raw;
    char *lo, *hi;       /* owned copies; hi NULL: no upper bound */
    size_t lolen, hilen;
    bool valid;
};

/* Recompute validity after the raw iterator moved. */
static void iter_check(struct pst_iter *it)
{
    const struct pst_raw_iter_ops *ops = it->raw->ops;
    it->valid = false;
    if (!ops->valid(it->raw) || ops->status(it->raw) != RC_OK)
        return;
    size_t klen;
    const void *k = ops->key(it->raw, &klen);
    if (pst_key_cmp(k, klen, it->lo, it->lolen) < 0)
        return;
    if (it->hi && pst_key_cmp(k, klen, it->hi, it->hilen) >= 0)
        return;
    it->valid = true;
}

struct pst_iter *pst_iter_new(struct pst_engine *e, const struct pst_snap *snap, const void *lo,
                              size_t lolen, const void *hi, size_t hilen)
{
    PST_ASSERT(e != NULL);
    PST_ASSERT(lo != NULL || lolen == 0);
    struct pst_iter *it = calloc(1, sizeof(*it));
    if (!it)
        return NULL;
    it->lo = pst_dup_nul(lo, lolen);
    it->lolen = lolen;
    if (hi) {
        it->hi = pst_dup_nul(hi, hilen);
        it->hilen = hilen;
    }
    if (!it->lo || (hi && !it->hi))
        goto fail;
    it->raw = e->ops->iter_new(e, snap);
    if (!it->raw)
        goto fail;
    pst_iter_seek(it, lo, lolen);
    return it;
fail:
    free(it->lo);
    free(it->hi);
    free(it);
    return NULL;
}

void pst_iter_free(struct pst_iter *it)
{
    if (!it)
        return;
    it->raw->ops->free(it->raw);
    free(it->lo);
    free(it->hi);
    free(it);
}

bool pst_iter_valid(const struct pst_iter *it) { return it->valid; }

void pst_iter_next(struct pst_iter *it)
{
    if (!it->valid)
        return;
    it->raw->ops->next(it->raw);
    iter_check(it);
}

void pst_iter_prev(struct pst_iter *it)
{
    if (!it->valid)
        return;
    it->raw->ops->prev(it->raw);
    iter_check(it);
}

void pst_iter_seek(struct pst_iter *it, const void *k, size_t klen)
{
    PST_ASSERT(k != NULL || klen == 0);
    if (pst_key_cmp(k, klen, it->lo, it->lolen) < 0) {
        k = it->lo;
        klen = it->lolen;
    }
    it->raw->ops->seek(it->raw, k, klen);
    iter_check(it);
}

void pst_iter_seek_last(struct pst_iter *it)
{
    const struct pst_raw_iter_ops *ops = it->raw->ops;
    if (it->hi) {
        ops->seek(it->raw, it->hi, it->hilen);
        if (ops->status(it->raw) != RC_OK) {
            it->valid = false;
            return;
        }
        if (ops->valid(it->raw))
            ops->prev(it->raw); /* last key < hi */
        else
            ops->seek_last(it->raw); /* every key is < hi */
    } else {
        ops->seek_last(it->raw);
    }
    iter_check(it);
}

const void *pst_iter_key(const struct pst_iter *it, size_t *klen)
{
    PST_ASSERT(it->valid);
    return it->raw->ops->key(it->raw, klen);
}

const void *pst_iter_value(const struct pst_iter *it, size_t *vlen)
{
    PST_ASSERT(it->valid);
    return it->raw->ops->value(it->raw, vlen);
}

int pst_iter_status(const struct pst_iter *it) { return it->raw->ops->status(it->raw); }

/* ---- delete_range ---- */

/* Deletes in chunks of at most this many keys, so a huge range never builds a huge batch. */
#define DELETE_RANGE_CHUNK_OPS 1024

int pst_delete_range(struct pst_engine *e, const void *lo, size_t lolen, const void *hi,
                     size_t hilen, bool sync)
{
    PST_ASSERT(e != NULL);
    struct pst_batch *b = pst_batch_new();
    struct pst_iter *it = pst_iter_new(e, NULL, lo, lolen, hi, hilen);
    int rc = RC_NOMEM;
    if (!b || !it)
        goto out;
    for (;;) {
        pst_batch_clear(b);
        for (; pst_iter_valid(it) && pst_batch_count(b) < DELETE_RANGE_CHUNK_OPS;
             pst_iter_next(it)) {
            size_t klen;
            const void *k = pst_iter_key(it, &klen);
            pst_batch_del(b, k, klen);
        }
        rc = pst_iter_status(it);
        if (rc != RC_OK)
            goto out;
        bool last = !pst_iter_valid(it);
        /* Only the last chunk needs sync: a sync write makes every earlier one durable. */
        rc = pst_write(e, b, sync && last);
        if (rc != RC_OK || last)
            goto out;
    }
out:
    pst_iter_free(it);
    pst_batch_free(b);
    return rc;
}
