// CPU causal self-attention over a KV cache, GQA, for a ragged batch of tokens: token t (query
// q[t]) attends to positions 0..pos[t] of cache slot slots[t]. fp32, numerically stable softmax.
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

// out: (n, n_heads * head_dim)
// q:   (n, n_heads * head_dim), already rotated
// k_cache, v_cache: (n_slots, max_len, n_kv_heads * head_dim) of ONE layer; positions 0..pos[t]
//                   of slot slots[t] must already hold that sequence's keys/values
// slots, pos: (n); query head h reads kv head h / (n_heads / n_kv_heads)
// scale: usually 1 / sqrt(head_dim). n_heads must be a multiple of n_kv_heads.
void rc_cpu_attention(float *out, const float *q, const float *k_cache, const float *v_cache,
                      const int *slots, const int *pos, int n, int n_heads, int n_kv_heads,
                      int head_dim, int max_len, float scale);

#ifdef __cplusplus
}
#endif
