// CPU matmul against an HF-layout weight: y (n, out) = x (n, in) @ W (out, in)^T, fp32.
// The CPU twin of the CUDA GEMM; OpenMP-parallel over blocks of W rows.
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

// y: (n, out); x: (n, in); W: (out, in) row-major (nn.Linear.weight). y must not alias x or W.
// Each block of 4 weight rows is read once per block of 4 tokens, so a decode step (n = 1)
// streams W exactly once and prefill reuses each row from cache across tokens.
void rc_cpu_matmul(float *y, const float *x, const float *W, int n, int in, int out);

// Several matmuls sharing the input x (n, in), in one parallel region (fewer thread barriers,
// e.g. q/k/v or gate/up): y[j] (n, out[j]) = x @ W[j] (out[j], in)^T for j < k (k <= 4).
// Results are bit-identical to k separate rc_cpu_matmul calls.
void rc_cpu_matmul_multi(int k, float *const *y, const float *const *W, const int *out,
                         const float *x, int n, int in);

// Serial (no threads) register-tiled product for one panel of weight rows:
// y[t * ldy + r] = x[t] . W[r] for t < n, r < rows; x (n, in), W (rows, in) row-major.
void rc_cpu_gemm_nt(float *y, int ldy, const float *x, int n, const float *W, int rows, int in);

#ifdef __cplusplus
}
#endif
