/*
 * test_commands.c - every command of issue 2 item 7 against the real server, in RESP2 and
 * RESP3 (HELLO 3), with exact reply types and values and Redis's error texts.
 *
 * Each test starts its own server on a free port (fresh data dir), so tests are
 * independent; `conn2` speaks RESP2, `conn3` has sent HELLO 3. Replies are compared in the
 * canonical text of itest_fmt (helper.h): +OK, -ERR ..., :5, "bytes", $nil, _, [..], {..}.
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
static struct itest_conn *conn2, *conn3;

static void open_conns(void)
{
    conn2 = itest_connect(srv.port);
    conn3 = itest_connect(srv.port);
    cr_assert(conn2 && conn3, "connect to port %d", srv.port);
    struct itest_reply *h = itest_call_r(conn3, "HELLO 3");
    cr_assert(h && h->type == IT_MAP, "HELLO 3 must answer a map, got %s", itest_fmt(h));
    itest_reply_free(h);
}

static void start_with(const char *const *extra)
{
    int rc = itest_start(&srv, extra);
    if (rc != 0)
        itest_log_tail(&srv, 40);
    cr_assert_eq(rc, 0, "server %s did not start", itest_bin());
    open_conns();
}

static void setup(void) { start_with(NULL); }

static void teardown(void)
{
    itest_close(conn2);
    itest_close(conn3);
    conn2 = conn3 = NULL;
    itest_fini();
}

/* A test body run once in RESP2 and once in RESP3 (separate servers). */
#define BOTH(name)                                                                     \
    static void name##_body(struct itest_conn *c, bool r3 __attribute__((unused)));   \
    Test(cmd, name##_resp2, .init = setup, .fini = teardown, .timeout = 60)           \
    {                                                                                  \
        name##_body(conn2, false);                                                    \
    }                                                                                  \
    Test(cmd, name##_resp3, .init = setup, .fini = teardown, .timeout = 60)           \
    {                                                                                  \
        name##_body(conn3, true);                                                     \
    }                                                                                  \
    static void name##_body(struct itest_conn *c, bool r3 __attribute__((unused)))

#define NIL (r3 ? "_" : "$nil")

/* Text of a bulk or verbatim reply (verbatim without its "txt:" prefix), malloc'd. */
static char *text_of(const struct itest_reply *r)
{
    if (!r)
        return strdup("<none>");
    if (r->type == IT_BULK)
        return strdup(r->str);
    if (r->type == IT_VERBATIM && r->len >= 4)
        return strdup(r->str + 4);
    return itest_fmt(r);
}

static char *call_text(struct itest_conn *c, const char *line)
{
    struct itest_reply *r = itest_call_r(c, line);
    char *t = text_of(r);
    itest_reply_free(r);
    return t;
}

/* ---------------------------------------------------------------- connection */

BOTH(ping_echo)
{
    ITEST_EXPECT(c, "PING", "+PONG");
    ITEST_EXPECT(c, "ping hello", "\"hello\"");
    ITEST_EXPECT(c, "ECHO abc", "\"abc\"");
    ITEST_EXPECT(c, "ECHO", "-ERR wrong number of arguments for 'echo' command");
    ITEST_EXPECT(c, "PING a b", "-ERR wrong number of arguments for 'ping' command");
    const char *bin[] = {"ECHO", "a\r\nb\0c", NULL};
    size_t lens[] = {4, 6};
    cr_assert_eq(itest_send_argv(c, 2, bin, lens), 0);
    struct itest_reply *r = itest_read(c);
    cr_assert(r && r->type == IT_BULK && r->len == 6 && memcmp(r->str, "a\r\nb\0c", 6) == 0,
              "ECHO must be binary safe, got %s", itest_fmt(r));
    itest_reply_free(r);
}

BOTH(unknown_command_and_arity)
{
    ITEST_EXPECT(c, "FOO a b",
                 "-ERR unknown command 'FOO', with args beginning with: 'a' 'b' ");
    ITEST_EXPECT(c, "nosuch", "-ERR unknown command 'nosuch', with args beginning with: ");
    ITEST_EXPECT(c, "GET", "-ERR wrong number of arguments for 'get' command");
    ITEST_EXPECT(c, "GET a b", "-ERR wrong number of arguments for 'get' command");
    ITEST_EXPECT(c, "SET a", "-ERR wrong number of arguments for 'set' command");
    ITEST_EXPECT(c, "MSET a", "-ERR wrong number of arguments for 'mset' command");
    ITEST_EXPECT(c, "MSET a 1 b", "-ERR wrong number of arguments for 'mset' command");
    ITEST_EXPECT(c, "PING", "+PONG"); /* the connection survives errors */
}

Test(cmd, quit_closes, .init = setup, .fini = teardown, .timeout = 60)
{
    ITEST_EXPECT(conn2, "QUIT", "+OK");
    cr_assert(itest_wait_eof(conn2, 3000), "QUIT must close the connection");
}

Test(cmd, hello_versions, .init = setup, .fini = teardown, .timeout = 60)
{
    struct itest_reply *r = itest_call_r(conn2, "HELLO");
    cr_assert(r && r->type == IT_ARRAY, "HELLO in RESP2 is a flat array: %s", itest_fmt(r));
    const struct itest_reply *p = itest_field(r, "proto");
    cr_assert(p && p->type == IT_INT && p->integer == 2, "proto 2: %s", itest_fmt(r));
    cr_assert(itest_field(r, "server") && itest_field(r, "version") && itest_field(r, "id"),
              "HELLO fields server/version/id: %s", itest_fmt(r));
    itest_reply_free(r);
    ITEST_EXPECT(conn2, "HELLO 4", "-NOPROTO unsupported protocol version");
    ITEST_EXPECT(conn2, "HELLO 1", "-NOPROTO unsupported protocol version");
    r = itest_call_r(conn2, "HELLO 3 SETNAME hello-name");
    cr_assert(r && r->type == IT_MAP, "HELLO 3 is a map: %s", itest_fmt(r));
    p = itest_field(r, "proto");
    cr_assert(p && p->type == IT_INT && p->integer == 3, "proto 3: %s", itest_fmt(r));
    const struct itest_reply *sv = itest_field(r, "server");
    cr_assert(sv && sv->type == IT_BULK && strcmp(sv->str, "raftconf") == 0, "server: %s",
              itest_fmt(r));
    const struct itest_reply *mode = itest_field(r, "mode");
    cr_assert(mode && mode->type == IT_BULK, "mode: %s", itest_fmt(r));
    itest_reply_free(r);
    ITEST_EXPECT(conn2, "CLIENT GETNAME", "\"hello-name\"");
    ITEST_EXPECT(conn2, "GET nokey", "_"); /* now RESP3 */
    r = itest_call_r(conn2, "HELLO 2");
    cr_assert(r && r->type == IT_ARRAY, "HELLO 2 back to a flat array: %s", itest_fmt(r));
    itest_reply_free(r);
    ITEST_EXPECT(conn2, "GET nokey", "$nil");
}

BOTH(select_reset)
{
    ITEST_EXPECT(c, "SELECT 0", "+OK");
    ITEST_EXPECT(c, "SELECT 1", "-ERR DB index is out of range");
    ITEST_EXPECT(c, "SELECT 15", "-ERR DB index is out of range");
    ITEST_EXPECT(c, "SELECT abc", "-ERR value is not an integer or out of range");
    ITEST_EXPECT(c, "READONLY", "+OK");
    ITEST_EXPECT(c, "READWRITE", "+OK");
    ITEST_EXPECT(c, "CLIENT SETNAME before-reset", "+OK");
    ITEST_EXPECT(c, "RESET", "+RESET");
    ITEST_EXPECT(c, "CLIENT GETNAME", "$nil"); /* RESET also returns to RESP2 */
    ITEST_EXPECT(c, "GET nokey", "$nil");
    (void)r3;
}

BOTH(auth_without_password)
{
    struct itest_reply *r = itest_call_r(c, "AUTH foo");
    cr_assert(r && r->type == IT_ERROR && strncmp(r->str, "ERR AUTH", 8) == 0,
              "AUTH with no requirepass: Redis says ERR AUTH <password> called without any "
              "password configured..., got %s", itest_fmt(r));
    itest_reply_free(r);
    ITEST_EXPECT(c, "AUTH default anything", "+OK");
    (void)r3;
}

static const char *const pass_args[] = {"--requirepass", "s3cret", NULL};
static void setup_pass(void)
{
    int rc = itest_start(&srv, pass_args);
    cr_assert_eq(rc, 0, "server %s did not start", itest_bin());
}

Test(cmd, auth_requirepass, .init = setup_pass, .fini = teardown, .timeout = 60)
{
    struct itest_conn *c = itest_connect(srv.port);
    cr_assert(c);
    ITEST_EXPECT(c, "GET k", "-NOAUTH Authentication required.");
    ITEST_EXPECT(c, "SET k v", "-NOAUTH Authentication required.");
    ITEST_EXPECT(c, "AUTH wrong",
                 "-WRONGPASS invalid username-password pair or user is disabled.");
    ITEST_EXPECT(c, "AUTH default wrong",
                 "-WRONGPASS invalid username-password pair or user is disabled.");
    ITEST_EXPECT(c, "AUTH s3cret", "+OK");
    ITEST_EXPECT(c, "SET k v", "+OK");
    ITEST_EXPECT(c, "GET k", "\"v\"");
    ITEST_EXPECT(c, "RESET", "+RESET"); /* RESET de-authenticates */
    ITEST_EXPECT(c, "GET k", "-NOAUTH Authentication required.");
    ITEST_EXPECT(c, "AUTH default s3cret", "+OK");
    ITEST_EXPECT(c, "GET k", "\"v\"");
    itest_close(c);

    c = itest_connect(srv.port);
    ITEST_EXPECT(c, "HELLO 3 AUTH default wrong",
                 "-WRONGPASS invalid username-password pair or user is disabled.");
    struct itest_reply *r = itest_call_r(c, "HELLO 3 AUTH default s3cret");
    cr_assert(r && r->type == IT_MAP, "HELLO 3 AUTH ok is a map: %s", itest_fmt(r));
    itest_reply_free(r);
    ITEST_EXPECT(c, "GET k", "\"v\"");
    ITEST_EXPECT(c, "GET nokey", "_");
    itest_close(c);
}

/* ---------------------------------------------------------------- CLIENT */

BOTH(client_cmds)
{
    ITEST_EXPECT(c, "CLIENT GETNAME", NIL);
    ITEST_EXPECT(c, "CLIENT SETNAME myname", "+OK");
    ITEST_EXPECT(c, "CLIENT GETNAME", "\"myname\"");
    const char *bad[] = {"CLIENT", "SETNAME", "a b", NULL};
    char *got = itest_callv(c, bad);
    cr_assert_str_eq(got,
                     "-ERR Client names cannot contain spaces, newlines or special characters.",
                     "CLIENT SETNAME 'a b' got %s", got);
    free(got);
    ITEST_EXPECT(c, "CLIENT SETINFO lib-name itest", "+OK");
    ITEST_EXPECT(c, "CLIENT SETINFO lib-ver 1.0", "+OK");
    ITEST_EXPECT(c, "CLIENT SETINFO color red", "-ERR Unrecognized option 'color'");
    struct itest_reply *id = itest_call_r(c, "CLIENT ID");
    cr_assert(id && id->type == IT_INT && id->integer > 0, "CLIENT ID: %s", itest_fmt(id));
    char want[64];
    snprintf(want, sizeof want, "id=%lld ", id->integer);
    struct itest_reply *lr = itest_call_r(c, "CLIENT LIST");
    cr_assert(lr && lr->type == (r3 ? IT_VERBATIM : IT_BULK), "CLIENT LIST is a %s: %.60s",
              r3 ? "verbatim string" : "bulk string", itest_fmt(lr));
    itest_reply_free(lr);
    char *list = call_text(c, "CLIENT LIST");
    cr_assert(strstr(list, want) && strstr(list, "name=myname") &&
                  strstr(list, "addr=127.0.0.1:"),
              "CLIENT LIST lacks %s / name=myname / addr=127.0.0.1: : %s", want, list);
    cr_assert(strstr(list, "\n") != NULL, "CLIENT LIST lines end in newline: %s", list);
    free(list);
    char *info = call_text(c, "CLIENT INFO");
    cr_assert(strncmp(info, want, strlen(want)) == 0 && strstr(info, "name=myname"),
              "CLIENT INFO starts with %s: %s", want, info);
    free(info);

    /* kill another connection by id: it sees EOF; killing a missing id -> 0 */
    struct itest_conn *victim = itest_connect(srv.port);
    struct itest_reply *vid = itest_call_r(victim, "CLIENT ID");
    cr_assert(vid && vid->type == IT_INT);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "CLIENT KILL ID %lld", vid->integer);
    ITEST_EXPECT(c, cmd, ":1");
    cr_assert(itest_wait_eof(victim, 3000), "killed client must be disconnected");
    ITEST_EXPECT(c, cmd, ":0");
    ITEST_EXPECT(c, "CLIENT KILL 1.2.3.4:5", "-ERR No such client");
    ITEST_EXPECT(c, "CLIENT NOSUCHSUB", "-ERR unknown subcommand 'NOSUCHSUB'. Try CLIENT HELP.");
    itest_close(victim);
    itest_reply_free(vid);
    itest_reply_free(id);
    ITEST_EXPECT(c, "PING", "+PONG");
    (void)r3;
}

/* ---------------------------------------------------------------- COMMAND, INFO, CONFIG */

BOTH(command_introspection)
{
    struct itest_reply *n = itest_call_r(c, "COMMAND COUNT");
    cr_assert(n && n->type == IT_INT && n->integer >= 30, "COMMAND COUNT: %s", itest_fmt(n));
    struct itest_reply *all = itest_call_r(c, "COMMAND");
    cr_assert(all && all->type == IT_ARRAY && (long long)all->n == n->integer,
              "COMMAND lists COUNT=%lld entries: %zu", n->integer, all ? all->n : 0);
    itest_reply_free(all);
    itest_reply_free(n);
    struct itest_reply *r = itest_call_r(c, "COMMAND INFO get cfg.set nosuchcmd");
    cr_assert(r && r->type == IT_ARRAY && r->n == 3, "COMMAND INFO 3 entries: %s", itest_fmt(r));
    const struct itest_reply *g = r->elem[0];
    cr_assert(g->type == IT_ARRAY && g->n >= 6 && g->elem[0]->type == IT_BULK &&
                  strcmp(g->elem[0]->str, "get") == 0 && g->elem[1]->type == IT_INT &&
                  g->elem[1]->integer == 2,
              "COMMAND INFO get: [\"get\", 2, flags, 1, 1, 1, ...]: %s", itest_fmt(g));
    const struct itest_reply *s = r->elem[1];
    cr_assert(s->type == IT_ARRAY && s->n >= 2 && strcmp(s->elem[0]->str, "cfg.set") == 0 &&
                  s->elem[1]->integer == -3,
              "COMMAND INFO cfg.set: [\"cfg.set\", -3, ...]: %s", itest_fmt(s));
    cr_assert(r->elem[2]->type == IT_NULL, "COMMAND INFO of unknown is null: %s",
              itest_fmt(r->elem[2]));
    itest_reply_free(r);
    r = itest_call_r(c, "COMMAND DOCS get");
    cr_assert(r && r->type == (r3 ? IT_MAP : IT_ARRAY) && r->n == 2, "COMMAND DOCS get: %s",
              itest_fmt(r));
    cr_assert(strcmp(r->elem[0]->str, "get") == 0, "COMMAND DOCS names get: %s", itest_fmt(r));
    cr_assert(itest_field(r->elem[1], "summary"), "COMMAND DOCS has summary: %s", itest_fmt(r));
    itest_reply_free(r);
}

BOTH(info_fields)
{
    ITEST_EXPECT(c, "SET a 1", "+OK");
    ITEST_EXPECT(c, "SET b 2", "+OK");
    ITEST_EXPECT(c, "SET c 3", "+OK");
    char *info = call_text(c, "INFO");
    const char *need[] = {"# Server\r\n", "redis_version:", "redis_mode:", "loading:0\r\n",
                          "connected_clients:", "total_commands_processed:", "used_memory:",
                          "# Keyspace\r\n", "db0:keys=3,", NULL};
    for (int i = 0; need[i]; i++)
        cr_assert(strstr(info, need[i]), "INFO lacks '%s':\n%s", need[i], info);
    /* connected_clients counts at least our two connections */
    const char *cc = strstr(info, "connected_clients:");
    cr_assert(atoi(cc + 18) >= 2, "connected_clients >= 2: %.30s", cc);
    const char *tc = strstr(info, "total_commands_processed:");
    cr_assert(atoi(tc + 25) >= 4, "total_commands_processed >= 4: %.40s", tc);
    free(info);
    char *srvsec = call_text(c, "INFO server");
    cr_assert(strstr(srvsec, "redis_version:") && !strstr(srvsec, "connected_clients:"),
              "INFO server is only the server section:\n%s", srvsec);
    free(srvsec);
    struct itest_reply *ir = itest_call_r(c, "INFO");
    cr_assert(ir && ir->type == (r3 ? IT_VERBATIM : IT_BULK), "INFO is a %s: %.40s",
              r3 ? "verbatim string (like Redis)" : "bulk string", itest_fmt(ir));
    itest_reply_free(ir);
    char *raft = call_text(c, "INFO raft");
    cr_assert(strstr(raft, "# Raft\r\n") && strstr(raft, "node_id:1\r\n") &&
                  !strstr(raft, "redis_version"),
              "INFO raft: this server's own section:\n%s", raft);
    free(raft);
    char *ks = call_text(c, "INFO keyspace");
    cr_assert(strstr(ks, "db0:keys=3,") && !strstr(ks, "redis_version"), "INFO keyspace:\n%s",
              ks);
    free(ks);
    (void)r3;
}

BOTH(config_get_set)
{
    const char *names[] = {"save", "appendonly"};
    for (int i = 0; i < 2; i++) {
        char line[64];
        snprintf(line, sizeof line, "CONFIG GET %s", names[i]);
        struct itest_reply *r = itest_call_r(c, line);
        cr_assert(r && r->type == (r3 ? IT_MAP : IT_ARRAY) && r->n == 2 &&
                      r->elem[0]->type == IT_BULK && strcmp(r->elem[0]->str, names[i]) == 0 &&
                      r->elem[1]->type == IT_BULK,
                  "%s: expected %s with name and a bulk value, got %s", line,
                  r3 ? "map" : "array", itest_fmt(r));
        itest_reply_free(r);
    }
    ITEST_EXPECT(c, "CONFIG GET appendonly", r3 ? "{\"appendonly\": \"yes\"}"
                                                : "[\"appendonly\", \"yes\"]");
    ITEST_EXPECT(c, "CONFIG GET no-such-option-xyz", r3 ? "{}" : "[]");
    struct itest_reply *g = itest_call_r(c, "CONFIG GET max*");
    cr_assert(itest_field(g, "maxclients") && itest_field(g, "max-value-size") &&
                  !itest_field(g, "port"),
              "CONFIG GET max* (glob): %s", itest_fmt(g));
    itest_reply_free(g);
    g = itest_call_r(c, "CONFIG GET save appendonly SAVE");
    cr_assert(g && g->n == 4, "CONFIG GET save appendonly SAVE: each option once: %s",
              itest_fmt(g));
    itest_reply_free(g);
    struct itest_reply *port = itest_call_r(c, "CONFIG GET port");
    const struct itest_reply *pv = itest_field(port, "port");
    char want[16];
    snprintf(want, sizeof want, "%d", srv.port);
    cr_assert(pv && pv->type == IT_BULK && strcmp(pv->str, want) == 0,
              "CONFIG GET port = %s: %s", want, itest_fmt(port));
    itest_reply_free(port);
    ITEST_EXPECT_PREFIX(c, "CONFIG SET no-such-option-xyz 1", "-ERR");
    ITEST_EXPECT(c, "CONFIG", "-ERR wrong number of arguments for 'config' command");
}

/* CONFIG SET of a runtime-settable option takes effect; others are refused. */
BOTH(config_set_runtime)
{
    ITEST_EXPECT(c, "SET a 1", "+OK");
    ITEST_EXPECT_PREFIX(c, "FLUSHALL", "-ERR");
    ITEST_EXPECT(c, "CONFIG SET enable-flushall yes", "+OK");
    ITEST_EXPECT(c, "CONFIG GET enable-flushall", r3 ? "{\"enable-flushall\": \"yes\"}"
                                                     : "[\"enable-flushall\", \"yes\"]");
    ITEST_EXPECT(c, "FLUSHALL", "+OK");
    ITEST_EXPECT(c, "DBSIZE", ":0");
    ITEST_EXPECT(c, "CONFIG SET maxclients 77", "+OK");
    ITEST_EXPECT(c, "CONFIG GET maxclients", r3 ? "{\"maxclients\": \"77\"}"
                                                : "[\"maxclients\", \"77\"]");
    ITEST_EXPECT_PREFIX(c, "CONFIG SET maxclients notanumber", "-ERR");
    ITEST_EXPECT(c, "CONFIG SET port 1234", "-ERR CONFIG SET failed (possibly related to "
                                            "argument 'port') - can't set immutable config");
    ITEST_EXPECT(c, "CONFIG SET nosuch 1",
                 "-ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'");
    /* all-or-nothing: a bad pair leaves the good one unapplied */
    ITEST_EXPECT_PREFIX(c, "CONFIG SET maxclients 88 port 1", "-ERR");
    ITEST_EXPECT_PREFIX(c, "CONFIG SET appendonly no", "-ERR");  /* fixed answer */
    ITEST_EXPECT(c, "CONFIG GET maxclients", r3 ? "{\"maxclients\": \"77\"}"
                                                : "[\"maxclients\", \"77\"]");
    ITEST_EXPECT(c, "CONFIG GET appendonly", r3 ? "{\"appendonly\": \"yes\"}"
                                                : "[\"appendonly\", \"yes\"]");
}

BOTH(dbsize_time)
{
    ITEST_EXPECT(c, "DBSIZE", ":0");
    ITEST_EXPECT(c, "SET a 1", "+OK");
    ITEST_EXPECT(c, "MSET b 1 c 2 d 3", "+OK");
    ITEST_EXPECT(c, "DBSIZE", ":4");
    ITEST_EXPECT(c, "DEL a b", ":2");
    ITEST_EXPECT(c, "DBSIZE", ":2");
    struct itest_reply *t = itest_call_r(c, "TIME");
    cr_assert(t && t->type == IT_ARRAY && t->n == 2 && t->elem[0]->type == IT_BULK &&
                  t->elem[1]->type == IT_BULK,
              "TIME: two bulk strings: %s", itest_fmt(t));
    long long sec = atoll(t->elem[0]->str), usec = atoll(t->elem[1]->str);
    long long now = (long long)time(NULL);
    cr_assert(sec >= now - 5 && sec <= now + 5 && usec >= 0 && usec < 1000000,
              "TIME %lld %lld vs now %lld", sec, usec, now);
    itest_reply_free(t);
    (void)r3;
}

/* ---------------------------------------------------------------- data commands */

BOTH(get_set_options)
{
    ITEST_EXPECT(c, "GET k", NIL);
    ITEST_EXPECT(c, "SET k v1", "+OK");
    ITEST_EXPECT(c, "GET k", "\"v1\"");
    ITEST_EXPECT(c, "SET k v2 NX", NIL);
    ITEST_EXPECT(c, "GET k", "\"v1\"");
    ITEST_EXPECT(c, "SET k v2 XX", "+OK");
    ITEST_EXPECT(c, "GET k", "\"v2\"");
    ITEST_EXPECT(c, "SET nk v XX", NIL);
    ITEST_EXPECT(c, "EXISTS nk", ":0");
    ITEST_EXPECT(c, "SET nk v NX", "+OK");
    ITEST_EXPECT(c, "SET k v3 GET", "\"v2\"");
    ITEST_EXPECT(c, "SET fresh v GET", NIL);
    ITEST_EXPECT(c, "GET fresh", "\"v\"");
    ITEST_EXPECT(c, "SET k v NX XX", "-ERR syntax error");
    ITEST_EXPECT(c, "SET k v BOGUS", "-ERR syntax error");
    ITEST_EXPECT(c, "GET k", "\"v3\"");
    /* expiry options: a clear error, nothing written */
    const char *exp[] = {"SET k x EX 10", "SET k x PX 100", "SET k x EXAT 99999999999",
                         "SET k x PXAT 99999999999999", "SET k x KEEPTTL", NULL};
    for (int i = 0; exp[i]; i++) {
        char *got = itest_call(c, exp[i]);
        cr_assert(strncmp(got, "-ERR config keys do not expire", 30) == 0,
                  "sent: %s\n   expected: -ERR config keys do not expire...\n   got: %s", exp[i],
                  got);
        free(got);
    }
    ITEST_EXPECT(c, "SET k x EX 10", "-ERR config keys do not expire: EX is not supported");
    ITEST_EXPECT(c, "GET k", "\"v3\"");
    ITEST_EXPECT(c, "TYPE k", "+string");
    ITEST_EXPECT(c, "TYPE nokey", "+none");
    ITEST_EXPECT(c, "STRLEN k", ":2");
    ITEST_EXPECT(c, "STRLEN nokey", ":0");
    ITEST_EXPECT(c, "SET empty \"\"", "+OK"); /* literally two quote chars, no quoting */
    const char *e[] = {"SET", "emptyval", "", NULL};
    char *got = itest_callv(c, e);
    cr_assert_str_eq(got, "+OK", "SET emptyval '': %s", got);
    free(got);
    ITEST_EXPECT(c, "GET emptyval", "\"\"");
    ITEST_EXPECT(c, "STRLEN emptyval", ":0");
    ITEST_EXPECT(c, "EXISTS emptyval", ":1");
}

BOTH(del_unlink_exists_mget_mset)
{
    ITEST_EXPECT(c, "MSET a 1 b 2 c 3", "+OK");
    ITEST_EXPECT(c, "MGET a b nokey c", r3 ? "[\"1\", \"2\", _, \"3\"]"
                                           : "[\"1\", \"2\", $nil, \"3\"]");
    ITEST_EXPECT(c, "EXISTS a b nokey a", ":3");
    ITEST_EXPECT(c, "DEL a nokey", ":1");
    ITEST_EXPECT(c, "DEL a", ":0");
    ITEST_EXPECT(c, "UNLINK b c nokey", ":2");
    ITEST_EXPECT(c, "EXISTS a b c", ":0");
    ITEST_EXPECT(c, "MSET x 1 x 2", "+OK"); /* last one wins, like Redis */
    ITEST_EXPECT(c, "GET x", "\"2\"");
    ITEST_EXPECT(c, "DEL", "-ERR wrong number of arguments for 'del' command");
    ITEST_EXPECT(c, "MGET", "-ERR wrong number of arguments for 'mget' command");
}

/* MSET is atomic: a reader in another connection sees all of one MSET or none of it. */
Test(cmd, mset_atomic, .init = setup, .fini = teardown, .timeout = 60)
{
    for (int round = 0; round < 200; round++) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "MSET ma %d mb %d mc %d", round, round, round);
        /* pipeline the MSET on conn2 and read MGETs from conn3 while it is in flight */
        const char *av[8];
        char v[16];
        snprintf(v, sizeof v, "%d", round);
        const char *names[] = {"ma", "mb", "mc"};
        av[0] = "MSET";
        for (int i = 0; i < 3; i++) {
            av[1 + 2 * i] = names[i];
            av[2 + 2 * i] = v;
        }
        cr_assert_eq(itest_send_argv(conn2, 7, av, NULL), 0);
        struct itest_reply *m = itest_call_r(conn3, "MGET ma mb mc");
        cr_assert(m && m->type == IT_ARRAY && m->n == 3, "MGET: %s", itest_fmt(m));
        char *f = itest_fmt(m);
        for (int i = 1; i < 3; i++)
            cr_assert(m->elem[i]->type == m->elem[0]->type &&
                          (m->elem[0]->type != IT_BULK ||
                           strcmp(m->elem[i]->str, m->elem[0]->str) == 0),
                      "MSET not atomic: MGET during %s saw %s", cmd, f);
        free(f);
        itest_reply_free(m);
        char *ok = itest_read_fmt(conn2);
        cr_assert_str_eq(ok, "+OK", "%s: %s", cmd, ok);
        free(ok);
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorted, comma-joined keys of an array reply. */
static char *sorted_keys(const struct itest_reply *r)
{
    if (!r || (r->type != IT_ARRAY && r->type != IT_SET))
        return itest_fmt(r);
    const char **v = calloc(r->n + 1, sizeof *v);
    size_t total = 1;
    for (size_t i = 0; i < r->n; i++) {
        v[i] = r->elem[i]->str ? r->elem[i]->str : "?";
        total += strlen(v[i]) + 1;
    }
    qsort(v, r->n, sizeof *v, cmp_str);
    char *out = calloc(1, total);
    for (size_t i = 0; i < r->n; i++) {
        if (i)
            strcat(out, ",");
        strcat(out, v[i]);
    }
    free(v);
    return out;
}

static void expect_keys(struct itest_conn *c, const char *line, const char *want)
{
    struct itest_reply *r = itest_call_r(c, line);
    char *got = sorted_keys(r);
    cr_assert_str_eq(got, want, "sent: %s\n   expected (sorted): %s\n   got: %s", line, want,
                     got);
    free(got);
    itest_reply_free(r);
}

BOTH(keys_patterns)
{
    ITEST_EXPECT(c, "MSET hello 1 hallo 2 hxllo 3 hllo 4 heeello 5 user:1 a user:2 b /a/b c",
                 "+OK");
    expect_keys(c, "KEYS h?llo", "hallo,hello,hxllo");
    expect_keys(c, "KEYS h*llo", "hallo,heeello,hello,hllo,hxllo");
    expect_keys(c, "KEYS h[ae]llo", "hallo,hello");
    expect_keys(c, "KEYS h[^e]llo", "hallo,hxllo");
    expect_keys(c, "KEYS h[a-b]llo", "hallo");
    expect_keys(c, "KEYS user:*", "user:1,user:2");
    expect_keys(c, "KEYS /a/*", "/a/b");
    expect_keys(c, "KEYS nomatch*", "");
    expect_keys(c, "KEYS *", "/a/b,hallo,heeello,hello,hllo,hxllo,user:1,user:2");
    ITEST_EXPECT(c, "KEYS user:*", r3 ? "[\"user:1\", \"user:2\"]" : "[\"user:1\", \"user:2\"]");
    ITEST_EXPECT(c, "KEYS h[ae]llo", "[\"hallo\", \"hello\"]"); /* in key order */
    (void)r3;
}

/* SCAN with MATCH and COUNT returns every matching key at least once, ends at cursor 0. */
BOTH(scan_iteration)
{
    enum { N = 300, OTHER = 60 };
    for (int i = 0; i < N; i += 50) {
        char cmd[2048];
        int n = snprintf(cmd, sizeof cmd, "MSET");
        for (int j = i; j < i + 50; j++)
            n += snprintf(cmd + n, sizeof cmd - (size_t)n, " sk:%03d v", j);
        ITEST_EXPECT(c, cmd, "+OK");
    }
    for (int i = 0; i < OTHER; i++) {
        char cmd[64];
        snprintf(cmd, sizeof cmd, "SET other:%d v", i);
        ITEST_EXPECT(c, cmd, "+OK");
    }
    int seen[N] = {0};
    char cursor[64] = "0";
    int calls = 0;
    do {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "SCAN %s MATCH sk:* COUNT 17", cursor);
        struct itest_reply *r = itest_call_r(c, cmd);
        cr_assert(r && r->type == IT_ARRAY && r->n == 2 && r->elem[0]->type == IT_BULK &&
                      r->elem[1]->type == IT_ARRAY,
                  "%s: expected [cursor, [keys]], got %s", cmd, itest_fmt(r));
        cr_assert(r->elem[1]->n <= 60, "COUNT 17 returned %zu keys", r->elem[1]->n);
        for (size_t i = 0; i < r->elem[1]->n; i++) {
            const char *k = r->elem[1]->elem[i]->str;
            cr_assert(k && strncmp(k, "sk:", 3) == 0, "%s returned non-matching %s", cmd, k);
            int idx = atoi(k + 3);
            cr_assert(idx >= 0 && idx < N, "bad key %s", k);
            seen[idx]++;
        }
        snprintf(cursor, sizeof cursor, "%s", r->elem[0]->str);
        itest_reply_free(r);
        cr_assert(++calls < 1000, "SCAN did not finish in 1000 calls");
    } while (strcmp(cursor, "0") != 0);
    for (int i = 0; i < N; i++)
        cr_assert(seen[i] >= 1, "SCAN never returned sk:%03d", i);
    cr_assert(calls >= 3, "COUNT 17 over %d keys should take several calls, took %d", N, calls);
    /* TYPE filter */
    struct itest_reply *r = itest_call_r(c, "SCAN 0 COUNT 1000 TYPE string");
    cr_assert(r && r->n == 2 && r->elem[1]->n > 0, "SCAN TYPE string: %s", itest_fmt(r));
    itest_reply_free(r);
    r = itest_call_r(c, "SCAN 0 COUNT 1000 TYPE hash");
    cr_assert(r && r->n == 2 && r->elem[1]->n == 0, "SCAN TYPE hash finds nothing: %s",
              itest_fmt(r));
    itest_reply_free(r);
    ITEST_EXPECT_PREFIX(c, "SCAN notanumber", "-ERR");
    ITEST_EXPECT(c, "SCAN 987654321", "-ERR invalid cursor");
    ITEST_EXPECT(c, "SCAN 0 COUNT 0", "-ERR syntax error");
    (void)r3;
}

