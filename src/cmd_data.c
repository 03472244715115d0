/*
 * cmd_data.c - Redis data commands over the replicated keyspace: GET SET DEL UNLINK EXISTS
 * MGET MSET KEYS SCAN TYPE STRLEN FLUSHALL FLUSHDB.
 *
 * Writes are validated here (arity, options, key length) and proposed normalized (upper
 * case name, UNLINK as DEL, SET options canonical) so bad input never reaches the log; ns
 * decides their replies at apply time. Reads run after the read barrier (client.c).
 *
 * SCAN cursors: the keyspace is ordered, so a scan position is "the next key". Redis
 * clients need a numeric cursor, so the server keeps a bounded table cursor id -> next
 * key (SRV_SCAN_CURSORS_MAX entries). Id = seq * MAX + slot with seq increasing: never 0,
 * not reused until seq wraps. A cursor is consumed when used (the reply carries a fresh
 * one); when the table is full the entry under a rotating hand is evicted, which is the
 * oldest or nearly so. An unknown or evicted cursor answers "-ERR invalid cursor".
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client.h"
#include "commands.h"
#include "glob.h"
#include "node.h"
#include "rc.h"
#include "server.h"

#define EQ(a, b) (strcasecmp((a), (b)) == 0)
#define SCAN_COUNT_MAX 100000

static struct ns *ns_for(struct client *c, const char *key, size_t klen)
{
    struct node *n = c->srv->node;
    return node_ns(n, key ? node_route(n, key, klen) : NODE_GROUP_DATA);
}

/* 1 exists (kv filled if non-NULL), 0 absent, -1 error replied. */
static int lookup_or_reply(struct client *c, struct cslot *s, const char *key, size_t klen,
                           struct ns_kv *kv)
{
    struct ns *ns = ns_for(c, key, klen);
    struct ns_kv tmp;
    memset(&tmp, 0, sizeof tmp);
    int rc = ns ? ns_get(ns, key, klen, &tmp) : RC_NOTFOUND;
    if (rc == RC_NOTFOUND)
        return 0;
    if (rc != RC_OK) {
        cmd_reply_rc(s, rc, NULL);
        return -1;
    }
    if (kv)
        *kv = tmp;
    else
        ns_kv_clear(&tmp);
    return 1;
}

void cmd_get(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    (void)argc;
    struct ns_kv kv;
    int r = lookup_or_reply(c, s, argv[1], len[1], &kv);
    if (r == 0)
        resp_w_null(cmd_out(s), c->proto);
    if (r != 1)
        return;
    resp_w_bulk(cmd_out(s), kv.value, kv.vlen);
    ns_kv_clear(&kv);
}

void cmd_strlen(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    (void)argc;
    struct ns_kv kv;
    int r = lookup_or_reply(c, s, argv[1], len[1], &kv);
    if (r == 0)
        resp_w_int(cmd_out(s), 0);
    if (r != 1)
        return;
    resp_w_int(cmd_out(s), (long long)kv.vlen);
    ns_kv_clear(&kv);
}

void cmd_type(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    (void)argc;
    int r = lookup_or_reply(c, s, argv[1], len[1], NULL);
    if (r >= 0)
        resp_w_simple(cmd_out(s), r ? "string" : "none");
}

void cmd_exists(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    long long n = 0;
    for (int i = 1; i < argc; i++) { /* duplicates count again, as in Redis */
        int r = lookup_or_reply(c, s, argv[i], len[i], NULL);
        if (r < 0)
            return;
        n += r;
    }
    resp_w_int(cmd_out(s), n);
}

void cmd_mget(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    struct resp_buf tmp;
    resp_buf_init(&tmp);
    for (int i = 1; i < argc; i++) {
        struct ns_kv kv;
        struct ns *ns = ns_for(c, argv[i], len[i]);
        int rc = ns ? ns_get(ns, argv[i], len[i], &kv) : RC_NOTFOUND;
        if (rc == RC_OK) {
            resp_w_bulk(&tmp, kv.value, kv.vlen);
            ns_kv_clear(&kv);
        } else if (rc == RC_NOTFOUND) {
            resp_w_null(&tmp, c->proto);
        } else {
            resp_buf_free(&tmp);
            cmd_reply_rc(s, rc, NULL);
            return;
        }
    }
    resp_w_array(cmd_out(s), argc - 1);
    resp_buf_append(cmd_out(s), tmp.data, tmp.len);
    resp_buf_free(&tmp);
}

