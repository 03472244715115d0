/*
 * pst_mem.c - the in-memory engine, for unit tests and the simulator: a skip list of keys,
 * each with a chain of versions (MVCC), so snapshots cost O(1) and never copy the store.
 *
 * Model: every pst_write gets the next sequence number; all its ops carry it, so a reader
 * sees a batch entirely or not at all. A reader at sequence s (a snapshot, an iterator, or
 * "latest" = UINT64_MAX) sees, per key, the newest version with seq <= s; a dead version
 * (tombstone) means absent.
 *
 * Invariants:
 * - Skip list: level-0 links are doubly linked (prev) and sorted by pst_key_cmp; keys unique.
 * - Version chains are newest first, with strictly decreasing seq.
 * - keep_seq = min(oldest live snapshot, synced seq if the crash model is on, UINT64_MAX).
 *   A chain keeps every version newer than keep_seq plus the newest version <= keep_seq;
 *   older ones are invisible to every reader and freed. A node whose only version is a
 *   tombstone <= keep_seq is unlinked (unless it is queued for GC, which unlinks it later).
 * - Nodes that may hold garbage once keep_seq grows sit on the GC list (in_gc set).
 * - Deterministic: node heights come from a fixed-seed xorshift PRNG kept in the engine.
 * - Live snapshots (user ones and one per iterator) form a list sorted by seq, oldest
 *   first; a new snapshot always has the largest seq, so it is appended.
 */
#include "pst_internal.h"
#include "rc.h"

#define MAX_HEIGHT 24 /* p = 1/4: plenty for 2^40 keys */
#define LATEST UINT64_MAX

struct ver {
    struct ver *older;
    uint64_t seq;
    uint32_t vlen;
    bool dead;
    char val[]; /* vlen bytes + NUL */
};

struct node {
    struct ver *ver;       /* newest first; NULL only transiently */
    struct node *prev;     /* level-0 back link; the head for the first node */
    struct node *gc_next;  /* GC list link while in_gc */
    uint32_t klen;
    uint8_t height;
    uint8_t mark;          /* scratch for settle(), MARK_NONE between writes */
    bool in_gc;
    char *key;             /* points just past next[] */
    struct node *next[];   /* height links */
};

struct mem_snap {
    struct mem_snap *newer, *older;
    uint64_t seq;
};

struct mem_engine {
    struct pst_engine base;
    struct node *head;     /* sentinel, MAX_HEIGHT links, no key */
    int height;            /* levels in use, >= 1 */
    uint64_t seq;          /* last committed write */
    uint64_t synced_seq;   /* last write made durable (crash model) */
    bool crash_model;
    uint64_t rng;
    struct mem_snap *oldest, *newest; /* live snapshots */
    struct node *gc;       /* GC list */
    size_t gc_len, writes_since_gc;
    size_t nodes;
};

struct mem_iter {
    struct pst_raw_iter base;
    struct mem_engine *e;
    struct mem_snap snap;  /* registered for the iterator's lifetime */
    struct node *cur;      /* NULL: not valid */
};

static const struct pst_engine_ops mem_ops;
static const struct pst_raw_iter_ops mem_iter_ops;

static struct mem_engine *mem(struct pst_engine *e)
{
    PST_ASSERT(e->ops == &mem_ops);
    return (struct mem_engine *)e;
}

/* ---- skip list ---- */

static int random_height(struct mem_engine *m)
{
    int h = 1;
    for (;;) {
        /* xorshift64 */
        m->rng ^= m->rng << 13;
        m->rng ^= m->rng >> 7;
        m->rng ^= m->rng << 17;
        if (h >= MAX_HEIGHT || (m->rng & 3) != 0)
            return h;
        h++;
    }
}

static struct node *node_new(int height, const void *k, size_t klen)
{
    struct node *n = malloc(sizeof(*n) + (size_t)height * sizeof(struct node *) + klen + 1);
    if (!n)
        return NULL;
    memset(n, 0, sizeof(*n) + (size_t)height * sizeof(struct node *));
    n->height = (uint8_t)height;
    n->klen = (uint32_t)klen;
    n->key = (char *)&n->next[height];
    if (klen)
        memcpy(n->key, k, klen);
    n->key[klen] = '\0';
    return n;
}

static int node_cmp(const struct node *n, const void *k, size_t klen)
{
    return pst_key_cmp(n->key, n->klen, k, klen);
}

