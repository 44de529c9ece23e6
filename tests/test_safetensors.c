// safetensors reader/writer and .npy files: round trips, files written by the Python
// safetensors and numpy packages (fixtures/loader), and every header validation error path on
// corrupt files written into a temporary directory by the test itself.
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/common.h"
#include "base/npy.h"
#include "base/safetensors.h"

#include "tests/expect_fail.h"

static char g_dir[512];

static void make_tmp(void) {
    const char *t = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/rc_st_XXXXXX", t && *t ? t : "/tmp");
    cr_assert(mkdtemp(g_dir), "mkdtemp failed");
}

static void rm_tmp(void) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
}

TestSuite(safetensors, .init = make_tmp, .fini = rm_tmp);
TestSuite(npy, .init = make_tmp, .fini = rm_tmp);

static const char *tmp_path(const char *name) {
    static char p[1024];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    return p;
}

// Writes a raw safetensors image: u64 header length (hlen_override when >= 0), header text, then
// data_len bytes of data (0x11 each).
static const char *write_raw(const char *name, const char *header, int64_t hlen_override,
                             size_t data_len) {
    const char *p = tmp_path(name);
    size_t hl = strlen(header);
    size_t n = 8 + hl + data_len;
    unsigned char *buf = malloc(n);
    uint64_t L = hlen_override >= 0 ? (uint64_t)hlen_override : hl;
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(L >> (8 * i));
    memcpy(buf + 8, header, hl);
    memset(buf + 8 + hl, 0x11, data_len);
    cr_assert_eq(rc_write_file_atomic(p, buf, n), 0);
    free(buf);
    return p;
}

// Parses a header with `data_len` data bytes; returns rc_st_parse's result (both via open and
// via the in-memory parse, which must agree).
static int try_header(const char *header, size_t data_len) {
    const char *p = write_raw("h.safetensors", header, -1, data_len);
    rc_safetensors st;
    int r = rc_st_open(&st, p);
    char msg[2048];
    snprintf(msg, sizeof msg, "%s", rc_last_error());
    if (r == 0) rc_st_close(&st);
    size_t len;
    char *img = rc_read_file(p, &len);
    rc_safetensors st2;
    int r2 = rc_st_parse(&st2, img, len, p);
    if (r2 == 0) rc_st_close(&st2);
    free(img);
    cr_assert_eq(r, r2, "open and parse disagree on %s", header);
    if (r) rc_fail("%s", msg);
    return r;
}

