/*
 * test_raft_snapshot.c - log compaction behind an application snapshot, InstallSnapshot to a
 * lagging follower (metadata through the core, data beside it), failure reporting,
 * restart from a snapshot, configuration carried by the snapshot.
 */
#include "raft_harness.h"

Test(raft_snapshot, compact_rules)
{
    struct h_cluster c;
    h_init(&c, 1, 0, 1);
    h_boot(&c);
    h_tick(&c, 1);
    h_settle(&c);
    for (int i = 0; i < 9; i++) h_propose(&c, 1, "e");
    h_settle(&c);
    struct raft *r = c.nodes[1].r;
    cr_assert_eq(raft_compact(r, 11), RAFT_ERR_UNAVAILABLE, "beyond applied");
    cr_assert_eq(raft_compact(r, 6), RAFT_OK);
    cr_assert_eq(raft_compact(r, 6), RAFT_ERR_COMPACTED);
    cr_assert_eq(raft_compact(r, 3), RAFT_ERR_COMPACTED);
    struct raft_status st = h_status(&c, 1);
    cr_assert_eq(st.first_index, 7);
    cr_assert_eq(st.last_index, 10);
    cr_assert_eq(st.snapshot.index, 6);
    cr_assert_eq(st.snapshot.term, 1);
    cr_assert_eq(st.snapshot.conf.n_voters, 1);
    raft_term t;
    cr_assert_eq(raft_term_at(r, 5, &t), RAFT_ERR_COMPACTED);
    cr_assert_eq(raft_term_at(r, 6, &t), RAFT_OK);
    cr_assert_eq(t, 1);
    const struct raft_entry *e;
    cr_assert_eq(raft_entry_at(r, 6, &e), RAFT_ERR_COMPACTED);
    cr_assert_eq(raft_entry_at(r, 7, &e), RAFT_OK);
    cr_assert_eq(e->index, 7);
    cr_assert_eq(raft_entry_at(r, 11, &e), RAFT_ERR_UNAVAILABLE);
    h_free(&c);
}

static void lagging(struct h_cluster *c, uint64_t seed)
{
    h_init(c, 3, 0, seed);
    h_boot(c);
    h_elect(c, 1);
    h_tick_all(c, 2);
    h_isolate(c, 3, true);
    for (int i = 0; i < 20; i++) h_propose(c, 1, "e");
    h_tick_all(c, 2);
    cr_assert_eq(h_status(c, 1).commit, 21);
    cr_assert_eq(raft_compact(c->nodes[1].r, 15), RAFT_OK);
}

Test(raft_snapshot, lagging_follower_installs_snapshot_then_catches_up)
{
    struct h_cluster c;
    lagging(&c, 2);
    h_isolate(&c, 3, false);
    size_t snaps = c.sent[RAFT_MSG_SNAPSHOT];
    h_tick_all(&c, 10);
    cr_assert_eq(c.sent[RAFT_MSG_SNAPSHOT] - snaps, 1);
    cr_assert_eq(c.nodes[3].snapshots_installed, 1);
    cr_assert_eq(c.nodes[3].snap.index, 15);
    cr_assert_eq(c.nodes[3].snap.term, 1);
    cr_assert_eq(c.nodes[3].snap.conf.n_voters, 3);
    struct raft_status st = h_status(&c, 3);
    cr_assert_eq(st.commit, 21);
    cr_assert_eq(st.first_index, 16);
    cr_assert_eq(c.nodes[3].applied, 21, "entries after the snapshot applied");
    cr_assert_eq(c.nodes[3].n_log, 6);
    cr_assert_eq(c.nodes[3].log[0].index, 16);
    st = h_status(&c, 1);
    cr_assert_eq(st.progress[2].match, 21);
    cr_assert_eq(st.progress[2].state, 1);
    /* Restart from the snapshot: same state back. */
    h_restart(&c, 3);
    st = h_status(&c, 3);
    cr_assert_eq(st.snapshot.index, 15);
    cr_assert_eq(st.last_index, 21);
    cr_assert_eq(st.conf.n_voters, 3);
    h_tick_all(&c, 3);
    cr_assert_eq(h_status(&c, 3).commit, 21);
    h_free(&c);
}

