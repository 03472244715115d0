/*
 * ns_schema_store.c - schemas attached to key patterns: the 'C' records, their compiled
 * in-memory copy, the check of every write against the most specific schema, the
 * CFG.SCHEMA.SET / CFG.SCHEMA.DEL commands and their reads; plus the governance glue that
 * ns.c and ns_apply.c call (load, close, post-commit).
 *
 * Record ('g' group 'C' + pattern bytes), format 1:
 *   offset size field
 *   0      1    format  = 1 (the schema is JSON text)
 *   1      rest schema  the schema text exactly as set (draft 7, docs/schema.md)
 *
 * Patterns (docs/governance.md "Patterns"): '*' any run of bytes without '/', '**' any run,
 * '?' one byte other than '/', '[...]' a byte set ('!' or '^' negates; never '/'), '\x' the
 * byte x. A pattern ending in '/' is a prefix pattern: it matches every key that begins with
 * a match of it. Matching simulates the pattern as an NFA over the key, O(key * active
 * states), no backtracking.
 *
 * Invariants:
 *   - n->gov->schemas holds exactly the 'C' records, compiled (ns_gov.h); it changes only in
 *     ns_gov_commit, after the batch holding the record changes was written;
 *   - a write is checked against the most specific matching schema as the entry sees it
 *     (its own staged schema changes first): same store + same entry = same verdict.
 */
#include <stdarg.h>
#include <string.h>
#include <strings.h>

#include "../rc.h"
#include "ns_gov.h"

#define SCHEMA_REC_FORMAT 1u
#define WHERE_CAP 256
#define WHY_CAP 256

/* ------------------------------------------------------------------ small helpers */

int gov_reserve(void **arr, size_t *cap, size_t need, size_t sz)
{
    if (need <= *cap)
        return RC_OK;
    size_t c = *cap ? *cap : 8;
    while (c < need)
        c *= 2;
    void *p = realloc(*arr, c * sz);
    if (!p)
        return RC_NOMEM;
    *arr = p;
    *cap = c;
    return RC_OK;
}

int gov_err(struct ns_reply *out, int rc, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return ns_reply_set_error(out, rc, "%s", msg) == RC_OK ? NS_REPLIED : RC_NOMEM;
}

bool gov_arg_is(const char *a, size_t alen, const char *word)
{
    size_t wlen = strlen(word);
    return alen == wlen && strncasecmp(a, word, wlen) == 0;
}

char *gov_own_text(struct ns_txn *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    NS_ASSERT(len >= 0);
    char *s = malloc((size_t)len + 1);
    if (!s)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)len + 1, fmt, ap);
    va_end(ap);
    free(t->detail_buf);
    t->detail_buf = s;
    return s;
}

