// GGUF v2/v3 reader. Layout: magic "GGUF", u32 version, u64 tensor count, u64 kv count, the
// key/values (u64-length strings, u32 type tags, values; arrays are u32 element type + u64 count
// + elements), the tensor infos (name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset),
// then the data section at the next multiple of general.alignment (default 32).
// Every count, length and offset is checked against the bytes that remain before it is used.
#define _GNU_SOURCE
#include "base/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/common.h"
#include "base/ggml_types.h"

#define GGUF_MAX_DIMS 4
#define GGUF_MAX_ARRAY_DEPTH 8

typedef struct {
    const uint8_t *p;
    size_t len, pos;
    const char *path;
} cursor;

static int need(cursor *c, uint64_t n, const char *what) {
    if (n > c->len - c->pos)
        return rc_fail("%s: truncated GGUF file: %s needs %llu bytes at offset %zu but only %zu "
                       "remain (file size %zu)",
                       c->path, what, (unsigned long long)n, c->pos, c->len - c->pos, c->len);
    return 0;
}

static int rd_u32(cursor *c, uint32_t *v, const char *what) {
    if (need(c, 4, what)) return -1;
    memcpy(v, c->p + c->pos, 4);
    c->pos += 4;
    return 0;
}

static int rd_u64(cursor *c, uint64_t *v, const char *what) {
    if (need(c, 8, what)) return -1;
    memcpy(v, c->p + c->pos, 8);
    c->pos += 8;
    return 0;
}

static int rd_str(cursor *c, rc_gguf_str *s, const char *what) {
    uint64_t n;
    if (rd_u64(c, &n, what)) return -1;
    if (need(c, n, what)) return -1;
    s->ptr = (const char *)(c->p + c->pos);
    s->len = n;
    c->pos += n;
    return 0;
}

static const char *type_name(uint32_t t) {
    static const char *names[] = {"uint8", "int8",  "uint16", "int16",  "uint32", "int32", "float32",
                                  "bool",  "string", "array", "uint64", "int64",  "float64"};
    return t <= 12 ? names[t] : "invalid";
}

// Fixed size of a scalar type; 0 for string/array; -1 for invalid tags.
static int scalar_size(uint32_t t) {
    switch (t) {
    case RC_GGUF_UINT8: case RC_GGUF_INT8: case RC_GGUF_BOOL: return 1;
    case RC_GGUF_UINT16: case RC_GGUF_INT16: return 2;
    case RC_GGUF_UINT32: case RC_GGUF_INT32: case RC_GGUF_FLOAT32: return 4;
    case RC_GGUF_UINT64: case RC_GGUF_INT64: case RC_GGUF_FLOAT64: return 8;
    case RC_GGUF_STRING: case RC_GGUF_ARRAY: return 0;
    default: return -1;
    }
}

static void read_scalar(const uint8_t *p, uint32_t t, rc_gguf_kv *kv) {
    switch (t) {
    case RC_GGUF_UINT8: kv->v.u64 = p[0]; break;
    case RC_GGUF_INT8: kv->v.i64 = (int8_t)p[0]; break;
    case RC_GGUF_BOOL: kv->v.b = p[0] != 0; break;
    case RC_GGUF_UINT16: { uint16_t x; memcpy(&x, p, 2); kv->v.u64 = x; break; }
    case RC_GGUF_INT16: { int16_t x; memcpy(&x, p, 2); kv->v.i64 = x; break; }
    case RC_GGUF_UINT32: { uint32_t x; memcpy(&x, p, 4); kv->v.u64 = x; break; }
    case RC_GGUF_INT32: { int32_t x; memcpy(&x, p, 4); kv->v.i64 = x; break; }
    case RC_GGUF_FLOAT32: { float x; memcpy(&x, p, 4); kv->v.f64 = x; break; }
    case RC_GGUF_UINT64: { uint64_t x; memcpy(&x, p, 8); kv->v.u64 = x; break; }
    case RC_GGUF_INT64: { int64_t x; memcpy(&x, p, 8); kv->v.i64 = x; break; }
    case RC_GGUF_FLOAT64: { double x; memcpy(&x, p, 8); kv->v.f64 = x; break; }
    default: break;
    }
}

