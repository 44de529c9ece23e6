// SwiGLU: element-wise over (n, f); 2-D grid (column blocks, rows).
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/swiglu.h"

template <typename T>
__global__ void swiglu_kernel(const float *gate, const float *up, int ld_in, T *out, int f) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= f) return;
    size_t i = blockIdx.y;
    float g = gate[i * ld_in + j], u = up[i * ld_in + j];
    out[i * f + j] = rc_from_f32<T>(g / (1.f + expf(-g)) * u);
}

extern "C" int rc_cuda_swiglu(const float *gate, const float *up, int ld_in, void *out,
                              rc_cuda_dtype out_dt, int n, int f, cudaStream_t s) {
    if (n <= 0) return 0;
    RC_CUDA_REQUIRE(n <= 65535, "rc_cuda_swiglu: %d rows is too many for one launch", n);
    dim3 grid(rc_cdiv(f, 256), n);
    switch (out_dt) {
    case RC_CUDA_F32: swiglu_kernel<float><<<grid, 256, 0, s>>>(gate, up, ld_in, (float *)out, f); break;
    case RC_CUDA_F16: swiglu_kernel<__half><<<grid, 256, 0, s>>>(gate, up, ld_in, (__half *)out, f); break;
    case RC_CUDA_BF16: swiglu_kernel<__nv_bfloat16><<<grid, 256, 0, s>>>(gate, up, ld_in, (__nv_bfloat16 *)out, f); break;
    default: return rc_fail("rc_cuda_swiglu: unknown dtype %d", (int)out_dt);
    }
    CUDA_CHECK_LAUNCH();
    return 0;
}
