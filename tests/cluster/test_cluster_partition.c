/*
 * test_cluster_partition.c - a network partition between the peers of a real 3-node
 * cluster, made by the fault-injecting proxy (tests/fault/tcpproxy.c) that carries every
 * peer byte (issue 4, test 3):
 *  - the leader is cut off from both others, both directions blackholed: on it, writes and
 *    linearizable reads fail within the request timeout with a documented error
 *    (-TRYAGAIN / -NOQUORUM / -TIMEOUT), never +OK; CFG.HEALTH says it is unhealthy; a
 *    READONLY read is still served locally;
 *  - the majority elects a new leader and accepts writes (on both of its nodes);
 *  - after healing, the old leader follows the new one, has the majority's writes, and the
 *    writes it was sent while isolated are absent on every node;
 *  - the same with "hold" (bytes delayed, nothing lost: the TCP connections survive the
 *    partition and deliver the old leader's stale messages late);
 *  - one-way: only what the leader sends is dropped (it still hears the others): the
 *    majority elects a new leader, the old one can neither write nor read linearizably,
 *    and after healing it catches up the same way;
 *  - an isolated follower: the leader and the other follower carry on with no error, the
 *    follower refuses writes and linearizable reads with the documented errors, then
 *    catches up after healing.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"

static struct cluster cl;

static void fini(void) { cl_destroy(&cl); }

#define ISO_WRITES 3
#define MAJ_WRITES 10

/* One request on a fresh connection to node i; the formatted reply in buf, the time it
 * took in *ms. */
static const char *timed(int i, int timeout_ms, long *ms, char *buf, size_t cap,
                         const char *a, const char *b, const char *cmd)
{
    redisContext *rc = cl_connect(&cl, i, timeout_ms);
    if (!rc) {
        snprintf(buf, cap, "<no connection>");
        return buf;
    }
    long t0 = cl_now_ms();
    redisReply *r = b ? redisCommand(rc, "%s %s %s", cmd, a, b) : redisCommand(rc, "%s %s", cmd, a);
    *ms = cl_now_ms() - t0;
    cl_fmt(r, buf, cap);
    if (r)
        freeReplyObject(r);
    redisFree(rc);
    return buf;
}

/* The cut-off old leader l refuses writes and linearizable reads with a documented error
 * within the request timeout; READONLY reads are served locally. */
static void minority_refuses(int l, const char *mode, bool oneway)
{
    char buf[256];
    int limit_ms = cl.request_timeout_ms + 1500;
    for (int k = 0; k < ISO_WRITES; k++) {
        char key[32];
        long ms = 0;
        snprintf(key, sizeof key, "iso-%d", k);
        timed(l, limit_ms + 5000, &ms, buf, sizeof buf, key, "lost", "SET");
        CL_ASSERT(&cl, cl_is_unavailable_err(buf),
                  "SET %s on the isolated old leader node %d: expected -TRYAGAIN, -NOQUORUM "
                  "or -TIMEOUT, got %s", key, l + 1, buf);
        CL_ASSERT(&cl, ms <= limit_ms, "SET %s on the isolated node %d took %ld ms "
                  "(request timeout %d ms)", key, l + 1, ms, cl.request_timeout_ms);
        printf("[%s] isolated old leader node %d: SET %s -> %s after %ld ms\n", mode, l + 1,
               key, buf, ms);
    }
    long ms = 0;
    timed(l, limit_ms + 5000, &ms, buf, sizeof buf, "pre-0", NULL, "GET");
    CL_ASSERT(&cl, cl_is_unavailable_err(buf) && ms <= limit_ms,
              "linearizable GET on the isolated node %d: expected a documented error within "
              "%d ms, got %s after %ld ms", l + 1, limit_ms, buf, ms);
    printf("[%s] isolated node %d: GET pre-0 -> %s after %ld ms\n", mode, l + 1, buf, ms);
    cl_cmd_s(&cl, l, 5000, buf, sizeof buf, "CFG.HEALTH");
    if (!oneway) /* a muted node still hears a leader: it cannot tell it is cut off */
        CL_ASSERT(&cl, buf[0] == '-', "CFG.HEALTH on the isolated node %d: %s (want an "
                  "error)", l + 1, buf);
    redisContext *ro = cl_connect(&cl, l, 5000);
    CL_ASSERT(&cl, ro, "connect to node %d", l + 1);
    redisReply *r = redisCommand(ro, "READONLY");
    freeReplyObject(r);
    r = redisCommand(ro, "GET pre-1");
    CL_ASSERT(&cl, r && r->type == REDIS_REPLY_STRING && strcmp(r->str, "before") == 0,
              "READONLY GET pre-1 on the isolated node %d: %s", l + 1,
              cl_fmt(r, buf, sizeof buf));
    freeReplyObject(r);
    redisFree(ro);
}

