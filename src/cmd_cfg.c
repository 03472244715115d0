/*
 * cmd_cfg.c - raftconf's own configuration-key commands: CFG.SET CFG.GET CFG.DEL CFG.LIST
 * CFG.HISTORY.
 *
 * CFG.SET/CFG.DEL are validated here and proposed in canonical form
 * ("CFG.SET key value [IFVERSION n]"); the compare-and-set on the version is decided by ns
 * at apply time (IFVERSION 0 = "must not exist"), so every replica agrees.
 * CFG.GET replies the value with its metadata: a map in RESP3, the same pairs as a flat
 * array in RESP2, nil when absent; with REV r the same shape for the key as of revision r
 * (history, src/ns/ns_history.c; -COMPACTED oldest=<rev> when that version was pruned).
 * CFG.HISTORY lists a key's retained versions newest first, one map (RESP2: flat array)
 * per version; BEFORE pages. CFG.LIST pages in key order: reply
 * [next-after-or-nil, [k1, v1, k2, v2, ...]]; pass the first element as AFTER to continue.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client.h"
#include "commands.h"
#include "node.h"
#include "rc.h"
#include "server.h"

#define EQ(a, b) (strcasecmp((a), (b)) == 0)
#define CFG_LIST_COUNT_DEFAULT 100
#define CFG_LIST_COUNT_MAX 10000
#define CFG_HISTORY_COUNT_DEFAULT 100
#define CFG_HISTORY_COUNT_MAX 1000

/* argv[i], argv[i+1] must be "IFVERSION n" with n >= 0. */
static bool ifversion_ok_or_reply(struct cslot *s, char **argv, size_t *len, int i)
{
    long long v;
    if (!EQ(argv[i], "IFVERSION")) {
        resp_w_error(cmd_out(s), "ERR syntax error");
        return false;
    }
    if (!cmd_parse_ll(argv[i + 1], len[i + 1], &v) || v < 0) {
        resp_w_error(cmd_out(s), "ERR value is not an integer or out of range");
        return false;
    }
    return true;
}

static void propose_cfg(struct client *c, struct cslot *s, const char *name, int argc,
                        char **argv, size_t *len)
{
    char *nargv[5];
    size_t nlen[5];
    nargv[0] = (char *)name;
    nlen[0] = strlen(name);
    for (int i = 1; i < argc; i++) {
        nargv[i] = argv[i];
        nlen[i] = len[i];
    }
    if (argc >= 4) { /* canonical option name */
        nargv[argc - 2] = "IFVERSION";
        nlen[argc - 2] = 9;
    }
    cmd_propose(c, s, argc, nargv, nlen, 1);
}

void cmd_cfg_set(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    if (argc != 3 && argc != 5) {
        resp_w_error(cmd_out(s), argc == 4 ? "ERR syntax error"
                                           : "ERR wrong number of arguments for 'cfg.set' "
                                             "command");
        return;
    }
    if (argc == 5 && !ifversion_ok_or_reply(s, argv, len, 3))
        return;
    if (!cmd_key_ok_or_reply(s, len[1]))
        return;
    propose_cfg(c, s, "CFG.SET", argc, argv, len);
}

void cmd_cfg_del(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    if (argc != 2 && argc != 4) {
        resp_w_error(cmd_out(s), argc == 3 ? "ERR syntax error"
                                           : "ERR wrong number of arguments for 'cfg.del' "
                                             "command");
        return;
    }
    if (argc == 4 && !ifversion_ok_or_reply(s, argv, len, 2))
        return;
    if (!cmd_key_ok_or_reply(s, len[1]))
        return;
    propose_cfg(c, s, "CFG.DEL", argc, argv, len);
}

static void put_field(struct resp_buf *b, const char *name, unsigned long long v)
{
    resp_w_bulk_str(b, name);
    resp_w_int(b, (long long)v);
}

