/*
 * peer.c - outbound side of the peer transport (see peer.h for the protocol): the node's
 * transport callback queues each message on its destination's link; peer_turn_end()
 * writes every link's queue once, streams snapshot chunks (bounded per turn), hands the
 * node core its transport feedback and dials links that are due, with exponential backoff.
 *
 * Invariants:
 *   - peer_send() (called inside node_run) only appends bytes and sets flags; it never
 *     calls back into the node (feedback waits for the turn end);
 *   - a link writes to its socket only in L_READY (after the peer accepted our HMAC), and
 *     its queue is bounded (PEER_QUEUE_MAX) while it is not;
 *   - when a link fails, its queue is dropped, every group gets node_report_unreachable
 *     and every snapshot in flight node_report_snapshot(false), exactly once.
 * Raft tolerates lost messages (paper 5.3: AppendEntries is retried), so dropping is
 * always safe; only acknowledgements travel end to end.
 */
#include "peer.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <xxhash.h>

#include "log.h"
#include "node.h"
#include "peer_internal.h"
#include "raft_wire.h"
#include "rc.h"
#include "server.h"

void peer_limits(const struct server *s, char *buf, size_t cap)
{
    const struct srv_config *c = &s->cfg;
    snprintf(buf, cap,
             "max-value-size=%llu,history-max-versions=%llu,audit-max-records=%llu,"
             "snapshots-max=%llu,rollback-max-keys=%llu",
             (unsigned long long)c->max_value_size, (unsigned long long)c->history_max_versions,
             (unsigned long long)c->audit_max_records, (unsigned long long)c->snapshots_max,
             (unsigned long long)c->rollback_max_keys);
}

const char *peer_limits_differ(const struct server *s, const char *theirs, char *buf,
                               size_t cap)
{
    char ours[PEER_LIMITS_MAX];
    peer_limits(s, ours, sizeof ours);
    if (strcmp(ours, theirs) == 0)
        return NULL;
    /* Name the first setting that differs ("name=value" items in the same order). */
    const char *a = ours, *b = theirs;
    for (;;) {
        size_t la = strcspn(a, ","), lb = strcspn(b, ",");
        size_t name = strcspn(a, "=");
        if (la != lb || memcmp(a, b, la) != 0) {
            bool same_name = name < la && name < lb && memcmp(a, b, name + 1) == 0;
            if (same_name)
                snprintf(buf, cap, "settings that decide how entries apply differ: peer has "
                         "%.*s, this node %.*s (%.*s must be the same on every node)",
                         (int)(lb > 64 ? 64 : lb), b, (int)(la - name - 1), a + name + 1,
                         (int)name, a);
            else
                snprintf(buf, cap, "settings that decide how entries apply differ: peer sent "
                         "'%.64s', this node has '%.*s'", b, (int)la, a);
            return buf;
        }
        if (!a[la] || !b[lb])
            break;
        a += la + 1;
        b += lb + 1;
    }
    snprintf(buf, cap, "settings that decide how entries apply differ: peer sent '%.100s', "
             "this node has '%s'", theirs, ours);
    return buf;
}

void peer_mac_hex(const char *secret, const char *nonce, raft_id from, raft_id to,
                  char out[PEER_MAC_HEX + 1])
{
    char msg[128];
    int n = snprintf(msg, sizeof msg, "%s|%llu|%llu", nonce, (unsigned long long)from,
                     (unsigned long long)to);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mlen = 0;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)msg, (size_t)n, mac,
         &mlen);
    for (unsigned int i = 0; i < 32 && i < mlen; i++)
        snprintf(out + 2 * i, 3, "%02x", mac[i]);
    out[PEER_MAC_HEX] = '\0';
}

/* ------------------------------------------------------------------ links */

struct link *peer_link_get(struct peer_mgr *pm, raft_id id, bool create)
{
    for (size_t i = 0; i < pm->n_links; i++)
        if (pm->links[i]->id == id)
            return pm->links[i];
    if (!create || id == RAFT_NONE || pm->n_links == PEER_LINKS_MAX)
        return NULL;
    struct link *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->pm = pm;
    l->id = id;
    l->backoff_ms = PEER_BACKOFF_MIN_MS;
    resp_buf_init(&l->q);
    pm->links[pm->n_links++] = l;
    return l;
}

