/*
 * raft.c - lifecycle of a Raft member, input validation and dispatch of raft_step(),
 * the Ready/advance cycle, proposals and introspection.
 *
 * Ready/advance (see raft.h): raft_ready() moves the outbox (messages, read states,
 * proposal results) and deep copies of the unstable and committed entries into rd_*
 * memory that nothing touches until raft_advance(). raft_advance() marks durable only
 * the entries of the batch whose (index, term) still match the log (a conflict may have
 * truncated them meanwhile), then lets the leader count its own durable log for commit.
 */
#include "raft/raft_internal.h"

#include <stdio.h> /* snprintf only: no stream I/O in the core */

_Noreturn void rr_panic(struct raft *r, const char *what, const char *file, int line)
{
    if (r)
        snprintf(r->panic, sizeof(r->panic), "raft node %llu term %llu: %s (%s:%d)",
                 (unsigned long long)r->id, (unsigned long long)r->term, what, file, line);
    abort();
}

const char *raft_strerror(int err)
{
    switch (err) {
#define RAFT_ERR_STR_(c, v, m) case v: return m;
        RAFT_ERR_TABLE(RAFT_ERR_STR_)
#undef RAFT_ERR_STR_
    default: return "unknown raft error";
    }
}

const char *raft_role_name(enum raft_role role)
{
    static const char *const names[] = {"follower", "pre-candidate", "candidate", "leader"};
    return (unsigned)role < 4 ? names[role] : "unknown";
}

const char *raft_msg_type_name(int type)
{
    static const char *const names[] = {
        "?", "PREVOTE", "PREVOTE_RESP", "VOTE", "VOTE_RESP", "APPEND", "APPEND_RESP",
        "HEARTBEAT", "HEARTBEAT_RESP", "SNAPSHOT", "TIMEOUT_NOW", "READ_INDEX",
        "READ_INDEX_RESP", "PROPOSE", "PROPOSE_RESP", "TRANSFER"};
    return type > 0 && type < RAFT_MSG__COUNT ? names[type] : "UNKNOWN";
}

void raft_config_default(struct raft_config *cfg, raft_id id, uint64_t seed)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->id = id;
    cfg->seed = seed;
    cfg->election_ticks = 10;
    cfg->heartbeat_ticks = 1;
    cfg->pre_vote = true;
    cfg->check_quorum = true;
    cfg->lease_read = false;
    cfg->max_inflight_msgs = 256;
    cfg->max_msg_bytes = 1u << 20;
    cfg->max_uncommitted_bytes = 64u << 20;
    cfg->max_entry_bytes = 4u << 20;
    cfg->max_pending_reads = 4096;
}

bool rr_vec_grow(void **v, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return true;
    size_t c = *cap ? *cap * 2 : 16;
    while (c < need) c *= 2;
    void *nv = realloc(*v, c * elem);
    if (!nv) return false;
    *v = nv;
    *cap = c;
    return true;
}

/* ------------------------------------------------------------------ helpers */

void rr_msg_free(struct raft_msg *m)
{
    free(m->entries);
    m->entries = NULL;
    m->n_entries = 0;
}

void rr_send(struct raft *r, const struct raft_msg *m)
{
    struct raft_msg c = *m;
    c.from = r->id;
    if (c.term == 0) c.term = r->term;
    RAFT_ASSERT(r, c.to != RAFT_NONE && c.to != r->id);
    /* Raft tolerates lost messages: beyond the bound we drop rather than grow. */
    if (r->msgs.n >= RAFT_OUTBOX_MAX || !RR_PUSH(r->msgs, c)) rr_msg_free(&c);
}

void rr_push_read(struct raft *r, uint64_t ctx, int err, raft_index index)
{
    struct raft_read_state rs = {.ctx = ctx, .err = err, .index = index};
    (void)RR_PUSH(r->out_reads, rs);
}

void rr_push_prop(struct raft *r, uint64_t ctx, int err, raft_index index, raft_term term)
{
    struct raft_prop_result pr = {.ctx = ctx, .err = err, .index = index, .term = term};
    (void)RR_PUSH(r->out_props, pr);
}

bool rr_is_voter(const struct raft_conf *c, raft_id id)
{
    for (uint32_t i = 0; i < c->n_voters; i++)
        if (c->voters[i] == id) return true;
    return false;
}

bool rr_is_learner(const struct raft_conf *c, raft_id id)
{
    for (uint32_t i = 0; i < c->n_learners; i++)
        if (c->learners[i] == id) return true;
    return false;
}

