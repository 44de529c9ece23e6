// Device kernels of value training (see value_train.h): epilogues, bias gradients, Bellman loss,
// Adam and bf16 rounding; the products are cuBLAS calls on row-major data (column-major views).
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/value_train.h"

static __device__ __forceinline__ float vt_round(float x, int bf16) {
    return bf16 ? __bfloat162float(__float2bfloat16_rn(x)) : x;
}

__global__ void vt_bias_act_kernel(float *y, const float *b, int out, size_t total, int relu, int bf16) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        float v = vt_round(y[i] + b[i % out], bf16);
        if (relu && v < 0.f) v = 0.f;
        y[i] = v;
    }
}

__global__ void vt_mask_kernel(float *dx, const float *h, size_t total, int bf16) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        float v = vt_round(dx[i], bf16);
        if (h && h[i] <= 0.f) v = 0.f;
        dx[i] = v;
    }
}

__global__ void vt_add_rounded_kernel(float *acc, const float *x, size_t total, int bf16) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x)
        acc[i] += vt_round(x[i], bf16);
}

__global__ void vt_round_kernel(float *y, const float *x, size_t total) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x)
        y[i] = __bfloat162float(__float2bfloat16_rn(x[i]));
}

// gb[o] += R(sum_i dy[i, o]), rows in order (the CPU's order): one column per thread.
__global__ void vt_bias_grad_kernel(const float *dy, float *gb, int n, int out, int bf16) {
    int o = blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= out) return;
    float s = 0.f;
    for (int i = 0; i < n; i++) s += dy[(size_t)i * out + o];
    gb[o] += vt_round(s, bf16);
}

// One sequence per thread, the operations of rc_bellman_loss in the same order.
__global__ void vt_bellman_kernel(int reference, int n_seq, int n_norm, const int64_t *off, const float *v,
                                  const float *r, float *dv, double *seq) {
    int s = blockIdx.x * blockDim.x + threadIdx.x;
    if (s >= n_seq) return;
    const double inv_b = 1.0 / n_norm;
    const int64_t a = off[s], e = off[s + 1];
    if (dv)
        for (int64_t t = a; t < e; t++) dv[t] = 0.f;
    double acc = 0;
    for (int64_t t = a; t + 1 < e; t++) {
        double diff = (double)v[t] - (double)v[t + 1];
        acc += diff * diff;
        if (dv) {
            dv[t] += (float)(2.0 * diff * inv_b);
            if (reference) dv[t + 1] -= (float)(2.0 * diff * inv_b);
        }
    }
    const int64_t anchor = reference ? a : e - 1;
    double diff = (double)v[anchor] - (double)r[s];
    acc += diff * diff;
    if (dv) dv[anchor] += (float)(2.0 * diff * inv_b);
    seq[s] = acc;
}

// The mean over sequences, summed in sequence order (as the CPU does).
__global__ void vt_loss_kernel(int n_seq, int n_norm, const double *seq, double *loss) {
    if (threadIdx.x || blockIdx.x) return;
    double total = 0;
    for (int s = 0; s < n_seq; s++) total += seq[s];
    loss[0] = total * (1.0 / n_norm);
}

__global__ void vt_adam_kernel(float *p, const float *g, float *m, float *v, size_t n, float w1, float b2,
                               float w2, float eps, float step_size, float bc2_sqrt) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float gi = g[i];
        float mi = m[i] + w1 * (gi - m[i]);
        float vi = v[i] * b2 + w2 * (gi * gi);
        m[i] = mi;
        v[i] = vi;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        p[i] = p[i] - step_size * (mi / denom);
    }
}

static unsigned grid_for(size_t total) {
    unsigned g = rc_cdiv(total, 256);
    return g < 1 ? 1 : g > 4096 ? 4096 : g;
}

// C (m, n) col-major = op(A) op(B), fp32 storage; TF32 tensor cores when the data are bf16 values
// (exact products), plain fp32 otherwise.
static int gemm(rc_cuda_blas *bl, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc, int bf16,
                cudaStream_t s) {
    cublasHandle_t h = (cublasHandle_t)bl->handle;
    const float one = 1.f;
    CUBLAS_CHECK(cublasSetStream(h, s));
    CUBLAS_CHECK(cublasGemmEx(h, ta, tb, m, n, k, &one, A, CUDA_R_32F, lda, B, CUDA_R_32F, ldb, &beta, C,
                              CUDA_R_32F, ldc, bf16 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT));
    return 0;
}