/* First node with key >= k; fills preds[level] with the last node < k when preds != NULL. */
static struct node *find_ge(struct mem_engine *m, const void *k, size_t klen,
                            struct node **preds)
{
    struct node *x = m->head;
    for (int lv = m->height - 1; lv >= 0; lv--) {
        while (x->next[lv] && node_cmp(x->next[lv], k, klen) < 0)
            x = x->next[lv];
        if (preds)
            preds[lv] = x;
    }
    return x->next[0];
}

static struct node *find_last(struct mem_engine *m)
{
    struct node *x = m->head;
    for (int lv = m->height - 1; lv >= 0; lv--)
        while (x->next[lv])
            x = x->next[lv];
    return x == m->head ? NULL : x;
}

static void link_node(struct mem_engine *m, struct node *n, struct node **preds)
{
    for (int lv = m->height; lv < n->height; lv++)
        preds[lv] = m->head;
    if (n->height > m->height)
        m->height = n->height;
    for (int lv = 0; lv < n->height; lv++) {
        n->next[lv] = preds[lv]->next[lv];
        preds[lv]->next[lv] = n;
    }
    n->prev = preds[0];
    if (n->next[0])
        n->next[0]->prev = n;
    m->nodes++;
}

static void free_chain(struct ver *v)
{
    while (v) {
        struct ver *o = v->older;
        free(v);
        v = o;
    }
}

static void unlink_node(struct mem_engine *m, struct node *n)
{
    struct node *preds[MAX_HEIGHT];
    struct node *found = find_ge(m, n->key, n->klen, preds);
    PST_ASSERT(found == n);
    for (int lv = 0; lv < n->height; lv++) {
        PST_ASSERT(preds[lv]->next[lv] == n);
        preds[lv]->next[lv] = n->next[lv];
    }
    if (n->next[0])
        n->next[0]->prev = n->prev;
    while (m->height > 1 && !m->head->next[m->height - 1])
        m->height--;
    free_chain(n->ver);
    free(n);
    m->nodes--;
}

/* ---- versions and garbage ---- */

static const struct ver *visible(const struct node *n, uint64_t seq)
{
    const struct ver *v = n->ver;
    while (v && v->seq > seq)
        v = v->older;
    return v && !v->dead ? v : NULL;
}

static uint64_t keep_seq(const struct mem_engine *m)
{
    uint64_t k = LATEST;
    if (m->oldest)
        k = m->oldest->seq;
    if (m->crash_model && m->synced_seq < k)
        k = m->synced_seq;
    return k;
}

/* Free versions no reader can see. Returns true if the node is now garbage as a whole (its
 * only version is a tombstone every reader sees). */
static bool prune(struct node *n, uint64_t keep)
{
    struct ver *v = n->ver;
    while (v && v->seq > keep)
        v = v->older;
    if (v) {
        free_chain(v->older);
        v->older = NULL;
    }
    return n->ver && n->ver->dead && !n->ver->older && n->ver->seq <= keep;
}

static bool has_garbage_later(const struct node *n)
{
    return n->ver->older || n->ver->dead;
}

/* Prune every node on the GC list against the current keep_seq. */
static void gc_run(struct mem_engine *m)
{
    uint64_t keep = keep_seq(m);
    struct node *list = m->gc;
    m->gc = NULL;
    m->gc_len = 0;
    m->writes_since_gc = 0;
    while (list) {
        struct node *n = list;
        list = n->gc_next;
        n->in_gc = false;
        n->gc_next = NULL;
        if (prune(n, keep)) {
            unlink_node(m, n);
        } else if (has_garbage_later(n)) {
            n->in_gc = true;
            n->gc_next = m->gc;
            m->gc = n;
            m->gc_len++;
        }
    }
}

/* Called when keep_seq may have grown. Amortized: a run costs O(list), so it only happens
 * once as many writes as the list holds have happened, or when it will empty the list. */
static void gc_maybe(struct mem_engine *m)
{
    if (!m->gc)
        return;
    bool drains = !m->oldest && !m->crash_model;
    if (drains || m->writes_since_gc >= m->gc_len)
        gc_run(m);
}

/* ---- engine ---- */

int pst_open_mem(struct pst_engine **out)
{
    PST_ASSERT(out != NULL);
    *out = NULL;
    struct mem_engine *m = calloc(1, sizeof(*m));
    if (!m)
        return RC_NOMEM;
    m->head = node_new(MAX_HEIGHT, NULL, 0);
    if (!m->head) {
        free(m);
        return RC_NOMEM;
    }
    m->base.ops = &mem_ops;
    m->height = 1;
    m->rng = 0x9E3779B97F4A7C15ull; /* fixed seed: same inserts, same shape */
    *out = &m->base;
    return RC_OK;
}

