/*
 * commands.c - the command table (see commands.h) and the helpers handlers share:
 * lookup, error replies from RC_* codes, rendering of ns reply trees as RESP2/RESP3.
 *
 * Invariant: names in cmd_table are lower case, unique, at most CMD_NAME_MAX bytes.
 */
#include "commands.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "cmd_gov.h"
#include "ns/ns.h"
#include "rc.h"

#define CMD_NAME_MAX 32

#define W CMD_WRITE
#define R CMD_READONLY
#define F CMD_FAST
#define A CMD_ADMIN
#define NA CMD_NOAUTH
#define L CMD_LOADING
#define S CMD_STALE
#define DO CMD_DENYOOM

static const struct cmd_def cmd_table[] = {
    /* connection */
    {"auth", -2, NA | L | S | F, 0, 0, 0, cmd_auth, "Authenticates the connection.", "1.0.0",
     "connection", "O(N) where N is the number of passwords", "[username] password"},
    {"client", -2, L | S, 0, 0, 0, cmd_client, "A container for client connection commands.",
     "2.4.0", "connection", "Depends on subcommand.",
     "ID|GETNAME|SETNAME name|SETINFO attr value|LIST|INFO|KILL filter|NO-EVICT on|"
     "NO-TOUCH on"},
    {"echo", 2, F, 0, 0, 0, cmd_echo, "Returns the given string.", "1.0.0", "connection",
     "O(1)", "message"},
    {"hello", -1, NA | L | S | F, 0, 0, 0, cmd_hello,
     "Handshakes with the server: protocol version, AUTH, SETNAME.", "6.0.0", "connection",
     "O(1)", "[protover] [AUTH username password] [SETNAME clientname]"},
    {"ping", -1, F | S | L, 0, 0, 0, cmd_ping, "Returns the server's liveliness response.",
     "1.0.0", "connection", "O(1)", "[message]"},
    {"quit", -1, NA | L | S | F, 0, 0, 0, cmd_quit, "Closes the connection.", "1.0.0",
     "connection", "O(1)", ""},
    {"readonly", 1, F | L | S, 0, 0, 0, cmd_readonly,
     "Allows local (possibly stale) reads on this connection, without a read barrier.",
     "3.0.0", "cluster", "O(1)", ""},
    {"readwrite", 1, F | L | S, 0, 0, 0, cmd_readwrite,
     "Reverts READONLY: reads are linearizable again.", "3.0.0", "cluster", "O(1)", ""},
    {"reset", 1, NA | L | S | F, 0, 0, 0, cmd_reset, "Resets the connection.", "6.2.0",
     "connection", "O(1)", ""},
    {"select", 2, L | S | F, 0, 0, 0, cmd_select,
     "Changes the selected database (only 0 exists).", "1.0.0", "connection", "O(1)",
     "index"},
    /* server */
    {"command", -1, L | S, 0, 0, 0, cmd_command, "Returns detailed information about commands.",
     "2.8.13", "server", "O(N) where N is the total number of commands",
     "COUNT|DOCS [name ...]|INFO [name ...]|LIST"},
    {"config", -2, A | L | S, 0, 0, 0, cmd_config,
     "Reads or changes server configuration options.", "2.0.0", "server",
     "O(N) where N is the number of options", "GET pattern ...|SET name value ...|RESETSTAT"},
    /* issue 6 (redis-tests helper): DEBUG LOG, a no-op for clients' test suites */
    {"debug", -2, A | L | S, 0, 0, 0, cmd_debug, "A container for debugging commands.",
     "1.0.0", "server", "Depends on subcommand.", "LOG message|HELP"},
    {"dbsize", 1, R | F, 0, 0, 0, cmd_dbsize, "Returns the number of keys.", "1.0.0", "server",
     "O(1)", ""},
    {"info", -1, L | S, 0, 0, 0, cmd_info, "Returns information and statistics about the server.",
     "1.0.0", "server", "O(1)", "[section ...]"},
    {"time", 1, L | S | F, 0, 0, 0, cmd_time, "Returns the server time.", "2.6.0", "server",
     "O(1)", ""},
    {"flushall", -1, W, 0, 0, 0, cmd_flushall,
     "Removes all keys (only with enable-flushall yes).", "1.0.0", "server",
     "O(N) where N is the number of keys", "[ASYNC|SYNC]"},
    {"flushdb", -1, W, 0, 0, 0, cmd_flushall,
     "Removes all keys (only with enable-flushall yes).", "1.0.0", "server",
     "O(N) where N is the number of keys", "[ASYNC|SYNC]"},
    /* keyspace / strings */
    {"del", -2, W, 1, -1, 1, cmd_del, "Deletes one or more keys.", "1.0.0", "generic",
     "O(N) where N is the number of keys", "key [key ...]"},
    {"exists", -2, R | F, 1, -1, 1, cmd_exists, "Counts how many of the keys exist.", "1.0.0",
     "generic", "O(N) where N is the number of keys", "key [key ...]"},
    {"get", 2, R | F, 1, 1, 1, cmd_get, "Returns the value of a key.", "1.0.0", "string",
     "O(1)", "key"},
    {"keys", 2, R, 0, 0, 0, cmd_keys, "Returns all key names that match a pattern.", "1.0.0",
     "generic", "O(N) with N being the number of keys", "pattern"},
    {"mget", -2, R | F, 1, -1, 1, cmd_mget, "Returns the values of one or more keys.", "1.0.0",
     "string", "O(N) where N is the number of keys", "key [key ...]"},
    {"mset", -3, W | DO, 1, -1, 2, cmd_mset, "Sets several keys atomically (one log entry).",
     "1.0.1", "string", "O(N) where N is the number of keys", "key value [key value ...]"},
    {"scan", -2, R, 0, 0, 0, cmd_scan, "Iterates over the key names (ordered).", "2.8.0",
     "generic", "O(1) per call", "cursor [MATCH pattern] [COUNT count] [TYPE type]"},
    {"set", -3, W | DO, 1, 1, 1, cmd_set, "Sets the value of a key.", "1.0.0", "string",
     "O(1)", "key value [NX|XX] [GET]"},
    {"strlen", 2, R | F, 1, 1, 1, cmd_strlen, "Returns the length of a value.", "2.2.0",
     "string", "O(1)", "key"},
    {"type", 2, R | F, 1, 1, 1, cmd_type, "Returns the type of a key (string or none).",
     "1.0.0", "generic", "O(1)", "key"},
    {"unlink", -2, W | F, 1, -1, 1, cmd_del, "Deletes one or more keys (same as DEL).", "4.0.0",
     "generic", "O(N) where N is the number of keys", "key [key ...]"},
    /* pub/sub (node-local, not replicated: see pubsub.h) */
    {"psubscribe", -2, L | S, 0, 0, 0, cmd_psubscribe,
     "Listens for messages published to channels that match one or more patterns.", "2.0.0",
     "pubsub", "O(N) where N is the number of patterns", "pattern [pattern ...]"},
    {"publish", 3, L | S | F, 0, 0, 0, cmd_publish,
     "Posts a message to a channel (subscribers connected to this node).", "2.0.0", "pubsub",
     "O(N+M) where N is the number of subscribers and M the number of patterns",
     "channel message"},
    {"pubsub", -2, L | S, 0, 0, 0, cmd_pubsub, "A container for Pub/Sub commands.", "2.8.0",
     "pubsub", "Depends on subcommand.",
     "CHANNELS [pattern]|NUMSUB [channel ...]|NUMPAT|SHARDCHANNELS [pattern]|"
     "SHARDNUMSUB [channel ...]|HELP"},
    {"punsubscribe", -1, L | S, 0, 0, 0, cmd_punsubscribe,
     "Stops listening to messages published to channels that match one or more patterns.",
     "2.0.0", "pubsub", "O(N) where N is the number of patterns", "[pattern [pattern ...]]"},
    {"subscribe", -2, L | S, 0, 0, 0, cmd_subscribe,
     "Listens for messages published to channels.", "2.0.0", "pubsub",
     "O(N) where N is the number of channels", "channel [channel ...]"},
    {"unsubscribe", -1, L | S, 0, 0, 0, cmd_unsubscribe,
     "Stops listening to messages posted to channels.", "2.0.0", "pubsub",
     "O(N) where N is the number of channels", "[channel [channel ...]]"},
    /* transactions (issue 6, cmd_multi.c): a transaction is one log entry */
    {"discard", 1, L | S | F, 0, 0, 0, cmd_discard,
     "Discards a transaction.", "2.0.0", "transactions",
     "O(N) where N is the number of queued commands", ""},
    {"exec", 1, L | S, 0, 0, 0, cmd_exec,
     "Executes all commands in a transaction, atomically, as one log entry.", "1.2.0",
     "transactions", "Depends on commands in the transaction", ""},
    {"multi", 1, L | S | F, 0, 0, 0, cmd_multi, "Starts a transaction.", "1.2.0",
     "transactions", "O(1)", ""},
    {"unwatch", 1, L | S | F, 0, 0, 0, cmd_unwatch,
     "Forgets about watched keys of a transaction.", "2.2.0", "transactions", "O(1)", ""},
    {"watch", -2, L | S | F, 1, -1, 1, cmd_watch,
     "Monitors changes to keys to determine the execution of a transaction.", "2.2.0",
     "transactions", "O(1) for every key", "key [key ...]"},
    /* configuration keys */
    {"cfg.audit", -2, R, 0, 0, 0, cmd_cfg_audit,
     "Lists the audit records that touched a prefix, oldest first.", "0.1.0", "raftconf",
     "O(N) where N is the number of audit records after SINCE",
     "prefix [COUNT count] [SINCE revision] [ACTOR actor]"},
    {"cfg.audit.verify", -1, A, 0, 0, 0, cmd_cfg_audit_verify,
     "Recomputes the audit hash chain of a group and reports the first break.", "0.1.0",
     "raftconf", "O(N) where N is the number of retained audit records", "[group]"},
    {"cfg.watch", -4, 0, 0, 0, 0, cmd_cfg_watch,
     "Returns every change under a prefix after a revision, in order; can block.", "0.1.0",
     "raftconf", "O(N) where N is the number of audit records after FROM",
     "prefix FROM revision [COUNT count] [BLOCK milliseconds]"},
    {"cfg.cluster", -2, A | L | S, 0, 0, 0, cmd_cfg_cluster,
     "Inspects or changes the cluster's membership and leadership.", "0.1.0", "raftconf",
     "O(N) where N is the number of members",
     "NODES|INFO|ADD id addr [LEARNER]|PROMOTE id|REMOVE id|TRANSFER id|HELP"},
    {"cfg.health", 1, L | S | F, 0, 0, 0, cmd_cfg_health,
     "Replies OK when this node can serve linearizable reads now, else an error saying why.",
     "0.1.0", "raftconf", "O(1)", ""},
    {"cfg.del", -2, W | F, 1, 1, 1, cmd_cfg_del,
     "Deletes a configuration key, optionally only at a given version.", "0.1.0", "raftconf",
     "O(1)", "key [IFVERSION version]"},
    {"cfg.get", -2, R | F, 1, 1, 1, cmd_cfg_get,
     "Returns a configuration key's value with its metadata, now or as of a revision.",
     "0.1.0", "raftconf", "O(log N) where N is the number of retained versions of the key",
     "key [REV revision]"},
    {"cfg.history", -2, R, 1, 1, 1, cmd_cfg_history,
     "Lists a configuration key's retained versions, newest first.", "0.1.0", "raftconf",
     "O(N) where N is COUNT", "key [COUNT count] [BEFORE revision]"},
    {"cfg.list", -2, R, 0, 0, 0, cmd_cfg_list,
     "Lists keys and values under a prefix, in order, paged.", "0.1.0", "raftconf",
     "O(N) where N is COUNT", "prefix [COUNT count] [AFTER key]"},
    {"cfg.set", -3, W | DO, 1, 1, 1, cmd_cfg_set,
     "Sets a configuration key, optionally compare-and-set on its version.", "0.1.0",
     "raftconf", "O(1)", "key value [IFVERSION version]"},
    /* governance (issue 5): schemas, snapshots, rollback (cmd_gov.c) */
    {"cfg.schema.set", -3, W, 0, 0, 0, cmd_cfg_schema_set,
     "Attaches a JSON Schema to a key pattern; writes of matching keys must conform.",
     "0.1.0", "raftconf", "O(N) where N is the number of existing keys it governs",
     "pattern schema [FORCE]"},
    {"cfg.schema.get", 2, R | F, 0, 0, 0, cmd_cfg_schema_get,
     "Returns the schema attached to exactly this pattern.", "0.1.0", "raftconf", "O(1)",
     "pattern"},
    {"cfg.schema.del", 2, W | F, 0, 0, 0, cmd_cfg_schema_del,
     "Removes the schema of a pattern.", "0.1.0", "raftconf", "O(1)", "pattern"},
    {"cfg.schema.list", -1, R, 0, 0, 0, cmd_cfg_schema_list,
     "Lists the patterns that have a schema, optionally only those beginning with a prefix.",
     "0.1.0", "raftconf", "O(N) where N is the number of schemas", "[prefix]"},
    {"cfg.snapshot", -2, W | F, 0, 0, 0, cmd_cfg_snapshot,
     "Pins the current revision of a prefix as a last-known-good snapshot; returns its id.",
     "0.1.0", "raftconf", "O(1)", "prefix [LABEL label]"},
    {"cfg.snapshots", -1, R, 0, 0, 0, cmd_cfg_snapshots,
     "Lists the pinned snapshots whose prefix begins with a prefix.", "0.1.0", "raftconf",
     "O(N) where N is the number of snapshots", "[prefix]"},
    {"cfg.snapshot.del", 2, W | F, 0, 0, 0, cmd_cfg_snapshot_del,
     "Deletes (unpins) a snapshot.", "0.1.0", "raftconf", "O(1)", "id"},
    {"cfg.rollback", -2, W, 0, 0, 0, cmd_cfg_rollback,
     "Restores every key under a prefix to a snapshot or revision, as one atomic entry.",
     "0.1.0", "raftconf", "O(N) where N is the number of keys changed since the target",
     "prefix [TO id|REV revision] [DRYRUN] [REASON text]"},
};
#define N_CMDS (sizeof cmd_table / sizeof cmd_table[0])

