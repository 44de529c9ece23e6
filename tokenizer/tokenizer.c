// Tokenizer loading (HF directory: tokenizer.model + tokenizer_config.json through SentencePiece,
// or tokenizer.json byte-level BPE; GGUF tokenizer.ggml.* metadata), the encode driver (added /
// special tokens split out first, leftmost-longest, as HF's AddedVocabulary; then the model on
// each remaining segment) and the vocabulary queries.
#include "tokenizer/tokenizer.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "base/common.h"
#include "base/gguf.h"
#include "tokenizer/spm.h"
#include "tokenizer/tok_internal.h"

// Ids at or above this are refused as corrupt (the largest real vocabularies are ~260K).
#define RC_TOK_MAX_VOCAB (1 << 24)

int tk_alloc_vocab(struct rc_tokenizer *t, int n) {
    t->n_vocab = n;
    t->piece = rc_calloc((size_t)n, sizeof *t->piece, "vocabulary");
    t->piece_len = rc_calloc((size_t)n, sizeof *t->piece_len, "vocabulary");
    t->tb = rc_calloc((size_t)n, sizeof *t->tb, "vocabulary");
    t->tb_len = rc_calloc((size_t)n, sizeof *t->tb_len, "vocabulary");
    t->byteval = rc_malloc((size_t)n * sizeof *t->byteval, "vocabulary");
    t->attr = rc_calloc((size_t)n, 1, "vocabulary");
    if (!t->piece || !t->piece_len || !t->tb || !t->tb_len || !t->byteval || !t->attr) return -1;
    for (int i = 0; i < n; i++) {
        t->piece[i] = t->tb[i] = "";
        t->byteval[i] = -1;
    }
    return tk_strmap_init(&t->piece_map, (size_t)n);
}

int tk_set_piece(struct rc_tokenizer *t, int id, const char *s, size_t len) {
    char *p = tk_arena_dup(&t->arena, s, len);
    if (!p) return -1;
    t->piece[id] = p;
    t->piece_len[id] = (uint32_t)len;
    return tk_strmap_put(&t->piece_map, p, (uint32_t)len, id);
}

int tk_add_added(struct rc_tokenizer *t, int id, const char *s, size_t len, int special, int lstrip,
                 int rstrip) {
    if (id < 0 || id >= t->n_vocab)
        return rc_fail("added token '%.*s' has id %d outside the vocabulary (%d)", (int)len, s, id,
                       t->n_vocab);
    if (!len) return 0;
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].id == id) return 0; // listed twice (tokenizer.json and config)
    if (!t->piece_len[id] && tk_set_piece(t, id, s, len)) return -1;
    tk_added *na = realloc(t->added, (size_t)(t->n_added + 1) * sizeof *na);
    if (!na) return rc_fail("out of memory for added tokens");
    t->added = na;
    na[t->n_added++] = (tk_added){id, t->piece[id], (uint32_t)len, (uint8_t)lstrip, (uint8_t)rstrip};
    t->attr[id] |= TK_ATTR_ADDED | (special ? TK_ATTR_SPECIAL : 0);
    t->added_first[(uint8_t)s[0]] = 1;
    return 0;
}

// Reads a whole (optionally gzip-compressed) file and parses it as JSON.
static cJSON *read_json(const char *path) {
    gzFile f = gzopen(path, "rb");
    if (!f) {
        rc_fail("cannot open %s", path);
        return NULL;
    }
    tk_buf b = {0};
    char chunk[1 << 16];
    int n;
    while ((n = gzread(f, chunk, sizeof chunk)) > 0)
        if (tk_buf_add(&b, chunk, (size_t)n)) break;
    int err = n < 0;
    gzclose(f);
    if (err || !b.p) {
        free(b.p);
        rc_fail("cannot read %s%s", path, err ? " (corrupt gzip?)" : " (empty)");
        return NULL;
    }
    cJSON *j = cJSON_ParseWithLength(b.p, b.n);
    if (!j) {
        const char *e = cJSON_GetErrorPtr();
        size_t off = e ? (size_t)(e - b.p) : 0;
        rc_fail("%s: invalid JSON near byte %zu", path, off);
    }
    rc_json_keep_last_keys(j); // duplicate keys: the last wins, as in Python's json
    free(b.p);
    return j;
}

