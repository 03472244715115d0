/*
 * cmd_info.c - introspection: INFO, CONFIG, COMMAND, TIME.
 *
 * INFO is Redis-shaped ("# Section" headers, "key:value" lines, CRLF) so Redis tools can
 * parse it, plus a "# Raft" section with this node's consensus state. COMMAND DOCS
 * derives argument docs from each table row's syntax string (see emit_args), so
 * redis-cli's hints follow the table without a second copy of the syntax.
 */
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <unistd.h>

#include "client.h"
#include "commands.h"
#include "config.h"
#include "glob.h"
#include "log.h"
#include "node.h"
#include "peer.h"
#include "pubsub.h"
#include "rc.h"
#include "server.h"

#define EQ(a, b) (strcasecmp((a), (b)) == 0)

/* ------------------------------------------------------------------ INFO */

static void addf(struct resp_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void addf(struct resp_buf *b, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > 0)
        resp_buf_append(b, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static void human_bytes(char *buf, size_t len, unsigned long long n)
{
    const char *u[] = {"B", "K", "M", "G", "T"};
    double d = (double)n;
    int i = 0;
    while (d >= 1024 && i < 4) {
        d /= 1024;
        i++;
    }
    if (i == 0)
        snprintf(buf, len, "%lluB", n);
    else
        snprintf(buf, len, "%.2f%s", d, u[i]);
}

static unsigned long long rss_bytes(void)
{
    FILE *fp = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, rss = 0;
    if (fp) {
        if (fscanf(fp, "%llu %llu", &size, &rss) != 2)
            rss = 0;
        fclose(fp);
    }
    return rss * (unsigned long long)sysconf(_SC_PAGESIZE);
}

static void info_server(struct server *srv, struct resp_buf *b)
{
    uint64_t up = (srv_now_ms() - srv->start_ms) / 1000;
    addf(b, "# Server\r\nredis_version:%s\r\nraftconf_version:%s\r\nredis_mode:standalone\r\n"
         "os:Linux\r\narch_bits:%d\r\nmultiplexing_api:libevent\r\nprocess_id:%d\r\n"
         "run_id:raftconf-node-%llu\r\ntcp_port:%llu\r\nuptime_in_seconds:%llu\r\n"
         "uptime_in_days:%llu\r\nexecutable:raftconf-server\r\n\r\n",
         SRV_REDIS_VERSION, SRV_VERSION, (int)(8 * sizeof(void *)), (int)getpid(),
         (unsigned long long)srv->cfg.node_id, (unsigned long long)srv->cfg.port,
         (unsigned long long)up, (unsigned long long)(up / 86400));
}

static void info_clients_memory(struct server *srv, struct resp_buf *b)
{
    addf(b, "# Clients\r\nconnected_clients:%zu\r\nmaxclients:%llu\r\nblocked_clients:0\r\n"
         "\r\n", srv->n_clients, (unsigned long long)srv->cfg.maxclients);
    struct mallinfo2 mi = mallinfo2();
    unsigned long long used = mi.uordblks + mi.hblkhd, rss = rss_bytes();
    char h1[32], h2[32];
    human_bytes(h1, sizeof h1, used);
    human_bytes(h2, sizeof h2, rss);
    addf(b, "# Memory\r\nused_memory:%llu\r\nused_memory_human:%s\r\nused_memory_rss:%llu\r\n"
         "used_memory_rss_human:%s\r\nmaxmemory:0\r\nmaxmemory_policy:noeviction\r\n\r\n",
         used, h1, rss, h2);
}

static void info_persistence_stats(struct server *srv, struct resp_buf *b)
{
    /* aof_enabled:1 because every write is in the Raft log, fsync'd (once per loop turn,
     * before any reply) - the guarantee of appendonly yes + appendfsync always. */
    addf(b, "# Persistence\r\nloading:0\r\nasync_loading:0\r\nrdb_changes_since_last_save:0\r\n"
         "rdb_bgsave_in_progress:0\r\nrdb_last_bgsave_status:ok\r\naof_enabled:1\r\n"
         "aof_rewrite_in_progress:0\r\naof_last_write_status:ok\r\n"
         "raftconf_fsync:per_loop_turn\r\nraftconf_fsyncs:%llu\r\n\r\n",
         (unsigned long long)node_fsyncs(srv->node));
    const struct srv_stats *st = &srv->stats;
    addf(b, "# Stats\r\ntotal_connections_received:%llu\r\ntotal_commands_processed:%llu\r\n"
         "instantaneous_ops_per_sec:%llu\r\ntotal_net_input_bytes:%llu\r\n"
         "total_net_output_bytes:%llu\r\nrejected_connections:%llu\r\nexpired_keys:0\r\n"
         "evicted_keys:0\r\nkeyspace_hits:0\r\nkeyspace_misses:0\r\npubsub_channels:%zu\r\n"
         "pubsub_patterns:%zu\r\npubsubshard_channels:0\r\nloop_turns:%llu\r\n\r\n",
         (unsigned long long)st->connections, (unsigned long long)st->commands,
         (unsigned long long)st->ops_per_sec, (unsigned long long)st->net_in_bytes,
         (unsigned long long)st->net_out_bytes, (unsigned long long)st->rejected,
         pubsub_num_channels(srv), pubsub_num_patterns(srv), (unsigned long long)st->turns);
}

static const char *progress_state(uint8_t st)
{
    return st == 0 ? "probe" : st == 1 ? "replicate" : st == 2 ? "snapshot" : "?";
}

#define INFO_MEMBERS_MAX (RAFT_VOTERS_MAX + RAFT_LEARNERS_MAX)

/* One "peerK:" line per other member: addresses, voter or learner, the leader's view of
 * its progress (match/next/state, leader only), our link to it and when we last heard. */
static void info_raft_peers(struct server *srv, struct resp_buf *b, const struct raft_status *st)
{
    struct node_member m[INFO_MEMBERS_MAX];
    size_t n = 0;
    if (node_members(srv->node, m, INFO_MEMBERS_MAX, &n) != RC_OK)
        n = 0;
    uint64_t now = srv_mono_ms();
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        if (m[i].id == (raft_id)srv->cfg.node_id)
            continue;
        const struct raft_progress_info *p = NULL;
        for (uint32_t j = 0; j < st->n_progress; j++)
            if (st->progress[j].id == m[i].id)
                p = &st->progress[j];
        struct peer_link_info li;
        peer_link_info(srv, m[i].id, &li);
        long long ago = li.last_rx_ms ? (long long)(now - li.last_rx_ms) : -1;
        addf(b, "peer%d:id=%llu,addr=%s,cluster_addr=%s,voter=%d,match=%llu,next=%llu,"
             "state=%s,ticks_since_contact=%lld,link=%s,last_contact_ms=%lld\r\n", k++,
             (unsigned long long)m[i].id, m[i].addr, m[i].cluster_addr, !m[i].learner,
             (unsigned long long)(p ? p->match : 0), (unsigned long long)(p ? p->next : 0),
             p ? progress_state(p->state) : "unknown",
             p ? (long long)p->ticks_since_contact : -1LL, li.up ? "up" : "down", ago);
    }
}

static void info_raft(struct server *srv, struct resp_buf *b)
{
    struct raft_status st;
    memset(&st, 0, sizeof st);
    int rc = node_raft_status(srv->node, NODE_GROUP_DATA, &st);
    addf(b, "# Raft\r\nnode_id:%llu\r\ngroup:%u\r\n", (unsigned long long)srv->cfg.node_id,
         NODE_GROUP_DATA);
    if (rc == RC_OK) {
        addf(b, "role:%s\r\nterm:%llu\r\nleader:%llu\r\ncommit_index:%llu\r\n"
             "applied_index:%llu\r\nlast_index:%llu\r\nvoters:%u\r\nlearners:%u\r\n",
             raft_role_name(st.role), (unsigned long long)st.term,
             (unsigned long long)st.leader, (unsigned long long)st.commit,
             (unsigned long long)st.applied, (unsigned long long)st.last_index,
             st.conf.n_voters, st.conf.n_learners);
        addf(b, "snapshot_index:%llu\r\nfirst_index:%llu\r\n",
             (unsigned long long)st.snapshot.index, (unsigned long long)st.first_index);
    } else {
        addf(b, "status_error:%s\r\n", rc_name(rc));
    }
    struct raft_status ms;
    memset(&ms, 0, sizeof ms);
    if (node_raft_status(srv->node, NODE_GROUP_META, &ms) == RC_OK)
        addf(b, "meta_role:%s\r\nmeta_term:%llu\r\nmeta_leader:%llu\r\n"
             "meta_commit_index:%llu\r\nmeta_applied_index:%llu\r\n",
             raft_role_name(ms.role), (unsigned long long)ms.term,
             (unsigned long long)ms.leader, (unsigned long long)ms.commit,
             (unsigned long long)ms.applied);
    char why[128] = "";
    bool healthy = node_healthy(srv->node, NODE_GROUP_DATA, why, sizeof why) &&
                   node_healthy(srv->node, NODE_GROUP_META, why, sizeof why);
    addf(b, "healthy:%d\r\nunhealthy_reason:%s\r\n", healthy, healthy ? "" : why);
    if (rc == RC_OK)
        info_raft_peers(srv, b, &st);
    struct peer_stats ps;
    peer_stats_get(srv, &ps);
    addf(b, "cluster_port:%u\r\npeer_msgs_sent:%llu\r\npeer_msgs_recv:%llu\r\n"
         "peer_msgs_dropped:%llu\r\npeer_msgs_bad:%llu\r\npeer_bytes_sent:%llu\r\n"
         "peer_bytes_recv:%llu\r\npeer_auth_failures:%llu\r\npeer_dials:%llu\r\n"
         "peer_dial_failures:%llu\r\nsnapshots_sent:%llu\r\nsnapshots_received:%llu\r\n"
         "snapshots_failed:%llu\r\npeer_conns_in:%llu\r\npeer_conns_refused:%llu\r\n",
         peer_cluster_port(srv), (unsigned long long)ps.msgs_sent,
         (unsigned long long)ps.msgs_recv, (unsigned long long)ps.msgs_dropped,
         (unsigned long long)ps.msgs_bad, (unsigned long long)ps.bytes_sent,
         (unsigned long long)ps.bytes_recv, (unsigned long long)ps.auth_failures,
         (unsigned long long)ps.dials, (unsigned long long)ps.dial_failures,
         (unsigned long long)ps.snaps_sent, (unsigned long long)ps.snaps_recv,
         (unsigned long long)ps.snaps_failed, (unsigned long long)ps.conns_in,
         (unsigned long long)ps.conns_refused);
    addf(b, "fsyncs:%llu\r\nentries_written:%llu\r\n\r\n",
         (unsigned long long)node_fsyncs(srv->node),
         (unsigned long long)node_entries_written(srv->node));
}

/* Redis's shape: the leader is the master with its followers as slaves; anyone else is a
 * slave of the leader (master_link_status says whether it hears from it). */
static void info_replication(struct server *srv, struct resp_buf *b)
{
    struct raft_status st;
    memset(&st, 0, sizeof st);
    node_raft_status(srv->node, NODE_GROUP_DATA, &st);
    raft_id self = (raft_id)srv->cfg.node_id;
    uint64_t now = srv_mono_ms();
    uint64_t timeout_ms = srv->cfg.election_ticks * srv->cfg.tick_ms;
    if (st.role == RAFT_LEADER) {
        int n = 0;
        struct resp_buf t;
        resp_buf_init(&t);
        for (uint32_t i = 0; i < st.n_progress; i++) {
            const struct raft_progress_info *p = &st.progress[i];
            struct node_member m;
            if (p->id == self || p->ticks_since_contact >= srv->cfg.election_ticks ||
                node_member(srv->node, p->id, &m) != RC_OK)
                continue;
            char *colon = strrchr(m.addr, ':');
            if (colon)
                *colon = '\0';
            addf(&t, "slave%d:ip=%s,port=%s,state=%s,offset=%llu,lag=%llu\r\n", n++, m.addr,
                 colon ? colon + 1 : "0", p->state == 2 ? "send_bulk" : "online",
                 (unsigned long long)p->match,
                 (unsigned long long)(p->ticks_since_contact * srv->cfg.tick_ms / 1000));
        }
        addf(b, "# Replication\r\nrole:master\r\nconnected_slaves:%d\r\n", n);
        resp_buf_append(b, t.data, t.len);
        resp_buf_free(&t);
    } else {
        raft_id l = node_leader(srv->node, NODE_GROUP_DATA);
        struct node_member m;
        memset(&m, 0, sizeof m);
        if (l != RAFT_NONE)
            node_member(srv->node, l, &m);
        char *colon = strrchr(m.addr, ':');
        if (colon)
            *colon = '\0';
        struct peer_link_info li;
        peer_link_info(srv, l, &li);
        long long io = li.last_rx_ms ? (long long)((now - li.last_rx_ms) / 1000) : -1;
        bool up = l != RAFT_NONE && li.last_rx_ms && now - li.last_rx_ms < timeout_ms;
        addf(b, "# Replication\r\nrole:slave\r\nmaster_host:%s\r\nmaster_port:%s\r\n"
             "master_link_status:%s\r\nmaster_last_io_seconds_ago:%lld\r\n"
             "master_sync_in_progress:0\r\nslave_read_repl_offset:%llu\r\n"
             "slave_repl_offset:%llu\r\nslave_priority:100\r\nslave_read_only:0\r\n"
             "replica_announced:1\r\nconnected_slaves:0\r\n",
             m.addr, colon ? colon + 1 : "0", up ? "up" : "down", io,
             (unsigned long long)st.commit, (unsigned long long)st.applied);
    }
    addf(b, "master_failover_state:no-failover\r\nmaster_repl_offset:%llu\r\n"
         "raft_role:%s\r\nraft_leader_id:%llu\r\nraft_commit_index:%llu\r\n"
         "raft_applied_index:%llu\r\nraft_stale_entries:%llu\r\n\r\n",
         (unsigned long long)st.last_index, raft_role_name(st.role),
         (unsigned long long)st.leader, (unsigned long long)st.commit,
         (unsigned long long)st.applied,
         (unsigned long long)(st.commit > st.applied ? st.commit - st.applied : 0));
}

static void info_keyspace(struct server *srv, struct resp_buf *b)
{
    struct ns *ns = node_ns(srv->node, NODE_GROUP_DATA);
    addf(b, "# Keyspace\r\ndb0:keys=%llu,expires=0,avg_ttl=0\r\n\r\n",
         (unsigned long long)(ns ? ns_key_count(ns) : 0));
}

static bool want(int argc, char **argv, const char *sec)
{
    if (argc < 2)
        return true;
    for (int i = 1; i < argc; i++)
        if (EQ(argv[i], sec) || EQ(argv[i], "all") || EQ(argv[i], "default") ||
            EQ(argv[i], "everything"))
            return true;
    return false;
}

void cmd_info(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    (void)len;
    struct server *srv = c->srv;
    struct resp_buf b;
    resp_buf_init(&b);
    if (want(argc, argv, "server"))
        info_server(srv, &b);
    if (want(argc, argv, "clients") || want(argc, argv, "memory")) {
        struct resp_buf t;
        resp_buf_init(&t);
        info_clients_memory(srv, &t);
        /* split the two sections on their blank line */
        char *mid = t.data ? strstr(t.data, "\r\n\r\n") : NULL;
        size_t cut = mid ? (size_t)(mid - t.data) + 4 : t.len;
        if (want(argc, argv, "clients"))
            resp_buf_append(&b, t.data, cut);
        if (want(argc, argv, "memory"))
            resp_buf_append(&b, t.data + cut, t.len - cut);
        resp_buf_free(&t);
    }
    if (want(argc, argv, "persistence") || want(argc, argv, "stats")) {
        struct resp_buf t;
        resp_buf_init(&t);
        info_persistence_stats(srv, &t);
        char *mid = t.data ? strstr(t.data, "\r\n\r\n") : NULL;
        size_t cut = mid ? (size_t)(mid - t.data) + 4 : t.len;
        if (want(argc, argv, "persistence"))
            resp_buf_append(&b, t.data, cut);
        if (want(argc, argv, "stats"))
            resp_buf_append(&b, t.data + cut, t.len - cut);
        resp_buf_free(&t);
    }
    if (want(argc, argv, "replication"))
        info_replication(srv, &b);
    if (want(argc, argv, "raft"))
        info_raft(srv, &b);
    if (want(argc, argv, "keyspace"))
        info_keyspace(srv, &b);
    if (b.len >= 2) /* Redis ends without the last blank line */
        b.len -= 2;
    if (b.oom)
        cmd_reply_rc(s, RC_NOMEM, NULL);
    else
        resp_w_verbatim(cmd_out(s), c->proto, "txt", b.data ? b.data : "", b.len);
    resp_buf_free(&b);
}

/* ------------------------------------------------------------------ TIME */

void cmd_time(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    (void)c;
    (void)argc;
    (void)argv;
    (void)len;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    resp_w_array(cmd_out(s), 2);
    resp_w_bulk_ll(cmd_out(s), (long long)tv.tv_sec);
    resp_w_bulk_ll(cmd_out(s), (long long)tv.tv_usec);
}

/* ------------------------------------------------------------------ CONFIG */

static void config_get(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    struct resp_buf tmp;
    resp_buf_init(&tmp);
    long long n = 0;
    char val[512];
    const char *name;
    for (size_t i = 0; (name = config_name_at(i)); i++) {
        for (int j = 2; j < argc; j++) {
            if (!glob_match(argv[j], len[j], name, strlen(name), true))
                continue;
            config_format(&c->srv->cfg, i, val, sizeof val);
            resp_w_bulk_str(&tmp, name);
            resp_w_bulk_str(&tmp, val);
            n++;
            break; /* each option once, however many patterns match it */
        }
    }
    resp_w_map(cmd_out(s), c->proto, n);
    resp_buf_append(cmd_out(s), tmp.data, tmp.len);
    resp_buf_free(&tmp);
}

/* All-or-nothing: every pair is checked on a scratch config before any is applied. */
static void config_set_cmd(struct client *c, struct cslot *s, int argc, char **argv)
{
    if (argc < 4 || argc % 2 != 0) {
        resp_w_error(cmd_out(s), "ERR wrong number of arguments for 'config|set' command");
        return;
    }
    char err[512];
    struct srv_config scratch;
    config_init(&scratch);
    for (int i = 2; i < argc; i += 2) {
        if (!config_name_at(0) || config_set(&scratch, argv[i], argv[i + 1], err,
                                             sizeof err) != 0) {
            if (strncmp(err, "unknown option", 14) == 0)
                resp_w_errorf(cmd_out(s), "ERR Unknown option or number of arguments for "
                              "CONFIG SET - '%.128s'", argv[i]);
            else
                resp_w_errorf(cmd_out(s), "ERR CONFIG SET failed (possibly related to "
                              "argument '%.128s') - %s", argv[i], err);
            config_free(&scratch);
            return;
        }
        if (!config_runtime_settable(argv[i])) {
            resp_w_errorf(cmd_out(s), "ERR CONFIG SET failed (possibly related to argument "
                          "'%.128s') - can't set immutable config", argv[i]);
            config_free(&scratch);
            return;
        }
    }
    config_free(&scratch);
    for (int i = 2; i < argc; i += 2)
        config_set(&c->srv->cfg, argv[i], argv[i + 1], err, sizeof err);
    log_set_level((int)c->srv->cfg.loglevel);
    LOG_NOTICE("CONFIG SET by %s", c->addr);
    resp_w_simple(cmd_out(s), "OK");
}

void cmd_config(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    const char *sub = argv[1];
    if (EQ(sub, "GET")) {
        if (argc < 3)
            resp_w_error(cmd_out(s), "ERR wrong number of arguments for 'config|get' command");
        else
            config_get(c, s, argc, argv, len);
    } else if (EQ(sub, "SET")) {
        config_set_cmd(c, s, argc, argv);
    } else if (EQ(sub, "RESETSTAT")) {
        uint64_t turns = c->srv->stats.turns;
        memset(&c->srv->stats, 0, sizeof c->srv->stats);
        c->srv->stats.turns = turns;
        resp_w_simple(cmd_out(s), "OK");
    } else if (EQ(sub, "REWRITE")) {
        resp_w_error(cmd_out(s), "ERR CONFIG REWRITE is not supported by raftconf");
    } else if (EQ(sub, "HELP")) {
        resp_w_array(cmd_out(s), 4);
        resp_w_simple(cmd_out(s), "CONFIG <subcommand> [<arg> ...]. Subcommands are:");
        resp_w_simple(cmd_out(s), "GET <pattern> [<pattern> ...]");
        resp_w_simple(cmd_out(s), "SET <name> <value> [<name> <value> ...]");
        resp_w_simple(cmd_out(s), "RESETSTAT");
    } else {
        resp_w_errorf(cmd_out(s), "ERR unknown subcommand '%.128s'. Try CONFIG HELP.", sub);
    }
}

/* ------------------------------------------------------------------ COMMAND */

static void command_info_one(struct client *c, struct resp_buf *b, const struct cmd_def *d)
{
    const char *fl[16];
    size_t nf = cmd_flag_names(d->flags, fl, 16);
    resp_w_array(b, 10);
    resp_w_bulk_str(b, d->name);
    resp_w_int(b, d->arity);
    resp_w_set(b, c->proto, (long long)nf);
    for (size_t i = 0; i < nf; i++)
        resp_w_simple(b, fl[i]);
    resp_w_int(b, d->first_key);
    resp_w_int(b, d->last_key);
    resp_w_int(b, d->key_step);
    const char *cat = d->flags & CMD_WRITE ? "@write" : d->flags & CMD_READONLY ? "@read"
                                                                                : "@connection";
    resp_w_set(b, c->proto, 1);
    resp_w_simple(b, cat);
    resp_w_array(b, 0); /* tips */
    resp_w_array(b, 0); /* key specs */
    resp_w_array(b, 0); /* subcommands */
}

/* ------------------------------------------------------------------ COMMAND DOCS
 *
 * Argument docs are derived from each table row's syntax string, Redis's notation:
 *   key                   a placeholder (type from its name: key, pattern, integer, string)
 *   GET                   a pure token (an upper-case word)
 *   NX|XX                 a choice (oneof) of its alternatives
 *   MATCH pattern         a token followed by a value
 *   AUTH user pass        a token followed by a block of values
 *   [...]                 optional
 *   key [key ...]         "key", multiple; "key value [key value ...]": a multiple block
 * Container commands (CLIENT, CONFIG, ...) document subcommands instead, from subcmd_docs.
 * redis-cli builds its hints and HELP from this reply (it rebuilds "[NX|XX]" etc. from the
 * types, tokens and flags), so what it shows is the syntax string of the table. */

#define ARGS_MAX 16
#define ARG_TEXT_MAX 512

struct subcmd_doc {
    const char *name; /* "container|sub", lower case */
    const char *summary;
    const char *args;
};

static const struct subcmd_doc subcmd_docs[] = {
    {"client|id", "Returns the unique client ID of the connection.", ""},
    {"client|getname", "Returns the name of the connection.", ""},
    {"client|setname", "Sets the connection name.", "connection-name"},
    {"client|setinfo", "Sets information specific to the client or connection.",
     "LIB-NAME|LIB-VER value"},
    {"client|list", "Lists open connections.",
     "[TYPE NORMAL|MASTER|REPLICA|PUBSUB] [ID client-id [client-id ...]]"},
    {"client|info", "Returns information about the connection.", ""},
    {"client|kill", "Terminates open connections.",
     "[ID client-id] [ADDR ip:port] [LADDR ip:port] [SKIPME YES|NO]"},
    {"client|no-evict", "Accepted, no effect: raftconf evicts nothing.", "ON|OFF"},
    {"client|no-touch", "Accepted, no effect.", "ON|OFF"},
    {"client|tracking", "Refused: raftconf has no client-side caching.", "ON|OFF"},
    {"client|help", "Returns helpful text about the different subcommands.", ""},
    {"command|count", "Returns a count of commands.", ""},
    {"command|docs", "Returns documentary information about one, multiple or all commands.",
     "[command-name [command-name ...]]"},
    {"command|getkeys", "Extracts the key names from an arbitrary command.",
     "command [arg [arg ...]]"},
    {"command|info", "Returns information about one, multiple or all commands.",
     "[command-name [command-name ...]]"},
    {"command|list", "Returns a list of command names.", ""},
    {"command|help", "Returns helpful text about the different subcommands.", ""},
    {"config|get", "Returns the effective values of configuration parameters.",
     "parameter [parameter ...]"},
    {"config|set", "Sets configuration parameters in-flight.",
     "parameter value [parameter value ...]"},
    {"config|resetstat", "Resets the server's statistics.", ""},
    {"config|rewrite", "Refused: raftconf does not rewrite its configuration file.", ""},
    {"config|help", "Returns helpful text about the different subcommands.", ""},
    {"debug|log", "Writes a message to the server log (no other DEBUG subcommand exists).",
     "message"},
    {"debug|help", "Returns helpful text about the different subcommands.", ""},
    {"pubsub|channels", "Returns the active channels on this node.", "[pattern]"},
    {"pubsub|numsub", "Returns a count of subscribers to channels on this node.",
     "[channel [channel ...]]"},
    {"pubsub|numpat", "Returns a count of unique pattern subscriptions on this node.", ""},
    {"pubsub|shardchannels", "Always empty: raftconf has no sharded Pub/Sub.", "[pattern]"},
    {"pubsub|shardnumsub", "Always 0 per channel: raftconf has no sharded Pub/Sub.",
     "[shardchannel [shardchannel ...]]"},
    {"pubsub|help", "Returns helpful text about the different subcommands.", ""},
    {"cfg.cluster|nodes", "Lists the members of the cluster with their state.", ""},
    {"cfg.cluster|info", "Returns the cluster state as key:value lines.", ""},
    {"cfg.cluster|add", "Adds a member (a voter, or a learner).", "id addr [LEARNER]"},
    {"cfg.cluster|promote", "Makes a learner a voter.", "id"},
    {"cfg.cluster|remove", "Removes a member.", "id"},
    {"cfg.cluster|transfer", "Hands leadership to another voter.", "id"},
    {"cfg.cluster|help", "Returns helpful text about the different subcommands.", ""},
};
#define N_SUBCMD_DOCS (sizeof subcmd_docs / sizeof subcmd_docs[0])

/* Number of subcommand docs of container d (0: not a container). */
static size_t subcmd_count(const struct cmd_def *d)
{
    size_t n = 0, len = strlen(d->name);
    for (size_t i = 0; i < N_SUBCMD_DOCS; i++)
        n += strncmp(subcmd_docs[i].name, d->name, len) == 0 && subcmd_docs[i].name[len] == '|';
    return n;
}

/* Argument type from its placeholder name. */
static const char *arg_type(const char *name)
{
    if (strcmp(name, "key") == 0)
        return "key";
    if (strcmp(name, "pattern") == 0)
        return "pattern";
    if (strcmp(name, "count") == 0 || strcmp(name, "cursor") == 0 ||
        strcmp(name, "version") == 0 || strcmp(name, "index") == 0 ||
        strcmp(name, "protover") == 0 || strcmp(name, "revision") == 0 ||
        strcmp(name, "milliseconds") == 0 || strcmp(name, "id") == 0 ||
        strcmp(name, "client-id") == 0 || strcmp(name, "group") == 0)
        return "integer";
    return "string";
}

static bool is_upper_word(const char *w, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(w[i] >= 'A' && w[i] <= 'Z') && w[i] != '-' && w[i] != '_' && w[i] != '.' &&
            !(w[i] >= '0' && w[i] <= '9'))
            return false;
    return true;
}

