/*
 * node_req.c - requests of the node core: the handle hash and list, submitting writes and
 * read barriers to Raft, retrying queued ones, deadlines, and deferred completions.
 *
 * Invariants:
 *  - every request is in the handle hash and the request list until it completes; a
 *    completed request's callback ran exactly once, unless cancelled (then never);
 *  - a write is proposed to Raft again only once it is known that its entry will never be
 *    applied (NO_LEADER, a forwarded proposal rejected, another entry applied at its index,
 *    or, forwarded with no answer, an entry of a later term applied: node_apply.c): a
 *    command never takes effect twice from here;
 *  - a deferred request (RS_DEFERRED) is never touched by Raft again; node_run delivers it.
 */
#include <string.h>

#include "node_entry.h"
#include "node_internal.h"
#include "rc.h"

#define RID_SEQ_BITS 48
#define RID_SEQ_MASK ((UINT64_C(1) << RID_SEQ_BITS) - 1)

static size_t bucket_of(const struct node *n, uint64_t h)
{
    h ^= h >> 33;
    h *= UINT64_C(0xff51afd7ed558ccd);
    h ^= h >> 33;
    return (size_t)h & (n->nbuckets - 1);
}

struct req *node_req_find(const struct node *n, uint64_t handle)
{
    for (struct req *r = n->buckets[bucket_of(n, handle)]; r; r = r->hnext)
        if (r->handle == handle)
            return r;
    return NULL;
}

void node_req_link(struct node *n, struct req *r)
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

void node_req_unlink(struct node *n, struct req *r)
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
    if (r->state == RS_DEFERRED) {
        NODE_ASSERT(n->n_deferred > 0);
        n->n_deferred--;
    }
}

struct ns_reply *node_err_reply(int rc, const char *msg)
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
void node_req_complete(struct node *n, struct req *r, int rc, struct ns_reply *reply)
{
    node_done_fn fn = r->cancelled ? NULL : r->fn;
    void *ud = r->ud;
    node_req_unlink(n, r);
    free(r->data);
    free(r->done_msg);
    free(r);
    if (fn)
        fn(ud, rc, reply);
    else if (reply)
        ns_reply_free(reply);
}

void node_req_fail(struct node *n, struct req *r, int rc, const char *msg)
{
    node_req_complete(n, r, rc, msg ? node_err_reply(rc, msg) : NULL);
}

void node_req_defer(struct node *n, struct req *r, int rc, const char *msg)
{
    NODE_ASSERT(r->state != RS_DEFERRED);
    r->state = RS_DEFERRED;
    r->done_rc = rc;
    free(r->done_msg);
    r->done_msg = msg ? strdup(msg) : NULL;
    n->n_deferred++;
}

void node_req_run_deferred(struct node *n)
{
    struct req *next;
    for (struct req *r = n->head; r && n->n_deferred; r = next) {
        next = r->next;
        if (r->state != RS_DEFERRED)
            continue;
        if (r->done_rc == RC_OK) {
            struct ns_reply *rep = calloc(1, sizeof *rep);
            if (rep && ns_reply_set_status(rep, "OK") != RC_OK) {
                free(rep);
                rep = NULL;
            }
            node_req_complete(n, r, RC_OK, rep);
        } else {
            node_req_fail(n, r, r->done_rc, r->done_msg);
        }
    }
}

