/*
 * schema_format.c - helpers of the schema validator that look at single values: the
 * "format" checks (RFC 3339 date-time, email, RFC 1123 hostname, IPv4, IPv6, RFC 3986 URI),
 * code point counting, JSON Schema equality and number order, and RFC 3986 reference
 * resolution for $id/$ref.
 *
 * Everything here is a pure function of its arguments (no locale, no allocation), so all
 * replicas agree. Inputs are byte ranges; strings may contain NUL bytes, which no format
 * accepts.
 */
#include <math.h>
#include <string.h>

#include "schema_internal.h"

/* ------------------------------------------------------------------ character classes */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_unreserved(char c) /* RFC 3986 2.3 */
{
    return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static bool is_sub_delim(char c) /* RFC 3986 2.2 */
{
    return c != '\0' && strchr("!$&'()*+,;=", c) != NULL;
}

/* Parses exactly n digits at s[*i] into *out. */
static bool digits(const char *s, size_t len, size_t *i, unsigned n, unsigned *out)
{
    unsigned v = 0;
    for (unsigned k = 0; k < n; k++, (*i)++) {
        if (*i >= len || !is_digit(s[*i]))
            return false;
        v = v * 10 + (unsigned)(s[*i] - '0');
    }
    *out = v;
    return true;
}

static bool expect(const char *s, size_t len, size_t *i, char c)
{
    if (*i >= len || (s[*i] != c && !(is_alpha(c) && (s[*i] | 0x20) == (c | 0x20))))
        return false;
    (*i)++;
    return true;
}

/* ------------------------------------------------------------------ RFC 3339 */

static bool full_date(const char *s, size_t len, size_t *i)
{
    static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    unsigned y, m, d;
    if (!digits(s, len, i, 4, &y) || !expect(s, len, i, '-') || !digits(s, len, i, 2, &m) ||
        !expect(s, len, i, '-') || !digits(s, len, i, 2, &d))
        return false;
    if (m < 1 || m > 12 || d < 1)
        return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return d <= mdays[m - 1] + (m == 2 && leap ? 1u : 0u);
}

/* partial-time time-offset; a leap second (60) only where UTC is 23:59 (RFC 3339 5.7). */
static bool full_time(const char *s, size_t len, size_t *i)
{
    unsigned h, m, sec, oh = 0, om = 0;
    if (!digits(s, len, i, 2, &h) || !expect(s, len, i, ':') || !digits(s, len, i, 2, &m) ||
        !expect(s, len, i, ':') || !digits(s, len, i, 2, &sec))
        return false;
    if (h > 23 || m > 59 || sec > 60)
        return false;
    if (*i < len && s[*i] == '.') {
        size_t start = ++(*i);
        while (*i < len && is_digit(s[*i]))
            (*i)++;
        if (*i == start)
            return false;
    }
    int sign = 0;
    if (*i < len && (s[*i] == 'Z' || s[*i] == 'z')) {
        (*i)++;
    } else if (*i < len && (s[*i] == '+' || s[*i] == '-')) {
        sign = s[(*i)++] == '+' ? 1 : -1;
        if (!digits(s, len, i, 2, &oh) || !expect(s, len, i, ':') ||
            !digits(s, len, i, 2, &om) || oh > 23 || om > 59)
            return false;
    } else {
        return false;
    }
    if (sec == 60) {
        int utc = ((int)(h * 60 + m) - sign * (int)(oh * 60 + om) + 1440) % 1440;
        return utc == 23 * 60 + 59;
    }
    return true;
}

static bool check_date_time(const char *s, size_t len)
{
    size_t i = 0;
    return full_date(s, len, &i) && expect(s, len, &i, 'T') && full_time(s, len, &i) &&
           i == len;
}

/* ------------------------------------------------------------------ hosts and addresses */

static bool check_ipv4(const char *s, size_t len)
{
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        if (part > 0 && !expect(s, len, &i, '.'))
            return false;
        size_t start = i;
        unsigned v = 0;
        while (i < len && is_digit(s[i]) && i - start < 3)
            v = v * 10 + (unsigned)(s[i++] - '0');
        size_t n = i - start;
        if (n == 0 || v > 255 || (n > 1 && s[start] == '0'))
            return false;
    }
    return i == len;
}

/* RFC 4291 2.2: eight groups of 1-4 hex digits, one "::" for a run of zero groups, and an
 * optional dotted IPv4 address in place of the last two groups. */
