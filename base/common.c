// Error reporting, allocation, timing and file helpers shared by every module.
#define _GNU_SOURCE
#include "base/common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static _Thread_local char g_err[2048];

int rc_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
    return -1;
}

int rc_fail_ctx(const char *fmt, ...) {
    char prefix[1024], old[sizeof g_err];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, g_err, sizeof old);
    size_t np = strlen(prefix);
    if (np > sizeof g_err - 3) np = sizeof g_err - 3;
    memcpy(g_err, prefix, np);
    memcpy(g_err + np, ": ", 2);
    size_t rest = sizeof g_err - np - 3;
    size_t no = strnlen(old, rest);
    memcpy(g_err + np + 2, old, no);
    g_err[np + 2 + no] = 0;
    return -1;
}

const char *rc_last_error(void) { return g_err; }

void *rc_malloc(size_t n, const char *what) {
    void *p = malloc(n ? n : 1);
    if (!p) rc_fail("out of memory allocating %zu bytes for %s", n, what);
    return p;
}

void *rc_calloc(size_t n, size_t size, const char *what) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) rc_fail("out of memory allocating %zu x %zu bytes for %s", n, size, what);
    return p;
}

double rc_time_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double read_number_file(const char *path) {
    FILE *f = fopen(path, "r");
    double v = -1;
    if (f) {
        char buf[64] = {0};
        if (fgets(buf, sizeof buf, f) && buf[0] >= '0' && buf[0] <= '9') v = strtod(buf, NULL);
        fclose(f);
    }
    return v; // -1: absent or "max"
}

double rc_memory_available_bytes(void) {
    double avail = 0, kb;
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[256];
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemAvailable: %lf kB", &kb) == 1) {
                avail = kb * 1024.0;
                break;
            }
        fclose(f);
    }
    double lim = read_number_file("/sys/fs/cgroup/memory.max");
    double used = read_number_file("/sys/fs/cgroup/memory.current");
    if (lim > 0 && used > 0) { // the cgroup's page cache is counted in its usage but reclaimable
        FILE *st = fopen("/sys/fs/cgroup/memory.stat", "r");
        if (st) {
            char line[256];
            double file = 0;
            while (fgets(line, sizeof line, st))
                if (sscanf(line, "file %lf", &file) == 1) break;
            fclose(st);
            used = used > file ? used - file : 0;
        }
    }
    if (lim > 0) {
        double left = lim - (used > 0 ? used : 0);
        if (left < 0) left = 0;
        if (avail == 0 || left < avail) avail = left;
    }
    return avail;
}

char *rc_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        rc_fail("cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        rc_fail("cannot seek %s", path);
        return NULL;
    }
    long n = ftell(f);
    if (n < 0) {
        fclose(f);
        rc_fail("cannot size %s (is it a directory?)", path);
        return NULL;
    }
    rewind(f);
    char *buf = rc_malloc((size_t)n + 1, path);
    if (!buf) {
        fclose(f);
        return NULL;
    }
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        fclose(f);
        rc_fail("short read on %s", path);
        return NULL;
    }
    fclose(f);
    buf[n] = 0;
    if (len) *len = (size_t)n;
    return buf;
}

int rc_write_file_atomic(const char *path, const void *data, size_t len) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp)
        return rc_fail("path too long: %s", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return rc_fail("cannot create %s: %s", tmp, strerror(errno));
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            close(fd);
            unlink(tmp);
            return rc_fail("cannot write %s: %s", tmp, strerror(e));
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        unlink(tmp);
        return rc_fail("cannot flush %s: %s", tmp, strerror(errno));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return rc_fail("cannot rename %s to %s: %s", tmp, path, strerror(e));
    }
    return 0;
}

int rc_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int rc_check_regular_file(const char *path, const char *expected) {
    struct stat st;
    if (stat(path, &st) != 0)
        return rc_fail("%s: %s (expected %s)", path,
                       errno == ENOENT ? "no such file or directory" : strerror(errno), expected);
    if (S_ISREG(st.st_mode)) return 0;
    return rc_fail("%s is a %s, not %s", path,
                   S_ISDIR(st.st_mode) ? "directory" : S_ISFIFO(st.st_mode) ? "FIFO"
                   : S_ISCHR(st.st_mode) ? "character device" : S_ISBLK(st.st_mode) ? "block device"
                   : S_ISSOCK(st.st_mode) ? "socket" : "special file",
                   expected);
}

int rc_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int rc_path_join(char *out, size_t cap, const char *dir, const char *name) {
    int n = snprintf(out, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap) return rc_fail("path too long: %s/%s", dir, name);
    return 0;
}

float rc_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { // subnormal: normalise
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while ((man & 0x400) == 0);
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t rc_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    int32_t exp = (int32_t)((x >> 23) & 0xff) - 127 + 15;
    uint32_t man = x & 0x7fffff;
    if (((x >> 23) & 0xff) == 0xff) return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
    if (exp >= 31) return (uint16_t)(sign | 0x7c00);
    if (exp <= 0) {
        if (exp < -10) return (uint16_t)sign;
        man |= 0x800000;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t half = 1u << (shift - 1);
        uint32_t r = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = ((uint32_t)exp << 10) | (man >> 13);
    uint32_t rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) r++;
    return (uint16_t)(sign | r);
}

float rc_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t rc_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 0x40); // quiet NaN
    uint32_t lsb = (x >> 16) & 1;
    x += 0x7fff + lsb;
    return (uint16_t)(x >> 16);
}