extern "C" int rc_cuda_vt_linear_fwd(rc_cuda_blas *bl, int n, int in, int out, const float *x, const float *w,
                                     const float *b, float *y, int relu, int bf16, cudaStream_t s) {
    if (n <= 0) return 0;
    if (gemm(bl, CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, w, in, x, in, 0.f, y, out, bf16, s)) return -1;
    size_t total = (size_t)n * out;
    vt_bias_act_kernel<<<grid_for(total), 256, 0, s>>>(y, b, out, total, relu, bf16);
    CUDA_CHECK_LAUNCH();
    return 0;
}

extern "C" int rc_cuda_vt_linear_bwd_params(rc_cuda_blas *bl, int n, int in, int out, const float *dy,
                                            const float *x, float *gw, float *gb, float *tmp, int bf16,
                                            cudaStream_t s) {
    if (n <= 0) return 0;
    size_t total = (size_t)out * in;
    if (bf16) {
        if (gemm(bl, CUBLAS_OP_N, CUBLAS_OP_T, in, out, n, x, in, dy, out, 0.f, tmp, in, bf16, s)) return -1;
        vt_add_rounded_kernel<<<grid_for(total), 256, 0, s>>>(gw, tmp, total, 1);
        CUDA_CHECK_LAUNCH();
    } else if (gemm(bl, CUBLAS_OP_N, CUBLAS_OP_T, in, out, n, x, in, dy, out, 1.f, gw, in, 0, s)) {
        return -1;
    }
    vt_bias_grad_kernel<<<rc_cdiv(out, 128), 128, 0, s>>>(dy, gb, n, out, bf16);
    CUDA_CHECK_LAUNCH();
    return 0;
}

extern "C" int rc_cuda_vt_linear_bwd_input(rc_cuda_blas *bl, int n, int in, int out, const float *dy,
                                           const float *w, const float *h, float *dx, int bf16, cudaStream_t s) {
    if (n <= 0) return 0;
    if (gemm(bl, CUBLAS_OP_N, CUBLAS_OP_N, in, n, out, w, in, dy, out, 0.f, dx, in, bf16, s)) return -1;
    size_t total = (size_t)n * in;
    if (bf16 || h) {
        vt_mask_kernel<<<grid_for(total), 256, 0, s>>>(dx, h, total, bf16);
        CUDA_CHECK_LAUNCH();
    }
    return 0;
}

extern "C" int rc_cuda_vt_round(float *y, const float *x, size_t n, int bf16, cudaStream_t s) {
    if (!n) return 0;
    if (!bf16) {
        if (y != x) CUDA_CHECK(cudaMemcpyAsync(y, x, n * 4, cudaMemcpyDeviceToDevice, s));
        return 0;
    }
    vt_round_kernel<<<grid_for(n), 256, 0, s>>>(y, x, n);
    CUDA_CHECK_LAUNCH();
    return 0;
}

extern "C" int rc_cuda_vt_bellman(int reference, int n_seq, int n_norm, const int64_t *off, const float *v,
                                  const float *r, float *dv, double *seq, double *loss, cudaStream_t s) {
    RC_CUDA_REQUIRE(n_seq > 0 && n_norm >= n_seq, "rc_cuda_vt_bellman: %d sequences of %d", n_seq, n_norm);
    vt_bellman_kernel<<<rc_cdiv(n_seq, 128), 128, 0, s>>>(reference, n_seq, n_norm, off, v, r, dv, seq);
    CUDA_CHECK_LAUNCH();
    vt_loss_kernel<<<1, 32, 0, s>>>(n_seq, n_norm, seq, loss);
    CUDA_CHECK_LAUNCH();
    return 0;
}

extern "C" int rc_cuda_vt_adam(float *p, const float *g, float *m, float *v, size_t n, float w1, float b2,
                               float w2, float eps, float step_size, float bc2_sqrt, cudaStream_t s) {
    if (!n) return 0;
    vt_adam_kernel<<<grid_for(n), 256, 0, s>>>(p, g, m, v, n, w1, b2, w2, eps, step_size, bc2_sqrt);
    CUDA_CHECK_LAUNCH();
    return 0;
}
