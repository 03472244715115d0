/*
 * node_member.c - cluster membership of a node (node.h "cluster (issue 4)"): bootstrap,
 * the meta group's address book, membership changes in both groups, keeping the two
 * groups' leaders on one node, leadership transfer, health, transport feedback.
 *
 * Address book: one record per member under the META group's state range,
 *   key   'g' u32(0) 'M' u64 id (big endian)                              (14 bytes)
 *   value 0 u8 version (1) | 1 u8 flags (bit 0: learner) | 2 u8 A | 3 A bytes client
 *         address | u8 C | C bytes cluster address | u64 XXH3_64bits_withSeed(all before,
 *         seed = id)
 * It is state-machine state (snapshots copy it): written by node_bootstrap for the initial
 * members, and when a meta-group conf entry is APPLIED (same bytes on every replica, so
 * every replica writes the same records): ADD with a ctx puts the record, ADD_VOTER without
 * ctx (promotion) clears the learner flag, REMOVE deletes it. The write precedes the
 * applied-index write of the entry; a replay rewrites the same record.
 *
 * Conf change ctx (the raft_conf_change ctx bytes of meta-group changes), version 1:
 *   0 u8 version (1) | 1 u8 A | A bytes client address | u8 C | C bytes cluster address
 * (A, C <= NODE_ADDR_MAX - 1 and 3 + A + C <= RAFT_CC_CTX_MAX).
 *
 * Bootstrap: every initial member writes the same state: a snapshot at index 1, term 1
 * whose configuration holds the members, in BOTH groups, and the address book records.
 * A node that joins later starts with an empty log, so the leader can only catch it up
 * with a snapshot, which carries the configuration and the address book.
 *
 * Membership changes (node_conf_change) go to the meta group first; once applied there,
 * the data group is brought to the same membership by the node that leads the data group
 * (reconcile(), one change at a time, thesis 4.1): it follows the APPLIED meta
 * configuration, and only when it also leads the meta group and has applied an entry of
 * its own term there (so that configuration includes every committed change), or, for its
 * own removal, when the meta group already removed it. A request completes once this
 * node's data group has applied the change too.
 *
 * Leader co-location: the meta leader asks for the data group's leadership (Raft transfer,
 * at most once per two election timeouts) whenever another node leads it; if the meta
 * leader is not a data voter, it hands meta leadership to the data leader instead. So
 * normally one node leads both groups and reconciles.
 */
#include <string.h>
#include <xxhash.h>

#include "node_internal.h"
#include "bytes.h"
#include "rc.h"

#define BOOK_VERSION 1u
#define CTX_VERSION 1u
#define BOOK_KEY_BYTES 14u

static size_t book_key(raft_id id, uint8_t *out)
{
    out[0] = 'g';
    be_put(out + 1, NODE_GROUP_META, 4);
    out[5] = 'M';
    be_put(out + 6, id, 8);
    return BOOK_KEY_BYTES;
}

static bool addr_ok(const char *a)
{
    return a && a[0] && strnlen(a, NODE_ADDR_MAX) < NODE_ADDR_MAX;
}

/* ------------------------------------------------------------------ codecs */

static size_t ctx_encode(const char *addr, const char *caddr, uint8_t *out, size_t cap)
{
    size_t a = strlen(addr), c = strlen(caddr);
    if (a >= NODE_ADDR_MAX || c >= NODE_ADDR_MAX || 3 + a + c > cap)
        return 0;
    out[0] = CTX_VERSION;
    out[1] = (uint8_t)a;
    memcpy(out + 2, addr, a);
    out[2 + a] = (uint8_t)c;
    memcpy(out + 3 + a, caddr, c);
    return 3 + a + c;
}

static bool ctx_decode(const uint8_t *p, size_t len, struct node_member *m)
{
    if (len < 3 || p[0] != CTX_VERSION)
        return false;
    size_t a = p[1];
    if (a >= NODE_ADDR_MAX || 3 + a > len)
        return false;
    size_t c = p[2 + a];
    if (c >= NODE_ADDR_MAX || 3 + a + c != len)
        return false;
    memcpy(m->addr, p + 2, a);
    m->addr[a] = 0;
    memcpy(m->cluster_addr, p + 3 + a, c);
    m->cluster_addr[c] = 0;
    return true;
}

