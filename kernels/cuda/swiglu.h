// SwiGLU on the device: out (n, f) = silu(gate) * up, silu(g) = g / (1 + exp(-g)); fp32 math.
#pragma once
#include "kernels/cuda/cuda_common.h"

#ifdef __cplusplus
extern "C" {
#endif

// gate and up are fp32 rows of f values, consecutive rows ld_in floats apart (so the fused
// gate|up projection output (n, 2f) is passed as gate = gu, up = gu + f, ld_in = 2f).
// out (n, f) of type out_dt, rows f apart.
int rc_cuda_swiglu(const float *gate, const float *up, int ld_in, void *out, rc_cuda_dtype out_dt,
                   int n, int f, cudaStream_t s);

#ifdef __cplusplus
}
#endif
