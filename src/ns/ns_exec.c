/*
 * ns_exec.c - MULTI/EXEC at apply time: one Raft entry carries a whole transaction (its
 * watched keys and its commands), decided here so every replica reaches the same answer
 * (DESIGN.md, write path step 4).
 *
 * Entry format (argv of the entry; every number strict decimal, ns.h documents it too):
 *
 *   index            content
 *   0                "EXEC"
 *   1                "1"                      format of this layout
 *   2                W                        watched keys, 0 ..= NS_EXEC_WATCH_MAX
 *   3 + 2i, 4 + 2i   key_i, rev_i             i < W: the group revision seen at WATCH
 *   3 + 2W           C                        commands, 0 ..= NS_EXEC_CMDS_MAX
 *   then C times     n, arg_1 .. arg_n        n >= 1 arguments, the command's name first
 *
 * The entry must end exactly after the last command; argc is at most NS_EXEC_ARGS_MAX.
 *
 * Invariants:
 *   - the whole entry is validated before anything runs: a malformed entry is an error
 *     reply and stages nothing;
 *   - watches are checked before any command, against the store (nothing is staged yet):
 *     key_i changed since WATCH iff its newest version (history, deletions included, or
 *     its 'K' record for a key older than history) has a revision > rev_i; then the reply
 *     is NS_R_NULL and nothing is staged;
 *   - every command runs inside the one struct ns_txn of the entry, in order: later
 *     commands read earlier ones' staged changes through the overlay (ns_txn.c), all
 *     changes share the entry's revision and a key's version advances once per entry;
 *   - a command that fails stages nothing (the contract of ns_apply_dispatch) and its
 *     error is its element of the reply; the other commands still apply (as Redis);
 *   - EXEC does not nest: an EXEC inside a transaction is an error element.
 * Deterministic: only the entry and the store are read.
 */
#include <string.h>
#include <strings.h>

#include "../rc.h"
#include "ns_internal.h"

#define EXEC_FORMAT "1"

static bool name_is(const char *a, size_t alen, const char *word)
{
    size_t wlen = strlen(word);
    return alen == wlen && strncasecmp(a, word, wlen) == 0;
}

static int reply_err(struct ns_reply *out, int rc, const char *msg)
{
    return ns_reply_set_error(out, rc, "%s", msg) == RC_OK ? NS_REPLIED : RC_NOMEM;
}

static int reply_arity(struct ns_reply *out, const char *name)
{
    int rc = ns_reply_set_error(out, RC_BADARG,
                                "wrong number of arguments for '%s' command", name);
    return rc == RC_OK ? NS_REPLIED : RC_NOMEM;
}

/* ------------------------------------------------------------------ layout */

struct exec_layout {
    int watch_at;   /* argv index of key_0 */
    uint64_t nwatch;
    int cmds_at;    /* argv index of n_1 */
    uint64_t ncmds;
};

/* Check the whole layout (table above). false: malformed. */
static bool exec_decode(int argc, char **argv, size_t *argvlen, struct exec_layout *l)
{
    uint64_t v = 0;
    if (argc < 4 || (uint64_t)argc > NS_EXEC_ARGS_MAX)
        return false;
    if (!name_is(argv[1], argvlen[1], EXEC_FORMAT))
        return false;
    if (!ns_parse_u64(argv[2], argvlen[2], &l->nwatch) || l->nwatch > NS_EXEC_WATCH_MAX)
        return false;
    l->watch_at = 3;
    uint64_t at = 3 + 2 * l->nwatch;
    if (at >= (uint64_t)argc)
        return false;
    for (uint64_t i = 0; i < l->nwatch; i++)
        if (!ns_parse_u64(argv[4 + 2 * i], argvlen[4 + 2 * i], &v))
            return false;
    if (!ns_parse_u64(argv[at], argvlen[at], &l->ncmds) || l->ncmds > NS_EXEC_CMDS_MAX)
        return false;
    l->cmds_at = (int)at;
    at++;
    for (uint64_t i = 0; i < l->ncmds; i++) {
        if (at >= (uint64_t)argc || !ns_parse_u64(argv[at], argvlen[at], &v) || v == 0 ||
            v > (uint64_t)argc - at - 1)
            return false;
        at += 1 + v;
    }
    return at == (uint64_t)argc;
}

/* ------------------------------------------------------------------ watches */

struct newest {
    bool found;
    uint64_t rev;
};

static bool visit_newest(void *ud, const struct ns_version *v)
{
    struct newest *nw = ud;
    nw->found = true;
    nw->rev = v->revision;
    return false; /* newest first: one is enough */
}

/* *changed: some watched key has a version newer than its watch revision. */
static int watches_changed(struct ns_txn *t, char **argv, size_t *argvlen,
                           const struct exec_layout *l, bool *changed)
{
    *changed = false;
    for (uint64_t i = 0; i < l->nwatch && !*changed; i++) {
        int k = l->watch_at + 2 * (int)i;
        uint64_t rev = 0;
        bool ok = ns_parse_u64(argv[k + 1], argvlen[k + 1], &rev);
        NS_ASSERT(ok); /* exec_decode checked it */
        struct newest nw = {false, 0};
        int rc = ns_history(t->n, argv[k], argvlen[k], 0, 1, visit_newest, &nw);
        if (rc != RC_OK)
            return rc;
        *changed = nw.found && nw.rev > rev;
    }
    return RC_OK;
}

