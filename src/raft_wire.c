/*
 * raft_wire.c - encoder and strict decoder for Raft messages and log entries.
 *
 * Integers marked "uv" are unsigned LEB128 varints: 7 bits per byte, least significant
 * group first, high bit set on every byte but the last; at most 10 bytes; the encoding
 * must be canonical (no superfluous 0x80 .. 0x00 tail) and fit the field's width.
 *
 * Frame (every frame, version 1):
 *   offset  size  field
 *   0       1     version = 1
 *   1       4     group id, u32 little-endian
 *   5       1     kind: 'M' = message body follows, 'E' = entry body follows
 *   6       n     body
 *   6+n     8     XXH3_64bits(bytes 0 .. 6+n-1), u64 little-endian
 *
 * Message body ('M'):
 *   size  field
 *   1     type (enum raft_msg_type, 1 .. RAFT_MSG__COUNT-1)
 *   1     flags: bit 0 reject, bit 1 snapshot meta present; other bits 0
 *   uv    from, to, term, log_term, index, commit, reject_hint (7 varints, u64)
 *   uv    err (<= 0xffff)
 *   uv    ctx (u64)
 *   -- only when flags bit 1 (and then not all-zero):
 *   uv    snapshot.index, snapshot.term
 *   uv    n_voters (<= RAFT_VOTERS_MAX), then n_voters ids (uv)
 *   uv    n_learners (<= RAFT_LEARNERS_MAX), then n_learners ids (uv)
 *   --
 *   uv    n_entries (<= limits.entries_max, <= remaining bytes / 4)
 *   ...   n_entries entry bodies
 *
 * Entry body ('E' frame, or inside a message):
 *   size  field
 *   uv    term, index (u64)
 *   1     type (enum raft_entry_type: 0 normal, 1 conf)
 *   uv    len (<= limits.entry_bytes_max, <= remaining bytes)
 *   len   data
 *
 * Invariants: raft_wire_*_size() equals what the encoder writes; decode(encode(x)) == x
 * field by field; encode(decode(b)) == b for every accepted b (canonical encoding).
 */
#include "raft_wire.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "rc.h"

#define FLAG_REJECT 0x01u
#define FLAG_SNAPSHOT 0x02u
#define ENTRY_MIN_BYTES 4 /* term, index, type, len: one byte each at least */

void raft_wire_limits_default(struct raft_wire_limits *lim)
{
    lim->entries_max = RAFT_WIRE_ENTRIES_MAX_DEFAULT;
    lim->entry_bytes_max = RAFT_WIRE_ENTRY_BYTES_MAX_DEFAULT;
    lim->msg_bytes_max = RAFT_WIRE_MSG_BYTES_MAX_DEFAULT;
}

/* --- sizes ---------------------------------------------------------------------------- */
static size_t uv_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static bool snap_present(const struct raft_snapshot_meta *s)
{
    return s->index || s->term || s->conf.n_voters || s->conf.n_learners;
}

static bool entry_valid(const struct raft_entry *e)
{
    return e->type <= RAFT_ENTRY_CONF && (e->len == 0 || e->data != NULL);
}

static size_t entry_body_size(const struct raft_entry *e)
{
    return uv_size(e->term) + uv_size(e->index) + 1 + uv_size(e->len) + e->len;
}

static bool msg_valid(const struct raft_msg *m)
{
    if (m->type < 1 || m->type >= RAFT_MSG__COUNT)
        return false;
    if (m->snapshot.conf.n_voters > RAFT_VOTERS_MAX ||
        m->snapshot.conf.n_learners > RAFT_LEARNERS_MAX)
        return false;
    if (m->n_entries > 0 && !m->entries)
        return false;
    for (uint32_t i = 0; i < m->n_entries; i++)
        if (!entry_valid(&m->entries[i]))
            return false;
    return true;
}

