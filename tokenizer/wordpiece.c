// WordPiece (BERT) tokenization as HF tokenizers' BertTokenizerFast does it: BertNormalizer
// (clean text, CJK characters padded with spaces, NFD + non-spacing marks dropped, lower case),
// BertPreTokenizer (whitespace and punctuation splits), WordPiece greedy longest match.
// Unicode properties (categories, NFD, case) come from utf8proc, corrected where tokenizers'
// own (older or newer) Unicode tables differ (wordpiece_unicode.h, generated from tokenizers).
#include "tokenizer/wordpiece.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "base/common.h"
#include "tokenizer/tok_internal.h"
#include "tokenizer/wordpiece_unicode.h"

struct rc_wordpiece {
    int n_vocab;
    char **piece; // [n_vocab] (arena)
    tk_strmap map;
    tk_arena arena;
    tk_added *added; // special-token texts matched in the raw input
    int n_added;
    int unk, cls, sep;
    int max_chars;
    int lowercase, strip_accents, chinese, clean;
    char prefix[16]; // continuing sub-word prefix ("##")
    size_t prefix_len;
};

// ---- character classes (as tokenizers' bert normalizer / pre-tokenizer define them) ---------

static int in_list(const uint32_t *a, int n, uint32_t c) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (a[mid] == c) return 1;
        if (a[mid] < c) lo = mid + 1;
        else hi = mid - 1;
    }
    return 0;
}

static const char *in_map(const wp_map_entry *a, int n, uint32_t c) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (a[mid].cp == c) return a[mid].s;
        if (a[mid].cp < c) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

// Unassigned code points (Cn) are kept, as tokenizers' is_other does.
static int is_other(uint32_t c) { // Cc Cf Cs Co, tab/newline/CR excluded
    if (c == '\t' || c == '\n' || c == '\r') return 0;
    if (in_list(wp_not_other, WP_NOT_OTHER_N, c)) return 0;
    switch (utf8proc_category((utf8proc_int32_t)c)) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO: return 1;
    default: return 0;
    }
}

static int is_chinese(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static int is_punct(uint32_t c) {
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
        (c >= 123 && c <= 126))
        return 1;
    if (in_list(wp_punct_extra, WP_PUNCT_EXTRA_N, c)) return 1;
    if (in_list(wp_not_punct, WP_NOT_PUNCT_N, c)) return 0;
    switch (utf8proc_category((utf8proc_int32_t)c)) {
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO: return 1;
    default: return 0;
    }
}

static int put_cp(tk_buf *b, uint32_t c) {
    char u[4];
    int k = tk_utf8_put(c, u);
    return tk_buf_add(b, u, (size_t)k);
}

// Next code point of s[0..n) at *i; an invalid byte reads as U+FFFD (one byte consumed).
static uint32_t next_cp(const char *s, size_t n, size_t *i) {
    uint32_t c;
    int k = tk_utf8_next((const uint8_t *)s + *i, n - *i, &c);
    if (k <= 0) {
        *i += 1;
        return 0xFFFD;
    }
    *i += (size_t)k;
    return c;
}

