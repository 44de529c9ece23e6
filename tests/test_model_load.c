// HF model directory loading: checkpoints written by transformers' save_pretrained (F32, BF16
// tied, sharded, F16 LlamaForSequenceClassification) and an UltraRM-style regression head, with
// loaded values compared to numpy dumps; then every failure mode on mutated copies in a temp dir.
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/common.h"
#include "engine/model.h"
#include "base/npy.h"
#include "base/safetensors.h"

#include "tests/expect_fail.h"

#define FIX RC_FIXTURES "/loader/"

static char g_dir[512];

static void make_tmp(void) {
    const char *t = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/rc_load_XXXXXX", t && *t ? t : "/tmp");
    cr_assert(mkdtemp(g_dir), "mkdtemp failed");
}

static void rm_tmp(void) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
}

TestSuite(load, .init = make_tmp, .fini = rm_tmp);

// Copies the files of fixture `name` into g_dir/name (skipping ref_*.npy); returns that path.
static const char *copy_fixture(const char *name) {
    static char dst[1024];
    char src[1024];
    snprintf(src, sizeof src, FIX "%s", name);
    snprintf(dst, sizeof dst, "%s/%s", g_dir, name);
    cr_assert(mkdir(dst, 0755) == 0 || rc_is_dir(dst));
    DIR *d = opendir(src);
    cr_assert(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !strncmp(e->d_name, "ref_", 4)) continue;
        char a[2048], b[2048];
        snprintf(a, sizeof a, "%s/%s", src, e->d_name);
        snprintf(b, sizeof b, "%s/%s", dst, e->d_name);
        size_t len;
        char *buf = rc_read_file(a, &len);
        cr_assert(buf, "%s", rc_last_error());
        cr_assert_eq(rc_write_file_atomic(b, buf, len), 0);
        free(buf);
    }
    closedir(d);
    return dst;
}

static void write_text(const char *dir, const char *file, const char *text) {
    char p[2048];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    cr_assert_eq(rc_write_file_atomic(p, text, strlen(text)), 0);
}

// Replaces `what` by `with` in dir/file (first occurrence).
static void edit_text(const char *dir, const char *file, const char *what, const char *with) {
    char p[2048];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    char *t = rc_read_file(p, NULL);
    cr_assert(t);
    char *at = strstr(t, what);
    cr_assert(at, "%s not in %s", what, p);
    size_t n = strlen(t) + strlen(with) + 1;
    char *o = malloc(n);
    snprintf(o, n, "%.*s%s%s", (int)(at - t), t, with, at + strlen(what));
    cr_assert_eq(rc_write_file_atomic(p, o, strlen(o)), 0);
    free(o);
    free(t);
}

typedef enum { KEEP, DROP, SHRINK_COLS, AS_I32 } mutation;

// Rewrites dir/model.safetensors with tensor `name` mutated (and optionally an extra tensor).
static void rewrite_st(const char *dir, const char *name, mutation mu, const char *extra_name,
                       int64_t extra_rows, int64_t extra_cols) {
    char p[2048];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    rc_safetensors st;
    cr_assert_eq(rc_st_open(&st, p), 0, "%s", rc_last_error());
    rc_st_entry *e = calloc((size_t)st.n_tensors + 1, sizeof *e);
    int n = 0, found = 0;
    static float extra[1 << 16];
    for (int i = 0; i < st.n_tensors; i++) {
        const rc_st_tensor *t = &st.tensors[i];
        rc_st_entry x = {t->name, t->dtype, t->ndim, {0}, t->data};
        memcpy(x.shape, t->shape, sizeof x.shape);
        if (name && !strcmp(t->name, name)) {
            found = 1;
            if (mu == DROP) continue;
            if (mu == SHRINK_COLS) x.shape[x.ndim - 1] -= 1;
            if (mu == AS_I32) x.dtype = RC_DT_I32; // same size as F32: only the dtype is wrong
        }
        e[n++] = x;
    }
    cr_assert(!name || found, "%s not in the fixture", name);
    if (extra_name) {
        rc_st_entry x = {
            extra_name, RC_DT_F32, extra_cols ? 2 : 1, {extra_rows, extra_cols}, extra};
        e[n++] = x;
    }
    char q[2100];
    snprintf(q, sizeof q, "%s.new", p);
    cr_assert_eq(rc_st_write(q, e, n, NULL), 0, "%s", rc_last_error());
    free(e);
    rc_st_close(&st);
    cr_assert_eq(rename(q, p), 0);
}

