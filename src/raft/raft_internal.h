/*
 * raft_internal.h - state shared by the files of the Raft core (the .c files of src/raft only).
 *
 * Invariants (checked with RAFT_ASSERT where cheap):
 *  - log: ents[i].index == snap_index + 1 + i; terms never decrease along the log;
 *    snap_index <= applied <= applying <= commit <= last index; commit never decreases.
 *  - stable <= last index; every entry <= stable is durable with the term it has now.
 *  - unstable_from - 1 <= last index; entries >= unstable_from go out in the next Ready.
 *  - conf is the latest configuration in the log (thesis 4.1), conf_index its entry
 *    (or the snapshot index / 0 for the bootstrap configuration).
 *  - prs[] holds exactly the members of conf (voters then learners), on every role; only
 *    the leader uses the replication fields.
 *  - while a Ready batch is out (ready_out), its memory (rd_*) is never touched.
 */
#ifndef RAFTCONF_RAFT_INTERNAL_H
#define RAFTCONF_RAFT_INTERNAL_H

#include "raft/raft.h"

#include <stdlib.h>
#include <string.h>

struct raft;
/* Assertion for programmer errors: stores "node N term T: cond (file:line)" in r->panic
 * and aborts. No stdio in the core (scripts/check-purity.sh); a debugger or core dump
 * shows r->panic. */
