/*
 * schema.c - compiles a draft 7 JSON Schema document into a tree of struct sn (see
 * schema_internal.h) and checks that the schema itself is valid.
 *
 * Steps: (1) bound the text (size, nesting) before decoding; (2) decode with jansson
 * (duplicate member names refused); (3) compile the root and every subschema reachable
 * through keywords, recording $id resources and pending $refs; (4) resolve each $ref
 * against its base URI (RFC 3986 5.2) to a resource in this document plus a JSON pointer
 * or plain-name fragment, compiling targets outside the keyword tree on demand; (5) reject
 * cycles that apply a node to the same value again ($ref, allOf, ..., see below).
 *
 * Invariants: every node lives in the schema arena (bounded by NS_SCHEMA_MEM_MAX); one
 * json value is compiled at most once (a pointer map), so shared $ref targets share nodes;
 * every keyword is looked up by name, so member order in the text changes nothing.
 */
#include <stdarg.h>
#include <string.h>

#include "rc.h"
#include "schema_internal.h"

#define URI_MAX 2048u
#define PATH_MAX_LEN 512u
#define MAP_SLOTS (4u * NS_SCHEMA_NODES_MAX) /* power of two, load <= 1/4 */

struct id_entry { /* a $id: absolute URI (with fragment for anchors) -> value */
    const char *uri;
    const json_t *v;
    const char *base; /* base URI inside that resource */
};

struct ref_entry {
    struct sn *node;
    const char *uri;  /* absolute reference */
    const char *path; /* schema location of the $ref, for errors */
};

struct cctx {
    struct ns_schema *s;
    char *err;
    size_t err_cap;
    int rc;
    size_t nodes_n, keywords_n;
    struct sn **nodes;           /* every compiled node, NODES_MAX slots */
    const json_t **map_key;      /* pointer map json value -> node */
    struct sn **map_val;
    struct id_entry *ids;
    size_t ids_n;
    struct ref_entry *refs;
    size_t refs_n;
    char path[PATH_MAX_LEN];     /* JSON pointer of the schema location being compiled */
    size_t path_len;
};

/* ------------------------------------------------------------------ errors, arena */

static __attribute__((format(printf, 3, 4))) bool fail(struct cctx *c, int rc,
                                                       const char *fmt, ...)
{
    if (c->rc != RC_OK)
        return false;
    c->rc = rc;
    if (c->err_cap == 0)
        return false;
    int n = snprintf(c->err, c->err_cap, "schema at #%s: ", c->path);
    if (n < 0 || (size_t)n >= c->err_cap)
        return false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err + n, c->err_cap - (size_t)n, fmt, ap);
    va_end(ap);
    return false;
}

static void *arena_alloc(struct cctx *c, size_t size)
{
    struct ns_schema *s = c->s;
    size = (size + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    if (size == 0)
        size = sizeof(max_align_t);
    struct sn_block *b = s->arena;
    if (b == NULL || b->cap - b->used < size) {
        size_t cap = size > 16384 ? size : 16384;
        if (s->arena_bytes + cap > NS_SCHEMA_MEM_MAX) {
            fail(c, RC_TOOBIG, "compiled schema exceeds %u bytes", NS_SCHEMA_MEM_MAX);
            return NULL;
        }
        b = calloc(1, sizeof(*b) + cap);
        if (b == NULL) {
            fail(c, RC_NOMEM, "out of memory");
            return NULL;
        }
        b->cap = cap;
        b->next = s->arena;
        s->arena = b;
        s->arena_bytes += cap;
    }
    void *p = (char *)b->data + b->used;
    b->used += size;
    return p; /* zeroed: blocks come from calloc and are never reused */
}

static char *arena_strdup(struct cctx *c, const char *str)
{
    size_t n = strlen(str);
    char *p = arena_alloc(c, n + 1);
    if (p != NULL)
        memcpy(p, str, n + 1);
    return p;
}

/* ------------------------------------------------------------------ schema path */

static size_t path_push(struct cctx *c, const char *seg, size_t len)
{
    size_t saved = c->path_len;
    char *p = c->path + c->path_len;
    char *end = c->path + sizeof(c->path) - 5; /* room for "~1" and "..." */
    *p++ = '/';
    for (size_t i = 0; i < len && p < end; i++) {
        if (seg[i] == '~' || seg[i] == '/') {
            *p++ = '~';
            *p++ = seg[i] == '~' ? '0' : '1';
        } else {
            *p++ = seg[i] == '\0' ? '?' : seg[i];
        }
    }
    if (p >= end)
        memcpy(p - 3, "...", 3);
    *p = '\0';
    c->path_len = (size_t)(p - c->path);
    return saved;
}

static size_t path_push_index(struct cctx *c, size_t i)
{
    char buf[24];
    int n = snprintf(buf, sizeof(buf), "%zu", i);
    return path_push(c, buf, (size_t)n);
}

static void path_pop(struct cctx *c, size_t saved)
{
    c->path_len = saved;
    c->path[saved] = '\0';
}

/* ------------------------------------------------------------------ pointer map */

static size_t map_slot(const json_t *v)
{
    uintptr_t h = (uintptr_t)v;
    h ^= h >> 17;
    h *= 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 20) & (MAP_SLOTS - 1);
}

