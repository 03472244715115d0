/*
 * test_ns_history.c - per-key version history of the state machine (src/ns/ns_history.c):
 * reads as of every revision against an in-test model (sets, deletes, re-creations,
 * MSET, FLUSHALL, refused writes), retention and -COMPACTED, the listing and its paging,
 * keys that extend other keys (binary, with 0x00 bytes), restart on LevelDB, determinism
 * (same entries, two engines, identical bytes, with pruning), corrupt history records, and
 * stores written before history existed.
 */
#include <criterion/criterion.h>
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ns/ns.h"
#include "ns/ns_internal.h"
#include "persist/pst.h"
#include "rc.h"

/* ------------------------------------------------------------------ fixture */

struct fx {
    struct pst_engine *e;
    struct ns *n;
    uint64_t index;
    char dir[64]; /* LevelDB directory, "" for the mem engine */
};
static struct fx F;

static void open_ns(uint64_t max_versions)
{
    struct ns_limits lim;
    ns_limits_default(&lim);
    lim.history_max_versions = max_versions;
    ns_close(F.n);
    F.n = NULL;
    cr_assert_eq(ns_open(F.e, 3, &lim, &F.n), RC_OK);
}

static void setup_mem(void)
{
    memset(&F, 0, sizeof(F));
    cr_assert_eq(pst_open_mem(&F.e), RC_OK);
    open_ns(100);
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static struct pst_engine *open_ldb_at(const char *dir)
{
    struct pst_options o;
    pst_options_default(&o);
    struct pst_engine *e = NULL;
    char *err = NULL;
    cr_assert_eq(pst_open_leveldb(dir, &o, &e, &err), RC_OK, "leveldb: %s", err ? err : "?");
    free(err);
    return e;
}

static void setup_ldb(void)
{
    memset(&F, 0, sizeof(F));
    strcpy(F.dir, "/tmp/test_nsh.XXXXXX");
    cr_assert_not_null(mkdtemp(F.dir));
    F.e = open_ldb_at(F.dir);
    open_ns(100);
}

static void teardown(void)
{
    ns_close(F.n);
    if (F.e)
        pst_close(F.e);
    if (F.dir[0])
        nftw(F.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    memset(&F, 0, sizeof(F));
}

/* Apply argv (binary, explicit lengths) to n at index with time index*10, actor "bob". */
static int apply_bin(struct ns *n, uint64_t index, int argc, const char **argv,
                     const size_t *lens, struct ns_reply *out)
{
    struct ns_meta m = {index, 1, index * 10, index, "bob", "127.0.0.1:1"};
    memset(out, 0, sizeof(*out));
    return ns_apply(n, &m, argc, (char **)argv, (size_t *)lens, out);
}

/* Apply a text command (NULL-terminated words) to F as the next entry. */
static void ap_(const char *const *w)
{
    const char *argv[32];
    size_t lens[32];
    int argc = 0;
    for (; w[argc]; argc++) {
        argv[argc] = w[argc];
        lens[argc] = strlen(w[argc]);
    }
    struct ns_reply r;
    F.index++;
    cr_assert_eq(apply_bin(F.n, F.index, argc, argv, lens, &r), RC_OK);
    ns_reply_clear(&r);
}
#define AP(...) ap_((const char *const[]){__VA_ARGS__, NULL})

/* CFG.GET key REV r as text: "value", "nil", "compacted:<oldest>" or "rc:<code>". */
static char *get_at(const void *key, size_t klen, uint64_t rev)
{
    static char buf[256];
    struct ns_kv kv;
    uint64_t oldest = 0;
    int rc = ns_get_at(F.n, key, klen, rev, &kv, &oldest);
    if (rc == RC_OK) {
        snprintf(buf, sizeof buf, "%.*s", (int)kv.vlen, kv.value);
        ns_kv_clear(&kv);
    } else if (rc == RC_NOTFOUND) {
        snprintf(buf, sizeof buf, "nil");
    } else if (rc == RC_COMPACTED) {
        snprintf(buf, sizeof buf, "compacted:%llu", (unsigned long long)oldest);
    } else {
        snprintf(buf, sizeof buf, "rc:%d", rc);
    }
    return buf;
}
#define GET_AT(k, r) get_at((k), strlen(k), (r))

struct hlist {
    int n;
    uint64_t rev[64], version[64], create[64];
    bool del[64];
    char val[64][32];
    char actor[64][8];
};

static bool collect(void *ud, const struct ns_version *v)
{
    struct hlist *h = ud;
    cr_assert_lt(h->n, 64);
    h->rev[h->n] = v->revision;
    h->version[h->n] = v->version;
    h->create[h->n] = v->create_rev;
    h->del[h->n] = v->deleted;
    cr_assert(v->deleted == (v->value == NULL));
    snprintf(h->val[h->n], 32, "%.*s", (int)v->vlen, v->value ? v->value : "");
    snprintf(h->actor[h->n], 8, "%.*s", (int)v->actor_len, v->actor);
    h->n++;
    return true;
}

static struct hlist history(const void *key, size_t klen, uint64_t before, size_t limit)
{
    struct hlist h;
    memset(&h, 0, sizeof h);
    cr_assert_eq(ns_history(F.n, key, klen, before, limit, collect, &h), RC_OK);
    return h;
}

TestSuite(hist, .init = setup_mem, .fini = teardown);

/* ------------------------------------------------------------------ examples */

Test(hist, reads_as_of_each_revision_through_delete_and_recreate)
{
    AP("CFG.SET", "/k", "a");  /* rev 1 */
    AP("SET", "/other", "x");  /* rev 2 */
    AP("SET", "/k", "b");      /* rev 3 */
    AP("DEL", "/k");           /* rev 4 */
    AP("DEL", "/k");           /* nothing: no revision */
    AP("MSET", "/k", "c", "/other", "y"); /* rev 5 */
    cr_assert_eq(ns_revision(F.n), 5);
    const char *want[] = {"nil", "a", "a", "b", "nil", "c"};
    for (uint64_t r = 0; r <= 5; r++)
        cr_assert_str_eq(GET_AT("/k", r), want[r], "rev %llu", (unsigned long long)r);
    cr_assert_str_eq(GET_AT("/never", 5), "nil");
    cr_assert_str_eq(GET_AT("/k", 6), "rc:5", "a future revision is a caller error");
    struct ns_kv kv;
    uint64_t oldest = 0;
    cr_assert_eq(ns_get_at(F.n, "/k", 2, 5, &kv, &oldest), RC_OK);
    cr_assert_eq(kv.version, 1, "re-created key starts at version 1");
    cr_assert_eq(kv.create_rev, 5);
    cr_assert_eq(kv.mod_rev, 5);
    cr_assert_eq(kv.mtime_ms, 60, "time of entry 6");
    ns_kv_clear(&kv);
    cr_assert_eq(ns_get_at(F.n, "/k", 2, 3, &kv, &oldest), RC_OK);
    cr_assert_eq(kv.version, 2);
    cr_assert_eq(kv.create_rev, 1);
    cr_assert_eq(kv.mod_rev, 3);
    ns_kv_clear(&kv);
}

Test(hist, listing_is_newest_first_with_tombstones_and_pages)
{
    AP("SET", "/k", "a");
    AP("SET", "/k", "b");
    AP("CFG.DEL", "/k");
    AP("SET", "/k", "c");
    struct hlist h = history("/k", 2, 0, 0);
    cr_assert_eq(h.n, 4);
    uint64_t revs[] = {4, 3, 2, 1}, vers[] = {1, 0, 2, 1}, creates[] = {4, 1, 1, 1};
    const char *vals[] = {"c", "", "b", "a"};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(h.rev[i], revs[i], "item %d", i);
        cr_assert_eq(h.version[i], vers[i], "item %d", i);
        cr_assert_eq(h.create[i], creates[i], "item %d", i);
        cr_assert_eq(h.del[i], i == 1, "item %d", i);
        cr_assert_str_eq(h.val[i], vals[i]);
        cr_assert_str_eq(h.actor[i], "bob");
    }
    h = history("/k", 2, 0, 2); /* first page */
    cr_assert_eq(h.n, 2);
    cr_assert_eq(h.rev[1], 3);
    h = history("/k", 2, 3, 2); /* BEFORE the last revision seen */
    cr_assert_eq(h.n, 2);
    cr_assert_eq(h.rev[0], 2);
    cr_assert_eq(h.rev[1], 1);
    cr_assert_eq(history("/k", 2, 1, 0).n, 0);
    cr_assert_eq(history("/none", 5, 0, 0).n, 0);
}

Test(hist, keys_no_write_could_have_made_have_no_history)
{
    AP("SET", "/k", "a");
    static char big[5000];
    memset(big, 'k', sizeof big);
    cr_assert_str_eq(get_at(big, sizeof big, 1), "nil");
    cr_assert_str_eq(get_at("", 0, 1), "nil");
    cr_assert_eq(history(big, sizeof big, 0, 0).n, 0);
    cr_assert_eq(history("", 0, 0, 0).n, 0);
}

Test(hist, refused_writes_leave_no_history)
{
    AP("CFG.SET", "/k", "a");
    AP("CFG.SET", "/k", "b", "IFVERSION", "7"); /* -VERSION */
    AP("SET", "/k", "b", "NX");                 /* not met */
    AP("CFG.DEL", "/k", "IFVERSION", "3");      /* -VERSION */
    cr_assert_eq(ns_revision(F.n), 1);
    cr_assert_eq(history("/k", 2, 0, 0).n, 1);
}

Test(hist, flushall_writes_a_tombstone_for_every_key)
{
    AP("MSET", "/a", "1", "/b", "2");
    AP("FLUSHALL");
    cr_assert_str_eq(GET_AT("/a", 1), "1");
    cr_assert_str_eq(GET_AT("/a", 2), "nil");
    cr_assert_str_eq(GET_AT("/b", 2), "nil");
    struct hlist h = history("/b", 2, 0, 0);
    cr_assert_eq(h.n, 2);
    cr_assert(h.del[0]);
    cr_assert_eq(h.rev[0], 2);
}

Test(hist, keys_that_extend_each_other_keep_separate_histories)
{
    /* "a", "a\0", "a\0b", "ab": the escaped layout keeps each key's versions apart. */
    static const char *keys[] = {"a", "a\0", "a\0b", "ab", "a\0\xff"};
    static const size_t lens[] = {1, 2, 3, 2, 3};
    for (int round = 0; round < 3; round++) {
        for (int k = 0; k < 5; k++) {
            char val[32];
            snprintf(val, sizeof val, "%d.%d", k, round);
            const char *argv[] = {"SET", keys[k], val};
            size_t alen[] = {3, lens[k], strlen(val)};
            struct ns_reply r;
            F.index++;
            cr_assert_eq(apply_bin(F.n, F.index, 3, argv, alen, &r), RC_OK);
            ns_reply_clear(&r);
        }
    }
    for (int k = 0; k < 5; k++) {
        struct hlist h = history(keys[k], lens[k], 0, 0);
        cr_assert_eq(h.n, 3, "key %d has exactly its own versions", k);
        for (int i = 0; i < 3; i++) {
            char want[32];
            snprintf(want, sizeof want, "%d.%d", k, 2 - i);
            cr_assert_str_eq(h.val[i], want);
            cr_assert_eq(h.rev[i], (uint64_t)(5 * (2 - i) + k + 1));
        }
        cr_assert_str_eq(get_at(keys[k], lens[k], 6 + (uint64_t)k), h.val[1]);
    }
}

/* ------------------------------------------------------------------ retention */

Test(hist, retention_prunes_oldest_and_reads_below_are_compacted)
{
    open_ns(3);
    AP("SET", "/quiet", "q"); /* rev 1, never pruned */
    for (int i = 1; i <= 6; i++) {
        char v[16];
        snprintf(v, sizeof v, "v%d", i);
        AP("SET", "/k", v); /* revs 2..7 */
    }
    struct hlist h = history("/k", 2, 0, 0);
    cr_assert_eq(h.n, 3, "only the newest 3 versions are kept");
    cr_assert_eq(h.rev[2], 5);
    cr_assert_str_eq(GET_AT("/k", 1), "compacted:5", "before creation, but history is gone");
    cr_assert_str_eq(GET_AT("/k", 4), "compacted:5");
    cr_assert_str_eq(GET_AT("/k", 5), "v4");
    cr_assert_str_eq(GET_AT("/k", 7), "v6");
    cr_assert_str_eq(GET_AT("/quiet", 0), "nil");
    cr_assert_str_eq(GET_AT("/quiet", 7), "q");
    cr_assert_eq(ns_compact_revision(F.n), 5);
    /* A deletion counts as a version; re-creation continues the same history. */
    AP("DEL", "/k");          /* rev 8 */
    AP("SET", "/k", "new");   /* rev 9 */
    h = history("/k", 2, 0, 0);
    cr_assert_eq(h.n, 3);
    cr_assert_eq(h.rev[0], 9);
    cr_assert(h.del[1]);
    cr_assert_eq(h.rev[2], 7);
    cr_assert_str_eq(GET_AT("/k", 6), "compacted:7");
    cr_assert_str_eq(GET_AT("/k", 8), "nil");
    cr_assert_eq(ns_compact_revision(F.n), 7);
}

Test(hist, keeping_one_version_answers_only_the_newest)
{
    open_ns(1);
    AP("SET", "/k", "a");
    AP("SET", "/k", "b");
    cr_assert_str_eq(GET_AT("/k", 1), "compacted:2");
    cr_assert_str_eq(GET_AT("/k", 2), "b");
    AP("DEL", "/k");
    cr_assert_str_eq(GET_AT("/k", 2), "compacted:3");
    cr_assert_str_eq(GET_AT("/k", 3), "nil");
    cr_assert_eq(history("/k", 2, 0, 0).n, 1);
}

Test(hist, lowered_retention_catches_up_in_bounded_steps)
{
    for (int i = 0; i < 100; i++)
        AP("SET", "/k", "v");
    open_ns(2); /* restart with a smaller limit */
    AP("SET", "/k", "w"); /* 101 versions: prunes at most NS_HIST_PRUNE_MAX */
    cr_assert_eq(history("/k", 2, 0, 0).n, 101 - NS_HIST_PRUNE_MAX);
    AP("SET", "/k", "x");
    cr_assert_eq(history("/k", 2, 0, 0).n, 2);
    cr_assert_str_eq(GET_AT("/k", 100), "compacted:101");
    cr_assert_str_eq(GET_AT("/k", 101), "w");
}

/* ------------------------------------------------------------------ model */

#define MKEYS 4
#define MREVS 400
static const char *const MKEY[MKEYS] = {"/a", "/a/b", "/b", "z"};

struct mver {
    uint64_t rev;
    bool del;
    char val[16];
};
struct model {
    struct mver v[MKEYS][MREVS];
    int nv[MKEYS];
    bool exists[MKEYS];
    uint64_t version[MKEYS];
    uint64_t rev;
};

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* One random command; applies it to the model; returns argc (words in w, bufs in buf). */
static int gen(uint64_t *rng, struct model *m, const char **w, char buf[4][16])
{
    int k = (int)(rnd(rng) % MKEYS), k2 = (int)(rnd(rng) % MKEYS);
    snprintf(buf[0], 16, "v%llu", (unsigned long long)(rnd(rng) % 1000));
    snprintf(buf[1], 16, "w%llu", (unsigned long long)(rnd(rng) % 1000));
    int op = (int)(rnd(rng) % 10), argc;
    bool touched[MKEYS] = {false};
    const char *val[MKEYS] = {NULL};
    bool del[MKEYS] = {false};
    if (op < 4) {
        w[0] = op < 2 ? "SET" : "CFG.SET", w[1] = MKEY[k], w[2] = buf[0], argc = 3;
        touched[k] = true, val[k] = buf[0];
    } else if (op < 6) {
        w[0] = op == 4 ? "DEL" : "CFG.DEL", w[1] = MKEY[k], argc = 2;
        if (m->exists[k])
            touched[k] = true, del[k] = true;
    } else if (op < 8) {
        w[0] = "MSET", w[1] = MKEY[k], w[2] = buf[0], w[3] = MKEY[k2], w[4] = buf[1], argc = 5;
        touched[k] = true, val[k] = buf[0];
        touched[k2] = true, val[k2] = buf[1]; /* k == k2: the last wins */
    } else if (op == 8) {
        w[0] = "CFG.SET", w[1] = MKEY[k], w[2] = buf[0], w[3] = "IFVERSION", argc = 5;
        uint64_t off = rnd(rng) % 2; /* m->version is 0 for an absent key, as IFVERSION */
        snprintf(buf[2], 16, "%llu", (unsigned long long)(m->version[k] + off));
        w[4] = buf[2];
        if (off == 0)
            touched[k] = true, val[k] = buf[0];
    } else {
        w[0] = "FLUSHALL", argc = 1;
        for (int i = 0; i < MKEYS; i++)
            if (m->exists[i])
                touched[i] = true, del[i] = true;
    }
    bool any = false;
    for (int i = 0; i < MKEYS; i++)
        any |= touched[i];
    if (!any)
        return argc;
    m->rev++;
    for (int i = 0; i < MKEYS; i++) {
        if (!touched[i])
            continue;
        struct mver *v = &m->v[i][m->nv[i]++];
        v->rev = m->rev;
        v->del = del[i];
        snprintf(v->val, 16, "%s", del[i] ? "" : val[i]);
        m->version[i] = del[i] ? 0 : (m->exists[i] ? m->version[i] + 1 : 1);
        m->exists[i] = !del[i];
    }
    return argc;
}

/* What a read of key k at rev r must answer with `keep` versions retained. */
static void expected(const struct model *m, int k, uint64_t r, uint64_t keep, char *out)
{
    int n = m->nv[k], first = n > (int)keep ? n - (int)keep : 0, at = -1;
    for (int i = 0; i < n; i++)
        if (m->v[k][i].rev <= r)
            at = i;
    if ((at < 0 && first == 0) || r == 0) /* nothing exists at revision 0 */
        strcpy(out, "nil");
    else if (at < first)
        sprintf(out, "compacted:%llu", (unsigned long long)m->v[k][first].rev);
    else
        strcpy(out, m->v[k][at].del ? "nil" : m->v[k][at].val);
}

static void check_model(const struct model *m, uint64_t keep)
{
    uint64_t compact = 0;
    for (int k = 0; k < MKEYS; k++) {
        for (uint64_t r = 0; r <= m->rev; r++) {
            char want[32];
            expected(m, k, r, keep, want);
            cr_assert_str_eq(GET_AT(MKEY[k], r), want, "key %s rev %llu keep %llu", MKEY[k],
                             (unsigned long long)r, (unsigned long long)keep);
        }
        struct hlist h = history(MKEY[k], strlen(MKEY[k]), 0, 64);
        int n = m->nv[k], kept = n < (int)keep ? n : (int)keep;
        cr_assert_eq(h.n, kept < 64 ? kept : 64, "history length of %s", MKEY[k]);
        for (int i = 0; i < h.n; i++) {
            const struct mver *v = &m->v[k][n - 1 - i];
            cr_assert_eq(h.rev[i], v->rev);
            cr_assert_eq(h.del[i], v->del);
            cr_assert_str_eq(h.val[i], v->val);
        }
        if (n > (int)keep && m->v[k][n - (int)keep].rev > compact)
            compact = m->v[k][n - (int)keep].rev;
    }
    cr_assert_eq(ns_compact_revision(F.n), compact);
}

static void run_model(uint64_t seed, uint64_t keep, int steps)
{
    open_ns(keep);
    static struct model m;
    memset(&m, 0, sizeof m);
    uint64_t rng = seed;
    for (int s = 0; s < steps; s++) {
        const char *w[8];
        char buf[4][16];
        int argc = gen(&rng, &m, w, buf);
        w[argc] = NULL;
        ap_(w);
        cr_assert_eq(ns_revision(F.n), m.rev, "step %d (%s)", s, w[0]);
    }
    check_model(&m, keep);
}

Test(hist, random_changes_match_the_model_at_every_revision)
{
    run_model(11, 1000, 300);
}

Test(hist, random_changes_with_small_retention_match_the_model)
{
    for (uint64_t keep = 1; keep <= 4; keep++) {
        teardown();
        setup_mem();
        run_model(100 + keep, keep, 300);
    }
}

/* ------------------------------------------------------------------ records */

Test(hist, version_records_decode_and_every_truncation_is_corrupt)
{
    struct ns_keyrec in = {3, 9, 0, 77, "eve", 3, NULL, 0};
    size_t len = 0;
    uint8_t *p = ns_histrec_encode(&in, true, &len);
    struct ns_keyrec out;
    bool tomb = false;
    cr_assert_eq(ns_histrec_decode(p, len, &out, &tomb), RC_OK);
    cr_assert(tomb);
    cr_assert_eq(out.mod_rev, 9);
    cr_assert_eq(ns_keyrec_decode(p, len, &out), RC_CORRUPT, "a tombstone is never a 'K'");
    for (size_t l = 0; l < len; l++)
        cr_assert_eq(ns_histrec_decode(p, l, &out, &tomb), RC_CORRUPT, "len %zu", l);
    p[1] = 4; /* unknown flag */
    cr_assert_eq(ns_histrec_decode(p, len, &out, &tomb), RC_CORRUPT);
    free(p);
    struct ns_histmeta m = {2, 5, true}, m2;
    uint8_t buf[NS_HIST_META_LEN];
    ns_histmeta_encode(&m, buf);
    cr_assert_eq(ns_histmeta_decode(buf, sizeof buf, &m2), RC_OK);
    cr_assert(m2.pruned && m2.count == 2 && m2.oldest_rev == 5);
    cr_assert_eq(ns_histmeta_decode(buf, sizeof buf - 1, &m2), RC_CORRUPT);
}

Test(hist, corrupt_history_records_are_errors_not_crashes)
{
    AP("SET", "/k", "a");
    AP("SET", "/k", "b");
    uint64_t rev = 2;
    size_t sklen = 0;
    uint8_t *sk = ns_key_hist(3, "/k", 2, NS_HTAG_VER, &rev, &sklen);
    struct pst_batch *b = pst_batch_new();
    pst_batch_put(b, sk, sklen, "\x01\x00garbage", 9);
    cr_assert_eq(pst_write(F.e, b, false), RC_OK);
    cr_assert_str_eq(GET_AT("/k", 2), "rc:3");
    struct hlist h;
    memset(&h, 0, sizeof h);
    cr_assert_eq(ns_history(F.n, "/k", 2, 0, 0, collect, &h), RC_CORRUPT);
    /* a well-formed record under the wrong revision */
    struct ns_keyrec r = {1, 1, 1, 0, "", 0, "x", 1};
    size_t len = 0;
    uint8_t *rec = ns_histrec_encode(&r, false, &len);
    pst_batch_clear(b);
    pst_batch_put(b, sk, sklen, rec, len);
    cr_assert_eq(pst_write(F.e, b, false), RC_OK);
    cr_assert_str_eq(GET_AT("/k", 2), "rc:3");
    free(rec);
    free(sk);
    pst_batch_free(b);
}

/* A store written before history existed: 'A' and 'K' records only. */
Test(hist, store_without_history_answers_what_it_can)
{
    struct ns_keyrec k = {4, 6, 2, 55, "old", 3, "legacy", 6};
    size_t len = 0, sklen = 0;
    uint8_t *rec = ns_keyrec_encode(&k, &len);
    uint8_t *sk = ns_key_data(3, "/k", 2, &sklen);
    uint8_t akey[NS_GROUP_PREFIX_LEN], arec[NS_APPLIED_LEN];
    ns_key_group_letter(akey, 3, 'A');
    struct ns_applied a = {10, 1, 8, 1};
    ns_applied_encode(&a, arec);
    struct pst_batch *b = pst_batch_new();
    pst_batch_put(b, sk, sklen, rec, len);
    pst_batch_put(b, akey, sizeof akey, arec, sizeof arec);
    cr_assert_eq(pst_write(F.e, b, false), RC_OK);
    pst_batch_free(b);
    free(rec);
    free(sk);
    open_ns(100);
    F.index = 10;
    cr_assert_eq(ns_compact_revision(F.n), 8, "nothing before the upgrade is answerable");
    cr_assert_str_eq(GET_AT("/k", 8), "legacy");
    cr_assert_str_eq(GET_AT("/k", 6), "legacy");
    cr_assert_str_eq(GET_AT("/k", 5), "compacted:6");
    cr_assert_str_eq(GET_AT("/gone", 8), "nil");
    struct hlist h = history("/k", 2, 0, 0);
    cr_assert_eq(h.n, 1);
    cr_assert_eq(h.rev[0], 6);
    cr_assert_eq(h.version[0], 2);
    AP("SET", "/k", "new"); /* rev 9: seeds the history with the legacy version */
    h = history("/k", 2, 0, 0);
    cr_assert_eq(h.n, 2);
    cr_assert_str_eq(h.val[1], "legacy");
    cr_assert_eq(h.version[0], 3);
    cr_assert_str_eq(GET_AT("/k", 7), "legacy");
    cr_assert_str_eq(GET_AT("/k", 5), "compacted:6");
    cr_assert_str_eq(GET_AT("/k", 9), "new");
    open_ns(100); /* the group record now persists the compacted revision */
    cr_assert_eq(ns_compact_revision(F.n), 8);
}

/* ------------------------------------------------------------------ LevelDB */

TestSuite(hist_ldb, .init = setup_ldb, .fini = teardown);

Test(hist_ldb, history_survives_a_restart)
{
    open_ns(2);
    AP("SET", "/k", "a");
    AP("SET", "/k", "b");
    AP("DEL", "/k");
    ns_close(F.n);
    F.n = NULL;
    pst_close(F.e);
    F.e = open_ldb_at(F.dir);
    open_ns(2);
    cr_assert_eq(ns_revision(F.n), 3);
    cr_assert_eq(ns_compact_revision(F.n), 2);
    cr_assert_str_eq(GET_AT("/k", 1), "compacted:2");
    cr_assert_str_eq(GET_AT("/k", 2), "b");
    cr_assert_str_eq(GET_AT("/k", 3), "nil");
    AP("SET", "/k", "c");
    struct hlist h = history("/k", 2, 0, 0);
    cr_assert_eq(h.n, 2);
    cr_assert_eq(h.rev[0], 4);
    cr_assert(h.del[1]);
}

Test(hist_ldb, model_on_leveldb)
{
    run_model(5, 3, 200);
}

static void expect_same_bytes(struct pst_engine *a, struct pst_engine *b)
{
    struct pst_iter *ia = pst_iter_new(a, NULL, "", 0, NULL, 0);
    struct pst_iter *ib = pst_iter_new(b, NULL, "", 0, NULL, 0);
    size_t n = 0, nv = 0;
    for (; pst_iter_valid(ia) && pst_iter_valid(ib); pst_iter_next(ia), pst_iter_next(ib)) {
        size_t kal, kbl, val, vbl;
        const uint8_t *ka = pst_iter_key(ia, &kal), *kb = pst_iter_key(ib, &kbl);
        const void *va = pst_iter_value(ia, &val), *vb = pst_iter_value(ib, &vbl);
        cr_assert(kal == kbl && memcmp(ka, kb, kal) == 0, "record %zu key", n);
        cr_assert(val == vbl && memcmp(va, vb, val) == 0, "record %zu value", n);
        nv += kal > NS_GROUP_PREFIX_LEN - 1 && ka[5] == 'V';
        n++;
    }
    cr_assert_not(pst_iter_valid(ia));
    cr_assert_not(pst_iter_valid(ib));
    cr_assert_gt(nv, 10, "history records were compared");
    pst_iter_free(ia);
    pst_iter_free(ib);
}

Test(hist_ldb, same_entries_give_identical_history_bytes_on_both_engines)
{
    struct ns_limits lim;
    ns_limits_default(&lim);
    lim.history_max_versions = 3;
    open_ns(3);
    struct pst_engine *me = NULL;
    struct ns *mn = NULL;
    cr_assert_eq(pst_open_mem(&me), RC_OK);
    cr_assert_eq(ns_open(me, 3, &lim, &mn), RC_OK);
    static struct model m;
    memset(&m, 0, sizeof m);
    uint64_t rng = 99;
    for (uint64_t i = 1; i <= 300; i++) {
        const char *w[8];
        char buf[4][16];
        int argc = gen(&rng, &m, w, buf);
        size_t lens[8];
        for (int j = 0; j < argc; j++)
            lens[j] = strlen(w[j]);
        struct ns_reply r1, r2;
        cr_assert_eq(apply_bin(F.n, i, argc, w, lens, &r1), RC_OK);
        cr_assert_eq(apply_bin(mn, i, argc, w, lens, &r2), RC_OK);
        ns_reply_clear(&r1);
        ns_reply_clear(&r2);
    }
    cr_assert_gt(ns_compact_revision(F.n), 0, "pruning happened");
    expect_same_bytes(F.e, me);
    ns_close(mn);
    pst_close(me);
}
