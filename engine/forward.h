// The CPU forward pass over a flat batch of tokens ("ragged batch"): every token carries the KV
// slot (sequence) it belongs to and its position. Prefill of several prompts of different
// lengths and batched decode are the same call, with no padding. The output is the final
// hidden state after the last RMSNorm (the state RE-Control edits); the LM head is a separate
// call so that a caller can edit the state in between.
#pragma once
#include "engine/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int n_slots;  // sequences the cache holds
    int max_len;  // positions per slot
    int n_layers; //
    int kv_dim;   // num_key_value_heads * head_dim
    float *k;     // (n_layers, n_slots, max_len, kv_dim)
    float *v;     // (n_layers, n_slots, max_len, kv_dim)
} rc_kv_cache;

typedef struct {
    const rc_model *model;
    rc_kv_cache kv;
    int n_threads;   // OpenMP threads (0 = default)
    int max_tokens;  // capacity of one forward call in tokens (scratch is sized for it)
    // scratch, sized for max_tokens: (max_tokens, dim) each
    float *x, *xb, *q, *k, *v, *att_out, *hb, *hb2, *att_scores;
    float *rope_cos, *rope_sin; // (max_len, head_dim/2) precomputed tables
} rc_engine;

// Creates an engine with a KV cache of n_slots sequences of max_len positions and scratch for
// up to max_tokens tokens per forward call. Fails with a clear error when memory is short.
int rc_engine_init(rc_engine *e, const rc_model *m, int n_slots, int max_len, int max_tokens);
void rc_engine_free(rc_engine *e);

// Runs n tokens. tokens[i] goes to KV slot slots[i] at position pos[i] (positions of one slot
// must be written in increasing order across calls; a token attends to positions 0..pos[i] of its
// slot). For every i with out_rows[i] >= 0 the post-norm final hidden state is written to
// hidden_out + out_rows[i]*hidden_size. out_rows may be NULL (no outputs). 0 / -1.
int rc_forward(rc_engine *e, int n, const int *tokens, const int *slots, const int *pos,
               const int *out_rows, float *hidden_out);

// logits (n, vocab_size) = hidden (n, hidden_size) @ lm_head^T.
void rc_lm_head(rc_engine *e, int n, const float *hidden, float *logits);
// reward (n, num_labels) = hidden (n, hidden_size) @ score^T (reward models).
void rc_reward_head(rc_engine *e, int n, const float *hidden, float *reward);

#ifdef __cplusplus
}
#endif