static struct sn *map_get(struct cctx *c, const json_t *v)
{
    for (size_t i = map_slot(v);; i = (i + 1) & (MAP_SLOTS - 1)) {
        if (c->map_key[i] == NULL)
            return NULL;
        if (c->map_key[i] == v)
            return c->map_val[i];
    }
}

static void map_put(struct cctx *c, const json_t *v, struct sn *n)
{
    size_t i = map_slot(v);
    while (c->map_key[i] != NULL)
        i = (i + 1) & (MAP_SLOTS - 1);
    c->map_key[i] = v;
    c->map_val[i] = n;
}

/* ------------------------------------------------------------------ small checks */

/* A non-negative integer keyword (2.0 counts as 2). Absent: SN_NO_LIMIT. */
static bool get_count(struct cctx *c, const json_t *o, const char *kw, uint64_t *out)
{
    const json_t *v = json_object_get(o, kw);
    *out = SN_NO_LIMIT;
    if (v == NULL)
        return true;
    if (!json_is_number(v) || !sn_is_integral(v) || json_number_value(v) < 0)
        return fail(c, RC_BADARG, "\"%s\" must be a non-negative integer", kw);
    if (json_is_integer(v))
        *out = (uint64_t)json_integer_value(v);
    else
        *out = json_real_value(v) >= 9.2e18 ? (uint64_t)INT64_MAX
                                            : (uint64_t)json_real_value(v);
    if (*out == SN_NO_LIMIT)
        (*out)--;
    return true;
}

static bool get_number(struct cctx *c, const json_t *o, const char *kw, const json_t **out)
{
    const json_t *v = json_object_get(o, kw);
    *out = v;
    if (v != NULL && !json_is_number(v))
        return fail(c, RC_BADARG, "\"%s\" must be a number", kw);
    return true;
}

static int name_cmp(const struct sn_name *a, const struct sn_name *b)
{
    size_t n = a->len < b->len ? a->len : b->len;
    int r = memcmp(a->s, b->s, n);
    if (r != 0)
        return r;
    return a->len < b->len ? -1 : a->len > b->len;
}

static int name_qcmp(const void *a, const void *b)
{
    return name_cmp(a, b);
}

/* An array of unique strings (required, dependencies) into a sorted name array. */
static bool get_names(struct cctx *c, const json_t *arr, const char *kw, struct sn_name **out,
                      size_t *out_n)
{
    size_t n = json_array_size(arr);
    if (!json_is_array(arr))
        return fail(c, RC_BADARG, "\"%s\" must be an array of strings", kw);
    struct sn_name *names = arena_alloc(c, (n ? n : 1) * sizeof(*names));
    if (names == NULL)
        return false;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(arr, i);
        if (!json_is_string(e))
            return fail(c, RC_BADARG, "\"%s\" must be an array of strings", kw);
        names[i].s = json_string_value(e);
        names[i].len = json_string_length(e);
    }
    qsort(names, n, sizeof(*names), name_qcmp);
    for (size_t i = 1; i < n; i++)
        if (name_cmp(&names[i - 1], &names[i]) == 0)
            return fail(c, RC_BADARG, "\"%s\" must not repeat a name", kw);
    *out = names;
    *out_n = n;
    return true;
}

