/*
 * cmd_conn.c - connection commands: PING ECHO QUIT HELLO AUTH SELECT RESET CLIENT
 * READONLY READWRITE. None of them touch replicated state; they reply at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client.h"
#include "commands.h"
#include "node.h"
#include "pubsub.h"
#include "server.h"

#define EQ(a, b) (strcasecmp((a), (b)) == 0)

void cmd_ping(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    if (argc > 2) {
        resp_w_error(cmd_out(s), "ERR wrong number of arguments for 'ping' command");
    } else if (c->proto == 2 && pubsub_client_subscribed(c)) {
        /* RESP2 subscribed mode: a reply in the shape of a message (as Redis) */
        resp_w_array(cmd_out(s), 2);
        resp_w_bulk_str(cmd_out(s), "pong");
        resp_w_bulk(cmd_out(s), argc == 2 ? argv[1] : "", argc == 2 ? len[1] : 0);
    } else if (argc == 2) {
        resp_w_bulk(cmd_out(s), argv[1], len[1]);
    } else {
        resp_w_simple(cmd_out(s), "PONG");
    }
}

void cmd_echo(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    (void)c;
    (void)argc;
    resp_w_bulk(cmd_out(s), argv[1], len[1]);
}

void cmd_quit(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    (void)argc;
    (void)argv;
    (void)len;
    resp_w_simple(cmd_out(s), "OK");
    c->close_after_reply = true;
}

/* Constant-time comparison, so response timing does not leak the password. */
static bool secret_eq(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    unsigned char d = alen != blen;
    for (size_t i = 0; i < alen; i++)
        d |= (unsigned char)(a[i] ^ b[i % (blen ? blen : 1)]);
    return d == 0;
}

/* 1 ok, 0 wrong (reply written). */
static int check_auth(struct client *c, struct cslot *s, const char *user, const char *pass,
                      size_t plen)
{
    const char *want = c->srv->cfg.requirepass;
    bool ok = user && strcmp(user, "default") != 0 ? false
              : want[0] ? secret_eq(pass, plen, want) : true;
    if (!ok) {
        resp_w_error(cmd_out(s), "WRONGPASS invalid username-password pair or user is "
                                 "disabled.");
        return 0;
    }
    c->authed = true;
    resp_parser_set_authenticated(c->parser, true);
    return 1;
}

void cmd_auth(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    if (argc > 3) {
        resp_w_error(cmd_out(s), "ERR syntax error");
        return;
    }
    if (argc == 2 && !c->srv->cfg.requirepass[0]) {
        resp_w_error(cmd_out(s), "ERR AUTH <password> called without any password configured "
                                 "for the default user. Are you sure your configuration is "
                                 "correct?");
        return;
    }
    const char *user = argc == 3 ? argv[1] : NULL;
    if (check_auth(c, s, user, argv[argc - 1], len[argc - 1]))
        resp_w_simple(cmd_out(s), "OK");
}