// BertNormalizer: s[0..n) -> out (UTF-8).
static int normalize(const rc_wordpiece *wp, const char *s, size_t n, tk_buf *out) {
    tk_buf a = {0};
    int rc = -1;
    for (size_t i = 0; i < n;) {
        uint32_t c = next_cp(s, n, &i);
        if (wp->clean) {
            if (c == 0 || c == 0xFFFD || is_other(c)) continue;
            if (tk_is_space(c)) c = ' ';
        }
        if (wp->chinese && is_chinese(c)) {
            if (tk_buf_add(&a, " ", 1) || put_cp(&a, c) || tk_buf_add(&a, " ", 1)) goto done;
        } else if (put_cp(&a, c))
            goto done;
    }
    out->n = 0;
    if (!wp->strip_accents && !wp->lowercase) {
        rc = a.n ? tk_buf_add(out, a.p, a.n) : 0;
        goto done;
    }
    // Accents: per code point, NFD then non-spacing marks dropped (tokenizers' table where it
    // differs). Lower case: per code point, the full mapping.
    tk_buf b = {0};
    const tk_buf *src = &a;
    if (wp->strip_accents) {
        for (size_t i = 0; i < a.n;) {
            uint32_t c = next_cp(a.p, a.n, &i);
            const char *o = in_map(wp_strip_map, WP_STRIP_MAP_N, c);
            if (o) {
                if (tk_buf_add(&b, o, strlen(o))) goto done_b;
                continue;
            }
            utf8proc_int32_t dec[32];
            int last = 0;
            utf8proc_ssize_t m = utf8proc_decompose_char((utf8proc_int32_t)c, dec, 32,
                                                         UTF8PROC_DECOMPOSE, &last);
            if (m < 0 || m > 32) {
                rc_fail("wordpiece: Unicode decomposition of U+%04X failed", (unsigned)c);
                goto done_b;
            }
            for (utf8proc_ssize_t k = 0; k < m; k++)
                if (utf8proc_category(dec[k]) != UTF8PROC_CATEGORY_MN && put_cp(&b, (uint32_t)dec[k]))
                    goto done_b;
        }
        src = &b;
    }
    if (!wp->lowercase) {
        rc = src->n ? tk_buf_add(out, src->p, src->n) : 0;
        goto done_b;
    }
    for (size_t i = 0; i < src->n;) {
        uint32_t c = next_cp(src->p, src->n, &i);
        const char *o = in_map(wp_lower_map, WP_LOWER_MAP_N, c);
        if (o) {
            if (tk_buf_add(out, o, strlen(o))) goto done_b;
        } else if (c == 0x130) { // full mapping (SpecialCasing): i + combining dot above
            if (put_cp(out, 'i') || put_cp(out, 0x307)) goto done_b;
        } else if (put_cp(out, (uint32_t)utf8proc_tolower((utf8proc_int32_t)c)))
            goto done_b;
    }
    rc = 0;
done_b:
    free(b.p);
done:
    free(a.p);
    return rc;
}

// WordPiece on one pre-token w[0..n).
static int word_ids(const rc_wordpiece *wp, const char *w, size_t n, rc_ivec *out) {
    int total = 0;
    for (size_t i = 0; i < n; total++) next_cp(w, n, &i);
    if (total > wp->max_chars) return rc_ivec_push(out, wp->unk);
    size_t bound[513];
    if (total > 512) return rc_fail("wordpiece: max_input_chars_per_word over 512 is not supported");
    int nc = 0;
    for (size_t i = 0; i < n;) {
        bound[nc++] = i;
        next_cp(w, n, &i);
    }
    bound[nc] = n;
    char buf[16 + 4 * 512];
    int start_n = out->n;
    for (int st = 0; st < nc;) {
        int found = -1, en;
        for (en = nc; en > st; en--) {
            size_t len = bound[en] - bound[st];
            const char *key = w + bound[st];
            size_t klen = len;
            if (st > 0) {
                if (wp->prefix_len + len > sizeof buf) continue;
                memcpy(buf, wp->prefix, wp->prefix_len);
                memcpy(buf + wp->prefix_len, w + bound[st], len);
                key = buf;
                klen = wp->prefix_len + len;
            }
            found = tk_strmap_get(&wp->map, key, klen);
            if (found >= 0) break;
        }
        if (found < 0) {
            out->n = start_n;
            return rc_ivec_push(out, wp->unk);
        }
        if (rc_ivec_push(out, found)) return -1;
        st = en;
    }
    return 0;
}

// Pre-tokenize normalized text s[0..n) and run WordPiece on each piece.
static int pretok_ids(const rc_wordpiece *wp, const char *s, size_t n, rc_ivec *out) {
    size_t ws = 0, i = 0;
    int in_word = 0;
    while (i < n) {
        size_t at = i;
        uint32_t c = next_cp(s, n, &i);
        if (tk_is_space(c) || is_punct(c)) {
            if (in_word && word_ids(wp, s + ws, at - ws, out)) return -1;
            in_word = 0;
            if (!tk_is_space(c) && word_ids(wp, s + at, i - at, out)) return -1;
        } else if (!in_word) {
            in_word = 1;
            ws = at;
        }
    }
    if (in_word && word_ids(wp, s + ws, n - ws, out)) return -1;
    return 0;
}

