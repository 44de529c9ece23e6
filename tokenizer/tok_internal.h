// Internal to tokenizer/: the tokenizer struct shared by the loaders (tokenizer.c), the byte-
// level BPE model (bpe.c), the SentencePiece wrapper (spm.cc) and the decoders (detok.c), plus
// small containers (int vector, string arena, string->int and pair->merge hash maps).
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "base/gguf.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int *v;
    int n, cap;
} rc_ivec;
int rc_ivec_push(rc_ivec *a, int x); // 0 / -1

// Growable byte buffer.
typedef struct {
    char *p;
    size_t n, cap;
} tk_buf;
int tk_buf_add(tk_buf *b, const void *s, size_t n);

// Strings that live as long as the tokenizer: bump allocation in 1 MiB blocks.
typedef struct tk_block tk_block;
typedef struct {
    tk_block *head;
} tk_arena;
char *tk_arena_dup(tk_arena *a, const char *s, size_t n); // NUL-terminated copy, NULL + error
void tk_arena_free(tk_arena *a);

// Open-addressing map from byte strings (not owned; they must outlive the map) to int.
typedef struct {
    uint64_t h;
    const char *k;
    uint32_t len;
    int32_t val;
} tk_slot;
typedef struct {
    tk_slot *slots;
    uint32_t mask, n;
} tk_strmap;
int tk_strmap_init(tk_strmap *m, size_t expected);
int tk_strmap_put(tk_strmap *m, const char *k, uint32_t len, int val); // keeps the first value
int tk_strmap_get(const tk_strmap *m, const char *k, size_t len);      // -1 when absent
void tk_strmap_free(tk_strmap *m);

// Merge table: (left id, right id) -> (rank, merged id).
typedef struct {
    uint64_t *keys; // 0 = empty (keys are stored +1)
    int32_t *rank, *merged;
    uint32_t mask;
} tk_pairmap;
int tk_pairmap_init(tk_pairmap *m, size_t expected);
void tk_pairmap_put(tk_pairmap *m, int a, int b, int rank, int merged); // keeps the first
// Returns the rank (INT32_MAX when the pair does not merge); *merged set when found.
int tk_pairmap_get(const tk_pairmap *m, int a, int b, int *merged);
void tk_pairmap_free(tk_pairmap *m);

// Word -> ids cache shared by all threads (a mutex inside). get: 1 and ids appended when
// found, 0 when absent, -1 on error. put copies; a failed allocation just forgets.
typedef struct tk_cache tk_cache;
tk_cache *tk_cache_new(void);
void tk_cache_free(tk_cache *c);
int tk_cache_get(tk_cache *c, const char *w, size_t n, rc_ivec *out);
void tk_cache_put(tk_cache *c, const char *w, size_t n, const int *ids, int k);
#define TK_CACHE_MAX_WORD 64 // longer words are not cached

// UTF-8: decodes one code point at s (n bytes available); returns its length, or 0 when the
// bytes at s are not a valid sequence (*cp untouched).
int tk_utf8_next(const uint8_t *s, size_t n, uint32_t *cp);
int tk_utf8_put(uint32_t cp, char *out); // encodes cp, returns 1..4
int tk_is_space(uint32_t cp);            // Unicode White_Space (as Rust char::is_whitespace)

enum { TK_SPM = 1, TK_BPE = 2 };
enum { TK_ATTR_SPECIAL = 1, TK_ATTR_ADDED = 2, TK_ATTR_UTF8 = 4 /* tb is complete UTF-8 */ };
// How "▁" is put before a text segment (SentencePiece): NEVER; FIRST (the segment at offset 0,
// unless it starts with a space); ALWAYS (every segment, unless it starts with a space); DUMMY
// (every segment, unconditionally: SentencePiece's own add_dummy_prefix).
enum { TK_PREPEND_NEVER = 0, TK_PREPEND_FIRST = 1, TK_PREPEND_ALWAYS = 2, TK_PREPEND_DUMMY = 3 };

typedef struct {
    int id;
    const char *s; // content (arena)
    uint32_t len;
    uint8_t lstrip, rstrip;
} tk_added;

struct rc_spm;

struct rc_tokenizer {
    int kind;                 // TK_SPM or TK_BPE
    int n_vocab;              // including added tokens
    char **piece;             // [n_vocab] vocabulary strings (arena; "" for holes)
    uint32_t *piece_len;      // [n_vocab]
    char **tb;                // [n_vocab] bytes a token decodes to (arena)
    uint32_t *tb_len;         // [n_vocab]
    int16_t *byteval;         // [n_vocab] SentencePiece <0xXX> byte value, else -1
    uint8_t *attr;            // [n_vocab] TK_ATTR_* bits
    tk_strmap piece_map;      // piece string -> id
    tk_added *added;          // tokens matched in text before the model runs
    int n_added;              //
    uint8_t added_first[256]; // 1 when some added token starts with this byte
    int bos, eos, unk;        // -1 when none
    int prefix[4], n_prefix;  // ids added before / after the text when add_special
    int suffix[4], n_suffix;  //
    char *chat_template;      // arena or NULL
    tk_arena arena;
    // SentencePiece
    struct rc_spm *spm;
    int prepend_scheme; // TK_PREPEND_*
    int strip_lead;     // the decoder strips one leading space (LlamaTokenizer add_prefix_space)
    int spm_split;      // no piece has "▁" after another character: encode word by word
    tk_cache *cache;    // word -> ids (both kinds), NULL = none
    // byte-level BPE
    int byte_id[256];  // id of each single byte's token
    tk_pairmap merges; //
    tk_strmap raw_map; // raw token bytes -> id (model vocabulary), for ignore_merges
    int ignore_merges; //
    int bpe_unk;       // the BPE model's unk_token id (-1: unknown bytes are dropped)
    void *re[4];       // pcre2_code* pre-tokenizer splits, applied in sequence (Isolated)
    int n_re;
};

// tokenizer.c: shared helpers for the loaders.
int tk_alloc_vocab(struct rc_tokenizer *t, int n);
int tk_set_piece(struct rc_tokenizer *t, int id, const char *s, size_t len);
int tk_add_added(struct rc_tokenizer *t, int id, const char *s, size_t len, int special, int lstrip,
                 int rstrip);

// bpe.c
struct cJSON;
int tk_bpe_load_json(struct rc_tokenizer *t, const struct cJSON *root, const char *path);
int tk_bpe_load_gguf(struct rc_tokenizer *t, const rc_gguf *g);
int tk_bpe_set_pretok(struct rc_tokenizer *t, const char *const *patterns, int n, const char *what);
int tk_bpe_finish(struct rc_tokenizer *t); // byte ids, token bytes; after vocab + added tokens
int tk_bpe_encode(const struct rc_tokenizer *t, const char *s, size_t len, rc_ivec *out);
void tk_bpe_free(struct rc_tokenizer *t);
// Exposed for tests: merge one pre-token (raw bytes) with the quadratic or the heap algorithm.
int tk_bpe_word(const struct rc_tokenizer *t, const uint8_t *w, size_t n, int force_heap,
                rc_ivec *out);

#ifdef __cplusplus
}
#endif
