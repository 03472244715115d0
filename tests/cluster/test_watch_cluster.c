/*
 * test_watch_cluster.c - CFG.WATCH and the audit trail on a real 3-node cluster (issue 5):
 *  - a watch sent to a FOLLOWER right after writes acknowledged by the leader returns every
 *    one of them, in order (the read barrier makes it linearizable);
 *  - a blocked watch on a follower wakes when the leader commits a change under its prefix;
 *  - every node holds the same audit chain (same revisions, VERIFY ok, same record hashes
 *    seen through CFG.AUDIT).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"

static struct cluster cl;

static void fini(void) { cl_destroy(&cl); }

Test(watch_cluster, follower_serves_every_committed_change, .fini = fini, .timeout = 90)
{
    CL_ASSERT(&cl, cl_start(&cl, 3, false, NULL) == 0, "3-node cluster did not start");
    int ld = cl_wait_leader(&cl, cl_all(&cl), 15000);
    CL_ASSERT(&cl, ld >= 0, "no leader");
    int fo = (ld + 1) % 3;
    redisContext *L = cl_connect(&cl, ld, cl.request_timeout_ms + 3000);
    redisContext *F = cl_connect(&cl, fo, cl.request_timeout_ms + 3000);
    CL_ASSERT(&cl, L && F, "connect");
    long long first = -1, last = 0;
    for (int i = 0; i < 10; i++) {
        redisReply *r = redisCommand(L, "CFG.SET /w/k%d v%d", i % 3, i);
        CL_ASSERT(&cl, r && r->type == REDIS_REPLY_ARRAY && r->elements == 6, "CFG.SET");
        last = r->element[1]->integer; /* revision */
        if (first < 0)
            first = last;
        freeReplyObject(r);
    }
    /* Right after the acknowledgements, on the follower: all ten, in order. */
    redisReply *w = redisCommand(F, "CFG.WATCH /w/ FROM %lld", first - 1);
    char f[512];
    CL_ASSERT(&cl, w && w->type == REDIS_REPLY_ARRAY && w->elements == 10,
              "follower watch: %s", cl_fmt(w, f, sizeof f));
    for (size_t i = 0; i < 10; i++) {
        redisReply *e = w->element[i]; /* RESP2: key k type t value v revision r */
        CL_ASSERT(&cl, e->type == REDIS_REPLY_ARRAY && e->elements == 8, "change shape");
        CL_ASSERT(&cl, e->element[7]->integer == first + (long long)i, "revision order");
        char want[16];
        snprintf(want, sizeof want, "v%zu", i);
        CL_ASSERT(&cl, strcmp(e->element[5]->str, want) == 0, "value %s", want);
    }
    freeReplyObject(w);
    /* Blocked on the follower, woken by a write through the leader. */
    redisAppendCommand(F, "CFG.WATCH /w/ FROM %lld BLOCK 8000", last);
    redisReply *r = redisCommand(L, "SET /w/late yes");
    CL_ASSERT(&cl, r && r->type == REDIS_REPLY_STATUS, "SET");
    freeReplyObject(r);
    void *vp = NULL;
    long t0 = cl_now_ms();
    CL_ASSERT(&cl, redisGetReply(F, &vp) == REDIS_OK, "blocked watch reply");
    w = vp;
    CL_ASSERT(&cl, w && w->type == REDIS_REPLY_ARRAY && w->elements == 1,
              "woken watch: %s", cl_fmt(w, f, sizeof f));
    CL_ASSERT(&cl, strcmp(w->element[0]->element[1]->str, "/w/late") == 0, "key");
    CL_ASSERT(&cl, cl_now_ms() - t0 < 6000, "woken by the write, not the timeout");
    freeReplyObject(w);
    /* Same chain everywhere. */
    char h0[600] = "";
    for (int i = 0; i < 3; i++) {
        redisContext *c = cl_connect(&cl, i, cl.request_timeout_ms + 3000);
        CL_ASSERT(&cl, c, "connect %d", i);
        r = redisCommand(c, "CFG.AUDIT.VERIFY");
        CL_ASSERT(&cl, r && r->type == REDIS_REPLY_ARRAY && r->element[1]->integer == 1,
                  "node %d VERIFY: %s", i + 1, cl_fmt(r, f, sizeof f));
        freeReplyObject(r);
        r = redisCommand(c, "CFG.AUDIT /w/late");
        CL_ASSERT(&cl, r && r->type == REDIS_REPLY_ARRAY && r->elements == 1, "audit");
        char h[600];
        cl_fmt(r, h, sizeof h);
        /* client address and everything else are the leader's: identical on every node */
        if (i == 0)
            snprintf(h0, sizeof h0, "%s", h);
        else
            CL_ASSERT(&cl, strcmp(h, h0) == 0, "node %d audit differs:\n%s\n%s", i + 1, h, h0);
        freeReplyObject(r);
        redisFree(c);
    }
    redisFree(L);
    redisFree(F);
}
