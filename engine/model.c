// Model loading: one fp32 arena carved into per-tensor pointers (rc_model_alloc), and the HF
// directory loader (config.json + model.safetensors, or shards listed by
// model.safetensors.index.json). Every tensor's presence, dtype and shape is checked against the
// config before it is converted (F32/F16/BF16 -> fp32) into the arena.
#define _GNU_SOURCE
#include "engine/model.h"
#include "base/common.h"
#include "base/finite.h"
#include "base/gguf.h"
#include "base/safetensors.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// Defined by the GGUF reader; weak so that a model built without it still links (a model with
// m->gguf set can only come from that reader, so it is then present).
void rc_gguf_close(rc_gguf *g) __attribute__((weak));

// One weight of the model: a matrix (mat) or an fp32 vector (vec), with its HF tensor name.
typedef struct {
    char name[96];
    int64_t rows, cols;
    rc_qmat *mat;
    float **vec;
} weight_slot;

// Lists every weight of m's config (m->w.layers and m->w.heads allocated); slots may be NULL to
// count them. Returns the count.
static int weight_slots(rc_model *m, weight_slot *slots) {
    const rc_config *c = &m->cfg;
    const int64_t d = c->hidden_size, hd = c->head_dim, inter = c->intermediate_size;
    const int64_t q = (int64_t)c->num_attention_heads * hd, kv = (int64_t)c->num_key_value_heads * hd;
    int n = 0;
#define SLOT(nm_fmt, nm_arg, r, cl, m_, v_)                                                        \
    do {                                                                                           \
        if (slots) {                                                                               \
            weight_slot *s_ = &slots[n];                                                           \
            snprintf(s_->name, sizeof s_->name, nm_fmt, nm_arg);                                   \
            s_->rows = r, s_->cols = cl, s_->mat = m_, s_->vec = v_;                               \
        }                                                                                          \
        n++;                                                                                       \
    } while (0)
    SLOT("%s", "model.embed_tokens.weight", (int64_t)c->vocab_size, d, &m->w.heads[0], NULL);
    for (int l = 0; l < c->num_hidden_layers; l++) {
        rc_layer_weights *L = &m->w.layers[l];
        SLOT("model.layers.%d.input_layernorm.weight", l, d, 0, NULL, &L->attn_norm);
        SLOT("model.layers.%d.self_attn.q_proj.weight", l, q, d, &L->wq, NULL);
        SLOT("model.layers.%d.self_attn.k_proj.weight", l, kv, d, &L->wk, NULL);
        SLOT("model.layers.%d.self_attn.v_proj.weight", l, kv, d, &L->wv, NULL);
        SLOT("model.layers.%d.self_attn.o_proj.weight", l, d, q, &L->wo, NULL);
        SLOT("model.layers.%d.post_attention_layernorm.weight", l, d, 0, NULL, &L->mlp_norm);
        SLOT("model.layers.%d.mlp.gate_proj.weight", l, inter, d, &L->w_gate, NULL);
        SLOT("model.layers.%d.mlp.up_proj.weight", l, inter, d, &L->w_up, NULL);
        SLOT("model.layers.%d.mlp.down_proj.weight", l, d, inter, &L->w_down, NULL);
    }
    SLOT("%s", "model.norm.weight", d, 0, NULL, &m->w.norm);
    if (c->arch == RC_ARCH_CAUSAL_LM) {
        if (!c->tie_word_embeddings)
            SLOT("%s", "lm_head.weight", (int64_t)c->vocab_size, d, &m->w.heads[1], NULL);
    } else {
        SLOT("%s.weight", c->head_name[0] ? c->head_name : "score", (int64_t)c->num_labels, d,
             &m->w.heads[2], NULL);
    }
#undef SLOT
    return n;
}

// Bytes per element of the types rc_model_alloc_typed accepts.
static size_t elem_bytes(uint32_t type) {
    return type == RC_GGML_F16 || type == RC_GGML_BF16 ? 2 : 4;
}