static bool check_ipv6(const char *s, size_t len)
{
    unsigned groups = 0;
    bool gap = false;
    size_t i = 0;
    if (len >= 2 && s[0] == ':' && s[1] == ':') {
        gap = true;
        i = 2;
    }
    while (i < len) {
        size_t end = i;
        while (end < len && s[end] != ':')
            end++;
        if (memchr(s + i, '.', end - i) != NULL) { /* embedded IPv4: must be last */
            if (end != len || !check_ipv4(s + i, len - i))
                return false;
            groups += 2;
            break;
        }
        if (end == i || end - i > 4)
            return false;
        for (size_t k = i; k < end; k++)
            if (!is_hex(s[k]))
                return false;
        groups++;
        i = end;
        if (i == len)
            break;
        i++; /* ':' */
        if (i < len && s[i] == ':') {
            if (gap)
                return false;
            gap = true;
            i++;
        } else if (i == len) {
            return false; /* a single trailing ':' */
        }
    }
    if (len == 0 || groups > 8)
        return false;
    return gap ? groups <= 7 : groups == 8;
}

/* RFC 1123 2.1: labels of 1-63 letters, digits and hyphens, no hyphen at either end;
 * at most 253 characters in all. */
static bool check_hostname(const char *s, size_t len)
{
    if (len == 0 || len > 253)
        return false;
    size_t label = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '.') {
            if (label == 0 || label > 63 || s[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        if (!is_alpha(s[i]) && !is_digit(s[i]) && s[i] != '-')
            return false;
        if (label == 0 && s[i] == '-')
            return false;
        label++;
    }
    return true;
}

/* RFC 5321 4.1.2 Mailbox without quoted local parts: dot-atom "@" (hostname or address
 * literal "[1.2.3.4]" / "[IPv6:...]"). */
static bool check_email(const char *s, size_t len)
{
    const char *at = memchr(s, '@', len);
    if (at == NULL)
        return false;
    size_t local = (size_t)(at - s);
    if (local == 0 || local > 64 || s[0] == '.' || s[local - 1] == '.')
        return false;
    for (size_t i = 0; i < local; i++) {
        char c = s[i];
        if (c == '.' && s[i + 1] == '.')
            return false;
        if (!is_alpha(c) && !is_digit(c) && c != '.' && strchr("!#$%&'*+-/=?^_`{|}~", c) == NULL)
            return false;
    }
    const char *dom = at + 1;
    size_t dlen = len - local - 1;
    if (dlen >= 2 && dom[0] == '[' && dom[dlen - 1] == ']') {
        if (dlen > 7 && strncmp(dom + 1, "IPv6:", 5) == 0)
            return check_ipv6(dom + 6, dlen - 7);
        return check_ipv4(dom + 1, dlen - 2);
    }
    return check_hostname(dom, dlen);
}

/* ------------------------------------------------------------------ RFC 3986 URI */

/* Characters of class ok (pchar-like) or %HH; stops at a byte not in the class. */
static size_t uri_run(const char *s, size_t len, size_t i, const char *extra)
{
    while (i < len) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= len + 0 || !is_hex(s[i + 1]) || !is_hex(s[i + 2]))
                return i;
            i += 3;
        } else if (is_unreserved(c) || is_sub_delim(c) || (c != '\0' && strchr(extra, c))) {
            i++;
        } else {
            return i;
        }
    }
    return i;
}

static bool check_authority(const char *s, size_t len)
{
    const char *at = memchr(s, '@', len);
    size_t i = 0;
    if (at != NULL) {
        size_t ui = (size_t)(at - s);
        if (uri_run(s, ui, 0, ":") != ui)
            return false;
        i = ui + 1;
    }
    if (i < len && s[i] == '[') {
        const char *close = memchr(s + i, ']', len - i);
        if (close == NULL || !check_ipv6(s + i + 1, (size_t)(close - s) - i - 1))
            return false;
        i = (size_t)(close - s) + 1;
    } else {
        i = uri_run(s, len, i, "");
    }
    if (i < len && s[i] == ':')
        for (i++; i < len && is_digit(s[i]); i++)
            ;
    return i == len;
}

/* URI = scheme ":" hier-part [ "?" query ] [ "#" fragment ] (RFC 3986 3). */
static bool check_uri(const char *s, size_t len)
{
    size_t i = 0;
    if (len == 0 || !is_alpha(s[0]))
        return false;
    while (i < len && (is_alpha(s[i]) || is_digit(s[i]) || strchr("+-.", s[i]) != NULL) &&
           s[i] != '\0')
        i++;
    if (i == len || s[i] != ':')
        return false;
    i++;
    if (len - i >= 2 && s[i] == '/' && s[i + 1] == '/') {
        size_t start = i + 2, end = start;
        while (end < len && s[end] != '/' && s[end] != '?' && s[end] != '#')
            end++;
        if (!check_authority(s + start, end - start))
            return false;
        i = end;
    }
    i = uri_run(s, len, i, ":@/");
    if (i < len && s[i] == '?')
        i = uri_run(s, len, i + 1, ":@/?");
    if (i < len && s[i] == '#')
        i = uri_run(s, len, i + 1, ":@/?");
    return i == len;
}

