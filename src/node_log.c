/*
 * node_log.c - Raft hard state, log and snapshot metadata of one group on pst (record
 * layouts and key layout in node_log.h; also docs/storage.md "Raft log records").
 *
 * Invariants: records are written only through the node_log_put_* functions, which keep the
 * on-disk log contiguous over (snap.index, last_index] inside one atomic batch per change.
 * Every record read back is validated (length, version, checksum bound to its index, limits)
 * before any field is used; corruption is an error code with a message, never a crash.
 */
#include "node_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "bytes.h"
#include "rc.h"

static size_t key_letter(uint32_t group, uint8_t letter, uint8_t *out)
{
    out[0] = 'g';
    be_put(out + 1, group, 4);
    out[5] = letter;
    return 6;
}

size_t node_log_key_hs(uint32_t group, uint8_t *out) { return key_letter(group, 'H', out); }
size_t node_log_key_snap(uint32_t group, uint8_t *out) { return key_letter(group, 'S', out); }

size_t node_log_key_entry(uint32_t group, raft_index index, uint8_t *out)
{
    key_letter(group, 'L', out);
    be_put(out + 6, index, 8);
    return NODE_LOG_KEY_BYTES;
}

/* ------------------------------------------------------------------ record codecs */

uint8_t *node_log_entry_encode(const struct raft_entry *e, size_t *len)
{
    if (e->len > NODE_LOG_ENTRY_BYTES_MAX || (e->len && !e->data))
        return NULL;
    size_t n = NODE_LOG_ENTRY_OVERHEAD + e->len;
    uint8_t *buf = malloc(n);
    if (!buf)
        return NULL;
    buf[0] = NODE_LOG_VERSION;
    be_put(buf + 1, e->term, 8);
    buf[9] = e->type;
    be_put(buf + 10, e->len, 4);
    if (e->len)
        memcpy(buf + 14, e->data, e->len);
    be_put(buf + 14 + e->len, XXH3_64bits_withSeed(buf, 14 + (size_t)e->len, e->index), 8);
    *len = n;
    return buf;
}

int node_log_entry_decode(raft_index index, const uint8_t *buf, size_t len,
                          struct raft_entry *out)
{
    memset(out, 0, sizeof *out);
    if (len < NODE_LOG_ENTRY_OVERHEAD || buf[0] != NODE_LOG_VERSION)
        return RC_CORRUPT;
    uint64_t dlen = be_get(buf + 10, 4);
    if (dlen > NODE_LOG_ENTRY_BYTES_MAX || dlen != len - NODE_LOG_ENTRY_OVERHEAD)
        return RC_CORRUPT;
    if (be_get(buf + len - 8, 8) != XXH3_64bits_withSeed(buf, len - 8, index))
        return RC_CORRUPT;
    if (buf[9] != RAFT_ENTRY_NORMAL && buf[9] != RAFT_ENTRY_CONF)
        return RC_CORRUPT;
    out->index = index;
    out->term = be_get(buf + 1, 8);
    out->type = buf[9];
    out->len = (uint32_t)dlen;
    if (dlen) {
        out->data = malloc((size_t)dlen);
        if (!out->data)
            return RC_NOMEM;
        memcpy(out->data, buf + 14, (size_t)dlen);
    }
    return RC_OK;
}

void node_log_hs_encode(const struct raft_hard_state *hs, uint8_t out[NODE_LOG_HS_BYTES])
{
    out[0] = NODE_LOG_VERSION;
    be_put(out + 1, hs->term, 8);
    be_put(out + 9, hs->vote, 8);
    be_put(out + 17, hs->commit, 8);
    be_put(out + 25, XXH3_64bits_withSeed(out, 25, 0), 8);
}

int node_log_hs_decode(const uint8_t *buf, size_t len, struct raft_hard_state *out)
{
    if (len != NODE_LOG_HS_BYTES || buf[0] != NODE_LOG_VERSION)
        return RC_CORRUPT;
    if (be_get(buf + 25, 8) != XXH3_64bits_withSeed(buf, 25, 0))
        return RC_CORRUPT;
    out->term = be_get(buf + 1, 8);
    out->vote = be_get(buf + 9, 8);
    out->commit = be_get(buf + 17, 8);
    return RC_OK;
}

