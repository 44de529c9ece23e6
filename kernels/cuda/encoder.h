// The BERT encoder's device ops (fp32), each with its CPU twin in kernels/cpu/encoder.h: embedding
// sum + LayerNorm, bias + activation, residual add + LayerNorm, and bidirectional attention over
// a ragged batch (each token sees only its own sequence: the padding-free attention mask). The
// projections are rc_cuda_matmul (cuBLAS); engine/bert_cuda.cu chains them.
#pragma once
#include "kernels/cpu/encoder.h"
#include "kernels/cuda/cuda_common.h"

#ifdef __cplusplus
extern "C" {
#endif

// As rc_cpu_encoder_embed; ids, types, positions (n) on the device, tables fp32 on the device.
int rc_cuda_encoder_embed(float *out, const float *word, const float *pos, const float *type,
                          const float *ln_w, const float *ln_b, const int *ids, const int *types,
                          const int *positions, int n, int d, float eps, cudaStream_t s);
// As rc_cpu_bias_act: y (n, cols) = act(y + b); b may be NULL.
int rc_cuda_bias_act(float *y, const float *b, int n, int cols, rc_act act, cudaStream_t s);
// As rc_cpu_add_layernorm: x (n, d) = LayerNorm(x + y + bias); bias may be NULL.
int rc_cuda_add_layernorm(float *x, const float *y, const float *bias, const float *w,
                          const float *b, int n, int d, float eps, cudaStream_t s);
// As rc_cpu_attention_bidir over n tokens; seq (n_seq + 1 offsets) on the device; max_len: the
// longest sequence (bounds the shared memory of a block).
int rc_cuda_attention_bidir(float *out, const float *qkv, const int *seq, int n_seq, int n,
                            int n_heads, int hd, int max_len, cudaStream_t s);

#ifdef __cplusplus
}
#endif
