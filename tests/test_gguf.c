// GGUF reader, dequantization and GGUF model loading against fixtures made by
// tests/scripts/make_gguf_fixtures.py with the gguf package and HF transformers:
//  - per-type dequantization of random blocks vs gguf.quants.dequantize;
//  - tiny GGUF LLaMAs (mixed quant types, llama.cpp Q/K permutation) -> logits vs transformers
//    (gguf_file=...) within 1e-3 relative error, greedy continuation identical;
//  - the real default model when it is in the cache (skipped otherwise);
//  - bad, truncated and unsupported files -> clear errors, never a crash.
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/common.h"
#include "base/default_model.h"
#include "engine/forward.h"
#include "base/gguf.h"
#include "engine/model.h"
#include "kernels/cpu/dequant.h"

#define FX RC_FIXTURES "/gguf/"

static cJSON *load_json(const char *name) {
    char path[1024];
    snprintf(path, sizeof path, FX "%s", name);
    char *txt = rc_read_file(path, NULL);
    cr_assert(txt, "%s", rc_last_error());
    cJSON *j = cJSON_Parse(txt);
    free(txt);
    cr_assert(j, "bad json %s", path);
    return j;
}

static void *load_bin(const char *name, size_t *len) {
    char path[1024];
    snprintf(path, sizeof path, FX "%s", name);
    void *p = rc_read_file(path, len);
    cr_assert(p, "%s", rc_last_error());
    return p;
}

// ---- dequantization vs gguf.quants.dequantize -------------------------------------------------

Test(gguf_dequant, every_type_matches_gguf_package) {
    cJSON *j = load_json("dequant.json");
    cJSON *types = cJSON_GetObjectItem(j, "types"), *t;
    int n_checked = 0;
    cJSON_ArrayForEach(t, types) {
        const char *name = cJSON_GetObjectItem(t, "type")->valuestring;
        uint32_t id = (uint32_t)cJSON_GetObjectItem(t, "id")->valueint;
        int64_t nel = (int64_t)cJSON_GetObjectItem(t, "elements")->valuedouble;
        char fn[128];
        size_t nraw, nref;
        snprintf(fn, sizeof fn, "dequant_%s.bin", name);
        uint8_t *raw = load_bin(fn, &nraw);
        snprintf(fn, sizeof fn, "dequant_%s.f32", name);
        float *ref = load_bin(fn, &nref);
        cr_assert_eq(nref, (size_t)nel * 4);
        cr_assert(rc_ggml_can_dequant(id), "%s should be supported", name);
        cr_assert_str_eq(rc_ggml_type_name(id), name);
        int be, bb;
        cr_assert(rc_ggml_type_geometry(id, &be, &bb) == 0);
        cr_assert_eq((size_t)(nel / be * bb), nraw, "%s: geometry disagrees with the fixture", name);
        float *out = malloc((size_t)nel * 4);
        cr_assert(rc_dequant_row(id, raw, out, nel) == 0, "%s: %s", name, rc_last_error());
        for (int64_t i = 0; i < nel; i++) {
            float tol = 1e-6f * fabsf(ref[i]) + 1e-7f;
            cr_assert(fabsf(out[i] - ref[i]) <= tol, "%s element %lld: got %.9g, gguf says %.9g",
                      name, (long long)i, out[i], ref[i]);
        }
        free(out);
        free(raw);
        free(ref);
        n_checked++;
    }
    cr_assert_eq(n_checked, 13, "expected 13 types in dequant.json, found %d", n_checked);
    cJSON_Delete(j);
}

Test(gguf_dequant, unsupported_and_bad_lengths) {
    float out[256];
    uint8_t raw[512] = {0};
    cr_assert(rc_dequant_row(16 /* IQ2_XXS */, raw, out, 256) == -1);
    cr_assert(strstr(rc_last_error(), "IQ2_XXS") && strstr(rc_last_error(), "not supported"), "%s",
              rc_last_error());
    cr_assert(rc_dequant_row(99, raw, out, 32) == -1);
    cr_assert(strstr(rc_last_error(), "unknown ggml tensor type id 99"), "%s", rc_last_error());
    cr_assert(rc_dequant_row(RC_GGML_Q4_0, raw, out, 33) == -1);
    cr_assert(strstr(rc_last_error(), "multiple of the block size 32"), "%s", rc_last_error());
}

// ---- reader on the tiny fixtures -------------------------------------------------------------

