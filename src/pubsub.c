/*
 * pubsub.c - Pub/Sub registries and delivery (see pubsub.h for the semantics).
 *
 * Layout: struct pubsub (one per server, created at the first subscription) holds two
 * maps, channels and patterns, both name -> struct ps_entry, chained hash tables keyed by
 * XXH3 with a power-of-two bucket count that grows at load 1 and shrinks below 1/8. Each
 * entry has an array of struct ps_sub; each client (struct ps_client, created at its first
 * subscription, freed when it holds nothing) has one array per kind. A ps_sub knows its
 * index in both arrays, so removing a pair is O(1) from either side; finding a pair scans
 * the shorter of the two arrays.
 *
 * Invariants (checked by SRV_ASSERT on the paths that touch them):
 *   - e->subs[i]->ie == i and e->subs[i]->e == e; pc->subs[k][i]->ic == i;
 *   - an entry in a map has n_subs >= 1; a client's ps_client exists only while it holds
 *     at least one subscription;
 *   - publishing never frees a client (client_push only marks a client to close), so the
 *     arrays walked during delivery stay valid.
 */
#include "pubsub.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "client.h"
#include "commands.h"
#include "glob.h"
#include "log.h"
#include "server.h"

enum { K_CHAN = 0, K_PAT = 1 };

struct ps_entry;

struct ps_sub {
    struct ps_entry *e;
    struct client *c;
    uint32_t ie; /* index in e->subs */
    uint32_t ic; /* index in the client's array of this kind */
};

struct ps_entry {
    struct ps_entry *next; /* hash chain */
    uint64_t hash;
    struct ps_sub **subs;
    uint32_t n_subs, cap_subs;
    size_t len;
    char name[]; /* len bytes, then a NUL */
};

struct ps_map {
    struct ps_entry **b;
    size_t n_b; /* 0 or a power of two */
    size_t n;   /* entries */
};

struct pubsub {
    struct ps_map map[2]; /* K_CHAN, K_PAT */
};

struct ps_client {
    struct ps_sub **subs[2];
    uint32_t n[2], cap[2];
};

#define MAP_BUCKETS_MIN 16

/* ------------------------------------------------------------------ maps */

static struct ps_entry *map_find(const struct ps_map *m, const char *name, size_t len,
                                 uint64_t h)
{
    if (!m->n_b)
        return NULL;
    for (struct ps_entry *e = m->b[h & (m->n_b - 1)]; e; e = e->next)
        if (e->hash == h && e->len == len && memcmp(e->name, name, len) == 0)
            return e;
    return NULL;
}

/* Rehash into nb buckets; on allocation failure the map stays as it was. */
static void map_resize(struct ps_map *m, size_t nb)
{
    struct ps_entry **b = calloc(nb, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < m->n_b; i++) {
        for (struct ps_entry *e = m->b[i], *nx; e; e = nx) {
            nx = e->next;
            e->next = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
        }
    }
    free(m->b);
    m->b = b;
    m->n_b = nb;
}

static struct ps_entry *map_add(struct ps_map *m, const char *name, size_t len, uint64_t h)
{
    if (m->n_b == 0 || m->n >= m->n_b)
        map_resize(m, m->n_b ? m->n_b * 2 : MAP_BUCKETS_MIN);
    if (m->n_b == 0)
        return NULL;
    struct ps_entry *e = calloc(1, sizeof *e + len + 1);
    if (!e)
        return NULL;
    memcpy(e->name, name, len);
    e->len = len;
    e->hash = h;
    struct ps_entry **head = &m->b[h & (m->n_b - 1)];
    e->next = *head;
    *head = e;
    m->n++;
    return e;
}

static void map_del(struct ps_map *m, struct ps_entry *e)
{
    SRV_ASSERT(e->n_subs == 0);
    struct ps_entry **p = &m->b[e->hash & (m->n_b - 1)];
    while (*p != e)
        p = &(*p)->next;
    *p = e->next;
    m->n--;
    free(e->subs);
    free(e);
    if (m->n_b > MAP_BUCKETS_MIN && m->n < m->n_b / 8)
        map_resize(m, m->n_b / 2);
}

static void map_free(struct ps_map *m)
{
    for (size_t i = 0; i < m->n_b; i++) {
        for (struct ps_entry *e = m->b[i], *nx; e; e = nx) {
            nx = e->next;
            free(e->subs);
            free(e);
        }
    }
    free(m->b);
    memset(m, 0, sizeof *m);
}

