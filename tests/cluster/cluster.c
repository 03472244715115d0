/*
 * cluster.c - start/stop a real raftconf cluster on 127.0.0.1, the proxy between its peers,
 * writer threads and checks. See cluster.h for the invariants (free ports, stop by PID and
 * reap, bounded waits, spawn from the main thread only).
 */
#include "cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../integration/helper.h"

#define PING_TIMEOUT_MS 15000
#define CTL_TIMEOUT_MS 3000

long cl_now_ms(void) { return itest_now_ms(); }

void cl_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

bool cl_san(void)
{
    const char *s = getenv("SAN");
    return s && strcmp(s, "1") == 0;
}

int cl_election_ms(const struct cluster *c) { return c->tick_ms * c->election_ticks; }

unsigned cl_all(const struct cluster *c) { return (1u << c->n) - 1; }

int cl_index(const struct cluster *c, int id)
{
    for (int i = 0; i < c->n; i++)
        if (c->node[i].id == id)
            return i;
    return -1;
}

static const char *proxy_bin(void)
{
    static char path[512];
    const char *b = getenv("RAFTCONF_BUILD");
    snprintf(path, sizeof path, "%s/tcpproxy", (b && *b) ? b : "build");
    return path;
}

/* ---------------------------------------------------------------- processes */

static pid_t spawn_argv(const char *const *argv, const char *log, int *in_fd, int *out_fd)
{
    int pin[2] = {-1, -1}, pout[2] = {-1, -1};
    if (in_fd && (pipe(pin) != 0 || pipe(pout) != 0))
        return -1;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            if (!in_fd)
                dup2(fd, 1);
            close(fd);
        }
        if (in_fd) {
            dup2(pin[0], 0);
            dup2(pout[1], 1);
            close(pin[0]), close(pin[1]), close(pout[0]), close(pout[1]);
        } else {
            int nul = open("/dev/null", O_RDONLY);
            if (nul >= 0)
                dup2(nul, 0), close(nul);
        }
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    if (in_fd) {
        close(pin[0]);
        close(pout[1]);
        *in_fd = pin[1];
        *out_fd = pout[0];
    }
    return pid;
}

static void reap(pid_t *pid, int sig)
{
    if (*pid <= 0)
        return;
    kill(*pid, sig);
    if (sig == SIGKILL)
        kill(*pid, SIGCONT);
    int st;
    waitpid(*pid, &st, 0);
    *pid = 0;
}

/* The proxy: one route per ordered pair (i, j), i != j, listening on a kernel-picked port
 * and forwarding to j's real cluster port. */
static int proxy_start(struct cluster *c)
{
    const char *argv[2 + CL_MAX * CL_MAX];
    static char spec[CL_MAX * CL_MAX][32];
    int n = 0, r = 0;
    argv[n++] = proxy_bin();
    for (int i = 0; i < c->n; i++)
        for (int j = 0; j < c->n; j++) {
            c->route[i][j] = -1;
            if (i == j)
                continue;
            snprintf(spec[r], sizeof spec[r], "0:%d", c->node[j].cport);
            argv[n++] = spec[r];
            c->route[i][j] = r++;
        }
    argv[n] = NULL;
    char log[400];
    snprintf(log, sizeof log, "%s/proxy.log", c->root);
    int in_fd, out_fd;
    c->proxy_pid = spawn_argv(argv, log, &in_fd, &out_fd);
    if (c->proxy_pid <= 0)
        return -1;
    c->pin = fdopen(in_fd, "w");
    c->pout = fdopen(out_fd, "r");
    char line[1024];
    if (!fgets(line, sizeof line, c->pout) || strncmp(line, "ports", 5) != 0) {
        fprintf(stderr, "ctest: proxy %s did not start\n", proxy_bin());
        return -1;
    }
    char *p = line + 5;
    for (int i = 0; i < c->n; i++)
        for (int j = 0; j < c->n; j++)
            if (c->route[i][j] >= 0)
                c->rport[i][j] = (int)strtol(p, &p, 10);
    return 0;
}

int cl_proxy(struct cluster *c, const char *fmt, ...)
{
    if (!c->pin)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(c->pin, fmt, ap);
    va_end(ap);
    fputc('\n', c->pin);
    fflush(c->pin);
    char line[256];
    while (fgets(line, sizeof line, c->pout)) {
        if (strncmp(line, "ok", 2) == 0)
            return 0;
        if (strncmp(line, "err", 3) == 0) {
            fprintf(stderr, "ctest: proxy: %s", line);
            return -1;
        }
    }
    return -1;
}