static void mem_close(struct pst_engine *pe)
{
    struct mem_engine *m = mem(pe);
    PST_ASSERT(m->oldest == NULL); /* snapshots and iterators are released first */
    struct node *n = m->head->next[0];
    while (n) {
        struct node *next = n->next[0];
        free_chain(n->ver);
        free(n);
        n = next;
    }
    free(m->head);
    free(m);
}

static const char *mem_last_error(struct pst_engine *pe)
{
    (void)mem(pe);
    return "";
}

static uint64_t snap_seq(const struct pst_snap *snap)
{
    return snap ? ((const struct mem_snap *)(const void *)snap)->seq : LATEST;
}

static int mem_get(struct pst_engine *pe, const struct pst_snap *snap, const void *key,
                   size_t klen, void **val, size_t *vlen)
{
    struct mem_engine *m = mem(pe);
    struct node *n = find_ge(m, key, klen, NULL);
    if (!n || node_cmp(n, key, klen) != 0)
        return RC_NOTFOUND;
    const struct ver *v = visible(n, snap_seq(snap));
    if (!v)
        return RC_NOTFOUND;
    *val = pst_dup_nul(v->val, v->vlen);
    if (!*val)
        return RC_NOMEM;
    *vlen = v->vlen;
    return RC_OK;
}

/* What one op needs, allocated before anything changes so a write is all or nothing. */
struct prep {
    struct ver *ver;
    struct node *node;   /* fresh node, only if the key was absent when prepared */
    struct node *target; /* the key's node: found when prepared, or set when applied */
};

static void prep_free(struct prep *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(p[i].ver);
        free(p[i].node);
    }
    free(p);
}

static struct prep *prepare(struct mem_engine *m, const struct pst_batch *b)
{
    struct prep *p = calloc(b->n ? b->n : 1, sizeof(*p));
    if (!p)
        return NULL;
    for (size_t i = 0; i < b->n; i++) {
        const struct pst_batch_op *op = &b->ops[i];
        const char *k = pst_op_key(b, op);
        p[i].ver = malloc(sizeof(struct ver) + op->vlen + 1);
        if (!p[i].ver)
            goto fail;
        struct node *n = find_ge(m, k, op->klen, NULL);
        if (n && node_cmp(n, k, op->klen) == 0) {
            p[i].target = n; /* stays linked: nothing unlinks before settle() */
        } else {
            p[i].node = node_new(random_height(m), k, op->klen);
            if (!p[i].node)
                goto fail;
        }
    }
    return p;
fail:
    prep_free(p, b->n);
    return NULL;
}

/* Apply one op at sequence seq; consumes p->ver and, if used, p->node. */
static void apply_op(struct mem_engine *m, const struct pst_batch *b,
                     const struct pst_batch_op *op, struct prep *p, uint64_t seq)
{
    struct node *n = p->target;
    if (!n) {
        /* Absent when prepared; an earlier op of this batch may have linked it since. */
        const char *k = pst_op_key(b, op);
        struct node *preds[MAX_HEIGHT];
        n = find_ge(m, k, op->klen, preds);
        if (!n || node_cmp(n, k, op->klen) != 0) {
            PST_ASSERT(p->node != NULL);
            n = p->node;
            p->node = NULL;
            link_node(m, n, preds);
        }
        p->target = n;
    }
    struct ver *v = p->ver;
    p->ver = NULL;
    v->seq = seq;
    v->dead = op->kind == PST_OP_DEL;
    v->vlen = v->dead ? 0 : op->vlen;
    if (v->vlen)
        memcpy(v->val, pst_op_value(b, op), v->vlen);
    v->val[v->vlen] = '\0';
    if (n->ver && n->ver->seq == seq) { /* same key earlier in this batch: later op wins */
        v->older = n->ver->older;
        free(n->ver);
    } else {
        PST_ASSERT(!n->ver || n->ver->seq < seq);
        v->older = n->ver;
    }
    n->ver = v;
}

enum { MARK_NONE = 0, MARK_SEEN, MARK_REMOVE, MARK_LISTED };

/* After a batch: prune the touched nodes, queue the ones that still hold old versions and
 * unlink the all-dead ones. A key may appear several times in p, so nodes are marked
 * (seen / to remove) and freed only once every occurrence has been looked at. */