static void snap_out_clear(struct snap_out *so)
{
    if (so->src)
        node_snap_src_close(so->src);
    free(so->frame);
    memset(so, 0, sizeof *so);
}

/* The link is down: drop what it held and tell the node core (now: we are at turn end or
 * in an I/O callback, never inside node_run). */
static void link_fail(struct peer_mgr *pm, struct link *l, const char *why, bool auth)
{
    struct node *n = pm->srv->node;
    if (!l->failed_logged || auth)
        LOG_WARNING("peer %llu (%s): %s; retrying in %llu ms", (unsigned long long)l->id,
                    l->addr, why, (unsigned long long)l->backoff_ms);
    l->failed_logged = true;
    if (l->bev)
        bufferevent_free(l->bev);
    l->bev = NULL;
    if (l->state != L_READY)
        pm->st.dial_failures++;
    l->state = L_IDLE;
    l->expect_bulk = false;
    pm->st.msgs_dropped += l->q_msgs;
    resp_buf_reset(&l->q);
    l->q_msgs = 0;
    l->next_dial_ms = srv_mono_ms() + l->backoff_ms;
    l->backoff_ms = l->backoff_ms * 2 > PEER_BACKOFF_MAX_MS ? PEER_BACKOFF_MAX_MS
                                                            : l->backoff_ms * 2;
    for (uint32_t g = 0; g < NODE_GROUPS; g++) {
        if (l->snap[g].active) {
            snap_out_clear(&l->snap[g]);
            pm->st.snaps_failed++;
            node_report_snapshot(n, g, l->id, false);
        }
        node_report_unreachable(n, g, l->id);
        l->report_unreachable[g] = false;
    }
}

/* Where to dial member id: the replicated address book first, then what the member told
 * us in its own RAFT.HELLO, then --initial-cluster. */
static bool link_addr(struct peer_mgr *pm, struct link *l, char *out, size_t cap)
{
    struct node_member m;
    if (node_member(pm->srv->node, l->id, &m) == RC_OK && m.cluster_addr[0]) {
        snprintf(out, cap, "%s", m.cluster_addr);
        return true;
    }
    if (l->learned[0]) {
        snprintf(out, cap, "%s", l->learned);
        return true;
    }
    for (size_t i = 0; i < pm->n_boot; i++)
        if (pm->boot_id[i] == l->id) {
            snprintf(out, cap, "%s", pm->boot_addr[i]);
            return true;
        }
    return false;
}

/* "+SNAPDONE <group>": the receiver staged the snapshot and stepped its message; only now
 * may Raft move the follower on (reporting at send time would let the leader probe before
 * the data arrived and start another snapshot). */
static void snap_acked(struct peer_mgr *pm, struct link *l, const char *line)
{
    unsigned g;
    if (sscanf(line, "+SNAPDONE %u", &g) != 1 || g >= NODE_GROUPS || !l->snap[g].active ||
        !l->snap[g].sent)
        return; /* nothing else is expected; ignore */
    LOG_NOTICE("peer %llu: snapshot of group %u delivered (%llu chunks)",
               (unsigned long long)l->id, g, (unsigned long long)l->snap[g].chunks);
    snap_out_clear(&l->snap[g]);
    pm->st.snaps_sent++;
    node_report_snapshot(pm->srv->node, g, l->id, true);
}

/* Replies on an outbound link: the nonce after HELLO, +OK after AUTH, errors any time,
 * snapshot confirmations once ready. */
