/*
 * test_ns_audit.c - the audit trail of the state machine (src/ns/ns_audit.c): one record
 * per changing entry with who/when/what and every key change, none for refused or empty
 * entries, the hash chain and its verification (a record altered in the store is found),
 * retention with the pruned-up-to point, scans from a revision and -COMPACTED, restart on
 * LevelDB continuing the chain, and identical bytes on two engines (determinism).
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

struct fx {
    struct pst_engine *e;
    struct ns *n;
    uint64_t index;
    uint64_t max_records;
    char dir[64];
};
static struct fx F;

static void open_ns(void)
{
    struct ns_limits lim;
    ns_limits_default(&lim);
    if (F.max_records)
        lim.audit_max_records = F.max_records;
    ns_close(F.n);
    F.n = NULL;
    cr_assert_eq(ns_open(F.e, 3, &lim, &F.n), RC_OK);
}

static void setup_mem(void)
{
    memset(&F, 0, sizeof(F));
    cr_assert_eq(pst_open_mem(&F.e), RC_OK);
    open_ns();
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void open_ldb(void)
{
    struct pst_options o;
    pst_options_default(&o);
    char *err = NULL;
    cr_assert_eq(pst_open_leveldb(F.dir, &o, &F.e, &err), RC_OK, "leveldb: %s",
                 err ? err : "?");
    free(err);
}

static void setup_ldb(void)
{
    memset(&F, 0, sizeof(F));
    strcpy(F.dir, "/tmp/test_nsa.XXXXXX");
    cr_assert_not_null(mkdtemp(F.dir));
    open_ldb();
    open_ns();
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

static void ap_on(struct ns *n, uint64_t index, const char *const *w)
{
    const char *argv[32];
    size_t lens[32];
    int argc = 0;
    for (; w[argc]; argc++) {
        argv[argc] = w[argc];
        lens[argc] = strlen(w[argc]);
    }
    struct ns_meta m = {index, 2, 1000 + index, index, "alice", "10.0.0.1:5000"};
    struct ns_reply r = {0};
    cr_assert_eq(ns_apply(n, &m, argc, (char **)argv, lens, &r), RC_OK);
    ns_reply_clear(&r);
}

static void ap_(const char *const *w)
{
    F.index++;
    ap_on(F.n, F.index, w);
}
#define AP(...) ap_((const char *const[]){__VA_ARGS__, NULL})

/* Text of a record: "rev op actor [key:old>new@version ...]" with "-" for absent. */
static void rec_text(const struct ns_audit_rec *a, char *buf, size_t cap)
{
    size_t o = (size_t)snprintf(buf, cap, "%llu %.*s %.*s", (unsigned long long)a->revision,
                                (int)a->op_len, a->op, (int)a->actor_len, a->actor);
    size_t off = 0;
    struct ns_audit_change c;
    while (ns_audit_change_next(a, &off, &c) && o < cap)
        o += (size_t)snprintf(buf + o, cap - o, " %.*s:%.*s>%.*s@%llu", (int)c.klen, c.key,
                              c.had_old ? (int)c.old_len : 1, c.had_old ? c.old : "-",
                              c.present ? (int)c.vlen : 1, c.present ? c.val : "-",
                              (unsigned long long)c.version);
}

struct collect {
    char lines[64][256];
    int n;
};

static bool collect_fn(void *ud, const struct ns_audit_rec *a)
{
    struct collect *c = ud;
    cr_assert_lt(c->n, 64);
    rec_text(a, c->lines[c->n], sizeof(c->lines[0]));
    c->n++;
    return true;
}

static void last_text(char *buf, size_t cap)
{
    struct ns_audit_rec a;
    if (ns_last_audit(F.n, &a) != RC_OK) {
        snprintf(buf, cap, "none");
        return;
    }
    rec_text(&a, buf, cap);
}

static void verify_ok(uint64_t want_records)
{
    struct ns_audit_verify v;
    cr_assert_eq(ns_audit_verify(F.n, &v), RC_OK);
    cr_assert(v.ok, "chain broken at %llu: %s", (unsigned long long)v.first_break, v.reason);
    cr_assert_eq(v.records, want_records);
}

TestSuite(ns_audit, .init = setup_mem, .fini = teardown);

