// Tokenizers for LLaMA-family models, encoding exactly as HF AutoTokenizer (transformers 5):
// SentencePiece models (tokenizer.model, through libsentencepiece) with LlamaTokenizer's
// semantics, and byte-level BPE (GPT-2 / Llama-3 / SmolLM2 style) written here, loaded from an
// HF directory (tokenizer.json or tokenizer.model + tokenizer_config.json) or a GGUF file.
//
// Text is UTF-8. Invalid UTF-8 input is first replaced as Python's
// bytes.decode("utf-8", errors="replace") does (one U+FFFD per maximal invalid subpart), since
// HF tokenizers only accept valid strings. Decoding follows the HF decoders (ByteLevel with
// lossy UTF-8; Metaspace/ByteFallback/Fuse/Strip for SentencePiece).
#pragma once
#include <stddef.h>
#include "base/utf8.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rc_tokenizer rc_tokenizer;

// model_path: an HF model directory, or a .gguf file (tokenizer.ggml.* metadata).
// NULL + rc_fail message on failure.
rc_tokenizer *rc_tokenizer_load(const char *model_path);
void rc_tokenizer_free(rc_tokenizer *t);

// Encodes len bytes of text. add_special: add BOS/EOS as the model's configuration says
// (tokenizer_config.json add_bos_token/add_eos_token, tokenizer.json post_processor, or GGUF
// tokenizer.ggml.add_bos_token). Special-token text such as "<|im_end|>" inside text becomes the
// special token, as HF does. *ids_out is malloc'd (free it). 0 / -1.
int rc_tokenizer_encode(const rc_tokenizer *t, const char *text, size_t len, int add_special,
                        int **ids_out, int *n_out);

// Whole-sequence decode: malloc'd NUL-terminated UTF-8 (NULL + error on a bad id).
// skip_special: drop special tokens (as HF decode(skip_special_tokens=True)).
char *rc_tokenizer_decode(const rc_tokenizer *t, const int *ids, int n, int skip_special);
// The same, with the byte length in *len (the text may contain NUL bytes).
char *rc_tokenizer_decode_n(const rc_tokenizer *t, const int *ids, int n, int skip_special,
                            size_t *len);

// Streaming decoder: feed ids one at a time and get the text that is complete so far. Bytes of a
// character split across tokens are held until the character is complete; the concatenation
// of every piece plus the final flush equals rc_tokenizer_decode of the same ids.
typedef struct rc_detok rc_detok;
rc_detok *rc_detok_new(const rc_tokenizer *t, int skip_special);
// Returns the new text (pointer valid until the next call; *len bytes, NUL-terminated), or NULL
// + error on an out-of-range id.
const char *rc_detok_feed(rc_detok *d, int id, size_t *len);
// Text still held at the end of the sequence (incomplete bytes become U+FFFD); resets d.
const char *rc_detok_flush(rc_detok *d, size_t *len);
void rc_detok_free(rc_detok *d);

int rc_tokenizer_vocab_size(const rc_tokenizer *t); // including added tokens
int rc_tokenizer_bos(const rc_tokenizer *t);        // -1 when none
int rc_tokenizer_eos(const rc_tokenizer *t);        // -1 when none
// Id of a token given as its vocabulary string ("<|im_end|>", "<s>", "Ġthe", "▁the"), or -1.
int rc_tokenizer_token_id(const rc_tokenizer *t, const char *piece);
// The vocabulary string of an id (NULL when out of range); points into t.
const char *rc_tokenizer_piece(const rc_tokenizer *t, int id);
int rc_tokenizer_is_special(const rc_tokenizer *t, int id);
// The chat template (jinja text) from tokenizer_config.json / chat_template.jinja /
// tokenizer.chat_template, or NULL when the model has none. Points into t.
const char *rc_tokenizer_chat_template(const rc_tokenizer *t);
// "spm" or "bpe".
const char *rc_tokenizer_kind(const rc_tokenizer *t);


#ifdef __cplusplus
}
#endif
