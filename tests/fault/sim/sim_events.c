/*
 * sim_events.c - the events raftsim injects, the liveness phases, and one seed's run.
 *
 * Per step one event is drawn from a fixed table of weights (per mille): ticks, message
 * delivery (FIFO, reordered), drops, duplicates, delays, client proposals to random
 * members, ReadIndex reads, partitions (symmetric, asymmetric, leader isolation, splits)
 * and heals, crashes, slow disks, leadership transfers, membership changes (add learner,
 * promote, remove incl. the leader, re-add) and snapshots with log compaction.
 *
 * Per seed: 3 or 5 voters; each member's clock skips a share of ticks (a few members run
 * much slower: clock skew); with --churn per mille of seeds, a new leader is crashed or
 * isolated within a few steps of its election; with --tiny per mille of seeds, APPENDs carry
 * one entry with one in flight. The last two make the Figure 8 interleaving (paper 5.4.2)
 * reachable; skew widens the window in which a deposed leader still believes it leads.
 *
 * Every SIM_LIVENESS_EVERY steps and at the end, a liveness phase heals everything,
 * restarts crashed members and stops injecting faults; within SIM_LIVENESS_ROUNDS rounds
 * (each: one tick per member, then every message delivered) a leader must exist and every
 * member of its configuration must have applied every acknowledged write.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define SIM_LIVENESS_EVERY 1000

#define SIM_LIVENESS_ROUNDS (50 * SIM_ELECTION_TICKS)

enum ev {
    EV_TICK, EV_DELIVER, EV_REORDER, EV_DROP, EV_DUP, EV_DELAY, EV_PROPOSE, EV_READ,
    EV_PARTITION, EV_HEAL, EV_CRASH, EV_SLOW, EV_TRANSFER, EV_CONF, EV_COMPACT, EV__COUNT
};
static const uint16_t ev_weight[EV__COUNT] = {
    [EV_TICK] = 260, [EV_DELIVER] = 450, [EV_REORDER] = 40, [EV_DROP] = 30, [EV_DUP] = 12,
    [EV_DELAY] = 12, [EV_PROPOSE] = 90, [EV_READ] = 50, [EV_PARTITION] = 8, [EV_HEAL] = 12,
    [EV_CRASH] = 4, [EV_SLOW] = 7, [EV_TRANSFER] = 5, [EV_CONF] = 8, [EV_COMPACT] = 12,
};

static struct sim_member *random_running(struct sim *s)
{
    int ids[SIM_MEMBERS_MAX], n = 0;
    for (int id = 1; id <= s->n_ids; id++)
        if (s->mem[id].running)
            ids[n++] = id;
    return n ? &s->mem[ids[sim_rng_below(&s->rng, (uint32_t)n)]] : NULL;
}

static void ev_propose(struct sim *s)
{
    struct sim_member *mb = random_running(s);
    if (!mb)
        return;
    uint8_t data[10] = {'S', (uint8_t)sim_rng_below(&s->rng, SIM_KEYS)};
    uint64_t v = ++s->next_version;
    for (int i = 0; i < 8; i++)
        data[2 + i] = (uint8_t)(v >> (8 * i));
    raft_index index = 0;
    int rc = raft_propose(mb->r, ++s->next_ctx, data, sizeof(data), &index, NULL);
    s->n_props_ok += rc == RAFT_OK;
    sim_log(s, "propose key %d v%llu on node %llu: %s (index %llu)", data[1],
            (unsigned long long)v, (unsigned long long)mb->id, raft_strerror(rc),
            (unsigned long long)index);
}

/* A member that believes it is the leader (any term), or NULL. */
static struct sim_member *random_self_leader(struct sim *s)
{
    int ids[SIM_MEMBERS_MAX], n = 0;
    struct raft_status st;
    for (int id = 1; id <= s->n_ids; id++) {
        if (!s->mem[id].running)
            continue;
        raft_status(s->mem[id].r, &st);
        if (st.role == RAFT_LEADER)
            ids[n++] = id;
    }
    return n ? &s->mem[ids[sim_rng_below(&s->rng, (uint32_t)n)]] : NULL;
}

