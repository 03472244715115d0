/*
 * test_audit.c - the audit trail through the real server: CFG.AUDIT's records (actor,
 * client, op, old -> new, JSON paths) with COUNT/SINCE/ACTOR in RESP3 and RESP2,
 * CFG.AUDIT.VERIFY passing and then finding a record altered on disk (the server stopped,
 * one byte changed with LevelDB opened directly, restarted), the JSON-lines audit file
 * (one line per revision, resumed without gaps or duplicates after kill -9 and a torn last
 * line), and keyspace notifications received by a real subscriber.
 */
#include <criterion/criterion.h>
#include <leveldb/c.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helper.h"

static struct itest_srv srv;
static struct itest_conn *c2, *c3;

static void start_with(const char *const *extra)
{
    int rc = itest_start(&srv, extra);
    if (rc != 0)
        itest_log_tail(&srv, 40);
    cr_assert_eq(rc, 0, "server %s did not start", itest_bin());
    cr_assert_eq(itest_connect_pair(srv.port, &c2, &c3), 0);
}

static void reconnect(void)
{
    itest_close(c2);
    itest_close(c3);
    cr_assert_eq(itest_connect_pair(srv.port, &c2, &c3), 0);
}

static void setup(void) { start_with(NULL); }

static void teardown(void)
{
    itest_close(c2);
    itest_close(c3);
    c2 = c3 = NULL;
    itest_fini();
}

static void call_ok(struct itest_conn *c, const char *const *argv)
{
    struct itest_reply *r = itest_callv_r(c, argv);
    cr_assert(r && r->type != IT_ERROR, "%s failed: %s", argv[0], r ? r->str : "no reply");
    itest_reply_free(r);
}

static long long fint(const struct itest_reply *r, const char *name)
{
    const struct itest_reply *f = itest_field(r, name);
    cr_assert(f && f->type == IT_INT, "field %s: %s", name, itest_fmt(r));
    return f->integer;
}

static const char *fstr(const struct itest_reply *r, const char *name)
{
    const struct itest_reply *f = itest_field(r, name);
    if (f && f->type == IT_NULL)
        return NULL;
    cr_assert(f && f->type == IT_BULK, "field %s: %s", name, itest_fmt(r));
    return f->str;
}

static void audit_body(struct itest_conn *c, bool r3)
{
    call_ok(c, (const char *const[]){"CFG.SET", "/cfg/app", "{\"a\":1,\"b\":[1],\"c\":0}", NULL});
    call_ok(c, (const char *const[]){"SET", "/other", "x", NULL});
    call_ok(c, (const char *const[]){"CFG.SET", "/cfg/app", "{\"a\":2,\"b\":[1,2],\"c\":0}",
                                     NULL});
    call_ok(c, (const char *const[]){"DEL", "/cfg/app", NULL});
    struct itest_reply *r = itest_call_r(c, "CFG.AUDIT /cfg/");
    cr_assert(r && r->type == IT_ARRAY && r->n == 3, "three records: %s", itest_fmt(r));
    const struct itest_reply *e1 = r->elem[0], *e2 = r->elem[1], *e3 = r->elem[2];
    cr_assert_eq(e1->type, r3 ? IT_MAP : IT_ARRAY);
    cr_assert_eq(fint(e2, "revision"), fint(e1, "revision") + 2, "oldest first, /other skipped");
    cr_assert_str_eq(fstr(e1, "op"), "set");
    cr_assert_str_eq(fstr(e3, "op"), "del");
    cr_assert_str_eq(fstr(e2, "actor"), "default");
    cr_assert(strncmp(fstr(e2, "client"), "127.0.0.1:", 10) == 0, "%s", itest_fmt(e2));
    cr_assert_gt(fint(e2, "index"), 0);
    cr_assert_gt(fint(e2, "term"), 0);
    cr_assert_null(fstr(e2, "subject"));
    const struct itest_reply *ch = itest_field(e2, "changes");
    cr_assert(ch && ch->type == IT_ARRAY && ch->n == 1, "%s", itest_fmt(e2));
    const struct itest_reply *x = ch->elem[0];
    cr_assert_str_eq(fstr(x, "key"), "/cfg/app");
    cr_assert_str_eq(fstr(x, "old"), "{\"a\":1,\"b\":[1],\"c\":0}");
    cr_assert_str_eq(fstr(x, "new"), "{\"a\":2,\"b\":[1,2],\"c\":0}");
    const struct itest_reply *p = itest_field(x, "paths");
    cr_assert(p && p->type == IT_ARRAY && p->n == 2, "%s", itest_fmt(x));
    cr_assert_str_eq(p->elem[0]->str, "/a");
    cr_assert_str_eq(p->elem[1]->str, "/b/1");
    /* A creation and a deletion have no paths; a deletion has no new value. */
    x = itest_field(e1, "changes")->elem[0];
    cr_assert_null(fstr(x, "old"));
    cr_assert_eq(itest_field(x, "paths")->type, IT_NULL);
    x = itest_field(e3, "changes")->elem[0];
    cr_assert_null(fstr(x, "new"));
    long long rev1 = fint(e1, "revision");
    itest_reply_free(r);
    r = itest_call_r(c, itest_sprintf("CFG.AUDIT /cfg/ SINCE %lld COUNT 1", rev1));
    cr_assert(r && r->n == 1 && fint(r->elem[0], "revision") == rev1 + 2, "%s", itest_fmt(r));
    itest_reply_free(r);
    char *t = itest_call(c, "CFG.AUDIT / ACTOR nobody");
    cr_assert_str_eq(t, "[]");
    free(t);
    t = itest_call(c, "CFG.AUDIT / COUNT 10001");
    cr_assert(strncmp(t, "-ERR", 4) == 0, "%s", t);
    free(t);
}