size_t raft_wire_msg_size(const struct raft_msg *m)
{
    if (!msg_valid(m))
        return 0;
    size_t n = RAFT_WIRE_HEADER_BYTES + 2 + RAFT_WIRE_CHECKSUM_BYTES;
    n += uv_size(m->from) + uv_size(m->to) + uv_size(m->term) + uv_size(m->log_term) +
         uv_size(m->index) + uv_size(m->commit) + uv_size(m->reject_hint) +
         uv_size(m->err) + uv_size(m->ctx);
    if (snap_present(&m->snapshot)) {
        const struct raft_snapshot_meta *s = &m->snapshot;
        n += uv_size(s->index) + uv_size(s->term);
        n += uv_size(s->conf.n_voters) + uv_size(s->conf.n_learners);
        for (uint32_t i = 0; i < s->conf.n_voters; i++)
            n += uv_size(s->conf.voters[i]);
        for (uint32_t i = 0; i < s->conf.n_learners; i++)
            n += uv_size(s->conf.learners[i]);
    }
    n += uv_size(m->n_entries);
    for (uint32_t i = 0; i < m->n_entries; i++)
        n += entry_body_size(&m->entries[i]);
    return n;
}

size_t raft_wire_entry_size(const struct raft_entry *e)
{
    if (!entry_valid(e))
        return 0;
    return RAFT_WIRE_HEADER_BYTES + entry_body_size(e) + RAFT_WIRE_CHECKSUM_BYTES;
}

/* --- encoder (the caller checked the size) ----------------------------------------------- */
static uint8_t *put_uv(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static uint8_t *put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        *p++ = (uint8_t)(v >> (8 * i));
    return p;
}

static uint8_t *put_header(uint8_t *p, uint32_t group, uint8_t kind)
{
    *p++ = RAFT_WIRE_VERSION;
    p = put_le(p, group, 4);
    *p++ = kind;
    return p;
}

static uint8_t *put_entry(uint8_t *p, const struct raft_entry *e)
{
    p = put_uv(p, e->term);
    p = put_uv(p, e->index);
    *p++ = e->type;
    p = put_uv(p, e->len);
    if (e->len > 0)
        memcpy(p, e->data, e->len);
    return p + e->len;
}

static uint8_t *put_snapshot(uint8_t *p, const struct raft_snapshot_meta *s)
{
    p = put_uv(p, s->index);
    p = put_uv(p, s->term);
    p = put_uv(p, s->conf.n_voters);
    for (uint32_t i = 0; i < s->conf.n_voters; i++)
        p = put_uv(p, s->conf.voters[i]);
    p = put_uv(p, s->conf.n_learners);
    for (uint32_t i = 0; i < s->conf.n_learners; i++)
        p = put_uv(p, s->conf.learners[i]);
    return p;
}

static void put_checksum(uint8_t *buf, uint8_t *p)
{
    put_le(p, XXH3_64bits(buf, (size_t)(p - buf)), 8);
}

int raft_wire_msg_encode(uint32_t group, const struct raft_msg *m, uint8_t *buf, size_t cap,
                         size_t *len)
{
    size_t need = raft_wire_msg_size(m);
    if (need == 0)
        return RC_BADARG;
    if (need > cap)
        return RC_TOOBIG;
    bool snap = snap_present(&m->snapshot);
    uint8_t *p = put_header(buf, group, RAFT_WIRE_KIND_MSG);
    *p++ = m->type;
    *p++ = (uint8_t)((m->reject ? FLAG_REJECT : 0) | (snap ? FLAG_SNAPSHOT : 0));
    const uint64_t fields[] = {m->from, m->to, m->term, m->log_term, m->index,
                               m->commit, m->reject_hint, m->err, m->ctx};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        p = put_uv(p, fields[i]);
    if (snap)
        p = put_snapshot(p, &m->snapshot);
    p = put_uv(p, m->n_entries);
    for (uint32_t i = 0; i < m->n_entries; i++)
        p = put_entry(p, &m->entries[i]);
    put_checksum(buf, p);
    *len = need;
    return RC_OK;
}

int raft_wire_entry_encode(uint32_t group, const struct raft_entry *e, uint8_t *buf,
                           size_t cap, size_t *len)
{
    size_t need = raft_wire_entry_size(e);
    if (need == 0)
        return RC_BADARG;
    if (need > cap)
        return RC_TOOBIG;
    uint8_t *p = put_header(buf, group, RAFT_WIRE_KIND_ENTRY);
    p = put_entry(p, e);
    put_checksum(buf, p);
    *len = need;
    return RC_OK;
}

