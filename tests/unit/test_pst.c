/*
 * test_pst.c - the storage engine contract (src/persist/pst.h), one set of test bodies run
 * against both engines: suite "mem" (in-memory engine) and suite "leveldb" (LevelDB in a
 * fresh temporary directory, removed afterwards). PST_TEST(name) instantiates a body twice;
 * LDB_TEST / MEM_TEST bodies run on one engine only (persistence, corruption, crash model).
 *
 * The randomized model test compares each engine with a sorted-array reference (seeded;
 * a failure names the seed and the step).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "persist/pst.h"
#include "rc.h"

/* ---- fixture ---- */

static struct pst_engine *E;
static char tmpdir[64];
static bool is_ldb;

static void open_ldb(void)
{
    char *err = NULL;
    int rc = pst_open_leveldb(tmpdir, NULL, &E, &err);
    cr_assert_eq(rc, RC_OK, "open leveldb in %s: %s", tmpdir, err ? err : "?");
    cr_assert_null(err);
}

static void setup_mem(void)
{
    is_ldb = false;
    cr_assert_eq(pst_open_mem(&E), RC_OK);
}

static void setup_ldb(void)
{
    is_ldb = true;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_pst.XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    open_ldb();
}

/* The in-memory engine behind a tiny row cache (pst_cache.c): 4 KiB, so entries are
 * evicted, gathered writes are flushed at the bound and larger values are written
 * through, all under the same contract. */
