/*
 * test_ns_exec.c - MULTI/EXEC in the state machine (src/ns/ns_exec.c): a transaction is
 * one entry, applied atomically with one revision; later commands read earlier ones'
 * staged changes; a key's version advances once per transaction; a failing command is an
 * error element and the others still apply; WATCH aborts the whole entry (null reply,
 * nothing changed) when a watched key was set, deleted, or created and deleted since the
 * watched revision; malformed entries change nothing.
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ns/ns.h"
#include "ns/ns_internal.h"
#include "persist/pst.h"
#include "rc.h"

/* ------------------------------------------------------------------ fixture */

static struct pst_engine *E;
static struct ns *N;
static uint64_t Index;

static void setup(void)
{
    cr_assert_eq(pst_open_mem(&E), RC_OK);
    cr_assert_eq(ns_open(E, 1, NULL, &N), RC_OK);
    Index = 0;
}

static void teardown(void)
{
    ns_close(N);
    pst_close(E);
}

#define ARGS_MAX 256

/* Apply argv as the next entry; the reply is static (cleared on the next call). */
static struct ns_reply *apply_argv(int argc, char **argv, size_t *lens)
{
    static struct ns_reply r;
    ns_reply_clear(&r);
    Index++;
    struct ns_meta m = {Index, 1, 1700000000000ull + Index, Index, "bob", "127.0.0.1:1"};
    int rc = ns_apply(N, &m, argc, argv, lens, &r);
    cr_assert_eq(rc, RC_OK, "apply %s: rc %d", argv[0], rc);
    cr_assert_eq(ns_applied_index(N), Index);
    return &r;
}

static struct ns_reply *ap_(const char *const *words)
{
    char *argv[ARGS_MAX];
    size_t lens[ARGS_MAX];
    int argc = 0;
    for (; words[argc]; argc++) {
        argv[argc] = (char *)words[argc];
        lens[argc] = strlen(words[argc]);
    }
    return apply_argv(argc, argv, lens);
}
#define AP(...) ap_((const char *const[]){__VA_ARGS__, NULL})

/* An EXEC entry under construction (the layout of ns.h). */
struct xb {
    const char *wkey[16];
    uint64_t wrev[16];
    int nw;
    const char *cmd[ARGS_MAX]; /* each command: its words, then NULL */
    int ncmdw, ncmds;
};

static void xb_watch(struct xb *b, const char *key, uint64_t rev)
{
    b->wkey[b->nw] = key;
    b->wrev[b->nw++] = rev;
}

static void xb_cmd_(struct xb *b, const char *const *words)
{
    for (int i = 0; words[i]; i++)
        b->cmd[b->ncmdw++] = words[i];
    b->cmd[b->ncmdw++] = NULL;
    b->ncmds++;
}
#define XB_CMD(b, ...) xb_cmd_((b), (const char *const[]){__VA_ARGS__, NULL})

static struct ns_reply *xb_apply(const struct xb *b)
{
    static char nums[ARGS_MAX][24];
    char *argv[ARGS_MAX];
    size_t lens[ARGS_MAX];
    int argc = 0, nn = 0;
#define PUT(s) (argv[argc] = (char *)(s), lens[argc] = strlen(argv[argc]), argc++)
#define PUTNUM(v) (snprintf(nums[nn], 24, "%llu", (unsigned long long)(v)), PUT(nums[nn++]))
    PUT("EXEC");
    PUT("1");
    PUTNUM(b->nw);
    for (int i = 0; i < b->nw; i++) {
        PUT(b->wkey[i]);
        PUTNUM(b->wrev[i]);
    }
    PUTNUM(b->ncmds);
    for (int i = 0; i < b->ncmdw;) {
        int n = 0;
        while (b->cmd[i + n])
            n++;
        PUTNUM(n);
        for (int k = 0; k < n; k++)
            PUT(b->cmd[i + k]);
        i += n + 1;
    }
#undef PUT
#undef PUTNUM
    return apply_argv(argc, argv, lens);
}