static size_t book_encode(const struct node_member *m, uint8_t *out)
{
    size_t a = strlen(m->addr), c = strlen(m->cluster_addr);
    out[0] = BOOK_VERSION;
    out[1] = m->learner ? 1 : 0;
    out[2] = (uint8_t)a;
    memcpy(out + 3, m->addr, a);
    out[3 + a] = (uint8_t)c;
    memcpy(out + 4 + a, m->cluster_addr, c);
    size_t n = 4 + a + c;
    be_put(out + n, XXH3_64bits_withSeed(out, n, m->id), 8);
    return n + 8;
}

static int book_decode(raft_id id, const uint8_t *p, size_t len, struct node_member *m)
{
    memset(m, 0, sizeof *m);
    if (len < 12 || p[0] != BOOK_VERSION || p[1] > 1)
        return RC_CORRUPT;
    if (be_get(p + len - 8, 8) != XXH3_64bits_withSeed(p, len - 8, id))
        return RC_CORRUPT;
    size_t a = p[2];
    if (a >= NODE_ADDR_MAX || 4 + a > len - 8)
        return RC_CORRUPT;
    size_t c = p[3 + a];
    if (c >= NODE_ADDR_MAX || 4 + a + c != len - 8)
        return RC_CORRUPT;
    m->id = id;
    m->learner = p[1] == 1;
    memcpy(m->addr, p + 3, a);
    memcpy(m->cluster_addr, p + 4 + a, c);
    return RC_OK;
}

/* ------------------------------------------------------------------ address book */

static struct node_member *book_find(struct node *n, raft_id id)
{
    for (size_t i = 0; i < n->n_book; i++)
        if (n->book[i].id == id)
            return &n->book[i];
    return NULL;
}

static const struct node_member *book_find_const(const struct node *n, raft_id id)
{
    for (size_t i = 0; i < n->n_book; i++)
        if (n->book[i].id == id)
            return &n->book[i];
    return NULL;
}

static void book_put_mem(struct node *n, const struct node_member *m)
{
    struct node_member *b = book_find(n, m->id);
    if (!b && n->n_book < NODE_BOOK_MAX)
        b = &n->book[n->n_book++];
    if (b)
        *b = *m;
}

static void book_del_mem(struct node *n, raft_id id)
{
    struct node_member *b = book_find(n, id);
    if (b)
        *b = n->book[--n->n_book];
    for (size_t i = 0; i < NODE_ANNOUNCED_MAX; i++)
        if (n->announced[i].id == id)
            memset(&n->announced[i], 0, sizeof n->announced[i]);
}

static void book_put(struct pst_batch *b, const struct node_member *m)
{
    uint8_t key[BOOK_KEY_BYTES], rec[4 + 2 * NODE_ADDR_MAX + 8];
    size_t len = book_encode(m, rec);
    pst_batch_put(b, key, book_key(m->id, key), rec, len);
}

int node_book_load(struct node *n)
{
    uint8_t lo[BOOK_KEY_BYTES], hi[BOOK_KEY_BYTES];
    book_key(0, lo);
    memcpy(hi, lo, 6);
    hi[5] = 'M' + 1;
    struct pst_iter *it = pst_iter_new(n->e, NULL, lo, sizeof lo, hi, 6);
    if (!it)
        return RC_NOMEM;
    int rc = RC_OK;
    n->n_book = 0;
    for (; pst_iter_valid(it) && rc == RC_OK; pst_iter_next(it)) {
        size_t klen, vlen;
        const uint8_t *k = pst_iter_key(it, &klen);
        const uint8_t *v = pst_iter_value(it, &vlen);
        struct node_member m;
        if (klen != BOOK_KEY_BYTES || n->n_book >= NODE_BOOK_MAX)
            rc = RC_CORRUPT;
        else if ((rc = book_decode(be_get(k + 6, 8), v, vlen, &m)) == RC_OK)
            n->book[n->n_book++] = m;
    }
    if (rc == RC_OK && pst_iter_status(it) != RC_OK)
        rc = RC_IO;
    pst_iter_free(it);
    return rc;
}