// A token given in tokenizer_config.json as "str" or {"content": "str", ...}.
static const char *cfg_token(const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsString(v)) return v->valuestring;
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(v, "content"));
}

static int cfg_bool(const cJSON *cfg, const char *key, int dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

// chat_template: chat_template.jinja next to the config, else the config's chat_template
// (a string, or a list of {name, template} where "default" is taken).
static int load_chat_template(struct rc_tokenizer *t, const char *dir, const cJSON *cfg) {
    char p[4096];
    if (!rc_path_join(p, sizeof p, dir, "chat_template.jinja") && rc_file_exists(p)) {
        size_t n;
        char *s = rc_read_file(p, &n);
        if (!s) return -1;
        t->chat_template = tk_arena_dup(&t->arena, s, n);
        free(s);
        return t->chat_template ? 0 : -1;
    }
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template"), *it;
    const char *s = cJSON_GetStringValue(ct);
    if (cJSON_IsArray(ct))
        cJSON_ArrayForEach(it, ct) {
            const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "name"));
            if (name && !strcmp(name, "default"))
                s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "template"));
        }
    if (s && !(t->chat_template = tk_arena_dup(&t->arena, s, strlen(s)))) return -1;
    return 0;
}

// added_tokens (tokenizer.json) or added_tokens_decoder (tokenizer_config.json) entries.
static int add_json_tokens(struct rc_tokenizer *t, const cJSON *arr, int is_decoder_map) {
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(it, "content");
        int id = is_decoder_map ? atoi(it->string)
                                : (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(it, "id"));
        if (!cJSON_IsString(c)) return rc_fail("added token %d without content", id);
        if (tk_add_added(t, id, c->valuestring, strlen(c->valuestring),
                         cfg_bool(it, "special", 0), cfg_bool(it, "lstrip", 0),
                         cfg_bool(it, "rstrip", 0)))
            return -1;
    }
    return 0;
}

static int max_added_id(const cJSON *arr, int is_decoder_map) {
    int mx = -1;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        int id = is_decoder_map ? atoi(it->string)
                                : (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(it, "id"));
        if (id > mx) mx = id;
    }
    return mx;
}

static int lookup_cfg_token(struct rc_tokenizer *t, const cJSON *cfg, const char *key, int *out) {
    const char *s = cfg_token(cfg, key);
    if (!s) return 0;
    int id = tk_strmap_get(&t->piece_map, s, strlen(s));
    if (id < 0) return 0; // HF would add it as a new token; we only use existing ones
    *out = id;
    return 0;
}

// True when no vocabulary piece has "▁" right after a character other than "▁" (SentencePiece
// trained with split_by_whitespace, as LLaMA's): then no merge crosses such a boundary and the
// text can be encoded word by word.
static int spm_can_split(const struct rc_tokenizer *t) {
    for (int i = 0; i < t->n_vocab; i++) {
        const char *p = t->piece[i];
        uint32_t n = t->piece_len[i];
        for (uint32_t k = 1; k + 3 <= n; k++)
            if (!memcmp(p + k, "\xe2\x96\x81", 3) && !(k >= 3 && !memcmp(p + k - 3, "\xe2\x96\x81", 3)))
                return 0;
    }
    return 1;
}

