/*
 * test_pubsub.c - Pub/Sub against the real server: Redis 7's reply shapes for
 * (P)SUBSCRIBE / (P)UNSUBSCRIBE in RESP2 (arrays) and RESP3 (push frames), delivery to
 * channel and pattern subscribers with PUBLISH's counts, PUBSUB CHANNELS/NUMSUB/NUMPAT,
 * INFO and CLIENT LIST, the RESP2 subscribed-mode rules (PING as ["pong", msg], other
 * commands refused with Redis's exact text), RESET, cleanup on disconnect, a subscriber
 * that never reads being closed at client-output-buffer-limit while the server keeps
 * serving, ordering of pushes against replies, and a hiredis subscriber.
 */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
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

static void setup_small_obuf(void)
{
    static const char *const extra[] = {"--client-output-buffer-limit", "1mb", NULL};
    start_with(extra);
}

static void teardown(void)
{
    itest_close(conn);
    conn = NULL;
    itest_fini();
}

static struct itest_conn *connect_new(void)
{
    struct itest_conn *c = itest_connect(srv.port);
    cr_assert(c, "connect");
    return c;
}

static struct itest_conn *connect_resp3(void)
{
    struct itest_conn *c = connect_new();
    struct itest_reply *r = itest_call_r(c, "HELLO 3");
    cr_assert(r && r->type == IT_MAP, "HELLO 3 answers a map");
    itest_reply_free(r);
    return c;
}

static void expect_reply(struct itest_conn *c, const char *what, const char *want)
{
    char *got = itest_read_fmt(c);
    cr_assert_str_eq(got, want, "%s\n   expected: %s\n   got: %s", what, want, got);
    free(got);
}

/* Send a command without reading its reply. */
static void send_line(struct itest_conn *c, const char *line)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s\r\n", line);
    cr_assert_eq(itest_send_raw(c, buf, strlen(buf)), 0, "send %s", line);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Poll `line` on c until it answers want (bounded); asserts it did. */
static void eventually(struct itest_conn *c, const char *line, const char *want, int ms)
{
    char *got = NULL;
    for (long end = itest_now_ms() + ms; itest_now_ms() < end; sleep_ms(20)) {
        free(got);
        got = itest_call(c, line);
        if (strcmp(got, want) == 0)
            break;
    }
    cr_assert_str_eq(got, want, "%s never answered %s (last: %s)", line, want, got);
    free(got);
}

/* ---------------------------------------------------------------- reply shapes */

Test(pubsub, resp2_subscribe_unsubscribe_shapes, .init = setup, .fini = teardown,
     .timeout = 30)
{
    send_line(conn, "SUBSCRIBE a b");
    expect_reply(conn, "subscribe a", "[\"subscribe\", \"a\", :1]");
    expect_reply(conn, "subscribe b", "[\"subscribe\", \"b\", :2]");
    ITEST_EXPECT(conn, "SUBSCRIBE a", "[\"subscribe\", \"a\", :2]"); /* already held */
    send_line(conn, "PSUBSCRIBE p* q?");
    expect_reply(conn, "psubscribe p*", "[\"psubscribe\", \"p*\", :3]");
    expect_reply(conn, "psubscribe q?", "[\"psubscribe\", \"q?\", :4]");
    ITEST_EXPECT(conn, "UNSUBSCRIBE nope", "[\"unsubscribe\", \"nope\", :4]");
    /* without arguments: every channel, newest first; the count includes patterns */
    send_line(conn, "UNSUBSCRIBE");
    expect_reply(conn, "unsubscribe all (1)", "[\"unsubscribe\", \"b\", :3]");
    expect_reply(conn, "unsubscribe all (2)", "[\"unsubscribe\", \"a\", :2]");
    ITEST_EXPECT(conn, "UNSUBSCRIBE", "[\"unsubscribe\", $nil, :2]");
    ITEST_EXPECT(conn, "PUNSUBSCRIBE q?", "[\"punsubscribe\", \"q?\", :1]");
    ITEST_EXPECT(conn, "PUNSUBSCRIBE", "[\"punsubscribe\", \"p*\", :0]");
    ITEST_EXPECT(conn, "PUNSUBSCRIBE", "[\"punsubscribe\", $nil, :0]");
    /* out of subscribed mode: ordinary commands run again */
    ITEST_EXPECT(conn, "GET k", "$nil");
    ITEST_EXPECT(conn, "PING", "+PONG");
    ITEST_EXPECT(conn, "SUBSCRIBE", "-ERR wrong number of arguments for 'subscribe' command");
    ITEST_EXPECT(conn, "PUBLISH x", "-ERR wrong number of arguments for 'publish' command");
}

