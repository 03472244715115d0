/*
 * config.c - the option table and its three front ends (file, flags, CONFIG SET); see
 * config.h. Each row names the option, its type, where it lives in struct srv_config, its
 * bounds and default (as text, parsed by the same code as user input, so a default can
 * never bypass a check), and whether CONFIG SET may change it at run time.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

enum opt_type { T_UINT, T_SIZE, T_BOOL, T_STR, T_LOGLEVEL, T_OBUF, T_FIXED };

struct opt {
    const char *name;
    uint8_t type;
    bool runtime; /* CONFIG SET allowed */
    size_t off;
    uint64_t min, max;
    const char *def; /* default (text), or the fixed answer of a T_FIXED row */
};

#define OFF(f) offsetof(struct srv_config, f)
#define GB (1024ull * 1024 * 1024)
static const struct opt opts[] = {
    {"port", T_UINT, false, OFF(port), 1, 55535, "6379"},
    {"bind", T_STR, false, OFF(bind), 0, 0, "127.0.0.1"},
    {"dir", T_STR, false, OFF(dir), 0, 0, "./data"},
    {"requirepass", T_STR, true, OFF(requirepass), 0, 0, ""},
    {"maxclients", T_UINT, true, OFF(maxclients), 1, 100000, "10000"},
    {"timeout", T_UINT, true, OFF(timeout_s), 0, 31536000, "0"},
    {"tcp-backlog", T_UINT, false, OFF(tcp_backlog), 1, 65535, "511"},
    {"loglevel", T_LOGLEVEL, true, OFF(loglevel), 0, 3, "notice"},
    {"logfile", T_STR, false, OFF(logfile), 0, 0, ""},
    {"max-value-size", T_SIZE, false, OFF(max_value_size), 1, 512ull * 1024 * 1024, "1mb"},
    {"proto-max-bulk-len", T_SIZE, false, OFF(proto_max_bulk_len), 1024 * 1024,
     512ull * 1024 * 1024, "512mb"},
    {"client-query-buffer-limit", T_SIZE, true, OFF(client_query_buffer_limit), 1024 * 1024,
     GB, "64mb"},
    {"client-output-buffer-limit", T_OBUF, true, OFF(client_output_buffer_limit), 0, 4 * GB,
     "64mb"},
    {"node-id", T_UINT, false, OFF(node_id), 1, UINT32_MAX, "1"},
    {"tick-ms", T_UINT, false, OFF(tick_ms), 1, 10000, "50"},
    {"election-ticks", T_UINT, false, OFF(election_ticks), 2, 1000, "5"},
    {"heartbeat-ticks", T_UINT, false, OFF(heartbeat_ticks), 1, 1000, "1"},
    {"request-timeout-ms", T_UINT, false, OFF(request_timeout_ms), 10, 600000, "5000"},
    {"snapshot-entries", T_UINT, false, OFF(snapshot_entries), 0, UINT32_MAX, "10000"},
    {"initial-cluster", T_STR, false, OFF(initial_cluster), 0, 0, ""},
    {"cluster-port", T_UINT, false, OFF(cluster_port), 0, 65535, "0"},
    {"cluster-secret", T_STR, false, OFF(cluster_secret), 0, 0, ""},
    {"enable-flushall", T_BOOL, true, OFF(enable_flushall), 0, 0, "no"},
    {"history-max-versions", T_UINT, false, OFF(history_max_versions), 1, 1000000, "100"},
    {"audit-max-records", T_UINT, false, OFF(audit_max_records), 1, 1000000000, "1000000"},
    {"audit-file", T_STR, false, OFF(audit_file), 0, 0, ""},
    {"notify-keyspace-events", T_STR, true, OFF(notify_keyspace_events), 0, 0, ""},
    {"snapshots-max", T_UINT, false, OFF(snapshots_max), 1, 1000000, "1000"},
    {"rollback-max-keys", T_UINT, false, OFF(rollback_max_keys), 1, 100000000, "100000"},
    {"daemonize", T_BOOL, false, OFF(daemonize), 0, 0, "no"},
    /* Redis compatibility, read-only: tools ask for these (redis-benchmark asks "save"
     * and "appendonly"). Every write is in a log fsync'd before the reply, which is what
     * appendonly yes + appendfsync always promise; there are no RDB snapshots. */
    {"save", T_FIXED, false, 0, 0, 0, ""},
    {"appendonly", T_FIXED, false, 0, 0, 0, "yes"},
    {"appendfsync", T_FIXED, false, 0, 0, 0, "always"},
    {"databases", T_FIXED, false, 0, 0, 0, "1"},
};
#define N_OPTS (sizeof opts / sizeof opts[0])

