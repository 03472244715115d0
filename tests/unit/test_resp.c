/*
 * test_resp.c - unit tests of src/resp: the incremental parser (every split point, every
 * protocol error text, limits, too-big skipping, random input) and the RESP2/RESP3 writer
 * (exact bytes of every reply type).
 *
 * Parser results are compared as a canonical transcript: one line per command
 * ("C argc [i] [T len] | len:bytes ...") and "E <message>" for a protocol error, so two
 * parses of the same bytes agree iff their transcripts are equal.
 */
#include <criterion/criterion.h>

#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resp/resp.h"

/* ---------------------------------------------------------------- helpers */

/* Bytes outside printable ASCII, and '\\', as \xHH: transcripts are plain C strings. */
static void tr_bytes(struct resp_buf *t, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch >= 0x7f || ch == '\\') {
            char esc[5];
            snprintf(esc, sizeof(esc), "\\x%02x", ch);
            resp_buf_append(t, esc, 4);
        } else {
            resp_buf_append(t, &s[i], 1);
        }
    }
}

static void tr_cmd(struct resp_buf *t, const struct resp_cmd *c)
{
    char hdr[96];
    cr_assert_gt(c->argc, 0, "a command always has arguments");
    cr_assert_not_null(c->argv);
    cr_assert_not_null(c->argvlen);
    snprintf(hdr, sizeof(hdr), "C %d%s", c->argc, c->is_inline ? " i" : "");
    resp_buf_append(t, hdr, strlen(hdr));
    if (c->too_big) {
        snprintf(hdr, sizeof(hdr), " T %zu", c->too_big_len);
        resp_buf_append(t, hdr, strlen(hdr));
    }
    resp_buf_append(t, " |", 2);
    for (int i = 0; i < c->argc; i++) {
        cr_assert_not_null(c->argv[i]);
        cr_assert_eq(c->argv[i][c->argvlen[i]], '\0', "argv[%d] is NUL-terminated", i);
        snprintf(hdr, sizeof(hdr), " %zu:", c->argvlen[i]);
        resp_buf_append(t, hdr, strlen(hdr));
        tr_bytes(t, c->argv[i], c->argvlen[i]);
    }
    resp_buf_append(t, "\n", 1);
}

/* Feeds one chunk, draining every command; returns false once the parser is dead. */
static bool feed(struct resp_parser *p, struct resp_buf *t, const char *buf, size_t len)
{
    size_t off = 0;
    for (;;) {
        size_t used = 0;
        struct resp_cmd *c = NULL;
        enum resp_parse_status st = resp_parse(p, buf + off, len - off, &used, &c);
        cr_assert_leq(used, len - off);
        off += used;
        if (st == RESP_CMD) {
            cr_assert_not_null(c);
            tr_cmd(t, c);
            resp_cmd_free(c);
            continue;
        }
        cr_assert_null(c);
        if (st == RESP_PROTO_ERR) {
            const char *e = resp_parser_error(p);
            resp_buf_append(t, "E ", 2);
            resp_buf_append(t, e, strlen(e));
            resp_buf_append(t, "\n", 1);
            /* dead for good */
            size_t u2 = 0;
            cr_assert_eq(resp_parse(p, "PING\r\n", 6, &u2, &c), RESP_PROTO_ERR);
            cr_assert_null(c);
            return false;
        }
        cr_assert_eq(st, RESP_NEED_MORE);
        cr_assert_eq(off, len, "NEED_MORE consumes everything");
        return true;
    }
}

/* Parses in[0..len) split at the sorted cut points; returns the transcript (malloc'd). */
static char *parse_cuts(const struct resp_limits *lim, bool authed, const char *in, size_t len,
                        const size_t *cuts, size_t ncuts)
{
    struct resp_parser *p = resp_parser_new(lim);
    cr_assert_not_null(p);
    resp_parser_set_authenticated(p, authed);
    struct resp_buf t;
    resp_buf_init(&t);
    size_t from = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : len;
        if (!feed(p, &t, in + from, to - from))
            break;
        from = to;
    }
    resp_parser_free(p);
    resp_buf_append(&t, "", 1);
    cr_assert(!t.oom);
    return t.data;
}

static char *parse_whole(const struct resp_limits *lim, bool authed, const char *in, size_t len)
{
    return parse_cuts(lim, authed, in, len, NULL, 0);
}