int node_book_apply(struct node *n, const struct raft_entry *e)
{
    struct raft_conf_change cc;
    if (raft_conf_change_decode(e->data, e->len, &cc) != RAFT_OK)
        return RC_OK; /* the core ignores it too */
    struct node_member m = {.id = cc.node};
    bool have_addr = ctx_decode(cc.ctx, cc.ctx_len, &m);
    struct node_member *old = book_find(n, cc.node);
    struct pst_batch *b = pst_batch_new();
    if (!b)
        return RC_NOMEM;
    uint8_t key[BOOK_KEY_BYTES];
    bool write = true;
    if (cc.type == RAFT_CC_REMOVE) {
        pst_batch_del(b, key, book_key(cc.node, key));
    } else if (have_addr) {
        m.learner = cc.type == RAFT_CC_ADD_LEARNER;
        book_put(b, &m);
    } else if (old && cc.type == RAFT_CC_ADD_VOTER) {
        m = *old;
        m.learner = false;
        book_put(b, &m);
    } else {
        write = false; /* no address known: nothing to record */
    }
    int rc = RC_OK;
    if (write) {
        rc = pst_batch_status(b);
        if (rc == RC_OK)
            rc = pst_write(n->e, b, false);
        if (rc == RC_OK && cc.type == RAFT_CC_REMOVE)
            book_del_mem(n, cc.node);
        else if (rc == RC_OK)
            book_put_mem(n, &m);
    }
    pst_batch_free(b);
    return rc;
}

/* Addresses of additions seen in the meta log before they apply (the leader must reach a
 * new member as soon as the change is appended). */
static void announce(struct node *n, const struct node_member *m)
{
    for (size_t i = 0; i < NODE_ANNOUNCED_MAX; i++)
        if (n->announced[i].id == m->id) {
            n->announced[i] = *m;
            return;
        }
    n->announced[n->announced_next] = *m;
    n->announced_next = (n->announced_next + 1) % NODE_ANNOUNCED_MAX;
}

void node_book_note_appended(struct node *n, const struct raft_entry *ents, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        struct raft_conf_change cc;
        struct node_member m = {0};
        if (ents[i].type != RAFT_ENTRY_CONF ||
            raft_conf_change_decode(ents[i].data, ents[i].len, &cc) != RAFT_OK ||
            cc.type == RAFT_CC_REMOVE || !ctx_decode(cc.ctx, cc.ctx_len, &m))
            continue;
        m.id = cc.node;
        m.learner = cc.type == RAFT_CC_ADD_LEARNER;
        announce(n, &m);
    }
}

static bool conf_voter(const struct raft_conf *c, raft_id id)
{
    for (uint32_t i = 0; i < c->n_voters; i++)
        if (c->voters[i] == id)
            return true;
    return false;
}

static bool conf_learner(const struct raft_conf *c, raft_id id)
{
    for (uint32_t i = 0; i < c->n_learners; i++)
        if (c->learners[i] == id)
            return true;
    return false;
}

int node_member(const struct node *n, raft_id id, struct node_member *out)
{
    if (id == RAFT_NONE)
        return RC_NOTFOUND;
    struct raft_status st;
    raft_status(n->g[NODE_GROUP_META].raft, &st);
    bool in_conf = conf_voter(&st.conf, id) || conf_learner(&st.conf, id);
    const struct node_member *b = book_find_const(n, id);
    /* An addition appended but not applied yet: its addresses from the log entry. */
    for (size_t i = 0; !b && in_conf && i < NODE_ANNOUNCED_MAX; i++)
        if (n->announced[i].id == id)
            b = &n->announced[i];
    if (!b)
        return RC_NOTFOUND;
    *out = *b;
    if (in_conf)
        out->learner = conf_learner(&st.conf, id);
    return RC_OK;
}

int node_members(const struct node *n, struct node_member *out, size_t cap, size_t *count)
{
    struct raft_status st;
    raft_status(n->g[NODE_GROUP_META].raft, &st);
    size_t total = (size_t)st.conf.n_voters + st.conf.n_learners;
    for (size_t i = 0; i < total && i < cap; i++) {
        raft_id id = i < st.conf.n_voters ? st.conf.voters[i]
                                          : st.conf.learners[i - st.conf.n_voters];
        if (node_member(n, id, &out[i]) != RC_OK)
            memset(&out[i], 0, sizeof out[i]); /* known to Raft, no address recorded */
        out[i].id = id;
        out[i].learner = i >= st.conf.n_voters;
    }
    if (count)
        *count = total;
    return total > cap ? RC_TOOBIG : RC_OK;
}

/* ------------------------------------------------------------------ bootstrap */

