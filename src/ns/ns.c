/*
 * ns.c - opening a group's state machine, its applied state, and the reads (point reads
 * and ordered, prefix-bounded, paged scans).
 *
 * The applied state (index, term, revision, key count) is cached in struct ns and always
 * equals the group's 'A' record: it is changed only by ns_commit_batch after the batch
 * that carries the new 'A' record was written, so a failed write leaves both as they were.
 * Reads go to the engine's latest state; everything read is validated by ns_record.c.
 * (History reads are in ns_history.c.)
 * Deterministic: no clocks, no randomness, no I/O besides the pst engine.
 */
#include <string.h>

#include "../rc.h"
#include "ns_internal.h"

void ns_limits_default(struct ns_limits *l)
{
    l->key_len_max = 4096;
    l->value_len_max = 1024 * 1024;
    l->history_max_versions = 100;
    l->audit_max_records = 1000000;
    l->snapshots_max = 1000;         /* governance (issue 5) */
    l->rollback_keys_max = 100000;
}

static int read_applied(struct ns *n, struct ns_applied *a)
{
    uint8_t key[NS_GROUP_PREFIX_LEN];
    ns_key_group_letter(key, n->group, NS_LETTER_APPLIED);
    void *val = NULL;
    size_t vlen = 0;
    int rc = pst_get(n->e, NULL, key, sizeof(key), &val, &vlen);
    if (rc == RC_NOTFOUND) {
        memset(a, 0, sizeof(*a)); /* a fresh group */
        return RC_OK;
    }
    if (rc != RC_OK)
        return rc;
    rc = ns_applied_decode(val, vlen, a);
    free(val);
    return rc;
}

static void set_applied(struct ns *n, const struct ns_applied *a)
{
    n->applied_index = a->index;
    n->applied_term = a->term;
    n->revision = a->revision;
    n->key_count = a->key_count;
}

int ns_open(struct pst_engine *e, uint32_t group, const struct ns_limits *lim, struct ns **out)
{
    NS_ASSERT(e != NULL);
    NS_ASSERT(out != NULL);
    *out = NULL;
    struct ns *n = calloc(1, sizeof(*n));
    if (!n)
        return RC_NOMEM;
    n->e = e;
    n->group = group;
    if (lim)
        n->lim = *lim;
    else
        ns_limits_default(&n->lim);
    n->batch = pst_batch_new();
    if (!n->batch) {
        free(n);
        return RC_NOMEM;
    }
    struct ns_applied a;
    int rc = read_applied(n, &a);
    if (rc != RC_OK) {
        ns_close(n);
        return rc;
    }
    set_applied(n, &a);
    rc = ns_hist_load_group(n);
    if (rc == RC_OK)
        rc = ns_audit_load(n); /* audit chain state (issue 5) */
    if (rc == RC_OK)
        rc = ns_gov_load(n); /* schemas and snapshot pins (issue 5) */
    if (rc != RC_OK) {
        ns_close(n);
        return rc;
    }
    *out = n;
    return RC_OK;
}

void ns_close(struct ns *n)
{
    if (!n)
        return;
    pst_batch_free(n->batch);
    free(n->audit_last);
    ns_gov_close(n);
    free(n);
}

uint32_t ns_group(const struct ns *n) { return n->group; }
uint64_t ns_applied_index(const struct ns *n) { return n->applied_index; }
uint64_t ns_applied_term(const struct ns *n) { return n->applied_term; }
uint64_t ns_revision(const struct ns *n) { return n->revision; }
uint64_t ns_key_count(const struct ns *n) { return n->key_count; }

int ns_reload(struct ns *n)
{
    struct ns_applied a;
    int rc = read_applied(n, &a);
    if (rc == RC_OK)
        set_applied(n, &a);
    if (rc == RC_OK)
        rc = ns_hist_load_group(n);
    if (rc == RC_OK)
        rc = ns_audit_load(n);
    if (rc == RC_OK)
        rc = ns_gov_load(n);
    return rc;
}

int ns_commit_batch(struct ns *n, const struct ns_applied *a)
{
    NS_ASSERT(a->index >= n->applied_index);
    NS_ASSERT(a->revision >= n->revision);
    uint8_t key[NS_GROUP_PREFIX_LEN];
    uint8_t rec[NS_APPLIED_LEN];
    ns_key_group_letter(key, n->group, NS_LETTER_APPLIED);
    ns_applied_encode(a, rec);
    pst_batch_put(n->batch, key, sizeof(key), rec, sizeof(rec));
    int rc = pst_batch_oom(n->batch) ? RC_NOMEM : pst_write(n->e, n->batch, false);
    pst_batch_clear(n->batch);
    if (rc == RC_OK)
        set_applied(n, a);
    return rc;
}

