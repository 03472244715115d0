/*
 * test_node.c - the node core on one member: the entry envelope and log record codecs
 * reject corrupt bytes; writes, read barriers, batching (one fsync per loop turn), restart
 * replay, timeouts, cancel, shutdown, corruption on open and log compaction.
 *
 * Time is fake (now_ms advanced by the test); storage is pst_open_mem, and LevelDB in a
 * temporary directory for the restart-from-disk case.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node.h"
#include "node_entry.h"
#include "node_log.h"
#include "node_done.h"
#include "rc.h"

/* ------------------------------------------------------------------ helpers */

static uint64_t now_ms = 1000000;

/* One service loop turn: time passes, then node_run until nothing is left. */
static void turn(struct node *n, uint64_t step_ms)
{
    now_ms += step_ms;
    node_tick(n, now_ms);
    int guard = 0;
    do {
        cr_assert_eq(node_run(n, now_ms), RC_OK, "node_run: %s",
                     node_last_error(n) ? node_last_error(n) : "?");
        cr_assert_lt(++guard, 100, "node_has_work never settles");
    } while (node_has_work(n));
}

static bool is_leader(struct node *n)
{
    struct raft_status st;
    cr_assert_eq(node_raft_status(n, NODE_GROUP_DATA, &st), RC_OK);
    return st.role == RAFT_LEADER;
}

static void wait_leader(struct node *n)
{
    for (int i = 0; i < 400 && !is_leader(n); i++)
        turn(n, 50);
    cr_assert(is_leader(n), "single voter never became leader");
    turn(n, 50); /* let the leader's no-op commit and apply */
}

static struct node *open_node(struct pst_engine *e, struct node_config *cfg)
{
    struct node *n = NULL;
    char *err = NULL;
    int rc = node_open(e, cfg, now_ms, &n, &err);
    cr_assert_eq(rc, RC_OK, "node_open: %s", err ? err : "?");
    free(err);
    return n;
}

static uint64_t submit_set(struct node *n, const char *k, const char *v, struct done *d,
                           int *rc)
{
    char *argv[] = {"SET", (char *)k, (char *)v};
    size_t argvlen[] = {3, strlen(k), strlen(v)};
    struct node_origin o = {.actor = "alice", .client = "127.0.0.1:5000"};
    return node_write(n, NODE_GROUP_DATA, &o, 3, argv, argvlen, now_ms, on_done, d, rc);
}

static void expect_value(struct node *n, const char *k, const char *v)
{
    struct ns_kv kv;
    int rc = ns_get(node_ns(n, NODE_GROUP_DATA), k, strlen(k), &kv);
    cr_assert_eq(rc, RC_OK, "key %s missing (rc %d)", k, rc);
    cr_assert_eq(kv.vlen, strlen(v));
    cr_assert_eq(memcmp(kv.value, v, kv.vlen), 0, "key %s = %s, want %s", k, kv.value, v);
    ns_kv_clear(&kv);
}

static void expect_missing(struct node *n, const char *k)
{
    struct ns_kv kv;
    cr_assert_eq(ns_get(node_ns(n, NODE_GROUP_DATA), k, strlen(k), &kv), RC_NOTFOUND,
                 "key %s should not exist", k);
}

static struct pst_engine *mem_engine(void)
{
    struct pst_engine *e = NULL;
    cr_assert_eq(pst_open_mem(&e), RC_OK);
    return e;
}

/* Write count keys k<base>..; every write must complete RC_OK with +OK. */
static void write_keys(struct node *n, int base, int count)
{
    struct done *d = calloc((size_t)count, sizeof *d);
    for (int i = 0; i < count; i++) {
        char k[32], v[32];
        snprintf(k, sizeof k, "/k%d", base + i);
        snprintf(v, sizeof v, "v%d", base + i);
        int rc;
        cr_assert_neq(submit_set(n, k, v, &d[i], &rc), 0, "write refused: %d", rc);
    }
    for (int t = 0; t < 50 && d[count - 1].calls == 0; t++)
        turn(n, 10);
    for (int i = 0; i < count; i++) {
        cr_assert_eq(d[i].calls, 1);
        cr_assert_eq(d[i].rc, RC_OK);
        cr_assert_not_null(d[i].reply);
        cr_assert_eq(d[i].reply->type, NS_R_STATUS);
        done_clear(&d[i]);
    }
    free(d);
}

/* ------------------------------------------------------------------ entry envelope */

static uint8_t *sample_envelope(size_t *len)
{
    char *argv[] = {"SET", "/a/b", "x\0y"};
    size_t argvlen[] = {3, 4, 3};
    struct node_entry e = {
        .request_id = 0x0102030405060708ull, .time_ms = 1700000000123ull,
        .actor = "alice", .actor_len = 5, .client = "1.2.3.4:5", .client_len = 9,
        .argc = 3, .argv = argv, .argvlen = argvlen,
    };
    uint8_t *buf = NULL;
    cr_assert_eq(node_entry_encode(&e, &buf, len), RC_OK);
    return buf;
}

Test(node_entry, roundtrip_binary_safe)
{
    size_t len;
    uint8_t *buf = sample_envelope(&len);
    struct node_entry d;
    cr_assert_eq(node_entry_decode(buf, len, &d), RC_OK);
    cr_assert_eq(d.request_id, 0x0102030405060708ull);
    cr_assert_eq(d.time_ms, 1700000000123ull);
    cr_assert_str_eq(d.actor, "alice");
    cr_assert_str_eq(d.client, "1.2.3.4:5");
    cr_assert_eq(d.argc, 3);
    cr_assert_eq(d.argvlen[2], 3);
    cr_assert_eq(memcmp(d.argv[2], "x\0y", 3), 0);
    cr_assert_eq(d.argv[2][3], '\0');
    node_entry_clear(&d);
    free(buf);
}

