// BERT encoder forward on the CPU, fp32: embeddings (word + position + type 0) -> LayerNorm ->
// L x [self-attention (all positions) -> dense -> LayerNorm(x + .) -> GELU FFN -> LayerNorm(x + .)]
// -> pooler tanh(W h[0] + b). Weights from an HF BertModel checkpoint (safetensors).
#include "engine/bert.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "base/safetensors.h"
#include "kernels/cpu/encoder.h"
#include "kernels/cpu/matmul.h"

const rc_bert_config *rc_bert_cfg(const rc_bert *m) { return &m->c; }
int rc_bert_has_pooler(const rc_bert *m) { return m->pool_w != NULL; }

// ---- config.json ------------------------------------------------------------------------------

static int cfg_int(const cJSON *o, const char *path, const char *key, int dflt, int lo, int hi,
                   int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) {
        if (dflt < 0) return rc_fail("%s: required field \"%s\" is missing", path, key);
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi)
        return rc_fail("%s: \"%s\" must be an integer in [%d, %d]", path, key, lo, hi);
    *out = (int)v->valuedouble;
    return 0;
}

static int parse_config(const char *dir, rc_bert_config *c) {
    char path[4096];
    if (rc_path_join(path, sizeof path, dir, "config.json")) return rc_fail("%s: path too long", dir);
    size_t len;
    char *txt = rc_read_file(path, &len);
    if (!txt) return -1;
    cJSON *o = cJSON_ParseWithLength(txt, len);
    free(txt);
    if (!o) return rc_fail("%s: not valid JSON", path);
    int rc = -1;
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(o, "model_type");
    if (cJSON_IsString(mt) && strcmp(mt->valuestring, "bert")) {
        rc_fail("%s: model_type \"%s\" is not a BERT encoder (expected \"bert\")", path,
                mt->valuestring);
        goto done;
    }
    if (cfg_int(o, path, "vocab_size", -1, 1, 1 << 22, &c->vocab) ||
        cfg_int(o, path, "hidden_size", -1, 1, 1 << 14, &c->d) ||
        cfg_int(o, path, "num_hidden_layers", -1, 1, 256, &c->n_layers) ||
        cfg_int(o, path, "num_attention_heads", -1, 1, 1024, &c->n_heads) ||
        cfg_int(o, path, "intermediate_size", -1, 1, 1 << 16, &c->d_ff) ||
        cfg_int(o, path, "max_position_embeddings", 512, 1, 1 << 16, &c->max_pos) ||
        cfg_int(o, path, "type_vocab_size", 2, 1, 1 << 10, &c->n_types))
        goto done;
    if (c->d % c->n_heads) {
        rc_fail("%s: hidden_size %d is not a multiple of num_attention_heads %d", path, c->d,
                c->n_heads);
        goto done;
    }
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(o, "layer_norm_eps");
    c->eps = cJSON_IsNumber(eps) ? (float)eps->valuedouble : 1e-12f;
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(o, "hidden_act");
    const char *a = cJSON_IsString(act) ? act->valuestring : "gelu";
    if (!strcmp(a, "gelu")) c->act = RC_BERT_GELU;
    else if (!strcmp(a, "gelu_new") || !strcmp(a, "gelu_pytorch_tanh")) c->act = RC_BERT_GELU_TANH;
    else if (!strcmp(a, "relu")) c->act = RC_BERT_RELU;
    else {
        rc_fail("%s: hidden_act \"%s\" is not supported (gelu, gelu_new, gelu_pytorch_tanh, relu)",
                path, a);
        goto done;
    }
    const cJSON *pe = cJSON_GetObjectItemCaseSensitive(o, "position_embedding_type");
    if (cJSON_IsString(pe) && strcmp(pe->valuestring, "absolute")) {
        rc_fail("%s: position_embedding_type \"%s\" is not supported (only \"absolute\")", path,
                pe->valuestring);
        goto done;
    }
    rc = 0;
done:
    cJSON_Delete(o);
    return rc;
}

// ---- weights ----------------------------------------------------------------------------------

typedef struct {
    const rc_safetensors *st;
    const char *prefix; // "" or "bert."
    float *next;        // bump pointer into the model's allocation
} loader;

