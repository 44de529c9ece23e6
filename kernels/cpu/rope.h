// CPU rotary position embedding, HF LLaMA "rotate half" convention: for each head of width
// head_dim, pairs (i, i + head_dim/2) are rotated by angle pos * inv_freq[i]:
//   out[i]        = x[i] * cos - x[i + h] * sin
//   out[i + h]    = x[i + h] * cos + x[i] * sin          (h = head_dim / 2)
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

// Fills cos_tab/sin_tab (max_len, head_dim/2) with cos/sin(p * inv_freq[i]); the angle is the
// fp32 product p * inv_freq[i] (as HF computes it), its cos/sin taken in double and rounded.
void rc_cpu_rope_tables(float *cos_tab, float *sin_tab, const float *inv_freq, int head_dim,
                        int max_len);

// x: (n, n_heads * head_dim), rotated in place; pos: (n) positions (< table length);
// cos_tab, sin_tab: (max_len, head_dim/2) from rc_cpu_rope_tables.
void rc_cpu_rope(float *x, int n, int n_heads, int head_dim, const int *pos, const float *cos_tab,
                 const float *sin_tab);

#ifdef __cplusplus
}
#endif
