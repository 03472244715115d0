/*
 * node_apply.c - applying committed entries through ns, recording forwarded proposal
 * outcomes and read indexes, finishing requests after apply, and log compaction.
 *
 * Invariants:
 *  - a write completes RC_OK only when the entry at its (index, term) carrying its request
 *    id was applied (or, forwarded with index unknown, when its request id was applied);
 *    another entry applied at its index means "not applied" (RC_TRYAGAIN); otherwise only
 *    the deadline answers (RC_TIMEOUT, outcome unknown);
 *  - entries at or below the state machine's applied index are skipped (ns skips them
 *    too): after a snapshot install the state may be ahead of Raft's snapshot index;
 *  - g->conf folds every conf entry past g->conf_index exactly once, whether or not ns
 *    skips the entry, so it is the configuration as of the applied index;
 *  - meta-group conf entries update the address book BEFORE the applied index moves past
 *    them (a crash in between replays the entry; the update is idempotent);
 *  - log compaction records the snapshot in a SYNCED batch written after the state-machine
 *    writes it covers (LevelDB's log is ordered, so they are durable first), then calls
 *    raft_compact.
 */
#include <string.h>

#include "node_entry.h"
#include "node_internal.h"
#include "rc.h"

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
 * it was proposed, every replica computes the same result, the same way as the core). */
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
        if (c->n_voters == 1 && c->voters[0] == cc->node)
            break; /* never empty (as the core) */
        conf_remove(c->voters, &c->n_voters, cc->node);
        conf_remove(c->learners, &c->n_learners, cc->node);
        break;
    default:
        break;
    }
}

void node_fold_conf(struct group *g, const struct raft_entry *e)
{
    if (e->index <= g->conf_index)
        return;
    g->conf_index = e->index;
    if (e->type == RAFT_ENTRY_CONF)
        g->last_cc_index = e->index;
    struct raft_conf_change cc;
    if (e->type == RAFT_ENTRY_CONF && raft_conf_change_decode(e->data, e->len, &cc) == RAFT_OK)
        conf_apply(&g->conf, &cc);
}

/* ------------------------------------------------------------------ apply */

void node_set_apply_observer(struct node *n, node_apply_fn fn, void *ud)
{
    n->apply_fn = fn;
    n->apply_ud = ud;
}

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
    if (n->apply_fn && out.type != 0) /* type 0: skipped as already applied */
        n->apply_fn(n->apply_ud, g->id, g->ns, e->index);
    struct req *r = node_req_find(n, meta.request_id);
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
    node_req_complete(n, r, RC_OK, rep);
    return RC_OK;
}

static int apply_one(struct node *n, struct group *g, const struct raft_entry *e)
{
    if (e->type == RAFT_ENTRY_CONF) {
        int rc = g->id == NODE_GROUP_META ? node_book_apply(n, e) : RC_OK;
        return rc == RC_OK ? ns_apply_empty(g->ns, e->index, e->term) : rc;
    }
    if (e->len == 0)
        return ns_apply_empty(g->ns, e->index, e->term); /* the leader's no-op */
    return apply_command(n, g, e);
}

int node_apply_committed(struct node *n, struct group *g)
{
    for (size_t i = 0; i < g->rd.n_committed; i++) {
        const struct raft_entry *e = &g->rd.committed[i];
        node_fold_conf(g, e);
        if (e->index > ns_applied_index(g->ns)) {
            int rc = apply_one(n, g, e);
            if (rc != RC_OK) {
                node_set_error(n, "group %u: applying entry %llu failed: %s", g->id,
                               (unsigned long long)e->index, rc_message(rc));
                return RC_IO;
            }
        }
        if (g->id == NODE_GROUP_META && e->type == RAFT_ENTRY_CONF)
            node_conf_on_meta_applied(n, e);
    }
    return RC_OK;
}

/* Outcomes of proposals forwarded to the leader, and ReadIndex answers. */
void node_take_props_and_reads(struct node *n, struct group *g)
{
    for (size_t i = 0; i < g->rd.n_props; i++) {
        const struct raft_prop_result *p = &g->rd.props[i];
        struct req *r = node_req_find(n, p->ctx);
        if (!r || r->kind != REQ_WRITE || r->state != RS_FORWARDED)
            continue;
        if (p->err == RAFT_ERR_UNKNOWN_OUTCOME)
            continue; /* may still commit: stays forwarded, decided at apply or deadline */
        /* An answer to an earlier attempt (forwarded in an earlier term, requeued since:
         * that attempt can never commit) says nothing about this one, whose answer is
         * still to come. Taking its refusal for this attempt's proposed the write a third
         * time while this attempt was already appended: applied twice. */
        if (p->term != r->fwd_term)
            continue;
        if (p->err == RAFT_OK) {
            r->state = RS_APPENDED;
            r->index = p->index;
            r->term = p->term;
            continue;
        }
        node_req_note_err(r, p->err);
        int rc = node_refusal_rc(p->err);
        if (rc)
            node_req_fail(n, r, rc, NULL);
        else
            r->state = RS_QUEUED; /* the leader did not append it: propose again later */
    }
    for (size_t i = 0; i < g->rd.n_reads; i++) {
        const struct raft_read_state *s = &g->rd.reads[i];
        struct req *r = node_req_find(n, s->ctx);
        if (!r || r->kind != REQ_READ || r->state != RS_ASKED)
            continue;
        if (s->err == RAFT_OK) {
            r->state = RS_WAIT_APPLY;
            r->index = s->index;
        } else {
            /* A leader took the read and could not confirm it (stepped down, lost its
             * quorum): if no later attempt succeeds, that is what the client hears. */
            node_req_note_err(r, s->err == RAFT_ERR_NO_LEADER ? s->err : RAFT_ERR_NO_QUORUM);
            r->state = RS_QUEUED; /* retried on the next tick, answered at the deadline */
        }
    }
}

