/*
 * replication.c - log replication: AppendEntries on both sides, per-follower progress
 * (probe / replicate / snapshot), the in-flight window, heartbeats, the commit rule, and
 * proposals (local and forwarded).
 *
 * Rules:
 *  - paper 5.3 (Figure 2, AppendEntries receiver): reject when the previous entry does
 *    not match; delete a conflicting suffix (never a committed entry: assertion); append
 *    what is new; commit = min(leader commit, index of last new entry);
 *  - fast back-off (paper 5.3, end; etcd's findConflictByTerm): a rejection carries a
 *    hint index and the term there, so the leader skips a whole conflicting term;
 *  - paper 5.4.2 / Figure 8: the leader commits only entries of its current term by
 *    counting replicas; earlier entries are committed indirectly;
 *  - the leader's own log counts toward a quorum only up to its durable index (stable,
 *    raised by raft_advance), so a leader crash cannot lose an acknowledged commit.
 * Invariants: pr->match < pr->next; in replicate state the in-flight ring holds increasing
 * last indices, at most max_inflight_msgs of them.
 */
#include "raft/raft_internal.h"

/* ------------------------------------------------------------------ progress */

void rr_progress_reset(struct raft *r, struct raft_progress *pr)
{
    pr->match = pr->id == r->id ? r->log.stable : 0;
    pr->next = rlog_last_index(&r->log) + 1;
    pr->state = PR_PROBE;
    pr->probe_sent = false;
    pr->recent_active = pr->id == r->id;
    pr->pending_snapshot = 0;
    pr->ticks_since_contact = 0;
    pr->stall_ticks = 0;
    pr->acked_seq = 0;
    pr->infl_head = pr->infl_n = 0;
}

static void become_probe(struct raft_progress *pr, raft_index next)
{
    pr->state = PR_PROBE;
    pr->probe_sent = false;
    pr->next = next > pr->match + 1 ? next : pr->match + 1;
    pr->infl_head = pr->infl_n = 0;
    pr->pending_snapshot = 0;
}

static void become_replicate(struct raft_progress *pr)
{
    pr->state = PR_REPLICATE;
    pr->probe_sent = false;
    pr->next = pr->match + 1;
    pr->infl_head = pr->infl_n = 0;
    pr->pending_snapshot = 0;
}

static bool infl_add(struct raft *r, struct raft_progress *pr, raft_index last)
{
    uint32_t cap = r->cfg.max_inflight_msgs;
    if (!pr->infl) {
        pr->infl = malloc(cap * sizeof(*pr->infl));
        if (!pr->infl) return false;
    }
    RAFT_ASSERT(r, pr->infl_n < cap);
    pr->infl[(pr->infl_head + pr->infl_n) % cap] = last;
    pr->infl_n++;
    return true;
}

static void infl_free_to(struct raft *r, struct raft_progress *pr, raft_index idx)
{
    uint32_t cap = r->cfg.max_inflight_msgs; /* ring size: config never changes */
    while (pr->infl_n && pr->infl[pr->infl_head] <= idx) {
        pr->infl_head = (pr->infl_head + 1) % cap;
        pr->infl_n--;
    }
}

/* ------------------------------------------------------------------ sending */

static void send_snapshot(struct raft *r, struct raft_progress *pr)
{
    struct raft_msg m = {.type = RAFT_MSG_SNAPSHOT, .to = pr->id};
    m.snapshot.index = r->log.snap_index;
    m.snapshot.term = r->log.snap_term;
    m.snapshot.conf = r->log.snap_conf;
    pr->state = PR_SNAPSHOT;
    pr->pending_snapshot = r->log.snap_index;
    pr->infl_head = pr->infl_n = 0;
    pr->stall_ticks = 0;
    rr_send(r, &m);
}

/* Entries [from, from + n) bounded by max_msg_bytes (at least one entry). */
static size_t batch_len(const struct raft *r, raft_index from)
{
    raft_index last = rlog_last_index(&r->log);
    uint64_t bytes = 0;
    size_t n = 0;
    for (raft_index i = from; i <= last; i++) {
        uint32_t len = rlog_entry(&r->log, i)->len;
        if (n > 0 && bytes + len > r->cfg.max_msg_bytes) break;
        bytes += len;
        n++;
    }
    return n;
}