static int segment_ids(const rc_wordpiece *wp, const char *s, size_t n, rc_ivec *out) {
    tk_buf norm = {0};
    int rc = normalize(wp, s, n, &norm);
    if (!rc && norm.n) rc = pretok_ids(wp, norm.p, norm.n, out);
    free(norm.p);
    return rc;
}

static int tokenize_into(const rc_wordpiece *wp, const char *text, size_t len, rc_ivec *out) {
    size_t seg = 0, i = 0;
    while (i < len) {
        int best = -1;
        uint32_t best_len = 0;
        for (int k = 0; k < wp->n_added; k++) {
            const tk_added *a = &wp->added[k];
            if (a->len > best_len && a->len <= len - i && !memcmp(text + i, a->s, a->len)) {
                best = k;
                best_len = a->len;
            }
        }
        if (best < 0) {
            i++;
            continue;
        }
        if (i > seg && segment_ids(wp, text + seg, i - seg, out)) return -1;
        if (rc_ivec_push(out, wp->added[best].id)) return -1;
        i += best_len;
        seg = i;
    }
    if (len > seg && segment_ids(wp, text + seg, len - seg, out)) return -1;
    return 0;
}

int rc_wordpiece_tokenize(const rc_wordpiece *wp, const char *text, size_t len, int **ids, int *n) {
    rc_ivec v = {0};
    if (tokenize_into(wp, text, len, &v)) {
        free(v.v);
        return -1;
    }
    *ids = v.v;
    *n = v.n;
    return 0;
}

int rc_wordpiece_encode(const rc_wordpiece *wp, const char *text, size_t len, int max_len,
                        int **ids, int *n) {
    if (wp->cls < 0 || wp->sep < 0)
        return rc_fail("wordpiece: the vocabulary has no [CLS] or [SEP] token");
    if (max_len != 0 && max_len < 2)
        return rc_fail("wordpiece: max_len %d leaves no room for [CLS] and [SEP]", max_len);
    rc_ivec v = {0};
    if (rc_ivec_push(&v, wp->cls) || tokenize_into(wp, text, len, &v)) goto fail;
    if (max_len > 0 && v.n > max_len - 1) v.n = max_len - 1;
    if (rc_ivec_push(&v, wp->sep)) goto fail;
    *ids = v.v;
    *n = v.n;
    return 0;
fail:
    free(v.v);
    return -1;
}

// ---- loading ----------------------------------------------------------------------------------

static int set_piece(rc_wordpiece *wp, int id, const char *s, size_t len, const char *path) {
    if (id < 0 || id >= wp->n_vocab) return rc_fail("%s: token id %d out of range", path, id);
    char *p = tk_arena_dup(&wp->arena, s, len);
    if (!p) return -1;
    wp->piece[id] = p;
    if (len > UINT32_MAX) return rc_fail("%s: token too long", path);
    return tk_strmap_put(&wp->map, p, (uint32_t)len, id);
}

static int add_special(rc_wordpiece *wp, int id, const char *s) {
    tk_added *na = realloc(wp->added, (size_t)(wp->n_added + 1) * sizeof *na);
    if (!na) return rc_fail("wordpiece: out of memory");
    wp->added = na;
    char *p = tk_arena_dup(&wp->arena, s, strlen(s));
    if (!p) return -1;
    na[wp->n_added++] = (tk_added){.id = id, .s = p, .len = (uint32_t)strlen(s)};
    return 0;
}

static int json_bool(const cJSON *o, const char *key, int dflt, const char *path, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) {
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsBool(v)) return rc_fail("%s: \"%s\" must be true, false or null", path, key);
    *out = cJSON_IsTrue(v);
    return 0;
}

