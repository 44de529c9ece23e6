// Loads a LLaMA-architecture GGUF file into an rc_model: llama.* metadata -> rc_config; every
// matrix is used in place from the mapped file in its stored type (rc_qmat), only the norm
// vectors are converted to fp32. llama.cpp's converter permutes the rows of attn_q / attn_k per
// head from HF's rotate-half order [h][2][hd/2] to interleaved [h][hd/2][2]; the matrices record
// that (perm_hd) and the kernels write HF's order, so RoPE is the HF one.
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "base/finite.h"
#include "base/gguf.h"
#include "engine/model.h"
#include "kernels/cpu/dequant.h"

// Closes and frees the rc_gguf kept in m->gguf (no-op when NULL); rc_model_free does the same.
void rc_model_gguf_release(rc_model *m);

void rc_model_gguf_release(rc_model *m) {
    if (!m || !m->gguf) return;
    rc_gguf_close((rc_gguf *)m->gguf);
    free(m->gguf);
    m->gguf = NULL;
}

static int get_int(const rc_gguf *g, const char *key, int required, int def, int lo, int hi,
                   int *out) {
    uint64_t v;
    if (rc_gguf_get_u64(g, key, &v) != 0) {
        if (rc_gguf_find(g, key)) return -1; // present but not an integer: error already set
        if (required) return rc_fail("%s: required metadata '%s' is missing", g->path, key);
        *out = def;
        return 0;
    }
    if (v < (uint64_t)lo || v > (uint64_t)hi)
        return rc_fail("%s: metadata '%s' = %llu is out of range [%d, %d]", g->path, key,
                       (unsigned long long)v, lo, hi);
    *out = (int)v;
    return 0;
}

static int get_float(const rc_gguf *g, const char *key, float def, float *out) {
    if (rc_gguf_get_f32(g, key, out) != 0) {
        if (rc_gguf_find(g, key)) return -1; // present but not a number: error already set
        *out = def;
    }
    return 0;
}