/* Top-level tokens of a syntax string: "[...]" groups stay whole (brackets stripped, opt
 * set); "[x ...]" after x makes x multiple; "[k v ...]" after "k v" makes those words one
 * multiple block (text = "k v"). */
struct toks {
    char buf[ARG_TEXT_MAX];
    char *t[ARGS_MAX];
    bool opt[ARGS_MAX], multi[ARGS_MAX], skip[ARGS_MAX], block[ARGS_MAX];
    int n, visible;
};

static int count_words(const char *s)
{
    int n = 0, depth = 0;
    bool in = false;
    for (; *s; s++) {
        depth += *s == '[' ? 1 : *s == ']' ? -1 : 0;
        if (*s != ' ' && !in) {
            n++;
            in = true;
        } else if (*s == ' ' && depth == 0) {
            in = false;
        }
    }
    return n;
}

static void toks_split(struct toks *k, const char *syn)
{
    memset(k, 0, sizeof *k);
    snprintf(k->buf, sizeof k->buf, "%s", syn);
    int depth = 0;
    char *start = NULL;
    for (char *p = k->buf;; p++) {
        bool end = *p == '\0';
        if (!start && !end && *p != ' ')
            start = p;
        depth += *p == '[' ? 1 : *p == ']' ? -1 : 0;
        if (start && (end || (*p == ' ' && depth == 0))) {
            *p = '\0';
            size_t l = strlen(start);
            if (k->n < ARGS_MAX && l > 0) {
                int i = k->n++;
                k->opt[i] = start[0] == '[' && start[l - 1] == ']';
                if (k->opt[i]) {
                    start[l - 1] = '\0';
                    start++;
                }
                k->t[i] = start;
            }
            start = NULL;
        }
        if (end)
            break;
    }
    for (int i = 0; i < k->n; i++) {
        size_t l = strlen(k->t[i]);
        if (!k->opt[i] || l < 4 || strcmp(k->t[i] + l - 4, " ...") != 0)
            continue;
        k->t[i][l - 4] = '\0';
        int w = count_words(k->t[i]);
        if (w <= 1 && i >= 1) { /* "key [key ...]" */
            k->multi[i - 1] = true;
            k->skip[i] = true;
        } else if (w > 1 && i >= w) { /* "key value [key value ...]" */
            for (int j = i - w; j < i; j++)
                k->skip[j] = true;
            k->block[i] = k->multi[i] = true;
            k->opt[i] = false;
        } else { /* "[section ...]" on its own: optional and multiple */
            k->multi[i] = true;
        }
    }
    for (int i = 0; i < k->n; i++)
        k->visible += !k->skip[i];
}

