/*
 * hiredis_check.c - hiredis (the C client, Debian libhiredis) against raftconf-server:
 * blocking commands, a pipeline of 1,000 commands (redisAppendCommand + redisGetReply),
 * MULTI/EXEC (+QUEUED replies, the EXEC array), WATCH + EXEC aborted by a competing write
 * (nil), SUBSCRIBE/PSUBSCRIBE with messages read by redisGetReply, PING in subscribed mode,
 * and CFG.SET / CFG.GET / CFG.WATCH through redisCommand.
 *
 *   hiredis_check PORT
 * Prints "ok NAME" / "FAIL NAME: why"; exit status 1 when any check failed. Compiled by
 * test_hiredis.sh into a temp dir (cc ... -lhiredis).
 */
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;
static char tag[32];

static void check(const char *name, int cond, const char *fmt, ...)
{
    if (cond) {
        printf("ok   %s\n", name);
        return;
    }
    failures++;
    printf("FAIL %s: ", name);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

static const char *str(const redisReply *r)
{
    static char buf[256];
    if (!r)
        return "(no reply: connection error)";
    switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        snprintf(buf, sizeof buf, "%s%.200s", r->type == REDIS_REPLY_ERROR ? "-" : "",
                 r->str);
        return buf;
    case REDIS_REPLY_INTEGER:
        snprintf(buf, sizeof buf, ":%lld", r->integer);
        return buf;
    case REDIS_REPLY_NIL:
        return "(nil)";
    case REDIS_REPLY_ARRAY:
        snprintf(buf, sizeof buf, "(array of %zu)", r->elements);
        return buf;
    default:
        return "(other)";
    }
}

static int is_str(const redisReply *r, int type, const char *s)
{
    return r && r->type == type && strcmp(r->str, s) == 0;
}

/* Field value in a RESP2 field/value array (CFG.SET, CFG.GET replies). */
static const redisReply *field(const redisReply *r, const char *name)
{
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING && strcmp(r->element[i]->str, name) == 0)
            return r->element[i + 1];
    return NULL;
}

/* Does any string anywhere in r equal s? */
static int contains(const redisReply *r, const char *s)
{
    if (!r)
        return 0;
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
        return strcmp(r->str, s) == 0;
    if (r->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < r->elements; i++)
            if (contains(r->element[i], s))
                return 1;
    return 0;
}

