/*
 * sim.h - internal interface of raftsim, the deterministic cluster simulator.
 *
 * One process runs one Raft group of 3 or 5 members (plus up to SIM_SPARE_IDS members
 * that join later), each a `struct raft` from src/raft with a simulated disk and a tiny
 * key/value state machine. Everything - which event happens, which message is delivered,
 * dropped, duplicated or reordered, who crashes - comes from ONE seeded PRNG
 * (splitmix64-seeded xoshiro256**), so a seed replays a run exactly. The wall clock is read
 * only by main() to report elapsed time.
 *
 * Invariants the checkers (sim_check.c) verify after every step:
 *  - at most one leader per term;
 *  - log matching: an (index, term) pair names one entry (same data, same previous term)
 *    on every member that ever persisted it;
 *  - committed entries never change: every member's log up to its commit index agrees with
 *    the global committed log, and every member applies that log in order, without gaps;
 *  - a member's commit index never goes back within one incarnation;
 *  - a ReadIndex read returns a value at least as new as the last write acknowledged
 *    (applied anywhere) before the read started;
 *  - liveness: with faults healed, a leader appears and every acknowledged write is
 *    applied on every live member within a bounded number of ticks.
 */
#ifndef RAFTSIM_SIM_H
#define RAFTSIM_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raft/raft.h"

#define SIM_MEMBERS_MAX 8   /* ids 1..7 used */
#define SIM_SPARE_IDS 2     /* ids beyond the bootstrap voters that may join later */
#define SIM_KEYS 4          /* keys of the application state machine */
#define SIM_NET_MAX 4096    /* messages in flight; beyond that the oldest is dropped */
#define SIM_READS_MAX 64    /* pending ReadIndex reads */
#define SIM_STAGED_MAX 4    /* staged snapshots per member */
#define SIM_ELECTION_TICKS 10
#define SIM_HEARTBEAT_TICKS 1

/* --- PRNG --------------------------------------------------------------------------- */
struct sim_rng {
    uint64_t s[4];
};
void sim_rng_seed(struct sim_rng *g, uint64_t seed);
uint64_t sim_rng_next(struct sim_rng *g);
/* Uniform in [0, n); n > 0. */
uint32_t sim_rng_below(struct sim_rng *g, uint32_t n);
/* True with probability per_mille / 1000. */
bool sim_rng_chance(struct sim_rng *g, uint32_t per_mille);
uint64_t sim_hash_bytes(const void *p, size_t n, uint64_t h);
uint64_t sim_mix(uint64_t h, uint64_t v);

/* --- application state machine ---------------------------------------------------------- */
struct sim_app {
    raft_index applied;
    raft_term applied_term;
    uint64_t chain;                /* running hash of every applied (index, term, data) */
    uint64_t val[SIM_KEYS];        /* version written by the last "set" */
    raft_index val_index[SIM_KEYS];/* index of the entry that wrote it (0: never) */
    struct raft_conf conf;         /* configuration as of applied */
};

/* --- simulated disk ---------------------------------------------------------------------- */
struct sim_disk {
    struct raft_hard_state hs;         /* durable */
    struct raft_hard_state hs_volatile;/* written but not synced: lost on crash */
    struct raft_snapshot_meta snap;    /* durable with its data */
    struct sim_app snap_app;           /* the snapshot's data */
    struct raft_entry *log;            /* entries snap.index+1 .. , owned */
    size_t n_log, cap_log;
};

struct sim_staged {
    raft_index index;
    raft_term term;
    struct sim_app app;
};

struct sim_member {
    raft_id id;
    bool exists;   /* has a disk (was started once) */
    bool running;  /* has a live struct raft */
    bool crashed;  /* down after a crash: restarts after down_steps */
    bool shutdown_pending; /* its removal was applied: stop it after this step */
    struct raft *r;
    uint32_t incarnation;
    struct sim_disk disk;
    struct sim_app app;
    bool app_durable;            /* app state survives a crash (else back to the snapshot) */
    /* A Ready batch taken but not yet persisted/advanced (slow disk). */
    bool held;
    struct raft_ready rd;
    uint32_t hold_steps;
    uint32_t slow_disk_steps;    /* > 0: new batches are held this many steps */
    raft_index last_commit;      /* commit index seen in this incarnation */
    raft_index checked_commit;   /* log up to here checked against the committed log */
    uint32_t down_steps;
    uint32_t clock_skip_per_mille; /* its clock runs slow: skips this share of ticks */
    uint32_t doom_steps;         /* > 0: new leader to be crashed/isolated in this many steps */
    struct sim_staged staged[SIM_STAGED_MAX];
    uint32_t n_staged;
};

/* --- network ---------------------------------------------------------------------------- */
struct sim_packet {
    struct raft_msg m;       /* entries deep-copied, owned */
    bool has_snap;
    struct sim_app snap_app; /* SNAPSHOT: the leader's snapshot data */
};