size_t cmd_count(void) { return N_CMDS; }

const struct cmd_def *cmd_at(size_t i) { return i < N_CMDS ? &cmd_table[i] : NULL; }

const struct cmd_def *cmd_lookup(const char *name, size_t len)
{
    if (len == 0 || len > CMD_NAME_MAX)
        return NULL;
    char low[CMD_NAME_MAX + 1];
    for (size_t i = 0; i < len; i++)
        low[i] = (char)tolower((unsigned char)name[i]);
    low[len] = '\0';
    /* 32 rows: a linear scan with a first-byte check is as fast as anything fancier. */
    for (size_t i = 0; i < N_CMDS; i++)
        if (cmd_table[i].name[0] == low[0] && strcmp(cmd_table[i].name, low) == 0)
            return &cmd_table[i];
    return NULL;
}

size_t cmd_flag_names(uint32_t flags, const char **names, size_t max)
{
    static const struct { uint32_t f; const char *n; } fl[] = {
        {CMD_WRITE, "write"}, {CMD_READONLY, "readonly"}, {CMD_DENYOOM, "denyoom"},
        {CMD_ADMIN, "admin"}, {CMD_NOAUTH, "no_auth"}, {CMD_LOADING, "loading"},
        {CMD_STALE, "stale"}, {CMD_FAST, "fast"}, {CMD_NOSCRIPT, "noscript"},
    };
    size_t n = 0;
    for (size_t i = 0; i < sizeof fl / sizeof fl[0] && n < max; i++)
        if (flags & fl[i].f)
            names[n++] = fl[i].n;
    return n;
}

