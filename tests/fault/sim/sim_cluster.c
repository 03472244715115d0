/*
 * sim_cluster.c - raftsim's members (core + simulated disk + application) and the event
 * loop that drives one seed.
 *
 * The Ready contract of raft.h is followed literally: a batch is taken with raft_ready()
 * only after the previous one was advanced; it is then persisted (snapshot, entries after
 * truncating the stable suffix, hard state; fsync'd when must_sync), its messages handed to
 * the network, its committed entries applied, and raft_advance() called. On a slow disk a
 * batch is held for a few steps while the core keeps ticking and stepping; a crash while it
 * is held loses it. A write without must_sync (a commit index) stays volatile and is lost
 * by a crash. The application state survives a crash only on members whose application
 * store is "durable"; otherwise it restarts from the snapshot on disk.
 *
 * Every step picks one event from s->rng; after it, held batches that are due are
 * completed, new batches taken, and the checkers of sim_check.c run on every member.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

void sim_log(const struct sim *s, const char *fmt, ...)
{
    if (!s->verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    printf("[%llu] ", (unsigned long long)s->step);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
}

void sim_fail(struct sim *s, const char *fmt, ...)
{
    if (s->failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->fail_msg, sizeof(s->fail_msg), fmt, ap);
    va_end(ap);
    s->failed = true;
    sim_log(s, "FAIL: %s", s->fail_msg);
}

/* --- disk ----------------------------------------------------------------------------- */
static void disk_truncate(struct sim_disk *d, size_t keep)
{
    for (size_t i = keep; i < d->n_log; i++)
        free(d->log[i].data);
    if (keep < d->n_log)
        d->n_log = keep;
}

static void disk_append(struct sim_disk *d, const struct raft_entry *e)
{
    if (d->n_log == d->cap_log) {
        d->cap_log = d->cap_log ? d->cap_log * 2 : 64;
        d->log = realloc(d->log, d->cap_log * sizeof(d->log[0]));
        if (!d->log)
            abort();
    }
    sim_entry_copy(&d->log[d->n_log++], e);
}

/* Drop entries up to and including index; keep the rest only if it continues index. */
void sim_disk_compact(struct sim_disk *d, raft_index index, raft_term term)
{
    size_t drop = 0;
    bool keep_rest = false;
    if (index > d->snap.index) {
        size_t k = index - d->snap.index; /* entries <= index */
        drop = k < d->n_log ? k : d->n_log;
        keep_rest = k <= d->n_log && d->log[k - 1].term == term;
    }
    if (!keep_rest) {
        disk_truncate(d, 0);
        return;
    }
    for (size_t i = 0; i < drop; i++)
        free(d->log[i].data);
    memmove(d->log, d->log + drop, (d->n_log - drop) * sizeof(d->log[0]));
    d->n_log -= drop;
}

void sim_disk_free(struct sim_disk *d)
{
    disk_truncate(d, 0);
    free(d->log);
    d->log = NULL;
    d->cap_log = 0;
}

void sim_app_init(const struct sim *s, struct sim_app *a)
{
    memset(a, 0, sizeof(*a));
    a->conf = s->boot_conf;
}

