/*
 * node_snap.c - InstallSnapshot streaming for the node core (node.h "Snapshot streaming"):
 * the sending side cuts a consistent view of a group's state-machine range into chunks;
 * the receiving side stages the chunks in the store, and when Raft's Ready carries the
 * snapshot, installs them crash-safely.
 *
 * State range of group G: every key 'g' G <letter> ... whose letter node_state_letter()
 * accepts, i.e. everything of the group except the Raft records ('H' hard state, 'L' log,
 * 'S' snapshot meta) and this file's own staging letters ('T', 'I'). New state letters
 * (history, audit...) are therefore copied without changes here.
 *
 * Chunk (all integers big endian):
 *   off size field
 *   0   4    magic "RCSN"
 *   4   1    version (1)
 *   5   4    group id
 *   9   4    sequence number (0, 1, 2 ... per stream)
 *   13  1    flags (bit 0: last chunk)
 *   14  3    record count R
 *   17  ..   R records: u32 klen | key (the live key without 'g' G, starting with its
 *            letter) | u32 vlen (whole value) | u32 from | u32 n | n bytes of the value
 *            starting at `from`
 *   end-8 8  XXH3_64bits of everything before
 * A value too large for one chunk is split: its pieces (from = 0, then the following
 * offsets) are the last record of a chunk and the first ones of the next chunks; the
 * receiver assembles it in memory (at most PST_VALUE_BYTES_MAX) and stages it whole.
 * A chunk is validated whole (magic, version, group, sequence, every length, each key's
 * letter, checksum) before anything of it is written: a corrupt chunk writes nothing.
 *
 * Staging (receiver), keys of group G:
 *   'g' G 'T' + key   a staged record (key as in the chunk)
 *   'g' G 'I'         staging/install marker: u8 version (1) | u8 phase (1 staging,
 *                     2 staged, 3 installing) | u64 from | u32 meta length M | M bytes
 *                     snapshot meta record (node_log.h format) | u64 XXH3 of all before
 * Install (Ready.snapshot): 1. marker phase 3, synced; 2. delete the live state range and
 * copy the staged records in (bounded batches); 3. in the turn's batch: snapshot meta, the
 * whole log dropped, hard state, marker deleted (one synced write); 4. staging deleted.
 * node_open finds a phase-3 marker after a crash in 1..3 and redoes 2 and 3; a phase 1/2
 * marker or orphaned 'T' records are discarded (the leader sends the snapshot again).
 */
#include <string.h>
#include <xxhash.h>

#include "node_internal.h"
#include "bytes.h"
#include "rc.h"

#define CHUNK_MAGIC "RCSN"
#define CHUNK_VERSION 1u
#define CHUNK_HDR 17u
#define CHUNK_TRAILER 8u
#define MARKER_VERSION 1u
#define COPY_BATCH_OPS 1024u
#define COPY_BATCH_BYTES (4u * 1024u * 1024u)

enum { PHASE_STAGING = 1, PHASE_STAGED = 2, PHASE_INSTALLING = 3 };

struct node_stage {
    raft_id from;
    struct raft_snapshot_meta meta;
    uint32_t next_seq;
    bool got_last, complete, stepped;
    uint64_t records, bytes;
    /* a value split over chunks, being assembled (bounded by PST_VALUE_BYTES_MAX) */
    uint8_t *part_key, *part_val;
    size_t part_klen, part_vlen, part_have;
};

struct node_snap_src {
    struct node *n; /* NULL once detached (node_close) */
    struct node_snap_src *next;
    uint32_t group;
    struct pst_snap *snap;
    struct pst_iter *it;
    uint32_t seq;
    size_t part_off; /* bytes of the current record's value already sent */
    bool done;
};

bool node_state_letter(uint8_t letter)
{
    return letter != 'H' && letter != 'L' && letter != 'S' && letter != 'T' && letter != 'I';
}

/* 'g' G [letter]: returns the length (5 or 6). */
static size_t gkey(uint32_t group, int letter, uint8_t *out)
{
    out[0] = 'g';
    be_put(out + 1, group, 4);
    if (letter < 0)
        return 5;
    out[5] = (uint8_t)letter;
    return 6;
}

/* Upper bound of the whole group range 'g' G .. (exclusive). */
static size_t gkey_end(uint32_t group, uint8_t *out)
{
    if (group == UINT32_MAX) {
        out[0] = 'h';
        return 1;
    }
    return gkey(group + 1, -1, out);
}

