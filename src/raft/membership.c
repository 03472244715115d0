/*
 * membership.c - configurations: single-server changes (thesis 4.1), learners, promotion,
 * removing the leader, leadership transfer (thesis 3.10), and the conf-change codec.
 *
 * Rules (thesis 4.1, 4.2.2, 3.10):
 *  - a member uses the latest configuration in its log, committed or not; truncating the
 *    log recomputes it; a snapshot carries the configuration as of its index;
 *  - the leader accepts a change only when the previous one is committed (CONF_PENDING)
 *    and after it committed an entry of its own term (fixes the bug of thesis 4.1 note);
 *  - a leader that removes itself keeps replicating (not counting itself toward quorums)
 *    until the change commits, then steps down; a member that is not a voter in its
 *    latest configuration never campaigns;
 *  - transfer: the leader stops accepting proposals, catches the target up, sends
 *    TIMEOUT_NOW; the target campaigns at once with ctx=1 (bypasses the election lease);
 *    the transfer is aborted after an election timeout (election.c).
 *
 * Conf-change encoding (little endian, version 1):
 *   offset size field
 *   0      1    version (1)
 *   1      1    type (enum raft_conf_change_type)
 *   2      8    node id (> 0)
 *   10     4    ctx_len (<= RAFT_CC_CTX_MAX)
 *   14     n    ctx bytes; total length is exactly 14 + ctx_len
 */
#include "raft/raft_internal.h"

#define CC_HDR 14u

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

size_t raft_conf_change_encode(const struct raft_conf_change *cc, uint8_t *buf, size_t cap)
{
    if (cc->ctx_len > RAFT_CC_CTX_MAX) return 0;
    size_t need = CC_HDR + cc->ctx_len;
    if (cap < need) return 0;
    buf[0] = 1;
    buf[1] = cc->type;
    put_le(buf + 2, cc->node, 8);
    put_le(buf + 10, cc->ctx_len, 4);
    if (cc->ctx_len) memcpy(buf + CC_HDR, cc->ctx, cc->ctx_len);
    return need;
}

int raft_conf_change_decode(const uint8_t *buf, size_t len, struct raft_conf_change *out)
{
    if (!buf || len < CC_HDR || buf[0] != 1) return RAFT_ERR_CORRUPT;
    uint8_t type = buf[1];
    if (type < RAFT_CC_ADD_VOTER || type > RAFT_CC_REMOVE) return RAFT_ERR_CORRUPT;
    uint64_t node = get_le(buf + 2, 8);
    uint64_t ctx_len = get_le(buf + 10, 4);
    if (node == RAFT_NONE || ctx_len > RAFT_CC_CTX_MAX || len != CC_HDR + ctx_len)
        return RAFT_ERR_CORRUPT;
    memset(out, 0, sizeof(*out));
    out->type = type;
    out->node = node;
    out->ctx_len = (uint32_t)ctx_len;
    if (ctx_len) memcpy(out->ctx, buf + CC_HDR, (size_t)ctx_len);
    return RAFT_OK;
}

/* ------------------------------------------------------------------ configurations */

static void remove_id(raft_id *v, uint32_t *n, raft_id id)
{
    for (uint32_t i = 0; i < *n; i++) {
        if (v[i] != id) continue;
        memmove(&v[i], &v[i + 1], (*n - i - 1) * sizeof(*v));
        (*n)--;
        return;
    }
}

/* Applies a conf entry as a delta; lenient so every member folds the log identically
 * (the leader validated the change before appending it). */
void rr_conf_apply_entry(struct raft_conf *c, const struct raft_entry *e)
{
    struct raft_conf_change cc;
    if (e->type != RAFT_ENTRY_CONF || raft_conf_change_decode(e->data, e->len, &cc)) return;
    switch (cc.type) {
    case RAFT_CC_ADD_VOTER:
        remove_id(c->learners, &c->n_learners, cc.node); /* promotion */
        if (!rr_is_voter(c, cc.node) && c->n_voters < RAFT_VOTERS_MAX)
            c->voters[c->n_voters++] = cc.node;
        break;
    case RAFT_CC_ADD_LEARNER:
        if (!rr_is_voter(c, cc.node) && !rr_is_learner(c, cc.node) &&
            c->n_learners < RAFT_LEARNERS_MAX)
            c->learners[c->n_learners++] = cc.node;
        break;
    case RAFT_CC_REMOVE:
        if (c->n_voters == 1 && c->voters[0] == cc.node) break; /* never empty */
        remove_id(c->voters, &c->n_voters, cc.node);
        remove_id(c->learners, &c->n_learners, cc.node);
        break;
    default: break;
    }
}

