/*
 * resp_writer.c - RESP2/RESP3 reply writer into a growable buffer (struct resp_buf).
 *
 * Invariants:
 * - A reply is written whole or the buffer is marked oom; oom is sticky and every later
 *   write is a no-op, so the caller checks once (and drops the connection) instead of
 *   after each call.
 * - Line-framed replies (+simple, -error) never contain CR or LF: they are replaced by
 *   spaces, as Redis does for errors, so no string can break the framing.
 * - RESP3-only types degrade to the RESP2 forms Redis sends to a RESP2 client.
 */
#include "resp/resp.h"

#include <assert.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ASSERT(x) assert(x)

void resp_buf_init(struct resp_buf *b)
{
    ASSERT(b != NULL);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->oom = false;
}

void resp_buf_free(struct resp_buf *b)
{
    ASSERT(b != NULL);
    free(b->data);
    resp_buf_init(b);
}

void resp_buf_reset(struct resp_buf *b)
{
    ASSERT(b != NULL);
    b->len = 0;
}

/* Room for n more bytes; returns a pointer to write at, or NULL (buffer marked oom). */
static char *buf_room(struct resp_buf *b, size_t n)
{
    if (b->oom)
        return NULL;
    if (n > b->cap - b->len) {
        if (n > SIZE_MAX / 2 - b->len) {
            b->oom = true;
            return NULL;
        }
        size_t ncap = b->cap < 256 ? 256 : b->cap;
        while (ncap - b->len < n)
            ncap *= 2;
        char *nd = realloc(b->data, ncap);
        if (nd == NULL) {
            b->oom = true;
            return NULL;
        }
        b->data = nd;
        b->cap = ncap;
    }
    return b->data + b->len;
}

void resp_buf_append(struct resp_buf *b, const void *p, size_t n)
{
    ASSERT(b != NULL);
    ASSERT(p != NULL || n == 0);
    if (n == 0)
        return;
    char *d = buf_room(b, n);
    if (d == NULL)
        return;
    memcpy(d, p, n);
    b->len += n;
}

