// Byte-level BPE (GPT-2, Llama-3, SmolLM2): pre-tokenizer regex splits (PCRE2, UTF + UCP, JIT),
// GPT-2 byte<->unicode mapping, merges by rank over token ids. Words are merged with a linear
// scan when short and with a binary heap over a linked list when long; both pick the lowest-rank
// pair, leftmost first, as HF tokenizers' BPE does. Loaded from tokenizer.json or GGUF metadata.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <cjson/cJSON.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "tokenizer/tok_internal.h"

// Pre-tokenizer regexes as HF tokenizers / llama.cpp define them.
#define PAT_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define PAT_LLAMA3                                                                                 \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|" \
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define PAT_QWEN2                                                                                  \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|" \
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

// GPT-2's bytes_to_unicode: printable bytes map to themselves, the other 68 to U+0100.. in order.
static void byte_unicode_tables(uint32_t b2u[256], int16_t u2b[512]) {
    int n = 0;
    for (int i = 0; i < 512; i++) u2b[i] = -1;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        b2u[b] = printable ? (uint32_t)b : (uint32_t)(256 + n++);
        u2b[b2u[b]] = (int16_t)b;
    }
}

// HF tokenizers run these regexes with Oniguruma, whose Unicode \s is [\t\n\v\f\r\x85\p{Z}];
// PCRE2's \s with UCP also takes \h, which adds U+180E (MONGOLIAN VOWEL SEPARATOR, no longer a
// space since Unicode 6.3). Rewrites \s and \S into explicit classes. out has cap bytes.
#define ONIG_SPACE "\\x09-\\x0d\\x{85}\\p{Z}"
static int rewrite_spaces(const char *pat, char *out, size_t cap, const char *what) {
    size_t o = 0;
    int in_class = 0, class_start = 0;
    for (const char *p = pat; *p; p++) {
        const char *add = NULL;
        char tmp[3] = {0};
        if (p[0] == '\\' && p[1]) {
            if (p[1] == 's') add = in_class ? ONIG_SPACE : "[" ONIG_SPACE "]";
            else if (p[1] == 'S') {
                if (in_class)
                    return rc_fail("%s: \\S inside a character class is not supported in a "
                                   "pre-tokenizer regex",
                                   what);
                add = "[^" ONIG_SPACE "]";
            } else
                tmp[0] = p[0], tmp[1] = p[1], add = tmp;
            p++;
            class_start = 0;
        } else {
            // a ']' right after '[' or '[^' is a literal, not the end of the class
            if (!in_class && p[0] == '[') in_class = class_start = 1;
            else if (in_class && !(class_start && p[0] == '^')) {
                if (p[0] == ']' && !class_start) in_class = 0;
                class_start = 0;
            }
            tmp[0] = p[0];
            add = tmp;
        }
        size_t L = strlen(add);
        if (o + L + 1 > cap) return rc_fail("%s: pre-tokenizer regex too long", what);
        memcpy(out + o, add, L);
        o += L;
    }
    out[o] = 0;
    return 0;
}

int tk_bpe_set_pretok(struct rc_tokenizer *t, const char *const *patterns, int n, const char *what) {
    if (n > 4) return rc_fail("%s: more than 4 pre-tokenizer splits are not supported", what);
    for (int i = 0; i < n; i++) {
        int err;
        PCRE2_SIZE off;
        char pat[4096];
        if (rewrite_spaces(patterns[i], pat, sizeof pat, what)) return -1;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
                                       PCRE2_UTF | PCRE2_UCP, &err, &off, NULL);
        if (!re) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(err, msg, sizeof msg);
            return rc_fail("%s: pre-tokenizer regex '%s' does not compile at offset %zu: %s", what,
                           patterns[i], (size_t)off, (const char *)msg);
        }
        pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); // falls back to the interpreter if unavailable
        t->re[t->n_re++] = re;
    }
    return 0;
}