int cl_isolate(struct cluster *c, int i, const char *mode)
{
    int rc = 0;
    for (int j = 0; j < c->n; j++) {
        if (j == i || c->route[i][j] < 0)
            continue;
        rc |= cl_proxy(c, "%s %d both", mode, c->route[i][j]);
        rc |= cl_proxy(c, "%s %d both", mode, c->route[j][i]);
    }
    return rc;
}

int cl_mute(struct cluster *c, int i, const char *mode)
{
    int rc = 0;
    for (int j = 0; j < c->n; j++)
        if (j != i && c->route[i][j] >= 0)
            rc |= cl_proxy(c, "%s %d up", mode, c->route[i][j]);
    return rc;
}

int cl_heal_all(struct cluster *c) { return cl_proxy(c, "pass * both"); }

/* --initial-cluster as node `viewer` sees it: its own entry plain (cluster port derived),
 * the others through the proxy when there is one. */
static void initial_cluster(const struct cluster *c, int viewer, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (int j = 0; j < c->n_initial; j++) {
        const struct cl_node *nd = &c->node[j];
        if (c->proxied && viewer < c->n_initial && j != viewer)
            n += (size_t)snprintf(out + n, cap - n, "%s%d=127.0.0.1:%d@%d", j ? "," : "",
                                  nd->id, nd->port, c->rport[viewer][j]);
        else
            n += (size_t)snprintf(out + n, cap - n, "%s%d=127.0.0.1:%d", j ? "," : "",
                                  nd->id, nd->port);
    }
}

static bool ping_ok(struct cluster *c, int i)
{
    redisReply *r = cl_cmd(c, i, 1000, "PING");
    bool ok = r && r->type == REDIS_REPLY_STATUS;
    if (r)
        freeReplyObject(r);
    return ok;
}

int cl_start_node_with(struct cluster *c, int i, const char *const *more)
{
    struct cl_node *nd = &c->node[i];
    char port[16], id[16], tick[16], elect[16], rto[16], ic[1024];
    const char *argv[64];
    int n = 0;
    snprintf(port, sizeof port, "%d", nd->port);
    snprintf(id, sizeof id, "%d", nd->id);
    snprintf(tick, sizeof tick, "%d", c->tick_ms);
    snprintf(elect, sizeof elect, "%d", c->election_ticks);
    snprintf(rto, sizeof rto, "%d", c->request_timeout_ms);
    initial_cluster(c, i, ic, sizeof ic);
    argv[n++] = itest_bin();
    const char *fixed[] = {"--port", port, "--bind", "127.0.0.1", "--dir", nd->dir,
                           "--node-id", id, "--cluster-secret", c->secret,
                           "--initial-cluster", ic, "--tick-ms", tick,
                           "--election-ticks", elect, "--request-timeout-ms", rto};
    for (size_t k = 0; k < sizeof fixed / sizeof fixed[0]; k++)
        argv[n++] = fixed[k];
    for (int k = 0; k < CL_EXTRA_MAX && c->extra[k] && n < 50; k++)
        argv[n++] = c->extra[k];
    for (int k = 0; more && more[k] && n < 62; k++)
        argv[n++] = more[k];
    argv[n] = NULL;
    if (c->ctl[i]) {
        redisFree(c->ctl[i]);
        c->ctl[i] = NULL;
    }
    nd->pid = spawn_argv(argv, nd->log, NULL, NULL);
    nd->paused = false;
    if (nd->pid <= 0) {
        nd->pid = 0;
        return -1;
    }
    long t0 = cl_now_ms();
    while (cl_now_ms() - t0 < PING_TIMEOUT_MS) {
        int st;
        if (waitpid(nd->pid, &st, WNOHANG) == nd->pid) {
            nd->pid = 0;
            fprintf(stderr, "ctest: node %d exited at start (status %d)\n", nd->id, st);
            return -1;
        }
        if (ping_ok(c, i))
            return 0;
        cl_sleep_ms(20);
    }
    fprintf(stderr, "ctest: node %d did not answer PING\n", nd->id);
    return -1;
}

int cl_start_node(struct cluster *c, int i) { return cl_start_node_with(c, i, NULL); }

