/*
 * test_compat.c - what Redis clients and tools send in their normal paths, answered the way
 * they parse it (issue 6): COMMAND DOCS in the shape redis-cli builds its hints and HELP
 * from (argument types, tokens, flags as simple strings, blocks, choices, subcommands named
 * "container|sub"), COMMAND GETKEYS / HELP, DEBUG LOG, the CLIENT subcommands clients send
 * on connect, HELLO 3's map, INFO as verbatim text in RESP3, CONFIG GET patterns asked by
 * redis-benchmark, and the RESP3 / RESP2 types of the Pub/Sub introspection replies.
 * The suites in redis-tests/ run the real clients; this file pins the reply shapes.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helper.h"

static struct itest_srv srv;
static struct itest_conn *c2, *c3;

static void setup(void)
{
    cr_assert_eq(itest_start(&srv, NULL), 0, "server %s did not start", itest_bin());
    c2 = itest_connect(srv.port);
    c3 = itest_connect(srv.port);
    cr_assert(c2 && c3, "connect");
    struct itest_reply *h = itest_call_r(c3, "HELLO 3");
    cr_assert(h && h->type == IT_MAP, "HELLO 3 must answer a map");
    itest_reply_free(h);
}

static void teardown(void)
{
    itest_close(c2);
    itest_close(c3);
    c2 = c3 = NULL;
    itest_fini();
}

/* The docs map of the only command in a COMMAND DOCS reply. */
static const struct itest_reply *only_doc(const struct itest_reply *r, const char *name)
{
    cr_assert(r && (r->type == IT_MAP || r->type == IT_ARRAY) && r->n == 2,
              "COMMAND DOCS %s: one entry expected, got %s", name, itest_fmt(r));
    cr_assert_str_eq(r->elem[0]->str, name);
    return r->elem[1];
}

/* Argument i of a docs map (or of a block / oneof argument). */
static const struct itest_reply *arg_at(const struct itest_reply *doc, size_t i)
{
    const struct itest_reply *a = itest_field(doc, "arguments");
    cr_assert(a && a->type == IT_ARRAY && i < a->n, "argument %zu of %s", i, itest_fmt(doc));
    return a->elem[i];
}

static void expect_arg(const struct itest_reply *arg, const char *name, const char *type,
                       const char *token, const char *flags)
{
    char *txt = itest_fmt(arg);
    const struct itest_reply *f = itest_field(arg, "name");
    cr_assert(f && strcmp(f->str, name) == 0, "name %s expected in %s", name, txt);
    f = itest_field(arg, "type");
    cr_assert(f && strcmp(f->str, type) == 0, "type %s expected in %s", type, txt);
    f = itest_field(arg, "token");
    if (token)
        cr_assert(f && strcmp(f->str, token) == 0, "token %s expected in %s", token, txt);
    else
        cr_assert_null(f, "no token expected in %s", txt);
    f = itest_field(arg, "flags");
    if (!flags) {
        cr_assert_null(f, "no flags expected in %s", txt);
    } else {
        /* redis-cli asserts that flags are simple strings */
        char got[64] = "";
        for (size_t i = 0; f && i < f->n; i++) {
            cr_assert_eq(f->elem[i]->type, IT_STATUS, "flags are simple strings: %s", txt);
            strcat(got, i ? "," : "");
            strncat(got, f->elem[i]->str, 20);
        }
        cr_assert_str_eq(got, flags, "flags of %s", txt);
    }
    free(txt);
}

Test(compat, command_docs_arguments, .init = setup, .fini = teardown, .timeout = 30)
{
    struct itest_reply *r = itest_call_r(c3, "COMMAND DOCS set");
    const struct itest_reply *d = only_doc(r, "set");
    cr_assert_eq(r->type, IT_MAP, "RESP3: a map");
    cr_assert_str_eq(itest_field(d, "group")->str, "string");
    expect_arg(arg_at(d, 0), "key", "key", NULL, NULL);
    expect_arg(arg_at(d, 1), "value", "string", NULL, NULL);
    expect_arg(arg_at(d, 2), "choice", "oneof", NULL, "optional");
    expect_arg(arg_at(arg_at(d, 2), 0), "nx", "pure-token", "NX", NULL);
    expect_arg(arg_at(arg_at(d, 2), 1), "xx", "pure-token", "XX", NULL);
    expect_arg(arg_at(d, 3), "get", "pure-token", "GET", "optional");
    itest_reply_free(r);

    /* "key value [key value ...]": one multiple block of key and value */
    r = itest_call_r(c2, "COMMAND DOCS mset");
    d = only_doc(r, "mset");
    cr_assert_eq(r->type, IT_ARRAY, "RESP2: a flat array");
    expect_arg(arg_at(d, 0), "data", "block", NULL, "multiple");
    expect_arg(arg_at(arg_at(d, 0), 0), "key", "key", NULL, NULL);
    expect_arg(arg_at(arg_at(d, 0), 1), "value", "string", NULL, NULL);
    itest_reply_free(r);

    /* HELLO: a token followed by a block (AUTH username password) */
    r = itest_call_r(c3, "COMMAND DOCS hello");
    d = only_doc(r, "hello");
    expect_arg(arg_at(d, 0), "protover", "integer", NULL, "optional");
    expect_arg(arg_at(d, 1), "auth", "block", "AUTH", "optional");
    expect_arg(arg_at(arg_at(d, 1), 1), "password", "string", NULL, NULL);
    expect_arg(arg_at(d, 2), "clientname", "string", "SETNAME", "optional");
    itest_reply_free(r);

    /* "[pattern [pattern ...]]": one optional, multiple argument */
    r = itest_call_r(c3, "COMMAND DOCS punsubscribe scan");
    cr_assert(r && r->n == 4, "two entries: %s", itest_fmt(r));
    expect_arg(arg_at(r->elem[1], 0), "pattern", "pattern", NULL, "optional,multiple");
    expect_arg(arg_at(r->elem[3], 1), "pattern", "pattern", "MATCH", "optional");
    itest_reply_free(r);

    ITEST_EXPECT(c3, "COMMAND DOCS nosuchcommand", "{}");
}