// Skips over one array body (element type already read) without storing it (nested arrays).
static int skip_array(cursor *c, int depth, const char *key) {
    uint32_t et;
    uint64_t n;
    if (depth > GGUF_MAX_ARRAY_DEPTH)
        return rc_fail("%s: key '%s': arrays nested deeper than %d", c->path, key,
                       GGUF_MAX_ARRAY_DEPTH);
    if (rd_u32(c, &et, "array element type") || rd_u64(c, &n, "array length")) return -1;
    int sz = scalar_size(et);
    if (sz < 0)
        return rc_fail("%s: key '%s': invalid array element type %u", c->path, key, et);
    if (sz > 0) {
        if (n > (c->len - c->pos) / (uint64_t)sz)
            return rc_fail("%s: truncated GGUF file: nested array in '%s' does not fit", c->path, key);
        c->pos += (size_t)n * (size_t)sz;
        return 0;
    }
    for (uint64_t i = 0; i < n; i++) {
        if (et == RC_GGUF_STRING) {
            rc_gguf_str s;
            if (rd_str(c, &s, "array string")) return -1;
        } else if (skip_array(c, depth + 1, key)) {
            return -1;
        }
    }
    return 0;
}

static int parse_kv(cursor *c, rc_gguf_kv *kv) {
    rc_gguf_str key;
    uint32_t t;
    if (rd_str(c, &key, "metadata key")) return -1;
    if (key.len > 65535)
        return rc_fail("%s: metadata key of %llu bytes at offset %zu (corrupt file?)", c->path,
                       (unsigned long long)key.len, c->pos);
    kv->key = rc_malloc(key.len + 1, "gguf key");
    if (!kv->key) return -1;
    memcpy(kv->key, key.ptr, key.len);
    kv->key[key.len] = 0;
    if (rd_u32(c, &t, "metadata value type")) return rc_fail_ctx("key '%s'", kv->key);
    int sz = scalar_size(t);
    if (sz < 0)
        return rc_fail("%s: key '%s' has invalid value type %u", c->path, kv->key, t);
    kv->type = (rc_gguf_type)t;
    if (sz > 0) {
        if (need(c, (uint64_t)sz, kv->key)) return -1;
        read_scalar(c->p + c->pos, t, kv);
        c->pos += (size_t)sz;
        return 0;
    }
    if (t == RC_GGUF_STRING) return rd_str(c, &kv->str, kv->key);
    // array
    uint32_t et;
    uint64_t n;
    if (rd_u32(c, &et, "array element type") || rd_u64(c, &n, "array length"))
        return rc_fail_ctx("key '%s'", kv->key);
    int esz = scalar_size(et);
    if (esz < 0)
        return rc_fail("%s: key '%s': invalid array element type %u", c->path, kv->key, et);
    kv->arr_type = (rc_gguf_type)et;
    kv->arr_n = n;
    kv->arr_data = c->p + c->pos;
    if (esz > 0) {
        if (n > (c->len - c->pos) / (uint64_t)esz)
            return rc_fail("%s: truncated GGUF file: array '%s' of %llu %s values does not fit in "
                           "the %zu bytes that remain",
                           c->path, kv->key, (unsigned long long)n, type_name(et), c->len - c->pos);
        c->pos += (size_t)n * (size_t)esz;
        return 0;
    }
    if (et == RC_GGUF_STRING) {
        // each string takes at least its 8-byte length: bound n before allocating
        if (n > (c->len - c->pos) / 8)
            return rc_fail("%s: truncated GGUF file: string array '%s' claims %llu entries but only "
                           "%zu bytes remain",
                           c->path, kv->key, (unsigned long long)n, c->len - c->pos);
        rc_gguf_str *s = rc_malloc((size_t)n * sizeof *s, "gguf string array");
        if (!s) return -1;
        kv->arr_strs = s;
        for (uint64_t i = 0; i < n; i++)
            if (rd_str(c, &s[i], kv->key)) return -1;
        return 0;
    }
    for (uint64_t i = 0; i < n; i++)
        if (skip_array(c, 1, kv->key)) return -1;
    return 0;
}

