/*
 * peer_conn.c - inbound side of the peer transport (see peer.h for the protocol): the
 * cluster-port listener, the challenge half of the handshake, and the RAFT.* commands an
 * authenticated member may send (messages stepped into the node core, snapshot chunks
 * staged through node_snap_stage_*).
 *
 * Invariants:
 *   - before RAFT.AUTH succeeds the parser runs with the unauthenticated limits and only
 *     RAFT.HELLO / RAFT.AUTH are understood; anything else is an error and a close;
 *   - every frame is decoded strictly (raft_wire: checksum, bounds); a frame that fails,
 *     or whose sender is not the authenticated member, or that is addressed elsewhere, is
 *     dropped and counted, and the connection stays (the RESP framing is intact);
 *   - a RAFT_MSG_SNAPSHOT is only ever stepped after its data was staged completely on the
 *     same connection (RAFT.SNAP.END); any snapshot error aborts the staging and closes;
 *   - a connection freed with staging in progress aborts it.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <xxhash.h>

#include "log.h"
#include "node.h"
#include "peer_internal.h"
#include "raft_wire.h"
#include "rc.h"
#include "server.h"

#define EQ(a, b) (strcasecmp((a), (b)) == 0)
#define PEER_ARG_MAX (RAFT_WIRE_MSG_BYTES_MAX_DEFAULT + 1024)

/* Forget c's snapshot stream of group g; abort the node's staging only if it is still
 * c's (a newer stream, from another connection, replaced it otherwise). */
static void snap_drop(struct pconn *c, uint32_t g, bool abort)
{
    struct peer_mgr *pm = c->pm;
    if (!c->snap_active[g])
        return;
    if (pm->stager[g] == c) {
        if (abort)
            node_snap_stage_abort(pm->srv->node, g);
        pm->stager[g] = NULL;
    }
    raft_wire_msg_free(&c->snap_msg[g]);
    c->snap_active[g] = false;
}

