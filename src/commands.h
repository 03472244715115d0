/*
 * commands.h - the declarative command table of the service layer and the helpers that
 * command handlers (cmd_*.c) share.
 *
 * Each row: name, arity Redis-style (N = exactly N words including the name, -N = at least
 * N), flags, first/last key and step (as COMMAND INFO reports them), the handler, and the
 * docs COMMAND DOCS serves (summary, since, group, complexity, argument syntax).
 *
 * Execution classes (see client.c for the per-client ordering rules):
 *   CMD_WRITE     the handler validates and proposes through cmd_propose(); the reply comes
 *                 from ns at apply time.
 *   CMD_READONLY  reads replicated data: the dispatcher first waits for a linearizable read
 *                 barrier on the key's group (skipped after READONLY), then runs the handler.
 *   otherwise     the handler replies at once.
 */
#ifndef RAFTCONF_COMMANDS_H
#define RAFTCONF_COMMANDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "resp/resp.h"

struct client;
struct cslot;
struct ns_reply;

enum cmd_flag {
    CMD_WRITE = 1u << 0,
    CMD_READONLY = 1u << 1,
    CMD_ADMIN = 1u << 2,
    CMD_NOAUTH = 1u << 3,    /* allowed before AUTH */
    CMD_LOADING = 1u << 4,   /* allowed while loading */
    CMD_FAST = 1u << 5,
    CMD_STALE = 1u << 6,
    CMD_NOSCRIPT = 1u << 7,
    CMD_DENYOOM = 1u << 8,
};

/* argv/argvlen are the parsed command (argv[0] the name as sent); the reply goes to
 * cslot's output via cmd_out(). */
typedef void (*cmd_fn)(struct client *c, struct cslot *s, int argc, char **argv,
                       size_t *argvlen);

struct cmd_def {
    const char *name; /* lower case */
    int arity;
    uint32_t flags;
    int first_key, last_key, key_step;
    cmd_fn fn;
    const char *summary;
    const char *since;
    const char *group;
    const char *complexity;
    const char *args; /* syntax, e.g. "key value [NX|XX] [GET]" */
};

/* Case-insensitive lookup; NULL when unknown. */
const struct cmd_def *cmd_lookup(const char *name, size_t len);
size_t cmd_count(void);
const struct cmd_def *cmd_at(size_t i);
/* Flag names for COMMAND INFO ("write", "readonly", ...): fills names, returns count. */
size_t cmd_flag_names(uint32_t flags, const char **names, size_t max);

/* Handler helpers. */
struct resp_buf *cmd_out(struct cslot *s);
int cmd_proto(const struct client *c);
/* Reply an error built from an RC_* code: "-<prefix> <msg or default message>". */
void cmd_reply_rc(struct cslot *s, int rc, const char *msg);
/* Finish a listing whose elements were collected in tmp: the error of rc when it is not
 * RC_OK, else an array of n elements made of tmp's bytes. tmp is freed either way. */
void cmd_reply_listing(struct cslot *s, int rc, long long n, struct resp_buf *tmp);
/* Render an ns reply tree as RESP for protocol proto. */
void cmd_render_reply(struct resp_buf *b, int proto, const struct ns_reply *r);
/* Parse a whole decimal long long; false if not an integer. */
bool cmd_parse_ll(const char *s, size_t len, long long *out);
/* Propose the normalized write argv (argv[0] upper case) for the key argv[keyi]; the reply
 * arrives at apply time. Replies an error itself when refused at once. */
void cmd_propose(struct client *c, struct cslot *s, int argc, char **argv, size_t *argvlen,
                 int keyi);
/* Keys must be at most this long (checked before proposing). */
bool cmd_key_ok_or_reply(struct cslot *s, size_t klen);

