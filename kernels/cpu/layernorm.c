// LayerNorm over rows: mean and biased variance in double, the affine map in fp32 (as
// torch.nn.functional.layer_norm computes it up to rounding).
#include "kernels/cpu/layernorm.h"

#include <math.h>
#include <stddef.h>

void rc_cpu_layernorm(float *out, const float *x, const float *w, const float *b, int n, int d,
                      float eps) {
#pragma omp parallel for schedule(static) if ((long)n * d > 32768)
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * d;
        float *oi = out + (size_t)i * d;
        double s = 0, ss = 0;
        for (int j = 0; j < d; j++) s += xi[j];
        double mean = s / d;
        for (int j = 0; j < d; j++) {
            double c = xi[j] - mean;
            ss += c * c;
        }
        float inv = (float)(1.0 / sqrt(ss / d + (double)eps));
        float m = (float)mean;
        for (int j = 0; j < d; j++) oi[j] = (xi[j] - m) * inv * w[j] + (b ? b[j] : 0.0f);
    }
}
