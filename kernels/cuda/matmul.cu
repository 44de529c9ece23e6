// cuBLAS wrapper (column-major view: Y^T (out, n) = W^T' X^T with W stored (out, in) row-major,
// i.e. op(A) = T on an (in, out) column-major matrix) and the batch-1 GEMV: 8 warps per block,
// ROWS output rows per warp, UNR 16-byte loads of each row in flight per lane, fp32 accumulation,
// one warp reduction per row.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/matmul.h"
#include "kernels/cuda/rmsnorm.h"
#include "kernels/cuda/swiglu.h"

#define GEMV_WARPS 8
#define GEMV_ROWS 2
#define GEMV_UNR 4

extern "C" int rc_cuda_blas_init(rc_cuda_blas *b, void *workspace, size_t workspace_bytes) {
    cublasHandle_t h;
    b->handle = NULL;
    CUBLAS_CHECK(cublasCreate(&h));
    b->handle = h;
    b->workspace = workspace;
    b->workspace_bytes = workspace_bytes;
    b->gemv_batch1 = 1;
    b->stream = 0;
    b->stream_set = 0;
    if (workspace) CUBLAS_CHECK(cublasSetWorkspace(h, workspace, workspace_bytes));
    return 0;
}

// cublasSetStream resets the workspace to cuBLAS's own pool, which may allocate (fatal inside a
// graph capture): set the stream only when it changes, and hand our workspace back each time.
static int blas_stream(rc_cuda_blas *b, cudaStream_t s) {
    if (b->stream_set && b->stream == s) return 0;
    cublasHandle_t h = (cublasHandle_t)b->handle;
    CUBLAS_CHECK(cublasSetStream(h, s));
    if (b->workspace) CUBLAS_CHECK(cublasSetWorkspace(h, b->workspace, b->workspace_bytes));
    b->stream = s;
    b->stream_set = 1;
    return 0;
}

extern "C" void rc_cuda_blas_free(rc_cuda_blas *b) {
    if (b->handle) cublasDestroy((cublasHandle_t)b->handle);
    b->handle = NULL;
}

enum { GEMV_IN_T = 0, GEMV_IN_RMSNORM = 1, GEMV_IN_SWIGLU = 2 };

