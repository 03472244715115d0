/*
 * sim_check.c - raftsim's PRNG, its application state machine and its safety checkers.
 *
 * The checkers are incremental so that they can run after every step:
 *  - term_leader[term] remembers the one leader ever seen in a term;
 *  - pairs maps (index, term) to the identity of the entry persisted there (hash of type
 *    and data, and the term of the entry before it); a second member persisting the same
 *    (index, term) must hold the same entry after the same previous term (log matching by
 *    induction, Raft paper 5.3);
 *  - clog[index] is the global committed log: set by the first member whose commit index
 *    covers the index, compared by every later one, and by every apply; clog[].chain is
 *    the application's running hash after applying that index, so snapshots can be checked;
 *  - a member's commit index never decreases within one incarnation;
 *  - a ReadIndex read is served once the member applied its read index, and must see the
 *    key's last write acknowledged (applied anywhere) before the read began.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

/* --- PRNG: xoshiro256** seeded through splitmix64 ---------------------------------------- */
static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void sim_rng_seed(struct sim_rng *g, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        g->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t sim_rng_next(struct sim_rng *g)
{
    uint64_t *s = g->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint32_t sim_rng_below(struct sim_rng *g, uint32_t n)
{
    return (uint32_t)(((sim_rng_next(g) >> 32) * (uint64_t)n) >> 32);
}

bool sim_rng_chance(struct sim_rng *g, uint32_t per_mille)
{
    return sim_rng_below(g, 1000) < per_mille;
}

uint64_t sim_mix(uint64_t h, uint64_t v)
{
    uint64_t x = h ^ (v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2));
    return splitmix64(&x);
}

uint64_t sim_hash_bytes(const void *p, size_t n, uint64_t h)
{
    const uint8_t *b = p;
    h ^= 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return sim_mix(h, n);
}

uint64_t sim_entry_hash(const struct raft_entry *e)
{
    return sim_hash_bytes(e->data, e->len, e->type + 1);
}

/* --- application ---------------------------------------------------------------------- */
static void conf_remove(struct raft_conf *c, raft_id id)
{
    for (uint32_t i = 0; i < c->n_voters; i++)
        if (c->voters[i] == id)
            c->voters[i--] = c->voters[--c->n_voters];
    for (uint32_t i = 0; i < c->n_learners; i++)
        if (c->learners[i] == id)
            c->learners[i--] = c->learners[--c->n_learners];
}

static void conf_apply(struct raft_conf *c, const struct raft_entry *e)
{
    struct raft_conf_change cc;
    if (raft_conf_change_decode(e->data, e->len, &cc) != RAFT_OK)
        return;
    conf_remove(c, cc.node);
    if (cc.type == RAFT_CC_ADD_VOTER && c->n_voters < RAFT_VOTERS_MAX)
        c->voters[c->n_voters++] = cc.node;
    else if (cc.type == RAFT_CC_ADD_LEARNER && c->n_learners < RAFT_LEARNERS_MAX)
        c->learners[c->n_learners++] = cc.node;
}

void sim_app_apply(struct sim_app *a, const struct raft_entry *e)
{
    if (e->type == RAFT_ENTRY_CONF) {
        conf_apply(&a->conf, e);
    } else if (e->len == 10 && e->data[0] == 'S' && e->data[1] < SIM_KEYS) {
        uint64_t v = 0;
        for (int i = 0; i < 8; i++)
            v |= (uint64_t)e->data[2 + i] << (8 * i);
        a->val[e->data[1]] = v;
        a->val_index[e->data[1]] = e->index;
    }
    a->applied = e->index;
    a->applied_term = e->term;
    a->chain = sim_mix(sim_mix(a->chain, e->index), sim_mix(e->term, sim_entry_hash(e)));
}

/* --- committed log -------------------------------------------------------------------- */
struct sim_committed *sim_clog_at(struct sim *s, raft_index i)
{
    if (i >= s->cap_clog) {
        size_t cap = s->cap_clog ? s->cap_clog : 1024;
        while (cap <= i)
            cap *= 2;
        s->clog = realloc(s->clog, cap * sizeof(s->clog[0]));
        if (!s->clog)
            abort();
        memset(&s->clog[s->cap_clog], 0, (cap - s->cap_clog) * sizeof(s->clog[0]));
        s->cap_clog = cap;
    }
    if (i >= s->n_clog)
        s->n_clog = i + 1;
    return &s->clog[i];
}

static void check_committed(struct sim *s, struct sim_member *mb, const struct raft_entry *e,
                            raft_term seen_term, const char *what)
{
    struct sim_committed *c = sim_clog_at(s, e->index);
    uint64_t h = sim_entry_hash(e);
    if (c->term == 0 || seen_term < c->seen_term)
        c->seen_term = seen_term;
    if (c->term == 0) {
        c->term = e->term;
        c->hash = h;
    } else if (c->term != e->term || c->hash != h) {
        sim_fail(s, "%s: node %llu has index %llu term %llu, but the committed entry there "
                 "has term %llu%s", what, (unsigned long long)mb->id,
                 (unsigned long long)e->index, (unsigned long long)e->term,
                 (unsigned long long)c->term, c->term == e->term ? " (other data)" : "");
    }
}

/* Leader completeness (paper 5.4.1, 5.4.3): a leader of term T holds every entry committed
 * in an earlier term. seen_term is an upper bound of the term an entry was committed in
 * (the term of the first member seen with its commit index covering it), so only entries
 * with seen_term < T are required. */
static void check_completeness(struct sim *s, struct sim_member *mb, raft_term term)
{
    for (raft_index i = 1; i < s->n_clog && !s->failed; i++) {
        const struct sim_committed *c = &s->clog[i];
        if (c->term == 0 || c->seen_term >= term)
            continue;
        const struct raft_entry *e;
        int rc = raft_entry_at(mb->r, i, &e);
        if (rc == RAFT_ERR_COMPACTED)
            continue;
        if (rc != RAFT_OK || e->term != c->term || sim_entry_hash(e) != c->hash)
            sim_fail(s, "leader completeness: node %llu is leader of term %llu but lacks "
                     "entry %llu (term %llu) committed by term %llu (it has %s)",
                     (unsigned long long)mb->id, (unsigned long long)term,
                     (unsigned long long)i, (unsigned long long)c->term,
                     (unsigned long long)c->seen_term,
                     rc != RAFT_OK ? "no entry there" : "another entry");
    }
}

static void check_leader(struct sim *s, struct sim_member *mb, raft_term term)
{
    if (term >= s->cap_term_leader) {
        size_t cap = s->cap_term_leader ? s->cap_term_leader : 256;
        while (cap <= term)
            cap *= 2;
        s->term_leader = realloc(s->term_leader, cap * sizeof(raft_term));
        if (!s->term_leader)
            abort();
        memset(&s->term_leader[s->cap_term_leader], 0,
               (cap - s->cap_term_leader) * sizeof(raft_term));
        s->cap_term_leader = cap;
    }
    if (s->term_leader[term] == 0) {
        s->term_leader[term] = mb->id;
        s->n_elections++;
        check_completeness(s, mb, term);
    }
    else if (s->term_leader[term] != mb->id)
        sim_fail(s, "two leaders in term %llu: node %llu and node %llu",
                 (unsigned long long)term, (unsigned long long)s->term_leader[term],
                 (unsigned long long)mb->id);
}

/* Per step, per running member: election safety, commit monotonicity, committed prefix. */
void sim_check_member(struct sim *s, struct sim_member *mb)
{
    struct raft_status st;
    raft_status(mb->r, &st);
    if (st.role == RAFT_LEADER)
        check_leader(s, mb, st.term);
    if (st.commit < mb->last_commit)
        sim_fail(s, "node %llu commit index went back from %llu to %llu (term %llu)",
                 (unsigned long long)mb->id, (unsigned long long)mb->last_commit,
                 (unsigned long long)st.commit, (unsigned long long)st.term);
    mb->last_commit = st.commit;
    for (raft_index i = mb->checked_commit + 1; i <= st.commit && !s->failed; i++) {
        const struct raft_entry *e;
        int rc = raft_entry_at(mb->r, i, &e);
        if (rc == RAFT_ERR_COMPACTED)
            continue;
        if (rc != RAFT_OK) {
            sim_fail(s, "node %llu commit %llu but entry %llu unavailable (%s), term %llu",
                     (unsigned long long)mb->id, (unsigned long long)st.commit,
                     (unsigned long long)i, raft_strerror(rc), (unsigned long long)st.term);
            break;
        }
        check_committed(s, mb, e, st.term, "committed log changed");
    }
    if (st.commit > mb->checked_commit)
        mb->checked_commit = st.commit;
}

/* --- log matching ------------------------------------------------------------------------ */
static void pairs_grow(struct sim *s)
{
    size_t old_cap = s->cap_pairs;
    struct sim_pair *old = s->pairs;
    s->cap_pairs = old_cap ? old_cap * 2 : 4096;
    s->pairs = calloc(s->cap_pairs, sizeof(struct sim_pair));
    if (!s->pairs)
        abort();
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].index == 0)
            continue;
        size_t j = sim_mix(old[i].index, old[i].term) & (s->cap_pairs - 1);
        while (s->pairs[j].index != 0)
            j = (j + 1) & (s->cap_pairs - 1);
        s->pairs[j] = old[i];
    }
    free(old);
}

