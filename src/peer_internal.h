/*
 * peer_internal.h - state shared by peer.c (outbound links, batching, snapshot sending)
 * and peer_conn.c (cluster listener, inbound handshake, message and snapshot receiving).
 * Not a public header: only src/peer*.c include it.
 */
#ifndef RAFTCONF_PEER_INTERNAL_H
#define RAFTCONF_PEER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node.h"
#include "peer.h"
#include "resp/resp.h"

struct bufferevent;
struct evconnlistener;

#define PEER_NONCE_BYTES 16
#define PEER_NONCE_HEX (2 * PEER_NONCE_BYTES)
#define PEER_MAC_HEX 64
#define PEER_SNAP_ACK_TIMEOUT_MS 30000

enum link_state { L_IDLE = 0, L_CONNECTING, L_HELLO, L_AUTH, L_READY };

/* The settings every replica must share because they decide, at apply time, what an entry
 * does (a value too large is refused, history and audit records pruned, a rollback target
 * compacted...): a node whose settings differ would apply the same log differently. Sent
 * in RAFT.HELLO as "name=value,..." in a fixed order; a peer with other values is refused. */
#define PEER_LIMITS_MAX 256
void peer_limits(const struct server *s, char *buf, size_t cap);
/* NULL when a peer's limits (as sent in its HELLO) equal ours; else a message naming the
 * first setting that differs, in buf. */
const char *peer_limits_differ(const struct server *s, const char *theirs, char *buf,
                               size_t cap);

/* One snapshot being streamed to a destination (one per group at most). */
struct snap_out {
    bool active;
    bool begun;     /* RAFT.SNAP.BEGIN queued */
    uint8_t *frame; /* the encoded RAFT_MSG_SNAPSHOT message */
    size_t frame_len;
    struct node_snap_src *src;
    uint64_t chunks;
    bool sent;            /* END queued: waiting for the receiver's "+SNAPDONE <group>" */
    uint64_t ack_deadline_ms; /* monotonic; past it the transfer counts as failed */
};

/* Outbound link to one member (we dial it); also holds what we hear from that member. */
struct link {
    struct peer_mgr *pm;
    raft_id id;
    uint8_t state;
    struct bufferevent *bev;
    char addr[NODE_ADDR_MAX];    /* address being dialed / connected */
    char learned[NODE_ADDR_MAX]; /* address the member announced in its RAFT.HELLO */
    struct resp_buf q;           /* RESP commands queued this turn */
    uint64_t q_msgs;
    uint64_t next_dial_ms, backoff_ms; /* monotonic */
    char nonce[PEER_NONCE_HEX + 1];
    bool expect_bulk;            /* HELLO reply: "$32" seen, nonce line next */
    bool report_unreachable[NODE_GROUPS]; /* feedback due at the turn end */
    bool failed_logged;
    struct snap_out snap[NODE_GROUPS];
    uint64_t last_rx_ms;
};

/* An inbound connection (a member dialed us). */
enum conn_state { C_NEW = 0, C_CHALLENGED, C_AUTHED, C_CLOSING };
struct pconn {
    struct peer_mgr *pm;
    struct pconn *prev, *next;
    struct bufferevent *bev;
    struct resp_parser *parser;
    uint8_t state;
    raft_id from;
    char nonce[PEER_NONCE_HEX + 1];
    char addr[64];
    char announced[NODE_ADDR_MAX]; /* cluster address sent in RAFT.HELLO */
    bool snap_active[NODE_GROUPS];
    struct raft_msg snap_msg[NODE_GROUPS]; /* decoded RAFT.SNAP.BEGIN message */
};

struct peer_mgr {
    struct server *srv;
    struct evconnlistener *listener;
    uint32_t cport;
    char self_addr[NODE_ADDR_MAX]; /* our cluster address as configured (fallback) */
    struct link *links[PEER_LINKS_MAX];
    size_t n_links;
    struct pconn *conns;
    size_t n_conns;
    struct pconn *stager[NODE_GROUPS]; /* the connection whose snapshot is being staged */
    uint8_t *scratch;
    size_t scratch_cap;
    uint8_t *chunk;
    /* --initial-cluster addresses: the last fallback for dialing */
    size_t n_boot;
    raft_id boot_id[RAFT_VOTERS_MAX];
    char boot_addr[RAFT_VOTERS_MAX][NODE_ADDR_MAX];
    struct peer_stats st;
};

/* peer.c */
struct link *peer_link_get(struct peer_mgr *pm, raft_id id, bool create);
/* HMAC-SHA256(secret, "<nonce>|<from>|<to>") as 64 lower-case hex digits + NUL. */
void peer_mac_hex(const char *secret, const char *nonce, raft_id from, raft_id to,
                  char out[PEER_MAC_HEX + 1]);

/* peer_conn.c */
int peer_listen(struct peer_mgr *pm, const char *bind, uint32_t port);
void peer_conns_close(struct peer_mgr *pm);

#endif
