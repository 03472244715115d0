/*
 * test_watch.c - CFG.WATCH through the real server: a client that watches from revision R
 * receives every later change under its prefix exactly once and in order (paging with
 * COUNT, whole revisions only), including across a server restart (resuming from its last
 * revision); BLOCK wakes on a change applied meanwhile and times out with nil; a blocked
 * watch holds back the client's later commands; -COMPACTED below the retained audit.
 * (The 3-node case, a watch served by a follower, is tests/cluster/test_watch_cluster.c.)
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "helper.h"

static struct itest_srv srv;
static struct itest_conn *c2, *c3;

static void connect_both(void)
{
    cr_assert_eq(itest_connect_pair(srv.port, &c2, &c3), 0);
}

static void start_with(const char *const *extra)
{
    int rc = itest_start(&srv, extra);
    if (rc != 0)
        itest_log_tail(&srv, 40);
    cr_assert_eq(rc, 0, "server %s did not start", itest_bin());
    connect_both();
}

static void setup(void) { start_with(NULL); }
static void setup_small(void)
{
    start_with((const char *const[]){"--audit-max-records", "5", NULL});
}

static void teardown(void)
{
    itest_close(c2);
    itest_close(c3);
    c2 = c3 = NULL;
    itest_fini();
}

static long now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return tv.tv_sec * 1000L + tv.tv_usec / 1000;
}

static long long rev_of(struct itest_conn *c, const char *key, const char *val)
{
    struct itest_reply *r = itest_callv_r(c, (const char *const[]){"CFG.SET", key, val, NULL});
    const struct itest_reply *f = r ? itest_field(r, "revision") : NULL;
    cr_assert(f && f->type == IT_INT, "CFG.SET %s: %s", key, itest_fmt(r));
    long long rev = f->integer;
    itest_reply_free(r);
    return rev;
}

/* The model: what a watcher of "/w/" must see, as "rev key type value" lines. */
struct seen {
    char lines[256][96];
    int n;
};

static void add_line(struct seen *s, long long rev, const char *key, const char *type,
                     const char *val)
{
    cr_assert_lt(s->n, 256);
    snprintf(s->lines[s->n++], 96, "%lld %s %s %s", rev, key, type, val ? val : "nil");
}

/* One CFG.WATCH call; appends what it returned to got, returns the number of changes
 * (0 for nil) and the last revision in *last. */
static int watch_once(struct itest_conn *c, const char *line, struct seen *got, long long *last)
{
    struct itest_reply *r = itest_call_r(c, line);
    cr_assert(r, "no reply to %s", line);
    if (r->type == IT_NULL) {
        itest_reply_free(r);
        return 0;
    }
    cr_assert(r->type == IT_ARRAY && r->n > 0, "%s: %s", line, itest_fmt(r));
    for (size_t i = 0; i < r->n; i++) {
        const struct itest_reply *e = r->elem[i];
        const struct itest_reply *k = itest_field(e, "key"), *t = itest_field(e, "type");
        const struct itest_reply *v = itest_field(e, "value"), *rv = itest_field(e, "revision");
        cr_assert(k && t && v && rv, "change shape: %s", itest_fmt(e));
        add_line(got, rv->integer, k->str, t->str, v->type == IT_NULL ? NULL : v->str);
        *last = rv->integer;
    }
    int n = (int)r->n;
    itest_reply_free(r);
    return n;
}

/* Watch /w/ from rev until nil, COUNT count; returns the last revision seen. */
static long long drain(struct itest_conn *c, long long from, int count, struct seen *got)
{
    long long last = from;
    for (int guard = 0; guard < 300; guard++) {
        long long before = last;
        int n = watch_once(c, itest_sprintf("CFG.WATCH /w/ FROM %lld COUNT %d", last, count), got, &last);
        if (n == 0)
            return last;
        cr_assert_gt(last, before, "progress");
    }
    cr_assert_fail("watch did not end");
    return last;
}

