/*
 * test_lincheck.c - the linearizability checker's own tests (criterion).
 *
 * Known-good and known-bad histories from tests/fault/histories/ (run from the repository
 * root, as scripts/run-tests.sh does; $LINCHECK_HISTORIES overrides the directory) must get
 * the right verdict; a pathological history must answer "unknown" within its budget; a
 * generated history of the nemesis suite's size (10 clients x 60 s x 200 ops/s over 50
 * keys, with timed-out writes) must check in seconds, and the same history with one stale
 * read must be caught.
 */
#include "lincheck.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *hist_dir(void)
{
    const char *d = getenv("LINCHECK_HISTORIES");
    return d ? d : "tests/fault/histories";
}

/* Load a history file and check it; the report goes to *report (caller frees). */
static enum lc_verdict check_file(const char *name, char **report)
{
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/%s", hist_dir(), name);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot open %s (run from the repository root)", path);
    struct lc_history h = {0};
    cr_assert_eq(lc_history_load(&h, f, err, sizeof err), 0, "%s: %s", path, err);
    fclose(f);
    size_t len = 0;
    char *buf = NULL;
    FILE *out = open_memstream(&buf, &len);
    struct lc_options o = {.time_budget_ms = 5000};
    enum lc_verdict v = lc_check(&h, &o, out);
    fclose(out);
    lc_history_free(&h);
    if (report)
        *report = buf;
    else
        free(buf);
    return v;
}

static void expect(const char *name, enum lc_verdict want)
{
    char *report = NULL;
    enum lc_verdict got = check_file(name, &report);
    cr_expect_eq(got, want, "%s: verdict %d, want %d; report:\n%s", name, got, want, report);
    free(report);
}

Test(lincheck_good, sequential) { expect("good-sequential.jsonl", LC_OK); }
Test(lincheck_good, concurrent_overlapping) { expect("good-concurrent.jsonl", LC_OK); }
Test(lincheck_good, unknown_write_observed) { expect("good-unknown-observed.jsonl", LC_OK); }
Test(lincheck_good, unknown_writes_never_applied) { expect("good-unknown-never.jsonl", LC_OK); }
Test(lincheck_good, cas_success_and_failure) { expect("good-cas.jsonl", LC_OK); }
Test(lincheck_good, watch_stream) { expect("good-watch.jsonl", LC_OK); }

Test(lincheck_bad, stale_read) { expect("bad-stale-read.jsonl", LC_BAD); }
Test(lincheck_bad, lost_write_final_read) { expect("bad-lost-write.jsonl", LC_BAD); }
Test(lincheck_bad, lost_write_by_version) { expect("bad-lost-write-version.jsonl", LC_BAD); }
Test(lincheck_bad, duplicated_write) { expect("bad-duplicate-write.jsonl", LC_BAD); }
Test(lincheck_bad, duplicated_unknown_write) { expect("bad-duplicate-unknown.jsonl", LC_BAD); }
Test(lincheck_bad, cas_double_success) { expect("bad-cas-double.jsonl", LC_BAD); }
Test(lincheck_bad, cas_false_version_failure) { expect("bad-cas-false-fail.jsonl", LC_BAD); }
Test(lincheck_bad, watch_gap_by_time) { expect("bad-watch-gap.jsonl", LC_BAD); }
Test(lincheck_bad, watch_gap_by_revision) { expect("bad-watch-gap-rev.jsonl", LC_BAD); }
Test(lincheck_bad, watch_duplicate) { expect("bad-watch-dup.jsonl", LC_BAD); }
Test(lincheck_bad, watch_out_of_order) { expect("bad-watch-order.jsonl", LC_BAD); }

/* The counterexample names the stale read, the op before it, and the closing line. */
Test(lincheck_report, stale_read_window)
{
    char *r = NULL;
    cr_assert_eq(check_file("bad-stale-read.jsonl", &r), LC_BAD);
    cr_expect_not_null(strstr(r, "longest linearizable prefix: 2 ops"), "%s", r);
    cr_expect_not_null(strstr(r, "! line 4 p=1"), "%s", r);
    cr_expect_not_null(strstr(r, "get -> \"0-1\""), "%s", r);
    cr_expect_not_null(strstr(r, "lincheck: NOT linearizable, ops=3 keys=1"), "%s", r);
    free(r);
}

Test(lincheck_report, load_errors_name_the_line)
{
    char err[256];
    struct lc_history h = {0};
    const char *text = "{\"p\":0,\"f\":\"set\",\"k\":\"a\",\"v\":\"x\",\"t0\":0,\"t1\":1,"
                       "\"r\":\"ok\"}\n{\"p\":0,\"f\":\"get\",\"k\":\"a\",\"t0\":5,\"t1\":2,"
                       "\"r\":\"ok\",\"out\":{\"v\":null}}\n";
    cr_expect_eq(lc_history_load_str(&h, text, err, sizeof err), -1);
    cr_expect_not_null(strstr(err, "line 2"), "%s", err);
    lc_history_free(&h);
    memset(&h, 0, sizeof h);
    cr_expect_eq(lc_history_load_str(&h, "{\"f\":\"nope\",\"k\":\"a\",\"v\":\"x\",\"t0\":0,"
                                         "\"t1\":1,\"r\":\"ok\"}", err, sizeof err), -1);
    cr_expect_not_null(strstr(err, "unknown f"), "%s", err);
    lc_history_free(&h);
}

