/*
 * schema_eval.c - validates a value against a compiled schema (schema.c) and reports the
 * first failure as a JSON pointer and a short reason.
 *
 * Order (fixed, so every replica reports the same first failure): $ref alone; else type,
 * enum, const; numbers (multipleOf, minimum, maximum, exclusiveMinimum, exclusiveMaximum);
 * strings (minLength, maxLength, pattern, format); arrays (minItems, maxItems, uniqueItems,
 * items / additionalItems by index, contains); objects (minProperties, maxProperties,
 * required, dependencies, then per member in byte order of names: propertyNames,
 * properties, patternProperties, additionalProperties); then allOf, anyOf, oneOf, not,
 * if/then/else. Subschemas under anyOf, oneOf, not, if, contains and propertyNames are
 * evaluated quietly; their combinator reports instead.
 *
 * Termination: every call spends one unit of a budget of NS_SCHEMA_STEPS_MAX (member
 * sorting and equality spend one per value visited), nesting is bounded by
 * NS_SCHEMA_EVAL_DEPTH_MAX; regex matches spend one unit per pattern item tried (PCRE2
 * auto callouts, backtracking included) plus one per 64 subject bytes, under PCRE2's
 * match/depth/heap limits as well. Running
 * out is sticky: the value is refused (RC_SCHEMA) whatever the enclosing combinator, so a
 * hostile "not" cannot turn exhaustion into acceptance.
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "rc.h"
#include "schema_internal.h"

struct seg {
    const char *key; /* NULL: array index */
    size_t len;      /* key length or index */
};

struct ectx {
    const struct ns_schema *s;
    pcre2_match_data *md;
    pcre2_match_context *mctx; /* limits, and the callout that charges the budget */
    uint64_t steps; /* remaining budget */
    unsigned depth;
    unsigned quiet;  /* > 0: failures are not reported */
    int abort_rc;    /* RC_OK, or RC_SCHEMA / RC_NOMEM once a limit or malloc failed */
    bool reported;
    struct seg path[NS_SCHEMA_VALUE_DEPTH_MAX + 2];
    unsigned path_n;
    char *where, *why;
    size_t where_cap, why_cap;
};

/* Member of an object being validated, sorted by name bytes. */
struct member {
    struct sn_name name;
    const json_t *v;
};

/* ------------------------------------------------------------------ reporting */

static void write_where(struct ectx *e)
{
    size_t o = 0, cap = e->where_cap;
    if (cap == 0)
        return;
    for (unsigned i = 0; i < e->path_n && o + 1 < cap; i++) {
        e->where[o++] = '/';
        if (e->path[i].key == NULL) {
            int n = snprintf(e->where + o, cap - o, "%zu", e->path[i].len);
            o = n < 0 ? o : o + (size_t)n < cap ? o + (size_t)n : cap - 1;
            continue;
        }
        for (size_t k = 0; k < e->path[i].len && o + 1 < cap; k++) { /* RFC 6901 escapes */
            char c = e->path[i].key[k];
            if ((c == '~' || c == '/') && o + 2 < cap) {
                e->where[o++] = '~';
                e->where[o++] = c == '~' ? '0' : '1';
            } else if (c != '~' && c != '/') {
                e->where[o++] = c;
            } else {
                break;
            }
        }
    }
    e->where[o < cap ? o : cap - 1] = '\0';
}

static __attribute__((format(printf, 2, 3))) bool fail(struct ectx *e, const char *fmt, ...)
{
    if (e->quiet > 0 || e->reported)
        return false;
    e->reported = true;
    write_where(e);
    if (e->why_cap > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->why, e->why_cap, fmt, ap);
        va_end(ap);
    }
    return false;
}

/* A limit ran out or memory did: the verdict is "refused" (or RC_NOMEM) whatever encloses
 * this point; reported even inside quiet subschemas. */