#define RC_ARENA_ALIGN 64

// Allocates the layer table and the head storage; points embed/lm_head/score at it.
static int alloc_tables(rc_model *m) {
    const rc_config *c = &m->cfg;
    m->w.layers = rc_calloc((size_t)c->num_hidden_layers, sizeof *m->w.layers, "layer table");
    m->w.heads = rc_calloc(3, sizeof *m->w.heads, "weight table");
    if (!m->w.layers || !m->w.heads) {
        free(m->w.layers);
        free(m->w.heads);
        m->w.layers = NULL;
        m->w.heads = NULL;
        return -1;
    }
    m->w.embed_tokens = &m->w.heads[0];
    m->w.lm_head = NULL;
    m->w.score = NULL;
    if (c->arch == RC_ARCH_CAUSAL_LM)
        m->w.lm_head = c->tie_word_embeddings ? &m->w.heads[0] : &m->w.heads[1];
    else
        m->w.score = &m->w.heads[2];
    return 0;
}

int rc_model_alloc_typed(rc_model *m, uint32_t (*type_of)(void *ctx, const char *name), void *ctx) {
    if (alloc_tables(m)) return -1;
    const int n = weight_slots(m, NULL);
    weight_slot *slots = rc_malloc((size_t)n * sizeof *slots, "weight list");
    uint32_t *types = rc_malloc((size_t)n * sizeof *types, "weight list");
    if (!slots || !types) {
        free(slots);
        free(types);
        rc_model_free(m);
        return -1;
    }
    weight_slots(m, slots);
    size_t bytes = 0;
    for (int i = 0; i < n; i++) {
        types[i] = slots[i].mat && type_of ? type_of(ctx, slots[i].name) : RC_GGML_F32;
        if (types[i] != RC_GGML_F32 && types[i] != RC_GGML_F16 && types[i] != RC_GGML_BF16)
            types[i] = RC_GGML_F32;
        size_t b = (size_t)slots[i].rows * (size_t)(slots[i].cols ? slots[i].cols : 1) *
                   elem_bytes(types[i]);
        bytes += (b + RC_ARENA_ALIGN - 1) / RC_ARENA_ALIGN * RC_ARENA_ALIGN;
    }
    double avail = rc_memory_available_bytes();
    if (avail > 0 && (double)bytes > avail) {
        rc_fail("the model needs %.2f GiB of weights but only %.2f GiB of memory is available "
                "(MemAvailable / cgroup limit)",
                (double)bytes / (1 << 30), avail / (1 << 30));
        free(slots);
        free(types);
        rc_model_free(m);
        return -1;
    }
    m->arena = aligned_alloc(RC_ARENA_ALIGN, bytes ? bytes : RC_ARENA_ALIGN);
    if (!m->arena) {
        rc_fail("out of memory: loading %.2f GiB of weights", (double)bytes / (1 << 30));
        free(slots);
        free(types);
        rc_model_free(m);
        return -1;
    }
    m->arena_bytes = bytes;
    m->weight_bytes = bytes;
    uint8_t *p = m->arena;
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        size_t b = (size_t)slots[i].rows * (size_t)(slots[i].cols ? slots[i].cols : 1) *
                   elem_bytes(types[i]);
        if (slots[i].vec)
            *slots[i].vec = (float *)p;
        else
            rc = rc_qmat_init(slots[i].mat, p, types[i], (int)slots[i].rows, (int)slots[i].cols, 0);
        p += (b + RC_ARENA_ALIGN - 1) / RC_ARENA_ALIGN * RC_ARENA_ALIGN;
    }
    free(slots);
    free(types);
    if (rc) {
        rc_model_free(m);
        return rc_fail_ctx("carving the weight arena");
    }
    return 0;
}

int rc_model_alloc(rc_model *m) { return rc_model_alloc_typed(m, NULL, NULL); }

