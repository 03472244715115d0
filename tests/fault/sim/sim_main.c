/*
 * sim_main.c - command line of raftsim, the deterministic Raft cluster simulator.
 *
 *   raftsim --seeds N --steps M [--first-seed S] [--seed S] [--nodes 3|5] [--max-fail K]
 *           [--churn P] [--tiny P] [--verbose] [--quiet]
 *
 * Runs seeds S .. S+N-1 (default S = 1), each for M steps plus liveness phases. The cluster
 * size of a seed (3 or 5 voters) is derived from the seed alone, unless --nodes forces it;
 * --nodes does not change the random stream, so a replay with the printed command repeats
 * the failing run exactly. A failing seed prints
 *   FAIL seed=<S> step=<n>: <what was violated>
 *   replay: <argv0> --seed <S> --steps <M> --nodes <N> --verbose
 * --churn P / --tiny P: per mille of seeds (default 600 each) in which new leaders are
 * crashed or isolated within a few steps, and in which APPENDs carry one entry with one in
 * flight; together they make Figure 8 of the Raft paper reachable. A replay of a run made
 * with other values must pass the same values.
 * --max-fail K stops after K failing seeds (the counts then cover the seeds run).
 * The last line is always "raftsim: <P> passed, <F> failed"; exit status 1 if any failed.
 * The wall clock is read here only to report elapsed time.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sim.h"

struct opts {
    uint64_t seeds, steps, first_seed, max_fail, churn, tiny;
    int nodes;
    bool verbose, quiet;
};

static void usage(const char *argv0)
{
    fprintf(stderr, "usage: %s --seeds N --steps M [--first-seed S] [--seed S] "
            "[--nodes 3|5] [--max-fail K] [--churn P] [--tiny P] [--verbose] [--quiet]\n", argv0);
    exit(2);
}

static uint64_t num(const char *argv0, const char *s)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s == '\0' || *end != '\0')
        usage(argv0);
    return v;
}

static void parse(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){.seeds = 1, .steps = 2000, .first_seed = 1, .churn = 600, .tiny = 600};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (!strcmp(a, "--seeds") && has)
            o->seeds = num(argv[0], argv[++i]);
        else if (!strcmp(a, "--steps") && has)
            o->steps = num(argv[0], argv[++i]);
        else if ((!strcmp(a, "--first-seed") || !strcmp(a, "--seed")) && has)
            o->first_seed = num(argv[0], argv[++i]);
        else if (!strcmp(a, "--churn") && has)
            o->churn = num(argv[0], argv[++i]);
        else if (!strcmp(a, "--tiny") && has)
            o->tiny = num(argv[0], argv[++i]);
        else if (!strcmp(a, "--max-fail") && has)
            o->max_fail = num(argv[0], argv[++i]);
        else if (!strcmp(a, "--nodes") && has)
            o->nodes = (int)num(argv[0], argv[++i]);
        else if (!strcmp(a, "--verbose"))
            o->verbose = true;
        else if (!strcmp(a, "--quiet"))
            o->quiet = true;
        else
            usage(argv[0]);
    }
    if ((o->nodes != 0 && o->nodes != 3 && o->nodes != 5) || o->churn > 1000 || o->tiny > 1000)
        usage(argv[0]);
}

/* A core assertion (abort) or a crash still prints the seed and the replay command. */
static const struct sim *current;
static const char *argv0_g;
static uint64_t steps_g;
static char extra[64]; /* non-default options a replay must repeat */

