/*
 * workload.c - the nemesis suite's workload client (nemesis-workload).
 *
 *   nemesis-workload --nodes h:p,h:p,... --duration-s N --clients C --keys K --seed S
 *                    --history FILE [--timeout-ms T] [--password P] [--rate R]
 *                    [--prefix P] [--watch] [--txn] [--final]
 *
 * C client threads, each with its own hiredis connection to one node (client i starts on
 * node i mod n; after an error it reconnects, after a short random backoff, to the same
 * node or the next one), run random operations from the seed for N seconds, at most R
 * ops/s each (default 200; 0 = as fast as the server answers): GET or CFG.GET, SET of a
 * unique value, CFG.SET IFVERSION (the version from the client's last look at the key),
 * DEL (rare), MULTI/EXEC of two SETs (--txn). --watch adds one CFG.WATCH watcher.
 * Keys are <prefix>k000.. (default prefix /nem/<seed>/); they must not exist when the run
 * starts (the checker's model starts empty), else it refuses to run.
 * --final reads every key once more after the run (CFG.GET, retried on any node for up to
 * 30 s per key; the first key that gets no answer ends them), recorded with p = -1.
 * Every completed operation is one JSON line of the history (tests/fault/HISTORY.md); a
 * write that timed out or lost its connection is "unknown", a read that did is recorded
 * "unknown" too (the checker ignores it).
 * Prints one summary line: ops by type and outcome. Exit 0, or 2 on bad usage,
 * I/O errors, existing keys, or a final read that got no answer.
 */
#include "workload.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { OP_GET, OP_SET, OP_CAS, OP_DEL, OP_TXN, OP__N };
enum { R_OK, R_FAIL, R_UNKNOWN, R__N };
static const char *const op_name[OP__N] = {"get", "set", "cas", "del", "txn"};
static const char *const r_name[R__N] = {"ok", "fail", "unknown"};

static FILE *hist_f;
static pthread_mutex_t hist_mu = PTHREAD_MUTEX_INITIALIZER;

struct client {
    const struct wl_config *cfg;
    int id, node;
    uint64_t rng, seq;
    redisContext *c;
    int64_t *last_ver;          /* per key: version seen last (CFG.GET, cas, del) */
    uint64_t count[OP__N][R__N];
    uint64_t reconnects;
    int64_t end_ns;
};

int64_t wl_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ns(int64_t ns)
{
    if (ns <= 0)
        return;
    struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void wl_emit(const char *line)
{
    pthread_mutex_lock(&hist_mu);
    fputs(line, hist_f);
    fputc('\n', hist_f);
    pthread_mutex_unlock(&hist_mu);
}

void wl_json_str(char *buf, size_t *len, size_t cap, const char *s, size_t n)
{
    size_t l = *len;
    if (l + 2 >= cap)
        return;
    buf[l++] = '"';
    for (size_t i = 0; i < n && l + 8 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            buf[l++] = '\\';
            buf[l++] = (char)ch;
        } else if (ch < 0x20 || ch >= 0x7f) {
            l += (size_t)snprintf(buf + l, cap - l, "\\u%04x", ch);
        } else {
            buf[l++] = (char)ch;
        }
    }
    buf[l++] = '"';
    buf[l] = 0;
    *len = l;
}