int cl_add_node(struct cluster *c)
{
    if (c->n >= CL_MAX)
        return -1;
    int i = c->n;
    struct cl_node *nd = &c->node[i];
    memset(nd, 0, sizeof *nd);
    nd->id = i + 1;
    nd->port = itest_free_port();
    if (nd->port <= 0)
        return -1;
    /* a port already handed to another node (the kernel may pick it twice) */
    for (int j = 0; j < i; j++)
        if (c->node[j].port == nd->port || abs(c->node[j].port - nd->port) == 10000)
            return cl_add_node(c);
    nd->cport = nd->port + 10000;
    snprintf(nd->dir, sizeof nd->dir, "%s/n%d", c->root, nd->id);
    snprintf(nd->log, sizeof nd->log, "%s/n%d.log", c->root, nd->id);
    if (mkdir(nd->dir, 0755) != 0)
        return -1;
    c->n++;
    return 0;
}

static void defaults(struct cluster *c)
{
    c->tick_ms = cl_san() ? 100 : 50;
    c->election_ticks = 10;
    c->request_timeout_ms = cl_san() ? 4000 : 2000;
    const char *e;
    if ((e = getenv("CTEST_TICK_MS")) && atoi(e) > 0)
        c->tick_ms = atoi(e);
    if ((e = getenv("CTEST_ELECTION_TICKS")) && atoi(e) > 1)
        c->election_ticks = atoi(e);
}

int cl_start(struct cluster *c, int n, bool proxied, const char *const *extra)
{
    memset(c, 0, sizeof *c);
    /* a write to a killed node's socket or to a dead proxy must be an error, not death */
    signal(SIGPIPE, SIG_IGN);
    defaults(c);
    snprintf(c->root, sizeof c->root, "/tmp/rc-ctest-XXXXXX");
    if (!mkdtemp(c->root))
        return -1;
    itest_rand_token(c->secret, 24);
    for (int k = 0; extra && extra[k] && k < CL_EXTRA_MAX - 1; k++)
        c->extra[k] = extra[k];
    for (int i = 0; i < n; i++)
        if (cl_add_node(c) != 0)
            return -1;
    c->n_initial = n;
    c->proxied = proxied;
    if (proxied && proxy_start(c) != 0)
        return -1;
    for (int i = 0; i < n; i++)
        if (cl_start_node(c, i) != 0) {
            cl_dump(c, 30);
            return -1;
        }
    if (cl_wait_leader(c, cl_all(c), 20000) < 0) {
        fprintf(stderr, "ctest: no leader elected in 20 s\n");
        cl_dump(c, 30);
        return -1;
    }
    return 0;
}

bool cl_running(struct cluster *c, int i) { return c->node[i].pid > 0; }

void cl_kill9(struct cluster *c, int i)
{
    reap(&c->node[i].pid, SIGKILL);
    c->node[i].paused = false;
}

int cl_term(struct cluster *c, int i, int timeout_ms)
{
    struct cl_node *nd = &c->node[i];
    if (nd->pid <= 0)
        return 0;
    kill(nd->pid, SIGTERM);
    long t0 = cl_now_ms();
    while (cl_now_ms() - t0 < timeout_ms) {
        int st;
        if (waitpid(nd->pid, &st, WNOHANG) == nd->pid) {
            nd->pid = 0;
            return st;
        }
        cl_sleep_ms(10);
    }
    fprintf(stderr, "ctest: node %d ignored SIGTERM for %d ms\n", nd->id, timeout_ms);
    reap(&nd->pid, SIGKILL);
    return -1;
}

void cl_pause(struct cluster *c, int i)
{
    if (c->node[i].pid > 0 && kill(c->node[i].pid, SIGSTOP) == 0)
        c->node[i].paused = true;
}

void cl_resume(struct cluster *c, int i)
{
    if (c->node[i].pid > 0)
        kill(c->node[i].pid, SIGCONT);
    c->node[i].paused = false;
}

