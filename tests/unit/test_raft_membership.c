/*
 * test_raft_membership.c - learners, single-server membership changes (thesis 4.1),
 * removing the leader, leadership transfer (thesis 3.10), the conf-change codec.
 */
#include "raft_harness.h"

static void cc_propose(struct h_cluster *c, int leader, uint8_t type, raft_id node, int want)
{
    struct raft_conf_change cc = {.type = type, .node = node, .ctx_len = 3};
    memcpy(cc.ctx, "adr", 3);
    int rc = raft_propose_conf_change(c->nodes[leader].r, 1, &cc, NULL, NULL);
    cr_assert_eq(rc, want, "conf change: %s", raft_strerror(rc));
}

/* Adds node `id` to the harness as a fresh member with the bootstrap configuration. */
static void add_fresh_node(struct h_cluster *c, int id)
{
    c->n = id;
    raft_config_default(&c->nodes[id].cfg, (raft_id)id, 1000 + (uint64_t)id);
    h_start(c, id, 0);
}

static bool conf_has_voter(const struct raft_conf *cf, raft_id id)
{
    for (uint32_t i = 0; i < cf->n_voters; i++)
        if (cf->voters[i] == id) return true;
    return false;
}

Test(raft_membership, learner_replicates_but_never_votes_or_counts)
{
    struct h_cluster c;
    h_init(&c, 3, 1, 1);
    h_boot(&c);
    h_elect(&c, 1);
    h_propose(&c, 1, "a");
    h_tick_all(&c, 3);
    cr_assert_eq(c.nodes[4].applied, 2, "learner applies");
    /* Not counted: leader + learner are not a quorum of {1,2,3}. */
    c.cut[1][2] = c.cut[1][3] = true;
    raft_index idx = h_propose(&c, 1, "b");
    h_settle(&c);
    cr_assert_eq(c.nodes[4].n_log, idx, "learner has the entry");
    cr_assert_lt(h_status(&c, 1).commit, idx, "learner's ack does not commit");
    c.cut[1][2] = c.cut[1][3] = false;
    /* Never campaigns, even alone for a long time. */
    h_isolate(&c, 4, true);
    for (int t = 0; t < 100; t++) h_tick(&c, 4);
    h_settle(&c);
    cr_assert_eq(h_role(&c, 4), RAFT_FOLLOWER);
    cr_assert_eq(h_status(&c, 4).term, 1);
    h_isolate(&c, 4, false);
    /* Candidates do not ask it: an election among voters sends no (pre)vote to 4. */
    h_isolate(&c, 1, true);
    size_t before = c.sent[RAFT_MSG_VOTE] + c.sent[RAFT_MSG_PREVOTE];
    h_tick_all(&c, 40);
    cr_assert_gt(c.sent[RAFT_MSG_VOTE] + c.sent[RAFT_MSG_PREVOTE], before);
    cr_assert(h_role(&c, 2) == RAFT_LEADER || h_role(&c, 3) == RAFT_LEADER);
    cr_assert_eq(h_status(&c, 4).vote, RAFT_NONE, "the learner never voted");
    h_free(&c);
}

Test(raft_membership, add_learner_then_promote)
{
    struct h_cluster c;
    h_init(&c, 3, 0, 2);
    h_boot(&c);
    h_elect(&c, 1);
    h_tick_all(&c, 2);
    add_fresh_node(&c, 4);
    cc_propose(&c, 1, RAFT_CC_ADD_LEARNER, 4, RAFT_OK);
    cc_propose(&c, 1, RAFT_CC_ADD_VOTER, 4, RAFT_ERR_CONF_PENDING);
    h_tick_all(&c, 5);
    struct raft_status st = h_status(&c, 4);
    cr_assert_eq(st.conf.n_learners, 1);
    cr_assert_eq(st.conf.learners[0], 4);
    cr_assert_eq(c.nodes[4].applied, 2);
    cc_propose(&c, 1, RAFT_CC_ADD_LEARNER, 4, RAFT_ERR_BAD_CONF);
    cc_propose(&c, 1, RAFT_CC_ADD_VOTER, 4, RAFT_OK); /* promotion */
    h_tick_all(&c, 5);
    for (int i = 1; i <= 4; i++) {
        st = h_status(&c, i);
        cr_assert_eq(st.conf.n_voters, 4, "node %d", i);
        cr_assert_eq(st.conf.n_learners, 0);
        cr_assert(conf_has_voter(&st.conf, 4));
    }
    /* Now 3 of 4 are needed: with 3 and 4 cut off, nothing commits. */
    c.cut[1][3] = c.cut[1][4] = true;
    raft_index idx = h_propose(&c, 1, "x");
    h_settle(&c);
    cr_assert_lt(h_status(&c, 1).commit, idx);
    c.cut[1][3] = c.cut[1][4] = false;
    h_tick_all(&c, 10);
    cr_assert_geq(h_status(&c, 1).commit, idx);
    h_free(&c);
}