struct sim_read {
    raft_id member;
    uint32_t incarnation;
    uint64_t ctx;
    int key;
    raft_index required;  /* index of the last acknowledged write of key at start */
    bool answered;
    raft_index read_index;
    uint64_t started_step;
};

struct sim_committed {
    raft_term term;  /* 0: unknown yet */
    uint64_t hash;   /* entry type + data */
    uint64_t chain;  /* application chain hash after applying it (0: nobody applied) */
    raft_term seen_term; /* lowest term of a member seen with its commit covering it */
};

struct sim_pair { /* (index, term) -> entry identity, for log matching */
    raft_index index;
    raft_term term;
    uint64_t hash;
    raft_term prev_term;
};

struct sim {
    uint64_t seed;
    uint64_t step;
    uint64_t steps;
    int n_boot;               /* bootstrap voters: 3 or 5 */
    int n_ids;                /* n_boot + SIM_SPARE_IDS */
    bool verbose;
    uint32_t churn_per_mille; /* share of seeds with leader churn (--churn) */
    uint32_t tiny_per_mille;  /* share of seeds with one-entry APPENDs (--tiny) */
    bool failed;
    char fail_msg[512];
    struct sim_rng rng;
    struct raft_conf boot_conf;
    struct sim_member mem[SIM_MEMBERS_MAX]; /* index = id */
    /* network */
    struct sim_packet *net[SIM_NET_MAX]; /* net[0] is the oldest */
    size_t n_net;
    bool blocked[SIM_MEMBERS_MAX][SIM_MEMBERS_MAX]; /* [from][to] */
    bool faults;              /* false during liveness phases */
    bool churn;               /* this seed crashes or isolates new leaders soon after election */
    bool tiny_batches;        /* this seed replicates one entry per APPEND, one in flight */
    /* checkers */
    struct sim_committed *clog; /* index -> committed entry, [0] unused */
    size_t n_clog, cap_clog;
    raft_index max_applied;     /* highest index applied anywhere (= acknowledged) */
    raft_index last_write[SIM_KEYS]; /* index of the last acknowledged write per key */
    struct sim_pair *pairs;     /* open addressing, power of two */
    size_t cap_pairs, n_pairs;
    raft_term *term_leader;     /* term -> leader id */
    size_t cap_term_leader;
    struct sim_read reads[SIM_READS_MAX];
    uint32_t n_reads;
    uint64_t next_ctx;
    uint64_t next_version;
    uint64_t stats_events[32];
    /* coverage counters, summed over seeds by main() */
    uint64_t n_elections, n_snap_installs, n_reads_served, n_conf_applied, n_crashes,
        n_props_ok, n_compactions;
    uint64_t liveness_ticks;
};

/* sim_cluster.c */
void sim_app_init(const struct sim *s, struct sim_app *a);
void sim_disk_compact(struct sim_disk *d, raft_index index, raft_term term);
void sim_disk_free(struct sim_disk *d);
void sim_member_start(struct sim *s, struct sim_member *mb);
void sim_member_stop(struct sim *s, struct sim_member *mb, bool crash);
void sim_process_disks(struct sim *s);
/* The running leader with the highest term (NULL if none); fills *st. */
struct sim_member *sim_find_leader(struct sim *s, struct raft_status *st);
bool sim_conf_has(const struct raft_conf *c, raft_id id);

/* sim_events.c */
int sim_run(struct sim *s);     /* 0 pass, 1 fail (s->fail_msg) */
void sim_fail(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sim_log(const struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* sim_net.c */
void sim_net_send(struct sim *s, const struct raft_msg *m);
void sim_net_deliver(struct sim *s, size_t i);
void sim_net_drop(struct sim *s, size_t i, const char *why);
void sim_net_duplicate(struct sim *s, size_t i);
void sim_net_delay(struct sim *s, size_t i);
void sim_net_free_all(struct sim *s);
void sim_entry_copy(struct raft_entry *dst, const struct raft_entry *src);

/* sim_check.c */
void sim_check_member(struct sim *s, struct sim_member *mb);
void sim_check_persisted(struct sim *s, struct sim_member *mb, const struct raft_entry *e);
void sim_check_apply(struct sim *s, struct sim_member *mb, const struct raft_entry *e);
void sim_check_reads(struct sim *s, struct sim_member *mb);
void sim_check_snapshot(struct sim *s, struct sim_member *mb, const struct sim_staged *st);
struct sim_committed *sim_clog_at(struct sim *s, raft_index i);
void sim_check_free(struct sim *s);
uint64_t sim_entry_hash(const struct raft_entry *e);

/* sim_app (in sim_check.c): apply one entry to an application state. */
void sim_app_apply(struct sim_app *a, const struct raft_entry *e);

#endif