struct raft_progress *rr_progress(struct raft *r, raft_id id)
{
    for (uint32_t i = 0; i < r->n_prs; i++)
        if (r->prs[i].id == id) return &r->prs[i];
    return NULL;
}

uint32_t rr_quorum(const struct raft *r) { return r->conf.n_voters / 2 + 1; }

/* ------------------------------------------------------------------ lifecycle */

static int check_config(const struct raft_config *c)
{
    if (c->id == RAFT_NONE || c->election_ticks < 2 || c->heartbeat_ticks == 0) return 1;
    if (c->heartbeat_ticks >= c->election_ticks) return 1;
    if (c->max_inflight_msgs == 0 || c->max_inflight_msgs > RAFT_INFLIGHT_MAX) return 1;
    if (c->max_msg_bytes == 0 || c->max_entry_bytes == 0) return 1;
    if (c->max_uncommitted_bytes == 0 || c->max_pending_reads == 0) return 1;
    return 0;
}

static int check_persisted(const struct raft_persisted *p)
{
    raft_index snap = p->snapshot.index;
    raft_term prev = p->snapshot.term;
    if (p->n_entries && !p->entries) return RAFT_ERR_BAD_ARG;
    for (size_t i = 0; i < p->n_entries; i++) {
        const struct raft_entry *e = &p->entries[i];
        if (e->index != snap + 1 + i || e->term < prev || e->type > RAFT_ENTRY_CONF)
            return RAFT_ERR_CORRUPT;
        if (e->len && !e->data) return RAFT_ERR_CORRUPT;
        prev = e->term;
    }
    raft_index last = snap + p->n_entries;
    if (p->hs.term < prev) return RAFT_ERR_CORRUPT;
    if (p->hs.commit > last || p->applied > last) return RAFT_ERR_CORRUPT;
    if (p->applied && p->applied < snap) return RAFT_ERR_CORRUPT;
    if (snap && !rr_conf_valid(&p->snapshot.conf)) return RAFT_ERR_CORRUPT;
    return RAFT_OK;
}

static int init_log(struct raft *r, const struct raft_persisted *p)
{
    struct raft_log *l = &r->log;
    l->snap_index = p->snapshot.index;
    l->snap_term = p->snapshot.term;
    l->snap_conf = p->snapshot.index ? p->snapshot.conf : p->initial;
    int rc = rlog_append(l, p->entries, p->n_entries);
    if (rc) return rc;
    raft_index applied = p->applied > l->snap_index ? p->applied : l->snap_index;
    l->stable = rlog_last_index(l);
    l->unstable_from = l->stable + 1;
    l->commit = p->hs.commit > applied ? p->hs.commit : applied;
    l->applied = l->applying = applied;
    return RAFT_OK;
}

int raft_new(const struct raft_config *cfg, const struct raft_persisted *p, struct raft **out)
{
    if (!cfg || !p || !out || check_config(cfg)) return RAFT_ERR_BAD_ARG;
    int rc = check_persisted(p);
    if (rc) return rc;
    if (!p->snapshot.index && !rr_conf_valid(&p->initial)) return RAFT_ERR_BAD_ARG;
    struct raft *r = calloc(1, sizeof(*r));
    if (!r) return RAFT_ERR_NOMEM;
    r->cfg = *cfg;
    r->id = cfg->id;
    r->term = p->hs.term;
    r->vote = p->hs.vote;
    r->role = RAFT_FOLLOWER;
    r->initial = p->initial;
    r->prng = cfg->seed ^ (cfg->id * 0x2545f4914f6cdd1dULL);
    rc = init_log(r, p);
    if (rc) {
        raft_free(r);
        return rc;
    }
    rr_conf_recompute(r);
    r->prev_hs = p->hs;
    r->prev_ss.role = RAFT_FOLLOWER;
    r->prev_ss.leader = RAFT_NONE;
    rr_reset_timeout(r);
    *out = r;
    return RAFT_OK;
}

static void free_msgs(struct raft_msg *v, size_t n)
{
    for (size_t i = 0; i < n; i++) rr_msg_free(&v[i]);
}

void raft_free(struct raft *r)
{
    if (!r) return;
    rlog_free(&r->log);
    for (uint32_t i = 0; i < RAFT_MEMBERS_MAX; i++) free(r->prs[i].infl);
    free_msgs(r->msgs.v, r->msgs.n);
    free_msgs(r->rd_msgs.v, r->rd_msgs.n);
    free(r->msgs.v);
    free(r->rd_msgs.v);
    free(r->reads.v);
    free(r->fwd_reads.v);
    free(r->fwd_props.v);
    free(r->out_reads.v);
    free(r->out_props.v);
    free(r->rd_reads.v);
    free(r->rd_props.v);
    free(r->rd_ents);
    free(r->rd_committed);
    free(r);
}