// Reads one pre-tokenizer object of tokenizer.json into regex patterns (appended to pats).
static int parse_pretok(const cJSON *p, const char **pats, int *n, char **owned, int *n_owned,
                        const char *path) {
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(p, "type");
    if (!cJSON_IsString(type)) return rc_fail("%s: pre_tokenizer without a type", path);
    const char *ty = type->valuestring;
    if (!strcmp(ty, "Sequence")) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
        const cJSON *it;
        cJSON_ArrayForEach(it, arr) if (parse_pretok(it, pats, n, owned, n_owned, path)) return -1;
        return 0;
    }
    if (*n >= 4) return rc_fail("%s: too many pre-tokenizer steps (at most 4)", path);
    if (!strcmp(ty, "ByteLevel")) {
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "add_prefix_space")))
            return rc_fail("%s: ByteLevel pre-tokenizer with add_prefix_space=true is not supported",
                           path);
        const cJSON *ur = cJSON_GetObjectItemCaseSensitive(p, "use_regex");
        if (!ur || cJSON_IsTrue(ur)) pats[(*n)++] = PAT_GPT2;
        return 0;
    }
    if (!strcmp(ty, "Digits")) {
        int ind = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "individual_digits"));
        pats[(*n)++] = ind ? "\\p{N}" : "\\p{N}+";
        return 0;
    }
    if (!strcmp(ty, "Split")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const cJSON *beh = cJSON_GetObjectItemCaseSensitive(p, "behavior");
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "invert")))
            return rc_fail("%s: Split pre-tokenizer with invert=true is not supported", path);
        if (!cJSON_IsString(beh) || strcmp(beh->valuestring, "Isolated"))
            return rc_fail("%s: Split pre-tokenizer behavior '%s' is not supported (only Isolated)",
                           path, cJSON_IsString(beh) ? beh->valuestring : "?");
        const cJSON *re = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
        const cJSON *lit = cJSON_GetObjectItemCaseSensitive(pat, "String");
        if (cJSON_IsString(re)) {
            pats[(*n)++] = re->valuestring;
            return 0;
        }
        if (cJSON_IsString(lit)) { // a literal: quote it for PCRE2
            size_t L = strlen(lit->valuestring);
            char *q = rc_malloc(L + 5, "pre-tokenizer pattern");
            if (!q) return -1;
            snprintf(q, L + 5, "\\Q%s\\E", lit->valuestring);
            owned[(*n_owned)++] = q;
            pats[(*n)++] = q;
            return 0;
        }
        return rc_fail("%s: Split pre-tokenizer without a pattern", path);
    }
    return rc_fail("%s: pre-tokenizer type '%s' is not supported (ByteLevel, Split, Digits, "
                   "Sequence are)",
                   path, ty);
}

// Splits "a b" (a merge line) into two vocabulary ids; -1 when malformed or out of vocabulary.
static int merge_ids(const struct rc_tokenizer *t, const char *a, size_t na, const char *b,
                     size_t nb, int *ia, int *ib, int *im) {
    char tmp[512];
    *ia = tk_strmap_get(&t->piece_map, a, na);
    *ib = tk_strmap_get(&t->piece_map, b, nb);
    if (na + nb > sizeof tmp) return -1;
    memcpy(tmp, a, na);
    memcpy(tmp + na, b, nb);
    *im = tk_strmap_get(&t->piece_map, tmp, na + nb);
    return (*ia < 0 || *ib < 0 || *im < 0) ? -1 : 0;
}

static int add_merge(struct rc_tokenizer *t, const char *a, size_t na, const char *b, size_t nb,
                     int rank, const char *what) {
    int ia, ib, im;
    if (merge_ids(t, a, na, b, nb, &ia, &ib, &im))
        return rc_fail("%s: merge %d '%.*s %.*s' uses a token that is not in the vocabulary", what,
                       rank, (int)na, a, (int)nb, b);
    tk_pairmap_put(&t->merges, ia, ib, rank, im);
    return 0;
}