/* Decimal digits of v into the end of tmp[0..24); returns the start. */
static char *ll_digits(long long v, char tmp[24])
{
    char *e = tmp + 24, *s = e;
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do {
        *--s = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        *--s = '-';
    return s;
}

/* "<type><v>\r\n" */
static void w_line_ll(struct resp_buf *b, char type, long long v)
{
    char tmp[24];
    char *s = ll_digits(v, tmp);
    size_t n = (size_t)(tmp + 24 - s);
    char *d = buf_room(b, n + 3);
    if (d == NULL)
        return;
    d[0] = type;
    memcpy(d + 1, s, n);
    d[n + 1] = '\r';
    d[n + 2] = '\n';
    b->len += n + 3;
}

/* "<type><s with CR/LF as spaces>\r\n" */
static void w_line_str(struct resp_buf *b, char type, const char *s, size_t n)
{
    char *d = buf_room(b, n + 3);
    if (d == NULL)
        return;
    d[0] = type;
    memcpy(d + 1, s, n);
    for (char *q = d + 1; (q = memchr(q, '\r', (size_t)(d + 1 + n - q))) != NULL;)
        *q = ' ';
    for (char *q = d + 1; (q = memchr(q, '\n', (size_t)(d + 1 + n - q))) != NULL;)
        *q = ' ';
    d[n + 1] = '\r';
    d[n + 2] = '\n';
    b->len += n + 3;
}

void resp_w_simple(struct resp_buf *b, const char *s)
{
    ASSERT(b != NULL && s != NULL);
    w_line_str(b, '+', s, strlen(s));
}

void resp_w_error(struct resp_buf *b, const char *s)
{
    ASSERT(b != NULL && s != NULL);
    w_line_str(b, '-', s, strlen(s));
}

void resp_w_errorf(struct resp_buf *b, const char *fmt, ...)
{
    ASSERT(b != NULL && fmt != NULL);
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        w_line_str(b, '-', "ERR bad error format", 20);
        return;
    }
    if ((size_t)n < sizeof(small)) {
        w_line_str(b, '-', small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (big == NULL) {
        b->oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    w_line_str(b, '-', big, (size_t)n);
    free(big);
}

void resp_w_int(struct resp_buf *b, long long v)
{
    ASSERT(b != NULL);
    w_line_ll(b, ':', v);
}

void resp_w_bulk(struct resp_buf *b, const void *p, size_t n)
{
    ASSERT(b != NULL);
    ASSERT(p != NULL || n == 0);
    char tmp[24];
    char *s = ll_digits((long long)n, tmp);
    size_t hn = (size_t)(tmp + 24 - s);
    if (n > SIZE_MAX - hn - 5) {
        b->oom = true;
        return;
    }
    char *d = buf_room(b, hn + n + 5);
    if (d == NULL)
        return;
    d[0] = '$';
    memcpy(d + 1, s, hn);
    d[hn + 1] = '\r';
    d[hn + 2] = '\n';
    if (n > 0)
        memcpy(d + hn + 3, p, n);
    d[hn + 3 + n] = '\r';
    d[hn + 4 + n] = '\n';
    b->len += hn + n + 5;
}

void resp_w_bulk_str(struct resp_buf *b, const char *s)
{
    ASSERT(s != NULL);
    resp_w_bulk(b, s, strlen(s));
}

void resp_w_bulk_ll(struct resp_buf *b, long long v)
{
    char tmp[24];
    char *s = ll_digits(v, tmp);
    resp_w_bulk(b, s, (size_t)(tmp + 24 - s));
}

void resp_w_null(struct resp_buf *b, int proto)
{
    ASSERT(proto == 2 || proto == 3);
    if (proto == 3)
        resp_buf_append(b, "_\r\n", 3);
    else
        resp_buf_append(b, "$-1\r\n", 5);
}

void resp_w_null_array(struct resp_buf *b, int proto)
{
    ASSERT(proto == 2 || proto == 3);
    if (proto == 3)
        resp_buf_append(b, "_\r\n", 3);
    else
        resp_buf_append(b, "*-1\r\n", 5);
}

void resp_w_array(struct resp_buf *b, long long n)
{
    ASSERT(n >= 0);
    w_line_ll(b, '*', n);
}

void resp_w_map(struct resp_buf *b, int proto, long long n)
{
    ASSERT(proto == 2 || proto == 3);
    ASSERT(n >= 0 && n <= LLONG_MAX / 2);
    if (proto == 3)
        w_line_ll(b, '%', n);
    else
        w_line_ll(b, '*', n * 2);
}

void resp_w_set(struct resp_buf *b, int proto, long long n)
{
    ASSERT(proto == 2 || proto == 3);
    ASSERT(n >= 0);
    w_line_ll(b, proto == 3 ? '~' : '*', n);
}

void resp_w_push(struct resp_buf *b, int proto, long long n)
{
    ASSERT(proto == 2 || proto == 3);
    ASSERT(n >= 0);
    w_line_ll(b, proto == 3 ? '>' : '*', n);
}

/* Redis's double text: inf, -inf, nan normalised; otherwise %.17g. */
static size_t double_text(double d, char *out, size_t cap)
{
    int n;
    if (isnan(d))
        n = snprintf(out, cap, "nan");
    else if (isinf(d))
        n = snprintf(out, cap, "%s", d > 0 ? "inf" : "-inf");
    else
        n = snprintf(out, cap, "%.17g", d);
    ASSERT(n > 0 && (size_t)n < cap);
    return (size_t)n;
}

void resp_w_double(struct resp_buf *b, int proto, double d)
{
    ASSERT(proto == 2 || proto == 3);
    char tmp[64];
    size_t n = double_text(d, tmp, sizeof(tmp));
    if (proto == 3)
        w_line_str(b, ',', tmp, n);
    else
        resp_w_bulk(b, tmp, n);
}

void resp_w_bool(struct resp_buf *b, int proto, bool v)
{
    ASSERT(proto == 2 || proto == 3);
    if (proto == 3)
        resp_buf_append(b, v ? "#t\r\n" : "#f\r\n", 4);
    else
        resp_buf_append(b, v ? ":1\r\n" : ":0\r\n", 4);
}

void resp_w_verbatim(struct resp_buf *b, int proto, const char *fmt3, const void *p, size_t n)
{
    ASSERT(proto == 2 || proto == 3);
    ASSERT(fmt3 != NULL && strlen(fmt3) == 3);
    ASSERT(p != NULL || n == 0);
    if (proto == 2) {
        resp_w_bulk(b, p, n);
        return;
    }
    if (n > SIZE_MAX - 64) {
        b->oom = true;
        return;
    }
    w_line_ll(b, '=', (long long)(n + 4));
    char *d = buf_room(b, n + 6);
    if (d == NULL)
        return;
    memcpy(d, fmt3, 3);
    d[3] = ':';
    if (n > 0)
        memcpy(d + 4, p, n);
    d[n + 4] = '\r';
    d[n + 5] = '\n';
    b->len += n + 6;
}

void resp_w_bignum(struct resp_buf *b, int proto, const char *digits)
{
    ASSERT(proto == 2 || proto == 3);
    ASSERT(digits != NULL);
    if (proto == 3)
        w_line_str(b, '(', digits, strlen(digits));
    else
        resp_w_bulk_str(b, digits);
}
