/*
 * audit_sink.c - the apply observer of the service (audit file sink, keyspace
 * notifications, CFG.WATCH wake-ups) and the JSON helpers of the audit trail; see
 * audit_sink.h for the file's guarantees.
 *
 * Keyspace notifications (option notify-keyspace-events, Redis flag letters): for every
 * key change of an applied entry, on the node that applies it, "K" publishes the event
 * ("set" or "del") on __keyspace@0__:<key> and "E" publishes the key on
 * __keyevent@0__:<event>; "$" enables set events, "g" del events, "A" both. Read at every
 * entry, so CONFIG SET takes effect at once.
 */
#include "audit_sink.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "ns/ns.h"
#include "pubsub.h"
#include "rc.h"
#include "server.h"

#define TAIL_CHUNK (64u * 1024)
#define WATCH_TICK_MS 10

/* ------------------------------------------------------------------ JSON */

/* A JSON string of bytes when they are UTF-8; else {"hex": "..."}. NULL bytes: null. */
static json_t *json_bytes(const char *p, size_t n, bool present)
{
    if (!present)
        return json_null();
    json_t *s = json_stringn(p ? p : "", n);
    if (s)
        return s;
    char *hex = malloc(2 * n + 1);
    if (!hex)
        return NULL;
    for (size_t i = 0; i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", (unsigned char)p[i]);
    json_t *o = json_pack("{s:s}", "hex", hex);
    free(hex);
    return o;
}

static json_t *changes_json(const struct ns_audit_rec *a)
{
    json_t *arr = json_array();
    size_t off = 0;
    struct ns_audit_change c;
    while (arr && ns_audit_change_next(a, &off, &c)) {
        json_t *o = json_object();
        if (!o)
            break;
        json_object_set_new(o, "key", json_bytes(c.key, c.klen, true));
        json_object_set_new(o, "op", json_string(c.present ? "set" : "del"));
        json_object_set_new(o, "old", json_bytes(c.old, c.old_len, c.had_old));
        json_object_set_new(o, "new", json_bytes(c.val, c.vlen, c.present));
        json_object_set_new(o, "version", json_integer((json_int_t)c.version));
        char **paths = NULL;
        size_t np = 0;
        json_t *pj = json_null();
        if (c.had_old && c.present &&
            audit_json_paths(c.old, c.old_len, c.val, c.vlen, &paths, &np)) {
            json_decref(pj);
            pj = json_array();
            for (size_t i = 0; pj && i < np; i++)
                json_array_append_new(pj, json_string(paths[i]));
            audit_paths_free(paths, np);
        }
        json_object_set_new(o, "paths", pj);
        json_array_append_new(arr, o);
    }
    return arr;
}

char *audit_rec_json(uint32_t group, const struct ns_audit_rec *a)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    char h1[17], h2[17];
    snprintf(h1, sizeof h1, "%016" PRIx64, a->prev_hash);
    snprintf(h2, sizeof h2, "%016" PRIx64, a->hash);
    /* "group" and "revision" first: the sink reads them back from the last line. */
    json_object_set_new(o, "group", json_integer(group));
    json_object_set_new(o, "revision", json_integer((json_int_t)a->revision));
    json_object_set_new(o, "index", json_integer((json_int_t)a->index));
    json_object_set_new(o, "term", json_integer((json_int_t)a->term));
    json_object_set_new(o, "time_ms", json_integer((json_int_t)a->time_ms));
    json_object_set_new(o, "actor", json_bytes(a->actor, a->actor_len, true));
    json_object_set_new(o, "client", json_bytes(a->client, a->client_len, true));
    json_object_set_new(o, "op", json_bytes(a->op, a->op_len, true));
    json_object_set_new(o, "subject", json_bytes(a->subject, a->subject_len, a->subject));
    json_object_set_new(o, "detail", json_bytes(a->detail, a->detail_len, a->detail));
    json_object_set_new(o, "changes", changes_json(a));
    json_object_set_new(o, "prev_hash", json_string(h1));
    json_object_set_new(o, "hash", json_string(h2));
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}

