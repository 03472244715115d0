/*
 * rc.h - the one error table of raftconf (outside src/raft, which keeps its own
 * libc-only codes in raft.h).
 *
 * Functions return 0 (RC_OK) or a positive code from this table. Each code has a
 * name, a default message and the RESP error prefix a client sees, so the service
 * layer can turn any code into a reply without a switch of its own.
 */
#ifndef RAFTCONF_RC_H
#define RAFTCONF_RC_H

/*     code            value  RESP prefix   default message */
#define RC_TABLE(X)                                                              \
    X(RC_OK,              0, "OK",        "ok")                                  \
    X(RC_NOMEM,           1, "ERR",       "out of memory")                       \
    X(RC_IO,              2, "ERR",       "storage I/O error")                   \
    X(RC_CORRUPT,         3, "ERR",       "corrupt data")                        \
    X(RC_NOTFOUND,        4, "ERR",       "not found")                           \
    X(RC_BADARG,          5, "ERR",       "invalid argument")                    \
    X(RC_TOOBIG,          6, "ERR",       "value exceeds a configured limit")    \
    X(RC_VERSION,         7, "VERSION",   "version mismatch")                    \
    X(RC_EXISTS,          8, "ERR",       "already exists")                      \
    X(RC_NOTLEADER,       9, "MOVED",     "not the leader")                      \
    X(RC_TRYAGAIN,       10, "TRYAGAIN",  "no leader yet, try again")            \
    X(RC_NOQUORUM,       11, "NOQUORUM",  "leader cannot reach a quorum")        \
    X(RC_TIMEOUT,        12, "TIMEOUT",   "outcome unknown")                     \
    X(RC_SCHEMA,         13, "SCHEMA",    "value rejected by schema")            \
    X(RC_NOPERM,         14, "NOPERM",    "no permission")                       \
    X(RC_COMPACTED,      15, "COMPACTED", "revision compacted")                  \
    X(RC_DISABLED,       16, "ERR",       "disabled by configuration")           \
    X(RC_SHUTDOWN,       17, "ERR",       "server is shutting down")             \
    X(RC_WRONGTYPE,      18, "WRONGTYPE", "wrong kind of value")                 \
    X(RC_OVERLOAD,       19, "BUSY",      "too many requests in flight")         \
    X(RC_CROSSSHARD,     20, "CROSSSHARD", "keys belong to different groups")

enum rc {
#define RC_ENUM_(code, val, prefix, msg) code = (val),
    RC_TABLE(RC_ENUM_)
#undef RC_ENUM_
    RC__COUNT
};

/* Name of a code ("RC_IO"), its RESP prefix ("ERR") and default message. Unknown codes
 * map to "RC_UNKNOWN" / "ERR" / "unknown error". Strings are static. */
const char *rc_name(int rc);
const char *rc_prefix(int rc);
const char *rc_message(int rc);

#endif
