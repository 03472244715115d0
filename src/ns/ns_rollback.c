/*
 * ns_rollback.c - CFG.ROLLBACK prefix [TO id|REV r] [DRYRUN] [REASON text]: restore every
 * key under prefix to its state at a target revision, as ONE entry (one revision, one
 * storage batch, one audit record).
 *
 * Which keys: a key's state can differ from the target only if it changed after it, and
 * every change writes a history version ('V', ns_history.c). So the candidates are the
 * keys under prefix whose newest version has a revision > target (one ordered scan of the
 * prefix's 'V' range), plus keys this entry itself changed already (MULTI/EXEC). For each,
 * the target state is ns_get_at(target): changed keys get their old value back ("restore"),
 * keys created since are deleted ("delete"), keys deleted since come back ("recreate").
 *
 * Invariants:
 *   - everything is decided before anything is staged: a refusal (compacted target, a
 *     restored value today's schema rejects, too many keys) stages nothing;
 *   - DRYRUN goes through the log like the real thing and stages nothing: its answer is
 *     exactly what the rollback would do at that point of the log;
 *   - changes are listed and applied in key byte order; deterministic (no clock, no rand).
 */
#include <string.h>

#include "../rc.h"
#include "ns_gov.h"

enum rb_action { RB_RESTORE = 1, RB_DELETE, RB_RECREATE };

struct rb_change {
    char *key;
    size_t klen;
    enum rb_action action;
    uint64_t from_version, from_rev, to_rev;
    char *value; /* the target value (restore/recreate), malloc'd */
    size_t vlen;
};

struct rb {
    struct ns_txn *t;
    const char *prefix;
    size_t plen;
    uint64_t target, snap_id;
    bool dryrun;
    const char *reason;
    size_t reason_len;
    /* candidates (keys), then the decided changes */
    char **cand;
    size_t *cand_len;
    size_t ncand, cand_cap, candlen_cap;
    struct rb_change *chg;
    size_t nchg, chg_cap;
    uint64_t max;
};

static void rb_free(struct rb *r)
{
    for (size_t i = 0; i < r->ncand; i++)
        free(r->cand[i]);
    free(r->cand);
    free(r->cand_len);
    for (size_t i = 0; i < r->nchg; i++) {
        free(r->chg[i].key);
        free(r->chg[i].value);
    }
    free(r->chg);
}

/* ------------------------------------------------------------------ parsing */

static int parse_args(struct rb *r, int argc, char **argv, size_t *argvlen, bool *has_to,
                      bool *has_rev, struct ns_reply *out)
{
    *has_to = *has_rev = false;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        size_t alen = argvlen[i];
        bool to = gov_arg_is(a, alen, "TO"), rev = gov_arg_is(a, alen, "REV");
        if ((to || rev) && i + 1 < argc && !*has_to && !*has_rev) {
            uint64_t v = 0;
            if (!ns_parse_u64(argv[i + 1], argvlen[i + 1], &v))
                return gov_err(out, RC_BADARG, "value is not an integer or out of range");
            *(to ? &r->snap_id : &r->target) = v;
            *(to ? has_to : has_rev) = true;
            i++;
        } else if (gov_arg_is(a, alen, "DRYRUN") && !r->dryrun) {
            r->dryrun = true;
        } else if (gov_arg_is(a, alen, "REASON") && i + 1 < argc && !r->reason) {
            if (argvlen[i + 1] > NS_ROLLBACK_REASON_MAX)
                return gov_err(out, RC_TOOBIG, "reason longer than %u bytes",
                               NS_ROLLBACK_REASON_MAX);
            r->reason = argv[i + 1];
            r->reason_len = argvlen[i + 1];
            i++;
        } else {
            return gov_err(out, RC_BADARG, "syntax error");
        }
    }
    return RC_OK;
}