// 8 input elements starting at chunk c, as the unfused path would have stored them in T:
//   IN_T: x (in) of type T;  IN_RMSNORM: x (in) fp32 times inv_rms times x2 = norm weight;
//   IN_SWIGLU: silu(x = gate) * (x2 = up), both fp32.
template <typename T, int MODE>
static __device__ __forceinline__ void gemv_in8(const void *x, const float *x2, float inv, int c,
                                                float *xf) {
    if (MODE == GEMV_IN_T) {
        rc_unpack8<T>(rc_ld8_ro((const T *)x + 8 * c), xf);
        return;
    }
    const float4 *pa = (const float4 *)x + 2 * c, *pb = (const float4 *)x2 + 2 * c;
    float4 a0 = __ldg(pa), a1 = __ldg(pa + 1), b0 = __ldg(pb), b1 = __ldg(pb + 1);
    float av[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
    float bv[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
    for (int t = 0; t < 8; t++) {
        float v = MODE == GEMV_IN_RMSNORM ? av[t] * inv * bv[t] : av[t] / (1.f + expf(-av[t])) * bv[t];
        xf[t] = rc_to_f32(rc_from_f32<T>(v));
    }
}

template <typename T, int MODE>
__global__ void __launch_bounds__(GEMV_WARPS * 32)
gemv_vec_kernel(const T *w, const void *x, const float *x2, float eps, float *y, int in, int out,
                float beta) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    float inv = 0.f;
    if (MODE == GEMV_IN_RMSNORM) { // every block recomputes the row's norm (x is L2-resident)
        __shared__ float red[32];
        const float *xr = (const float *)x;
        float ss = 0.f;
        for (int j = threadIdx.x; j < in; j += blockDim.x) ss += xr[j] * xr[j];
        ss = rc_block_sum(ss, red);
        inv = rsqrtf(ss / (float)in + eps);
    }
    int row0 = (blockIdx.x * GEMV_WARPS + warp) * GEMV_ROWS;
    if (row0 >= out) return;
    int nch = in / 8; // chunks of 8 elements (16 bytes for f16/bf16)
    const T *wr[GEMV_ROWS];
#pragma unroll
    for (int r = 0; r < GEMV_ROWS; r++) {
        int row = min(row0 + r, out - 1); // a duplicate row past the end is computed, not stored
        wr[r] = w + (size_t)row * in;
    }
    float acc[GEMV_ROWS];
#pragma unroll
    for (int r = 0; r < GEMV_ROWS; r++) acc[r] = 0.f;
    int c = lane;
    // Main loop: GEMV_UNR chunks of every row loaded unconditionally before any use.
    for (; c + 32 * (GEMV_UNR - 1) < nch; c += 32 * GEMV_UNR) {
        rc_vec8<T> wv[GEMV_UNR][GEMV_ROWS];
#pragma unroll
        for (int u = 0; u < GEMV_UNR; u++)
#pragma unroll
            for (int r = 0; r < GEMV_ROWS; r++) wv[u][r] = rc_ld8_stream(wr[r] + 8 * (c + 32 * u));
#pragma unroll
        for (int u = 0; u < GEMV_UNR; u++) {
            float xf[8], wf[8];
            gemv_in8<T, MODE>(x, x2, inv, c + 32 * u, xf);
#pragma unroll
            for (int r = 0; r < GEMV_ROWS; r++) {
                rc_unpack8<T>(wv[u][r], wf);
#pragma unroll
                for (int t = 0; t < 8; t++) acc[r] += wf[t] * xf[t];
            }
        }
    }
    for (; c < nch; c += 32) { // remainder, one chunk at a time
        float xf[8], wf[8];
        gemv_in8<T, MODE>(x, x2, inv, c, xf);
#pragma unroll
        for (int r = 0; r < GEMV_ROWS; r++) {
            rc_unpack8<T>(rc_ld8_stream(wr[r] + 8 * c), wf);
#pragma unroll
            for (int t = 0; t < 8; t++) acc[r] += wf[t] * xf[t];
        }
    }
#pragma unroll
    for (int r = 0; r < GEMV_ROWS; r++) {
        float a = rc_warp_sum(acc[r]);
        if (lane == 0 && row0 + r < out) {
            size_t o = row0 + r;
            y[o] = beta != 0.f ? a + beta * y[o] : a;
        }
    }
}

// Any in / alignment: one warp per row, scalar loads.
template <typename T>
__global__ void gemv_scalar_kernel(const T *w, const T *x, float *y, int in, int out, float beta) {
    int lane = threadIdx.x & 31;
    int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= out) return;
    const T *wr = w + (size_t)row * in;
    float a = 0.f;
    for (int j = lane; j < in; j += 32) a += rc_to_f32(wr[j]) * rc_to_f32(x[j]);
    a = rc_warp_sum(a);
    if (lane == 0) y[row] = beta != 0.f ? a + beta * y[row] : a;
}

template <typename T>
static int gemv_launch(const void *w, const void *x, float *y, int in, int out, float beta,
                       cudaStream_t s) {
    bool vec = in % 8 == 0 && ((uintptr_t)w % 16) == 0 && ((uintptr_t)x % 16) == 0;
    if (vec) {
        gemv_vec_kernel<T, GEMV_IN_T><<<rc_cdiv(out, GEMV_WARPS * GEMV_ROWS), GEMV_WARPS * 32, 0, s>>>(
            (const T *)w, x, (const float *)NULL, 0.f, y, in, out, beta);
    } else {
        gemv_scalar_kernel<T><<<rc_cdiv(out, 8), 256, 0, s>>>((const T *)w, (const T *)x, y, in,
                                                              out, beta);
    }
    CUDA_CHECK_LAUNCH();
    return 0;
}

extern "C" int rc_cuda_gemv(const void *w, const void *x, rc_cuda_dtype dt, float *y, int in,
                            int out, float beta, cudaStream_t s) {
    if (out <= 0) return 0;
    RC_CUDA_REQUIRE(in > 0, "rc_cuda_gemv: empty input width");
    if (dt == RC_CUDA_F16) return gemv_launch<__half>(w, x, y, in, out, beta, s);
    if (dt == RC_CUDA_BF16) return gemv_launch<__nv_bfloat16>(w, x, y, in, out, beta, s);
    if (dt == RC_CUDA_F32) return gemv_launch<float>(w, x, y, in, out, beta, s);
    return rc_fail("rc_cuda_gemv: unknown dtype %d", (int)dt);
}

