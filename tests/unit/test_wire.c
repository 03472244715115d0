/*
 * test_wire.c - the Raft wire codec (src/raft_wire.c): round trips of every message type
 * with random fields, canonical re-encoding, and strict rejection of every truncation,
 * every single-bit flip, hand-made malformed frames with a valid checksum, limits, and
 * random bytes. All randomness comes from a fixed-seed splitmix64, so failures replay.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "raft_wire.h"
#include "rc.h"

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A value of random width, so every varint length (1..10 bytes) is exercised. */
static uint64_t rnd_field(void)
{
    int bits = (int)(rnd() % 65);
    return bits == 64 ? rnd() : rnd() & ((1ULL << bits) - 1);
}

#define DATA_MAX 300
struct owned_msg {
    struct raft_msg m;
    struct raft_entry e[6];
    uint8_t data[6][DATA_MAX];
};

static void random_msg(struct owned_msg *o, uint8_t type)
{
    memset(o, 0, sizeof(*o));
    struct raft_msg *m = &o->m;
    m->type = type;
    m->from = rnd_field();
    m->to = rnd_field();
    m->term = rnd_field();
    m->log_term = rnd_field();
    m->index = rnd_field();
    m->commit = rnd_field();
    m->reject = rnd() & 1;
    m->reject_hint = rnd_field();
    m->err = (uint16_t)rnd();
    m->ctx = rnd_field();
    if (rnd() % 3 == 0) {
        m->snapshot.index = rnd_field();
        m->snapshot.term = rnd_field();
        m->snapshot.conf.n_voters = (uint32_t)(rnd() % (RAFT_VOTERS_MAX + 1));
        m->snapshot.conf.n_learners = (uint32_t)(rnd() % (RAFT_LEARNERS_MAX + 1));
        for (uint32_t i = 0; i < m->snapshot.conf.n_voters; i++)
            m->snapshot.conf.voters[i] = rnd_field();
        for (uint32_t i = 0; i < m->snapshot.conf.n_learners; i++)
            m->snapshot.conf.learners[i] = rnd_field();
    }
    m->n_entries = (uint32_t)(rnd() % 7);
    m->entries = m->n_entries ? o->e : NULL;
    for (uint32_t i = 0; i < m->n_entries; i++) {
        o->e[i].term = rnd_field();
        o->e[i].index = rnd_field();
        o->e[i].type = (uint8_t)(rnd() % 2);
        o->e[i].len = (uint32_t)(rnd() % 4 == 0 ? 0 : rnd() % DATA_MAX);
        o->e[i].data = o->e[i].len ? o->data[i] : NULL;
        for (uint32_t k = 0; k < o->e[i].len; k++)
            o->data[i][k] = (uint8_t)rnd();
    }
}

static void assert_entry_eq(const struct raft_entry *a, const struct raft_entry *b)
{
    cr_assert_eq(a->term, b->term);
    cr_assert_eq(a->index, b->index);
    cr_assert_eq(a->type, b->type);
    cr_assert_eq(a->len, b->len);
    if (a->len)
        cr_assert_eq(memcmp(a->data, b->data, a->len), 0, "entry data differs");
    else
        cr_assert_null(b->data);
}

static void assert_msg_eq(const struct raft_msg *a, const struct raft_msg *b)
{
    cr_assert_eq(a->type, b->type);
    cr_assert_eq(a->from, b->from);
    cr_assert_eq(a->to, b->to);
    cr_assert_eq(a->term, b->term);
    cr_assert_eq(a->log_term, b->log_term);
    cr_assert_eq(a->index, b->index);
    cr_assert_eq(a->commit, b->commit);
    cr_assert_eq(a->reject, b->reject);
    cr_assert_eq(a->reject_hint, b->reject_hint);
    cr_assert_eq(a->err, b->err);
    cr_assert_eq(a->ctx, b->ctx);
    cr_assert_eq(a->snapshot.index, b->snapshot.index);
    cr_assert_eq(a->snapshot.term, b->snapshot.term);
    cr_assert_eq(a->snapshot.conf.n_voters, b->snapshot.conf.n_voters);
    cr_assert_eq(a->snapshot.conf.n_learners, b->snapshot.conf.n_learners);
    for (uint32_t i = 0; i < a->snapshot.conf.n_voters; i++)
        cr_assert_eq(a->snapshot.conf.voters[i], b->snapshot.conf.voters[i]);
    for (uint32_t i = 0; i < a->snapshot.conf.n_learners; i++)
        cr_assert_eq(a->snapshot.conf.learners[i], b->snapshot.conf.learners[i]);
    cr_assert_eq(a->n_entries, b->n_entries);
    for (uint32_t i = 0; i < a->n_entries; i++)
        assert_entry_eq(&a->entries[i], &b->entries[i]);
}

