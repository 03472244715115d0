/*
 * test_raft_basic.c - a single-voter group: election on the first tick, no-op, proposals,
 * commit only at raft_advance (durability), ReadIndex, restart from persisted state, and
 * the Ready/advance contract (batch stays valid until advance).
 */
#include "raft_harness.h"

static struct raft *solo(struct raft_config *cfg, struct raft_persisted *p)
{
    raft_config_default(cfg, 1, 42);
    memset(p, 0, sizeof(*p));
    p->initial.n_voters = 1;
    p->initial.voters[0] = 1;
    struct raft *r = NULL;
    cr_assert_eq(raft_new(cfg, p, &r), RAFT_OK);
    return r;
}

Test(raft_basic, single_voter_leads_on_first_tick_and_commits_noop_when_durable)
{
    struct raft_config cfg;
    struct raft_persisted p;
    struct raft *r = solo(&cfg, &p);
    struct raft_status st;
    raft_tick(r);
    raft_status(r, &st);
    cr_assert_eq(st.role, RAFT_LEADER);
    cr_assert_eq(st.term, 1);
    cr_assert_eq(st.last_index, 1, "no-op appended");
    cr_assert_eq(st.commit, 0, "not committed before it is durable");

    struct raft_ready rd;
    cr_assert(raft_has_ready(r));
    cr_assert_eq(raft_ready(r, &rd), RAFT_OK);
    cr_assert(rd.hs_changed);
    cr_assert_eq(rd.hs.term, 1);
    cr_assert_eq(rd.hs.vote, 1);
    cr_assert(rd.must_sync);
    cr_assert_eq(rd.n_entries, 1);
    cr_assert_eq(rd.entries[0].index, 1);
    cr_assert_eq(rd.entries[0].term, 1);
    cr_assert_eq(rd.entries[0].len, 0);
    cr_assert(rd.ss_changed);
    cr_assert_eq(rd.ss.role, RAFT_LEADER);
    cr_assert_eq(rd.n_committed, 0);
    cr_assert_eq(raft_ready(r, &rd), RAFT_ERR_NOT_READY);
    raft_advance(r);
    raft_status(r, &st);
    cr_assert_eq(st.commit, 1);
    cr_assert_eq(st.stable_index, 1);

    cr_assert_eq(raft_ready(r, &rd), RAFT_OK);
    cr_assert_eq(rd.n_committed, 1);
    cr_assert_eq(rd.committed[0].index, 1);
    cr_assert_eq(rd.hs.commit, 1);
    cr_assert_not(rd.must_sync, "only commit changed");
    raft_advance(r);
    raft_status(r, &st);
    cr_assert_eq(st.applied, 1);
    cr_assert_not(raft_has_ready(r));
    raft_free(r);
}

static void drain(struct raft *r)
{
    struct raft_ready rd;
    while (raft_has_ready(r)) {
        cr_assert_eq(raft_ready(r, &rd), RAFT_OK);
        raft_advance(r);
    }
}

Test(raft_basic, propose_returns_index_and_commits_after_advance)
{
    struct raft_config cfg;
    struct raft_persisted p;
    struct raft *r = solo(&cfg, &p);
    raft_tick(r);
    drain(r);
    raft_index idx = 0;
    raft_term t = 0;
    cr_assert_eq(raft_propose(r, 7, "hello", 5, &idx, &t), RAFT_OK);
    cr_assert_eq(idx, 2);
    cr_assert_eq(t, 1);
    struct raft_ready rd;
    cr_assert_eq(raft_ready(r, &rd), RAFT_OK);
    cr_assert_eq(rd.n_entries, 1);
    cr_assert_eq(rd.n_committed, 0);
    /* The batch stays valid while more input arrives before advance. */
    cr_assert_eq(raft_propose(r, 8, "world", 5, &idx, &t), RAFT_OK);
    cr_assert_eq(idx, 3);
    cr_assert_eq(memcmp(rd.entries[0].data, "hello", 5), 0);
    raft_advance(r);
    struct raft_status st;
    raft_status(r, &st);
    cr_assert_eq(st.commit, 2, "entry 3 is not durable yet");
    cr_assert_eq(raft_ready(r, &rd), RAFT_OK);
    cr_assert_eq(rd.n_entries, 1);
    cr_assert_eq(rd.entries[0].index, 3);
    cr_assert_eq(rd.n_committed, 1);
    cr_assert_eq(rd.committed[0].index, 2);
    cr_assert_eq(memcmp(rd.committed[0].data, "hello", 5), 0);
    raft_advance(r);
    cr_assert_eq(raft_ready(r, &rd), RAFT_OK);
    cr_assert_eq(rd.n_committed, 1);
    cr_assert_eq(rd.committed[0].index, 3);
    raft_advance(r);
    raft_free(r);
}

