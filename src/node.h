/*
 * node.h - the I/O-free core of a raftconf node: owns the Raft groups of this node, turns
 * write requests into log entries and read requests into ReadIndex waits, persists every
 * group's Ready output in ONE pst batch with ONE fsync per loop turn, applies committed
 * entries through src/ns, and completes waiting requests through callbacks.
 *
 * No sockets, clocks or threads here: the service layer passes the time in (now_ms) and
 * provides a transport callback for messages to other members. Groups: 0 is the meta group
 * (membership, later the shard map), 1 holds the data; every key in the store and every
 * message is keyed by group id, so more groups need no reshaping.
 *
 * Request outcomes (node_done_fn rc):
 *   RC_OK        the write was applied on THIS node (reply = what ns_apply answered), or
 *                the read may now be served locally (reply NULL);
 *   RC_TRYAGAIN  no leader known yet (election), nothing was appended;
 *   RC_NOQUORUM  the leader could not reach a majority in time; not applied;
 *   RC_TIMEOUT   the entry was handed to Raft but its fate is unknown (may still apply);
 *   RC_SHUTDOWN  the node is closing; RC_IO: storage failed.
 * A plain error always means "not applied". Unknown outcomes are never guessed.
 */
#ifndef RAFTCONF_NODE_H
#define RAFTCONF_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ns/ns.h"
#include "persist/pst.h"
#include "raft/raft.h"

#define NODE_GROUP_META 0u
#define NODE_GROUP_DATA 1u

struct node;

struct node_config {
    raft_id id;                 /* this node's id (> 0) */
    struct raft_conf initial;   /* bootstrap voters for a new cluster (just {id} alone) */
    struct raft_config raft;    /* template: id and seed are set per group */
    uint32_t tick_ms;           /* one Raft tick; default 100 */
    uint32_t request_timeout_ms;/* a write/read waits at most this long; default 5000 */
    uint64_t snapshot_entries;  /* compact the log after this many applied entries */
    uint32_t max_pending;       /* requests in flight per node; beyond: RC_OVERLOAD */
    struct ns_limits ns;
    uint64_t start_wall_ms;     /* wall clock (unix ms) at start, seeds request ids; 0: now_ms */
};
void node_config_default(struct node_config *c, raft_id id);

/* Who asked (recorded in the entry for the audit trail). */
struct node_origin {
    const char *actor;  /* authenticated user or "default" */
    const char *client; /* "ip:port" */
    uint64_t wall_ms;   /* the proposer's wall-clock time, unix ms, stamped into the entry
                           (0: use now_ms) */
};

/* Called exactly once per request unless cancelled; reply is handed over (the callee frees
 * it with ns_reply_free), NULL for reads and errors. Addition: an error MAY come with a
 * non-NULL reply of type NS_R_ERR (same rc) whose str is a more specific message than
 * rc_message(rc), e.g. RC_TRYAGAIN "leader changed; write not applied"; free it like any
 * reply. Callbacks may call node_write/node_read_barrier/node_cancel, never node_close. */
typedef void (*node_done_fn)(void *ud, int rc, struct ns_reply *reply);
/* Transport: deliver m to member m->to of `group`. m is borrowed for the call. */
typedef void (*node_send_fn)(void *ud, uint32_t group, const struct raft_msg *m);

/* Open on engine e (not owned): loads each group's hard state, snapshot and log, replays
 * committed entries past the applied index. *err gets a malloc'd message on failure. */
int node_open(struct pst_engine *e, const struct node_config *cfg, uint64_t now_ms,
              struct node **out, char **err);
/* Complete every pending request with RC_SHUTDOWN, then free. */
void node_close(struct node *n);

void node_set_transport(struct node *n, node_send_fn fn, void *ud);

/* Group that owns key (longest matching shard prefix; today always NODE_GROUP_DATA). */
uint32_t node_route(const struct node *n, const void *key, size_t klen);
/* The state machine of a group on this node (for local reads); NULL if unknown group. */
struct ns *node_ns(struct node *n, uint32_t group);

/* Submit a write. argv is copied. Returns a handle > 0, or 0 with *rc set when refused
 * at once (then fn is not called). */