// Compares m's tensor with the numpy dump ref_<name>.npy of fixture `fx` (exact: every stored
// dtype converts to fp32 exactly).
static void check_ref(const char *fx, const char *name, const float *got) {
    char p[1024];
    snprintf(p, sizeof p, FIX "%s/ref_%s.npy", fx, name);
    float *ref;
    int nd;
    int64_t s[8];
    cr_assert_eq(rc_npy_read_f32(p, &ref, &nd, s), 0, "%s", rc_last_error());
    size_t n = 1;
    for (int i = 0; i < nd; i++)
        n *= (size_t)s[i];
    cr_assert_gt(n, 0);
    int nonzero = 0;
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(got[i], ref[i], "%s/%s[%zu]: loaded %.9g, numpy %.9g", fx, name, i, got[i],
                     ref[i]);
        nonzero += ref[i] != 0;
    }
    cr_assert_gt(nonzero, (int)n / 2, "reference is mostly zeros: the test would be weak");
    free(ref);
}

// The same for a matrix kept in its stored dtype: all rows read back as fp32.
static void check_ref_mat(const char *fx, const char *name, const rc_qmat *w) {
    float *got = malloc((size_t)w->rows * w->cols * sizeof(float));
    cr_assert(got);
    rc_qmat_rows_f32(w, 0, w->rows, got);
    check_ref(fx, name, got);
    free(got);
}

static void check_backbone(const char *fx, const rc_model *m) {
    check_ref_mat(fx, "model.embed_tokens.weight", m->w.embed_tokens);
    check_ref_mat(fx, "model.layers.1.self_attn.k_proj.weight", &m->w.layers[1].wk);
    check_ref_mat(fx, "model.layers.0.mlp.down_proj.weight", &m->w.layers[0].w_down);
    check_ref(fx, "model.layers.1.post_attention_layernorm.weight", m->w.layers[1].mlp_norm);
    check_ref(fx, "model.norm.weight", m->w.norm);
}

static void check_cfg(const rc_model *m) {
    cr_assert_eq(m->cfg.hidden_size, 32);
    cr_assert_eq(m->cfg.intermediate_size, 48);
    cr_assert_eq(m->cfg.num_hidden_layers, 2);
    cr_assert_eq(m->cfg.num_attention_heads, 4);
    cr_assert_eq(m->cfg.num_key_value_heads, 2);
    cr_assert_eq(m->cfg.head_dim, 8);
    cr_assert_eq(m->cfg.vocab_size, 67);
    cr_assert_eq(m->cfg.max_position_embeddings, 128);
    cr_assert_float_eq(m->cfg.rms_norm_eps, 1e-5f, 1e-12);
    cr_assert_eq(m->cfg.bos_token_id, 1);
    cr_assert_eq(m->cfg.n_eos, 1);
    cr_assert_eq(m->cfg.eos_token_ids[0], 2);
    cr_assert_geq(m->arena_bytes, m->weight_bytes);
    cr_assert_geq(m->weight_bytes, 2 * rc_config_weight_floats(&m->cfg)); // >= 2 bytes a weight
}

