/*
 * test_raft_read.c - ReadIndex (thesis 6.4): on the leader after a heartbeat round, on a
 * follower through the leader, queued until the leader commits its term's no-op, never
 * answered by a stale leader under partition; lease reads only when enabled.
 */
#include "raft_harness.h"

static struct h_cluster *cluster3(struct h_cluster *c, uint64_t seed)
{
    h_init(c, 3, 0, seed);
    h_boot(c);
    h_elect(c, 1);
    h_tick_all(c, 2);
    return c;
}

Test(raft_read, leader_read_needs_quorum_round)
{
    struct h_cluster c;
    cluster3(&c, 1);
    raft_index idx = h_propose(&c, 1, "w");
    h_settle(&c);
    cr_assert_eq(raft_read_index(c.nodes[1].r, 100), RAFT_OK);
    cr_assert_eq(raft_read_index(c.nodes[1].r, 101), RAFT_OK);
    /* Hold the followers' answers: no quorum, no answer. */
    c.cut[2][1] = c.cut[3][1] = true;
    h_settle(&c);
    cr_assert_eq(c.nodes[1].n_reads, 0);
    c.cut[2][1] = c.cut[3][1] = false;
    h_tick_all(&c, 1); /* next heartbeat round confirms both reads */
    cr_assert_eq(c.nodes[1].n_reads, 2);
    cr_assert_eq(c.nodes[1].reads[0].ctx, 100);
    cr_assert_eq(c.nodes[1].reads[0].err, RAFT_OK);
    cr_assert_eq(c.nodes[1].reads[0].index, idx);
    cr_assert_eq(c.nodes[1].reads[1].ctx, 101);
    cr_assert_eq(c.nodes[1].reads[1].index, idx);
    h_free(&c);
}

Test(raft_read, many_reads_share_one_round)
{
    struct h_cluster c;
    cluster3(&c, 2);
    size_t hb = c.sent[RAFT_MSG_HEARTBEAT];
    for (uint64_t i = 0; i < 10; i++) cr_assert_eq(raft_read_index(c.nodes[1].r, i), RAFT_OK);
    h_settle(&c);
    cr_assert_eq(c.nodes[1].n_reads, 10);
    cr_assert_eq(c.sent[RAFT_MSG_HEARTBEAT] - hb, 2, "one heartbeat per follower");
    h_free(&c);
}

Test(raft_read, follower_read_through_leader)
{
    struct h_cluster c;
    cluster3(&c, 3);
    raft_index idx = h_propose(&c, 1, "w");
    h_settle(&c);
    cr_assert_eq(raft_read_index(c.nodes[2].r, 7), RAFT_OK);
    h_settle(&c);
    cr_assert_eq(c.nodes[2].n_reads, 1);
    cr_assert_eq(c.nodes[2].reads[0].ctx, 7);
    cr_assert_eq(c.nodes[2].reads[0].err, RAFT_OK);
    cr_assert_eq(c.nodes[2].reads[0].index, idx);
    cr_assert_eq(c.nodes[1].n_reads, 0, "the leader's own read list is untouched");
    h_free(&c);
}

Test(raft_read, read_waits_for_noop_of_new_term)
{
    struct h_cluster c;
    h_init(&c, 3, 0, 4);
    h_boot(&c);
    /* Elect 1, stopping delivery the moment it wins so its no-op is not replicated. */
    for (int t = 0; t < 100 && h_role(&c, 1) != RAFT_LEADER; t++) {
        h_tick(&c, 1);
        do h_process_all(&c);
        while (h_role(&c, 1) != RAFT_LEADER && h_step_one(&c));
    }
    cr_assert_eq(h_role(&c, 1), RAFT_LEADER);
    c.cut[1][2] = c.cut[1][3] = true;
    h_drop_queue(&c);
    h_settle(&c);
    struct raft_status st = h_status(&c, 1);
    cr_assert_eq(st.commit, 0);
    cr_assert_eq(st.last_index, 1);
    cr_assert_eq(raft_read_index(c.nodes[1].r, 5), RAFT_OK);
    h_settle(&c);
    cr_assert_eq(c.nodes[1].n_reads, 0, "commit index of an old term is not safe");
    c.cut[1][2] = c.cut[1][3] = false;
    h_tick_all(&c, 8);
    cr_assert_eq(h_status(&c, 1).commit, 1);
    cr_assert_eq(c.nodes[1].n_reads, 1);
    cr_assert_eq(c.nodes[1].reads[0].ctx, 5);
    cr_assert_eq(c.nodes[1].reads[0].err, RAFT_OK);
    cr_assert_eq(c.nodes[1].reads[0].index, 1);
    h_free(&c);
}

Test(raft_read, stale_leader_under_partition_never_answers)
{
    struct h_cluster c;
    cluster3(&c, 5);
    h_isolate(&c, 1, true);
    cr_assert_eq(raft_read_index(c.nodes[1].r, 55), RAFT_OK);
    for (int t = 0; t < 30; t++) h_tick_all(&c, 1);
    /* The majority elected a new leader and wrote something. */
    int nl = h_role(&c, 2) == RAFT_LEADER ? 2 : 3;
    cr_assert_eq(h_role(&c, nl), RAFT_LEADER);
    h_propose(&c, nl, "new");
    h_tick_all(&c, 2);
    for (size_t i = 0; i < c.nodes[1].n_reads; i++)
        cr_assert_neq(c.nodes[1].reads[i].err, RAFT_OK, "stale leader served a read");
    cr_assert_eq(c.nodes[1].n_reads, 1, "the read failed when it stepped down");
    cr_assert_eq(c.nodes[1].reads[0].err, RAFT_ERR_NOT_LEADER);
    h_free(&c);
}