void rc_model_free(rc_model *m) {
    if (!m) return;
    free(m->arena);
    free(m->w.layers);
    free(m->w.heads);
    if (m->gguf) {
        if (rc_gguf_close) rc_gguf_close((rc_gguf *)m->gguf);
        free(m->gguf);
    }
    rc_config cfg = m->cfg;
    memset(m, 0, sizeof *m);
    m->cfg = cfg; // the config stays readable after the weights are gone
}

// ---- HF directory ------------------------------------------------------------------------

typedef struct {
    rc_safetensors *shards;
    int n_shards;
    cJSON *index;            // model.safetensors.index.json, or NULL
    const cJSON *weight_map; // its "weight_map"
    const char *dir;
} hf_files;

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static void hf_close(hf_files *f) {
    for (int i = 0; i < f->n_shards; i++)
        rc_st_close(&f->shards[i]);
    free(f->shards);
    cJSON_Delete(f->index);
    memset(f, 0, sizeof *f);
}

static int hf_open_shard(hf_files *f, const char *file) {
    for (int i = 0; i < f->n_shards; i++)
        if (!strcmp(base_name(f->shards[i].path), file)) return 0;
    if (!*file || strchr(file, '/') || !strcmp(file, "..") || !strcmp(file, "."))
        return rc_fail(
            "%s/model.safetensors.index.json: shard name \"%s\" is not a plain file name", f->dir,
            file);
    char path[2048];
    if (rc_path_join(path, sizeof path, f->dir, file)) return -1;
    if (!rc_file_exists(path))
        return rc_fail("%s: shard listed in model.safetensors.index.json is missing", path);
    rc_safetensors *ns = realloc(f->shards, (size_t)(f->n_shards + 1) * sizeof *ns);
    if (!ns) return rc_fail("out of memory opening shards");
    f->shards = ns;
    if (rc_st_open(&f->shards[f->n_shards], path)) return -1;
    f->n_shards++;
    return 0;
}

static int hf_open(hf_files *f, const char *dir) {
    memset(f, 0, sizeof *f);
    f->dir = dir;
    char path[2048];
    if (rc_path_join(path, sizeof path, dir, "model.safetensors.index.json")) return -1;
    if (rc_file_exists(path)) {
        char *text = rc_read_file(path, NULL);
        if (!text) return -1;
        f->index = cJSON_Parse(text);
        free(text);
        if (!f->index) return rc_fail("%s: not valid JSON", path);
        f->weight_map = cJSON_GetObjectItemCaseSensitive(f->index, "weight_map");
        if (!cJSON_IsObject(f->weight_map)) return rc_fail("%s: no \"weight_map\" object", path);
        const cJSON *e;
        cJSON_ArrayForEach(e, f->weight_map) {
            if (!cJSON_IsString(e))
                return rc_fail("%s: weight_map[\"%s\"] is not a file name", path, e->string);
            if (hf_open_shard(f, e->valuestring)) return -1;
        }
        if (f->n_shards == 0) return rc_fail("%s: weight_map lists no tensors", path);
        return 0;
    }
    if (rc_path_join(path, sizeof path, dir, "model.safetensors")) return -1;
    if (!rc_file_exists(path))
        return rc_fail("%s: neither model.safetensors nor model.safetensors.index.json found "
                       "(PyTorch .bin checkpoints must be converted to safetensors first)",
                       dir);
    f->shards = rc_calloc(1, sizeof *f->shards, "shard table");
    if (!f->shards) return -1;
    if (rc_st_open(&f->shards[0], path)) return -1;
    f->n_shards = 1;
    return 0;
}

