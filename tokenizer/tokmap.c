// Containers for the tokenizers: int vector, byte buffer, string arena, open-addressing hash
// maps (byte string -> int; (int, int) -> merge) and UTF-8 helpers.
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "tokenizer/tok_internal.h"

int rc_ivec_push(rc_ivec *a, int x) {
    if (a->n == a->cap) {
        int nc = a->cap ? a->cap * 2 : 64;
        int *nv = realloc(a->v, (size_t)nc * sizeof *nv);
        if (!nv) return rc_fail("out of memory growing a token id list to %d", nc);
        a->v = nv;
        a->cap = nc;
    }
    a->v[a->n++] = x;
    return 0;
}

int tk_buf_add(tk_buf *b, const void *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->n + n + 1) nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) return rc_fail("out of memory growing a text buffer to %zu bytes", nc);
        b->p = np;
        b->cap = nc;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

struct tk_block {
    tk_block *next;
    size_t used, cap;
    char data[];
};

char *tk_arena_dup(tk_arena *a, const char *s, size_t n) {
    tk_block *b = a->head;
    if (!b || b->cap - b->used < n + 1) {
        size_t cap = n + 1 > (1u << 20) ? n + 1 : (1u << 20);
        tk_block *nb = rc_malloc(sizeof *nb + cap, "tokenizer strings");
        if (!nb) return NULL;
        nb->next = a->head;
        nb->used = 0;
        nb->cap = cap;
        a->head = b = nb;
    }
    char *p = b->data + b->used;
    if (n) memcpy(p, s, n);
    p[n] = 0;
    b->used += n + 1;
    return p;
}

void tk_arena_free(tk_arena *a) {
    for (tk_block *b = a->head, *nx; b; b = nx) {
        nx = b->next;
        free(b);
    }
    a->head = NULL;
}

static uint64_t hash_bytes(const char *k, size_t n) {
    // 8 bytes at a time, multiply-xorshift mixing (not cryptographic; vocabulary keys only).
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (n * 0xff51afd7ed558ccdull);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, k + i, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 29;
    }
    uint64_t w = 0;
    memcpy(&w, k + i, n - i);
    h = (h ^ w) * 0x94d049bb133111ebull;
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    return h;
}

int tk_strmap_init(tk_strmap *m, size_t expected) {
    uint32_t cap = 16;
    while (cap < expected * 2 + 1) cap *= 2;
    m->slots = rc_calloc(cap, sizeof *m->slots, "vocabulary hash map");
    if (!m->slots) return -1;
    m->mask = cap - 1;
    m->n = 0;
    return 0;
}

int tk_strmap_put(tk_strmap *m, const char *k, uint32_t len, int val) {
    if ((m->n + 1) * 2 > m->mask + 1) { // grow
        tk_strmap g;
        if (tk_strmap_init(&g, (size_t)(m->mask + 1))) return -1;
        for (uint32_t i = 0; i <= m->mask; i++)
            if (m->slots[i].k) tk_strmap_put(&g, m->slots[i].k, m->slots[i].len, m->slots[i].val);
        free(m->slots);
        *m = g;
    }
    uint64_t h = hash_bytes(k, len);
    for (uint32_t i = (uint32_t)h & m->mask;; i = (i + 1) & m->mask) {
        tk_slot *s = &m->slots[i];
        if (!s->k) {
            s->h = h;
            s->k = k;
            s->len = len;
            s->val = val;
            m->n++;
            return 0;
        }
        if (s->h == h && s->len == len && !memcmp(s->k, k, len)) return 0;
    }
}

int tk_strmap_get(const tk_strmap *m, const char *k, size_t len) {
    if (!m->slots) return -1;
    uint64_t h = hash_bytes(k, len);
    for (uint32_t i = (uint32_t)h & m->mask;; i = (i + 1) & m->mask) {
        const tk_slot *s = &m->slots[i];
        if (!s->k) return -1;
        if (s->h == h && s->len == len && !memcmp(s->k, k, len)) return s->val;
    }
}

void tk_strmap_free(tk_strmap *m) {
    free(m->slots);
    m->slots = NULL;
}

int tk_pairmap_init(tk_pairmap *m, size_t expected) {
    uint32_t cap = 16;
    while (cap < expected * 2 + 1) cap *= 2;
    m->keys = rc_calloc(cap, sizeof *m->keys, "merge table");
    m->rank = rc_malloc(cap * sizeof *m->rank, "merge table");
    m->merged = rc_malloc(cap * sizeof *m->merged, "merge table");
    if (!m->keys || !m->rank || !m->merged) return -1;
    m->mask = cap - 1;
    return 0;
}

static inline uint32_t pair_slot(uint64_t key, uint32_t mask) {
    uint64_t h = key * 0x9e3779b97f4a7c15ull;
    return (uint32_t)(h >> 32) & mask;
}