Test(pubsub, resp3_push_frames, .init = setup, .fini = teardown, .timeout = 30)
{
    struct itest_conn *c = connect_resp3();
    ITEST_EXPECT(c, "SUBSCRIBE a", ">[\"subscribe\", \"a\", :1]");
    ITEST_EXPECT(c, "PSUBSCRIBE a*", ">[\"psubscribe\", \"a*\", :2]");
    /* RESP3: any command runs while subscribed, PING answers normally */
    ITEST_EXPECT(c, "PING", "+PONG");
    ITEST_EXPECT(c, "PING hi", "\"hi\"");
    ITEST_EXPECT(c, "GET k", "_");
    ITEST_EXPECT(c, "SET k v", "+OK");
    ITEST_EXPECT(c, "PUBSUB NUMSUB a", "[\"a\", :1]");
    /* a message published by the subscriber itself arrives before the PUBLISH reply */
    send_line(c, "PUBLISH a hello");
    expect_reply(c, "message", ">[\"message\", \"a\", \"hello\"]");
    expect_reply(c, "pmessage", ">[\"pmessage\", \"a*\", \"a\", \"hello\"]");
    expect_reply(c, "PUBLISH reply", ":2");
    /* SUBSCRIBE and PUBLISH in one write: the confirmation (complete, not yet sent when
     * the message is published) still comes first */
    const char two[] = "SUBSCRIBE b2\r\nPUBLISH b2 x\r\n";
    cr_assert_eq(itest_send_raw(c, two, sizeof two - 1), 0);
    expect_reply(c, "confirmation first", ">[\"subscribe\", \"b2\", :3]");
    expect_reply(c, "then the message", ">[\"message\", \"b2\", \"x\"]");
    expect_reply(c, "then the PUBLISH reply", ":1");
    ITEST_EXPECT(c, "UNSUBSCRIBE b2", ">[\"unsubscribe\", \"b2\", :2]");
    ITEST_EXPECT(c, "UNSUBSCRIBE", ">[\"unsubscribe\", \"a\", :1]");
    ITEST_EXPECT(c, "UNSUBSCRIBE", ">[\"unsubscribe\", _, :1]");
    ITEST_EXPECT(c, "PUNSUBSCRIBE", ">[\"punsubscribe\", \"a*\", :0]");
    ITEST_EXPECT(c, "PUNSUBSCRIBE", ">[\"punsubscribe\", _, :0]");
    itest_close(c);
}

Test(pubsub, subscribe_confirmation_precedes_messages, .init = setup, .fini = teardown,
     .timeout = 30)
{
    /* SUBSCRIBE and a PUBLISH by another client in the same instant: the confirmation
     * always comes first, then the message, whole */
    struct itest_conn *sub = connect_new();
    for (int i = 0; i < 50; i++) {
        char ch[32], line[64];
        snprintf(ch, sizeof ch, "race%d", i);
        snprintf(line, sizeof line, "SUBSCRIBE %s", ch);
        send_line(sub, line);
        char want[96];
        snprintf(want, sizeof want, "[\"subscribe\", \"%s\", :%d]", ch, i + 1);
        expect_reply(sub, "confirmation", want);
        snprintf(line, sizeof line, "PUBLISH %s m%d", ch, i);
        ITEST_EXPECT(conn, line, ":1");
        snprintf(want, sizeof want, "[\"message\", \"%s\", \"m%d\"]", ch, i);
        expect_reply(sub, "message after confirmation", want);
    }
    itest_close(sub);
}

/* ---------------------------------------------------------------- delivery */

