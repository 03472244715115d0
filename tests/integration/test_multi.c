/*
 * test_multi.c - MULTI / EXEC / DISCARD / WATCH / UNWATCH against the real server, with
 * raw RESP2/RESP3 and with hiredis: pipelined transactions, +QUEUED, EXECABORT after a
 * queueing error, Redis's error texts, read-your-writes inside EXEC, one revision per
 * transaction, a failing command as an error element, WATCH aborts caused by a second
 * client (set and delete; RESP2 *-1, RESP3 _), UNWATCH/EXEC/DISCARD clearing watches,
 * RESET discarding a transaction, the command limit, and redis-py's transaction() with
 * WATCH retries under contention from 4 threads (skipped when python3-redis is missing).
 */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helper.h"

static struct itest_srv srv;
static struct itest_conn *conn;

static void setup(void)
{
    cr_assert_eq(itest_start(&srv, NULL), 0, "server %s did not start", itest_bin());
    conn = itest_connect(srv.port);
    cr_assert(conn, "connect");
}

static void teardown(void)
{
    itest_close(conn);
    conn = NULL;
    itest_fini();
}

TestSuite(multi, .init = setup, .fini = teardown, .timeout = 60);

static void send_lines(struct itest_conn *c, const char *text)
{
    cr_assert_eq(itest_send_raw(c, text, strlen(text)), 0, "send");
}

static void expect_next(struct itest_conn *c, const char *what, const char *want)
{
    char *got = itest_read_fmt(c);
    cr_assert_str_eq(got, want, "%s\n   expected: %s\n   got: %s", what, want, got);
    free(got);
}

static struct itest_conn *connect_new(void)
{
    struct itest_conn *c = itest_connect(srv.port);
    cr_assert(c, "connect");
    return c;
}

/* ------------------------------------------------------------------ basics */

Test(multi, pipelined_transaction_reads_its_own_writes)
{
    ITEST_EXPECT(conn, "SET /m/a old", "+OK");
    /* Everything in one write: the replies must come back in order. */
    send_lines(conn, "MULTI\r\nGET /m/a\r\nSET /m/a new\r\nGET /m/a\r\nMGET /m/a /m/none\r\n"
                     "EXISTS /m/a /m/none\r\nDEL /m/a\r\nTYPE /m/a\r\nPING\r\nEXEC\r\n");
    expect_next(conn, "MULTI", "+OK");
    for (int i = 0; i < 8; i++)
        expect_next(conn, "queued", "+QUEUED");
    expect_next(conn, "EXEC",
                "[\"old\", +OK, \"new\", [\"new\", $nil], :1, :1, +none, +PONG]");
    ITEST_EXPECT(conn, "GET /m/a", "$nil");
}

Test(multi, one_revision_for_the_whole_transaction)
{
    ITEST_EXPECT(conn, "MULTI", "+OK");
    ITEST_EXPECT(conn, "CFG.SET /r/a 1", "+QUEUED");
    ITEST_EXPECT(conn, "CFG.SET /r/b 2", "+QUEUED");
    ITEST_EXPECT(conn, "CFG.SET /r/a 3 IFVERSION 1", "+QUEUED");
    struct itest_reply *r = itest_call_r(conn, "EXEC");
    cr_assert(r && r->type == IT_ARRAY && r->n == 3, "EXEC array");
    long long rev[3], ver[3];
    for (int i = 0; i < 3; i++) {
        const struct itest_reply *f = itest_field(r->elem[i], "revision");
        const struct itest_reply *v = itest_field(r->elem[i], "version");
        cr_assert(f && v, "element %d is a CFG.SET reply", i);
        rev[i] = f->integer;
        ver[i] = v->integer;
    }
    cr_assert(rev[0] == rev[1] && rev[1] == rev[2], "one revision: %lld %lld %lld", rev[0],
              rev[1], rev[2]);
    cr_assert_eq(ver[2], 1, "a key's version advances once per transaction");
    itest_reply_free(r);
    r = itest_call_r(conn, "CFG.GET /r/a");
    cr_assert_eq(itest_field(r, "mod_revision")->integer, rev[0]);
    cr_assert_eq(itest_field(r, "version")->integer, 1);
    itest_reply_free(r);
}

