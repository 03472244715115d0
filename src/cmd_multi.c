/*
 * cmd_multi.c - Redis transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH, and the queueing
 * of commands between MULTI and EXEC (client.h, struct client_multi).
 *
 * A transaction is ONE log entry (the EXEC layout of src/ns/ns.h, built here): the state
 * machine checks the watches and runs every queued command at apply time, atomically,
 * with one revision (src/ns/ns_exec.c). So:
 *   - queueing validates each command as the front end does before proposing (arity,
 *     options, key length; write handlers run with multi.capture set and their normalized
 *     argv is captured in cmd_propose), answers +QUEUED, or an error that makes EXEC
 *     answer -EXECABORT (Redis's "flagTransaction");
 *   - reads inside MULTI (GET MGET EXISTS STRLEN TYPE DBSIZE CFG.GET) and PING/ECHO are
 *     answered at apply time, seeing the transaction's earlier writes; every other command
 *     (KEYS, SCAN, CFG.LIST, SUBSCRIBE, CFG.WATCH, CLIENT ...) cannot run inside the
 *     entry and is refused with "-ERR Command not allowed inside a transaction";
 *   - WATCH takes, after a linearizable read barrier (client.c treats it as a read), the
 *     revision of each key's group on this node; EXEC carries (key, revision) pairs and
 *     the entry aborts (null array) when a key has a newer version, deletions included;
 *   - all keys of a transaction (queued commands and watched keys) must live in one Raft
 *     group, else -CROSSSHARD;
 *   - EXEC, DISCARD, RESET and closing the connection clear the queue and the watches.
 * Limits: NS_EXEC_CMDS_MAX commands, NS_EXEC_WATCH_MAX watched keys, NS_EXEC_ARGS_MAX
 * arguments and NS_EXEC_BYTES_MAX bytes per transaction, checked while queueing.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client.h"
#include "commands.h"
#include "log.h"
#include "node.h"
#include "rc.h"
#include "server.h"

#define EXEC_HEAD_ARGS 4u /* "EXEC", format, W, C (ns.h) */
#define NUM_MAX 24        /* a decimal u64 and its NUL */

static void multi_free_queue(struct client_multi *m)
{
    for (size_t i = 0; i < m->argc; i++)
        free(m->argv[i]);
    free(m->argv);
    free(m->argvlen);
    m->argv = NULL;
    m->argvlen = NULL;
    m->argc = m->cap = 0;
    m->ncmds = 0;
    m->bytes = 0;
    m->group = CLIENT_GROUP_ANY;
    m->active = m->dirty = m->capture = false;
}

static void multi_free_watches(struct client_multi *m)
{
    for (size_t i = 0; i < m->nwatch; i++)
        free(m->watch[i].key);
    free(m->watch);
    m->watch = NULL;
    m->nwatch = m->watch_cap = 0;
}

void client_multi_reset(struct client *c)
{
    multi_free_queue(&c->multi);
    multi_free_watches(&c->multi);
}

bool client_multi_passes(const struct cmd_def *d)
{
    return d->fn == cmd_multi || d->fn == cmd_exec || d->fn == cmd_discard ||
           d->fn == cmd_watch || d->fn == cmd_quit || d->fn == cmd_reset;
}

/* ------------------------------------------------------------------ queueing */

static bool queue_reserve(struct client_multi *m, size_t more)
{
    if (m->argc + more <= m->cap)
        return true;
    size_t cap = m->cap ? m->cap : 16;
    while (cap < m->argc + more)
        cap *= 2;
    char **argv = realloc(m->argv, cap * sizeof *argv);
    if (argv)
        m->argv = argv;
    size_t *lens = argv ? realloc(m->argvlen, cap * sizeof *lens) : NULL;
    if (lens)
        m->argvlen = lens;
    if (!argv || !lens)
        return false;
    m->cap = cap;
    return true;
}

static char *dup_bytes(const void *p, size_t len)
{
    char *d = malloc(len + 1);
    if (d) {
        if (len)
            memcpy(d, p, len);
        d[len] = '\0';
    }
    return d;
}

/* Append one string to the queue (space reserved). */
static bool queue_push(struct client_multi *m, const void *p, size_t len)
{
    char *d = dup_bytes(p, len);
    if (!d)
        return false;
    m->argv[m->argc] = d;
    m->argvlen[m->argc] = len;
    m->argc++;
    m->bytes += len + 4;
    return true;
}

