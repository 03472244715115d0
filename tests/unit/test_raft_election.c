/*
 * test_raft_election.c - elections: basics, vote rules (paper 5.2, 5.4.1), votes in the hard
 * state before the answer, PreVote (thesis 9.6), CheckQuorum (thesis 6.2), lease on votes.
 */
#include "raft_harness.h"

/* A member 1 of {1,2,3} whose log holds entries with the given terms (index 1..n). */
static struct raft *member_with_log(const raft_term *terms, size_t n, raft_term hs_term)
{
    static struct raft_entry ents[16];
    for (size_t i = 0; i < n; i++)
        ents[i] = (struct raft_entry){.term = terms[i], .index = i + 1};
    struct raft_config cfg;
    raft_config_default(&cfg, 1, 1);
    struct raft_persisted p = {.hs = {.term = hs_term}, .entries = ents, .n_entries = n};
    p.initial.n_voters = 3;
    for (int i = 0; i < 3; i++) p.initial.voters[i] = (raft_id)(i + 1);
    struct raft *r = NULL;
    cr_assert_eq(raft_new(&cfg, &p, &r), RAFT_OK);
    return r;
}

/* Steps m, then returns the first message of type `type` in the next Ready. */
static struct raft_msg step_get(struct raft *r, const struct raft_msg *m, int type,
                                struct raft_hard_state *hs)
{
    cr_assert_eq(raft_step(r, m), RAFT_OK);
    struct raft_ready rd;
    cr_assert_eq(raft_ready(r, &rd), RAFT_OK);
    struct raft_msg out = {0};
    for (size_t i = 0; i < rd.n_msgs; i++)
        if (rd.msgs[i].type == type) out = rd.msgs[i];
    if (hs) *hs = rd.hs;
    out.entries = NULL;
    raft_advance(r);
    return out;
}

Test(raft_election, three_nodes_elect_one_leader_and_commit_noop)
{
    struct h_cluster c;
    h_init(&c, 3, 0, 11);
    h_boot(&c);
    h_elect(&c, 1);
    h_tick_all(&c, 3);
    for (int i = 1; i <= 3; i++) {
        struct raft_status st = h_status(&c, i);
        cr_assert_eq(st.term, 1, "node %d", i);
        cr_assert_eq(st.leader, 1, "node %d", i);
        cr_assert_eq(st.commit, 1, "node %d", i);
        cr_assert_eq(c.nodes[i].applied, 1);
    }
    cr_assert_eq(h_leader_count(&c, 1), 1);
    cr_assert_eq(c.nodes[2].hs.vote, 1, "vote persisted");
    h_free(&c);
}

Test(raft_election, randomized_timeouts_elect_without_help)
{
    struct h_cluster c;
    h_init(&c, 5, 0, 99);
    h_boot(&c);
    h_tick_all(&c, 60);
    int leaders = 0;
    raft_term term = 0;
    for (int i = 1; i <= 5; i++)
        if (h_role(&c, i) == RAFT_LEADER) {
            leaders++;
            term = h_status(&c, i).term;
        }
    cr_assert_eq(leaders, 1);
    for (int i = 1; i <= 5; i++) cr_assert_eq(h_status(&c, i).term, term);
    h_free(&c);
}

Test(raft_election, vote_requires_up_to_date_log)
{
    raft_term terms[] = {1, 1, 2};
    struct raft *r = member_with_log(terms, 3, 2);
    /* Candidate's last term lower: reject (paper 5.4.1). */
    struct raft_msg v = {.type = RAFT_MSG_VOTE, .from = 2, .to = 1, .term = 3, .index = 5,
                         .log_term = 1};
    struct raft_hard_state hs;
    struct raft_msg resp = step_get(r, &v, RAFT_MSG_VOTE_RESP, &hs);
    cr_assert(resp.reject);
    cr_assert_eq(hs.term, 3);
    cr_assert_eq(hs.vote, RAFT_NONE);
    /* Same last term, shorter log: reject. */
    v.index = 2;
    v.log_term = 2;
    resp = step_get(r, &v, RAFT_MSG_VOTE_RESP, NULL);
    cr_assert(resp.reject);
    /* Same last term, same length: grant, and the vote is in the same Ready. */
    v.index = 3;
    resp = step_get(r, &v, RAFT_MSG_VOTE_RESP, &hs);
    cr_assert_not(resp.reject);
    cr_assert_eq(resp.term, 3);
    cr_assert_eq(hs.vote, 2);
    /* One vote per term: another candidate of term 3 is refused, the same one again not. */
    v.from = 3;
    v.index = 10;
    v.log_term = 3;
    resp = step_get(r, &v, RAFT_MSG_VOTE_RESP, NULL);
    cr_assert(resp.reject);
    v.from = 2;
    v.index = 3;
    v.log_term = 2;
    resp = step_get(r, &v, RAFT_MSG_VOTE_RESP, NULL);
    cr_assert_not(resp.reject);
    raft_free(r);
}