bool rr_conf_valid(const struct raft_conf *c)
{
    if (c->n_voters == 0 || c->n_voters > RAFT_VOTERS_MAX) return false;
    if (c->n_learners > RAFT_LEARNERS_MAX) return false;
    for (uint32_t i = 0; i < c->n_voters + c->n_learners; i++) {
        raft_id a = i < c->n_voters ? c->voters[i] : c->learners[i - c->n_voters];
        if (a == RAFT_NONE) return false;
        for (uint32_t k = i + 1; k < c->n_voters + c->n_learners; k++) {
            raft_id b = k < c->n_voters ? c->voters[k] : c->learners[k - c->n_voters];
            if (a == b) return false;
        }
    }
    return true;
}

void rr_conf_at(const struct raft *r, raft_index idx, struct raft_conf *out)
{
    *out = r->log.snap_conf;
    for (raft_index i = r->log.snap_index + 1; i <= idx; i++) {
        const struct raft_entry *e = rlog_entry(&r->log, i);
        if (e && e->type == RAFT_ENTRY_CONF) rr_conf_apply_entry(out, e);
    }
}

void rr_conf_recompute(struct raft *r)
{
    struct raft_conf c = r->log.snap_conf;
    raft_index at = r->log.snap_index;
    for (raft_index i = r->log.snap_index + 1; i <= rlog_last_index(&r->log); i++) {
        const struct raft_entry *e = rlog_entry(&r->log, i);
        if (e->type != RAFT_ENTRY_CONF) continue;
        rr_conf_apply_entry(&c, e);
        at = i;
    }
    rr_conf_set(r, &c, at);
}

static void add_member(struct raft *r, struct raft_progress *dst, bool *used, raft_id id,
                       bool learner)
{
    for (uint32_t k = 0; k < r->n_prs; k++) {
        if (r->prs[k].id != id || used[k]) continue;
        *dst = r->prs[k];
        used[k] = true;
        dst->learner = learner;
        return;
    }
    memset(dst, 0, sizeof(*dst));
    dst->id = id;
    dst->learner = learner;
    rr_progress_reset(r, dst);
}

/* Installs c as the configuration in effect and rebuilds prs[] to match it. */
void rr_conf_set(struct raft *r, const struct raft_conf *c, raft_index idx)
{
    struct raft_progress np[RAFT_MEMBERS_MAX];
    bool used[RAFT_MEMBERS_MAX] = {false};
    uint32_t n = 0;
    for (uint32_t i = 0; i < c->n_voters; i++) add_member(r, &np[n++], used, c->voters[i], 0);
    for (uint32_t i = 0; i < c->n_learners; i++)
        add_member(r, &np[n++], used, c->learners[i], 1);
    for (uint32_t k = 0; k < r->n_prs; k++)
        if (!used[k]) free(r->prs[k].infl);
    memcpy(r->prs, np, n * sizeof(np[0]));
    for (uint32_t k = n; k < RAFT_MEMBERS_MAX; k++) r->prs[k].infl = NULL;
    r->n_prs = n;
    r->conf = *c;
    r->conf_index = idx;
    if (r->role != RAFT_LEADER) return;
    r->step_down_pending = !rr_is_voter(c, r->id);
    if (r->transferee != RAFT_NONE && !rr_is_voter(c, r->transferee))
        r->transferee = RAFT_NONE;
}

void rr_check_self_removed(struct raft *r)
{
    if (r->role != RAFT_LEADER || rr_is_voter(&r->conf, r->id) ||
        r->conf_index > r->log.commit)
        return;
    rr_broadcast_append(r); /* let the others learn the commit before we go */
    rr_become_follower(r, r->term, RAFT_NONE);
}

static int check_change(const struct raft *r, const struct raft_conf_change *cc)
{
    const struct raft_conf *c = &r->conf;
    if (cc->node == RAFT_NONE || cc->ctx_len > RAFT_CC_CTX_MAX) return RAFT_ERR_BAD_CONF;
    bool voter = rr_is_voter(c, cc->node), learner = rr_is_learner(c, cc->node);
    switch (cc->type) {
    case RAFT_CC_ADD_VOTER:
        if (voter || (!learner && c->n_voters >= RAFT_VOTERS_MAX)) return RAFT_ERR_BAD_CONF;
        if (c->n_voters >= RAFT_VOTERS_MAX) return RAFT_ERR_BAD_CONF;
        return RAFT_OK;
    case RAFT_CC_ADD_LEARNER:
        if (voter || learner || c->n_learners >= RAFT_LEARNERS_MAX) return RAFT_ERR_BAD_CONF;
        return RAFT_OK;
    case RAFT_CC_REMOVE:
        if (!voter && !learner) return RAFT_ERR_BAD_CONF;
        if (voter && c->n_voters == 1) return RAFT_ERR_BAD_CONF;
        return RAFT_OK;
    default: return RAFT_ERR_BAD_CONF;
    }
}

