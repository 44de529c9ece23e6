// safetensors reader (mmap + strict header validation) and atomic writer.
// File layout: u64 little-endian N, N bytes of JSON header (space-padded), data buffer; every
// tensor's data_offsets [begin, end) are relative to the start of the data buffer.
#define _GNU_SOURCE
#include "base/safetensors.h"
#include "base/common.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define RC_ST_MAX_HEADER (100u << 20)       // the format's own limit on the JSON header (100 MB)
#define RC_ST_MAX_INT    9007199254740992.0 // 2^53: larger JSON numbers are not exact doubles

size_t rc_dtype_size(rc_dtype dt) {
    switch (dt) {
    case RC_DT_F32:
        return 4;
    case RC_DT_F16:
        return 2;
    case RC_DT_BF16:
        return 2;
    case RC_DT_I64:
        return 8;
    case RC_DT_I32:
        return 4;
    case RC_DT_U8:
        return 1;
    default:
        return 0;
    }
}

static const char *dtype_name(rc_dtype dt) {
    switch (dt) {
    case RC_DT_F32:
        return "F32";
    case RC_DT_F16:
        return "F16";
    case RC_DT_BF16:
        return "BF16";
    case RC_DT_I64:
        return "I64";
    case RC_DT_I32:
        return "I32";
    case RC_DT_U8:
        return "U8";
    default:
        return NULL;
    }
}

// Maps a dtype string to rc_dtype and its element size in bytes. Known dtypes the engine does
// not compute with become RC_DT_OTHER with their size; an unknown string is RC_DT_OTHER, size 0.
static rc_dtype parse_dtype(const char *s, size_t *size) {
    static const struct {
        const char *name;
        rc_dtype dt;
        size_t size;
    } k[] = {
        {"F32", RC_DT_F32, 4},       {"F16", RC_DT_F16, 2},       {"BF16", RC_DT_BF16, 2},
        {"I64", RC_DT_I64, 8},       {"I32", RC_DT_I32, 4},       {"U8", RC_DT_U8, 1},
        {"F64", RC_DT_OTHER, 8},     {"I8", RC_DT_OTHER, 1},      {"I16", RC_DT_OTHER, 2},
        {"U16", RC_DT_OTHER, 2},     {"U32", RC_DT_OTHER, 4},     {"U64", RC_DT_OTHER, 8},
        {"BOOL", RC_DT_OTHER, 1},    {"F8_E4M3", RC_DT_OTHER, 1}, {"F8_E5M2", RC_DT_OTHER, 1},
        {"F8_E8M0", RC_DT_OTHER, 1},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (!strcmp(s, k[i].name)) {
            *size = k[i].size;
            return k[i].dt;
        }
    *size = 0;
    return RC_DT_OTHER;
}

static void st_free_tensors(rc_safetensors *st) {
    if (st->tensors)
        for (int i = 0; i < st->n_tensors; i++)
            free(st->tensors[i].name);
    free(st->tensors);
    st->tensors = NULL;
    st->n_tensors = 0;
}

// A JSON number that is an exact non-negative integer below 2^53.
static int json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0) || d > RC_ST_MAX_INT || d != floor(d)) return -1;
    *out = (uint64_t)d;
    return 0;
}

typedef struct {
    uint64_t begin, end;
    int idx;
} st_range;