static void expect_status(const struct ns_reply *r, const char *s)
{
    cr_assert_eq(r->type, NS_R_STATUS, "type %d (%s)", r->type, r->str ? r->str : "");
    cr_assert_str_eq(r->str, s);
}

static void expect_bulk(const struct ns_reply *r, const char *s)
{
    cr_assert_eq(r->type, NS_R_BULK, "type %d (%s)", r->type, r->str ? r->str : "");
    cr_assert_eq(r->len, strlen(s));
    cr_assert_str_eq(r->str, s);
}

static void expect_int(const struct ns_reply *r, long long v)
{
    cr_assert_eq(r->type, NS_R_INT, "type %d (%s)", r->type, r->str ? r->str : "");
    cr_assert_eq(r->i, v, "got %lld want %lld", r->i, v);
}

static void expect_err(const struct ns_reply *r, int rc, const char *msg)
{
    cr_assert_eq(r->type, NS_R_ERR, "type %d", r->type);
    cr_assert_eq(r->rc, rc, "rc %d (%s)", r->rc, r->str);
    cr_assert_str_eq(r->str, msg);
}

static long long map_int(const struct ns_reply *r, const char *name)
{
    cr_assert_eq(r->type, NS_R_MAP, "type %d", r->type);
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->elem[2 * i].str, name) == 0)
            return r->elem[2 * i + 1].i;
    cr_assert_fail("no %s in map", name);
    return -1;
}

static struct ns_kv get_kv(const char *key)
{
    struct ns_kv kv;
    int rc = ns_get(N, key, strlen(key), &kv);
    cr_assert_eq(rc, RC_OK, "get %s: rc %d", key, rc);
    return kv;
}

static void expect_value(const char *key, const char *want)
{
    struct ns_kv kv = get_kv(key);
    cr_assert_str_eq(kv.value, want, "%s", key);
    ns_kv_clear(&kv);
}

static bool exists(const char *key)
{
    bool e = true;
    cr_assert_eq(ns_exists(N, key, strlen(key), &e), RC_OK);
    return e;
}

static bool count_fn(void *ud, const struct ns_version *v)
{
    (void)v;
    (*(int *)ud)++;
    return true;
}

static int versions(const char *key)
{
    int n = 0;
    cr_assert_eq(ns_history(N, key, strlen(key), 0, 0, count_fn, &n), RC_OK);
    return n;
}

TestSuite(ns_exec, .init = setup, .fini = teardown);

/* ------------------------------------------------------------------ atomicity */

Test(ns_exec, multi_key_transaction_is_one_revision)
{
    AP("SET", "x", "0");
    uint64_t rev0 = ns_revision(N);
    struct xb b = {0};
    XB_CMD(&b, "SET", "a", "1");
    XB_CMD(&b, "MSET", "b", "2", "c", "3");
    XB_CMD(&b, "DEL", "x");
    XB_CMD(&b, "CFG.SET", "d", "4");
    struct ns_reply *r = xb_apply(&b);
    cr_assert_eq(r->type, NS_R_ARRAY);
    cr_assert_eq(r->n, 4);
    expect_status(&r->elem[0], "OK");
    expect_status(&r->elem[1], "OK");
    expect_int(&r->elem[2], 1);
    cr_assert_eq((uint64_t)map_int(&r->elem[3], "revision"), rev0 + 1);
    cr_assert_eq(ns_revision(N), rev0 + 1, "the whole transaction is one revision");
    cr_assert_eq(ns_key_count(N), 4);
    const char *keys[] = {"a", "b", "c", "d"};
    for (int i = 0; i < 4; i++) {
        struct ns_kv kv = get_kv(keys[i]);
        cr_assert_eq(kv.mod_rev, rev0 + 1, "%s", keys[i]);
        cr_assert_eq(kv.create_rev, rev0 + 1, "%s", keys[i]);
        ns_kv_clear(&kv);
    }
    cr_assert_not(exists("x"));
    struct ns_audit_rec a;
    cr_assert_eq(ns_last_audit(N, &a), RC_OK, "one audit record for the transaction");
    cr_assert(a.op_len == 4 && memcmp(a.op, "exec", 4) == 0, "op %.*s", (int)a.op_len, a.op);
    cr_assert_eq(a.revision, rev0 + 1);
    cr_assert_eq(a.nchanges, 5, "a b c d set, x deleted");
}