static const rc_st_tensor *find_t(const loader *L, const char *name) {
    char full[256];
    snprintf(full, sizeof full, "%s%s", L->prefix, name);
    const rc_st_tensor *t = rc_st_find(L->st, full);
    // LayerNorm parameters of older checkpoints: gamma / beta
    if (!t) {
        const char *ln = strstr(name, "LayerNorm.");
        if (ln) {
            char alt[256];
            const char *what = ln + strlen("LayerNorm.");
            snprintf(alt, sizeof alt, "%s%.*sLayerNorm.%s", L->prefix, (int)(ln - name), name,
                     !strcmp(what, "weight") ? "gamma" : "beta");
            t = rc_st_find(L->st, alt);
        }
    }
    return t;
}

// Copies tensor `name` of shape (rows[, cols]) (cols 0 = 1-D) into the allocation.
static int take(loader *L, const char *name, int rows, int cols, float **dst) {
    const rc_st_tensor *t = find_t(L, name);
    if (!t) return rc_fail("%s: tensor \"%s%s\" is missing", L->st->path, L->prefix, name);
    int ok = cols ? (t->ndim == 2 && t->shape[0] == rows && t->shape[1] == cols)
                  : (t->ndim == 1 && t->shape[0] == rows);
    if (!ok) {
        char got[96] = "";
        for (int i = 0; i < t->ndim && i < 4; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? ", " : "",
                     (long long)t->shape[i]);
        return rc_fail("%s: tensor \"%s\" has shape [%s], expected [%d%s%.0d]", L->st->path,
                       t->name, got, rows, cols ? ", " : "", cols);
    }
    size_t n = (size_t)rows * (size_t)(cols ? cols : 1);
    if (rc_st_to_f32(t, L->next, n)) return rc_fail_ctx("%s: tensor \"%s\"", L->st->path, t->name);
    *dst = L->next;
    L->next += n;
    return 0;
}

int rc_bert_load(rc_bert **out, const char *dir) {
    *out = NULL;
    rc_bert *m = rc_calloc(1, sizeof *m, "bert");
    if (!m) return -1;
    rc_safetensors st = {0};
    int st_open = 0;
    if (parse_config(dir, &m->c)) goto fail;
    char path[4096];
    if (rc_path_join(path, sizeof path, dir, "model.safetensors")) {
        rc_fail("%s: path too long", dir);
        goto fail;
    }
    if (!rc_file_exists(path)) {
        char bin[4096];
        if (!rc_path_join(bin, sizeof bin, dir, "pytorch_model.bin") && rc_file_exists(bin))
            rc_fail("%s: only pytorch_model.bin is there; convert it once with "
                    "`python3 scripts/torch-to-safetensors.py %s` (weights_only loading)", dir, dir);
        else
            rc_fail("%s: model.safetensors not found (a BERT checkpoint was expected)", dir);
        goto fail;
    }
    if (rc_st_open(&st, path)) goto fail;
    st_open = 1;
    const rc_bert_config *c = &m->c;
    loader L = {.st = &st, .prefix = ""};
    if (!rc_st_find(&st, "embeddings.word_embeddings.weight") &&
        rc_st_find(&st, "bert.embeddings.word_embeddings.weight"))
        L.prefix = "bert.";
    int has_pool = find_t(&L, "pooler.dense.weight") != NULL;
    size_t d = (size_t)c->d, f = (size_t)c->d_ff;
    size_t per_layer = 4 * d * d + 4 * d + 2 * d + 2 * d * f + f + d + 2 * d;
    size_t total = ((size_t)c->vocab + (size_t)c->max_pos + (size_t)c->n_types) * d + 2 * d +
                   (size_t)c->n_layers * per_layer + (has_pool ? d * d + d : 0);
    m->mem = rc_malloc(total * sizeof(float), "bert weights");
    m->n_mem = total;
    m->layer = rc_calloc((size_t)c->n_layers, sizeof *m->layer, "bert layers");
    if (!m->mem || !m->layer) goto fail;
    L.next = m->mem;
    if (take(&L, "embeddings.word_embeddings.weight", c->vocab, c->d, &m->word) ||
        take(&L, "embeddings.position_embeddings.weight", c->max_pos, c->d, &m->pos) ||
        take(&L, "embeddings.token_type_embeddings.weight", c->n_types, c->d, &m->type) ||
        take(&L, "embeddings.LayerNorm.weight", c->d, 0, &m->ln_w) ||
        take(&L, "embeddings.LayerNorm.bias", c->d, 0, &m->ln_b))
        goto fail;
    for (int l = 0; l < c->n_layers; l++) {
        rc_bert_layer *y = &m->layer[l];
        char n[24][96];
        static const char *const fmt[16] = {
            "attention.self.query.weight", "attention.self.query.bias",
            "attention.self.key.weight",   "attention.self.key.bias",
            "attention.self.value.weight", "attention.self.value.bias",
            "attention.output.dense.weight", "attention.output.dense.bias",
            "attention.output.LayerNorm.weight", "attention.output.LayerNorm.bias",
            "intermediate.dense.weight",   "intermediate.dense.bias",
            "output.dense.weight",         "output.dense.bias",
            "output.LayerNorm.weight",     "output.LayerNorm.bias"};
        for (int k = 0; k < 16; k++) snprintf(n[k], sizeof n[k], "encoder.layer.%d.%s", l, fmt[k]);
        // query, key and value weights back to back: one (3 d, d) projection, one (3 d) bias
        float *wk, *wv, *bk, *bv;
        if (take(&L, n[0], c->d, c->d, &y->wqkv) || take(&L, n[2], c->d, c->d, &wk) ||
            take(&L, n[4], c->d, c->d, &wv) || take(&L, n[1], c->d, 0, &y->bqkv) ||
            take(&L, n[3], c->d, 0, &bk) || take(&L, n[5], c->d, 0, &bv) ||
            take(&L, n[6], c->d, c->d, &y->wo) || take(&L, n[7], c->d, 0, &y->bo) ||
            take(&L, n[8], c->d, 0, &y->ln1_w) || take(&L, n[9], c->d, 0, &y->ln1_b) ||
            take(&L, n[10], c->d_ff, c->d, &y->wi) || take(&L, n[11], c->d_ff, 0, &y->bi) ||
            take(&L, n[12], c->d, c->d_ff, &y->wo2) || take(&L, n[13], c->d, 0, &y->bo2) ||
            take(&L, n[14], c->d, 0, &y->ln2_w) || take(&L, n[15], c->d, 0, &y->ln2_b))
            goto fail;
    }
    if (has_pool && (take(&L, "pooler.dense.weight", c->d, c->d, &m->pool_w) ||
                     take(&L, "pooler.dense.bias", c->d, 0, &m->pool_b)))
        goto fail;
    rc_st_close(&st);
    *out = m;
    return 0;
fail:
    if (st_open) rc_st_close(&st);
    rc_bert_free(m);
    return -1;
}