static int load_spm_dir(struct rc_tokenizer *t, const char *dir, const char *model_path,
                        const cJSON *cfg) {
    t->kind = TK_SPM;
    if (!(t->spm = rc_spm_load_file(model_path))) return -1;
    int n = rc_spm_size(t->spm);
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(cfg, "added_tokens_decoder");
    int mx = max_added_id(dec, 1);
    if (mx >= RC_TOK_MAX_VOCAB)
        return rc_fail("%s: added token id %d is implausibly large", model_path, mx);
    if (tk_alloc_vocab(t, mx + 1 > n ? mx + 1 : n)) return -1;
    for (int i = 0; i < n; i++) {
        size_t len;
        const char *p = rc_spm_piece(t->spm, i, &len);
        if (tk_set_piece(t, i, p, len)) return -1;
    }
    const char *unk = cfg_token(cfg, "unk_token"), *bos = cfg_token(cfg, "bos_token"),
               *eos = cfg_token(cfg, "eos_token");
    // LlamaTokenizer's defaults: <unk>, <s>, </s> are special added tokens.
    const char *sp[3] = {unk ? unk : "<unk>", bos ? bos : "<s>", eos ? eos : "</s>"};
    int ids[3];
    for (int k = 0; k < 3; k++) {
        ids[k] = tk_strmap_get(&t->piece_map, sp[k], strlen(sp[k]));
        if (ids[k] >= 0 && tk_add_added(t, ids[k], sp[k], strlen(sp[k]), 1, 0, 0)) return -1;
    }
    t->unk = ids[0], t->bos = ids[1], t->eos = ids[2];
    if (add_json_tokens(t, dec, 1)) return -1;
    for (int i = 0; i < t->n_vocab; i++) {
        if (i < n && rc_spm_is_byte(t->spm, i)) {
            // "<0xAB>"
            t->byteval[i] = (int16_t)strtol(t->piece[i] + 3, NULL, 16);
            t->tb[i] = "";
            continue;
        }
        // Replace("▁", " ") on every token.
        tk_buf b = {0};
        const char *p = t->piece[i], *end = p + t->piece_len[i];
        int rc = tk_buf_add(&b, "", 0);
        while (!rc && p < end) {
            const char *q = strstr(p, "\xe2\x96\x81");
            if (!q || q >= end) q = end;
            rc = tk_buf_add(&b, p, (size_t)(q - p));
            if (!rc && q < end) rc = tk_buf_add(&b, " ", 1);
            p = q < end ? q + 3 : end;
        }
        if (!rc) t->tb[i] = tk_arena_dup(&t->arena, b.p, b.n);
        t->tb_len[i] = (uint32_t)b.n;
        free(b.p);
        if (rc || !t->tb[i]) return -1;
    }
    t->spm_split = spm_can_split(t);
    int add_prefix = cfg_bool(cfg, "add_prefix_space", 1);
    int legacy = cfg_bool(cfg, "legacy", 0); // transformers 5's LlamaTokenizer default
    t->prepend_scheme = !add_prefix ? TK_PREPEND_NEVER : legacy ? TK_PREPEND_ALWAYS : TK_PREPEND_FIRST;
    // Without a tokenizer_class, transformers converts the model generically: SentencePiece's
    // own dummy prefix on every segment.
    if (!cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cfg, "tokenizer_class")))
        t->prepend_scheme = TK_PREPEND_DUMMY;
    t->strip_lead = add_prefix;
    // transformers 5 adds a BOS only when the config says add_bos_token (4.x defaulted to one)
    if (cfg_bool(cfg, "add_bos_token", 0) && t->bos >= 0) t->prefix[t->n_prefix++] = t->bos;
    if (cfg_bool(cfg, "add_eos_token", 0) && t->eos >= 0) t->suffix[t->n_suffix++] = t->eos;
    return load_chat_template(t, dir, cfg);
}

