/*
 * workload.h - shared pieces of the nemesis workload client (nemesis-workload).
 *
 * workload.c runs the clients and the final reads; workload_watch.c runs the CFG.WATCH
 * watcher. Every record goes to one history file through wl_emit (one JSON line per
 * completed operation, format in tests/fault/HISTORY.md), under a mutex.
 */
#ifndef RAFTCONF_WORKLOAD_H
#define RAFTCONF_WORKLOAD_H

#include <hiredis/hiredis.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WL_NODES_MAX 16
#define WL_LINE_MAX 4096

struct wl_node {
    char host[256];
    int port;
};

struct wl_config {
    struct wl_node nodes[WL_NODES_MAX];
    int nnodes;
    int duration_s, clients, keys, timeout_ms, rate;
    uint64_t seed;
    const char *history, *password, *prefix;
    bool watch, txn, final;
};

/* Monotonic nanoseconds (CLOCK_MONOTONIC): the clock of every t0/t1. */
int64_t wl_now_ns(void);

/* Connect to node i with the configured timeouts (and AUTH when a password is set); NULL
 * when it fails. timeout_ms is the read/write timeout of the connection. */
redisContext *wl_connect(const struct wl_config *cfg, int node, int timeout_ms);

/* Append one line (without newline) to the history. */
void wl_emit(const char *line);

/* Append s as a JSON string literal (quotes and escapes) to buf at *len (bounded by cap). */
void wl_json_str(char *buf, size_t *len, size_t cap, const char *s, size_t n);

struct wl_watch_stats {
    uint64_t events, polls, errors, reconnects;
};

/* The watcher: polls CFG.WATCH <prefix> FROM <rev> BLOCK 1000 until *stop, then drains
 * (when drain is set) and writes its one "watch" record. Runs in its own thread. */
struct wl_watcher {
    const struct wl_config *cfg;
    int id;                      /* p of its record */
    atomic_bool *stop;
    bool drain;
    struct wl_watch_stats stats;
};
void *wl_watch_run(void *arg);

/* One CFG.WATCH reply -> events appended to *ev (see workload_watch.c for the shapes it
 * accepts). Returns the number of events, or -1 when the reply has none of them. */
struct wl_event {
    char *key, *value;           /* value NULL for a delete */
    bool is_del;
    int64_t rev;
};
int wl_watch_parse(const redisReply *r, struct wl_event **ev, size_t *n, size_t *cap);

#endif