Test(pubsub, delivery_to_channel_and_pattern_subscribers, .init = setup, .fini = teardown,
     .timeout = 30)
{
    struct itest_conn *s2 = connect_new();   /* RESP2, channel news */
    struct itest_conn *s3 = connect_resp3(); /* RESP3, channel news */
    struct itest_conn *ps = connect_new();   /* RESP2, pattern n*s */
    struct itest_conn *both = connect_new(); /* channel news and pattern ne?s */
    ITEST_EXPECT(s2, "SUBSCRIBE news", "[\"subscribe\", \"news\", :1]");
    ITEST_EXPECT(s3, "SUBSCRIBE news", ">[\"subscribe\", \"news\", :1]");
    ITEST_EXPECT(ps, "PSUBSCRIBE n*s", "[\"psubscribe\", \"n*s\", :1]");
    ITEST_EXPECT(both, "SUBSCRIBE news", "[\"subscribe\", \"news\", :1]");
    ITEST_EXPECT(both, "PSUBSCRIBE ne?s", "[\"psubscribe\", \"ne?s\", :2]");
    /* 3 channel subscribers + 2 matching pattern subscriptions */
    ITEST_EXPECT(conn, "PUBLISH news hello", ":5");
    expect_reply(s2, "RESP2 message", "[\"message\", \"news\", \"hello\"]");
    expect_reply(s3, "RESP3 push", ">[\"message\", \"news\", \"hello\"]");
    expect_reply(ps, "pmessage", "[\"pmessage\", \"n*s\", \"news\", \"hello\"]");
    expect_reply(both, "both: message", "[\"message\", \"news\", \"hello\"]");
    expect_reply(both, "both: pmessage", "[\"pmessage\", \"ne?s\", \"news\", \"hello\"]");
    /* only the pattern matches */
    ITEST_EXPECT(conn, "PUBLISH nuts x", ":1");
    expect_reply(ps, "pmessage nuts", "[\"pmessage\", \"n*s\", \"nuts\", \"x\"]");
    ITEST_EXPECT(conn, "PUBLISH nobody x", ":0");
    /* binary payload (CR LF NUL) arrives intact */
    const char *argv[] = {"PUBLISH", "news", "a\r\nb", NULL};
    size_t lens[] = {7, 4, 5};
    char bin[5] = {'a', '\r', '\n', '\0', 'b'};
    argv[2] = bin;
    cr_assert_eq(itest_send_argv(conn, 3, argv, lens), 0);
    expect_reply(conn, "PUBLISH binary", ":5");
    expect_reply(s2, "binary payload", "[\"message\", \"news\", \"a\\x0d\\x0a\\x00b\"]");
    expect_reply(s3, "binary payload", ">[\"message\", \"news\", \"a\\x0d\\x0a\\x00b\"]");
    /* many messages keep publish order */
    for (int i = 0; i < 200; i++) {
        char line[64];
        snprintf(line, sizeof line, "PUBLISH news n%d", i);
        send_line(conn, line);
    }
    for (int i = 0; i < 200; i++)
        expect_reply(conn, "pipelined PUBLISH", ":5");
    for (int i = 0; i < 200; i++) {
        char want[64];
        snprintf(want, sizeof want, ">[\"message\", \"news\", \"n%d\"]", i);
        expect_reply(s3, "ordered messages", want);
    }
    itest_close(s2);
    itest_close(s3);
    itest_close(ps);
    itest_close(both);
}