static void ev_read(struct sim *s)
{
    /* Clients mostly ask a member that says it leads (possibly a deposed one). */
    struct sim_member *mb = sim_rng_chance(&s->rng, 500) ? random_self_leader(s) : NULL;
    if (!mb)
        mb = random_running(s);
    if (!mb || s->n_reads == SIM_READS_MAX)
        return;
    struct sim_read rd = {
        .member = mb->id,
        .incarnation = mb->incarnation,
        .ctx = ++s->next_ctx,
        .key = (int)sim_rng_below(&s->rng, SIM_KEYS),
        .started_step = s->step,
    };
    rd.required = s->last_write[rd.key];
    int rc = raft_read_index(mb->r, rd.ctx);
    sim_log(s, "read key %d on node %llu ctx=%llu (needs >= %llu): %s", rd.key,
            (unsigned long long)mb->id, (unsigned long long)rd.ctx,
            (unsigned long long)rd.required, raft_strerror(rc));
    if (rc == RAFT_OK)
        s->reads[s->n_reads++] = rd;
}

static void block_both(struct sim *s, int a, int b)
{
    s->blocked[a][b] = true;
    s->blocked[b][a] = true;
}

static void ev_partition(struct sim *s)
{
    struct raft_status st;
    int n = s->n_ids;
    switch (sim_rng_below(&s->rng, 4)) {
    case 0: { /* isolate one member */
        int a = 1 + (int)sim_rng_below(&s->rng, (uint32_t)n);
        for (int b = 1; b <= n; b++)
            if (b != a)
                block_both(s, a, b);
        sim_log(s, "partition: isolate node %d", a);
        break;
    }
    case 1: { /* asymmetric: a -> b blocked, b -> a open */
        int a = 1 + (int)sim_rng_below(&s->rng, (uint32_t)n);
        int b = 1 + (int)sim_rng_below(&s->rng, (uint32_t)n);
        s->blocked[a][b] = a != b;
        sim_log(s, "partition: block %d -> %d only", a, b);
        break;
    }
    case 2: { /* isolate the leader */
        struct sim_member *l = sim_find_leader(s, &st);
        if (!l)
            break;
        for (int b = 1; b <= n; b++)
            if (b != (int)l->id)
                block_both(s, (int)l->id, b);
        sim_log(s, "partition: isolate leader %llu", (unsigned long long)l->id);
        break;
    }
    default: { /* majority / minority split */
        bool side[SIM_MEMBERS_MAX] = {false};
        for (int a = 1; a <= n; a++)
            side[a] = sim_rng_chance(&s->rng, 400);
        for (int a = 1; a <= n; a++)
            for (int b = 1; b <= n; b++)
                if (side[a] != side[b])
                    s->blocked[a][b] = true;
        sim_log(s, "partition: split");
        break;
    }
    }
}

static void heal(struct sim *s)
{
    memset(s->blocked, 0, sizeof(s->blocked));
    sim_log(s, "heal all partitions");
}

static void ev_crash(struct sim *s)
{
    struct sim_member *mb = random_running(s);
    if (mb)
        sim_member_stop(s, mb, true);
}

static void ev_slow(struct sim *s)
{
    struct sim_member *mb = random_running(s);
    if (!mb)
        return;
    mb->slow_disk_steps = 10 + sim_rng_below(&s->rng, 60);
    sim_log(s, "node %llu disk slow for %u steps", (unsigned long long)mb->id,
            mb->slow_disk_steps);
}

static void ev_transfer(struct sim *s)
{
    struct sim_member *mb = random_running(s);
    if (!mb)
        return;
    raft_id to = 1 + sim_rng_below(&s->rng, (uint32_t)s->n_ids);
    int rc = raft_transfer_leadership(mb->r, to);
    sim_log(s, "transfer leadership to %llu via node %llu: %s", (unsigned long long)to,
            (unsigned long long)mb->id, raft_strerror(rc));
}

