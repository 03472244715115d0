/*
 * cluster.h - machinery of the real-process cluster suites (tests/cluster/test_*.c): start
 * N raftconf-server processes as one Raft cluster on 127.0.0.1, optionally with every peer
 * link going through the fault-injecting proxy (tests/fault/tcpproxy.c), find the leader,
 * kill / stop / pause / restart nodes, run concurrent writer threads that record every
 * acknowledged write, and check those writes on every node.
 *
 * Invariants:
 *  - ports are free ports on 127.0.0.1 (itest_free_port: the port and port + 10000, the
 *    derived cluster port, are both free); nothing else is ever dialed;
 *  - every process started here is stopped by its PID and reaped (waitpid), also when a
 *    test fails (cl_destroy from the suite's .fini; PR_SET_PDEATHSIG as a last resort);
 *    processes are spawned from the test's main thread only (the death signal follows the
 *    thread that forked);
 *  - every wait is bounded; every client call has a timeout;
 *  - peer addressing with the proxy: node i is told that node j's cluster address is
 *    127.0.0.1:Pij, a proxy route to j's real cluster port, written "j=127.0.0.1:Cj@Pij" in
 *    its --initial-cluster (the host:port@cport syntax of docs/cluster.md). So the i -> j
 *    and j -> i routes together carry every byte between i and j, and a test cuts a link
 *    by setting those two routes (both directions of each).
 *
 * Environment: RAFTCONF_BIN (server), RAFTCONF_BUILD (finds tcpproxy), SAN=1 (scaled-down
 * runs, slower timers), CTEST_KEEP=1 (keep the temp dirs and logs), CTEST_TICK_MS and
 * CTEST_ELECTION_TICKS (timers; default 50 ms x 10, 100 ms x 10 under SAN=1; the server's
 * own defaults are 100 ms x 10).
 */
#ifndef RAFTCONF_CTEST_CLUSTER_H
#define RAFTCONF_CTEST_CLUSTER_H

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#define CL_MAX 5
#define CL_EXTRA_MAX 16

struct cl_node {
    int id;            /* Raft id: index + 1 */
    pid_t pid;         /* 0 when not running */
    bool paused;       /* SIGSTOPped */
    int port, cport;   /* client port, real cluster port (port + 10000) */
    bool bootstrap;    /* started with --initial-cluster (the first members) */
    char dir[300], log[300];
};

struct cluster {
    int n;                          /* nodes defined (running or not) */
    int n_initial;                  /* members named in --initial-cluster */
    struct cl_node node[CL_MAX];
    char root[256];
    char secret[40];
    const char *extra[CL_EXTRA_MAX]; /* extra server options for every node */
    int tick_ms, election_ticks, request_timeout_ms;
    /* proxy */
    bool proxied;
    pid_t proxy_pid;
    FILE *pin, *pout;
    int route[CL_MAX][CL_MAX];      /* route number carrying i -> j, -1 none */
    int rport[CL_MAX][CL_MAX];      /* its listen port */
    redisContext *ctl[CL_MAX];      /* cached control connections */
};

/* Scale: true under the sanitizer build (run-tests.sh sets SAN=1). */
bool cl_san(void);
/* Election timeout in ms as configured (tick_ms * election_ticks). */
int cl_election_ms(const struct cluster *c);
long cl_now_ms(void);
void cl_sleep_ms(int ms);

/* Define n nodes (ports, dirs) with extra options (NULL-terminated, may be NULL), start the
 * proxy when proxied, start every node, wait until each answers PING and a leader is
 * elected. 0 or -1 (the reason and log tails on stderr). */
int cl_start(struct cluster *c, int n, bool proxied, const char *const *extra);
/* Define one more node (index c->n) with its own ports and dir; not started. */
int cl_add_node(struct cluster *c);
/* Start node i (again) on its ports and dir; bootstrap nodes get --initial-cluster, later
 * ones only --node-id. Waits until PING answers. 0 or -1. */
int cl_start_node(struct cluster *c, int i);
/* Same, with different extra options (NULL-terminated) appended. */
int cl_start_node_with(struct cluster *c, int i, const char *const *more);
void cl_kill9(struct cluster *c, int i);
/* SIGTERM and wait up to timeout_ms (then SIGKILL). Returns the waitpid status or -1. */
int cl_term(struct cluster *c, int i, int timeout_ms);
void cl_pause(struct cluster *c, int i);
void cl_resume(struct cluster *c, int i);
bool cl_running(struct cluster *c, int i);
/* Stop everything (SIGKILL + waitpid), the proxy too, and remove the temp dirs (unless
 * CTEST_KEEP). Safe to call twice and on a zeroed struct. */