uint8_t *node_log_snap_encode(const struct raft_snapshot_meta *m, size_t *len)
{
    if (m->conf.n_voters > RAFT_VOTERS_MAX || m->conf.n_learners > RAFT_LEARNERS_MAX)
        return NULL;
    size_t n = 1 + 8 + 8 + 4 + 8 * (size_t)m->conf.n_voters + 4 +
               8 * (size_t)m->conf.n_learners + 8;
    uint8_t *buf = malloc(n), *p = buf;
    if (!buf)
        return NULL;
    *p++ = NODE_LOG_VERSION;
    be_put(p, m->index, 8), p += 8;
    be_put(p, m->term, 8), p += 8;
    be_put(p, m->conf.n_voters, 4), p += 4;
    for (uint32_t i = 0; i < m->conf.n_voters; i++)
        be_put(p, m->conf.voters[i], 8), p += 8;
    be_put(p, m->conf.n_learners, 4), p += 4;
    for (uint32_t i = 0; i < m->conf.n_learners; i++)
        be_put(p, m->conf.learners[i], 8), p += 8;
    be_put(p, XXH3_64bits_withSeed(buf, n - 8, 0), 8);
    *len = n;
    return buf;
}

int node_log_snap_decode(const uint8_t *buf, size_t len, struct raft_snapshot_meta *out)
{
    memset(out, 0, sizeof *out);
    if (len < 1 + 8 + 8 + 4 + 4 + 8 || buf[0] != NODE_LOG_VERSION)
        return RC_CORRUPT;
    if (be_get(buf + len - 8, 8) != XXH3_64bits_withSeed(buf, len - 8, 0))
        return RC_CORRUPT;
    uint64_t nv = be_get(buf + 17, 4);
    if (nv > RAFT_VOTERS_MAX || len < 21 + 8 * nv + 4 + 8)
        return RC_CORRUPT;
    uint64_t nl = be_get(buf + 21 + 8 * nv, 4);
    if (nl > RAFT_LEARNERS_MAX || len != 21 + 8 * nv + 4 + 8 * nl + 8)
        return RC_CORRUPT;
    out->index = be_get(buf + 1, 8);
    out->term = be_get(buf + 9, 8);
    out->conf.n_voters = (uint32_t)nv;
    for (uint64_t i = 0; i < nv; i++)
        out->conf.voters[i] = be_get(buf + 21 + 8 * i, 8);
    out->conf.n_learners = (uint32_t)nl;
    for (uint64_t i = 0; i < nl; i++)
        out->conf.learners[i] = be_get(buf + 25 + 8 * nv + 8 * i, 8);
    return RC_OK;
}

/* ------------------------------------------------------------------ loading */

