// Token sampling on the device: temperature, then top-k, then top-p (nucleus), then one draw from
// the renormalized distribution with a per-row xorshift64* generator whose state lives on the
// device (so sampling needs no host round trip). temperature <= 0 is greedy (rc_cuda_argmax).
#pragma once
#include <stdint.h>

#include "kernels/cuda/cuda_common.h"

#ifdef __cplusplus
extern "C" {
#endif

// logits (n, vocab) fp32, rng (n) uint64 states (non-zero; advanced by one draw per row),
// out (n) int; all on the device. top_k 0 = off, top_p >= 1 = off.
// Ties at the top-k / top-p boundary keep every tied token.
int rc_cuda_sample(const float *logits, int *out, uint64_t *rng, int n, int vocab,
                   float temperature, int top_k, float top_p, cudaStream_t s);

// Per-row sampling with given draws, the device twin of engine/sampler.h's rc_sample_u: out (n)
// gets the argmax of every row, then the rows with temperature[i] > 0 and top_k[i] != 1 are
// sampled with their own temperature / top_k (0 = off) / top_p (1 = off) and the uniform u[i] in
// [0, 1). All arrays on the device.
int rc_cuda_sample_rows(const float *logits, int *out, const float *u, const float *temperature,
                        const int *top_k, const float *top_p, int n, int vocab, cudaStream_t s);

#ifdef __cplusplus
}
#endif