static char *parse_bytewise(const struct resp_limits *lim, bool authed, const char *in,
                            size_t len)
{
    size_t *cuts = malloc((len + 1) * sizeof(*cuts));
    size_t n = 0;
    for (size_t i = 1; i < len; i++)
        cuts[n++] = i;
    char *r = parse_cuts(lim, authed, in, len, cuts, n);
    free(cuts);
    return r;
}

static struct resp_limits lim_default(void)
{
    struct resp_limits l;
    resp_limits_default(&l);
    return l;
}

/* Whole, byte by byte and every single split give `want`. */
static void expect_all_splits(const struct resp_limits *lim, bool authed, const char *in,
                              size_t len, const char *want)
{
    char *w = parse_whole(lim, authed, in, len);
    cr_assert_str_eq(w, want);
    free(w);
    char *b = parse_bytewise(lim, authed, in, len);
    cr_assert_str_eq(b, want, "byte by byte");
    free(b);
    for (size_t i = 1; i < len; i++) {
        char *s = parse_cuts(lim, authed, in, len, &i, 1);
        cr_assert_str_eq(s, want, "split at %zu", i);
        free(s);
    }
}

static void expect_error(const struct resp_limits *lim, bool authed, const char *in, size_t len,
                         const char *msg)
{
    char want[256];
    snprintf(want, sizeof(want), "E %s\n", msg);
    char *w = parse_whole(lim, authed, in, len);
    cr_assert(strstr(w, want) != NULL && strcmp(strstr(w, want), want) == 0,
              "want error '%s' last, got:\n%s", msg, w);
    char *b = parse_bytewise(lim, authed, in, len);
    cr_assert_str_eq(b, w, "byte by byte agrees with whole");
    free(w);
    free(b);
}

#define S(lit) (lit), (sizeof(lit) - 1)

/* ---------------------------------------------------------------- splits */

/* multibulk with binary args (\0, \r\n inside), an empty arg, inline with quotes, blank
 * lines, *0 and *-1, and a too-big arg (arg_len_max = 12) in one pipeline */
static const char pipeline[] =
    "*3\r\n$3\r\nSET\r\n$3\r\nk\0y\r\n$8\r\na\r\nb\0c\r\n\r\n"
    "PING\r\n"
    "\r\n"
    "   \t \n"
    "*0\r\n"
    "*-1\r\n"
    "SET \"k y\" 'it\\'s' \"\\x41\\n\\\"\"\r\n"
    "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n"
    "*2\r\n$4\r\nECHO\r\n$20\r\n01234567890123456789\r\n"
    "ECHO x\n"
    "*1\r\n$4\r\nPING\r\n";

static const char pipeline_want[] =
    "C 3 | 3:SET 3:k\\x00y 8:a\\x0d\\x0ab\\x00c\\x0d\\x0a\n"
    "C 1 i | 4:PING\n"
    "C 4 i | 3:SET 3:k y 4:it's 3:A\\x0a\"\n"
    "C 2 | 4:ECHO 0:\n"
    "C 2 T 20 | 4:ECHO 0:\n"
    "C 2 i | 4:ECHO 1:x\n"
    "C 1 | 4:PING\n";


Test(resp_split, every_split_point_gives_the_same_commands)
{
    struct resp_limits l = lim_default();
    l.arg_len_max = 12;
    size_t len = sizeof(pipeline) - 1;
    char *w = parse_whole(&l, true, pipeline, len);
    cr_assert_str_eq(w, pipeline_want);
    free(w);
    char *b = parse_bytewise(&l, true, pipeline, len);
    cr_assert_str_eq(b, pipeline_want, "byte by byte");
    free(b);
    for (size_t i = 1; i < len; i++) {
        for (size_t j = i; j < len; j += 7) { /* one cut, and two cuts 7 apart */
            size_t cuts[2] = {i, j};
            char *s = parse_cuts(&l, true, pipeline, len, cuts, j == i ? 1 : 2);
            cr_assert_str_eq(s, pipeline_want, "cuts %zu,%zu", i, j);
            free(s);
        }
    }
}