Test(node_entry, rejects_truncation_and_trailing_bytes)
{
    size_t len;
    uint8_t *buf = sample_envelope(&len);
    struct node_entry d;
    for (size_t cut = 0; cut < len; cut++)
        cr_assert_eq(node_entry_decode(buf, cut, &d), RC_CORRUPT, "cut at %zu accepted", cut);
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, buf, len);
    longer[len] = 0;
    cr_assert_eq(node_entry_decode(longer, len + 1, &d), RC_CORRUPT);
    free(longer);
    free(buf);
}

Test(node_entry, bit_flips_never_crash_and_break_lengths)
{
    size_t len;
    uint8_t *buf = sample_envelope(&len);
    size_t last_len_at = len - 3 - 4; /* u32 length of the last argument */
    for (size_t i = 0; i < len; i++)
        for (int bit = 0; bit < 8; bit++) {
            buf[i] ^= (uint8_t)(1u << bit);
            struct node_entry d;
            int rc = node_entry_decode(buf, len, &d);
            cr_assert(rc == RC_OK || rc == RC_CORRUPT);
            bool structural = i == 0 || (i >= last_len_at && i < last_len_at + 4);
            if (structural)
                cr_assert_eq(rc, RC_CORRUPT, "flip of byte %zu bit %d accepted", i, bit);
            if (rc == RC_OK) { /* whatever decodes must re-encode to the same bytes */
                uint8_t *again;
                size_t alen;
                cr_assert_eq(node_entry_encode(&d, &again, &alen), RC_OK);
                cr_assert_eq(alen, len);
                cr_assert_eq(memcmp(again, buf, len), 0);
                free(again);
                node_entry_clear(&d);
            }
            buf[i] ^= (uint8_t)(1u << bit);
        }
    free(buf);
}

Test(node_entry, limits_enforced_on_encode_and_decode)
{
    char *argv[] = {"SET"};
    size_t argvlen[] = {3};
    char name[NODE_ENTRY_NAME_MAX + 2];
    memset(name, 'a', sizeof name - 1);
    name[sizeof name - 1] = 0;
    struct node_entry e = {.actor = name, .actor_len = strlen(name), .client = "", .argc = 1,
                           .argv = argv, .argvlen = argvlen};
    uint8_t *buf;
    size_t len;
    cr_assert_eq(node_entry_encode(&e, &buf, &len), RC_BADARG, "over-long actor accepted");
    e.actor_len = 3;
    e.argc = 0;
    cr_assert_eq(node_entry_encode(&e, &buf, &len), RC_BADARG, "argc 0 accepted");
    /* A huge argc with few bytes must be refused before allocating for it. */
    uint8_t hostile[NODE_ENTRY_HEADER_BYTES] = {NODE_ENTRY_VERSION};
    hostile[21] = 0x00, hostile[22] = 0x01, hostile[23] = 0x00, hostile[24] = 0x00;
    struct node_entry d;
    cr_assert_eq(node_entry_decode(hostile, sizeof hostile, &d), RC_CORRUPT);
}

/* ------------------------------------------------------------------ log records */

Test(node_log, entry_record_rejects_any_flip_truncation_or_wrong_index)
{
    uint8_t data[] = "payload bytes";
    struct raft_entry e = {.term = 7, .index = 42, .type = RAFT_ENTRY_NORMAL,
                           .len = sizeof data, .data = data};
    size_t len;
    uint8_t *rec = node_log_entry_encode(&e, &len);
    cr_assert_not_null(rec);
    cr_assert_eq(len, NODE_LOG_ENTRY_OVERHEAD + sizeof data);
    struct raft_entry d;
    cr_assert_eq(node_log_entry_decode(42, rec, len, &d), RC_OK);
    cr_assert_eq(d.term, 7);
    cr_assert_eq(d.len, sizeof data);
    cr_assert_eq(memcmp(d.data, data, sizeof data), 0);
    free(d.data);
    cr_assert_eq(node_log_entry_decode(43, rec, len, &d), RC_CORRUPT, "wrong index accepted");
    for (size_t cut = 0; cut < len; cut++)
        cr_assert_eq(node_log_entry_decode(42, rec, cut, &d), RC_CORRUPT);
    for (size_t i = 0; i < len; i++)
        for (int bit = 0; bit < 8; bit++) {
            rec[i] ^= (uint8_t)(1u << bit);
            cr_assert_eq(node_log_entry_decode(42, rec, len, &d), RC_CORRUPT,
                         "flip byte %zu bit %d accepted", i, bit);
            rec[i] ^= (uint8_t)(1u << bit);
        }
    free(rec);
}

Test(node_log, hard_state_and_snapshot_records_reject_flips)
{
    struct raft_hard_state hs = {.term = 3, .vote = 2, .commit = 99}, hd;
    uint8_t rec[NODE_LOG_HS_BYTES];
    node_log_hs_encode(&hs, rec);
    cr_assert_eq(node_log_hs_decode(rec, sizeof rec, &hd), RC_OK);
    cr_assert_eq(hd.commit, 99);
    cr_assert_eq(hd.vote, 2);
    for (size_t i = 0; i < sizeof rec; i++) {
        rec[i] ^= 0x10;
        cr_assert_eq(node_log_hs_decode(rec, sizeof rec, &hd), RC_CORRUPT);
        rec[i] ^= 0x10;
    }
    struct raft_snapshot_meta m = {.index = 50, .term = 4}, md;
    m.conf.n_voters = 3, m.conf.voters[0] = 1, m.conf.voters[1] = 2, m.conf.voters[2] = 3;
    m.conf.n_learners = 1, m.conf.learners[0] = 9;
    size_t len;
    uint8_t *s = node_log_snap_encode(&m, &len);
    cr_assert_eq(node_log_snap_decode(s, len, &md), RC_OK);
    cr_assert_eq(md.index, 50);
    cr_assert_eq(md.conf.n_voters, 3);
    cr_assert_eq(md.conf.learners[0], 9);
    for (size_t i = 0; i < len; i++) {
        s[i] ^= 0x01;
        cr_assert_eq(node_log_snap_decode(s, len, &md), RC_CORRUPT);
        s[i] ^= 0x01;
    }
    for (size_t cut = 0; cut < len; cut++)
        cr_assert_eq(node_log_snap_decode(s, cut, &md), RC_CORRUPT);
    free(s);
}