/* The two other nodes elect a leader and take writes on both; returns the new leader. */
static int majority_accepts(int l)
{
    char buf[256];
    int nl = cl_wait_leader(&cl, cl_all(&cl) & ~(1u << l), 10000);
    CL_ASSERT(&cl, nl >= 0 && nl != l, "the majority elected no leader");
    for (int k = 0; k < MAJ_WRITES; k++) {
        int i = (k % 2) ? nl : (3 - l - nl); /* both majority nodes */
        cl_cmd_s(&cl, i, cl.request_timeout_ms + 3000, buf, sizeof buf, "SET maj-%d ok%d", k, k);
        CL_ASSERT(&cl, strcmp(buf, "+OK") == 0, "SET maj-%d on majority node %d: %s", k, i + 1,
                  buf);
    }
    return nl;
}

/* A node that receives the new leader's messages must step down (Raft paper 5.1). */
static void steps_down(int l, int nl)
{
    char role[32] = "";
    long t0 = cl_now_ms();
    while (cl_now_ms() - t0 < 5000) {
        cl_info(&cl, l, "raft", "role", role, sizeof role);
        if (strcmp(role, "leader") != 0)
            break;
        cl_sleep_ms(50);
    }
    CL_ASSERT(&cl, strcmp(role, "leader") != 0, "muted old leader node %d still says "
              "role:leader 5 s after node %d was elected (it receives its messages)",
              l + 1, nl + 1);
}

/* After healing: every node has the majority's writes and none of the isolated ones. */
static void all_agree(void)
{
    char key[32], buf[64];
    for (int i = 0; i < 3; i++) {
        for (int k = 0; k < ISO_WRITES; k++) {
            snprintf(key, sizeof key, "iso-%d", k);
            CL_ASSERT(&cl, cl_wait_value(&cl, i, key, NULL, 3000),
                      "node %d: %s, sent only to the isolated old leader, exists", i + 1, key);
        }
        for (int k = 0; k < MAJ_WRITES; k++) {
            char v[16];
            snprintf(key, sizeof key, "maj-%d", k);
            snprintf(v, sizeof v, "ok%d", k);
            CL_ASSERT(&cl, cl_wait_value(&cl, i, key, v, 3000), "node %d: %s missing", i + 1,
                      key);
        }
        cl_cmd_s(&cl, i, 5000, buf, sizeof buf, "DBSIZE");
        CL_ASSERT(&cl, strcmp(buf, ":13") == 0, "node %d: DBSIZE %s, want 13", i + 1, buf);
    }
}

/* mode: "drop" / "hold" (both ways), or "mute" (only what the old leader sends, dropped) */
static void partition_old_leader(const char *mode)
{
    bool oneway = strcmp(mode, "mute") == 0;
    int rc = cl_start(&cl, 3, true, NULL);
    CL_ASSERT(&cl, rc == 0, "3-node cluster behind the proxy did not start");
    int l = cl_wait_leader(&cl, cl_all(&cl), 10000);
    CL_ASSERT(&cl, l >= 0, "no leader");
    char buf[256];
    for (int i = 0; i < 3; i++) {
        cl_cmd_s(&cl, l, 5000, buf, sizeof buf, "SET pre-%d before", i);
        CL_ASSERT(&cl, strcmp(buf, "+OK") == 0, "SET pre-%d on leader: %s", i, buf);
    }
    rc = oneway ? cl_mute(&cl, l, "drop") : cl_isolate(&cl, l, mode);
    CL_ASSERT(&cl, rc == 0, "proxy: %s node %d", mode, l + 1);
    minority_refuses(l, mode, oneway);
    int nl = majority_accepts(l);
    if (oneway)
        steps_down(l, nl);
    /* heal: the old leader rejoins, catches up, and its uncommitted entries are gone */
    CL_ASSERT(&cl, cl_heal_all(&cl) == 0, "proxy: heal");
    char last[32], key[32];
    snprintf(last, sizeof last, "ok%d", MAJ_WRITES - 1);
    snprintf(key, sizeof key, "maj-%d", MAJ_WRITES - 1);
    CL_ASSERT(&cl, cl_wait_value(&cl, l, key, last, 15000),
              "old leader node %d did not catch up within 15 s after healing", l + 1);
    char role[32];
    cl_info(&cl, l, "raft", "role", role, sizeof role);
    int fl = cl_wait_leader(&cl, cl_all(&cl), 5000);
    CL_ASSERT(&cl, fl >= 0, "no leader after healing");
    all_agree();
    /* the linearizable view agrees: a write on the old leader is visible everywhere */
    cl_cmd_s(&cl, l, cl.request_timeout_ms + 3000, buf, sizeof buf, "SET after-heal yes");
    CL_ASSERT(&cl, strcmp(buf, "+OK") == 0, "SET on the healed node %d: %s", l + 1, buf);
    for (int i = 0; i < 3; i++)
        CL_ASSERT(&cl, cl_wait_value(&cl, i, "after-heal", "yes", 3000), "node %d", i + 1);
    printf("[%s] partition: old leader node %d (role now %s), majority leader node %d, "
           "leader after healing node %d\n", mode, l + 1, role, nl + 1, fl + 1);
}

