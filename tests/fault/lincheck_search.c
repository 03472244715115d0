/*
 * lincheck_search.c - the per-key linearizability search.
 *
 * Wing & Gong's algorithm with Lowe's memoisation (G. Lowe, "Testing for linearizability",
 * CCPE 2017; the same shape as Porcupine): the key's invoke and complete events sit in one
 * list sorted by time (an invoke before a complete at the same instant: such ops count as
 * concurrent). Any op whose invoke comes before the first complete event in the list may
 * be linearized next; linearizing it takes its two events out of the list. Reaching a
 * complete event means the op it belongs to could not be placed: backtrack. A (set of
 * linearized ops, model state) pair already explored is not explored again.
 *
 * Model, per key: state = (value or absent, version). set: value, version + 1 (1 when
 * absent); del: absent, version 0; cas IFVERSION n: applies iff version == n; a cas that
 * failed on -VERSION observes version != n; get observes the value (and version).
 *
 * Unknown outcomes: an op that timed out completes at +infinity, so it may be linearized at
 * any point after its invoke; "never" is the same as "after everything". The search is done
 * once every definite op is linearized. These reductions keep partitions (many timed-out
 * writes) from blowing the search up, all exact:
 *   - an unknown write of a value that a read returned (and no other op of the key writes)
 *     did happen before that read ended: it becomes definite, due by then;
 *   - definite ops are tried before unknown ones at each step, so an unknown write is
 *     placed as late as the observations allow;
 *   - unknown writes that no read can tell apart (same kind, same expected version, a value
 *     nobody read back) are interchangeable, so they are linearized only in invoke order;
 *   - an unknown op that would change nothing now (a cas on another version, a delete of
 *     an absent key) is not linearized now: leaving it for later can do everything that
 *     spending it as a no-op can.
 *
 * Memo entries hold two independent 64-bit Zobrist hashes of the linearized definite ops
 * plus the state, not the set itself (a false match needs a 128-bit collision), which keeps
 * memory small whatever the history's length; the unknown ops linearized are kept as an
 * exact bitset beside it, so a configuration that spent more (or more capable) unknown ops
 * than one already explored with the same definite ops and state is pruned: it can do no
 * more (see dominates()).
 * Budgets: time (checked every 1024 steps) and memo memory; either one running out gives
 * LC_UNKNOWN.
 */
#include "lincheck.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define UNOBSERVED (-3) /* canonical value of an unknown write nobody read back */
/* What an unknown op can still do, for dominance (a cas on version v: the version itself). */
#define LZ_SET (-1)     /* set of an unobserved value: any version -> (UNOBSERVED, +1) */
#define LZ_DEL (-2)
#define LZ_OTHER (-3)   /* only itself */
#define LZ_DIFF_MAX 64

struct st {
    int64_t ver;
    int32_t val;
};

struct ev {
    int32_t op;
    int32_t prev, next;
    bool call;
};

/* One (definite set, state) seen; head: the lazy sets it was seen with (arena offset + 1;
 * 0 = empty slot). */
struct memo_slot {
    uint64_t h1, h2;
    int64_t ver;
    int32_t val;
    uint32_t pad;
    size_t head;
};

struct frame {
    int32_t ev;
    int32_t phase;
    struct st s;
};