int tk_bpe_load_json(struct rc_tokenizer *t, const cJSON *root, const char *path) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (!cJSON_IsString(ty) || strcmp(ty->valuestring, "BPE"))
        return rc_fail("%s: model type '%s' is not supported (BPE is)", path,
                       cJSON_IsString(ty) ? ty->valuestring : "?");
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "byte_fallback")))
        return rc_fail("%s: a SentencePiece-style BPE (byte_fallback); put tokenizer.model in the "
                       "same directory to load it through SentencePiece",
                       path);
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (norm && !cJSON_IsNull(norm))
        return rc_fail("%s: normalizers are not supported for byte-level BPE", path);
    const cJSON *cs = cJSON_GetObjectItemCaseSensitive(model, "continuing_subword_prefix");
    const cJSON *ew = cJSON_GetObjectItemCaseSensitive(model, "end_of_word_suffix");
    if ((cJSON_IsString(cs) && cs->valuestring[0]) || (cJSON_IsString(ew) && ew->valuestring[0]))
        return rc_fail("%s: BPE with continuing_subword_prefix / end_of_word_suffix is not "
                       "supported",
                       path);
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    const cJSON *dty = cJSON_GetObjectItemCaseSensitive(dec, "type");
    if (!cJSON_IsString(dty) || strcmp(dty->valuestring, "ByteLevel"))
        return rc_fail("%s: decoder '%s' is not a ByteLevel decoder; not a byte-level BPE", path,
                       cJSON_IsString(dty) ? dty->valuestring : "null");
    t->ignore_merges = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "ignore_merges"));

    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab"), *it;
    cJSON_ArrayForEach(it, vocab) {
        if (!cJSON_IsNumber(it) || it->valueint < 0 || it->valueint >= t->n_vocab)
            return rc_fail("%s: vocab entry '%s' has a bad id", path, it->string);
        if (tk_set_piece(t, it->valueint, it->string, strlen(it->string))) return -1;
    }
    const char *unk = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(model, "unk_token"));
    t->bpe_unk = unk ? tk_strmap_get(&t->piece_map, unk, strlen(unk)) : -1;
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsArray(merges)) // without merges every word would be tokenized byte by byte
        return rc_fail("%s: model.merges %s (a BPE model needs its list of merges, \"a b\" or "
                       "[a, b] each)",
                       path, merges ? "is not a list" : "is missing");
    if (tk_pairmap_init(&t->merges, (size_t)cJSON_GetArraySize(merges))) return -1;
    int rank = 0;
    cJSON_ArrayForEach(it, merges) {
        if (cJSON_IsString(it)) {
            const char *s = it->valuestring, *sp = strchr(s, ' ');
            if (!sp) return rc_fail("%s: merge %d '%s' has no space", path, rank, s);
            if (add_merge(t, s, (size_t)(sp - s), sp + 1, strlen(sp + 1), rank, path)) return -1;
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2) {
            const char *a = cJSON_GetStringValue(cJSON_GetArrayItem(it, 0));
            const char *b = cJSON_GetStringValue(cJSON_GetArrayItem(it, 1));
            if (!a || !b) return rc_fail("%s: merge %d is not a pair of strings", path, rank);
            if (add_merge(t, a, strlen(a), b, strlen(b), rank, path)) return -1;
        } else
            return rc_fail("%s: merge %d is neither \"a b\" nor [a, b]", path, rank);
        rank++;
    }
    const char *pats[4];
    char *owned[4] = {0};
    int n = 0, n_owned = 0, rc = 0;
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    if (pre && !cJSON_IsNull(pre)) rc = parse_pretok(pre, pats, &n, owned, &n_owned, path);
    if (!rc) rc = tk_bpe_set_pretok(t, pats, n, path);
    for (int i = 0; i < n_owned; i++) free(owned[i]);
    return rc;
}