static pcre2_code *compile_regex(struct cctx *c, const json_t *v, const char *kw)
{
    struct ns_schema *s = c->s;
    if (!json_is_string(v)) {
        fail(c, RC_BADARG, "\"%s\" must be a string", kw);
        return NULL;
    }
    size_t len = json_string_length(v);
    if (len > NS_SCHEMA_PATTERN_LEN_MAX) {
        fail(c, RC_TOOBIG, "regex longer than %u bytes", NS_SCHEMA_PATTERN_LEN_MAX);
        return NULL;
    }
    if (s->codes_n >= NS_SCHEMA_PATTERNS_MAX) {
        fail(c, RC_TOOBIG, "more than %u regexes", NS_SCHEMA_PATTERNS_MAX);
        return NULL;
    }
    int code = 0;
    PCRE2_SIZE off = 0;
    /* ECMA 262 flavour: '$' only at the very end, \uXXXX escapes, no \C. */
    /* Auto callouts let validation charge backtracking to its work budget (schema_eval.c). */
    uint32_t opts = PCRE2_UTF | PCRE2_DOLLAR_ENDONLY | PCRE2_ALT_BSUX |
                    PCRE2_NEVER_BACKSLASH_C | PCRE2_AUTO_CALLOUT;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)json_string_value(v), len, opts, &code, &off,
                                   NULL);
    if (re == NULL) {
        PCRE2_UCHAR msg[120];
        if (pcre2_get_error_message(code, msg, sizeof(msg)) < 0)
            strcpy((char *)msg, "error");
        fail(c, RC_BADARG, "\"%s\" is not a valid regex (offset %zu: %s)", kw, (size_t)off,
             (const char *)msg);
        return NULL;
    }
    if (s->codes_n == s->codes_cap) {
        size_t cap = s->codes_cap ? s->codes_cap * 2 : 8;
        pcre2_code **codes = realloc(s->codes, cap * sizeof(*codes));
        if (codes == NULL) {
            pcre2_code_free(re);
            fail(c, RC_NOMEM, "out of memory");
            return NULL;
        }
        s->codes = codes;
        s->codes_cap = cap;
    }
    s->codes[s->codes_n++] = re;
    return re;
}

/* ------------------------------------------------------------------ keywords */

static struct sn *compile_node(struct cctx *c, const json_t *v, const char *base,
                               unsigned depth);

/* Compiles o[kw] when present into *out (NULL when absent). */
static bool sub(struct cctx *c, const json_t *o, const char *kw, const char *base,
                unsigned depth, struct sn **out)
{
    const json_t *v = json_object_get(o, kw);
    *out = NULL;
    if (v == NULL)
        return true;
    size_t saved = path_push(c, kw, strlen(kw));
    *out = compile_node(c, v, base, depth + 1);
    path_pop(c, saved);
    return *out != NULL;
}

/* Compiles a non-empty array of schemas (allOf, anyOf, oneOf, items tuples). */
static bool sub_list(struct cctx *c, const json_t *o, const char *kw, const char *base,
                     unsigned depth, bool non_empty, struct sn ***out, size_t *out_n)
{
    const json_t *v = json_object_get(o, kw);
    *out = NULL;
    *out_n = 0;
    if (v == NULL)
        return true;
    if (!json_is_array(v) || (non_empty && json_array_size(v) == 0))
        return fail(c, RC_BADARG, "\"%s\" must be a%s array of schemas", kw,
                    non_empty ? " non-empty" : "n");
    size_t n = json_array_size(v);
    struct sn **list = arena_alloc(c, (n ? n : 1) * sizeof(*list));
    if (list == NULL)
        return false;
    size_t saved = path_push(c, kw, strlen(kw));
    for (size_t i = 0; i < n; i++) {
        size_t saved_i = path_push_index(c, i);
        list[i] = compile_node(c, json_array_get(v, i), base, depth + 2);
        path_pop(c, saved_i);
        if (list[i] == NULL)
            return false;
    }
    path_pop(c, saved);
    *out = list;
    *out_n = n;
    return true;
}

/* Compiles every member of an object of schemas (properties, definitions, ...); returns the
 * members sorted by name through out (may be NULL for definitions, which only compile). */
static bool sub_map(struct cctx *c, const json_t *o, const char *kw, const char *base,
                    unsigned depth, struct sn_prop **out, size_t *out_n)
{
    const json_t *v = json_object_get(o, kw);
    if (out != NULL) {
        *out = NULL;
        *out_n = 0;
    }
    if (v == NULL)
        return true;
    if (!json_is_object(v))
        return fail(c, RC_BADARG, "\"%s\" must be an object of schemas", kw);
    size_t n = json_object_size(v), i = 0;
    struct sn_prop *props = arena_alloc(c, (n ? n : 1) * sizeof(*props));
    if (props == NULL)
        return false;
    size_t saved = path_push(c, kw, strlen(kw));
    const char *key;
    size_t key_len;
    json_t *e;
    json_object_keylen_foreach((json_t *)v, key, key_len, e) {
        size_t saved_k = path_push(c, key, key_len);
        props[i].name.s = key;
        props[i].name.len = key_len;
        props[i].schema = compile_node(c, e, base, depth + 2);
        path_pop(c, saved_k);
        if (props[i++].schema == NULL)
            return false;
    }
    path_pop(c, saved);
    qsort(props, n, sizeof(*props), name_qcmp); /* name is the first member */
    if (out != NULL) {
        *out = props;
        *out_n = n;
    }
    return true;
}