static int load_tokenizer_json(rc_wordpiece *wp, const char *path) {
    size_t len;
    char *txt = rc_read_file(path, &len);
    if (!txt) return -1;
    cJSON *root = cJSON_ParseWithLength(txt, len);
    free(txt);
    int rc = -1;
    if (!root) {
        rc_fail("%s: not valid JSON", path);
        goto done;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "WordPiece")) {
        rc_fail("%s: model.type is %s, expected \"WordPiece\"", path,
                cJSON_IsString(type) ? type->valuestring : "missing");
        goto done;
    }
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!cJSON_IsObject(vocab)) {
        rc_fail("%s: model.vocab is not an object", path);
        goto done;
    }
    int maxid = -1;
    for (const cJSON *e = vocab->child; e; e = e->next) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 1e8) {
            rc_fail("%s: model.vocab[\"%s\"] is not a token id", path, e->string);
            goto done;
        }
        if ((int)e->valuedouble > maxid) maxid = (int)e->valuedouble;
    }
    wp->n_vocab = maxid + 1;
    wp->piece = rc_calloc((size_t)wp->n_vocab + 1, sizeof *wp->piece, "wordpiece vocab");
    if (!wp->piece || tk_strmap_init(&wp->map, (size_t)wp->n_vocab)) goto done;
    for (const cJSON *e = vocab->child; e; e = e->next)
        if (set_piece(wp, (int)e->valuedouble, e->string, strlen(e->string), path)) goto done;
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    const char *unk_s = cJSON_IsString(unk) ? unk->valuestring : "[UNK]";
    wp->unk = tk_strmap_get(&wp->map, unk_s, strlen(unk_s));
    if (wp->unk < 0) {
        rc_fail("%s: the unk_token \"%s\" is not in the vocabulary", path, unk_s);
        goto done;
    }
    const cJSON *mc = cJSON_GetObjectItemCaseSensitive(model, "max_input_chars_per_word");
    if (cJSON_IsNumber(mc)) wp->max_chars = mc->valueint;
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(model, "continuing_subword_prefix");
    if (cJSON_IsString(pre)) {
        if (strlen(pre->valuestring) >= sizeof wp->prefix) {
            rc_fail("%s: continuing_subword_prefix is too long", path);
            goto done;
        }
        strcpy(wp->prefix, pre->valuestring);
    }
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (norm && !cJSON_IsNull(norm)) {
        const cJSON *nt = cJSON_GetObjectItemCaseSensitive(norm, "type");
        if (!cJSON_IsString(nt) || strcmp(nt->valuestring, "BertNormalizer")) {
            rc_fail("%s: normalizer %s is not supported (only BertNormalizer)", path,
                    cJSON_IsString(nt) ? nt->valuestring : "?");
            goto done;
        }
        if (json_bool(norm, "lowercase", 1, path, &wp->lowercase) ||
            json_bool(norm, "strip_accents", wp->lowercase, path, &wp->strip_accents) ||
            json_bool(norm, "handle_chinese_chars", 1, path, &wp->chinese) ||
            json_bool(norm, "clean_text", 1, path, &wp->clean))
            goto done;
    } else
        wp->lowercase = wp->strip_accents = wp->chinese = wp->clean = 0;
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (cJSON_IsArray(added)) {
        for (const cJSON *a = added->child; a; a = a->next) {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
            const cJSON *content = cJSON_GetObjectItemCaseSensitive(a, "content");
            if (!cJSON_IsNumber(id) || !cJSON_IsString(content) || !content->valuestring[0]) {
                rc_fail("%s: an added_tokens entry lacks an id or content", path);
                goto done;
            }
            if (id->valueint >= wp->n_vocab) {
                rc_fail("%s: added token id %d is past the vocabulary", path, id->valueint);
                goto done;
            }
            if (!wp->piece[id->valueint] &&
                set_piece(wp, id->valueint, content->valuestring, strlen(content->valuestring), path))
                goto done;
            if (add_special(wp, id->valueint, content->valuestring)) goto done;
        }
    }
    rc = 0;
done:
    cJSON_Delete(root);
    return rc;
}