static bool keys_ok_or_reply(struct cslot *s, int argc, size_t *len, int first, int step)
{
    for (int i = first; i < argc; i += step)
        if (!cmd_key_ok_or_reply(s, len[i]))
            return false;
    return true;
}

/* Propose argv with argv[0] replaced by the canonical name. */
static void propose_as(struct client *c, struct cslot *s, const char *name, int argc,
                       char **argv, size_t *len, int keyi)
{
    char *saved = argv[0];
    size_t saved_len = len[0];
    argv[0] = (char *)name;
    len[0] = strlen(name);
    cmd_propose(c, s, argc, argv, len, keyi); /* node_write copies argv */
    argv[0] = saved;
    len[0] = saved_len;
}

void cmd_set(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    bool nx = false, xx = false, get = false;
    for (int i = 3; i < argc; i++) {
        const char *o = argv[i];
        if (EQ(o, "NX") && !xx) {
            nx = true;
        } else if (EQ(o, "XX") && !nx) {
            xx = true;
        } else if (EQ(o, "GET")) {
            get = true;
        } else if (EQ(o, "EX") || EQ(o, "PX") || EQ(o, "EXAT") || EQ(o, "PXAT") ||
                   EQ(o, "KEEPTTL")) {
            char up[8];
            size_t k = 0;
            for (; o[k] && k < sizeof up - 1; k++)
                up[k] = (char)toupper((unsigned char)o[k]);
            up[k] = '\0';
            resp_w_errorf(cmd_out(s), "ERR config keys do not expire: %s is not supported",
                          up);
            return;
        } else {
            resp_w_error(cmd_out(s), "ERR syntax error");
            return;
        }
    }
    if (!cmd_key_ok_or_reply(s, len[1]))
        return;
    char *nargv[5] = {"SET", argv[1], argv[2], NULL, NULL};
    size_t nlen[5] = {3, len[1], len[2], 0, 0};
    int n = 3;
    if (nx || xx) {
        nargv[n] = nx ? "NX" : "XX";
        nlen[n++] = 2;
    }
    if (get) {
        nargv[n] = "GET";
        nlen[n++] = 3;
    }
    cmd_propose(c, s, n, nargv, nlen, 1);
}

void cmd_del(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    if (keys_ok_or_reply(s, argc, len, 1, 1))
        propose_as(c, s, "DEL", argc, argv, len, 1);
}

void cmd_mset(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    if (argc % 2 == 0) {
        resp_w_error(cmd_out(s), "ERR wrong number of arguments for 'mset' command");
        return;
    }
    if (keys_ok_or_reply(s, argc, len, 1, 2))
        propose_as(c, s, "MSET", argc, argv, len, 1);
}

void cmd_flushall(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    const char *name = s->def->name[5] == 'a' ? "FLUSHALL" : "FLUSHDB";
    if (!c->srv->cfg.enable_flushall) {
        resp_w_errorf(cmd_out(s), "ERR %s is disabled; set enable-flushall yes to allow it",
                      name);
        return;
    }
    if (argc > 2 || (argc == 2 && !EQ(argv[1], "ASYNC") && !EQ(argv[1], "SYNC"))) {
        resp_w_error(cmd_out(s), "ERR syntax error");
        return;
    }
    char *nargv[1] = {"FLUSHALL"};
    size_t nlen[1] = {8};
    (void)len;
    cmd_propose(c, s, 1, nargv, nlen, 0);
}

/* ------------------------------------------------------------------ KEYS / SCAN */

struct match_ctx {
    const char *pat; /* NULL: everything */
    size_t plen;
    bool types_ok;   /* TYPE filter admits strings */
    struct resp_buf *out;
    long long n;
};

static bool visit_match(void *ud, const struct ns_kv *kv)
{
    struct match_ctx *m = ud;
    if (!m->types_ok)
        return true;
    if (m->pat && !glob_match(m->pat, m->plen, kv->key, kv->klen, false))
        return true;
    resp_w_bulk(m->out, kv->key, kv->klen);
    m->n++;
    return true;
}

void cmd_keys(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    (void)argc;
    struct resp_buf tmp;
    resp_buf_init(&tmp);
    struct match_ctx m = {.pat = argv[1], .plen = len[1], .types_ok = true, .out = &tmp};
    size_t pfx = glob_literal_prefix(argv[1], len[1]);
    int rc = ns_scan(ns_for(c, NULL, 0), argv[1], pfx, NULL, 0, 0, false, visit_match, &m,
                     NULL, NULL);
    cmd_reply_listing(s, rc, m.n, &tmp);
}

