// nltk.word_tokenize-compatible word tokens and the RE-Control diversity metric.
// Word level: the Penn-Treebank-style rewrite rules that nltk's NLTKWordTokenizer applies
// (quotes, punctuation, brackets, dashes, clitics), expressed as PCRE2 substitutions run in
// the same order, then a split on whitespace. Sentence level: nltk.word_tokenize first runs the
// pretrained Punkt model (english); we approximate its decisions without the trained tables:
// a candidate [.?!] followed by punctuation or whitespace+token ends a sentence unless the word
// is an ellipsis, a known abbreviation, an initial followed by a capitalised word, or a number
// or initial followed by a lower-case word (the Punkt rules with empty orthographic context),
// evaluated like Punkt's text_contains_sentbreak on the candidate's context (the word before,
// the next whitespace-delimited chunk), with Punkt's realignment of closing quotes/brackets.
// Measured against nltk 3.10 (punkt_tab english): word rules identical on every text tested;
// after the sentence split, tokens identical on 416/416 fixture texts (tests/fixtures/nltk) and
// on 992 of 1,000 held-out real texts (SHP questions and answers); the rest differ where Punkt's
// trained orthographic statistics decide.
#include "eval/diversity.h"
#include "base/common.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <ctype.h>
#include <pcre2.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

// ---- word-level rules ---------------------------------------------------------------------

typedef struct {
    const char *pat;
    const char *rep;
} rule;

// Order matters: starting quotes, punctuation, brackets, dashes, (pad), ending quotes, clitics.
static const rule k_start[] = {
    {"([«“‘„]|[`]+)", " $1 "},
    {"^\"", "``"},
    {"(``)", " $1 "},
    {"([ \\(\\[{<])(\"|'{2})", "$1 `` "},
    {"(?i)(?<!\\w)(')(?!(?:re|ve|ll|m|t|s|d|n)\\b)(?=\\w)", "$1 "},
};
static const rule k_punct[] = {
    {"([^\\.])(\\.)([\\]\\)}>\"'»”’ ]*+)\\s*$", "$1 $2 $3 "},
    {"([:,])([^\\d])", " $1 $2"},
    {"([:,])$", " $1 "},
    {"\\.{2,}", " $0 "},
    {"[;@#$%&]", " $0 "},
    {"[\\x{2012}-\\x{2015}]", " $0 "},
    {"([^\\.])(\\.)([\\]\\)}>\"']*)\\s*$", "$1 $2$3 "},
    {"[?!]", " $0 "},
    {"([^'])' ", "$1 ' "},
    {"[*]", " $0 "},
    {"[\\]\\[\\(\\)\\{\\}\\<\\>]", " $0 "},
    {"--", " -- "},
};
static const rule k_end[] = {
    {"([»”’])", " $1 "},
    {"''", " '' "},
    {"\"", " '' "},
    {"\\s+", " "},
    {"([^' ])('[sS]|'[mM]|'[dD]|') ", "$1 $2 "},
    {"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ", "$1 $2 "},
    {"(?i)\\b(can)(?#X)(not)\\b", " $1 $2 "},
    {"(?i)\\b(d)(?#X)('ye)\\b", " $1 $2 "},
    {"(?i)\\b(gim)(?#X)(me)\\b", " $1 $2 "},
    {"(?i)\\b(gon)(?#X)(na)\\b", " $1 $2 "},
    {"(?i)\\b(got)(?#X)(ta)\\b", " $1 $2 "},
    {"(?i)\\b(lem)(?#X)(me)\\b", " $1 $2 "},
    {"(?i)\\b(more)(?#X)('n)\\b", " $1 $2 "},
    {"(?i)\\b(wan)(?#X)(na)(?=\\s)", " $1 $2 "},
    {"(?i) ('t)(?#X)(is)\\b", " $1 $2 "},
    {"(?i) ('t)(?#X)(was)\\b", " $1 $2 "},
};

#define N_START (sizeof k_start / sizeof k_start[0])
#define N_PUNCT (sizeof k_punct / sizeof k_punct[0])
#define N_END (sizeof k_end / sizeof k_end[0])

static pcre2_code *g_start[N_START], *g_punct[N_PUNCT], *g_end[N_END], *g_split;
static int g_ready;