Test(node_log, conflicting_suffix_is_replaced_and_reloads)
{
    struct pst_engine *e = mem_engine();
    struct node_log log;
    struct raft_entry *ents;
    size_t n;
    char *note = NULL, *err = NULL;
    struct raft_conf one = {.n_voters = 1, .voters = {1}};
    cr_assert_eq(node_log_load(e, 1, 0, &one, &log, &ents, &n, &note, &err), RC_OK);
    cr_assert_eq(n, 0);
    free(ents);
    struct raft_entry a[4] = {{1, 1, 0, 0, NULL}, {1, 2, 0, 0, NULL}, {1, 3, 0, 0, NULL},
                              {1, 4, 0, 0, NULL}};
    struct pst_batch *b = pst_batch_new();
    cr_assert_eq(node_log_put_entries(&log, b, a, 4), RC_OK);
    struct raft_entry c[1] = {{2, 3, 0, 0, NULL}}; /* term 2 replaces 3 and 4 */
    cr_assert_eq(node_log_put_entries(&log, b, c, 1), RC_OK);
    cr_assert_eq(pst_write(e, b, true), RC_OK);
    pst_batch_free(b);
    cr_assert_eq(node_log_load(e, 1, 0, &one, &log, &ents, &n, &note, &err), RC_OK);
    cr_assert_eq(n, 3);
    cr_assert_eq(ents[2].term, 2);
    cr_assert_eq(log.last_index, 3);
    node_log_entries_free(ents, n);
    pst_close(e);
}

/* ------------------------------------------------------------------ node, one member */

Test(node, writes_complete_with_replies_and_apply)
{
    struct pst_engine *e = mem_engine();
    struct node_config cfg;
    node_config_default(&cfg, 1);
    struct node *n = open_node(e, &cfg);
    wait_leader(n);
    struct done d = {0};
    int rc;
    cr_assert_neq(submit_set(n, "/env/port", "8080", &d, &rc), 0);
    cr_assert_eq(d.calls, 0, "answered before the entry was durable and applied");
    turn(n, 10);
    cr_assert_eq(d.calls, 1);
    cr_assert_eq(d.rc, RC_OK);
    cr_assert_eq(d.reply->type, NS_R_STATUS);
    cr_assert_str_eq(d.reply->str, "OK");
    expect_value(n, "/env/port", "8080");
    done_clear(&d);
    node_close(n);
    pst_close(e);
}

/* Ticks and deadlines run on the monotonic now_ms; the entry carries the proposer's wall
 * clock from the origin, which is what the key's mtime shows on every replica. */
Test(node, entry_time_is_the_origin_wall_clock_not_now_ms)
{
    struct pst_engine *e = mem_engine();
    struct node_config cfg;
    node_config_default(&cfg, 1);
    struct node *n = open_node(e, &cfg);
    wait_leader(n);
    struct done d = {0};
    int rc;
    char *argv[] = {"SET", "/t", "v"};
    size_t argvlen[] = {3, 2, 1};
    const uint64_t wall = UINT64_C(1795000000123);
    struct node_origin o = {.actor = "alice", .client = "127.0.0.1:5000", .wall_ms = wall};
    cr_assert_neq(node_write(n, NODE_GROUP_DATA, &o, 3, argv, argvlen, now_ms, on_done, &d,
                             &rc), 0);
    turn(n, 10);
    cr_assert_eq(d.rc, RC_OK);
    struct ns_kv kv = {0};
    cr_assert_eq(ns_get(node_ns(n, NODE_GROUP_DATA), "/t", 2, &kv), RC_OK);
    cr_assert_eq(kv.mtime_ms, wall, "mtime %llu", (unsigned long long)kv.mtime_ms);
    cr_assert_neq(now_ms, wall);
    ns_kv_clear(&kv);
    done_clear(&d);
    node_close(n);
    pst_close(e);
}

Test(node, hundred_writes_in_one_turn_share_one_fsync)
{
    struct pst_engine *e = mem_engine();
    struct node_config cfg;
    node_config_default(&cfg, 1);
    struct node *n = open_node(e, &cfg);
    wait_leader(n);
    struct done d[100] = {0};
    for (int i = 0; i < 100; i++) {
        char k[16];
        snprintf(k, sizeof k, "/b%d", i);
        int rc;
        cr_assert_neq(submit_set(n, k, "v", &d[i], &rc), 0);
    }
    uint64_t before = node_fsyncs(n), written = node_entries_written(n);
    cr_assert_eq(node_run(n, now_ms), RC_OK);
    cr_assert_eq(node_fsyncs(n) - before, 1, "%llu fsyncs for 100 writes",
                 (unsigned long long)(node_fsyncs(n) - before));
    cr_assert_eq(node_entries_written(n) - written, 100);
    while (node_has_work(n))
        cr_assert_eq(node_run(n, now_ms), RC_OK);
    cr_assert_eq(node_fsyncs(n) - before, 1, "commit-only batches must not fsync");
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(d[i].calls, 1, "write %d not answered", i);
        cr_assert_eq(d[i].rc, RC_OK);
        done_clear(&d[i]);
    }
    node_close(n);
    pst_close(e);
}

Test(node, read_barrier_completes_after_prior_writes_applied)
{
    struct pst_engine *e = mem_engine();
    struct node_config cfg;
    node_config_default(&cfg, 1);
    struct node *n = open_node(e, &cfg);
    wait_leader(n);
    write_keys(n, 0, 3);
    uint64_t applied = ns_applied_index(node_ns(n, NODE_GROUP_DATA));
    struct done r = {0};
    int rc;
    cr_assert_neq(node_read_barrier(n, NODE_GROUP_DATA, now_ms, on_done, &r, &rc), 0);
    cr_assert_eq(r.calls, 0, "a read barrier must wait for the leader's confirmation");
    for (int i = 0; i < 20 && r.calls == 0; i++)
        turn(n, 10);
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.rc, RC_OK);
    cr_assert_null(r.reply);
    cr_assert_geq(ns_applied_index(node_ns(n, NODE_GROUP_DATA)), applied);
    expect_value(n, "/k2", "v2");
    cr_assert_eq(node_pending(n), 0);
    node_close(n);
    pst_close(e);
}

