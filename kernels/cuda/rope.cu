// RoPE kernels: one block per token; threads stride over (head, pair) items. The fused variant
// also scatters k (rotated) and v into the KV cache at the token's slot and position.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/rope.h"

__global__ void rope_kernel(float *x, const int *pos, const float *cos_tab, const float *sin_tab,
                            int n_heads, int hd) {
    int half = hd / 2;
    int p = pos[blockIdx.x];
    float *row = x + (size_t)blockIdx.x * n_heads * hd;
    const float *c = cos_tab + (size_t)p * half, *sn = sin_tab + (size_t)p * half;
    for (int t = threadIdx.x; t < n_heads * half; t += blockDim.x) {
        int h = t / half, i = t - h * half;
        float *v = row + h * hd;
        float a = v[i], b = v[i + half];
        v[i] = a * c[i] - b * sn[i];
        v[i + half] = b * c[i] + a * sn[i];
    }
}

extern "C" int rc_cuda_rope(float *x, const int *pos, const float *cos_tab, const float *sin_tab,
                            int n, int n_heads, int head_dim, cudaStream_t s) {
    if (n <= 0) return 0;
    RC_CUDA_REQUIRE(head_dim % 2 == 0, "rc_cuda_rope: head_dim %d is odd", head_dim);
    rope_kernel<<<n, 128, 0, s>>>(x, pos, cos_tab, sin_tab, n_heads, head_dim);
    CUDA_CHECK_LAUNCH();
    return 0;
}

template <typename T>
__global__ void rope_qkv_store_kernel(const float *qkv, const int *slots, const int *pos,
                                      const float *cos_tab, const float *sin_tab, float *q_out,
                                      T *k_cache, T *v_cache, int nh, int nkv, int hd,
                                      int max_len) {
    int i = blockIdx.x, half = hd / 2;
    int p = pos[i], slot = slots[i];
    int qd = nh * hd, kvd = nkv * hd;
    const float *row = qkv + (size_t)i * (qd + 2 * kvd);
    const float *c = cos_tab + (size_t)p * half, *sn = sin_tab + (size_t)p * half;
    size_t cache_off = ((size_t)slot * max_len + p) * kvd;
    float *qo = q_out + (size_t)i * qd;
    for (int t = threadIdx.x; t < (nh + nkv) * half; t += blockDim.x) {
        int h = t / half, j = t - h * half;
        float a = row[h * hd + j], b = row[h * hd + j + half]; // k heads follow q heads in row
        float ra = a * c[j] - b * sn[j], rb = b * c[j] + a * sn[j];
        if (h < nh) {
            qo[h * hd + j] = ra;
            qo[h * hd + j + half] = rb;
        } else {
            int kh = h - nh;
            k_cache[cache_off + kh * hd + j] = rc_from_f32<T>(ra);
            k_cache[cache_off + kh * hd + j + half] = rc_from_f32<T>(rb);
        }
    }
    const float *vr = row + qd + kvd;
    for (int t = threadIdx.x; t < kvd; t += blockDim.x) v_cache[cache_off + t] = rc_from_f32<T>(vr[t]);
}

extern "C" int rc_cuda_rope_qkv_store(const float *qkv, const int *slots, const int *pos,
                                      const float *cos_tab, const float *sin_tab, float *q_out,
                                      void *k_cache, void *v_cache, rc_cuda_dtype cache_dt, int n,
                                      int n_heads, int n_kv_heads, int head_dim, int max_len,
                                      cudaStream_t s) {
    if (n <= 0) return 0;
    RC_CUDA_REQUIRE(head_dim % 2 == 0, "rc_cuda_rope_qkv_store: head_dim %d is odd", head_dim);
    switch (cache_dt) {
    case RC_CUDA_F32:
        rope_qkv_store_kernel<float><<<n, 256, 0, s>>>(qkv, slots, pos, cos_tab, sin_tab, q_out,
            (float *)k_cache, (float *)v_cache, n_heads, n_kv_heads, head_dim, max_len);
        break;
    case RC_CUDA_F16:
        rope_qkv_store_kernel<__half><<<n, 256, 0, s>>>(qkv, slots, pos, cos_tab, sin_tab, q_out,
            (__half *)k_cache, (__half *)v_cache, n_heads, n_kv_heads, head_dim, max_len);
        break;
    case RC_CUDA_BF16:
        rope_qkv_store_kernel<__nv_bfloat16><<<n, 256, 0, s>>>(qkv, slots, pos, cos_tab, sin_tab,
            q_out, (__nv_bfloat16 *)k_cache, (__nv_bfloat16 *)v_cache, n_heads, n_kv_heads,
            head_dim, max_len);
        break;
    default: return rc_fail("rc_cuda_rope_qkv_store: unknown dtype %d", (int)cache_dt);
    }
    CUDA_CHECK_LAUNCH();
    return 0;
}