static bool compile_type(struct cctx *c, struct sn *n, const json_t *o)
{
    static const char *const names[] = {"null",   "boolean", "object", "array",
                                        "number", "string",  "integer"};
    const json_t *v = json_object_get(o, "type");
    if (v == NULL)
        return true;
    size_t count = json_is_array(v) ? json_array_size(v) : 1;
    if (!json_is_string(v) && (!json_is_array(v) || count == 0))
        return fail(c, RC_BADARG, "\"type\" must be a type name or a non-empty array of them");
    for (size_t i = 0; i < count; i++) {
        const json_t *t = json_is_array(v) ? json_array_get(v, i) : v;
        uint32_t bit = 0;
        for (unsigned k = 0; k < sizeof(names) / sizeof(names[0]) && json_is_string(t); k++)
            if (json_string_length(t) == strlen(names[k]) &&
                strcmp(json_string_value(t), names[k]) == 0)
                bit = 1u << k;
        if (bit == 0)
            return fail(c, RC_BADARG, "\"type\" has an unknown type name");
        if (n->types & bit)
            return fail(c, RC_BADARG, "\"type\" repeats a type name");
        n->types |= bit;
    }
    return true;
}

static bool compile_scalars(struct cctx *c, struct sn *n, const json_t *o)
{
    if (!compile_type(c, n, o))
        return false;
    n->enum_vals = json_object_get(o, "enum");
    if (n->enum_vals != NULL && !json_is_array(n->enum_vals))
        return fail(c, RC_BADARG, "\"enum\" must be an array");
    n->const_val = json_object_get(o, "const");
    if (!get_number(c, o, "multipleOf", &n->multiple_of) ||
        !get_number(c, o, "minimum", &n->minimum) ||
        !get_number(c, o, "maximum", &n->maximum) ||
        !get_number(c, o, "exclusiveMinimum", &n->exclusive_minimum) ||
        !get_number(c, o, "exclusiveMaximum", &n->exclusive_maximum))
        return false;
    if (n->multiple_of != NULL && !(json_number_value(n->multiple_of) > 0))
        return fail(c, RC_BADARG, "\"multipleOf\" must be greater than 0");
    if (n->minimum != NULL && n->maximum != NULL && sn_num_cmp(n->minimum, n->maximum) > 0)
        return fail(c, RC_BADARG, "\"minimum\" is greater than \"maximum\"");
    if (!get_count(c, o, "minLength", &n->min_length) ||
        !get_count(c, o, "maxLength", &n->max_length))
        return false;
    if (n->max_length != SN_NO_LIMIT && n->min_length != SN_NO_LIMIT &&
        n->min_length > n->max_length)
        return fail(c, RC_BADARG, "\"minLength\" is greater than \"maxLength\"");
    const json_t *p = json_object_get(o, "pattern");
    if (p != NULL) {
        size_t saved = path_push(c, "pattern", 7);
        n->pattern = compile_regex(c, p, "pattern");
        path_pop(c, saved);
        if (n->pattern == NULL)
            return false;
        n->pattern_src.s = json_string_value(p);
        n->pattern_src.len = json_string_length(p);
    }
    const json_t *f = json_object_get(o, "format");
    if (f != NULL && !json_is_string(f))
        return fail(c, RC_BADARG, "\"format\" must be a string");
    if (f != NULL)
        n->format = sn_format_lookup(json_string_value(f), json_string_length(f));
    return true;
}

static bool compile_arrays(struct cctx *c, struct sn *n, const json_t *o, const char *base,
                           unsigned depth)
{
    if (!get_count(c, o, "minItems", &n->min_items) ||
        !get_count(c, o, "maxItems", &n->max_items))
        return false;
    if (n->max_items != SN_NO_LIMIT && n->min_items != SN_NO_LIMIT &&
        n->min_items > n->max_items)
        return fail(c, RC_BADARG, "\"minItems\" is greater than \"maxItems\"");
    const json_t *u = json_object_get(o, "uniqueItems");
    if (u != NULL && !json_is_boolean(u))
        return fail(c, RC_BADARG, "\"uniqueItems\" must be a boolean");
    n->unique_items = u != NULL && json_is_true(u);
    const json_t *items = json_object_get(o, "items");
    if (json_is_array(items)) {
        n->has_tuple = true;
        if (!sub_list(c, o, "items", base, depth, false, &n->tuple, &n->tuple_n))
            return false;
    } else if (!sub(c, o, "items", base, depth, &n->items)) {
        return false;
    }
    return sub(c, o, "additionalItems", base, depth, &n->additional_items) &&
           sub(c, o, "contains", base, depth, &n->contains);
}