static void link_on_read(struct bufferevent *bev, void *ud)
{
    struct link *l = ud;
    struct peer_mgr *m = l->pm;
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        size_t n = 0;
        char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
        if (!line) {
            if (evbuffer_get_length(in) > 4096)
                link_fail(m, l, "peer sent an overlong reply", false);
            return;
        }
        if (line[0] == '-') {
            bool auth = strstr(line, "secret") != NULL;
            if (auth)
                m->st.auth_failures++;
            char why[300];
            snprintf(why, sizeof why, "peer refused: %.256s", line + 1);
            free(line);
            link_fail(m, l, why, auth);
            return;
        }
        if (l->state == L_READY) {
            snap_acked(m, l, line);
        } else if (l->state == L_HELLO && !l->expect_bulk && line[0] == '$' &&
            atoi(line + 1) == PEER_NONCE_HEX) {
            l->expect_bulk = true;
        } else if (l->state == L_HELLO && l->expect_bulk && n == PEER_NONCE_HEX) {
            char mac[PEER_MAC_HEX + 1];
            peer_mac_hex(m->srv->cfg.cluster_secret, line, m->srv->cfg.node_id, l->id, mac);
            struct resp_buf b;
            resp_buf_init(&b);
            resp_w_array(&b, 2);
            resp_w_bulk_str(&b, "RAFT.AUTH");
            resp_w_bulk_str(&b, mac);
            bufferevent_write(bev, b.data, b.len);
            resp_buf_free(&b);
            l->expect_bulk = false;
            l->state = L_AUTH;
        } else if (l->state == L_AUTH && strcmp(line, "+OK") == 0) {
            l->state = L_READY;
            l->backoff_ms = PEER_BACKOFF_MIN_MS;
            if (l->failed_logged)
                LOG_NOTICE("peer %llu (%s): connected", (unsigned long long)l->id, l->addr);
            l->failed_logged = false;
            struct timeval wt = {PEER_WRITE_TIMEOUT_MS / 1000,
                                 (PEER_WRITE_TIMEOUT_MS % 1000) * 1000};
            bufferevent_set_timeouts(bev, NULL, &wt); /* the queue goes out at turn end */
        } else {
            free(line);
            link_fail(m, l, "unexpected reply during the handshake", false);
            return;
        }
        free(line);
    }
}

static void link_on_event(struct bufferevent *bev, short what, void *ud)
{
    struct link *l = ud;
    struct peer_mgr *pm = l->pm;
    if (what & BEV_EVENT_CONNECTED) {
        int one = 1;
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        const char *self = pm->self_addr;
        struct node_member me;
        if (node_member(pm->srv->node, (raft_id)pm->srv->cfg.node_id, &me) == RC_OK &&
            me.cluster_addr[0])
            self = me.cluster_addr;
        char from[24], to[24];
        snprintf(from, sizeof from, "%llu", (unsigned long long)pm->srv->cfg.node_id);
        snprintf(to, sizeof to, "%llu", (unsigned long long)l->id);
        struct resp_buf b;
        resp_buf_init(&b);
        char limits[PEER_LIMITS_MAX];
        peer_limits(pm->srv, limits, sizeof limits);
        resp_w_array(&b, 6);
        resp_w_bulk_str(&b, "RAFT.HELLO");
        resp_w_bulk_str(&b, PEER_PROTO_TAG);
        resp_w_bulk_str(&b, from);
        resp_w_bulk_str(&b, to);
        resp_w_bulk_str(&b, self);
        resp_w_bulk_str(&b, limits);
        bufferevent_write(bev, b.data, b.len);
        resp_buf_free(&b);
        l->state = L_HELLO;
        return;
    }
    const char *why = what & BEV_EVENT_TIMEOUT ? "timed out"
                      : what & BEV_EVENT_EOF   ? "connection closed by peer"
                                               : evutil_socket_error_to_string(
                                                     EVUTIL_SOCKET_ERROR());
    link_fail(pm, l, why, false);
}