Test(node, restart_on_same_engine_keeps_applied_writes)
{
    struct pst_engine *e = mem_engine();
    struct node_config cfg;
    node_config_default(&cfg, 1);
    struct node *n = open_node(e, &cfg);
    wait_leader(n);
    write_keys(n, 0, 20);
    uint64_t applied = ns_applied_index(node_ns(n, NODE_GROUP_DATA));
    node_close(n);
    n = open_node(e, &cfg);
    cr_assert_geq(ns_applied_index(node_ns(n, NODE_GROUP_DATA)), applied);
    for (int i = 0; i < 20; i++) {
        char k[16], v[16];
        snprintf(k, sizeof k, "/k%d", i);
        snprintf(v, sizeof v, "v%d", i);
        expect_value(n, k, v);
    }
    wait_leader(n);
    write_keys(n, 20, 5); /* and it keeps working */
    expect_value(n, "/k24", "v24");
    node_close(n);
    pst_close(e);
}

Test(node, restart_on_leveldb_replays_log_past_applied)
{
    char dir[] = "/tmp/test_node_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    struct pst_options o;
    pst_options_default(&o);
    struct pst_engine *e = NULL;
    char *err = NULL;
    cr_assert_eq(pst_open_leveldb(dir, &o, &e, &err), RC_OK, "%s", err ? err : "");
    struct node_config cfg;
    node_config_default(&cfg, 1);
    struct node *n = open_node(e, &cfg);
    wait_leader(n);
    write_keys(n, 0, 10);
    /* Lose the state machine's writes (applied record and values) as a crash that kept
     * only the synced Raft log would: restart must replay the log into ns. */
    uint8_t akey[6] = {'g', 0, 0, 0, NODE_GROUP_DATA, 'A'};
    uint8_t klo[6] = {'g', 0, 0, 0, NODE_GROUP_DATA, 'K'};
    uint8_t khi[6] = {'g', 0, 0, 0, NODE_GROUP_DATA, 'L'};
    node_close(n);
    struct pst_batch *b = pst_batch_new();
    pst_batch_del(b, akey, sizeof akey);
    cr_assert_eq(pst_write(e, b, true), RC_OK);
    pst_batch_free(b);
    cr_assert_eq(pst_delete_range(e, klo, sizeof klo, khi, sizeof khi, true), RC_OK);
    /* ... and the key history written in the same batches ('V', src/ns/ns_history.c) */
    uint8_t vlo[6] = {'g', 0, 0, 0, NODE_GROUP_DATA, 'V'};
    uint8_t vhi[6] = {'g', 0, 0, 0, NODE_GROUP_DATA, 'W'};
    cr_assert_eq(pst_delete_range(e, vlo, sizeof vlo, vhi, sizeof vhi, true), RC_OK);
    pst_close(e);
    cr_assert_eq(pst_open_leveldb(dir, &o, &e, &err), RC_OK);
    n = open_node(e, &cfg);
    expect_value(n, "/k9", "v9"); /* node_open replayed the committed log into ns */
    wait_leader(n);
    for (int i = 0; i < 10; i++) {
        char k[16], v[16];
        snprintf(k, sizeof k, "/k%d", i);
        snprintf(v, sizeof v, "v%d", i);
        expect_value(n, k, v);
    }
    node_close(n);
    pst_close(e);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

Test(node, write_without_quorum_times_out_tryagain_and_is_not_applied)
{
    struct pst_engine *e = mem_engine();
    struct node_config cfg;
    node_config_default(&cfg, 1);
    cfg.initial.n_voters = 3, cfg.initial.voters[1] = 2, cfg.initial.voters[2] = 3;
    cfg.request_timeout_ms = 2000;
    struct node *n = open_node(e, &cfg); /* no transport: the others never answer */
    struct done w = {0}, r = {0};
    int rc;
    cr_assert_neq(submit_set(n, "/nq", "1", &w, &rc), 0);
    cr_assert_neq(node_read_barrier(n, NODE_GROUP_DATA, now_ms, on_done, &r, &rc), 0);
    for (int i = 0; i < 19; i++)
        turn(n, 100);
    cr_assert_eq(w.calls, 0, "answered before the timeout");
    for (int i = 0; i < 3; i++)
        turn(n, 100);
    cr_assert_eq(w.calls, 1);
    cr_assert_eq(w.rc, RC_TRYAGAIN);
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.rc, RC_TRYAGAIN);
    cr_assert_eq(node_pending(n), 0);
    expect_missing(n, "/nq");
    done_clear(&w);
    done_clear(&r);
    node_close(n);
    pst_close(e);
}

Test(node, cancel_prevents_callback_but_write_still_applies)
{
    struct pst_engine *e = mem_engine();
    struct node_config cfg;
    node_config_default(&cfg, 1);
    struct node *n = open_node(e, &cfg);
    wait_leader(n);
    struct done d = {0};
    int rc;
    uint64_t h = submit_set(n, "/c", "1", &d, &rc);
    cr_assert_neq(h, 0);
    node_cancel(n, h);
    cr_assert_eq(node_pending(n), 1, "a cancelled request stays tracked until its outcome");
    turn(n, 10);
    turn(n, 10);
    cr_assert_eq(d.calls, 0);
    cr_assert_eq(node_pending(n), 0);
    expect_value(n, "/c", "1");
    node_close(n);
    pst_close(e);
}

