// RMSNorm over rows of (n, d): the mean of squares is accumulated in double (d can be 8192)
// and the scale applied in fp32, as HF LlamaRMSNorm does (x * rsqrt(var + eps) * w).
#include "kernels/cpu/rmsnorm.h"

#include <math.h>
#include <stddef.h>

void rc_cpu_rmsnorm(float *out, const float *x, const float *w, int n, int d, float eps) {
#pragma omp parallel for schedule(static) if ((long)n * d > 32768)
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * d;
        float *oi = out + (size_t)i * d;
        double ss = 0;
#pragma omp simd reduction(+ : ss)
        for (int j = 0; j < d; j++) ss += (double)xi[j] * xi[j];
        float scale = (float)(1.0 / sqrt(ss / d + (double)eps));
        for (int j = 0; j < d; j++) oi[j] = (xi[j] * scale) * w[j];
    }
}