static raft_term disk_term(const struct sim_disk *d, raft_index i)
{
    if (i == 0)
        return 0;
    if (i == d->snap.index)
        return d->snap.term;
    if (i < d->snap.index || i - d->snap.index > d->n_log)
        return (raft_term)-1;
    return d->log[i - d->snap.index - 1].term;
}

/* e was just persisted on mb's disk (after truncation and append). */
void sim_check_persisted(struct sim *s, struct sim_member *mb, const struct raft_entry *e)
{
    if (s->n_pairs * 10 >= s->cap_pairs * 7)
        pairs_grow(s);
    raft_term prev = disk_term(&mb->disk, e->index - 1);
    uint64_t h = sim_entry_hash(e);
    size_t j = sim_mix(e->index, e->term) & (s->cap_pairs - 1);
    while (s->pairs[j].index != 0) {
        struct sim_pair *p = &s->pairs[j];
        if (p->index == e->index && p->term == e->term) {
            if (p->hash != h)
                sim_fail(s, "log matching: node %llu index %llu term %llu holds other data "
                         "than another member's entry", (unsigned long long)mb->id,
                         (unsigned long long)e->index, (unsigned long long)e->term);
            else if (p->prev_term != prev && prev != (raft_term)-1)
                sim_fail(s, "log matching: node %llu index %llu term %llu follows term %llu, "
                         "another member's follows term %llu", (unsigned long long)mb->id,
                         (unsigned long long)e->index, (unsigned long long)e->term,
                         (unsigned long long)prev, (unsigned long long)p->prev_term);
            return;
        }
        j = (j + 1) & (s->cap_pairs - 1);
    }
    s->pairs[j] = (struct sim_pair){e->index, e->term, h, prev};
    s->n_pairs++;
}

