// Non-finite weights are refused at load, naming the tensor (issue: NaN/Inf in weights or a value
// network decoded all-zero tokens with exit 0): the scan itself, then an HF checkpoint, a GGUF file
// and a value model from the committed fixtures with one value overwritten by NaN or Inf.
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/common.h"
#include "base/finite.h"
#include "base/gguf.h"
#include "base/safetensors.h"
#include "engine/model.h"
#include "engine/value_mlp.h"

Test(finite, scan_finds_the_first_bad_value) {
    size_t sizes[] = {1, 7, 65535, 65536, 65537, (size_t)1 << 22 | 5};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        size_t n = sizes[si];
        float *x = malloc(n * sizeof *x);
        for (size_t i = 0; i < n; i++) x[i] = (float)((int)(i % 13) - 6) * 1e30f; // large but finite
        x[n / 2] = 3.4028235e38f;                                           // FLT_MAX is finite
        cr_assert_eq(rc_first_nonfinite(x, n), -1, "n=%zu", n);
        size_t at[] = {0, n / 3, n - 1};
        float bad[] = {NAN, INFINITY, -INFINITY, -NAN};
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 4; b++) {
                float keep = x[at[a]];
                x[at[a]] = bad[b];
                cr_assert_eq(rc_first_nonfinite(x, n), (int64_t)at[a], "n=%zu at %zu", n, at[a]);
                x[at[a]] = keep;
            }
        x[n - 1] = NAN; // two bad values: the first one is reported
        x[n / 3] = INFINITY;
        cr_assert_eq(rc_first_nonfinite(x, n), (int64_t)(n / 3));
        free(x);
    }
    cr_assert_eq(rc_first_nonfinite(NULL, 0), -1);
}

static char *copy_to_tmp(const char *src, const char *name) {
    static int k;
    char *dir = NULL;
    cr_assert(asprintf(&dir, "/tmp/rc_finite_%d_%d", (int)getpid(), k++) > 0);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s && cp -r %s %s/%s", dir, dir, src, dir, name);
    cr_assert(system(cmd) == 0, "%s", cmd);
    return dir;
}

static void remove_tmp(char *dir) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
    free(dir);
}

// File offset of element `el` of safetensors tensor `name` in path, and its dtype.
static size_t st_offset(const char *path, const char *name, size_t el, size_t *esz, int *bf16) {
    rc_safetensors st;
    cr_assert(rc_st_open(&st, path) == 0, "%s", rc_last_error());
    const rc_st_tensor *t = rc_st_find(&st, name);
    cr_assert(t, "%s has no %s", path, name);
    *esz = rc_dtype_size(t->dtype);
    *bf16 = t->dtype == RC_DT_BF16;
    size_t off = (size_t)((const char *)t->data - (const char *)st.map) + el * *esz;
    rc_st_close(&st);
    return off;
}

// Overwrites element `el` of the tensor at `data` (file offset `off`) with `v` in its dtype.
static void poke(const char *path, size_t off, int dtype_bytes, int is_bf16, float v) {
    FILE *f = fopen(path, "r+b");
    cr_assert(f);
    cr_assert(fseek(f, (long)off, SEEK_SET) == 0);
    if (dtype_bytes == 4) {
        fwrite(&v, 4, 1, f);
    } else {
        uint16_t h = is_bf16 ? rc_f32_to_bf16(v) : rc_f32_to_f16(v);
        fwrite(&h, 2, 1, f);
    }
    fclose(f);
}

static void expect_refused(int rc, const char *n1, const char *n2) {
    cr_assert_eq(rc, -1, "loaded");
    cr_assert(strstr(rc_last_error(), n1) && strstr(rc_last_error(), n2),
              "expected '%s' and '%s' in: %s", n1, n2, rc_last_error());
}

Test(finite, hf_checkpoint_with_nan_is_refused) {
    char *dir = copy_to_tmp(RC_FIXTURES "/tiny/mha_hd32_tied", "m");
    char model[4096], st_path[4096];
    snprintf(model, sizeof model, "%s/m", dir);
    snprintf(st_path, sizeof st_path, "%s/m/model.safetensors", dir);
    size_t esz;
    int bf16;
    size_t off = st_offset(st_path, "model.layers.1.mlp.down_proj.weight", 17, &esz, &bf16);
    poke(st_path, off, (int)esz, bf16, NAN);
    rc_model m;
    expect_refused(rc_model_load(model, &m), "model.layers.1.mlp.down_proj.weight", "NaN at element 17");
    rc_set_weight_scan(0);
    int rc = rc_model_load(model, &m);
    rc_set_weight_scan(1);
    cr_assert_eq(rc, 0, "--skip-weight-scan must load it: %s", rc_last_error());
    rc_model_free(&m);
    remove_tmp(dir);
}

Test(finite, gguf_with_inf_is_refused) {
    char *dir = copy_to_tmp(RC_FIXTURES "/gguf/tiny_tied.gguf", "t.gguf");
    char path[4096];
    snprintf(path, sizeof path, "%s/t.gguf", dir);
    rc_gguf g;
    cr_assert(rc_gguf_open(&g, path) == 0, "%s", rc_last_error());
    const rc_gguf_tensor *t = rc_gguf_find_tensor(&g, "blk.0.ffn_norm.weight");
    cr_assert(t && (t->ggml_type == 0 || t->ggml_type == 1), "expected an F32/F16 norm tensor");
    int esz = t->ggml_type == 0 ? 4 : 2;
    size_t off = (size_t)((const char *)t->data - (const char *)g.map) + 3 * (size_t)esz;
    rc_gguf_close(&g);
    poke(path, off, esz, 0, -INFINITY);
    rc_model m;
    expect_refused(rc_model_load(path, &m), "blk.0.ffn_norm.weight", "-Inf at element 3");
    remove_tmp(dir);
}

