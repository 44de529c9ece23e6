// Causal self-attention over the KV cache on the device, GQA (n_heads a multiple of n_kv_heads),
// fp32 math with online softmax. q (n, n_heads*head_dim) fp32 already rotated; the cache of one
// layer k_cache/v_cache (n_slots, max_len, n_kv_heads*head_dim) of type dt (f16/bf16; f32 for
// exactness tests) already holds every position a query attends to; out (n, n_heads*head_dim)
// of type dt.
// Two kernels: prefill (tiles of up to RC_ATTN_TILE consecutive queries of one sequence share
// the K/V tiles they read) and decode (one query per sequence, the KV length split across blocks
// and merged by a second small kernel, so that batch 1 with a long context still fills the GPU).
#pragma once
#include "kernels/cuda/cuda_common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RC_ATTN_TILE 32

// Groups a ragged batch into query tiles: each tile is 4 ints {first token, count, slot, pos of
// the first token}, made of consecutive tokens of one slot at consecutive positions (at most
// RC_ATTN_TILE). tiles must hold 4*n ints. Returns the number of tiles.
int rc_cuda_attn_build_tiles(int n, const int *slots, const int *pos, int *tiles);

// Prefill / mixed batches. tiles (device, 4*n_tiles ints) from rc_cuda_attn_build_tiles.
int rc_cuda_attention_prefill(const float *q, const void *k_cache, const void *v_cache,
                              rc_cuda_dtype dt, const int *tiles, int n_tiles, void *out,
                              int n_heads, int n_kv_heads, int head_dim, int max_len,
                              cudaStream_t s);

// Splits of the KV length that keep about 4 blocks per SM busy for n queries (1..64).
int rc_cuda_attention_decode_splits(int n, int n_heads, int max_len, int n_sms);
// fp32 scratch the decode kernel needs for n queries and n_splits splits.
size_t rc_cuda_attention_decode_scratch(int n, int n_heads, int head_dim, int n_splits);

// Decode: query i is at position pos[i] of slot slots[i] (device arrays) and attends to positions
// 0..pos[i]. scratch holds rc_cuda_attention_decode_scratch(...) floats.
int rc_cuda_attention_decode(const float *q, const void *k_cache, const void *v_cache,
                             rc_cuda_dtype dt, const int *slots, const int *pos, float *scratch,
                             int n_splits, void *out, int n, int n_heads, int n_kv_heads,
                             int head_dim, int max_len, cudaStream_t s);

#ifdef __cplusplus
}
#endif
