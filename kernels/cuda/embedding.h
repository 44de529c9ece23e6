// Token embedding lookup on the device: x (n, d) fp32 = table[tokens[i]] (vocab, d) of type dt.
#pragma once
#include "kernels/cuda/cuda_common.h"

#ifdef __cplusplus
extern "C" {
#endif

// tokens (n) live on the device (so a captured decode step reads the token the previous step
// chose). An id outside [0, vocab) yields a row of NaN, which every later check catches.
int rc_cuda_embedding(const void *table, rc_cuda_dtype dt, const int *tokens, float *x, int n,
                      int d, int vocab, cudaStream_t s);

#ifdef __cplusplus
}
#endif
