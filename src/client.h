/*
 * client.h - one client connection: its socket (a libevent bufferevent), its RESP parser,
 * and a FIFO of command slots that keeps replies in command order.
 *
 * Ordering rules (per client), see client.c:
 *   - commands are parsed into slots in arrival order; at most CLIENT_SLOTS_MAX slots are
 *     queued (then the socket is not read: backpressure);
 *   - a write may start while earlier WRITES of this client are pending (so a pipeline of
 *     writes lands in one batch and one fsync); a read may start while earlier READS are
 *     pending; anything else starts only when nothing is pending;
 *   - replies are flushed in slot order: a pending slot holds back the ones after it;
 *   - no command starts (and no ready read runs) while the client's unsent replies exceed
 *     CLIENT_OUT_PAUSE_BYTES: a client that does not read is throttled, not buffered;
 *     client-output-buffer-limit still closes a client whose single reply is too big.
 * A client closed while requests are pending cancels them (node_cancel) before freeing.
 */
#ifndef RAFTCONF_CLIENT_H
#define RAFTCONF_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "resp/resp.h"

struct server;
struct bufferevent;
struct evbuffer;
struct cmd_def;
struct ps_client;

#define CLIENT_SLOTS_MAX 1024
#define CLIENT_READ_CHUNK (256 * 1024) /* bytes taken from the socket per read event */
/* Reply bytes (built + unsent) above which no further command of the client runs until
 * the socket drains below half of it. */
#define CLIENT_OUT_PAUSE_BYTES (4u * 1024 * 1024)
#define CLIENT_NAME_MAX 256
/* A queued command that names no key (PING, ECHO) fits any group (struct client_multi). */
#define CLIENT_GROUP_ANY UINT32_MAX

enum slot_state {
    SLOT_QUEUED = 0,  /* parsed, not started */
    SLOT_WRITING,     /* node_write in flight */
    SLOT_BARRIER,     /* node_read_barrier in flight */
    SLOT_READ_READY,  /* barrier passed; handler runs at the next processing */
    SLOT_DONE,        /* reply in out */
};

struct cslot {
    struct cslot *next;
    struct client *c;
    struct resp_cmd *cmd;      /* owned; freed when the slot completes */
    const struct cmd_def *def; /* NULL for unknown commands / errors */
    uint64_t handle;           /* node request handle while WRITING/BARRIER */
    uint8_t state;
    struct resp_buf out;
};

/* One watched key (WATCH, cmd_multi.c): its group and that group's revision on this node
 * when WATCH ran, after a read barrier. EXEC aborts if the key changed after rev. */
struct client_watch {
    char *key; /* owned */
    size_t klen;
    uint32_t group;
    uint64_t rev;
};

/* MULTI/EXEC state of a connection (cmd_multi.c). Invariants: capture is set only while
 * a write handler runs inside MULTI; queued commands are kept in the EXEC entry layout
 * (src/ns/ns.h: per command its argument count, then its arguments, every string owned)
 * and stay within the NS_EXEC_* limits; every queued command and every watched key has
 * group == CLIENT_GROUP_ANY or one group (else EXEC answers -CROSSSHARD). */
struct client_multi {
    bool active;  /* between MULTI and EXEC / DISCARD */
    bool dirty;   /* a command was refused while queueing: EXEC answers -EXECABORT */
    bool capture; /* cmd_propose queues the command instead of proposing it */
    uint32_t group; /* CLIENT_GROUP_ANY until a queued command names a group */
    uint32_t ncmds;
    char **argv;
    size_t *argvlen;
    size_t argc, cap;
    size_t bytes; /* argument bytes + 4 per argument, as NS_EXEC_BYTES_MAX counts them */
    struct client_watch *watch;
    size_t nwatch, watch_cap;
};

struct client {
    struct server *srv;
    struct client *prev, *next;
    uint64_t id;
    int fd;
    struct bufferevent *bev;
    struct evbuffer *inbuf; /* bytes read, not yet parsed (bounded by CLIENT_READ_CHUNK per
                               read plus backpressure) */
    struct resp_parser *parser;