void rc_bert_free(rc_bert *m) {
    if (!m) return;
    free(m->mem);
    free(m->layer);
    free(m);
}

// ---- forward ------------------------------------------------------------------------------------

int rc_bert_check_batch(const rc_bert *m, int n_seq, const int *ids, const int *types,
                        const int *lens, rc_bert_pool pool) {
    const rc_bert_config *c = &m->c;
    if (n_seq < 1) return rc_fail("bert: empty batch");
    if (pool == RC_BERT_POOLER && !m->pool_w)
        return rc_fail("bert: the checkpoint has no pooler (pooler.dense.*), the pooled output "
                       "is not available");
    size_t t = 0;
    for (int s = 0; s < n_seq; s++) {
        if (lens[s] < 1) return rc_fail("bert: sequence %d is empty", s);
        if (lens[s] > c->max_pos)
            return rc_fail("bert: sequence %d: %d tokens exceed max_position_embeddings %d", s,
                           lens[s], c->max_pos);
        for (int i = 0; i < lens[s]; i++, t++) {
            if (ids[t] < 0 || ids[t] >= c->vocab)
                return rc_fail("bert: sequence %d: token id %d at position %d is outside the "
                               "vocabulary (%d)", s, ids[t], i, c->vocab);
            if (types && (types[t] < 0 || types[t] >= c->n_types))
                return rc_fail("bert: sequence %d: token type %d at position %d is outside the "
                               "%d types", s, types[t], i, c->n_types);
        }
    }
    return 0;
}

static rc_act act_of(rc_bert_act a) {
    return a == RC_BERT_GELU ? RC_ACT_GELU : a == RC_BERT_GELU_TANH ? RC_ACT_GELU_TANH : RC_ACT_RELU;
}