Test(multi, a_failing_command_is_an_element_and_the_others_apply)
{
    ITEST_EXPECT(conn, "SET /f/a 1", "+OK");
    send_lines(conn, "MULTI\r\nCFG.SET /f/a 2 IFVERSION 7\r\nSET /f/b 1\r\nEXEC\r\n");
    expect_next(conn, "MULTI", "+OK");
    expect_next(conn, "CFG.SET", "+QUEUED");
    expect_next(conn, "SET", "+QUEUED");
    expect_next(conn, "EXEC", "[-VERSION version mismatch: current version is 1, +OK]");
    ITEST_EXPECT(conn, "GET /f/a", "\"1\"");
    ITEST_EXPECT(conn, "GET /f/b", "\"1\"");
}

Test(multi, queueing_errors_make_exec_abort)
{
    static const char *const bad[] = {
        "SET /q/x",            /* arity */
        "SET /q/x 1 NX XX",    /* syntax, found by the front end */
        "NOSUCHCOMMAND a",     /* unknown */
        "KEYS *",              /* cannot run inside the entry */
        "SUBSCRIBE ch",
        "CFG.SET /q/x 1 IFVERSION -1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ITEST_EXPECT(conn, "MULTI", "+OK");
        ITEST_EXPECT(conn, "SET /q/y 1", "+QUEUED");
        ITEST_EXPECT_PREFIX(conn, bad[i], "-ERR");
        ITEST_EXPECT(conn, "SET /q/z 1", "+QUEUED");
        ITEST_EXPECT(conn, "EXEC", "-EXECABORT Transaction discarded because of previous "
                                   "errors.");
        ITEST_EXPECT(conn, "EXISTS /q/y /q/z", ":0");
    }
    ITEST_EXPECT(conn, "EXEC", "-ERR EXEC without MULTI");
}

Test(multi, redis_error_texts_and_discard)
{
    ITEST_EXPECT(conn, "EXEC", "-ERR EXEC without MULTI");
    ITEST_EXPECT(conn, "DISCARD", "-ERR DISCARD without MULTI");
    ITEST_EXPECT(conn, "MULTI", "+OK");
    ITEST_EXPECT(conn, "MULTI", "-ERR MULTI calls can not be nested");
    ITEST_EXPECT(conn, "WATCH /d/a", "-ERR WATCH inside MULTI is not allowed");
    ITEST_EXPECT(conn, "SET /d/a 1", "+QUEUED");
    ITEST_EXPECT(conn, "DISCARD", "+OK");
    ITEST_EXPECT(conn, "EXEC", "-ERR EXEC without MULTI");
    ITEST_EXPECT(conn, "GET /d/a", "$nil");
    /* Neither nested MULTI nor WATCH inside MULTI abort the transaction (as Redis). */
    ITEST_EXPECT(conn, "MULTI", "+OK");
    ITEST_EXPECT(conn, "MULTI", "-ERR MULTI calls can not be nested");
    ITEST_EXPECT(conn, "SET /d/a 2", "+QUEUED");
    ITEST_EXPECT(conn, "EXEC", "[+OK]");
    ITEST_EXPECT(conn, "MULTI", "+OK");
    ITEST_EXPECT(conn, "EXEC", "[]");
    ITEST_EXPECT(conn, "MULTI", "+OK");
    ITEST_EXPECT(conn, "EXEC extra", "-EXECABORT Transaction discarded because of: wrong "
                                      "number of arguments for 'exec' command");
    ITEST_EXPECT(conn, "EXEC", "-ERR EXEC without MULTI");
}

