/*
 * ns_snapshot.c - last-known-good snapshots: CFG.SNAPSHOT pins (prefix, revision) in O(1)
 * (one record, no copy), CFG.SNAPSHOT.DEL unpins; the oldest pinned revision of the group
 * keeps history from being pruned (ns_history_pin_rev, used by ns_history.c's prune).
 *
 * Records (docs/storage.md "Snapshot records"), integers big endian:
 *   'g' group 'P'            counter, exactly 9 bytes: 0 format = 1 | 1 next_id u64
 *   'g' group 'P' id (u64)   one snapshot, format 1:
 *     offset   size field
 *     0        1    format     = 1
 *     1        8    revision   the pinned revision (the snapshot entry's revision)
 *     9        8    time_ms    proposer's time of the entry
 *     17       1    actor_len  0..255
 *     18       a    actor
 *     18+a     2    prefix_len
 *     20+a     p    prefix
 *     20+a+p   rest label
 *
 * Invariants:
 *   - ids are 1, 2, 3 ... per group, never reused (the counter only grows);
 *   - every snapshot's id < next_id and revision <= the group revision;
 *   - n->snap_count / snap_pin_rev / snap_next_id and n->gov->pins equal the records
 *     (ns_gov.h); pins apply group-wide: no version a read at any revision >= the oldest
 *     pin needs is pruned, whatever the prefix of the snapshot that pins it.
 * A snapshot pins the revision of its own entry (which advances the revision and changes
 * no key, so the state there equals the state before it); inside MULTI/EXEC that is the
 * state at the end of the transaction.
 */
#include <string.h>

#include "../rc.h"
#include "ns_gov.h"

#define SNAP_FORMAT 1u
#define SNAP_HDR_LEN 18u
#define SNAP_COUNTER_LEN 9u
#define SNAP_KEY_LEN (NS_GROUP_PREFIX_LEN + 8u)

uint64_t ns_snapshot_count(const struct ns *n) { return n->snap_count; }

static void snap_key(uint32_t group, uint64_t id, uint8_t *k)
{
    ns_key_group_letter(k, group, NS_LETTER_SNAPSHOT);
    ns_put_u64(k + NS_GROUP_PREFIX_LEN, id);
}

/* Decode a snapshot record (storage key k, value v). RC_OK / RC_CORRUPT. */
static int snap_decode(const uint8_t *k, size_t klen, const uint8_t *v, size_t vlen,
                       struct ns_snapshot *s)
{
    if (klen != SNAP_KEY_LEN || vlen < SNAP_HDR_LEN || v[0] != SNAP_FORMAT)
        return RC_CORRUPT;
    memset(s, 0, sizeof(*s));
    s->id = ns_get_u64(k + NS_GROUP_PREFIX_LEN);
    s->revision = ns_get_u64(v + 1);
    s->time_ms = ns_get_u64(v + 9);
    s->actor_len = v[17];
    if (vlen < SNAP_HDR_LEN + s->actor_len + 2)
        return RC_CORRUPT;
    s->actor = (const char *)v + SNAP_HDR_LEN;
    const uint8_t *p = v + SNAP_HDR_LEN + s->actor_len;
    s->prefix_len = (size_t)p[0] << 8 | p[1];
    size_t used = SNAP_HDR_LEN + s->actor_len + 2 + s->prefix_len;
    if (vlen < used || s->id == 0)
        return RC_CORRUPT;
    s->prefix = (const char *)p + 2;
    s->label = (const char *)v + used;
    s->label_len = vlen - used;
    return RC_OK;
}

static uint8_t *snap_encode(const struct ns_snapshot *s, size_t *len)
{
    size_t alen = s->actor_len > NS_ACTOR_LEN_MAX ? NS_ACTOR_LEN_MAX : s->actor_len;
    NS_ASSERT(s->prefix_len <= 0xffff);
    size_t total = SNAP_HDR_LEN + alen + 2 + s->prefix_len + s->label_len;
    uint8_t *v = malloc(total);
    if (!v)
        return NULL;
    v[0] = SNAP_FORMAT;
    ns_put_u64(v + 1, s->revision);
    ns_put_u64(v + 9, s->time_ms);
    v[17] = (uint8_t)alen;
    uint8_t *p = v + SNAP_HDR_LEN;
    if (alen)
        memcpy(p, s->actor, alen);
    p += alen;
    p[0] = (uint8_t)(s->prefix_len >> 8);
    p[1] = (uint8_t)s->prefix_len;
    p += 2;
    if (s->prefix_len)
        memcpy(p, s->prefix, s->prefix_len);
    p += s->prefix_len;
    if (s->label_len)
        memcpy(p, s->label, s->label_len);
    *len = total;
    return v;
}