Test(safetensors, round_trip_all_dtypes) {
    float f32[6] = {1.5f, -2.25f, 3e-8f, 65504.0f, -0.0f, 1e30f};
    uint16_t f16[4], bf16[4];
    float src16[4] = {0.5f, -1.75f, 6.1035156e-05f, 1024.0f};
    for (int i = 0; i < 4; i++) {
        f16[i] = rc_f32_to_f16(src16[i]);
        bf16[i] = rc_f32_to_bf16(src16[i]);
    }
    int64_t i64[3] = {-1, 1ll << 40, 7};
    int32_t i32[2] = {-5, 123456};
    uint8_t u8[5] = {0, 1, 2, 254, 255};
    rc_st_entry e[] = {
        {"a.f32", RC_DT_F32, 2, {2, 3}, f32},    {"b \"quoted\\name\"", RC_DT_F16, 1, {4}, f16},
        {"c.bf16", RC_DT_BF16, 2, {2, 2}, bf16}, {"d.i64", RC_DT_I64, 1, {3}, i64},
        {"e.i32", RC_DT_I32, 1, {2}, i32},       {"f.u8", RC_DT_U8, 1, {5}, u8},
        {"g.empty", RC_DT_F32, 2, {0, 4}, NULL}, {"h.scalar", RC_DT_F32, 0, {0}, f32},
    };
    const char *meta[] = {"format", "pt", "note", "tab\there", NULL};
    const char *p = tmp_path("rt.safetensors");
    cr_assert_eq(rc_st_write(p, e, 8, meta), 0, "%s", rc_last_error());

    size_t len;
    unsigned char *img = (unsigned char *)rc_read_file(p, &len);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = (hl << 8) | img[i];
    cr_assert_eq(hl % 8, 0, "header padded to 8 bytes");
    cr_assert_eq(len, 8 + hl + 24 + 8 + 8 + 24 + 8 + 5 + 0 + 4);
    cr_assert_eq(img[8 + hl - 1] == ' ' || img[8 + hl - 1] == '}', 1);
    free(img);

    rc_safetensors st;
    cr_assert_eq(rc_st_open(&st, p), 0, "%s", rc_last_error());
    cr_assert_eq(st.n_tensors, 8);
    const rc_st_tensor *t = rc_st_find(&st, "a.f32");
    cr_assert(t);
    cr_assert_eq(t->dtype, RC_DT_F32);
    cr_assert_str_eq(t->dtype_str, "F32");
    cr_assert_eq(t->ndim, 2);
    cr_assert_eq(t->shape[0], 2);
    cr_assert_eq(t->shape[1], 3);
    cr_assert_eq(t->nbytes, 24);
    float out[6];
    cr_assert_eq(rc_st_to_f32(t, out, 6), 0);
    cr_assert_arr_eq(out, f32, sizeof f32);
    t = rc_st_find(&st, "b \"quoted\\name\"");
    cr_assert(t, "escaped name found");
    cr_assert_eq(t->dtype, RC_DT_F16);
    cr_assert_eq(rc_st_to_f32(t, out, 4), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(out[i], src16[i], "f16[%d]", i);
    t = rc_st_find(&st, "c.bf16");
    cr_assert_eq(rc_st_to_f32(t, out, 4), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(out[i], rc_bf16_to_f32(bf16[i]));
    cr_assert_float_eq(out[1], -1.75f, 0);
    t = rc_st_find(&st, "d.i64");
    cr_assert_eq(t->dtype, RC_DT_I64);
    cr_assert_eq(memcmp(t->data, i64, 24), 0);
    EXPECT_FAIL(rc_st_to_f32(t, out, 3), "I64");
    t = rc_st_find(&st, "e.i32");
    cr_assert_eq(memcmp(t->data, i32, 8), 0);
    t = rc_st_find(&st, "f.u8");
    cr_assert_eq(memcmp(t->data, u8, 5), 0);
    t = rc_st_find(&st, "g.empty");
    cr_assert_eq(t->nbytes, 0);
    cr_assert_eq(t->shape[0], 0);
    t = rc_st_find(&st, "h.scalar");
    cr_assert_eq(t->ndim, 0);
    cr_assert_eq(t->nbytes, 4);
    cr_assert_null(rc_st_find(&st, "__metadata__"));
    cr_assert_null(rc_st_find(&st, "nope"));
    EXPECT_FAIL(rc_st_to_f32(rc_st_find(&st, "a.f32"), out, 5), "5 elements");
    rc_st_close(&st);
}

Test(safetensors, writer_without_metadata_and_refusals) {
    float x[2] = {1, 2};
    rc_st_entry e = {"x", RC_DT_F32, 1, {2}, x};
    const char *p = tmp_path("nometa.safetensors");
    cr_assert_eq(rc_st_write(p, &e, 1, NULL), 0);
    size_t len;
    char *img = rc_read_file(p, &len);
    cr_assert_null(strstr(img + 8, "__metadata__"));
    free(img);
    rc_st_entry bad = {"y", RC_DT_OTHER, 1, {2}, x};
    EXPECT_FAIL(rc_st_write(p, &bad, 1, NULL), "unsupported dtype");
    rc_st_entry neg = {"z", RC_DT_F32, 1, {-2}, x};
    EXPECT_FAIL(rc_st_write(p, &neg, 1, NULL), "bad shape");
    EXPECT_FAIL(rc_st_write("/nonexistent-dir/x.safetensors", &e, 1, NULL), "cannot create");
}

// A file written by the Python safetensors package (save_pretrained, through the fixture script).
Test(safetensors, reads_python_written_file) {
    rc_safetensors st;
    const char *p = RC_FIXTURES "/loader/causal_bf16/model.safetensors";
    cr_assert_eq(rc_st_open(&st, p), 0, "%s", rc_last_error());
    cr_assert_eq(st.n_tensors, 2 + 2 * 9, "embed, norm and 9 per layer (tied: no lm_head)");
    const rc_st_tensor *t = rc_st_find(&st, "model.layers.1.mlp.up_proj.weight");
    cr_assert(t);
    cr_assert_eq(t->dtype, RC_DT_BF16);
    cr_assert_eq(t->shape[0], 48);
    cr_assert_eq(t->shape[1], 32);
    rc_st_close(&st);
}

Test(safetensors, missing_and_short_files) {
    rc_safetensors st;
    EXPECT_FAIL(rc_st_open(&st, tmp_path("does_not_exist.safetensors")), "cannot open");
    EXPECT_FAIL(rc_st_open(&st, g_dir), "not a regular file");
    cr_assert_eq(rc_write_file_atomic(tmp_path("empty"), "", 0), 0);
    EXPECT_FAIL(rc_st_open(&st, tmp_path("empty")), "too short");
    cr_assert_eq(rc_write_file_atomic(tmp_path("five"), "\x02\0\0\0\0", 5), 0);
    EXPECT_FAIL(rc_st_open(&st, tmp_path("five")), "too short");
    EXPECT_FAIL(rc_st_parse(&st, "abc", 3, "mem"), "too short");
}

Test(safetensors, header_length_past_file) {
    rc_safetensors st;
    const char *p = write_raw("long.safetensors", "{}", 1000, 0);
    EXPECT_FAIL(rc_st_open(&st, p), "runs past the end of the file");
    p = write_raw("huge.safetensors", "{}", INT64_MAX, 0);
    EXPECT_FAIL(rc_st_open(&st, p), "runs past the end");
    // a valid file cut short: its data no longer covers the offsets
    float x[64] = {0};
    rc_st_entry e = {"x", RC_DT_F32, 1, {64}, x};
    const char *q = tmp_path("cut.safetensors");
    cr_assert_eq(rc_st_write(q, &e, 1, NULL), 0);
    size_t len;
    char *img = rc_read_file(q, &len);
    cr_assert_eq(rc_write_file_atomic(q, img, len - 10), 0);
    free(img);
    EXPECT_FAIL(rc_st_open(&st, q), "run past the data buffer");
}

Test(safetensors, header_not_json_or_not_object) {
    EXPECT_FAIL(try_header("{\"a\": {\"dtype\": \"F32\"", 0), "not valid JSON");
    EXPECT_FAIL(try_header("hello world", 0), "not valid JSON");
    EXPECT_FAIL(try_header("[1, 2, 3]", 0), "not an object");
    EXPECT_FAIL(try_header("\"str\"", 0), "not an object");
    EXPECT_FAIL(try_header("{} x", 0), "trailing bytes");
    EXPECT_FAIL(try_header("{", 0), "cannot hold a JSON object");
    char with_nul[] = "{  }";
    with_nul[1] = 0;
    rc_safetensors st;
    unsigned char img[12] = {4, 0, 0, 0, 0, 0, 0, 0, '{', 0, ' ', '}'};
    (void)with_nul;
    EXPECT_FAIL(rc_st_parse(&st, img, sizeof img, "nul"), "NUL byte");
    cr_assert_eq(try_header("{}", 0), 0, "an empty header is a valid empty file");
    cr_assert_eq(try_header("{\"__metadata__\": {\"format\": \"pt\"}}    ", 16), 0,
                 "trailing spaces and unreferenced data are allowed: %s", rc_last_error());
    EXPECT_FAIL(try_header("{\"__metadata__\": 3}", 0), "__metadata__ is not an object");
}

Test(safetensors, entry_fields) {
    EXPECT_FAIL(try_header("{\"a\": 5}", 0), "entry is not an object");
    EXPECT_FAIL(try_header("{\"a\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", 4), "\"dtype\"");
    EXPECT_FAIL(try_header("{\"a\": {\"dtype\": 1, \"shape\": [1], \"data_offsets\": [0, 4]}}", 4),
                "\"dtype\"");
    EXPECT_FAIL(try_header("{\"a\": {\"dtype\": \"F32\", \"data_offsets\": [0, 4]}}", 4),
                "\"shape\"");
    EXPECT_FAIL(try_header("{\"a\": {\"dtype\": \"F32\", \"shape\": [1]}}", 4), "data_offsets");
    EXPECT_FAIL(
        try_header("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}}", 4),
        "two integers");
    EXPECT_FAIL(
        try_header("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4, 8]}}", 8),
        "two integers");
    EXPECT_FAIL(
        try_header("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [\"0\", 4]}}",
                   4),
        "non-negative integers");
    EXPECT_FAIL(
        try_header("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [-4, 0]}}", 4),
        "non-negative integers");
    EXPECT_FAIL(
        try_header("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0.5, 4]}}", 4),
        "non-negative integers");
    EXPECT_FAIL(
        try_header("{\"a\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}", 4),
        "shape[0]");
    EXPECT_FAIL(
        try_header("{\"a\": {\"dtype\": \"F32\", \"shape\": [1.5], \"data_offsets\": [0, 4]}}", 4),
        "shape[0]");
    EXPECT_FAIL(try_header("{\"a\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1,1,1,1,1], "
                           "\"data_offsets\": [0, 4]}}",
                           4),
                "dimensions");
    EXPECT_FAIL(
        try_header("{\"a\": {\"dtype\": \"F32\", \"shape\": 4, \"data_offsets\": [0, 4]}}", 4),
        "\"shape\"");
}

Test(safetensors, offsets_and_sizes) {
    // end before begin
    EXPECT_FAIL(
        try_header("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 4]}}", 8),
        "end before begin");
    // past the data buffer
    EXPECT_FAIL(
        try_header("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 4),
        "run past the data buffer");
    EXPECT_FAIL(try_header("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, "
                           "9007199254740992]}}",
                           4),
                "run past the data buffer");
    // shape * dtype size != span
    EXPECT_FAIL(
        try_header("{\"a\": {\"dtype\": \"F32\", \"shape\": [2, 2], \"data_offsets\": [0, 12]}}",
                   16),
        "span 12 bytes");
    EXPECT_FAIL(
        try_header("{\"a\": {\"dtype\": \"BF16\", \"shape\": [3], \"data_offsets\": [0, 4]}}", 8),
        "3 elements of BF16");
    // element count overflow
    EXPECT_FAIL(try_header("{\"a\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296, "
                           "4294967296], \"data_offsets\": [0, 4]}}",
                           4),
                "more than");
    // overlap
    EXPECT_FAIL(
        try_header("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, "
                   "\"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
                   12),
        "overlap");
    EXPECT_FAIL(
        try_header("{\"a\": {\"dtype\": \"U8\", \"shape\": [12], \"data_offsets\": [0, 12]}, "
                   "\"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
                   12),
        "overlap");
    // duplicate names
    EXPECT_FAIL(
        try_header("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, "
                   "\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
                   8),
        "appears twice");
    // adjacent tensors, empty tensors sharing an offset, and unordered entries are all fine
    cr_assert_eq(
        try_header("{\"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}, "
                   "\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, "
                   "\"e\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [4, 4]}, "
                   "\"f\": {\"dtype\": \"I64\", \"shape\": [0, 3], \"data_offsets\": [4, 4]}}",
                   8),
        0, "%s", rc_last_error());
}

Test(safetensors, other_and_unknown_dtypes) {
    // a known dtype the engine does not compute with: sizes still checked
    cr_assert_eq(
        try_header("{\"a\": {\"dtype\": \"F64\", \"shape\": [2], \"data_offsets\": [0, 16]}}", 16),
        0, "%s", rc_last_error());
    EXPECT_FAIL(
        try_header("{\"a\": {\"dtype\": \"F64\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 8),
        "F64");
    // an unknown dtype parses as RC_DT_OTHER, keeps its name, and cannot be converted
    const char *p =
        write_raw("q.safetensors",
                  "{\"w\": {\"dtype\": \"Q4X\", \"shape\": [8], \"data_offsets\": [0, 4]}}", -1, 4);
    rc_safetensors st;
    cr_assert_eq(rc_st_open(&st, p), 0, "%s", rc_last_error());
    const rc_st_tensor *t = rc_st_find(&st, "w");
    cr_assert_eq(t->dtype, RC_DT_OTHER);
    cr_assert_str_eq(t->dtype_str, "Q4X");
    cr_assert_eq(rc_dtype_size(t->dtype), 0);
    float out[8];
    EXPECT_FAIL(rc_st_to_f32(t, out, 8), "dtype Q4X is not supported");
    rc_st_close(&st);
}

// Every prefix of a valid file either parses (only the full file) or fails with a message.
Test(safetensors, every_truncation_fails_cleanly) {
    float x[3] = {1, 2, 3};
    rc_st_entry e[2] = {{"x", RC_DT_F32, 1, {3}, x}, {"y", RC_DT_F32, 1, {2}, x}};
    const char *p = tmp_path("t.safetensors");
    cr_assert_eq(rc_st_write(p, e, 2, NULL), 0);
    size_t len;
    char *img = rc_read_file(p, &len);
    for (size_t n = 0; n < len; n++) {
        rc_safetensors st;
        char *copy = malloc(n ? n : 1); // exact-size buffer so that ASan sees any overread
        memcpy(copy, img, n);
        cr_assert_neq(rc_st_parse(&st, copy, n, "prefix"), 0, "prefix of %zu bytes parsed", n);
        cr_assert_str_not_empty(rc_last_error());
        free(copy);
    }
    rc_safetensors st;
    cr_assert_eq(rc_st_parse(&st, img, len, "full"), 0);
    rc_st_close(&st);
    free(img);
}

// ---- npy ---------------------------------------------------------------------------------

Test(npy, round_trip) {
    float a[24];
    for (int i = 0; i < 24; i++)
        a[i] = (float)i * 0.25f - 3.0f;
    int64_t shp[3] = {2, 3, 4};
    const char *p = tmp_path("a.npy");
    cr_assert_eq(rc_npy_write_f32(p, a, 3, shp), 0, "%s", rc_last_error());
    float *b;
    int nd;
    int64_t s[8];
    cr_assert_eq(rc_npy_read_f32(p, &b, &nd, s), 0, "%s", rc_last_error());
    cr_assert_eq(nd, 3);
    cr_assert_eq(s[0], 2);
    cr_assert_eq(s[1], 3);
    cr_assert_eq(s[2], 4);
    cr_assert_arr_eq(a, b, sizeof a);
    free(b);
    int64_t zero[2] = {0, 5};
    cr_assert_eq(rc_npy_write_f32(p, a, 2, zero), 0);
    cr_assert_eq(rc_npy_read_f32(p, &b, &nd, s), 0, "%s", rc_last_error());
    cr_assert_eq(nd, 2);
    cr_assert_eq(s[0], 0);
    free(b);
    cr_assert_eq(rc_npy_write_f32(p, a, 0, NULL), 0);
    cr_assert_eq(rc_npy_read_f32(p, &b, &nd, s), 0, "%s", rc_last_error());
    cr_assert_eq(nd, 0);
    cr_assert_eq(b[0], a[0]);
    free(b);
}

// Our writer produces byte-for-byte what numpy.save produces.
Test(npy, writer_matches_numpy_bytes) {
    float a[6];
    for (int i = 0; i < 6; i++)
        a[i] = (float)i * 0.5f - 1.0f;
    int64_t s2[2] = {2, 3}, s1[1] = {5};
    const struct {
        const char *fixture;
        int nd;
        const int64_t *shape;
    } k[] = {{"numpy_f4_2x3.npy", 2, s2}, {"numpy_f4_vec5.npy", 1, s1}};
    for (int i = 0; i < 2; i++) {
        const char *p = tmp_path("mine.npy");
        cr_assert_eq(rc_npy_write_f32(p, a, k[i].nd, k[i].shape), 0);
        char ref[512];
        snprintf(ref, sizeof ref, "%s/loader/%s", RC_FIXTURES, k[i].fixture);
        size_t la, lb;
        char *x = rc_read_file(p, &la), *y = rc_read_file(ref, &lb);
        cr_assert(y, "%s", rc_last_error());
        cr_assert_eq(la, lb, "%s: %zu vs %zu bytes", k[i].fixture, la, lb);
        cr_assert_eq(memcmp(x, y, la), 0, "%s differs from numpy's bytes", k[i].fixture);
        free(x);
        free(y);
    }
}

Test(npy, reads_numpy_files) {
    float *b;
    int nd;
    int64_t s[8];
    cr_assert_eq(rc_npy_read_f32(RC_FIXTURES "/loader/numpy_f8_2x3x4.npy", &b, &nd, s), 0, "%s",
                 rc_last_error());
    cr_assert_eq(nd, 3);
    cr_assert_eq(s[0] * s[1] * s[2], 24);
    for (int i = 0; i < 24; i++)
        cr_assert_eq(b[i], (float)(i * 0.5 - 1), "f8[%d]", i);
    free(b);
    cr_assert_eq(rc_npy_read_f32(RC_FIXTURES "/loader/numpy_f4_vec5.npy", &b, &nd, s), 0);
    cr_assert_eq(nd, 1);
    cr_assert_eq(s[0], 5);
    cr_assert_eq(b[4], 1.0f);
    free(b);
    EXPECT_FAIL(rc_npy_read_f32(RC_FIXTURES "/loader/numpy_f4_fortran.npy", &b, &nd, s),
                "fortran_order");
}

Test(npy, bad_files) {
    float *b;
    int nd;
    int64_t s[8];
    EXPECT_FAIL(rc_npy_read_f32(tmp_path("none.npy"), &b, &nd, s), "cannot open");
    cr_assert_eq(rc_write_file_atomic(tmp_path("bad.npy"), "PK\3\4hello", 9), 0);
    EXPECT_FAIL(rc_npy_read_f32(tmp_path("bad.npy"), &b, &nd, s), "bad magic");
    size_t len;
    char *img = rc_read_file(RC_FIXTURES "/loader/numpy_f4_2x3.npy", &len);
    cr_assert_eq(rc_write_file_atomic(tmp_path("cut.npy"), img, len - 4), 0);
    EXPECT_FAIL(rc_npy_read_f32(tmp_path("cut.npy"), &b, &nd, s), "truncated");
    cr_assert_eq(rc_write_file_atomic(tmp_path("cut2.npy"), img, 40), 0);
    EXPECT_FAIL(rc_npy_read_f32(tmp_path("cut2.npy"), &b, &nd, s), "header length");
    char *f = memmem(img, len, "<f4", 3);
    cr_assert(f);
    f[1] = 'i';
    cr_assert_eq(rc_write_file_atomic(tmp_path("int.npy"), img, len), 0);
    EXPECT_FAIL(rc_npy_read_f32(tmp_path("int.npy"), &b, &nd, s), "<i4");
    free(img);
}