/* ------------------------------------------------------------------ sending side */

int node_snap_src_open(struct node *n, uint32_t group, struct node_snap_src **out)
{
    *out = NULL;
    if (group >= NODE_GROUPS || n->failed)
        return RC_BADARG;
    struct node_snap_src *s = calloc(1, sizeof *s);
    if (!s)
        return RC_NOMEM;
    uint8_t lo[6], hi[6];
    size_t lolen = gkey(group, -1, lo), hilen = gkey_end(group, hi);
    s->n = n;
    s->group = group;
    s->snap = pst_snap_take(n->e);
    s->it = s->snap ? pst_iter_new(n->e, s->snap, lo, lolen, hi, hilen) : NULL;
    if (!s->it) {
        if (s->snap)
            pst_snap_release(n->e, s->snap);
        free(s);
        return RC_NOMEM;
    }
    s->next = n->srcs;
    n->srcs = s;
    *out = s;
    return RC_OK;
}

static void src_release(struct node_snap_src *s)
{
    if (s->it)
        pst_iter_free(s->it);
    if (s->snap)
        pst_snap_release(s->n->e, s->snap);
    s->it = NULL;
    s->snap = NULL;
}

/* One record piece at p: key k (klen, without 'g' G), value bytes [from, from + n) of v
 * whose whole length is vlen. Returns the bytes written. */
static size_t put_piece(uint8_t *p, const uint8_t *k, size_t klen, const uint8_t *v,
                        size_t vlen, size_t from, size_t n)
{
    be_put(p, klen, 4);
    memcpy(p + 4, k, klen);
    be_put(p + 4 + klen, vlen, 4);
    be_put(p + 8 + klen, from, 4);
    be_put(p + 12 + klen, n, 4);
    if (n)
        memcpy(p + 16 + klen, v + from, n);
    return 16 + klen + n;
}

int node_snap_src_next(struct node_snap_src *s, void *buf, size_t cap, size_t *len, bool *done)
{
    *len = 0;
    *done = false;
    if (!s->n)
        return RC_SHUTDOWN;
    if (s->done || cap < CHUNK_HDR + CHUNK_TRAILER)
        return RC_BADARG;
    uint8_t *p = buf;
    size_t off = CHUNK_HDR, limit = cap - CHUNK_TRAILER;
    uint32_t count = 0;
    bool full = false;
    for (; !full && pst_iter_valid(s->it); ) {
        size_t klen, vlen;
        const uint8_t *k = pst_iter_key(s->it, &klen);
        const uint8_t *v = pst_iter_value(s->it, &vlen);
        if (klen < 6 || !node_state_letter(k[5])) {
            pst_iter_next(s->it);
            continue;
        }
        size_t fixed = 16 + (klen - 5), rest = vlen - s->part_off;
        if (off + fixed + rest <= limit) { /* the (rest of the) record fits */
            off += put_piece(p + off, k + 5, klen - 5, v, vlen, s->part_off, rest);
            s->part_off = 0;
            count++;
            pst_iter_next(s->it);
            continue;
        }
        if (count > 0 || off + fixed >= limit)
            break; /* next chunk; or not even the key fits an empty chunk */
        size_t n = limit - off - fixed; /* a large value: split over chunks */
        off += put_piece(p + off, k + 5, klen - 5, v, vlen, s->part_off, n);
        s->part_off += n;
        count++;
        full = true;
    }
    if (count == 0 && pst_iter_valid(s->it))
        return RC_TOOBIG; /* a key larger than a chunk: use a larger cap */
    if (pst_iter_status(s->it) != RC_OK)
        return RC_IO;
    bool last = !pst_iter_valid(s->it);
    memcpy(p, CHUNK_MAGIC, 4);
    p[4] = CHUNK_VERSION;
    be_put(p + 5, s->group, 4);
    be_put(p + 9, s->seq++, 4);
    p[13] = last ? 1 : 0;
    be_put(p + 14, count, 3); /* bytes 14..16: count (24 bits: a chunk cannot hold more) */
    be_put(p + off, XXH3_64bits(p, off), 8);
    *len = off + CHUNK_TRAILER;
    *done = s->done = last;
    return RC_OK;
}

