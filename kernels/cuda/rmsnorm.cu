// RMSNorm: one block per row; the row is read once into registers/shared sums, the sum of
// squares reduced over the block, then written scaled. Optional fused residual add.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/rmsnorm.h"

template <typename T, bool RESID>
__global__ void rmsnorm_kernel(float *x, const float *r, const float *w, T *y, int d, float eps) {
    __shared__ float red[32];
    size_t off = (size_t)blockIdx.x * d;
    float *xr = x + off;
    float ss = 0.f;
    for (int j = threadIdx.x; j < d; j += blockDim.x) {
        float v = xr[j];
        if (RESID) {
            v += r[off + j];
            xr[j] = v;
        }
        ss += v * v;
    }
    ss = rc_block_sum(ss, red);
    float inv = rsqrtf(ss / (float)d + eps);
    for (int j = threadIdx.x; j < d; j += blockDim.x) y[off + j] = rc_from_f32<T>(xr[j] * inv * w[j]);
}

template <bool RESID>
static int rmsnorm_launch(float *x, const float *r, const float *w, void *y, rc_cuda_dtype y_dt,
                          int n, int d, float eps, cudaStream_t s) {
    if (n <= 0) return 0;
    RC_CUDA_REQUIRE(d > 0, "rc_cuda_rmsnorm: bad width %d", d);
    int threads = d >= 1024 ? 512 : (d >= 256 ? 256 : 64);
    switch (y_dt) {
    case RC_CUDA_F32: rmsnorm_kernel<float, RESID><<<n, threads, 0, s>>>(x, r, w, (float *)y, d, eps); break;
    case RC_CUDA_F16: rmsnorm_kernel<__half, RESID><<<n, threads, 0, s>>>(x, r, w, (__half *)y, d, eps); break;
    case RC_CUDA_BF16: rmsnorm_kernel<__nv_bfloat16, RESID><<<n, threads, 0, s>>>(x, r, w, (__nv_bfloat16 *)y, d, eps); break;
    default: return rc_fail("rc_cuda_rmsnorm: unknown dtype %d", (int)y_dt);
    }
    CUDA_CHECK_LAUNCH();
    return 0;
}

extern "C" int rc_cuda_rmsnorm(const float *x, const float *w, void *y, rc_cuda_dtype y_dt,
                               int n, int d, float eps, cudaStream_t s) {
    return rmsnorm_launch<false>((float *)x, NULL, w, y, y_dt, n, d, eps, s);
}

extern "C" int rc_cuda_rmsnorm_residual(float *x, const float *r, const float *w, void *y,
                                        rc_cuda_dtype y_dt, int n, int d, float eps,
                                        cudaStream_t s) {
    return rmsnorm_launch<true>(x, r, w, y, y_dt, n, d, eps, s);
}