Test(pubsub, pubsub_introspection_info_client_list, .init = setup, .fini = teardown,
     .timeout = 30)
{
    struct itest_conn *a = connect_new(), *b = connect_new();
    send_line(a, "SUBSCRIBE ch1 ch2 other");
    for (int i = 0; i < 3; i++)
        free(itest_read_fmt(a));
    ITEST_EXPECT(a, "PSUBSCRIBE p*", "[\"psubscribe\", \"p*\", :4]");
    ITEST_EXPECT(b, "SUBSCRIBE ch1", "[\"subscribe\", \"ch1\", :1]");
    ITEST_EXPECT(b, "PSUBSCRIBE p*", "[\"psubscribe\", \"p*\", :2]");
    ITEST_EXPECT(conn, "PUBSUB NUMSUB ch1 ch2 none", "[\"ch1\", :2, \"ch2\", :1, \"none\", :0]");
    ITEST_EXPECT(conn, "PUBSUB NUMSUB", "[]");
    ITEST_EXPECT(conn, "PUBSUB NUMPAT", ":1"); /* distinct patterns */
    ITEST_EXPECT(conn, "PUBSUB CHANNELS o*", "[\"other\"]");
    struct itest_reply *r = itest_call_r(conn, "PUBSUB CHANNELS");
    cr_assert(r && r->type == IT_ARRAY && r->n == 3, "three active channels");
    int seen = 0;
    for (size_t i = 0; i < r->n; i++)
        seen |= strcmp(r->elem[i]->str, "ch1") == 0   ? 1
                : strcmp(r->elem[i]->str, "ch2") == 0 ? 2
                : strcmp(r->elem[i]->str, "other") == 0 ? 4 : 8;
    cr_assert_eq(seen, 7, "CHANNELS lists ch1, ch2, other");
    itest_reply_free(r);
    ITEST_EXPECT(conn, "PUBSUB CHANNELS a b",
                 "-ERR wrong number of arguments for 'pubsub|channels' command");
    ITEST_EXPECT(conn, "PUBSUB NOPE", "-ERR unknown subcommand 'NOPE'. Try PUBSUB HELP.");
    char *info = itest_call(conn, "INFO stats");
    cr_assert(strstr(info, "pubsub_channels:3\\x0d\\x0a"), "INFO: %s", info);
    cr_assert(strstr(info, "pubsub_patterns:1\\x0d\\x0a"), "INFO: %s", info);
    free(info);
    char *list = itest_call(conn, "CLIENT LIST TYPE pubsub");
    cr_assert(strstr(list, "flags=P db=0 sub=3 psub=1 "), "CLIENT LIST: %s", list);
    cr_assert(strstr(list, "flags=P db=0 sub=1 psub=1 "), "CLIENT LIST: %s", list);
    cr_assert(!strstr(list, "cmd=client"), "the caller is not a subscriber: %s", list);
    free(list);
    list = itest_call(conn, "CLIENT LIST TYPE normal");
    cr_assert(strstr(list, "flags=N db=0 sub=0 psub=0 ") && !strstr(list, "flags=P"),
              "CLIENT LIST TYPE normal: %s", list);
    free(list);
    itest_close(a);
    itest_close(b);
}

/* ---------------------------------------------------------------- subscribed mode */

Test(pubsub, resp2_ping_in_subscribed_mode, .init = setup, .fini = teardown, .timeout = 30)
{
    ITEST_EXPECT(conn, "SUBSCRIBE c", "[\"subscribe\", \"c\", :1]");
    ITEST_EXPECT(conn, "PING", "[\"pong\", \"\"]");
    ITEST_EXPECT(conn, "PING hi", "[\"pong\", \"hi\"]");
    ITEST_EXPECT(conn, "ping a b", "-ERR wrong number of arguments for 'ping' command");
}

Test(pubsub, resp2_forbidden_commands_while_subscribed, .init = setup, .fini = teardown,
     .timeout = 30)
{
    ITEST_EXPECT(conn, "PSUBSCRIBE x*", "[\"psubscribe\", \"x*\", :1]");
    ITEST_EXPECT(conn, "GET k",
                 "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / "
                 "QUIT / RESET are allowed in this context");
    ITEST_EXPECT(conn, "set k v",
                 "-ERR Can't execute 'set': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / "
                 "QUIT / RESET are allowed in this context");
    ITEST_EXPECT(conn, "CLIENT LIST",
                 "-ERR Can't execute 'client|list': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / "
                 "PING / QUIT / RESET are allowed in this context");
    ITEST_EXPECT(conn, "HELLO 3",
                 "-ERR Can't execute 'hello': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / "
                 "QUIT / RESET are allowed in this context");
    /* unknown command and wrong arity are checked first, as in Redis */
    ITEST_EXPECT(conn, "NOSUCH", "-ERR unknown command 'NOSUCH', with args beginning with: ");
    ITEST_EXPECT(conn, "GET", "-ERR wrong number of arguments for 'get' command");
    /* the connection stays usable: messages still arrive, unsubscribing restores it */
    struct itest_conn *p = connect_new();
    ITEST_EXPECT(p, "PUBLISH xy m", ":1");
    expect_reply(conn, "pmessage after errors", "[\"pmessage\", \"x*\", \"xy\", \"m\"]");
    ITEST_EXPECT(conn, "PUNSUBSCRIBE", "[\"punsubscribe\", \"x*\", :0]");
    ITEST_EXPECT(conn, "SET k v", "+OK");
    ITEST_EXPECT(conn, "GET k", "\"v\"");
    /* the refused SET above was not applied: only the second one was */
    itest_close(p);
}