static pcre2_code *compile_one(const char *pat) {
    int err;
    PCRE2_SIZE off;
    pcre2_code *c = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err,
                                  &off, NULL);
    if (!c) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        rc_fail("word tokenizer: bad pattern '%s' at %zu: %s", pat, (size_t)off, (char *)msg);
        return NULL;
    }
    pcre2_jit_compile(c, PCRE2_JIT_COMPLETE); // optional speed-up; falls back to the interpreter
    return c;
}

static int init_rules(void) {
    if (g_ready) return 0;
    // Compiled once; the tokenizer is used from one thread at a time (evaluation).
    for (size_t i = 0; i < N_START; i++)
        if (!(g_start[i] = compile_one(k_start[i].pat))) return -1;
    for (size_t i = 0; i < N_PUNCT; i++)
        if (!(g_punct[i] = compile_one(k_punct[i].pat))) return -1;
    for (size_t i = 0; i < N_END; i++)
        if (!(g_end[i] = compile_one(k_end[i].pat))) return -1;
    if (!(g_split = compile_one("\\S+"))) return -1;
    g_ready = 1;
    return 0;
}

// Global substitution of one rule on *buf (length *len), replacing *buf. 0 / -1.
static int subst(pcre2_code *re, const char *rep, char **buf, size_t *len) {
    size_t cap = *len * 2 + 64;
    for (int tries = 0; tries < 4; tries++) {
        char *out = rc_malloc(cap + 1, "word tokenizer buffer");
        if (!out) return -1;
        PCRE2_SIZE olen = cap + 1;
        int rc = pcre2_substitute(re, (PCRE2_SPTR)*buf, *len, 0,
                                  PCRE2_SUBSTITUTE_GLOBAL | PCRE2_SUBSTITUTE_OVERFLOW_LENGTH |
                                      PCRE2_SUBSTITUTE_UNSET_EMPTY | PCRE2_NO_UTF_CHECK,
                                  NULL, NULL, (PCRE2_SPTR)rep, PCRE2_ZERO_TERMINATED,
                                  (PCRE2_UCHAR *)out, &olen);
        if (rc >= 0) {
            free(*buf);
            *buf = out;
            *len = olen;
            return 0;
        }
        free(out);
        if (rc == PCRE2_ERROR_NOMEMORY) {
            cap = olen + 16;
            continue;
        }
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof msg);
        return rc_fail("word tokenizer: substitution failed: %s", (char *)msg);
    }
    return rc_fail("word tokenizer: substitution kept growing");
}

static int words_push(rc_words *w, const char *s, size_t n) {
    if (w->n == w->cap) {
        int nc = w->cap ? w->cap * 2 : 64;
        char **nt = realloc(w->tok, sizeof(char *) * (size_t)nc);
        if (!nt) return rc_fail("out of memory (word tokens)");
        w->tok = nt;
        w->cap = nc;
    }
    char *t = rc_malloc(n + 1, "word token");
    if (!t) return -1;
    memcpy(t, s, n);
    t[n] = 0;
    w->tok[w->n++] = t;
    return 0;
}

void rc_words_free(rc_words *w) {
    for (int i = 0; i < w->n; i++) free(w->tok[i]);
    free(w->tok);
    memset(w, 0, sizeof *w);
}

int rc_word_tokenize_sentence(const char *text, size_t len, rc_words *out) {
    if (init_rules() != 0) return -1;
    // Invalid UTF-8 (a response cut mid-character) would make PCRE2 refuse the subject:
    // replace bad bytes by '?' first.
    char *buf = rc_malloc(len + 3, "word tokenizer buffer");
    if (!buf) return -1;
    memcpy(buf, text, len);
    buf[len] = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)buf[i];
        size_t need = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        int ok = need && i + need <= len;
        for (size_t k = 1; ok && k < need; k++)
            if (((unsigned char)buf[i + k] >> 6) != 2) ok = 0;
        if (!ok) {
            buf[i++] = '?';
            continue;
        }
        i += need;
    }
    size_t n = len;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < N_START; i++) rc = subst(g_start[i], k_start[i].rep, &buf, &n);
    for (size_t i = 0; rc == 0 && i < N_PUNCT; i++) rc = subst(g_punct[i], k_punct[i].rep, &buf, &n);
    if (rc == 0) {
        char *p = rc_malloc(n + 3, "word tokenizer buffer");
        if (!p) rc = -1;
        else {
            p[0] = ' ';
            memcpy(p + 1, buf, n);
            p[n + 1] = ' ';
            p[n + 2] = 0;
            free(buf);
            buf = p;
            n += 2;
        }
    }
    for (size_t i = 0; rc == 0 && i < N_END; i++) rc = subst(g_end[i], k_end[i].rep, &buf, &n);
    if (rc == 0) {
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(g_split, NULL);
        if (!md) rc = rc_fail("out of memory (pcre2 match data)");
        PCRE2_SIZE start = 0;
        while (rc == 0 && start < n) {
            int m = pcre2_match(g_split, (PCRE2_SPTR)buf, n, start, PCRE2_NO_UTF_CHECK, md, NULL);
            if (m < 0) break;
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            rc = words_push(out, buf + ov[0], ov[1] - ov[0]);
            start = ov[1];
        }
        if (md) pcre2_match_data_free(md);
    }
    free(buf);
    return rc;
}