Test(cluster_partition, isolated_leader_blackholed, .fini = fini, .timeout = 120)
{
    partition_old_leader("drop");
}

Test(cluster_partition, isolated_leader_held, .fini = fini, .timeout = 120)
{
    partition_old_leader("hold");
}

Test(cluster_partition, old_leader_muted_one_way, .fini = fini, .timeout = 120)
{
    partition_old_leader("mute");
}

Test(cluster_partition, isolated_follower_refuses_majority_carries_on, .fini = fini,
     .timeout = 120)
{
    int rc = cl_start(&cl, 3, true, NULL);
    CL_ASSERT(&cl, rc == 0, "3-node cluster behind the proxy did not start");
    int l = cl_wait_leader(&cl, cl_all(&cl), 10000);
    CL_ASSERT(&cl, l >= 0, "no leader");
    int f = (l + 1) % 3, o = (l + 2) % 3;
    char buf[256];
    cl_cmd_s(&cl, o, 5000, buf, sizeof buf, "SET before x");
    CL_ASSERT(&cl, strcmp(buf, "+OK") == 0, "SET before: %s", buf);
    CL_ASSERT(&cl, cl_wait_value(&cl, f, "before", "x", 5000), "follower %d", f + 1);
    CL_ASSERT(&cl, cl_isolate(&cl, f, "drop") == 0, "proxy: isolate node %d", f + 1);
    int limit_ms = cl.request_timeout_ms + 1500;
    long ms = 0;
    timed(f, limit_ms + 5000, &ms, buf, sizeof buf, "from-isolated", "no", "SET");
    CL_ASSERT(&cl, cl_is_unavailable_err(buf) && ms <= limit_ms,
              "SET on the isolated follower node %d: expected a documented error within %d ms, "
              "got %s after %ld ms", f + 1, limit_ms, buf, ms);
    timed(f, limit_ms + 5000, &ms, buf, sizeof buf, "before", NULL, "GET");
    CL_ASSERT(&cl, cl_is_unavailable_err(buf) && ms <= limit_ms,
              "linearizable GET on the isolated follower node %d: expected a documented error "
              "within %d ms, got %s after %ld ms", f + 1, limit_ms, buf, ms);
    /* the majority: no error at all, the leader stays */
    for (int k = 0; k < 20; k++) {
        int i = k % 2 ? l : o;
        cl_cmd_s(&cl, i, cl.request_timeout_ms + 3000, buf, sizeof buf, "SET maj-%d v%d", k, k);
        CL_ASSERT(&cl, strcmp(buf, "+OK") == 0, "SET maj-%d on node %d with a follower cut "
                  "off: %s", k, i + 1, buf);
    }
    CL_ASSERT(&cl, cl_wait_leader(&cl, cl_all(&cl) & ~(1u << f), 2000) == l,
              "the leader changed although it kept its majority");
    CL_ASSERT(&cl, cl_heal_all(&cl) == 0, "proxy: heal");
    CL_ASSERT(&cl, cl_wait_value(&cl, f, "maj-19", "v19", 15000),
              "follower node %d did not catch up within 15 s after healing", f + 1);
    for (int i = 0; i < 3; i++)
        CL_ASSERT(&cl, cl_wait_value(&cl, i, "from-isolated", NULL, 3000),
                  "node %d: from-isolated, refused by the isolated follower, exists", i + 1);
}