struct req *node_req_new(struct node *n, uint8_t kind, uint32_t group, uint64_t now_ms,
                         node_done_fn fn, void *ud)
{
    struct req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    n->seq++;
    r->handle = ((n->cfg.id & 0xffff) << RID_SEQ_BITS) | ((n->rid_base + n->seq) & RID_SEQ_MASK);
    if (r->handle == 0 || node_req_find(n, r->handle)) {
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
int node_refusal_rc(int raft_err)
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
void node_req_note_err(struct req *r, int err)
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
    if (r->kind == REQ_WRITE && g->quorum_lost) {
        /* A leader cut off from its quorum would append an entry whose fate nobody can
         * tell; keep the write queued (nothing appended) until the quorum answers again,
         * a new leader appears, or the deadline says -NOQUORUM. */
        node_req_note_err(r, RAFT_ERR_NO_QUORUM);
        return 0;
    }
    if (r->kind == REQ_WRITE) {
        raft_index index = 0;
        raft_term term = 0;
        err = raft_propose(g->raft, r->handle, r->data, r->len, &index, &term);
        if (err == RAFT_OK && index > 0) {
            r->state = RS_APPENDED;
            r->index = index;
            r->term = term;
        } else if (err == RAFT_OK) {
            r->state = RS_FORWARDED;
            r->fwd_term = raft_current_term(g->raft);
        }
    } else {
        err = raft_read_index(g->raft, r->handle);
        if (err == RAFT_OK)
            r->state = RS_ASKED;
    }
    if (err == RAFT_OK)
        return 0;
    node_req_note_err(r, err);
    return node_refusal_rc(err);
}

/* Retry the queued requests of groups that have a leader (or of every group: all). */
void node_retry_queued(struct node *n, bool all)
{
    struct req *next;
    for (struct req *r = n->head; r; r = next) {
        next = r->next;
        struct group *g = &n->g[r->group];
        if (r->state != RS_QUEUED || r->kind == REQ_CONF || (!all && !g->retry))
            continue;
        int rc = req_submit(n, r);
        if (rc)
            node_req_fail(n, r, rc, NULL);
    }
    for (uint32_t i = 0; i < NODE_GROUPS; i++)
        n->g[i].retry = false;
}

static uint64_t req_admit(struct node *n, struct req *r, int *rc)
{
    node_req_link(n, r);
    int refuse = req_submit(n, r);
    if (refuse) {
        node_req_unlink(n, r);
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
    if (!node_group_of(n, group) || argc <= 0 || !argv || !argvlen) {
        *rc = RC_BADARG;
        return 0;
    }
    if (n->n_reqs >= n->cfg.max_pending) {
        *rc = RC_OVERLOAD;
        return 0;
    }
    struct req *r = node_req_new(n, REQ_WRITE, group, now_ms, fn, ud);
    if (!r) {
        *rc = RC_NOMEM;
        return 0;
    }
    const char *actor = o && o->actor ? o->actor : "default";
    const char *client = o && o->client ? o->client : "";
    struct node_entry ne = {
        .request_id = r->handle, .time_ms = o && o->wall_ms ? o->wall_ms : now_ms,
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
    if (!node_group_of(n, group)) {
        *rc = RC_BADARG;
        return 0;
    }
    if (n->n_reqs >= n->cfg.max_pending) {
        *rc = RC_OVERLOAD;
        return 0;
    }
    struct req *r = node_req_new(n, REQ_READ, group, now_ms, fn, ud);
    if (!r) {
        *rc = RC_NOMEM;
        return 0;
    }
    return req_admit(n, r, rc);
}

void node_cancel(struct node *n, uint64_t handle)
{
    struct req *r = node_req_find(n, handle);
    if (r)
        r->cancelled = true; /* still tracked: its entry may yet apply */
}

/* Deadline reached: tell what is known (node.h, "Request outcomes"). */
static void req_expire(struct node *n, struct req *r)
{
    if (r->kind == REQ_CONF) {
        if (r->state == RS_CONF_DATA)
            node_req_fail(n, r, RC_TIMEOUT, "applied in the meta group; the data group has "
                          "not applied it yet (it will be reconciled)");
        else
            node_req_fail(n, r, RC_TIMEOUT, NULL);
        return;
    }
    if (r->kind == REQ_WRITE) {
        if (r->state == RS_QUEUED && r->last_err == RAFT_ERR_NO_QUORUM)
            node_req_fail(n, r, RC_NOQUORUM, "leader cannot reach a majority; not applied");
        else if (r->state == RS_QUEUED)
            node_req_fail(n, r, RC_TRYAGAIN, "no leader within the request timeout; not applied");
        else
            node_req_fail(n, r, RC_TIMEOUT, NULL);
        return;
    }
    if (r->state == RS_ASKED || (r->state == RS_QUEUED && r->last_err == RAFT_ERR_NO_QUORUM))
        node_req_fail(n, r, RC_NOQUORUM, "leader could not confirm its leadership in time");
    else if (r->state == RS_QUEUED)
        node_req_fail(n, r, RC_TRYAGAIN, NULL);
    else
        node_req_fail(n, r, RC_TRYAGAIN, "read index not yet applied on this node");
}

void node_expire_requests(struct node *n, uint64_t now_ms)
{
    struct req *next;
    for (struct req *r = n->head; r; r = next) {
        next = r->next;
        if (r->deadline_ms > now_ms + n->cfg.request_timeout_ms)
            r->deadline_ms = now_ms + n->cfg.request_timeout_ms; /* the clock went back */
        if (r->deadline_ms <= now_ms && r->state != RS_DEFERRED)
            req_expire(n, r);
    }
}