static int cmp_range(const void *a, const void *b) {
    const st_range *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static int cmp_name(const void *a, const void *b) {
    const rc_st_tensor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

static int parse_entry(const cJSON *e, rc_st_tensor *t, const char *p, uint64_t data_len,
                       const uint8_t *data, st_range *r) {
    const char *name = e->string;
    if (!cJSON_IsObject(e)) return rc_fail("%s: tensor \"%s\": entry is not an object", p, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt))
        return rc_fail("%s: tensor \"%s\": \"dtype\" missing or not a string", p, name);
    if (!cJSON_IsArray(sh))
        return rc_fail("%s: tensor \"%s\": \"shape\" missing or not a list", p, name);
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
        return rc_fail("%s: tensor \"%s\": \"data_offsets\" must be a list of two integers", p,
                       name);
    size_t esize = 0;
    t->dtype = parse_dtype(dt->valuestring, &esize);
    snprintf(t->dtype_str, sizeof t->dtype_str, "%s", dt->valuestring);

    int nd = cJSON_GetArraySize(sh);
    if (nd > RC_ST_MAX_DIMS)
        return rc_fail("%s: tensor \"%s\": %d dimensions (at most %d supported)", p, name, nd,
                       RC_ST_MAX_DIMS);
    t->ndim = nd;
    uint64_t numel = 1;
    int overflow = 0;
    for (int i = 0; i < nd; i++) {
        uint64_t dim;
        if (json_uint(cJSON_GetArrayItem(sh, i), &dim))
            return rc_fail("%s: tensor \"%s\": shape[%d] is not a non-negative integer", p, name,
                           i);
        t->shape[i] = (int64_t)dim;
        if (dim != 0 && numel > UINT64_MAX / dim)
            overflow = 1;
        else
            numel *= dim;
    }
    uint64_t b, en;
    if (json_uint(cJSON_GetArrayItem(off, 0), &b) || json_uint(cJSON_GetArrayItem(off, 1), &en))
        return rc_fail("%s: tensor \"%s\": data_offsets must be two non-negative integers", p,
                       name);
    if (b > en)
        return rc_fail("%s: tensor \"%s\": data_offsets [%" PRIu64 ", %" PRIu64
                       "] end before begin",
                       p, name, b, en);
    if (en > data_len)
        return rc_fail("%s: tensor \"%s\": data_offsets [%" PRIu64 ", %" PRIu64
                       "] run past the data buffer (%" PRIu64 " bytes; file truncated?)",
                       p, name, b, en, data_len);
    if (esize) {
        if (overflow || numel > UINT64_MAX / esize || numel * esize != en - b)
            return rc_fail("%s: tensor \"%s\": shape holds %s%" PRIu64 " elements of %s (%zu bytes "
                           "each) but data_offsets span %" PRIu64 " bytes",
                           p, name, overflow ? "more than " : "", overflow ? UINT64_MAX : numel,
                           t->dtype_str, esize, en - b);
    } else if (overflow) {
        return rc_fail("%s: tensor \"%s\": shape element count overflows", p, name);
    }
    t->data = data + b;
    t->nbytes = (size_t)(en - b);
    r->begin = b;
    r->end = en;
    return 0;
}

int rc_st_parse(rc_safetensors *st, const void *buf, size_t len, const char *path_for_errors) {
    const char *p = path_for_errors ? path_for_errors : "<memory>";
    memset(st, 0, sizeof *st); // the caller owns buf; rc_st_open records its mapping afterwards
    snprintf(st->path, sizeof st->path, "%s", p);
    if (len < 8)
        return rc_fail("%s: %zu bytes is too short for a safetensors file (truncated?)", p, len);
    const uint8_t *u = buf;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | u[i];
    if (n > len - 8)
        return rc_fail("%s: header length %" PRIu64 " runs past the end of the file (%zu bytes; "
                       "truncated or not safetensors)",
                       p, n, len);
    if (n > RC_ST_MAX_HEADER)
        return rc_fail("%s: header length %" PRIu64 " exceeds the 100 MB limit", p, n);
    if (n < 2) return rc_fail("%s: header of %" PRIu64 " bytes cannot hold a JSON object", p, n);
    const uint8_t *data = u + 8 + n;
    uint64_t data_len = (uint64_t)len - 8 - n;

    char *text = rc_malloc((size_t)n + 1, "safetensors header");
    if (!text) return -1;
    memcpy(text, u + 8, (size_t)n);
    text[n] = 0;
    if (strlen(text) != (size_t)n) {
        free(text);
        return rc_fail("%s: header holds a NUL byte (not a JSON text)", p);
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 0);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && at >= text && at <= text + n ? (size_t)(at - text) : 0;
        free(text);
        return rc_fail("%s: header is not valid JSON (error near byte %zu of %" PRIu64 ")", p, off,
                       n);
    }
    for (const char *q = end; q && *q; q++)
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r') {
            cJSON_Delete(root);
            free(text);
            return rc_fail("%s: header has trailing bytes after the JSON object", p);
        }
    free(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return rc_fail("%s: header is JSON but not an object", p);
    }

    int count = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        if (!e->string) continue;
        if (!strcmp(e->string, "__metadata__")) {
            if (!cJSON_IsObject(e)) {
                cJSON_Delete(root);
                return rc_fail("%s: __metadata__ is not an object", p);
            }
            continue;
        }
        count++;
    }
    st->tensors = rc_calloc((size_t)(count ? count : 1), sizeof *st->tensors, "safetensors index");
    st_range *ranges = rc_calloc((size_t)(count ? count : 1), sizeof *ranges, "safetensors ranges");
    const rc_st_tensor **sorted = rc_calloc((size_t)(count ? count : 1), sizeof *sorted, "names");
    if (!st->tensors || !ranges || !sorted) goto fail;

    cJSON_ArrayForEach(e, root) {
        if (!e->string || !strcmp(e->string, "__metadata__")) continue;
        rc_st_tensor *t = &st->tensors[st->n_tensors];
        t->name = strdup(e->string);
        if (!t->name) {
            rc_fail("out of memory for tensor names");
            goto fail;
        }
        st->n_tensors++;
        if (parse_entry(e, t, p, data_len, data, &ranges[st->n_tensors - 1])) goto fail;
        ranges[st->n_tensors - 1].idx = st->n_tensors - 1;
        sorted[st->n_tensors - 1] = t;
    }

    qsort(sorted, (size_t)st->n_tensors, sizeof *sorted, cmp_name);
    for (int i = 1; i < st->n_tensors; i++)
        if (!strcmp(sorted[i]->name, sorted[i - 1]->name)) {
            rc_fail("%s: tensor \"%s\" appears twice in the header", p, sorted[i]->name);
            goto fail;
        }
    qsort(ranges, (size_t)st->n_tensors, sizeof *ranges, cmp_range);
    uint64_t prev_end = 0;
    int prev = -1;
    for (int i = 0; i < st->n_tensors; i++) {
        if (ranges[i].begin == ranges[i].end) continue; // empty tensors occupy no bytes
        if (prev >= 0 && ranges[i].begin < prev_end) {
            rc_fail("%s: tensors \"%s\" and \"%s\" overlap in the data buffer", p,
                    st->tensors[ranges[prev].idx].name, st->tensors[ranges[i].idx].name);
            goto fail;
        }
        prev_end = ranges[i].end;
        prev = i;
    }
    free(ranges);
    free(sorted);
    cJSON_Delete(root);
    return 0;