Test(multi, client_list_shows_the_transaction_and_reset_discards_it)
{
    ITEST_EXPECT(conn, "MULTI", "+OK");
    ITEST_EXPECT(conn, "SET /c/a 1", "+QUEUED");
    ITEST_EXPECT(conn, "SET /c/b 1", "+QUEUED");
    struct itest_conn *other = connect_new();
    struct itest_reply *r = itest_call_r(other, "CLIENT LIST");
    cr_assert(r && r->str && strstr(r->str, "flags=x db=0 sub=0 psub=0 ssub=0 multi=2 "),
              "CLIENT LIST: %s", r ? r->str : "(none)");
    itest_reply_free(r);
    itest_close(other);
    ITEST_EXPECT(conn, "RESET", "+RESET");
    ITEST_EXPECT(conn, "EXEC", "-ERR EXEC without MULTI");
    ITEST_EXPECT(conn, "EXISTS /c/a /c/b", ":0");
}

Test(multi, large_transactions_and_the_command_limit)
{
    enum { N = 2000 };
    size_t cap = 64 * (N + 10000 + 10);
    char *buf = malloc(cap);
    size_t len = (size_t)snprintf(buf, cap, "MULTI\r\n");
    for (int i = 0; i < N; i++)
        len += (size_t)snprintf(buf + len, cap - len, "SET /big/%d %d\r\n", i, i);
    len += (size_t)snprintf(buf + len, cap - len, "EXEC\r\n");
    cr_assert_eq(itest_send_raw(conn, buf, len), 0);
    expect_next(conn, "MULTI", "+OK");
    for (int i = 0; i < N; i++)
        expect_next(conn, "queued", "+QUEUED");
    struct itest_reply *r = itest_read(conn);
    cr_assert(r && r->type == IT_ARRAY && r->n == N, "EXEC answers %d replies", N);
    itest_reply_free(r);
    ITEST_EXPECT(conn, "GET /big/1999", "\"1999\"");

    /* one command over NS_EXEC_CMDS_MAX (10000): refused while queueing, EXEC aborts */
    len = (size_t)snprintf(buf, cap, "MULTI\r\n");
    for (int i = 0; i < 10001; i++)
        len += (size_t)snprintf(buf + len, cap - len, "PING\r\n");
    len += (size_t)snprintf(buf + len, cap - len, "EXEC\r\n");
    cr_assert_eq(itest_send_raw(conn, buf, len), 0);
    expect_next(conn, "MULTI", "+OK");
    for (int i = 0; i < 10000; i++)
        expect_next(conn, "queued", "+QUEUED");
    char *got = itest_read_fmt(conn);
    cr_assert(strncmp(got, "-ERR transaction too large", 26) == 0, "got %s", got);
    free(got);
    expect_next(conn, "EXEC", "-EXECABORT Transaction discarded because of previous errors.");
    free(buf);
}

/* ------------------------------------------------------------------ WATCH */

Test(multi, watch_aborts_when_another_client_sets_the_key)
{
    struct itest_conn *other = connect_new();
    ITEST_EXPECT(conn, "SET /w/k 1", "+OK");
    ITEST_EXPECT(conn, "WATCH /w/k", "+OK");
    ITEST_EXPECT(conn, "GET /w/k", "\"1\"");
    ITEST_EXPECT(other, "SET /w/k 2", "+OK");
    ITEST_EXPECT(conn, "MULTI", "+OK");
    ITEST_EXPECT(conn, "SET /w/k 100", "+QUEUED");
    ITEST_EXPECT(conn, "SET /w/side 1", "+QUEUED");
    ITEST_EXPECT(conn, "EXEC", "*nil");
    ITEST_EXPECT(conn, "GET /w/k", "\"2\"");
    ITEST_EXPECT(conn, "EXISTS /w/side", ":0");
    /* EXEC cleared the watch: the retry goes through */
    ITEST_EXPECT(conn, "MULTI", "+OK");
    ITEST_EXPECT(conn, "SET /w/k 3", "+QUEUED");
    ITEST_EXPECT(conn, "EXEC", "[+OK]");
    itest_close(other);
}