// TemplateProcessing "single": special tokens before / after $A.
static int parse_post(struct rc_tokenizer *t, const cJSON *pp, const char *path) {
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(pp, "type"), *it;
    if (!cJSON_IsString(ty)) return 0;
    if (!strcmp(ty->valuestring, "Sequence")) {
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(pp, "processors"))
            if (parse_post(t, it, path)) return -1;
        return 0;
    }
    if (!strcmp(ty->valuestring, "ByteLevel")) return 0;
    if (strcmp(ty->valuestring, "TemplateProcessing"))
        return rc_fail("%s: post_processor '%s' is not supported", path, ty->valuestring);
    int seen_a = 0;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(pp, "single")) {
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
        if (cJSON_GetObjectItemCaseSensitive(it, "Sequence")) {
            seen_a = 1;
            continue;
        }
        const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(st, "id"));
        int id = s ? tk_strmap_get(&t->piece_map, s, strlen(s)) : -1;
        if (id < 0) return rc_fail("%s: post_processor token '%s' is not in the vocabulary", path,
                                   s ? s : "?");
        int *arr = seen_a ? t->suffix : t->prefix, *n = seen_a ? &t->n_suffix : &t->n_prefix;
        if (*n >= 4) return rc_fail("%s: too many post_processor tokens", path);
        arr[(*n)++] = id;
    }
    return 0;
}

static int load_bpe_json(struct rc_tokenizer *t, const char *dir, const char *json_path,
                         const cJSON *cfg) {
    t->kind = TK_BPE;
    cJSON *root = read_json(json_path);
    if (!root) return -1;
    int rc = 0;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model"), *it;
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    int mx = max_added_id(added, 0);
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(model, "vocab")) if (
        cJSON_IsNumber(it) && it->valueint > mx) mx = it->valueint;
    if (mx < 0) rc = rc_fail("%s: empty vocabulary", json_path);
    if (mx >= RC_TOK_MAX_VOCAB) rc = rc_fail("%s: token id %d is implausibly large", json_path, mx);
    if (!rc) rc = tk_alloc_vocab(t, mx + 1);
    if (!rc) rc = tk_bpe_load_json(t, root, json_path);
    if (!rc) rc = add_json_tokens(t, added, 0);
    if (!rc) rc = tk_bpe_finish(t);
    const cJSON *pp = cJSON_GetObjectItemCaseSensitive(root, "post_processor");
    if (!rc && pp && !cJSON_IsNull(pp)) rc = parse_post(t, pp, json_path);
    if (!rc) rc = lookup_cfg_token(t, cfg, "bos_token", &t->bos);
    if (!rc) rc = lookup_cfg_token(t, cfg, "eos_token", &t->eos);
    if (!rc) rc = lookup_cfg_token(t, cfg, "unk_token", &t->unk);
    if (!rc && t->bos < 0 && t->n_prefix) t->bos = t->prefix[0];
    if (!rc) rc = load_chat_template(t, dir, cfg);
    cJSON_Delete(root);
    return rc;
}

static void tk_reset(struct rc_tokenizer *t);

static int load_dir(struct rc_tokenizer *t, const char *dir) {
    char cfg_path[4096], model_path[4096], json_path[4096];
    if (rc_path_join(cfg_path, sizeof cfg_path, dir, "tokenizer_config.json") ||
        rc_path_join(model_path, sizeof model_path, dir, "tokenizer.model") ||
        rc_path_join(json_path, sizeof json_path, dir, "tokenizer.json"))
        return rc_fail("path too long: %s", dir);
    cJSON *cfg = NULL;
    if (rc_file_exists(cfg_path) && !(cfg = read_json(cfg_path))) return -1;
    int rc = -1;
    if (!rc_file_exists(json_path) && strlen(json_path) + 4 < sizeof json_path)
        strcat(json_path, ".gz");
    if (rc_file_exists(model_path)) {
        rc = load_spm_dir(t, dir, model_path, cfg);
        if (rc && rc_file_exists(json_path)) { // e.g. a tiktoken tokenizer.model: use the json
            tk_reset(t);
            rc = 1;
        }
    }
    if (rc > 0 || !rc_file_exists(model_path)) {
        if (rc_file_exists(json_path)) rc = load_bpe_json(t, dir, json_path, cfg);
        else
            rc = rc_fail("%s: no tokenizer.model or tokenizer.json in this directory", dir);
    }
    cJSON_Delete(cfg);
    return rc;
}