/* Decide the target revision from TO / REV / the latest covering snapshot. */
static int resolve_target(struct rb *r, bool has_to, bool has_rev, struct ns_reply *out)
{
    struct ns *n = r->t->n;
    char pbuf[204], sbuf[204];
    gov_printable(r->prefix, r->plen, 200, pbuf, sizeof(pbuf));
    int rc = RC_OK;
    if (has_to) {
        char *sp = NULL;
        size_t splen = 0;
        rc = gov_snap_lookup(r->t, r->snap_id, &r->target, &sp, &splen);
        if (rc == RC_NOTFOUND)
            return gov_err(out, RC_BADARG, "no snapshot %llu", (unsigned long long)r->snap_id);
        if (rc != RC_OK)
            return rc;
        bool cover = splen <= r->plen && (splen == 0 || memcmp(sp, r->prefix, splen) == 0);
        gov_printable(sp, splen, 200, sbuf, sizeof(sbuf));
        free(sp);
        if (!cover)
            return gov_err(out, RC_BADARG,
                           "snapshot %llu pins prefix '%s', which does not cover '%s'",
                           (unsigned long long)r->snap_id, sbuf, pbuf);
    } else if (!has_rev) {
        rc = gov_snap_latest_covering(n, r->t->gov, r->prefix, r->plen, &r->snap_id,
                                      &r->target);
        if (rc == RC_NOTFOUND)
            return gov_err(out, RC_BADARG,
                           "no snapshot covers prefix '%s'; give TO id or REV revision", pbuf);
        if (rc != RC_OK)
            return rc;
    }
    if (r->target > n->revision)
        return gov_err(out, RC_BADARG,
                       "revision %llu is in the future; current revision is %llu",
                       (unsigned long long)r->target, (unsigned long long)n->revision);
    if (r->target < n->compact_rev)
        return gov_err(out, RC_COMPACTED, "oldest=%llu", (unsigned long long)n->compact_rev);
    return RC_OK;
}

/* ------------------------------------------------------------------ candidates */

static int add_cand(struct rb *r, const void *key, size_t klen)
{
    if (r->ncand >= r->max)
        return RC_TOOBIG;
    if (gov_reserve((void **)&r->cand, &r->cand_cap, r->ncand + 1, sizeof(*r->cand)) != RC_OK ||
        gov_reserve((void **)&r->cand_len, &r->candlen_cap, r->ncand + 1,
                    sizeof(*r->cand_len)) != RC_OK)
        return RC_NOMEM;
    char *k = malloc(klen ? klen : 1);
    if (!k)
        return RC_NOMEM;
    if (klen)
        memcpy(k, key, klen);
    r->cand[r->ncand] = k;
    r->cand_len[r->ncand] = klen;
    r->ncand++;
    return RC_OK;
}

/* 'g' group 'V' esc(prefix) and the exclusive upper bound of keys beginning with it. */
static int hist_bounds(const struct ns *n, const char *p, size_t plen, uint8_t **lo,
                       size_t *lolen, uint8_t **hi, size_t *hilen)
{
    *lo = malloc(NS_GROUP_PREFIX_LEN + 2 * plen + 1);
    *hi = malloc(NS_GROUP_PREFIX_LEN + 2 * plen + 1);
    if (!*lo || !*hi)
        return RC_NOMEM;
    ns_key_group_letter(*lo, n->group, NS_LETTER_HISTORY);
    size_t o = NS_GROUP_PREFIX_LEN;
    for (size_t i = 0; i < plen; i++) {
        (*lo)[o++] = (uint8_t)p[i];
        if (p[i] == 0)
            (*lo)[o++] = 0xff;
    }
    *lolen = o;
    memcpy(*hi, *lo, o);
    size_t h = o;
    while (h > NS_GROUP_PREFIX_LEN && (*hi)[h - 1] == 0xff)
        h--;
    if (h == NS_GROUP_PREFIX_LEN) { /* empty prefix: the whole 'V' range */
        (*hi)[NS_GROUP_PREFIX_LEN - 1] = NS_LETTER_HISTORY + 1;
    } else {
        (*hi)[h - 1]++;
    }
    *hilen = h;
    return RC_OK;
}

/* Decode a 'V' storage key: the user key into buf (cap bytes), *tag, *rev (versions).
 * RC_CORRUPT when the key is malformed or too long; RC_NOTFOUND for the group record. */
static int hist_key_decode(const uint8_t *k, size_t klen, char *buf, size_t cap,
                           size_t *ulen, uint8_t *tag, uint64_t *rev)
{
    if (klen == NS_GROUP_PREFIX_LEN)
        return RC_NOTFOUND;
    size_t o = 0;
    for (size_t i = NS_GROUP_PREFIX_LEN; i < klen; i++) {
        if (o >= cap)
            return RC_CORRUPT;
        if (k[i] != 0x00) {
            buf[o++] = (char)k[i];
            continue;
        }
        if (i + 1 >= klen)
            return RC_CORRUPT;
        if (k[i + 1] == 0xff) {
            buf[o++] = 0;
            i++;
            continue;
        }
        *tag = k[i + 1];
        *ulen = o;
        size_t rest = klen - i - 2;
        if (*tag == NS_HTAG_VER && rest == 8) {
            *rev = ns_get_u64(k + i + 2);
            return RC_OK;
        }
        return *tag == NS_HTAG_META && rest == 0 ? RC_OK : RC_CORRUPT;
    }
    return RC_CORRUPT;
}