/* --- member lifecycle ------------------------------------------------------------------- */
void sim_member_start(struct sim *s, struct sim_member *mb)
{
    struct raft_config cfg;
    raft_config_default(&cfg, mb->id, sim_rng_next(&s->rng));
    cfg.election_ticks = SIM_ELECTION_TICKS;
    cfg.heartbeat_ticks = SIM_HEARTBEAT_TICKS;
    /* One or a few entries per APPEND, few in flight: replication in small steps makes
     * the interleavings of Figure 8 (paper 5.4.2) reachable. */
    cfg.max_msg_bytes = sim_rng_chance(&s->rng, 500) ? 1 : 16 + sim_rng_below(&s->rng, 200);
    cfg.max_inflight_msgs = 1 + sim_rng_below(&s->rng, 8);
    if (s->tiny_batches) {
        cfg.max_msg_bytes = 1;
        cfg.max_inflight_msgs = 1;
    }
    struct raft_persisted p = {
        .hs = mb->disk.hs,
        .snapshot = mb->disk.snap,
        .entries = mb->disk.log,
        .n_entries = mb->disk.n_log,
        .initial = s->boot_conf,
        .applied = mb->app.applied,
    };
    int rc = raft_new(&cfg, &p, &mb->r);
    if (rc != RAFT_OK) {
        sim_fail(s, "node %llu: raft_new from its disk failed: %s (term %llu, commit %llu, "
                 "snapshot %llu, %zu entries, applied %llu)", (unsigned long long)mb->id,
                 raft_strerror(rc), (unsigned long long)p.hs.term,
                 (unsigned long long)p.hs.commit, (unsigned long long)p.snapshot.index,
                 p.n_entries, (unsigned long long)p.applied);
        return;
    }
    mb->running = true;
    mb->crashed = false;
    mb->incarnation++;
    mb->last_commit = 0;
    mb->checked_commit = mb->disk.snap.index;
    mb->held = false;
    mb->slow_disk_steps = 0;
    mb->n_staged = 0;
    mb->shutdown_pending = false;
    mb->doom_steps = 0;
    sim_log(s, "start node %llu (term %llu, commit %llu, snapshot %llu, %zu entries, applied "
            "%llu)", (unsigned long long)mb->id, (unsigned long long)p.hs.term,
            (unsigned long long)p.hs.commit, (unsigned long long)p.snapshot.index,
            p.n_entries, (unsigned long long)p.applied);
}

static void drop_reads(struct sim *s, raft_id id)
{
    for (uint32_t i = 0; i < s->n_reads; i++)
        if (s->reads[i].member == id)
            s->reads[i--] = s->reads[--s->n_reads];
}

/* Stop a member: everything not synced is lost. */
void sim_member_stop(struct sim *s, struct sim_member *mb, bool crash)
{
    raft_free(mb->r);
    mb->r = NULL;
    mb->running = false;
    mb->held = false;
    mb->crashed = crash;
    mb->disk.hs_volatile = mb->disk.hs;
    if (!mb->app_durable || sim_rng_chance(&s->rng, 300))
        mb->app = mb->disk.snap_app;
    mb->n_staged = 0;
    mb->down_steps = 5 + sim_rng_below(&s->rng, 150);
    s->n_crashes += crash;
    drop_reads(s, mb->id);
    sim_log(s, "%s node %llu (app restarts at %llu)", crash ? "crash" : "shut down",
            (unsigned long long)mb->id, (unsigned long long)mb->app.applied);
}

struct sim_member *sim_find_leader(struct sim *s, struct raft_status *st)
{
    struct sim_member *best = NULL;
    raft_term best_term = 0;
    struct raft_status tmp;
    for (int id = 1; id <= s->n_ids; id++) {
        struct sim_member *mb = &s->mem[id];
        if (!mb->running)
            continue;
        raft_status(mb->r, &tmp);
        if (tmp.role == RAFT_LEADER && tmp.term >= best_term) {
            best = mb;
            best_term = tmp.term;
            *st = tmp;
        }
    }
    return best;
}

bool sim_conf_has(const struct raft_conf *c, raft_id id)
{
    for (uint32_t i = 0; i < c->n_voters; i++)
        if (c->voters[i] == id)
            return true;
    for (uint32_t i = 0; i < c->n_learners; i++)
        if (c->learners[i] == id)
            return true;
    return false;
}

