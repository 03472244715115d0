/*
 * resp_parser.c - incremental RESP request parser: multibulk and inline commands,
 * pipelined, with Redis's limits and Redis's protocol error texts (networking.c,
 * processMultibulkBuffer / processInlineBuffer, and sds.c sdssplitargs).
 *
 * Invariants:
 * - All state lives in struct resp_parser. Any split of the input yields exactly the same
 *   commands and the same error as the whole input: every limit is judged on the length
 *   of the line or bulk it applies to, never on how many bytes happen to be buffered.
 * - Bytes taken from the caller are either finished with or copied into the parser:
 *   a partial header/inline line into lbuf (never more than its limit + 1 byte), argument
 *   bytes into data (never more than arrived, plus at most DATA_PREALLOC_MAX reserved
 *   ahead for an accepted bulk). A bulk above arg_len_max is discarded, not buffered.
 * - data holds the current command's arguments back to back, each followed by a NUL;
 *   args[] records (offset, length) of each. A finished command is copied into one
 *   allocation: struct resp_cmd, argv[], argvlen[], then the bytes.
 * - After a protocol error the parser stays dead (ST_DEAD) and keeps its message.
 */
#include "resp/resp.h"

#include <assert.h>
#include <limits.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ASSERT(x) assert(x)

/* Redis's PROTO_INLINE_MAX_SIZE, which also bounds the *N and $N header lines. */
#define COUNT_LINE_MAX (64u * 1024u)
/* At most this much is reserved ahead of arriving bulk bytes. */
#define DATA_PREALLOC_MAX (64u * 1024u)
/* Scratch buffers above these sizes are released after the command that grew them. */
#define DATA_KEEP_MAX (64u * 1024u)
#define ARGS_KEEP_MAX 1024u
#define LBUF_KEEP_MAX (4u * 1024u)

static_assert(alignof(struct resp_cmd) >= alignof(char *), "cmd layout");
static_assert(sizeof(struct resp_cmd) % alignof(char *) == 0, "cmd layout");
static_assert(alignof(char *) == alignof(size_t), "cmd layout");

enum pstate {
    ST_START,     /* between commands: the next byte chooses multibulk or inline */
    ST_INLINE,    /* reading an inline line up to '\n' */
    ST_MB_COUNT,  /* reading "*N\r\n" */
    ST_BULK_HDR,  /* reading "$len\r\n" */
    ST_BULK_DATA, /* copying a bulk's bytes (then 2 trailing bytes) */
    ST_BULK_SKIP, /* discarding a too-big bulk's bytes (then 2 trailing bytes) */
    ST_DEAD,      /* after a protocol error */
};

struct arg_span {
    size_t off; /* into data */
    size_t len;
};

struct resp_parser {
    struct resp_limits lim;
    bool authed;
    enum pstate st;
    /* partial header/inline line; llen <= its limit; cr_pending: a header line's '\r' was
       seen, the one byte after it (Redis assumes '\n') has not arrived yet */
    char *lbuf;
    size_t llen, lcap;
    bool cr_pending;
    /* current multibulk command: argc_want from *N, args[0..nargs) done or in progress */
    size_t argc_want;
    struct arg_span *args;
    size_t nargs, args_cap;
    char *data;
    size_t dlen, dcap;
    size_t bulk_left; /* ST_BULK_DATA/SKIP: bytes still due, including the 2 trailing */
    size_t bulk_end;  /* ST_BULK_DATA: dlen when the bulk is complete */
    bool too_big;
    size_t too_big_len;
    char err[64];
};

enum step { STEP_CONT, STEP_MORE, STEP_CMD, STEP_ERR };

void resp_limits_default(struct resp_limits *l)
{
    ASSERT(l != NULL);
    l->bulk_len_max = 512u * 1024u * 1024u;
    l->arg_len_max = 1024u * 1024u;
    l->args_max = 1024u * 1024u;
    l->inline_len_max = 64u * 1024u;
    l->unauth_args_max = 10;
    l->unauth_bulk_len_max = 16u * 1024u;
    l->cmd_len_max = 64u * 1024u * 1024u;
}