Test(load, causal_f32) {
    rc_model m;
    cr_assert_eq(rc_model_load(FIX "causal_f32", &m), 0, "%s", rc_last_error());
    check_cfg(&m);
    cr_assert_eq(m.cfg.arch, RC_ARCH_CAUSAL_LM);
    cr_assert_eq(m.cfg.tie_word_embeddings, 0);
    cr_assert(m.w.lm_head && m.w.lm_head != m.w.embed_tokens);
    cr_assert_null(m.w.score);
    check_backbone("causal_f32", &m);
    check_ref_mat("causal_f32", "lm_head.weight", m.w.lm_head);
    cr_assert_eq(m.w.layers[0].wq.type, RC_GGML_F32);
    rc_model_free(&m);
    cr_assert_null(m.arena);
}

Test(load, causal_bf16_tied) {
    rc_model m;
    cr_assert_eq(rc_model_load(FIX "causal_bf16", &m), 0, "%s", rc_last_error());
    check_cfg(&m);
    cr_assert_eq(m.cfg.tie_word_embeddings, 1);
    cr_assert_eq(m.w.lm_head, m.w.embed_tokens);
    check_backbone("causal_bf16", &m);
    // kept as stored: bf16 in memory, half the bytes of fp32
    cr_assert_eq(m.w.layers[0].w_up.type, RC_GGML_BF16);
    cr_assert_eq(m.w.embed_tokens->type, RC_GGML_BF16);
    rc_model_free(&m);
}

Test(load, causal_sharded) {
    rc_model m;
    cr_assert(rc_file_exists(FIX "causal_sharded/model.safetensors.index.json"));
    cr_assert(rc_file_exists(FIX "causal_sharded/model-00002-of-00002.safetensors"));
    cr_assert_eq(rc_model_load_hf(FIX "causal_sharded", &m), 0, "%s", rc_last_error());
    check_cfg(&m);
    check_backbone("causal_sharded", &m);
    check_ref_mat("causal_sharded", "lm_head.weight", m.w.lm_head);
    rc_model_free(&m);
}

Test(load, reward_score_f16) {
    rc_model m;
    cr_assert_eq(rc_model_load(FIX "rm_score_f16", &m), 0, "%s", rc_last_error());
    check_cfg(&m);
    cr_assert_eq(m.cfg.arch, RC_ARCH_REWARD);
    cr_assert_str_eq(m.cfg.head_name, "score");
    cr_assert_eq(m.cfg.num_labels, 1);
    cr_assert_eq(m.cfg.pad_token_id, 0);
    cr_assert_null(m.w.lm_head);
    check_backbone("rm_score_f16", &m);
    check_ref_mat("rm_score_f16", "score.weight", m.w.score);
    rc_model_free(&m);
}

Test(load, reward_ultrarm_regression_head) {
    rc_model m;
    cr_assert_eq(rc_model_load(FIX "rm_ultrarm", &m), 0, "%s", rc_last_error());
    cr_assert_eq(m.cfg.arch, RC_ARCH_REWARD);
    cr_assert_str_eq(m.cfg.head_name, "regression_head");
    check_backbone("rm_ultrarm", &m);
    check_ref_mat("rm_ultrarm", "regression_head.weight", m.w.score);
    rc_model_free(&m);
}

Test(load, missing_paths) {
    rc_model m;
    EXPECT_FAIL(rc_model_load("/nonexistent/model/dir", &m), "no such file or directory");
    EXPECT_FAIL(rc_model_load("", &m), "no model path");
    EXPECT_FAIL(rc_model_load(FIX "causal_f32/config.json", &m), "not an HF model directory");
    EXPECT_FAIL(rc_model_load(g_dir, &m), "config.json not found");
    // a file with the GGUF magic goes to the GGUF loader, whatever its name
    char gg[1024];
    snprintf(gg, sizeof gg, "%s/weights.bin", g_dir);
    cr_assert_eq(rc_write_file_atomic(gg, "GGUF\3\0\0\0", 8), 0);
    cr_assert_neq(rc_model_load(gg, &m), 0);
    cr_assert_null(strstr(rc_last_error(), "not an HF model directory"), "%s", rc_last_error());
    cr_assert_str_not_empty(rc_last_error());
    const char *d = copy_fixture("causal_f32");
    char p[2048];
    snprintf(p, sizeof p, "%s/model.safetensors", d);
    cr_assert_eq(unlink(p), 0);
    EXPECT_FAIL(rc_model_load(d, &m), "neither model.safetensors nor");
}

