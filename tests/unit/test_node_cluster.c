/*
 * test_node_cluster.c - the node core as a cluster member (node.h "cluster (issue 4)"):
 * bootstrap with addresses, the address book, membership changes in both groups (add a
 * learner that catches up through the snapshot stream, promote, remove a voter, remove the
 * leader), leader co-location, transfer, health, snapshot chunks (corruption refused),
 * a crash between staging and install, and the torn-tail rule for multi-voter groups.
 *
 * Up to five nodes in one process on in-memory engines; time is fake; the test is the
 * network: messages queue in send callbacks and are delivered by net_turn(). A
 * RAFT_MSG_SNAPSHOT is delivered the way the peer transport does it: the sender's
 * node_snap_src chunks are staged on the receiver, then the message is stepped, then the
 * sender is told the outcome (node_report_snapshot).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node.h"
#include "node_internal.h"
#include "node_log.h"
#include "node_done.h"
#include "rc.h"

#define MAXN 5
#define QMAX 200000
#define CHUNK_CAP 2048 /* small chunks: a snapshot takes several */

struct qmsg {
    int from; /* slot */
    uint32_t group;
    struct raft_msg m;
};

struct tnode {
    struct pst_engine *e;
    struct node *n;
    bool cut;    /* neither sends nor receives */
    bool failed; /* node_run failed: the test treats it as crashed */
};

struct net {
    struct tnode t[MAXN];
    int count;
    struct qmsg *q;
    size_t nq;
    uint64_t snapshot_entries;
    /* snapshot streaming */
    int streams[NODE_GROUPS];  /* streams completed and stepped */
    int chunks;                /* chunks staged successfully */
    int corrupt_chunks;        /* refused chunks */
    int corrupt_next;          /* flip a byte in the next N streams' second chunk */
    int reopen_slot;           /* restart this slot right after it installed (-1: none) */
    bool mute_data[MAXN];      /* drop this slot's outgoing data-group messages */
    bool fail_streams;         /* snapshot streams fail before their first chunk */
    int reopens;
};

struct port {
    struct net *net;
    int slot;
};
static struct port ports[MAXN];
static uint64_t now_ms = 5000000;

static void on_send(void *ud, uint32_t group, const struct raft_msg *m)
{
    struct port *p = ud;
    struct net *net = p->net;
    cr_assert_lt(net->nq, QMAX);
    struct qmsg *q = &net->q[net->nq++];
    q->from = p->slot;
    q->group = group;
    q->m = *m;
    if (m->n_entries) {
        q->m.entries = calloc(m->n_entries, sizeof *m->entries);
        for (uint32_t i = 0; i < m->n_entries; i++) {
            q->m.entries[i] = m->entries[i];
            if (m->entries[i].len) {
                q->m.entries[i].data = malloc(m->entries[i].len);
                memcpy(q->m.entries[i].data, m->entries[i].data, m->entries[i].len);
            }
        }
    }
}

static void qmsg_free(struct qmsg *q)
{
    for (uint32_t i = 0; i < q->m.n_entries; i++)
        free(q->m.entries[i].data);
    free(q->m.entries);
}

static void member_addr(raft_id id, struct node_member *m)
{
    memset(m, 0, sizeof *m);
    m->id = id;
    snprintf(m->addr, sizeof m->addr, "127.0.0.1:%d", 7000 + (int)id);
    snprintf(m->cluster_addr, sizeof m->cluster_addr, "127.0.0.1:%d", 17000 + (int)id);
}

static void node_cfg(struct net *net, raft_id id, struct node_config *cfg)
{
    node_config_default(cfg, id);
    cfg->request_timeout_ms = 20000;
    cfg->snapshot_entries = net->snapshot_entries;
}

static void net_open_slot(struct net *net, int slot, const struct raft_conf *initial)
{
    struct node_config cfg;
    node_cfg(net, (raft_id)(slot + 1), &cfg);
    if (initial)
        cfg.initial = *initial;
    char *err = NULL;
    int rc = node_open(net->t[slot].e, &cfg, now_ms, &net->t[slot].n, &err);
    cr_assert_eq(rc, RC_OK, "node_open %d: %s", slot + 1, err ? err : "?");
    free(err);
    ports[slot] = (struct port){net, slot};
    node_set_transport(net->t[slot].n, on_send, &ports[slot]);
    net->t[slot].failed = false;
}

/* count nodes, the first `voters` bootstrapped together; the rest are empty joiners. */
static void net_open(struct net *net, int count, int voters, uint64_t snapshot_entries)
{
    memset(net, 0, sizeof *net);
    net->reopen_slot = -1;
    net->count = count;
    net->snapshot_entries = snapshot_entries;
    net->q = calloc(QMAX, sizeof *net->q);
    struct node_bootstrap b = {.n_members = (uint32_t)voters};
    struct raft_conf initial = {.n_voters = (uint32_t)voters};
    for (int i = 0; i < voters; i++) {
        member_addr((raft_id)(i + 1), &b.members[i]);
        initial.voters[i] = (raft_id)(i + 1);
    }
    for (int i = 0; i < count; i++) {
        cr_assert_eq(pst_open_mem(&net->t[i].e), RC_OK);
        net_open_slot(net, i, i < voters ? NULL : &initial);
        if (i < voters)
            cr_assert_eq(node_bootstrap(net->t[i].n, &b), RC_OK);
    }
}

static void net_close(struct net *net)
{
    for (int i = 0; i < net->count; i++) {
        node_close(net->t[i].n);
        pst_close(net->t[i].e);
    }
    for (size_t i = 0; i < net->nq; i++)
        qmsg_free(&net->q[i]);
    free(net->q);
}

static int slot_of(raft_id id) { return (int)id - 1; }

static void net_reopen_joiner(struct net *net, int slot)
{
    node_close(net->t[slot].n);
    net->t[slot].n = NULL;
    struct raft_conf initial = {.n_voters = 3, .voters = {1, 2, 3}};
    net_open_slot(net, slot, &initial);
    net->reopens++;
}

static bool up(const struct net *net, int slot)
{
    return slot >= 0 && slot < net->count && net->t[slot].n && !net->t[slot].cut &&
           !net->t[slot].failed;
}

