/*
 * main.c - raftconf-server entry point: parse `[configfile] [--option value ...]`, set up
 * logging, run the server, exit with its code (0 after a clean SIGTERM/SIGINT shutdown,
 * 1 on a fatal runtime error, 2 on a configuration error).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "server.h"

static void usage(FILE *fp)
{
    fprintf(fp,
            "Usage: raftconf-server [/path/to/raftconf.conf] [--option value ...]\n"
            "       raftconf-server --help | --version\n\n"
            "Options have the same names in the file and on the command line, e.g.\n"
            "  raftconf-server --port 6380 --dir /var/lib/raftconf --loglevel verbose\n"
            "See docs/configuration.md for every option.\n");
}

static struct server srv; /* large (SCAN cursor table); static, not on the stack */

int main(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc == 2 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-v") == 0)) {
        printf("raftconf-server %s (redis protocol %s)\n", SRV_VERSION, SRV_REDIS_VERSION);
        return 0;
    }
    struct srv_config cfg;
    config_init(&cfg);
    char err[1024];
    int first = 1;
    if (argc > 1 && strncmp(argv[1], "--", 2) != 0) {
        if (config_load_file(&cfg, argv[1], err, sizeof err) != 0) {
            fprintf(stderr, "raftconf-server: %s\n", err);
            config_free(&cfg);
            return 2;
        }
        first = 2;
    }
    if (config_load_args(&cfg, argc, argv, first, err, sizeof err) != 0 ||
        config_validate(&cfg, err, sizeof err) != 0) {
        fprintf(stderr, "raftconf-server: %s\n", err);
        usage(stderr);
        config_free(&cfg);
        return 2;
    }
    log_set_level((int)cfg.loglevel);
    if (log_open_file(cfg.logfile) != 0) {
        fprintf(stderr, "raftconf-server: cannot open logfile '%s'\n", cfg.logfile);
        config_free(&cfg);
        return 2;
    }
    if (srv_init(&srv, &cfg) != 0) {
        srv_close(&srv);
        log_close();
        return 1;
    }
    int code = srv_run(&srv);
    srv_close(&srv);
    LOG_NOTICE("raftconf-server exiting (code %d)", code);
    log_close();
    return code;
}
