// Attention with an online (streaming) softmax over blocks of 64 keys: per (token, head) a
// running max m, running sum l and an unnormalised output accumulator; each block's scores are
// computed, the accumulator rescaled by exp(m_old - m_new), then p = exp(s - m_new) added in.
// No scratch beyond the stack; threads split the (token, head) pairs.
#include "kernels/cpu/attention.h"

#include <math.h>
#include <stddef.h>

#define RC_ATT_BLOCK 64
#define RC_ATT_MAX_HD 512

void rc_cpu_attention(float *out, const float *q, const float *k_cache, const float *v_cache,
                      const int *slots, const int *pos, int n, int n_heads, int n_kv_heads,
                      int head_dim, int max_len, float scale) {
    const int group = n_heads / n_kv_heads;
    const int kv_dim = n_kv_heads * head_dim;
    const long work = (long)n * n_heads * head_dim * (pos ? (long)pos[n - 1] + 1 : 1);
#pragma omp parallel for collapse(2) schedule(dynamic, 1) if (work > 65536)
    for (int t = 0; t < n; t++) {
        for (int h = 0; h < n_heads; h++) {
            const float *qh = q + ((size_t)t * n_heads + h) * head_dim;
            const size_t base = (size_t)slots[t] * max_len * kv_dim + (size_t)(h / group) * head_dim;
            const float *kb = k_cache + base, *vb = v_cache + base;
            float acc[RC_ATT_MAX_HD];
            float s[RC_ATT_BLOCK];
            for (int d = 0; d < head_dim; d++) acc[d] = 0;
            float m = -INFINITY, l = 0;
            const int len = pos[t] + 1;
            for (int j0 = 0; j0 < len; j0 += RC_ATT_BLOCK) {
                const int nb = len - j0 < RC_ATT_BLOCK ? len - j0 : RC_ATT_BLOCK;
                float bm = -INFINITY;
                for (int j = 0; j < nb; j++) {
                    const float *kj = kb + (size_t)(j0 + j) * kv_dim;
                    float d0 = 0;
#pragma omp simd reduction(+ : d0)
                    for (int d = 0; d < head_dim; d++) d0 += qh[d] * kj[d];
                    s[j] = d0 * scale;
                    if (s[j] > bm) bm = s[j];
                }
                const float m_new = bm > m ? bm : m;
                const float corr = expf(m - m_new); // 0 on the first block (m = -inf)
                l *= corr;
                for (int d = 0; d < head_dim; d++) acc[d] *= corr;
                for (int j = 0; j < nb; j++) {
                    const float p = expf(s[j] - m_new);
                    l += p;
                    const float *vj = vb + (size_t)(j0 + j) * kv_dim;
#pragma omp simd
                    for (int d = 0; d < head_dim; d++) acc[d] += p * vj[d];
                }
                m = m_new;
            }
            float *oh = out + ((size_t)t * n_heads + h) * head_dim;
            const float inv = 1.0f / l;
            for (int d = 0; d < head_dim; d++) oh[d] = acc[d] * inv;
        }
    }
}