/* The peer transport's job for a RAFT_MSG_SNAPSHOT: stream, stage, step, report. */
static void stream_snapshot(struct net *net, const struct qmsg *q, int to)
{
    struct node *src_node = net->t[q->from].n, *dst = net->t[to].n;
    struct node_snap_src *src = NULL;
    cr_assert_eq(node_snap_src_open(src_node, q->group, &src), RC_OK);
    cr_assert_eq(node_snap_stage_begin(dst, q->group, q->m.from, &q->m.snapshot), RC_OK);
    uint8_t *buf = malloc(CHUNK_CAP);
    bool done = false, ok = true;
    int seq = 0;
    bool corrupt = net->corrupt_next > 0;
    while (!done && ok) {
        size_t len = 0;
        cr_assert_eq(node_snap_src_next(src, buf, CHUNK_CAP, &len, &done), RC_OK);
        if (corrupt && (seq == 1 || done)) {
            buf[len / 2] ^= 0x10;
            corrupt = false;
            net->corrupt_next--;
            cr_assert_eq(node_snap_stage_chunk(dst, q->group, buf, len), RC_CORRUPT);
            net->corrupt_chunks++;
            ok = false;
            break;
        }
        cr_assert_eq(node_snap_stage_chunk(dst, q->group, buf, len), RC_OK);
        net->chunks++;
        seq++;
    }
    free(buf);
    node_snap_src_close(src);
    if (ok) {
        cr_assert_eq(node_snap_stage_end(dst, q->group), RC_OK);
        cr_assert_eq(node_step(dst, q->group, &q->m), RC_OK);
        /* Until node_run installs it, a new stream must wait and an abort is ignored. */
        cr_assert_eq(node_snap_stage_begin(dst, q->group, q->m.from, &q->m.snapshot),
                     RC_TRYAGAIN);
        node_snap_stage_abort(dst, q->group);
        net->streams[q->group]++;
        if (net->reopen_slot == to) { /* install now, then restart before catching up */
            while (node_has_work(dst))
                cr_assert_eq(node_run(dst, now_ms), RC_OK);
            net_reopen_joiner(net, to);
        }
    } else {
        cr_assert_eq(node_snap_stage_end(dst, q->group), RC_BADARG, "staging survived");
        cr_assert_eq(node_step(dst, q->group, &q->m), RC_BADARG,
                     "snapshot stepped without staged data");
    }
    node_report_snapshot(src_node, q->group, q->m.to, ok);
}

static void run_node(struct net *net, int i)
{
    for (int guard = 0; up(net, i) && node_has_work(net->t[i].n); guard++) {
        cr_assert_lt(guard, 100);
        if (node_run(net->t[i].n, now_ms) != RC_OK)
            net->t[i].failed = true;
    }
}

static void deliver(struct net *net)
{
    size_t nq = net->nq;
    struct qmsg *batch = malloc(nq * sizeof *batch + 1);
    memcpy(batch, net->q, nq * sizeof *batch);
    net->nq = 0;
    for (size_t i = 0; i < nq; i++) {
        int to = slot_of(batch[i].m.to);
        bool muted = batch[i].group == NODE_GROUP_DATA && net->mute_data[batch[i].from];
        if (up(net, to) && up(net, batch[i].from) && !muted) {
            if (batch[i].m.type == RAFT_MSG_SNAPSHOT && net->fail_streams)
                node_report_snapshot(net->t[batch[i].from].n, batch[i].group,
                                     batch[i].m.to, false);
            else if (batch[i].m.type == RAFT_MSG_SNAPSHOT)
                stream_snapshot(net, &batch[i], to);
            else
                node_step(net->t[to].n, batch[i].group, &batch[i].m);
        }
        qmsg_free(&batch[i]);
    }
    free(batch);
}

static void net_turn(struct net *net, uint64_t step_ms)
{
    now_ms += step_ms;
    for (int i = 0; i < net->count; i++)
        if (up(net, i))
            node_tick(net->t[i].n, now_ms);
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < net->count; i++)
            run_node(net, i);
        if (net->nq == 0)
            break;
        deliver(net);
    }
}

/* Slot that leads both groups (as every up node agrees), or -1. */
static int both_leader(struct net *net)
{
    int l = -1;
    for (int i = 0; i < net->count; i++) {
        if (!up(net, i))
            continue;
        struct raft_status m, d;
        node_raft_status(net->t[i].n, NODE_GROUP_META, &m);
        node_raft_status(net->t[i].n, NODE_GROUP_DATA, &d);
        if (m.role == RAFT_LEADER && d.role == RAFT_LEADER)
            l = i;
    }
    if (l < 0)
        return -1;
    for (int i = 0; i < net->count; i++) {
        if (!up(net, i))
            continue;
        struct raft_conf c;
        node_applied_conf(net->t[i].n, NODE_GROUP_META, &c);
        bool member = false;
        for (uint32_t k = 0; k < c.n_voters + c.n_learners; k++)
            member = member || (k < c.n_voters ? c.voters[k] : c.learners[k - c.n_voters]) ==
                                   (raft_id)(i + 1);
        if (member && (node_leader(net->t[i].n, NODE_GROUP_META) != (raft_id)(l + 1) ||
                       node_leader(net->t[i].n, NODE_GROUP_DATA) != (raft_id)(l + 1)))
            return -1;
    }
    return l;
}

static int wait_both_leader(struct net *net)
{
    int l = -1;
    for (int i = 0; i < 600 && (l = both_leader(net)) < 0; i++)
        net_turn(net, 50);
    cr_assert_geq(l, 0, "no node leads both groups");
    net_turn(net, 50);
    return l;
}

static void set_key(struct net *net, int slot, const char *k, const char *v)
{
    char *argv[] = {"SET", (char *)k, (char *)v};
    size_t argvlen[] = {3, strlen(k), strlen(v)};
    struct done d = {0};
    int rc;
    cr_assert_neq(node_write(net->t[slot].n, NODE_GROUP_DATA, NULL, 3, argv, argvlen, now_ms,
                             on_done, &d, &rc), 0, "write refused: %d", rc);
    for (int i = 0; i < 200 && d.calls == 0; i++)
        net_turn(net, 20);
    cr_assert_eq(d.calls, 1);
    cr_assert_eq(d.rc, RC_OK, "write %s: rc %d", k, d.rc);
    done_clear(&d);
}

