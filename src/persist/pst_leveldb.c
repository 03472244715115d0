/*
 * pst_leveldb.c - the real storage engine: LevelDB through its C API (<leveldb/c.h>).
 *
 * Options: create_if_missing (from pst_options), paranoid checks on, an LRU block cache,
 * a 10-bit bloom filter, no block compression, reads verify block checksums. Unless
 * row_cache_bytes is 0 the engine handed out is wrapped in the row cache (pst_cache.c).
 * sync writes set WriteOptions.sync, so the write (and every earlier one) is fsync'd
 * before pst_write returns.
 *
 * Errors: every LevelDB error string is kept (pst_last_error) and mapped to RC_CORRUPT when
 * LevelDB reports "Corruption", RC_IO otherwise. A NULL snapshot means "latest"; a LevelDB
 * iterator reads an implicit snapshot taken when it is created.
 *
 * Invariants: leveldb-owned buffers are released with leveldb_free; values handed to the
 * caller are our own malloc'd copies with a trailing NUL.
 */
#include <leveldb/c.h>

#include "pst_internal.h"
#include "rc.h"

struct ldb_engine {
    struct pst_engine base; /* first: casts between the two are valid */
    leveldb_t *db;
    leveldb_options_t *opts;
    leveldb_cache_t *cache;
    leveldb_filterpolicy_t *bloom;
    leveldb_readoptions_t *ropts;
    leveldb_writeoptions_t *wopts_sync, *wopts_async;
    char *err; /* last error message, malloc'd, or NULL */
};

struct ldb_snap {
    const leveldb_snapshot_t *snap;
};

struct ldb_iter {
    struct pst_raw_iter base;
    struct ldb_engine *e;
    leveldb_iterator_t *it;
    leveldb_readoptions_t *ropts;
};

static const struct pst_engine_ops ldb_ops;
static const struct pst_raw_iter_ops ldb_iter_ops;

static struct ldb_engine *ldb(struct pst_engine *e)
{
    PST_ASSERT(e->ops == &ldb_ops);
    return (struct ldb_engine *)e;
}

/* Map a LevelDB error string to a code; also the message seen by pst_last_error. */
static int err_code(const char *msg)
{
    return strncmp(msg, "Corruption", 10) == 0 ? RC_CORRUPT : RC_IO;
}

/* Take ownership of a LevelDB error string (frees it), keep a copy, return its code. */
static int ldb_fail(struct ldb_engine *e, char *lerr)
{
    int rc = err_code(lerr);
    free(e->err);
    e->err = pst_dup_nul(lerr, strlen(lerr));
    leveldb_free(lerr);
    return rc;
}

static void ldb_free_handles(struct ldb_engine *e)
{
    if (e->db)
        leveldb_close(e->db);
    if (e->opts)
        leveldb_options_destroy(e->opts);
    if (e->bloom)
        leveldb_filterpolicy_destroy(e->bloom);
    if (e->cache)
        leveldb_cache_destroy(e->cache);
    if (e->ropts)
        leveldb_readoptions_destroy(e->ropts);
    if (e->wopts_sync)
        leveldb_writeoptions_destroy(e->wopts_sync);
    if (e->wopts_async)
        leveldb_writeoptions_destroy(e->wopts_async);
    free(e->err);
    free(e);
}

static void set_err(char **err, const char *msg)
{
    if (err)
        *err = pst_dup_nul(msg, strlen(msg));
}

int pst_open_leveldb(const char *dir, const struct pst_options *o, struct pst_engine **out,
                     char **err)
{
    PST_ASSERT(dir != NULL);
    PST_ASSERT(out != NULL);
    struct pst_options defaults;
    if (!o) {
        pst_options_default(&defaults);
        o = &defaults;
    }
    *out = NULL;
    if (err)
        *err = NULL;
    struct ldb_engine *e = calloc(1, sizeof(*e));
    if (!e) {
        set_err(err, "out of memory");
        return RC_NOMEM;
    }
    e->base.ops = &ldb_ops;
    e->opts = leveldb_options_create();
    e->cache = leveldb_cache_create_lru(o->cache_bytes);
    e->bloom = leveldb_filterpolicy_create_bloom(10);
    e->ropts = leveldb_readoptions_create();
    e->wopts_sync = leveldb_writeoptions_create();
    e->wopts_async = leveldb_writeoptions_create();
    leveldb_options_set_create_if_missing(e->opts, o->create_if_missing);
    leveldb_options_set_paranoid_checks(e->opts, 1);
    leveldb_options_set_cache(e->opts, e->cache);
    leveldb_options_set_filter_policy(e->opts, e->bloom);
    leveldb_options_set_write_buffer_size(e->opts, o->write_buffer_bytes);
    leveldb_options_set_compression(e->opts, leveldb_no_compression);
    leveldb_readoptions_set_verify_checksums(e->ropts, 1);
    leveldb_writeoptions_set_sync(e->wopts_sync, 1);
    leveldb_writeoptions_set_sync(e->wopts_async, 0);

    char *lerr = NULL;
    e->db = leveldb_open(e->opts, dir, &lerr);
    if (lerr) {
        int rc = err_code(lerr);
        set_err(err, lerr);
        leveldb_free(lerr);
        e->db = NULL;
        ldb_free_handles(e);
        return rc;
    }
    *out = &e->base;
    if (o->row_cache_bytes == 0)
        return RC_OK;
    int rc = pst_cache_wrap(&e->base, o->row_cache_bytes, out);
    if (rc != RC_OK) {
        *out = NULL;
        pst_close(&e->base);
        set_err(err, "out of memory");
    }
    return rc;
}