Test(raft_membership, add_voter_directly_and_it_can_lead)
{
    struct h_cluster c;
    h_init(&c, 3, 0, 3);
    h_boot(&c);
    h_elect(&c, 1);
    h_tick_all(&c, 2);
    add_fresh_node(&c, 4);
    cc_propose(&c, 1, RAFT_CC_ADD_VOTER, 4, RAFT_OK);
    h_tick_all(&c, 5);
    cr_assert_eq(h_status(&c, 4).conf.n_voters, 4);
    cr_assert_eq(raft_transfer_leadership(c.nodes[1].r, 4), RAFT_OK);
    h_tick_all(&c, 3);
    cr_assert_eq(h_role(&c, 4), RAFT_LEADER);
    h_free(&c);
}

Test(raft_membership, remove_leader_steps_down_after_commit)
{
    struct h_cluster c;
    h_init(&c, 3, 0, 4);
    h_boot(&c);
    h_elect(&c, 1);
    h_tick_all(&c, 2);
    raft_index idx = 0;
    struct raft_conf_change cc = {.type = RAFT_CC_REMOVE, .node = 1};
    cr_assert_eq(raft_propose_conf_change(c.nodes[1].r, 0, &cc, &idx, NULL), RAFT_OK);
    cr_assert_eq(h_role(&c, 1), RAFT_LEADER, "keeps leading until the change commits");
    h_settle(&c);
    h_tick_all(&c, 2);
    cr_assert_neq(h_role(&c, 1), RAFT_LEADER, "stepped down once committed");
    cr_assert_geq(h_status(&c, 2).commit, idx, "committed by 2 and 3 without counting 1");
    h_tick_all(&c, 40);
    int leader = h_role(&c, 2) == RAFT_LEADER ? 2 : 3;
    cr_assert_eq(h_role(&c, leader), RAFT_LEADER);
    cr_assert_eq(h_status(&c, leader).conf.n_voters, 2);
    raft_term t1 = h_status(&c, 1).term;
    h_isolate(&c, 1, true);
    for (int t = 0; t < 100; t++) h_tick(&c, 1);
    h_settle(&c);
    cr_assert_eq(h_role(&c, 1), RAFT_FOLLOWER, "a removed member does not campaign");
    cr_assert_eq(h_status(&c, 1).term, t1);
    h_free(&c);
}

Test(raft_membership, remove_follower_and_pending_rules)
{
    struct h_cluster c;
    h_init(&c, 3, 0, 5);
    h_boot(&c);
    h_elect(&c, 1);
    h_tick_all(&c, 2);
    cc_propose(&c, 1, RAFT_CC_REMOVE, 9, RAFT_ERR_BAD_CONF);
    cc_propose(&c, 2, RAFT_CC_REMOVE, 3, RAFT_ERR_NOT_LEADER);
    cc_propose(&c, 1, RAFT_CC_REMOVE, 3, RAFT_OK);
    cc_propose(&c, 1, RAFT_CC_REMOVE, 2, RAFT_ERR_CONF_PENDING);
    h_tick_all(&c, 3);
    struct raft_status st = h_status(&c, 1);
    cr_assert_eq(st.conf.n_voters, 2);
    cr_assert_not(conf_has_voter(&st.conf, 3));
    cr_assert_eq(st.n_progress, 2);
    cc_propose(&c, 1, RAFT_CC_REMOVE, 2, RAFT_OK);
    h_tick_all(&c, 3);
    cc_propose(&c, 1, RAFT_CC_REMOVE, 1, RAFT_ERR_BAD_CONF); /* never empty */
    h_free(&c);
}

Test(raft_membership, conf_change_waits_for_commit_in_term)
{
    struct h_cluster c;
    h_init(&c, 3, 0, 6);
    h_boot(&c);
    for (int t = 0; t < 100 && h_role(&c, 1) != RAFT_LEADER; t++) {
        h_tick(&c, 1);
        do h_process_all(&c);
        while (h_role(&c, 1) != RAFT_LEADER && h_step_one(&c));
    }
    h_drop_queue(&c);
    cc_propose(&c, 1, RAFT_CC_REMOVE, 3, RAFT_ERR_CONF_PENDING);
    h_tick_all(&c, 3);
    cc_propose(&c, 1, RAFT_CC_REMOVE, 3, RAFT_OK);
    h_free(&c);
}

