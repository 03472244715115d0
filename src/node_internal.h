/*
 * node_internal.h - what the files of the node core share (not a public API): the node,
 * group and request structures and the functions one file calls in another.
 *
 *   node.c         open/close, the loop turn (gather, write, send, apply, advance), ticks
 *   node_req.c     requests: handle hash, submit/retry/expire, writes and read barriers
 *   node_apply.c   applying committed entries, proposal outcomes, finishing requests,
 *                  log compaction
 *   node_member.c  cluster membership: bootstrap, address book, conf changes in both
 *                  groups, leader co-location, transfer, health, transport feedback
 *   node_snap.c    snapshot streaming: source chunks, staging, crash-safe install
 *
 * Invariants (besides those in each file): everything runs on one thread; a struct req is
 * in the handle hash and the request list until it completes; group ids index n->g.
 */
#ifndef RAFTCONF_NODE_INTERNAL_H
#define RAFTCONF_NODE_INTERNAL_H

#include <stdio.h>
#include <stdlib.h>

#include "node.h"
#include "node_log.h"

#define NODE_ASSERT(cond)                                                            \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "node: assertion failed: %s (%s:%d)\n", #cond, __FILE__, \
                    __LINE__);                                                       \
            abort();                                                                 \
        }                                                                            \
    } while (0)

#define NODE_PENDING_MAX_LIMIT 1000000u
#define NODE_BOOK_MAX (RAFT_VOTERS_MAX + RAFT_LEARNERS_MAX) /* address book records */
#define NODE_ANNOUNCED_MAX 8u /* addresses of proposed, not yet applied additions */

enum req_kind { REQ_WRITE = 1, REQ_READ = 2, REQ_CONF = 3 };
enum req_state {
    RS_QUEUED = 1, /* not in Raft: no leader known; retried on tick and leader change */
    RS_FORWARDED,  /* write: forwarded to the leader, index not known yet */
    RS_APPENDED,   /* write / conf (meta group): appended at (index, term) */
    RS_ASKED,      /* read: raft_read_index called, waiting for the read state */
    RS_WAIT_APPLY, /* read: read index known, waiting for applied >= index */
    RS_CONF_DATA,  /* conf: applied in the meta group, waiting for the data group */
    RS_DEFERRED,   /* any: outcome known (done_rc), delivered by the next node_run */
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
    uint8_t *data; /* write: the envelope, kept until the request completes, because a
                      write whose entry is known not to commit is proposed again */
    size_t len;
    raft_index index;
    raft_term term;
    raft_term fwd_term; /* RS_FORWARDED: the term it was forwarded in (see node_apply.c) */
    /* conf changes */
    uint8_t cc_type;
    raft_id cc_node;
    /* RS_DEFERRED */
    int done_rc;
    char *done_msg;
};

struct node_stage; /* node_snap.c: a group's snapshot staging */

struct group {
    uint32_t id;
    struct raft *raft;
    struct ns *ns;
    struct node_log log;
    struct raft_ready rd;
    bool in_ready;
    bool retry; /* a leader appeared: retry queued requests after this turn */
    bool quorum_lost; /* leader that has not heard from a quorum lately (node_tick) */
    raft_id leader;
    enum raft_role role;
    struct raft_conf conf;  /* as of conf_index (the applied index, see node_apply.c) */
    raft_index conf_index;  /* conf changes up to here are folded into conf */
    raft_index last_cc_index; /* index of the last conf change entry folded (0: none) */
    bool compact_pending;   /* write the snapshot meta in the next batch */
    bool compact_written;   /* written: call raft_compact after advance */
    struct raft_snapshot_meta compact;
    uint64_t leader_contact_tick; /* n->ticks when a message from the leader came */
    raft_index lead_start;        /* last index when this member became leader */
    uint64_t colocate_tick;       /* n->ticks of the last co-location request */
    struct node_stage *stage;     /* snapshot staging in progress / staged, or NULL */
    bool stage_cleanup;           /* delete the staging range after this turn's write */
};

