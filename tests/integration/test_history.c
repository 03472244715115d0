/*
 * test_history.c - per-key history through the real server: CFG.HISTORY and CFG.GET key
 * REV r after writes, deletes and re-creations, in RESP2 (flat arrays) and RESP3 (maps),
 * paging with COUNT/BEFORE, the errors (future revision, syntax), -COMPACTED with a small
 * --history-max-versions, history across a restart, and hiredis (RESP2) reply types.
 *
 * Each test starts its own server on a free port with a fresh data dir (helper.h).
 * Revisions are taken from the CFG.SET replies, never assumed.
 */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "helper.h"

static struct itest_srv srv;
static struct itest_conn *conn2, *conn3;

static void start_with(const char *const *extra)
{
    int rc = itest_start(&srv, extra);
    if (rc != 0)
        itest_log_tail(&srv, 40);
    cr_assert_eq(rc, 0, "server %s did not start", itest_bin());
    cr_assert_eq(itest_connect_pair(srv.port, &conn2, &conn3), 0);
}

static void setup(void) { start_with(NULL); }
static void setup_small(void)
{
    start_with((const char *const[]){"--history-max-versions", "2", NULL});
}

static void teardown(void)
{
    itest_close(conn2);
    itest_close(conn3);
    conn2 = conn3 = NULL;
    itest_fini();
}

static long long field_int(const struct itest_reply *r, const char *name)
{
    const struct itest_reply *f = itest_field(r, name);
    cr_assert(f && f->type == IT_INT, "field %s missing or not an integer: %s", name,
              itest_fmt(r));
    return f->integer;
}

static const char *field_str(const struct itest_reply *r, const char *name)
{
    const struct itest_reply *f = itest_field(r, name);
    cr_assert(f && f->type == IT_BULK, "field %s missing or not a bulk: %s", name,
              itest_fmt(r));
    return f->str;
}

/* CFG.SET ... and return the revision it answered. */
static long long cfg_set(struct itest_conn *c, const char *line)
{
    struct itest_reply *r = itest_call_r(c, line);
    cr_assert(r, "no reply to %s", line);
    long long rev = field_int(r, "revision");
    itest_reply_free(r);
    return rev;
}

/* A formatted command or expected reply (rotating static buffers). */
static void check_item(const struct itest_reply *it, bool r3, long long rev, long long version,
                       const char *type, const char *value)
{
    cr_assert(it && it->type == (r3 ? IT_MAP : IT_ARRAY), "item shape: %s", itest_fmt(it));
    cr_assert_eq(it->n, 12, "six pairs: %s", itest_fmt(it));
    static const char *names[] = {"revision", "version", "type", "value", "mtime_ms", "actor"};
    for (int i = 0; i < 6; i++)
        cr_assert_str_eq(it->elem[2 * i]->str, names[i], "pair order: %s", itest_fmt(it));
    cr_assert_eq(field_int(it, "revision"), rev, "%s", itest_fmt(it));
    cr_assert_eq(field_int(it, "version"), version, "%s", itest_fmt(it));
    cr_assert_str_eq(field_str(it, "type"), type);
    const struct itest_reply *v = itest_field(it, "value");
    if (value)
        cr_assert(v && v->type == IT_BULK && strcmp(v->str, value) == 0, "%s", itest_fmt(it));
    else
        cr_assert(v && v->type == IT_NULL, "a deletion has a nil value: %s", itest_fmt(it));
    long long mt = field_int(it, "mtime_ms"), now_ms = (long long)time(NULL) * 1000;
    cr_assert(mt > now_ms - 60000 && mt < now_ms + 60000, "mtime_ms %lld is about now", mt);
    cr_assert_str_eq(field_str(it, "actor"), "default");
}

