/*
 * test_ns_gov.c - governance in the state machine (issue 5): schemas attached to key
 * patterns (refused writes change nothing, most specific match, schema validation, existing
 * keys, persistence), pinned snapshots (ids, limits, pins keep history from pruning) and
 * rollback (restores exactly an earlier full listing, is one revision, DRYRUN changes
 * nothing, refusals by schema name the keys, compacted targets), plus determinism.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ns/ns.h"
#include "ns/ns_internal.h"
#include "persist/pst.h"
#include "rc.h"

/* ------------------------------------------------------------------ fixture */

struct fx {
    struct pst_engine *e;
    struct ns *n;
    uint64_t index;
    struct ns_limits lim;
};
static struct fx F;

static void open_ns(void)
{
    ns_close(F.n);
    F.n = NULL;
    cr_assert_eq(ns_open(F.e, 1, &F.lim, &F.n), RC_OK);
}

static void setup(void)
{
    memset(&F, 0, sizeof(F));
    cr_assert_eq(pst_open_mem(&F.e), RC_OK);
    ns_limits_default(&F.lim);
    open_ns();
}

static void teardown(void)
{
    ns_close(F.n);
    if (F.e)
        pst_close(F.e);
    memset(&F, 0, sizeof(F));
}

TestSuite(gov, .init = setup, .fini = teardown);

/* Render a reply as compact text: +S -ERR... :n "bulk" nil [a, b] {k: v}. */
static void fmt(const struct ns_reply *r, char *buf, size_t cap, size_t *o)
{
#define PUT(...) (*o += (size_t)snprintf(buf + *o, *o < cap ? cap - *o : 0, __VA_ARGS__))
    switch (r->type) {
    case NS_R_STATUS: PUT("+%s", r->str); break;
    case NS_R_ERR: PUT("-%s %s", rc_prefix(r->rc), r->str); break;
    case NS_R_INT: PUT(":%lld", r->i); break;
    case NS_R_BULK: PUT("\"%.*s\"", (int)r->len, r->str); break;
    case NS_R_NULL: PUT("nil"); break;
    case NS_R_ARRAY:
    case NS_R_MAP: {
        bool map = r->type == NS_R_MAP;
        size_t n = map ? 2 * r->n : r->n;
        PUT(map ? "{" : "[");
        for (size_t i = 0; i < n; i++) {
            if (i)
                PUT(map && i % 2 ? ": " : ", ");
            fmt(&r->elem[i], buf, cap, o);
        }
        PUT(map ? "}" : "]");
        break;
    }
    default: PUT("?%d", r->type);
    }
#undef PUT
}

/* Apply a command (NULL-terminated words) as the next entry; return the reply as text
 * (static buffer). */
static const char *ap_(const char *const *w)
{
    static char buf[1 << 16];
    const char *argv[64];
    size_t lens[64];
    int argc = 0;
    for (; w[argc]; argc++) {
        argv[argc] = w[argc];
        lens[argc] = strlen(w[argc]);
    }
    struct ns_meta m = {++F.index, 1, F.index * 10, F.index, "alice", "127.0.0.1:1"};
    struct ns_reply r;
    memset(&r, 0, sizeof(r));
    cr_assert_eq(ns_apply(F.n, &m, argc, (char **)argv, lens, &r), RC_OK, "%s", w[0]);
    size_t o = 0;
    buf[0] = '\0';
    fmt(&r, buf, sizeof(buf), &o);
    ns_reply_clear(&r);
    return buf;
}
#define AP(...) ap_((const char *const[]){__VA_ARGS__, NULL})
#define EXPECT(want, ...)                                                                  \
    do {                                                                                   \
        const char *got_ = AP(__VA_ARGS__);                                                \
        cr_assert_str_eq(got_, (want), "got %s", got_);                                    \
    } while (0)
#define EXPECT_PREFIX(want, ...)                                                           \
    do {                                                                                   \
        const char *got_ = AP(__VA_ARGS__);                                                \
        cr_assert(strncmp(got_, (want), strlen(want)) == 0, "got %s, want prefix %s",    \
                  got_, (want));                                                           \
    } while (0)

