/*
 * test_durability.c - an acknowledged write survives a crash: write, get +OK, kill -9 the
 * server, restart it on the same data dir, and every acknowledged write must be there
 * (and the store must open). Also: many concurrent pipelined clients killed mid-stream
 * (MSETs all-or-nothing), a clean SIGTERM restart, a restart after log compaction
 * (--snapshot-entries small), and a trace check that an fsync happens between reading a
 * write and sending its +OK.
 *
 * What kill -9 can and cannot show: it loses what the process held in user space (an
 * unwritten buffer, an answer sent before the write() to the log), not what sat in the page
 * cache; so the trace test (strace) is the one that catches "acknowledged before fsync".
 */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <leveldb/c.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helper.h"

static struct itest_srv srv;

static void teardown(void) { itest_fini(); }

static redisContext *hconnect(int port)
{
    struct timeval tv = {10, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    cr_assert(c && !c->err, "hiredis connect to %d: %s", port, c ? c->errstr : "?");
    redisSetTimeout(c, tv);
    return c;
}

static void start_or_fail(const char *const *extra)
{
    int rc = itest_start(&srv, extra);
    cr_assert_eq(rc, 0, "server %s did not start", itest_bin());
}

static void restart_or_fail(const char *const *extra, const char *why)
{
    int rc = itest_restart(&srv, extra);
    if (rc != 0)
        itest_log_tail(&srv, 40);
    cr_assert_eq(rc, 0, "server did not come back on the same dir after %s", why);
}

/* Check key == want (want NULL: must not exist). */
static void expect_value(redisContext *c, const char *key, const char *want, const char *when)
{
    redisReply *r = redisCommand(c, "GET %s", key);
    cr_assert(r, "GET %s: connection error %s", key, c->errstr);
    if (want)
        cr_assert(r->type == REDIS_REPLY_STRING && strcmp(r->str, want) == 0,
                  "%s: acknowledged write lost: GET %s expected \"%s\", got type %d \"%s\"",
                  when, key, want, r->type, r->type == REDIS_REPLY_STRING ? r->str : "");
    else
        cr_assert(r->type == REDIS_REPLY_NIL, "%s: GET %s should be nil", when, key);
    freeReplyObject(r);
}

static long long dbsize(redisContext *c)
{
    redisReply *r = redisCommand(c, "DBSIZE");
    cr_assert(r && r->type == REDIS_REPLY_INTEGER, "DBSIZE");
    long long n = r->integer;
    freeReplyObject(r);
    return n;
}

/* ---------------------------------------------------------------- single client */

Test(durability, acked_writes_survive_kill9, .fini = teardown, .timeout = 120)
{
    enum { ROUNDS = 3, PER_ROUND = 300 };
    start_or_fail(NULL);
    for (int round = 0; round < ROUNDS; round++) {
        redisContext *c = hconnect(srv.port);
        for (int i = 0; i < PER_ROUND; i++) {
            redisReply *r = redisCommand(c, "SET r%d:k%d v%d-%d", round, i, round, i);
            cr_assert(r && r->type == REDIS_REPLY_STATUS, "SET r%d:k%d not acknowledged",
                      round, i);
            freeReplyObject(r);
        }
        redisReply *r = redisCommand(c, "SET last-round %d", round);
        cr_assert(r && r->type == REDIS_REPLY_STATUS);
        freeReplyObject(r);
        r = redisCommand(c, "DEL r%d:k0", round); /* a delete is a write too */
        cr_assert(r && r->type == REDIS_REPLY_INTEGER && r->integer == 1);
        freeReplyObject(r);
        r = redisCommand(c, "CFG.SET /cfg/round %d", round);
        cr_assert(r && r->type == REDIS_REPLY_ARRAY, "CFG.SET acknowledged");
        freeReplyObject(r);
        redisFree(c);

        itest_kill9(&srv);
        char why[64];
        snprintf(why, sizeof why, "kill -9 in round %d", round);
        restart_or_fail(NULL, why);

        c = hconnect(srv.port);
        for (int rr = 0; rr <= round; rr++)
            for (int i = 0; i < PER_ROUND; i++) {
                char k[32], v[32];
                snprintf(k, sizeof k, "r%d:k%d", rr, i);
                snprintf(v, sizeof v, "v%d-%d", rr, i);
                expect_value(c, k, i == 0 ? NULL : v, why);
            }
        char lr[16];
        snprintf(lr, sizeof lr, "%d", round);
        expect_value(c, "last-round", lr, why);
        expect_value(c, "/cfg/round", lr, why);
        cr_assert_eq(dbsize(c), (long long)(round + 1) * (PER_ROUND - 1) + 2,
                     "%s: DBSIZE counts exactly the acknowledged keys", why);
        r = redisCommand(c, "CFG.GET /cfg/round");
        cr_assert(r && r->type == REDIS_REPLY_ARRAY, "CFG.GET after restart");
        freeReplyObject(r);
        redisFree(c);
    }
}

/* ---------------------------------------------------------------- concurrent clients */

enum { WRITERS = 4, BATCH = 32 };

struct writer {
    int port, id, round;
    volatile int *stop;
    int acked;    /* SET w<id>:<i> acknowledged for every i < acked */
    int sent;     /* MSET pairs sent (acknowledged or not) */
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", w->port, tv);
    if (!c || c->err)
        return NULL;
    redisSetTimeout(c, tv);
    int i = 0;
    while (!*w->stop && i < 1000000) {
        for (int j = 0; j < BATCH; j++) { /* pipelined: SET then an MSET pair */
            redisAppendCommand(c, "SET R%dw%d:%d val-%d-%d", w->round, w->id, i + j, w->id,
                               i + j);
            redisAppendCommand(c, "MSET R%da%d:%d x R%db%d:%d x", w->round, w->id, i + j,
                               w->round, w->id, i + j);
        }
        w->sent = i + BATCH;
        for (int j = 0; j < BATCH; j++) {
            void *r1 = NULL, *r2 = NULL;
            if (redisGetReply(c, &r1) != REDIS_OK || redisGetReply(c, &r2) != REDIS_OK) {
                freeReplyObject(r1);
                redisFree(c);
                return NULL;
            }
            bool ok = ((redisReply *)r1)->type == REDIS_REPLY_STATUS;
            freeReplyObject(r1);
            freeReplyObject(r2);
            if (!ok) { /* an error reply is not an acknowledgement: stop counting here */
                redisFree(c);
                return NULL;
            }
            w->acked = i + j + 1;
        }
        i += BATCH;
    }
    redisFree(c);
    return NULL;
}

static void check_writers(redisContext *c, struct writer *ws, const char *why)
{
    for (int t = 0; t < WRITERS; t++) {
        struct writer *w = &ws[t];
        cr_assert(w->acked > 0, "%s: writer %d got no acknowledgement at all", why, t);
        for (int i = 0; i < w->acked; i++) {
            char k[48], v[48];
            snprintf(k, sizeof k, "R%dw%d:%d", w->round, t, i);
            snprintf(v, sizeof v, "val-%d-%d", t, i);
            expect_value(c, k, v, why);
        }
        for (int i = 0; i < w->sent; i++) { /* every MSET is all or nothing */
            redisReply *r = redisCommand(c, "EXISTS R%da%d:%d R%db%d:%d", w->round, t, i,
                                         w->round, t, i);
            cr_assert(r && r->type == REDIS_REPLY_INTEGER, "EXISTS");
            cr_assert(r->integer == 0 || r->integer == 2,
                      "%s: MSET half-applied: R%da%d:%d / R%db%d:%d EXISTS=%lld", why, w->round,
                      t, i, w->round, t, i, r->integer);
            freeReplyObject(r);
        }
    }
}

Test(durability, concurrent_pipelined_kill9, .fini = teardown, .timeout = 180)
{
    start_or_fail(NULL);
    struct writer all[3][WRITERS];
    for (int round = 0; round < 3; round++) {
        volatile int stop = 0;
        pthread_t th[WRITERS];
        struct writer *ws = all[round];
        for (int t = 0; t < WRITERS; t++) {
            ws[t] = (struct writer){.port = srv.port, .id = t, .round = round, .stop = &stop};
            cr_assert_eq(pthread_create(&th[t], NULL, writer_main, &ws[t]), 0);
        }
        usleep(700 * 1000 + (useconds_t)round * 300 * 1000);
        itest_kill9(&srv); /* while the writers are mid-pipeline */
        stop = 1;
        for (int t = 0; t < WRITERS; t++)
            pthread_join(th[t], NULL);
        char why[64];
        snprintf(why, sizeof why, "kill -9 under 4 pipelined writers, round %d", round);
        restart_or_fail(NULL, why);
        redisContext *c = hconnect(srv.port);
        for (int r = 0; r <= round; r++)
            check_writers(c, all[r], why);
        redisFree(c);
        fprintf(stderr, "round %d: acked %d %d %d %d\n", round, ws[0].acked, ws[1].acked,
                ws[2].acked, ws[3].acked);
    }
}

/* ---------------------------------------------------------------- clean shutdown */

Test(durability, sigterm_restart, .fini = teardown, .timeout = 120)
{
    start_or_fail(NULL);
    redisContext *c = hconnect(srv.port);
    for (int i = 0; i < 200; i++)
        redisAppendCommand(c, "SET t%d %d", i, i);
    for (int i = 0; i < 200; i++) {
        void *r = NULL;
        cr_assert_eq(redisGetReply(c, &r), REDIS_OK);
        cr_assert(((redisReply *)r)->type == REDIS_REPLY_STATUS);
        freeReplyObject(r);
    }
    redisFree(c);
    int st = itest_stop(&srv, 10000);
    cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "SIGTERM must shut down cleanly with exit 0 within 10 s (status %d)", st);
    restart_or_fail(NULL, "SIGTERM");
    c = hconnect(srv.port);
    for (int i = 0; i < 200; i++) {
        char k[16], v[16];
        snprintf(k, sizeof k, "t%d", i);
        snprintf(v, sizeof v, "%d", i);
        expect_value(c, k, v, "after SIGTERM restart");
    }
    cr_assert_eq(dbsize(c), 200);
    redisFree(c);
}