static size_t encode(const struct raft_msg *m, uint32_t group, uint8_t *buf, size_t cap)
{
    size_t len = 0;
    cr_assert_eq(raft_wire_msg_encode(group, m, buf, cap, &len), RC_OK);
    cr_assert_eq(len, raft_wire_msg_size(m), "size() must match what encode writes");
    return len;
}

#define BUF_MAX 4096

Test(wire, round_trip_every_message_type)
{
    rng_state = 1;
    uint8_t buf[BUF_MAX], again[BUF_MAX];
    struct owned_msg o;
    for (uint8_t type = 1; type < RAFT_MSG__COUNT; type++) {
        for (int it = 0; it < 300; it++) {
            random_msg(&o, type);
            uint32_t group = (uint32_t)rnd();
            size_t len = encode(&o.m, group, buf, sizeof(buf));
            struct raft_msg out;
            uint32_t g = 0;
            cr_assert_eq(raft_wire_msg_decode(buf, len, NULL, &g, &out), RC_OK,
                         "type %d iteration %d", type, it);
            cr_assert_eq(g, group);
            assert_msg_eq(&o.m, &out);
            cr_assert_eq(encode(&out, g, again, sizeof(again)), len);
            cr_assert_eq(memcmp(buf, again, len), 0, "re-encoding must give the same bytes");
            raft_wire_msg_free(&out);
            cr_assert_null(out.entries);
        }
    }
}

Test(wire, round_trip_entry)
{
    rng_state = 2;
    uint8_t buf[BUF_MAX];
    struct owned_msg o;
    for (int it = 0; it < 2000; it++) {
        random_msg(&o, RAFT_MSG_APPEND);
        struct raft_entry e = {.term = rnd_field(), .index = rnd_field(),
                               .type = (uint8_t)(rnd() % 2), .len = (uint32_t)(rnd() % 50)};
        e.data = e.len ? o.data[0] : NULL;
        size_t len = 0;
        cr_assert_eq(raft_wire_entry_encode(7, &e, buf, sizeof(buf), &len), RC_OK);
        cr_assert_eq(len, raft_wire_entry_size(&e));
        struct raft_entry out;
        uint32_t g;
        cr_assert_eq(raft_wire_entry_decode(buf, len, NULL, &g, &out), RC_OK);
        cr_assert_eq(g, 7);
        assert_entry_eq(&e, &out);
        raft_wire_entry_free(&out);
        /* An entry frame is not a message frame, and the reverse. */
        struct raft_msg m;
        cr_assert_eq(raft_wire_msg_decode(buf, len, NULL, &g, &m), RC_CORRUPT);
    }
}

Test(wire, every_truncation_rejected)
{
    rng_state = 3;
    uint8_t buf[BUF_MAX];
    struct owned_msg o;
    for (int it = 0; it < 40; it++) {
        random_msg(&o, (uint8_t)(1 + rnd() % (RAFT_MSG__COUNT - 1)));
        size_t len = encode(&o.m, 1, buf, sizeof(buf));
        for (size_t cut = 0; cut < len; cut++) {
            /* Copy into an exact-size heap buffer so ASan catches any overread. */
            uint8_t *p = malloc(cut ? cut : 1);
            memcpy(p, buf, cut);
            struct raft_msg out;
            uint32_t g;
            cr_assert_eq(raft_wire_msg_decode(p, cut, NULL, &g, &out), RC_CORRUPT,
                         "a frame cut to %zu of %zu bytes was accepted", cut, len);
            free(p);
        }
    }
    struct raft_entry e = {.term = 5, .index = 9, .type = 0, .len = 3,
                           .data = (uint8_t *)"abc"};
    size_t len;
    cr_assert_eq(raft_wire_entry_encode(1, &e, buf, sizeof(buf), &len), RC_OK);
    for (size_t cut = 0; cut < len; cut++) {
        struct raft_entry out;
        uint32_t g;
        cr_assert_eq(raft_wire_entry_decode(buf, cut, NULL, &g, &out), RC_CORRUPT);
    }
}

