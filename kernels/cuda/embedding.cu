// Embedding lookup: one block per token, threads stride over the row, output fp32.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/embedding.h"

template <typename T>
__global__ void embedding_kernel(const T *table, const int *tokens, float *x, int d, int vocab) {
    int i = blockIdx.x;
    int tok = tokens[i];
    float *row = x + (size_t)i * d;
    if (tok < 0 || tok >= vocab) {
        for (int j = threadIdx.x; j < d; j += blockDim.x) row[j] = NAN;
        return;
    }
    const T *src = table + (size_t)tok * d;
    for (int j = threadIdx.x; j < d; j += blockDim.x) row[j] = rc_to_f32(src[j]);
}

extern "C" int rc_cuda_embedding(const void *table, rc_cuda_dtype dt, const int *tokens,
                                 float *x, int n, int d, int vocab, cudaStream_t s) {
    if (n <= 0) return 0;
    switch (dt) {
    case RC_CUDA_F32: embedding_kernel<float><<<n, 256, 0, s>>>((const float *)table, tokens, x, d, vocab); break;
    case RC_CUDA_F16: embedding_kernel<__half><<<n, 256, 0, s>>>((const __half *)table, tokens, x, d, vocab); break;
    case RC_CUDA_BF16: embedding_kernel<__nv_bfloat16><<<n, 256, 0, s>>>((const __nv_bfloat16 *)table, tokens, x, d, vocab); break;
    default: return rc_fail("rc_cuda_embedding: unknown dtype %d", (int)dt);
    }
    CUDA_CHECK_LAUNCH();
    return 0;
}
