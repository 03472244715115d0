/*
 * cmd_audit.c - CFG.AUDIT, CFG.AUDIT.VERIFY and CFG.WATCH (docs/commands-cfg.md,
 * docs/governance.md).
 *
 * CFG.AUDIT prefix [COUNT n] [SINCE rev] [ACTOR a]: the audit records with revision > SINCE
 * (default 0) that touched a key under prefix (or whose subject - schema pattern, snapshot
 * id, rollback prefix - begins with it), OLDEST FIRST, at most COUNT (default 100, max
 * 10,000); page on by passing the last revision as SINCE. Linearizable (read barrier).
 *
 * CFG.WATCH prefix FROM rev [COUNT n] [BLOCK ms]: every key change under prefix with
 * revision > rev, in revision order, from the audit records: an array of changes
 * {key, type: set|del, value (nil for del), revision} (RESP2: flat arrays). At most COUNT
 * changes (default 1000, max 10,000), but whole revisions only: a revision is never split
 * (a revision with more matching changes than COUNT is returned whole, alone). No change:
 * nil (a null array in RESP2, like XREAD); with BLOCK ms the client waits until a change
 * under the prefix is applied on this node or ms pass (BLOCK 0: no timeout), then nil.
 * rev below the retained audit: -COMPACTED oldest=<oldest retained revision> (FROM must be
 * >= oldest - 1). A read barrier first (unless READONLY), so the reply holds every change
 * the cluster committed before the command; served from this node's applied state.
 *
 * A waiting watch keeps its slot pending (state SLOT_WRITING, counted in both
 * pending_writes and pending_reads), so no later command of the client starts before it
 * answers, and replies stay in order (client.c's rules). Watches live in s->audit->watches
 * from the command until the reply; one whose client went away is found by its client id
 * (ids are never reused) at the next tick or wake-up and dropped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "audit_sink.h"
#include "client.h"
#include "commands.h"
#include "node.h"
#include "rc.h"
#include "server.h"

#define EQ(a, b) (strcasecmp((a), (b)) == 0)
#define AUDIT_COUNT_DEFAULT 100
#define AUDIT_COUNT_MAX 10000
#define WATCH_COUNT_DEFAULT 1000
#define WATCH_COUNT_MAX 10000
/* Records one call may read (limits on everything: a FROM/SINCE far back must not stall
 * the loop). CFG.AUDIT answers what it found within the budget; a watch that found
 * nothing moves its FROM past the records it read (none matched) and goes on reading in
 * the next loop turns. */
#define AUDIT_SCAN_MAX 200000
#define WATCH_SCAN_MAX 20000
#define WATCH_BLOCK_MS_MAX (24ll * 3600 * 1000)
#define WATCHES_MAX 100000u

static bool has_prefix(const char *s, size_t n, const char *p, size_t plen)
{
    return s && n >= plen && (plen == 0 || memcmp(s, p, plen) == 0);
}