/* Bytes the EXEC entry's head and watches take, counted as m->bytes counts. */
static size_t head_bytes(const struct client_multi *m)
{
    size_t b = EXEC_HEAD_ARGS * (4 + NUM_MAX);
    for (size_t i = 0; i < m->nwatch; i++)
        b += m->watch[i].klen + 4 + NUM_MAX + 4;
    return b;
}

/* Would one more command of argc arguments and `bytes` bytes break a limit? */
static bool over_limits(const struct client_multi *m, int argc, size_t bytes)
{
    size_t args = EXEC_HEAD_ARGS + 2 * m->nwatch + m->argc + 1 + (size_t)argc;
    return m->ncmds >= NS_EXEC_CMDS_MAX || args > NS_EXEC_ARGS_MAX ||
           head_bytes(m) + m->bytes + bytes > NS_EXEC_BYTES_MAX;
}

void client_multi_capture(struct client *c, struct cslot *s, uint32_t group, int argc,
                          char **argv, size_t *argvlen)
{
    struct client_multi *m = &c->multi;
    if (group != CLIENT_GROUP_ANY && m->group != CLIENT_GROUP_ANY && group != m->group) {
        cmd_reply_rc(s, RC_CROSSSHARD, "keys in the transaction belong to different groups");
        m->dirty = true;
        return;
    }
    size_t bytes = 4 + NUM_MAX;
    for (int i = 0; i < argc; i++)
        bytes += argvlen[i] + 4;
    if (over_limits(m, argc, bytes)) {
        resp_w_errorf(cmd_out(s), "ERR transaction too large: at most %u commands, %u "
                      "arguments and %u bytes", NS_EXEC_CMDS_MAX, NS_EXEC_ARGS_MAX,
                      NS_EXEC_BYTES_MAX);
        m->dirty = true;
        return;
    }
    char num[NUM_MAX];
    int k = snprintf(num, sizeof num, "%d", argc);
    size_t start = m->argc, start_bytes = m->bytes;
    bool ok = queue_reserve(m, (size_t)argc + 1) && queue_push(m, num, (size_t)k);
    for (int i = 0; ok && i < argc; i++)
        ok = queue_push(m, argv[i], argvlen[i]);
    if (!ok) { /* out of memory: take the partial command back */
        while (m->argc > start)
            free(m->argv[--m->argc]);
        m->bytes = start_bytes;
        cmd_reply_rc(s, RC_NOMEM, NULL);
        m->dirty = true;
        return;
    }
    m->ncmds++;
    if (group != CLIENT_GROUP_ANY)
        m->group = group;
    resp_w_simple(cmd_out(s), "QUEUED");
}

/* The group of keys argv[first], argv[first+step] ... (up to last; negative: from the
 * end); CLIENT_GROUP_ANY when there are none. false (and -CROSSSHARD replied) if they
 * are in different groups. */
static bool keys_group_or_reply(struct client *c, struct cslot *s, int argc, char **argv,
                                size_t *argvlen, int first, int last, int step,
                                uint32_t *group)
{
    *group = CLIENT_GROUP_ANY;
    if (first <= 0)
        return true;
    int end = last < 0 ? argc + last : last;
    for (int i = first; i <= end && i < argc; i += step > 0 ? step : 1) {
        uint32_t g = node_route(c->srv->node, argv[i], argvlen[i]);
        if (*group != CLIENT_GROUP_ANY && g != *group) {
            cmd_reply_rc(s, RC_CROSSSHARD, NULL);
            return false;
        }
        *group = g;
    }
    return true;
}

/* CFG.GET key [REV r]: the checks cmd_cfg_get makes before reading. */
static bool cfg_get_ok_or_reply(struct cslot *s, int argc, char **argv, size_t *argvlen)
{
    long long v = 0;
    if (argc != 2 && argc != 4) {
        resp_w_error(cmd_out(s), "ERR syntax error");
        return false;
    }
    if (argc == 4 && strcasecmp(argv[2], "REV") != 0) {
        resp_w_error(cmd_out(s), "ERR syntax error");
        return false;
    }
    if (argc == 4 && (!cmd_parse_ll(argv[3], argvlen[3], &v) || v < 0)) {
        resp_w_error(cmd_out(s), "ERR value is not an integer or out of range");
        return false;
    }
    return true;
}