/* ------------------------------------------------------------------ pairs */

static bool subs_push(struct ps_sub ***a, uint32_t *n, uint32_t *cap, struct ps_sub *x)
{
    if (*n == *cap) {
        uint32_t nc = *cap ? *cap * 2 : 4;
        struct ps_sub **na = realloc(*a, nc * sizeof *na);
        if (!na)
            return false;
        *a = na;
        *cap = nc;
    }
    (*a)[(*n)++] = x;
    return true;
}

static struct ps_sub *pair_find(const struct ps_client *pc, int k, const struct ps_entry *e,
                                const struct client *c)
{
    if (!pc)
        return NULL;
    if (e->n_subs <= pc->n[k]) {
        for (uint32_t i = 0; i < e->n_subs; i++)
            if (e->subs[i]->c == c)
                return e->subs[i];
    } else {
        for (uint32_t i = 0; i < pc->n[k]; i++)
            if (pc->subs[k][i]->e == e)
                return pc->subs[k][i];
    }
    return NULL;
}

/* Remove pair x of kind k from both arrays (swap with the last), free the entry when it
 * has no subscriber left, and x itself. */
static void pair_remove(struct pubsub *ps, struct ps_client *pc, int k, struct ps_sub *x)
{
    struct ps_entry *e = x->e;
    SRV_ASSERT(x->ie < e->n_subs && e->subs[x->ie] == x);
    SRV_ASSERT(x->ic < pc->n[k] && pc->subs[k][x->ic] == x);
    uint32_t last = --e->n_subs;
    if (x->ie != last) {
        e->subs[x->ie] = e->subs[last];
        e->subs[x->ie]->ie = x->ie;
    }
    last = --pc->n[k];
    if (x->ic != last) {
        pc->subs[k][x->ic] = pc->subs[k][last];
        pc->subs[k][x->ic]->ic = x->ic;
    }
    if (e->n_subs == 0)
        map_del(&ps->map[k], e);
    free(x);
}

static size_t total(const struct ps_client *pc) { return pc ? pc->n[0] + (size_t)pc->n[1] : 0; }

/* Free c's ps_client once it holds nothing. */
static void client_trim(struct client *c)
{
    struct ps_client *pc = c->pubsub;
    if (pc && total(pc) == 0) {
        free(pc->subs[0]);
        free(pc->subs[1]);
        free(pc);
        c->pubsub = NULL;
    }
}

/* Add (c, name) of kind k; an existing pair is fine. NULL or the reason it failed. */
static const char *pair_add(struct client *c, int k, const char *name, size_t len)
{
    struct server *srv = c->srv;
    if (len > PUBSUB_NAME_LEN_MAX)
        return k == K_CHAN ? "channel name too long" : "pattern too long";
    if (!srv->pubsub && !(srv->pubsub = calloc(1, sizeof *srv->pubsub)))
        return "out of memory";
    if (!c->pubsub && !(c->pubsub = calloc(1, sizeof *c->pubsub)))
        return "out of memory";
    struct ps_map *m = &srv->pubsub->map[k];
    struct ps_client *pc = c->pubsub;
    uint64_t h = XXH3_64bits(name, len);
    struct ps_entry *e = map_find(m, name, len, h);
    if (e && pair_find(pc, k, e, c))
        return NULL;
    if (total(pc) >= PUBSUB_CLIENT_SUBS_MAX)
        return "too many subscriptions on this connection";
    if (!e && m->n >= (k == K_CHAN ? PUBSUB_CHANNELS_MAX : PUBSUB_PATTERNS_MAX))
        return k == K_CHAN ? "too many channels" : "too many patterns";
    if (!e && !(e = map_add(m, name, len, h)))
        return "out of memory";
    struct ps_sub *x = calloc(1, sizeof *x);
    if (x) {
        x->e = e;
        x->c = c;
        x->ie = e->n_subs;
        x->ic = pc->n[k];
    }
    if (!x || !subs_push(&e->subs, &e->n_subs, &e->cap_subs, x)) {
        free(x);
        if (e->n_subs == 0)
            map_del(m, e);
        return "out of memory";
    }
    if (!subs_push(&pc->subs[k], &pc->n[k], &pc->cap[k], x)) {
        e->n_subs--;
        free(x);
        if (e->n_subs == 0)
            map_del(m, e);
        return "out of memory";
    }
    return NULL;
}

/* ------------------------------------------------------------------ commands */