/* ---- generated histories ---- */

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

struct gop {
    int p, key, kind; /* 0 get, 1 set, 2 cas, 3 del */
    int64_t t0, lin, t1, ver;
    bool unknown, applied;
    long long val;    /* written value id, or read value id (-1 absent) */
    int64_t out_ver;
    int del_n;
    bool cas_ok;
};

static int cmp_lin(const void *a, const void *b)
{
    const struct gop *x = *(struct gop *const *)a, *y = *(struct gop *const *)b;
    return x->lin < y->lin ? -1 : x->lin > y->lin;
}

/* Apply ops in linearization order to a real register per key; fills the outcomes. */
static void gen_apply(struct gop *ops, size_t n, int keys, uint64_t *seed)
{
    struct gop **ord = malloc(n * sizeof *ord);
    long long *val = malloc((size_t)keys * sizeof *val);
    int64_t *ver = calloc((size_t)keys, sizeof *ver);
    for (int k = 0; k < keys; k++)
        val[k] = -1;
    for (size_t i = 0; i < n; i++)
        ord[i] = &ops[i];
    qsort(ord, n, sizeof *ord, cmp_lin);
    for (size_t i = 0; i < n; i++) {
        struct gop *o = ord[i];
        int k = o->key;
        bool apply = !o->unknown || (o->applied = rnd(seed) % 2);
        if (o->kind == 0) {
            o->val = val[k];
            o->out_ver = ver[k];
        } else if (o->kind == 1 && apply) {
            ver[k] = val[k] < 0 ? 1 : ver[k] + 1;
            val[k] = o->val;
        } else if (o->kind == 2) {
            o->ver = rnd(seed) % 3 ? ver[k] : ver[k] + 1; /* a third of them miss */
            o->cas_ok = o->ver == ver[k];
            o->out_ver = o->cas_ok ? ver[k] + 1 : ver[k];
            if (o->cas_ok && apply) {
                val[k] = o->val;
                ver[k]++;
            }
        } else if (o->kind == 3) {
            o->del_n = val[k] >= 0;
            if (apply) {
                val[k] = -1;
                ver[k] = 0;
            }
        }
    }
    free(ord);
    free(val);
    free(ver);
}

static void gen_print(FILE *f, const struct gop *o)
{
    static const char *names[] = {"get", "set", "cas", "del"};
    fprintf(f, "{\"p\":%d,\"f\":\"%s\",\"k\":\"/k%d\",\"t0\":%lld,\"t1\":%lld,", o->p,
            names[o->kind], o->key, (long long)o->t0, (long long)o->t1);
    if (o->kind == 1 || o->kind == 2)
        fprintf(f, "\"v\":\"%lld\",", o->val);
    if (o->kind == 2)
        fprintf(f, "\"ver\":%lld,", (long long)o->ver);
    if (o->unknown) {
        fprintf(f, "\"r\":\"unknown\"}\n");
    } else if (o->kind == 0) {
        if (o->val < 0)
            fprintf(f, "\"r\":\"ok\",\"out\":{\"v\":null}}\n");
        else
            fprintf(f, "\"r\":\"ok\",\"out\":{\"v\":\"%lld\",\"ver\":%lld}}\n", o->val,
                    (long long)o->out_ver);
    } else if (o->kind == 2 && !o->cas_ok) {
        fprintf(f, "\"r\":\"fail\",\"out\":{\"err\":\"VERSION\",\"cur\":%lld}}\n",
                (long long)o->out_ver);
    } else if (o->kind == 2) {
        fprintf(f, "\"r\":\"ok\",\"out\":{\"ver\":%lld}}\n", (long long)o->out_ver);
    } else if (o->kind == 3) {
        fprintf(f, "\"r\":\"ok\",\"out\":{\"n\":%d}}\n", o->del_n);
    } else {
        fprintf(f, "\"r\":\"ok\"}\n");
    }
}

/* A linearizable history: each client runs ops back to back, each op takes effect at a
 * random instant inside its window; unknown_pct of the writes time out (half of those
 * apply). stale: make one late read return a value overwritten long before. */