static bool store_is_new(const struct node *n)
{
    for (uint32_t i = 0; i < NODE_GROUPS; i++) {
        const struct group *g = &n->g[i];
        if (g->log.hs.term || g->log.snap.index || g->log.last_index ||
            ns_applied_index(g->ns))
            return false;
    }
    return n->n_book == 0;
}

static int bootstrap_check(const struct node *n, const struct node_bootstrap *b,
                           const struct node_member **list, uint32_t *count,
                           struct raft_conf *conf)
{
    *list = b->n_members ? b->members : &b->self;
    *count = b->n_members ? b->n_members : 1;
    if (b->n_members > RAFT_VOTERS_MAX)
        return RC_BADARG;
    memset(conf, 0, sizeof *conf);
    bool self = false;
    for (uint32_t i = 0; i < *count; i++) {
        const struct node_member *m = &(*list)[i];
        raft_id id = b->n_members ? m->id : n->cfg.id;
        if (id == RAFT_NONE || strnlen(m->addr, NODE_ADDR_MAX) >= NODE_ADDR_MAX ||
            strnlen(m->cluster_addr, NODE_ADDR_MAX) >= NODE_ADDR_MAX)
            return RC_BADARG;
        if (conf_voter(conf, id) || conf_learner(conf, id))
            return RC_BADARG; /* duplicate id */
        if (m->learner && b->n_members)
            conf->learners[conf->n_learners++] = id;
        else
            conf->voters[conf->n_voters++] = id;
        self = self || id == n->cfg.id;
    }
    /* A node joining an existing cluster does not bootstrap (node.h). */
    return self && conf->n_voters > 0 ? RC_OK : RC_BADARG;
}

int node_bootstrap(struct node *n, const struct node_bootstrap *b)
{
    if (n->failed || !b)
        return n->failed ? RC_IO : RC_BADARG;
    if (!store_is_new(n))
        return RC_EXISTS;
    const struct node_member *list;
    uint32_t count;
    struct raft_conf conf;
    int rc = bootstrap_check(n, b, &list, &count, &conf);
    if (rc != RC_OK)
        return rc;
    struct raft_snapshot_meta m = {.index = 1, .term = 1, .conf = conf};
    struct raft_hard_state hs = {.term = 1, .vote = RAFT_NONE, .commit = 1};
    pst_batch_clear(n->batch);
    for (uint32_t i = 0; i < NODE_GROUPS && rc == RC_OK; i++) {
        rc = node_log_put_install(&n->g[i].log, n->batch, &m);
        node_log_put_hs(&n->g[i].log, n->batch, &hs);
    }
    for (uint32_t i = 0; i < count; i++) {
        struct node_member rec = list[i];
        rec.id = b->n_members ? rec.id : n->cfg.id;
        rec.learner = b->n_members && rec.learner;
        book_put(n->batch, &rec);
    }
    if (rc == RC_OK)
        rc = pst_batch_status(n->batch);
    if (rc == RC_OK)
        rc = pst_write(n->e, n->batch, true); /* one atomic, durable batch */
    pst_batch_clear(n->batch);
    /* The applied index follows; if it is lost, node_open redoes it (fix_bootstrap). */
    for (uint32_t i = 0; i < NODE_GROUPS && rc == RC_OK; i++)
        rc = node_member_fix_bootstrap(n, &n->g[i]);
    char *err = NULL;
    for (uint32_t i = 0; i < NODE_GROUPS && rc == RC_OK; i++) {
        rc = node_restart_raft(n, &n->g[i], &err);
        n->g[i].leader = RAFT_NONE;
        n->g[i].role = RAFT_FOLLOWER;
    }
    if (rc == RC_OK)
        rc = node_book_load(n);
    if (rc != RC_OK) {
        node_set_error(n, "bootstrap failed: %s", err ? err : rc_message(rc));
        n->failed = true;
    }
    free(err);
    return rc;
}

int node_member_fix_bootstrap(struct node *n, struct group *g)
{
    (void)n;
    uint64_t applied = ns_applied_index(g->ns);
    if (applied >= g->log.snap.index)
        return RC_OK;
    /* Only the bootstrap snapshot is written without its state's applied index. */
    if (applied == 0 && g->log.snap.index == 1 && g->log.snap.term == 1)
        return ns_reset_applied(g->ns, 1, 1);
    return RC_CORRUPT;
}