uint64_t node_write(struct node *n, uint32_t group, const struct node_origin *o, int argc,
                    char **argv, const size_t *argvlen, uint64_t now_ms, node_done_fn fn,
                    void *ud, int *rc);
/* Ask for a linearizable read barrier on group: fn(ud, RC_OK, NULL) once this node has
 * applied everything committed before the call. */
uint64_t node_read_barrier(struct node *n, uint32_t group, uint64_t now_ms, node_done_fn fn,
                           void *ud, int *rc);
/* Forget a request (the client went away): its callback will not be called. */
void node_cancel(struct node *n, uint64_t handle);

/* A message from a peer. */
int node_step(struct node *n, uint32_t group, const struct raft_msg *m);

/* Advance time: ticks Raft groups (every tick_ms) and times requests out. */
void node_tick(struct node *n, uint64_t now_ms);
/* One loop turn of work: gather every group's Ready into one batch, write it with one fsync
 * (when needed), send messages, apply committed entries, complete requests, advance.
 * Returns RC_OK, or RC_IO when storage failed (the caller must stop the process). */
int node_run(struct node *n, uint64_t now_ms);
bool node_has_work(const struct node *n);

/* Introspection for INFO. */
int node_raft_status(const struct node *n, uint32_t group, struct raft_status *st);
uint64_t node_fsyncs(const struct node *n);        /* fsyncs issued so far */
uint64_t node_entries_written(const struct node *n);

/* ---------------------------------------------------------------- additions (node helper) */

#define NODE_GROUPS 2u              /* groups on every node today: meta and data */
#define NODE_TICKS_CATCHUP_MAX 10u  /* node_tick runs at most this many ticks per call */

/* Time: every now_ms argument is a MONOTONIC clock in ms (the service passes
 * CLOCK_MONOTONIC): it drives tick_ms and request deadlines, so a wall-clock step (NTP,
 * an operator) neither stalls elections nor times requests out early. Wall-clock time
 * enters only as data: node_origin.wall_ms is stamped into write entries as the proposer's
 * time, and node_config.start_wall_ms seeds request ids so they stay unique across
 * restarts. */

/* Why node_run/node_open last failed (valid until the next failure or close); NULL if none. */
const char *node_last_error(const struct node *n);
/* A note from node_open that is not an error (a torn log tail was truncated); NULL if
 * none. Valid until node_close. */
const char *node_open_note(const struct node *n);
/* Requests tracked (including cancelled ones still waiting for their outcome). */
size_t node_pending(const struct node *n);
/* Committed entries whose payload did not decode (applied as no-ops on every replica). */
uint64_t node_bad_entries(const struct node *n);
/* Configuration of group as of its applied index (snapshot / bootstrap conf plus every
 * applied conf change); RC_OK or RC_BADARG for an unknown group. */
int node_applied_conf(const struct node *n, uint32_t group, struct raft_conf *out);

/* Obsolete (kept so old callers build): the node installs staged snapshots itself
 * (node_snap_stage_* below); an installer set here is ignored. */
typedef int (*node_snapshot_install_fn)(void *ud, uint32_t group,
                                        const struct raft_snapshot_meta *m);
void node_set_snapshot_installer(struct node *n, node_snapshot_install_fn fn, void *ud);

/* ---------------------------------------------------------------- cluster (issue 4)
 *
 * Contract between the node core (owner: node-cluster helper) and the service's peer
 * transport and commands (owner: peer helper). Membership is the same in every group:
 * a change is proposed in the meta group first, then in the data group, and completes
 * when both have applied it on this node. Addresses are part of the change (the conf
 * change ctx) and are kept, per member, in the meta group's state, so every node learns
 * every address from the log and a restart needs no flags. */

#define NODE_ADDR_MAX 128
struct node_member {
    raft_id id;
    bool learner;
    char addr[NODE_ADDR_MAX];         /* client address "host:port" */
    char cluster_addr[NODE_ADDR_MAX]; /* peer (cluster port) address "host:port" */
};

/* Bootstrap for a NEW cluster (ignored when the store already has a configuration):
 * every voter with its addresses. n_members == 0 means a single-node cluster of cfg->id
 * with the addresses given in self (self.id is ignored). */
