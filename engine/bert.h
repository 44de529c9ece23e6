// BERT encoder on the CPU (HF BertModel): word + learned position + token-type embeddings and
// LayerNorm, post-LayerNorm transformer layers (bidirectional attention, GELU feed-forward), and
// the pooler (tanh(W h[CLS] + b)). Sentence embeddings for the coherence metric (SimCSE).
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { RC_BERT_GELU = 0, RC_BERT_GELU_TANH, RC_BERT_RELU } rc_bert_act;

typedef struct {
    int vocab, d, n_layers, n_heads, d_ff, max_pos, n_types;
    float eps;
    rc_bert_act act;
} rc_bert_config;

typedef struct rc_bert rc_bert;

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

#ifdef __cplusplus
}
#endif
