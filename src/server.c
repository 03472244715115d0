/*
 * server.c - process-level service: listener, loop, signals, timers, the turn end (see
 * server.h for the loop-turn contract).
 *
 * Why EVLOOP_ONCE plus an explicit turn end instead of a low-priority libevent event: with
 * priorities, libevent runs only the highest non-empty priority queue per iteration, so a
 * steady stream of socket events can postpone a low-priority event indefinitely; running
 * the turn end after each EVLOOP_ONCE iteration gives exactly "all I/O callbacks of this
 * iteration, then one node_run", with no starvation.
 */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit_sink.h"
#include "client.h"
#include "log.h"
#include "node.h"
#include "peer.h"
#include "pubsub.h"
#include "rc.h"
#include "resp/resp.h"

#define SRV_TURN_ROUNDS_MAX 16     /* node_run rounds per turn (reads chained on writes) */
#define SRV_SHUTDOWN_DRAIN_MS 2000 /* bound on finishing in-flight work at shutdown */

uint64_t srv_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* CLOCK_MONOTONIC in ms, never going back: a step back (a faked or broken clock; the
 * nemesis clock scenario makes them) is added to an offset, so time goes on from the last
 * reading, as libevent does for its own timers. Every deadline of the server and the peer
 * layer is taken from here. Read by the event loop thread only. */
uint64_t srv_mono_ms(void)
{
    static uint64_t last, offset;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 + offset;
    if (now < last) {
        offset += last - now;
        now = last;
    }
    last = now;
    return now;
}

int srv_parse_evbuffer(struct resp_parser *p, struct evbuffer *in, size_t *used,
                       struct resp_cmd **cmd)
{
    struct evbuffer_iovec v;
    *used = 0;
    *cmd = NULL;
    if (evbuffer_get_length(in) == 0 || evbuffer_peek(in, -1, NULL, &v, 1) < 1)
        return RESP_NEED_MORE;
    enum resp_parse_status st = resp_parse(p, v.iov_base, v.iov_len, used, cmd);
    evbuffer_drain(in, *used);
    return st;
}

void srv_mark_dirty(struct server *s, struct client *c)
{
    if (c->dirty)
        return;
    if (s->n_dirty == s->dirty_cap) {
        size_t cap = s->dirty_cap ? s->dirty_cap * 2 : 64;
        struct client **d = realloc(s->dirty, cap * sizeof *d);
        if (!d) {
            LOG_WARNING("out of memory growing the dirty list");
            return; /* the client is processed on its next event */
        }
        s->dirty = d;
        s->dirty_cap = cap;
    }
    c->dirty = true;
    s->dirty[s->n_dirty++] = c;
}

static void fatal_io(struct server *s, int rc)
{
    const char *why = node_last_error(s->node);
    LOG_WARNING("FATAL: node_run failed (%s: %s); storage is not durable, exiting "
                "without answering pending clients", rc_name(rc), why ? why : rc_message(rc));
    exit(1); /* never keep serving after a failed fsync */
}

/* One turn end: run the node (persist + apply + complete), let clients start what became
 * eligible, repeat while that created work (bounded), then flush every touched client. */
static void srv_turn_end(struct server *s)
{
    s->stats.turns++;
    for (int round = 0; round < SRV_TURN_ROUNDS_MAX; round++) {
        int rc = node_run(s->node, srv_mono_ms());
        if (rc == RC_IO)
            fatal_io(s, rc);
        for (size_t i = 0; i < s->n_dirty; i++)
            if (s->dirty[i])
                client_process(s->dirty[i]);
        if (!node_has_work(s->node))
            break;
    }
    peer_turn_end(s); /* one write per peer: every message this turn's rounds produced */
    /* Swap the lists: flushing may mark clients dirty again for the next turn. */
    struct client **tmp = s->flushing;
    size_t tmp_cap = s->flushing_cap;
    s->flushing = s->dirty;
    s->flushing_cap = s->dirty_cap;
    s->n_flushing = s->n_dirty;
    s->dirty = tmp;
    s->dirty_cap = tmp_cap;
    s->n_dirty = 0;
    for (size_t i = 0; i < s->n_flushing; i++) {
        struct client *c = s->flushing[i];
        if (!c)
            continue;
        s->flushing[i] = NULL;
        c->dirty = false;
        client_flush(c); /* may free c, or re-mark it for the next turn */
    }
    s->n_flushing = 0;
}