/* ------------------------------------------------------------------ conf changes */

static void leader_text(const struct node *n, char *buf, size_t cap)
{
    raft_id l = n->g[NODE_GROUP_META].leader;
    struct node_member m;
    if (l == RAFT_NONE)
        snprintf(buf, cap, "not the leader; no leader known yet");
    else if (node_member(n, l, &m) == RC_OK)
        snprintf(buf, cap, "not the leader; leader is node %llu at %s (cluster %s)",
                 (unsigned long long)l, m.addr, m.cluster_addr);
    else
        snprintf(buf, cap, "not the leader; leader is node %llu", (unsigned long long)l);
}

/* Why the change cannot be made in configuration c (latest of the meta group), or NULL. */
static const char *change_invalid(const struct raft_conf *c, uint8_t type, raft_id id,
                                  bool have_addr)
{
    bool voter = conf_voter(c, id), learner = conf_learner(c, id);
    switch (type) {
    case RAFT_CC_ADD_LEARNER:
        if (voter || learner)
            return "node is already a member";
        return have_addr ? NULL : "an address and a cluster address are required";
    case RAFT_CC_ADD_VOTER:
        if (voter)
            return "node is already a voter";
        if (!learner && !have_addr)
            return "an address and a cluster address are required";
        return c->n_voters >= RAFT_VOTERS_MAX ? "too many voters" : NULL;
    case RAFT_CC_REMOVE:
        if (!voter && !learner)
            return "node is not a member";
        return voter && c->n_voters == 1 ? "cannot remove the last voter" : NULL;
    default:
        return "unknown change type";
    }
}

/* Propose r's change in the meta group (this node leads it). */
static void conf_propose_meta(struct node *n, struct req *r, const struct raft_conf_change *cc)
{
    struct group *g = &n->g[NODE_GROUP_META];
    char msg[2 * NODE_ADDR_MAX + 96];
    raft_index index = 0;
    raft_term term = 0;
    int err = raft_propose_conf_change(g->raft, r->handle, cc, &index, &term);
    switch (err) {
    case RAFT_OK:
        r->state = RS_APPENDED;
        r->index = index;
        r->term = term;
        return;
    case RAFT_ERR_NOT_LEADER:
        leader_text(n, msg, sizeof msg);
        node_req_defer(n, r, RC_NOTLEADER, msg);
        return;
    case RAFT_ERR_CONF_PENDING:
    case RAFT_ERR_TRANSFERRING:
        node_req_defer(n, r, RC_TRYAGAIN, err == RAFT_ERR_TRANSFERRING
                       ? "leadership transfer in progress; try again"
                       : "another membership change is in progress; try again");
        return;
    case RAFT_ERR_BAD_CONF:
        node_req_defer(n, r, RC_BADARG, "invalid membership change");
        return;
    default:
        node_req_defer(n, r, node_refusal_rc(err) ? node_refusal_rc(err) : RC_TRYAGAIN,
                       raft_strerror(err));
    }
}

uint64_t node_conf_change(struct node *n, uint8_t type, raft_id id, const char *addr,
                          const char *cluster_addr, uint64_t now_ms, node_done_fn fn,
                          void *ud, int *rc)
{
    if (n->failed || n->closing) {
        *rc = n->closing ? RC_SHUTDOWN : RC_IO;
        return 0;
    }
    bool have_addr = addr_ok(addr) && addr_ok(cluster_addr);
    struct raft_conf_change cc = {.type = type, .node = id};
    if (id == RAFT_NONE || type < RAFT_CC_ADD_VOTER || type > RAFT_CC_REMOVE ||
        ((addr || cluster_addr) && !have_addr)) {
        *rc = RC_BADARG;
        return 0;
    }
    if (have_addr && type != RAFT_CC_REMOVE) {
        cc.ctx_len = (uint32_t)ctx_encode(addr, cluster_addr, cc.ctx, sizeof cc.ctx);
        if (cc.ctx_len == 0) {
            *rc = RC_BADARG; /* addresses too long for one conf change */
            return 0;
        }
    }
    if (n->n_reqs >= n->cfg.max_pending) {
        *rc = RC_OVERLOAD;
        return 0;
    }
    struct req *r = node_req_new(n, REQ_CONF, NODE_GROUP_META, now_ms, fn, ud);
    if (!r) {
        *rc = RC_NOMEM;
        return 0;
    }
    r->cc_type = type;
    r->cc_node = id;
    node_req_link(n, r);
    *rc = RC_OK;
    struct group *g = &n->g[NODE_GROUP_META];
    char msg[2 * NODE_ADDR_MAX + 96];
    struct raft_status st;
    raft_status(g->raft, &st);
    const char *bad = change_invalid(&st.conf, type, id, cc.ctx_len > 0);
    if (g->role != RAFT_LEADER) {
        leader_text(n, msg, sizeof msg);
        node_req_defer(n, r, g->leader == RAFT_NONE ? RC_TRYAGAIN : RC_NOTLEADER, msg);
    } else if (bad) {
        snprintf(msg, sizeof msg, "node %llu: %s", (unsigned long long)id, bad);
        node_req_defer(n, r, RC_BADARG, msg);
    } else {
        conf_propose_meta(n, r, &cc);
    }
    return r->handle;
}