redisContext *wl_connect(const struct wl_config *cfg, int node, int timeout_ms)
{
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(cfg->nodes[node].host, cfg->nodes[node].port, tv);
    if (!c || c->err) {
        if (c)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    if (cfg->password) {
        redisReply *r = redisCommand(c, "AUTH %s", cfg->password);
        bool ok = r && r->type == REDIS_REPLY_STATUS;
        if (r)
            freeReplyObject(r);
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

/* ---- one operation's record ---- */

struct rec {
    char buf[WL_LINE_MAX];
    size_t len;
};

static void rec_add(struct rec *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void rec_add(struct rec *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(r->buf + r->len, sizeof r->buf - r->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        r->len = r->len + (size_t)n < sizeof r->buf ? r->len + (size_t)n : sizeof r->buf - 1;
}

static void rec_str(struct rec *r, const char *s, size_t n)
{
    wl_json_str(r->buf, &r->len, sizeof r->buf, s, n);
}

static void rec_begin(struct rec *r, int p, int op, const char *key, const char *val)
{
    r->len = 0;
    rec_add(r, "{\"p\":%d,\"f\":\"%s\",\"k\":", p, op_name[op]);
    rec_str(r, key, strlen(key));
    rec_add(r, ",\"v\":");
    if (val)
        rec_str(r, val, strlen(val));
    else
        rec_add(r, "null");
}

static void rec_end(struct rec *r, int64_t t0, int64_t t1, int outcome, const char *out)
{
    rec_add(r, ",\"t0\":%lld,\"t1\":%lld,\"r\":\"%s\",\"out\":{%s}}", (long long)t0,
            (long long)t1, r_name[outcome], out);
    wl_emit(r->buf);
}

/* Outcome of a write answered with an error (HISTORY.md): fail only when the server
 * guarantees the write did not apply. */
static int error_outcome(const char *err)
{
    static const char *const definite[] = {
        "VERSION", "TRYAGAIN", "NOQUORUM", "MOVED", "BUSY", "CROSSSHARD", "WRONGTYPE",
        "SCHEMA", "NOPERM", "ERR syntax", "ERR wrong number", "ERR unknown command", NULL};
    for (int i = 0; definite[i]; i++)
        if (strncmp(err, definite[i], strlen(definite[i])) == 0)
            return R_FAIL;
    return R_UNKNOWN;
}

/* The error's first word, JSON-quoted, into out as "err":"WORD". */
static void err_out(char *out, size_t cap, const char *err)
{
    size_t n = strcspn(err, " ");
    size_t len = (size_t)snprintf(out, cap, "\"err\":");
    wl_json_str(out, &len, cap, err, n < 32 ? n : 32);
}

static void drop_conn(struct client *cl)
{
    if (cl->c) {
        redisFree(cl->c);
        cl->c = NULL;
    }
}

static bool ensure_conn(struct client *cl)
{
    while (!cl->c && wl_now_ns() < cl->end_ns) {
        cl->c = wl_connect(cl->cfg, cl->node, cl->cfg->timeout_ms);
        if (cl->c)
            return true;
        cl->reconnects++;
        sleep_ns((int64_t)(50 + rnd(&cl->rng) % 200) * 1000000);
        if (rnd(&cl->rng) % 2)
            cl->node = (cl->node + 1) % cl->cfg->nnodes;
    }
    return cl->c != NULL;
}

/* After a reply-less command: the connection is dead; reconnect later. */
static void conn_failed(struct client *cl)
{
    drop_conn(cl);
    cl->reconnects++;
    sleep_ns((int64_t)(50 + rnd(&cl->rng) % 200) * 1000000);
    if (rnd(&cl->rng) % 2)
        cl->node = (cl->node + 1) % cl->cfg->nnodes;
}

/* Field `name` of a flat name/value array (RESP2 map), or NULL. */
static const redisReply *field(const redisReply *r, const char *name)
{
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i];
        if ((k->type == REDIS_REPLY_STRING || k->type == REDIS_REPLY_STATUS) &&
            strcmp(k->str, name) == 0)
            return r->element[i + 1];
    }
    return NULL;
}

static int64_t int_of(const redisReply *r)
{
    if (!r)
        return -1;
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer;
    if (r->type == REDIS_REPLY_STRING)
        return strtoll(r->str, NULL, 10);
    return -1;
}

/* ---- operations ---- */

static void finish(struct client *cl, struct rec *r, int op, int64_t t0, int outcome,
                   const char *out, redisReply *rep)
{
    rec_end(r, t0, wl_now_ns(), outcome, out);
    cl->count[op][outcome]++;
    if (rep)
        freeReplyObject(rep);
    else
        conn_failed(cl);
}

static void op_get(struct client *cl, const char *key, int ki)
{
    bool cfg_get = rnd(&cl->rng) % 2;
    struct rec r;
    char out[WL_LINE_MAX] = "";
    size_t ol = 0;
    int outcome = R_OK;
    rec_begin(&r, cl->id, OP_GET, key, NULL);
    int64_t t0 = wl_now_ns();
    redisReply *rep = redisCommand(cl->c, cfg_get ? "CFG.GET %s" : "GET %s", key);
    const redisReply *v = NULL;
    if (!rep) {
        outcome = R_UNKNOWN;
    } else if (rep->type == REDIS_REPLY_ERROR) {
        outcome = R_FAIL;
        err_out(out, sizeof out, rep->str);
    } else if (rep->type == REDIS_REPLY_NIL) {
        snprintf(out, sizeof out, cfg_get ? "\"v\":null,\"ver\":0" : "\"v\":null");
        cl->last_ver[ki] = cfg_get ? 0 : cl->last_ver[ki];
    } else if ((v = cfg_get ? field(rep, "value") : rep) && v->type == REDIS_REPLY_STRING) {
        ol = (size_t)snprintf(out, sizeof out, "\"v\":");
        wl_json_str(out, &ol, sizeof out, v->str, v->len);
        int64_t ver = cfg_get ? int_of(field(rep, "version")) : -1;
        if (ver >= 0) {
            snprintf(out + ol, sizeof out - ol, ",\"ver\":%lld", (long long)ver);
            cl->last_ver[ki] = ver;
        }
    } else {
        outcome = R_FAIL;
        snprintf(out, sizeof out, "\"err\":\"unexpected reply type %d\"", rep->type);
    }
    finish(cl, &r, OP_GET, t0, outcome, out, rep);
}

static void op_set(struct client *cl, const char *key, const char *val)
{
    struct rec r;
    char out[256] = "";
    int outcome = R_OK;
    rec_begin(&r, cl->id, OP_SET, key, val);
    int64_t t0 = wl_now_ns();
    redisReply *rep = redisCommand(cl->c, "SET %s %s", key, val);
    if (!rep) {
        outcome = R_UNKNOWN;
    } else if (rep->type == REDIS_REPLY_ERROR) {
        outcome = error_outcome(rep->str);
        err_out(out, sizeof out, rep->str);
    } else if (rep->type != REDIS_REPLY_STATUS) {
        outcome = R_UNKNOWN;
        snprintf(out, sizeof out, "\"err\":\"unexpected reply type %d\"", rep->type);
    }
    finish(cl, &r, OP_SET, t0, outcome, out, rep);
}

static void op_cas(struct client *cl, const char *key, int ki, const char *val)
{
    struct rec r;
    char out[256] = "";
    int outcome = R_OK;
    int64_t want = cl->last_ver[ki] >= 0 ? cl->last_ver[ki] : 0;
    rec_begin(&r, cl->id, OP_CAS, key, val);
    rec_add(&r, ",\"ver\":%lld", (long long)want);
    int64_t t0 = wl_now_ns();
    redisReply *rep = redisCommand(cl->c, "CFG.SET %s %s IFVERSION %lld", key, val,
                                   (long long)want);
    if (!rep) {
        outcome = R_UNKNOWN;
    } else if (rep->type == REDIS_REPLY_ERROR) {
        const char *cur = strstr(rep->str, "current version is ");
        outcome = error_outcome(rep->str);
        if (strncmp(rep->str, "VERSION", 7) == 0 && cur) {
            long long now_ver = strtoll(cur + 19, NULL, 10);
            snprintf(out, sizeof out, "\"err\":\"VERSION\",\"cur\":%lld", now_ver);
            cl->last_ver[ki] = now_ver;
        } else {
            err_out(out, sizeof out, rep->str);
        }
    } else if (rep->type == REDIS_REPLY_ARRAY && int_of(field(rep, "version")) > 0) {
        int64_t ver = int_of(field(rep, "version"));
        snprintf(out, sizeof out, "\"ver\":%lld,\"rev\":%lld", (long long)ver,
                 (long long)int_of(field(rep, "revision")));
        cl->last_ver[ki] = ver;
    } else {
        outcome = R_UNKNOWN;
        snprintf(out, sizeof out, "\"err\":\"unexpected reply type %d\"", rep->type);
    }
    finish(cl, &r, OP_CAS, t0, outcome, out, rep);
}

static void op_del(struct client *cl, const char *key, int ki)
{
    struct rec r;
    char out[256] = "";
    int outcome = R_OK;
    rec_begin(&r, cl->id, OP_DEL, key, NULL);
    int64_t t0 = wl_now_ns();
    redisReply *rep = redisCommand(cl->c, "DEL %s", key);
    if (!rep) {
        outcome = R_UNKNOWN;
    } else if (rep->type == REDIS_REPLY_ERROR) {
        outcome = error_outcome(rep->str);
        err_out(out, sizeof out, rep->str);
    } else if (rep->type == REDIS_REPLY_INTEGER) {
        snprintf(out, sizeof out, "\"n\":%lld", (long long)rep->integer);
        cl->last_ver[ki] = 0;
    } else {
        outcome = R_UNKNOWN;
    }
    finish(cl, &r, OP_DEL, t0, outcome, out, rep);
}

/* MULTI / SET k1 v1 / SET k2 v2 / EXEC, pipelined. A server without MULTI answers it with
 * an error and runs the SETs on their own: then they are recorded as two sets. */
static void op_txn(struct client *cl, const char *k1, const char *v1, const char *k2,
                   const char *v2)
{
    struct rec r;
    char out[256] = "";
    int outcome = R_OK;
    redisReply *rep[4] = {0};
    int got = 0;
    int64_t t0 = wl_now_ns();
    redisAppendCommand(cl->c, "MULTI");
    redisAppendCommand(cl->c, "SET %s %s", k1, v1);
    redisAppendCommand(cl->c, "SET %s %s", k2, v2);
    redisAppendCommand(cl->c, "EXEC");
    while (got < 4 && redisGetReply(cl->c, (void **)&rep[got]) == REDIS_OK)
        got++;
    if (got >= 1 && rep[0]->type == REDIS_REPLY_ERROR) { /* no MULTI: plain SETs */
        for (int i = 1; i <= 2; i++) {
            rec_begin(&r, cl->id, OP_SET, i == 1 ? k1 : k2, i == 1 ? v1 : v2);
            int o = i >= got ? R_UNKNOWN
                    : rep[i]->type == REDIS_REPLY_STATUS ? R_OK
                    : rep[i]->type == REDIS_REPLY_ERROR ? error_outcome(rep[i]->str) : R_UNKNOWN;
            rec_end(&r, t0, wl_now_ns(), o, "");
            cl->count[OP_SET][o]++;
        }
        cl->count[OP_TXN][R_FAIL]++;
    } else {
        rec_begin(&r, cl->id, OP_TXN, k1, v1);
        rec_add(&r, ",\"k2\":");
        rec_str(&r, k2, strlen(k2));
        rec_add(&r, ",\"v2\":");
        rec_str(&r, v2, strlen(v2));
        const redisReply *ex = got == 4 ? rep[3] : NULL;
        if (!ex) {
            outcome = R_UNKNOWN;
        } else if (ex->type == REDIS_REPLY_NIL) {
            outcome = R_FAIL;
        } else if (ex->type == REDIS_REPLY_ERROR) {
            outcome = strncmp(ex->str, "EXECABORT", 9) == 0 ? R_FAIL : error_outcome(ex->str);
            err_out(out, sizeof out, ex->str);
        } else if (ex->type != REDIS_REPLY_ARRAY || ex->elements != 2 ||
                   ex->element[0]->type != REDIS_REPLY_STATUS ||
                   ex->element[1]->type != REDIS_REPLY_STATUS) {
            outcome = R_UNKNOWN;
        }
        rec_end(&r, t0, wl_now_ns(), outcome, out);
        cl->count[OP_TXN][outcome]++;
    }
    for (int i = 0; i < got; i++)
        freeReplyObject(rep[i]);
    if (got < 4)
        conn_failed(cl);
}

static void *client_run(void *arg)
{
    struct client *cl = arg;
    const struct wl_config *cfg = cl->cfg;
    int64_t gap_ns = cfg->rate > 0 ? 1000000000LL / cfg->rate : 0;
    int64_t next = wl_now_ns();
    char key[256], key2[256], val[64], val2[64];
    while (wl_now_ns() < cl->end_ns) {
        next += gap_ns;
        sleep_ns(next - wl_now_ns());
        if (!ensure_conn(cl))
            break;
        int ki = (int)(rnd(&cl->rng) % (uint64_t)cfg->keys);
        snprintf(key, sizeof key, "%sk%03d", cfg->prefix, ki);
        snprintf(val, sizeof val, "%llu.%d.%llu", (unsigned long long)cfg->seed, cl->id,
                 (unsigned long long)++cl->seq);
        int dice = (int)(rnd(&cl->rng) % 100);
        if (dice < 40) {
            op_get(cl, key, ki);
        } else if (dice < 65 || (dice >= 90 && !cfg->txn)) {
            op_set(cl, key, val);
        } else if (dice < 87) {
            op_cas(cl, key, ki, val);
        } else if (dice < 90) {
            op_del(cl, key, ki);
        } else {
            int k2 = (int)((ki + 1 + rnd(&cl->rng) % (uint64_t)(cfg->keys - 1)) %
                           (uint64_t)cfg->keys);
            snprintf(key2, sizeof key2, "%sk%03d", cfg->prefix, k2);
            snprintf(val2, sizeof val2, "%llu.%d.%llu", (unsigned long long)cfg->seed,
                     cl->id, (unsigned long long)++cl->seq);
            op_txn(cl, key, val, key2, val2);
        }
    }
    drop_conn(cl);
    return NULL;
}

/* After the run: one linearizable read of every key, on any node that answers. */
static int final_reads(const struct wl_config *cfg)
{
    int done = 0, node = 0;
    redisContext *c = NULL;
    char key[256];
    for (int ki = 0; ki < cfg->keys; ki++) {
        snprintf(key, sizeof key, "%sk%03d", cfg->prefix, ki);
        int64_t deadline = wl_now_ns() + 30LL * 1000000000;
        while (wl_now_ns() < deadline) {
            if (!c && !(c = wl_connect(cfg, node, cfg->timeout_ms))) {
                node = (node + 1) % cfg->nnodes;
                sleep_ns(200000000);
                continue;
            }
            struct rec r;
            rec_begin(&r, -1, OP_GET, key, NULL);
            int64_t t0 = wl_now_ns();
            redisReply *rep = redisCommand(c, "CFG.GET %s", key);
            int64_t t1 = wl_now_ns();
            const redisReply *v = rep ? field(rep, "value") : NULL;
            char out[WL_LINE_MAX];
            size_t ol = 0;
            if (rep && rep->type == REDIS_REPLY_NIL) {
                snprintf(out, sizeof out, "\"v\":null,\"ver\":0");
            } else if (v && v->type == REDIS_REPLY_STRING) {
                ol = (size_t)snprintf(out, sizeof out, "\"v\":");
                wl_json_str(out, &ol, sizeof out, v->str, v->len);
                snprintf(out + ol, sizeof out - ol, ",\"ver\":%lld",
                         (long long)int_of(field(rep, "version")));
            } else {
                if (rep)
                    freeReplyObject(rep);
                redisFree(c);
                c = NULL;
                node = (node + 1) % cfg->nnodes;
                sleep_ns(200000000);
                continue;
            }
            freeReplyObject(rep);
            rec_end(&r, t0, t1, R_OK, out);
            done++;
            break;
        }
        if (done <= ki) { /* 30 s without an answer: the cluster is down, stop here */
            fprintf(stderr, "nemesis-workload: final read of %s: no node answered in 30 s\n",
                    key);
            break;
        }
    }
    if (c)
        redisFree(c);
    return done;
}

/* The checker's model starts from an empty keyspace: refuse to run on keys that exist
 * (a cluster reused from an earlier run). Returns 0, or -1 (said on stderr). */
static int check_fresh(const struct wl_config *cfg)
{
    char key[256];
    int64_t deadline = wl_now_ns() + 30LL * 1000000000;
    int node = 0;
    for (int ki = 0; ki < cfg->keys; ki++) {
        snprintf(key, sizeof key, "%sk%03d", cfg->prefix, ki);
        for (;;) {
            redisContext *c = wl_connect(cfg, node, cfg->timeout_ms);
            redisReply *r = c ? redisCommand(c, "EXISTS %s", key) : NULL;
            long long n = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
            if (r)
                freeReplyObject(r);
            if (c)
                redisFree(c);
            if (n == 0)
                break;
            if (n > 0) {
                fprintf(stderr, "nemesis-workload: %s already exists: the history must start "
                                "from an empty keyspace (fresh cluster, or another --prefix)\n",
                        key);
                return -1;
            }
            if (wl_now_ns() > deadline) {
                fprintf(stderr, "nemesis-workload: no node answered EXISTS %s\n", key);
                return -1;
            }
            node = (node + 1) % cfg->nnodes;
            sleep_ns(200000000);
        }
    }
    return 0;
}

/* ---- command line ---- */

static void usage(void)
{
    fprintf(stderr, "usage: nemesis-workload --nodes h:p,h:p,... --duration-s N --clients C "
                    "--keys K --seed S --history FILE [--timeout-ms T] [--password P] "
                    "[--rate R] [--prefix P] [--watch] [--txn] [--final]\n");
    exit(2);
}

static int parse_nodes(struct wl_config *cfg, const char *arg)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", arg);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *colon = strrchr(t, ':');
        if (!colon || cfg->nnodes == WL_NODES_MAX)
            return -1;
        *colon = 0;
        struct wl_node *n = &cfg->nodes[cfg->nnodes++];
        snprintf(n->host, sizeof n->host, "%s", t);
        n->port = atoi(colon + 1);
        if (n->port <= 0 || n->port > 65535)
            return -1;
    }
    return cfg->nnodes > 0 ? 0 : -1;
}

static long long num(const char *s, long long lo, long long hi)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*end || v < lo || v > hi)
        usage();
    return v;
}