static bool halt(struct ectx *e, int rc, const char *reason)
{
    if (e->abort_rc == RC_OK) {
        e->abort_rc = rc;
        e->quiet = 0;
        e->reported = false;
        fail(e, "%s", reason);
    }
    return false;
}

static void num_text(const json_t *v, char *buf, size_t cap)
{
    if (json_is_integer(v))
        snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else
        snprintf(buf, cap, "%.15g", json_real_value(v));
}

static void push_key(struct ectx *e, const char *key, size_t len)
{
    SCHEMA_ASSERT(e->path_n < sizeof(e->path) / sizeof(e->path[0]));
    e->path[e->path_n++] = (struct seg){key, len};
}

static void push_index(struct ectx *e, size_t i)
{
    SCHEMA_ASSERT(e->path_n < sizeof(e->path) / sizeof(e->path[0]));
    e->path[e->path_n++] = (struct seg){NULL, i};
}

static void pop(struct ectx *e)
{
    SCHEMA_ASSERT(e->path_n > 0);
    e->path_n--;
}

static bool eval(struct ectx *e, const struct sn *n, const json_t *v);

static bool eval_quiet(struct ectx *e, const struct sn *n, const json_t *v)
{
    e->quiet++;
    bool ok = eval(e, n, v);
    if (e->abort_rc == RC_OK)
        e->quiet--;
    return ok;
}

/* ------------------------------------------------------------------ regexes */

/* Called by PCRE2 before every pattern item (PCRE2_AUTO_CALLOUT), backtracking included:
 * each call spends one unit, so regex work counts against the same budget as the rest. */
static int regex_callout(pcre2_callout_block *cb, void *ud)
{
    (void)cb;
    struct ectx *e = ud;
    if (e->steps <= 1)
        return PCRE2_ERROR_CALLOUT; /* abandons the match */
    e->steps--;
    return 0;
}

/* 1 match, 0 no match, -1 a limit ran out (already halted). Linear scans inside one item
 * make no callouts, so the subject length is charged up front. */
static int regex_match(struct ectx *e, pcre2_code *re, const char *s, size_t len)
{
    uint64_t cost = 1 + len / 64;
    if (e->steps <= cost) {
        halt(e, RC_SCHEMA, "validation exceeds its work limit");
        return -1;
    }
    e->steps -= cost;
    int r = pcre2_match(re, (PCRE2_SPTR)s, len, 0, 0, e->md, e->mctx);
    if (r >= 0)
        return 1;
    if (r == PCRE2_ERROR_NOMATCH)
        return 0;
    if (r == PCRE2_ERROR_CALLOUT)
        halt(e, RC_SCHEMA, "validation exceeds its work limit");
    else
        halt(e, RC_SCHEMA, "pattern match exceeds its backtracking limit");
    return -1;
}

/* ------------------------------------------------------------------ scalars */

static uint32_t type_bits(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return SN_T_OBJECT;
    case JSON_ARRAY: return SN_T_ARRAY;
    case JSON_STRING: return SN_T_STRING;
    case JSON_INTEGER: return SN_T_NUMBER | SN_T_INTEGER;
    case JSON_REAL: return SN_T_NUMBER | (sn_is_integral(v) ? SN_T_INTEGER : 0u);
    case JSON_TRUE:
    case JSON_FALSE: return SN_T_BOOLEAN;
    case JSON_NULL: return SN_T_NULL;
    }
    return 0;
}

static bool eval_type(struct ectx *e, const struct sn *n, const json_t *v)
{
    static const char *const names[] = {"null",   "boolean", "object", "array",
                                        "number", "string",  "integer"};
    if (n->types == 0 || (n->types & type_bits(v)) != 0)
        return true;
    char buf[96];
    size_t o = 0;
    for (unsigned k = 0; k < 7; k++)
        if (n->types & (1u << k))
            o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%s", o ? " or " : "", names[k]);
    return fail(e, "must be of type %s", buf);
}