void node_snap_src_close(struct node_snap_src *s)
{
    if (!s)
        return;
    if (s->n) {
        struct node_snap_src **pp = &s->n->srcs;
        while (*pp && *pp != s)
            pp = &(*pp)->next;
        if (*pp)
            *pp = s->next;
        src_release(s);
    }
    free(s);
}

void node_snap_detach_all(struct node *n)
{
    for (struct node_snap_src *s = n->srcs; s; s = s->next) {
        src_release(s);
        s->n = NULL;
    }
    n->srcs = NULL;
}

/* ------------------------------------------------------------------ staging records */

static int marker_put(struct node *n, uint32_t group, uint8_t phase, raft_id from,
                      const struct raft_snapshot_meta *m, bool sync)
{
    size_t mlen;
    uint8_t *meta = node_log_snap_encode(m, &mlen);
    if (!meta)
        return RC_NOMEM;
    size_t len = 1 + 1 + 8 + 4 + mlen + 8;
    uint8_t *rec = malloc(len), key[6];
    struct pst_batch *b = pst_batch_new();
    int rc = RC_NOMEM;
    if (rec && b) {
        rec[0] = MARKER_VERSION;
        rec[1] = phase;
        be_put(rec + 2, from, 8);
        be_put(rec + 10, mlen, 4);
        memcpy(rec + 14, meta, mlen);
        be_put(rec + 14 + mlen, XXH3_64bits(rec, 14 + mlen), 8);
        pst_batch_put(b, key, gkey(group, 'I', key), rec, len);
        rc = pst_batch_status(b);
        if (rc == RC_OK)
            rc = pst_write(n->e, b, sync);
    }
    pst_batch_free(b);
    free(rec);
    free(meta);
    return rc;
}

/* RC_OK with phase/from/meta, RC_NOTFOUND, RC_CORRUPT, RC_IO. */
static int marker_get(struct node *n, uint32_t group, uint8_t *phase, raft_id *from,
                      struct raft_snapshot_meta *m)
{
    uint8_t key[6];
    void *val = NULL;
    size_t vlen = 0;
    int rc = pst_get(n->e, NULL, key, gkey(group, 'I', key), &val, &vlen);
    if (rc != RC_OK)
        return rc;
    const uint8_t *p = val;
    rc = RC_CORRUPT;
    if (vlen >= 22 && p[0] == MARKER_VERSION && p[1] >= PHASE_STAGING &&
        p[1] <= PHASE_INSTALLING && be_get(p + vlen - 8, 8) == XXH3_64bits(p, vlen - 8) &&
        be_get(p + 10, 4) == vlen - 22 &&
        node_log_snap_decode(p + 14, vlen - 22, m) == RC_OK) {
        *phase = p[1];
        *from = be_get(p + 2, 8);
        rc = RC_OK;
    }
    free(val);
    return rc;
}

/* Delete the staging records and the marker of a group. */
static int staging_delete(struct node *n, uint32_t group, bool sync)
{
    uint8_t lo[6], hi[6];
    int rc = pst_delete_range(n->e, lo, gkey(group, 'T', lo), hi, gkey(group, 'T' + 1, hi),
                              false);
    if (rc == RC_OK)
        rc = pst_delete_range(n->e, lo, gkey(group, 'I', lo), hi, gkey(group, 'I' + 1, hi),
                              sync);
    return rc;
}

static void stage_free(struct node_stage *st);

static void stage_drop(struct node *n, struct group *g)
{
    if (!g->stage)
        return;
    stage_free(g->stage);
    g->stage = NULL;
    if (staging_delete(n, g->id, false) != RC_OK)
        node_set_error(n, "group %u: deleting snapshot staging failed", g->id);
}

void node_snap_free_group(struct group *g)
{
    stage_free(g->stage);
    g->stage = NULL;
}

bool node_snap_staging(const struct group *g)
{
    return g->stage != NULL;
}

int node_snap_stage_begin(struct node *n, uint32_t group, raft_id from,
                          const struct raft_snapshot_meta *m)
{
    struct group *g = node_group_of(n, group);
    if (!g || !m || m->index == 0 || from == RAFT_NONE || n->failed)
        return RC_BADARG;
    if (g->stage && g->stage->stepped)
        return RC_TRYAGAIN; /* Raft took the last one: node_run installs it first */
    stage_drop(n, g);
    if (staging_delete(n, group, false) != RC_OK)
        return RC_IO;
    g->stage = calloc(1, sizeof *g->stage);
    if (!g->stage)
        return RC_NOMEM;
    g->stage->from = from;
    g->stage->meta = *m;
    int rc = marker_put(n, group, PHASE_STAGING, from, m, false);
    if (rc != RC_OK)
        node_snap_free_group(g);
    return rc;
}