extern "C" int rc_cuda_matmul(rc_cuda_blas *b, const void *w, const void *x, rc_cuda_dtype dt,
                              float *y, int n, int in, int out, float beta, cudaStream_t s) {
    if (n <= 0 || out <= 0) return 0;
    if (n == 1 && b->gemv_batch1) return rc_cuda_gemv(w, x, dt, y, in, out, beta, s);
    cublasHandle_t h = (cublasHandle_t)b->handle;
    // fp32 operands: compute type 32F with the default math mode stays true fp32 (no TF32).
    cudaDataType_t t = dt == RC_CUDA_F16 ? CUDA_R_16F : dt == RC_CUDA_BF16 ? CUDA_R_16BF : CUDA_R_32F;
    float alpha = 1.f;
    if (blas_stream(b, s)) return -1;
    CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &alpha, w, t, in, x, t, in,
                              &beta, y, CUDA_R_32F, out, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return 0;
}

extern "C" int rc_cuda_matmul_wt(rc_cuda_blas *b, const void *w, const void *x, rc_cuda_dtype dt,
                                 float *y, int n, int in, int out, float alpha, float beta,
                                 cudaStream_t s) {
    if (n <= 0 || out <= 0) return 0;
    cublasHandle_t h = (cublasHandle_t)b->handle;
    cudaDataType_t t = dt == RC_CUDA_F16 ? CUDA_R_16F : dt == RC_CUDA_BF16 ? CUDA_R_16BF : CUDA_R_32F;
    if (blas_stream(b, s)) return -1;
    // column-major: Y^T (out, n) = W' (out, in) X^T (in, n), W' = the (in, out) row-major W as is
    CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, out, n, in, &alpha, w, t, out, x, t, in,
                              &beta, y, CUDA_R_32F, out, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return 0;
}

// ---- GEMV with its input computed on the fly (saves a launch per fused op in batch-1 decode) --

template <typename T, int MODE>
static int gemv_fused_launch(const void *w, const float *x, const float *x2, float eps, float *y,
                             int in, int out, float beta, cudaStream_t s) {
    gemv_vec_kernel<T, MODE><<<rc_cdiv(out, GEMV_WARPS * GEMV_ROWS), GEMV_WARPS * 32, 0, s>>>(
        (const T *)w, x, x2, eps, y, in, out, beta);
    CUDA_CHECK_LAUNCH();
    return 0;
}

template <int MODE>
static int gemv_fused(const void *w, const float *x, const float *x2, float eps, rc_cuda_dtype dt,
                      float *y, int in, int out, float beta, cudaStream_t s) {
    if (dt == RC_CUDA_F16) return gemv_fused_launch<__half, MODE>(w, x, x2, eps, y, in, out, beta, s);
    if (dt == RC_CUDA_BF16) return gemv_fused_launch<__nv_bfloat16, MODE>(w, x, x2, eps, y, in, out, beta, s);
    return gemv_fused_launch<float, MODE>(w, x, x2, eps, y, in, out, beta, s);
}

static bool fusable(const void *w, const float *x, const float *x2, rc_cuda_dtype dt, int in) {
    return in % 8 == 0 && (uintptr_t)w % 16 == 0 && (uintptr_t)x % 16 == 0 &&
           (uintptr_t)x2 % 16 == 0 && (dt == RC_CUDA_F32 || dt == RC_CUDA_F16 || dt == RC_CUDA_BF16);
}

extern "C" int rc_cuda_gemv_rmsnorm(const void *w, const float *x, const float *norm_w, float eps,
                                    void *scratch, rc_cuda_dtype dt, float *y, int in, int out,
                                    float beta, cudaStream_t s) {
    if (out <= 0) return 0;
    if (!fusable(w, x, norm_w, dt, in)) {
        if (rc_cuda_rmsnorm(x, norm_w, scratch, dt, 1, in, eps, s)) return -1;
        return rc_cuda_gemv(w, scratch, dt, y, in, out, beta, s);
    }
    return gemv_fused<GEMV_IN_RMSNORM>(w, x, norm_w, eps, dt, y, in, out, beta, s);
}

extern "C" int rc_cuda_gemv_swiglu(const void *w, const float *gate, const float *up,
                                   void *scratch, rc_cuda_dtype dt, float *y, int in, int out,
                                   float beta, cudaStream_t s) {
    if (out <= 0) return 0;
    if (!fusable(w, gate, up, dt, in)) {
        if (rc_cuda_swiglu(gate, up, in, scratch, dt, 1, in, s)) return -1;
        return rc_cuda_gemv(w, scratch, dt, y, in, out, beta, s);
    }
    return gemv_fused<GEMV_IN_SWIGLU>(w, gate, up, 0.f, dt, y, in, out, beta, s);
}