int ns_reset_applied(struct ns *n, uint64_t index, uint64_t term)
{
    if (index < n->applied_index || term < n->applied_term || (index > 0 && term == 0))
        return RC_BADARG;
    NS_ASSERT(pst_batch_count(n->batch) == 0);
    struct ns_applied a = {index, term, n->revision, n->key_count};
    return ns_commit_batch(n, &a);
}

int ns_load_key(struct ns *n, const void *key, size_t klen, void **raw, struct ns_keyrec *rec)
{
    size_t sklen = 0;
    uint8_t *sk = ns_key_data(n->group, key, klen, &sklen);
    if (!sk)
        return RC_NOMEM;
    size_t vlen = 0;
    *raw = NULL;
    int rc = pst_get(n->e, NULL, sk, sklen, raw, &vlen);
    free(sk);
    if (rc != RC_OK)
        return rc;
    rc = ns_keyrec_decode(*raw, vlen, rec);
    if (rc == RC_OK && rec->mod_rev > n->revision)
        rc = RC_CORRUPT; /* a change from the future: the record or 'A' is damaged */
    if (rc != RC_OK) {
        free(*raw);
        *raw = NULL;
    }
    return rc;
}

static char *dup_bytes(const void *p, size_t len)
{
    char *s = malloc(len + 1);
    if (!s)
        return NULL;
    if (len)
        memcpy(s, p, len);
    s[len] = '\0';
    return s;
}

void ns_kv_clear(struct ns_kv *kv)
{
    if (!kv)
        return;
    free(kv->key);
    free(kv->value);
    memset(kv, 0, sizeof(*kv));
}

static void kv_meta(struct ns_kv *kv, const struct ns_keyrec *rec)
{
    kv->create_rev = rec->create_rev;
    kv->mod_rev = rec->mod_rev;
    kv->version = rec->version;
    kv->mtime_ms = rec->mtime_ms;
}

int ns_get(struct ns *n, const void *key, size_t klen, struct ns_kv *out)
{
    NS_ASSERT(out != NULL);
    memset(out, 0, sizeof(*out));
    void *raw = NULL;
    struct ns_keyrec rec;
    int rc = ns_load_key(n, key, klen, &raw, &rec);
    if (rc != RC_OK)
        return rc;
    out->key = dup_bytes(key, klen);
    out->value = dup_bytes(rec.value, rec.vlen);
    free(raw);
    if (!out->key || !out->value) {
        ns_kv_clear(out);
        return RC_NOMEM;
    }
    out->klen = klen;
    out->vlen = rec.vlen;
    kv_meta(out, &rec);
    return RC_OK;
}

int ns_exists(struct ns *n, const void *key, size_t klen, bool *exists)
{
    void *raw = NULL;
    struct ns_keyrec rec;
    int rc = ns_load_key(n, key, klen, &raw, &rec);
    free(raw);
    *exists = rc == RC_OK;
    return rc == RC_NOTFOUND ? RC_OK : rc;
}

/* ------------------------------------------------------------------ scan */

