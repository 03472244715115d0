/*
 * test_cluster_membership.c - membership changes on a real cluster (issue 4, test 6):
 *  - a 3-node cluster with a small --snapshot-entries takes enough writes that its log is
 *    compacted (first_index > 1), so a fourth node can only catch up through a snapshot;
 *  - node 4 starts empty (its own id, the founding list without itself, as docs/cluster.md
 *    says) and is added with CFG.CLUSTER ADD 4 addr LEARNER; it receives a snapshot and
 *    serves READONLY reads of all the data; it is not a voter;
 *  - after CFG.CLUSTER PROMOTE 4 it counts toward the quorum: with two of the original
 *    three down, 2 of 4 voters are up and a write fails with a documented error; with one
 *    restarted, 3 of 4 are up and writes succeed;
 *  - CFG.CLUSTER REMOVE of a follower and then of the leader itself: a new leader among
 *    the rest, writes succeed, CFG.CLUSTER NODES lists only the remaining members.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"

static struct cluster cl;

static void fini(void) { cl_destroy(&cl); }

#define N_KEYS 400

static long long info_ll(int i, const char *field)
{
    char v[64];
    if (!cl_info(&cl, i, "raft", field, v, sizeof v) || !v[0])
        return -1;
    return atoll(v);
}

static void write_keys(int l)
{
    redisContext *rc = cl_connect(&cl, l, cl.request_timeout_ms + 5000);
    CL_ASSERT(&cl, rc, "connect to the leader");
    for (int k = 0; k < N_KEYS; k += 20) {
        for (int j = k; j < k + 20; j++)
            redisAppendCommand(rc, "SET m-%d val-%d", j, j);
        for (int j = k; j < k + 20; j++) {
            redisReply *r = NULL;
            char f[200];
            int st = redisGetReply(rc, (void **)&r);
            CL_ASSERT(&cl, st == REDIS_OK && r && r->type == REDIS_REPLY_STATUS,
                      "SET m-%d: %s", j, cl_fmt(r, f, sizeof f));
            freeReplyObject(r);
        }
    }
    redisFree(rc);
}

/* All N_KEYS through READONLY on node i (bounded wait for the last to arrive). */
static bool readonly_has_all(int i, int timeout_ms)
{
    long t0 = cl_now_ms();
    do {
        redisContext *rc = cl_connect(&cl, i, 3000);
        if (rc) {
            redisReply *r = redisCommand(rc, "READONLY");
            bool ro = r && r->type == REDIS_REPLY_STATUS;
            if (r)
                freeReplyObject(r);
            int good = 0;
            for (int k = 0; ro && k < N_KEYS; k++)
                redisAppendCommand(rc, "GET m-%d", k);
            for (int k = 0; ro && k < N_KEYS; k++) {
                char want[32];
                snprintf(want, sizeof want, "val-%d", k);
                if (redisGetReply(rc, (void **)&r) != REDIS_OK || !r)
                    break;
                good += r->type == REDIS_REPLY_STRING && strcmp(r->str, want) == 0;
                freeReplyObject(r);
            }
            redisFree(rc);
            if (good == N_KEYS)
                return true;
        }
        cl_sleep_ms(100);
    } while (cl_now_ms() - t0 < timeout_ms);
    return false;
}

static void admin_ok(const char *cmd)
{
    char buf[256];
    cl_admin(&cl, buf, sizeof buf, cmd);
    CL_ASSERT(&cl, strcmp(buf, "+OK") == 0, "%s: expected +OK, got %s", cmd, buf);
}

/* A SET on node i that must succeed within timeout_ms (retrying documented errors). */
static bool write_until_ok(int i, const char *key, int timeout_ms, char *last, size_t cap)
{
    long t0 = cl_now_ms();
    do {
        cl_cmd_s(&cl, i, cl.request_timeout_ms + 2000, last, cap, "SET %s x", key);
        if (strcmp(last, "+OK") == 0)
            return true;
        cl_sleep_ms(50);
    } while (cl_now_ms() - t0 < timeout_ms);
    return false;
}

static int count_members(int i)
{
    redisReply *r = cl_cmd(&cl, i, 5000, "CFG.CLUSTER NODES");
    int n = -1;
    if (r && r->type == REDIS_REPLY_STRING) {
        n = 0;
        for (const char *p = r->str; *p; p++)
            n += *p == '\n';
        if (r->len && r->str[r->len - 1] != '\n')
            n++;
    } else if (r && r->type == REDIS_REPLY_ARRAY) {
        n = (int)r->elements;
    }
    if (r)
        freeReplyObject(r);
    return n;
}

/* Node 4 starts empty and joins as a learner; it can only catch up through a snapshot. */
static void add_learner(long long *snaps, long long *sidx)
{
    int l = cl_wait_leader(&cl, cl_all(&cl), 10000);
    CL_ASSERT(&cl, l >= 0, "no leader");
    write_keys(l);
    long long first = info_ll(l, "first_index");
    CL_ASSERT(&cl, first > 1, "leader's log not compacted after %d writes with "
              "--snapshot-entries 50 (first_index %lld): a new node would not need a snapshot",
              N_KEYS, first);
    CL_ASSERT(&cl, cl_add_node(&cl) == 0, "define node 4");
    int n4 = cl.n - 1;
    CL_ASSERT(&cl, cl_start_node(&cl, n4) == 0, "node 4 did not start");
    char cmd[128];
    snprintf(cmd, sizeof cmd, "CFG.CLUSTER ADD 4 127.0.0.1:%d LEARNER", cl.node[n4].port);
    admin_ok(cmd);
    CL_ASSERT(&cl, readonly_has_all(n4, 20000),
              "learner node 4 does not serve all %d keys through READONLY within 20 s", N_KEYS);
    *snaps = info_ll(n4, "snapshots_received");
    *sidx = info_ll(n4, "snapshot_index");
    CL_ASSERT(&cl, *snaps > 0 || *sidx > 0, "node 4 caught up without a snapshot "
              "(snapshots_received %lld, snapshot_index %lld)", *snaps, *sidx);
    l = cl_wait_leader(&cl, cl_all(&cl), 5000);
    CL_ASSERT(&cl, l >= 0 && info_ll(l, "voters") == 3 && info_ll(l, "learners") == 1,
              "leader: voters %lld learners %lld (want 3 and 1)", info_ll(l, "voters"),
              info_ll(l, "learners"));
}