/* A record piece parsed from a chunk. */
struct piece {
    const uint8_t *key, *bytes;
    size_t klen, vlen, from, n;
};

static bool piece_parse(const uint8_t *p, size_t *off, size_t end, struct piece *pc)
{
    if (end - *off < 4)
        return false;
    pc->klen = (size_t)be_get(p + *off, 4);
    if (pc->klen < 1 || pc->klen > PST_KEY_BYTES_MAX - 6 || end - *off - 4 < pc->klen + 12)
        return false;
    pc->key = p + *off + 4;
    size_t q = *off + 4 + pc->klen;
    pc->vlen = (size_t)be_get(p + q, 4);
    pc->from = (size_t)be_get(p + q + 4, 4);
    pc->n = (size_t)be_get(p + q + 8, 4);
    if (!node_state_letter(pc->key[0]) || pc->vlen > PST_VALUE_BYTES_MAX ||
        pc->n > pc->vlen || pc->from > pc->vlen - pc->n || end - q - 12 < pc->n)
        return false;
    pc->bytes = p + q + 12;
    *off = q + 12 + pc->n;
    return true;
}

/* Validate a whole chunk against the stage (sequence, and the continuation of a value
 * split over chunks) without changing anything; *count records follow the header. */
static int chunk_check(const uint8_t *p, size_t len, uint32_t group,
                       const struct node_stage *st, uint32_t *count, bool *last)
{
    if (len < CHUNK_HDR + CHUNK_TRAILER || memcmp(p, CHUNK_MAGIC, 4) != 0 ||
        p[4] != CHUNK_VERSION || be_get(p + 5, 4) != group || p[13] > 1)
        return RC_CORRUPT;
    if (be_get(p + len - 8, 8) != XXH3_64bits(p, len - 8))
        return RC_CORRUPT;
    if (be_get(p + 9, 4) != st->next_seq)
        return RC_CORRUPT; /* lost, repeated or reordered chunk */
    *count = (uint32_t)be_get(p + 14, 3);
    *last = p[13] == 1;
    const uint8_t *akey = st->part_key;
    size_t aklen = st->part_klen, avlen = st->part_vlen, ahave = st->part_have;
    bool assembling = st->part_val != NULL;
    size_t off = CHUNK_HDR, end = len - CHUNK_TRAILER;
    for (uint32_t i = 0; i < *count; i++) {
        struct piece pc;
        if (!piece_parse(p, &off, end, &pc))
            return RC_CORRUPT;
        if (assembling) {
            if (pc.klen != aklen || memcmp(pc.key, akey, aklen) != 0 || pc.vlen != avlen ||
                pc.from != ahave)
                return RC_CORRUPT;
            ahave += pc.n;
            assembling = ahave < avlen;
        } else if (pc.from != 0) {
            return RC_CORRUPT;
        } else if (pc.n < pc.vlen) {
            assembling = true;
            akey = pc.key, aklen = pc.klen, avlen = pc.vlen, ahave = pc.n;
        }
    }
    if (off != end || (*last && assembling))
        return RC_CORRUPT;
    return RC_OK;
}

static void stage_free(struct node_stage *st)
{
    if (!st)
        return;
    free(st->part_key);
    free(st->part_val);
    free(st);
}

/* Add one checked piece to the batch (whole values at once, split ones when complete). */
static int stage_piece(struct node_stage *st, struct pst_batch *b, uint8_t *key,
                       const struct piece *pc)
{
    if (!st->part_val && pc->n == pc->vlen) {
        memcpy(key + 6, pc->key, pc->klen);
        pst_batch_put(b, key, 6 + pc->klen, pc->bytes, pc->n);
        return RC_OK;
    }
    if (!st->part_val) {
        st->part_key = malloc(pc->klen);
        st->part_val = malloc(pc->vlen);
        if (!st->part_key || !st->part_val)
            return RC_NOMEM;
        memcpy(st->part_key, pc->key, pc->klen);
        st->part_klen = pc->klen;
        st->part_vlen = pc->vlen;
        st->part_have = 0;
    }
    memcpy(st->part_val + pc->from, pc->bytes, pc->n);
    st->part_have += pc->n;
    return RC_OK;
}