/* Pick a membership change the leader's latest configuration allows. */
static bool pick_change(struct sim *s, const struct raft_conf *c, struct raft_conf_change *cc)
{
    raft_id cand[SIM_MEMBERS_MAX];
    uint32_t n = 0;
    switch (sim_rng_below(&s->rng, 3)) {
    case 0: /* add (or re-add) a learner */
        for (int id = 1; id <= s->n_ids; id++)
            if (!sim_conf_has(c, (raft_id)id))
                cand[n++] = (raft_id)id;
        cc->type = RAFT_CC_ADD_LEARNER;
        break;
    case 1: /* promote a learner */
        for (uint32_t i = 0; i < c->n_learners && c->n_voters < 5; i++)
            cand[n++] = c->learners[i];
        cc->type = RAFT_CC_ADD_VOTER;
        break;
    default: /* remove a voter (possibly the leader) or a learner */
        for (uint32_t i = 0; i < c->n_voters && c->n_voters > 3; i++)
            cand[n++] = c->voters[i];
        for (uint32_t i = 0; i < c->n_learners; i++)
            cand[n++] = c->learners[i];
        cc->type = RAFT_CC_REMOVE;
        break;
    }
    if (n == 0)
        return false;
    cc->node = cand[sim_rng_below(&s->rng, n)];
    return true;
}

static void ev_conf(struct sim *s)
{
    struct raft_status st;
    struct sim_member *l = sim_find_leader(s, &st);
    struct raft_conf_change cc = {0};
    if (!l || !pick_change(s, &st.conf, &cc))
        return;
    struct sim_member *mb = &s->mem[cc.node];
    if (cc.type == RAFT_CC_ADD_LEARNER) {
        if (!mb->exists) {
            mb->exists = true;
            sim_app_init(s, &mb->app);
            mb->disk.snap_app = mb->app;
        }
        if (!mb->running)
            sim_member_start(s, mb);
        if (s->failed)
            return;
    }
    int rc = raft_propose_conf_change(l->r, ++s->next_ctx, &cc, NULL, NULL);
    sim_log(s, "conf change %s node %llu on leader %llu: %s",
            cc.type == RAFT_CC_ADD_LEARNER ? "add-learner"
            : cc.type == RAFT_CC_ADD_VOTER ? "promote" : "remove",
            (unsigned long long)cc.node, (unsigned long long)l->id, raft_strerror(rc));
}

static void ev_compact(struct sim *s)
{
    struct sim_member *mb = random_running(s);
    if (!mb || mb->held || mb->app.applied < mb->disk.snap.index + 4)
        return;
    raft_index index = mb->app.applied;
    int rc = raft_compact(mb->r, index);
    sim_log(s, "node %llu snapshot+compact at %llu: %s", (unsigned long long)mb->id,
            (unsigned long long)index, raft_strerror(rc));
    if (rc != RAFT_OK)
        return;
    s->n_compactions++;
    struct sim_disk *d = &mb->disk;
    sim_disk_compact(d, index, mb->app.applied_term);
    d->snap.index = index;
    d->snap.term = mb->app.applied_term;
    d->snap.conf = mb->app.conf;
    d->snap_app = mb->app;
}

static void ev_deliver(struct sim *s, enum ev e)
{
    if (s->n_net == 0)
        return;
    size_t i = sim_rng_below(&s->rng, (uint32_t)s->n_net);
    switch (e) {
    case EV_DELIVER:
        for (size_t k = 1 + sim_rng_below(&s->rng, 6) + s->n_net / 32; k > 0 && s->n_net > 0;
             k--)
            sim_net_deliver(s, 0);
        break;
    case EV_REORDER: sim_net_deliver(s, i); break;
    case EV_DROP: sim_net_drop(s, i, "drop"); break;
    case EV_DUP: sim_net_duplicate(s, i); break;
    default: sim_net_delay(s, i); break;
    }
}