static void write_many(struct net *net, int slot, int base, int count)
{
    for (int i = 0; i < count; i++) {
        char k[32], v[32];
        snprintf(k, sizeof k, "/k%d", base + i);
        snprintf(v, sizeof v, "value-%d", base + i);
        set_key(net, slot, k, v);
    }
}

static bool has_value(struct node *n, const char *k, const char *v)
{
    struct ns_kv kv;
    if (ns_get(node_ns(n, NODE_GROUP_DATA), k, strlen(k), &kv) != RC_OK)
        return false;
    bool eq = kv.vlen == strlen(v) && memcmp(kv.value, v, kv.vlen) == 0;
    ns_kv_clear(&kv);
    return eq;
}

static void wait_value(struct net *net, int slot, const char *k, const char *v)
{
    for (int i = 0; i < 400 && !has_value(net->t[slot].n, k, v); i++)
        net_turn(net, 50);
    cr_assert(has_value(net->t[slot].n, k, v), "node %d lacks %s=%s", slot + 1, k, v);
}

/* Run a membership change on slot; returns the rc; *msg gets the reply text (static). */
static int conf_change(struct net *net, int slot, uint8_t type, raft_id id, bool with_addr,
                       const char **msg)
{
    struct node_member m;
    member_addr(id, &m);
    struct done d = {0};
    int rc;
    uint64_t h = node_conf_change(net->t[slot].n, type, id, with_addr ? m.addr : NULL,
                                  with_addr ? m.cluster_addr : NULL, now_ms, on_done, &d, &rc);
    cr_assert_neq(h, 0, "conf change refused at once: %d", rc);
    for (int i = 0; i < 400 && d.calls == 0; i++)
        net_turn(net, 50);
    cr_assert_eq(d.calls, 1, "conf change never completed");
    static char text[512];
    text[0] = 0;
    if (d.reply && d.reply->str)
        snprintf(text, sizeof text, "%s", d.reply->str);
    if (msg)
        *msg = text;
    rc = d.rc;
    done_clear(&d);
    return rc;
}

static bool conf_has(const struct raft_conf *c, raft_id id, bool *learner)
{
    for (uint32_t k = 0; k < c->n_voters; k++)
        if (c->voters[k] == id) {
            *learner = false;
            return true;
        }
    for (uint32_t k = 0; k < c->n_learners; k++)
        if (c->learners[k] == id) {
            *learner = true;
            return true;
        }
    return false;
}

/* Every up node (except skip) has applied id as voter/learner (state 1/2) or absent (0)
 * in both groups. */
static void expect_member_everywhere(struct net *net, raft_id id, int state, int skip)
{
    for (int i = 0; i < net->count; i++) {
        if (!up(net, i) || i == skip)
            continue;
        for (uint32_t g = 0; g < NODE_GROUPS; g++) {
            bool learner = false, found = false;
            for (int t = 0; t < 400; t++) {
                struct raft_conf c;
                node_applied_conf(net->t[i].n, g, &c);
                found = conf_has(&c, id, &learner);
                if ((state == 0 && !found) || (state == 1 && found && !learner) ||
                    (state == 2 && found && learner))
                    break;
                net_turn(net, 50);
            }
            cr_assert_eq(state == 0 ? !found : (found && learner == (state == 2)), true,
                         "node %d group %u: member %llu not in state %d", i + 1, g,
                         (unsigned long long)id, state);
        }
    }
}

/* The address book records ('g' 0 'M' ...) of an engine, concatenated (key, value). */
static size_t book_bytes(struct pst_engine *e, uint8_t *out, size_t cap)
{
    const uint8_t lo[] = {'g', 0, 0, 0, 0, 'M'}, hi[] = {'g', 0, 0, 0, 0, 'N'};
    struct pst_iter *it = pst_iter_new(e, NULL, lo, sizeof lo, hi, sizeof hi);
    size_t off = 0;
    for (; pst_iter_valid(it); pst_iter_next(it)) {
        size_t klen, vlen;
        const void *k = pst_iter_key(it, &klen), *v = pst_iter_value(it, &vlen);
        cr_assert_leq(off + klen + vlen, cap);
        memcpy(out + off, k, klen);
        memcpy(out + off + klen, v, vlen);
        off += klen + vlen;
    }
    pst_iter_free(it);
    return off;
}

static void expect_addresses(struct node *n, raft_id id, bool learner)
{
    struct node_member want, got;
    member_addr(id, &want);
    cr_assert_eq(node_member(n, id, &got), RC_OK, "no address for %llu",
                 (unsigned long long)id);
    cr_assert_str_eq(got.addr, want.addr);
    cr_assert_str_eq(got.cluster_addr, want.cluster_addr);
    cr_assert_eq(got.learner, learner);
}

/* ------------------------------------------------------------------ bootstrap, members */

Test(node_cluster, bootstrap_three_one_leader_leads_both_groups_members_have_addresses)
{
    struct net net;
    net_open(&net, 3, 3, 0);
    struct node_bootstrap again = {.n_members = 1};
    member_addr(1, &again.members[0]);
    cr_assert_eq(node_bootstrap(net.t[0].n, &again), RC_EXISTS);
    int l = wait_both_leader(&net);
    for (int i = 0; i < 3; i++) {
        struct node_member m[4];
        size_t count = 0;
        cr_assert_eq(node_members(net.t[i].n, m, 4, &count), RC_OK);
        cr_assert_eq(count, 3);
        for (raft_id id = 1; id <= 3; id++)
            expect_addresses(net.t[i].n, id, false);
        cr_assert_eq(node_members(net.t[i].n, m, 2, &count), RC_TOOBIG);
        cr_assert_eq(count, 3);
        char why[128];
        cr_assert(node_healthy(net.t[i].n, NODE_GROUP_DATA, why, sizeof why), "%s", why);
    }
    set_key(&net, (l + 1) % 3, "/a", "1"); /* forwarded from a follower */
    for (int i = 0; i < 3; i++)
        wait_value(&net, i, "/a", "1");
    /* A restart needs no flags: configuration and addresses come from the store. */
    int f = (l + 1) % 3;
    node_close(net.t[f].n);
    net_open_slot(&net, f, NULL);
    expect_addresses(net.t[f].n, 1, false);
    expect_addresses(net.t[f].n, 3, false);
    struct raft_conf c;
    node_applied_conf(net.t[f].n, NODE_GROUP_DATA, &c);
    cr_assert_eq(c.n_voters, 3);
    cr_assert_eq(node_bootstrap(net.t[f].n, &again), RC_EXISTS);
    set_key(&net, l, "/b", "2");
    wait_value(&net, f, "/b", "2");
    net_close(&net);
}