bool rr_send_append(struct raft *r, struct raft_progress *pr, bool allow_empty)
{
    if (pr->id == r->id || pr->state == PR_SNAPSHOT) return false;
    if (pr->state == PR_PROBE && pr->probe_sent) return false;
    if (pr->state == PR_REPLICATE && pr->infl_n >= r->cfg.max_inflight_msgs) return false;
    RAFT_ASSERT(r, pr->next > pr->match);
    RAFT_ASSERT(r, pr->next <= rlog_last_index(&r->log) + 1);
    raft_index prev = pr->next - 1;
    raft_term prev_term = 0;
    if (rlog_term(&r->log, prev, &prev_term) != RAFT_OK) {
        send_snapshot(r, pr); /* the entries it needs are compacted */
        return true;
    }
    size_t n = batch_len(r, pr->next);
    if (n == 0 && !allow_empty) return false;
    struct raft_msg m = {.type = RAFT_MSG_APPEND, .to = pr->id, .index = prev,
                         .log_term = prev_term, .commit = r->log.commit,
                         .n_entries = (uint32_t)n};
    if (n) {
        m.entries = rlog_copy_block(rlog_entry(&r->log, pr->next), n);
        if (!m.entries) return false;
    }
    if (pr->state == PR_REPLICATE) {
        if (n) {
            if (!infl_add(r, pr, prev + n)) {
                rr_msg_free(&m);
                return false;
            }
            pr->next = prev + n + 1; /* optimistic: pipelined (thesis 10.2.1) */
        }
    } else {
        pr->probe_sent = true;
    }
    rr_send(r, &m);
    return true;
}

void rr_broadcast_append(struct raft *r)
{
    if (r->role != RAFT_LEADER) return; /* e.g. stepped down inside rr_maybe_commit */
    for (uint32_t i = 0; i < r->n_prs; i++)
        if (r->prs[i].id != r->id) rr_send_append(r, &r->prs[i], true);
}

void rr_broadcast_heartbeat(struct raft *r)
{
    RAFT_ASSERT(r, r->role == RAFT_LEADER);
    uint64_t seq = ++r->hb_seq;
    rr_note_round(r, seq);
    r->read_round_wanted = false;
    for (uint32_t i = 0; i < r->n_prs; i++) {
        struct raft_progress *pr = &r->prs[i];
        if (pr->id == r->id) continue;
        /* A follower may only learn a commit index its log is known to reach. */
        raft_index c = pr->match < r->log.commit ? pr->match : r->log.commit;
        struct raft_msg m = {.type = RAFT_MSG_HEARTBEAT, .to = pr->id, .commit = c,
                             .ctx = seq};
        rr_send(r, &m);
    }
}

/* ------------------------------------------------------------------ commit */

static raft_index voter_match(struct raft *r, raft_id id)
{
    if (id == r->id) return r->log.stable; /* own log counts only once durable */
    struct raft_progress *pr = rr_progress(r, id);
    return pr ? pr->match : 0;
}

bool rr_maybe_commit(struct raft *r)
{
    RAFT_ASSERT(r, r->role == RAFT_LEADER);
    uint32_t n = r->conf.n_voters;
    if (n == 0) return false;
    raft_index m[RAFT_VOTERS_MAX];
    for (uint32_t i = 0; i < n; i++) {
        raft_index v = voter_match(r, r->conf.voters[i]);
        uint32_t k = i;
        while (k > 0 && m[k - 1] < v) { /* insertion sort, descending */
            m[k] = m[k - 1];
            k--;
        }
        m[k] = v;
    }
    raft_index mci = m[rr_quorum(r) - 1];
    raft_term t = 0;
    if (mci <= r->log.commit) return false;
    /* Paper 5.4.2 (Figure 8): never commit an earlier term's entry by counting. */
    if (rlog_term(&r->log, mci, &t) != RAFT_OK || t != r->term) return false;
    raft_index old = r->log.commit;
    r->log.commit = mci;
    rr_commit_advanced(r, old);
    return true;
}