static int load_gguf(struct rc_tokenizer *t, const char *path) {
    rc_gguf g;
    memset(&g, 0, sizeof g);
    if (rc_gguf_open(&g, path)) return -1;
    int rc = 0;
    char *model = rc_gguf_get_str(&g, "tokenizer.ggml.model");
    const rc_gguf_kv *toks = rc_gguf_find(&g, "tokenizer.ggml.tokens");
    const rc_gguf_kv *types = rc_gguf_find(&g, "tokenizer.ggml.token_type");
    const rc_gguf_kv *scores = rc_gguf_find(&g, "tokenizer.ggml.scores");
    if (!model) rc = rc_fail("%s: no tokenizer.ggml.model in the metadata", path);
    else if (!toks || toks->type != RC_GGUF_ARRAY || toks->arr_type != RC_GGUF_STRING || !toks->arr_n)
        rc = rc_fail("%s: tokenizer.ggml.tokens (array of strings) is missing", path);
    else if (types && (types->type != RC_GGUF_ARRAY || types->arr_type != RC_GGUF_INT32 ||
                       types->arr_n != toks->arr_n))
        rc = rc_fail("%s: tokenizer.ggml.token_type must be int32[%llu]", path,
                     (unsigned long long)toks->arr_n);
    else if (toks->arr_n >= RC_TOK_MAX_VOCAB)
        rc = rc_fail("%s: %llu tokens is implausibly many", path, (unsigned long long)toks->arr_n);
    else if (strcmp(model, "gpt2") && strcmp(model, "llama"))
        rc = rc_fail("%s: tokenizer.ggml.model '%s' is not supported (gpt2, llama are)", path, model);
    int n = toks && !rc ? (int)toks->arr_n : 0;
    int is_spm = model && !strcmp(model, "llama");
    int *ty = NULL;
    if (!rc && !(ty = rc_malloc((size_t)n * sizeof *ty, "token types"))) rc = -1;
    for (int i = 0; !rc && i < n; i++) {
        int32_t v = 1;
        if (types) memcpy(&v, types->arr_data + 4 * (size_t)i, 4);
        ty[i] = v;
    }
    if (!rc && is_spm) {
        t->kind = TK_SPM;
        const char **pp = rc_malloc((size_t)n * sizeof *pp, "pieces");
        uint32_t *pl = rc_malloc((size_t)n * sizeof *pl, "pieces");
        float *sc = NULL;
        if (scores && scores->type == RC_GGUF_ARRAY && scores->arr_type == RC_GGUF_FLOAT32 &&
            scores->arr_n == (uint64_t)n && (sc = rc_malloc((size_t)n * 4, "scores")))
            memcpy(sc, scores->arr_data, (size_t)n * 4);
        if (!pp || !pl) rc = -1;
        for (int i = 0; !rc && i < n; i++) pp[i] = toks->arr_strs[i].ptr, pl[i] = (uint32_t)toks->arr_strs[i].len;
        if (!rc && !(t->spm = rc_spm_build_proto(n, pp, pl, sc, ty, path))) rc = -1;
        free(pp);
        free(pl);
        free(sc);
    } else if (!rc)
        t->kind = TK_BPE;
    if (!rc) rc = tk_alloc_vocab(t, n);
    for (int i = 0; !rc && i < n; i++)
        rc = tk_set_piece(t, i, toks->arr_strs[i].ptr, toks->arr_strs[i].len);
    // unknown (2), control (3) and user-defined (4) tokens are matched in text, as in the HF
    // tokenizer transformers builds from a GGUF; unknown and control ones are special
    for (int i = 0; !rc && i < n; i++)
        if (ty[i] >= 2 && ty[i] <= 4)
            rc = tk_add_added(t, i, t->piece[i], t->piece_len[i], ty[i] != 4, 0, 0);
    uint64_t v;
    t->bos = !rc && !rc_gguf_get_u64(&g, "tokenizer.ggml.bos_token_id", &v) && v < (uint64_t)n ? (int)v : -1;
    t->eos = !rc && !rc_gguf_get_u64(&g, "tokenizer.ggml.eos_token_id", &v) && v < (uint64_t)n ? (int)v : -1;
    t->unk = !rc && !rc_gguf_get_u64(&g, "tokenizer.ggml.unknown_token_id", &v) && v < (uint64_t)n ? (int)v : -1;
    const rc_gguf_kv *ab = rc_gguf_find(&g, "tokenizer.ggml.add_bos_token");
    const rc_gguf_kv *ae = rc_gguf_find(&g, "tokenizer.ggml.add_eos_token");
    const rc_gguf_kv *asp = rc_gguf_find(&g, "tokenizer.ggml.add_space_prefix");
    int add_bos = ab && ab->type == RC_GGUF_BOOL ? ab->v.b : is_spm;
    int add_eos = ae && ae->type == RC_GGUF_BOOL ? ae->v.b : 0;
    int add_space = asp && asp->type == RC_GGUF_BOOL ? asp->v.b : 1;
    if (!rc && add_bos && t->bos >= 0) t->prefix[t->n_prefix++] = t->bos;
    if (!rc && add_eos && t->eos >= 0) t->suffix[t->n_suffix++] = t->eos;
    if (!rc && is_spm) {
        for (int i = 0; i < n; i++) {
            if (ty[i] == 6) {
                t->byteval[i] = (int16_t)strtol(t->piece[i] + 3, NULL, 16);
                t->tb[i] = "";
                continue;
            }
            tk_buf b = {0};
            tk_buf_add(&b, "", 0);
            for (uint32_t k = 0; k < t->piece_len[i]; k++) {
                if (k + 2 < t->piece_len[i] && !memcmp(t->piece[i] + k, "\xe2\x96\x81", 3)) {
                    tk_buf_add(&b, " ", 1);
                    k += 2;
                } else
                    tk_buf_add(&b, t->piece[i] + k, 1);
            }
            t->tb[i] = b.p ? tk_arena_dup(&t->arena, b.p, b.n) : NULL;
            t->tb_len[i] = (uint32_t)b.n;
            free(b.p);
            if (!t->tb[i]) {
                rc = -1;
                break;
            }
        }
        t->spm_split = spm_can_split(t);
        t->prepend_scheme = add_space ? TK_PREPEND_FIRST : TK_PREPEND_NEVER;
        t->strip_lead = add_space;
    } else if (!rc) {
        rc = tk_bpe_load_gguf(t, &g);
        if (!rc) rc = tk_bpe_finish(t);
    }
    char *ct = rc ? NULL : rc_gguf_get_str(&g, "tokenizer.chat_template");
    if (ct) {
        t->chat_template = tk_arena_dup(&t->arena, ct, strlen(ct));
        free(ct);
    }
    free(ty);
    free(model);
    rc_gguf_close(&g);
    return rc;
}