Test(ns_exec, later_commands_read_earlier_writes)
{
    AP("SET", "k", "old");
    struct xb b = {0};
    XB_CMD(&b, "GET", "k");
    XB_CMD(&b, "SET", "k", "v1");
    XB_CMD(&b, "GET", "k");
    XB_CMD(&b, "MGET", "k", "nope", "n");
    XB_CMD(&b, "SET", "n", "12345");
    XB_CMD(&b, "EXISTS", "k", "k", "n", "nope");
    XB_CMD(&b, "STRLEN", "n");
    XB_CMD(&b, "TYPE", "k");
    XB_CMD(&b, "DBSIZE");
    XB_CMD(&b, "DEL", "k");
    XB_CMD(&b, "GET", "k");
    XB_CMD(&b, "TYPE", "k");
    XB_CMD(&b, "STRLEN", "k");
    XB_CMD(&b, "DBSIZE");
    XB_CMD(&b, "SET", "k", "v2", "NX");
    XB_CMD(&b, "CFG.GET", "k");
    struct ns_reply *r = xb_apply(&b);
    cr_assert_eq(r->type, NS_R_ARRAY);
    cr_assert_eq(r->n, 16);
    expect_bulk(&r->elem[0], "old");
    expect_bulk(&r->elem[2], "v1");
    cr_assert_eq(r->elem[3].type, NS_R_ARRAY);
    cr_assert_eq(r->elem[3].n, 3);
    expect_bulk(&r->elem[3].elem[0], "v1");
    cr_assert_eq(r->elem[3].elem[1].type, NS_R_NULL);
    cr_assert_eq(r->elem[3].elem[2].type, NS_R_NULL, "n is set only after the MGET");
    expect_int(&r->elem[5], 3);
    expect_int(&r->elem[6], 5);
    expect_status(&r->elem[7], "string");
    expect_int(&r->elem[8], 2);
    expect_int(&r->elem[9], 1);
    cr_assert_eq(r->elem[10].type, NS_R_NULL, "the deletion is seen");
    expect_status(&r->elem[11], "none");
    expect_int(&r->elem[12], 0);
    expect_int(&r->elem[13], 1);
    expect_status(&r->elem[14], "OK"); /* NX met: k was deleted earlier in the entry */
    cr_assert_eq(r->elem[15].type, NS_R_MAP);
    expect_bulk(&r->elem[15].elem[1], "v2");
    cr_assert_eq(map_int(&r->elem[15], "mod_revision"), (long long)ns_revision(N));
    expect_value("k", "v2");
    expect_value("n", "12345");
}

Test(ns_exec, version_advances_once_per_key)
{
    AP("CFG.SET", "k", "a"); /* version 1 */
    uint64_t rev0 = ns_revision(N);
    int hist0 = versions("k");
    struct xb b = {0};
    XB_CMD(&b, "SET", "k", "b");
    XB_CMD(&b, "SET", "k", "c");
    XB_CMD(&b, "CFG.SET", "k", "d", "IFVERSION", "2"); /* sees version 2 already */
    XB_CMD(&b, "CFG.SET", "new", "1");
    XB_CMD(&b, "CFG.SET", "new", "2");
    struct ns_reply *r = xb_apply(&b);
    cr_assert_eq(r->type, NS_R_ARRAY);
    cr_assert_eq(map_int(&r->elem[2], "version"), 2);
    cr_assert_eq(map_int(&r->elem[3], "version"), 1);
    cr_assert_eq(map_int(&r->elem[4], "version"), 1);
    cr_assert_eq(map_int(&r->elem[4], "created"), 0);
    struct ns_kv kv = get_kv("k");
    cr_assert_str_eq(kv.value, "d");
    cr_assert_eq(kv.version, 2);
    cr_assert_eq(kv.mod_rev, rev0 + 1);
    ns_kv_clear(&kv);
    cr_assert_eq(versions("k"), hist0 + 1, "one history version per key per transaction");
    kv = get_kv("new");
    cr_assert_eq(kv.version, 1);
    ns_kv_clear(&kv);
}