Test(raft_basic, read_index_single_voter_waits_for_noop_then_immediate)
{
    struct raft_config cfg;
    struct raft_persisted p;
    struct raft *r = solo(&cfg, &p);
    cr_assert_eq(raft_read_index(r, 1), RAFT_ERR_NO_LEADER);
    raft_tick(r);
    cr_assert_eq(raft_read_index(r, 2), RAFT_OK);
    struct raft_ready rd;
    cr_assert_eq(raft_ready(r, &rd), RAFT_OK);
    cr_assert_eq(rd.n_reads, 0, "no-op of the term not committed yet");
    raft_advance(r);
    cr_assert_eq(raft_ready(r, &rd), RAFT_OK);
    cr_assert_eq(rd.n_reads, 1);
    cr_assert_eq(rd.reads[0].ctx, 2);
    cr_assert_eq(rd.reads[0].err, RAFT_OK);
    cr_assert_eq(rd.reads[0].index, 1);
    raft_advance(r);
    cr_assert_eq(raft_read_index(r, 3), RAFT_OK);
    cr_assert_eq(raft_ready(r, &rd), RAFT_OK);
    cr_assert_eq(rd.n_reads, 1);
    cr_assert_eq(rd.reads[0].ctx, 3);
    cr_assert_eq(rd.reads[0].index, 1);
    raft_advance(r);
    raft_free(r);
}

Test(raft_basic, restart_redelivers_committed_after_applied)
{
    struct h_cluster c;
    h_init(&c, 1, 0, 5);
    h_boot(&c);
    h_tick(&c, 1);
    h_settle(&c);
    for (int i = 0; i < 5; i++) h_propose(&c, 1, "x");
    h_settle(&c);
    struct raft_status st = h_status(&c, 1);
    cr_assert_eq(st.commit, 6);
    cr_assert_eq(c.nodes[1].applied, 6);
    cr_assert_eq(c.nodes[1].hs.commit, 6);
    /* The application had applied only 3 when it crashed. */
    c.nodes[1].applied = 3;
    h_restart(&c, 1);
    st = h_status(&c, 1);
    cr_assert_eq(st.term, 1);
    cr_assert_eq(st.commit, 6);
    cr_assert_eq(st.last_index, 6);
    cr_assert_eq(st.role, RAFT_FOLLOWER);
    struct raft_ready rd;
    cr_assert_eq(raft_ready(c.nodes[1].r, &rd), RAFT_OK);
    cr_assert_eq(rd.n_committed, 3);
    cr_assert_eq(rd.committed[0].index, 4);
    cr_assert_eq(rd.committed[2].index, 6);
    cr_assert_eq(rd.n_entries, 0);
    raft_advance(c.nodes[1].r);
    c.nodes[1].applied = 6;
    h_tick(&c, 1);
    h_settle(&c);
    st = h_status(&c, 1);
    cr_assert_eq(st.role, RAFT_LEADER);
    cr_assert_eq(st.term, 2);
    cr_assert_eq(st.commit, 7);
    cr_assert_eq(c.nodes[1].applied_term[7], 2);
    h_free(&c);
}

Test(raft_basic, restart_with_applied_beyond_commit_raises_commit)
{
    struct h_cluster c;
    h_init(&c, 1, 0, 6);
    h_boot(&c);
    h_tick(&c, 1);
    h_settle(&c);
    h_propose(&c, 1, "a");
    h_settle(&c);
    c.nodes[1].hs.commit = 0; /* hard state written before the applied state */
    h_restart(&c, 1);
    struct raft_status st = h_status(&c, 1);
    cr_assert_eq(st.commit, 2);
    cr_assert_eq(st.applied, 2);
    h_free(&c);
}