/* Keys under the prefix whose newest version is after the target. */
static int scan_history(struct rb *r)
{
    struct ns *n = r->t->n;
    uint8_t *lo = NULL, *hi = NULL;
    size_t lolen = 0, hilen = 0;
    int rc = hist_bounds(n, r->prefix, r->plen, &lo, &lolen, &hi, &hilen);
    struct pst_iter *it = rc == RC_OK ? pst_iter_new(n->e, NULL, lo, lolen, hi, hilen) : NULL;
    char *cur = malloc(n->lim.key_len_max + 1), *buf = malloc(n->lim.key_len_max + 1);
    if (rc == RC_OK && (!it || !cur || !buf))
        rc = RC_NOMEM;
    size_t curlen = 0;
    uint64_t last = 0;
    bool have = false;
    for (; rc == RC_OK && pst_iter_valid(it); pst_iter_next(it)) {
        size_t klen = 0, ulen = 0;
        const uint8_t *k = pst_iter_key(it, &klen);
        uint8_t tag = 0;
        uint64_t rev = 0;
        rc = hist_key_decode(k, klen, buf, n->lim.key_len_max + 1, &ulen, &tag, &rev);
        if (rc == RC_NOTFOUND) { /* the group record (empty prefix) */
            rc = RC_OK;
            continue;
        }
        if (rc != RC_OK || ulen == 0 || ulen > n->lim.key_len_max) {
            rc = RC_CORRUPT;
            break;
        }
        if (!have || ulen != curlen || memcmp(buf, cur, ulen) != 0) {
            if (have && last > r->target)
                rc = add_cand(r, cur, curlen);
            memcpy(cur, buf, ulen);
            curlen = ulen;
            last = 0;
            have = true;
        }
        if (tag == NS_HTAG_VER && rev > last)
            last = rev;
    }
    if (rc == RC_OK && it)
        rc = pst_iter_status(it);
    if (rc == RC_OK && have && last > r->target)
        rc = add_cand(r, cur, curlen);
    pst_iter_free(it);
    free(lo);
    free(hi);
    free(cur);
    free(buf);
    return rc;
}

static int cmp_cand(const void *a, const void *b, void *ud)
{
    const struct rb *r = ud;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    size_t la = r->cand_len[i], lb = r->cand_len[j];
    size_t m = la < lb ? la : lb;
    int c = m ? memcmp(r->cand[i], r->cand[j], m) : 0;
    if (c)
        return c;
    return la < lb ? -1 : la > lb;
}

/* ------------------------------------------------------------------ decide */

/* Record a change; takes tgt's value (tgt->value is NULL afterwards). */
static int add_change(struct rb *r, const char *key, size_t klen, enum rb_action a,
                      const struct ns_keyrec *cur, struct ns_kv *tgt)
{
    if (gov_reserve((void **)&r->chg, &r->chg_cap, r->nchg + 1, sizeof(*r->chg)) != RC_OK)
        return RC_NOMEM;
    struct rb_change *c = &r->chg[r->nchg];
    memset(c, 0, sizeof(*c));
    c->key = malloc(klen ? klen : 1);
    if (!c->key)
        return RC_NOMEM;
    memcpy(c->key, key, klen);
    c->klen = klen;
    c->action = a;
    c->from_version = cur ? cur->version : 0;
    c->from_rev = cur ? cur->mod_rev : 0;
    c->to_rev = tgt ? tgt->mod_rev : 0;
    if (tgt) {
        c->value = tgt->value;
        c->vlen = tgt->vlen;
        tgt->value = NULL;
    }
    r->nchg++;
    return RC_OK;
}

