/*
 * glob.c - Redis-style glob matching (see glob.h).
 *
 * Invariant of glob_match: pat[0..pi) has matched str[0..si); star_p (when >= 0) is the
 * pattern position just after the last '*' seen, star_s the string position that star is
 * currently assumed to stop at. On a mismatch the star absorbs one more byte. Only the last
 * star needs remembering: any match found with an earlier star's longer run is also found
 * by letting the last star run longer.
 */
#include "glob.h"

#include <ctype.h>
#include <stdbool.h>
#include <sys/types.h>

static int fold(int c, bool nocase) { return nocase ? tolower(c) : c; }

/* Does the class starting at pat[*pi] == '[' match c? Moves *pi past the class. An
 * unterminated class runs to the end of the pattern (as in Redis). */
static bool class_match(const char *pat, size_t plen, size_t *pi, unsigned char c, bool nocase)
{
    size_t i = *pi + 1;
    bool neg = false, hit = false;
    if (i < plen && (pat[i] == '^' || pat[i] == '!')) {
        neg = true;
        i++;
    }
    int fc = fold(c, nocase);
    while (i < plen && pat[i] != ']') {
        if (pat[i] == '\\' && i + 1 < plen) {
            if (fold((unsigned char)pat[i + 1], nocase) == fc)
                hit = true;
            i += 2;
        } else if (i + 2 < plen && pat[i + 1] == '-' && pat[i + 2] != ']') {
            int lo = fold((unsigned char)pat[i], nocase);
            int hi = fold((unsigned char)pat[i + 2], nocase);
            if (lo > hi) {
                int t = lo;
                lo = hi;
                hi = t;
            }
            if (fc >= lo && fc <= hi)
                hit = true;
            i += 3;
        } else {
            if (fold((unsigned char)pat[i], nocase) == fc)
                hit = true;
            i++;
        }
    }
    *pi = i < plen ? i + 1 : i; /* past ']' */
    return neg ? !hit : hit;
}

/* Match one non-'*' pattern element at pat[*pi] against c; advances *pi on success. */
static bool elem_match(const char *pat, size_t plen, size_t *pi, unsigned char c, bool nocase)
{
    size_t i = *pi;
    switch (pat[i]) {
    case '?':
        *pi = i + 1;
        return true;
    case '[': {
        size_t np = i;
        bool ok = class_match(pat, plen, &np, c, nocase);
        if (ok)
            *pi = np;
        return ok;
    }
    case '\\':
        if (i + 1 < plen) {
            if (fold((unsigned char)pat[i + 1], nocase) != fold(c, nocase))
                return false;
            *pi = i + 2;
            return true;
        }
        break; /* a trailing backslash is a literal backslash */
    default:
        break;
    }
    if (fold((unsigned char)pat[i], nocase) != fold(c, nocase))
        return false;
    *pi = i + 1;
    return true;
}

bool glob_match(const char *pat, size_t plen, const char *str, size_t slen, bool nocase)
{
    size_t pi = 0, si = 0, star_s = 0;
    ssize_t star_p = -1;
    while (si < slen) {
        if (pi < plen && pat[pi] == '*') {
            while (pi < plen && pat[pi] == '*')
                pi++;
            if (pi == plen)
                return true;
            star_p = (ssize_t)pi;
            star_s = si;
            continue;
        }
        if (pi < plen && elem_match(pat, plen, &pi, (unsigned char)str[si], nocase)) {
            si++;
            continue;
        }
        if (star_p < 0)
            return false;
        pi = (size_t)star_p;
        si = ++star_s;
    }
    while (pi < plen && pat[pi] == '*')
        pi++;
    return pi == plen;
}

size_t glob_literal_prefix(const char *pat, size_t plen)
{
    size_t i = 0;
    while (i < plen && pat[i] != '*' && pat[i] != '?' && pat[i] != '[' && pat[i] != '\\')
        i++;
    return i;
}