Test(node, close_answers_pending_with_shutdown_and_overload_refuses)
{
    struct pst_engine *e = mem_engine();
    struct node_config cfg;
    node_config_default(&cfg, 1);
    cfg.max_pending = 2;
    cfg.initial.n_voters = 2, cfg.initial.voters[1] = 2; /* never elects: stays pending */
    struct node *n = open_node(e, &cfg);
    struct done d[3] = {0};
    int rc;
    cr_assert_neq(submit_set(n, "/a", "1", &d[0], &rc), 0);
    cr_assert_neq(submit_set(n, "/b", "1", &d[1], &rc), 0);
    cr_assert_eq(submit_set(n, "/c", "1", &d[2], &rc), 0);
    cr_assert_eq(rc, RC_OVERLOAD);
    node_close(n);
    cr_assert_eq(d[0].calls, 1);
    cr_assert_eq(d[0].rc, RC_SHUTDOWN);
    cr_assert_eq(d[1].rc, RC_SHUTDOWN);
    cr_assert_eq(d[2].calls, 0, "a refused request must not be called back");
    pst_close(e);
}

/* Flip one byte of the stored log record at index in group 1. */
static void corrupt_record(struct pst_engine *e, raft_index index)
{
    uint8_t key[NODE_LOG_KEY_BYTES];
    size_t klen = node_log_key_entry(NODE_GROUP_DATA, index, key);
    void *val;
    size_t vlen;
    cr_assert_eq(pst_get(e, NULL, key, klen, &val, &vlen), RC_OK, "no record %llu",
                 (unsigned long long)index);
    ((uint8_t *)val)[vlen / 2] ^= 0x40;
    struct pst_batch *b = pst_batch_new();
    pst_batch_put(b, key, klen, val, vlen);
    cr_assert_eq(pst_write(e, b, true), RC_OK);
    pst_batch_free(b);
    free(val);
}

Test(node, corrupt_record_in_middle_of_log_refuses_to_open)
{
    struct pst_engine *e = mem_engine();
    struct node_config cfg;
    node_config_default(&cfg, 1);
    struct node *n = open_node(e, &cfg);
    wait_leader(n);
    write_keys(n, 0, 10);
    struct raft_status st;
    node_raft_status(n, NODE_GROUP_DATA, &st);
    node_close(n);
    cr_assert_gt(st.last_index, 5);
    corrupt_record(e, 3);
    struct node *n2 = NULL;
    char *err = NULL;
    cr_assert_eq(node_open(e, &cfg, now_ms, &n2, &err), RC_CORRUPT);
    cr_assert_null(n2);
    cr_assert_not_null(err);
    cr_assert(strstr(err, "group 1") && strstr(err, "index 3") && strstr(err, "corrupt"),
              "unclear message: %s", err);
    free(err);
    pst_close(e);
}

Test(node, bad_last_record_past_commit_is_truncated_as_torn_tail)
{
    struct pst_engine *e = mem_engine();
    struct node_config cfg;
    node_config_default(&cfg, 1);
    struct node *n = open_node(e, &cfg);
    wait_leader(n);
    write_keys(n, 0, 3);
    struct raft_status st;
    node_raft_status(n, NODE_GROUP_DATA, &st);
    node_close(n);
    /* A record one past the end that was never acknowledged, with a bad checksum. */
    struct raft_entry extra = {.term = st.term, .index = st.last_index + 1};
    size_t len;
    uint8_t *rec = node_log_entry_encode(&extra, &len), key[NODE_LOG_KEY_BYTES];
    rec[len - 1] ^= 1;
    struct pst_batch *b = pst_batch_new();
    pst_batch_put(b, key, node_log_key_entry(NODE_GROUP_DATA, extra.index, key), rec, len);
    cr_assert_eq(pst_write(e, b, true), RC_OK);
    pst_batch_free(b);
    free(rec);
    n = open_node(e, &cfg);
    cr_assert_not_null(node_open_note(n));
    cr_assert(strstr(node_open_note(n), "torn tail"), "%s", node_open_note(n));
    expect_value(n, "/k2", "v2");
    node_close(n);
    /* The same bad record at an index that was committed is corruption, not a torn tail. */
    corrupt_record(e, st.last_index);
    struct node *n2 = NULL;
    char *err = NULL;
    cr_assert_eq(node_open(e, &cfg, now_ms, &n2, &err), RC_CORRUPT);
    char want[64];
    snprintf(want, sizeof want, "corrupt at index %llu", (unsigned long long)st.last_index);
    cr_assert(err && strstr(err, want), "committed record silently dropped? %s", err);
    free(err);
    pst_close(e);
}

Test(node, compaction_deletes_old_records_and_restart_keeps_data)
{
    struct pst_engine *e = mem_engine();
    struct node_config cfg;
    node_config_default(&cfg, 1);
    cfg.snapshot_entries = 10;
    struct node *n = open_node(e, &cfg);
    wait_leader(n);
    for (int i = 0; i < 7; i++)
        write_keys(n, i * 5, 5);
    turn(n, 10);
    struct raft_status st;
    node_raft_status(n, NODE_GROUP_DATA, &st);
    cr_assert_gt(st.snapshot.index, 10, "no compaction after 35 writes");
    uint8_t key[NODE_LOG_KEY_BYTES];
    void *val;
    size_t vlen;
    cr_assert_eq(pst_get(e, NULL, key, node_log_key_entry(NODE_GROUP_DATA, 1, key), &val,
                         &vlen), RC_NOTFOUND, "log record 1 survived compaction");
    cr_assert_eq(pst_get(e, NULL, key, node_log_key_snap(NODE_GROUP_DATA, key), &val, &vlen),
                 RC_OK, "no snapshot metadata record");
    free(val);
    node_close(n);
    n = open_node(e, &cfg);
    for (int i = 0; i < 35; i++) {
        char k[16], v[16];
        snprintf(k, sizeof k, "/k%d", i);
        snprintf(v, sizeof v, "v%d", i);
        expect_value(n, k, v);
    }
    wait_leader(n);
    write_keys(n, 35, 3);
    expect_value(n, "/k37", "v37");
    node_close(n);
    pst_close(e);
}