fail:
    free(ranges);
    free(sorted);
    cJSON_Delete(root);
    st_free_tensors(st);
    return -1;
}

int rc_st_open(rc_safetensors *st, const char *path) {
    memset(st, 0, sizeof *st);
    if (snprintf(st->path, sizeof st->path, "%s", path) >= (int)sizeof st->path)
        return rc_fail("path too long: %s", path);
    int fd = open(path, O_RDONLY | O_NONBLOCK); // a FIFO would block the open
    if (fd < 0) return rc_fail("cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return rc_fail("cannot stat %s: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return rc_fail("%s is not a regular file", path);
    }
    size_t len = (size_t)sb.st_size;
    if (len < 8) {
        close(fd);
        return rc_fail("%s: %zu bytes is too short for a safetensors file (truncated?)", path, len);
    }
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) return rc_fail("cannot mmap %s: %s", path, strerror(e));
    if (rc_st_parse(st, map, len, path) != 0) {
        munmap(map, len);
        return -1;
    }
    st->map = map;
    st->map_len = len;
    return 0;
}

void rc_st_close(rc_safetensors *st) {
    if (!st) return;
    st_free_tensors(st);
    if (st->map) munmap(st->map, st->map_len);
    st->map = NULL;
    st->map_len = 0;
}

const rc_st_tensor *rc_st_find(const rc_safetensors *st, const char *name) {
    for (int i = 0; i < st->n_tensors; i++)
        if (!strcmp(st->tensors[i].name, name)) return &st->tensors[i];
    return NULL;
}

