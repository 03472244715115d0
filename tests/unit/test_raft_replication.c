/*
 * test_raft_replication.c - log replication: paper Figure 7 follower logs, Figure 8 (no
 * commit of an earlier term's entry by counting), fast back-off, commit only after the
 * leader's own durability, batching, proposals forwarded from followers and their limits.
 */
#include "raft_harness.h"

static const raft_term fig7_leader[] = {1, 1, 1, 4, 4, 5, 5, 6, 6, 6};

static void fig7_case(const raft_term *f, size_t n)
{
    struct h_cluster c;
    h_init(&c, 3, 0, 7);
    h_set_log(&c, 1, fig7_leader, 10, 7);
    h_set_log(&c, 3, fig7_leader, 10, 7);
    raft_term fterm = n ? f[n - 1] : 0;
    h_set_log(&c, 2, f, n, fterm > 7 ? fterm : 7);
    h_boot(&c);
    h_elect(&c, 1);
    cr_assert_eq(h_status(&c, 1).term, 8);
    h_tick_all(&c, 5);
    struct raft_status l = h_status(&c, 1);
    cr_assert_eq(l.last_index, 11);
    cr_assert_eq(l.commit, 11);
    cr_assert_eq(c.nodes[2].n_log, 11, "follower log has exactly the leader's entries");
    for (raft_index i = 1; i <= 10; i++)
        cr_assert_eq(h_log_term(&c, 2, i), fig7_leader[i - 1], "index %llu",
                     (unsigned long long)i);
    cr_assert_eq(h_log_term(&c, 2, 11), 8);
    cr_assert_eq(h_status(&c, 2).commit, 11);
    cr_assert_eq(c.nodes[2].applied, 11);
    h_free(&c);
}

Test(raft_replication, figure7_a_missing_one)
{
    fig7_case((raft_term[]){1, 1, 1, 4, 4, 5, 5, 6, 6}, 9);
}
Test(raft_replication, figure7_b_missing_many) { fig7_case((raft_term[]){1, 1, 1, 4}, 4); }
Test(raft_replication, figure7_c_extra_same_term)
{
    fig7_case((raft_term[]){1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6}, 11);
}
Test(raft_replication, figure7_d_extra_later_term)
{
    fig7_case((raft_term[]){1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7}, 12);
}
Test(raft_replication, figure7_e_missing_and_extra)
{
    fig7_case((raft_term[]){1, 1, 1, 4, 4, 4, 4}, 7);
}
Test(raft_replication, figure7_f_divergent_terms)
{
    fig7_case((raft_term[]){1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3}, 11);
}

/* Paper Figure 8 (c): leader of term 4 holds index 2 of term 2 on a majority; it must not
 * count replicas of that entry, only commit it with an entry of term 4. */
Test(raft_replication, figure8_no_commit_of_previous_term_by_counting)
{
    static struct raft_entry ents[] = {{.term = 1, .index = 1}, {.term = 2, .index = 2}};
    struct raft_config cfg;
    raft_config_default(&cfg, 1, 8);
    cfg.pre_vote = false;
    struct raft_persisted p = {.hs = {.term = 3, .commit = 1}, .entries = ents, .n_entries = 2};
    p.initial.n_voters = 5;
    for (int i = 0; i < 5; i++) p.initial.voters[i] = (raft_id)(i + 1);
    struct raft *r;
    cr_assert_eq(raft_new(&cfg, &p, &r), RAFT_OK);
    struct raft_status st;
    for (int t = 0; t < 40; t++) {
        raft_status(r, &st);
        if (st.role == RAFT_CANDIDATE) break;
        raft_tick(r);
    }
    cr_assert_eq(st.term, 4);
    for (raft_id v = 2; v <= 3; v++) {
        struct raft_msg m = {.type = RAFT_MSG_VOTE_RESP, .from = v, .to = 1, .term = 4};
        cr_assert_eq(raft_step(r, &m), RAFT_OK);
    }
    raft_status(r, &st);
    cr_assert_eq(st.role, RAFT_LEADER);
    cr_assert_eq(st.last_index, 3, "no-op of term 4 at index 3");
    struct raft_ready rd;
    raft_ready(r, &rd);
    raft_advance(r); /* leader's log durable through 3 */
    for (raft_id v = 2; v <= 3; v++) {
        struct raft_msg m = {.type = RAFT_MSG_APPEND_RESP, .from = v, .to = 1, .term = 4,
                             .index = 2};
        cr_assert_eq(raft_step(r, &m), RAFT_OK);
    }
    raft_status(r, &st);
    cr_assert_eq(st.commit, 1, "index 2 (term 2) is on S1,S2,S3 but must not commit");
    struct raft_msg m = {.type = RAFT_MSG_APPEND_RESP, .from = 2, .to = 1, .term = 4, .index = 3};
    raft_step(r, &m);
    raft_status(r, &st);
    cr_assert_eq(st.commit, 1, "index 3 only on two of five");
    m.from = 3;
    raft_step(r, &m);
    raft_status(r, &st);
    cr_assert_eq(st.commit, 3, "term-4 entry on a majority commits 2 and 3");
    raft_free(r);
}