static bool compile_pattern_props(struct cctx *c, struct sn *n, const json_t *o,
                                  const char *base, unsigned depth)
{
    const json_t *v = json_object_get(o, "patternProperties");
    if (v == NULL)
        return true;
    if (!json_is_object(v))
        return fail(c, RC_BADARG, "\"patternProperties\" must be an object of schemas");
    size_t cnt = json_object_size(v), i = 0;
    n->pats = arena_alloc(c, (cnt ? cnt : 1) * sizeof(*n->pats));
    if (n->pats == NULL)
        return false;
    size_t saved = path_push(c, "patternProperties", 17);
    const char *key;
    size_t key_len;
    json_t *e;
    json_object_keylen_foreach((json_t *)v, key, key_len, e) {
        size_t saved_k = path_push(c, key, key_len);
        json_t *ks = json_stringn_nocheck(key, key_len);
        if (ks == NULL)
            return fail(c, RC_NOMEM, "out of memory");
        struct sn_pat *pp = &n->pats[i++];
        pp->re = compile_regex(c, ks, "patternProperties");
        json_decref(ks);
        pp->src.s = key;
        pp->src.len = key_len;
        pp->schema = pp->re ? compile_node(c, e, base, depth + 2) : NULL;
        path_pop(c, saved_k);
        if (pp->schema == NULL)
            return false;
    }
    path_pop(c, saved);
    n->pats_n = cnt;
    qsort(n->pats, cnt, sizeof(*n->pats), name_qcmp); /* src is the first member */
    return true;
}

static bool compile_deps(struct cctx *c, struct sn *n, const json_t *o, const char *base,
                         unsigned depth)
{
    const json_t *v = json_object_get(o, "dependencies");
    if (v == NULL)
        return true;
    if (!json_is_object(v))
        return fail(c, RC_BADARG, "\"dependencies\" must be an object");
    size_t cnt = json_object_size(v), i = 0;
    n->deps = arena_alloc(c, (cnt ? cnt : 1) * sizeof(*n->deps));
    if (n->deps == NULL)
        return false;
    size_t saved = path_push(c, "dependencies", 12);
    const char *key;
    size_t key_len;
    json_t *e;
    json_object_keylen_foreach((json_t *)v, key, key_len, e) {
        struct sn_dep *d = &n->deps[i++];
        size_t saved_k = path_push(c, key, key_len);
        d->name.s = key;
        d->name.len = key_len;
        bool ok = json_is_array(e) ? get_names(c, e, "dependencies", &d->names, &d->names_n)
                                   : (d->schema = compile_node(c, e, base, depth + 2)) != NULL;
        path_pop(c, saved_k);
        if (!ok)
            return false;
    }
    path_pop(c, saved);
    n->deps_n = cnt;
    qsort(n->deps, cnt, sizeof(*n->deps), name_qcmp); /* name is the first member */
    return true;
}

static bool compile_objects(struct cctx *c, struct sn *n, const json_t *o, const char *base,
                            unsigned depth)
{
    if (!get_count(c, o, "minProperties", &n->min_props) ||
        !get_count(c, o, "maxProperties", &n->max_props))
        return false;
    if (n->max_props != SN_NO_LIMIT && n->min_props != SN_NO_LIMIT &&
        n->min_props > n->max_props)
        return fail(c, RC_BADARG, "\"minProperties\" is greater than \"maxProperties\"");
    const json_t *req = json_object_get(o, "required");
    if (req != NULL && !get_names(c, req, "required", &n->required, &n->required_n))
        return false;
    return sub_map(c, o, "properties", base, depth, &n->props, &n->props_n) &&
           compile_pattern_props(c, n, o, base, depth) &&
           sub(c, o, "additionalProperties", base, depth, &n->additional_props) &&
           sub(c, o, "propertyNames", base, depth, &n->property_names) &&
           compile_deps(c, n, o, base, depth);
}

static bool compile_combinators(struct cctx *c, struct sn *n, const json_t *o,
                                const char *base, unsigned depth)
{
    return sub_list(c, o, "allOf", base, depth, true, &n->all_of, &n->all_of_n) &&
           sub_list(c, o, "anyOf", base, depth, true, &n->any_of, &n->any_of_n) &&
           sub_list(c, o, "oneOf", base, depth, true, &n->one_of, &n->one_of_n) &&
           sub(c, o, "not", base, depth, &n->not_) && sub(c, o, "if", base, depth, &n->if_) &&
           sub(c, o, "then", base, depth, &n->then_) &&
           sub(c, o, "else", base, depth, &n->else_) &&
           sub_map(c, o, "definitions", base, depth, NULL, NULL) &&
           sub_map(c, o, "$defs", base, depth, NULL, NULL);
}

/* ------------------------------------------------------------------ $id and $ref */

static bool add_id(struct cctx *c, const char *uri, const json_t *v, const char *base)
{
    for (size_t i = 0; i < c->ids_n; i++)
        if (strcmp(c->ids[i].uri, uri) == 0)
            return c->ids[i].v == v ? true
                                    : fail(c, RC_BADARG, "\"$id\" \"%s\" is not unique", uri);
    if (c->ids_n >= NS_SCHEMA_NODES_MAX)
        return fail(c, RC_TOOBIG, "too many \"$id\"");
    char *u = arena_strdup(c, uri);
    if (u == NULL)
        return false;
    c->ids[c->ids_n++] = (struct id_entry){u, v, base};
    return true;
}

