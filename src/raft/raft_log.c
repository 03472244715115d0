/*
 * raft_log.c - the in-memory Raft log since the last snapshot: append, truncate a
 * conflicting suffix, term lookup, compaction, snapshot restore.
 *
 * Invariants: ents[i].index == snap_index + 1 + i; each entry owns its data (one malloc);
 * committed entries are never truncated (paper 5.3, Log Matching / Leader Completeness):
 * truncating at or below commit is a programmer error, not input error.
 */
#include "raft/raft_internal.h"

raft_index rlog_first_index(const struct raft_log *l) { return l->snap_index + 1; }

raft_index rlog_last_index(const struct raft_log *l) { return l->snap_index + l->n; }

raft_term rlog_last_term(const struct raft_log *l)
{
    return l->n ? l->ents[l->n - 1].term : l->snap_term;
}

int rlog_term(const struct raft_log *l, raft_index i, raft_term *t)
{
    if (i < l->snap_index) return RAFT_ERR_COMPACTED;
    if (i > rlog_last_index(l)) return RAFT_ERR_UNAVAILABLE;
    *t = i == l->snap_index ? l->snap_term : l->ents[i - l->snap_index - 1].term;
    return RAFT_OK;
}

bool rlog_match(const struct raft_log *l, raft_index i, raft_term t)
{
    raft_term have = 0;
    if (rlog_term(l, i, &have) != RAFT_OK) return false;
    return have == t;
}

struct raft_entry *rlog_entry(const struct raft_log *l, raft_index i)
{
    if (i <= l->snap_index || i > rlog_last_index(l)) return NULL;
    return &l->ents[i - l->snap_index - 1];
}

int rlog_append(struct raft_log *l, const struct raft_entry *ents, size_t n)
{
    if (n == 0) return RAFT_OK;
    if (l->n + n > l->cap) {
        size_t cap = l->cap ? l->cap : 64;
        while (cap < l->n + n) cap *= 2;
        struct raft_entry *v = realloc(l->ents, cap * sizeof(*v));
        if (!v) return RAFT_ERR_NOMEM;
        l->ents = v;
        l->cap = cap;
    }
    for (size_t i = 0; i < n; i++) {
        struct raft_entry e = ents[i];
        e.data = NULL;
        if (e.len) {
            e.data = malloc(e.len);
            if (!e.data) return RAFT_ERR_NOMEM; /* entries before i stay: still a valid log */
            memcpy(e.data, ents[i].data, e.len);
        }
        l->ents[l->n++] = e;
    }
    return RAFT_OK;
}

void rlog_truncate_from(struct raft_log *l, raft_index i)
{
    raft_index last = rlog_last_index(l);
    if (i > last) return;
    size_t keep = (size_t)(i - l->snap_index - 1);
    for (size_t k = keep; k < l->n; k++) free(l->ents[k].data);
    l->n = keep;
    if (l->unstable_from > i) l->unstable_from = i;
    if (l->stable >= i) l->stable = i - 1;
}

void rlog_compact(struct raft_log *l, raft_index i, raft_term t, const struct raft_conf *c)
{
    size_t drop = (size_t)(i - l->snap_index);
    if (drop > l->n) drop = l->n;
    for (size_t k = 0; k < drop; k++) free(l->ents[k].data);
    memmove(l->ents, l->ents + drop, (l->n - drop) * sizeof(*l->ents));
    l->n -= drop;
    l->snap_index = i;
    l->snap_term = t;
    l->snap_conf = *c;
    if (l->unstable_from < i + 1) l->unstable_from = i + 1;
    if (l->stable < i) l->stable = i;
}

void rlog_restore(struct raft_log *l, const struct raft_snapshot_meta *m)
{
    for (size_t k = 0; k < l->n; k++) free(l->ents[k].data);
    l->n = 0;
    l->snap_index = m->index;
    l->snap_term = m->term;
    l->snap_conf = m->conf;
    l->stable = m->index;
    l->unstable_from = m->index + 1;
    l->commit = m->index;
    l->applying = m->index;
}

void rlog_free(struct raft_log *l)
{
    for (size_t k = 0; k < l->n; k++) free(l->ents[k].data);
    free(l->ents);
    memset(l, 0, sizeof(*l));
}

raft_index rlog_conflict_by_term(const struct raft_log *l, raft_index i, raft_term t)
{
    raft_index last = rlog_last_index(l);
    if (i > last) i = last;
    while (i > l->snap_index) {
        if (l->ents[i - l->snap_index - 1].term <= t) return i;
        i--;
    }
    return l->snap_index;
}

/* Paper 5.4.1: the later last term wins; on equal terms the longer log. */
bool rlog_up_to_date(const struct raft_log *l, raft_index last, raft_term last_term)
{
    raft_term mine = rlog_last_term(l);
    return last_term > mine || (last_term == mine && last >= rlog_last_index(l));
}

struct raft_entry *rlog_copy_block(const struct raft_entry *src, size_t n)
{
    if (n == 0) return NULL;
    size_t bytes = n * sizeof(struct raft_entry);
    for (size_t i = 0; i < n; i++) bytes += src[i].len;
    struct raft_entry *blk = malloc(bytes);
    if (!blk) return NULL;
    uint8_t *data = (uint8_t *)(blk + n);
    for (size_t i = 0; i < n; i++) {
        blk[i] = src[i];
        blk[i].data = NULL;
        if (src[i].len) {
            memcpy(data, src[i].data, src[i].len);
            blk[i].data = data;
            data += src[i].len;
        }
    }
    return blk;
}