struct resp_parser *resp_parser_new(const struct resp_limits *lim)
{
    ASSERT(lim != NULL);
    struct resp_parser *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->lim = *lim;
    p->st = ST_START;
    return p;
}

void resp_parser_free(struct resp_parser *p)
{
    if (p == NULL)
        return;
    free(p->lbuf);
    free(p->args);
    free(p->data);
    free(p);
}

void resp_parser_set_authenticated(struct resp_parser *p, bool authed)
{
    ASSERT(p != NULL);
    p->authed = authed;
}

const char *resp_parser_error(const struct resp_parser *p)
{
    ASSERT(p != NULL);
    return p->err;
}

size_t resp_parser_buffered(const struct resp_parser *p)
{
    ASSERT(p != NULL);
    return p->llen + p->dlen;
}

void resp_cmd_free(struct resp_cmd *c)
{
    free(c);
}

/* ---------------------------------------------------------------- helpers */

static enum step fail(struct resp_parser *p, const char *msg)
{
    snprintf(p->err, sizeof(p->err), "Protocol error: %s", msg);
    p->st = ST_DEAD;
    return STEP_ERR;
}

/* Redis's string2ll: optional '-', no '+', no leading zeros, no empty, fits long long. */
static bool str_to_ll(const char *s, size_t n, long long *out)
{
    if (n == 0 || n > 20)
        return false;
    if (n == 1 && s[0] == '0') {
        *out = 0;
        return true;
    }
    size_t i = 0;
    bool neg = false;
    if (s[0] == '-') {
        neg = true;
        i = 1;
        if (n == 1)
            return false;
    }
    if (s[i] < '1' || s[i] > '9')
        return false;
    unsigned long long v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (ULLONG_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (neg) {
        if (v > (unsigned long long)LLONG_MAX + 1)
            return false;
        *out = v == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)v;
    } else {
        if (v > (unsigned long long)LLONG_MAX)
            return false;
        *out = (long long)v;
    }
    return true;
}

/* Grows *buf to hold at least need bytes; doubles, but never past bound (>= need). */
static bool grow(char **buf, size_t *cap, size_t need, size_t bound)
{
    if (need <= *cap)
        return true;
    size_t ncap = *cap < 64 ? 64 : *cap * 2;
    if (ncap > bound)
        ncap = bound;
    if (ncap < need)
        ncap = need;
    char *nb = realloc(*buf, ncap);
    if (nb == NULL)
        return false;
    *buf = nb;
    *cap = ncap;
    return true;
}

static bool lbuf_append(struct resp_parser *p, const char *s, size_t n, size_t max)
{
    if (n == 0)
        return true;
    if (!grow(&p->lbuf, &p->lcap, p->llen + n, max < SIZE_MAX ? max + 1 : max))
        return false;
    memcpy(p->lbuf + p->llen, s, n);
    p->llen += n;
    return true;
}

static bool args_push(struct resp_parser *p, size_t off, size_t len)
{
    if (p->nargs == p->args_cap) {
        size_t ncap = p->args_cap < 8 ? 8 : p->args_cap * 2;
        if (p->argc_want > 0 && ncap > p->argc_want && p->argc_want > p->nargs)
            ncap = p->argc_want; /* multibulk: never more than declared */
        struct arg_span *na = realloc(p->args, ncap * sizeof(*na));
        if (na == NULL)
            return false;
        p->args = na;
        p->args_cap = ncap;
    }
    p->args[p->nargs].off = off;
    p->args[p->nargs].len = len;
    p->nargs++;
    return true;
}

enum line_rc { LINE_MORE, LINE_DONE, LINE_TOOLONG, LINE_NOMEM };