Test(node, write_submitted_before_election_waits_and_completes)
{
    struct pst_engine *e = mem_engine();
    struct node_config cfg;
    node_config_default(&cfg, 1);
    struct node *n = open_node(e, &cfg);
    struct done d = {0};
    int rc;
    cr_assert_neq(submit_set(n, "/early", "1", &d, &rc), 0, "refused without leader: %d", rc);
    for (int i = 0; i < 100 && d.calls == 0; i++)
        turn(n, 50);
    cr_assert_eq(d.calls, 1);
    cr_assert_eq(d.rc, RC_OK);
    expect_value(n, "/early", "1");
    done_clear(&d);
    node_close(n);
    pst_close(e);
}

/* ------------------------------------------------------------------ three members */

#define CL_N 3
#define CL_QUEUE_MAX 100000

struct cl_msg {
    int from, to; /* node slots */
    uint32_t group;
    struct raft_msg m;
};

struct cluster {
    struct pst_engine *e[CL_N];
    struct node *n[CL_N];
    struct cl_msg *q;
    size_t nq;
    bool cut[CL_N]; /* a cut node neither sends nor receives */
    bool hold_props; /* forwarded proposals wait in `held` until cl_release */
    struct cl_msg held[16];
    size_t n_held;
};

struct cl_port {
    struct cluster *c;
    int slot;
};
static struct cl_port ports[CL_N];

static void cl_send(void *ud, uint32_t group, const struct raft_msg *m)
{
    struct cl_port *p = ud;
    struct cluster *c = p->c;
    int to = (int)m->to - 1;
    if (to < 0 || to >= CL_N || c->cut[p->slot] || c->cut[to])
        return;
    cr_assert_lt(c->nq, CL_QUEUE_MAX);
    cr_assert_lt(c->n_held, 16);
    struct cl_msg *q = c->hold_props && m->type == RAFT_MSG_PROPOSE ? &c->held[c->n_held++]
                                                                     : &c->q[c->nq++];
    q->from = p->slot;
    q->to = to;
    q->group = group;
    q->m = *m;
    if (m->n_entries) { /* m is borrowed: deep copy its entries */
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

static void cl_msg_free(struct cl_msg *q)
{
    for (uint32_t i = 0; i < q->m.n_entries; i++)
        free(q->m.entries[i].data);
    free(q->m.entries);
}

static void cl_open(struct cluster *c, uint32_t request_timeout_ms)
{
    memset(c, 0, sizeof *c);
    c->q = calloc(CL_QUEUE_MAX, sizeof *c->q);
    for (int i = 0; i < CL_N; i++) {
        struct node_config cfg;
        node_config_default(&cfg, (raft_id)(i + 1));
        cfg.initial.n_voters = CL_N;
        for (int j = 0; j < CL_N; j++)
            cfg.initial.voters[j] = (raft_id)(j + 1);
        cfg.request_timeout_ms = request_timeout_ms;
        c->e[i] = mem_engine();
        c->n[i] = open_node(c->e[i], &cfg);
        ports[i] = (struct cl_port){c, i};
        node_set_transport(c->n[i], cl_send, &ports[i]);
    }
}

/* Queue the held proposals addressed to slot `to` (-1: all) for delivery. */
static void cl_release(struct cluster *c, int to)
{
    size_t keep = 0;
    for (size_t i = 0; i < c->n_held; i++) {
        if (to < 0 || c->held[i].to == to)
            c->q[c->nq++] = c->held[i];
        else
            c->held[keep++] = c->held[i];
    }
    c->n_held = keep;
}

static void cl_close(struct cluster *c)
{
    for (int i = 0; i < CL_N; i++) {
        node_close(c->n[i]);
        pst_close(c->e[i]);
    }
    for (size_t i = 0; i < c->nq; i++)
        cl_msg_free(&c->q[i]);
    for (size_t i = 0; i < c->n_held; i++)
        cl_msg_free(&c->held[i]);
    free(c->q);
}

/* One round: time passes, every node runs, then every queued message is delivered. */
static void cl_turn(struct cluster *c, uint64_t step_ms)
{
    now_ms += step_ms;
    for (int i = 0; i < CL_N; i++)
        node_tick(c->n[i], now_ms);
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < CL_N; i++)
            while (node_has_work(c->n[i]))
                cr_assert_eq(node_run(c->n[i], now_ms), RC_OK);
        if (c->nq == 0)
            break;
        size_t nq = c->nq;
        struct cl_msg *batch = malloc(nq * sizeof *batch);
        memcpy(batch, c->q, nq * sizeof *batch);
        c->nq = 0;
        for (size_t i = 0; i < nq; i++) {
            if (!c->cut[batch[i].to] && !c->cut[batch[i].from])
                node_step(c->n[batch[i].to], batch[i].group, &batch[i].m);
            cl_msg_free(&batch[i]);
        }
        free(batch);
    }
}

static int cl_leader(struct cluster *c, int exclude)
{
    for (int i = 0; i < CL_N; i++) {
        struct raft_status st;
        node_raft_status(c->n[i], NODE_GROUP_DATA, &st);
        if (i != exclude && st.role == RAFT_LEADER && !c->cut[i])
            return i;
    }
    return -1;
}

/* Every node holds key, written exactly once (version 1). */
static void expect_applied_once(struct cluster *c, const char *key)
{
    for (int i = 0; i < CL_N; i++) {
        struct ns_kv kv = {0};
        cr_assert_eq(ns_get(node_ns(c->n[i], NODE_GROUP_DATA), key, strlen(key), &kv), RC_OK,
                     "node %d lacks %s", i, key);
        cr_assert_eq(kv.version, 1, "node %d: %s applied %llu times", i, key,
                     (unsigned long long)kv.version);
        ns_kv_clear(&kv);
    }
}

