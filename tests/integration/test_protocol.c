/*
 * test_protocol.c - the RESP front door of the real server: pipelines, arbitrary splits of
 * the input, inline commands, protocol errors with Redis's exact texts (and the connection
 * closed afterwards), maxclients, and big pipelines that must not blow the server's memory.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "helper.h"

static struct itest_srv srv;
static struct itest_conn *conn;

static void start_with(const char *const *extra)
{
    int rc = itest_start(&srv, extra);
    cr_assert_eq(rc, 0, "server %s did not start", itest_bin());
    conn = itest_connect(srv.port);
    cr_assert(conn, "connect");
}

static void setup(void) { start_with(NULL); }

static void teardown(void)
{
    itest_close(conn);
    conn = NULL;
    itest_fini();
}

static void expect_reply(struct itest_conn *c, const char *what, const char *want)
{
    char *got = itest_read_fmt(c);
    cr_assert_str_eq(got, want, "%s\n   expected: %s\n   got: %s", what, want, got);
    free(got);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---------------------------------------------------------------- pipelines and splits */

Test(proto, pipeline_1000_in_one_write, .init = setup, .fini = teardown, .timeout = 60)
{
    enum { N = 1000 };
    size_t cap = N * 80, n = 0;
    char *buf = malloc(cap);
    for (int i = 0; i < N; i++) {
        char k[16], v[16];
        int kl = snprintf(k, sizeof k, "p:%d", i), vl = snprintf(v, sizeof v, "v%d", i);
        n += (size_t)snprintf(buf + n, cap - n, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n",
                              kl, k, vl, v);
    }
    cr_assert_eq(itest_send_raw(conn, buf, n), 0);
    for (int i = 0; i < N; i++)
        expect_reply(conn, "pipelined SET", "+OK");
    n = 0;
    for (int i = 0; i < N; i++) {
        char k[16];
        int kl = snprintf(k, sizeof k, "p:%d", i);
        n += (size_t)snprintf(buf + n, cap - n, "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", kl, k);
    }
    cr_assert_eq(itest_send_raw(conn, buf, n), 0);
    for (int i = 0; i < N; i++) {
        char want[24];
        snprintf(want, sizeof want, "\"v%d\"", i);
        expect_reply(conn, "pipelined GET (replies in order)", want);
    }
    free(buf);
}

static const char stream[] = "*3\r\n$3\r\nSET\r\n$2\r\nks\r\n$5\r\nhello\r\n"
                             "PING\r\n"
                             "*2\r\n$3\r\nGET\r\n$2\r\nks\r\n"
                             "*1\r\n$4\r\nPING\r\n";

static void expect_stream_replies(struct itest_conn *c, const char *what)
{
    expect_reply(c, what, "+OK");
    expect_reply(c, what, "+PONG");
    expect_reply(c, what, "\"hello\"");
    expect_reply(c, what, "+PONG");
}

Test(proto, byte_by_byte, .init = setup, .fini = teardown, .timeout = 60)
{
    size_t n = sizeof stream - 1;
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(itest_send_raw(conn, stream + i, 1), 0);
        sleep_ms(2); /* each byte its own segment (TCP_NODELAY) */
    }
    expect_stream_replies(conn, "stream sent one byte per write");
}

Test(proto, every_split_point, .init = setup, .fini = teardown, .timeout = 60)
{
    size_t n = sizeof stream - 1;
    for (size_t cut = 1; cut < n; cut++) {
        char what[64];
        snprintf(what, sizeof what, "stream split at byte %zu", cut);
        cr_assert_eq(itest_send_raw(conn, stream, cut), 0);
        sleep_ms(3);
        cr_assert_eq(itest_send_raw(conn, stream + cut, n - cut), 0);
        expect_stream_replies(conn, what);
    }
}

/* ---------------------------------------------------------------- inline */

