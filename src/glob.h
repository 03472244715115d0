/*
 * glob.h - Redis-style glob matching, as KEYS, SCAN MATCH, CONFIG GET and (later) schema
 * patterns use it: '*' any run, '?' one byte, '[abc]' a set, '[^a]' or '[!a]' a negated
 * set, '[a-z]' a range, '\x' a literal x. Binary safe (explicit lengths).
 *
 * Matching is iterative with one backtrack point for the last '*', so its cost is bounded
 * by O(len(pattern) * len(string)) and it cannot overflow the stack on hostile patterns.
 */
#ifndef RAFTCONF_GLOB_H
#define RAFTCONF_GLOB_H

#include <stdbool.h>
#include <stddef.h>

bool glob_match(const char *pat, size_t plen, const char *str, size_t slen, bool nocase);
/* Length of the literal prefix of pat (bytes before the first special character); any
 * string that matches pat starts with those bytes. Used to narrow key scans. */
size_t glob_literal_prefix(const char *pat, size_t plen);

#endif