static int load_vocab_txt(rc_wordpiece *wp, const char *dir) {
    char path[4096];
    if (rc_path_join(path, sizeof path, dir, "vocab.txt")) return rc_fail("%s: path too long", dir);
    size_t len;
    char *txt = rc_read_file(path, &len);
    if (!txt) return -1;
    int n = 0;
    for (size_t i = 0; i < len; i++) n += txt[i] == '\n';
    if (len && txt[len - 1] != '\n') n++;
    wp->n_vocab = n;
    wp->piece = rc_calloc((size_t)n + 1, sizeof *wp->piece, "wordpiece vocab");
    int rc = -1;
    if (!wp->piece || tk_strmap_init(&wp->map, (size_t)n + 1)) goto done;
    size_t s = 0;
    for (int id = 0; id < n; id++) {
        size_t e = s;
        while (e < len && txt[e] != '\n') e++;
        if (set_piece(wp, id, txt + s, e - s, path)) goto done;
        s = e + 1;
    }
    // tokenizer_config.json: BertTokenizer's options
    char cpath[4096];
    wp->lowercase = 1, wp->chinese = 1, wp->clean = 1;
    int strip = -1;
    if (!rc_path_join(cpath, sizeof cpath, dir, "tokenizer_config.json") && rc_file_exists(cpath)) {
        size_t cl;
        char *ct = rc_read_file(cpath, &cl);
        if (!ct) goto done;
        cJSON *cfg = cJSON_ParseWithLength(ct, cl);
        free(ct);
        if (!cfg) {
            rc_fail("%s: not valid JSON", cpath);
            goto done;
        }
        const cJSON *sa = cJSON_GetObjectItemCaseSensitive(cfg, "strip_accents");
        int bad = json_bool(cfg, "do_lower_case", 1, cpath, &wp->lowercase) ||
                  json_bool(cfg, "tokenize_chinese_chars", 1, cpath, &wp->chinese);
        if (!bad && sa && !cJSON_IsNull(sa)) bad = json_bool(cfg, "strip_accents", 0, cpath, &strip);
        cJSON_Delete(cfg);
        if (bad) goto done;
    }
    wp->strip_accents = strip >= 0 ? strip : wp->lowercase;
    wp->unk = tk_strmap_get(&wp->map, "[UNK]", 5);
    if (wp->unk < 0) {
        rc_fail("%s: no [UNK] token in the vocabulary", path);
        goto done;
    }
    static const char *const specials[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    for (int k = 0; k < 5; k++) {
        int id = tk_strmap_get(&wp->map, specials[k], strlen(specials[k]));
        if (id >= 0 && add_special(wp, id, specials[k])) goto done;
    }
    rc = 0;
done:
    free(txt);
    return rc;
}

int rc_wordpiece_load(rc_wordpiece **out, const char *dir) {
    *out = NULL;
    rc_wordpiece *wp = rc_calloc(1, sizeof *wp, "wordpiece");
    if (!wp) return -1;
    wp->max_chars = 100;
    strcpy(wp->prefix, "##");
    wp->unk = wp->cls = wp->sep = -1;
    char path[4096];
    int rc;
    if (rc_path_join(path, sizeof path, dir, "tokenizer.json")) {
        rc = rc_fail("%s: path too long", dir);
    } else if (rc_file_exists(path)) {
        rc = load_tokenizer_json(wp, path);
    } else {
        char vpath[4096];
        if (rc_path_join(vpath, sizeof vpath, dir, "vocab.txt") || !rc_file_exists(vpath))
            rc = rc_fail("%s: no tokenizer.json or vocab.txt (a BERT tokenizer was expected)", dir);
        else
            rc = load_vocab_txt(wp, dir);
    }
    if (rc) {
        rc_wordpiece_free(wp);
        return -1;
    }
    wp->prefix_len = strlen(wp->prefix);
    wp->cls = tk_strmap_get(&wp->map, "[CLS]", 5);
    wp->sep = tk_strmap_get(&wp->map, "[SEP]", 5);
    *out = wp;
    return 0;
}

void rc_wordpiece_free(rc_wordpiece *wp) {
    if (!wp) return;
    tk_strmap_free(&wp->map);
    tk_arena_free(&wp->arena);
    free(wp->piece);
    free(wp->added);
    free(wp);
}

int rc_wordpiece_vocab_size(const rc_wordpiece *wp) { return wp->n_vocab; }

const char *rc_wordpiece_piece(const rc_wordpiece *wp, int id) {
    return id >= 0 && id < wp->n_vocab ? wp->piece[id] : NULL;
}

void rc_wordpiece_settings(const rc_wordpiece *wp, int *lowercase, int *strip_accents,
                           int *chinese, int *clean) {
    *lowercase = wp->lowercase;
    *strip_accents = wp->strip_accents;
    *chinese = wp->chinese;
    *clean = wp->clean;
}
