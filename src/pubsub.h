/*
 * pubsub.h - Pub/Sub registries of one server process: channel -> subscribers, pattern ->
 * subscribers, and per client the channels and patterns it holds; message delivery.
 *
 * Semantics are Redis 7's non-sharded Pub/Sub (see docs/commands.md "Pub/Sub"):
 *   - a client is "subscribed" while it holds at least one channel or pattern; in RESP2
 *     only (P)SUBSCRIBE, (P)UNSUBSCRIBE, PING, QUIT and RESET run then (RESP3: anything);
 *   - PUBLISH delivers to the subscribers of the channel and of every matching pattern
 *     (a client holding both gets both a "message" and a "pmessage") and counts every
 *     delivery; delivery is local to this node (PUBLISH is not replicated);
 *   - message frames go to a subscriber's socket after every reply of that client that is
 *     already complete and before any reply still pending (client_push), so a frame is
 *     never inside a reply and arrives after the SUBSCRIBE confirmation.
 *
 * Invariants: every registry entry has at least one subscriber (empty ones are freed); a
 * (client, channel) or (client, pattern) pair is held at most once, by one struct ps_sub
 * that both the entry's and the client's arrays point to, with back indexes for O(1)
 * removal; a freed client holds nothing (client_free calls pubsub_client_free).
 *
 * Limits: PUBSUB_NAME_LEN_MAX per channel/pattern, PUBSUB_CLIENT_SUBS_MAX per client,
 * PUBSUB_CHANNELS_MAX distinct channels and PUBSUB_PATTERNS_MAX distinct patterns per
 * server (PUBLISH tries every pattern, so their number bounds its cost).
 */
#ifndef RAFTCONF_PUBSUB_H
#define RAFTCONF_PUBSUB_H

#include <stdbool.h>
#include <stddef.h>

struct server;
struct client;
struct cslot;
struct cmd_def;

#define PUBSUB_NAME_LEN_MAX (64u * 1024)
#define PUBSUB_CLIENT_SUBS_MAX 65536u
#define PUBSUB_CHANNELS_MAX (1u << 20)
#define PUBSUB_PATTERNS_MAX 10000u

/* Deliver msg on channel ch to this node's subscribers; returns how many deliveries were
 * made (channel subscribers + pattern subscriptions that match). Safe to call from a
 * command handler or from the turn end (keyspace notifications); never frees a client. */
size_t pubsub_publish(struct server *s, const char *ch, size_t chlen, const char *msg,
                      size_t mlen);

/* (P)SUBSCRIBE / (P)UNSUBSCRIBE for the client's command slot: one reply per name (or
 * one ["unsubscribe", nil, 0] when unsubscribing from all while holding none). */
void pubsub_subscribe(struct client *c, struct cslot *s, bool pattern, int n,
                      char **names, size_t *lens);
void pubsub_unsubscribe(struct client *c, struct cslot *s, bool pattern, int n,
                        char **names, size_t *lens);

/* Drop every subscription of c without replying (RESET, disconnect). */
void pubsub_client_free(struct client *c);
/* Channels and patterns c holds. */
size_t pubsub_client_channels(const struct client *c);
size_t pubsub_client_patterns(const struct client *c);
/* In subscribed mode: holds at least one channel or pattern. */
bool pubsub_client_subscribed(const struct client *c);

/* The RESP2 subscribed-mode rule: true when command d may run now; otherwise writes
 * Redis's "-ERR Can't execute '<cmd>': only ..." to s and returns false. */
bool pubsub_context_ok_or_reply(const struct client *c, struct cslot *s,
                                const struct cmd_def *d, int argc, char **argv);

/* Server-wide counts: distinct channels with subscribers, distinct patterns. */
size_t pubsub_num_channels(const struct server *s);
size_t pubsub_num_patterns(const struct server *s);
/* Subscribers of one channel (pattern subscribers not counted, as NUMSUB). */
size_t pubsub_channel_subscribers(const struct server *s, const char *ch, size_t chlen);
/* Call fn for every channel with subscribers that matches pattern (NULL = all). Stops
 * after max calls. */
void pubsub_each_channel(const struct server *s, const char *pat, size_t plen, size_t max,
                         void (*fn)(void *ud, const char *ch, size_t chlen), void *ud);

/* Free the registries (after every client is freed). */
void pubsub_free(struct server *s);

#endif
