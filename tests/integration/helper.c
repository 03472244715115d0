/*
 * helper.c - start/stop the real server and a raw RESP2/RESP3 client for the integration
 * suites. See helper.h for the invariants (free ports, stop by PID, bounded waits).
 */
#include "helper.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define START_TIMEOUT_MS 15000
#define REG_MAX 16
#define REPLY_DEPTH_MAX 16

static struct itest_srv *registry[REG_MAX];

long itest_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

const char *itest_bin(void)
{
    const char *b = getenv("RAFTCONF_BIN");
    return (b && *b) ? b : "build/raftconf-server";
}

/* Can we bind 127.0.0.1:port right now? */
static bool port_bindable(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* The kernel picks the port (bind :0). raftconf reserves port + 10000 for its cluster bus
 * (so it refuses ports above 55535): keep asking until both the port and port + 10000 are
 * free and the port is at most 55535. */
int itest_free_port(void)
{
    for (int attempt = 0; attempt < 200; attempt++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0)
            return -1;
        struct sockaddr_in a = {0};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = 0;
        socklen_t al = sizeof a;
        int port = -1;
        if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
            getsockname(fd, (struct sockaddr *)&a, &al) == 0)
            port = ntohs(a.sin_port);
        close(fd);
        if (port > 0 && port <= 55535 && port_bindable(port + 10000))
            return port;
    }
    return -1;
}

static void reg_add(struct itest_srv *s)
{
    for (int i = 0; i < REG_MAX; i++)
        if (registry[i] == s)
            return;
    for (int i = 0; i < REG_MAX; i++)
        if (!registry[i]) {
            registry[i] = s;
            return;
        }
}

static void reg_del(struct itest_srv *s)
{
    for (int i = 0; i < REG_MAX; i++)
        if (registry[i] == s)
            registry[i] = NULL;
}

void itest_log_tail(const struct itest_srv *s, int lines)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "tail -n %d '%s' 1>&2", lines, s->log);
    fprintf(stderr, "---- server log (%s) ----\n", s->log);
    if (system(cmd) != 0)
        fprintf(stderr, "(no log)\n");
}

/* ITEST_EXTRA_ARGS (space-separated) is appended to every start: lets the suites run
 * against another server, e.g. redis-server with chosen persistence settings. */
static int env_extra(const char **argv, int n, int max)
{
    static char copy[1024];
    const char *e = getenv("ITEST_EXTRA_ARGS");
    if (!e || !*e)
        return n;
    snprintf(copy, sizeof copy, "%s", e);
    char *save = NULL;
    for (char *t = strtok_r(copy, " ", &save); t && n < max; t = strtok_r(NULL, " ", &save))
        argv[n++] = strcmp(t, "''") == 0 ? "" : t;
    return n;
}