/* ------------------------------------------------------------------ inputs */

void raft_tick(struct raft *r)
{
    r->now++;
    if (r->role == RAFT_LEADER)
        rr_tick_leader(r);
    else
        rr_tick_election(r);
}

/* Filter bad input first (TigerBeetle style); the handlers then assert invariants. */
static bool msg_valid(const struct raft *r, const struct raft_msg *m)
{
    if (m->to != r->id || m->from == RAFT_NONE || m->from == r->id) return false;
    if (m->type == 0 || m->type >= RAFT_MSG__COUNT) return false;
    if (m->n_entries && !m->entries) return false;
    if (m->n_entries && m->type != RAFT_MSG_APPEND && m->type != RAFT_MSG_PROPOSE)
        return false;
    if (m->type == RAFT_MSG_PROPOSE && m->n_entries != 1) return false;
    raft_term prev = m->log_term;
    for (uint32_t i = 0; i < m->n_entries; i++) {
        const struct raft_entry *e = &m->entries[i];
        if (e->type > RAFT_ENTRY_CONF || (e->len && !e->data)) return false;
        if (m->type != RAFT_MSG_APPEND) continue;
        if (e->index != m->index + 1 + i || e->term < prev || e->term > m->term) return false;
        prev = e->term;
    }
    if (m->type == RAFT_MSG_SNAPSHOT) {
        if (m->snapshot.index == 0 || !rr_conf_valid(&m->snapshot.conf)) return false;
        if (m->snapshot.term > m->term) return false;
    }
    return true;
}

int raft_step(struct raft *r, const struct raft_msg *m)
{
    if (!m || !msg_valid(r, m)) return RAFT_ERR_BAD_ARG;
    if (!rr_step_term(r, m)) return RAFT_OK;
    switch (m->type) {
    case RAFT_MSG_PREVOTE:
    case RAFT_MSG_VOTE: rr_step_vote(r, m); break;
    case RAFT_MSG_PREVOTE_RESP:
    case RAFT_MSG_VOTE_RESP: rr_step_vote_resp(r, m); break;
    case RAFT_MSG_APPEND: rr_step_append(r, m); break;
    case RAFT_MSG_APPEND_RESP: rr_step_append_resp(r, m); break;
    case RAFT_MSG_HEARTBEAT: rr_step_heartbeat(r, m); break;
    case RAFT_MSG_HEARTBEAT_RESP: rr_step_heartbeat_resp(r, m); break;
    case RAFT_MSG_SNAPSHOT: rr_step_snapshot(r, m); break;
    case RAFT_MSG_TIMEOUT_NOW: rr_step_timeout_now(r, m); break;
    case RAFT_MSG_READ_INDEX: rr_step_read_index(r, m); break;
    case RAFT_MSG_READ_INDEX_RESP: rr_step_read_index_resp(r, m); break;
    case RAFT_MSG_PROPOSE: rr_step_propose(r, m); break;
    case RAFT_MSG_PROPOSE_RESP: rr_step_propose_resp(r, m); break;
    case RAFT_MSG_TRANSFER:
        if (r->role == RAFT_LEADER) rr_step_transfer(r, (raft_id)m->index);
        break;
    default: return RAFT_ERR_BAD_ARG;
    }
    return RAFT_OK;
}

int raft_propose(struct raft *r, uint64_t ctx, const void *data, size_t len,
                 raft_index *index, raft_term *term)
{
    if (len && !data) return RAFT_ERR_BAD_ARG;
    if (r->role == RAFT_LEADER) {
        int rc = rr_propose_check(r, len);
        if (rc) return rc;
        return rr_leader_append(r, RAFT_ENTRY_NORMAL, data, len, index, term);
    }
    if (r->leader == RAFT_NONE) return RAFT_ERR_NO_LEADER;
    if (len > r->cfg.max_entry_bytes) return RAFT_ERR_TOO_BIG;
    if (r->fwd_props.n >= RAFT_FWD_PROPS_MAX) return RAFT_ERR_OVERLOAD;
    struct raft_entry e = {.type = RAFT_ENTRY_NORMAL, .len = (uint32_t)len,
                           .data = (uint8_t *)data};
    struct raft_msg m = {.type = RAFT_MSG_PROPOSE, .to = r->leader, .ctx = ctx,
                         .n_entries = 1};
    m.entries = rlog_copy_block(&e, 1);
    if (!m.entries) return RAFT_ERR_NOMEM;
    if (!RR_PUSH(r->fwd_props, ctx)) {
        rr_msg_free(&m);
        return RAFT_ERR_NOMEM;
    }
    rr_send(r, &m);
    if (index) *index = 0;
    if (term) *term = 0;
    return RAFT_OK;
}

