/*
 * node.c - the I/O-free core of a raftconf node (API and outcomes in node.h): open/close,
 * the loop turn, ticks and small accessors. Requests live in node_req.c, apply in
 * node_apply.c, membership in node_member.c, snapshot streaming in node_snap.c
 * (node_internal.h lists who does what).
 *
 * One loop turn (node_run), DESIGN.md "The write path" step 6:
 *   1. take every group's Ready; add hard state, entries and snapshot metadata of ALL groups
 *      (plus a pending log compaction) to ONE pst batch; a Ready that carries a snapshot
 *      installs the staged data first (node_snap.c, crash-safe);
 *   2. ONE pst_write, synced when any group must sync (new entries, term/vote, compaction,
 *      snapshot), unsynced when only the commit index moved, skipped when empty;
 *   3. send messages (only now: Raft paper 5.1 / etcd Ready contract, persist before send);
 *   4. apply committed entries through ns, complete the writes they answer, record forwarded
 *      proposal outcomes and read indexes, note leader changes;
 *   5. raft_advance every group; then finish read barriers (applied >= read index), fail
 *      writes whose index was applied with another entry, move membership changes on,
 *      retry queued requests when a leader appeared, and decide log compaction for the
 *      next turn; deliver deferred outcomes.
 */
#include "node.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node_entry.h"
#include "node_internal.h"
#include "node_log.h"
#include "rc.h"

void node_set_error(struct node *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    free(n->error);
    if (vasprintf(&n->error, fmt, ap) < 0)
        n->error = NULL;
    va_end(ap);
}

struct group *node_group_of(struct node *n, uint32_t group)
{
    return group < NODE_GROUPS ? &n->g[group] : NULL;
}

void node_config_default(struct node_config *c, raft_id id)
{
    memset(c, 0, sizeof *c);
    c->id = id;
    c->initial.n_voters = 1;
    c->initial.voters[0] = id;
    raft_config_default(&c->raft, id, 0);
    c->tick_ms = 100;
    c->request_timeout_ms = 5000;
    c->snapshot_entries = 10000;
    c->max_pending = 10000;
    ns_limits_default(&c->ns);
}

/* ------------------------------------------------------------------ the loop turn */

/* Step 1: every group's Ready and pending compaction into the one batch. */
static int gather_group(struct node *n, struct group *g, bool *sync)
{
    int rc = RC_OK;
    if (g->compact_pending) {
        rc = node_log_put_snapshot(&g->log, n->batch, &g->compact);
        g->compact_pending = false;
        g->compact_written = rc == RC_OK;
        *sync = true; /* the snapshot must not be durable before the state it covers */
    }
    if (rc == RC_OK && raft_has_ready(g->raft)) {
        int err = raft_ready(g->raft, &g->rd);
        NODE_ASSERT(err == RAFT_OK);
        g->in_ready = true;
        if (g->rd.snapshot) {
            rc = node_snap_install(n, g, g->rd.snapshot);
            *sync = true;
        }
        if (rc == RC_OK && g->rd.hs_changed)
            node_log_put_hs(&g->log, n->batch, &g->rd.hs);
        if (rc == RC_OK)
            rc = node_log_put_entries(&g->log, n->batch, g->rd.entries, g->rd.n_entries);
        if (rc == RC_OK && g->id == NODE_GROUP_META)
            node_book_note_appended(n, g->rd.entries, g->rd.n_entries);
        *sync = *sync || g->rd.must_sync;
        n->entries_written += g->rd.n_entries;
    }
    if (rc != RC_OK && !n->error)
        node_set_error(n, "group %u: preparing the write batch: %s", g->id, rc_message(rc));
    return rc == RC_OK ? RC_OK : RC_IO;
}

static int gather(struct node *n, bool *sync)
{
    for (uint32_t i = 0; i < NODE_GROUPS; i++)
        if (gather_group(n, &n->g[i], sync) != RC_OK)
            return RC_IO;
    return RC_OK;
}

static void send_msgs(struct node *n, struct group *g)
{
    for (size_t i = 0; i < g->rd.n_msgs; i++) {
        if (n->send)
            n->send(n->send_ud, g->id, &g->rd.msgs[i]);
        else
            n->msgs_dropped++;
    }
}