/* ------------------------------------------------------------------ reads */

/* The key as this point of the transaction sees it (keys outside the limits are absent). */
static int key_get(struct ns_txn *t, const char *key, size_t klen, const struct ns_keyrec **rec)
{
    *rec = NULL;
    if (klen == 0 || klen > t->n->lim.key_len_max)
        return RC_NOTFOUND;
    return ns_txn_get(t, key, klen, rec);
}

static int rd_get(struct ns_txn *t, int argc, char **argv, size_t *argvlen,
                  struct ns_reply *out)
{
    if (argc != 2)
        return reply_arity(out, "get");
    const struct ns_keyrec *r = NULL;
    int rc = key_get(t, argv[1], argvlen[1], &r);
    if (rc == RC_NOTFOUND) {
        ns_reply_set_null(out);
        return RC_OK;
    }
    return rc == RC_OK ? ns_reply_set_bulk(out, r->value, r->vlen) : rc;
}

static int rd_mget(struct ns_txn *t, int argc, char **argv, size_t *argvlen,
                   struct ns_reply *out)
{
    if (argc < 2)
        return reply_arity(out, "mget");
    int rc = ns_reply_set_array(out, (size_t)argc - 1);
    for (int i = 1; rc == RC_OK && i < argc; i++)
        rc = rd_get(t, 2, &argv[i - 1], &argvlen[i - 1], &out->elem[i - 1]);
    return rc;
}

static int rd_exists(struct ns_txn *t, int argc, char **argv, size_t *argvlen,
                     struct ns_reply *out)
{
    if (argc < 2)
        return reply_arity(out, "exists");
    long long n = 0;
    for (int i = 1; i < argc; i++) { /* a key named twice counts twice, as in Redis */
        const struct ns_keyrec *r = NULL;
        int rc = key_get(t, argv[i], argvlen[i], &r);
        if (rc != RC_OK && rc != RC_NOTFOUND)
            return rc;
        n += rc == RC_OK;
    }
    ns_reply_set_int(out, n);
    return RC_OK;
}

static int rd_strlen(struct ns_txn *t, int argc, char **argv, size_t *argvlen,
                     struct ns_reply *out)
{
    if (argc != 2)
        return reply_arity(out, "strlen");
    const struct ns_keyrec *r = NULL;
    int rc = key_get(t, argv[1], argvlen[1], &r);
    if (rc != RC_OK && rc != RC_NOTFOUND)
        return rc;
    ns_reply_set_int(out, rc == RC_OK ? (long long)r->vlen : 0);
    return RC_OK;
}

static int rd_type(struct ns_txn *t, int argc, char **argv, size_t *argvlen,
                   struct ns_reply *out)
{
    if (argc != 2)
        return reply_arity(out, "type");
    const struct ns_keyrec *r = NULL;
    int rc = key_get(t, argv[1], argvlen[1], &r);
    if (rc != RC_OK && rc != RC_NOTFOUND)
        return rc;
    return ns_reply_set_status(out, rc == RC_OK ? "string" : "none");
}

static int rd_dbsize(struct ns_txn *t, int argc, char **argv, size_t *argvlen,
                     struct ns_reply *out)
{
    (void)argv, (void)argvlen;
    if (argc != 1)
        return reply_arity(out, "dbsize");
    ns_reply_set_int(out, (long long)t->key_count);
    return RC_OK;
}

/* CFG.GET key REV r: the store's history (revisions before this entry). */
static int cfg_get_at(struct ns_txn *t, char **argv, size_t *argvlen, struct ns_reply *out)
{
    uint64_t rev = 0;
    if (!name_is(argv[2], argvlen[2], "REV"))
        return reply_err(out, RC_BADARG, "syntax error");
    if (!ns_parse_u64(argv[3], argvlen[3], &rev))
        return reply_err(out, RC_BADARG, "value is not an integer or out of range");
    if (rev > t->n->revision) {
        int rc = ns_reply_set_error(out, RC_BADARG,
                                    "revision %llu is in the future; current revision is %llu",
                                    (unsigned long long)rev,
                                    (unsigned long long)t->n->revision);
        return rc == RC_OK ? NS_REPLIED : RC_NOMEM;
    }
    struct ns_kv kv;
    uint64_t oldest = 0;
    int rc = ns_get_at(t->n, argv[1], argvlen[1], rev, &kv, &oldest);
    if (rc == RC_NOTFOUND) {
        ns_reply_set_null(out);
        return RC_OK;
    }
    if (rc == RC_COMPACTED) {
        rc = ns_reply_set_error(out, RC_COMPACTED, "oldest=%llu", (unsigned long long)oldest);
        return rc == RC_OK ? NS_REPLIED : RC_NOMEM;
    }
    if (rc == RC_OK) {
        rc = ns_reply_kv(&kv, out);
        ns_kv_clear(&kv);
    }
    return rc;
}