/* --- Ready processing ------------------------------------------------------------------ */
static void persist_snapshot(struct sim *s, struct sim_member *mb,
                             const struct raft_snapshot_meta *meta)
{
    const struct sim_staged *st = NULL;
    for (uint32_t i = 0; i < mb->n_staged; i++)
        if (mb->staged[i].index == meta->index && mb->staged[i].term == meta->term)
            st = &mb->staged[i];
    if (!st) {
        sim_fail(s, "node %llu: Ready.snapshot %llu term %llu was never staged",
                 (unsigned long long)mb->id, (unsigned long long)meta->index,
                 (unsigned long long)meta->term);
        return;
    }
    sim_check_snapshot(s, mb, st);
    s->n_snap_installs++;
    sim_log(s, "node %llu installs snapshot %llu term %llu", (unsigned long long)mb->id,
            (unsigned long long)meta->index, (unsigned long long)meta->term);
    sim_disk_compact(&mb->disk, meta->index, meta->term);
    mb->disk.snap = *meta;
    mb->disk.snap_app = st->app;
    mb->app = st->app;
    /* Forget staged snapshots up to this one; a newer one may have arrived meanwhile (the
     * batch was held by a slow disk) and the core may ask for it next. */
    uint32_t k = 0;
    for (uint32_t i = 0; i < mb->n_staged; i++)
        if (mb->staged[i].index > meta->index)
            mb->staged[k++] = mb->staged[i];
    mb->n_staged = k;
}

static void persist_entries(struct sim *s, struct sim_member *mb, const struct raft_ready *rd)
{
    struct sim_disk *d = &mb->disk;
    raft_index first = rd->entries[0].index;
    raft_index last = d->snap.index + d->n_log;
    if (!rd->must_sync)
        sim_fail(s, "node %llu: Ready has %zu entries but must_sync is false",
                 (unsigned long long)mb->id, rd->n_entries);
    if (first <= d->snap.index || first > last + 1) {
        sim_fail(s, "node %llu: Ready entries start at %llu, stable log is %llu..%llu",
                 (unsigned long long)mb->id, (unsigned long long)first,
                 (unsigned long long)d->snap.index + 1, (unsigned long long)last);
        return;
    }
    disk_truncate(d, first - d->snap.index - 1);
    for (size_t i = 0; i < rd->n_entries; i++) {
        if (rd->entries[i].index != first + i) {
            sim_fail(s, "node %llu: Ready entries not contiguous at %llu",
                     (unsigned long long)mb->id, (unsigned long long)rd->entries[i].index);
            return;
        }
        disk_append(d, &rd->entries[i]);
    }
    for (size_t i = 0; i < rd->n_entries && !s->failed; i++)
        sim_check_persisted(s, mb, &rd->entries[i]);
}

static void persist_hard_state(struct sim *s, struct sim_member *mb, const struct raft_ready *rd)
{
    struct sim_disk *d = &mb->disk;
    if (rd->hs_changed) {
        if (rd->hs.term < d->hs_volatile.term)
            sim_fail(s, "node %llu: hard state term went back from %llu to %llu",
                     (unsigned long long)mb->id, (unsigned long long)d->hs_volatile.term,
                     (unsigned long long)rd->hs.term);
        if (!rd->must_sync && (rd->hs.term != d->hs.term || rd->hs.vote != d->hs.vote))
            sim_fail(s, "node %llu: term/vote changed (term %llu vote %llu) without must_sync",
                     (unsigned long long)mb->id, (unsigned long long)rd->hs.term,
                     (unsigned long long)rd->hs.vote);
        if (rd->hs.term == d->hs_volatile.term && d->hs_volatile.vote != RAFT_NONE &&
            rd->hs.vote != d->hs_volatile.vote)
            sim_fail(s, "node %llu changed its vote in term %llu from %llu to %llu",
                     (unsigned long long)mb->id, (unsigned long long)rd->hs.term,
                     (unsigned long long)d->hs_volatile.vote,
                     (unsigned long long)rd->hs.vote);
        d->hs_volatile = rd->hs;
    }
    if (rd->must_sync)
        d->hs = d->hs_volatile;
}

static void note_removal(struct sim *s, const struct raft_entry *e)
{
    struct raft_conf_change cc;
    if (e->type != RAFT_ENTRY_CONF || e->index != s->max_applied ||
        raft_conf_change_decode(e->data, e->len, &cc) != RAFT_OK)
        return;
    if (cc.type == RAFT_CC_REMOVE && cc.node >= 1 && cc.node <= (raft_id)s->n_ids)
        s->mem[cc.node].shutdown_pending = true; /* the operator stops a removed member */
}