static void note_soft_state(struct node *n, struct group *g, const struct raft_soft_state *ss)
{
    g->retry = ss->leader != RAFT_NONE && ss->leader != g->leader;
    if (ss->leader != g->leader)
        g->leader_contact_tick = n->ticks;
    if (ss->role == RAFT_LEADER && g->role != RAFT_LEADER) {
        struct raft_status st;
        raft_status(g->raft, &st);
        g->lead_start = st.last_index; /* its no-op: applied => all earlier commits are */
    }
    g->leader = ss->leader;
    g->role = ss->role;
    g->quorum_lost = false; /* a new role: a new leader just heard from a majority */
}

static int fail_run(struct node *n)
{
    n->failed = true;
    for (uint32_t i = 0; i < NODE_GROUPS; i++)
        n->g[i].in_ready = false; /* never advanced: the batch was not made durable */
    return RC_IO;
}

int node_run(struct node *n, uint64_t now_ms)
{
    (void)now_ms;
    if (n->failed)
        return RC_IO;
    node_req_run_deferred(n);
    bool sync = false;
    pst_batch_clear(n->batch);
    if (gather(n, &sync) != RC_OK)
        return fail_run(n);
    if (pst_batch_count(n->batch) > 0) {
        int rc = pst_batch_oom(n->batch) ? RC_NOMEM : pst_write(n->e, n->batch, sync);
        if (rc != RC_OK) {
            node_set_error(n, "storage write (sync=%d) failed: %s", (int)sync, rc_message(rc));
            return fail_run(n);
        }
        if (sync)
            n->fsyncs++;
    }
    for (uint32_t i = 0; i < NODE_GROUPS; i++)
        node_snap_after_write(n, &n->g[i]);
    for (uint32_t i = 0; i < NODE_GROUPS; i++)
        if (n->g[i].in_ready)
            send_msgs(n, &n->g[i]);
    for (uint32_t i = 0; i < NODE_GROUPS; i++) {
        struct group *g = &n->g[i];
        if (!g->in_ready)
            continue;
        if (node_apply_committed(n, g) != RC_OK)
            return fail_run(n);
        node_take_props_and_reads(n, g);
        if (g->rd.ss_changed)
            note_soft_state(n, g, &g->rd.ss);
    }
    for (uint32_t i = 0; i < NODE_GROUPS; i++) {
        struct group *g = &n->g[i];
        if (g->in_ready) {
            g->in_ready = false;
            raft_advance(g->raft);
        }
        node_finish_compaction(n, g);
    }
    node_finish_requests(n);
    node_retry_queued(n, false);
    for (uint32_t i = 0; i < NODE_GROUPS; i++)
        node_plan_compaction(n, &n->g[i]);
    node_member_reconcile(n);
    node_req_run_deferred(n);
    return RC_OK;
}

bool node_has_work(const struct node *n)
{
    if (n->failed)
        return false;
    if (n->n_deferred)
        return true;
    for (uint32_t i = 0; i < NODE_GROUPS; i++)
        if (raft_has_ready(n->g[i].raft) || n->g[i].compact_pending)
            return true;
    return false;
}

/* A leader has "lost its quorum" when fewer than a majority of voters (itself included)
 * were heard from within half an election timeout (at least two heartbeats). CheckQuorum
 * makes it step down after a whole election timeout; until then writes are held back
 * instead of appended (node_req.c). */
static void note_quorum(struct node *n, struct group *g)
{
    struct raft_status st;
    raft_status(g->raft, &st);
    g->quorum_lost = false;
    if (st.role != RAFT_LEADER || st.conf.n_voters <= 1)
        return;
    uint32_t limit = n->cfg.raft.election_ticks / 2;
    if (limit < 2 * n->cfg.raft.heartbeat_ticks + 1)
        limit = 2 * n->cfg.raft.heartbeat_ticks + 1;
    uint32_t heard = 0;
    for (uint32_t i = 0; i < st.n_progress; i++) {
        const struct raft_progress_info *p = &st.progress[i];
        if (!p->learner && (p->id == st.id || p->ticks_since_contact <= limit))
            heard++;
    }
    g->quorum_lost = heard <= st.conf.n_voters / 2;
}