void cl_destroy(struct cluster *c);
/* Print the tail of each node's log to stderr. */
void cl_dump(const struct cluster *c, int lines);

/* The node (index) that leads the data group, among the running, not paused nodes in mask
 * (bit i = node i), as the nodes themselves report it in INFO raft: one reporting
 * role:leader that more than half of the responding nodes name in their leader: field (so
 * a cut-off old leader that still believes it leads is not picked). Waits up to
 * timeout_ms; -1 when none. */
int cl_wait_leader(struct cluster *c, unsigned mask, int timeout_ms);
/* Index of node with Raft id `id`, -1 if unknown. */
int cl_index(const struct cluster *c, int id);
unsigned cl_all(const struct cluster *c);

/* ---------------------------------------------------------------- clients */

/* New connection to node i with a per-call timeout; NULL on failure. */
redisContext *cl_connect(struct cluster *c, int i, int timeout_ms);
/* One command on node i's cached control connection (reconnects as needed); NULL on a
 * connection error or timeout. Caller frees. */
redisReply *cl_cmd(struct cluster *c, int i, int timeout_ms, const char *fmt, ...);
/* Canonical text of a reply, into buf: +OK, -ERR ..., "val", $nil, :5, [..], <none>. */
const char *cl_fmt(const redisReply *r, char *buf, size_t cap);
/* Same as cl_cmd, returning the formatted reply in buf. */
const char *cl_cmd_s(struct cluster *c, int i, int timeout_ms, char *buf, size_t cap,
                     const char *fmt, ...);
/* One field of INFO <section> on node i ("" when absent); false when INFO failed. */
bool cl_info(struct cluster *c, int i, const char *section, const char *field, char *out,
             size_t cap);
/* True when an error reply is one of the documented "not now" errors. */
bool cl_is_unavailable_err(const char *text);

/* Send a membership command (split on spaces by hiredis's format: pass a literal command)
 * to the leader, following -MOVED and retrying -TRYAGAIN (bounded, ~15 s). The final reply
 * is formatted into buf. */
const char *cl_admin(struct cluster *c, char *buf, size_t cap, const char *cmd);

/* Assert that dumps the nodes' log tails first (criterion's cr_assert otherwise). */
#define CL_ASSERT(c, cond, ...)                                                        \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            cl_dump((c), 25);                                                          \
            cr_assert(cond, __VA_ARGS__);                                              \
        }                                                                              \
    } while (0)

/* ---------------------------------------------------------------- proxy */

/* Send one command line to the proxy and wait for "ok". 0 or -1. */
int cl_proxy(struct cluster *c, const char *fmt, ...);
/* Cut (mode "drop" or "hold") or heal ("pass") every link between node i and the rest. */
int cl_isolate(struct cluster *c, int i, const char *mode);
/* One-way: node i's own connections to its peers (the routes i -> j, direction up: every
 * message i sends) are cut; what the others send to i still arrives. */
int cl_mute(struct cluster *c, int i, const char *mode);
int cl_heal_all(struct cluster *c);

/* ---------------------------------------------------------------- writers */

enum { CLW_UNKNOWN = -1, CLW_ERROR = 0, CLW_OK = 1 };
struct cl_write {
    char key[40], val[48];
    long sent_ms, done_ms;
    int outcome;
    int node;                 /* index of the node it was sent to */
};

struct cl_writer {
    struct cluster *c;
    int tid;
    const char *prefix;
    volatile unsigned mask;   /* nodes it may use; starts on its own node (tid % n) */
    int timeout_ms;           /* client timeout per write */
    int pause_ms;             /* between writes */
    volatile bool stop;
    pthread_t th;
    /* results (read after join, or racily for progress) */
    struct cl_write *w;
    size_t n, cap;
    volatile size_t n_ok, n_err, n_unknown;
    char first_err[160];
    int node;                 /* node currently used */
};

/* Start a writer thread: SET <prefix>-<tid>-<seq> <unique value>, one at a time. */
void cl_writer_start(struct cl_writer *w, struct cluster *c, int tid, const char *prefix,
                     unsigned mask, int timeout_ms);
void cl_writer_stop(struct cl_writer *w);
void cl_writer_free(struct cl_writer *w);
/* Check every acknowledged write of the writers on node i with linearizable GETs
 * (pipelined). Returns the number missing or wrong (first few printed), -1 on a connection
 * failure. */
long cl_check_acked(struct cluster *c, int i, struct cl_writer *ws, int nw);
/* Wait (bounded) until node i serves a linearizable GET of key with the wanted value. */
bool cl_wait_value(struct cluster *c, int i, const char *key, const char *want,
                   int timeout_ms);

#endif