/* ---------------------------------------------------------------- values and limits */

BOTH(max_value_size)
{
    size_t max = 1024 * 1024;
    char *big = malloc(max + 2);
    memset(big, 'x', max + 1);
    big[0] = 'a';
    big[max - 1] = 'z';
    const char *av[] = {"SET", "big", big};
    size_t lens[] = {3, 3, max};
    cr_assert_eq(itest_send_argv(c, 3, av, lens), 0);
    char *got = itest_read_fmt(c);
    cr_assert_str_eq(got, "+OK", "SET of exactly 1 MiB must be accepted, got %s", got);
    free(got);
    struct itest_reply *r = itest_call_r(c, "GET big");
    cr_assert(r && r->type == IT_BULK && r->len == max && r->str[0] == 'a' &&
                  r->str[max - 1] == 'z',
              "GET big returns the 1 MiB value (got len %zu)", r ? r->len : 0);
    itest_reply_free(r);
    ITEST_EXPECT(c, "STRLEN big", ":1048576");
    lens[2] = max + 1;
    cr_assert_eq(itest_send_argv(c, 3, av, lens), 0);
    r = itest_read(c);
    got = itest_fmt(r);
    cr_assert_str_eq(got, "-ERR value of 1048577 bytes exceeds max-value-size (1048576 bytes)",
                     "SET of 1 MiB + 1: expected the error of docs/commands.md, got %.200s", got);
    free(got);
    itest_reply_free(r);
    ITEST_EXPECT(c, "PING", "+PONG"); /* connection still works */
    ITEST_EXPECT(c, "STRLEN big", ":1048576"); /* old value untouched */
    /* same for MSET and CFG.SET: nothing half-applied */
    const char *mv[] = {"MSET", "m1", "small", "m2", big};
    size_t mlens[] = {4, 2, 5, 2, max + 1};
    cr_assert_eq(itest_send_argv(c, 5, mv, mlens), 0);
    r = itest_read(c);
    cr_assert(r && r->type == IT_ERROR, "MSET with an oversize value must fail");
    itest_reply_free(r);
    ITEST_EXPECT(c, "EXISTS m1 m2", ":0");
    const char *cv[] = {"CFG.SET", "/big", big};
    cr_assert_eq(itest_send_argv(c, 3, cv, lens), 0);
    r = itest_read(c);
    cr_assert(r && r->type == IT_ERROR, "CFG.SET with an oversize value must fail");
    itest_reply_free(r);
    ITEST_EXPECT(c, "EXISTS /big", ":0");
    ITEST_EXPECT(c, "PING", "+PONG");
    free(big);
    (void)r3;
}