static bool eval_enum_const(struct ectx *e, const struct sn *n, const json_t *v)
{
    if (n->enum_vals != NULL) {
        bool found = false;
        for (size_t i = 0; i < json_array_size(n->enum_vals) && !found; i++)
            found = sn_json_equal(json_array_get(n->enum_vals, i), v, &e->steps);
        if (e->steps == 0)
            return halt(e, RC_SCHEMA, "validation exceeds its work limit");
        if (!found)
            return fail(e, "is not one of the enum values");
    }
    if (n->const_val != NULL) {
        bool same = sn_json_equal(n->const_val, v, &e->steps);
        if (e->steps == 0)
            return halt(e, RC_SCHEMA, "validation exceeds its work limit");
        if (!same)
            return fail(e, "is not equal to the const value");
    }
    return true;
}

static bool is_multiple(const json_t *v, const json_t *m)
{
    if (json_is_integer(v) && json_is_integer(m))
        return json_integer_value(v) % json_integer_value(m) == 0;
    double q = json_number_value(v) / json_number_value(m);
    if (!isfinite(q))
        return false;
    /* Binary fractions: 0.0075 / 0.0001 is 74.99999999999999; accept a quotient within
     * 1e-9 of an integer (docs/schema.md). */
    return fabs(q - round(q)) <= 1e-9;
}

static bool eval_number(struct ectx *e, const struct sn *n, const json_t *v)
{
    char buf[40];
    if (n->multiple_of != NULL && !is_multiple(v, n->multiple_of)) {
        num_text(n->multiple_of, buf, sizeof(buf));
        return fail(e, "must be a multiple of %s", buf);
    }
    const json_t *lim[4] = {n->minimum, n->maximum, n->exclusive_minimum,
                            n->exclusive_maximum};
    static const char *const op[4] = {">=", "<=", ">", "<"};
    for (int i = 0; i < 4; i++) {
        if (lim[i] == NULL)
            continue;
        int c = sn_num_cmp(v, lim[i]);
        bool ok = i == 0 ? c >= 0 : i == 1 ? c <= 0 : i == 2 ? c > 0 : c < 0;
        if (!ok) {
            num_text(lim[i], buf, sizeof(buf));
            return fail(e, "must be %s %s", op[i], buf);
        }
    }
    return true;
}

static bool eval_string(struct ectx *e, const struct sn *n, const json_t *v)
{
    static const char *const fmt_names[] = {"", "date-time", "date", "time", "email",
                                            "hostname", "ipv4", "ipv6", "uri"};
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (n->min_length != SN_NO_LIMIT || n->max_length != SN_NO_LIMIT) {
        uint64_t cp = sn_utf8_len(s, len);
        if (n->min_length != SN_NO_LIMIT && cp < n->min_length)
            return fail(e, "must be at least %" PRIu64 " characters long", n->min_length);
        if (n->max_length != SN_NO_LIMIT && cp > n->max_length)
            return fail(e, "must be at most %" PRIu64 " characters long", n->max_length);
    }
    if (n->pattern != NULL) {
        int r = regex_match(e, n->pattern, s, len);
        if (r < 0)
            return false;
        if (r == 0)
            return fail(e, "does not match the pattern \"%.*s\"",
                        (int)(n->pattern_src.len > 80 ? 80 : n->pattern_src.len),
                        n->pattern_src.s);
    }
    if (n->format != SN_F_NONE && !sn_format_check(n->format, s, len))
        return fail(e, "is not a valid %s", fmt_names[n->format]);
    return true;
}

/* ------------------------------------------------------------------ arrays */

static bool eval_unique(struct ectx *e, const json_t *v)
{
    size_t cnt = json_array_size(v);
    for (size_t i = 0; i < cnt; i++) {
        for (size_t j = i + 1; j < cnt; j++) {
            bool same = sn_json_equal(json_array_get(v, i), json_array_get(v, j), &e->steps);
            if (e->steps == 0)
                return halt(e, RC_SCHEMA, "validation exceeds its work limit");
            if (same)
                return fail(e, "items %zu and %zu are equal (uniqueItems)", i, j);
        }
    }
    return true;
}