static void w_frame(struct resp_buf *b, int proto, const char *kind, const char *name,
                    size_t len, size_t count)
{
    resp_w_push(b, proto, 3);
    resp_w_bulk_str(b, kind);
    if (name)
        resp_w_bulk(b, name, len);
    else
        resp_w_null(b, proto);
    resp_w_int(b, (long long)count);
}

void pubsub_subscribe(struct client *c, struct cslot *s, bool pattern, int n, char **names,
                      size_t *lens)
{
    int k = pattern ? K_PAT : K_CHAN;
    struct resp_buf *b = cmd_out(s);
    for (int i = 0; i < n; i++) {
        const char *why = pair_add(c, k, names[i], lens[i]);
        if (why)
            resp_w_errorf(b, "ERR %s", why);
        else
            w_frame(b, c->proto, pattern ? "psubscribe" : "subscribe", names[i], lens[i],
                    total(c->pubsub));
    }
    client_trim(c);
}

void pubsub_unsubscribe(struct client *c, struct cslot *s, bool pattern, int n, char **names,
                        size_t *lens)
{
    int k = pattern ? K_PAT : K_CHAN;
    const char *kind = pattern ? "punsubscribe" : "unsubscribe";
    struct resp_buf *b = cmd_out(s);
    struct ps_client *pc = c->pubsub;
    struct pubsub *ps = c->srv->pubsub;
    if (n == 0 && (!pc || pc->n[k] == 0)) {
        w_frame(b, c->proto, kind, NULL, 0, total(pc));
        return;
    }
    if (n == 0) { /* all of this kind, newest first */
        while (pc->n[k] > 0) {
            struct ps_sub *x = pc->subs[k][pc->n[k] - 1];
            resp_w_push(b, c->proto, 3);
            resp_w_bulk_str(b, kind);
            resp_w_bulk(b, x->e->name, x->e->len);
            pair_remove(ps, pc, k, x);
            resp_w_int(b, (long long)total(pc));
        }
    }
    for (int i = 0; i < n; i++) {
        struct ps_entry *e = ps ? map_find(&ps->map[k], names[i], lens[i],
                                           XXH3_64bits(names[i], lens[i]))
                                : NULL;
        struct ps_sub *x = e ? pair_find(pc, k, e, c) : NULL;
        if (x)
            pair_remove(ps, pc, k, x);
        w_frame(b, c->proto, kind, names[i], lens[i], total(pc));
    }
    client_trim(c);
}

void pubsub_client_free(struct client *c)
{
    struct ps_client *pc = c->pubsub;
    if (!pc)
        return;
    for (int k = 0; k < 2; k++)
        while (pc->n[k] > 0)
            pair_remove(c->srv->pubsub, pc, k, pc->subs[k][pc->n[k] - 1]);
    client_trim(c);
    SRV_ASSERT(c->pubsub == NULL);
}

size_t pubsub_client_channels(const struct client *c)
{
    return c->pubsub ? c->pubsub->n[K_CHAN] : 0;
}

size_t pubsub_client_patterns(const struct client *c)
{
    return c->pubsub ? c->pubsub->n[K_PAT] : 0;
}

bool pubsub_client_subscribed(const struct client *c) { return total(c->pubsub) > 0; }

/* Redis's "container" commands name a subcommand as "name|sub" in this error. */
static bool is_container(const char *name)
{
    /* Redis's containers, and ours (DEBUG is one command in Redis: 'debug', not 'debug|log') */
    static const char *const names[] = {"client", "config", "command", "pubsub", "cfg.cluster"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i]) == 0)
            return true;
    return false;
}