static const char *const small_args[] = {"--max-value-size", "100", NULL};
static void setup_small(void) { start_with(small_args); }

Test(cmd, max_value_size_configured, .init = setup_small, .fini = teardown, .timeout = 60)
{
    char v[102];
    memset(v, 'q', sizeof v);
    v[101] = '\0';
    const char *over[] = {"SET", "k", v, NULL};
    v[100] = '\0';
    char *got = itest_callv(conn2, over);
    cr_assert_str_eq(got, "+OK", "SET of exactly max-value-size (100): %s", got);
    free(got);
    v[100] = 'q';
    got = itest_callv(conn3, over);
    cr_assert(strncmp(got, "-ERR", 4) == 0, "SET of 101 bytes with max 100: %s", got);
    free(got);
    const char *cfg[] = {"CFG.SET", "/k", v, NULL};
    got = itest_callv(conn2, cfg);
    cr_assert(strncmp(got, "-ERR", 4) == 0 && strstr(got, "101") && strstr(got, "100"),
              "CFG.SET of 101 bytes: expected -ERR naming 101 and the limit 100, got %s", got);
    free(got);
    ITEST_EXPECT(conn2, "STRLEN k", ":100");
    ITEST_EXPECT(conn3, "EXISTS /k", ":0");
    ITEST_EXPECT(conn3, "PING", "+PONG");
}