int raft_compact(struct raft *r, raft_index index)
{
    if (index <= r->log.snap_index) return RAFT_ERR_COMPACTED;
    if (index > r->log.applied) return RAFT_ERR_UNAVAILABLE;
    raft_term t = 0;
    RAFT_ASSERT(r, index <= r->log.commit);
    RAFT_ASSERT(r, rlog_term(&r->log, index, &t) == RAFT_OK);
    struct raft_conf c;
    rr_conf_at(r, index, &c);
    rlog_compact(&r->log, index, t, &c);
    return RAFT_OK;
}

/* ------------------------------------------------------------------ ready */

static struct raft_hard_state cur_hs(const struct raft *r)
{
    struct raft_hard_state hs = {.term = r->term, .vote = r->vote, .commit = r->log.commit};
    return hs;
}

static raft_index committed_to(const struct raft *r)
{
    raft_index to = r->log.commit;
    if (to > rlog_last_index(&r->log)) to = rlog_last_index(&r->log);
    if (to > r->log.applying + RAFT_COMMITTED_BATCH_MAX)
        to = r->log.applying + RAFT_COMMITTED_BATCH_MAX;
    return to;
}

bool raft_has_ready(const struct raft *r)
{
    if (r->ready_out) return false;
    struct raft_hard_state hs = cur_hs(r);
    if (hs.term != r->prev_hs.term || hs.vote != r->prev_hs.vote ||
        hs.commit != r->prev_hs.commit)
        return true;
    if (r->role != r->prev_ss.role || r->leader != r->prev_ss.leader) return true;
    if (r->log.unstable_from <= rlog_last_index(&r->log)) return true;
    if (r->msgs.n || r->out_reads.n || r->out_props.n || r->snap_pending) return true;
    if (r->read_round_wanted) return true;
    return committed_to(r) > r->log.applying;
}

static void swap_vecs(struct raft *r)
{
#define SWAP_(a, b)              \
    do {                         \
        __typeof__(a) t_ = (a);  \
        (a) = (b);               \
        (b) = t_;                \
    } while (0)
    SWAP_(r->msgs, r->rd_msgs);
    SWAP_(r->out_reads, r->rd_reads);
    SWAP_(r->out_props, r->rd_props);
#undef SWAP_
}

static int ready_entries(struct raft *r, struct raft_ready *rd)
{
    raft_index last = rlog_last_index(&r->log);
    raft_index from = r->log.unstable_from;
    if (from <= r->log.snap_index) from = r->log.snap_index + 1;
    if (from <= last) {
        size_t n = (size_t)(last - from + 1);
        r->rd_ents = rlog_copy_block(rlog_entry(&r->log, from), n);
        if (!r->rd_ents) return RAFT_ERR_NOMEM;
        r->rd_n_ents = n;
    }
    raft_index cto = committed_to(r);
    if (cto > r->log.applying) {
        size_t n = (size_t)(cto - r->log.applying);
        r->rd_committed = rlog_copy_block(rlog_entry(&r->log, r->log.applying + 1), n);
        if (!r->rd_committed) {
            free(r->rd_ents);
            r->rd_ents = NULL;
            r->rd_n_ents = 0;
            return RAFT_ERR_NOMEM;
        }
        r->rd_n_committed = n;
    }
    RAFT_ASSERT(r, cto <= r->log.commit);
    r->log.unstable_from = last + 1;
    r->rd_applied_to = r->log.applying = cto > r->log.applying ? cto : r->log.applying;
    rd->entries = r->rd_ents;
    rd->n_entries = r->rd_n_ents;
    rd->committed = r->rd_committed;
    rd->n_committed = r->rd_n_committed;
    return RAFT_OK;
}