/* argv[i], argv[i+1] must be "<word> n" with n a non-negative integer. */
static bool rev_arg_or_reply(struct cslot *s, char **argv, size_t *len, int i,
                             const char *word, uint64_t *out)
{
    long long v;
    if (!EQ(argv[i], word)) {
        resp_w_error(cmd_out(s), "ERR syntax error");
        return false;
    }
    if (!cmd_parse_ll(argv[i + 1], len[i + 1], &v) || v < 0) {
        resp_w_error(cmd_out(s), "ERR value is not an integer or out of range");
        return false;
    }
    *out = (uint64_t)v;
    return true;
}

static void put_kv(struct resp_buf *b, int proto, const struct ns_kv *kv)
{
    resp_w_map(b, proto, 5);
    resp_w_bulk_str(b, "value");
    resp_w_bulk(b, kv->value, kv->vlen);
    put_field(b, "version", kv->version);
    put_field(b, "create_revision", kv->create_rev);
    put_field(b, "mod_revision", kv->mod_rev);
    put_field(b, "mtime_ms", kv->mtime_ms);
}

void cmd_cfg_get(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    if (argc != 2 && argc != 4) {
        resp_w_error(cmd_out(s), "ERR syntax error");
        return;
    }
    uint64_t rev = 0;
    if (argc == 4 && !rev_arg_or_reply(s, argv, len, 2, "REV", &rev))
        return;
    struct node *n = c->srv->node;
    struct ns *ns = node_ns(n, node_route(n, argv[1], len[1]));
    struct resp_buf *b = cmd_out(s);
    uint64_t cur = ns ? ns_revision(ns) : 0;
    if (argc == 4 && rev > cur) {
        resp_w_errorf(b, "ERR revision %llu is in the future; current revision is %llu",
                      (unsigned long long)rev, (unsigned long long)cur);
        return;
    }
    struct ns_kv kv;
    uint64_t oldest = 0;
    int rc = !ns ? RC_NOTFOUND
             : argc == 4 ? ns_get_at(ns, argv[1], len[1], rev, &kv, &oldest)
                         : ns_get(ns, argv[1], len[1], &kv);
    if (rc == RC_NOTFOUND) {
        resp_w_null(b, c->proto);
    } else if (rc == RC_COMPACTED) {
        char msg[48];
        snprintf(msg, sizeof msg, "oldest=%llu", (unsigned long long)oldest);
        cmd_reply_rc(s, RC_COMPACTED, msg);
    } else if (rc != RC_OK) {
        cmd_reply_rc(s, rc, NULL);
    } else {
        put_kv(b, c->proto, &kv);
        ns_kv_clear(&kv);
    }
}

struct hist_ctx {
    struct resp_buf *out;
    int proto;
    long long n;
};

static bool visit_version(void *ud, const struct ns_version *v)
{
    struct hist_ctx *h = ud;
    resp_w_map(h->out, h->proto, 6);
    put_field(h->out, "revision", v->revision);
    put_field(h->out, "version", v->version);
    resp_w_bulk_str(h->out, "type");
    resp_w_bulk_str(h->out, v->deleted ? "del" : "set");
    resp_w_bulk_str(h->out, "value");
    if (v->deleted)
        resp_w_null(h->out, h->proto);
    else
        resp_w_bulk(h->out, v->value, v->vlen);
    put_field(h->out, "mtime_ms", v->mtime_ms);
    resp_w_bulk_str(h->out, "actor");
    resp_w_bulk(h->out, v->actor, v->actor_len);
    h->n++;
    return true;
}