static uint64_t cursor_put(struct server *srv, char *key_take, size_t klen)
{
    size_t slot = srv->scan_hand;
    for (size_t i = 0; i < SRV_SCAN_CURSORS_MAX; i++) {
        size_t j = (srv->scan_hand + i) % SRV_SCAN_CURSORS_MAX;
        if (srv->scan_cursors_free_hint == 0)
            break;
        if (srv->scans[j].id == 0) {
            slot = j;
            break;
        }
    }
    struct scan_cursor *e = &srv->scans[slot];
    if (e->id == 0)
        srv->scan_cursors_free_hint--;
    free(e->key);
    e->id = srv->scan_seq++ * SRV_SCAN_CURSORS_MAX + slot;
    e->key = key_take;
    e->klen = klen;
    srv->scan_hand = (slot + 1) % SRV_SCAN_CURSORS_MAX;
    return e->id;
}

/* Take the key of cursor id (caller frees); false if unknown. */
static bool cursor_take(struct server *srv, uint64_t id, char **key, size_t *klen)
{
    struct scan_cursor *e = &srv->scans[id % SRV_SCAN_CURSORS_MAX];
    if (id == 0 || e->id != id)
        return false;
    *key = e->key;
    *klen = e->klen;
    e->key = NULL;
    e->id = 0;
    srv->scan_cursors_free_hint++;
    return true;
}

struct scan_args {
    const char *pat;
    size_t plen;
    long long count;
    bool types_ok;
};

static bool scan_parse_or_reply(struct cslot *s, int argc, char **argv, size_t *len,
                                struct scan_args *a)
{
    a->pat = NULL;
    a->plen = 0;
    a->count = 10;
    a->types_ok = true;
    for (int i = 2; i < argc; i += 2) {
        if (i + 1 >= argc) {
            resp_w_error(cmd_out(s), "ERR syntax error");
            return false;
        }
        if (EQ(argv[i], "MATCH")) {
            a->pat = argv[i + 1];
            a->plen = len[i + 1];
        } else if (EQ(argv[i], "COUNT")) {
            if (!cmd_parse_ll(argv[i + 1], len[i + 1], &a->count)) {
                resp_w_error(cmd_out(s), "ERR value is not an integer or out of range");
                return false;
            }
            if (a->count < 1) {
                resp_w_error(cmd_out(s), "ERR syntax error");
                return false;
            }
            if (a->count > SCAN_COUNT_MAX)
                a->count = SCAN_COUNT_MAX;
        } else if (EQ(argv[i], "TYPE")) {
            a->types_ok = EQ(argv[i + 1], "string");
        } else {
            resp_w_error(cmd_out(s), "ERR syntax error");
            return false;
        }
    }
    return true;
}

void cmd_scan(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    struct scan_args a;
    long long cur;
    if (!cmd_parse_ll(argv[1], len[1], &cur) || cur < 0) {
        resp_w_error(cmd_out(s), "ERR invalid cursor");
        return;
    }
    if (!scan_parse_or_reply(s, argc, argv, len, &a))
        return;
    char *start = NULL;
    size_t slen = 0;
    if (cur != 0 && !cursor_take(c->srv, (uint64_t)cur, &start, &slen)) {
        resp_w_error(cmd_out(s), "ERR invalid cursor");
        return;
    }
    struct resp_buf tmp;
    resp_buf_init(&tmp);
    struct match_ctx m = {.pat = a.pat, .plen = a.plen, .types_ok = a.types_ok, .out = &tmp};
    size_t pfx = a.pat ? glob_literal_prefix(a.pat, a.plen) : 0;
    char *next = NULL;
    size_t nlen = 0;
    int rc = ns_scan(ns_for(c, NULL, 0), a.pat, pfx, start, slen, (size_t)a.count, false,
                     visit_match, &m, &next, &nlen);
    free(start);
    if (rc != RC_OK) {
        free(next);
        resp_buf_free(&tmp);
        cmd_reply_rc(s, rc, NULL);
        return;
    }
    uint64_t id = next ? cursor_put(c->srv, next, nlen) : 0;
    resp_w_array(cmd_out(s), 2);
    resp_w_bulk_ll(cmd_out(s), (long long)id);
    resp_w_array(cmd_out(s), m.n);
    resp_buf_append(cmd_out(s), tmp.data, tmp.len);
    resp_buf_free(&tmp);
}

void cmd_dbsize(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    (void)argc;
    (void)argv;
    (void)len;
    struct ns *ns = ns_for(c, NULL, 0);
    resp_w_int(cmd_out(s), ns ? (long long)ns_key_count(ns) : 0);
}