/* ---------------------------------------------------------------- FLUSHALL */

BOTH(flushall_disabled)
{
    ITEST_EXPECT(c, "SET a 1", "+OK");
    const char *cmds[] = {"FLUSHALL", "FLUSHDB"};
    for (int i = 0; i < 2; i++) {
        char *got = itest_call(c, cmds[i]);
        char want[96];
        snprintf(want, sizeof want, "-ERR %s is disabled; set enable-flushall yes to allow it",
                 cmds[i]);
        cr_assert_str_eq(got, want, "sent: %s\n   expected: %s\n   got: %s", cmds[i], want,
                         got);
        free(got);
    }
    ITEST_EXPECT(c, "DBSIZE", ":1");
    (void)r3;
}

static const char *const flush_args[] = {"--enable-flushall", "yes", NULL};
static void setup_flush(void) { start_with(flush_args); }

Test(cmd, flushall_enabled, .init = setup_flush, .fini = teardown, .timeout = 60)
{
    ITEST_EXPECT(conn2, "MSET a 1 b 2 /x/y 3", "+OK");
    ITEST_EXPECT(conn2, "DBSIZE", ":3");
    ITEST_EXPECT(conn2, "FLUSHALL", "+OK");
    ITEST_EXPECT(conn2, "DBSIZE", ":0");
    ITEST_EXPECT(conn2, "GET a", "$nil");
    ITEST_EXPECT(conn3, "SET c 1", "+OK");
    ITEST_EXPECT(conn3, "FLUSHDB", "+OK");
    ITEST_EXPECT(conn3, "DBSIZE", ":0");
    ITEST_EXPECT(conn3, "SET d 1", "+OK");
    ITEST_EXPECT(conn3, "GET d", "\"1\"");
}

