// C interface over libsentencepiece (tokenizer/spm.cc): load a model (with the dummy "▁" prefix
// turned off; the caller applies HF's Metaspace rule), encode a segment, inspect pieces.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "tokenizer/tok_internal.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rc_spm rc_spm;

rc_spm *rc_spm_load_file(const char *path); // NULL + error
// A BPE model with byte_fallback and identity normalisation from a vocabulary (GGUF "llama").
// types: SentencePiece piece types (1 normal, 2 unknown, 3 control, 4 user defined, 5 unused,
// 6 byte), may be NULL; scores may be NULL.
rc_spm *rc_spm_build_proto(int n, const char *const *pieces, const uint32_t *piece_lens,
                           const float *scores, const int *types, const char *what);
void rc_spm_free(rc_spm *s);
int rc_spm_size(const rc_spm *s);
const char *rc_spm_piece(const rc_spm *s, int id, size_t *len);
int rc_spm_is_byte(const rc_spm *s, int id);
int rc_spm_is_control(const rc_spm *s, int id);
int rc_spm_is_unknown(const rc_spm *s, int id);
// Appends the ids of text (already in Metaspace form: spaces as "▁") to out. 0 / -1.
int rc_spm_encode(const rc_spm *s, const char *text, size_t len, rc_ivec *out);

#ifdef __cplusplus
}
#endif
