/*
 * schema_internal.h - what the files of the schema validator share: the compiled node
 * (struct sn), the compiled schema, and helpers for numbers, equality, formats and URIs.
 *
 *   schema.c         compile: keyword checks, $id/$ref resolution, cycle check
 *   schema_eval.c    validation of a value against compiled nodes
 *   schema_format.c  "format" checks, UTF-8 length, JSON equality and number order, URIs
 *
 * Invariants of a compiled schema (checked by compile, asserted by eval):
 *   - every struct sn and everything it points to lives in the schema's arena or is a
 *     borrowed pointer into s->doc (which the schema keeps a reference to);
 *   - a node with ref != NULL has only that keyword (draft 7: $ref ignores siblings);
 *   - arrays of properties, patterns, required names and dependencies are sorted by bytes,
 *     so evaluation order never depends on member order in the schema text;
 *   - no cycle of $ref / allOf / anyOf / oneOf / not / if / then / else / dependencies
 *     exists that returns to a node without descending into the value (compile rejects it).
 */
#ifndef RAFTCONF_NS_SCHEMA_INTERNAL_H
#define RAFTCONF_NS_SCHEMA_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <jansson.h>
#include <pcre2.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "schema.h"

#define SCHEMA_ASSERT(cond)                                                                \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "%s:%d: schema assertion failed: %s\n", __FILE__, __LINE__,    \
                    #cond);                                                                \
            abort();                                                                       \
        }                                                                                  \
    } while (0)

/* Type bits of "type". SN_T_INTEGER is a number with zero fractional part. */
enum {
    SN_T_NULL = 1u << 0,
    SN_T_BOOLEAN = 1u << 1,
    SN_T_OBJECT = 1u << 2,
    SN_T_ARRAY = 1u << 3,
    SN_T_NUMBER = 1u << 4,
    SN_T_STRING = 1u << 5,
    SN_T_INTEGER = 1u << 6,
};

/* Known formats; others are annotations and never fail (draft 7, 7.2). */
enum sn_format {
    SN_F_NONE = 0,
    SN_F_DATE_TIME,
    SN_F_DATE,
    SN_F_TIME,
    SN_F_EMAIL,
    SN_F_HOSTNAME,
    SN_F_IPV4,
    SN_F_IPV6,
    SN_F_URI,
};

struct sn;

/* A member name (bytes, may hold NUL) borrowed from the document. */
struct sn_name {
    const char *s;
    size_t len;
};

struct sn_prop { /* properties, sorted by name */
    struct sn_name name;
    struct sn *schema;
};

struct sn_pat { /* patternProperties, sorted by source */
    struct sn_name src;
    pcre2_code *re;
    struct sn *schema;
};

struct sn_dep { /* dependencies, sorted by name: schema or required names */
    struct sn_name name;
    struct sn *schema;      /* NULL when the dependency is a list of names */
    struct sn_name *names;  /* sorted */
    size_t names_n;
};

#define SN_NO_LIMIT ((uint64_t)-1)

struct sn {
    const json_t *src;  /* the schema value in the document (borrowed) */
    int boolean;        /* -1 an object schema; 0 the false schema; 1 the true schema */
    struct sn *ref;     /* $ref target; when set nothing else applies */
    uint32_t types;     /* 0: no "type" */
    const json_t *enum_vals;
    const json_t *const_val;
    /* numbers (borrowed json numbers, NULL when absent) */
    const json_t *multiple_of, *minimum, *maximum, *exclusive_minimum, *exclusive_maximum;
    /* strings */
    uint64_t min_length, max_length; /* code points; SN_NO_LIMIT when absent */
    pcre2_code *pattern;
    struct sn_name pattern_src;
    enum sn_format format;
    /* arrays */
    uint64_t min_items, max_items;
    bool unique_items;
    struct sn *items;       /* single schema for all items */
    struct sn **tuple;      /* items as an array of schemas */
    size_t tuple_n;
    bool has_tuple;
    struct sn *additional_items;
    struct sn *contains;
    /* objects */
    uint64_t min_props, max_props;
    struct sn_name *required;
    size_t required_n;
    struct sn_prop *props;
    size_t props_n;
    struct sn_pat *pats;
    size_t pats_n;
    struct sn *additional_props;
    struct sn *property_names;
    struct sn_dep *deps;
    size_t deps_n;
    /* combinators */
    struct sn **all_of, **any_of, **one_of;
    size_t all_of_n, any_of_n, one_of_n;
    struct sn *not_, *if_, *then_, *else_;
    /* compile-time only: cycle check colour and pending $ref */
    uint8_t mark;
};

/* Arena block: compiled nodes and their arrays. */
struct sn_block {
    struct sn_block *next;
    size_t used, cap;
    max_align_t data[];
};

struct ns_schema {
    json_t *doc;            /* the decoded schema; nodes borrow from it */
    struct sn *root;
    struct sn_block *arena; /* every node and array */
    size_t arena_bytes;
    pcre2_code **codes;     /* every compiled regex, freed with the schema */
    size_t codes_n, codes_cap;
};

/* ---- schema.c ---- */

/* Decodes JSON text (any value, duplicate member names refused, \u0000 allowed, integers
 * beyond int64 read as doubles) after checking its nesting is at most depth_max. NULL with
 * a reason in why when it is not JSON or too deep. Caller owns the result (json_decref). */
json_t *sn_json_decode(const char *text, size_t len, unsigned depth_max, char *why,
                       size_t why_cap);


/* ---- schema_format.c ---- */

/* True when str[0..len) is valid for the format (RFC 3339 date-time/date/time, email
 * addr-spec (dot-atom@hostname or IP literal), RFC 1123 hostname, dotted-quad IPv4,
 * RFC 4291 IPv6 text, RFC 3986 absolute URI). */
bool sn_format_check(enum sn_format f, const char *str, size_t len);
/* Format named name[0..len), SN_F_NONE when unknown. */
enum sn_format sn_format_lookup(const char *name, size_t len);
/* Number of Unicode code points in valid UTF-8 bytes. */
uint64_t sn_utf8_len(const char *s, size_t len);
/* Compares two JSON numbers by value (an integer and a real compare exactly): <0, 0, >0. */
int sn_num_cmp(const json_t *a, const json_t *b);
/* True for a number with zero fractional part. */
bool sn_is_integral(const json_t *v);
/* JSON Schema equality: numbers by value (1 == 1.0), objects regardless of member order.
 * *budget is decremented per visited value; returns false when it runs out (and sets it 0). */
bool sn_json_equal(const json_t *a, const json_t *b, uint64_t *budget);
/* Resolves reference ref against base (RFC 3986, 5.2) into out (NUL-terminated).
 * Returns false when it does not fit. */
bool sn_uri_resolve(const char *base, const char *ref, char *out, size_t out_cap);

#endif