static void history_body(struct itest_conn *c, bool r3)
{
    long long r1 = cfg_set(c, "CFG.SET /h/k a");
    ITEST_EXPECT(c, "SET /h/other x", "+OK");
    ITEST_EXPECT(c, "SET /h/k b", "+OK");
    ITEST_EXPECT(c, "DEL /h/k", ":1");
    long long r5 = cfg_set(c, "CFG.SET /h/k c");
    cr_assert_eq(r5, r1 + 4, "one revision per change");
    long long r2 = r1 + 2, r4 = r1 + 3; /* SET b, DEL */

    /* reads as of each revision */
    const char *nil = r3 ? "_" : "$nil";
    ITEST_EXPECT(c, itest_sprintf("CFG.GET /h/k REV %lld", r1 - 1), nil);
    struct itest_reply *g = itest_call_r(c, itest_sprintf("CFG.GET /h/k REV %lld", r1 + 1));
    cr_assert(g && g->type == (r3 ? IT_MAP : IT_ARRAY), "CFG.GET REV shape: %s", itest_fmt(g));
    cr_assert_eq(g->n, 10, "same pairs as CFG.GET: %s", itest_fmt(g));
    cr_assert_str_eq(field_str(g, "value"), "a");
    cr_assert_eq(field_int(g, "version"), 1);
    cr_assert_eq(field_int(g, "create_revision"), r1);
    cr_assert_eq(field_int(g, "mod_revision"), r1);
    itest_reply_free(g);
    g = itest_call_r(c, itest_sprintf("CFG.GET /h/k REV %lld", r2));
    cr_assert_str_eq(field_str(g, "value"), "b");
    cr_assert_eq(field_int(g, "version"), 2);
    itest_reply_free(g);
    ITEST_EXPECT(c, itest_sprintf("CFG.GET /h/k REV %lld", r4), nil);
    g = itest_call_r(c, itest_sprintf("CFG.GET /h/k rev %lld", r5));
    cr_assert_str_eq(field_str(g, "value"), "c");
    cr_assert_eq(field_int(g, "version"), 1, "re-created: version 1 again");
    cr_assert_eq(field_int(g, "create_revision"), r5);
    itest_reply_free(g);
    ITEST_EXPECT(c, "CFG.GET /h/nope REV 1", nil);

    /* the listing, newest first */
    struct itest_reply *h = itest_call_r(c, "CFG.HISTORY /h/k");
    cr_assert(h && h->type == IT_ARRAY && h->n == 4, "four versions: %s", itest_fmt(h));
    check_item(h->elem[0], r3, r5, 1, "set", "c");
    check_item(h->elem[1], r3, r4, 0, "del", NULL);
    check_item(h->elem[2], r3, r2, 2, "set", "b");
    check_item(h->elem[3], r3, r1, 1, "set", "a");
    itest_reply_free(h);
    h = itest_call_r(c, itest_sprintf("CFG.HISTORY /h/k COUNT 2 BEFORE %lld", r5));
    cr_assert(h && h->type == IT_ARRAY && h->n == 2, "a page of two: %s", itest_fmt(h));
    check_item(h->elem[0], r3, r4, 0, "del", NULL);
    check_item(h->elem[1], r3, r2, 2, "set", "b");
    itest_reply_free(h);
    ITEST_EXPECT(c, itest_sprintf("CFG.HISTORY /h/k BEFORE %lld", r1), "[]");
    ITEST_EXPECT(c, "CFG.HISTORY /h/nope", "[]");

    /* errors */
    ITEST_EXPECT(c, itest_sprintf("CFG.GET /h/k REV %lld", r5 + 100),
                 itest_sprintf("-ERR revision %lld is in the future; current revision is %lld", r5 + 100,
                     r5));
    ITEST_EXPECT(c, "CFG.GET /h/k REV", "-ERR syntax error");
    ITEST_EXPECT(c, "CFG.GET /h/k AT 1", "-ERR syntax error");
    ITEST_EXPECT(c, "CFG.GET /h/k REV 1 2", "-ERR syntax error");
    ITEST_EXPECT(c, "CFG.GET /h/k REV -1", "-ERR value is not an integer or out of range");
    ITEST_EXPECT(c, "CFG.GET /h/k REV x", "-ERR value is not an integer or out of range");
    ITEST_EXPECT(c, "CFG.HISTORY /h/k COUNT 0", "-ERR COUNT must be an integer in 1..1000");
    ITEST_EXPECT(c, "CFG.HISTORY /h/k COUNT 1001", "-ERR COUNT must be an integer in 1..1000");
    ITEST_EXPECT(c, "CFG.HISTORY /h/k BEFORE 0", "-ERR BEFORE must be a revision >= 1");
    ITEST_EXPECT(c, "CFG.HISTORY /h/k BEFORE x", "-ERR value is not an integer or out of range");
    ITEST_EXPECT(c, "CFG.HISTORY /h/k COUNT", "-ERR syntax error");
    ITEST_EXPECT(c, "CFG.HISTORY /h/k LIMIT 3", "-ERR syntax error");
    ITEST_EXPECT(c, "CFG.HISTORY", "-ERR wrong number of arguments for 'cfg.history' command");
}

Test(hist, history_and_rev_reads_resp2, .init = setup, .fini = teardown, .timeout = 60)
{
    history_body(conn2, false);
}

Test(hist, history_and_rev_reads_resp3, .init = setup, .fini = teardown, .timeout = 60)
{
    history_body(conn3, true);
}

