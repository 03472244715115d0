/*
 * ns_record.c - storage keys and record codecs of the state machine, with validation:
 * a record that does not decode is RC_CORRUPT, never a crash or an out-of-bounds read.
 *
 * Keys (group = u32 big endian):
 *   'g' group 'A'          applied record of the group
 *   'g' group 'K' key      current record of a user key (key: 1..key_len_max raw bytes)
 *
 * Applied record ('A'), format 1, exactly 33 bytes, integers big endian:
 *   offset size field
 *   0      1    format      = 1
 *   1      8    index       last applied Raft index
 *   9      8    term        term of that entry
 *   17     8    revision    group revision (changing entries applied so far)
 *   25     8    key_count   number of 'K' records of the group
 *
 * Key record ('K'), format 1, 35 + actor_len + value_len bytes:
 *   offset size field
 *   0      1    format      = 1
 *   1      1    flags       0 in format 1 (bit 0 is reserved for "tombstone" in history
 *                           records of the governance issue, which reuse this layout)
 *   2      8    create_rev  revision that created the key (>= 1)
 *   10     8    mod_rev     revision of the last change (>= create_rev)
 *   18     8    version     1 on create, +1 per change (<= mod_rev - create_rev + 1)
 *   26     8    mtime_ms    proposer's time of the last change (unix ms)
 *   34     1    actor_len   0..255
 *   35     a    actor       who made the last change (truncated to 255 bytes)
 *   35+a   rest value       the value bytes, to the end of the record
 *
 * History ('V', see docs/storage.md "History records"). The user key is escaped so that
 * one key's records are contiguous and ordered by revision even when another key extends
 * it (byte 0x00 -> 0x00 0xFF; then a 2-byte tag 0x00 T that cannot occur inside an
 * escaped key):
 *   'g' group 'V'                        group history record (9 bytes):
 *                                          0 format = 1 | 1 compact_rev u64
 *   'g' group 'V' esc(key) 00 00         key history meta (18 bytes):
 *                                          0 format = 1 | 1 flags (bit 0: older versions
 *                                          were pruned) | 2 count u64 | 10 oldest_rev u64
 *   'g' group 'V' esc(key) 00 01 rev     one version, written at revision rev (u64 BE):
 *                                          the 'K' layout below, format 1; flags bit 0 =
 *                                          tombstone (a deletion: version 0, no value,
 *                                          create_rev of the deleted incarnation); mod_rev
 *                                          equals rev
 *
 * No checksum in these records: on disk they live in LevelDB, whose blocks carry a CRC32C
 * that LevelDB verifies on read (the store is opened with paranoid checks by pst); the
 * memory engine never leaves the process. A new field means a new format number; readers
 * keep decoding older formats.
 */
#include <string.h>

#include "../rc.h"
#include "ns_internal.h"

void ns_put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)(v & 0xffu);
        v >>= 8;
    }
}

uint64_t ns_get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

void ns_key_group_letter(uint8_t *buf, uint32_t group, char letter)
{
    buf[0] = 'g';
    buf[1] = (uint8_t)(group >> 24);
    buf[2] = (uint8_t)(group >> 16);
    buf[3] = (uint8_t)(group >> 8);
    buf[4] = (uint8_t)group;
    buf[5] = (uint8_t)letter;
}

uint8_t *ns_key_data(uint32_t group, const void *key, size_t klen, size_t *len)
{
    NS_ASSERT(klen < SIZE_MAX - NS_GROUP_PREFIX_LEN);
    uint8_t *k = malloc(NS_GROUP_PREFIX_LEN + klen + 1);
    if (!k)
        return NULL;
    ns_key_group_letter(k, group, NS_LETTER_KEY);
    if (klen)
        memcpy(k + NS_GROUP_PREFIX_LEN, key, klen);
    *len = NS_GROUP_PREFIX_LEN + klen;
    return k;
}