Test(load, truncated_safetensors) {
    rc_model m;
    const char *d = copy_fixture("causal_f32");
    char p[2048];
    snprintf(p, sizeof p, "%s/model.safetensors", d);
    size_t len;
    char *buf = rc_read_file(p, &len);
    cr_assert_eq(rc_write_file_atomic(p, buf, len / 2), 0);
    EXPECT_FAIL(rc_model_load(d, &m), "model.safetensors");
    cr_assert(strstr(rc_last_error(), "past the data buffer"), "%s", rc_last_error());
    cr_assert_eq(rc_write_file_atomic(p, buf, 100), 0);
    EXPECT_FAIL(rc_model_load(d, &m), "runs past the end of the file");
    cr_assert_eq(rc_write_file_atomic(p, buf, 3), 0);
    EXPECT_FAIL(rc_model_load(d, &m), "too short");
    free(buf);
}

Test(load, corrupt_config) {
    rc_model m;
    const char *d = copy_fixture("causal_f32");
    write_text(d, "config.json", "{\"model_type\": \"llama\", ");
    EXPECT_FAIL(rc_model_load(d, &m), "not valid JSON");
    d = copy_fixture("causal_bf16");
    edit_text(d, "config.json", "LlamaForCausalLM", "GPT2LMHeadModel");
    EXPECT_FAIL(rc_model_load(d, &m), "GPT2LMHeadModel");
}

Test(load, missing_tensor) {
    rc_model m;
    const char *d = copy_fixture("causal_f32");
    rewrite_st(d, "model.layers.1.self_attn.v_proj.weight", DROP, NULL, 0, 0);
    EXPECT_FAIL(rc_model_load(d, &m), "model.layers.1.self_attn.v_proj.weight is missing");
    cr_assert_null(m.arena, "nothing leaks into m on failure");
}

Test(load, wrong_shape) {
    rc_model m;
    const char *d = copy_fixture("causal_f32");
    rewrite_st(d, "model.layers.1.mlp.up_proj.weight", SHRINK_COLS, NULL, 0, 0);
    EXPECT_FAIL(rc_model_load(d, &m), "model.layers.1.mlp.up_proj.weight: expected shape [48, 32], "
                                      "found [48, 31] in model.safetensors");
    // config disagreeing with the file: the message names the first tensor that differs
    d = copy_fixture("causal_bf16");
    edit_text(d, "config.json", "\"vocab_size\": 67", "\"vocab_size\": 68");
    EXPECT_FAIL(rc_model_load(d, &m),
                "model.embed_tokens.weight: expected shape [68, 32], found [67, 32]");
}

Test(load, unsupported_dtype) {
    rc_model m;
    const char *d = copy_fixture("causal_f32");
    rewrite_st(d, "model.norm.weight", AS_I32, NULL, 0, 0);
    EXPECT_FAIL(rc_model_load(d, &m), "model.norm.weight in model.safetensors: dtype I32 is not "
                                      "supported");
}

Test(load, untied_without_lm_head) {
    rc_model m;
    const char *d = copy_fixture("causal_f32");
    rewrite_st(d, "lm_head.weight", DROP, NULL, 0, 0);
    EXPECT_FAIL(rc_model_load(d, &m), "lm_head.weight is missing and config.json has "
                                      "tie_word_embeddings = false");
}