/* ---------------------------------------------------------------- compaction */

static const char *const snap_args[] = {"--snapshot-entries", "50", NULL};

static void write_state(redisContext *c, int base, int n)
{
    for (int i = 0; i < n; i++) {
        redisAppendCommand(c, "SET c%d v%d-%d", i % 400, base, i); /* overwrites */
        if (i % 7 == 0)
            redisAppendCommand(c, "DEL c%d", (i + 3) % 400);
    }
    for (int i = 0; i < n + (n + 6) / 7; i++) {
        void *r = NULL;
        cr_assert_eq(redisGetReply(c, &r), REDIS_OK);
        cr_assert(((redisReply *)r)->type != REDIS_REPLY_ERROR, "write %d: %s", i,
                  ((redisReply *)r)->str);
        freeReplyObject(r);
    }
}

/* Snapshot of every c* key: returns a malloc'd "k=v;..." string in key order. */
static char *dump(redisContext *c)
{
    size_t cap = 64 * 1024, n = 0;
    char *out = calloc(1, cap);
    for (int i = 0; i < 400; i++) {
        redisReply *r = redisCommand(c, "GET c%d", i);
        cr_assert(r);
        n += (size_t)snprintf(out + n, cap - n, "c%d=%s;", i,
                              r->type == REDIS_REPLY_STRING ? r->str : "nil");
        freeReplyObject(r);
    }
    return out;
}