/* The whole group's keys and values as one string "k=v;k=v;...". */
static bool listing_visit(void *ud, const struct ns_kv *kv)
{
    char *s = ud;
    size_t o = strlen(s);
    snprintf(s + o, 8192 - o, "%.*s=%.*s;", (int)kv->klen, kv->key, (int)kv->vlen, kv->value);
    return true;
}
static char *listing(const char *prefix)
{
    char *s = calloc(1, 8192);
    cr_assert_eq(ns_scan(F.n, prefix, strlen(prefix), NULL, 0, 0, true, listing_visit, s,
                         NULL, NULL), RC_OK);
    return s;
}

static const char *get(const char *key)
{
    static char buf[512];
    struct ns_kv kv;
    int rc = ns_get(F.n, key, strlen(key), &kv);
    if (rc == RC_NOTFOUND)
        return "nil";
    cr_assert_eq(rc, RC_OK);
    snprintf(buf, sizeof buf, "%.*s", (int)kv.vlen, kv.value);
    ns_kv_clear(&kv);
    return buf;
}

static const char *PORT_SCHEMA =
    "{\"type\":\"object\",\"required\":[\"port\"],"
    "\"properties\":{\"port\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":100}}}";

/* ------------------------------------------------------------------ patterns */

Test(gov, pattern_syntax_and_matching)
{
    struct { const char *pat, *key; bool m; } cases[] = {
        {"/env/*/payments/*.json", "/env/prod/payments/a.json", true},
        {"/env/*/payments/*.json", "/env/prod/eu/payments/a.json", false}, /* * stops at / */
        {"/env/**.json", "/env/prod/eu/payments/a.json", true},          /* ** crosses / */
        {"/env/*/payments/*.json", "/env/prod/payments/a.yaml", false},
        {"/env/", "/env/prod/x", true},                                   /* prefix */
        {"/env/", "/env", false},
        {"/env/*/", "/env/prod/x/y", true},                               /* glob prefix */
        {"/env/*/", "/env/prod", false},
        {"/app/port", "/app/port", true},                                 /* exact */
        {"/app/port", "/app/port2", false},
        {"/a/?", "/a/b", true},
        {"/a/?", "/a//", false},
        {"/a/[a-c]x", "/a/bx", true},
        {"/a/[!a-c]x", "/a/dx", true},
        {"/a/[!a-c]x", "/a/bx", false},
        {"/a/[!a-c]x", "/a//x", false},                                   /* never '/' */
        {"/a/\\*", "/a/*", true},
        {"/a/\\*", "/a/b", false},
        {"*", "", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cr_assert_eq(ns_pattern_match(cases[i].pat, strlen(cases[i].pat), cases[i].key,
                                      strlen(cases[i].key)),
                     cases[i].m, "%s vs %s", cases[i].pat, cases[i].key);
    char err[128];
    cr_assert_eq(ns_pattern_check("/a/[bc", 6, err, sizeof err), RC_BADARG);
    cr_assert(strstr(err, "[...]") != NULL, "%s", err);
    cr_assert_eq(ns_pattern_check("/a/\\", 4, err, sizeof err), RC_BADARG);
    cr_assert_eq(ns_pattern_check("", 0, err, sizeof err), RC_BADARG);
    cr_assert_eq(ns_pattern_check("/a/[z-a]", 8, err, sizeof err), RC_BADARG);
    /* A pathological pattern on a long key stays linear (no backtracking blow-up). */
    char key[4001];
    memset(key, 'a', 4000);
    key[4000] = '\0';
    const char *evil = "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b";
    cr_assert(!ns_pattern_match(evil, strlen(evil), key, 4000));
}

/* ------------------------------------------------------------------ schemas */

Test(gov, refused_write_changes_nothing)
{
    EXPECT("+OK", "CFG.SCHEMA.SET", "/app/*.json", PORT_SCHEMA);
    uint64_t rev = ns_revision(F.n);
    uint64_t keys = ns_key_count(F.n);
    EXPECT("-SCHEMA /port: must be <= 100 (key /app/a.json, schema /app/*.json)", "SET",
           "/app/a.json", "{\"port\":200}");
    EXPECT("-SCHEMA : value is not valid JSON (key /app/a.json, schema /app/*.json)",
           "CFG.SET", "/app/a.json", "port=1");
    EXPECT("-SCHEMA : missing required property \"port\" (key /app/b.json, schema /app/*.json)",
           "MSET", "/app/ok", "x", "/app/a.json", "{\"port\":5}", "/app/b.json", "{}");
    cr_assert_eq(ns_revision(F.n), rev, "refused writes do not advance the revision");
    cr_assert_eq(ns_key_count(F.n), keys);
    cr_assert_str_eq(get("/app/ok"), "nil", "MSET is all or nothing");
    cr_assert_str_eq(get("/app/a.json"), "nil");
    struct ns_kv kv;
    uint64_t oldest = 0;
    cr_assert_eq(ns_get_at(F.n, "/app/a.json", 11, rev, &kv, &oldest), RC_NOTFOUND);
    /* Conforming values, and keys no pattern matches, are accepted. */
    EXPECT("+OK", "SET", "/app/a.json", "{\"port\":100}");
    EXPECT("+OK", "SET", "/app/sub/a.json", "not json: '*' does not cross '/'");
    EXPECT("+OK", "SET", "/app/a.yaml", "port: 1");
    EXPECT("nil", "SET", "/app/a.json", "{\"port\":0}", "NX"); /* NX not met: no check */
    EXPECT("-SCHEMA /port: must be >= 1 (key /app/a.json, schema /app/*.json)", "SET",
           "/app/a.json", "{\"port\":0}", "XX");
    cr_assert_str_eq(get("/app/a.json"), "{\"port\":100}");
}

Test(gov, most_specific_schema_applies)
{
    EXPECT("+OK", "CFG.SCHEMA.SET", "/env/", "{\"type\":\"string\"}");
    EXPECT("+OK", "CFG.SCHEMA.SET", "/env/*/payments/*.json", "{\"type\":\"object\"}");
    EXPECT("+OK", "CFG.SCHEMA.SET", "/env/prod/payments/", "{\"type\":\"array\"}");
    EXPECT("+OK", "CFG.SCHEMA.SET", "/env/prod/payments/*.json", "{\"type\":\"integer\"}");
    EXPECT("+OK", "CFG.SCHEMA.SET", "/env/prod/payments/limits.json", "{\"type\":\"null\"}");
    struct { const char *key, *pat; } want[] = {
        {"/env/x", "/env/"},
        {"/env/dev/payments/a.json", "/env/*/payments/*.json"},
        {"/env/prod/payments/a.json", "/env/prod/payments/*.json"},
        {"/env/prod/payments/limits.json", "/env/prod/payments/limits.json"},
        {"/env/prod/payments/a.yaml", "/env/prod/payments/"},
        {"/env/prod/payments/sub/a.json", "/env/prod/payments/"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char *pat = NULL;
        size_t plen = 0;
        cr_assert_eq(ns_schema_for_key(F.n, want[i].key, strlen(want[i].key), &pat, &plen),
                     RC_OK);
        cr_assert_str_eq(pat, want[i].pat, "key %s", want[i].key);
        free(pat);
    }
    /* /env/dev/...: the prefix "/env/" and the glob of the payments files both have a
     * literal prefix of 5 bytes: at equal literal length a whole-key pattern wins. */
    EXPECT_PREFIX("-SCHEMA : must be of type object", "SET", "/env/dev/payments/a.json", "\"s\"");
    EXPECT("+OK", "SET", "/env/dev/payments/a.json", "{}");
    EXPECT("+OK", "SET", "/env/prod/payments/a.json", "7");
    EXPECT("+OK", "SET", "/env/prod/payments/limits.json", "null");
    EXPECT("+OK", "SET", "/env/x", "\"str\"");
    char *pat = NULL;
    size_t plen = 0;
    cr_assert_eq(ns_schema_for_key(F.n, "/other", 6, &pat, &plen), RC_NOTFOUND);
    /* Deleting the most specific one hands the key to the next. */
    EXPECT(":1", "CFG.SCHEMA.DEL", "/env/prod/payments/*.json");
    EXPECT(":0", "CFG.SCHEMA.DEL", "/env/prod/payments/*.json");
    EXPECT_PREFIX("-SCHEMA : must be of type array", "SET", "/env/prod/payments/a.json", "7");
}

Test(gov, schema_set_validates_the_schema_and_pattern)
{
    uint64_t rev = ns_revision(F.n);
    EXPECT_PREFIX("-ERR invalid schema: ", "CFG.SCHEMA.SET", "/a/", "{\"type\":\"strin\"}");
    EXPECT_PREFIX("-ERR invalid schema: ", "CFG.SCHEMA.SET", "/a/", "{not json");
    EXPECT_PREFIX("-ERR invalid schema: ", "CFG.SCHEMA.SET", "/a/", "{\"minimum\":\"1\"}");
    EXPECT_PREFIX("-ERR invalid pattern: ", "CFG.SCHEMA.SET", "/a/[x", "{}");
    EXPECT("-ERR syntax error", "CFG.SCHEMA.SET", "/a/", "{}", "FORCEFULLY");
    cr_assert_eq(ns_revision(F.n), rev, "a refused schema is not a revision");
    char *text = NULL;
    size_t tlen = 0;
    cr_assert_eq(ns_schema_get(F.n, "/a/", 3, &text, &tlen), RC_NOTFOUND);
}

static bool count_pat(void *ud, const char *p, size_t plen, const char *t, size_t tlen)
{
    (void)p, (void)plen, (void)t, (void)tlen;
    (*(int *)ud)++;
    return true;
}

Test(gov, schema_refused_when_existing_keys_violate_unless_force)
{
    EXPECT("+OK", "SET", "/svc/a", "{\"port\":500}");
    EXPECT("+OK", "SET", "/svc/b", "{\"port\":5}");
    EXPECT("+OK", "SET", "/svc/c", "nope");
    EXPECT("+OK", "SET", "/other/d", "nope");
    uint64_t rev = ns_revision(F.n);
    EXPECT("-SCHEMA 2 existing keys would violate the schema (use FORCE to set it anyway): "
           "/svc/a (/port: must be <= 100); /svc/c (: value is not valid JSON)",
           "CFG.SCHEMA.SET", "/svc/*", PORT_SCHEMA);
    cr_assert_eq(ns_revision(F.n), rev);
    char *text = NULL;
    size_t tlen = 0;
    cr_assert_eq(ns_schema_get(F.n, "/svc/*", 6, &text, &tlen), RC_NOTFOUND);
    AP("CFG.SET", "/svc/c", "2", "IFVERSION", "1");
    EXPECT("+OK", "CFG.SCHEMA.SET", "/svc/*", PORT_SCHEMA, "FORCE");
    cr_assert_eq(ns_revision(F.n), rev + 2, "CFG.SET and the schema change are revisions");
    cr_assert_eq(ns_schema_get(F.n, "/svc/*", 6, &text, &tlen), RC_OK);
    cr_assert_str_eq(text, PORT_SCHEMA);
    free(text);
    int cnt = 0;
    cr_assert_eq(ns_schema_list(F.n, "/s", 2, count_pat, &cnt), RC_OK);
    cr_assert_eq(cnt, 1);
    cnt = 0;
    cr_assert_eq(ns_schema_list(F.n, "/o", 2, count_pat, &cnt), RC_OK);
    cr_assert_eq(cnt, 0);
    /* A key governed by a more specific schema is not checked against the new one. */
    EXPECT("+OK", "CFG.SCHEMA.SET", "/other/d", "{\"type\":\"string\"}", "FORCE");
    EXPECT("+OK", "SET", "/other/d", "\"ok\"");
    EXPECT("+OK", "CFG.SCHEMA.SET", "/other/", "{\"type\":\"integer\"}");
}

Test(gov, schemas_survive_reopen)
{
    EXPECT("+OK", "CFG.SCHEMA.SET", "/app/", PORT_SCHEMA);
    open_ns();
    EXPECT_PREFIX("-SCHEMA /port: must be <= 100", "SET", "/app/x", "{\"port\":101}");
    EXPECT("+OK", "SET", "/app/x", "{\"port\":99}");
    EXPECT(":1", "CFG.SCHEMA.DEL", "/app/");
    open_ns();
    EXPECT("+OK", "SET", "/app/x", "anything");
}

/* ------------------------------------------------------------------ snapshots */

static bool collect_snap(void *ud, const struct ns_snapshot *s)
{
    char *o = ud;
    size_t l = strlen(o);
    snprintf(o + l, 1024 - l, "%llu@%llu:%.*s:%.*s:%.*s;", (unsigned long long)s->id,
             (unsigned long long)s->revision, (int)s->prefix_len, s->prefix,
             (int)s->label_len, s->label ? s->label : "", (int)s->actor_len, s->actor);
    return true;
}

Test(gov, snapshot_ids_listing_and_limit)
{
    F.lim.snapshots_max = 3;
    open_ns();
    EXPECT("+OK", "SET", "/a/x", "1");
    EXPECT(":1", "CFG.SNAPSHOT", "/a/", "LABEL", "good");
    cr_assert_eq(ns_revision(F.n), 2, "a snapshot is a revision of its own");
    EXPECT(":2", "CFG.SNAPSHOT", "/b/");
    EXPECT(":3", "CFG.SNAPSHOT", "/a/sub/");
    EXPECT("-ERR too many snapshots (limit 3 per group); delete some with CFG.SNAPSHOT.DEL",
           "CFG.SNAPSHOT", "/a/");
    EXPECT(":1", "CFG.SNAPSHOT.DEL", "2");
    EXPECT(":0", "CFG.SNAPSHOT.DEL", "2");
    EXPECT(":0", "CFG.SNAPSHOT.DEL", "99");
    EXPECT("-ERR value is not an integer or out of range", "CFG.SNAPSHOT.DEL", "x");
    EXPECT(":4", "CFG.SNAPSHOT", "/a/", "LABEL", "again"); /* ids are never reused */
    char buf[1024] = "";
    cr_assert_eq(ns_snapshots(F.n, "/a/", 3, collect_snap, buf), RC_OK);
    cr_assert_str_eq(buf, "1@2:/a/:good:alice;3@4:/a/sub/::alice;4@6:/a/:again:alice;");
    F.lim.snapshots_max = 0; /* the default, 1000 */
    open_ns();               /* the counter and pins come back from the store */
    EXPECT(":5", "CFG.SNAPSHOT", "/c/");
    cr_assert_eq(ns_snapshot_count(F.n), 4);
    cr_assert_eq(ns_history_pin_rev(F.n), 2);
}

Test(gov, pinned_snapshot_keeps_history_from_pruning)
{
    F.lim.history_max_versions = 2;
    open_ns();
    EXPECT("+OK", "SET", "/p/k", "v1");       /* rev 1 */
    EXPECT(":1", "CFG.SNAPSHOT", "/p/");      /* rev 2 pins 2 */
    for (int i = 2; i <= 6; i++) {
        char v[16];
        snprintf(v, sizeof v, "v%d", i);
        AP("SET", "/p/k", v);
        AP("SET", "/q/k", v); /* other prefixes are kept too: pins are group-wide */
    }
    struct ns_kv kv;
    uint64_t oldest = 0;
    cr_assert_eq(ns_get_at(F.n, "/p/k", 4, 2, &kv, &oldest), RC_OK);
    cr_assert_eq(kv.vlen, 2);
    cr_assert(memcmp(kv.value, "v1", 2) == 0);
    ns_kv_clear(&kv);
    cr_assert_eq(ns_compact_revision(F.n), 0, "nothing a pinned read needs was pruned");
    /* Unpinned: the next write prunes down to the limit. */
    EXPECT(":1", "CFG.SNAPSHOT.DEL", "1");
    AP("SET", "/p/k", "v7");
    cr_assert_eq(ns_get_at(F.n, "/p/k", 4, 2, &kv, &oldest), RC_COMPACTED);
}

/* ------------------------------------------------------------------ rollback */

/* A scenario: a snapshot of /cfg/, then sets, deletes, creations and a schema change. */
static char *scenario(void)
{
    AP("SET", "/cfg/a", "{\"port\":1}");
    AP("SET", "/cfg/b", "{\"port\":2}");
    AP("SET", "/cfg/c", "{\"port\":3}");
    AP("SET", "/cfg/sub/d", "{\"port\":4}");
    AP("SET", "/keep/x", "1");
    char *before = listing("/cfg/");
    EXPECT(":1", "CFG.SNAPSHOT", "/cfg/", "LABEL", "release-41");
    AP("SET", "/cfg/a", "{\"port\":10}");
    AP("SET", "/cfg/a", "{\"port\":11}");
    AP("DEL", "/cfg/b");
    AP("MSET", "/cfg/new", "{\"port\":5}", "/cfg/sub/d", "{\"port\":40}");
    AP("CFG.SCHEMA.SET", "/cfg/", "{\"type\":\"object\"}");
    AP("SET", "/keep/x", "2");
    return before;
}

Test(gov, rollback_restores_the_exact_earlier_listing_in_one_revision)
{
    char *before = scenario();
    uint64_t rev = ns_revision(F.n);
    char *after_dry = NULL;
    const char *dry = AP("CFG.ROLLBACK", "/cfg/", "DRYRUN");
    char *dry_copy = strdup(dry);
    cr_assert_eq(ns_revision(F.n), rev, "DRYRUN changes nothing");
    after_dry = listing("/cfg/");
    cr_assert_str_neq(after_dry, before);
    const char *real = AP("CFG.ROLLBACK", "/cfg/", "REASON", "bad release");
    cr_assert_str_eq(real, dry_copy, "DRYRUN answers exactly what the rollback does");
    cr_assert_str_eq(real,
                     "[{\"key\": \"/cfg/a\", \"action\": \"restore\", \"from_version\": :3, "
                     "\"from_revision\": :8, \"to_revision\": :1}, "
                     "{\"key\": \"/cfg/b\", \"action\": \"recreate\", \"from_version\": :0, "
                     "\"from_revision\": :0, \"to_revision\": :2}, "
                     "{\"key\": \"/cfg/new\", \"action\": \"delete\", \"from_version\": :1, "
                     "\"from_revision\": :10, \"to_revision\": :0}, "
                     "{\"key\": \"/cfg/sub/d\", \"action\": \"restore\", \"from_version\": :2, "
                     "\"from_revision\": :10, \"to_revision\": :4}]");
    cr_assert_eq(ns_revision(F.n), rev + 1, "the rollback is one revision");
    char *after = listing("/cfg/");
    cr_assert_str_eq(after, before);
    cr_assert_str_eq(get("/keep/x"), "2", "keys outside the prefix are untouched");
    /* A second rollback to the same snapshot has nothing to do. */
    EXPECT("[]", "CFG.ROLLBACK", "/cfg/", "TO", "1");
    free(before);
    free(after);
    free(after_dry);
    free(dry_copy);
}

Test(gov, rollback_to_a_revision_and_sub_prefix)
{
    AP("SET", "/r/a", "1");  /* rev 1 */
    AP("SET", "/r/b/x", "1"); /* rev 2 */
    AP("SET", "/r/a", "2");  /* rev 3 */
    AP("SET", "/r/b/x", "2"); /* rev 4 */
    EXPECT_PREFIX("[{\"key\": \"/r/b/x\", \"action\": \"restore\"", "CFG.ROLLBACK", "/r/b/",
                  "REV", "2");
    cr_assert_str_eq(get("/r/b/x"), "1");
    cr_assert_str_eq(get("/r/a"), "2");
    EXPECT_PREFIX("[{\"key\": \"/r/a\", \"action\": \"delete\"", "CFG.ROLLBACK", "/r/", "REV",
                  "0");
    cr_assert_eq(ns_key_count(F.n), 0);
    EXPECT("-ERR revision 99 is in the future; current revision is 6", "CFG.ROLLBACK", "/r/",
           "REV", "99");
    EXPECT("-ERR no snapshot covers prefix '/r/'; give TO id or REV revision", "CFG.ROLLBACK",
           "/r/");
    EXPECT(":1", "CFG.SNAPSHOT", "/r/b/");
    EXPECT("-ERR snapshot 1 pins prefix '/r/b/', which does not cover '/r/'", "CFG.ROLLBACK",
           "/r/", "TO", "1");
    EXPECT("-ERR no snapshot 7", "CFG.ROLLBACK", "/r/", "TO", "7");
    EXPECT("-ERR syntax error", "CFG.ROLLBACK", "/r/", "TO", "1", "REV", "2");
    EXPECT("-ERR syntax error", "CFG.ROLLBACK", "/r/", "SOON");
}

Test(gov, rollback_refused_by_todays_schema_names_the_keys)
{
    AP("SET", "/s/a", "{\"port\":500}");
    AP("SET", "/s/b", "{\"port\":600}");
    AP("SET", "/s/c", "{\"port\":7}");
    EXPECT(":1", "CFG.SNAPSHOT", "/s/");
    AP("SET", "/s/a", "{\"port\":50}");
    AP("SET", "/s/b", "{\"port\":60}");
    AP("DEL", "/s/c");
    EXPECT("+OK", "CFG.SCHEMA.SET", "/s/*", PORT_SCHEMA);
    uint64_t rev = ns_revision(F.n);
    char *before = listing("/s/");
    EXPECT("-SCHEMA rollback refused: 2 restored keys violate today's schema: "
           "/s/a (/port: must be <= 100); /s/b (/port: must be <= 100)",
           "CFG.ROLLBACK", "/s/");
    EXPECT_PREFIX("-SCHEMA rollback refused", "CFG.ROLLBACK", "/s/", "DRYRUN");
    cr_assert_eq(ns_revision(F.n), rev);
    char *after = listing("/s/");
    cr_assert_str_eq(after, before, "a refused rollback changes nothing");
    free(before);
    free(after);
}

Test(gov, rollback_to_a_compacted_revision_fails)
{
    F.lim.history_max_versions = 1;
    open_ns();
    AP("SET", "/c/k", "1"); /* rev 1 */
    AP("SET", "/c/k", "2"); /* rev 2: prunes version 1 */
    AP("SET", "/c/k", "3");
    EXPECT("-COMPACTED oldest=3", "CFG.ROLLBACK", "/c/", "REV", "1");
    cr_assert_str_eq(get("/c/k"), "3");
}

Test(gov, rollback_limit_on_keys)
{
    F.lim.rollback_keys_max = 3;
    open_ns();
    EXPECT(":1", "CFG.SNAPSHOT", "/m/");
    AP("MSET", "/m/a", "1", "/m/b", "1", "/m/c", "1", "/m/d", "1");
    EXPECT("-ERR more than 3 keys under the prefix changed since revision 1 "
           "(rollback-max-keys)",
           "CFG.ROLLBACK", "/m/");
    cr_assert_eq(ns_key_count(F.n), 4);
}

Test(gov, binary_keys_with_zero_bytes_roll_back)
{
    const char *argv[3];
    size_t lens[3];
    struct ns_reply r;
    AP("SET", "/z/a", "1");
    EXPECT(":1", "CFG.SNAPSHOT", "/z/");
    argv[0] = "SET", lens[0] = 3;
    argv[1] = "/z/a\0b", lens[1] = 6;
    argv[2] = "x", lens[2] = 1;
    struct ns_meta m = {++F.index, 1, 0, F.index, "a", "c"};
    memset(&r, 0, sizeof r);
    cr_assert_eq(ns_apply(F.n, &m, 3, (char **)argv, lens, &r), RC_OK);
    ns_reply_clear(&r);
    AP("SET", "/z/a", "2");
    AP("CFG.ROLLBACK", "/z/");
    cr_assert_eq(ns_key_count(F.n), 1);
    cr_assert_str_eq(get("/z/a"), "1");
}

/* Two engines, the same entries: byte-identical stores (schemas, pins, rollback). */
static bool dump_visit(struct pst_engine *e, char **out, size_t *len)
{
    struct pst_iter *it = pst_iter_new(e, NULL, "g", 1, "h", 1);
    cr_assert_not_null(it);
    size_t cap = 1 << 20;
    *out = malloc(cap);
    *len = 0;
    for (; pst_iter_valid(it); pst_iter_next(it)) {
        size_t kl = 0, vl = 0;
        const void *k = pst_iter_key(it, &kl);
        const void *v = pst_iter_value(it, &vl);
        cr_assert_lt(*len + kl + vl, cap);
        memcpy(*out + *len, k, kl);
        *len += kl;
        memcpy(*out + *len, v, vl);
        *len += vl;
    }
    pst_iter_free(it);
    return true;
}

Test(gov, deterministic_across_replicas)
{
    char *d[2];
    size_t l[2];
    for (int i = 0; i < 2; i++) {
        if (i) {
            teardown();
            setup();
        }
        free(scenario());
        AP("CFG.ROLLBACK", "/cfg/");
        AP("CFG.SNAPSHOT.DEL", "1");
        dump_visit(F.e, &d[i], &l[i]);
    }
    cr_assert_eq(l[0], l[1]);
    cr_assert(memcmp(d[0], d[1], l[0]) == 0);
    free(d[0]);
    free(d[1]);
}