static int rd_cfg_get(struct ns_txn *t, int argc, char **argv, size_t *argvlen,
                      struct ns_reply *out)
{
    if (argc != 2 && argc != 4)
        return argc < 2 ? reply_arity(out, "cfg.get") : reply_err(out, RC_BADARG,
                                                                  "syntax error");
    if (argc == 4)
        return cfg_get_at(t, argv, argvlen, out);
    const struct ns_keyrec *r = NULL;
    int rc = key_get(t, argv[1], argvlen[1], &r);
    if (rc == RC_NOTFOUND) {
        ns_reply_set_null(out);
        return RC_OK;
    }
    if (rc != RC_OK)
        return rc;
    struct ns_kv kv = {
        .key = argv[1], .klen = argvlen[1], .value = (char *)r->value, .vlen = r->vlen,
        .create_rev = r->create_rev, .mod_rev = r->mod_rev, .version = r->version,
        .mtime_ms = r->mtime_ms,
    };
    return ns_reply_kv(&kv, out); /* copies what it keeps */
}

static int rd_ping(struct ns_txn *t, int argc, char **argv, size_t *argvlen,
                   struct ns_reply *out)
{
    (void)t;
    if (argc > 2)
        return reply_arity(out, "ping");
    return argc == 2 ? ns_reply_set_bulk(out, argv[1], argvlen[1])
                     : ns_reply_set_status(out, "PONG");
}

static int rd_echo(struct ns_txn *t, int argc, char **argv, size_t *argvlen,
                   struct ns_reply *out)
{
    (void)t;
    if (argc != 2)
        return reply_arity(out, "echo");
    return ns_reply_set_bulk(out, argv[1], argvlen[1]);
}

typedef int (*exec_fn)(struct ns_txn *t, int argc, char **argv, size_t *argvlen,
                       struct ns_reply *out);

static const struct {
    const char *name;
    exec_fn fn;
} reads[] = {
    {"GET", rd_get},       {"MGET", rd_mget},     {"EXISTS", rd_exists},
    {"STRLEN", rd_strlen}, {"TYPE", rd_type},     {"DBSIZE", rd_dbsize},
    {"CFG.GET", rd_cfg_get}, {"PING", rd_ping},   {"ECHO", rd_echo},
};

/* ------------------------------------------------------------------ commands */

/* Run one command of the transaction into out: RC_OK (out is its reply, an error reply
 * included) or a store failure. */
static int run_one(struct ns_txn *t, int argc, char **argv, size_t *argvlen,
                   struct ns_reply *out)
{
    NS_ASSERT(argc >= 1);
    int rc = RC_OK;
    bool done = false;
    for (size_t i = 0; i < sizeof(reads) / sizeof(reads[0]) && !done; i++) {
        if (name_is(argv[0], argvlen[0], reads[i].name)) {
            rc = reads[i].fn(t, argc, argv, argvlen, out);
            done = true;
        }
    }
    if (!done && name_is(argv[0], argvlen[0], "EXEC"))
        rc = reply_err(out, RC_BADARG, "EXEC is not allowed inside a transaction");
    else if (!done)
        rc = ns_apply_dispatch(t, argc, argv, argvlen, out);
    return rc == NS_REPLIED ? RC_OK : rc;
}

int ns_exec_apply(struct ns_txn *t, int argc, char **argv, size_t *argvlen,
                  struct ns_reply *out)
{
    NS_ASSERT(t != NULL);
    NS_ASSERT(out->elem == NULL);
    struct exec_layout l;
    if (!exec_decode(argc, argv, argvlen, &l))
        return reply_err(out, RC_BADARG, "malformed EXEC entry");
    bool changed = false;
    int rc = watches_changed(t, argv, argvlen, &l, &changed);
    if (rc != RC_OK)
        return rc;
    if (changed) { /* Redis: a watched key was touched, EXEC answers nil */
        ns_reply_set_null(out);
        return RC_OK;
    }
    rc = ns_reply_set_array(out, (size_t)l.ncmds);
    int at = l.cmds_at + 1;
    for (uint64_t i = 0; rc == RC_OK && i < l.ncmds; i++) {
        uint64_t n = 0;
        bool ok = ns_parse_u64(argv[at], argvlen[at], &n);
        NS_ASSERT(ok);
        NS_ASSERT(n >= 1);
        rc = run_one(t, (int)n, &argv[at + 1], &argvlen[at + 1], &out->elem[i]);
        at += 1 + (int)n;
    }
    if (rc != RC_OK) {
        ns_reply_clear(out); /* a store failure: ns_apply drops the whole entry */
        return rc;
    }
    /* The audit record names the transaction, not whichever command set op last (its key
     * changes list every command's changes). */
    t->op = "exec";
    t->subject = t->detail = NULL;
    t->subject_len = t->detail_len = 0;
    return RC_OK;
}
