/*
 * pst.h - the storage engine interface: an ordered key-value store with atomic write
 * batches (optionally fsync'd), point reads, ordered iteration and consistent snapshots.
 *
 * Two engines implement it: LevelDB (pst_leveldb.c) for real, and an in-memory engine
 * (pst_mem.c) for unit tests and the simulator. One contract suite
 * (tests/unit/test_pst.c) runs against both. Keys and values are byte strings compared
 * with memcmp order (shorter prefix first). Functions return RC_* codes from src/rc.h.
 *
 * Thread-safety: none; one engine is used from one thread.
 */
#ifndef RAFTCONF_PST_H
#define RAFTCONF_PST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pst_engine;
struct pst_batch;
struct pst_iter;
struct pst_snap;

struct pst_options {
    bool create_if_missing;   /* default true */
    size_t cache_bytes;       /* LevelDB block cache; default 32 MiB */
    size_t write_buffer_bytes;/* LevelDB memtable; default 16 MiB */
    size_t row_cache_bytes;   /* write-through row cache (pst_cache_wrap) in front of
                                 LevelDB; default 64 MiB; 0: none */
};
void pst_options_default(struct pst_options *o);

/* Open/create a LevelDB store in dir. On failure *err (if non-NULL) gets a malloc'd
 * message the caller frees. */
int pst_open_leveldb(const char *dir, const struct pst_options *o, struct pst_engine **out,
                     char **err);
/* Wrap inner in a write-through row cache of at most max_bytes (pst_cache.c): latest-state
 * point reads of recently read or written keys (absent ones too) come from memory. The
 * wrapper owns inner (pst_close closes both) and reports inner's name. */
int pst_cache_wrap(struct pst_engine *inner, size_t max_bytes, struct pst_engine **out);
/* A fresh, empty in-memory engine. */
int pst_open_mem(struct pst_engine **out);
/* Close and free (releases nothing the caller still holds: free iterators, snapshots and
 * batches first). */
void pst_close(struct pst_engine *e);
/* "leveldb" or "mem". */
const char *pst_engine_name(const struct pst_engine *e);

/* Point read. snap may be NULL (latest state). On RC_OK *val is malloc'd (caller frees,
 * NUL-terminated for convenience, *vlen excludes the NUL); RC_NOTFOUND when absent. */
int pst_get(struct pst_engine *e, const struct pst_snap *snap, const void *key, size_t klen,
            void **val, size_t *vlen);

/* Write batches: an ordered list of puts and deletes applied atomically. */
struct pst_batch *pst_batch_new(void);
void pst_batch_free(struct pst_batch *b);
void pst_batch_put(struct pst_batch *b, const void *k, size_t klen, const void *v, size_t vlen);
void pst_batch_del(struct pst_batch *b, const void *k, size_t klen);
void pst_batch_clear(struct pst_batch *b);
size_t pst_batch_count(const struct pst_batch *b);  /* operations in the batch */
size_t pst_batch_bytes(const struct pst_batch *b);  /* approximate payload bytes */
bool pst_batch_oom(const struct pst_batch *b);       /* sticky allocation failure */
/* Apply atomically. sync=true: durable (fsync'd) when it returns RC_OK; this also makes
 * every earlier unsynced write durable. RC_IO on failure (the node must stop). */
int pst_write(struct pst_engine *e, struct pst_batch *b, bool sync);
/* Delete every key in [lo, hi) (hi NULL: to the end). Not atomic with other writes. */
int pst_delete_range(struct pst_engine *e, const void *lo, size_t lolen, const void *hi,
                     size_t hilen, bool sync);

/* Consistent read views. */
struct pst_snap *pst_snap_take(struct pst_engine *e);
void pst_snap_release(struct pst_engine *e, struct pst_snap *s);

/* Iterators over [lo, hi) (hi NULL: unbounded above) as of snap (NULL: latest at creation).
 * After creation the iterator is positioned at the first key >= lo. */
struct pst_iter *pst_iter_new(struct pst_engine *e, const struct pst_snap *snap, const void *lo,
                              size_t lolen, const void *hi, size_t hilen);
void pst_iter_free(struct pst_iter *it);
bool pst_iter_valid(const struct pst_iter *it);
void pst_iter_next(struct pst_iter *it);
void pst_iter_prev(struct pst_iter *it);
void pst_iter_seek(struct pst_iter *it, const void *k, size_t klen);      /* first >= k */
void pst_iter_seek_last(struct pst_iter *it);                              /* last < hi */
/* Borrowed until the iterator moves or is freed. */
const void *pst_iter_key(const struct pst_iter *it, size_t *klen);
const void *pst_iter_value(const struct pst_iter *it, size_t *vlen);
int pst_iter_status(const struct pst_iter *it); /* RC_OK or RC_IO/RC_CORRUPT */

/* Approximate bytes stored under [lo, hi) (for INFO). */
uint64_t pst_approx_size(struct pst_engine *e, const void *lo, size_t lolen, const void *hi,
                         size_t hilen);

/* ---- additions (persist helper, backward compatible) ---- */

/* Limits. A batch op past a limit makes the batch fail (sticky RC_TOOBIG) instead of
 * allocating; pst_write then returns that code and writes nothing. */
#define PST_KEY_BYTES_MAX   (64u * 1024u)              /* one key */
#define PST_VALUE_BYTES_MAX (64u * 1024u * 1024u)      /* one value */
#define PST_BATCH_BYTES_MAX ((size_t)1024 * 1024 * 1024) /* keys + values of one batch */

/* RC_OK, or the sticky failure of the batch: RC_NOMEM (then pst_batch_oom is true) or
 * RC_TOOBIG (a key, value or the batch went past a limit above). */
int pst_batch_status(const struct pst_batch *b);

/* The message of the last failed engine call, for logs ("" if none). Valid until the next
 * call on the engine. */
const char *pst_last_error(struct pst_engine *e);

/* Compact [lo, hi) (hi NULL: to the end) so deleted data gives back space. Best effort. */
void pst_compact_range(struct pst_engine *e, const void *lo, size_t lolen, const void *hi,
                       size_t hilen);

/* In-memory engine only: a crash model for the simulator. While enabled, a "crash" forgets
 * every write that no sync write (pst_write/pst_delete_range with sync=true) made durable,
 * as a power loss would. Enabling it counts everything written so far as durable. */
void pst_mem_set_crash_model(struct pst_engine *e, bool on);
/* Simulate the power loss. Requires the crash model, and no live snapshots or iterators. */
void pst_mem_crash(struct pst_engine *e);

#endif