static void compare(const struct seen *want, const struct seen *got)
{
    cr_assert_eq(got->n, want->n, "changes: got %d, want %d", got->n, want->n);
    for (int i = 0; i < want->n; i++)
        cr_assert_str_eq(got->lines[i], want->lines[i], "change %d", i);
}

/* A mix of changes under /w/ and elsewhere; returns R (the revision before them). */
static long long write_mix(struct itest_conn *c, struct seen *want, int rounds)
{
    long long r0 = rev_of(c, "/x/start", "0");
    for (int i = 0; i < rounds; i++) {
        char key[32], val[32];
        snprintf(key, sizeof key, "/w/k%d", i % 4);
        snprintf(val, sizeof val, "v%d", i);
        long long rev = rev_of(c, key, val);
        add_line(want, rev, key, "set", val);
        rev_of(c, "/x/other", val); /* not under /w/ */
        if (i % 5 == 4) {
            struct itest_reply *r =
                itest_callv_r(c, (const char *const[]){"DEL", key, "/x/other", NULL});
            itest_reply_free(r);
            add_line(want, rev + 2, key, "del", NULL);
        }
        if (i % 7 == 6) { /* one revision, two changes under /w/, sorted by key */
            struct itest_reply *r = itest_callv_r(
                c, (const char *const[]){"MSET", "/w/m2", val, "/w/m1", val, NULL});
            itest_reply_free(r);
            long long mrev = rev_of(c, "/x/probe", val) - 1;
            add_line(want, mrev, "/w/m1", "set", val);
            add_line(want, mrev, "/w/m2", "set", val);
        }
    }
    return r0;
}

TestSuite(watch, .init = setup, .fini = teardown, .timeout = 60);

Test(watch, every_change_once_in_order_resp2_and_resp3)
{
    struct seen want = {0}, got2 = {0}, got3 = {0};
    long long r0 = write_mix(c2, &want, 30);
    drain(c2, r0, 3, &got2);
    compare(&want, &got2);
    drain(c3, r0, 1000, &got3);
    compare(&want, &got3);
}

Test(watch, count_never_splits_a_revision)
{
    long long r0 = rev_of(c3, "/x/a", "1");
    struct itest_reply *r = itest_callv_r(
        c3, (const char *const[]){"MSET", "/w/1", "a", "/w/2", "b", "/w/3", "c", NULL});
    itest_reply_free(r);
    rev_of(c3, "/w/4", "d");
    struct seen got = {0};
    long long last = 0;
    cr_assert_eq(watch_once(c3, itest_sprintf("CFG.WATCH /w/ FROM %lld COUNT 1", r0), &got, &last), 3);
    cr_assert_eq(watch_once(c3, itest_sprintf("CFG.WATCH /w/ FROM %lld COUNT 2", last), &got, &last), 1);
}

/* One call reads at most 20,000 audit records; a watch whose prefix has no change in them
 * moves on in later turns instead of answering nil for ever (or reading a million records
 * in one turn): the change after 30,000 non-matching ones still arrives, without BLOCK. */
Test(watch, a_match_far_past_the_scan_budget_arrives)
{
    long long r0 = rev_of(c3, "/other/start", "0");
    enum { N = 30000 };
    char key[32];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "/other/%d", i);
        const char *argv[] = {"SET", key, "v"};
        cr_assert_eq(itest_send_argv(c2, 3, argv, NULL), 0);
    }
    for (int i = 0; i < N; i++) {
        struct itest_reply *r = itest_read(c2);
        cr_assert(r != NULL, "reply %d of %d", i, N);
        itest_reply_free(r);
    }
    long long rf = rev_of(c3, "/far/k", "found");
    cr_assert_eq(rf, r0 + N + 1);
    struct seen got = {0};
    long long last = 0;
    cr_assert_eq(watch_once(c3, itest_sprintf("CFG.WATCH /far/ FROM %lld", r0), &got, &last), 1);
    cr_assert_eq(last, rf);
}