void rr_commit_advanced(struct raft *r, raft_index old)
{
    RAFT_ASSERT(r, r->log.commit >= old);
    RAFT_ASSERT(r, r->log.commit <= rlog_last_index(&r->log));
    if (r->role != RAFT_LEADER) return;
    for (raft_index i = old + 1; i <= r->log.commit; i++) {
        const struct raft_entry *e = rlog_entry(&r->log, i);
        if (!e) continue;
        r->uncommitted_bytes = r->uncommitted_bytes > e->len ? r->uncommitted_bytes - e->len : 0;
    }
    if (old < r->term_start && r->log.commit >= r->term_start) rr_reads_assign(r);
    if (r->conf_index > old && r->conf_index <= r->log.commit) rr_check_self_removed(r);
}

/* ------------------------------------------------------------------ follower side */

/* A message from the leader of our term. Returns false (drop it) if we are that term's
 * leader ourselves: two leaders in one term is impossible (paper 5.2), so the message is
 * bogus input and must not dethrone us. */
static bool follow(struct raft *r, const struct raft_msg *m)
{
    if (r->role == RAFT_LEADER) return false;
    if (r->role != RAFT_FOLLOWER || r->leader != m->from)
        rr_become_follower(r, m->term, m->from);
    r->election_elapsed = 0;
    return true;
}

static void append_new(struct raft *r, const struct raft_entry *ents, size_t n)
{
    if (n == 0) return;
    raft_index ci = ents[0].index;
    if (ci <= rlog_last_index(&r->log)) {
        RAFT_ASSERT(r, ci > r->log.commit); /* paper 5.3: committed entries are final */
        rlog_truncate_from(&r->log, ci);
        if (r->conf_index >= ci) rr_conf_recompute(r);
    }
    raft_index before = rlog_last_index(&r->log);
    RAFT_ASSERT(r, ci == before + 1);
    (void)rlog_append(&r->log, ents, n); /* on NOMEM a prefix stays: reported below */
    for (raft_index i = before + 1; i <= rlog_last_index(&r->log); i++) {
        const struct raft_entry *e = rlog_entry(&r->log, i);
        if (e->type != RAFT_ENTRY_CONF) continue;
        struct raft_conf c = r->conf;
        rr_conf_apply_entry(&c, e);
        rr_conf_set(r, &c, i);
    }
}

void rr_step_append(struct raft *r, const struct raft_msg *m)
{
    if (!follow(r, m)) return;
    struct raft_msg resp = {.type = RAFT_MSG_APPEND_RESP, .to = m->from};
    if (m->index < r->log.commit) {
        resp.index = r->log.commit;
        rr_send(r, &resp);
        return;
    }
    if (!rlog_match(&r->log, m->index, m->log_term)) {
        raft_index last = rlog_last_index(&r->log);
        raft_index hint = m->index < last ? m->index : last;
        hint = rlog_conflict_by_term(&r->log, hint, m->log_term);
        raft_term ht = 0;
        (void)rlog_term(&r->log, hint, &ht);
        resp.reject = true;
        resp.index = m->index;
        resp.reject_hint = hint;
        resp.log_term = ht;
        rr_send(r, &resp);
        return;
    }
    size_t k = 0;
    while (k < m->n_entries && rlog_match(&r->log, m->entries[k].index, m->entries[k].term))
        k++;
    append_new(r, m->entries + k, m->n_entries - k);
    raft_index last_new = m->index + m->n_entries;
    if (last_new > rlog_last_index(&r->log)) last_new = rlog_last_index(&r->log);
    raft_index c = m->commit < last_new ? m->commit : last_new;
    if (c > r->log.commit) r->log.commit = c;
    resp.index = last_new;
    rr_send(r, &resp);
}

void rr_step_heartbeat(struct raft *r, const struct raft_msg *m)
{
    if (!follow(r, m)) return;
    raft_index c = m->commit;
    if (c > rlog_last_index(&r->log)) c = rlog_last_index(&r->log);
    if (c > r->log.commit) r->log.commit = c;
    struct raft_msg resp = {.type = RAFT_MSG_HEARTBEAT_RESP, .to = m->from, .ctx = m->ctx};
    rr_send(r, &resp);
}