Test(node_cluster, bootstrap_rejects_a_member_list_without_this_node_or_with_duplicates)
{
    struct pst_engine *e;
    cr_assert_eq(pst_open_mem(&e), RC_OK);
    struct node_config cfg;
    node_config_default(&cfg, 9);
    struct node *n;
    char *err = NULL;
    cr_assert_eq(node_open(e, &cfg, now_ms, &n, &err), RC_OK);
    struct node_bootstrap b = {.n_members = 2};
    member_addr(1, &b.members[0]);
    member_addr(2, &b.members[1]);
    cr_assert_eq(node_bootstrap(n, &b), RC_BADARG, "a joining node must not bootstrap");
    member_addr(9, &b.members[1]);
    b.members[0].id = 9;
    cr_assert_eq(node_bootstrap(n, &b), RC_BADARG, "duplicate id accepted");
    /* single node with its own addresses */
    struct node_bootstrap one = {.n_members = 0};
    member_addr(9, &one.self);
    one.self.id = 0;
    cr_assert_eq(node_bootstrap(n, &one), RC_OK);
    struct node_member m;
    cr_assert_eq(node_member(n, 9, &m), RC_OK);
    cr_assert_str_eq(m.addr, "127.0.0.1:7009");
    node_close(n);
    pst_close(e);
}

/* ------------------------------------------------------------------ membership changes */

Test(node_cluster, learner_catches_up_through_snapshot_stream_then_promote_and_remove)
{
    struct net net;
    net_open(&net, 4, 3, 20); /* node 4: empty store, joins later */
    int l = wait_both_leader(&net);
    write_many(&net, l, 0, 60); /* the log is compacted past index 1 several times */
    static char big[20001];
    for (size_t i = 0; i < sizeof big - 1; i++)
        big[i] = (char)('a' + (i * 7) % 26);
    set_key(&net, l, "/big", big); /* ten chunks' worth: split over chunks */
    write_many(&net, l, 60, 5);
    struct raft_status st;
    node_raft_status(net.t[l].n, NODE_GROUP_DATA, &st);
    cr_assert_gt(st.snapshot.index, 20, "leader never compacted");
    const char *msg;
    cr_assert_eq(conf_change(&net, l, RAFT_CC_ADD_LEARNER, 4, true, &msg), RC_OK, "%s", msg);
    cr_assert_str_eq(msg, "OK");
    expect_member_everywhere(&net, 4, 2, -1);
    wait_value(&net, 3, "/k64", "value-64");
    cr_assert(has_value(net.t[3].n, "/big", big), "a value split over chunks was damaged");
    cr_assert_geq(net.streams[NODE_GROUP_META], 1, "meta group not sent by snapshot");
    cr_assert_geq(net.streams[NODE_GROUP_DATA], 1, "data group not sent by snapshot");
    cr_assert_gt(net.chunks, 12, "60 keys and 20 KB in 2 KiB chunks: more than 12 chunks");
    for (int i = 0; i < 10; i++)
        cr_assert(has_value(net.t[3].n, "/k7", "value-7"));
    for (int i = 0; i < 4; i++) {
        expect_addresses(net.t[i].n, 4, true);
        expect_addresses(net.t[i].n, 1, false); /* the learner learnt the others too */
    }
    char why[128];
    cr_assert(node_healthy(net.t[3].n, NODE_GROUP_DATA, why, sizeof why), "%s", why);
    /* The learner keeps up through the log now. */
    set_key(&net, l, "/after", "x");
    wait_value(&net, 3, "/after", "x");
    /* Promote: both groups make it a voter; every node agrees. */
    cr_assert_eq(conf_change(&net, l, RAFT_CC_ADD_VOTER, 4, false, &msg), RC_OK, "%s", msg);
    expect_member_everywhere(&net, 4, 1, -1);
    expect_addresses(net.t[0].n, 4, false);
    /* Remove a follower voter (not the leader, not 4). */
    int victim = l == 0 ? 1 : 0;
    l = wait_both_leader(&net);
    if (victim == l)
        victim = 2 - (l == 2);
    cr_assert_eq(conf_change(&net, l, RAFT_CC_REMOVE, (raft_id)(victim + 1), false, &msg),
                 RC_OK, "%s", msg);
    expect_member_everywhere(&net, (raft_id)(victim + 1), 0, victim);
    struct node_member m;
    cr_assert_eq(node_member(net.t[l].n, (raft_id)(victim + 1), &m), RC_NOTFOUND);
    size_t count;
    struct node_member all[8];
    cr_assert_eq(node_members(net.t[3].n, all, 8, &count), RC_OK);
    cr_assert_eq(count, 3);
    /* Every replica wrote the same address book bytes (deterministic apply). */
    static uint8_t ref[8192], other[8192];
    size_t rlen = book_bytes(net.t[l].e, ref, sizeof ref);
    cr_assert_gt(rlen, 0);
    for (int i = 0; i < 4; i++) {
        if (i == victim)
            continue;
        size_t olen = book_bytes(net.t[i].e, other, sizeof other);
        cr_assert(olen == rlen && memcmp(ref, other, rlen) == 0,
                  "address book of node %d differs from the leader's", i + 1);
    }
    /* The remaining three still commit (4 counts toward the quorum now). */
    net.t[victim].cut = true;
    set_key(&net, l, "/final", "y");
    wait_value(&net, 3, "/final", "y");
    net_close(&net);
}

