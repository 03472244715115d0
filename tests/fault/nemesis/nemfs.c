/*
 * nemfs.c - LD_PRELOAD disk-fault shim for the nemesis suite (tests/fault/nemesis/).
 *
 * Loaded into one raftconf-server (LD_PRELOAD=$BUILD/nemfs.so), it watches the durability
 * calls the server (LevelDB) makes on files under one directory and lets the harness
 * inject disk faults. Environment:
 *
 *   NEMFS_DIR   absolute path of the data directory; files elsewhere are not touched
 *   NEMFS_LOG   side file the shim appends to (outside NEMFS_DIR), one line per event:
 *                 S <size> <path>     fsync/fdatasync of <path> succeeded at <size> bytes
 *                 R <old> <new>       rename(<old>, <new>) succeeded
 *                 U <path>            unlink(<path>) succeeded
 *   NEMFS_CTL   control directory; flag files there change behaviour while they exist:
 *                 eio      fsync/fdatasync fail with EIO (and record nothing)
 *                 freeze   fsync/fdatasync block until the file is removed (a frozen disk;
 *                          bounded by FREEZE_MAX_MS so a lost harness cannot hang forever)
 *
 * After the harness kills the server with SIGKILL it replays the side file (apply.sh in
 * lib.sh): every file whose current size exceeds its last synced size is cut back to it
 * (or, "torn", to a random length in between), every file never synced is cut to 0. That
 * models a power loss of the node: what was written but not fsync'd may be gone.
 *
 * Invariants: the shim only ever adds behaviour when its environment is set; each side
 * file line is written with one write(2) on an O_APPEND descriptor (lines of concurrent
 * threads never interleave); a record is appended only after the real call succeeded, so
 * the side file never claims more durability than the kernel gave.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FREEZE_MAX_MS (10 * 60 * 1000)
#define FREEZE_POLL_MS 10
#define LINE_MAX_BYTES (2 * PATH_MAX + 64)

/* Every exported symbol below interposes a libc one; prototypes keep -Wmissing-prototypes
 * quiet and document the set. */
int fsync(int fd);
int fdatasync(int fd);
int rename(const char *oldpath, const char *newpath);
int unlink(const char *path);

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_rename)(const char *, const char *);
static int (*real_unlink)(const char *);
static const char *dir, *ctl;
static size_t dir_len;
static int log_fd = -1;

static void init(void)
{
    real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    real_rename = (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "rename");
    real_unlink = (int (*)(const char *))dlsym(RTLD_NEXT, "unlink");
    dir = getenv("NEMFS_DIR");
    ctl = getenv("NEMFS_CTL");
    const char *log = getenv("NEMFS_LOG");
    if (dir && dir[0] == '/')
        dir_len = strlen(dir);
    else
        dir = NULL;
    if (dir && log)
        log_fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

static void setup(void) { pthread_once(&once, init); }

static int flag_exists(const char *name)
{
    char p[PATH_MAX];
    if (!ctl)
        return 0;
    snprintf(p, sizeof p, "%s/%s", ctl, name);
    return access(p, F_OK) == 0;
}

/* Absolute form of a path argument: relative paths are resolved against the cwd. */
static int absolute(const char *path, char *out, size_t cap)
{
    if (path[0] == '/')
        return snprintf(out, cap, "%s", path) < (int)cap ? 0 : -1;
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd))
        return -1;
    return snprintf(out, cap, "%s/%s", cwd, path) < (int)cap ? 0 : -1;
}

static int under_dir(const char *abs)
{
    return dir && strncmp(abs, dir, dir_len) == 0 && (abs[dir_len] == '/' || !abs[dir_len]);
}

static void record(const char *fmt, ...)
{
    char line[LINE_MAX_BYTES];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (log_fd < 0 || n <= 0 || n >= (int)sizeof line)
        return;
    int saved = errno;
    ssize_t w = write(log_fd, line, (size_t)n); /* one write: O_APPEND keeps it whole */
    (void)w;
    errno = saved;
}

/* The path of an open descriptor if it is a regular file under NEMFS_DIR, else -1. */
static int fd_path(int fd, char *out, size_t cap)
{
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, out, cap - 1);
    if (n <= 0)
        return -1;
    out[n] = '\0';
    struct stat st;
    if (!under_dir(out) || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        return -1;
    return 0;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int synced(int fd, int (*real)(int))
{
    setup();
    char path[PATH_MAX];
    if (!dir || fd_path(fd, path, sizeof path) != 0)
        return real(fd);
    for (int waited = 0; flag_exists("freeze") && waited < FREEZE_MAX_MS;
         waited += FREEZE_POLL_MS)
        sleep_ms(FREEZE_POLL_MS);
    if (flag_exists("eio")) {
        errno = EIO;
        return -1;
    }
    int rc = real(fd);
    if (rc == 0) {
        struct stat st;
        if (fstat(fd, &st) == 0)
            record("S %lld %s\n", (long long)st.st_size, path);
    }
    return rc;
}

int fsync(int fd)
{
    setup();
    return synced(fd, real_fsync);
}

int fdatasync(int fd)
{
    setup();
    return synced(fd, real_fdatasync);
}

int rename(const char *oldpath, const char *newpath)
{
    setup();
    int rc = real_rename(oldpath, newpath);
    char a[PATH_MAX], b[PATH_MAX];
    if (rc == 0 && dir && absolute(oldpath, a, sizeof a) == 0 &&
        absolute(newpath, b, sizeof b) == 0 && (under_dir(a) || under_dir(b)))
        record("R %s %s\n", a, b);
    return rc;
}

int unlink(const char *path)
{
    setup();
    int rc = real_unlink(path);
    char a[PATH_MAX];
    if (rc == 0 && dir && absolute(path, a, sizeof a) == 0 && under_dir(a))
        record("U %s\n", a);
    return rc;
}