// The last layer's states x (n, d) of a checked ragged batch (sequences seq[], n = seq[n_seq]).
static int encode_states(const rc_bert *m, int n_seq, const int *ids, const int *types,
                         const int *pos, const int *seq, float *x) {
    const rc_bert_config *c = &m->c;
    const int n = seq[n_seq], d = c->d, f = c->d_ff, hd = c->d / c->n_heads;
    int longest = 0;
    for (int s = 0; s < n_seq; s++)
        if (seq[s + 1] - seq[s] > longest) longest = seq[s + 1] - seq[s];
    const size_t nd = (size_t)n * d;
    size_t need = 3 * nd + nd + (size_t)n * f + (size_t)c->n_heads * longest * longest;
    float *buf = rc_malloc(need * sizeof(float), "bert activations");
    int *zeros = types ? NULL : rc_calloc((size_t)n, sizeof(int), "bert token types");
    if (!buf || (!types && !zeros)) {
        free(buf);
        return -1;
    }
    float *qkv = buf, *ctx = qkv + 3 * nd, *ff = ctx + nd, *scores = ff + (size_t)n * f;
    rc_cpu_encoder_embed(x, m->word, m->pos, m->type, m->ln_w, m->ln_b, ids, types ? types : zeros,
                         pos, n, d, c->eps);
    for (int l = 0; l < c->n_layers; l++) {
        const rc_bert_layer *y = &m->layer[l];
        rc_cpu_matmul(qkv, x, y->wqkv, n, d, 3 * d);
        rc_cpu_bias_act(qkv, y->bqkv, n, 3 * d, RC_ACT_NONE);
        rc_cpu_attention_bidir(ctx, qkv, seq, n_seq, c->n_heads, hd, scores);
        float *o = qkv; // free again: the attention output projection
        rc_cpu_matmul(o, ctx, y->wo, n, d, d);
        rc_cpu_add_layernorm(x, o, y->bo, y->ln1_w, y->ln1_b, n, d, c->eps);
        rc_cpu_matmul(ff, x, y->wi, n, d, f);
        rc_cpu_bias_act(ff, y->bi, n, f, act_of(c->act));
        rc_cpu_matmul(o, ff, y->wo2, n, f, d);
        rc_cpu_add_layernorm(x, o, y->bo2, y->ln2_w, y->ln2_b, n, d, c->eps);
    }
    free(buf);
    free(zeros);
    return 0;
}

int rc_bert_encode_cpu(const rc_bert *m, int n_seq, const int *ids, const int *types,
                       const int *pos, const int *seq, rc_bert_pool pool, float *out) {
    const int d = m->c.d;
    float *x = rc_malloc((size_t)seq[n_seq] * d * sizeof(float), "bert states");
    if (!x || encode_states(m, n_seq, ids, types, pos, seq, x)) {
        free(x);
        return -1;
    }
    for (int s = 0; s < n_seq; s++) memcpy(out + (size_t)s * d, x + (size_t)seq[s] * d, d * sizeof(float));
    free(x);
    if (pool == RC_BERT_POOLER) {
        float *cls = rc_malloc((size_t)n_seq * d * sizeof(float), "bert pooler");
        if (!cls) return -1;
        memcpy(cls, out, (size_t)n_seq * d * sizeof(float));
        rc_cpu_matmul(out, cls, m->pool_w, n_seq, d, d);
        rc_cpu_bias_act(out, m->pool_b, n_seq, d, RC_ACT_TANH);
        free(cls);
    }
    return 0;
}

int rc_bert_forward(const rc_bert *m, const int *ids, int n, float *hidden, float *pooled) {
    if (n < 1) return rc_fail("bert: empty input");
    if (rc_bert_check_batch(m, 1, ids, NULL, &n, pooled ? RC_BERT_POOLER : RC_BERT_CLS)) return -1;
    const int d = m->c.d;
    int seq[2] = {0, n};
    int *pos = rc_malloc((size_t)n * sizeof(int), "bert positions");
    float *x = rc_malloc((size_t)n * d * sizeof(float), "bert states");
    int rc = -1;
    if (!pos || !x) goto done;
    for (int i = 0; i < n; i++) pos[i] = i;
    if (encode_states(m, 1, ids, NULL, pos, seq, x)) goto done;
    if (hidden) memcpy(hidden, x, (size_t)n * d * sizeof(float));
    if (pooled) {
        rc_cpu_matmul(pooled, x, m->pool_w, 1, d, d);
        rc_cpu_bias_act(pooled, m->pool_b, 1, d, RC_ACT_TANH);
    }
    rc = 0;
done:
    free(pos);
    free(x);
    return rc;
}
