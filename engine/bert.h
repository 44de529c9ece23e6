// BERT encoder on the CPU (HF BertModel): word + learned position + token-type embeddings and
// LayerNorm, post-LayerNorm transformer layers (bidirectional attention, GELU feed-forward), and
// the pooler (tanh(W h[CLS] + b)). Sentence embeddings for the coherence metric (SimCSE).
// The weights are public so that the device encoder (engine/bert_cuda.cu) can copy them.
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { RC_BERT_GELU = 0, RC_BERT_GELU_TANH, RC_BERT_RELU } rc_bert_act;

typedef struct {
    int vocab, d, n_layers, n_heads, d_ff, max_pos, n_types;
    float eps;
    rc_bert_act act;
} rc_bert_config;

typedef struct {
    float *wqkv, *bqkv; // (3 d, d) rows of query, key, value; (3 d)
    float *wo, *bo, *ln1_w, *ln1_b;
    float *wi, *bi, *wo2, *bo2, *ln2_w, *ln2_b;
} rc_bert_layer;

typedef struct rc_bert {
    rc_bert_config c;
    float *word, *pos, *type, *ln_w, *ln_b;
    rc_bert_layer *layer;
    float *pool_w, *pool_b; // NULL without a pooler
    float *mem;             // one allocation holding every tensor above
    size_t n_mem;           // floats in mem
} rc_bert;

// What a sentence embedding is: the pooler's output (SimCSE "cls") or the last layer's [CLS]
// state ("cls_before_pooler").
typedef enum { RC_BERT_POOLER = 0, RC_BERT_CLS = 1 } rc_bert_pool;

// Loads config.json + model.safetensors (F32/F16/BF16, converted to fp32) from an HF directory.
// Tensor names with or without a "bert." prefix; LayerNorm "weight"/"bias" or "gamma"/"beta".
// A checkpoint without a pooler loads (rc_bert_has_pooler says 0). 0 / -1.
int rc_bert_load(rc_bert **out, const char *dir);
void rc_bert_free(rc_bert *m);
const rc_bert_config *rc_bert_cfg(const rc_bert *m);
int rc_bert_has_pooler(const rc_bert *m);

// One sequence of n token ids (token type 0, all positions attended). hidden (n, d): the last
// layer's states, may be NULL; pooled (d): the pooler's output, NULL when not wanted (needs the
// pooler). 0 / -1 (ids out of range, n over max_pos).
int rc_bert_forward(const rc_bert *m, const int *ids, int n, float *hidden, float *pooled);

// Checks a ragged batch before it runs: n_seq sequences of lens[s] tokens (1..max_position),
// ids / types (sum of lens) inside the vocabulary / token types, the pooler present when asked.
// 0 / -1 naming the sequence and position.
int rc_bert_check_batch(const rc_bert *m, int n_seq, const int *ids, const int *types,
                        const int *lens, rc_bert_pool pool);
// Encodes a checked ragged batch on the CPU: sequence s is tokens [seq[s], seq[s + 1]) of ids /
// types at positions pos (0.. within each sequence); out (n_seq, d): each one's embedding (not
// normalized). 0 / -1.
int rc_bert_encode_cpu(const rc_bert *m, int n_seq, const int *ids, const int *types,
                       const int *pos, const int *seq, rc_bert_pool pool, float *out);

#ifdef __cplusplus
}
#endif
