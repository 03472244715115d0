/*
 * cmd_cluster.c - cluster commands (issue 4): CFG.CLUSTER NODES | INFO | ADD | PROMOTE |
 * REMOVE | TRANSFER, and CFG.HEALTH. Membership changes go through node_conf_change (meta
 * group first, then data) and answer once both groups applied them on this node; on a
 * node that is not the leader they answer "-MOVED 0 <leader host:port>" (Redis Cluster's
 * redirect shape, slot 0) or -TRYAGAIN while no leader is known.
 *
 * A pending change parks its slot exactly as a write does (SLOT_WRITING, pending_writes),
 * so the client's ordering rules hold; on_conf_done completes it like client.c's write
 * completion (reply, SLOT_DONE, output accounting, mark dirty).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client.h"
#include "commands.h"
#include "config.h"
#include "node.h"
#include "peer.h"
#include "rc.h"
#include "server.h"

#define EQ(a, b) (strcasecmp((a), (b)) == 0)
#define MEMBERS_MAX (RAFT_VOTERS_MAX + RAFT_LEARNERS_MAX)

static const char *group_name(uint32_t g) { return g == NODE_GROUP_META ? "meta" : "data"; }

/* "-MOVED 0 host:port" naming the meta group's leader, or -TRYAGAIN when none is known. */
static void reply_moved(struct client *c, struct cslot *s)
{
    raft_id l = node_leader(c->srv->node, NODE_GROUP_META);
    struct node_member m;
    if (l == RAFT_NONE || node_member(c->srv->node, l, &m) != RC_OK || !m.addr[0])
        cmd_reply_rc(s, RC_TRYAGAIN, "no leader known yet, try again");
    else
        resp_w_errorf(cmd_out(s), "MOVED 0 %s", m.addr);
}

static void reply_err(struct client *c, struct cslot *s, int rc, const struct ns_reply *r)
{
    if (rc == RC_NOTLEADER)
        reply_moved(c, s);
    else if (r && r->type == NS_R_ERR && r->str)
        cmd_reply_rc(s, r->rc ? r->rc : rc, r->str);
    else
        cmd_reply_rc(s, rc, NULL);
}

static void on_conf_done(void *ud, int rc, struct ns_reply *r)
{
    struct cslot *s = ud;
    struct client *c = s->c;
    s->handle = 0;
    c->pending_writes--;
    if (rc == RC_OK)
        resp_w_simple(&s->out, "OK");
    else
        reply_err(c, s, rc, r);
    if (r)
        ns_reply_free(r);
    s->state = SLOT_DONE; /* as client.c's slot_done */
    c->unflushed_bytes += s->out.len;
    resp_cmd_free(s->cmd);
    s->cmd = NULL;
    srv_mark_dirty(c->srv, c);
}

static bool parse_id(struct cslot *s, const char *p, size_t len, raft_id *out)
{
    long long v;
    if (!cmd_parse_ll(p, len, &v) || v < 1 || v > (long long)UINT32_MAX) {
        resp_w_error(cmd_out(s), "ERR node id must be an integer in 1..4294967295");
        return false;
    }
    *out = (raft_id)v;
    return true;
}

static void conf_change(struct client *c, struct cslot *s, uint8_t type, raft_id id,
                        const char *addr, const char *cluster_addr)
{
    if (!c->srv->cfg.cluster_secret[0] && type != RAFT_CC_REMOVE) {
        resp_w_error(cmd_out(s), "ERR this node has no cluster-secret; restart every member "
                                 "with the same cluster-secret to form a cluster");
        return;
    }
    int rc = RC_OK;
    uint64_t h = node_conf_change(c->srv->node, type, id, addr, cluster_addr, srv_mono_ms(),
                                  on_conf_done, s, &rc);
    if (h == 0) {
        reply_err(c, s, rc ? rc : RC_NOMEM, NULL);
        return;
    }
    s->handle = h;
    s->state = SLOT_WRITING;
    c->pending_writes++;
}