Test(resp_split, consumed_stops_after_each_command)
{
    struct resp_limits l = lim_default();
    struct resp_parser *p = resp_parser_new(&l);
    resp_parser_set_authenticated(p, true);
    const char in[] = "*1\r\n$4\r\nPING\r\nECHO a\r\n";
    size_t used = 0;
    struct resp_cmd *c = NULL;
    cr_assert_eq(resp_parse(p, in, sizeof(in) - 1, &used, &c), RESP_CMD);
    cr_assert_eq(used, 14);
    cr_assert_eq(c->argc, 1);
    cr_assert(!c->is_inline);
    cr_assert_str_eq(c->argv[0], "PING");
    resp_cmd_free(c);
    size_t used2 = 0;
    cr_assert_eq(resp_parse(p, in + used, sizeof(in) - 1 - used, &used2, &c), RESP_CMD);
    cr_assert_eq(used2, 8);
    cr_assert(c->is_inline);
    cr_assert_eq(c->argc, 2);
    cr_assert_str_eq(c->argv[1], "a");
    resp_cmd_free(c);
    cr_assert_eq(resp_parse(p, "", 0, &used2, &c), RESP_NEED_MORE);
    cr_assert_eq(used2, 0);
    cr_assert_eq(resp_parser_buffered(p), 0);
    resp_parser_free(p);
}

Test(resp_split, partial_command_is_buffered_and_counted)
{
    struct resp_limits l = lim_default();
    struct resp_parser *p = resp_parser_new(&l);
    resp_parser_set_authenticated(p, true);
    size_t used = 0;
    struct resp_cmd *c = NULL;
    cr_assert_eq(resp_parse(p, S("*2\r\n$3\r\nGET\r\n$5\r\nab"), &used, &c), RESP_NEED_MORE);
    cr_assert_eq(used, 19);
    cr_assert_geq(resp_parser_buffered(p), 5, "GET and ab are held");
    cr_assert_eq(resp_parse(p, S("cde\r\n"), &used, &c), RESP_CMD);
    cr_assert_eq(c->argvlen[1], 5);
    cr_assert_str_eq(c->argv[1], "abcde");
    resp_cmd_free(c);
    cr_assert_eq(resp_parser_buffered(p), 0);
    resp_parser_free(p);
}

/* ---------------------------------------------------------------- ignored input */

Test(resp_ignore, empty_lines_and_empty_multibulk_are_ignored)
{
    struct resp_limits l = lim_default();
    expect_all_splits(&l, true, S("\r\n\n  \t\r\n*0\r\n*-1\r\n*-7\r\nPING\r\n\n"),
                      "C 1 i | 4:PING\n");
    expect_all_splits(&l, false, S("*0\r\n"), "");
}

Test(resp_ignore, inline_nul_ends_the_arguments)
{
    struct resp_limits l = lim_default();
    expect_all_splits(&l, true, S("GET a\0b c\r\n"), "C 2 i | 3:GET 1:a\n");
}

/* ---------------------------------------------------------------- inline quoting */

Test(resp_inline, quoting_follows_sdssplitargs)
{
    struct resp_limits l = lim_default();
    expect_all_splits(&l, true, S("SET \"a b\" 'c d'\r\n"), "C 3 i | 3:SET 3:a b 3:c d\n");
    expect_all_splits(&l, true, S("X \"\\n\\r\\t\\b\\a\\\\\\\"\\q\"\n"),
                      "C 2 i | 1:X 8:\\x0a\\x0d\\x09\\x08\\x07\\x5c\"q\n");
    expect_all_splits(&l, true, S("X \"\\x41\\x7a\\xZZ\"\n"), "C 2 i | 1:X 5:AzxZZ\n");
    expect_all_splits(&l, true, S("X 'it\\'s' 'a\\nb'\n"), "C 3 i | 1:X 4:it's 4:a\\x5cnb\n");
    expect_all_splits(&l, true, S("X foo\"bar baz\" \"\" ''\n"),
                      "C 4 i | 1:X 10:foobar baz 0: 0:\n");
    expect_all_splits(&l, true, S("  A\tB  C  \r\n"), "C 3 i | 1:A 1:B 1:C\n");
    /* \r not before \n is a separator; a lone \n line ending works */
    expect_all_splits(&l, true, S("A\rB\nC\n"), "C 2 i | 1:A 1:B\nC 1 i | 1:C\n");
}

Test(resp_inline, too_big_inline_argument_is_skipped)
{
    struct resp_limits l = lim_default();
    l.arg_len_max = 3;
    expect_all_splits(&l, true, S("SET k abcd\nGET k\n"),
                      "C 3 i T 4 | 3:SET 1:k 0:\nC 2 i | 3:GET 1:k\n");
}