static void parse_args(struct wl_config *cfg, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        bool flag = strcmp(a, "--watch") == 0 || strcmp(a, "--txn") == 0 ||
                    strcmp(a, "--final") == 0;
        if (!flag && !next)
            usage();
        if (strcmp(a, "--watch") == 0)
            cfg->watch = true;
        else if (strcmp(a, "--txn") == 0)
            cfg->txn = true;
        else if (strcmp(a, "--final") == 0)
            cfg->final = true;
        else if (strcmp(a, "--nodes") == 0 && parse_nodes(cfg, next) != 0)
            usage();
        else if (strcmp(a, "--nodes") == 0)
            ;
        else if (strcmp(a, "--duration-s") == 0)
            cfg->duration_s = (int)num(next, 0, 86400);
        else if (strcmp(a, "--clients") == 0)
            cfg->clients = (int)num(next, 1, 1000);
        else if (strcmp(a, "--keys") == 0)
            cfg->keys = (int)num(next, 2, 100000);
        else if (strcmp(a, "--seed") == 0)
            cfg->seed = (uint64_t)num(next, 0, INT64_MAX);
        else if (strcmp(a, "--timeout-ms") == 0)
            cfg->timeout_ms = (int)num(next, 10, 600000);
        else if (strcmp(a, "--rate") == 0)
            cfg->rate = (int)num(next, 0, 1000000);
        else if (strcmp(a, "--history") == 0)
            cfg->history = next;
        else if (strcmp(a, "--password") == 0)
            cfg->password = next;
        else if (strcmp(a, "--prefix") == 0)
            cfg->prefix = next;
        else
            usage();
        i += !flag;
    }
    if (!cfg->nnodes || !cfg->history)
        usage();
}

