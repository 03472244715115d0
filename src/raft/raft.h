/*
 * raft.h - the Raft consensus core of raftconf: a deterministic state machine with no I/O.
 *
 * One `struct raft` is one member of one Raft group. It never touches sockets, clocks,
 * files, threads, rand() or globals, so N members of a cluster can run in one process
 * (tests/fault/ does exactly that). It is driven by four kinds of input:
 *
 *   raft_tick()        one logical clock tick (the caller decides how long a tick is);
 *   raft_step()        a message that arrived from another member;
 *   raft_propose*()    a client request (an entry to append, a configuration change);
 *   raft_read_index()  a linearizable read request.
 *
 * and hands back its output as a Ready batch (raft_ready()): hard state and entries to
 * persist, a snapshot to install, messages to send AFTER persisting, committed entries
 * to apply, read states, proposal outcomes, and role changes. Everything in the batch is
 * borrowed until raft_advance(), which the caller calls once the batch's hard state and
 * entries are durable, its messages handed to the transport and its committed entries
 * applied. raft_step()/raft_tick()/raft_propose() may be called between raft_ready() and
 * raft_advance(); the batch stays valid and unchanged, and the next raft_ready() is only
 * allowed after raft_advance().
 *
 * Rules implemented (see the files for the paper/thesis sections):
 *  - elections with randomized timeouts from the member's own PRNG (seeded by config),
 *    PreVote (thesis 9.6) and CheckQuorum (thesis 6.2); votes persisted before replying;
 *  - a new leader appends a no-op entry of its term (thesis 6.4);
 *  - AppendEntries with fast conflict back-off, probe and pipelined replicate states with a
 *    bounded in-flight window, commit of current-term entries by majority only (paper 5.4.2);
 *    the leader counts its own log only once durable (raft_advance);
 *  - ReadIndex (thesis 6.4), from followers through the leader; lease reads optional;
 *  - leadership transfer (thesis 3.10, TimeoutNow), learners, single-server membership
 *    changes (thesis 4.1: a member uses the latest configuration in its log, committed or
 *    not; one change at a time; the leader first commits an entry of its term);
 *  - snapshots: the application compacts the log behind a snapshot it took; a member too
 *    far behind is sent RAFT_MSG_SNAPSHOT (metadata only; the transport carries the data,
 *    in chunks, and steps the message in once the data is staged; see below).
 *
 * Snapshot data never passes through the core. On the leader, a RAFT_MSG_SNAPSHOT in
 * Ready.msgs names the snapshot (index, term, configuration); the transport streams the
 * application's data for that snapshot to the follower, which stages it and then calls
 * raft_step() with the same message. If the follower's core accepts it, Ready.snapshot
 * is set and the application replaces its state with the staged data before
 * raft_advance(). If the transfer fails, the leader's transport calls
 * raft_report_snapshot(r, to, false) and the core retries later.
 */
#ifndef RAFTCONF_RAFT_H
#define RAFTCONF_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint64_t raft_term;
typedef uint64_t raft_index;
typedef uint64_t raft_id; /* member ids are > 0; 0 means "none" */

#define RAFT_NONE ((raft_id)0)
#define RAFT_VOTERS_MAX 16
#define RAFT_LEARNERS_MAX 16

/* Error codes (0 = ok). raft_strerror() gives a message. */
#define RAFT_ERR_TABLE(X)                                                        \
    X(RAFT_OK, 0, "ok")                                                          \
    X(RAFT_ERR_NOMEM, 1, "out of memory")                                        \
    X(RAFT_ERR_NOT_LEADER, 2, "not the leader")                                  \
    X(RAFT_ERR_NO_LEADER, 3, "no leader known")                                  \
    X(RAFT_ERR_OVERLOAD, 4, "too many uncommitted proposals")                    \
    X(RAFT_ERR_TRANSFERRING, 5, "leadership transfer in progress")               \
    X(RAFT_ERR_CONF_PENDING, 6, "a configuration change is already in progress") \
    X(RAFT_ERR_BAD_CONF, 7, "invalid configuration change")                      \
    X(RAFT_ERR_TOO_BIG, 8, "entry exceeds the size limit")                       \
    X(RAFT_ERR_DROPPED, 9, "proposal dropped (leader changed)")                  \
    X(RAFT_ERR_COMPACTED, 10, "index is compacted")                              \
    X(RAFT_ERR_UNAVAILABLE, 11, "index is not yet available")                    \
    X(RAFT_ERR_BAD_ARG, 12, "invalid argument")                                  \
    X(RAFT_ERR_CORRUPT, 13, "persisted state is inconsistent")                   \
    X(RAFT_ERR_NOT_READY, 14, "ready batch not yet advanced")                    \
    X(RAFT_ERR_NO_QUORUM, 15, "leader has not heard from a quorum")                \
    X(RAFT_ERR_UNKNOWN_OUTCOME, 16, "leader changed; the proposal may still commit")