void cl_dump(const struct cluster *c, int lines)
{
    for (int i = 0; i < c->n; i++) {
        char cmd[400];
        fprintf(stderr, "---- node %d log (%s) ----\n", c->node[i].id, c->node[i].log);
        snprintf(cmd, sizeof cmd, "tail -n %d '%s' 1>&2", lines, c->node[i].log);
        if (system(cmd) != 0)
            fprintf(stderr, "(no log)\n");
    }
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

void cl_destroy(struct cluster *c)
{
    for (int i = 0; i < c->n; i++) {
        reap(&c->node[i].pid, SIGKILL);
        if (c->ctl[i])
            redisFree(c->ctl[i]);
        c->ctl[i] = NULL;
    }
    if (c->pin)
        fclose(c->pin);
    if (c->pout)
        fclose(c->pout);
    c->pin = c->pout = NULL;
    reap(&c->proxy_pid, SIGKILL);
    if (c->root[0] && strncmp(c->root, "/tmp/rc-ctest-", 14) == 0 && !getenv("CTEST_KEEP"))
        nftw(c->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    c->root[0] = '\0';
    c->n = 0;
}

/* ---------------------------------------------------------------- clients */

redisContext *cl_connect(struct cluster *c, int i, int timeout_ms)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *r = redisConnectWithTimeout("127.0.0.1", c->node[i].port, tv);
    if (!r || r->err) {
        if (r)
            redisFree(r);
        return NULL;
    }
    redisSetTimeout(r, tv);
    return r;
}

static redisReply *vcmd(struct cluster *c, int i, int timeout_ms, const char *fmt, va_list ap)
{
    if (c->node[i].pid <= 0 && !c->ctl[i])
        return NULL;
    if (!c->ctl[i])
        c->ctl[i] = cl_connect(c, i, timeout_ms);
    if (!c->ctl[i])
        return NULL;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisSetTimeout(c->ctl[i], tv);
    redisReply *r = redisvCommand(c->ctl[i], fmt, ap);
    if (!r) {
        redisFree(c->ctl[i]);
        c->ctl[i] = NULL;
    }
    return r;
}

redisReply *cl_cmd(struct cluster *c, int i, int timeout_ms, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = vcmd(c, i, timeout_ms, fmt, ap);
    va_end(ap);
    return r;
}

const char *cl_fmt(const redisReply *r, char *buf, size_t cap)
{
    if (!r) {
        snprintf(buf, cap, "<none>");
        return buf;
    }
    switch (r->type) {
    case REDIS_REPLY_STATUS: snprintf(buf, cap, "+%s", r->str); break;
    case REDIS_REPLY_ERROR: snprintf(buf, cap, "-%s", r->str); break;
    case REDIS_REPLY_STRING: snprintf(buf, cap, "\"%s\"", r->str); break;
    case REDIS_REPLY_NIL: snprintf(buf, cap, "$nil"); break;
    case REDIS_REPLY_INTEGER: snprintf(buf, cap, ":%lld", r->integer); break;
    case REDIS_REPLY_ARRAY: {
        size_t n = (size_t)snprintf(buf, cap, "[");
        for (size_t k = 0; k < r->elements && n < cap; k++) {
            char e[256];
            n += (size_t)snprintf(buf + n, cap - n, "%s%s", k ? ", " : "",
                                  cl_fmt(r->element[k], e, sizeof e));
        }
        if (n < cap)
            snprintf(buf + n, cap - n, "]");
        break;
    }
    default: snprintf(buf, cap, "<type %d>", r->type);
    }
    return buf;
}

const char *cl_cmd_s(struct cluster *c, int i, int timeout_ms, char *buf, size_t cap,
                     const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = vcmd(c, i, timeout_ms, fmt, ap);
    va_end(ap);
    cl_fmt(r, buf, cap);
    if (r)
        freeReplyObject(r);
    return buf;
}

static bool field_of(const char *text, const char *field, char *out, size_t cap)
{
    size_t fl = strlen(field);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, field, fl) == 0 && p[fl] == ':') {
            const char *v = p + fl + 1;
            size_t n = strcspn(v, "\r\n");
            snprintf(out, cap, "%.*s", (int)n, v);
            return true;
        }
    }
    return false;
}

bool cl_info(struct cluster *c, int i, const char *section, const char *field, char *out,
             size_t cap)
{
    out[0] = '\0';
    redisReply *r = cl_cmd(c, i, CTL_TIMEOUT_MS, "INFO %s", section);
    bool ok = r && r->type == REDIS_REPLY_STRING;
    if (ok)
        field_of(r->str, field, out, cap);
    if (r)
        freeReplyObject(r);
    return ok;
}

bool cl_is_unavailable_err(const char *text)
{
    return strncmp(text, "-TRYAGAIN", 9) == 0 || strncmp(text, "-NOQUORUM", 9) == 0 ||
           strncmp(text, "-TIMEOUT", 8) == 0;
}

