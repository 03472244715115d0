/*
 * fuzz_resp.c - libFuzzer target for the RESP request parser.
 *
 * The input is parsed three ways: whole, byte by byte, and in chunks whose sizes come from
 * the input itself. All three must produce the same commands (argc, argv bytes, flags) and
 * the same error status and text; every command must be well formed (argc > 0, argv[i]
 * NUL-terminated at argvlen[i]). Small limits make every limit path reachable. The first
 * byte selects authenticated or not; the writer gets the commands back as a round trip.
 *
 * Build: make fuzz (clang, -fsanitize=fuzzer,address,undefined); run:
 *   build-fuzz/fuzz_resp -max_len=4096 corpus/
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resp/resp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                   \
    do {                                                                           \
        if (!(x)) {                                                                \
            fprintf(stderr, "fuzz_resp: check failed: %s (line %d)\n", #x, __LINE__); \
            abort();                                                               \
        }                                                                          \
    } while (0)

/* A transcript of one parse: every command serialised, then the final status. */
static void record(struct resp_buf *t, const struct resp_cmd *c)
{
    CHECK(c->argc > 0);
    CHECK(c->argv != NULL && c->argvlen != NULL);
    CHECK(c->too_big == (c->too_big_len > 0));
    char hdr[64];
    int n = snprintf(hdr, sizeof(hdr), "C%d,%d,%d,%zu:", c->argc, c->is_inline, c->too_big,
                     c->too_big_len);
    resp_buf_append(t, hdr, (size_t)n);
    for (int i = 0; i < c->argc; i++) {
        CHECK(c->argv[i] != NULL);
        CHECK(c->argv[i][c->argvlen[i]] == '\0');
        n = snprintf(hdr, sizeof(hdr), "%zu:", c->argvlen[i]);
        resp_buf_append(t, hdr, (size_t)n);
        resp_buf_append(t, c->argv[i], c->argvlen[i]);
    }
}

/* Parses data split into chunks of the given sizes (cycled); returns the transcript. */
static struct resp_buf run(const uint8_t *data, size_t size, bool authed, const uint8_t *sizes,
                           size_t nsizes)
{
    struct resp_limits l = {
        .bulk_len_max = 300, .arg_len_max = 40, .args_max = 12, .inline_len_max = 64,
        .unauth_args_max = 4, .unauth_bulk_len_max = 20, .cmd_len_max = 100,
    };
    struct resp_parser *p = resp_parser_new(&l);
    CHECK(p != NULL);
    resp_parser_set_authenticated(p, authed);
    struct resp_buf t;
    resp_buf_init(&t);
    size_t off = 0, k = 0;
    bool dead = false;
    while (off < size && !dead) {
        size_t chunk = nsizes == 0 ? size - off : (size_t)sizes[k++ % nsizes] + 1;
        if (chunk > size - off)
            chunk = size - off;
        const char *buf = (const char *)data + off;
        size_t pos = 0;
        for (;;) {
            size_t used = 0;
            struct resp_cmd *c = NULL;
            enum resp_parse_status st = resp_parse(p, buf + pos, chunk - pos, &used, &c);
            CHECK(used <= chunk - pos);
            pos += used;
            if (st == RESP_CMD) {
                CHECK(c != NULL);
                record(&t, c);
                resp_cmd_free(c);
                continue;
            }
            CHECK(c == NULL);
            if (st == RESP_PROTO_ERR) {
                const char *e = resp_parser_error(p);
                CHECK(strncmp(e, "Protocol error: ", 16) == 0);
                resp_buf_append(&t, "E", 1);
                resp_buf_append(&t, e, strlen(e));
                dead = true;
            } else {
                CHECK(st == RESP_NEED_MORE);
                CHECK(pos == chunk);
                /* a header line (64 KiB) plus at most cmd_len_max and NULs of args */
                CHECK(resp_parser_buffered(p) <= 65536 + 128);
            }
            break;
        }
        off += chunk;
    }
    resp_parser_free(p);
    CHECK(!t.oom);
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    bool authed = (data[0] & 1) != 0;
    data++;
    size--;
    static const uint8_t one[1] = {0};
    struct resp_buf whole = run(data, size, authed, NULL, 0);
    struct resp_buf bytes = run(data, size, authed, one, 1);
    struct resp_buf chunks = run(data, size, authed, data, size < 16 ? size : 16);
    CHECK(whole.len == bytes.len);
    CHECK(whole.len == 0 || memcmp(whole.data, bytes.data, whole.len) == 0);
    CHECK(whole.len == chunks.len);
    CHECK(whole.len == 0 || memcmp(whole.data, chunks.data, whole.len) == 0);
    resp_buf_free(&whole);
    resp_buf_free(&bytes);
    resp_buf_free(&chunks);
    return 0;
}