static void set_msg(char **dst, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_msg(char **dst, const char *fmt, ...)
{
    if (!dst)
        return;
    va_list ap;
    va_start(ap, fmt);
    free(*dst);
    if (vasprintf(dst, fmt, ap) < 0)
        *dst = NULL;
    va_end(ap);
}

/* Read a small fixed record ('H' or 'S'): RC_OK, RC_NOTFOUND, RC_IO... */
static int load_meta(struct pst_engine *e, uint32_t group, struct node_log *log, char **err)
{
    uint8_t key[NODE_LOG_KEY_BYTES];
    void *val = NULL;
    size_t vlen = 0;
    int rc = pst_get(e, NULL, key, node_log_key_hs(group, key), &val, &vlen);
    if (rc == RC_OK && node_log_hs_decode(val, vlen, &log->hs) != RC_OK)
        rc = RC_CORRUPT;
    free(val);
    if (rc != RC_OK && rc != RC_NOTFOUND) {
        set_msg(err, "raft hard state of group %u: %s", group, rc_message(rc));
        return rc;
    }
    val = NULL;
    rc = pst_get(e, NULL, key, node_log_key_snap(group, key), &val, &vlen);
    if (rc == RC_OK && node_log_snap_decode(val, vlen, &log->snap) != RC_OK)
        rc = RC_CORRUPT;
    free(val);
    if (rc != RC_OK && rc != RC_NOTFOUND) {
        set_msg(err, "raft snapshot metadata of group %u: %s", group, rc_message(rc));
        return rc;
    }
    log->last_index = log->snap.index;
    return RC_OK;
}

struct loader {
    struct raft_entry *v;
    size_t n, cap;
    raft_index bad_index; /* first record that failed validation (0: none) */
    char why[96];
};

static int loader_push(struct loader *ld, struct raft_entry *e)
{
    if (ld->n == ld->cap) {
        size_t cap = ld->cap ? ld->cap * 2 : 64;
        if (cap > NODE_LOG_ENTRIES_MAX)
            return RC_CORRUPT;
        struct raft_entry *v = realloc(ld->v, cap * sizeof *v);
        if (!v)
            return RC_NOMEM;
        ld->v = v;
        ld->cap = cap;
    }
    ld->v[ld->n++] = *e;
    return RC_OK;
}

/* Check one record against its predecessor; fills ld->why on failure. */
static int check_record(struct loader *ld, const struct node_log *log, raft_index index,
                        const void *val, size_t vlen, struct raft_entry *out)
{
    raft_index want = log->snap.index + 1 + ld->n;
    raft_term prev_term = ld->n ? ld->v[ld->n - 1].term : log->snap.term;
    if (index != want) {
        snprintf(ld->why, sizeof ld->why, "gap: expected index %llu",
                 (unsigned long long)want);
        return RC_CORRUPT;
    }
    int rc = node_log_entry_decode(index, val, vlen, out);
    if (rc == RC_NOMEM)
        return rc;
    if (rc != RC_OK) {
        snprintf(ld->why, sizeof ld->why, "bad record (checksum, version or length)");
        return RC_CORRUPT;
    }
    if (out->term < prev_term) {
        snprintf(ld->why, sizeof ld->why, "term %llu below previous term %llu",
                 (unsigned long long)out->term, (unsigned long long)prev_term);
        free(out->data);
        return RC_CORRUPT;
    }
    return RC_OK;
}

/* Walk every 'L' record of the group in order. A failing record stops the walk with
 * ld->bad_index set; *more tells whether any 'L' record follows it. */
static int load_entries(struct pst_engine *e, const struct node_log *log, struct loader *ld,
                        bool *more)
{
    uint8_t lo[NODE_LOG_KEY_BYTES], hi[NODE_LOG_KEY_BYTES];
    node_log_key_entry(log->group, 0, lo);
    key_letter(log->group, 'L' + 1, hi);
    struct pst_iter *it = pst_iter_new(e, NULL, lo, sizeof lo, hi, 6);
    if (!it)
        return RC_NOMEM;
    int rc = RC_OK;
    *more = false;
    for (; pst_iter_valid(it); pst_iter_next(it)) {
        size_t klen, vlen;
        const uint8_t *k = pst_iter_key(it, &klen);
        const void *v = pst_iter_value(it, &vlen);
        if (ld->bad_index) {
            *more = true;
            break;
        }
        if (klen != NODE_LOG_KEY_BYTES) {
            ld->bad_index = log->snap.index + 1 + ld->n;
            snprintf(ld->why, sizeof ld->why, "malformed log key (%zu bytes)", klen);
            continue;
        }
        raft_index index = be_get(k + 6, 8);
        if (index <= log->snap.index)
            continue; /* cannot exist (deleted in the snapshot's batch); harmless */
        struct raft_entry ent;
        rc = check_record(ld, log, index, v, vlen, &ent);
        if (rc == RC_NOMEM)
            break;
        if (rc != RC_OK) {
            ld->bad_index = index;
            rc = RC_OK;
            continue;
        }
        if ((rc = loader_push(ld, &ent)) != RC_OK) {
            free(ent.data);
            break;
        }
    }
    if (rc == RC_OK && pst_iter_status(it) != RC_OK)
        rc = RC_IO;
    pst_iter_free(it);
    return rc;
}

/* A bad last record past everything acknowledged: delete it (a torn tail). */
static int truncate_tail(struct pst_engine *e, struct node_log *log, struct loader *ld,
                         char **note)
{
    uint8_t key[NODE_LOG_KEY_BYTES];
    struct pst_batch *b = pst_batch_new();
    if (!b)
        return RC_NOMEM;
    pst_batch_del(b, key, node_log_key_entry(log->group, ld->bad_index, key));
    int rc = pst_batch_oom(b) ? RC_NOMEM : pst_write(e, b, true);
    pst_batch_free(b);
    if (rc == RC_OK)
        set_msg(note, "raft log of group %u: truncated torn tail record at index %llu (%s)",
                log->group, (unsigned long long)ld->bad_index, ld->why);
    return rc;
}

/* Voters of the group as far as the log tells: snapshot/bootstrap conf plus conf entries. */
static uint32_t count_voters(const struct node_log *log, const struct raft_conf *initial,
                             const struct loader *ld)
{
    struct raft_conf c = log->snap.conf.n_voters ? log->snap.conf : *initial;
    for (size_t i = 0; i < ld->n; i++) {
        struct raft_conf_change cc;
        const struct raft_entry *e = &ld->v[i];
        if (e->type != RAFT_ENTRY_CONF ||
            raft_conf_change_decode(e->data, e->len, &cc) != RAFT_OK)
            continue;
        bool voter = false;
        for (uint32_t k = 0; k < c.n_voters; k++)
            voter = voter || c.voters[k] == cc.node;
        if (cc.type == RAFT_CC_ADD_VOTER && !voter && c.n_voters < RAFT_VOTERS_MAX)
            c.voters[c.n_voters++] = cc.node;
        if (cc.type == RAFT_CC_REMOVE && voter && c.n_voters > 1) {
            uint32_t k = 0;
            while (c.voters[k] != cc.node)
                k++;
            c.voters[k] = c.voters[--c.n_voters];
        }
    }
    return c.n_voters;
}

int node_log_load(struct pst_engine *e, uint32_t group, raft_index applied,
                  const struct raft_conf *initial, struct node_log *log,
                  struct raft_entry **entries, size_t *n_entries, char **note, char **err)
{
    memset(log, 0, sizeof *log);
    log->group = group;
    *entries = NULL;
    *n_entries = 0;
    int rc = load_meta(e, group, log, err);
    if (rc != RC_OK)
        return rc;
    struct loader ld = {0};
    bool more = false;
    rc = load_entries(e, log, &ld, &more);
    if (rc != RC_OK) {
        set_msg(err, "raft log of group %u: %s", group, rc_message(rc));
        goto fail;
    }
    if (ld.bad_index) {
        raft_index acked = log->hs.commit > applied ? log->hs.commit : applied;
        if (more || ld.bad_index <= acked) {
            set_msg(err, "raft log of group %u is corrupt at index %llu: %s (commit %llu, "
                    "applied %llu); refusing to open", group,
                    (unsigned long long)ld.bad_index, ld.why,
                    (unsigned long long)log->hs.commit, (unsigned long long)applied);
            rc = RC_CORRUPT;
            goto fail;
        }
        uint32_t voters = count_voters(log, initial, &ld);
        if (voters != 1) {
            set_msg(err, "raft log of group %u has a bad last record at index %llu: %s "
                    "(past commit %llu and applied %llu). The group has %u voters, so this "
                    "entry may have been acknowledged to a leader and counted toward a "
                    "commit; dropping it could lose a committed write. Refusing to open: "
                    "replace this node's data from a peer (remove the member, wipe its data "
                    "directory, add it again)", group, (unsigned long long)ld.bad_index,
                    ld.why, (unsigned long long)log->hs.commit, (unsigned long long)applied,
                    voters);
            rc = RC_CORRUPT;
            goto fail;
        }
        if ((rc = truncate_tail(e, log, &ld, note)) != RC_OK) {
            set_msg(err, "raft log of group %u: truncating the torn tail failed: %s", group,
                    rc_message(rc));
            goto fail;
        }
    }
    log->last_index = log->snap.index + ld.n;
    *entries = ld.v;
    *n_entries = ld.n;
    return RC_OK;
fail:
    node_log_entries_free(ld.v, ld.n);
    return rc;
}

void node_log_entries_free(struct raft_entry *entries, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(entries[i].data);
    free(entries);
}

/* ------------------------------------------------------------------ writing */

void node_log_put_hs(struct node_log *log, struct pst_batch *b, const struct raft_hard_state *hs)
{
    uint8_t key[NODE_LOG_KEY_BYTES], rec[NODE_LOG_HS_BYTES];
    node_log_hs_encode(hs, rec);
    pst_batch_put(b, key, node_log_key_hs(log->group, key), rec, sizeof rec);
    log->hs = *hs;
}

static void del_range(struct node_log *log, struct pst_batch *b, raft_index from, raft_index to)
{
    uint8_t key[NODE_LOG_KEY_BYTES];
    for (raft_index i = from; i <= to && i != 0; i++)
        pst_batch_del(b, key, node_log_key_entry(log->group, i, key));
}

int node_log_put_entries(struct node_log *log, struct pst_batch *b, const struct raft_entry *ents,
                         size_t n)
{
    if (n == 0)
        return RC_OK;
    raft_index first = ents[0].index;
    if (first <= log->snap.index || first > log->last_index + 1)
        return RC_BADARG;
    for (size_t i = 1; i < n; i++)
        if (ents[i].index != first + i || ents[i].term < ents[i - 1].term)
            return RC_BADARG;
    raft_index last = first + n - 1;
    /* Raft paper 5.3: a conflicting suffix is replaced; records past the new last index
     * must go, the others are overwritten below. */
    if (log->last_index > last)
        del_range(log, b, last + 1, log->last_index);
    uint8_t key[NODE_LOG_KEY_BYTES];
    for (size_t i = 0; i < n; i++) {
        size_t len;
        uint8_t *rec = node_log_entry_encode(&ents[i], &len);
        if (!rec)
            return RC_NOMEM;
        pst_batch_put(b, key, node_log_key_entry(log->group, ents[i].index, key), rec, len);
        free(rec);
    }
    log->last_index = last;
    return pst_batch_oom(b) ? RC_NOMEM : RC_OK;
}

int node_log_put_bootstrap(struct node_log *log, struct pst_batch *b, const struct raft_conf *c)
{
    if (log->snap.index != 0 || log->last_index != 0 || log->hs.term != 0)
        return RC_BADARG;
    struct raft_snapshot_meta m = {.index = 0, .term = 0, .conf = *c};
    size_t len;
    uint8_t key[NODE_LOG_KEY_BYTES];
    uint8_t *rec = node_log_snap_encode(&m, &len);
    if (!rec)
        return RC_NOMEM;
    pst_batch_put(b, key, node_log_key_snap(log->group, key), rec, len);
    free(rec);
    log->snap = m;
    return pst_batch_oom(b) ? RC_NOMEM : RC_OK;
}

int node_log_put_install(struct node_log *log, struct pst_batch *b,
                         const struct raft_snapshot_meta *m)
{
    size_t len;
    uint8_t key[NODE_LOG_KEY_BYTES];
    uint8_t *rec = node_log_snap_encode(m, &len);
    if (!rec)
        return RC_NOMEM;
    pst_batch_put(b, key, node_log_key_snap(log->group, key), rec, len);
    free(rec);
    del_range(log, b, log->snap.index + 1, log->last_index);
    log->snap = *m;
    log->last_index = m->index;
    return pst_batch_oom(b) ? RC_NOMEM : RC_OK;
}

int node_log_put_snapshot(struct node_log *log, struct pst_batch *b,
                          const struct raft_snapshot_meta *m)
{
    if (m->index <= log->snap.index)
        return RC_BADARG;
    size_t len;
    uint8_t key[NODE_LOG_KEY_BYTES];
    uint8_t *rec = node_log_snap_encode(m, &len);
    if (!rec)
        return RC_NOMEM;
    pst_batch_put(b, key, node_log_key_snap(log->group, key), rec, len);
    free(rec);
    raft_index to = m->index < log->last_index ? m->index : log->last_index;
    del_range(log, b, log->snap.index + 1, to);
    log->snap = *m;
    if (log->last_index < m->index)
        log->last_index = m->index;
    return pst_batch_oom(b) ? RC_NOMEM : RC_OK;
}