/* ---------------------------------------------------------------- CFG.* */

static long long field_int(const struct itest_reply *r, const char *k)
{
    const struct itest_reply *f = itest_field(r, k);
    cr_assert(f && f->type == IT_INT, "field %s is an integer in %s", k, itest_fmt(r));
    return f->integer;
}

BOTH(cfg_set_get_del)
{
    struct itest_reply *r = itest_call_r(c, "CFG.SET /app/port 8080");
    cr_assert(r && r->type == (r3 ? IT_MAP : IT_ARRAY), "CFG.SET reply is a %s: %s",
              r3 ? "map" : "flat array", itest_fmt(r));
    cr_assert_eq(field_int(r, "version"), 1, "first version is 1: %s", itest_fmt(r));
    cr_assert_eq(field_int(r, "created"), 1, "created is 1 on create: %s", itest_fmt(r));
    cr_assert(r->n == 6 && strcmp(r->elem[0]->str, "revision") == 0 &&
                  strcmp(r->elem[2]->str, "version") == 0 &&
                  strcmp(r->elem[4]->str, "created") == 0,
              "CFG.SET reply order revision, version, created: %s", itest_fmt(r));
    long long rev1 = field_int(r, "revision");
    cr_assert(rev1 > 0, "revision > 0");
    itest_reply_free(r);
    ITEST_EXPECT(c, "GET /app/port", "\"8080\"");

    r = itest_call_r(c, "CFG.GET /app/port");
    cr_assert(r && r->type == (r3 ? IT_MAP : IT_ARRAY), "CFG.GET is a %s: %s",
              r3 ? "map" : "flat array", itest_fmt(r));
    const struct itest_reply *v = itest_field(r, "value");
    cr_assert(v && v->type == IT_BULK && strcmp(v->str, "8080") == 0, "value: %s",
              itest_fmt(r));
    cr_assert_eq(field_int(r, "version"), 1);
    cr_assert_eq(field_int(r, "create_revision"), rev1, "create_revision: %s", itest_fmt(r));
    cr_assert_eq(field_int(r, "mod_revision"), rev1, "mod_revision: %s", itest_fmt(r));
    long long mt = field_int(r, "mtime_ms"), now_ms = (long long)time(NULL) * 1000;
    cr_assert(mt > now_ms - 60000 && mt < now_ms + 60000, "mtime_ms %lld is about now", mt);
    cr_assert(r->n == 10, "CFG.GET has exactly value, version, create_revision, mod_revision, "
                          "mtime_ms: %s", itest_fmt(r));
    itest_reply_free(r);

    ITEST_EXPECT(c, "CFG.SET /app/port 9090 IFVERSION 0",
                 "-VERSION version mismatch: current version is 1");
    ITEST_EXPECT(c, "CFG.SET /app/port 9090 IFVERSION 7",
                 "-VERSION version mismatch: current version is 1");
    ITEST_EXPECT(c, "CFG.DEL /nope IFVERSION 3", "-VERSION version mismatch: current version is 0");
    ITEST_EXPECT(c, "CFG.DEL /nope IFVERSION 0", ":0");
    ITEST_EXPECT(c, "GET /app/port", "\"8080\"");
    r = itest_call_r(c, "CFG.SET /app/port 9090 IFVERSION 1");
    cr_assert_eq(field_int(r, "version"), 2, "CAS hit gives version 2: %s", itest_fmt(r));
    cr_assert_eq(field_int(r, "created"), 0, "created is 0 on update: %s", itest_fmt(r));
    cr_assert(field_int(r, "revision") > rev1, "revision grows");
    itest_reply_free(r);
    r = itest_call_r(c, "CFG.SET /app/new v IFVERSION 0");
    cr_assert_eq(field_int(r, "version"), 1, "IFVERSION 0 creates: %s", itest_fmt(r));
    itest_reply_free(r);
    ITEST_EXPECT(c, "SET /app/port 1", "+OK"); /* plain SET bumps the version too */
    r = itest_call_r(c, "CFG.GET /app/port");
    cr_assert_eq(field_int(r, "version"), 3, "SET after 2 CFG.SETs -> version 3: %s",
                 itest_fmt(r));
    itest_reply_free(r);

    ITEST_EXPECT(c, "CFG.GET /nope", NIL);
    ITEST_EXPECT_PREFIX(c, "CFG.DEL /app/port IFVERSION 2", "-VERSION");
    ITEST_EXPECT(c, "EXISTS /app/port", ":1");
    ITEST_EXPECT(c, "CFG.DEL /app/port IFVERSION 3", ":1");
    ITEST_EXPECT(c, "CFG.DEL /app/port", ":0");
    ITEST_EXPECT(c, "CFG.DEL /app/new", ":1");
    ITEST_EXPECT(c, "EXISTS /app/port /app/new", ":0");
    ITEST_EXPECT_PREFIX(c, "CFG.SET /k v IFVERSION abc", "-ERR");
    ITEST_EXPECT_PREFIX(c, "CFG.SET /k v BOGUS 1", "-ERR");
    ITEST_EXPECT(c, "CFG.SET /k", "-ERR wrong number of arguments for 'cfg.set' command");
    ITEST_EXPECT(c, "CFG.GET", "-ERR wrong number of arguments for 'cfg.get' command");
    ITEST_EXPECT(c, "EXISTS /k", ":0");
}