/* ------------------------------------------------------------------ events */

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *ud)
{
    (void)l;
    (void)salen;
    struct server *s = ud;
    char host[INET6_ADDRSTRLEN] = "?", addr[64], laddr[64] = "?";
    int port = 0;
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
    }
    snprintf(addr, sizeof addr, "%s:%d", host, port);
    struct sockaddr_storage ls;
    socklen_t lslen = sizeof ls;
    if (getsockname(fd, (struct sockaddr *)&ls, &lslen) == 0 && ls.ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ls;
        char lh[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &in->sin_addr, lh, sizeof lh);
        snprintf(laddr, sizeof laddr, "%s:%d", lh, ntohs(in->sin_port));
    }
    evutil_make_socket_nonblocking(fd);
    client_accept(s, fd, addr, laddr);
}

static void on_accept_error(struct evconnlistener *l, void *ud)
{
    (void)l;
    (void)ud;
    int err = EVUTIL_SOCKET_ERROR();
    LOG_WARNING("accept: %s", evutil_socket_error_to_string(err));
}

static void on_tick(evutil_socket_t fd, short what, void *ud)
{
    (void)fd;
    (void)what;
    struct server *s = ud;
    node_tick(s->node, srv_mono_ms());
}

/* Once a second: idle timeouts and the ops/sec sample. */
static void on_cron(evutil_socket_t fd, short what, void *ud)
{
    (void)fd;
    (void)what;
    struct server *s = ud;
    uint64_t mono = srv_mono_ms();
    if (s->stats.ops_sample_ms) {
        uint64_t dt = mono - s->stats.ops_sample_ms;
        if (dt)
            s->stats.ops_per_sec = (s->stats.commands - s->stats.ops_last) * 1000 / dt;
    }
    s->stats.ops_sample_ms = mono;
    s->stats.ops_last = s->stats.commands;
    if (!s->cfg.timeout_s)
        return;
    for (struct client *c = s->clients, *nx; c; c = nx) {
        nx = c->next;
        if (c->n_slots == 0 && mono - c->last_mono_ms > s->cfg.timeout_s * 1000 &&
            !pubsub_client_subscribed(c)) { /* as Redis: subscribers never time out */
            LOG_VERBOSE("closing idle client %s", c->addr);
            client_free(c);
        }
    }
}

/* The voter (other than us) with the highest match index in a group we lead (the data
 * group first), among those heard from within an election timeout; RAFT_NONE when we lead
 * nothing or no such voter exists. */
static raft_id best_transferee(struct server *s)
{
    struct raft_status st;
    bool leads = false;
    for (uint32_t g = NODE_GROUPS; g-- > 0 && !leads;) /* data first, then meta */
        leads = node_raft_status(s->node, g, &st) == RC_OK && st.role == RAFT_LEADER;
    if (!leads)
        return RAFT_NONE;
    raft_id best = RAFT_NONE;
    raft_index best_match = 0;
    for (uint32_t i = 0; i < st.n_progress; i++) {
        const struct raft_progress_info *p = &st.progress[i];
        if (p->id == st.id || p->learner || p->ticks_since_contact >= s->cfg.election_ticks)
            continue;
        if (best == RAFT_NONE || p->match > best_match) {
            best = p->id;
            best_match = p->match;
        }
    }
    return best;
}

/* Does this node still lead a group, or is some group without a known leader? */
static bool handover_pending(const struct server *s)
{
    raft_id self = (raft_id)s->cfg.node_id;
    for (uint32_t g = 0; g < NODE_GROUPS; g++) {
        raft_id l = node_leader(s->node, g);
        if (l == self || l == RAFT_NONE)
            return true;
    }
    return false;
}

/* SIGTERM/SIGINT: a leader hands over first (bounded), anyone else stops now. A second
 * signal during the handover stops at once. */
