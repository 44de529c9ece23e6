// Rotary position embedding on the device, HF LLaMA convention (rotate_half: element i pairs
// with i + head_dim/2), from precomputed tables cos/sin (max_len, head_dim/2) fp32.
#pragma once
#include "kernels/cuda/cuda_common.h"

#ifdef __cplusplus
extern "C" {
#endif

// In place on x (n, n_heads, head_dim) fp32; token i is at position pos[i] (device array).
int rc_cuda_rope(float *x, const int *pos, const float *cos_tab, const float *sin_tab, int n,
                 int n_heads, int head_dim, cudaStream_t s);

// The step after the fused QKV projection: qkv (n, (n_heads + 2*n_kv_heads) * head_dim) fp32 holds
// [q | k | v] per token. Writes the rotated q to q_out (n, n_heads*head_dim) fp32 and the rotated k
// and the plain v into the cache of one layer, k_cache/v_cache (n_slots, max_len, n_kv_heads*head_dim)
// of type cache_dt, at slot slots[i], position pos[i] (device arrays).
int rc_cuda_rope_qkv_store(const float *qkv, const int *slots, const int *pos,
                           const float *cos_tab, const float *sin_tab, float *q_out,
                           void *k_cache, void *v_cache, rc_cuda_dtype cache_dt, int n,
                           int n_heads, int n_kv_heads, int head_dim, int max_len,
                           cudaStream_t s);

#ifdef __cplusplus
}
#endif
