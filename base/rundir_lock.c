// Run-directory locking and output-path checks (base/rundir_lock.h). The lock is an flock on a
// file inside the directory, so it lives exactly as long as the process holding it; the pid and
// command written into the file only make the refusal message useful.
#define _GNU_SOURCE
#include "base/rundir_lock.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/common.h"

#define MAX_LOCKS 16

static struct {
    char path[PATH_MAX];
    int fd, depth;
} g_locks[MAX_LOCKS];

static int find_lock(const char *real) {
    for (int i = 0; i < MAX_LOCKS; i++)
        if (g_locks[i].depth > 0 && !strcmp(g_locks[i].path, real)) return i;
    return -1;
}

// Why path (an existing directory) cannot take new files, or 0 when it can.
static int dir_write_error(const char *dir) {
    struct stat st;
    if (stat(dir, &st) != 0) return errno;
    if (!S_ISDIR(st.st_mode)) return ENOTDIR;
    if (access(dir, W_OK | X_OK) != 0) return errno; // EROFS on a read-only mount, EACCES
    return 0;
}

int rc_check_output_dir(const char *what, const char *path) {
    struct stat st;
    if (!path || !*path) return rc_fail("no path given for %s", what);
    if (stat(path, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            return rc_fail("cannot use %s %s: it exists and is not a directory", what, path);
        int e = dir_write_error(path);
        if (e) return rc_fail("cannot write into %s %s: %s", what, path, strerror(e));
        return 0;
    }
    if (errno != ENOENT) return rc_fail("cannot use %s %s: %s", what, path, strerror(errno));
    // it will be created with its missing parents: the nearest existing ancestor must take them
    char anc[PATH_MAX];
    snprintf(anc, sizeof anc, "%s", path);
    for (;;) {
        size_t n = strlen(anc);
        while (n > 1 && anc[n - 1] == '/') anc[--n] = 0;
        char *slash = strrchr(anc, '/');
        if (!slash) snprintf(anc, sizeof anc, ".");
        else if (slash == anc) anc[1] = 0;
        else *slash = 0;
        if (stat(anc, &st) == 0 || errno != ENOENT || !strcmp(anc, ".") || !strcmp(anc, "/")) break;
    }
    int e = dir_write_error(anc);
    if (e) return rc_fail("cannot create %s %s in %s: %s", what, path, anc, strerror(e));
    return 0;
}

static int mkdir_p(const char *path) {
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) return rc_fail("path too long: %s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return rc_fail("cannot create directory %s: %s", tmp, strerror(errno));
            *p = '/';
        }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        return rc_fail("cannot create directory %s: %s", path, strerror(errno));
    return 0;
}

int rc_check_output_file(const char *what, const char *path) {
    if (!path || !*path) return rc_fail("no path given for %s", what);
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return rc_fail("cannot write %s %s: it is a directory", what, path);
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == dir) dir[1] = 0;
    else *slash = 0;
    int e = dir_write_error(dir);
    if (e == ENOENT)
        return rc_fail("cannot write %s %s: the directory %s does not exist", what, path, dir);
    if (e) return rc_fail("cannot write %s %s: %s: %s", what, path, dir, strerror(e));
    // an existing file must be replaceable (rename over it) or writable
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode))
        return rc_fail("cannot write %s %s: it exists and is not a regular file", what, path);
    return 0;
}

int rc_dir_lock(const char *dir, const char *who) {
    if (rc_check_output_dir("run directory", dir)) return -1;
    if (mkdir_p(dir)) return rc_fail_ctx("run directory");
    char real[PATH_MAX];
    if (!realpath(dir, real)) return rc_fail("cannot resolve %s: %s", dir, strerror(errno));
    int i = find_lock(real);
    if (i >= 0) {
        g_locks[i].depth++;
        return 0;
    }
    for (i = 0; i < MAX_LOCKS && g_locks[i].depth > 0; i++) {}
    if (i == MAX_LOCKS) return rc_fail("too many run directories locked at once");
    char path[PATH_MAX + 8];
    snprintf(path, sizeof path, "%s/.lock", real);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return rc_fail("cannot create the lock file %s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char holder[256] = {0};
        ssize_t got = pread(fd, holder, sizeof holder - 1, 0);
        close(fd);
        if (got > 0 && holder[got - 1] == '\n') holder[got - 1] = 0;
        if (e == EWOULDBLOCK)
            return rc_fail("%s is in use by another recontrol process (%s); wait for it to finish "
                           "or use another directory",
                           dir, got > 0 ? holder : "pid unknown");
        return rc_fail("cannot lock %s: %s", path, strerror(e));
    }
    char line[256];
    int n = snprintf(line, sizeof line, "pid %d, recontrol %s\n", (int)getpid(), who ? who : "");
    if (ftruncate(fd, 0) != 0 || pwrite(fd, line, (size_t)n, 0) != n) {} // informative only
    snprintf(g_locks[i].path, sizeof g_locks[i].path, "%s", real);
    g_locks[i].fd = fd;
    g_locks[i].depth = 1;
    return 0;
}

void rc_dir_unlock(const char *dir) {
    char real[PATH_MAX];
    if (!dir || !realpath(dir, real)) return;
    int i = find_lock(real);
    if (i < 0 || --g_locks[i].depth > 0) return;
    close(g_locks[i].fd); // drops the flock; the file stays (removing it would race a new locker)
    g_locks[i].path[0] = 0;
}

int rc_clean_stale_tmp(const char *dir, FILE *report) {
    DIR *d = opendir(dir);
    if (!d) return rc_fail("cannot read %s: %s", dir, strerror(errno));
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *t = strstr(e->d_name, ".tmp.");
        while (t && strstr(t + 1, ".tmp.")) t = strstr(t + 1, ".tmp.");
        if (!t || !t[5]) continue;
        char *end;
        long pid = strtol(t + 5, &end, 10);
        if (*end || pid <= 0 || pid == (long)getpid()) continue;
        // the directory lock is held: no other writer is live, so another pid's file is stale
        char path[PATH_MAX];
        if (rc_path_join(path, sizeof path, dir, e->d_name)) continue;
        if (unlink(path) == 0) {
            removed++;
            if (report) fprintf(report, "removed %s, left by an interrupted run (pid %ld)\n", path, pid);
        }
    }
    closedir(d);
    return removed;
}