void cmd_cfg_history(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    uint64_t count = CFG_HISTORY_COUNT_DEFAULT, before = 0;
    for (int i = 2; i < argc; i += 2) {
        if (i + 1 >= argc) {
            resp_w_error(cmd_out(s), "ERR syntax error");
            return;
        }
        bool is_count = EQ(argv[i], "COUNT");
        uint64_t *dst = is_count ? &count : &before;
        if (!rev_arg_or_reply(s, argv, len, i, is_count ? "COUNT" : "BEFORE", dst))
            return;
        if (is_count && (count < 1 || count > CFG_HISTORY_COUNT_MAX)) {
            resp_w_errorf(cmd_out(s), "ERR COUNT must be an integer in 1..%d",
                          CFG_HISTORY_COUNT_MAX);
            return;
        }
        if (!is_count && before < 1) {
            resp_w_error(cmd_out(s), "ERR BEFORE must be a revision >= 1");
            return;
        }
    }
    struct node *n = c->srv->node;
    struct ns *ns = node_ns(n, node_route(n, argv[1], len[1]));
    struct resp_buf tmp;
    resp_buf_init(&tmp);
    struct hist_ctx h = {.out = &tmp, .proto = c->proto};
    int rc = ns ? ns_history(ns, argv[1], len[1], before, (size_t)count, visit_version, &h)
                : RC_OK;
    cmd_reply_listing(s, rc, h.n, &tmp);
}

struct list_ctx {
    struct resp_buf *out;
    long long n;
    char *last;
    size_t last_len;
};

static bool visit_list(void *ud, const struct ns_kv *kv)
{
    struct list_ctx *l = ud;
    resp_w_bulk(l->out, kv->key, kv->klen);
    resp_w_bulk(l->out, kv->value ? kv->value : "", kv->vlen);
    l->n++;
    free(l->last);
    l->last = malloc(kv->klen + 1);
    if (l->last) {
        memcpy(l->last, kv->key, kv->klen);
        l->last_len = kv->klen;
    }
    return true;
}

void cmd_cfg_list(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    long long count = CFG_LIST_COUNT_DEFAULT;
    const char *after = NULL;
    size_t after_len = 0;
    for (int i = 2; i < argc; i += 2) {
        if (i + 1 >= argc) {
            resp_w_error(cmd_out(s), "ERR syntax error");
            return;
        }
        if (EQ(argv[i], "COUNT")) {
            if (!cmd_parse_ll(argv[i + 1], len[i + 1], &count) || count < 1 ||
                count > CFG_LIST_COUNT_MAX) {
                resp_w_errorf(cmd_out(s), "ERR COUNT must be an integer in 1..%d",
                              CFG_LIST_COUNT_MAX);
                return;
            }
        } else if (EQ(argv[i], "AFTER")) {
            after = argv[i + 1];
            after_len = len[i + 1];
        } else {
            resp_w_error(cmd_out(s), "ERR syntax error");
            return;
        }
    }
    /* Start strictly after AFTER: the smallest key greater than it is AFTER + "\0". */
    char *start = NULL;
    if (after && !(start = malloc(after_len + 1))) {
        cmd_reply_rc(s, RC_NOMEM, NULL);
        return;
    }
    if (start) {
        memcpy(start, after, after_len);
        start[after_len] = '\0';
    }
    struct resp_buf tmp;
    resp_buf_init(&tmp);
    struct list_ctx l = {.out = &tmp};
    char *next = NULL;
    size_t next_len = 0;
    int rc = ns_scan(node_ns(c->srv->node, NODE_GROUP_DATA), argv[1], len[1], start,
                     start ? after_len + 1 : 0, (size_t)count, true, visit_list, &l, &next,
                     &next_len);
    free(start);
    if (rc != RC_OK) {
        cmd_reply_rc(s, rc, NULL);
    } else {
        resp_w_array(cmd_out(s), 2);
        if (next && l.last)
            resp_w_bulk(cmd_out(s), l.last, l.last_len);
        else
            resp_w_null(cmd_out(s), c->proto);
        resp_w_array(cmd_out(s), 2 * l.n);
        resp_buf_append(cmd_out(s), tmp.data, tmp.len);
    }
    free(next);
    free(l.last);
    resp_buf_free(&tmp);
}
