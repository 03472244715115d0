/*
 * node_entry.c - encoder and validating decoder of the log entry payload envelope (byte
 * table in node_entry.h).
 *
 * Invariants: the decoder reads only inside [buf, buf+len), checks every length before it
 * uses it, and allocates once, after a first pass proved the whole envelope well formed, so
 * a hostile length cannot make it allocate more than the envelope could describe.
 */
#include "node_entry.h"

#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "rc.h"

int node_entry_encode(const struct node_entry *e, uint8_t **out, size_t *len)
{
    if (e->actor_len > NODE_ENTRY_NAME_MAX || e->client_len > NODE_ENTRY_NAME_MAX)
        return RC_BADARG;
    if (e->argc == 0 || e->argc > NODE_ENTRY_ARGC_MAX)
        return RC_BADARG;
    if ((e->actor_len && memchr(e->actor, 0, e->actor_len)) ||
        (e->client_len && memchr(e->client, 0, e->client_len)))
        return RC_BADARG;
    size_t total = NODE_ENTRY_HEADER_BYTES + e->actor_len + e->client_len;
    for (uint32_t i = 0; i < e->argc; i++) {
        if (e->argvlen[i] > NODE_ENTRY_BYTES_MAX)
            return RC_BADARG;
        total += 4 + e->argvlen[i];
        if (total > NODE_ENTRY_BYTES_MAX)
            return RC_BADARG;
    }
    uint8_t *buf = malloc(total);
    if (!buf)
        return RC_NOMEM;
    uint8_t *p = buf;
    *p++ = NODE_ENTRY_VERSION;
    be_put(p, e->request_id, 8), p += 8;
    be_put(p, e->time_ms, 8), p += 8;
    be_put(p, (uint16_t)e->actor_len, 2), p += 2;
    if (e->actor_len)
        memcpy(p, e->actor, e->actor_len), p += e->actor_len;
    be_put(p, (uint16_t)e->client_len, 2), p += 2;
    if (e->client_len)
        memcpy(p, e->client, e->client_len), p += e->client_len;
    be_put(p, e->argc, 4), p += 4;
    for (uint32_t i = 0; i < e->argc; i++) {
        be_put(p, (uint32_t)e->argvlen[i], 4), p += 4;
        if (e->argvlen[i])
            memcpy(p, e->argv[i], e->argvlen[i]), p += e->argvlen[i];
    }
    if ((size_t)(p - buf) != total) {
        free(buf); /* cannot happen: the sizes above are the ones written */
        return RC_BADARG;
    }
    *out = buf;
    *len = total;
    return RC_OK;
}

/* A bounds-checked reader over the envelope. */
struct rd {
    const uint8_t *p;
    size_t left;
};

static int take(struct rd *r, size_t n, const uint8_t **at)
{
    if (n > r->left)
        return RC_CORRUPT;
    *at = r->p;
    r->p += n;
    r->left -= n;
    return RC_OK;
}

static int take_int(struct rd *r, int n, uint64_t *v)
{
    const uint8_t *at;
    if (take(r, (size_t)n, &at))
        return RC_CORRUPT;
    *v = be_get(at, n);
    return RC_OK;
}

static int take_name(struct rd *r, const uint8_t **at, size_t *len)
{
    uint64_t n;
    if (take_int(r, 2, &n) || n > NODE_ENTRY_NAME_MAX || take(r, (size_t)n, at))
        return RC_CORRUPT;
    if (n && memchr(*at, 0, (size_t)n))
        return RC_CORRUPT;
    *len = (size_t)n;
    return RC_OK;
}

/* First pass: validate everything, return the bytes the decoded form needs. */
static int scan(const uint8_t *buf, size_t len, size_t *need)
{
    struct rd r = {buf, len};
    const uint8_t *at;
    uint64_t v, argc;
    size_t alen, clen;
    if (len > NODE_ENTRY_BYTES_MAX || take_int(&r, 1, &v) || v != NODE_ENTRY_VERSION)
        return RC_CORRUPT;
    if (take_int(&r, 8, &v) || take_int(&r, 8, &v))
        return RC_CORRUPT;
    if (take_name(&r, &at, &alen) || take_name(&r, &at, &clen))
        return RC_CORRUPT;
    if (take_int(&r, 4, &argc) || argc == 0 || argc > NODE_ENTRY_ARGC_MAX)
        return RC_CORRUPT;
    /* Each argument needs at least its 4 length bytes: reject absurd argc before sizing. */
    if (argc > r.left / 4)
        return RC_CORRUPT;
    size_t total = alen + 1 + clen + 1 + (size_t)argc * (sizeof(char *) + sizeof(size_t));
    for (uint64_t i = 0; i < argc; i++) {
        if (take_int(&r, 4, &v) || take(&r, (size_t)v, &at))
            return RC_CORRUPT;
        total += (size_t)v + 1;
    }
    if (r.left != 0)
        return RC_CORRUPT; /* trailing bytes */
    *need = total;
    return RC_OK;
}

int node_entry_decode(const uint8_t *buf, size_t len, struct node_entry *out)
{
    size_t need;
    memset(out, 0, sizeof *out);
    if (!buf || scan(buf, len, &need))
        return RC_CORRUPT;
    uint8_t *mem = malloc(need);
    if (!mem)
        return RC_NOMEM;
    struct rd r = {buf, len};
    const uint8_t *at = NULL;
    uint64_t v = 0, argc = 0;
    (void)take_int(&r, 1, &v); /* scan() proved every read below succeeds */
    (void)take_int(&r, 8, &out->request_id);
    (void)take_int(&r, 8, &out->time_ms);
    char **argv = (char **)(void *)mem;
    (void)take_name(&r, &at, &out->actor_len);
    const uint8_t *actor = at;
    (void)take_name(&r, &at, &out->client_len);
    const uint8_t *client = at;
    (void)take_int(&r, 4, &argc);
    size_t *argvlen = (size_t *)(void *)(mem + argc * sizeof(char *));
    char *s = (char *)(mem + argc * (sizeof(char *) + sizeof(size_t)));
    memcpy(s, actor, out->actor_len);
    s[out->actor_len] = 0;
    out->actor = s;
    s += out->actor_len + 1;
    memcpy(s, client, out->client_len);
    s[out->client_len] = 0;
    out->client = s;
    s += out->client_len + 1;
    for (uint64_t i = 0; i < argc; i++) {
        (void)take_int(&r, 4, &v);
        (void)take(&r, (size_t)v, &at);
        if (v)
            memcpy(s, at, (size_t)v);
        s[v] = 0;
        argv[i] = s;
        argvlen[i] = (size_t)v;
        s += v + 1;
    }
    out->argc = (uint32_t)argc;
    out->argv = argv;
    out->argvlen = argvlen;
    out->mem_ = mem;
    return RC_OK;
}

void node_entry_clear(struct node_entry *e)
{
    if (!e)
        return;
    free(e->mem_);
    memset(e, 0, sizeof *e);
}
