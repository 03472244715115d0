/*
 * cmd_gov.c - the governance commands of the service layer (issue 5):
 *   CFG.SCHEMA.SET pattern schema [FORCE]   CFG.SCHEMA.GET pattern
 *   CFG.SCHEMA.DEL pattern                  CFG.SCHEMA.LIST [prefix]
 *   CFG.SNAPSHOT prefix [LABEL label]       CFG.SNAPSHOTS [prefix]
 *   CFG.SNAPSHOT.DEL id
 *   CFG.ROLLBACK prefix [TO id|REV r] [DRYRUN] [REASON text]
 *
 * Writes are checked for syntax here (a clear error, nothing proposed, the connection stays
 * usable) and proposed in canonical form (upper-case options); everything else (schema
 * verdicts, limits, which snapshot, what a rollback changes) is decided by ns at apply time,
 * so every replica agrees and the reply is the same on any node (followers forward).
 * CFG.ROLLBACK ... DRYRUN is proposed too: it is an entry that stages nothing, so its answer
 * is exactly what a rollback would do at that point of the log. Reads (CFG.SCHEMA.GET/LIST,
 * CFG.SNAPSHOTS) are CMD_READONLY: linearizable after the read barrier, like CFG.GET.
 * All of it lives in the data group (NODE_GROUP_DATA).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client.h"
#include "cmd_gov.h"
#include "commands.h"
#include "node.h"
#include "ns/ns.h"
#include "ns/schema.h"
#include "rc.h"
#include "server.h"

#define EQ(a, b) (strcasecmp((a), (b)) == 0)
#define GOV_ARGS_MAX 8

static struct ns *data_ns(struct client *c)
{
    return node_ns(c->srv->node, NODE_GROUP_DATA);
}

static void propose(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    cmd_propose(c, s, argc, argv, len, 0);
}

static bool pattern_ok_or_reply(struct cslot *s, const char *p, size_t plen)
{
    char err[256];
    if (ns_pattern_check(p, plen, err, sizeof err) == RC_OK)
        return true;
    resp_w_errorf(cmd_out(s), "ERR invalid pattern: %s", err);
    return false;
}

static bool prefix_ok_or_reply(struct cslot *s, size_t plen)
{
    return plen == 0 || cmd_key_ok_or_reply(s, plen);
}

static bool u64_ok_or_reply(struct cslot *s, const char *a, size_t alen, uint64_t *v)
{
    long long x;
    if (cmd_parse_ll(a, alen, &x) && x >= 0) {
        *v = (uint64_t)x;
        return true;
    }
    resp_w_error(cmd_out(s), "ERR value is not an integer or out of range");
    return false;
}

/* ------------------------------------------------------------------ schemas */

void cmd_cfg_schema_set(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    if (argc > 4) {
        resp_w_error(cmd_out(s), "ERR syntax error");
        return;
    }
    if (argc == 4 && !EQ(argv[3], "FORCE")) {
        resp_w_error(cmd_out(s), "ERR syntax error");
        return;
    }
    if (!pattern_ok_or_reply(s, argv[1], len[1]))
        return;
    /* Fail fast on a bad schema; apply compiles it again (the verdict that counts). */
    struct ns_schema *sc = NULL;
    char err[512];
    int rc = ns_schema_compile(argv[2], len[2], &sc, err, sizeof err);
    ns_schema_free(sc);
    if (rc == RC_BADARG || rc == RC_TOOBIG) {
        resp_w_errorf(cmd_out(s), "ERR invalid schema: %s", err);
        return;
    }
    if (rc != RC_OK) {
        cmd_reply_rc(s, rc, NULL);
        return;
    }
    char *nargv[4] = {"CFG.SCHEMA.SET", argv[1], argv[2], "FORCE"};
    size_t nlen[4] = {14, len[1], len[2], 5};
    propose(c, s, argc, nargv, nlen);
}

void cmd_cfg_schema_del(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    (void)argc;
    char *nargv[2] = {"CFG.SCHEMA.DEL", argv[1]};
    size_t nlen[2] = {14, len[1]};
    if (len[1] == 0 || len[1] > 1024) { /* no such pattern can exist */
        resp_w_int(cmd_out(s), 0);
        return;
    }
    propose(c, s, 2, nargv, nlen);
}

void cmd_cfg_schema_get(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    (void)argc;
    struct ns *ns = data_ns(c);
    char *text = NULL;
    size_t tlen = 0;
    int rc = ns ? ns_schema_get(ns, argv[1], len[1], &text, &tlen) : RC_NOTFOUND;
    if (rc == RC_OK)
        resp_w_bulk(cmd_out(s), text, tlen);
    else if (rc == RC_NOTFOUND)
        resp_w_null(cmd_out(s), c->proto);
    else
        cmd_reply_rc(s, rc, NULL);
    free(text);
}

struct list_ctx {
    struct resp_buf *out;
    long long n;
};

static bool visit_pattern(void *ud, const char *pat, size_t plen, const char *text,
                          size_t tlen)
{
    (void)text, (void)tlen;
    struct list_ctx *l = ud;
    resp_w_bulk(l->out, pat, plen);
    l->n++;
    return true;
}