Test(gguf_reader, tiny_mixed_metadata_and_tensors) {
    rc_gguf g;
    cr_assert(rc_gguf_open(&g, FX "tiny_mixed.gguf") == 0, "%s", rc_last_error());
    cr_assert_eq(g.version, 3u);
    cr_assert_eq(g.alignment, 32u);
    cr_assert_eq(g.n_tensors, 21);
    char *arch = rc_gguf_get_str(&g, "general.architecture");
    cr_assert_str_eq(arch, "llama");
    free(arch);
    uint64_t v;
    cr_assert(rc_gguf_get_u64(&g, "llama.embedding_length", &v) == 0 && v == 256);
    cr_assert(rc_gguf_get_u64(&g, "llama.attention.head_count_kv", &v) == 0 && v == 1);
    float f;
    cr_assert(rc_gguf_get_f32(&g, "llama.rope.freq_base", &f) == 0 && f == 1e4f);
    cr_assert(rc_gguf_get_u64(&g, "no.such.key", &v) == -1);
    cr_assert(rc_gguf_get_u64(&g, "general.architecture", &v) == -1);
    cr_assert(strstr(rc_last_error(), "expected an integer"), "%s", rc_last_error());
    const rc_gguf_kv *toks = rc_gguf_find(&g, "tokenizer.ggml.tokens");
    cr_assert(toks && toks->type == RC_GGUF_ARRAY && toks->arr_type == RC_GGUF_STRING);
    cr_assert_eq(toks->arr_n, 256u);
    cr_assert(toks->arr_strs[17].len == 5 && !memcmp(toks->arr_strs[17].ptr, "<t17>", 5));
    // tensor types as the fixture script chose them
    cJSON *j = load_json("tiny_mixed.json");
    cJSON *types = cJSON_GetObjectItem(j, "types"), *t;
    int n = 0;
    cJSON_ArrayForEach(t, types) {
        const rc_gguf_tensor *tt = rc_gguf_find_tensor(&g, t->string);
        cr_assert(tt, "tensor %s missing", t->string);
        cr_assert_str_eq(rc_ggml_type_name(tt->ggml_type), t->valuestring, "%s", t->string);
        n++;
    }
    cr_assert(n >= 16);
    const rc_gguf_tensor *q = rc_gguf_find_tensor(&g, "blk.0.attn_q.weight");
    cr_assert(q->n_dims == 2 && q->ne[0] == 256 && q->ne[1] == 256 && q->nbytes == 256 * 8 * 18);
    cr_assert((uintptr_t)q->data % 32 == 0 || ((const uint8_t *)q->data - (const uint8_t *)g.map) % 32 == 0);
    cJSON_Delete(j);
    rc_gguf_close(&g);
}

// Every prefix of a valid file fails cleanly with "truncated" / "not a GGUF file".
Test(gguf_reader, truncated_prefixes) {
    size_t len;
    uint8_t *buf = load_bin("tiny_tied.gguf", &len);
    rc_gguf g;
    cr_assert(rc_gguf_parse(&g, buf, len, "tiny_tied.gguf") == 0, "%s", rc_last_error());
    size_t first_data = (size_t)((const uint8_t *)g.tensors[0].data - buf);
    rc_gguf_close(&g);
    for (size_t n = 0; n < len; n += (n < first_data + 64 ? 1 : 509)) {
        uint8_t *cut = malloc(n ? n : 1); // exact-size copy so ASan sees any overread
        memcpy(cut, buf, n);
        int rc = rc_gguf_parse(&g, cut, n, "cut.gguf");
        cr_assert_eq(rc, -1, "a %zu-byte prefix of a %zu-byte file parsed", n, len);
        const char *e = rc_last_error();
        cr_assert(strstr(e, "truncated") || strstr(e, "not a GGUF file"), "prefix %zu: %s", n, e);
        cr_assert(strstr(e, "cut.gguf"), "the file name belongs in the message: %s", e);
        free(cut);
    }
    free(buf);
}

// ---- a minimal GGUF writer for hand-made broken files ----------------------------------------

typedef struct {
    uint8_t *p;
    size_t n, cap;
} wbuf;