static void lower_copy(char *dst, size_t cap, const char *src, size_t n)
{
    size_t i = 0;
    for (; i < n && i + 1 < cap; i++)
        dst[i] = (char)((src[i] >= 'A' && src[i] <= 'Z') ? src[i] + 32 : src[i]);
    dst[i] = '\0';
}

/* Map header and fields of one argument doc, up to (not including) its "arguments". */
static void arg_head(struct resp_buf *b, int proto, const char *name, const char *type,
                     const char *token, bool opt, bool multi, bool kids)
{
    resp_w_map(b, proto, 2 + (token != NULL) + (opt || multi) + kids);
    resp_w_bulk_str(b, "name");
    resp_w_bulk_str(b, name);
    resp_w_bulk_str(b, "type");
    resp_w_bulk_str(b, type);
    if (token) {
        resp_w_bulk_str(b, "token");
        resp_w_bulk_str(b, token);
    }
    if (opt || multi) {
        resp_w_bulk_str(b, "flags");
        resp_w_set(b, proto, (long long)opt + multi);
        if (opt)
            resp_w_simple(b, "optional");
        if (multi)
            resp_w_simple(b, "multiple");
    }
    if (kids)
        resp_w_bulk_str(b, "arguments");
}

static void emit_args(struct resp_buf *b, int proto, const char *syn, int depth);
static void emit_one(struct resp_buf *b, int proto, const char *text, bool opt, bool multi,
                     int depth);