static int cmp_tensor_names(const void *a, const void *b) {
    const rc_gguf_tensor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

static int cmp_keys(const void *a, const void *b) {
    const rc_gguf_kv *const *x = a, *const *y = b;
    return strcmp((*x)->key, (*y)->key);
}

static int parse(rc_gguf *g, cursor *c) {
    uint32_t magic;
    if (c->len < 4 || memcmp(c->p, "GGUF", 4) != 0)
        return rc_fail("%s: not a GGUF file (the first 4 bytes are not \"GGUF\")", c->path);
    if (rd_u32(c, &magic, "magic") || rd_u32(c, &g->version, "version")) return -1;
    if (g->version == 1)
        return rc_fail("%s: GGUF version 1 is not supported (only 2 and 3); re-convert the model "
                       "with a current llama.cpp",
                       c->path);
    if (g->version != 2 && g->version != 3)
        return rc_fail("%s: unsupported GGUF version %u (supported: 2, 3)%s", c->path, g->version,
                       (g->version & 0xFFFF) == 0 ? "; big-endian files are not supported" : "");
    uint64_t nt, nkv;
    if (rd_u64(c, &nt, "tensor count") || rd_u64(c, &nkv, "metadata count")) return -1;
    // a key/value takes >= 12 bytes, a tensor info >= 24: bound both before allocating
    if (nkv > (c->len - c->pos) / 12)
        return rc_fail("%s: truncated or corrupt GGUF file: the header claims %llu metadata "
                       "entries, more than the remaining %zu bytes can hold",
                       c->path, (unsigned long long)nkv, c->len - c->pos);
    g->kv = rc_calloc(nkv ? nkv : 1, sizeof *g->kv, "gguf metadata");
    if (!g->kv) return -1;
    for (uint64_t i = 0; i < nkv; i++) {
        g->n_kv = (int64_t)i + 1;
        if (parse_kv(c, &g->kv[i])) return rc_fail_ctx("metadata entry %llu", (unsigned long long)i);
    }
    g->n_kv = (int64_t)nkv;
    if (nkv > 1) {
        const rc_gguf_kv **idx = rc_malloc(nkv * sizeof *idx, "gguf key index");
        if (!idx) return -1;
        for (uint64_t i = 0; i < nkv; i++) idx[i] = &g->kv[i];
        qsort(idx, nkv, sizeof *idx, cmp_keys);
        for (uint64_t i = 1; i < nkv; i++)
            if (strcmp(idx[i - 1]->key, idx[i]->key) == 0) {
                rc_fail("%s: duplicate metadata key '%s'", c->path, idx[i]->key);
                free(idx);
                return -1;
            }
        free(idx);
    }

    g->alignment = 32;
    const rc_gguf_kv *al = rc_gguf_find(g, "general.alignment");
    if (al) {
        if (al->type != RC_GGUF_UINT32)
            return rc_fail("%s: general.alignment must be uint32, found %s", c->path,
                           type_name(al->type));
        if (al->v.u64 == 0 || (al->v.u64 & (al->v.u64 - 1)) != 0)
            return rc_fail("%s: general.alignment %llu is not a power of two", c->path,
                           (unsigned long long)al->v.u64);
        g->alignment = (uint32_t)al->v.u64;
    }

    if (nt > (c->len - c->pos) / 24)
        return rc_fail("%s: truncated or corrupt GGUF file: the header claims %llu tensors, more "
                       "than the remaining %zu bytes can hold",
                       c->path, (unsigned long long)nt, c->len - c->pos);
    g->tensors = rc_calloc(nt ? nt : 1, sizeof *g->tensors, "gguf tensor infos");
    if (!g->tensors) return -1;
    for (uint64_t i = 0; i < nt; i++) {
        rc_gguf_tensor *t = &g->tensors[i];
        g->n_tensors = (int64_t)i + 1;
        rc_gguf_str name;
        if (rd_str(c, &name, "tensor name"))
            return rc_fail_ctx("tensor info %llu", (unsigned long long)i);
        if (name.len > 4096)
            return rc_fail("%s: tensor %llu has a %llu-byte name (corrupt file?)", c->path,
                           (unsigned long long)i, (unsigned long long)name.len);
        t->name = rc_malloc(name.len + 1, "gguf tensor name");
        if (!t->name) return -1;
        memcpy(t->name, name.ptr, name.len);
        t->name[name.len] = 0;
        if (rd_u32(c, &t->n_dims, "tensor n_dims")) return rc_fail_ctx("tensor '%s'", t->name);
        if (t->n_dims == 0 || t->n_dims > GGUF_MAX_DIMS)
            return rc_fail("%s: tensor '%s' has %u dimensions (expected 1..%d)", c->path, t->name,
                           t->n_dims, GGUF_MAX_DIMS);
        for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        uint64_t nel = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            if (rd_u64(c, &t->ne[d], "tensor shape")) return rc_fail_ctx("tensor '%s'", t->name);
            if (t->ne[d] == 0 || t->ne[d] > ((uint64_t)1 << 40) || nel > (UINT64_MAX >> 1) / t->ne[d])
                return rc_fail("%s: tensor '%s' has an invalid dimension ne[%u] = %llu", c->path,
                               t->name, d, (unsigned long long)t->ne[d]);
            nel *= t->ne[d];
        }
        if (rd_u32(c, &t->ggml_type, "tensor type") || rd_u64(c, &t->offset, "tensor offset"))
            return rc_fail_ctx("tensor '%s'", t->name);
        int be, bb;
        if (rc_ggml_type_geometry(t->ggml_type, &be, &bb))
            return rc_fail("%s: tensor '%s' has unknown ggml type id %u", c->path, t->name,
                           t->ggml_type);
        if (t->ne[0] % (uint64_t)be != 0)
            return rc_fail("%s: tensor '%s' of type %s has row length %llu, not a multiple of its "
                           "block size %d",
                           c->path, t->name, rc_ggml_type_name(t->ggml_type),
                           (unsigned long long)t->ne[0], be);
        // compare block counts first: nel / be * bb can overflow for absurd shapes
        uint64_t nblocks = nel / (uint64_t)be;
        uint64_t nbytes = nblocks <= (uint64_t)c->len / (uint64_t)bb ? nblocks * (uint64_t)bb
                                                                    : UINT64_MAX;
        if (nbytes > c->len)
            return rc_fail("%s: truncated or corrupt GGUF file: tensor '%s' (%s, %llu elements) "
                           "needs %.0f bytes, more than the file size %zu",
                           c->path, t->name, rc_ggml_type_name(t->ggml_type),
                           (unsigned long long)nel, (double)nblocks * (double)bb, c->len);
        t->nbytes = (size_t)nbytes;
        if (t->offset % g->alignment != 0)
            return rc_fail("%s: tensor '%s' offset %llu is not a multiple of the alignment %u",
                           c->path, t->name, (unsigned long long)t->offset, g->alignment);
    }
    g->n_tensors = (int64_t)nt;

    size_t data_start = c->pos;
    size_t rem = data_start % g->alignment;
    if (rem) data_start += g->alignment - rem;
    if (nt > 0 && data_start > c->len)
        return rc_fail("%s: truncated GGUF file: the data section would start at %zu, past the end "
                       "(%zu bytes)",
                       c->path, data_start, c->len);
    // As llama.cpp requires: tensors lie back to back in the order of their infos, each at the
    // running size of the previous ones padded to the alignment, so no two ranges overlap.
    uint64_t expect = 0;
    for (uint64_t i = 0; i < nt; i++) {
        rc_gguf_tensor *t = &g->tensors[i];
        size_t avail = c->len - data_start;
        if (t->offset != expect)
            return rc_fail("%s: tensor '%s' (info %llu) has data offset %llu, expected %llu (the "
                           "padded end of the tensors before it): overlapping, aliased or "
                           "out-of-order data ranges",
                           c->path, t->name, (unsigned long long)i, (unsigned long long)t->offset,
                           (unsigned long long)expect);
        if (t->offset > avail || t->nbytes > avail - t->offset)
            return rc_fail("%s: truncated GGUF file: tensor '%s' occupies bytes %llu..%llu of the "
                           "data section but it holds only %zu bytes",
                           c->path, t->name, (unsigned long long)t->offset,
                           (unsigned long long)(t->offset + t->nbytes), avail);
        t->data = c->p + data_start + t->offset;
        expect += ((uint64_t)t->nbytes + g->alignment - 1) / g->alignment * g->alignment;
    }
    if (nt > 1) {
        const rc_gguf_tensor **idx = rc_malloc(nt * sizeof *idx, "gguf tensor index");
        if (!idx) return -1;
        for (uint64_t i = 0; i < nt; i++) idx[i] = &g->tensors[i];
        qsort(idx, nt, sizeof *idx, cmp_tensor_names);
        for (uint64_t i = 1; i < nt; i++)
            if (strcmp(idx[i - 1]->name, idx[i]->name) == 0) {
                rc_fail("%s: duplicate tensor name '%s'", c->path, idx[i]->name);
                free(idx);
                return -1;
            }
        free(idx);
    }
    return 0;
}

