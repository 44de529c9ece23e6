// Element-type conversion of device buffers and the device random fill (splitmix64 of
// seed ^ index, so every element is independent of the launch shape). Grid-stride loops.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/convert.h"

template <typename D, typename S>
__global__ void convert_kernel(D *dst, const S *src, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        dst[i] = rc_from_f32<D>(rc_to_f32(src[i]));
}

template <typename D, typename S> static int convert_launch(void *dst, const void *src, size_t n,
                                                           cudaStream_t s) {
    if (n == 0) return 0;
    unsigned grid = rc_cdiv(n, 256);
    if (grid > 65535u * 8) grid = 65535u * 8;
    convert_kernel<D, S><<<grid, 256, 0, s>>>((D *)dst, (const S *)src, n);
    CUDA_CHECK_LAUNCH();
    return 0;
}

template <typename D> static int convert_from(void *dst, const void *src, rc_cuda_dtype src_dt,
                                             size_t n, cudaStream_t s) {
    switch (src_dt) {
    case RC_CUDA_F32: return convert_launch<D, float>(dst, src, n, s);
    case RC_CUDA_F16: return convert_launch<D, __half>(dst, src, n, s);
    case RC_CUDA_BF16: return convert_launch<D, __nv_bfloat16>(dst, src, n, s);
    }
    return rc_fail("rc_cuda_convert: unknown source dtype %d", (int)src_dt);
}

extern "C" int rc_cuda_convert(void *dst, rc_cuda_dtype dst_dt, const void *src,
                               rc_cuda_dtype src_dt, size_t n, cudaStream_t s) {
    switch (dst_dt) {
    case RC_CUDA_F32: return convert_from<float>(dst, src, src_dt, n, s);
    case RC_CUDA_F16: return convert_from<__half>(dst, src, src_dt, n, s);
    case RC_CUDA_BF16: return convert_from<__nv_bfloat16>(dst, src, src_dt, n, s);
    }
    return rc_fail("rc_cuda_convert: unknown destination dtype %d", (int)dst_dt);
}

static __device__ __forceinline__ uint64_t splitmix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

template <typename T>
__global__ void fill_uniform_kernel(T *dst, size_t n, float scale, float offset, uint64_t seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        uint64_t r = splitmix64(seed ^ (i * 0xd1b54a32d192ed03ull));
        float u = (float)(r >> 40) * (1.0f / 16777216.0f); // [0, 1), 24 bits
        dst[i] = rc_from_f32<T>((2.f * u - 1.f) * scale + offset);
    }
}

extern "C" int rc_cuda_fill_uniform(void *dst, rc_cuda_dtype dt, size_t n, float scale,
                                    float offset, uint64_t seed, cudaStream_t s) {
    if (n == 0) return 0;
    unsigned grid = rc_cdiv(n, 256);
    if (grid > 65535u * 8) grid = 65535u * 8;
    switch (dt) {
    case RC_CUDA_F32: fill_uniform_kernel<float><<<grid, 256, 0, s>>>((float *)dst, n, scale, offset, seed); break;
    case RC_CUDA_F16: fill_uniform_kernel<__half><<<grid, 256, 0, s>>>((__half *)dst, n, scale, offset, seed); break;
    case RC_CUDA_BF16: fill_uniform_kernel<__nv_bfloat16><<<grid, 256, 0, s>>>((__nv_bfloat16 *)dst, n, scale, offset, seed); break;
    default: return rc_fail("rc_cuda_fill_uniform: unknown dtype %d", (int)dt);
    }
    CUDA_CHECK_LAUNCH();
    return 0;
}