Test(raft_membership, uncommitted_conf_is_rolled_back_on_truncation)
{
    struct h_cluster c;
    h_init(&c, 3, 0, 7);
    h_boot(&c);
    h_elect(&c, 1);
    h_tick_all(&c, 2);
    /* The change stays on the old leader only. */
    h_isolate(&c, 1, true);
    cc_propose(&c, 1, RAFT_CC_REMOVE, 3, RAFT_OK);
    h_settle(&c);
    cr_assert_eq(h_status(&c, 1).conf.n_voters, 2, "in effect as soon as appended");
    h_tick_all(&c, 40);
    int nl = h_role(&c, 2) == RAFT_LEADER ? 2 : 3;
    cr_assert_eq(h_role(&c, nl), RAFT_LEADER);
    h_isolate(&c, 1, false);
    h_tick_all(&c, 10);
    struct raft_status st = h_status(&c, 1);
    cr_assert_eq(st.conf.n_voters, 3, "truncated conf entry no longer in effect");
    cr_assert_eq(h_log_term(&c, 1, 2), h_status(&c, nl).term);
    h_free(&c);
}

Test(raft_membership, transfer_leadership)
{
    struct h_cluster c;
    h_init(&c, 3, 0, 8);
    h_boot(&c);
    h_elect(&c, 1);
    h_tick_all(&c, 2);
    /* Target behind: the leader catches it up first and refuses proposals meanwhile. */
    c.cut[1][2] = true;
    h_propose(&c, 1, "behind");
    h_settle(&c);
    cr_assert_eq(raft_transfer_leadership(c.nodes[1].r, 2), RAFT_OK);
    cr_assert_eq(raft_propose(c.nodes[1].r, 0, "x", 1, NULL, NULL), RAFT_ERR_TRANSFERRING);
    cr_assert_eq(h_status(&c, 1).transferee, 2);
    c.cut[1][2] = false;
    h_tick_all(&c, 5);
    cr_assert_eq(h_role(&c, 2), RAFT_LEADER);
    cr_assert_eq(h_status(&c, 2).term, 2);
    cr_assert_eq(h_role(&c, 1), RAFT_FOLLOWER);
    /* Forwarded from a follower. */
    cr_assert_eq(raft_transfer_leadership(c.nodes[3].r, 3), RAFT_OK);
    h_tick_all(&c, 5);
    cr_assert_eq(h_role(&c, 3), RAFT_LEADER);
    h_free(&c);
}

Test(raft_membership, transfer_aborted_after_election_timeout)
{
    struct h_cluster c;
    h_init(&c, 3, 0, 9);
    h_boot(&c);
    h_elect(&c, 1);
    h_tick_all(&c, 2);
    h_isolate(&c, 2, true);
    h_propose(&c, 1, "x");
    h_settle(&c);
    cr_assert_eq(raft_transfer_leadership(c.nodes[1].r, 2), RAFT_OK);
    cr_assert_eq(raft_propose(c.nodes[1].r, 0, "y", 1, NULL, NULL), RAFT_ERR_TRANSFERRING);
    h_tick_all(&c, 11);
    cr_assert_eq(h_role(&c, 1), RAFT_LEADER);
    cr_assert_eq(h_status(&c, 1).transferee, RAFT_NONE);
    cr_assert_eq(raft_propose(c.nodes[1].r, 0, "y", 1, NULL, NULL), RAFT_OK);
    cr_assert_eq(raft_transfer_leadership(c.nodes[1].r, 9), RAFT_ERR_BAD_ARG);
    h_free(&c);
}

Test(raft_membership, conf_change_codec)
{
    struct raft_conf_change cc = {.type = RAFT_CC_ADD_VOTER, .node = 0x0102030405060708ULL,
                                  .ctx_len = 4};
    memcpy(cc.ctx, "host", 4);
    uint8_t buf[300];
    size_t n = raft_conf_change_encode(&cc, buf, sizeof(buf));
    cr_assert_eq(n, 18);
    cr_assert_eq(buf[0], 1);
    cr_assert_eq(buf[1], RAFT_CC_ADD_VOTER);
    cr_assert_eq(buf[2], 0x08, "little endian");
    cr_assert_eq(raft_conf_change_encode(&cc, buf, 17), 0);
    struct raft_conf_change out;
    cr_assert_eq(raft_conf_change_decode(buf, n, &out), RAFT_OK);
    cr_assert_eq(out.node, cc.node);
    cr_assert_eq(out.ctx_len, 4);
    cr_assert_eq(memcmp(out.ctx, "host", 4), 0);
    for (size_t k = 0; k < n; k++)
        cr_assert_eq(raft_conf_change_decode(buf, k, &out), RAFT_ERR_CORRUPT, "truncated %zu", k);
    cr_assert_eq(raft_conf_change_decode(buf, n + 1, &out), RAFT_ERR_CORRUPT);
    buf[1] = 9;
    cr_assert_eq(raft_conf_change_decode(buf, n, &out), RAFT_ERR_CORRUPT);
    buf[1] = RAFT_CC_REMOVE;
    memset(buf + 2, 0, 8);
    cr_assert_eq(raft_conf_change_decode(buf, n, &out), RAFT_ERR_CORRUPT, "node 0");
}