Test(raft_basic, bad_arguments_are_rejected)
{
    struct raft_config cfg;
    struct raft_persisted p;
    struct raft *r = solo(&cfg, &p);
    struct raft_msg m = {.type = RAFT_MSG_HEARTBEAT, .from = 0, .to = 1, .term = 5};
    cr_assert_eq(raft_step(r, &m), RAFT_ERR_BAD_ARG);
    m.from = 2;
    m.to = 3;
    cr_assert_eq(raft_step(r, &m), RAFT_ERR_BAD_ARG);
    struct raft_entry e[2] = {{.term = 5, .index = 1}, {.term = 5, .index = 3}};
    struct raft_msg a = {.type = RAFT_MSG_APPEND, .from = 2, .to = 1, .term = 5, .index = 0,
                         .n_entries = 2, .entries = e};
    cr_assert_eq(raft_step(r, &a), RAFT_ERR_BAD_ARG);
    struct raft_status st;
    raft_status(r, &st);
    cr_assert_eq(st.term, 0, "a malformed message changes nothing");
    cr_assert_eq(st.last_index, 0);
    struct raft_config bad = cfg;
    bad.heartbeat_ticks = bad.election_ticks;
    struct raft *r2 = NULL;
    cr_assert_eq(raft_new(&bad, &p, &r2), RAFT_ERR_BAD_ARG);
    struct raft_entry gap = {.term = 1, .index = 2};
    p.entries = &gap;
    p.n_entries = 1;
    cr_assert_eq(raft_new(&cfg, &p, &r2), RAFT_ERR_CORRUPT);
    raft_free(r);
}

Test(raft_basic, advance_marks_stable_only_entries_still_in_the_log)
{
    struct raft_config cfg;
    raft_config_default(&cfg, 2, 3);
    struct raft_persisted p = {0};
    p.initial.n_voters = 2;
    p.initial.voters[0] = 1;
    p.initial.voters[1] = 2;
    struct raft *r;
    cr_assert_eq(raft_new(&cfg, &p, &r), RAFT_OK);
    struct raft_entry e1[] = {{.term = 1, .index = 1}, {.term = 1, .index = 2}};
    struct raft_msg a = {.type = RAFT_MSG_APPEND, .from = 1, .to = 2, .term = 1,
                         .n_entries = 2, .entries = e1};
    cr_assert_eq(raft_step(r, &a), RAFT_OK);
    struct raft_ready rd;
    cr_assert_eq(raft_ready(r, &rd), RAFT_OK);
    cr_assert_eq(rd.n_entries, 2);
    /* Before the batch is durable, a new leader overwrites index 2. */
    struct raft_entry e2[] = {{.term = 2, .index = 2, .len = 1, .data = (uint8_t *)"z"}};
    struct raft_msg b = {.type = RAFT_MSG_APPEND, .from = 1, .to = 2, .term = 2, .index = 1,
                         .log_term = 1, .n_entries = 1, .entries = e2};
    cr_assert_eq(raft_step(r, &b), RAFT_OK);
    cr_assert_eq(rd.entries[1].term, 1, "the batch out is unchanged");
    raft_advance(r);
    struct raft_status st;
    raft_status(r, &st);
    cr_assert_eq(st.stable_index, 1, "index 2 of term 1 is no longer in the log");
    cr_assert_eq(raft_ready(r, &rd), RAFT_OK);
    cr_assert_eq(rd.n_entries, 1);
    cr_assert_eq(rd.entries[0].index, 2);
    cr_assert_eq(rd.entries[0].term, 2);
    cr_assert(rd.must_sync);
    raft_advance(r);
    raft_status(r, &st);
    cr_assert_eq(st.stable_index, 2);
    raft_free(r);
}

Test(raft_basic, more_malformed_messages)
{
    struct raft_config cfg;
    struct raft_persisted p;
    struct raft *r = solo(&cfg, &p);
    struct raft_entry e[] = {{.term = 6, .index = 1}};
    struct raft_msg a = {.type = RAFT_MSG_APPEND, .from = 2, .to = 1, .term = 5,
                         .n_entries = 1, .entries = e};
    cr_assert_eq(raft_step(r, &a), RAFT_ERR_BAD_ARG, "entry term above message term");
    struct raft_msg pr = {.type = RAFT_MSG_PROPOSE, .from = 2, .to = 1, .term = 5};
    cr_assert_eq(raft_step(r, &pr), RAFT_ERR_BAD_ARG, "proposal without its entry");
    struct raft_msg s = {.type = RAFT_MSG_SNAPSHOT, .from = 2, .to = 1, .term = 5};
    s.snapshot.index = 3;
    s.snapshot.term = 5;
    cr_assert_eq(raft_step(r, &s), RAFT_ERR_BAD_ARG, "snapshot without voters");
    struct raft_msg t = {.type = 99, .from = 2, .to = 1, .term = 5};
    cr_assert_eq(raft_step(r, &t), RAFT_ERR_BAD_ARG);
    struct raft_msg self = {.type = RAFT_MSG_HEARTBEAT, .from = 1, .to = 1, .term = 5};
    cr_assert_eq(raft_step(r, &self), RAFT_ERR_BAD_ARG);
    struct raft_status st;
    raft_status(r, &st);
    cr_assert_eq(st.term, 0);
    cr_assert_not(raft_has_ready(r));
    raft_free(r);
}