/* "A|B|C" (optionally after a token): a oneof whose alternatives are arguments. */
static void emit_choice(struct resp_buf *b, int proto, const char *token, const char *alts,
                        bool opt, bool multi, int depth)
{
    char name[64] = "choice";
    if (token)
        lower_copy(name, sizeof name, token, strlen(token));
    arg_head(b, proto, name, "oneof", token, opt, multi, true);
    char copy[ARG_TEXT_MAX];
    snprintf(copy, sizeof copy, "%s", alts);
    long long n = 1;
    for (const char *p = copy; *p; p++)
        n += *p == '|';
    resp_w_array(b, n);
    char *save = NULL;
    for (char *alt = strtok_r(copy, "|", &save); alt; alt = strtok_r(NULL, "|", &save))
        emit_one(b, proto, alt, false, false, depth + 1);
}

static void emit_one(struct resp_buf *b, int proto, const char *text, bool opt, bool multi,
                     int depth)
{
    char name[64];
    const char *sp = NULL;
    for (const char *p = text; *p && !sp; p++)
        if (*p == ' ' || *p == '[')
            sp = p;
    if (!sp) { /* one word: a choice, a pure token, or a placeholder */
        if (strchr(text, '|')) {
            emit_choice(b, proto, NULL, text, opt, multi, depth);
        } else if (is_upper_word(text, strlen(text))) {
            lower_copy(name, sizeof name, text, strlen(text));
            arg_head(b, proto, name, "pure-token", text, opt, multi, false);
        } else {
            arg_head(b, proto, text, arg_type(text), NULL, opt, multi, false);
        }
        return;
    }
    size_t flen = (size_t)(sp - text);
    const char *rest = sp + (*sp == ' ');
    char token[64];
    snprintf(token, sizeof token, "%.*s", (int)flen, text);
    bool tok = is_upper_word(text, flen);
    if (tok && count_words(rest) == 1 && !strchr(rest, '[')) {
        if (strchr(rest, '|')) {
            emit_choice(b, proto, token, rest, opt, multi, depth);
        } else { /* "MATCH pattern" */
            arg_head(b, proto, rest, arg_type(rest), token, opt, multi, false);
        }
        return;
    }
    struct toks k;
    toks_split(&k, tok ? rest : text);
    if (!tok && k.visible == 1 && depth < 4) { /* "[pattern [pattern ...]]" */
        for (int i = 0; i < k.n; i++)
            if (!k.skip[i])
                emit_one(b, proto, k.t[i], opt || k.opt[i], multi || k.multi[i], depth + 1);
        return;
    }
    if (tok)
        lower_copy(name, sizeof name, token, flen);
    arg_head(b, proto, tok ? name : "arguments", "block", tok ? token : NULL, opt, multi, true);
    emit_args(b, proto, tok ? rest : text, depth + 1);
}