int raft_propose_conf_change(struct raft *r, uint64_t ctx, const struct raft_conf_change *cc,
                             raft_index *index, raft_term *term)
{
    (void)ctx;
    if (!cc) return RAFT_ERR_BAD_ARG;
    if (r->role != RAFT_LEADER) return RAFT_ERR_NOT_LEADER;
    if (r->transferee != RAFT_NONE) return RAFT_ERR_TRANSFERRING;
    /* Thesis 4.1: one change at a time, and only after an entry of this term committed. */
    if (r->conf_index > r->log.commit || r->log.commit < r->term_start)
        return RAFT_ERR_CONF_PENDING;
    int rc = check_change(r, cc);
    if (rc) return rc;
    uint8_t buf[CC_HDR + RAFT_CC_CTX_MAX];
    size_t len = raft_conf_change_encode(cc, buf, sizeof(buf));
    RAFT_ASSERT(r, len >= CC_HDR);
    return rr_leader_append(r, RAFT_ENTRY_CONF, buf, len, index, term);
}

/* ------------------------------------------------------------------ transfer */

static void send_timeout_now(struct raft *r, raft_id to)
{
    struct raft_msg m = {.type = RAFT_MSG_TIMEOUT_NOW, .to = to};
    r->timeout_now_sent = true; /* the target may win at any later time, lease or not */
    rr_send(r, &m);
}

static int start_transfer(struct raft *r, raft_id to)
{
    RAFT_ASSERT(r, r->role == RAFT_LEADER);
    if (to == r->id) return RAFT_OK;
    if (!rr_is_voter(&r->conf, to)) return RAFT_ERR_BAD_ARG;
    if (r->transferee == to) return RAFT_OK;
    r->transferee = to;
    r->transfer_elapsed = 0;
    struct raft_progress *pr = rr_progress(r, to);
    RAFT_ASSERT(r, pr != NULL);
    if (pr->match == rlog_last_index(&r->log))
        send_timeout_now(r, to);
    else
        rr_send_append(r, pr, true);
    return RAFT_OK;
}

void rr_step_transfer(struct raft *r, raft_id to) { (void)start_transfer(r, to); }

void rr_check_transfer(struct raft *r, struct raft_progress *pr)
{
    if (r->transferee == pr->id && pr->match == rlog_last_index(&r->log))
        send_timeout_now(r, pr->id);
}

int raft_transfer_leadership(struct raft *r, raft_id to)
{
    if (to == RAFT_NONE) return RAFT_ERR_BAD_ARG;
    if (r->role == RAFT_LEADER) return start_transfer(r, to);
    if (r->leader == RAFT_NONE) return RAFT_ERR_NO_LEADER;
    struct raft_msg m = {.type = RAFT_MSG_TRANSFER, .to = r->leader, .index = to};
    rr_send(r, &m);
    return RAFT_OK;
}

void rr_step_timeout_now(struct raft *r, const struct raft_msg *m)
{
    (void)m;
    if (r->role == RAFT_LEADER || !rr_promotable(r)) return;
    rr_campaign(r, false, true); /* thesis 3.10: no PreVote, bypass the lease */
}

void raft_report_snapshot(struct raft *r, raft_id to, bool ok)
{
    if (r->role != RAFT_LEADER) return;
    struct raft_progress *pr = rr_progress(r, to);
    if (!pr || pr->state != PR_SNAPSHOT) return;
    raft_index next = ok ? pr->pending_snapshot + 1 : pr->match + 1;
    pr->state = PR_PROBE;
    pr->pending_snapshot = 0;
    pr->next = next > pr->match + 1 ? next : pr->match + 1;
    pr->probe_sent = true; /* wait for the answer (ok) or the next heartbeat (failure) */
}

void raft_report_unreachable(struct raft *r, raft_id to)
{
    if (r->role != RAFT_LEADER) return;
    struct raft_progress *pr = rr_progress(r, to);
    if (!pr || pr->state != PR_REPLICATE) return;
    pr->state = PR_PROBE;
    pr->probe_sent = false;
    pr->next = pr->match + 1;
    pr->infl_head = pr->infl_n = 0;
}