struct node_bootstrap {
    uint32_t n_members;
    struct node_member members[RAFT_VOTERS_MAX];
    struct node_member self; /* addition: used when n_members == 0 */
};
/* Call before the first node_run/node_tick (after node_open) on a new store (a lone node
 * that ticked may have elected itself already). RC_EXISTS when the store
 * already holds a configuration (nothing changes: a restart ignores --initial-cluster).
 * RC_BADARG when cfg->id is not among the members, ids repeat or an address is too long.
 *
 * What it writes (docs/storage.md "Bootstrap"): in BOTH groups a snapshot at index 1,
 * term 1 whose configuration holds the members (a member with learner set is a learner),
 * hard state term 1 / commit 1, and the address book records, in one synced batch. Every
 * initial member writes the same, so their logs agree from index 1 on.
 *
 * A node JOINING an existing cluster does not call node_bootstrap: open it on an empty
 * store with cfg->initial = any valid configuration in which it is NOT a voter (e.g. the
 * existing voters); it then never campaigns, and the leader (whose log starts after the
 * bootstrap snapshot) catches it up with a snapshot that carries the real configuration
 * and the address book. Add it first (node_conf_change ADD_LEARNER on the leader). */
int node_bootstrap(struct node *n, const struct node_bootstrap *b);

/* Members as of the meta group's latest configuration (raft_status conf, including a
 * change not yet committed), with their addresses from the address book (a member whose
 * addition is not applied yet has the addresses of its appended conf entry, or empty
 * strings); voters first. RC_TOOBIG when cap is too small (count says how many there are;
 * the first cap are filled). */
int node_members(const struct node *n, struct node_member *out, size_t cap, size_t *count);
/* One member's addresses (RC_NOTFOUND when unknown). For the transport's dialing. */
int node_member(const struct node *n, raft_id id, struct node_member *out);

/* Propose a membership change in every group (meta first). type is enum
 * raft_conf_change_type; addr/cluster_addr are required for additions (NULL for REMOVE and
 * for promotion). Completes with RC_OK once every group applied it on this node; errors:
 * RC_NOTLEADER (this node is not the meta group's leader: the reply names the leader),
 * RC_BADARG (unknown id, duplicate, removing the last voter...), RC_TRYAGAIN (another change
 * in progress / no leader), RC_TIMEOUT.
 *
 * Details (node-cluster helper): returns 0 with *rc only for malformed arguments (RC_BADARG:
 * id 0, bad type, an address given but empty or >= NODE_ADDR_MAX, both addresses longer
 * than 253 bytes together), RC_OVERLOAD, RC_NOMEM, RC_SHUTDOWN/RC_IO. Everything else,
 * including the errors above, is delivered through fn (at the latest by the next node_run;
 * node_has_work is true meanwhile) with an NS_R_ERR reply whose str says why, e.g.
 * "not the leader; leader is node 2 at 127.0.0.1:6380 (cluster 127.0.0.1:16380)" or
 * "node 4: node is already a member". RC_OK comes with a +OK status reply. The meta group
 * applies the change first; the node that leads the data group then makes the same change
 * there (one at a time, following the meta group's applied configuration, see
 * node_member.c); the request completes when this node's data group applied it too.
 * RC_TIMEOUT with "applied in the meta group; ..." means the meta change is done and the
 * data group will follow. Leadership of both groups is kept on one node: the meta leader
 * asks for the data group's leadership when another node holds it. */
uint64_t node_conf_change(struct node *n, uint8_t type, raft_id id, const char *addr,
                          const char *cluster_addr, uint64_t now_ms, node_done_fn fn,
                          void *ud, int *rc);
/* Transfer leadership of every group this node leads to `to` (RC_NOTLEADER when it leads
 * none, RC_BADARG for an unknown/learner target). to == this node: RC_OK, nothing to do. */
int node_transfer(struct node *n, raft_id to);
/* Leader of a group as this node knows it (RAFT_NONE when unknown). */
raft_id node_leader(const struct node *n, uint32_t group);
/* Can this node serve a linearizable read of group right now (leader known and in contact
 * with a quorum as far as this node can tell, not installing a snapshot)? why gets a short
 * reason when not. */