static void emit_args(struct resp_buf *b, int proto, const char *syn, int depth)
{
    struct toks k;
    toks_split(&k, depth < 4 ? syn : "");
    resp_w_array(b, k.visible);
    for (int i = 0; i < k.n; i++) {
        if (k.skip[i])
            continue;
        if (k.block[i]) {
            arg_head(b, proto, "data", "block", NULL, false, true, true);
            emit_args(b, proto, k.t[i], depth + 1);
        } else {
            emit_one(b, proto, k.t[i], k.opt[i], k.multi[i], depth);
        }
    }
}

/* One command's (or subcommand's) docs map; sub_n > 0: a container with sub_n subcommands
 * whose rows in subcmd_docs start with "<name>|". */
static void docs_map(struct resp_buf *b, int proto, const struct cmd_def *d,
                     const char *summary, const char *args, size_t sub_n)
{
    resp_w_map(b, proto, 4 + (args[0] != '\0') + (sub_n > 0));
    resp_w_bulk_str(b, "summary");
    resp_w_bulk_str(b, summary);
    resp_w_bulk_str(b, "since");
    resp_w_bulk_str(b, d->since);
    resp_w_bulk_str(b, "group");
    resp_w_bulk_str(b, d->group);
    resp_w_bulk_str(b, "complexity");
    resp_w_bulk_str(b, d->complexity);
    if (args[0]) {
        resp_w_bulk_str(b, "arguments");
        emit_args(b, proto, args, 0);
    }
    if (sub_n == 0)
        return;
    resp_w_bulk_str(b, "subcommands");
    resp_w_map(b, proto, (long long)sub_n);
    size_t len = strlen(d->name);
    for (size_t i = 0; i < N_SUBCMD_DOCS; i++) {
        const struct subcmd_doc *sd = &subcmd_docs[i];
        if (strncmp(sd->name, d->name, len) != 0 || sd->name[len] != '|')
            continue;
        resp_w_bulk_str(b, sd->name);
        docs_map(b, proto, d, sd->summary, sd->args, 0);
    }
}