// Finds a tensor and the file it lives in; NULL (no error set) when absent.
static const rc_st_tensor *hf_find(const hf_files *f, const char *name, const char **file) {
    if (f->weight_map) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(f->weight_map, name);
        if (!cJSON_IsString(e)) return NULL;
        for (int i = 0; i < f->n_shards; i++)
            if (!strcmp(base_name(f->shards[i].path), e->valuestring)) {
                *file = base_name(f->shards[i].path);
                return rc_st_find(&f->shards[i], name);
            }
        return NULL;
    }
    for (int i = 0; i < f->n_shards; i++) {
        const rc_st_tensor *t = rc_st_find(&f->shards[i], name);
        if (t) {
            *file = base_name(f->shards[i].path);
            return t;
        }
    }
    return NULL;
}

static void fmt_shape(char *out, size_t cap, int ndim, const int64_t *shape) {
    size_t n = (size_t)snprintf(out, cap, "[");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (n < cap) snprintf(out + n, cap - n, "]");
}

// Loads tensor `name` of shape (rows, cols) (cols == 0: a vector of rows): a vector converted to
// fp32 into *vec, a matrix copied as stored into mat (allocated in the file's dtype).
static int hf_load(const hf_files *f, const char *name, int64_t rows, int64_t cols, rc_qmat *mat,
                   float *vec) {
    const char *file = NULL;
    const rc_st_tensor *t = hf_find(f, name, &file);
    if (!t) {
        if (f->weight_map && cJSON_GetObjectItemCaseSensitive(f->weight_map, name))
            return rc_fail(
                "%s: tensor %s listed in model.safetensors.index.json is not in its shard", f->dir,
                name);
        return rc_fail("%s: tensor %s is missing from the checkpoint", f->dir, name);
    }
    int64_t want[2] = {rows, cols};
    int want_nd = cols ? 2 : 1;
    int ok = t->ndim == want_nd;
    for (int i = 0; ok && i < want_nd; i++)
        ok = t->shape[i] == want[i];
    if (!ok) {
        char a[128], b[256];
        fmt_shape(a, sizeof a, want_nd, want);
        fmt_shape(b, sizeof b, t->ndim, t->shape);
        return rc_fail("%s: expected shape %s, found %s in %s", name, a, b, file);
    }
    if (t->dtype != RC_DT_F32 && t->dtype != RC_DT_F16 && t->dtype != RC_DT_BF16)
        return rc_fail("%s in %s: dtype %s is not supported (F32, F16 or BF16 expected)", name,
                       file, t->dtype_str);
    const size_t count = (size_t)rows * (size_t)(cols ? cols : 1);
    if (vec) {
        if (rc_st_to_f32(t, vec, count)) return rc_fail_ctx("%s", file);
        return rc_check_finite(file, name, vec, count);
    }
    const uint32_t want_type = t->dtype == RC_DT_F16    ? RC_GGML_F16
                               : t->dtype == RC_DT_BF16 ? RC_GGML_BF16
                                                        : RC_GGML_F32;
    if (mat->type != want_type) // the arena was laid out from the same tensor's dtype
        return rc_fail("%s in %s: internal error: dtype changed between layout and load", name, file);
    memcpy((void *)mat->data, t->data, count * rc_dtype_size(t->dtype));
    return rc_check_finite_typed(file, name,
                                 t->dtype == RC_DT_F16    ? RC_FINITE_F16
                                 : t->dtype == RC_DT_BF16 ? RC_FINITE_BF16
                                                          : RC_FINITE_F32,
                                 mat->data, count);
}

static uint32_t hf_type_of(void *ctx, const char *name) {
    const char *file = NULL;
    const rc_st_tensor *t = hf_find((const hf_files *)ctx, name, &file);
    if (!t) return RC_GGML_F32;
    return t->dtype == RC_DT_F16 ? RC_GGML_F16 : t->dtype == RC_DT_BF16 ? RC_GGML_BF16 : RC_GGML_F32;
}