// A tokenizer.json / tokenizer.model given as a file: tokenizer_config.json and
// chat_template.jinja are looked for next to it.
static int load_file_with_config(struct rc_tokenizer *t, const char *path, int spm) {
    char dir[4096], cfg_path[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else
        snprintf(dir, sizeof dir, ".");
    cJSON *cfg = NULL;
    if (!rc_path_join(cfg_path, sizeof cfg_path, dir, "tokenizer_config.json") &&
        rc_file_exists(cfg_path) && !(cfg = read_json(cfg_path)))
        return -1;
    int rc = spm ? load_spm_dir(t, dir, path, cfg) : load_bpe_json(t, dir, path, cfg);
    cJSON_Delete(cfg);
    return rc;
}

rc_tokenizer *rc_tokenizer_load(const char *model_path) {
    if (!model_path) {
        rc_fail("no tokenizer path given");
        return NULL;
    }
    rc_tokenizer *t = rc_calloc(1, sizeof *t, "tokenizer");
    if (!t) return NULL;
    t->bos = t->eos = t->unk = -1;
    int rc;
    size_t L = strlen(model_path);
    if (rc_is_dir(model_path)) rc = load_dir(t, model_path);
    else if (rc_check_regular_file(model_path, "a model directory, a .gguf or a tokenizer file"))
        rc = -1;
    else if (L >= 5 && !strcmp(model_path + L - 5, ".gguf"))
        rc = load_gguf(t, model_path);
    else if ((L >= 5 && !strcmp(model_path + L - 5, ".json")) ||
             (L >= 8 && !strcmp(model_path + L - 8, ".json.gz")))
        rc = load_file_with_config(t, model_path, 0);
    else if (L >= 6 && !strcmp(model_path + L - 6, ".model"))
        rc = load_file_with_config(t, model_path, 1);
    else
        rc = rc_fail("%s: not a model directory, .gguf, tokenizer.json or tokenizer.model",
                     model_path);
    if (!rc && !(t->cache = tk_cache_new())) rc = -1;
    if (rc) {
        rc_fail_ctx("loading the tokenizer from %s", model_path);
        rc_tokenizer_free(t);
        return NULL;
    }
    return t;
}

// Frees everything t holds and clears it for another load.
static void tk_reset(struct rc_tokenizer *t) {
    if (t->spm) rc_spm_free(t->spm);
    tk_cache_free(t->cache);
    tk_bpe_free(t);
    tk_strmap_free(&t->piece_map);
    free(t->piece);
    free(t->piece_len);
    free(t->tb);
    free(t->tb_len);
    free(t->byteval);
    free(t->attr);
    free(t->added);
    tk_arena_free(&t->arena);
    memset(t, 0, sizeof *t);
    t->bos = t->eos = t->unk = -1;
}

void rc_tokenizer_free(rc_tokenizer *t) {
    if (!t) return;
    tk_reset(t);
    free(t);
}

// SentencePiece segment: Metaspace (spaces -> "▁", prepend "▁" per the scheme), then the model.
static int spm_segment(const rc_tokenizer *t, const char *s, size_t n, size_t offset, rc_ivec *out) {
    tk_buf b = {0};
    int rc = 0;
    int starts_meta = (n && s[0] == ' ') || (n >= 3 && !memcmp(s, "\xe2\x96\x81", 3));
    if (t->prepend_scheme == TK_PREPEND_DUMMY ||
        (!starts_meta && (t->prepend_scheme == TK_PREPEND_ALWAYS ||
                          (t->prepend_scheme == TK_PREPEND_FIRST && offset == 0))))
        rc = tk_buf_add(&b, "\xe2\x96\x81", 3);
    size_t i = 0;
    while (!rc && i < n) {
        const char *sp = memchr(s + i, ' ', n - i);
        size_t e = sp ? (size_t)(sp - s) : n;
        rc = tk_buf_add(&b, s + i, e - i);
        if (!rc && sp) rc = tk_buf_add(&b, "\xe2\x96\x81", 3);
        i = sp ? e + 1 : n;
    }
    // Word by word (each word: a run of "▁" and the characters up to the next "▁" that follows
    // another character), through the cache, when no piece can span such a boundary.
    size_t w0 = 0, L = b.n;
    while (!rc && w0 < L) {
        size_t w1 = L;
        if (t->spm_split)
            for (size_t p = w0 + 1; p + 3 <= L; p++)
                if (!memcmp(b.p + p, "\xe2\x96\x81", 3) &&
                    !(p >= 3 && !memcmp(b.p + p - 3, "\xe2\x96\x81", 3))) {
                    w1 = p;
                    break;
                }
        const char *w = b.p + w0;
        size_t wn = w1 - w0;
        int hit = t->cache && wn <= TK_CACHE_MAX_WORD ? tk_cache_get(t->cache, w, wn, out) : 0;
        if (hit < 0) rc = -1;
        else if (!hit) {
            int before = out->n;
            rc = rc_spm_encode(t->spm, w, wn, out);
            if (!rc && t->cache && wn <= TK_CACHE_MAX_WORD)
                tk_cache_put(t->cache, w, wn, out->v + before, out->n - before);
        }
        w0 = w1;
    }
    free(b.p);
    return rc;
}

static int encode_segment(const rc_tokenizer *t, const char *s, size_t n, size_t offset,
                          rc_ivec *out) {
    if (!n) return 0;
    return t->kind == TK_SPM ? spm_segment(t, s, n, offset, out) : tk_bpe_encode(t, s, n, out);
}

static int utf8_valid(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if ((uint8_t)s[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        int l = tk_utf8_next((const uint8_t *)s + i, n - i, &cp);
        if (!l) return 0;
        i += (size_t)l;
    }
    return 1;
}

// Start of the character before position i (s[0..i) is valid UTF-8).
static size_t prev_char(const char *s, size_t i) {
    do i--;
    while (i > 0 && ((uint8_t)s[i] & 0xc0) == 0x80);
    return i;
}

int rc_tokenizer_encode(const rc_tokenizer *t, const char *text, size_t len, int add_special,
                        int **ids_out, int *n_out) {
    *ids_out = NULL;
    *n_out = 0;
    char *clean = NULL;
    const char *s = text;
    if (!utf8_valid(text, len)) {
        if (!(clean = rc_utf8_sanitize(text, len, &len))) return -1;
        s = clean;
    }
    rc_ivec out = {0};
    int rc = 0;
    for (int i = 0; add_special && !rc && i < t->n_prefix; i++) rc = rc_ivec_push(&out, t->prefix[i]);
    size_t seg = 0, i = 0;
    while (!rc && i < len) {
        if (!t->added_first[(uint8_t)s[i]]) {
            i++;
            continue;
        }
        const tk_added *best = NULL;
        for (int k = 0; k < t->n_added; k++) {
            const tk_added *a = &t->added[k];
            if (a->len <= len - i && (!best || a->len > best->len) && !memcmp(s + i, a->s, a->len))
                best = a;
        }
        if (!best) {
            i++;
            continue;
        }
        size_t ms = i, me = i + best->len;
        uint32_t cp;
        while (best->lstrip && ms > seg) {
            size_t p = prev_char(s, ms);
            if (!tk_utf8_next((const uint8_t *)s + p, len - p, &cp) || !tk_is_space(cp)) break;
            ms = p;
        }
        while (best->rstrip && me < len) {
            int l = tk_utf8_next((const uint8_t *)s + me, len - me, &cp);
            if (!l || !tk_is_space(cp)) break;
            me += (size_t)l;
        }
        rc = encode_segment(t, s + seg, ms - seg, seg, &out);
        if (!rc) rc = rc_ivec_push(&out, best->id);
        seg = i = me;
    }
    if (!rc) rc = encode_segment(t, s + seg, len - seg, seg, &out);
    for (int k = 0; add_special && !rc && k < t->n_suffix; k++) rc = rc_ivec_push(&out, t->suffix[k]);
    free(clean);
    if (rc) {
        free(out.v);
        return -1;
    }
    if (!out.v && !(out.v = rc_malloc(sizeof(int), "token ids"))) return -1;
    *ids_out = out.v;
    *n_out = out.n;
    return 0;
}

int rc_tokenizer_vocab_size(const rc_tokenizer *t) { return t->n_vocab; }
int rc_tokenizer_bos(const rc_tokenizer *t) { return t->bos; }
int rc_tokenizer_eos(const rc_tokenizer *t) { return t->eos; }
const char *rc_tokenizer_chat_template(const rc_tokenizer *t) { return t->chat_template; }
const char *rc_tokenizer_kind(const rc_tokenizer *t) { return t->kind == TK_SPM ? "spm" : "bpe"; }

int rc_tokenizer_token_id(const rc_tokenizer *t, const char *piece) {
    return piece ? tk_strmap_get(&t->piece_map, piece, strlen(piece)) : -1;
}

const char *rc_tokenizer_piece(const rc_tokenizer *t, int id) {
    return id >= 0 && id < t->n_vocab ? t->piece[id] : NULL;
}

int rc_tokenizer_is_special(const rc_tokenizer *t, int id) {
    return id >= 0 && id < t->n_vocab && (t->attr[id] & TK_ATTR_SPECIAL);
}