Test(proto, inline_commands, .init = setup, .fini = teardown, .timeout = 60)
{
    const char in[] = "PING\r\n"
                      "SET ia hello\r\n"
                      "GET ia\n"                      /* bare LF works too */
                      "\r\n\r\n"                      /* empty lines are ignored */
                      "SET iq \"hello world\\x41\\n\"\r\n"
                      "GET iq\r\n"
                      "SET is 'single quoted'\r\n"
                      "GET is\r\n"
                      "  ECHO   spaced   \r\n"
                      "EXISTS ia iq is\r\n";
    cr_assert_eq(itest_send_raw(conn, in, sizeof in - 1), 0);
    expect_reply(conn, "inline PING", "+PONG");
    expect_reply(conn, "inline SET", "+OK");
    expect_reply(conn, "inline GET (LF only)", "\"hello\"");
    expect_reply(conn, "inline SET with double quotes and escapes", "+OK");
    expect_reply(conn, "inline GET", "\"hello worldA\\x0a\"");
    expect_reply(conn, "inline SET with single quotes", "+OK");
    expect_reply(conn, "inline GET", "\"single quoted\"");
    expect_reply(conn, "inline ECHO with extra spaces", "\"spaced\"");
    expect_reply(conn, "inline EXISTS (and no reply for the empty lines)", ":3");
    /* nothing more is pending: the next command's reply is the next reply */
    char *got = itest_call(conn, "PING");
    cr_assert_str_eq(got, "+PONG", "after inline: %s", got);
    free(got);
}

/* ---------------------------------------------------------------- protocol errors */

struct perr {
    const char *in;
    size_t len; /* 0: strlen */
    const char *want;
};

static void check_perr(const struct perr *p)
{
    struct itest_conn *c = itest_connect(srv.port);
    cr_assert(c);
    size_t len = p->len ? p->len : strlen(p->in);
    cr_assert_eq(itest_send_raw(c, p->in, len), 0);
    char *got = itest_read_fmt(c);
    cr_assert_str_eq(got, p->want, "sent: %.60s (%zu bytes)\n   expected: %s\n   got: %s",
                     p->in, len, p->want, got);
    free(got);
    cr_assert(itest_wait_eof(c, 3000), "after '%s' the server must close the connection",
              p->want);
    itest_close(c);
}