/* "<word> n" at argv[i] with 0 <= n <= max. */
static bool num_arg_or_reply(struct cslot *s, char **argv, size_t *len, int i, long long max,
                             long long *out)
{
    if (!cmd_parse_ll(argv[i + 1], len[i + 1], out) || *out < 0 || *out > max) {
        resp_w_errorf(cmd_out(s), "ERR %s must be an integer in 0..%lld", argv[i], max);
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------ CFG.AUDIT */

struct audit_q {
    struct resp_buf *out;
    int proto;
    const char *prefix, *actor;
    size_t plen, alen;
    long long count, n;
    long long scanned;
};

static void put_int(struct resp_buf *b, const char *name, unsigned long long v)
{
    resp_w_bulk_str(b, name);
    resp_w_int(b, (long long)v);
}

static void put_opt(struct resp_buf *b, int proto, const char *name, const char *p, size_t n,
                    bool present)
{
    resp_w_bulk_str(b, name);
    if (present)
        resp_w_bulk(b, p, n);
    else
        resp_w_null(b, proto);
}

static void put_change(struct audit_q *q, const struct ns_audit_change *c)
{
    struct resp_buf *b = q->out;
    resp_w_map(b, q->proto, 6);
    put_opt(b, q->proto, "key", c->key, c->klen, true);
    put_opt(b, q->proto, "op", c->present ? "set" : "del", 3, true);
    put_opt(b, q->proto, "old", c->old, c->old_len, c->had_old);
    put_opt(b, q->proto, "new", c->val, c->vlen, c->present);
    put_int(b, "version", c->version);
    resp_w_bulk_str(b, "paths");
    char **paths = NULL;
    size_t np = 0;
    if (c->had_old && c->present &&
        audit_json_paths(c->old, c->old_len, c->val, c->vlen, &paths, &np)) {
        resp_w_array(b, (long long)np);
        for (size_t i = 0; i < np; i++)
            resp_w_bulk_str(b, paths[i]);
        audit_paths_free(paths, np);
    } else {
        resp_w_null(b, q->proto);
    }
}

static bool audit_visit(void *ud, const struct ns_audit_rec *a)
{
    struct audit_q *q = ud;
    if (++q->scanned > AUDIT_SCAN_MAX)
        return false;
    if (q->actor && (a->actor_len != q->alen || memcmp(a->actor, q->actor, q->alen) != 0))
        return true;
    long long nmatch = 0;
    size_t off = 0;
    struct ns_audit_change c;
    while (ns_audit_change_next(a, &off, &c))
        nmatch += has_prefix(c.key, c.klen, q->prefix, q->plen);
    if (nmatch == 0 && !has_prefix(a->subject, a->subject_len, q->prefix, q->plen))
        return true;
    struct resp_buf *b = q->out;
    resp_w_map(b, q->proto, 10);
    put_int(b, "revision", a->revision);
    put_int(b, "index", a->index);
    put_int(b, "term", a->term);
    put_int(b, "time_ms", a->time_ms);
    put_opt(b, q->proto, "actor", a->actor, a->actor_len, true);
    put_opt(b, q->proto, "client", a->client, a->client_len, true);
    put_opt(b, q->proto, "op", a->op, a->op_len, true);
    put_opt(b, q->proto, "subject", a->subject, a->subject_len, a->subject != NULL);
    put_opt(b, q->proto, "detail", a->detail, a->detail_len, a->detail != NULL);
    resp_w_bulk_str(b, "changes");
    resp_w_array(b, nmatch);
    off = 0;
    while (ns_audit_change_next(a, &off, &c))
        if (has_prefix(c.key, c.klen, q->prefix, q->plen))
            put_change(q, &c);
    return ++q->n < q->count;
}

void cmd_cfg_audit(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    struct audit_q q = {.proto = c->proto, .prefix = argv[1], .plen = len[1],
                        .count = AUDIT_COUNT_DEFAULT};
    long long since = 0;
    for (int i = 2; i < argc; i += 2) {
        if (i + 1 >= argc) {
            resp_w_error(cmd_out(s), "ERR syntax error");
            return;
        }
        if (EQ(argv[i], "COUNT")) {
            if (!num_arg_or_reply(s, argv, len, i, AUDIT_COUNT_MAX, &q.count))
                return;
            if (q.count == 0)
                q.count = AUDIT_COUNT_DEFAULT;
        } else if (EQ(argv[i], "SINCE")) {
            if (!num_arg_or_reply(s, argv, len, i, INT64_MAX - 1, &since))
                return;
        } else if (EQ(argv[i], "ACTOR")) {
            q.actor = argv[i + 1];
            q.alen = len[i + 1];
        } else {
            resp_w_error(cmd_out(s), "ERR syntax error");
            return;
        }
    }
    struct node *n = c->srv->node;
    struct ns *ns = node_ns(n, node_route(n, argv[1], len[1]));
    struct resp_buf tmp;
    resp_buf_init(&tmp);
    q.out = &tmp;
    uint64_t oldest = 0;
    int rc = ns ? ns_audit_scan(ns, (uint64_t)since + 1, audit_visit, &q, &oldest) : RC_OK;
    if (rc == RC_COMPACTED) { /* pruned records: list from the oldest retained one */
        rc = ns_audit_scan(ns, oldest, audit_visit, &q, &oldest);
    }
    cmd_reply_listing(s, rc, q.n, &tmp);
}

/* ------------------------------------------------------------------ CFG.AUDIT.VERIFY */

void cmd_cfg_audit_verify(struct client *c, struct cslot *s, int argc, char **argv,
                          size_t *len)
{
    long long g = NODE_GROUP_DATA;
    if (argc > 2) {
        resp_w_error(cmd_out(s), "ERR syntax error");
        return;
    }
    if (argc == 2 && (!cmd_parse_ll(argv[1], len[1], &g) || g < 0 || g > UINT32_MAX)) {
        resp_w_error(cmd_out(s), "ERR group must be a group id");
        return;
    }
    struct ns *ns = node_ns(c->srv->node, (uint32_t)g);
    if (!ns) {
        resp_w_errorf(cmd_out(s), "ERR unknown group %lld", g);
        return;
    }
    struct ns_audit_verify v;
    int rc = ns_audit_verify(ns, &v);
    if (rc != RC_OK) {
        cmd_reply_rc(s, rc, NULL);
        return;
    }
    struct resp_buf *b = cmd_out(s);
    resp_w_map(b, c->proto, 4);
    put_int(b, "ok", v.ok ? 1 : 0);
    put_int(b, "records", v.records);
    resp_w_bulk_str(b, "first_break");
    if (v.ok)
        resp_w_null(b, c->proto);
    else
        resp_w_int(b, (long long)v.first_break);
    put_opt(b, c->proto, "reason", v.reason, strlen(v.reason), !v.ok);
}

/* ------------------------------------------------------------------ CFG.WATCH */

enum watch_phase { W_BARRIER, W_WAIT };

struct watch {
    struct watch *next;
    struct server *srv;
    struct client *c;
    struct cslot *s;
    uint64_t client_id;
    uint32_t group;
    uint8_t phase;
    char *prefix;
    size_t plen;
    uint64_t from;        /* changes with revision > from */
    long long count;
    bool block;
    uint64_t deadline_ms; /* monotonic; 0: none */
    uint64_t checked_rev; /* revisions up to this one hold no change for the watch */
    bool in_handler;      /* answered inside cmd_cfg_watch: exec_slot completes the slot */
    bool scan_more;       /* the last read stopped at WATCH_SCAN_MAX with nothing found */
};

struct watch_q {
    struct resp_buf *out;
    int proto;
    const struct watch *w;
    long long count, n;
    uint64_t cur_rev; /* revision being collected */
    struct resp_buf rev_buf;
    long long rev_n;
    bool full;
    long long scanned;
    bool more; /* stopped by WATCH_SCAN_MAX before the newest record */
};

static void put_watch_change(struct resp_buf *b, int proto, const struct ns_audit_change *c,
                             uint64_t rev)
{
    resp_w_map(b, proto, 4);
    put_opt(b, proto, "key", c->key, c->klen, true);
    put_opt(b, proto, "type", c->present ? "set" : "del", 3, true);
    put_opt(b, proto, "value", c->val, c->vlen, c->present);
    put_int(b, "revision", rev);
}

/* Collect whole revisions: a revision's changes go to the output only if they all fit, or
 * if the output is still empty (a revision is never split). */
static bool watch_visit(void *ud, const struct ns_audit_rec *a)
{
    struct watch_q *q = ud;
    if (q->scanned++ >= WATCH_SCAN_MAX) {
        q->more = true;
        return false;
    }
    q->rev_buf.len = 0;
    q->rev_n = 0;
    size_t off = 0;
    struct ns_audit_change c;
    while (ns_audit_change_next(a, &off, &c)) {
        if (!has_prefix(c.key, c.klen, q->w->prefix, q->w->plen))
            continue;
        put_watch_change(&q->rev_buf, q->proto, &c, a->revision);
        q->rev_n++;
    }
    q->cur_rev = a->revision;
    if (q->rev_n == 0)
        return true;
    if (q->n > 0 && q->n + q->rev_n > q->count) {
        q->full = true;
        return false;
    }
    resp_buf_append(q->out, q->rev_buf.data, q->rev_buf.len);
    q->n += q->rev_n;
    return q->n < q->count;
}

/* Build the reply into b: RC_OK with *n changes (0: nothing yet), RC_COMPACTED (error
 * written), or a store error. */
static int watch_collect(struct watch *w, struct ns *ns, struct resp_buf *b, long long *n)
{
    struct resp_buf tmp;
    resp_buf_init(&tmp);
    struct watch_q q = {.out = &tmp, .proto = w->c->proto, .w = w, .count = w->count};
    resp_buf_init(&q.rev_buf);
    uint64_t oldest = 0;
    int rc = ns_audit_scan(ns, w->from + 1, watch_visit, &q, &oldest);
    *n = q.n;
    if (rc == RC_COMPACTED) {
        char msg[48];
        snprintf(msg, sizeof msg, "oldest=%llu", (unsigned long long)oldest);
        resp_w_errorf(b, "%s %s", rc_prefix(RC_COMPACTED), msg);
    } else if (rc != RC_OK) {
        resp_w_errorf(b, "%s %s", rc_prefix(rc), rc_message(rc));
    } else if (q.n > 0) {
        resp_w_array(b, q.n);
        resp_buf_append(b, tmp.data, tmp.len);
    }
    if (rc == RC_OK && q.n == 0 && q.more) {
        /* Nothing under the prefix in the records read so far: skip them for good and
         * read on in the next turns (the timer serves a watch whose checked_rev is
         * behind the group's revision). */
        w->from = q.cur_rev;
        w->checked_rev = q.cur_rev;
        w->scan_more = true;
    } else if (rc == RC_OK && q.n == 0) {
        w->checked_rev = ns_revision(ns);
        w->scan_more = false;
    }
    resp_buf_free(&tmp);
    resp_buf_free(&q.rev_buf);
    return rc;
}

static void watch_unlink(struct watch *w)
{
    struct audit_svc *a = w->srv->audit;
    for (struct watch **pp = &a->watches; *pp; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            a->n_watches--;
            break;
        }
    }
    if (!a->watches)
        audit_timer_arm(w->srv, false);
    free(w->prefix);
    free(w);
}

/* The slot's reply is in s->out: complete it (as client.c's slot_done) and drop w. */
static void watch_finish(struct watch *w)
{
    struct cslot *s = w->s;
    struct client *c = w->c;
    c->pending_writes--;
    c->pending_reads--;
    if (w->in_handler) { /* exec_slot calls slot_done when the handler returns */
        s->state = SLOT_QUEUED;
        watch_unlink(w);
        return;
    }
    s->state = SLOT_DONE;
    s->handle = 0;
    c->unflushed_bytes += s->out.len;
    resp_cmd_free(s->cmd);
    s->cmd = NULL;
    srv_mark_dirty(c->srv, c);
    watch_unlink(w);
}

/* Answer now if there is something (or no BLOCK): true (w is freed); otherwise wait. */
static bool watch_serve(struct watch *w, bool may_wait)
{
    struct ns *ns = node_ns(w->srv->node, w->group);
    long long n = 0;
    int rc = ns ? watch_collect(w, ns, &w->s->out, &n) : RC_OK;
    if (rc == RC_OK && n == 0 && (w->block || w->scan_more) && may_wait) {
        w->phase = W_WAIT;
        return false;
    }
    if (rc == RC_OK && n == 0)
        resp_w_null_array(&w->s->out, w->c->proto);
    watch_finish(w);
    return true;
}

static void on_watch_barrier(void *ud, int rc, struct ns_reply *r)
{
    struct watch *w = ud;
    w->s->handle = 0;
    if (rc != RC_OK) {
        if (r && r->type == NS_R_ERR && r->str)
            cmd_reply_rc(w->s, r->rc ? r->rc : rc, r->str);
        else
            cmd_reply_rc(w->s, rc, NULL);
        watch_finish(w);
    } else {
        (void)watch_serve(w, true);
    }
    if (r)
        ns_reply_free(r);
}

static bool watch_parse_or_reply(struct cslot *s, int argc, char **argv, size_t *len,
                                 struct watch *w, long long *block_ms)
{
    long long from = -1;
    for (int i = 2; i < argc; i += 2) {
        long long v = 0;
        if (i + 1 >= argc) {
            resp_w_error(cmd_out(s), "ERR syntax error");
            return false;
        }
        bool ok = EQ(argv[i], "FROM") || EQ(argv[i], "COUNT") || EQ(argv[i], "BLOCK");
        if (!ok) {
            resp_w_error(cmd_out(s), "ERR syntax error");
            return false;
        }
        long long max = EQ(argv[i], "FROM")    ? INT64_MAX - 1
                        : EQ(argv[i], "COUNT") ? WATCH_COUNT_MAX
                                               : WATCH_BLOCK_MS_MAX;
        if (!num_arg_or_reply(s, argv, len, i, max, &v))
            return false;
        if (EQ(argv[i], "FROM"))
            from = v;
        else if (EQ(argv[i], "COUNT"))
            w->count = v ? v : WATCH_COUNT_DEFAULT;
        else {
            w->block = true;
            *block_ms = v;
        }
    }
    if (from < 0) {
        resp_w_error(cmd_out(s), "ERR FROM revision is required");
        return false;
    }
    w->from = (uint64_t)from;
    return true;
}

void cmd_cfg_watch(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    struct audit_svc *a = c->srv->audit;
    struct watch *w = calloc(1, sizeof *w);
    long long block_ms = 0;
    if (!w || a->n_watches >= WATCHES_MAX) {
        free(w);
        cmd_reply_rc(s, RC_OVERLOAD, "too many watches in flight");
        return;
    }
    w->count = WATCH_COUNT_DEFAULT;
    if (!watch_parse_or_reply(s, argc, argv, len, w, &block_ms)) {
        free(w);
        return;
    }
    w->prefix = malloc(len[1] + 1);
    if (!w->prefix) {
        free(w);
        cmd_reply_rc(s, RC_NOMEM, NULL);
        return;
    }
    memcpy(w->prefix, argv[1], len[1]);
    w->plen = len[1];
    w->srv = c->srv;
    w->c = c;
    w->s = s;
    w->client_id = c->id;
    w->group = node_route(c->srv->node, argv[1], len[1]);
    w->deadline_ms = w->block && block_ms > 0 ? srv_mono_ms() + (uint64_t)block_ms : 0;
    w->next = a->watches;
    a->watches = w;
    a->n_watches++;
    audit_timer_arm(c->srv, true); /* timeouts, and sweeping watches whose client left */
    /* Pending from here on: nothing after it starts until it answers (see the top). */
    s->state = SLOT_WRITING;
    c->pending_writes++;
    c->pending_reads++;
    w->in_handler = true;
    if (c->readonly) {
        if (!watch_serve(w, true))
            w->in_handler = false; /* waiting */
        return;
    }
    int rc = RC_OK;
    uint64_t h = node_read_barrier(c->srv->node, w->group, srv_mono_ms(), on_watch_barrier, w,
                                   &rc);
    if (h == 0) {
        cmd_reply_rc(s, rc ? rc : RC_NOMEM, NULL);
        watch_finish(w);
        return;
    }
    w->in_handler = false;
    s->handle = h;
}

/* Is w's client still there (the same one: ids are never reused)? With live_only, one
 * being closed counts as gone. */
static bool watch_client_ok(const struct watch *w, bool live_only)
{
    for (const struct client *c = w->srv->clients; c; c = c->next)
        if (c == w->c && c->id == w->client_id)
            return !live_only || !c->close_asap;
    return false;
}

static bool watch_alive(const struct watch *w) { return watch_client_ok(w, true); }

static bool rec_matches(const struct watch *w, const struct ns_audit_rec *a)
{
    size_t off = 0;
    struct ns_audit_change c;
    while (ns_audit_change_next(a, &off, &c))
        if (has_prefix(c.key, c.klen, w->prefix, w->plen))
            return true;
    return false;
}

void audit_watch_on_apply(struct server *s, uint32_t group, struct ns *ns,
                          const struct ns_audit_rec *a)
{
    (void)ns;
    struct watch *next;
    for (struct watch *w = s->audit->watches; w; w = next) {
        next = w->next;
        if (w->phase != W_WAIT || w->group != group || a->revision <= w->from)
            continue;
        if (!watch_alive(w)) {
            watch_unlink(w);
        } else if (rec_matches(w, a) || a->revision > w->checked_rev + 1) {
            (void)watch_serve(w, true); /* a gap since the last check: read the store */
        } else {
            w->checked_rev = a->revision;
        }
    }
}

void audit_watch_tick(struct server *s)
{
    uint64_t now = srv_mono_ms();
    struct watch *next;
    for (struct watch *w = s->audit->watches; w; w = next) {
        next = w->next;
        if (w->phase != W_WAIT) {
            /* Its client was freed: the barrier was cancelled, no callback will come. */
            if (!watch_client_ok(w, false))
                watch_unlink(w);
            continue;
        }
        struct ns *ns = node_ns(s->node, w->group);
        if (!watch_alive(w)) {
            watch_unlink(w);
        } else if (ns && ns_revision(ns) > w->checked_rev) {
            /* changes that arrived without an apply (snapshot install) */
            (void)watch_serve(w, !(w->deadline_ms && now >= w->deadline_ms));
        } else if (w->deadline_ms && now >= w->deadline_ms) {
            resp_w_null_array(&w->s->out, w->c->proto);
            watch_finish(w);
        }
    }
}

void audit_watch_free_all(struct server *s)
{
    struct audit_svc *a = s->audit;
    while (a->watches) {
        struct watch *w = a->watches;
        a->watches = w->next;
        free(w->prefix);
        free(w);
    }
    a->n_watches = 0;
}
