/*
 * config.h - server options: a redis.conf-style file ("name value" per line, '#' comments,
 * double quotes for values with spaces) and `--name value` command-line flags with the
 * same names; flags are applied after the file, so they win. Every option is documented in
 * docs/configuration.md; CONFIG GET/SET go through the same table (config.c).
 *
 * Sizes accept Redis units: b, k/kb, m/mb, g/gb (k = 1000, kb = 1024, as in redis.conf).
 * Booleans accept yes/no. Every numeric option has a minimum and a maximum.
 */
#ifndef RAFTCONF_CONFIG_H
#define RAFTCONF_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct srv_config {
    uint64_t port;
    char *bind;
    char *dir;
    char *requirepass; /* "" = no password */
    uint64_t maxclients;
    uint64_t timeout_s;   /* idle client timeout, 0 = never */
    uint64_t tcp_backlog;
    uint64_t loglevel;    /* enum log_level */
    char *logfile;        /* "" = stderr */
    uint64_t max_value_size;
    uint64_t proto_max_bulk_len;
    uint64_t client_query_buffer_limit;
    uint64_t client_output_buffer_limit; /* hard limit, bytes; 0 = none */
    uint64_t node_id;
    uint64_t tick_ms;
    uint64_t election_ticks;
    uint64_t heartbeat_ticks;
    uint64_t request_timeout_ms;
    uint64_t snapshot_entries;
    char *initial_cluster; /* "" = a single-node cluster of node-id (issue 4) */
    uint64_t cluster_port; /* 0 = client port + 10000 */
    char *cluster_secret;  /* "" = no cluster port; required for a multi-node cluster */
    bool enable_flushall;
    bool daemonize; /* only "no" is supported */
    uint64_t history_max_versions; /* versions kept per key (state machine, issue 5) */
    /* audit and notifications (issue 5, src/audit_sink.c) */
    uint64_t audit_max_records;   /* audit records kept per group */
    char *audit_file;             /* JSON-lines audit sink; "" = off */
    char *notify_keyspace_events; /* Redis flag letters (K E g $ A); "" = off */
    /* schemas, snapshots, rollback (issue 5, src/ns/ns_snapshot.c, ns_rollback.c) */
    uint64_t snapshots_max;     /* pinned snapshots per group */
    uint64_t rollback_max_keys; /* keys one CFG.ROLLBACK may change */
};

/* Fill every option with its default. */
void config_init(struct srv_config *c);
void config_free(struct srv_config *c);

/* Set one option from its text form. Returns 0, or -1 with a static-or-buffered message in
 * err (size errlen) that names the option. */
int config_set(struct srv_config *c, const char *name, const char *value, char *err,
               size_t errlen);
/* Load a file. On error err says "<file>:<line>: <what>". */
int config_load_file(struct srv_config *c, const char *path, char *err, size_t errlen);
/* Parse argv[first..argc) of the form --name value ...; err as above. */
int config_load_args(struct srv_config *c, int argc, char **argv, int first, char *err,
                     size_t errlen);
/* Check cross-option rules after loading (heartbeat < election ...). */
int config_validate(const struct srv_config *c, char *err, size_t errlen);

/* Options in table order, for CONFIG GET: name i (NULL past the end), and the current
 * value's text into buf. Includes read-only Redis compatibility entries ("save",
 * "appendonly", "appendfsync", "databases"). */
const char *config_name_at(size_t i);
void config_format(const struct srv_config *c, size_t i, char *buf, size_t buflen);
/* May CONFIG SET change option `name` at run time? */
bool config_runtime_settable(const char *name);
/* --initial-cluster "1=host:port,2=host:port@cport,...": client addresses of the founding
 * members; the cluster port is port + 10000 unless given after '@'. Ids unique and > 0. */
#define CONFIG_CLUSTER_MAX 16
#define CONFIG_HOST_MAX 100
struct config_member {
    uint64_t id;
    char host[CONFIG_HOST_MAX + 1];
    uint32_t port, cport;
};
int config_parse_cluster(const char *spec, struct config_member *out, size_t cap, size_t *n,
                         char *err, size_t errlen);
/* Parse a size with units ("1mb", "64k", "100"); 0 on success. */
int config_parse_size(const char *s, uint64_t *out);

#endif