Test(raft_replication, fast_backoff_skips_whole_terms)
{
    struct h_cluster c;
    h_init(&c, 3, 0, 9);
    raft_term lead[] = {1, 1, 1, 3, 3, 3, 3, 3, 3, 3};
    raft_term foll[] = {1, 1, 1, 2, 2, 2, 2, 2};
    h_set_log(&c, 1, lead, 10, 3);
    h_set_log(&c, 3, lead, 10, 3);
    h_set_log(&c, 2, foll, 8, 3);
    h_boot(&c);
    h_isolate(&c, 2, true);
    h_elect(&c, 1);
    h_tick_all(&c, 2);
    h_isolate(&c, 2, false);
    size_t before = c.rejects[RAFT_MSG_APPEND_RESP];
    h_tick_all(&c, 3);
    cr_assert_eq(c.rejects[RAFT_MSG_APPEND_RESP] - before, 1,
                 "one rejection: the hint skips all of term 2");
    cr_assert_eq(c.nodes[2].n_log, 11);
    cr_assert_eq(h_log_term(&c, 2, 4), 3);
    cr_assert_eq(h_status(&c, 2).commit, 11);
    h_free(&c);
}

Test(raft_replication, leader_counts_itself_only_when_durable)
{
    struct h_cluster c;
    h_init(&c, 3, 0, 10);
    h_boot(&c);
    h_elect(&c, 1);
    h_tick_all(&c, 2);
    c.cut[1][3] = true;
    struct raft *l = c.nodes[1].r;
    raft_index idx = h_propose(&c, 1, "v");
    struct raft_ready rd;
    cr_assert_eq(raft_ready(l, &rd), RAFT_OK);
    for (size_t i = 0; i < rd.n_msgs; i++) h_queue_msg(&c, &rd.msgs[i]);
    h_settle(&c); /* node 2 persists and acks while the leader's write is pending */
    struct raft_status st = h_status(&c, 1);
    cr_assert_eq(st.commit, idx - 1, "2 of 3 only once the leader's own entry is durable");
    for (size_t i = 0; i < rd.n_entries; i++) h_log_push(&c.nodes[1], &rd.entries[i]);
    raft_advance(l);
    st = h_status(&c, 1);
    cr_assert_eq(st.commit, idx);
    h_settle(&c);
    h_free(&c);
}

Test(raft_replication, batches_bounded_by_max_msg_bytes)
{
    struct h_cluster c;
    h_init(&c, 2, 0, 12);
    for (int i = 1; i <= 2; i++) c.nodes[i].cfg.max_msg_bytes = 10;
    h_boot(&c);
    h_elect(&c, 1);
    h_tick_all(&c, 2);
    c.cut[1][2] = true;
    for (int i = 0; i < 10; i++) h_propose(&c, 1, "abcd");
    h_settle(&c);
    c.cut[1][2] = false;
    size_t before = c.sent[RAFT_MSG_APPEND];
    h_tick_all(&c, 20);
    cr_assert_geq(c.sent[RAFT_MSG_APPEND] - before, 5, "2 entries of 4 bytes per message");
    cr_assert_eq(h_status(&c, 2).commit, 11);
    cr_assert_eq(c.nodes[2].applied, 11);
    h_free(&c);
}

Test(raft_replication, follower_forwards_proposal_and_gets_result)
{
    struct h_cluster c;
    h_init(&c, 3, 0, 13);
    h_boot(&c);
    h_elect(&c, 1);
    h_tick_all(&c, 2);
    raft_index idx = 99;
    cr_assert_eq(raft_propose(c.nodes[2].r, 77, "fw", 2, &idx, NULL), RAFT_OK);
    cr_assert_eq(idx, 0, "forwarded: index comes later");
    h_settle(&c);
    h_tick_all(&c, 2);
    cr_assert_eq(c.nodes[2].n_props, 1);
    cr_assert_eq(c.nodes[2].props[0].ctx, 77);
    cr_assert_eq(c.nodes[2].props[0].err, RAFT_OK);
    cr_assert_eq(c.nodes[2].props[0].index, 2);
    cr_assert_eq(c.nodes[2].props[0].term, 1);
    cr_assert_eq(c.nodes[3].applied_len[2], 2, "committed everywhere");
    h_free(&c);
}