/* Keys of a CFG.LIST page; see docs/commands.md for the layout:
 *   [next, [key, value, key, value ...]]  -- next is the AFTER key for the next page
 *   or nil when done. */
static int list_page(struct itest_conn *c, const char *cmd, char keys[][32], int max,
                     char *next, size_t nextlen)
{
    struct itest_reply *r = itest_call_r(c, cmd);
    cr_assert(r && r->type == IT_ARRAY && r->n == 2, "%s: expected [next, [k, v, ...]], got %s",
              cmd, itest_fmt(r));
    const struct itest_reply *nx = r->elem[0], *kv = r->elem[1];
    cr_assert(kv->type == IT_ARRAY || kv->type == IT_MAP, "%s: items: %s", cmd, itest_fmt(kv));
    int n = 0;
    for (size_t i = 0; i + 1 < kv->n && n < max; i += 2) {
        cr_assert(kv->elem[i]->type == IT_BULK, "%s: key is bulk", cmd);
        snprintf(keys[n++], 32, "%s", kv->elem[i]->str);
        char wantv[40];
        snprintf(wantv, sizeof wantv, "val-%s", kv->elem[i]->str);
        cr_assert(kv->elem[i + 1]->type == IT_BULK && strcmp(kv->elem[i + 1]->str, wantv) == 0,
                  "%s: value of %s is %s", cmd, kv->elem[i]->str, itest_fmt(kv->elem[i + 1]));
    }
    if (nx->type == IT_NULL || (nx->type == IT_BULK && nx->len == 0))
        next[0] = '\0';
    else
        snprintf(next, nextlen, "%s", nx->str ? nx->str : "");
    itest_reply_free(r);
    return n;
}