Test(multi, watch_aborts_on_delete_and_on_create_then_delete_resp3)
{
    struct itest_conn *other = connect_new();
    struct itest_reply *h = itest_call_r(conn, "HELLO 3");
    cr_assert(h && h->type == IT_MAP);
    itest_reply_free(h);
    ITEST_EXPECT(conn, "SET /w/d 1", "+OK");
    ITEST_EXPECT(conn, "WATCH /w/d /w/ghost", "+OK");
    ITEST_EXPECT(other, "DEL /w/d", ":1");
    ITEST_EXPECT(conn, "MULTI", "+OK");
    ITEST_EXPECT(conn, "SET /w/x 1", "+QUEUED");
    ITEST_EXPECT(conn, "EXEC", "_");
    ITEST_EXPECT(conn, "WATCH /w/ghost", "+OK");
    ITEST_EXPECT(other, "SET /w/ghost 1", "+OK");
    ITEST_EXPECT(other, "DEL /w/ghost", ":1");
    ITEST_EXPECT(conn, "MULTI", "+OK");
    ITEST_EXPECT(conn, "SET /w/x 1", "+QUEUED");
    ITEST_EXPECT(conn, "EXEC", "_");
    ITEST_EXPECT(conn, "EXISTS /w/x", ":0");
    itest_close(other);
}

Test(multi, unwatch_and_discard_forget_watches_and_unrelated_changes_pass)
{
    struct itest_conn *other = connect_new();
    ITEST_EXPECT(conn, "WATCH /u/a", "+OK");
    ITEST_EXPECT(conn, "UNWATCH", "+OK");
    ITEST_EXPECT(other, "SET /u/a 1", "+OK");
    ITEST_EXPECT(conn, "MULTI", "+OK");
    ITEST_EXPECT(conn, "SET /u/a 2", "+QUEUED");
    ITEST_EXPECT(conn, "EXEC", "[+OK]");

    ITEST_EXPECT(conn, "WATCH /u/a", "+OK");
    ITEST_EXPECT(conn, "MULTI", "+OK");
    ITEST_EXPECT(conn, "DISCARD", "+OK");
    ITEST_EXPECT(other, "SET /u/a 3", "+OK");
    ITEST_EXPECT(conn, "MULTI", "+OK");
    ITEST_EXPECT(conn, "GET /u/a", "+QUEUED");
    ITEST_EXPECT(conn, "EXEC", "[\"3\"]");

    ITEST_EXPECT(conn, "WATCH /u/a", "+OK");
    ITEST_EXPECT(other, "SET /u/other 1", "+OK"); /* another key: no abort */
    ITEST_EXPECT(conn, "MULTI", "+OK");
    ITEST_EXPECT(conn, "SET /u/a 4", "+QUEUED");
    ITEST_EXPECT(conn, "EXEC", "[+OK]");
    itest_close(other);
}

/* ------------------------------------------------------------------ hiredis */