static bool eval_array(struct ectx *e, const struct sn *n, const json_t *v)
{
    size_t cnt = json_array_size(v);
    if (n->min_items != SN_NO_LIMIT && cnt < n->min_items)
        return fail(e, "must have at least %" PRIu64 " items", n->min_items);
    if (n->max_items != SN_NO_LIMIT && cnt > n->max_items)
        return fail(e, "must have at most %" PRIu64 " items", n->max_items);
    if (n->unique_items && !eval_unique(e, v))
        return false;
    for (size_t i = 0; i < cnt; i++) {
        const struct sn *item = n->has_tuple
                                    ? (i < n->tuple_n ? n->tuple[i] : n->additional_items)
                                    : n->items;
        if (item == NULL)
            continue;
        push_index(e, i);
        bool ok = item->boolean == 0 && n->has_tuple && i >= n->tuple_n
                      ? fail(e, "is not allowed (additionalItems)")
                      : eval(e, item, json_array_get(v, i));
        pop(e);
        if (!ok)
            return false;
    }
    if (n->contains != NULL) {
        bool found = false;
        for (size_t i = 0; i < cnt && !found; i++)
            found = eval_quiet(e, n->contains, json_array_get(v, i));
        if (e->abort_rc != RC_OK)
            return false;
        if (!found)
            return fail(e, "does not contain an item matching \"contains\"");
    }
    return true;
}

/* ------------------------------------------------------------------ objects */

static int member_cmp(const void *a, const void *b)
{
    const struct sn_name *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int r = memcmp(x->s, y->s, n);
    return r != 0 ? r : x->len < y->len ? -1 : x->len > y->len;
}

static bool eval_object_head(struct ectx *e, const struct sn *n, const json_t *v)
{
    size_t cnt = json_object_size(v);
    if (n->min_props != SN_NO_LIMIT && cnt < n->min_props)
        return fail(e, "must have at least %" PRIu64 " properties", n->min_props);
    if (n->max_props != SN_NO_LIMIT && cnt > n->max_props)
        return fail(e, "must have at most %" PRIu64 " properties", n->max_props);
    for (size_t i = 0; i < n->required_n; i++)
        if (json_object_getn(v, n->required[i].s, n->required[i].len) == NULL)
            return fail(e, "missing required property \"%.*s\"", (int)n->required[i].len,
                        n->required[i].s);
    for (size_t i = 0; i < n->deps_n; i++) {
        const struct sn_dep *d = &n->deps[i];
        if (json_object_getn(v, d->name.s, d->name.len) == NULL)
            continue;
        if (d->schema != NULL && !eval(e, d->schema, v))
            return false;
        for (size_t k = 0; k < d->names_n; k++)
            if (json_object_getn(v, d->names[k].s, d->names[k].len) == NULL)
                return fail(e, "property \"%.*s\" requires property \"%.*s\"",
                            (int)d->name.len, d->name.s, (int)d->names[k].len,
                            d->names[k].s);
    }
    return true;
}

