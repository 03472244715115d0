/*
 * client.c - client connections: input parsing into command slots, the per-client
 * ordering rules, node request callbacks, and ordered output with limits.
 *
 * Invariants (per client):
 *   - head..tail lists every slot in command order; next_start is the first QUEUED slot
 *     (all slots before it were started), or NULL;
 *   - pending_writes counts WRITING slots, pending_reads BARRIER + READ_READY slots; a
 *     write never runs while a read is pending, and a read never while a write is pending,
 *     so a client always reads its own writes and replies never overtake each other;
 *   - only DONE slots at the head are flushed; a slot's reply bytes are final once DONE;
 *   - a client is freed only outside node_run (callbacks only mark it), and cancels every
 *     pending node request first so no callback can reach a freed slot;
 *   - inside MULTI every command is K_OTHER: it is queued (cmd_multi.c) and answered at
 *     once, so queueing never overlaps a pending request; WATCH is a read (barrier first);
 *     cmd_propose captures instead of proposing while multi.capture is set.
 */
#include "client.h"

#include <ctype.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "commands.h"
#include "log.h"
#include "node.h"
#include "pubsub.h"
#include "rc.h"
#include "server.h"

enum kind { K_OTHER, K_READ, K_WRITE };

static void on_read(struct bufferevent *bev, void *ud);
static void on_write(struct bufferevent *bev, void *ud);
static void on_event(struct bufferevent *bev, short what, void *ud);

static void parser_limits(const struct srv_config *cfg, struct resp_limits *lim)
{
    resp_limits_default(lim);
    lim->bulk_len_max = cfg->proto_max_bulk_len;
    lim->arg_len_max = cfg->max_value_size;
}