int main(int argc, char **argv)
{
    struct wl_config cfg = {.duration_s = 10, .clients = 4, .keys = 10, .timeout_ms = 3000,
                            .rate = 200};
    parse_args(&cfg, argc, argv);
    char prefix[128];
    if (!cfg.prefix) {
        snprintf(prefix, sizeof prefix, "/nem/%llu/", (unsigned long long)cfg.seed);
        cfg.prefix = prefix;
    }
    if (check_fresh(&cfg) != 0)
        return 2;
    if (!(hist_f = fopen(cfg.history, "w"))) {
        fprintf(stderr, "nemesis-workload: cannot write %s: %s\n", cfg.history,
                strerror(errno));
        return 2;
    }
    int64_t start = wl_now_ns(), end = start + (int64_t)cfg.duration_s * 1000000000;
    struct client *cls = calloc((size_t)cfg.clients, sizeof *cls);
    pthread_t *th = calloc((size_t)cfg.clients, sizeof *th);
    atomic_bool stop = false;
    struct wl_watcher w = {.cfg = &cfg, .id = 1000, .stop = &stop, .drain = cfg.final};
    pthread_t wth;
    if (cfg.watch)
        pthread_create(&wth, NULL, wl_watch_run, &w);
    for (int i = 0; i < cfg.clients; i++) {
        cls[i] = (struct client){.cfg = &cfg, .id = i, .node = i % cfg.nnodes,
                                 .rng = cfg.seed * 1000003 + (uint64_t)i, .end_ns = end};
        cls[i].last_ver = calloc((size_t)cfg.keys, sizeof *cls[i].last_ver);
        pthread_create(&th[i], NULL, client_run, &cls[i]);
    }
    uint64_t total[OP__N][R__N] = {{0}}, reconnects = 0;
    for (int i = 0; i < cfg.clients; i++) {
        pthread_join(th[i], NULL);
        for (int o = 0; o < OP__N; o++)
            for (int r = 0; r < R__N; r++)
                total[o][r] += cls[i].count[o][r];
        reconnects += cls[i].reconnects;
        free(cls[i].last_ver);
    }
    int finals = cfg.final ? final_reads(&cfg) : 0;
    atomic_store(&stop, true);
    if (cfg.watch)
        pthread_join(wth, NULL);
    uint64_t n = 0;
    printf("workload: seed=%llu clients=%d keys=%d duration=%.1fs",
           (unsigned long long)cfg.seed, cfg.clients, cfg.keys,
           (double)(wl_now_ns() - start) / 1e9);
    for (int o = 0; o < OP__N; o++) {
        printf(" %s=%llu/%llu/%llu", op_name[o], (unsigned long long)total[o][R_OK],
               (unsigned long long)total[o][R_FAIL], (unsigned long long)total[o][R_UNKNOWN]);
        n += total[o][R_OK] + total[o][R_FAIL] + total[o][R_UNKNOWN];
    }
    printf(" (ok/fail/unknown) ops=%llu final=%d/%d watch_events=%llu reconnects=%llu\n",
           (unsigned long long)n, finals, cfg.final ? cfg.keys : 0,
           (unsigned long long)w.stats.events, (unsigned long long)reconnects);
    free(cls);
    free(th);
    bool io_ok = fclose(hist_f) == 0;
    return io_ok && (!cfg.final || finals == cfg.keys) ? 0 : 2;
}