/* Commands answered inside the entry without writing (ns_exec.c's reads). */
static bool exec_read(const struct cmd_def *d)
{
    return d->fn == cmd_get || d->fn == cmd_mget || d->fn == cmd_exists ||
           d->fn == cmd_strlen || d->fn == cmd_type || d->fn == cmd_dbsize ||
           d->fn == cmd_cfg_get || d->fn == cmd_ping || d->fn == cmd_echo;
}

/* Queue a read (or PING/ECHO) under its canonical upper-case name. */
static void queue_read(struct client *c, struct cslot *s, const struct cmd_def *d, int argc,
                       char **argv, size_t *argvlen)
{
    if (d->fn == cmd_cfg_get && !cfg_get_ok_or_reply(s, argc, argv, argvlen)) {
        c->multi.dirty = true;
        return;
    }
    uint32_t group = CLIENT_GROUP_ANY;
    if (!keys_group_or_reply(c, s, argc, argv, argvlen, d->first_key, d->last_key,
                             d->key_step, &group)) {
        c->multi.dirty = true;
        return;
    }
    if (d->fn == cmd_dbsize)
        group = NODE_GROUP_DATA; /* DBSIZE counts the data group's keys */
    char name[32];
    size_t k = 0;
    for (; d->name[k] && k < sizeof name - 1; k++)
        name[k] = (char)toupper((unsigned char)d->name[k]);
    name[k] = '\0';
    char *saved = argv[0];
    size_t saved_len = argvlen[0];
    argv[0] = name;
    argvlen[0] = k;
    client_multi_capture(c, s, group, argc, argv, argvlen); /* copies argv */
    argv[0] = saved;
    argvlen[0] = saved_len;
}

void client_multi_queue(struct client *c, struct cslot *s, const struct cmd_def *d, int argc,
                        char **argv, size_t *argvlen)
{
    struct client_multi *m = &c->multi;
    if (d->flags & CMD_WRITE) {
        /* The handler validates as always and ends in cmd_propose, which captures. */
        uint32_t before = m->ncmds;
        m->capture = true;
        d->fn(c, s, argc, argv, argvlen);
        m->capture = false;
        if (s->state == SLOT_WRITING) /* a write handler that bypassed cmd_propose */
            LOG_WARNING("'%s' was proposed from inside MULTI", d->name);
        if (m->ncmds == before)
            m->dirty = true; /* the handler refused it and replied the error */
        return;
    }
    if (exec_read(d)) {
        queue_read(c, s, d, argc, argv, argvlen);
        return;
    }
    resp_w_error(cmd_out(s), "ERR Command not allowed inside a transaction");
    m->dirty = true;
}

/* ------------------------------------------------------------------ commands */

void cmd_multi(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    (void)argc, (void)argv, (void)len;
    if (c->multi.active) { /* Redis: an error, the transaction goes on */
        resp_w_error(cmd_out(s), "ERR MULTI calls can not be nested");
        return;
    }
    multi_free_queue(&c->multi);
    c->multi.active = true;
    resp_w_simple(cmd_out(s), "OK");
}

void cmd_discard(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    (void)argc, (void)argv, (void)len;
    if (!c->multi.active) {
        resp_w_error(cmd_out(s), "ERR DISCARD without MULTI");
        return;
    }
    client_multi_reset(c);
    resp_w_simple(cmd_out(s), "OK");
}

/* The group EXEC goes to: the one every queued command and watched key agrees on (the
 * data group when nothing names one). false: they disagree. */
static bool exec_group(const struct client_multi *m, uint32_t *group)
{
    uint32_t g = m->group;
    for (size_t i = 0; i < m->nwatch; i++) {
        if (g != CLIENT_GROUP_ANY && m->watch[i].group != g)
            return false;
        g = m->watch[i].group;
    }
    *group = g == CLIENT_GROUP_ANY ? NODE_GROUP_DATA : g;
    return true;
}

