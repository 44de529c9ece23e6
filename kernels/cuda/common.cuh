// Device-side helpers shared by every CUDA kernel file: the error-check macro family
// (CUDA_CHECK, CUBLAS_CHECK, CUDA_CHECK_LAUNCH: each records statement, function, file and line
// through rc_fail and returns -1 from the enclosing host function), fp16/bf16 <-> fp32
// conversions, 16-byte vector loads of 8 elements, and warp reductions.
#pragma once
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "base/common.h"
#include "kernels/cuda/cuda_common.h"

#define CUDA_CHECK(stmt)                                                                         \
    do {                                                                                         \
        cudaError_t rc_err_ = (stmt);                                                            \
        if (rc_err_ != cudaSuccess)                                                              \
            return rc_fail("%s:%d %s: %s: CUDA error %s (%s)", __FILE__, __LINE__, __func__,    \
                           #stmt, cudaGetErrorName(rc_err_), cudaGetErrorString(rc_err_));      \
    } while (0)

#define CUBLAS_CHECK(stmt)                                                                       \
    do {                                                                                         \
        cublasStatus_t rc_st_ = (stmt);                                                          \
        if (rc_st_ != CUBLAS_STATUS_SUCCESS)                                                     \
            return rc_fail("%s:%d %s: %s: cuBLAS error %s (%s)", __FILE__, __LINE__, __func__,  \
                           #stmt, cublasGetStatusName(rc_st_), cublasGetStatusString(rc_st_));  \
    } while (0)

// After every kernel launch: catches bad launch configurations (and, in debug runs, faults).
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

// Host-side argument check for launchers.
#define RC_CUDA_REQUIRE(cond, ...)                                                               \
    do {                                                                                         \
        if (!(cond)) return rc_fail(__VA_ARGS__);                                                \
    } while (0)

typedef __half rc_f16;
typedef __nv_bfloat16 rc_bf16;

static __device__ __forceinline__ float rc_to_f32(float x) { return x; }
static __device__ __forceinline__ float rc_to_f32(__half x) { return __half2float(x); }
static __device__ __forceinline__ float rc_to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T> __device__ __forceinline__ T rc_from_f32(float x);
template <> __device__ __forceinline__ float rc_from_f32<float>(float x) { return x; }
template <> __device__ __forceinline__ __half rc_from_f32<__half>(float x) {
    return __float2half_rn(x);
}
template <> __device__ __forceinline__ __nv_bfloat16 rc_from_f32<__nv_bfloat16>(float x) {
    return __float2bfloat16_rn(x);
}

// Two packed 16-bit values -> two floats.
static __device__ __forceinline__ float2 rc_pair_to_f32(uint32_t u, const __half *) {
    __half2 h;
    memcpy(&h, &u, 4);
    return __half22float2(h);
}
static __device__ __forceinline__ float2 rc_pair_to_f32(uint32_t u, const __nv_bfloat16 *) {
    __nv_bfloat162 h;
    memcpy(&h, &u, 4);
    return __bfloat1622float2(h);
}

static __device__ __forceinline__ float2 rc_pair_to_f32(float2 u, const float *) { return u; }

// The storage of one pair of consecutive elements: 4 bytes for 16-bit types, 8 for fp32.
template <typename T> struct rc_pair_type { typedef uint32_t type; };
template <> struct rc_pair_type<float> { typedef float2 type; };

// 8 consecutive elements: one 16-byte vector for 16-bit types, two for fp32.
template <typename T> struct rc_vec8 { uint4 v[sizeof(T) / 2]; };

template <typename T> static __device__ __forceinline__ rc_vec8<T> rc_zero8() {
    rc_vec8<T> r;
#pragma unroll
    for (int k = 0; k < (int)(sizeof(T) / 2); k++) r.v[k] = make_uint4(0, 0, 0, 0);
    return r;
}
// Plain, read-only-cache (__ldg) and streaming (__ldcs, evict-first) loads; p 16-byte aligned.
template <typename T> static __device__ __forceinline__ rc_vec8<T> rc_ld8(const T *p) {
    rc_vec8<T> r;
#pragma unroll
    for (int k = 0; k < (int)(sizeof(T) / 2); k++) r.v[k] = ((const uint4 *)p)[k];
    return r;
}
template <typename T> static __device__ __forceinline__ rc_vec8<T> rc_ld8_ro(const T *p) {
    rc_vec8<T> r;
#pragma unroll
    for (int k = 0; k < (int)(sizeof(T) / 2); k++) r.v[k] = __ldg((const uint4 *)p + k);
    return r;
}
template <typename T> static __device__ __forceinline__ rc_vec8<T> rc_ld8_stream(const T *p) {
    rc_vec8<T> r;
#pragma unroll
    for (int k = 0; k < (int)(sizeof(T) / 2); k++) r.v[k] = __ldcs((const uint4 *)p + k);
    return r;
}

template <typename T> static __device__ __forceinline__ void rc_unpack8(const rc_vec8<T> &x, float *f) {
    const uint4 u = x.v[0];
    float2 a = rc_pair_to_f32(u.x, (const T *)0), b = rc_pair_to_f32(u.y, (const T *)0);
    float2 c = rc_pair_to_f32(u.z, (const T *)0), d = rc_pair_to_f32(u.w, (const T *)0);
    f[0] = a.x; f[1] = a.y; f[2] = b.x; f[3] = b.y;
    f[4] = c.x; f[5] = c.y; f[6] = d.x; f[7] = d.y;
}
template <> __device__ __forceinline__ void rc_unpack8<float>(const rc_vec8<float> &x, float *f) {
#pragma unroll
    for (int k = 0; k < 2; k++) {
        f[4 * k + 0] = __uint_as_float(x.v[k].x);
        f[4 * k + 1] = __uint_as_float(x.v[k].y);
        f[4 * k + 2] = __uint_as_float(x.v[k].z);
        f[4 * k + 3] = __uint_as_float(x.v[k].w);
    }
}

static __device__ __forceinline__ float rc_warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
static __device__ __forceinline__ float rc_warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over a block whose size is a multiple of 32 (<= 1024); every thread gets the result.
// red must hold 32 floats; the call contains __syncthreads, so all threads must reach it.
static __device__ __forceinline__ float rc_block_sum(float v, float *red) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = rc_warp_sum(v);
    __syncthreads(); // red may still be read by a previous call
    if (lane == 0) red[warp] = v;
    __syncthreads();
    v = lane < nw ? red[lane] : 0.f;
    return rc_warp_sum(v);
}
static __device__ __forceinline__ float rc_block_max(float v, float *red) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = rc_warp_max(v);
    __syncthreads();
    if (lane == 0) red[warp] = v;
    __syncthreads();
    v = lane < nw ? red[lane] : -INFINITY;
    return rc_warp_max(v);
}

static inline unsigned rc_cdiv(size_t a, size_t b) { return (unsigned)((a + b - 1) / b); }