BOTH(cfg_list_paging)
{
    enum { N = 257 };
    for (int i = 0; i < N; i++) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "SET /svc/k%04d val-/svc/k%04d", i, i);
        ITEST_EXPECT(c, cmd, "+OK");
    }
    ITEST_EXPECT(c, "MSET /svb/x val-/svb/x /svd/y val-/svd/y /svc val-/svc", "+OK");
    char keys[50][32], next[64] = "";
    int total = 0, pages = 0;
    do {
        char cmd[160];
        if (next[0])
            snprintf(cmd, sizeof cmd, "CFG.LIST /svc/ COUNT 50 AFTER %s", next);
        else
            snprintf(cmd, sizeof cmd, "CFG.LIST /svc/ COUNT 50");
        int n = list_page(c, cmd, keys, 50, next, sizeof next);
        cr_assert(n <= 50, "COUNT 50 gave %d", n);
        for (int i = 0; i < n; i++) {
            char want[32];
            snprintf(want, sizeof want, "/svc/k%04d", total + i);
            cr_assert_str_eq(keys[i], want, "%s: item %d is %s, expected %s (in order)", cmd,
                             i, keys[i], want);
        }
        total += n;
        cr_assert(++pages <= 20, "CFG.LIST paging did not end");
    } while (next[0]);
    cr_assert_eq(total, N, "CFG.LIST /svc/ returned %d keys, expected %d", total, N);
    cr_assert(pages >= 6, "257 keys at COUNT 50 need >= 6 pages, got %d", pages);
    int n = list_page(c, "CFG.LIST /nothing/", keys, 50, next, sizeof next);
    cr_assert(n == 0 && !next[0], "empty prefix lists nothing");
    n = list_page(c, "CFG.LIST /svc/k025", keys, 50, next, sizeof next);
    cr_assert(n == 7 && !next[0] && strcmp(keys[0], "/svc/k0250") == 0,
              "CFG.LIST /svc/k025 lists k0250..k0256 and ends: %d keys", n);
    ITEST_EXPECT(c, "CFG.LIST /svc/ COUNT 0", "-ERR COUNT must be an integer in 1..10000");
    ITEST_EXPECT(c, "CFG.LIST /svc/ LIMIT 5", "-ERR syntax error");
    ITEST_EXPECT(c, "CFG.LIST", "-ERR wrong number of arguments for 'cfg.list' command");
    (void)r3;
}