/* memcmp order, a proper prefix first: the engine's key order. */
static int cmp_bytes(const void *a, size_t alen, const void *b, size_t blen)
{
    size_t m = alen < blen ? alen : blen;
    int c = m ? memcmp(a, b, m) : 0;
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

/* Upper bound (exclusive) of the group's 'K' keys that begin with prefix: the prefix with
 * trailing 0xff bytes dropped and its last byte incremented, or the first key after the
 * 'K' range ('L') when no such successor exists. Malloc'd. */
static uint8_t *scan_upper(uint32_t group, const uint8_t *prefix, size_t plen, size_t *len)
{
    while (plen > 0 && prefix[plen - 1] == 0xff)
        plen--;
    uint8_t *hi = ns_key_data(group, prefix, plen, len);
    if (!hi)
        return NULL;
    if (plen > 0)
        hi[*len - 1]++;
    else
        hi[NS_GROUP_PREFIX_LEN - 1] = NS_LETTER_KEY + 1;
    return hi;
}

struct scan_buf {
    char *key, *val;
    size_t key_cap, val_cap;
};

static int buf_fill(char **buf, size_t *cap, const void *p, size_t len)
{
    if (len + 1 > *cap) {
        char *b = realloc(*buf, len + 1);
        if (!b)
            return RC_NOMEM;
        *buf = b;
        *cap = len + 1;
    }
    if (len)
        memcpy(*buf, p, len);
    (*buf)[len] = '\0';
    return RC_OK;
}

/* Decode the iterator's current entry into kv (borrowing sb's buffers). */
static int scan_entry(struct pst_iter *it, bool with_values, struct scan_buf *sb,
                      struct ns_kv *kv)
{
    size_t klen = 0, vlen = 0;
    const uint8_t *k = pst_iter_key(it, &klen);
    const void *v = pst_iter_value(it, &vlen);
    NS_ASSERT(klen >= NS_GROUP_PREFIX_LEN); /* the iterator's bounds guarantee it */
    struct ns_keyrec rec;
    int rc = ns_keyrec_decode(v, vlen, &rec);
    if (rc != RC_OK)
        return rc;
    memset(kv, 0, sizeof(*kv));
    rc = buf_fill(&sb->key, &sb->key_cap, k + NS_GROUP_PREFIX_LEN, klen - NS_GROUP_PREFIX_LEN);
    if (rc == RC_OK && with_values)
        rc = buf_fill(&sb->val, &sb->val_cap, rec.value, rec.vlen);
    if (rc != RC_OK)
        return rc;
    kv->key = sb->key;
    kv->klen = klen - NS_GROUP_PREFIX_LEN;
    kv->value = with_values ? sb->val : NULL;
    kv->vlen = rec.vlen;
    kv_meta(kv, &rec);
    return RC_OK;
}

/* The user key of the iterator's current entry, malloc'd, for paging. */
static int scan_next_key(struct pst_iter *it, char **next_out, size_t *next_len)
{
    size_t klen = 0;
    const uint8_t *k = pst_iter_key(it, &klen);
    NS_ASSERT(klen >= NS_GROUP_PREFIX_LEN);
    *next_out = dup_bytes(k + NS_GROUP_PREFIX_LEN, klen - NS_GROUP_PREFIX_LEN);
    if (!*next_out)
        return RC_NOMEM;
    if (next_len)
        *next_len = klen - NS_GROUP_PREFIX_LEN;
    return RC_OK;
}

static int scan_loop(struct pst_iter *it, size_t limit, bool with_values, ns_visit_fn fn,
                     void *ud, char **next_out, size_t *next_len)
{
    struct scan_buf sb = {0};
    size_t visited = 0;
    int rc = RC_OK;
    bool stopped = false;
    while (pst_iter_valid(it)) {
        if (stopped || (limit && visited == limit)) {
            if (next_out)
                rc = scan_next_key(it, next_out, next_len);
            break;
        }
        struct ns_kv kv;
        rc = scan_entry(it, with_values, &sb, &kv);
        if (rc != RC_OK)
            break;
        visited++;
        stopped = !fn(ud, &kv);
        pst_iter_next(it);
    }
    if (rc == RC_OK)
        rc = pst_iter_status(it);
    free(sb.key);
    free(sb.val);
    return rc;
}

int ns_scan(struct ns *n, const void *prefix, size_t plen, const void *start, size_t slen,
            size_t limit, bool with_values, ns_visit_fn fn, void *ud, char **next_out,
            size_t *next_len)
{
    NS_ASSERT(fn != NULL);
    NS_ASSERT(plen == 0 || prefix != NULL);
    if (next_out)
        *next_out = NULL;
    if (next_len)
        *next_len = 0;
    if (!prefix)
        plen = 0;
    /* Start at the larger of prefix and start: keys below prefix cannot match it. */
    const void *from = prefix;
    size_t flen = plen;
    if (start && cmp_bytes(start, slen, prefix, plen) > 0) {
        from = start;
        flen = slen;
    }
    size_t lolen = 0, hilen = 0;
    uint8_t *lo = ns_key_data(n->group, from, flen, &lolen);
    uint8_t *hi = scan_upper(n->group, prefix, plen, &hilen);
    int rc = RC_NOMEM;
    if (lo && hi && cmp_bytes(lo, lolen, hi, hilen) >= 0) {
        rc = RC_OK; /* start lies past every key with the prefix */
    } else if (lo && hi) {
        struct pst_iter *it = pst_iter_new(n->e, NULL, lo, lolen, hi, hilen);
        if (it) {
            rc = scan_loop(it, limit, with_values, fn, ud, next_out, next_len);
            pst_iter_free(it);
        }
    }
    free(lo);
    free(hi);
    if (rc != RC_OK && next_out) {
        free(*next_out);
        *next_out = NULL;
    }
    return rc;
}