/* The base URI for o's subschemas given the parent's base; registers o's $id. Draft 7
 * (8.3): a $ref ignores its siblings, $id included. */
static const char *node_base(struct cctx *c, const json_t *o, const char *base)
{
    const json_t *id = json_object_get(o, "$id");
    if (id == NULL || json_object_get(o, "$ref") != NULL)
        return base;
    if (!json_is_string(id)) {
        fail(c, RC_BADARG, "\"$id\" must be a string");
        return NULL;
    }
    char abs[URI_MAX];
    if (!sn_uri_resolve(base, json_string_value(id), abs, sizeof(abs))) {
        fail(c, RC_TOOBIG, "\"$id\" longer than %u bytes", URI_MAX);
        return NULL;
    }
    char *hash = strchr(abs, '#');
    if (hash != NULL && hash[1] != '\0') { /* plain-name anchor "#foo": base unchanged */
        return add_id(c, abs, o, base) ? base : NULL;
    }
    if (hash != NULL)
        *hash = '\0';
    const char *nb = arena_strdup(c, abs);
    return nb != NULL && add_id(c, nb, o, nb) ? nb : NULL;
}

static bool compile_ref(struct cctx *c, struct sn *n, const json_t *ref, const char *base)
{
    if (!json_is_string(ref))
        return fail(c, RC_BADARG, "\"$ref\" must be a string");
    char abs[URI_MAX];
    if (!sn_uri_resolve(base, json_string_value(ref), abs, sizeof(abs)))
        return fail(c, RC_TOOBIG, "\"$ref\" longer than %u bytes", URI_MAX);
    if (c->refs_n >= NS_SCHEMA_NODES_MAX)
        return fail(c, RC_TOOBIG, "too many \"$ref\"");
    char *u = arena_strdup(c, abs);
    char *at = arena_strdup(c, c->path);
    if (u == NULL || at == NULL)
        return false;
    c->refs[c->refs_n++] = (struct ref_entry){n, u, at};
    return true;
}

static struct sn *compile_node(struct cctx *c, const json_t *v, const char *base,
                               unsigned depth)
{
    struct sn *n = map_get(c, v);
    if (n != NULL)
        return n;
    if (!json_is_object(v) && !json_is_boolean(v)) {
        fail(c, RC_BADARG, "a schema must be an object or a boolean");
        return NULL;
    }
    if (depth > NS_SCHEMA_DEPTH_MAX) {
        fail(c, RC_TOOBIG, "schema nested deeper than %u", NS_SCHEMA_DEPTH_MAX);
        return NULL;
    }
    if (c->nodes_n >= NS_SCHEMA_NODES_MAX) {
        fail(c, RC_TOOBIG, "more than %u subschemas", NS_SCHEMA_NODES_MAX);
        return NULL;
    }
    c->keywords_n += json_is_object(v) ? json_object_size(v) : 0;
    if (c->keywords_n > NS_SCHEMA_KEYWORDS_MAX) {
        fail(c, RC_TOOBIG, "more than %u keywords", NS_SCHEMA_KEYWORDS_MAX);
        return NULL;
    }
    n = arena_alloc(c, sizeof(*n));
    if (n == NULL)
        return NULL;
    n->src = v;
    n->boolean = json_is_boolean(v) ? json_is_true(v) : -1;
    n->min_length = n->max_length = n->min_items = n->max_items = SN_NO_LIMIT;
    n->min_props = n->max_props = SN_NO_LIMIT;
    map_put(c, v, n);
    c->nodes[c->nodes_n++] = n;
    if (n->boolean >= 0)
        return n;
    const char *nb = node_base(c, v, base);
    if (nb == NULL)
        return NULL;
    const json_t *ref = json_object_get(v, "$ref");
    if (ref != NULL) /* draft 7: siblings of $ref are ignored (definitions still compile) */
        return compile_ref(c, n, ref, nb) && sub_map(c, v, "definitions", nb, depth, NULL, NULL)
                   && sub_map(c, v, "$defs", nb, depth, NULL, NULL) ? n : NULL;
    if (!compile_scalars(c, n, v) || !compile_arrays(c, n, v, nb, depth) ||
        !compile_objects(c, n, v, nb, depth) || !compile_combinators(c, n, v, nb, depth))
        return NULL;
    return n;
}