/* --- decoder ---------------------------------------------------------------------------- */
struct rd {
    const uint8_t *p, *end;
    bool bad; /* sticky: once set, every read returns 0 */
};

static uint64_t get_uv(struct rd *r)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 70 && !r->bad; shift += 7) {
        if (r->p == r->end) {
            r->bad = true;
            break;
        }
        uint8_t b = *r->p++;
        if (shift == 63 && b > 1) /* more than 64 bits */
            r->bad = true;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            if (b == 0 && shift > 0) /* non-canonical: a superfluous zero group */
                r->bad = true;
            return r->bad ? 0 : v;
        }
    }
    r->bad = true;
    return 0;
}

static uint64_t get_uv_max(struct rd *r, uint64_t max)
{
    uint64_t v = get_uv(r);
    if (v > max)
        r->bad = true;
    return r->bad ? 0 : v;
}

static uint8_t get_u8(struct rd *r)
{
    if (r->bad || r->p == r->end) {
        r->bad = true;
        return 0;
    }
    return *r->p++;
}

static size_t remaining(const struct rd *r) { return (size_t)(r->end - r->p); }

/* Parse one entry body; e->data points into the input (not owned). */
static void get_entry(struct rd *r, const struct raft_wire_limits *lim, struct raft_entry *e)
{
    e->term = get_uv(r);
    e->index = get_uv(r);
    e->type = get_u8(r);
    if (e->type > RAFT_ENTRY_CONF)
        r->bad = true;
    uint64_t len = get_uv_max(r, lim->entry_bytes_max);
    if (len > remaining(r))
        r->bad = true;
    if (r->bad) {
        e->len = 0;
        e->data = NULL;
        return;
    }
    e->len = (uint32_t)len;
    e->data = len ? (uint8_t *)(uintptr_t)r->p : NULL;
    r->p += len;
}

/* Check length, version, kind and checksum; on success r covers the body. */
static int open_frame(const uint8_t *buf, size_t len, const struct raft_wire_limits *lim,
                      uint8_t kind, uint32_t *group, struct rd *r)
{
    if (!buf || len < RAFT_WIRE_HEADER_BYTES + RAFT_WIRE_CHECKSUM_BYTES ||
        len > lim->msg_bytes_max)
        return RC_CORRUPT;
    if (buf[0] != RAFT_WIRE_VERSION || buf[5] != kind)
        return RC_CORRUPT;
    size_t body_end = len - RAFT_WIRE_CHECKSUM_BYTES;
    uint64_t sum = 0;
    for (int i = 0; i < 8; i++)
        sum |= (uint64_t)buf[body_end + (size_t)i] << (8 * i);
    if (sum != XXH3_64bits(buf, body_end))
        return RC_CORRUPT;
    *group = (uint32_t)buf[1] | (uint32_t)buf[2] << 8 | (uint32_t)buf[3] << 16 |
             (uint32_t)buf[4] << 24;
    *r = (struct rd){.p = buf + RAFT_WIRE_HEADER_BYTES, .end = buf + body_end};
    return RC_OK;
}

static void get_snapshot(struct rd *r, struct raft_snapshot_meta *s)
{
    s->index = get_uv(r);
    s->term = get_uv(r);
    s->conf.n_voters = (uint32_t)get_uv_max(r, RAFT_VOTERS_MAX);
    for (uint32_t i = 0; i < s->conf.n_voters && !r->bad; i++)
        s->conf.voters[i] = get_uv(r);
    s->conf.n_learners = (uint32_t)get_uv_max(r, RAFT_LEARNERS_MAX);
    for (uint32_t i = 0; i < s->conf.n_learners && !r->bad; i++)
        s->conf.learners[i] = get_uv(r);
    if (!snap_present(s)) /* the encoder never sets the flag for an empty meta */
        r->bad = true;
}