static const struct opt *find_opt(const char *name)
{
    for (size_t i = 0; i < N_OPTS; i++)
        if (strcasecmp(opts[i].name, name) == 0)
            return &opts[i];
    return NULL;
}

int config_parse_size(const char *s, uint64_t *out)
{
    if (!s[0] || !isdigit((unsigned char)s[0]))
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -1;
    uint64_t mul = 1;
    if (!*end || strcasecmp(end, "b") == 0)
        mul = 1;
    else if (strcasecmp(end, "k") == 0)
        mul = 1000;
    else if (strcasecmp(end, "kb") == 0)
        mul = 1024;
    else if (strcasecmp(end, "m") == 0)
        mul = 1000 * 1000;
    else if (strcasecmp(end, "mb") == 0)
        mul = 1024 * 1024;
    else if (strcasecmp(end, "g") == 0)
        mul = 1000ull * 1000 * 1000;
    else if (strcasecmp(end, "gb") == 0)
        mul = GB;
    else
        return -1;
    if (v > UINT64_MAX / mul)
        return -1;
    *out = v * mul;
    return 0;
}

/* client-output-buffer-limit: one size (our hard limit), or Redis's form
 * "normal <hard> <soft> <seconds> [replica ...] [pubsub ...]" of which the normal class's
 * hard limit is used. */
static int parse_obuf(const char *v, uint64_t *out)
{
    if (config_parse_size(v, out) == 0)
        return 0;
    char cls[16], hard[32];
    const char *p = strcasestr(v, "normal");
    if (!p || sscanf(p, "%15s %31s", cls, hard) != 2)
        return -1;
    return config_parse_size(hard, out);
}

/* Numeric options: T_UINT takes digits only, T_SIZE units too, T_OBUF either form. */
static int set_number(struct srv_config *c, const struct opt *o, const char *value, char *err,
                      size_t errlen)
{
    uint64_t v = 0;
    size_t n = strlen(value);
    int bad = o->type == T_OBUF   ? parse_obuf(value, &v)
              : o->type == T_SIZE ? config_parse_size(value, &v)
                                  : n == 0 || !isdigit((unsigned char)value[n - 1]) ||
                                        config_parse_size(value, &v);
    if (bad || v < o->min || v > o->max) {
        snprintf(err, errlen, "invalid value '%s' for '%s' (must be %s %" PRIu64 "..%" PRIu64
                 ")", value, o->name, o->type == T_UINT ? "an integer in" : "a size in",
                 o->min, o->max);
        return -1;
    }
    *(uint64_t *)((char *)c + o->off) = v;
    return 0;
}

static int set_opt(struct srv_config *c, const struct opt *o, const char *value, char *err,
                   size_t errlen)
{
    char *base = (char *)c;
    switch (o->type) {
    case T_UINT:
    case T_SIZE:
    case T_OBUF:
        return set_number(c, o, value, err, errlen);
    case T_BOOL:
        if (strcasecmp(value, "yes") != 0 && strcasecmp(value, "no") != 0) {
            snprintf(err, errlen, "invalid value '%s' for '%s' (must be yes or no)", value,
                     o->name);
            return -1;
        }
        *(bool *)(base + o->off) = strcasecmp(value, "yes") == 0;
        return 0;
    case T_LOGLEVEL: {
        int l = log_level_parse(value);
        if (l < 0) {
            snprintf(err, errlen, "invalid value '%s' for 'loglevel' (must be debug, "
                     "verbose, notice or warning)", value);
            return -1;
        }
        *(uint64_t *)(base + o->off) = (uint64_t)l;
        return 0;
    }
    case T_STR: {
        if (o->off == OFF(notify_keyspace_events) &&
            strspn(value, "KEg$lshzxetmdnA") != strlen(value)) {
            snprintf(err, errlen, "invalid value '%s' for 'notify-keyspace-events' (Redis "
                     "flag letters: K E g $ A ...)", value);
            return -1;
        }
        char *dup = strdup(value);
        if (!dup) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        char **slot = (char **)(base + o->off);
        free(*slot);
        *slot = dup;
        return 0;
    }
    case T_FIXED:
        if (strcasecmp(value, o->def) == 0)
            return 0; /* setting the only supported value is harmless (redis.conf reuse) */
        snprintf(err, errlen, "'%s' is fixed to '%s' in raftconf", o->name, o->def);
        return -1;
    default:
        break;
    }
    snprintf(err, errlen, "internal: bad option type");
    return -1;
}