static void put(wbuf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void put_u32(wbuf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(wbuf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(wbuf *b, const char *s) {
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void header(wbuf *b, uint32_t version, uint64_t nt, uint64_t nkv) {
    put(b, "GGUF", 4);
    put_u32(b, version);
    put_u64(b, nt);
    put_u64(b, nkv);
}
static void kv_u32(wbuf *b, const char *k, uint32_t v) {
    put_str(b, k);
    put_u32(b, RC_GGUF_UINT32);
    put_u32(b, v);
}
static void tinfo(wbuf *b, const char *name, uint32_t nd, const uint64_t *ne, uint32_t type,
                  uint64_t off) {
    put_str(b, name);
    put_u32(b, nd);
    for (uint32_t i = 0; i < nd; i++) put_u64(b, ne[i]);
    put_u32(b, type);
    put_u64(b, off);
}
static void pad_to(wbuf *b, size_t align) {
    while (b->n % align) put(b, "", 1);
}

static void expect_fail(wbuf *b, const char *needle) {
    rc_gguf g;
    // copy into an exact-size buffer so that any overread is an ASan error
    uint8_t *p = malloc(b->n ? b->n : 1);
    memcpy(p, b->p, b->n);
    int rc = rc_gguf_parse(&g, p, b->n, "hand.gguf");
    cr_assert_eq(rc, -1, "expected failure containing '%s'", needle);
    cr_assert(strstr(rc_last_error(), needle), "expected '%s' in: %s", needle, rc_last_error());
    free(p);
    free(b->p);
    memset(b, 0, sizeof *b);
}

Test(gguf_reader, hand_made_bad_files) {
    wbuf b = {0};
    put(&b, "GGML", 4); put_u32(&b, 3); put_u64(&b, 0); put_u64(&b, 0);
    expect_fail(&b, "not a GGUF file");
    header(&b, 1, 0, 0);
    expect_fail(&b, "version 1 is not supported");
    header(&b, 7, 0, 0);
    expect_fail(&b, "unsupported GGUF version 7");
    header(&b, 0x03000000, 0, 0);
    expect_fail(&b, "big-endian");
    header(&b, 3, 0, 1ull << 60);
    expect_fail(&b, "claims 1152921504606846976 metadata entries");
    header(&b, 3, 1ull << 60, 0);
    expect_fail(&b, "claims 1152921504606846976 tensors");
    header(&b, 3, 0, 1); put_u64(&b, 1ull << 62); put(&b, "abc", 3);
    expect_fail(&b, "truncated");
    header(&b, 3, 0, 1); put_str(&b, "k"); put_u32(&b, 13); put_u32(&b, 0);
    expect_fail(&b, "invalid value type 13");
    header(&b, 3, 0, 1); put_str(&b, "arr"); put_u32(&b, RC_GGUF_ARRAY); put_u32(&b, RC_GGUF_UINT32);
    put_u64(&b, 1ull << 61); put_u32(&b, 0);
    expect_fail(&b, "does not fit");
    header(&b, 3, 0, 1); put_str(&b, "arr"); put_u32(&b, RC_GGUF_ARRAY); put_u32(&b, RC_GGUF_STRING);
    put_u64(&b, 1ull << 40); put_str(&b, "x");
    expect_fail(&b, "claims");
    header(&b, 3, 0, 1); put_str(&b, "arr"); put_u32(&b, RC_GGUF_ARRAY); put_u32(&b, 77);
    put_u64(&b, 1);
    expect_fail(&b, "invalid array element type 77");
    header(&b, 3, 0, 2); kv_u32(&b, "a", 1); kv_u32(&b, "a", 2);
    expect_fail(&b, "duplicate metadata key 'a'");
    header(&b, 3, 0, 1); kv_u32(&b, "general.alignment", 24);
    expect_fail(&b, "not a power of two");
    header(&b, 3, 0, 1); put_str(&b, "general.alignment"); put_u32(&b, RC_GGUF_STRING); put_str(&b, "32");
    expect_fail(&b, "general.alignment must be uint32");

    uint64_t ne[5] = {32, 2, 1, 1, 1};
    header(&b, 3, 1, 0); tinfo(&b, "t", 5, ne, 0, 0);
    expect_fail(&b, "has 5 dimensions");
    header(&b, 3, 1, 0); tinfo(&b, "t", 0, ne, 0, 0);
    expect_fail(&b, "has 0 dimensions");
    header(&b, 3, 1, 0); tinfo(&b, "t", 2, ne, 99, 0);
    expect_fail(&b, "unknown ggml type id 99");
    uint64_t ne33[2] = {33, 2};
    header(&b, 3, 1, 0); tinfo(&b, "t", 2, ne33, RC_GGML_Q4_0, 0);
    expect_fail(&b, "not a multiple of its block size 32");
    uint64_t ne0[2] = {32, 0};
    header(&b, 3, 1, 0); tinfo(&b, "t", 2, ne0, 0, 0);
    expect_fail(&b, "invalid dimension");
    uint64_t nebig[4] = {1ull << 40, 1ull << 40, 1ull << 40, 1ull << 40};
    header(&b, 3, 1, 0); tinfo(&b, "t", 4, nebig, 0, 0);
    expect_fail(&b, "invalid dimension");
    uint64_t ne_wrap[2] = {1ull << 40, 1ull << 22}; // 2^62 F32 elements: 2^64 bytes wraps to 0
    header(&b, 3, 1, 0); tinfo(&b, "t", 2, ne_wrap, RC_GGML_F32, 0); pad_to(&b, 32);
    expect_fail(&b, "more than the file size");
    header(&b, 3, 1, 0); tinfo(&b, "t", 2, ne, 0, 4);
    { uint8_t z[512] = {0}; put(&b, z, 512); }
    expect_fail(&b, "not a multiple of the alignment 32");
    header(&b, 3, 1, 0); tinfo(&b, "t", 2, ne, 0, 0); pad_to(&b, 32); put(&b, "0123", 4);
    expect_fail(&b, "truncated");
    header(&b, 3, 1, 0); tinfo(&b, "t", 2, ne, 0, 1ull << 62); pad_to(&b, 32);
    { uint8_t z[256] = {0}; put(&b, z, 256); }
    expect_fail(&b, "has data offset 4611686018427387904, expected 0");
    // data ranges: each offset must be the padded end of the tensors before it (llama.cpp's rule)
    header(&b, 3, 2, 0); tinfo(&b, "a", 2, ne, 0, 0); tinfo(&b, "b", 2, ne, 0, 0); pad_to(&b, 32);
    { uint8_t z[512] = {0}; put(&b, z, 512); }
    expect_fail(&b, "tensor 'b' (info 1) has data offset 0, expected 256"); // aliased
    header(&b, 3, 2, 0); tinfo(&b, "a", 2, ne, 0, 0); tinfo(&b, "b", 2, ne, 0, 128); pad_to(&b, 32);
    { uint8_t z[512] = {0}; put(&b, z, 512); }
    expect_fail(&b, "overlapping"); // overlaps the second half of 'a'
    header(&b, 3, 2, 0); tinfo(&b, "a", 2, ne, 0, 256); tinfo(&b, "b", 2, ne, 0, 0); pad_to(&b, 32);
    { uint8_t z[512] = {0}; put(&b, z, 512); }
    expect_fail(&b, "tensor 'a' (info 0) has data offset 256, expected 0"); // out of order
    header(&b, 3, 2, 0); tinfo(&b, "a", 2, ne, 0, 0); tinfo(&b, "b", 2, ne, 0, 288); pad_to(&b, 32);
    { uint8_t z[640] = {0}; put(&b, z, 640); }
    expect_fail(&b, "expected 256"); // a gap
    uint64_t ne3[1] = {3};                 // 12 bytes: the next tensor starts at the padded 32
    header(&b, 3, 2, 0); tinfo(&b, "a", 1, ne3, 0, 0); tinfo(&b, "b", 1, ne3, 0, 12); pad_to(&b, 32);
    { uint8_t z[64] = {0}; put(&b, z, 64); }
    expect_fail(&b, "offset 12 is not a multiple of the alignment 32");
    header(&b, 3, 2, 0); tinfo(&b, "a", 1, ne3, 0, 0); tinfo(&b, "b", 1, ne3, 0, 32); pad_to(&b, 32);
    { uint8_t z[64] = {0}; put(&b, z, 64); }
    {
        rc_gguf g;
        cr_assert(rc_gguf_parse(&g, b.p, b.n, "two.gguf") == 0, "%s", rc_last_error());
        rc_gguf_close(&g);
        free(b.p);
        memset(&b, 0, sizeof b);
    }
    header(&b, 3, 2, 0); tinfo(&b, "t", 1, ne, 0, 0); tinfo(&b, "t", 1, ne, 0, 128); pad_to(&b, 32);
    { uint8_t z[256] = {0}; put(&b, z, 256); }
    expect_fail(&b, "duplicate tensor name 't'");
}

Test(gguf_reader, hand_made_good_file) {
    wbuf b = {0};
    header(&b, 2, 1, 4);
    kv_u32(&b, "general.alignment", 64);
    put_str(&b, "i8"); put_u32(&b, RC_GGUF_INT8); put(&b, "\xfe", 1);
    put_str(&b, "nested"); put_u32(&b, RC_GGUF_ARRAY); put_u32(&b, RC_GGUF_ARRAY); put_u64(&b, 2);
    put_u32(&b, RC_GGUF_UINT16); put_u64(&b, 1); put(&b, "\x01\x00", 2);
    put_u32(&b, RC_GGUF_STRING); put_u64(&b, 1); put_str(&b, "hi");
    put_str(&b, "f64"); put_u32(&b, RC_GGUF_FLOAT64);
    { double d = 2.5; put(&b, &d, 8); }
    uint64_t ne[2] = {4, 2};
    tinfo(&b, "w", 2, ne, RC_GGML_F32, 0);
    pad_to(&b, 64);
    float vals[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    put(&b, vals, sizeof vals);
    rc_gguf g;
    cr_assert(rc_gguf_parse(&g, b.p, b.n, "good.gguf") == 0, "%s", rc_last_error());
    cr_assert_eq(g.version, 2u);
    cr_assert_eq(g.alignment, 64u);
    const rc_gguf_kv *kv = rc_gguf_find(&g, "i8");
    cr_assert(kv && kv->type == RC_GGUF_INT8 && kv->v.i64 == -2);
    uint64_t u;
    cr_assert(rc_gguf_get_u64(&g, "i8", &u) == -1 && strstr(rc_last_error(), "negative"));
    float f;
    cr_assert(rc_gguf_get_f32(&g, "f64", &f) == 0 && f == 2.5f);
    cr_assert(rc_gguf_get_f32(&g, "i8", &f) == 0 && f == -2.0f);
    kv = rc_gguf_find(&g, "nested");
    cr_assert(kv && kv->arr_type == RC_GGUF_ARRAY && kv->arr_n == 2);
    const rc_gguf_tensor *t = rc_gguf_find_tensor(&g, "w");
    cr_assert(t && t->nbytes == 32 && ((const uint8_t *)t->data - b.p) % 64 == 0);
    cr_assert(memcmp(t->data, vals, 32) == 0);
    cr_assert_null(rc_gguf_find_tensor(&g, "nope"));
    rc_gguf_close(&g);
    free(b.p);
}

// ---- model loading ------------------------------------------------------------------------

static void expect_load_fail(const char *file, const char *n1, const char *n2) {
    rc_model m;
    int rc = rc_model_load(file, &m);
    cr_assert_eq(rc, -1, "%s loaded", file);
    cr_assert(strstr(rc_last_error(), n1) && (!n2 || strstr(rc_last_error(), n2)),
              "expected '%s'/'%s' in: %s", n1, n2 ? n2 : "", rc_last_error());
}

Test(gguf_model, bad_files_give_clear_errors) {
    expect_load_fail(FX "bad_unsupported_type.gguf", "token_embd.weight", "IQ4_NL");
    expect_load_fail(FX "bad_arch.gguf", "architecture 'gpt2' is not supported", NULL);
    expect_load_fail(FX "bad_shape.gguf", "token_embd.weight", "shape");
    expect_load_fail(FX "does_not_exist.gguf", "does_not_exist.gguf", NULL);
    // a truncated model file (the tensor data is cut)
    size_t len;
    uint8_t *buf = load_bin("tiny_tied.gguf", &len);
    char path[] = "/tmp/rc_test_gguf_cut_XXXXXX.gguf";
    int fd = mkstemps(path, 5);
    cr_assert(fd >= 0);
    close(fd);
    cr_assert(rc_write_file_atomic(path, buf, len - 1000) == 0);
    expect_load_fail(path, "truncated", "tensor");
    unlink(path);
    free(buf);
}

static void load_hand_made(wbuf *b, const char *n1, const char *n2) {
    char path[] = "/tmp/rc_test_gguf_hand_XXXXXX.gguf";
    int fd = mkstemps(path, 5);
    cr_assert(fd >= 0);
    close(fd);
    cr_assert(rc_write_file_atomic(path, b->p, b->n) == 0);
    expect_load_fail(path, n1, n2);
    unlink(path);
    free(b->p);
    memset(b, 0, sizeof *b);
}

static void kv_str(wbuf *b, const char *k, const char *v) {
    put_str(b, k);
    put_u32(b, RC_GGUF_STRING);
    put_str(b, v);
}

Test(gguf_model, bad_metadata) {
    wbuf b = {0};
    header(&b, 3, 0, 1); kv_str(&b, "general.architecture", "llama");
    load_hand_made(&b, "required metadata 'llama.embedding_length' is missing", NULL);
    header(&b, 3, 0, 2); kv_str(&b, "general.architecture", "llama");
    kv_str(&b, "llama.embedding_length", "576");
    load_hand_made(&b, "'llama.embedding_length' is a string, expected an integer", NULL);
    header(&b, 3, 0, 5); kv_str(&b, "general.architecture", "llama");
    kv_u32(&b, "llama.embedding_length", 64); kv_u32(&b, "llama.feed_forward_length", 64);
    kv_u32(&b, "llama.block_count", 1); kv_u32(&b, "llama.attention.head_count", 0);
    load_hand_made(&b, "'llama.attention.head_count' = 0 is out of range", NULL);
    header(&b, 3, 0, 6); kv_str(&b, "general.architecture", "llama");
    kv_u32(&b, "llama.embedding_length", 64); kv_u32(&b, "llama.feed_forward_length", 64);
    kv_u32(&b, "llama.block_count", 1); kv_u32(&b, "llama.attention.head_count", 4);
    kv_u32(&b, "llama.attention.head_count_kv", 3);
    load_hand_made(&b, "not a multiple of head_count_kv 3", NULL);
    header(&b, 3, 0, 6); kv_str(&b, "general.architecture", "llama");
    kv_u32(&b, "llama.embedding_length", 64); kv_u32(&b, "llama.feed_forward_length", 64);
    kv_u32(&b, "llama.block_count", 1); kv_u32(&b, "llama.attention.head_count", 4);
    kv_u32(&b, "llama.rope.dimension_count", 8);
    load_hand_made(&b, "partial RoPE", NULL);
    header(&b, 3, 0, 6); kv_str(&b, "general.architecture", "llama");
    kv_u32(&b, "llama.embedding_length", 64); kv_u32(&b, "llama.feed_forward_length", 64);
    kv_u32(&b, "llama.block_count", 1); kv_u32(&b, "llama.attention.head_count", 4);
    kv_str(&b, "llama.rope.scaling.type", "yarn");
    load_hand_made(&b, "rope scaling 'yarn' is not supported", NULL);
    header(&b, 3, 0, 5); kv_str(&b, "general.architecture", "llama");
    kv_u32(&b, "llama.embedding_length", 64); kv_u32(&b, "llama.feed_forward_length", 64);
    kv_u32(&b, "llama.block_count", 1); kv_u32(&b, "llama.attention.head_count", 4);
    load_hand_made(&b, "tensor 'token_embd.weight' is missing", NULL);
    header(&b, 3, 0, 0);
    load_hand_made(&b, "'general.architecture' is missing", NULL);
    // a token list of another size than the vocabulary fails at load, not when decoding
    size_t len;
    uint8_t *raw = load_bin("tiny_tied.gguf", &len);
    uint8_t *at = memmem(raw, len, "llama.vocab_size", 16);
    cr_assert(at);
    uint32_t v;
    memcpy(&v, at + 20, 4);
    cr_assert_eq(v, 96u, "the fixture's vocabulary changed");
    v = 95;
    memcpy(at + 20, &v, 4);
    char path[] = "/tmp/rc_gguf_vocab_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0 && write(fd, raw, len) == (ssize_t)len);
    close(fd);
    free(raw);
    rc_model m;
    cr_assert_eq(rc_model_load(path, &m), -1);
    cr_assert(strstr(rc_last_error(), "tokenizer.ggml.tokens holds 96 tokens but the model's "
                                      "vocabulary (llama.vocab_size, token_embd.weight) has 95 entries"),
              "%s", rc_last_error());
    unlink(path);
}

Test(gguf_model, config_from_metadata) {
    rc_model m;
    cr_assert(rc_model_load(FX "tiny_mixed.gguf", &m) == 0, "%s", rc_last_error());
    const rc_config *c = &m.cfg;
    cr_assert(c->hidden_size == 256 && c->intermediate_size == 256 && c->num_hidden_layers == 2);
    cr_assert(c->num_attention_heads == 4 && c->num_key_value_heads == 1 && c->head_dim == 64);
    cr_assert(c->vocab_size == 256 && c->tie_word_embeddings == 0 && c->max_position_embeddings == 128);
    cr_assert(fabsf(c->rms_norm_eps - 1e-5f) < 1e-12f && c->rope_theta == 1e4f);
    cr_assert(c->bos_token_id == 1 && c->n_eos >= 1 && c->eos_token_ids[0] == 2);
    cr_assert(c->arch == RC_ARCH_CAUSAL_LM && m.gguf != NULL && m.w.lm_head != m.w.embed_tokens);
    // the Q/K rows are un-permuted: HF row h*hd + j*hd/2 + i is GGUF row h*hd + 2i + j
    rc_gguf *g = m.gguf;
    const rc_gguf_tensor *tq = rc_gguf_find_tensor(g, "blk.0.attn_q.weight");
    float row[256];
    int be, bb;
    rc_ggml_type_geometry(tq->ggml_type, &be, &bb);
    for (int r = 0; r < 256; r += 7) {
        int h = r / 64, k = r % 64, i = k / 2, jj = k % 2;
        int hf = h * 64 + jj * 32 + i;
        rc_dequant_row(tq->ggml_type, (const uint8_t *)tq->data + (size_t)r * (256 / be) * bb, row, 256);
        float got[256];
        rc_qmat_rows_f32(&m.w.layers[0].wq, hf, 1, got);
        for (int k2 = 0; k2 < 256; k2++) // the vector unpacking may fuse q*d+m into one rounding
            cr_assert(fabsf(got[k2] - row[k2]) <= 1e-6f * (fabsf(row[k2]) + 1e-3f), "row %d", r);
    }
    rc_model_free(&m);
    cr_assert(rc_model_load(FX "tiny_tied.gguf", &m) == 0, "%s", rc_last_error());
    cr_assert(m.cfg.tie_word_embeddings == 1 && m.w.lm_head == m.w.embed_tokens);
    cr_assert(m.cfg.rope_theta == 5e5f && m.cfg.num_key_value_heads == 2);
    rc_model_free(&m);
}

// max |a-b| / max |b| over one row
static double rel_err(const float *a, const float *b, int n) {
    double md = 0, mb = 0;
    for (int i = 0; i < n; i++) {
        md = fmax(md, fabs((double)a[i] - b[i]));
        mb = fmax(mb, fabs((double)b[i]));
    }
    return md / (mb > 0 ? mb : 1);
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

// Logits of every position of ids (one slot, prefill in one call) into logits (len, vocab).
static void run_logits(rc_engine *e, const int *ids, int len, float *logits) {
    int *sl = calloc((size_t)len, sizeof(int)), *pos = malloc((size_t)len * sizeof(int)),
        *rows = malloc((size_t)len * sizeof(int));
    for (int i = 0; i < len; i++) pos[i] = rows[i] = i;
    float *h = malloc((size_t)len * e->model->cfg.hidden_size * sizeof(float));
    cr_assert(rc_forward(e, len, ids, sl, pos, rows, h) == 0, "%s", rc_last_error());
    rc_lm_head(e, len, h, logits);
    free(sl), free(pos), free(rows), free(h);
}

// Greedy decode of n_new tokens after ids in slot 0 (stops after an eos in stop_eos mode).
static int greedy(rc_engine *e, const int *ids, int len, int n_new, int stop_eos, int *out) {
    int V = e->model->cfg.vocab_size, d = e->model->cfg.hidden_size;
    float *lg = malloc((size_t)len * V * sizeof(float)), *h = malloc((size_t)d * sizeof(float));
    run_logits(e, ids, len, lg);
    int next = argmax(lg + (size_t)(len - 1) * V, V), n = 0;
    for (;;) {
        out[n++] = next;
        if (n == n_new || (stop_eos && next == e->model->cfg.eos_token_ids[0])) break;
        int slot = 0, pos = len + n - 1, row = 0;
        cr_assert(rc_forward(e, 1, &next, &slot, &pos, &row, h) == 0, "%s", rc_last_error());
        rc_lm_head(e, 1, h, lg);
        next = argmax(lg, V);
    }
    free(lg), free(h);
    return n;
}

static int *json_ints(cJSON *arr, int *n) {
    *n = cJSON_GetArraySize(arr);
    int *v = malloc((size_t)(*n ? *n : 1) * sizeof(int));
    for (int i = 0; i < *n; i++) v[i] = cJSON_GetArrayItem(arr, i)->valueint;
    return v;
}

static void golden_tiny(const char *name) {
    char fn[256];
    snprintf(fn, sizeof fn, "%s.json", name);
    cJSON *j = load_json(fn);
    snprintf(fn, sizeof fn, FX "%s.gguf", name);
    rc_model m;
    cr_assert(rc_model_load(fn, &m) == 0, "%s", rc_last_error());
    int V = m.cfg.vocab_size;
    cr_assert_eq(V, cJSON_GetObjectItem(j, "vocab_size")->valueint);
    rc_engine e;
    cr_assert(rc_engine_init(&e, &m, 1, 128, 64) == 0, "%s", rc_last_error());
    cJSON *seqs = cJSON_GetObjectItem(j, "seqs"), *files = cJSON_GetObjectItem(j, "logits");
    double worst = 0;
    for (int s = 0; s < cJSON_GetArraySize(seqs); s++) {
        int len;
        int *ids = json_ints(cJSON_GetArrayItem(seqs, s), &len);
        size_t nb;
        float *ref = load_bin(cJSON_GetArrayItem(files, s)->valuestring, &nb);
        cr_assert_eq(nb, (size_t)len * V * 4);
        float *lg = malloc(nb);
        rc_engine_free(&e);
        cr_assert(rc_engine_init(&e, &m, 1, 128, 64) == 0, "%s", rc_last_error());
        run_logits(&e, ids, len, lg);
        for (int p = 0; p < len; p++) {
            double r = rel_err(lg + (size_t)p * V, ref + (size_t)p * V, V);
            worst = fmax(worst, r);
            cr_assert(r <= 1e-3, "%s seq %d pos %d: relative error %.3g > 1e-3", name, s, p, r);
        }
        free(ids), free(ref), free(lg);
    }
    int len, ng;
    int *ids = json_ints(cJSON_GetArrayItem(seqs, cJSON_GetObjectItem(j, "greedy_prompt")->valueint), &len);
    int *want = json_ints(cJSON_GetObjectItem(j, "greedy"), &ng);
    int *got = malloc((size_t)ng * sizeof(int));
    rc_engine_free(&e);
    cr_assert(rc_engine_init(&e, &m, 1, 128, 64) == 0, "%s", rc_last_error());
    greedy(&e, ids, len, ng, 0, got);
    for (int i = 0; i < ng; i++)
        cr_assert_eq(got[i], want[i], "%s greedy token %d: got %d, transformers %d", name, i,
                     got[i], want[i]);
    cr_log_info("%s: worst relative logit error %.3g over all positions; greedy %d tokens identical",
                name, worst, ng);
    free(ids), free(want), free(got);
    rc_engine_free(&e);
    rc_model_free(&m);
    cJSON_Delete(j);
}

Test(gguf_model, tiny_mixed_matches_transformers) { golden_tiny("tiny_mixed"); }
Test(gguf_model, tiny_tied_matches_transformers) { golden_tiny("tiny_tied"); }

// ---- the real default model (only when it is in the cache) -------------------------------

Test(gguf_model, default_model_matches_transformers, .timeout = 600) {
    char path[4096];
    if (rc_default_model_path(path, sizeof path) != 0 || !rc_file_exists(path)) {
        cr_skip_test("skipped: default model not in cache (%s); run `recontrol setup`", path);
    }
    cJSON *j = load_json("default_model.json");
    rc_model m;
    cr_assert(rc_model_load(path, &m) == 0, "%s", rc_last_error());
    cr_assert(m.cfg.hidden_size == 576 && m.cfg.num_hidden_layers == 30 &&
              m.cfg.num_attention_heads == 9 && m.cfg.num_key_value_heads == 3 &&
              m.cfg.intermediate_size == 1536 && m.cfg.vocab_size == 49152 &&
              m.cfg.tie_word_embeddings && m.cfg.rope_theta == 100000.0f);
    int V = m.cfg.vocab_size, K = cJSON_GetObjectItem(j, "head_ids")->valueint;
    rc_engine e;
    cr_assert(rc_engine_init(&e, &m, 1, 256, 64) == 0, "%s", rc_last_error());
    cJSON *ent;
    int k = 0;
    cJSON_ArrayForEach(ent, cJSON_GetObjectItem(j, "entries")) {
        int len;
        int *ids = json_ints(cJSON_GetObjectItem(ent, "ids"), &len);
        float *lg = malloc((size_t)len * V * sizeof(float));
        rc_engine_free(&e);
        cr_assert(rc_engine_init(&e, &m, 1, 256, 64) == 0, "%s", rc_last_error());
        run_logits(&e, ids, len, lg);
        const float *last = lg + (size_t)(len - 1) * V;
        double absmax = cJSON_GetObjectItem(ent, "last_absmax")->valuedouble, md = 0;
        cJSON *head = cJSON_GetObjectItem(ent, "last_head");
        for (int i = 0; i < K; i++)
            md = fmax(md, fabs(last[i] - cJSON_GetArrayItem(head, i)->valuedouble));
        cJSON *tid = cJSON_GetObjectItem(ent, "top_ids"), *tlg = cJSON_GetObjectItem(ent, "top_logits");
        for (int i = 0; i < cJSON_GetArraySize(tid); i++)
            md = fmax(md, fabs(last[cJSON_GetArrayItem(tid, i)->valueint] -
                               cJSON_GetArrayItem(tlg, i)->valuedouble));
        cr_assert(md / absmax <= 1e-3, "prompt %d: relative logit error %.3g > 1e-3", k, md / absmax);
        cr_assert_eq(argmax(last, V), cJSON_GetArrayItem(tid, 0)->valueint, "prompt %d top-1", k);
        cr_log_info("default model prompt %d (%d tokens): relative logit error %.3g", k, len, md / absmax);
        free(ids), free(lg);
        k++;
    }
    cJSON *gp = cJSON_GetObjectItem(j, "greedy_prompts"), *gw = cJSON_GetObjectItem(j, "greedy");
    for (int g = 0; g < cJSON_GetArraySize(gp); g++) {
        int len, ng;
        cJSON *e0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "entries"), cJSON_GetArrayItem(gp, g)->valueint);
        int *ids = json_ints(cJSON_GetObjectItem(e0, "ids"), &len);
        int *want = json_ints(cJSON_GetArrayItem(gw, g), &ng);
        int *got = calloc((size_t)ng, sizeof(int));
        rc_engine_free(&e);
        cr_assert(rc_engine_init(&e, &m, 1, 256, 64) == 0, "%s", rc_last_error());
        int n = greedy(&e, ids, len, ng, 1, got);
        cr_assert_eq(n, ng, "greedy %d: %d tokens, transformers %d", g, n, ng);
        for (int i = 0; i < ng; i++)
            cr_assert_eq(got[i], want[i], "greedy %d token %d: got %d, transformers %d", g, i,
                         got[i], want[i]);
        free(ids), free(want), free(got);
    }
    rc_engine_free(&e);
    rc_model_free(&m);
    cJSON_Delete(j);
}

// ---- default model path and SHA-256 -----------------------------------------------------------

Test(default_model, path_resolution) {
    char buf[4096];
    setenv("RECONTROL_MODEL", "/some/where.gguf", 1);
    cr_assert(rc_default_model_path(buf, sizeof buf) == 0);
    cr_assert_str_eq(buf, "/some/where.gguf");
    cr_assert(rc_default_model_require(buf, sizeof buf) == -1);
    cr_assert(strstr(rc_last_error(), "RECONTROL_MODEL"), "%s", rc_last_error());
    unsetenv("RECONTROL_MODEL");
    setenv("XDG_CACHE_HOME", "/nonexistent-cache", 1);
    cr_assert(rc_default_model_path(buf, sizeof buf) == 0);
    cr_assert_str_eq(buf, "/nonexistent-cache/recontrol/SmolLM2-135M-Instruct.Q4_1.gguf");
    cr_assert(rc_default_model_require(buf, sizeof buf) == -1);
    cr_assert(strstr(rc_last_error(), "run `recontrol setup` (needs pip and network) or pass --model"),
              "%s", rc_last_error());
    unsetenv("XDG_CACHE_HOME");
    setenv("HOME", "/home/someone", 1);
    cr_assert(rc_default_model_path(buf, sizeof buf) == 0);
    cr_assert_str_eq(buf, "/home/someone/.cache/recontrol/SmolLM2-135M-Instruct.Q4_1.gguf");
}

Test(default_model, sha256_known_vectors) {
    uint8_t d[32];
    char hex[65];
    rc_sha256("abc", 3, d);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    rc_sha256("", 0, d);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    cr_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    rc_sha256(m, strlen(m), d);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    cr_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    cr_assert(rc_sha256_file(FX "does-not-exist", hex) == -1);
}