/* ---------------------------------------------------------------- errors */

Test(resp_error, invalid_multibulk_length)
{
    struct resp_limits l = lim_default();
    const char *m = "Protocol error: invalid multibulk length";
    expect_error(&l, true, S("*abc\r\n"), m);
    expect_error(&l, true, S("*+1\r\n"), m);
    expect_error(&l, true, S("*01\r\n"), m);
    expect_error(&l, true, S("*-0\r\n"), m);
    expect_error(&l, true, S("*\r\n"), m);
    expect_error(&l, true, S("*99999999999999999999999\r\n"), m);
    expect_error(&l, true, S("*1048577\r\n"), m); /* args_max 1M */
    expect_error(&l, true, S("PING\r\n*x\r\nPING\r\n"), m);
    l.args_max = 3;
    expect_error(&l, true, S("*4\r\n"), m);
    char *ok = parse_whole(&l, true, S("*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"));
    cr_assert_str_eq(ok, "C 3 | 1:a 1:b 1:c\n");
    free(ok);
}

Test(resp_error, expected_dollar)
{
    struct resp_limits l = lim_default();
    expect_error(&l, true, S("*3\r\n$3\r\nSET\r\n:1\r\n"), "Protocol error: expected '$', got ':'");
    expect_error(&l, true, S("*1\r\nPING\r\n"), "Protocol error: expected '$', got 'P'");
    /* an empty line: Redis prints the CR, which its error reply turns into a space */
    expect_error(&l, true, S("*1\r\n\r\n"), "Protocol error: expected '$', got ' '");
}

Test(resp_error, invalid_bulk_length)
{
    struct resp_limits l = lim_default();
    const char *m = "Protocol error: invalid bulk length";
    expect_error(&l, true, S("*1\r\n$-1\r\n"), m);
    expect_error(&l, true, S("*1\r\n$abc\r\n"), m);
    expect_error(&l, true, S("*1\r\n$01\r\n"), m);
    expect_error(&l, true, S("*1\r\n$\r\n"), m);
    expect_error(&l, true, S("*1\r\n$536870913\r\n"), m); /* 512 MiB + 1 */
    l.bulk_len_max = 10;
    l.arg_len_max = 5;
    expect_error(&l, true, S("*1\r\n$11\r\n"), m);
    char *ok = parse_whole(&l, true, S("*1\r\n$10\r\n0123456789\r\n"));
    cr_assert_str_eq(ok, "C 1 T 10 | 0:\n");
    free(ok);
}

static char *repeat_after(const char *prefix, char c, size_t n, size_t *len)
{
    size_t pl = strlen(prefix);
    char *s = malloc(pl + n + 1);
    memcpy(s, prefix, pl);
    memset(s + pl, c, n);
    s[pl + n] = '\0';
    *len = pl + n;
    return s;
}

/* the count line is judged on its length (64 KiB with the '*'), whatever the split */
Test(resp_error, too_big_mbulk_count_string)
{
    struct resp_limits l = lim_default();
    size_t len;
    char *s = repeat_after("*", '1', 64 * 1024, &len); /* 65537 bytes, no CR */
    expect_error(&l, true, s, len, "Protocol error: too big mbulk count string");
    free(s);
    s = repeat_after("*", '1', 64 * 1024 - 1, &len); /* 65536 bytes: still waiting */
    char *w = parse_whole(&l, true, s, len);
    cr_assert_str_eq(w, "");
    free(w);
    s = realloc(s, len + 3);
    memcpy(s + len, "\r\n", 3); /* then judged on its value */
    w = parse_whole(&l, true, s, len + 2);
    cr_assert_str_eq(w, "E Protocol error: invalid multibulk length\n");
    free(w);
    free(s);
}

Test(resp_error, too_big_bulk_count_string)
{
    struct resp_limits l = lim_default();
    size_t len;
    char *s = repeat_after("*1\r\n$", '1', 64 * 1024, &len);
    expect_error(&l, true, s, len, "Protocol error: too big bulk count string");
    free(s);
    /* the length cap applies before the '$' is checked, as in Redis */
    s = repeat_after("*1\r\n", 'X', 70000, &len);
    expect_error(&l, true, s, len, "Protocol error: too big bulk count string");
    free(s);
}