void cmd_cfg_schema_list(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    if (argc > 2) {
        resp_w_error(cmd_out(s), "ERR syntax error");
        return;
    }
    struct ns *ns = data_ns(c);
    struct resp_buf tmp;
    resp_buf_init(&tmp);
    struct list_ctx l = {.out = &tmp};
    int rc = ns ? ns_schema_list(ns, argc == 2 ? argv[1] : NULL, argc == 2 ? len[1] : 0,
                                 visit_pattern, &l)
                : RC_OK;
    cmd_reply_listing(s, rc, l.n, &tmp);
}

/* ------------------------------------------------------------------ snapshots */

void cmd_cfg_snapshot(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    if (argc != 2 && !(argc == 4 && EQ(argv[2], "LABEL"))) {
        resp_w_error(cmd_out(s), "ERR syntax error");
        return;
    }
    if (!prefix_ok_or_reply(s, len[1]))
        return;
    if (argc == 4 && len[3] > 1024) {
        resp_w_error(cmd_out(s), "ERR label longer than 1024 bytes");
        return;
    }
    char *nargv[4] = {"CFG.SNAPSHOT", argv[1], "LABEL", argc == 4 ? argv[3] : NULL};
    size_t nlen[4] = {12, len[1], 5, argc == 4 ? len[3] : 0};
    propose(c, s, argc, nargv, nlen);
}

void cmd_cfg_snapshot_del(struct client *c, struct cslot *s, int argc, char **argv,
                          size_t *len)
{
    (void)argc;
    uint64_t id = 0;
    if (!u64_ok_or_reply(s, argv[1], len[1], &id))
        return;
    char *nargv[2] = {"CFG.SNAPSHOT.DEL", argv[1]};
    size_t nlen[2] = {16, len[1]};
    propose(c, s, 2, nargv, nlen);
}

struct snap_ctx {
    struct resp_buf *out;
    int proto;
    long long n;
};

static void put_int_field(struct resp_buf *b, const char *name, unsigned long long v)
{
    resp_w_bulk_str(b, name);
    resp_w_int(b, (long long)v);
}

static bool visit_snapshot(void *ud, const struct ns_snapshot *sn)
{
    struct snap_ctx *x = ud;
    resp_w_map(x->out, x->proto, 6);
    put_int_field(x->out, "id", sn->id);
    resp_w_bulk_str(x->out, "prefix");
    resp_w_bulk(x->out, sn->prefix, sn->prefix_len);
    put_int_field(x->out, "revision", sn->revision);
    resp_w_bulk_str(x->out, "label");
    resp_w_bulk(x->out, sn->label ? sn->label : "", sn->label_len);
    put_int_field(x->out, "time_ms", sn->time_ms);
    resp_w_bulk_str(x->out, "actor");
    resp_w_bulk(x->out, sn->actor, sn->actor_len);
    x->n++;
    return true;
}

void cmd_cfg_snapshots(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    if (argc > 2) {
        resp_w_error(cmd_out(s), "ERR syntax error");
        return;
    }
    struct ns *ns = data_ns(c);
    struct resp_buf tmp;
    resp_buf_init(&tmp);
    struct snap_ctx x = {.out = &tmp, .proto = c->proto};
    int rc = ns ? ns_snapshots(ns, argc == 2 ? argv[1] : NULL, argc == 2 ? len[1] : 0,
                               visit_snapshot, &x)
                : RC_OK;
    cmd_reply_listing(s, rc, x.n, &tmp);
}

/* ------------------------------------------------------------------ rollback */

void cmd_cfg_rollback(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    if (argc > GOV_ARGS_MAX) {
        resp_w_error(cmd_out(s), "ERR syntax error");
        return;
    }
    if (!prefix_ok_or_reply(s, len[1]))
        return;
    char *nargv[GOV_ARGS_MAX] = {"CFG.ROLLBACK", argv[1]};
    size_t nlen[GOV_ARGS_MAX] = {12, len[1]};
    bool target = false, dry = false, reason = false;
    for (int i = 2; i < argc; i++) {
        bool to = EQ(argv[i], "TO"), rev = EQ(argv[i], "REV");
        uint64_t v = 0;
        if ((to || rev) && !target && i + 1 < argc) {
            if (!u64_ok_or_reply(s, argv[i + 1], len[i + 1], &v))
                return;
            nargv[i] = to ? "TO" : "REV";
            nlen[i] = to ? 2 : 3;
            target = true;
        } else if (EQ(argv[i], "DRYRUN") && !dry) {
            nargv[i] = "DRYRUN";
            nlen[i] = 6;
            dry = true;
            continue;
        } else if (EQ(argv[i], "REASON") && !reason && i + 1 < argc) {
            if (len[i + 1] > 1024) {
                resp_w_error(cmd_out(s), "ERR reason longer than 1024 bytes");
                return;
            }
            nargv[i] = "REASON";
            nlen[i] = 6;
            reason = true;
        } else {
            resp_w_error(cmd_out(s), "ERR syntax error");
            return;
        }
        nargv[i + 1] = argv[i + 1];
        nlen[i + 1] = len[i + 1];
        i++;
    }
    propose(c, s, argc, nargv, nlen);
}
