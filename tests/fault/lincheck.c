/*
 * lincheck.c - history loading and the per-key driver of the linearizability checker.
 *
 * Reads the JSON-lines history of tests/fault/HISTORY.md into per-key op arrays (values
 * interned to small integers so the search compares ints), then runs the search on each
 * key and the watch checks, and prints the verdicts.
 *
 * What each record becomes (anything else constrains nothing and is skipped):
 *   get  r=ok                  definite read of out.v (and out.ver when present)
 *   set  r=ok / unknown        definite / possible write
 *   cas  r=ok                  definite compare-and-set (out.ver, out.rev checked if given)
 *   cas  r=fail, err=VERSION   definite observation: version != ver (== out.cur if given)
 *   cas  r=unknown             possible compare-and-set
 *   del  r=ok / unknown        definite / possible delete (out.n checked if given)
 *   txn  r=ok / unknown        split into one set per key over the same window
 *   watch                      a watch stream, checked by lincheck_watch.c
 * Invariants: every op has t0 <= t1; an op that is not definite has t1 = LC_T_INF.
 */
#include "lincheck.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* ---- string interning (open addressing, FNV-1a) ---- */

struct intern {
    size_t cap;       /* power of two */
    size_t used;
    int32_t *slot;    /* -1 empty, else index into names */
};

static uint64_t str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz);
    if (!p) {
        fprintf(stderr, "lincheck: out of memory\n");
        abort();
    }
    return p;
}

static void *xrealloc(void *p, size_t sz)
{
    p = realloc(p, sz ? sz : 1);
    if (!p) {
        fprintf(stderr, "lincheck: out of memory\n");
        abort();
    }
    return p;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = xcalloc(n, 1);
    memcpy(d, s, n);
    return d;
}

static void intern_grow(struct intern *t, char **names)
{
    size_t cap = t->cap ? t->cap * 2 : 1024;
    int32_t *slot = xcalloc(cap, sizeof *slot);
    for (size_t i = 0; i < cap; i++)
        slot[i] = -1;
    for (size_t i = 0; i < t->cap; i++) {
        if (t->slot[i] < 0)
            continue;
        size_t j = str_hash(names[t->slot[i]]) & (cap - 1);
        while (slot[j] >= 0)
            j = (j + 1) & (cap - 1);
        slot[j] = t->slot[i];
    }
    free(t->slot);
    t->slot = slot;
    t->cap = cap;
}

/* Index of s in names[0..*n), adding it when new. */
static int32_t intern_get(void **tp, char ***names, size_t *n, size_t *cap, const char *s)
{
    struct intern *t = *tp;
    if (!t)
        *tp = t = xcalloc(1, sizeof *t);
    if ((t->used + 1) * 2 > t->cap)
        intern_grow(t, *names);
    size_t j = str_hash(s) & (t->cap - 1);
    while (t->slot[j] >= 0) {
        if (strcmp((*names)[t->slot[j]], s) == 0)
            return t->slot[j];
        j = (j + 1) & (t->cap - 1);
    }
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 1024;
        *names = xrealloc(*names, *cap * sizeof **names);
    }
    (*names)[*n] = xstrdup(s);
    t->slot[j] = (int32_t)*n;
    t->used++;
    return (int32_t)(*n)++;
}

static void intern_free(void *tp)
{
    struct intern *t = tp;
    if (t)
        free(t->slot);
    free(t);
}

const char *lc_val_str(const struct lc_history *h, int32_t val)
{
    if (val == LC_ABSENT)
        return "(absent)";
    if (val < 0 || (size_t)val >= h->nvals)
        return "(?)";
    return h->vals[val];
}

/* ---- records ---- */

static int32_t value_id(struct lc_history *h, json_t *v)
{
    if (!v || json_is_null(v))
        return LC_ABSENT;
    if (json_is_string(v))
        return intern_get(&h->val_index, &h->vals, &h->nvals, &h->vals_cap, json_string_value(v));
    if (json_is_integer(v)) {
        char buf[32];
        snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
        return intern_get(&h->val_index, &h->vals, &h->nvals, &h->vals_cap, buf);
    }
    return -2;
}