#define RAFT_ASSERT(r, cond)                                            \
    do {                                                                \
        if (!(cond)) rr_panic((r), #cond, __FILE__, __LINE__);          \
    } while (0)
_Noreturn void rr_panic(struct raft *r, const char *what, const char *file, int line);

#define RAFT_MEMBERS_MAX (RAFT_VOTERS_MAX + RAFT_LEARNERS_MAX)
#define RAFT_INFLIGHT_MAX 1024u
#define RAFT_OUTBOX_MAX 8192u      /* messages queued between two Ready batches */
#define RAFT_FWD_PROPS_MAX 1024u   /* forwarded proposals awaiting an answer */
#define RAFT_COMMITTED_BATCH_MAX 4096u /* committed entries per Ready */
#define RAFT_HB_ROUNDS 64u         /* heartbeat rounds remembered for lease reads */

enum { PR_PROBE = 0, PR_REPLICATE = 1, PR_SNAPSHOT = 2 };

/* ------------------------------------------------------------------ log (raft_log.c) */
struct raft_log {
    struct raft_entry *ents; /* ents[0].index == snap_index + 1 */
    size_t n, cap;
    raft_index snap_index;
    raft_term snap_term;
    struct raft_conf snap_conf;
    raft_index stable;        /* last index known durable */
    raft_index unstable_from; /* first index not yet handed out in a Ready */
    raft_index commit;
    raft_index applying;      /* last index handed out in Ready.committed */
    raft_index applied;       /* last index the application confirmed (raft_advance) */
};

raft_index rlog_last_index(const struct raft_log *l);
raft_term rlog_last_term(const struct raft_log *l);
raft_index rlog_first_index(const struct raft_log *l);
/* RAFT_OK with *t set; COMPACTED below the snapshot; UNAVAILABLE beyond the last index. */
int rlog_term(const struct raft_log *l, raft_index i, raft_term *t);
bool rlog_match(const struct raft_log *l, raft_index i, raft_term t);
struct raft_entry *rlog_entry(const struct raft_log *l, raft_index i); /* NULL if absent */
/* Append copies of ents (ents[0].index must be last + 1). RAFT_OK or RAFT_ERR_NOMEM. */
int rlog_append(struct raft_log *l, const struct raft_entry *ents, size_t n);
void rlog_truncate_from(struct raft_log *l, raft_index i); /* drop entries >= i */
void rlog_compact(struct raft_log *l, raft_index i, raft_term t, const struct raft_conf *c);
void rlog_restore(struct raft_log *l, const struct raft_snapshot_meta *m);
void rlog_free(struct raft_log *l);
/* Largest index <= i whose term is <= t (etcd's findConflictByTerm); snapshot index at
 * the bottom. */
raft_index rlog_conflict_by_term(const struct raft_log *l, raft_index i, raft_term t);
bool rlog_up_to_date(const struct raft_log *l, raft_index last, raft_term last_term);
/* Deep copy of n entries into one block (entries then data); NULL on NOMEM or n == 0. */
struct raft_entry *rlog_copy_block(const struct raft_entry *src, size_t n);

/* --------------------------------------------------------------------- progress */
struct raft_progress {
    raft_id id;
    bool learner;
    uint8_t state;         /* PR_* */
    bool probe_sent;       /* probe: one APPEND outstanding, wait for an answer */
    bool recent_active;    /* CheckQuorum: heard from since the last check */
    raft_index match, next;
    raft_index pending_snapshot;
    uint32_t ticks_since_contact;
    uint32_t stall_ticks;  /* ticks without progress while behind */
    uint64_t acked_seq;    /* highest heartbeat round acknowledged (ReadIndex) */
    uint32_t infl_head, infl_n; /* ring of last indices of APPENDs in flight */
    raft_index *infl;
};

struct read_req {
    raft_id from;     /* RAFT_NONE: local */
    uint64_t ctx;
    raft_index index; /* assigned commit index; valid when assigned */
    uint64_t need_seq;
    bool assigned;
};

struct hb_round {
    uint64_t seq;
    uint64_t tick;
};

/* Growing arrays: elements, count, capacity. */
struct msg_vec { struct raft_msg *v; size_t n, cap; };
struct rs_vec { struct raft_read_state *v; size_t n, cap; };
struct pres_vec { struct raft_prop_result *v; size_t n, cap; };
struct rq_vec { struct read_req *v; size_t n, cap; };
struct u64_vec { uint64_t *v; size_t n, cap; };

struct raft {
    struct raft_config cfg;
    raft_id id;
    raft_term term;
    raft_id vote;
    raft_id leader;
    enum raft_role role;
    struct raft_log log;

    struct raft_conf conf;   /* latest in the log */
    raft_index conf_index;
    struct raft_conf initial;
    struct raft_progress prs[RAFT_MEMBERS_MAX];
    uint32_t n_prs;

    uint64_t now; /* ticks since creation */
    uint32_t election_elapsed, heartbeat_elapsed, randomized_timeout;
    uint64_t prng;

    raft_id vote_from[RAFT_VOTERS_MAX];
    int8_t vote_granted[RAFT_VOTERS_MAX];
    uint32_t n_votes;

    raft_id transferee;
    uint32_t transfer_elapsed;
    uint64_t uncommitted_bytes;
    raft_index term_start; /* leader: index of this term's no-op */
    bool step_down_pending; /* leader removed by a conf change not yet committed */
    bool timeout_now_sent;  /* leader sent TIMEOUT_NOW this term: no more lease reads */

    struct rq_vec reads;   /* leader: reads waiting for a quorum */
    uint64_t hb_seq;
    bool read_round_wanted;
    struct hb_round rounds[RAFT_HB_ROUNDS];
    struct u64_vec fwd_reads;      /* follower: forwarded reads (ctx) */
    struct u64_vec fwd_props;      /* follower: forwarded proposals (ctx) */

    /* outbox: produced since the last Ready */
    struct msg_vec msgs;
    struct rs_vec out_reads;
    struct pres_vec out_props;
    bool snap_pending;
    struct raft_snapshot_meta snap_meta;

    /* the Ready batch that is out (owned until raft_advance) */
    bool ready_out;
    struct raft_entry *rd_ents;
    size_t rd_n_ents;
    struct raft_entry *rd_committed;
    size_t rd_n_committed;
    struct msg_vec rd_msgs;
    struct rs_vec rd_reads;
    struct pres_vec rd_props;
    struct raft_snapshot_meta rd_snap;
    bool rd_has_snap;
    raft_index rd_applied_to;
    struct raft_hard_state prev_hs;
    struct raft_soft_state prev_ss;

    char panic[192];
};

/* Push one element onto an RR_VEC; returns false on NOMEM. */
#define RR_PUSH(vec, elem) \
    (rr_vec_grow((void **)&(vec).v, &(vec).cap, (vec).n + 1, sizeof(*(vec).v)) \
         ? ((vec).v[(vec).n++] = (elem), true) : false)
bool rr_vec_grow(void **v, size_t *cap, size_t need, size_t elem);

/* -------------------------------------------------------------------- raft.c */
void rr_send(struct raft *r, const struct raft_msg *m); /* takes m->entries ownership */
void rr_msg_free(struct raft_msg *m);
void rr_push_read(struct raft *r, uint64_t ctx, int err, raft_index index);
void rr_push_prop(struct raft *r, uint64_t ctx, int err, raft_index index, raft_term term);
bool rr_is_voter(const struct raft_conf *c, raft_id id);
bool rr_is_learner(const struct raft_conf *c, raft_id id);
struct raft_progress *rr_progress(struct raft *r, raft_id id);
uint32_t rr_quorum(const struct raft *r);

/* -------------------------------------------------------------------- prng.c */
uint64_t rr_prng_next(uint64_t *state);

/* ---------------------------------------------------------------- election.c */
void rr_become_follower(struct raft *r, raft_term term, raft_id leader);
void rr_become_leader(struct raft *r);
void rr_campaign(struct raft *r, bool pre_vote, bool transfer);
void rr_tick_election(struct raft *r);
void rr_tick_leader(struct raft *r);
void rr_reset_timeout(struct raft *r);
bool rr_promotable(const struct raft *r);
/* Term checks of raft_step (paper 5.1, thesis 9.6); returns false to drop m. */
bool rr_step_term(struct raft *r, const struct raft_msg *m);
void rr_step_vote(struct raft *r, const struct raft_msg *m);
void rr_step_vote_resp(struct raft *r, const struct raft_msg *m);
bool rr_quorum_active(struct raft *r);

/* ------------------------------------------------------------- replication.c */
void rr_progress_reset(struct raft *r, struct raft_progress *pr);
bool rr_send_append(struct raft *r, struct raft_progress *pr, bool allow_empty);
void rr_broadcast_append(struct raft *r);
void rr_broadcast_heartbeat(struct raft *r);
bool rr_maybe_commit(struct raft *r);
void rr_commit_advanced(struct raft *r, raft_index old_commit);
void rr_step_append(struct raft *r, const struct raft_msg *m);
void rr_step_append_resp(struct raft *r, const struct raft_msg *m);
void rr_step_heartbeat(struct raft *r, const struct raft_msg *m);
void rr_step_heartbeat_resp(struct raft *r, const struct raft_msg *m);
void rr_step_snapshot(struct raft *r, const struct raft_msg *m);
int rr_leader_append(struct raft *r, uint8_t type, const void *data, size_t len,
                     raft_index *index, raft_term *term);
int rr_propose_check(const struct raft *r, size_t len);
void rr_step_propose(struct raft *r, const struct raft_msg *m);
void rr_step_propose_resp(struct raft *r, const struct raft_msg *m);
void rr_fail_forwarded(struct raft *r);
void rr_stall_tick(struct raft *r);

/* --------------------------------------------------------------- read_index.c */
void rr_step_read_index(struct raft *r, const struct raft_msg *m);
void rr_step_read_index_resp(struct raft *r, const struct raft_msg *m);
void rr_reads_on_ack(struct raft *r);
void rr_reads_assign(struct raft *r); /* leader committed an entry of its term */
void rr_reads_fail_all(struct raft *r, int err);
void rr_flush_read_round(struct raft *r);
void rr_note_round(struct raft *r, uint64_t seq);
bool rr_lease_valid(const struct raft *r);
int rr_read_local(struct raft *r, raft_id from, uint64_t ctx);

/* --------------------------------------------------------------- membership.c */
void rr_conf_apply_entry(struct raft_conf *c, const struct raft_entry *e);
void rr_conf_recompute(struct raft *r);
void rr_conf_set(struct raft *r, const struct raft_conf *c, raft_index idx);
bool rr_conf_valid(const struct raft_conf *c);
void rr_conf_at(const struct raft *r, raft_index idx, struct raft_conf *out);
void rr_step_transfer(struct raft *r, raft_id to);
void rr_step_timeout_now(struct raft *r, const struct raft_msg *m);
void rr_check_transfer(struct raft *r, struct raft_progress *pr);
void rr_check_self_removed(struct raft *r);

#endif