Test(raft_replication, proposal_limits)
{
    struct h_cluster c;
    h_init(&c, 3, 0, 14);
    for (int i = 1; i <= 3; i++) {
        c.nodes[i].cfg.max_entry_bytes = 8;
        c.nodes[i].cfg.max_uncommitted_bytes = 20;
    }
    h_boot(&c);
    cr_assert_eq(raft_propose(c.nodes[2].r, 1, "x", 1, NULL, NULL), RAFT_ERR_NO_LEADER);
    h_elect(&c, 1);
    h_tick_all(&c, 2);
    cr_assert_eq(raft_propose(c.nodes[1].r, 1, "123456789", 9, NULL, NULL), RAFT_ERR_TOO_BIG);
    cr_assert_eq(raft_propose(c.nodes[2].r, 1, "123456789", 9, NULL, NULL), RAFT_ERR_TOO_BIG);
    h_isolate(&c, 1, true);
    int ok = 0, rc = RAFT_OK;
    for (int i = 0; i < 10 && rc == RAFT_OK; i++) {
        rc = raft_propose(c.nodes[1].r, 1, "12345678", 8, NULL, NULL);
        ok += rc == RAFT_OK;
    }
    cr_assert_eq(rc, RAFT_ERR_OVERLOAD);
    cr_assert_eq(ok, 2, "16 bytes fit, 24 would not");
    h_settle(&c); /* the APPENDs are lost */
    /* A forwarded proposal over the limit comes back as a rejection with the error. */
    h_isolate(&c, 1, false);
    h_settle(&c);
    cr_assert_eq(raft_propose(c.nodes[2].r, 5, "12345678", 8, NULL, NULL), RAFT_OK);
    h_settle(&c);
    cr_assert_eq(c.nodes[2].n_props, 1);
    cr_assert_eq(c.nodes[2].props[0].err, RAFT_ERR_OVERLOAD, "err %d",
                 c.nodes[2].props[0].err);
    h_tick_all(&c, 10); /* the lost APPENDs are resent; both commit, room again */
    cr_assert_eq(raft_propose(c.nodes[1].r, 1, "12345678", 8, NULL, NULL), RAFT_OK);
    h_free(&c);
}

Test(raft_replication, forwarded_proposal_reported_when_leader_changes)
{
    struct h_cluster c;
    h_init(&c, 3, 0, 15);
    h_boot(&c);
    h_elect(&c, 1);
    h_tick_all(&c, 2);
    c.cut[2][1] = true; /* the forward is lost */
    cr_assert_eq(raft_propose(c.nodes[2].r, 9, "p", 1, NULL, NULL), RAFT_OK);
    h_settle(&c);
    c.cut[2][1] = false;
    h_isolate(&c, 1, true);
    h_tick_all(&c, 40);
    cr_assert_eq(c.nodes[2].n_props, 1);
    cr_assert_eq(c.nodes[2].props[0].ctx, 9);
    cr_assert_eq(c.nodes[2].props[0].err, RAFT_ERR_UNKNOWN_OUTCOME);
    /* A proposal arriving at a member that is no longer leader is definitely dropped. */
    struct raft_msg m = {.type = RAFT_MSG_PROPOSE, .from = 3, .to = 1, .term = 1, .ctx = 4,
                         .n_entries = 1,
                         .entries = &(struct raft_entry){.len = 1, .data = (uint8_t *)"q"}};
    cr_assert_neq(h_role(&c, 1), RAFT_LEADER);
    raft_step(c.nodes[1].r, &m);
    struct raft_ready rd;
    cr_assert_eq(raft_ready(c.nodes[1].r, &rd), RAFT_OK);
    cr_assert_eq(rd.n_msgs, 1);
    cr_assert_eq(rd.msgs[0].type, RAFT_MSG_PROPOSE_RESP);
    cr_assert(rd.msgs[0].reject);
    cr_assert_eq(rd.msgs[0].err, RAFT_ERR_DROPPED);
    raft_advance(c.nodes[1].r);
    h_free(&c);
}

