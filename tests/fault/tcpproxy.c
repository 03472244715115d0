/*
 * tcpproxy.c - a small fault-injecting TCP proxy for the cluster tests (tests/cluster/).
 *
 *   tcpproxy LISTEN:TARGET [LISTEN:TARGET ...]
 *
 * Every route r (numbered from 0 in argument order) listens on 127.0.0.1:LISTEN (0 = let
 * the kernel pick) and forwards each accepted connection to 127.0.0.1:TARGET. After every
 * listener is bound it prints one line "ports P0 P1 ..." (the bound ports) on stdout.
 * Commands arrive one per line on stdin; each is answered by one line "ok" or "err why":
 *
 *   pass   R|* [up|down|both]   forward bytes (up = client -> target, down = back)
 *   drop   R|* [up|down|both]   blackhole: read and discard the bytes of that direction
 *   hold   R|* [up|down|both]   stop reading that direction: bytes wait in the kernel
 *                               buffers (a network that delays, TCP-style, loses nothing)
 *   reset  R|*                  close every current connection of the route (RST)
 *   refuse R|* on|off           when on, new connections are reset right after accept
 *   stats                       one line per route "route R conns N up B down B dropped B"
 *                               then "ok"
 *   quit                        exit
 *
 * A connection that lost bytes to `drop` can never be made whole again (the stream has a
 * hole), so when a direction goes from drop back to pass, such connections are reset: the
 * endpoints see a broken connection and reconnect, as after a long partition.
 *
 * Invariants: only 127.0.0.1 is ever dialed or bound; every buffer and table is bounded
 * (ROUTES_MAX routes, CONNS_MAX connections, BUF_CAP bytes per direction); EOF on stdin ends
 * the process (it dies with the test that drives it); the target connect is non-blocking
 * and a connection whose target refuses is closed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ROUTES_MAX 64
#define CONNS_MAX 1024
#define BUF_CAP (64 * 1024)
#define CMD_MAX 512

enum mode { M_PASS, M_DROP, M_HOLD };
enum { UP = 0, DOWN = 1 };

struct route {
    int lfd;
    int lport, tport;
    enum mode mode[2];
    bool refuse;
    unsigned long long bytes[2], dropped;
};

struct pipe_buf {
    char data[BUF_CAP];
    size_t len;
    bool eof;      /* the source sent EOF: shut the destination's write side once drained */
    bool shut;     /* destination write side already shut */
};

struct conn {
    bool used;
    int route;
    int fd[2];     /* fd[0] = accepted client side, fd[1] = target side */
    bool connecting;
    bool tainted;  /* lost bytes to drop */
    struct pipe_buf buf[2]; /* buf[UP]: client -> target, buf[DOWN]: target -> client */
};

static struct route routes[ROUTES_MAX];
static int n_routes;
static struct conn *conns;
static char cmd_buf[CMD_MAX];
static size_t cmd_len;