static bool name_ok(const char *p, size_t n)
{
    if (n > CLIENT_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (p[i] < '!' || p[i] > '~')
            return false;
    return true;
}

static void set_str(char **dst, const char *p, size_t n)
{
    free(*dst);
    *dst = n ? strndup(p, n) : NULL;
}

static void hello_reply(struct client *c, struct cslot *s)
{
    struct resp_buf *b = cmd_out(s);
    resp_w_map(b, c->proto, 7);
    resp_w_bulk_str(b, "server");
    resp_w_bulk_str(b, "raftconf");
    resp_w_bulk_str(b, "version");
    resp_w_bulk_str(b, SRV_REDIS_VERSION);
    resp_w_bulk_str(b, "proto");
    resp_w_int(b, c->proto);
    resp_w_bulk_str(b, "id");
    resp_w_int(b, (long long)c->id);
    resp_w_bulk_str(b, "mode");
    resp_w_bulk_str(b, "standalone");
    resp_w_bulk_str(b, "role");
    bool leader = node_leader(c->srv->node, NODE_GROUP_DATA) == (raft_id)c->srv->cfg.node_id;
    resp_w_bulk_str(b, leader ? "master" : "replica");
    resp_w_bulk_str(b, "modules");
    resp_w_array(b, 0);
}

void cmd_hello(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    long long ver = c->proto;
    if (argc >= 2) {
        if (!cmd_parse_ll(argv[1], len[1], &ver)) {
            resp_w_error(cmd_out(s), "ERR Protocol version is not an integer or out of range");
            return;
        }
        if (ver != 2 && ver != 3) {
            resp_w_error(cmd_out(s), "NOPROTO unsupported protocol version");
            return;
        }
    }
    int auth_i = 0, name_i = 0;
    for (int i = 2; i < argc; i++) {
        if (EQ(argv[i], "AUTH") && i + 2 < argc) {
            auth_i = i;
            i += 2;
        } else if (EQ(argv[i], "SETNAME") && i + 1 < argc) {
            name_i = i;
            i += 1;
        } else {
            resp_w_errorf(cmd_out(s), "ERR Syntax error in HELLO option '%.64s'", argv[i]);
            return;
        }
    }
    if (auth_i && !check_auth(c, s, argv[auth_i + 1], argv[auth_i + 2], len[auth_i + 2]))
        return;
    if (!client_authed(c)) {
        resp_w_error(cmd_out(s), "NOAUTH HELLO must be called with the client already "
                                 "authenticated, otherwise the HELLO <proto> AUTH <user> "
                                 "<pass> option can be used to authenticate the client and "
                                 "select the RESP protocol version at the same time");
        return;
    }
    if (name_i && !name_ok(argv[name_i + 1], len[name_i + 1])) {
        resp_w_error(cmd_out(s), "ERR Client names cannot contain spaces, newlines or special "
                                 "characters.");
        return;
    }
    if (name_i)
        set_str(&c->name, argv[name_i + 1], len[name_i + 1]);
    c->proto = (int)ver;
    hello_reply(c, s);
}

void cmd_select(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    (void)c;
    (void)argc;
    long long db;
    if (!cmd_parse_ll(argv[1], len[1], &db))
        resp_w_error(cmd_out(s), "ERR value is not an integer or out of range");
    else if (db != 0)
        resp_w_error(cmd_out(s), "ERR DB index is out of range");
    else
        resp_w_simple(cmd_out(s), "OK");
}

void cmd_reset(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    (void)argc;
    (void)argv;
    (void)len;
    c->proto = 2;
    c->readonly = false;
    pubsub_client_free(c); /* leaves subscribed mode, without unsubscribe replies */
    set_str(&c->name, NULL, 0);
    c->authed = c->srv->cfg.requirepass[0] == '\0';
    resp_parser_set_authenticated(c->parser, c->authed);
    resp_w_simple(cmd_out(s), "RESET");
}

void cmd_readonly(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    (void)argc;
    (void)argv;
    (void)len;
    c->readonly = true;
    resp_w_simple(cmd_out(s), "OK");
}

void cmd_readwrite(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    (void)argc;
    (void)argv;
    (void)len;
    c->readonly = false;
    resp_w_simple(cmd_out(s), "OK");
}

/* ------------------------------------------------------------------ CLIENT */

#define LIST_IDS_MAX 64

/* CLIENT LIST [TYPE normal|master|replica|pubsub] [ID id ...] / CLIENT INFO (only_self). */
static void client_list(struct client *c, struct cslot *s, int argc, char **argv, size_t *len,
                        bool only_self)
{
    long long ids[LIST_IDS_MAX];
    int n_ids = 0;
    int type = 0; /* 0 any, 1 normal, 2 pubsub, 3 master/replica (nobody) */
    for (int i = 2; i < argc; i++) {
        if (EQ(argv[i], "TYPE") && i + 1 < argc) {
            const char *t = argv[++i];
            if (!EQ(t, "normal") && !EQ(t, "master") && !EQ(t, "replica") &&
                !EQ(t, "slave") && !EQ(t, "pubsub")) {
                resp_w_errorf(cmd_out(s), "ERR Unknown client type '%.64s'", t);
                return;
            }
            type = EQ(t, "normal") ? 1 : EQ(t, "pubsub") ? 2 : 3;
        } else if (EQ(argv[i], "ID") && i + 1 < argc) {
            for (i++; i < argc && n_ids < LIST_IDS_MAX; i++) {
                if (!cmd_parse_ll(argv[i], len[i], &ids[n_ids++]) || ids[n_ids - 1] < 1) {
                    resp_w_error(cmd_out(s), "ERR Invalid client ID");
                    return;
                }
            }
        } else {
            resp_w_error(cmd_out(s), "ERR syntax error");
            return;
        }
    }
    struct resp_buf text;
    resp_buf_init(&text);
    char line[1024];
    for (struct client *x = c->srv->clients; x && type != 3; x = x->next) {
        bool hit = n_ids == 0;
        for (int i = 0; i < n_ids; i++)
            hit |= (uint64_t)ids[i] == x->id;
        if ((only_self && x != c) || !hit ||
            (type && (type == 2) != pubsub_client_subscribed(x)))
            continue;
        client_describe(x, line, sizeof line);
        resp_buf_append(&text, line, strlen(line));
        resp_buf_append(&text, "\n", 1);
    }
    if (text.oom)
        resp_w_error(cmd_out(s), "ERR out of memory");
    else
        resp_w_verbatim(cmd_out(s), c->proto, "txt", text.data ? text.data : "", text.len);
    resp_buf_free(&text);
}

/* CLIENT KILL addr | CLIENT KILL [ID id] [ADDR addr] [LADDR addr] [SKIPME yes|no] */
static void client_kill(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    bool old_form = argc == 3;
    const char *addr = old_form ? argv[2] : NULL, *laddr = NULL;
    long long id = -1;
    bool skipme = true;
    for (int i = 2; !old_form && i < argc; i += 2) {
        if (i + 1 >= argc) {
            resp_w_error(cmd_out(s), "ERR syntax error");
            return;
        }
        if (EQ(argv[i], "ID")) {
            if (!cmd_parse_ll(argv[i + 1], len[i + 1], &id) || id < 1) {
                resp_w_error(cmd_out(s), "ERR client-id should be greater than 0");
                return;
            }
        } else if (EQ(argv[i], "ADDR")) {
            addr = argv[i + 1];
        } else if (EQ(argv[i], "LADDR")) {
            laddr = argv[i + 1];
        } else if (EQ(argv[i], "SKIPME") && (EQ(argv[i + 1], "yes") || EQ(argv[i + 1], "no"))) {
            skipme = EQ(argv[i + 1], "yes");
        } else if (!EQ(argv[i], "USER") && !EQ(argv[i], "TYPE") && !EQ(argv[i], "MAXAGE")) {
            resp_w_error(cmd_out(s), "ERR syntax error");
            return;
        }
    }
    long long killed = 0;
    for (struct client *x = c->srv->clients; x; x = x->next) {
        if (id > 0 && x->id != (uint64_t)id)
            continue;
        if (addr && strcmp(x->addr, addr) != 0)
            continue;
        if (laddr && strcmp(x->laddr, laddr) != 0)
            continue;
        if (x == c && skipme && !old_form)
            continue;
        killed++;
        if (x == c)
            c->close_after_reply = true;
        else
            client_close_asap(x);
    }
    if (!old_form)
        resp_w_int(cmd_out(s), killed);
    else if (killed)
        resp_w_simple(cmd_out(s), "OK");
    else
        resp_w_error(cmd_out(s), "ERR No such client");
}

static void client_setinfo(struct client *c, struct cslot *s, char **argv, size_t *len)
{
    if (!name_ok(argv[3], len[3])) {
        resp_w_errorf(cmd_out(s), "ERR %s cannot contain spaces, newlines or special "
                      "characters.", EQ(argv[2], "LIB-NAME") ? "lib-name" : "lib-ver");
    } else if (EQ(argv[2], "LIB-NAME")) {
        set_str(&c->lib_name, argv[3], len[3]);
        resp_w_simple(cmd_out(s), "OK");
    } else if (EQ(argv[2], "LIB-VER")) {
        set_str(&c->lib_ver, argv[3], len[3]);
        resp_w_simple(cmd_out(s), "OK");
    } else {
        resp_w_errorf(cmd_out(s), "ERR Unrecognized option '%.64s'", argv[2]);
    }
}

static void client_help(struct cslot *s)
{
    static const char *const lines[] = {
        "CLIENT <subcommand> [<arg> ...]. Subcommands are:",
        "ID", "GETNAME", "SETNAME <name>", "SETINFO LIB-NAME|LIB-VER <value>",
        "LIST [TYPE normal|master|replica|pubsub] [ID id ...]", "INFO",
        "KILL <ip:port> | KILL [ID <id>] [ADDR <ip:port>] [SKIPME yes|no]",
        "NO-EVICT on|off", "NO-TOUCH on|off",
        "TRACKING ... (not supported: raftconf has no client-side caching)",
        "MAINT_NOTIFICATIONS ... (accepted; raftconf sends no maintenance pushes)", "HELP"};
    size_t n = sizeof lines / sizeof lines[0];
    resp_w_array(cmd_out(s), (long long)n);
    for (size_t i = 0; i < n; i++)
        resp_w_simple(cmd_out(s), lines[i]);
}

static bool sub_arity(struct cslot *s, const char *sub, int argc, int want)
{
    if (want > 0 ? argc == want : argc >= -want)
        return true;
    resp_w_errorf(cmd_out(s), "ERR wrong number of arguments for 'client|%s' command", sub);
    return false;
}

void cmd_client(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    const char *sub = argv[1];
    struct resp_buf *b = cmd_out(s);
    if (EQ(sub, "ID")) {
        if (sub_arity(s, "id", argc, 2))
            resp_w_int(b, (long long)c->id);
    } else if (EQ(sub, "GETNAME")) {
        if (!sub_arity(s, "getname", argc, 2))
            return;
        if (c->name)
            resp_w_bulk_str(b, c->name);
        else
            resp_w_null(b, c->proto);
    } else if (EQ(sub, "SETNAME")) {
        if (!sub_arity(s, "setname", argc, 3))
            return;
        if (!name_ok(argv[2], len[2])) {
            resp_w_error(b, "ERR Client names cannot contain spaces, newlines or special "
                            "characters.");
            return;
        }
        set_str(&c->name, argv[2], len[2]);
        resp_w_simple(b, "OK");
    } else if (EQ(sub, "SETINFO")) {
        if (sub_arity(s, "setinfo", argc, 4))
            client_setinfo(c, s, argv, len);
    } else if (EQ(sub, "LIST")) {
        client_list(c, s, argc, argv, len, false);
    } else if (EQ(sub, "INFO")) {
        if (sub_arity(s, "info", argc, 2))
            client_list(c, s, argc, argv, len, true);
    } else if (EQ(sub, "KILL")) {
        if (sub_arity(s, "kill", argc, -3))
            client_kill(c, s, argc, argv, len);
    } else if (EQ(sub, "NO-EVICT") || EQ(sub, "NO-TOUCH")) {
        if (!sub_arity(s, EQ(sub, "NO-EVICT") ? "no-evict" : "no-touch", argc, 3))
            return;
        if (EQ(argv[2], "on") || EQ(argv[2], "off"))
            resp_w_simple(b, "OK");
        else
            resp_w_error(b, "ERR syntax error");
    } else if (EQ(sub, "TRACKING")) {
        resp_w_error(b, "ERR CLIENT TRACKING is not supported by raftconf");
    } else if (EQ(sub, "MAINT_NOTIFICATIONS")) {
        resp_w_simple(b, "OK"); /* tolerated: raftconf sends no maintenance pushes */
    } else if (EQ(sub, "HELP")) {
        client_help(s);
    } else {
        resp_w_errorf(b, "ERR unknown subcommand '%.128s'. Try CLIENT HELP.", sub);
    }
}