static void free_parsed(rc_gguf *g) {
    if (g->kv)
        for (int64_t i = 0; i < g->n_kv; i++) {
            free(g->kv[i].key);
            free((void *)g->kv[i].arr_strs);
        }
    free(g->kv);
    if (g->tensors)
        for (int64_t i = 0; i < g->n_tensors; i++) free(g->tensors[i].name);
    free(g->tensors);
    g->kv = NULL;
    g->tensors = NULL;
    g->n_kv = g->n_tensors = 0;
}

int rc_gguf_parse(rc_gguf *g, const void *buf, size_t len, const char *path_for_errors) {
    memset(g, 0, sizeof *g);
    const char *path = path_for_errors ? path_for_errors : "<buffer>";
    snprintf(g->path, sizeof g->path, "%s", path);
    cursor c = {.p = buf, .len = len, .pos = 0, .path = g->path};
    if (parse(g, &c) != 0) {
        free_parsed(g);
        return -1;
    }
    return 0;
}

int rc_gguf_open(rc_gguf *g, const char *path) {
    memset(g, 0, sizeof *g);
    int fd = open(path, O_RDONLY | O_NONBLOCK); // a FIFO would block the open
    if (fd < 0) return rc_fail("cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return rc_fail("cannot stat %s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return rc_fail("%s is not a regular file", path);
    }
    size_t len = (size_t)st.st_size;
    if (len == 0) {
        close(fd);
        return rc_fail("%s: empty file, not a GGUF model", path);
    }
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) return rc_fail("cannot mmap %s: %s", path, strerror(e));
    if (rc_gguf_parse(g, map, len, path) != 0) {
        munmap(map, len);
        return -1;
    }
    g->map = map;
    g->map_len = len;
    return 0;
}