/* The change of one candidate key, if any. RC_OK, RC_COMPACTED (*oldest), store errors. */
static int decide_one(struct rb *r, const char *key, size_t klen, uint64_t *oldest)
{
    struct ns_kv tgt;
    int rc = ns_get_at(r->t->n, key, klen, r->target, &tgt, oldest);
    if (rc != RC_OK && rc != RC_NOTFOUND)
        return rc;
    bool was = rc == RC_OK;
    const struct ns_keyrec *cur = NULL;
    rc = ns_txn_get(r->t, key, klen, &cur);
    bool is = rc == RC_OK;
    if (rc == RC_OK || rc == RC_NOTFOUND) {
        rc = RC_OK;
        if (is && !was)
            rc = add_change(r, key, klen, RB_DELETE, cur, NULL);
        else if (!is && was)
            rc = add_change(r, key, klen, RB_RECREATE, NULL, &tgt);
        else if (is && was && (cur->vlen != tgt.vlen ||
                               (tgt.vlen && memcmp(cur->value, tgt.value, tgt.vlen) != 0)))
            rc = add_change(r, key, klen, RB_RESTORE, cur, &tgt);
    }
    ns_kv_clear(&tgt);
    return rc;
}

static int decide(struct rb *r, struct ns_reply *out)
{
    /* keys this entry changed already are candidates too */
    for (size_t i = 0; i < r->t->nkeys; i++) {
        const struct ns_txkey *k = &r->t->keys[i];
        if (k->staged && k->klen >= r->plen && memcmp(k->key, r->prefix, r->plen) == 0) {
            int rc = add_cand(r, k->key, k->klen);
            if (rc != RC_OK)
                return rc;
        }
    }
    size_t *order = malloc((r->ncand ? r->ncand : 1) * sizeof(*order));
    if (!order)
        return RC_NOMEM;
    for (size_t i = 0; i < r->ncand; i++)
        order[i] = i;
    qsort_r(order, r->ncand, sizeof(*order), cmp_cand, r);
    int rc = RC_OK;
    uint64_t oldest = 0;
    for (size_t i = 0; rc == RC_OK && i < r->ncand; i++) {
        if (i > 0 && cmp_cand(&order[i - 1], &order[i], r) == 0)
            continue; /* the same key from the history scan and the entry */
        rc = decide_one(r, r->cand[order[i]], r->cand_len[order[i]], &oldest);
    }
    free(order);
    if (rc == RC_COMPACTED)
        return gov_err(out, RC_COMPACTED, "oldest=%llu", (unsigned long long)oldest);
    return rc;
}

/* Today's schemas must accept every value the rollback writes. */
static int check_schemas(struct rb *r, struct ns_reply *out)
{
    char msg[900] = "";
    size_t mlen = 0;
    uint64_t failed = 0;
    for (size_t i = 0; i < r->nchg; i++) {
        const struct rb_change *c = &r->chg[i];
        if (c->action == RB_DELETE)
            continue;
        char where[256], why[256], kbuf[104], wbuf[104];
        const char *pat = NULL;
        size_t plen = 0;
        int rc = gov_schema_verdict(r->t, c->key, c->klen, c->value, c->vlen, where,
                                    sizeof(where), why, sizeof(why), &pat, &plen);
        if (rc == RC_NOMEM)
            return rc;
        if (rc != RC_SCHEMA || failed++ >= NS_GOV_REPORT_KEYS || mlen >= sizeof(msg) - 1)
            continue;
        int w = snprintf(msg + mlen, sizeof(msg) - mlen, "%s%s (%s: %s)", failed > 1 ? "; " : "",
                         gov_printable(c->key, c->klen, 100, kbuf, sizeof(kbuf)),
                         gov_printable(where, strlen(where), 100, wbuf, sizeof(wbuf)), why);
        mlen = w > 0 ? mlen + (size_t)w : mlen;
        if (mlen >= sizeof(msg))
            mlen = sizeof(msg) - 1;
    }
    if (failed == 0)
        return RC_OK;
    return gov_err(out, RC_SCHEMA, "rollback refused: %llu restored key%s violate%s today's "
                   "schema: %s%s", (unsigned long long)failed, failed == 1 ? "" : "s",
                   failed == 1 ? "s" : "", msg, failed > NS_GOV_REPORT_KEYS ? "; ..." : "");
}

/* ------------------------------------------------------------------ stage and reply */

