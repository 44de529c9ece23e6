// CPU LayerNorm over rows of (n, d): (x - mean) / sqrt(var + eps) * w + b, the biased variance,
// statistics accumulated in double (the BERT encoder's post-attention and post-FFN norms).
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

// out may alias x. w, b: (d); b may be NULL (no bias).
void rc_cpu_layernorm(float *out, const float *x, const float *w, const float *b, int n, int d,
                      float eps);

#ifdef __cplusplus
}
#endif