Test(pubsub, reset_leaves_subscribed_mode, .init = setup, .fini = teardown, .timeout = 30)
{
    ITEST_EXPECT(conn, "SUBSCRIBE r1 r2", "[\"subscribe\", \"r1\", :1]");
    expect_reply(conn, "second confirmation", "[\"subscribe\", \"r2\", :2]");
    ITEST_EXPECT(conn, "PSUBSCRIBE r*", "[\"psubscribe\", \"r*\", :3]");
    ITEST_EXPECT(conn, "RESET", "+RESET");
    ITEST_EXPECT(conn, "GET k", "$nil");
    struct itest_conn *p = connect_new();
    ITEST_EXPECT(p, "PUBLISH r1 m", ":0");
    ITEST_EXPECT(p, "PUBSUB NUMSUB r1 r2", "[\"r1\", :0, \"r2\", :0]");
    ITEST_EXPECT(p, "PUBSUB NUMPAT", ":0");
    /* RESET also leaves RESP3; a RESP3 subscriber goes back to RESP2 unsubscribed */
    struct itest_conn *c3 = connect_resp3();
    ITEST_EXPECT(c3, "SUBSCRIBE r1", ">[\"subscribe\", \"r1\", :1]");
    ITEST_EXPECT(c3, "RESET", "+RESET");
    ITEST_EXPECT(c3, "PING", "+PONG");
    ITEST_EXPECT(p, "PUBLISH r1 m", ":0");
    itest_close(p);
    itest_close(c3);
}

Test(pubsub, disconnect_removes_subscriptions, .init = setup, .fini = teardown,
     .timeout = 30)
{
    struct itest_conn *a = connect_new(), *b = connect_new();
    ITEST_EXPECT(a, "SUBSCRIBE gone", "[\"subscribe\", \"gone\", :1]");
    ITEST_EXPECT(a, "PSUBSCRIBE go*", "[\"psubscribe\", \"go*\", :2]");
    ITEST_EXPECT(b, "SUBSCRIBE gone", "[\"subscribe\", \"gone\", :1]");
    ITEST_EXPECT(conn, "PUBSUB NUMSUB gone", "[\"gone\", :2]");
    itest_close(a);
    eventually(conn, "PUBSUB NUMSUB gone", "[\"gone\", :1]", 5000);
    ITEST_EXPECT(conn, "PUBSUB NUMPAT", ":0");
    ITEST_EXPECT(conn, "PUBLISH gone m", ":1");
    expect_reply(b, "remaining subscriber", "[\"message\", \"gone\", \"m\"]");
    send_line(b, "QUIT");
    expect_reply(b, "QUIT while subscribed", "+OK");
    cr_assert(itest_wait_eof(b, 5000), "QUIT closes a subscribed connection");
    eventually(conn, "PUBSUB NUMSUB gone", "[\"gone\", :0]", 5000);
    ITEST_EXPECT(conn, "PUBSUB CHANNELS", "[]");
    itest_close(b);
}

static void setup_timeout(void)
{
    static const char *const extra[] = {"--timeout", "1", NULL};
    start_with(extra);
}