void node_tick(struct node *n, uint64_t now_ms)
{
    if (n->failed)
        return;
    uint64_t tick_ms = n->cfg.tick_ms ? n->cfg.tick_ms : 100;
    uint64_t ticks = 0;
    if (now_ms > n->last_tick_ms) {
        ticks = (now_ms - n->last_tick_ms) / tick_ms;
        if (ticks > NODE_TICKS_CATCHUP_MAX) {
            ticks = NODE_TICKS_CATCHUP_MAX; /* a stalled loop must not fire elections */
            n->last_tick_ms = now_ms;
        } else {
            n->last_tick_ms += ticks * tick_ms;
        }
    } else if (n->last_tick_ms - now_ms > tick_ms) {
        /* The clock went back (a monotonic clock should not; a faked or broken one can):
         * count from here, or no tick would come until it caught up again. */
        n->last_tick_ms = now_ms;
    }
    for (uint64_t t = 0; t < ticks; t++) {
        n->ticks++;
        for (uint32_t i = 0; i < NODE_GROUPS; i++)
            raft_tick(n->g[i].raft);
    }
    if (ticks) {
        for (uint32_t i = 0; i < NODE_GROUPS; i++)
            note_quorum(n, &n->g[i]);
        node_retry_queued(n, true);
        node_member_tick(n);
    }
    node_expire_requests(n, now_ms);
}

/* ------------------------------------------------------------------ open / close */

static uint64_t mix64(uint64_t x)
{
    x += UINT64_C(0x9e3779b97f4a7c15);
    x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
    return x ^ (x >> 31);
}

/* Configuration as of the applied index: snapshot (or bootstrap) plus applied changes. */
static void restore_conf(struct group *g, const struct raft_conf *initial,
                         const struct raft_entry *ents, size_t n_ents, raft_index applied)
{
    g->conf = g->log.snap.index ? g->log.snap.conf : *initial;
    g->conf_index = g->log.snap.index;
    for (size_t i = 0; i < n_ents && ents[i].index <= applied; i++)
        node_fold_conf(g, &ents[i]);
}

/* The configuration a group started with: recorded (synced) when the group is new, read
 * back on every later start, so restarting with other bootstrap flags changes nothing. */
static int bootstrap_conf(struct node *n, struct group *g, size_t n_ents,
                          struct raft_conf *initial)
{
    if (g->log.snap.conf.n_voters > 0) {
        *initial = g->log.snap.conf;
        return RC_OK;
    }
    *initial = n->cfg.initial;
    if (g->log.hs.term != 0 || n_ents != 0 || g->log.snap.index != 0)
        return RC_OK; /* cannot happen for stores this code wrote; keep the given conf */
    pst_batch_clear(n->batch);
    int rc = node_log_put_bootstrap(&g->log, n->batch, initial);
    if (rc == RC_OK)
        rc = pst_write(n->e, n->batch, true);
    pst_batch_clear(n->batch);
    return rc;
}

static int group_err(char **err, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int group_err(char **err, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(err, fmt, ap) < 0)
        *err = NULL;
    va_end(ap);
    return rc;
}

/* Create the group's Raft member from what is on disk. */
static int start_raft(struct node *n, struct group *g, const struct raft_entry *ents,
                      size_t n_ents, const struct raft_conf *initial, char **err)
{
    /* The state machine may be ahead of the log (a snapshot whose data was newer than its
     * index): Raft is told what it can check, ns skips the replayed entries. */
    raft_index applied = ns_applied_index(g->ns);
    if (applied > g->log.last_index)
        applied = g->log.last_index;
    struct raft_persisted p = {
        .hs = g->log.hs, .snapshot = g->log.snap, .entries = ents, .n_entries = n_ents,
        .initial = *initial, .applied = applied,
    };
    struct raft_config rc_cfg = n->cfg.raft;
    rc_cfg.id = n->cfg.id;
    rc_cfg.seed = mix64(n->cfg.raft.seed ^ mix64(n->cfg.id) ^ mix64((uint64_t)g->id + 1));
    if (g->raft)
        raft_free(g->raft);
    g->raft = NULL;
    int err_raft = raft_new(&rc_cfg, &p, &g->raft);
    restore_conf(g, initial, ents, n_ents, applied);
    if (err_raft != RAFT_OK)
        return group_err(err, err_raft == RAFT_ERR_NOMEM ? RC_NOMEM : RC_CORRUPT,
                         "group %u: raft state rejected (commit %llu, applied %llu, last "
                         "index %llu): %s", g->id, (unsigned long long)g->log.hs.commit,
                         (unsigned long long)applied, (unsigned long long)g->log.last_index,
                         raft_strerror(err_raft));
    return RC_OK;
}