int node_snap_stage_chunk(struct node *n, uint32_t group, const void *data, size_t len)
{
    struct group *g = node_group_of(n, group);
    if (!g || !g->stage || g->stage->got_last || !data || n->failed)
        return RC_BADARG;
    struct node_stage *st = g->stage;
    const uint8_t *p = data;
    uint32_t count;
    bool last;
    int rc = chunk_check(p, len, group, st, &count, &last);
    if (rc != RC_OK) {
        stage_drop(n, g); /* the stream is broken: the leader must start again */
        return rc;
    }
    struct pst_batch *b = pst_batch_new();
    uint8_t *key = malloc(6 + PST_KEY_BYTES_MAX);
    rc = b && key ? RC_OK : RC_NOMEM;
    if (key)
        gkey(group, 'T', key);
    size_t off = CHUNK_HDR;
    bool flush_part = false;
    for (uint32_t i = 0; i < count && rc == RC_OK; i++) {
        struct piece pc;
        NODE_ASSERT(piece_parse(p, &off, len - CHUNK_TRAILER, &pc));
        rc = stage_piece(st, b, key, &pc);
        if (rc == RC_OK && st->part_val && st->part_have == st->part_vlen) {
            memcpy(key + 6, st->part_key, st->part_klen);
            pst_batch_put(b, key, 6 + st->part_klen, st->part_val, st->part_vlen);
            flush_part = true;
        }
        if (pc.from + pc.n == pc.vlen) {
            st->records++;
            st->bytes += pc.klen + pc.vlen;
        }
    }
    if (rc == RC_OK)
        rc = pst_batch_status(b);
    if (rc == RC_OK && pst_batch_count(b))
        rc = pst_write(n->e, b, false);
    pst_batch_free(b);
    free(key);
    if (rc == RC_OK && flush_part) {
        free(st->part_key);
        free(st->part_val);
        st->part_key = st->part_val = NULL;
    }
    if (rc != RC_OK) {
        stage_drop(n, g);
        return rc;
    }
    st->next_seq++;
    st->got_last = last;
    return RC_OK;
}

int node_snap_stage_end(struct node *n, uint32_t group)
{
    struct group *g = node_group_of(n, group);
    if (!g || !g->stage || !g->stage->got_last)
        return RC_BADARG;
    int rc = marker_put(n, group, PHASE_STAGED, g->stage->from, &g->stage->meta, true);
    if (rc != RC_OK) {
        stage_drop(n, g);
        return rc;
    }
    g->stage->complete = true;
    return RC_OK;
}

void node_snap_stage_abort(struct node *n, uint32_t group)
{
    struct group *g = node_group_of(n, group);
    if (g && !(g->stage && g->stage->stepped)) /* a stepped one is Raft's to install */
        stage_drop(n, g);
}

int node_snap_check_step(struct node *n, struct group *g, const struct raft_msg *m)
{
    (void)n;
    const struct raft_snapshot_meta *s = &m->snapshot;
    struct node_stage *st = g->stage;
    if (st && st->complete && st->from == m->from && st->meta.index == s->index &&
        st->meta.term == s->term) {
        st->stepped = true;
        return RC_OK;
    }
    /* Without staged data Raft may only take it when it will not install it: the index is
     * committed here already, or the log holds that entry (raft.h rr_step_snapshot). */
    struct raft_status rs;
    raft_status(g->raft, &rs);
    raft_term t = 0;
    if (s->index <= rs.commit ||
        (raft_term_at(g->raft, s->index, &t) == RAFT_OK && t == s->term))
        return RC_OK;
    return RC_BADARG;
}

/* ------------------------------------------------------------------ install */

static int flush(struct node *n, struct pst_batch *b)
{
    int rc = pst_batch_status(b);
    if (rc == RC_OK && pst_batch_count(b))
        rc = pst_write(n->e, b, false);
    pst_batch_clear(b);
    return rc;
}

/* Replace the live state range of group with the staged records (not atomic: the phase-3
 * marker makes it redoable). */
