/*
 * lincheck.h - linearizability checker for raftconf histories (issue 8).
 *
 * A history is a file of JSON lines, one completed operation per line; the format is
 * fixed in tests/fault/HISTORY.md. The checker partitions it by key (linearizability is
 * compositional, Herlihy & Wing 1990), then, per key, searches for a linearization with
 * the Wing-Gong / Lowe algorithm (Lowe, "Testing for linearizability", 2017): a DFS over
 * the ops that may go next, memoised on (set of linearized ops, model state). Ops whose
 * outcome is unknown may take effect at any point after their invoke, or never.
 *
 * Limits: every key's search has a time and a memory budget; when either runs out the
 * key's verdict is LC_UNKNOWN, never a hang. Lines longer than LC_LINE_MAX, more than
 * LC_OPS_MAX ops or LC_KEYS_MAX keys are input errors.
 *
 * Watch streams (f = "watch") are checked separately (lincheck_watch.c): revisions never
 * go back, no (key, revision) twice, no value written once seen twice, and every
 * acknowledged write to a watched key that the stream must have passed appears in it.
 */
#ifndef RAFTCONF_LINCHECK_H
#define RAFTCONF_LINCHECK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define LC_LINE_MAX (16 << 20)
#define LC_OPS_MAX 20000000
#define LC_KEYS_MAX 1000000
#define LC_T_INF INT64_MAX

enum lc_verdict { LC_OK = 0, LC_BAD = 1, LC_UNKNOWN = 2 };

enum lc_kind { LC_GET, LC_SET, LC_CAS, LC_DEL };

/* One single-key operation as the search sees it. Values are interned per history: an id
 * >= 0 names a value string, LC_ABSENT is "no value". */
#define LC_ABSENT (-1)
struct lc_op {
    int64_t t0, t1;    /* invoke, complete (LC_T_INF when the outcome is unknown) */
    int64_t ver;       /* cas: expected version */
    int64_t out_ver;   /* get: version read; cas ok: version after; cas VERSION: current;
                        * -1 when not recorded */
    int64_t rev;       /* cas ok: the revision the server gave; -1 when not recorded */
    int32_t val;       /* set/cas: value written; get: value read */
    int32_t del_n;     /* del: 1 deleted, 0 absent, -1 not recorded */
    int32_t line;      /* line in the history file (1-based), for reports */
    int32_t p;         /* client */
    uint8_t kind;      /* enum lc_kind */
    bool definite;     /* must be linearized (r = ok, or a cas that failed on VERSION) */
    bool cas_failed;   /* cas answered -VERSION: an observation, no effect */
    bool from_txn;     /* one half of a MULTI/EXEC (split per key, same window) */
    bool promoted;     /* search only: an unknown write whose value was read back */
};

struct lc_watch_event {
    char *key;
    int32_t val;       /* interned value, LC_ABSENT for a delete */
    bool is_del;
    int64_t rev;
};

struct lc_watch {
    char *prefix;
    int64_t from;      /* the revision the stream started after */
    int64_t t0, t1;
    int32_t line, p;
    struct lc_watch_event *ev;
    size_t nev;
};

struct lc_key {
    char *key;
    struct lc_op *ops;
    size_t nops, cap;
    /* Results, filled by lc_check. */
    enum lc_verdict verdict;
    uint64_t states;   /* memo entries stored */
};

struct lc_history {
    struct lc_key *keys;
    size_t nkeys, keys_cap;
    void *key_index;   /* key name -> index (lincheck.c) */
    char **key_names;  /* key_names[i] == keys[i].key */
    size_t key_names_n, key_names_cap;
    char **vals;       /* interned values */
    size_t nvals, vals_cap;
    void *val_index;
    struct lc_watch *watches;
    size_t nwatches, watches_cap;
    size_t nops_total; /* single-key ops kept for the search */
    size_t nskipped;   /* records that constrain nothing (failed writes, unanswered reads) */
    size_t nlines;
};

struct lc_options {
    int64_t time_budget_ms;      /* per key; 0 = 10000 */
    int64_t mem_budget_mb;       /* per key; 0 = 512 */
    bool verbose;                /* one line per key */
    int window_max;              /* ops printed per counterexample window; 0 = 40 */
};

/* Parse a history (JSON lines) from f, appending to h (zeroed before the first call).
 * Returns 0, or -1 with a message in err (the line number included). */
int lc_history_load(struct lc_history *h, FILE *f, char *err, size_t err_cap);

/* Same from a string (tests). */
int lc_history_load_str(struct lc_history *h, const char *text, char *err, size_t err_cap);

void lc_history_free(struct lc_history *h);

/* Check every key and every watch stream; print per-key findings and the closing line
 * "lincheck: linearizable|NOT linearizable|unknown, ops=N keys=K" to out (may be NULL).
 * Returns the overall verdict: BAD if any key or watch is bad, else UNKNOWN if any key
 * ran out of budget, else OK. */
enum lc_verdict lc_check(struct lc_history *h, const struct lc_options *o, FILE *out);

/* One key's search (lincheck_search.c). On LC_BAD, prints the counterexample window to
 * out (may be NULL). */
enum lc_verdict lc_check_key(const struct lc_history *h, struct lc_key *k,
                             const struct lc_options *o, FILE *out);

/* Watch streams (lincheck_watch.c). Returns LC_OK or LC_BAD (findings printed). */
enum lc_verdict lc_check_watches(const struct lc_history *h, FILE *out);

/* Value string of an interned id ("(absent)" for LC_ABSENT). */
const char *lc_val_str(const struct lc_history *h, int32_t val);

#endif