enum raft_err {
#define RAFT_ERR_ENUM_(c, v, m) c = (v),
    RAFT_ERR_TABLE(RAFT_ERR_ENUM_)
#undef RAFT_ERR_ENUM_
};
const char *raft_strerror(int err);

enum raft_role { RAFT_FOLLOWER = 0, RAFT_PRE_CANDIDATE, RAFT_CANDIDATE, RAFT_LEADER };
const char *raft_role_name(enum raft_role role);

enum raft_entry_type {
    RAFT_ENTRY_NORMAL = 0, /* application command (data may be empty: the leader's no-op) */
    RAFT_ENTRY_CONF = 1,   /* configuration change, data from raft_conf_change_encode() */
};

struct raft_entry {
    raft_term term;
    raft_index index;
    uint8_t type;  /* enum raft_entry_type */
    uint32_t len;  /* bytes in data */
    uint8_t *data; /* owned by whoever owns the entry; NULL when len == 0 */
};

/* A configuration: who votes and who only learns. Ids are unique across both lists. */
struct raft_conf {
    uint32_t n_voters;
    uint32_t n_learners;
    raft_id voters[RAFT_VOTERS_MAX];
    raft_id learners[RAFT_LEARNERS_MAX];
};

enum raft_conf_change_type {
    RAFT_CC_ADD_VOTER = 1,   /* new voter, or promote an existing learner */
    RAFT_CC_ADD_LEARNER = 2, /* new learner (never a demotion of a voter) */
    RAFT_CC_REMOVE = 3,      /* remove a voter or learner (may be the leader itself) */
};

/* A configuration change. ctx is opaque application bytes carried in the entry (for
 * example the new member's address), at most RAFT_CC_CTX_MAX bytes. */
#define RAFT_CC_CTX_MAX 256
struct raft_conf_change {
    uint8_t type; /* enum raft_conf_change_type */
    raft_id node;
    uint32_t ctx_len;
    uint8_t ctx[RAFT_CC_CTX_MAX];
};
/* Encode into buf (capacity cap); returns bytes written or 0 if cap is too small. */
size_t raft_conf_change_encode(const struct raft_conf_change *cc, uint8_t *buf, size_t cap);
/* Decode; returns RAFT_OK or RAFT_ERR_CORRUPT for malformed input. */
int raft_conf_change_decode(const uint8_t *buf, size_t len, struct raft_conf_change *out);

struct raft_hard_state {
    raft_term term;
    raft_id vote;
    raft_index commit;
};

struct raft_snapshot_meta {
    raft_index index; /* last index the snapshot covers; 0 = no snapshot */
    raft_term term;   /* term of that entry */
    struct raft_conf conf; /* configuration as of index */
};

enum raft_msg_type {
    RAFT_MSG_PREVOTE = 1,
    RAFT_MSG_PREVOTE_RESP,
    RAFT_MSG_VOTE,
    RAFT_MSG_VOTE_RESP,
    RAFT_MSG_APPEND,        /* index/log_term = prev entry; entries; commit */
    RAFT_MSG_APPEND_RESP,   /* index = last matching index, or reject + hints */
    RAFT_MSG_HEARTBEAT,     /* commit (min(match, leader commit)); ctx for ReadIndex */
    RAFT_MSG_HEARTBEAT_RESP,/* ctx echoed */
    RAFT_MSG_SNAPSHOT,      /* snapshot meta; data travels beside it (see top of file) */
    RAFT_MSG_TIMEOUT_NOW,   /* leadership transfer: start an election now */
    RAFT_MSG_READ_INDEX,    /* follower -> leader: ctx */
    RAFT_MSG_READ_INDEX_RESP, /* leader -> follower: ctx, index, or reject */
    RAFT_MSG_PROPOSE,       /* follower -> leader: forwarded proposal (one entry), ctx */
    RAFT_MSG_PROPOSE_RESP,  /* leader -> follower: ctx, index, log_term, or reject + err */
    RAFT_MSG_TRANSFER,      /* follower -> leader: please transfer leadership to `index` */
    RAFT_MSG__COUNT
};
const char *raft_msg_type_name(int type);