/* ---------------------------------------------------------------- hiredis (RESP2) */

Test(cmd, hiredis_types, .init = setup, .fini = teardown, .timeout = 60)
{
    struct timeval tv = {5, 0};
    redisContext *rc = redisConnectWithTimeout("127.0.0.1", srv.port, tv);
    cr_assert(rc && !rc->err, "hiredis connect");
    redisSetTimeout(rc, tv);
    redisReply *r = redisCommand(rc, "SET %s %b", "bin", "a\0b", (size_t)3);
    cr_assert(r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0);
    freeReplyObject(r);
    r = redisCommand(rc, "GET bin");
    cr_assert(r && r->type == REDIS_REPLY_STRING && r->len == 3 && memcmp(r->str, "a\0b", 3) == 0);
    freeReplyObject(r);
    r = redisCommand(rc, "GET nope");
    cr_assert(r && r->type == REDIS_REPLY_NIL);
    freeReplyObject(r);
    r = redisCommand(rc, "DBSIZE");
    cr_assert(r && r->type == REDIS_REPLY_INTEGER && r->integer == 1);
    freeReplyObject(r);
    r = redisCommand(rc, "MGET bin nope");
    cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
              r->element[1]->type == REDIS_REPLY_NIL);
    freeReplyObject(r);
    r = redisCommand(rc, "GETX");
    cr_assert(r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "ERR unknown command", 19) == 0);
    freeReplyObject(r);
    for (int i = 0; i < 100; i++)
        redisAppendCommand(rc, "SET p%d %d", i, i);
    for (int i = 0; i < 100; i++) {
        void *rep = NULL;
        cr_assert_eq(redisGetReply(rc, &rep), REDIS_OK);
        cr_assert(((redisReply *)rep)->type == REDIS_REPLY_STATUS);
        freeReplyObject(rep);
    }
    r = redisCommand(rc, "GET p99");
    cr_assert(r && r->type == REDIS_REPLY_STRING && strcmp(r->str, "99") == 0);
    freeReplyObject(r);
    redisFree(rc);
}

/* ---------------------------------------------------------------- more connection rules */

Test(cmd, quit_stops_pipeline, .init = setup, .fini = teardown, .timeout = 60)
{
    const char in[] = "*3\r\n$3\r\nSET\r\n$1\r\nq\r\n$1\r\n1\r\n*1\r\n$4\r\nQUIT\r\n"
                      "*3\r\n$3\r\nSET\r\n$1\r\nq\r\n$1\r\n2\r\n";
    cr_assert_eq(itest_send_raw(conn2, in, sizeof in - 1), 0);
    char *a = itest_read_fmt(conn2), *b = itest_read_fmt(conn2);
    cr_assert(strcmp(a, "+OK") == 0 && strcmp(b, "+OK") == 0, "SET, QUIT: %s %s", a, b);
    free(a);
    free(b);
    cr_assert(itest_wait_eof(conn2, 3000), "QUIT closes");
    ITEST_EXPECT(conn3, "GET q", "\"1\""); /* the SET after QUIT did not run */
}

Test(cmd, keyspace_line_when_empty, .init = setup, .fini = teardown, .timeout = 60)
{
    char *ks = call_text(conn2, "INFO keyspace");
    cr_assert(strstr(ks, "db0:keys=0,expires=0,avg_ttl=0\r\n"),
              "INFO keyspace on an empty store (docs: always present):\n%s", ks);
    free(ks);
}

Test(cmd, hello_noauth, .init = setup_pass, .fini = teardown, .timeout = 60)
{
    struct itest_conn *c = itest_connect(srv.port);
    ITEST_EXPECT_PREFIX(c, "HELLO 3", "-NOAUTH HELLO must be called with the client already "
                                      "authenticated");
    ITEST_EXPECT(c, "PING", "-NOAUTH Authentication required.");
    ITEST_EXPECT(c, "QUIT", "+OK");
    itest_close(c);
}

static char conf_path[300];
static void setup_conf(void)
{
    snprintf(conf_path, sizeof conf_path, "/tmp/rc-itest-conf-%d.conf", (int)getpid());
    FILE *f = fopen(conf_path, "w");
    cr_assert(f);
    fprintf(f, "# test config\nmaxclients 123\nenable-flushall yes\n"
               "requirepass \"two words\"\nappendonly yes\n");
    fclose(f);
    static const char *args[3];
    args[0] = conf_path;
    args[1] = NULL;
    int rc = itest_start(&srv, (const char *const *)args);
    if (rc != 0)
        unlink(conf_path);
    cr_assert_eq(rc, 0, "server with config file %s did not start", conf_path);
}
static void teardown_conf(void)
{
    unlink(conf_path);
    teardown();
}

/* a redis.conf-style file as the first argument; flags still apply (--port/--dir) */
Test(cmd, config_file, .init = setup_conf, .fini = teardown_conf, .timeout = 60)
{
    struct itest_conn *c = itest_connect(srv.port);
    ITEST_EXPECT(c, "GET a", "-NOAUTH Authentication required.");
    const char *auth[] = {"AUTH", "two words", NULL};
    char *got = itest_callv(c, auth);
    cr_assert_str_eq(got, "+OK", "AUTH with the quoted password from the file: %s", got);
    free(got);
    ITEST_EXPECT(c, "CONFIG GET maxclients", "[\"maxclients\", \"123\"]");
    ITEST_EXPECT(c, "SET a 1", "+OK");
    ITEST_EXPECT(c, "FLUSHALL", "+OK");
    itest_close(c);
}

static const char *const idle_args[] = {"--timeout", "1", NULL};
static void setup_idle(void) { start_with(idle_args); }

Test(cmd, idle_timeout, .init = setup_idle, .fini = teardown, .timeout = 60)
{
    ITEST_EXPECT(conn2, "PING", "+PONG");
    cr_assert(itest_wait_eof(conn2, 4000), "timeout 1: an idle client is closed within ~2 s");
}