static void settle(struct mem_engine *m, struct prep *p, size_t n_ops)
{
    uint64_t keep = keep_seq(m);
    for (size_t i = 0; i < n_ops; i++) {
        struct node *n = p[i].target;
        if (n->mark != MARK_NONE)
            continue;
        n->mark = MARK_SEEN;
        if (n->in_gc)
            continue; /* the GC run will see it */
        if (prune(n, keep)) {
            n->mark = MARK_REMOVE;
        } else if (has_garbage_later(n)) {
            n->in_gc = true;
            n->gc_next = m->gc;
            m->gc = n;
            m->gc_len++;
        }
    }
    struct node *doomed = NULL;
    for (size_t i = 0; i < n_ops; i++) {
        struct node *n = p[i].target;
        if (n->mark == MARK_REMOVE) {
            n->mark = MARK_LISTED;
            n->gc_next = doomed; /* free to reuse: not on the GC list */
            doomed = n;
        } else if (n->mark == MARK_SEEN) {
            n->mark = MARK_NONE;
        }
    }
    while (doomed) {
        struct node *n = doomed;
        doomed = n->gc_next;
        unlink_node(m, n);
    }
}

static int mem_write(struct pst_engine *pe, const struct pst_batch *b, bool sync)
{
    struct mem_engine *m = mem(pe);
    struct prep *p = prepare(m, b);
    if (!p)
        return RC_NOMEM;
    uint64_t seq = ++m->seq;
    for (size_t i = 0; i < b->n; i++)
        apply_op(m, b, &b->ops[i], &p[i], seq);
    if (sync)
        m->synced_seq = seq;
    settle(m, p, b->n);
    prep_free(p, b->n); /* only unused prepared nodes are left */
    m->writes_since_gc += b->n;
    gc_maybe(m);
    return RC_OK;
}

static void snap_insert(struct mem_engine *m, struct mem_snap *s, uint64_t seq)
{
    PST_ASSERT(seq <= m->seq);
    struct mem_snap *o = m->newest;
    while (o && o->seq > seq)
        o = o->older;
    s->seq = seq;
    s->older = o;
    s->newer = o ? o->newer : m->oldest;
    if (s->newer)
        s->newer->older = s;
    else
        m->newest = s;
    if (o)
        o->newer = s;
    else
        m->oldest = s;
}

static void snap_unregister(struct mem_engine *m, struct mem_snap *s)
{
    bool was_oldest = m->oldest == s;
    if (s->newer)
        s->newer->older = s->older;
    else
        m->newest = s->older;
    if (s->older)
        s->older->newer = s->newer;
    else
        m->oldest = s->newer;
    if (was_oldest)
        gc_maybe(m);
}

static struct pst_snap *mem_snap_take(struct pst_engine *pe)
{
    struct mem_engine *m = mem(pe);
    struct mem_snap *s = malloc(sizeof(*s));
    if (!s)
        return NULL;
    snap_insert(m, s, m->seq);
    return (struct pst_snap *)(void *)s;
}

static void mem_snap_release(struct pst_engine *pe, struct pst_snap *ps)
{
    snap_unregister(mem(pe), (struct mem_snap *)(void *)ps);
    free(ps);
}

/* ---- raw iterator ---- */

static struct mem_iter *mi(const struct pst_raw_iter *ri)
{
    PST_ASSERT(ri->ops == &mem_iter_ops);
    return (struct mem_iter *)ri; /* const only for the caller's sake */
}

/* From n, step (forward or back) to the first node visible at the iterator's seq. */
static void settle_fwd(struct mem_iter *it, struct node *n)
{
    while (n && !visible(n, it->snap.seq))
        n = n->next[0];
    it->cur = n;
}

static void settle_back(struct mem_iter *it, struct node *n)
{
    while (n && n != it->e->head && !visible(n, it->snap.seq))
        n = n->prev;
    it->cur = n == it->e->head ? NULL : n;
}

static struct pst_raw_iter *mem_iter_new(struct pst_engine *pe, const struct pst_snap *snap)
{
    struct mem_engine *m = mem(pe);
    struct mem_iter *it = calloc(1, sizeof(*it));
    if (!it)
        return NULL;
    it->base.ops = &mem_iter_ops;
    it->e = m;
    /* Own registration: the iterator stays consistent even if snap is released first. */
    snap_insert(m, &it->snap, snap ? snap_seq(snap) : m->seq);
    return &it->base;
}

static void mem_iter_free(struct pst_raw_iter *ri)
{
    struct mem_iter *it = mi(ri);
    snap_unregister(it->e, &it->snap);
    free(it);
}

static bool mem_iter_valid(const struct pst_raw_iter *ri) { return mi(ri)->cur != NULL; }