struct raft_msg {
    uint8_t type; /* enum raft_msg_type */
    raft_id from;
    raft_id to;
    raft_term term;     /* sender's term (0 for local-only messages: none exist) */
    raft_term log_term; /* APPEND: prev log term; VOTE/PREVOTE: last log term;
                           APPEND_RESP reject: term of hint; PROPOSE_RESP: entry term */
    raft_index index;   /* APPEND: prev index; VOTE/PREVOTE: last index; APPEND_RESP:
                           last matching index (or rejected prev index);
                           READ_INDEX_RESP/PROPOSE_RESP: assigned index;
                           TRANSFER: target id */
    raft_index commit;
    bool reject;
    raft_index reject_hint; /* APPEND_RESP reject: follower's suggested next probe index */
    uint16_t err;           /* PROPOSE_RESP / READ_INDEX_RESP reject: enum raft_err */
    uint64_t ctx;           /* HEARTBEAT(_RESP), READ_INDEX(_RESP), PROPOSE(_RESP);
                               VOTE: 1 when the election is a leadership transfer */
    uint32_t n_entries;
    struct raft_entry *entries;
    struct raft_snapshot_meta snapshot; /* SNAPSHOT only */
};

/* Outcome of a proposal made on this member (directly or forwarded to the leader).
 * Forwarded proposals: RAFT_OK with index/term once the leader appended it; a rejection
 * from the leader (DROPPED: it was not leader any more, OVERLOAD, TOO_BIG, TRANSFERRING)
 * means it was definitely not appended; UNKNOWN_OUTCOME (the member saw the leader change
 * before an answer came) means it may or may not commit: decide at apply time. */
struct raft_prop_result {
    uint64_t ctx;
    int err;          /* RAFT_OK: appended on the leader at index/term (not yet committed) */
    raft_index index;
    /* The term the proposal was forwarded in (for RAFT_OK also the entry's term); 0 for
     * UNKNOWN_OUTCOME. A ctx forwarded again after a leader change can get the answer to
     * its earlier attempt: compare the term to tell them apart. */
    raft_term term;
};

/* A ReadIndex answer: once applied >= index, reads for ctx may be served locally. */
struct raft_read_state {
    uint64_t ctx;
    int err; /* RAFT_OK, or why the read could not be confirmed: NOT_LEADER (the leader
                lost leadership first), OVERLOAD, DROPPED (a forwarded read whose leader
                changed before it answered) */
    raft_index index;
};

struct raft_soft_state {
    raft_id leader;
    enum raft_role role;
};

struct raft_ready {
    bool hs_changed;
    struct raft_hard_state hs; /* persist when hs_changed */

    struct raft_entry *entries; /* append to the stable log; entries[0].index may be at or
                                   below the stable last index: delete the stable suffix from
                                   there first (a conflict was resolved) */
    size_t n_entries;
    bool must_sync; /* entries or term/vote changed: the write must be fsync'd */

    struct raft_snapshot_meta *snapshot; /* non-NULL: install the staged snapshot data and
                                            drop the WHOLE stable log, entries after
                                            snapshot->index included: the core only installs
                                            a snapshot when its log does not hold that entry
                                            with that term, so any later stable entries are
                                            stale. Ready.entries of the same batch (if any)
                                            follow the snapshot. */

    struct raft_msg *msgs; /* send only after the above is durable */
    size_t n_msgs;

    struct raft_entry *committed; /* apply in order, after persisting */
    size_t n_committed;

    struct raft_read_state *reads;
    size_t n_reads;

    struct raft_prop_result *props;
    size_t n_props;

    bool ss_changed;
    struct raft_soft_state ss;
};

struct raft_config {
    raft_id id;
    uint32_t election_ticks;  /* base election timeout; actual is random in [et, 2*et) */
    uint32_t heartbeat_ticks; /* < election_ticks */
    uint64_t seed;            /* PRNG seed for election timeouts */
    bool pre_vote;            /* default on in raftconf */
    bool check_quorum;        /* default on in raftconf */
    bool lease_read;          /* ReadIndex answered from the leader lease; default off */
    uint32_t max_inflight_msgs;      /* APPEND messages in flight per peer (replicate state),
                                        1..1024; election_ticks must be >= 2 */
    uint64_t max_msg_bytes;          /* entry payload bytes per APPEND message */
    uint64_t max_uncommitted_bytes;  /* propose refused with OVERLOAD beyond this */
    uint64_t max_entry_bytes;        /* propose refused with TOO_BIG beyond this */
    uint32_t max_pending_reads;      /* read_index refused with OVERLOAD beyond this */
};
/* Fill cfg with raftconf defaults (pre_vote and check_quorum on, lease off, 10/1 ticks...). */
void raft_config_default(struct raft_config *cfg, raft_id id, uint64_t seed);