Test(raft_election, vote_survives_restart)
{
    struct h_cluster c;
    h_init(&c, 3, 0, 3);
    h_boot(&c);
    struct raft_msg v = {.type = RAFT_MSG_VOTE, .from = 2, .to = 1, .term = 4, .index = 0,
                         .log_term = 0};
    raft_step(c.nodes[1].r, &v);
    h_process(&c, 1);
    cr_assert_eq(c.nodes[1].hs.vote, 2);
    cr_assert_eq(c.nodes[1].hs.term, 4);
    h_drop_queue(&c);
    h_restart(&c, 1);
    v.from = 3;
    raft_step(c.nodes[1].r, &v);
    struct raft_ready rd;
    cr_assert_eq(raft_ready(c.nodes[1].r, &rd), RAFT_OK);
    cr_assert_eq(rd.n_msgs, 1);
    cr_assert(rd.msgs[0].reject, "already voted for 2 in term 4 before the restart");
    raft_advance(c.nodes[1].r);
    h_free(&c);
}

Test(raft_election, prevote_does_not_bump_terms_of_partitioned_node)
{
    struct h_cluster c;
    h_init(&c, 3, 0, 21);
    h_boot(&c);
    h_elect(&c, 1);
    h_tick_all(&c, 2);
    h_isolate(&c, 3, true);
    h_tick_all(&c, 100);
    struct raft_status s3 = h_status(&c, 3);
    cr_assert_eq(s3.term, 1, "PreVote: no term bump while partitioned");
    cr_assert_neq(s3.role, RAFT_LEADER);
    cr_assert_eq(h_role(&c, 1), RAFT_LEADER);
    /* Rejoining does not disrupt the leader. */
    h_isolate(&c, 3, false);
    h_tick_all(&c, 30);
    cr_assert_eq(h_role(&c, 1), RAFT_LEADER);
    cr_assert_eq(h_status(&c, 1).term, 1);
    cr_assert_eq(h_status(&c, 3).leader, 1);
    h_free(&c);
}

Test(raft_election, without_prevote_partitioned_node_bumps_term)
{
    struct h_cluster c;
    h_init(&c, 3, 0, 21);
    for (int i = 1; i <= 3; i++) c.nodes[i].cfg.pre_vote = false;
    h_boot(&c);
    h_elect(&c, 1);
    h_isolate(&c, 3, true);
    h_tick_all(&c, 100);
    cr_assert_gt(h_status(&c, 3).term, 1, "the contrast that PreVote prevents");
    h_free(&c);
}

Test(raft_election, check_quorum_steps_down_isolated_leader)
{
    struct h_cluster c;
    h_init(&c, 3, 0, 31);
    h_boot(&c);
    h_elect(&c, 1);
    h_tick_all(&c, 2);
    h_isolate(&c, 1, true);
    h_tick_all(&c, 25); /* > 2 election timeouts */
    cr_assert_eq(h_role(&c, 1), RAFT_FOLLOWER, "lost its quorum");
    int leaders = 0;
    for (int i = 2; i <= 3; i++) leaders += h_role(&c, i) == RAFT_LEADER;
    cr_assert_eq(leaders, 1, "the majority side elected a new leader");
    cr_assert_gt(h_status(&c, 2).term, 1);
    h_isolate(&c, 1, false);
    h_tick_all(&c, 5);
    cr_assert_eq(h_status(&c, 1).term, h_status(&c, 2).term);
    cr_assert_neq(h_role(&c, 1), RAFT_LEADER);
    h_free(&c);
}

Test(raft_election, follower_in_lease_ignores_vote_requests)
{
    struct h_cluster c;
    h_init(&c, 3, 0, 41);
    h_boot(&c);
    h_elect(&c, 1);
    h_tick_all(&c, 1);
    struct raft_msg v = {.type = RAFT_MSG_VOTE, .from = 3, .to = 2, .term = 9, .index = 100,
                         .log_term = 9};
    cr_assert_eq(raft_step(c.nodes[2].r, &v), RAFT_OK);
    cr_assert_eq(h_status(&c, 2).term, 1, "heard from the leader recently: ignored");
    v.ctx = 1; /* leadership transfer bypasses the lease */
    cr_assert_eq(raft_step(c.nodes[2].r, &v), RAFT_OK);
    cr_assert_eq(h_status(&c, 2).term, 9);
    cr_assert_eq(h_status(&c, 2).vote, 3);
    h_drop_queue(&c);
    h_free(&c);
}

Test(raft_election, prevote_rejected_for_stale_log)
{
    raft_term terms[] = {1, 2};
    struct raft *r = member_with_log(terms, 2, 2);
    struct raft_msg v = {.type = RAFT_MSG_PREVOTE, .from = 2, .to = 1, .term = 3, .index = 1,
                         .log_term = 1};
    struct raft_hard_state hs;
    struct raft_msg resp = step_get(r, &v, RAFT_MSG_PREVOTE_RESP, &hs);
    cr_assert(resp.reject);
    cr_assert_eq(hs.term, 2, "PreVote never changes the voter's term");
    v.index = 2;
    v.log_term = 2;
    resp = step_get(r, &v, RAFT_MSG_PREVOTE_RESP, &hs);
    cr_assert_not(resp.reject);
    cr_assert_eq(resp.term, 3);
    struct raft_status st;
    raft_status(r, &st);
    cr_assert_eq(st.term, 2);
    cr_assert_eq(st.vote, RAFT_NONE);
    raft_free(r);
}
