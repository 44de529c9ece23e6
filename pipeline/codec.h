// Text <-> token ids for a model: its tokenizer, or plain ids ("12 7 9") when it has none.
#pragma once
#include "engine/model.h"

#ifdef __cplusplus
extern "C" {
#endif

struct rc_tokenizer;
typedef struct {
    struct rc_tokenizer *tok; // NULL when the model has none (ids only)
    int bos;                  // BOS id or -1
} rc_codec;

// Opens the tokenizer that belongs to model_path (HF directory or GGUF). When there is none
// and allow_ids is set, the codec works on ids only (encode fails; decode writes "12 7 9").
int rc_codec_open(rc_codec *c, const char *model_path, const rc_model *m, int allow_ids);
void rc_codec_close(rc_codec *c);
int rc_codec_has_text(const rc_codec *c);
// text -> ids (malloc'd), special tokens (BOS) added as the model's tokenizer config says. 0 / -1.
int rc_codec_encode(rc_codec *c, const char *text, int **ids, int *n);
// ids -> text (malloc'd; special tokens skipped). NULL on error.
char *rc_codec_decode(rc_codec *c, const int *ids, int n);
// The text ids add after prompt_ids, as the reference sees it: decode(prompt_ids + ids) without
// the leading decode(prompt_ids) (the reference's removeprefix; where the joint text does not
// start with the prompt's text, what follows their common prefix). Unlike decode(ids) alone,
// this keeps the space a SentencePiece response starts with ("Assistant: I", not
// "Assistant:I"). Special tokens skipped; without a tokenizer, decode(ids). NULL on error.
char *rc_codec_decode_after(rc_codec *c, const int *prompt_ids, int n_prompt, const int *ids, int n);
// "1 2 3" (malloc'd).
char *rc_ids_to_text(const int *ids, int n);

#ifdef __cplusplus
}
#endif