int raft_ready(struct raft *r, struct raft_ready *rd)
{
    if (r->ready_out) return RAFT_ERR_NOT_READY;
    memset(rd, 0, sizeof(*rd));
    rr_flush_read_round(r);
    int rc = ready_entries(r, rd);
    if (rc) return rc;
    struct raft_hard_state hs = cur_hs(r);
    rd->hs = hs;
    rd->hs_changed = hs.term != r->prev_hs.term || hs.vote != r->prev_hs.vote ||
                     hs.commit != r->prev_hs.commit;
    rd->must_sync = rd->n_entries > 0 || hs.term != r->prev_hs.term ||
                    hs.vote != r->prev_hs.vote;
    r->prev_hs = hs;
    r->rd_has_snap = r->snap_pending;
    if (r->snap_pending) {
        r->rd_snap = r->snap_meta;
        rd->snapshot = &r->rd_snap;
        rd->must_sync = true;
        r->snap_pending = false;
    }
    swap_vecs(r);
    rd->msgs = r->rd_msgs.v;
    rd->n_msgs = r->rd_msgs.n;
    rd->reads = r->rd_reads.v;
    rd->n_reads = r->rd_reads.n;
    rd->props = r->rd_props.v;
    rd->n_props = r->rd_props.n;
    rd->ss.role = r->role;
    rd->ss.leader = r->leader;
    rd->ss_changed = r->role != r->prev_ss.role || r->leader != r->prev_ss.leader;
    r->prev_ss = rd->ss;
    r->ready_out = true;
    return RAFT_OK;
}

/* The batch's entries are durable: the highest one whose term still matches the log is
 * the new stable index (entries past a conflict resolved meanwhile do not count). */
static void advance_stable(struct raft *r)
{
    for (size_t k = r->rd_n_ents; k > 0; k--) {
        const struct raft_entry *e = &r->rd_ents[k - 1];
        if (rlog_match(&r->log, e->index, e->term)) {
            if (e->index > r->log.stable) r->log.stable = e->index;
            break;
        }
    }
}

void raft_advance(struct raft *r)
{
    if (!r->ready_out) return;
    if (r->rd_has_snap && r->rd_snap.index > r->log.stable &&
        r->rd_snap.index <= r->log.snap_index)
        r->log.stable = r->rd_snap.index;
    advance_stable(r);
    RAFT_ASSERT(r, r->log.stable <= rlog_last_index(&r->log));
    if (r->rd_applied_to > r->log.applied) r->log.applied = r->rd_applied_to;
    if (r->rd_has_snap && r->rd_snap.index > r->log.applied) r->log.applied = r->rd_snap.index;
    if (r->log.applied > r->log.applying) r->log.applying = r->log.applied;
    free_msgs(r->rd_msgs.v, r->rd_msgs.n);
    r->rd_msgs.n = r->rd_reads.n = r->rd_props.n = 0;
    free(r->rd_ents);
    free(r->rd_committed);
    r->rd_ents = r->rd_committed = NULL;
    r->rd_n_ents = r->rd_n_committed = 0;
    r->rd_has_snap = false;
    r->ready_out = false;
    /* Paper 5.4.2 / etcd: the leader's own entries count toward a quorum once durable. */
    if (r->role == RAFT_LEADER && rr_maybe_commit(r)) rr_broadcast_append(r);
}

/* ------------------------------------------------------------------ introspection */

void raft_status(const struct raft *r, struct raft_status *st)
{
    memset(st, 0, sizeof(*st));
    st->id = r->id;
    st->role = r->role;
    st->leader = r->leader;
    st->term = r->term;
    st->vote = r->vote;
    st->commit = r->log.commit;
    st->applied = r->log.applied;
    st->first_index = rlog_first_index(&r->log);
    st->last_index = rlog_last_index(&r->log);
    st->stable_index = r->log.stable;
    st->snapshot.index = r->log.snap_index;
    st->snapshot.term = r->log.snap_term;
    st->snapshot.conf = r->log.snap_conf;
    st->conf = r->conf;
    st->transferee = r->transferee;
    if (r->role != RAFT_LEADER) return;
    for (uint32_t i = 0; i < r->n_prs; i++) {
        const struct raft_progress *pr = &r->prs[i];
        struct raft_progress_info *pi = &st->progress[st->n_progress++];
        pi->id = pr->id;
        pi->learner = pr->learner;
        pi->match = pr->id == r->id ? r->log.stable : pr->match;
        pi->next = pr->id == r->id ? rlog_last_index(&r->log) + 1 : pr->next;
        pi->state = pr->state;
        pi->inflight = pr->infl_n;
        pi->ticks_since_contact = pr->id == r->id ? 0 : pr->ticks_since_contact;
    }
}

int raft_term_at(const struct raft *r, raft_index index, raft_term *term)
{
    return rlog_term(&r->log, index, term);
}

int raft_entry_at(const struct raft *r, raft_index index, const struct raft_entry **e)
{
    if (index <= r->log.snap_index) return RAFT_ERR_COMPACTED;
    struct raft_entry *x = rlog_entry(&r->log, index);
    if (!x) return RAFT_ERR_UNAVAILABLE;
    *e = x;
    return RAFT_OK;
}

raft_term raft_current_term(const struct raft *r)
{
    return r->term;
}