struct paths {
    char **v;
    size_t n, cap;
    char buf[4096]; /* the current pointer; deeper paths are cut (and still listed) */
    size_t len;
};

static void paths_add(struct paths *p)
{
    if (p->n >= AUDIT_PATHS_MAX)
        return;
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 8;
        char **v = realloc(p->v, cap * sizeof *v);
        if (!v)
            return;
        p->v = v;
        p->cap = cap;
    }
    char *s = strndup(p->buf, p->len);
    if (s)
        p->v[p->n++] = s;
}

/* Append "/token" (escaped as RFC 6901: ~ -> ~0, / -> ~1); returns the old length. */
static size_t path_push(struct paths *p, const char *tok)
{
    size_t old = p->len;
    if (p->len + 1 < sizeof p->buf)
        p->buf[p->len++] = '/';
    for (; *tok && p->len + 2 < sizeof p->buf; tok++) {
        if (*tok == '~' || *tok == '/') {
            p->buf[p->len++] = '~';
            p->buf[p->len++] = *tok == '~' ? '0' : '1';
        } else {
            p->buf[p->len++] = *tok;
        }
    }
    return old;
}

static void diff(json_t *a, json_t *b, struct paths *p);

static void diff_objects(json_t *a, json_t *b, struct paths *p)
{
    const char *k;
    json_t *va;
    json_object_foreach(a, k, va) {
        size_t old = path_push(p, k);
        json_t *vb = json_object_get(b, k);
        if (vb)
            diff(va, vb, p);
        else
            paths_add(p); /* removed */
        p->len = old;
    }
    json_t *vb;
    json_object_foreach(b, k, vb) {
        if (json_object_get(a, k))
            continue;
        size_t old = path_push(p, k);
        paths_add(p); /* added */
        p->len = old;
    }
}

static void diff_arrays(json_t *a, json_t *b, struct paths *p)
{
    size_t na = json_array_size(a), nb = json_array_size(b);
    for (size_t i = 0; i < (na > nb ? na : nb); i++) {
        char tok[24];
        snprintf(tok, sizeof tok, "%zu", i);
        size_t old = path_push(p, tok);
        if (i < na && i < nb)
            diff(json_array_get(a, i), json_array_get(b, i), p);
        else
            paths_add(p);
        p->len = old;
    }
}

static void diff(json_t *a, json_t *b, struct paths *p)
{
    if (p->n >= AUDIT_PATHS_MAX || json_equal(a, b))
        return;
    if (json_is_object(a) && json_is_object(b))
        diff_objects(a, b, p);
    else if (json_is_array(a) && json_is_array(b))
        diff_arrays(a, b, p);
    else
        paths_add(p); /* a changed leaf, or a type change */
}

static bool is_container(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) { /* cheap filter before parsing */
        if (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')
            continue;
        return s[i] == '{' || s[i] == '[';
    }
    return false;
}

bool audit_json_paths(const char *a, size_t alen, const char *b, size_t blen, char ***paths,
                      size_t *n)
{
    *paths = NULL;
    *n = 0;
    if (!is_container(a, alen) || !is_container(b, blen))
        return false;
    json_t *ja = json_loadb(a, alen, JSON_DECODE_ANY, NULL);
    json_t *jb = ja ? json_loadb(b, blen, JSON_DECODE_ANY, NULL) : NULL;
    bool ok = ja && jb && (json_is_object(ja) || json_is_array(ja)) &&
              (json_is_object(jb) || json_is_array(jb));
    if (ok) {
        struct paths p = {0};
        diff(ja, jb, &p);
        *paths = p.v;
        *n = p.n;
    }
    json_decref(ja);
    json_decref(jb);
    return ok;
}

void audit_paths_free(char **paths, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
}

/* ------------------------------------------------------------------ file sink */