Test(resp_error, too_big_inline_request)
{
    struct resp_limits l = lim_default();
    size_t len;
    char *s = repeat_after("GET ", 'a', 64 * 1024, &len);
    expect_error(&l, true, s, len, "Protocol error: too big inline request");
    free(s);
    l.inline_len_max = 8;
    /* exactly 8 bytes before '\n' (the '\r' counts) is fine, 9 is not */
    char *w = parse_whole(&l, true, S("GET abc\r\nGET abcd\r\n"));
    cr_assert_str_eq(w, "C 2 i | 3:GET 3:abc\nE Protocol error: too big inline request\n");
    free(w);
    expect_error(&l, true, S("GET abcde"), "Protocol error: too big inline request");
}

Test(resp_error, unbalanced_quotes)
{
    struct resp_limits l = lim_default();
    const char *m = "Protocol error: unbalanced quotes in request";
    expect_error(&l, true, S("SET \"abc\r\n"), m);
    expect_error(&l, true, S("SET 'abc\r\n"), m);
    expect_error(&l, true, S("SET \"a\"b\r\n"), m);
    expect_error(&l, true, S("SET 'a'b\r\n"), m);
    expect_error(&l, true, S("SET \"a\\\"\n"), m);
    expect_error(&l, true, S("PING\r\nSET \"x\0\"\r\n"), m);
}

Test(resp_error, error_text_has_no_prefix_and_parser_stays_dead)
{
    struct resp_limits l = lim_default();
    struct resp_parser *p = resp_parser_new(&l);
    size_t used = 0;
    struct resp_cmd *c = NULL;
    cr_assert_eq(resp_parse(p, S("*x\r\n"), &used, &c), RESP_PROTO_ERR);
    cr_assert_str_eq(resp_parser_error(p), "Protocol error: invalid multibulk length");
    cr_assert_eq(resp_parse(p, S("*1\r\n$4\r\nPING\r\n"), &used, &c), RESP_PROTO_ERR);
    cr_assert_null(c);
    resp_parser_free(p);
}

/* ---------------------------------------------------------------- auth limits */

Test(resp_auth, unauthenticated_limits_are_tighter)
{
    struct resp_limits l = lim_default();
    size_t len;
    char *big = repeat_after("*1\r\n$16385\r\n", 'v', 16385 + 2, &len);
    char *ok = repeat_after("*1\r\n$16384\r\n", 'v', 16384 + 2, &len);
    char *w;
    expect_error(&l, false, S("*11\r\n"), "Protocol error: unauthenticated multibulk length");
    expect_error(&l, false, big, strlen(big), "Protocol error: unauthenticated bulk length");
    w = parse_whole(&l, false, ok, strlen(ok));
    cr_assert(strncmp(w, "C 1 | 16384:vvv", 15) == 0, "16 KiB accepted before auth: %.40s", w);
    free(w);
    w = parse_whole(&l, true, big, strlen(big));
    cr_assert(strncmp(w, "C 1 | 16385:vvv", 15) == 0, "accepted after auth: %.40s", w);
    free(w);
    w = parse_whole(&l, false, S("*10\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n"
                                 "$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n"));
    cr_assert_str_eq(w, "C 10 | 1:a 1:a 1:a 1:a 1:a 1:a 1:a 1:a 1:a 1:a\n");
    free(w);
    free(big);
    free(ok);
}

Test(resp_auth, authenticating_mid_stream_lifts_the_limit)
{
    struct resp_limits l = lim_default();
    struct resp_parser *p = resp_parser_new(&l);
    size_t used = 0;
    struct resp_cmd *c = NULL;
    cr_assert_eq(resp_parse(p, S("AUTH pw\r\n"), &used, &c), RESP_CMD);
    resp_cmd_free(c);
    resp_parser_set_authenticated(p, true);
    cr_assert_eq(resp_parse(p, S("*11\r\n"), &used, &c), RESP_NEED_MORE);
    resp_parser_free(p);
}

/* ---------------------------------------------------------------- too big */

Test(resp_toobig, skipped_argument_keeps_the_pipeline_intact)
{
    struct resp_limits l = lim_default();
    l.arg_len_max = 8;
    expect_all_splits(&l, true,
                      S("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\n0123\r\n6789\r\n"
                        "*3\r\n$3\r\nSET\r\n$9\r\nxxxxxxxxx\r\n$12\r\n*1\r\n$4\r\nPING\r\n"
                        "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"),
                      "C 3 T 10 | 3:SET 1:k 0:\n"
                      "C 3 T 12 | 3:SET 0: 0:\n"
                      "C 2 | 3:GET 1:k\n");
}