/* propertyNames, properties, patternProperties, additionalProperties for one member. */
static bool eval_member(struct ectx *e, const struct sn *n, const struct member *m)
{
    if (n->property_names != NULL) {
        json_t *name = json_stringn_nocheck(m->name.s, m->name.len);
        if (name == NULL)
            return halt(e, RC_NOMEM, "out of memory");
        bool ok = eval_quiet(e, n->property_names, name);
        json_decref(name);
        if (!ok && e->abort_rc == RC_OK) {
            push_key(e, m->name.s, m->name.len);
            fail(e, "is not an allowed property name (propertyNames)");
            pop(e);
        }
        if (!ok)
            return false;
    }
    bool matched = false, ok = true;
    push_key(e, m->name.s, m->name.len);
    const struct sn_prop *p = n->props_n == 0 ? NULL
                              : bsearch(&m->name, n->props, n->props_n, sizeof(*n->props),
                                        member_cmp);
    if (p != NULL) {
        matched = true;
        ok = eval(e, p->schema, m->v);
    }
    for (size_t i = 0; ok && i < n->pats_n; i++) {
        int r = regex_match(e, n->pats[i].re, m->name.s, m->name.len);
        if (r < 0) {
            ok = false;
        } else if (r > 0) {
            matched = true;
            ok = eval(e, n->pats[i].schema, m->v);
        }
    }
    if (ok && !matched && n->additional_props != NULL)
        ok = n->additional_props->boolean == 0
                 ? fail(e, "is not an allowed property (additionalProperties)")
                 : eval(e, n->additional_props, m->v);
    pop(e);
    return ok;
}

static bool eval_object(struct ectx *e, const struct sn *n, const json_t *v)
{
    if (!eval_object_head(e, n, v))
        return false;
    if (n->props_n == 0 && n->pats_n == 0 && n->additional_props == NULL &&
        n->property_names == NULL)
        return true;
    size_t cnt = json_object_size(v), i = 0;
    if (cnt == 0)
        return true;
    if (e->steps <= cnt)
        return halt(e, RC_SCHEMA, "validation exceeds its work limit");
    e->steps -= cnt;
    struct member *ms = malloc(cnt * sizeof(*ms));
    if (ms == NULL)
        return halt(e, RC_NOMEM, "out of memory");
    const char *key;
    size_t key_len;
    json_t *val;
    json_object_keylen_foreach((json_t *)v, key, key_len, val) {
        ms[i++] = (struct member){{key, key_len}, val};
    }
    SCHEMA_ASSERT(i == cnt);
    qsort(ms, cnt, sizeof(*ms), member_cmp); /* name first: byte order of names */
    bool ok = true;
    for (i = 0; ok && i < cnt; i++)
        ok = eval_member(e, n, &ms[i]);
    free(ms);
    return ok;
}

/* ------------------------------------------------------------------ combinators */

static bool eval_combinators(struct ectx *e, const struct sn *n, const json_t *v)
{
    for (size_t i = 0; i < n->all_of_n; i++)
        if (!eval(e, n->all_of[i], v))
            return false;
    if (n->any_of_n > 0) {
        bool any = false;
        for (size_t i = 0; i < n->any_of_n && !any; i++)
            any = eval_quiet(e, n->any_of[i], v);
        if (e->abort_rc != RC_OK)
            return false;
        if (!any)
            return fail(e, "does not match any of the anyOf schemas");
    }
    if (n->one_of_n > 0) {
        size_t first = SIZE_MAX;
        for (size_t i = 0; i < n->one_of_n; i++) {
            bool ok = eval_quiet(e, n->one_of[i], v);
            if (e->abort_rc != RC_OK)
                return false;
            if (ok && first != SIZE_MAX)
                return fail(e, "matches oneOf schemas %zu and %zu, only one is allowed",
                            first, i);
            if (ok)
                first = i;
        }
        if (first == SIZE_MAX)
            return fail(e, "does not match any of the oneOf schemas");
    }
    if (n->not_ != NULL) {
        bool ok = eval_quiet(e, n->not_, v);
        if (e->abort_rc != RC_OK)
            return false;
        if (ok)
            return fail(e, "must not match the \"not\" schema");
    }
    if (n->if_ != NULL) {
        bool cond = eval_quiet(e, n->if_, v);
        if (e->abort_rc != RC_OK)
            return false;
        const struct sn *branch = cond ? n->then_ : n->else_;
        if (branch != NULL && !eval(e, branch, v))
            return false;
    }
    return true;
}