/* What the member had on stable storage when it (re)started. */
struct raft_persisted {
    struct raft_hard_state hs;
    struct raft_snapshot_meta snapshot; /* index 0 when there is none */
    const struct raft_entry *entries;   /* stable log after the snapshot, contiguous */
    size_t n_entries;
    struct raft_conf initial;           /* bootstrap configuration, used only when neither the
                                           snapshot nor the log holds a configuration */
    raft_index applied;                 /* last index the application has applied (>= snapshot
                                           index); committed entries after it are delivered
                                           again in Ready.committed. If applied > hs.commit
                                           (the application's state was written after the
                                           hard state), commit is raised to applied. */
};

struct raft;

/* Create a member. The core copies what it needs from cfg and p (it does not keep the
 * pointers). Returns RAFT_OK, RAFT_ERR_BAD_ARG for an invalid config, RAFT_ERR_CORRUPT when
 * the persisted state contradicts itself (commit beyond the log, gap in the entries...). */
int raft_new(const struct raft_config *cfg, const struct raft_persisted *p, struct raft **out);
void raft_free(struct raft *r);

void raft_tick(struct raft *r);
/* Messages addressed to another member or with malformed fields are ignored (returns
 * RAFT_ERR_BAD_ARG); a message is copied, the caller keeps ownership of m. */
int raft_step(struct raft *r, const struct raft_msg *m);

/* Propose one application entry. On the leader: appended now, index and term set, RAFT_OK.
 * On a follower with a known leader: forwarded, RAFT_OK with *index = 0, and the outcome
 * arrives later in Ready.props (with ctx). Otherwise an error: NO_LEADER, OVERLOAD,
 * TRANSFERRING, TOO_BIG. index/term may be NULL. The data is copied. */
int raft_propose(struct raft *r, uint64_t ctx, const void *data, size_t len,
                 raft_index *index, raft_term *term);
/* Propose a configuration change (leader only; followers get NOT_LEADER). */
int raft_propose_conf_change(struct raft *r, uint64_t ctx, const struct raft_conf_change *cc,
                             raft_index *index, raft_term *term);
/* Ask for a read index; the answer comes in Ready.reads with ctx. Returns an error at once
 * only when no answer can come (NO_LEADER, OVERLOAD). */
int raft_read_index(struct raft *r, uint64_t ctx);
/* Transfer leadership to `to` (on a follower: forwarded to the leader). */
int raft_transfer_leadership(struct raft *r, raft_id to);
/* The transport failed (ok=false) or finished (ok=true) sending a snapshot to `to`. */
void raft_report_snapshot(struct raft *r, raft_id to, bool ok);
/* The transport could not reach `to`: leader moves it back to probe state. */
void raft_report_unreachable(struct raft *r, raft_id to);

/* The application took a snapshot of its state at `index` (<= applied index): drop the
 * log up to and including index. Returns COMPACTED when index <= current snapshot index,
 * UNAVAILABLE when index > applied index. */
int raft_compact(struct raft *r, raft_index index);

bool raft_has_ready(const struct raft *r);
/* Fill rd; borrowed until raft_advance(). Returns NOT_READY if the previous batch was not
 * advanced yet. */
int raft_ready(struct raft *r, struct raft_ready *rd);
/* The last batch is durable, sent and applied. */
void raft_advance(struct raft *r);

/* Introspection (cheap; for INFO, tests and the simulator's checkers). */
struct raft_progress_info {
    raft_id id;
    bool learner;
    raft_index match;
    raft_index next;
    uint8_t state;        /* 0 probe, 1 replicate, 2 snapshot */
    uint32_t inflight;
    uint32_t ticks_since_contact;
};
struct raft_status {
    raft_id id;
    enum raft_role role;
    raft_id leader;
    raft_term term;
    raft_id vote;
    raft_index commit;
    raft_index applied;
    raft_index first_index; /* first entry still in the log (snapshot index + 1) */
    raft_index last_index;
    raft_index stable_index; /* last index known durable */
    struct raft_snapshot_meta snapshot;
    struct raft_conf conf; /* latest configuration in the log */
    raft_id transferee;
    uint32_t n_progress; /* leader only */
    struct raft_progress_info progress[RAFT_VOTERS_MAX + RAFT_LEARNERS_MAX];
};
void raft_status(const struct raft *r, struct raft_status *st);
/* Term of the entry at index (0 when index == snapshot index's predecessor...); returns
 * COMPACTED/UNAVAILABLE when not in the log. For the simulator's log-matching check. */
int raft_term_at(const struct raft *r, raft_index index, raft_term *term);
/* Borrow the entry at index (valid until the next call into r). */
int raft_entry_at(const struct raft *r, raft_index index, const struct raft_entry **e);
/* The member's current term (cheap; raft_status fills much more). A proposal forwarded by
 * raft_propose() on a follower is appended by a leader only in this term. */
raft_term raft_current_term(const struct raft *r);

#endif