bool pubsub_context_ok_or_reply(const struct client *c, struct cslot *s,
                                const struct cmd_def *d, int argc, char **argv)
{
    if (c->proto != 2 || !pubsub_client_subscribed(c))
        return true;
    if (d->fn == cmd_ping || d->fn == cmd_quit || d->fn == cmd_reset ||
        d->fn == cmd_subscribe || d->fn == cmd_unsubscribe || d->fn == cmd_psubscribe ||
        d->fn == cmd_punsubscribe)
        return true;
    char full[80];
    int n = snprintf(full, sizeof full, "%s", d->name);
    if (argc >= 2 && is_container(d->name))
        snprintf(full + n, sizeof full - (size_t)n, "|%.40s", argv[1]);
    for (char *p = full; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    resp_w_errorf(cmd_out(s), "ERR Can't execute '%s': only (P|S)SUBSCRIBE / "
                  "(P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context", full);
    return false;
}

/* ------------------------------------------------------------------ delivery */

/* Frames of one message for RESP2 ([0]) and RESP3 ([1]), built on first use. */
struct frames {
    struct resp_buf f[2];
    bool built[2];
    const char *pat; /* NULL: "message" */
    size_t plen;
    const char *ch, *msg;
    size_t chlen, mlen;
};

static void deliver(struct frames *fr, struct client *c)
{
    if (c->close_asap || c->close_after_reply || c->input_closed)
        return; /* as Redis: counted, not written, for a client on its way out */
    int i = c->proto == 3;
    struct resp_buf *b = &fr->f[i];
    if (!fr->built[i]) {
        fr->built[i] = true;
        resp_w_push(b, i ? 3 : 2, fr->pat ? 4 : 3);
        resp_w_bulk_str(b, fr->pat ? "pmessage" : "message");
        if (fr->pat)
            resp_w_bulk(b, fr->pat, fr->plen);
        resp_w_bulk(b, fr->ch, fr->chlen);
        resp_w_bulk(b, fr->msg, fr->mlen);
    }
    if (b->oom) {
        LOG_WARNING("client %s: out of memory building a Pub/Sub message, closing", c->addr);
        client_close_asap(c);
        return;
    }
    client_push(c, b->data, b->len);
}

static size_t deliver_entry(struct ps_entry *e, const char *pat, size_t plen, const char *ch,
                            size_t chlen, const char *msg, size_t mlen)
{
    struct frames fr = {.pat = pat, .plen = plen, .ch = ch, .chlen = chlen, .msg = msg,
                        .mlen = mlen};
    resp_buf_init(&fr.f[0]);
    resp_buf_init(&fr.f[1]);
    for (uint32_t i = 0; i < e->n_subs; i++) {
        SRV_ASSERT(e->subs[i]->e == e);
        deliver(&fr, e->subs[i]->c);
    }
    resp_buf_free(&fr.f[0]);
    resp_buf_free(&fr.f[1]);
    return e->n_subs;
}

size_t pubsub_publish(struct server *s, const char *ch, size_t chlen, const char *msg,
                      size_t mlen)
{
    struct pubsub *ps = s->pubsub;
    if (!ps)
        return 0;
    size_t n = 0;
    struct ps_entry *e = map_find(&ps->map[K_CHAN], ch, chlen, XXH3_64bits(ch, chlen));
    if (e)
        n += deliver_entry(e, NULL, 0, ch, chlen, msg, mlen);
    const struct ps_map *pm = &ps->map[K_PAT];
    for (size_t i = 0; pm->n && i < pm->n_b; i++)
        for (struct ps_entry *p = pm->b[i]; p; p = p->next)
            if (glob_match(p->name, p->len, ch, chlen, false))
                n += deliver_entry(p, p->name, p->len, ch, chlen, msg, mlen);
    return n;
}

/* ------------------------------------------------------------------ introspection */

size_t pubsub_num_channels(const struct server *s)
{
    return s->pubsub ? s->pubsub->map[K_CHAN].n : 0;
}

size_t pubsub_num_patterns(const struct server *s)
{
    return s->pubsub ? s->pubsub->map[K_PAT].n : 0;
}

size_t pubsub_channel_subscribers(const struct server *s, const char *ch, size_t chlen)
{
    if (!s->pubsub)
        return 0;
    struct ps_entry *e = map_find(&s->pubsub->map[K_CHAN], ch, chlen, XXH3_64bits(ch, chlen));
    return e ? e->n_subs : 0;
}

void pubsub_each_channel(const struct server *s, const char *pat, size_t plen, size_t max,
                         void (*fn)(void *ud, const char *ch, size_t chlen), void *ud)
{
    if (!s->pubsub)
        return;
    const struct ps_map *m = &s->pubsub->map[K_CHAN];
    size_t calls = 0;
    for (size_t i = 0; i < m->n_b; i++) {
        for (struct ps_entry *e = m->b[i]; e; e = e->next) {
            if (pat && !glob_match(pat, plen, e->name, e->len, false))
                continue;
            if (calls++ >= max)
                return;
            fn(ud, e->name, e->len);
        }
    }
}

void pubsub_free(struct server *s)
{
    if (!s->pubsub)
        return;
    map_free(&s->pubsub->map[K_CHAN]);
    map_free(&s->pubsub->map[K_PAT]);
    free(s->pubsub);
    s->pubsub = NULL;
}