void config_init(struct srv_config *c)
{
    memset(c, 0, sizeof *c);
    char err[256];
    for (size_t i = 0; i < N_OPTS; i++) {
        if (opts[i].type == T_FIXED)
            continue;
        int rc = set_opt(c, &opts[i], opts[i].def, err, sizeof err);
        if (rc != 0) { /* a bad default is a programmer error */
            fprintf(stderr, "config default: %s\n", err);
            abort();
        }
    }
}

void config_free(struct srv_config *c)
{
    free(c->bind);
    free(c->dir);
    free(c->requirepass);
    free(c->logfile);
    free(c->initial_cluster);
    free(c->cluster_secret);
    free(c->audit_file);
    free(c->notify_keyspace_events);
    memset(c, 0, sizeof *c);
}

int config_set(struct srv_config *c, const char *name, const char *value, char *err,
               size_t errlen)
{
    const struct opt *o = find_opt(name);
    if (!o) {
        snprintf(err, errlen, "unknown option '%s'", name);
        return -1;
    }
    return set_opt(c, o, value, err, errlen);
}

/* Split a config line into at most 3 words (name, value, extra) with double quotes and
 * backslash escapes inside quotes. Returns the word count or -1 (unbalanced quotes). */
static int split_line(char *line, char **w, int wmax, char *buf, size_t buflen)
{
    int n = 0;
    size_t bo = 0;
    char *p = line;
    for (;;) {
        while (*p && isspace((unsigned char)*p))
            p++;
        if (!*p || *p == '#')
            return n;
        if (n == wmax)
            return n + 1;
        w[n++] = buf + bo;
        if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1])
                    p++;
                if (bo + 1 < buflen)
                    buf[bo++] = *p;
                p++;
            }
            if (*p != '"')
                return -1;
            p++;
        } else {
            while (*p && !isspace((unsigned char)*p) && bo + 1 < buflen)
                buf[bo++] = *p++;
        }
        buf[bo++] = '\0';
    }
}

int config_load_file(struct srv_config *c, const char *path, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    char line[4096], words[4096], why[512];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, fp)) {
        lineno++;
        char *w[3];
        int n = split_line(line, w, 2, words, sizeof words);
        if (n == 0)
            continue;
        if (n < 0)
            snprintf(why, sizeof why, "unbalanced quotes");
        else if (n == 1)
            snprintf(why, sizeof why, "option '%s' needs a value", w[0]);
        else if (n > 2 && !find_opt(w[0]))
            snprintf(why, sizeof why, "unknown option '%s'", w[0]);
        else if (n > 2 && strcasecmp(w[0], "client-output-buffer-limit") != 0)
            snprintf(why, sizeof why, "option '%s' takes one value", w[0]);
        else if (n > 2)
            continue; /* Redis's multi-class client-output-buffer-limit lines: see docs */
        else if (config_set(c, w[0], w[1], why, sizeof why) == 0)
            continue;
        snprintf(err, errlen, "%s:%d: %s", path, lineno, why);
        rc = -1;
        break;
    }
    fclose(fp);
    return rc;
}

int config_load_args(struct srv_config *c, int argc, char **argv, int first, char *err,
                     size_t errlen)
{
    char why[512];
    for (int i = first; i < argc; i += 2) {
        if (strncmp(argv[i], "--", 2) != 0 || !argv[i][2]) {
            snprintf(err, errlen, "argument '%s': expected --option value", argv[i]);
            return -1;
        }
        if (i + 1 >= argc) {
            snprintf(err, errlen, "option '%s' needs a value", argv[i]);
            return -1;
        }
        if (config_set(c, argv[i] + 2, argv[i + 1], why, sizeof why) != 0) {
            snprintf(err, errlen, "command line: %s", why);
            return -1;
        }
    }
    return 0;
}

