/*
 * sim_net.c - raftsim's simulated network: an ordered pool of in-flight messages.
 *
 * A message handed to the transport is deep-copied (entries and, for RAFT_MSG_SNAPSHOT,
 * the sender's snapshot data) into the pool. Delivering the head of the pool is FIFO;
 * delivering another element is a reorder; delaying moves one to the back. A message is
 * lost when the pool is full, when the link from->to is blocked at delivery time, or when
 * the receiver is down. Snapshot transfers report their outcome to the sender's core
 * (raft_report_snapshot), as a real transport would.
 *
 * Every message travels as bytes: it is encoded with src/raft_wire.c and decoded again,
 * and the decoded copy must equal the original field by field (the codec is tested with
 * real traffic from every seed).
 *
 * Invariant: every packet in s->net owns its entries; nothing else points into them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raft_wire.h"
#include "rc.h"
#include "sim.h"

void sim_entry_copy(struct raft_entry *dst, const struct raft_entry *src)
{
    *dst = *src;
    dst->data = NULL;
    if (src->len > 0) {
        dst->data = malloc(src->len);
        if (!dst->data)
            abort();
        memcpy(dst->data, src->data, src->len);
    }
}

static void packet_free(struct sim_packet *p)
{
    for (uint32_t i = 0; i < p->m.n_entries; i++)
        free(p->m.entries[i].data);
    free(p->m.entries);
    p->m.entries = NULL;
    p->m.n_entries = 0;
}

static void packet_copy(struct sim_packet *dst, const struct sim_packet *src)
{
    *dst = *src;
    dst->m.entries = NULL;
    if (src->m.n_entries > 0) {
        dst->m.entries = calloc(src->m.n_entries, sizeof(struct raft_entry));
        if (!dst->m.entries)
            abort();
        for (uint32_t i = 0; i < src->m.n_entries; i++)
            sim_entry_copy(&dst->m.entries[i], &src->m.entries[i]);
    }
}

static void remove_at(struct sim *s, size_t i, struct sim_packet *out)
{
    struct sim_packet *p = s->net[i];
    *out = *p;
    free(p);
    memmove(&s->net[i], &s->net[i + 1], (s->n_net - i - 1) * sizeof(s->net[0]));
    s->n_net--;
}

static bool valid_id(const struct sim *s, raft_id id)
{
    return id >= 1 && id <= (raft_id)s->n_ids;
}

static void report_snapshot(struct sim *s, const struct sim_packet *p, bool ok)
{
    if (p->m.type != RAFT_MSG_SNAPSHOT || !valid_id(s, p->m.from))
        return;
    struct sim_member *from = &s->mem[p->m.from];
    if (from->running)
        raft_report_snapshot(from->r, p->m.to, ok);
}

static void push(struct sim *s, struct sim_packet *p)
{
    if (s->n_net == SIM_NET_MAX) {
        struct sim_packet old;
        remove_at(s, 0, &old);
        report_snapshot(s, &old, false);
        packet_free(&old);
    }
    struct sim_packet *q = malloc(sizeof(*q));
    if (!q)
        abort();
    *q = *p;
    s->net[s->n_net++] = q;
}

static bool same_msg(const struct raft_msg *a, const struct raft_msg *b)
{
    const struct raft_snapshot_meta *x = &a->snapshot, *y = &b->snapshot;
    if (a->type != b->type || a->from != b->from || a->to != b->to || a->term != b->term ||
        a->log_term != b->log_term || a->index != b->index || a->commit != b->commit ||
        a->reject != b->reject || a->reject_hint != b->reject_hint || a->err != b->err ||
        a->ctx != b->ctx || a->n_entries != b->n_entries || x->index != y->index ||
        x->term != y->term || x->conf.n_voters != y->conf.n_voters ||
        x->conf.n_learners != y->conf.n_learners)
        return false;
    if (memcmp(x->conf.voters, y->conf.voters, x->conf.n_voters * sizeof(raft_id)) ||
        memcmp(x->conf.learners, y->conf.learners, x->conf.n_learners * sizeof(raft_id)))
        return false;
    for (uint32_t i = 0; i < a->n_entries; i++) {
        const struct raft_entry *e = &a->entries[i], *f = &b->entries[i];
        if (e->term != f->term || e->index != f->index || e->type != f->type ||
            e->len != f->len || (e->len && memcmp(e->data, f->data, e->len)))
            return false;
    }
    return true;
}

/* Encode m, decode the bytes into p (deep copy), and check nothing changed. */
static bool through_wire(struct sim *s, const struct raft_msg *m, struct sim_packet *p)
{
    static uint8_t small[1 << 16];
    size_t need = raft_wire_msg_size(m), len = 0;
    uint8_t *buf = need <= sizeof(small) ? small : malloc(need);
    struct raft_msg dec;
    uint32_t group = 0;
    int rc = buf ? raft_wire_msg_encode((uint32_t)s->seed, m, buf, need, &len) : RC_NOMEM;
    if (rc == RC_OK)
        rc = raft_wire_msg_decode(buf, len, NULL, &group, &dec);
    if (buf != small)
        free(buf);
    if (rc != RC_OK || group != (uint32_t)s->seed || !same_msg(m, &dec)) {
        sim_fail(s, "wire codec: %s %llu->%llu did not survive encode/decode (rc %d)",
                 raft_msg_type_name(m->type), (unsigned long long)m->from,
                 (unsigned long long)m->to, rc);
        if (rc == RC_OK)
            raft_wire_msg_free(&dec);
        return false;
    }
    struct sim_packet tmp = {.m = dec};
    packet_copy(p, &tmp);
    raft_wire_msg_free(&dec);
    return true;
}

