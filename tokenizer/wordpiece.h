// WordPiece tokenizer of BERT models, equal to HF's BertTokenizerFast (tokenizers' BertNormalizer,
// BertPreTokenizer, WordPiece model, [CLS] ... [SEP] template): text cleaning, CJK characters
// isolated, accents stripped and lower-cased, split on whitespace and punctuation, greedy
// longest-match-first sub-words with "##", [UNK] for words over the character limit.
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rc_wordpiece rc_wordpiece;

// Loads a BERT tokenizer from an HF directory: tokenizer.json (WordPiece model, BertNormalizer
// settings) when present, else vocab.txt with tokenizer_config.json's do_lower_case,
// strip_accents and tokenize_chinese_chars (BertTokenizer's defaults when absent). 0 / -1.
int rc_wordpiece_load(rc_wordpiece **out, const char *dir);
void rc_wordpiece_free(rc_wordpiece *wp);

// Ids of text (UTF-8, len bytes) without special tokens around it (special-token text inside the
// input, such as "[MASK]", becomes that token). *ids is malloc'd. 0 / -1.
int rc_wordpiece_tokenize(const rc_wordpiece *wp, const char *text, size_t len, int **ids, int *n);
// [CLS] ids [SEP], truncated to max_len tokens in all (0: no limit) by dropping the text's
// tail, as tokenizer(text, truncation=True, max_length=max_len) does. 0 / -1.
int rc_wordpiece_encode(const rc_wordpiece *wp, const char *text, size_t len, int max_len,
                        int **ids, int *n);

int rc_wordpiece_vocab_size(const rc_wordpiece *wp);
// The vocabulary string of id (NULL when out of range).
const char *rc_wordpiece_piece(const rc_wordpiece *wp, int id);
// The normalizer's settings as loaded: lowercase, strip_accents, chinese chars, clean text.
void rc_wordpiece_settings(const rc_wordpiece *wp, int *lowercase, int *strip_accents,
                           int *chinese, int *clean);

#ifdef __cplusplus
}
#endif