static void on_signal(evutil_socket_t sig, short what, void *ud)
{
    (void)what;
    struct server *s = ud;
    const char *name = sig == SIGINT ? "SIGINT" : "SIGTERM";
    raft_id to = s->handover ? RAFT_NONE : best_transferee(s);
    if (to != RAFT_NONE && node_transfer(s->node, to) == RC_OK) {
        uint64_t bound = 2 * s->cfg.election_ticks * s->cfg.tick_ms;
        s->handover = true;
        s->handover_deadline_ms = srv_mono_ms() + bound;
        LOG_NOTICE("received %s: transferring leadership to node %llu before shutting down "
                   "(at most %llu ms)", name, (unsigned long long)to,
                   (unsigned long long)bound);
        return;
    }
    LOG_NOTICE("received %s, shutting down", name);
    s->stopping = true;
    event_base_loopbreak(s->base);
}

/* During a handover: stop once another node leads every group (so requests still in
 * flight here can be forwarded to it while draining), or at the bound. */
static void check_handover(struct server *s)
{
    if (!s->handover || s->stopping)
        return;
    bool led = handover_pending(s);
    if (!led || srv_mono_ms() >= s->handover_deadline_ms) {
        if (led)
            LOG_WARNING("leadership transfer did not complete in time; shutting down anyway");
        else
            LOG_NOTICE("leadership handed over (leader now node %llu); shutting down",
                       (unsigned long long)node_leader(s->node, NODE_GROUP_DATA));
        s->stopping = true;
    }
}

/* ------------------------------------------------------------------ setup */

static int open_listener(struct server *s)
{
    char port[16];
    snprintf(port, sizeof port, "%llu", (unsigned long long)s->cfg.port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICHOST};
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(s->cfg.bind, port, &hints, &ai);
    if (gai != 0) {
        LOG_WARNING("bind address '%s': %s", s->cfg.bind, gai_strerror(gai));
        return -1;
    }
    s->listener = evconnlistener_new_bind(
        s->base, on_accept, s, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
        (int)s->cfg.tcp_backlog, ai->ai_addr, (int)ai->ai_addrlen);
    freeaddrinfo(ai);
    if (!s->listener) {
        LOG_WARNING("could not listen on %s:%s: %s", s->cfg.bind, port, strerror(errno));
        return -1;
    }
    evconnlistener_set_error_cb(s->listener, on_accept_error);
    return 0;
}

/* --initial-cluster -> the bootstrap voters (nc->initial) and addresses (b) for a NEW
 * store; a store that has a configuration ignores both. A node not in the list joins an
 * existing cluster: it starts with the founding voters, so it never campaigns, and waits
 * for the leader to add it. */
static int cluster_plan(struct server *s, struct node_config *nc, struct node_bootstrap *b,
                        bool *joining)
{
    struct config_member m[CONFIG_CLUSTER_MAX];
    size_t n = 0;
    char err[256];
    memset(b, 0, sizeof *b);
    if (config_parse_cluster(s->cfg.initial_cluster, m, CONFIG_CLUSTER_MAX, &n, err,
                             sizeof err) != 0 || n > RAFT_VOTERS_MAX) {
        LOG_WARNING("%s", n > RAFT_VOTERS_MAX ? "initial-cluster: too many voters" : err);
        return -1;
    }
    uint32_t cport = s->cfg.cluster_port ? (uint32_t)s->cfg.cluster_port
                                         : (uint32_t)s->cfg.port + 10000;
    if (n == 0) { /* a single-node cluster of this node */
        struct node_member *me = &b->members[b->n_members++];
        me->id = (raft_id)s->cfg.node_id;
        snprintf(me->addr, sizeof me->addr, "%s:%llu", s->cfg.bind,
                 (unsigned long long)s->cfg.port);
        snprintf(me->cluster_addr, sizeof me->cluster_addr, "%s:%u", s->cfg.bind, cport);
        return 0;
    }
    bool in = false;
    nc->initial.n_voters = 0;
    for (size_t i = 0; i < n; i++) {
        struct node_member *x = &b->members[b->n_members++];
        x->id = m[i].id;
        snprintf(x->addr, sizeof x->addr, "%s:%u", m[i].host, m[i].port);
        snprintf(x->cluster_addr, sizeof x->cluster_addr, "%s:%u", m[i].host, m[i].cport);
        nc->initial.voters[nc->initial.n_voters++] = m[i].id;
        in |= m[i].id == s->cfg.node_id;
    }
    *joining = !in;
    return 0;
}