/*
 * Takes one line from buf[*pos..len), continuing a partial line kept in lbuf. The line ends
 * at the first `term` byte; with `extra` = 1 the byte after it must have arrived too and is
 * skipped (Redis's "\r\n" header lines, '\n' not checked). A line longer than max bytes
 * (before its terminator) is LINE_TOOLONG whatever the split. On LINE_DONE, line and n give
 * the line without terminator, valid until the parser next appends to lbuf.
 */
static enum line_rc take_line(struct resp_parser *p, const char *buf, size_t len, size_t *pos,
                              char term, int extra, size_t max, const char **line, size_t *n)
{
    const char *s = buf + *pos;
    size_t avail = len - *pos;
    ASSERT(p->llen <= max);
    if (p->cr_pending) {
        if (avail == 0)
            return LINE_MORE;
        *pos += 1;
        p->cr_pending = false;
        goto from_lbuf;
    }
    size_t scan = avail, room = max - p->llen;
    if (scan > room)
        scan = room + 1; /* enough to tell whether the line is too long */
    const char *t = memchr(s, term, scan);
    if (t == NULL) {
        if (p->llen + avail > max)
            return LINE_TOOLONG;
        if (!lbuf_append(p, s, avail, max))
            return LINE_NOMEM;
        *pos = len;
        return LINE_MORE;
    }
    size_t k = (size_t)(t - s);
    if (k + 1 + (size_t)extra > avail) { /* terminator here, the byte after it not yet */
        if (!lbuf_append(p, s, k, max))
            return LINE_NOMEM;
        p->cr_pending = true;
        *pos = len;
        return LINE_MORE;
    }
    *pos += k + 1 + (size_t)extra;
    if (p->llen == 0) { /* whole line in the caller's buffer: no copy */
        *line = s;
        *n = k;
        return LINE_DONE;
    }
    if (!lbuf_append(p, s, k, max))
        return LINE_NOMEM;
from_lbuf:
    *line = p->lbuf;
    *n = p->llen;
    p->llen = 0;
    return LINE_DONE;
}

static enum step line_fail(struct resp_parser *p, enum line_rc rc, const char *toolong)
{
    ASSERT(rc == LINE_TOOLONG || rc == LINE_NOMEM);
    return fail(p, rc == LINE_TOOLONG ? toolong : "out of memory");
}

/* Releases scratch buffers that one large command grew, and readies the next command. */
static void cmd_reset(struct resp_parser *p)
{
    p->st = ST_START;
    p->nargs = 0;
    p->argc_want = 0;
    p->dlen = 0;
    p->too_big = false;
    p->too_big_len = 0;
    if (p->dcap > DATA_KEEP_MAX) {
        free(p->data);
        p->data = NULL;
        p->dcap = 0;
    }
    if (p->args_cap > ARGS_KEEP_MAX) {
        free(p->args);
        p->args = NULL;
        p->args_cap = 0;
    }
    if (p->lcap > LBUF_KEEP_MAX && p->llen == 0) {
        free(p->lbuf);
        p->lbuf = NULL;
        p->lcap = 0;
    }
}

/* Copies the finished command into one allocation owned by the caller. */
static struct resp_cmd *cmd_build(struct resp_parser *p, bool is_inline)
{
    size_t argc = p->nargs;
    ASSERT(argc > 0 && argc <= INT_MAX);
    size_t sz = sizeof(struct resp_cmd) + argc * (sizeof(char *) + sizeof(size_t)) + p->dlen;
    struct resp_cmd *c = malloc(sz);
    if (c == NULL)
        return NULL;
    char **argv = (char **)(void *)(c + 1);
    size_t *argvlen = (size_t *)(void *)(argv + argc);
    char *d = (char *)(argvlen + argc);
    memcpy(d, p->data, p->dlen);
    for (size_t i = 0; i < argc; i++) {
        ASSERT(p->args[i].off + p->args[i].len < p->dlen);
        argv[i] = d + p->args[i].off;
        argvlen[i] = p->args[i].len;
    }
    c->argc = (int)argc;
    c->argv = argv;
    c->argvlen = argvlen;
    c->is_inline = is_inline;
    c->too_big = p->too_big;
    c->too_big_len = p->too_big_len;
    return c;
}