void sim_net_send(struct sim *s, const struct raft_msg *m)
{
    struct sim_packet p;
    if (!through_wire(s, m, &p))
        return;
    if (m->type == RAFT_MSG_SNAPSHOT && valid_id(s, m->from)) {
        const struct sim_member *from = &s->mem[m->from];
        /* The transport streams the application's snapshot named by the message. */
        if (from->disk.snap.index == m->snapshot.index && m->snapshot.index > 0) {
            p.has_snap = true;
            p.snap_app = from->disk.snap_app;
        } else {
            sim_log(s, "net: snapshot %llu from %llu not on disk (have %llu): fail transfer",
                    (unsigned long long)m->snapshot.index, (unsigned long long)m->from,
                    (unsigned long long)from->disk.snap.index);
            report_snapshot(s, &p, false);
            packet_free(&p);
            return;
        }
    }
    push(s, &p);
}

static void stage(struct sim_member *mb, const struct sim_packet *p)
{
    uint32_t slot = mb->n_staged;
    for (uint32_t i = 0; i < mb->n_staged; i++)
        if (mb->staged[i].index == p->m.snapshot.index &&
            mb->staged[i].term == p->m.snapshot.term)
            slot = i;
    if (slot == SIM_STAGED_MAX) { /* forget the oldest */
        memmove(&mb->staged[0], &mb->staged[1], (SIM_STAGED_MAX - 1) * sizeof(mb->staged[0]));
        slot = SIM_STAGED_MAX - 1;
    } else if (slot == mb->n_staged) {
        mb->n_staged++;
    }
    mb->staged[slot].index = p->m.snapshot.index;
    mb->staged[slot].term = p->m.snapshot.term;
    mb->staged[slot].app = p->snap_app;
}

static void log_msg(const struct sim *s, const char *what, const struct raft_msg *m)
{
    if (!s->verbose)
        return;
    sim_log(s, "%s %s %llu->%llu term=%llu log_term=%llu index=%llu commit=%llu n=%u%s "
            "ctx=%llu", what, raft_msg_type_name(m->type), (unsigned long long)m->from,
            (unsigned long long)m->to, (unsigned long long)m->term,
            (unsigned long long)m->log_term, (unsigned long long)m->index,
            (unsigned long long)m->commit, m->n_entries, m->reject ? " reject" : "",
            (unsigned long long)m->ctx);
}

void sim_net_deliver(struct sim *s, size_t i)
{
    struct sim_packet p;
    remove_at(s, i, &p);
    raft_id from = p.m.from, to = p.m.to;
    if (!valid_id(s, to) || !valid_id(s, from) || !s->mem[to].running) {
        log_msg(s, "lost(down)", &p.m);
        report_snapshot(s, &p, false);
    } else if (s->blocked[from][to]) {
        log_msg(s, "lost(partition)", &p.m);
        report_snapshot(s, &p, false);
    } else {
        log_msg(s, "deliver", &p.m);
        struct sim_member *mb = &s->mem[to];
        if (s->verbose) {
            struct raft_status st;
            raft_status(mb->r, &st);
            sim_log(s, "    node %llu was %s term %llu vote %llu last %llu commit %llu "
                    "applied %llu snap %llu", (unsigned long long)to, raft_role_name(st.role),
                    (unsigned long long)st.term, (unsigned long long)st.vote,
                    (unsigned long long)st.last_index, (unsigned long long)st.commit,
                    (unsigned long long)st.applied, (unsigned long long)st.snapshot.index);
        }
        if (p.has_snap)
            stage(mb, &p);
        raft_step(mb->r, &p.m);
        report_snapshot(s, &p, true);
    }
    packet_free(&p);
}

void sim_net_drop(struct sim *s, size_t i, const char *why)
{
    struct sim_packet p;
    remove_at(s, i, &p);
    log_msg(s, why, &p.m);
    report_snapshot(s, &p, false);
    packet_free(&p);
}

void sim_net_duplicate(struct sim *s, size_t i)
{
    struct sim_packet p;
    log_msg(s, "duplicate", &s->net[i]->m);
    packet_copy(&p, s->net[i]);
    push(s, &p);
}

void sim_net_delay(struct sim *s, size_t i)
{
    struct sim_packet *p = s->net[i];
    log_msg(s, "delay", &p->m);
    memmove(&s->net[i], &s->net[i + 1], (s->n_net - i - 1) * sizeof(s->net[0]));
    s->net[s->n_net - 1] = p;
}

void sim_net_free_all(struct sim *s)
{
    for (size_t i = 0; i < s->n_net; i++) {
        packet_free(s->net[i]);
        free(s->net[i]);
    }
    s->n_net = 0;
}