static void sink_line(struct audit_svc *a, uint32_t group, const struct ns_audit_rec *r)
{
    char *line = audit_rec_json(group, r);
    if (!line) {
        LOG_WARNING("audit-file: out of memory formatting revision %" PRIu64, r->revision);
        return;
    }
    if (fputs(line, a->file) < 0 || fputc('\n', a->file) == EOF || fflush(a->file) != 0)
        LOG_WARNING("audit-file: write failed: %s", strerror(errno));
    else
        a->lines_written++;
    free(line);
    a->file_rev[group] = r->revision;
}

struct catchup {
    struct audit_svc *a;
    uint32_t group;
    uint64_t upto;
};

static bool catchup_fn(void *ud, const struct ns_audit_rec *r)
{
    struct catchup *c = ud;
    if (r->revision > c->upto)
        return false;
    sink_line(c->a, c->group, r);
    return true;
}

/* Write the records after file_rev[group] up to and including upto from the store. */
static void sink_catchup(struct audit_svc *a, uint32_t group, struct ns *ns, uint64_t upto)
{
    struct catchup c = {a, group, upto};
    uint64_t oldest = 0;
    int rc = ns_audit_scan(ns, a->file_rev[group] + 1, catchup_fn, &c, &oldest);
    if (rc == RC_COMPACTED) {
        LOG_WARNING("audit-file: records %" PRIu64 "..%" PRIu64 " of group %u were pruned "
                    "before they reached the file", a->file_rev[group] + 1, oldest - 1, group);
        a->file_rev[group] = oldest - 1;
        rc = ns_audit_scan(ns, oldest, catchup_fn, &c, &oldest);
    }
    if (rc != RC_OK)
        LOG_WARNING("audit-file: reading audit records of group %u: %s", group,
                    rc_message(rc));
}

static void sink_record(struct audit_svc *a, uint32_t group, struct ns *ns,
                        const struct ns_audit_rec *r)
{
    if (!a->file || group >= NODE_GROUPS || r->revision <= a->file_rev[group])
        return;
    if (r->revision > a->file_rev[group] + 1)
        sink_catchup(a, group, ns, r->revision - 1);
    if (r->revision == a->file_rev[group] + 1)
        sink_line(a, group, r);
}

/* Position just after the last '\n' before end (0 when none), reading backwards. */
static off_t last_newline_end(int fd, off_t end)
{
    char buf[TAIL_CHUNK];
    while (end > 0) {
        off_t from = end > (off_t)sizeof buf ? end - (off_t)sizeof buf : 0;
        ssize_t n = pread(fd, buf, (size_t)(end - from), from);
        if (n <= 0)
            return 0;
        for (ssize_t i = n - 1; i >= 0; i--)
            if (buf[i] == '\n')
                return from + i + 1;
        end = from;
    }
    return 0;
}

/* Cut a torn last line; read group and revision of the last complete line. */
static void sink_resume(struct audit_svc *a, int fd)
{
    off_t size = lseek(fd, 0, SEEK_END);
    if (size <= 0)
        return;
    off_t end = last_newline_end(fd, size);
    if (end < size) {
        LOG_WARNING("audit-file: cutting a torn last line (%lld bytes)",
                    (long long)(size - end));
        if (ftruncate(fd, end) != 0)
            LOG_WARNING("audit-file: truncate failed: %s", strerror(errno));
    }
    if (end == 0)
        return;
    off_t start = last_newline_end(fd, end - 1);
    char head[96] = {0};
    ssize_t n = pread(fd, head, sizeof head - 1, start);
    unsigned g = 0;
    unsigned long long rev = 0;
    if (n > 0 && sscanf(head, "{\"group\":%u,\"revision\":%llu", &g, &rev) == 2 &&
        g < NODE_GROUPS)
        a->file_rev[g] = rev;
    else
        LOG_WARNING("audit-file: the last line is not an audit record; appending after it");
}

