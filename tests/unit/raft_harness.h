/*
 * raft_harness.h - a tiny in-test cluster for the Raft unit suites (tests/unit/test_raft_*.c).
 *
 * Every node's "disk" is a deep copy of what its Ready batches asked to persist (hard
 * state, snapshot meta, log), so a restart rebuilds the member from exactly that. The
 * network is a FIFO queue of deep-copied messages; links can be cut per direction. The
 * harness persists by simply advancing (no crash between persist and advance).
 * Header-only (static inline) so each suite links only src/raft objects.
 */
#ifndef RAFT_HARNESS_H
#define RAFT_HARNESS_H

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "raft/raft.h"

#define H_NODES 8     /* ids 1..7 */
#define H_APPLIED 4096

struct h_node {
    struct raft *r;
    bool up;
    struct raft_config cfg;
    struct raft_hard_state hs;
    struct raft_snapshot_meta snap;
    struct raft_entry *log; /* persisted entries after snap.index */
    size_t n_log, cap_log;
    raft_index applied;
    raft_term applied_term[H_APPLIED]; /* term of each applied index (0 = none) */
    uint32_t applied_len[H_APPLIED];
    struct raft_read_state reads[256];
    size_t n_reads;
    struct raft_prop_result props[256];
    size_t n_props;
    size_t snapshots_installed;
};

struct h_cluster {
    int n;
    struct raft_conf conf;
    struct h_node nodes[H_NODES];
    bool cut[H_NODES][H_NODES]; /* cut[a][b]: messages a -> b are dropped */
    struct raft_msg *q;
    size_t qn, qcap;
    size_t delivered;
    size_t sent[RAFT_MSG__COUNT];    /* delivered messages by type */
    size_t rejects[RAFT_MSG__COUNT]; /* delivered messages with reject set, by type */
};

static inline struct raft_entry h_entry_copy(const struct raft_entry *e)
{
    struct raft_entry c = *e;
    c.data = NULL;
    if (e->len) {
        c.data = malloc(e->len);
        memcpy(c.data, e->data, e->len);
    }
    return c;
}

static inline void h_log_truncate(struct h_node *nd, raft_index from)
{
    while (nd->n_log && nd->log[nd->n_log - 1].index >= from) {
        free(nd->log[nd->n_log - 1].data);
        nd->n_log--;
    }
}

static inline void h_log_push(struct h_node *nd, const struct raft_entry *e)
{
    if (nd->n_log == nd->cap_log) {
        nd->cap_log = nd->cap_log ? nd->cap_log * 2 : 64;
        nd->log = realloc(nd->log, nd->cap_log * sizeof(*nd->log));
    }
    nd->log[nd->n_log++] = h_entry_copy(e);
}

static inline void h_install_snapshot(struct h_node *nd, const struct raft_snapshot_meta *s)
{
    size_t k = 0;
    while (k < nd->n_log && nd->log[k].index <= s->index) free(nd->log[k++].data);
    if (k) memmove(nd->log, nd->log + k, (nd->n_log - k) * sizeof(*nd->log));
    nd->n_log -= k;
    if (nd->n_log && nd->log[0].index != s->index + 1) h_log_truncate(nd, 0);
    nd->snap = *s;
    nd->applied = s->index;
    nd->snapshots_installed++;
}

static inline void h_queue_msg(struct h_cluster *c, const struct raft_msg *m)
{
    if (m->to >= H_NODES || c->cut[m->from][m->to] || !c->nodes[m->to].up) return;
    if (c->qn == c->qcap) {
        c->qcap = c->qcap ? c->qcap * 2 : 256;
        c->q = realloc(c->q, c->qcap * sizeof(*c->q));
    }
    struct raft_msg x = *m;
    x.entries = NULL;
    if (m->n_entries) {
        x.entries = calloc(m->n_entries, sizeof(*x.entries));
        for (uint32_t i = 0; i < m->n_entries; i++) x.entries[i] = h_entry_copy(&m->entries[i]);
    }
    c->q[c->qn++] = x;
}