static enum step cmd_finish(struct resp_parser *p, bool is_inline, struct resp_cmd **out)
{
    *out = cmd_build(p, is_inline);
    if (*out == NULL)
        return fail(p, "out of memory");
    cmd_reset(p);
    return STEP_CMD;
}

/* ---------------------------------------------------------------- multibulk */

static enum step step_mb_count(struct resp_parser *p, const char *buf, size_t len, size_t *pos)
{
    const char *line;
    size_t n;
    enum line_rc rc = take_line(p, buf, len, pos, '\r', 1, COUNT_LINE_MAX, &line, &n);
    if (rc == LINE_MORE)
        return STEP_MORE;
    if (rc != LINE_DONE)
        return line_fail(p, rc, "too big mbulk count string");
    ASSERT(n >= 1 && line[0] == '*');
    long long ll;
    if (!str_to_ll(line + 1, n - 1, &ll) || ll > INT_MAX ||
        (ll > 0 && (size_t)ll > p->lim.args_max))
        return fail(p, "invalid multibulk length");
    /* Redis 7 words the tighter pre-AUTH limit differently */
    if (!p->authed && ll > 0 && (size_t)ll > p->lim.unauth_args_max)
        return fail(p, "unauthenticated multibulk length");
    if (ll <= 0) { /* empty command: ignored, as Redis does */
        p->st = ST_START;
        return STEP_CONT;
    }
    p->argc_want = (size_t)ll;
    p->nargs = 0;
    p->dlen = 0;
    p->st = ST_BULK_HDR;
    return STEP_CONT;
}

/* Accepts a bulk of ll bytes: buffer it, or skip it when it is too big to keep. */
static enum step bulk_start(struct resp_parser *p, size_t ll)
{
    /* an empty bulk costs only its NUL and is never skipped, so too_big_len > 0 */
    size_t cmax = p->lim.cmd_len_max;
    bool skip = ll > p->lim.arg_len_max ||
                (cmax > 0 && ll > 0 && (p->dlen >= cmax || ll > cmax - p->dlen));
    size_t reserve = skip ? 1 : (ll < DATA_PREALLOC_MAX ? ll : DATA_PREALLOC_MAX) + 1;
    /* doubling (amortised O(1) per argument) is allowed DATA_PREALLOC_MAX of slack */
    if (!grow(&p->data, &p->dcap, p->dlen + reserve, p->dlen + reserve + DATA_PREALLOC_MAX))
        return fail(p, "out of memory");
    if (!args_push(p, p->dlen, skip ? 0 : ll))
        return fail(p, "out of memory");
    p->bulk_left = ll + 2;
    if (skip) {
        p->too_big = true;
        if (ll > p->too_big_len)
            p->too_big_len = ll;
        p->st = ST_BULK_SKIP;
    } else {
        p->bulk_end = p->dlen + ll;
        p->st = ST_BULK_DATA;
    }
    return STEP_CONT;
}

static enum step step_bulk_hdr(struct resp_parser *p, const char *buf, size_t len, size_t *pos)
{
    const char *line;
    size_t n;
    enum line_rc rc = take_line(p, buf, len, pos, '\r', 1, COUNT_LINE_MAX, &line, &n);
    if (rc == LINE_MORE)
        return STEP_MORE;
    if (rc != LINE_DONE)
        return line_fail(p, rc, "too big bulk count string");
    if (n == 0 || line[0] != '$') {
        char got = n == 0 ? '\r' : line[0];
        if (got == '\r' || got == '\n')
            got = ' '; /* Redis maps CR/LF in error replies to spaces */
        snprintf(p->err, sizeof(p->err), "Protocol error: expected '$', got '%c'", got);
        p->st = ST_DEAD;
        return STEP_ERR;
    }
    long long ll;
    if (!str_to_ll(line + 1, n - 1, &ll) || ll < 0 || (unsigned long long)ll > SIZE_MAX - 2 ||
        (size_t)ll > p->lim.bulk_len_max)
        return fail(p, "invalid bulk length");
    if (!p->authed && (size_t)ll > p->lim.unauth_bulk_len_max)
        return fail(p, "unauthenticated bulk length");
    return bulk_start(p, (size_t)ll);
}