static struct pst_iter *snap_iter(struct ns *n)
{
    uint8_t lo[SNAP_KEY_LEN], hi[NS_GROUP_PREFIX_LEN];
    snap_key(n->group, 0, lo);
    ns_key_group_letter(hi, n->group, NS_LETTER_SNAPSHOT + 1);
    return pst_iter_new(n->e, NULL, lo, sizeof(lo), hi, sizeof(hi));
}

static int load_counter(struct ns *n, uint64_t *next_id)
{
    uint8_t k[NS_GROUP_PREFIX_LEN];
    ns_key_group_letter(k, n->group, NS_LETTER_SNAPSHOT);
    void *val = NULL;
    size_t vlen = 0;
    *next_id = 1;
    int rc = pst_get(n->e, NULL, k, sizeof(k), &val, &vlen);
    if (rc == RC_NOTFOUND)
        return RC_OK;
    if (rc != RC_OK)
        return rc;
    const uint8_t *v = val;
    if (vlen != SNAP_COUNTER_LEN || v[0] != SNAP_FORMAT || ns_get_u64(v + 1) == 0)
        rc = RC_CORRUPT;
    else
        *next_id = ns_get_u64(v + 1);
    free(val);
    return rc;
}

static void recompute_pin(struct ns *n)
{
    const struct ns_gov_state *st = n->gov;
    uint64_t pin = 0;
    for (size_t i = 0; i < st->npins; i++)
        if (pin == 0 || st->pins[i].revision < pin)
            pin = st->pins[i].revision;
    n->snap_count = st->npins;
    n->snap_pin_rev = pin;
}

int gov_snap_load(struct ns *n)
{
    struct ns_gov_state *st = n->gov;
    NS_ASSERT(st != NULL);
    st->npins = 0;
    uint64_t next_id = 1;
    int rc = load_counter(n, &next_id);
    struct pst_iter *it = rc == RC_OK ? snap_iter(n) : NULL;
    if (rc == RC_OK && !it)
        rc = RC_NOMEM;
    for (; rc == RC_OK && pst_iter_valid(it); pst_iter_next(it)) {
        size_t klen = 0, vlen = 0;
        const uint8_t *k = pst_iter_key(it, &klen);
        const uint8_t *v = pst_iter_value(it, &vlen);
        struct ns_snapshot s;
        rc = snap_decode(k, klen, v, vlen, &s);
        if (rc == RC_OK && (s.id >= next_id || s.revision > n->revision))
            rc = RC_CORRUPT;
        if (rc == RC_OK)
            rc = gov_reserve((void **)&st->pins, &st->pins_cap, st->npins + 1,
                             sizeof(*st->pins));
        if (rc == RC_OK)
            st->pins[st->npins++] = (struct gov_pin){s.id, s.revision};
    }
    if (rc == RC_OK && it)
        rc = pst_iter_status(it);
    pst_iter_free(it);
    if (rc != RC_OK)
        return rc;
    n->snap_next_id = next_id;
    recompute_pin(n);
    return RC_OK;
}

/* ------------------------------------------------------------------ entry changes */

void gov_snap_free_txn(struct ns_gov_txn *g)
{
    free(g->created);
    free(g->deleted);
}

void gov_snap_commit(struct ns *n, struct ns_gov_txn *g)
{
    if (!g->snaps_changed)
        return;
    struct ns_gov_state *st = n->gov;
    for (size_t d = 0; d < g->ndeleted; d++) {
        for (size_t i = 0; i < st->npins; i++) {
            if (st->pins[i].id == g->deleted[d]) {
                memmove(&st->pins[i], &st->pins[i + 1],
                        (st->npins - i - 1) * sizeof(*st->pins));
                st->npins--;
                break;
            }
        }
    }
    for (size_t c = 0; c < g->ncreated; c++) {
        NS_ASSERT(st->npins < st->pins_cap); /* reserved when staged */
        st->pins[st->npins++] = g->created[c];
    }
    n->snap_next_id = g->next_id;
    recompute_pin(n);
    NS_ASSERT(n->snap_count == g->snap_count);
}

/* The entry's snapshot view, initialized from n on first use. */
static int snap_txn(struct ns_txn *t, struct ns_gov_txn **out)
{
    int rc = gov_txn_get(t, out);
    if (rc == RC_OK && !(*out)->snaps_changed) {
        (*out)->snaps_changed = true;
        (*out)->snap_count = t->n->snap_count;
        (*out)->next_id = t->n->snap_next_id;
    }
    return rc;
}

static void stage_counter(struct ns_txn *t, uint64_t next_id)
{
    uint8_t k[NS_GROUP_PREFIX_LEN], v[SNAP_COUNTER_LEN];
    ns_key_group_letter(k, t->n->group, NS_LETTER_SNAPSHOT);
    v[0] = SNAP_FORMAT;
    ns_put_u64(v + 1, next_id);
    pst_batch_put(t->n->batch, k, sizeof(k), v, sizeof(v));
}