Test(node_cluster, removing_the_leader_elects_another_and_it_stops_leading)
{
    struct net net;
    net_open(&net, 3, 3, 0);
    int l = wait_both_leader(&net);
    set_key(&net, l, "/before", "1");
    const char *msg;
    int rc = conf_change(&net, l, RAFT_CC_REMOVE, (raft_id)(l + 1), false, &msg);
    cr_assert_eq(rc, RC_OK, "rc %d: %s", rc, msg);
    int l2 = -1;
    for (int i = 0; i < 600; i++) {
        net_turn(&net, 50);
        l2 = both_leader(&net);
        if (l2 >= 0 && l2 != l)
            break;
    }
    cr_assert(l2 >= 0 && l2 != l, "no new leader of both groups");
    for (int t = 0; t < 100; t++)
        net_turn(&net, 50);
    struct raft_status m, d;
    node_raft_status(net.t[l].n, NODE_GROUP_META, &m);
    node_raft_status(net.t[l].n, NODE_GROUP_DATA, &d);
    cr_assert_neq(m.role, RAFT_LEADER, "removed node still leads meta");
    cr_assert_neq(d.role, RAFT_LEADER, "removed node still leads data");
    expect_member_everywhere(&net, (raft_id)(l + 1), 0, l);
    net.t[l].cut = true; /* gone for good: the two others carry on */
    set_key(&net, l2, "/after", "2");
    for (int i = 0; i < 3; i++)
        if (i != l)
            wait_value(&net, i, "/after", "2");
    net_close(&net);
}

Test(node_cluster, conf_change_errors_name_the_leader_and_say_why)
{
    struct net net;
    net_open(&net, 3, 3, 0);
    int l = wait_both_leader(&net);
    int f = (l + 1) % 3;
    const char *msg;
    cr_assert_eq(conf_change(&net, f, RAFT_CC_ADD_LEARNER, 4, true, &msg), RC_NOTLEADER);
    char want[96];
    snprintf(want, sizeof want, "leader is node %d at 127.0.0.1:%d", l + 1, 7001 + l);
    cr_assert(strstr(msg, want), "reply does not name the leader: %s", msg);
    cr_assert_eq(conf_change(&net, l, RAFT_CC_ADD_LEARNER, 2, true, &msg), RC_BADARG);
    cr_assert(strstr(msg, "already a member"), "%s", msg);
    cr_assert_eq(conf_change(&net, l, RAFT_CC_REMOVE, 7, false, &msg), RC_BADARG);
    cr_assert(strstr(msg, "not a member"), "%s", msg);
    cr_assert_eq(conf_change(&net, l, RAFT_CC_ADD_LEARNER, 5, false, &msg), RC_BADARG);
    /* Malformed arguments are refused at once. */
    int rc;
    struct done d = {0};
    char big[200];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    cr_assert_eq(node_conf_change(net.t[l].n, RAFT_CC_ADD_LEARNER, 5, big, big, now_ms,
                                  on_done, &d, &rc), 0);
    cr_assert_eq(rc, RC_BADARG, "addresses longer than a conf change ctx accepted");
    cr_assert_eq(node_conf_change(net.t[l].n, RAFT_CC_ADD_LEARNER, 0, "a:1", "a:2", now_ms,
                                  on_done, &d, &rc), 0);
    cr_assert_eq(node_conf_change(net.t[l].n, 9, 5, "a:1", "a:2", now_ms, on_done, &d, &rc),
                 0);
    /* Two changes at once: the second is told to try again, the first completes. */
    struct done d1 = {0}, d2 = {0};
    struct node_member m5, m6;
    member_addr(5, &m5);
    member_addr(6, &m6);
    cr_assert_neq(node_conf_change(net.t[l].n, RAFT_CC_ADD_LEARNER, 5, m5.addr,
                                   m5.cluster_addr, now_ms, on_done, &d1, &rc), 0);
    cr_assert_neq(node_conf_change(net.t[l].n, RAFT_CC_ADD_LEARNER, 6, m6.addr,
                                   m6.cluster_addr, now_ms, on_done, &d2, &rc), 0);
    for (int i = 0; i < 200 && (d1.calls == 0 || d2.calls == 0); i++)
        net_turn(&net, 50);
    cr_assert_eq(d2.rc, RC_TRYAGAIN, "second concurrent change: rc %d", d2.rc);
    cr_assert_eq(d1.rc, RC_OK, "first change: rc %d", d1.rc);
    cr_assert_eq(d.calls, 0);
    done_clear(&d1);
    done_clear(&d2);
    net_close(&net);
}

Test(node_cluster, data_group_catches_up_with_meta_after_the_leader_dies_in_between)
{
    struct net net;
    net_open(&net, 3, 3, 0);
    int l = wait_both_leader(&net);
    net.mute_data[l] = true; /* its data-group change will never leave it */
    struct done d = {0};
    struct node_member m4;
    member_addr(4, &m4);
    int rc;
    cr_assert_neq(node_conf_change(net.t[l].n, RAFT_CC_ADD_LEARNER, 4, m4.addr,
                                   m4.cluster_addr, now_ms, on_done, &d, &rc), 0);
    bool meta_applied = false;
    for (int i = 0; i < 100 && !meta_applied; i++) {
        net_turn(&net, 20);
        struct raft_conf c;
        node_applied_conf(net.t[(l + 1) % 3].n, NODE_GROUP_META, &c);
        meta_applied = c.n_learners == 1;
    }
    cr_assert(meta_applied, "the meta group never applied the change");
    cr_assert_eq(d.calls, 0, "completed before the data group had it");
    net.t[l].cut = true; /* the leader dies between the two groups */
    int l2 = -1;
    for (int i = 0; i < 600 && ((l2 = both_leader(&net)) < 0 || l2 == l); i++)
        net_turn(&net, 50);
    cr_assert(l2 >= 0 && l2 != l, "no new leader");
    expect_member_everywhere(&net, 4, 2, l); /* the new leader reconciled the data group */
    for (int i = 0; i < 3; i++)
        if (i != l)
            expect_addresses(net.t[i].n, 4, true);
    net.t[l].cut = false;
    net.mute_data[l] = false;
    expect_member_everywhere(&net, 4, 2, -1); /* and the old leader catches up */
    for (int i = 0; i < 400 && d.calls == 0; i++)
        net_turn(&net, 50);
    cr_assert_eq(d.calls, 1);
    cr_assert(d.rc == RC_OK || d.rc == RC_TIMEOUT, "rc %d", d.rc);
    done_clear(&d);
    net_close(&net);
}