void ns_applied_encode(const struct ns_applied *a, uint8_t *buf)
{
    NS_ASSERT(a->revision <= a->index); /* at most one revision per entry */
    NS_ASSERT(a->index == 0 || a->term >= 1);
    buf[0] = NS_APPLIED_FORMAT;
    ns_put_u64(buf + 1, a->index);
    ns_put_u64(buf + 9, a->term);
    ns_put_u64(buf + 17, a->revision);
    ns_put_u64(buf + 25, a->key_count);
}

int ns_applied_decode(const void *buf, size_t len, struct ns_applied *a)
{
    const uint8_t *p = buf;
    if (len != NS_APPLIED_LEN || p[0] != NS_APPLIED_FORMAT)
        return RC_CORRUPT;
    a->index = ns_get_u64(p + 1);
    a->term = ns_get_u64(p + 9);
    a->revision = ns_get_u64(p + 17);
    a->key_count = ns_get_u64(p + 25);
    /* Each changing entry takes one index and adds at most one revision; Raft terms
     * start at 1. (The key count has no such bound: one MSET creates many keys.) */
    if (a->revision > a->index)
        return RC_CORRUPT;
    if (a->index > 0 && a->term == 0)
        return RC_CORRUPT;
    return RC_OK;
}

/* The 'K' layout with the given flags byte (0, or NS_HIST_TOMBSTONE for a deletion). */
static uint8_t *rec_encode(const struct ns_keyrec *r, uint8_t flags, size_t *len)
{
    NS_ASSERT(r->create_rev >= 1);
    NS_ASSERT(r->mod_rev >= r->create_rev);
    if (flags & NS_HIST_TOMBSTONE) {
        NS_ASSERT(r->version == 0);
        NS_ASSERT(r->vlen == 0);
    } else {
        NS_ASSERT(r->version >= 1);
        NS_ASSERT(r->version - 1 <= r->mod_rev - r->create_rev);
    }
    size_t alen = r->actor_len > NS_ACTOR_LEN_MAX ? NS_ACTOR_LEN_MAX : r->actor_len;
    NS_ASSERT(r->vlen < SIZE_MAX - NS_KEY_HDR_LEN - NS_ACTOR_LEN_MAX);
    size_t total = NS_KEY_HDR_LEN + alen + r->vlen;
    uint8_t *p = malloc(total ? total : 1);
    if (!p)
        return NULL;
    p[0] = NS_KEY_FORMAT;
    p[1] = flags;
    ns_put_u64(p + 2, r->create_rev);
    ns_put_u64(p + 10, r->mod_rev);
    ns_put_u64(p + 18, r->version);
    ns_put_u64(p + 26, r->mtime_ms);
    p[34] = (uint8_t)alen;
    if (alen)
        memcpy(p + NS_KEY_HDR_LEN, r->actor, alen);
    if (r->vlen)
        memcpy(p + NS_KEY_HDR_LEN + alen, r->value, r->vlen);
    *len = total;
    return p;
}

uint8_t *ns_keyrec_encode(const struct ns_keyrec *r, size_t *len)
{
    return rec_encode(r, 0, len);
}

static int rec_decode(const void *buf, size_t len, struct ns_keyrec *r, uint8_t *flags)
{
    const uint8_t *p = buf;
    if (len < NS_KEY_HDR_LEN || p[0] != NS_KEY_FORMAT || (p[1] & ~NS_HIST_TOMBSTONE) != 0)
        return RC_CORRUPT;
    *flags = p[1];
    size_t alen = p[34];
    if (len - NS_KEY_HDR_LEN < alen)
        return RC_CORRUPT;
    r->create_rev = ns_get_u64(p + 2);
    r->mod_rev = ns_get_u64(p + 10);
    r->version = ns_get_u64(p + 18);
    r->mtime_ms = ns_get_u64(p + 26);
    r->actor = (const char *)p + NS_KEY_HDR_LEN;
    r->actor_len = alen;
    r->value = (const char *)p + NS_KEY_HDR_LEN + alen;
    r->vlen = len - NS_KEY_HDR_LEN - alen;
    if (r->create_rev < 1 || r->mod_rev < r->create_rev)
        return RC_CORRUPT;
    if (*flags & NS_HIST_TOMBSTONE)
        return r->version == 0 && r->vlen == 0 ? RC_OK : RC_CORRUPT;
    if (r->version < 1 || r->version - 1 > r->mod_rev - r->create_rev)
        return RC_CORRUPT;
    return RC_OK;
}