static void command_docs_one(struct client *c, struct resp_buf *b, const struct cmd_def *d)
{
    resp_w_bulk_str(b, d->name);
    size_t sub_n = subcmd_count(d);
    docs_map(b, c->proto, d, d->summary, sub_n ? "" : d->args, sub_n);
}

/* Definitions named in argv[first..argc) (unknown names skipped for DOCS, nil for INFO). */
static void command_list_named(struct client *c, struct cslot *s, int argc, char **argv,
                               size_t *len, int first, bool docs)
{
    struct resp_buf *b = cmd_out(s);
    if (argc <= first) {
        if (docs)
            resp_w_map(b, c->proto, (long long)cmd_count());
        else
            resp_w_array(b, (long long)cmd_count());
        for (size_t i = 0; i < cmd_count(); i++)
            docs ? command_docs_one(c, b, cmd_at(i)) : command_info_one(c, b, cmd_at(i));
        return;
    }
    if (!docs) {
        resp_w_array(b, argc - first);
        for (int i = first; i < argc; i++) {
            const struct cmd_def *d = cmd_lookup(argv[i], len[i]);
            if (d)
                command_info_one(c, b, d);
            else
                resp_w_null_array(b, c->proto);
        }
        return;
    }
    long long n = 0;
    for (int i = first; i < argc; i++)
        n += cmd_lookup(argv[i], len[i]) != NULL;
    resp_w_map(b, c->proto, n);
    for (int i = first; i < argc; i++) {
        const struct cmd_def *d = cmd_lookup(argv[i], len[i]);
        if (d)
            command_docs_one(c, b, d);
    }
}

