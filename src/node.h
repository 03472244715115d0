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
};
void node_config_default(struct node_config *c, raft_id id);

/* Who asked (recorded in the entry for the audit trail). */
struct node_origin {
    const char *actor;  /* authenticated user or "default" */
    const char *client; /* "ip:port" */
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

/* Time: now_ms is the service's wall clock in unix ms. It is stamped into write entries as
 * the proposer's time and drives tick_ms / request deadlines (a backwards jump is ignored
 * for ticks: no ticks until time passes the last tick again). */

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

/* Snapshot transfer (issue 4: InstallSnapshot streaming). When a group's Ready carries a
 * snapshot to install (the leader sent RAFT_MSG_SNAPSHOT and the transport staged the
 * group's range), node_run calls this installer, which must replace the group's state
 * machine range in the store with the staged data (durably) before returning RC_OK; node
 * then reopens the group's ns, writes the snapshot metadata and drops the log. Without an
 * installer, node_run fails with RC_IO ("snapshot install not available"): the sending side
 * (streaming the range for a RAFT_MSG_SNAPSHOT in Ready.msgs) is the transport's job. */
typedef int (*node_snapshot_install_fn)(void *ud, uint32_t group,
                                        const struct raft_snapshot_meta *m);
void node_set_snapshot_installer(struct node *n, node_snapshot_install_fn fn, void *ud);

#endif