Test(multi, hiredis_pipelined_transaction_and_watch_abort)
{
    redisContext *rc = redisConnect("127.0.0.1", srv.port);
    cr_assert(rc && !rc->err, "hiredis connect");
    redisAppendCommand(rc, "MULTI");
    redisAppendCommand(rc, "SET %s %b", "/h/bin", "a\0b", (size_t)3);
    redisAppendCommand(rc, "GET %s", "/h/bin");
    redisAppendCommand(rc, "CFG.GET %s", "/h/bin");
    redisAppendCommand(rc, "EXEC");
    const char *want[] = {"OK", "QUEUED", "QUEUED", "QUEUED"};
    redisReply *r = NULL;
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(redisGetReply(rc, (void **)&r), REDIS_OK);
        cr_assert_eq(r->type, REDIS_REPLY_STATUS);
        cr_assert_str_eq(r->str, want[i]);
        freeReplyObject(r);
    }
    cr_assert_eq(redisGetReply(rc, (void **)&r), REDIS_OK);
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
    cr_assert_eq(r->elements, 3);
    cr_assert_eq(r->element[1]->type, REDIS_REPLY_STRING);
    cr_assert_eq(r->element[1]->len, 3);
    cr_assert(memcmp(r->element[1]->str, "a\0b", 3) == 0, "binary value read back");
    cr_assert_eq(r->element[2]->type, REDIS_REPLY_ARRAY); /* CFG.GET pairs in RESP2 */
    cr_assert_eq(r->element[2]->elements, 10);
    freeReplyObject(r);

    r = redisCommand(rc, "WATCH %s", "/h/bin");
    cr_assert(r && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    ITEST_EXPECT(conn, "SET /h/bin changed", "+OK");
    freeReplyObject(redisCommand(rc, "MULTI"));
    freeReplyObject(redisCommand(rc, "SET %s %s", "/h/bin", "mine"));
    r = redisCommand(rc, "EXEC");
    cr_assert(r && r->type == REDIS_REPLY_NIL, "aborted EXEC is nil (type %d)", r ? r->type : -1);
    freeReplyObject(r);
    redisFree(rc);
    ITEST_EXPECT(conn, "GET /h/bin", "\"changed\"");
}

/* ------------------------------------------------------------------ redis-py */

static const char py_contention[] =
    "import sys, threading\n"
    "import redis\n"
    "port, per = int(sys.argv[1]), int(sys.argv[2])\n"
    "retries = [0]\n"
    "lock = threading.Lock()\n"
    "def worker():\n"
    "    r = redis.Redis(host='127.0.0.1', port=port)\n"
    "    for _ in range(per):\n"
    "        def incr(pipe):\n"
    "            v = int(pipe.get('/py/counter') or 0)\n"
    "            pipe.multi()\n"
    "            pipe.set('/py/counter', v + 1)\n"
    "        while True:\n"
    "            try:\n"
    "                with r.pipeline() as p:\n"
    "                    p.watch('/py/counter')\n"
    "                    incr(p)\n"
    "                    p.execute()\n"
    "                break\n"
    "            except redis.WatchError:\n"
    "                with lock:\n"
    "                    retries[0] += 1\n"
    "    r.close()\n"
    "ts = [threading.Thread(target=worker) for _ in range(4)]\n"
    "[t.start() for t in ts]\n"
    "[t.join() for t in ts]\n"
    "r = redis.Redis(host='127.0.0.1', port=port)\n"
    "r.transaction(lambda p: p.multi() or p.set('/py/tx', 1), '/py/counter')\n"
    "print(int(r.get('/py/counter')), retries[0])\n";

Test(multi, redis_py_watch_retry_under_contention)
{
    if (access("/usr/bin/python3", X_OK) != 0 ||
        system("/usr/bin/python3 -c 'import redis' >/dev/null 2>&1") != 0)
        cr_skip_test("/usr/bin/python3 with python3-redis is not installed");
    char path[] = "/tmp/test_multi_py.XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, py_contention, sizeof py_contention - 1),
                 (ssize_t)(sizeof py_contention - 1));
    close(fd);
    char cmd[256];
    enum { PER = 40 };
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %d %d 2>&1", path, srv.port, PER);
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    char out[4096] = "";
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    unlink(path);
    long count = -1, retries = -1;
    cr_assert(st == 0 && sscanf(out, "%ld %ld", &count, &retries) == 2, "python: %s", out);
    cr_assert_eq(count, 4 * PER, "every increment counted exactly once: %s", out);
    cr_log_info("redis-py: %ld increments, %ld WATCH retries", count, retries);
    ITEST_EXPECT(conn, "GET /py/tx", "\"1\"");
}