/* ------------------------------------------------------------------ dispatch */

bool sn_format_check(enum sn_format f, const char *s, size_t len)
{
    size_t i = 0;
    switch (f) {
    case SN_F_DATE_TIME:
        return check_date_time(s, len);
    case SN_F_DATE:
        return full_date(s, len, &i) && i == len;
    case SN_F_TIME:
        return full_time(s, len, &i) && i == len;
    case SN_F_EMAIL:
        return check_email(s, len);
    case SN_F_HOSTNAME:
        return check_hostname(s, len);
    case SN_F_IPV4:
        return check_ipv4(s, len);
    case SN_F_IPV6:
        return check_ipv6(s, len);
    case SN_F_URI:
        return check_uri(s, len);
    case SN_F_NONE:
        break;
    }
    return true;
}

enum sn_format sn_format_lookup(const char *name, size_t len)
{
    static const struct {
        const char *name;
        enum sn_format f;
    } table[] = {
        {"date-time", SN_F_DATE_TIME}, {"date", SN_F_DATE}, {"time", SN_F_TIME},
        {"email", SN_F_EMAIL},         {"hostname", SN_F_HOSTNAME}, {"ipv4", SN_F_IPV4},
        {"ipv6", SN_F_IPV6},           {"uri", SN_F_URI},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if (strlen(table[i].name) == len && memcmp(table[i].name, name, len) == 0)
            return table[i].f;
    return SN_F_NONE;
}

/* ------------------------------------------------------------------ values */

uint64_t sn_utf8_len(const char *s, size_t len)
{
    uint64_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xC0u) != 0x80u; /* count all but continuation bytes */
    return n;
}

bool sn_is_integral(const json_t *v)
{
    if (json_is_integer(v))
        return true;
    if (!json_is_real(v))
        return false;
    double d = json_real_value(v);
    return isfinite(d) && floor(d) == d;
}

/* Integer i against double d, exactly (no rounding of i to double). */
static int int_real_cmp(json_int_t i, double d)
{
    if (d >= 9223372036854775808.0)
        return -1;
    if (d < -9223372036854775808.0)
        return 1;
    json_int_t t = (json_int_t)d; /* truncates toward zero; in range by the tests above */
    if (i != t)
        return i < t ? -1 : 1;
    double frac = d - (double)t;
    return frac > 0 ? -1 : frac < 0 ? 1 : 0;
}

int sn_num_cmp(const json_t *a, const json_t *b)
{
    SCHEMA_ASSERT(json_is_number(a));
    SCHEMA_ASSERT(json_is_number(b));
    if (json_is_integer(a) && json_is_integer(b)) {
        json_int_t x = json_integer_value(a), y = json_integer_value(b);
        return x < y ? -1 : x > y;
    }
    if (json_is_integer(a))
        return int_real_cmp(json_integer_value(a), json_real_value(b));
    if (json_is_integer(b))
        return -int_real_cmp(json_integer_value(b), json_real_value(a));
    double x = json_real_value(a), y = json_real_value(b);
    return x < y ? -1 : x > y;
}

bool sn_json_equal(const json_t *a, const json_t *b, uint64_t *budget)
{
    if (*budget == 0)
        return false;
    (*budget)--;
    if (json_is_number(a) && json_is_number(b))
        return sn_num_cmp(a, b) == 0;
    if (json_typeof(a) != json_typeof(b))
        return false;
    switch (json_typeof(a)) {
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b))
            return false;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!sn_json_equal(json_array_get(a, i), json_array_get(b, i), budget))
                return false;
        return true;
    case JSON_OBJECT: {
        if (json_object_size(a) != json_object_size(b))
            return false;
        const char *key;
        size_t key_len;
        json_t *v;
        json_object_keylen_foreach((json_t *)a, key, key_len, v) {
            const json_t *w = json_object_getn(b, key, key_len);
            if (w == NULL || !sn_json_equal(v, w, budget))
                return false;
        }
        return true;
    }
    default: /* true, false, null: same type is equal */
        return true;
    }
}

/* ------------------------------------------------------------------ RFC 3986 5.2 */

struct uri_parts {
    const char *scheme, *auth, *path, *query, *frag;
    size_t scheme_n, auth_n, path_n, query_n, frag_n;
    bool has_scheme, has_auth, has_query, has_frag;
};

