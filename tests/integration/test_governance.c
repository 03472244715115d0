/*
 * test_governance.c - schemas, snapshots and rollback through the real server (issue 5):
 * the schema round trip over RESP (SET/GET/LIST/DEL), a bad write refused with the JSON
 * pointer while the connection stays usable, schemas and snapshots across a restart,
 * syntax errors answered before anything is proposed, and a rollback to a snapshot that
 * reproduces the exact earlier state (full CFG.LIST listings compared) with DRYRUN
 * changing nothing. The last test times a rollback of a prefix with 10,000 keys.
 *
 * Each test starts its own server on a free port with a fresh data dir (helper.h).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helper.h"

static struct itest_srv srv;
static struct itest_conn *cn;

static void setup(void)
{
    int rc = itest_start(&srv, NULL);
    if (rc != 0)
        itest_log_tail(&srv, 40);
    cr_assert_eq(rc, 0, "server %s did not start", itest_bin());
    cn = itest_connect(srv.port);
    cr_assert_not_null(cn);
}

static void teardown(void)
{
    itest_close(cn);
    cn = NULL;
    itest_fini();
}

static char *callv(const char *const *argv)
{
    return itest_callv(cn, argv);
}
#define CALL(...) callv((const char *const[]){__VA_ARGS__, NULL})
#define EXPECTV(want, ...)                                                                 \
    do {                                                                                   \
        char *got_ = CALL(__VA_ARGS__);                                                    \
        cr_assert_str_eq(got_, (want), "expected %s, got %s", (want), got_);             \
        free(got_);                                                                        \
    } while (0)
#define EXPECTV_PREFIX(want, ...)                                                          \
    do {                                                                                   \
        char *got_ = CALL(__VA_ARGS__);                                                    \
        cr_assert(strncmp(got_, (want), strlen(want)) == 0, "expected %s..., got %s",     \
                  (want), got_);                                                           \
        free(got_);                                                                        \
    } while (0)

static const char *SCHEMA =
    "{\"type\":\"object\",\"required\":[\"port\"],\"properties\":{\"port\":"
    "{\"type\":\"integer\",\"maximum\":65535},\"host\":{\"type\":\"string\","
    "\"format\":\"hostname\"}}}";

/* Every key and value under prefix, paging through CFG.LIST. */
static char *full_listing(const char *prefix)
{
    size_t cap = 1 << 20, len = 0;
    char *out = malloc(cap);
    out[0] = '\0';
    char after[4200] = "";
    for (int pages = 0; pages < 1000; pages++) {
        struct itest_reply *r =
            after[0] ? itest_callv_r(cn, (const char *const[]){"CFG.LIST", prefix, "COUNT",
                                                               "1000", "AFTER", after, NULL})
                     : itest_callv_r(cn, (const char *const[]){"CFG.LIST", prefix, "COUNT",
                                                               "1000", NULL});
        cr_assert(r && r->type == IT_ARRAY && r->n == 2, "CFG.LIST reply");
        char *page = itest_fmt(r->elem[1]);
        size_t pl = strlen(page);
        cr_assert_lt(len + pl + 1, cap);
        memcpy(out + len, page, pl + 1);
        len += pl;
        free(page);
        bool more = r->elem[0]->type == IT_BULK;
        if (more)
            snprintf(after, sizeof after, "%.*s", (int)r->elem[0]->len, r->elem[0]->str);
        itest_reply_free(r);
        if (!more)
            return out;
    }
    cr_assert_fail("CFG.LIST did not end");
    return out;
}