Test(compat, command_docs_subcommands, .init = setup, .fini = teardown, .timeout = 30)
{
    struct itest_reply *r = itest_call_r(c3, "COMMAND DOCS client");
    const struct itest_reply *d = only_doc(r, "client");
    cr_assert_null(itest_field(d, "arguments"), "a container has no arguments of its own");
    const struct itest_reply *subs = itest_field(d, "subcommands");
    cr_assert(subs && subs->type == IT_MAP && subs->n >= 20, "subcommands: %s", itest_fmt(d));
    /* redis-cli takes the subcommand's name after the '|' */
    const struct itest_reply *list = itest_field(subs, "client|list");
    cr_assert(list, "client|list documented: %s", itest_fmt(subs));
    expect_arg(arg_at(list, 0), "type", "oneof", "TYPE", "optional");
    expect_arg(arg_at(list, 1), "id", "block", "ID", "optional");
    expect_arg(arg_at(arg_at(list, 1), 0), "client-id", "integer", NULL, "multiple");
    cr_assert(itest_field(subs, "client|setinfo") && itest_field(subs, "client|no-evict"));
    itest_reply_free(r);

    /* every container of the table documents subcommands */
    const char *containers[] = {"config", "command", "pubsub", "debug", "cfg.cluster"};
    for (size_t i = 0; i < sizeof containers / sizeof containers[0]; i++) {
        char line[64];
        snprintf(line, sizeof line, "COMMAND DOCS %s", containers[i]);
        r = itest_call_r(c2, line);
        d = only_doc(r, containers[i]);
        subs = itest_field(d, "subcommands");
        cr_assert(subs && subs->n >= 4, "%s has subcommands: %s", line, itest_fmt(r));
        cr_assert(strchr(subs->elem[0]->str, '|'), "named container|sub: %s", itest_fmt(r));
        itest_reply_free(r);
    }
}

Test(compat, command_getkeys_help_count, .init = setup, .fini = teardown, .timeout = 30)
{
    ITEST_EXPECT(c2, "COMMAND GETKEYS mset a 1 b 2", "[\"a\", \"b\"]");
    ITEST_EXPECT(c2, "COMMAND GETKEYS cfg.set /k v IFVERSION 0", "[\"/k\"]");
    ITEST_EXPECT(c2, "COMMAND GETKEYS get", "-ERR Invalid number of arguments specified for "
                                            "command");
    ITEST_EXPECT(c2, "COMMAND GETKEYS ping", "-ERR The command has no key arguments");
    ITEST_EXPECT(c2, "COMMAND GETKEYS nosuch x", "-ERR Invalid command specified");
    ITEST_EXPECT_PREFIX(c2, "COMMAND HELP", "[+COMMAND <subcommand>");
    struct itest_reply *n = itest_call_r(c2, "COMMAND COUNT");
    struct itest_reply *l = itest_call_r(c2, "COMMAND LIST");
    cr_assert(n && l && n->type == IT_INT && l->type == IT_ARRAY && (size_t)n->integer == l->n,
              "COMMAND COUNT = length of COMMAND LIST");
    itest_reply_free(n);
    itest_reply_free(l);
}

Test(compat, debug_log, .init = setup, .fini = teardown, .timeout = 30)
{
    ITEST_EXPECT(c2, "DEBUG LOG marker-from-test", "+OK");
    ITEST_EXPECT_PREFIX(c2, "DEBUG HELP", "[+DEBUG <subcommand>");
    ITEST_EXPECT(c2, "DEBUG SLEEP 0", "-ERR unknown subcommand or wrong number of arguments "
                                      "for 'SLEEP'. Try DEBUG HELP.");
    ITEST_EXPECT(c2, "DEBUG", "-ERR wrong number of arguments for 'debug' command");
    /* the marker is in the server log */
    FILE *fp = fopen(srv.log, "r");
    cr_assert(fp, "server log %s", srv.log);
    char line[1024];
    bool found = false;
    while (!found && fgets(line, sizeof line, fp))
        found = strstr(line, "DEBUG LOG") && strstr(line, "marker-from-test");
    fclose(fp);
    cr_assert(found, "DEBUG LOG's message is in the server log");
}

