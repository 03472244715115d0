/*
 * cmd_pubsub.c - Pub/Sub commands: SUBSCRIBE UNSUBSCRIBE PSUBSCRIBE PUNSUBSCRIBE PUBLISH
 * PUBSUB (CHANNELS NUMSUB NUMPAT SHARDCHANNELS SHARDNUMSUB HELP), with Redis 7's reply
 * shapes. The registries and delivery are in pubsub.c; none of this is replicated:
 * PUBLISH reaches the subscribers connected to this node (docs/commands.md "Pub/Sub").
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "client.h"
#include "commands.h"
#include "pubsub.h"
#include "server.h"

#define EQ(a, b) (strcasecmp((a), (b)) == 0)

void cmd_subscribe(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    pubsub_subscribe(c, s, false, argc - 1, argv + 1, len + 1);
}

void cmd_unsubscribe(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    pubsub_unsubscribe(c, s, false, argc - 1, argv + 1, len + 1);
}

void cmd_psubscribe(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    pubsub_subscribe(c, s, true, argc - 1, argv + 1, len + 1);
}

void cmd_punsubscribe(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    pubsub_unsubscribe(c, s, true, argc - 1, argv + 1, len + 1);
}

void cmd_publish(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    (void)argc;
    size_t n = pubsub_publish(c->srv, argv[1], len[1], argv[2], len[2]);
    resp_w_int(cmd_out(s), (long long)n);
}

/* PUBSUB CHANNELS collects into a side buffer first: the count precedes the names. */
struct chan_list {
    struct resp_buf body;
    long long n;
};

static void add_channel(void *ud, const char *ch, size_t chlen)
{
    struct chan_list *l = ud;
    resp_w_bulk(&l->body, ch, chlen);
    l->n++;
}

static void pubsub_channels(struct client *c, struct cslot *s, int argc, char **argv,
                            size_t *len)
{
    struct chan_list l = {.n = 0};
    resp_buf_init(&l.body);
    pubsub_each_channel(c->srv, argc == 3 ? argv[2] : NULL, argc == 3 ? len[2] : 0,
                        PUBSUB_CHANNELS_MAX, add_channel, &l);
    if (l.body.oom) {
        resp_w_error(cmd_out(s), "ERR out of memory");
    } else {
        resp_w_array(cmd_out(s), l.n);
        resp_buf_append(cmd_out(s), l.body.data, l.body.len);
    }
    resp_buf_free(&l.body);
}

static void pubsub_help(struct cslot *s)
{
    static const char *const lines[] = {
        "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CHANNELS [<pattern>]",
        "    Return the currently active channels matching a <pattern> (default: '*').",
        "NUMPAT",
        "    Return number of subscriptions to patterns.",
        "NUMSUB [<channel> ...]",
        "    Return the number of subscribers for the specified channels, excluding",
        "    pattern subscriptions(default: no channels).",
        "SHARDCHANNELS [<pattern>]",
        "    Always empty: raftconf has no sharded Pub/Sub (SSUBSCRIBE).",
        "SHARDNUMSUB [<shardchannel> ...]",
        "    Always 0 per channel: raftconf has no sharded Pub/Sub.",
        "HELP",
        "    Prints this help."};
    size_t n = sizeof lines / sizeof lines[0];
    resp_w_array(cmd_out(s), (long long)n);
    for (size_t i = 0; i < n; i++)
        resp_w_simple(cmd_out(s), lines[i]);
}

static bool sub_arity(struct cslot *s, const char *sub, int argc, int want)
{
    if (want > 0 ? argc == want : argc >= -want)
        return true;
    resp_w_errorf(cmd_out(s), "ERR wrong number of arguments for 'pubsub|%s' command", sub);
    return false;
}

/* NUMSUB / SHARDNUMSUB: a flat array channel, count, ... (also in RESP3, as Redis 7). */
static void pubsub_numsub(struct client *c, struct cslot *s, int argc, char **argv,
                          size_t *len, bool shard)
{
    struct resp_buf *b = cmd_out(s);
    resp_w_array(b, 2LL * (argc - 2));
    for (int i = 2; i < argc; i++) {
        resp_w_bulk(b, argv[i], len[i]);
        resp_w_int(b, shard ? 0 : (long long)pubsub_channel_subscribers(c->srv, argv[i],
                                                                           len[i]));
    }
}

void cmd_pubsub(struct client *c, struct cslot *s, int argc, char **argv, size_t *len)
{
    const char *sub = argv[1];
    if (EQ(sub, "CHANNELS")) {
        if (sub_arity(s, "channels", argc, argc <= 3 ? argc : 3))
            pubsub_channels(c, s, argc, argv, len);
    } else if (EQ(sub, "NUMSUB")) {
        pubsub_numsub(c, s, argc, argv, len, false);
    } else if (EQ(sub, "NUMPAT")) {
        if (sub_arity(s, "numpat", argc, 2))
            resp_w_int(cmd_out(s), (long long)pubsub_num_patterns(c->srv));
    } else if (EQ(sub, "SHARDCHANNELS")) {
        if (sub_arity(s, "shardchannels", argc, argc <= 3 ? argc : 3))
            resp_w_array(cmd_out(s), 0);
    } else if (EQ(sub, "SHARDNUMSUB")) {
        pubsub_numsub(c, s, argc, argv, len, true);
    } else if (EQ(sub, "HELP")) {
        if (sub_arity(s, "help", argc, 2))
            pubsub_help(s);
    } else {
        resp_w_errorf(cmd_out(s), "ERR unknown subcommand '%.128s'. Try PUBSUB HELP.", sub);
    }
}
