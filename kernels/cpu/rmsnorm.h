// CPU RMSNorm (LLaMA): out = x / sqrt(mean(x^2) + eps) * w, per row, fp32.
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

// out, x: (n, d); w: (d). out may equal x (in place).
void rc_cpu_rmsnorm(float *out, const float *x, const float *w, int n, int d, float eps);

#ifdef __cplusplus
}
#endif
