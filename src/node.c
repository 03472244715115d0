/*
 * node.c - the I/O-free core of a raftconf node (API and outcomes in node.h).
 *
 * One loop turn (node_run), DESIGN.md "The write path" step 6:
 *   1. take every group's Ready; add hard state, entries and snapshot metadata of ALL groups
 *      (plus a pending log compaction) to ONE pst batch;
 *   2. ONE pst_write, synced when any group must sync (new entries, term/vote, compaction),
 *      unsynced when only the commit index moved, skipped when empty;
 *   3. send messages (only now: Raft paper 5.1 / etcd Ready contract, persist before send);
 *   4. apply committed entries through ns, complete the writes they answer, record forwarded
 *      proposal outcomes and read indexes, note leader changes;
 *   5. raft_advance every group; then finish read barriers (applied >= read index), fail
 *      writes whose index was applied with another entry, retry queued requests when a
 *      leader appeared, and decide log compaction for the next turn.
 *
 * Invariants:
 *  - every request is in the handle hash and the request list until it completes; a
 *    completed request's callback ran exactly once, unless cancelled (then never);
 *  - a write is proposed to Raft again only after Raft said it was NOT appended (NO_LEADER,
 *    or a forwarded proposal rejected): an entry never enters the log twice from here;
 *  - a write completes RC_OK only when the entry at its (index, term) carrying its request
 *    id was applied (or, forwarded with index unknown, when its request id was applied);
 *    another entry applied at its index means "not applied" (RC_TRYAGAIN); otherwise only
 *    the deadline answers (RC_TIMEOUT, outcome unknown);
 *  - log compaction records the snapshot in a SYNCED batch written after the state-machine
 *    writes it covers (LevelDB's log is ordered, so they are durable first), then calls
 *    raft_compact.
 */
#include "node.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node_entry.h"
#include "node_log.h"
#include "rc.h"

#define NODE_ASSERT(cond)                                                            \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "node: assertion failed: %s (%s:%d)\n", #cond, __FILE__, \
                    __LINE__);                                                       \
            abort();                                                                 \
        }                                                                            \
    } while (0)

#define NODE_PENDING_MAX_LIMIT 1000000u
#define RID_SEQ_BITS 48
#define RID_SEQ_MASK ((UINT64_C(1) << RID_SEQ_BITS) - 1)

enum req_kind { REQ_WRITE = 1, REQ_READ = 2 };
enum req_state {
    RS_QUEUED = 1, /* not in Raft: no leader known; retried on tick and leader change */
    RS_FORWARDED,  /* write: forwarded to the leader, index not known yet */
    RS_APPENDED,   /* write: appended at (index, term) */
    RS_ASKED,      /* read: raft_read_index called, waiting for the read state */
    RS_WAIT_APPLY, /* read: read index known, waiting for applied >= index */
};

struct req {
    uint64_t handle; /* == the entry's request id for writes */
    struct req *hnext;
    struct req *prev, *next;
    uint8_t kind, state;
    bool cancelled;
    uint32_t group;
    int last_err; /* raft error of the last failed attempt */
    uint64_t deadline_ms;
    node_done_fn fn;
    void *ud;
    uint8_t *data; /* write: the envelope, kept until appended */
    size_t len;
    raft_index index;
    raft_term term;
};

struct group {
    uint32_t id;
    struct raft *raft;
    struct ns *ns;
    struct node_log log;
    struct raft_ready rd;
    bool in_ready;
    bool retry; /* a leader appeared: retry queued requests after this turn */
    raft_id leader;
    enum raft_role role;
    struct raft_conf conf; /* as of the applied index */
    bool compact_pending;  /* write the snapshot meta in the next batch */
    bool compact_written;  /* written: call raft_compact after advance */
    struct raft_snapshot_meta compact;
};

struct node {
    struct pst_engine *e;
    struct node_config cfg;
    struct group g[NODE_GROUPS];
    node_send_fn send;
    void *send_ud;
    node_snapshot_install_fn install;
    void *install_ud;
    struct pst_batch *batch;
    struct req **buckets;
    size_t nbuckets; /* power of two */
    struct req *head, *tail;
    size_t n_reqs;
    uint64_t rid_base, seq;
    uint64_t last_tick_ms;
    uint64_t fsyncs, entries_written, bad_entries, msgs_dropped;
    bool failed;
    bool closing; /* node_close is completing requests: refuse new ones */
    char *error;
    char *note;
};