Test(resp_toobig, command_total_over_cmd_len_max_is_too_big)
{
    struct resp_limits l = lim_default();
    l.cmd_len_max = 10; /* SET(4 with NUL) k(2) then 6 bytes would make 12 > 10 */
    expect_all_splits(&l, true, S("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$6\r\nabcdef\r\nPING\n"),
                      "C 3 T 6 | 3:SET 1:k 0:\nC 1 i | 4:PING\n");
}

Test(resp_toobig, skipped_bulk_is_not_buffered)
{
    struct resp_limits l = lim_default();
    l.arg_len_max = 1024;
    struct resp_parser *p = resp_parser_new(&l);
    resp_parser_set_authenticated(p, true);
    size_t used = 0;
    struct resp_cmd *c = NULL;
    cr_assert_eq(resp_parse(p, S("*2\r\n$3\r\nSET\r\n$1000000\r\n"), &used, &c), RESP_NEED_MORE);
    char chunk[4096];
    memset(chunk, 'z', sizeof(chunk));
    size_t left = 1000000;
    while (left > 0) {
        size_t n = left < sizeof(chunk) ? left : sizeof(chunk);
        cr_assert_eq(resp_parse(p, chunk, n, &used, &c), RESP_NEED_MORE);
        cr_assert_eq(used, n);
        cr_assert_leq(resp_parser_buffered(p), 64, "skipped bytes are not kept");
        left -= n;
    }
    cr_assert_eq(resp_parse(p, S("\r\n"), &used, &c), RESP_CMD);
    cr_assert(c->too_big);
    cr_assert_eq(c->too_big_len, 1000000);
    cr_assert_eq(c->argc, 2);
    cr_assert_eq(c->argvlen[1], 0);
    cr_assert_str_eq(c->argv[1], "");
    resp_cmd_free(c);
    resp_parser_free(p);
}

/* A header claiming 400 MB must not allocate 400 MB before the bytes come. */
Test(resp_toobig, accepted_large_bulk_is_not_preallocated)
{
    struct resp_limits l = lim_default();
    l.arg_len_max = l.bulk_len_max;
    l.cmd_len_max = 0;
    struct resp_parser *p = resp_parser_new(&l);
    resp_parser_set_authenticated(p, true);
    size_t used = 0;
    struct resp_cmd *c = NULL;
    struct mallinfo2 before = mallinfo2();
    cr_assert_eq(resp_parse(p, S("*1\r\n$400000000\r\nabc"), &used, &c), RESP_NEED_MORE);
    struct mallinfo2 after = mallinfo2();
    size_t grew = after.uordblks + after.hblkhd - before.uordblks - before.hblkhd;
    cr_assert_lt(grew, 1024 * 1024, "allocated %zu bytes for a header", grew);
    resp_parser_free(p);
}

/* ---------------------------------------------------------------- random input */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

Test(resp_random, random_bytes_never_crash_and_splits_agree)
{
    static const char alpha[] = "*$\r\n\r\n0123456789-+ \t\"'\\xabPING";
    struct resp_limits l = {
        .bulk_len_max = 40, .arg_len_max = 6, .args_max = 6, .inline_len_max = 24,
        .unauth_args_max = 3, .unauth_bulk_len_max = 9, .cmd_len_max = 20,
    };
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    char in[96];
    int cmds = 0, errs = 0;
    for (int it = 0; it < 20000; it++) {
        size_t len = rng_next(&seed) % sizeof(in);
        for (size_t i = 0; i < len; i++) {
            uint64_t r = rng_next(&seed);
            in[i] = (r & 3) == 0 ? (char)(r >> 8) : alpha[(r >> 8) % (sizeof(alpha) - 1)];
        }
        if (len > 0 && (it & 1))
            in[0] = '*';
        bool authed = (it & 2) != 0;
        char *w = parse_whole(&l, authed, in, len);
        char *b = parse_bytewise(&l, authed, in, len);
        size_t cuts[3];
        size_t nc = 0;
        if (len > 2) {
            cuts[0] = 1 + rng_next(&seed) % (len - 1);
            cuts[1] = cuts[0] + rng_next(&seed) % (len - cuts[0]);
            nc = 2;
        }
        char *s = parse_cuts(&l, authed, in, len, cuts, nc);
        cr_assert_str_eq(b, w, "byte by byte, iteration %d", it);
        cr_assert_str_eq(s, w, "split at %zu,%zu, iteration %d", cuts[0], cuts[1], it);
        cmds += strncmp(w, "C ", 2) == 0;
        errs += strstr(w, "E Protocol") != NULL;
        free(w);
        free(b);
        free(s);
    }
    /* the generator must reach both outcomes, or this test proves little */
    cr_assert_gt(cmds, 1000, "commands parsed: %d", cmds);
    cr_assert_gt(errs, 1000, "errors: %d", errs);
}

