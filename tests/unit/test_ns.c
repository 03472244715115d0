/*
 * test_ns.c - the state machine (src/ns): write commands and their replies, key metadata
 * and revisions, compare-and-set, limits, idempotent replay, scans and paging, record
 * validation (corrupt bytes are RC_CORRUPT), persistence across restarts on LevelDB, a
 * randomized comparison against an in-test model (with a restart in the middle), and
 * determinism (same entries on two engines give identical bytes).
 */
#include <criterion/criterion.h>
#include <ftw.h>
#include <stdarg.h>
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
    uint64_t index, term, time_ms;
    char dir[64]; /* LevelDB directory, "" for the mem engine */
};

static struct fx F;
static uint64_t rng_next(uint64_t *s);

static void open_mem(void)
{
    memset(&F, 0, sizeof(F));
    cr_assert_eq(pst_open_mem(&F.e), RC_OK);
    cr_assert_eq(ns_open(F.e, 7, NULL, &F.n), RC_OK);
    F.term = 1;
    F.time_ms = 1700000000000ull;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void close_fx(void)
{
    ns_close(F.n);
    if (F.e)
        pst_close(F.e);
    if (F.dir[0])
        nftw(F.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    memset(&F, 0, sizeof(F));
}

static struct pst_engine *open_leveldb_at(const char *dir)
{
    struct pst_options o;
    pst_options_default(&o);
    struct pst_engine *e = NULL;
    char *err = NULL;
    int rc = pst_open_leveldb(dir, &o, &e, &err);
    cr_assert_eq(rc, RC_OK, "leveldb open: %s", err ? err : "?");
    free(err);
    return e;
}

static void open_ldb(void)
{
    memset(&F, 0, sizeof(F));
    strcpy(F.dir, "/tmp/test_ns.XXXXXX");
    cr_assert_not_null(mkdtemp(F.dir));
    F.e = open_leveldb_at(F.dir);
    cr_assert_eq(ns_open(F.e, 7, NULL, &F.n), RC_OK);
    F.term = 1;
    F.time_ms = 1700000000000ull;
}

/* Apply one command (NULL-terminated word list, text arguments) as the next entry. */
static int apply_words(struct ns *n, uint64_t index, uint64_t term, uint64_t time_ms,
                       const char *const *words, struct ns_reply *out)
{
    char *argv[64];
    size_t lens[64];
    int argc = 0;
    for (; words[argc]; argc++) {
        cr_assert_lt(argc, 64);
        argv[argc] = (char *)words[argc];
        lens[argc] = strlen(words[argc]);
    }
    struct ns_meta m = {index, term, time_ms, index * 1000, "alice", "127.0.0.1:5000"};
    memset(out, 0, sizeof(*out));
    return ns_apply(n, &m, argc, argv, lens, out);
}

/* Apply to F as the next index; returns the reply (static, cleared on the next call). */
static struct ns_reply *ap_(const char *const *words)
{
    static struct ns_reply r;
    ns_reply_clear(&r);
    F.index++;
    F.time_ms += 10;
    int rc = apply_words(F.n, F.index, F.term, F.time_ms, words, &r);
    cr_assert_eq(rc, RC_OK, "apply %s: rc %d", words[0], rc);
    cr_assert_eq(ns_applied_index(F.n), F.index);
    return &r;
}
#define AP(...) ap_((const char *const[]){__VA_ARGS__, NULL})

static void expect_ok(const struct ns_reply *r)
{
    cr_assert_eq(r->type, NS_R_STATUS, "type %d (%s)", r->type, r->str ? r->str : "");
    cr_assert_str_eq(r->str, "OK");
}

static void expect_err(const struct ns_reply *r, int rc, const char *msg)
{
    cr_assert_eq(r->type, NS_R_ERR, "type %d", r->type);
    cr_assert_eq(r->rc, rc, "rc %d msg %s", r->rc, r->str);
    cr_assert_str_eq(r->str, msg);
}

static void expect_bulk(const struct ns_reply *r, const char *s)
{
    cr_assert_eq(r->type, NS_R_BULK, "type %d", r->type);
    cr_assert_eq(r->len, strlen(s));
    cr_assert_str_eq(r->str, s);
}

static void expect_int(const struct ns_reply *r, long long v)
{
    cr_assert_eq(r->type, NS_R_INT, "type %d (%s)", r->type, r->str ? r->str : "");
    cr_assert_eq(r->i, v);
}

/* The value of a map entry named name (an integer). */
static long long map_int(const struct ns_reply *r, const char *name)
{
    cr_assert_eq(r->type, NS_R_MAP);
    for (size_t i = 0; i < r->n; i++) {
        if (strcmp(r->elem[2 * i].str, name) == 0) {
            cr_assert_eq(r->elem[2 * i + 1].type, NS_R_INT);
            return r->elem[2 * i + 1].i;
        }
    }
    cr_assert_fail("no %s in map", name);
    return -1;
}

static struct ns_kv get_kv(const char *key)
{
    struct ns_kv kv;
    int rc = ns_get(F.n, key, strlen(key), &kv);
    cr_assert_eq(rc, RC_OK, "get %s: rc %d", key, rc);
    return kv;
}

static bool has(const char *key)
{
    bool e = true;
    cr_assert_eq(ns_exists(F.n, key, strlen(key), &e), RC_OK);
    return e;
}

/* ------------------------------------------------------------------ basics */

TestSuite(ns, .init = open_mem, .fini = close_fx);

Test(ns, fresh_group_starts_at_zero)
{
    cr_assert_eq(ns_applied_index(F.n), 0);
    cr_assert_eq(ns_applied_term(F.n), 0);
    cr_assert_eq(ns_revision(F.n), 0);
    cr_assert_eq(ns_key_count(F.n), 0);
    cr_assert_eq(ns_group(F.n), 7);
    struct ns_kv kv;
    cr_assert_eq(ns_get(F.n, "a", 1, &kv), RC_NOTFOUND);
}

Test(ns, set_records_value_and_metadata)
{
    expect_ok(AP("SET", "/app/port", "8080"));
    uint64_t t1 = F.time_ms;
    struct ns_kv kv = get_kv("/app/port");
    cr_assert_str_eq(kv.value, "8080");
    cr_assert_eq(kv.vlen, 4);
    cr_assert_eq(kv.klen, 9);
    cr_assert_eq(memcmp(kv.key, "/app/port", 9), 0);
    cr_assert_eq(kv.create_rev, 1);
    cr_assert_eq(kv.mod_rev, 1);
    cr_assert_eq(kv.version, 1);
    cr_assert_eq(kv.mtime_ms, t1);
    ns_kv_clear(&kv);

    expect_ok(AP("SET", "/other", "x"));
    expect_ok(AP("SET", "/app/port", "9090"));
    kv = get_kv("/app/port");
    cr_assert_str_eq(kv.value, "9090");
    cr_assert_eq(kv.create_rev, 1);
    cr_assert_eq(kv.mod_rev, 3);
    cr_assert_eq(kv.version, 2);
    cr_assert_eq(kv.mtime_ms, F.time_ms);
    ns_kv_clear(&kv);
    cr_assert_eq(ns_revision(F.n), 3);
    cr_assert_eq(ns_key_count(F.n), 2);
    cr_assert_eq(ns_applied_term(F.n), 1);
}

Test(ns, binary_keys_and_values)
{
    char key[] = {'k', 0, (char)0xff, 'z'};
    char val[] = {0, 1, 2, 0};
    char *argv[] = {"SET", key, val};
    size_t lens[] = {3, sizeof(key), sizeof(val)};
    struct ns_meta m = {1, 1, 5, 1, NULL, NULL};
    struct ns_reply r = {0};
    cr_assert_eq(ns_apply(F.n, &m, 3, argv, lens, &r), RC_OK);
    expect_ok(&r);
    ns_reply_clear(&r);
    struct ns_kv kv;
    cr_assert_eq(ns_get(F.n, key, sizeof(key), &kv), RC_OK);
    cr_assert_eq(kv.vlen, sizeof(val));
    cr_assert_eq(memcmp(kv.value, val, sizeof(val)), 0);
    cr_assert_eq(kv.value[kv.vlen], '\0');
    ns_kv_clear(&kv);
    cr_assert_eq(ns_get(F.n, key, 3, &kv), RC_NOTFOUND); /* "k\0\xff" is another key */
}

Test(ns, one_revision_per_changing_entry)
{
    expect_ok(AP("MSET", "a", "1", "b", "2", "c", "3"));
    cr_assert_eq(ns_revision(F.n), 1);
    cr_assert_eq(ns_key_count(F.n), 3);
    const char *keys[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        struct ns_kv kv = get_kv(keys[i]);
        cr_assert_eq(kv.create_rev, 1);
        cr_assert_eq(kv.mod_rev, 1);
        cr_assert_eq(kv.version, 1);
        ns_kv_clear(&kv);
    }
    expect_int(AP("DEL", "nope", "zilch"), 0); /* changes nothing: no revision */
    cr_assert_eq(ns_revision(F.n), 1);
    cr_assert_eq(ns_applied_index(F.n), 2);
    expect_int(AP("DEL", "a", "b", "nope"), 2);
    cr_assert_eq(ns_revision(F.n), 2);
    cr_assert_eq(ns_key_count(F.n), 1);
    expect_ok(AP("NOOP"));
    cr_assert_eq(ns_revision(F.n), 2);
}

Test(ns, deleted_then_recreated_key_starts_at_version_one)
{
    expect_ok(AP("SET", "k", "1"));
    expect_ok(AP("SET", "k", "2"));
    expect_int(AP("DEL", "k"), 1);
    cr_assert_not(has("k"));
    expect_ok(AP("SET", "k", "3"));
    struct ns_kv kv = get_kv("k");
    cr_assert_eq(kv.version, 1);
    cr_assert_eq(kv.create_rev, 4);
    cr_assert_eq(kv.mod_rev, 4);
    cr_assert_str_eq(kv.value, "3");
    ns_kv_clear(&kv);
}

/* ------------------------------------------------------------------ SET options */

Test(ns, set_nx_xx_get_follow_redis)
{
    cr_assert_eq(AP("SET", "k", "1", "XX")->type, NS_R_NULL); /* absent: not set */
    cr_assert_not(has("k"));
    cr_assert_eq(AP("SET", "k", "1", "xx", "GET")->type, NS_R_NULL);
    expect_ok(AP("SET", "k", "1", "nx"));
    cr_assert_eq(AP("SET", "k", "2", "NX")->type, NS_R_NULL);
    expect_bulk(AP("SET", "k", "2", "NX", "GET"), "1"); /* not set, old value */
    struct ns_kv kv = get_kv("k");
    cr_assert_str_eq(kv.value, "1");
    ns_kv_clear(&kv);
    expect_bulk(AP("SET", "k", "3", "Get"), "1");
    expect_bulk(AP("SET", "k", "4", "XX", "GET"), "3");
    cr_assert_eq(AP("SET", "new", "v", "GET")->type, NS_R_NULL); /* set, no old value */
    cr_assert(has("new"));
    kv = get_kv("k");
    cr_assert_str_eq(kv.value, "4");
    cr_assert_eq(kv.version, 3);
    ns_kv_clear(&kv);
    cr_assert_eq(ns_revision(F.n), 4); /* NX/XX not met changed nothing */
}

Test(ns, set_bad_options_are_errors_that_change_nothing)
{
    expect_err(AP("SET", "k", "1", "NX", "XX"), RC_BADARG, "syntax error");
    expect_err(AP("SET", "k", "1", "XX", "NX"), RC_BADARG, "syntax error");
    expect_err(AP("SET", "k", "1", "BOGUS"), RC_BADARG, "syntax error");
    expect_err(AP("SET", "k", "1", "EX", "10"), RC_BADARG,
               "config keys do not expire: SET expiry options are not supported");
    expect_err(AP("SET", "k", "1", "keepttl"), RC_BADARG,
               "config keys do not expire: SET expiry options are not supported");
    expect_err(AP("SET", "k"), RC_BADARG, "wrong number of arguments for 'set' command");
    cr_assert_not(has("k"));
    cr_assert_eq(ns_revision(F.n), 0);
    cr_assert_eq(ns_applied_index(F.n), 6); /* failed commands still advance the index */
}

Test(ns, del_counts_distinct_existing_keys)
{
    expect_ok(AP("MSET", "a", "1", "b", "2"));
    expect_int(AP("DEL", "a", "a", "x", "b"), 2);
    cr_assert_eq(ns_key_count(F.n), 0);
    expect_ok(AP("SET", "c", "1"));
    expect_int(AP("UNLINK", "c"), 1);
    expect_err(AP("DEL"), RC_BADARG, "wrong number of arguments for 'del' command");
}

Test(ns, mset_repeated_key_last_wins_once)
{
    expect_ok(AP("MSET", "a", "1", "b", "x", "a", "2"));
    struct ns_kv kv = get_kv("a");
    cr_assert_str_eq(kv.value, "2");
    cr_assert_eq(kv.version, 1);
    ns_kv_clear(&kv);
    cr_assert_eq(ns_key_count(F.n), 2);
    expect_err(AP("MSET", "a", "1", "b"), RC_BADARG,
               "wrong number of arguments for 'mset' command");
}

Test(ns, limits_refuse_the_whole_command)
{
    struct ns_limits lim = {.key_len_max = 8, .value_len_max = 4};
    ns_close(F.n);
    cr_assert_eq(ns_open(F.e, 7, &lim, &F.n), RC_OK);
    expect_err(AP("SET", "", "v"), RC_BADARG, "empty keys are not allowed");
    expect_err(AP("SET", "123456789", "v"), RC_TOOBIG,
               "key length 9 exceeds the limit of 8 bytes");
    expect_err(AP("SET", "k", "12345"), RC_TOOBIG, "value length 5 exceeds the limit of 4 bytes");
    expect_ok(AP("SET", "12345678", "1234"));
    /* One bad pair: nothing of the MSET is applied. */
    expect_err(AP("MSET", "a", "1", "b", "12345"), RC_TOOBIG,
               "value length 5 exceeds the limit of 4 bytes");
    cr_assert_not(has("a"));
    expect_err(AP("CFG.SET", "k", "12345"), RC_TOOBIG,
               "value length 5 exceeds the limit of 4 bytes");
    expect_err(AP("DEL", "12345678", "123456789"), RC_TOOBIG,
               "key length 9 exceeds the limit of 8 bytes");
    cr_assert(has("12345678"));
    cr_assert_eq(ns_key_count(F.n), 1);
    cr_assert_eq(ns_revision(F.n), 1);
}

/* ------------------------------------------------------------------ CFG.SET / CFG.DEL */

Test(ns, cfg_set_compare_and_set)
{
    struct ns_reply *r = AP("CFG.SET", "/svc/url", "http://a", "IFVERSION", "0");
    cr_assert_eq(r->type, NS_R_MAP);
    cr_assert_eq(r->n, 3);
    cr_assert_str_eq(r->elem[0].str, "revision");
    cr_assert_str_eq(r->elem[2].str, "version");
    cr_assert_str_eq(r->elem[4].str, "created");
    cr_assert_eq(map_int(r, "revision"), 1);
    cr_assert_eq(map_int(r, "version"), 1);
    cr_assert_eq(map_int(r, "created"), 1);

    expect_err(AP("CFG.SET", "/svc/url", "http://b", "IFVERSION", "0"), RC_VERSION,
               "version mismatch: current version is 1");
    expect_err(AP("CFG.SET", "/svc/url", "http://b", "ifversion", "2"), RC_VERSION,
               "version mismatch: current version is 1");
    r = AP("CFG.SET", "/svc/url", "http://b", "IFVERSION", "1");
    cr_assert_eq(map_int(r, "revision"), 2);
    cr_assert_eq(map_int(r, "version"), 2);
    cr_assert_eq(map_int(r, "created"), 0);
    r = AP("CFG.SET", "/svc/url", "http://c"); /* unconditional */
    cr_assert_eq(map_int(r, "version"), 3);
    struct ns_kv kv = get_kv("/svc/url");
    cr_assert_str_eq(kv.value, "http://c");
    cr_assert_eq(kv.version, 3);
    cr_assert_eq(kv.mod_rev, 3);
    ns_kv_clear(&kv);
    expect_err(AP("CFG.SET", "/new", "v", "IFVERSION", "4"), RC_VERSION,
               "version mismatch: current version is 0");
    cr_assert_not(has("/new"));
    cr_assert_eq(ns_revision(F.n), 3);
}

Test(ns, cfg_set_and_del_reject_malformed_conditions)
{
    expect_err(AP("CFG.SET", "k", "v", "IFVERSION", "abc"), RC_BADARG,
               "value is not an integer or out of range");
    expect_err(AP("CFG.SET", "k", "v", "IFVERSION", "-1"), RC_BADARG,
               "value is not an integer or out of range");
    expect_err(AP("CFG.SET", "k", "v", "IFVERSION", "99999999999999999999"), RC_BADARG,
               "value is not an integer or out of range");
    expect_err(AP("CFG.SET", "k", "v", "IFVERSION"), RC_BADARG, "syntax error");
    expect_err(AP("CFG.SET", "k", "v", "IFVER", "1"), RC_BADARG, "syntax error");
    expect_err(AP("CFG.SET", "k"), RC_BADARG, "wrong number of arguments for 'cfg.set' command");
    expect_err(AP("CFG.DEL", "k", "IFVERSION"), RC_BADARG, "syntax error");
    expect_err(AP("CFG.DEL"), RC_BADARG, "wrong number of arguments for 'cfg.del' command");
    cr_assert_eq(ns_revision(F.n), 0);
}

Test(ns, cfg_del_with_and_without_version)
{
    expect_int(AP("CFG.DEL", "k"), 0);
    expect_int(AP("CFG.DEL", "k", "IFVERSION", "0"), 0); /* absent as required */
    AP("CFG.SET", "k", "v");
    AP("CFG.SET", "k", "w");
    expect_err(AP("CFG.DEL", "k", "IFVERSION", "1"), RC_VERSION,
               "version mismatch: current version is 2");
    expect_err(AP("CFG.DEL", "k", "IFVERSION", "0"), RC_VERSION,
               "version mismatch: current version is 2");
    cr_assert(has("k"));
    expect_int(AP("CFG.DEL", "k", "IFVERSION", "2"), 1);
    cr_assert_not(has("k"));
    cr_assert_eq(ns_key_count(F.n), 0);
    cr_assert_eq(ns_revision(F.n), 3);
}

/* ------------------------------------------------------------------ other commands */

Test(ns, flushall_clears_only_this_group)
{
    struct ns *other = NULL;
    cr_assert_eq(ns_open(F.e, 8, NULL, &other), RC_OK);
    struct ns_reply r = {0};
    cr_assert_eq(apply_words(other, 1, 1, 1, (const char *const[]){"SET", "a", "x", NULL}, &r),
                 RC_OK);
    ns_reply_clear(&r);
    expect_ok(AP("MSET", "a", "1", "b", "2", "/c/d", "3"));
    expect_ok(AP("FLUSHALL"));
    cr_assert_eq(ns_key_count(F.n), 0);
    cr_assert_eq(ns_revision(F.n), 2);
    cr_assert_not(has("a"));
    cr_assert_not(has("/c/d"));
    expect_ok(AP("FLUSHALL")); /* nothing to delete: no revision */
    cr_assert_eq(ns_revision(F.n), 2);
    struct ns_kv kv;
    cr_assert_eq(ns_get(other, "a", 1, &kv), RC_OK);
    cr_assert_str_eq(kv.value, "x");
    ns_kv_clear(&kv);
    cr_assert_eq(ns_key_count(other), 1);
    ns_close(other);
}

Test(ns, unknown_and_empty_commands_are_errors)
{
    expect_err(AP("INCR", "k"), RC_BADARG, "unknown command for the state machine");
    struct ns_meta m = {F.index + 1, 1, 0, 0, NULL, NULL};
    struct ns_reply r = {0};
    cr_assert_eq(ns_apply(F.n, &m, 0, NULL, NULL, &r), RC_OK);
    expect_err(&r, RC_BADARG, "empty command");
    ns_reply_clear(&r);
    cr_assert_eq(ns_applied_index(F.n), 2);
}

/* ------------------------------------------------------------------ applied index */

Test(ns, replayed_entries_are_skipped)
{
    struct ns_reply r;
    const char *const set1[] = {"SET", "k", "1", NULL};
    const char *const set2[] = {"SET", "k", "2", NULL};
    cr_assert_eq(apply_words(F.n, 1, 1, 10, set1, &r), RC_OK);
    ns_reply_clear(&r);
    cr_assert_eq(apply_words(F.n, 2, 1, 10, set2, &r), RC_OK);
    ns_reply_clear(&r);
    cr_assert_eq(apply_words(F.n, 1, 1, 10, set1, &r), RC_OK); /* replay */
    cr_assert_eq(r.type, 0);
    cr_assert_eq(apply_words(F.n, 2, 1, 10, set2, &r), RC_OK);
    cr_assert_eq(r.type, 0);
    struct ns_kv kv;
    cr_assert_eq(ns_get(F.n, "k", 1, &kv), RC_OK);
    cr_assert_str_eq(kv.value, "2");
    cr_assert_eq(kv.version, 2);
    ns_kv_clear(&kv);
    cr_assert_eq(ns_revision(F.n), 2);
}

Test(ns, gaps_and_older_terms_are_caller_bugs)
{
    struct ns_reply r;
    const char *const set1[] = {"SET", "k", "1", NULL};
    cr_assert_eq(apply_words(F.n, 2, 1, 10, set1, &r), RC_BADARG); /* gap: 0 -> 2 */
    cr_assert_eq(r.type, 0);
    cr_assert_eq(apply_words(F.n, 1, 0, 10, set1, &r), RC_BADARG); /* term 0 */
    cr_assert_eq(apply_words(F.n, 1, 3, 10, set1, &r), RC_OK);
    ns_reply_clear(&r);
    cr_assert_eq(apply_words(F.n, 2, 2, 10, set1, &r), RC_BADARG); /* term went back */
    cr_assert_eq(ns_applied_index(F.n), 1);
    cr_assert_eq(ns_applied_term(F.n), 3);
    cr_assert_eq(ns_apply_empty(F.n, 5, 3), RC_BADARG);
}

Test(ns, empty_entries_and_reset_move_only_the_index)
{
    expect_ok(AP("SET", "k", "1"));
    cr_assert_eq(ns_apply_empty(F.n, 2, 2), RC_OK);
    cr_assert_eq(ns_applied_index(F.n), 2);
    cr_assert_eq(ns_applied_term(F.n), 2);
    cr_assert_eq(ns_apply_empty(F.n, 2, 2), RC_OK); /* replay: no-op */
    cr_assert_eq(ns_revision(F.n), 1);
    cr_assert_eq(ns_reset_applied(F.n, 1, 2), RC_BADARG); /* backwards */
    cr_assert_eq(ns_reset_applied(F.n, 100, 5), RC_OK);   /* a gap is fine here */
    cr_assert_eq(ns_applied_index(F.n), 100);
    cr_assert_eq(ns_key_count(F.n), 1);
    /* The new applied state is in the store, not just in memory. */
    ns_close(F.n);
    cr_assert_eq(ns_open(F.e, 7, NULL, &F.n), RC_OK);
    cr_assert_eq(ns_applied_index(F.n), 100);
    cr_assert_eq(ns_applied_term(F.n), 5);
    cr_assert_eq(ns_revision(F.n), 1);
    cr_assert_eq(ns_key_count(F.n), 1);
    F.index = 100;
    F.term = 5;
    expect_ok(AP("SET", "k", "2"));
    cr_assert_eq(ns_revision(F.n), 2);
}

Test(ns, reload_picks_up_a_replaced_range)
{
    /* Another ns instance on the same engine stands for a snapshot install. */
    struct ns *inst = NULL;
    cr_assert_eq(ns_open(F.e, 7, NULL, &inst), RC_OK);
    struct ns_reply r;
    cr_assert_eq(apply_words(inst, 1, 1, 1, (const char *const[]){"SET", "a", "b", NULL}, &r),
                 RC_OK);
    ns_reply_clear(&r);
    ns_close(inst);
    cr_assert_eq(ns_applied_index(F.n), 0);
    cr_assert_eq(ns_reload(F.n), RC_OK);
    cr_assert_eq(ns_applied_index(F.n), 1);
    cr_assert_eq(ns_revision(F.n), 1);
    cr_assert_eq(ns_key_count(F.n), 1);
}

/* ------------------------------------------------------------------ scan */

struct collect {
    char keys[64][32];
    char vals[64][32];
    bool had_value[64];
    size_t n;
    size_t stop_after; /* 0: never stop */
};

static bool collect_fn(void *ud, const struct ns_kv *kv)
{
    struct collect *c = ud;
    cr_assert_lt(c->n, 64);
    cr_assert_lt(kv->klen, 32);
    memcpy(c->keys[c->n], kv->key, kv->klen);
    c->keys[c->n][kv->klen] = '\0';
    c->had_value[c->n] = kv->value != NULL;
    if (kv->value)
        snprintf(c->vals[c->n], 32, "%s", kv->value);
    c->n++;
    return !(c->stop_after && c->n == c->stop_after);
}

static void seed_scan_keys(void)
{
    expect_ok(AP("MSET", "/a/1", "v1", "/a/2", "v2", "/a/3", "v3", "/ab", "x", "/b/1", "y",
                 "/a", "z", "plain", "p"));
}

Test(ns, scan_is_ordered_and_prefix_bounded)
{
    seed_scan_keys();
    struct collect c = {0};
    char *next = (char *)1;
    cr_assert_eq(ns_scan(F.n, NULL, 0, NULL, 0, 0, true, collect_fn, &c, &next, NULL), RC_OK);
    cr_assert_null(next);
    const char *all[] = {"/a", "/a/1", "/a/2", "/a/3", "/ab", "/b/1", "plain"};
    cr_assert_eq(c.n, 7);
    for (size_t i = 0; i < 7; i++)
        cr_assert_str_eq(c.keys[i], all[i]);
    cr_assert_str_eq(c.vals[1], "v1");
    cr_assert(c.had_value[0]);

    memset(&c, 0, sizeof(c));
    cr_assert_eq(ns_scan(F.n, "/a/", 3, NULL, 0, 0, false, collect_fn, &c, NULL, NULL), RC_OK);
    cr_assert_eq(c.n, 3);
    cr_assert_str_eq(c.keys[0], "/a/1");
    cr_assert_str_eq(c.keys[2], "/a/3");
    cr_assert_not(c.had_value[0]);

    memset(&c, 0, sizeof(c)); /* start inside the prefix */
    cr_assert_eq(ns_scan(F.n, "/a/", 3, "/a/2", 4, 0, false, collect_fn, &c, NULL, NULL), RC_OK);
    cr_assert_eq(c.n, 2);
    cr_assert_str_eq(c.keys[0], "/a/2");

    memset(&c, 0, sizeof(c)); /* start below the prefix: from the prefix */
    cr_assert_eq(ns_scan(F.n, "/a/", 3, "/", 1, 0, false, collect_fn, &c, NULL, NULL), RC_OK);
    cr_assert_eq(c.n, 3);

    memset(&c, 0, sizeof(c)); /* start past the prefix: nothing */
    cr_assert_eq(ns_scan(F.n, "/a/", 3, "/b", 2, 0, false, collect_fn, &c, &next, NULL), RC_OK);
    cr_assert_eq(c.n, 0);
    cr_assert_null(next);
}

Test(ns, scan_pages_with_next_key)
{
    seed_scan_keys();
    char *start = NULL;
    size_t slen = 0;
    struct collect c = {0};
    int pages = 0;
    do {
        char *next = NULL;
        size_t nlen = 0;
        cr_assert_eq(ns_scan(F.n, "/", 1, start, slen, 2, false, collect_fn, &c, &next, &nlen),
                     RC_OK);
        free(start);
        start = next;
        slen = nlen;
        pages++;
    } while (start && pages < 10);
    cr_assert_eq(pages, 3);
    cr_assert_eq(c.n, 6);
    cr_assert_str_eq(c.keys[5], "/b/1");

    memset(&c, 0, sizeof(c)); /* the visitor stops: next is the key after its last one */
    c.stop_after = 2;
    char *next = NULL;
    size_t nlen = 0;
    cr_assert_eq(ns_scan(F.n, NULL, 0, NULL, 0, 0, false, collect_fn, &c, &next, &nlen), RC_OK);
    cr_assert_eq(c.n, 2);
    cr_assert_eq(nlen, 4);
    cr_assert_str_eq(next, "/a/2");
    free(next);
}

Test(ns, scan_prefix_of_ff_bytes)
{
    char k1[] = {(char)0xff, (char)0xff, 'a'};
    char k2[] = {(char)0xff, (char)0xfe};
    char *argv[] = {"MSET", k1, "1", k2, "2", "zz", "3"};
    size_t lens[] = {4, 3, 1, 2, 1, 2, 1};
    struct ns_meta m = {1, 1, 5, 1, NULL, NULL};
    struct ns_reply r = {0};
    cr_assert_eq(ns_apply(F.n, &m, 7, argv, lens, &r), RC_OK);
    ns_reply_clear(&r);
    size_t count = 0;
    char pfx[] = {(char)0xff, (char)0xff};
    struct collect c = {0};
    cr_assert_eq(ns_scan(F.n, pfx, 2, NULL, 0, 0, false, collect_fn, &c, NULL, NULL), RC_OK);
    count = c.n;
    cr_assert_eq(count, 1);
    memset(&c, 0, sizeof(c));
    cr_assert_eq(ns_scan(F.n, pfx, 1, NULL, 0, 0, false, collect_fn, &c, NULL, NULL), RC_OK);
    cr_assert_eq(c.n, 2);
}

Test(ns, reply_kv_shape)
{
    expect_ok(AP("SET", "k", "val"));
    struct ns_kv kv = get_kv("k");
    struct ns_reply r = {0};
    cr_assert_eq(ns_reply_kv(&kv, &r), RC_OK);
    cr_assert_eq(r.type, NS_R_MAP);
    cr_assert_eq(r.n, 5);
    cr_assert_str_eq(r.elem[0].str, "value");
    cr_assert_str_eq(r.elem[1].str, "val");
    cr_assert_eq(map_int(&r, "version"), 1);
    cr_assert_eq(map_int(&r, "create_revision"), 1);
    cr_assert_eq(map_int(&r, "mod_revision"), 1);
    cr_assert_eq(map_int(&r, "mtime_ms"), (long long)F.time_ms);
    ns_reply_clear(&r);
    cr_assert_eq(r.type, 0);
    ns_kv_clear(&kv);
}

/* ------------------------------------------------------------------ records */

static void put_raw(char letter, const char *ukey, const void *val, size_t vlen)
{
    uint8_t k[64];
    ns_key_group_letter(k, 7, letter);
    size_t klen = NS_GROUP_PREFIX_LEN + strlen(ukey);
    memcpy(k + NS_GROUP_PREFIX_LEN, ukey, strlen(ukey));
    struct pst_batch *b = pst_batch_new();
    pst_batch_put(b, k, klen, val, vlen);
    cr_assert_eq(pst_write(F.e, b, false), RC_OK);
    pst_batch_free(b);
}

Test(ns, key_record_roundtrip_and_every_truncation_is_corrupt)
{
    char actor[300];
    memset(actor, 'u', sizeof(actor));
    struct ns_keyrec in = {3, 9, 4, 12345, actor, sizeof(actor), "hello", 5};
    size_t len = 0;
    uint8_t *rec = ns_keyrec_encode(&in, &len);
    cr_assert_not_null(rec);
    cr_assert_eq(len, NS_KEY_HDR_LEN + NS_ACTOR_LEN_MAX + 5); /* actor truncated */
    cr_assert_eq(rec[0], 1);
    struct ns_keyrec out;
    cr_assert_eq(ns_keyrec_decode(rec, len, &out), RC_OK);
    cr_assert_eq(out.create_rev, 3);
    cr_assert_eq(out.mod_rev, 9);
    cr_assert_eq(out.version, 4);
    cr_assert_eq(out.mtime_ms, 12345);
    cr_assert_eq(out.actor_len, NS_ACTOR_LEN_MAX);
    cr_assert_eq(out.vlen, 5);
    cr_assert_eq(memcmp(out.value, "hello", 5), 0);
    /* Shorter than header + actor: corrupt, whatever the cut. */
    for (size_t cut = 0; cut < NS_KEY_HDR_LEN + NS_ACTOR_LEN_MAX; cut++)
        cr_assert_eq(ns_keyrec_decode(rec, cut, &out), RC_CORRUPT, "cut %zu", cut);
    /* Inconsistent metadata or unknown format/flags. */
    uint8_t bad[NS_KEY_HDR_LEN + NS_ACTOR_LEN_MAX + 5];
    struct { size_t off; uint8_t v; } muts[] = {{0, 2}, {1, 1}, {9, 0}, {17, 2}, {25, 8}};
    for (size_t i = 0; i < sizeof(muts) / sizeof(muts[0]); i++) {
        memcpy(bad, rec, len);
        bad[muts[i].off] = muts[i].v;
        cr_assert_eq(ns_keyrec_decode(bad, len, &out), RC_CORRUPT, "mutation %zu", i);
    }
    free(rec);
}

Test(ns, random_bytes_never_crash_the_decoders)
{
    uint64_t rng = 99;
    uint8_t buf[96];
    struct ns_keyrec in = {2, 6, 3, 77, "bob", 3, "value", 5}, out;
    size_t good_len = 0;
    uint8_t *good = ns_keyrec_encode(&in, &good_len);
    size_t ok = 0;
    for (int i = 0; i < 20000; i++) {
        size_t len = rng_next(&rng) % sizeof(buf);
        if (i % 2) { /* random bytes, usually with a plausible format byte */
            for (size_t j = 0; j < len; j++)
                buf[j] = (uint8_t)rng_next(&rng);
            if (len > 1 && i % 4 == 1) {
                buf[0] = 1; /* format 1, flags 0 */
                buf[1] = 0;
            }
        } else { /* a valid record with one byte changed */
            len = good_len;
            memcpy(buf, good, len);
            buf[rng_next(&rng) % len] ^= (uint8_t)(1 + rng_next(&rng) % 255);
        }
        int rc = ns_keyrec_decode(buf, len, &out);
        cr_assert(rc == RC_OK || rc == RC_CORRUPT);
        if (rc == RC_OK) {
            ok++;
            cr_assert_leq(out.actor_len + out.vlen + NS_KEY_HDR_LEN, len);
            cr_assert_geq(out.mod_rev, out.create_rev);
            cr_assert_geq(out.version, 1);
        }
        struct ns_applied a;
        rc = ns_applied_decode(buf, len, &a);
        cr_assert(rc == RC_OK || rc == RC_CORRUPT);
    }
    cr_assert_gt(ok, 0); /* value and mtime bytes can change without breaking the record */
    free(good);
}

Test(ns, applied_record_validation)
{
    struct ns_applied a = {10, 2, 4, 100}, b;
    uint8_t buf[NS_APPLIED_LEN + 1];
    ns_applied_encode(&a, buf);
    cr_assert_eq(ns_applied_decode(buf, NS_APPLIED_LEN, &b), RC_OK);
    cr_assert_eq(memcmp(&a, &b, sizeof(a)), 0);
    for (size_t cut = 0; cut < NS_APPLIED_LEN; cut++)
        cr_assert_eq(ns_applied_decode(buf, cut, &b), RC_CORRUPT);
    cr_assert_eq(ns_applied_decode(buf, NS_APPLIED_LEN + 1, &b), RC_CORRUPT);
    buf[0] = 9;
    cr_assert_eq(ns_applied_decode(buf, NS_APPLIED_LEN, &b), RC_CORRUPT);
    struct ns_applied c = {3, 1, 3, 0};
    ns_applied_encode(&c, buf);
    buf[24] = 4; /* revision 4 > index 3 */
    cr_assert_eq(ns_applied_decode(buf, NS_APPLIED_LEN, &b), RC_CORRUPT);
}

Test(ns, corrupt_records_in_the_store_are_errors_not_crashes)
{
    expect_ok(AP("SET", "good", "1"));
    put_raw('K', "bad", "\x01\x00garbage", 9);
    struct ns_kv kv;
    cr_assert_eq(ns_get(F.n, "bad", 3, &kv), RC_CORRUPT);
    bool e;
    cr_assert_eq(ns_exists(F.n, "bad", 3, &e), RC_CORRUPT);
    struct collect c = {0};
    cr_assert_eq(ns_scan(F.n, NULL, 0, NULL, 0, 0, true, collect_fn, &c, NULL, NULL),
                 RC_CORRUPT);
    /* Apply that would need the bad record stops without applying anything. */
    struct ns_reply r = {0};
    cr_assert_eq(apply_words(F.n, 2, 1, 1, (const char *const[]){"SET", "bad", "x", NULL}, &r),
                 RC_CORRUPT);
    cr_assert_eq(r.type, 0);
    cr_assert_eq(ns_applied_index(F.n), 1);
    cr_assert_eq(ns_get(F.n, "good", 4, &kv), RC_OK);
    ns_kv_clear(&kv);
    /* A bad applied record fails the open. */
    put_raw('A', "", "\x01short", 6);
    struct ns *n2 = NULL;
    cr_assert_eq(ns_open(F.e, 7, NULL, &n2), RC_CORRUPT);
    cr_assert_null(n2);
    cr_assert_eq(ns_reload(F.n), RC_CORRUPT);
}

Test(ns, key_record_keeps_the_actor_for_history)
{
    expect_ok(AP("SET", "k", "v")); /* ap_ applies as actor "alice" */
    uint8_t key[NS_GROUP_PREFIX_LEN + 1];
    ns_key_group_letter(key, 7, 'K');
    key[NS_GROUP_PREFIX_LEN] = 'k';
    void *v = NULL;
    size_t vlen = 0;
    cr_assert_eq(pst_get(F.e, NULL, key, sizeof(key), &v, &vlen), RC_OK);
    struct ns_keyrec rec;
    cr_assert_eq(ns_keyrec_decode(v, vlen, &rec), RC_OK);
    cr_assert_eq(rec.actor_len, 5);
    cr_assert_eq(memcmp(rec.actor, "alice", 5), 0);
    free(v);
}

Test(ns, record_newer_than_the_group_revision_is_corrupt)
{
    expect_ok(AP("SET", "k", "v"));
    struct ns_keyrec in = {1, 5, 1, 0, "", 0, "x", 1}; /* mod_rev 5 > revision 1 */
    size_t len = 0;
    uint8_t *rec = ns_keyrec_encode(&in, &len);
    put_raw('K', "k", rec, len);
    free(rec);
    struct ns_kv kv;
    cr_assert_eq(ns_get(F.n, "k", 1, &kv), RC_CORRUPT);
    struct ns_reply r = {0};
    cr_assert_eq(apply_words(F.n, 2, 1, 1, (const char *const[]){"SET", "k", "y", NULL}, &r),
                 RC_CORRUPT);
    cr_assert_eq(ns_applied_index(F.n), 1);
}

Test(ns, apply_writes_state_and_index_in_one_batch)
{
    /* After each apply the store's 'A' record equals the in-memory applied state. */
    expect_ok(AP("MSET", "a", "1", "b", "2"));
    expect_err(AP("CFG.SET", "a", "2", "IFVERSION", "5"), RC_VERSION,
               "version mismatch: current version is 1");
    uint8_t k[NS_GROUP_PREFIX_LEN];
    ns_key_group_letter(k, 7, 'A');
    void *v = NULL;
    size_t vlen = 0;
    cr_assert_eq(pst_get(F.e, NULL, k, sizeof(k), &v, &vlen), RC_OK);
    struct ns_applied a;
    cr_assert_eq(ns_applied_decode(v, vlen, &a), RC_OK);
    free(v);
    cr_assert_eq(a.index, 2);
    cr_assert_eq(a.term, 1);
    cr_assert_eq(a.revision, 1);
    cr_assert_eq(a.key_count, 2);
}

/* ------------------------------------------------------------------ model comparison */

#define NKEYS 8
/* In memcmp order, so a scan visits them in this order. */
static const char *const MK[NKEYS] = {"/a", "/a/1", "/a/2", "/a/3", "/b/1", "/b/2", "k", "z"};

struct mkey {
    bool exists;
    char val[24];
    uint64_t ver, crev, mrev, mtime;
};
struct model {
    struct mkey k[NKEYS];
    uint64_t rev, count;
};
struct expect {
    int type;
    long long i;
    int rc;
    char str[24];
    uint64_t map_rev, map_ver;
    bool map_created;
};

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static int key_index(const char *k)
{
    for (int i = 0; i < NKEYS; i++)
        if (strcmp(MK[i], k) == 0)
            return i;
    cr_assert_fail("unknown model key %s", k);
    return -1;
}

static void m_put(struct model *m, int ki, const char *val, uint64_t time_ms, bool *touched)
{
    struct mkey *k = &m->k[ki];
    snprintf(k->val, sizeof(k->val), "%s", val);
    k->mtime = time_ms;
    if (touched[ki])
        return; /* a key named twice in one entry changes once */
    touched[ki] = true;
    if (!k->exists) {
        k->exists = true;
        k->crev = m->rev + 1;
        k->ver = 0;
        m->count++;
    }
    k->ver++;
    k->mrev = m->rev + 1;
}

static void m_del(struct model *m, int ki, bool *touched)
{
    m->k[ki].exists = false;
    m->count--;
    touched[ki] = true;
}

static void m_set(struct model *m, const char **w, int argc, uint64_t t, bool *touched,
                  struct expect *x)
{
    bool nx = false, xx = false, get = false;
    for (int i = 3; i < argc; i++) {
        nx |= strcmp(w[i], "NX") == 0;
        xx |= strcmp(w[i], "XX") == 0;
        get |= strcmp(w[i], "GET") == 0;
    }
    int ki = key_index(w[1]);
    struct mkey old = m->k[ki];
    bool met = !(nx && old.exists) && !(xx && !old.exists);
    if (met)
        m_put(m, ki, w[2], t, touched);
    if (get && old.exists) {
        x->type = NS_R_BULK;
        snprintf(x->str, sizeof(x->str), "%s", old.val);
    } else {
        x->type = (get || !met) ? NS_R_NULL : NS_R_STATUS;
    }
}

static void m_cas(struct model *m, const char **w, int argc, uint64_t t, bool *touched,
                  struct expect *x)
{
    bool is_set = strcmp(w[0], "CFG.SET") == 0;
    int ki = key_index(w[1]);
    int cond = is_set ? 3 : 2;
    uint64_t cur = m->k[ki].exists ? m->k[ki].ver : 0;
    if (argc > cond && strtoull(w[cond + 1], NULL, 10) != cur) {
        x->type = NS_R_ERR;
        x->rc = RC_VERSION;
        return;
    }
    if (is_set) {
        bool created = !m->k[ki].exists;
        m_put(m, ki, w[2], t, touched);
        x->type = NS_R_MAP;
        x->map_rev = m->rev + 1;
        x->map_ver = m->k[ki].ver;
        x->map_created = created;
    } else {
        x->type = NS_R_INT;
        x->i = m->k[ki].exists;
        if (m->k[ki].exists)
            m_del(m, ki, touched);
    }
}

static void model_apply(struct model *m, const char **w, int argc, uint64_t t,
                        struct expect *x)
{
    bool touched[NKEYS] = {0};
    memset(x, 0, sizeof(*x));
    if (strcmp(w[0], "SET") == 0) {
        m_set(m, w, argc, t, touched, x);
    } else if (strcmp(w[0], "DEL") == 0) {
        x->type = NS_R_INT;
        for (int i = 1; i < argc; i++) {
            int ki = key_index(w[i]);
            if (m->k[ki].exists) {
                m_del(m, ki, touched);
                x->i++;
            }
        }
    } else if (strcmp(w[0], "MSET") == 0) {
        for (int i = 1; i < argc; i += 2)
            m_put(m, key_index(w[i]), w[i + 1], t, touched);
        x->type = NS_R_STATUS;
    } else if (strncmp(w[0], "CFG.", 4) == 0) {
        m_cas(m, w, argc, t, touched, x);
    } else if (strcmp(w[0], "FLUSHALL") == 0) {
        for (int i = 0; i < NKEYS; i++)
            if (m->k[i].exists)
                m_del(m, i, touched);
        x->type = NS_R_STATUS;
    } else {
        x->type = NS_R_STATUS; /* NOOP */
    }
    for (int i = 0; i < NKEYS; i++) {
        if (touched[i]) {
            m->rev++;
            break;
        }
    }
}

/* A random valid command; words point into buf. Returns argc. */
static int gen_cmd(uint64_t *rng, const struct model *m, int step, const char **w,
                   char (*buf)[24])
{
    static const char *const set_opts[][2] = {{NULL, NULL}, {"NX", NULL}, {"XX", NULL},
                                              {"GET", NULL}, {"NX", "GET"}, {"XX", "GET"}};
    int argc = 0, r = (int)(rng_next(rng) % 100);
    int ki = (int)(rng_next(rng) % NKEYS);
    snprintf(buf[0], 24, "v%d", step);
    if (r < 30) {
        const char *const *o = set_opts[rng_next(rng) % 6];
        w[argc++] = "SET", w[argc++] = MK[ki], w[argc++] = buf[0];
        for (int i = 0; i < 2 && o[i]; i++)
            w[argc++] = o[i];
    } else if (r < 45) {
        w[argc++] = "DEL";
        for (int i = 0, n = 1 + (int)(rng_next(rng) % 3); i < n; i++)
            w[argc++] = MK[rng_next(rng) % NKEYS];
    } else if (r < 60) {
        w[argc++] = "MSET";
        for (int i = 0, n = 1 + (int)(rng_next(rng) % 3); i < n; i++) {
            snprintf(buf[1 + i], 24, "m%d.%d", step, i);
            w[argc++] = MK[rng_next(rng) % NKEYS];
            w[argc++] = buf[1 + i];
        }
    } else if (r < 95) {
        bool set = r < 80;
        w[argc++] = set ? "CFG.SET" : "CFG.DEL";
        w[argc++] = MK[ki];
        if (set)
            w[argc++] = buf[0];
        uint64_t cur = m->k[ki].exists ? m->k[ki].ver : 0;
        int c = (int)(rng_next(rng) % 3); /* none, the right version, a random one */
        if (c > 0) {
            snprintf(buf[5], 24, "%llu",
                     (unsigned long long)(c == 1 ? cur : rng_next(rng) % 4));
            w[argc++] = "IFVERSION";
            w[argc++] = buf[5];
        }
    } else {
        w[argc++] = r < 98 ? "NOOP" : "FLUSHALL";
    }
    w[argc] = NULL;
    return argc;
}

static void check_reply(const struct ns_reply *r, const struct expect *x, int step)
{
    cr_assert_eq(r->type, x->type, "step %d: type %d want %d (%s)", step, r->type, x->type,
                 r->str ? r->str : "");
    if (x->type == NS_R_INT)
        cr_assert_eq(r->i, x->i, "step %d", step);
    if (x->type == NS_R_BULK)
        cr_assert_str_eq(r->str, x->str, "step %d", step);
    if (x->type == NS_R_ERR)
        cr_assert_eq(r->rc, x->rc, "step %d", step);
    if (x->type == NS_R_MAP) {
        cr_assert_eq(map_int(r, "revision"), (long long)x->map_rev, "step %d", step);
        cr_assert_eq(map_int(r, "version"), (long long)x->map_ver, "step %d", step);
        cr_assert_eq(map_int(r, "created"), x->map_created, "step %d", step);
    }
}

struct walk {
    const struct model *m;
    int next; /* model index the next visited key must match */
    int step;
};

static bool walk_fn(void *ud, const struct ns_kv *kv)
{
    struct walk *w = ud;
    while (w->next < NKEYS && !w->m->k[w->next].exists)
        w->next++;
    cr_assert_lt(w->next, NKEYS, "step %d: extra key in the store", w->step);
    const struct mkey *k = &w->m->k[w->next];
    const char *name = MK[w->next];
    cr_assert_eq(kv->klen, strlen(name), "step %d", w->step);
    cr_assert_eq(memcmp(kv->key, name, kv->klen), 0, "step %d: key %s", w->step, name);
    cr_assert_str_eq(kv->value, k->val, "step %d: %s", w->step, name);
    cr_assert_eq(kv->version, k->ver, "step %d: %s version", w->step, name);
    cr_assert_eq(kv->create_rev, k->crev, "step %d: %s create_rev", w->step, name);
    cr_assert_eq(kv->mod_rev, k->mrev, "step %d: %s mod_rev", w->step, name);
    cr_assert_eq(kv->mtime_ms, k->mtime, "step %d: %s mtime", w->step, name);
    w->next++;
    return true;
}

static void check_state(struct ns *n, const struct model *m, int step)
{
    cr_assert_eq(ns_revision(n), m->rev, "step %d", step);
    cr_assert_eq(ns_key_count(n), m->count, "step %d", step);
    struct walk w = {m, 0, step};
    cr_assert_eq(ns_scan(n, NULL, 0, NULL, 0, 0, true, walk_fn, &w, NULL, NULL), RC_OK);
    while (w.next < NKEYS && !m->k[w.next].exists)
        w.next++;
    cr_assert_eq(w.next, NKEYS, "step %d: key %s missing", step, MK[w.next % NKEYS]);
}

static void run_model(uint64_t seed, int steps)
{
    struct model m = {0};
    uint64_t rng = seed;
    char buf[8][24];
    const char *w[16];
    for (int step = 1; step <= steps; step++) {
        if (step == steps / 2) { /* restart: everything comes back from the store */
            ns_close(F.n);
            cr_assert_eq(ns_open(F.e, 7, NULL, &F.n), RC_OK);
            cr_assert_eq(ns_applied_index(F.n), F.index);
            check_state(F.n, &m, step);
        }
        int argc = gen_cmd(&rng, &m, step, w, buf);
        struct expect x;
        model_apply(&m, w, argc, F.time_ms + 10, &x);
        struct ns_reply *r = ap_(w);
        check_reply(r, &x, step);
        check_state(F.n, &m, step);
    }
}

Test(ns, random_commands_match_the_model)
{
    for (uint64_t seed = 1; seed <= 6; seed++) {
        run_model(seed * 0x9E3779B97F4A7C15ull, 600);
        close_fx();
        open_mem();
    }
}

/* ------------------------------------------------------------------ LevelDB */

TestSuite(ns_ldb, .init = open_ldb, .fini = close_fx);

Test(ns_ldb, state_and_applied_index_survive_a_restart)
{
    expect_ok(AP("MSET", "/a/1", "x", "/a/2", "y"));
    AP("CFG.SET", "/a/1", "z", "IFVERSION", "1");
    expect_int(AP("DEL", "/a/2"), 1);
    cr_assert_eq(ns_apply_empty(F.n, 4, 2), RC_OK);
    F.index = 4;
    F.term = 2;
    ns_close(F.n);
    pst_close(F.e);
    F.n = NULL;
    F.e = open_leveldb_at(F.dir);
    cr_assert_eq(ns_open(F.e, 7, NULL, &F.n), RC_OK);
    cr_assert_eq(ns_applied_index(F.n), 4);
    cr_assert_eq(ns_applied_term(F.n), 2);
    cr_assert_eq(ns_revision(F.n), 3);
    cr_assert_eq(ns_key_count(F.n), 1);
    struct ns_kv kv = get_kv("/a/1");
    cr_assert_str_eq(kv.value, "z");
    cr_assert_eq(kv.version, 2);
    cr_assert_eq(kv.create_rev, 1);
    cr_assert_eq(kv.mod_rev, 2);
    ns_kv_clear(&kv);
    cr_assert_not(has("/a/2"));
    /* Replaying the log from the start changes nothing; the next entry applies. */
    struct ns_reply r;
    cr_assert_eq(apply_words(F.n, 3, 1, 1, (const char *const[]){"DEL", "/a/1", NULL}, &r),
                 RC_OK);
    cr_assert_eq(r.type, 0);
    cr_assert(has("/a/1"));
    expect_ok(AP("SET", "/a/3", "w"));
    cr_assert_eq(ns_revision(F.n), 4);
}

Test(ns_ldb, random_commands_match_the_model_on_leveldb)
{
    run_model(42, 400);
}

/* Iterate both stores completely and compare every key and value byte for byte. */
static void expect_same_bytes(struct pst_engine *a, struct pst_engine *b)
{
    struct pst_iter *ia = pst_iter_new(a, NULL, "", 0, NULL, 0);
    struct pst_iter *ib = pst_iter_new(b, NULL, "", 0, NULL, 0);
    size_t n = 0;
    for (; pst_iter_valid(ia) && pst_iter_valid(ib); pst_iter_next(ia), pst_iter_next(ib)) {
        size_t kal, kbl, val, vbl;
        const void *ka = pst_iter_key(ia, &kal), *kb = pst_iter_key(ib, &kbl);
        const void *va = pst_iter_value(ia, &val), *vb = pst_iter_value(ib, &vbl);
        cr_assert_eq(kal, kbl, "record %zu", n);
        cr_assert_eq(memcmp(ka, kb, kal), 0, "record %zu key", n);
        cr_assert_eq(val, vbl, "record %zu", n);
        cr_assert_eq(memcmp(va, vb, val), 0, "record %zu value", n);
        n++;
    }
    cr_assert_not(pst_iter_valid(ia), "extra records in the first store");
    cr_assert_not(pst_iter_valid(ib), "extra records in the second store");
    cr_assert_eq(pst_iter_status(ia), RC_OK);
    cr_assert_eq(pst_iter_status(ib), RC_OK);
    cr_assert_gt(n, 1);
    pst_iter_free(ia);
    pst_iter_free(ib);
}

Test(ns_ldb, same_entries_give_identical_bytes_on_both_engines)
{
    struct pst_engine *me = NULL;
    struct ns *mn = NULL;
    cr_assert_eq(pst_open_mem(&me), RC_OK);
    cr_assert_eq(ns_open(me, 7, NULL, &mn), RC_OK);
    struct model m = {0};
    uint64_t rng = 7;
    char buf[8][24];
    const char *w[16];
    for (int step = 1; step <= 500; step++) {
        int argc = gen_cmd(&rng, &m, step, w, buf);
        struct expect x;
        model_apply(&m, w, argc, 1000 + (uint64_t)step, &x);
        struct ns_reply r1, r2;
        cr_assert_eq(apply_words(F.n, (uint64_t)step, 1, 1000 + (uint64_t)step, w, &r1), RC_OK);
        cr_assert_eq(apply_words(mn, (uint64_t)step, 1, 1000 + (uint64_t)step, w, &r2), RC_OK);
        check_reply(&r1, &x, step);
        check_reply(&r2, &x, step);
        ns_reply_clear(&r1);
        ns_reply_clear(&r2);
    }
    expect_same_bytes(F.e, me);
    ns_close(mn);
    pst_close(me);
}