// ---- sentence split (Punkt approximation) ---------------------------------------------------

// Characters Punkt treats as "cannot be inside a word" (plus the curly quotes, handled as
// UTF-8 below).
static int is_nonword_ascii(int c) { return c && strchr(")\";}]*:@'({[?!", c) != NULL; }

// Returns the byte length of a curly quote / guillemet at s (U+2018/2019/201C/201D, U+00AB/BB),
// else 0.
static int curly_len(const unsigned char *s) {
    if (s[0] == 0xE2 && s[1] == 0x80 && (s[2] == 0x98 || s[2] == 0x99 || s[2] == 0x9C || s[2] == 0x9D))
        return 3;
    if (s[0] == 0xC2 && (s[1] == 0xAB || s[1] == 0xBB)) return 2;
    return 0;
}

static int is_nonword_at(const char *s) {
    return is_nonword_ascii((unsigned char)*s) || curly_len((const unsigned char *)s) > 0;
}

// Common English abbreviations (lower case, without the final period) that do not end a
// sentence. Our own list of common abbreviations, not Punkt's trained table; words Punkt's
// english model does not treat as abbreviations (e.g, i.e, etc, no, fig, ...) are left out.
static const char *const k_abbrev[] = {
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "inc", "ltd", "co", "corp", "jan",
    "feb", "aug", "sep", "sept", "oct", "nov", "dec", "wed", "fri", "u.s", "u.k", "a.m", "p.m",
    "gen", "col", "lt", "rep", "sen", "ave", "ft", "messrs", "ph.d", "u.s.a", "calif", "fla",
    "wash", "ariz", "colo", "conn", "ill", "mich", "minn", "tenn", "va", "wis",
};

static int is_abbrev(const char *w, size_t n) {
    char low[64];
    if (n == 0 || n >= sizeof low) return 0;
    for (size_t i = 0; i < n; i++) low[i] = (char)tolower((unsigned char)w[i]);
    low[n] = 0;
    const char *tail = strrchr(low, '-');
    for (size_t i = 0; i < sizeof k_abbrev / sizeof k_abbrev[0]; i++)
        if (!strcmp(low, k_abbrev[i]) || (tail && !strcmp(tail + 1, k_abbrev[i]))) return 1;
    return 0;
}

// Capitalised words that usually start a sentence (our own short list of function words).
static const char *const k_starters[] = {
    "the", "he", "she", "it", "this", "they", "we", "i", "but", "in", "there", "if", "however",
    "these", "so", "when", "while", "although", "thus", "yet", "meanwhile", "moreover",
};

static int is_starter(const char *w, size_t n) {
    for (size_t i = 0; i < sizeof k_starters / sizeof k_starters[0]; i++)
        if (strlen(k_starters[i]) == n && !strncasecmp(w, k_starters[i], n)) return 1;
    return 0;
}

// Punkt's number pattern: ^-?[.,]?\d[\d,.-]*\.?$
static int is_number_tok(const char *w, size_t n) {
    size_t i = 0;
    if (i < n && w[i] == '-') i++;
    if (i < n && (w[i] == '.' || w[i] == ',')) i++;
    if (i >= n || !isdigit((unsigned char)w[i])) return 0;
    for (i++; i < n; i++)
        if (!isdigit((unsigned char)w[i]) && !strchr(",.-", w[i])) return 0;
    return 1;
}

static int first_is_upper(const char *s) {
    unsigned char c = (unsigned char)*s;
    if (c < 0x80) return isupper(c);
    return 0; // non-ASCII capitals: treated as "unknown case"
}
static int first_is_lower(const char *s) {
    unsigned char c = (unsigned char)*s;
    if (c < 0x80) return islower(c);
    return 0;
}