static void on_fatal(int sig)
{
    char buf[512];
    int n = snprintf(buf, sizeof(buf), "FAIL seed=%llu step=%llu: crashed with signal %d "
                     "(core assertion or memory error, see above)\nreplay: %s --seed %llu "
                     "--steps %llu --nodes %d%s --verbose\nraftsim: 0 passed, 1 failed\n",
                     current ? (unsigned long long)current->seed : 0ULL,
                     current ? (unsigned long long)current->step : 0ULL, sig, argv0_g,
                     current ? (unsigned long long)current->seed : 0ULL,
                     (unsigned long long)steps_g, current ? current->n_boot : 0, extra);
    fflush(stdout);
    if (n > 0)
        (void)!write(STDOUT_FILENO, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf));
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_fatal;
    sigaction(SIGABRT, &sa, NULL);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
    sigaction(SIGFPE, &sa, NULL);
}

static int nodes_for_seed(uint64_t seed)
{
    struct sim_rng g;
    sim_rng_seed(&g, seed ^ 0x5eed5eed5eed5eedULL);
    return (sim_rng_next(&g) & 1) ? 5 : 3;
}

int main(int argc, char **argv)
{
    struct opts o;
    parse(argc, argv, &o);
    struct sim *s = calloc(1, sizeof(*s));
    if (!s)
        return 2;
    current = s;
    argv0_g = argv[0];
    steps_g = o.steps;
    install_handlers();
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint64_t passed = 0, failed = 0, total_steps = 0, live_ticks = 0;
    uint64_t cov[8] = {0};
    if (o.churn != 600 || o.tiny != 600)
        snprintf(extra, sizeof(extra), " --churn %llu --tiny %llu",
                 (unsigned long long)o.churn, (unsigned long long)o.tiny);
    for (uint64_t k = 0; k < o.seeds; k++) {
        memset(s, 0, sizeof(*s));
        s->seed = o.first_seed + k;
        s->steps = o.steps;
        s->verbose = o.verbose;
        s->churn_per_mille = (uint32_t)o.churn;
        s->tiny_per_mille = (uint32_t)o.tiny;
        s->n_boot = o.nodes ? o.nodes : nodes_for_seed(s->seed);
        int rc = sim_run(s);
        total_steps += s->failed ? s->step : s->steps;
        live_ticks += s->liveness_ticks;
        const uint64_t c[8] = {s->n_elections, s->max_applied, s->n_props_ok, s->n_reads_served,
                               s->n_conf_applied, s->n_compactions, s->n_snap_installs,
                               s->n_crashes};
        for (int i = 0; i < 8; i++)
            cov[i] += c[i];
        if (rc == 0) {
            passed++;
            if (o.verbose)
                printf("seed %llu passed\n", (unsigned long long)s->seed);
            continue;
        }
        failed++;
        printf("FAIL seed=%llu step=%llu: %s\n", (unsigned long long)s->seed,
               (unsigned long long)s->step, s->fail_msg);
        printf("replay: %s --seed %llu --steps %llu --nodes %d%s --verbose\n", argv[0],
               (unsigned long long)s->seed, (unsigned long long)o.steps, s->n_boot, extra);
        fflush(stdout);
        if (o.max_fail && failed >= o.max_fail)
            break;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (!o.quiet)
        printf("raftsim: coverage: %llu leaders elected, %llu entries committed, %llu proposals "
               "accepted, %llu linearizable reads checked, %llu conf changes committed, "
               "%llu compactions, %llu snapshots installed, %llu crashes\n",
               (unsigned long long)cov[0], (unsigned long long)cov[1],
               (unsigned long long)cov[2], (unsigned long long)cov[3],
               (unsigned long long)cov[4], (unsigned long long)cov[5],
               (unsigned long long)cov[6], (unsigned long long)cov[7]);
    if (!o.quiet || failed)
        printf("raftsim: seeds %llu..%llu, %llu steps (+%llu liveness rounds) in %.1f s\n",
               (unsigned long long)o.first_seed,
               (unsigned long long)(o.first_seed + o.seeds - 1),
               (unsigned long long)total_steps, (unsigned long long)live_ticks, secs);
    printf("raftsim: %llu passed, %llu failed\n", (unsigned long long)passed,
           (unsigned long long)failed);
    free(s);
    return failed ? 1 : 0;
}