static void link_dial(struct peer_mgr *pm, struct link *l)
{
    char addr[NODE_ADDR_MAX];
    if (!link_addr(pm, l, addr, sizeof addr)) {
        l->next_dial_ms = srv_mono_ms() + PEER_BACKOFF_MAX_MS;
        return;
    }
    snprintf(l->addr, sizeof l->addr, "%s", addr);
    char *colon = strrchr(addr, ':');
    if (!colon) {
        link_fail(pm, l, "bad cluster address", false);
        return;
    }
    *colon = '\0';
    const char *host = addr;
    char hbuf[NODE_ADDR_MAX];
    if (host[0] == '[') { /* [v6]:port */
        snprintf(hbuf, sizeof hbuf, "%s", host + 1);
        hbuf[strcspn(hbuf, "]")] = '\0';
        host = hbuf;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    pm->st.dials++;
    if (getaddrinfo(host, colon + 1, &hints, &ai) != 0 || !ai) {
        link_fail(pm, l, "cannot resolve the cluster address", false);
        return;
    }
    l->bev = bufferevent_socket_new(pm->srv->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!l->bev) {
        freeaddrinfo(ai);
        link_fail(pm, l, "out of memory", false);
        return;
    }
    bufferevent_setcb(l->bev, link_on_read, NULL, link_on_event, l);
    struct timeval hs = {PEER_HANDSHAKE_TIMEOUT_MS / 1000,
                         (PEER_HANDSHAKE_TIMEOUT_MS % 1000) * 1000};
    bufferevent_set_timeouts(l->bev, &hs, &hs);
    bufferevent_enable(l->bev, EV_READ | EV_WRITE);
    l->state = L_CONNECTING;
    int rc = bufferevent_socket_connect(l->bev, ai->ai_addr, (int)ai->ai_addrlen);
    freeaddrinfo(ai);
    if (rc != 0)
        link_fail(pm, l, "connect failed", false);
}

/* ------------------------------------------------------------------ sending */


static uint8_t *scratch(struct peer_mgr *pm, size_t need)
{
    if (need > pm->scratch_cap) {
        size_t cap = pm->scratch_cap ? pm->scratch_cap : 4096;
        while (cap < need)
            cap *= 2;
        uint8_t *p = realloc(pm->scratch, cap);
        if (!p)
            return NULL;
        pm->scratch = p;
        pm->scratch_cap = cap;
    }
    return pm->scratch;
}

/* Encode m for group into a malloc'd frame (or the scratch buffer when keep is false). */
static uint8_t *encode(struct peer_mgr *pm, uint32_t group, const struct raft_msg *m,
                       bool keep, size_t *len)
{
    size_t size = raft_wire_msg_size(m);
    if (size == 0)
        return NULL;
    uint8_t *buf = keep ? malloc(size) : scratch(pm, size);
    if (!buf)
        return NULL;
    if (raft_wire_msg_encode(group, m, buf, size, len) != RC_OK) {
        if (keep)
            free(buf);
        return NULL;
    }
    return buf;
}

/* A RAFT_MSG_SNAPSHOT: remember it; snap_pump streams the group's state at the turn end
 * (outside node_run), then the receiver steps the message. */
static void snap_start(struct peer_mgr *pm, struct link *l, uint32_t group,
                       const struct raft_msg *m)
{
    struct snap_out *so = &l->snap[group];
    if (so->active) /* Raft sends one at a time per follower; a repeat is a stale retry */
        return;
    memset(so, 0, sizeof *so);
    so->active = true; /* a NULL frame is reported failed at the turn end */
    so->frame = encode(pm, group, m, true, &so->frame_len);
    LOG_NOTICE("peer %llu: sending a snapshot of group %u (index %llu, term %llu)",
               (unsigned long long)l->id, group, (unsigned long long)m->snapshot.index,
               (unsigned long long)m->snapshot.term);
}

/* node_send_fn: queue m for m->to; written at the turn end. */
static void peer_send(void *ud, uint32_t group, const struct raft_msg *m)
{
    struct peer_mgr *pm = ud;
    if (m->to == (raft_id)pm->srv->cfg.node_id || group >= NODE_GROUPS)
        return;
    struct link *l = peer_link_get(pm, m->to, true);
    if (!l) {
        pm->st.msgs_dropped++;
        return;
    }
    if (m->type == RAFT_MSG_SNAPSHOT) {
        snap_start(pm, l, group, m);
        return;
    }
    if (l->state != L_READY && l->q.len > PEER_QUEUE_MAX) {
        pm->st.msgs_dropped++;
        l->report_unreachable[group] = true;
        return;
    }
    if (l->bev && evbuffer_get_length(bufferevent_get_output(l->bev)) > PEER_OUTBUF_MAX) {
        pm->st.msgs_dropped++; /* the peer does not read: it is as good as unreachable */
        l->report_unreachable[group] = true;
        return;
    }
    size_t len = 0;
    uint8_t *frame = encode(pm, group, m, false, &len);
    if (!frame) {
        pm->st.msgs_dropped++;
        LOG_WARNING("peer %llu: cannot encode a %s message", (unsigned long long)m->to,
                    raft_msg_type_name(m->type));
        return;
    }
    resp_w_array(&l->q, 2);
    resp_w_bulk_str(&l->q, "RAFT.MSG");
    resp_w_bulk(&l->q, frame, len);
    l->q_msgs++;
}

/* Queue up to PEER_SNAP_CHUNKS_PER_TURN chunks of the snapshot for group (bounded by the
 * socket backlog); finish with END, or ABORT on a source error. */
static void snap_pump(struct peer_mgr *pm, struct link *l, uint32_t group)
{
    struct snap_out *so = &l->snap[group];
    struct node *n = pm->srv->node;
    char gs[12];
    snprintf(gs, sizeof gs, "%u", group);
    if (so->sent) { /* waiting for the receiver's confirmation */
        if (srv_mono_ms() >= so->ack_deadline_ms) {
            LOG_WARNING("peer %llu: snapshot of group %u not confirmed in time",
                        (unsigned long long)l->id, group);
            snap_out_clear(so);
            pm->st.snaps_failed++;
            node_report_snapshot(n, group, l->id, false);
        }
        return;
    }
    if (!so->begun) {
        int rc = so->frame ? node_snap_src_open(n, group, &so->src) : RC_NOMEM;
        if (rc != RC_OK) {
            LOG_WARNING("peer %llu: cannot open a snapshot of group %u: %s",
                        (unsigned long long)l->id, group, rc_message(rc));
            snap_out_clear(so);
            pm->st.snaps_failed++;
            node_report_snapshot(n, group, l->id, false);
            return;
        }
        resp_w_array(&l->q, 2);
        resp_w_bulk_str(&l->q, "RAFT.SNAP.BEGIN");
        resp_w_bulk(&l->q, so->frame, so->frame_len);
        so->begun = true;
    }
    struct evbuffer *out = bufferevent_get_output(l->bev);
    for (int k = 0; k < PEER_SNAP_CHUNKS_PER_TURN; k++) {
        if (evbuffer_get_length(out) + l->q.len > PEER_SNAP_OUTBUF_MAX)
            return;
        size_t len = 0;
        bool done = false;
        int rc = node_snap_src_next(so->src, pm->chunk, PEER_SNAP_CHUNK, &len, &done);
        if (rc != RC_OK) {
            LOG_WARNING("peer %llu: snapshot of group %u failed: %s",
                        (unsigned long long)l->id, group, rc_message(rc));
            resp_w_array(&l->q, 2);
            resp_w_bulk_str(&l->q, "RAFT.SNAP.ABORT");
            resp_w_bulk_str(&l->q, gs);
            snap_out_clear(so);
            pm->st.snaps_failed++;
            node_report_snapshot(n, group, l->id, false);
            return;
        }
        char sum[17];
        snprintf(sum, sizeof sum, "%016llx", (unsigned long long)XXH3_64bits(pm->chunk, len));
        resp_w_array(&l->q, 4);
        resp_w_bulk_str(&l->q, "RAFT.SNAP.CHUNK");
        resp_w_bulk_str(&l->q, gs);
        resp_w_bulk_str(&l->q, sum);
        resp_w_bulk(&l->q, pm->chunk, len);
        so->chunks++;
        if (done) { /* reported to Raft once the receiver confirms (snap_acked) */
            resp_w_array(&l->q, 2);
            resp_w_bulk_str(&l->q, "RAFT.SNAP.END");
            resp_w_bulk_str(&l->q, gs);
            node_snap_src_close(so->src);
            so->src = NULL;
            so->sent = true;
            so->ack_deadline_ms = srv_mono_ms() + PEER_SNAP_ACK_TIMEOUT_MS;
            return;
        }
    }
}

static void link_turn_end(struct peer_mgr *pm, struct link *l, uint64_t now)
{
    struct node *n = pm->srv->node;
    for (uint32_t g = 0; g < NODE_GROUPS; g++) {
        if (l->report_unreachable[g]) {
            l->report_unreachable[g] = false;
            node_report_unreachable(n, g, l->id);
        }
    }
    bool want = l->q.len > 0;
    for (uint32_t g = 0; g < NODE_GROUPS; g++)
        want |= l->snap[g].active;
    if (l->state == L_IDLE) {
        if (want && now >= l->next_dial_ms)
            link_dial(pm, l);
        return;
    }
    if (l->state != L_READY)
        return;
    for (uint32_t g = 0; g < NODE_GROUPS; g++)
        if (l->snap[g].active)
            snap_pump(pm, l, g);
    if (l->q.oom) {
        resp_buf_free(&l->q);
        resp_buf_init(&l->q);
        link_fail(pm, l, "out of memory queueing messages", false);
        return;
    }
    if (l->q.len) {
        bufferevent_write(l->bev, l->q.data, l->q.len); /* one write per peer per turn */
        pm->st.msgs_sent += l->q_msgs;
        pm->st.bytes_sent += l->q.len;
        resp_buf_reset(&l->q);
        l->q_msgs = 0;
    }
}

void peer_turn_end(struct server *s)
{
    struct peer_mgr *pm = s->peers;
    if (!pm)
        return;
    uint64_t now = srv_mono_ms();
    for (size_t i = 0; i < pm->n_links; i++)
        link_turn_end(pm, pm->links[i], now);
}

/* ------------------------------------------------------------------ open / close */

static void boot_table(struct peer_mgr *pm)
{
    struct config_member m[CONFIG_CLUSTER_MAX];
    size_t n = 0;
    char err[256];
    if (config_parse_cluster(pm->srv->cfg.initial_cluster, m, CONFIG_CLUSTER_MAX, &n, err,
                             sizeof err) != 0)
        return;
    for (size_t i = 0; i < n && pm->n_boot < RAFT_VOTERS_MAX; i++) {
        pm->boot_id[pm->n_boot] = m[i].id;
        snprintf(pm->boot_addr[pm->n_boot], NODE_ADDR_MAX, "%s:%u", m[i].host, m[i].cport);
        pm->n_boot++;
        if (m[i].id == pm->srv->cfg.node_id && !pm->srv->cfg.cluster_port)
            pm->cport = m[i].cport;
    }
}

int peer_open(struct server *s)
{
    struct peer_mgr *pm = calloc(1, sizeof *pm);
    if (!pm) {
        LOG_WARNING("out of memory");
        return -1;
    }
    s->peers = pm;
    pm->srv = s;
    pm->chunk = malloc(PEER_SNAP_CHUNK);
    if (!pm->chunk) {
        LOG_WARNING("out of memory");
        return -1;
    }
    pm->cport = s->cfg.cluster_port ? (uint32_t)s->cfg.cluster_port
                                    : (uint32_t)s->cfg.port + 10000;
    boot_table(pm);
    snprintf(pm->self_addr, sizeof pm->self_addr, "%s:%u", s->cfg.bind, pm->cport);
    node_set_transport(s->node, peer_send, pm);
    if (!s->cfg.cluster_secret[0]) {
        pm->cport = 0;
        LOG_NOTICE("no cluster-secret: cluster port closed, this node runs alone");
        return 0;
    }
    return peer_listen(pm, s->cfg.bind, pm->cport);
}

void peer_close(struct server *s)
{
    struct peer_mgr *pm = s->peers;
    if (!pm)
        return;
    peer_conns_close(pm);
    for (size_t i = 0; i < pm->n_links; i++) {
        struct link *l = pm->links[i];
        if (l->bev)
            bufferevent_free(l->bev);
        for (uint32_t g = 0; g < NODE_GROUPS; g++)
            snap_out_clear(&l->snap[g]);
        resp_buf_free(&l->q);
        free(l);
    }
    free(pm->scratch);
    free(pm->chunk);
    free(pm);
    s->peers = NULL;
}

/* ------------------------------------------------------------------ introspection */

bool peer_out_pending(const struct server *s)
{
    const struct peer_mgr *pm = s->peers;
    for (size_t i = 0; pm && i < pm->n_links; i++) {
        const struct link *l = pm->links[i];
        if (l->state == L_READY &&
            (l->q.len > 0 || evbuffer_get_length(bufferevent_get_output(l->bev)) > 0))
            return true;
    }
    return false;
}

void peer_stats_get(const struct server *s, struct peer_stats *out)
{
    memset(out, 0, sizeof *out);
    if (s->peers) {
        *out = s->peers->st;
        out->conns_in = s->peers->n_conns;
    }
}

void peer_link_info(const struct server *s, raft_id id, struct peer_link_info *out)
{
    memset(out, 0, sizeof *out);
    if (!s->peers)
        return;
    struct link *l = peer_link_get(s->peers, id, false);
    if (!l)
        return;
    out->known = true;
    out->up = l->state == L_READY;
    snprintf(out->addr, sizeof out->addr, "%s", l->addr);
    out->last_rx_ms = l->last_rx_ms;
    for (uint32_t g = 0; g < NODE_GROUPS; g++)
        out->snapshot_sending |= l->snap[g].active;
}

uint32_t peer_cluster_port(const struct server *s)
{
    return s->peers ? s->peers->cport : 0;
}
