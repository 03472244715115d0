/*
 * helper.h - shared machinery of the integration suites: start and stop the real
 * raftconf-server binary, and talk to it over a raw socket with a small RESP2/RESP3 reader.
 *
 * Invariants:
 *  - servers listen on 127.0.0.1 on a port picked by binding 127.0.0.1:0 and reading it
 *    back; every server is stopped by its PID (SIGTERM, bounded wait, then SIGKILL), never
 *    by name; a server started here dies with the test process (PR_SET_PDEATHSIG);
 *  - every wait is bounded (connect, read, start, stop);
 *  - the binary is $RAFTCONF_BIN (scripts/run-tests.sh sets it), default
 *    build/raftconf-server; $ITEST_EXTRA_ARGS (space-separated) is appended to every
 *    start, so the suites can be pointed at redis-server with chosen persistence to show
 *    that they fail where they should.
 *
 * hiredis 0.14 (Debian 12) cannot parse RESP3, so the reader here is our own; tests that
 * want a real client library use hiredis for RESP2.
 */
#ifndef RAFTCONF_ITEST_HELPER_H
#define RAFTCONF_ITEST_HELPER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define ITEST_MAX_ARGS 256

struct itest_srv {
    pid_t pid;          /* 0 when not running */
    int port;
    char root[256];     /* temp dir we own: holds data/ and server.log */
    char dir[300];      /* data dir passed as --dir */
    char log[300];      /* server stdout+stderr */
    const char *password; /* from --requirepass in the extra args, for the ready probe */
    long ready_ms;      /* how long the last start took until PING answered */
    long leader_ms;     /* ... and until a read (EXISTS) answered without error */
    const char *wrap[16]; /* argv prefix (e.g. strace ...), NULL-terminated */
};

/* Make a fresh temp root (mkdtemp under /tmp) and start the server on a free port with
 * `--port P --bind 127.0.0.1 --dir D` plus extra (NULL-terminated, may be NULL; when
 * extra[0] does not start with "--" it is a config file and goes first). Waits
 * (bounded, ~15 s) until PING answers and a read is served. Returns 0 or -1 (the log tail
 * is printed to stderr). The server is registered so itest_fini stops it. */
int itest_start(struct itest_srv *s, const char *const *extra);
/* Same, with the binary run under a wrapper command (argv prefix, NULL-terminated), e.g.
 * {"strace", "-f", "-o", path, NULL}. The wrapper is kept for restarts. */
int itest_start_wrapped(struct itest_srv *s, const char *const *wrap,
                        const char *const *extra);
/* Start again on the same data dir (after a stop or a kill -9); a new free port. */
int itest_restart(struct itest_srv *s, const char *const *extra);
/* SIGTERM, wait up to timeout_ms, then SIGKILL. Returns the exit status as from waitpid
 * (0 = clean exit 0), or -1 if it had to be killed. */
int itest_stop(struct itest_srv *s, int timeout_ms);
/* kill -9 by PID and reap it. */
void itest_kill9(struct itest_srv *s);
/* Stop (if running) and remove the temp root. */
void itest_destroy(struct itest_srv *s);
/* Criterion .fini: stop every server this process started and remove their dirs. */
void itest_fini(void);
/* Print the last lines of the server log to stderr (for failure diagnosis). */
void itest_log_tail(const struct itest_srv *s, int lines);
/* A free TCP port on 127.0.0.1 (bind :0, read back, close). */
int itest_free_port(void);
/* Path of the binary under test. */
const char *itest_bin(void);

/* ---------------------------------------------------------------- replies */