static void die(const char *what)
{
    fprintf(stderr, "tcpproxy: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static struct sockaddr_in loopback(int port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    return a;
}

static void close_rst(int fd)
{
    if (fd < 0)
        return;
    struct linger l = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
}

static void conn_close(struct conn *c, bool rst)
{
    for (int i = 0; i < 2; i++) {
        if (rst)
            close_rst(c->fd[i]);
        else if (c->fd[i] >= 0)
            close(c->fd[i]);
    }
    c->used = false;
}

static void listen_route(struct route *r)
{
    r->lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (r->lfd < 0)
        die("socket");
    int one = 1;
    setsockopt(r->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = loopback(r->lport);
    socklen_t al = sizeof a;
    if (bind(r->lfd, (struct sockaddr *)&a, sizeof a) != 0)
        die("bind");
    if (listen(r->lfd, 128) != 0 || getsockname(r->lfd, (struct sockaddr *)&a, &al) != 0)
        die("listen");
    r->lport = ntohs(a.sin_port);
    set_nonblock(r->lfd);
}

static void accept_one(int ri)
{
    struct route *r = &routes[ri];
    int fd = accept(r->lfd, NULL, NULL);
    if (fd < 0)
        return;
    if (r->refuse) {
        close_rst(fd);
        return;
    }
    struct conn *c = NULL;
    for (int i = 0; i < CONNS_MAX && !c; i++)
        if (!conns[i].used)
            c = &conns[i];
    if (!c) {
        close_rst(fd);
        return;
    }
    memset(c, 0, sizeof *c);
    c->used = true;
    c->route = ri;
    c->fd[0] = fd;
    set_nonblock(fd);
    c->fd[1] = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd[1] < 0) {
        conn_close(c, true);
        return;
    }
    set_nonblock(c->fd[1]);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(c->fd[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = loopback(r->tport);
    if (connect(c->fd[1], (struct sockaddr *)&a, sizeof a) != 0) {
        if (errno != EINPROGRESS) {
            conn_close(c, true);
            return;
        }
        c->connecting = true;
    }
}

/* Move bytes of direction d of c (d = UP: fd[0] -> fd[1]). Returns false when the
 * connection must be closed. */
static bool pump_read(struct conn *c, int d)
{
    struct route *r = &routes[c->route];
    struct pipe_buf *b = &c->buf[d];
    char scratch[BUF_CAP];
    bool drop = r->mode[d] == M_DROP;
    char *dst = drop ? scratch : b->data + b->len;
    size_t room = drop ? sizeof scratch : BUF_CAP - b->len;
    ssize_t n = read(c->fd[d], dst, room);
    if (n == 0) {
        b->eof = true;
        return true;
    }
    if (n < 0)
        return errno == EAGAIN || errno == EINTR;
    if (drop) {
        r->dropped += (unsigned long long)n;
        c->tainted = true;
    } else {
        b->len += (size_t)n;
    }
    return true;
}

static bool pump_write(struct conn *c, int d)
{
    struct pipe_buf *b = &c->buf[d];
    int out = c->fd[1 - d];
    if (b->len > 0) {
        ssize_t n = send(out, b->data, b->len, MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN || errno == EINTR;
        routes[c->route].bytes[d] += (unsigned long long)n;
        memmove(b->data, b->data + n, b->len - (size_t)n);
        b->len -= (size_t)n;
    }
    if (b->len == 0 && b->eof && !b->shut) {
        shutdown(out, SHUT_WR);
        b->shut = true;
    }
    return true;
}

/* ---------------------------------------------------------------- control */

static int parse_dirs(const char *w, bool dirs[2])
{
    dirs[UP] = dirs[DOWN] = false;
    if (!w || strcmp(w, "both") == 0)
        dirs[UP] = dirs[DOWN] = true;
    else if (strcmp(w, "up") == 0)
        dirs[UP] = true;
    else if (strcmp(w, "down") == 0)
        dirs[DOWN] = true;
    else
        return -1;
    return 0;
}

/* Route selector: a number or '*'. Sets [lo, hi). */
static int parse_route(const char *w, int *lo, int *hi)
{
    if (!w)
        return -1;
    if (strcmp(w, "*") == 0) {
        *lo = 0;
        *hi = n_routes;
        return 0;
    }
    char *end;
    long v = strtol(w, &end, 10);
    if (*end || v < 0 || v >= n_routes)
        return -1;
    *lo = (int)v;
    *hi = (int)v + 1;
    return 0;
}

static void reset_route(int ri, bool only_tainted)
{
    for (int i = 0; i < CONNS_MAX; i++)
        if (conns[i].used && conns[i].route == ri && (!only_tainted || conns[i].tainted))
            conn_close(&conns[i], true);
}

static void set_mode(int ri, const bool dirs[2], enum mode m)
{
    bool healed = false;
    for (int d = 0; d < 2; d++) {
        if (!dirs[d])
            continue;
        if (routes[ri].mode[d] == M_DROP && m != M_DROP)
            healed = true;
        routes[ri].mode[d] = m;
    }
    if (healed)
        reset_route(ri, true);
}

static void cmd_stats(void)
{
    for (int r = 0; r < n_routes; r++) {
        int n = 0;
        for (int i = 0; i < CONNS_MAX; i++)
            n += conns[i].used && conns[i].route == r;
        printf("route %d conns %d up %llu down %llu dropped %llu\n", r, n,
               routes[r].bytes[UP], routes[r].bytes[DOWN], routes[r].dropped);
    }
}

static void run_command(char *line)
{
    char *save = NULL;
    char *verb = strtok_r(line, " \t\r", &save);
    char *a1 = verb ? strtok_r(NULL, " \t\r", &save) : NULL;
    char *a2 = a1 ? strtok_r(NULL, " \t\r", &save) : NULL;
    int lo, hi;
    bool dirs[2];
    if (!verb) {
        printf("err empty\n");
    } else if (strcmp(verb, "quit") == 0) {
        printf("ok\n");
        fflush(stdout);
        exit(0);
    } else if (strcmp(verb, "stats") == 0) {
        cmd_stats();
        printf("ok\n");
    } else if (parse_route(a1, &lo, &hi) != 0) {
        printf("err bad route\n");
    } else if (strcmp(verb, "reset") == 0) {
        for (int r = lo; r < hi; r++)
            reset_route(r, false);
        printf("ok\n");
    } else if (strcmp(verb, "refuse") == 0) {
        bool on = a2 && strcmp(a2, "on") == 0;
        for (int r = lo; r < hi; r++)
            routes[r].refuse = on;
        printf("ok\n");
    } else if (parse_dirs(a2, dirs) != 0) {
        printf("err bad direction\n");
    } else {
        enum mode m = M_PASS;
        if (strcmp(verb, "drop") == 0)
            m = M_DROP;
        else if (strcmp(verb, "hold") == 0)
            m = M_HOLD;
        else if (strcmp(verb, "pass") != 0) {
            printf("err unknown command\n");
            fflush(stdout);
            return;
        }
        for (int r = lo; r < hi; r++)
            set_mode(r, dirs, m);
        printf("ok\n");
    }
    fflush(stdout);
}

static void read_commands(void)
{
    ssize_t n = read(0, cmd_buf + cmd_len, sizeof cmd_buf - 1 - cmd_len);
    if (n == 0)
        exit(0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return;
        exit(1);
    }
    cmd_len += (size_t)n;
    char *nl;
    while ((nl = memchr(cmd_buf, '\n', cmd_len))) {
        *nl = '\0';
        run_command(cmd_buf);
        size_t used = (size_t)(nl - cmd_buf) + 1;
        memmove(cmd_buf, cmd_buf + used, cmd_len - used);
        cmd_len -= used;
    }
    if (cmd_len == sizeof cmd_buf - 1)
        cmd_len = 0; /* an over-long line: drop it */
}

/* ---------------------------------------------------------------- loop */

/* Poll slots: 0 = stdin, 1..n_routes = listeners, then 2 per connection. */
static struct pollfd pfd[1 + ROUTES_MAX + 2 * CONNS_MAX];
static int pfd_conn[1 + ROUTES_MAX + 2 * CONNS_MAX];

static short conn_events(const struct conn *c, int side)
{
    if (c->connecting)
        return side == 1 ? POLLOUT : 0;
    short ev = 0;
    int d_in = side;        /* bytes read from fd[side] travel in direction `side` */
    int d_out = 1 - side;   /* bytes written to fd[side] come from direction 1 - side */
    const struct route *r = &routes[c->route];
    if (!c->buf[d_in].eof && r->mode[d_in] != M_HOLD &&
        (r->mode[d_in] == M_DROP || c->buf[d_in].len < BUF_CAP))
        ev |= POLLIN;
    if (c->buf[d_out].len > 0)
        ev |= POLLOUT;
    return ev;
}

static bool conn_handle(struct conn *c, int side, short asked, short rev)
{
    if (c->connecting) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(c->fd[1], SOL_SOCKET, SO_ERROR, &err, &el);
        if (err != 0)
            return false;
        c->connecting = false;
        return true;
    }
    if (rev & POLLERR)
        return false;
    if ((asked & POLLIN) && (rev & (POLLIN | POLLHUP)) && !pump_read(c, side))
        return false;
    if ((rev & POLLOUT) && !pump_write(c, 1 - side))
        return false;
    if ((rev & POLLHUP) && !(asked & POLLIN))
        return false; /* hung up while held: nothing more can flow */
    /* both directions finished */
    return !(c->buf[UP].shut && c->buf[DOWN].shut);
}

static void loop_once(void)
{
    int n = 0;
    pfd[n++] = (struct pollfd){0, POLLIN, 0};
    for (int r = 0; r < n_routes; r++)
        pfd[n++] = (struct pollfd){routes[r].lfd, POLLIN, 0};
    for (int i = 0; i < CONNS_MAX; i++) {
        struct conn *c = &conns[i];
        if (!c->used)
            continue;
        for (int side = 0; side < 2; side++) {
            pfd_conn[n] = i;
            pfd[n++] = (struct pollfd){c->fd[side], conn_events(c, side), 0};
        }
    }
    if (poll(pfd, (nfds_t)n, 1000) < 0) {
        if (errno == EINTR)
            return;
        die("poll");
    }
    if (pfd[0].revents)
        read_commands();
    for (int r = 0; r < n_routes; r++)
        if (pfd[1 + r].revents & POLLIN)
            accept_one(r);
    for (int k = 1 + n_routes; k < n; k++) {
        struct conn *c = &conns[pfd_conn[k]];
        int side = (k - 1 - n_routes) % 2;
        if (!c->used || !pfd[k].revents || c->fd[side] != pfd[k].fd)
            continue;
        if (!conn_handle(c, side, pfd[k].events, pfd[k].revents))
            conn_close(c, true);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc - 1 > ROUTES_MAX) {
        fprintf(stderr, "usage: tcpproxy LISTEN:TARGET [...] (at most %d routes)\n",
                ROUTES_MAX);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    conns = calloc(CONNS_MAX, sizeof *conns);
    if (!conns)
        die("calloc");
    for (int i = 1; i < argc; i++) {
        struct route *r = &routes[n_routes++];
        if (sscanf(argv[i], "%d:%d", &r->lport, &r->tport) != 2 || r->lport < 0 ||
            r->lport > 65535 || r->tport <= 0 || r->tport > 65535) {
            fprintf(stderr, "tcpproxy: bad route '%s' (want LISTEN:TARGET)\n", argv[i]);
            return 2;
        }
        listen_route(r);
    }
    printf("ports");
    for (int r = 0; r < n_routes; r++)
        printf(" %d", routes[r].lport);
    printf("\n");
    fflush(stdout);
    set_nonblock(0);
    for (;;)
        loop_once();
}