// tokenizer.ggml.pre names, mapped as transformers' GGUF tokenizer conversion maps them (the
// oracle for "AutoTokenizer(gguf_file=...)"): the Llama-3 and Qwen2 families get their split
// regex; the names below whose regex is (or differs only on rare numerals from) the GPT-2
// ByteLevel one get that; any other name is refused, as llama.cpp refuses it, rather than split
// with a regex the model was not trained with. An absent key means "default". Note that
// llama.cpp splits \p{N} first for "smollm"/"starcoder"; that differs only on characters such as
// Roman numerals or superscripts, since these vocabularies have no multi-digit tokens.
static int gguf_pretok(struct rc_tokenizer *t, const char *pre, const char *path) {
    static const char *llama3[] = {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1",
                                   "pixtral", "midm-2.0", "lfm2", "dbrx", "smaug-bpe"};
    static const char *qwen2[] = {"qwen2", "deepseek-r1-qwen", "kormo", "megrez"};
    static const char *gpt2[] = {"default", "gpt2", "gpt-2", "smollm", "starcoder", "refact",
                                 "phi-2", "roberta-bpe", "jina-v1-en", "jina-v2-code"};
    const char *p = NULL;
    for (size_t i = 0; i < sizeof gpt2 / sizeof gpt2[0]; i++)
        if (!strcmp(pre, gpt2[i])) p = PAT_GPT2;
    for (size_t i = 0; i < sizeof llama3 / sizeof llama3[0]; i++)
        if (!strcmp(pre, llama3[i])) p = PAT_LLAMA3;
    for (size_t i = 0; i < sizeof qwen2 / sizeof qwen2[0]; i++)
        if (!strcmp(pre, qwen2[i])) p = PAT_QWEN2;
    if (!p)
        return rc_fail("%s: tokenizer.ggml.pre '%s' is not a pre-tokenizer this engine knows, so "
                       "the text cannot be split as the model was trained (known: the GPT-2 family "
                       "gpt2, smollm, starcoder, ...; llama-bpe/llama3; qwen2)",
                       path, pre);
    return tk_bpe_set_pretok(t, &p, 1, path);
}

int tk_bpe_load_gguf(struct rc_tokenizer *t, const rc_gguf *g) {
    t->bpe_unk = -1;
    const rc_gguf_kv *merges = rc_gguf_find(g, "tokenizer.ggml.merges");
    if (!merges || merges->type != RC_GGUF_ARRAY || merges->arr_type != RC_GGUF_STRING)
        return rc_fail("%s: tokenizer.ggml.merges (array of strings) is missing", g->path);
    if (tk_pairmap_init(&t->merges, merges->arr_n)) return -1;
    for (uint64_t r = 0; r < merges->arr_n; r++) {
        const rc_gguf_str *s = &merges->arr_strs[r];
        const char *sp = memchr(s->ptr, ' ', s->len);
        if (!sp) return rc_fail("%s: merge %llu has no space", g->path, (unsigned long long)r);
        size_t na = (size_t)(sp - s->ptr);
        if (add_merge(t, s->ptr, na, sp + 1, s->len - na - 1, (int)r, g->path)) return -1;
    }
    char *pre = rc_gguf_get_str(g, "tokenizer.ggml.pre");
    int rc = gguf_pretok(t, pre ? pre : "default", g->path);
    free(pre);
    return rc;
}

int tk_bpe_finish(struct rc_tokenizer *t) {
    uint32_t b2u[256];
    int16_t u2b[512];
    byte_unicode_tables(b2u, u2b);
    int missing = 0;
    for (int b = 0; b < 256; b++) {
        char u[4];
        int n = tk_utf8_put(b2u[b], u);
        t->byte_id[b] = tk_strmap_get(&t->piece_map, u, (size_t)n);
        missing += t->byte_id[b] < 0;
    }
    if (missing > 64 || t->byte_id['a'] < 0 || t->byte_id['0'] < 0)
        return rc_fail("the vocabulary has no token for %d of the 256 bytes; not a byte-level BPE",
                       missing);
    if (tk_strmap_init(&t->raw_map, (size_t)t->n_vocab)) return -1;
    char tmp[1024];
    for (int id = 0; id < t->n_vocab; id++) {
        const uint8_t *p = (const uint8_t *)t->piece[id];
        size_t n = t->piece_len[id], o = 0, i = 0;
        int ok = n < sizeof tmp;
        while (ok && i < n) { // every char must be one of the 256 byte chars
            uint32_t cp;
            int l = tk_utf8_next(p + i, n - i, &cp);
            if (!l || cp >= 512 || u2b[cp] < 0) ok = 0;
            else tmp[o++] = (char)u2b[cp], i += (size_t)l;
        }
        if (!ok) o = n; // as HF's ByteLevel decoder: such tokens decode to their own UTF-8
        t->tb[id] = ok ? tk_arena_dup(&t->arena, tmp, o) : t->piece[id];
        if (!t->tb[id]) return -1;
        t->tb_len[id] = (uint32_t)o;
        int valid = 1;
        for (size_t k = 0; k < o && valid;) {
            uint32_t cp;
            int l = tk_utf8_next((const uint8_t *)t->tb[id] + k, o - k, &cp);
            if (!l) valid = 0;
            k += (size_t)l;
        }
        if (valid) t->attr[id] |= TK_ATTR_UTF8;
        if (!(t->attr[id] & TK_ATTR_ADDED) && n)
            if (tk_strmap_put(&t->raw_map, t->tb[id], (uint32_t)o, id)) return -1;
    }
    return 0;
}