int ns_cmd_snapshot(struct ns_txn *t, int argc, char **argv, size_t *argvlen,
                    struct ns_reply *out)
{
    if (argc != 2 && argc != 4)
        return argc < 2 ? gov_err(out, RC_BADARG,
                                  "wrong number of arguments for 'cfg.snapshot' command")
                        : gov_err(out, RC_BADARG, "syntax error");
    if (argc == 4 && !gov_arg_is(argv[2], argvlen[2], "LABEL"))
        return gov_err(out, RC_BADARG, "syntax error");
    if (argvlen[1] > t->n->lim.key_len_max)
        return gov_err(out, RC_TOOBIG, "prefix longer than the key length limit");
    if (argc == 4 && argvlen[3] > NS_SNAP_LABEL_MAX)
        return gov_err(out, RC_TOOBIG, "label longer than %u bytes", NS_SNAP_LABEL_MAX);
    struct ns_gov_txn *g = NULL;
    int rc = snap_txn(t, &g);
    if (rc != RC_OK)
        return rc;
    uint64_t max = gov_snapshots_max(t->n);
    if (g->snap_count >= max)
        return gov_err(out, RC_TOOBIG,
                       "too many snapshots (limit %llu per group); delete some with "
                       "CFG.SNAPSHOT.DEL",
                       (unsigned long long)max);
    struct ns_gov_state *st = t->n->gov;
    rc = gov_reserve((void **)&st->pins, &st->pins_cap, st->npins + g->ncreated + 1,
                     sizeof(*st->pins));
    if (rc == RC_OK)
        rc = gov_reserve((void **)&g->created, &g->created_cap, g->ncreated + 1,
                         sizeof(*g->created));
    const char *actor = t->m->actor ? t->m->actor : "default";
    struct ns_snapshot s = {
        .id = g->next_id, .revision = t->rev, .time_ms = t->m->time_ms,
        .prefix = argv[1], .prefix_len = argvlen[1], .actor = actor,
        .actor_len = strlen(actor), .label = argc == 4 ? argv[3] : NULL,
        .label_len = argc == 4 ? argvlen[3] : 0,
    };
    size_t vlen = 0;
    uint8_t *v = rc == RC_OK ? snap_encode(&s, &vlen) : NULL;
    /* Audit: the subject is the prefix (CFG.AUDIT <prefix> lists it), the detail names the
     * snapshot. */
    char *idtext = v ? gov_own_text(t, "id=%llu label=%.*s", (unsigned long long)s.id,
                                    (int)s.label_len, s.label ? s.label : "")
                     : NULL;
    if (!idtext) {
        free(v);
        return RC_NOMEM;
    }
    uint8_t k[SNAP_KEY_LEN];
    snap_key(t->n->group, s.id, k);
    pst_batch_put(t->n->batch, k, sizeof(k), v, vlen);
    free(v);
    stage_counter(t, s.id + 1);
    g->created[g->ncreated++] = (struct gov_pin){s.id, s.revision};
    g->next_id = s.id + 1;
    g->snap_count++;
    t->changed = true;
    t->op = "snapshot";
    t->subject = argv[1];
    t->subject_len = argvlen[1];
    t->detail = idtext;
    t->detail_len = strlen(idtext);
    ns_reply_set_int(out, (long long)s.id);
    return RC_OK;
}

/* Is id in the store (not counting this entry's changes)? */
static int snap_stored(struct ns *n, uint64_t id, void **val, size_t *vlen)
{
    uint8_t k[SNAP_KEY_LEN];
    snap_key(n->group, id, k);
    return pst_get(n->e, NULL, k, sizeof(k), val, vlen);
}

static bool txn_deleted(const struct ns_gov_txn *g, uint64_t id)
{
    for (size_t i = 0; g && i < g->ndeleted; i++)
        if (g->deleted[i] == id)
            return true;
    return false;
}