Test(watch, block_wakes_on_a_change_and_times_out_with_nil)
{
    long long r0 = rev_of(c2, "/x/a", "1");
    /* Timeout: nil (RESP2 null array), after about the time asked. */
    long t0 = now_ms();
    char *t = itest_call(c2, itest_sprintf("CFG.WATCH /w/ FROM %lld BLOCK 300", r0));
    long took = now_ms() - t0;
    cr_assert_str_eq(t, "*nil");
    free(t);
    cr_assert(took >= 250 && took < 3000, "BLOCK 300 took %ld ms", took);
    t = itest_call(c3, itest_sprintf("CFG.WATCH /w/ FROM %lld BLOCK 5000 COUNT", r0));
    cr_assert(t[0] == '-', "COUNT without a value is a syntax error: %s", t);
    free(t);
    /* A change elsewhere does not wake it; one under the prefix does. */
    struct itest_reply *r;
    t0 = now_ms();
    const char *argv[] = {"CFG.WATCH", "/w/", "FROM", itest_sprintf("%lld", r0), "BLOCK", "5000", NULL};
    cr_assert_eq(itest_send_argv(c3, 6, argv, NULL), 0);
    rev_of(c2, "/x/b", "2");
    long long rw = rev_of(c2, "/w/hit", "yes");
    r = itest_read(c3);
    took = now_ms() - t0;
    cr_assert(r && r->type == IT_ARRAY && r->n == 1, "%s", itest_fmt(r));
    cr_assert_str_eq(itest_field(r->elem[0], "key")->str, "/w/hit");
    cr_assert_eq(itest_field(r->elem[0], "revision")->integer, rw);
    cr_assert_lt(took, 2500, "woken by the write, not the timeout (%ld ms)", took);
    itest_reply_free(r);
}

Test(watch, a_blocked_watch_holds_back_later_commands)
{
    long long r0 = rev_of(c2, "/x/a", "1");
    const char *pipe = "*6\r\n$9\r\nCFG.WATCH\r\n$3\r\n/w/\r\n$4\r\nFROM\r\n";
    char buf[256];
    int n = snprintf(buf, sizeof buf, "%s$%zu\r\n%lld\r\n$5\r\nBLOCK\r\n$3\r\n400\r\n"
                     "*1\r\n$4\r\nPING\r\n", pipe, strlen(itest_sprintf("%lld", r0)), r0);
    long t0 = now_ms();
    cr_assert_eq(itest_send_raw(c2, buf, (size_t)n), 0);
    char *t = itest_read_fmt(c2);
    cr_assert_str_eq(t, "*nil");
    free(t);
    t = itest_read_fmt(c2);
    cr_assert_str_eq(t, "+PONG");
    free(t);
    cr_assert_geq(now_ms() - t0, 350, "PING answered after the watch");
}

Test(watch, resumes_across_a_restart)
{
    struct seen want = {0}, got = {0};
    long long r0 = write_mix(c3, &want, 12);
    long long last = drain(c3, r0, 4, &got);
    compare(&want, &got);
    itest_close(c2);
    itest_close(c3);
    cr_assert_eq(itest_stop(&srv, 10000), 0);
    cr_assert_eq(itest_restart(&srv, NULL), 0);
    connect_both();
    struct seen want2 = {0}, got2 = {0};
    write_mix(c2, &want2, 9);
    drain(c2, last, 5, &got2);
    compare(&want2, &got2);
}

TestSuite(watch_small, .init = setup_small, .fini = teardown, .timeout = 60);

Test(watch_small, compacted_below_the_retained_audit)
{
    long long r = 0;
    for (int i = 0; i < 10; i++)
        r = rev_of(c2, "/w/k", itest_sprintf("%d", i));
    char *t = itest_call(c2, "CFG.WATCH /w/ FROM 0");
    cr_assert_str_eq(t, itest_sprintf("-COMPACTED oldest=%lld", r - 4));
    free(t);
    struct seen got = {0};
    long long last = 0;
    cr_assert_eq(watch_once(c2, itest_sprintf("CFG.WATCH /w/ FROM %lld", r - 5), &got, &last), 5);
    cr_assert_eq(last, r);
}