static int stage(struct rb *r)
{
    int rc = RC_OK;
    for (size_t i = 0; rc == RC_OK && i < r->nchg; i++) {
        const struct rb_change *c = &r->chg[i];
        if (c->action == RB_DELETE)
            rc = ns_txn_del(r->t, c->key, c->klen, NULL);
        else
            rc = ns_txn_put(r->t, c->key, c->klen, c->value, c->vlen, NULL);
    }
    if (rc != RC_OK)
        return rc;
    char rbuf[NS_ROLLBACK_REASON_MAX + 4];
    const char *reason = gov_printable(r->reason ? r->reason : "", r->reason_len,
                                       NS_ROLLBACK_REASON_MAX, rbuf, sizeof(rbuf));
    char *detail = r->snap_id
                       ? gov_own_text(r->t, "to=%llu snapshot=%llu reason=%s",
                                      (unsigned long long)r->target,
                                      (unsigned long long)r->snap_id, reason)
                       : gov_own_text(r->t, "to=%llu reason=%s",
                                      (unsigned long long)r->target, reason);
    if (!detail)
        return RC_NOMEM;
    r->t->changed = true; /* one revision and one audit record, even with nothing to do */
    r->t->op = "rollback";
    r->t->subject = r->prefix;
    r->t->subject_len = r->plen;
    r->t->detail = detail;
    r->t->detail_len = strlen(detail);
    return RC_OK;
}

static int put_pair(struct ns_reply *m, size_t i, const char *name, const void *v, size_t vlen,
                    long long iv, bool is_int)
{
    int rc = ns_reply_set_bulk(&m->elem[2 * i], name, strlen(name));
    if (rc == RC_OK && is_int)
        ns_reply_set_int(&m->elem[2 * i + 1], iv);
    else if (rc == RC_OK)
        rc = ns_reply_set_bulk(&m->elem[2 * i + 1], v, vlen);
    return rc;
}

static int reply_changes(const struct rb *r, struct ns_reply *out)
{
    static const char *const names[] = {"", "restore", "delete", "recreate"};
    int rc = ns_reply_set_array(out, r->nchg);
    for (size_t i = 0; rc == RC_OK && i < r->nchg; i++) {
        const struct rb_change *c = &r->chg[i];
        struct ns_reply *m = &out->elem[i];
        const char *a = names[c->action];
        rc = ns_reply_set_map(m, 5);
        if (rc == RC_OK)
            rc = put_pair(m, 0, "key", c->key, c->klen, 0, false);
        if (rc == RC_OK)
            rc = put_pair(m, 1, "action", a, strlen(a), 0, false);
        if (rc == RC_OK)
            rc = put_pair(m, 2, "from_version", NULL, 0, (long long)c->from_version, true);
        if (rc == RC_OK)
            rc = put_pair(m, 3, "from_revision", NULL, 0, (long long)c->from_rev, true);
        if (rc == RC_OK)
            rc = put_pair(m, 4, "to_revision", NULL, 0, (long long)c->to_rev, true);
    }
    if (rc != RC_OK)
        ns_reply_clear(out);
    return rc;
}

int ns_cmd_rollback(struct ns_txn *t, int argc, char **argv, size_t *argvlen,
                    struct ns_reply *out)
{
    if (argc < 2)
        return gov_err(out, RC_BADARG, "wrong number of arguments for 'cfg.rollback' command");
    if (argvlen[1] > t->n->lim.key_len_max)
        return gov_err(out, RC_TOOBIG, "prefix longer than the key length limit");
    struct rb r = {.t = t, .prefix = argv[1], .plen = argvlen[1],
                   .max = gov_rollback_keys_max(t->n)};
    bool has_to = false, has_rev = false;
    int rc = parse_args(&r, argc, argv, argvlen, &has_to, &has_rev, out);
    if (rc == RC_OK)
        rc = resolve_target(&r, has_to, has_rev, out);
    if (rc == RC_OK)
        rc = scan_history(&r);
    if (rc == RC_OK)
        rc = decide(&r, out);
    if (rc == RC_TOOBIG)
        rc = gov_err(out, RC_TOOBIG,
                     "more than %llu keys under the prefix changed since revision %llu "
                     "(rollback-max-keys)",
                     (unsigned long long)r.max, (unsigned long long)r.target);
    if (rc == RC_OK)
        rc = check_schemas(&r, out);
    if (rc == RC_OK && !r.dryrun)
        rc = stage(&r);
    if (rc == RC_OK)
        rc = reply_changes(&r, out);
    rb_free(&r);
    return rc;
}