Test(compat, client_handshake_commands, .init = setup, .fini = teardown, .timeout = 30)
{
    /* what ioredis, node-redis and redis-py send on connect; failures would be ignored by
     * most, but an error on the tolerated ones would break node-redis' maintenance mode */
    ITEST_EXPECT(c3, "CLIENT SETINFO LIB-NAME node-redis", "+OK");
    ITEST_EXPECT(c3, "CLIENT SETINFO LIB-VER 6.3.1", "+OK");
    ITEST_EXPECT(c3, "CLIENT MAINT_NOTIFICATIONS ON moving-endpoint-type internal-ip", "+OK");
    ITEST_EXPECT(c3, "CLIENT NO-EVICT on", "+OK");
    ITEST_EXPECT(c3, "CLIENT NO-TOUCH off", "+OK");
    ITEST_EXPECT(c3, "CLIENT TRACKING on", "-ERR CLIENT TRACKING is not supported by raftconf");
    char *info = itest_call(c3, "CLIENT INFO");
    cr_assert(strstr(info, "lib-name=node-redis") && strstr(info, "lib-ver=6.3.1") &&
              strstr(info, "resp=3"), "CLIENT INFO shows the client's info: %s", info);
    free(info);
    ITEST_EXPECT(c3, "ECHO hi", "\"hi\"");
}

Test(compat, hello_info_config_shapes, .init = setup, .fini = teardown, .timeout = 30)
{
    struct itest_reply *h = itest_call_r(c3, "HELLO 3");
    const char *keys[] = {"server", "version", "proto", "id", "mode", "role", "modules"};
    cr_assert(h && h->type == IT_MAP && h->n == 14, "HELLO 3: 7 pairs: %s", itest_fmt(h));
    for (size_t i = 0; i < 7; i++)
        cr_assert_str_eq(h->elem[2 * i]->str, keys[i], "HELLO field %zu", i);
    cr_assert_eq(itest_field(h, "proto")->integer, 3);
    cr_assert_eq(itest_field(h, "modules")->type, IT_ARRAY);
    itest_reply_free(h);
    h = itest_call_r(c2, "HELLO");
    cr_assert(h && h->type == IT_ARRAY && h->n == 14, "HELLO (no version) in RESP2: %s",
              itest_fmt(h));
    cr_assert_eq(itest_field(h, "proto")->integer, 2, "HELLO alone keeps the protocol");
    itest_reply_free(h);

    struct itest_reply *i = itest_call_r(c3, "INFO server");
    cr_assert(i && i->type == IT_VERBATIM && strncmp(i->str, "txt:# Server", 12) == 0,
              "INFO in RESP3: verbatim txt: %s", itest_fmt(i));
    itest_reply_free(i);
    i = itest_call_r(c2, "INFO server");
    cr_assert(i && i->type == IT_BULK && strncmp(i->str, "# Server", 8) == 0, "RESP2: bulk");
    itest_reply_free(i);

    /* redis-benchmark's questions, and a whole-config dump */
    ITEST_EXPECT(c2, "CONFIG GET save", "[\"save\", \"\"]");
    ITEST_EXPECT(c3, "CONFIG GET appendonly", "{\"appendonly\": \"yes\"}");
    struct itest_reply *all = itest_call_r(c3, "CONFIG GET *");
    cr_assert(all && all->type == IT_MAP && all->n >= 20 && itest_field(all, "maxclients"),
              "CONFIG GET * is a map of every option: %s", itest_fmt(all));
    itest_reply_free(all);
}

Test(compat, pubsub_introspection_types, .init = setup, .fini = teardown, .timeout = 30)
{
    struct itest_conn *s = itest_connect(srv.port);
    cr_assert(s);
    ITEST_EXPECT(s, "SUBSCRIBE news", "[\"subscribe\", \"news\", :1]");
    ITEST_EXPECT(c3, "PUBSUB CHANNELS", "[\"news\"]");
    /* Redis 7 answers NUMSUB with a flat array in RESP3 too (not a map) */
    ITEST_EXPECT(c3, "PUBSUB NUMSUB news other", "[\"news\", :1, \"other\", :0]");
    ITEST_EXPECT(c3, "PUBSUB NUMPAT", ":0");
    ITEST_EXPECT(s, "GET x", "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / "
                             "(P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this "
                             "context");
    ITEST_EXPECT(s, "PING", "[\"pong\", \"\"]");
    ITEST_EXPECT(c3, "PUBLISH news hello", ":1");
    char *m = itest_read_fmt(s);
    cr_assert_str_eq(m, "[\"message\", \"news\", \"hello\"]");
    free(m);
    ITEST_EXPECT(s, "CLIENT ID", "-ERR Can't execute 'client|id': only (P|S)SUBSCRIBE / "
                                 "(P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in "
                                 "this context");
    ITEST_EXPECT(s, "DEBUG LOG x", "-ERR Can't execute 'debug': only (P|S)SUBSCRIBE / "
                                   "(P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in "
                                   "this context");
    itest_close(s);
}