/* One "id=host:port[@cport]" item of --initial-cluster. */
static int parse_member(const char *item, size_t len, struct config_member *m, char *err,
                        size_t errlen)
{
    char buf[256];
    if (len >= sizeof buf) {
        snprintf(err, errlen, "initial-cluster: entry too long");
        return -1;
    }
    memcpy(buf, item, len);
    buf[len] = '\0';
    char *eq = strchr(buf, '='), *colon = strrchr(buf, ':'), *at = strchr(buf, '@');
    char *end = NULL;
    unsigned long long id = eq ? strtoull(buf, &end, 10) : 0;
    if (!eq || end != eq || id == 0 || id > UINT32_MAX || !colon || colon < eq) {
        snprintf(err, errlen, "initial-cluster: bad entry '%s' (want id=host:port or "
                 "id=host:port@cport, id 1..%u)", buf, UINT32_MAX);
        return -1;
    }
    size_t hlen = (size_t)(colon - eq - 1);
    unsigned long long port = strtoull(colon + 1, &end, 10), cport = port + 10000;
    if (at && end == at)
        cport = strtoull(at + 1, &end, 10);
    if (hlen == 0 || hlen > CONFIG_HOST_MAX || *end || port == 0 || port > 65535 ||
        cport == 0 || cport > 65535) {
        snprintf(err, errlen, "initial-cluster: bad address in '%s'", buf);
        return -1;
    }
    m->id = id;
    memcpy(m->host, eq + 1, hlen);
    m->host[hlen] = '\0';
    m->port = (uint32_t)port;
    m->cport = (uint32_t)cport;
    return 0;
}

int config_parse_cluster(const char *spec, struct config_member *out, size_t cap, size_t *n,
                         char *err, size_t errlen)
{
    *n = 0;
    for (const char *p = spec; *p;) {
        size_t len = strcspn(p, ",");
        if (len > 0) {
            if (*n == cap) {
                snprintf(err, errlen, "initial-cluster: more than %zu members", cap);
                return -1;
            }
            if (parse_member(p, len, &out[*n], err, errlen) != 0)
                return -1;
            for (size_t i = 0; i < *n; i++)
                if (out[i].id == out[*n].id) {
                    snprintf(err, errlen, "initial-cluster: id %" PRIu64 " appears twice",
                             out[i].id);
                    return -1;
                }
            (*n)++;
        }
        p += len + (p[len] == ',');
    }
    return 0;
}

int config_validate(const struct srv_config *c, char *err, size_t errlen)
{
    struct config_member m[CONFIG_CLUSTER_MAX];
    size_t n = 0;
    if (config_parse_cluster(c->initial_cluster, m, CONFIG_CLUSTER_MAX, &n, err, errlen) != 0)
        return -1;
    bool self_only = n == 0 || (n == 1 && m[0].id == c->node_id);
    if (!self_only && !c->cluster_secret[0]) {
        snprintf(err, errlen, "cluster-secret is required when initial-cluster names other "
                 "members (every member must use the same secret)");
        return -1;
    }
    if (c->heartbeat_ticks >= c->election_ticks) {
        snprintf(err, errlen, "heartbeat-ticks (%" PRIu64 ") must be below election-ticks "
                 "(%" PRIu64 ")", c->heartbeat_ticks, c->election_ticks);
        return -1;
    }
    if (c->daemonize) {
        snprintf(err, errlen, "daemonize yes is not supported (run under a supervisor)");
        return -1;
    }
    if (c->max_value_size > c->proto_max_bulk_len) {
        snprintf(err, errlen, "max-value-size must not exceed proto-max-bulk-len");
        return -1;
    }
    return 0;
}

const char *config_name_at(size_t i) { return i < N_OPTS ? opts[i].name : NULL; }

void config_format(const struct srv_config *c, size_t i, char *buf, size_t buflen)
{
    const struct opt *o = &opts[i];
    const char *base = (const char *)c;
    switch (o->type) {
    case T_UINT:
    case T_SIZE:
        snprintf(buf, buflen, "%" PRIu64, *(const uint64_t *)(base + o->off));
        break;
    case T_OBUF: {
        uint64_t v = *(const uint64_t *)(base + o->off);
        snprintf(buf, buflen, "normal %" PRIu64 " 0 0", v);
        break;
    }
    case T_BOOL:
        snprintf(buf, buflen, "%s", *(const bool *)(base + o->off) ? "yes" : "no");
        break;
    case T_LOGLEVEL:
        snprintf(buf, buflen, "%s", log_level_name((int)*(const uint64_t *)(base + o->off)));
        break;
    case T_STR: {
        const char *s = *(char *const *)(base + o->off);
        if (o->off == OFF(cluster_secret) && s && s[0])
            s = "(set)"; /* never handed out to clients */
        snprintf(buf, buflen, "%s", s ? s : "");
        break;
    }
    default:
        snprintf(buf, buflen, "%s", o->def);
        break;
    }
}

bool config_runtime_settable(const char *name)
{
    const struct opt *o = find_opt(name);
    return o && o->runtime;
}
