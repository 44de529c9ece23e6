// Option and recipe value parsing (base/args.h): one range-checked integer and real parser
// shared by every command, so no value wraps around, turns into NaN or escapes its range.
#include "base/args.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>

#include "base/common.h"

int rc_parse_int(const char *opt, const char *s, long min, long max, long *out) {
    if (!s) return rc_fail("%s expects a value", opt);
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno == ERANGE)
        return rc_fail("%s expects an integer in [%ld, %ld], got '%s' (too large)", opt, min, max, s);
    if (errno || end == s || *end || v < min || v > max)
        return rc_fail("%s expects an integer in [%ld, %ld], got '%s'", opt, min, max, s);
    *out = v;
    return 0;
}

int rc_parse_i32(const char *opt, const char *s, int min, int max, int *out) {
    long v;
    if (rc_parse_int(opt, s, min, max, &v)) return -1;
    *out = (int)v;
    return 0;
}

int rc_parse_u64(const char *opt, const char *s, uint64_t *out) {
    if (!s) return rc_fail("%s expects a value", opt);
    const char *p = s;
    while (*p == ' ' || *p == '\t') p++;
    char *end;
    errno = 0;
    unsigned long long v = *p == '-' ? 0 : strtoull(p, &end, 10);
    if (*p == '-' || errno || end == p || *end)
        return rc_fail("%s expects an integer in [0, %llu], got '%s'", opt, (unsigned long long)UINT64_MAX,
                       s);
    *out = (uint64_t)v;
    return 0;
}

static int range_error(const char *opt, const char *got, double min, double max, int open) {
    return rc_fail("%s expects a finite number in %c%g, %g%c, got '%s'", opt,
                   open & RC_RANGE_OPEN_MIN ? '(' : '[', min, max,
                   open & RC_RANGE_OPEN_MAX ? ')' : ']', got);
}

static int in_range(double v, double min, double max, int open) {
    if (!isfinite(v)) return 0;
    if (open & RC_RANGE_OPEN_MIN ? !(v > min) : !(v >= min)) return 0;
    if (open & RC_RANGE_OPEN_MAX ? !(v < max) : !(v <= max)) return 0;
    return 1;
}

int rc_parse_real(const char *opt, const char *s, double min, double max, int open, double *out) {
    if (!s) return rc_fail("%s expects a value", opt);
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno == ERANGE || !in_range(v, min, max, open))
        return range_error(opt, s, min, max, open);
    *out = v;
    return 0;
}

int rc_parse_realf(const char *opt, const char *s, double min, double max, int open, float *out) {
    double v;
    if (rc_parse_real(opt, s, min, max, open, &v)) return -1;
    if (!isfinite((float)v)) return range_error(opt, s, min, max, open); // beyond float's range
    *out = (float)v;
    return 0;
}

static const char *json_kind(const cJSON *j) {
    return cJSON_IsString(j) ? "a string" : cJSON_IsBool(j) ? "a boolean" : cJSON_IsNull(j) ? "null"
           : cJSON_IsArray(j) ? "a list" : cJSON_IsObject(j) ? "an object" : "a number";
}

int rc_json_int(const char *where, const cJSON *item, long min, long max, long *out) {
    if (!item) return rc_fail("%s: missing (expected an integer in [%ld, %ld])", where, min, max);
    if (!cJSON_IsNumber(item))
        return rc_fail("%s expects an integer in [%ld, %ld], got %s", where, min, max, json_kind(item));
    double v = item->valuedouble;
    if (!isfinite(v) || v != floor(v) || v < (double)min || v > (double)max)
        return rc_fail("%s expects an integer in [%ld, %ld], got %.17g", where, min, max, v);
    *out = (long)v;
    return 0;
}

int rc_json_real(const char *where, const cJSON *item, double min, double max, int open,
                 double *out) {
    char got[64];
    if (!item || !cJSON_IsNumber(item))
        return range_error(where, item ? json_kind(item) : "nothing", min, max, open);
    if (!in_range(item->valuedouble, min, max, open)) {
        snprintf(got, sizeof got, "%.17g", item->valuedouble);
        return range_error(where, got, min, max, open);
    }
    *out = item->valuedouble;
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
