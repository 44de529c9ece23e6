// Matrix products on the device with weights in HF row layout W (out, in) of type dt (f16/bf16;
// f32 for exactness tests), activations X (n, in) of the same type, fp32 output and accumulation:
// Y (n, out) = X W^T + beta * Y (beta = 1 fuses a residual add into the product).
// Batches go through cuBLAS (tensor cores); batch 1 can use the hand-written GEMV instead.
#pragma once
#include "kernels/cuda/cuda_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    void *handle;     // cublasHandle_t
    void *workspace;  // device memory handed to cuBLAS (so graph capture never allocates)
    size_t workspace_bytes;
    int gemv_batch1;  // 1: n == 1 products use rc_cuda_gemv; 0: cuBLAS for every n
    cudaStream_t stream; // the stream last given to cuBLAS (stream_set says whether one was)
    int stream_set;
} rc_cuda_blas;

// workspace (device, bytes; 32 MiB is plenty) stays owned by the caller.
int rc_cuda_blas_init(rc_cuda_blas *b, void *workspace, size_t workspace_bytes);
void rc_cuda_blas_free(rc_cuda_blas *b);

int rc_cuda_matmul(rc_cuda_blas *b, const void *w, const void *x, rc_cuda_dtype dt, float *y,
                   int n, int in, int out, float beta, cudaStream_t s);

// Y (n, out) fp32 = alpha * X (n, in) W (in, out) + beta * Y: the transposed use of a weight stored
// (in, out) row-major, i.e. an nn.Linear weight of in outputs applied backwards (input gradients).
int rc_cuda_matmul_wt(rc_cuda_blas *b, const void *w, const void *x, rc_cuda_dtype dt, float *y,
                      int n, int in, int out, float alpha, float beta, cudaStream_t s);

// y (out) fp32 = W (out, in) x (in) + beta * y; 16-byte loads of W streamed once. y is not read
// when beta == 0.
int rc_cuda_gemv(const void *w, const void *x, rc_cuda_dtype dt, float *y, int in, int out,
                 float beta, cudaStream_t s);

// Batch-1 products whose input is computed while it is read (one launch instead of two):
// y (out) = W (out, in) rmsnorm(x (in) fp32; norm_w (in) fp32, eps) + beta * y, and
// y (out) = W (out, in) (silu(gate) * up) (gate, up (in) fp32) + beta * y; the input is rounded to
// dt exactly as the separate rmsnorm / swiglu kernels store it. scratch (in elements of dt) is
// used only by the two-launch fallback (in not a multiple of 8, unaligned pointers).
int rc_cuda_gemv_rmsnorm(const void *w, const float *x, const float *norm_w, float eps,
                         void *scratch, rc_cuda_dtype dt, float *y, int in, int out, float beta,
                         cudaStream_t s);
int rc_cuda_gemv_swiglu(const void *w, const float *gate, const float *up, void *scratch,
                        rc_cuda_dtype dt, float *y, int in, int out, float beta, cudaStream_t s);

#ifdef __cplusplus
}
#endif