Test(ns_exec, a_failing_command_does_not_stop_the_others)
{
    AP("SET", "a", "1");
    struct xb b = {0};
    XB_CMD(&b, "SET", "a", "2");
    XB_CMD(&b, "CFG.SET", "a", "x", "IFVERSION", "7");
    XB_CMD(&b, "SET", "b", "1", "NX", "XX");
    XB_CMD(&b, "BOGUS", "b");
    XB_CMD(&b, "EXEC");
    XB_CMD(&b, "GET");
    XB_CMD(&b, "SET", "c", "3");
    struct ns_reply *r = xb_apply(&b);
    cr_assert_eq(r->type, NS_R_ARRAY);
    cr_assert_eq(r->n, 7);
    expect_status(&r->elem[0], "OK");
    expect_err(&r->elem[1], RC_VERSION, "version mismatch: current version is 2");
    expect_err(&r->elem[2], RC_BADARG, "syntax error");
    expect_err(&r->elem[3], RC_BADARG, "unknown command for the state machine");
    expect_err(&r->elem[4], RC_BADARG, "EXEC is not allowed inside a transaction");
    expect_err(&r->elem[5], RC_BADARG, "wrong number of arguments for 'get' command");
    expect_status(&r->elem[6], "OK");
    expect_value("a", "2");
    expect_value("c", "3");
    cr_assert_not(exists("b"));
}

Test(ns_exec, reads_only_and_empty_transactions_change_nothing)
{
    AP("SET", "a", "1");
    uint64_t rev0 = ns_revision(N);
    struct xb b = {0};
    XB_CMD(&b, "GET", "a");
    XB_CMD(&b, "PING");
    XB_CMD(&b, "ECHO", "hi");
    struct ns_reply *r = xb_apply(&b);
    cr_assert_eq(r->n, 3);
    expect_bulk(&r->elem[0], "1");
    expect_status(&r->elem[1], "PONG");
    expect_bulk(&r->elem[2], "hi");
    cr_assert_eq(ns_revision(N), rev0);
    struct xb empty = {0};
    r = xb_apply(&empty);
    cr_assert_eq(r->type, NS_R_ARRAY);
    cr_assert_eq(r->n, 0);
    cr_assert_eq(ns_revision(N), rev0);
}

Test(ns_exec, cfg_get_rev_reads_history_before_the_transaction)
{
    AP("SET", "k", "1");
    uint64_t r1 = ns_revision(N);
    AP("SET", "k", "2");
    struct xb b = {0};
    XB_CMD(&b, "SET", "k", "3");
    char rev[24];
    snprintf(rev, sizeof rev, "%llu", (unsigned long long)r1);
    XB_CMD(&b, "CFG.GET", "k", "REV", rev);
    XB_CMD(&b, "CFG.GET", "k", "REV", "99");
    struct ns_reply *r = xb_apply(&b);
    expect_bulk(&r->elem[1].elem[1], "1");
    expect_err(&r->elem[2], RC_BADARG, "revision 99 is in the future; current revision is 2");
}

/* ------------------------------------------------------------------ watches */

Test(ns_exec, watch_of_an_unchanged_key_lets_the_transaction_apply)
{
    AP("SET", "w", "1");
    uint64_t at = ns_revision(N);
    AP("SET", "other", "1"); /* the group revision moves, w does not */
    struct xb b = {0};
    xb_watch(&b, "w", at);
    xb_watch(&b, "never", at); /* a key that never existed */
    XB_CMD(&b, "SET", "w", "2");
    struct ns_reply *r = xb_apply(&b);
    cr_assert_eq(r->type, NS_R_ARRAY);
    expect_value("w", "2");
}

