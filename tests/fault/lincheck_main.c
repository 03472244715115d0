/*
 * lincheck_main.c - command line of the linearizability checker.
 *
 *   lincheck [--time-budget-ms N] [--mem-budget-mb N] [--window N] [-v]
 *            [--final FILE] HISTORY [HISTORY ...]        ("-" reads stdin)
 *
 * Every file is read into one history (several clients' files, the final reads). Prints
 * findings and the closing line "lincheck: linearizable|NOT linearizable|unknown, ops=N
 * keys=K". Exit 0 linearizable, 1 not linearizable, 2 unknown (a budget ran out), 3 bad
 * usage or input. History format: tests/fault/HISTORY.md.
 */
#include "lincheck.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(void)
{
    fprintf(stderr, "usage: lincheck [--time-budget-ms N] [--mem-budget-mb N] [--window N] "
                    "[-v] [--final FILE] HISTORY...\n");
    exit(3);
}

static int load_file(struct lc_history *h, const char *path)
{
    char err[512];
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!f) {
        fprintf(stderr, "lincheck: cannot open %s\n", path);
        return -1;
    }
    int rc = lc_history_load(h, f, err, sizeof err);
    if (f != stdin)
        fclose(f);
    if (rc)
        fprintf(stderr, "lincheck: %s: %s\n", path, err);
    return rc;
}

static long long num_arg(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc)
        usage();
    char *end;
    long long v = strtoll(argv[++*i], &end, 10);
    if (*end || v < 0)
        usage();
    return v;
}

int main(int argc, char **argv)
{
    struct lc_options o = {0};
    struct lc_history h = {0};
    int nfiles = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--time-budget-ms") == 0) {
            o.time_budget_ms = num_arg(argc, argv, &i);
        } else if (strcmp(argv[i], "--mem-budget-mb") == 0) {
            o.mem_budget_mb = num_arg(argc, argv, &i);
        } else if (strcmp(argv[i], "--window") == 0) {
            o.window_max = (int)num_arg(argc, argv, &i);
        } else if (strcmp(argv[i], "-v") == 0) {
            o.verbose = true;
        } else if (strcmp(argv[i], "--final") == 0) {
            if (++i >= argc || load_file(&h, argv[i]))
                return 3;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            usage();
        } else {
            if (load_file(&h, argv[i]))
                return 3;
            nfiles++;
        }
    }
    if (nfiles == 0)
        usage();
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    enum lc_verdict v = lc_check(&h, &o, stdout);
    clock_gettime(CLOCK_MONOTONIC, &b);
    fprintf(stderr, "lincheck: checked in %.3f s\n",
            (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9);
    lc_history_free(&h);
    return (int)v;
}