static void ldb_close(struct pst_engine *pe)
{
    ldb_free_handles(ldb(pe));
}

static const char *ldb_last_error(struct pst_engine *pe)
{
    struct ldb_engine *e = ldb(pe);
    return e->err ? e->err : "";
}

/* Read options for one call: the shared ones, or fresh ones bound to a snapshot. */
static leveldb_readoptions_t *ropts_for(struct ldb_engine *e, const struct pst_snap *snap)
{
    if (!snap)
        return e->ropts;
    leveldb_readoptions_t *r = leveldb_readoptions_create();
    leveldb_readoptions_set_verify_checksums(r, 1);
    leveldb_readoptions_set_snapshot(r, ((const struct ldb_snap *)(const void *)snap)->snap);
    return r;
}

static int ldb_get(struct pst_engine *pe, const struct pst_snap *snap, const void *key,
                   size_t klen, void **val, size_t *vlen)
{
    struct ldb_engine *e = ldb(pe);
    leveldb_readoptions_t *r = ropts_for(e, snap);
    char *lerr = NULL;
    size_t n = 0;
    char *v = leveldb_get(e->db, r, key, klen, &n, &lerr);
    if (r != e->ropts)
        leveldb_readoptions_destroy(r);
    if (lerr) {
        if (v)
            leveldb_free(v);
        return ldb_fail(e, lerr);
    }
    if (!v)
        return RC_NOTFOUND;
    if (n > PST_VALUE_BYTES_MAX) { /* pst_write never stores this: not ours, or corrupt */
        leveldb_free(v);
        free(e->err);
        const char *msg = "value longer than PST_VALUE_BYTES_MAX";
        e->err = pst_dup_nul(msg, strlen(msg));
        return RC_CORRUPT;
    }
    *val = pst_dup_nul(v, n);
    leveldb_free(v);
    if (!*val)
        return RC_NOMEM;
    *vlen = n;
    return RC_OK;
}

static int ldb_write(struct pst_engine *pe, const struct pst_batch *b, bool sync)
{
    struct ldb_engine *e = ldb(pe);
    leveldb_writebatch_t *wb = leveldb_writebatch_create();
    for (size_t i = 0; i < b->n; i++) {
        const struct pst_batch_op *op = &b->ops[i];
        if (op->kind == PST_OP_PUT)
            leveldb_writebatch_put(wb, pst_op_key(b, op), op->klen, pst_op_value(b, op),
                                   op->vlen);
        else
            leveldb_writebatch_delete(wb, pst_op_key(b, op), op->klen);
    }
    char *lerr = NULL;
    leveldb_write(e->db, sync ? e->wopts_sync : e->wopts_async, wb, &lerr);
    leveldb_writebatch_destroy(wb);
    return lerr ? ldb_fail(e, lerr) : RC_OK;
}

static struct pst_snap *ldb_snap_take(struct pst_engine *pe)
{
    struct ldb_engine *e = ldb(pe);
    struct ldb_snap *s = malloc(sizeof(*s));
    if (!s)
        return NULL;
    s->snap = leveldb_create_snapshot(e->db);
    return (struct pst_snap *)(void *)s;
}

static void ldb_snap_release(struct pst_engine *pe, struct pst_snap *ps)
{
    struct ldb_engine *e = ldb(pe);
    struct ldb_snap *s = (struct ldb_snap *)(void *)ps;
    leveldb_release_snapshot(e->db, s->snap);
    free(s);
}

/* ---- raw iterator ---- */

static struct ldb_iter *li(struct pst_raw_iter *ri)
{
    PST_ASSERT(ri->ops == &ldb_iter_ops);
    return (struct ldb_iter *)ri;
}

static const struct ldb_iter *cli(const struct pst_raw_iter *ri)
{
    PST_ASSERT(ri->ops == &ldb_iter_ops);
    return (const struct ldb_iter *)ri;
}