int ns_cmd_snapshot_del(struct ns_txn *t, int argc, char **argv, size_t *argvlen,
                        struct ns_reply *out)
{
    if (argc != 2)
        return gov_err(out, RC_BADARG,
                       "wrong number of arguments for 'cfg.snapshot.del' command");
    uint64_t id = 0;
    if (!ns_parse_u64(argv[1], argvlen[1], &id))
        return gov_err(out, RC_BADARG, "value is not an integer or out of range");
    struct ns_gov_txn *g = NULL;
    int rc = snap_txn(t, &g);
    if (rc != RC_OK)
        return rc;
    ssize_t created = -1;
    for (size_t i = 0; i < g->ncreated; i++)
        if (g->created[i].id == id)
            created = (ssize_t)i;
    bool found = created >= 0;
    if (!found && !txn_deleted(g, id)) {
        void *val = NULL;
        size_t vlen = 0;
        rc = snap_stored(t->n, id, &val, &vlen);
        free(val);
        if (rc != RC_OK && rc != RC_NOTFOUND)
            return rc;
        found = rc == RC_OK;
        if (found && gov_reserve((void **)&g->deleted, &g->deleted_cap, g->ndeleted + 1,
                                 sizeof(*g->deleted)) != RC_OK)
            return RC_NOMEM;
        if (found)
            g->deleted[g->ndeleted++] = id;
    }
    if (!found) {
        ns_reply_set_int(out, 0);
        return RC_OK;
    }
    if (created >= 0)
        g->created[created] = g->created[--g->ncreated];
    uint8_t k[SNAP_KEY_LEN];
    snap_key(t->n->group, id, k);
    pst_batch_del(t->n->batch, k, sizeof(k));
    NS_ASSERT(g->snap_count > 0);
    g->snap_count--;
    t->changed = true;
    t->op = "snapshot.del";
    t->subject = argv[1];
    t->subject_len = argvlen[1];
    t->detail = NULL;
    t->detail_len = 0;
    ns_reply_set_int(out, 1);
    return RC_OK;
}

/* ------------------------------------------------------------------ lookups and reads */

int gov_snap_lookup(struct ns_txn *t, uint64_t id, uint64_t *rev, char **prefix,
                    size_t *plen)
{
    *prefix = NULL;
    if (txn_deleted(t->gov, id))
        return RC_NOTFOUND;
    void *val = NULL;
    size_t vlen = 0;
    int rc = snap_stored(t->n, id, &val, &vlen);
    if (rc != RC_OK)
        return rc;
    uint8_t k[SNAP_KEY_LEN];
    snap_key(t->n->group, id, k);
    struct ns_snapshot s;
    rc = snap_decode(k, sizeof(k), val, vlen, &s);
    if (rc == RC_OK && !(*prefix = malloc(s.prefix_len + 1)))
        rc = RC_NOMEM;
    if (rc == RC_OK) {
        if (s.prefix_len)
            memcpy(*prefix, s.prefix, s.prefix_len);
        (*prefix)[s.prefix_len] = '\0';
        *plen = s.prefix_len;
        *rev = s.revision;
    }
    free(val);
    return rc;
}

static bool covers(const struct ns_snapshot *s, const void *p, size_t plen)
{
    return s->prefix_len <= plen &&
           (s->prefix_len == 0 || memcmp(s->prefix, p, s->prefix_len) == 0);
}

int gov_snap_latest_covering(struct ns *n, const struct ns_gov_txn *g, const void *p,
                             size_t plen, uint64_t *id, uint64_t *rev)
{
    struct pst_iter *it = snap_iter(n);
    if (!it)
        return RC_NOMEM;
    int rc = RC_NOTFOUND;
    for (pst_iter_seek_last(it); pst_iter_valid(it); pst_iter_prev(it)) {
        size_t klen = 0, vlen = 0;
        const uint8_t *k = pst_iter_key(it, &klen);
        const uint8_t *v = pst_iter_value(it, &vlen);
        struct ns_snapshot s;
        if (snap_decode(k, klen, v, vlen, &s) != RC_OK) {
            rc = RC_CORRUPT;
            break;
        }
        if (covers(&s, p, plen) && !txn_deleted(g, s.id)) {
            *id = s.id;
            *rev = s.revision;
            rc = RC_OK;
            break;
        }
    }
    if (rc == RC_NOTFOUND && pst_iter_status(it) != RC_OK)
        rc = pst_iter_status(it);
    pst_iter_free(it);
    return rc;
}

int ns_snapshots(struct ns *n, const void *prefix, size_t plen, ns_snapshot_fn fn, void *ud)
{
    NS_ASSERT(fn != NULL);
    struct pst_iter *it = snap_iter(n);
    if (!it)
        return RC_NOMEM;
    int rc = RC_OK;
    for (; pst_iter_valid(it); pst_iter_next(it)) {
        size_t klen = 0, vlen = 0;
        const uint8_t *k = pst_iter_key(it, &klen);
        const uint8_t *v = pst_iter_value(it, &vlen);
        struct ns_snapshot s;
        rc = snap_decode(k, klen, v, vlen, &s);
        if (rc != RC_OK)
            break;
        bool under = s.prefix_len >= plen && (plen == 0 || memcmp(s.prefix, prefix, plen) == 0);
        if (under && !fn(ud, &s))
            break;
    }
    if (rc == RC_OK)
        rc = pst_iter_status(it);
    pst_iter_free(it);
    return rc;
}