static bool eval(struct ectx *e, const struct sn *n, const json_t *v)
{
    SCHEMA_ASSERT(n != NULL);
    SCHEMA_ASSERT(v != NULL);
    if (e->abort_rc != RC_OK)
        return false;
    if (e->steps <= 1)
        return halt(e, RC_SCHEMA, "validation exceeds its work limit");
    e->steps--;
    if (n->boolean >= 0)
        return n->boolean == 1 ? true : fail(e, "is not allowed (false schema)");
    if (e->depth >= NS_SCHEMA_EVAL_DEPTH_MAX)
        return halt(e, RC_SCHEMA, "schema evaluation nested too deeply");
    e->depth++;
    bool ok;
    if (n->ref != NULL) {
        ok = eval(e, n->ref, v);
    } else {
        ok = eval_type(e, n, v) && eval_enum_const(e, n, v);
        if (ok && json_is_number(v))
            ok = eval_number(e, n, v);
        else if (ok && json_is_string(v))
            ok = eval_string(e, n, v);
        else if (ok && json_is_array(v))
            ok = eval_array(e, n, v);
        else if (ok && json_is_object(v))
            ok = eval_object(e, n, v);
        ok = ok && eval_combinators(e, n, v);
    }
    e->depth--;
    return ok;
}

/* ------------------------------------------------------------------ public API */

static int verdict(char *where, size_t where_cap, char *why, size_t why_cap, const char *msg)
{
    if (where_cap > 0)
        where[0] = '\0';
    if (why_cap > 0)
        snprintf(why, why_cap, "%s", msg);
    return RC_SCHEMA;
}

int ns_schema_validate(const struct ns_schema *s, const char *value, size_t len, char *where,
                       size_t where_cap, char *why, size_t why_cap)
{
    SCHEMA_ASSERT(s != NULL && s->root != NULL);
    SCHEMA_ASSERT(value != NULL || len == 0);
    if (where_cap > 0)
        where[0] = '\0';
    if (why_cap > 0)
        why[0] = '\0';
    if (len > NS_SCHEMA_VALUE_MAX)
        return verdict(where, where_cap, why, why_cap, "value too large to validate");
    char reason[200];
    json_t *v = sn_json_decode(value, len, NS_SCHEMA_VALUE_DEPTH_MAX, reason, sizeof(reason));
    if (v == NULL && strncmp(reason, "nested", 6) == 0) {
        char msg[64];
        snprintf(msg, sizeof(msg), "value nested deeper than %u", NS_SCHEMA_VALUE_DEPTH_MAX);
        return verdict(where, where_cap, why, why_cap, msg);
    }
    if (v == NULL)
        return verdict(where, where_cap, why, why_cap, "value is not valid JSON");
    struct ectx *e = calloc(1, sizeof(*e));
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    pcre2_match_context *mctx = pcre2_match_context_create(NULL);
    if (e == NULL || md == NULL || mctx == NULL) {
        free(e);
        pcre2_match_data_free(md);
        pcre2_match_context_free(mctx);
        json_decref(v);
        return RC_NOMEM;
    }
    *e = (struct ectx){.s = s, .md = md, .mctx = mctx, .steps = NS_SCHEMA_STEPS_MAX,
                       .where = where, .why = why, .where_cap = where_cap, .why_cap = why_cap};
    pcre2_set_match_limit(mctx, NS_SCHEMA_MATCH_LIMIT);
    pcre2_set_depth_limit(mctx, NS_SCHEMA_MATCH_LIMIT / 10);
    pcre2_set_heap_limit(mctx, 8192); /* KiB */
    pcre2_set_callout(mctx, regex_callout, e);
    bool ok = eval(e, s->root, v);
    int rc = e->abort_rc != RC_OK ? e->abort_rc : ok ? RC_OK : RC_SCHEMA;
    SCHEMA_ASSERT(ok == (rc == RC_OK));
    SCHEMA_ASSERT(e->depth == 0 || e->abort_rc != RC_OK);
    pcre2_match_data_free(md);
    pcre2_match_context_free(mctx);
    free(e);
    json_decref(v);
    return rc;
}