const char *gov_printable(const void *p, size_t len, size_t max, char *buf, size_t cap)
{
    NS_ASSERT(cap >= max + 4);
    const unsigned char *s = p;
    size_t n = len < max ? len : max;
    for (size_t i = 0; i < n; i++)
        buf[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? (char)s[i] : '?';
    if (len > max) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

uint64_t gov_snapshots_max(const struct ns *n)
{
    return n->lim.snapshots_max ? n->lim.snapshots_max : 1000;
}

uint64_t gov_rollback_keys_max(const struct ns *n)
{
    return n->lim.rollback_keys_max ? n->lim.rollback_keys_max : 100000;
}

/* ------------------------------------------------------------------ patterns */

static int pat_fail(char *err, size_t cap, const char *msg)
{
    if (cap)
        snprintf(err, cap, "%s", msg);
    return RC_BADARG;
}

/* Parse "[...]" at p[*i] (p[*i] == '['); on success *i is past the ']'. */
static int parse_class(const uint8_t *p, size_t plen, size_t *i, uint8_t set[32])
{
    size_t j = *i + 1;
    bool neg = j < plen && (p[j] == '!' || p[j] == '^');
    if (neg)
        j++;
    memset(set, 0, 32);
    bool first = true;
    for (;;) {
        if (j >= plen)
            return RC_BADARG;
        if (p[j] == ']' && !first)
            break;
        first = false;
        uint8_t lo = p[j];
        if (lo == '\\') {
            if (++j >= plen)
                return RC_BADARG;
            lo = p[j];
        }
        j++;
        uint8_t hi = lo;
        if (j + 1 < plen && p[j] == '-' && p[j + 1] != ']') {
            j++;
            hi = p[j];
            if (hi == '\\') {
                if (++j >= plen)
                    return RC_BADARG;
                hi = p[j];
            }
            j++;
            if (hi < lo)
                return RC_BADARG;
        }
        for (unsigned c = lo; c <= hi; c++)
            set[c >> 3] |= (uint8_t)(1u << (c & 7));
    }
    if (neg)
        for (int k = 0; k < 32; k++)
            set[k] = (uint8_t)~set[k];
    set['/' >> 3] &= (uint8_t) ~(1u << ('/' & 7)); /* a class never matches '/' */
    *i = j + 1;
    return RC_OK;
}

static int pat_add_tok(struct gov_pat *g, size_t *cap, struct gov_tok tk)
{
    int rc = gov_reserve((void **)&g->tok, cap, g->ntok + 1, sizeof(*g->tok));
    if (rc == RC_OK)
        g->tok[g->ntok++] = tk;
    return rc;
}

static int pat_tokenize(const uint8_t *p, size_t plen, struct gov_pat *g, char *err,
                        size_t err_cap)
{
    size_t cap = 0, ccap = 0;
    for (size_t i = 0; i < plen;) {
        struct gov_tok tk = {.kind = GP_LIT};
        if (p[i] == '\\') {
            if (i + 1 >= plen)
                return pat_fail(err, err_cap, "pattern ends with an unfinished '\\' escape");
            tk.ch = p[i + 1];
            i += 2;
        } else if (p[i] == '*') {
            bool dbl = i + 1 < plen && p[i + 1] == '*';
            tk.kind = dbl ? GP_DSTAR : GP_STAR;
            i += dbl ? 2 : 1;
        } else if (p[i] == '?') {
            tk.kind = GP_ONE;
            i++;
        } else if (p[i] == '[') {
            if (gov_reserve((void **)&g->classes, &ccap, g->nclasses + 1, 32) != RC_OK)
                return RC_NOMEM;
            if (parse_class(p, plen, &i, g->classes[g->nclasses]) != RC_OK)
                return pat_fail(err, err_cap, "pattern has a malformed '[...]' byte set");
            tk.kind = GP_CLASS;
            tk.cls = (uint16_t)g->nclasses++;
        } else {
            tk.ch = p[i++];
        }
        if (tk.kind != GP_LIT)
            g->nwild++;
        if (pat_add_tok(g, &cap, tk) != RC_OK)
            return RC_NOMEM;
    }
    return RC_OK;
}

void gov_pat_free(struct gov_pat *g)
{
    free(g->tok);
    free(g->classes);
    free(g->lit);
    memset(g, 0, sizeof(*g));
}

int gov_pat_compile(const void *pat, size_t plen, struct gov_pat *g, char *err,
                    size_t err_cap)
{
    memset(g, 0, sizeof(*g));
    if (plen == 0)
        return pat_fail(err, err_cap, "empty pattern");
    if (plen > NS_PATTERN_LEN_MAX)
        return pat_fail(err, err_cap, "pattern longer than 1024 bytes");
    int rc = pat_tokenize(pat, plen, g, err, err_cap);
    if (rc == RC_OK) {
        g->lit = malloc(g->ntok ? g->ntok : 1);
        if (!g->lit)
            rc = RC_NOMEM;
    }
    if (rc != RC_OK) {
        gov_pat_free(g);
        return rc;
    }
    while (g->lit_len < g->ntok && g->tok[g->lit_len].kind == GP_LIT) {
        g->lit[g->lit_len] = g->tok[g->lit_len].ch;
        g->lit_len++;
    }
    NS_ASSERT(g->ntok >= 1);
    const struct gov_tok *last = &g->tok[g->ntok - 1];
    g->prefix = last->kind == GP_LIT && last->ch == '/';
    return RC_OK;
}

/* Add state s and, through '*' and '**' (which may match nothing), the states after it. */
static void nfa_add(const struct gov_pat *g, uint16_t *list, size_t *n, uint32_t *mark,
                    uint32_t gen, size_t s)
{
    for (;;) {
        if (mark[s] == gen)
            return;
        mark[s] = gen;
        list[(*n)++] = (uint16_t)s;
        if (s == g->ntok || (g->tok[s].kind != GP_STAR && g->tok[s].kind != GP_DSTAR))
            return;
        s++;
    }
}

static bool tok_takes(const struct gov_pat *g, const struct gov_tok *tk, uint8_t c)
{
    switch (tk->kind) {
    case GP_LIT:
        return c == tk->ch;
    case GP_ONE:
    case GP_STAR:
        return c != '/';
    case GP_CLASS:
        return (g->classes[tk->cls][c >> 3] >> (c & 7)) & 1u;
    default:
        return true; /* GP_DSTAR */
    }
}

bool gov_pat_match(const struct gov_pat *g, const void *key, size_t klen)
{
    NS_ASSERT(g->ntok >= 1);
    NS_ASSERT(g->ntok <= NS_PATTERN_LEN_MAX);
    const uint8_t *k = key;
    if (klen < g->lit_len || (g->lit_len && memcmp(k, g->lit, g->lit_len) != 0))
        return false;
    uint16_t a[NS_PATTERN_LEN_MAX + 1], b[NS_PATTERN_LEN_MAX + 1];
    uint32_t mark[NS_PATTERN_LEN_MAX + 1];
    memset(mark, 0, (g->ntok + 1) * sizeof(mark[0]));
    uint16_t *cur = a, *nxt = b;
    size_t ncur = 0, nnxt = 0;
    uint32_t gen = 1;
    nfa_add(g, cur, &ncur, mark, gen, 0);
    for (size_t i = 0; i < klen && ncur > 0; i++) {
        gen++;
        nnxt = 0;
        for (size_t j = 0; j < ncur; j++) {
            size_t s = cur[j];
            if (s == g->ntok)
                continue;
            const struct gov_tok *tk = &g->tok[s];
            if (!tok_takes(g, tk, k[i]))
                continue;
            bool stay = tk->kind == GP_STAR || tk->kind == GP_DSTAR;
            nfa_add(g, nxt, &nnxt, mark, gen, stay ? s : s + 1);
        }
        uint16_t *tmp = cur;
        cur = nxt;
        nxt = tmp;
        ncur = nnxt;
        if (g->prefix && mark[g->ntok] == gen)
            return true; /* a prefix of the key (ending in '/') matches */
    }
    return ncur > 0 && mark[g->ntok] == gen;
}

int ns_pattern_check(const void *pat, size_t plen, char *err, size_t err_cap)
{
    struct gov_pat g;
    int rc = gov_pat_compile(pat, plen, &g, err, err_cap);
    gov_pat_free(&g);
    return rc;
}

bool ns_pattern_match(const void *pat, size_t plen, const void *key, size_t klen)
{
    struct gov_pat g;
    if (gov_pat_compile(pat, plen, &g, NULL, 0) != RC_OK)
        return false;
    bool m = gov_pat_match(&g, key, klen);
    gov_pat_free(&g);
    return m;
}

/* Specificity: longer literal prefix; then a whole-key pattern before a prefix pattern;
 * then fewer wildcards; then the longer pattern; then byte order (a total order). */
int gov_schema_cmp(const struct gov_schema *a, const struct gov_schema *b)
{
    if (a->gp.lit_len != b->gp.lit_len)
        return a->gp.lit_len > b->gp.lit_len ? -1 : 1;
    if (a->gp.prefix != b->gp.prefix)
        return a->gp.prefix ? 1 : -1;
    if (a->gp.nwild != b->gp.nwild)
        return a->gp.nwild < b->gp.nwild ? -1 : 1;
    if (a->plen != b->plen)
        return a->plen > b->plen ? -1 : 1;
    return memcmp(a->pat, b->pat, a->plen);
}

/* ------------------------------------------------------------------ records */

static uint8_t *schema_skey(uint32_t group, const void *pat, size_t plen, size_t *len)
{
    uint8_t *k = malloc(NS_GROUP_PREFIX_LEN + plen);
    if (!k)
        return NULL;
    ns_key_group_letter(k, group, NS_LETTER_SCHEMA);
    if (plen)
        memcpy(k + NS_GROUP_PREFIX_LEN, pat, plen);
    *len = NS_GROUP_PREFIX_LEN + plen;
    return k;
}

static void schema_free(struct gov_schema *s)
{
    free(s->pat);
    gov_pat_free(&s->gp);
    ns_schema_free(s->s);
    memset(s, 0, sizeof(*s));
}

/* Compile pattern + text into *s (owned copies). RC_OK, RC_BADARG (err says why; the
 * message names the part: "invalid pattern: ..." / "invalid schema: ..."), RC_TOOBIG,
 * RC_NOMEM. */
static int schema_build(const void *pat, size_t plen, const char *text, size_t tlen,
                        struct gov_schema *s, char *err, size_t err_cap)
{
    memset(s, 0, sizeof(*s));
    char e[512] = "";
    int rc = gov_pat_compile(pat, plen, &s->gp, e, sizeof(e));
    if (rc == RC_BADARG)
        snprintf(err, err_cap, "invalid pattern: %s", e);
    if (rc == RC_OK) {
        rc = ns_schema_compile(text, tlen, &s->s, e, sizeof(e));
        if (rc == RC_BADARG || rc == RC_TOOBIG)
            snprintf(err, err_cap, "invalid schema: %s", e);
    }
    if (rc == RC_OK && !(s->pat = malloc(plen)))
        rc = RC_NOMEM;
    if (rc != RC_OK) {
        schema_free(s);
        return rc;
    }
    memcpy(s->pat, pat, plen);
    s->plen = plen;
    return RC_OK;
}

static void gov_state_free(struct ns_gov_state *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->nschemas; i++)
        schema_free(&st->schemas[i]);
    free(st->schemas);
    free(st->pins);
    free(st);
}

static int load_schema_rec(struct ns_gov_state *st, const uint8_t *k, size_t klen,
                           const uint8_t *v, size_t vlen)
{
    if (klen <= NS_GROUP_PREFIX_LEN || vlen < 1 || v[0] != SCHEMA_REC_FORMAT)
        return RC_CORRUPT;
    if (st->nschemas >= NS_SCHEMAS_MAX)
        return RC_CORRUPT;
    int rc = gov_reserve((void **)&st->schemas, &st->schemas_cap, st->nschemas + 1,
                         sizeof(*st->schemas));
    if (rc != RC_OK)
        return rc;
    char e[8];
    rc = schema_build(k + NS_GROUP_PREFIX_LEN, klen - NS_GROUP_PREFIX_LEN,
                      (const char *)v + 1, vlen - 1, &st->schemas[st->nschemas], e, sizeof(e));
    if (rc == RC_BADARG || rc == RC_TOOBIG)
        rc = RC_CORRUPT; /* it compiled when it was set: the record is damaged */
    if (rc == RC_OK)
        st->nschemas++;
    return rc;
}

static int load_schemas(struct ns *n, struct ns_gov_state *st)
{
    uint8_t lo[NS_GROUP_PREFIX_LEN], hi[NS_GROUP_PREFIX_LEN];
    ns_key_group_letter(lo, n->group, NS_LETTER_SCHEMA);
    ns_key_group_letter(hi, n->group, NS_LETTER_SCHEMA + 1);
    struct pst_iter *it = pst_iter_new(n->e, NULL, lo, sizeof(lo), hi, sizeof(hi));
    if (!it)
        return RC_NOMEM;
    int rc = RC_OK;
    for (; rc == RC_OK && pst_iter_valid(it); pst_iter_next(it)) {
        size_t klen = 0, vlen = 0;
        const uint8_t *k = pst_iter_key(it, &klen);
        const uint8_t *v = pst_iter_value(it, &vlen);
        rc = load_schema_rec(st, k, klen, v, vlen);
    }
    if (rc == RC_OK)
        rc = pst_iter_status(it);
    pst_iter_free(it);
    return rc;
}

int ns_gov_load(struct ns *n)
{
    struct ns_gov_state *st = calloc(1, sizeof(*st));
    if (!st)
        return RC_NOMEM;
    int rc = load_schemas(n, st);
    if (rc != RC_OK) {
        gov_state_free(st);
        return rc;
    }
    gov_state_free(n->gov);
    n->gov = st;
    return gov_snap_load(n);
}

void ns_gov_close(struct ns *n)
{
    gov_state_free(n->gov);
    n->gov = NULL;
}

/* ------------------------------------------------------------------ entry changes */

int gov_txn_get(struct ns_txn *t, struct ns_gov_txn **out)
{
    if (!t->gov && !(t->gov = calloc(1, sizeof(*t->gov))))
        return RC_NOMEM;
    *out = t->gov;
    return RC_OK;
}

static void gov_txn_free(struct ns_gov_txn *g)
{
    for (size_t i = 0; i < g->nchg; i++)
        schema_free(&g->chg[i].sc);
    free(g->chg);
    gov_snap_free_txn(g);
    free(g);
}

static ssize_t state_find(const struct ns_gov_state *st, const void *pat, size_t plen)
{
    for (size_t i = 0; i < st->nschemas; i++)
        if (st->schemas[i].plen == plen && memcmp(st->schemas[i].pat, pat, plen) == 0)
            return (ssize_t)i;
    return -1;
}

/* Apply one staged change to the state (capacity was reserved when it was staged). */
static void state_apply(struct ns_gov_state *st, struct gov_schema_chg *c)
{
    ssize_t at = state_find(st, c->sc.pat, c->sc.plen);
    if (at >= 0) {
        schema_free(&st->schemas[at]);
        st->schemas[at] = st->schemas[--st->nschemas];
    }
    if (!c->del) {
        NS_ASSERT(st->nschemas < st->schemas_cap);
        st->schemas[st->nschemas++] = c->sc;
        memset(&c->sc, 0, sizeof(c->sc)); /* moved */
    }
}

void ns_gov_commit(struct ns *n, struct ns_txn *t, bool committed)
{
    struct ns_gov_txn *g = t->gov;
    if (g && committed) {
        for (size_t i = 0; i < g->nchg; i++)
            state_apply(n->gov, &g->chg[i]);
        gov_snap_commit(n, g);
    }
    if (g)
        gov_txn_free(g);
    t->gov = NULL;
    free(t->detail_buf);
    t->detail_buf = NULL;
}

/* ------------------------------------------------------------------ lookup and check */

/* The staged change of pat in this entry (the last one), or NULL. */
static const struct gov_schema_chg *txn_change(const struct ns_txn *t, const void *pat,
                                               size_t plen)
{
    if (!t || !t->gov)
        return NULL;
    for (size_t i = t->gov->nchg; i-- > 0;) {
        const struct gov_schema_chg *c = &t->gov->chg[i];
        if (c->sc.plen == plen && memcmp(c->sc.pat, pat, plen) == 0)
            return c;
    }
    return NULL;
}

static void consider(const struct gov_schema *s, const void *key, size_t klen,
                     const struct gov_schema **best)
{
    if ((!*best || gov_schema_cmp(s, *best) < 0) && gov_pat_match(&s->gp, key, klen))
        *best = s;
}

/* The most specific schema matching key, as entry t (may be NULL) sees the group. */
static const struct gov_schema *schema_for(const struct ns *n, const struct ns_txn *t,
                                           const void *key, size_t klen)
{
    const struct gov_schema *best = NULL;
    const struct ns_gov_state *st = n->gov;
    for (size_t i = 0; st && i < st->nschemas; i++) {
        const struct gov_schema *s = &st->schemas[i];
        if (!txn_change(t, s->pat, s->plen))
            consider(s, key, klen, &best);
    }
    for (size_t i = 0; t && t->gov && i < t->gov->nchg; i++) {
        const struct gov_schema_chg *c = &t->gov->chg[i];
        if (!c->del && txn_change(t, c->sc.pat, c->sc.plen) == c)
            consider(&c->sc, key, klen, &best);
    }
    return best;
}

int gov_schema_verdict(struct ns_txn *t, const void *key, size_t klen, const void *val,
                       size_t vlen, char *where, size_t where_cap, char *why, size_t why_cap,
                       const char **pat, size_t *plen)
{
    const struct gov_schema *s = schema_for(t->n, t, key, klen);
    if (!s)
        return RC_OK;
    *pat = s->pat;
    *plen = s->plen;
    return ns_schema_validate(s->s, val, vlen, where, where_cap, why, why_cap);
}

int ns_schema_check(struct ns_txn *t, const void *key, size_t klen, const void *val,
                    size_t vlen, struct ns_reply *out)
{
    char where[WHERE_CAP], why[WHY_CAP], wbuf[204], kbuf[204], pbuf[204];
    const char *pat = NULL;
    size_t plen = 0;
    int rc = gov_schema_verdict(t, key, klen, val, vlen, where, sizeof(where), why,
                                sizeof(why), &pat, &plen);
    if (rc != RC_SCHEMA)
        return rc;
    return gov_err(out, RC_SCHEMA, "%s: %s (key %s, schema %s)",
                   gov_printable(where, strlen(where), 200, wbuf, sizeof(wbuf)), why,
                   gov_printable(key, klen, 200, kbuf, sizeof(kbuf)),
                   gov_printable(pat, plen, 200, pbuf, sizeof(pbuf)));
}

/* ------------------------------------------------------------------ CFG.SCHEMA.SET / DEL */

/* Keys the new schema refuses, for the refusal message. */
struct keycheck {
    struct ns_txn *t;
    const struct gov_schema *ns; /* the schema being set */
    uint64_t checked, limit, failed;
    char msg[900];
    size_t mlen;
    int rc; /* RC_OK, RC_TOOBIG (too many keys), a store error */
};

/* Check key = val against the new schema when it would be the one that applies. */
static void keycheck_one(struct keycheck *kc, const void *key, size_t klen, const void *val,
                         size_t vlen)
{
    if (!gov_pat_match(&kc->ns->gp, key, klen))
        return;
    const struct gov_schema *e = schema_for(kc->t->n, kc->t, key, klen);
    bool same = e && e->plen == kc->ns->plen && memcmp(e->pat, kc->ns->pat, e->plen) == 0;
    if (e && !same && gov_schema_cmp(e, kc->ns) < 0)
        return; /* a more specific schema keeps applying to this key */
    if (++kc->checked > kc->limit) {
        kc->rc = RC_TOOBIG;
        return;
    }
    char where[WHERE_CAP], why[WHY_CAP], kbuf[104], wbuf[104];
    int rc = ns_schema_validate(kc->ns->s, val, vlen, where, sizeof(where), why, sizeof(why));
    if (rc == RC_NOMEM)
        kc->rc = rc;
    if (rc != RC_SCHEMA)
        return;
    if (kc->failed++ < NS_GOV_REPORT_KEYS && kc->mlen < sizeof(kc->msg)) {
        int w = snprintf(kc->msg + kc->mlen, sizeof(kc->msg) - kc->mlen, "%s%s (%s: %s)",
                         kc->failed > 1 ? "; " : "", gov_printable(key, klen, 100, kbuf,
                                                                   sizeof(kbuf)),
                         gov_printable(where, strlen(where), 100, wbuf, sizeof(wbuf)), why);
        kc->mlen = w > 0 ? kc->mlen + (size_t)w : kc->mlen;
        if (kc->mlen >= sizeof(kc->msg))
            kc->mlen = sizeof(kc->msg) - 1;
    }
}

static bool keycheck_visit(void *ud, const struct ns_kv *kv)
{
    struct keycheck *kc = ud;
    if (kc->t->nkeys == 0) {
        keycheck_one(kc, kv->key, kv->klen, kv->value, kv->vlen);
    } else { /* the entry may have changed the key already (MULTI/EXEC) */
        const struct ns_keyrec *r = NULL;
        int rc = ns_txn_get(kc->t, kv->key, kv->klen, &r);
        if (rc == RC_OK)
            keycheck_one(kc, kv->key, kv->klen, r->value, r->vlen);
        else if (rc != RC_NOTFOUND)
            kc->rc = rc;
    }
    return kc->rc == RC_OK;
}

/* Every current key the new schema would govern must conform. RC_OK, NS_REPLIED, store
 * errors. */
static int check_existing(struct ns_txn *t, const struct gov_schema *s, struct ns_reply *out)
{
    struct keycheck kc = {.t = t, .ns = s, .limit = gov_rollback_keys_max(t->n)};
    int rc = ns_scan(t->n, s->gp.lit, s->gp.lit_len, NULL, 0, 0, true, keycheck_visit, &kc,
                     NULL, NULL);
    /* Keys this entry created (not in the store yet). */
    for (size_t i = 0; rc == RC_OK && kc.rc == RC_OK && i < t->nkeys; i++) {
        const struct ns_txkey *k = &t->keys[i];
        if (k->present && !k->had_old)
            keycheck_one(&kc, k->key, k->klen, k->cur.value, k->cur.vlen);
    }
    if (rc == RC_OK)
        rc = kc.rc;
    if (rc == RC_TOOBIG)
        return gov_err(out, RC_TOOBIG,
                       "more than %llu existing keys to check against the schema; set it "
                       "with FORCE to skip the check",
                       (unsigned long long)kc.limit);
    if (rc != RC_OK)
        return rc;
    if (kc.failed == 0)
        return RC_OK;
    return gov_err(out, RC_SCHEMA,
                   "%llu existing key%s would violate the schema (use FORCE to set it "
                   "anyway): %s%s",
                   (unsigned long long)kc.failed, kc.failed == 1 ? "" : "s", kc.msg,
                   kc.failed > NS_GOV_REPORT_KEYS ? "; ..." : "");
}

static size_t schema_count(const struct ns_txn *t)
{
    const struct ns_gov_state *st = t->n->gov;
    size_t cnt = 0;
    for (size_t i = 0; i < st->nschemas; i++)
        cnt += txn_change(t, st->schemas[i].pat, st->schemas[i].plen) == NULL;
    for (size_t i = 0; t->gov && i < t->gov->nchg; i++) {
        const struct gov_schema_chg *c = &t->gov->chg[i];
        cnt += !c->del && txn_change(t, c->sc.pat, c->sc.plen) == c;
    }
    return cnt;
}

/* Does pat have a schema as the entry sees the group? */
static bool schema_exists(const struct ns_txn *t, const void *pat, size_t plen)
{
    const struct gov_schema_chg *c = txn_change(t, pat, plen);
    if (c)
        return !c->del;
    return state_find(t->n->gov, pat, plen) >= 0;
}

/* Stage the record change and keep the compiled change for commit (takes *sc). */
static int stage_schema(struct ns_txn *t, struct gov_schema *sc, bool del, const char *text,
                        size_t tlen)
{
    struct ns_gov_txn *g = NULL;
    int rc = gov_txn_get(t, &g);
    if (rc == RC_OK)
        rc = gov_reserve((void **)&g->chg, &g->chg_cap, g->nchg + 1, sizeof(*g->chg));
    /* Commit must not fail: room for every schema this entry may add. */
    struct ns_gov_state *st = t->n->gov;
    if (rc == RC_OK)
        rc = gov_reserve((void **)&st->schemas, &st->schemas_cap,
                         st->nschemas + g->nchg + 1, sizeof(*st->schemas));
    size_t sklen = 0;
    uint8_t *sk = rc == RC_OK ? schema_skey(t->n->group, sc->pat, sc->plen, &sklen) : NULL;
    uint8_t *rec = sk && !del ? malloc(tlen + 1) : NULL;
    if (rc == RC_OK && (!sk || (!del && !rec)))
        rc = RC_NOMEM;
    if (rc != RC_OK) {
        free(sk);
        free(rec);
        schema_free(sc);
        return rc;
    }
    if (del) {
        pst_batch_del(t->n->batch, sk, sklen);
    } else {
        rec[0] = SCHEMA_REC_FORMAT;
        memcpy(rec + 1, text, tlen);
        pst_batch_put(t->n->batch, sk, sklen, rec, tlen + 1);
    }
    free(sk);
    free(rec);
    g->chg[g->nchg].sc = *sc;
    g->chg[g->nchg].del = del;
    g->nchg++;
    t->changed = true;
    return RC_OK;
}

int ns_cmd_schema_set(struct ns_txn *t, int argc, char **argv, size_t *argvlen,
                      struct ns_reply *out)
{
    if (argc != 3 && argc != 4)
        return gov_err(out, RC_BADARG, "wrong number of arguments for 'cfg.schema.set' command");
    bool force = argc == 4;
    if (force && !gov_arg_is(argv[3], argvlen[3], "FORCE"))
        return gov_err(out, RC_BADARG, "syntax error");
    struct gov_schema sc;
    char e[600];
    int rc = schema_build(argv[1], argvlen[1], argv[2], argvlen[2], &sc, e, sizeof(e));
    if (rc == RC_BADARG || rc == RC_TOOBIG)
        return gov_err(out, RC_BADARG, "%s", e);
    if (rc != RC_OK)
        return rc;
    if (!schema_exists(t, sc.pat, sc.plen) && schema_count(t) >= NS_SCHEMAS_MAX) {
        schema_free(&sc);
        return gov_err(out, RC_TOOBIG, "too many schemas (limit %u per group)",
                       NS_SCHEMAS_MAX);
    }
    rc = force ? RC_OK : check_existing(t, &sc, out);
    if (rc != RC_OK) {
        schema_free(&sc);
        return rc;
    }
    rc = stage_schema(t, &sc, false, argv[2], argvlen[2]);
    if (rc != RC_OK)
        return rc;
    t->op = "schema.set";
    t->subject = argv[1];
    t->subject_len = argvlen[1];
    t->detail = argv[2];
    t->detail_len = argvlen[2];
    return ns_reply_set_status(out, "OK");
}

int ns_cmd_schema_del(struct ns_txn *t, int argc, char **argv, size_t *argvlen,
                      struct ns_reply *out)
{
    if (argc != 2)
        return gov_err(out, RC_BADARG, "wrong number of arguments for 'cfg.schema.del' command");
    if (argvlen[1] == 0 || argvlen[1] > NS_PATTERN_LEN_MAX ||
        !schema_exists(t, argv[1], argvlen[1])) {
        ns_reply_set_int(out, 0);
        return RC_OK;
    }
    struct gov_schema sc = {.pat = malloc(argvlen[1]), .plen = argvlen[1]};
    if (!sc.pat)
        return RC_NOMEM;
    memcpy(sc.pat, argv[1], argvlen[1]);
    int rc = stage_schema(t, &sc, true, NULL, 0);
    if (rc != RC_OK)
        return rc;
    t->op = "schema.del";
    t->subject = argv[1];
    t->subject_len = argvlen[1];
    t->detail = NULL;
    t->detail_len = 0;
    ns_reply_set_int(out, 1);
    return RC_OK;
}

/* ------------------------------------------------------------------ reads */

int ns_schema_get(struct ns *n, const void *pat, size_t plen, char **text, size_t *len)
{
    *text = NULL;
    *len = 0;
    if (plen == 0 || plen > NS_PATTERN_LEN_MAX)
        return RC_NOTFOUND;
    size_t sklen = 0;
    uint8_t *sk = schema_skey(n->group, pat, plen, &sklen);
    if (!sk)
        return RC_NOMEM;
    void *val = NULL;
    size_t vlen = 0;
    int rc = pst_get(n->e, NULL, sk, sklen, &val, &vlen);
    free(sk);
    if (rc != RC_OK)
        return rc;
    const uint8_t *v = val;
    if (vlen < 1 || v[0] != SCHEMA_REC_FORMAT) {
        free(val);
        return RC_CORRUPT;
    }
    *text = malloc(vlen);
    if (*text) {
        memcpy(*text, v + 1, vlen - 1);
        (*text)[vlen - 1] = '\0';
        *len = vlen - 1;
    }
    free(val);
    return *text ? RC_OK : RC_NOMEM;
}

int ns_schema_list(struct ns *n, const void *prefix, size_t plen, ns_schema_fn fn, void *ud)
{
    NS_ASSERT(fn != NULL);
    size_t lolen = 0;
    uint8_t *lo = schema_skey(n->group, prefix, prefix ? plen : 0, &lolen);
    uint8_t hi[NS_GROUP_PREFIX_LEN];
    ns_key_group_letter(hi, n->group, NS_LETTER_SCHEMA + 1);
    if (!lo)
        return RC_NOMEM;
    struct pst_iter *it = pst_iter_new(n->e, NULL, lo, lolen, hi, sizeof(hi));
    int rc = it ? RC_OK : RC_NOMEM;
    for (; rc == RC_OK && pst_iter_valid(it); pst_iter_next(it)) {
        size_t klen = 0, vlen = 0;
        const uint8_t *k = pst_iter_key(it, &klen);
        const uint8_t *v = pst_iter_value(it, &vlen);
        if (klen < lolen || memcmp(k, lo, lolen) != 0)
            break; /* past the keys beginning with prefix */
        if (klen <= NS_GROUP_PREFIX_LEN || vlen < 1 || v[0] != SCHEMA_REC_FORMAT) {
            rc = RC_CORRUPT;
            break;
        }
        if (!fn(ud, (const char *)k + NS_GROUP_PREFIX_LEN, klen - NS_GROUP_PREFIX_LEN,
                (const char *)v + 1, vlen - 1))
            break;
    }
    if (rc == RC_OK && it)
        rc = pst_iter_status(it);
    pst_iter_free(it);
    free(lo);
    return rc;
}

int ns_schema_for_key(struct ns *n, const void *key, size_t klen, char **pat, size_t *plen)
{
    *pat = NULL;
    *plen = 0;
    const struct gov_schema *s = schema_for(n, NULL, key, klen);
    if (!s)
        return RC_NOTFOUND;
    *pat = malloc(s->plen + 1);
    if (!*pat)
        return RC_NOMEM;
    memcpy(*pat, s->pat, s->plen);
    (*pat)[s->plen] = '\0';
    *plen = s->plen;
    return RC_OK;
}