/* ---------------------------------------------------------------- round trip */

Test(resp_roundtrip, writer_array_of_bulks_parses_back)
{
    struct resp_buf b;
    resp_buf_init(&b);
    resp_w_array(&b, 3);
    resp_w_bulk_str(&b, "SET");
    resp_w_bulk(&b, "a\0\r\n", 4);
    resp_w_bulk_ll(&b, -42);
    struct resp_limits l = lim_default();
    char *w = parse_whole(&l, false, b.data, b.len);
    cr_assert_str_eq(w, "C 3 | 3:SET 4:a\\x00\\x0d\\x0a 3:-42\n");
    free(w);
    resp_buf_free(&b);
}

/* ---------------------------------------------------------------- writer */

static void expect_buf(struct resp_buf *b, const char *want, size_t n)
{
    cr_assert(!b->oom);
    cr_assert_eq(b->len, n, "len %zu want %zu: '%.*s'", b->len, n, (int)b->len, b->data);
    cr_assert_eq(memcmp(b->data, want, n), 0, "got '%.*s'", (int)b->len, b->data);
    resp_buf_reset(b);
}

#define EXPECT(b, lit) expect_buf((b), (lit), sizeof(lit) - 1)

Test(resp_writer, scalar_types)
{
    struct resp_buf b;
    resp_buf_init(&b);
    resp_w_simple(&b, "OK");
    EXPECT(&b, "+OK\r\n");
    resp_w_error(&b, "ERR bad");
    EXPECT(&b, "-ERR bad\r\n");
    resp_w_int(&b, 0);
    EXPECT(&b, ":0\r\n");
    resp_w_int(&b, -9223372036854775807LL - 1);
    EXPECT(&b, ":-9223372036854775808\r\n");
    resp_w_int(&b, 9223372036854775807LL);
    EXPECT(&b, ":9223372036854775807\r\n");
    resp_w_bulk(&b, "a\0b", 3);
    EXPECT(&b, "$3\r\na\0b\r\n");
    resp_w_bulk(&b, NULL, 0);
    EXPECT(&b, "$0\r\n\r\n");
    resp_w_bulk_str(&b, "hello");
    EXPECT(&b, "$5\r\nhello\r\n");
    resp_w_bulk_ll(&b, 1234567);
    EXPECT(&b, "$7\r\n1234567\r\n");
    resp_w_array(&b, 0);
    EXPECT(&b, "*0\r\n");
    resp_w_array(&b, 12);
    EXPECT(&b, "*12\r\n");
    resp_buf_free(&b);
}

Test(resp_writer, resp3_types_and_their_resp2_forms)
{
    struct resp_buf b;
    resp_buf_init(&b);
    resp_w_null(&b, 3);
    EXPECT(&b, "_\r\n");
    resp_w_null(&b, 2);
    EXPECT(&b, "$-1\r\n");
    resp_w_null_array(&b, 3);
    EXPECT(&b, "_\r\n");
    resp_w_null_array(&b, 2);
    EXPECT(&b, "*-1\r\n");
    resp_w_map(&b, 3, 2);
    EXPECT(&b, "%2\r\n");
    resp_w_map(&b, 2, 2);
    EXPECT(&b, "*4\r\n");
    resp_w_set(&b, 3, 5);
    EXPECT(&b, "~5\r\n");
    resp_w_set(&b, 2, 5);
    EXPECT(&b, "*5\r\n");
    resp_w_push(&b, 3, 3);
    EXPECT(&b, ">3\r\n");
    resp_w_push(&b, 2, 3);
    EXPECT(&b, "*3\r\n");
    resp_w_bool(&b, 3, true);
    EXPECT(&b, "#t\r\n");
    resp_w_bool(&b, 3, false);
    EXPECT(&b, "#f\r\n");
    resp_w_bool(&b, 2, true);
    EXPECT(&b, ":1\r\n");
    resp_w_bool(&b, 2, false);
    EXPECT(&b, ":0\r\n");
    resp_w_verbatim(&b, 3, "txt", "Some string", 11);
    EXPECT(&b, "=15\r\ntxt:Some string\r\n");
    resp_w_verbatim(&b, 2, "txt", "Some string", 11);
    EXPECT(&b, "$11\r\nSome string\r\n");
    resp_w_verbatim(&b, 3, "mkd", "", 0);
    EXPECT(&b, "=4\r\nmkd:\r\n");
    resp_w_bignum(&b, 3, "3492890328409238509324850943850943825024385");
    EXPECT(&b, "(3492890328409238509324850943850943825024385\r\n");
    resp_w_bignum(&b, 2, "-12");
    EXPECT(&b, "$3\r\n-12\r\n");
    resp_buf_free(&b);
}