/* One round: each running node in mask reports role, term, leader id. */
static int leader_round(struct cluster *c, unsigned mask)
{
    int votes[CL_MAX + 1] = {0}, responding = 0, best = -1;
    bool is_leader[CL_MAX] = {false};
    for (int i = 0; i < c->n; i++) {
        if (!(mask & (1u << i)) || c->node[i].pid <= 0 || c->node[i].paused)
            continue;
        char role[32], leader[32];
        if (!cl_info(c, i, "raft", "role", role, sizeof role))
            continue;
        cl_info(c, i, "raft", "leader", leader, sizeof leader);
        responding++;
        is_leader[i] = strcmp(role, "leader") == 0;
        int li = cl_index(c, atoi(leader));
        if (li >= 0)
            votes[li]++;
    }
    for (int i = 0; i < c->n; i++)
        if (is_leader[i] && votes[i] * 2 > responding && (best < 0 || votes[i] > votes[best]))
            best = i;
    return best;
}

int cl_wait_leader(struct cluster *c, unsigned mask, int timeout_ms)
{
    long t0 = cl_now_ms();
    do {
        int l = leader_round(c, mask);
        if (l >= 0)
            return l;
        cl_sleep_ms(25);
    } while (cl_now_ms() - t0 < timeout_ms);
    return -1;
}

/* ---------------------------------------------------------------- writers */

static int next_node(struct cl_writer *w, int from)
{
    for (int k = 1; k <= w->c->n; k++) {
        int i = (from + k) % w->c->n;
        if (w->mask & (1u << i))
            return i;
    }
    return from;
}

static void record(struct cl_writer *w, const char *key, const char *val, long sent,
                   int outcome, const char *err)
{
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 1024;
        w->w = realloc(w->w, w->cap * sizeof *w->w);
    }
    struct cl_write *e = &w->w[w->n];
    snprintf(e->key, sizeof e->key, "%s", key);
    snprintf(e->val, sizeof e->val, "%s", val);
    e->sent_ms = sent;
    e->done_ms = cl_now_ms();
    e->outcome = outcome;
    e->node = w->node;
    __atomic_store_n(&w->n, w->n + 1, __ATOMIC_RELEASE);
    if (outcome == CLW_OK)
        w->n_ok++;
    else if (outcome == CLW_ERROR)
        w->n_err++;
    else
        w->n_unknown++;
    if (outcome != CLW_OK && !w->first_err[0])
        snprintf(w->first_err, sizeof w->first_err, "%s (node %d, %s)", err,
                 w->c->node[w->node].id, key);
}

static void *writer_main(void *arg)
{
    struct cl_writer *w = arg;
    redisContext *rc = NULL;
    unsigned long long seq = 0, salt = (unsigned long long)cl_now_ms() * 7919u + (unsigned)w->tid;
    while (!w->stop && w->n < 500000) {
        if (!(w->mask & (1u << w->node))) {
            if (rc)
                redisFree(rc);
            rc = NULL;
            w->node = next_node(w, w->node);
        }
        if (!rc) {
            rc = cl_connect(w->c, w->node, w->timeout_ms);
            if (!rc) {
                w->node = next_node(w, w->node);
                cl_sleep_ms(20);
                continue;
            }
        }
        char key[40], val[48];
        snprintf(key, sizeof key, "%s-%d-%llu", w->prefix, w->tid, seq);
        snprintf(val, sizeof val, "v%d-%llu-%llx", w->tid, seq, salt ^ (seq * 2654435761u));
        seq++;
        long sent = cl_now_ms();
        redisReply *r = redisCommand(rc, "SET %s %s", key, val);
        if (!r) {
            record(w, key, val, sent, CLW_UNKNOWN, rc->errstr);
            redisFree(rc);
            rc = NULL;
            w->node = next_node(w, w->node);
            continue;
        }
        if (r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0)
            record(w, key, val, sent, CLW_OK, "");
        else {
            char f[160];
            record(w, key, val, sent, CLW_ERROR, cl_fmt(r, f, sizeof f));
        }
        freeReplyObject(r);
        if (w->pause_ms)
            cl_sleep_ms(w->pause_ms);
    }
    if (rc)
        redisFree(rc);
    return NULL;
}

void cl_writer_start(struct cl_writer *w, struct cluster *c, int tid, const char *prefix,
                     unsigned mask, int timeout_ms)
{
    memset(w, 0, sizeof *w);
    w->c = c;
    w->tid = tid;
    w->prefix = prefix;
    w->mask = mask;
    w->timeout_ms = timeout_ms;
    w->node = tid % c->n;
    if (!(mask & (1u << w->node)))
        w->node = next_node(w, w->node);
    pthread_create(&w->th, NULL, writer_main, w);
}

void cl_writer_stop(struct cl_writer *w)
{
    if (!w->c || w->stop)
        return;
    w->stop = true;
    pthread_join(w->th, NULL);
}