static void run_event(struct sim *s, enum ev e)
{
    s->stats_events[e]++;
    switch (e) {
    case EV_TICK: /* one unit of time; each member's clock may lag (skew) */
        for (int id = 1; id <= s->n_ids; id++)
            if (s->mem[id].running &&
                !sim_rng_chance(&s->rng, s->mem[id].clock_skip_per_mille))
                raft_tick(s->mem[id].r);
        break;
    case EV_DELIVER: case EV_REORDER: case EV_DROP: case EV_DUP: case EV_DELAY:
        ev_deliver(s, e);
        break;
    case EV_PROPOSE: ev_propose(s); break;
    case EV_READ: ev_read(s); break;
    case EV_PARTITION: ev_partition(s); break;
    case EV_HEAL: heal(s); break;
    case EV_CRASH: ev_crash(s); break;
    case EV_SLOW: ev_slow(s); break;
    case EV_TRANSFER: ev_transfer(s); break;
    case EV_CONF: ev_conf(s); break;
    default: ev_compact(s); break;
    }
}

static void restart_due(struct sim *s)
{
    for (int id = 1; id <= s->n_ids && !s->failed; id++) {
        struct sim_member *mb = &s->mem[id];
        if (mb->running || !mb->crashed)
            continue;
        if (mb->down_steps > 0)
            mb->down_steps--;
        else
            sim_member_start(s, mb);
    }
}

static void doom_leaders(struct sim *s)
{
    for (int id = 1; id <= s->n_ids && !s->failed; id++) {
        struct sim_member *mb = &s->mem[id];
        if (!mb->running || mb->doom_steps == 0 || --mb->doom_steps > 0)
            continue;
        if (sim_rng_chance(&s->rng, 500)) {
            sim_member_stop(s, mb, true);
        } else {
            for (int b = 1; b <= s->n_ids; b++)
                if (b != id)
                    block_both(s, id, b);
            sim_log(s, "partition: isolate new leader %d", id);
        }
    }
}

static void step_once(struct sim *s)
{
    restart_due(s);
    doom_leaders(s);
    uint32_t r = sim_rng_below(&s->rng, 1000);
    enum ev e = EV_TICK;
    for (int i = 0; i < EV__COUNT; i++) {
        if (r < ev_weight[i]) {
            e = (enum ev)i;
            break;
        }
        r -= ev_weight[i];
    }
    if (!s->failed)
        run_event(s, e);
    if (!s->failed)
        sim_process_disks(s);
}

/* --- liveness --------------------------------------------------------------------------- */
static void heal_and_restart(struct sim *s)
{
    memset(s->blocked, 0, sizeof(s->blocked));
    for (int id = 1; id <= s->n_ids && !s->failed; id++) {
        struct sim_member *mb = &s->mem[id];
        mb->slow_disk_steps = 0;
        mb->hold_steps = 0;
        mb->doom_steps = 0;
        if (mb->crashed && !mb->running)
            sim_member_start(s, mb);
    }
}

/* Start every member of the leader's configuration that is down (a removed member that
 * was re-added before its removal was applied anywhere). */
static void start_conf_members(struct sim *s)
{
    struct raft_status st;
    if (!sim_find_leader(s, &st))
        return;
    for (uint32_t i = 0; i < st.conf.n_voters + st.conf.n_learners && !s->failed; i++) {
        raft_id id = i < st.conf.n_voters ? st.conf.voters[i]
                                          : st.conf.learners[i - st.conf.n_voters];
        if (id >= 1 && id <= (raft_id)s->n_ids && s->mem[id].exists && !s->mem[id].running)
            sim_member_start(s, &s->mem[id]);
    }
}

/* True when a leader exists and all of its configuration applied `target`. */
static bool live_ok(struct sim *s, raft_index target, char *why, size_t cap)
{
    struct raft_status st;
    struct sim_member *l = sim_find_leader(s, &st);
    if (!l) {
        snprintf(why, cap, "no leader");
        return false;
    }
    if (st.commit < target) {
        snprintf(why, cap, "leader %llu term %llu commit %llu < acknowledged %llu",
                 (unsigned long long)l->id, (unsigned long long)st.term,
                 (unsigned long long)st.commit, (unsigned long long)target);
        return false;
    }
    for (uint32_t i = 0; i < st.conf.n_voters + st.conf.n_learners; i++) {
        raft_id id = i < st.conf.n_voters ? st.conf.voters[i]
                                          : st.conf.learners[i - st.conf.n_voters];
        const struct sim_member *mb = &s->mem[id];
        if (!mb->running || mb->app.applied < target) {
            snprintf(why, cap, "node %llu (%s) applied %llu < acknowledged %llu (leader %llu "
                     "term %llu)", (unsigned long long)id, mb->running ? "up" : "down",
                     (unsigned long long)mb->app.applied, (unsigned long long)target,
                     (unsigned long long)l->id, (unsigned long long)st.term);
            return false;
        }
    }
    return true;
}