int rc_model_load_hf(const char *dir, rc_model *m) {
    memset(m, 0, sizeof *m);
    char path[2048];
    if (!rc_is_dir(dir)) return rc_fail("%s: not a directory", dir);
    if (rc_path_join(path, sizeof path, dir, "config.json")) return -1;
    if (!rc_file_exists(path))
        return rc_fail("%s: config.json not found (expected an HF model directory)", dir);
    char *text = rc_read_file(path, NULL);
    if (!text) return -1;
    int rc = rc_config_parse_json(text, &m->cfg);
    free(text);
    if (rc) return rc_fail_ctx("%s", dir);
    rc_config *c = &m->cfg;
    snprintf(c->source, sizeof c->source, "%s", dir);

    hf_files f;
    if (hf_open(&f, dir)) {
        hf_close(&f);
        return -1;
    }
    const char *file = NULL;
    char name[256];
    if (c->arch == RC_ARCH_REWARD) {
        // The head is score.weight (LlamaForSequenceClassification) or regression_head.weight
        // (UltraRM); accept whichever the checkpoint has.
        const char *alt = strcmp(c->head_name, "score") ? "score" : "regression_head";
        snprintf(name, sizeof name, "%s.weight", c->head_name);
        const rc_st_tensor *t = hf_find(&f, name, &file);
        if (!t) {
            snprintf(name, sizeof name, "%s.weight", alt);
            t = hf_find(&f, name, &file);
            if (t) snprintf(c->head_name, sizeof c->head_name, "%s", alt);
        }
        if (!t) {
            rc_fail("%s: reward head missing: neither score.weight nor regression_head.weight "
                    "is in the checkpoint",
                    dir);
            hf_close(&f); // after the message: it points into the shards
            return -1;
        }
        snprintf(name, sizeof name, "%s.bias", c->head_name);
        if (hf_find(&f, name, &file)) {
            rc_fail("%s: %s is present in %s, but a reward head with a bias is not supported", dir,
                    name, file);
            hf_close(&f); // after the message: it points into the shards
            return -1;
        }
        if (t->ndim == 2 && t->shape[0] != c->num_labels) {
            rc_fail("%s: %s.weight has %" PRId64 " rows but config.json says num_labels = %d", dir,
                    c->head_name, t->shape[0], c->num_labels);
            hf_close(&f); // after the message: it points into the shards
            return -1;
        }
    }
    if (rc_model_alloc_typed(m, hf_type_of, &f)) {
        hf_close(&f);
        return -1;
    }
    const int n_slots = weight_slots(m, NULL);
    weight_slot *slots = rc_malloc((size_t)n_slots * sizeof *slots, "weight list");
    rc = slots ? 0 : -1;
    if (slots) weight_slots(m, slots);
    for (int i = 0; !rc && i < n_slots; i++) {
        const weight_slot *s = &slots[i];
        if (!strcmp(s->name, "lm_head.weight") && !hf_find(&f, s->name, &file))
            rc = rc_fail("%s: lm_head.weight is missing and config.json has tie_word_embeddings = "
                         "false",
                         dir);
        else
            rc = hf_load(&f, s->name, s->rows, s->cols, s->mat, s->vec ? *s->vec : NULL);
    }
    free(slots);
    hf_close(&f);
    if (rc) {
        rc_model_free(m);
        return -1;
    }
    return 0;
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

int rc_model_load(const char *path, rc_model *m) {
    memset(m, 0, sizeof *m);
    if (!path || !*path) return rc_fail("no model path given");
    if (rc_is_dir(path)) return rc_model_load_hf(path, m);
    if (rc_check_regular_file(path, "an HF model directory or a .gguf file")) return -1;
    char magic[4] = {0};
    FILE *fp = fopen(path, "rb");
    size_t got = fp ? fread(magic, 1, 4, fp) : 0;
    if (fp) fclose(fp);
    if (ends_with(path, ".gguf") || (got == 4 && !memcmp(magic, "GGUF", 4)))
        return rc_model_load_gguf(path, m);
    return rc_fail("%s: not an HF model directory nor a GGUF file (pass the directory that holds "
                   "config.json)",
                   path);
}