void rc_gguf_close(rc_gguf *g) {
    if (!g) return;
    free_parsed(g);
    if (g->map) munmap(g->map, g->map_len);
    g->map = NULL;
    g->map_len = 0;
}

const rc_gguf_kv *rc_gguf_find(const rc_gguf *g, const char *key) {
    for (int64_t i = 0; i < g->n_kv; i++)
        if (strcmp(g->kv[i].key, key) == 0) return &g->kv[i];
    return NULL;
}

const rc_gguf_tensor *rc_gguf_find_tensor(const rc_gguf *g, const char *name) {
    for (int64_t i = 0; i < g->n_tensors; i++)
        if (strcmp(g->tensors[i].name, name) == 0) return &g->tensors[i];
    return NULL;
}

int rc_gguf_get_u64(const rc_gguf *g, const char *key, uint64_t *out) {
    const rc_gguf_kv *kv = rc_gguf_find(g, key);
    if (!kv) return -1;
    switch (kv->type) {
    case RC_GGUF_UINT8: case RC_GGUF_UINT16: case RC_GGUF_UINT32: case RC_GGUF_UINT64:
        *out = kv->v.u64;
        return 0;
    case RC_GGUF_INT8: case RC_GGUF_INT16: case RC_GGUF_INT32: case RC_GGUF_INT64:
        if (kv->v.i64 < 0)
            return rc_fail("%s: metadata '%s' is negative (%lld), expected a count", g->path, key,
                           (long long)kv->v.i64);
        *out = (uint64_t)kv->v.i64;
        return 0;
    case RC_GGUF_BOOL: *out = (uint64_t)kv->v.b; return 0;
    default:
        return rc_fail("%s: metadata '%s' is a %s, expected an integer", g->path, key,
                       type_name(kv->type));
    }
}

int rc_gguf_get_f32(const rc_gguf *g, const char *key, float *out) {
    const rc_gguf_kv *kv = rc_gguf_find(g, key);
    if (!kv) return -1;
    switch (kv->type) {
    case RC_GGUF_FLOAT32: case RC_GGUF_FLOAT64: *out = (float)kv->v.f64; return 0;
    case RC_GGUF_UINT8: case RC_GGUF_UINT16: case RC_GGUF_UINT32: case RC_GGUF_UINT64:
        *out = (float)kv->v.u64;
        return 0;
    case RC_GGUF_INT8: case RC_GGUF_INT16: case RC_GGUF_INT32: case RC_GGUF_INT64:
        *out = (float)kv->v.i64;
        return 0;
    default:
        return rc_fail("%s: metadata '%s' is a %s, expected a number", g->path, key,
                       type_name(kv->type));
    }
}

char *rc_gguf_get_str(const rc_gguf *g, const char *key) {
    const rc_gguf_kv *kv = rc_gguf_find(g, key);
    if (!kv || kv->type != RC_GGUF_STRING) return NULL;
    char *s = rc_malloc(kv->str.len + 1, key);
    if (!s) return NULL;
    memcpy(s, kv->str.ptr, kv->str.len);
    s[kv->str.len] = 0;
    return s;
}
