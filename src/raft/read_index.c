/*
 * read_index.c - linearizable reads without log writes (thesis 6.4, ReadIndex), from the
 * leader or from followers through the leader, and optional lease reads (thesis 6.4.1).
 *
 * Leader: a read is assigned the commit index only once the leader has committed an entry
 * of its own term (its no-op), because before that its commit index may be stale. Then it
 * needs a heartbeat round newer than the assignment (need_seq) acknowledged by a quorum of
 * voters; every heartbeat carries the round number in ctx, so one round confirms every
 * read that arrived before it was sent. A member that is not leader never answers a read
 * as leader: stepping down fails the pending reads (NOT_LEADER).
 * Lease (only with check_quorum and lease_read): followers ignore elections for
 * election_ticks after hearing from the leader, so a quorum acknowledgment of a round sent
 * at tick T keeps the leadership safe until T + election_ticks (minus a tick of margin).
 * Invariant: reads[] is FIFO; unassigned reads (if any) precede assigned ones, and
 * need_seq never decreases along the queue.
 */
#include "raft/raft_internal.h"

static void answer(struct raft *r, const struct read_req *q, int err, raft_index index)
{
    if (q->from == RAFT_NONE) {
        rr_push_read(r, q->ctx, err, index);
        return;
    }
    struct raft_msg m = {.type = RAFT_MSG_READ_INDEX_RESP, .to = q->from, .ctx = q->ctx,
                         .index = index, .reject = err != RAFT_OK, .err = (uint16_t)err};
    rr_send(r, &m);
}

/* Highest heartbeat round acknowledged by a quorum of voters (the leader acks itself). */
static uint64_t quorum_seq(const struct raft *r)
{
    uint32_t n = r->conf.n_voters;
    uint64_t v[RAFT_VOTERS_MAX];
    for (uint32_t i = 0; i < n; i++) {
        raft_id id = r->conf.voters[i];
        uint64_t s = 0;
        if (id == r->id) {
            s = UINT64_MAX;
        } else {
            for (uint32_t k = 0; k < r->n_prs; k++)
                if (r->prs[k].id == id) s = r->prs[k].acked_seq;
        }
        uint32_t j = i;
        while (j > 0 && v[j - 1] < s) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = s;
    }
    return n ? v[rr_quorum(r) - 1] : 0;
}

void rr_note_round(struct raft *r, uint64_t seq)
{
    r->rounds[seq % RAFT_HB_ROUNDS].seq = seq;
    r->rounds[seq % RAFT_HB_ROUNDS].tick = r->now;
}

bool rr_lease_valid(const struct raft *r)
{
    if (!r->cfg.lease_read || !r->cfg.check_quorum || r->role != RAFT_LEADER) return false;
    /* A transfer target campaigns with ctx=1, which followers grant despite the lease. */
    if (r->transferee != RAFT_NONE || r->timeout_now_sent) return false;
    uint64_t q = quorum_seq(r);
    if (q == 0 || q == UINT64_MAX) return false;
    const struct hb_round *h = &r->rounds[q % RAFT_HB_ROUNDS];
    if (h->seq != q) return false;
    return r->now + 1 < h->tick + r->cfg.election_ticks;
}

static bool committed_in_term(const struct raft *r)
{
    return r->role == RAFT_LEADER && r->log.commit >= r->term_start;
}

void rr_reads_on_ack(struct raft *r)
{
    if (r->role != RAFT_LEADER || r->reads.n == 0) return;
    uint64_t q = quorum_seq(r);
    size_t k = 0;
    while (k < r->reads.n && r->reads.v[k].assigned && r->reads.v[k].need_seq <= q) {
        answer(r, &r->reads.v[k], RAFT_OK, r->reads.v[k].index);
        k++;
    }
    if (k == 0) return;
    memmove(r->reads.v, r->reads.v + k, (r->reads.n - k) * sizeof(*r->reads.v));
    r->reads.n -= k;
}

void rr_reads_assign(struct raft *r)
{
    RAFT_ASSERT(r, committed_in_term(r));
    bool any = false;
    for (size_t i = 0; i < r->reads.n; i++) {
        struct read_req *q = &r->reads.v[i];
        if (q->assigned) continue;
        q->assigned = true;
        q->index = r->log.commit;
        q->need_seq = r->hb_seq + 1;
        any = true;
    }
    if (any) r->read_round_wanted = true;
    rr_reads_on_ack(r);
}

void rr_reads_fail_all(struct raft *r, int err)
{
    for (size_t i = 0; i < r->reads.n; i++) answer(r, &r->reads.v[i], err, 0);
    r->reads.n = 0;
    r->read_round_wanted = false;
}

void rr_flush_read_round(struct raft *r)
{
    if (r->role == RAFT_LEADER && r->read_round_wanted) rr_broadcast_heartbeat(r);
    r->read_round_wanted = false;
}

int rr_read_local(struct raft *r, raft_id from, uint64_t ctx)
{
    RAFT_ASSERT(r, r->role == RAFT_LEADER);
    if (committed_in_term(r) && rr_lease_valid(r)) {
        struct read_req q = {.from = from, .ctx = ctx};
        answer(r, &q, RAFT_OK, r->log.commit);
        return RAFT_OK;
    }
    if (r->reads.n >= r->cfg.max_pending_reads) return RAFT_ERR_OVERLOAD;
    struct read_req q = {.from = from, .ctx = ctx};
    if (committed_in_term(r)) {
        q.assigned = true;
        q.index = r->log.commit;
        q.need_seq = r->hb_seq + 1;
        r->read_round_wanted = true;
    }
    if (!RR_PUSH(r->reads, q)) return RAFT_ERR_NOMEM;
    rr_reads_on_ack(r); /* a single voter confirms itself */
    return RAFT_OK;
}

int raft_read_index(struct raft *r, uint64_t ctx)
{
    if (r->role == RAFT_LEADER) return rr_read_local(r, RAFT_NONE, ctx);
    if (r->leader == RAFT_NONE) return RAFT_ERR_NO_LEADER;
    if (r->fwd_reads.n >= r->cfg.max_pending_reads) return RAFT_ERR_OVERLOAD;
    if (!RR_PUSH(r->fwd_reads, ctx)) return RAFT_ERR_NOMEM;
    struct raft_msg m = {.type = RAFT_MSG_READ_INDEX, .to = r->leader, .ctx = ctx};
    rr_send(r, &m);
    return RAFT_OK;
}

void rr_step_read_index(struct raft *r, const struct raft_msg *m)
{
    int rc = r->role == RAFT_LEADER ? rr_read_local(r, m->from, m->ctx) : RAFT_ERR_NOT_LEADER;
    if (rc == RAFT_OK) return;
    struct read_req q = {.from = m->from, .ctx = m->ctx};
    answer(r, &q, rc, 0);
}

void rr_step_read_index_resp(struct raft *r, const struct raft_msg *m)
{
    size_t i = 0;
    while (i < r->fwd_reads.n && r->fwd_reads.v[i] != m->ctx) i++;
    if (i == r->fwd_reads.n) return; /* already failed, or not ours */
    memmove(&r->fwd_reads.v[i], &r->fwd_reads.v[i + 1],
            (r->fwd_reads.n - i - 1) * sizeof(uint64_t));
    r->fwd_reads.n--;
    if (m->reject)
        rr_push_read(r, m->ctx, m->err ? m->err : RAFT_ERR_NOT_LEADER, 0);
    else
        rr_push_read(r, m->ctx, RAFT_OK, m->index);
}