static int cl_wait_leader(struct cluster *c, int exclude)
{
    int l = -1;
    for (int i = 0; i < 400 && (l = cl_leader(c, exclude)) < 0; i++)
        cl_turn(c, 50);
    cr_assert_geq(l, 0, "no leader elected");
    cl_turn(c, 50);
    return l;
}

Test(node, follower_write_is_forwarded_and_answered_after_local_apply)
{
    struct cluster c;
    cl_open(&c, 30000);
    int l = cl_wait_leader(&c, -1);
    int f = (l + 1) % CL_N;
    struct done d = {0}, r = {0};
    int rc;
    cr_assert_neq(submit_set(c.n[f], "/fw", "42", &d, &rc), 0, "refused: %d", rc);
    for (int i = 0; i < 50 && d.calls == 0; i++)
        cl_turn(&c, 20);
    cr_assert_eq(d.calls, 1);
    cr_assert_eq(d.rc, RC_OK);
    cr_assert_eq(d.reply->type, NS_R_STATUS);
    expect_value(c.n[f], "/fw", "42"); /* read-your-writes on the follower */
    cr_assert_neq(node_read_barrier(c.n[f], NODE_GROUP_DATA, now_ms, on_done, &r, &rc), 0);
    for (int i = 0; i < 50 && r.calls == 0; i++)
        cl_turn(&c, 20);
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.rc, RC_OK, "follower read barrier: rc %d", r.rc);
    for (int i = 0; i < CL_N; i++)
        expect_value(c.n[i], "/fw", "42");
    done_clear(&d);
    cl_close(&c);
}

/* A write appended by a leader that is then cut off never commits in its first place: the
 * new leader overwrites that index. When the old leader learns it (another entry applied at
 * the write's index) it proposes the write again, so the client sees it applied exactly
 * once (version 1), not an error and not twice. */
Test(node, write_on_deposed_leader_is_proposed_again_and_applied_once)
{
    struct cluster c;
    cl_open(&c, 60000);
    int l = cl_wait_leader(&c, -1);
    c.cut[l] = true; /* the leader is partitioned away */
    struct done lost = {0}, won = {0};
    int rc;
    cr_assert_neq(submit_set(c.n[l], "/lost", "1", &lost, &rc), 0);
    cl_turn(&c, 10);
    cr_assert_eq(lost.calls, 0, "a write without quorum was answered");
    int l2 = cl_wait_leader(&c, l);
    cr_assert_neq(submit_set(c.n[l2], "/won", "1", &won, &rc), 0);
    for (int i = 0; i < 50 && won.calls == 0; i++)
        cl_turn(&c, 20);
    cr_assert_eq(won.rc, RC_OK);
    for (int i = 0; i < CL_N; i++)
        if (i != l)
            expect_missing(c.n[i], "/lost"); /* not committed while its leader was cut off */
    c.cut[l] = false; /* heal: the old leader learns its entry was replaced, proposes again */
    for (int i = 0; i < 200 && lost.calls == 0; i++)
        cl_turn(&c, 50);
    cr_assert_eq(lost.calls, 1, "deposed leader's write never answered");
    cr_assert_eq(lost.rc, RC_OK, "rc %d", lost.rc);
    for (int i = 0; i < 20; i++)
        cl_turn(&c, 50);
    expect_applied_once(&c, "/lost");
    for (int i = 0; i < CL_N; i++)
        expect_value(c.n[i], "/won", "1");
    done_clear(&lost);
    done_clear(&won);
    cl_close(&c);
}

/* A follower forwards a write to a leader that is already cut off: no answer ever comes.
 * Once the follower applies an entry of a later term, the write can no longer commit (a
 * leader appends a forwarded proposal only in the term it was forwarded in), so it is
 * proposed again to the new leader and applied exactly once. */
Test(node, forwarded_write_lost_with_its_leader_is_proposed_again)
{
    struct cluster c;
    cl_open(&c, 60000);
    int l = cl_wait_leader(&c, -1);
    int f = (l + 1) % CL_N;
    c.cut[l] = true;
    struct done d = {0};
    int rc;
    cr_assert_neq(submit_set(c.n[f], "/fwd-lost", "v", &d, &rc), 0, "refused: %d", rc);
    for (int i = 0; i < 400 && d.calls == 0; i++)
        cl_turn(&c, 50);
    cr_assert_eq(d.calls, 1, "forwarded write never answered");
    cr_assert_eq(d.rc, RC_OK, "rc %d", d.rc);
    int l2 = cl_leader(&c, l);
    cr_assert_geq(l2, 0);
    cr_assert_neq(l2, l);
    c.cut[l] = false;
    for (int i = 0; i < 40; i++)
        cl_turn(&c, 50);
    expect_applied_once(&c, "/fwd-lost");
    done_clear(&d);
    cl_close(&c);
}

/* A refusal that answers an EARLIER attempt of a write must not be taken for the answer to
 * the current one. The follower forwards a write in term T; the message is held up; the
 * leader changes, the follower applies an entry of term T+1 and forwards the write again
 * (attempt 2). Then the held attempt 1 reaches the old leader, now a follower, which
 * refuses it ("not appended"). Taken as the answer to attempt 2, that refusal made the
 * follower forward a third time while attempt 2 was already appended: the write applied
 * twice at consecutive indexes (the nemesis suite's "net" scenario found it). */