static inline void h_msg_free(struct raft_msg *m)
{
    for (uint32_t i = 0; i < m->n_entries; i++) free(m->entries[i].data);
    free(m->entries);
}

/* One Ready/advance cycle of node id; returns whether there was a batch. */
static inline bool h_process(struct h_cluster *c, int id)
{
    struct h_node *nd = &c->nodes[id];
    if (!nd->up || !raft_has_ready(nd->r)) return false;
    struct raft_ready rd;
    cr_assert_eq(raft_ready(nd->r, &rd), RAFT_OK);
    if (rd.hs_changed) nd->hs = rd.hs;
    if (rd.snapshot) h_install_snapshot(nd, rd.snapshot);
    if (rd.n_entries) h_log_truncate(nd, rd.entries[0].index);
    for (size_t i = 0; i < rd.n_entries; i++) h_log_push(nd, &rd.entries[i]);
    for (size_t i = 0; i < rd.n_msgs; i++) h_queue_msg(c, &rd.msgs[i]);
    for (size_t i = 0; i < rd.n_committed; i++) {
        const struct raft_entry *e = &rd.committed[i];
        cr_assert_eq(e->index, nd->applied + 1, "node %d applies %llu after %llu", id,
                     (unsigned long long)e->index, (unsigned long long)nd->applied);
        nd->applied = e->index;
        if (e->index < H_APPLIED) {
            nd->applied_term[e->index] = e->term;
            nd->applied_len[e->index] = e->len;
        }
    }
    for (size_t i = 0; i < rd.n_reads && nd->n_reads < 256; i++)
        nd->reads[nd->n_reads++] = rd.reads[i];
    for (size_t i = 0; i < rd.n_props && nd->n_props < 256; i++)
        nd->props[nd->n_props++] = rd.props[i];
    raft_advance(nd->r);
    return true;
}

static inline void h_process_all(struct h_cluster *c)
{
    bool any = true;
    while (any) {
        any = false;
        for (int i = 1; i <= c->n; i++) any |= h_process(c, i);
    }
}

/* Deliver the oldest queued message; false when the queue is empty. */
static inline bool h_step_one(struct h_cluster *c)
{
    if (c->qn == 0) return false;
    struct raft_msg m = c->q[0];
    memmove(c->q, c->q + 1, (c->qn - 1) * sizeof(*c->q));
    c->qn--;
    if (!c->cut[m.from][m.to] && c->nodes[m.to].up) {
        raft_step(c->nodes[m.to].r, &m);
        c->delivered++;
        if (m.type < RAFT_MSG__COUNT) {
            c->sent[m.type]++;
            c->rejects[m.type] += m.reject;
        }
    }
    h_msg_free(&m);
    return true;
}

/* Deliver queued messages (and everything they cause) until quiet. */
static inline void h_settle(struct h_cluster *c)
{
    for (int guard = 0; guard < 100000; guard++) {
        h_process_all(c);
        if (!h_step_one(c)) return;
    }
    cr_assert_fail("cluster did not settle");
}

static inline void h_drop_queue(struct h_cluster *c)
{
    for (size_t i = 0; i < c->qn; i++) h_msg_free(&c->q[i]);
    c->qn = 0;
}

static inline void h_start(struct h_cluster *c, int id, raft_index applied_override)
{
    struct h_node *nd = &c->nodes[id];
    struct raft_persisted p = {.hs = nd->hs, .snapshot = nd->snap, .entries = nd->log,
                               .n_entries = nd->n_log, .initial = c->conf,
                               .applied = applied_override};
    cr_assert_eq(raft_new(&nd->cfg, &p, &nd->r), RAFT_OK, "raft_new node %d", id);
    nd->up = true;
    nd->applied = applied_override > nd->snap.index ? applied_override : nd->snap.index;
}