int ns_keyrec_decode(const void *buf, size_t len, struct ns_keyrec *r)
{
    uint8_t flags = 0;
    int rc = rec_decode(buf, len, r, &flags);
    return rc == RC_OK && flags != 0 ? RC_CORRUPT : rc; /* 'K' records are never tombstones */
}

/* ------------------------------------------------------------------ history ('V') */

uint8_t *ns_histrec_encode(const struct ns_keyrec *r, bool tombstone, size_t *len)
{
    return rec_encode(r, tombstone ? NS_HIST_TOMBSTONE : 0, len);
}

int ns_histrec_decode(const void *buf, size_t len, struct ns_keyrec *r, bool *tombstone)
{
    uint8_t flags = 0;
    int rc = rec_decode(buf, len, r, &flags);
    *tombstone = (flags & NS_HIST_TOMBSTONE) != 0;
    return rc;
}

uint8_t *ns_key_hist(uint32_t group, const void *key, size_t klen, uint8_t tag,
                     const uint64_t *rev, size_t *len)
{
    NS_ASSERT(klen >= 1);
    NS_ASSERT(tag <= NS_HTAG_END);
    NS_ASSERT(klen < (SIZE_MAX - NS_GROUP_PREFIX_LEN - 10) / 2);
    const uint8_t *k = key;
    uint8_t *p = malloc(NS_GROUP_PREFIX_LEN + 2 * klen + 2 + 8);
    if (!p)
        return NULL;
    ns_key_group_letter(p, group, NS_LETTER_HISTORY);
    size_t o = NS_GROUP_PREFIX_LEN;
    for (size_t i = 0; i < klen; i++) {
        p[o++] = k[i];
        if (k[i] == 0x00)
            p[o++] = 0xff;
    }
    p[o++] = 0x00;
    p[o++] = tag;
    if (rev) {
        ns_put_u64(p + o, *rev);
        o += 8;
    }
    *len = o;
    return p;
}

void ns_histmeta_encode(const struct ns_histmeta *m, uint8_t *buf)
{
    NS_ASSERT(m->count >= 1);
    NS_ASSERT(m->oldest_rev >= 1);
    buf[0] = NS_HIST_FORMAT;
    buf[1] = m->pruned ? NS_HIST_META_PRUNED : 0;
    ns_put_u64(buf + 2, m->count);
    ns_put_u64(buf + 10, m->oldest_rev);
}

int ns_histmeta_decode(const void *buf, size_t len, struct ns_histmeta *m)
{
    const uint8_t *p = buf;
    if (len != NS_HIST_META_LEN || p[0] != NS_HIST_FORMAT || (p[1] & ~NS_HIST_META_PRUNED))
        return RC_CORRUPT;
    m->pruned = (p[1] & NS_HIST_META_PRUNED) != 0;
    m->count = ns_get_u64(p + 2);
    m->oldest_rev = ns_get_u64(p + 10);
    return m->count >= 1 && m->oldest_rev >= 1 ? RC_OK : RC_CORRUPT;
}

void ns_histgroup_encode(uint64_t compact_rev, uint8_t *buf)
{
    buf[0] = NS_HIST_FORMAT;
    ns_put_u64(buf + 1, compact_rev);
}

int ns_histgroup_decode(const void *buf, size_t len, uint64_t *compact_rev)
{
    const uint8_t *p = buf;
    if (len != NS_HIST_GROUP_LEN || p[0] != NS_HIST_FORMAT)
        return RC_CORRUPT;
    *compact_rev = ns_get_u64(p + 1);
    return RC_OK;
}

bool ns_parse_u64(const char *s, size_t len, uint64_t *v)
{
    if (len == 0 || len > 20)
        return false;
    uint64_t x = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (x > (UINT64_MAX - d) / 10)
            return false;
        x = x * 10 + d;
    }
    *v = x;
    return true;
}