static struct pst_raw_iter *ldb_iter_new(struct pst_engine *pe, const struct pst_snap *snap)
{
    struct ldb_engine *e = ldb(pe);
    struct ldb_iter *it = calloc(1, sizeof(*it));
    if (!it)
        return NULL;
    it->base.ops = &ldb_iter_ops;
    it->e = e;
    it->ropts = ropts_for(e, snap);
    it->it = leveldb_create_iterator(e->db, it->ropts);
    return &it->base;
}

static void ldb_iter_free(struct pst_raw_iter *ri)
{
    struct ldb_iter *it = li(ri);
    leveldb_iter_destroy(it->it);
    if (it->ropts != it->e->ropts)
        leveldb_readoptions_destroy(it->ropts);
    free(it);
}

static bool ldb_iter_valid(const struct pst_raw_iter *ri)
{
    return leveldb_iter_valid(cli(ri)->it) != 0;
}

static void ldb_iter_seek(struct pst_raw_iter *ri, const void *k, size_t klen)
{
    leveldb_iter_seek(li(ri)->it, k, klen);
}

static void ldb_iter_seek_last(struct pst_raw_iter *ri) { leveldb_iter_seek_to_last(li(ri)->it); }
static void ldb_iter_next(struct pst_raw_iter *ri) { leveldb_iter_next(li(ri)->it); }
static void ldb_iter_prev(struct pst_raw_iter *ri) { leveldb_iter_prev(li(ri)->it); }

static const void *ldb_iter_key(const struct pst_raw_iter *ri, size_t *klen)
{
    return leveldb_iter_key(cli(ri)->it, klen);
}

static const void *ldb_iter_value(const struct pst_raw_iter *ri, size_t *vlen)
{
    return leveldb_iter_value(cli(ri)->it, vlen);
}

static int ldb_iter_status(const struct pst_raw_iter *ri)
{
    const struct ldb_iter *it = cli(ri);
    char *lerr = NULL;
    leveldb_iter_get_error(it->it, &lerr);
    if (!lerr)
        return RC_OK;
    /* status() is const for callers; the message still goes to the engine's last error. */
    return ldb_fail(it->e, lerr);
}

/* ---- sizes and compaction ---- */

/* The smallest key greater than every stored key (last key + 0x00), malloc'd; NULL if the
 * store is empty or on OOM. */
static char *key_past_end(struct ldb_engine *e, size_t *len)
{
    leveldb_iterator_t *it = leveldb_create_iterator(e->db, e->ropts);
    char *out = NULL;
    leveldb_iter_seek_to_last(it);
    if (leveldb_iter_valid(it)) {
        size_t n;
        const char *k = leveldb_iter_key(it, &n);
        out = malloc(n + 1);
        if (out) {
            memcpy(out, k, n);
            out[n] = '\0';
            *len = n + 1;
        }
    }
    leveldb_iter_destroy(it);
    return out;
}

static uint64_t ldb_approx_size(struct pst_engine *pe, const void *lo, size_t lolen,
                                const void *hi, size_t hilen)
{
    struct ldb_engine *e = ldb(pe);
    char *end = NULL;
    if (!hi) {
        end = key_past_end(e, &hilen);
        if (!end)
            return 0;
        hi = end;
    }
    uint64_t size = 0;
    if (pst_key_cmp(lo, lolen, hi, hilen) < 0) {
        const char *starts[1] = {lo};
        const char *limits[1] = {hi};
        size_t slens[1] = {lolen}, llens[1] = {hilen};
        leveldb_approximate_sizes(e->db, 1, starts, slens, limits, llens, &size);
    }
    free(end);
    return size;
}

static void ldb_compact_range(struct pst_engine *pe, const void *lo, size_t lolen,
                              const void *hi, size_t hilen)
{
    struct ldb_engine *e = ldb(pe);
    /* LevelDB reads a NULL limit as "to the end". */
    leveldb_compact_range(e->db, lo, lolen, hi, hi ? hilen : 0);
}

static const struct pst_raw_iter_ops ldb_iter_ops = {
    .free = ldb_iter_free,
    .valid = ldb_iter_valid,
    .seek = ldb_iter_seek,
    .seek_last = ldb_iter_seek_last,
    .next = ldb_iter_next,
    .prev = ldb_iter_prev,
    .key = ldb_iter_key,
    .value = ldb_iter_value,
    .status = ldb_iter_status,
};

static const struct pst_engine_ops ldb_ops = {
    .name = "leveldb",
    .close = ldb_close,
    .get = ldb_get,
    .write = ldb_write,
    .snap_take = ldb_snap_take,
    .snap_release = ldb_snap_release,
    .iter_new = ldb_iter_new,
    .approx_size = ldb_approx_size,
    .compact_range = ldb_compact_range,
    .last_error = ldb_last_error,
};