int rc_st_to_f32(const rc_st_tensor *t, float *out, size_t n) {
    size_t es = rc_dtype_size(t->dtype);
    if (t->dtype != RC_DT_F32 && t->dtype != RC_DT_F16 && t->dtype != RC_DT_BF16)
        return rc_fail("tensor \"%s\": dtype %s is not supported (F32, F16 or BF16 expected)",
                       t->name, t->dtype_str);
    if (n * es != t->nbytes)
        return rc_fail("tensor \"%s\": %zu elements requested but it holds %zu bytes of %s",
                       t->name, n, t->nbytes, t->dtype_str);
    const uint8_t *src = t->data;
    if (t->dtype == RC_DT_F32) {
        memcpy(out, src, n * 4);
        return 0;
    }
    const long long nn = (long long)n;
    if (t->dtype == RC_DT_F16) {
#pragma omp parallel for schedule(static) if (nn > (1 << 16))
        for (long long i = 0; i < nn; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            out[i] = rc_f16_to_f32(h);
        }
    } else {
#pragma omp parallel for schedule(static) if (nn > (1 << 16))
        for (long long i = 0; i < nn; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            out[i] = rc_bf16_to_f32(h);
        }
    }
    return 0;
}

// ---- writer ------------------------------------------------------------------------------

typedef struct {
    char *s;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *ns = realloc(b->s, cap);
        if (!ns) {
            b->oom = 1;
            return;
        }
        b->s = ns;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

static void sb_str(sbuf *b, const char *s) {
    sb_put(b, s, strlen(s));
}

static void sb_json_string(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        char esc[8];
        if (*c == '"' || *c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*c;
            sb_put(b, esc, 2);
        } else if (*c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *c);
            sb_put(b, esc, 6);
        } else {
            sb_put(b, (const char *)c, 1);
        }
    }
    sb_put(b, "\"", 1);
}