Test(pubsub, subscribers_are_not_closed_by_idle_timeout, .init = setup_timeout,
     .fini = teardown, .timeout = 30)
{
    struct itest_conn *sub = connect_new(), *idle = connect_new();
    ITEST_EXPECT(sub, "SUBSCRIBE quiet", "[\"subscribe\", \"quiet\", :1]");
    ITEST_EXPECT(idle, "PING", "+PONG");
    cr_assert(itest_wait_eof(idle, 5000), "an idle normal client is closed by timeout 1");
    struct itest_conn *pub = connect_new(); /* conn itself was idle for too long */
    ITEST_EXPECT(pub, "PUBLISH quiet still-here", ":1");
    expect_reply(sub, "subscriber kept past the timeout",
                 "[\"message\", \"quiet\", \"still-here\"]");
    itest_close(sub);
    itest_close(idle);
    itest_close(pub);
}

/* ---------------------------------------------------------------- limits and ordering */

Test(pubsub, slow_subscriber_is_closed_server_stays_responsive, .init = setup_small_obuf,
     .fini = teardown, .timeout = 120)
{
    struct itest_conn *slow = connect_new();
    struct itest_conn *fast = connect_new();
    ITEST_EXPECT(slow, "SUBSCRIBE firehose", "[\"subscribe\", \"firehose\", :1]");
    ITEST_EXPECT(fast, "SUBSCRIBE firehose", "[\"subscribe\", \"firehose\", :1]");
    /* 64 KiB messages; the slow one never reads, so it exceeds the 1 MiB limit once the
     * kernel's socket buffers are full */
    enum { MSG = 64 * 1024, MAX_MSGS = 4000 };
    char *payload = malloc(MSG);
    memset(payload, 'x', MSG);
    const char *argv[] = {"PUBLISH", "firehose", payload};
    size_t lens[] = {7, 8, MSG};
    int sent = 0, dropped_at = -1;
    for (; sent < MAX_MSGS && dropped_at < 0; sent++) {
        cr_assert_eq(itest_send_argv(conn, 3, argv, lens), 0);
        char *got = itest_read_fmt(conn);
        if (strcmp(got, ":1") == 0)
            dropped_at = sent;
        else
            cr_assert_str_eq(got, ":2", "PUBLISH #%d", sent);
        free(got);
        /* the fast subscriber reads everything */
        struct itest_reply *m = itest_read(fast);
        cr_assert(m && m->type == IT_ARRAY && m->n == 3 && m->elem[2]->len == MSG,
                  "fast subscriber got message #%d", sent);
        itest_reply_free(m);
    }
    free(payload);
    cr_assert(dropped_at > 0, "the slow subscriber was never closed (%d messages)", sent);
    ITEST_EXPECT(conn, "PUBSUB NUMSUB firehose", "[\"firehose\", :1]");
    cr_assert(itest_wait_eof(slow, 10000), "slow subscriber's connection closed");
    /* the server keeps serving everyone else */
    struct itest_conn *other = connect_new();
    ITEST_EXPECT(other, "PING", "+PONG");
    ITEST_EXPECT(other, "SET afterslow v", "+OK");
    ITEST_EXPECT(fast, "PING", "[\"pong\", \"\"]");
    itest_close(other);
    itest_close(slow);
    itest_close(fast);
}

Test(pubsub, resp3_pushes_never_inside_replies, .init = setup, .fini = teardown,
     .timeout = 60)
{
    /* a RESP3 subscriber pipelines writes and reads (replies wait for fsync and read
     * barriers) while another client publishes: every frame must parse whole, replies
     * come in command order, messages in publish order */
    enum { N = 300 };
    struct itest_conn *c = connect_resp3();
    ITEST_EXPECT(c, "SUBSCRIBE mix", ">[\"subscribe\", \"mix\", :1]");
    char buf[N * 64];
    size_t n = 0;
    for (int i = 0; i < N; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, i % 2 ? "GET mk%d\r\n" : "SET mk%d v\r\n",
                              i - i % 2);
    cr_assert_eq(itest_send_raw(c, buf, n), 0);
    for (int i = 0; i < N; i++) {
        char line[64];
        snprintf(line, sizeof line, "PUBLISH mix m%d", i);
        send_line(conn, line);
    }
    int replies = 0, msgs = 0;
    while (replies < N || msgs < N) {
        struct itest_reply *r = itest_read(c);
        cr_assert(r, "a whole frame (replies %d, messages %d)", replies, msgs);
        if (r->type == IT_PUSH) {
            char want[32];
            snprintf(want, sizeof want, "m%d", msgs);
            cr_assert(r->n == 3 && strcmp(r->elem[2]->str, want) == 0, "message %d in order",
                      msgs);
            msgs++;
        } else {
            const char *want = replies % 2 ? "\"v\"" : "+OK";
            char *got = itest_fmt(r);
            cr_assert_str_eq(got, want, "reply %d", replies);
            free(got);
            replies++;
        }
        itest_reply_free(r);
    }
    for (int i = 0; i < N; i++)
        expect_reply(conn, "PUBLISH count", ":1");
    itest_close(c);
}

