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
#include "kernels/cpu/add.h"
#include "kernels/cpu/gelu.h"
#include "kernels/cpu/layernorm.h"
#include "kernels/cpu/matmul.h"

typedef struct {
    float *wq, *bq, *wk, *bk, *wv, *bv, *wo, *bo, *ln1_w, *ln1_b;
    float *wi, *bi, *wo2, *bo2, *ln2_w, *ln2_b;
} bert_layer;

struct rc_bert {
    rc_bert_config c;
    float *word, *pos, *type, *ln_w, *ln_b;
    bert_layer *layer;
    float *pool_w, *pool_b; // NULL without a pooler
    float *mem;             // one allocation for every tensor
};

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
        bert_layer *y = &m->layer[l];
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
        if (take(&L, n[0], c->d, c->d, &y->wq) || take(&L, n[1], c->d, 0, &y->bq) ||
            take(&L, n[2], c->d, c->d, &y->wk) || take(&L, n[3], c->d, 0, &y->bk) ||
            take(&L, n[4], c->d, c->d, &y->wv) || take(&L, n[5], c->d, 0, &y->bv) ||
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

static void add_bias(float *y, const float *b, int n, int d) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++) y[(size_t)i * d + j] += b[j];
}

// Bidirectional attention of one sequence: out (n, d) from q, k, v (n, d), heads of hd.
static void attention_full(float *out, const float *q, const float *k, const float *v, int n,
                           int n_heads, int hd, float *scores) {
    int d = n_heads * hd;
    float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for collapse(2) schedule(static) if ((long)n * n * d > 65536)
    for (int h = 0; h < n_heads; h++) {
        for (int i = 0; i < n; i++) {
            float *s = scores + ((size_t)h * n + i) * n;
            const float *qi = q + (size_t)i * d + h * hd;
            float mx = -INFINITY;
            for (int j = 0; j < n; j++) {
                const float *kj = k + (size_t)j * d + h * hd;
                float acc = 0;
                for (int t = 0; t < hd; t++) acc += qi[t] * kj[t];
                s[j] = acc * scale;
                if (s[j] > mx) mx = s[j];
            }
            double sum = 0;
            for (int j = 0; j < n; j++) {
                s[j] = expf(s[j] - mx);
                sum += s[j];
            }
            float inv = (float)(1.0 / sum);
            float *oi = out + (size_t)i * d + h * hd;
            for (int t = 0; t < hd; t++) oi[t] = 0;
            for (int j = 0; j < n; j++) {
                const float *vj = v + (size_t)j * d + h * hd;
                float p = s[j] * inv;
                for (int t = 0; t < hd; t++) oi[t] += p * vj[t];
            }
        }
    }
}

int rc_bert_forward(const rc_bert *m, const int *ids, int n, float *hidden, float *pooled) {
    const rc_bert_config *c = &m->c;
    if (n < 1) return rc_fail("bert: empty input");
    if (n > c->max_pos)
        return rc_fail("bert: %d tokens exceed max_position_embeddings %d", n, c->max_pos);
    if (pooled && !m->pool_w)
        return rc_fail("bert: the checkpoint has no pooler (pooler.dense.*), the pooled output "
                       "is not available");
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab)
            return rc_fail("bert: token id %d at position %d is outside the vocabulary (%d)",
                           ids[i], i, c->vocab);
    int d = c->d, f = c->d_ff, hd = c->d / c->n_heads;
    size_t nd = (size_t)n * d;
    size_t need = 5 * nd + (size_t)n * f + (size_t)c->n_heads * n * n;
    float *buf = rc_malloc(need * sizeof(float), "bert activations");
    if (!buf) return -1;
    float *x = buf, *q = x + nd, *k = q + nd, *v = k + nd, *ctx = v + nd, *ff = ctx + nd,
          *scores = ff + (size_t)n * f;
    for (int i = 0; i < n; i++) {
        const float *we = m->word + (size_t)ids[i] * d, *pe = m->pos + (size_t)i * d;
        for (int j = 0; j < d; j++) x[(size_t)i * d + j] = we[j] + pe[j] + m->type[j];
    }
    rc_cpu_layernorm(x, x, m->ln_w, m->ln_b, n, d, c->eps);
    for (int l = 0; l < c->n_layers; l++) {
        const bert_layer *y = &m->layer[l];
        float *ys[3] = {q, k, v};
        const float *ws[3] = {y->wq, y->wk, y->wv};
        const int outs[3] = {d, d, d};
        rc_cpu_matmul_multi(3, ys, ws, outs, x, n, d);
        add_bias(q, y->bq, n, d);
        add_bias(k, y->bk, n, d);
        add_bias(v, y->bv, n, d);
        attention_full(ctx, q, k, v, n, c->n_heads, hd, scores);
        rc_cpu_matmul(q, ctx, y->wo, n, d, d);
        add_bias(q, y->bo, n, d);
        rc_cpu_add(x, q, nd);
        rc_cpu_layernorm(x, x, y->ln1_w, y->ln1_b, n, d, c->eps);
        rc_cpu_matmul(ff, x, y->wi, n, d, f);
        add_bias(ff, y->bi, n, f);
        if (c->act == RC_BERT_GELU) rc_cpu_gelu_erf(ff, (size_t)n * f);
        else if (c->act == RC_BERT_GELU_TANH) rc_cpu_gelu_tanh(ff, (size_t)n * f);
        else
            for (size_t i = 0; i < (size_t)n * f; i++) ff[i] = ff[i] > 0 ? ff[i] : 0;
        rc_cpu_matmul(q, ff, y->wo2, n, f, d);
        add_bias(q, y->bo2, n, d);
        rc_cpu_add(x, q, nd);
        rc_cpu_layernorm(x, x, y->ln2_w, y->ln2_b, n, d, c->eps);
    }
    if (hidden) memcpy(hidden, x, nd * sizeof(float));
    if (pooled) {
        rc_cpu_matmul(pooled, x, m->pool_w, 1, d, d);
        for (int j = 0; j < d; j++) pooled[j] = tanhf(pooled[j] + m->pool_b[j]);
    }
    free(buf);
    return 0;
}