Test(ns_audit, one_record_per_changing_entry_with_the_changes)
{
    char t[256];
    AP("SET", "/a", "1");
    last_text(t, sizeof t);
    cr_assert_str_eq(t, "1 set alice /a:->1@1");
    AP("CFG.SET", "/a", "2");
    last_text(t, sizeof t);
    cr_assert_str_eq(t, "2 set alice /a:1>2@2");
    AP("MSET", "/b", "x", "/a", "3", "/b", "y");
    last_text(t, sizeof t);
    cr_assert_str_eq(t, "3 set alice /a:2>3@3 /b:->y@1");
    AP("DEL", "/a", "/zz");
    last_text(t, sizeof t);
    cr_assert_str_eq(t, "4 del alice /a:3>-@0");
    /* Entries that change nothing write no record and the revision stays. */
    AP("DEL", "/zz");
    last_text(t, sizeof t);
    cr_assert_str_eq(t, "none");
    AP("CFG.SET", "/b", "z", "IFVERSION", "7");
    last_text(t, sizeof t);
    cr_assert_str_eq(t, "none");
    AP("SET", "/b", "q", "NX");
    last_text(t, sizeof t);
    cr_assert_str_eq(t, "none");
    AP("FLUSHALL");
    last_text(t, sizeof t);
    cr_assert_str_eq(t, "5 flushall alice /b:y>-@0");
    cr_assert_eq(ns_revision(F.n), 5);
    struct collect c = {0};
    uint64_t oldest = 0;
    cr_assert_eq(ns_audit_scan(F.n, 0, collect_fn, &c, &oldest), RC_OK);
    cr_assert_eq(c.n, 5);
    cr_assert_str_eq(c.lines[0], "1 set alice /a:->1@1");
    cr_assert_str_eq(c.lines[4], "5 flushall alice /b:y>-@0");
    verify_ok(5);
}

static bool first_fn(void *ud, const struct ns_audit_rec *a)
{
    struct ns_audit_rec *out = ud;
    *out = *a; /* only scalars are used after the call */
    return false;
}

Test(ns_audit, record_carries_entry_metadata_and_chains)
{
    AP("SET", "/k", "v1");
    AP("SET", "/k", "v2");
    struct ns_audit_rec r1, r2;
    uint64_t oldest = 0;
    cr_assert_eq(ns_audit_scan(F.n, 1, first_fn, &r1, &oldest), RC_OK);
    cr_assert_eq(ns_audit_scan(F.n, 2, first_fn, &r2, &oldest), RC_OK);
    cr_assert_eq(r1.revision, 1);
    cr_assert_eq(r1.index, 1);
    cr_assert_eq(r1.term, 2);
    cr_assert_eq(r1.time_ms, 1001);
    cr_assert_eq(r1.prev_hash, 0);
    cr_assert_eq(r2.prev_hash, r1.hash);
    cr_assert_neq(r1.hash, r2.hash);
    /* Scan from the middle starts there; past the end visits nothing. */
    struct collect c = {0};
    cr_assert_eq(ns_audit_scan(F.n, 2, collect_fn, &c, &oldest), RC_OK);
    cr_assert_eq(c.n, 1);
    c.n = 0;
    cr_assert_eq(ns_audit_scan(F.n, 3, collect_fn, &c, &oldest), RC_OK);
    cr_assert_eq(c.n, 0);
}

/* Flip one byte of the stored record at rev (offset from its end). */
static void tamper(uint64_t rev, size_t from_end)
{
    uint8_t key[14];
    ns_key_group_letter(key, 3, 'U');
    ns_put_u64(key + 6, rev);
    void *val = NULL;
    size_t vlen = 0;
    cr_assert_eq(pst_get(F.e, NULL, key, sizeof key, &val, &vlen), RC_OK);
    cr_assert_gt(vlen, from_end);
    ((uint8_t *)val)[vlen - 1 - from_end] ^= 0x01;
    struct pst_batch *b = pst_batch_new();
    pst_batch_put(b, key, sizeof key, val, vlen);
    cr_assert_eq(pst_write(F.e, b, true), RC_OK);
    pst_batch_free(b);
    free(val);
}

Test(ns_audit, verify_finds_a_record_altered_in_the_store)
{
    for (int i = 0; i < 10; i++)
        AP("SET", "/cfg/x", i % 2 ? "{\"a\":1}" : "{\"a\":2}");
    verify_ok(10);
    tamper(6, 9); /* the last byte of the value: the hash no longer matches */
    struct ns_audit_verify v;
    cr_assert_eq(ns_audit_verify(F.n, &v), RC_OK);
    cr_assert_not(v.ok);
    cr_assert_eq(v.first_break, 6);
    cr_assert_eq(v.records, 5);
    cr_assert(strstr(v.reason, "hash") != NULL, "%s", v.reason);
}

Test(ns_audit, verify_finds_a_deleted_record)
{
    for (int i = 0; i < 5; i++)
        AP("SET", "/k", i % 2 ? "a" : "b");
    uint8_t key[14];
    ns_key_group_letter(key, 3, 'U');
    ns_put_u64(key + 6, 3);
    struct pst_batch *b = pst_batch_new();
    pst_batch_del(b, key, sizeof key);
    cr_assert_eq(pst_write(F.e, b, true), RC_OK);
    pst_batch_free(b);
    struct ns_audit_verify v;
    cr_assert_eq(ns_audit_verify(F.n, &v), RC_OK);
    cr_assert_not(v.ok);
    cr_assert_eq(v.first_break, 3);
}

