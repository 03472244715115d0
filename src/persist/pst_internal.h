/*
 * pst_internal.h - what the engines of src/persist share: the engine vtable, the raw
 * (unbounded) iterator vtable, the write batch layout and small helpers.
 *
 * An engine is a struct whose first member is struct pst_engine; pst.c dispatches every
 * public call through e->ops, so engines are interchangeable and one engine can wrap
 * another (e.g. a fault-injecting engine forwarding to LevelDB or mem). Range bounds of
 * iterators ([lo, hi)) are enforced once, in pst.c, on top of an engine's raw iterator,
 * which only knows "first key >= k", "last key", next and prev over the whole keyspace.
 *
 * Invariants:
 * - Keys compare with pst_key_cmp (memcmp, then shorter first).
 * - A batch's ops are applied in order; a later op on the same key wins. Engines get a
 *   batch whose status is RC_OK (pst.c rejects failed batches before dispatch).
 * - A raw iterator reads a consistent view fixed when it was created.
 */
#ifndef RAFTCONF_PST_INTERNAL_H
#define RAFTCONF_PST_INTERNAL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pst.h"

/* Programmer errors only; stays on in release builds. */
#define PST_ASSERT(cond)                                                                \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "%s:%d: pst assertion failed: %s\n", __FILE__, __LINE__,    \
                    #cond);                                                             \
            abort();                                                                    \
        }                                                                               \
    } while (0)

enum pst_op_kind { PST_OP_PUT = 1, PST_OP_DEL = 2 };

/* One batch operation; key (and value) bytes live in the batch arena at off. */
struct pst_batch_op {
    size_t off;      /* key at buf + off, value right after the key */
    uint32_t klen;
    uint32_t vlen;   /* 0 for deletes */
    uint8_t kind;    /* enum pst_op_kind */
};

struct pst_batch {
    struct pst_batch_op *ops;
    size_t n, cap;        /* ops used / allocated */
    char *buf;
    size_t len, buf_cap;  /* arena bytes used / allocated; len == pst_batch_bytes */
    int status;           /* sticky: RC_OK, RC_NOMEM or RC_TOOBIG */
};

static inline const char *pst_op_key(const struct pst_batch *b, const struct pst_batch_op *op)
{
    return b->buf + op->off;
}

static inline const char *pst_op_value(const struct pst_batch *b,
                                       const struct pst_batch_op *op)
{
    return b->buf + op->off + op->klen;
}

static inline int pst_key_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    if (c != 0)
        return c;
    return alen < blen ? -1 : (alen > blen ? 1 : 0);
}

/* Raw iterator over the whole keyspace of one consistent view. Positions: valid or not;
 * next/prev/key/value only on a valid iterator. */
struct pst_raw_iter;
struct pst_raw_iter_ops {
    void (*free)(struct pst_raw_iter *ri);
    bool (*valid)(const struct pst_raw_iter *ri);
    void (*seek)(struct pst_raw_iter *ri, const void *k, size_t klen); /* first >= k */
    void (*seek_last)(struct pst_raw_iter *ri);
    void (*next)(struct pst_raw_iter *ri);
    void (*prev)(struct pst_raw_iter *ri);
    const void *(*key)(const struct pst_raw_iter *ri, size_t *klen);
    const void *(*value)(const struct pst_raw_iter *ri, size_t *vlen);
    int (*status)(const struct pst_raw_iter *ri);
};
struct pst_raw_iter {
    const struct pst_raw_iter_ops *ops;
};

struct pst_engine_ops {
    const char *name;
    void (*close)(struct pst_engine *e);
    int (*get)(struct pst_engine *e, const struct pst_snap *snap, const void *key,
               size_t klen, void **val, size_t *vlen);
    int (*write)(struct pst_engine *e, const struct pst_batch *b, bool sync);
    struct pst_snap *(*snap_take)(struct pst_engine *e);
    void (*snap_release)(struct pst_engine *e, struct pst_snap *s);
    /* NULL on allocation failure. snap NULL: the latest state at creation. */
    struct pst_raw_iter *(*iter_new)(struct pst_engine *e, const struct pst_snap *snap);
    uint64_t (*approx_size)(struct pst_engine *e, const void *lo, size_t lolen,
                            const void *hi, size_t hilen);
    void (*compact_range)(struct pst_engine *e, const void *lo, size_t lolen, const void *hi,
                          size_t hilen);
    const char *(*last_error)(struct pst_engine *e);
};

struct pst_engine {
    const struct pst_engine_ops *ops;
};

/* Copy bytes into a fresh malloc'd buffer with a trailing NUL (not counted). NULL on OOM. */
static inline void *pst_dup_nul(const void *p, size_t n)
{
    char *c = malloc(n + 1);
    if (!c)
        return NULL;
    if (n)
        memcpy(c, p, n);
    c[n] = '\0';
    return c;
}

#endif
