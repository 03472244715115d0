/*
 * ns_reply.c - the reply tree that ns_apply and the readers build and the service renders
 * as RESP2/RESP3.
 *
 * Invariants: every str is malloc'd and NUL-terminated (len excludes the NUL); a map of
 * n pairs has 2n elements in elem (key, value, key, value ...); a cleared reply is all
 * zero. Builders leave the reply cleared when an allocation fails, so a caller can always
 * ns_reply_clear it.
 */
#include <stdarg.h>
#include <string.h>

#include "../rc.h"
#include "ns_internal.h"

/* Message bound for error replies (they name limits and versions, never values). */
#define NS_ERR_MSG_MAX 512

void ns_reply_clear(struct ns_reply *r)
{
    if (!r)
        return;
    if (r->elem) {
        size_t total = r->type == NS_R_MAP ? 2 * r->n : r->n;
        for (size_t i = 0; i < total; i++)
            ns_reply_clear(&r->elem[i]);
        free(r->elem);
    }
    free(r->str);
    memset(r, 0, sizeof(*r));
}

void ns_reply_free(struct ns_reply *r)
{
    if (!r)
        return;
    ns_reply_clear(r);
    free(r);
}

static int set_str(struct ns_reply *r, uint8_t type, const void *p, size_t len)
{
    NS_ASSERT(r->str == NULL);
    NS_ASSERT(r->elem == NULL);
    char *s = malloc(len + 1);
    if (!s)
        return RC_NOMEM;
    if (len)
        memcpy(s, p, len);
    s[len] = '\0';
    r->type = type;
    r->str = s;
    r->len = len;
    return RC_OK;
}

int ns_reply_set_status(struct ns_reply *r, const char *s)
{
    return set_str(r, NS_R_STATUS, s, strlen(s));
}

int ns_reply_set_error(struct ns_reply *r, int rc, const char *fmt, ...)
{
    NS_ASSERT(rc != RC_OK);
    char buf[NS_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    NS_ASSERT(k >= 0);
    size_t len = (size_t)k < sizeof(buf) ? (size_t)k : sizeof(buf) - 1;
    int rc2 = set_str(r, NS_R_ERR, buf, len);
    if (rc2 == RC_OK)
        r->rc = rc;
    return rc2;
}

void ns_reply_set_int(struct ns_reply *r, long long v)
{
    NS_ASSERT(r->str == NULL);
    NS_ASSERT(r->elem == NULL);
    r->type = NS_R_INT;
    r->i = v;
}

int ns_reply_set_bulk(struct ns_reply *r, const void *p, size_t len)
{
    return set_str(r, NS_R_BULK, p, len);
}

void ns_reply_set_null(struct ns_reply *r)
{
    NS_ASSERT(r->str == NULL);
    NS_ASSERT(r->elem == NULL);
    r->type = NS_R_NULL;
}

static int set_elems(struct ns_reply *r, uint8_t type, size_t n, size_t total)
{
    NS_ASSERT(r->str == NULL);
    NS_ASSERT(r->elem == NULL);
    struct ns_reply *e = NULL;
    if (total) {
        e = calloc(total, sizeof(*e));
        if (!e)
            return RC_NOMEM;
    }
    r->type = type;
    r->n = n;
    r->elem = e;
    return RC_OK;
}

int ns_reply_set_array(struct ns_reply *r, size_t n)
{
    return set_elems(r, NS_R_ARRAY, n, n);
}

int ns_reply_set_map(struct ns_reply *r, size_t npairs)
{
    NS_ASSERT(npairs < SIZE_MAX / 2);
    return set_elems(r, NS_R_MAP, npairs, 2 * npairs);
}

/* Fill pair i of map r with a bulk-string name and an integer value. */
static int map_int(struct ns_reply *r, size_t i, const char *name, long long v)
{
    NS_ASSERT(r->type == NS_R_MAP);
    NS_ASSERT(i < r->n);
    int rc = ns_reply_set_bulk(&r->elem[2 * i], name, strlen(name));
    if (rc == RC_OK)
        ns_reply_set_int(&r->elem[2 * i + 1], v);
    return rc;
}

int ns_reply_kv(const struct ns_kv *kv, struct ns_reply *r)
{
    int rc = ns_reply_set_map(r, 5);
    if (rc == RC_OK)
        rc = ns_reply_set_bulk(&r->elem[0], "value", 5);
    if (rc == RC_OK)
        rc = ns_reply_set_bulk(&r->elem[1], kv->value ? kv->value : "", kv->vlen);
    if (rc == RC_OK)
        rc = map_int(r, 1, "version", (long long)kv->version);
    if (rc == RC_OK)
        rc = map_int(r, 2, "create_revision", (long long)kv->create_rev);
    if (rc == RC_OK)
        rc = map_int(r, 3, "mod_revision", (long long)kv->mod_rev);
    if (rc == RC_OK)
        rc = map_int(r, 4, "mtime_ms", (long long)kv->mtime_ms);
    if (rc != RC_OK)
        ns_reply_clear(r);
    return rc;
}

/* The CFG.SET success shape: {"revision": r, "version": v, "created": 0|1}. */
int ns_reply_cfgset(struct ns_reply *r, uint64_t revision, uint64_t version, bool created)
{
    int rc = ns_reply_set_map(r, 3);
    if (rc == RC_OK)
        rc = map_int(r, 0, "revision", (long long)revision);
    if (rc == RC_OK)
        rc = map_int(r, 1, "version", (long long)version);
    if (rc == RC_OK)
        rc = map_int(r, 2, "created", created ? 1 : 0);
    if (rc != RC_OK)
        ns_reply_clear(r);
    return rc;
}
