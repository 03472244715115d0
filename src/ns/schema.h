/*
 * schema.h - JSON Schema (draft 7) validation for the state machine (issue 5, schemas).
 *
 * A schema is compiled once (ns_schema_compile) and then checks values at apply time
 * (ns_schema_validate). Both are deterministic: the same schema text and value give the
 * same answer, the same error pointer and the same reason on every replica. Nothing here
 * reads clocks, randomness or files; JSON is jansson, patterns are PCRE2 (no JIT).
 *
 * Ownership: ns_schema_compile hands a new struct ns_schema to the caller, who frees it
 * with ns_schema_free. A compiled schema is immutable; validating never changes it, so one
 * compiled schema may be used by any number of validations (not concurrently from several
 * threads: ns is single-threaded). Input buffers are borrowed for the call.
 *
 * Supported keywords, error format and limits: docs/schema.md.
 */
#ifndef RAFTCONF_NS_SCHEMA_H
#define RAFTCONF_NS_SCHEMA_H

#include <stddef.h>

/* Limits (docs/schema.md). Inputs beyond them are refused with an error, never truncated. */
#define NS_SCHEMA_TEXT_MAX (256u * 1024u)     /* bytes of schema JSON text */
#define NS_SCHEMA_DEPTH_MAX 64u               /* nesting of arrays/objects in a schema */
#define NS_SCHEMA_NODES_MAX 4096u             /* compiled subschemas in one schema */
#define NS_SCHEMA_KEYWORDS_MAX 16384u         /* keywords in one schema */
#define NS_SCHEMA_PATTERNS_MAX 256u           /* pattern + patternProperties regexes */
#define NS_SCHEMA_PATTERN_LEN_MAX 1024u       /* bytes of one regex */
#define NS_SCHEMA_MEM_MAX (8u * 1024u * 1024u) /* bytes of compiled schema (arena) */
#define NS_SCHEMA_VALUE_MAX (4u * 1024u * 1024u) /* bytes of a value to validate */
#define NS_SCHEMA_VALUE_DEPTH_MAX 128u        /* nesting of arrays/objects in a value */
#define NS_SCHEMA_EVAL_DEPTH_MAX 512u         /* nested subschema applications */
#define NS_SCHEMA_STEPS_MAX 1000000u          /* work units per validation */
#define NS_SCHEMA_MATCH_LIMIT 100000u         /* PCRE2 match limit per regex match */

struct ns_schema; /* compiled, immutable */

/* Compiles the schema text json[0..len) (draft 7; an object or a boolean). The schema
 * itself is validated: keyword value types, regexes compile, $ref targets resolve within
 * the document, numeric constraints are sane, limits above hold. Returns RC_OK and *out
 * (caller frees with ns_schema_free), or RC_BADARG (RC_TOOBIG for limits, RC_NOMEM) with
 * *out = NULL and a one-line message in err (NUL-terminated, truncated to err_cap; err may
 * be NULL when err_cap is 0). */
int ns_schema_compile(const char *json, size_t len, struct ns_schema **out, char *err,
                      size_t err_cap);

/* Frees a compiled schema. NULL is a no-op. */
void ns_schema_free(struct ns_schema *s);

/* Validates the value bytes value[0..len) against s. Returns RC_OK when the value is JSON
 * and conforms, RC_SCHEMA otherwise, RC_NOMEM when memory ran out (nothing is decided then:
 * the caller must not treat it as a verdict). On RC_SCHEMA, where is the JSON pointer
 * (RFC 6901) of the first failing instance location ("" for the whole value, "/pool/size")
 * and why a short reason ("must be <= 100"); both NUL-terminated and truncated to their
 * capacity. A value that is not JSON fails with where "" and why "value is not valid JSON".
 * The first failure is found in a fixed order (docs/schema.md), object members in byte
 * order of their names, so the report does not depend on member order in the text. */
int ns_schema_validate(const struct ns_schema *s, const char *value, size_t len, char *where,
                       size_t where_cap, char *why, size_t why_cap);

#endif