static int open_node(struct server *s)
{
    if (mkdir(s->cfg.dir, 0755) != 0 && errno != EEXIST) {
        LOG_WARNING("cannot create dir '%s': %s", s->cfg.dir, strerror(errno));
        return -1;
    }
    struct pst_options po;
    pst_options_default(&po);
    char *err = NULL;
    int rc = pst_open_leveldb(s->cfg.dir, &po, &s->pst, &err);
    if (rc != RC_OK) {
        LOG_WARNING("cannot open store in '%s': %s", s->cfg.dir, err ? err : rc_message(rc));
        free(err);
        return -1;
    }
    struct node_config nc;
    node_config_default(&nc, (raft_id)s->cfg.node_id);
    struct node_bootstrap boot;
    bool joining = false;
    if (cluster_plan(s, &nc, &boot, &joining) != 0)
        return -1;
    nc.tick_ms = (uint32_t)s->cfg.tick_ms;
    nc.request_timeout_ms = (uint32_t)s->cfg.request_timeout_ms;
    nc.snapshot_entries = s->cfg.snapshot_entries;
    nc.raft.election_ticks = (uint32_t)s->cfg.election_ticks;
    nc.raft.heartbeat_ticks = (uint32_t)s->cfg.heartbeat_ticks;
    nc.ns.value_len_max = s->cfg.max_value_size;
    nc.ns.history_max_versions = s->cfg.history_max_versions;
    nc.ns.audit_max_records = s->cfg.audit_max_records;
    nc.ns.snapshots_max = s->cfg.snapshots_max;         /* governance (issue 5) */
    nc.ns.rollback_keys_max = s->cfg.rollback_max_keys;
    nc.start_wall_ms = srv_now_ms();
    rc = node_open(s->pst, &nc, srv_mono_ms(), &s->node, &err);
    if (rc != RC_OK) {
        LOG_WARNING("cannot open node in '%s': %s", s->cfg.dir, err ? err : rc_message(rc));
        free(err);
        return -1;
    }
    const char *note = node_open_note(s->node);
    if (note)
        LOG_WARNING("store opened with a note: %s", note);
    rc = node_bootstrap(s->node, &boot); /* refused (RC_BADARG) for a joining node */
    if (rc == RC_EXISTS)
        LOG_VERBOSE("store already holds a configuration: initial-cluster ignored");
    else if (joining && rc == RC_BADARG)
        LOG_NOTICE("node %llu is not in initial-cluster: joining an existing cluster (add it "
                   "with CFG.CLUSTER ADD on the leader)", (unsigned long long)s->cfg.node_id);
    else if (rc != RC_OK)
        LOG_WARNING("bootstrap with initial-cluster: %s (continuing with the configuration "
                    "of the store)", rc_message(rc));
    return 0;
}

int srv_init(struct server *s, const struct srv_config *cfg)
{
    memset(s, 0, sizeof *s);
    s->cfg = *cfg; /* takes over the strings */
    s->start_ms = srv_now_ms();
    s->scan_seq = 1;
    s->scan_cursors_free_hint = SRV_SCAN_CURSORS_MAX;
    signal(SIGPIPE, SIG_IGN);
    s->base = event_base_new();
    if (!s->base) {
        LOG_WARNING("event_base_new failed");
        return -1;
    }
    if (open_node(s) != 0 || audit_svc_open(s) != 0 || open_listener(s) != 0 ||
        peer_open(s) != 0)
        return -1;
    struct timeval tick = {.tv_sec = (long)(s->cfg.tick_ms / 1000),
                           .tv_usec = (long)(s->cfg.tick_ms % 1000) * 1000};
    struct timeval sec = {.tv_sec = 1, .tv_usec = 0};
    s->tick_ev = event_new(s->base, -1, EV_PERSIST, on_tick, s);
    s->cron_ev = event_new(s->base, -1, EV_PERSIST, on_cron, s);
    s->sig_ev[0] = evsignal_new(s->base, SIGTERM, on_signal, s);
    s->sig_ev[1] = evsignal_new(s->base, SIGINT, on_signal, s);
    if (!s->tick_ev || !s->cron_ev || !s->sig_ev[0] || !s->sig_ev[1]) {
        LOG_WARNING("cannot create timers");
        return -1;
    }
    event_add(s->tick_ev, &tick);
    event_add(s->cron_ev, &sec);
    event_add(s->sig_ev[0], NULL);
    event_add(s->sig_ev[1], NULL);
    LOG_NOTICE("raftconf %s node %llu ready to accept connections on %s:%llu (dir %s)",
               SRV_VERSION, (unsigned long long)s->cfg.node_id, s->cfg.bind,
               (unsigned long long)s->cfg.port, s->cfg.dir);
    return 0;
}