/* --- apply and reads -------------------------------------------------------------------- */
void sim_check_apply(struct sim *s, struct sim_member *mb, const struct raft_entry *e)
{
    if (e->index != mb->app.applied + 1) {
        sim_fail(s, "node %llu applied index %llu after %llu (gap or repeat), term %llu",
                 (unsigned long long)mb->id, (unsigned long long)e->index,
                 (unsigned long long)mb->app.applied, (unsigned long long)e->term);
        return;
    }
    check_committed(s, mb, e, (raft_term)-1, "applied entry differs");
    sim_app_apply(&mb->app, e);
    struct sim_committed *c = sim_clog_at(s, e->index);
    if (c->chain == 0)
        c->chain = mb->app.chain;
    else if (c->chain != mb->app.chain)
        sim_fail(s, "node %llu state after applying %llu differs from another member's",
                 (unsigned long long)mb->id, (unsigned long long)e->index);
    if (e->index > s->max_applied) { /* first apply anywhere: the write is acknowledged */
        s->max_applied = e->index;
        s->n_conf_applied += e->type == RAFT_ENTRY_CONF;
        if (e->type == RAFT_ENTRY_NORMAL && e->len == 10 && e->data[1] < SIM_KEYS)
            s->last_write[e->data[1]] = e->index;
    }
}

void sim_check_reads(struct sim *s, struct sim_member *mb)
{
    for (uint32_t i = 0; i < s->n_reads && !s->failed; i++) {
        struct sim_read *rd = &s->reads[i];
        if (rd->member != mb->id || !rd->answered || mb->app.applied < rd->read_index)
            continue;
        raft_index seen = mb->app.val_index[rd->key];
        sim_log(s, "read ctx=%llu on node %llu served: key %d at index %llu (need >= %llu)",
                (unsigned long long)rd->ctx, (unsigned long long)mb->id, rd->key,
                (unsigned long long)seen, (unsigned long long)rd->required);
        if (seen < rd->required)
            sim_fail(s, "stale read: node %llu served key %d written at index %llu, but the "
                     "write at index %llu was acknowledged before the read began (read index "
                     "%llu, started step %llu)", (unsigned long long)mb->id, rd->key,
                     (unsigned long long)seen, (unsigned long long)rd->required,
                     (unsigned long long)rd->read_index,
                     (unsigned long long)rd->started_step);
        s->n_reads_served++;
        s->reads[i--] = s->reads[--s->n_reads];
    }
}

void sim_check_snapshot(struct sim *s, struct sim_member *mb, const struct sim_staged *st)
{
    if (st->index <= mb->app.applied) {
        sim_fail(s, "node %llu asked to install snapshot %llu but it applied %llu already",
                 (unsigned long long)mb->id, (unsigned long long)st->index,
                 (unsigned long long)mb->app.applied);
        return;
    }
    struct sim_committed *c = sim_clog_at(s, st->index);
    if (c->term != st->term || c->chain != st->app.chain)
        sim_fail(s, "node %llu installs snapshot %llu term %llu that does not match the "
                 "committed log (term %llu)", (unsigned long long)mb->id,
                 (unsigned long long)st->index, (unsigned long long)st->term,
                 (unsigned long long)c->term);
}

void sim_check_free(struct sim *s)
{
    free(s->clog);
    free(s->pairs);
    free(s->term_leader);
    s->clog = NULL;
    s->pairs = NULL;
    s->term_leader = NULL;
    s->n_clog = s->cap_clog = s->n_pairs = s->cap_pairs = s->cap_term_leader = 0;
}
