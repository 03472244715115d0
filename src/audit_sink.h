/*
 * audit_sink.h - the service side of the audit trail (issue 5): the node's apply observer
 * feeds the JSON-lines audit file sink, keyspace notifications and CFG.WATCH wake-ups; the
 * JSON helpers (record as a JSON line, structural diff of JSON values) are shared with the
 * CFG.AUDIT command (cmd_audit.c).
 *
 * The audit file (option audit-file): one JSON object per line per audit record this node
 * applies, starting {"group":G,"revision":R,...} (docs/governance.md "Audit file"). Lines
 * are appended after the entry's batch is written and flushed to the OS at once (fflush;
 * not fsync'd). At start the sink resumes after the last complete line in the file: a torn
 * last line is cut off and the records applied since (also those replayed at start, or
 * installed by snapshot) are written from the store's audit records, so the file has every
 * revision once, in order, as long as those records are still retained (audit-max-records).
 *
 * Invariant: file_rev[g] is the revision of the last line written for group g; a line is
 * written only for revision file_rev[g] + 1 (gaps are filled from the store first).
 */
#ifndef RAFTCONF_AUDIT_SINK_H
#define RAFTCONF_AUDIT_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "node.h"

struct server;
struct ns;
struct ns_audit_rec;
struct event;
struct watch;

#define AUDIT_PATHS_MAX 1000u /* JSON pointers listed per change at most */

struct audit_svc {
    struct server *srv;
    FILE *file;                   /* NULL when audit-file is off */
    uint64_t file_rev[NODE_GROUPS];
    uint64_t lines_written;
    struct watch *watches;        /* CFG.WATCH requests in flight (cmd_audit.c) */
    size_t n_watches;
    struct event *timer;          /* watch timeouts and sweeps, armed while watches exist */
    bool timer_on;
};

/* Create s->audit, open the audit file (resuming it) and install the apply observer.
 * 0 or -1 (logged). */
int audit_svc_open(struct server *s);
void audit_svc_close(struct server *s);

/* The record as one JSON object (no newline), malloc'd; NULL on OOM. */
char *audit_rec_json(uint32_t group, const struct ns_audit_rec *a);

/* Structural diff of two values that both parse as JSON objects or arrays: *paths gets a
 * malloc'd array of *n malloc'd JSON pointers (RFC 6901) of the leaves added, removed or
 * changed (a member whose type changed is one path), at most AUDIT_PATHS_MAX, in document
 * order. Returns false (nothing allocated) when either value is not a JSON object/array. */
bool audit_json_paths(const char *a, size_t alen, const char *b, size_t blen, char ***paths,
                      size_t *n);
void audit_paths_free(char **paths, size_t n);

/* Start (on) or stop the watch timer: audit_watch_tick every 10 ms while armed. */
void audit_timer_arm(struct server *s, bool on);

/* cmd_audit.c: the watch side of the observer and the timer. */
void audit_watch_on_apply(struct server *s, uint32_t group, struct ns *ns,
                          const struct ns_audit_rec *a);
void audit_watch_tick(struct server *s);
void audit_watch_free_all(struct server *s);

#endif