Test(gov, schema_round_trip_and_refused_write, .init = setup, .fini = teardown, .timeout = 60)
{
    EXPECTV("+OK", "CFG.SCHEMA.SET", "/env/*/payments/*.json", SCHEMA);
    EXPECTV("+OK", "cfg.schema.set", "/env/prod/", "{\"type\":\"string\"}");
    char *got = CALL("CFG.SCHEMA.GET", "/env/*/payments/*.json");
    cr_assert(strstr(got, "required") != NULL, "%s", got);
    free(got);
    EXPECTV("[\"/env/*/payments/*.json\", \"/env/prod/\"]", "CFG.SCHEMA.LIST");
    EXPECTV("[\"/env/prod/\"]", "CFG.SCHEMA.LIST", "/env/p");
    EXPECTV("$nil", "CFG.SCHEMA.GET", "/env/");
    /* The refused write names the JSON pointer and changes nothing. */
    EXPECTV("-SCHEMA /port: must be <= 65535 (key /env/dev/payments/a.json, schema "
            "/env/*/payments/*.json)",
            "SET", "/env/dev/payments/a.json", "{\"port\":70000}");
    EXPECTV("-SCHEMA /host: is not a valid hostname (key /env/dev/payments/a.json, schema "
            "/env/*/payments/*.json)",
            "CFG.SET", "/env/dev/payments/a.json", "{\"port\":1,\"host\":\"-bad-\"}");
    EXPECTV("$nil", "GET", "/env/dev/payments/a.json");
    EXPECTV("+OK", "SET", "/env/dev/payments/a.json", "{\"port\":443,\"host\":\"pay.example\"}");
    /* The most specific pattern wins: /env/prod/payments/x.json is under the prefix
     * "/env/prod/" (literal 10 bytes), more specific than the glob (literal 5). */
    EXPECTV_PREFIX("-SCHEMA : must be of type string (key /env/prod/payments/x.json, schema "
                   "/env/prod/)",
                   "SET", "/env/prod/payments/x.json", "{\"port\":1}");
    EXPECTV("+OK", "SET", "/env/prod/payments/x.json", "\"a string\"");
    /* Bad schemas and patterns are refused before anything is proposed. */
    EXPECTV_PREFIX("-ERR invalid schema: ", "CFG.SCHEMA.SET", "/x/", "{\"type\":5}");
    EXPECTV_PREFIX("-ERR invalid pattern: ", "CFG.SCHEMA.SET", "/x/[", "{}");
    EXPECTV("-ERR syntax error", "CFG.SCHEMA.SET", "/x/", "{}", "NOW");
    EXPECTV("-ERR wrong number of arguments for 'cfg.schema.set' command", "CFG.SCHEMA.SET",
            "/x/");
    /* An existing key that would violate a new schema is named; FORCE sets it anyway. */
    EXPECTV("+OK", "SET", "/svc/a", "{\"port\":\"80\"}");
    EXPECTV("-SCHEMA 1 existing key would violate the schema (use FORCE to set it anyway): "
            "/svc/a (/port: must be of type integer)",
            "CFG.SCHEMA.SET", "/svc/", SCHEMA);
    EXPECTV("+OK", "CFG.SCHEMA.SET", "/svc/", SCHEMA, "force");
    EXPECTV(":1", "CFG.SCHEMA.DEL", "/svc/");
    EXPECTV(":0", "CFG.SCHEMA.DEL", "/svc/");
    EXPECTV("+PONG", "PING");
}

Test(gov, schemas_and_snapshots_survive_a_restart, .init = setup, .fini = teardown,
     .timeout = 60)
{
    EXPECTV("+OK", "CFG.SCHEMA.SET", "/app/", SCHEMA);
    EXPECTV("+OK", "SET", "/app/db", "{\"port\":5432}");
    EXPECTV(":1", "CFG.SNAPSHOT", "/app/", "LABEL", "v1");
    itest_close(cn);
    cr_assert_eq(itest_restart(&srv, NULL), 0);
    cn = itest_connect(srv.port);
    cr_assert_not_null(cn);
    EXPECTV_PREFIX("-SCHEMA /port: must be of type integer", "SET", "/app/db",
                   "{\"port\":\"x\"}");
    EXPECTV("+OK", "SET", "/app/db", "{\"port\":6432}");
    char *got = CALL("CFG.SNAPSHOTS", "/app/");
    cr_assert(strstr(got, "\"label\", \"v1\"") != NULL, "%s", got);
    free(got);
    EXPECTV(":2", "CFG.SNAPSHOT", "/app/");
    EXPECTV_PREFIX("[[\"key\", \"/app/db\", \"action\", \"restore\"", "CFG.ROLLBACK", "/app/",
                   "TO", "1");
    EXPECTV("\"{\\\"port\\\":5432}\"", "GET", "/app/db");
    EXPECTV(":1", "CFG.SNAPSHOT.DEL", "1");
    EXPECTV(":0", "CFG.SNAPSHOT.DEL", "1");
    EXPECTV("-ERR value is not an integer or out of range", "CFG.SNAPSHOT.DEL", "one");
    EXPECTV("-ERR syntax error", "CFG.ROLLBACK", "/app/", "TO");
    EXPECTV("-ERR value is not an integer or out of range", "CFG.ROLLBACK", "/app/", "REV",
            "-1");
    EXPECTV("-ERR syntax error", "CFG.SNAPSHOT", "/app/", "NAME", "x");
}