Test(pubsub, subscription_limits, .init = setup, .fini = teardown, .timeout = 30)
{
    /* a channel name over 64 KiB is refused for that name only; one reply per name */
    size_t big = 64 * 1024 + 1;
    char *name = malloc(big);
    memset(name, 'n', big);
    const char *argv[] = {"SUBSCRIBE", "ok1", name, "ok2"};
    size_t lens[] = {9, 3, big, 3};
    cr_assert_eq(itest_send_argv(conn, 4, argv, lens), 0);
    expect_reply(conn, "first", "[\"subscribe\", \"ok1\", :1]");
    expect_reply(conn, "too long", "-ERR channel name too long");
    expect_reply(conn, "third", "[\"subscribe\", \"ok2\", :2]");
    free(name);
}

/* ---------------------------------------------------------------- hiredis */

Test(pubsub, hiredis_subscriber, .init = setup, .fini = teardown, .timeout = 30)
{
    struct timeval tv = {5, 0};
    redisContext *rc = redisConnectWithTimeout("127.0.0.1", srv.port, tv);
    cr_assert(rc && !rc->err, "hiredis connect");
    redisReply *r = redisCommand(rc, "SUBSCRIBE %s %s", "hc1", "hc2");
    cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 3);
    cr_assert_str_eq(r->element[0]->str, "subscribe");
    cr_assert_str_eq(r->element[1]->str, "hc1");
    cr_assert_eq(r->element[2]->integer, 1);
    freeReplyObject(r);
    cr_assert_eq(redisGetReply(rc, (void **)&r), REDIS_OK);
    cr_assert(r->type == REDIS_REPLY_ARRAY && r->element[2]->integer == 2);
    freeReplyObject(r);
    for (int i = 0; i < 20; i++) {
        char line[64];
        snprintf(line, sizeof line, "PUBLISH hc%d msg%d", 1 + i % 2, i);
        ITEST_EXPECT(conn, line, ":1");
    }
    for (int i = 0; i < 20; i++) {
        cr_assert_eq(redisGetReply(rc, (void **)&r), REDIS_OK, "message %d", i);
        char ch[8], msg[16];
        snprintf(ch, sizeof ch, "hc%d", 1 + i % 2);
        snprintf(msg, sizeof msg, "msg%d", i);
        cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 3);
        cr_assert_str_eq(r->element[0]->str, "message");
        cr_assert_str_eq(r->element[1]->str, ch);
        cr_assert_str_eq(r->element[2]->str, msg);
        freeReplyObject(r);
    }
    /* a refused command is an error reply; the subscription goes on */
    redisAppendCommand(rc, "GET %s", "k");
    cr_assert_eq(redisGetReply(rc, (void **)&r), REDIS_OK);
    cr_assert_eq(r->type, REDIS_REPLY_ERROR);
    cr_assert(strstr(r->str, "Can't execute 'get'"), "%s", r->str);
    freeReplyObject(r);
    redisAppendCommand(rc, "UNSUBSCRIBE");
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(redisGetReply(rc, (void **)&r), REDIS_OK);
        cr_assert_str_eq(r->element[0]->str, "unsubscribe");
        cr_assert_eq(r->element[2]->integer, 1 - i);
        freeReplyObject(r);
    }
    r = redisCommand(rc, "SET %s %s", "hk", "hv");
    cr_assert(r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0);
    freeReplyObject(r);
    redisFree(rc);
}