/* Handlers, grouped by file. */
void cmd_ping(struct client *, struct cslot *, int, char **, size_t *);
void cmd_echo(struct client *, struct cslot *, int, char **, size_t *);
void cmd_quit(struct client *, struct cslot *, int, char **, size_t *);
void cmd_hello(struct client *, struct cslot *, int, char **, size_t *);
void cmd_auth(struct client *, struct cslot *, int, char **, size_t *);
void cmd_select(struct client *, struct cslot *, int, char **, size_t *);
void cmd_reset(struct client *, struct cslot *, int, char **, size_t *);
void cmd_client(struct client *, struct cslot *, int, char **, size_t *);
void cmd_readonly(struct client *, struct cslot *, int, char **, size_t *);
void cmd_readwrite(struct client *, struct cslot *, int, char **, size_t *);

void cmd_info(struct client *, struct cslot *, int, char **, size_t *);
void cmd_config(struct client *, struct cslot *, int, char **, size_t *);
void cmd_command(struct client *, struct cslot *, int, char **, size_t *);
void cmd_dbsize(struct client *, struct cslot *, int, char **, size_t *);
void cmd_time(struct client *, struct cslot *, int, char **, size_t *);
void cmd_debug(struct client *, struct cslot *, int, char **, size_t *); /* cmd_info.c */

void cmd_get(struct client *, struct cslot *, int, char **, size_t *);
void cmd_set(struct client *, struct cslot *, int, char **, size_t *);
void cmd_del(struct client *, struct cslot *, int, char **, size_t *);
void cmd_exists(struct client *, struct cslot *, int, char **, size_t *);
void cmd_mget(struct client *, struct cslot *, int, char **, size_t *);
void cmd_mset(struct client *, struct cslot *, int, char **, size_t *);
void cmd_keys(struct client *, struct cslot *, int, char **, size_t *);
void cmd_scan(struct client *, struct cslot *, int, char **, size_t *);
void cmd_type(struct client *, struct cslot *, int, char **, size_t *);
void cmd_strlen(struct client *, struct cslot *, int, char **, size_t *);
void cmd_flushall(struct client *, struct cslot *, int, char **, size_t *);

void cmd_cfg_set(struct client *, struct cslot *, int, char **, size_t *);
void cmd_cfg_get(struct client *, struct cslot *, int, char **, size_t *);
void cmd_cfg_del(struct client *, struct cslot *, int, char **, size_t *);
void cmd_cfg_list(struct client *, struct cslot *, int, char **, size_t *);
void cmd_cfg_history(struct client *, struct cslot *, int, char **, size_t *);

void cmd_subscribe(struct client *, struct cslot *, int, char **, size_t *);
void cmd_unsubscribe(struct client *, struct cslot *, int, char **, size_t *);
void cmd_psubscribe(struct client *, struct cslot *, int, char **, size_t *);
void cmd_punsubscribe(struct client *, struct cslot *, int, char **, size_t *);
void cmd_publish(struct client *, struct cslot *, int, char **, size_t *);
void cmd_pubsub(struct client *, struct cslot *, int, char **, size_t *);

/* cmd_audit.c (issue 5) */
void cmd_cfg_audit(struct client *, struct cslot *, int, char **, size_t *);
void cmd_cfg_audit_verify(struct client *, struct cslot *, int, char **, size_t *);
void cmd_cfg_watch(struct client *, struct cslot *, int, char **, size_t *);

/* cmd_multi.c (issue 6): transactions */
void cmd_multi(struct client *, struct cslot *, int, char **, size_t *);
void cmd_exec(struct client *, struct cslot *, int, char **, size_t *);
void cmd_discard(struct client *, struct cslot *, int, char **, size_t *);
void cmd_watch(struct client *, struct cslot *, int, char **, size_t *);
void cmd_unwatch(struct client *, struct cslot *, int, char **, size_t *);

void cmd_cfg_cluster(struct client *, struct cslot *, int, char **, size_t *);
void cmd_cfg_health(struct client *, struct cslot *, int, char **, size_t *);

#endif