void rr_step_snapshot(struct raft *r, const struct raft_msg *m)
{
    if (!follow(r, m)) return;
    const struct raft_snapshot_meta *s = &m->snapshot;
    struct raft_msg resp = {.type = RAFT_MSG_APPEND_RESP, .to = m->from};
    if (s->index <= r->log.commit) {
        resp.index = r->log.commit;
    } else if (rlog_match(&r->log, s->index, s->term)) {
        r->log.commit = s->index; /* we hold the entry already: fast-forward commit */
        resp.index = s->index;
    } else {
        RAFT_ASSERT(r, s->index > r->log.commit); /* never roll back committed state */
        rlog_restore(&r->log, s);
        r->snap_pending = true;
        r->snap_meta = *s;
        rr_conf_set(r, &s->conf, s->index);
        resp.index = s->index;
    }
    rr_send(r, &resp);
}

/* ------------------------------------------------------------------ leader side */

static void on_reject(struct raft *r, struct raft_progress *pr, const struct raft_msg *m)
{
    if (pr->state == PR_SNAPSHOT) return;
    if (pr->state == PR_REPLICATE && m->index <= pr->match) return;   /* stale */
    if (pr->state == PR_PROBE && m->index != pr->next - 1) return;     /* stale */
    raft_index probe = m->reject_hint;
    if (m->log_term > 0) probe = rlog_conflict_by_term(&r->log, m->reject_hint, m->log_term);
    raft_index next = m->index < probe + 1 ? m->index : probe + 1;
    become_probe(pr, next);
    rr_send_append(r, pr, true);
}

void rr_step_append_resp(struct raft *r, const struct raft_msg *m)
{
    if (r->role != RAFT_LEADER) return;
    struct raft_progress *pr = rr_progress(r, m->from);
    if (!pr) return;
    pr->recent_active = true;
    pr->ticks_since_contact = 0;
    if (m->reject) {
        on_reject(r, pr, m);
        return;
    }
    if (m->index > rlog_last_index(&r->log)) return; /* cannot be ours: ignore */
    bool progressed = m->index > pr->match;
    if (progressed) {
        pr->match = m->index;
        pr->stall_ticks = 0;
        if (pr->next <= pr->match) pr->next = pr->match + 1;
        infl_free_to(r, pr, pr->match);
    }
    RAFT_ASSERT(r, pr->match < pr->next);
    if (pr->state == PR_PROBE && m->index >= pr->match) become_replicate(pr);
    else if (pr->state == PR_SNAPSHOT && pr->match >= pr->pending_snapshot) become_replicate(pr);
    pr->probe_sent = false;
    if (progressed && rr_maybe_commit(r))
        rr_broadcast_append(r);
    else
        rr_send_append(r, pr, false);
    if (r->role == RAFT_LEADER) rr_check_transfer(r, pr);
}

void rr_step_heartbeat_resp(struct raft *r, const struct raft_msg *m)
{
    if (r->role != RAFT_LEADER) return;
    struct raft_progress *pr = rr_progress(r, m->from);
    if (!pr) return;
    pr->recent_active = true;
    pr->ticks_since_contact = 0;
    pr->probe_sent = false;
    if (m->ctx > pr->acked_seq) pr->acked_seq = m->ctx;
    raft_index last = rlog_last_index(&r->log);
    /* Lost APPENDs: without progress for a while, resend from match (back to probe). */
    if (pr->state == PR_REPLICATE && pr->match < last &&
        pr->stall_ticks > 2 * r->cfg.heartbeat_ticks + 2)
        become_probe(pr, pr->match + 1);
    if (pr->state == PR_SNAPSHOT && pr->stall_ticks > 8 * r->cfg.election_ticks)
        become_probe(pr, pr->match + 1);
    if (pr->match < last) rr_send_append(r, pr, pr->state == PR_PROBE);
    rr_reads_on_ack(r);
}

void rr_stall_tick(struct raft *r)
{
    raft_index last = rlog_last_index(&r->log);
    for (uint32_t i = 0; i < r->n_prs; i++) {
        struct raft_progress *pr = &r->prs[i];
        if (pr->match < last || pr->state == PR_SNAPSHOT) {
            if (pr->stall_ticks < UINT32_MAX) pr->stall_ticks++;
        } else {
            pr->stall_ticks = 0;
        }
    }
}

/* ------------------------------------------------------------------ proposals */

int rr_propose_check(const struct raft *r, size_t len)
{
    if (r->transferee != RAFT_NONE) return RAFT_ERR_TRANSFERRING;
    if (len > r->cfg.max_entry_bytes) return RAFT_ERR_TOO_BIG;
    if (r->uncommitted_bytes > 0 && r->uncommitted_bytes + len > r->cfg.max_uncommitted_bytes)
        return RAFT_ERR_OVERLOAD;
    return RAFT_OK;
}