Test(proto, protocol_errors_close, .init = setup, .fini = teardown, .timeout = 60)
{
    static const struct perr cases[] = {
        {"*abc\r\n", 0, "-ERR Protocol error: invalid multibulk length"},
        {"*2000000\r\n", 0, "-ERR Protocol error: invalid multibulk length"},
        {"*1\r\n$abc\r\n", 0, "-ERR Protocol error: invalid bulk length"},
        {"*1\r\n$-5\r\n", 0, "-ERR Protocol error: invalid bulk length"},
        {"*1\r\n$600000000\r\n", 0, "-ERR Protocol error: invalid bulk length"},
        {"*1\r\nfoo\r\n", 0, "-ERR Protocol error: expected '$', got 'f'"},
        {"*2\r\n$3\r\nGET\r\n:1\r\n", 0, "-ERR Protocol error: expected '$', got ':'"},
        {"SET a \"unbalanced\r\n", 0, "-ERR Protocol error: unbalanced quotes in request"},
        {"SET a 'x\r\n", 0, "-ERR Protocol error: unbalanced quotes in request"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_perr(&cases[i]);

    /* an inline request over 64 KiB without a newline */
    size_t big = 70 * 1024;
    char *b = malloc(big);
    memset(b, 'a', big);
    struct perr tb = {b, big, "-ERR Protocol error: too big inline request"};
    check_perr(&tb);
    free(b);

    /* commands before the bad bytes in the same write are answered first */
    struct itest_conn *c = itest_connect(srv.port);
    const char mix[] = "PING\r\n*1\r\n$4\r\nPING\r\n*x\r\n";
    cr_assert_eq(itest_send_raw(c, mix, sizeof mix - 1), 0);
    expect_reply(c, "PING before error", "+PONG");
    expect_reply(c, "PING before error", "+PONG");
    expect_reply(c, "then", "-ERR Protocol error: invalid multibulk length");
    cr_assert(itest_wait_eof(c, 3000), "closed after the protocol error");
    itest_close(c);

    /* the server is fine */
    char *got = itest_call(conn, "PING");
    cr_assert_str_eq(got, "+PONG", "server alive after protocol errors: %s", got);
    free(got);
}

static const char *const pass_args[] = {"--requirepass", "pw", NULL};
static void setup_pass(void) { start_with(pass_args); }

/* Before AUTH the limits are tighter (Redis: 10 arguments, 16 KiB bulk). */
Test(proto, unauthenticated_limits, .init = setup_pass, .fini = teardown, .timeout = 60)
{
    static const struct perr cases[] = {
        {"*11\r\n", 0, "-ERR Protocol error: unauthenticated multibulk length"},
        {"*1\r\n$16385\r\n", 0, "-ERR Protocol error: unauthenticated bulk length"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_perr(&cases[i]);
    /* after AUTH the same shapes are fine */
    char *got = itest_call(conn, "AUTH pw");
    cr_assert_str_eq(got, "+OK", "AUTH pw: %s", got);
    free(got);
    got = itest_call(conn, "MSET a 1 b 2 c 3 d 4 e 5 f 6");
    cr_assert_str_eq(got, "+OK", "13 arguments after AUTH: %s", got);
    free(got);
}

/* ---------------------------------------------------------------- maxclients */

static const char *const maxc_args[] = {"--maxclients", "5", NULL};
static void setup_maxc(void) { start_with(maxc_args); }

Test(proto, maxclients, .init = setup_maxc, .fini = teardown, .timeout = 60)
{
    struct itest_conn *cs[4];
    for (int i = 0; i < 4; i++) { /* `conn` is the first of 5 */
        cs[i] = itest_connect(srv.port);
        cr_assert(cs[i]);
        char *got = itest_call(cs[i], "PING");
        cr_assert_str_eq(got, "+PONG", "client %d of 5: %s", i + 2, got);
        free(got);
    }
    struct itest_conn *extra = itest_connect(srv.port);
    cr_assert(extra, "the 6th connection is accepted then refused");
    itest_send_raw(extra, "PING\r\n", 6);
    char *got = itest_read_fmt(extra);
    cr_assert_str_eq(got, "-ERR max number of clients reached",
                     "6th client with maxclients 5: %s", got);
    free(got);
    cr_assert(itest_wait_eof(extra, 3000), "the 6th client is disconnected");
    itest_close(extra);
    itest_close(cs[0]);
    sleep_ms(200);
    struct itest_conn *again = NULL;
    for (int t = 0; t < 20 && !again; t++) { /* the server notices the close */
        again = itest_connect(srv.port);
        got = itest_call(again, "PING");
        if (strcmp(got, "+PONG") != 0) {
            itest_close(again);
            again = NULL;
            sleep_ms(100);
        }
        free(got);
    }
    cr_assert(again, "after one client left, a new one is served");
    itest_close(again);
    for (int i = 1; i < 4; i++)
        itest_close(cs[i]);
}

/* ---------------------------------------------------------------- memory bounds */

static long rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = atol(line + 6);
    fclose(f);
    return kb;
}

/* Is the server built with AddressSanitizer? Its allocator quarantines freed memory (up to
 * 256 MB), so RSS says nothing about buffering there; the memory bounds are checked in the
 * plain build only. */
static bool server_is_asan(pid_t pid)
{
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    FILE *f = fopen(path, "r");
    bool asan = false;
    if (!f)
        return false;
    while (!asan && fgets(line, sizeof line, f))
        asan = strstr(line, "libasan") != NULL;
    fclose(f);
    return asan;
}

/* 200,000 pipelined commands streamed while reading: all answered, memory bounded. */
Test(proto, big_pipeline_streamed, .init = setup, .fini = teardown, .timeout = 120)
{
    enum { N = 200000, CHUNK = 2000 };
    static const char cmd[] = "*2\r\n$3\r\nGET\r\n$4\r\nnone\r\n";
    size_t cl = sizeof cmd - 1;
    char *buf = malloc(cl * CHUNK);
    for (int i = 0; i < CHUNK; i++)
        memcpy(buf + (size_t)i * cl, cmd, cl);
    long peak = 0;
    int read_n = 0;
    for (int sent = 0; sent < N; sent += CHUNK) {
        cr_assert_eq(itest_send_raw(conn, buf, cl * CHUNK), 0, "send at %d", sent);
        while (read_n < sent) { /* keep at most 2 chunks in flight */
            struct itest_reply *r = itest_read(conn);
            cr_assert(r && r->type == IT_NULL, "reply %d: %s", read_n, itest_fmt(r));
            itest_reply_free(r);
            read_n++;
        }
        long kb = rss_kb(srv.pid);
        if (kb > peak)
            peak = kb;
    }
    while (read_n < N) {
        struct itest_reply *r = itest_read(conn);
        cr_assert(r && r->type == IT_NULL, "reply %d: %s", read_n, itest_fmt(r));
        itest_reply_free(r);
        read_n++;
    }
    free(buf);
    if (!server_is_asan(srv.pid))
        cr_assert(peak < 256 * 1024, "server RSS peaked at %ld KiB during a streamed pipeline",
                  peak);
}

/* A client that sends GETs of a 1 MiB value and never reads: the server must not buffer
 * gigabytes (output-buffer limit or backpressure), and must keep serving others. */
Test(proto, unread_replies_bounded, .init = setup, .fini = teardown, .timeout = 120)
{
    size_t max = 1000 * 1000;
    char *v = malloc(max);
    memset(v, 'v', max);
    const char *av[] = {"SET", "big", v};
    size_t lens[] = {3, 3, max};
    cr_assert_eq(itest_send_argv(conn, 3, av, lens), 0);
    char *got = itest_read_fmt(conn);
    cr_assert_str_eq(got, "+OK", "SET big: %s", got);
    free(got);
    free(v);

    struct itest_conn *hog = itest_connect(srv.port);
    static const char get[] = "*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n";
    char *buf = malloc(sizeof get * 100);
    for (int i = 0; i < 100; i++)
        memcpy(buf + (size_t)i * (sizeof get - 1), get, sizeof get - 1);
    /* up to 3000 GETs = 3 GB of replies; stop when the server stops reading (send blocks
     * for > 2 s, helper gives up after 20 s) or closes us */
    long peak = 0, t0 = itest_now_ms();
    for (int i = 0; i < 30 && itest_now_ms() - t0 < 15000; i++) {
        if (itest_send_raw(hog, buf, (sizeof get - 1) * 100) != 0)
            break;
        long kb = rss_kb(srv.pid);
        if (kb > peak)
            peak = kb;
    }
    for (int i = 0; i < 10; i++) {
        sleep_ms(100);
        long kb = rss_kb(srv.pid);
        if (kb > peak)
            peak = kb;
    }
    free(buf);
    got = itest_call(conn, "PING");
    cr_assert_str_eq(got, "+PONG", "another client is served while one hogs: %s", got);
    free(got);
    if (!server_is_asan(srv.pid))
        cr_assert(peak < 512 * 1024, "server RSS peaked at %ld KiB with unread 1 MB replies",
                  peak);
    itest_close(hog);
}

/* A value over max-value-size is skipped as it streams in, never buffered whole: 100 MB
 * through a server with the default 1 MiB limit keeps its RSS flat, and the connection
 * gets an error and stays usable. */
Test(proto, oversize_value_not_buffered, .init = setup, .fini = teardown, .timeout = 120)
{
    const size_t total = 100u * 1024 * 1024, chunk = 1024 * 1024;
    long base = rss_kb(srv.pid), peak = base;
    static const char hdr[] = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$104857600\r\n";
    cr_assert_eq(itest_send_raw(conn, hdr, sizeof hdr - 1), 0);
    char *buf = malloc(chunk);
    memset(buf, 'x', chunk);
    for (size_t sent = 0; sent < total; sent += chunk) {
        cr_assert_eq(itest_send_raw(conn, buf, chunk), 0, "send at %zu", sent);
        long kb = rss_kb(srv.pid);
        if (kb > peak)
            peak = kb;
    }
    free(buf);
    cr_assert_eq(itest_send_raw(conn, "\r\n", 2), 0);
    expect_reply(conn, "SET with a 100 MB value",
                 "-ERR value of 104857600 bytes exceeds max-value-size (1048576 bytes)");
    char *got = itest_call(conn, "PING");
    cr_assert_str_eq(got, "+PONG", "connection usable after the oversize value: %s", got);
    free(got);
    got = itest_call(conn, "EXISTS k");
    cr_assert_str_eq(got, ":0", "nothing written: %s", got);
    free(got);
    if (server_is_asan(srv.pid)) {
        fprintf(stderr, "oversize_value_not_buffered: ASan server, RSS bound not checked "
                        "(%ld -> %ld KiB)\n", base, peak);
        return;
    }
    cr_assert(peak - base < 32 * 1024,
              "server RSS grew from %ld to %ld KiB while a 100 MB value streamed in", base, peak);
}