static redisContext *connect_to(int port)
{
    struct timeval tv = {10, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (!c || c->err) {
        printf("FAIL connect: %s\n", c ? c->errstr : "out of memory");
        exit(1);
    }
    redisSetTimeout(c, tv);
    return c;
}

static void basics(redisContext *c)
{
    redisReply *r = redisCommand(c, "SET %s:k %s", tag, "hello world");
    check("set", is_str(r, REDIS_REPLY_STATUS, "OK"), "got %s", str(r));
    freeReplyObject(r);
    r = redisCommand(c, "GET %s:k", tag);
    check("get", is_str(r, REDIS_REPLY_STRING, "hello world"), "got %s", str(r));
    freeReplyObject(r);
    r = redisCommand(c, "GET %s:nosuch", tag);
    check("get missing", r && r->type == REDIS_REPLY_NIL, "got %s", str(r));
    freeReplyObject(r);
    r = redisCommand(c, "SET %s:bin %b", tag, "a\0b\r\nc", (size_t)6);
    freeReplyObject(r);
    r = redisCommand(c, "GET %s:bin", tag);
    check("binary value", r && r->type == REDIS_REPLY_STRING && r->len == 6 &&
          memcmp(r->str, "a\0b\r\nc", 6) == 0, "got %s", str(r));
    freeReplyObject(r);
}

static void pipeline(redisContext *c)
{
    enum { N = 1000 };
    for (int i = 0; i < N; i++)
        redisAppendCommand(c, "SET %s:p%d %d", tag, i, i);
    redisAppendCommand(c, "GET %s:p%d", tag, N - 1);
    int oks = 0;
    redisReply *r = NULL;
    for (int i = 0; i < N; i++) {
        if (redisGetReply(c, (void **)&r) != REDIS_OK)
            break;
        oks += is_str(r, REDIS_REPLY_STATUS, "OK");
        freeReplyObject(r);
    }
    check("pipeline of 1000 SETs", oks == N, "%d of %d OK", oks, N);
    r = NULL;
    redisGetReply(c, (void **)&r);
    char want[16];
    snprintf(want, sizeof want, "%d", N - 1);
    check("pipeline: GET after the SETs", is_str(r, REDIS_REPLY_STRING, want), "got %s",
          str(r));
    freeReplyObject(r);
}

static void multi_exec(redisContext *c, int port)
{
    redisReply *r = redisCommand(c, "MULTI");
    check("multi", is_str(r, REDIS_REPLY_STATUS, "OK"), "got %s", str(r));
    freeReplyObject(r);
    r = redisCommand(c, "SET %s:m 1", tag);
    check("multi: set queued", is_str(r, REDIS_REPLY_STATUS, "QUEUED"), "got %s", str(r));
    freeReplyObject(r);
    r = redisCommand(c, "CFG.SET /%s/m v", tag);
    check("multi: cfg.set queued", is_str(r, REDIS_REPLY_STATUS, "QUEUED"), "got %s", str(r));
    freeReplyObject(r);
    r = redisCommand(c, "GET %s:m", tag);
    freeReplyObject(r);
    r = redisCommand(c, "EXEC");
    check("exec", r && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
          is_str(r->element[0], REDIS_REPLY_STATUS, "OK") &&
          is_str(r->element[2], REDIS_REPLY_STRING, "1"), "got %s", str(r));
    freeReplyObject(r);

    /* WATCH: a write by another connection between WATCH and EXEC aborts (nil). */
    redisContext *o = connect_to(port);
    freeReplyObject(redisCommand(c, "WATCH %s:m", tag));
    freeReplyObject(redisCommand(o, "SET %s:m 2", tag));
    freeReplyObject(redisCommand(c, "MULTI"));
    freeReplyObject(redisCommand(c, "SET %s:m 3", tag));
    r = redisCommand(c, "EXEC");
    check("watch: exec aborted by a competing write", r && r->type == REDIS_REPLY_NIL,
          "got %s", str(r));
    freeReplyObject(r);
    r = redisCommand(c, "GET %s:m", tag);
    check("watch: value is the competing write", is_str(r, REDIS_REPLY_STRING, "2"), "got %s",
          str(r));
    freeReplyObject(r);
    redisFree(o);
}

static void subscribe(int port)
{
    redisContext *s = connect_to(port), *p = connect_to(port);
    redisReply *r = redisCommand(s, "SUBSCRIBE %s:ch", tag);
    check("subscribe", r && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
          is_str(r->element[0], REDIS_REPLY_STRING, "subscribe") &&
          r->element[2]->type == REDIS_REPLY_INTEGER && r->element[2]->integer == 1,
          "got %s", str(r));
    freeReplyObject(r);
    r = redisCommand(s, "PSUBSCRIBE %s:p*", tag);
    check("psubscribe", r && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
          r->element[2]->integer == 2, "got %s", str(r));
    freeReplyObject(r);
    r = redisCommand(p, "PUBLISH %s:ch %s", tag, "m1");
    check("publish", r && r->type == REDIS_REPLY_INTEGER && r->integer == 1, "got %s", str(r));
    freeReplyObject(r);
    freeReplyObject(redisCommand(p, "PUBLISH %s:px %s", tag, "m2"));
    r = NULL;
    redisGetReply(s, (void **)&r);
    check("message", r && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
          is_str(r->element[0], REDIS_REPLY_STRING, "message") &&
          is_str(r->element[2], REDIS_REPLY_STRING, "m1"), "got %s", str(r));
    freeReplyObject(r);
    r = NULL;
    redisGetReply(s, (void **)&r);
    check("pmessage", r && r->type == REDIS_REPLY_ARRAY && r->elements == 4 &&
          is_str(r->element[0], REDIS_REPLY_STRING, "pmessage") &&
          is_str(r->element[3], REDIS_REPLY_STRING, "m2"), "got %s", str(r));
    freeReplyObject(r);
    r = redisCommand(s, "PING");
    check("ping while subscribed", r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
          is_str(r->element[0], REDIS_REPLY_STRING, "pong"), "got %s", str(r));
    freeReplyObject(r);
    r = redisCommand(s, "GET x");
    check("get refused while subscribed", r && r->type == REDIS_REPLY_ERROR &&
          strstr(r->str, "only (P|S)SUBSCRIBE") != NULL, "got %s", str(r));
    freeReplyObject(r);
    r = redisCommand(s, "UNSUBSCRIBE");
    check("unsubscribe", r && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
          r->element[2]->integer == 1, "got %s", str(r));
    freeReplyObject(r);
    redisFree(s);
    redisFree(p);
}

static void cfg(redisContext *c)
{
    redisReply *r = redisCommand(c, "CFG.SET /%s/a %s", tag, "x1");
    const redisReply *v = field(r, "version"), *rev = field(r, "revision");
    check("cfg.set", v && v->type == REDIS_REPLY_INTEGER && v->integer == 1, "got %s", str(r));
    long long revision = rev && rev->type == REDIS_REPLY_INTEGER ? rev->integer : 0;
    freeReplyObject(r);
    r = redisCommand(c, "CFG.GET /%s/a", tag);
    check("cfg.get", is_str(field(r, "value"), REDIS_REPLY_STRING, "x1"), "got %s", str(r));
    freeReplyObject(r);
    r = redisCommand(c, "CFG.SET /%s/a x2 IFVERSION 0", tag);
    check("cfg.set ifversion", r && r->type == REDIS_REPLY_ERROR &&
          strncmp(r->str, "VERSION", 7) == 0, "got %s", str(r));
    freeReplyObject(r);
    r = redisCommand(c, "CFG.WATCH /%s/ FROM %lld COUNT 10", tag, revision - 1);
    char key[64];
    snprintf(key, sizeof key, "/%s/a", tag);
    check("cfg.watch", contains(r, key) && contains(r, "x1"), "got %s", str(r));
    freeReplyObject(r);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: hiredis_check PORT\n");
        return 2;
    }
    int port = atoi(argv[1]);
    snprintf(tag, sizeof tag, "hiredis-%d", (int)getpid());
    redisContext *c = connect_to(port);
    basics(c);
    pipeline(c);
    cfg(c);
    subscribe(port);
    multi_exec(c, port);
    redisFree(c);
    printf("hiredis: %s\n", failures ? "some failed" : "all passed");
    return failures ? 1 : 0;
}
