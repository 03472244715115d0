/*
 * lincheck_watch.c - checks of CFG.WATCH streams against the rest of the history.
 *
 * For each recorded stream (one watcher, prefix P, started after revision `from`):
 *   1. every event's key is under P and its revision is > from;
 *   2. revisions never go back, and no (key, revision) comes twice (one MULTI/EXEC or MSET
 *      may give several keys the same revision, so equal revisions on different keys are
 *      fine);
 *   3. a value that the history writes once is delivered at most once (a duplicate
 *      delivery, or a write applied twice);
 *   4. nothing acknowledged is missing, where the history lets us tell:
 *      a. a cas answered ok with revision R on a key under P, with from < R <= the last
 *         revision the stream delivered, must be in the stream with its value;
 *      b. let B be the latest-invoked write whose value the stream delivered; every write
 *         acknowledged (r = ok) on a key under P that completed before B was invoked has a
 *         smaller revision than B's, so it must be in the stream too (when from > 0, only
 *         writes invoked after the stream started count: older ones may be <= from).
 * Values are matched through their interned ids; a value written by more than one op is
 * ambiguous and only checked by rules 1, 2 and 4a.
 */
#include "lincheck.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define REPORT_MAX 10

struct writer {
    int32_t key;   /* index into h->keys, -1: none, -2: ambiguous */
    int32_t op;
};

static bool under(const char *key, const char *prefix)
{
    return strncmp(key, prefix, strlen(prefix)) == 0;
}

static bool is_write(const struct lc_op *o)
{
    return (o->kind == LC_SET || o->kind == LC_CAS) && !o->cas_failed && o->val >= 0;
}

/* writers[val] = the one op that writes val. */
static struct writer *index_writers(const struct lc_history *h)
{
    struct writer *w = malloc((h->nvals + 1) * sizeof *w);
    if (!w)
        return NULL;
    for (size_t i = 0; i < h->nvals; i++)
        w[i] = (struct writer){.key = -1, .op = -1};
    for (size_t k = 0; k < h->nkeys; k++) {
        for (size_t i = 0; i < h->keys[k].nops; i++) {
            const struct lc_op *o = &h->keys[k].ops[i];
            if (!is_write(o))
                continue;
            if (w[o->val].key == -1)
                w[o->val] = (struct writer){.key = (int32_t)k, .op = (int32_t)i};
            else
                w[o->val].key = -2;
        }
    }
    return w;
}

static const struct lc_op *writer_op(const struct lc_history *h, const struct writer *w,
                                     int32_t val)
{
    if (val < 0 || w[val].key < 0)
        return NULL;
    return &h->keys[w[val].key].ops[w[val].op];
}

__attribute__((format(printf, 4, 5)))
static void bad(size_t *nbad, FILE *out, const struct lc_watch *wt, const char *fmt, ...)
{
    if (out && *nbad < REPORT_MAX) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(out, "watch line %d p=%d: ", wt->line, wt->p);
        vfprintf(out, fmt, ap);
        fputc('\n', out);
        va_end(ap);
    }
    (*nbad)++;
}

#define BAD(...) bad(nbad, out, wt, __VA_ARGS__)

/* Rules 1-3. delivered[val] counts deliveries of each value in this stream. */
static void check_order(const struct lc_history *h, const struct lc_watch *wt,
                        const struct writer *w, int32_t *delivered, size_t *nbad, FILE *out)
{
    for (size_t i = 0; i < wt->nev; i++) {
        const struct lc_watch_event *e = &wt->ev[i];
        if (!under(e->key, wt->prefix))
            BAD("event %zu: key %s is not under %s", i, e->key, wt->prefix);
        if (e->rev <= wt->from)
            BAD("event %zu: revision %lld is not after FROM %lld", i, (long long)e->rev,
                (long long)wt->from);
        if (i > 0 && e->rev < wt->ev[i - 1].rev)
            BAD("event %zu: revision %lld after %lld (out of order)", i, (long long)e->rev,
                (long long)wt->ev[i - 1].rev);
        for (size_t j = i; j-- > 0 && wt->ev[j].rev == e->rev;)
            if (strcmp(wt->ev[j].key, e->key) == 0)
                BAD("event %zu: %s at revision %lld delivered twice", i, e->key,
                    (long long)e->rev);
        if (e->val >= 0 && ++delivered[e->val] == 2 && writer_op(h, w, e->val))
            BAD("value \"%s\" of %s delivered twice (written once)", lc_val_str(h, e->val),
                e->key);
    }
}

/* Rule 4. */
static void check_complete(const struct lc_history *h, const struct lc_watch *wt,
                           const struct writer *w, const int32_t *delivered, size_t *nbad,
                           FILE *out)
{
    int64_t last_rev = wt->nev ? wt->ev[wt->nev - 1].rev : wt->from;
    int64_t b_t0 = INT64_MIN;
    for (size_t i = 0; i < wt->nev; i++) {
        const struct lc_op *b = writer_op(h, w, wt->ev[i].val);
        if (b && b->t0 > b_t0)
            b_t0 = b->t0;
    }
    for (size_t k = 0; k < h->nkeys; k++) {
        if (!under(h->keys[k].key, wt->prefix))
            continue;
        for (size_t i = 0; i < h->keys[k].nops; i++) {
            const struct lc_op *a = &h->keys[k].ops[i];
            if (!is_write(a) || !a->definite || delivered[a->val] > 0)
                continue;
            if (a->rev > wt->from && a->rev <= last_rev)
                BAD("%s = \"%s\" (line %d, revision %lld) acknowledged but not delivered",
                    h->keys[k].key, lc_val_str(h, a->val), a->line, (long long)a->rev);
            else if (a->rev < 0 && a->t1 < b_t0 && (wt->from == 0 || a->t0 > wt->t0))
                BAD("%s = \"%s\" (line %d) acknowledged before a delivered later write "
                    "was invoked, but not delivered", h->keys[k].key, lc_val_str(h, a->val),
                    a->line);
        }
    }
}

enum lc_verdict lc_check_watches(const struct lc_history *h, FILE *out)
{
    if (h->nwatches == 0)
        return LC_OK;
    struct writer *w = index_writers(h);
    int32_t *delivered = calloc(h->nvals + 1, sizeof *delivered);
    size_t nbad = 0;
    if (!w || !delivered) {
        free(w);
        free(delivered);
        if (out)
            fprintf(out, "watch: out of memory\n");
        return LC_UNKNOWN;
    }
    for (size_t i = 0; i < h->nwatches; i++) {
        const struct lc_watch *wt = &h->watches[i];
        size_t before = nbad;
        memset(delivered, 0, (h->nvals + 1) * sizeof *delivered);
        check_order(h, wt, w, delivered, &nbad, out);
        check_complete(h, wt, w, delivered, &nbad, out);
        if (out)
            fprintf(out, "watch line %d p=%d prefix %s: %zu events, %s\n", wt->line, wt->p,
                    wt->prefix, wt->nev, nbad == before ? "ok" : "BAD");
    }
    free(w);
    free(delivered);
    return nbad ? LC_BAD : LC_OK;
}