/* Fixed part of a message, up to and including n_entries. */
static void get_msg_head(struct rd *r, const struct raft_wire_limits *lim, struct raft_msg *m)
{
    memset(m, 0, sizeof(*m));
    m->type = get_u8(r);
    if (m->type < 1 || m->type >= RAFT_MSG__COUNT)
        r->bad = true;
    uint8_t flags = get_u8(r);
    if (flags & ~(FLAG_REJECT | FLAG_SNAPSHOT))
        r->bad = true;
    m->reject = (flags & FLAG_REJECT) != 0;
    m->from = get_uv(r);
    m->to = get_uv(r);
    m->term = get_uv(r);
    m->log_term = get_uv(r);
    m->index = get_uv(r);
    m->commit = get_uv(r);
    m->reject_hint = get_uv(r);
    m->err = (uint16_t)get_uv_max(r, UINT16_MAX);
    m->ctx = get_uv(r);
    if (flags & FLAG_SNAPSHOT)
        get_snapshot(r, &m->snapshot);
    uint64_t n = get_uv_max(r, lim->entries_max);
    if (n > remaining(r) / ENTRY_MIN_BYTES)
        r->bad = true;
    m->n_entries = r->bad ? 0 : (uint32_t)n;
}

int raft_wire_msg_decode(const uint8_t *buf, size_t len, const struct raft_wire_limits *lim,
                         uint32_t *group, struct raft_msg *out)
{
    struct raft_wire_limits dflt;
    if (!lim) {
        raft_wire_limits_default(&dflt);
        lim = &dflt;
    }
    struct rd r;
    uint32_t g;
    int rc = open_frame(buf, len, lim, RAFT_WIRE_KIND_MSG, &g, &r);
    if (rc != RC_OK)
        return rc;
    struct raft_msg m;
    get_msg_head(&r, lim, &m);
    /* Pass 1: validate every entry and count data bytes (bounded by len). */
    struct rd entries_at = r;
    size_t data_bytes = 0;
    struct raft_entry e;
    for (uint32_t i = 0; i < m.n_entries && !r.bad; i++) {
        get_entry(&r, lim, &e);
        data_bytes += e.len;
    }
    if (r.bad || r.p != r.end)
        return RC_CORRUPT;
    if (m.n_entries > 0) {
        /* Pass 2: one block holds the entry array and all the data. */
        size_t arr = (size_t)m.n_entries * sizeof(struct raft_entry);
        uint8_t *block = malloc(arr + data_bytes);
        if (!block)
            return RC_NOMEM;
        m.entries = (struct raft_entry *)(void *)block;
        uint8_t *data = block + arr;
        for (uint32_t i = 0; i < m.n_entries; i++) {
            get_entry(&entries_at, lim, &m.entries[i]);
            if (m.entries[i].len > 0) {
                memcpy(data, m.entries[i].data, m.entries[i].len);
                m.entries[i].data = data;
                data += m.entries[i].len;
            }
        }
    }
    *group = g;
    *out = m;
    return RC_OK;
}

int raft_wire_entry_decode(const uint8_t *buf, size_t len, const struct raft_wire_limits *lim,
                           uint32_t *group, struct raft_entry *out)
{
    struct raft_wire_limits dflt;
    if (!lim) {
        raft_wire_limits_default(&dflt);
        lim = &dflt;
    }
    struct rd r;
    uint32_t g;
    int rc = open_frame(buf, len, lim, RAFT_WIRE_KIND_ENTRY, &g, &r);
    if (rc != RC_OK)
        return rc;
    struct raft_entry e;
    get_entry(&r, lim, &e);
    if (r.bad || r.p != r.end)
        return RC_CORRUPT;
    if (e.len > 0) {
        uint8_t *data = malloc(e.len);
        if (!data)
            return RC_NOMEM;
        memcpy(data, e.data, e.len);
        e.data = data;
    }
    *group = g;
    *out = e;
    return RC_OK;
}

void raft_wire_msg_free(struct raft_msg *m)
{
    free(m->entries); /* one block: the array and the data */
    m->entries = NULL;
    m->n_entries = 0;
}

void raft_wire_entry_free(struct raft_entry *e)
{
    free(e->data);
    e->data = NULL;
    e->len = 0;
}