/* ------------------------------------------------------------------ leadership */

Test(node_cluster, transfer_moves_both_groups_and_followers_are_refused)
{
    struct net net;
    net_open(&net, 3, 3, 0);
    int l = wait_both_leader(&net);
    int target = (l + 2) % 3;
    cr_assert_eq(node_transfer(net.t[(l + 1) % 3].n, (raft_id)(target + 1)), RC_NOTLEADER);
    cr_assert_eq(node_transfer(net.t[l].n, 42), RC_BADARG);
    cr_assert_eq(node_transfer(net.t[l].n, (raft_id)(target + 1)), RC_OK);
    int l2 = -1;
    for (int i = 0; i < 200 && (l2 = both_leader(&net)) != target; i++)
        net_turn(&net, 50);
    cr_assert_eq(l2, target, "leadership did not move to node %d", target + 1);
    set_key(&net, l, "/via-old-leader", "1"); /* forwarded to the new leader */
    wait_value(&net, target, "/via-old-leader", "1");
    net_close(&net);
}

Test(node_cluster, split_leadership_is_reunited_on_the_meta_leader)
{
    struct net net;
    net_open(&net, 3, 3, 0);
    int l = wait_both_leader(&net);
    int other = (l + 1) % 3;
    /* Move only the data group away (as if elections went differently). */
    struct group *g = &net.t[l].n->g[NODE_GROUP_DATA];
    cr_assert_eq(raft_transfer_leadership(g->raft, (raft_id)(other + 1)), RAFT_OK);
    bool split = false;
    for (int i = 0; i < 100 && !split; i++) {
        net_turn(&net, 20);
        split = node_leader(net.t[l].n, NODE_GROUP_DATA) == (raft_id)(other + 1);
    }
    cr_assert(split, "data leadership never moved");
    int l2 = -1;
    for (int i = 0; i < 400 && (l2 = both_leader(&net)) < 0; i++)
        net_turn(&net, 50);
    cr_assert_geq(l2, 0, "leaders of the two groups stay apart");
    net_close(&net);
}

Test(node_cluster, health_follows_contact_with_leader_and_quorum)
{
    struct net net;
    net_open(&net, 3, 3, 0);
    int l = wait_both_leader(&net);
    int f;
    char why[128];
    cr_assert(node_healthy(net.t[l].n, NODE_GROUP_DATA, why, sizeof why), "%s", why);
    f = (l + 1) % 3;
    struct raft_snapshot_meta sm = {.index = 99, .term = 9, .conf = {.n_voters = 1,
                                                                     .voters = {1}}};
    cr_assert_eq(node_snap_stage_begin(net.t[f].n, NODE_GROUP_DATA, (raft_id)(l + 1), &sm),
                 RC_OK);
    cr_assert_not(node_healthy(net.t[f].n, NODE_GROUP_DATA, why, sizeof why));
    cr_assert(strstr(why, "installing a snapshot"), "%s", why);
    cr_assert(node_healthy(net.t[f].n, NODE_GROUP_META, why, sizeof why), "%s", why);
    node_snap_stage_abort(net.t[f].n, NODE_GROUP_DATA);
    cr_assert(node_healthy(net.t[f].n, NODE_GROUP_DATA, why, sizeof why), "%s", why);
    net.t[l].cut = true;
    for (int i = 0; i < 30; i++) {
        now_ms += 100;
        node_tick(net.t[l].n, now_ms);
        net_turn(&net, 0);
    }
    cr_assert_not(node_healthy(net.t[l].n, NODE_GROUP_DATA, why, sizeof why));
    cr_assert(strstr(why, "leader in contact with only") || strstr(why, "no leader"), "%s",
              why);
    net.t[l].cut = false;
    f = (wait_both_leader(&net) + 1) % 3;
    net.t[f].cut = true;
    for (int i = 0; i < 30; i++) {
        now_ms += 100;
        node_tick(net.t[f].n, now_ms);
        net_turn(&net, 0);
    }
    cr_assert_not(node_healthy(net.t[f].n, NODE_GROUP_DATA, why, sizeof why));
    cr_assert(strstr(why, "no contact with the leader") || strstr(why, "no leader"), "%s",
              why);
    cr_assert_not(node_healthy(net.t[f].n, 7, why, sizeof why));
    net.t[f].cut = false;
    net_close(&net);
}

/* ------------------------------------------------------------------ snapshot streaming */

Test(node_cluster, corrupt_chunk_is_refused_and_a_clean_retry_succeeds)
{
    struct net net;
    net_open(&net, 4, 3, 10);
    int l = wait_both_leader(&net);
    write_many(&net, l, 0, 40);
    net.corrupt_next = 1;
    const char *msg;
    cr_assert_eq(conf_change(&net, l, RAFT_CC_ADD_LEARNER, 4, true, &msg), RC_OK, "%s", msg);
    wait_value(&net, 3, "/k39", "value-39");
    cr_assert_eq(net.corrupt_chunks, 1, "the corrupt chunk was not refused");
    cr_assert_geq(net.streams[NODE_GROUP_DATA], 1);
    net_close(&net);
}

/* A follower that fell behind the leader's compacted log catches up by a snapshot, and the
 * state streamed is the leader's current one, newer than the snapshot's index. A write the
 * follower forwarded meanwhile, appended by the leader at an index inside that gap, is in
 * the installed state but its entry is never applied on the follower (ns is already past
 * it). It must not be taken for "another entry won that index" and proposed again: that
 * applied it twice (version 2), which the nemesis suite saw as a non-linearizable history.
 * Its client hears OK or TIMEOUT (outcome unknown), and the key has version 1 everywhere. */