int node_restart_raft(struct node *n, struct group *g, char **err)
{
    struct raft_entry *ents = NULL;
    size_t n_ents = 0;
    char *note = NULL;
    int rc = node_log_load(n->e, g->id, ns_applied_index(g->ns), &n->cfg.initial, &g->log,
                           &ents, &n_ents, &note, err);
    free(note);
    if (rc != RC_OK)
        return rc;
    struct raft_conf initial = g->log.snap.conf.n_voters ? g->log.snap.conf : n->cfg.initial;
    rc = start_raft(n, g, ents, n_ents, &initial, err);
    node_log_entries_free(ents, n_ents);
    return rc;
}

static int open_group(struct node *n, uint32_t id, char **err)
{
    struct group *g = &n->g[id];
    g->id = id;
    int rc = node_snap_recover(n, id, err);
    if (rc != RC_OK)
        return rc;
    rc = ns_open(n->e, id, &n->cfg.ns, &g->ns);
    if (rc != RC_OK)
        return group_err(err, rc, "group %u: opening the state machine: %s", id,
                         rc_message(rc));
    struct raft_entry *ents = NULL;
    size_t n_ents = 0;
    char *note = NULL;
    rc = node_log_load(n->e, id, ns_applied_index(g->ns), &n->cfg.initial, &g->log, &ents,
                       &n_ents, &note, err);
    if (rc != RC_OK)
        return rc;
    if (note) {
        free(n->note);
        n->note = note;
    }
    struct raft_conf initial;
    rc = bootstrap_conf(n, g, n_ents, &initial);
    if (rc != RC_OK) {
        node_log_entries_free(ents, n_ents);
        return group_err(err, rc, "group %u: recording the bootstrap configuration: %s", id,
                         rc_message(rc));
    }
    rc = node_member_fix_bootstrap(n, g);
    if (rc != RC_OK) {
        node_log_entries_free(ents, n_ents);
        return group_err(err, rc, "group %u: state machine (applied %llu) is behind the "
                         "snapshot (index %llu): %s", id,
                         (unsigned long long)ns_applied_index(g->ns),
                         (unsigned long long)g->log.snap.index, rc_message(rc));
    }
    rc = start_raft(n, g, ents, n_ents, &initial, err);
    node_log_entries_free(ents, n_ents);
    if (rc == RC_OK && id == NODE_GROUP_META && (rc = node_book_load(n)) != RC_OK)
        return group_err(err, rc, "group 0: loading the address book: %s", rc_message(rc));
    return rc;
}

static void node_free(struct node *n)
{
    node_snap_detach_all(n);
    for (uint32_t i = 0; i < NODE_GROUPS; i++) {
        node_snap_free_group(&n->g[i]);
        if (n->g[i].raft)
            raft_free(n->g[i].raft);
        if (n->g[i].ns)
            ns_close(n->g[i].ns);
    }
    if (n->batch)
        pst_batch_free(n->batch);
    free(n->buckets);
    free(n->error);
    free(n->note);
    free(n);
}

static int node_alloc(const struct node_config *cfg, uint64_t now_ms, struct node **out)
{
    if (cfg->id == RAFT_NONE || cfg->max_pending == 0 ||
        cfg->max_pending > NODE_PENDING_MAX_LIMIT)
        return RC_BADARG;
    struct node *n = calloc(1, sizeof *n);
    if (!n)
        return RC_NOMEM;
    n->cfg = *cfg;
    n->nbuckets = 64;
    while (n->nbuckets < 2 * (size_t)cfg->max_pending)
        n->nbuckets *= 2;
    n->buckets = calloc(n->nbuckets, sizeof *n->buckets);
    n->batch = pst_batch_new();
    if (!n->buckets || !n->batch) {
        node_free(n);
        return RC_NOMEM;
    }
    /* Request ids from an earlier run of this node must not repeat: start the sequence
     * from the clock (2^8 ids per ms of wall time before two runs could overlap). */
    uint64_t wall_ms = cfg->start_wall_ms ? cfg->start_wall_ms : now_ms;
    n->rid_base = (wall_ms & ((UINT64_C(1) << 40) - 1)) << 8;
    n->last_tick_ms = now_ms;
    *out = n;
    return RC_OK;
}