int rr_leader_append(struct raft *r, uint8_t type, const void *data, size_t len,
                     raft_index *index, raft_term *term)
{
    RAFT_ASSERT(r, r->role == RAFT_LEADER);
    struct raft_entry e = {.term = r->term, .index = rlog_last_index(&r->log) + 1,
                           .type = type, .len = (uint32_t)len, .data = (uint8_t *)data};
    int rc = rlog_append(&r->log, &e, 1);
    if (rc) return rc;
    r->uncommitted_bytes += len;
    if (type == RAFT_ENTRY_CONF) {
        struct raft_conf c = r->conf;
        rr_conf_apply_entry(&c, &e);
        rr_conf_set(r, &c, e.index);
    }
    if (index) *index = e.index;
    if (term) *term = e.term;
    rr_broadcast_append(r);
    return RAFT_OK;
}

void rr_step_propose(struct raft *r, const struct raft_msg *m)
{
    struct raft_msg resp = {.type = RAFT_MSG_PROPOSE_RESP, .to = m->from, .ctx = m->ctx};
    const struct raft_entry *e = &m->entries[0];
    int rc = RAFT_ERR_DROPPED; /* not (or no longer) the leader: definitely not appended */
    /* Only in the term the follower forwarded it in: then an entry from a proposal
     * forwarded in term T can only ever carry term T, and the proposer can tell it will
     * never commit once anything of a later term is committed (terms never decrease along
     * the log, paper 5.3/5.4). */
    if (r->role == RAFT_LEADER && m->term == r->term) {
        rc = e->type == RAFT_ENTRY_NORMAL ? rr_propose_check(r, e->len) : RAFT_ERR_BAD_ARG;
        if (rc == RAFT_OK)
            rc = rr_leader_append(r, RAFT_ENTRY_NORMAL, e->data, e->len, &resp.index,
                                  &resp.log_term);
    }
    if (rc) {
        resp.reject = true;
        resp.err = (uint16_t)rc;
        resp.log_term = m->term; /* which attempt this answers: the term it was sent in */
    }
    rr_send(r, &resp);
}

void rr_step_propose_resp(struct raft *r, const struct raft_msg *m)
{
    /* m->log_term is the term the proposal was forwarded in (an accepted one's entry has
     * that term too). fwd_props holds only this term's forwards, and the application may
     * forward the same ctx again in a later term: an answer to an earlier term's attempt
     * must not take the current attempt off the list. */
    size_t i = 0;
    while (m->log_term == r->term && i < r->fwd_props.n && r->fwd_props.v[i] != m->ctx) i++;
    if (m->log_term == r->term && i < r->fwd_props.n) {
        memmove(&r->fwd_props.v[i], &r->fwd_props.v[i + 1],
                (r->fwd_props.n - i - 1) * sizeof(uint64_t));
        r->fwd_props.n--;
    }
    /* A late answer (the proposal was already reported UNKNOWN_OUTCOME) is delivered too:
     * it turns an unknown outcome into a known one; the application ignores ctx it does not
     * know, and an answer whose term is not that of its latest attempt. */
    if (m->reject)
        rr_push_prop(r, m->ctx, m->err ? m->err : RAFT_ERR_DROPPED, 0, m->log_term);
    else
        rr_push_prop(r, m->ctx, RAFT_OK, m->index, m->log_term);
}

/* The leader we forwarded to is gone: proposals may or may not have been appended
 * (UNKNOWN_OUTCOME: the application decides at apply time by index/term or its own
 * request ids); reads simply failed (DROPPED). */
void rr_fail_forwarded(struct raft *r)
{
    for (size_t i = 0; i < r->fwd_props.n; i++)
        rr_push_prop(r, r->fwd_props.v[i], RAFT_ERR_UNKNOWN_OUTCOME, 0, 0);
    for (size_t i = 0; i < r->fwd_reads.n; i++)
        rr_push_read(r, r->fwd_reads.v[i], RAFT_ERR_DROPPED, 0);
    r->fwd_props.n = 0;
    r->fwd_reads.n = 0;
}