static void set_error(struct node *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(struct node *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    free(n->error);
    if (vasprintf(&n->error, fmt, ap) < 0)
        n->error = NULL;
    va_end(ap);
}

static struct group *group_of(struct node *n, uint32_t group)
{
    return group < NODE_GROUPS ? &n->g[group] : NULL;
}

void node_config_default(struct node_config *c, raft_id id)
{
    memset(c, 0, sizeof *c);
    c->id = id;
    c->initial.n_voters = 1;
    c->initial.voters[0] = id;
    raft_config_default(&c->raft, id, 0);
    c->tick_ms = 100;
    c->request_timeout_ms = 5000;
    c->snapshot_entries = 10000;
    c->max_pending = 10000;
    ns_limits_default(&c->ns);
}

/* ------------------------------------------------------------------ requests */

static size_t bucket_of(const struct node *n, uint64_t h)
{
    h ^= h >> 33;
    h *= UINT64_C(0xff51afd7ed558ccd);
    h ^= h >> 33;
    return (size_t)h & (n->nbuckets - 1);
}

static struct req *req_find(const struct node *n, uint64_t handle)
{
    for (struct req *r = n->buckets[bucket_of(n, handle)]; r; r = r->hnext)
        if (r->handle == handle)
            return r;
    return NULL;
}

static void req_link(struct node *n, struct req *r)
{
    size_t b = bucket_of(n, r->handle);
    r->hnext = n->buckets[b];
    n->buckets[b] = r;
    r->prev = n->tail;
    r->next = NULL;
    if (n->tail)
        n->tail->next = r;
    else
        n->head = r;
    n->tail = r;
    n->n_reqs++;
}

static void req_unlink(struct node *n, struct req *r)
{
    struct req **pp = &n->buckets[bucket_of(n, r->handle)];
    while (*pp != r) {
        NODE_ASSERT(*pp != NULL);
        pp = &(*pp)->hnext;
    }
    *pp = r->hnext;
    if (r->prev)
        r->prev->next = r->next;
    else
        n->head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        n->tail = r->prev;
    NODE_ASSERT(n->n_reqs > 0);
    n->n_reqs--;
}

static struct ns_reply *err_reply(int rc, const char *msg)
{
    struct ns_reply *rep = calloc(1, sizeof *rep);
    if (!rep)
        return NULL;
    rep->type = NS_R_ERR;
    rep->rc = rc;
    rep->str = strdup(msg);
    if (!rep->str) {
        free(rep);
        return NULL;
    }
    rep->len = strlen(msg);
    return rep;
}

/* Finish r: unlink, free, then call back (so a callback that submits sees a sane node).
 * reply (may be NULL) is handed to the callback, or freed when cancelled. */
static void req_complete(struct node *n, struct req *r, int rc, struct ns_reply *reply)
{
    node_done_fn fn = r->cancelled ? NULL : r->fn;
    void *ud = r->ud;
    req_unlink(n, r);
    free(r->data);
    free(r);
    if (fn)
        fn(ud, rc, reply);
    else if (reply)
        ns_reply_free(reply);
}

static void req_fail(struct node *n, struct req *r, int rc, const char *msg)
{
    req_complete(n, r, rc, msg ? err_reply(rc, msg) : NULL);
}

static struct req *req_new(struct node *n, uint8_t kind, uint32_t group, uint64_t now_ms,
                           node_done_fn fn, void *ud)
{
    struct req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    n->seq++;
    r->handle = ((n->cfg.id & 0xffff) << RID_SEQ_BITS) | ((n->rid_base + n->seq) & RID_SEQ_MASK);
    if (r->handle == 0 || req_find(n, r->handle)) {
        free(r); /* 2^48 requests without a restart; refuse rather than confuse */
        return NULL;
    }
    r->kind = kind;
    r->state = RS_QUEUED;
    r->group = group;
    r->deadline_ms = now_ms + n->cfg.request_timeout_ms;
    r->fn = fn;
    r->ud = ud;
    return r;
}

/* Map a Raft refusal that means "not appended, and it will not be" to an rc. 0 = keep the
 * request queued and retry later. */
static int refusal_rc(int raft_err)
{
    switch (raft_err) {
    case RAFT_ERR_OVERLOAD:
        return RC_OVERLOAD;
    case RAFT_ERR_TOO_BIG:
        return RC_TOOBIG;
    case RAFT_ERR_NOMEM:
        return RC_NOMEM;
    case RAFT_ERR_BAD_ARG:
        return RC_BADARG;
    default: /* NO_LEADER, NOT_LEADER, TRANSFERRING, DROPPED, NO_QUORUM... */
        return 0;
    }
}

/* Remember why the last attempt failed; "no quorum" sticks, it says the most. */
static void note_err(struct req *r, int err)
{
    if (r->last_err != RAFT_ERR_NO_QUORUM)
        r->last_err = err;
}

/* Hand a queued request to Raft. Returns 0 (in Raft now, or still queued) or the rc with
 * which it must be refused (nothing was appended). */
static int req_submit(struct node *n, struct req *r)
{
    struct group *g = &n->g[r->group];
    NODE_ASSERT(r->state == RS_QUEUED);
    int err;
    if (r->kind == REQ_WRITE) {
        raft_index index = 0;
        raft_term term = 0;
        err = raft_propose(g->raft, r->handle, r->data, r->len, &index, &term);
        if (err == RAFT_OK && index > 0) {
            r->state = RS_APPENDED;
            r->index = index;
            r->term = term;
            free(r->data);
            r->data = NULL;
        } else if (err == RAFT_OK) {
            r->state = RS_FORWARDED;
        }
    } else {
        err = raft_read_index(g->raft, r->handle);
        if (err == RAFT_OK)
            r->state = RS_ASKED;
    }
    if (err == RAFT_OK)
        return 0;
    note_err(r, err);
    return refusal_rc(err);
}

/* Retry the queued requests of groups that have a leader (or of every group: all). */
static void retry_queued(struct node *n, bool all)
{
    struct req *next;
    for (struct req *r = n->head; r; r = next) {
        next = r->next;
        struct group *g = &n->g[r->group];
        if (r->state != RS_QUEUED || (!all && !g->retry))
            continue;
        int rc = req_submit(n, r);
        if (rc)
            req_fail(n, r, rc, NULL);
    }
    for (uint32_t i = 0; i < NODE_GROUPS; i++)
        n->g[i].retry = false;
}

static uint64_t req_admit(struct node *n, struct req *r, int *rc)
{
    req_link(n, r);
    int refuse = req_submit(n, r);
    if (refuse) {
        req_unlink(n, r);
        free(r->data);
        free(r);
        *rc = refuse;
        return 0;
    }
    *rc = RC_OK;
    return r->handle;
}

uint64_t node_write(struct node *n, uint32_t group, const struct node_origin *o, int argc,
                    char **argv, const size_t *argvlen, uint64_t now_ms, node_done_fn fn,
                    void *ud, int *rc)
{
    if (n->failed || n->closing) {
        *rc = n->closing ? RC_SHUTDOWN : RC_IO;
        return 0;
    }
    if (!group_of(n, group) || argc <= 0 || !argv || !argvlen) {
        *rc = RC_BADARG;
        return 0;
    }
    if (n->n_reqs >= n->cfg.max_pending) {
        *rc = RC_OVERLOAD;
        return 0;
    }
    struct req *r = req_new(n, REQ_WRITE, group, now_ms, fn, ud);
    if (!r) {
        *rc = RC_NOMEM;
        return 0;
    }
    const char *actor = o && o->actor ? o->actor : "default";
    const char *client = o && o->client ? o->client : "";
    struct node_entry ne = {
        .request_id = r->handle, .time_ms = now_ms,
        .actor = actor, .actor_len = strlen(actor),
        .client = client, .client_len = strlen(client),
        .argc = (uint32_t)argc, .argv = argv, .argvlen = (size_t *)(uintptr_t)argvlen,
    };
    int erc = node_entry_encode(&ne, &r->data, &r->len);
    if (erc != RC_OK) {
        free(r);
        *rc = erc;
        return 0;
    }
    return req_admit(n, r, rc);
}

uint64_t node_read_barrier(struct node *n, uint32_t group, uint64_t now_ms, node_done_fn fn,
                           void *ud, int *rc)
{
    if (n->failed || n->closing) {
        *rc = n->closing ? RC_SHUTDOWN : RC_IO;
        return 0;
    }
    if (!group_of(n, group)) {
        *rc = RC_BADARG;
        return 0;
    }
    if (n->n_reqs >= n->cfg.max_pending) {
        *rc = RC_OVERLOAD;
        return 0;
    }
    struct req *r = req_new(n, REQ_READ, group, now_ms, fn, ud);
    if (!r) {
        *rc = RC_NOMEM;
        return 0;
    }
    return req_admit(n, r, rc);
}

void node_cancel(struct node *n, uint64_t handle)
{
    struct req *r = req_find(n, handle);
    if (r)
        r->cancelled = true; /* still tracked: its entry may yet apply */
}

/* Deadline reached: tell what is known (node.h, "Request outcomes"). */
static void req_expire(struct node *n, struct req *r)
{
    if (r->kind == REQ_WRITE) {
        if (r->state == RS_QUEUED)
            req_fail(n, r, RC_TRYAGAIN, "no leader within the request timeout; not applied");
        else
            req_fail(n, r, RC_TIMEOUT, NULL);
        return;
    }
    if (r->state == RS_ASKED || (r->state == RS_QUEUED && r->last_err == RAFT_ERR_NO_QUORUM))
        req_fail(n, r, RC_NOQUORUM, "leader could not confirm its leadership in time");
    else if (r->state == RS_QUEUED)
        req_fail(n, r, RC_TRYAGAIN, NULL);
    else
        req_fail(n, r, RC_TRYAGAIN, "read index not yet applied on this node");
}

static void expire_requests(struct node *n, uint64_t now_ms)
{
    struct req *next;
    for (struct req *r = n->head; r; r = next) {
        next = r->next;
        if (r->deadline_ms <= now_ms)
            req_expire(n, r);
    }
}

/* ------------------------------------------------------------------ membership */

static bool conf_has(const raft_id *v, uint32_t n, raft_id id, uint32_t *at)
{
    for (uint32_t i = 0; i < n; i++)
        if (v[i] == id) {
            *at = i;
            return true;
        }
    return false;
}

static void conf_remove(raft_id *v, uint32_t *n, raft_id id)
{
    uint32_t at;
    if (conf_has(v, *n, id, &at)) {
        memmove(v + at, v + at + 1, (*n - at - 1) * sizeof *v);
        (*n)--;
    }
}

/* The effect of one applied configuration change (thesis 4.1; Raft checked validity when
 * it was proposed, every replica computes the same result). */
static void conf_apply(struct raft_conf *c, const struct raft_conf_change *cc)
{
    uint32_t at;
    switch (cc->type) {
    case RAFT_CC_ADD_VOTER:
        conf_remove(c->learners, &c->n_learners, cc->node);
        if (!conf_has(c->voters, c->n_voters, cc->node, &at) && c->n_voters < RAFT_VOTERS_MAX)
            c->voters[c->n_voters++] = cc->node;
        break;
    case RAFT_CC_ADD_LEARNER:
        if (!conf_has(c->voters, c->n_voters, cc->node, &at) &&
            !conf_has(c->learners, c->n_learners, cc->node, &at) &&
            c->n_learners < RAFT_LEARNERS_MAX)
            c->learners[c->n_learners++] = cc->node;
        break;
    case RAFT_CC_REMOVE:
        conf_remove(c->voters, &c->n_voters, cc->node);
        conf_remove(c->learners, &c->n_learners, cc->node);
        break;
    default:
        break;
    }
}

/* Conf entry applied. Membership records in the meta group (addresses from cc.ctx) are
 * the cluster issue's: this is where they hook in. */
static void on_conf_entry(struct group *g, const struct raft_entry *e)
{
    struct raft_conf_change cc;
    if (raft_conf_change_decode(e->data, e->len, &cc) == RAFT_OK)
        conf_apply(&g->conf, &cc);
}

/* ------------------------------------------------------------------ apply */

/* Apply one committed application entry; complete the write it answers. */
static int apply_command(struct node *n, struct group *g, const struct raft_entry *e)
{
    struct node_entry ne;
    int rc = node_entry_decode(e->data, e->len, &ne);
    if (rc == RC_NOMEM)
        return rc;
    if (rc != RC_OK) {
        /* Same bytes on every replica, so every replica skips it the same way. */
        n->bad_entries++;
        return ns_apply_empty(g->ns, e->index, e->term);
    }
    struct ns_meta meta = {
        .index = e->index, .term = e->term, .time_ms = ne.time_ms,
        .request_id = ne.request_id, .actor = ne.actor, .client = ne.client,
    };
    struct ns_reply out = {0};
    rc = ns_apply(g->ns, &meta, (int)ne.argc, ne.argv, ne.argvlen, &out);
    node_entry_clear(&ne);
    if (rc != RC_OK) {
        ns_reply_clear(&out);
        return rc;
    }
    struct req *r = req_find(n, meta.request_id);
    bool match = r && r->kind == REQ_WRITE && r->group == g->id &&
                 ((r->state == RS_APPENDED && r->index == e->index && r->term == e->term) ||
                  r->state == RS_FORWARDED);
    if (!match) {
        ns_reply_clear(&out);
        return RC_OK;
    }
    struct ns_reply *rep = malloc(sizeof *rep);
    if (rep)
        *rep = out;
    else
        ns_reply_clear(&out);
    req_complete(n, r, RC_OK, rep);
    return RC_OK;
}

static int apply_committed(struct node *n, struct group *g)
{
    for (size_t i = 0; i < g->rd.n_committed; i++) {
        const struct raft_entry *e = &g->rd.committed[i];
        if (e->index <= ns_applied_index(g->ns))
            continue; /* applied before a restart; ns skips it too */
        int rc;
        if (e->type == RAFT_ENTRY_CONF) {
            on_conf_entry(g, e);
            rc = ns_apply_empty(g->ns, e->index, e->term);
        } else if (e->len == 0) {
            rc = ns_apply_empty(g->ns, e->index, e->term); /* the leader's no-op */
        } else {
            rc = apply_command(n, g, e);
        }
        if (rc != RC_OK) {
            set_error(n, "group %u: applying entry %llu failed: %s", g->id,
                      (unsigned long long)e->index, rc_message(rc));
            return RC_IO;
        }
    }
    return RC_OK;
}

/* Outcomes of proposals forwarded to the leader, and ReadIndex answers. */
static void take_props_and_reads(struct node *n, struct group *g)
{
    for (size_t i = 0; i < g->rd.n_props; i++) {
        const struct raft_prop_result *p = &g->rd.props[i];
        struct req *r = req_find(n, p->ctx);
        if (!r || r->kind != REQ_WRITE || r->state != RS_FORWARDED)
            continue;
        if (p->err == RAFT_OK) {
            r->state = RS_APPENDED;
            r->index = p->index;
            r->term = p->term;
            free(r->data);
            r->data = NULL;
            continue;
        }
        note_err(r, p->err);
        int rc = refusal_rc(p->err);
        if (rc)
            req_fail(n, r, rc, NULL);
        else
            r->state = RS_QUEUED; /* the leader did not append it: propose again later */
    }
    for (size_t i = 0; i < g->rd.n_reads; i++) {
        const struct raft_read_state *s = &g->rd.reads[i];
        struct req *r = req_find(n, s->ctx);
        if (!r || r->kind != REQ_READ || r->state != RS_ASKED)
            continue;
        if (s->err == RAFT_OK) {
            r->state = RS_WAIT_APPLY;
            r->index = s->index;
        } else {
            /* A leader took the read and could not confirm it (stepped down, lost its
             * quorum): if no later attempt succeeds, that is what the client hears. */
            note_err(r, s->err == RAFT_ERR_NO_LEADER ? s->err : RAFT_ERR_NO_QUORUM);
            r->state = RS_QUEUED; /* retried on the next tick, answered at the deadline */
        }
    }
}

/* After apply: finish read barriers that are satisfied, and writes whose index was applied
 * with another entry (Raft paper 5.3: that index now holds a different entry for good). */
static void finish_requests(struct node *n)
{
    struct req *next;
    for (struct req *r = n->head; r; r = next) {
        next = r->next;
        uint64_t applied = ns_applied_index(n->g[r->group].ns);
        if (r->kind == REQ_READ && r->state == RS_WAIT_APPLY && applied >= r->index)
            req_complete(n, r, RC_OK, NULL);
        else if (r->kind == REQ_WRITE && r->state == RS_APPENDED && r->index <= applied)
            req_fail(n, r, RC_TRYAGAIN, "leader changed; write not applied");
    }
}

/* ------------------------------------------------------------------ compaction */

static void maybe_plan_compaction(struct node *n, struct group *g)
{
    uint64_t applied = ns_applied_index(g->ns);
    if (n->cfg.snapshot_entries == 0 || g->compact_pending || g->compact_written)
        return;
    if (applied <= g->log.snap.index || applied - g->log.snap.index < n->cfg.snapshot_entries)
        return;
    g->compact.index = applied;
    g->compact.term = ns_applied_term(g->ns);
    g->compact.conf = g->conf;
    g->compact_pending = true;
}

static void finish_compaction(struct node *n, struct group *g)
{
    if (!g->compact_written)
        return;
    g->compact_written = false;
    int err = raft_compact(g->raft, g->compact.index);
    /* COMPACTED: Raft already dropped that far (a snapshot arrived meanwhile): harmless. */
    if (err != RAFT_OK && err != RAFT_ERR_COMPACTED)
        set_error(n, "group %u: raft_compact(%llu): %s", g->id,
                  (unsigned long long)g->compact.index, raft_strerror(err));
}

/* ------------------------------------------------------------------ the loop turn */

/* A snapshot from the leader: the hook installs the state, we drop the log (issue 4). */
static int install_snapshot(struct node *n, struct group *g, const struct raft_snapshot_meta *m)
{
    if (!n->install) {
        set_error(n, "group %u: snapshot install not available (InstallSnapshot streaming "
                  "is part of the cluster issue)", g->id);
        return RC_IO;
    }
    int rc = n->install(n->install_ud, g->id, m);
    if (rc == RC_OK) {
        ns_close(g->ns);
        g->ns = NULL;
        rc = ns_open(n->e, g->id, &n->cfg.ns, &g->ns);
    }
    if (rc != RC_OK) {
        set_error(n, "group %u: installing snapshot %llu failed: %s", g->id,
                  (unsigned long long)m->index, rc_message(rc));
        return RC_IO;
    }
    g->conf = m->conf;
    /* Writes in flight at or below the snapshot: whether they applied is unknown. */
    struct req *next;
    for (struct req *r = n->head; r; r = next) {
        next = r->next;
        if (r->group == g->id && r->kind == REQ_WRITE && r->state != RS_QUEUED &&
            (r->state == RS_FORWARDED || r->index <= m->index))
            req_fail(n, r, RC_TIMEOUT, NULL);
    }
    return RC_OK;
}

/* Step 1: every group's Ready and pending compaction into the one batch. */
static int gather(struct node *n, bool *sync)
{
    for (uint32_t i = 0; i < NODE_GROUPS; i++) {
        struct group *g = &n->g[i];
        int rc = RC_OK;
        if (g->compact_pending) {
            rc = node_log_put_snapshot(&g->log, n->batch, &g->compact);
            g->compact_pending = false;
            g->compact_written = rc == RC_OK;
            *sync = true; /* the snapshot must not be durable before the state it covers */
        }
        if (rc == RC_OK && raft_has_ready(g->raft)) {
            int err = raft_ready(g->raft, &g->rd);
            NODE_ASSERT(err == RAFT_OK);
            g->in_ready = true;
            if (g->rd.snapshot) {
                rc = install_snapshot(n, g, g->rd.snapshot);
                if (rc == RC_OK)
                    rc = node_log_put_snapshot(&g->log, n->batch, g->rd.snapshot);
                *sync = true;
            }
            if (rc == RC_OK && g->rd.hs_changed)
                node_log_put_hs(&g->log, n->batch, &g->rd.hs);
            if (rc == RC_OK)
                rc = node_log_put_entries(&g->log, n->batch, g->rd.entries, g->rd.n_entries);
            *sync = *sync || g->rd.must_sync;
            n->entries_written += g->rd.n_entries;
        }
        if (rc != RC_OK) {
            if (!n->error)
                set_error(n, "group %u: preparing the write batch: %s", g->id,
                          rc_message(rc));
            return RC_IO;
        }
    }
    return RC_OK;
}

static void send_msgs(struct node *n, struct group *g)
{
    for (size_t i = 0; i < g->rd.n_msgs; i++) {
        if (n->send)
            n->send(n->send_ud, g->id, &g->rd.msgs[i]);
        else
            n->msgs_dropped++;
    }
}

static int fail_run(struct node *n)
{
    n->failed = true;
    for (uint32_t i = 0; i < NODE_GROUPS; i++)
        n->g[i].in_ready = false; /* never advanced: the batch was not made durable */
    return RC_IO;
}

int node_run(struct node *n, uint64_t now_ms)
{
    (void)now_ms;
    if (n->failed)
        return RC_IO;
    bool sync = false;
    pst_batch_clear(n->batch);
    if (gather(n, &sync) != RC_OK)
        return fail_run(n);
    if (pst_batch_count(n->batch) > 0) {
        int rc = pst_batch_oom(n->batch) ? RC_NOMEM : pst_write(n->e, n->batch, sync);
        if (rc != RC_OK) {
            set_error(n, "storage write (sync=%d) failed: %s", (int)sync, rc_message(rc));
            return fail_run(n);
        }
        if (sync)
            n->fsyncs++;
    }
    for (uint32_t i = 0; i < NODE_GROUPS; i++)
        if (n->g[i].in_ready)
            send_msgs(n, &n->g[i]);
    for (uint32_t i = 0; i < NODE_GROUPS; i++) {
        struct group *g = &n->g[i];
        if (!g->in_ready)
            continue;
        if (apply_committed(n, g) != RC_OK)
            return fail_run(n);
        take_props_and_reads(n, g);
        if (g->rd.ss_changed) {
            g->retry = g->rd.ss.leader != RAFT_NONE && g->rd.ss.leader != g->leader;
            g->leader = g->rd.ss.leader;
            g->role = g->rd.ss.role;
        }
    }
    for (uint32_t i = 0; i < NODE_GROUPS; i++) {
        struct group *g = &n->g[i];
        if (g->in_ready) {
            g->in_ready = false;
            raft_advance(g->raft);
        }
        finish_compaction(n, g);
    }
    finish_requests(n);
    retry_queued(n, false);
    for (uint32_t i = 0; i < NODE_GROUPS; i++)
        maybe_plan_compaction(n, &n->g[i]);
    return RC_OK;
}

bool node_has_work(const struct node *n)
{
    if (n->failed)
        return false;
    for (uint32_t i = 0; i < NODE_GROUPS; i++)
        if (raft_has_ready(n->g[i].raft) || n->g[i].compact_pending)
            return true;
    return false;
}

void node_tick(struct node *n, uint64_t now_ms)
{
    if (n->failed)
        return;
    uint64_t tick_ms = n->cfg.tick_ms ? n->cfg.tick_ms : 100;
    uint64_t ticks = 0;
    if (now_ms > n->last_tick_ms) {
        ticks = (now_ms - n->last_tick_ms) / tick_ms;
        if (ticks > NODE_TICKS_CATCHUP_MAX) {
            ticks = NODE_TICKS_CATCHUP_MAX; /* a stalled loop must not fire elections */
            n->last_tick_ms = now_ms;
        } else {
            n->last_tick_ms += ticks * tick_ms;
        }
    }
    for (uint64_t t = 0; t < ticks; t++)
        for (uint32_t i = 0; i < NODE_GROUPS; i++)
            raft_tick(n->g[i].raft);
    if (ticks)
        retry_queued(n, true);
    expire_requests(n, now_ms);
}

/* ------------------------------------------------------------------ open / close */

static uint64_t mix64(uint64_t x)
{
    x += UINT64_C(0x9e3779b97f4a7c15);
    x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
    return x ^ (x >> 31);
}

/* Configuration as of the applied index: snapshot (or bootstrap) plus applied changes. */
static void restore_conf(struct group *g, const struct raft_conf *initial,
                         const struct raft_entry *ents, size_t n_ents, raft_index applied)
{
    g->conf = g->log.snap.index ? g->log.snap.conf : *initial;
    for (size_t i = 0; i < n_ents && ents[i].index <= applied; i++)
        if (ents[i].type == RAFT_ENTRY_CONF)
            on_conf_entry(g, &ents[i]);
}

/* The configuration a group started with: recorded (synced) when the group is new, read
 * back on every later start, so restarting with other bootstrap flags changes nothing. */
static int bootstrap_conf(struct node *n, struct group *g, size_t n_ents,
                          struct raft_conf *initial)
{
    if (g->log.snap.conf.n_voters > 0) {
        *initial = g->log.snap.conf;
        return RC_OK;
    }
    *initial = n->cfg.initial;
    if (g->log.hs.term != 0 || n_ents != 0 || g->log.snap.index != 0)
        return RC_OK; /* cannot happen for stores this code wrote; keep the given conf */
    pst_batch_clear(n->batch);
    int rc = node_log_put_bootstrap(&g->log, n->batch, initial);
    if (rc == RC_OK)
        rc = pst_write(n->e, n->batch, true);
    pst_batch_clear(n->batch);
    return rc;
}

static int open_group(struct node *n, uint32_t id, char **err)
{
    struct group *g = &n->g[id];
    g->id = id;
    int rc = ns_open(n->e, id, &n->cfg.ns, &g->ns);
    if (rc != RC_OK) {
        if (asprintf(err, "group %u: opening the state machine: %s", id, rc_message(rc)) < 0)
            *err = NULL;
        return rc;
    }
    raft_index applied = ns_applied_index(g->ns);
    struct raft_entry *ents = NULL;
    size_t n_ents = 0;
    char *note = NULL;
    rc = node_log_load(n->e, id, applied, &g->log, &ents, &n_ents, &note, err);
    if (rc != RC_OK)
        return rc;
    if (note) {
        free(n->note);
        n->note = note;
    }
    struct raft_conf initial;
    rc = bootstrap_conf(n, g, n_ents, &initial);
    if (rc != RC_OK) {
        node_log_entries_free(ents, n_ents);
        if (asprintf(err, "group %u: recording the bootstrap configuration: %s", id,
                     rc_message(rc)) < 0)
            *err = NULL;
        return rc;
    }
    struct raft_persisted p = {
        .hs = g->log.hs, .snapshot = g->log.snap, .entries = ents, .n_entries = n_ents,
        .initial = initial, .applied = applied,
    };
    struct raft_config rc_cfg = n->cfg.raft;
    rc_cfg.id = n->cfg.id;
    rc_cfg.seed = mix64(n->cfg.raft.seed ^ mix64(n->cfg.id) ^ mix64((uint64_t)id + 1));
    int err_raft = raft_new(&rc_cfg, &p, &g->raft);
    restore_conf(g, &initial, ents, n_ents, applied);
    node_log_entries_free(ents, n_ents);
    if (err_raft != RAFT_OK) {
        if (asprintf(err, "group %u: raft state rejected (commit %llu, applied %llu, last "
                     "index %llu): %s", id, (unsigned long long)g->log.hs.commit,
                     (unsigned long long)applied, (unsigned long long)g->log.last_index,
                     raft_strerror(err_raft)) < 0)
            *err = NULL;
        return err_raft == RAFT_ERR_NOMEM ? RC_NOMEM : RC_CORRUPT;
    }
    return RC_OK;
}

static void node_free(struct node *n)
{
    for (uint32_t i = 0; i < NODE_GROUPS; i++) {
        if (n->g[i].raft)
            raft_free(n->g[i].raft);
        if (n->g[i].ns)
            ns_close(n->g[i].ns);
    }
    if (n->batch)
        pst_batch_free(n->batch);
    free(n->buckets);
    free(n->error);
    free(n->note);
    free(n);
}

static int node_alloc(const struct node_config *cfg, uint64_t now_ms, struct node **out)
{
    if (cfg->id == RAFT_NONE || cfg->max_pending == 0 ||
        cfg->max_pending > NODE_PENDING_MAX_LIMIT)
        return RC_BADARG;
    struct node *n = calloc(1, sizeof *n);
    if (!n)
        return RC_NOMEM;
    n->cfg = *cfg;
    n->nbuckets = 64;
    while (n->nbuckets < 2 * (size_t)cfg->max_pending)
        n->nbuckets *= 2;
    n->buckets = calloc(n->nbuckets, sizeof *n->buckets);
    n->batch = pst_batch_new();
    if (!n->buckets || !n->batch) {
        node_free(n);
        return RC_NOMEM;
    }
    /* Request ids from an earlier run of this node must not repeat: start the sequence
     * from the clock (2^8 ids per ms of wall time before two runs could overlap). */
    n->rid_base = (now_ms & ((UINT64_C(1) << 40) - 1)) << 8;
    n->last_tick_ms = now_ms;
    *out = n;
    return RC_OK;
}

int node_open(struct pst_engine *e, const struct node_config *cfg, uint64_t now_ms,
              struct node **out, char **err)
{
    struct node *n = NULL;
    *out = NULL;
    if (err)
        *err = NULL;
    char *msg = NULL;
    int rc = node_alloc(cfg, now_ms, &n);
    if (rc != RC_OK) {
        if (err && asprintf(err, "node: %s", rc_message(rc)) < 0)
            *err = NULL;
        return rc;
    }
    n->e = e;
    for (uint32_t i = 0; i < NODE_GROUPS && rc == RC_OK; i++)
        rc = open_group(n, i, &msg);
    /* Replay committed entries past the applied index (bounded passes). */
    for (int pass = 0; rc == RC_OK && pass < 16 && node_has_work(n); pass++)
        if (node_run(n, now_ms) != RC_OK) {
            rc = RC_IO;
            msg = n->error ? strdup(n->error) : NULL;
        }
    if (rc != RC_OK) {
        if (err)
            *err = msg ? msg : strdup(rc_message(rc));
        else
            free(msg);
        node_free(n);
        return rc;
    }
    *out = n;
    return RC_OK;
}

void node_close(struct node *n)
{
    if (!n)
        return;
    n->closing = true;
    while (n->head)
        req_complete(n, n->head, RC_SHUTDOWN, NULL);
    node_free(n);
}

/* ------------------------------------------------------------------ small accessors */

void node_set_transport(struct node *n, node_send_fn fn, void *ud)
{
    n->send = fn;
    n->send_ud = ud;
}

void node_set_snapshot_installer(struct node *n, node_snapshot_install_fn fn, void *ud)
{
    n->install = fn;
    n->install_ud = ud;
}

uint32_t node_route(const struct node *n, const void *key, size_t klen)
{
    (void)n;
    (void)key;
    (void)klen;
    return NODE_GROUP_DATA; /* one data group today; the shard map lives in group 0 later */
}

struct ns *node_ns(struct node *n, uint32_t group)
{
    struct group *g = group_of(n, group);
    return g ? g->ns : NULL;
}

int node_step(struct node *n, uint32_t group, const struct raft_msg *m)
{
    struct group *g = group_of(n, group);
    if (!g || !m || n->failed)
        return RC_BADARG;
    return raft_step(g->raft, m) == RAFT_OK ? RC_OK : RC_BADARG;
}

int node_raft_status(const struct node *n, uint32_t group, struct raft_status *st)
{
    if (group >= NODE_GROUPS)
        return RC_BADARG;
    raft_status(n->g[group].raft, st);
    return RC_OK;
}

int node_applied_conf(const struct node *n, uint32_t group, struct raft_conf *out)
{
    if (group >= NODE_GROUPS)
        return RC_BADARG;
    *out = n->g[group].conf;
    return RC_OK;
}

uint64_t node_fsyncs(const struct node *n) { return n->fsyncs; }
uint64_t node_entries_written(const struct node *n) { return n->entries_written; }
uint64_t node_bad_entries(const struct node *n) { return n->bad_entries; }
size_t node_pending(const struct node *n) { return n->n_reqs; }
const char *node_last_error(const struct node *n) { return n->error; }
const char *node_open_note(const struct node *n) { return n->note; }