/* Count Raft log entries of the data group on disk ('g' + u32 BE 1 + 'L' + u64 index, see
 * the storage layout in the brief / docs/storage-raftlog.md) and whether the snapshot record
 * ('g' + 1 + 'S') exists. The server must be stopped (LevelDB lock). */
static long count_log_entries(const char *dir, bool *has_snapshot)
{
    char *err = NULL;
    leveldb_options_t *o = leveldb_options_create();
    leveldb_t *db = leveldb_open(o, dir, &err);
    cr_assert(db && !err, "open %s: %s", dir, err ? err : "?");
    leveldb_readoptions_t *ro = leveldb_readoptions_create();
    leveldb_iterator_t *it = leveldb_create_iterator(db, ro);
    const char prefix[6] = {'g', 0, 0, 0, 1, 'L'};
    long n = 0;
    for (leveldb_iter_seek(it, prefix, 6); leveldb_iter_valid(it); leveldb_iter_next(it)) {
        size_t kl;
        const char *k = leveldb_iter_key(it, &kl);
        if (kl < 6 || memcmp(k, prefix, 6) != 0)
            break;
        n++;
    }
    const char skey[6] = {'g', 0, 0, 0, 1, 'S'};
    size_t vl = 0;
    char *v = leveldb_get(db, ro, skey, 6, &vl, &err);
    *has_snapshot = v != NULL;
    leveldb_free(v);
    leveldb_iter_destroy(it);
    leveldb_readoptions_destroy(ro);
    leveldb_close(db);
    leveldb_options_destroy(o);
    return n;
}

Test(durability, restart_after_compaction, .fini = teardown, .timeout = 120)
{
    start_or_fail(snap_args);
    redisContext *c = hconnect(srv.port);
    write_state(c, 1, 3000); /* ~3400 entries: many compactions at 50 */
    char *before = dump(c);
    long long n_before = dbsize(c);
    redisFree(c);
    itest_kill9(&srv);
    bool snap = false;
    long on_disk = count_log_entries(srv.dir, &snap);
    fprintf(stderr, "compaction: %ld log entries on disk, snapshot %s\n", on_disk,
            snap ? "present" : "missing");
    cr_assert(snap && on_disk < 1000,
              "with --snapshot-entries 50 after ~3400 writes the log must be compacted: %ld "
              "log entries on disk, snapshot record %s", on_disk, snap ? "present" : "missing");
    restart_or_fail(snap_args, "kill -9 after compaction");
    c = hconnect(srv.port);
    char *after = dump(c);
    cr_assert_str_eq(after, before, "state after compaction + kill -9 differs");
    cr_assert_eq(dbsize(c), n_before, "DBSIZE after compaction restart");
    write_state(c, 2, 500);
    free(before);
    before = dump(c);
    redisFree(c);
    int st = itest_stop(&srv, 10000);
    cr_assert_eq(st, 0, "clean SIGTERM after compaction (status %d)", st);
    restart_or_fail(snap_args, "SIGTERM after more compaction");
    c = hconnect(srv.port);
    free(after);
    after = dump(c);
    cr_assert_str_eq(after, before, "state after second restart differs");
    redisFree(c);
    free(before);
    free(after);
}

