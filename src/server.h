/*
 * server.h - the raftconf server process: the libevent loop, the client listener, signals,
 * the Raft tick timer and the once-per-loop-turn "turn end" that runs the node core.
 *
 * Loop turn (DESIGN.md "Batching"): srv_run() calls event_base_loop(EVLOOP_ONCE), which
 * runs every I/O callback that is ready (clients read and parse input and start commands:
 * writes go to node_write, reads to node_read_barrier), then srv_turn_end() runs exactly
 * once: node_run() persists every write of the turn with ONE fsync, applies, and completes
 * requests through callbacks that fill reply slots; clients whose slots completed start
 * their next commands; finally every client's finished replies are flushed to its socket.
 * A failed fsync (node_run == RC_IO) stops the process with a non-zero exit.
 *
 * One struct server per process, passed explicitly (no global); only signal setup needs
 * the pointer as a callback argument.
 */
#ifndef RAFTCONF_SERVER_H
#define RAFTCONF_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "config.h"

/* Stays on in release builds (STYLE.md): a failed check is a bug in raftconf, not bad
 * input (bad input gets an error reply). */
#define SRV_ASSERT(x)                                                                   \
    do {                                                                                \
        if (!(x)) {                                                                     \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #x);   \
            abort();                                                                    \
        }                                                                               \
    } while (0)

struct event_base;
struct event;
struct evconnlistener;
struct node;
struct pst_engine;
struct client;
struct pubsub;

#define SRV_VERSION "0.1.0"
#define SRV_REDIS_VERSION "7.2.0"

/* SCAN cursors: a bounded server-side table cursor id -> next key (see cmd_data.c). */
#define SRV_SCAN_CURSORS_MAX 10000
struct scan_cursor {
    uint64_t id; /* 0 = free */
    char *key;   /* next key to visit (malloc'd) */
    size_t klen;
};

struct srv_stats {
    uint64_t commands;
    uint64_t connections;
    uint64_t rejected;
    uint64_t net_in_bytes;
    uint64_t net_out_bytes;
    uint64_t turns;
    uint64_t ops_last;     /* commands at the last ops sample */
    uint64_t ops_sample_ms;
    uint64_t ops_per_sec;
};

struct server {
    struct srv_config cfg;
    struct event_base *base;
    struct evconnlistener *listener;
    struct event *tick_ev;
    struct event *cron_ev;
    struct event *sig_ev[2];
    struct pst_engine *pst;
    struct node *node;

    struct client *clients; /* doubly linked list of every connection */
    size_t n_clients;
    struct client **dirty;  /* clients to process/flush at turn end */
    size_t n_dirty, dirty_cap;
    struct client **flushing; /* the previous dirty list while it is flushed */
    size_t n_flushing, flushing_cap;
    uint64_t next_client_id;

    uint64_t start_ms;
    bool stopping;
    int exit_code;

    struct scan_cursor scans[SRV_SCAN_CURSORS_MAX];
    uint64_t scan_seq;
    size_t scan_hand;
    size_t scan_cursors_free_hint; /* free entries in scans[] */

    struct srv_stats stats;

    /* issue 4: peer transport and graceful leader handover */
    struct peer_mgr *peers;
    bool handover;              /* SIGTERM on a leader: transferring before stopping */
    uint64_t handover_deadline_ms; /* monotonic */

    /* issue 6: Pub/Sub registries (pubsub.c); NULL until the first subscription */
    struct pubsub *pubsub;

    /* issue 5: audit file sink, CFG.WATCH waiters, keyspace notifications (audit_sink.c) */
    struct audit_svc *audit;
};

/* Open the store and the node, bind the listener. Returns 0 or -1 (logged). */
int srv_init(struct server *s, const struct srv_config *cfg);
/* Run until SIGTERM/SIGINT or a fatal error; returns the exit code. */
int srv_run(struct server *s);
/* Close everything srv_init opened (safe after a partial init). */
void srv_close(struct server *s);

/* Wall clock in ms (unix) and a monotonic clock in ms. */
uint64_t srv_now_ms(void);
uint64_t srv_mono_ms(void);

struct evbuffer;
struct resp_cmd;
struct resp_parser;
/* Feed the first contiguous chunk of `in` to the parser and drain what it took (*used,
 * may be 0 when it needs more bytes). Returns resp_parse()'s status (enum
 * resp_parse_status); an empty buffer is RESP_NEED_MORE. Shared by client and peer
 * connections. */
int srv_parse_evbuffer(struct resp_parser *p, struct evbuffer *in, size_t *used,
                       struct resp_cmd **cmd);

/* Queue a client for processing at the end of this turn (idempotent). */
void srv_mark_dirty(struct server *s, struct client *c);

#endif