Test(wire, every_bit_flip_rejected)
{
    rng_state = 4;
    uint8_t buf[BUF_MAX];
    struct owned_msg o;
    for (int it = 0; it < 20; it++) {
        random_msg(&o, (uint8_t)(1 + rnd() % (RAFT_MSG__COUNT - 1)));
        size_t len = encode(&o.m, 42, buf, sizeof(buf));
        for (size_t bit = 0; bit < len * 8; bit++) {
            buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            struct raft_msg out;
            uint32_t g;
            cr_assert_eq(raft_wire_msg_decode(buf, len, NULL, &g, &out), RC_CORRUPT,
                         "flipping bit %zu of %zu bytes was not detected", bit, len);
            buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        }
        struct raft_msg out;
        uint32_t g;
        cr_assert_eq(raft_wire_msg_decode(buf, len, NULL, &g, &out), RC_OK);
        raft_wire_msg_free(&out);
    }
}

/* --- hand-made frames with a VALID checksum: the parser itself must reject them ------------ */
struct frame {
    uint8_t b[256];
    size_t n;
};

static void f_u8(struct frame *f, uint8_t v) { f->b[f->n++] = v; }

static void f_uv(struct frame *f, uint64_t v)
{
    while (v >= 0x80) {
        f_u8(f, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    f_u8(f, (uint8_t)v);
}

static void f_header(struct frame *f, uint8_t version, uint8_t kind)
{
    f->n = 0;
    f_u8(f, version);
    f_u8(f, 9), f_u8(f, 0), f_u8(f, 0), f_u8(f, 0);
    f_u8(f, kind);
}

/* Message head with 9 varint fields all 1, err as given. */
static void f_msg_head(struct frame *f, uint8_t type, uint8_t flags, uint64_t err)
{
    f_header(f, RAFT_WIRE_VERSION, RAFT_WIRE_KIND_MSG);
    f_u8(f, type);
    f_u8(f, flags);
    for (int i = 0; i < 7; i++)
        f_uv(f, 1);
    f_uv(f, err);
    f_uv(f, 1);
}

static int f_decode(struct frame *f, const struct raft_wire_limits *lim)
{
    uint64_t sum = XXH3_64bits(f->b, f->n);
    for (int i = 0; i < 8; i++)
        f->b[f->n + (size_t)i] = (uint8_t)(sum >> (8 * i));
    struct raft_msg m;
    uint32_t g;
    int rc = raft_wire_msg_decode(f->b, f->n + 8, lim, &g, &m);
    if (rc == RC_OK)
        raft_wire_msg_free(&m);
    return rc;
}

Test(wire, valid_checksum_but_malformed)
{
    struct frame f;
    f_msg_head(&f, RAFT_MSG_APPEND, 0, 0);
    f_uv(&f, 0);
    cr_assert_eq(f_decode(&f, NULL), RC_OK, "the baseline frame must be valid");

    f_msg_head(&f, RAFT_MSG_APPEND, 0, 0);
    f_uv(&f, 0);
    f.b[0] = 2;
    cr_assert_eq(f_decode(&f, NULL), RC_CORRUPT, "unknown version");
    f.b[0] = RAFT_WIRE_VERSION;
    f.b[5] = 'X';
    cr_assert_eq(f_decode(&f, NULL), RC_CORRUPT, "unknown kind");

    f_msg_head(&f, 0, 0, 0);
    f_uv(&f, 0);
    cr_assert_eq(f_decode(&f, NULL), RC_CORRUPT, "type 0");
    f_msg_head(&f, RAFT_MSG__COUNT, 0, 0);
    f_uv(&f, 0);
    cr_assert_eq(f_decode(&f, NULL), RC_CORRUPT, "type out of range");
    f_msg_head(&f, RAFT_MSG_APPEND, 0x04, 0);
    f_uv(&f, 0);
    cr_assert_eq(f_decode(&f, NULL), RC_CORRUPT, "unknown flag bit");
    f_msg_head(&f, RAFT_MSG_APPEND, 0, 0x10000);
    f_uv(&f, 0);
    cr_assert_eq(f_decode(&f, NULL), RC_CORRUPT, "err wider than 16 bits");

    f_msg_head(&f, RAFT_MSG_APPEND, 0, 0);
    f_uv(&f, 0);
    f_u8(&f, 0);
    cr_assert_eq(f_decode(&f, NULL), RC_CORRUPT, "trailing byte");

}

Test(wire, valid_checksum_but_bad_counts_or_varints)
{
    struct frame f;
    f_msg_head(&f, RAFT_MSG_APPEND, 0, 0);
    f_uv(&f, 5); /* five entries announced, none present */
    cr_assert_eq(f_decode(&f, NULL), RC_CORRUPT, "count beyond the remaining bytes");

    f_msg_head(&f, RAFT_MSG_APPEND, 0, 0);
    f_uv(&f, 1);
    f_uv(&f, 1), f_uv(&f, 1), f_u8(&f, 0), f_uv(&f, 100), f_u8(&f, 'x');
    cr_assert_eq(f_decode(&f, NULL), RC_CORRUPT, "entry length beyond the remaining bytes");

    f_msg_head(&f, RAFT_MSG_APPEND, 0, 0);
    f_uv(&f, 1);
    f_uv(&f, 1), f_uv(&f, 1), f_u8(&f, 2), f_uv(&f, 0);
    cr_assert_eq(f_decode(&f, NULL), RC_CORRUPT, "entry type out of range");

    f_msg_head(&f, RAFT_MSG_SNAPSHOT, 0x02, 0);
    f_uv(&f, 3), f_uv(&f, 1), f_uv(&f, RAFT_VOTERS_MAX + 1);
    for (int i = 0; i < RAFT_VOTERS_MAX + 1; i++)
        f_uv(&f, 1);
    f_uv(&f, 0), f_uv(&f, 0);
    cr_assert_eq(f_decode(&f, NULL), RC_CORRUPT, "too many voters");

    f_msg_head(&f, RAFT_MSG_SNAPSHOT, 0x02, 0);
    f_uv(&f, 0), f_uv(&f, 0), f_uv(&f, 0), f_uv(&f, 0), f_uv(&f, 0);
    cr_assert_eq(f_decode(&f, NULL), RC_CORRUPT, "snapshot flag with an empty meta");

    /* Overlong varint (1 encoded as 0x81 0x00) and an 11-byte / 65-bit varint. */
    f_header(&f, RAFT_WIRE_VERSION, RAFT_WIRE_KIND_MSG);
    f_u8(&f, RAFT_MSG_APPEND), f_u8(&f, 0), f_u8(&f, 0x81), f_u8(&f, 0x00);
    for (int i = 0; i < 8; i++)
        f_uv(&f, 1);
    f_uv(&f, 0);
    cr_assert_eq(f_decode(&f, NULL), RC_CORRUPT, "non-canonical varint");
    f_header(&f, RAFT_WIRE_VERSION, RAFT_WIRE_KIND_MSG);
    f_u8(&f, RAFT_MSG_APPEND), f_u8(&f, 0);
    for (int i = 0; i < 9; i++)
        f_u8(&f, 0xff);
    f_u8(&f, 0x02); /* bit 64 */
    for (int i = 0; i < 8; i++)
        f_uv(&f, 1);
    f_uv(&f, 0);
    cr_assert_eq(f_decode(&f, NULL), RC_CORRUPT, "varint beyond 64 bits");
}

Test(wire, limits_enforced)
{
    struct raft_wire_limits lim;
    raft_wire_limits_default(&lim);
    struct frame f;
    f_msg_head(&f, RAFT_MSG_APPEND, 0, 0);
    f_uv(&f, 3);
    for (int i = 0; i < 3; i++) {
        f_uv(&f, 1), f_uv(&f, (uint64_t)i + 1), f_u8(&f, 0), f_uv(&f, 4);
        for (int k = 0; k < 4; k++)
            f_u8(&f, 'a');
    }
    cr_assert_eq(f_decode(&f, &lim), RC_OK);
    lim.entries_max = 2;
    cr_assert_eq(f_decode(&f, &lim), RC_CORRUPT, "more entries than entries_max");
    raft_wire_limits_default(&lim);
    lim.entry_bytes_max = 3;
    cr_assert_eq(f_decode(&f, &lim), RC_CORRUPT, "entry larger than entry_bytes_max");
    raft_wire_limits_default(&lim);
    lim.msg_bytes_max = f.n + 7;
    cr_assert_eq(f_decode(&f, &lim), RC_CORRUPT, "frame larger than msg_bytes_max");
}

Test(wire, encoder_refuses_bad_input)
{
    uint8_t buf[64];
    size_t len;
    struct raft_msg m = {.type = RAFT_MSG_HEARTBEAT, .from = 1, .to = 2, .term = 3};
    size_t need = raft_wire_msg_size(&m);
    cr_assert_gt(need, 0);
    cr_assert_eq(raft_wire_msg_encode(0, &m, buf, need - 1, &len), RC_TOOBIG);
    cr_assert_eq(raft_wire_msg_encode(0, &m, buf, need, &len), RC_OK);
    m.type = RAFT_MSG__COUNT;
    cr_assert_eq(raft_wire_msg_encode(0, &m, buf, sizeof(buf), &len), RC_BADARG);
    m.type = RAFT_MSG_APPEND;
    m.n_entries = 1;
    cr_assert_eq(raft_wire_msg_encode(0, &m, buf, sizeof(buf), &len), RC_BADARG,
                 "entries NULL with n_entries > 0");
    struct raft_entry e = {.term = 1, .index = 1, .type = 9};
    m.entries = &e;
    cr_assert_eq(raft_wire_msg_encode(0, &m, buf, sizeof(buf), &len), RC_BADARG);
}

Test(wire, random_bytes_never_crash)
{
    rng_state = 5;
    uint8_t buf[512];
    int accepted = 0;
    for (int it = 0; it < 200000; it++) {
        size_t n = (size_t)(rnd() % sizeof(buf));
        for (size_t i = 0; i < n; i++)
            buf[i] = (uint8_t)rnd();
        if (n > 14 && (it & 1)) { /* make the frame plausible so the parser runs */
            buf[0] = RAFT_WIRE_VERSION;
            buf[5] = RAFT_WIRE_KIND_MSG;
            buf[6] = (uint8_t)(1 + rnd() % (RAFT_MSG__COUNT - 1));
            buf[7] = (uint8_t)(rnd() % 4);
            uint64_t sum = XXH3_64bits(buf, n - 8);
            for (int i = 0; i < 8; i++)
                buf[n - 8 + (size_t)i] = (uint8_t)(sum >> (8 * i));
        }
        struct raft_msg m;
        uint32_t g;
        int rc = raft_wire_msg_decode(buf, n, NULL, &g, &m);
        cr_assert(rc == RC_OK || rc == RC_CORRUPT);
        if (rc == RC_OK) { /* anything accepted re-encodes to the same bytes */
            uint8_t again[512];
            size_t len;
            cr_assert_eq(raft_wire_msg_encode(g, &m, again, sizeof(again), &len), RC_OK);
            cr_assert_eq(len, n);
            cr_assert_eq(memcmp(buf, again, n), 0);
            raft_wire_msg_free(&m);
            accepted++;
        }
    }
    cr_log_info("random frames accepted: %d", accepted);
}