struct resp_buf *cmd_out(struct cslot *s) { return &s->out; }

int cmd_proto(const struct client *c) { return c->proto; }

void cmd_reply_rc(struct cslot *s, int rc, const char *msg)
{
    resp_w_errorf(&s->out, "%s %s", rc_prefix(rc), msg ? msg : rc_message(rc));
}

void cmd_reply_listing(struct cslot *s, int rc, long long n, struct resp_buf *tmp)
{
    if (rc != RC_OK) {
        cmd_reply_rc(s, rc, NULL);
    } else {
        resp_w_array(cmd_out(s), n);
        resp_buf_append(cmd_out(s), tmp->data, tmp->len);
    }
    resp_buf_free(tmp);
}

void cmd_render_reply(struct resp_buf *b, int proto, const struct ns_reply *r)
{
    switch (r->type) {
    case NS_R_STATUS:
        resp_w_simple(b, r->str ? r->str : "OK");
        break;
    case NS_R_ERR:
        resp_w_errorf(b, "%s %s", rc_prefix(r->rc), r->str ? r->str : rc_message(r->rc));
        break;
    case NS_R_INT:
        resp_w_int(b, r->i);
        break;
    case NS_R_BULK:
        resp_w_bulk(b, r->str ? r->str : "", r->len);
        break;
    case NS_R_NULL:
        resp_w_null(b, proto);
        break;
    case NS_R_ARRAY:
        resp_w_array(b, (long long)r->n);
        for (size_t i = 0; i < r->n; i++)
            cmd_render_reply(b, proto, &r->elem[i]);
        break;
    case NS_R_MAP:
        resp_w_map(b, proto, (long long)r->n);
        for (size_t i = 0; i < 2 * r->n; i++)
            cmd_render_reply(b, proto, &r->elem[i]);
        break;
    default: /* type 0: a replayed entry's empty reply; never reaches a client normally */
        resp_w_simple(b, "OK");
        break;
    }
}

bool cmd_parse_ll(const char *s, size_t len, long long *out)
{
    if (len == 0 || len > 20)
        return false;
    char buf[24];
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (!(isdigit((unsigned char)buf[0]) || (buf[0] == '-' && len > 1)))
        return false;
    errno = 0;
    char *end;
    long long v = strtoll(buf, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

bool cmd_key_ok_or_reply(struct cslot *s, size_t klen)
{
    struct ns_limits lim;
    ns_limits_default(&lim);
    if (klen == 0) { /* same texts as ns_apply gives, checked before proposing */
        resp_w_error(&s->out, "ERR empty keys are not allowed");
        return false;
    }
    if (klen <= lim.key_len_max)
        return true;
    resp_w_errorf(&s->out, "ERR key length %zu exceeds the limit of %zu bytes", klen,
                  lim.key_len_max);
    return false;
}