Test(gov, rollback_reproduces_the_exact_earlier_state, .init = setup, .fini = teardown,
     .timeout = 60)
{
    char key[64], val[64];
    for (int i = 0; i < 50; i++) {
        snprintf(key, sizeof key, "/rel/k%02d", i);
        snprintf(val, sizeof val, "{\"port\":%d}", i + 1);
        EXPECTV("+OK", "SET", key, val);
    }
    EXPECTV("+OK", "SET", "/outside", "1");
    char *before = full_listing("/rel/");
    EXPECTV(":1", "CFG.SNAPSHOT", "/rel/", "LABEL", "known-good");
    /* A bad release: changes, deletions, creations, and a schema change. */
    for (int i = 0; i < 50; i += 3) {
        snprintf(key, sizeof key, "/rel/k%02d", i);
        EXPECTV("+OK", "SET", key, "{\"port\":9999}");
    }
    EXPECTV(":3", "DEL", "/rel/k01", "/rel/k04", "/rel/k07");
    EXPECTV("+OK", "MSET", "/rel/new1", "{\"port\":1}", "/rel/new2", "{\"port\":2}");
    EXPECTV("+OK", "CFG.SCHEMA.SET", "/rel/", "{\"type\":\"object\"}");
    EXPECTV("+OK", "SET", "/outside", "2");
    char *bad = full_listing("/rel/");
    cr_assert_str_neq(bad, before);
    struct itest_reply *dry = itest_call_r(cn, "CFG.ROLLBACK /rel/ DRYRUN");
    cr_assert(dry && dry->type == IT_ARRAY, "DRYRUN answers an array");
    cr_assert_eq(dry->n, 17 + 3 + 2, "17 restores, 3 recreates, 2 deletes: %s", itest_fmt(dry));
    char *after_dry = full_listing("/rel/");
    cr_assert_str_eq(after_dry, bad, "DRYRUN changes nothing");
    struct itest_reply *real = itest_call_r(cn, "CFG.ROLLBACK /rel/ REASON bad-release");
    cr_assert(real && real->type == IT_ARRAY);
    char *a = itest_fmt(dry), *b = itest_fmt(real);
    cr_assert_str_eq(a, b, "DRYRUN answers exactly what the rollback does");
    char *after = full_listing("/rel/");
    cr_assert_str_eq(after, before, "the rollback restores the snapshot's exact listing");
    EXPECTV("\"2\"", "GET", "/outside");
    EXPECTV("[]", "CFG.ROLLBACK", "/rel/", "TO", "1");
    free(a);
    free(b);
    itest_reply_free(dry);
    itest_reply_free(real);
    free(before);
    free(bad);
    free(after_dry);
    free(after);
}

Test(gov, rollback_of_ten_thousand_keys, .init = setup, .fini = teardown, .timeout = 120)
{
    enum { N = 10000, BATCH = 500 };
    static char keys[BATCH][32], vals[BATCH][32];
    const char *argv[1 + 2 * BATCH + 1];
    for (int round = 0; round < 2; round++) {
        for (int b = 0; b < N / BATCH; b++) {
            argv[0] = "MSET";
            for (int i = 0; i < BATCH; i++) {
                snprintf(keys[i], sizeof keys[i], "/big/k%05d", b * BATCH + i);
                snprintf(vals[i], sizeof vals[i], "v%d-%d", round, b * BATCH + i);
                argv[1 + 2 * i] = keys[i];
                argv[2 + 2 * i] = vals[i];
            }
            argv[1 + 2 * BATCH] = NULL;
            char *r = itest_callv(cn, argv);
            cr_assert_str_eq(r, "+OK");
            free(r);
        }
        if (round == 0)
            EXPECTV(":1", "CFG.SNAPSHOT", "/big/");
    }
    long t0 = itest_now_ms();
    struct itest_reply *r = itest_call_r(cn, "CFG.ROLLBACK /big/");
    long dt = itest_now_ms() - t0;
    cr_assert(r && r->type == IT_ARRAY, "rollback reply");
    cr_assert_eq(r->n, N, "every key restored");
    itest_reply_free(r);
    printf("governance: rollback of %d keys took %ld ms (server round trip)\n", N, dt);
    EXPECTV("\"v0-0\"", "GET", "/big/k00000");
    EXPECTV("\"v0-9999\"", "GET", "/big/k09999");
    EXPECTV(":10000", "DBSIZE");
}