static int write_all(int fd, const void *data, size_t len) {
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int rc_st_write(const char *path, const rc_st_entry *entries, int n,
                const char *const *metadata_kv) {
    if (n < 0) return rc_fail("rc_st_write: negative tensor count");
    sbuf h = {0};
    uint64_t off = 0;
    sb_str(&h, "{");
    int first = 1;
    if (metadata_kv && metadata_kv[0]) {
        sb_str(&h, "\"__metadata__\":{");
        for (int i = 0; metadata_kv[i]; i += 2) {
            if (!metadata_kv[i + 1]) {
                free(h.s);
                return rc_fail("rc_st_write %s: metadata key \"%s\" has no value", path,
                               metadata_kv[i]);
            }
            if (i) sb_str(&h, ",");
            sb_json_string(&h, metadata_kv[i]);
            sb_str(&h, ":");
            sb_json_string(&h, metadata_kv[i + 1]);
        }
        sb_str(&h, "}");
        first = 0;
    }
    uint64_t *sizes = rc_calloc((size_t)(n ? n : 1), sizeof *sizes, "safetensors writer");
    if (!sizes) {
        free(h.s);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const rc_st_entry *e = &entries[i];
        const char *dn = dtype_name(e->dtype);
        if (!dn) {
            free(h.s);
            free(sizes);
            return rc_fail("rc_st_write %s: tensor \"%s\" has an unsupported dtype", path, e->name);
        }
        if (e->ndim < 0 || e->ndim > RC_ST_MAX_DIMS) {
            free(h.s);
            free(sizes);
            return rc_fail("rc_st_write %s: tensor \"%s\" has %d dims", path, e->name, e->ndim);
        }
        uint64_t numel = 1;
        char num[64];
        if (!first) sb_str(&h, ",");
        first = 0;
        sb_json_string(&h, e->name);
        sb_str(&h, ":{\"dtype\":\"");
        sb_str(&h, dn);
        sb_str(&h, "\",\"shape\":[");
        for (int d = 0; d < e->ndim; d++) {
            if (e->shape[d] < 0 ||
                (e->shape[d] && numel > UINT64_MAX / 16 / (uint64_t)e->shape[d])) {
                free(h.s);
                free(sizes);
                return rc_fail("rc_st_write %s: tensor \"%s\" has a bad shape", path, e->name);
            }
            numel *= (uint64_t)e->shape[d];
            snprintf(num, sizeof num, "%s%" PRId64, d ? "," : "", e->shape[d]);
            sb_str(&h, num);
        }
        sizes[i] = numel * rc_dtype_size(e->dtype);
        snprintf(num, sizeof num, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", off,
                 off + sizes[i]);
        sb_str(&h, num);
        off += sizes[i];
    }
    sb_str(&h, "}");
    while (!h.oom && (h.len % 8) != 0)
        sb_str(&h, " ");
    if (h.oom) {
        free(h.s);
        free(sizes);
        return rc_fail("rc_st_write %s: out of memory building the header", path);
    }

    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp) {
        free(h.s);
        free(sizes);
        return rc_fail("path too long: %s", path);
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        free(h.s);
        free(sizes);
        return rc_fail("cannot create %s: %s", tmp, strerror(errno));
    }
    uint8_t len8[8];
    uint64_t hl = h.len;
    for (int i = 0; i < 8; i++)
        len8[i] = (uint8_t)(hl >> (8 * i));
    int bad = write_all(fd, len8, 8) || write_all(fd, h.s, h.len);
    for (int i = 0; i < n && !bad; i++)
        if (sizes[i]) bad = write_all(fd, entries[i].data, (size_t)sizes[i]);
    int e = errno;
    free(h.s);
    free(sizes);
    if (bad || fsync(fd) != 0) {
        if (!bad) e = errno;
        close(fd);
        unlink(tmp);
        return rc_fail("cannot write %s: %s", tmp, strerror(e));
    }
    if (close(fd) != 0) {
        e = errno;
        unlink(tmp);
        return rc_fail("cannot close %s: %s", tmp, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        e = errno;
        unlink(tmp);
        return rc_fail("cannot rename %s to %s: %s", tmp, path, strerror(e));
    }
    return 0;
}

char *rc_st_read_metadata(const char *path, const char *key) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        rc_fail("cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    unsigned char lenb[8];
    char *hdr = NULL, *out = NULL;
    cJSON *j = NULL;
    if (fread(lenb, 1, 8, f) != 8) {
        rc_fail("%s: too short for a safetensors file", path);
        goto done;
    }
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | lenb[i];
    if (n == 0 || n > (100u << 20)) {
        rc_fail("%s: bad safetensors header length %llu", path, (unsigned long long)n);
        goto done;
    }
    hdr = rc_malloc(n + 1, "safetensors header");
    if (!hdr) goto done;
    if (fread(hdr, 1, n, f) != n) {
        rc_fail("%s: truncated safetensors header", path);
        goto done;
    }
    hdr[n] = 0;
    j = cJSON_Parse(hdr);
    const cJSON *md = j ? cJSON_GetObjectItemCaseSensitive(j, "__metadata__") : NULL;
    const cJSON *v = md ? cJSON_GetObjectItemCaseSensitive(md, key) : NULL;
    if (!cJSON_IsString(v)) {
        rc_fail("%s: no \"%s\" in the header's __metadata__", path, key);
        goto done;
    }
    size_t l = strlen(v->valuestring);
    out = rc_malloc(l + 1, "metadata value");
    if (out) memcpy(out, v->valuestring, l + 1);
done:
    cJSON_Delete(j);
    free(hdr);
    fclose(f);
    return out;
}