static void handle_reads(struct sim *s, struct sim_member *mb, const struct raft_ready *rd)
{
    for (size_t i = 0; i < rd->n_reads; i++) {
        const struct raft_read_state *rs = &rd->reads[i];
        for (uint32_t j = 0; j < s->n_reads; j++) {
            struct sim_read *q = &s->reads[j];
            if (q->member != mb->id || q->ctx != rs->ctx)
                continue;
            sim_log(s, "node %llu read ctx=%llu: %s index %llu", (unsigned long long)mb->id,
                    (unsigned long long)rs->ctx, raft_strerror(rs->err),
                    (unsigned long long)rs->index);
            if (rs->err != RAFT_OK) {
                s->reads[j] = s->reads[--s->n_reads];
            } else {
                q->answered = true;
                q->read_index = rs->index;
            }
            break;
        }
    }
}

static void member_complete(struct sim *s, struct sim_member *mb)
{
    struct raft_ready *rd = &mb->rd;
    if (rd->snapshot)
        persist_snapshot(s, mb, rd->snapshot);
    if (rd->n_entries > 0 && !s->failed)
        persist_entries(s, mb, rd);
    persist_hard_state(s, mb, rd);
    for (size_t i = 0; i < rd->n_msgs && !s->failed; i++) {
        if (rd->msgs[i].from != mb->id)
            sim_fail(s, "node %llu sends a message from %llu", (unsigned long long)mb->id,
                     (unsigned long long)rd->msgs[i].from);
        sim_net_send(s, &rd->msgs[i]);
    }
    for (size_t i = 0; i < rd->n_committed && !s->failed; i++) {
        sim_check_apply(s, mb, &rd->committed[i]);
        note_removal(s, &rd->committed[i]);
    }
    handle_reads(s, mb, rd);
    if (rd->ss_changed) {
        sim_log(s, "node %llu is %s, leader %llu", (unsigned long long)mb->id,
                raft_role_name(rd->ss.role), (unsigned long long)rd->ss.leader);
        /* Leader churn: a new leader dies or is cut off while it replicates its first
         * entries, leaving divergent logs behind (the Figure 8 pattern, paper 5.4.2). */
        if (rd->ss.role == RAFT_LEADER && s->churn && s->faults && sim_rng_chance(&s->rng, 600))
            mb->doom_steps = 1 + sim_rng_below(&s->rng, 4);
    }
    mb->held = false;
    raft_advance(mb->r);
    sim_check_reads(s, mb);
}

/* Complete due batches and take new ones. */
void sim_process_disks(struct sim *s)
{
    for (int id = 1; id <= s->n_ids && !s->failed; id++) {
        struct sim_member *mb = &s->mem[id];
        if (!mb->running)
            continue;
        if (mb->slow_disk_steps > 0)
            mb->slow_disk_steps--;
        for (int round = 0; round < 4 && !s->failed; round++) {
            if (mb->held) {
                if (mb->hold_steps > 0) {
                    mb->hold_steps--;
                    break;
                }
                member_complete(s, mb);
                continue;
            }
            if (!raft_has_ready(mb->r))
                break;
            int rc = raft_ready(mb->r, &mb->rd);
            if (rc != RAFT_OK) {
                sim_fail(s, "node %llu: raft_ready after advance failed: %s",
                         (unsigned long long)mb->id, raft_strerror(rc));
                break;
            }
            mb->held = true;
            mb->hold_steps = mb->slow_disk_steps > 0 && s->faults
                                 ? 1 + sim_rng_below(&s->rng, 8) : 0;
        }
        if (mb->shutdown_pending) {
            struct raft_status st;
            mb->shutdown_pending = false;
            /* Not if it was re-added meanwhile (the leader committed the removal and a
             * re-add before anyone applied the removal). */
            struct sim_member *l = sim_find_leader(s, &st);
            if (mb->running && !(l && sim_conf_has(&st.conf, mb->id)))
                sim_member_stop(s, mb, false);
        }
    }
    for (int id = 1; id <= s->n_ids && !s->failed; id++)
        if (s->mem[id].running)
            sim_check_member(s, &s->mem[id]);
}