Test(hist, compacted_with_small_retention, .init = setup_small, .fini = teardown,
     .timeout = 60)
{
    struct itest_conn *c = conn2;
    ITEST_EXPECT(c, "CONFIG GET history-max-versions", "[\"history-max-versions\", \"2\"]");
    long long r1 = cfg_set(c, "CFG.SET /c/k v1");
    cfg_set(c, "CFG.SET /c/k v2");
    long long r3 = cfg_set(c, "CFG.SET /c/k v3");
    long long r4 = cfg_set(c, "CFG.SET /c/k v4");
    struct itest_reply *h = itest_call_r(c, "CFG.HISTORY /c/k");
    cr_assert(h && h->n == 2, "only two versions kept: %s", itest_fmt(h));
    cr_assert_eq(field_int(h->elem[0], "revision"), r4);
    cr_assert_eq(field_int(h->elem[1], "revision"), r3);
    itest_reply_free(h);
    ITEST_EXPECT(c, itest_sprintf("CFG.GET /c/k REV %lld", r1), itest_sprintf("-COMPACTED oldest=%lld", r3));
    ITEST_EXPECT(c, itest_sprintf("CFG.GET /c/k REV %lld", r3 - 1), itest_sprintf("-COMPACTED oldest=%lld", r3));
    ITEST_EXPECT(conn3, itest_sprintf("CFG.GET /c/k REV %lld", r1), itest_sprintf("-COMPACTED oldest=%lld", r3));
    struct itest_reply *g = itest_call_r(c, itest_sprintf("CFG.GET /c/k REV %lld", r3));
    cr_assert_str_eq(field_str(g, "value"), "v3");
    itest_reply_free(g);
    /* a deletion counts as a version */
    ITEST_EXPECT(c, "DEL /c/k", ":1");
    ITEST_EXPECT(c, itest_sprintf("CFG.GET /c/k REV %lld", r3), itest_sprintf("-COMPACTED oldest=%lld", r4));
    ITEST_EXPECT(c, itest_sprintf("CFG.GET /c/k REV %lld", r4 + 1), "$nil");
    /* via redis-cli style client (hiredis): the error text */
    redisContext *rc = redisConnect("127.0.0.1", srv.port);
    cr_assert(rc && !rc->err);
    redisReply *r = redisCommand(rc, "CFG.GET /c/k REV %lld", r1);
    cr_assert(r && r->type == REDIS_REPLY_ERROR, "an error reply");
    cr_assert_str_eq(r->str, itest_sprintf("COMPACTED oldest=%lld", r4));
    freeReplyObject(r);
    redisFree(rc);
}

Test(hist, history_survives_a_restart, .init = setup, .fini = teardown, .timeout = 60)
{
    long long r1 = cfg_set(conn2, "CFG.SET /r/k one");
    long long r2 = cfg_set(conn2, "CFG.SET /r/k two");
    itest_close(conn2);
    itest_close(conn3);
    conn2 = conn3 = NULL;
    cr_assert_eq(itest_stop(&srv, 10000), 0, "clean stop");
    int rc = itest_restart(&srv, NULL);
    if (rc != 0)
        itest_log_tail(&srv, 40);
    cr_assert_eq(rc, 0);
    conn2 = itest_connect(srv.port);
    cr_assert(conn2);
    struct itest_reply *g = itest_call_r(conn2, itest_sprintf("CFG.GET /r/k REV %lld", r1));
    cr_assert_str_eq(field_str(g, "value"), "one");
    itest_reply_free(g);
    struct itest_reply *h = itest_call_r(conn2, "CFG.HISTORY /r/k");
    cr_assert(h && h->n == 2, "%s", itest_fmt(h));
    cr_assert_eq(field_int(h->elem[0], "revision"), r2);
    itest_reply_free(h);
}

Test(hist, hiredis_reply_types, .init = setup, .fini = teardown, .timeout = 60)
{
    redisContext *c = redisConnect("127.0.0.1", srv.port);
    cr_assert(c && !c->err);
    freeReplyObject(redisCommand(c, "SET %s %s", "/x/k", "1"));
    freeReplyObject(redisCommand(c, "DEL %s", "/x/k"));
    redisReply *r = redisCommand(c, "CFG.HISTORY %s", "/x/k");
    cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2);
    redisReply *del = r->element[0], *set = r->element[1];
    cr_assert(del->type == REDIS_REPLY_ARRAY && del->elements == 12);
    cr_assert_str_eq(del->element[5]->str, "del");
    cr_assert_eq(del->element[7]->type, REDIS_REPLY_NIL, "nil value for a deletion");
    cr_assert_eq(set->element[1]->type, REDIS_REPLY_INTEGER);
    cr_assert_eq(set->element[7]->type, REDIS_REPLY_STRING);
    cr_assert_str_eq(set->element[7]->str, "1");
    freeReplyObject(r);
    redisFree(c);
}