static void uri_split(const char *u, struct uri_parts *p)
{
    memset(p, 0, sizeof(*p));
    size_t n = strlen(u), i = 0;
    while (i < n && u[i] != ':' && u[i] != '/' && u[i] != '?' && u[i] != '#')
        i++;
    if (i > 0 && i < n && u[i] == ':' && is_alpha(u[0])) {
        p->has_scheme = true;
        p->scheme = u;
        p->scheme_n = i;
        u += i + 1;
        n -= i + 1;
    }
    if (n >= 2 && u[0] == '/' && u[1] == '/') {
        p->has_auth = true;
        p->auth = u + 2;
        p->auth_n = strcspn(u + 2, "/?#");
        u += 2 + p->auth_n;
        n -= 2 + p->auth_n;
    }
    p->path = u;
    p->path_n = strcspn(u, "?#");
    u += p->path_n;
    if (*u == '?') {
        p->has_query = true;
        p->query = u + 1;
        p->query_n = strcspn(u + 1, "#");
        u += 1 + p->query_n;
    }
    if (*u == '#') {
        p->has_frag = true;
        p->frag = u + 1;
        p->frag_n = strlen(u + 1);
    }
}

/* remove_dot_segments (RFC 3986 5.2.4) of in[0..n) appended to out at *o. */
static bool remove_dots(const char *in, size_t n, char *out, size_t cap, size_t *o)
{
    size_t start = *o, i = 0;
    while (i < n) {
        const char *r = in + i;
        size_t left = n - i;
        if (left >= 3 && memcmp(r, "../", 3) == 0) {
            i += 3;
        } else if (left >= 2 && memcmp(r, "./", 2) == 0) {
            i += 2;
        } else if ((left >= 3 && memcmp(r, "/./", 3) == 0) || (left == 2 && !memcmp(r, "/.", 2))) {
            i += 2; /* keep the '/' as the start of the rest */
            if (left == 2) {
                if (*o + 1 >= cap)
                    return false;
                out[(*o)++] = '/';
            }
        } else if ((left >= 4 && memcmp(r, "/../", 4) == 0) ||
                   (left == 3 && memcmp(r, "/..", 3) == 0)) {
            while (*o > start && out[*o - 1] != '/')
                (*o)--;
            if (*o > start)
                (*o)--;
            i += 3;
            if (left == 3) {
                if (*o + 1 >= cap)
                    return false;
                out[(*o)++] = '/';
            }
        } else if ((left == 1 && r[0] == '.') || (left == 2 && !memcmp(r, "..", 2))) {
            i = n;
        } else {
            size_t seg = 1;
            while (seg < left && r[seg] != '/')
                seg++;
            if (*o + seg >= cap)
                return false;
            memcpy(out + *o, r, seg);
            *o += seg;
            i += seg;
        }
    }
    return true;
}

static bool put(char *out, size_t cap, size_t *o, const char *s, size_t n)
{
    if (*o + n >= cap)
        return false;
    memcpy(out + *o, s, n);
    *o += n;
    return true;
}

bool sn_uri_resolve(const char *base, const char *ref, char *out, size_t out_cap)
{
    struct uri_parts b, r;
    uri_split(base, &b);
    uri_split(ref, &r);
    size_t o = 0;
    const struct uri_parts *sa = r.has_scheme ? &r : &b; /* scheme source */
    const struct uri_parts *aa = r.has_scheme || r.has_auth ? &r : &b;
    if (sa->has_scheme && (!put(out, out_cap, &o, sa->scheme, sa->scheme_n) ||
                           !put(out, out_cap, &o, ":", 1)))
        return false;
    if (aa->has_auth && (!put(out, out_cap, &o, "//", 2) ||
                         !put(out, out_cap, &o, aa->auth, aa->auth_n)))
        return false;
    const struct uri_parts *qa = &r;
    if (r.has_scheme || r.has_auth || (r.path_n > 0 && r.path[0] == '/')) {
        if (!remove_dots(r.path, r.path_n, out, out_cap, &o))
            return false;
    } else if (r.path_n == 0) {
        if (!put(out, out_cap, &o, b.path, b.path_n))
            return false;
        qa = r.has_query ? &r : &b;
    } else { /* merge (5.2.3) */
        char merged[2048];
        size_t m = 0;
        if (b.has_auth && b.path_n == 0) {
            merged[m++] = '/';
        } else {
            const char *slash = NULL;
            for (size_t k = 0; k < b.path_n; k++)
                if (b.path[k] == '/')
                    slash = b.path + k;
            if (slash != NULL && !put(merged, sizeof(merged), &m, b.path,
                                      (size_t)(slash - b.path) + 1))
                return false;
        }
        if (!put(merged, sizeof(merged), &m, r.path, r.path_n) ||
            !remove_dots(merged, m, out, out_cap, &o))
            return false;
    }
    if (qa->has_query && (!put(out, out_cap, &o, "?", 1) ||
                          !put(out, out_cap, &o, qa->query, qa->query_n)))
        return false;
    if (r.has_frag && (!put(out, out_cap, &o, "#", 1) ||
                       !put(out, out_cap, &o, r.frag, r.frag_n)))
        return false;
    out[o] = '\0';
    return true;
}