static void conn_free(struct pconn *c)
{
    struct peer_mgr *pm = c->pm;
    for (uint32_t g = 0; g < NODE_GROUPS; g++) {
        if (c->snap_active[g]) {
            snap_drop(c, g, true);
            pm->st.snaps_failed++;
        }
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        pm->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pm->n_conns--;
    bufferevent_free(c->bev);
    resp_parser_free(c->parser);
    free(c);
}

/* Reply an error and close once it is written. */
static void conn_refuse(struct pconn *c, const char *msg)
{
    struct resp_buf b;
    resp_buf_init(&b);
    resp_w_errorf(&b, "ERR %s", msg);
    bufferevent_write(c->bev, b.data, b.len);
    resp_buf_free(&b);
    c->state = C_CLOSING;
    bufferevent_disable(c->bev, EV_READ);
    LOG_VERBOSE("peer connection %s refused: %s", c->addr, msg);
}

/* ------------------------------------------------------------------ handshake */

static bool parse_id(const char *s, raft_id *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (!s[0] || *end || v == 0 || v > UINT32_MAX)
        return false;
    *out = v;
    return true;
}

static void on_hello(struct pconn *c, struct resp_cmd *cmd)
{
    struct peer_mgr *pm = c->pm;
    raft_id from, to;
    if (c->state != C_NEW || cmd->argc != 6 || strcmp(cmd->argv[1], PEER_PROTO_TAG) != 0 ||
        !parse_id(cmd->argv[2], &from) || !parse_id(cmd->argv[3], &to)) {
        conn_refuse(c, "bad RAFT.HELLO (protocol " PEER_PROTO_TAG " expected)");
        return;
    }
    if (to != (raft_id)pm->srv->cfg.node_id || from == to) {
        char msg[96];
        snprintf(msg, sizeof msg, "wrong node: this is node %llu",
                 (unsigned long long)pm->srv->cfg.node_id);
        conn_refuse(c, msg);
        return;
    }
    char why[PEER_LIMITS_MAX + 160];
    if (peer_limits_differ(pm->srv, cmd->argv[5], why, sizeof why)) {
        LOG_WARNING("peer %llu (%s) refused: %s", (unsigned long long)from, c->addr, why);
        conn_refuse(c, why);
        return;
    }
    unsigned char nonce[PEER_NONCE_BYTES];
    if (RAND_bytes(nonce, sizeof nonce) != 1) {
        conn_refuse(c, "no randomness available");
        return;
    }
    for (size_t i = 0; i < sizeof nonce; i++)
        snprintf(c->nonce + 2 * i, 3, "%02x", nonce[i]);
    c->from = from;
    c->state = C_CHALLENGED;
    if (cmd->argvlen[4] < NODE_ADDR_MAX) /* trusted only once RAFT.AUTH succeeds */
        snprintf(c->announced, sizeof c->announced, "%s", cmd->argv[4]);
    struct resp_buf b;
    resp_buf_init(&b);
    resp_w_bulk_str(&b, c->nonce);
    bufferevent_write(c->bev, b.data, b.len);
    resp_buf_free(&b);
}

static void on_auth(struct pconn *c, struct resp_cmd *cmd)
{
    struct peer_mgr *pm = c->pm;
    if (c->state != C_CHALLENGED || cmd->argc != 2) {
        conn_refuse(c, "RAFT.AUTH without RAFT.HELLO");
        return;
    }
    char want[PEER_MAC_HEX + 1];
    peer_mac_hex(pm->srv->cfg.cluster_secret, c->nonce, c->from,
                 (raft_id)pm->srv->cfg.node_id, want);
    if (cmd->argvlen[1] != PEER_MAC_HEX ||
        CRYPTO_memcmp(cmd->argv[1], want, PEER_MAC_HEX) != 0) {
        pm->st.auth_failures++;
        LOG_WARNING("peer connection %s claiming node %llu: cluster secret mismatch",
                    c->addr, (unsigned long long)c->from);
        conn_refuse(c, "cluster secret mismatch");
        return;
    }
    c->state = C_AUTHED;
    resp_parser_set_authenticated(c->parser, true);
    bufferevent_set_timeouts(c->bev, NULL, NULL); /* members may be quiet for long */
    struct link *l = peer_link_get(pm, c->from, true);
    if (l && c->announced[0]) /* where to answer a member we have no address for yet */
        snprintf(l->learned, sizeof l->learned, "%s", c->announced);
    bufferevent_write(c->bev, "+OK\r\n", 5);
    /* An older connection from the same member is stale (it redialed): drop it. */
    for (struct pconn *x = pm->conns, *nx; x; x = nx) {
        nx = x->next;
        if (x != c && x->from == c->from && x->state == C_AUTHED)
            conn_free(x);
    }
    LOG_VERBOSE("peer %llu connected from %s", (unsigned long long)c->from, c->addr);
}

/* ------------------------------------------------------------------ messages */

/* Decode a frame from the authenticated member addressed to us; false = dropped. */
static bool decode_msg(struct pconn *c, const char *p, size_t len, uint32_t *group,
                       struct raft_msg *m)
{
    struct peer_mgr *pm = c->pm;
    memset(m, 0, sizeof *m);
    if (raft_wire_msg_decode((const uint8_t *)p, len, NULL, group, m) != RC_OK) {
        pm->st.msgs_bad++;
        return false;
    }
    if (*group >= NODE_GROUPS || m->from != c->from ||
        m->to != (raft_id)pm->srv->cfg.node_id) {
        raft_wire_msg_free(m);
        pm->st.msgs_bad++;
        return false;
    }
    struct link *l = peer_link_get(pm, c->from, true);
    if (l)
        l->last_rx_ms = srv_mono_ms();
    pm->st.msgs_recv++;
    return true;
}

static void on_msg(struct pconn *c, struct resp_cmd *cmd)
{
    uint32_t group;
    struct raft_msg m;
    if (cmd->argc != 2 || !decode_msg(c, cmd->argv[1], cmd->argvlen[1], &group, &m))
        return;
    if (m.type == RAFT_MSG_SNAPSHOT) /* only after its data: RAFT.SNAP.END */
        c->pm->st.msgs_bad++;
    else
        node_step(c->pm->srv->node, group, &m);
    raft_wire_msg_free(&m);
}

static bool parse_group(const struct resp_cmd *cmd, uint32_t *group)
{
    char *end;
    unsigned long v = strtoul(cmd->argv[1], &end, 10);
    if (!cmd->argv[1][0] || *end || v >= NODE_GROUPS)
        return false;
    *group = (uint32_t)v;
    return true;
}

static void snap_fail(struct pconn *c, uint32_t group, const char *what, int rc)
{
    char msg[160];
    snprintf(msg, sizeof msg, "snapshot of group %u: %s: %s", group, what, rc_message(rc));
    LOG_WARNING("peer %llu: %s", (unsigned long long)c->from, msg);
    snap_drop(c, group, true);
    c->pm->st.snaps_failed++;
    conn_refuse(c, msg);
}

static void on_snap_begin(struct pconn *c, struct resp_cmd *cmd)
{
    uint32_t group;
    struct raft_msg m;
    if (cmd->argc != 2 || !decode_msg(c, cmd->argv[1], cmd->argvlen[1], &group, &m))
        return;
    if (m.type != RAFT_MSG_SNAPSHOT) {
        raft_wire_msg_free(&m);
        c->pm->st.msgs_bad++;
        return;
    }
    /* A new stream replaces any unfinished one (node_snap_stage_begin discards it). */
    struct pconn *old = c->pm->stager[group];
    if (old)
        snap_drop(old, group, false);
    int rc = node_snap_stage_begin(c->pm->srv->node, group, c->from, &m.snapshot);
    if (rc != RC_OK) {
        raft_wire_msg_free(&m);
        snap_fail(c, group, "begin", rc);
        return;
    }
    c->snap_msg[group] = m;
    c->snap_active[group] = true;
    c->pm->stager[group] = c;
    LOG_NOTICE("peer %llu: receiving a snapshot of group %u (index %llu, term %llu)",
               (unsigned long long)c->from, group, (unsigned long long)m.snapshot.index,
               (unsigned long long)m.snapshot.term);
}

static void on_snap_chunk(struct pconn *c, struct resp_cmd *cmd)
{
    uint32_t group;
    if (cmd->argc != 4 || !parse_group(cmd, &group) || !c->snap_active[group]) {
        conn_refuse(c, "RAFT.SNAP.CHUNK outside a snapshot");
        return;
    }
    char sum[17];
    snprintf(sum, sizeof sum, "%016llx",
             (unsigned long long)XXH3_64bits(cmd->argv[3], cmd->argvlen[3]));
    if (cmd->argvlen[2] != 16 || memcmp(sum, cmd->argv[2], 16) != 0) {
        snap_fail(c, group, "chunk checksum", RC_CORRUPT);
        return;
    }
    int rc = node_snap_stage_chunk(c->pm->srv->node, group, cmd->argv[3], cmd->argvlen[3]);
    if (rc != RC_OK)
        snap_fail(c, group, "chunk", rc);
}

static void on_snap_end(struct pconn *c, struct resp_cmd *cmd, bool abort)
{
    uint32_t group;
    if (cmd->argc != 2 || !parse_group(cmd, &group) || !c->snap_active[group]) {
        conn_refuse(c, "RAFT.SNAP.END/ABORT outside a snapshot");
        return;
    }
    struct node *n = c->pm->srv->node;
    if (abort) {
        snap_drop(c, group, true);
        c->pm->st.snaps_failed++;
        return;
    }
    int rc = node_snap_stage_end(n, group);
    if (rc != RC_OK) {
        snap_fail(c, group, "end", rc);
        return;
    }
    rc = node_step(n, group, &c->snap_msg[group]); /* node_run installs the staged data */
    snap_drop(c, group, false);
    char ack[32];
    int len = snprintf(ack, sizeof ack, "+SNAPDONE %u\r\n", group);
    bufferevent_write(c->bev, ack, (size_t)len);
    if (rc != RC_OK)
        LOG_VERBOSE("peer %llu: snapshot of group %u not needed (%s)",
                    (unsigned long long)c->from, group, rc_message(rc));
    c->pm->st.snaps_recv++;
    LOG_NOTICE("peer %llu: snapshot of group %u received", (unsigned long long)c->from,
               group);
}

static void dispatch(struct pconn *c, struct resp_cmd *cmd)
{
    const char *name = cmd->argv[0];
    if (EQ(name, "RAFT.HELLO"))
        on_hello(c, cmd);
    else if (EQ(name, "RAFT.AUTH"))
        on_auth(c, cmd);
    else if (c->state != C_AUTHED)
        conn_refuse(c, "authenticate first (RAFT.HELLO, RAFT.AUTH)");
    else if (cmd->too_big)
        c->pm->st.msgs_bad++;
    else if (EQ(name, "RAFT.MSG"))
        on_msg(c, cmd);
    else if (EQ(name, "RAFT.SNAP.BEGIN"))
        on_snap_begin(c, cmd);
    else if (EQ(name, "RAFT.SNAP.CHUNK"))
        on_snap_chunk(c, cmd);
    else if (EQ(name, "RAFT.SNAP.END"))
        on_snap_end(c, cmd, false);
    else if (EQ(name, "RAFT.SNAP.ABORT"))
        on_snap_end(c, cmd, true);
    else
        conn_refuse(c, "unknown peer command");
}

/* ------------------------------------------------------------------ events */

static void conn_on_read(struct bufferevent *bev, void *ud)
{
    struct pconn *c = ud;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (c->state != C_CLOSING && evbuffer_get_length(in) > 0) {
        size_t used;
        struct resp_cmd *cmd;
        int st = srv_parse_evbuffer(c->parser, in, &used, &cmd);
        c->pm->st.bytes_recv += used;
        if (st == RESP_PROTO_ERR) {
            conn_refuse(c, resp_parser_error(c->parser));
            break;
        }
        if (st == RESP_CMD) {
            if (cmd->argc > 0)
                dispatch(c, cmd);
            resp_cmd_free(cmd);
            continue;
        }
        if (used == 0)
            break;
    }
    if (c->state == C_CLOSING && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        conn_free(c);
}

static void conn_on_write(struct bufferevent *bev, void *ud)
{
    struct pconn *c = ud;
    if (c->state == C_CLOSING && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        conn_free(c);
}

static void conn_on_event(struct bufferevent *bev, short what, void *ud)
{
    (void)bev;
    struct pconn *c = ud;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
        conn_free(c);
}

static void on_accept(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *ud)
{
    (void)lis;
    (void)salen;
    struct peer_mgr *pm = ud;
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, host, sizeof host);
        port = ntohs(((struct sockaddr_in *)sa)->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr, host, sizeof host);
        port = ntohs(((struct sockaddr_in6 *)sa)->sin6_port);
    }
    if (pm->n_conns >= PEER_CONNS_MAX) {
        close(fd);
        if (pm->st.conns_refused++ % 100 == 0)
            LOG_WARNING("cluster port: %zu connections open, refusing %s:%d (%llu refused)",
                        (size_t)pm->n_conns, host, port,
                        (unsigned long long)pm->st.conns_refused);
        return;
    }
    struct resp_limits lim;
    resp_limits_default(&lim);
    lim.bulk_len_max = PEER_ARG_MAX;
    lim.arg_len_max = PEER_ARG_MAX;
    lim.cmd_len_max = PEER_ARG_MAX + 4096;
    lim.args_max = 8;
    lim.inline_len_max = 1024;
    lim.unauth_args_max = 6;
    lim.unauth_bulk_len_max = 256;
    struct pconn *c = calloc(1, sizeof *c);
    if (c)
        c->parser = resp_parser_new(&lim);
    if (c && c->parser)
        c->bev = bufferevent_socket_new(pm->srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c || !c->parser || !c->bev) {
        if (c)
            resp_parser_free(c->parser);
        free(c);
        close(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->pm = pm;
    snprintf(c->addr, sizeof c->addr, "%s:%d", host, port);
    c->next = pm->conns;
    if (pm->conns)
        pm->conns->prev = c;
    pm->conns = c;
    pm->n_conns++;
    bufferevent_setcb(c->bev, conn_on_read, conn_on_write, conn_on_event, c);
    struct timeval hs = {PEER_HANDSHAKE_TIMEOUT_MS / 1000,
                         (PEER_HANDSHAKE_TIMEOUT_MS % 1000) * 1000};
    bufferevent_set_timeouts(c->bev, &hs, NULL); /* cleared once authenticated */
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

int peer_listen(struct peer_mgr *pm, const char *bind, uint32_t port)
{
    char ps[16];
    snprintf(ps, sizeof ps, "%u", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICHOST};
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(bind, ps, &hints, &ai);
    if (gai != 0) {
        LOG_WARNING("cluster bind address '%s': %s", bind, gai_strerror(gai));
        return -1;
    }
    pm->listener = evconnlistener_new_bind(
        pm->srv->base, on_accept, pm,
        LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 128, ai->ai_addr,
        (int)ai->ai_addrlen);
    freeaddrinfo(ai);
    if (!pm->listener) {
        LOG_WARNING("could not listen on the cluster port %s:%u: %s", bind, port,
                    strerror(errno));
        return -1;
    }
    LOG_NOTICE("cluster port %s:%u open for peers", bind, port);
    return 0;
}

void peer_conns_close(struct peer_mgr *pm)
{
    if (pm->listener)
        evconnlistener_free(pm->listener);
    pm->listener = NULL;
    while (pm->conns)
        conn_free(pm->conns);
}