    struct cslot *head, *tail; /* every slot, in command order */
    struct cslot *next_start;  /* first SLOT_QUEUED slot */
    uint32_t n_slots;
    uint32_t pending_writes;
    uint32_t pending_reads;

    int proto;          /* 2 or 3 */
    bool authed;
    bool readonly;      /* READONLY: local reads without a barrier */
    bool dirty;         /* in srv->dirty */
    bool read_paused;   /* backpressure: EV_READ disabled */
    bool close_after_reply; /* QUIT / CLIENT KILL of itself: later slots are dropped */
    bool input_closed;      /* protocol error: parse no more; close once flushed */
    bool close_asap;
    bool input_pending; /* unparsed bytes left in the input buffer */
    bool out_paused;    /* output backpressure: commands wait for the socket to drain */
    size_t unflushed_bytes; /* reply bytes in DONE slots not yet moved to the socket */

    char addr[64];  /* "ip:port" of the peer */
    char laddr[64]; /* local "ip:port" */
    char *name;
    char *lib_name;
    char *lib_ver;
    uint64_t ctime_ms;      /* connected at (unix ms) */
    uint64_t last_mono_ms;  /* last input (monotonic) */
    uint64_t n_commands;
    char last_cmd[32];
    struct ps_client *pubsub; /* issue 6: subscriptions (pubsub.c); NULL when none */
    struct client_multi multi; /* issue 6: MULTI/EXEC/WATCH (cmd_multi.c) */
};

/* Accept a new connection on fd (non-blocking). Refuses (replies and closes) when
 * maxclients is reached. */
void client_accept(struct server *srv, int fd, const char *addr, const char *laddr);
/* Run at turn end: parse buffered input, start eligible commands, run read handlers
 * whose barrier passed. */
void client_process(struct client *c);
/* Flush finished replies in order; enforce the output limit; close if asked. Returns
 * false when the client was freed. */
bool client_flush(struct client *c);
/* Free now (cancels pending node requests). */
void client_free(struct client *c);
/* Close after the current processing (safe inside callbacks). */
void client_close_asap(struct client *c);
/* The "CLIENT LIST" line for c into buf. */
void client_describe(const struct client *c, char *buf, size_t len);
/* May c run commands that need authentication? */
bool client_authed(const struct client *c);
/* Output bytes waiting for the socket. */
size_t client_out_len(const struct client *c);
/* Append an out-of-band frame (a Pub/Sub message) to c's output: every complete reply at
 * the head of c's slots goes to the socket first, so the frame lands after them and before
 * any reply still pending, never inside one. Over client-output-buffer-limit the client is
 * closed (client_close_asap; never freed here). */
void client_push(struct client *c, const void *data, size_t len);

/* ---------------------------------------------------------------- MULTI/EXEC (cmd_multi.c)
 * Inside MULTI every command but those client_multi_passes() names is queued by
 * client_multi_queue(): it answers +QUEUED, or an error that makes EXEC fail with
 * -EXECABORT. Write handlers run as usual but with multi.capture set, so their
 * cmd_propose() lands in client_multi_capture() instead of the log. */

/* Commands that run even inside MULTI (as Redis): MULTI, EXEC, DISCARD, WATCH, QUIT,
 * RESET. */
bool client_multi_passes(const struct cmd_def *d);
/* Queue command (argv) of slot s, replying +QUEUED or an error (then multi.dirty). */
void client_multi_queue(struct client *c, struct cslot *s, const struct cmd_def *d, int argc,
                        char **argv, size_t *argvlen);
/* Append a normalized command for group (CLIENT_GROUP_ANY: no key) to the queue (argv
 * copied); replies +QUEUED, or an error (limits, -CROSSSHARD) and marks multi.dirty. */
void client_multi_capture(struct client *c, struct cslot *s, uint32_t group, int argc,
                          char **argv, size_t *argvlen);
/* Leave MULTI (drop the queue) and forget every watched key: EXEC, DISCARD, RESET, close. */
void client_multi_reset(struct client *c);
/* Propose a built EXEC entry (argv copied) on group; the reply array, or a null array when
 * a watched key changed, arrives at apply time. Replies an error itself when refused. */
void client_propose_exec(struct client *c, struct cslot *s, uint32_t group, int argc,
                         char **argv, size_t *argvlen);

#endif