void tk_pairmap_put(tk_pairmap *m, int a, int b, int rank, int merged) {
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    for (uint32_t i = pair_slot(key, m->mask);; i = (i + 1) & m->mask) {
        if (m->keys[i] == key) return;
        if (!m->keys[i]) {
            m->keys[i] = key;
            m->rank[i] = rank;
            m->merged[i] = merged;
            return;
        }
    }
}

int tk_pairmap_get(const tk_pairmap *m, int a, int b, int *merged) {
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    for (uint32_t i = pair_slot(key, m->mask);; i = (i + 1) & m->mask) {
        uint64_t k = m->keys[i];
        if (k == key) {
            *merged = m->merged[i];
            return m->rank[i];
        }
        if (!k) return INT32_MAX;
    }
}

void tk_pairmap_free(tk_pairmap *m) {
    free(m->keys);
    free(m->rank);
    free(m->merged);
    m->keys = NULL;
    m->rank = m->merged = NULL;
}

int tk_utf8_next(const uint8_t *s, size_t n, uint32_t *cp) {
    if (!n) return 0;
    uint8_t c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int len;
    uint32_t v;
    uint8_t lo = 0x80, hi = 0xbf; // allowed range of the second byte (Unicode Table 3-7)
    if (c >= 0xc2 && c <= 0xdf) len = 2, v = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3, v = c & 0x0f;
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4, v = c & 0x07;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;
    } else
        return 0;
    if (n < (size_t)len) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    v = (v << 6) | (s[1] & 0x3f);
    for (int i = 2; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    *cp = v;
    return len;
}

int tk_utf8_put(uint32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

int tk_is_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
           c == 0x205f || c == 0x3000;
}

// ---- word cache ---------------------------------------------------------------------------
// word bytes -> ids, shared by all threads (one mutex); cleared when full.

typedef struct {
    uint64_t h;
    char *blob; // key bytes, then the ids (int, unaligned copy)
    uint32_t klen, nids;
} tk_centry;

struct tk_cache {
    pthread_mutex_t mu;
    tk_centry *e;
    uint32_t mask, n;
};

#define TK_CACHE_SLOTS (1u << 14)

tk_cache *tk_cache_new(void) {
    tk_cache *c = rc_calloc(1, sizeof *c, "word cache");
    if (!c) return NULL;
    c->e = rc_calloc(TK_CACHE_SLOTS, sizeof *c->e, "word cache");
    if (!c->e) {
        free(c);
        return NULL;
    }
    c->mask = TK_CACHE_SLOTS - 1;
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

static void cache_clear(tk_cache *c) {
    for (uint32_t i = 0; i <= c->mask; i++) free(c->e[i].blob);
    memset(c->e, 0, (size_t)(c->mask + 1) * sizeof *c->e);
    c->n = 0;
}

void tk_cache_free(tk_cache *c) {
    if (!c) return;
    cache_clear(c);
    free(c->e);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

int tk_cache_get(tk_cache *c, const char *w, size_t n, rc_ivec *out) {
    uint64_t h = hash_bytes(w, n);
    int found = 0, rc = 0;
    pthread_mutex_lock(&c->mu);
    for (uint32_t i = (uint32_t)h & c->mask; c->e[i].blob; i = (i + 1) & c->mask) {
        tk_centry *e = &c->e[i];
        if (e->h == h && e->klen == n && !memcmp(e->blob, w, n)) {
            for (uint32_t k = 0; k < e->nids && !rc; k++) {
                int id;
                memcpy(&id, e->blob + n + k * sizeof(int), sizeof id);
                rc = rc_ivec_push(out, id);
            }
            found = 1;
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return rc ? -1 : found;
}

void tk_cache_put(tk_cache *c, const char *w, size_t n, const int *ids, int k) {
    char *blob = malloc(n + (size_t)k * sizeof(int) + 1);
    if (!blob) return; // a cache: failing to remember is harmless
    memcpy(blob, w, n);
    if (k) memcpy(blob + n, ids, (size_t)k * sizeof(int));
    uint64_t h = hash_bytes(w, n);
    pthread_mutex_lock(&c->mu);
    if (c->n >= (c->mask + 1) / 2) cache_clear(c);
    uint32_t i = (uint32_t)h & c->mask;
    for (; c->e[i].blob; i = (i + 1) & c->mask)
        if (c->e[i].h == h && c->e[i].klen == n && !memcmp(c->e[i].blob, w, n)) break;
    if (c->e[i].blob) free(blob); // another thread stored it meanwhile
    else {
        c->e[i] = (tk_centry){h, blob, (uint32_t)n, (uint32_t)k};
        c->n++;
    }
    pthread_mutex_unlock(&c->mu);
}
