// Value-MLP training on the device: the pieces of one Adam step of train/train.c over row-major
// fp32 buffers. Products through cuBLAS (fp32; with bf16 = 1 the operands hold bf16 values, so
// TF32 tensor cores multiply them exactly), everything else hand-written: bias + bf16 rounding +
// ReLU epilogues, ReLU-masked input gradients, bias gradients (one column per thread, rows in
// order), the Bellman loss in both semantics (one sequence per thread, the CPU's order of
// operations), Adam (torch's single-tensor formula) and bf16 rounding. All launches on stream s.
#pragma once
#include <stdint.h>

#include "kernels/cuda/cuda_common.h"
#include "kernels/cuda/matmul.h"

#ifdef __cplusplus
extern "C" {
#endif

// The products take a cuBLAS handle from rc_cuda_blas_init (kernels/cuda/matmul.h).
// y (n, out) = x (n, in) w^T (w (out, in)); then y = R(y + b) (R = bf16 rounding when bf16),
// ReLU when relu.
int rc_cuda_vt_linear_fwd(rc_cuda_blas *bl, int n, int in, int out, const float *x, const float *w,
                          const float *b, float *y, int relu, int bf16, cudaStream_t s);
// gw (out, in) += R(dy^T x) and gb (out) += R(column sums of dy, rows in order); tmp holds
// out * in floats (used when bf16: the fresh gradient is rounded before it is added).
int rc_cuda_vt_linear_bwd_params(rc_cuda_blas *bl, int n, int in, int out, const float *dy,
                                 const float *x, float *gw, float *gb, float *tmp, int bf16,
                                 cudaStream_t s);
// dx (n, in) = R(dy w); when h != NULL (the layer input after ReLU) dx = 0 where h <= 0.
int rc_cuda_vt_linear_bwd_input(rc_cuda_blas *bl, int n, int in, int out, const float *dy,
                                const float *w, const float *h, float *dx, int bf16, cudaStream_t s);

// y = R(x) element-wise (y may equal x).
int rc_cuda_vt_round(float *y, const float *x, size_t n, int bf16, cudaStream_t s);

// The Bellman loss of train/bellman.h on the device: v (rows), off (n_seq + 1) int64, r (n_seq);
// writes dv (rows) (when dv != NULL), the per-sequence sums seq (n_seq) and loss[0] = their sum
// / n_norm, in float64 (n_norm = n_seq: the mean; a data-parallel rank's part of a batch of n_norm
// sequences, as rc_bellman_loss_part). reference = 1: the reference code's semantics.
int rc_cuda_vt_bellman(int reference, int n_seq, int n_norm, const int64_t *off, const float *v, const float *r,
                       float *dv, double *seq, double *loss, cudaStream_t s);

// One torch.optim.Adam step on n parameters (train/adam.c's formula); w1 = 1 - beta1, b2 = beta2,
// w2 = 1 - beta2, step_size = lr / (1 - beta1^t) and bc2_sqrt = sqrt(1 - beta2^t) computed by the
// caller in double and rounded to float, as train/adam.c does.
int rc_cuda_vt_adam(float *p, const float *g, float *m, float *v, size_t n, float w1, float b2, float w2,
                    float eps, float step_size, float bc2_sqrt, cudaStream_t s);

#ifdef __cplusplus
}
#endif