// Length of a multi-character punctuation token at s ("--", "..", ". . ."), else 0.
static size_t multichar_len(const char *s, const char *end) {
    size_t n = 0;
    if (s[0] == '-' || s[0] == '.') {
        while (s + n < end && s[n] == s[0]) n++;
        if (n >= 2) return n;
    }
    // (?:\.\s){2,}\.
    n = 0;
    int pairs = 0;
    while (s + n + 1 < end && s[n] == '.' && isspace((unsigned char)s[n + 1])) {
        n += 2;
        pairs++;
    }
    if (pairs >= 2 && s + n < end && s[n] == '.') return n + 1;
    return 0;
}

static size_t utf8_len(const char *s) {
    unsigned char c = (unsigned char)*s;
    return c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
}

typedef struct {
    const char *s;
    size_t n;
} span;

// Punkt's word tokens of ctx[0..len): multi-char punctuation, words (up to whitespace, a
// non-word character, multi-char punctuation or a word-final comma), or single characters.
static int punkt_words(const char *ctx, size_t len, span *out, int cap) {
    const char *p = ctx, *end = ctx + len;
    int n = 0;
    while (p < end && n < cap) {
        if (isspace((unsigned char)*p)) {
            p++;
            continue;
        }
        size_t m = multichar_len(p, end);
        if (m) {
            out[n++] = (span){p, m};
            p += m;
            continue;
        }
        if (!strchr("(\"`{[:;&#*@)}]-,", *p)) {
            const char *q = p + utf8_len(p);
            while (q < end && !isspace((unsigned char)*q) && !is_nonword_at(q) && !multichar_len(q, end)) {
                if (*q == ',') {
                    const char *r = q + 1;
                    if (r >= end || isspace((unsigned char)*r) || is_nonword_at(r) || multichar_len(r, end))
                        break;
                }
                q += utf8_len(q);
            }
            out[n++] = (span){p, (size_t)(q - p)};
            p = q;
            continue;
        }
        size_t u = utf8_len(p);
        out[n++] = (span){p, u};
        p += u;
    }
    return n;
}

// First and second Punkt annotation passes for token t followed by nx (may be NULL), with
// our abbreviation list and no orthographic statistics. Returns 1 when t is a sentence break.
static int punkt_sentbreak(span t, const span *nx) {
    if (t.n == 1 && (t.s[0] == '.' || t.s[0] == '?' || t.s[0] == '!')) return 1;
    if (t.s[t.n - 1] != '.') return 0;
    if (t.n >= 2 && t.s[0] == '.' && t.s[1] == '.') {
        size_t k = 0;
        while (k < t.n && t.s[k] == '.') k++;
        if (k == t.n) return 0; // ellipsis
    }
    if (t.n >= 2 && t.s[t.n - 2] == '.') return 0; // ends with ".."
    if (is_abbrev(t.s, t.n - 1)) {
        // An abbreviation followed by a capitalised frequent sentence starter ends a sentence.
        return nx && first_is_upper(nx->s) && is_starter(nx->s, nx->n);
    }
    // Initials ("J.") and numbers ("3.") followed by a lower-case word, or an initial followed
    // by a capitalised word, are not breaks (Punkt's ortho heuristic with unknown context).
    if (nx) {
        int initial = t.n == 2 && isalpha((unsigned char)t.s[0]);
        int number = is_number_tok(t.s, t.n);
        int punct = nx->n == 1 && strchr(";:,.!?", nx->s[0]);
        if (initial || number) {
            if (punct || first_is_lower(nx->s)) return 0;
            if (initial && !first_is_lower(nx->s)) return 0; // "J. Bach", "p. 5"
        }
    }
    return 1;
}

// Punkt's text_contains_sentbreak: some token other than the last is a sentence break.
static int context_has_break(const char *ctx, size_t len) {
    span t[64];
    int n = punkt_words(ctx, len, t, 64);
    for (int k = 0; k + 1 < n; k++)
        if (punkt_sentbreak(t[k], &t[k + 1])) return 1;
    return 0;
}

