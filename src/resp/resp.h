/*
 * resp.h - RESP codec: an incremental request parser and a RESP2/RESP3 reply writer.
 *
 * Pure codec: no sockets, no libevent, nothing of raftconf but itself. The parser's state
 * lives in struct resp_parser (one per connection); feed it whatever bytes arrived, in any
 * split, and pull complete commands. Limits are checked before anything is allocated.
 */
#ifndef RAFTCONF_RESP_H
#define RAFTCONF_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- parser */

struct resp_limits {
    size_t bulk_len_max;   /* protocol limit: a larger $len is "invalid bulk length", close */
    size_t arg_len_max;    /* a bulk above this (but within bulk_len_max) is skipped without
                              buffering and the command completes as RESP_CMD_TOO_BIG */
    size_t args_max;       /* multibulk count limit ("invalid multibulk length") */
    size_t inline_len_max; /* inline line limit ("too big inline request") */
    /* tighter limits while the connection is not authenticated (Redis: 10 args, 16 KiB) */
    size_t unauth_args_max;
    size_t unauth_bulk_len_max;
    /* added: total bytes of buffered arguments in one command (0 = no limit). A bulk that
       would take the command past it is skipped like one above arg_len_max (too_big), so
       one connection never buffers more than this for a command. */
    size_t cmd_len_max;
};
/* 512 MiB, 1 MiB, 1M args, 64 KiB, 10, 16 KiB, cmd_len_max 64 MiB */
void resp_limits_default(struct resp_limits *l);

/* A parsed command: argc arguments, argv[i] is NUL-terminated (binary safe by argvlen).
 * One allocation; the caller owns it and frees it with resp_cmd_free(). */
struct resp_cmd {
    int argc;
    char **argv;
    size_t *argvlen;
    bool is_inline;  /* arrived as an inline command */
    bool too_big;    /* an argument exceeded arg_len_max (or cmd_len_max): its bytes were
                        skipped, argv[i] for that argument is empty and too_big_len holds
                        its length (the largest, if several were skipped) */
    size_t too_big_len;
};
void resp_cmd_free(struct resp_cmd *c);

enum resp_parse_status {
    RESP_NEED_MORE = 0, /* all input consumed (or kept), no complete command yet */
    RESP_CMD = 1,       /* *cmd_out holds a command (maybe too_big) */
    RESP_PROTO_ERR = 2, /* protocol error: reply resp_parser_error() and close */
};

struct resp_parser; /* opaque; see resp_parser.c */
/* The limits are copied. A new parser is NOT authenticated (unauth_* limits apply): a
 * server without a password calls resp_parser_set_authenticated(p, true) at once.
 * Returns NULL when out of memory. */
struct resp_parser *resp_parser_new(const struct resp_limits *lim);
void resp_parser_free(struct resp_parser *p);
/* Authenticated connections get the normal limits, others the unauth_* ones. */
void resp_parser_set_authenticated(struct resp_parser *p, bool authed);
/* Parse from buf[0..len). *consumed says how many bytes the parser took (it keeps what it
 * needs internally, so the caller may drop them). Call again with the rest while it
 * returns RESP_CMD. After RESP_PROTO_ERR the parser is dead. */
enum resp_parse_status resp_parse(struct resp_parser *p, const char *buf, size_t len,
                                  size_t *consumed, struct resp_cmd **cmd_out);
/* Notes on the parser:
 * - Any split of the input gives the same commands and error. Line limits are judged on
 *   the line's length (a "*N"/"$N" line over 64 KiB, an inline line over inline_len_max,
 *   before its terminator), not on what happens to be buffered; Redis's own outcome for
 *   such lines can depend on how its reads were split, ours does not.
 * - Empty commands (*0, *-N, blank inline lines) are skipped inside the call.
 * - Bytes are taken as they are (memchr, not strchr): a NUL in an inline line ends its
 *   arguments as in Redis's sdssplitargs; the two bytes after a bulk's data are skipped
 *   unchecked, as Redis does.
 * - Out of memory inside the parser is RESP_PROTO_ERR with the text
 *   "Protocol error: out of memory" (the connection is closed, the process lives on). */
/* Redis's text for the last protocol error, e.g. "Protocol error: invalid bulk length"
 * (without the "-ERR " prefix). Static/owned by the parser. */
const char *resp_parser_error(const struct resp_parser *p);
/* Bytes currently buffered inside the parser (for memory accounting). */
size_t resp_parser_buffered(const struct resp_parser *p);

/* ---------------------------------------------------------------- writer */

/* A growable output buffer. */
struct resp_buf {
    char *data;
    size_t len;
    size_t cap;
    bool oom; /* sticky: an allocation failed; contents are unusable, later writes are
                 no-ops; only resp_buf_free/init clear it (reset does not) */
};
void resp_buf_init(struct resp_buf *b);
void resp_buf_free(struct resp_buf *b);
void resp_buf_reset(struct resp_buf *b); /* len = 0, keep capacity */
void resp_buf_append(struct resp_buf *b, const void *p, size_t n);

/* proto is 2 or 3; RESP3 types degrade to their RESP2 forms as Redis does:
 * map -> flat array of 2n, set -> array, push -> array, null -> $-1 (null bulk),
 * double -> bulk string, boolean -> integer 1/0, verbatim -> bulk string, big number -> bulk */
/* Doubles: "inf", "-inf", "nan", otherwise %.17g (",1.5" in RESP3, "$3\r\n1.5" in RESP2).
 * simple and error replies never carry CR or LF: they are written as spaces (as Redis
 * does for errors), so no message can break the framing. */
void resp_w_simple(struct resp_buf *b, const char *s);                  /* +s */
void resp_w_error(struct resp_buf *b, const char *s);                   /* -s (s has prefix) */
void resp_w_errorf(struct resp_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));                             /* -... */
void resp_w_int(struct resp_buf *b, long long v);                       /* :v */
void resp_w_bulk(struct resp_buf *b, const void *p, size_t n);          /* $n */
void resp_w_bulk_str(struct resp_buf *b, const char *s);
void resp_w_bulk_ll(struct resp_buf *b, long long v);
void resp_w_null(struct resp_buf *b, int proto);                        /* _ or $-1 */
void resp_w_null_array(struct resp_buf *b, int proto);                  /* _ or *-1 */
void resp_w_array(struct resp_buf *b, long long n);                     /* *n */
void resp_w_map(struct resp_buf *b, int proto, long long n);            /* %n or *2n */
void resp_w_set(struct resp_buf *b, int proto, long long n);            /* ~n or *n */
void resp_w_push(struct resp_buf *b, int proto, long long n);           /* >n or *n */
void resp_w_double(struct resp_buf *b, int proto, double d);            /* ,d or $ */
void resp_w_bool(struct resp_buf *b, int proto, bool v);                /* #t/#f or :1/:0 */
void resp_w_verbatim(struct resp_buf *b, int proto, const char *fmt3,
                     const void *p, size_t n);                          /* =n fmt:... or $ */
/* added: RESP3 big number "(digits" (bulk string in RESP2); digits is not validated. */
void resp_w_bignum(struct resp_buf *b, int proto, const char *digits);

#endif