Test(load, sharded_failures) {
    rc_model m;
    const char *d = copy_fixture("causal_sharded");
    char p[2048];
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", d);
    cr_assert_eq(unlink(p), 0);
    EXPECT_FAIL(rc_model_load(d, &m), "model-00002-of-00002.safetensors: shard listed in");
    d = copy_fixture("causal_sharded");
    // point one tensor at the other shard, which does not hold it
    char *idx;
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", d);
    idx = rc_read_file(p, NULL);
    char *at = strstr(idx, "\"model.norm.weight\": \"model-0000");
    cr_assert(at, "index layout changed");
    at += strlen("\"model.norm.weight\": \"model-0000");
    *at = *at == '1' ? '2' : '1';
    cr_assert_eq(rc_write_file_atomic(p, idx, strlen(idx)), 0);
    free(idx);
    EXPECT_FAIL(rc_model_load(d, &m), "model.norm.weight listed in model.safetensors.index.json is "
                                      "not in its shard");
    d = copy_fixture("causal_sharded");
    edit_text(d, "model.safetensors.index.json", "\"weight_map\"", "\"weight_mop\"");
    EXPECT_FAIL(rc_model_load(d, &m), "no \"weight_map\"");
    d = copy_fixture("causal_sharded");
    edit_text(d, "model.safetensors.index.json", "model-00001-of-00002.safetensors",
              "../model-00001-of-00002.safetensors");
    EXPECT_FAIL(rc_model_load(d, &m), "not a plain file name");
}

Test(load, reward_head_problems) {
    rc_model m;
    const char *d = copy_fixture("rm_ultrarm");
    rewrite_st(d, NULL, KEEP, "regression_head.bias", 1, 0);
    EXPECT_FAIL(rc_model_load(d, &m), "regression_head.bias is present");
    d = copy_fixture("rm_score_f16");
    edit_text(d, "config.json", "\"id2label\": {", "\"num_labels\": 2, \"id2label\": {");
    EXPECT_FAIL(rc_model_load(d, &m),
                "score.weight has 1 rows but config.json says num_labels = 2");
    d = copy_fixture("rm_ultrarm");
    rewrite_st(d, "regression_head.weight", DROP, NULL, 0, 0);
    EXPECT_FAIL(rc_model_load(d, &m), "reward head missing");
}

Test(load, too_large_for_memory) {
    rc_model m;
    const char *d = copy_fixture("causal_f32");
    edit_text(d, "config.json", "\"vocab_size\": 67", "\"vocab_size\": 8000000");
    edit_text(d, "config.json", "\"intermediate_size\": 48", "\"intermediate_size\": 1000000");
    edit_text(d, "config.json", "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 1000");
    EXPECT_FAIL(rc_model_load(d, &m), "GiB");
}

Test(load, alloc_carves_consistently) {
    rc_model m;
    memset(&m, 0, sizeof m);
    cr_assert_eq(rc_config_parse_json("{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": "
                                      "\"llama\", \"hidden_size\": 16, \"intermediate_size\": 24, "
                                      "\"num_hidden_layers\": 3, \"num_attention_heads\": 4, "
                                      "\"num_key_value_heads\": 1, \"head_dim\": 8, "
                                      "\"vocab_size\": 11, \"tie_word_embeddings\": true}",
                                      &m.cfg),
                 0, "%s", rc_last_error());
    cr_assert_eq(rc_model_alloc(&m), 0, "%s", rc_last_error());
    cr_assert_eq(m.w.lm_head, m.w.embed_tokens);
    const rc_layer_weights *L = &m.w.layers[0];
    cr_assert_eq(L->wq.type, RC_GGML_F32);
    cr_assert_eq(L->wq.rows, 32);
    cr_assert_eq(L->wq.cols, 16);
    cr_assert_eq((const char *)L->wq.data, (const char *)(L->attn_norm + 16)); // 64-byte aligned
    cr_assert_eq((const char *)L->wk.data, (const char *)L->wq.data + 32 * 16 * 4);
    cr_assert_eq((const char *)L->wv.data, (const char *)L->wk.data + 8 * 16 * 4);
    cr_assert_eq((const char *)L->wo.data, (const char *)L->wv.data + 8 * 16 * 4);
    cr_assert_eq((char *)(m.w.norm + 16), (char *)m.arena + m.arena_bytes);
    rc_model_free(&m);
}