struct search {
    const struct lc_key *k;
    struct lc_op *ops;          /* a copy: values of unobserved unknown writes canonicalised */
    size_t n;
    struct ev *ev;              /* 2n events + sentinel at index 2n */
    int32_t sent;
    uint64_t *z1, *z2;          /* Zobrist keys per op */
    int32_t *prev_same;         /* previous interchangeable unknown op, or -1 */
    bool *done;                 /* linearized */
    struct memo_slot *memo;
    size_t memo_cap, memo_used;
    /* Unknown ops ("lazy") are tracked apart from the Zobrist hash, as a bitset over the
     * key's lazy ops, so the memo can prune by dominance (see memo_add). */
    int32_t *lazy_ix;           /* per op: index among the lazy ops, or -1 */
    int64_t *lazy_cls;          /* per lazy op: LZ_SET, LZ_DEL, LZ_OTHER or a cas's version */
    size_t nlazy, lw;           /* lazy ops, 64-bit words per lazy set */
    uint64_t *lazy_cur, *lazy_tmp;
    uint64_t *arena;            /* nodes: [next offset + 1][lw words], chained per slot */
    size_t arena_len, arena_cap;
    struct frame *stack;
    size_t depth;
    /* The longest linearized sequence seen, for the counterexample. */
    int32_t *best;
    int64_t best_depth;
    struct st best_state;
    int32_t best_stuck;
};

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The model: may op take effect in state s, and the state after it. */
static bool step(const struct lc_op *o, struct st s, struct st *ns)
{
    *ns = s;
    switch (o->kind) {
    case LC_GET:
        return s.val == o->val && (o->out_ver < 0 || s.ver == o->out_ver);
    case LC_SET:
        ns->val = o->val;
        ns->ver = s.val == LC_ABSENT ? 1 : s.ver + 1;
        return true;
    case LC_DEL:
        if (o->del_n >= 0 && (s.val != LC_ABSENT) != (o->del_n > 0))
            return false;
        ns->val = LC_ABSENT;
        ns->ver = 0;
        return true;
    case LC_CAS:
        if (o->cas_failed)
            return s.ver != o->ver && (o->out_ver < 0 || s.ver == o->out_ver);
        if (s.ver != o->ver)
            return !o->definite; /* an unknown cas may have found another version */
        ns->val = o->val;
        ns->ver = s.ver + 1;
        return o->out_ver < 0 || ns->ver == o->out_ver;
    default:
        return false;
    }
}

static int cmp_ev(const void *a, const void *b, void *arg)
{
    const struct search *s = arg;
    const struct ev *x = a, *y = b;
    int64_t tx = x->call ? s->ops[x->op].t0 : s->ops[x->op].t1;
    int64_t ty = y->call ? s->ops[y->op].t0 : s->ops[y->op].t1;
    if (tx != ty)
        return tx < ty ? -1 : 1;
    if (x->call != y->call)
        return x->call ? -1 : 1;
    return x->op < y->op ? -1 : x->op > y->op;
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return x < y ? -1 : x > y;
}

struct vt {
    int32_t val;
    int64_t t;
};

static int cmp_vt(const void *a, const void *b)
{
    const struct vt *x = a, *y = b;
    if (x->val != y->val)
        return x->val < y->val ? -1 : 1;
    return x->t < y->t ? -1 : x->t > y->t;
}

/* Unknown writes of a value that some read returned did take effect (when no other op of
 * the key writes that value): they become definite, due by the end of the first read that
 * saw them. Unknown writes whose value nobody read back become UNOBSERVED. */
