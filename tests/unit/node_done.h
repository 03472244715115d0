/*
 * node_done.h - test helper shared by the node suites: a node_done_fn that records how
 * often it was called, with which rc and reply (the reply is owned by the record).
 */
#ifndef RAFTCONF_TEST_NODE_DONE_H
#define RAFTCONF_TEST_NODE_DONE_H

#include <string.h>

#include "ns/ns.h"

struct done {
    int calls;
    int rc;
    struct ns_reply *reply;
};

static inline void on_done(void *ud, int rc, struct ns_reply *reply)
{
    struct done *d = ud;
    d->calls++;
    d->rc = rc;
    if (d->reply)
        ns_reply_free(d->reply);
    d->reply = reply;
}

static inline void done_clear(struct done *d)
{
    if (d->reply)
        ns_reply_free(d->reply);
    memset(d, 0, sizeof *d);
}

#endif