int node_open(struct pst_engine *e, const struct node_config *cfg, uint64_t now_ms,
              struct node **out, char **err)
{
    struct node *n = NULL;
    *out = NULL;
    if (err)
        *err = NULL;
    char *msg = NULL;
    int rc = node_alloc(cfg, now_ms, &n);
    if (rc != RC_OK) {
        if (err && asprintf(err, "node: %s", rc_message(rc)) < 0)
            *err = NULL;
        return rc;
    }
    n->e = e;
    for (uint32_t i = 0; i < NODE_GROUPS && rc == RC_OK; i++)
        rc = open_group(n, i, &msg);
    /* Replay committed entries past the applied index (bounded passes). */
    for (int pass = 0; rc == RC_OK && pass < 16 && node_has_work(n); pass++)
        if (node_run(n, now_ms) != RC_OK) {
            rc = RC_IO;
            msg = n->error ? strdup(n->error) : NULL;
        }
    if (rc != RC_OK) {
        if (err)
            *err = msg ? msg : strdup(rc_message(rc));
        else
            free(msg);
        node_free(n);
        return rc;
    }
    *out = n;
    return RC_OK;
}

void node_close(struct node *n)
{
    if (!n)
        return;
    n->closing = true;
    while (n->head)
        node_req_complete(n, n->head, RC_SHUTDOWN, NULL);
    node_free(n);
}

/* ------------------------------------------------------------------ small accessors */

void node_set_transport(struct node *n, node_send_fn fn, void *ud)
{
    n->send = fn;
    n->send_ud = ud;
}

void node_set_snapshot_installer(struct node *n, node_snapshot_install_fn fn, void *ud)
{
    (void)n; /* kept for compatibility: node installs staged snapshots itself (node_snap.c) */
    (void)fn;
    (void)ud;
}

uint32_t node_route(const struct node *n, const void *key, size_t klen)
{
    (void)n;
    (void)key;
    (void)klen;
    return NODE_GROUP_DATA; /* one data group today; the shard map lives in group 0 later */
}

struct ns *node_ns(struct node *n, uint32_t group)
{
    struct group *g = node_group_of(n, group);
    return g ? g->ns : NULL;
}

int node_step(struct node *n, uint32_t group, const struct raft_msg *m)
{
    struct group *g = node_group_of(n, group);
    if (!g || !m || n->failed)
        return RC_BADARG;
    if (m->type == RAFT_MSG_SNAPSHOT) {
        int rc = node_snap_check_step(n, g, m);
        if (rc != RC_OK)
            return rc; /* no staged data for it: never let Raft install nothing */
    }
    if (raft_step(g->raft, m) != RAFT_OK)
        return RC_BADARG;
    node_member_on_step(n, g, m);
    return RC_OK;
}

int node_raft_status(const struct node *n, uint32_t group, struct raft_status *st)
{
    if (group >= NODE_GROUPS)
        return RC_BADARG;
    raft_status(n->g[group].raft, st);
    return RC_OK;
}

int node_applied_conf(const struct node *n, uint32_t group, struct raft_conf *out)
{
    if (group >= NODE_GROUPS)
        return RC_BADARG;
    *out = n->g[group].conf;
    return RC_OK;
}

uint64_t node_fsyncs(const struct node *n) { return n->fsyncs; }
uint64_t node_entries_written(const struct node *n) { return n->entries_written; }
uint64_t node_bad_entries(const struct node *n) { return n->bad_entries; }
size_t node_pending(const struct node *n) { return n->n_reqs; }
const char *node_last_error(const struct node *n) { return n->error; }
const char *node_open_note(const struct node *n) { return n->note; }