/* ADD id host:port[@cport] [LEARNER] */
static void cluster_add(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    raft_id id;
    if (argc < 4 || argc > 5 || (argc == 5 && !EQ(argv[4], "LEARNER"))) {
        resp_w_error(cmd_out(s), "ERR syntax: CFG.CLUSTER ADD <id> <host:port[@cport]> "
                                 "[LEARNER]");
        return;
    }
    if (!parse_id(s, argv[2], len[2], &id))
        return;
    char spec[256], err[256];
    snprintf(spec, sizeof spec, "%llu=%.200s", (unsigned long long)id, argv[3]);
    struct config_member m;
    size_t n = 0;
    if (strchr(argv[3], ',') || config_parse_cluster(spec, &m, 1, &n, err, sizeof err) != 0 ||
        n != 1) {
        resp_w_errorf(cmd_out(s), "ERR bad address '%.128s' (want host:port or "
                      "host:port@cport)", argv[3]);
        return;
    }
    char addr[NODE_ADDR_MAX], caddr[NODE_ADDR_MAX];
    snprintf(addr, sizeof addr, "%s:%u", m.host, m.port);
    snprintf(caddr, sizeof caddr, "%s:%u", m.host, m.cport);
    conf_change(c, s, argc == 5 ? RAFT_CC_ADD_LEARNER : RAFT_CC_ADD_VOTER, id, addr, caddr);
}

static void cluster_transfer(struct client *c, struct cslot *s, raft_id to)
{
    int rc = node_transfer(c->srv->node, to);
    if (rc == RC_OK)
        resp_w_simple(cmd_out(s), "OK");
    else if (rc == RC_BADARG)
        resp_w_errorf(cmd_out(s), "ERR node %llu is not a voter of this cluster",
                      (unsigned long long)to);
    else
        reply_err(c, s, rc, NULL);
}

/* One line per member: id addr@cport flags match last-contact-ms link */
static void cluster_nodes(struct client *c, struct cslot *s)
{
    struct node_member m[MEMBERS_MAX];
    size_t n = 0;
    struct node *nd = c->srv->node;
    if (node_members(nd, m, MEMBERS_MAX, &n) != RC_OK) {
        cmd_reply_rc(s, RC_TOOBIG, NULL);
        return;
    }
    struct raft_status st;
    bool have = node_raft_status(nd, NODE_GROUP_DATA, &st) == RC_OK;
    raft_id self = (raft_id)c->srv->cfg.node_id, leader = node_leader(nd, NODE_GROUP_DATA);
    uint64_t now = srv_mono_ms();
    struct resp_buf t;
    resp_buf_init(&t);
    for (size_t i = 0; i < n; i++) {
        unsigned long long match = 0;
        for (uint32_t k = 0; have && k < st.n_progress; k++)
            if (st.progress[k].id == m[i].id)
                match = st.progress[k].match;
        if (m[i].id == self && have)
            match = st.last_index;
        struct peer_link_info li;
        peer_link_info(c->srv, m[i].id, &li);
        char cport[16] = "0";
        const char *colon = strrchr(m[i].cluster_addr, ':');
        if (colon)
            snprintf(cport, sizeof cport, "%s", colon + 1);
        char line[512];
        long long ago = m[i].id == self ? 0 : li.last_rx_ms ? (long long)(now - li.last_rx_ms)
                                                             : -1;
        snprintf(line, sizeof line, "%llu %s@%s %s%s%s %llu %lld %s\n",
                 (unsigned long long)m[i].id, m[i].addr, cport,
                 m[i].id == self ? "myself," : "", m[i].id == leader ? "leader," : "",
                 m[i].learner ? "learner" : "voter", match, ago,
                 m[i].id == self ? "connected" : li.up ? "connected" : "disconnected");
        resp_buf_append(&t, line, strlen(line));
    }
    resp_w_verbatim(cmd_out(s), c->proto, "txt", t.data ? t.data : "", t.len);
    resp_buf_free(&t);
}

