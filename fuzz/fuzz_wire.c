/*
 * fuzz_wire.c - libFuzzer target for the Raft wire decoder (src/raft_wire.c).
 *
 * Each input is decoded as a message frame and as an entry frame, first as given and then
 * with its last 8 bytes replaced by the correct XXH3 checksum (so the fuzzer reaches the
 * body parser instead of stopping at the checksum). Properties: no crash or sanitizer
 * report; only RC_OK / RC_CORRUPT; whatever is accepted re-encodes to the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "raft_wire.h"
#include "rc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const uint8_t *buf, size_t n)
{
    struct raft_msg m;
    struct raft_entry e;
    uint32_t g;
    int rc = raft_wire_msg_decode(buf, n, NULL, &g, &m);
    if (rc != RC_OK && rc != RC_CORRUPT)
        abort();
    if (rc == RC_OK) {
        uint8_t *again = malloc(n);
        size_t len = 0;
        if (!again || raft_wire_msg_encode(g, &m, again, n, &len) != RC_OK || len != n ||
            memcmp(again, buf, n) != 0)
            abort();
        free(again);
        raft_wire_msg_free(&m);
    }
    rc = raft_wire_entry_decode(buf, n, NULL, &g, &e);
    if (rc != RC_OK && rc != RC_CORRUPT)
        abort();
    if (rc == RC_OK) {
        uint8_t *again = malloc(n);
        size_t len = 0;
        if (!again || raft_wire_entry_encode(g, &e, again, n, &len) != RC_OK || len != n ||
            memcmp(again, buf, n) != 0)
            abort();
        free(again);
        raft_wire_entry_free(&e);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 16))
        return 0;
    check(data, size);
    if (size >= RAFT_WIRE_HEADER_BYTES + RAFT_WIRE_CHECKSUM_BYTES) {
        uint8_t *buf = malloc(size);
        if (!buf)
            return 0;
        memcpy(buf, data, size);
        uint64_t sum = XXH3_64bits(buf, size - 8);
        for (int i = 0; i < 8; i++)
            buf[size - 8 + (size_t)i] = (uint8_t)(sum >> (8 * i));
        check(buf, size);
        free(buf);
    }
    return 0;
}
