/*
 * fuzz_records.c - libFuzzer target for the node's on-disk and in-log record decoders:
 * the entry envelope (src/node_entry.c, decoded identically by every replica at apply
 * time), the Raft log record, the hard state and the snapshot metadata (src/node_log.c,
 * decoded at every start).
 *
 * The first input byte picks the decoder (and, for the checksummed records, whether the
 * last 8 bytes are replaced by the correct XXH3 so the fuzzer gets past the checksum into
 * the body parser); the rest is the record. Properties: no crash or
 * sanitizer report; only RC_OK / RC_CORRUPT (RC_NOMEM for the envelope); an accepted
 * envelope or log record re-encodes to exactly the same bytes (the formats have one
 * encoding per value, so replicas and restarts agree byte for byte).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "bytes.h"
#include "node_entry.h"
#include "node_log.h"
#include "rc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same_or_abort(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    if (alen != blen || memcmp(a, b, alen) != 0)
        abort();
}

static void fuzz_envelope(const uint8_t *buf, size_t n)
{
    struct node_entry e;
    int rc = node_entry_decode(buf, n, &e);
    if (rc == RC_CORRUPT || rc == RC_NOMEM)
        return;
    if (rc != RC_OK)
        abort();
    uint8_t *again = NULL;
    size_t len = 0;
    if (node_entry_encode(&e, &again, &len) != RC_OK)
        abort();
    same_or_abort(again, len, buf, n);
    free(again);
    node_entry_clear(&e);
}

static void fuzz_log_entry(const uint8_t *buf, size_t n)
{
    struct raft_entry e;
    raft_index index = n > 0 ? buf[0] : 0; /* the record's own key index */
    int rc = node_log_entry_decode(index, buf, n, &e);
    if (rc == RC_CORRUPT)
        return;
    if (rc != RC_OK || e.index != index)
        abort();
    size_t len = 0;
    uint8_t *again = node_log_entry_encode(&e, &len);
    if (!again)
        abort();
    same_or_abort(again, len, buf, n);
    free(again);
    free(e.data);
}

/* A copy of buf whose last 8 bytes are the XXH3 (with seed) of the rest, as the record
 * formats of src/node_log.c end. */
static uint8_t *with_checksum(const uint8_t *buf, size_t n, uint64_t seed)
{
    uint8_t *c = malloc(n ? n : 1);
    if (!c)
        abort();
    memcpy(c, buf, n);
    if (n >= 8)
        be_put(c + n - 8, XXH3_64bits_withSeed(c, n - 8, seed), 8);
    return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t n = size - 1;
    bool fix = (data[0] / 4) % 2 == 1;
    uint64_t seed = data[0] % 4 == 1 ? (n > 0 ? data[1] : 0) : 0;
    uint8_t *owned = fix ? with_checksum(data + 1, n, seed) : NULL;
    const uint8_t *buf = owned ? owned : data + 1;
    struct raft_hard_state hs;
    struct raft_snapshot_meta sm;
    int rc;
    switch (data[0] % 4) {
    case 0:
        fuzz_envelope(buf, n);
        break;
    case 1:
        fuzz_log_entry(buf, n);
        break;
    case 2:
        rc = node_log_hs_decode(buf, n, &hs);
        if (rc != RC_OK && rc != RC_CORRUPT)
            abort();
        break;
    default:
        rc = node_log_snap_decode(buf, n, &sm);
        if (rc != RC_OK && rc != RC_CORRUPT)
            abort();
        break;
    }
    free(owned);
    return 0;
}
