/*
 * workload_watch.c - the CFG.WATCH watcher of nemesis-workload and its reply parser.
 *
 * The watcher polls `CFG.WATCH <prefix> FROM <rev> BLOCK 1000` from revision 0, moving
 * FROM to the highest revision delivered; after a lost connection it reconnects (to the
 * next node) and resumes from there, which is what the gap-free-watch promise is about.
 * When the run ends it drains (polls with a short BLOCK until a poll brings nothing, at
 * most 10 s) when asked to, then writes one "watch" record with every event in delivery
 * order. -COMPACTED or an unknown command ends the stream early (said on stderr).
 *
 * The reply parser is deliberately tolerant, and the only place that knows the shape
 * (wl_watch_parse): nil or an array of entries; an entry is a flat array, either
 * name/value pairs (key|k, type|event|op, value|v, revision|rev|mod_revision, any order)
 * or positional [key, type, value, revision]; arrays of entries may be nested (an
 * XREAD-like [prefix, [entries...]]) up to depth 3. Revisions may be integers or strings.
 */
#include "workload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WATCH_DEPTH_MAX 3
#define WATCH_EVENTS_MAX 10000000

static bool is_str(const redisReply *r)
{
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

static bool name_is(const redisReply *r, const char *const *names)
{
    if (!is_str(r))
        return false;
    for (int i = 0; names[i]; i++)
        if (strcasecmp(r->str, names[i]) == 0)
            return true;
    return false;
}

static const char *const KEY_NAMES[] = {"key", "k", NULL};
static const char *const TYPE_NAMES[] = {"type", "event", "op", "kind", NULL};
static const char *const VALUE_NAMES[] = {"value", "v", NULL};
static const char *const REV_NAMES[] = {"revision", "rev", "mod_revision", NULL};

static bool rev_of(const redisReply *r, int64_t *rev)
{
    if (r && r->type == REDIS_REPLY_INTEGER) {
        *rev = r->integer;
        return true;
    }
    if (is_str(r)) {
        char *end;
        *rev = strtoll(r->str, &end, 10);
        return end != r->str && *end == 0;
    }
    return false;
}

static bool del_type(const redisReply *t)
{
    static const char *const dels[] = {"del", "delete", "deleted", "unlink", "expired", NULL};
    return name_is(t, dels);
}

/* One entry -> *e (strings borrowed from the reply). */
static bool entry_of(const redisReply *r, const redisReply **key, const redisReply **type,
                     const redisReply **value, int64_t *rev)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 3)
        return false;
    *key = *type = *value = NULL;
    const redisReply *rv = NULL;
    bool pairs = r->elements % 2 == 0;
    for (size_t i = 0; pairs && i + 1 < r->elements; i += 2) {
        const redisReply *n = r->element[i], *v = r->element[i + 1];
        if (name_is(n, KEY_NAMES))
            *key = v;
        else if (name_is(n, TYPE_NAMES))
            *type = v;
        else if (name_is(n, VALUE_NAMES))
            *value = v;
        else if (name_is(n, REV_NAMES))
            rv = v;
        else if (!is_str(n))
            pairs = false;
    }
    if (pairs && is_str(*key) && rv)
        return rev_of(rv, rev);
    if (r->elements < 4) /* positional: key, type, value, revision */
        return false;
    *key = r->element[0];
    *type = r->element[1];
    *value = r->element[2];
    return is_str(*key) && is_str(*type) && rev_of(r->element[3], rev);
}

static char *dup_reply_str(const redisReply *r)
{
    char *s = malloc(r->len + 1);
    if (s) {
        memcpy(s, r->str, r->len);
        s[r->len] = 0;
    }
    return s;
}

static int parse_list(const redisReply *r, int depth, struct wl_event **ev, size_t *n,
                      size_t *cap)
{
    int count = 0;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i], *key, *type, *value;
        int64_t rev;
        if (entry_of(e, &key, &type, &value, &rev)) {
            if (*n == *cap) {
                if (*cap >= WATCH_EVENTS_MAX)
                    return -1;
                *cap = *cap ? *cap * 2 : 256;
                *ev = realloc(*ev, *cap * sizeof **ev);
                if (!*ev)
                    abort();
            }
            struct wl_event *x = &(*ev)[(*n)++];
            x->key = dup_reply_str(key);
            x->is_del = del_type(type);
            x->value = !x->is_del && is_str(value) ? dup_reply_str(value) : NULL;
            x->rev = rev;
            count++;
        } else if (e->type == REDIS_REPLY_ARRAY && depth < WATCH_DEPTH_MAX) {
            int sub = parse_list(e, depth + 1, ev, n, cap);
            if (sub < 0)
                return -1;
            count += sub;
        } else if (!is_str(e) && e->type != REDIS_REPLY_INTEGER &&
                   e->type != REDIS_REPLY_NIL) {
            return -1;
        }
    }
    return count;
}