Test(ns_exec, watch_aborts_when_the_key_was_set_since)
{
    AP("SET", "w", "1");
    uint64_t at = ns_revision(N);
    AP("SET", "w", "2");
    uint64_t rev = ns_revision(N);
    struct xb b = {0};
    xb_watch(&b, "w", at);
    XB_CMD(&b, "SET", "x", "1");
    XB_CMD(&b, "SET", "w", "3");
    struct ns_reply *r = xb_apply(&b);
    cr_assert_eq(r->type, NS_R_NULL, "aborted: null reply, type %d", r->type);
    cr_assert_eq(ns_revision(N), rev, "nothing changed");
    cr_assert_not(exists("x"));
    expect_value("w", "2");
    /* watching at the newest revision passes */
    b.wrev[0] = rev;
    r = xb_apply(&b);
    cr_assert_eq(r->type, NS_R_ARRAY);
    expect_value("w", "3");
}

Test(ns_exec, watch_aborts_when_the_key_was_deleted_or_created_and_deleted)
{
    AP("SET", "w", "1");
    uint64_t at = ns_revision(N);
    AP("DEL", "w");
    struct xb b = {0};
    xb_watch(&b, "w", at);
    XB_CMD(&b, "SET", "x", "1");
    cr_assert_eq(xb_apply(&b)->type, NS_R_NULL, "deleted since WATCH");
    cr_assert_not(exists("x"));

    uint64_t at2 = ns_revision(N);
    AP("SET", "ghost", "1");
    AP("DEL", "ghost"); /* absent at WATCH and now, but changed in between */
    struct xb g = {0};
    xb_watch(&g, "ghost", at2);
    XB_CMD(&g, "SET", "x", "1");
    cr_assert_eq(xb_apply(&g)->type, NS_R_NULL, "created and deleted since WATCH");
    cr_assert_not(exists("x"));

    AP("SET", "f", "1");
    uint64_t at3 = ns_revision(N);
    AP("FLUSHALL");
    struct xb f = {0};
    xb_watch(&f, "f", at3);
    XB_CMD(&f, "SET", "x", "1");
    cr_assert_eq(xb_apply(&f)->type, NS_R_NULL, "FLUSHALL deleted it");
}

Test(ns_exec, a_committed_transaction_aborts_a_competing_one)
{
    AP("SET", "counter", "0");
    uint64_t at = ns_revision(N);
    struct xb b1 = {0}, b2 = {0};
    xb_watch(&b1, "counter", at);
    XB_CMD(&b1, "SET", "counter", "1");
    xb_watch(&b2, "counter", at);
    XB_CMD(&b2, "SET", "counter", "1");
    cr_assert_eq(xb_apply(&b1)->type, NS_R_ARRAY);
    cr_assert_eq(xb_apply(&b2)->type, NS_R_NULL, "the second read a stale value");
    expect_value("counter", "1");
    cr_assert_eq(versions("counter"), 2);
}

/* ------------------------------------------------------------------ malformed */

Test(ns_exec, malformed_entries_change_nothing)
{
    AP("SET", "a", "1");
    uint64_t rev = ns_revision(N);
    static const char *const bad[][12] = {
        {"EXEC", NULL},
        {"EXEC", "2", "0", "0", NULL},                        /* unknown format */
        {"EXEC", "1", "0", "1", "5", "SET", "a", "2", NULL},  /* command runs past the end */
        {"EXEC", "1", "0", "1", "0", NULL},                   /* empty command */
        {"EXEC", "1", "0", "1", "3", "SET", "a", "2", "x", NULL}, /* trailing argument */
        {"EXEC", "1", "1", "a", "x", "0", NULL},              /* revision not a number */
        {"EXEC", "1", "5", "a", "1", "0", NULL},              /* more watches than given */
        {"EXEC", "1", "0", "-1", NULL},
        {"EXEC", "1", "0", "10001", NULL},                    /* over NS_EXEC_CMDS_MAX */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct ns_reply *r = ap_(bad[i]);
        expect_err(r, RC_BADARG, "malformed EXEC entry");
        cr_assert_eq(ns_revision(N), rev, "case %zu", i);
        expect_value("a", "1");
    }
}
