/*
 * election.c - leader election: ticks, randomized timeouts, PreVote, Vote, CheckQuorum and
 * the term rules every message passes first.
 *
 * Rules (Raft paper section 5.2, thesis sections 3.4, 4.2.3, 6.2, 9.6):
 *  - a member that is a voter in its latest configuration campaigns after a randomized
 *    timeout in [election_ticks, 2*election_ticks) drawn from its own PRNG;
 *  - PreVote (thesis 9.6): a trial election at term+1 that changes no term; a voter
 *    grants it only for an up-to-date log and when it has not heard from a leader within
 *    the election timeout;
 *  - with CheckQuorum (thesis 6.2) a leader that did not hear from a quorum of voters in
 *    an election timeout steps down, and members that heard from a leader within the
 *    timeout ignore (pre)vote requests (thesis 4.2.3) unless the election is a
 *    leadership transfer (ctx == 1);
 *  - one vote per term, recorded in the hard state, granted only to an up-to-date log
 *    (paper 5.4.1); the answer goes out in the same Ready, after the vote is durable;
 *  - candidates ask only the voters of their latest configuration; a member answers
 *    without consulting its own configuration (thesis 4.1), so a learner is asked only
 *    by a candidate whose log already promoted it (as etcd does). Learners and removed
 *    members never campaign and never count toward a quorum.
 */
#include "raft/raft_internal.h"

void rr_reset_timeout(struct raft *r)
{
    uint32_t et = r->cfg.election_ticks;
    r->election_elapsed = 0;
    r->randomized_timeout = et + (uint32_t)(rr_prng_next(&r->prng) % et);
}

bool rr_promotable(const struct raft *r) { return rr_is_voter(&r->conf, r->id); }

static bool sole_voter(const struct raft *r)
{
    return r->conf.n_voters == 1 && r->conf.voters[0] == r->id;
}

void rr_tick_election(struct raft *r)
{
    r->election_elapsed++;
    if (!rr_promotable(r)) return;
    /* A group of one has nobody to wait for: campaign on the first tick. */
    if (r->election_elapsed >= r->randomized_timeout || sole_voter(r))
        rr_campaign(r, r->cfg.pre_vote, false);
}

/* Thesis 6.2: counts voters heard from since the last check, then clears the marks. */
bool rr_quorum_active(struct raft *r)
{
    uint32_t active = 0;
    for (uint32_t i = 0; i < r->n_prs; i++) {
        struct raft_progress *pr = &r->prs[i];
        if (pr->learner) continue;
        if (pr->id == r->id || pr->recent_active) active++;
        if (pr->id != r->id) pr->recent_active = false;
    }
    return active >= rr_quorum(r);
}

void rr_tick_leader(struct raft *r)
{
    r->heartbeat_elapsed++;
    r->election_elapsed++;
    for (uint32_t i = 0; i < r->n_prs; i++)
        if (r->prs[i].ticks_since_contact < UINT32_MAX) r->prs[i].ticks_since_contact++;
    rr_stall_tick(r);
    if (r->transferee != RAFT_NONE && ++r->transfer_elapsed >= r->cfg.election_ticks)
        r->transferee = RAFT_NONE; /* thesis 3.10: abort a transfer after a timeout */
    if (r->election_elapsed >= r->cfg.election_ticks) {
        r->election_elapsed = 0;
        if (r->cfg.check_quorum && !rr_quorum_active(r)) {
            rr_become_follower(r, r->term, RAFT_NONE);
            return;
        }
    }
    if (r->heartbeat_elapsed >= r->cfg.heartbeat_ticks) {
        r->heartbeat_elapsed = 0;
        rr_broadcast_heartbeat(r);
    }
}

static void leave_leadership(struct raft *r)
{
    rr_reads_fail_all(r, RAFT_ERR_NOT_LEADER);
    r->transferee = RAFT_NONE;
    r->uncommitted_bytes = 0;
    r->step_down_pending = false;
    for (uint32_t i = 0; i < r->n_prs; i++) r->prs[i].infl_n = 0;
}