int rc_sent_split(const char *text, int (*fn)(void *ud, const char *s, size_t n), void *ud) {
    size_t len = strlen(text), start = 0, ws_start = 0;
    while (start < len && isspace((unsigned char)text[start])) start++;
    ws_start = start;
    for (size_t i = start; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (isspace(c)) {
            ws_start = i + 1;
            continue;
        }
        if (c != '.' && c != '?' && c != '!') continue;
        const char *after = text + i + 1;
        // A following ? or ! is the next candidate of the same run: decide there.
        if (*after == '?' || *after == '!') continue;
        // Punkt's context: the word before, the end character, then either one non-word
        // character or whitespace and the next whitespace-delimited chunk.
        const char *ctx_end;
        const char *next_tok = NULL;
        if (is_nonword_at(after)) {
            ctx_end = after + utf8_len(after);
        } else if (isspace((unsigned char)*after)) {
            const char *p = after;
            while (*p && isspace((unsigned char)*p)) p++;
            if (!*p) continue; // end of text: the final sentence is emitted below
            next_tok = p;
            while (*p && !isspace((unsigned char)*p)) p++;
            ctx_end = p;
        } else {
            continue;
        }
        if (!context_has_break(text + ws_start, (size_t)(ctx_end - (text + ws_start)))) continue;
        size_t end = i + 1;
        // Closing quotes/brackets that start the next sentence and are followed by whitespace
        // (or "--", or the end) belong to this one (Punkt's boundary realignment).
        size_t j0 = next_tok ? (size_t)(next_tok - text) : end, j = j0;
        for (;;) {
            int cl = curly_len((const unsigned char *)text + j);
            if (cl) j += (size_t)cl;
            else if (text[j] && strchr("\"')]}", text[j])) j++;
            else break;
        }
        int realigned = 0;
        if (j > j0 && (text[j] == 0 || isspace((unsigned char)text[j]) || !strncmp(text + j, "--", 2))) {
            end = j;
            realigned = 1;
        }
        if (end > start && fn(ud, text + start, end - start) != 0) return -1;
        start = next_tok && !realigned ? (size_t)(next_tok - text) : end;
        while (start < len && isspace((unsigned char)text[start])) start++;
        i = start - 1;
        ws_start = start;
    }
    size_t end = len;
    while (end > start && isspace((unsigned char)text[end - 1])) end--;
    if (end > start && fn(ud, text + start, end - start) != 0) return -1;
    return 0;
}

static int tokenize_cb(void *ud, const char *s, size_t n) {
    return rc_word_tokenize_sentence(s, n, (rc_words *)ud);
}

int rc_word_tokenize(const char *text, rc_words *out) {
    memset(out, 0, sizeof *out);
    if (rc_sent_split(text, tokenize_cb, out) != 0) {
        rc_words_free(out);
        return -1;
    }
    return 0;
}

// ---- n-gram repetition ----------------------------------------------------------------------

typedef struct {
    uint64_t h;
    int i; // first token of the n-gram
} gram;

static const rc_words *g_sort_w;
static int g_sort_n;

static int gram_cmp(const void *a, const void *b) {
    const gram *x = a, *y = b;
    if (x->h != y->h) return x->h < y->h ? -1 : 1;
    for (int k = 0; k < g_sort_n; k++) {
        int c = strcmp(g_sort_w->tok[x->i + k], g_sort_w->tok[y->i + k]);
        if (c) return c;
    }
    return 0;
}

double rc_rep_n(const rc_words *w, int n) {
    int m = w->n - n + 1;
    if (m <= 0) return 100.0; // no n-gram: 100*(1 - 0/(0+1)), as the reference computes it
    gram *g = malloc(sizeof(gram) * (size_t)m);
    if (!g) return -1.0;
    for (int i = 0; i < m; i++) {
        uint64_t h = 1469598103934665603ull;
        for (int k = 0; k < n; k++) {
            for (const unsigned char *p = (const unsigned char *)w->tok[i + k]; *p; p++)
                h = (h ^ *p) * 1099511628211ull;
            h = (h ^ 0x1f) * 1099511628211ull; // token separator
        }
        g[i].h = h;
        g[i].i = i;
    }
    g_sort_w = w;
    g_sort_n = n;
    qsort(g, (size_t)m, sizeof *g, gram_cmp);
    int uniq = 1;
    for (int i = 1; i < m; i++)
        if (gram_cmp(&g[i - 1], &g[i]) != 0) uniq++;
    free(g);
    return 100.0 * (1.0 - (double)uniq / ((double)m + 1.0));
}

double rc_diversity_tokens(const rc_words *w) {
    double d = 1.0;
    for (int n = 2; n <= 4; n++) d *= 1.0 - rc_rep_n(w, n) / 100.0;
    return d;
}

double rc_diversity(const char *text) {
    rc_words w;
    if (rc_word_tokenize(text, &w) != 0) return -1.0;
    double d = rc_diversity_tokens(&w);
    rc_words_free(&w);
    return d;
}