static void setup_cached(void)
{
    is_ldb = false;
    struct pst_engine *inner = NULL;
    cr_assert_eq(pst_open_mem(&inner), RC_OK);
    cr_assert_eq(pst_cache_wrap(inner, 4096, &E), RC_OK);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void teardown(void)
{
    /* Remove the directory first too: after a failed assertion a snapshot or iterator may
     * still be live and closing LevelDB then can crash. Open files survive the unlink. */
    if (is_ldb && tmpdir[0])
        nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    pst_close(E);
    E = NULL;
    if (is_ldb && tmpdir[0])
        nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

#define PST_TEST(name)                                                   \
    static void body_##name(void);                                       \
    Test(mem, name, .init = setup_mem, .fini = teardown) { body_##name(); } \
    Test(leveldb, name, .init = setup_ldb, .fini = teardown) { body_##name(); } \
    Test(cached, name, .init = setup_cached, .fini = teardown) { body_##name(); } \
    static void body_##name(void)

/* ---- helpers ---- */

static void put(const void *k, size_t klen, const void *v, size_t vlen)
{
    struct pst_batch *b = pst_batch_new();
    pst_batch_put(b, k, klen, v, vlen);
    cr_assert_eq(pst_write(E, b, false), RC_OK);
    pst_batch_free(b);
}

static void del(const void *k, size_t klen)
{
    struct pst_batch *b = pst_batch_new();
    pst_batch_del(b, k, klen);
    cr_assert_eq(pst_write(E, b, false), RC_OK);
    pst_batch_free(b);
}

static void puts_(const char *k, const char *v) { put(k, strlen(k), v, strlen(v)); }
static void dels(const char *k) { del(k, strlen(k)); }

/* Asserts k has value v (v NULL: absent) as seen through snap. */
static void expect(const struct pst_snap *snap, const char *k, const char *v)
{
    void *val = (void *)1;
    size_t vlen = 99;
    int rc = pst_get(E, snap, k, strlen(k), &val, &vlen);
    if (!v) {
        cr_assert_eq(rc, RC_NOTFOUND, "%s: key '%s' should be absent (rc %d)",
                     pst_engine_name(E), k, rc);
        cr_assert_null(val);
        return;
    }
    cr_assert_eq(rc, RC_OK, "%s: key '%s' should be present (rc %d)", pst_engine_name(E), k, rc);
    cr_assert_eq(vlen, strlen(v));
    cr_assert_eq(memcmp(val, v, vlen), 0, "key '%s': got '%.*s' want '%s'", k, (int)vlen,
                 (char *)val, v);
    cr_assert_eq(((char *)val)[vlen], '\0', "trailing NUL");
    free(val);
}

/* Collect the keys of an iterator walking forward (or backward) into out, joined by '|'. */
static void walk(struct pst_iter *it, bool backward, char *out, size_t cap)
{
    out[0] = '\0';
    for (; pst_iter_valid(it); backward ? pst_iter_prev(it) : pst_iter_next(it)) {
        size_t klen;
        const char *k = pst_iter_key(it, &klen);
        size_t n = strlen(out);
        cr_assert_lt(n + klen + 2, cap);
        memcpy(out + n, k, klen);
        out[n + klen] = '|';
        out[n + klen + 1] = '\0';
    }
    cr_assert_eq(pst_iter_status(it), RC_OK);
}

static void expect_range(const struct pst_snap *snap, const char *lo, const char *hi,
                         const char *want_fwd, const char *want_back)
{
    char got[4096];
    struct pst_iter *it = pst_iter_new(E, snap, lo, strlen(lo), hi, hi ? strlen(hi) : 0);
    cr_assert_not_null(it);
    walk(it, false, got, sizeof(got));
    cr_assert_str_eq(got, want_fwd, "%s [%s, %s) forward", pst_engine_name(E), lo,
                     hi ? hi : "end");
    pst_iter_seek_last(it);
    walk(it, true, got, sizeof(got));
    cr_assert_str_eq(got, want_back, "%s [%s, %s) backward", pst_engine_name(E), lo,
                     hi ? hi : "end");
    pst_iter_free(it);
}

/* ---- basic operations ---- */

PST_TEST(put_get_delete)
{
    expect(NULL, "a", NULL);
    puts_("a", "1");
    expect(NULL, "a", "1");
    puts_("a", "22");
    expect(NULL, "a", "22");
    puts_("empty", "");
    expect(NULL, "empty", "");
    dels("a");
    expect(NULL, "a", NULL);
    dels("never-there"); /* deleting an absent key is fine */
    expect(NULL, "empty", "");

    /* Binary keys and values, including NUL bytes; the empty key is a key too. */
    const char k[] = {0, 'x', 0, (char)0xff};
    const char v[] = {'v', 0, 0, 'w'};
    put(k, sizeof(k), v, sizeof(v));
    put("", 0, "root", 4);
    void *val;
    size_t vlen;
    cr_assert_eq(pst_get(E, NULL, k, sizeof(k), &val, &vlen), RC_OK);
    cr_assert_eq(vlen, sizeof(v));
    cr_assert_eq(memcmp(val, v, sizeof(v)), 0);
    free(val);
    cr_assert_eq(pst_get(E, NULL, k, 3, &val, &vlen), RC_NOTFOUND, "a prefix is another key");
    cr_assert_eq(pst_get(E, NULL, "", 0, &val, &vlen), RC_OK);
    cr_assert_eq(vlen, 4);
    free(val);
    cr_assert_str_eq(pst_last_error(E), "");
}

PST_TEST(engine_name)
{
    cr_assert_str_eq(pst_engine_name(E), is_ldb ? "leveldb" : "mem");
}

PST_TEST(batch_atomic_and_ordered)
{
    puts_("old", "x");
    struct pst_batch *b = pst_batch_new();
    cr_assert_eq(pst_batch_count(b), 0);
    pst_batch_put(b, "k", 1, "v1", 2);
    pst_batch_put(b, "k", 1, "v2", 2);      /* later op on the same key wins */
    pst_batch_put(b, "pd", 2, "gone", 4);
    pst_batch_del(b, "pd", 2);              /* put then delete: absent */
    pst_batch_del(b, "dp", 2);
    pst_batch_put(b, "dp", 2, "here", 4);   /* delete then put: present */
    pst_batch_del(b, "old", 3);
    cr_assert_eq(pst_batch_count(b), 7);
    cr_assert_eq(pst_batch_bytes(b), 3 + 3 + 6 + 2 + 2 + 6 + 3);
    cr_assert_not(pst_batch_oom(b));

    /* A reader that started before the write sees none of the batch. */
    struct pst_snap *s = pst_snap_take(E);
    struct pst_iter *before = pst_iter_new(E, NULL, "", 0, NULL, 0);
    cr_assert_eq(pst_write(E, b, true), RC_OK);
    expect(NULL, "k", "v2");
    expect(NULL, "pd", NULL);
    expect(NULL, "dp", "here");
    expect(NULL, "old", NULL);
    expect(s, "k", NULL);
    expect(s, "dp", NULL);
    expect(s, "old", "x");
    char got[256];
    walk(before, false, got, sizeof(got));
    cr_assert_str_eq(got, "old|");
    pst_iter_free(before);
    pst_snap_release(E, s);
    expect_range(NULL, "", NULL, "dp|k|", "k|dp|");

    /* A batch can be reused after clear. */
    pst_batch_clear(b);
    cr_assert_eq(pst_batch_count(b), 0);
    cr_assert_eq(pst_batch_bytes(b), 0);
    pst_batch_put(b, "z", 1, "1", 1);
    cr_assert_eq(pst_write(E, b, false), RC_OK);
    expect(NULL, "z", "1");
    pst_batch_free(b);
}

PST_TEST(failed_batch_writes_nothing)
{
    struct pst_batch *b = pst_batch_new();
    pst_batch_put(b, "ok", 2, "1", 1);
    static char big[PST_KEY_BYTES_MAX + 1];
    pst_batch_put(b, big, sizeof(big), "x", 1);
    cr_assert_eq(pst_batch_status(b), RC_TOOBIG);
    cr_assert_not(pst_batch_oom(b), "a limit is not an allocation failure");
    pst_batch_put(b, "later", 5, "1", 1); /* sticky: ignored */
    cr_assert_eq(pst_batch_count(b), 1);
    cr_assert_eq(pst_write(E, b, true), RC_TOOBIG);
    expect(NULL, "ok", NULL);
    expect(NULL, "later", NULL);
    pst_batch_clear(b);
    cr_assert_eq(pst_batch_status(b), RC_OK);
    pst_batch_free(b);
}

PST_TEST(empty_sync_write)
{
    struct pst_batch *b = pst_batch_new();
    cr_assert_eq(pst_write(E, b, true), RC_OK);
    pst_batch_free(b);
}

/* ---- iteration ---- */

PST_TEST(binary_key_order)
{
    /* memcmp order, shorter first: each pair below is adjacent in the expected order. */
    static const struct { const char *k; size_t n; } keys[] = {
        {"", 0},         {"\x00", 1},     {"\x00\x00", 2}, {"\x00\x01", 2},
        {"\x01", 1},     {"a", 1},        {"a\x00", 2},    {"a\x00\xff", 3},
        {"a\x01", 2},    {"ab", 2},       {"b", 1},        {"\x7f", 1},
        {"\x80", 1},     {"\xfe\xff", 2}, {"\xff", 1},     {"\xff\x00", 2},
        {"\xff\xff", 2}, {"\xff\xff\xff", 3},
    };
    size_t n = sizeof(keys) / sizeof(keys[0]);
    for (size_t i = 0; i < n; i++) { /* insert in a scrambled order */
        size_t j = (i * 7) % n;
        put(keys[j].k, keys[j].n, &j, sizeof(j));
    }
    struct pst_iter *it = pst_iter_new(E, NULL, "", 0, NULL, 0);
    size_t i = 0;
    for (; pst_iter_valid(it); pst_iter_next(it), i++) {
        size_t klen, vlen;
        const void *k = pst_iter_key(it, &klen);
        const void *v = pst_iter_value(it, &vlen);
        cr_assert_lt(i, n);
        cr_assert_eq(klen, keys[i].n, "position %zu", i);
        cr_assert_eq(memcmp(k, keys[i].k, klen), 0, "position %zu", i);
        cr_assert_eq(vlen, sizeof(size_t));
        cr_assert_eq(memcmp(v, &i, sizeof(i)), 0);
    }
    cr_assert_eq(i, n);
    pst_iter_seek_last(it);
    for (i = n; pst_iter_valid(it); pst_iter_prev(it)) {
        size_t klen;
        const void *k = pst_iter_key(it, &klen);
        i--;
        cr_assert_eq(klen, keys[i].n);
        cr_assert_eq(memcmp(k, keys[i].k, klen), 0, "backward position %zu", i);
    }
    cr_assert_eq(i, 0);
    cr_assert_eq(pst_iter_status(it), RC_OK);
    pst_iter_free(it);
}

PST_TEST(range_bounds)
{
    const char *ks[] = {"o", "o\xff", "p", "p\x01", "pa", "p\xff", "p\xff\xff", "q", "q\x01"};
    for (size_t i = 0; i < sizeof(ks) / sizeof(ks[0]); i++)
        puts_(ks[i], "v");
    /* A prefix scan: [p, q). */
    expect_range(NULL, "p", "q", "p|p\x01|pa|p\xff|p\xff\xff|", "p\xff\xff|p\xff|pa|p\x01|p|");
    /* hi is exclusive even when it is a key; lo inclusive. */
    expect_range(NULL, "p\x01", "p\xff", "p\x01|pa|", "pa|p\x01|");
    /* Bounds that are not keys. */
    expect_range(NULL, "n", "pb", "o|o\xff|p|p\x01|pa|", "pa|p\x01|p|o\xff|o|");
    /* Open above, and bounds past either end. */
    expect_range(NULL, "q", NULL, "q|q\x01|", "q\x01|q|");
    expect_range(NULL, "", "a", "", "");
    expect_range(NULL, "r", NULL, "", "");
    expect_range(NULL, "p", "p", "", "");          /* empty range */
    expect_range(NULL, "q", "p", "", "");          /* inverted range */
    expect_range(NULL, "", "zzz", "o|o\xff|p|p\x01|pa|p\xff|p\xff\xff|q|q\x01|",
                 "q\x01|q|p\xff\xff|p\xff|pa|p\x01|p|o\xff|o|");
}

PST_TEST(seek_and_edges)
{
    const char *ks[] = {"a", "b", "c", "d", "e"};
    for (size_t i = 0; i < 5; i++)
        puts_(ks[i], ks[i]);
    struct pst_iter *it = pst_iter_new(E, NULL, "b", 1, "e", 1);
    size_t klen, vlen;
    cr_assert(pst_iter_valid(it));
    cr_assert_eq(*(const char *)pst_iter_key(it, &klen), 'b');
    pst_iter_prev(it); /* stepping below lo ends the iteration */
    cr_assert_not(pst_iter_valid(it));
    pst_iter_next(it); /* moving an invalid iterator does nothing */
    cr_assert_not(pst_iter_valid(it));
    pst_iter_seek(it, "a", 1); /* below lo: clamps to lo */
    cr_assert(pst_iter_valid(it));
    cr_assert_eq(*(const char *)pst_iter_key(it, &klen), 'b');
    pst_iter_seek(it, "c\x00", 2); /* between keys: next one */
    cr_assert_eq(*(const char *)pst_iter_key(it, &klen), 'd');
    cr_assert_eq(*(const char *)pst_iter_value(it, &vlen), 'd');
    cr_assert_eq(vlen, 1);
    pst_iter_next(it); /* e == hi: excluded */
    cr_assert_not(pst_iter_valid(it));
    pst_iter_seek(it, "e", 1);
    cr_assert_not(pst_iter_valid(it));
    pst_iter_seek_last(it);
    cr_assert_eq(*(const char *)pst_iter_key(it, &klen), 'd');
    pst_iter_prev(it);
    cr_assert_eq(*(const char *)pst_iter_key(it, &klen), 'c');
    pst_iter_next(it); /* direction changes work in the middle */
    cr_assert_eq(*(const char *)pst_iter_key(it, &klen), 'd');
    cr_assert_eq(pst_iter_status(it), RC_OK);
    pst_iter_free(it);

    /* Unbounded above: seek_last is the last key of the store. */
    it = pst_iter_new(E, NULL, "", 0, NULL, 0);
    pst_iter_seek_last(it);
    cr_assert_eq(*(const char *)pst_iter_key(it, &klen), 'e');
    pst_iter_next(it);
    cr_assert_not(pst_iter_valid(it));
    pst_iter_free(it);

    /* hi past the last key: seek_last still finds the last key. */
    it = pst_iter_new(E, NULL, "c", 1, "zz", 2);
    pst_iter_seek_last(it);
    cr_assert_eq(*(const char *)pst_iter_key(it, &klen), 'e');
    pst_iter_free(it);
}

PST_TEST(empty_store_iteration)
{
    struct pst_iter *it = pst_iter_new(E, NULL, "", 0, NULL, 0);
    cr_assert_not(pst_iter_valid(it));
    pst_iter_seek_last(it);
    cr_assert_not(pst_iter_valid(it));
    pst_iter_seek(it, "a", 1);
    cr_assert_not(pst_iter_valid(it));
    cr_assert_eq(pst_iter_status(it), RC_OK);
    pst_iter_free(it);
}

/* ---- snapshots ---- */

PST_TEST(snapshot_isolation)
{
    puts_("a", "1");
    puts_("b", "2");
    puts_("d", "4");
    struct pst_snap *s = pst_snap_take(E);
    cr_assert_not_null(s);
    puts_("a", "9");
    dels("b");
    puts_("c", "3");
    struct pst_batch *bt = pst_batch_new();
    pst_batch_del(bt, "d", 1);
    pst_batch_put(bt, "d", 1, "44", 2);
    cr_assert_eq(pst_write(E, bt, false), RC_OK);
    pst_batch_free(bt);
    struct pst_snap *s2 = pst_snap_take(E);
    dels("a");

    expect(s, "a", "1");
    expect(s, "b", "2");
    expect(s, "c", NULL);
    expect(s, "d", "4");
    expect_range(s, "", NULL, "a|b|d|", "d|b|a|");
    expect(s2, "a", "9");
    expect(s2, "b", NULL);
    expect_range(s2, "", NULL, "a|c|d|", "d|c|a|");
    expect(NULL, "a", NULL);
    expect_range(NULL, "", NULL, "c|d|", "d|c|");

    /* Values through a snapshot iterator are the old ones. */
    struct pst_iter *it = pst_iter_new(E, s, "a", 1, "b", 1);
    size_t vlen;
    cr_assert_eq(*(const char *)pst_iter_value(it, &vlen), '1');
    pst_iter_free(it);

    /* Releasing the older snapshot keeps the newer one intact. */
    pst_snap_release(E, s);
    for (int i = 0; i < 50; i++)
        puts_("c", i % 2 ? "x" : "y");
    expect(s2, "a", "9");
    expect(s2, "c", "3");
    expect_range(s2, "", NULL, "a|c|d|", "d|c|a|");
    pst_snap_release(E, s2);
    expect(NULL, "c", "x");
}

PST_TEST(iterator_is_a_snapshot)
{
    puts_("a", "1");
    puts_("b", "2");
    struct pst_iter *it = pst_iter_new(E, NULL, "", 0, NULL, 0);
    dels("b");
    puts_("c", "3");
    puts_("a", "changed");
    size_t vlen;
    char got[64];
    cr_assert_eq(memcmp(pst_iter_value(it, &vlen), "1", 1), 0);
    walk(it, false, got, sizeof(got));
    cr_assert_str_eq(got, "a|b|");
    pst_iter_seek_last(it);
    walk(it, true, got, sizeof(got));
    cr_assert_str_eq(got, "b|a|");
    pst_iter_free(it);
}

/* ---- delete_range and sizes ---- */

static void key16(char out[2], unsigned i)
{
    out[0] = (char)(i >> 8);
    out[1] = (char)(i & 0xff);
}

static unsigned count_all(void)
{
    struct pst_iter *it = pst_iter_new(E, NULL, "", 0, NULL, 0);
    unsigned n = 0;
    for (; pst_iter_valid(it); pst_iter_next(it))
        n++;
    pst_iter_free(it);
    return n;
}

PST_TEST(delete_range)
{
    char k[2], lo[2], hi[2];
    for (unsigned i = 0; i < 3000; i++) {
        key16(k, i);
        put(k, 2, "v", 1);
    }
    key16(lo, 10);
    key16(hi, 20);
    cr_assert_eq(pst_delete_range(E, lo, 2, hi, 2, false), RC_OK);
    void *v;
    size_t vlen;
    for (unsigned i = 0; i < 30; i++) {
        key16(k, i);
        int rc = pst_get(E, NULL, k, 2, &v, &vlen);
        cr_assert_eq(rc, (i >= 10 && i < 20) ? RC_NOTFOUND : RC_OK, "key %u", i);
        if (rc == RC_OK)
            free(v);
    }
    cr_assert_eq(count_all(), 2990);
    /* More keys than one internal chunk, open-ended. */
    key16(lo, 100);
    cr_assert_eq(pst_delete_range(E, lo, 2, NULL, 0, true), RC_OK);
    cr_assert_eq(count_all(), 90);
    key16(k, 99);
    cr_assert_eq(pst_get(E, NULL, k, 2, &v, &vlen), RC_OK);
    free(v);
    /* An empty range deletes nothing. */
    cr_assert_eq(pst_delete_range(E, "zz", 2, "zz", 2, false), RC_OK);
    cr_assert_eq(count_all(), 90);
}

PST_TEST(approx_size)
{
    cr_assert_eq(pst_approx_size(E, "", 0, NULL, 0), 0);
    static char val[1000];
    memset(val, 'x', sizeof(val));
    char k[2];
    for (unsigned i = 0; i < 4000; i++) {
        key16(k, i);
        val[0] = (char)i; /* not all alike, so compression cannot hide them */
        for (size_t j = 1; j < sizeof(val); j++)
            val[j] = (char)((i * 131 + j * 7) ^ (j >> 3));
        put(k, 2, val, sizeof(val));
    }
    pst_compact_range(E, NULL, 0, NULL, 0); /* LevelDB: sizes come from table files */
    char mid[2];
    key16(mid, 2000);
    uint64_t all = pst_approx_size(E, "", 0, NULL, 0);
    uint64_t half = pst_approx_size(E, "", 0, mid, 2);
    uint64_t none = pst_approx_size(E, mid, 2, mid, 2);
    cr_assert_gt(all, 1000000, "%s: 4 MB stored, %llu reported", pst_engine_name(E),
                 (unsigned long long)all);
    cr_assert_geq(all, half);
    cr_assert_gt(half, 0);
    cr_assert_eq(none, 0);
    if (!is_ldb) {
        cr_assert_eq(all, 4000u * (2 + 1000));
        cr_assert_eq(half, 2000u * (2 + 1000));
    }
}

/* ---- randomized model test ---- */

#define MKEY 4
#define MVAL 8
#define MSNAPS 3

struct mkv {
    unsigned char k[MKEY];
    unsigned char v[MVAL];
    uint8_t klen, vlen;
};
struct model {
    struct mkv *kv;
    size_t n;
};

static uint64_t rng_state;
static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

static const unsigned char alphabet[] = {0x00, 0x01, 'a', 0x7f, 0x80, 0xff};

static uint8_t rnd_key(unsigned char *k)
{
    uint8_t n = (uint8_t)rnd(MKEY);
    for (uint8_t i = 0; i < n; i++)
        k[i] = alphabet[rnd(sizeof(alphabet))];
    return n;
}

static size_t model_lower(const struct model *m, const void *k, size_t klen)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const struct mkv *e = &m->kv[mid];
        size_t n = e->klen < klen ? e->klen : klen;
        int c = n ? memcmp(e->k, k, n) : 0;
        if (c < 0 || (c == 0 && e->klen < klen))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static bool model_has(const struct model *m, size_t i, const void *k, size_t klen)
{
    return i < m->n && m->kv[i].klen == klen && (klen == 0 || !memcmp(m->kv[i].k, k, klen));
}

static void model_put(struct model *m, const unsigned char *k, uint8_t klen,
                      const unsigned char *v, uint8_t vlen)
{
    size_t i = model_lower(m, k, klen);
    if (!model_has(m, i, k, klen)) {
        m->kv = realloc(m->kv, (m->n + 1) * sizeof(*m->kv));
        memmove(&m->kv[i + 1], &m->kv[i], (m->n - i) * sizeof(*m->kv));
        m->n++;
        memcpy(m->kv[i].k, k, klen);
        m->kv[i].klen = klen;
    }
    memcpy(m->kv[i].v, v, vlen);
    m->kv[i].vlen = vlen;
}

static void model_del(struct model *m, const void *k, size_t klen)
{
    size_t i = model_lower(m, k, klen);
    if (model_has(m, i, k, klen)) {
        memmove(&m->kv[i], &m->kv[i + 1], (m->n - i - 1) * sizeof(*m->kv));
        m->n--;
    }
}

static void model_copy(struct model *dst, const struct model *src)
{
    dst->n = src->n;
    dst->kv = malloc((src->n + 1) * sizeof(*src->kv));
    memcpy(dst->kv, src->kv, src->n * sizeof(*src->kv));
}

struct mrun {
    uint64_t seed;
    int step;
    struct model cur;
    struct model snapm[MSNAPS];
    struct pst_snap *snap[MSNAPS];
};

static void check_entry(const struct mrun *r, const struct pst_iter *it, const struct mkv *e)
{
    size_t klen, vlen;
    const void *k = pst_iter_key(it, &klen);
    const void *v = pst_iter_value(it, &vlen);
    cr_assert(klen == e->klen && (!klen || !memcmp(k, e->k, klen)),
              "seed %llu step %d: iterator key differs", (unsigned long long)r->seed, r->step);
    cr_assert(vlen == e->vlen && (!vlen || !memcmp(v, e->v, vlen)),
              "seed %llu step %d: iterator value differs", (unsigned long long)r->seed,
              r->step);
}

/* Compare a whole random range, forward and backward, plus one random seek. */
static void check_range(struct mrun *r, const struct model *m, const struct pst_snap *snap)
{
    unsigned char lo[MKEY], hi[MKEY];
    uint8_t lolen = rnd_key(lo), hilen = rnd_key(hi);
    bool open = rnd(4) == 0;
    struct pst_iter *it = pst_iter_new(E, snap, lo, lolen, open ? NULL : hi, hilen);
    size_t a = model_lower(m, lo, lolen), b = open ? m->n : model_lower(m, hi, hilen);
    if (b < a)
        b = a;
    for (size_t i = a; i < b; i++, pst_iter_next(it)) {
        cr_assert(pst_iter_valid(it), "seed %llu step %d: iterator ended early at %zu of %zu",
                  (unsigned long long)r->seed, r->step, i - a, b - a);
        check_entry(r, it, &m->kv[i]);
    }
    cr_assert_not(pst_iter_valid(it), "seed %llu step %d: extra keys",
                  (unsigned long long)r->seed, r->step);
    pst_iter_seek_last(it);
    for (size_t i = b; i > a; i--, pst_iter_prev(it)) {
        cr_assert(pst_iter_valid(it), "seed %llu step %d: reverse ended early",
                  (unsigned long long)r->seed, r->step);
        check_entry(r, it, &m->kv[i - 1]);
    }
    cr_assert_not(pst_iter_valid(it), "seed %llu step %d: extra keys in reverse",
                  (unsigned long long)r->seed, r->step);
    unsigned char sk[MKEY];
    uint8_t sklen = rnd_key(sk);
    pst_iter_seek(it, sk, sklen);
    size_t s = model_lower(m, sk, sklen);
    if (s < a)
        s = a;
    if (s < b)
        check_entry(r, it, &m->kv[s]);
    else
        cr_assert_not(pst_iter_valid(it));
    cr_assert_eq(pst_iter_status(it), RC_OK);
    pst_iter_free(it);
}

static void check_get(struct mrun *r, const struct model *m, const struct pst_snap *snap)
{
    unsigned char k[MKEY];
    uint8_t klen = rnd_key(k);
    size_t i = model_lower(m, k, klen);
    void *v = NULL;
    size_t vlen = 0;
    int rc = pst_get(E, snap, k, klen, &v, &vlen);
    if (!model_has(m, i, k, klen)) {
        cr_assert_eq(rc, RC_NOTFOUND, "seed %llu step %d: get found a deleted key",
                     (unsigned long long)r->seed, r->step);
        return;
    }
    cr_assert_eq(rc, RC_OK, "seed %llu step %d: get lost a key", (unsigned long long)r->seed,
                 r->step);
    cr_assert(vlen == m->kv[i].vlen && (!vlen || !memcmp(v, m->kv[i].v, vlen)),
              "seed %llu step %d: get value differs", (unsigned long long)r->seed, r->step);
    free(v);
}

static void random_batch(struct mrun *r)
{
    struct pst_batch *b = pst_batch_new();
    unsigned n = 1 + rnd(5);
    for (unsigned i = 0; i < n; i++) {
        unsigned char k[MKEY], v[MVAL];
        uint8_t klen = rnd_key(k), vlen = (uint8_t)rnd(MVAL + 1);
        for (uint8_t j = 0; j < vlen; j++)
            v[j] = (unsigned char)rnd(256);
        if (rnd(3) == 0) {
            pst_batch_del(b, k, klen);
            model_del(&r->cur, k, klen);
        } else {
            pst_batch_put(b, k, klen, v, vlen);
            model_put(&r->cur, k, klen, v, vlen);
        }
    }
    cr_assert_eq(pst_write(E, b, rnd(50) == 0), RC_OK);
    pst_batch_free(b);
}

static void random_delete_range(struct mrun *r)
{
    unsigned char lo[MKEY], hi[MKEY];
    uint8_t lolen = rnd_key(lo), hilen = rnd_key(hi);
    cr_assert_eq(pst_delete_range(E, lo, lolen, hi, hilen, false), RC_OK);
    size_t a = model_lower(&r->cur, lo, lolen), b = model_lower(&r->cur, hi, hilen);
    if (b > a) {
        memmove(&r->cur.kv[a], &r->cur.kv[b], (r->cur.n - b) * sizeof(struct mkv));
        r->cur.n -= b - a;
    }
}

static void model_step(struct mrun *r)
{
    unsigned op = rnd(100);
    unsigned si = rnd(MSNAPS);
    bool use_snap = r->snap[si] && rnd(2);
    const struct model *m = use_snap ? &r->snapm[si] : &r->cur;
    const struct pst_snap *snap = use_snap ? r->snap[si] : NULL;
    if (op < 45) {
        random_batch(r);
    } else if (op < 65) {
        check_get(r, m, snap);
    } else if (op < 80) {
        check_range(r, m, snap);
    } else if (op < 86) {
        if (!r->snap[si]) {
            r->snap[si] = pst_snap_take(E);
            model_copy(&r->snapm[si], &r->cur);
        }
    } else if (op < 92) {
        if (r->snap[si]) {
            pst_snap_release(E, r->snap[si]);
            r->snap[si] = NULL;
            free(r->snapm[si].kv);
        }
    } else if (op < 95) {
        random_delete_range(r);
    } else {
        /* An iterator held across writes reads the state of its creation. */
        struct model frozen;
        model_copy(&frozen, &r->cur);
        struct pst_iter *it = pst_iter_new(E, NULL, "", 0, NULL, 0);
        random_batch(r);
        random_batch(r);
        for (size_t i = 0; i < frozen.n; i++, pst_iter_next(it))
            check_entry(r, it, &frozen.kv[i]);
        cr_assert_not(pst_iter_valid(it));
        pst_iter_free(it);
        free(frozen.kv);
    }
}

static void model_run(uint64_t seed, int steps)
{
    struct mrun r = {.seed = seed};
    rng_state = seed;
    for (r.step = 0; r.step < steps; r.step++)
        model_step(&r);
    /* Final full comparison. */
    struct pst_iter *it = pst_iter_new(E, NULL, "", 0, NULL, 0);
    for (size_t i = 0; i < r.cur.n; i++, pst_iter_next(it)) {
        cr_assert(pst_iter_valid(it), "seed %llu: final scan short", (unsigned long long)seed);
        check_entry(&r, it, &r.cur.kv[i]);
    }
    cr_assert_not(pst_iter_valid(it));
    pst_iter_free(it);
    for (int i = 0; i < MSNAPS; i++) {
        if (r.snap[i]) {
            pst_snap_release(E, r.snap[i]);
            free(r.snapm[i].kv);
        }
    }
    free(r.cur.kv);
}

PST_TEST(randomized_against_model)
{
    static const uint64_t seeds[] = {1, 0x5eed, 0xdeadbeef, 42424242};
    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        model_run(seeds[i], 3000);
        cr_assert_eq(pst_delete_range(E, "", 0, NULL, 0, false), RC_OK);
        cr_assert_eq(count_all(), 0);
    }
}

/* ---- LevelDB only: persistence and corruption ---- */

Test(leveldb, reopen_keeps_synced_data, .init = setup_ldb, .fini = teardown)
{
    struct pst_batch *b = pst_batch_new();
    pst_batch_put(b, "durable", 7, "yes", 3);
    pst_batch_put(b, "gone", 4, "no", 2);
    cr_assert_eq(pst_write(E, b, true), RC_OK);
    pst_batch_clear(b);
    pst_batch_del(b, "gone", 4);
    cr_assert_eq(pst_write(E, b, true), RC_OK);
    pst_batch_free(b);
    pst_close(E);
    E = NULL;
    open_ldb();
    expect(NULL, "durable", "yes");
    expect(NULL, "gone", NULL);
}

Test(leveldb, open_errors, .init = setup_ldb, .fini = teardown)
{
    /* The directory is locked by the open engine: a second open fails with a message. */
    struct pst_engine *e2 = NULL;
    char *err = NULL;
    cr_assert_eq(pst_open_leveldb(tmpdir, NULL, &e2, &err), RC_IO);
    cr_assert_null(e2);
    cr_assert_not_null(err);
    cr_assert_gt(strlen(err), 0);
    free(err);
    struct pst_options o;
    pst_options_default(&o);
    cr_assert(o.create_if_missing);
    o.create_if_missing = false;
    char missing[128];
    snprintf(missing, sizeof(missing), "%s/nope", tmpdir);
    cr_assert_neq(pst_open_leveldb(missing, &o, &e2, NULL), RC_OK);
    cr_assert_null(e2);
}

/* Overwrite the middle of every table file with garbage. */
static int smash_tables(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)ftw;
    size_t n = strlen(path);
    if (flag != FTW_F || n < 4 || strcmp(path + n - 4, ".ldb") != 0)
        return 0;
    int fd = open(path, O_WRONLY);
    cr_assert_geq(fd, 0);
    static const char junk[256] = "garbage garbage garbage";
    cr_assert_eq(pwrite(fd, junk, sizeof(junk), st->st_size / 4), (ssize_t)sizeof(junk));
    close(fd);
    return 0;
}

Test(leveldb, corruption_is_an_error_code, .init = setup_ldb, .fini = teardown)
{
    static char val[4096];
    char k[2];
    for (unsigned i = 0; i < 500; i++) {
        key16(k, i);
        memset(val, (int)i, sizeof(val));
        put(k, 2, val, sizeof(val));
    }
    pst_compact_range(E, NULL, 0, NULL, 0);
    pst_close(E);
    E = NULL;
    cr_assert_eq(nftw(tmpdir, smash_tables, 16, FTW_PHYS), 0);
    open_ldb();
    int bad = 0;
    for (unsigned i = 0; i < 500; i++) {
        void *v;
        size_t vlen;
        key16(k, i);
        int rc = pst_get(E, NULL, k, 2, &v, &vlen);
        if (rc == RC_OK) {
            free(v);
            continue;
        }
        bad++;
        cr_assert_eq(rc, RC_CORRUPT, "key %u: rc %d", i, rc);
    }
    cr_assert_gt(bad, 0, "the smashed block should fail its checksum");
    cr_assert_gt(strlen(pst_last_error(E)), 0);
    struct pst_iter *it = pst_iter_new(E, NULL, "", 0, NULL, 0);
    while (pst_iter_valid(it))
        pst_iter_next(it);
    cr_assert_eq(pst_iter_status(it), RC_CORRUPT);
    pst_iter_free(it);
}

/* ---- the row cache: gathered unsynced writes and durability ---- */

/* A synced write makes every earlier (gathered) write durable, in one consistent state;
 * writes after it are not durable until the next synced one, as with any engine. */
Test(cached, sync_write_makes_gathered_writes_durable)
{
    struct pst_engine *inner = NULL, *c = NULL;
    cr_assert_eq(pst_open_mem(&inner), RC_OK);
    pst_mem_set_crash_model(inner, true);
    cr_assert_eq(pst_cache_wrap(inner, 1 << 20, &c), RC_OK);
    struct pst_batch *b = pst_batch_new();
    pst_batch_put(b, "a", 1, "1", 1);
    pst_batch_put(b, "gone", 4, "x", 1);
    cr_assert_eq(pst_write(c, b, false), RC_OK);
    pst_batch_clear(b);
    pst_batch_del(b, "gone", 4);
    pst_batch_put(b, "a", 1, "2", 1);
    cr_assert_eq(pst_write(c, b, false), RC_OK);
    void *v = NULL;
    size_t vlen = 0;
    cr_assert_eq(pst_get(c, NULL, "a", 1, &v, &vlen), RC_OK); /* reads see gathered state */
    cr_assert(vlen == 1 && ((char *)v)[0] == '2');
    free(v);
    pst_batch_clear(b);
    pst_batch_put(b, "s", 1, "y", 1);
    cr_assert_eq(pst_write(c, b, true), RC_OK);
    pst_batch_clear(b);
    pst_batch_put(b, "late", 4, "z", 1);
    cr_assert_eq(pst_write(c, b, false), RC_OK);
    pst_batch_free(b);
    pst_mem_crash(inner); /* power loss: only what the synced write covered survives */
    cr_assert_eq(pst_get(inner, NULL, "a", 1, &v, &vlen), RC_OK);
    cr_assert(vlen == 1 && ((char *)v)[0] == '2', "the gathered final value is durable");
    free(v);
    cr_assert_eq(pst_get(inner, NULL, "gone", 4, &v, &vlen), RC_NOTFOUND);
    cr_assert_eq(pst_get(inner, NULL, "s", 1, &v, &vlen), RC_OK);
    free(v);
    cr_assert_eq(pst_get(inner, NULL, "late", 4, &v, &vlen), RC_NOTFOUND);
    pst_close(c);
}

/* ---- mem only: crash model, determinism, scale ---- */

Test(mem, crash_loses_unsynced_writes, .init = setup_mem, .fini = teardown)
{
    puts_("before", "kept"); /* written before the model is on: counts as durable */
    pst_mem_set_crash_model(E, true);
    puts_("lost", "1");
    struct pst_batch *b = pst_batch_new();
    pst_batch_put(b, "synced", 6, "1", 1);
    cr_assert_eq(pst_write(E, b, true), RC_OK);
    puts_("synced", "overwritten-unsynced");
    dels("before");
    puts_("lost2", "1");
    struct pst_snap *s = pst_snap_take(E);
    expect(s, "lost2", "1");
    pst_snap_release(E, s);
    pst_mem_crash(E);
    expect(NULL, "before", "kept");
    expect(NULL, "lost", "1"); /* the sync write made every earlier write durable */
    expect(NULL, "synced", "1");
    expect(NULL, "lost2", NULL);
    expect_range(NULL, "", NULL, "before|lost|synced|", "synced|lost|before|");
    /* After the crash the engine keeps working. */
    pst_batch_clear(b);
    pst_batch_del(b, "lost", 4);
    cr_assert_eq(pst_write(E, b, true), RC_OK);
    puts_("x", "y");
    pst_mem_crash(E);
    expect_range(NULL, "", NULL, "before|synced|", "synced|before|");
    pst_batch_free(b);
}

Test(mem, many_keys_and_overwrites, .init = setup_mem, .fini = teardown)
{
    char k[8];
    struct pst_batch *b = pst_batch_new();
    for (unsigned round = 0; round < 3; round++) {
        struct pst_snap *s = round == 1 ? pst_snap_take(E) : NULL;
        for (unsigned i = 0; i < 100000; i++) {
            int n = snprintf(k, sizeof(k), "%07u", (i * 7919u) % 100000u);
            pst_batch_put(b, k, (size_t)n, &round, sizeof(round));
            if (pst_batch_count(b) == 100) {
                cr_assert_eq(pst_write(E, b, false), RC_OK);
                pst_batch_clear(b);
            }
        }
        if (s) {
            void *v;
            size_t vlen;
            cr_assert_eq(pst_get(E, s, "0004242", 7, &v, &vlen), RC_OK);
            cr_assert_eq(*(unsigned *)v, 0u, "the snapshot still sees round 0");
            free(v);
            pst_snap_release(E, s);
        }
    }
    pst_batch_free(b);
    cr_assert_eq(count_all(), 100000);
    cr_assert_eq(pst_approx_size(E, "", 0, NULL, 0), 100000u * (7 + sizeof(unsigned)));
}