static void deliver_all(struct sim *s)
{
    for (int k = 0; k < 20000 && s->n_net > 0 && !s->failed; k++) {
        sim_net_deliver(s, 0);
        sim_process_disks(s);
    }
}

static void liveness(struct sim *s)
{
    char why[256] = "";
    sim_log(s, "liveness phase: heal, restart, no faults");
    s->faults = false;
    heal_and_restart(s);
    raft_index target = s->max_applied;
    for (int round = 0; round < SIM_LIVENESS_ROUNDS && !s->failed; round++) {
        start_conf_members(s);
        sim_process_disks(s);
        deliver_all(s);
        if (!s->failed && live_ok(s, target, why, sizeof(why))) {
            sim_log(s, "liveness ok after %d rounds", round);
            s->faults = true;
            return;
        }
        for (int id = 1; id <= s->n_ids; id++)
            if (s->mem[id].running)
                raft_tick(s->mem[id].r);
        s->liveness_ticks++;
        sim_process_disks(s);
    }
    sim_fail(s, "liveness: after %d rounds of ticks with faults healed: %s",
             SIM_LIVENESS_ROUNDS, why);
}

/* --- one seed ---------------------------------------------------------------------------- */
static void setup(struct sim *s)
{
    sim_rng_seed(&s->rng, s->seed);
    s->n_ids = s->n_boot + SIM_SPARE_IDS;
    s->boot_conf.n_voters = (uint32_t)s->n_boot;
    for (int i = 0; i < s->n_boot; i++)
        s->boot_conf.voters[i] = (raft_id)(i + 1);
    s->faults = true;
    s->churn = sim_rng_chance(&s->rng, s->churn_per_mille);
    s->tiny_batches = sim_rng_chance(&s->rng, s->tiny_per_mille);
    for (int id = 1; id <= s->n_ids; id++) {
        struct sim_member *mb = &s->mem[id];
        mb->id = (raft_id)id;
        mb->app_durable = sim_rng_chance(&s->rng, 500);
        /* Clock skew: most clocks lose a few ticks, some run much slower. ReadIndex must
         * stay correct under any skew (thesis 6.4); a lease read would not. */
        mb->clock_skip_per_mille = sim_rng_chance(&s->rng, 300)
                                       ? 200 + sim_rng_below(&s->rng, 500)
                                       : sim_rng_below(&s->rng, 150);
        sim_app_init(s, &mb->app);
        mb->disk.snap_app = mb->app;
        if (id <= s->n_boot) {
            mb->exists = true;
            sim_member_start(s, mb);
        }
    }
}

static void teardown(struct sim *s)
{
    for (int id = 1; id <= s->n_ids; id++) {
        struct sim_member *mb = &s->mem[id];
        if (mb->running)
            raft_free(mb->r);
        sim_disk_free(&mb->disk);
    }
    sim_net_free_all(s);
    sim_check_free(s);
}

int sim_run(struct sim *s)
{
    setup(s);
    sim_log(s, "seed %llu: %d voters (+%d spare ids), %llu steps, leader churn %s, "
            "one entry per APPEND %s", (unsigned long long)s->seed, s->n_boot, SIM_SPARE_IDS,
            (unsigned long long)s->steps, s->churn ? "on" : "off",
            s->tiny_batches ? "on" : "off");
    for (s->step = 1; s->step <= s->steps && !s->failed; s->step++) {
        step_once(s);
        if (!s->failed && s->step % SIM_LIVENESS_EVERY == 0 && s->step != s->steps)
            liveness(s);
    }
    if (!s->failed) {
        s->step = s->steps;
        liveness(s);
    }
    teardown(s);
    return s->failed ? 1 : 0;
}