TestSuite(audit, .init = setup, .fini = teardown, .timeout = 60);

Test(audit, records_resp3) { audit_body(c3, true); }
Test(audit, records_resp2) { audit_body(c2, false); }

/* Flip one byte near the end of the audit record of data group 1 at revision rev. */
static void tamper_on_disk(const char *dir, long long rev)
{
    char *err = NULL;
    leveldb_options_t *o = leveldb_options_create();
    leveldb_t *db = leveldb_open(o, dir, &err);
    cr_assert_null(err, "leveldb_open %s: %s", dir, err);
    unsigned char key[14] = {'g', 0, 0, 0, 1, 'U'};
    for (int i = 0; i < 8; i++)
        key[6 + i] = (unsigned char)((unsigned long long)rev >> (8 * (7 - i)));
    leveldb_readoptions_t *ro = leveldb_readoptions_create();
    size_t vlen = 0;
    char *v = leveldb_get(db, ro, (const char *)key, sizeof key, &vlen, &err);
    cr_assert(v && !err && vlen > 20, "audit record %lld not found on disk", rev);
    v[vlen - 10] ^= 0x01; /* inside the last value, before the 8-byte hash */
    leveldb_writeoptions_t *wo = leveldb_writeoptions_create();
    leveldb_writeoptions_set_sync(wo, 1);
    leveldb_put(db, wo, (const char *)key, sizeof key, v, vlen, &err);
    cr_assert_null(err);
    leveldb_free(v);
    leveldb_writeoptions_destroy(wo);
    leveldb_readoptions_destroy(ro);
    leveldb_close(db);
    leveldb_options_destroy(o);
}

Test(audit, verify_passes_then_finds_a_record_altered_on_disk)
{
    for (int i = 0; i < 6; i++)
        call_ok(c3, (const char *const[]){"SET", itest_sprintf("/v/%d", i % 2), itest_sprintf("value-%d", i), NULL});
    struct itest_reply *r = itest_call_r(c3, "CFG.AUDIT.VERIFY");
    cr_assert(r && r->type == IT_MAP, "%s", itest_fmt(r));
    cr_assert_eq(fint(r, "ok"), 1, "%s", itest_fmt(r));
    cr_assert_eq(fint(r, "records"), 6);
    cr_assert_eq(itest_field(r, "first_break")->type, IT_NULL);
    itest_reply_free(r);
    cr_assert_eq(itest_stop(&srv, 10000), 0);
    tamper_on_disk(srv.dir, 4);
    cr_assert_eq(itest_restart(&srv, NULL), 0);
    reconnect();
    r = itest_call_r(c3, "CFG.AUDIT.VERIFY 1");
    cr_assert_eq(fint(r, "ok"), 0, "the altered record must be found: %s", itest_fmt(r));
    cr_assert_eq(fint(r, "first_break"), 4, "%s", itest_fmt(r));
    cr_assert_eq(fint(r, "records"), 3);
    cr_assert(strstr(fstr(r, "reason"), "hash") != NULL, "%s", itest_fmt(r));
    itest_reply_free(r);
    char *t = itest_call(c3, "CFG.AUDIT.VERIFY 77");
    cr_assert(strncmp(t, "-ERR unknown group", 18) == 0, "%s", t);
    free(t);
}