static inline void h_init(struct h_cluster *c, int n_voters, int n_learners, uint64_t seed)
{
    memset(c, 0, sizeof(*c));
    c->n = n_voters + n_learners;
    for (int i = 1; i <= n_voters; i++) c->conf.voters[c->conf.n_voters++] = (raft_id)i;
    for (int i = n_voters + 1; i <= c->n; i++) c->conf.learners[c->conf.n_learners++] = (raft_id)i;
    for (int i = 1; i <= c->n; i++)
        raft_config_default(&c->nodes[i].cfg, (raft_id)i, seed + (uint64_t)i);
}

/* Start every node of the cluster (after adjusting nodes[i].cfg if needed). */
static inline void h_boot(struct h_cluster *c)
{
    for (int i = 1; i <= c->n; i++) h_start(c, i, 0);
}

static inline void h_crash(struct h_cluster *c, int id)
{
    raft_free(c->nodes[id].r);
    c->nodes[id].r = NULL;
    c->nodes[id].up = false;
}

static inline void h_restart(struct h_cluster *c, int id)
{
    if (c->nodes[id].up) h_crash(c, id);
    h_start(c, id, c->nodes[id].applied);
}

static inline void h_free(struct h_cluster *c)
{
    h_drop_queue(c);
    free(c->q);
    for (int i = 1; i < H_NODES; i++) {
        if (c->nodes[i].up) raft_free(c->nodes[i].r);
        h_log_truncate(&c->nodes[i], 0);
        free(c->nodes[i].log);
    }
}

static inline void h_tick(struct h_cluster *c, int id)
{
    if (c->nodes[id].up) raft_tick(c->nodes[id].r);
}

static inline void h_tick_all(struct h_cluster *c, int ticks)
{
    for (int t = 0; t < ticks; t++) {
        for (int i = 1; i <= c->n; i++) h_tick(c, i);
        h_settle(c);
    }
}

static inline struct raft_status h_status(struct h_cluster *c, int id)
{
    struct raft_status st;
    raft_status(c->nodes[id].r, &st);
    return st;
}

static inline enum raft_role h_role(struct h_cluster *c, int id) { return h_status(c, id).role; }

/* Only node `id` ticks until it wins an election (others stay quiet). */
static inline void h_elect(struct h_cluster *c, int id)
{
    for (int t = 0; t < 200 && h_role(c, id) != RAFT_LEADER; t++) {
        h_tick(c, id);
        h_settle(c);
    }
    cr_assert_eq(h_role(c, id), RAFT_LEADER, "node %d did not become leader", id);
}

/* Replace node id's persisted log with entries of the given terms (index 1..n). */
static inline void h_set_log(struct h_cluster *c, int id, const raft_term *terms, size_t n,
                             raft_term hs_term)
{
    struct h_node *nd = &c->nodes[id];
    h_log_truncate(nd, 0);
    for (size_t i = 0; i < n; i++) {
        struct raft_entry e = {.term = terms[i], .index = i + 1};
        h_log_push(nd, &e);
    }
    nd->hs.term = hs_term;
}

static inline raft_term h_log_term(struct h_cluster *c, int id, raft_index i)
{
    struct h_node *nd = &c->nodes[id];
    for (size_t k = 0; k < nd->n_log; k++)
        if (nd->log[k].index == i) return nd->log[k].term;
    return 0;
}

static inline void h_isolate(struct h_cluster *c, int id, bool cut)
{
    for (int i = 1; i < H_NODES; i++) {
        if (i == id) continue;
        c->cut[id][i] = cut;
        c->cut[i][id] = cut;
    }
}

static inline int h_leader_count(struct h_cluster *c, raft_term term)
{
    int n = 0;
    for (int i = 1; i <= c->n; i++)
        if (c->nodes[i].up && h_role(c, i) == RAFT_LEADER && h_status(c, i).term == term) n++;
    return n;
}

static inline raft_index h_propose(struct h_cluster *c, int id, const char *s)
{
    raft_index idx = 0;
    raft_term t = 0;
    int rc = raft_propose(c->nodes[id].r, 0, s, strlen(s), &idx, &t);
    cr_assert_eq(rc, RAFT_OK, "propose on %d: %s", id, raft_strerror(rc));
    return idx;
}

#endif