static bool any_pending(const struct server *s)
{
    for (const struct client *c = s->clients; c; c = c->next)
        if (c->pending_writes || c->pending_reads || c->next_start)
            return true;
    return false;
}

/* Stop accepting and reading, finish in-flight work (bounded), flush, close clients. */
static void srv_drain(struct server *s)
{
    if (s->listener) {
        evconnlistener_free(s->listener);
        s->listener = NULL;
    }
    for (struct client *c = s->clients; c; c = c->next) {
        bufferevent_disable(c->bev, EV_READ);
        c->read_paused = true;
        c->input_pending = false;
        srv_mark_dirty(s, c);
    }
    uint64_t deadline = srv_mono_ms() + SRV_SHUTDOWN_DRAIN_MS;
    do {
        event_base_loop(s->base, EVLOOP_NONBLOCK);
        srv_turn_end(s);
        if (!any_pending(s))
            break;
        usleep(1000);
    } while (srv_mono_ms() < deadline);
    if (any_pending(s))
        LOG_WARNING("shutdown: requests still pending after %d ms; their outcome is unknown "
                    "to their clients", SRV_SHUTDOWN_DRAIN_MS);
    /* After a handover, stay a follower a little longer (bounded): requests peers sent us
     * while we led (forwarded writes, read indexes) get a definite answer instead of
     * silence, and the last Raft messages reach them. */
    if (s->handover) {
        uint64_t linger = 2 * s->cfg.heartbeat_ticks * s->cfg.tick_ms;
        linger = linger < 50 ? 50 : linger > 500 ? 500 : linger;
        for (uint64_t end = srv_mono_ms() + linger; srv_mono_ms() < end;) {
            event_base_loop(s->base, EVLOOP_NONBLOCK);
            srv_turn_end(s);
            usleep(1000);
        }
    }
    /* Give sockets a moment to take the last replies and peer messages (bounded). */
    for (int i = 0; i < 50; i++) {
        bool waiting = peer_out_pending(s);
        for (struct client *c = s->clients; c; c = c->next)
            waiting |= client_out_len(c) > 0;
        if (!waiting)
            break;
        event_base_loop(s->base, EVLOOP_NONBLOCK);
        usleep(1000);
    }
    while (s->clients)
        client_free(s->clients);
}

int srv_run(struct server *s)
{
    while (!s->stopping) {
        int flags = EVLOOP_ONCE;
        if (s->n_dirty || node_has_work(s->node))
            flags = EVLOOP_NONBLOCK;
        if (event_base_loop(s->base, flags) < 0) {
            LOG_WARNING("event loop failed");
            s->exit_code = 1;
            break;
        }
        srv_turn_end(s);
        check_handover(s);
    }
    srv_drain(s);
    return s->exit_code;
}

void srv_close(struct server *s)
{
    while (s->clients)
        client_free(s->clients);
    pubsub_free(s); /* after the clients: each one leaves its subscriptions */
    audit_svc_close(s); /* issue 5: watch waiters, audit file sink */
    peer_close(s);
    if (s->listener)
        evconnlistener_free(s->listener);
    if (s->tick_ev)
        event_free(s->tick_ev);
    if (s->cron_ev)
        event_free(s->cron_ev);
    for (int i = 0; i < 2; i++)
        if (s->sig_ev[i])
            event_free(s->sig_ev[i]);
    if (s->node)
        node_close(s->node);
    if (s->pst)
        pst_close(s->pst);
    for (size_t i = 0; i < SRV_SCAN_CURSORS_MAX; i++)
        free(s->scans[i].key);
    free(s->dirty);
    free(s->flushing);
    if (s->base)
        event_base_free(s->base);
    config_free(&s->cfg);
    memset(s, 0, sizeof *s);
}