/* Put a write whose entry will never be applied back in the queue: it is proposed again
 * (to the current leader) until its deadline, so a leader change costs the client latency,
 * not an error. */
static void requeue_write(struct node *n, struct req *r)
{
    r->state = RS_QUEUED;
    r->index = 0;
    r->term = 0;
    r->last_err = RAFT_ERR_DROPPED;
    n->g[r->group].retry = true;
}

/* After apply: finish read barriers that are satisfied, and find writes that will never be
 * applied:
 *  - appended at an index that was applied with another entry (paper 5.3: that index holds
 *    a different entry for good);
 *  - forwarded in term T without an answer, once an entry of a term > T is applied: a
 *    leader appends a forwarded proposal only in the term it was forwarded in, terms never
 *    decrease along the log, and every entry before the applied one was applied here
 *    without carrying this request id, so its entry cannot commit any more. */
void node_finish_requests(struct node *n)
{
    struct req *next;
    for (struct req *r = n->head; r; r = next) {
        next = r->next;
        struct ns *ns = n->g[r->group].ns;
        uint64_t applied = ns_applied_index(ns);
        if (r->kind == REQ_READ && r->state == RS_WAIT_APPLY && applied >= r->index)
            node_req_complete(n, r, RC_OK, NULL);
        else if (r->kind == REQ_WRITE && r->state == RS_APPENDED && r->index <= applied)
            requeue_write(n, r);
        else if (r->kind == REQ_WRITE && r->state == RS_FORWARDED &&
                 ns_applied_term(ns) > r->fwd_term)
            requeue_write(n, r);
        else if (r->kind == REQ_CONF && r->state == RS_APPENDED && r->index <= applied)
            node_req_fail(n, r, RC_TRYAGAIN, "leader changed; membership change not applied");
    }
    node_conf_finish(n);
}

/* ------------------------------------------------------------------ compaction */

void node_plan_compaction(struct node *n, struct group *g)
{
    uint64_t applied = ns_applied_index(g->ns);
    if (n->cfg.snapshot_entries == 0 || g->compact_pending || g->compact_written)
        return;
    if (applied <= g->log.snap.index || applied - g->log.snap.index < n->cfg.snapshot_entries)
        return;
    /* Raft may not have applied that far (the state came from a snapshot that is ahead
     * of Raft's snapshot index): compact only what Raft has applied and holds. */
    struct raft_status st;
    raft_status(g->raft, &st);
    if (applied > st.applied || applied > st.last_index || g->conf_index != applied)
        return;
    /* Keep a tail of the log behind the snapshot, so a follower that lags a little (one
     * that is forwarding a burst of writes, say) catches up from the log instead of by a
     * snapshot. The snapshot's configuration must be the one at its index: when a conf
     * change lies inside the tail, compact up to the applied index as before. */
    raft_index index = applied;
    raft_term term = ns_applied_term(g->ns);
    uint64_t tail = n->cfg.snapshot_entries / 4;
    raft_term t;
    if (tail > 0 && applied - tail > g->log.snap.index && g->last_cc_index <= applied - tail &&
        raft_term_at(g->raft, applied - tail, &t) == RAFT_OK) {
        index = applied - tail;
        term = t;
    }
    g->compact.index = index;
    g->compact.term = term;
    g->compact.conf = g->conf;
    g->compact_pending = true;
}

void node_finish_compaction(struct node *n, struct group *g)
{
    if (!g->compact_written)
        return;
    g->compact_written = false;
    int err = raft_compact(g->raft, g->compact.index);
    /* COMPACTED: Raft already dropped that far (a snapshot arrived meanwhile): harmless. */
    if (err != RAFT_OK && err != RAFT_ERR_COMPACTED)
        node_set_error(n, "group %u: raft_compact(%llu): %s", g->id,
                       (unsigned long long)g->compact.index, raft_strerror(err));
}
