/*
 * log.c - leveled logging (see log.h). State: the current level and the output stream
 * (stderr unless a log file was opened). Each line is written with one fputs + fflush so
 * lines from a crashing process are not lost in a stdio buffer.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int log_level = LL_NOTICE;
static FILE *log_fp; /* NULL: stderr */

static const char *const level_names[] = {"debug", "verbose", "notice", "warning"};
static const char level_marks[] = {'.', '-', '*', '#'};

int log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcasecmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

const char *log_level_name(int level)
{
    if (level < LL_DEBUG || level > LL_WARNING)
        return "unknown";
    return level_names[level];
}

void log_set_level(int level)
{
    if (level >= LL_DEBUG && level <= LL_WARNING)
        log_level = level;
}

int log_get_level(void) { return log_level; }

int log_open_file(const char *path)
{
    if (!path || !path[0]) {
        log_close();
        return 0;
    }
    FILE *fp = fopen(path, "a");
    if (!fp)
        return -1;
    log_close();
    log_fp = fp;
    return 0;
}

void log_close(void)
{
    if (log_fp)
        fclose(log_fp);
    log_fp = NULL;
}

bool log_enabled(int level) { return level >= log_level; }

void log_msg(int level, const char *fmt, ...)
{
    if (level < log_level || level > LL_WARNING)
        return;
    char msg[LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    localtime_r(&tv.tv_sec, &tm);
    char ts[64];
    size_t off = strftime(ts, sizeof ts, "%d %b %Y %H:%M:%S.", &tm);
    snprintf(ts + off, sizeof ts - off, "%03d", (int)(tv.tv_usec / 1000));

    char line[LOG_LINE_MAX + 128];
    snprintf(line, sizeof line, "%d:M %s %c %s\n", (int)getpid(), ts, level_marks[level], msg);
    FILE *fp = log_fp ? log_fp : stderr;
    fputs(line, fp);
    fflush(fp);
}