/* COMMAND GETKEYS cmd arg...: the keys by the table's first/last/step. */
static void command_getkeys(struct cslot *s, int argc, char **argv, size_t *len)
{
    struct resp_buf *b = cmd_out(s);
    const struct cmd_def *d = argc >= 3 ? cmd_lookup(argv[2], len[2]) : NULL;
    int n = argc - 2; /* words of the command */
    if (argc < 3) {
        resp_w_error(b, "ERR wrong number of arguments for 'command|getkeys' command");
    } else if (!d) {
        resp_w_error(b, "ERR Invalid command specified");
    } else if ((d->arity > 0 && n != d->arity) || (d->arity < 0 && n < -d->arity)) {
        resp_w_error(b, "ERR Invalid number of arguments specified for command");
    } else if (d->first_key == 0) {
        resp_w_error(b, "ERR The command has no key arguments");
    } else {
        int last = d->last_key < 0 ? n + d->last_key : d->last_key;
        int step = d->key_step > 0 ? d->key_step : 1;
        long long cnt = 0;
        for (int i = d->first_key; i <= last && i < n; i += step)
            cnt++;
        resp_w_array(b, cnt);
        for (int i = d->first_key; i <= last && i < n; i += step)
            resp_w_bulk(b, argv[2 + i], len[2 + i]);
    }
}

