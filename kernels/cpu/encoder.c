// The BERT encoder's ops on the CPU, fp32 with LayerNorm statistics in double: the oracle of the
// device kernels (kernels/cuda/encoder.cu) and the CPU encoder itself (engine/bert.c).
#include "kernels/cpu/encoder.h"

#include <math.h>
#include <stddef.h>

#include "kernels/cpu/gelu.h"
#include "kernels/cpu/layernorm.h"

void rc_cpu_encoder_embed(float *out, const float *word, const float *pos, const float *type,
                          const float *ln_w, const float *ln_b, const int *ids, const int *types,
                          const int *positions, int n, int d, float eps) {
    for (int i = 0; i < n; i++) {
        const float *we = word + (size_t)ids[i] * d, *pe = pos + (size_t)positions[i] * d,
                    *te = type + (size_t)types[i] * d;
        float *o = out + (size_t)i * d;
        for (int j = 0; j < d; j++) o[j] = we[j] + pe[j] + te[j];
    }
    rc_cpu_layernorm(out, out, ln_w, ln_b, n, d, eps);
}

void rc_cpu_bias_act(float *y, const float *b, int n, int cols, rc_act act) {
    const size_t total = (size_t)n * cols;
    if (b)
        for (int i = 0; i < n; i++)
            for (int j = 0; j < cols; j++) y[(size_t)i * cols + j] += b[j];
    switch (act) {
    case RC_ACT_GELU: rc_cpu_gelu_erf(y, total); break;
    case RC_ACT_GELU_TANH: rc_cpu_gelu_tanh(y, total); break;
    case RC_ACT_RELU:
        for (size_t i = 0; i < total; i++) y[i] = y[i] > 0 ? y[i] : 0;
        break;
    case RC_ACT_TANH:
        for (size_t i = 0; i < total; i++) y[i] = tanhf(y[i]);
        break;
    case RC_ACT_NONE: break;
    }
}

void rc_cpu_add_layernorm(float *x, const float *y, const float *bias, const float *w,
                          const float *b, int n, int d, float eps) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++)
            x[(size_t)i * d + j] += y[(size_t)i * d + j] + (bias ? bias[j] : 0.0f);
    rc_cpu_layernorm(x, x, w, b, n, d, eps);
}

void rc_cpu_attention_bidir(float *out, const float *qkv, const int *seq, int n_seq, int n_heads,
                            int hd, float *scratch) {
    const int d = n_heads * hd, ld = 3 * d;
    const float scale = 1.0f / sqrtf((float)hd);
    for (int s = 0; s < n_seq; s++) {
        const int s0 = seq[s], len = seq[s + 1] - seq[s];
#pragma omp parallel for collapse(2) schedule(static) if ((long)len * len * d > 65536)
        for (int h = 0; h < n_heads; h++) {
            for (int i = 0; i < len; i++) {
                float *sc = scratch + ((size_t)h * len + i) * len;
                const float *qi = qkv + (size_t)(s0 + i) * ld + h * hd;
                float mx = -INFINITY;
                for (int j = 0; j < len; j++) {
                    const float *kj = qkv + (size_t)(s0 + j) * ld + d + h * hd;
                    float acc = 0;
                    for (int t = 0; t < hd; t++) acc += qi[t] * kj[t];
                    sc[j] = acc * scale;
                    if (sc[j] > mx) mx = sc[j];
                }
                double sum = 0;
                for (int j = 0; j < len; j++) {
                    sc[j] = expf(sc[j] - mx);
                    sum += sc[j];
                }
                float inv = (float)(1.0 / sum);
                float *oi = out + (size_t)(s0 + i) * d + h * hd;
                for (int t = 0; t < hd; t++) oi[t] = 0;
                for (int j = 0; j < len; j++) {
                    const float *vj = qkv + (size_t)(s0 + j) * ld + 2 * d + h * hd;
                    float p = sc[j] * inv;
                    for (int t = 0; t < hd; t++) oi[t] += p * vj[t];
                }
            }
        }
    }
}