/* Revisions of the audit file's lines, in order; checks each line's shape. */
static int file_revs(const char *path, long long *revs, int cap)
{
    FILE *f = fopen(path, "r");
    cr_assert(f, "audit file %s", path);
    static char line[65536];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned g = 0;
        long long rev = 0;
        cr_assert(strchr(line, '\n'), "complete line: %s", line);
        cr_assert_eq(sscanf(line, "{\"group\":%u,\"revision\":%lld", &g, &rev), 2, "%s", line);
        cr_assert_eq(g, 1u);
        cr_assert(strstr(line, "\"hash\":\""), "%s", line);
        cr_assert_lt(n, cap);
        revs[n++] = rev;
    }
    fclose(f);
    return n;
}

Test(audit, file_sink_resumes_without_gaps_or_duplicates)
{
    itest_close(c2);
    itest_close(c3);
    itest_fini(); /* restart with the sink on */
    static char path[400];
    snprintf(path, sizeof path, "/tmp/rc-audit-%d.jsonl", (int)getpid());
    remove(path);
    start_with((const char *const[]){"--audit-file", path, NULL});
    for (int i = 0; i < 3; i++)
        call_ok(c3, (const char *const[]){"SET", "/f/k", itest_sprintf("%d", i), NULL});
    call_ok(c3, (const char *const[]){"DEL", "/f/none", NULL}); /* no change: no line */
    long long revs[64];
    int n = file_revs(path, revs, 64);
    cr_assert_eq(n, 3);
    itest_kill9(&srv);
    FILE *f = fopen(path, "a");
    fputs("{\"group\":1,\"revision\":9", f); /* a torn last line */
    fclose(f);
    cr_assert_eq(itest_restart(&srv, (const char *const[]){"--audit-file", path, NULL}), 0);
    reconnect();
    for (int i = 0; i < 2; i++)
        call_ok(c3, (const char *const[]){"MSET", "/f/a", "1", "/f/b", itest_sprintf("%d", i), NULL});
    n = file_revs(path, revs, 64);
    cr_assert_eq(n, 5, "every revision once");
    for (int i = 0; i < n; i++)
        cr_assert_eq(revs[i], revs[0] + i, "line %d has revision %lld", i, revs[i]);
    remove(path);
}

Test(audit, keyspace_notifications_reach_subscribers)
{
    struct itest_conn *sub = itest_connect(srv.port);
    cr_assert(sub);
    struct itest_reply *r = itest_call_r(sub, "PSUBSCRIBE __key*@0__:*");
    itest_reply_free(r);
    /* Off by default: nothing arrives. */
    call_ok(c2, (const char *const[]){"SET", "/n/k", "v0", NULL});
    sub->timeout_ms = 300;
    r = itest_read(sub);
    cr_assert_null(r, "no notification while notify-keyspace-events is empty");
    call_ok(c2, (const char *const[]){"CONFIG", "SET", "notify-keyspace-events", "KEA", NULL});
    call_ok(c2, (const char *const[]){"SET", "/n/k", "v1", NULL});
    call_ok(c2, (const char *const[]){"DEL", "/n/k", NULL});
    sub->timeout_ms = 3000;
    const char *want[][2] = {{"__keyspace@0__:/n/k", "set"}, {"__keyevent@0__:set", "/n/k"},
                             {"__keyspace@0__:/n/k", "del"}, {"__keyevent@0__:del", "/n/k"}};
    for (int i = 0; i < 4; i++) {
        r = itest_read(sub);
        cr_assert(r && r->type == IT_ARRAY && r->n == 4, "pmessage %d: %s", i, itest_fmt(r));
        cr_assert_str_eq(r->elem[0]->str, "pmessage");
        cr_assert_str_eq(r->elem[2]->str, want[i][0]);
        cr_assert_str_eq(r->elem[3]->str, want[i][1]);
        itest_reply_free(r);
    }
    /* Keyspace only, set events only. */
    call_ok(c2, (const char *const[]){"CONFIG", "SET", "notify-keyspace-events", "K$", NULL});
    call_ok(c2, (const char *const[]){"SET", "/n/j", "1", NULL});
    call_ok(c2, (const char *const[]){"DEL", "/n/j", NULL});
    r = itest_read(sub);
    cr_assert(r && r->n == 4, "%s", itest_fmt(r));
    cr_assert_str_eq(r->elem[2]->str, "__keyspace@0__:/n/j");
    itest_reply_free(r);
    sub->timeout_ms = 300;
    r = itest_read(sub);
    cr_assert_null(r, "no del event with K$: %s", itest_fmt(r));
    char *t = itest_call(c2, "CONFIG SET notify-keyspace-events Kq");
    cr_assert(t[0] == '-', "%s", t);
    free(t);
    itest_close(sub);
}