static struct lc_key *key_get(struct lc_history *h, const char *name)
{
    int32_t id = intern_get(&h->key_index, &h->key_names, &h->key_names_n,
                            &h->key_names_cap, name);
    if ((size_t)id == h->nkeys) {
        if (h->nkeys == h->keys_cap) {
            h->keys_cap = h->keys_cap ? h->keys_cap * 2 : 64;
            h->keys = xrealloc(h->keys, h->keys_cap * sizeof *h->keys);
        }
        memset(&h->keys[h->nkeys], 0, sizeof h->keys[0]);
        h->keys[h->nkeys].key = h->key_names[id];
        h->nkeys++;
    }
    return &h->keys[id];
}

static void key_push(struct lc_key *k, const struct lc_op *op)
{
    if (k->nops == k->cap) {
        k->cap = k->cap ? k->cap * 2 : 64;
        k->ops = xrealloc(k->ops, k->cap * sizeof *k->ops);
    }
    k->ops[k->nops++] = *op;
}

static int64_t jint(json_t *o, const char *name, int64_t dflt)
{
    json_t *v = o ? json_object_get(o, name) : NULL;
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

static const char *jstr(json_t *o, const char *name)
{
    json_t *v = o ? json_object_get(o, name) : NULL;
    return json_is_string(v) ? json_string_value(v) : NULL;
}

#define FAIL(...)                                   \
    do {                                            \
        snprintf(err, err_cap, __VA_ARGS__);        \
        return -1;                                  \
    } while (0)

static int load_watch(struct lc_history *h, json_t *o, const struct lc_op *base,
                      char *err, size_t err_cap)
{
    json_t *evs = json_object_get(o, "events");
    const char *prefix = jstr(o, "k");
    if (!prefix || !json_is_array(evs))
        FAIL("line %d: watch needs \"k\" (prefix) and \"events\" (array)", base->line);
    if (h->nwatches == h->watches_cap) {
        h->watches_cap = h->watches_cap ? h->watches_cap * 2 : 8;
        h->watches = xrealloc(h->watches, h->watches_cap * sizeof *h->watches);
    }
    struct lc_watch *w = &h->watches[h->nwatches++];
    memset(w, 0, sizeof *w);
    w->prefix = xstrdup(prefix);
    w->from = jint(o, "from", 0);
    w->t0 = base->t0;
    w->t1 = base->t1;
    w->line = base->line;
    w->p = base->p;
    w->nev = json_array_size(evs);
    w->ev = xcalloc(w->nev, sizeof *w->ev);
    for (size_t i = 0; i < w->nev; i++) {
        json_t *e = json_array_get(evs, i);
        const char *k = jstr(e, "k"), *type = jstr(e, "type");
        if (!k || !type || !json_is_integer(json_object_get(e, "rev")))
            FAIL("line %d: watch event %zu needs k, type, rev", base->line, i);
        w->ev[i].key = xstrdup(k);
        w->ev[i].is_del = strcmp(type, "del") == 0;
        w->ev[i].rev = jint(e, "rev", 0);
        w->ev[i].val = w->ev[i].is_del ? LC_ABSENT : value_id(h, json_object_get(e, "v"));
        if (w->ev[i].val == -2)
            FAIL("line %d: watch event %zu: v must be a string or null", base->line, i);
    }
    return 0;
}

/* A txn: "ops":[{"k":..,"v":..},...], or "k","v","k2","v2". One set per key. */
static int load_txn(struct lc_history *h, json_t *o, struct lc_op *op, char *err,
                    size_t err_cap)
{
    json_t *ops = json_object_get(o, "ops");
    op->kind = LC_SET;
    op->from_txn = true;
    if (json_is_array(ops)) {
        for (size_t i = 0; i < json_array_size(ops); i++) {
            json_t *e = json_array_get(ops, i);
            const char *k = jstr(e, "k");
            op->val = value_id(h, json_object_get(e, "v"));
            if (!k || op->val < 0)
                FAIL("line %d: txn op %zu needs k and a string v", op->line, i);
            key_push(key_get(h, k), op);
            h->nops_total++;
        }
        return 0;
    }
    const char *names[2][2] = {{"k", "v"}, {"k2", "v2"}};
    for (int i = 0; i < 2; i++) {
        const char *k = jstr(o, names[i][0]);
        op->val = value_id(h, json_object_get(o, names[i][1]));
        if (!k || op->val < 0)
            FAIL("line %d: txn needs ops[] or k, v, k2, v2", op->line);
        key_push(key_get(h, k), op);
        h->nops_total++;
    }
    return 0;
}

/* Fill op from a get/set/cas/del record; returns 1 when it constrains nothing. */
static int load_single(struct lc_history *h, json_t *o, const char *f, const char *r,
                       struct lc_op *op, char *err, size_t err_cap)
{
    json_t *out = json_object_get(o, "out");
    bool ok = strcmp(r, "ok") == 0, unknown = strcmp(r, "unknown") == 0;
    if (strcmp(f, "get") == 0) {
        if (!ok)
            return 1;
        op->kind = LC_GET;
        op->val = value_id(h, out ? json_object_get(out, "v") : NULL);
        if (!out || !json_object_get(out, "v") || op->val == -2)
            FAIL("line %d: get ok needs out.v (string or null)", op->line);
        op->out_ver = jint(out, "ver", -1);
        return 0;
    }
    if (strcmp(f, "del") == 0) {
        op->kind = LC_DEL;
        op->val = LC_ABSENT;
        op->del_n = ok ? (int32_t)jint(out, "n", -1) : -1;
        return ok || unknown ? 0 : 1;
    }
    op->val = value_id(h, json_object_get(o, "v"));
    if (op->val < 0)
        FAIL("line %d: %s needs v (string)", op->line, f);
    if (strcmp(f, "set") == 0) {
        op->kind = LC_SET;
        return ok || unknown ? 0 : 1;
    }
    if (strcmp(f, "cas") != 0)
        FAIL("line %d: unknown f \"%s\"", op->line, f);
    op->kind = LC_CAS;
    op->ver = jint(o, "ver", -1);
    if (op->ver < 0)
        FAIL("line %d: cas needs ver (integer >= 0)", op->line);
    if (ok) {
        op->out_ver = jint(out, "ver", -1);
        op->rev = jint(out, "rev", -1);
        return 0;
    }
    const char *e = jstr(out, "err");
    if (!unknown && e && strcmp(e, "VERSION") == 0) {
        op->cas_failed = true;
        op->out_ver = jint(out, "cur", -1);
        return 0;
    }
    return unknown ? 0 : 1;
}

static int load_record(struct lc_history *h, json_t *o, int line, char *err, size_t err_cap)
{
    const char *f = jstr(o, "f"), *r = jstr(o, "r");
    struct lc_op op = {.line = line, .out_ver = -1, .del_n = -1, .rev = -1, .ver = -1};
    if (!json_is_object(o) || !f)
        FAIL("line %d: not an object with \"f\"", line);
    op.p = (int32_t)jint(o, "p", 0);
    op.t0 = jint(o, "t0", -1);
    op.t1 = jint(o, "t1", -1);
    if (op.t0 < 0 || op.t1 < op.t0)
        FAIL("line %d: needs t0 >= 0 and t1 >= t0", line);
    if (strcmp(f, "watch") == 0)
        return load_watch(h, o, &op, err, err_cap);
    if (!r || (strcmp(r, "ok") && strcmp(r, "fail") && strcmp(r, "unknown")))
        FAIL("line %d: r must be ok, fail or unknown", line);
    bool unknown = strcmp(r, "unknown") == 0;
    if (unknown)
        op.t1 = LC_T_INF;
    if (strcmp(f, "txn") == 0) {
        if (!unknown && strcmp(r, "ok") != 0) {
            h->nskipped++;
            return 0;
        }
        op.definite = !unknown;
        return load_txn(h, o, &op, err, err_cap);
    }
    const char *k = jstr(o, "k");
    if (!k)
        FAIL("line %d: needs k", line);
    int rc = load_single(h, o, f, r, &op, err, err_cap);
    if (rc < 0)
        return rc;
    if (rc == 1) {
        h->nskipped++;
        return 0;
    }
    op.definite = !unknown;
    key_push(key_get(h, k), &op);
    h->nops_total++;
    return 0;
}

static int load_line(struct lc_history *h, const char *text, size_t len, char *err,
                     size_t err_cap)
{
    int line = (int)++h->nlines;
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r'))
        i++;
    if (i == len || text[i] == '#')
        return 0;
    json_error_t je;
    json_t *o = json_loadb(text, len, 0, &je);
    if (!o)
        FAIL("line %d: bad JSON: %s", line, je.text);
    int rc = load_record(h, o, line, err, err_cap);
    json_decref(o);
    if (rc == 0 && (h->nops_total > LC_OPS_MAX || h->nkeys > LC_KEYS_MAX))
        FAIL("line %d: more than %d ops or %d keys", line, LC_OPS_MAX, LC_KEYS_MAX);
    return rc;
}

int lc_history_load(struct lc_history *h, FILE *f, char *err, size_t err_cap)
{
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while (rc == 0 && (n = getline(&buf, &cap, f)) >= 0) {
        if ((size_t)n > LC_LINE_MAX) {
            snprintf(err, err_cap, "line %zu: longer than %d bytes", h->nlines + 1,
                     LC_LINE_MAX);
            rc = -1;
            break;
        }
        rc = load_line(h, buf, (size_t)n, err, err_cap);
    }
    if (rc == 0 && ferror(f)) {
        snprintf(err, err_cap, "read error: %s", strerror(errno));
        rc = -1;
    }
    free(buf);
    return rc;
}

int lc_history_load_str(struct lc_history *h, const char *text, char *err, size_t err_cap)
{
    while (*text) {
        const char *nl = strchr(text, '\n');
        size_t len = nl ? (size_t)(nl - text) : strlen(text);
        int rc = load_line(h, text, len, err, err_cap);
        if (rc)
            return rc;
        text += len + (nl ? 1 : 0);
    }
    return 0;
}

void lc_history_free(struct lc_history *h)
{
    for (size_t i = 0; i < h->nkeys; i++) {
        free(h->key_names[i]);
        free(h->keys[i].ops);
    }
    free(h->keys);
    free(h->key_names);
    intern_free(h->key_index);
    for (size_t i = 0; i < h->nvals; i++)
        free(h->vals[i]);
    free(h->vals);
    intern_free(h->val_index);
    for (size_t i = 0; i < h->nwatches; i++) {
        for (size_t j = 0; j < h->watches[i].nev; j++)
            free(h->watches[i].ev[j].key);
        free(h->watches[i].ev);
        free(h->watches[i].prefix);
    }
    free(h->watches);
    memset(h, 0, sizeof *h);
}

static const char *verdict_str(enum lc_verdict v)
{
    return v == LC_OK ? "linearizable" : v == LC_BAD ? "NOT linearizable" : "unknown";
}

enum lc_verdict lc_check(struct lc_history *h, const struct lc_options *o, FILE *out)
{
    size_t bad = 0, unk = 0;
    for (size_t i = 0; i < h->nkeys; i++) {
        struct lc_key *k = &h->keys[i];
        k->verdict = lc_check_key(h, k, o, out);
        bad += k->verdict == LC_BAD;
        unk += k->verdict == LC_UNKNOWN;
        if (out && (o->verbose || k->verdict != LC_OK))
            fprintf(out, "key %s: %s, ops=%zu states=%llu\n", k->key, verdict_str(k->verdict),
                    k->nops, (unsigned long long)k->states);
    }
    enum lc_verdict wv = lc_check_watches(h, out);
    enum lc_verdict v = bad || wv == LC_BAD ? LC_BAD : unk ? LC_UNKNOWN : LC_OK;
    if (out) {
        fprintf(out, "keys: %zu linearizable, %zu NOT, %zu unknown; watches: %zu %s; "
                     "records skipped (constrain nothing): %zu\n",
                h->nkeys - bad - unk, bad, unk, h->nwatches,
                wv == LC_OK ? "ok" : "BAD", h->nskipped);
        fprintf(out, "lincheck: %s, ops=%zu keys=%zu\n", verdict_str(v), h->nops_total,
                h->nkeys);
    }
    return v;
}