Test(resp_writer, doubles_like_redis)
{
    struct resp_buf b;
    resp_buf_init(&b);
    resp_w_double(&b, 3, 1.5);
    EXPECT(&b, ",1.5\r\n");
    resp_w_double(&b, 3, 1.0 / 0.0);
    EXPECT(&b, ",inf\r\n");
    resp_w_double(&b, 3, -1.0 / 0.0);
    EXPECT(&b, ",-inf\r\n");
    resp_w_double(&b, 3, 0.0 / 0.0);
    EXPECT(&b, ",nan\r\n");
    resp_w_double(&b, 3, -(0.0 / 0.0));
    EXPECT(&b, ",nan\r\n");
    resp_w_double(&b, 3, 3.0);
    EXPECT(&b, ",3\r\n");
    resp_w_double(&b, 2, 1.5);
    EXPECT(&b, "$3\r\n1.5\r\n");
    resp_w_double(&b, 2, 0.1);
    EXPECT(&b, "$19\r\n0.10000000000000001\r\n");
    resp_w_double(&b, 2, -1.0 / 0.0);
    EXPECT(&b, "$4\r\n-inf\r\n");
    resp_w_double(&b, 3, 1e300);
    EXPECT(&b, ",1.0000000000000001e+300\r\n");
    resp_buf_free(&b);
}

Test(resp_writer, line_replies_never_carry_cr_or_lf)
{
    struct resp_buf b;
    resp_buf_init(&b);
    resp_w_errorf(&b, "ERR bad key '%s' (%d)", "a\r\nb", 7);
    EXPECT(&b, "-ERR bad key 'a  b' (7)\r\n");
    resp_w_error(&b, "ERR x\ny");
    EXPECT(&b, "-ERR x y\r\n");
    resp_w_simple(&b, "O\rK");
    EXPECT(&b, "+O K\r\n");
    char big[1000];
    memset(big, 'q', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    big[500] = '\n';
    resp_w_errorf(&b, "ERR %s", big);
    cr_assert_eq(b.len, 4 + 999 + 3);
    cr_assert_null(memchr(b.data, '\n', b.len - 1));
    cr_assert_eq(b.data[505], ' ');
    resp_buf_free(&b);
}

Test(resp_writer, oom_is_sticky)
{
    struct resp_buf b;
    resp_buf_init(&b);
    resp_w_simple(&b, "OK");
    cr_assert_eq(b.len, 5);
    resp_w_bulk(&b, "x", SIZE_MAX - 2); /* cannot be allocated */
    cr_assert(b.oom);
    size_t len = b.len;
    resp_w_simple(&b, "OK");
    resp_w_int(&b, 1);
    resp_buf_append(&b, "zz", 2);
    cr_assert(b.oom, "oom stays set");
    cr_assert_eq(b.len, len, "nothing written after oom");
    resp_buf_free(&b);
    cr_assert(!b.oom, "free resets the buffer");
}

Test(resp_writer, buffer_grows_and_reset_keeps_capacity)
{
    struct resp_buf b;
    resp_buf_init(&b);
    for (int i = 0; i < 10000; i++)
        resp_w_int(&b, i);
    cr_assert(!b.oom);
    cr_assert_eq(memcmp(b.data + b.len - 7, ":9999\r\n", 7), 0);
    size_t cap = b.cap;
    resp_buf_reset(&b);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.cap, cap);
    resp_buf_free(&b);
}