void node_conf_on_meta_applied(struct node *n, const struct raft_entry *e)
{
    for (struct req *r = n->head; r; r = r->next)
        if (r->kind == REQ_CONF && r->state == RS_APPENDED && r->index == e->index &&
            r->term == e->term)
            r->state = RS_CONF_DATA;
}

/* Has the data group applied the membership change of r? */
static bool data_has_change(const struct node *n, const struct req *r)
{
    const struct raft_conf *c = &n->g[NODE_GROUP_DATA].conf;
    switch (r->cc_type) {
    case RAFT_CC_ADD_VOTER:
        return conf_voter(c, r->cc_node);
    case RAFT_CC_ADD_LEARNER:
        return conf_voter(c, r->cc_node) || conf_learner(c, r->cc_node);
    default:
        return !conf_voter(c, r->cc_node) && !conf_learner(c, r->cc_node);
    }
}

void node_conf_finish(struct node *n)
{
    struct req *next;
    for (struct req *r = n->head; r; r = next) {
        next = r->next;
        if (r->kind == REQ_CONF && r->state == RS_CONF_DATA && data_has_change(n, r))
            node_req_defer(n, r, RC_OK, NULL);
    }
}

/* ------------------------------------------------------------------ both groups */

/* One step that brings the data group's latest configuration towards target. */
static bool next_step(const struct raft_conf *data, const struct raft_conf *target,
                      struct raft_conf_change *cc)
{
    memset(cc, 0, sizeof *cc);
    for (uint32_t i = 0; i < target->n_voters; i++)
        if (!conf_voter(data, target->voters[i])) {
            cc->type = RAFT_CC_ADD_VOTER;
            cc->node = target->voters[i];
            return true;
        }
    for (uint32_t i = 0; i < target->n_learners; i++)
        if (!conf_voter(data, target->learners[i]) && !conf_learner(data, target->learners[i])) {
            cc->type = RAFT_CC_ADD_LEARNER;
            cc->node = target->learners[i];
            return true;
        }
    for (uint32_t i = 0; i < data->n_voters + data->n_learners; i++) {
        raft_id id = i < data->n_voters ? data->voters[i] : data->learners[i - data->n_voters];
        if (!conf_voter(target, id) && !conf_learner(target, id)) {
            cc->type = RAFT_CC_REMOVE;
            cc->node = id;
            return true;
        }
    }
    return false;
}

/* The data group follows the meta group's applied membership (see the top of the file). */
void node_member_reconcile(struct node *n)
{
    struct group *meta = &n->g[NODE_GROUP_META], *data = &n->g[NODE_GROUP_DATA];
    if (data->role != RAFT_LEADER || n->failed)
        return;
    struct raft_status st;
    raft_status(data->raft, &st);
    struct raft_conf_change cc;
    raft_id self = n->cfg.id;
    bool removed = !conf_voter(&meta->conf, self) && !conf_learner(&meta->conf, self);
    if (meta->role == RAFT_LEADER && ns_applied_index(meta->ns) >= meta->lead_start) {
        if (!next_step(&st.conf, &meta->conf, &cc))
            return;
    } else if (removed && conf_voter(&st.conf, self)) {
        cc = (struct raft_conf_change){.type = RAFT_CC_REMOVE, .node = self};
    } else {
        return;
    }
    (void)raft_propose_conf_change(data->raft, 0, &cc, NULL, NULL); /* CONF_PENDING: later */
}

