// JSONL line reading (base/lines.h): gzread into a buffer, lines split with memchr so that every
// byte, NUL included, is counted.
#define _GNU_SOURCE
#include "base/lines.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "base/common.h"

#define RC_LINE_MAX (1 << 28)

struct rc_lines {
    gzFile f;
    char path[1024];
    char buf[1 << 16];
    size_t pos, end; // unread bytes of buf: [pos, end)
    int eof;
    char *line;
    size_t cap;
};

rc_lines *rc_lines_open(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) {
        rc_fail("cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    if (S_ISDIR(st.st_mode)) {
        rc_fail("%s is a directory; expected a JSONL file (plain or .gz)", path);
        return NULL;
    }
    rc_lines *r = rc_calloc(1, sizeof *r, "line reader");
    if (!r) return NULL;
    snprintf(r->path, sizeof r->path, "%s", path);
    errno = 0;
    r->f = gzopen(path, "rb");
    if (!r->f) {
        rc_fail("cannot open %s: %s", path, errno ? strerror(errno) : "zlib error");
        free(r);
        return NULL;
    }
    return r;
}

static int grow(rc_lines *r, size_t need) {
    if (need <= r->cap) return 0;
    if (need > RC_LINE_MAX)
        return rc_fail("%s: a line longer than %d MiB (not a JSONL file?)", r->path, RC_LINE_MAX >> 20);
    size_t nc = r->cap ? r->cap : 4096;
    while (nc < need) nc *= 2;
    char *nl = realloc(r->line, nc);
    if (!nl) return rc_fail("out of memory reading %s (a line of %zu bytes)", r->path, need);
    r->line = nl;
    r->cap = nc;
    return 0;
}

int rc_lines_next(rc_lines *r, const char **line, size_t *len) {
    size_t n = 0;
    for (;;) {
        if (r->pos == r->end) {
            if (r->eof) break;
            int got = gzread(r->f, r->buf, sizeof r->buf);
            if (got < 0) {
                int err;
                const char *msg = gzerror(r->f, &err);
                return rc_fail("%s: read error (%s); a truncated or corrupt gzip file?", r->path,
                               err == Z_ERRNO ? strerror(errno) : msg);
            }
            if (got == 0) {
                r->eof = 1;
                break;
            }
            r->pos = 0;
            r->end = (size_t)got;
        }
        const char *s = r->buf + r->pos, *nl = memchr(s, '\n', r->end - r->pos);
        size_t take = nl ? (size_t)(nl - s) : r->end - r->pos;
        if (grow(r, n + take + 1)) return -1;
        memcpy(r->line + n, s, take);
        n += take;
        r->pos += take + (nl != NULL);
        if (nl) {
            r->line[n] = 0;
            *line = r->line;
            *len = n;
            return 1;
        }
    }
    if (n == 0) return 0;
    r->line[n] = 0; // a last line without '\n'
    *line = r->line;
    *len = n;
    return 1;
}

void rc_lines_close(rc_lines *r) {
    if (!r) return;
    gzclose(r->f);
    free(r->line);
    free(r);
}

long rc_find_nul(const char *s, size_t len) {
    const char *z = memchr(s, 0, len);
    return z ? (long)(z - s) : -1;
}

long rc_json_find_nul_escape(const char *s, size_t len) {
    for (const char *p = s; (p = memmem(p, len - (size_t)(p - s), "\\u0000", 6)); p++) {
        size_t bs = 0; // backslashes just before, the escape's own included
        while (p - (long)bs >= s && p[-(long)bs] == '\\') bs++;
        if (bs % 2 == 1) return (long)(p - s);
    }
    return -1;
}