static void help_lines(struct cslot *s, const char *const *lines, size_t n)
{
    resp_w_array(cmd_out(s), (long long)n);
    for (size_t i = 0; i < n; i++)
        resp_w_simple(cmd_out(s), lines[i]);
}

void cmd_command(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    static const char *const help[] = {
        "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "(no subcommand)", "    Return details about all commands.",
        "COUNT", "    Return the total number of commands in this server.",
        "LIST", "    Return a list of all commands in this server.",
        "INFO [<command-name> ...]", "    Return details about the given commands.",
        "DOCS [<command-name> ...]", "    Return documentation details about the given commands.",
        "GETKEYS <full-command>", "    Return the keys from a full command.",
        "HELP", "    Print this help."};
    struct resp_buf *b = cmd_out(s);
    if (argc == 1) {
        command_list_named(c, s, argc, argv, len, 1, false);
    } else if (EQ(argv[1], "COUNT")) {
        resp_w_int(b, (long long)cmd_count());
    } else if (EQ(argv[1], "INFO")) {
        command_list_named(c, s, argc, argv, len, 2, false);
    } else if (EQ(argv[1], "DOCS")) {
        command_list_named(c, s, argc, argv, len, 2, true);
    } else if (EQ(argv[1], "LIST")) {
        resp_w_array(b, (long long)cmd_count());
        for (size_t i = 0; i < cmd_count(); i++)
            resp_w_bulk_str(b, cmd_at(i)->name);
    } else if (EQ(argv[1], "GETKEYS")) {
        command_getkeys(s, argc, argv, len);
    } else if (EQ(argv[1], "HELP")) {
        help_lines(s, help, sizeof help / sizeof help[0]);
    } else {
        resp_w_errorf(b, "ERR unknown subcommand '%.128s'. Try COMMAND HELP.", argv[1]);
    }
}

/* ------------------------------------------------------------------ DEBUG */

/* Only DEBUG LOG (clients' test suites mark their steps in the server log with it); the
 * rest of Redis's DEBUG (crashes, reloads, sleeps) has no place in a replicated service. */
void cmd_debug(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    static const char *const help[] = {
        "DEBUG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "LOG <message>", "    Write <message> to the server log.",
        "HELP", "    Print this help."};
    if (EQ(argv[1], "LOG") && argc == 3) {
        LOG_NOTICE("DEBUG LOG from %s: %.*s", c->addr, len[2] > 512 ? 512 : (int)len[2],
                   argv[2]);
        resp_w_simple(cmd_out(s), "OK");
    } else if (EQ(argv[1], "HELP") && argc == 2) {
        help_lines(s, help, sizeof help / sizeof help[0]);
    } else {
        resp_w_errorf(cmd_out(s), "ERR unknown subcommand or wrong number of arguments for "
                      "'%.128s'. Try DEBUG HELP.", argv[1]);
    }
}