// Fills cfg from the llama.* metadata of g. Public through rc_model_load_gguf only.
static int config_from_gguf(const rc_gguf *g, rc_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    char *arch = rc_gguf_get_str(g, "general.architecture");
    if (!arch) return rc_fail("%s: metadata 'general.architecture' is missing", g->path);
    if (strcmp(arch, "llama") != 0) {
        rc_fail("%s: architecture '%s' is not supported (only 'llama': LLaMA, Mistral-style and "
                "SmolLM models converted by llama.cpp)",
                g->path, arch);
        free(arch);
        return -1;
    }
    free(arch);
    cfg->arch = RC_ARCH_CAUSAL_LM;
    if (get_int(g, "llama.embedding_length", 1, 0, 1, 1 << 20, &cfg->hidden_size) ||
        get_int(g, "llama.feed_forward_length", 1, 0, 1, 1 << 22, &cfg->intermediate_size) ||
        get_int(g, "llama.block_count", 1, 0, 1, 4096, &cfg->num_hidden_layers) ||
        get_int(g, "llama.attention.head_count", 1, 0, 1, 4096, &cfg->num_attention_heads))
        return -1;
    if (get_int(g, "llama.attention.head_count_kv", 0, cfg->num_attention_heads, 1, 4096,
                &cfg->num_key_value_heads) ||
        get_int(g, "llama.context_length", 0, 2048, 1, 1 << 24, &cfg->max_position_embeddings))
        return -1;
    if (cfg->num_attention_heads % cfg->num_key_value_heads != 0)
        return rc_fail("%s: head_count %d is not a multiple of head_count_kv %d", g->path,
                       cfg->num_attention_heads, cfg->num_key_value_heads);
    int hd_def = cfg->hidden_size / cfg->num_attention_heads;
    if (get_int(g, "llama.attention.key_length", 0, hd_def, 2, 1 << 16, &cfg->head_dim)) return -1;
    int vlen = 0;
    if (get_int(g, "llama.attention.value_length", 0, cfg->head_dim, 1, 1 << 16, &vlen)) return -1;
    if (vlen != cfg->head_dim)
        return rc_fail("%s: attention key_length %d != value_length %d is not supported", g->path,
                       cfg->head_dim, vlen);
    if (cfg->head_dim % 2 != 0)
        return rc_fail("%s: head_dim %d is odd; RoPE needs an even head_dim", g->path, cfg->head_dim);
    int rope_dim = 0;
    if (get_int(g, "llama.rope.dimension_count", 0, cfg->head_dim, 1, 1 << 16, &rope_dim)) return -1;
    if (rope_dim != cfg->head_dim)
        return rc_fail("%s: partial RoPE (rope.dimension_count %d < head_dim %d) is not supported",
                       g->path, rope_dim, cfg->head_dim);
    if (get_float(g, "llama.attention.layer_norm_rms_epsilon", 1e-5f, &cfg->rms_norm_eps) ||
        get_float(g, "llama.rope.freq_base", 10000.0f, &cfg->rope_theta))
        return -1;
    if (!(cfg->rms_norm_eps > 0.0f && cfg->rms_norm_eps < 1.0f))
        return rc_fail("%s: rms norm eps %g is out of range", g->path, (double)cfg->rms_norm_eps);
    if (!(cfg->rope_theta > 1.0f))
        return rc_fail("%s: rope freq_base %g is out of range", g->path, (double)cfg->rope_theta);
    char *scaling = rc_gguf_get_str(g, "llama.rope.scaling.type");
    if (scaling) {
        int ok = strcmp(scaling, "none") == 0;
        if (!ok) rc_fail("%s: rope scaling '%s' is not supported for GGUF files", g->path, scaling);
        free(scaling);
        if (!ok) return -1;
    }
    if (rc_gguf_find_tensor(g, "rope_freqs.weight"))
        return rc_fail("%s: the file carries rope_freqs (Llama-3.1 RoPE scaling), which the GGUF "
                       "loader does not support; load the HF directory instead",
                       g->path);

    const rc_gguf_tensor *emb = rc_gguf_find_tensor(g, "token_embd.weight");
    if (!emb) return rc_fail("%s: tensor 'token_embd.weight' is missing", g->path);
    if (emb->n_dims != 2 || emb->ne[1] > (1u << 24))
        return rc_fail("%s: tensor 'token_embd.weight' has an unexpected shape", g->path);
    if (get_int(g, "llama.vocab_size", 0, (int)emb->ne[1], 1, 1 << 24, &cfg->vocab_size)) return -1;
    const rc_gguf_kv *toks = rc_gguf_find(g, "tokenizer.ggml.tokens");
    if (!rc_gguf_find(g, "llama.vocab_size") && toks && toks->type == RC_GGUF_ARRAY &&
        toks->arr_n != emb->ne[1])
        cfg->vocab_size = (int)emb->ne[1];
    // llama.cpp takes the vocabulary size from the token list: a list of another size would leave
    // ids the model emits without text, or give the embedding ids it does not have
    if (toks && toks->type == RC_GGUF_ARRAY && toks->arr_n != (uint64_t)cfg->vocab_size)
        return rc_fail("%s: tokenizer.ggml.tokens holds %llu tokens but the model's vocabulary "
                       "(llama.vocab_size, token_embd.weight) has %d entries; they must agree",
                       g->path, (unsigned long long)toks->arr_n, cfg->vocab_size);
    cfg->tie_word_embeddings = rc_gguf_find_tensor(g, "output.weight") == NULL;

    cfg->bos_token_id = cfg->pad_token_id = -1;
    int v = -1;
    if (get_int(g, "tokenizer.ggml.bos_token_id", 0, -1, 0, 1 << 24, &v) == 0) cfg->bos_token_id = v;
    else return -1;
    if (get_int(g, "tokenizer.ggml.padding_token_id", 0, -1, 0, 1 << 24, &v) == 0) cfg->pad_token_id = v;
    else return -1;
    const char *eos_keys[] = {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"};
    for (int i = 0; i < 2; i++) {
        if (get_int(g, eos_keys[i], 0, -1, 0, 1 << 24, &v)) return -1;
        int dup = 0;
        for (int j = 0; j < cfg->n_eos; j++) dup |= cfg->eos_token_ids[j] == v;
        if (v >= 0 && !dup && cfg->n_eos < RC_MAX_EOS) cfg->eos_token_ids[cfg->n_eos++] = v;
    }
    cfg->num_labels = 0;
    snprintf(cfg->source, sizeof cfg->source, "%s", g->path);
    return 0;
}

// Checks tensor `name` against ggml shape (cols, rows) and returns it; NULL with an error set.
static const rc_gguf_tensor *find_checked(const rc_gguf *g, const char *name, int64_t rows,
                                          int64_t cols) {
    const rc_gguf_tensor *t = rc_gguf_find_tensor(g, name);
    if (!t) return rc_fail("%s: tensor '%s' is missing", g->path, name), NULL;
    int want_dims = rows == 1 ? 1 : 2;
    int dims_ok = (int)t->n_dims == want_dims ||
                  ((int)t->n_dims == 2 && rows == 1 && t->ne[1] == 1);
    if (!dims_ok || (int64_t)t->ne[0] != cols || (rows > 1 && (int64_t)t->ne[1] != rows)) {
        if (t->n_dims == 1)
            rc_fail("%s: tensor '%s' has shape [%llu], expected [%lld, %lld] (ggml order)", g->path,
                    name, (unsigned long long)t->ne[0], (long long)cols, (long long)rows);
        else
            rc_fail("%s: tensor '%s' has ggml shape [%llu, %llu%s], expected [%lld%s%lld]", g->path,
                    name, (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
                    t->n_dims > 2 ? ", ..." : "", (long long)cols, rows > 1 ? ", " : "",
                    rows > 1 ? (long long)rows : 0LL);
        return NULL;
    }
    if (!rc_ggml_can_dequant(t->ggml_type))
        return rc_fail("%s: tensor '%s' has type %s (id %u), which this engine cannot dequantize "
                       "(supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, "
                       "Q4_K, Q5_K, Q6_K)",
                       g->path, name, rc_ggml_type_name(t->ggml_type), t->ggml_type),
               NULL;
    return t;
}

// NaN/Inf in a tensor kept in its stored type: float types scanned on their bits; block-quantized
// ones dequantized a row at a time (their scales are halves and can hold NaN/Inf), in parallel.
static int check_finite(const rc_gguf *g, const rc_gguf_tensor *t, const char *name, int64_t rows,
                        int64_t cols) {
    if (!rc_weight_scan_enabled()) return 0;
    const size_t n = (size_t)rows * (size_t)cols;
    if (t->ggml_type == RC_GGML_F32) return rc_check_finite_typed(g->path, name, RC_FINITE_F32, t->data, n);
    if (t->ggml_type == RC_GGML_F16) return rc_check_finite_typed(g->path, name, RC_FINITE_F16, t->data, n);
    if (t->ggml_type == RC_GGML_BF16) return rc_check_finite_typed(g->path, name, RC_FINITE_BF16, t->data, n);
    int be, bb;
    if (rc_ggml_type_geometry(t->ggml_type, &be, &bb)) return -1;
    // Block types whose only floats are f16 scales at fixed offsets (the quants are integers and a
    // finite scale times them stays finite): only the scales are read.
    static const struct { uint32_t type; int off[2], n; } scales[] = {
        {RC_GGML_Q4_0, {0}, 1},      {RC_GGML_Q4_1, {0, 2}, 2},   {RC_GGML_Q5_0, {0}, 1},
        {RC_GGML_Q5_1, {0, 2}, 2},   {RC_GGML_Q8_0, {0}, 1},      {RC_GGML_Q2_K, {80, 82}, 2},
        {RC_GGML_Q3_K, {108}, 1},    {RC_GGML_Q4_K, {0, 2}, 2},   {RC_GGML_Q5_K, {0, 2}, 2},
        {RC_GGML_Q6_K, {208}, 1}};
    for (size_t k = 0; k < sizeof scales / sizeof scales[0]; k++) {
        if (scales[k].type != t->ggml_type) continue;
        const size_t nblocks = n / (size_t)be;
        const uint8_t *p = t->data;
        int any = 0;
#pragma omp parallel for schedule(static) reduction(| : any) if (nblocks >= (1u << 20))
        for (size_t b = 0; b < nblocks; b++)
            for (int j = 0; j < scales[k].n; j++) {
                uint16_t h;
                memcpy(&h, p + b * (size_t)bb + scales[k].off[j], 2);
                any |= (h & 0x7c00) == 0x7c00;
            }
        if (!any) return 0;
        break; // a bad scale: find the exact element below
    }
    const size_t row_bytes = (size_t)(cols / be) * (size_t)bb;
    int64_t bad = -1;
#pragma omp parallel if (n >= ((size_t)1 << 22))
    {
        float *buf = malloc(sizeof(float) * (size_t)cols);
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            if (!buf || bad >= 0) continue;
            rc_dequant_row(t->ggml_type, (const uint8_t *)t->data + (size_t)r * row_bytes, buf, cols);
            int64_t i = rc_first_nonfinite(buf, (size_t)cols);
            if (i >= 0) {
#pragma omp critical(rc_gguf_nonfinite)
                if (bad < 0 || r * cols + i < bad) bad = r * cols + i;
            }
        }
        free(buf);
    }
    if (bad < 0) return 0;
    return rc_fail("%s: tensor %s (%s) holds NaN or Inf at element %lld (of %zu): the weights are corrupt "
                   "(--skip-weight-scan loads them anyway)",
                   g->path, name, rc_ggml_type_name(t->ggml_type), (long long)bad, n);
}

// A matrix used in place from the mapping. perm_heads > 0: llama.cpp's per-head row interleave
// (Q/K) with that many heads, undone by the kernels when they write their outputs.
static int load_matrix(const rc_gguf *g, const char *name, int64_t rows, int64_t cols, rc_qmat *dst,
                       int perm_heads) {
    const rc_gguf_tensor *t = find_checked(g, name, rows, cols);
    if (!t) return -1;
    int64_t hd = 0;
    if (perm_heads > 0) {
        hd = rows / perm_heads;
        if (hd * perm_heads != rows || hd % 2 != 0)
            return rc_fail("%s: tensor '%s' has %lld rows, not %d heads of an even size", g->path,
                           name, (long long)rows, perm_heads);
    }
    if (rows > (1 << 30) || cols > (1 << 30))
        return rc_fail("%s: tensor '%s' is too large", g->path, name);
    if (rc_qmat_init(dst, t->data, t->ggml_type, (int)rows, (int)cols, (int)hd))
        return rc_fail_ctx("%s: tensor '%s'", g->path, name);
    return check_finite(g, t, name, rows, cols);
}

// A vector (norm weights) dequantized to fp32 into dst.
static int load_vector(const rc_gguf *g, const char *name, int64_t n, float *dst) {
    const rc_gguf_tensor *t = find_checked(g, name, 1, n);
    if (!t) return -1;
    if (rc_dequant_row(t->ggml_type, t->data, dst, n)) return rc_fail_ctx("%s: tensor '%s'", g->path, name);
    return rc_check_finite(g->path, name, dst, (size_t)n);
}

static int load_weights(const rc_gguf *g, rc_model *m) {
    const rc_config *c = &m->cfg;
    const int64_t d = c->hidden_size, ff = c->intermediate_size, hd = c->head_dim;
    const int64_t qd = (int64_t)c->num_attention_heads * hd, kvd = (int64_t)c->num_key_value_heads * hd;
    rc_weights *w = &m->w;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        const char *n = g->tensors[i].name;
        size_t ln = strlen(n);
        if (ln > 5 && strcmp(n + ln - 5, ".bias") == 0)
            return rc_fail("%s: tensor '%s': bias tensors are not part of the LLaMA architecture "
                           "and are not supported",
                           g->path, n);
    }
    // The fp32 arena holds only the norm vectors; the matrices stay in the mapping.
    const size_t n_vec = (size_t)(2 * c->num_hidden_layers + 1) * (size_t)d;
    m->w.layers = rc_calloc((size_t)c->num_hidden_layers, sizeof *m->w.layers, "layer table");
    m->w.heads = rc_calloc(3, sizeof *m->w.heads, "weight table");
    m->arena = rc_malloc(n_vec * sizeof(float), "norm weights");
    if (!m->w.layers || !m->w.heads || !m->arena) return -1;
    m->arena_bytes = n_vec * sizeof(float);
    float *vp = m->arena;
    w->embed_tokens = &w->heads[0];
    w->lm_head = c->tie_word_embeddings ? &w->heads[0] : &w->heads[1];
    w->score = NULL;
    w->norm = vp + 2 * (size_t)c->num_hidden_layers * d;
    if (load_matrix(g, "token_embd.weight", c->vocab_size, d, w->embed_tokens, 0) ||
        load_vector(g, "output_norm.weight", d, w->norm))
        return -1;
    if (!c->tie_word_embeddings &&
        load_matrix(g, "output.weight", c->vocab_size, d, w->lm_head, 0))
        return -1;
    size_t bytes = m->arena_bytes + rc_qmat_bytes(w->embed_tokens) +
                   (c->tie_word_embeddings ? 0 : rc_qmat_bytes(w->lm_head));
    for (int l = 0; l < c->num_hidden_layers; l++) {
        rc_layer_weights *L = &w->layers[l];
        L->attn_norm = vp + 2 * (size_t)l * d;
        L->mlp_norm = vp + (2 * (size_t)l + 1) * d;
        struct {
            const char *suffix;
            int64_t rows, cols;
            rc_qmat *mat;
            float *vec;
            int perm;
        } items[] = {
            {"attn_norm", 1, d, NULL, L->attn_norm, 0},
            {"attn_q", qd, d, &L->wq, NULL, c->num_attention_heads},
            {"attn_k", kvd, d, &L->wk, NULL, c->num_key_value_heads},
            {"attn_v", kvd, d, &L->wv, NULL, 0},
            {"attn_output", d, qd, &L->wo, NULL, 0},
            {"ffn_norm", 1, d, NULL, L->mlp_norm, 0},
            {"ffn_gate", ff, d, &L->w_gate, NULL, 0},
            {"ffn_up", ff, d, &L->w_up, NULL, 0},
            {"ffn_down", d, ff, &L->w_down, NULL, 0},
        };
        for (size_t k = 0; k < sizeof items / sizeof items[0]; k++) {
            char name[128];
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, items[k].suffix);
            if (items[k].vec ? load_vector(g, name, items[k].cols, items[k].vec)
                             : load_matrix(g, name, items[k].rows, items[k].cols, items[k].mat,
                                           items[k].perm))
                return -1;
            if (items[k].mat) bytes += rc_qmat_bytes(items[k].mat);
        }
    }
    m->weight_bytes = bytes;
    return 0;
}

int rc_model_load_gguf(const char *path, rc_model *m) {
    memset(m, 0, sizeof *m);
    rc_gguf *g = rc_calloc(1, sizeof *g, "gguf reader");
    if (!g) return -1;
    if (rc_gguf_open(g, path) != 0) {
        free(g);
        return -1;
    }
    m->gguf = g;
    if (config_from_gguf(g, &m->cfg) != 0) {
        rc_model_gguf_release(m);
        return -1;
    }
    if (load_weights(g, m) != 0) {
        rc_model_free(m);
        rc_model_gguf_release(m);
        return -1;
    }
    return 0;
}