/* Copies (or skips) bulk bytes; the 2 bytes after the data are skipped unchecked. */
static enum step step_bulk_data(struct resp_parser *p, const char *buf, size_t len, size_t *pos,
                                struct resp_cmd **out)
{
    size_t avail = len - *pos;
    if (p->st == ST_BULK_DATA && p->bulk_left > 2) {
        size_t n = p->bulk_left - 2;
        if (n > avail)
            n = avail;
        /* bound: the whole accepted bulk plus its NUL, never more */
        if (!grow(&p->data, &p->dcap, p->dlen + n + 1, p->bulk_end + 1))
            return fail(p, "out of memory");
        memcpy(p->data + p->dlen, buf + *pos, n);
        p->dlen += n;
        *pos += n;
        p->bulk_left -= n;
        avail -= n;
    }
    size_t n = p->bulk_left;
    if (p->st == ST_BULK_DATA && n > 2)
        n = 2; /* unreachable unless avail ran out above */
    if (n > avail)
        n = avail;
    *pos += n;
    p->bulk_left -= n;
    if (p->bulk_left > 0)
        return STEP_MORE;
    ASSERT(p->dlen < p->dcap);
    p->data[p->dlen++] = '\0';
    p->st = ST_BULK_HDR;
    if (p->nargs == p->argc_want)
        return cmd_finish(p, false, out);
    return STEP_CONT;
}

/* ---------------------------------------------------------------- inline */

/* isspace() in the C locale, without the locale lookup. */
static inline bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static inline bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static inline int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return c - 'A' + 10;
}

/* The byte at i, or NUL past the end (sdssplitargs reads a C string). */
static inline char at(const char *s, size_t n, size_t i)
{
    return i < n ? s[i] : '\0';
}

static char unescape(char c)
{
    switch (c) {
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    case 'b': return '\b';
    case 'a': return '\a';
    default: return c;
    }
}

/*
 * One token of sdssplitargs starting at s[*i] (not a blank), appended to data (which has
 * room: output never exceeds input + 1). Returns false on unbalanced quotes.
 */
static bool split_token(struct resp_parser *p, const char *s, size_t n, size_t *i)
{
    char *d = p->data;
    size_t o = p->dlen, k = *i;
    bool inq = false, insq = false;
    for (;;) {
        char c = at(s, n, k);
        if (inq) {
            if (c == '\\' && at(s, n, k + 1) == 'x' && is_hex(at(s, n, k + 2)) &&
                is_hex(at(s, n, k + 3))) {
                d[o++] = (char)(hex_val(s[k + 2]) * 16 + hex_val(s[k + 3]));
                k += 3;
            } else if (c == '\\' && at(s, n, k + 1) != '\0') {
                k++;
                d[o++] = unescape(s[k]);
            } else if (c == '"') {
                /* a closing quote must be followed by a blank or the end */
                if (at(s, n, k + 1) != '\0' && !is_space(s[k + 1]))
                    return false;
                k++;
                break;
            } else if (c == '\0') {
                return false;
            } else {
                d[o++] = c;
            }
        } else if (insq) {
            if (c == '\\' && at(s, n, k + 1) == '\'') {
                k++;
                d[o++] = '\'';
            } else if (c == '\'') {
                if (at(s, n, k + 1) != '\0' && !is_space(s[k + 1]))
                    return false;
                k++;
                break;
            } else if (c == '\0') {
                return false;
            } else {
                d[o++] = c;
            }
        } else if (c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\0') {
            if (c != '\0')
                k++;
            break;
        } else if (c == '"') {
            inq = true;
        } else if (c == '\'') {
            insq = true;
        } else {
            d[o++] = c;
        }
        k++;
    }
    d[o++] = '\0';
    p->dlen = o;
    *i = k;
    return true;
}