static int copy_staged(struct node *n, uint32_t group)
{
    uint8_t lo[6], hi[6];
    struct pst_batch *b = pst_batch_new();
    uint8_t *key = malloc(5 + PST_KEY_BYTES_MAX);
    struct pst_iter *it = pst_iter_new(n->e, NULL, lo, gkey(group, -1, lo), hi,
                                       gkey_end(group, hi));
    int rc = b && key && it ? RC_OK : RC_NOMEM;
    for (; rc == RC_OK && pst_iter_valid(it); pst_iter_next(it)) {
        size_t klen;
        const uint8_t *k = pst_iter_key(it, &klen);
        if (klen >= 6 && node_state_letter(k[5]))
            pst_batch_del(b, k, klen);
        if (pst_batch_count(b) >= COPY_BATCH_OPS)
            rc = flush(n, b);
    }
    if (it && rc == RC_OK && pst_iter_status(it) != RC_OK)
        rc = RC_IO;
    if (it)
        pst_iter_free(it);
    it = rc == RC_OK ? pst_iter_new(n->e, NULL, lo, gkey(group, 'T', lo), hi,
                                    gkey(group, 'T' + 1, hi)) : NULL;
    if (rc == RC_OK && !it)
        rc = RC_NOMEM;
    for (; rc == RC_OK && pst_iter_valid(it); pst_iter_next(it)) {
        size_t klen, vlen;
        const uint8_t *k = pst_iter_key(it, &klen);
        const void *v = pst_iter_value(it, &vlen);
        if (klen < 7 || klen - 6 > PST_KEY_BYTES_MAX || !node_state_letter(k[6])) {
            rc = RC_CORRUPT;
            break;
        }
        gkey(group, -1, key);
        memcpy(key + 5, k + 6, klen - 6);
        pst_batch_put(b, key, klen - 1, v, vlen);
        if (pst_batch_count(b) >= COPY_BATCH_OPS || pst_batch_bytes(b) >= COPY_BATCH_BYTES)
            rc = flush(n, b);
    }
    if (it && rc == RC_OK && pst_iter_status(it) != RC_OK)
        rc = RC_IO;
    if (rc == RC_OK)
        rc = flush(n, b);
    if (it)
        pst_iter_free(it);
    pst_batch_free(b);
    free(key);
    return rc;
}

/* Requests whose fate the snapshot hides: writes appended at or below `index` (or not yet
 * known) may or may not be in the installed state. `index` is the installed state's own
 * applied index, not the snapshot's: the sender streams its current state, which may be
 * newer, and the entries in between are never applied here one by one, so a write appended
 * among them would otherwise look replaced ("another entry applied at its index") and be
 * proposed again, applying it twice. */
static void fail_hidden_requests(struct node *n, struct group *g, raft_index index)
{
    struct req *next;
    for (struct req *r = n->head; r; r = next) {
        next = r->next;
        if (r->group != g->id || r->state == RS_DEFERRED)
            continue;
        bool hidden = (r->kind == REQ_WRITE && r->state != RS_QUEUED &&
                       (r->state == RS_FORWARDED || r->index <= index)) ||
                      (r->kind == REQ_CONF && r->state == RS_APPENDED && r->index <= index);
        if (hidden)
            node_req_fail(n, r, RC_TIMEOUT, NULL);
    }
}

int node_snap_install(struct node *n, struct group *g, const struct raft_snapshot_meta *m)
{
    struct node_stage *st = g->stage;
    if (!st || !st->complete || st->meta.index != m->index || st->meta.term != m->term) {
        node_set_error(n, "group %u: Raft installs snapshot %llu but no matching data was "
                       "staged", g->id, (unsigned long long)m->index);
        return RC_IO;
    }
    int rc = marker_put(n, g->id, PHASE_INSTALLING, st->from, m, true);
    if (rc == RC_OK)
        rc = copy_staged(n, g->id);
    if (rc == RC_OK && n->test_crash_install)
        rc = RC_IO;
    if (rc == RC_OK)
        rc = ns_reload(g->ns);
    if (rc == RC_OK && ns_applied_index(g->ns) < m->index)
        rc = RC_CORRUPT; /* the data is older than the snapshot it claims to be */
    if (rc == RC_OK && g->id == NODE_GROUP_META)
        rc = node_book_load(n);
    if (rc == RC_OK)
        rc = node_log_put_install(&g->log, n->batch, m);
    if (rc != RC_OK) {
        node_set_error(n, "group %u: installing snapshot %llu failed: %s", g->id,
                       (unsigned long long)m->index, rc_message(rc));
        return RC_IO;
    }
    uint8_t key[6];
    pst_batch_del(n->batch, key, gkey(g->id, 'I', key)); /* same batch as the meta */
    g->conf = m->conf;
    g->conf_index = m->index;
    stage_free(g->stage);
    g->stage = NULL;
    g->stage_cleanup = true;
    uint64_t state_index = ns_applied_index(g->ns);
    fail_hidden_requests(n, g, state_index > m->index ? state_index : m->index);
    return RC_OK;
}