Test(ns_audit, retention_prunes_the_oldest_and_verify_starts_from_the_anchor)
{
    F.max_records = 5;
    open_ns();
    for (int i = 0; i < 20; i++) {
        char v[16];
        snprintf(v, sizeof v, "v%d", i);
        AP("SET", "/r", v);
    }
    cr_assert_eq(ns_revision(F.n), 20);
    cr_assert_eq(ns_audit_oldest(F.n), 16);
    verify_ok(5);
    struct collect c = {0};
    uint64_t oldest = 0;
    cr_assert_eq(ns_audit_scan(F.n, 15, collect_fn, &c, &oldest), RC_COMPACTED);
    cr_assert_eq(oldest, 16);
    cr_assert_eq(ns_audit_scan(F.n, 16, collect_fn, &c, &oldest), RC_OK);
    cr_assert_eq(c.n, 5);
    cr_assert_str_eq(c.lines[0], "16 set alice /r:v14>v15@16");
    /* The pruned-up-to point survives a reopen (the meta record). */
    open_ns();
    cr_assert_eq(ns_audit_oldest(F.n), 16);
    verify_ok(5);
    /* Altering the oldest retained record is still detected. */
    tamper(16, 9);
    struct ns_audit_verify v;
    cr_assert_eq(ns_audit_verify(F.n, &v), RC_OK);
    cr_assert_not(v.ok);
    cr_assert_eq(v.first_break, 16);
}

Test(ns_audit, lowered_limit_catches_up_in_bounded_steps)
{
    for (int i = 0; i < 200; i++)
        AP("SET", "/p", i % 2 ? "a" : "b");
    F.max_records = 10;
    open_ns();
    AP("SET", "/p", "c"); /* 201 records, keep 10: at most 64 pruned per entry */
    cr_assert_eq(ns_audit_oldest(F.n), 65);
    verify_ok(201 - 64);
    for (int i = 0; i < 3; i++)
        AP("SET", "/p", i % 2 ? "d" : "e");
    cr_assert_eq(ns_audit_oldest(F.n), 204 - 9);
    verify_ok(10);
}

TestSuite(ns_audit_ldb, .init = setup_ldb, .fini = teardown);

Test(ns_audit_ldb, restart_continues_the_chain)
{
    AP("SET", "/a", "1");
    AP("SET", "/a", "2");
    ns_close(F.n);
    F.n = NULL;
    pst_close(F.e);
    F.e = NULL;
    open_ldb();
    open_ns();
    AP("DEL", "/a");
    verify_ok(3);
    struct ns_audit_rec r2, r3;
    uint64_t oldest = 0;
    cr_assert_eq(ns_audit_scan(F.n, 2, first_fn, &r2, &oldest), RC_OK);
    cr_assert_eq(ns_audit_scan(F.n, 3, first_fn, &r3, &oldest), RC_OK);
    cr_assert_eq(r3.prev_hash, r2.hash);
}

Test(ns_audit, same_entries_give_the_same_bytes_on_two_engines)
{
    struct pst_engine *e2 = NULL;
    struct ns *n2 = NULL;
    cr_assert_eq(pst_open_mem(&e2), RC_OK);
    cr_assert_eq(ns_open(e2, 3, NULL, &n2), RC_OK);
    const char *const cmds[][6] = {
        {"SET", "/x", "1", NULL},         {"MSET", "/y", "2", "/x", "3", NULL},
        {"DEL", "/x", NULL},              {"CFG.SET", "/z", "{\"a\":[1,2]}", NULL},
        {"FLUSHALL", NULL},
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        ap_(cmds[i]);
        ap_on(n2, F.index, cmds[i]);
    }
    uint8_t lo[6], hi[6];
    ns_key_group_letter(lo, 3, 'U');
    ns_key_group_letter(hi, 3, 'V');
    struct pst_iter *a = pst_iter_new(F.e, NULL, lo, 6, hi, 6);
    struct pst_iter *b = pst_iter_new(e2, NULL, lo, 6, hi, 6);
    int count = 0;
    for (; pst_iter_valid(a); pst_iter_next(a), pst_iter_next(b), count++) {
        cr_assert(pst_iter_valid(b));
        size_t ka, kb, va, vb;
        const void *pka = pst_iter_key(a, &ka), *pkb = pst_iter_key(b, &kb);
        const void *pva = pst_iter_value(a, &va), *pvb = pst_iter_value(b, &vb);
        cr_assert_eq(ka, kb);
        cr_assert_eq(va, vb);
        cr_assert_eq(memcmp(pka, pkb, ka), 0);
        cr_assert_eq(memcmp(pva, pvb, va), 0);
    }
    cr_assert_not(pst_iter_valid(b));
    cr_assert_eq(count, 6); /* the meta record + 5 records */
    pst_iter_free(a);
    pst_iter_free(b);
    ns_close(n2);
    pst_close(e2);
}