void rr_become_follower(struct raft *r, raft_term term, raft_id leader)
{
    RAFT_ASSERT(r, term >= r->term);
    bool changed = term != r->term || leader != r->leader;
    if (r->role == RAFT_LEADER) leave_leadership(r);
    if (term > r->term) {
        r->term = term;
        r->vote = RAFT_NONE;
    }
    r->role = RAFT_FOLLOWER;
    r->leader = leader;
    r->transferee = RAFT_NONE;
    rr_reset_timeout(r);
    if (changed) rr_fail_forwarded(r);
}

static void reset_votes(struct raft *r) { r->n_votes = 0; }

/* Records a (pre)vote answer from a voter; returns +1 won, -1 lost, 0 pending. */
static int tally(struct raft *r, raft_id from, bool granted)
{
    if (!rr_is_voter(&r->conf, from)) return 0;
    uint32_t i = 0;
    while (i < r->n_votes && r->vote_from[i] != from) i++;
    if (i == r->n_votes) {
        if (r->n_votes >= RAFT_VOTERS_MAX) return 0;
        r->vote_from[r->n_votes] = from;
        r->vote_granted[r->n_votes++] = granted ? 1 : -1;
    }
    uint32_t yes = 0, no = 0;
    for (uint32_t k = 0; k < r->n_votes; k++) {
        if (!rr_is_voter(&r->conf, r->vote_from[k])) continue;
        if (r->vote_granted[k] > 0) yes++; else no++;
    }
    if (yes >= rr_quorum(r)) return 1;
    if (no > r->conf.n_voters - rr_quorum(r)) return -1;
    return 0;
}

void rr_campaign(struct raft *r, bool pre_vote, bool transfer)
{
    RAFT_ASSERT(r, rr_promotable(r));
    RAFT_ASSERT(r, r->role != RAFT_LEADER);
    raft_id old_leader = r->leader;
    if (pre_vote) {
        r->role = RAFT_PRE_CANDIDATE;
    } else {
        r->term++;
        r->vote = r->id;
        r->role = RAFT_CANDIDATE;
    }
    r->leader = RAFT_NONE;
    if (old_leader != RAFT_NONE || !pre_vote) rr_fail_forwarded(r);
    rr_reset_timeout(r);
    reset_votes(r);
    int res = tally(r, r->id, true);
    if (res > 0) {
        if (pre_vote)
            rr_campaign(r, false, transfer);
        else
            rr_become_leader(r);
        return;
    }
    for (uint32_t i = 0; i < r->conf.n_voters; i++) {
        raft_id to = r->conf.voters[i];
        if (to == r->id) continue;
        struct raft_msg m = {.type = pre_vote ? RAFT_MSG_PREVOTE : RAFT_MSG_VOTE, .to = to,
                             .term = pre_vote ? r->term + 1 : r->term,
                             .index = rlog_last_index(&r->log),
                             .log_term = rlog_last_term(&r->log), .ctx = transfer ? 1 : 0};
        rr_send(r, &m);
    }
}

void rr_become_leader(struct raft *r)
{
    RAFT_ASSERT(r, r->role == RAFT_CANDIDATE);
    RAFT_ASSERT(r, r->vote == r->id);
    r->role = RAFT_LEADER;
    r->leader = r->id;
    r->transferee = RAFT_NONE;
    r->heartbeat_elapsed = 0;
    r->election_elapsed = 0;
    r->uncommitted_bytes = 0;
    r->step_down_pending = false;
    r->timeout_now_sent = false;
    r->read_round_wanted = false;
    for (uint32_t i = 0; i < r->n_prs; i++) rr_progress_reset(r, &r->prs[i]);
    /* Thesis 6.4: a no-op of the new term lets the leader learn which entries are
     * committed (and serve ReadIndex) as soon as it commits. */
    raft_index idx = 0;
    int rc = rr_leader_append(r, RAFT_ENTRY_NORMAL, NULL, 0, &idx, NULL);
    RAFT_ASSERT(r, rc == RAFT_OK);
    r->term_start = idx;
}