void node_snap_after_write(struct node *n, struct group *g)
{
    if (g->stage && g->stage->stepped)
        stage_drop(n, g); /* Raft did not install it (it had the entries): not needed */
    if (g->stage_cleanup) {
        g->stage_cleanup = false;
        uint8_t lo[6], hi[6];
        if (pst_delete_range(n->e, lo, gkey(g->id, 'T', lo), hi, gkey(g->id, 'T' + 1, hi),
                             false) != RC_OK)
            node_set_error(n, "group %u: deleting snapshot staging failed", g->id);
    }
}

/* ------------------------------------------------------------------ recovery at open */

/* Hard state consistent with the installed snapshot: term >= its term, commit = its index
 * (Raft installs only past its commit, so this never moves commit backwards). */
static int recover_meta(struct node *n, uint32_t group, const struct raft_snapshot_meta *m)
{
    struct pst_batch *b = pst_batch_new();
    if (!b)
        return RC_NOMEM;
    uint8_t key[NODE_LOG_KEY_BYTES], hi[6], rec[NODE_LOG_HS_BYTES];
    void *val = NULL;
    size_t vlen = 0;
    struct raft_hard_state hs = {0};
    int rc = pst_get(n->e, NULL, key, node_log_key_hs(group, key), &val, &vlen);
    if (rc == RC_OK)
        rc = node_log_hs_decode(val, vlen, &hs);
    free(val);
    if (rc == RC_NOTFOUND)
        rc = RC_OK;
    if (hs.term < m->term)
        hs = (struct raft_hard_state){.term = m->term, .vote = RAFT_NONE};
    hs.commit = m->index;
    node_log_hs_encode(&hs, rec);
    pst_batch_put(b, key, node_log_key_hs(group, key), rec, sizeof rec);
    size_t mlen;
    uint8_t *meta = node_log_snap_encode(m, &mlen);
    if (!meta)
        rc = RC_NOMEM;
    else
        pst_batch_put(b, key, node_log_key_snap(group, key), meta, mlen);
    free(meta);
    struct pst_iter *it = pst_iter_new(n->e, NULL, key, gkey(group, 'L', key), hi,
                                       gkey(group, 'L' + 1, hi));
    for (; it && pst_iter_valid(it); pst_iter_next(it)) {
        size_t klen;
        const void *k = pst_iter_key(it, &klen);
        pst_batch_del(b, k, klen);
    }
    if (!it || pst_iter_status(it) != RC_OK)
        rc = rc == RC_OK ? RC_IO : rc;
    if (it)
        pst_iter_free(it);
    pst_batch_del(b, key, gkey(group, 'I', key));
    if (rc == RC_OK)
        rc = pst_batch_status(b);
    if (rc == RC_OK)
        rc = pst_write(n->e, b, true);
    pst_batch_free(b);
    return rc;
}

int node_snap_recover(struct node *n, uint32_t group, char **err)
{
    uint8_t phase = 0;
    raft_id from = 0;
    struct raft_snapshot_meta m;
    int rc = marker_get(n, group, &phase, &from, &m);
    if (rc == RC_NOTFOUND || (rc == RC_OK && phase != PHASE_INSTALLING)) {
        rc = staging_delete(n, group, true); /* stale staging: the leader resends */
    } else if (rc == RC_OK) {
        rc = copy_staged(n, group);
        if (rc == RC_OK)
            rc = recover_meta(n, group, &m);
        if (rc == RC_OK)
            rc = staging_delete(n, group, true);
        if (rc == RC_OK) {
            free(n->note);
            if (asprintf(&n->note, "group %u: finished installing snapshot %llu (from node "
                         "%llu) that a restart interrupted", group,
                         (unsigned long long)m.index, (unsigned long long)from) < 0)
                n->note = NULL;
        }
    }
    if (rc != RC_OK && asprintf(err, "group %u: snapshot staging/install state: %s", group,
                                rc_message(rc)) < 0)
        *err = NULL;
    return rc;
}
