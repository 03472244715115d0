/*
 * log.h - leveled logging for the service layer (debug < verbose < notice < warning), to
 * stderr or to a log file, one line per message with pid, time (ms) and a level mark, in
 * the shape Redis uses ("1234:M 27 Nov 2026 22:05:33.123 * message").
 *
 * Only the service layer logs; src/raft, src/ns and src/persist return codes instead.
 * Messages longer than LOG_LINE_MAX are truncated. Not thread-safe (one loop thread).
 */
#ifndef RAFTCONF_LOG_H
#define RAFTCONF_LOG_H

#include <stdbool.h>

enum log_level { LL_DEBUG = 0, LL_VERBOSE = 1, LL_NOTICE = 2, LL_WARNING = 3 };

#define LOG_LINE_MAX 1024

/* Level from its name ("debug", "verbose", "notice", "warning"); -1 if unknown. */
int log_level_parse(const char *name);
const char *log_level_name(int level);
void log_set_level(int level);
int log_get_level(void);
/* Log to path (appending); "" or NULL: stderr. Returns 0, or -1 with errno set. */
int log_open_file(const char *path);
void log_close(void);
bool log_enabled(int level);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define LOG_DEBUG(...) do { if (log_enabled(LL_DEBUG)) log_msg(LL_DEBUG, __VA_ARGS__); } while (0)
#define LOG_VERBOSE(...) log_msg(LL_VERBOSE, __VA_ARGS__)
#define LOG_NOTICE(...) log_msg(LL_NOTICE, __VA_ARGS__)
#define LOG_WARNING(...) log_msg(LL_WARNING, __VA_ARGS__)

#endif