// Weights kept in their stored type (GGUF blocks, F16/BF16): a NaN scale of a Q8_0 block, an Inf
// in an F16 and a NaN in a BF16 matrix are found without a full dequantization of the model.
static void gguf_poke_expect(const char *tensor, size_t byte_in_tensor, const void *bytes, size_t nb,
                             const char *n1, const char *n2) {
    char *dir = copy_to_tmp(RC_FIXTURES "/gguf/tiny_mixed.gguf", "t.gguf");
    char path[4096];
    snprintf(path, sizeof path, "%s/t.gguf", dir);
    rc_gguf g;
    cr_assert(rc_gguf_open(&g, path) == 0, "%s", rc_last_error());
    const rc_gguf_tensor *t = rc_gguf_find_tensor(&g, tensor);
    cr_assert(t, "no %s", tensor);
    size_t off = (size_t)((const char *)t->data - (const char *)g.map) + byte_in_tensor;
    rc_gguf_close(&g);
    FILE *f = fopen(path, "r+b");
    cr_assert(f && fseek(f, (long)off, SEEK_SET) == 0 && fwrite(bytes, 1, nb, f) == nb);
    fclose(f);
    rc_model m;
    expect_refused(rc_model_load(path, &m), n1, n2);
    remove_tmp(dir);
}

Test(finite, stored_types_are_scanned) {
    const uint16_t nan16 = 0x7e00, inf16 = 0x7c00, nan_bf16 = 0x7fc0;
    // Q8_0 blocks are 34 bytes (f16 scale + 32 int8): block 1's scale covers elements 32..63
    gguf_poke_expect("blk.0.attn_output.weight", 34, &nan16, 2, "blk.0.attn_output.weight (Q8_0)",
                     "NaN or Inf at element 32");
    gguf_poke_expect("blk.1.attn_k.weight", 2 * 5, &inf16, 2, "blk.1.attn_k.weight", "+Inf at element 5");
    gguf_poke_expect("blk.1.attn_v.weight", 2 * 7, &nan_bf16, 2, "blk.1.attn_v.weight", "NaN at element 7");
    uint16_t h[70000];
    for (int i = 0; i < 70000; i++) h[i] = rc_f32_to_f16((float)(i % 100) - 50.0f);
    cr_assert_eq(rc_first_nonfinite_f16(h, 70000), -1);
    h[66000] = 0xfc00; // -Inf
    cr_assert_eq(rc_first_nonfinite_f16(h, 70000), 66000);
    for (int i = 0; i < 70000; i++) h[i] = rc_f32_to_bf16((float)(i % 100) * 1e30f);
    cr_assert_eq(rc_first_nonfinite_bf16(h, 70000), -1);
    h[3] = 0xff80;
    cr_assert_eq(rc_first_nonfinite_bf16(h, 70000), 3);
}

Test(finite, value_model_with_nan_is_refused) {
    char *dir = copy_to_tmp(RC_FIXTURES "/value/mlp2.safetensors", "v.safetensors");
    char path[4096];
    snprintf(path, sizeof path, "%s/v.safetensors", dir);
    size_t esz;
    int bf16;
    size_t off = st_offset(path, "fc2.bias", 0, &esz, &bf16);
    cr_assert_eq(esz, 4u);
    poke(path, off, 4, 0, NAN);
    rc_value_mlp v;
    expect_refused(rc_value_load(&v, path), "fc2.bias", "NaN at element 0");
    remove_tmp(dir);
}

// Value models of the wrong shape: each message names the width expected and why (issue 16: two
// messages printed the wrong expected width).
static void write_value(const char *path, int64_t w1r, int64_t w1c, int64_t b1, int64_t w2r, int64_t w2c,
                        int64_t b2) {
    static float zeros[4096];
    rc_st_entry e[4] = {
        {.name = "fc1.weight", .dtype = RC_DT_F32, .ndim = 2, .shape = {w1r, w1c}, .data = zeros},
        {.name = "fc1.bias", .dtype = RC_DT_F32, .ndim = 1, .shape = {b1}, .data = zeros},
        {.name = "fc2.weight", .dtype = RC_DT_F32, .ndim = 2, .shape = {w2r, w2c}, .data = zeros},
        {.name = "fc2.bias", .dtype = RC_DT_F32, .ndim = 1, .shape = {b2}, .data = zeros}};
    cr_assert_eq(rc_st_write(path, e, 4, NULL), 0, "%s", rc_last_error());
}

Test(finite, value_shape_messages_name_the_expected_width) {
    char path[] = "/tmp/rc_value_shape_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    rc_value_mlp v;
    write_value(path, 16, 8, 16, 1, 12, 1);
    expect_refused(rc_value_load(&v, path), "fc2.weight has shape [1, 12]; expected [out, 16]",
                   "the 16 outputs of fc1");
    write_value(path, 16, 8, 12, 1, 16, 1);
    expect_refused(rc_value_load(&v, path), "fc1.bias must have shape [16] (the outputs of fc1.weight)",
                   "first 12");
    write_value(path, 16, 8, 16, 1, 16, 1);
    cr_assert_eq(rc_value_load(&v, path), 0, "%s", rc_last_error());
    cr_assert_eq(v.dims[0], 8);
    rc_value_free(&v);
    unlink(path);
}