Test(raft_replication, lagging_follower_catches_up_through_probe_and_pipeline)
{
    struct h_cluster c;
    h_init(&c, 3, 0, 16);
    for (int i = 1; i <= 3; i++) c.nodes[i].cfg.max_inflight_msgs = 2;
    h_boot(&c);
    h_elect(&c, 1);
    h_tick_all(&c, 2);
    h_isolate(&c, 3, true);
    for (int i = 0; i < 50; i++) h_propose(&c, 1, "e");
    h_tick_all(&c, 2);
    cr_assert_eq(h_status(&c, 1).commit, 51);
    cr_assert_eq(h_status(&c, 3).commit, 1);
    h_isolate(&c, 3, false);
    h_tick_all(&c, 10);
    cr_assert_eq(c.nodes[3].applied, 51);
    struct raft_status st = h_status(&c, 1);
    cr_assert_eq(st.progress[2].match, 51);
    cr_assert_eq(st.progress[2].state, 1, "replicate");
    h_free(&c);
}

Test(raft_replication, unreachable_peer_goes_back_to_probe)
{
    struct h_cluster c;
    h_init(&c, 3, 0, 17);
    h_boot(&c);
    h_elect(&c, 1);
    h_propose(&c, 1, "a");
    h_tick_all(&c, 3);
    struct raft_status st = h_status(&c, 1);
    cr_assert_eq(st.progress[1].state, 1);
    raft_report_unreachable(c.nodes[1].r, 2);
    st = h_status(&c, 1);
    cr_assert_eq(st.progress[1].state, 0);
    cr_assert_eq(st.progress[1].next, st.progress[1].match + 1);
    h_propose(&c, 1, "b");
    h_tick_all(&c, 3);
    st = h_status(&c, 1);
    cr_assert_eq(st.progress[1].state, 1);
    cr_assert_eq(st.progress[1].match, 3);
    h_free(&c);
}

/* A leader appends a forwarded proposal only in the term it was forwarded in: one sent in
 * an older term is refused as DROPPED (definitely not appended), so the proposer can rely
 * on "an entry from my proposal forwarded in term T carries term T". */
Test(raft_replication, leader_refuses_a_proposal_forwarded_in_an_older_term)
{
    struct h_cluster c;
    h_init(&c, 3, 0, 16);
    h_boot(&c);
    h_elect(&c, 1);
    h_tick_all(&c, 2);
    /* two transfers: node 1 leads again, in a later term */
    cr_assert_eq(raft_transfer_leadership(c.nodes[1].r, 2), RAFT_OK);
    h_tick_all(&c, 5);
    cr_assert_eq(h_role(&c, 2), RAFT_LEADER);
    cr_assert_eq(raft_transfer_leadership(c.nodes[2].r, 1), RAFT_OK);
    h_tick_all(&c, 5);
    raft_term t = h_status(&c, 1).term;
    cr_assert_eq(h_role(&c, 1), RAFT_LEADER);
    cr_assert_geq(t, 2, "test needs a leader past term 1");
    raft_index last = h_status(&c, 1).last_index;
    struct raft_msg m = {.type = RAFT_MSG_PROPOSE, .from = 3, .to = 1, .term = t - 1, .ctx = 7,
                         .n_entries = 1,
                         .entries = &(struct raft_entry){.len = 1, .data = (uint8_t *)"o"}};
    raft_step(c.nodes[1].r, &m);
    cr_assert_eq(h_status(&c, 1).last_index, last, "stale-term proposal was appended");
    struct raft_ready rd;
    cr_assert_eq(raft_ready(c.nodes[1].r, &rd), RAFT_OK);
    bool seen = false;
    for (size_t i = 0; i < rd.n_msgs; i++)
        if (rd.msgs[i].type == RAFT_MSG_PROPOSE_RESP && rd.msgs[i].ctx == 7) {
            seen = true;
            cr_assert(rd.msgs[i].reject);
            cr_assert_eq(rd.msgs[i].err, RAFT_ERR_DROPPED);
        }
    cr_assert(seen, "no answer to the stale proposal");
    raft_advance(c.nodes[1].r);
    /* the same proposal in the current term is appended, at the leader's term */
    m.term = t;
    m.ctx = 8;
    raft_step(c.nodes[1].r, &m);
    cr_assert_eq(h_status(&c, 1).last_index, last + 1);
    raft_term et = 0;
    cr_assert_eq(raft_term_at(c.nodes[1].r, last + 1, &et), RAFT_OK);
    cr_assert_eq(et, t);
    h_free(&c);
}