Test(node, stale_refusal_of_an_earlier_attempt_does_not_send_the_write_again)
{
    struct cluster c;
    cl_open(&c, 60000);
    int l = cl_wait_leader(&c, -1);
    int f = (l + 1) % CL_N, g = (l + 2) % CL_N;
    c.hold_props = true;
    struct done d = {0};
    int rc;
    cr_assert_neq(submit_set(c.n[f], "/stale", "v", &d, &rc), 0, "refused: %d", rc);
    cl_turn(&c, 10);
    cr_assert_eq(c.n_held, 1, "attempt 1 was not forwarded");
    /* Leadership moves to g while attempt 1 is still on its way to l. */
    cr_assert_eq(node_transfer(c.n[l], (raft_id)(g + 1)), RC_OK);
    for (int i = 0; i < 20 && c.n_held < 2; i++)
        cl_turn(&c, 50);
    cr_assert_eq(cl_leader(&c, -1), g, "leadership did not move");
    cr_assert_eq(c.n_held, 2, "attempt 2 was not forwarded to the new leader");
    cr_assert_eq(c.held[1].to, g);
    struct raft_status st;
    node_raft_status(c.n[l], NODE_GROUP_DATA, &st);
    cr_assert_eq(st.role, RAFT_FOLLOWER);
    cl_release(&c, l); /* attempt 1 arrives: the old leader refuses it */
    cl_turn(&c, 10);
    c.hold_props = false;
    cl_release(&c, -1);
    for (int i = 0; i < 100 && d.calls == 0; i++)
        cl_turn(&c, 20);
    for (int i = 0; i < 20; i++)
        cl_turn(&c, 50);
    cr_assert_eq(d.calls, 1, "the write was never answered");
    cr_assert_eq(d.rc, RC_OK, "rc %d", d.rc);
    expect_applied_once(&c, "/stale");
    done_clear(&d);
    cl_close(&c);
}

/* A leader that has not heard from a majority for half an election timeout holds new
 * writes back instead of appending entries whose fate nobody could tell; at the deadline the
 * client hears -NOQUORUM (not applied), and the write is nowhere. */
Test(node, leader_without_quorum_holds_writes_and_answers_noquorum)
{
    struct cluster c;
    cl_open(&c, 3000);
    int l = cl_wait_leader(&c, -1);
    c.cut[l] = true;
    for (int i = 0; i < 7; i++) /* 700 ms: past half the 1 s election timeout, before it */
        cl_turn(&c, 100);
    struct raft_status st;
    cr_assert_eq(node_raft_status(c.n[l], NODE_GROUP_DATA, &st), RC_OK);
    cr_assert_eq(st.role, RAFT_LEADER, "stepped down too early for this test");
    raft_index last = st.last_index;
    struct done d = {0};
    int rc;
    cr_assert_neq(submit_set(c.n[l], "/nq", "1", &d, &rc), 0, "refused at once: %d", rc);
    cl_turn(&c, 10);
    cr_assert_eq(node_raft_status(c.n[l], NODE_GROUP_DATA, &st), RC_OK);
    cr_assert_eq(st.last_index, last, "a leader without quorum appended the write");
    for (int i = 0; i < 60 && d.calls == 0; i++)
        cl_turn(&c, 100);
    cr_assert_eq(d.calls, 1, "never answered");
    cr_assert_eq(d.rc, RC_NOQUORUM, "rc %d", d.rc);
    c.cut[l] = false;
    for (int i = 0; i < 40; i++)
        cl_turn(&c, 50);
    for (int i = 0; i < CL_N; i++)
        expect_missing(c.n[i], "/nq");
    done_clear(&d);
    cl_close(&c);
}

Test(node, restart_ignores_bootstrap_flags_after_first_start)
{
    struct pst_engine *e = mem_engine();
    struct node_config cfg;
    node_config_default(&cfg, 1);
    struct node *n = open_node(e, &cfg);
    wait_leader(n);
    write_keys(n, 0, 2);
    node_close(n);
    /* Started again with a different --initial-cluster: the recorded conf ({1}) wins. */
    cfg.initial.n_voters = 3, cfg.initial.voters[1] = 2, cfg.initial.voters[2] = 3;
    n = open_node(e, &cfg);
    struct raft_conf conf;
    cr_assert_eq(node_applied_conf(n, NODE_GROUP_DATA, &conf), RC_OK);
    cr_assert_eq(conf.n_voters, 1);
    cr_assert_eq(conf.voters[0], 1);
    wait_leader(n); /* a 3-voter conf could never elect this lone node */
    write_keys(n, 2, 2);
    node_close(n);
    pst_close(e);
}

/* A clock that goes back (a faked or broken one; the nemesis clock scenario stepped a
 * node's monotonic clock back by minutes) must not stop the node: it ticks on from the new
 * reading, so the others still elect a leader in the usual time, and a request's deadline
 * is never further away than the request timeout. */
Test(node, clock_going_back_neither_stops_ticks_nor_stretches_deadlines)
{
    struct cluster c;
    cl_open(&c, 3000);
    int l = cl_wait_leader(&c, -1);
    c.cut[l] = true;
    struct done lost = {0};
    int rc;
    cr_assert_neq(submit_set(c.n[l], "/back", "1", &lost, &rc), 0, "refused: %d", rc);
    now_ms -= 60000;
    int l2 = -1;
    for (int i = 0; i < 100 && ((l2 = cl_leader(&c, l)) < 0 || lost.calls == 0); i++)
        cl_turn(&c, 50);
    cr_assert_geq(l2, 0, "no new leader within 5 s after the clocks went back 60 s");
    cr_assert_eq(lost.calls, 1, "a 3 s request still waiting 5 s after the clock went back");
    cr_assert(lost.rc == RC_TIMEOUT || lost.rc == RC_NOQUORUM, "rc %d", lost.rc);
    done_clear(&lost);
    cl_close(&c);
}

Test(node, partitioned_leader_never_serves_a_read_barrier)
{
    struct cluster c;
    cl_open(&c, 3000);
    int l = cl_wait_leader(&c, -1);
    c.cut[l] = true;
    struct done r = {0};
    int rc;
    uint64_t start = now_ms;
    cr_assert_neq(node_read_barrier(c.n[l], NODE_GROUP_DATA, now_ms, on_done, &r, &rc), 0);
    for (int i = 0; i < 100 && r.calls == 0; i++)
        cl_turn(&c, 50);
    cr_assert_eq(r.calls, 1);
    cr_assert(r.rc == RC_NOQUORUM, "rc %d", r.rc);
    cr_assert_geq(now_ms - start, 3000, "refused before the deadline");
    done_clear(&r);
    cl_close(&c);
}
