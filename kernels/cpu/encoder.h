// CPU twins of the BERT encoder's device ops (kernels/cuda/encoder.h), fp32 over ragged batches:
// sequences back to back, each token attending only to the tokens of its own sequence (the
// padding-free form of BERT's attention mask). The CPU encoder (engine/bert.c) runs on these.
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

// Elementwise activation applied after a bias add (rc_cpu_bias_act).
typedef enum {
    RC_ACT_NONE = 0,  // y + b
    RC_ACT_GELU,      // erf form (torch.nn.functional.gelu, BERT's "gelu")
    RC_ACT_GELU_TANH, // tanh approximation ("gelu_new", "gelu_pytorch_tanh")
    RC_ACT_RELU,      //
    RC_ACT_TANH,      // the BERT pooler
} rc_act;

// out (n, d) = LayerNorm(word[ids[i]] + pos[positions[i]] + type[types[i]]) with (ln_w, ln_b, eps).
// Indices are checked by the caller.
void rc_cpu_encoder_embed(float *out, const float *word, const float *pos, const float *type,
                          const float *ln_w, const float *ln_b, const int *ids, const int *types,
                          const int *positions, int n, int d, float eps);

// y (n, cols) = act(y + b) (b: cols; NULL for none).
void rc_cpu_bias_act(float *y, const float *b, int n, int cols, rc_act act);

// x (n, d) = LayerNorm(x + y + bias) with (w, b, eps): the post-LayerNorm residual of BERT.
// bias may be NULL.
void rc_cpu_add_layernorm(float *x, const float *y, const float *bias, const float *w,
                          const float *b, int n, int d, float eps);

// Bidirectional attention over a ragged batch: qkv (n, 3 d) holds each token's query, key and
// value ([q | k | v], d = n_heads * hd); sequence s is tokens [seq[s], seq[s + 1]) (seq: n_seq + 1
// offsets, seq[0] = 0, seq[n_seq] = n). out (n, d): softmax(q k^T / sqrt(hd)) v per head within
// the sequence. scratch: n_heads * max_len * max_len floats (max_len: the longest sequence).
void rc_cpu_attention_bidir(float *out, const float *qkv, const int *seq, int n_seq, int n_heads,
                            int hd, float *scratch);

#ifdef __cplusplus
}
#endif