void cl_writer_free(struct cl_writer *w)
{
    cl_writer_stop(w);
    free(w->w);
    w->w = NULL;
    w->n = w->cap = 0;
}

static long check_batch(redisContext *rc, struct cl_write **batch, size_t nb, int node_id)
{
    long bad = 0;
    for (size_t k = 0; k < nb; k++)
        redisAppendCommand(rc, "GET %s", batch[k]->key);
    for (size_t k = 0; k < nb; k++) {
        redisReply *r = NULL;
        if (redisGetReply(rc, (void **)&r) != REDIS_OK || !r)
            return -1;
        if (r->type != REDIS_REPLY_STRING || strcmp(r->str, batch[k]->val) != 0) {
            if (bad < 5) {
                char f[160];
                fprintf(stderr, "ctest: node %d: acknowledged SET %s %s: GET answers %s\n",
                        node_id, batch[k]->key, batch[k]->val, cl_fmt(r, f, sizeof f));
            }
            bad++;
        }
        freeReplyObject(r);
    }
    return bad;
}

long cl_check_acked(struct cluster *c, int i, struct cl_writer *ws, int nw)
{
    redisContext *rc = cl_connect(c, i, 10000);
    if (!rc)
        return -1;
    struct cl_write *batch[256];
    size_t nb = 0;
    long bad = 0;
    for (int t = 0; t < nw; t++)
        for (size_t k = 0; k < ws[t].n; k++) {
            if (ws[t].w[k].outcome != CLW_OK)
                continue;
            batch[nb++] = &ws[t].w[k];
            if (nb == 256) {
                long b = check_batch(rc, batch, nb, c->node[i].id);
                if (b < 0) {
                    redisFree(rc);
                    return -1;
                }
                bad += b;
                nb = 0;
            }
        }
    long b = nb ? check_batch(rc, batch, nb, c->node[i].id) : 0;
    redisFree(rc);
    return b < 0 ? -1 : bad + b;
}

bool cl_wait_value(struct cluster *c, int i, const char *key, const char *want,
                   int timeout_ms)
{
    long t0 = cl_now_ms();
    do {
        redisReply *r = cl_cmd(c, i, 2000, "GET %s", key);
        bool ok = r && ((want && r->type == REDIS_REPLY_STRING && strcmp(r->str, want) == 0) ||
                        (!want && r->type == REDIS_REPLY_NIL));
        if (r)
            freeReplyObject(r);
        if (ok)
            return true;
        cl_sleep_ms(50);
    } while (cl_now_ms() - t0 < timeout_ms);
    return false;
}

/* ---------------------------------------------------------------- membership commands */

/* A command line split on spaces, on node i's control connection. */
static redisReply *cmd_line(struct cluster *c, int i, int timeout_ms, const char *line)
{
    char copy[512], *save = NULL;
    const char *argv[32];
    int argc = 0;
    snprintf(copy, sizeof copy, "%s", line);
    for (char *t = strtok_r(copy, " ", &save); t && argc < 32; t = strtok_r(NULL, " ", &save))
        argv[argc++] = t;
    if (!c->ctl[i])
        c->ctl[i] = cl_connect(c, i, timeout_ms);
    if (!c->ctl[i])
        return NULL;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisSetTimeout(c->ctl[i], tv);
    redisReply *r = redisCommandArgv(c->ctl[i], argc, argv, NULL);
    if (!r) {
        redisFree(c->ctl[i]);
        c->ctl[i] = NULL;
    }
    return r;
}

const char *cl_admin(struct cluster *c, char *buf, size_t cap, const char *cmd)
{
    long t0 = cl_now_ms();
    int i = cl_wait_leader(c, cl_all(c), 10000);
    if (i < 0)
        i = 0;
    snprintf(buf, cap, "<no node answered>");
    while (cl_now_ms() - t0 < 15000) {
        redisReply *r = cmd_line(c, i, c->request_timeout_ms + 3000, cmd);
        cl_fmt(r, buf, cap);
        bool moved = r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "MOVED ", 6) == 0;
        int port = 0;
        if (moved) {
            const char *colon = strrchr(r->str, ':');
            port = colon ? atoi(colon + 1) : 0;
        }
        bool again = r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "TRYAGAIN", 8) == 0;
        if (r)
            freeReplyObject(r);
        if (moved) {
            for (int k = 0; k < c->n; k++)
                if (c->node[k].port == port)
                    i = k;
            continue;
        }
        if (!again)
            return buf;
        cl_sleep_ms(100);
    }
    return buf;
}