enum itest_type {
    IT_STATUS = 1, IT_ERROR, IT_INT, IT_BULK, IT_NULL, IT_ARRAY, IT_MAP, IT_SET,
    IT_DOUBLE, IT_BOOL, IT_VERBATIM, IT_PUSH, IT_BIGNUM, IT_ATTR
};
struct itest_reply {
    int type;
    char lead;               /* the type byte as received ('$' for a RESP2 nil bulk ...) */
    long long integer;       /* IT_INT, IT_BOOL (0/1) */
    char *str;               /* STATUS, ERROR, BULK, VERBATIM, DOUBLE, BIGNUM text */
    size_t len;
    size_t n;                /* elements (maps: 2 * pairs) */
    struct itest_reply **elem;
};
void itest_reply_free(struct itest_reply *r);
/* Canonical text of a reply, malloc'd:
 *   +OK   -ERR text   :5   "bytes" (non-printables as \xNN)   $nil (RESP2 nil bulk)
 *   *nil (RESP2 nil array)   _ (RESP3 null)   [a, b]   {k: v}   ~[a]   ,1.5   #t/#f
 *   =txt:...   >[...]   (123 */
char *itest_fmt(const struct itest_reply *r);
/* Map lookup by bulk/status key (RESP3 map, or a RESP2 flat array of pairs). */
const struct itest_reply *itest_field(const struct itest_reply *r, const char *key);

/* ---------------------------------------------------------------- raw connection */

struct itest_conn {
    int fd;
    char *buf;
    size_t len, off, cap;
    int timeout_ms;          /* per read; default 5000 */
    bool eof;
};
/* printf into one of 8 rotating static buffers (512 bytes each): for building command
 * lines inline, e.g. itest_call(c, itest_sprintf("CFG.GET %s REV %d", k, r)). */
char *itest_sprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Open two connections to port: *r2 stays on RESP2, *r3 is switched to RESP3 with HELLO 3.
 * Returns 0, or -1 (message on stderr) when a connection or HELLO 3 fails. */
int itest_connect_pair(int port, struct itest_conn **r2, struct itest_conn **r3);

/* Connect to 127.0.0.1:port (bounded). NULL on failure. */
struct itest_conn *itest_connect(int port);
void itest_close(struct itest_conn *c);
/* Write all of buf (bounded). 0 or -1. */
int itest_send_raw(struct itest_conn *c, const void *buf, size_t len);
/* Send one command as a RESP multibulk. */
int itest_send_argv(struct itest_conn *c, int argc, const char *const *argv,
                    const size_t *argvlen);
/* Read one reply; NULL on timeout, EOF (c->eof set) or a malformed reply. */
struct itest_reply *itest_read(struct itest_conn *c);
/* Read one reply and return its formatted text (malloc'd; "<none>" on timeout/EOF). */
char *itest_read_fmt(struct itest_conn *c);
/* True when the peer closes the connection within timeout_ms (data before EOF is
 * discarded). */
bool itest_wait_eof(struct itest_conn *c, int timeout_ms);

/* Send argv (NULL-terminated strings) and return the formatted reply (malloc'd; "<none>"
 * on timeout/EOF). */
char *itest_callv(struct itest_conn *c, const char *const *argv);
/* Split `line` on spaces (no quoting) into a command; returns the formatted reply. */
char *itest_call(struct itest_conn *c, const char *line);
/* Same, returning the parsed reply (NULL on timeout/EOF). */
struct itest_reply *itest_call_r(struct itest_conn *c, const char *line);
struct itest_reply *itest_callv_r(struct itest_conn *c, const char *const *argv);

/* Assert that `line` answers exactly `want` (formatted); names both on failure. */
#define ITEST_EXPECT(conn, line, want)                                                 \
    do {                                                                               \
        char *got_ = itest_call((conn), (line));                                       \
        cr_assert_str_eq(got_, (want), "sent: %s\n   expected: %s\n   got: %s",        \
                         (line), (want), got_);                                        \
        free(got_);                                                                    \
    } while (0)
/* Assert that the formatted reply starts with `prefix`. */
#define ITEST_EXPECT_PREFIX(conn, line, prefix)                                        \
    do {                                                                               \
        char *got_ = itest_call((conn), (line));                                       \
        cr_assert(strncmp(got_, (prefix), strlen(prefix)) == 0,                        \
                  "sent: %s\n   expected prefix: %s\n   got: %s", (line), (prefix), got_); \
        free(got_);                                                                    \
    } while (0)

/* A small random-ish printable token for unique key names. */
void itest_rand_token(char *out, size_t n);
long itest_now_ms(void);

#endif