static void mem_iter_seek(struct pst_raw_iter *ri, const void *k, size_t klen)
{
    struct mem_iter *it = mi(ri);
    settle_fwd(it, find_ge(it->e, k, klen, NULL));
}

static void mem_iter_seek_last(struct pst_raw_iter *ri)
{
    struct mem_iter *it = mi(ri);
    struct node *n = find_last(it->e);
    settle_back(it, n ? n : it->e->head);
}

static void mem_iter_next(struct pst_raw_iter *ri)
{
    struct mem_iter *it = mi(ri);
    PST_ASSERT(it->cur != NULL);
    settle_fwd(it, it->cur->next[0]);
}

static void mem_iter_prev(struct pst_raw_iter *ri)
{
    struct mem_iter *it = mi(ri);
    PST_ASSERT(it->cur != NULL);
    settle_back(it, it->cur->prev);
}

static const void *mem_iter_key(const struct pst_raw_iter *ri, size_t *klen)
{
    const struct mem_iter *it = mi(ri);
    PST_ASSERT(it->cur != NULL);
    *klen = it->cur->klen;
    return it->cur->key;
}

static const void *mem_iter_value(const struct pst_raw_iter *ri, size_t *vlen)
{
    const struct mem_iter *it = mi(ri);
    PST_ASSERT(it->cur != NULL);
    const struct ver *v = visible(it->cur, it->snap.seq);
    PST_ASSERT(v != NULL);
    *vlen = v->vlen;
    return v->val;
}

static int mem_iter_status(const struct pst_raw_iter *ri)
{
    (void)mi(ri);
    return RC_OK;
}

/* ---- sizes, compaction, crash model ---- */

static uint64_t mem_approx_size(struct pst_engine *pe, const void *lo, size_t lolen,
                                const void *hi, size_t hilen)
{
    struct mem_engine *m = mem(pe);
    uint64_t sum = 0;
    for (struct node *n = find_ge(m, lo, lolen, NULL); n; n = n->next[0]) {
        if (hi && node_cmp(n, hi, hilen) >= 0)
            break;
        const struct ver *v = visible(n, LATEST);
        if (v)
            sum += n->klen + v->vlen;
    }
    return sum;
}

static void mem_compact_range(struct pst_engine *pe, const void *lo, size_t lolen,
                              const void *hi, size_t hilen)
{
    struct mem_engine *m = mem(pe);
    (void)lo, (void)lolen, (void)hi, (void)hilen;
    if (m->gc)
        gc_run(m);
}

static struct mem_engine *mem_checked(struct pst_engine *e)
{
    PST_ASSERT(e != NULL);
    PST_ASSERT(e->ops == &mem_ops); /* the crash model exists only in memory */
    return (struct mem_engine *)e;
}

void pst_mem_set_crash_model(struct pst_engine *e, bool on)
{
    struct mem_engine *m = mem_checked(e);
    m->crash_model = on;
    m->synced_seq = m->seq;
    gc_maybe(m);
}

void pst_mem_crash(struct pst_engine *e)
{
    struct mem_engine *m = mem_checked(e);
    PST_ASSERT(m->crash_model);
    PST_ASSERT(m->oldest == NULL);
    /* Drain the GC list first: every node left after the sweep is then not queued. */
    for (struct node *n = m->gc; n; n = n->gc_next)
        n->in_gc = false;
    m->gc = NULL;
    m->gc_len = 0;
    struct node *n = m->head->next[0];
    while (n) {
        struct node *next = n->next[0];
        struct ver *v = n->ver;
        while (v && v->seq > m->synced_seq) { /* lost: never made durable */
            struct ver *o = v->older;
            free(v);
            v = o;
        }
        n->ver = v;
        if (!v || prune(n, m->synced_seq))
            unlink_node(m, n);
        n = next;
    }
    m->seq = m->synced_seq;
}

static const struct pst_raw_iter_ops mem_iter_ops = {
    .free = mem_iter_free,
    .valid = mem_iter_valid,
    .seek = mem_iter_seek,
    .seek_last = mem_iter_seek_last,
    .next = mem_iter_next,
    .prev = mem_iter_prev,
    .key = mem_iter_key,
    .value = mem_iter_value,
    .status = mem_iter_status,
};

static const struct pst_engine_ops mem_ops = {
    .name = "mem",
    .close = mem_close,
    .get = mem_get,
    .write = mem_write,
    .snap_take = mem_snap_take,
    .snap_release = mem_snap_release,
    .iter_new = mem_iter_new,
    .approx_size = mem_approx_size,
    .compact_range = mem_compact_range,
    .last_error = mem_last_error,
};