int wl_watch_parse(const redisReply *r, struct wl_event **ev, size_t *n, size_t *cap)
{
    if (!r || r->type == REDIS_REPLY_NIL)
        return 0;
    if (r->type != REDIS_REPLY_ARRAY)
        return -1;
    return parse_list(r, 0, ev, n, cap);
}

static void pause_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Write the record: one (possibly long) line. */
static void emit_watch(const struct wl_watcher *w, int64_t t0, const char *err,
                       const struct wl_event *ev, size_t n)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return;
    char tmp[WL_LINE_MAX];
    size_t tl = 0;
    wl_json_str(tmp, &tl, sizeof tmp, w->cfg->prefix, strlen(w->cfg->prefix));
    fprintf(f, "{\"p\":%d,\"f\":\"watch\",\"k\":%s,\"from\":0,\"t0\":%lld,\"t1\":%lld,"
               "\"r\":\"%s\",\"out\":{", w->id, tmp, (long long)t0, (long long)wl_now_ns(),
            err ? "fail" : "ok");
    if (err) {
        tl = 0;
        wl_json_str(tmp, &tl, sizeof tmp, err, strlen(err));
        fprintf(f, "\"err\":%s", tmp);
    }
    fprintf(f, "},\"events\":[");
    for (size_t i = 0; i < n; i++) {
        tl = 0;
        wl_json_str(tmp, &tl, sizeof tmp, ev[i].key, strlen(ev[i].key));
        fprintf(f, "%s{\"k\":%s,\"type\":\"%s\",\"v\":", i ? "," : "", tmp,
                ev[i].is_del ? "del" : "set");
        tl = 0;
        if (ev[i].value)
            wl_json_str(tmp, &tl, sizeof tmp, ev[i].value, strlen(ev[i].value));
        fprintf(f, "%s,\"rev\":%lld}", ev[i].value ? tmp : "null", (long long)ev[i].rev);
    }
    fprintf(f, "]}");
    fclose(f);
    (void)cap;
    wl_emit(buf);
    free(buf);
}

/* One poll; returns 1 to go on, 0 when the stream is over (drained or a fatal error). */
static int poll_once(struct wl_watcher *w, redisContext **c, int *node, int64_t *from,
                     bool stopping, struct wl_event **ev, size_t *n, size_t *cap,
                     const char **err)
{
    const struct wl_config *cfg = w->cfg;
    if (!*c && !(*c = wl_connect(cfg, *node, cfg->timeout_ms + 1500))) {
        w->stats.reconnects++;
        *node = (*node + 1) % cfg->nnodes;
        pause_ms(200);
        return 1;
    }
    redisReply *r = redisCommand(*c, "CFG.WATCH %s FROM %lld BLOCK %d", cfg->prefix,
                                 (long long)*from, stopping ? 200 : 1000);
    w->stats.polls++;
    if (!r) {
        redisFree(*c);
        *c = NULL;
        w->stats.errors++;
        *node = (*node + 1) % cfg->nnodes;
        return 1;
    }
    int rc = 1;
    if (r->type == REDIS_REPLY_ERROR) {
        w->stats.errors++;
        if (strncmp(r->str, "COMPACTED", 9) == 0 || strncasecmp(r->str, "ERR unknown", 11) == 0) {
            fprintf(stderr, "nemesis-workload: watch stopped: %s\n", r->str);
            *err = strncmp(r->str, "COMPACTED", 9) == 0 ? "COMPACTED" : "unsupported";
            rc = 0;
        } else {
            pause_ms(200);
        }
    } else {
        size_t before = *n;
        int got = wl_watch_parse(r, ev, n, cap);
        if (got < 0) {
            fprintf(stderr, "nemesis-workload: watch: reply not understood\n");
            *err = "unparsable reply";
            rc = 0;
        }
        for (size_t i = before; i < *n; i++)
            *from = (*ev)[i].rev > *from ? (*ev)[i].rev : *from;
        w->stats.events += *n - before;
        if (stopping && got == 0)
            rc = 0;
    }
    freeReplyObject(r);
    return rc;
}

void *wl_watch_run(void *arg)
{
    struct wl_watcher *w = arg;
    redisContext *c = NULL;
    struct wl_event *ev = NULL;
    size_t n = 0, cap = 0;
    int64_t from = 0, t0 = wl_now_ns(), drain_end = 0;
    int node = 0;
    const char *err = NULL;
    for (;;) {
        bool stopping = atomic_load(w->stop);
        if (stopping && !w->drain)
            break;
        if (stopping && !drain_end)
            drain_end = wl_now_ns() + 10LL * 1000000000;
        if (stopping && wl_now_ns() > drain_end)
            break;
        if (!poll_once(w, &c, &node, &from, stopping, &ev, &n, &cap, &err))
            break;
    }
    if (c)
        redisFree(c);
    emit_watch(w, t0, err, ev, n);
    for (size_t i = 0; i < n; i++) {
        free(ev[i].key);
        free(ev[i].value);
    }
    free(ev);
    return NULL;
}