/* Paper 5.1 (terms), thesis 9.6 (PreVote) and 4.2.3 (disruptive servers). */
bool rr_step_term(struct raft *r, const struct raft_msg *m)
{
    switch (m->type) {
    case RAFT_MSG_PROPOSE: case RAFT_MSG_PROPOSE_RESP: case RAFT_MSG_READ_INDEX:
    case RAFT_MSG_READ_INDEX_RESP: case RAFT_MSG_TRANSFER:
        return true; /* requests and their answers do not carry leadership */
    default: break;
    }
    bool vote_req = m->type == RAFT_MSG_PREVOTE || m->type == RAFT_MSG_VOTE;
    if (m->term > r->term) {
        if (vote_req) {
            bool in_lease = r->cfg.check_quorum && r->leader != RAFT_NONE &&
                            r->election_elapsed < r->cfg.election_ticks;
            if (in_lease && m->ctx != 1) return false;
        }
        if (m->type == RAFT_MSG_PREVOTE) return true;
        if (m->type == RAFT_MSG_PREVOTE_RESP && !m->reject) return true;
        bool from_leader = m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT ||
                           m->type == RAFT_MSG_SNAPSHOT;
        rr_become_follower(r, m->term, from_leader ? m->from : RAFT_NONE);
        return true;
    }
    if (m->term < r->term) {
        if ((r->cfg.check_quorum || r->cfg.pre_vote) &&
            (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT)) {
            /* Tell a stale leader about the newer term so it steps down (marked as a
             * rejection of index 0 so it can never be taken for an acknowledgment). */
            struct raft_msg resp = {.type = RAFT_MSG_APPEND_RESP, .to = m->from,
                                    .reject = true};
            rr_send(r, &resp);
        } else if (m->type == RAFT_MSG_PREVOTE) {
            struct raft_msg resp = {.type = RAFT_MSG_PREVOTE_RESP, .to = m->from,
                                    .reject = true};
            rr_send(r, &resp);
        }
        return false;
    }
    return true;
}

void rr_step_vote(struct raft *r, const struct raft_msg *m)
{
    bool pre = m->type == RAFT_MSG_PREVOTE;
    bool can = r->vote == m->from || (r->vote == RAFT_NONE && r->leader == RAFT_NONE) ||
               (pre && m->term > r->term);
    struct raft_msg resp = {.type = pre ? RAFT_MSG_PREVOTE_RESP : RAFT_MSG_VOTE_RESP,
                            .to = m->from};
    if (can && rlog_up_to_date(&r->log, m->index, m->log_term)) {
        resp.term = m->term; /* PreVote: the term the candidate will campaign in */
        if (!pre) {
            RAFT_ASSERT(r, m->term == r->term);
            r->vote = m->from; /* persisted with this Ready, before resp is sent */
            r->election_elapsed = 0;
        }
    } else {
        resp.reject = true;
    }
    rr_send(r, &resp);
}

void rr_step_vote_resp(struct raft *r, const struct raft_msg *m)
{
    bool pre = m->type == RAFT_MSG_PREVOTE_RESP;
    if (pre && r->role != RAFT_PRE_CANDIDATE) return;
    if (!pre && r->role != RAFT_CANDIDATE) return;
    if (pre && !m->reject && m->term != r->term + 1) return; /* answer to an old round */
    int res = tally(r, m->from, !m->reject);
    if (res > 0) {
        if (pre)
            rr_campaign(r, false, false);
        else
            rr_become_leader(r);
    } else if (res < 0) {
        rr_become_follower(r, r->term, RAFT_NONE);
    }
}
