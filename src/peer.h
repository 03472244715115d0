/*
 * peer.h - the peer transport of a raftconf node (issue 4): the cluster-port listener,
 * one outbound connection per destination member with reconnect and exponential backoff,
 * the HMAC-SHA256 challenge handshake on cluster-secret, per-destination batching of Raft
 * messages (one write per peer per loop turn) and snapshot streaming in chunks.
 *
 * Wire protocol (RESP framing, internal RAFT.* commands; docs/cluster.md):
 *   dialer -> listener   RAFT.HELLO raftconf/1 <from> <to> <from-cluster-addr>  -> $nonce
 *                        RAFT.AUTH <hex HMAC-SHA256(secret, "<nonce>|<from>|<to>")> -> +OK
 *   then, no replies:    RAFT.MSG <raft_wire frame>
 *                        RAFT.SNAP.BEGIN <frame of the RAFT_MSG_SNAPSHOT>
 *                        RAFT.SNAP.CHUNK <group> <xxh3 hex> <data>
 *                        RAFT.SNAP.END <group> (-> +SNAPDONE <group>) | RAFT.SNAP.ABORT <group>
 * An error reply ("-ERR ...") always precedes a close by the listener. A snapshot counts as
 * delivered (node_report_snapshot(true)) only on +SNAPDONE: the receiver staged the data
 * and stepped the RAFT_MSG_SNAPSHOT.
 *
 * Invariants: a connection accepts RAFT.MSG / RAFT.SNAP.* only after a valid RAFT.AUTH;
 * messages go out only on an authenticated outbound link; everything read from a peer is
 * decoded strictly (raft_wire) and a bad message is dropped and counted, never trusted;
 * feedback to the node core (unreachable, snapshot outcome) is given at the turn end, never
 * from inside node_run's transport callback.
 */
#ifndef RAFTCONF_PEER_H
#define RAFTCONF_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node.h"
#include "raft/raft.h"

struct server;
struct resp_buf;

#define PEER_PROTO_TAG "raftconf/2"
#define PEER_LINKS_MAX 64             /* destination members tracked */
#define PEER_CONNS_MAX 128            /* inbound connections */
#define PEER_BACKOFF_MIN_MS 100
#define PEER_BACKOFF_MAX_MS 5000
#define PEER_HANDSHAKE_TIMEOUT_MS 2000
#define PEER_WRITE_TIMEOUT_MS 3000    /* no write progress this long: the link is dead */
#define PEER_QUEUE_MAX (8u << 20)     /* bytes queued for a link that is not up yet */
#define PEER_OUTBUF_MAX (32u << 20)   /* socket backlog above which messages are dropped */
#define PEER_SNAP_CHUNK NODE_SNAP_CHUNK_BYTES /* snapshot chunk bytes (4 MiB) */
#define PEER_SNAP_CHUNKS_PER_TURN 1   /* the loop stays responsive while streaming */
#define PEER_SNAP_OUTBUF_MAX (8u << 20) /* no more chunks while the backlog is above this */

struct peer_stats {
    uint64_t msgs_sent, msgs_recv, bytes_sent, bytes_recv;
    uint64_t msgs_dropped; /* not sent: link down and queue full, unknown address ... */
    uint64_t msgs_bad;     /* received but malformed / bad checksum / wrong sender */
    uint64_t auth_failures, dials, dial_failures;
    uint64_t snaps_sent, snaps_recv, snaps_failed;
    uint64_t conns_in;      /* inbound cluster connections open now */
    uint64_t conns_refused; /* inbound connections closed at once: PEER_CONNS_MAX open */
};

/* What the transport knows about one member, for INFO. */
struct peer_link_info {
    bool known;          /* a link exists for this id */
    bool up;             /* outbound link authenticated */
    char addr[128];      /* cluster address dialed (or to dial) */
    uint64_t last_rx_ms; /* monotonic ms of the last message received from it (0 never) */
    bool snapshot_sending;
};

/* Start: open the cluster listener (only with a cluster-secret) and register the node
 * transport. Returns 0 or -1 (logged). */
int peer_open(struct server *s);
void peer_close(struct server *s);
/* Turn end (after node_run): write every link's queue, advance snapshot streams, give the
 * node core its transport feedback, dial links that are due. */
void peer_turn_end(struct server *s);

/* Bytes queued or unsent on an authenticated link (shutdown waits, bounded, for them). */
bool peer_out_pending(const struct server *s);

void peer_stats_get(const struct server *s, struct peer_stats *out);
void peer_link_info(const struct server *s, raft_id id, struct peer_link_info *out);
/* The cluster port this node listens on (0 when no listener: no cluster-secret). */
uint32_t peer_cluster_port(const struct server *s);

#endif
