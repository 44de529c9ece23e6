// Argmax: one block of 512 threads per row; each thread scans a strided part of the row, then a
// warp and a block reduction on (value, index) pairs.
#include "kernels/cuda/argmax.h"
#include "kernels/cuda/common.cuh"

static __device__ __forceinline__ void better(float &bv, int &bi, float v, int i) {
    if (v > bv || (v == bv && i < bi) || (bi < 0 && v == v)) {
        bv = v;
        bi = i;
    }
}

__global__ void argmax_kernel(const float *logits, int *out, int vocab) {
    __shared__ float sv[32];
    __shared__ int si[32];
    const float *row = logits + (size_t)blockIdx.x * vocab;
    float bv = -INFINITY;
    int bi = -1;
    for (int j = threadIdx.x; j < vocab; j += blockDim.x) better(bv, bi, row[j], j);
    for (int o = 16; o > 0; o >>= 1) {
        float v = __shfl_xor_sync(0xffffffffu, bv, o);
        int i = __shfl_xor_sync(0xffffffffu, bi, o);
        if (i >= 0) better(bv, bi, v, i);
    }
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) {
        sv[warp] = bv;
        si[warp] = bi;
    }
    __syncthreads();
    if (warp == 0) {
        int nw = blockDim.x >> 5;
        bv = lane < nw ? sv[lane] : -INFINITY;
        bi = lane < nw ? si[lane] : -1;
        for (int o = 16; o > 0; o >>= 1) {
            float v = __shfl_xor_sync(0xffffffffu, bv, o);
            int i = __shfl_xor_sync(0xffffffffu, bi, o);
            if (i >= 0) better(bv, bi, v, i);
        }
        if (lane == 0) out[blockIdx.x] = bi < 0 ? 0 : bi; // an all-NaN row yields 0, as on the CPU
    }
}

extern "C" int rc_cuda_argmax(const float *logits, int *out, int n, int vocab, cudaStream_t s) {
    if (n <= 0) return 0;
    RC_CUDA_REQUIRE(vocab > 0, "rc_cuda_argmax: empty vocabulary");
    argmax_kernel<<<n, 512, 0, s>>>(logits, out, vocab);
    CUDA_CHECK_LAUNCH();
    return 0;
}