// ---- merging ------------------------------------------------------------------------------

static int word_linear(const struct rc_tokenizer *t, const int *ids, int m, rc_ivec *out) {
    int sym[64], rk[64], mg[64];
    memcpy(sym, ids, (size_t)m * sizeof(int));
    for (int i = 0; i + 1 < m; i++) rk[i] = tk_pairmap_get(&t->merges, sym[i], sym[i + 1], &mg[i]);
    while (m > 1) {
        int best = 0;
        for (int i = 1; i + 1 < m; i++)
            if (rk[i] < rk[best]) best = i;
        if (rk[best] == INT32_MAX) break;
        sym[best] = mg[best];
        int tail = m - best - 2; // elements after best+1
        memmove(sym + best + 1, sym + best + 2, (size_t)tail * sizeof(int));
        memmove(rk + best + 1, rk + best + 2, (size_t)(tail > 0 ? tail - 1 : 0) * sizeof(int));
        memmove(mg + best + 1, mg + best + 2, (size_t)(tail > 0 ? tail - 1 : 0) * sizeof(int));
        m--;
        if (best > 0) rk[best - 1] = tk_pairmap_get(&t->merges, sym[best - 1], sym[best], &mg[best - 1]);
        if (best + 1 < m) rk[best] = tk_pairmap_get(&t->merges, sym[best], sym[best + 1], &mg[best]);
    }
    for (int i = 0; i < m; i++)
        if (rc_ivec_push(out, sym[i])) return -1;
    return 0;
}

// Min-heap of (rank << 32 | position): lowest rank first, then leftmost.
static void heap_push(uint64_t *h, size_t *n, uint64_t v) {
    size_t i = (*n)++;
    while (i) {
        size_t p = (i - 1) / 2;
        if (h[p] <= v) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static uint64_t heap_pop(uint64_t *h, size_t *n) {
    uint64_t top = h[0], v = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && h[c + 1] < h[c]) c++;
        if (v <= h[c]) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = v;
    return top;
}

static int word_heap(const struct rc_tokenizer *t, const int *ids, size_t m, rc_ivec *out) {
    int *id = rc_malloc(m * 3 * sizeof(int), "BPE word");
    uint64_t *heap = rc_malloc(m * 2 * sizeof(uint64_t), "BPE heap");
    if (!id || !heap) {
        free(id);
        free(heap);
        return -1;
    }
    int *prev = id + m, *next = id + 2 * m;
    size_t hn = 0;
    for (size_t i = 0; i < m; i++) {
        id[i] = ids[i];
        prev[i] = (int)i - 1;
        next[i] = i + 1 < m ? (int)i + 1 : -1;
    }
    int mg;
    for (size_t i = 0; i + 1 < m; i++) {
        int r = tk_pairmap_get(&t->merges, id[i], id[i + 1], &mg);
        if (r != INT32_MAX) heap_push(heap, &hn, ((uint64_t)r << 32) | i);
    }
    while (hn) {
        uint64_t top = heap_pop(heap, &hn);
        int r = (int)(top >> 32), pos = (int)(uint32_t)top;
        if (id[pos] < 0 || next[pos] < 0) continue; // stale: the symbol was merged away
        int nx = next[pos];
        if (tk_pairmap_get(&t->merges, id[pos], id[nx], &mg) != r) continue; // stale pair
        id[pos] = mg;
        id[nx] = -1;
        next[pos] = next[nx];
        if (next[nx] >= 0) prev[next[nx]] = pos;
        if (prev[pos] >= 0) {
            int rr = tk_pairmap_get(&t->merges, id[prev[pos]], id[pos], &mg);
            if (rr != INT32_MAX) heap_push(heap, &hn, ((uint64_t)rr << 32) | (uint32_t)prev[pos]);
        }
        if (next[pos] >= 0) {
            int rr = tk_pairmap_get(&t->merges, id[pos], id[next[pos]], &mg);
            if (rr != INT32_MAX) heap_push(heap, &hn, ((uint64_t)rr << 32) | (uint32_t)pos);
        }
    }
    int rc = 0;
    for (int i = 0; i >= 0 && !rc; i = next[i]) rc = rc_ivec_push(out, id[i]);
    free(id);
    free(heap);
    return rc;
}

int tk_bpe_word(const struct rc_tokenizer *t, const uint8_t *w, size_t n, int force_heap,
                rc_ivec *out) {
    if (!n) return 0;
    if (t->ignore_merges) {
        int id = tk_strmap_get(&t->raw_map, (const char *)w, n);
        if (id >= 0) return rc_ivec_push(out, id);
    }
    // Initial symbols: one per byte. A byte without a token becomes the unknown token, or is
    // dropped when the model has none (as HF's BPE does; its neighbours then become adjacent).
    int stack[64], *ids = n <= 64 ? stack : rc_malloc(n * sizeof(int), "BPE word");
    if (!ids) return -1;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int id = t->byte_id[w[i]];
        if (id < 0) id = t->bpe_unk;
        if (id >= 0) ids[m++] = id;
    }
    int rc;
    if (m <= 1) rc = m ? rc_ivec_push(out, ids[0]) : 0;
    else if (m <= 64 && !force_heap) rc = word_linear(t, ids, (int)m, out);
    else rc = word_heap(t, ids, m, out);
    if (ids != stack) free(ids);
    return rc;
}