/* Build the EXEC entry's argv (ns.h) around the queue (borrowed) and propose it. */
static void exec_propose(struct client *c, struct cslot *s, uint32_t group)
{
    struct client_multi *m = &c->multi;
    size_t argc = EXEC_HEAD_ARGS + 2 * m->nwatch + m->argc;
    SRV_ASSERT(argc <= NS_EXEC_ARGS_MAX); /* checked while queueing */
    SRV_ASSERT(m->active);
    char **argv = malloc(argc * sizeof *argv);
    size_t *lens = malloc(argc * sizeof *lens);
    char *nums = malloc((m->nwatch + 2) * NUM_MAX);
    if (!argv || !lens || !nums) {
        free(argv), free(lens), free(nums);
        cmd_reply_rc(s, RC_NOMEM, NULL);
        return;
    }
    size_t a = 0;
    argv[a] = "EXEC", lens[a++] = 4;
    argv[a] = "1", lens[a++] = 1;
    char *num = nums;
    argv[a] = num, lens[a++] = (size_t)snprintf(num, NUM_MAX, "%zu", m->nwatch);
    for (size_t i = 0; i < m->nwatch; i++) {
        num += NUM_MAX;
        argv[a] = m->watch[i].key, lens[a++] = m->watch[i].klen;
        argv[a] = num;
        lens[a++] = (size_t)snprintf(num, NUM_MAX, "%llu", (unsigned long long)m->watch[i].rev);
    }
    num += NUM_MAX;
    argv[a] = num, lens[a++] = (size_t)snprintf(num, NUM_MAX, "%u", m->ncmds);
    for (size_t i = 0; i < m->argc; i++)
        argv[a] = m->argv[i], lens[a++] = m->argvlen[i];
    client_propose_exec(c, s, group, (int)a, argv, lens); /* node_write copies argv */
    free(argv);
    free(lens);
    free(nums);
}

void cmd_exec(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    (void)argc, (void)argv, (void)len;
    struct client_multi *m = &c->multi;
    uint32_t group = NODE_GROUP_DATA;
    if (!m->active) { /* Redis: the watches stay */
        resp_w_error(cmd_out(s), "ERR EXEC without MULTI");
        return;
    }
    if (m->dirty)
        resp_w_error(cmd_out(s), "EXECABORT Transaction discarded because of previous errors.");
    else if (!exec_group(m, &group))
        cmd_reply_rc(s, RC_CROSSSHARD, "keys in the transaction belong to different groups");
    else
        exec_propose(c, s, group);
    client_multi_reset(c); /* EXEC always ends the transaction and unwatches */
}

static bool watched(const struct client_multi *m, const char *key, size_t klen)
{
    for (size_t i = 0; i < m->nwatch; i++)
        if (m->watch[i].klen == klen && memcmp(m->watch[i].key, key, klen) == 0)
            return true;
    return false;
}

/* Runs after the read barrier on the keys' group (client.c): the revision read here is
 * at least that of every write committed before WATCH arrived. */
void cmd_watch(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    struct client_multi *m = &c->multi;
    if (m->active) {
        resp_w_error(cmd_out(s), "ERR WATCH inside MULTI is not allowed");
        return;
    }
    uint32_t group = CLIENT_GROUP_ANY;
    if (!keys_group_or_reply(c, s, argc, argv, len, 1, -1, 1, &group))
        return;
    struct ns *ns = node_ns(c->srv->node, group);
    uint64_t rev = ns ? ns_revision(ns) : 0;
    for (int i = 1; i < argc; i++) {
        if (watched(m, argv[i], len[i]))
            continue; /* the first WATCH of a key counts, as in Redis */
        if (m->nwatch >= NS_EXEC_WATCH_MAX) {
            resp_w_errorf(cmd_out(s), "ERR too many watched keys (at most %u)",
                          NS_EXEC_WATCH_MAX);
            return;
        }
        if (m->nwatch == m->watch_cap) {
            size_t cap = m->watch_cap ? m->watch_cap * 2 : 8;
            struct client_watch *w = realloc(m->watch, cap * sizeof *w);
            if (!w) {
                cmd_reply_rc(s, RC_NOMEM, NULL);
                return;
            }
            m->watch = w;
            m->watch_cap = cap;
        }
        char *key = dup_bytes(argv[i], len[i]);
        if (!key) {
            cmd_reply_rc(s, RC_NOMEM, NULL);
            return;
        }
        m->watch[m->nwatch++] = (struct client_watch){key, len[i], group, rev};
    }
    resp_w_simple(cmd_out(s), "OK");
}

void cmd_unwatch(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    (void)argc, (void)argv, (void)len;
    multi_free_watches(&c->multi);
    resp_w_simple(cmd_out(s), "OK");
}