/* ---------------------------------------------------------------- fsync before reply */

/* The real server process under strace: the child of the strace process. */
static pid_t traced_child(pid_t tracer)
{
    char path[96];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)tracer, (int)tracer);
    FILE *f = fopen(path, "r");
    int pid = 0;
    if (f) {
        if (fscanf(f, "%d", &pid) != 1)
            pid = 0;
        fclose(f);
    }
    return (pid_t)pid;
}

/* fd of a syscall line "name(fd, ..." if the line is that call, else -1. */
static int call_fd(const char *line, const char *name)
{
    char pat[32];
    snprintf(pat, sizeof pat, " %s(", name);
    const char *p = strstr(line, pat);
    return p ? atoi(p + strlen(pat)) : -1;
}

/* In the strace output: after the read of `token` from client fd F, was the token written
 * to some file and that file fsync'd/fdatasync'd before the first "+OK" written to F?
 * Returns 1 yes, 0 no, -1 pattern not found. `why` gets the reply line. */
static int fsync_between(const char *trace_path, const char *token, char *why, size_t wl)
{
    static const char *const writes[] = {"write", "writev", "pwrite64", "sendmsg", "sendto"};
    FILE *f = fopen(trace_path, "r");
    if (!f)
        return -1;
    static char line[65536];
    int fd = -1, synced = 0, result = -1, data_fds[16], nd = 0;
    while (fgets(line, sizeof line, f)) {
        if (fd < 0) {
            int r = call_fd(line, "read");
            if (r < 0)
                r = call_fd(line, "readv");
            if (r < 0)
                r = call_fd(line, "recvfrom");
            if (r < 0)
                r = call_fd(line, "recvmsg");
            if (r >= 0 && strstr(line, token))
                fd = r;
            continue;
        }
        for (int i = 0; i < 5; i++) {
            int w = call_fd(line, writes[i]);
            if (w < 0)
                continue;
            if (w == fd && strstr(line, "+OK")) {
                snprintf(why, wl, "%.*s", (int)(wl > 1 ? wl - 1 : 0), line);
                result = synced;
                goto out;
            }
            if (w != fd && strstr(line, token) && nd < 16)
                data_fds[nd++] = w;
        }
        int s = call_fd(line, "fsync");
        if (s < 0)
            s = call_fd(line, "fdatasync");
        for (int i = 0; s >= 0 && i < nd; i++)
            if (data_fds[i] == s)
                synced = 1;
    }
out:
    fclose(f);
    return result;
}

static char trace[128];

static void teardown_trace(void)
{
    itest_fini();
    if (trace[0] && !getenv("ITEST_KEEP"))
        unlink(trace);
}

Test(durability, fsync_before_reply_strace, .fini = teardown_trace, .timeout = 120)
{
    if (access("/usr/bin/strace", X_OK) != 0)
        cr_skip_test("strace not installed");
    snprintf(trace, sizeof trace, "/tmp/rc-itest-trace-%d.txt", (int)getpid());
    const char *wrap[] = {"/usr/bin/strace", "-f", "-qq", "-s", "4096", "-o", trace, "-e",
                          "trace=read,readv,recvfrom,recvmsg,write,writev,pwrite64,sendmsg,"
                          "sendto,fsync,fdatasync",
                          NULL};
    int rc = itest_start_wrapped(&srv, wrap, NULL);
    cr_assert_eq(rc, 0, "server under strace did not start");
    char token[24];
    itest_rand_token(token, sizeof token);
    redisContext *c = hconnect(srv.port);
    redisReply *r = redisCommand(c, "SET fsyncprobe %s", token);
    cr_assert(r && r->type == REDIS_REPLY_STATUS, "SET under strace");
    freeReplyObject(r);
    redisFree(c);
    cr_assert(traced_child(srv.pid) > 0, "found the traced server process");
    itest_stop(&srv, 10000); /* SIGTERM to the server by PID; strace exits with it */
    char line[4096] = "";
    int res = fsync_between(trace, token, line, sizeof line);
    cr_assert(res >= 0, "trace %s: did not find the request and its +OK reply", trace);
    cr_assert_eq(res, 1,
                 "the value of 'SET fsyncprobe %s' was not written to a file and fsync'd "
                 "before the reply:\n%s",
                 token, line);
}
