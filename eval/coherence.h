// Coherence (the RE-Control paper's metric, after the SimCSE tool): the cosine similarity between
// the sentence embeddings of a prompt and of its response, averaged over responses. Embedding =
// a BERT encoder's pooler output ("cls", SimCSE's rule for supervised models) or the last layer's
// [CLS] state ("cls_before_pooler", its rule when the model name contains "unsup"), on the
// WordPiece ids truncated to 128 tokens, scaled to unit length.
#pragma once
#include <stdint.h>
#include "engine/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { RC_POOL_AUTO = 0, RC_POOL_CLS, RC_POOL_CLS_BEFORE_POOLER } rc_pool_kind;

typedef struct rc_coherence rc_coherence;

// Loads the BERT model and tokenizer of an HF directory. pool AUTO applies SimCSE's rule to the
// directory's name; max_len 0 means SimCSE's default, 128. 0 / -1.
int rc_coherence_load(rc_coherence **out, const char *dir, rc_pool_kind pool, int max_len);
// The same with the encoder on device dev (rc_encoder_open: CUDA fails clearly without a GPU).
int rc_coherence_open(rc_coherence **out, const char *dir, rc_pool_kind pool, int max_len,
                      rc_device dev);
void rc_coherence_free(rc_coherence *c);
int rc_coherence_dim(const rc_coherence *c);
rc_pool_kind rc_coherence_pool(const rc_coherence *c); // the rule in force (never AUTO)
int rc_coherence_max_len(const rc_coherence *c);
rc_device rc_coherence_device(const rc_coherence *c); // where its encoder runs

// Unit-length embedding (dim floats) of a UTF-8 text. 0 / -1.
int rc_coherence_embed(const rc_coherence *c, const char *text, float *out);
// cos(embed(a), embed(b)) in *cos. 0 / -1.
int rc_coherence_pair(const rc_coherence *c, const char *a, const char *b, double *cos);
// cos[i] = cos(embed(a[i]), embed(b[i])) for n pairs, encoded in one batch; *tokens (may be
// NULL) gets the WordPiece tokens encoded. 0 / -1.
int rc_coherence_pairs(const rc_coherence *c, int n, const char *const *a, const char *const *b,
                       double *cos, int64_t *tokens);

#ifdef __cplusplus
}
#endif