Test(node_cluster, write_inside_an_installed_snapshot_is_never_proposed_again)
{
    struct net net;
    net_open(&net, 3, 3, 20);
    int l = wait_both_leader(&net);
    int f = (l + 1) % 3;
    net.t[f].cut = true;
    write_many(&net, l, 0, 60); /* compacted past everything the follower has */
    struct raft_status st;
    node_raft_status(net.t[l].n, NODE_GROUP_DATA, &st);
    cr_assert_gt(st.snapshot.index, 20, "leader never compacted");
    net.fail_streams = true; /* the follower hears the leader, but no snapshot gets through */
    net.t[f].cut = false;
    for (int i = 0; i < 10; i++)
        net_turn(&net, 50);
    cr_assert_eq(node_leader(net.t[f].n, NODE_GROUP_DATA), (raft_id)(l + 1));
    char *argv[] = {"SET", "/dup", "once"};
    size_t argvlen[] = {3, 4, 4};
    struct done d = {0};
    int rc;
    cr_assert_neq(node_write(net.t[f].n, NODE_GROUP_DATA, NULL, 3, argv, argvlen, now_ms,
                             on_done, &d, &rc), 0, "write refused: %d", rc);
    for (int i = 0; i < 40 && !has_value(net.t[l].n, "/dup", "once"); i++)
        net_turn(&net, 20);
    cr_assert(has_value(net.t[l].n, "/dup", "once"), "the leader never applied the write");
    struct req *r = net.t[f].n->head;
    while (r && r->kind != REQ_WRITE)
        r = r->next;
    cr_assert(r && r->state == RS_APPENDED, "the follower does not know where it was appended");
    net.fail_streams = false; /* now the snapshot (newer than its index) is installed */
    for (int i = 0; i < 400 && d.calls == 0; i++)
        net_turn(&net, 50);
    for (int i = 0; i < 40; i++)
        net_turn(&net, 50);
    cr_assert_eq(d.calls, 1, "the write was never answered");
    cr_assert(d.rc == RC_OK || d.rc == RC_TIMEOUT, "rc %d: a definite failure", d.rc);
    cr_assert_geq(net.streams[NODE_GROUP_DATA], 1, "no snapshot was installed");
    for (int i = 0; i < 3; i++) {
        struct ns_kv kv;
        cr_assert_eq(ns_get(node_ns(net.t[i].n, NODE_GROUP_DATA), "/dup", 4, &kv), RC_OK);
        cr_assert_eq(kv.version, 1, "node %d: the write was applied %llu times", i + 1,
                     (unsigned long long)kv.version);
        ns_kv_clear(&kv);
    }
    done_clear(&d);
    net_close(&net);
}

Test(node_cluster, chunks_reject_flips_truncation_reorder_and_wrong_group)
{
    struct net net;
    net_open(&net, 1, 1, 0);
    int l = wait_both_leader(&net);
    write_many(&net, l, 0, 30);
    struct node *n = net.t[0].n;
    struct node_snap_src *src;
    cr_assert_eq(node_snap_src_open(n, NODE_GROUP_DATA, &src), RC_OK);
    uint8_t c0[CHUNK_CAP], c1[CHUNK_CAP];
    size_t l0, l1;
    bool done;
    cr_assert_eq(node_snap_src_next(src, c0, 16, &l0, &done), RC_BADARG);
    cr_assert_eq(node_snap_src_next(src, c0, 40, &l0, &done), RC_TOOBIG);
    cr_assert_eq(node_snap_src_next(src, c0, 300, &l0, &done), RC_OK);
    cr_assert_not(done);
    cr_assert_eq(node_snap_src_next(src, c1, 300, &l1, &done), RC_OK);
    struct raft_snapshot_meta m = {.index = 5, .term = 2, .conf = {.n_voters = 1, .voters = {1}}};
    /* every single-byte flip of the first chunk is refused */
    for (size_t i = 0; i < l0; i += 7) {
        cr_assert_eq(node_snap_stage_begin(n, NODE_GROUP_DATA, 2, &m), RC_OK);
        c0[i] ^= 0x01;
        cr_assert_eq(node_snap_stage_chunk(n, NODE_GROUP_DATA, c0, l0), RC_CORRUPT,
                     "flip at %zu accepted", i);
        c0[i] ^= 0x01;
        cr_assert_eq(node_snap_stage_chunk(n, NODE_GROUP_DATA, c0, l0), RC_BADARG,
                     "staging continued after a corrupt chunk");
    }
    cr_assert_eq(node_snap_stage_begin(n, NODE_GROUP_DATA, 2, &m), RC_OK);
    cr_assert_eq(node_snap_stage_chunk(n, NODE_GROUP_DATA, c0, l0 - 1), RC_CORRUPT);
    cr_assert_eq(node_snap_stage_begin(n, NODE_GROUP_DATA, 2, &m), RC_OK);
    cr_assert_eq(node_snap_stage_chunk(n, NODE_GROUP_DATA, c1, l1), RC_CORRUPT, "reordered");
    cr_assert_eq(node_snap_stage_begin(n, NODE_GROUP_META, 2, &m), RC_OK);
    cr_assert_eq(node_snap_stage_chunk(n, NODE_GROUP_META, c0, l0), RC_CORRUPT, "wrong group");
    cr_assert_eq(node_snap_stage_begin(n, NODE_GROUP_DATA, 2, &m), RC_OK);
    cr_assert_eq(node_snap_stage_chunk(n, NODE_GROUP_DATA, c0, l0), RC_OK);
    cr_assert_eq(node_snap_stage_end(n, NODE_GROUP_DATA), RC_BADARG, "ended before last");
    node_snap_stage_abort(n, NODE_GROUP_DATA);
    /* The live data is untouched by all of it. */
    cr_assert(has_value(n, "/k3", "value-3"));
    /* A source outliving its node is detached, not dangling. */
    node_close(n);
    net.t[0].n = NULL;
    cr_assert_eq(node_snap_src_next(src, c0, sizeof c0, &l0, &done), RC_SHUTDOWN);
    node_snap_src_close(src);
    net.count = 0;
    pst_close(net.t[0].e);
    free(net.q);
}