static pid_t spawn(struct itest_srv *s, const char *const *extra)
{
    const char *argv[96];
    char port[16];
    int n = 0;
    snprintf(port, sizeof port, "%d", s->port);
    for (int i = 0; s->wrap[i] && n < 16; i++)
        argv[n++] = s->wrap[i];
    argv[n++] = itest_bin();
    int first = 0; /* a config file (extra[0] not an option) goes right after the binary */
    if (extra && extra[0] && strncmp(extra[0], "--", 2) != 0)
        argv[n++] = extra[first++];
    argv[n++] = "--port";
    argv[n++] = port;
    argv[n++] = "--bind";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--dir";
    argv[n++] = s->dir;
    for (int i = first; extra && extra[i] && n < 80; i++)
        argv[n++] = extra[i];
    n = env_extra(argv, n, 94);
    argv[n] = NULL;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    /* child: die with the test process, log to a file */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    int fd = open(s->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
    }
    int nul = open("/dev/null", O_RDONLY);
    if (nul >= 0) {
        dup2(nul, 0);
        close(nul);
    }
    execvp(argv[0], (char *const *)argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

/* Has the child exited? Reaps it if so. */
static bool child_gone(struct itest_srv *s, int *status)
{
    if (!s->pid)
        return true;
    pid_t r = waitpid(s->pid, status, WNOHANG);
    if (r == s->pid || (r < 0 && errno == ECHILD)) {
        s->pid = 0;
        return true;
    }
    return false;
}

/* Bounded: PING answers, then a read (EXISTS) answers without an error (leader known). */
static int wait_ready(struct itest_srv *s, long t0)
{
    bool pinged = false;
    while (itest_now_ms() - t0 < START_TIMEOUT_MS) {
        int st;
        if (child_gone(s, &st)) {
            fprintf(stderr, "itest: server exited during start (status %d)\n", st);
            return -1;
        }
        struct itest_conn *c = itest_connect(s->port);
        if (!c) {
            sleep_ms(20);
            continue;
        }
        c->timeout_ms = 2000;
        if (s->password) {
            const char *av[] = {"AUTH", s->password, NULL};
            free(itest_callv(c, av));
        }
        char *r = itest_call(c, pinged ? "EXISTS __itest_probe__" : "PING");
        /* a password we do not know (config file): NOAUTH is as far as we can probe */
        bool noauth = strncmp(r, "-NOAUTH", 7) == 0;
        bool ok = pinged ? (r[0] == ':' || (noauth && !s->password)) : (r[0] == '+' || noauth);
        free(r);
        itest_close(c);
        if (ok && !pinged) {
            pinged = true;
            s->ready_ms = itest_now_ms() - t0;
            continue;
        }
        if (ok) {
            s->leader_ms = itest_now_ms() - t0;
            return 0;
        }
        sleep_ms(30);
    }
    fprintf(stderr, "itest: server on port %d not ready after %d ms (pinged=%d)\n", s->port,
            START_TIMEOUT_MS, pinged);
    return -1;
}

static int start_on_dir(struct itest_srv *s, const char *const *extra)
{
    s->password = NULL;
    for (int i = 0; extra && extra[i]; i++)
        if (strcmp(extra[i], "--requirepass") == 0 && extra[i + 1])
            s->password = extra[i + 1];
    for (int attempt = 0; attempt < 3; attempt++) {
        s->port = itest_free_port();
        if (s->port <= 0)
            return -1;
        long t0 = itest_now_ms();
        s->pid = spawn(s, extra);
        if (s->pid < 0) {
            s->pid = 0;
            return -1;
        }
        reg_add(s);
        if (wait_ready(s, t0) == 0)
            return 0;
        itest_log_tail(s, 30);
        itest_stop(s, 5000);
    }
    return -1;
}

int itest_start(struct itest_srv *s, const char *const *extra)
{
    return itest_start_wrapped(s, NULL, extra);
}

int itest_start_wrapped(struct itest_srv *s, const char *const *wrap,
                        const char *const *extra)
{
    memset(s, 0, sizeof *s);
    for (int i = 0; wrap && wrap[i] && i < 15; i++)
        s->wrap[i] = wrap[i];
    snprintf(s->root, sizeof s->root, "/tmp/rc-itest-XXXXXX");
    if (!mkdtemp(s->root))
        return -1;
    snprintf(s->dir, sizeof s->dir, "%s/data", s->root);
    snprintf(s->log, sizeof s->log, "%s/server.log", s->root);
    if (mkdir(s->dir, 0755) != 0)
        return -1;
    if (start_on_dir(s, extra) == 0)
        return 0;
    itest_destroy(s); /* the log tail was printed by start_on_dir */
    return -1;
}

int itest_restart(struct itest_srv *s, const char *const *extra)
{
    if (s->pid)
        itest_stop(s, 10000);
    return start_on_dir(s, extra);
}

/* First child of pid (the server under a wrapper such as strace), 0 if none. */
static pid_t child_of(pid_t pid)
{
    char path[96];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid, (int)pid);
    FILE *f = fopen(path, "r");
    int c = 0;
    if (f) {
        if (fscanf(f, "%d", &c) != 1)
            c = 0;
        fclose(f);
    }
    return (pid_t)c;
}

int itest_stop(struct itest_srv *s, int timeout_ms)
{
    int status = 0;
    if (!s->pid)
        return 0;
    pid_t pid = s->pid;
    /* under a wrapper the signal goes to the real server (by PID); the wrapper follows */
    pid_t inner = s->wrap[0] ? child_of(pid) : 0;
    kill(inner > 0 ? inner : pid, SIGTERM);
    long t0 = itest_now_ms();
    while (itest_now_ms() - t0 < timeout_ms) {
        if (child_gone(s, &status))
            return status;
        sleep_ms(10);
    }
    fprintf(stderr, "itest: server pid %d ignored SIGTERM for %d ms, SIGKILL\n", (int)pid,
            timeout_ms);
    if (inner > 0)
        kill(inner, SIGKILL);
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    s->pid = 0;
    return -1;
}

void itest_kill9(struct itest_srv *s)
{
    if (!s->pid)
        return;
    pid_t inner = s->wrap[0] ? child_of(s->pid) : 0;
    if (inner > 0)
        kill(inner, SIGKILL);
    kill(s->pid, SIGKILL);
    int st;
    waitpid(s->pid, &st, 0);
    s->pid = 0;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void itest_destroy(struct itest_srv *s)
{
    if (s->pid)
        itest_stop(s, 10000);
    reg_del(s);
    if (s->root[0] && strncmp(s->root, "/tmp/rc-itest-", 14) == 0 && !getenv("ITEST_KEEP"))
        nftw(s->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    s->root[0] = '\0';
}

void itest_fini(void)
{
    for (int i = 0; i < REG_MAX; i++)
        if (registry[i])
            itest_destroy(registry[i]);
}

void itest_rand_token(char *out, size_t n)
{
    static unsigned long long x;
    if (!x)
        x = (unsigned long long)itest_now_ms() * 2654435761ULL ^ (unsigned long long)getpid();
    for (size_t i = 0; i + 1 < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[x % 36];
    }
    if (n)
        out[n - 1] = '\0';
}

/* ---------------------------------------------------------------- connection */

struct itest_conn *itest_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return NULL;
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    int r = connect(fd, (struct sockaddr *)&a, sizeof a);
    if (r != 0 && errno == EINPROGRESS) {
        struct pollfd p = {fd, POLLOUT, 0};
        int err = 0;
        socklen_t el = sizeof err;
        if (poll(&p, 1, 3000) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 &&
            err == 0)
            r = 0;
    }
    if (r != 0) {
        close(fd);
        return NULL;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct itest_conn *c = calloc(1, sizeof *c);
    c->fd = fd;
    c->cap = 1 << 16;
    c->buf = malloc(c->cap);
    c->timeout_ms = 5000;
    return c;
}

void itest_close(struct itest_conn *c)
{
    if (!c)
        return;
    close(c->fd);
    free(c->buf);
    free(c);
}

int itest_send_raw(struct itest_conn *c, const void *buf, size_t len)
{
    const char *p = buf;
    long t0 = itest_now_ms();
    while (len > 0) {
        ssize_t w = send(c->fd, p, len, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            len -= (size_t)w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EINTR)
            return -1;
        struct pollfd pf = {c->fd, POLLOUT, 0};
        if (itest_now_ms() - t0 > 20000)
            return -1;
        poll(&pf, 1, 100);
    }
    return 0;
}

int itest_send_argv(struct itest_conn *c, int argc, const char *const *argv,
                    const size_t *argvlen)
{
    size_t cap = 64, n = 0;
    for (int i = 0; i < argc; i++)
        cap += 32 + (argvlen ? argvlen[i] : strlen(argv[i]));
    char *b = malloc(cap);
    n += (size_t)snprintf(b + n, cap - n, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++) {
        size_t l = argvlen ? argvlen[i] : strlen(argv[i]);
        n += (size_t)snprintf(b + n, cap - n, "$%zu\r\n", l);
        memcpy(b + n, argv[i], l);
        n += l;
        b[n++] = '\r';
        b[n++] = '\n';
    }
    int r = itest_send_raw(c, b, n);
    free(b);
    return r;
}

/* Read more bytes into the buffer (bounded by c->timeout_ms). 1 got data, 0 EOF/timeout. */
static int fill(struct itest_conn *c)
{
    if (c->off > 0 && c->off == c->len)
        c->off = c->len = 0;
    if (c->len == c->cap) {
        if (c->off > 0) {
            memmove(c->buf, c->buf + c->off, c->len - c->off);
            c->len -= c->off;
            c->off = 0;
        } else {
            c->cap *= 2;
            c->buf = realloc(c->buf, c->cap);
        }
    }
    struct pollfd p = {c->fd, POLLIN, 0};
    if (poll(&p, 1, c->timeout_ms) != 1)
        return 0;
    ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
    if (r <= 0) {
        c->eof = true;
        return 0;
    }
    c->len += (size_t)r;
    return 1;
}

/* A line ending in CRLF starting at c->off: returns its length (without CRLF), filling as
 * needed; -1 on EOF/timeout. */
static long get_line(struct itest_conn *c, size_t from)
{
    for (;;) {
        for (size_t i = from; i + 1 < c->len; i++)
            if (c->buf[i] == '\r' && c->buf[i + 1] == '\n')
                return (long)(i - c->off);
        size_t rel = from - c->off;
        if (!fill(c))
            return -1;
        from = c->off + rel;
    }
}

static struct itest_reply *parse(struct itest_conn *c, int depth);

static int parse_agg(struct itest_conn *c, struct itest_reply *r, long long n, int depth)
{
    if (n < 0 || n > 10000000)
        return -1;
    r->n = (size_t)n;
    r->elem = calloc(r->n ? r->n : 1, sizeof *r->elem);
    for (size_t i = 0; i < r->n; i++)
        if (!(r->elem[i] = parse(c, depth + 1)))
            return -1;
    return 0;
}

static int parse_bulk(struct itest_conn *c, struct itest_reply *r, long long n)
{
    if (n < 0 || n > (1LL << 30))
        return -1;
    while (c->len - c->off < (size_t)n + 2)
        if (!fill(c))
            return -1;
    r->str = malloc((size_t)n + 1);
    memcpy(r->str, c->buf + c->off, (size_t)n);
    r->str[n] = '\0';
    r->len = (size_t)n;
    c->off += (size_t)n + 2;
    return 0;
}

static const struct {
    char lead;
    int type;
} types[] = {
    {'+', IT_STATUS}, {'-', IT_ERROR}, {':', IT_INT},     {'$', IT_BULK},   {'*', IT_ARRAY},
    {'%', IT_MAP},    {'~', IT_SET},   {',', IT_DOUBLE},  {'#', IT_BOOL},   {'=', IT_VERBATIM},
    {'>', IT_PUSH},   {'(', IT_BIGNUM}, {'_', IT_NULL},   {'|', IT_ATTR},   {'!', IT_ERROR},
};

static struct itest_reply *parse(struct itest_conn *c, int depth)
{
    if (depth > REPLY_DEPTH_MAX)
        return NULL;
    long ll = get_line(c, c->off);
    if (ll < 1)
        return NULL;
    struct itest_reply *r = calloc(1, sizeof *r);
    r->lead = c->buf[c->off];
    char *line = strndup(c->buf + c->off + 1, (size_t)ll - 1);
    c->off += (size_t)ll + 2;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (types[i].lead == r->lead)
            r->type = types[i].type;
    long long n = strtoll(line, NULL, 10);
    int rc = 0;
    switch (r->lead) {
    case '+': case '-': case ',': case '(':
        r->str = line;
        r->len = strlen(line);
        line = NULL;
        break;
    case ':': r->integer = n; break;
    case '#': r->integer = line[0] == 't'; break;
    case '_': break;
    case '$': case '=': case '!':
        if (n == -1 && r->lead == '$')
            r->type = IT_NULL;
        else
            rc = parse_bulk(c, r, n);
        break;
    case '*':
        if (n == -1)
            r->type = IT_NULL;
        else
            rc = parse_agg(c, r, n, depth);
        break;
    case '~': case '>': rc = parse_agg(c, r, n, depth); break;
    case '%': case '|': rc = parse_agg(c, r, n * 2, depth); break;
    default: rc = -1;
    }
    free(line);
    if (rc != 0 || !r->type) {
        itest_reply_free(r);
        return NULL;
    }
    if (r->lead == '|') { /* attribute: skip it, return the reply that follows */
        itest_reply_free(r);
        return parse(c, depth);
    }
    return r;
}

struct itest_reply *itest_read(struct itest_conn *c)
{
    return parse(c, 0);
}

char *itest_read_fmt(struct itest_conn *c)
{
    struct itest_reply *r = itest_read(c);
    char *s = itest_fmt(r);
    itest_reply_free(r);
    return s;
}

bool itest_wait_eof(struct itest_conn *c, int timeout_ms)
{
    long t0 = itest_now_ms();
    int saved = c->timeout_ms;
    while (!c->eof && itest_now_ms() - t0 < timeout_ms) {
        c->timeout_ms = 100;
        c->off = c->len = 0;
        fill(c);
    }
    c->timeout_ms = saved;
    return c->eof;
}

void itest_reply_free(struct itest_reply *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        itest_reply_free(r->elem[i]);
    free(r->elem);
    free(r->str);
    free(r);
}

/* ---------------------------------------------------------------- formatting */

struct sbuf {
    char *p;
    size_t n, cap;
};

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_str(struct sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_quoted(struct sbuf *b, const char *s, size_t n)
{
    sb_put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            char e[2] = {'\\', (char)ch};
            sb_put(b, e, 2);
        } else if (ch < 32 || ch > 126) {
            char e[8];
            snprintf(e, sizeof e, "\\x%02x", ch);
            sb_str(b, e);
        } else {
            sb_put(b, (const char *)&ch, 1);
        }
    }
    sb_put(b, "\"", 1);
}

static void fmt_into(struct sbuf *b, const struct itest_reply *r)
{
    char num[64];
    const char *open = "[", *close = "]";
    switch (r->type) {
    case IT_STATUS: sb_str(b, "+"); sb_put(b, r->str, r->len); return;
    case IT_ERROR: sb_str(b, "-"); sb_put(b, r->str, r->len); return;
    case IT_INT: snprintf(num, sizeof num, ":%lld", r->integer); sb_str(b, num); return;
    case IT_BULK: sb_quoted(b, r->str, r->len); return;
    case IT_NULL: sb_str(b, r->lead == '$' ? "$nil" : r->lead == '*' ? "*nil" : "_"); return;
    case IT_DOUBLE: sb_str(b, ","); sb_str(b, r->str); return;
    case IT_BIGNUM: sb_str(b, "("); sb_str(b, r->str); return;
    case IT_BOOL: sb_str(b, r->integer ? "#t" : "#f"); return;
    case IT_VERBATIM: sb_str(b, "="); sb_put(b, r->str, r->len); return;
    case IT_MAP: open = "{"; close = "}"; break;
    case IT_SET: open = "~["; break;
    case IT_PUSH: open = ">["; break;
    default: break;
    }
    sb_str(b, open);
    for (size_t i = 0; i < r->n; i++) {
        if (i)
            sb_str(b, (r->type == IT_MAP && i % 2) ? ": " : ", ");
        fmt_into(b, r->elem[i]);
    }
    sb_str(b, close);
}

char *itest_fmt(const struct itest_reply *r)
{
    if (!r)
        return strdup("<none>");
    struct sbuf b = {0};
    sb_str(&b, "");
    fmt_into(&b, r);
    return b.p;
}

const struct itest_reply *itest_field(const struct itest_reply *r, const char *key)
{
    if (!r || (r->type != IT_MAP && r->type != IT_ARRAY))
        return NULL;
    for (size_t i = 0; i + 1 < r->n; i += 2) {
        const struct itest_reply *k = r->elem[i];
        if ((k->type == IT_BULK || k->type == IT_STATUS) && strcmp(k->str, key) == 0)
            return r->elem[i + 1];
    }
    return NULL;
}

/* ---------------------------------------------------------------- calls */

struct itest_reply *itest_callv_r(struct itest_conn *c, const char *const *argv)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    if (itest_send_argv(c, argc, argv, NULL) != 0)
        return NULL;
    return itest_read(c);
}

char *itest_callv(struct itest_conn *c, const char *const *argv)
{
    struct itest_reply *r = itest_callv_r(c, argv);
    char *s = itest_fmt(r);
    itest_reply_free(r);
    return s;
}

struct itest_reply *itest_call_r(struct itest_conn *c, const char *line)
{
    char *copy = strdup(line), *save = NULL;
    const char *argv[ITEST_MAX_ARGS + 1];
    int n = 0;
    for (char *t = strtok_r(copy, " ", &save); t && n < ITEST_MAX_ARGS;
         t = strtok_r(NULL, " ", &save))
        argv[n++] = t;
    argv[n] = NULL;
    struct itest_reply *r = itest_callv_r(c, argv);
    free(copy);
    return r;
}

char *itest_call(struct itest_conn *c, const char *line)
{
    struct itest_reply *r = itest_call_r(c, line);
    char *s = itest_fmt(r);
    itest_reply_free(r);
    return s;
}

char *itest_sprintf(const char *fmt, ...)
{
    static char buf[8][512];
    static int i;
    i = (i + 1) % 8;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf[i], sizeof buf[i], fmt, ap);
    va_end(ap);
    return buf[i];
}

int itest_connect_pair(int port, struct itest_conn **r2, struct itest_conn **r3)
{
    *r2 = itest_connect(port);
    *r3 = itest_connect(port);
    struct itest_reply *h = *r3 ? itest_call_r(*r3, "HELLO 3") : NULL;
    bool ok = *r2 && h && h->type == IT_MAP;
    itest_reply_free(h);
    if (!ok)
        fprintf(stderr, "itest: connecting to port %d (RESP2 + RESP3 after HELLO 3) failed\n",
                port);
    return ok ? 0 : -1;
}