Test(raft_read, stale_leader_without_check_quorum_does_not_answer)
{
    struct h_cluster c;
    h_init(&c, 3, 0, 6);
    for (int i = 1; i <= 3; i++) c.nodes[i].cfg.check_quorum = false;
    h_boot(&c);
    h_elect(&c, 1);
    h_tick_all(&c, 2);
    h_isolate(&c, 1, true);
    for (int t = 0; t < 30; t++) h_tick_all(&c, 1);
    cr_assert_eq(h_role(&c, 1), RAFT_LEADER, "no CheckQuorum: still thinks it leads");
    cr_assert_eq(raft_read_index(c.nodes[1].r, 9), RAFT_OK);
    h_tick_all(&c, 20);
    cr_assert_eq(c.nodes[1].n_reads, 0, "no quorum round, no answer");
    h_free(&c);
}

Test(raft_read, lease_read_off_by_default_and_on_when_enabled)
{
    struct h_cluster c;
    cluster3(&c, 7);
    cr_assert_eq(raft_read_index(c.nodes[1].r, 1), RAFT_OK);
    struct raft_ready rd;
    cr_assert_eq(raft_ready(c.nodes[1].r, &rd), RAFT_OK);
    cr_assert_eq(rd.n_reads, 0, "default: needs a round even with a fresh quorum");
    for (size_t i = 0; i < rd.n_msgs; i++) h_queue_msg(&c, &rd.msgs[i]);
    raft_advance(c.nodes[1].r);
    h_settle(&c);
    h_free(&c);

    h_init(&c, 3, 0, 7);
    for (int i = 1; i <= 3; i++) c.nodes[i].cfg.lease_read = true;
    h_boot(&c);
    h_elect(&c, 1);
    h_tick_all(&c, 2);
    cr_assert_eq(raft_read_index(c.nodes[1].r, 1), RAFT_OK);
    cr_assert_eq(raft_ready(c.nodes[1].r, &rd), RAFT_OK);
    cr_assert_eq(rd.n_reads, 1, "lease holds: answered without a round");
    raft_advance(c.nodes[1].r);
    /* Lease expires without acknowledgments. */
    c.cut[2][1] = c.cut[3][1] = true;
    h_tick_all(&c, 9);
    cr_assert_eq(raft_read_index(c.nodes[1].r, 2), RAFT_OK);
    h_settle(&c);
    cr_assert_eq(c.nodes[1].n_reads, 0);
    h_free(&c);
}

Test(raft_read, read_limits_and_no_leader)
{
    struct h_cluster c;
    h_init(&c, 3, 0, 8);
    for (int i = 1; i <= 3; i++) c.nodes[i].cfg.max_pending_reads = 2;
    h_boot(&c);
    cr_assert_eq(raft_read_index(c.nodes[2].r, 1), RAFT_ERR_NO_LEADER);
    h_elect(&c, 1);
    h_tick_all(&c, 2);
    h_isolate(&c, 1, true);
    cr_assert_eq(raft_read_index(c.nodes[1].r, 1), RAFT_OK);
    cr_assert_eq(raft_read_index(c.nodes[1].r, 2), RAFT_OK);
    cr_assert_eq(raft_read_index(c.nodes[1].r, 3), RAFT_ERR_OVERLOAD);
    h_free(&c);
}

Test(raft_read, no_lease_after_timeout_now_was_sent)
{
    struct h_cluster c;
    h_init(&c, 3, 0, 9);
    for (int i = 1; i <= 3; i++) c.nodes[i].cfg.lease_read = true;
    h_boot(&c);
    h_elect(&c, 1);
    h_tick_all(&c, 2);
    c.cut[1][2] = true; /* TIMEOUT_NOW to 2 is "delayed" (lost here) */
    cr_assert_eq(raft_transfer_leadership(c.nodes[1].r, 2), RAFT_OK);
    h_tick_all(&c, 12); /* transfer aborted */
    cr_assert_eq(h_role(&c, 1), RAFT_LEADER);
    cr_assert_eq(h_status(&c, 1).transferee, RAFT_NONE);
    c.cut[1][2] = false;
    h_tick_all(&c, 1);
    struct raft_ready rd;
    cr_assert_eq(raft_read_index(c.nodes[1].r, 3), RAFT_OK);
    cr_assert_eq(raft_ready(c.nodes[1].r, &rd), RAFT_OK);
    cr_assert_eq(rd.n_reads, 0, "the target may still win: lease not trusted");
    for (size_t i = 0; i < rd.n_msgs; i++) h_queue_msg(&c, &rd.msgs[i]);
    raft_advance(c.nodes[1].r);
    h_settle(&c);
    cr_assert_eq(c.nodes[1].n_reads, 1, "answered by a quorum round instead");
    cr_assert_eq(c.nodes[1].reads[0].err, RAFT_OK);
    h_free(&c);
}