static void colocate_leaders(struct node *n)
{
    struct group *meta = &n->g[NODE_GROUP_META], *data = &n->g[NODE_GROUP_DATA];
    uint64_t every = 2 * (uint64_t)(n->cfg.raft.election_ticks ? n->cfg.raft.election_ticks : 10);
    if (meta->role != RAFT_LEADER || data->leader == RAFT_NONE || data->leader == n->cfg.id)
        return;
    if (meta->colocate_tick && n->ticks - meta->colocate_tick < every)
        return;
    meta->colocate_tick = n->ticks;
    struct raft_status st;
    raft_status(data->raft, &st);
    if (conf_voter(&st.conf, n->cfg.id))
        (void)raft_transfer_leadership(data->raft, n->cfg.id);
    else if (conf_voter(&meta->conf, data->leader))
        (void)raft_transfer_leadership(meta->raft, data->leader);
}

void node_member_tick(struct node *n)
{
    colocate_leaders(n);
    node_member_reconcile(n);
}

void node_member_on_step(struct node *n, struct group *g, const struct raft_msg *m)
{
    if (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT ||
        m->type == RAFT_MSG_SNAPSHOT)
        g->leader_contact_tick = n->ticks;
}

/* ------------------------------------------------------------------ leadership, health */

int node_transfer(struct node *n, raft_id to)
{
    if (to == RAFT_NONE || n->failed)
        return RC_BADARG;
    int led = 0, bad = 0;
    for (uint32_t i = 0; i < NODE_GROUPS; i++) {
        struct group *g = &n->g[i];
        if (g->role != RAFT_LEADER)
            continue;
        led++;
        if (to != n->cfg.id && raft_transfer_leadership(g->raft, to) != RAFT_OK)
            bad++;
    }
    if (!led)
        return RC_NOTLEADER;
    return bad ? RC_BADARG : RC_OK;
}

raft_id node_leader(const struct node *n, uint32_t group)
{
    return group < NODE_GROUPS ? n->g[group].leader : RAFT_NONE;
}

#define UNHEALTHY(why, cap, ...)              \
    do {                                      \
        if ((why) && (cap))                   \
            snprintf((why), (cap), __VA_ARGS__); \
        return false;                         \
    } while (0)

bool node_healthy(const struct node *n, uint32_t group, char *why, size_t why_cap)
{
    if (group >= NODE_GROUPS)
        UNHEALTHY(why, why_cap, "unknown group %u", group);
    const struct group *g = &n->g[group];
    uint32_t et = n->cfg.raft.election_ticks ? n->cfg.raft.election_ticks : 10;
    if (n->failed)
        UNHEALTHY(why, why_cap, "storage failed (group %u)", group);
    if (node_snap_staging(g))
        UNHEALTHY(why, why_cap, "installing a snapshot (group %u)", group);
    if (g->leader == RAFT_NONE)
        UNHEALTHY(why, why_cap, "no leader known (group %u)", group);
    if (g->role != RAFT_LEADER) {
        uint64_t since = n->ticks - g->leader_contact_tick;
        if (since >= et)
            UNHEALTHY(why, why_cap, "no contact with the leader for %llu ticks",
                      (unsigned long long)since);
        return true;
    }
    struct raft_status st;
    raft_status(g->raft, &st);
    uint32_t ok = 0;
    for (uint32_t i = 0; i < st.conf.n_voters; i++) {
        raft_id v = st.conf.voters[i];
        bool fresh = v == n->cfg.id;
        for (uint32_t k = 0; k < st.n_progress && !fresh; k++)
            fresh = st.progress[k].id == v && st.progress[k].ticks_since_contact < et;
        ok += fresh;
    }
    if (ok * 2 <= st.conf.n_voters)
        UNHEALTHY(why, why_cap, "leader in contact with only %u of %u voters", ok,
                  st.conf.n_voters);
    return true;
}

void node_report_unreachable(struct node *n, uint32_t group, raft_id to)
{
    if (group < NODE_GROUPS)
        raft_report_unreachable(n->g[group].raft, to);
}

void node_report_snapshot(struct node *n, uint32_t group, raft_id to, bool ok)
{
    if (group < NODE_GROUPS)
        raft_report_snapshot(n->g[group].raft, to, ok);
}