/* Percent-decodes src[0..len) into out (cap bytes incl. NUL); false when malformed. */
static bool pct_decode(const char *src, size_t len, char *out, size_t cap, size_t *out_len)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (o + 1 >= cap)
            return false;
        if (src[i] != '%') {
            out[o++] = src[i];
            continue;
        }
        unsigned val = 0;
        for (int k = 1; k <= 2; k++) {
            char h = i + (size_t)k < len ? src[i + (size_t)k] : '\0';
            int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10
                  : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
            if (d < 0)
                return false;
            val = val * 16 + (unsigned)d;
        }
        out[o++] = (char)val;
        i += 2;
    }
    out[o] = '\0';
    *out_len = o;
    return true;
}

/* Follows the JSON pointer p[0..len) (RFC 6901, already percent-decoded) from v. */
static const json_t *pointer_get(const json_t *v, const char *p, size_t len)
{
    size_t i = 0;
    char seg[URI_MAX];
    while (i < len && v != NULL) {
        if (p[i] != '/')
            return NULL;
        size_t n = 0;
        for (i++; i < len && p[i] != '/'; i++) {
            char ch = p[i];
            if (ch == '~') {
                if (i + 1 >= len || (p[i + 1] != '0' && p[i + 1] != '1'))
                    return NULL;
                ch = p[++i] == '0' ? '~' : '/';
            }
            seg[n++] = ch;
        }
        if (json_is_object(v)) {
            v = json_object_getn(v, seg, n);
        } else if (json_is_array(v)) {
            size_t idx = 0;
            if (n == 0 || n > 9 || (n > 1 && seg[0] == '0'))
                return NULL;
            for (size_t k = 0; k < n; k++) {
                if (seg[k] < '0' || seg[k] > '9')
                    return NULL;
                idx = idx * 10 + (size_t)(seg[k] - '0');
            }
            v = json_array_get(v, idx);
        } else {
            return NULL;
        }
    }
    return v;
}

static const struct id_entry *find_id(const struct cctx *c, const char *uri)
{
    for (size_t i = 0; i < c->ids_n; i++)
        if (strcmp(c->ids[i].uri, uri) == 0)
            return &c->ids[i];
    return NULL;
}

/* Resolves one pending $ref: resource by URI, then fragment (pointer or anchor). */
static bool resolve_ref(struct cctx *c, struct ref_entry *r)
{
    char doc[URI_MAX], frag[URI_MAX];
    const char *hash = strchr(r->uri, '#');
    size_t doc_len = hash ? (size_t)(hash - r->uri) : strlen(r->uri);
    memcpy(doc, r->uri, doc_len);
    doc[doc_len] = '\0';
    snprintf(c->path, sizeof(c->path), "%s", r->path);
    c->path_len = strlen(c->path);
    const struct id_entry *res = find_id(c, doc);
    const json_t *target = NULL;
    const char *base = res ? res->base : "";
    size_t frag_len = 0;
    if (res != NULL && (hash == NULL || hash[1] == '\0')) {
        target = res->v;
    } else if (res != NULL && hash[1] == '/') {
        if (!pct_decode(hash + 1, strlen(hash + 1), frag, sizeof(frag), &frag_len))
            return fail(c, RC_BADARG, "\"$ref\" has a malformed %%-escape");
        target = pointer_get(res->v, frag, frag_len);
    } else if (res != NULL) {
        const struct id_entry *anchor = find_id(c, r->uri);
        target = anchor ? anchor->v : NULL;
        base = anchor ? anchor->base : base;
    }
    if (target == NULL)
        return fail(c, RC_BADARG, "\"$ref\" \"%s\" cannot be resolved within this document",
                    r->uri);
    r->node->ref = compile_node(c, target, base, 0);
    return r->node->ref != NULL;
}

/* Depth-first search over edges that apply a schema to the same value; a grey node met
 * again is a cycle that would never terminate (e.g. {"$ref": "#"} or a -> b -> a). */
static bool cycle_visit(struct cctx *c, struct sn *n)
{
    if (n->mark == 2)
        return true;
    if (n->mark == 1)
        return fail(c, RC_BADARG, "\"$ref\" cycle that never descends into the value");
    n->mark = 1;
    struct sn *one[5] = {n->ref, n->not_, n->if_, n->then_, n->else_};
    for (size_t i = 0; i < 5; i++)
        if (one[i] != NULL && !cycle_visit(c, one[i]))
            return false;
    struct sn **lists[3] = {n->all_of, n->any_of, n->one_of};
    size_t counts[3] = {n->all_of_n, n->any_of_n, n->one_of_n};
    for (size_t l = 0; l < 3; l++)
        for (size_t i = 0; i < counts[l]; i++)
            if (!cycle_visit(c, lists[l][i]))
                return false;
    for (size_t i = 0; i < n->deps_n; i++)
        if (n->deps[i].schema != NULL && !cycle_visit(c, n->deps[i].schema))
            return false;
    n->mark = 2;
    return true;
}

/* ------------------------------------------------------------------ decoding */

