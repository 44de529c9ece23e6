// RoPE with precomputed (max_len, head_dim/2) cos/sin tables, rotate-half pairing (i, i + h).
#include "kernels/cpu/rope.h"

#include <math.h>
#include <stddef.h>

void rc_cpu_rope_tables(float *cos_tab, float *sin_tab, const float *inv_freq, int head_dim,
                        int max_len) {
    const int h = head_dim / 2;
    for (int p = 0; p < max_len; p++)
        for (int i = 0; i < h; i++) {
            float a = (float)p * inv_freq[i];
            cos_tab[(size_t)p * h + i] = (float)cos((double)a);
            sin_tab[(size_t)p * h + i] = (float)sin((double)a);
        }
}

void rc_cpu_rope(float *x, int n, int n_heads, int head_dim, const int *pos, const float *cos_tab,
                 const float *sin_tab) {
    const int h = head_dim / 2;
#pragma omp parallel for schedule(static) if ((long)n * n_heads * head_dim > 65536)
    for (int t = 0; t < n; t++) {
        const float *c = cos_tab + (size_t)pos[t] * h, *s = sin_tab + (size_t)pos[t] * h;
        for (int hd = 0; hd < n_heads; hd++) {
            float *v = x + ((size_t)t * n_heads + hd) * head_dim;
            for (int i = 0; i < h; i++) {
                float a = v[i], b = v[i + h];
                v[i] = a * c[i] - b * s[i];
                v[i + h] = b * c[i] + a * s[i];
            }
        }
    }
}