Test(node_cluster, crash_between_stage_and_install_is_finished_at_reopen)
{
    struct net net;
    net_open(&net, 4, 3, 10);
    int l = wait_both_leader(&net);
    write_many(&net, l, 0, 30);
    pst_mem_set_crash_model(net.t[3].e, true);
    net.t[3].n->test_crash_install = true;
    struct done d = {0};
    struct node_member m4;
    member_addr(4, &m4);
    int rc;
    cr_assert_neq(node_conf_change(net.t[l].n, RAFT_CC_ADD_LEARNER, 4, m4.addr,
                                   m4.cluster_addr, now_ms, on_done, &d, &rc), 0);
    for (int i = 0; i < 400 && !net.t[3].failed; i++)
        net_turn(&net, 50);
    cr_assert(net.t[3].failed, "the install never ran");
    cr_assert(strstr(node_last_error(net.t[3].n), "installing snapshot"), "%s",
              node_last_error(net.t[3].n));
    /* Power loss: unsynced writes (the partial copy) are gone; staging and marker stay. */
    node_close(net.t[3].n);
    net.t[3].n = NULL;
    pst_mem_crash(net.t[3].e);
    struct raft_conf initial = {.n_voters = 3, .voters = {1, 2, 3}};
    net_open_slot(&net, 3, &initial);
    const char *note = node_open_note(net.t[3].n);
    cr_assert(note && strstr(note, "finished installing snapshot"), "note: %s",
              note ? note : "(none)");
    /* The meta group's snapshot comes first (the change applies there first): its state,
     * the address book, is in place at open, and Raft starts from that snapshot. */
    expect_addresses(net.t[3].n, 1, false);
    expect_addresses(net.t[3].n, 4, true);
    struct raft_status st;
    node_raft_status(net.t[3].n, NODE_GROUP_META, &st);
    cr_assert_geq(st.snapshot.index, 1);
    cr_assert_eq(st.last_index, st.snapshot.index, "stale log survived the install");
    /* The data is the sender's current state: ahead of the snapshot index is fine. */
    cr_assert_geq(ns_applied_index(node_ns(net.t[3].n, NODE_GROUP_META)), st.snapshot.index);
    /* It goes on from there. */
    for (int i = 0; i < 400 && d.calls == 0; i++)
        net_turn(&net, 50);
    cr_assert_eq(d.rc, RC_OK);
    set_key(&net, l, "/later", "z");
    wait_value(&net, 3, "/later", "z");
    cr_assert(has_value(net.t[3].n, "/k29", "value-29"));
    done_clear(&d);
    net_close(&net);
}

Test(node_cluster, joiner_on_leveldb_restarted_right_after_each_install_catches_up)
{
    struct net net;
    net_open(&net, 4, 3, 15);
    /* node 4 on LevelDB in a temporary directory */
    char dir[] = "/tmp/raftconf-nodec-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    node_close(net.t[3].n);
    pst_close(net.t[3].e);
    char *err = NULL;
    cr_assert_eq(pst_open_leveldb(dir, NULL, &net.t[3].e, &err), RC_OK, "%s", err);
    struct raft_conf initial = {.n_voters = 3, .voters = {1, 2, 3}};
    net_open_slot(&net, 3, &initial);
    int l = wait_both_leader(&net);
    write_many(&net, l, 0, 50);
    net.reopen_slot = 3;
    const char *msg;
    cr_assert_eq(conf_change(&net, l, RAFT_CC_ADD_LEARNER, 4, true, &msg), RC_OK, "%s", msg);
    wait_value(&net, 3, "/k49", "value-49");
    cr_assert_geq(net.reopens, 2, "both groups' installs should have been followed by a "
                  "restart (%d)", net.reopens);
    /* The data came ahead of Raft's snapshot index; the restart must still accept it. */
    net.reopen_slot = -1;
    write_many(&net, l, 50, 20);
    wait_value(&net, 3, "/k69", "value-69");
    net_reopen_joiner(&net, 3);
    cr_assert(has_value(net.t[3].n, "/k69", "value-69"));
    expect_addresses(net.t[3].n, 2, false);
    net_close(&net);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

/* ------------------------------------------------------------------ torn tail */

Test(node_cluster, torn_tail_in_a_multi_voter_group_refuses_to_open)
{
    struct net net;
    net_open(&net, 3, 3, 0);
    int l = wait_both_leader(&net);
    write_many(&net, l, 0, 3);
    int f = (l + 1) % 3;
    struct raft_status st;
    node_raft_status(net.t[f].n, NODE_GROUP_DATA, &st);
    node_close(net.t[f].n);
    net.t[f].n = NULL;
    struct raft_entry extra = {.term = st.term, .index = st.last_index + 1};
    size_t len;
    uint8_t *rec = node_log_entry_encode(&extra, &len), key[NODE_LOG_KEY_BYTES];
    rec[len - 1] ^= 1;
    struct pst_batch *b = pst_batch_new();
    pst_batch_put(b, key, node_log_key_entry(NODE_GROUP_DATA, extra.index, key), rec, len);
    cr_assert_eq(pst_write(net.t[f].e, b, true), RC_OK);
    pst_batch_free(b);
    free(rec);
    struct node_config cfg;
    node_cfg(&net, (raft_id)(f + 1), &cfg);
    char *err = NULL;
    struct node *n = NULL;
    cr_assert_eq(node_open(net.t[f].e, &cfg, now_ms, &n, &err), RC_CORRUPT);
    cr_assert_null(n);
    cr_assert(err && strstr(err, "3 voters") && strstr(err, "may have been acknowledged"),
              "unclear refusal: %s", err ? err : "(none)");
    free(err);
    /* The record is still there: nothing was silently dropped. */
    void *val;
    size_t vlen;
    cr_assert_eq(pst_get(net.t[f].e, NULL, key, NODE_LOG_KEY_BYTES, &val, &vlen), RC_OK);
    free(val);
    net_close(&net);
}