Test(raft_snapshot, failed_transfer_is_retried)
{
    struct h_cluster c;
    lagging(&c, 3);
    h_isolate(&c, 3, false);
    /* Run until the leader decides to send a snapshot, then lose it. */
    for (int t = 0; t < 20 && h_status(&c, 1).progress[2].state != 2; t++) {
        h_tick(&c, 1);
        do h_process_all(&c);
        while (h_status(&c, 1).progress[2].state != 2 && h_step_one(&c));
    }
    c.cut[1][3] = true;
    h_drop_queue(&c);
    h_settle(&c);
    cr_assert_eq(c.nodes[3].snapshots_installed, 0);
    struct raft_status st = h_status(&c, 1);
    cr_assert_eq(st.progress[2].state, 2, "snapshot state");
    size_t snaps = c.sent[RAFT_MSG_SNAPSHOT];
    h_tick_all(&c, 3);
    cr_assert_eq(c.sent[RAFT_MSG_SNAPSHOT], snaps, "no resend while waiting");
    raft_report_snapshot(c.nodes[1].r, 3, false);
    st = h_status(&c, 1);
    cr_assert_eq(st.progress[2].state, 0, "back to probe");
    h_isolate(&c, 3, false);
    h_tick_all(&c, 10);
    cr_assert_eq(h_status(&c, 3).commit, 21);
    cr_assert_eq(h_status(&c, 1).progress[2].match, 21);
    h_free(&c);
}

Test(raft_snapshot, follower_with_entry_only_fast_forwards_commit)
{
    static struct raft_entry ents[] = {{.term = 1, .index = 1}, {.term = 1, .index = 2},
                                       {.term = 1, .index = 3}};
    struct raft_config cfg;
    raft_config_default(&cfg, 2, 1);
    struct raft_persisted p = {.hs = {.term = 1}, .entries = ents, .n_entries = 3};
    p.initial.n_voters = 2;
    p.initial.voters[0] = 1;
    p.initial.voters[1] = 2;
    struct raft *r;
    cr_assert_eq(raft_new(&cfg, &p, &r), RAFT_OK);
    struct raft_msg m = {.type = RAFT_MSG_SNAPSHOT, .from = 1, .to = 2, .term = 1};
    m.snapshot.index = 2;
    m.snapshot.term = 1;
    m.snapshot.conf = p.initial;
    cr_assert_eq(raft_step(r, &m), RAFT_OK);
    struct raft_ready rd;
    cr_assert_eq(raft_ready(r, &rd), RAFT_OK);
    cr_assert_null(rd.snapshot, "no install: the entry is already here");
    cr_assert_eq(rd.hs.commit, 2);
    cr_assert_eq(rd.n_committed, 2);
    cr_assert_eq(rd.n_msgs, 1);
    cr_assert_eq(rd.msgs[0].type, RAFT_MSG_APPEND_RESP);
    cr_assert_eq(rd.msgs[0].index, 2);
    raft_advance(r);
    /* A snapshot with a different term at that index replaces the log. */
    m.snapshot.index = 3;
    m.snapshot.term = 1;
    m.term = 2;
    m.snapshot.index = 5;
    m.snapshot.term = 2;
    cr_assert_eq(raft_step(r, &m), RAFT_OK);
    cr_assert_eq(raft_ready(r, &rd), RAFT_OK);
    cr_assert_not_null(rd.snapshot);
    cr_assert_eq(rd.snapshot->index, 5);
    cr_assert_eq(rd.n_committed, 0);
    raft_advance(r);
    struct raft_status st;
    raft_status(r, &st);
    cr_assert_eq(st.commit, 5);
    cr_assert_eq(st.applied, 5);
    cr_assert_eq(st.first_index, 6);
    cr_assert_eq(st.last_index, 5);
    /* An older snapshot is answered with the commit index and not installed. */
    m.snapshot.index = 4;
    cr_assert_eq(raft_step(r, &m), RAFT_OK);
    cr_assert_eq(raft_ready(r, &rd), RAFT_OK);
    cr_assert_null(rd.snapshot);
    cr_assert_eq(rd.msgs[0].index, 5);
    raft_advance(r);
    raft_free(r);
}

Test(raft_snapshot, new_member_gets_configuration_from_snapshot)
{
    struct h_cluster c;
    h_init(&c, 3, 0, 4);
    h_boot(&c);
    h_elect(&c, 1);
    h_tick_all(&c, 2);
    struct raft_conf_change cc = {.type = RAFT_CC_ADD_LEARNER, .node = 4};
    cr_assert_eq(raft_propose_conf_change(c.nodes[1].r, 0, &cc, NULL, NULL), RAFT_OK);
    for (int i = 0; i < 5; i++) h_propose(&c, 1, "e");
    h_tick_all(&c, 3);
    cr_assert_eq(raft_compact(c.nodes[1].r, h_status(&c, 1).applied), RAFT_OK);
    c.n = 4;
    raft_config_default(&c.nodes[4].cfg, 4, 44);
    h_start(&c, 4, 0);
    h_tick_all(&c, 5);
    struct raft_status st = h_status(&c, 4);
    cr_assert_eq(c.nodes[4].snapshots_installed, 1);
    cr_assert_eq(st.conf.n_learners, 1);
    cr_assert_eq(st.conf.learners[0], 4);
    cr_assert_eq(st.commit, h_status(&c, 1).commit);
    h_free(&c);
}