/* Splits an inline line into data/args like sdssplitargs; -1 unbalanced, -2 no memory. */
static int split_inline(struct resp_parser *p, const char *s, size_t n)
{
    const char *nul = memchr(s, '\0', n);
    if (nul != NULL)
        n = (size_t)(nul - s); /* sdssplitargs sees a C string */
    if (!grow(&p->data, &p->dcap, n + 1, n + 1))
        return -2;
    p->dlen = 0;
    p->nargs = 0;
    p->argc_want = 0;
    size_t i = 0;
    for (;;) {
        while (i < n && is_space(s[i]))
            i++;
        if (i >= n)
            return 0;
        size_t off = p->dlen;
        if (!split_token(p, s, n, &i))
            return -1;
        size_t alen = p->dlen - off - 1;
        if (alen > p->lim.arg_len_max) {
            p->too_big = true;
            if (alen > p->too_big_len)
                p->too_big_len = alen;
            p->data[off] = '\0';
            alen = 0;
        }
        if (!args_push(p, off, alen))
            return -2;
    }
}

static enum step step_inline(struct resp_parser *p, const char *buf, size_t len, size_t *pos,
                             struct resp_cmd **out)
{
    const char *line;
    size_t n;
    enum line_rc rc = take_line(p, buf, len, pos, '\n', 0, p->lim.inline_len_max, &line, &n);
    if (rc == LINE_MORE)
        return STEP_MORE;
    if (rc != LINE_DONE)
        return line_fail(p, rc, "too big inline request");
    if (n > 0 && line[n - 1] == '\r')
        n--;
    int r = split_inline(p, line, n);
    if (r == -1)
        return fail(p, "unbalanced quotes in request");
    if (r == -2)
        return fail(p, "out of memory");
    if (p->nargs == 0) { /* empty or blank line: ignored */
        cmd_reset(p);
        return STEP_CONT;
    }
    if (p->nargs > INT_MAX)
        return fail(p, "too big inline request");
    return cmd_finish(p, true, out);
}

/* ---------------------------------------------------------------- entry */

enum resp_parse_status resp_parse(struct resp_parser *p, const char *buf, size_t len,
                                  size_t *consumed, struct resp_cmd **cmd_out)
{
    ASSERT(p != NULL && consumed != NULL && cmd_out != NULL);
    ASSERT(buf != NULL || len == 0);
    *cmd_out = NULL;
    size_t pos = 0;
    enum step s = STEP_MORE;
    while (p->st != ST_DEAD && pos < len) {
        switch (p->st) {
        case ST_START:
            p->st = buf[pos] == '*' ? ST_MB_COUNT : ST_INLINE;
            s = STEP_CONT;
            break;
        case ST_INLINE:
            s = step_inline(p, buf, len, &pos, cmd_out);
            break;
        case ST_MB_COUNT:
            s = step_mb_count(p, buf, len, &pos);
            break;
        case ST_BULK_HDR:
            s = step_bulk_hdr(p, buf, len, &pos);
            break;
        case ST_BULK_DATA:
        case ST_BULK_SKIP:
            s = step_bulk_data(p, buf, len, &pos, cmd_out);
            break;
        case ST_DEAD:
            break;
        }
        if (s == STEP_CMD || s == STEP_ERR)
            break;
    }
    *consumed = pos;
    if (p->st == ST_DEAD)
        return RESP_PROTO_ERR;
    if (s == STEP_CMD) {
        ASSERT(*cmd_out != NULL);
        return RESP_CMD;
    }
    ASSERT(pos == len);
    return RESP_NEED_MORE;
}