static int sink_open(struct server *s, struct audit_svc *a)
{
    const char *path = s->cfg.audit_file;
    int fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
        LOG_WARNING("audit-file: cannot open '%s': %s", path, strerror(errno));
        return -1;
    }
    /* A group with no line yet starts at its current revision (no backfill). */
    for (uint32_t g = 0; g < NODE_GROUPS; g++) {
        struct ns *ns = node_ns(s->node, g);
        a->file_rev[g] = ns ? ns_revision(ns) : 0;
    }
    sink_resume(a, fd);
    a->file = fdopen(fd, "a");
    if (!a->file) {
        close(fd);
        return -1;
    }
    for (uint32_t g = 0; g < NODE_GROUPS; g++) {
        struct ns *ns = node_ns(s->node, g);
        if (ns && ns_revision(ns) > a->file_rev[g])
            sink_catchup(a, g, ns, ns_revision(ns));
    }
    return 0;
}

/* ------------------------------------------------------------------ notifications */

static void notify_keyspace(struct server *s, const struct ns_audit_rec *r)
{
    const char *fl = s->cfg.notify_keyspace_events;
    if (!fl || !fl[0])
        return;
    bool ks = strchr(fl, 'K') != NULL, ke = strchr(fl, 'E') != NULL;
    bool all = strchr(fl, 'A') != NULL;
    bool sets = all || strchr(fl, '$'), dels = all || strchr(fl, 'g');
    if (!ks && !ke)
        return;
    size_t off = 0;
    struct ns_audit_change c;
    while (ns_audit_change_next(r, &off, &c)) {
        const char *ev = c.present ? "set" : "del";
        if (!(c.present ? sets : dels))
            continue;
        if (ks) {
            static const char pre[] = "__keyspace@0__:";
            char *ch = malloc(sizeof pre + c.klen);
            if (!ch)
                continue;
            memcpy(ch, pre, sizeof pre - 1);
            memcpy(ch + sizeof pre - 1, c.key, c.klen);
            pubsub_publish(s, ch, sizeof pre - 1 + c.klen, ev, strlen(ev));
            free(ch);
        }
        if (ke) {
            char ch[32];
            int n = snprintf(ch, sizeof ch, "__keyevent@0__:%s", ev);
            pubsub_publish(s, ch, (size_t)n, c.key, c.klen);
        }
    }
}

/* ------------------------------------------------------------------ service */

static void on_apply(void *ud, uint32_t group, struct ns *ns, uint64_t index)
{
    (void)index;
    struct server *s = ud;
    struct ns_audit_rec r;
    if (ns_last_audit(ns, &r) != RC_OK)
        return; /* the entry changed nothing */
    sink_record(s->audit, group, ns, &r);
    notify_keyspace(s, &r);
    audit_watch_on_apply(s, group, ns, &r);
}

static void on_timer(evutil_socket_t fd, short what, void *ud)
{
    (void)fd, (void)what;
    audit_watch_tick(ud);
}

int audit_svc_open(struct server *s)
{
    struct audit_svc *a = calloc(1, sizeof *a);
    if (!a)
        return -1;
    a->srv = s;
    s->audit = a;
    a->timer = event_new(s->base, -1, EV_PERSIST, on_timer, s);
    if (!a->timer)
        return -1;
    if (s->cfg.audit_file && s->cfg.audit_file[0] && sink_open(s, a) != 0)
        return -1;
    node_set_apply_observer(s->node, on_apply, s);
    return 0;
}

void audit_svc_close(struct server *s)
{
    struct audit_svc *a = s->audit;
    if (!a)
        return;
    if (s->node)
        node_set_apply_observer(s->node, NULL, NULL);
    audit_watch_free_all(s);
    if (a->timer)
        event_free(a->timer);
    if (a->file)
        fclose(a->file);
    free(a);
    s->audit = NULL;
}

void audit_timer_arm(struct server *s, bool on)
{
    struct audit_svc *a = s->audit;
    if (on == a->timer_on)
        return;
    a->timer_on = on;
    if (on) {
        struct timeval tv = {0, WATCH_TICK_MS * 1000};
        event_add(a->timer, &tv);
    } else {
        event_del(a->timer);
    }
}