/* Nesting depth of arrays/objects in JSON text (strings skipped), stopping past max. */
static unsigned text_depth(const char *t, size_t len, unsigned max)
{
    unsigned depth = 0, deepest = 0;
    bool in_str = false;
    for (size_t i = 0; i < len && deepest <= max; i++) {
        char ch = t[i];
        if (in_str) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_str = false;
        } else if (ch == '"') {
            in_str = true;
        } else if (ch == '[' || ch == '{') {
            if (++depth > deepest)
                deepest = depth;
        } else if ((ch == ']' || ch == '}') && depth > 0) {
            depth--;
        }
    }
    return deepest;
}

json_t *sn_json_decode(const char *text, size_t len, unsigned depth_max, char *why,
                       size_t why_cap)
{
    if (text_depth(text, len, depth_max) > depth_max) {
        snprintf(why, why_cap, "nested deeper than %u", depth_max);
        return NULL;
    }
    json_error_t je;
    size_t flags = JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL;
    json_t *v = json_loadb(text, len, flags, &je);
    if (v == NULL && json_error_code(&je) == json_error_numeric_overflow) {
        /* An integer beyond int64 is still a JSON number: read every number as a double
         * (big integers lose precision, which docs/schema.md states). */
        v = json_loadb(text, len, flags | JSON_DECODE_INT_AS_REAL, &je);
    }
    if (v == NULL)
        snprintf(why, why_cap, "%s (line %d, column %d)", je.text, je.line, je.column);
    return v;
}

/* ------------------------------------------------------------------ public API */

static bool compile_all(struct cctx *c)
{
    struct ns_schema *s = c->s;
    if (!json_is_object(s->doc) && !json_is_boolean(s->doc))
        return fail(c, RC_BADARG, "a schema must be an object or a boolean");
    if (!add_id(c, "", s->doc, ""))
        return false;
    s->root = compile_node(c, s->doc, "", 0);
    if (s->root == NULL)
        return false;
    for (size_t i = 0; i < c->refs_n; i++) /* refs_n grows while targets compile */
        if (!resolve_ref(c, &c->refs[i]))
            return false;
    path_pop(c, 0);
    for (size_t i = 0; i < c->nodes_n; i++)
        if (!cycle_visit(c, c->nodes[i]))
            return false;
    return true;
}

int ns_schema_compile(const char *json, size_t len, struct ns_schema **out, char *err,
                      size_t err_cap)
{
    SCHEMA_ASSERT(out != NULL);
    SCHEMA_ASSERT(json != NULL || len == 0);
    *out = NULL;
    if (err_cap > 0)
        err[0] = '\0';
    struct cctx c = {.err = err, .err_cap = err_cap, .rc = RC_OK};
    if (len > NS_SCHEMA_TEXT_MAX) {
        fail(&c, RC_TOOBIG, "schema text longer than %u bytes", NS_SCHEMA_TEXT_MAX);
        return c.rc;
    }
    char why[200];
    json_t *doc = sn_json_decode(json, len, NS_SCHEMA_DEPTH_MAX, why, sizeof(why));
    if (doc == NULL && strncmp(why, "nested", 6) == 0) {
        fail(&c, RC_TOOBIG, "%s", why);
        return c.rc;
    }
    if (doc == NULL) {
        fail(&c, RC_BADARG, "not valid JSON: %s", why);
        return c.rc;
    }
    c.s = calloc(1, sizeof(*c.s));
    c.nodes = calloc(NS_SCHEMA_NODES_MAX, sizeof(*c.nodes));
    c.map_key = calloc(MAP_SLOTS, sizeof(*c.map_key));
    c.map_val = calloc(MAP_SLOTS, sizeof(*c.map_val));
    c.ids = calloc(NS_SCHEMA_NODES_MAX, sizeof(*c.ids));
    c.refs = calloc(NS_SCHEMA_NODES_MAX, sizeof(*c.refs));
    if (c.s == NULL || !c.nodes || !c.map_key || !c.map_val || !c.ids || !c.refs) {
        fail(&c, RC_NOMEM, "out of memory");
        json_decref(doc);
    } else {
        c.s->doc = doc;
        if (compile_all(&c))
            *out = c.s;
    }
    if (*out == NULL)
        ns_schema_free(c.s);
    free(c.nodes);
    free(c.map_key);
    free(c.map_val);
    free(c.ids);
    free(c.refs);
    SCHEMA_ASSERT((c.rc == RC_OK) == (*out != NULL));
    return c.rc;
}

void ns_schema_free(struct ns_schema *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->codes_n; i++)
        pcre2_code_free(s->codes[i]);
    free(s->codes);
    for (struct sn_block *b = s->arena, *next; b != NULL; b = next) {
        next = b->next;
        free(b);
    }
    json_decref(s->doc);
    free(s);
}