static char *gen_history(int clients, int per_client, int keys, int unknown_pct, bool stale)
{
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    size_t n = (size_t)clients * (size_t)per_client;
    struct gop *ops = calloc(n, sizeof *ops);
    long long next_val = 0;
    for (int c = 0; c < clients; c++) {
        int64_t t = 0;
        for (int i = 0; i < per_client; i++) {
            struct gop *o = &ops[(size_t)c * (size_t)per_client + (size_t)i];
            uint64_t r = rnd(&seed) % 100;
            o->p = c;
            o->key = (int)(rnd(&seed) % (uint64_t)keys);
            o->kind = r < 45 ? 0 : r < 75 ? 1 : r < 97 ? 2 : 3;
            o->val = next_val++;
            o->t0 = t + (int64_t)(rnd(&seed) % 1000000);
            o->lin = o->t0 + 100000 + (int64_t)(rnd(&seed) % 3000000);
            o->t1 = o->lin + 100000 + (int64_t)(rnd(&seed) % 1000000);
            o->unknown = o->kind != 0 && (int)(rnd(&seed) % 100) < unknown_pct;
            t = o->t1;
        }
    }
    gen_apply(ops, n, keys, &seed);
    if (stale) {
        /* The last read of a key that has since been written: replace its value with
         * the first value ever written to the key. */
        for (size_t i = n; i-- > 0;) {
            struct gop *o = &ops[i];
            if (o->kind != 0 || o->val < 0 || o->unknown)
                continue;
            for (size_t j = 0; j < n; j++) {
                if (ops[j].key == o->key && ops[j].kind == 1 && !ops[j].unknown &&
                    ops[j].t1 < o->t0 - 50000000 && ops[j].val != o->val) {
                    o->val = ops[j].val;
                    o->out_ver = -1;
                    break;
                }
            }
            if (o->out_ver == -1)
                break;
        }
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    for (size_t i = 0; i < n; i++)
        gen_print(f, &ops[i]);
    fclose(f);
    free(ops);
    const char *dump = getenv("LINCHECK_DUMP");
    if (dump) {
        char path[512];
        snprintf(path, sizeof path, "%s%s", dump, stale ? ".stale" : "");
        FILE *d = fopen(path, "w");
        if (d) {
            fputs(buf, d);
            fclose(d);
        }
    }
    return buf;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static enum lc_verdict check_text(const char *text, int64_t budget_ms, double *secs,
                                  size_t *nops)
{
    char err[256];
    struct lc_history h = {0};
    cr_assert_eq(lc_history_load_str(&h, text, err, sizeof err), 0, "%s", err);
    struct lc_options o = {.time_budget_ms = budget_ms};
    double t = now_s();
    enum lc_verdict v = lc_check(&h, &o, NULL);
    *secs = now_s() - t;
    *nops = h.nops_total;
    lc_history_free(&h);
    return v;
}

/* 10 clients x 12000 ops (60 s at 200 ops/s) over 50 keys, 2% of the writes timed out. */
Test(lincheck_scale, nemesis_size_history_checks_in_seconds, .timeout = 120)
{
    char *text = gen_history(10, 12000, 50, 2, false);
    double secs;
    size_t nops;
    enum lc_verdict v = check_text(text, 20000, &secs, &nops);
    cr_log_info("120000 ops / 50 keys checked in %.3f s", secs);
    cr_expect_eq(v, LC_OK);
    cr_expect_eq(nops, 120000);
    cr_expect_lt(secs, 30.0, "took %.1f s", secs);
    free(text);
    text = gen_history(10, 12000, 50, 2, true);
    cr_expect_eq(check_text(text, 20000, &secs, &nops), LC_BAD, "stale read not caught");
    free(text);
}

/* A history where a fifth of all writes time out (far more than a nemesis run gives): a
 * linearizable one still checks fast; in the stale one the search may run out of budget,
 * and the direct staleness proof must then still catch the read. */
Test(lincheck_scale, many_unknown_writes, .timeout = 120)
{
    char *text = gen_history(10, 3000, 10, 20, false);
    double secs;
    size_t nops;
    enum lc_verdict v = check_text(text, 20000, &secs, &nops);
    cr_log_info("30000 ops over 10 keys, 20%% unknown writes, checked in %.3f s", secs);
    cr_expect_eq(v, LC_OK);
    free(text);
    text = gen_history(10, 3000, 10, 20, true);
    cr_expect_eq(check_text(text, 2000, &secs, &nops), LC_BAD, "stale read not caught");
    free(text);
}

/* 40 writes all concurrent, then a read of a value nobody wrote: proving that no order of
 * the writes fits means exploring 2^40 subsets. The budget must stop it. */
Test(lincheck_budget, pathological_history_answers_unknown_in_budget, .timeout = 30)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    for (int i = 0; i < 40; i++)
        fprintf(f, "{\"p\":%d,\"f\":\"set\",\"k\":\"a\",\"v\":\"%d\",\"t0\":%d,\"t1\":1000000,"
                   "\"r\":\"ok\"}\n", i, i, i);
    fprintf(f, "{\"p\":99,\"f\":\"get\",\"k\":\"a\",\"t0\":2000000,\"t1\":2000001,\"r\":\"ok\","
               "\"out\":{\"v\":\"nobody\"}}\n");
    fclose(f);
    double secs;
    size_t nops;
    enum lc_verdict v = check_text(buf, 300, &secs, &nops);
    cr_expect_eq(v, LC_UNKNOWN);
    cr_expect_lt(secs, 2.0, "budget 0.3 s, took %.2f s", secs);
    free(buf);
}