struct node {
    struct pst_engine *e;
    struct node_config cfg;
    struct group g[NODE_GROUPS];
    node_send_fn send;
    void *send_ud;
    struct pst_batch *batch;
    struct req **buckets;
    size_t nbuckets; /* power of two */
    struct req *head, *tail;
    size_t n_reqs, n_deferred;
    uint64_t rid_base, seq;
    uint64_t last_tick_ms;
    uint64_t ticks; /* Raft ticks so far (all groups tick together) */
    uint64_t fsyncs, entries_written, bad_entries, msgs_dropped;
    bool failed;
    bool closing; /* node_close is completing requests: refuse new ones */
    char *error;
    char *note;
    /* address book of the meta group (mirror of its 'M' records) */
    struct node_member book[NODE_BOOK_MAX];
    size_t n_book;
    struct node_member announced[NODE_ANNOUNCED_MAX];
    size_t announced_next;
    struct node_snap_src *srcs; /* open snapshot sources (detached at close) */
    bool test_crash_install;    /* tests only: fail an install after copying the data,
                                   before the snapshot meta is written (a crash there) */
    node_apply_fn apply_fn;     /* issue 5: observer of applied command entries */
    void *apply_ud;
};

void node_set_error(struct node *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
struct group *node_group_of(struct node *n, uint32_t group);
/* Reload g's log from the store and create its Raft member again (bootstrap). */
int node_restart_raft(struct node *n, struct group *g, char **err);

/* node_req.c */
struct req *node_req_find(const struct node *n, uint64_t handle);
void node_req_link(struct node *n, struct req *r);
void node_req_unlink(struct node *n, struct req *r);
struct req *node_req_new(struct node *n, uint8_t kind, uint32_t group, uint64_t now_ms,
                         node_done_fn fn, void *ud);
void node_req_complete(struct node *n, struct req *r, int rc, struct ns_reply *reply);
void node_req_fail(struct node *n, struct req *r, int rc, const char *msg);
/* Complete r at the next node_run with rc and msg (copied; NULL: no reply). */
void node_req_defer(struct node *n, struct req *r, int rc, const char *msg);
void node_req_run_deferred(struct node *n);
struct ns_reply *node_err_reply(int rc, const char *msg);
int node_refusal_rc(int raft_err);
void node_req_note_err(struct req *r, int err);
void node_retry_queued(struct node *n, bool all);
void node_expire_requests(struct node *n, uint64_t now_ms);

/* node_apply.c */
int node_apply_committed(struct node *n, struct group *g);
void node_take_props_and_reads(struct node *n, struct group *g);
void node_finish_requests(struct node *n);
void node_plan_compaction(struct node *n, struct group *g);
void node_finish_compaction(struct node *n, struct group *g);
/* Fold a conf entry into g->conf when past g->conf_index. */
void node_fold_conf(struct group *g, const struct raft_entry *e);

/* node_member.c */
/* A meta-group conf entry past the applied index: update the address book (store + memory)
 * before the applied index moves (idempotent if replayed). */
int node_book_apply(struct node *n, const struct raft_entry *e);
int node_book_load(struct node *n);
void node_book_note_appended(struct node *n, const struct raft_entry *ents, size_t count);
/* Conf-change requests: meta entry applied at (index, term). */
void node_conf_on_meta_applied(struct node *n, const struct raft_entry *e);
void node_conf_finish(struct node *n);
/* Per tick / turn: leader co-location and data-group reconciliation. */
void node_member_tick(struct node *n);
void node_member_reconcile(struct node *n);
void node_member_on_step(struct node *n, struct group *g, const struct raft_msg *m);
/* Bootstrap snapshot (index 1, term 1) with applied 0: the state is the address book. */
int node_member_fix_bootstrap(struct node *n, struct group *g);

/* node_snap.c */
/* Which letters after 'g' G are state-machine state (copied by snapshots). */
bool node_state_letter(uint8_t letter);
/* Open time: finish an install interrupted by a crash, discard stale staging. */
int node_snap_recover(struct node *n, uint32_t group, char **err);
/* Ready carries a snapshot: install the staged data (before the batch is written) and put
 * the snapshot meta, log drop and marker removal into n->batch. */
int node_snap_install(struct node *n, struct group *g, const struct raft_snapshot_meta *m);
/* After the turn's write: remove staging records of installed / refused snapshots. */
void node_snap_after_write(struct node *n, struct group *g);
/* node_step of a RAFT_MSG_SNAPSHOT: RC_OK when staged data matches it. */
int node_snap_check_step(struct node *n, struct group *g, const struct raft_msg *m);
void node_snap_free_group(struct group *g);
void node_snap_detach_all(struct node *n);
bool node_snap_staging(const struct group *g);

#endif
