// Greedy token choice on the device: per row of logits, the index of the largest value (the
// lowest index wins ties; NaN never wins), as rc_argmax does on the CPU.
#pragma once
#include "kernels/cuda/cuda_common.h"

#ifdef __cplusplus
extern "C" {
#endif

// logits (n, vocab) fp32 -> out (n) int, all on the device.
int rc_cuda_argmax(const float *logits, int *out, int n, int vocab, cudaStream_t s);

#ifdef __cplusplus
}
#endif
