// Option value parsing (base/args.h).
#include "base/args.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#include "base/common.h"

int rc_parse_int(const char *opt, const char *s, long min, long max, long *out) {
    if (!s) return rc_fail("%s expects a value", opt);
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return rc_fail("%s expects an integer in [%ld, %ld], got '%s'", opt, min, max, s);
    *out = v;
    return 0;
}

int rc_parse_id_list(const char *opt, const char *s, int **ids, int *n) {
    int cap = 16, k = 0;
    int *v = rc_malloc(sizeof(int) * (size_t)cap, "token ids");
    if (!v) return -1;
    for (const char *p = s;;) {
        while (*p == ',' || *p == ' ' || *p == '\t' || *p == '\n' || *p == '[' || *p == ']') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (end == p || errno || x < 0 || x > INT_MAX) {
            free(v);
            return rc_fail("%s: '%.20s' is not a token id (give non-negative ids like 1,2,3)", opt, p);
        }
        if (k == cap) {
            int *nv = realloc(v, sizeof(int) * (size_t)(cap *= 2));
            if (!nv) return free(v), rc_fail("out of memory parsing %s", opt);
            v = nv;
        }
        v[k++] = (int)x;
        p = end;
    }
    if (k == 0) return free(v), rc_fail("%s: no token ids given", opt);
    *ids = v;
    *n = k;
    return 0;
}
