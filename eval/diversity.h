// Word tokenization compatible with nltk.word_tokenize (Treebank-style rules of nltk's
// NLTKWordTokenizer, applied per sentence after a Punkt-like sentence split), and the
// RE-Control diversity metric over those tokens:
//   rep_n = 100 * (1 - |unique n-grams| / (|n-grams| + 1)),  diversity = prod_{n=2..4} (1 - rep_n/100)
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    char **tok; // (n) NUL-terminated UTF-8 tokens, each malloc'd
    int n;
    int cap;
} rc_words;

// Tokenizes UTF-8 text like nltk.word_tokenize(text) (sentence split first). 0 / -1.
int rc_word_tokenize(const char *text, rc_words *out);
// Tokenizes one sentence like NLTKWordTokenizer().tokenize(text) (no sentence split) —
// nltk.word_tokenize(text, preserve_line=True). Appends to out. 0 / -1.
int rc_word_tokenize_sentence(const char *text, size_t len, rc_words *out);
// Splits text into sentences like nltk.sent_tokenize (approximation of Punkt, see diversity.c):
// calls fn(ud, start, len) for each sentence (byte ranges into text). 0 / -1.
int rc_sent_split(const char *text, int (*fn)(void *ud, const char *s, size_t n), void *ud);
void rc_words_free(rc_words *w);

// rep_n over a token list (100 when the text has no n-gram, as the reference formula gives,
// so a text under 4 tokens has diversity 0).
double rc_rep_n(const rc_words *w, int n);
// prod_{n=2..4} (1 - rep_n/100) for one text (its tokens).
double rc_diversity_tokens(const rc_words *w);
// Tokenizes and computes the diversity of one text. Returns the value, or -1 on error.
double rc_diversity(const char *text);

#ifdef __cplusplus
}
#endif