static void canonicalise(struct search *s)
{
    struct vt *seen = calloc(s->n + 1, sizeof *seen), *wr = calloc(s->n + 1, sizeof *wr);
    size_t ns = 0, nw = 0;
    for (size_t i = 0; i < s->n; i++) {
        const struct lc_op *o = &s->ops[i];
        if (o->kind == LC_GET && o->val >= 0)
            seen[ns++] = (struct vt){.val = o->val, .t = o->t1};
        else if ((o->kind == LC_SET || o->kind == LC_CAS) && !o->cas_failed)
            wr[nw++] = (struct vt){.val = o->val, .t = 0};
    }
    qsort(seen, ns, sizeof *seen, cmp_vt); /* per value, the earliest-ending read first */
    qsort(wr, nw, sizeof *wr, cmp_vt);
    for (size_t i = 0; i < s->n; i++) {
        struct lc_op *o = &s->ops[i];
        if (o->definite || (o->kind != LC_SET && o->kind != LC_CAS))
            continue;
        struct vt key = {.val = o->val, .t = INT64_MIN};
        size_t lo = 0, hi = ns;
        while (lo < hi) { /* first entry >= key */
            size_t mid = (lo + hi) / 2;
            if (cmp_vt(&seen[mid], &key) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo == ns || seen[lo].val != o->val) {
            o->val = UNOBSERVED;
            continue;
        }
        key.t = 0;
        struct vt *w = bsearch(&key, wr, nw, sizeof *wr, cmp_vt);
        bool unique = w && (w == wr || w[-1].val != o->val) &&
                      (w + 1 == wr + nw || w[1].val != o->val);
        if (unique && seen[lo].t >= o->t0) {
            o->definite = true;
            o->promoted = true;
            o->t1 = seen[lo].t;
        }
    }
    free(seen);
    free(wr);
}

static int cmp_class(const void *a, const void *b, void *arg)
{
    const struct lc_op *ops = arg;
    const struct lc_op *x = &ops[*(const int32_t *)a], *y = &ops[*(const int32_t *)b];
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    if (x->ver != y->ver)
        return x->ver < y->ver ? -1 : 1;
    if (x->val != y->val)
        return x->val < y->val ? -1 : 1;
    if (x->t0 != y->t0)
        return x->t0 < y->t0 ? -1 : 1;
    return cmp_i32(a, b);
}

static bool same_class(const struct lc_op *x, const struct lc_op *y)
{
    return x->kind == y->kind && x->ver == y->ver && x->val == y->val && x->del_n == y->del_n;
}

/* prev_same[i]: the unknown op just before i (in invoke order) that has the same effect. */
static void link_classes(struct search *s)
{
    int32_t *idx = calloc(s->n + 1, sizeof *idx);
    size_t m = 0;
    for (size_t i = 0; i < s->n; i++) {
        s->prev_same[i] = -1;
        if (!s->ops[i].definite && (s->ops[i].kind != LC_SET || s->ops[i].val == UNOBSERVED))
            idx[m++] = (int32_t)i;
    }
    /* Only writes nobody can tell apart: unobserved values (or dels, or cas). A cas with
     * an observed value is distinguishable, so it keeps its own class. */
    qsort_r(idx, m, sizeof *idx, cmp_class, s->ops);
    for (size_t j = 1; j < m; j++) {
        const struct lc_op *a = &s->ops[idx[j - 1]], *b = &s->ops[idx[j]];
        bool indistinct = b->kind == LC_DEL || b->val == UNOBSERVED;
        if (indistinct && same_class(a, b))
            s->prev_same[idx[j]] = idx[j - 1];
    }
    free(idx);
}

static int search_init(struct search *s, const struct lc_key *k)
{
    memset(s, 0, sizeof *s);
    s->k = k;
    s->n = k->nops;
    s->ops = malloc((s->n + 1) * sizeof *s->ops);
    s->ev = calloc(2 * s->n + 1, sizeof *s->ev);
    s->z1 = malloc((s->n + 1) * sizeof *s->z1);
    s->z2 = malloc((s->n + 1) * sizeof *s->z2);
    s->prev_same = malloc((s->n + 1) * sizeof *s->prev_same);
    s->done = calloc(s->n + 1, sizeof *s->done);
    s->stack = malloc((s->n + 1) * sizeof *s->stack);
    s->best = malloc((s->n + 1) * sizeof *s->best);
    s->memo_cap = 1024;
    s->memo = calloc(s->memo_cap, sizeof *s->memo);
    if (!s->ops || !s->ev || !s->z1 || !s->z2 || !s->prev_same || !s->done || !s->stack ||
        !s->best || !s->memo)
        return -1;
    memcpy(s->ops, k->ops, s->n * sizeof *s->ops);
    canonicalise(s);
    link_classes(s);
    s->lazy_ix = malloc((s->n + 1) * sizeof *s->lazy_ix);
    if (!s->lazy_ix)
        return -1;
    s->lazy_cls = malloc((s->n + 1) * sizeof *s->lazy_cls);
    if (!s->lazy_cls)
        return -1;
    for (size_t i = 0; i < s->n; i++) {
        const struct lc_op *o = &s->ops[i];
        s->lazy_ix[i] = o->definite ? -1 : (int32_t)s->nlazy;
        if (o->definite)
            continue;
        s->lazy_cls[s->nlazy++] = o->kind == LC_DEL                           ? LZ_DEL
                                  : o->val != UNOBSERVED                      ? LZ_OTHER
                                  : o->kind == LC_SET                         ? LZ_SET
                                                                              : o->ver;
    }
    s->lw = (s->nlazy + 63) / 64;
    s->lazy_cur = calloc(s->lw + 1, sizeof *s->lazy_cur);
    s->lazy_tmp = calloc(s->lw + 1, sizeof *s->lazy_tmp);
    if (!s->lazy_cur || !s->lazy_tmp)
        return -1;
    uint64_t seed = 0x5eed;
    for (size_t i = 0; i < s->n; i++) {
        s->z1[i] = splitmix(&seed);
        s->z2[i] = splitmix(&seed);
        s->ev[2 * i] = (struct ev){.op = (int32_t)i, .call = true};
        s->ev[2 * i + 1] = (struct ev){.op = (int32_t)i, .call = false};
    }
    qsort_r(s->ev, 2 * s->n, sizeof *s->ev, cmp_ev, s);
    s->sent = (int32_t)(2 * s->n);
    for (int32_t i = 0; i <= s->sent; i++) {
        s->ev[i].prev = i == 0 ? s->sent : i - 1;
        s->ev[i].next = i == s->sent ? 0 : i + 1;
    }
    if (s->n == 0)
        s->ev[s->sent].next = s->ev[s->sent].prev = s->sent;
    s->best_depth = -1;
    return 0;
}

static void search_free(struct search *s)
{
    free(s->ops);
    free(s->ev);
    free(s->z1);
    free(s->z2);
    free(s->prev_same);
    free(s->done);
    free(s->memo);
    free(s->lazy_ix);
    free(s->lazy_cls);
    free(s->lazy_cur);
    free(s->lazy_tmp);
    free(s->arena);
    free(s->stack);
    free(s->best);
}

/* Where each op's events are in the list: filled once, the list is relinked in place. */
static void index_events(struct search *s, int32_t *call_at, int32_t *ret_at)
{
    for (int32_t i = 0; i < s->sent; i++) {
        if (s->ev[i].call)
            call_at[s->ev[i].op] = i;
        else
            ret_at[s->ev[i].op] = i;
    }
}

static void unlink_ev(struct search *s, int32_t e)
{
    s->ev[s->ev[e].prev].next = s->ev[e].next;
    s->ev[s->ev[e].next].prev = s->ev[e].prev;
}

static void relink_ev(struct search *s, int32_t e)
{
    s->ev[s->ev[e].prev].next = e;
    s->ev[s->ev[e].next].prev = e;
}

static uint64_t mix(uint64_t x)
{
    return splitmix(&x);
}

static bool memo_grow(struct search *s, size_t mem_max)
{
    size_t cap = s->memo_cap * 2;
    if (cap * sizeof(struct memo_slot) + s->arena_cap * 8 > mem_max)
        return false;
    struct memo_slot *m = calloc(cap, sizeof *m);
    if (!m)
        return false;
    for (size_t i = 0; i < s->memo_cap; i++) {
        if (!s->memo[i].head)
            continue;
        size_t j = (s->memo[i].h1 ^ mix(s->memo[i].h2)) & (cap - 1);
        while (m[j].head)
            j = (j + 1) & (cap - 1);
        m[j] = s->memo[i];
    }
    free(s->memo);
    s->memo = m;
    s->memo_cap = cap;
    return true;
}

/* Store lazy set `set` in a new arena node chained before `next`; its offset + 1. */
static size_t arena_push(struct search *s, const uint64_t *set, size_t next, size_t mem_max)
{
    size_t need = 1 + s->lw;
    if (s->arena_len + need > s->arena_cap) {
        size_t cap = s->arena_cap ? s->arena_cap * 2 : 4096;
        while (cap < s->arena_len + need)
            cap *= 2;
        if (cap * 8 + s->memo_cap * sizeof(struct memo_slot) > mem_max)
            return 0;
        uint64_t *a = realloc(s->arena, cap * 8);
        if (!a)
            return 0;
        s->arena = a;
        s->arena_cap = cap;
    }
    size_t at = s->arena_len;
    s->arena[at] = next;
    memcpy(&s->arena[at + 1], set, s->lw * 8);
    s->arena_len += need;
    return at + 1;
}

/* Does a configuration that spent the unknown ops `a` dominate one (same definite ops, same
 * state) that spent `b`? Yes when every op spent only in a can be paired with a distinct op
 * spent only in b that could do at least as much: then what b's configuration has left is
 * no more than what a's has left. Capabilities: a set of an unobserved value can do what
 * any cas of an unobserved value can (both leave (UNOBSERVED, version + 1)); otherwise only
 * the same class (set, del, cas on the same version). Too many differences: answer no,
 * which only costs search time. */
static bool dominates(const struct search *s, const uint64_t *a, const uint64_t *b)
{
    int64_t xa[LZ_DIFF_MAX], yb[LZ_DIFF_MAX];
    int nx = 0, ny = 0, xs = 0, ys = 0, xd = 0, yd = 0;
    for (size_t w = 0; w < s->lw; w++) {
        for (uint64_t m = a[w] & ~b[w]; m; m &= m - 1) {
            int64_t c = s->lazy_cls[w * 64 + (size_t)__builtin_ctzll(m)];
            if (c == LZ_OTHER || nx == LZ_DIFF_MAX)
                return false;
            xs += c == LZ_SET;
            xd += c == LZ_DEL;
            if (c >= 0)
                xa[nx++] = c;
        }
        for (uint64_t m = b[w] & ~a[w]; m; m &= m - 1) {
            int64_t c = s->lazy_cls[w * 64 + (size_t)__builtin_ctzll(m)];
            if (ny == LZ_DIFF_MAX)
                return false;
            ys += c == LZ_SET;
            yd += c == LZ_DEL;
            if (c >= 0)
                yb[ny++] = c;
        }
    }
    if (xd > yd || xs > ys)
        return false;
    int spare_sets = ys - xs;
    for (int i = 0; i < nx; i++) { /* each cas of a: a cas of b on that version, or a set */
        int j = 0;
        while (j < ny && yb[j] != xa[i])
            j++;
        if (j < ny)
            yb[j] = -100; /* used */
        else if (spare_sets-- <= 0)
            return false;
    }
    return true;
}

/* Record the configuration (definite set h1/h2, state st, lazy set `lazy`). Returns 1 when
 * it is new, 0 when it is dominated by one seen before: same definite set and state and a
 * subset of its unknown ops linearized (whatever the bigger set can still do, the smaller
 * one can too, by leaving the extra unknown ops out), -1 when over the memory budget. */
static int memo_add(struct search *s, uint64_t h1, uint64_t h2, struct st st,
                    const uint64_t *lazy, size_t mem_max)
{
    if ((s->memo_used + 1) * 2 > s->memo_cap && !memo_grow(s, mem_max))
        return -1;
    uint64_t a = h1 ^ mix((uint64_t)st.ver * 31 + (uint64_t)(uint32_t)st.val);
    uint64_t b = h2 ^ mix((uint64_t)st.val * 131 + (uint64_t)st.ver + 7);
    size_t j = (a ^ mix(b)) & (s->memo_cap - 1);
    while (s->memo[j].head) {
        struct memo_slot *m = &s->memo[j];
        if (m->h1 == a && m->h2 == b && m->ver == st.ver && m->val == st.val) {
            int scanned = 0;
            for (size_t at = m->head; at && scanned < 64; at = s->arena[at - 1], scanned++)
                if (dominates(s, &s->arena[at], lazy))
                    return 0;
            size_t head = arena_push(s, lazy, m->head, mem_max);
            if (!head)
                return -1;
            m->head = head;
            return 1;
        }
        j = (j + 1) & (s->memo_cap - 1);
    }
    size_t head = arena_push(s, lazy, 0, mem_max);
    if (!head)
        return -1;
    s->memo[j] = (struct memo_slot){.h1 = a, .h2 = b, .ver = st.ver, .val = st.val,
                                    .head = head};
    s->memo_used++;
    return 1;
}

static void note_dead_end(struct search *s, int32_t stuck_op, struct st cur)
{
    if ((int64_t)s->depth <= s->best_depth)
        return;
    s->best_depth = (int64_t)s->depth;
    for (size_t i = 0; i < s->depth; i++)
        s->best[i] = s->ev[s->stack[i].ev].op;
    s->best_state = cur;
    s->best_stuck = stuck_op;
}

/* May the call event of op be tried in this phase (0: definite ops, 1: unknown ones,
 * including those read back)? */
static bool candidate(const struct search *s, int32_t op, int phase)
{
    const struct lc_op *o = &s->ops[op];
    bool lazy = !o->definite || o->promoted; /* placed as late as the reads allow */
    if (phase == 0)
        return !lazy;
    if (!lazy)
        return false;
    return s->prev_same[op] < 0 || s->done[s->prev_same[op]];
}

struct budget {
    int64_t deadline_ms;
    size_t mem_max;
};

static enum lc_verdict search_run(struct search *s, const struct budget *b,
                                  const int32_t *ret_at)
{
    size_t remaining = 0;
    for (size_t i = 0; i < s->n; i++)
        remaining += s->ops[i].definite;
    uint64_t h1 = 0, h2 = 0, steps = 0;
    struct st cur = {.ver = 0, .val = LC_ABSENT};
    int32_t e = s->ev[s->sent].next;
    int phase = 0;
    for (;;) {
        if (remaining == 0)
            return LC_OK;
        if ((++steps & 1023) == 0 && now_ms() > b->deadline_ms)
            return LC_UNKNOWN;
        if (e == s->sent) /* the list always ends in a complete event */
            abort();
        struct ev *ev = &s->ev[e];
        if (ev->call) {
            struct st ns;
            int32_t op = ev->op;
            if (candidate(s, op, phase) && step(&s->ops[op], cur, &ns) &&
                (s->ops[op].definite || ns.val != cur.val || ns.ver != cur.ver)) {
                int32_t li = s->lazy_ix[op];
                uint64_t d1 = li < 0 ? s->z1[op] : 0, d2 = li < 0 ? s->z2[op] : 0;
                memcpy(s->lazy_tmp, s->lazy_cur, s->lw * 8);
                if (li >= 0)
                    s->lazy_tmp[li / 64] |= 1ULL << (li % 64);
                int added = memo_add(s, h1 ^ d1, h2 ^ d2, ns, s->lazy_tmp, b->mem_max);
                if (added < 0)
                    return LC_UNKNOWN;
                if (added) {
                    s->stack[s->depth++] = (struct frame){.ev = e, .phase = phase, .s = cur};
                    unlink_ev(s, e);
                    unlink_ev(s, ret_at[op]);
                    h1 ^= d1;
                    h2 ^= d2;
                    if (li >= 0)
                        s->lazy_cur[li / 64] |= 1ULL << (li % 64);
                    s->done[op] = true;
                    remaining -= s->ops[op].definite;
                    cur = ns;
                    e = s->ev[s->sent].next;
                    phase = 0;
                    continue;
                }
            }
            e = ev->next;
            continue;
        }
        if (phase == 0) { /* definite candidates exhausted: now the unknown ones */
            phase = 1;
            e = s->ev[s->sent].next;
            continue;
        }
        note_dead_end(s, ev->op, cur);
        if (s->depth == 0)
            return LC_BAD;
        struct frame f = s->stack[--s->depth];
        int32_t op = s->ev[f.ev].op;
        relink_ev(s, ret_at[op]);
        relink_ev(s, f.ev);
        if (s->lazy_ix[op] < 0) {
            h1 ^= s->z1[op];
            h2 ^= s->z2[op];
        } else {
            s->lazy_cur[s->lazy_ix[op] / 64] &= ~(1ULL << (s->lazy_ix[op] % 64));
        }
        s->done[op] = false;
        remaining += s->ops[op].definite;
        cur = f.s;
        phase = f.phase;
        e = s->ev[f.ev].next;
    }
}

/* ---- counterexample ---- */

static void print_op(const struct lc_history *h, const struct lc_op *o, int64_t origin,
                     const char *mark, FILE *out)
{
    char when[64], what[256];
    if (o->t1 == LC_T_INF || o->promoted)
        snprintf(when, sizeof when, "[%.3f .. inf ms]", (double)(o->t0 - origin) / 1e6);
    else
        snprintf(when, sizeof when, "[%.3f .. %.3f ms]", (double)(o->t0 - origin) / 1e6,
                 (double)(o->t1 - origin) / 1e6);
    const char *r = o->promoted ? "unknown (read back)" : o->definite ? "ok" : "unknown";
    const char *v = o->val == UNOBSERVED ? "(never read)" : lc_val_str(h, o->val);
    switch (o->kind) {
    case LC_GET:
        snprintf(what, sizeof what, "get -> \"%s\"%s", v, o->out_ver >= 0 ? " (ver" : "");
        if (o->out_ver >= 0)
            snprintf(what + strlen(what), sizeof what - strlen(what), " %lld)",
                     (long long)o->out_ver);
        break;
    case LC_SET:
        snprintf(what, sizeof what, "%s \"%s\" %s", o->from_txn ? "txn-set" : "set", v, r);
        break;
    case LC_DEL:
        snprintf(what, sizeof what, "del %s (n=%d)", r, o->del_n);
        break;
    default:
        if (o->cas_failed)
            snprintf(what, sizeof what, "cas ver=%lld \"%s\" -> VERSION (cur %lld)",
                     (long long)o->ver, v, (long long)o->out_ver);
        else
            snprintf(what, sizeof what, "cas ver=%lld \"%s\" %s (new ver %lld)",
                     (long long)o->ver, v, r, (long long)o->out_ver);
    }
    fprintf(out, "   %s line %d p=%d %s %s\n", mark, o->line, o->p, when, what);
}

static void print_window(const struct lc_history *h, const struct search *s, int wmax,
                         FILE *out)
{
    int64_t origin = INT64_MAX;
    for (size_t i = 0; i < s->n; i++)
        origin = s->ops[i].t0 < origin ? s->ops[i].t0 : origin;
    bool *in_prefix = calloc(s->n + 1, sizeof *in_prefix);
    for (int64_t i = 0; i < s->best_depth; i++)
        in_prefix[s->best[i]] = true;
    int64_t show = s->best_depth < 8 ? s->best_depth : 8;
    fprintf(out, "key %s: counterexample (times relative to the key's first invoke)\n",
            s->k->key);
    fprintf(out, "  longest linearizable prefix: %lld ops, ending in value=\"%s\" ver=%lld;"
                 " its last %lld:\n", (long long)s->best_depth,
            lc_val_str(h, s->best_state.val), (long long)s->best_state.ver, (long long)show);
    for (int64_t i = s->best_depth - show; i < s->best_depth; i++)
        print_op(h, &s->ops[s->best[i]], origin, " ", out);
    const struct lc_op *x = &s->ops[s->best_stuck];
    fprintf(out, "  first op that cannot be linearized after it:\n");
    print_op(h, x, origin, "!", out);
    fprintf(out, "  ops concurrent with it (* = in the prefix):\n");
    int shown = 0;
    for (size_t i = 0; i < s->n && shown < wmax; i++) {
        const struct lc_op *o = &s->ops[i];
        if ((int32_t)i == s->best_stuck || o->t0 > x->t1 || o->t1 < x->t0)
            continue;
        print_op(h, o, origin, in_prefix[i] ? "*" : " ", out);
        shown++;
    }
    free(in_prefix);
}

/* ---- a direct proof of staleness, for when the search runs out of budget ---- */

static int cmp_t0(const void *a, const void *b, void *arg)
{
    const struct lc_op *ops = arg;
    int64_t x = ops[*(const int32_t *)a].t0, y = ops[*(const int32_t *)b].t0;
    return x < y ? -1 : x > y;
}

static bool is_def_write(const struct lc_op *o)
{
    return o->definite && !o->cas_failed && o->kind != LC_GET;
}

/* A read R of value v, where v's only writer W completed before some other definite write
 * W2 was invoked and W2 completed before R was invoked, is not linearizable: W2 sits
 * between W and R in every linearization and no op writes v again. Returns true and the
 * three ops when it finds one. Cost: for each read, the writes between W and R. */
static bool find_stale_read(const struct search *s, int32_t out[3])
{
    int32_t *wr = malloc((s->n + 1) * sizeof *wr);
    size_t nw = 0;
    bool found = false;
    if (!wr)
        return false;
    for (size_t i = 0; i < s->n; i++)
        if (s->ops[i].kind != LC_GET && !s->ops[i].cas_failed)
            wr[nw++] = (int32_t)i;
    qsort_r(wr, nw, sizeof *wr, cmp_t0, s->ops);
    for (size_t r = 0; r < s->n && !found; r++) {
        const struct lc_op *ro = &s->ops[r];
        if (ro->kind != LC_GET || ro->val < 0)
            continue;
        int32_t w = -1;
        int writers = 0;
        for (size_t j = 0; j < nw; j++) { /* the writers of v (values are unique: one) */
            const struct lc_op *o = &s->ops[wr[j]];
            if (o->kind != LC_DEL && o->val == ro->val && (w = wr[j], ++writers) > 1)
                break;
        }
        if (writers != 1 || s->ops[w].t1 == LC_T_INF)
            continue;
        for (size_t j = 0; j < nw && s->ops[wr[j]].t0 < ro->t0; j++) {
            const struct lc_op *o = &s->ops[wr[j]];
            if (wr[j] != w && is_def_write(o) && o->t0 > s->ops[w].t1 && o->t1 < ro->t0) {
                out[0] = w;
                out[1] = wr[j];
                out[2] = (int32_t)r;
                found = true;
                break;
            }
        }
    }
    free(wr);
    return found;
}

enum lc_verdict lc_check_key(const struct lc_history *h, struct lc_key *k,
                             const struct lc_options *o, FILE *out)
{
    struct search s;
    if (search_init(&s, k) != 0) {
        search_free(&s);
        k->states = 0;
        return LC_UNKNOWN;
    }
    int32_t *call_at = malloc((s.n + 1) * sizeof *call_at);
    int32_t *ret_at = malloc((s.n + 1) * sizeof *ret_at);
    enum lc_verdict v = LC_UNKNOWN;
    if (call_at && ret_at) {
        index_events(&s, call_at, ret_at);
        struct budget b = {
            .deadline_ms = now_ms() + (o->time_budget_ms > 0 ? o->time_budget_ms : 10000),
            .mem_max = (size_t)(o->mem_budget_mb > 0 ? o->mem_budget_mb : 512) << 20,
        };
        v = search_run(&s, &b, ret_at);
    }
    k->states = s.memo_used;
    int32_t stale[3];
    if (v == LC_UNKNOWN && find_stale_read(&s, stale)) {
        v = LC_BAD;
        if (out) {
            int64_t origin = s.ops[stale[0]].t0;
            fprintf(out, "key %s: search budget ran out, but this read is stale (times "
                         "relative to the first op shown):\n", k->key);
            print_op(h, &s.ops[stale[0]], origin, "w", out);
            print_op(h, &s.ops[stale[1]], origin, ">", out);
            print_op(h, &s.ops[stale[2]], origin, "!", out);
            fprintf(out, "  (w wrote the value, > overwrote it after w completed, ! read it "
                         "after > completed)\n");
        }
    } else if (v == LC_BAD && out) {
        print_window(h, &s, o->window_max > 0 ? o->window_max : 40, out);
    }
    free(call_at);
    free(ret_at);
    search_free(&s);
    return v;
}