void client_accept(struct server *srv, int fd, const char *addr, const char *laddr)
{
    if (srv->stopping) {
        close(fd);
        return;
    }
    if (srv->n_clients >= srv->cfg.maxclients) {
        static const char msg[] = "-ERR max number of clients reached\r\n";
        ssize_t w = write(fd, msg, sizeof msg - 1); /* best effort, socket is fresh */
        (void)w;
        close(fd);
        srv->stats.rejected++;
        LOG_VERBOSE("refused %s: max number of clients reached", addr);
        return;
    }
    struct client *c = calloc(1, sizeof *c);
    struct resp_limits lim;
    parser_limits(&srv->cfg, &lim);
    if (c)
        c->parser = resp_parser_new(&lim);
    if (c && c->parser)
        c->inbuf = evbuffer_new();
    if (c && c->inbuf)
        c->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c || !c->parser || !c->inbuf || !c->bev) {
        LOG_WARNING("out of memory accepting %s", addr);
        if (c && c->inbuf)
            evbuffer_free(c->inbuf);
        if (c)
            resp_parser_free(c->parser);
        free(c);
        close(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->srv = srv;
    c->fd = fd;
    c->id = ++srv->next_client_id;
    c->proto = 2;
    c->authed = srv->cfg.requirepass[0] == '\0';
    resp_parser_set_authenticated(c->parser, c->authed);
    snprintf(c->addr, sizeof c->addr, "%s", addr);
    snprintf(c->laddr, sizeof c->laddr, "%s", laddr);
    c->ctime_ms = srv_now_ms();
    c->last_mono_ms = srv_mono_ms();
    c->next = srv->clients;
    if (srv->clients)
        srv->clients->prev = c;
    srv->clients = c;
    srv->n_clients++;
    srv->stats.connections++;
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    bufferevent_setwatermark(c->bev, EV_WRITE, CLIENT_OUT_PAUSE_BYTES / 2, 0);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    LOG_VERBOSE("accepted %s (id %llu)", addr, (unsigned long long)c->id);
}

/* ------------------------------------------------------------------ slots */

static struct cslot *slot_push(struct client *c, struct resp_cmd *cmd)
{
    struct cslot *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->c = c;
    s->cmd = cmd;
    resp_buf_init(&s->out);
    if (c->tail)
        c->tail->next = s;
    else
        c->head = s;
    c->tail = s;
    if (!c->next_start)
        c->next_start = s;
    c->n_slots++;
    return s;
}

static void slot_release(struct client *c, struct cslot *s)
{
    if (s->handle)
        node_cancel(c->srv->node, s->handle);
    resp_cmd_free(s->cmd);
    resp_buf_free(&s->out);
    free(s);
}

static void slot_done(struct cslot *s)
{
    s->state = SLOT_DONE;
    s->c->unflushed_bytes += s->out.len;
    resp_cmd_free(s->cmd);
    s->cmd = NULL;
}

/* Drop every slot after s (QUIT, protocol error): they never start. */
static void slots_drop_after(struct client *c, struct cslot *s)
{
    struct cslot *x = s->next;
    while (x) {
        struct cslot *nx = x->next;
        slot_release(c, x);
        c->n_slots--;
        x = nx;
    }
    s->next = NULL;
    c->tail = s;
    c->next_start = NULL;
}

/* ------------------------------------------------------------------ input */

static void pause_reading(struct client *c)
{
    if (!c->read_paused) {
        bufferevent_disable(c->bev, EV_READ);
        c->read_paused = true;
    }
}

static void protocol_error(struct client *c, const char *msg)
{
    struct cslot *s = slot_push(c, NULL);
    if (!s) {
        client_close_asap(c);
        return;
    }
    resp_w_errorf(&s->out, "ERR %s", msg);
    s->state = SLOT_DONE;
    if (c->next_start == s)
        c->next_start = NULL;
    c->input_closed = true;
    pause_reading(c);
    LOG_VERBOSE("client %s: %s", c->addr, msg);
}

static void parse_input(struct client *c)
{
    struct evbuffer *in = c->inbuf;
    while (c->n_slots < CLIENT_SLOTS_MAX && !c->close_after_reply && !c->input_closed &&
           !c->close_asap) {
        if (evbuffer_get_length(in) == 0)
            break;
        size_t used;
        struct resp_cmd *cmd;
        int st = srv_parse_evbuffer(c->parser, in, &used, &cmd);
        c->srv->stats.net_in_bytes += used;
        if (st == RESP_PROTO_ERR) {
            protocol_error(c, resp_parser_error(c->parser));
            break;
        }
        if (st == RESP_CMD) {
            if (cmd->argc == 0) {
                resp_cmd_free(cmd);
                continue;
            }
            if (!slot_push(c, cmd)) {
                resp_cmd_free(cmd);
                client_close_asap(c);
                break;
            }
            continue;
        }
        if (used == 0)
            break; /* no progress; wait for more bytes */
    }
    if (resp_parser_buffered(c->parser) > c->srv->cfg.client_query_buffer_limit) {
        LOG_WARNING("client %s: query buffer over client-query-buffer-limit, closing", c->addr);
        protocol_error(c, "query buffer exceeds client-query-buffer-limit");
    }
    c->input_pending = evbuffer_get_length(in) > 0 && !c->close_after_reply && !c->input_closed;
    if (c->n_slots >= CLIENT_SLOTS_MAX)
        pause_reading(c);
}

/* ------------------------------------------------------------------ execution */

static void reply_unknown(struct cslot *s, const struct resp_cmd *cmd)
{
    char args[256] = "";
    size_t alen = 0;
    for (int i = 1; i < cmd->argc && alen < 128; i++) {
        int n = snprintf(args + alen, sizeof args - alen, "'%.*s' ", (int)(128 - alen),
                         cmd->argv[i]);
        if (n < 0)
            break;
        alen += (size_t)n < sizeof args - alen ? (size_t)n : sizeof args - alen - 1;
    }
    char msg[512];
    snprintf(msg, sizeof msg, "ERR unknown command '%.128s', with args beginning with: %s",
             cmd->argv[0], args);
    for (char *p = msg; *p; p++) /* an error line must not break the protocol */
        if (*p == '\r' || *p == '\n')
            *p = ' ';
    resp_w_error(&s->out, msg);
}

static bool arity_ok(const struct cmd_def *d, int argc)
{
    return d->arity > 0 ? argc == d->arity : argc >= -d->arity;
}

static enum kind slot_kind(const struct client *c, const struct cslot *s)
{
    const struct resp_cmd *cmd = s->cmd;
    const struct cmd_def *d = cmd ? cmd_lookup(cmd->argv[0], cmd->argvlen[0]) : NULL;
    if (!d || !arity_ok(d, cmd->argc) || cmd->too_big)
        return K_OTHER;
    if (!client_authed(c) && !(d->flags & CMD_NOAUTH))
        return K_OTHER;
    if (c->multi.active)
        return K_OTHER; /* queued and answered at once, or MULTI/EXEC/DISCARD... itself */
    if (d->fn == cmd_watch)
        return K_READ; /* the revisions are taken after a read barrier */
    if (d->flags & CMD_WRITE)
        return K_WRITE;
    if (d->flags & CMD_READONLY)
        return K_READ;
    return K_OTHER;
}

/* A failed request: node may attach an NS_R_ERR reply with a more specific message. */
static void reply_node_error(struct cslot *s, int rc, const struct ns_reply *r)
{
    if (r && r->type == NS_R_ERR && r->str)
        cmd_reply_rc(s, r->rc ? r->rc : rc, r->str);
    else
        cmd_reply_rc(s, rc, NULL);
}

static void on_barrier(void *ud, int rc, struct ns_reply *r)
{
    struct cslot *s = ud;
    struct client *c = s->c;
    s->handle = 0;
    if (rc != RC_OK) {
        c->pending_reads--;
        reply_node_error(s, rc, r);
        slot_done(s);
    } else {
        s->state = SLOT_READ_READY;
    }
    if (r)
        ns_reply_free(r);
    srv_mark_dirty(c->srv, c);
}

/* A refused command inside MULTI makes EXEC fail (Redis's flagTransaction). */
static void multi_refused(struct client *c)
{
    if (c->multi.active)
        c->multi.dirty = true;
}

static void on_write_done(void *ud, int rc, struct ns_reply *r)
{
    struct cslot *s = ud;
    struct client *c = s->c;
    s->handle = 0;
    c->pending_writes--;
    if (rc == RC_OK && r)
        cmd_render_reply(&s->out, c->proto, r);
    else if (rc == RC_OK)
        resp_w_simple(&s->out, "OK");
    else
        reply_node_error(s, rc, r);
    if (r)
        ns_reply_free(r);
    slot_done(s);
    srv_mark_dirty(c->srv, c);
}

/* EXEC's reply: the array, or a null array (not a null bulk) when a watched key changed. */
static void on_exec_done(void *ud, int rc, struct ns_reply *r)
{
    struct cslot *s = ud;
    if (rc != RC_OK || !r || r->type != NS_R_NULL) {
        on_write_done(ud, rc, r);
        return;
    }
    struct client *c = s->c;
    s->handle = 0;
    c->pending_writes--;
    resp_w_null_array(&s->out, c->proto);
    ns_reply_free(r);
    slot_done(s);
    srv_mark_dirty(c->srv, c);
}

static void propose_to(struct client *c, struct cslot *s, uint32_t group, int argc,
                       char **argv, size_t *argvlen, node_done_fn fn)
{
    struct node *n = c->srv->node;
    struct node_origin o = {.actor = "default", .client = c->addr, .wall_ms = srv_now_ms()};
    int rc = RC_OK;
    uint64_t h = node_write(n, group, &o, argc, argv, argvlen, srv_mono_ms(), fn, s, &rc);
    if (h == 0) {
        cmd_reply_rc(s, rc ? rc : RC_NOMEM, NULL);
        return;
    }
    s->handle = h;
    s->state = SLOT_WRITING;
    c->pending_writes++;
}

void client_propose_exec(struct client *c, struct cslot *s, uint32_t group, int argc,
                         char **argv, size_t *argvlen)
{
    propose_to(c, s, group, argc, argv, argvlen, on_exec_done);
}

void cmd_propose(struct client *c, struct cslot *s, int argc, char **argv, size_t *argvlen,
                 int keyi)
{
    struct node *n = c->srv->node;
    uint32_t group = NODE_GROUP_DATA;
    const struct cmd_def *d = s->def;
    if (keyi > 0 && keyi < argc) {
        group = node_route(n, argv[keyi], argvlen[keyi]);
        int step = d && d->key_step > 0 ? d->key_step : 1;
        int last = d && d->last_key < 0 ? argc + d->last_key : (d ? d->last_key : keyi);
        for (int i = keyi + step; i <= last && i < argc; i += step) {
            if (node_route(n, argv[i], argvlen[i]) != group) {
                cmd_reply_rc(s, RC_CROSSSHARD, NULL);
                return;
            }
        }
    }
    if (c->multi.capture) { /* inside MULTI: queued for EXEC, not proposed */
        client_multi_capture(c, s, group, argc, argv, argvlen);
        return;
    }
    propose_to(c, s, group, argc, argv, argvlen, on_write_done);
}

/* Start a read: barrier on the group of its first key (or the data group). */
static void start_read(struct client *c, struct cslot *s)
{
    const struct cmd_def *d = s->def;
    const struct resp_cmd *cmd = s->cmd;
    uint32_t group = NODE_GROUP_DATA;
    if (d->first_key > 0 && d->first_key < cmd->argc)
        group = node_route(c->srv->node, cmd->argv[d->first_key], cmd->argvlen[d->first_key]);
    int rc = RC_OK;
    uint64_t h = node_read_barrier(c->srv->node, group, srv_mono_ms(), on_barrier, s, &rc);
    if (h == 0) {
        cmd_reply_rc(s, rc ? rc : RC_NOMEM, NULL);
        slot_done(s);
        return;
    }
    s->handle = h;
    s->state = SLOT_BARRIER;
    c->pending_reads++;
}

static void exec_slot(struct client *c, struct cslot *s, enum kind k)
{
    struct resp_cmd *cmd = s->cmd;
    const struct cmd_def *d = cmd_lookup(cmd->argv[0], cmd->argvlen[0]);
    s->def = d;
    if (!c->authed && client_authed(c)) { /* requirepass was cleared meanwhile */
        c->authed = true;
        resp_parser_set_authenticated(c->parser, true);
    }
    c->srv->stats.commands++;
    c->n_commands++;
    if (!d) {
        reply_unknown(s, cmd);
        multi_refused(c);
    } else if (!client_authed(c) && !(d->flags & CMD_NOAUTH)) {
        resp_w_error(&s->out, "NOAUTH Authentication required.");
        multi_refused(c);
    } else if (!arity_ok(d, cmd->argc)) {
        if (c->multi.active && d->fn == cmd_exec) { /* Redis 7: ends the transaction */
            resp_w_error(&s->out, "EXECABORT Transaction discarded because of: wrong number "
                                  "of arguments for 'exec' command");
            client_multi_reset(c);
        } else {
            resp_w_errorf(&s->out, "ERR wrong number of arguments for '%s' command", d->name);
        }
        multi_refused(c);
    } else if (cmd->too_big) {
        resp_w_errorf(&s->out, "ERR value of %zu bytes exceeds max-value-size (%llu bytes)",
                      cmd->too_big_len, (unsigned long long)c->srv->cfg.max_value_size);
        multi_refused(c);
    } else if (!pubsub_context_ok_or_reply(c, s, d, cmd->argc, cmd->argv)) {
        multi_refused(c);
    } else if (c->multi.active && !client_multi_passes(d)) {
        snprintf(c->last_cmd, sizeof c->last_cmd, "%s", d->name);
        client_multi_queue(c, s, d, cmd->argc, cmd->argv, cmd->argvlen);
    } else {
        snprintf(c->last_cmd, sizeof c->last_cmd, "%s", d->name);
        if (d->fn == cmd_reset)
            client_multi_reset(c); /* RESET also discards MULTI and unwatches (Redis) */
        if (k == K_READ && !c->readonly) {
            start_read(c, s);
            return;
        }
        d->fn(c, s, cmd->argc, cmd->argv, cmd->argvlen);
        if (s->state == SLOT_WRITING)
            return;
    }
    slot_done(s);
}

/* Backpressure on output: a client that does not read its replies gets no more commands
 * run until its output drains (on_write resumes it), so unread replies stay bounded. */
static bool output_full(struct client *c)
{
    if (c->unflushed_bytes + client_out_len(c) <= CLIENT_OUT_PAUSE_BYTES)
        return false;
    c->out_paused = true;
    return true;
}

void client_process(struct client *c)
{
    if (c->close_asap)
        return;
    if (c->input_pending && c->n_slots < CLIENT_SLOTS_MAX)
        parse_input(c);
    for (struct cslot *s = c->head; s && c->pending_reads; s = s->next) {
        if (s->state != SLOT_READ_READY)
            continue;
        if (output_full(c))
            return;
        c->pending_reads--;
        s->def->fn(c, s, s->cmd->argc, s->cmd->argv, s->cmd->argvlen);
        slot_done(s);
    }
    struct cslot *s;
    while ((s = c->next_start) && !c->close_after_reply && !c->close_asap) {
        enum kind k = slot_kind(c, s);
        if (k == K_WRITE && c->pending_reads)
            break;
        if (k == K_READ && c->pending_writes)
            break;
        if (k == K_OTHER && (c->pending_reads || c->pending_writes))
            break;
        if (output_full(c))
            break;
        c->next_start = s->next;
        if (s->state == SLOT_DONE)
            continue; /* a protocol error's reply, already written */
        exec_slot(c, s, k);
        if (c->close_after_reply)
            slots_drop_after(c, s);
    }
}

/* ------------------------------------------------------------------ output */

bool client_authed(const struct client *c)
{
    /* As in Redis: with no password configured nobody needs to authenticate, including
     * connections opened while one was set. */
    return c->authed || c->srv->cfg.requirepass[0] == '\0';
}

size_t client_out_len(const struct client *c)
{
    return evbuffer_get_length(bufferevent_get_output(c->bev));
}

/* Move the DONE slots at the head to the socket's buffer, in order. False when one of them
 * ran out of memory building its reply (it stays at the head; the caller closes c). */
static bool move_done_head(struct client *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    while (c->head && c->head->state == SLOT_DONE) {
        struct cslot *s = c->head;
        if (s->out.oom)
            return false;
        if (s->out.len) {
            evbuffer_add(out, s->out.data, s->out.len);
            c->srv->stats.net_out_bytes += s->out.len;
            c->unflushed_bytes -= s->out.len < c->unflushed_bytes ? s->out.len
                                                                  : c->unflushed_bytes;
        }
        c->head = s->next;
        if (!c->head)
            c->tail = NULL;
        c->n_slots--;
        slot_release(c, s);
    }
    return true;
}

void client_push(struct client *c, const void *data, size_t len)
{
    if (c->close_asap)
        return;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (!move_done_head(c) || evbuffer_add(out, data, len) != 0) {
        LOG_WARNING("client %s: out of memory queueing output, closing", c->addr);
        client_close_asap(c);
        return;
    }
    c->srv->stats.net_out_bytes += len;
    uint64_t lim = c->srv->cfg.client_output_buffer_limit;
    if (lim && evbuffer_get_length(out) > lim) {
        LOG_WARNING("client %s: output %zu bytes over client-output-buffer-limit, closing",
                    c->addr, evbuffer_get_length(out));
        client_close_asap(c);
    }
}

bool client_flush(struct client *c)
{
    if (c->close_asap) {
        client_free(c);
        return false;
    }
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (!move_done_head(c)) {
        LOG_WARNING("client %s: out of memory building a reply, closing", c->addr);
        client_free(c);
        return false;
    }
    uint64_t lim = c->srv->cfg.client_output_buffer_limit;
    if (lim && evbuffer_get_length(out) > lim) {
        LOG_WARNING("client %s: output %zu bytes over client-output-buffer-limit, closing",
                    c->addr, evbuffer_get_length(out));
        client_free(c);
        return false;
    }
    if ((c->close_after_reply || c->input_closed) && !c->head) {
        if (evbuffer_get_length(out) == 0) {
            client_free(c);
            return false;
        }
        return true; /* on_write frees it once drained */
    }
    if (c->read_paused && !c->close_after_reply && !c->input_closed &&
        c->n_slots < CLIENT_SLOTS_MAX / 2 && !c->srv->stopping) {
        bufferevent_enable(c->bev, EV_READ);
        c->read_paused = false;
    }
    if (c->input_pending && c->n_slots < CLIENT_SLOTS_MAX)
        srv_mark_dirty(c->srv, c); /* buffered input the socket will not signal again */
    return true;
}

void client_close_asap(struct client *c)
{
    c->close_asap = true;
    srv_mark_dirty(c->srv, c);
}

void client_free(struct client *c)
{
    struct server *srv = c->srv;
    pubsub_client_free(c); /* leaves every channel and pattern */
    client_multi_reset(c);
    for (struct cslot *s = c->head; s;) {
        struct cslot *nx = s->next;
        slot_release(c, s);
        s = nx;
    }
    for (size_t i = 0; i < srv->n_dirty; i++)
        if (srv->dirty[i] == c)
            srv->dirty[i] = NULL;
    for (size_t i = 0; i < srv->n_flushing; i++)
        if (srv->flushing[i] == c)
            srv->flushing[i] = NULL;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->n_clients--;
    LOG_VERBOSE("closed %s (id %llu)", c->addr, (unsigned long long)c->id);
    bufferevent_free(c->bev);
    evbuffer_free(c->inbuf);
    resp_parser_free(c->parser);
    free(c->name);
    free(c->lib_name);
    free(c->lib_ver);
    free(c);
}

/* ------------------------------------------------------------------ events */

static void on_read(struct bufferevent *bev, void *ud)
{
    struct client *c = ud;
    c->last_mono_ms = srv_mono_ms();
    /* libevent reads at most 4 KiB per callback; take what the socket holds (bounded), so
     * everything a pipelining client sent lands in this turn and shares one fsync. An EOF
     * or error seen here is seen again by the bufferevent on its next read. */
    struct evbuffer *in = c->inbuf;
    evbuffer_add_buffer(in, bufferevent_get_input(bev)); /* that one is frozen at its end */
    while (evbuffer_get_length(in) < CLIENT_READ_CHUNK) {
        int n = evbuffer_read(in, c->fd, CLIENT_READ_CHUNK);
        if (n <= 0)
            break;
    }
    parse_input(c);
    client_process(c);
    srv_mark_dirty(c->srv, c);
}

static void on_write(struct bufferevent *bev, void *ud)
{
    struct client *c = ud;
    if (c->out_paused && client_out_len(c) <= CLIENT_OUT_PAUSE_BYTES / 2) {
        c->out_paused = false;
        srv_mark_dirty(c->srv, c); /* run what waited, at this turn's end */
    }
    if ((c->close_after_reply || c->input_closed) && !c->head &&
        evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        client_free(c);
}

static void on_event(struct bufferevent *bev, short what, void *ud)
{
    (void)bev;
    struct client *c = ud;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        client_free(c);
}

void client_describe(const struct client *c, char *buf, size_t len)
{
    uint64_t now = srv_now_ms();
    uint64_t idle = (srv_mono_ms() - c->last_mono_ms) / 1000;
    char flags[8];
    size_t nf = 0;
    if (pubsub_client_subscribed(c))
        flags[nf++] = 'P';
    if (c->readonly)
        flags[nf++] = 'r';
    if (c->multi.active)
        flags[nf++] = 'x'; /* in MULTI, as Redis */
    if (nf == 0)
        flags[nf++] = 'N';
    flags[nf] = '\0';
    snprintf(buf, len,
             "id=%llu addr=%s laddr=%s fd=%d name=%s age=%llu idle=%llu flags=%s db=0 "
             "sub=%zu psub=%zu ssub=0 multi=%lld qbuf=%zu qbuf-free=0 argv-mem=0 multi-mem=0 "
             "rbs=0 rbp=0 obl=0 oll=%u omem=%zu tot-mem=0 events=r cmd=%s user=default "
             "redir=-1 resp=%d lib-name=%s lib-ver=%s",
             (unsigned long long)c->id, c->addr, c->laddr, c->fd, c->name ? c->name : "",
             (unsigned long long)((now - c->ctime_ms) / 1000), (unsigned long long)idle,
             flags, pubsub_client_channels(c), pubsub_client_patterns(c),
             c->multi.active ? (long long)c->multi.ncmds : -1LL,
             resp_parser_buffered(c->parser), c->n_slots,
             client_out_len(c), c->last_cmd[0] ? c->last_cmd : "NULL", c->proto,
             c->lib_name ? c->lib_name : "", c->lib_ver ? c->lib_ver : "");
}
