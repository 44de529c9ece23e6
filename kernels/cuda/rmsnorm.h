// RMSNorm on the device: y = x * rsqrt(mean(x^2) + eps) * w, one row of d per token, fp32 math.
// The fused variant first adds a residual into x (x += r) and normalizes the sum.
#pragma once
#include "kernels/cuda/cuda_common.h"

#ifdef __cplusplus
extern "C" {
#endif

// x (n, d) fp32, w (d) fp32, y (n, d) of type y_dt (fp32 / f16 / bf16). y may alias x if fp32.
int rc_cuda_rmsnorm(const float *x, const float *w, void *y, rc_cuda_dtype y_dt, int n, int d,
                    float eps, cudaStream_t s);
// x (n, d) fp32 += r (n, d) fp32, then y = rmsnorm(x) as above.
int rc_cuda_rmsnorm_residual(float *x, const float *r, const float *w, void *y,
                             rc_cuda_dtype y_dt, int n, int d, float eps, cudaStream_t s);

#ifdef __cplusplus
}
#endif