static void cluster_info(struct client *c, struct cslot *s)
{
    struct node *nd = c->srv->node;
    struct node_member m[MEMBERS_MAX];
    size_t n = 0;
    node_members(nd, m, MEMBERS_MAX, &n);
    size_t learners = 0;
    for (size_t i = 0; i < n && i < MEMBERS_MAX; i++)
        learners += m[i].learner;
    char why[128] = "";
    bool ok = node_healthy(nd, NODE_GROUP_DATA, why, sizeof why) &&
              node_healthy(nd, NODE_GROUP_META, why, sizeof why);
    struct raft_status st;
    memset(&st, 0, sizeof st);
    node_raft_status(nd, NODE_GROUP_DATA, &st);
    raft_id leader = node_leader(nd, NODE_GROUP_DATA);
    struct node_member lm;
    memset(&lm, 0, sizeof lm);
    if (leader != RAFT_NONE)
        node_member(nd, leader, &lm);
    char buf[1024];
    int len = snprintf(buf, sizeof buf,
                       "cluster_state:%s\r\ncluster_my_id:%llu\r\ncluster_my_role:%s\r\n"
                       "cluster_leader:%llu\r\ncluster_leader_addr:%s\r\ncluster_term:%llu\r\n"
                       "cluster_known_nodes:%zu\r\ncluster_size:%zu\r\ncluster_learners:%zu\r\n"
                       "cluster_commit_index:%llu\r\ncluster_applied_index:%llu\r\n"
                       "cluster_port:%u\r\n",
                       ok ? "ok" : "fail", (unsigned long long)c->srv->cfg.node_id,
                       raft_role_name(st.role), (unsigned long long)leader, lm.addr,
                       (unsigned long long)st.term, n, n - learners, learners,
                       (unsigned long long)st.commit, (unsigned long long)st.applied,
                       peer_cluster_port(c->srv));
    resp_w_verbatim(cmd_out(s), c->proto, "txt", buf, (size_t)len < sizeof buf ? (size_t)len
                                                                               : sizeof buf - 1);
}

void cmd_cfg_cluster(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    const char *sub = argv[1];
    raft_id id;
    if (EQ(sub, "NODES") && argc == 2) {
        cluster_nodes(c, s);
    } else if (EQ(sub, "INFO") && argc == 2) {
        cluster_info(c, s);
    } else if (EQ(sub, "ADD")) {
        cluster_add(c, s, argc, argv, len);
    } else if (EQ(sub, "PROMOTE") && argc == 3) {
        if (parse_id(s, argv[2], len[2], &id))
            conf_change(c, s, RAFT_CC_ADD_VOTER, id, NULL, NULL);
    } else if (EQ(sub, "REMOVE") && argc == 3) {
        if (parse_id(s, argv[2], len[2], &id))
            conf_change(c, s, RAFT_CC_REMOVE, id, NULL, NULL);
    } else if (EQ(sub, "TRANSFER") && argc == 3) {
        if (parse_id(s, argv[2], len[2], &id))
            cluster_transfer(c, s, id);
    } else if (EQ(sub, "HELP")) {
        static const char *const lines[] = {
            "CFG.CLUSTER <subcommand> [<arg> ...]. Subcommands are:", "NODES", "INFO",
            "ADD <id> <host:port[@cport]> [LEARNER]", "PROMOTE <id>", "REMOVE <id>",
            "TRANSFER <id>", "HELP"};
        size_t nl = sizeof lines / sizeof lines[0];
        resp_w_array(cmd_out(s), (long long)nl);
        for (size_t i = 0; i < nl; i++)
            resp_w_simple(cmd_out(s), lines[i]);
    } else {
        resp_w_errorf(cmd_out(s), "ERR unknown subcommand or wrong number of arguments for "
                      "'%.64s'. Try CFG.CLUSTER HELP.", sub);
    }
}

void cmd_cfg_health(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    (void)argc;
    (void)argv;
    (void)len;
    static const uint32_t groups[] = {NODE_GROUP_META, NODE_GROUP_DATA};
    for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++) {
        char why[160] = "";
        if (!node_healthy(c->srv->node, groups[i], why, sizeof why)) {
            resp_w_errorf(cmd_out(s), "ERR unhealthy: group %u (%s): %s", groups[i],
                          group_name(groups[i]), why[0] ? why : "cannot serve reads");
            return;
        }
    }
    resp_w_simple(cmd_out(s), "OK");
}