/* PROMOTE 4: 4 voters, quorum 3. Two of the original three down: no write; one back: OK. */
static void promote_counts_toward_quorum(void)
{
    admin_ok("CFG.CLUSTER PROMOTE 4");
    int l = cl_wait_leader(&cl, cl_all(&cl), 5000);
    CL_ASSERT(&cl, l >= 0 && info_ll(l, "voters") == 4, "after PROMOTE: voters %lld",
              l >= 0 ? info_ll(l, "voters") : -1);
    int down[2], nd = 0;
    for (int i = 0; i < 3 && nd < 2; i++)
        if (i != l)
            down[nd++] = i;
    for (int k = 0; k < 2; k++)
        cl_kill9(&cl, down[k]);
    char buf[256];
    long t0 = cl_now_ms();
    cl_cmd_s(&cl, l, cl.request_timeout_ms + 5000, buf, sizeof buf, "SET two-of-four x");
    long ms = cl_now_ms() - t0;
    CL_ASSERT(&cl, cl_is_unavailable_err(buf), "SET with 2 of 4 voters up (nodes %d and 4): "
              "expected -NOQUORUM/-TRYAGAIN/-TIMEOUT, got %s after %ld ms", l + 1, buf, ms);
    printf("2 of 4 voters up: SET -> %s after %ld ms\n", buf, ms);
    CL_ASSERT(&cl, cl_start_node(&cl, down[0]) == 0, "restart node %d", down[0] + 1);
    CL_ASSERT(&cl, write_until_ok(l, "three-of-four", 15000, buf, sizeof buf),
              "SET with 3 of 4 voters up failed for 15 s: %s", buf);
    CL_ASSERT(&cl, cl_start_node(&cl, down[1]) == 0, "restart node %d", down[1] + 1);
}

/* REMOVE a follower, then the leader itself; returns the mask of the nodes still members
 * (the removed ones in *f_out, *old_out). */
static unsigned remove_follower_then_leader(int *f_out, int *old_out)
{
    char cmd[64], buf[256];
    int l = cl_wait_leader(&cl, cl_all(&cl), 10000);
    CL_ASSERT(&cl, l >= 0, "no leader with all 4 up");
    int f = (l + 1) % 4;
    snprintf(cmd, sizeof cmd, "CFG.CLUSTER REMOVE %d", cl.node[f].id);
    admin_ok(cmd);
    unsigned alive = cl_all(&cl) & ~(1u << f);
    l = cl_wait_leader(&cl, alive, 10000);
    CL_ASSERT(&cl, l >= 0 && count_members(l) == 3, "after %s: members %d (want 3)", cmd,
              l >= 0 ? count_members(l) : -1);
    cl_kill9(&cl, f);
    CL_ASSERT(&cl, write_until_ok(l, "after-remove", 10000, buf, sizeof buf),
              "SET after removing node %d: %s", f + 1, buf);
    snprintf(cmd, sizeof cmd, "CFG.CLUSTER REMOVE %d", cl.node[l].id);
    admin_ok(cmd);
    int old = l;
    alive &= ~(1u << old);
    l = cl_wait_leader(&cl, alive, 10000);
    CL_ASSERT(&cl, l >= 0 && l != old, "no new leader after removing leader node %d", old + 1);
    cl_kill9(&cl, old);
    CL_ASSERT(&cl, write_until_ok(l, "after-remove-leader", 10000, buf, sizeof buf),
              "SET after removing the leader node %d: %s", old + 1, buf);
    *f_out = f;
    *old_out = old;
    return alive;
}

Test(cluster_membership, learner_snapshot_promote_quorum_remove, .fini = fini, .timeout = 180)
{
    const char *extra[] = {"--snapshot-entries", "50", NULL};
    int rc = cl_start(&cl, 3, false, extra);
    CL_ASSERT(&cl, rc == 0, "3-node cluster did not start");
    long long snaps = 0, sidx = 0;
    add_learner(&snaps, &sidx);
    promote_counts_toward_quorum();
    int f, old;
    unsigned alive = remove_follower_then_leader(&f, &old);
    for (int i = 0; i < cl.n; i++)
        if (alive & (1u << i)) {
            CL_ASSERT(&cl, count_members(i) == 2, "node %d: CFG.CLUSTER NODES lists %d "
                      "members (want 2)", i + 1, count_members(i));
            CL_ASSERT(&cl, cl_wait_value(&cl, i, "after-remove-leader", "x", 5000),
                      "node %d: write after removing the leader missing", i + 1);
            CL_ASSERT(&cl, cl_wait_value(&cl, i, "m-0", "val-0", 5000), "node %d: m-0", i + 1);
        }
    printf("membership: learner 4 caught up by snapshot (snapshots_received %lld, "
           "snapshot_index %lld), promoted; removed node %d, then leader node %d\n", snaps,
           sidx, f + 1, old + 1);
}