// Applies split k (Isolated: matches and the gaps between them are pieces) and recurses.
static int split_rec(const struct rc_tokenizer *t, pcre2_match_data **md, int k, const char *s,
                     size_t n, rc_ivec *out) {
    if (k >= t->n_re || k >= 4) {
        if (!t->cache || n > TK_CACHE_MAX_WORD) return tk_bpe_word(t, (const uint8_t *)s, n, 0, out);
        int hit = tk_cache_get(t->cache, s, n, out);
        if (hit) return hit < 0 ? -1 : 0;
        int before = out->n;
        if (tk_bpe_word(t, (const uint8_t *)s, n, 0, out)) return -1;
        tk_cache_put(t->cache, s, n, out->v + before, out->n - before);
        return 0;
    }
    const pcre2_code *re = t->re[k];
    size_t pos = 0, start = 0;
    while (start < n) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, n, start, PCRE2_NO_UTF_CHECK, md[k], NULL);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT) // a very long run: retry with the interpreter
            rc = pcre2_match(re, (PCRE2_SPTR)s, n, start, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md[k],
                             NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return rc_fail("pre-tokenizer regex failed: %s", (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md[k]);
        size_t ms = ov[0], me = ov[1];
        if (me == ms) { // empty match: step over one character
            start = me + 1;
            while (start < n && ((uint8_t)s[start] & 0xc0) == 0x80) start++;
            continue;
        }
        if (ms > pos && split_rec(t, md, k + 1, s + pos, ms - pos, out)) return -1;
        if (split_rec(t, md, k + 1, s + ms, me - ms, out)) return -1;
        pos = start = me;
    }
    if (pos < n && split_rec(t, md, k + 1, s + pos, n - pos, out)) return -1;
    return 0;
}

int tk_bpe_encode(const struct rc_tokenizer *t, const char *s, size_t len, rc_ivec *out) {
    pcre2_match_data *md[4] = {0};
    int rc = 0;
    for (int k = 0; k < t->n_re && !rc; k++) {
        md[k] = pcre2_match_data_create_from_pattern(t->re[k], NULL);
        if (!md[k]) rc = rc_fail("out of memory for regex match data");
    }
    if (!rc) rc = split_rec(t, md, 0, s, len, out);
    for (int k = 0; k < t->n_re; k++) pcre2_match_data_free(md[k]);
    return rc;
}

void tk_bpe_free(struct rc_tokenizer *t) {
    for (int k = 0; k < t->n_re; k++) pcre2_code_free(t->re[k]);
    t->n_re = 0;
    tk_pairmap_free(&t->merges);
    tk_strmap_free(&t->raw_map);
}