bool node_healthy(const struct node *n, uint32_t group, char *why, size_t why_cap);
/* (Details: a leader is healthy when a majority of the voters of its latest configuration,
 * itself included, were heard from within election_ticks; a follower or learner when it
 * got an AppendEntries/heartbeat/snapshot within election_ticks.) */

/* Transport feedback to the Raft core. */
void node_report_unreachable(struct node *n, uint32_t group, raft_id to);
void node_report_snapshot(struct node *n, uint32_t group, raft_id to, bool ok);

/* Snapshot streaming, sending side: a consistent view of a group's state-machine range
 * (a pst snapshot taken at open), cut into self-describing chunks of at most cap bytes.
 * The data is the CURRENT applied state (applied index >= the Raft snapshot index named in
 * the RAFT_MSG_SNAPSHOT; the receiver's state machine skips entries it already holds). */
struct node_snap_src;
int node_snap_src_open(struct node *n, uint32_t group, struct node_snap_src **out);
/* Next chunk into buf; *done set with the last chunk. A value larger than a chunk is split
 * over several chunks (the receiver reassembles it). RC_BADARG when cap < 26, RC_TOOBIG
 * when one KEY does not fit in cap (use at least NODE_SNAP_CHUNK_MIN; NODE_SNAP_CHUNK_BYTES
 * is a good size), RC_SHUTDOWN after node_close (node_close detaches open sources;
 * node_snap_src_close still frees them), RC_IO. */
#define NODE_SNAP_CHUNK_BYTES (4u * 1024u * 1024u)
#define NODE_SNAP_CHUNK_MIN (PST_KEY_BYTES_MAX + 64u) /* any key plus the overheads */
int node_snap_src_next(struct node_snap_src *s, void *buf, size_t cap, size_t *len,
                       bool *done);
void node_snap_src_close(struct node_snap_src *s);
/* Receiving side: stage the chunks (durably, outside the live range), then the transport
 * calls node_step() with the RAFT_MSG_SNAPSHOT; if Raft accepts it, node_run installs the
 * staged data itself (crash-safe: a restart in the middle of an install finishes it). A
 * new begin discards any earlier staging of that group. RC_CORRUPT for a malformed chunk.
 *
 * Details (node-cluster helper): chunks must arrive in order (each carries a sequence
 * number); a corrupt or out-of-order chunk is refused with RC_CORRUPT and DISCARDS the
 * staging (begin again; report the snapshot failed to the sender). stage_end returns
 * RC_BADARG before the last chunk. node_step of a RAFT_MSG_SNAPSHOT returns RC_BADARG
 * (Raft never sees it) unless a completed staging from m->from matches m->snapshot's index
 * and term, or Raft would not need the data (index already committed / in the log). A
 * staging that Raft did not install is discarded at the next node_run. Between a
 * successful node_step of the snapshot and the next node_run (which installs it),
 * stage_begin returns RC_TRYAGAIN and stage_abort does nothing. While staging,
 * node_healthy says "installing a snapshot". Chunk format: node_snap.c. */
int node_snap_stage_begin(struct node *n, uint32_t group, raft_id from,
                          const struct raft_snapshot_meta *m);
int node_snap_stage_chunk(struct node *n, uint32_t group, const void *data, size_t len);
int node_snap_stage_end(struct node *n, uint32_t group);
void node_snap_stage_abort(struct node *n, uint32_t group);


/* ---------------------------------------------------------------- apply observer (issue 5)
 *
 * Called on this node after every successful ns_apply of a command entry of `group` (not
 * for Raft no-ops, conf changes, undecodable entries or entries skipped as already
 * applied, nor for data that arrived by snapshot install), inside node_run, after the
 * entry's batch was written and before the write it answers completes. ns_last_audit(ns)
 * then gives the entry's audit record when it changed something. Used for the audit file
 * sink, CFG.WATCH wake-ups and keyspace notifications. The observer must not call
 * node_close; NULL fn removes it. */
typedef void (*node_apply_fn)(void *ud, uint32_t group, struct ns *ns, uint64_t index);
void node_set_apply_observer(struct node *n, node_apply_fn fn, void *ud);

#endif
